//! Stored zip archives (the torch format): end of central directory, zip64
//! records, central directory entries, local headers and member data; also
//! through the content check as a torch checkpoint.
#![no_main]
use std::collections::BTreeSet;
use std::io::{Cursor, Read};

use airlock::modelcheck::{self, Use};
use airlock::storedzip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let mut f = Cursor::new(data);
    if let Ok(members) = storedzip::members(&mut f, size) {
        for m in members.iter().take(64) {
            let _ = m.encrypted();
            let _ = storedzip::data_offset(&mut f, size, m);
            if let Ok(r) = storedzip::open_stored(&mut f, size, m) {
                let mut sink = Vec::new();
                let _ = r.take(1 << 20).read_to_end(&mut sink);
            }
        }
    }
    let siblings = BTreeSet::new();
    let uses = [Use {
        path: "model.pt",
        siblings: &siblings,
    }];
    let _ = modelcheck::check(&mut Cursor::new(data), size, &uses);
});
