//! The apt lock (deb822 paragraphs, as `apt-cache show --no-all-versions`
//! prints them) from untrusted bytes: the paragraph parser and the lock's
//! entries; the high side's re-check of an apt artifact carrying one `.deb`
//! against it; and the build side's `apt::plan` reading it beside a folder
//! holding that `.deb` (the `deb_control` seed built by `dpkg-deb`).
#![no_main]
use std::collections::BTreeSet;
use std::sync::OnceLock;

use airlock::bundle::{
    ArtifactKind, LayerRef, Package, PackageFile, APT_ARTIFACT, APT_DEB, APT_LOCK,
};
use airlock::digest::Sha256Digest;
use airlock::error::Report;
use airlock::manifest::LoadedManifest;
use airlock::sources::apt;
use libfuzzer_sys::fuzz_target;

/// The carried package: `seeds/deb_control/zstd-xz.deb` as `apt-get download` names it.
const DEB: &str = "zstd_1.5.4+dfsg2-5_amd64.deb";

/// The `.deb`'s sha256 and size.
fn deb() -> &'static (Sha256Digest, u64) {
    static D: OnceLock<(Sha256Digest, u64)> = OnceLock::new();
    D.get_or_init(|| {
        let bytes = airlock_fuzz::seed("deb_control", "zstd-xz.deb");
        // The seed carries a leading mode byte (see deb_control.rs).
        let bytes = &bytes[1..];
        (Sha256Digest::of(bytes), bytes.len() as u64)
    })
}

/// A build-side project: a manifest with one `apt:` entry whose folder holds
/// the `.deb`; the lock is rewritten per input.
fn project() -> &'static LoadedManifest {
    static M: OnceLock<LoadedManifest> = OnceLock::new();
    M.get_or_init(|| {
        let bytes = airlock_fuzz::seed("deb_control", "zstd-xz.deb");
        airlock_fuzz::put(&format!("apt/debs/{DEB}"), &bytes[1..]);
        airlock_fuzz::put("apt/apt.lock", b"");
        let yaml = "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: fuzz\n  version: 1.0.0\napt:\n  - lock: apt.lock\n    debs: debs\n";
        LoadedManifest::load(&airlock_fuzz::put("apt/airlock.yaml", yaml.as_bytes()))
            .expect("the fuzz project's manifest loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let (digest, size) = *deb();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(stanzas) = apt::parse_deb822(text) {
            for s in &stanzas {
                let _ = s.get("Package");
            }
            let (entries, _problems) = apt::lock_entries(&stanzas);
            for e in &entries {
                let _ = e.id();
                let _ = e.file_name();
            }
        }
    }

    let a = airlock_fuzz::artifact(
        ArtifactKind::Apt,
        "apt/apt.lock",
        APT_ARTIFACT,
        vec![
            airlock_fuzz::layer(
                apt::LOCK_PATH,
                APT_LOCK,
                Sha256Digest::of(data),
                data.len() as u64,
            ),
            airlock_fuzz::layer(DEB, APT_DEB, digest, size),
        ],
        vec![Package {
            name: "zstd".into(),
            version: "1.5.4+dfsg2-5".into(),
            source: Some(apt::DEFAULT_DISTRO.into()),
            checksum: Some(digest),
            integrity: None,
            path: None,
            hashes: vec![],
            files: vec![PackageFile {
                path: DEB.into(),
                sha256: digest,
            }],
        }],
    );
    let bytes_of = |l: LayerRef<'_>| (l.path == apt::LOCK_PATH).then_some(data);
    apt::check_artifact(&a, &bytes_of, &mut Report::default());

    let m = project();
    airlock_fuzz::put("apt/apt.lock", data);
    let _ = apt::plan(m, &mut BTreeSet::new());
});
