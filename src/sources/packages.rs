//! What python and cargo entries share: packages planned with the sha256
//! values their files must have, checked once `pack` has hashed the files;
//! the high side's re-check of those pins; and the files `export` renders
//! (a merged `requirements.txt`, a cargo `config.toml`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::kind::{of, KINDS};
use super::PlannedArtifact;
use crate::bundle::{
    blob_path, Artifact, ArtifactKind, Description, LayerRef, Package, PackageFile,
};
use crate::digest::Sha256Digest;
use crate::error::{Error, Report, Result};

/// A package as planned, before its files are hashed.
#[derive(Debug, Clone)]
pub struct PlannedPackage {
    /// Names the package in findings: `python[0] tinypkg==0.1.0`, `cargo[0] crate itoa 1.0.18`.
    pub subject: String,
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub checksum: Option<Sha256Digest>,
    /// An npm tarball's sha512 (`sha512-BASE64`).
    pub integrity: Option<String>,
    pub path: Option<String>,
    pub hashes: Vec<Sha256Digest>,
    /// Artifact paths of the files recorded with their digests (python distributions).
    pub files: Vec<String>,
    /// Every file whose digest is pinned.
    pub checks: Vec<PinCheck>,
}

/// One file's pin: its path in the artifact, the digests allowed, and what
/// pins it (said in the finding when the file has another digest).
#[derive(Debug, Clone)]
pub struct PinCheck {
    pub path: String,
    pub allowed: Vec<Sha256Digest>,
    pub pinned_by: String,
}

/// Checks every planned package's files against their pins, using the
/// digests `pack` computed while copying, and returns the description's
/// packages per artifact reference. Every problem is reported at once.
pub fn finish(
    planned: &[PlannedArtifact],
    digest_of: &dyn Fn(&Path) -> Sha256Digest,
) -> Result<BTreeMap<String, Vec<Package>>> {
    let mut report = Report::default();
    let mut out = BTreeMap::new();
    // A distribution file exported into one wheelhouse must be one file.
    let mut python_files: BTreeMap<&str, (Sha256Digest, &Path)> = BTreeMap::new();
    for a in planned {
        if a.packages.is_empty() {
            continue;
        }
        let src: HashMap<&str, &Path> = a.files.iter().map(|f| (f.path, f.src)).collect();
        let mut packages = Vec::new();
        for p in &a.packages {
            for c in &p.checks {
                let file = src[c.path.as_str()];
                let actual = digest_of(file);
                if !c.allowed.contains(&actual) {
                    report.add(
                        &p.subject,
                        format!(
                            "{} has sha256 {actual}, which does not match {}",
                            file.display(),
                            c.pinned_by
                        ),
                    );
                }
            }
            let files = p
                .files
                .iter()
                .map(|path| {
                    let file = src[path.as_str()];
                    let sha256 = digest_of(file);
                    if a.kind == ArtifactKind::Python {
                        if let Some((other, other_src)) =
                            python_files.insert(path.as_str(), (sha256, file))
                        {
                            if other != sha256 {
                                report.add(
                                    &p.subject,
                                    format!(
                                        "{} and {} are both named {path} but differ; one export wheelhouse cannot hold both",
                                        other_src.display(),
                                        file.display()
                                    ),
                                );
                            }
                        }
                    }
                    PackageFile {
                        path: path.clone(),
                        sha256,
                    }
                })
                .collect();
            packages.push(Package {
                name: p.name.clone(),
                version: p.version.clone(),
                source: p.source.clone(),
                checksum: p.checksum,
                integrity: p.integrity.clone(),
                path: p.path.clone(),
                hashes: p.hashes.clone(),
                files,
            });
        }
        out.insert(a.reference.clone(), packages);
    }
    report.into_result()?;
    Ok(out)
}

/// The high side's check of one file a package records: it is a layer of
/// the artifact, no other package claims it, and the description gives it
/// its layer's digest. Returns the layer when there is one.
pub(crate) fn claim_layer<'a>(
    f: &'a PackageFile,
    layers: &HashMap<&str, LayerRef<'a>>,
    claimed: &mut BTreeSet<&'a str>,
    subject: &str,
    report: &mut Report,
) -> Option<LayerRef<'a>> {
    let Some(l) = layers.get(f.path.as_str()).copied() else {
        report.add(
            subject,
            format!("{} is not a layer of the artifact", f.path),
        );
        return None;
    };
    if !claimed.insert(f.path.as_str()) {
        report.add(subject, format!("{} is claimed by two packages", f.path));
    }
    if *l.digest != f.sha256 {
        report.add(
            subject,
            format!(
                "airlock.json records sha256 {} for {} but its layer is {}",
                f.sha256, f.path, l.digest
            ),
        );
    }
    Some(l)
}

/// Layers whose bytes the high side needs to re-check pins (each kind's
/// `SourceKind::pin_layer`: requirements files, Cargo.lock files,
/// `.cargo-checksum.json` files ...).
pub fn pin_blobs(d: &Description) -> BTreeSet<Sha256Digest> {
    d.artifacts
        .iter()
        .flat_map(|a| {
            let kind = of(a.kind);
            a.layers.iter().filter(move |l| kind.pin_layer(*l))
        })
        .map(|l| *l.digest)
        .collect()
}

/// Layers whose sha512 the high side computes while it hashes them (each
/// kind's `SourceKind::sha512_layer`: npm tarballs), their bytes not kept.
pub fn sha512_blobs(d: &Description) -> BTreeSet<Sha256Digest> {
    d.artifacts
        .iter()
        .flat_map(|a| {
            let kind = of(a.kind);
            a.layers.iter().filter(move |l| kind.sha512_layer(*l))
        })
        .map(|l| *l.digest)
        .collect()
}

/// What the payload pass kept for the pin re-check: the bytes of the layers
/// `pin_blobs` names (payload path → bytes) and the sha512 of those
/// `sha512_blobs` names (blob → sha512).
pub struct KeptPins<'k> {
    pub bytes: &'k HashMap<String, Vec<u8>>,
    pub sha512: &'k HashMap<Sha256Digest, [u8; 64]>,
}

impl super::kind::Kept for KeptPins<'_> {
    fn bytes(&self, l: LayerRef<'_>) -> Option<&[u8]> {
        self.bytes.get(&blob_path(l.digest)).map(Vec::as_slice)
    }
    fn sha512(&self, l: LayerRef<'_>) -> Option<[u8; 64]> {
        self.sha512.get(l.digest).copied()
    }
}

/// The high side's own check of every package pin, from the verified
/// description and what the payload pass kept. Runs after the payload pass.
pub fn check_pins(d: &Description, kept: &KeptPins<'_>, report: &mut Report) {
    for a in &d.artifacts {
        let kind = of(a.kind);
        if kind.carries_packages() {
            kind.check_artifact(a, kept, report);
        } else if !a.packages.is_empty() {
            report.add(
                crate::bundle::DESCRIPTION,
                format!(
                    "artifact {:?} lists packages, which {} artifacts do not carry",
                    a.reference,
                    a.kind.name()
                ),
            );
        }
    }
}

/// Where `airlock export` writes a layer, relative to the export directory
/// (`None` for image layers, which go into `images/` as an OCI layout): each
/// kind's `SourceKind::export_path` (`models/NAME/PATH`, `files/PATH`,
/// `sbom/PATH`, `python/...`, `cargo/...`). The SBOM names every file by
/// this path, so the two always agree.
pub fn export_path(d: &Description, a: &Artifact, l: LayerRef<'_>) -> Option<String> {
    of(a.kind).export_path(d, a, l)
}

/// Writes what an export renders beyond the layers, kind by kind, for the
/// kinds the bundle holds (`python/requirements.txt` merging every python
/// entry's pins, cargo's `config.toml` ...). Files are written below `to`;
/// paths inside them name the export's final place, `final_to`. `read`
/// reads a layer from the store, re-hashed.
pub fn export_rendered(
    d: &Description,
    to: &Path,
    final_to: &Path,
    read: &dyn Fn(LayerRef<'_>) -> Result<Vec<u8>>,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for kind in KINDS {
        let artifacts: Vec<&Artifact> = d
            .artifacts
            .iter()
            .filter(|a| a.kind == kind.kind())
            .collect();
        if !artifacts.is_empty() {
            written.extend(kind.export_rendered(d, &artifacts, to, final_to, read)?);
        }
    }
    Ok(written)
}

/// Creates `path` (and its parents) with `bytes`; an existing file is an
/// error (exports go into an empty directory).
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            Error::Usage(format!(
                "{}: {e}; export into an empty directory",
                path.display()
            ))
        })?;
    std::io::Write::write_all(&mut f, bytes)?;
    Ok(path.to_path_buf())
}
