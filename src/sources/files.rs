//! `files:` entries: a file or a directory, carried as one OCI artifact of
//! airlock's own type with one raw layer per file.

use std::collections::BTreeSet;

use super::{walk_each, InputFiles, PlannedArtifact};
use crate::bundle::{ArtifactKind, FILES_ARTIFACT, FILE_LAYER};
use crate::error::Result;
use crate::manifest::{record_name, LoadedManifest};

pub fn plan(m: &LoadedManifest, taken_refs: &mut BTreeSet<String>) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    for (i, entry) in m.manifest.files.iter().enumerate() {
        let name = record_name(&entry.path).expect("checked when loading");
        let src = m.resolve(&entry.path);
        let pin = entry
            .sha256
            .as_deref()
            .map(|p| Box::new(p.parse().expect("checked when loading")));
        let is_file = fs_err::metadata(&src)?.is_file();
        // A single file lands at its manifest path; a directory's files below it.
        let mut files = InputFiles::new();
        let mut path = String::new();
        walk_each(&src, &mut |rel, abs, mode| {
            path.clear();
            path.push_str(&name);
            if !is_file {
                path.push('/');
                path.push_str(rel);
            }
            files.add(abs, &path, mode, FILE_LAYER, pin.as_deref());
            Ok(())
        })?;
        let reference = super::kind::entry_reference("files", &name, i, taken_refs);
        out.push(PlannedArtifact {
            kind: ArtifactKind::Files,
            name,
            reference,
            artifact_type: FILES_ARTIFACT.to_string(),
            files,
            packages: Vec::new(),
        });
    }
    Ok(out)
}

/// `files:` entries.
pub struct Files;

impl super::kind::SourceKind for Files {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Files
    }
    fn plan(
        &self,
        m: &LoadedManifest,
        taken_refs: &mut BTreeSet<String>,
        _staging: &std::path::Path,
    ) -> Result<Vec<PlannedArtifact>> {
        plan(m, taken_refs)
    }
    fn export_path(
        &self,
        _d: &crate::bundle::Description,
        _a: &crate::bundle::Artifact,
        l: crate::bundle::LayerRef<'_>,
    ) -> Option<String> {
        Some(format!("files/{}", l.path))
    }
}
