//! The build manifest (`airlock.yaml`) from untrusted bytes: YAML parsing,
//! field checks and path resolution against a project directory that holds
//! a file, a model directory, a Cargo.lock and vendor directory, a
//! requirements file and wheelhouse, and an OCI layout.
#![no_main]
use std::sync::Once;

use airlock::manifest::{self, LoadedManifest};
use libfuzzer_sys::fuzz_target;

fn project() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (rel, bytes) in [
            ("manifest/notes.txt", &b"notes\n"[..]),
            ("manifest/docs/runbook.md", b"# runbook\n"),
            ("manifest/m/config.json", b"{}"),
            ("manifest/Cargo.lock", b"version = 3\n"),
            ("manifest/vendor/.keep", b""),
            ("manifest/requirements.txt", b""),
            ("manifest/wheelhouse/.keep", b""),
            (
                "manifest/layout/oci-layout",
                b"{\"imageLayoutVersion\":\"1.0.0\"}",
            ),
        ] {
            airlock_fuzz::put(rel, bytes);
        }
    });
}

fuzz_target!(|data: &[u8]| {
    project();
    let path = airlock_fuzz::put("manifest/airlock.yaml", data);
    if let Ok(m) = LoadedManifest::load(&path) {
        for f in &m.manifest.files {
            let _ = m.resolve(&f.path);
            let _ = manifest::record_name(&f.path);
            let _ = manifest::normalize(&f.path);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = manifest::valid_name(s);
        let _ = manifest::record_name(s);
        let _ = manifest::normalize(s);
    }
});
