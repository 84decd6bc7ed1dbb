//! Software bills of materials: a CycloneDX 1.6 JSON document (with ML-BOM:
//! models are `machine-learning-model` components with a model card) and an
//! SPDX 2.3 JSON document, generated at pack time from the bundle
//! description and stored in the bundle as OCI 1.1 artifacts
//! (`sbom/cyclonedx`, `sbom/spdx`: empty config, one layer each, the
//! document's media type as `artifactType`). SBOMs made elsewhere (manifest
//! `sboms:`) are carried as artifacts of their own (`sbom/carried/...`) and
//! referenced from the generated documents.
//!
//! Every payload item is a component (CycloneDX) and a package (SPDX) with
//! its sha256 and a package URL: `pkg:generic/BUNDLE/PATH?checksum=...`
//! for files (PATH where `airlock export` writes the file), models as ML
//! components (the OCI manifest's digest as their hash; purl
//! `pkg:huggingface/ORG/NAME@REVISION` for a model whose manifest entry
//! names its Hub origin, else `pkg:generic/BUNDLE/MODEL@VERSION`) with
//! their files nested, `pkg:pypi/...` distributions and `pkg:cargo/...`
//! crates with their files nested.
//!
//! Deterministic: documents are a pure function of the description (the
//! generated SBOM artifacts themselves left out), keys are written sorted,
//! timestamps are the description's `created` (from `SOURCE_DATE_EPOCH`),
//! and the CycloneDX serial number and the SPDX document namespace are
//! RFC 9562 version-8 UUIDs made from the sha256 of the rest of the document.
//!
//! # The subject and the bundle id
//! The bundle id is the sha256 of `tagmanifest-sha256.txt`, which covers
//! `manifest-sha256.txt`, which covers every payload blob, the stored SBOMs
//! among them: a stored SBOM cannot contain the id. So the stored documents
//! name their subject, the bundle, by name and version (CycloneDX
//! `metadata.component`, SPDX package `SPDXRef-Bundle`, purl
//! `pkg:generic/NAME@VERSION`) and pin its content by the sha256 of every
//! layer (and of each model's OCI manifest), none of which depends on the
//! tag files.
//! `airlock sbom` prints a derived document: the stored one with the bundle
//! id added as the subject's SHA-256 hash (CycloneDX
//! `metadata.component.hashes`, SPDX `SPDXRef-Bundle`'s `checksums`; the id
//! identifies the bundle the way an OCI manifest digest identifies an image)
//! and an `airlock:bundle:id` property or comment, with its own serial
//! number or namespace. `airlock sbom --stored` prints the stored bytes.
//! Either way the stored document is checked against the digest that
//! `airlock.json` (covered by the tag manifest, hence by the id) declares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};
use serde::Serialize;
use serde_json::Value;

use crate::bundle::*;
use crate::digest::{copy_hashed, Sha256Digest};
use crate::error::{single, Error, Result};
use crate::manifest::{record_name, LoadedManifest};
use crate::purl::{pct, purl};
use crate::source::{Flow, Form, Item as Entry};
use crate::sources::{InputFile, PlannedArtifact};

pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
pub const CYCLONEDX_XML: &str = "application/vnd.cyclonedx+xml";
pub const SPDX_JSON: &str = "application/spdx+json";
pub const SPDX_TAG_VALUE: &str = "text/spdx";

/// OCI references of the generated documents.
pub const REF_CYCLONEDX: &str = "sbom/cyclonedx";
pub const REF_SPDX: &str = "sbom/spdx";
/// OCI references of carried SBOMs start with this.
pub const REF_CARRIED: &str = "sbom/carried/";
/// Layer paths of carried SBOMs start with this (export: `DIR/sbom/carried/...`).
pub const CARRIED_DIR: &str = "carried";

const CDX_SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";
/// SPDX id of the package standing for the bundle.
const SPDX_BUNDLE: &str = "SPDXRef-Bundle";
const NOASSERTION: &str = "NOASSERTION";
/// The most a carried SBOM's opening is read to tell its format.
const SNIFF: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    #[value(name = "cyclonedx")]
    Cyclonedx,
    #[value(name = "spdx")]
    Spdx,
}

impl SbomFormat {
    pub fn reference(self) -> &'static str {
        match self {
            SbomFormat::Cyclonedx => REF_CYCLONEDX,
            SbomFormat::Spdx => REF_SPDX,
        }
    }
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Cyclonedx => CYCLONEDX_JSON,
            SbomFormat::Spdx => SPDX_JSON,
        }
    }
    /// The layer's file name: `NAME-VERSION.cdx.json` / `NAME-VERSION.spdx.json`.
    fn file_name(self, d: &Description) -> String {
        match self {
            SbomFormat::Cyclonedx => format!("{}.cdx.json", d.stem()),
            SbomFormat::Spdx => format!("{}.spdx.json", d.stem()),
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            SbomFormat::Cyclonedx => "CycloneDX",
            SbomFormat::Spdx => "SPDX",
        }
    }
}

/// An SBOM artifact airlock generated (as opposed to one carried along).
pub fn is_generated(a: &Artifact) -> bool {
    a.kind == ArtifactKind::Sbom && (a.reference == REF_CYCLONEDX || a.reference == REF_SPDX)
}

// ---------------------------------------------------------------------------
// Carried SBOMs (manifest `sboms:`)
// ---------------------------------------------------------------------------

/// Plans one artifact per `sboms:` entry: a single file whose format is
/// recognised from its content, carried with that format's media type.
pub fn plan_carried(
    m: &LoadedManifest,
    taken_refs: &mut BTreeSet<String>,
) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    for (i, entry) in m.manifest.sboms.iter().enumerate() {
        let field = format!("sboms[{i}].path");
        let bad = |msg: String| Error::input(&m.path, format!("{field}: {msg}"));
        let name = record_name(&entry.path).expect("checked when loading");
        let src = m.resolve(&entry.path);
        let md = fs_err::symlink_metadata(&src)?;
        if !md.is_file() {
            return Err(bad(format!(
                "{} is not a regular file; list each SBOM file on its own",
                src.display()
            )));
        }
        let mut head = Vec::new();
        fs_err::File::open(&src)?
            .take(SNIFF)
            .read_to_end(&mut head)?;
        let media_type = sniff(&head).ok_or_else(|| {
            bad(format!(
                "{} is not a CycloneDX (JSON or XML) or SPDX (JSON or tag-value) document",
                src.display()
            ))
        })?;
        let reference = format!("{REF_CARRIED}{}", ref_component(&name));
        if reference == REF_CARRIED || !taken_refs.insert(reference.clone()) {
            return Err(bad(format!(
                "{:?} is carried twice (or names another SBOM's reference); list each file once",
                entry.path
            )));
        }
        out.push(PlannedArtifact {
            kind: ArtifactKind::Sbom,
            name: name.clone(),
            reference,
            artifact_type: media_type.to_string(),
            files: vec![InputFile {
                src,
                path: format!("{CARRIED_DIR}/{name}"),
                mode: MODE_FILE,
                media_type,
                pin: None,
            }]
            .into(),
            packages: Vec::new(),
        });
    }
    Ok(out)
}

/// The media type of an SBOM document, from its opening bytes.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') {
        if t.contains("\"bomFormat\"") && t.contains("\"CycloneDX\"") {
            return Some(CYCLONEDX_JSON);
        }
        if t.contains("\"spdxVersion\"") || t.contains("\"SPDXRef-DOCUMENT\"") {
            return Some(SPDX_JSON);
        }
        // SPDX 3 JSON-LD
        if t.contains("spdx.org/rdf/3") {
            return Some(SPDX_JSON);
        }
        return None;
    }
    if t.starts_with('<') {
        return t
            .contains("cyclonedx.org/schema/bom")
            .then_some(CYCLONEDX_XML);
    }
    t.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.starts_with("SPDXVersion:"))
        .map(|_| SPDX_TAG_VALUE)
}

// ---------------------------------------------------------------------------
// What the documents list
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Model,
    Library,
    File,
    /// A carried SBOM.
    Sbom,
    /// A container image.
    Container,
}

/// One component / package, format-neutral.
#[derive(Debug, Clone)]
struct Item {
    bom_ref: String,
    role: Role,
    name: String,
    version: Option<String>,
    purl: String,
    sha256: Option<Sha256Digest>,
    media_type: Option<String>,
    description: Option<String>,
    properties: Vec<(String, String)>,
    /// Model-card facts (name, value), for models.
    model_card: Vec<(String, String)>,
    architecture: Option<String>,
    /// CycloneDX external references: (type, url, comment).
    external_refs: Vec<(&'static str, String, Option<String>)>,
    /// SPDX `downloadLocation`, when known.
    download: Option<String>,
    children: Vec<Item>,
}

impl Item {
    fn new(bom_ref: String, role: Role, name: String, purl: String) -> Self {
        Item {
            bom_ref,
            role,
            name,
            version: None,
            purl,
            sha256: None,
            media_type: None,
            description: None,
            properties: Vec::new(),
            model_card: Vec::new(),
            architecture: None,
            external_refs: Vec::new(),
            download: None,
            children: Vec::new(),
        }
    }
}

/// A carried SBOM, referenced from the generated ones.
#[derive(Debug, Clone)]
struct Carried {
    bom_ref: String,
    /// Where `airlock export` writes it, relative to the export directory.
    export_path: String,
    reference: String,
    digest: Sha256Digest,
    media_type: String,
}

/// Every item the documents list, top-level ones in order (each with its
/// children), made one at a time as the documents are written: a bundle of
/// many files is never held as items.
fn items(d: &Description) -> impl Iterator<Item = Item> + '_ {
    d.artifacts.iter().filter(|a| !is_generated(a)).flat_map(
        move |a| -> Box<dyn Iterator<Item = Item> + '_> {
            match a.kind {
                ArtifactKind::Model => Box::new(std::iter::once(model_item(d, a))),
                ArtifactKind::Files => Box::new(a.layers.iter().map(move |l| file_item(d, a, l))),
                ArtifactKind::Image => Box::new(std::iter::once(image_item(a))),
                ArtifactKind::Sbom => Box::new(a.layers.iter().map(move |l| carried_item(d, a, l))),
                // Package kinds (python, cargo ...): each names its packages.
                _ => Box::new(package_items(d, a)),
            }
        },
    )
}

/// A carried SBOM's layer as an item.
fn carried_item(d: &Description, a: &Artifact, l: LayerRef<'_>) -> Item {
    let mut it = file_item(d, a, l);
    it.role = Role::Sbom;
    it.name = a.name.clone();
    it.description = Some(format!(
        "An SBOM made elsewhere (manifest `sboms:`), carried in this bundle as OCI artifact {}",
        a.reference
    ));
    it
}

/// The carried SBOMs (few: one per manifest `sboms:` entry).
fn carried(d: &Description) -> Vec<Carried> {
    d.artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Sbom && !is_generated(a))
        .flat_map(|a| {
            a.layers.iter().map(move |l| Carried {
                bom_ref: format!("{}#{}", a.reference, l.path),
                export_path: crate::sources::packages::export_path(d, a, l).unwrap_or_default(),
                reference: a.reference.clone(),
                digest: *l.digest,
                media_type: l.media_type.to_string(),
            })
        })
        .collect()
}

fn oci_properties(a: &Artifact) -> Vec<(String, String)> {
    vec![
        ("airlock:oci:reference".into(), a.reference.clone()),
        ("airlock:oci:manifest".into(), a.manifest.digest.oci()),
        ("airlock:oci:artifactType".into(), a.artifact_type.clone()),
    ]
}

/// A container image: a `container` component whose hash is its manifest's
/// (or index's) digest, with purl `pkg:oci/NAME@sha256:...?repository_url=...&tag=...`.
fn image_item(a: &Artifact) -> Item {
    let base = a.name.split('@').next().unwrap_or(&a.name);
    let (repo, tag) = match base.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (base, None),
    };
    let last = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
    let mut q = vec![("repository_url", repo.to_string())];
    if let Some(t) = tag {
        q.push(("tag", t.to_string()));
    }
    let purl = purl("oci", &[last.as_str()], Some(&a.manifest.digest.oci()), &q);
    let mut it = Item::new(a.reference.clone(), Role::Container, a.name.clone(), purl);
    it.version = tag.map(str::to_owned);
    it.sha256 = Some(a.manifest.digest);
    it.media_type = Some(a.manifest.media_type.clone());
    it.description = Some(format!(
        "Container image {}{}; its hash is its manifest's",
        a.name,
        a.source
            .as_deref()
            .map(|s| format!(", packed from {s}"))
            .unwrap_or_default()
    ));
    it.properties = oci_properties(a);
    it
}

/// A layer as a file component:
/// `pkg:generic/BUNDLE/EXPORT-PATH?checksum=sha256:HEX`, EXPORT-PATH being
/// where `airlock export` writes it (`models/NAME/...`, `files/...`, ...).
fn file_item(d: &Description, a: &Artifact, l: LayerRef<'_>) -> Item {
    let path = crate::sources::packages::export_path(d, a, l).unwrap_or_default();
    let mut segments: Vec<&str> = vec![d.name.as_str()];
    segments.extend(path.split('/'));
    let purl = purl("generic", &segments, None, &[("checksum", l.digest.oci())]);
    let name = l.path.rsplit('/').next().unwrap_or(l.path).to_string();
    let mut it = Item::new(
        format!("{}#{}", a.reference, l.path),
        Role::File,
        name,
        purl,
    );
    it.sha256 = Some(*l.digest);
    it.media_type = Some(l.media_type.to_string());
    it.properties = vec![
        ("airlock:path".into(), l.path.to_owned()),
        ("airlock:oci:reference".into(), a.reference.clone()),
    ];
    if l.mode == MODE_EXEC {
        it.properties.push(("airlock:mode".into(), "0755".into()));
    }
    it
}

/// A model: a `machine-learning-model` component whose hash is its OCI
/// manifest's, with a model card and its files nested. Its purl is
/// `pkg:huggingface/ORG/NAME@REVISION` when the manifest named the model's
/// Hub origin (with the repository as `vcs` and `distribution` references
/// and the SPDX download location), else `pkg:generic/BUNDLE/MODEL@VERSION`:
/// an origin airlock guessed would be a false claim.
fn model_item(d: &Description, a: &Artifact) -> Item {
    let hf = crate::sources::huggingface::origin_of(d, a);
    let purl = match hf {
        Some(o) => crate::sources::huggingface::purl(o),
        None => purl(
            "generic",
            &[d.name.as_str(), a.name.as_str()],
            Some(&d.version),
            &[],
        ),
    };
    let mut it = Item::new(a.reference.clone(), Role::Model, a.name.clone(), purl);
    it.version = Some(d.version.clone());
    it.sha256 = Some(a.manifest.digest);
    it.description = Some(format!(
        "Machine-learning model {}, a CNCF ModelPack artifact; its hash is the OCI manifest's",
        a.name
    ));
    it.properties = oci_properties(a);
    it.properties.extend(signature_properties(d, a));
    if let Some(o) = hf {
        use crate::sources::huggingface::{repo_url, tree_url};
        it.properties.extend([
            ("airlock:huggingface:repo".to_string(), o.repo.clone()),
            (
                "airlock:huggingface:revision".to_string(),
                o.revision.clone(),
            ),
        ]);
        it.external_refs = vec![
            (
                "vcs",
                repo_url(o),
                Some(format!(
                    "Hugging Face Hub repository, commit {}",
                    o.revision
                )),
            ),
            (
                "distribution",
                tree_url(o),
                Some("the model's files at that commit on the Hugging Face Hub".into()),
            ),
        ];
        it.download = Some(format!("git+{}@{}", repo_url(o), o.revision));
        // The purl's version: the commit, not the bundle's version.
        it.version = Some(o.revision.clone());
    }
    let (card, architecture) = model_card(d, a);
    it.model_card = card;
    it.architecture = architecture;
    it.children = a.layers.iter().map(|l| file_item(d, a, l)).collect();
    it
}

/// The model's OpenSSF model-signing signature, as `airlock:model:signature*`
/// properties (CycloneDX component properties; in SPDX, the package's
/// comment): `verified` or `unverified`, and for a verified one the signer
/// key's fingerprint, the algorithm, the predicate type, the files signed
/// and those the signature leaves out.
fn signature_properties(d: &Description, a: &Artifact) -> Vec<(String, String)> {
    let Some(s) = d
        .models
        .iter()
        .find(|m| m.artifact == a.reference)
        .and_then(|m| m.signature.as_ref())
    else {
        return Vec::new();
    };
    let status = match s.status {
        crate::bundle::SignatureStatus::Verified => "verified",
        crate::bundle::SignatureStatus::Unverified => "unverified",
    };
    let mut p = vec![
        ("airlock:model:signature".to_string(), status.to_string()),
        ("airlock:model:signature:file".to_string(), s.path.clone()),
    ];
    let fields = [
        ("keyFingerprint", s.key_fingerprint.clone()),
        ("algorithm", s.algorithm.clone()),
        ("predicateType", s.predicate_type.clone()),
        ("files", s.files.map(|n| n.to_string())),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            p.push((format!("airlock:model:signature:{k}"), v));
        }
    }
    for u in &s.unsigned {
        p.push(("airlock:model:signature:unsigned".to_string(), u.clone()));
    }
    p
}

/// Model-card facts (as `airlock:model:*` properties) and the architecture:
/// what pack read from the model's headers (`Description::models`: format,
/// parameter count and size, precision, parameters per dtype), and the
/// weight files' count and bytes. A description without facts for the
/// model (an older bundle) gives the format from the weights' extensions.
fn model_card(d: &Description, a: &Artifact) -> (Vec<(String, String)>, Option<String>) {
    let mut card: Vec<(String, String)> = Vec::new();
    let facts = d.models.iter().find(|m| m.artifact == a.reference);
    let weights: Vec<LayerRef<'_>> = a
        .layers
        .iter()
        .filter(|l| l.media_type == MODEL_WEIGHT)
        .collect();
    match facts.and_then(|f| f.format.clone()) {
        Some(format) => card.push(("airlock:model:format".into(), format)),
        None => {
            let mut formats: BTreeSet<&str> = BTreeSet::new();
            for l in &weights {
                let ext = l.path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
                formats.insert(match ext.to_ascii_lowercase().as_str() {
                    "safetensors" => "safetensors",
                    "gguf" => "gguf",
                    "onnx" => "onnx",
                    "bin" | "pt" | "pth" | "ckpt" => "pytorch",
                    _ => "other",
                });
            }
            for f in formats {
                card.push(("airlock:model:format".into(), f.into()));
            }
        }
    }
    if let Some(f) = facts {
        if let Some(n) = f.parameters {
            card.push(("airlock:model:parameters".into(), n.to_string()));
        }
        if let Some(s) = &f.param_size {
            card.push(("airlock:model:paramSize".into(), s.clone()));
        }
        if let Some(p) = &f.precision {
            card.push(("airlock:model:precision".into(), p.clone()));
        }
        for (dtype, n) in &f.dtypes {
            card.push((format!("airlock:model:dtype:{dtype}"), n.to_string()));
        }
    }
    card.push((
        "airlock:model:weightFiles".into(),
        weights.len().to_string(),
    ));
    card.push((
        "airlock:model:weightBytes".into(),
        weights.iter().map(|l| l.size).sum::<u64>().to_string(),
    ));
    (card, facts.and_then(|f| f.architecture.clone()))
}

/// Python distributions and vendored crates: one library component per
/// package with its files nested; the artifact's other files (the
/// requirements file, Cargo.lock) as file components, first. Made one at a
/// time.
fn package_items<'a>(d: &'a Description, a: &'a Artifact) -> impl Iterator<Item = Item> + 'a {
    let kind = crate::sources::kind::of(a.kind);
    let claimed: std::collections::HashSet<&str> = a
        .packages
        .iter()
        .filter_map(|p| kind.sbom_package(a, p))
        .flat_map(|sp| sp.files.into_iter().map(|(l, _)| l.path))
        .collect();
    let rest = a
        .layers
        .iter()
        .filter(move |l| !claimed.contains(l.path))
        .map(move |l| file_item(d, a, l));
    let packages = a.packages.iter().filter_map(move |p| {
        let sp = kind.sbom_package(a, p)?;
        let mut it = Item::new(
            format!("{}#{}", a.reference, sp.id),
            Role::Library,
            p.name.clone(),
            sp.purl,
        );
        it.sha256 = sp.sha256;
        it.properties.extend(sp.properties);
        it.version = Some(p.version.clone());
        it.properties
            .push(("airlock:oci:reference".into(), a.reference.clone()));
        for (l, file_purl) in sp.files {
            let mut f = file_item(d, a, l);
            if let Some(purl) = file_purl {
                f.purl = purl;
            }
            it.children.push(f);
        }
        Some(it)
    });
    rest.chain(packages)
}

// ---------------------------------------------------------------------------
// CycloneDX 1.6
// ---------------------------------------------------------------------------

// The documents are written with every object's keys sorted (bytewise, as
// a `serde_json::Map` orders them), straight from these structs: their
// fields are declared in that order. `components` and the like are
// [`Stream`]s, made afresh item by item each time the document is written.

/// A JSON array written from the iterator `F` makes: its elements are never
/// all in memory at once. `F` is called once per rendering.
struct Stream<F>(F);

impl<F, I> Serialize for Stream<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom<C: Serialize> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    components: C,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference>,
    metadata: CdxMetadata,
    serial_number: String,
    spec_version: &'static str,
    version: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CdxMetadata {
    component: Component,
    timestamp: String,
    tools: Tools,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(rename = "mime-type", skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_card: Option<ModelCard>,
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct Property {
    name: String,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalReference {
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelCard {
    #[serde(skip_serializing_if = "Option::is_none")]
    model_parameters: Option<ModelParameters>,
    properties: Vec<Property>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelParameters {
    model_architecture: String,
}

fn props(p: &[(String, String)]) -> Vec<Property> {
    p.iter()
        .map(|(n, v)| Property {
            name: n.clone(),
            value: v.clone(),
        })
        .collect()
}

fn sha256_hash(d: &Sha256Digest) -> Hash {
    Hash {
        alg: "SHA-256",
        content: d.hex(),
    }
}

fn component(it: &Item) -> Component {
    Component {
        kind: match it.role {
            Role::Model => "machine-learning-model",
            Role::Library => "library",
            Role::File | Role::Sbom => "file",
            Role::Container => "container",
        },
        bom_ref: Some(it.bom_ref.clone()),
        mime_type: it.media_type.clone().filter(|m| mime_ok(m)),
        name: it.name.clone(),
        version: it.version.clone(),
        description: it.description.clone(),
        hashes: it.sha256.iter().map(sha256_hash).collect(),
        purl: Some(it.purl.clone()),
        external_references: it
            .external_refs
            .iter()
            .map(|(kind, url, comment)| ExternalReference {
                kind,
                url: url.clone(),
                comment: comment.clone(),
                hashes: Vec::new(),
            })
            .collect(),
        model_card: (it.role == Role::Model).then(|| ModelCard {
            model_parameters: it.architecture.clone().map(|a| ModelParameters {
                model_architecture: a,
            }),
            properties: props(&it.model_card),
        }),
        properties: props(&it.properties),
        components: it.children.iter().map(component).collect(),
    }
}

/// CycloneDX's `mime-type` pattern.
fn mime_ok(m: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-+.".contains(&b))
    };
    m.split_once('/').is_some_and(|(a, b)| part(a) && part(b))
}

/// `airlock 0.1.0` → ("airlock", "0.1.0").
fn tool(d: &Description) -> (String, Option<String>) {
    match d.generator.split_once(' ') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (d.generator.clone(), None),
    }
}

/// What the documents say about their subject and its id: `id` is `None`
/// in the stored documents, which cannot contain it.
fn subject_note(d: &Description, id: Option<&Sha256Digest>) -> String {
    match id {
        None => format!(
            "airlock bundle {} {}. Its id (the sha256 of its tagmanifest-sha256.txt) cannot be written inside the bundle; `airlock sbom` adds it as this subject's SHA-256 hash.",
            d.name, d.version
        ),
        Some(id) => format!(
            "airlock bundle {} {}, id sha256:{} (the sha256 of its tagmanifest-sha256.txt).",
            d.name,
            d.version,
            id.hex()
        ),
    }
}

/// The CycloneDX subject's description: the bundle's own, then the note.
fn subject_description(d: &Description, id: Option<&Sha256Digest>) -> String {
    match &d.description {
        Some(desc) => format!("{desc}. {}", subject_note(d, id)),
        None => subject_note(d, id),
    }
}

// ---------------------------------------------------------------------------
// SPDX 2.3
// ---------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxDocument<P: Serialize, R: Serialize> {
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    comment: String,
    creation_info: CreationInfo,
    data_license: &'static str,
    document_describes: Vec<String>,
    document_namespace: String,
    name: String,
    packages: P,
    relationships: R,
    spdx_version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    download_location: String,
    external_refs: Vec<ExternalRef>,
    files_analyzed: bool,
    license_concluded: &'static str,
    license_declared: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_locator: String,
    reference_type: &'static str,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    related_spdx_element: String,
    relationship_type: &'static str,
    spdx_element_id: String,
}

/// The CycloneDX document for `d`, its serial number empty; its components
/// are made item by item as it is written.
fn cdx_bom(d: &Description) -> Bom<impl Serialize + '_> {
    let (tool_name, tool_version) = tool(d);
    let subject = Component {
        kind: "file",
        bom_ref: Some("bundle".into()),
        mime_type: None,
        name: d.name.clone(),
        version: Some(d.version.clone()),
        description: Some(subject_description(d, None)),
        hashes: Vec::new(),
        purl: Some(purl("generic", &[d.name.as_str()], Some(&d.version), &[])),
        external_references: Vec::new(),
        model_card: None,
        properties: props(&[
            ("airlock:bundle:created".into(), d.created.clone()),
            (
                "airlock:bundle:pickle".into(),
                serde_json::to_value(d.pickle)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
        ]),
        components: Vec::new(),
    };
    let external_references = carried(d)
        .into_iter()
        .map(|c| ExternalReference {
            kind: "bom",
            comment: Some(format!(
                "SBOM carried in this bundle ({}): OCI artifact {}; `airlock export` writes it to {}",
                c.media_type, c.reference, c.export_path
            )),
            url: c.export_path,
            hashes: vec![sha256_hash(&c.digest)],
        })
        .collect();
    Bom {
        schema: CDX_SCHEMA,
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: String::new(),
        version: 1,
        metadata: CdxMetadata {
            timestamp: d.created.clone(),
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    bom_ref: None,
                    mime_type: None,
                    name: tool_name,
                    version: tool_version,
                    description: None,
                    hashes: Vec::new(),
                    purl: None,
                    external_references: Vec::new(),
                    model_card: None,
                    properties: Vec::new(),
                    components: Vec::new(),
                }],
            },
            component: subject,
        },
        components: Stream(move || items(d).map(|it| component(&it))),
        external_references,
    }
}

/// Visits `it` and its children in document order, numbering each as SPDX
/// does (`SPDXRef-KIND-N`, N counting from 1 over the whole document):
/// `visit(item, parent's id, id)`.
fn spdx_walk(it: &Item, parent: &str, n: &mut usize, visit: &mut dyn FnMut(&Item, &str, &str)) {
    *n += 1;
    let kind = match it.role {
        Role::Model => "Model",
        Role::Library => "Package",
        Role::File => "File",
        Role::Sbom => "Sbom",
        Role::Container => "Container",
    };
    let id = format!("SPDXRef-{kind}-{n}");
    visit(it, parent, &id);
    for c in &it.children {
        spdx_walk(c, &id, n, visit);
    }
}

/// Every item (children included) in document order, as `f` makes it of
/// the item, its parent's SPDX id and its own; made one top-level item at a
/// time.
fn spdx_each<'a, T: 'a>(
    d: &'a Description,
    f: impl Fn(&Item, &str, &str) -> T + Copy + 'a,
) -> impl Iterator<Item = T> + 'a {
    let mut n = 0usize;
    items(d).flat_map(move |it| {
        let mut out = Vec::new();
        spdx_walk(&it, SPDX_BUNDLE, &mut n, &mut |it, parent, id| {
            out.push(f(it, parent, id))
        });
        out
    })
}

fn spdx_package(it: &Item, id: &str) -> SpdxPackage {
    let mut notes: Vec<String> = it
        .properties
        .iter()
        .chain(&it.model_card)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(m) = &it.media_type {
        notes.insert(0, format!("mediaType={m}"));
    }
    SpdxPackage {
        name: it.name.clone(),
        spdx_id: id.to_string(),
        version_info: it.version.clone(),
        download_location: it.download.clone().unwrap_or_else(|| NOASSERTION.into()),
        files_analyzed: false,
        checksums: it
            .sha256
            .iter()
            .map(|d| Checksum {
                algorithm: "SHA256",
                checksum_value: d.hex(),
            })
            .collect(),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        external_refs: vec![purl_ref(it.purl.clone())],
        primary_package_purpose: Some(match it.role {
            Role::Model => "OTHER",
            Role::Library => "LIBRARY",
            Role::File | Role::Sbom => "FILE",
            Role::Container => "CONTAINER",
        }),
        description: it.description.clone().or_else(|| {
            (it.role == Role::Model).then(|| format!("Machine-learning model {}", it.name))
        }),
        comment: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// The package standing for the bundle.
fn spdx_subject(d: &Description) -> SpdxPackage {
    SpdxPackage {
        name: d.name.clone(),
        spdx_id: SPDX_BUNDLE.into(),
        version_info: Some(d.version.clone()),
        download_location: NOASSERTION.into(),
        files_analyzed: false,
        checksums: Vec::new(),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        copyright_text: NOASSERTION,
        external_refs: vec![purl_ref(purl(
            "generic",
            &[d.name.as_str()],
            Some(&d.version),
            &[],
        ))],
        primary_package_purpose: Some("ARCHIVE"),
        description: d.description.clone(),
        comment: Some(subject_note(d, None)),
    }
}

/// The SPDX document for `d`, its namespace empty; its packages and
/// relationships are made item by item as it is written.
fn spdx_doc(d: &Description) -> SpdxDocument<impl Serialize + '_, impl Serialize + '_> {
    let (tool_name, tool_version) = tool(d);
    let carried = carried(d);
    // The carried SBOMs' SPDX ids, for their relationships to the bundle.
    let mut ids: HashMap<String, String> = HashMap::new();
    if !carried.is_empty() {
        for (bom_ref, id) in spdx_each(d, |it, _, id| {
            (it.role == Role::Sbom).then(|| (it.bom_ref.clone(), id.to_string()))
        })
        .flatten()
        {
            ids.insert(bom_ref, id);
        }
    }
    let carried_rels: Vec<Relationship> = carried
        .iter()
        .map(|c| Relationship {
            spdx_element_id: ids[&c.bom_ref].clone(),
            relationship_type: "OTHER",
            related_spdx_element: SPDX_BUNDLE.into(),
            comment: Some(format!(
                "an SBOM made elsewhere ({}), carried in this bundle as OCI artifact {}; it describes part of the bundle's content; `airlock export` writes it to {}",
                c.media_type, c.reference, c.export_path
            )),
        })
        .collect();
    let packages = Stream(move || {
        std::iter::once(spdx_subject(d)).chain(spdx_each(d, |it, _, id| spdx_package(it, id)))
    });
    let relationships = Stream(move || {
        std::iter::once(Relationship {
            spdx_element_id: "SPDXRef-DOCUMENT".into(),
            relationship_type: "DESCRIBES",
            related_spdx_element: SPDX_BUNDLE.into(),
            comment: None,
        })
        .chain(spdx_each(d, |_, parent, id| Relationship {
            spdx_element_id: parent.to_string(),
            relationship_type: "CONTAINS",
            related_spdx_element: id.to_string(),
            comment: None,
        }))
        .chain(carried_rels.clone())
    });
    SpdxDocument {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: d.stem(),
        document_namespace: String::new(),
        creation_info: CreationInfo {
            created: d.created.clone(),
            creators: vec![format!(
                "Tool: {tool_name}{}",
                tool_version.map(|v| format!("-{v}")).unwrap_or_default()
            )],
        },
        comment: format!(
            "SBOM of airlock bundle {} {}; every payload item is a package with its sha256.",
            d.name, d.version
        ),
        document_describes: vec![SPDX_BUNDLE.into()],
        packages,
        relationships,
    }
}

fn purl_ref(locator: String) -> ExternalRef {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: locator,
    }
}

// ---------------------------------------------------------------------------
// Rendering, serial numbers, the derived document
// ---------------------------------------------------------------------------

/// An RFC 9562 version-8 UUID from a sha256: its first 16 bytes with the
/// version and variant bits set (the name-based construction of UUIDv5,
/// with SHA-256 in place of SHA-1).
pub fn uuid_from(d: &Sha256Digest) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    pretty_to(v, &mut out).expect("writing to memory");
    out
}

/// Renders `v` as [`pretty`] does, into `w`: a large document is never held
/// in memory as text.
fn pretty_to<T: Serialize + ?Sized>(v: &T, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, v)?;
    w.write_all(b"\n")
}

/// Sets the serial number (CycloneDX) or document namespace (SPDX) from the
/// sha256 of the document with that field empty, and renders it.
fn seal(format: SbomFormat, v: Value) -> Vec<u8> {
    pretty(&sealed(format, v))
}

fn sealed(format: SbomFormat, mut v: Value) -> Value {
    use sha2::Digest as _;
    let (field, domain) = match format {
        SbomFormat::Cyclonedx => ("serialNumber", "airlock cyclonedx serial\n"),
        SbomFormat::Spdx => ("documentNamespace", "airlock spdx namespace\n"),
    };
    v[field] = Value::String(String::new());
    let mut hasher = sha2::Sha256::new();
    hasher.update(domain.as_bytes());
    pretty_to(
        &v,
        &mut crate::digest::HashingWriter::new(std::io::sink(), &mut hasher),
    )
    .expect("writing to a hasher");
    let uuid = uuid_from(&Sha256Digest::of_raw(hasher.finalize().into()));
    v[field] = Value::String(match format {
        SbomFormat::Cyclonedx => format!("urn:uuid:{uuid}"),
        SbomFormat::Spdx => {
            let name = v["name"].as_str().unwrap_or("bundle").to_string();
            format!(
                "https://spdx.org/spdxdocs/airlock/{}-{uuid}",
                pct(&name, b"")
            )
        }
    });
    v
}

/// The domain the seal's sha256 starts with, and the top-level field it
/// fills, as the document with that field empty renders it: pretty-printed
/// JSON puts a raw newline only between tokens (strings escape theirs) and
/// indents a top-level key by two spaces, deeper ones by more, so this
/// occurs exactly once in the document.
fn seal_field(format: SbomFormat) -> (&'static str, &'static [u8]) {
    match format {
        SbomFormat::Cyclonedx => ("airlock cyclonedx serial\n", b"\n  \"serialNumber\": \"\""),
        SbomFormat::Spdx => (
            "airlock spdx namespace\n",
            b"\n  \"documentNamespace\": \"\"",
        ),
    }
}

/// Writes the document `pack` stores for `d` (whose generated SBOM
/// artifacts, if any, are left out) with its serial number (CycloneDX) or
/// namespace (SPDX) empty, item by item, into `w`; returns that field's
/// value, from the version-8 UUID of the sha256 of what was written (after
/// the domain). Never held in memory, as text or as a tree.
fn render_unsealed(
    d: &Description,
    format: SbomFormat,
    w: &mut dyn std::io::Write,
) -> std::io::Result<String> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(seal_field(format).0.as_bytes());
    {
        let mut w = std::io::BufWriter::with_capacity(
            1 << 16,
            crate::digest::HashingWriter::new(w, &mut hasher),
        );
        match format {
            SbomFormat::Cyclonedx => pretty_to(&cdx_bom(d), &mut w)?,
            SbomFormat::Spdx => pretty_to(&spdx_doc(d), &mut w)?,
        }
        std::io::Write::flush(&mut w)?;
    }
    let uuid = uuid_from(&Sha256Digest::of_raw(hasher.finalize().into()));
    Ok(match format {
        SbomFormat::Cyclonedx => format!("urn:uuid:{uuid}"),
        SbomFormat::Spdx => format!(
            "https://spdx.org/spdxdocs/airlock/{}-{uuid}",
            pct(&d.stem(), b"")
        ),
    })
}

/// Copies the document `render_unsealed` wrote (read from `unsealed`) into
/// `out` with `value` in its empty seal field: the bytes rendering it again
/// with that value would give, without rendering it again.
fn splice_seal(
    format: SbomFormat,
    unsealed: &mut dyn std::io::Read,
    value: &str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let field = seal_field(format).1;
    // The field's key and `: `, without the empty string.
    let key = field.len() - 2;
    let quoted = serde_json::to_string(value)?;
    let mut found = false;
    // Bytes read and not written yet: a field may straddle two reads.
    let mut data: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match unsealed.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if found {
            out.write_all(&buf[..n])?;
            continue;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(field.len()).position(|w| w == field) {
            out.write_all(&data[..at + key])?;
            out.write_all(quoted.as_bytes())?;
            out.write_all(&data[at + field.len()..])?;
            data.clear();
            found = true;
        } else {
            let keep = data.len().min(field.len() - 1);
            out.write_all(&data[..data.len() - keep])?;
            data.drain(..data.len() - keep);
        }
    }
    if !found {
        return Err(std::io::Error::other(format!(
            "the {} SBOM has no empty {} to seal",
            format.label(),
            String::from_utf8_lossy(&field[4..key - 3])
        )));
    }
    Ok(())
}

/// The document `pack` stores for `d`, in memory (`airlock sbom`).
pub fn generate(d: &Description, format: SbomFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let value = render_unsealed(d, format, &mut out).expect("writing to memory");
    // The seal put in place (one move of what follows it, no second copy).
    let field = seal_field(format).1;
    let at = out
        .windows(field.len())
        .position(|w| w == field)
        .expect("a rendered document has its empty seal field");
    let quoted = serde_json::to_string(&value).expect("a string");
    out.splice(at + field.len() - 2..at + field.len(), quoted.into_bytes());
    out
}

/// The stored document with the bundle id added as its subject's hash, and
/// a serial number / namespace of its own.
pub fn with_bundle_id(
    format: SbomFormat,
    stored: &[u8],
    d: &Description,
    id: &Sha256Digest,
) -> Result<Vec<u8>> {
    let bad = |what: &str| {
        single(
            format!("{} SBOM", format.label()),
            format!("not an SBOM airlock generated: {what}"),
        )
    };
    let mut v: Value = serde_json::from_slice(stored).map_err(|e| bad(&e.to_string()))?;
    match format {
        SbomFormat::Cyclonedx => {
            let c = v
                .pointer_mut("/metadata/component")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| bad("no metadata.component"))?;
            c.insert(
                "hashes".into(),
                serde_json::json!([{"alg": "SHA-256", "content": id.hex()}]),
            );
            let props = c
                .entry("properties")
                .or_insert_with(|| Value::Array(Vec::new()));
            props
                .as_array_mut()
                .ok_or_else(|| bad("metadata.component.properties is not a list"))?
                .push(serde_json::json!({"name": "airlock:bundle:id", "value": id.oci()}));
            c.insert(
                "description".into(),
                Value::String(subject_description(d, Some(id))),
            );
        }
        SbomFormat::Spdx => {
            let p = v
                .get_mut("packages")
                .and_then(Value::as_array_mut)
                .and_then(|ps| ps.iter_mut().find(|p| p["SPDXID"] == SPDX_BUNDLE))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| bad("no package SPDXRef-Bundle"))?;
            p.insert(
                "checksums".into(),
                serde_json::json!([{"algorithm": "SHA256", "checksumValue": id.hex()}]),
            );
            p.insert("comment".into(), Value::String(subject_note(d, Some(id))));
        }
    }
    Ok(seal(format, v))
}

// ---------------------------------------------------------------------------
// Pack: storing the generated documents
// ---------------------------------------------------------------------------

/// Generates both documents for `d`, writes their blobs (and the empty
/// config) into `blobs_dir`, appends their artifacts to `d` and returns
/// their `index.json` entries.
pub fn add_generated(d: &mut Description, blobs_dir: &Path) -> Result<Vec<Descriptor>> {
    d.artifacts.retain(|a| !is_generated(a));
    let write = |bytes: &[u8]| -> Result<Blob> {
        let digest = Sha256Digest::of(bytes);
        fs_err::write(blobs_dir.join(digest.hex()), bytes)?;
        Ok(Blob {
            media_type: String::new(),
            digest,
            size: bytes.len() as u64,
        })
    };
    // Each document rendered item by item straight into a file
    // with its seal field empty (hashed on the way for the seal), then
    // copied into its blob file with the seal in place (hashed on the way
    // for its digest): rendered once, never held in memory, as text or as a
    // tree.
    let write_doc = |format: SbomFormat, d: &Description| -> Result<Blob> {
        use sha2::Digest as _;
        let unsealed = blobs_dir.join(format!(".sbom-{}.unsealed", format.label()));
        let value = render_unsealed(d, format, &mut fs_err::File::create(&unsealed)?)?;
        let tmp = blobs_dir.join(format!(".sbom-{}", format.label()));
        let mut hasher = sha2::Sha256::new();
        let mut file = std::io::BufWriter::with_capacity(
            1 << 16,
            crate::digest::HashingWriter::new(fs_err::File::create(&tmp)?, &mut hasher),
        );
        splice_seal(
            format,
            &mut fs_err::File::open(&unsealed)?,
            &value,
            &mut file,
        )?;
        std::io::Write::flush(&mut file)?;
        drop(file);
        fs_err::remove_file(&unsealed)?;
        let size = fs_err::metadata(&tmp)?.len();
        let digest = Sha256Digest::of_raw(hasher.finalize().into());
        fs_err::rename(&tmp, blobs_dir.join(digest.hex()))?;
        Ok(Blob {
            media_type: String::new(),
            digest,
            size,
        })
    };
    // The two documents at once, one on each core (each streams: no more
    // memory for it).
    let (cdx, spdx) = rayon::join(
        || write_doc(SbomFormat::Cyclonedx, d),
        || write_doc(SbomFormat::Spdx, d),
    );
    let docs = [(SbomFormat::Cyclonedx, cdx?), (SbomFormat::Spdx, spdx?)];
    let mut entries = Vec::new();
    for (format, doc) in docs {
        let layer = Layer {
            media_type: format.media_type().into(),
            digest: doc.digest,
            size: doc.size,
            path: format.file_name(d),
            mode: MODE_FILE,
        };
        let config = Blob {
            media_type: MT_EMPTY.into(),
            ..write(EMPTY_JSON)?
        };
        let manifest_bytes = sbom_manifest(format.media_type(), &config, layer.view())?;
        let manifest = Blob {
            media_type: MT_MANIFEST.into(),
            ..write(&manifest_bytes)?
        };
        let mut entry = Descriptor::new(
            MediaType::ImageManifest,
            manifest.size,
            crate::bundle::oci_digest(&manifest.digest),
        );
        entry.set_artifact_type(Some(MediaType::Other(format.media_type().into())));
        entry.set_annotations(Some(HashMap::from([(
            REF_NAME.to_string(),
            format.reference().to_string(),
        )])));
        entries.push(entry);
        d.artifacts.push(Artifact {
            kind: ArtifactKind::Sbom,
            name: format.label().to_string(),
            reference: format.reference().into(),
            artifact_type: format.media_type().into(),
            manifest,
            config,
            layers: vec![layer].into(),
            packages: Vec::new(),
            source: None,
            blobs: Vec::new(),
        });
    }
    Ok(entries)
}

/// An OCI 1.1 artifact manifest: `artifactType`, the empty config, one layer
/// titled with its file name.
fn sbom_manifest(artifact_type: &str, config: &Blob, layer: LayerRef<'_>) -> Result<Vec<u8>> {
    let config_desc = Descriptor::new(
        MediaType::from(config.media_type.as_str()),
        config.size,
        crate::bundle::oci_digest(&config.digest),
    );
    let mut layer_desc = Descriptor::new(
        MediaType::Other(layer.media_type.to_string()),
        layer.size,
        crate::bundle::oci_digest(layer.digest),
    );
    layer_desc.set_annotations(Some(HashMap::from([(
        TITLE.to_string(),
        layer.path.to_owned(),
    )])));
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(artifact_type.to_string()))
        .config(config_desc)
        .layers(vec![layer_desc])
        .build()
        .map_err(|e| Error::Usage(format!("cannot build the SBOM's OCI manifest: {e}")))?;
    Ok(canonical_json(&manifest))
}

// ---------------------------------------------------------------------------
// `airlock sbom`
// ---------------------------------------------------------------------------

/// What `airlock sbom` produced.
#[derive(Debug, Clone)]
pub struct Document {
    pub format: SbomFormat,
    /// The bundle id.
    pub id: String,
    /// Whether `bytes` are the stored document (else the derived one, with the id).
    pub stored: bool,
    /// sha256 of the stored document, as airlock.json declares it.
    pub stored_sha256: String,
    /// The document.
    pub bytes: Vec<u8>,
}

/// The bundle's SBOM in `format`: the stored document, or (`stored` false)
/// the derived one naming the bundle by its id. Reads the tag files; the
/// payload only when the stored document is not what this airlock would
/// generate from the description (a bundle packed by another version).
/// Signatures are not checked here: `airlock verify` does that.
pub fn document(path: &Path, format: SbomFormat, stored: bool) -> Result<Document> {
    let form = Form::open(path)?;
    let tags = crate::source::read_tags(&form)?;
    let tm = tags.files.get(TAGMANIFEST).ok_or_else(|| {
        single(
            path.display().to_string(),
            "no tagmanifest-sha256.txt: not an airlock bundle",
        )
    })?;
    let id = Sha256Digest::of(tm);
    let desc_bytes = tags.files.get(DESCRIPTION).ok_or_else(|| {
        single(
            path.display().to_string(),
            "no airlock.json: not an airlock bundle",
        )
    })?;
    let listed =
        parse_manifest(&String::from_utf8_lossy(tm)).map_err(|e| single(TAGMANIFEST, e))?;
    let actual = Sha256Digest::of(desc_bytes);
    if listed.get(DESCRIPTION) != Some(&actual) {
        return Err(single(
            DESCRIPTION,
            format!("does not match tagmanifest-sha256.txt (file has sha256 {actual}); the bundle is damaged or tampered with: run `airlock verify`"),
        ));
    }
    let d: Description = serde_json::from_slice(desc_bytes)
        .map_err(|e| single(DESCRIPTION, format!("not a valid bundle description: {e}")))?;
    let a = d
        .artifacts
        .iter()
        .find(|a| a.kind == ArtifactKind::Sbom && a.reference == format.reference())
        .ok_or_else(|| {
            single(
                DESCRIPTION,
                format!(
                    "the bundle has no {} SBOM (no artifact {}); it was packed by an airlock without SBOMs: pack it again",
                    format.label(),
                    format.reference()
                ),
            )
        })?;
    let only = (a.layers.len() == 1).then(|| a.layers.at(0));
    let layer = match only {
        Some(l) if l.media_type == format.media_type() => l,
        _ => {
            return Err(single(
                DESCRIPTION,
                format!(
                    "artifact {} is not one {} layer",
                    a.reference,
                    format.media_type()
                ),
            ))
        }
    };
    let bytes = if stored {
        // Exactly what the bundle holds.
        read_blob(&form, layer)?
    } else {
        // What this airlock generates from the description is the stored
        // document when their digests agree (no payload read: a tar.zst is
        // not decompressed for it); else (another version packed the
        // bundle) the stored document is read.
        let regenerated = generate(&d, format);
        let stored_bytes = if Sha256Digest::of(&regenerated) == *layer.digest {
            regenerated
        } else {
            read_blob(&form, layer)?
        };
        with_bundle_id(format, &stored_bytes, &d, &id)?
    };
    Ok(Document {
        format,
        id: id.hex(),
        stored,
        stored_sha256: layer.digest.hex(),
        bytes,
    })
}

/// Reads one payload blob of a bundle in any form, bounded by its declared
/// size and checked against its digest.
fn read_blob(form: &Form, layer: LayerRef<'_>) -> Result<Vec<u8>> {
    let path = blob_path(layer.digest);
    if layer.size > MAX_TAG_FILE {
        return Err(single(
            &path,
            format!("{} bytes: too large to read into memory", layer.size),
        ));
    }
    let missing = || {
        single(
            &path,
            "missing from the bundle (a volume not given? give the folder holding every volume)",
        )
    };
    let mut bytes = Vec::new();
    match form {
        Form::Dir(dir) => {
            let p = dir.join(&path);
            let md = fs_err::symlink_metadata(&p).map_err(|_| missing())?;
            if !md.is_file() {
                return Err(single(&path, "not a regular file"));
            }
            copy_hashed(
                &mut fs_err::File::open(&p)?,
                &mut bytes,
                Some(layer.size),
                &|_| {},
            )?;
        }
        Form::Tar { path: file, .. } => {
            if !find_in_tar(file, &path, layer.size, &mut bytes, &mut Vec::new())? {
                return Err(missing());
            }
        }
        Form::Volumes { files } => {
            // Whole, or split into `.partNNN` pieces across volumes in order.
            let mut parts: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
            let mut total = 0u64;
            for f in files {
                let mut found = Vec::new();
                if find_in_tar(f, &path, layer.size, &mut bytes, &mut found)? {
                    break;
                }
                for (n, b) in found {
                    total += b.len() as u64;
                    if total > layer.size {
                        return Err(single(
                            &path,
                            format!(
                                "its parts exceed the {} bytes airlock.json declares",
                                layer.size
                            ),
                        ));
                    }
                    parts.insert(n, b);
                }
            }
            if bytes.is_empty() && !parts.is_empty() {
                let expected: Vec<u32> = (1..=parts.len() as u32).collect();
                if parts.keys().copied().collect::<Vec<_>>() != expected {
                    return Err(missing());
                }
                for (_, b) in parts {
                    bytes.extend(b);
                }
            }
            if (bytes.len() as u64) < layer.size {
                // Nothing, or the first parts only: a volume was not given.
                return Err(missing());
            }
        }
    }
    let actual = Sha256Digest::of(&bytes);
    if bytes.len() as u64 != layer.size || actual != *layer.digest {
        return Err(single(
            &path,
            format!(
                "sha256 mismatch: airlock.json declares {} ({} bytes), the bundle holds {actual} ({} bytes); the bundle is damaged or tampered with",
                layer.digest,
                layer.size,
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Streams a tar (zstd or not) for the entry `want` (into `whole`) or its
/// `.partNNN` pieces (into `parts`), through the one reader (`source::walk_tar`),
/// so every rule on entries holds here too. Reads at most `limit + 1` bytes of
/// any one entry. Returns whether the whole entry was found.
fn find_in_tar(
    file: &Path,
    want: &str,
    limit: u64,
    whole: &mut Vec<u8>,
    parts: &mut Vec<(u32, Vec<u8>)>,
) -> Result<bool> {
    let name = file.display().to_string();
    let volume = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(crate::bundle::parse_volume_name)
        .is_some();
    let mut found = false;
    let mut report = crate::error::Report::default();
    crate::source::walk_tar(file, volume, &mut report, &mut |_, item| {
        let Entry::Payload { path: p, read, .. } = item else {
            return Ok(Flow::Continue);
        };
        let part = if p == want {
            0
        } else {
            match p
                .strip_prefix(want)
                .and_then(|r| r.strip_prefix(".part"))
                .and_then(|n| n.parse::<u32>().ok())
            {
                Some(n) if n > 0 => n,
                _ => return Ok(Flow::Continue),
            }
        };
        let mut buf = Vec::new();
        copy_hashed(read, &mut buf, Some(limit), &|_| {})?;
        if buf.len() as u64 > limit {
            return Err(single(
                format!("{name}: {p}"),
                format!("larger than the {limit} bytes airlock.json declares"),
            ));
        }
        if part == 0 {
            *whole = buf;
            found = true;
            return Ok(Flow::Stop);
        }
        parts.push((part, buf));
        Ok(Flow::Continue)
    })?;
    report.into_result()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, bytes)` entries.
    fn tar_of(path: &Path, entries: &[(String, &[u8])]) {
        let mut b = tar::Builder::new(Vec::new());
        for (p, bytes) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, p, *bytes).unwrap();
        }
        std::fs::write(path, b.into_inner().unwrap()).unwrap();
    }

    #[test]
    fn reads_a_blob_split_across_volumes_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let doc = b"{\"bomFormat\":\"CycloneDX\"} and the rest of the document";
        let digest = Sha256Digest::of(doc);
        let path = blob_path(&digest);
        let (a, b) = doc.split_at(20);
        let v1 = dir.path().join("x-1.0.0.vol001.tar");
        let v2 = dir.path().join("x-1.0.0.vol002.tar");
        tar_of(
            &v1,
            &[
                ("bagit.txt".into(), b"tag".as_slice()),
                (format!("{path}.part001"), a),
            ],
        );
        tar_of(&v2, &[(format!("{path}.part002"), b)]);
        let layer = Layer {
            media_type: CYCLONEDX_JSON.into(),
            digest,
            size: doc.len() as u64,
            path: "x.cdx.json".into(),
            mode: MODE_FILE,
        };
        let both = Form::Volumes {
            files: vec![v1.clone(), v2.clone()],
        };
        assert_eq!(read_blob(&both, layer.view()).unwrap(), doc);
        // One volume alone lacks a part: named, not guessed.
        let alone = Form::Volumes { files: vec![v1] };
        let e = read_blob(&alone, layer.view()).unwrap_err().to_string();
        assert!(e.contains(&path) && e.contains("missing"), "{e}");
        // Whole in a plain tar, found by seeking past other entries.
        let t = dir.path().join("x.tar");
        tar_of(
            &t,
            &[
                ("data/blobs/sha256/other".into(), [7u8; 5000].as_slice()),
                (path.clone(), doc.as_slice()),
            ],
        );
        let tar_form = Form::Tar {
            path: t.clone(),
            zstd: false,
        };
        assert_eq!(read_blob(&tar_form, layer.view()).unwrap(), doc);
        // Other bytes under the same name: a digest mismatch.
        tar_of(&t, &[(path.clone(), b"tampered".as_slice())]);
        let wrong = Layer {
            size: 8,
            ..layer.clone()
        };
        let e = read_blob(&tar_form, wrong.view()).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("sha256 mismatch"), "{e}");
    }

    fn golden_description() -> (std::path::PathBuf, Description) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sbom");
        let d = serde_json::from_slice(&std::fs::read(dir.join("airlock.json")).unwrap()).unwrap();
        (dir, d)
    }

    /// The golden files were written by the renderer that built each
    /// document as a `serde_json::Value` tree; the streaming one must give
    /// the same bytes for a description with every kind of item (files, an
    /// odd media type, models with and without facts, a Hub origin and a
    /// signature, python and cargo packages, an image, a carried SBOM).
    #[test]
    fn documents_are_byte_identical_to_the_golden_files() {
        let (dir, d) = golden_description();
        for (format, file) in [
            (SbomFormat::Cyclonedx, "golden.cdx.json"),
            (SbomFormat::Spdx, "golden.spdx.json"),
        ] {
            let golden = std::fs::read_to_string(dir.join(file)).unwrap();
            let out = String::from_utf8(generate(&d, format)).unwrap();
            assert!(out == golden, "{file} differs:\n{out}");
        }
    }

    /// The seal is put in place wherever the reads of the unsealed document
    /// cut it (the field straddling two reads, or read a byte at a time),
    /// and a document without the empty field is refused, not copied.
    #[test]
    fn seal_is_spliced_across_any_read_boundary() {
        struct Pieces<'a>(&'a [u8], usize);
        impl std::io::Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(self.0.len()).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let (_, d) = golden_description();
        for format in [SbomFormat::Cyclonedx, SbomFormat::Spdx] {
            let mut unsealed = Vec::new();
            let value = render_unsealed(&d, format, &mut unsealed).unwrap();
            let whole = generate(&d, format);
            let field = seal_field(format).1;
            let at = unsealed
                .windows(field.len())
                .position(|w| w == field)
                .unwrap();
            for piece in [1, 2, 7, at + 3, at + field.len() - 1, 1 << 20] {
                let mut out = Vec::new();
                splice_seal(format, &mut Pieces(&unsealed, piece), &value, &mut out).unwrap();
                assert!(out == whole, "{format:?}, reads of {piece} bytes");
            }
            let e = splice_seal(format, &mut Pieces(&whole, 4096), &value, &mut Vec::new())
                .unwrap_err();
            assert!(e.to_string().contains("no empty"), "{e}");
        }
    }

    /// What pack stores (written into the blob file as it is rendered) is
    /// what `generate` gives, under the digest and size declared.
    #[test]
    fn stored_blobs_are_the_generated_documents() {
        let (_, mut d) = golden_description();
        let blobs = tempfile::tempdir().unwrap();
        let original = d.clone();
        add_generated(&mut d, blobs.path()).unwrap();
        for format in [SbomFormat::Cyclonedx, SbomFormat::Spdx] {
            let a = d
                .artifacts
                .iter()
                .find(|a| a.reference == format.reference())
                .unwrap();
            let l = a.layers.at(0);
            let stored = std::fs::read(blobs.path().join(l.digest.hex())).unwrap();
            assert_eq!(stored, generate(&original, format));
            assert_eq!(l.size, stored.len() as u64);
            assert_eq!(Sha256Digest::of(&stored), *l.digest);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(blobs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn uuids_have_version_8_and_the_rfc_variant() {
        let u = uuid_from(&Sha256Digest::of(b"x"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(u, uuid_from(&Sha256Digest::of(b"y")));
    }

    #[test]
    fn sniffs_sbom_formats() {
        assert_eq!(
            sniff(br#"{"bomFormat": "CycloneDX", "specVersion": "1.5"}"#),
            Some(CYCLONEDX_JSON)
        );
        assert_eq!(sniff(br#" {"SPDXID":"SPDXRef-DOCUMENT"}"#), Some(SPDX_JSON));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\">"),
            Some(CYCLONEDX_XML)
        );
        assert_eq!(
            sniff(b"# made by hand\nSPDXVersion: SPDX-2.3\n"),
            Some(SPDX_TAG_VALUE)
        );
        assert_eq!(sniff(b"{\"hello\": 1}"), None);
        assert_eq!(sniff(b"just text"), None);
    }

    #[test]
    fn mime_types_follow_cyclonedx_pattern() {
        assert!(mime_ok("application/vnd.cncf.model.weight.v1.raw"));
        assert!(mime_ok("application/vnd.cyclonedx+json"));
        assert!(!mime_ok("Application/X"));
        assert!(!mime_ok("text"));
    }
}
