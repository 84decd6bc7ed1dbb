//! The OCI documents of a bundle's payload from untrusted bytes: the input is
//! `data/index.json` and up to eight blobs, separated by NUL bytes (JSON
//! holds none). Each document is parsed as every manifest and index type an
//! image may have (`image::parse`); the index and blobs go through the
//! layout check of the seed bundle's description (`check_oci`: each blob
//! kept, and folded as a file set's manifest is, layer by layer from a
//! temporary file); and the blobs are checked as an image artifact whose
//! manifest is the first (`image::check`), declaring each other blob as the
//! documents reference it (or as a layer when none does), so a consistent
//! seed reaches the walk of children and the config check.
#![no_main]
use std::collections::HashMap;
use std::sync::OnceLock;

use airlock::bundle::{blob_path, ArtifactKind, Blob, Description, DESCRIPTION};
use airlock::digest::Sha256Digest;
use airlock::error::Report;
use airlock::image::{self, Parsed, ACCEPTED, MT_LAYER_TAR};
use libfuzzer_sys::fuzz_target;

/// The seed bundle's `airlock.json`.
fn description() -> &'static Description {
    static D: OnceLock<Description> = OnceLock::new();
    D.get_or_init(|| {
        serde_json::from_slice(&airlock_fuzz::seed_tags().files[DESCRIPTION])
            .expect("the seed description parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let index = parts.next().unwrap_or_default();
    let blobs: Vec<&[u8]> = parts.take(8).collect();

    let mut parsed = Vec::new();
    for doc in std::iter::once(index).chain(blobs.iter().copied()) {
        let mut first = None;
        for mt in ACCEPTED {
            if let Ok(p) = image::parse(mt, doc) {
                first.get_or_insert((*mt, p));
            }
        }
        parsed.push(first);
    }

    let report = airlock::verify::check_oci_documents(description(), index, &blobs)
        .expect("a temporary file for the folded manifests");
    let _ = report.is_ok();

    let Some((manifest, rest)) = blobs.split_first() else {
        return;
    };
    // Every descriptor the documents reference, by digest (the first wins).
    let mut referenced: HashMap<Sha256Digest, Blob> = HashMap::new();
    let mut config = None;
    for (_, p) in parsed.iter().flatten() {
        let descs: Vec<&image::Desc> = match p {
            Parsed::Index(entries) => entries.iter().collect(),
            Parsed::Manifest { config: c, layers } => {
                config.get_or_insert_with(|| c.blob());
                std::iter::once(c).chain(layers).collect()
            }
        };
        for d in descs {
            referenced.entry(d.digest).or_insert_with(|| d.blob());
        }
    }
    let blob_of = |bytes: &[u8], media_type: &str| Blob {
        media_type: media_type.into(),
        digest: Sha256Digest::of(bytes),
        size: bytes.len() as u64,
    };
    let mut artifact = airlock_fuzz::artifact(ArtifactKind::Image, "img", "", vec![], vec![]);
    // The first blob's media type: the first accepted type it parses as.
    artifact.manifest = blob_of(
        manifest,
        parsed[1]
            .as_ref()
            .map_or(airlock::bundle::MT_MANIFEST, |(mt, _)| mt),
    );
    if let Some(c) = config {
        artifact.config = c;
    }
    artifact.blobs = rest
        .iter()
        .map(|b| {
            let digest = Sha256Digest::of(b);
            referenced
                .get(&digest)
                .cloned()
                .unwrap_or_else(|| blob_of(b, MT_LAYER_TAR))
        })
        .collect();
    let kept: HashMap<String, Vec<u8>> = blobs
        .iter()
        .map(|b| (blob_path(&Sha256Digest::of(b)), b.to_vec()))
        .collect();
    let mut report = Report::default();
    image::check(&artifact, &kept, &mut report);
});
