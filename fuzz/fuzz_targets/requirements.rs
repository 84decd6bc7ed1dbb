//! Python pins from untrusted bytes: `requirements.txt` (pip's hash-checking
//! form) as the build side parses it and as the high side re-checks a python
//! artifact against it; distribution file names, names and versions; and a
//! PEP 751 `pylock.toml`.
#![no_main]
use airlock::bundle::{Artifact, ArtifactKind, Blob, Layer, LayerRef, Package, PackageFile};
use airlock::digest::Sha256Digest;
use airlock::error::Report;
use airlock::sources::python;
use libfuzzer_sys::fuzz_target;

const WHEEL: &str = "tinypkg-0.1.0-py3-none-any.whl";

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

/// A python artifact carrying one wheel pinned by its requirements file.
fn artifact() -> Artifact {
    let blob = Blob {
        media_type: "application/json".into(),
        digest: digest('0'),
        size: 2,
    };
    Artifact {
        kind: ArtifactKind::Python,
        name: "python".into(),
        reference: "python/0".into(),
        artifact_type: airlock::bundle::PYTHON_ARTIFACT.into(),
        manifest: blob.clone(),
        config: blob,
        layers: vec![
            layer(
                python::REQUIREMENTS_PATH,
                airlock::bundle::PYTHON_REQUIREMENTS,
                digest('f'),
            ),
            layer(WHEEL, airlock::bundle::PYTHON_WHEEL, digest('a')),
        ]
        .into(),
        packages: vec![Package {
            name: "tinypkg".into(),
            version: "0.1.0".into(),
            source: None,
            checksum: None,
            integrity: None,
            path: None,
            hashes: vec![digest('a')],
            files: vec![PackageFile {
                path: WHEEL.into(),
                sha256: digest('a'),
            }],
        }],
        source: None,
        blobs: vec![],
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (reqs, _problems) = python::parse_requirements(&text);
    for r in &reqs {
        let _ = python::normalize_name(&r.name);
        let _ = python::canonical_version(&r.version);
    }
    for word in text.split_whitespace().take(16) {
        let _ = python::parse_dist(word);
        let _ = python::canonical_version(word);
        let _ = python::normalize_name(word);
    }
    let a = artifact();
    let bytes_of = |l: LayerRef<'_>| (l.path == python::REQUIREMENTS_PATH).then_some(data);
    python::check_artifact(&a, &bytes_of, &mut Report::default());
    let _ = python::parse_pylock(&text, true);
    let _ = python::parse_pylock(&text, false);
});
