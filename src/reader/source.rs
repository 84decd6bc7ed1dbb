//! Opening a bundle in any transport form and reading its tag files.
//! Nothing here trusts what it reads: every path is checked before it is
//! used, every size is bounded, links and special files are refused.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::bundle::VolumeMarker;
use crate::bundle::{
    safe_relative, BLOBS_PREFIX, CUSTODY_DIR, DESCRIPTION, MANIFEST, MAX_EVIDENCE_FILE,
    MAX_TAG_ENTRIES, MAX_TAG_FILE, MAX_TAG_TOTAL, SIGNATURES_DIR, TAGMANIFEST, TAG_FILES,
    VOLUME_MAP, VOLUME_MARKER,
};
use crate::digest::Sha256Digest;
use crate::error::{Error, Report, Result};
use crate::rawtar::{Member, Members, Stop};

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
                        .and_then(crate::bundle::parse_volume_name)
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
            .and_then(crate::bundle::parse_volume_name)
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
                let stem = crate::bundle::parse_volume_name(name).map_or(name, |(s, _)| s);
                first.with_file_name(format!("{stem}.airlock"))
            }
        }
    }
}

/// Whether a file starts with the zstd frame magic.
pub(crate) fn is_zstd(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let n = fs_err::File::open(path)?.read(&mut magic)?;
    Ok(n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd])
}

/// The bundle's tag files, signatures and custody events, read into memory.
///
/// Every entry is admitted through [`TagSet::admit`], which bounds each
/// entry's size, the count of entries and their total: the same limits for
/// every form (directory, tar, tar.zst, volumes, additions beside a file),
/// and the ones pack writes within.
#[derive(Debug, Clone, Default)]
pub struct TagSet {
    /// Root tag files by name (the tag manifest included).
    pub files: BTreeMap<String, Vec<u8>>,
    /// `signatures/<name>` → bytes.
    pub signatures: BTreeMap<String, Vec<u8>>,
    /// `custody/<name>` → bytes.
    pub custody: BTreeMap<String, Vec<u8>>,
    /// A volume's map and marker (volumes only).
    pub volume: BTreeMap<String, Vec<u8>>,
    /// Tag files moved out of memory (`TagSet::spill`, or as they are read
    /// by a `TagSet::spilling` set): not in `files`.
    pub spilled: BTreeMap<String, Spilled>,
    /// Whether the description and payload manifest are spilled as they
    /// are read.
    spill_large: bool,
    /// Problems met while reading.
    pub report: Report,
    /// Entries admitted so far, and their bytes.
    count: usize,
    bytes: u64,
}

/// A tag file moved out of memory (`TagSet::spill`): its digest and length
/// kept, its bytes in an anonymous temporary file (removed when the last
/// clone is dropped). Verify holds the description and the payload manifest
/// this way: they grow with the file count.
#[derive(Debug, Clone)]
pub struct Spilled {
    pub digest: Sha256Digest,
    pub len: u64,
    file: std::sync::Arc<std::fs::File>,
}

impl Spilled {
    /// Tag files up to this size stay in memory.
    pub const AT: usize = 1 << 20;
    /// The tag files that may be spilled: the two that grow with the file
    /// count (the others are read as bytes by every check of them).
    pub const NAMES: [&str; 2] = [DESCRIPTION, MANIFEST];

    fn new(bytes: &[u8]) -> std::io::Result<Spilled> {
        let mut file = tempfile::tempfile()?;
        std::io::Write::write_all(&mut file, bytes)?;
        Ok(Spilled {
            digest: Sha256Digest::of(bytes),
            len: bytes.len() as u64,
            file: std::sync::Arc::new(file),
        })
    }

    /// A fresh spill file for `fill` (`None` when none can be made: the
    /// entry is then read into memory as any other).
    fn file() -> Option<std::fs::File> {
        tempfile::tempfile().ok()
    }

    /// Streams up to `len` bytes of `r` into `file`, hashing them as they
    /// are written: the entry is never held whole. Its `len` is what was
    /// read (less than asked when `r` ended early).
    fn fill(
        mut file: std::fs::File,
        r: &mut dyn Read,
        len: u64,
    ) -> std::result::Result<Spilled, SpillError> {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; (256 << 10).min(len as usize)];
        let mut n = 0u64;
        while n < len {
            let want = (len - n).min(buf.len() as u64) as usize;
            let k = match r.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SpillError::Read(e)),
            };
            hasher.update(&buf[..k]);
            std::io::Write::write_all(&mut file, &buf[..k]).map_err(SpillError::Write)?;
            n += k as u64;
        }
        Ok(Spilled {
            digest: Sha256Digest::of_raw(hasher.finalize().into()),
            len: n,
            file: std::sync::Arc::new(file),
        })
    }

    /// Its bytes from the start (one reader at a time), re-hashed as they
    /// are read: at their end, bytes that are not the ones hashed when they
    /// were spilled (the file altered meanwhile) are a read error.
    pub fn reader(&self) -> std::io::Result<std::io::BufReader<SpillReader>> {
        use sha2::Digest as _;
        let mut f = self.file.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        Ok(std::io::BufReader::with_capacity(
            256 << 10,
            SpillReader {
                inner: f.take(self.len),
                hasher: sha2::Sha256::new(),
                read: 0,
                len: self.len,
                digest: self.digest,
            },
        ))
    }

    /// Overwrites its spill file at `at` (tests: a spill file altered
    /// behind the reader's back).
    #[cfg(test)]
    pub(crate) fn overwrite_for_test(&self, at: u64, bytes: &[u8]) {
        let mut f = self.file.try_clone().unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
    }

    /// Its bytes, read back whole.
    pub fn bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.reader()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Why streaming an entry into a spill file (`Spilled::fill`) stopped.
#[derive(Debug)]
enum SpillError {
    /// Reading the entry failed.
    Read(std::io::Error),
    /// Writing the temporary file failed.
    Write(std::io::Error),
}

/// A spilled tag file read back (`Spilled::reader`), checked at its end
/// against the length and sha256 it had when it was spilled.
pub struct SpillReader {
    inner: std::io::Take<std::fs::File>,
    hasher: sha2::Sha256,
    read: u64,
    len: u64,
    digest: Sha256Digest,
}

impl Read for SpillReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let k = self.inner.read(buf)?;
        self.hasher.update(&buf[..k]);
        self.read += k as u64;
        if k == 0 && !buf.is_empty() {
            let now = Sha256Digest::of_raw(self.hasher.clone().finalize().into());
            if self.read != self.len || now != self.digest {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "its copy set aside while verifying changed ({} bytes of sha256 {now}, \
                         but {} bytes of sha256 {} were read); refusing it",
                        self.read, self.len, self.digest
                    ),
                ));
            }
        }
        Ok(k)
    }
}

/// Where an entry of the bundle belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Tag,
    Signature,
    Custody,
    /// `volumes.dsse.json` or `volume.json`: allowed in volumes only.
    Volume,
    Payload,
    Unexpected,
}

impl Place {
    /// The largest entry of this kind a bundle may hold.
    pub fn limit(self) -> u64 {
        match self {
            Place::Tag | Place::Volume => MAX_TAG_FILE,
            Place::Signature | Place::Custody => MAX_EVIDENCE_FILE,
            Place::Payload => u64::MAX,
            Place::Unexpected => 0,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Place::Tag => "tag file",
            Place::Signature => "signature",
            Place::Custody => "custody event",
            Place::Volume => "volume map or marker",
            Place::Payload => "payload file",
            Place::Unexpected => "unexpected file",
        }
    }
}

pub fn place_of(path: &str) -> Place {
    if TAG_FILES.contains(&path) || path == TAGMANIFEST {
        return Place::Tag;
    }
    if path == VOLUME_MAP || path == VOLUME_MARKER {
        return Place::Volume;
    }
    match path.split_once('/') {
        Some((SIGNATURES_DIR, rest)) if !rest.contains('/') && !rest.is_empty() => Place::Signature,
        Some((CUSTODY_DIR, rest)) if !rest.contains('/') && !rest.is_empty() => Place::Custody,
        Some(("data", rest)) if !rest.is_empty() => Place::Payload,
        _ => Place::Unexpected,
    }
}

const UNEXPECTED: &str =
    "unexpected file in the bundle (not a tag file, signature, custody event or payload)";

impl TagSet {
    /// The bytes of a tag file, signature, custody event or volume file by path.
    pub fn get(&self, path: &str) -> Option<&Vec<u8>> {
        match place_of(path) {
            Place::Tag => self.files.get(path),
            Place::Signature => self.signatures.get(path),
            Place::Custody => self.custody.get(path),
            Place::Volume => self.volume.get(path),
            _ => None,
        }
    }

    /// Moves tag file `name` out of memory when it is larger than
    /// `Spilled::AT`. If the temporary file cannot be written it stays in
    /// memory: nothing else changes.
    pub fn spill(&mut self, name: &str) {
        if !Spilled::NAMES.contains(&name) {
            return;
        }
        let Some(bytes) = self.files.get(name).filter(|b| b.len() > Spilled::AT) else {
            return;
        };
        if let Ok(s) = Spilled::new(bytes) {
            self.files.remove(name);
            self.spilled.insert(name.to_string(), s);
        }
    }

    /// Whether tag file `name` is `bytes` (absent when `None`), spilled or
    /// not (a spilled one by length and sha256).
    pub fn file_is(&self, name: &str, bytes: Option<&[u8]>) -> bool {
        match (self.files.get(name), self.spilled.get(name), bytes) {
            (Some(a), _, b) => Some(a.as_slice()) == b,
            (None, Some(s), Some(b)) => s.len == b.len() as u64 && s.digest == Sha256Digest::of(b),
            (None, Some(_), None) => false,
            (None, None, b) => b.is_none(),
        }
    }

    /// Whether a tag file met again as `size` bytes of sha256 `digest` is
    /// what was read before as `path`.
    pub fn same_digest(&self, path: &str, size: u64, digest: &Sha256Digest) -> bool {
        match (self.files.get(path), self.spilled.get(path)) {
            (Some(b), _) => b.len() as u64 == size && Sha256Digest::of(b) == *digest,
            (None, Some(s)) => s.len == size && s.digest == *digest,
            (None, None) => false,
        }
    }

    /// Whether `bytes` are what was read as non-payload entry `path`.
    pub fn same(&self, path: &str, bytes: &[u8]) -> bool {
        match place_of(path) {
            Place::Tag => self.file_is(path, Some(bytes)),
            _ => self.get(path).map(Vec::as_slice) == Some(bytes),
        }
    }

    /// Every tag file (spilled ones read back), signature and custody
    /// event with its bytes, tag files first, each kind by name.
    pub fn into_files(self) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        let mut files = self.files;
        for (name, s) in self.spilled {
            files.insert(name, s.bytes()?);
        }
        Ok(files
            .into_iter()
            .chain(self.signatures)
            .chain(self.custody)
            .collect())
    }

    /// An empty set that spills the description and the payload manifest
    /// (when larger than `Spilled::AT`) as they are read: verify's.
    pub fn spilling() -> TagSet {
        TagSet {
            spill_large: true,
            ..TagSet::default()
        }
    }

    /// Decides whether a non-payload entry of `size` bytes may be read into
    /// memory: its kind's bound, the count of entries and their total.
    pub fn admit(&mut self, place: Place, size: u64) -> std::result::Result<(), String> {
        if size > place.limit() {
            return Err(format!(
                "{size} bytes, larger than a {} may be ({} bytes)",
                place.what(),
                place.limit()
            ));
        }
        if self.count + 1 > MAX_TAG_ENTRIES {
            return Err(format!(
                "more than {MAX_TAG_ENTRIES} tag files, signatures and custody events; refusing to read more"
            ));
        }
        if self.bytes.saturating_add(size) > MAX_TAG_TOTAL {
            return Err(format!(
                "tag files, signatures and custody events together exceed {MAX_TAG_TOTAL} bytes; refusing to read more"
            ));
        }
        self.count += 1;
        self.bytes += size;
        Ok(())
    }

    /// A fresh spill file when entry `path` of `size` bytes is to be
    /// streamed into it as it is read (`Spilled::fill`) rather than read
    /// into memory: a spilling set's description or payload manifest larger
    /// than `Spilled::AT`, met for the first time.
    fn spill_file(&self, path: &str, size: u64) -> Option<std::fs::File> {
        if !(self.spill_large
            && Spilled::NAMES.contains(&path)
            && size > Spilled::AT as u64
            && !self.files.contains_key(path)
            && !self.spilled.contains_key(path))
        {
            return None;
        }
        Spilled::file()
    }

    /// Stores one admitted tag file that was spilled as it was read (as
    /// `take` does its bytes).
    fn take_spilled(&mut self, path: &str, s: Spilled) {
        if self.spilled.contains_key(path) || self.files.contains_key(path) {
            return self.report.add(path, "appears twice in the bundle");
        }
        self.spilled.insert(path.to_string(), s);
    }

    /// Stores one admitted non-payload entry, or reports it. A second entry
    /// with the same path is a finding, never a silent replacement.
    pub fn take(&mut self, path: &str, bytes: Vec<u8>) {
        if self.spilled.contains_key(path) {
            return self.report.add(path, "appears twice in the bundle");
        }
        if self.spill_large && Spilled::NAMES.contains(&path) && bytes.len() > Spilled::AT {
            if let Ok(s) = Spilled::new(&bytes) {
                if !self.files.contains_key(path) {
                    self.spilled.insert(path.to_string(), s);
                    return;
                }
            }
        }
        let slot = match place_of(path) {
            Place::Tag => &mut self.files,
            Place::Signature => &mut self.signatures,
            Place::Custody => &mut self.custody,
            Place::Volume => &mut self.volume,
            Place::Payload => unreachable!("payload is not a tag"),
            Place::Unexpected => return self.report.add(path, UNEXPECTED),
        };
        if slot.contains_key(path) {
            return self.report.add(path, "appears twice in the bundle");
        }
        slot.insert(path.to_string(), bytes);
    }

    /// Adds the signatures and custody events stored beside a tar bundle.
    /// An entry present in both places must be identical.
    pub fn merge_additions(&mut self, form: &Form) -> Result<()> {
        if let Form::Dir(_) = form {
            return Ok(());
        }
        let dir = form.additions_dir();
        match fs_err::symlink_metadata(&dir) {
            Err(_) => return Ok(()),
            Ok(m) if !m.is_dir() => {
                self.report.add(
                    dir.display().to_string(),
                    "not a directory; additions beside a bundle file are a directory of signatures/ and custody/",
                );
                return Ok(());
            }
            Ok(_) => {}
        }
        let mut extra = TagSet {
            count: self.count,
            bytes: self.bytes,
            ..TagSet::default()
        };
        let payload = walk_dir(&dir, &mut extra)?;
        for rel in payload {
            extra.report.add(
                format!("{}/{}", dir.display(), rel.path()),
                "unexpected file beside the bundle",
            );
        }
        self.count = extra.count;
        self.bytes = extra.bytes;
        self.report.merge(extra.report);
        for path in extra.files.keys().chain(extra.volume.keys()) {
            self.report.add(
                format!("{}/{path}", dir.display()),
                "unexpected file beside the bundle",
            );
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

    /// Reads the tag files of a directory bundle (the payload is not read).
    pub fn read_dir(dir: &Path) -> Result<TagSet> {
        let mut tags = TagSet::default();
        walk_dir(dir, &mut tags)?;
        Ok(tags)
    }
}

/// A payload file found in a directory bundle: `data/...`, its path when
/// that is not the bundle's directory joined with `data/...` (a name with a
/// backslash), its size. A bundle of many files lists one per file, so a
/// blob named by its digest (`data/blobs/sha256/<hex>`, at its plain path)
/// is held as that digest and its size, no string.
#[derive(Debug, Clone)]
pub enum DirPayload {
    Blob(Sha256Digest, u64),
    Other(Box<(String, Option<PathBuf>, u64)>),
}

impl DirPayload {
    fn new(rel: String, own: Option<PathBuf>, len: u64) -> DirPayload {
        match rel.strip_prefix(BLOBS_PREFIX) {
            Some(hex)
                if own.is_none()
                    && hex.len() == 64
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                match hex.parse() {
                    Ok(d) => DirPayload::Blob(d, len),
                    Err(_) => DirPayload::Other(Box::new((rel, own, len))),
                }
            }
            _ => DirPayload::Other(Box::new((rel, own, len))),
        }
    }

    /// Its path inside the bundle, `data/...`.
    pub fn path(&self) -> std::borrow::Cow<'_, str> {
        match self {
            DirPayload::Blob(d, _) => crate::bundle::blob_path(d).into(),
            DirPayload::Other(o) => o.0.as_str().into(),
        }
    }

    /// Where it is: the bundle's directory joined with `path`, unless it has its own.
    pub fn file(&self, dir: &Path) -> PathBuf {
        match self {
            DirPayload::Other(o) if o.1.is_some() => o.1.clone().expect("some"),
            _ => dir.join(&*self.path()),
        }
    }

    /// Its size as listed.
    pub fn size(&self) -> u64 {
        match self {
            DirPayload::Blob(_, len) => *len,
            DirPayload::Other(o) => o.2,
        }
    }
}

/// Walks a directory bundle once: tag files, signatures and custody events are
/// admitted and read into `tags`; payload files are listed, not read. Links,
/// devices and unexpected files or directories are findings in `tags.report`.
///
/// The walk is depth first, each directory's entries in name order (bytes),
/// a directory's own entry before its contents, links not followed: the
/// order `walkdir` gives sorted by name, and its error messages. Each
/// directory is listed whole before its entries are visited, compactly: a
/// bundle of many files holds them all in one directory, and a name that
/// spells a digest is held as that digest (`DirName`), not as a path.
pub fn walk_dir(dir: &Path, tags: &mut TagSet) -> Result<Vec<DirPayload>> {
    walk_dir_from(dir, dir, tags, false)
}

/// `walk_dir` in two halves that may run at once, together finding what it
/// finds: this one reads the tag files, signatures and custody events into
/// `tags` (every entry but `data/`'s contents); `walk_dir_payload` lists
/// `data/`.
pub fn walk_dir_heads(dir: &Path, tags: &mut TagSet) -> Result<()> {
    let payload = walk_dir_from(dir, dir, tags, true)?;
    debug_assert!(payload.is_empty(), "payload is under data/ only");
    Ok(())
}

/// The other half of `walk_dir` (`walk_dir_heads`): the payload files under
/// `data/`, listed in `walk_dir`'s order, and the findings among them. A
/// `data` that is not a directory has none (`walk_dir_heads` reports it).
pub fn walk_dir_payload(dir: &Path) -> Result<(Vec<DirPayload>, Report)> {
    let data = dir.join("data");
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
        || !std::fs::symlink_metadata(&data).is_ok_and(|m| m.is_dir())
    {
        return Ok((Vec::new(), Report::default()));
    }
    let mut tags = TagSet::default();
    let payload = walk_dir_from(dir, &data, &mut tags, false)?;
    Ok((payload, tags.report))
}

/// `walk_dir` of bundle `dir` from its directory `from` down, with or
/// without `data/`'s contents.
fn walk_dir_from(
    dir: &Path,
    from: &Path,
    tags: &mut TagSet,
    skip_data: bool,
) -> Result<Vec<DirPayload>> {
    let mut payload = Vec::new();
    let fail = |e: String| Error::Usage(format!("cannot read bundle {}: {e}", dir.display()));
    // The root is followed when it is a link, and a root that is not a
    // directory has no entries.
    let root = std::fs::metadata(from)
        .map_err(|e| fail(format!("IO error for operation on {}: {e}", from.display())))?;
    if !root.is_dir() {
        return Ok(payload);
    }
    let mut stack = vec![(
        from.to_path_buf(),
        list_dir(from).map_err(fail)?.into_iter(),
    )];
    while let Some((parent, entries)) = stack.last_mut() {
        let Some((name, ft)) = entries.next() else {
            stack.pop();
            continue;
        };
        let path = parent.join(name.as_os_str());
        let rel = path
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.to_str())
            .map(|r| r.replace('\\', "/"));
        if ft.is_dir() {
            match &rel {
                None => tags.report.add(
                    path.display().to_string(),
                    "name is not UTF-8; a bundle's names are UTF-8",
                ),
                Some(rel)
                    if !(rel == SIGNATURES_DIR
                        || rel == CUSTODY_DIR
                        || rel == "data"
                        || rel.starts_with("data/")) =>
                {
                    tags.report.add(rel, "unexpected directory in the bundle")
                }
                Some(rel) if skip_data && rel == "data" => continue,
                Some(_) => {}
            }
            // Every directory is walked, whatever its name.
            let listing = list_dir(&path).map_err(fail)?;
            stack.push((path, listing.into_iter()));
            continue;
        }
        let Some(rel) = rel else {
            tags.report.add(
                path.display().to_string(),
                "name is not UTF-8; a bundle's names are UTF-8",
            );
            continue;
        };
        if !ft.is_file() {
            tags.report.add(
                &rel,
                "symbolic link or special file; a bundle holds regular files only",
            );
            continue;
        }
        let len = std::fs::symlink_metadata(&path)
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        match place_of(&rel) {
            Place::Payload => {
                let own = (dir.join(&rel) != path).then(|| path.clone());
                payload.push(DirPayload::new(rel, own, len))
            }
            Place::Unexpected => tags.report.add(&rel, UNEXPECTED),
            // A directory bundle is never a volume.
            Place::Volume => tags.report.add(&rel, UNEXPECTED),
            place => {
                if let Err(e) = tags.admit(place, len) {
                    tags.report.add(&rel, e);
                    continue;
                }
                if let Some(file) = tags.spill_file(&rel, len) {
                    let mut f = fs_err::File::open(&path)?;
                    match Spilled::fill(file, &mut f, len) {
                        Ok(s) => tags.take_spilled(&rel, s),
                        Err(SpillError::Read(e) | SpillError::Write(e)) => return Err(e.into()),
                    }
                    continue;
                }
                // `len` is admitted and from the file system: read in one allocation.
                let mut bytes = Vec::with_capacity(len as usize);
                fs_err::File::open(&path)?
                    .take(len)
                    .read_to_end(&mut bytes)?;
                tags.take(&rel, bytes);
            }
        }
    }
    // Held through verification beside the plans: no room left over from
    // doubling (at 200k blobs 62k records, 3 MB, at verify's peak). Past
    // glibc's mmap threshold the block is remapped, not copied.
    payload.shrink_to_fit();
    Ok(payload)
}

/// A directory entry's name as `walk_dir` lists it: 64 lowercase hex
/// digits (a blob's name) held as the digest they spell, any other name
/// as it is. Ordered as the names' bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirName {
    Digest(Sha256Digest),
    Other(std::ffi::OsString),
}

impl DirName {
    fn new(name: std::ffi::OsString) -> DirName {
        match name.to_str() {
            Some(hex)
                if hex.len() == 64
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                match hex.parse() {
                    Ok(d) => DirName::Digest(d),
                    Err(_) => DirName::Other(name),
                }
            }
            _ => DirName::Other(name),
        }
    }

    fn as_os_str(&self) -> std::borrow::Cow<'_, std::ffi::OsStr> {
        match self {
            DirName::Digest(d) => std::borrow::Cow::Owned(d.hex().into()),
            DirName::Other(n) => std::borrow::Cow::Borrowed(n.as_os_str()),
        }
    }
}

impl Ord for DirName {
    fn cmp(&self, other: &DirName) -> std::cmp::Ordering {
        match (self, other) {
            // Lowercase hex orders as the bytes it spells.
            (DirName::Digest(a), DirName::Digest(b)) => a.cmp(b),
            _ => self
                .as_os_str()
                .as_encoded_bytes()
                .cmp(other.as_os_str().as_encoded_bytes()),
        }
    }
}

impl PartialOrd for DirName {
    fn partial_cmp(&self, other: &DirName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The entries of one directory of a bundle, sorted by name, with their
/// types (links not followed); or the first error reading it, worded as
/// `walkdir`'s (which sorts a directory's errors before its entries).
fn list_dir(path: &Path) -> std::result::Result<Vec<(DirName, std::fs::FileType)>, String> {
    let io =
        |p: &Path, e: std::io::Error| format!("IO error for operation on {}: {e}", p.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let ft = entry.file_type().map_err(|e| io(&entry.path(), e))?;
        out.push((DirName::new(entry.file_name()), ft));
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.shrink_to_fit();
    Ok(out)
}

/// One entry of a tar bundle, as the walker hands it over.
pub enum Item<'a> {
    /// A tag file, signature, custody event (or a volume's map or marker),
    /// admitted and read whole.
    Head { path: String, bytes: Vec<u8> },
    /// A description or payload manifest larger than `Spilled::AT`, met by
    /// `walk_tar_hashing_heads`: admitted, hashed as it passed, not held.
    HeadHashed {
        path: String,
        size: u64,
        digest: Sha256Digest,
    },
    /// A description or payload manifest larger than `Spilled::AT`, met by
    /// the tag pass of a spilling read (`read_tags_spilling`): admitted,
    /// streamed into a spill file as it was read, never held whole.
    HeadSpilled { path: String, spilled: Spilled },
    /// A payload entry: `read` yields its bytes (the tar's header says `size`).
    /// In a plain tar, and in a tar.zst for an entry of at least
    /// `tarball::STREAM_MIN` bytes that frames of raw blocks hold wholly,
    /// `at` says where they are in the file, for a visitor that reads them
    /// there itself (`Placed`) and leaves `read` alone.
    Payload {
        path: String,
        size: u64,
        read: &'a mut dyn Read,
        at: Option<Placed<'a>>,
    },
}

/// Where a payload entry's bytes lie in a tar or tar.zst file: `size`
/// bytes (the header's) as `layout` says, readable by position
/// (`FileExt::read_at`) on `file`, a handle of the very file the walk reads
/// (never reopened by name). Positioned reads leave the walk's own reading
/// where it is; an entry its visitor does not read is skipped by a seek.
#[derive(Clone)]
pub struct Placed<'a> {
    pub file: &'a std::fs::File,
    pub layout: Layout,
}

/// How an entry's bytes lie in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A plain tar: contiguous from this offset.
    At(u64),
    /// A tar.zst whose frames hold the entry in raw blocks: these extents,
    /// in order, exactly the entry's bytes (`zstdraw::frame_at` checked
    /// each block lies inside the file).
    Blocks(Vec<crate::zstdraw::Extent>),
}

/// What the visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Walks a tar bundle file (zstd or not) once, in order, deciding for every
/// entry what it may be. This is the one place that rules on tar entries:
/// - unsafe or non-UTF-8 names, links, devices, FIFOs: findings, skipped;
/// - a name seen twice: a finding, skipped;
/// - anything that is neither a tag file, signature, custody event, payload
///   file (nor, in a volume, its map or marker): a finding;
/// - a non-payload entry after the payload began: a finding (nothing can be
///   smuggled in after the signed part);
/// - each non-payload entry is admitted by [`TagSet::admit`] (per-entry,
///   count and total bounds) before a byte of it is read; over a bound, the
///   walk stops;
/// - a truncated or corrupt tar: a finding, and the walk stops.
///
/// Plain tars are walked with seeking, so payload entries the visitor does
/// not read are skipped without reading them.
///
/// The tar crate is asked for raw entries: it would otherwise read the data
/// of every pax header and GNU long name or link whole into memory, however
/// large its header says it is, before the walk sees it. Here those
/// metadata entries are the walker's: bounded by [`MAX_TAR_META`] before a
/// byte of them is read, then applied to the member they describe.
pub fn walk_tar(
    path: &Path,
    volume: bool,
    report: &mut Report,
    visit: &mut dyn FnMut(&mut Report, Item) -> Result<Flow>,
) -> Result<()> {
    walk_tar_with(path, volume, Pass::heads(Heads::Read), report, visit)
}

/// `walk_tar`, but a description or payload manifest larger than
/// `Spilled::AT` is streamed into a spill file as it is read and handed
/// over as `Item::HeadSpilled` (never held whole): for verify's tag pass.
fn walk_tar_spilling_heads(
    path: &Path,
    report: &mut Report,
    visit: &mut dyn FnMut(&mut Report, Item) -> Result<Flow>,
) -> Result<()> {
    walk_tar_with(path, false, Pass::heads(Heads::Spill), report, visit)
}

/// How the tar walker hands over a description or payload manifest larger
/// than `Spilled::AT` (every other non-payload entry is read whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heads {
    /// Read whole (`Item::Head`).
    Read,
    /// Hashed as it passes, not held (`Item::HeadHashed`).
    Hash,
    /// Streamed into a spill file (`Item::HeadSpilled`).
    Spill,
}

/// `walk_tar`, but a description or payload manifest larger than
/// `Spilled::AT` is handed over as `Item::HeadHashed` (its sha256, its
/// bytes not held): for verify's payload pass, which only compares the
/// head with what it read before. The blobs `marks` knows are marked there
/// as they are met, not also held in the walk's own set of names met.
pub fn walk_tar_hashing_heads(
    path: &Path,
    marks: &mut dyn Marks,
    report: &mut Report,
    visit: &mut dyn FnMut(&mut Report, Item) -> Result<Flow>,
) -> Result<()> {
    let pass = Pass {
        heads: Heads::Hash,
        marks: Some(marks),
    };
    walk_tar_with(path, false, pass, report, visit)
}

/// The blobs a tar walk's caller tracks itself (verify: one flag per blob
/// of its plan). A walk refuses a name met twice; it keeps each name it met
/// (a blob's as its 32-byte digest), unless the caller's marks know it:
/// then the caller's flag says whether it was met before, and the walk
/// holds nothing for it.
pub trait Marks {
    /// `None` when `digest` is not one of the caller's blobs; else whether
    /// this is the first time it is met (it is marked met).
    fn mark(&mut self, digest: &Sha256Digest) -> Option<bool>;
}

/// What one tar walk hands over and tracks beyond what every walk does.
struct Pass<'m> {
    /// How a large description or payload manifest is handed over.
    heads: Heads,
    /// The blobs the caller tracks itself (see [`Marks`]).
    marks: Option<&'m mut dyn Marks>,
}

impl Pass<'_> {
    fn heads(heads: Heads) -> Self {
        Pass { heads, marks: None }
    }
}

fn walk_tar_with(
    path: &Path,
    volume: bool,
    pass: Pass<'_>,
    report: &mut Report,
    visit: &mut dyn FnMut(&mut Report, Item) -> Result<Flow>,
) -> Result<()> {
    if is_zstd(path)? {
        let file = fs_err::File::open(path)?.into_parts().0;
        // Duplicates of the same open file, for positioned reads: the walk's
        // (a raw frame's content it reads) and the placed entries'.
        let reads = file.try_clone()?;
        let placed = file.try_clone()?;
        let frames = ZstFrames::new(file, path)?;
        // Decompression runs on its own thread, a few chunks ahead of the
        // walk (which hashes): the two overlap instead of taking turns.
        // Stopping the walk early drops the reader, which stops the thread.
        std::thread::scope(|scope| {
            let ahead = std::cell::RefCell::new(ReadAhead::start_with(scope, frames, Some(reads)));
            let mut archive = tar::Archive::new(SharedAhead(&ahead));
            let entries = archive.entries_with_seek()?.raw(true);
            let placing = Placing::Zst {
                file: &placed,
                ahead: &ahead,
            };
            walk_entries(entries, placing, path, volume, pass, report, visit)
        })
    } else {
        let file = fs_err::File::open(path)?;
        // A second handle of the same open file, for positioned reads.
        let placed = file.file().try_clone()?;
        let f = std::io::BufReader::with_capacity(1 << 20, file);
        let mut archive = tar::Archive::new(SeekInBuffer(f));
        let entries = archive.entries_with_seek()?.raw(true);
        walk_entries(
            entries,
            Placing::Plain(&placed),
            path,
            volume,
            pass,
            report,
            visit,
        )
    }
}

/// Size of the chunks [`ReadAhead`] hands over.
const AHEAD_CHUNK: usize = 256 << 10;

/// What the read-ahead thread hands over: decoded bytes, or a zstd frame of
/// raw blocks whose content lies verbatim in the file (not read yet).
enum Piece {
    Bytes(Vec<u8>),
    Raw(crate::zstdraw::RawFrame),
}

/// What a producer of the read-ahead thread gives at each step.
enum Out {
    /// Bytes written into the buffer; 0 is the end.
    Bytes(usize),
    /// A frame of raw blocks, skipped in the stream: its content is read by
    /// position when needed.
    Raw(crate::zstdraw::RawFrame),
}

trait Produce: Send {
    fn next(&mut self, buf: &mut [u8]) -> std::io::Result<Out>;
}

/// Any reader, as bytes only.
#[cfg(test)]
struct Plain<R>(R);

#[cfg(test)]
impl<R: Read + Send> Produce for Plain<R> {
    fn next(&mut self, buf: &mut [u8]) -> std::io::Result<Out> {
        self.0.read(buf).map(Out::Bytes)
    }
}

/// A tar.zst's frames in order: decoded by libzstd exactly as
/// `zstd::Decoder` does (the same loop over the same raw decoder, so every
/// error is the one it gives), except that at each frame boundary a frame
/// that `zstdraw::frame_at` finds made only of raw blocks is skipped in the
/// file and handed over as [`Out::Raw`]: its content is the frame's blocks
/// as they lie, so the walk can read it by position (and the verify pool
/// hash it there) instead of copying it through the decoder. A frame the
/// parser does not map, or finds malformed, goes to the decoder, which
/// reports what is wrong as it always did.
struct ZstFrames<'p> {
    input: std::io::BufReader<std::fs::File>,
    /// File offset of `input`'s next unconsumed byte.
    at: u64,
    /// The file's length when opened: headers are read only inside it.
    len: u64,
    path: &'p Path,
    decoder: zstd::stream::raw::Decoder<'static>,
    /// At a frame boundary (the previous frame ended, or nothing began).
    boundary: bool,
    state: ZstState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ZstState {
    Reading,
    PastEof,
    Finished,
}

impl<'p> ZstFrames<'p> {
    fn new(file: std::fs::File, path: &'p Path) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(ZstFrames {
            input: std::io::BufReader::with_capacity(1 << 20, file),
            at: 0,
            len,
            path,
            decoder: zstd::stream::raw::Decoder::new()?,
            boundary: true,
            state: ZstState::Reading,
        })
    }
}

impl Produce for ZstFrames<'_> {
    fn next(&mut self, buf: &mut [u8]) -> std::io::Result<Out> {
        use std::io::BufRead;
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut first = true;
        loop {
            match self.state {
                ZstState::Reading => {
                    let has_input = !first && !self.input.fill_buf()?.is_empty();
                    if !first && !has_input {
                        self.state = ZstState::PastEof;
                        continue;
                    }
                    if has_input && self.boundary {
                        let src = crate::zstdraw::FileAt {
                            file: self.input.get_ref(),
                            len: self.len,
                        };
                        if let Ok(crate::zstdraw::Frame::Raw(f)) =
                            crate::zstdraw::frame_at(&src, self.at, self.path)
                        {
                            // `frame_at` read its blocks inside the file's
                            // length: the frame ends there.
                            let skip = i64::try_from(f.end - self.at)
                                .map_err(|_| std::io::Error::other("frame too large"))?;
                            self.input.seek_relative(skip)?;
                            self.at = f.end;
                            return Ok(Out::Raw(f));
                        }
                        self.decoder.reinit()?;
                        self.boundary = false;
                    }
                    let input: &[u8] = if first { &[] } else { self.input.fill_buf()? };
                    first = false;
                    let mut src = InBuffer::around(input);
                    let mut dst = OutBuffer::around(&mut *buf);
                    let hint = self.decoder.run(&mut src, &mut dst)?;
                    if hint == 0 {
                        self.boundary = true;
                    }
                    let (read, written) = (src.pos(), dst.pos());
                    self.input.consume(read);
                    self.at += read as u64;
                    if written > 0 {
                        return Ok(Out::Bytes(written));
                    }
                }
                ZstState::PastEof => {
                    let mut dst = OutBuffer::around(&mut *buf);
                    if self.decoder.finish(&mut dst, self.boundary)? == 0 {
                        self.state = ZstState::Finished;
                    }
                    return Ok(Out::Bytes(dst.pos()));
                }
                ZstState::Finished => return Ok(Out::Bytes(0)),
            }
        }
    }
}

/// A reader fed by a thread that reads `inner` ahead, at most
/// `AHEAD_DEPTH` chunks of `AHEAD_CHUNK` bytes (the chunks are recycled, so
/// memory stays bounded and nothing is zeroed twice). An error of the inner
/// reader arrives in order, after the bytes before it. Dropping the reader
/// stops the thread at its next chunk.
///
/// Fed by [`ZstFrames`], a frame of raw blocks arrives as a
/// [`Piece::Raw`]: read by position from `file` (a duplicate of the handle
/// the thread reads) when the walk reads it, skipped for free when the walk
/// seeks past it, and mapped to file offsets by [`ReadAhead::place`].
struct ReadAhead {
    full: std::sync::mpsc::Receiver<std::io::Result<Piece>>,
    empty: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Piece,
    pos: u64,
    /// Pieces taken from the thread by `place` but not reached yet.
    ahead: std::collections::VecDeque<std::io::Result<Piece>>,
    done: bool,
    /// Position in the stream (bytes read or skipped).
    total: u64,
    file: Option<std::fs::File>,
}

const AHEAD_DEPTH: usize = 2;

/// How many pieces `place` looks ahead for an entry at most: an entry that
/// spans more frames than this streams through the walk.
const PLACE_AHEAD: usize = 8;

impl ReadAhead {
    #[cfg(test)]
    fn start<'scope, R: Read + Send + 'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        inner: R,
    ) -> Self {
        Self::start_with(scope, Plain(inner), None)
    }

    fn start_with<'scope, P: Produce + 'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        inner: P,
        file: Option<std::fs::File>,
    ) -> Self {
        let (full_tx, full) = std::sync::mpsc::sync_channel(AHEAD_DEPTH);
        let (empty, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut inner = inner;
        enum End {
            Full,
            Ended,
            Raw(crate::zstdraw::RawFrame),
            Failed(std::io::Error),
        }
        scope.spawn(move || loop {
            let mut buf = empty_rx
                .try_recv()
                .unwrap_or_else(|_| vec![0u8; AHEAD_CHUNK]);
            buf.resize(AHEAD_CHUNK, 0);
            let mut n = 0;
            let outcome = loop {
                match inner.next(&mut buf[n..]) {
                    Ok(Out::Bytes(0)) => break End::Ended,
                    Ok(Out::Bytes(k)) => {
                        n += k;
                        if n == buf.len() {
                            break End::Full;
                        }
                    }
                    Ok(Out::Raw(f)) => break End::Raw(f),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break End::Failed(e),
                }
            };
            buf.truncate(n);
            if n > 0 && full_tx.send(Ok(Piece::Bytes(buf))).is_err() {
                return;
            }
            match outcome {
                End::Full => {}
                End::Ended => return,
                End::Raw(f) => {
                    if full_tx.send(Ok(Piece::Raw(f))).is_err() {
                        return;
                    }
                }
                End::Failed(e) => {
                    let _ = full_tx.send(Err(e));
                    return;
                }
            }
        });
        ReadAhead {
            full,
            empty,
            cur: Piece::Bytes(Vec::new()),
            pos: 0,
            ahead: std::collections::VecDeque::new(),
            done: false,
            total: 0,
            file,
        }
    }

    fn remaining(&self) -> u64 {
        match &self.cur {
            Piece::Bytes(b) => b.len() as u64 - self.pos,
            Piece::Raw(f) => f.content - self.pos,
        }
    }

    /// Moves to the next piece; `Ok(false)` at the end.
    fn advance(&mut self) -> std::io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let next = match self.ahead.pop_front() {
            Some(p) => p,
            None => match self.full.recv() {
                Ok(p) => p,
                // The thread ended: everything was handed over.
                Err(_) => {
                    self.done = true;
                    return Ok(false);
                }
            },
        };
        match next {
            Ok(p) => {
                if let Piece::Bytes(used) = std::mem::replace(&mut self.cur, p) {
                    let _ = self.empty.send(used);
                }
                self.pos = 0;
                Ok(true)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Where the stream's next `size` bytes lie in the file, when they are
    /// all content of raw-block frames (this one and at most
    /// [`PLACE_AHEAD`] more); `None` otherwise, or when the stream is not at
    /// `offset`. Pieces it looks at stay queued, in order, for the reads.
    fn place(&mut self, offset: u64, size: u64) -> Option<Vec<crate::zstdraw::Extent>> {
        if self.total != offset || self.done || self.file.is_none() {
            return None;
        }
        let mut need = size;
        let mut out = Vec::new();
        let rem = self.remaining();
        if rem > 0 {
            let Piece::Raw(f) = &self.cur else {
                return None;
            };
            let take = rem.min(need);
            out.extend(f.extents(self.pos, take)?);
            need -= take;
        }
        let mut i = 0;
        while need > 0 {
            if i == self.ahead.len() {
                if i == PLACE_AHEAD {
                    return None;
                }
                let p = self.full.recv().ok()?;
                self.ahead.push_back(p);
            }
            let Ok(Piece::Raw(f)) = &self.ahead[i] else {
                return None;
            };
            let take = f.content.min(need);
            out.extend(f.extents(0, take)?);
            need -= take;
            i += 1;
        }
        Some(out)
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.remaining() == 0 {
            if out.is_empty() || !self.advance()? {
                return Ok(0);
            }
        }
        let n = match &self.cur {
            Piece::Bytes(b) => {
                let p = self.pos as usize;
                let n = out.len().min(b.len() - p);
                out[..n].copy_from_slice(&b[p..p + n]);
                n
            }
            Piece::Raw(f) => {
                let (at, run) = f.locate(self.pos).expect("inside the frame");
                let want = (out.len() as u64).min(run) as usize;
                let file = self.file.as_ref().expect("raw pieces come with their file");
                let n = std::os::unix::fs::FileExt::read_at(file, &mut out[..want], at)?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ends inside a stored zstd block it held when the walk began (changed while being read?)",
                    ));
                }
                n
            }
        };
        self.pos += n as u64;
        self.total += n as u64;
        Ok(n)
    }
}

/// The tar walker's view of a [`ReadAhead`] it shares with the walk (which
/// asks it where entries lie between reads): reads, and relative seeks
/// forward that skip a raw frame's content without reading it. A seek past
/// the end fails as the tar crate's own skip by reading does.
struct SharedAhead<'a>(&'a std::cell::RefCell<ReadAhead>);

impl Read for SharedAhead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl std::io::Seek for SharedAhead<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let mut r = self.0.borrow_mut();
        let SeekFrom::Current(n) = pos else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a tar.zst is read forward only",
            ));
        };
        let mut n = u64::try_from(n).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a tar.zst is read forward only",
            )
        })?;
        loop {
            let take = r.remaining().min(n);
            r.pos += take;
            r.total += take;
            n -= take;
            if n == 0 {
                return Ok(r.total);
            }
            if !r.advance()? {
                return Err(std::io::Error::other("unexpected EOF during skip"));
            }
        }
    }
}

/// A buffered reader whose relative seeks stay inside its buffer when they
/// can. The tar walker skips each payload entry it does not read with a
/// relative seek; `BufReader::seek` would drop its whole 1 MiB buffer and
/// read it again every time (10,000 small files: 10 GB copied).
struct SeekInBuffer<R>(std::io::BufReader<R>);

impl<R: Read> Read for SeekInBuffer<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + std::io::Seek> std::io::Seek for SeekInBuffer<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        match pos {
            std::io::SeekFrom::Current(n) => {
                self.0.seek_relative(n)?;
                self.0.stream_position()
            }
            other => self.0.seek(other),
        }
    }
}

/// Wraps a tar entry so the walker knows whether an error came from reading
/// the archive (truncation, corruption) rather than from the visitor's side.
struct Guarded<'a, R: Read> {
    inner: &'a mut R,
    failed: bool,
}

impl<R: Read> Read for Guarded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

/// How the walk finds where a payload entry's bytes lie in the file.
#[derive(Clone, Copy)]
enum Placing<'a> {
    /// A plain tar: at the entry's position.
    Plain(&'a std::fs::File),
    /// A tar.zst: where its raw-block frames hold it, if they do.
    Zst {
        file: &'a std::fs::File,
        ahead: &'a std::cell::RefCell<ReadAhead>,
    },
}

fn walk_entries<R: Read>(
    entries: tar::Entries<'_, R>,
    placing: Placing<'_>,
    file: &Path,
    volume: bool,
    pass: Pass<'_>,
    report: &mut Report,
    visit: &mut dyn FnMut(&mut Report, Item) -> Result<Flow>,
) -> Result<()> {
    let Pass { heads, mut marks } = pass;
    let origin = file.display().to_string();
    let mut seen = SeenNames::default();
    let mut admitted = TagSet::default();
    let mut payload_began = false;
    let mut additions_began = false;
    let mut last = String::from("(start of the tar)");
    let mut first = true;
    for member in Members::new(entries) {
        let Member { mut entry, meta } = match member {
            Ok(m) => m,
            Err(stop) => {
                let (subject, problem) = match stop {
                    Stop::TooLarge { what, name, size } => (
                        if name.is_empty() { origin.clone() } else { name },
                        format!(
                            "{what} after {last} declares {size} bytes of data; airlock reads at most {MAX_TAR_META} (the tars it writes carry at most 4096): the tar is damaged or hostile, refusing the bundle; get it again from its source"
                        ),
                    ),
                    Stop::Corrupt(e) | Stop::Unreadable { error: e, .. } => (
                        origin.clone(),
                        format!("truncated or corrupt tar after {last}: {e}"),
                    ),
                    Stop::Short { what, size, got } => (
                        origin.clone(),
                        format!("truncated tar after {last}: {what} of {size} bytes has {got}"),
                    ),
                    Stop::Twice(e) => (origin.clone(), format!("corrupt tar after {last}: {e}")),
                    Stop::Dangling(what) => (
                        origin.clone(),
                        format!("truncated or corrupt tar after {last}: a {what} describes a member that is not there"),
                    ),
                };
                report.add(subject, problem);
                return Ok(());
            }
        };
        let kind = entry.header().entry_type();
        let at_start = std::mem::replace(&mut first, false);
        let raw_path = meta.path_bytes(&entry);
        let path = match tar_entry_path(&raw_path) {
            Ok(p) => p,
            Err(e) => {
                report.add(String::from_utf8_lossy(&raw_path).into_owned(), e);
                continue;
            }
        };
        last = path.clone();
        // Pax extended headers: a plain tar from pack has exactly one, its
        // padding in front of bagit.txt (see `tarball::is_head_pad`); any
        // other (a name, size or owner of another entry, ...) is refused.
        let header_pos = entry.raw_header_position();
        if let Some(pax) = meta.pax() {
            let records: Option<Vec<(&[u8], &[u8])>> = tar::PaxExtensions::new(pax)
                .map(|r| r.ok().map(|r| (r.key_bytes(), r.value_bytes())))
                .collect();
            let pad = at_start
                && path == crate::bundle::BAGIT_TXT
                && records
                    .as_deref()
                    .is_some_and(|r| crate::tarball::is_head_pad(r, header_pos));
            if !pad {
                report.add(
                    &path,
                    "pax extended header in the tar; airlock writes one only to pad the start of a tar, a comment in front of bagit.txt",
                );
                // After a pax size the walk (which goes by the header's
                // size) cannot tell what other tools would see next.
                if meta.pax_size() {
                    return Ok(());
                }
                continue;
            }
        }
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            let what = match kind {
                tar::EntryType::Symlink => "symbolic link",
                tar::EntryType::Link => "hard link",
                tar::EntryType::Char | tar::EntryType::Block => "device",
                tar::EntryType::Fifo => "FIFO",
                _ => "non-regular entry",
            };
            report.add(
                &path,
                format!("{what} in the tar; a bundle holds regular files only"),
            );
            continue;
        }
        if !seen.insert_marked(&path, marks.as_deref_mut()) {
            report.add(&path, "appears twice in the tar");
            continue;
        }
        let size = entry.size();
        let place = match place_of(&path) {
            Place::Volume if !volume => Place::Unexpected,
            p => p,
        };
        match place {
            Place::Unexpected => {
                report.add(&path, UNEXPECTED);
                continue;
            }
            Place::Payload => {
                if additions_began {
                    report.add(
                        &path,
                        "payload entry after signatures or custody events added since pack; the payload ends before any addition",
                    );
                    continue;
                }
                payload_began = true;
                let at = match placing {
                    Placing::Plain(file) => Some(Placed {
                        file,
                        layout: Layout::At(entry.raw_file_position()),
                    }),
                    // Only an entry pack may have stored as raw blocks.
                    Placing::Zst { file, ahead } if size >= crate::tarball::STREAM_MIN => ahead
                        .borrow_mut()
                        .place(entry.raw_file_position(), size)
                        .map(|extents| Placed {
                            file,
                            layout: Layout::Blocks(extents),
                        }),
                    Placing::Zst { .. } => None,
                };
                let mut guarded = Guarded {
                    inner: &mut entry,
                    failed: false,
                };
                let flow = visit(
                    report,
                    Item::Payload {
                        path: path.clone(),
                        size,
                        read: &mut guarded,
                        at,
                    },
                );
                match flow {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => return Ok(()),
                    Err(Error::Io(e)) if guarded.failed => {
                        report.add(&path, format!("truncated or corrupt tar: {e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            place => {
                // After the payload, only signatures and custody events added
                // since pack may follow (`additions`); nothing else.
                let addition = matches!(place, Place::Signature | Place::Custody);
                if payload_began && !addition {
                    report.add(
                        &path,
                        format!("{} after the payload began; airlock writes every tag file before the payload, so this was added later", place.what()),
                    );
                    continue;
                }
                if payload_began {
                    additions_began = true;
                }
                if let Err(e) = admitted.admit(place, size) {
                    report.add(&path, e);
                    return Ok(());
                }
                let large = place == Place::Tag
                    && Spilled::NAMES.contains(&path.as_str())
                    && size > Spilled::AT as u64;
                if let Some(file) = (large && heads == Heads::Spill)
                    .then(Spilled::file)
                    .flatten()
                {
                    let spilled = match Spilled::fill(file, &mut entry, size) {
                        Ok(s) => s,
                        Err(SpillError::Read(e)) => {
                            report.add(&path, format!("truncated or corrupt tar: {e}"));
                            return Ok(());
                        }
                        Err(SpillError::Write(e)) => return Err(e.into()),
                    };
                    if spilled.len != size {
                        let what = format!("truncated tar: {} of {size} bytes", spilled.len);
                        report.add(&path, what);
                        return Ok(());
                    }
                    if visit(report, Item::HeadSpilled { path, spilled })? == Flow::Stop {
                        return Ok(());
                    }
                    continue;
                }
                if large && heads == Heads::Hash {
                    // Hashed as it passes, not held: the walk only
                    // compares it with what was read before.
                    let h = match crate::digest::copy_hashed(
                        &mut (&mut entry).take(size),
                        &mut std::io::sink(),
                        None,
                        &|_| {},
                    ) {
                        Ok(h) => h,
                        Err(e) => {
                            report.add(&path, format!("truncated or corrupt tar: {e}"));
                            return Ok(());
                        }
                    };
                    if h.size != size {
                        let what = format!("truncated tar: {} of {size} bytes", h.size);
                        report.add(&path, what);
                        return Ok(());
                    }
                    let item = Item::HeadHashed {
                        path,
                        size,
                        digest: h.digest,
                    };
                    if visit(report, item)? == Flow::Stop {
                        return Ok(());
                    }
                    continue;
                }
                let mut bytes = Vec::with_capacity(size.min(1 << 20) as usize);
                if let Err(e) = (&mut entry).take(size).read_to_end(&mut bytes) {
                    report.add(&path, format!("truncated or corrupt tar: {e}"));
                    return Ok(());
                }
                if bytes.len() as u64 != size {
                    let what = format!("truncated tar: {} of {size} bytes", bytes.len());
                    report.add(&path, what);
                    return Ok(());
                }
                if visit(report, Item::Head { path, bytes })? == Flow::Stop {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The names a tar walk has met, for its check of a name seen twice. A
/// bundle of many files has an entry per file, nearly all named by their
/// digest (`data/blobs/sha256/<hex>`): those are held as the digest (32
/// bytes, not an 82-byte string), any other name as itself. The digests
/// are kept in a sorted Vec (32 bytes each, grown in place) beside a small
/// set of the latest ones merged into it now and then, rather than in one
/// hash set (about 45 bytes each, and at a resize the old and new tables
/// together: 13 MB at 200k names).
#[derive(Default)]
struct SeenNames {
    blobs: SeenDigests,
    other: HashSet<String>,
}

/// A set of digests: `sorted` and `recent` never share one.
#[derive(Default)]
struct SeenDigests {
    sorted: Vec<Sha256Digest>,
    recent: HashSet<Sha256Digest>,
}

impl SeenDigests {
    /// Whether `d` is new (then it is added).
    fn insert(&mut self, d: Sha256Digest) -> bool {
        if self.sorted.binary_search(&d).is_ok() || !self.recent.insert(d) {
            return false;
        }
        // Merged when the recent set is an eighth of the sorted part (at
        // least 4096): each digest is moved a few times in all.
        if self.recent.len() >= (self.sorted.len() / 8).max(4096) {
            self.merge();
        }
        true
    }

    /// Moves `recent` into `sorted`, merging from the back in place.
    fn merge(&mut self) {
        let mut add: Vec<Sha256Digest> = self.recent.drain().collect();
        add.sort_unstable();
        let old = self.sorted.len();
        // Grown to fit, not doubled: at 200k names doubling left 62k
        // digests' room (2 MB) unused at the peak. Past glibc's mmap
        // threshold a grown block is remapped, not copied.
        self.sorted.reserve_exact(add.len());
        self.sorted.extend_from_slice(&add);
        let (mut i, mut j, mut k) = (old, add.len(), self.sorted.len());
        while j > 0 {
            k -= 1;
            if i > 0 && self.sorted[i - 1] > add[j - 1] {
                i -= 1;
                self.sorted[k] = self.sorted[i];
            } else {
                j -= 1;
                self.sorted[k] = add[j];
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }
}

impl SeenNames {
    /// Whether `path` is met for the first time.
    #[cfg(test)]
    fn insert(&mut self, path: &str) -> bool {
        self.insert_marked(path, None)
    }

    /// `insert`, asking `marks` first about a blob's name (see [`Marks`]).
    fn insert_marked<'m>(&mut self, path: &str, marks: Option<&mut (dyn Marks + 'm)>) -> bool {
        match path.strip_prefix(BLOBS_PREFIX).filter(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }) {
            // Lowercase hex spells each digest one way: one name, one digest.
            Some(hex) => match hex.parse::<Sha256Digest>() {
                Ok(d) => match marks.and_then(|m| m.mark(&d)) {
                    Some(first) => first,
                    None => self.blobs.insert(d),
                },
                Err(_) => self.other.insert(path.to_string()),
            },
            None => self.other.insert(path.to_string()),
        }
    }
}

pub use crate::rawtar::MAX_TAR_META;

/// Reads every non-payload entry of a tar bundle or volume: the tag files
/// before the payload (a volume's map and marker too) and the signatures and
/// custody events added since pack (`additions`). A plain tar is scanned to
/// its end by seeking past payload entries; a tar.zst is read up to its
/// payload, and its additions frames are found from the end of the file.
/// Nothing of the payload is read.
pub fn read_tar_tags(path: &Path, volume: bool) -> Result<TagSet> {
    read_tar_tags_into(path, volume, TagSet::default())
}

/// `read_tar_tags` into `tags` (a `TagSet::spilling` one for verify, whose
/// large description and payload manifest are spilled as they are read).
fn read_tar_tags_into(path: &Path, volume: bool, mut tags: TagSet) -> Result<TagSet> {
    let zstd = is_zstd(path)?;
    let mut report = Report::default();
    let spill = tags.spill_large && !volume;
    let mut visit = |_: &mut Report, item: Item| match item {
        Item::Head { path, bytes } => {
            tags.admit_unchecked(&path, bytes);
            Ok(Flow::Continue)
        }
        Item::HeadSpilled { path, spilled } => {
            tags.count += 1;
            tags.bytes += spilled.len;
            tags.take_spilled(&path, spilled);
            Ok(Flow::Continue)
        }
        // Only `walk_tar_hashing_heads` hands these over.
        Item::HeadHashed { .. } => Ok(Flow::Continue),
        Item::Payload { .. } if zstd => Ok(Flow::Stop),
        Item::Payload { .. } => Ok(Flow::Continue),
    };
    if spill {
        walk_tar_spilling_heads(path, &mut report, &mut visit)?;
    } else {
        walk_tar(path, volume, &mut report, &mut visit)?;
    }
    if zstd {
        read_zstd_frames(path, &mut tags, &mut report)?;
    }
    tags.report.merge(report);
    Ok(tags)
}

impl TagSet {
    /// Takes an entry the walker already admitted, keeping the running totals
    /// so additions beside the file count against the same bounds.
    fn admit_unchecked(&mut self, path: &str, bytes: Vec<u8>) {
        self.count += 1;
        self.bytes += bytes.len() as u64;
        self.take(path, bytes);
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

/// Reads the tag files of any form (for a tar: every entry but the payload;
/// for volumes: the lowest-numbered volume's, with the additions every volume
/// file carries), with the additions beside a bundle file.
pub fn read_tags(form: &Form) -> Result<TagSet> {
    let mut tags = match form {
        Form::Dir(dir) => return TagSet::read_dir(dir),
        Form::Volumes { files } => volume_head_tags(files)?,
        Form::Tar { path, .. } => read_tar_tags(path, false)?,
    };
    tags.merge_additions(form)?;
    Ok(tags)
}

/// `read_tags`, the description and payload manifest spilled as they are
/// read (`TagSet::spilling`; volumes as `read_tags`): what verify reads.
pub fn read_tags_spilling(form: &Form) -> Result<TagSet> {
    let mut tags = match form {
        Form::Dir(dir) => {
            let mut tags = TagSet::spilling();
            walk_dir(dir, &mut tags)?;
            return Ok(tags);
        }
        Form::Volumes { .. } => return read_tags(form),
        Form::Tar { path, .. } => read_tar_tags_into(path, false, TagSet::spilling())?,
    };
    tags.merge_additions(form)?;
    Ok(tags)
}

/// One volume's head: its tag files, map and marker.
pub struct VolumeHead {
    pub file: PathBuf,
    pub tags: TagSet,
    pub map: Option<Vec<u8>>,
    pub marker: Option<VolumeMarker>,
    pub problems: Report,
}

/// Reads one volume's head through the one reader: its tag files, map and
/// marker (every rule of `source::walk_tar` applies: duplicates, unsafe names,
/// bounds, order).
pub fn read_volume_head(path: &Path) -> Result<VolumeHead> {
    let name = path.display().to_string();
    let mut tags = read_tar_tags(path, true)?;
    let mut problems = Report::default();
    let map = tags.volume.remove(VOLUME_MAP);
    let marker = match tags.volume.remove(VOLUME_MARKER) {
        Some(bytes) => match serde_json::from_slice(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                problems.add(
                    format!("{name}: {VOLUME_MARKER}"),
                    format!("unreadable: {e}"),
                );
                None
            }
        },
        None => None,
    };
    // Findings name the volume they were met in.
    for f in std::mem::take(&mut tags.report).findings {
        problems.add(format!("{name}: {}", f.subject), f.problem);
    }
    Ok(VolumeHead {
        file: path.to_path_buf(),
        tags,
        map,
        marker,
        problems,
    })
}

/// The tag files of the lowest-numbered volume given (additions not merged).
pub fn volume_head_tags(files: &[PathBuf]) -> Result<TagSet> {
    let mut heads = files
        .iter()
        .map(|f| read_volume_head(f))
        .collect::<Result<Vec<_>>>()?;
    heads.sort_by_key(|h| h.marker.as_ref().map_or(u32::MAX, |m| m.number));
    let mut heads = heads.into_iter();
    let mut head = heads
        .next()
        .ok_or_else(|| Error::Usage("no volumes given".into()))?;
    head.tags.report.merge(head.problems);
    // Signatures and custody events added since pack are in every volume file.
    for other in heads {
        let origin = other.file.display().to_string();
        merge_additions_of(&mut head.tags, other.tags, &origin);
    }
    Ok(head.tags)
}

// ---------------------------------------------------------------- additions carried in the file
// (written by `additions`; read here)

/// The skippable-frame magic airlock uses (0x184D2A50..5F are skippable).
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5A;
/// The last 8 bytes of a tar.zst that carries additions.
pub const TRAILER_MAGIC: &[u8; 8] = b"AIRLOCK+";
/// The frame length and the magic that end an additions frame.
pub const TRAILER: u64 = 16;

/// Reads the additions frames at the end of a tar.zst, newest last, into
/// `tags` (bounded like every tag entry). Problems are findings in `report`.
pub fn read_zstd_frames(path: &Path, tags: &mut TagSet, report: &mut Report) -> Result<()> {
    let mut f = fs_err::File::open(path)?;
    let mut end = f.metadata()?.len();
    let mut frames = Vec::new();
    let name = path.display().to_string();
    while end >= TRAILER + 8 {
        let mut trailer = [0u8; 16];
        f.seek(SeekFrom::Start(end - TRAILER))?;
        f.read_exact(&mut trailer)?;
        if &trailer[8..] != TRAILER_MAGIC {
            break;
        }
        let total = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
        if total < 8 + TRAILER || total > end || total > MAX_TAG_TOTAL {
            report.add(&name, "damaged additions frame at the end of the file");
            return Ok(());
        }
        let start = end - total;
        let mut head = [0u8; 8];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut head)?;
        let magic = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let size = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as u64;
        if magic != SKIPPABLE_MAGIC || size + 8 != total {
            report.add(&name, "damaged additions frame at the end of the file");
            return Ok(());
        }
        frames.push((start + 8, size - TRAILER));
        end = start;
    }
    frames.reverse();
    for (at, len) in frames {
        f.seek(SeekFrom::Start(at))?;
        let mut tar_bytes = Vec::with_capacity(len as usize);
        (&mut f).take(len).read_to_end(&mut tar_bytes)?;
        read_fragment(&tar_bytes, &name, tags, report);
    }
    Ok(())
}

/// Reads a tar of additions: signatures and custody events only.
fn read_fragment(bytes: &[u8], origin: &str, tags: &mut TagSet, report: &mut Report) {
    let mut archive = tar::Archive::new(bytes);
    // Raw, as in `walk_entries`: metadata entries are bounded there.
    let Ok(entries) = archive.entries() else {
        return report.add(origin, "unreadable additions frame");
    };
    for member in Members::new(entries) {
        let Member { mut entry, meta } = match member {
            Ok(m) => m,
            Err(Stop::TooLarge { what, size, .. }) => {
                return report.add(
                    origin,
                    format!("additions frame: {what} declares {size} bytes of data; airlock reads at most {MAX_TAR_META}"),
                )
            }
            Err(Stop::Unreadable { .. } | Stop::Short { .. }) => {
                return report.add(origin, "truncated additions frame")
            }
            Err(Stop::Corrupt(e)) => {
                return report.add(origin, format!("corrupt additions frame: {e}"))
            }
            Err(Stop::Twice(e)) => {
                return report.add(origin, format!("corrupt additions frame: {e}"))
            }
            Err(Stop::Dangling(what)) => {
                return report.add(
                    origin,
                    format!("corrupt additions frame: a {what} describes a member that is not there"),
                )
            }
        };
        if meta.pax_size() {
            return report.add(
                origin,
                "corrupt additions frame: a pax size record; airlock never writes one",
            );
        }
        let raw_path = meta.path_bytes(&entry);
        let path = match tar_entry_path(&raw_path) {
            Ok(p) => p,
            Err(e) => {
                report.add(String::from_utf8_lossy(&raw_path).into_owned(), e);
                continue;
            }
        };
        let place = place_of(&path);
        if !entry.header().entry_type().is_file()
            || !matches!(place, Place::Signature | Place::Custody)
        {
            report.add(
                &path,
                "not a signature or custody event; only those can be added to a bundle",
            );
            continue;
        }
        if let Err(e) = tags.admit(place, entry.size()) {
            return report.add(&path, e);
        }
        let size = entry.size();
        let mut data = Vec::new();
        if (&mut entry).take(size).read_to_end(&mut data).is_err() || data.len() as u64 != size {
            return report.add(&path, "truncated additions frame");
        }
        tags.take(&path, data);
    }
}

/// Merges additions found in another volume file into `tags`: the same name
/// must carry the same bytes.
pub fn merge_additions_of(tags: &mut TagSet, other: TagSet, origin: &str) {
    for (path, bytes) in other.signatures.into_iter().chain(other.custody) {
        let slot = if path.starts_with(crate::bundle::SIGNATURES_DIR) {
            &mut tags.signatures
        } else {
            &mut tags.custody
        };
        match slot.get(&path) {
            Some(b) if *b != bytes => tags.report.add(
                format!("{origin}: {path}"),
                "differs from the same file in another volume",
            ),
            Some(_) => {}
            None => {
                slot.insert(path, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BAG_INFO, VERIFY_TXT};
    use crate::rawtar::test_member as member;

    /// A spilling set moves a large description or payload manifest out
    /// of memory as it is read, and answers for it by length and sha256;
    /// small ones, other tag files and a plain set keep their bytes.
    #[test]
    fn spilling_sets_aside_large_description_and_manifest() {
        let big = vec![b'x'; Spilled::AT + 1];
        let mut t = TagSet::spilling();
        t.take(DESCRIPTION, big.clone());
        t.take(MANIFEST, b"small".to_vec());
        t.take(BAG_INFO, big.clone());
        assert!(!t.files.contains_key(DESCRIPTION));
        assert_eq!(t.spilled[DESCRIPTION].len, big.len() as u64);
        assert_eq!(t.spilled[DESCRIPTION].bytes().unwrap(), big);
        assert!(t.files.contains_key(MANIFEST) && t.files.contains_key(BAG_INFO));
        assert!(t.file_is(DESCRIPTION, Some(&big)));
        assert!(t.same(DESCRIPTION, &big));
        let mut other = big.clone();
        other[7] = b'y';
        assert!(!t.file_is(DESCRIPTION, Some(&other)));
        assert!(!t.file_is(DESCRIPTION, None));
        assert!(!t.same(DESCRIPTION, &big[1..]));
        assert!(t.file_is(MANIFEST, Some(b"small")) && !t.file_is(MANIFEST, Some(b"other")));
        assert!(t.file_is(VERIFY_TXT, None) && !t.file_is(VERIFY_TXT, Some(b"")));
        // A second copy is reported, as with bytes in memory.
        t.take(DESCRIPTION, big.clone());
        assert!(!t.report.is_ok());
        let files = t.clone().into_files().unwrap();
        assert!(files.contains(&(DESCRIPTION.to_string(), big.clone())));
        assert_eq!(files.len(), 3);
        // `spill` moves only the two named files, and only when large.
        let mut plain = TagSet::default();
        plain.take(DESCRIPTION, big.clone());
        plain.take(BAG_INFO, big.clone());
        plain.take(MANIFEST, b"small".to_vec());
        assert!(plain.spilled.is_empty());
        for name in [DESCRIPTION, BAG_INFO, MANIFEST] {
            plain.spill(name);
        }
        assert_eq!(plain.spilled.keys().collect::<Vec<_>>(), [DESCRIPTION]);
        assert!(plain.files.contains_key(BAG_INFO) && plain.files.contains_key(MANIFEST));
    }

    /// A large description and payload manifest go straight from the
    /// bundle (directory or tar) into their spill files as they are read,
    /// hashed on the way, with the bytes and digest a whole read gives.
    #[test]
    fn large_tag_files_are_streamed_into_their_spill_files_as_read() {
        let big: Vec<u8> = (0..Spilled::AT + 12345).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b");
        fs_err::create_dir_all(&bundle).unwrap();
        fs_err::write(bundle.join(DESCRIPTION), &big).unwrap();
        fs_err::write(bundle.join(MANIFEST), &big[..100]).unwrap();
        let tar = dir.path().join("b.tar");
        let mut b = tar::Builder::new(fs_err::File::create(&tar).unwrap());
        for name in [DESCRIPTION, MANIFEST] {
            b.append_path_with_name(bundle.join(name), name).unwrap();
        }
        b.into_inner().unwrap();
        let mut from_dir = TagSet::spilling();
        walk_dir(&bundle, &mut from_dir).unwrap();
        let from_tar = read_tar_tags_into(&tar, false, TagSet::spilling()).unwrap();
        for t in [&from_dir, &from_tar] {
            assert!(t.report.is_ok(), "{:?}", t.report);
            assert!(!t.files.contains_key(DESCRIPTION));
            let s = &t.spilled[DESCRIPTION];
            assert_eq!(
                (s.len, s.digest),
                (big.len() as u64, Sha256Digest::of(&big))
            );
            assert_eq!(s.bytes().unwrap(), big);
            // Small: read into memory as before.
            assert_eq!(t.files[MANIFEST], big[..100]);
            assert_eq!((t.count, t.bytes), (2, big.len() as u64 + 100));
        }
        // A plain set reads it whole, as before.
        let plain = read_tar_tags(&tar, false).unwrap();
        assert!(plain.spilled.is_empty());
        assert_eq!(plain.files[DESCRIPTION], big);
    }

    /// A spill file altered after it was written (in place, or cut short)
    /// is refused when it is read back, never parsed as if it were what was
    /// hashed.
    #[test]
    fn a_spill_file_altered_after_it_was_written_is_refused() {
        let big: Vec<u8> = (0..Spilled::AT + 7).map(|i| (i % 13) as u8).collect();
        let fill = || Spilled::fill(Spilled::file().unwrap(), &mut &big[..], big.len() as u64);
        let s = fill().unwrap();
        assert_eq!(s.digest, Sha256Digest::of(&big));
        assert_eq!(s.bytes().unwrap(), big);
        // Read back twice: each reader starts from the start.
        assert_eq!(s.bytes().unwrap(), big);
        s.overwrite_for_test(1000, b"\xff");
        let e = s.bytes().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("changed"), "{e}");
        let mut out = Vec::new();
        assert!(s.reader().unwrap().read_to_end(&mut out).is_err());
        let s = fill().unwrap();
        s.file.set_len(100).unwrap();
        assert!(s.bytes().is_err());
        // A source that ends early gives a shorter spill, never a padded one.
        let short = Spilled::fill(Spilled::file().unwrap(), &mut &big[..10], 50).unwrap();
        assert_eq!(
            (short.len, short.bytes().unwrap()),
            (10, big[..10].to_vec())
        );
    }

    /// A name seen twice is found whether it spells a blob's digest or not;
    /// a digest's name and another spelling of it are different names.
    #[test]
    fn seen_names_find_every_second_sighting() {
        let hex = "ab".repeat(32);
        let blob = format!("{BLOBS_PREFIX}{hex}");
        let upper = format!("{BLOBS_PREFIX}{}", hex.to_uppercase());
        let mut seen = SeenNames::default();
        for name in [
            blob.as_str(),
            upper.as_str(),
            "data/index.json",
            "data/blobs/sha256/ab",
        ] {
            assert!(seen.insert(name), "{name}");
        }
        for name in [
            blob.as_str(),
            upper.as_str(),
            "data/index.json",
            "data/blobs/sha256/ab",
        ] {
            assert!(!seen.insert(name), "{name}");
        }
        assert_eq!((seen.blobs.len(), seen.other.len()), (1, 3));
    }

    /// A blob the caller's marks know is ruled on by them and not held in
    /// the walk's set; any other name is held and ruled on as before.
    #[test]
    fn marked_blobs_are_not_held_by_the_walk() {
        struct Known(Vec<(Sha256Digest, bool)>);
        impl Marks for Known {
            fn mark(&mut self, d: &Sha256Digest) -> Option<bool> {
                let (_, met) = self.0.iter_mut().find(|(k, _)| k == d)?;
                Some(!std::mem::replace(met, true))
            }
        }
        let (a, b) = (Sha256Digest::of(b"a"), Sha256Digest::of(b"b"));
        let mut marks = Known(vec![(a, false)]);
        let mut seen = SeenNames::default();
        let name = |d: &Sha256Digest| format!("{BLOBS_PREFIX}{}", d.hex());
        for (path, first) in [
            (name(&a), true),
            (name(&b), true),
            ("data/index.json".to_string(), true),
            (name(&a), false),
            (name(&b), false),
            ("data/index.json".to_string(), false),
        ] {
            assert_eq!(seen.insert_marked(&path, Some(&mut marks)), first, "{path}");
        }
        assert_eq!((seen.blobs.len(), seen.other.len()), (1, 1));
        assert!(marks.0[0].1);
    }

    /// `SeenDigests` answers as a hash set does, across its merges (in
    /// any order of arrival, a digest met again before or after one).
    #[test]
    fn seen_digests_answer_as_a_set_across_merges() {
        let d = |i: u32| Sha256Digest::of(&i.to_le_bytes());
        let mut seen = SeenDigests::default();
        let mut set = HashSet::new();
        // 30000 names: several merges; every third one met twice, some
        // soon after, some long after their first sighting.
        for i in 0..30_000u32 {
            for x in [i, i / 3, (i * 7919) % 30_000] {
                assert_eq!(seen.insert(d(x)), set.insert(d(x)), "{x} at {i}");
            }
        }
        assert_eq!(seen.len(), set.len());
        assert!(seen.sorted.windows(2).all(|w| w[0] < w[1]));
        assert!(seen
            .recent
            .iter()
            .all(|r| seen.sorted.binary_search(r).is_err()));
        let mut all = seen.sorted.clone();
        all.extend(seen.recent.iter().copied());
        all.sort_unstable();
        let mut want: Vec<Sha256Digest> = set.into_iter().collect();
        want.sort_unstable();
        assert_eq!(all, want);
    }

    /// `walk_dir` visits a directory bundle in walkdir's order sorted by
    /// name (depth first, a directory before its contents, names by their
    /// bytes whether or not they spell a digest), and reports what walkdir's
    /// walk reported.
    #[test]
    fn walk_dir_orders_entries_as_walkdir_sorted_by_name() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let hex = |i: u8| Sha256Digest::of(&[i]).hex();
        let blobs = dir.join("data/blobs/sha256");
        fs_err::create_dir_all(&blobs).unwrap();
        let mut names: Vec<String> = (0..40).map(hex).collect();
        names.extend([
            "0".into(),
            "zz".into(),
            "Z".into(),
            hex(1).to_uppercase(),
            hex(2)[..63].to_string(),
            format!("{}0", hex(3)),
            "g".repeat(64),
        ]);
        for n in &names {
            fs_err::write(blobs.join(n), n.as_bytes()).unwrap();
        }
        fs_err::create_dir_all(blobs.join(format!("{}x", hex(5)))).unwrap();
        fs_err::write(blobs.join(format!("{}x/inner", hex(5))), b"i").unwrap();
        fs_err::create_dir_all(dir.join("data/blobs/other")).unwrap();
        fs_err::write(dir.join("data/index.json"), b"{}").unwrap();
        fs_err::write(dir.join("data/oci-layout"), b"{}").unwrap();
        fs_err::create_dir_all(dir.join("stray/deeper")).unwrap();
        fs_err::write(dir.join("stray/deeper/x"), b"x").unwrap();
        fs_err::write(dir.join("bagit.txt"), crate::bundle::BAGIT_CONTENT).unwrap();
        std::os::unix::fs::symlink("bagit.txt", dir.join("link")).unwrap();

        let mut tags = TagSet::default();
        let payload = walk_dir(dir, &mut tags).unwrap();
        let got: Vec<(String, u64)> = payload
            .iter()
            .map(|p| (p.path().into_owned(), p.size()))
            .collect();
        // Every regular file under data/, in walkdir's sorted order.
        let want: Vec<(String, u64)> = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .min_depth(1)
            .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()))
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                (rel, e.metadata().unwrap().len())
            })
            .filter(|(rel, _)| rel.starts_with("data/"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), names.len() + 3);
        // Blobs named by their digests are held as digests.
        let digests = payload
            .iter()
            .filter(|p| matches!(p, DirPayload::Blob(..)))
            .count();
        assert_eq!(digests, 40);
        let found: Vec<(String, String)> = tags
            .report
            .findings
            .iter()
            .map(|f| (f.subject.clone(), f.problem.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "link".to_string(),
                    "symbolic link or special file; a bundle holds regular files only".to_string()
                ),
                (
                    "stray".to_string(),
                    "unexpected directory in the bundle".to_string()
                ),
                (
                    "stray/deeper".to_string(),
                    "unexpected directory in the bundle".to_string()
                ),
                ("stray/deeper/x".to_string(), UNEXPECTED.to_string()),
            ]
        );
        assert!(tags.files.contains_key(crate::bundle::BAGIT_TXT));

        // A directory that cannot be read fails the walk as walkdir's did.
        let missing = dir.join("none");
        let e = walk_dir(&missing, &mut TagSet::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read bundle") && e.contains("IO error for operation on"),
            "{e}"
        );
    }

    /// `walk_dir_heads` and `walk_dir_payload` together find what one
    /// `walk_dir` finds: the same payload listing, tag files and findings,
    /// with findings inside and outside `data/`, and whatever `data` is.
    #[test]
    fn walk_dir_halves_find_what_walk_dir_finds() {
        let sorted = |r: &Report| {
            let mut f: Vec<(String, String)> = r
                .findings
                .iter()
                .map(|f| (f.subject.clone(), f.problem.clone()))
                .collect();
            f.sort();
            f
        };
        let check = |dir: &Path| {
            let mut whole = TagSet::default();
            let listing = walk_dir(dir, &mut whole).unwrap();
            let mut heads = TagSet::default();
            walk_dir_heads(dir, &mut heads).unwrap();
            let (payload, found) = walk_dir_payload(dir).unwrap();
            let paths = |l: &[DirPayload]| -> Vec<(String, u64)> {
                l.iter()
                    .map(|p| (p.path().into_owned(), p.size()))
                    .collect()
            };
            assert_eq!(paths(&payload), paths(&listing));
            assert_eq!(heads.files, whole.files);
            let mut both = heads.report.clone();
            both.merge(found);
            assert_eq!(sorted(&both), sorted(&whole.report));
            (listing.len(), whole.report.findings.len())
        };
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let blobs = dir.join("data/blobs/sha256");
        fs_err::create_dir_all(&blobs).unwrap();
        for i in 0..20u8 {
            fs_err::write(blobs.join(Sha256Digest::of(&[i]).hex()), [i]).unwrap();
        }
        fs_err::write(dir.join("data/index.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("index.json", dir.join("data/link")).unwrap();
        fs_err::create_dir_all(dir.join("data/deep/er")).unwrap();
        fs_err::write(dir.join("data/deep/er/x"), b"x").unwrap();
        fs_err::write(dir.join("bagit.txt"), crate::bundle::BAGIT_CONTENT).unwrap();
        fs_err::create_dir_all(dir.join("stray")).unwrap();
        fs_err::write(dir.join("stray/y"), b"y").unwrap();
        fs_err::create_dir_all(dir.join(SIGNATURES_DIR)).unwrap();
        fs_err::write(dir.join(SIGNATURES_DIR).join("k.dsse.json"), b"{}").unwrap();
        assert_eq!(check(dir), (22, 3), "findings in data/ and outside it");

        // `data` a link to a directory, a file, or missing.
        fs_err::rename(dir.join("data"), dir.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", dir.join("data")).unwrap();
        assert_eq!(check(dir).0, 0);
        fs_err::remove_file(dir.join("data")).unwrap();
        fs_err::write(dir.join("data"), b"not a directory").unwrap();
        assert_eq!(check(dir).0, 0);
        fs_err::remove_file(dir.join("data")).unwrap();
        assert_eq!(check(dir).0, 0);
        // A bundle path that is not a directory has no entries either way.
        assert_eq!(check(&dir.join("bagit.txt")), (0, 0));
    }

    #[test]
    fn admit_bounds_each_kind_the_count_and_the_total() {
        let mut t = TagSet::default();
        assert!(t.admit(Place::Tag, MAX_TAG_FILE).is_ok());
        assert!(t.admit(Place::Tag, MAX_TAG_FILE + 1).is_err());
        assert!(t.admit(Place::Signature, MAX_EVIDENCE_FILE + 1).is_err());
        assert!(t.admit(Place::Unexpected, 1).is_err());
        let mut t = TagSet::default();
        for _ in 0..MAX_TAG_ENTRIES {
            t.admit(Place::Custody, 1).unwrap();
        }
        assert!(t
            .admit(Place::Custody, 1)
            .unwrap_err()
            .contains("more than"));
        let mut t = TagSet::default();
        t.admit(Place::Tag, MAX_TAG_FILE).unwrap();
        t.admit(Place::Tag, MAX_TAG_FILE).unwrap();
        t.admit(Place::Tag, MAX_TAG_FILE).unwrap();
        assert!(t
            .admit(Place::Tag, 1)
            .unwrap_err()
            .contains("together exceed"));
    }

    #[test]
    fn an_additions_frame_takes_long_names_within_the_bound_only() {
        let sig = "signatures/a-key-id-of-some-length.sig";
        let long = |size: u64, name: &[u8]| {
            let mut t = member(tar::EntryType::GNULongName, "././@LongLink", size, name);
            t.extend(member(tar::EntryType::Regular, "x", 3, b"sig"));
            t.extend([0u8; 1024]);
            t
        };
        let mut name = sig.as_bytes().to_vec();
        name.push(0);
        let (mut tags, mut report) = (TagSet::default(), Report::default());
        read_fragment(&long(name.len() as u64, &name), "f", &mut tags, &mut report);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            tags.signatures.get(sig).map(Vec::as_slice),
            Some(&b"sig"[..])
        );
        // Declaring more than the bound: refused before it is read.
        let (mut tags, mut report) = (TagSet::default(), Report::default());
        read_fragment(&long(8 << 30, &name), "f", &mut tags, &mut report);
        assert!(tags.signatures.is_empty());
        assert!(report.findings[0]
            .problem
            .contains("declares 8589934592 bytes"));
    }

    #[test]
    fn places() {
        assert_eq!(place_of("bagit.txt"), Place::Tag);
        assert_eq!(place_of("signatures/a.dsse.json"), Place::Signature);
        assert_eq!(place_of("signatures/"), Place::Unexpected);
        assert_eq!(place_of("signatures/x/y"), Place::Unexpected);
        assert_eq!(place_of("custody/0001.dsse.json"), Place::Custody);
        assert_eq!(place_of("data/blobs/sha256/ab"), Place::Payload);
        assert_eq!(place_of("data"), Place::Unexpected);
        assert_eq!(place_of("volume.json"), Place::Volume);
        assert_eq!(place_of("evil.sh"), Place::Unexpected);
    }

    #[test]
    fn a_second_entry_with_the_same_name_is_a_finding() {
        let mut t = TagSet::default();
        t.take("bag-info.txt", b"a".to_vec());
        t.take("bag-info.txt", b"b".to_vec());
        assert_eq!(t.files["bag-info.txt"], b"a");
        assert!(!t.report.is_ok());
    }
}

#[cfg(test)]
mod seek_tests {
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn relative_seeks_inside_and_past_the_buffer_land_where_asked() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = super::SeekInBuffer(std::io::BufReader::with_capacity(
            1000,
            std::io::Cursor::new(data.clone()),
        ));
        let mut at = 0u64;
        let mut byte = [0u8; 1];
        // Inside the buffer, past it, backwards, and from the start.
        for step in [10i64, 500, 2500, -300, 0, 6000] {
            at = (at as i64 + step) as u64;
            assert_eq!(r.seek(SeekFrom::Current(step)).unwrap(), at, "{step}");
            r.read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], data[at as usize], "{step}");
            at += 1;
        }
        assert_eq!(r.seek(SeekFrom::Start(3)).unwrap(), 3);
        r.read_exact(&mut byte).unwrap();
        assert_eq!(byte[0], data[3]);
    }
}

#[cfg(test)]
mod read_ahead_tests {
    use super::{ReadAhead, AHEAD_CHUNK};
    use std::io::Read;

    /// Yields `data`, then (if `fail`) an error instead of the end.
    struct Source {
        data: Vec<u8>,
        at: usize,
        fail: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.at == self.data.len() {
                return if self.fail {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "corrupt",
                    ))
                } else {
                    Ok(0)
                };
            }
            // Short reads of odd sizes, as a decoder gives.
            let n = buf.len().min(self.data.len() - self.at).min(70_001);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data() -> Vec<u8> {
        (0..3 * AHEAD_CHUNK + 12_345)
            .map(|i| (i % 253) as u8)
            .collect()
    }

    #[test]
    fn hands_over_every_byte_in_order_then_the_end() {
        let d = data();
        let got = std::thread::scope(|s| {
            let mut r = ReadAhead::start(
                s,
                Source {
                    data: d.clone(),
                    at: 0,
                    fail: false,
                },
            );
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4099];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(r.read(&mut buf).unwrap(), 0, "the end stays the end");
            got
        });
        assert_eq!(got, d);
    }

    #[test]
    fn an_error_arrives_after_the_bytes_before_it() {
        let d = data();
        std::thread::scope(|s| {
            let mut r = ReadAhead::start(
                s,
                Source {
                    data: d.clone(),
                    at: 0,
                    fail: true,
                },
            );
            let mut got = Vec::new();
            let err = r.read_to_end(&mut got).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
            assert_eq!(got, d);
        });
    }

    #[test]
    fn dropping_the_reader_early_stops_the_thread() {
        let d: Vec<u8> = vec![7u8; 64 * AHEAD_CHUNK];
        // The scope returns only once the thread ended: it must notice.
        std::thread::scope(|s| {
            let mut r = ReadAhead::start(
                s,
                Source {
                    data: d,
                    at: 0,
                    fail: false,
                },
            );
            let mut buf = [0u8; 10];
            r.read_exact(&mut buf).unwrap();
        });
    }

    /// Frames of raw blocks (several sizes, empty, single segment), compressed
    /// frames and a skippable frame, in a file.
    fn frames(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
        fn raw(data: &[u8], block: usize) -> Vec<u8> {
            let mut v = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38];
            let chunks: Vec<&[u8]> = if data.is_empty() {
                vec![&[]]
            } else {
                data.chunks(block).collect()
            };
            for (i, c) in chunks.iter().enumerate() {
                let last = u32::from(i + 1 == chunks.len());
                v.extend_from_slice(&((c.len() as u32) << 3 | last).to_le_bytes()[..3]);
                v.extend_from_slice(c);
            }
            v
        }
        let noise = crate::zstdraw::noise(700_000, 0x1234_5678_9ABC_DEF1);
        let text: Vec<u8> = b"some text that compresses ".repeat(40_000);
        let mut z = Vec::new();
        let mut want = Vec::new();
        let mut add = |frame: Vec<u8>, content: &[u8]| {
            z.extend(frame);
            want.extend_from_slice(content);
        };
        add(zstd::encode_all(&text[..1000], 3).unwrap(), &text[..1000]);
        add(raw(&noise[..300_000], 128 << 10), &noise[..300_000]);
        add(raw(&[], 1), &[]);
        let mut skip = 0x184D_2A50u32.to_le_bytes().to_vec();
        skip.extend_from_slice(&5u32.to_le_bytes());
        skip.extend_from_slice(b"hello");
        add(skip, &[]);
        add(raw(&noise[300_000..300_512], 512), &noise[300_000..300_512]);
        add(zstd::encode_all(&text[..], 3).unwrap(), &text);
        add(raw(&noise[300_512..], 1000), &noise[300_512..]);
        let path = dir.join("f.tar.zst");
        std::fs::write(&path, &z).unwrap();
        (path, z, want)
    }

    /// Everything `ReadAhead` over `ZstFrames` hands over, and its error.
    fn through_frames(path: &std::path::Path) -> (Vec<u8>, Option<String>) {
        let file = std::fs::File::open(path).unwrap();
        let reads = file.try_clone().unwrap();
        let frames = super::ZstFrames::new(file, path).unwrap();
        std::thread::scope(|s| {
            let mut r = ReadAhead::start_with(s, frames, Some(reads));
            let mut got = Vec::new();
            let mut buf = vec![0u8; 70_001];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return (got, None),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => return (got, Some(e.to_string())),
                }
            }
        })
    }

    #[test]
    fn raw_frames_read_where_they_lie_give_the_decoder_s_bytes_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (path, z, want) = frames(dir.path());
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), want);
        assert_eq!(through_frames(&path), (want.clone(), None));
        // Cut anywhere, or a byte changed in a header: the same bytes as the
        // decoder's before the same error.
        let mut cases: Vec<Vec<u8>> = [5usize, 7, 1100, 1200, 150_000, 300_000, z.len() - 1]
            .iter()
            .map(|&n| z[..n].to_vec())
            .collect();
        for at in [0usize, 4, 5, 6, 7, 8, 9] {
            for first_raw in [false, true] {
                let mut v = z.clone();
                let base = if first_raw {
                    zstd::encode_all(&want[..1000], 3).unwrap().len()
                } else {
                    0
                };
                v[base + at] ^= 0x0E;
                cases.push(v);
            }
        }
        for v in cases {
            std::fs::write(&path, &v).unwrap();
            let mut dec = zstd::Decoder::new(&v[..]).unwrap();
            let mut got = Vec::new();
            let err = std::io::Read::read_to_end(&mut dec, &mut got)
                .err()
                .map(|e| e.to_string());
            let (ours, our_err) = through_frames(&path);
            assert_eq!(our_err, err, "{} bytes", v.len());
            assert!(
                ours == got,
                "the same bytes before the error ({} bytes)",
                v.len()
            );
        }
    }

    #[test]
    fn place_maps_raw_frames_and_seeks_skip_them_unread() {
        use std::io::Seek;
        let dir = tempfile::tempdir().unwrap();
        let (path, _, want) = frames(dir.path());
        let file = std::fs::File::open(&path).unwrap();
        let reads = file.try_clone().unwrap();
        let frames = super::ZstFrames::new(file, &path).unwrap();
        std::thread::scope(|s| {
            let ahead = std::cell::RefCell::new(ReadAhead::start_with(s, frames, Some(reads)));
            let mut r = super::SharedAhead(&ahead);
            let mut head = vec![0u8; 1000];
            r.read_exact(&mut head).unwrap();
            assert_eq!(head, want[..1000]);
            // Not where the stream is: nothing.
            assert_eq!(ahead.borrow_mut().place(999, 10), None);
            // Across the raw frames (the empty one and the skippable frame
            // between them), up to the compressed frame.
            let ext = ahead.borrow_mut().place(1000, 300_512).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let mut mapped = Vec::new();
            for e in &ext {
                for i in 0..e.count {
                    let at = (e.at + i * e.stride) as usize;
                    mapped.extend_from_slice(&bytes[at..at + e.len as usize]);
                }
            }
            assert!(mapped == want[1000..301_512]);
            // One byte into the compressed frame: not placed.
            assert_eq!(ahead.borrow_mut().place(1000, 300_513), None);
            // Reading on still gives every byte in order.
            let mut some = vec![0u8; 200_000];
            r.read_exact(&mut some).unwrap();
            assert_eq!(some, want[1000..201_000]);
            assert_eq!(
                r.seek(std::io::SeekFrom::Current(100_512)).unwrap(),
                301_512
            );
            let mut next = [0u8; 26];
            r.read_exact(&mut next).unwrap();
            assert_eq!(next[..], want[301_512..301_538]);
            // Past the end: as the tar crate's skip by reading fails.
            let left = (want.len() - 301_538) as i64;
            let e = r.seek(std::io::SeekFrom::Current(left + 1)).unwrap_err();
            assert_eq!(e.to_string(), "unexpected EOF during skip");
        });
    }
}
