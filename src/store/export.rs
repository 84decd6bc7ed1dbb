//! `airlock export`: a bundle's models, file sets, packages, SBOMs and images
//! written from the store in usable form. Safe against its target: the target
//! must be new or an empty directory and not a link; everything is written
//! into a fresh staging directory beside it (created by us, mode 0700, so
//! nothing in it can be a link we did not make) and renamed into place at
//! the end, so a failed export leaves nothing behind. Every name read from
//! the store's record is checked again before it becomes a path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageIndexBuilder, MediaType};
use serde::Serialize;

use super::backend::BlobStore;
use super::{corrupt_blob, failpoint, index_entry, Store};
use crate::bundle::*;
use crate::digest::{copy_hashed, Sha256Digest};
use crate::error::{Error, Result};
use crate::progress::Progress;

#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub name: String,
    pub version: String,
    pub to: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Where an export goes: `shown` as the user gave it, `abs` resolved.
struct Target {
    shown: PathBuf,
    abs: PathBuf,
}

impl Target {
    /// Refuses a link, a file, or a non-empty directory at `to`; creates
    /// `to`'s parent if needed.
    fn prepare(to: &Path) -> Result<Target> {
        let shown = to.display();
        let abs = match std::fs::symlink_metadata(to) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Usage(format!(
                    "{shown}: is a symbolic link; export never writes through links: give a new or empty directory"
                )))
            }
            Ok(m) if !m.is_dir() => {
                return Err(Error::Usage(format!(
                    "{shown}: exists and is not a directory; export into a new or empty directory"
                )))
            }
            Ok(_) => {
                if fs_err::read_dir(to)?.next().is_some() {
                    return Err(Error::Usage(format!(
                        "{shown}: is not empty; export into a new or empty directory"
                    )));
                }
                fs_err::canonicalize(to)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = to.file_name().ok_or_else(|| {
                    Error::Usage(format!(
                        "{shown}: cannot export there; name a new or empty directory"
                    ))
                })?;
                let parent = match to.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                fs_err::create_dir_all(parent)?;
                fs_err::canonicalize(parent)?.join(name)
            }
            Err(e) => {
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{shown}: {e}"),
                )))
            }
        };
        if abs.parent().is_none() {
            return Err(Error::Usage(format!(
                "{shown}: cannot export there; name a new or empty directory"
            )));
        }
        Ok(Target {
            shown: to.to_path_buf(),
            abs,
        })
    }

    /// A fresh directory beside the target, removed unless committed.
    fn staging(&self) -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix(".airlock-export-")
            .tempdir_in(self.abs.parent().expect("checked"))?)
    }

    /// Renames the staging directory onto the target (which must still be
    /// absent or an empty directory).
    fn commit(&self, stage: tempfile::TempDir) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(stage.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::rename(stage.path(), &self.abs).map_err(|e| {
            Error::Usage(format!(
                "{}: {e}; it changed during the export: export into a new or empty directory (nothing was written)",
                self.shown.display()
            ))
        })?;
        let _ = stage.keep();
        super::local::sync_dir(self.abs.parent().expect("checked"))
    }
}

/// A model's directory name: one plain path component.
fn plain_component(s: &str) -> bool {
    safe_relative(s) && !s.contains('/') && !s.chars().any(char::is_control)
}

/// Every name from the record that becomes a path, checked before anything
/// is written.
fn check_names(d: &Description, at: &str) -> Result<()> {
    let mut report = crate::error::Report::default();
    for a in &d.artifacts {
        if a.kind == ArtifactKind::Image {
            continue;
        }
        if a.kind == ArtifactKind::Model && !plain_component(&a.name) {
            report.add(
                at,
                format!(
                    "model name {:?} is not a plain directory name (record edited?); nothing was exported",
                    a.name
                ),
            );
        }
        for l in &a.layers {
            if !safe_relative(l.path) || l.path.chars().any(char::is_control) {
                report.add(
                    at,
                    format!(
                        "unsafe path {:?} in artifact {:?} (record edited?); nothing was exported",
                        l.path, a.name
                    ),
                );
            }
        }
    }
    // A Hub origin names the cache folder export writes.
    crate::sources::huggingface::check_origins(d, at, &mut report);
    report.into_result()
}

impl Store {
    /// Writes a bundle's models and file sets into `to`, byte-identical to what
    /// was packed, re-hashing every blob on the way out.
    pub fn export(&self, spec: &str, to: &Path, progress: &dyn Progress) -> Result<Exported> {
        self.meta.check_exists()?;
        let (_lock, l) = self.open_write()?;
        let rec = self.find_in(&l, spec)?;
        let d = self.checked_description(&rec)?;
        check_names(
            &d,
            &format!(
                "{}/{DESCRIPTION}",
                self.meta.locate_record(&rec.name, &rec.version)
            ),
        )?;
        let target = Target::prepare(to)?;
        let stage = target.staging()?;
        let root = stage.path();
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
        // What to copy, planned in order; then copied (each blob hashed as it
        // is copied) in parallel across files.
        let mut jobs: Vec<(LayerRef<'_>, PathBuf, u32)> = Vec::new();
        for a in &d.artifacts {
            for l in &a.layers {
                // Where the SBOM says it is (sources::packages::export_path):
                // models/FOLDER/, files/, sbom/, python/, cargo/. Images are
                // written as an OCI layout below, not as files.
                let Some(rel) = crate::sources::packages::export_path(&d, a, l) else {
                    continue;
                };
                let rel = PathBuf::from(rel);
                if exported.insert(rel.clone(), *l.digest) == Some(*l.digest) {
                    continue;
                }
                let dest = root.join(&rel);
                if let Some(parent) = dest.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                let mode = if l.mode == MODE_EXEC {
                    MODE_EXEC
                } else {
                    MODE_FILE
                };
                jobs.push((l, dest, mode));
                files.push(to.join(rel));
            }
        }
        {
            use rayon::prelude::*;
            let blobs = &*self.blobs;
            jobs.par_iter().try_for_each(|(l, dest, mode)| {
                copy_blob_checked(blobs, l.digest, l.size, dest, Some(*mode), progress)
            })?;
        }
        if let Some(dir) = self.export_images(&d, &root.join("images"), progress)? {
            files.push(to.join(dir));
        }
        // requirements.txt and cargo/config.toml, rendered from the pins;
        // config.toml names the vendor directory where it will be.
        let read = |l: LayerRef<'_>| self.read_blob_checked(l.digest, l.size);
        for p in crate::sources::packages::export_rendered(&d, root, &target.abs, &read)? {
            files.push(to.join(p.strip_prefix(root).unwrap_or(&p)));
        }
        progress.finish();
        failpoint("export")?;
        target.commit(stage)?;
        self.append_locked(
            &l,
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
    /// Returns `images` when it wrote any.
    fn export_images(
        &self,
        d: &Description,
        dir: &Path,
        progress: &dyn Progress,
    ) -> Result<Option<PathBuf>> {
        let images: Vec<&Artifact> = d
            .artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::Image)
            .collect();
        if images.is_empty() {
            return Ok(None);
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
                copy_blob_checked(
                    &*self.blobs,
                    &b.digest,
                    b.size,
                    &blobs.join(b.digest.hex()),
                    None,
                    progress,
                )?;
            }
            entries.push(index_entry(
                a.kind,
                &a.name,
                &a.artifact_type,
                &a.manifest,
                a.name.clone(),
                None,
            ));
            // A Docker schema 2 image is also named `<name>-oci-index`, which
            // skopeo can address; read from the blobs just copied and checked.
            entries.extend(crate::image::write_oci_alias(a, &blobs, &|d| {
                blobs.join(d.hex())
            })?);
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(entries)
            .build()
            .map_err(|e| Error::Usage(format!("cannot build the export's index: {e}")))?;
        fs_err::write(dir.join("oci-layout"), OCI_LAYOUT_CONTENT)?;
        fs_err::write(dir.join("index.json"), canonical_json(&index))?;
        Ok(Some(PathBuf::from("images")))
    }
}

/// Copies store blob `d` to the new file `dest`, checking its digest and size.
/// Where the store's blob is a local file on a filesystem that shares data
/// between files (btrfs, XFS, …), the copy is a reflink (`FICLONE`): no data
/// is copied, the two files share their blocks until one is written, and the
/// copy is then read back and hashed. Elsewhere the blob is read, hashed and
/// written in one pass. (A kernel copy, `copy_file_range`, would save
/// nothing here: the bytes must pass through the hash anyway, so it would
/// add a read of the copy.)
fn copy_blob_checked(
    blobs: &dyn BlobStore,
    d: &Sha256Digest,
    size: u64,
    dest: &Path,
    mode: Option<u32>,
    progress: &dyn Progress,
) -> Result<()> {
    let mut out = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dest)?;
    let h = match reflink(blobs, d, &out)? {
        Some(()) => {
            // What the export holds is what is checked: the copy itself.
            copy_hashed(&mut out, &mut std::io::sink(), Some(size), &|n| {
                progress.advance(n)
            })?
        }
        None => {
            let mut src = blobs.open(d)?;
            copy_hashed(&mut src, &mut out, Some(size), &|n| progress.advance(n))?
        }
    };
    if h.digest != *d || h.size != size {
        return Err(corrupt_blob(&blobs.locate(d), d, size, &h));
    }
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        out.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(())
}

/// Makes the empty file `out` a reflinked copy of blob `d` if the store keeps
/// it as a local file and the filesystem can share it with `out`; `None`
/// when it cannot (another filesystem, no reflinks: ext4, tmpfs, …), and
/// `out` is then still empty.
fn reflink(blobs: &dyn BlobStore, d: &Sha256Digest, out: &fs_err::File) -> Result<Option<()>> {
    #[cfg(target_os = "linux")]
    if let Some(path) = blobs.local_file(d) {
        let src = fs_err::File::open(path)?;
        if rustix::fs::ioctl_ficlone(out.file(), src.file()).is_ok() {
            return Ok(Some(()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (blobs, d, out);
    Ok(None)
}
