//! `manifest-sha256.txt` (the payload manifest) from untrusted bytes as
//! verify reads it: `PayloadList` line by line into compact records,
//! against `parse_manifest` over the same bytes (the same entries in the
//! same order, the same errors), read whole and in small pieces.
#![no_main]
use airlock::bundle::{parse_manifest, PayloadList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let want = parse_manifest(&String::from_utf8_lossy(data));
    let whole = PayloadList::parse(data);
    // A reader that yields a few bytes at a time.
    let pieces = PayloadList::parse(std::io::BufReader::with_capacity(3, data));
    for got in [whole, pieces] {
        match (&want, got) {
            (Ok(m), Ok(l)) => {
                assert_eq!(l.len(), m.len());
                assert!(l.iter().eq(m.iter().map(|(p, d)| (p.clone(), *d))));
                for p in m.keys() {
                    assert!(l.contains_key(p), "{p}");
                }
            }
            (Err(w), Err(g)) => assert_eq!(&g, w),
            (w, g) => panic!("{w:?} against {g:?}"),
        }
    }
});
