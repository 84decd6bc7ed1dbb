//! Build-side sources: each turns manifest entries into planned artifacts,
//! lists of input files with where they go. Nothing is read here beyond
//! directory listings (and small model metadata); `pack` hashes and copies.

pub mod apt;
pub mod cargo;
pub mod content;
pub mod fetch;
pub mod files;
pub mod huggingface;
pub mod images;
pub mod kind;
pub mod manifest;
pub mod models;
pub mod npm;
pub mod packages;
pub mod python;
pub mod registry;

use std::path::{Path, PathBuf};

use crate::bundle::{ArtifactKind, MODE_EXEC, MODE_FILE};
use crate::digest::{Hashed, Sha256Digest};
use crate::error::{Error, Result};

/// One input file and where it lands inside its artifact.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub src: PathBuf,
    /// `/`-separated path inside the artifact (what export recreates).
    pub path: String,
    pub mode: u32,
    /// One of airlock's constants (every file of a `files:` tree has the
    /// same): no string per file.
    pub media_type: &'static str,
    /// A sha256 the manifest pinned for this file (boxed: rare, and the
    /// record of each of many files stays small).
    pub pin: Option<Box<Sha256Digest>>,
}

/// What each distinct input hashed to, by its source path: the inputs
/// sorted (borrowed from the plan) beside their hashes, looked up by binary
/// search. Compact for many small files (no hash map of every path).
pub struct Hashes<'a> {
    paths: Vec<&'a Path>,
    hashed: Vec<Hashed>,
}

impl<'a> Hashes<'a> {
    /// `paths` sorted and without duplicates; `hashed[i]` is `paths[i]`'s.
    pub fn new(paths: Vec<&'a Path>, hashed: Vec<Hashed>) -> Self {
        debug_assert!(paths.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(paths.len(), hashed.len());
        Hashes { paths, hashed }
    }

    /// Where `path` is among the inputs.
    pub fn position(&self, path: &Path) -> Option<usize> {
        self.paths.binary_search(&path).ok()
    }

    pub fn get(&self, path: &Path) -> Option<&Hashed> {
        self.position(path).map(|i| &self.hashed[i])
    }

    /// The hash of the input at `position`.
    pub fn at(&self, position: usize) -> &Hashed {
        &self.hashed[position]
    }

    /// The inputs, sorted.
    pub fn paths(&self) -> &[&'a Path] {
        &self.paths
    }

    /// The hashes, by position, without the paths.
    pub fn into_hashes(self) -> Vec<Hashed> {
        self.hashed
    }
}

impl std::ops::Index<&Path> for Hashes<'_> {
    type Output = Hashed;
    fn index(&self, path: &Path) -> &Hashed {
        self.get(path).expect("every planned input is hashed")
    }
}

/// An artifact before hashing.
#[derive(Debug, Clone)]
pub struct PlannedArtifact {
    pub kind: ArtifactKind,
    pub name: String,
    pub reference: String,
    pub artifact_type: String,
    pub files: Vec<InputFile>,
    /// Pinned packages (python, cargo): checked against the hashes once the
    /// files are hashed, then recorded in the description.
    pub packages: Vec<packages::PlannedPackage>,
}

/// Lists the regular files under `root` (or `root` itself), sorted, with
/// `/`-separated paths relative to `root`'s parent when `root` is a file, or
/// to `root` when it is a directory. Symbolic links and special files are
/// refused: a bundle carries regular files only.
pub fn walk(root: &Path) -> Result<Vec<(String, PathBuf, u32)>> {
    let md = fs_err::symlink_metadata(root)?;
    if md.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Usage(format!("{} has no file name", root.display())))?;
        return Ok(vec![(name, root.to_path_buf(), mode_of(&md))]);
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry =
            entry.map_err(|e| Error::Usage(format!("cannot read {}: {e}", root.display())))?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(Error::Usage(format!(
                "{} is a symbolic link or special file; airlock packs regular files only (copy the target in its place)",
                entry.path().display()
            )));
        }
        let rel = entry.path().strip_prefix(root).expect("below root");
        let rel = rel
            .components()
            .map(|c| {
                c.as_os_str().to_str().map(str::to_owned).ok_or_else(|| {
                    Error::Usage(format!(
                        "{} has a name that is not UTF-8",
                        entry.path().display()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?
            .join("/");
        let md = entry
            .metadata()
            .map_err(|e| Error::Usage(format!("cannot stat {}: {e}", entry.path().display())))?;
        out.push((rel, entry.path().to_path_buf(), mode_of(&md)));
    }
    Ok(out)
}

fn mode_of(md: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if md.permissions().mode() & 0o111 != 0 {
            return MODE_EXEC;
        }
    }
    let _ = md;
    MODE_FILE
}
