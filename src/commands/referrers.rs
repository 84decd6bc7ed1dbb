//! The OCI 1.1 referrers `airlock push` puts beside what it pushes: small
//! artifacts whose `subject` is a pushed manifest, so that `oras discover`
//! (or any OCI 1.1 client) on a pushed image or artifact lists what
//! describes it and where it came from.
//!
//! | `artifactType` | layers (`org.opencontainers.image.title`) |
//! |---|---|
//! | `application/vnd.cyclonedx+json` | the bundle's CycloneDX SBOM, its stored bytes |
//! | `application/spdx+json` | the bundle's SPDX SBOM, its stored bytes |
//! | `application/vnd.airlock.signatures.v1+json` | every `signatures/<key-id>.dsse.json` and `.sshsig`, with `tagmanifest-sha256.txt` (what they sign) and `manifest-sha256.txt` (which lists the subject's digest) |
//! | `application/vnd.airlock.custody.v1+json` | every `custody/NNNN-EVENT.dsse.json`, with the same two tag files |
//!
//! Each has the OCI empty config and the annotations
//! `org.opencontainers.image.created` (the bundle's), `dev.airlock.bundle.id`,
//! `dev.airlock.bundle.name` and `dev.airlock.bundle.version`. A referrer is
//! a function of the bundle and its subject only, so pushing again makes
//! byte-identical manifests and adds nothing.
//!
//! A registry with the referrers API lists them by their subject. One
//! without it (it answers 404 on `/v2/<name>/referrers/<digest>`, as
//! Debian's registry 2.8 does) gets the referrers tag schema's fallback: an
//! image index tagged `sha256-<hex of the subject>` listing the referrer
//! manifests. [`merged_index`] adds ours to the index already there, keeping
//! every entry it has.

use serde_json::{Map, Value};

use crate::bundle::{
    canonical_json, parse_manifest, Artifact, ArtifactKind, Blob, Description, CUSTODY_DIR,
    EMPTY_JSON, MANIFEST, MT_EMPTY, MT_INDEX, MT_MANIFEST, SIGNATURES_DIR, TAGMANIFEST, TITLE,
};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::store::{BundleRecord, Store, BUNDLE_ID};

pub const SIGNATURES_TYPE: &str = "application/vnd.airlock.signatures.v1+json";
pub const CUSTODY_TYPE: &str = "application/vnd.airlock.custody.v1+json";
/// A DSSE envelope (the media type Sigstore bundles use for one).
pub const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
/// An OpenSSH SSHSIG signature (armored text).
pub const SSHSIG_LAYER: &str = "application/vnd.airlock.sshsig.v1.txt";
/// A BagIt tag file (`tagmanifest-sha256.txt`, `manifest-sha256.txt`).
pub const TAG_FILE_LAYER: &str = "text/plain";
pub const CREATED: &str = "org.opencontainers.image.created";
pub const BUNDLE_NAME: &str = "dev.airlock.bundle.name";
pub const BUNDLE_VERSION: &str = "dev.airlock.bundle.version";

/// One layer of a referrer: a store blob, or a small file of the record.
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    pub title: String,
    /// The bytes of a record file; `None` for a blob the store holds.
    pub bytes: Option<Vec<u8>>,
}

/// A referrer to put beside each subject.
#[derive(Debug, Clone)]
pub struct Planned {
    pub artifact_type: String,
    pub layers: Vec<Layer>,
}

impl Layer {
    fn file(media_type: &str, title: &str, bytes: Vec<u8>) -> Layer {
        Layer {
            media_type: media_type.to_string(),
            digest: Sha256Digest::of(&bytes),
            size: bytes.len() as u64,
            title: title.to_string(),
            bytes: Some(bytes),
        }
    }
}

/// Does push attach referrers to this artifact? Every image and every
/// model, file set and package artifact; not the SBOM artifacts, nor what
/// was carried from the source beside an image under a digest tag
/// (`sha256-<hex>` referrers indexes, cosign's `sha256-<hex>.sig` ...).
pub fn is_subject(a: &Artifact, tag: Option<&str>) -> bool {
    match a.kind {
        ArtifactKind::Sbom => false,
        ArtifactKind::Image => !tag.is_some_and(is_digest_tag),
        _ => true,
    }
}

/// `sha256-<64 hex>`, optionally followed by `.SUFFIX`.
pub fn is_digest_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = rest.split_once('.').map_or(rest, |(h, _)| h);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `sha256-<64 hex>`: a referrers tag schema fallback tag.
pub fn is_fallback_tag(tag: &str) -> bool {
    is_digest_tag(tag) && !tag.contains('.')
}

/// The fallback tag of the referrers tag schema for `subject`.
pub fn fallback_tag(subject: &Sha256Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The referrers of a bundle in the store: its generated SBOMs, its
/// signatures and its custody record. The tag files they carry are checked
/// against the record's id first (a record edited since import is exit 1).
pub fn plan(store: &Store, rec: &BundleRecord, d: &Description) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for a in d.artifacts.iter().filter(|a| crate::sbom::is_generated(a)) {
        out.push(Planned {
            artifact_type: a.artifact_type.clone(),
            layers: a
                .layers
                .iter()
                .map(|l| Layer {
                    media_type: l.media_type.to_string(),
                    digest: *l.digest,
                    size: l.size,
                    title: l.path.rsplit('/').next().unwrap_or(l.path).to_string(),
                    bytes: None,
                })
                .collect(),
        });
    }
    let tm = store.record_file(rec, TAGMANIFEST)?;
    let at = |f: &str| format!("{}/{f}", store.meta.locate_record(&rec.name, &rec.version));
    if Sha256Digest::of(&tm).hex() != rec.id {
        return Err(crate::error::single(
            at(TAGMANIFEST),
            format!(
                "does not hash to the record's id {} (record edited); nothing of it can be pushed as a referrer",
                rec.id
            ),
        ));
    }
    let mf = store.record_file(rec, MANIFEST)?;
    let listed = parse_manifest(&String::from_utf8_lossy(&tm)).unwrap_or_default();
    if listed.get(MANIFEST) != Some(&Sha256Digest::of(&mf)) {
        return Err(crate::error::single(
            at(MANIFEST),
            "does not match the record's tag manifest (record edited)",
        ));
    }
    let tag_files = [
        Layer::file(TAG_FILE_LAYER, TAGMANIFEST, tm),
        Layer::file(TAG_FILE_LAYER, MANIFEST, mf),
    ];
    let evidence = |dir: &str, artifact_type: &str| -> Result<Option<Planned>> {
        let mut layers = Vec::new();
        for (path, bytes) in store.record_dir(rec, dir)? {
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            let mt = if name.ends_with(".dsse.json") {
                DSSE_LAYER
            } else if name.ends_with(".sshsig") {
                SSHSIG_LAYER
            } else {
                continue;
            };
            layers.push(Layer::file(mt, &name, bytes));
        }
        if layers.is_empty() {
            return Ok(None);
        }
        layers.extend(tag_files.iter().cloned());
        Ok(Some(Planned {
            artifact_type: artifact_type.to_string(),
            layers,
        }))
    };
    out.extend(evidence(SIGNATURES_DIR, SIGNATURES_TYPE)?);
    out.extend(evidence(CUSTODY_DIR, CUSTODY_TYPE)?);
    Ok(out)
}

/// The annotations every referrer of bundle `d` (id `id`) carries.
fn annotations(d: &Description, id: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert(CREATED.into(), d.created.clone().into());
    a.insert(BUNDLE_ID.into(), id.into());
    a.insert(BUNDLE_NAME.into(), d.name.clone().into());
    a.insert(BUNDLE_VERSION.into(), d.version.clone().into());
    a
}

fn descriptor(media_type: &str, digest: &Sha256Digest, size: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("mediaType".into(), media_type.into());
    m.insert("digest".into(), digest.oci().into());
    m.insert("size".into(), size.into());
    m
}

/// The manifest of referrer `p` of `subject` (canonical JSON).
pub fn manifest(p: &Planned, subject: &Blob, d: &Description, id: &str) -> Vec<u8> {
    let layers: Vec<Value> = p
        .layers
        .iter()
        .map(|l| {
            let mut m = descriptor(&l.media_type, &l.digest, l.size);
            let mut a = Map::new();
            a.insert(TITLE.into(), l.title.clone().into());
            m.insert("annotations".into(), a.into());
            m.into()
        })
        .collect();
    let mut m = Map::new();
    m.insert("schemaVersion".into(), 2.into());
    m.insert("mediaType".into(), MT_MANIFEST.into());
    m.insert("artifactType".into(), p.artifact_type.clone().into());
    m.insert(
        "config".into(),
        descriptor(
            MT_EMPTY,
            &Sha256Digest::of(EMPTY_JSON),
            EMPTY_JSON.len() as u64,
        )
        .into(),
    );
    m.insert("layers".into(), layers.into());
    m.insert(
        "subject".into(),
        descriptor(&subject.media_type, &subject.digest, subject.size).into(),
    );
    m.insert("annotations".into(), annotations(d, id).into());
    canonical_json(&Value::Object(m))
}

/// The entry of the referrer manifest `bytes` in a referrers index: its
/// descriptor with its `artifactType` and annotations, as the
/// distribution spec lists referrers.
pub fn index_entry(bytes: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let mut m = descriptor(MT_MANIFEST, &Sha256Digest::of(bytes), bytes.len() as u64);
    for k in ["artifactType", "annotations"] {
        if let Some(x) = v.get(k) {
            m.insert(k.into(), x.clone());
        }
    }
    m.into()
}

/// The referrers tag schema's index with `entries` added to `existing` (the
/// bytes the fallback tag serves now, if any): every entry already there
/// is kept as it is, and ours not listed yet (by digest) are appended.
/// `Ok(None)`: all are listed already, nothing to write. `Err`: what is
/// under the tag is not an image index.
pub fn merged_index(
    existing: Option<&[u8]>,
    entries: &[Value],
) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut index = match existing {
        None => {
            let mut m = Map::new();
            m.insert("schemaVersion".into(), 2.into());
            m.insert("mediaType".into(), MT_INDEX.into());
            m.insert("manifests".into(), Value::Array(Vec::new()));
            m
        }
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m))
                if m.get("manifests").is_some_and(Value::is_array)
                    && m.get("mediaType")
                        .is_none_or(|t| t.as_str() == Some(MT_INDEX)) =>
            {
                m
            }
            _ => {
                return Err(
                    "holds something other than an OCI image index, where the referrers tag schema keeps one"
                        .into(),
                )
            }
        },
    };
    let list = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .expect("checked above");
    let before = list.len();
    for e in entries {
        let digest = e.get("digest");
        if !list.iter().any(|x| x.get("digest") == digest) {
            list.push(e.clone());
        }
    }
    if existing.is_some() && list.len() == before {
        return Ok(None);
    }
    Ok(Some(canonical_json(&Value::Object(index))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, at: &str) -> Value {
        let mut m = descriptor(MT_MANIFEST, &Sha256Digest::of(&[n]), 10);
        m.insert("artifactType".into(), at.into());
        m.into()
    }

    #[test]
    fn digest_tags() {
        let hex = Sha256Digest::of(b"x").hex();
        assert!(is_digest_tag(&format!("sha256-{hex}")));
        assert!(is_digest_tag(&format!("sha256-{hex}.sig")));
        assert!(is_fallback_tag(&format!("sha256-{hex}")));
        assert!(!is_fallback_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_digest_tag("sha256-abc"));
        assert!(!is_digest_tag("1.0"));
        assert!(!is_digest_tag(&format!("sha256-{}", &hex[..63])));
    }

    #[test]
    fn merging_keeps_what_is_there_and_adds_each_referrer_once() {
        let ours = [entry(1, "a"), entry(2, "b")];
        let fresh = merged_index(None, &ours).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&fresh).unwrap();
        assert_eq!(v["mediaType"], MT_INDEX);
        assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
        // Again: nothing to write.
        assert_eq!(merged_index(Some(&fresh), &ours).unwrap(), None);
        // Someone else's referrer stays, first; ours follow; no duplicates.
        let other = merged_index(None, &[entry(9, "x"), entry(1, "a")])
            .unwrap()
            .unwrap();
        let merged = merged_index(Some(&other), &ours).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&merged).unwrap();
        let types: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["artifactType"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["x", "a", "b"]);
        // Not an index: refused, never overwritten.
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert!(merged_index(Some(manifest), &ours).is_err());
    }

    #[test]
    fn a_referrer_names_its_subject_and_is_deterministic() {
        let p = Planned {
            artifact_type: "application/spdx+json".into(),
            layers: vec![Layer::file(
                "application/spdx+json",
                "x.spdx.json",
                b"{}".to_vec(),
            )],
        };
        let subject = Blob {
            media_type: MT_MANIFEST.into(),
            digest: Sha256Digest::of(b"image"),
            size: 5,
        };
        let d: Description = serde_json::from_value(serde_json::json!({
            "apiVersion": "airlock/v1", "kind": "BundleDescription", "name": "demo",
            "version": "1.0.0", "created": "2024-01-01T00:00:00Z", "generator": "airlock",
            "pickle": "deny", "artifacts": []
        }))
        .unwrap();
        let m = manifest(&p, &subject, &d, "ab");
        assert_eq!(m, manifest(&p, &subject, &d, "ab"));
        let v: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["subject"]["digest"], subject.digest.oci());
        assert_eq!(v["artifactType"], "application/spdx+json");
        assert_eq!(v["config"]["mediaType"], MT_EMPTY);
        assert_eq!(v["annotations"][BUNDLE_ID], "ab");
        let e = index_entry(&m);
        assert_eq!(e["digest"], Sha256Digest::of(&m).oci());
        assert_eq!(e["artifactType"], "application/spdx+json");
    }
}
