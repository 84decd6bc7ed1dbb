//! One volume file (`NAME-VERSION.vol001.tar`) from untrusted bytes: the
//! volume head reader (tags, volume map, marker), `inspect` and `verify`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    airlock_fuzz::read_bundle_file("tiny-1.0.0.vol001.tar", data);
});
