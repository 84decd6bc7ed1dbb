//! What the fuzz targets share: a scratch directory for parsers that read
//! files, the DEMO trust policy, and the tag files of the seed bundle (so a
//! target can replace one tag file and still reach the checks after it).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use airlock::keys::PublicKey;
use airlock::policy::TrustPolicy;
use airlock::source::{Form, TagSet};

/// The repository root (the parent of `fuzz/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

/// One scratch directory per fuzzing process, under `$TMPDIR` (the scripts
/// point it below `fuzz/target/` and remove it afterwards).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("airlock-fuzz-")
            .tempdir()
            .expect("a scratch directory")
            .keep()
    })
}

/// Writes `bytes` to `scratch/rel` (creating parents) and returns the path.
pub fn put(rel: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch parent");
    }
    std::fs::write(&path, bytes).expect("scratch write");
    path
}

/// `keys/demo-trust-policy.yaml`, which trusts the key the seed bundles are signed with.
pub fn policy() -> &'static TrustPolicy {
    static P: OnceLock<TrustPolicy> = OnceLock::new();
    P.get_or_init(|| {
        TrustPolicy::load(&repo().join("keys/demo-trust-policy.yaml")).expect("demo policy")
    })
}

/// The DEMO builder's public key.
pub fn demo_key() -> &'static PublicKey {
    &policy().keys[0].key
}

/// The tag files, signatures and custody events of `seeds/bundle_tar/tiny.tar`.
pub fn seed_tags() -> &'static TagSet {
    static T: OnceLock<TagSet> = OnceLock::new();
    T.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/bundle_tar/tiny.tar");
        let form = Form::open(&path).expect("seed bundle");
        let tags = airlock::verify::read_tags(&form).expect("seed tags");
        assert!(tags.report.is_ok(), "the seed bundle reads cleanly");
        tags
    })
}

/// Opens `bytes` written as the file `name` the way the CLI opens a bundle
/// path, then runs `inspect`, the tag reader and a full `verify` against the
/// DEMO policy. Errors are expected; panics, hangs and runaway memory are not.
pub fn read_bundle_file(name: &str, bytes: &[u8]) {
    let path = put(name, bytes);
    let form = Form::open(&path).expect("a regular file opens as a bundle form");
    let _ = airlock::verify::read_tags(&form);
    let _ = airlock::inspect::inspect(&path);
    let _ = airlock::verify::verify(&form, policy(), None, &airlock::progress::Silent);
}

/// A layer of a hand-built artifact (for the high side's re-checks).
pub fn layer(
    path: &str,
    media_type: &str,
    digest: airlock::digest::Sha256Digest,
    size: u64,
) -> airlock::bundle::Layer {
    airlock::bundle::Layer {
        media_type: std::borrow::Cow::Owned(media_type.to_string()),
        digest,
        size,
        path: path.into(),
        mode: 0o644,
    }
}

/// A hand-built artifact of `kind` with `layers` and `packages` (its
/// manifest and config blobs are placeholders: the re-checks do not read them).
pub fn artifact(
    kind: airlock::bundle::ArtifactKind,
    reference: &str,
    artifact_type: &str,
    layers: Vec<airlock::bundle::Layer>,
    packages: Vec<airlock::bundle::Package>,
) -> airlock::bundle::Artifact {
    let blob = airlock::bundle::Blob {
        media_type: "application/json".into(),
        digest: airlock::digest::Sha256Digest::of(b"{}"),
        size: 2,
    };
    airlock::bundle::Artifact {
        kind,
        name: reference.into(),
        reference: reference.into(),
        artifact_type: artifact_type.into(),
        manifest: blob.clone(),
        config: blob,
        layers: layers.into(),
        packages,
        source: None,
        blobs: vec![],
    }
}

/// A seed file of another target (`seeds/TARGET/NAME`), for fixtures.
pub fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
