//! safetensors files (length-prefixed JSON header, dtypes, shapes, data
//! offsets) and shard index JSON from untrusted bytes; also the content check
//! that dispatches a model file by name and magic.
#![no_main]
use std::collections::BTreeSet;
use std::io::Cursor;

use airlock::modelcheck::{self, Use};
use airlock::safetensors;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let _ = safetensors::validate(&mut Cursor::new(data), size);
    let _ = safetensors::validate(&mut Cursor::new(data), size + (1 << 20));
    let _ = safetensors::check_header(data, 0);
    let _ = safetensors::index_shards(data);
    let siblings = BTreeSet::from(["model-00001-of-00002.safetensors".to_string()]);
    for path in [
        "model.safetensors",
        "model.safetensors.index.json",
        "weights.bin",
    ] {
        let uses = [Use {
            path,
            siblings: &siblings,
        }];
        let _ = modelcheck::check(&mut Cursor::new(data), size, &uses);
    }
});
