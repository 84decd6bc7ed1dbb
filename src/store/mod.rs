//! The high side's store: one OCI layout (`STORE/oci`) whose blobs every
//! imported bundle shares, a record of each imported bundle
//! (`STORE/bundles/<name>/<version>/`, its verified tag files), and a
//! hash-chained ledger (`STORE/ledger.jsonl`) of imports, refusals and
//! exports whose last committed entry is named by `STORE/ledger.head`.
//!
//! Where things are kept is behind the seam in [`backend`] ([`local`] is
//! the directory layout above). Import verifies the tag files before writing
//! anything, streams the payload into staging while hashing it, and commits
//! only when everything verified:
//!
//! 1. blobs put into the blob store (content-addressed: harmless orphans if
//!    a crash stops here);
//! 2. the record created (create-if-absent); it names the ledger entry that
//!    will commit it (sequence number and the entry's sha256);
//! 3. that ledger entry appended;
//! 4. the ledger head swapped to it: **the commit point**;
//! 5. `oci/index.json` rebuilt from the committed records.
//!
//! An error in 2–4 undoes what was done; after a kill, the next store
//! command recovers under the lock: ledger lines after the head are dropped,
//! records whose entry is not committed are removed, the index is rebuilt,
//! and staging left behind is removed. So a bundle is either fully present
//! (record, index entry, ledger entry) or absent (nothing of it, and a
//! `refuse` entry or nothing in the ledger). Every store command runs that
//! recovery first when it can take the lock; readers that cannot (a writer
//! is running) see only committed records. An exclusive lock serializes
//! writers.

pub mod backend;
mod export;
pub mod local;
pub mod s3;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::bundle::*;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

pub use backend::RecordFile;
use backend::{BlobStore, Guard, MetaStore};
pub use export::Exported;
pub use local::{write_atomic, StagedFile};

pub const BUNDLE_ID: &str = "dev.airlock.bundle.id";
pub(crate) const RECORD: &str = "record.json";

/// How to import: downgrade permission, the high side's signing key, and where to write a receipt.
#[derive(Default)]
pub struct ImportOptions<'a> {
    pub allow_downgrade: bool,
    pub key: Option<&'a crate::keys::PrivateKey>,
    pub receipt: Option<PathBuf>,
    /// For a delta: re-hash every blob the base provides from the store.
    pub recheck: bool,
}

pub struct Store {
    /// Where the store is (shown in output and messages).
    pub root: PathBuf,
    pub(crate) blobs: Box<dyn BlobStore>,
    pub(crate) meta: Box<dyn MetaStore>,
}

/// What the store keeps about an imported bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleRecord {
    pub id: String,
    pub name: String,
    pub version: String,
    pub imported: String,
    pub signers: BTreeMap<String, Vec<String>>,
    pub artifacts: usize,
    pub size: u64,
    /// The ledger entry that committed this record; absent in records
    /// written before the ledger had a head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
}

/// Names the ledger entry that commits a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    pub seq: u64,
    /// sha256 of the entry's line.
    pub entry: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub time: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub detail: String,
    /// sha256 of the previous ledger line; absent for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

/// `ledger.head`: how many entries are committed and the sha256 of the last.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Head {
    count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<String>,
}

/// The ledger as read, and how much of it is committed.
pub(crate) struct Ledger {
    lines: Vec<String>,
    head_raw: Option<Vec<u8>>,
    /// Lines committed by the head (all of them in a store without a head).
    committed: u64,
    /// The ledger does not match its head: edited, truncated or its head lost.
    problem: Option<String>,
}

impl Ledger {
    pub(crate) fn last_hash(&self) -> Option<String> {
        (self.committed > 0)
            .then(|| Sha256Digest::of(self.lines[self.committed as usize - 1].as_bytes()).hex())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub id: String,
    pub name: String,
    pub version: String,
    pub already_present: bool,
    pub blobs_written: usize,
    /// A delta: how many blobs it left out to the store (`None`: a full bundle).
    pub from_base: Option<usize>,
    pub store: PathBuf,
}

/// A signed holdings receipt, ready to write.
pub struct Holdings {
    pub store_id: String,
    pub blobs: usize,
    pub bytes: Vec<u8>,
}

/// Test-only failure injection: `AIRLOCK_FAILPOINT=<step>` aborts the
/// process (as kill -9 would) when the commit reaches `<step>`;
/// `<step>:error` makes that step fail with ENOSPC. Debug builds only.
pub(crate) fn failpoint(step: &str) -> Result<()> {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("AIRLOCK_FAILPOINT") {
        let (name, mode) = v.split_once(':').unwrap_or((&v, "abort"));
        if name == step {
            if mode == "error" {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!("failpoint {step}: no space left on device"),
                )));
            }
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
    Ok(())
}

impl Store {
    /// The store in directory `root` (the local backend), or at
    /// `s3://BUCKET/PREFIX` (an S3-compatible object store).
    pub fn new(root: &Path) -> Self {
        if let Some(url) = root.to_str().filter(|s| s3::is_url(s)) {
            let s3 = s3::S3::new(url);
            return Store {
                root: root.to_path_buf(),
                blobs: Box::new(s3.clone()),
                meta: Box::new(s3),
            };
        }
        Store {
            root: root.to_path_buf(),
            blobs: Box::new(local::LocalDir::new(root)),
            meta: Box::new(local::LocalDir::new(root)),
        }
    }

    /// A store on other backends; `root` is what messages show.
    pub fn with_backend(root: &Path, blobs: Box<dyn BlobStore>, meta: Box<dyn MetaStore>) -> Self {
        Store {
            root: root.to_path_buf(),
            blobs,
            meta,
        }
    }

    // ------------------------------------------------------------ ledger

    pub(crate) fn read_ledger(&self) -> Result<Ledger> {
        let lines = self.meta.ledger_lines()?;
        let head_raw = self.meta.head()?;
        let (ledger_at, head_at) = self.meta.locate_ledger();
        let mut l = Ledger {
            committed: lines.len() as u64,
            lines,
            head_raw,
            problem: None,
        };
        let Some(raw) = &l.head_raw else {
            return Ok(l);
        };
        let head: Head = match serde_json::from_slice(raw) {
            Ok(h) => h,
            Err(e) => {
                l.problem = Some(format!("{head_at}: not a ledger head ({e})"));
                return Ok(l);
            }
        };
        let n = l.lines.len() as u64;
        let at_head = (head.count <= n)
            .then(|| {
                (head.count > 0)
                    .then(|| Sha256Digest::of(l.lines[head.count as usize - 1].as_bytes()).hex())
            })
            .flatten();
        if head.count > n {
            l.problem = Some(format!(
                "{ledger_at}: holds {n} entries but {head_at} records {}: entries were deleted or the ledger truncated",
                head.count
            ));
        } else if at_head != head.last {
            l.problem = Some(format!(
                "{ledger_at}:{}: does not match {head_at}: the last committed entry was rewritten",
                head.count
            ));
        } else {
            l.committed = head.count;
        }
        Ok(l)
    }

    /// Under the lock: repairs what a killed writer left (an uncommitted
    /// ledger tail, uncommitted records, a stale index, staging), and
    /// gives a store without a head one. Leaves a damaged ledger alone.
    pub(crate) fn recover(&self) -> Result<Ledger> {
        self.meta.clean_staging()?;
        let l = self.read_ledger()?;
        if l.problem.is_some() {
            return Ok(l);
        }
        let records = self.all_records()?;
        if l.head_raw.is_none() {
            if records.iter().any(|r| r.commit.is_some()) {
                let (_, head_at) = self.meta.locate_ledger();
                let mut l = l;
                l.problem = Some(format!(
                    "{head_at}: missing, but records were committed by it (removed?)"
                ));
                return Ok(l);
            }
            // A store written before the ledger had a head: adopt the ledger.
            let head = Head {
                count: l.committed,
                last: l.last_hash(),
            };
            self.meta
                .swap_head(None, &serde_json::to_vec(&head).expect("serializes"))?;
        }
        if l.lines.len() as u64 > l.committed {
            self.meta.ledger_truncate(l.committed)?;
        }
        // Writers are serialized, so a crash leaves at most one uncommitted
        // record: the one naming the entry after the head (appended or not).
        // Any other record the ledger does not hold is left for
        // `store log --verify` to report.
        let next = l.committed + 1;
        let tail = l.lines.get(l.committed as usize);
        for r in &records {
            if r.commit.as_ref().is_some_and(|c| {
                c.seq == next
                    && tail.is_none_or(|t| Sha256Digest::of(t.as_bytes()).hex() == c.entry)
            }) {
                self.meta.remove_record(&r.name, &r.version)?;
            }
        }
        // A record that cannot be read leaves the index as it was;
        // `store log --verify` names the record.
        let _ = self.rebuild_index(l.committed);
        self.read_ledger()
    }

    /// Opens the store for writing: creates it if needed, takes the lock,
    /// recovers. Refuses a store whose ledger does not match its head.
    pub(crate) fn open_write(&self) -> Result<(Box<dyn Guard>, Ledger)> {
        self.meta.create()?;
        let guard = self.meta.lock(true)?.expect("waited for the lock");
        let l = self.recover()?;
        if let Some(p) = &l.problem {
            return Err(crate::error::single(
                p.clone(),
                "the ledger was edited; nothing was written. Restore ledger.jsonl and ledger.head from a backup (see `airlock store log --verify`)",
            ));
        }
        Ok((guard, l))
    }

    /// Opens an existing store for reading: recovers when the lock is free,
    /// else (a writer is running) reads what is committed.
    pub(crate) fn open_read(&self) -> Result<(Option<Box<dyn Guard>>, Ledger)> {
        self.meta.check_exists()?;
        match self.meta.lock(false)? {
            Some(g) => {
                let l = self.recover()?;
                Ok((Some(g), l))
            }
            None => Ok((None, self.read_ledger()?)),
        }
    }

    /// The next entry's line after the committed ones.
    pub(crate) fn entry_line(
        &self,
        l: &Ledger,
        action: &str,
        bundle: Option<String>,
        nv: Option<(String, String)>,
        detail: &str,
    ) -> (u64, String) {
        let entry = LedgerEntry {
            seq: l.committed + 1,
            time: crate::clock::rfc3339(crate::clock::now()),
            action: action.to_string(),
            bundle,
            name: nv.as_ref().map(|x| x.0.clone()),
            version: nv.map(|x| x.1),
            detail: detail.to_string(),
            prev: l.last_hash(),
        };
        (
            entry.seq,
            serde_json::to_string(&entry).expect("serializes"),
        )
    }

    /// Appends `line` as entry `seq` and swaps the head to it (the commit
    /// point); on an error the ledger is as it was.
    pub(crate) fn commit_line(&self, l: &Ledger, seq: u64, line: &str) -> Result<()> {
        let head = Head {
            count: seq,
            last: Some(Sha256Digest::of(line.as_bytes()).hex()),
        };
        let head = serde_json::to_vec(&head).expect("serializes");
        let res = (|| {
            failpoint("ledger")?;
            self.meta.ledger_append(seq, line)?;
            failpoint("head")?;
            self.meta.swap_head(l.head_raw.as_deref(), &head)
        })();
        if res.is_err() {
            // A head that was replaced before its write reported an error
            // (a failed directory sync) has committed the entry.
            if self.meta.head().ok().flatten().as_deref() == Some(head.as_slice()) {
                return Ok(());
            }
            let _ = self.meta.ledger_truncate(l.committed);
        }
        res
    }

    /// Appends a hash-chained entry to the ledger (takes the lock).
    pub fn append_ledger(
        &self,
        action: &str,
        bundle: Option<String>,
        nv: Option<(String, String)>,
        detail: &str,
    ) -> Result<()> {
        let (_guard, l) = self.open_write()?;
        self.append_locked(&l, action, bundle, nv, detail)
    }

    pub(crate) fn append_locked(
        &self,
        l: &Ledger,
        action: &str,
        bundle: Option<String>,
        nv: Option<(String, String)>,
        detail: &str,
    ) -> Result<()> {
        let (seq, line) = self.entry_line(l, action, bundle, nv, detail);
        self.commit_line(l, seq, &line)
    }

    // ------------------------------------------------------------ receipts

    /// The store's identity, if it has been given one.
    pub fn id(&self) -> Result<Option<String>> {
        self.meta.store_id()
    }

    /// Writes a signed statement of every blob the store holds (see
    /// [`crate::receipt::make_holdings`]). The first one gives the store its
    /// random identity (`store-id`, recorded in the ledger); each is
    /// recorded in the ledger with its blob count.
    pub fn holdings_receipt(&self, key: &crate::keys::PrivateKey) -> Result<Holdings> {
        self.meta.check_exists()?;
        let (_guard, l) = self.open_write()?;
        let id = match self.meta.store_id()? {
            Some(id) => id,
            None => {
                let mut raw = [0u8; 16];
                getrandom::fill(&mut raw).map_err(|e| {
                    Error::Usage(format!("no system randomness for the store id: {e}"))
                })?;
                let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                self.meta.put_store_id(&id)?;
                self.append_locked(&l, "store-id", None, None, &format!("store id {id}"))?;
                id
            }
        };
        let l = self.read_ledger()?;
        // Only blobs some committed record declares: a blob left by an
        // import cut short is not vouched for.
        let mut blobs = std::collections::BTreeSet::new();
        for r in self.records_committed(&l)? {
            for d in self.description(&r)?.blobs().into_keys() {
                if self.blobs.has(&d)? {
                    blobs.insert(d);
                }
            }
        }
        let blobs: Vec<Sha256Digest> = blobs.into_iter().collect();
        let detail = format!(
            "receipt of {} blob(s) signed by key {}",
            blobs.len(),
            key.public.id
        );
        self.append_locked(&l, "receipt", None, None, &detail)?;
        let time = crate::clock::now();
        let bytes = crate::receipt::make_holdings(key, &id, l.committed + 1, blobs.clone(), time);
        Ok(Holdings {
            store_id: id,
            blobs: blobs.len(),
            bytes,
        })
    }

    /// Writes the OCI index derived from the records committed by the
    /// first `committed` ledger entries, when it differs from the stored one.
    /// Records are applied in commit order, so the latest import of an
    /// image reference names it, as a push to a tag would.
    pub(crate) fn rebuild_index(&self, committed: u64) -> Result<()> {
        let mut records: Vec<BundleRecord> = self
            .all_records()?
            .into_iter()
            .filter(|r| r.commit.as_ref().is_none_or(|c| c.seq <= committed))
            .collect();
        records.sort_by(|a, b| {
            let seq = |r: &BundleRecord| r.commit.as_ref().map_or(0, |c| c.seq);
            seq(a)
                .cmp(&seq(b))
                .then_with(|| a.imported.cmp(&b.imported))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.version.cmp(&b.version))
        });
        let mut entries: Vec<Descriptor> = Vec::new();
        for r in &records {
            let d: IndexView = self.read_description(r)?;
            let id: Sha256Digest = r.id.parse().map_err(|e| {
                Error::Usage(format!(
                    "{}: corrupt record: id: {e}",
                    self.meta.locate_record(&r.name, &r.version)
                ))
            })?;
            for a in &d.artifacts {
                // Images are named by their original reference, so
                // `skopeo inspect oci:STORE/oci:REF` finds them.
                let reference = if a.kind == ArtifactKind::Image {
                    a.name.clone()
                } else {
                    store_ref(&d.name, &d.version, &a.reference)
                };
                entries.retain(|e| {
                    e.annotations().as_ref().and_then(|m| m.get(REF_NAME)) != Some(&reference)
                });
                entries.push(index_entry(
                    a.kind,
                    &a.name,
                    &a.artifact_type,
                    &a.manifest,
                    reference,
                    Some(&id),
                ));
            }
        }
        if entries.is_empty() && self.meta.index()?.is_none() {
            return Ok(());
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(entries)
            .build()
            .map_err(|e| Error::Usage(format!("cannot build store index: {e}")))?;
        let bytes = canonical_json(&index);
        if self.meta.index()?.as_deref() != Some(bytes.as_slice()) {
            self.meta.put_index(&bytes)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ records

    /// The record of `name` `version`, committed or not.
    pub fn record(&self, name: &str, version: &str) -> Result<Option<BundleRecord>> {
        let Some(bytes) = self.meta.record_file(name, version, RECORD)? else {
            return Ok(None);
        };
        let rec: BundleRecord = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Usage(format!(
                "{}/{RECORD}: corrupt record: {e}",
                self.meta.locate_record(name, version)
            ))
        })?;
        Ok(Some(rec))
    }

    /// Every record present, committed or not.
    pub(crate) fn all_records(&self) -> Result<Vec<BundleRecord>> {
        let mut out = Vec::new();
        for (n, v) in self.meta.record_names()? {
            if let Some(r) = self.record(&n, &v)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Records committed by the ledger, sorted by name then version.
    pub(crate) fn records_committed(&self, l: &Ledger) -> Result<Vec<BundleRecord>> {
        let mut out: Vec<BundleRecord> = self
            .all_records()?
            .into_iter()
            .filter(|r| r.commit.as_ref().is_none_or(|c| c.seq <= l.committed))
            .collect();
        out.sort_by(|a, b| {
            a.name.cmp(&b.name).then_with(|| {
                match (
                    semver::Version::parse(&a.version),
                    semver::Version::parse(&b.version),
                ) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.version.cmp(&b.version),
                }
            })
        });
        Ok(out)
    }

    /// Every imported bundle, sorted by name then version.
    pub fn list(&self) -> Result<Vec<BundleRecord>> {
        let (_guard, l) = self.open_read()?;
        self.records_committed(&l)
    }

    /// Finds `NAME` (newest version) or `NAME@VERSION`.
    pub fn find(&self, spec: &str) -> Result<BundleRecord> {
        let (_guard, l) = self.open_read()?;
        self.find_in(&l, spec)
    }

    pub(crate) fn find_in(&self, l: &Ledger, spec: &str) -> Result<BundleRecord> {
        let (name, version) = match spec.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        self.records_committed(l)?
            .into_iter()
            .rfind(|r| r.name == name && version.is_none_or(|v| r.version == v))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no bundle {spec} in store {}; see `airlock store ls --store {}`",
                    self.root.display(),
                    self.root.display()
                ))
            })
    }

    /// The record's `airlock.json`, as stored.
    pub fn description(&self, r: &BundleRecord) -> Result<Description> {
        self.read_description(r)
    }

    /// Record `r`'s description read as `T`: the whole `Description`, or
    /// the `IndexView` the store's index takes from it. Parsed as it is
    /// read: it grows with the file count.
    fn read_description<T: serde::de::DeserializeOwned>(&self, r: &BundleRecord) -> Result<T> {
        let at = format!(
            "{}/{DESCRIPTION}",
            self.meta.locate_record(&r.name, &r.version)
        );
        let r = self
            .meta
            .record_reader(&r.name, &r.version, DESCRIPTION)?
            .ok_or_else(|| Error::Usage(format!("{at}: missing from the store's record")))?;
        serde_json::from_reader(std::io::BufReader::with_capacity(256 << 10, r))
            .map_err(|e| Error::Usage(format!("{at}: corrupt description: {e}")))
    }

    /// One file of the record (a tag file, `signatures/…`, `custody/…`),
    /// as imported; missing is an error naming where it should be.
    pub fn record_file(&self, r: &BundleRecord, file: &str) -> Result<Vec<u8>> {
        self.meta
            .record_file(&r.name, &r.version, file)?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}/{file}: missing from the store's record",
                    self.meta.locate_record(&r.name, &r.version)
                ))
            })
    }

    /// The files of the record's `signatures/` or `custody/` folder, as
    /// `(signatures/NAME, bytes)`, in name order.
    pub fn record_dir(&self, r: &BundleRecord, dir: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for f in self.meta.record_dir(&r.name, &r.version, dir)? {
            let bytes = self.record_file(r, &f)?;
            out.push((f, bytes));
        }
        Ok(out)
    }

    /// The record's tag files checked against its id: the tag manifest
    /// must hash to the id and list the description's sha256.
    pub(crate) fn record_problems(&self, r: &BundleRecord) -> Result<Vec<(String, String)>> {
        let at = self.meta.locate_record(&r.name, &r.version);
        let mut out = Vec::new();
        let Some(tm) = self.meta.record_file(&r.name, &r.version, TAGMANIFEST)? else {
            out.push((format!("{at}/{TAGMANIFEST}"), "missing".to_string()));
            return Ok(out);
        };
        if Sha256Digest::of(&tm).hex() != r.id {
            out.push((
                format!("{at}/{TAGMANIFEST}"),
                format!("does not hash to the record's id {} (record edited)", r.id),
            ));
        }
        let listed = parse_manifest(&String::from_utf8_lossy(&tm)).unwrap_or_default();
        let desc = self.meta.record_file(&r.name, &r.version, DESCRIPTION)?;
        match (listed.get(DESCRIPTION), desc) {
            (Some(want), Some(bytes)) if Sha256Digest::of(&bytes) == *want => {}
            (_, None) => out.push((format!("{at}/{DESCRIPTION}"), "missing".to_string())),
            _ => out.push((
                format!("{at}/{DESCRIPTION}"),
                "does not match the record's tag manifest (record edited)".to_string(),
            )),
        }
        Ok(out)
    }

    /// The description of a record whose tag files check against its id.
    pub(crate) fn checked_description(&self, r: &BundleRecord) -> Result<Description> {
        let problems = self.record_problems(r)?;
        if !problems.is_empty() {
            let mut report = crate::error::Report::default();
            for (s, p) in problems {
                report.add(s, p);
            }
            return Err(Error::Verification(report));
        }
        self.description(r)
    }

    // ------------------------------------------------------------ blobs

    /// Opens a blob for reading (push and export re-hash what they read).
    pub fn open_blob(&self, d: &Sha256Digest) -> Result<Box<dyn Read + Send>> {
        self.blobs.open(d)
    }

    /// Fails with a clear usage error unless a store exists here.
    pub fn check_exists(&self) -> Result<()> {
        self.meta.check_exists()
    }

    /// Whether the store holds blob `d`.
    pub fn has_blob(&self, d: &Sha256Digest) -> Result<bool> {
        self.blobs.has(d)
    }

    /// Where a blob is, for messages.
    pub fn locate_blob(&self, d: &Sha256Digest) -> String {
        self.blobs.locate(d)
    }

    /// Reads blob `d` whole, checking its size and digest; at most `limit` bytes.
    pub fn read_blob_checked(&self, d: &Sha256Digest, size: u64) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let h =
            crate::digest::copy_hashed(&mut self.open_blob(d)?, &mut bytes, Some(size), &|_| {})?;
        if h.digest != *d || h.size != size {
            return Err(corrupt_blob(&self.locate_blob(d), d, size, &h));
        }
        Ok(bytes)
    }

    // ------------------------------------------------------------ log

    /// The ledger's committed entries. With `check`, every broken link, a
    /// ledger that does not match its head, and every record the ledger
    /// does not account for (or entry with no record) is a finding.
    pub fn log(&self, check: bool) -> Result<Vec<LedgerEntry>> {
        let (guard, l) = self.open_read()?;
        let (ledger_at, _) = self.meta.locate_ledger();
        let mut report = crate::error::Report::default();
        let shown = if l.problem.is_some() {
            l.lines.len()
        } else {
            l.committed as usize
        };
        let mut out = Vec::new();
        let mut prev: Option<String> = None;
        for (i, line) in l.lines[..shown].iter().enumerate() {
            let where_ = format!("{ledger_at}:{}", i + 1);
            match serde_json::from_str::<LedgerEntry>(line) {
                Ok(e) => {
                    if e.prev != prev || e.seq != i as u64 + 1 {
                        report.add(&where_, "does not chain to the entry before it (ledger edited, reordered or truncated)");
                    }
                    out.push(e);
                }
                Err(err) => report.add(&where_, format!("not a ledger entry: {err}")),
            }
            prev = Some(Sha256Digest::of(line.as_bytes()).hex());
        }
        if !check {
            return Ok(out);
        }
        if let Some(p) = &l.problem {
            report.add(p.clone(), "the ledger does not match its head");
        }
        self.cross_check(&l, guard.is_some(), &out, &mut report)?;
        report.into_result()?;
        Ok(out)
    }

    /// Records against the ledger: each committed record is named by an
    /// import entry that its commit hash matches, and each import entry
    /// has its record.
    pub(crate) fn cross_check(
        &self,
        l: &Ledger,
        locked: bool,
        entries: &[LedgerEntry],
        report: &mut crate::error::Report,
    ) -> Result<()> {
        let (ledger_at, _) = self.meta.locate_ledger();
        let is_import = |e: &LedgerEntry| e.action == "import" || e.action == "import-downgrade";
        let records = self.all_records()?;
        for r in &records {
            let at = format!("{}/{RECORD}", self.meta.locate_record(&r.name, &r.version));
            let names = |e: &LedgerEntry| {
                is_import(e)
                    && e.bundle.as_deref() == Some(r.id.as_str())
                    && e.name.as_deref() == Some(r.name.as_str())
                    && e.version.as_deref() == Some(r.version.as_str())
            };
            match &r.commit {
                // In flight: a writer holds the lock and has not committed.
                Some(c) if !locked && l.problem.is_none() && c.seq == l.committed + 1 => {}
                Some(c) => match l.lines.get(c.seq.saturating_sub(1) as usize) {
                    None => report.add(
                        &at,
                        format!(
                            "committed by ledger entry {}, which the ledger does not hold (ledger truncated or entries deleted)",
                            c.seq
                        ),
                    ),
                    Some(line) if Sha256Digest::of(line.as_bytes()).hex() != c.entry => report.add(
                        format!("{ledger_at}:{}", c.seq),
                        format!(
                            "is not the entry that committed {} {} (entry rewritten)",
                            r.name, r.version
                        ),
                    ),
                    Some(line) => {
                        if !serde_json::from_str::<LedgerEntry>(line).is_ok_and(|e| names(&e)) {
                            report.add(
                                &at,
                                format!("ledger entry {} does not record this import", c.seq),
                            );
                        }
                    }
                },
                None => {
                    if !entries.iter().any(names) {
                        report.add(&at, "no ledger entry records this import");
                    }
                }
            }
            for (s, p) in self.record_problems(r)? {
                report.add(s, p);
            }
        }
        for e in entries.iter().filter(|e| is_import(e)) {
            let found = records.iter().any(|r| {
                Some(r.id.as_str()) == e.bundle.as_deref()
                    && Some(r.name.as_str()) == e.name.as_deref()
                    && Some(r.version.as_str()) == e.version.as_deref()
                    && r.commit.as_ref().is_none_or(|c| c.seq == e.seq)
            });
            if !found {
                report.add(
                    format!("{ledger_at}:{}", e.seq),
                    format!(
                        "records the import of {} {} but the store holds no such record (record removed, or entry rewritten)",
                        e.name.as_deref().unwrap_or("?"),
                        e.version.as_deref().unwrap_or("?")
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Staged sets up to this many files are synced file by file.
const PER_FILE_SYNC_MAX: usize = 64;

/// Writes staged files back while verification is still staging more, so
/// that `sync_staged` before the commit finds little left to write (10k
/// small blobs: its `syncfs` went from about 110 ms to under 1 ms). One
/// thread calls `syncfs(2)` on the staging directory's file system, pausing
/// 20 ms between calls, until `finish`. Only for a set that `sync_staged`
/// syncs with one `syncfs` (more than `PER_FILE_SYNC_MAX` files): a few
/// large files are written back by [`StagedFile`]'s early syncs, and nothing
/// else on the file system is waited for.
///
/// Its handle on the directory is opened before anything is staged, so a
/// write-back error seen by any of its calls is one `finish` returns; one
/// met after its last call is still unseen, and `sync_staged` reports it.
pub(crate) struct Flusher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Flusher {
    /// Starts one for `count` files to be staged in `dir`, if that is many.
    pub(crate) fn start(dir: &Path, count: usize) -> Result<Option<Flusher>> {
        use std::sync::atomic::Ordering;
        if count <= PER_FILE_SYNC_MAX {
            return Ok(None);
        }
        let d = fs_err::File::open(dir)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("airlock-flush".into())
            .spawn(move || {
                let mut first = Ok(());
                while !stopped.load(Ordering::Acquire) {
                    if let Err(e) = rustix::fs::syncfs(&d) {
                        first = first.and(Err(std::io::Error::from(e)));
                    }
                    std::thread::park_timeout(std::time::Duration::from_millis(20));
                }
                first
            })?;
        Ok(Some(Flusher {
            stop,
            thread: Some(thread),
        }))
    }

    /// Stops the thread; the first error any of its calls met.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.end().map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("writing staged blobs back to disk: {e}"),
            ))
        })
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the flush thread panicked")))
            }
            None => Ok(()),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// Makes every staged file in `dir` durable before the commit. A few files
/// (the large-file case) are synced each (`fdatasync`, in parallel): their
/// data was mostly written already by [`StagedFile`]'s early syncs, and
/// nothing else on the filesystem is waited for. More files cost one
/// `syncfs(2)` of the filesystem holding them, not one sync per file (10k
/// small blobs: one sync, not 10k).
pub(crate) fn sync_staged(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            files.push(e.path());
            if files.len() > PER_FILE_SYNC_MAX {
                let d = fs_err::File::open(dir)?;
                rustix::fs::syncfs(&d).map_err(|e| Error::Io(std::io::Error::from(e)))?;
                return Ok(());
            }
        }
    }
    use rayon::prelude::*;
    files
        .par_iter()
        .try_for_each(|p| Ok(fs_err::File::open(p)?.sync_data()?))
}

pub(crate) fn corrupt_blob(
    at: &str,
    d: &Sha256Digest,
    size: u64,
    h: &crate::digest::Hashed,
) -> Error {
    crate::error::single(
        at.to_string(),
        format!(
            "store blob is corrupt: expected {d} ({size} bytes), found {} ({} bytes)",
            h.digest, h.size
        ),
    )
}

/// An index entry for artifact `a` named `reference`; images keep their
/// own media type and get no artifactType.
/// What the store's index takes from a record's description: its name and
/// version and each artifact's kind, names and manifest. The layers, blobs
/// and packages are skipped as they are parsed, never built: they grow with
/// the file count, and the index is rebuilt from every committed record at
/// each import (a 200k-file record's whole description took 320 ms).
#[derive(Deserialize)]
struct IndexView {
    name: String,
    version: String,
    artifacts: Vec<ArtifactHead>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactHead {
    kind: ArtifactKind,
    name: String,
    reference: String,
    artifact_type: String,
    manifest: Blob,
}

/// The index entry of an artifact (kind, name, type and manifest) named
/// `reference`, of bundle `bundle` if given.
pub(crate) fn index_entry(
    kind: ArtifactKind,
    name: &str,
    artifact_type: &str,
    manifest: &Blob,
    reference: String,
    bundle: Option<&Sha256Digest>,
) -> Descriptor {
    let mut annotations = HashMap::from([(REF_NAME.to_string(), reference)]);
    if let Some(id) = bundle {
        annotations.insert(BUNDLE_ID.to_string(), id.hex());
    }
    let mut desc = if kind == ArtifactKind::Image {
        annotations.insert(IMAGE_REFERENCE.to_string(), name.to_string());
        annotations.insert(IMAGE_DIGEST.to_string(), manifest.digest.oci());
        Descriptor::new(
            MediaType::from(manifest.media_type.as_str()),
            manifest.size,
            crate::bundle::oci_digest(&manifest.digest),
        )
    } else {
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            manifest.size,
            crate::bundle::oci_digest(&manifest.digest),
        );
        d.set_artifact_type(Some(MediaType::Other(artifact_type.to_string())));
        d
    };
    desc.set_annotations(Some(annotations));
    desc
}

/// The name of a bundle's artifact in the store's shared index.
pub fn store_ref(name: &str, version: &str, reference: &str) -> String {
    format!("{name}/{}/{reference}", ref_component(version))
}
