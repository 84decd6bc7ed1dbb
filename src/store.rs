//! The high side's store: one OCI layout (`STORE/oci`) whose blobs every
//! imported bundle shares, a record of each imported bundle
//! (`STORE/bundles/<name>/<version>/`, its verified tag files), and a
//! hash-chained ledger (`STORE/ledger.jsonl`) of imports, refusals and exports.
//!
//! Import verifies the tag files before writing anything, streams the payload
//! into a staging directory inside the store while hashing it, and commits
//! only when everything verified: blobs renamed into place (content-addressed,
//! so harmless if a crash stops here), then `oci/index.json` replaced
//! atomically, then the bundle record renamed into place (the commit point),
//! then the ledger entry. A refused import removes its staging directory, so
//! the store is as it was apart from the ledger's record of the refusal.
//! An exclusive lock on `STORE/lock` serializes writers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::bundle::*;
use crate::digest::{copy_hashed, Sha256Digest};
use crate::error::{Error, Result};
use crate::policy::TrustPolicy;
use crate::progress::Progress;
use crate::source::Form;
use crate::verify::{self, Staging, Verified};

pub const BUNDLE_ID: &str = "dev.airlock.bundle.id";
const RECORD: &str = "record.json";

/// How to import: downgrade permission, the high side's signing key, and where to write a receipt.
#[derive(Default)]
pub struct ImportOptions<'a> {
    pub allow_downgrade: bool,
    pub key: Option<&'a crate::keys::PrivateKey>,
    pub receipt: Option<PathBuf>,
}

pub struct Store {
    pub root: PathBuf,
}

/// What the store keeps about an imported bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleRecord {
    pub id: String,
    pub name: String,
    pub version: String,
    pub imported: String,
    pub signers: BTreeMap<String, Vec<String>>,
    pub artifacts: usize,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub time: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub detail: String,
    /// sha256 of the previous ledger line; absent for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub id: String,
    pub name: String,
    pub version: String,
    pub already_present: bool,
    pub blobs_written: usize,
    pub store: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub name: String,
    pub version: String,
    pub to: PathBuf,
    pub files: Vec<PathBuf>,
}

struct Lock(#[allow(dead_code)] std::fs::File);

impl Store {
    pub fn new(root: &Path) -> Self {
        Store {
            root: root.to_path_buf(),
        }
    }

    fn oci(&self) -> PathBuf {
        self.root.join("oci")
    }
    fn blob(&self, d: &Sha256Digest) -> PathBuf {
        self.oci().join("blobs/sha256").join(d.hex())
    }
    fn ledger(&self) -> PathBuf {
        self.root.join("ledger.jsonl")
    }
    fn record_dir(&self, name: &str, version: &str) -> PathBuf {
        self.root.join("bundles").join(name).join(version)
    }

    /// Creates the store's skeleton if needed and takes its exclusive lock.
    fn lock(&self) -> Result<Lock> {
        fs_err::create_dir_all(self.oci().join("blobs/sha256"))?;
        fs_err::create_dir_all(self.root.join("bundles"))?;
        if !self.oci().join("oci-layout").exists() {
            write_atomic(
                &self.oci().join("oci-layout"),
                OCI_LAYOUT_CONTENT.as_bytes(),
            )?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot open {}: {e}",
                    self.root.join("lock").display()
                ))
            })?;
        f.lock()
            .map_err(|e| Error::Usage(format!("cannot lock store {}: {e}", self.root.display())))?;
        Ok(Lock(f))
    }

    fn ensure_exists(&self) -> Result<()> {
        if !self.root.join("bundles").is_dir() {
            return Err(Error::Usage(format!(
                "{} is not an airlock store (nothing imported yet?)",
                self.root.display()
            )));
        }
        Ok(())
    }

    /// Verifies `bundle` against `policy` and imports it.
    pub fn import(
        &self,
        bundle: &[PathBuf],
        policy: &TrustPolicy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<Imported> {
        if opts.receipt.is_some() && opts.key.is_none() {
            return Err(Error::Usage(
                "--receipt needs --key: a receipt is signed by the high side's key".into(),
            ));
        }
        let form = Form::open_all(bundle)?;
        let _lock = self.lock()?;
        match self.import_locked(&form, policy, opts, progress) {
            Ok(done) => {
                if let (Some(key), Some(path)) = (opts.key, &opts.receipt) {
                    let rec = self
                        .record(&done.name, &done.version)?
                        .expect("just imported");
                    let d = self.description(&rec)?;
                    let id: Sha256Digest = rec.id.parse().expect("ids are digests");
                    let blobs = d.blobs().into_keys().collect();
                    let bytes = crate::receipt::make(
                        key,
                        &d.name,
                        &d.version,
                        &id,
                        blobs,
                        crate::clock::now(),
                    );
                    fs_err::write(path, bytes)?;
                }
                Ok(done)
            }
            Err(e) if e.exit_code() == 1 => {
                let tags = verify::read_tags(&form).ok();
                let desc = tags
                    .as_ref()
                    .and_then(|t| t.files.get(DESCRIPTION))
                    .and_then(|b| serde_json::from_slice::<Description>(b).ok());
                let id = tags
                    .as_ref()
                    .and_then(|t| t.files.get(TAGMANIFEST))
                    .map(|b| Sha256Digest::of(b).hex());
                let detail = format!("refused {}: {}", form.path().display(), e);
                self.append_ledger(
                    "refuse",
                    id,
                    desc.as_ref().map(|d| (d.name.clone(), d.version.clone())),
                    &detail,
                )?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn import_locked(
        &self,
        form: &Form,
        policy: &TrustPolicy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<Imported> {
        let allow_downgrade = opts.allow_downgrade;
        // Tag files first: nothing is written unless they verify.
        let pre = verify::check_tags(verify::read_tags(form)?, policy, crate::clock::now());
        pre.report.clone().into_result()?;
        let d = pre
            .description
            .as_ref()
            .expect("verified tags have a description");
        let dir = self.record_dir(&d.name, &d.version);
        if let Some(existing) = self.record(&d.name, &d.version)? {
            if existing.id == pre.id.hex() {
                // Nothing to write, but this copy must still verify in full:
                // a damaged or tampered copy is refused, never reported imported.
                verify::verify(form, policy, None, progress)?;
                return Ok(Imported {
                    id: existing.id,
                    name: existing.name,
                    version: existing.version,
                    already_present: true,
                    blobs_written: 0,
                    store: self.root.clone(),
                });
            }
            return Err(Error::Refused(format!(
                "{} {} is already imported with a different id ({}); a version is imported once — publish a new version",
                d.name, d.version, existing.id
            )));
        }
        let version = semver::Version::parse(&d.version).expect("checked");
        let newest = self
            .list()?
            .into_iter()
            .filter(|r| r.name == d.name)
            .filter_map(|r| semver::Version::parse(&r.version).ok())
            .max();
        let downgrade = newest.as_ref().is_some_and(|n| version < *n);
        if downgrade && !allow_downgrade {
            return Err(Error::Refused(format!(
                "{} {} is older than {} already imported; refusing a downgrade (pass --allow-downgrade to import it anyway)",
                d.name,
                d.version,
                newest.expect("set")
            )));
        }

        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.root)?;
        let have: HashSet<Sha256Digest> = d
            .blobs()
            .keys()
            .filter(|b| self.blob(b).is_file())
            .copied()
            .collect();
        let verified: Verified = verify::verify(
            form,
            policy,
            Some(&Staging {
                dir: staging.path(),
                have: &have,
            }),
            progress,
        )?;
        if verified.id != pre.id {
            return Err(crate::error::single(
                form.path().display().to_string(),
                "the bundle changed while it was being imported",
            ));
        }
        let d = &verified.description;

        // Commit: blobs, then the index, then the record (the commit point).
        let mut written = 0;
        for digest in d.blobs().keys() {
            let staged = staging.path().join(digest.hex());
            if staged.exists() && !self.blob(digest).exists() {
                fs_err::rename(&staged, self.blob(digest))?;
                written += 1;
            }
        }
        sync_dir(&self.oci().join("blobs/sha256"))?;
        self.add_to_index(d, &verified.id)?;

        let rec_stage = staging.path().join("record");
        fs_err::create_dir_all(rec_stage.join(SIGNATURES_DIR))?;
        fs_err::create_dir_all(rec_stage.join(CUSTODY_DIR))?;
        for (name, bytes) in verified
            .tags
            .files
            .iter()
            .chain(&verified.tags.signatures)
            .chain(&verified.tags.custody)
        {
            fs_err::write(rec_stage.join(name), bytes)?;
        }
        if let Some(key) = opts.key {
            let note = format!("imported into store {}", self.root.display());
            let (rel, bytes) = crate::custody::new_event(
                &verified.tags.custody,
                key,
                "imported",
                Some(&note),
                &verified.id,
                crate::clock::now(),
            );
            fs_err::write(rec_stage.join(rel), bytes)?;
        }
        let record = BundleRecord {
            id: verified.id.hex(),
            name: d.name.clone(),
            version: d.version.clone(),
            imported: crate::clock::rfc3339(crate::clock::now()),
            signers: verified.signers.counted.clone(),
            artifacts: d.artifacts.len(),
            size: d.total_size(),
        };
        write_atomic(
            &rec_stage.join(RECORD),
            &serde_json::to_vec_pretty(&record).expect("serializes"),
        )?;
        fs_err::create_dir_all(dir.parent().expect("has parent"))?;
        fs_err::rename(&rec_stage, &dir)?;
        sync_dir(dir.parent().expect("has parent"))?;
        let detail = format!(
            "imported {} {} ({} blob(s) new){}",
            d.name,
            d.version,
            written,
            if downgrade {
                "; DOWNGRADE allowed by --allow-downgrade"
            } else {
                ""
            }
        );
        self.append_ledger(
            if downgrade {
                "import-downgrade"
            } else {
                "import"
            },
            Some(record.id.clone()),
            Some((d.name.clone(), d.version.clone())),
            &detail,
        )?;
        Ok(Imported {
            id: record.id,
            name: record.name,
            version: record.version,
            already_present: false,
            blobs_written: written,
            store: self.root.clone(),
        })
    }

    fn read_index(&self) -> Result<Option<ImageIndex>> {
        let p = self.oci().join("index.json");
        if !p.exists() {
            return Ok(None);
        }
        let bytes = fs_err::read(&p)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Usage(format!("{}: store index is corrupt: {e}", p.display())))
    }

    fn add_to_index(&self, d: &Description, id: &Sha256Digest) -> Result<()> {
        let mut entries: Vec<Descriptor> = self
            .read_index()?
            .map(|i| i.manifests().clone())
            .unwrap_or_default();
        for a in &d.artifacts {
            // Images are named by their original reference, so
            // `skopeo inspect oci:STORE/oci:REF` finds them; the latest
            // import of a reference names it, as a push to a tag would.
            let reference = if a.kind == ArtifactKind::Image {
                a.name.clone()
            } else {
                store_ref(&d.name, &d.version, &a.reference)
            };
            entries.retain(|e| {
                e.annotations().as_ref().and_then(|m| m.get(REF_NAME)) != Some(&reference)
            });
            entries.push(index_entry(a, reference, Some(id)));
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(entries)
            .build()
            .map_err(|e| Error::Usage(format!("cannot build store index: {e}")))?;
        write_atomic(&self.oci().join("index.json"), &canonical_json(&index))
    }

    pub fn record(&self, name: &str, version: &str) -> Result<Option<BundleRecord>> {
        let p = self.record_dir(name, version).join(RECORD);
        if !p.exists() {
            return Ok(None);
        }
        let rec = serde_json::from_slice(&fs_err::read(&p)?)
            .map_err(|e| Error::Usage(format!("{}: corrupt record: {e}", p.display())))?;
        Ok(Some(rec))
    }

    /// Every imported bundle, sorted by name then version.
    pub fn list(&self) -> Result<Vec<BundleRecord>> {
        let mut out = Vec::new();
        let bundles = self.root.join("bundles");
        if !bundles.is_dir() {
            return Ok(out);
        }
        for name in fs_err::read_dir(&bundles)? {
            let name = name?;
            if !name.file_type()?.is_dir() {
                continue;
            }
            for version in fs_err::read_dir(name.path())? {
                let version = version?;
                let n = name.file_name().to_string_lossy().into_owned();
                let v = version.file_name().to_string_lossy().into_owned();
                if let Some(r) = self.record(&n, &v)? {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| {
            a.name.cmp(&b.name).then_with(|| {
                match (
                    semver::Version::parse(&a.version),
                    semver::Version::parse(&b.version),
                ) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.version.cmp(&b.version),
                }
            })
        });
        Ok(out)
    }

    /// Finds `NAME` (newest version) or `NAME@VERSION`.
    pub fn find(&self, spec: &str) -> Result<BundleRecord> {
        let (name, version) = match spec.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        self.list()?
            .into_iter()
            .filter(|r| r.name == name && version.is_none_or(|v| r.version == v))
            .next_back()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no bundle {spec} in store {}; see `airlock store ls --store {}`",
                    self.root.display(),
                    self.root.display()
                ))
            })
    }

    pub fn description(&self, r: &BundleRecord) -> Result<Description> {
        let p = self.record_dir(&r.name, &r.version).join(DESCRIPTION);
        serde_json::from_slice(&fs_err::read(&p)?)
            .map_err(|e| Error::Usage(format!("{}: corrupt description: {e}", p.display())))
    }

    /// Writes a bundle's models and file sets into `to`, byte-identical to what
    /// was packed, re-hashing every blob on the way out.
    pub fn export(&self, spec: &str, to: &Path, progress: &dyn Progress) -> Result<Exported> {
        self.ensure_exists()?;
        let _lock = self.lock()?;
        let rec = self.find(spec)?;
        let d = self.description(&rec)?;
        let mut files = Vec::new();
        progress.begin(
            "exporting",
            d.artifacts
                .iter()
                .flat_map(|a| &a.layers)
                .map(|l| l.size)
                .sum(),
        );
        // Python wheels and vendored crates of several artifacts share one
        // directory: a file two artifacts carry alike is written once.
        let mut exported: HashMap<PathBuf, Sha256Digest> = HashMap::new();
        for a in &d.artifacts {
            for l in &a.layers {
                if !safe_relative(&l.path) {
                    return Err(crate::error::single(
                        &l.path,
                        "unsafe path in the store's description",
                    ));
                }
                // Where the SBOM says it is (sources::packages::export_path):
                // models/NAME/, files/, sbom/, python/, cargo/. Images are
                // written as an OCI layout below, not as files.
                let Some(rel) = crate::sources::packages::export_path(&d, a, l) else {
                    continue;
                };
                let dest = to.join(rel);
                if exported.insert(dest.clone(), l.digest) == Some(l.digest) {
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                let mut out = fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(|e| {
                        Error::Usage(format!(
                            "{}: {e}; export into an empty directory",
                            dest.display()
                        ))
                    })?;
                let mut src = fs_err::File::open(self.blob(&l.digest))?;
                let h = copy_hashed(&mut src, &mut out, Some(l.size), &|n| progress.advance(n))?;
                if h.digest != l.digest || h.size != l.size {
                    drop(out);
                    let _ = fs_err::remove_file(&dest);
                    return Err(crate::error::single(
                        self.blob(&l.digest).display().to_string(),
                        format!(
                            "store blob is corrupt: expected {} ({} bytes), found {} ({} bytes)",
                            l.digest, l.size, h.digest, h.size
                        ),
                    ));
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = if l.mode == MODE_EXEC {
                        MODE_EXEC
                    } else {
                        MODE_FILE
                    };
                    out.set_permissions(std::fs::Permissions::from_mode(mode))?;
                }
                files.push(dest);
            }
        }
        files.extend(self.export_images(&d, &to.join("images"), progress)?);
        // requirements.txt and cargo/config.toml, rendered from the pins.
        files.extend(crate::sources::packages::export_rendered(&d, to, &|dg| {
            self.blob(dg)
        })?);
        progress.finish();
        self.append_ledger(
            "export",
            Some(rec.id.clone()),
            Some((rec.name.clone(), rec.version.clone())),
            &format!("exported {} {} to {}", rec.name, rec.version, to.display()),
        )?;
        Ok(Exported {
            name: rec.name,
            version: rec.version,
            to: to.to_path_buf(),
            files,
        })
    }

    /// Writes a bundle's images as one OCI image layout at `dir`, each
    /// named by its original reference; every blob is re-hashed on the way.
    fn export_images(
        &self,
        d: &Description,
        dir: &Path,
        progress: &dyn Progress,
    ) -> Result<Vec<PathBuf>> {
        let images: Vec<&Artifact> = d
            .artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::Image)
            .collect();
        if images.is_empty() {
            return Ok(Vec::new());
        }
        if dir.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; export into an empty directory",
                dir.display()
            )));
        }
        let blobs = dir.join("blobs/sha256");
        fs_err::create_dir_all(&blobs)?;
        let mut written = std::collections::BTreeSet::new();
        let mut entries = Vec::new();
        for a in &images {
            for b in std::iter::once(&a.manifest).chain(&a.blobs) {
                if !written.insert(b.digest) {
                    continue;
                }
                self.copy_blob_checked(b, &blobs.join(b.digest.hex()), progress)?;
            }
            entries.push(index_entry(a, a.name.clone(), None));
            // A Docker schema 2 image is also named `<name>-oci-index`, which skopeo can address.
            entries.extend(crate::image::write_oci_alias(a, &blobs, &|d| self.blob(d))?);
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(entries)
            .build()
            .map_err(|e| Error::Usage(format!("cannot build the export's index: {e}")))?;
        fs_err::write(dir.join("oci-layout"), OCI_LAYOUT_CONTENT)?;
        fs_err::write(dir.join("index.json"), canonical_json(&index))?;
        Ok(vec![dir.to_path_buf()])
    }

    /// Copies store blob `b` to `dest`, checking its digest and size.
    fn copy_blob_checked(&self, b: &Blob, dest: &Path, progress: &dyn Progress) -> Result<()> {
        let mut out = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)?;
        let mut src = fs_err::File::open(self.blob(&b.digest))?;
        let h = copy_hashed(&mut src, &mut out, Some(b.size), &|n| progress.advance(n))?;
        if h.digest != b.digest || h.size != b.size {
            drop(out);
            let _ = fs_err::remove_file(dest);
            return Err(crate::error::single(
                self.blob(&b.digest).display().to_string(),
                format!(
                    "store blob is corrupt: expected {} ({} bytes), found {} ({} bytes)",
                    b.digest, b.size, h.digest, h.size
                ),
            ));
        }
        Ok(())
    }

    /// Path of a blob in the store (for push).
    pub fn blob_path(&self, d: &Sha256Digest) -> PathBuf {
        self.blob(d)
    }

    /// Appends a hash-chained entry to the ledger (fsynced).
    pub fn append_ledger(
        &self,
        action: &str,
        bundle: Option<String>,
        nv: Option<(String, String)>,
        detail: &str,
    ) -> Result<()> {
        fs_err::create_dir_all(&self.root)?;
        let lines = self.ledger_lines()?;
        let entry = LedgerEntry {
            seq: lines.len() as u64 + 1,
            time: crate::clock::rfc3339(crate::clock::now()),
            action: action.to_string(),
            bundle,
            name: nv.as_ref().map(|x| x.0.clone()),
            version: nv.map(|x| x.1),
            detail: detail.to_string(),
            prev: lines.last().map(|l| Sha256Digest::of(l.as_bytes()).hex()),
        };
        let mut f = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.ledger())?;
        let mut line = serde_json::to_vec(&entry).expect("serializes");
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_all()?;
        Ok(())
    }

    fn ledger_lines(&self) -> Result<Vec<String>> {
        if !self.ledger().exists() {
            return Ok(vec![]);
        }
        let f = std::io::BufReader::new(fs_err::File::open(self.ledger())?);
        Ok(f.lines().collect::<std::io::Result<_>>()?)
    }

    /// The ledger's entries, and with `check` every broken link reported.
    pub fn log(&self, check: bool) -> Result<Vec<LedgerEntry>> {
        self.ensure_exists()?;
        let lines = self.ledger_lines()?;
        let mut report = crate::error::Report::default();
        let mut out = Vec::new();
        let mut prev: Option<String> = None;
        for (i, line) in lines.iter().enumerate() {
            let where_ = format!("{}:{}", self.ledger().display(), i + 1);
            match serde_json::from_str::<LedgerEntry>(line) {
                Ok(e) => {
                    if e.prev != prev || e.seq != i as u64 + 1 {
                        report.add(&where_, "does not chain to the entry before it (ledger edited, reordered or truncated)");
                    }
                    out.push(e);
                }
                Err(err) => report.add(&where_, format!("not a ledger entry: {err}")),
            }
            prev = Some(Sha256Digest::of(line.as_bytes()).hex());
        }
        if check {
            report.into_result()?;
        }
        Ok(out)
    }
}

/// An index entry for artifact `a` named `reference`; images keep their
/// own media type and get no artifactType.
fn index_entry(a: &Artifact, reference: String, bundle: Option<&Sha256Digest>) -> Descriptor {
    let mut annotations = HashMap::from([(REF_NAME.to_string(), reference)]);
    if let Some(id) = bundle {
        annotations.insert(BUNDLE_ID.to_string(), id.hex());
    }
    let mut desc = if a.kind == ArtifactKind::Image {
        annotations.insert(IMAGE_REFERENCE.to_string(), a.name.clone());
        annotations.insert(IMAGE_DIGEST.to_string(), a.manifest.digest.oci());
        Descriptor::new(
            MediaType::from(a.manifest.media_type.as_str()),
            a.manifest.size,
            crate::pack::oci_digest(&a.manifest.digest),
        )
    } else {
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            a.manifest.size,
            crate::pack::oci_digest(&a.manifest.digest),
        );
        d.set_artifact_type(Some(MediaType::Other(a.artifact_type.clone())));
        d
    };
    desc.set_annotations(Some(annotations));
    desc
}

/// The name of a bundle's artifact in the store's shared index.
pub fn store_ref(name: &str, version: &str, reference: &str) -> String {
    format!("{name}/{}/{reference}", ref_component(version))
}

/// Writes a file through a temporary sibling, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("has parent");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}
