//! The bounded raw tar walk every tar reader of outside bytes shares
//! (`rawtar::Members`: pax headers, GNU long names and links bounded by
//! `MAX_TAR_META`, then applied), then its callers: a `docker save` archive
//! converted to OCI (`image::convert_docker_archive`), and the same bytes as
//! a model file (`modelcheck::check`, a legacy torch tar when the first
//! header is valid).
#![no_main]
use std::collections::BTreeSet;
use std::io::Read;

use airlock::rawtar::{Members, MAX_TAR_META};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut a = tar::Archive::new(data);
    if let Ok(entries) = a.entries() {
        for m in Members::new(entries) {
            let Ok(mut m) = m else { break };
            let name = m.path_bytes().len();
            let link = m.link_bytes().map_or(0, |l| l.len());
            assert!(name as u64 <= MAX_TAR_META && link as u64 <= MAX_TAR_META);
            let _ = m.meta.size_disagrees(m.entry.size());
            let _ = std::io::copy(&mut (&mut m.entry).take(1 << 20), &mut std::io::sink());
        }
    }
    let path = airlock_fuzz::put("raw_tar/app.tar", data);
    let blobs = airlock_fuzz::scratch().join("raw_tar/blobs");
    std::fs::create_dir_all(&blobs).expect("scratch blobs");
    let mut w = airlock::image::BlobWriter::new(&blobs, &airlock::progress::Silent);
    let _ = airlock::image::convert_docker_archive(&path, None, &mut w);
    let siblings = BTreeSet::new();
    let uses = [airlock::modelcheck::Use {
        path: "old.bin",
        siblings: &siblings,
    }];
    let _ = airlock::modelcheck::check(&mut std::io::Cursor::new(data), data.len() as u64, &uses);
});
