//! The store seam: what the store needs from where it keeps things.
//!
//! Two traits, in the spirit of rustic_core's `ReadBackend` / `WriteBackend`:
//! [`BlobStore`] for content-addressed blobs and [`MetaStore`] for bundle
//! records, the hash-chained ledger, its head and the OCI index. Everything
//! the import commit does is expressed in operations an object store has
//! (S3 with conditional writes, through the `object_store` crate):
//!
//! | operation | local directory ([`super::local::LocalDir`]) | object store |
//! |---|---|---|
//! | `put_verified` | rename of the staged file | multipart upload, `If-None-Match: *` |
//! | `put_record` (create-if-absent) | staging dir renamed into `bundles/N/V` | tag files, then `record.json` with `If-None-Match: *` |
//! | `ledger_append` | `O_APPEND` write + fsync | `ledger/<seq>` with `If-None-Match: *` |
//! | `swap_head` (compare-and-swap) | atomic replace of `ledger.head` under the lock | `ledger.head` with `If-Match: <etag>` |
//! | `ledger_truncate`, `remove_record` | truncate, rename away + remove | deletes |
//! | `lock` | `flock` on `STORE/lock` | a lease object created with `If-None-Match: *` |
//!
//! Verified blobs are staged by `verify` into a local directory
//! ([`MetaStore::staging`]) and then handed to [`BlobStore::put_verified`].
//! A new backend is one new file implementing both traits (plus the line
//! that chooses it in `Store::new`).

use std::io::Read;
use std::path::Path;

use crate::digest::Sha256Digest;
use crate::error::Result;

/// One file of a record for [`MetaStore::put_record`].
pub enum RecordFile {
    Bytes(Vec<u8>),
    /// Its bytes streamed from a reader (a large tag file spilled while it
    /// was verified), never held whole where the backend writes files.
    Reader(Box<dyn Read + Send>),
}

impl RecordFile {
    /// Writes every byte of it to `w`.
    pub fn write_to(self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        match self {
            RecordFile::Bytes(b) => w.write_all(&b),
            RecordFile::Reader(mut r) => std::io::copy(&mut r, w).map(|_| ()),
        }
    }

    /// Its bytes, read whole (for a backend that uploads bytes).
    pub fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self {
            RecordFile::Bytes(b) => Ok(b),
            RecordFile::Reader(mut r) => {
                let mut out = Vec::new();
                r.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

/// Holds the store's exclusive writer lock until dropped.
pub trait Guard {}

/// Content-addressed blobs. A blob is either absent or complete.
pub trait BlobStore: Sync {
    /// Does the store hold blob `d`?
    fn has(&self, d: &Sha256Digest) -> Result<bool>;
    /// Which of `digests` the store holds (`has` of each).
    fn held(&self, digests: &[Sha256Digest]) -> Result<std::collections::HashSet<Sha256Digest>> {
        let mut out = std::collections::HashSet::new();
        for d in digests {
            if self.has(d)? {
                out.insert(*d);
            }
        }
        Ok(out)
    }
    /// Takes the staged file `staged`, already verified to hash to `d`, into
    /// the store (moving it where it can). Returns whether it was new.
    /// Idempotent: a blob already present is left as it is.
    fn put_verified(&self, d: &Sha256Digest, staged: &Path) -> Result<bool>;
    /// Takes every blob of `digests` staged in `dir` (named by its hex
    /// digest, already verified) into the store, as `put_verified` does one;
    /// a digest with no staged file is skipped. Returns how many were new.
    fn put_staged(&self, dir: &Path, digests: &[Sha256Digest]) -> Result<usize> {
        put_staged_each(self, dir, digests)
    }
    /// Makes every blob put so far durable.
    fn sync(&self) -> Result<()>;
    /// Opens blob `d` for reading. Callers re-hash what they read.
    fn open(&self, d: &Sha256Digest) -> Result<Box<dyn Read + Send>>;
    /// Blob `d`'s file, where the store keeps blobs as local files (export
    /// reflinks it where the filesystem can). Callers re-hash what they copy.
    fn local_file(&self, _d: &Sha256Digest) -> Option<std::path::PathBuf> {
        None
    }
    /// Every blob the store holds.
    fn list(&self) -> Result<Vec<Sha256Digest>>;
    /// Where blob `d` lives, for messages.
    fn locate(&self, d: &Sha256Digest) -> String;
}

/// [`BlobStore::put_staged`] one blob at a time, through `put_verified`.
pub fn put_staged_each(
    store: &(impl BlobStore + ?Sized),
    dir: &Path,
    digests: &[Sha256Digest],
) -> Result<usize> {
    let mut new = 0;
    for d in digests {
        let staged = dir.join(d.hex());
        if staged.exists() && store.put_verified(d, &staged)? {
            new += 1;
        }
    }
    Ok(new)
}

/// Bundle records, the ledger with its head, and the OCI index.
pub trait MetaStore {
    /// Fails with one clear usage error (exit 2) unless a store exists here.
    fn check_exists(&self) -> Result<()>;
    /// Creates the store's skeleton if needed (idempotent).
    fn create(&self) -> Result<()>;
    /// Takes the exclusive writer lock. With `wait` false, returns `None`
    /// when another process holds it or the store cannot be locked because
    /// it is read-only.
    fn lock(&self, wait: bool) -> Result<Option<Box<dyn Guard>>>;
    /// A fresh local directory for staging verified blobs (on the same
    /// file system as the blobs where that makes `put_verified` a rename).
    fn staging(&self) -> Result<tempfile::TempDir>;
    /// Removes staging left by a killed process (under the lock). Returns how many.
    fn clean_staging(&self) -> Result<usize>;

    /// `(name, version)` of every record, in no particular order.
    fn record_names(&self) -> Result<Vec<(String, String)>>;
    /// One file of a record (`record.json`, a tag file, `signatures/…`,
    /// `custody/…`), or `None` if the record or file does not exist.
    fn record_file(&self, name: &str, version: &str, file: &str) -> Result<Option<Vec<u8>>>;
    /// One file of a record as a reader (`None` as `record_file`): a
    /// description grows with the file count, so it is parsed as it is read.
    fn record_reader(
        &self,
        name: &str,
        version: &str,
        file: &str,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        Ok(self
            .record_file(name, version, file)?
            .map(|b| Box::new(std::io::Cursor::new(b)) as Box<dyn Read + Send>))
    }
    /// The files of a record's folder `dir` (`signatures`, `custody`), as
    /// `dir/NAME`, sorted; empty if the record has none.
    fn record_dir(&self, name: &str, version: &str, dir: &str) -> Result<Vec<String>>;
    /// Creates a record from `files` if none exists for `name`/`version`;
    /// `record.json` (which must be among them) becomes visible last, so a
    /// record exists exactly when its `record.json` does.
    fn put_record(&self, name: &str, version: &str, files: Vec<(String, RecordFile)>)
        -> Result<()>;
    /// Removes a record (recovery of an uncommitted import).
    fn remove_record(&self, name: &str, version: &str) -> Result<()>;
    /// Where a record lives, for messages.
    fn locate_record(&self, name: &str, version: &str) -> String;

    /// Every ledger line as stored (including an uncommitted tail).
    fn ledger_lines(&self) -> Result<Vec<String>>;
    /// Appends line number `seq` (1-based); fails if the ledger does not
    /// hold exactly `seq - 1` lines.
    fn ledger_append(&self, seq: u64, line: &str) -> Result<()>;
    /// Drops every line after the first `count`.
    fn ledger_truncate(&self, count: u64) -> Result<()>;
    /// The ledger head's bytes, if any.
    fn head(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces the head with `new` if it still is `expected` (compare-and-swap).
    fn swap_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<()>;
    /// Where the ledger and its head live, for messages.
    fn locate_ledger(&self) -> (String, String);

    /// The store's OCI index, if written.
    fn index(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces the OCI index atomically.
    fn put_index(&self, bytes: &[u8]) -> Result<()>;

    /// The store's identity (written once by `put_store_id`), if it has one.
    fn store_id(&self) -> Result<Option<String>>;
    /// Records the store's identity; fails if it already has one.
    fn put_store_id(&self, id: &str) -> Result<()>;
}
