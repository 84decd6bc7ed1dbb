//! npm pins from untrusted bytes: a `package-lock.json` (lockfileVersion 2
//! or 3: its `packages`, `resolved` URLs and sha512 `integrity` values) as
//! the high side re-checks an npm artifact carrying one tarball against it,
//! and as the build side's `npm::plan` reads it beside a tarball folder.
#![no_main]
use std::collections::BTreeSet;
use std::sync::OnceLock;

use airlock::bundle::{
    ArtifactKind, LayerRef, Package, PackageFile, NPM_ARTIFACT, NPM_LOCK, NPM_TARBALL,
};
use airlock::digest::Sha256Digest;
use airlock::error::Report;
use airlock::manifest::LoadedManifest;
use airlock::sources::kind::Kept;
use airlock::sources::npm;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest as _, Sha512};

/// The one carried tarball (`@s/x@1.0.0`) and its bytes.
const TARBALL: &str = "tarballs/s-x-1.0.0.tgz";
const TGZ: &[u8] = b"a tarball";

/// A build-side project: a manifest with one `npm:` entry whose folder holds
/// the tarball; the lock is rewritten per input.
fn project() -> &'static LoadedManifest {
    static M: OnceLock<LoadedManifest> = OnceLock::new();
    M.get_or_init(|| {
        airlock_fuzz::put("npm/tarballs/s-x-1.0.0.tgz", TGZ);
        airlock_fuzz::put("npm/package.json", b"{\"name\":\"p\",\"version\":\"1.0.0\"}");
        airlock_fuzz::put("npm/package-lock.json", b"{}");
        let yaml = "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: fuzz\n  version: 1.0.0\nnpm:\n  - lockfile: package-lock.json\n    tarballs: tarballs\n";
        LoadedManifest::load(&airlock_fuzz::put("npm/airlock.yaml", yaml.as_bytes()))
            .expect("the fuzz project's manifest loads")
    })
}

/// What verify kept: the lock's bytes, and the tarball's sha512.
struct Read<'a>(&'a [u8]);

impl Kept for Read<'_> {
    fn bytes(&self, l: LayerRef<'_>) -> Option<&[u8]> {
        (l.path == npm::LOCK_PATH).then_some(self.0)
    }
    fn sha512(&self, l: LayerRef<'_>) -> Option<[u8; 64]> {
        (l.path == TARBALL).then(|| Sha512::digest(TGZ).into())
    }
}

fuzz_target!(|data: &[u8]| {
    let sha512: [u8; 64] = Sha512::digest(TGZ).into();
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha512)
    );
    let a = airlock_fuzz::artifact(
        ArtifactKind::Npm,
        "npm/package-lock.json",
        NPM_ARTIFACT,
        vec![
            airlock_fuzz::layer(
                npm::LOCK_PATH,
                NPM_LOCK,
                Sha256Digest::of(data),
                data.len() as u64,
            ),
            airlock_fuzz::layer(
                TARBALL,
                NPM_TARBALL,
                Sha256Digest::of(TGZ),
                TGZ.len() as u64,
            ),
        ],
        vec![Package {
            name: "@s/x".into(),
            version: "1.0.0".into(),
            source: Some("https://registry.npmjs.org/@s/x/-/x-1.0.0.tgz".into()),
            checksum: None,
            integrity: Some(integrity),
            path: None,
            hashes: vec![],
            files: vec![PackageFile {
                path: TARBALL.into(),
                sha256: Sha256Digest::of(TGZ),
            }],
        }],
    );
    npm::check_artifact(&a, &Read(data), &mut Report::default());

    let m = project();
    airlock_fuzz::put("npm/package-lock.json", data);
    let _ = npm::plan(m, &mut BTreeSet::new());
});
