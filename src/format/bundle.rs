//! Bundle format v1: a BagIt 1.0 bag whose payload `data/` is an OCI image
//! layout, with airlock's description (`airlock.json`), `VERIFY.txt`, and
//! signatures and custody events outside both manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::layers::{LayerRef, Layers};
use crate::digest::Sha256Digest;

pub const BAGIT_TXT: &str = "bagit.txt";
pub const BAG_INFO: &str = "bag-info.txt";
pub const MANIFEST: &str = "manifest-sha256.txt";
pub const TAGMANIFEST: &str = "tagmanifest-sha256.txt";
pub const DESCRIPTION: &str = "airlock.json";
pub const VERIFY_TXT: &str = "VERIFY.txt";
pub const SIGNATURES_DIR: &str = "signatures";
pub const CUSTODY_DIR: &str = "custody";

/// Tag files covered by the tag manifest, in the order they are written.
pub const TAG_FILES: [&str; 5] = [BAGIT_TXT, BAG_INFO, DESCRIPTION, VERIFY_TXT, MANIFEST];

pub const BAGIT_CONTENT: &str = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";

pub const OCI_LAYOUT: &str = "data/oci-layout";
pub const OCI_INDEX: &str = "data/index.json";
pub const BLOBS_PREFIX: &str = "data/blobs/sha256/";
pub const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const TITLE: &str = "org.opencontainers.image.title";
pub const MODEL_FILEPATH: &str = "org.cncf.model.filepath";
pub const FILE_MODE: &str = "dev.airlock.file.mode";

pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_JSON: &[u8] = b"{}";

pub const MODEL_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
pub const MODEL_WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
pub const MODEL_WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
pub const MODEL_DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
pub const MODEL_CODE: &str = "application/vnd.cncf.model.code.v1.raw";

/// Annotations on an image's entry in `data/index.json`, the store's index
/// and exported layouts: the reference it was packed from and its digest.
pub const IMAGE_REFERENCE: &str = "dev.airlock.image.reference";
pub const IMAGE_DIGEST: &str = "dev.airlock.image.digest";

pub const FILES_ARTIFACT: &str = "application/vnd.airlock.files.v1+json";
pub const FILE_LAYER: &str = "application/vnd.airlock.file.v1.raw";

pub const PYTHON_ARTIFACT: &str = "application/vnd.airlock.python.v1+json";
pub const PYTHON_REQUIREMENTS: &str = "application/vnd.airlock.python.requirements.v1.txt";
pub const PYTHON_WHEEL: &str = "application/vnd.airlock.python.wheel.v1.raw";
pub const PYTHON_SDIST: &str = "application/vnd.airlock.python.sdist.v1.raw";
/// A `python:` entry's PEP 751 `pylock.toml`, carried byte for byte.
pub const PYTHON_PYLOCK: &str = "application/vnd.airlock.python.pylock.v1.toml";
pub const CARGO_ARTIFACT: &str = "application/vnd.airlock.cargo.v1+json";
pub const CARGO_LOCK: &str = "application/vnd.airlock.cargo.lock.v1.toml";
pub const CARGO_CHECKSUM: &str = "application/vnd.airlock.cargo.checksum.v1+json";
pub const CARGO_FILE: &str = "application/vnd.airlock.cargo.file.v1.raw";
pub const NPM_ARTIFACT: &str = "application/vnd.airlock.npm.v1+json";
pub const NPM_LOCK: &str = "application/vnd.airlock.npm.lock.v1+json";
pub const NPM_PACKAGE_JSON: &str = "application/vnd.airlock.npm.package.v1+json";
pub const NPM_TARBALL: &str = "application/vnd.airlock.npm.tarball.v1.tar+gzip";
pub const APT_ARTIFACT: &str = "application/vnd.airlock.apt.v1+json";
pub const APT_LOCK: &str = "application/vnd.airlock.apt.lock.v1.txt";
pub const APT_DEB: &str = "application/vnd.airlock.apt.deb.v1.raw";

/// Largest tag file, signature or custody event accepted from a bundle.
pub const MAX_TAG_FILE: u64 = 64 << 20;
/// Bound on one signature or custody event (a DSSE envelope is a few KiB).
pub const MAX_EVIDENCE_FILE: u64 = 1 << 20;
/// Bound on the whole tag area: tag files, signatures, custody events and a
/// volume's map and marker together. Pack refuses to write more.
pub const MAX_TAG_TOTAL: u64 = 192 << 20;
/// Bound on the number of entries in the tag area.
pub const MAX_TAG_ENTRIES: usize = 4096;
/// A volume's signed map of pieces, and its marker (which volume it is).
pub const VOLUME_MAP: &str = "volumes.dsse.json";
pub const VOLUME_MARKER: &str = "volume.json";

/// Which volume of how many a volume file is (`volume.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMarker {
    pub bundle_id: String,
    pub number: u32,
    pub of: u32,
}

/// `name-1.0.0.vol003.tar[.zst]` → Some(("name-1.0.0", 3)).
pub fn parse_volume_name(file: &str) -> Option<(&str, u32)> {
    let base = file
        .strip_suffix(".tar.zst")
        .or_else(|| file.strip_suffix(".tar"))?;
    let (stem, num) = base.rsplit_once(".vol")?;
    (!num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    Some((stem, num.parse().ok()?))
}
/// Largest OCI manifest, index or config blob parsed from a bundle.
pub const MAX_JSON_BLOB: u64 = 32 << 20;
/// Mode bits recorded for executable files.
pub const MODE_EXEC: u32 = 0o755;
pub const MODE_FILE: u32 = 0o644;

/// The bundle's own description (`airlock.json`), covered by the tag manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Description {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created: String,
    pub generator: String,
    pub pickle: PicklePolicy,
    pub artifacts: Vec<Artifact>,
    /// Each model's summary (format, parameter count, precision, dtypes) as
    /// read from its headers at pack time; for the SBOM's model card.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelFacts>,
    /// What pack found inside weight, shard-index and pickle files (formats,
    /// tensor counts, dtypes, pickle imports). The high side re-checks the
    /// files themselves and does not rely on this record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentEntry>,
    /// Set when the bundle is a delta: the blobs declared above but not
    /// listed in manifest-sha256.txt are provided by the high side's store,
    /// as the receipt named here stated it held them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaBase>,
}

/// The receipt a delta bundle was cut against (inside `airlock.json`, so the
/// bundle's signatures cover it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeltaBase {
    /// sha256 of the receipt file, as read.
    pub receipt: Sha256Digest,
    /// The store the receipt describes; absent when the base is an import
    /// receipt (those name no store id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The key id that signed the receipt.
    pub store_key: String,
    /// When the receipt was issued.
    pub time: String,
    /// How many of the declared blobs the bundle leaves out, and their bytes.
    pub omitted: usize,
    pub omitted_size: u64,
}

pub const DESCRIPTION_KIND: &str = "BundleDescription";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Model,
    Files,
    /// Wheels (and sdists) pinned by a hash-checking requirements file.
    Python,
    /// A `cargo vendor` directory and the Cargo.lock that pins it.
    Cargo,
    /// npm package tarballs pinned by a package-lock.json's sha512 integrity.
    Npm,
    /// Debian packages (.deb files) pinned by an `apt-cache show` lock.
    Apt,
    /// An SBOM: one airlock generated (`sbom/cyclonedx`, `sbom/spdx`) or
    /// one carried from the manifest's `sboms:` (`sbom/carried/...`).
    Sbom,
    /// A container image: its own manifest or index, byte for byte, and every
    /// blob it references (`Artifact::blobs`); it has no file layers.
    Image,
}

impl ArtifactKind {
    /// Every kind (a new kind is added here too).
    pub const ALL: [ArtifactKind; 8] = [
        ArtifactKind::Model,
        ArtifactKind::Files,
        ArtifactKind::Python,
        ArtifactKind::Cargo,
        ArtifactKind::Npm,
        ArtifactKind::Apt,
        ArtifactKind::Sbom,
        ArtifactKind::Image,
    ];

    /// The kind as the description writes it (`model`, `python`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::Model => "model",
            ArtifactKind::Files => "files",
            ArtifactKind::Python => "python",
            ArtifactKind::Cargo => "cargo",
            ArtifactKind::Npm => "npm",
            ArtifactKind::Sbom => "sbom",
            ArtifactKind::Image => "image",
            ArtifactKind::Apt => "apt",
        }
    }
}

/// One OCI artifact in the bundle: its manifest, config and layers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Artifact {
    pub kind: ArtifactKind,
    /// Model name, or the file set's path as written in the manifest.
    pub name: String,
    /// `org.opencontainers.image.ref.name` of the artifact in `data/index.json`.
    pub reference: String,
    pub artifact_type: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Layers,
    /// The packages a python or cargo artifact carries (for the SBOM and the
    /// high side's re-check of pins); absent for other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// Images: where the image came from, as the manifest wrote it
    /// (`docker://...`, `oci-layout:...`, `docker-archive:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Images: every blob the manifest or index references other than
    /// itself (child manifests, configs, layers), each once, in the order
    /// first referenced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<Blob>,
}

/// A pinned package: a Python distribution's requirement or a vendored crate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Package {
    /// As the requirements file or Cargo.lock writes it.
    pub name: String,
    pub version: String,
    /// Cargo.lock's `source`; absent for local crates (workspace members and
    /// path dependencies, which are not carried) and for Python packages.
    /// Debian packages: the distribution (`debian`; the purl namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Cargo.lock's `checksum`: the sha256 of the crate's `.crate` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Sha256Digest>,
    /// package-lock.json's `integrity`: the sha512 of an npm tarball
    /// (`sha512-BASE64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// The directory holding the crate's files inside the artifact (`vendor/<dir>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Every sha256 the requirements file pins for the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Sha256Digest>,
    /// The package's distribution files in the artifact, with their sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PackageFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageFile {
    /// The layer's path in the artifact (for Python, the distribution's file name).
    pub path: String,
    pub sha256: Sha256Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Blob {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
}

/// The media types airlock writes into layers: a parsed layer naming one
/// of them borrows the constant (a description has a layer per file).
pub(crate) const LAYER_MEDIA_TYPES: &[&str] = &[
    FILE_LAYER,
    MODEL_WEIGHT,
    MODEL_WEIGHT_CONFIG,
    MODEL_DOC,
    MODEL_CODE,
    PYTHON_REQUIREMENTS,
    PYTHON_WHEEL,
    PYTHON_SDIST,
    PYTHON_PYLOCK,
    CARGO_LOCK,
    CARGO_CHECKSUM,
    CARGO_FILE,
    NPM_LOCK,
    NPM_PACKAGE_JSON,
    NPM_TARBALL,
    APT_LOCK,
    APT_DEB,
];

/// A layer's media type as parsed: one of [`LAYER_MEDIA_TYPES`] borrowed,
/// any other string owned (the checks that judge it are unchanged).
fn interned_media_type<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::borrow::Cow<'static, str>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = std::borrow::Cow<'static, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a media type string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(match LAYER_MEDIA_TYPES.iter().find(|&&c| c == v) {
                Some(&c) => std::borrow::Cow::Borrowed(c),
                None => std::borrow::Cow::Owned(v.to_owned()),
            })
        }
    }
    d.deserialize_str(V)
}

/// A layer is one file: where it goes when exported, and its mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Layer {
    /// Borrowed when it is one of airlock's constants (pack: every file of
    /// a tree has the same; no string per file), also when parsed.
    #[serde(deserialize_with = "interned_media_type")]
    pub media_type: std::borrow::Cow<'static, str>,
    pub digest: Sha256Digest,
    pub size: u64,
    pub path: String,
    pub mode: u32,
}

/// A description's blob references in declaration order, by position: each
/// artifact's manifest, config, layers, then blobs.
struct DeclaredRefs<'d> {
    d: &'d Description,
    /// Where each artifact's references begin, and (last) their count.
    starts: Vec<u32>,
}

impl<'d> DeclaredRefs<'d> {
    fn new(d: &'d Description) -> DeclaredRefs<'d> {
        let mut starts = Vec::with_capacity(d.artifacts.len() + 1);
        let mut n = 0u32;
        for a in &d.artifacts {
            starts.push(n);
            // A description of 2^32 references would not fit in memory.
            n = n.saturating_add((2 + a.layers.len() + a.blobs.len()) as u32);
        }
        starts.push(n);
        DeclaredRefs { d, starts }
    }

    fn len(&self) -> u32 {
        *self.starts.last().expect("one start at least")
    }

    /// Reference `i`: its digest, whether it is an artifact's manifest or
    /// config, its size.
    fn at(&self, i: u32) -> (&'d Sha256Digest, bool, u64) {
        let a = self.starts.partition_point(|&s| s <= i) - 1;
        let art = &self.d.artifacts[a];
        match (i - self.starts[a]) as usize {
            0 => (&art.manifest.digest, true, art.manifest.size),
            1 => (&art.config.digest, true, art.config.size),
            k if k - 2 < art.layers.len() => {
                let l = art.layers.at(k - 2);
                (l.digest, false, l.size)
            }
            k => {
                let b = &art.blobs[k - 2 - art.layers.len()];
                (&b.digest, false, b.size)
            }
        }
    }
}

impl Description {
    pub fn total_size(&self) -> u64 {
        // Each distinct blob once, at the size `blob_refs` gives it (the
        // last manifest or config naming it, else the first layer or blob),
        // from the references' positions sorted by digest rather than a map
        // or a copy of each reference: a file set declares a blob per file,
        // and verify asks while the description and its plans are all held
        // (48-byte records were 9.6 MB at 200k files, its peak; now 3.2 MB).
        // Each position is sorted with its digest's first eight bytes, so
        // that almost every comparison is of two words in the record (16
        // bytes a reference; the full digests are looked up on a tie).
        let refs = DeclaredRefs::new(self);
        let prefix =
            |d: &Sha256Digest| u64::from_be_bytes(d.as_bytes()[..8].try_into().expect("8 bytes"));
        let mut order: Vec<(u64, u32)> =
            (0..refs.len()).map(|i| (prefix(refs.at(i).0), i)).collect();
        order.sort_unstable_by(|&(pa, a), &(pb, b)| {
            pa.cmp(&pb)
                .then_with(|| refs.at(a).0.cmp(refs.at(b).0))
                .then(a.cmp(&b))
        });
        let same_digest =
            |&(pa, a): &(u64, u32), &(pb, b): &(u64, u32)| pa == pb && refs.at(a).0 == refs.at(b).0;
        // Sizes come from an untrusted description: never overflow.
        order
            .chunk_by(same_digest)
            .map(|same| {
                let last_over = same.iter().rev().find(|&&(_, i)| refs.at(i).1);
                refs.at(last_over.unwrap_or(&same[0]).1).2
            })
            .fold(0u64, |sum, size| sum.saturating_add(size))
    }

    /// How many distinct blobs the description declares (`blobs().len()`),
    /// from sorted digests rather than a map with a string per blob: a
    /// file set declares one per file.
    pub fn blob_count(&self) -> usize {
        let count = self
            .artifacts
            .iter()
            .map(|a| 2 + a.layers.len() + a.blobs.len())
            .sum();
        let mut digests = Vec::with_capacity(count);
        for a in &self.artifacts {
            digests.extend([a.manifest.digest, a.config.digest]);
            digests.extend(a.layers.iter().map(|l| l.digest));
            digests.extend(a.blobs.iter().map(|b| b.digest));
        }
        digests.sort_unstable();
        digests.dedup();
        digests.len()
    }

    /// Every distinct blob the description declares: digest → (media type, size).
    pub fn blobs(&self) -> BTreeMap<Sha256Digest, (String, u64)> {
        self.blob_refs()
            .into_iter()
            .map(|(d, (mt, size))| (d, (mt.to_string(), size)))
            .collect()
    }

    /// `blobs`, borrowing the media types: no string per blob.
    pub fn blob_refs(&self) -> BTreeMap<Sha256Digest, (&str, u64)> {
        let mut out = BTreeMap::new();
        for a in &self.artifacts {
            out.insert(
                a.manifest.digest,
                (a.manifest.media_type.as_str(), a.manifest.size),
            );
            out.insert(
                a.config.digest,
                (a.config.media_type.as_str(), a.config.size),
            );
            for l in &a.layers {
                out.entry(*l.digest).or_insert((l.media_type, l.size));
            }
            for b in &a.blobs {
                out.entry(b.digest)
                    .or_insert((b.media_type.as_str(), b.size));
            }
        }
        out
    }

    /// The declared blobs a delta leaves out: those not in `listed` (the
    /// payload manifest). Empty for a full bundle.
    pub fn omitted(&self, listed: &PayloadList) -> BTreeMap<Sha256Digest, (String, u64)> {
        if self.delta.is_none() {
            return BTreeMap::new();
        }
        self.blobs()
            .into_iter()
            .filter(|(d, _)| !listed.contains_key(&blob_path(d)))
            .collect()
    }

    /// `name-version`, the directory and file stem of the bundle.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

pub fn blob_path(d: &Sha256Digest) -> String {
    format!("{BLOBS_PREFIX}{}", d.hex())
}

/// Writes `airlock.json`: indented as `serde_json`'s pretty printer does
/// down to an artifact's fields, and each object nested deeper (a layer, a
/// blob, a package) on one line of its own. A file set has a layer per
/// file: pretty-printed, its whitespace was a third of the file (about 80
/// bytes a file, counted against the tag-file bound the high side reads
/// within), and a line per layer keeps each path beside its digest for
/// `grep`.
pub fn write_description<W: std::io::Write>(w: W, d: &Description) -> serde_json::Result<()> {
    let mut ser =
        serde_json::Serializer::with_formatter(w, LineFormatter::new(DESCRIPTION_FLAT_DEPTH));
    d.serialize(&mut ser)
}

/// Objects and arrays opened at this depth or deeper (the description
/// being 1, `artifacts` 2, an artifact 3, its `layers` 4) are written
/// compact, each on one line.
const DESCRIPTION_FLAT_DEPTH: usize = 5;

/// `serde_json`'s [`PrettyFormatter`](serde_json::ser::PrettyFormatter)
/// down to a depth, compact from there on.
struct LineFormatter {
    pretty: serde_json::ser::PrettyFormatter<'static>,
    depth: usize,
    flat_from: usize,
}

impl LineFormatter {
    fn new(flat_from: usize) -> Self {
        LineFormatter {
            pretty: serde_json::ser::PrettyFormatter::new(),
            depth: 0,
            flat_from,
        }
    }

    /// Within a compact container (at `self.depth`), writes `flat`; else
    /// takes the pretty printer's step.
    fn step<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        flat: &[u8],
        pretty: impl FnOnce(
            &mut serde_json::ser::PrettyFormatter<'static>,
            &mut W,
        ) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if self.depth >= self.flat_from {
            w.write_all(flat)
        } else {
            pretty(&mut self.pretty, w)
        }
    }

    /// `step` for a container's opening, one level deeper.
    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        flat: &[u8],
        pretty: impl FnOnce(
            &mut serde_json::ser::PrettyFormatter<'static>,
            &mut W,
        ) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.step(w, flat, pretty)
    }

    /// `step` for a container's closing, then one level up.
    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        flat: &[u8],
        pretty: impl FnOnce(
            &mut serde_json::ser::PrettyFormatter<'static>,
            &mut W,
        ) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let out = self.step(w, flat, pretty);
        self.depth -= 1;
        out
    }
}

/// A compact separator before an element: none before the first.
fn comma(first: bool) -> &'static [u8] {
    if first {
        b""
    } else {
        b","
    }
}

impl serde_json::ser::Formatter for LineFormatter {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[", |p, w| p.begin_array(w))
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]", |p, w| p.end_array(w))
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.step(w, comma(first), |p, w| p.begin_array_value(w, first))
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.step(w, b"", |p, w| p.end_array_value(w))
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{", |p, w| p.begin_object(w))
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}", |p, w| p.end_object(w))
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.step(w, comma(first), |p, w| p.begin_object_key(w, first))
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.step(w, b":", |p, w| p.begin_object_value(w))
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.step(w, b"", |p, w| p.end_object_value(w))
    }
}

/// Serializes JSON deterministically: object keys sorted, compact.
///
/// Keys are sorted here, explicitly, so the bytes never depend on how
/// `serde_json::Map` orders them (a crate switching on serde_json's
/// `preserve_order` feature anywhere in the build would change that order).
pub fn canonical_json<T: Serialize>(v: &T) -> Vec<u8> {
    let value = serde_json::to_value(v).expect("serializable");
    let mut out = Vec::new();
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("a string serializes");
                out.push(b':');
                write_canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a scalar serializes"),
    }
}

/// A digest in oci-spec's type.
pub fn oci_digest(d: &Sha256Digest) -> oci_spec::image::Digest {
    d.oci()
        .parse()
        .expect("sha256 digests are valid OCI digests")
}

/// True for names the contract allows: `[a-z0-9][a-z0-9-]*`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && name.len() <= 128
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Renders a BagIt manifest: `<hex>  <path>` lines, sorted by path.
pub fn render_manifest(entries: &BTreeMap<String, Sha256Digest>) -> String {
    let mut s = Vec::new();
    write_manifest(entries, &mut s).expect("writing to memory");
    String::from_utf8(s).expect("paths and hex digests are UTF-8")
}

/// [`render_manifest`] into `w`, line by line.
pub fn write_manifest(
    entries: &BTreeMap<String, Sha256Digest>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    for (path, d) in entries {
        w.write_all(d.hex().as_bytes())?;
        w.write_all(b"  ")?;
        w.write_all(path.as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Parses a BagIt manifest into path → digest. Each problem is reported with
/// its line number; paths are checked to be relative, normalized and unique.
pub fn parse_manifest(text: &str) -> Result<BTreeMap<String, Sha256Digest>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (hex, path) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("line {n}: expected \"<sha256>  <path>\""))?;
        let path = path.trim_start();
        let path = path.strip_prefix('*').unwrap_or(path);
        let digest: Sha256Digest = hex.parse().map_err(|e| format!("line {n}: {e}"))?;
        if !safe_relative(path) {
            return Err(format!(
                "line {n}: unsafe path {path:?} (absolute, '..', or not normalized)"
            ));
        }
        if out.insert(path.to_string(), digest).is_some() {
            return Err(format!("line {n}: {path:?} listed twice"));
        }
    }
    Ok(out)
}

/// `manifest-sha256.txt` as verify reads it: [`parse_manifest`]'s result
/// (the same entries, order and errors), but read line by line from a
/// reader and held compactly, since a bundle of many files has a line per
/// file: each `data/blobs/sha256/<hex>` line as a fixed-size record (the
/// digest its name spells, the digest listed), sorted by name; any other
/// path by name. A blob line lists the digest its name spells (pack writes
/// no other), so a blob is held as that one digest (32 bytes), and only a
/// line listing another digest adds a record of its own.
#[derive(Debug, Default)]
pub struct PayloadList {
    /// The digest each blob line's name spells, sorted.
    blobs: Vec<Sha256Digest>,
    /// (position in `blobs`, listed digest) of each blob line whose listed
    /// digest is not its name's, by position.
    differ: Vec<(usize, Sha256Digest)>,
    /// Every other path → its listed digest.
    other: BTreeMap<String, Sha256Digest>,
}

/// A [`PayloadList`] taken apart ([`PayloadList::into_parts`]).
pub struct PayloadParts {
    /// The digest each blob line's name spells, sorted.
    pub blobs: Vec<Sha256Digest>,
    /// (position in `blobs`, listed digest) of each blob line whose listed
    /// digest is not its name's, by position.
    pub differ: Vec<(usize, Sha256Digest)>,
    /// Every other path → its listed digest, by path.
    pub other: BTreeMap<String, Sha256Digest>,
}

impl PayloadList {
    /// Parses a BagIt manifest from `r`, with `parse_manifest`'s errors
    /// (for the bytes of `r` read as lossy UTF-8). Reading stops at the
    /// first line in error.
    pub fn parse(mut r: impl std::io::BufRead) -> Result<PayloadList, String> {
        // Blob lines with their line number, for the check of duplicates
        // made once all are read (the first duplicate line is the error).
        // (name's digest, line), and (name's digest, listed digest) of the
        // lines listing another digest than their name's.
        let mut blobs: Vec<(Sha256Digest, u32)> = Vec::new();
        let mut differ: Vec<(Sha256Digest, Sha256Digest)> = Vec::new();
        let mut other = BTreeMap::new();
        let mut raw = Vec::new();
        let mut n = 0usize;
        let mut failed: Option<(usize, String)> = None;
        loop {
            raw.clear();
            match r.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("cannot be read: {e}")),
            }
            n += 1;
            // As `str::lines` splits: "\n" or "\r\n" ends a line.
            let line = match raw.strip_suffix(b"\n") {
                Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
                None => &raw[..],
            };
            let line = String::from_utf8_lossy(line);
            if line.trim().is_empty() {
                continue;
            }
            let Some((hex, path)) = line.split_once(char::is_whitespace) else {
                failed = Some((n, format!("line {n}: expected \"<sha256>  <path>\"")));
                break;
            };
            let path = path.trim_start();
            let path = path.strip_prefix('*').unwrap_or(path);
            let digest: Sha256Digest = match hex.parse() {
                Ok(d) => d,
                Err(e) => {
                    failed = Some((n, format!("line {n}: {e}")));
                    break;
                }
            };
            if !safe_relative(path) {
                failed = Some((
                    n,
                    format!("line {n}: unsafe path {path:?} (absolute, '..', or not normalized)"),
                ));
                break;
            }
            match Self::blob_name(path) {
                Some(name) => {
                    if name != digest {
                        differ.push((name, digest));
                    }
                    blobs.push((name, n.try_into().unwrap_or(u32::MAX)));
                }
                None => {
                    if other.insert(path.to_string(), digest).is_some() {
                        failed = Some((n, format!("line {n}: {path:?} listed twice")));
                        break;
                    }
                }
            }
        }
        blobs.sort_unstable();
        let twice = blobs
            .windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .map(|w| (w[1].1 as usize, w[1].0))
            .min();
        match (twice, failed) {
            (Some((line, name)), f) if f.as_ref().is_none_or(|f| line < f.0) => {
                Err(format!("line {line}: {:?} listed twice", blob_path(&name)))
            }
            (_, Some((_, e))) => Err(e),
            _ => {
                // Sized exactly, the line numbers dropped: 32 bytes a blob.
                let mut names = Vec::with_capacity(blobs.len());
                names.extend(blobs.into_iter().map(|b| b.0));
                // Names are unique here: each differing line has one place.
                let mut differ: Vec<(usize, Sha256Digest)> = differ
                    .into_iter()
                    .filter_map(|(name, listed)| {
                        names.binary_search(&name).ok().map(|i| (i, listed))
                    })
                    .collect();
                differ.sort_unstable_by_key(|d| d.0);
                Ok(PayloadList {
                    blobs: names,
                    differ,
                    other,
                })
            }
        }
    }

    /// Its parts, for a caller that takes over the Vec of blob names
    /// (verify's plan) instead of copying it.
    pub fn into_parts(self) -> PayloadParts {
        PayloadParts {
            blobs: self.blobs,
            differ: self.differ,
            other: self.other,
        }
    }

    /// The digest a path spells when it is exactly `blob_path` of it.
    fn blob_name(path: &str) -> Option<Sha256Digest> {
        let hex = path.strip_prefix(BLOBS_PREFIX)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        hex.parse().ok()
    }

    pub fn len(&self) -> usize {
        self.blobs.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_key(&self, path: &str) -> bool {
        match Self::blob_name(path) {
            Some(name) => self.blobs.binary_search(&name).is_ok(),
            None => self.other.contains_key(path),
        }
    }

    /// Every entry in path order, as `parse_manifest`'s map lists them.
    pub fn iter(&self) -> impl Iterator<Item = (String, Sha256Digest)> + '_ {
        let mut differ = self.differ.iter().peekable();
        let mut blobs = self
            .blobs
            .iter()
            .enumerate()
            .map(move |(i, name)| match differ.next_if(|d| d.0 == i) {
                Some((_, listed)) => (name, listed),
                None => (name, name),
            })
            .peekable();
        let mut other = self.other.iter().peekable();
        std::iter::from_fn(move || {
            let b = blobs.peek().map(|(name, _)| blob_path(name));
            match (b, other.peek()) {
                (Some(bp), Some((op, _))) if op.as_str() < bp.as_str() => {
                    other.next().map(|(p, d)| (p.clone(), *d))
                }
                (Some(bp), _) => blobs.next().map(|(_, d)| (bp, *d)),
                (None, _) => other.next().map(|(p, d)| (p.clone(), *d)),
            }
        })
    }
}

/// A path inside the bundle that is safe to join below a directory: relative,
/// `/`-separated normal components, no `.`/`..`, no NUL or backslash.
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.len() <= 4096
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Parses `bag-info.txt` `Label: value` lines (continuations folded).
pub fn parse_bag_info(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The `Payload-Oxum` of a `bag-info.txt` (`OCTETS.COUNT`: the payload's
/// total size and file count). Exactly one is required: airlock writes one.
pub fn payload_oxum(bag_info: &str) -> std::result::Result<(u64, u64), String> {
    let values: Vec<String> = parse_bag_info(bag_info)
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Payload-Oxum"))
        .map(|(_, v)| v)
        .collect();
    let [value] = values.as_slice() else {
        return Err(format!(
            "has {} Payload-Oxum lines; a bundle has exactly one (OCTETS.COUNT)",
            values.len()
        ));
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    value
        .split_once('.')
        .filter(|(a, b)| digits(a) && digits(b))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| format!("Payload-Oxum {value:?} is not OCTETS.COUNT (two whole numbers)"))
}

/// A file name usable as an OCI reference component: ASCII letters and digits
/// joined by single separators (`.`, `_`, `-`).
pub fn ref_component(raw: &str) -> String {
    let mut out = String::new();
    for ch in raw.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else {
            let sep = if matches!(ch, '.' | '_' | '/') {
                ch
            } else {
                '-'
            };
            if !out.is_empty() && !out.ends_with(['.', '_', '-', '/']) {
                out.push(sep);
            }
        }
    }
    while out.ends_with(['.', '_', '-', '/']) {
        out.pop();
    }
    out
}

pub fn verify_txt(name: &str, version: &str) -> String {
    format!(
        "How to check bundle {name} {version} with stock tools only
=================================================================

Run these in this directory (the bundle root). Each must succeed. A bundle
that came as volumes ({name}-{version}.volNNN.tar): do step 6 first.

1. The tag files and the payload are intact:

     sha256sum -c tagmanifest-sha256.txt && sha256sum -c manifest-sha256.txt

   The bundle id is the sha256 of tagmanifest-sha256.txt:

     sha256sum tagmanifest-sha256.txt

2. The bag is a valid BagIt 1.0 bag (RFC 8493):

     bagit.py --validate .

3. A signer's OpenSSH signature. Put the signer's public key, obtained
   through a trusted channel and NOT from this bundle, in allowed_signers:

     echo \"builder $(cat builder.ssh.pub)\" > allowed_signers
     ssh-keygen -Y verify -f allowed_signers -I builder -n airlock-bundle \\
         -s signatures/<key-id>.sshsig < tagmanifest-sha256.txt

4. The same signer's DSSE envelope, signatures/<key-id>.dsse.json: an
   in-toto Statement v1 (payloadType application/vnd.in-toto+json) whose
   subject is tagmanifest-sha256.txt and its sha256, signed with Ed25519
   over the DSSE v1 pre-authentication encoding (PAE) of the payload.
   The key id (<key-id>, and \"keyid\" in the envelope) is the first 32 hex
   digits of the sha256 of the signer's OpenSSH wire-form public key, which
   is the base64 field of its .ssh.pub line:

     cut -d' ' -f2 builder.ssh.pub | base64 -d | sha256sum | cut -c1-32

   Check the envelope with python3 and OpenSSL 3 (builder.pub: the signer's
   SPKI PEM public key, from a trusted channel); the first command also
   checks that the statement's subject is this tagmanifest-sha256.txt:

     python3 -c 'import base64,hashlib,json,sys; e=json.load(open(sys.argv[1])); p=base64.b64decode(e[\"payload\"]); t=e[\"payloadType\"].encode(); s=json.loads(p)[\"subject\"][0]; assert s[\"name\"]==\"tagmanifest-sha256.txt\" and s[\"digest\"][\"sha256\"]==hashlib.sha256(open(s[\"name\"],\"rb\").read()).hexdigest(), \"subject is not this bundle\"; open(\"dsse-pae.bin\",\"wb\").write(b\"DSSEv1 %d %s %d %s\" % (len(t), t, len(p), p)); open(\"dsse-sig.bin\",\"wb\").write(base64.b64decode(e[\"signatures\"][0][\"sig\"]))' signatures/<key-id>.dsse.json
     openssl pkeyutl -verify -pubin -inkey builder.pub -rawin -in dsse-pae.bin -sigfile dsse-sig.bin

   DSSE libraries verify it too when given the key under this key id (a
   library's own default key id differs), e.g. Python securesystemslib:

     python3 -c 'import json; from cryptography.hazmat.primitives.serialization import load_pem_public_key as pem; from securesystemslib.signer import SSlibKey; from securesystemslib.dsse import Envelope; k=SSlibKey.from_crypto(pem(open(\"builder.pub\",\"rb\").read()), keyid=\"<key-id>\"); Envelope.from_dict(json.load(open(\"signatures/<key-id>.dsse.json\"))).verify([k], 1); print(\"DSSE signature OK\")'

5. The payload is an OCI image layout; list and inspect its artifacts:

     cat data/index.json
     skopeo inspect --raw oci:data:<ref>

   where <ref> is an org.opencontainers.image.ref.name from data/index.json.
   skopeo skips entries with Docker media types (application/vnd.docker.*,
   Docker schema 2 images kept with their original digest); read those with
   cat data/blobs/sha256/<hex>, or use `airlock export`, whose images/
   layout adds for each an entry <image name>-oci-index that skopeo can copy.

6. Volumes. Set VOLS to the folder holding every volume, and run these in
   an empty directory: they untar each volume, then join each blob that was
   split across volumes (data/blobs/sha256/<hex>.part001, .part002, ...)
   back into data/blobs/sha256/<hex>. Then run steps 1 to 5 there.

     for v in \"$VOLS\"/{name}-{version}.vol*.tar*; do tar -xf \"$v\"; done
     find data -name '*.part001' | while read -r p; do b=${{p%.part001}}; n=1; while f=$(printf '%s.part%03d' \"$b\" \"$n\"); [ -f \"$f\" ]; do cat \"$f\"; n=$((n+1)); done > \"$b\" && rm -f \"$b\".part*; done

   (tar -xf reads .tar.zst volumes when zstd is installed.)

Custody events (custody/) and signatures (signatures/) sit outside both
manifests, so adding them never changes the bundle id. `airlock verify`
checks all of the above against a trust policy in one step.
"
    )
}

// ---------------------------------------------------------------- what pack found

/// Whether pickles with imports outside the allowlists are let through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PicklePolicy {
    #[default]
    Deny,
    Allow,
}

/// What airlock found inside one file of an artifact (`airlock.json` `content`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentEntry {
    /// The artifact's reference (`models/NAME`, `files/...`).
    pub artifact: String,
    /// The file's path in the artifact.
    pub path: String,
    pub facts: Facts,
}

/// Facts read from a file's header or opcode stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Facts {
    /// `safetensors`, `gguf`, `shard-index`, `pickle`, `pytorch-legacy`,
    /// `pytorch-zip` (a zip with `*/data.pkl`), `zip` (other `*.pkl`
    /// members), `npz` (object arrays in a NumPy archive), `npy-pickle` (an
    /// object array), `pickle+gzip` / `+zlib` / `+bz2` / `+xz` / `+lzma`
    /// (a compressed pickle, as joblib writes them).
    pub format: String,
    /// GGUF version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
    /// dtype (as the format names it) → parameters of that dtype.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dtypes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Shards a shard index names (paths in the artifact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// Zip members scanned as pickles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pickles: Vec<String>,
    /// Every import the pickle(s) perform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// The imports not on the allowlist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsafe_imports: Vec<String>,
    /// Why the pickle could not be scanned completely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

/// A model's summary for its ModelPack config and SBOM model card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelFacts {
    /// The model artifact's reference.
    pub artifact: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `safetensors`, `gguf`, `pytorch`, `onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
    /// ModelPack `paramSize`: `<count><K|M|B|T|Q>`, one decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_size: Option<String>,
    /// ModelPack `precision`: `fp32`, `bf16`, `int8`, ..., or `mixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// dtype → parameters, over the weight files of `format`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dtypes: BTreeMap<String, u64>,
    /// The weight files counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<String>,
    /// The folder export writes the model into (`models/<folder>`): the
    /// manifest's `name:` as written (`all-MiniLM-L6-v2`), when it differs
    /// from the normalized artifact name. Absent: the artifact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// Where the model comes from on the Hugging Face Hub (manifest
    /// `huggingface:`); absent when the manifest names no origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huggingface: Option<HfOrigin>,
    /// The OpenSSF model-signing signature the model directory carries
    /// (`model.sig`), and what pack found when it checked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ModelSignature>,
}

/// The file name OpenSSF model-signing (`model_signing sign`) writes its
/// signature to, at the top of the model directory.
pub const MODEL_SIGNATURE_FILE: &str = "model.sig";

/// The in-toto predicate type of OpenSSF model-signing v1.0 signatures.
pub const MODEL_SIGNING_PREDICATE: &str = "https://model_signing/signature/v1.0";

/// What became of a model's OpenSSF model-signing signature at pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureStatus {
    /// Checked at pack against `publicKey` (the manifest's
    /// `models[].signature.publicKey`); the high side checks it again.
    Verified,
    /// Carried as it is: the manifest names no key to check it with.
    Unverified,
}

/// A model's OpenSSF model-signing signature (`airlock.json` `models[].signature`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSignature {
    /// The signature file's path in the model (`model.sig`).
    pub path: String,
    pub status: SignatureStatus,
    /// Verified: the signer's public key (SubjectPublicKeyInfo, PEM), the
    /// high side checks the signature against it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Verified: `sha256:` and the hex sha256 of the key's DER
    /// SubjectPublicKeyInfo (`openssl pkey -pubin -outform DER | sha256sum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Verified: the signature algorithm (`ecdsa-p256-sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Verified: the signed in-toto statement's predicate type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// Verified: how many of the model's files the signature covers (each
    /// one's sha256 matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Verified: files of the model the signature does not cover because the
    /// signed statement lists them among its `ignore_paths` (`.gitattributes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsigned: Vec<String>,
}

/// A model's origin on the Hugging Face Hub: repository `ORG/NAME` at a
/// commit. Checked when the manifest is read and again from the
/// description on the high side ([`HfOrigin::problem`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfOrigin {
    /// `ORG/NAME`, as the Hub spells it.
    pub repo: String,
    /// The commit: 40 lowercase hex digits.
    pub revision: String,
}

/// Longest repository id the Hub accepts (`ORG/NAME`).
pub const HF_REPO_MAX: usize = 96;

impl HfOrigin {
    /// What is wrong with `repo`, by the Hub's rules for a repository id:
    /// `ORG/NAME`, each part ASCII letters, digits, `.`, `_` and `-`,
    /// starting and ending with a letter, digit or `_`, no `--` or `..`,
    /// 96 characters at most. `--` is the cache's separator, so an id that
    /// passes names one folder `models--ORG--NAME` and nothing else.
    pub fn repo_problem(repo: &str) -> Option<String> {
        let part_ok = |p: &str| {
            let b = p.as_bytes();
            let edge = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
            !b.is_empty()
                && edge(b[0])
                && edge(b[b.len() - 1])
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        };
        let shown = repo.escape_debug();
        if repo.len() > HF_REPO_MAX {
            return Some(format!(
                "\"{shown}\" is longer than the Hub's {HF_REPO_MAX} characters for a repository id"
            ));
        }
        match repo.split_once('/') {
            Some((org, name))
                if part_ok(org)
                    && part_ok(name)
                    && !repo.contains("--")
                    && !repo.contains("..") =>
            {
                None
            }
            _ => Some(format!(
                "\"{shown}\" is not a Hugging Face repository id ORG/NAME (letters, digits, '.', '_' and '-'; each part starting and ending with a letter, digit or '_'; no \"--\" or \"..\")"
            )),
        }
    }

    /// What is wrong with `revision`: a commit is 40 lowercase hex digits.
    pub fn revision_problem(revision: &str) -> Option<String> {
        let ok = revision.len() == 40
            && revision
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        (!ok).then(|| {
            format!(
                "\"{}\" is not a commit: give the 40 lowercase hex digits of the Hub commit (a branch or tag name can move)",
                revision.escape_debug()
            )
        })
    }

    /// The first problem with this origin, naming the field (`repo` or `revision`).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        Self::repo_problem(&self.repo)
            .map(|p| ("repo", p))
            .or_else(|| Self::revision_problem(&self.revision).map(|p| ("revision", p)))
    }

    /// `ORG` and `NAME`.
    pub fn parts(&self) -> (&str, &str) {
        self.repo.split_once('/').unwrap_or(("", &self.repo))
    }

    /// The Hub cache's folder for the repository: `models--ORG--NAME`.
    pub fn cache_folder(&self) -> String {
        let (org, name) = self.parts();
        format!("models--{org}--{name}")
    }
}

// ---------------------------------------------------------------- push targets

/// The tag an artifact is pushed under.
pub enum PushTag {
    Tag(String),
    /// Known by digest only.
    Digest,
}

/// The reference an artifact is pushed to below `HOST[/PREFIX]`: `REPO:TAG`,
/// or `REPO@sha256:...` for an image known by digest only.
pub fn push_target(a: &Artifact, bundle: &str, version: &str) -> String {
    match push_target_of(a, bundle, version) {
        (repo, PushTag::Tag(t)) => format!("{repo}:{t}"),
        (repo, PushTag::Digest) => format!("{repo}@{}", a.manifest.digest.oci()),
    }
}

/// The first two artifacts with different manifests that push to one
/// reference, and that reference.
pub fn push_collision<'a>(
    artifacts: &'a [Artifact],
    bundle: &str,
    version: &str,
) -> Option<(&'a Artifact, &'a Artifact, String)> {
    let mut seen: std::collections::HashMap<String, &Artifact> = Default::default();
    for a in artifacts {
        let t = push_target(a, bundle, version);
        match seen.get(&t) {
            Some(prev) if prev.manifest.digest != a.manifest.digest => return Some((prev, a, t)),
            Some(_) => {}
            None => {
                seen.insert(t, a);
            }
        }
    }
    None
}

/// Repository path (below the target) and tag of an artifact.
pub fn push_target_of(a: &Artifact, bundle: &str, version: &str) -> (String, PushTag) {
    if a.kind == ArtifactKind::Image {
        let name = a.name.split('@').next().unwrap_or(&a.name);
        // Drop the source registry: a first component with '.' or ':' or
        // `localhost` names a host.
        let path = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
            _ => name,
        };
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, PushTag::Tag(t.to_string())),
            _ if a.name.contains('@') => (path, PushTag::Digest),
            _ => (path, PushTag::Tag("latest".into())),
        };
        (repo.to_ascii_lowercase(), tag)
    } else {
        let repo = format!("{bundle}/{}", a.reference).to_ascii_lowercase();
        (ref_component(&repo), PushTag::Tag(ref_component(version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_layers_borrow_known_media_types_and_keep_others() {
        let json = |mt: &str| {
            format!(
                r#"{{"mediaType":"{mt}","digest":"sha256:{}","size":3,"path":"a","mode":420}}"#,
                Sha256Digest::of(b"abc").hex()
            )
        };
        let known: Layer = serde_json::from_str(&json(FILE_LAYER)).unwrap();
        assert!(matches!(
            known.media_type,
            std::borrow::Cow::Borrowed(FILE_LAYER)
        ));
        let other: Layer = serde_json::from_str(&json("application/x-other")).unwrap();
        assert!(
            matches!(&other.media_type, std::borrow::Cow::Owned(s) if s == "application/x-other")
        );
        // Written back byte for byte, whichever form it took.
        for (l, mt) in [(&known, FILE_LAYER), (&other, "application/x-other")] {
            assert_eq!(serde_json::to_string(l).unwrap(), json(mt));
        }
        assert!(serde_json::from_str::<Layer>(&json("x").replace("\"x\"", "7")).is_err());
    }

    /// `total_size` counts each distinct blob once at the size `blob_refs`
    /// gives it, also when a description names one digest with different
    /// sizes (a manifest or config over an earlier layer, a layer after).
    #[test]
    fn description_is_written_a_layer_per_line() {
        let dg = |i: u8| format!("sha256:{}", format!("{:02x}", i).repeat(32));
        let layer = |i: u8, path: &str| serde_json::json!({"mediaType": "l", "digest": dg(i), "size": i, "path": path, "mode": 420});
        let d: Description = serde_json::from_value(serde_json::json!({
            "apiVersion": "airlock/v1", "kind": "BundleDescription", "name": "n", "version": "1.0.0",
            "created": "c", "generator": "g", "pickle": "deny",
            "artifacts": [
                {"kind": "files", "name": "n", "reference": "r", "artifactType": "t",
                 "manifest": {"mediaType": "m", "digest": dg(1), "size": 1},
                 "config": {"mediaType": "m", "digest": dg(2), "size": 2},
                 "layers": [layer(3, "a/b \"q\".txt"), layer(4, "c\nd")]},
                {"kind": "files", "name": "e", "reference": "r2", "artifactType": "t",
                 "manifest": {"mediaType": "m", "digest": dg(5), "size": 5},
                 "config": {"mediaType": "m", "digest": dg(2), "size": 2},
                 "layers": []},
            ],
        }))
        .unwrap();
        let mut out = Vec::new();
        write_description(&mut out, &d).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The same description, read back.
        let back: Description = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
        // Down to an artifact's fields as `to_string_pretty` writes them.
        let pretty = serde_json::to_string_pretty(&d).unwrap();
        let head = |t: &str| {
            t.lines()
                .take_while(|l| !l.contains("\"layers\""))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(head(&text), head(&pretty));
        // Each layer on a line of its own, indented as its place in the array.
        let layer_lines: Vec<&str> = text.lines().filter(|l| l.contains("\"path\"")).collect();
        assert_eq!(layer_lines.len(), 2, "{text}");
        for (l, (i, p)) in layer_lines
            .iter()
            .zip([(3u8, "a/b \\\"q\\\".txt"), (4, "c\\nd")])
        {
            assert!(
                l.starts_with("        {\"mediaType\":\"l\",\"digest\":\""),
                "{l}"
            );
            assert!(
                l.contains(&dg(i)) && l.contains(&format!("\"path\":\"{p}\"")),
                "{l}"
            );
        }
        assert!(text.contains("\"layers\": []"), "{text}");
        assert!(text.len() < pretty.len());
    }

    #[test]
    fn total_size_is_blob_refs_summed() {
        let dg = |i: u8| format!("sha256:{}", hex_of(i));
        fn hex_of(i: u8) -> String {
            format!("{:02x}", i).repeat(32)
        }
        let blob =
            |i: u8, size: u64| serde_json::json!({"mediaType": "m", "digest": dg(i), "size": size});
        let layer = |i: u8, size: u64| serde_json::json!({"mediaType": "l", "digest": dg(i), "size": size, "path": "p", "mode": 420});
        let artifact = |m: serde_json::Value,
                        c: serde_json::Value,
                        layers: Vec<serde_json::Value>| {
            serde_json::json!({"kind": "files", "name": "n", "reference": "r", "artifactType": "t",
                "manifest": m, "config": c, "layers": layers})
        };
        let d: Description = serde_json::from_value(serde_json::json!({
            "apiVersion": "airlock/v1", "kind": "BundleDescription", "name": "n", "version": "1.0.0",
            "created": "c", "generator": "g", "pickle": "deny",
            "artifacts": [
                artifact(blob(1, 10), blob(2, 20), vec![layer(3, 30), layer(3, 31), layer(4, 40), layer(5, 50)]),
                artifact(blob(4, 41), blob(6, 60), vec![layer(1, 11), layer(5, 51), layer(7, 70)]),
                artifact(blob(8, 80), blob(4, 42), vec![layer(4, 43)]),
            ],
        }))
        .unwrap();
        let by_map = d.blob_refs().values().map(|b| b.1).sum::<u64>();
        assert_eq!(by_map, 10 + 20 + 30 + 42 + 50 + 60 + 70 + 80);
        assert_eq!(d.total_size(), by_map);
        // `blob_count` counts what `blobs` maps: each digest once, an
        // image's extra blobs too.
        assert_eq!(d.blob_count(), 8);
        assert_eq!(d.blob_count(), d.blobs().len());
        let mut with_blobs = d.clone();
        let extra = |i: u8| Blob {
            media_type: "m".into(),
            digest: hex_of(i).parse().unwrap(),
            size: 1,
        };
        with_blobs.artifacts[0].blobs = vec![extra(9), extra(1), extra(9)];
        assert_eq!(with_blobs.blob_count(), 9);
        assert_eq!(with_blobs.blob_count(), with_blobs.blobs().len());
        // An image's blobs come after its layers: a blob's size counts where
        // no manifest or config names its digest (9), not where one does (1).
        let by_map = with_blobs.blob_refs().values().map(|b| b.1).sum::<u64>();
        assert_eq!(by_map, 10 + 20 + 30 + 42 + 50 + 60 + 70 + 80 + 1);
        assert_eq!(with_blobs.total_size(), by_map);
        // An artifact with neither layers nor blobs, and none at all.
        with_blobs.artifacts[1].layers = Layers::new();
        let by_map = with_blobs.blob_refs().values().map(|b| b.1).sum::<u64>();
        assert_eq!(with_blobs.total_size(), by_map);
        with_blobs.artifacts.clear();
        assert_eq!(with_blobs.blob_count(), 0);
        assert_eq!(with_blobs.total_size(), 0);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level_whatever_the_field_order() {
        #[derive(Serialize)]
        struct Inner {
            zeta: u8,
            alpha: &'static str,
        }
        #[derive(Serialize)]
        struct Outer {
            b: Vec<Inner>,
            a: bool,
        }
        let v = Outer {
            b: vec![Inner {
                zeta: 1,
                alpha: "x\n\"y",
            }],
            a: true,
        };
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":true,"b":[{"alpha":"x\n\"y","zeta":1}]}"#
        );
    }

    #[test]
    fn manifest_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("data/a".to_string(), Sha256Digest::of(b"a"));
        m.insert("data/b c".to_string(), Sha256Digest::of(b"b"));
        assert_eq!(parse_manifest(&render_manifest(&m)).unwrap(), m);
    }

    #[test]
    fn manifest_rejects_unsafe_paths() {
        let h = Sha256Digest::of(b"").hex();
        for p in ["../x", "/etc/passwd", "data/../x", "data//x", "data/./x"] {
            assert!(parse_manifest(&format!("{h}  {p}\n")).is_err(), "{p}");
        }
        assert!(parse_manifest(&format!("{h}  data/x\n{h}  data/x\n")).is_err());
    }

    /// `PayloadList` reads what `parse_manifest` reads, with its entries
    /// in its order and its errors, line by line.
    #[test]
    fn payload_list_parses_as_parse_manifest() {
        let d = |i: u8| Sha256Digest::of(&[i]);
        let (a, b, c) = (d(1), d(2), d(3));
        let (pa, pb, pc) = (blob_path(&a), blob_path(&b), blob_path(&c));
        let upper = format!("{BLOBS_PREFIX}{}", a.hex().to_uppercase());
        let cases = [
            String::new(),
            "\n\n  \n".into(),
            format!(
                "{}  {pa}\n{}  {pb}\n{}  data/index.json\n{}  data/oci-layout\n",
                a.hex(),
                b.hex(),
                c.hex(),
                c.hex()
            ),
            // Unsorted, CRLF, a '*' (binary mode), no final newline.
            format!(
                "{}  {pc}\r\n{} *{pa}\n{}\tdata/b\n{}  data/a",
                c.hex(),
                a.hex(),
                b.hex(),
                b.hex()
            ),
            // A name that is not its digest, and one spelled in uppercase.
            format!(
                "{}  {pa}\n{}  {upper}\n{}  {BLOBS_PREFIX}x\n",
                b.hex(),
                a.hex(),
                a.hex()
            ),
            // Names that are not their digests among names that are
            // (each differing line held apart, by its name's position).
            format!(
                "{}  {pc}\n{}  {pb}\n{}  data/index.json\n{}  {pa}\n",
                a.hex(),
                b.hex(),
                c.hex(),
                c.hex()
            ),
            // Errors, and which comes first.
            format!("{}  {pa}\n{}  {pb}\n{}  {pa}\n", a.hex(), b.hex(), a.hex()),
            format!("{}  {pa}\n{}  {pa}\n{}  ../x\n", a.hex(), a.hex(), a.hex()),
            format!("{}  {pa}\nxyz  data/x\n{}  {pa}\n", a.hex(), a.hex()),
            format!(
                "{}  {pa}\n{}  {pb}\n{}  {pb}\n{}  {pa}\n",
                a.hex(),
                b.hex(),
                b.hex(),
                a.hex()
            ),
            format!(
                "{}  data/x\n{}  data/x\n{}  {pa}\n{}  {pa}\n",
                a.hex(),
                a.hex(),
                a.hex(),
                a.hex()
            ),
            format!(
                "{}  {pa}\n{}  {pa}\n{}  data/x\n{}  data/x\n",
                a.hex(),
                a.hex(),
                a.hex(),
                a.hex()
            ),
            format!("{}\n", a.hex()),
            format!("{}  /etc/passwd\n", a.hex()),
            format!("{}  data/a\r\r\n", a.hex()),
            format!("{}  data/\u{e9}\n{}  data/\u{ff}\n", a.hex(), b.hex()),
        ];
        let mut bad_utf8 = format!("{}  data/", a.hex()).into_bytes();
        bad_utf8.extend([0xff, 0xfe, b'\n']);
        let mut all: Vec<Vec<u8>> = cases.iter().map(|c| c.clone().into_bytes()).collect();
        all.push(bad_utf8);
        let (mut oks, mut errs) = (0, 0);
        for bytes in &all {
            let want = parse_manifest(&String::from_utf8_lossy(bytes));
            let got = PayloadList::parse(&bytes[..]);
            match (&want, &got) {
                (Ok(m), Ok(l)) => {
                    oks += 1;
                    let listed: Vec<(String, Sha256Digest)> = l.iter().collect();
                    let want: Vec<(String, Sha256Digest)> = m.clone().into_iter().collect();
                    assert_eq!(listed, want, "{:?}", String::from_utf8_lossy(bytes));
                    assert_eq!(l.len(), m.len());
                    for p in m.keys() {
                        assert!(l.contains_key(p), "{p}");
                    }
                    assert!(!l.contains_key(&blob_path(&d(9))));
                    assert!(!l.contains_key("data/none"));
                }
                (Err(w), Err(g)) => {
                    errs += 1;
                    assert_eq!(g, w, "{:?}", String::from_utf8_lossy(bytes));
                }
                _ => panic!(
                    "{:?}: {want:?} against {got:?}",
                    String::from_utf8_lossy(bytes)
                ),
            }
        }
        assert!(oks >= 5 && errs >= 8, "{oks} {errs}");
    }

    #[test]
    fn refs() {
        assert_eq!(ref_component("docs/run book.pdf"), "docs/run-book.pdf");
        assert_eq!(ref_component("a__b"), "a_b");
        assert_eq!(ref_component("..x.."), "x");
    }
}
