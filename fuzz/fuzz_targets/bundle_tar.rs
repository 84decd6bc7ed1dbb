//! A bundle tar (or tar.zst) from untrusted bytes: the tag reader, `inspect`
//! and a full `verify` against the DEMO policy.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    airlock_fuzz::read_bundle_file("bundle.tar", data);
});
