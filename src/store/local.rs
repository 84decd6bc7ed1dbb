//! The default backend: a local directory.
//!
//! ```text
//! STORE/lock                         flock'd by writers
//! STORE/oci/{oci-layout,index.json}  an OCI image layout (skopeo reads it)
//! STORE/oci/blobs/sha256/<hex>       blobs of every imported bundle
//! STORE/bundles/<name>/<version>/    a record: record.json + verified tag files
//! STORE/ledger.jsonl                 the hash-chained ledger
//! STORE/ledger.head                  count and hash of the last committed entry
//! STORE/store-id                     the store's random identity (first `store receipt`)
//! STORE/.staging-*                   staging of a running (or killed) import
//! ```

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use super::backend::{BlobStore, Guard, MetaStore, RecordFile};
use crate::bundle::OCI_LAYOUT_CONTENT;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

const STAGING_PREFIX: &str = ".staging-";

pub struct LocalDir {
    root: PathBuf,
}

struct Lock(#[allow(dead_code)] std::fs::File);
impl Guard for Lock {}

impl LocalDir {
    pub fn new(root: &Path) -> Self {
        LocalDir {
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
    fn head_path(&self) -> PathBuf {
        self.root.join("ledger.head")
    }
    fn record_path(&self, name: &str, version: &str) -> PathBuf {
        self.root.join("bundles").join(name).join(version)
    }
    /// Names read from disk or a record are used as path components only
    /// when they are one plain component.
    fn component(s: &str) -> Result<&str> {
        if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
            return Err(Error::Usage(format!(
                "{s:?} cannot name a bundle record (not a single path component)"
            )));
        }
        Ok(s)
    }
}

impl BlobStore for LocalDir {
    fn has(&self, d: &Sha256Digest) -> Result<bool> {
        Ok(self.blob(d).is_file())
    }

    fn put_verified(&self, d: &Sha256Digest, staged: &Path) -> Result<bool> {
        let dest = self.blob(d);
        if dest.is_file() {
            return Ok(false);
        }
        fs_err::rename(staged, &dest)?;
        Ok(true)
    }

    /// Looked up relative to the blob directory, on every core.
    fn held(&self, digests: &[Sha256Digest]) -> Result<std::collections::HashSet<Sha256Digest>> {
        use rayon::prelude::*;
        use rustix::fs::{open, statat, AtFlags, FileType, Mode, OFlags};
        let blobs = self.oci().join("blobs/sha256");
        let dir = match open(
            &blobs,
            OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(rustix::io::Errno::NOENT) => return Ok(Default::default()),
            Err(e) => return Err(io_at(&blobs, e)),
        };
        Ok(digests
            .par_iter()
            .filter(|d| {
                // As `has`: a regular file, links followed.
                statat(&dir, d.hex(), AtFlags::empty())
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
            })
            .copied()
            .collect())
    }

    /// Renames relative to the two directories (one name looked up on each
    /// side, not two whole paths) and with `RENAME_NOREPLACE`, so a blob
    /// already present is found by the rename itself, not by a `stat` first.
    fn put_staged(&self, dir: &Path, digests: &[Sha256Digest]) -> Result<usize> {
        use rustix::fs::{
            open, renameat_with, statat, AtFlags, FileType, Mode, OFlags, RenameFlags,
        };
        use rustix::io::Errno;
        let blobs = self.oci().join("blobs/sha256");
        let opendir = |p: &Path| {
            open(
                p,
                OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_at(p, e))
        };
        let (from, to) = (opendir(dir)?, opendir(&blobs)?);
        let mut new = 0;
        for (i, d) in digests.iter().enumerate() {
            let hex = d.hex();
            match renameat_with(&from, &hex, &to, &hex, RenameFlags::NOREPLACE) {
                Ok(()) => new += 1,
                // Not staged (present before, or left to a delta's base).
                Err(Errno::NOENT) if statat(&from, &hex, AtFlags::SYMLINK_NOFOLLOW).is_err() => {}
                // Present: a regular file is the blob (as `put_verified`).
                Err(Errno::EXIST)
                    if statat(&to, &hex, AtFlags::empty()).is_ok_and(|st| {
                        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    }) => {}
                // A file system without `RENAME_NOREPLACE`: one by one.
                Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {
                    return Ok(new + super::backend::put_staged_each(self, dir, &digests[i..])?);
                }
                Err(Errno::EXIST) => {
                    return Err(Error::Usage(format!(
                        "{}: in the place of a blob, but not a regular file; move it away and import again",
                        blobs.join(&hex).display()
                    )))
                }
                Err(e) => return Err(io_at(&blobs.join(&hex), e)),
            }
        }
        Ok(new)
    }

    fn sync(&self) -> Result<()> {
        sync_dir(&self.oci().join("blobs/sha256"))
    }

    fn open(&self, d: &Sha256Digest) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(fs_err::File::open(self.blob(d))?))
    }

    fn local_file(&self, d: &Sha256Digest) -> Option<PathBuf> {
        Some(self.blob(d))
    }

    fn list(&self) -> Result<Vec<Sha256Digest>> {
        let dir = self.oci().join("blobs/sha256");
        let mut out = Vec::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for e in fs_err::read_dir(&dir)? {
            let e = e?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Sha256Digest>().ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    fn locate(&self, d: &Sha256Digest) -> String {
        self.blob(d).display().to_string()
    }
}

impl MetaStore for LocalDir {
    fn check_exists(&self) -> Result<()> {
        let shown = self.root.display();
        match fs_err::metadata(&self.root) {
            Err(_) => Err(Error::Usage(format!(
                "{shown}: no such store (check --store; a store is created by the first import)"
            ))),
            Ok(m) if !m.is_dir() => Err(Error::Usage(format!(
                "{shown}: is a file, not an airlock store (check --store; a store is a directory)"
            ))),
            Ok(_) if !self.root.join("bundles").is_dir() => Err(Error::Usage(format!(
                "{shown}: not an airlock store (no bundles/ in it; check --store, or import into it first)"
            ))),
            Ok(_) => Ok(()),
        }
    }

    fn create(&self) -> Result<()> {
        if let Ok(m) = std::fs::metadata(&self.root) {
            if !m.is_dir() {
                return Err(Error::Usage(format!(
                    "{}: is a file, not an airlock store (check --store; a store is a directory)",
                    self.root.display()
                )));
            }
        }
        fs_err::create_dir_all(self.oci().join("blobs/sha256"))?;
        fs_err::create_dir_all(self.root.join("bundles"))?;
        if !self.oci().join("oci-layout").exists() {
            write_atomic(
                &self.oci().join("oci-layout"),
                OCI_LAYOUT_CONTENT.as_bytes(),
            )?;
        }
        Ok(())
    }

    fn lock(&self, wait: bool) -> Result<Option<Box<dyn Guard>>> {
        let path = self.root.join("lock");
        let f = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e)
                if !wait
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    ) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(Error::Usage(format!("cannot open {}: {e}", path.display())));
            }
        };
        if wait {
            f.lock().map_err(|e| {
                Error::Usage(format!("cannot lock store {}: {e}", self.root.display()))
            })?;
        } else {
            match f.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::Usage(format!(
                        "cannot lock store {}: {e}",
                        self.root.display()
                    )))
                }
            }
        }
        Ok(Some(Box::new(Lock(f))))
    }

    fn staging(&self) -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&self.root)?)
    }

    fn clean_staging(&self) -> Result<usize> {
        let mut n = 0;
        for dir in [self.root.clone(), self.oci()] {
            let Ok(entries) = fs_err::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                let ty = e.file_type()?;
                if name.starts_with(STAGING_PREFIX) && ty.is_dir() {
                    fs_err::remove_dir_all(e.path())?;
                    n += 1;
                } else if name.starts_with(".tmp") && ty.is_file() {
                    // A write_atomic interrupted before its rename.
                    fs_err::remove_file(e.path())?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn record_names(&self) -> Result<Vec<(String, String)>> {
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
                if !version.file_type()?.is_dir() {
                    continue;
                }
                out.push((
                    name.file_name().to_string_lossy().into_owned(),
                    version.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
        Ok(out)
    }

    fn record_file(&self, name: &str, version: &str, file: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut r) = self.record_reader(name, version, file)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    fn record_reader(
        &self,
        name: &str,
        version: &str,
        file: &str,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        let p = self
            .record_path(Self::component(name)?, Self::component(version)?)
            .join(file);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(Box::new(fs_err::File::open(&p)?))),
            Ok(_) => Err(Error::Usage(format!(
                "{}: not a regular file in the store's record",
                p.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", p.display()),
            ))),
        }
    }

    fn record_dir(&self, name: &str, version: &str, dir: &str) -> Result<Vec<String>> {
        let p = self
            .record_path(Self::component(name)?, Self::component(version)?)
            .join(Self::component(dir)?);
        let entries = match std::fs::read_dir(&p) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", p.display()),
                )))
            }
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e?;
            if e.file_type()?.is_file() {
                out.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn put_record(
        &self,
        name: &str,
        version: &str,
        files: Vec<(String, RecordFile)>,
    ) -> Result<()> {
        let dest = self.record_path(Self::component(name)?, Self::component(version)?);
        if dest.exists() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: a record already exists", dest.display()),
            )));
        }
        let stage = self.staging()?;
        let rec = stage.path().join("record");
        for (rel, bytes) in files {
            let p = rec.join(rel);
            fs_err::create_dir_all(p.parent().expect("below the record"))?;
            let mut f = fs_err::File::create(&p)?;
            bytes.write_to(&mut f)?;
            f.sync_all()?;
        }
        for sub in [
            rec.join(crate::bundle::SIGNATURES_DIR),
            rec.join(crate::bundle::CUSTODY_DIR),
            rec.clone(),
        ] {
            fs_err::create_dir_all(&sub)?;
            sync_dir(&sub)?;
        }
        let parent = dest.parent().expect("has parent");
        fs_err::create_dir_all(parent)?;
        fs_err::rename(&rec, &dest)?;
        sync_dir(parent)?;
        sync_dir(&self.root.join("bundles"))?;
        Ok(())
    }

    fn remove_record(&self, name: &str, version: &str) -> Result<()> {
        let dest = self.record_path(Self::component(name)?, Self::component(version)?);
        if !dest.exists() {
            return Ok(());
        }
        // Renamed away first, so the record disappears at once; what is
        // left if a kill interrupts the removal is staging, cleaned later.
        let stage = self.staging()?;
        fs_err::rename(&dest, stage.path().join("gone"))?;
        let parent = dest.parent().expect("has parent");
        sync_dir(parent)?;
        // The name's directory goes too when this was its only version.
        let _ = std::fs::remove_dir(parent);
        drop(stage);
        Ok(())
    }

    fn locate_record(&self, name: &str, version: &str) -> String {
        self.record_path(name, version).display().to_string()
    }

    fn ledger_lines(&self) -> Result<Vec<String>> {
        if !self.ledger().exists() {
            return Ok(vec![]);
        }
        let f = std::io::BufReader::new(fs_err::File::open(self.ledger())?);
        Ok(f.lines().collect::<std::io::Result<_>>()?)
    }

    fn ledger_append(&self, seq: u64, line: &str) -> Result<()> {
        let have = self.ledger_lines()?.len() as u64;
        if have + 1 != seq {
            return Err(Error::Io(std::io::Error::other(format!(
                "{}: holds {have} entries, cannot append entry {seq}",
                self.ledger().display()
            ))));
        }
        let mut f = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.ledger())?;
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        f.write_all(&bytes)?;
        f.sync_all()?;
        if seq == 1 {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    fn ledger_truncate(&self, count: u64) -> Result<()> {
        if !self.ledger().exists() {
            return Ok(());
        }
        let bytes = fs_err::read(self.ledger())?;
        let mut at = 0usize;
        for _ in 0..count {
            match bytes[at..].iter().position(|&b| b == b'\n') {
                Some(i) => at += i + 1,
                None => {
                    at = bytes.len();
                    break;
                }
            }
        }
        if at < bytes.len() {
            let f = fs_err::OpenOptions::new().write(true).open(self.ledger())?;
            f.set_len(at as u64)?;
            f.sync_all()?;
        }
        Ok(())
    }

    fn head(&self) -> Result<Option<Vec<u8>>> {
        match fs_err::read(self.head_path()) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn swap_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<()> {
        // Writers hold the store lock, so compare then replace is atomic.
        if self.head()?.as_deref() != expected {
            return Err(Error::Io(std::io::Error::other(format!(
                "{}: changed by another writer",
                self.head_path().display()
            ))));
        }
        write_atomic(&self.head_path(), new)
    }

    fn locate_ledger(&self) -> (String, String) {
        (
            self.ledger().display().to_string(),
            self.head_path().display().to_string(),
        )
    }

    fn index(&self) -> Result<Option<Vec<u8>>> {
        match fs_err::read(self.oci().join("index.json")) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn put_index(&self, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.oci().join("index.json"), bytes)
    }

    fn store_id(&self) -> Result<Option<String>> {
        match fs_err::read_to_string(self.root.join("store-id")) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn put_store_id(&self, id: &str) -> Result<()> {
        let path = self.root.join("store-id");
        if path.exists() {
            return Err(Error::Usage(format!(
                "{}: the store already has an identity",
                path.display()
            )));
        }
        write_atomic(&path, format!("{id}\n").as_bytes())
    }
}

/// Bytes a [`StagedFile`] writes between two early syncs.
const EARLY_SYNC: u64 = 16 << 20;

/// A verified blob being staged for the store (written by verification as
/// it hashes). Every [`EARLY_SYNC`] bytes it has the file's data written to
/// disk by a helper thread (`fdatasync` on a second handle, so the hashing
/// thread never waits for the disk): the sync before the commit
/// ([`super::sync_staged`]) then finds little left to write, and the disk
/// works while the CPU hashes. Small files never reach the threshold.
///
/// An early sync's error is never dropped: Linux reports a writeback error
/// once per open file description, so the sync before the commit (on a new
/// handle) would not see it again. The next write fails with it, and
/// [`StagedFile::finish`], which every staged blob goes through, waits for
/// the sync still running and returns its error.
pub struct StagedFile {
    file: fs_err::File,
    since: u64,
    syncing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    failed: Option<std::io::Error>,
}

impl StagedFile {
    /// Creates (or truncates) the staged file `path`.
    pub fn create(path: &Path) -> std::io::Result<StagedFile> {
        Ok(StagedFile {
            file: fs_err::File::create(path)?,
            since: 0,
            syncing: None,
            failed: None,
        })
    }

    /// Keeps the error of an early sync that has ended; `wait`s for one
    /// still running if asked to.
    fn reap(&mut self, wait: bool) {
        if !wait && !self.syncing.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        if let Some(h) = self.syncing.take() {
            let res = h
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
            if let Err(e) = res {
                self.failed.get_or_insert(e);
            }
        }
    }

    /// Starts a sync of what was written so far, unless one still runs.
    fn sync_early(&mut self) -> std::io::Result<()> {
        self.reap(false);
        if self.syncing.is_some() {
            return Ok(());
        }
        self.since = 0;
        let f = self.file.file().try_clone()?;
        self.syncing = Some(
            std::thread::Builder::new()
                .name("airlock-sync".into())
                .spawn(move || f.sync_data())?,
        );
        Ok(())
    }

    /// Waits for the early sync still running; the first error any early
    /// sync met, if one did. The data is made durable by the sync before
    /// the commit.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.reap(true);
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= EARLY_SYNC {
            self.sync_early()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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

/// An error of a system call on `p`, naming it.
fn io_at(p: &Path, e: rustix::io::Errno) -> Error {
    let e = std::io::Error::from(e);
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{e} (at {})", p.display()),
    ))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `put_staged` takes every staged blob it is given, counts only those
    /// it moved, leaves a blob already present as it was (its staged copy
    /// stays behind), skips a digest with nothing staged, and refuses a
    /// blob path held by something other than a file, as `put_verified`.
    #[test]
    fn put_staged_moves_new_blobs_and_keeps_present_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::new(dir.path());
        s.create().unwrap();
        let staging = s.staging().unwrap();
        let d = |i: u8| Sha256Digest::of(&[i]);
        for i in 0..4 {
            fs_err::write(staging.path().join(d(i).hex()), [i]).unwrap();
        }
        fs_err::write(s.blob(&d(1)), b"present").unwrap();
        // d(9) was never staged (present before, or a delta's base's).
        let all = [d(0), d(1), d(2), d(9)];
        assert_eq!(s.put_staged(staging.path(), &all).unwrap(), 2);
        assert_eq!(fs_err::read(s.blob(&d(0))).unwrap(), [0]);
        assert_eq!(fs_err::read(s.blob(&d(2))).unwrap(), [2]);
        assert_eq!(fs_err::read(s.blob(&d(1))).unwrap(), b"present");
        assert!(staging.path().join(d(1).hex()).is_file(), "left staged");
        assert!(!s.blob(&d(9)).exists());
        assert_eq!(s.put_staged(staging.path(), &all).unwrap(), 0, "idempotent");
        // The default, one `put_verified` at a time, agrees.
        fs_err::write(staging.path().join(d(5).hex()), [5]).unwrap();
        let more = [d(1), d(3), d(5)];
        assert_eq!(
            super::super::backend::put_staged_each(&s, staging.path(), &more).unwrap(),
            2
        );
        assert_eq!(fs_err::read(s.blob(&d(3))).unwrap(), [3]);

        fs_err::create_dir(s.blob(&d(7))).unwrap();
        fs_err::write(staging.path().join(d(7).hex()), [7]).unwrap();
        let e = s
            .put_staged(staging.path(), &[d(7)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&d(7).hex()), "{e}");
    }

    /// `held` answers as `has` does for each digest: regular files, links
    /// followed; a directory or a dangling link at a blob's path is not a
    /// blob; a store whose blob directory is missing holds none.
    #[test]
    fn held_is_has_of_each() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::new(dir.path());
        assert!(s.held(&[Sha256Digest::of(b"x")]).unwrap().is_empty());
        s.create().unwrap();
        let d = |i: u8| Sha256Digest::of(&[i]);
        fs_err::write(s.blob(&d(0)), b"0").unwrap();
        fs_err::create_dir(s.blob(&d(1))).unwrap();
        std::os::unix::fs::symlink(s.blob(&d(0)), s.blob(&d(2))).unwrap();
        std::os::unix::fs::symlink("nowhere", s.blob(&d(3))).unwrap();
        let all: Vec<_> = (0..6).map(d).collect();
        let held = s.held(&all).unwrap();
        for x in &all {
            assert_eq!(held.contains(x), s.has(x).unwrap(), "{x}");
        }
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn ledger_truncate_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::new(dir.path());
        s.create().unwrap();
        s.ledger_append(1, "one").unwrap();
        s.ledger_append(2, "two").unwrap();
        assert!(s.ledger_append(4, "four").is_err(), "gaps are refused");
        // A write cut short by a kill: no newline at the end.
        let mut f = fs_err::OpenOptions::new()
            .append(true)
            .open(s.ledger())
            .unwrap();
        f.write_all(b"{\"thr").unwrap();
        assert_eq!(s.ledger_lines().unwrap().len(), 3);
        s.ledger_truncate(2).unwrap();
        assert_eq!(fs_err::read(s.ledger()).unwrap(), b"one\ntwo\n");
        s.ledger_truncate(5).unwrap();
        assert_eq!(s.ledger_lines().unwrap(), ["one", "two"]);
        s.ledger_truncate(0).unwrap();
        assert!(s.ledger_lines().unwrap().is_empty());
    }

    #[test]
    fn records_are_created_once_and_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::new(dir.path());
        s.create().unwrap();
        let files = || {
            vec![
                ("record.json".to_string(), RecordFile::Bytes(b"{}".to_vec())),
                (
                    "custody/0001-packed.dsse.json".to_string(),
                    RecordFile::Bytes(b"e".to_vec()),
                ),
            ]
        };
        s.put_record("demo", "1.0.0", files()).unwrap();
        assert!(s.put_record("demo", "1.0.0", files()).is_err());
        assert_eq!(
            s.record_file("demo", "1.0.0", "custody/0001-packed.dsse.json")
                .unwrap()
                .unwrap(),
            b"e"
        );
        assert!(s.record_file("..", "x", "record.json").is_err());
        assert_eq!(
            s.record_dir("demo", "1.0.0", "custody").unwrap(),
            ["custody/0001-packed.dsse.json"]
        );
        assert!(s
            .record_dir("demo", "1.0.0", "signatures")
            .unwrap()
            .is_empty());
        assert!(s.record_dir("demo", "1.0.0", "..").is_err());
        assert_eq!(s.record_names().unwrap(), [("demo".into(), "1.0.0".into())]);
        s.remove_record("demo", "1.0.0").unwrap();
        assert!(!dir.path().join("bundles/demo").exists());
        assert_eq!(s.clean_staging().unwrap(), 0, "nothing left behind");
    }

    /// A tag file spilled while it was verified is streamed from its spill
    /// file into the record: the same bytes as written from memory. One
    /// altered after it was spilled fails the write, and no record is left.
    #[test]
    fn a_record_file_streamed_from_its_spill_file_is_the_same_bytes() {
        use crate::bundle::DESCRIPTION;
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::new(dir.path());
        s.create().unwrap();
        let big: Vec<u8> = (0..crate::source::Spilled::AT * 2 + 3)
            .map(|i| (i % 241) as u8)
            .collect();
        let spilled = || {
            let mut t = crate::source::TagSet::spilling();
            t.take(DESCRIPTION, big.clone());
            t.spilled.remove(DESCRIPTION).expect("spilled")
        };
        let files = |desc: RecordFile| {
            vec![
                (DESCRIPTION.to_string(), desc),
                ("record.json".to_string(), RecordFile::Bytes(b"{}".to_vec())),
            ]
        };
        let from_spill = spilled();
        let reader = RecordFile::Reader(Box::new(from_spill.reader().unwrap()));
        s.put_record("a", "1.0.0", files(reader)).unwrap();
        s.put_record("b", "1.0.0", files(RecordFile::Bytes(big.clone())))
            .unwrap();
        let stored =
            |n: &str| fs_err::read(dir.path().join(format!("bundles/{n}/1.0.0/{DESCRIPTION}")));
        assert_eq!(stored("a").unwrap(), big);
        assert_eq!(stored("a").unwrap(), stored("b").unwrap());
        let mut r = s.record_reader("a", "1.0.0", DESCRIPTION).unwrap().unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, big);

        let altered = spilled();
        let reader = RecordFile::Reader(Box::new(altered.reader().unwrap()));
        altered.overwrite_for_test(5, b"!");
        assert!(s.put_record("c", "1.0.0", files(reader)).is_err());
        assert!(s
            .record_file("c", "1.0.0", "record.json")
            .unwrap()
            .is_none());
    }

    #[test]
    fn head_is_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDir::new(dir.path());
        s.create().unwrap();
        s.swap_head(None, b"a").unwrap();
        assert!(s.swap_head(None, b"b").is_err());
        assert!(s.swap_head(Some(b"x"), b"b").is_err());
        s.swap_head(Some(b"a"), b"b").unwrap();
        assert_eq!(s.head().unwrap().unwrap(), b"b");
    }
}
