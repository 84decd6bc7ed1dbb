//! The source-kind seam: what one kind of content (`models:`, `files:`,
//! `python:`, `cargo:` ...) does at each step, in one place.
//!
//! - build side: `plan` turns the manifest's entries into planned artifacts
//!   (pins are checked by `packages::finish` once `pack` has hashed the files);
//! - high side: `pin_layer` keeps the bytes the re-check needs,
//!   `sha512_layer` asks for a layer's sha512 (computed as it streams by,
//!   its bytes not kept) and `check_artifact` re-checks the pins from them;
//! - export: `export_path` says where each layer goes and `export_rendered`
//!   writes what the kind's installer reads (`requirements.txt`, cargo's
//!   `config.toml`, ...);
//! - SBOM: `sbom_package` names each carried package (its purl).
//!
//! A new kind is one module implementing [`SourceKind`], its line in
//! [`KINDS`], its `ArtifactKind` variant and its manifest key. Callers go
//! through [`of`] and [`KINDS`]; none matches on the kind to do these steps.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::PlannedArtifact;
use crate::bundle::{Artifact, ArtifactKind, Description, LayerRef, Package};
use crate::digest::Sha256Digest;
use crate::error::{Report, Result};
use crate::manifest::LoadedManifest;

/// Reads a layer's bytes from the store, re-hashed (for export rendering).
pub type ReadLayer<'a> = &'a dyn Fn(LayerRef<'_>) -> Result<Vec<u8>>;

/// What the high side read of an artifact's layers for `check_artifact`,
/// for the layers that verified.
pub trait Kept {
    /// The layer's bytes, if `pin_layer` asked for them.
    fn bytes(&self, l: LayerRef<'_>) -> Option<&[u8]>;
    /// The layer's sha512, if `sha512_layer` asked for it.
    fn sha512(&self, l: LayerRef<'_>) -> Option<[u8; 64]>;
}

/// How the SBOM names one carried package.
#[derive(Debug, Clone)]
pub struct SbomPackage<'a> {
    /// The package URL (`pkg:pypi/...`, `pkg:cargo/...`, `pkg:npm/...`).
    pub purl: String,
    /// The package's own identity within its artifact, for the bom-ref
    /// (`pkg:pypi/name@version`); unique among the artifact's packages.
    pub id: String,
    /// A digest the ecosystem pins for the package as a whole (cargo's
    /// `.crate` checksum), when it is not one of the carried files.
    pub sha256: Option<Sha256Digest>,
    /// Extra facts, as `airlock:...` properties.
    pub properties: Vec<(String, String)>,
    /// The package's files in the artifact, each with the purl its file
    /// item takes (`None`: the file's own).
    pub files: Vec<(LayerRef<'a>, Option<String>)>,
}

/// One kind of content airlock carries.
pub trait SourceKind: Sync {
    fn kind(&self) -> ArtifactKind;

    /// Plans the manifest's entries of this kind. `staging` is pack's
    /// scratch directory (removed with it), for inputs a source must fetch.
    fn plan(
        &self,
        _m: &LoadedManifest,
        _taken_refs: &mut BTreeSet<String>,
        _staging: &Path,
    ) -> Result<Vec<PlannedArtifact>> {
        Ok(Vec::new())
    }

    /// Whether the kind's artifacts list packages (and so their pins are
    /// re-checked on the high side).
    fn carries_packages(&self) -> bool {
        false
    }

    /// Whether the high side keeps this layer's bytes for `check_artifact`
    /// (small files only: the kept bytes are held in memory).
    fn pin_layer(&self, _l: LayerRef<'_>) -> bool {
        false
    }

    /// Whether the high side computes this layer's sha512 for
    /// `check_artifact`, while the layer is hashed (its bytes are not kept,
    /// so the layer may be of any size).
    fn sha512_layer(&self, _l: LayerRef<'_>) -> bool {
        false
    }

    /// The high side's re-check of an artifact's pins from the verified
    /// description and what was kept (`pin_layer`, `sha512_layer`).
    fn check_artifact(&self, _a: &Artifact, _kept: &dyn Kept, _report: &mut Report) {}

    /// Where `airlock export` writes a layer, relative to the export
    /// directory; `None` when the kind is exported otherwise (images).
    fn export_path(&self, d: &Description, a: &Artifact, l: LayerRef<'_>) -> Option<String>;

    /// Writes, below `to`, the files the kind's installer needs beyond the
    /// layers (given every artifact of this kind in the bundle); paths that
    /// must name the export's final place use `final_to`.
    fn export_rendered(
        &self,
        _d: &Description,
        _artifacts: &[&Artifact],
        _to: &Path,
        _final_to: &Path,
        _read: ReadLayer<'_>,
    ) -> Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }

    /// How the SBOM names a package of an artifact of this kind; `None`
    /// for a package that is listed but not carried.
    fn sbom_package<'a>(&self, _a: &'a Artifact, _p: &'a Package) -> Option<SbomPackage<'a>> {
        None
    }

    /// What the transfer report calls the artifact's packages ("package(s)",
    /// "crate(s)").
    fn package_noun(&self) -> &'static str {
        "package(s)"
    }
}

/// Every kind, in the order `pack` plans them (which is the order of the
/// artifacts in a bundle's description).
pub static KINDS: &[&dyn SourceKind] = &[
    &super::models::Models,
    &super::files::Files,
    &super::python::Python,
    &super::cargo::Cargo,
    &super::npm::Npm,
    &super::apt::Apt,
    &Sboms,
    &super::images::Images,
];

/// The implementation of a kind.
pub fn of(kind: ArtifactKind) -> &'static dyn SourceKind {
    *KINDS
        .iter()
        .find(|k| k.kind() == kind)
        .expect("every ArtifactKind has its SourceKind in KINDS")
}

/// Carried SBOMs (`sboms:`; planned by the sbom layer, which also makes the
/// generated ones): exported below `sbom/`.
pub struct Sboms;

impl SourceKind for Sboms {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Sbom
    }
    fn export_path(&self, _d: &Description, _a: &Artifact, l: LayerRef<'_>) -> Option<String> {
        Some(format!("sbom/{}", l.path))
    }
}

/// The `n`th artifact of `a`'s kind in the description (from 0): entries of
/// one kind that export side by side are told apart by it.
pub fn nth_of_kind(d: &Description, a: &Artifact) -> usize {
    d.artifacts
        .iter()
        .filter(|x| x.kind == a.kind)
        .position(|x| x.reference == a.reference)
        .unwrap_or(0)
}

/// How many artifacts of `a`'s kind the description holds.
pub fn count_of_kind(d: &Description, kind: ArtifactKind) -> usize {
    d.artifacts.iter().filter(|x| x.kind == kind).count()
}

/// The bundle reference of a manifest's `i`th entry of a kind: `KIND/NAME`
/// from the entry's name, or `KIND/set-I` when the name gives no reference
/// component or another entry took it first. Records the reference as taken.
pub(crate) fn entry_reference(
    kind: &str,
    name: &str,
    i: usize,
    taken: &mut BTreeSet<String>,
) -> String {
    let component = crate::bundle::ref_component(name);
    let reference = format!("{kind}/{component}");
    if !component.is_empty() && taken.insert(reference.clone()) {
        return reference;
    }
    let reference = format!("{kind}/set-{i}");
    taken.insert(reference.clone());
    reference
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_implementation() {
        for k in ArtifactKind::ALL {
            assert_eq!(KINDS.iter().filter(|x| x.kind() == k).count(), 1, "{k:?}");
            assert_eq!(of(k).kind(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        assert_eq!(KINDS.len(), ArtifactKind::ALL.len());
    }
    #[test]
    fn entry_references_are_named_once_then_numbered() {
        let mut taken = BTreeSet::new();
        assert_eq!(
            entry_reference("python", "req.txt", 0, &mut taken),
            "python/req.txt"
        );
        assert_eq!(
            entry_reference("python", "req.txt", 1, &mut taken),
            "python/set-1"
        );
        assert_eq!(
            entry_reference("cargo", "req.txt", 2, &mut taken),
            "cargo/req.txt"
        );
        assert_eq!(entry_reference("npm", "!!!", 3, &mut taken), "npm/set-3");
        assert_eq!(
            taken.into_iter().collect::<Vec<_>>(),
            [
                "cargo/req.txt",
                "npm/set-3",
                "python/req.txt",
                "python/set-1"
            ]
        );
    }
}
