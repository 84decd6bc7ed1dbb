//! Cargo pins from untrusted bytes. The input is a `Cargo.lock`, optionally
//! followed by a NUL byte and a `.cargo-checksum.json`. The high side
//! re-checks a cargo artifact against both; the build side plans a `cargo:`
//! entry from them (lock file parsed as TOML, vendored crate directory read).
#![no_main]
use std::collections::BTreeSet;
use std::sync::OnceLock;

use airlock::bundle::{Artifact, ArtifactKind, Blob, Layer, LayerRef, Package};
use airlock::digest::Sha256Digest;
use airlock::error::Report;
use airlock::manifest::LoadedManifest;
use airlock::sources::cargo;
use libfuzzer_sys::fuzz_target;

const REGISTRY: &str = "registry+https://github.com/rust-lang/crates.io-index";

fn digest(c: char) -> Sha256Digest {
    c.to_string().repeat(64).parse().expect("hex")
}

fn layer(path: &str, media_type: &str, d: Sha256Digest) -> Layer {
    Layer {
        media_type: media_type.to_string().into(),
        digest: d,
        size: 1,
        path: path.into(),
        mode: 0o644,
    }
}

/// A cargo artifact carrying one vendored registry crate.
fn artifact() -> Artifact {
    let blob = Blob {
        media_type: "application/json".into(),
        digest: digest('0'),
        size: 2,
    };
    Artifact {
        kind: ArtifactKind::Cargo,
        name: "cargo".into(),
        reference: "cargo/0".into(),
        artifact_type: airlock::bundle::CARGO_ARTIFACT.into(),
        manifest: blob.clone(),
        config: blob,
        layers: vec![
            layer(cargo::LOCK_PATH, airlock::bundle::CARGO_LOCK, digest('f')),
            layer(
                "vendor/itoa/.cargo-checksum.json",
                airlock::bundle::CARGO_CHECKSUM,
                digest('c'),
            ),
            layer(
                "vendor/itoa/src/lib.rs",
                airlock::bundle::CARGO_FILE,
                digest('e'),
            ),
        ]
        .into(),
        packages: vec![Package {
            name: "itoa".into(),
            version: "1.0.0".into(),
            source: Some(REGISTRY.into()),
            checksum: Some(digest('d')),
            integrity: None,
            path: Some("vendor/itoa".into()),
            hashes: vec![],
            files: vec![],
        }],
        source: None,
        blobs: vec![],
    }
}

/// A build-side project: a manifest with one `cargo:` entry whose vendor
/// directory holds one crate; the lock and checksum files are rewritten per input.
fn project() -> &'static LoadedManifest {
    static M: OnceLock<LoadedManifest> = OnceLock::new();
    M.get_or_init(|| {
        airlock_fuzz::put("cargo/Cargo.lock", b"version = 3\n");
        airlock_fuzz::put(
            "cargo/vendor/itoa/Cargo.toml",
            b"[package]\nname = \"itoa\"\nversion = \"1.0.0\"\n",
        );
        airlock_fuzz::put("cargo/vendor/itoa/src/lib.rs", b"\n");
        airlock_fuzz::put("cargo/vendor/itoa/.cargo-checksum.json", b"{\"files\":{}}");
        let yaml = "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: fuzz\n  version: 1.0.0\ncargo:\n  - lockfile: Cargo.lock\n    vendor: vendor\n";
        LoadedManifest::load(&airlock_fuzz::put("cargo/airlock.yaml", yaml.as_bytes()))
            .expect("the fuzz project's manifest loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let (lock, checksum) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{\"files\":{}}"[..]),
    };
    let a = artifact();
    let bytes_of = |l: LayerRef<'_>| match l.path {
        cargo::LOCK_PATH => Some(lock),
        "vendor/itoa/.cargo-checksum.json" => Some(checksum),
        _ => None,
    };
    cargo::check_artifact(&a, &bytes_of, &mut Report::default());

    let m = project();
    airlock_fuzz::put("cargo/Cargo.lock", lock);
    airlock_fuzz::put("cargo/vendor/itoa/.cargo-checksum.json", checksum);
    let _ = cargo::plan(m, &mut BTreeSet::new());
});
