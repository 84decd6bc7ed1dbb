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

/// A read-only view of one planned input file, borrowed from its
/// [`InputFiles`].
#[derive(Debug, Clone, Copy)]
pub struct InputRef<'a> {
    pub src: &'a Path,
    /// `/`-separated path inside the artifact.
    pub path: &'a str,
    pub mode: u32,
    pub media_type: &'static str,
    pub pin: Option<&'a Sha256Digest>,
}

/// One file of an [`InputFiles`]: where its strings are in the shared
/// buffer (its artifact path is the end of its source path when it is one,
/// as for every file of a directory, else follows it), 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: u64,
    src_len: u32,
    path_len: u32,
    mode: u32,
    /// Index into `InputFiles::pins`, or `NO_PIN`.
    pin: u32,
    media: u16,
    /// The path follows the source instead of ending it.
    apart: bool,
}

const NO_PIN: u32 = u32::MAX;

/// An artifact's planned input files, compact for many small files: every
/// source and artifact path in one shared string buffer (a directory's
/// artifact path stored once, as the end of its source path), a 32-byte
/// record per file, media types and pins held once each. Kept in the order
/// pushed.
#[derive(Debug, Clone, Default)]
pub struct InputFiles {
    text: Vec<u8>,
    slots: Vec<Slot>,
    media: Vec<&'static str>,
    pins: Vec<Sha256Digest>,
}

impl InputFiles {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds a file at the end.
    pub fn push(&mut self, f: InputFile) {
        self.add(&f.src, &f.path, f.mode, f.media_type, f.pin.as_deref());
    }

    /// Adds a file at the end from borrowed parts.
    pub fn add(
        &mut self,
        src: &Path,
        path: &str,
        mode: u32,
        media_type: &'static str,
        pin: Option<&Sha256Digest>,
    ) {
        let src = path_bytes(src);
        let at = self.text.len() as u64;
        self.text.extend_from_slice(&src);
        let apart = !src.ends_with(path.as_bytes());
        if apart {
            self.text.extend_from_slice(path.as_bytes());
        }
        let media = match self.media.iter().position(|m| *m == media_type) {
            Some(i) => i,
            None => {
                self.media.push(media_type);
                self.media.len() - 1
            }
        } as u16;
        let pin = match pin {
            None => NO_PIN,
            Some(p) if self.pins.last() == Some(p) => (self.pins.len() - 1) as u32,
            Some(p) => {
                self.pins.push(*p);
                (self.pins.len() - 1) as u32
            }
        };
        self.slots.push(Slot {
            at,
            src_len: u32::try_from(src.len()).expect("a path under 4 GiB"),
            path_len: u32::try_from(path.len()).expect("a path under 4 GiB"),
            mode,
            pin,
            media,
            apart,
        });
    }

    fn view(&self, s: &Slot) -> InputRef<'_> {
        let at = s.at as usize;
        let src_end = at + s.src_len as usize;
        let path = if s.apart {
            &self.text[src_end..src_end + s.path_len as usize]
        } else {
            &self.text[src_end - s.path_len as usize..src_end]
        };
        InputRef {
            src: bytes_path(&self.text[at..src_end]),
            path: std::str::from_utf8(path).expect("pushed as a str"),
            mode: s.mode,
            media_type: self.media[s.media as usize],
            pin: (s.pin != NO_PIN).then(|| &self.pins[s.pin as usize]),
        }
    }

    /// The artifact paths' total length, in bytes.
    pub fn paths_len(&self) -> usize {
        self.slots.iter().map(|s| s.path_len as usize).sum()
    }

    /// The file at `i`, in the order pushed.
    pub fn get(&self, i: usize) -> InputRef<'_> {
        self.view(&self.slots[i])
    }

    pub fn first(&self) -> Option<InputRef<'_>> {
        self.slots.first().map(|s| self.view(s))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = InputRef<'_>> + ExactSizeIterator + '_ {
        self.slots.iter().map(|s| self.view(s))
    }

    /// Removes the last file, giving it to `take` first. The buffer
    /// shrinks with it (its capacity every 4096 files): taking every file
    /// this way never holds both the list and what is made from it whole.
    pub fn pop_with<T>(&mut self, take: impl FnOnce(InputRef<'_>) -> T) -> Option<T> {
        let s = self.slots.pop()?;
        let out = take(self.view(&s));
        self.text.truncate(s.at as usize);
        if self.slots.len().is_multiple_of(4096) {
            self.slots.shrink_to_fit();
            self.text.shrink_to_fit();
        }
        Some(out)
    }
}

/// A path's bytes as stored in an [`InputFiles`] buffer.
#[cfg(unix)]
fn path_bytes(p: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(p.as_os_str().as_bytes())
}

#[cfg(not(unix))]
fn path_bytes(p: &Path) -> std::borrow::Cow<'_, [u8]> {
    match p.to_string_lossy() {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
    }
}

#[cfg(unix)]
fn bytes_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
fn bytes_path(b: &[u8]) -> &Path {
    Path::new(std::str::from_utf8(b).expect("stored from a str"))
}

impl From<Vec<InputFile>> for InputFiles {
    fn from(files: Vec<InputFile>) -> Self {
        files.into_iter().collect()
    }
}

impl FromIterator<InputFile> for InputFiles {
    fn from_iter<I: IntoIterator<Item = InputFile>>(iter: I) -> Self {
        let mut out = InputFiles::new();
        for f in iter {
            out.push(f);
        }
        out
    }
}

impl<'a> IntoIterator for &'a InputFiles {
    type Item = InputRef<'a>;
    type IntoIter = Box<dyn DoubleEndedIterator<Item = InputRef<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
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
    pub files: InputFiles,
    /// Pinned packages (python, cargo): checked against the hashes once the
    /// files are hashed, then recorded in the description.
    pub packages: Vec<packages::PlannedPackage>,
}

/// Lists the regular files under `root` (or `root` itself), sorted, with
/// `/`-separated paths relative to `root`'s parent when `root` is a file, or
/// to `root` when it is a directory. Symbolic links and special files are
/// refused: a bundle carries regular files only.
pub fn walk(root: &Path) -> Result<Vec<(String, PathBuf, u32)>> {
    let mut out = Vec::new();
    walk_each(root, &mut |rel, abs, mode| {
        out.push((rel.to_string(), abs.to_path_buf(), mode));
        Ok(())
    })?;
    Ok(out)
}

/// [`walk`], each file given to `each` as it is found (relative path,
/// path, mode), in the same order: no list of a tree's files.
pub fn walk_each(root: &Path, each: &mut dyn FnMut(&str, &Path, u32) -> Result<()>) -> Result<()> {
    let md = fs_err::symlink_metadata(root)?;
    if md.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Usage(format!("{} has no file name", root.display())))?;
        return each(&name, root, mode_of(&md));
    }
    let mut rel = String::new();
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
        rel.clear();
        for (i, c) in entry
            .path()
            .strip_prefix(root)
            .expect("below root")
            .components()
            .enumerate()
        {
            let c = c.as_os_str().to_str().ok_or_else(|| {
                Error::Usage(format!(
                    "{} has a name that is not UTF-8",
                    entry.path().display()
                ))
            })?;
            if i > 0 {
                rel.push('/');
            }
            rel.push_str(c);
        }
        let md = entry
            .metadata()
            .map_err(|e| Error::Usage(format!("cannot stat {}: {e}", entry.path().display())))?;
        each(&rel, entry.path(), mode_of(&md))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(src: &str, path: &str, mode: u32, media: &'static str, pin: Option<u8>) -> InputFile {
        InputFile {
            src: PathBuf::from(src),
            path: path.into(),
            mode,
            media_type: media,
            pin: pin.map(|b| Box::new(Sha256Digest::of(&[b]))),
        }
    }

    /// Files come back in the order pushed, each with its own source, path
    /// (a suffix of its source or not), mode, media type and pin; the same
    /// source twice stays two files.
    #[test]
    fn input_files_keep_order_and_every_field() {
        let given = vec![
            file("/in/tree/a.txt", "tree/a.txt", MODE_FILE, "text/a", None),
            file(
                "/in/tree/b.bin",
                "elsewhere/b.bin",
                MODE_EXEC,
                "text/b",
                Some(1),
            ),
            file("/in/tree/a.txt", "tree/a.txt", MODE_FILE, "text/a", Some(1)),
            file(
                "/in/x",
                "a/much/longer/path/than/its/source",
                MODE_FILE,
                "text/a",
                Some(2),
            ),
            file("/in/tree/é.txt", "é.txt", MODE_FILE, "text/b", None),
            file("/in/empty", "", MODE_FILE, "text/a", None),
        ];
        let files: InputFiles = given.clone().into();
        assert_eq!(files.len(), given.len());
        assert!(!files.is_empty());
        // Media types and a run of equal pins are held once each.
        assert_eq!(files.media.len(), 2);
        assert_eq!(files.pins.len(), 2);
        for (i, (f, g)) in files.iter().zip(&given).enumerate() {
            assert_eq!(f.src, g.src.as_path(), "{i}");
            assert_eq!(f.path, g.path, "{i}");
            assert_eq!(f.mode, g.mode, "{i}");
            assert_eq!(f.media_type, g.media_type, "{i}");
            assert_eq!(f.pin, g.pin.as_deref(), "{i}");
            assert_eq!(files.get(i).path, g.path, "{i}");
        }
        assert_eq!(files.first().unwrap().path, "tree/a.txt");
        // A path that ends its source is stored once.
        assert_eq!(
            files.text.len(),
            given.iter().map(|g| g.src.as_os_str().len()).sum::<usize>()
                + "elsewhere/b.bin".len()
                + "a/much/longer/path/than/its/source".len()
        );
    }

    /// Popping gives the files last first and shrinks the buffer; what is
    /// left reads back unchanged.
    #[test]
    fn input_files_pop_from_the_back() {
        let mut files = InputFiles::new();
        assert!(files.first().is_none());
        assert!(files.pop_with(|f| f.path.to_string()).is_none());
        let n = 10_000;
        for i in 0..n {
            let src = format!("/root/tree/d{}/f{i}.rs", i / 100);
            let path = if i % 7 == 0 {
                format!("other/f{i}.rs")
            } else {
                format!("tree/d{}/f{i}.rs", i / 100)
            };
            files.add(Path::new(&src), &path, MODE_FILE, "text/x", None);
        }
        for i in (n / 2..n).rev() {
            let (src, path) = files
                .pop_with(|f| (f.src.to_path_buf(), f.path.to_string()))
                .unwrap();
            assert_eq!(
                src,
                PathBuf::from(format!("/root/tree/d{}/f{i}.rs", i / 100))
            );
            assert!(path.ends_with(&format!("/f{i}.rs")));
        }
        assert_eq!(files.len(), n / 2);
        assert!(files.text.capacity() < 2 * files.text.len() + 4096 * 64);
        for (i, f) in files.iter().enumerate() {
            assert_eq!(
                f.src,
                Path::new(&format!("/root/tree/d{}/f{i}.rs", i / 100))
            );
        }
    }

    /// A tree is walked in name order, each file once, with paths relative
    /// to the root; a single file is named by itself.
    #[test]
    fn walk_each_lists_a_tree_in_order() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        for p in ["z.txt", "b/c/x", "b/a", "a"] {
            std::fs::write(root.join(p), p).unwrap();
        }
        let mut seen = Vec::new();
        walk_each(&root, &mut |rel, abs, _| {
            assert_eq!(abs, root.join(rel));
            seen.push(rel.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["a", "b/a", "b/c/x", "z.txt"]);
        assert_eq!(
            walk(&root)
                .unwrap()
                .into_iter()
                .map(|w| w.0)
                .collect::<Vec<_>>(),
            seen
        );
        let mut one = Vec::new();
        walk_each(&root.join("b/a"), &mut |rel, _, _| {
            one.push(rel.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(one, ["a"]);
    }
}
