//! Opening a bundle in any transport form and reading its tag files.
//! Nothing here trusts what it reads: every path is checked before it is
//! used, every size is bounded, links and special files are refused.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::bundle::{
    safe_relative, CUSTODY_DIR, MAX_TAG_FILE, SIGNATURES_DIR, TAGMANIFEST, TAG_FILES,
};
use crate::error::{Error, Report, Result};

/// A bundle's transport form.
#[derive(Debug, Clone)]
pub enum Form {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        zstd: bool,
    },
    /// Volume files (`NAME-VERSION.volNNN.tar[.zst]`); one file is checked alone.
    Volumes {
        files: Vec<PathBuf>,
    },
}

impl Form {
    pub fn open(path: &Path) -> Result<Self> {
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Usage(format!(
                    "no such bundle: {} (give a bundle directory, a .tar or .tar.zst file, a folder of volumes or volume files)",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(Error::Usage(format!(
                    "cannot open bundle {}: {e}",
                    path.display()
                )));
            }
        };
        if md.file_type().is_symlink() {
            return Err(Error::Usage(format!(
                "{} is a symbolic link; give the bundle's real path",
                path.display()
            )));
        }
        // Decided from the metadata alone, before a byte is read: opening a
        // FIFO or a device to sniff its magic could block forever.
        if !md.is_dir() && !md.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file or a directory (a FIFO, socket or device); give a bundle directory, a .tar or .tar.zst file, or volume files",
                path.display()
            )));
        }
        if md.is_dir() {
            if path.join(crate::bundle::BAGIT_TXT).exists() {
                return Ok(Form::Dir(path.to_path_buf()));
            }
            let mut files: Vec<PathBuf> = fs_err::read_dir(path)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(crate::volumes::parse_volume_name)
                        .is_some()
                })
                .map(|e| e.path())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::Usage(format!(
                    "{} is neither a bundle directory (no bagit.txt) nor a folder of volumes (no NAME-VERSION.volNNN.tar files)",
                    path.display()
                )));
            }
            return Ok(Form::Volumes { files });
        }
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::volumes::parse_volume_name)
            .is_some()
        {
            return Ok(Form::Volumes {
                files: vec![path.to_path_buf()],
            });
        }
        Ok(Form::Tar {
            path: path.to_path_buf(),
            zstd: is_zstd(path)?,
        })
    }

    /// Several paths: volume files of one bundle.
    pub fn open_all(paths: &[PathBuf]) -> Result<Self> {
        match paths {
            [one] => Self::open(one),
            many => {
                for p in many {
                    if !matches!(Self::open(p)?, Form::Volumes { .. }) {
                        return Err(Error::Usage(format!(
                            "{}: several bundle paths are accepted only as volume files (NAME-VERSION.volNNN.tar)",
                            p.display()
                        )));
                    }
                }
                let mut files = many.to_vec();
                files.sort();
                Ok(Form::Volumes { files })
            }
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Form::Dir(p) | Form::Tar { path: p, .. } => p,
            Form::Volumes { files } => files
                .first()
                .map(PathBuf::as_path)
                .unwrap_or(Path::new(".")),
        }
    }

    /// Where additions to this bundle (co-signatures, custody events) live:
    /// the bundle directory itself, or `<file>.airlock/` beside a tar, so a
    /// multi-GB file is never rewritten to add a signature.
    pub fn additions_dir(&self) -> PathBuf {
        match self {
            Form::Dir(p) => p.clone(),
            Form::Tar { path, .. } => {
                let mut s = path.as_os_str().to_owned();
                s.push(".airlock");
                PathBuf::from(s)
            }
            Form::Volumes { files } => {
                let first = files
                    .first()
                    .map(PathBuf::as_path)
                    .unwrap_or(Path::new("bundle"));
                let name = first
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("bundle");
                let stem = crate::volumes::parse_volume_name(name).map_or(name, |(s, _)| s);
                first.with_file_name(format!("{stem}.airlock"))
            }
        }
    }

    /// Opens a tar form as a byte stream (decompressing zstd).
    pub fn tar_stream(&self) -> Result<Box<dyn Read + Send>> {
        match self {
            Form::Dir(_) | Form::Volumes { .. } => {
                unreachable!("only single tar files are streamed whole")
            }
            Form::Tar { path, .. } => tar_file_stream(path),
        }
    }
}

fn is_zstd(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let n = fs_err::File::open(path)?.read(&mut magic)?;
    Ok(n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd])
}

/// A tar file as a byte stream, decompressing it if it is zstd.
pub fn tar_file_stream(path: &Path) -> Result<Box<dyn Read + Send>> {
    let zstd = is_zstd(path)?;
    let f = std::io::BufReader::with_capacity(1 << 20, fs_err::File::open(path)?);
    Ok(if zstd {
        Box::new(zstd::Decoder::with_buffer(f)?)
    } else {
        Box::new(f)
    })
}

/// The bundle's tag files, signatures and custody events, read into memory.
#[derive(Debug, Clone, Default)]
pub struct TagSet {
    /// Root tag files by name (the tag manifest included).
    pub files: BTreeMap<String, Vec<u8>>,
    /// `signatures/<name>` → bytes.
    pub signatures: BTreeMap<String, Vec<u8>>,
    /// `custody/<name>` → bytes.
    pub custody: BTreeMap<String, Vec<u8>>,
    /// Problems met while reading.
    pub report: Report,
}

/// Where an entry of the bundle belongs.
pub enum Place {
    Tag,
    Signature,
    Custody,
    Payload,
    Unexpected,
}

pub fn place_of(path: &str) -> Place {
    if TAG_FILES.contains(&path) || path == TAGMANIFEST {
        return Place::Tag;
    }
    match path.split_once('/') {
        Some((SIGNATURES_DIR, rest)) if !rest.contains('/') => Place::Signature,
        Some((CUSTODY_DIR, rest)) if !rest.contains('/') => Place::Custody,
        Some(("data", _)) => Place::Payload,
        _ => Place::Unexpected,
    }
}

impl TagSet {
    /// Stores one non-payload entry, or reports it.
    pub fn take(&mut self, path: &str, bytes: Vec<u8>) {
        match place_of(path) {
            Place::Tag => {
                self.files.insert(path.to_string(), bytes);
            }
            Place::Signature => {
                self.signatures.insert(path.to_string(), bytes);
            }
            Place::Custody => {
                self.custody.insert(path.to_string(), bytes);
            }
            Place::Payload => unreachable!("payload is not a tag"),
            Place::Unexpected => self.report.add(path, "unexpected file in the bundle (not a tag file, signature, custody event or payload)"),
        }
    }

    /// Adds the signatures and custody events stored beside a tar bundle.
    /// An entry present in both places must be identical.
    pub fn merge_additions(&mut self, form: &Form) -> Result<()> {
        if let Form::Dir(_) = form {
            return Ok(());
        }
        let dir = form.additions_dir();
        if !dir.exists() {
            return Ok(());
        }
        let extra = TagSet::read_dir(&dir)?;
        self.report.merge(extra.report);
        for (path, bytes) in extra.files {
            self.report.add(
                format!("{}/{path}", dir.display()),
                "unexpected file beside the bundle",
            );
            let _ = bytes;
        }
        for (path, bytes) in extra.signatures.into_iter().chain(extra.custody) {
            let target = if path.starts_with(SIGNATURES_DIR) {
                &mut self.signatures
            } else {
                &mut self.custody
            };
            match target.get(&path) {
                Some(existing) if *existing != bytes => self.report.add(
                    format!("{}/{path}", dir.display()),
                    "differs from the same file inside the bundle",
                ),
                Some(_) => {}
                None => {
                    target.insert(path, bytes);
                }
            }
        }
        Ok(())
    }

    /// Reads the tag files of a directory bundle.
    pub fn read_dir(dir: &Path) -> Result<TagSet> {
        let mut tags = TagSet::default();
        for entry in walkdir::WalkDir::new(dir)
            .follow_links(false)
            .min_depth(1)
            .sort_by_file_name()
        {
            let entry = entry
                .map_err(|e| Error::Usage(format!("cannot read bundle {}: {e}", dir.display())))?;
            let rel = entry
                .path()
                .strip_prefix(dir)
                .expect("below root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "data" || rel.starts_with("data/") {
                continue;
            }
            let ft = entry.file_type();
            if ft.is_dir() {
                if rel != SIGNATURES_DIR && rel != CUSTODY_DIR {
                    tags.report.add(&rel, "unexpected directory in the bundle");
                }
                continue;
            }
            if !ft.is_file() {
                tags.report.add(
                    &rel,
                    "symbolic link or special file; a bundle holds regular files only",
                );
                continue;
            }
            if let Place::Unexpected = place_of(&rel) {
                tags.take(&rel, vec![]);
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
            if len > MAX_TAG_FILE {
                tags.report.add(
                    &rel,
                    format!("{len} bytes, larger than any tag file may be ({MAX_TAG_FILE})"),
                );
                continue;
            }
            tags.take(&rel, fs_err::read(entry.path())?);
        }
        Ok(tags)
    }
}

/// Checks a tar entry's path and returns it in normalized form.
pub fn tar_entry_path(raw: &[u8]) -> std::result::Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| {
        format!(
            "entry name is not UTF-8: {:?}",
            String::from_utf8_lossy(raw)
        )
    })?;
    let s = s.strip_prefix("./").unwrap_or(s);
    let s = s.strip_suffix('/').unwrap_or(s);
    if !safe_relative(s) {
        return Err(format!(
            "unsafe path {s:?} in tar (absolute or containing '..'); refusing the bundle"
        ));
    }
    Ok(s.to_string())
}
