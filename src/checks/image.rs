//! Container images as airlock carries them: the image's own manifest or
//! index, byte for byte under its original digest, plus every blob it
//! references. This module reads manifests and indexes (OCI and Docker
//! schema 2) into the descriptors they reference, walks an image from a blob
//! source into a bundle's blob directory (hashing every blob while copying
//! it and refusing one whose bytes do not match its digest), and checks on
//! the high side that an image artifact is complete and exactly as declared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bundle::{
    blob_path, canonical_json, Artifact, ArtifactKind, Blob, MAX_JSON_BLOB, MT_INDEX, MT_MANIFEST,
};
use crate::digest::{copy_hashed, Hashed, Sha256Digest};
use crate::error::{Error, Report, Result};
use crate::rawtar::{Member, Members, Stop};

pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Manifest media types airlock accepts from registries, in preference order.
pub const ACCEPTED: &[&str] = &[MT_INDEX, MT_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST];

/// Nesting depth of indexes an image may have (index → index → manifest).
const MAX_DEPTH: usize = 4;

pub fn is_index(media_type: &str) -> bool {
    media_type == MT_INDEX || media_type == MT_DOCKER_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == MT_MANIFEST || media_type == MT_DOCKER_MANIFEST
}

/// One descriptor a manifest or index references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    /// `os/architecture[/variant]`, for an index's entries that say.
    pub platform: Option<String>,
}

impl Desc {
    pub fn blob(&self) -> Blob {
        Blob {
            media_type: self.media_type.clone(),
            digest: self.digest,
            size: self.size,
        }
    }
}

/// What a manifest or an index refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Index(Vec<Desc>),
    Manifest { config: Desc, layers: Vec<Desc> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<RawDesc>,
    layers: Option<Vec<RawDesc>>,
    manifests: Option<Vec<RawDesc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDesc {
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Parses a manifest or index whose descriptor says `media_type`. Only
/// sha256 digests are accepted; the document's own `mediaType`, when it has
/// one, must agree with the descriptor's.
pub fn parse(media_type: &str, bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let doc: RawDoc = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a manifest or index (invalid JSON: {e})"))?;
    if doc.schema_version != Some(2) {
        return Err(format!(
            "schemaVersion {:?}: only schema 2 manifests and indexes are supported (re-push the image with a current tool)",
            doc.schema_version
        ));
    }
    if let Some(mt) = &doc.media_type {
        if mt != media_type {
            return Err(format!(
                "its mediaType {mt:?} contradicts its descriptor's {media_type:?}"
            ));
        }
    }
    let desc = |r: RawDesc| -> std::result::Result<Desc, String> {
        let digest = r
            .digest
            .strip_prefix("sha256:")
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| {
                format!(
                    "references {:?}: only sha256 digests are supported",
                    r.digest
                )
            })?;
        Ok(Desc {
            media_type: r.media_type,
            digest,
            size: r.size,
            platform: r.platform.map(|p| match p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            }),
        })
    };
    if is_index(media_type) {
        let ms = doc
            .manifests
            .ok_or_else(|| "an index without \"manifests\"".to_string())?;
        Ok(Parsed::Index(
            ms.into_iter()
                .map(desc)
                .collect::<std::result::Result<_, _>>()?,
        ))
    } else if is_manifest(media_type) {
        let config = desc(
            doc.config
                .ok_or_else(|| "a manifest without \"config\"".to_string())?,
        )?;
        let layers = doc
            .layers
            .unwrap_or_default()
            .into_iter()
            .map(desc)
            .collect::<std::result::Result<_, _>>()?;
        Ok(Parsed::Manifest { config, layers })
    } else {
        Err(format!(
            "media type {media_type:?} is neither an OCI or Docker schema 2 manifest nor an index"
        ))
    }
}

/// Does `platform` (`os/arch[/variant]`) match one of `wanted`? A wanted
/// entry without a variant matches every variant.
pub fn platform_matches(platform: &str, wanted: &[String]) -> bool {
    wanted.iter().any(|w| {
        w == platform || (w.matches('/').count() == 1 && platform.starts_with(&format!("{w}/")))
    })
}

/// Where an image's blobs come from on the build side.
pub trait BlobSource {
    /// Streams blob `d` into `out`, hashing on the way; reads at most
    /// `d.size + 1` bytes so an overlong blob is detected.
    fn copy(&mut self, d: &Desc, out: &mut dyn Write) -> Result<Hashed>;
    /// Copies each blob into its own (new) file; a source that can fetch in
    /// parallel does. Results are in the order of `jobs`.
    fn copy_to_files(&mut self, jobs: &[(Desc, PathBuf)]) -> Result<Vec<Hashed>> {
        jobs.iter()
            .map(|(d, path)| {
                let mut out =
                    std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(path)?);
                let h = self.copy(d, &mut out)?;
                out.into_inner()
                    .map_err(|e| Error::Io(e.into_error()))?
                    .sync_all()?;
                Ok(h)
            })
            .collect()
    }
    /// Reads manifest or index `d` into `out` (a registry serves these from
    /// its manifest endpoint rather than as blobs).
    fn copy_manifest(&mut self, d: &Desc, out: &mut Vec<u8>) -> Result<Hashed> {
        self.copy(d, out)
    }
    /// How to name the blob in an error message (a file, a URL).
    fn describe(&self, d: &Desc) -> String;
}

/// Copies blobs into a bundle's `data/blobs/sha256/`, each verified against
/// its digest and size before it gets its name; a blob already there (a
/// layer two images share) is not fetched again.
pub struct BlobWriter<'a> {
    pub dir: &'a Path,
    pub progress: &'a dyn crate::progress::Progress,
    counter: usize,
}

impl<'a> BlobWriter<'a> {
    pub fn new(dir: &'a Path, progress: &'a dyn crate::progress::Progress) -> Self {
        BlobWriter {
            dir,
            progress,
            counter: 0,
        }
    }

    fn tmp(&mut self) -> PathBuf {
        self.counter += 1;
        self.dir.join(format!(".img-{}", self.counter))
    }

    /// Fetches every blob of `ds` the directory lacks (each once), through
    /// `copy_to_files` so a registry downloads them in parallel; each is
    /// renamed to its digest only if its bytes match, else all are removed.
    pub fn fetch_many(&mut self, src: &mut dyn BlobSource, ds: &[Desc]) -> Result<()> {
        let mut seen = BTreeSet::new();
        let mut jobs = Vec::new();
        for d in ds {
            if seen.insert(d.digest) && !self.dir.join(d.digest.hex()).is_file() {
                let tmp = self.tmp();
                jobs.push((d.clone(), tmp));
            }
        }
        let res = src.copy_to_files(&jobs);
        let cleanup = |jobs: &[(Desc, PathBuf)]| {
            for (_, tmp) in jobs {
                let _ = fs_err::remove_file(tmp);
            }
        };
        let hashed = match res {
            Ok(h) => h,
            Err(e) => {
                cleanup(&jobs);
                return Err(e);
            }
        };
        for ((d, _), h) in jobs.iter().zip(&hashed) {
            if h.digest != d.digest || h.size != d.size {
                cleanup(&jobs);
                return Err(mismatch(&src.describe(d), d, h));
            }
        }
        for (d, tmp) in &jobs {
            fs_err::rename(tmp, self.dir.join(d.digest.hex()))?;
            self.progress.advance(d.size);
        }
        Ok(())
    }

    /// Fetches a manifest or index (bounded) into memory, verified; with
    /// `keep`, also into the blob directory.
    pub fn fetch_json(
        &mut self,
        src: &mut dyn BlobSource,
        d: &Desc,
        keep: bool,
    ) -> Result<Vec<u8>> {
        if d.size > MAX_JSON_BLOB {
            return Err(crate::error::single(
                src.describe(d),
                format!(
                    "a manifest of {} bytes; airlock accepts manifests and indexes up to {MAX_JSON_BLOB} bytes",
                    d.size
                ),
            ));
        }
        let mut bytes = Vec::new();
        let h = src.copy_manifest(d, &mut bytes)?;
        if h.digest != d.digest || h.size != d.size {
            return Err(mismatch(&src.describe(d), d, &h));
        }
        if keep {
            self.write_bytes(&bytes)?;
        }
        Ok(bytes)
    }

    /// Writes bytes airlock made (a converted manifest) as a blob.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<Sha256Digest> {
        let digest = Sha256Digest::of(bytes);
        let dest = self.dir.join(digest.hex());
        if !dest.is_file() {
            let tmp = self.tmp();
            fs_err::write(&tmp, bytes)?;
            fs_err::rename(&tmp, &dest)?;
        }
        Ok(digest)
    }
}

fn mismatch(what: &str, d: &Desc, h: &Hashed) -> Error {
    crate::error::single(
        what,
        format!(
            "blob does not match its digest: expected {} ({} bytes), got {} ({} bytes); the source is corrupt or was tampered with",
            d.digest.oci(),
            d.size,
            h.digest.oci(),
            h.size
        ),
    )
}

/// What an image source resolved: the top descriptor and the names it goes by.
pub struct Resolved {
    pub top: Desc,
    /// The reference the image is known by (`HOST/REPO:TAG`, `name:tag`).
    pub name: String,
}

/// Walks an image from `src` into the bundle's blob directory and returns its
/// artifact. With `platforms`, an index keeps only matching entries: one
/// match becomes the image itself (its original digest), several a new
/// index over them.
pub fn collect(
    src: &mut dyn BlobSource,
    w: &mut BlobWriter,
    resolved: Resolved,
    platforms: &[String],
    source: &str,
    reference: String,
) -> Result<Artifact> {
    let mut top = resolved.top;
    // The top is written only once it is known to be kept: an index that
    // `platforms` narrows to one manifest is not carried.
    let mut top_bytes = w.fetch_json(src, &top, false)?;
    let bad = |src: &dyn BlobSource, d: &Desc, e: String| crate::error::single(src.describe(d), e);
    let mut parsed = parse(&top.media_type, &top_bytes).map_err(|e| bad(src, &top, e))?;
    if let (false, Parsed::Index(entries)) = (platforms.is_empty(), &parsed) {
        let keep: Vec<&Desc> = entries
            .iter()
            .filter(|e| {
                e.platform
                    .as_deref()
                    .is_some_and(|p| platform_matches(p, platforms))
            })
            .collect();
        match keep.len() {
            0 => {
                let have: Vec<&str> = entries
                    .iter()
                    .filter_map(|e| e.platform.as_deref())
                    .collect();
                return Err(Error::Usage(format!(
                    "{source}: no manifest for platforms {platforms:?}; the index has {have:?}"
                )));
            }
            1 => {
                top = keep[0].clone();
                top_bytes = w.fetch_json(src, &top, false)?;
                parsed = parse(&top.media_type, &top_bytes).map_err(|e| bad(src, &top, e))?;
            }
            _ => {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&top_bytes).expect("parsed above");
                let digests: BTreeSet<String> = keep.iter().map(|d| d.digest.oci()).collect();
                if let Some(serde_json::Value::Array(ms)) = v.get_mut("manifests") {
                    ms.retain(|m| {
                        m.get("digest")
                            .and_then(|d| d.as_str())
                            .is_some_and(|d| digests.contains(d))
                    });
                }
                let bytes = canonical_json(&v);
                let digest = w.write_bytes(&bytes)?;
                top = Desc {
                    media_type: top.media_type.clone(),
                    digest,
                    size: bytes.len() as u64,
                    platform: None,
                };
                parsed = parse(&top.media_type, &bytes).map_err(|e| bad(src, &top, e))?;
                top_bytes = bytes;
            }
        }
    }
    w.write_bytes(&top_bytes)?;
    let mut blobs: Vec<Blob> = Vec::new();
    let mut seen: BTreeSet<Sha256Digest> = BTreeSet::from([top.digest]);
    let mut config: Option<Blob> = None;
    let mut queue: Vec<(Parsed, usize)> = vec![(parsed, 0)];
    while let Some((p, depth)) = queue.pop() {
        match p {
            Parsed::Index(entries) => {
                if depth >= MAX_DEPTH {
                    return Err(Error::Usage(format!(
                        "{source}: indexes nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                // Walk children in order: push in reverse onto the stack.
                let mut children = Vec::new();
                for e in entries {
                    if !seen.insert(e.digest) {
                        continue;
                    }
                    if !(is_index(&e.media_type) || is_manifest(&e.media_type)) {
                        return Err(bad(
                            src,
                            &e,
                            format!(
                                "index entry of media type {:?} is not a manifest",
                                e.media_type
                            ),
                        ));
                    }
                    let bytes = w.fetch_json(src, &e, true)?;
                    let child = parse(&e.media_type, &bytes).map_err(|err| bad(src, &e, err))?;
                    blobs.push(e.blob());
                    children.push((child, depth + 1));
                }
                children.reverse();
                queue.extend(children);
            }
            Parsed::Manifest { config: c, layers } => {
                if config.is_none() {
                    config = Some(c.blob());
                }
                let mut fetch = Vec::new();
                for d in std::iter::once(c).chain(layers) {
                    if !seen.insert(d.digest) {
                        continue;
                    }
                    blobs.push(d.blob());
                    fetch.push(d);
                }
                w.fetch_many(src, &fetch)?;
            }
        }
    }
    let config = config
        .ok_or_else(|| Error::Usage(format!("{source}: the index references no image manifest")))?;
    Ok(Artifact {
        kind: ArtifactKind::Image,
        name: resolved.name,
        reference,
        artifact_type: top.media_type.clone(),
        manifest: top.blob(),
        config,
        layers: Default::default(),
        packages: Vec::new(),
        source: Some(source.to_string()),
        blobs,
    })
}

/// The bundle reference of an image: `images/<reference made safe>`.
pub fn bundle_ref(name: &str, taken: &mut BTreeSet<String>) -> String {
    let base = format!("images/{}", crate::bundle::ref_component(name));
    let mut r = base.clone();
    let mut i = 2;
    while r == "images/" || !taken.insert(r.clone()) {
        r = format!("{base}-{i}");
        i += 1;
    }
    r
}

/// High side: checks an image artifact against the bytes of its manifests
/// (kept in memory during verification, each at most `MAX_JSON_BLOB`): every
/// blob referenced is declared with the same media type and size, nothing is
/// declared that is not referenced, and the recorded config is the image's.
pub fn check(a: &Artifact, kept: &HashMap<String, Vec<u8>>, report: &mut Report) {
    let name = &a.reference;
    if !a.layers.is_empty() {
        report.add(
            crate::bundle::DESCRIPTION,
            format!("image {name:?} declares file layers; images carry blobs only"),
        );
    }
    if !(is_index(&a.manifest.media_type) || is_manifest(&a.manifest.media_type)) {
        report.add(
            crate::bundle::DESCRIPTION,
            format!(
                "image {name:?} has media type {:?}, not a manifest or index",
                a.manifest.media_type
            ),
        );
        return;
    }
    let declared: BTreeMap<Sha256Digest, &Blob> = a.blobs.iter().map(|b| (b.digest, b)).collect();
    let mut used: BTreeSet<Sha256Digest> = BTreeSet::new();
    let mut first_config: Option<Desc> = None;
    let mut queue: Vec<(Blob, usize)> = vec![(a.manifest.clone(), 0)];
    let mut visited = BTreeSet::new();
    while let Some((b, depth)) = queue.pop() {
        if !visited.insert(b.digest) {
            continue;
        }
        let path = blob_path(&b.digest);
        let Some(bytes) = kept.get(&path) else {
            report.add(
                &path,
                format!("manifest of image {name:?} missing, damaged or larger than {MAX_JSON_BLOB} bytes"),
            );
            continue;
        };
        let parsed = match parse(&b.media_type, bytes) {
            Ok(p) => p,
            Err(e) => {
                report.add(&path, format!("image {name:?}: {e}"));
                continue;
            }
        };
        let refs: Vec<Desc> = match parsed {
            Parsed::Index(entries) => {
                if depth >= MAX_DEPTH {
                    report.add(&path, format!("image {name:?}: indexes nested too deep"));
                    continue;
                }
                entries
            }
            Parsed::Manifest { config, layers } => {
                if first_config.is_none() {
                    first_config = Some(config.clone());
                }
                std::iter::once(config).chain(layers).collect()
            }
        };
        // Children are visited in order (the stack gets them reversed), as
        // `collect` walked them, so the first manifest's config comes first.
        let mut children = Vec::new();
        for d in refs {
            match declared.get(&d.digest) {
                Some(x) if x.media_type == d.media_type && x.size == d.size => {
                    used.insert(d.digest);
                    if is_index(&d.media_type) || is_manifest(&d.media_type) {
                        children.push((d.blob(), depth + 1));
                    }
                }
                Some(x) => report.add(
                    &path,
                    format!(
                        "image {name:?} references {} as {:?} of {} bytes, but airlock.json declares {:?} of {} bytes",
                        d.digest.oci(),
                        d.media_type,
                        d.size,
                        x.media_type,
                        x.size
                    ),
                ),
                None => report.add(
                    &path,
                    format!(
                        "image {name:?} references blob {} that airlock.json does not declare",
                        d.digest.oci()
                    ),
                ),
            }
        }
        queue.extend(children.into_iter().rev());
    }
    for b in &a.blobs {
        if !used.contains(&b.digest) {
            report.add(
                crate::bundle::DESCRIPTION,
                format!(
                    "image {name:?} declares blob {} that its manifests do not reference",
                    b.digest.oci()
                ),
            );
        }
    }
    if let Some(c) = first_config {
        if c.blob() != a.config {
            report.add(
                crate::bundle::DESCRIPTION,
                format!("image {name:?}: the recorded config is not the image's config"),
            );
        }
    }
}

/// `oci-layout:DIR[:REF]`: an OCI image layout on disk (what `skopeo copy`
/// and `umoci` write).
pub struct LayoutSource {
    pub dir: PathBuf,
}

impl BlobSource for LayoutSource {
    fn copy(&mut self, d: &Desc, out: &mut dyn Write) -> Result<Hashed> {
        let p = self.dir.join("blobs/sha256").join(d.digest.hex());
        let md = fs_err::symlink_metadata(&p).map_err(|e| {
            Error::Usage(format!(
                "{e}; the layout lacks blob {} that its image references",
                d.digest.oci()
            ))
        })?;
        if !md.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file",
                p.display()
            )));
        }
        let mut f = fs_err::File::open(&p)?;
        Ok(copy_hashed(&mut f, out, Some(d.size), &|_| {})?)
    }
    fn describe(&self, d: &Desc) -> String {
        self.dir
            .join("blobs/sha256")
            .join(d.digest.hex())
            .display()
            .to_string()
    }
}

/// Picks the image in an OCI layout: the entry whose ref.name is `want`, or
/// the only entry. Returns its descriptor and ref.name.
pub fn resolve_layout(dir: &Path, want: Option<&str>) -> Result<(Desc, Option<String>)> {
    let index_path = dir.join("index.json");
    let md = fs_err::metadata(&index_path).map_err(|e| {
        Error::Usage(format!(
            "{e}; oci-layout: {} is not an OCI image layout",
            dir.display()
        ))
    })?;
    if md.len() > MAX_JSON_BLOB {
        return Err(Error::input(&index_path, "index.json is too large"));
    }
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<Entry>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        media_type: String,
        digest: String,
        size: u64,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    let index: Index = serde_json::from_slice(&fs_err::read(&index_path)?)
        .map_err(|e| Error::input(&index_path, format!("not an OCI image index: {e}")))?;
    let named = |e: &Entry| e.annotations.get(crate::bundle::REF_NAME).cloned();
    let entry = match want {
        Some(r) => index
            .manifests
            .iter()
            .find(|e| named(e).as_deref() == Some(r))
            .ok_or_else(|| {
                let names: Vec<String> = index.manifests.iter().filter_map(named).collect();
                Error::Usage(format!(
                    "{}: no image named {r:?} (the layout has {names:?})",
                    index_path.display()
                ))
            })?,
        None => match index.manifests.as_slice() {
            [one] => one,
            [] => return Err(Error::input(&index_path, "the layout holds no image")),
            many => {
                let names: Vec<String> = many.iter().filter_map(named).collect();
                return Err(Error::Usage(format!(
                    "{}: the layout holds {} images; name one as oci-layout:DIR:REF (one of {names:?})",
                    index_path.display(),
                    many.len()
                )));
            }
        },
    };
    let digest = entry
        .digest
        .strip_prefix("sha256:")
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| {
            Error::input(
                &index_path,
                format!("digest {:?} is not a sha256 digest", entry.digest),
            )
        })?;
    Ok((
        Desc {
            media_type: entry.media_type.clone(),
            digest,
            size: entry.size,
            platform: None,
        },
        named(entry),
    ))
}

/// `docker-archive:FILE`: the tar `docker save` writes (manifest.json, a
/// config and layer tars), converted to an OCI image deterministically: the
/// config's bytes are kept, each layer becomes an
/// `application/vnd.oci.image.layer.v1.tar` (`+gzip` when compressed) blob
/// with its file's digest, and a canonical OCI manifest is written.
/// Returns the manifest's descriptor, the image's name and its source.
pub fn convert_docker_archive(
    file: &Path,
    want: Option<&str>,
    w: &mut BlobWriter,
) -> Result<(Desc, Option<String>)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let not_archive = |msg: String| Error::input(file, msg);
    // Pass 1: manifest.json (seeking past the layers) and symbolic links
    // between layer files (older `docker save` links a repeated layer).
    let mut links: HashMap<String, String> = HashMap::new();
    let mut manifest_json: Option<Vec<u8>> = None;
    {
        let mut a = tar::Archive::new(fs_err::File::open(file)?);
        let mut last = String::new();
        for member in Members::new(a.entries_with_seek()?) {
            let member = member.map_err(|stop| archive_stop(file, &last, stop))?;
            let path = archive_member(file, &member)?;
            last.clone_from(&path);
            let kind = member.kind();
            if kind.is_symlink() {
                if let Some(target) = member.link_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let parent = path.rsplit_once('/').map(|x| x.0).unwrap_or("");
                    links.insert(path.clone(), join_relative(parent, &target));
                }
            } else if path == "manifest.json" && kind.is_file() {
                let mut entry = member.entry;
                if entry.size() > MAX_JSON_BLOB {
                    return Err(not_archive("manifest.json is too large".into()));
                }
                let mut b = Vec::new();
                entry.read_to_end(&mut b)?;
                manifest_json = Some(b);
            }
        }
    }
    let manifest_json = manifest_json
        .ok_or_else(|| not_archive("no manifest.json: not a `docker save` archive".into()))?;
    let entries: Vec<Entry> = serde_json::from_slice(&manifest_json)
        .map_err(|e| not_archive(format!("manifest.json: {e}")))?;
    let tags = |e: &Entry| e.repo_tags.clone().unwrap_or_default();
    let entry = match (want, entries.as_slice()) {
        (_, []) => return Err(not_archive("manifest.json lists no image".into())),
        (None, [one]) => one,
        (Some(w), all) => all
            .iter()
            .find(|e| tags(e).iter().any(|t| t == w))
            .or(if all.len() == 1 { all.first() } else { None })
            .ok_or_else(|| {
                not_archive(format!(
                    "no image tagged {w:?} (the archive has {:?})",
                    all.iter().flat_map(tags).collect::<Vec<_>>()
                ))
            })?,
        (None, all) => {
            return Err(not_archive(format!(
                "the archive holds {} images ({:?}); set `name:` in the manifest entry to pick one",
                all.len(),
                all.iter().flat_map(tags).collect::<Vec<_>>()
            )))
        }
    };
    let resolve = |p: &str| {
        let mut p = normalize_tar_path(p);
        for _ in 0..8 {
            match links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    };
    let config_path = resolve(&entry.config);
    let layer_paths: Vec<String> = entry.layers.iter().map(|l| resolve(l)).collect();
    let wanted: BTreeSet<&str> = std::iter::once(config_path.as_str())
        .chain(layer_paths.iter().map(String::as_str))
        .collect();
    // Pass 2: stream each needed file into the blob directory while hashing.
    let mut got: HashMap<String, (Hashed, bool)> = HashMap::new();
    let mut config_bytes: Option<Vec<u8>> = None;
    {
        let mut a = tar::Archive::new(fs_err::File::open(file)?);
        let mut last = String::new();
        for member in Members::new(a.entries()?) {
            let member = member.map_err(|stop| archive_stop(file, &last, stop))?;
            let path = archive_member(file, &member)?;
            last.clone_from(&path);
            if !wanted.contains(path.as_str()) || !member.kind().is_file() {
                continue;
            }
            let mut entry = member.entry;
            if got.contains_key(&path) {
                return Err(not_archive(format!("{path} appears twice")));
            }
            if path == config_path {
                if entry.size() > MAX_JSON_BLOB {
                    return Err(not_archive(format!("config {path} is too large")));
                }
                let mut b = Vec::new();
                entry.read_to_end(&mut b)?;
                let d = w.write_bytes(&b)?;
                got.insert(
                    path.clone(),
                    (
                        Hashed {
                            digest: d,
                            size: b.len() as u64,
                        },
                        false,
                    ),
                );
                config_bytes = Some(b);
                continue;
            }
            let tmp = w.tmp();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&tmp)?);
            let mut head = [0u8; 2];
            let mut peek = PeekReader {
                inner: &mut entry,
                head: &mut head,
                filled: 0,
            };
            let h = copy_hashed(&mut peek, &mut out, None, &|n| w.progress.advance(n))?;
            let gzip = peek.filled == 2 && head == [0x1f, 0x8b];
            out.into_inner()
                .map_err(|e| Error::Io(e.into_error()))?
                .sync_all()?;
            fs_err::rename(&tmp, w.dir.join(h.digest.hex()))?;
            got.insert(path, (h, gzip));
        }
    }
    let config_bytes =
        config_bytes.ok_or_else(|| not_archive(format!("config {} is missing", entry.config)))?;
    let (config_h, _) = got[&config_path];
    // The config's diff_ids name the uncompressed layers: they must match.
    let diff_ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(&config_bytes)
        .ok()
        .and_then(|v| {
            v.get("rootfs")?.get("diff_ids")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .ok_or_else(|| not_archive(format!("config {config_path}: no rootfs.diff_ids")))?;
    if diff_ids.len() != layer_paths.len() {
        return Err(not_archive(format!(
            "config {config_path} lists {} layers but manifest.json {}",
            diff_ids.len(),
            layer_paths.len()
        )));
    }
    let mut layers = Vec::new();
    for (i, p) in layer_paths.iter().enumerate() {
        let (h, gzip) = *got
            .get(p)
            .ok_or_else(|| not_archive(format!("layer {p} is missing")))?;
        if !gzip && diff_ids[i] != h.digest.oci() {
            return Err(crate::error::single(
                format!("{}:{p}", file.display()),
                format!(
                    "layer does not match its digest: the config's diff_id is {} but the layer's bytes hash to {}; the archive is corrupt or was tampered with",
                    diff_ids[i],
                    h.digest.oci()
                ),
            ));
        }
        layers.push(serde_json::json!({
            "mediaType": if gzip { MT_LAYER_TAR_GZIP } else { MT_LAYER_TAR },
            "digest": h.digest.oci(),
            "size": h.size,
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {
            "mediaType": MT_OCI_CONFIG,
            "digest": config_h.digest.oci(),
            "size": config_h.size,
        },
        "layers": layers,
    });
    let bytes = canonical_json(&manifest);
    let digest = w.write_bytes(&bytes)?;
    let name = match want {
        Some(w) => Some(w.to_string()),
        None => entry.repo_tags.as_ref().and_then(|t| t.first()).cloned(),
    };
    Ok((
        Desc {
            media_type: MT_MANIFEST.to_string(),
            digest,
            size: bytes.len() as u64,
            platform: None,
        },
        name,
    ))
}

struct PeekReader<'a> {
    inner: &'a mut dyn Read,
    head: &'a mut [u8; 2],
    filled: usize,
}

impl Read for PeekReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut i = 0;
        while self.filled < 2 && i < n {
            self.head[self.filled] = buf[i];
            self.filled += 1;
            i += 1;
        }
        Ok(n)
    }
}

/// A blob source over a directory of blobs already verified (the bundle's
/// own blob directory), for walking a converted image.
pub struct DirSource<'a> {
    pub dir: &'a Path,
}

impl BlobSource for DirSource<'_> {
    fn copy(&mut self, d: &Desc, out: &mut dyn Write) -> Result<Hashed> {
        let mut f = fs_err::File::open(self.dir.join(d.digest.hex()))?;
        Ok(copy_hashed(&mut f, out, Some(d.size), &|_| {})?)
    }
    fn describe(&self, d: &Desc) -> String {
        self.dir.join(d.digest.hex()).display().to_string()
    }
}

/// Why the walk of a `docker save` archive stopped, as an error naming the
/// file and the member before: metadata over the bound is refused as
/// hostile content (exit 1), a damaged archive is a bad input (exit 2).
fn archive_stop(file: &Path, last: &str, stop: Stop) -> Error {
    let after = if last.is_empty() {
        "at the start of the archive".to_string()
    } else {
        format!("after {last}")
    };
    let msg = format!(
        "{stop} ({after}); not a `docker save` archive airlock can read, save the image again"
    );
    match stop {
        Stop::TooLarge { .. } => {
            let mut r = Report::default();
            r.add(file.display().to_string(), msg);
            Error::PackRefused(r)
        }
        _ => Error::input(file, msg),
    }
}

/// A member's real name (a GNU long name or pax `path` applied). A pax
/// `size` other than the header's is refused: the walk goes by the header,
/// the tools that made or read the archive by the record, so the two would
/// disagree on what the member holds and where the next one starts.
fn archive_member<R: Read>(file: &Path, m: &Member<'_, R>) -> Result<String> {
    let path = normalize_tar_path(&String::from_utf8_lossy(&m.path_bytes()));
    if m.meta.size_disagrees(m.entry.size()) {
        let mut r = Report::default();
        r.add(
            format!("{}:{path}", file.display()),
            format!(
                "a pax size record says other than the member's header ({} bytes); airlock reads only archives whose headers give every member's size; save the image again",
                m.entry.size()
            ),
        );
        return Err(Error::PackRefused(r));
    }
    Ok(path)
}

fn normalize_tar_path(p: &str) -> String {
    p.trim_start_matches("./").trim_end_matches('/').to_string()
}

fn join_relative(parent: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') || parent.is_empty() {
        Vec::new()
    } else {
        parent.split('/').collect()
    };
    for c in target.trim_start_matches('/').split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Suffix of the OCI index alias `export` adds for a Docker schema 2 image.
pub const OCI_ALIAS_SUFFIX: &str = "-oci-index";

/// skopeo's `oci:` transport (1.9, and later releases still) skips
/// index.json entries with Docker media types ("no descriptor found for
/// reference"). For a Docker schema 2 manifest or manifest list, this writes
/// an OCI image index into `blobs` that names the original manifest(s),
/// digests unchanged, with their platforms, and returns its index.json
/// entry, named `<reference>-oci-index`. `None` for OCI images. `blob` gives
/// the store path of a blob; what is read is checked against its digest.
pub fn write_oci_alias(
    a: &crate::bundle::Artifact,
    blobs: &Path,
    blob: &dyn Fn(&Sha256Digest) -> PathBuf,
) -> Result<Option<oci_spec::image::Descriptor>> {
    use oci_spec::image::{Descriptor, MediaType};
    let mt = a.manifest.media_type.as_str();
    if mt != MT_DOCKER_MANIFEST && mt != MT_DOCKER_LIST {
        return Ok(None);
    }
    let read = |digest: &Sha256Digest| -> Result<serde_json::Value> {
        let path = blob(digest);
        let mut bytes = Vec::new();
        fs_err::File::open(&path)?
            .take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut bytes)?;
        if Sha256Digest::of(&bytes) != *digest {
            return Err(crate::error::single(
                path.display().to_string(),
                format!("store blob is corrupt: expected {digest}"),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| crate::error::single(path.display().to_string(), format!("not JSON: {e}")))
    };
    let top = read(&a.manifest.digest)?;
    let children: Vec<serde_json::Value> = if mt == MT_DOCKER_LIST {
        top["manifests"].as_array().cloned().unwrap_or_default()
    } else {
        let mut platform = serde_json::Map::new();
        if let Some(cfg) = top["config"]["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .and_then(|h| h.parse::<Sha256Digest>().ok())
        {
            let cfg = read(&cfg)?;
            for k in ["architecture", "os", "variant"] {
                if let Some(v) = cfg[k].as_str().filter(|v| !v.is_empty()) {
                    platform.insert(k.into(), v.into());
                }
            }
        }
        let mut d = serde_json::json!({
            "mediaType": mt,
            "digest": a.manifest.digest.oci(),
            "size": a.manifest.size,
        });
        if platform.contains_key("architecture") && platform.contains_key("os") {
            d["platform"] = platform.into();
        }
        vec![d]
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": children,
        "annotations": {"dev.airlock.image.digest": a.manifest.digest.oci()},
    });
    let bytes = crate::bundle::canonical_json(&index);
    let digest = Sha256Digest::of(&bytes);
    let dest = blobs.join(digest.hex());
    if !dest.exists() {
        fs_err::write(&dest, &bytes)?;
    }
    let mut desc = Descriptor::new(
        MediaType::ImageIndex,
        bytes.len() as u64,
        crate::bundle::oci_digest(&digest),
    );
    desc.set_annotations(Some(HashMap::from([(
        "org.opencontainers.image.ref.name".to_string(),
        format!("{}{OCI_ALIAS_SUFFIX}", a.name),
    )])));
    Ok(Some(desc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> String {
        Sha256Digest::of(b).oci()
    }

    #[test]
    fn parses_manifests_and_indexes() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_MANIFEST}","config":{{"mediaType":"{MT_OCI_CONFIG}","digest":"{}","size":2}},"layers":[{{"mediaType":"{MT_LAYER_TAR}","digest":"{}","size":3}}]}}"#,
            d(b"{}"),
            d(b"abc")
        );
        match parse(MT_MANIFEST, m.as_bytes()).unwrap() {
            Parsed::Manifest { config, layers } => {
                assert_eq!(config.size, 2);
                assert_eq!(layers.len(), 1);
                assert_eq!(layers[0].digest, Sha256Digest::of(b"abc"));
            }
            other => panic!("{other:?}"),
        }
        // The document's mediaType must agree with its descriptor's.
        assert!(parse(MT_DOCKER_MANIFEST, m.as_bytes())
            .unwrap_err()
            .contains("contradicts"));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MT_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
            d(b"x")
        );
        match parse(MT_INDEX, i.as_bytes()).unwrap() {
            Parsed::Index(e) => assert_eq!(e[0].platform.as_deref(), Some("linux/arm64/v8")),
            other => panic!("{other:?}"),
        }
        assert!(parse(MT_INDEX, br#"{"schemaVersion":1}"#).is_err());
        assert!(parse(
            MT_MANIFEST,
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha512:ab","size":1}}"#
        )
        .unwrap_err()
        .contains("sha256"));
    }

    fn artifact(manifest: &[u8], blobs: Vec<Blob>, config: Blob) -> Artifact {
        Artifact {
            kind: ArtifactKind::Image,
            name: "r.example/x:1".into(),
            reference: "images/r.example/x-1".into(),
            artifact_type: MT_MANIFEST.into(),
            manifest: Blob {
                media_type: MT_MANIFEST.into(),
                digest: Sha256Digest::of(manifest),
                size: manifest.len() as u64,
            },
            config,
            layers: Default::default(),
            packages: vec![],
            source: None,
            blobs,
        }
    }

    #[test]
    fn check_finds_undeclared_unreferenced_and_resized_blobs() {
        let config = Blob {
            media_type: MT_OCI_CONFIG.into(),
            digest: Sha256Digest::of(b"{}"),
            size: 2,
        };
        let layer = Blob {
            media_type: MT_LAYER_TAR.into(),
            digest: Sha256Digest::of(b"abc"),
            size: 3,
        };
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_MANIFEST}","config":{{"mediaType":"{MT_OCI_CONFIG}","digest":"{}","size":2}},"layers":[{{"mediaType":"{MT_LAYER_TAR}","digest":"{}","size":3}}]}}"#,
            d(b"{}"),
            d(b"abc")
        );
        let kept = HashMap::from([(
            blob_path(&Sha256Digest::of(m.as_bytes())),
            m.clone().into_bytes(),
        )]);
        let good = artifact(
            m.as_bytes(),
            vec![config.clone(), layer.clone()],
            config.clone(),
        );
        let mut r = Report::default();
        check(&good, &kept, &mut r);
        assert!(r.is_ok(), "{r}");

        let problems = |a: &Artifact| {
            let mut r = Report::default();
            check(a, &kept, &mut r);
            r.findings
                .iter()
                .map(|f| f.problem.clone())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let missing = artifact(m.as_bytes(), vec![config.clone()], config.clone());
        assert!(problems(&missing).contains("does not declare"));
        let extra = Blob {
            media_type: MT_LAYER_TAR.into(),
            digest: Sha256Digest::of(b"zzz"),
            size: 3,
        };
        let unreferenced = artifact(
            m.as_bytes(),
            vec![config.clone(), layer.clone(), extra],
            config.clone(),
        );
        assert!(problems(&unreferenced).contains("do not reference"));
        let mut resized = layer.clone();
        resized.size = 4;
        let wrong = artifact(m.as_bytes(), vec![config.clone(), resized], config.clone());
        assert!(problems(&wrong).contains("declares"));
        let other_config = artifact(m.as_bytes(), vec![config.clone(), layer], layer_as_config());
        assert!(problems(&other_config).contains("recorded config"));
        // A manifest that is not kept (too large or damaged) is a finding.
        let mut r = Report::default();
        check(&good, &HashMap::new(), &mut r);
        assert!(!r.is_ok());
    }

    fn layer_as_config() -> Blob {
        Blob {
            media_type: MT_OCI_CONFIG.into(),
            digest: Sha256Digest::of(b"other"),
            size: 5,
        }
    }

    #[test]
    fn platforms() {
        let w = vec!["linux/arm64".to_string()];
        assert!(platform_matches("linux/arm64", &w));
        assert!(platform_matches("linux/arm64/v8", &w));
        assert!(!platform_matches("linux/amd64", &w));
        assert!(!platform_matches(
            "linux/arm64/v8",
            &["linux/arm64/v7".to_string()]
        ));
    }

    #[test]
    fn relative_links() {
        assert_eq!(join_relative("abc", "../def/layer.tar"), "def/layer.tar");
        assert_eq!(join_relative("", "x/layer.tar"), "x/layer.tar");
    }
}
