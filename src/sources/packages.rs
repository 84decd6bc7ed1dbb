//! What python and cargo entries share: packages planned with the sha256
//! values their files must have, checked once `pack` has hashed the files;
//! the high side's re-check of those pins; and the files `export` renders
//! (a merged `requirements.txt`, a cargo `config.toml`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::PlannedArtifact;
use crate::bundle::{blob_path, Artifact, ArtifactKind, Description, Layer, Package, PackageFile};
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
        let src: HashMap<&str, &Path> = a
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.src.as_path()))
            .collect();
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

/// Layers whose bytes the high side needs to re-check pins: requirements
/// files, Cargo.lock files and `.cargo-checksum.json` files.
pub fn pin_blobs(d: &Description) -> BTreeSet<Sha256Digest> {
    d.artifacts
        .iter()
        .flat_map(|a| {
            a.layers.iter().filter(move |l| match a.kind {
                ArtifactKind::Python => l.path == super::python::REQUIREMENTS_PATH,
                ArtifactKind::Cargo => {
                    l.path == super::cargo::LOCK_PATH
                        || l.path.rsplit('/').next() == Some(super::cargo::CHECKSUM_FILE)
                }
                _ => false,
            })
        })
        .map(|l| l.digest)
        .collect()
}

/// The high side's own check of every python and cargo pin, from the
/// verified description and the kept bytes of the layers `pin_blobs` names
/// (payload path → bytes). Runs after the payload pass.
pub fn check_pins(d: &Description, kept: &HashMap<String, Vec<u8>>, report: &mut Report) {
    for a in &d.artifacts {
        let bytes_of =
            |l: &Layer| -> Option<&[u8]> { kept.get(&blob_path(&l.digest)).map(Vec::as_slice) };
        match a.kind {
            ArtifactKind::Python => super::python::check_artifact(a, &bytes_of, report),
            ArtifactKind::Cargo => super::cargo::check_artifact(a, &bytes_of, report),
            _ => {
                if !a.packages.is_empty() {
                    report.add(
                        crate::bundle::DESCRIPTION,
                        format!(
                            "artifact {:?} lists packages, which only python and cargo artifacts carry",
                            a.reference
                        ),
                    );
                }
            }
        }
    }
}

/// Where `airlock export` writes a layer, relative to the export directory
/// (`None` for image layers, which go into `images/` as an OCI layout). The
/// SBOM names every file by this path, so the two always agree:
///
/// - `models/NAME/PATH`, `files/PATH`, `sbom/PATH`;
/// - `python/FILE` for distributions (one wheelhouse for every entry), and
///   each python entry's own `requirements.txt` and original `pylock.toml`,
///   byte for byte, in `python/entries/N/` (N: the entry's place among the
///   bundle's python entries, from 0); `python/requirements.txt` is rendered
///   from all of them (`export_rendered`);
/// - `cargo/vendor/...`, and the Cargo.lock at `cargo/Cargo.lock`, or at
///   `cargo/entries/N/Cargo.lock` when the bundle has several cargo entries.
pub fn export_path(d: &Description, a: &Artifact, l: &Layer) -> Option<String> {
    let of_kind = || d.artifacts.iter().filter(|x| x.kind == a.kind);
    let nth = || {
        of_kind()
            .position(|x| x.reference == a.reference)
            .unwrap_or(0)
    };
    Some(match a.kind {
        ArtifactKind::Model => format!("models/{}/{}", crate::manifest::model_folder(d, a), l.path),
        ArtifactKind::Files => format!("files/{}", l.path),
        ArtifactKind::Sbom => format!("sbom/{}", l.path),
        ArtifactKind::Image => return None,
        ArtifactKind::Python
            if l.path == super::python::REQUIREMENTS_PATH
                || l.path == super::python::PYLOCK_PATH =>
        {
            format!("python/entries/{}/{}", nth(), l.path)
        }
        ArtifactKind::Python => format!("python/{}", l.path),
        ArtifactKind::Cargo if l.path == super::cargo::LOCK_PATH && of_kind().count() > 1 => {
            format!("cargo/entries/{}/{}", nth(), l.path)
        }
        ArtifactKind::Cargo => format!("cargo/{}", l.path),
    })
}

/// Writes what an export renders for python and cargo artifacts:
/// `DIR/python/requirements.txt` (every artifact's pins merged) and
/// `DIR/cargo/config.toml` (vendored sources replacing the registries).
/// Files are written below `to`; config.toml names the vendor directory
/// below `final_to`, where the export will be once renamed into place.
/// `read` reads a layer from the store, re-hashed.
pub fn export_rendered(
    d: &Description,
    to: &Path,
    final_to: &Path,
    read: &dyn Fn(&Layer) -> Result<Vec<u8>>,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let python: Vec<_> = d
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Python)
        .collect();
    if !python.is_empty() {
        let text = super::python::render_export(d, &python, read)?;
        written.push(write_new(
            &to.join("python/requirements.txt"),
            text.as_bytes(),
        )?);
    }
    let cargo: Vec<_> = d
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Cargo)
        .collect();
    if !cargo.is_empty() {
        fs_err::create_dir_all(to.join("cargo/vendor"))?;
        let text = super::cargo::render_config(d, &cargo, &final_to.join("cargo/vendor"))?;
        written.push(write_new(&to.join("cargo/config.toml"), text.as_bytes())?);
    }
    Ok(written)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
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
