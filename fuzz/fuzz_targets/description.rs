//! `airlock.json` (the bundle description) from untrusted bytes: parsed on
//! its own (with what `inspect` derives from it and the package-pin check),
//! then as the description among the seed bundle's tag files through
//! `check_tags` (description checks and the payload plan).
#![no_main]
use std::collections::HashMap;

use airlock::bundle::{canonical_json, Description, DESCRIPTION};
use airlock::error::Report;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = serde_json::from_slice::<Description>(data) {
        // What pack writes must read back as the same description.
        let again: Description =
            serde_json::from_slice(&canonical_json(&d)).expect("canonical JSON parses");
        assert_eq!(again, d);
        let _ = d.blobs();
        let _ = d.total_size();
        let _ = airlock::modelcheck::render(&d);
        let kept = airlock::sources::packages::KeptPins {
            bytes: &HashMap::new(),
            sha512: &HashMap::new(),
        };
        airlock::sources::packages::check_pins(&d, &kept, &mut Report::default());
    }
    let mut tags = airlock_fuzz::seed_tags().clone();
    tags.files.insert(DESCRIPTION.to_string(), data.to_vec());
    let _ = airlock::verify::check_tags(tags, airlock_fuzz::policy(), airlock::clock::now());
});
