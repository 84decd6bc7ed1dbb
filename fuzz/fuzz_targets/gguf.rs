//! GGUF headers (magic, version, metadata key/values, nested arrays, tensor
//! infos, alignment) from untrusted bytes, as a whole file and as the head of
//! a larger one; also through the content check.
#![no_main]
use std::collections::BTreeSet;
use std::io::Cursor;

use airlock::gguf;
use airlock::modelcheck::{self, Use};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let _ = gguf::check_magic(data);
    let _ = gguf::parse(data, size);
    let _ = gguf::parse(data, size + (1 << 40));
    let siblings = BTreeSet::new();
    let uses = [Use {
        path: "model.gguf",
        siblings: &siblings,
    }];
    let _ = modelcheck::check(&mut Cursor::new(data), size, &uses);
});
