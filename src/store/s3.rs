//! The object-store backend: `--store s3://BUCKET/PREFIX` on any
//! S3-compatible server (AWS S3, MinIO, Ceph RGW, …) through the
//! `object_store` crate. Endpoint, region and credentials come from the
//! standard AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_ALLOW_HTTP`); they are never shown: messages name the store as
//! `s3://BUCKET/PREFIX` and any credential text in a server's reply is masked.
//!
//! ```text
//! PREFIX/oci/{oci-layout,index.json}       the store's OCI index
//! PREFIX/oci/blobs/sha256/<hex>            blobs, uploaded only once verified
//! PREFIX/bundles/<name>/<version>/<file>   a record; record.json written last,
//!                                          with If-None-Match: * (create once)
//! PREFIX/ledger/<seq, 20 digits>           one ledger line, If-None-Match: *
//! PREFIX/ledger.head                       the commit point, If-Match: <etag>
//! PREFIX/lock                              the writers' lease (If-None-Match: *)
//! PREFIX/staging/<id>.json                 a multipart upload in flight
//! ```
//!
//! Writers on different hosts are serialized by the lease object: created
//! with `If-None-Match: *`, renewed by its holder with `If-Match`, taken
//! over only when expired (or, on the same host, when its process is gone).
//! The commit itself does not trust the lease: each ledger line is created
//! once and the head moves only by compare-and-swap on its ETag, so a
//! writer that lost its lease fails at the commit point instead of
//! overwriting another's commit.
//!
//! Blobs are verified into a local staging directory (in `TMPDIR`) by
//! `verify`, then uploaded under their final key: in one PUT when small,
//! else as a multipart upload of [`PART`]-sized parts read from the file
//! (at most [`PARTS_IN_FLIGHT`] in memory), so no unverified byte is ever
//! under a blob's key. A multipart upload is announced by a marker under
//! `staging/` before its first part; recovery (under the lease) aborts the
//! uploads its markers name and deletes the tag files of records that never
//! got their `record.json`, so a killed import leaves nothing billable.

use std::io::Read;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig, UpdateVersion};

use super::backend::{BlobStore, Guard, MetaStore, RecordFile};
use crate::bundle::OCI_LAYOUT_CONTENT;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Size of one multipart part (S3's minimum is 5 MiB).
pub const PART: usize = 8 << 20;
/// Parts read and uploading at once: bounds memory to PART × this.
pub const PARTS_IN_FLIGHT: usize = 4;
/// A lease not renewed for this long is stale.
const LEASE: Duration = Duration::from_secs(60);
const LOCAL_STAGING: &str = ".airlock-s3-";

#[derive(Clone)]
pub struct S3 {
    shown: String,
    inner: std::result::Result<Arc<Inner>, String>,
}

struct Inner {
    rt: tokio::runtime::Runtime,
    s3: AmazonS3,
    bucket: String,
    prefix: String,
    /// Values that must never appear in a message.
    secrets: Vec<String>,
    /// The head's bytes and ETag as last read, for compare-and-swap.
    head: Mutex<Option<(Vec<u8>, UpdateVersion)>>,
}

/// Is `s` an object-store location (`s3://…`)?
pub fn is_url(s: &str) -> bool {
    s.starts_with("s3://")
}

impl S3 {
    /// The store at `url` (`s3://BUCKET` or `s3://BUCKET/PREFIX`). A bad
    /// URL or configuration is reported by the first operation.
    pub fn new(url: &str) -> S3 {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/').to_string();
        let shown = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let inner = Self::connect(bucket, &prefix).map_err(|e| format!("{shown}: {e}"));
        S3 { shown, inner }
    }

    fn connect(bucket: &str, prefix: &str) -> std::result::Result<Arc<Inner>, String> {
        if bucket.is_empty() {
            return Err("no bucket named; use --store s3://BUCKET/PREFIX".into());
        }
        if !prefix.is_empty() && Path::parse(prefix).is_err() {
            return Err(format!(
                "{prefix:?} is not a usable key prefix (empty, '.' or '..' segments)"
            ));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secrets: Vec<String> = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter(|v| v.len() >= 4)
        .collect();
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // AWS_REGION is the SDKs' name; object_store reads AWS_DEFAULT_REGION.
        if let Ok(r) = std::env::var("AWS_REGION") {
            b = b.with_region(r);
        }
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let s3 = b.with_retry(retry).build().map_err(|e| {
            let msg = mask(&e.to_string(), &secrets);
            format!("cannot configure the S3 client from the AWS_* environment: {msg}")
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("airlock-s3")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client: {e}"))?;
        Ok(Arc::new(Inner {
            rt,
            s3,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            secrets,
            head: Mutex::new(None),
        }))
    }

    fn inner(&self) -> Result<&Arc<Inner>> {
        self.inner.as_ref().map_err(|e| Error::Usage(e.clone()))
    }
}

impl Inner {
    fn key(&self, rel: &str) -> Result<Path> {
        let full = if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        };
        Path::parse(&full).map_err(|e| Error::Usage(format!("{full:?}: not an object key: {e}")))
    }

    fn shown(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/{rel}", self.bucket)
        } else {
            format!("s3://{}/{}/{rel}", self.bucket, self.prefix)
        }
    }

    /// Runs `fut` on this backend's runtime, also when called from inside
    /// another runtime (push runs in the registry client's).
    fn run<F: std::future::Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(fut))
                    .join()
                    .expect("S3 request thread")
            })
        } else {
            self.rt.block_on(fut)
        }
    }

    /// An object-store error as one clear message naming `what` (never a
    /// credential): exit 2.
    fn err(&self, what: &str, e: object_store::Error) -> Error {
        use object_store::Error as E;
        let text = mask(&e.to_string(), &self.secrets);
        let denied = "access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), and that they may use this bucket";
        let hint = if text.contains("NoSuchBucket") {
            format!(
                "bucket {} does not exist (create it, or check --store and AWS_ENDPOINT_URL)",
                self.bucket
            )
        } else if matches!(e, E::Unauthenticated { .. } | E::PermissionDenied { .. })
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
            || text.contains("AccessDenied")
        {
            denied.to_string()
        } else {
            text
        };
        Error::Usage(format!("{what}: {hint}"))
    }

    async fn get_opt(&self, rel: &str) -> Result<Option<(Vec<u8>, UpdateVersion)>> {
        let key = self.key(rel)?;
        match self.s3.get(&key).await {
            Ok(r) => {
                let v = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(|e| self.err(&self.shown(rel), e))?;
                Ok(Some((bytes.to_vec(), v)))
            }
            Err(object_store::Error::NotFound { source, .. })
                if !source.to_string().contains("NoSuchBucket") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.err(&self.shown(rel), e)),
        }
    }

    fn get(&self, rel: &str) -> Result<Option<(Vec<u8>, UpdateVersion)>> {
        self.run(self.get_opt(rel))
    }

    fn put(&self, rel: &str, bytes: &[u8], mode: PutMode) -> Result<UpdateVersion> {
        let key = self.key(rel)?;
        let payload = PutPayload::from(bytes.to_vec());
        let r = self
            .run(self.s3.put_opts(&key, payload, mode.into()))
            .map_err(|e| self.conflict_or(rel, e))?;
        Ok(UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        })
    }

    /// A failed precondition as an "already exists / changed" I/O error
    /// (what the commit protocol expects), anything else as [`Self::err`].
    fn conflict_or(&self, rel: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::AlreadyExists { .. } => Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{}: already exists (written by another writer)",
                    self.shown(rel)
                ),
            )),
            object_store::Error::Precondition { .. } => Error::Io(std::io::Error::other(format!(
                "{}: changed by another writer",
                self.shown(rel)
            ))),
            e => self.err(&self.shown(rel), e),
        }
    }

    fn exists(&self, rel: &str) -> Result<bool> {
        let key = self.key(rel)?;
        match self.run(self.s3.head(&key)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { source, .. })
                if !source.to_string().contains("NoSuchBucket") =>
            {
                Ok(false)
            }
            Err(e) => Err(self.err(&self.shown(rel), e)),
        }
    }

    /// Keys (relative to the prefix) under `rel/`.
    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let key = self.key(rel)?;
        let metas: Vec<object_store::ObjectMeta> = self
            .run(self.s3.list(Some(&key)).try_collect())
            .map_err(|e| self.err(&self.shown(rel), e))?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(String::from))
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, rel: &str) -> Result<()> {
        let key = self.key(rel)?;
        match self.run(self.s3.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(&self.shown(rel), e)),
        }
    }

    /// Fails with one clear message unless the bucket exists and the
    /// credentials may list it.
    fn probe(&self, shown: &str) -> Result<()> {
        let key = self.key("oci")?;
        self.run(self.s3.list_with_delimiter(Some(&key)))
            .map(|_| ())
            .map_err(|e| self.err(shown, e))
    }

    /// Uploads the verified file `staged` to `rel` in parts, announced by a
    /// marker under `staging/` that recovery uses to abort it if we die.
    async fn upload_parts(&self, rel: &str, staged: &FsPath, size: u64) -> Result<()> {
        let key = self.key(rel)?;
        let shown = self.shown(rel);
        let id = self
            .s3
            .create_multipart(&key)
            .await
            .map_err(|e| self.err(&shown, e))?;
        let marker = format!("staging/{}.json", random_hex());
        let note = serde_json::json!({"key": key.as_ref(), "uploadId": id});
        let mkey = self.key(&marker)?;
        self.s3
            .put(&mkey, PutPayload::from(note.to_string().into_bytes()))
            .await
            .map_err(|e| self.err(&self.shown(&marker), e))?;
        let res = async {
            let file = std::fs::File::open(staged)?;
            let parts = size.div_ceil(PART as u64) as usize;
            let ids: Vec<object_store::multipart::PartId> = futures_util::stream::iter(0..parts)
                .map(|i| {
                    let file = &file;
                    let key = &key;
                    let id = &id;
                    let shown = &shown;
                    async move {
                        let at = i as u64 * PART as u64;
                        let len = (size - at).min(PART as u64) as usize;
                        let mut buf = vec![0u8; len];
                        read_at(file, &mut buf, at)?;
                        let part = self
                            .s3
                            .put_part(key, id, i, PutPayload::from(buf))
                            .await
                            .map_err(|e| self.err(shown, e))?;
                        if i == 0 {
                            super::failpoint("s3-part")?;
                        }
                        Ok::<_, Error>(part)
                    }
                })
                .buffered(PARTS_IN_FLIGHT)
                .try_collect()
                .await?;
            self.s3
                .complete_multipart(&key, &id, ids)
                .await
                .map_err(|e| self.err(&shown, e))?;
            Ok::<_, Error>(())
        }
        .await;
        if res.is_err() {
            let _ = self.s3.abort_multipart(&key, &id).await;
        }
        let _ = self.s3.delete(&mkey).await;
        res
    }
}

/// Replaces every credential value in `text` by `***`.
fn mask(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        t = t.replace(s.as_str(), "***");
    }
    t
}

fn random_hex() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("random bytes");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, at)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn blob_rel(d: &Sha256Digest) -> String {
    format!("oci/blobs/sha256/{}", d.hex())
}

fn ledger_rel(seq: u64) -> String {
    format!("ledger/{seq:020}")
}

/// A record's name or version as one key segment.
fn component(s: &str) -> Result<&str> {
    if s.is_empty()
        || s == "."
        || s == ".."
        || s.contains(['/', '\\', '\0'])
        || s.chars().any(char::is_control)
    {
        return Err(Error::Usage(format!(
            "{s:?} cannot name a bundle record (not a single key segment)"
        )));
    }
    Ok(s)
}

fn record_rel(name: &str, version: &str) -> Result<String> {
    Ok(format!(
        "bundles/{}/{}",
        component(name)?,
        component(version)?
    ))
}

// ------------------------------------------------------------ the lease

#[derive(serde::Serialize, serde::Deserialize)]
struct Lease {
    owner: String,
    host: String,
    pid: u32,
    expires: u64,
}

struct Held {
    inner: Arc<Inner>,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    renew: Option<std::thread::JoinHandle<()>>,
    version: Arc<Mutex<UpdateVersion>>,
}
impl Guard for Held {}

impl Drop for Held {
    fn drop(&mut self) {
        {
            let (m, c) = &*self.stop;
            *m.lock().expect("lease") = true;
            c.notify_all();
        }
        if let Some(t) = self.renew.take() {
            let _ = t.join();
        }
        // Released only if it is still ours (not taken over as stale).
        let ours = self.version.lock().expect("lease").e_tag.clone();
        if let Ok(Some((_, v))) = self.inner.get("lock") {
            if v.e_tag == ours {
                let _ = self.inner.delete("lock");
            }
        }
    }
}

fn lease_bytes(owner: &str) -> Vec<u8> {
    serde_json::to_vec(&Lease {
        owner: owner.to_string(),
        host: hostname(),
        pid: std::process::id(),
        expires: now_secs() + LEASE.as_secs(),
    })
    .expect("serializes")
}

fn stale(bytes: &[u8]) -> bool {
    let Ok(l) = serde_json::from_slice::<Lease>(bytes) else {
        return true;
    };
    if l.expires < now_secs() {
        return true;
    }
    l.host == hostname() && l.pid != 0 && !FsPath::new(&format!("/proc/{}", l.pid)).exists()
}

impl S3 {
    fn take_lease(&self, wait: bool) -> Result<Option<Box<dyn Guard>>> {
        let inner = self.inner()?.clone();
        let owner = random_hex();
        let mut delay = Duration::from_millis(100);
        let got = loop {
            match inner.put("lock", &lease_bytes(&owner), PutMode::Create) {
                Ok(v) => break v,
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            if let Some((bytes, v)) = inner.get("lock")? {
                if stale(&bytes) {
                    match inner.put("lock", &lease_bytes(&owner), PutMode::Update(v)) {
                        Ok(v) => break v,
                        Err(Error::Io(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
            } else {
                continue;
            }
            if !wait {
                return Ok(None);
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        let version = Arc::new(Mutex::new(got));
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let renew = {
            let (inner, version, stop) = (inner.clone(), version.clone(), stop.clone());
            std::thread::spawn(move || loop {
                let (m, c) = &*stop;
                let g = m.lock().expect("lease");
                let (g, _) = c.wait_timeout_while(g, LEASE / 4, |s| !*s).expect("lease");
                if *g {
                    return;
                }
                drop(g);
                let v = version.lock().expect("lease").clone();
                if let Ok(nv) = inner.put("lock", &lease_bytes(&owner), PutMode::Update(v)) {
                    *version.lock().expect("lease") = nv;
                }
            })
        };
        Ok(Some(Box::new(Held {
            inner,
            stop,
            renew: Some(renew),
            version,
        })))
    }
}

// ------------------------------------------------------------ blobs

/// Streams one object: a thread drives the download on the backend's
/// runtime and hands chunks over a small channel, so reading works from
/// any thread, inside another runtime too.
struct Download {
    rx: std::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    done: bool,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => self.chunk = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

impl BlobStore for S3 {
    fn has(&self, d: &Sha256Digest) -> Result<bool> {
        self.inner()?.exists(&blob_rel(d))
    }

    fn put_verified(&self, d: &Sha256Digest, staged: &FsPath) -> Result<bool> {
        let inner = self.inner()?;
        let rel = blob_rel(d);
        if inner.exists(&rel)? {
            return Ok(false);
        }
        let size = fs_err::metadata(staged)?.len();
        if size <= PART as u64 {
            // Content-addressed and verified: a concurrent identical put is harmless.
            inner.put(&rel, &fs_err::read(staged)?, PutMode::Overwrite)?;
        } else {
            inner.run(inner.upload_parts(&rel, staged, size))?;
        }
        let _ = std::fs::remove_file(staged);
        Ok(true)
    }

    fn sync(&self) -> Result<()> {
        // A completed PUT is durable.
        Ok(())
    }

    fn open(&self, d: &Sha256Digest) -> Result<Box<dyn Read + Send>> {
        let inner = self.inner()?.clone();
        let rel = blob_rel(d);
        let key = inner.key(&rel)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let first = inner
            .run(inner.s3.get(&key))
            .map_err(|e| inner.err(&inner.shown(&rel), e))?;
        std::thread::spawn(move || {
            let secrets = inner.secrets.clone();
            inner.rt.block_on(async move {
                let mut s = first.into_stream();
                while let Some(c) = s.next().await {
                    let c = c.map_err(|e| std::io::Error::other(mask(&e.to_string(), &secrets)));
                    let stop = c.is_err();
                    if tx.send(c).is_err() || stop {
                        return;
                    }
                }
            })
        });
        Ok(Box::new(Download {
            rx,
            chunk: bytes::Bytes::new(),
            done: false,
        }))
    }

    fn list(&self) -> Result<Vec<Sha256Digest>> {
        let inner = self.inner()?;
        Ok(inner
            .list("oci/blobs/sha256")?
            .iter()
            .filter_map(|k| k.strip_prefix("oci/blobs/sha256/"))
            .filter_map(|h| h.parse().ok())
            .collect())
    }

    fn locate(&self, d: &Sha256Digest) -> String {
        format!("{}/{}", self.shown, blob_rel(d))
    }
}

// ------------------------------------------------------------ metadata

impl MetaStore for S3 {
    fn check_exists(&self) -> Result<()> {
        let inner = self.inner()?;
        inner.probe(&self.shown)?;
        if !inner.exists("oci/oci-layout")? {
            return Err(Error::Usage(format!(
                "{}: no such store (check --store; a store is created by the first import)",
                self.shown
            )));
        }
        Ok(())
    }

    fn create(&self) -> Result<()> {
        let inner = self.inner()?;
        inner.probe(&self.shown)?;
        if !inner.exists("oci/oci-layout")? {
            match inner.put(
                "oci/oci-layout",
                OCI_LAYOUT_CONTENT.as_bytes(),
                PutMode::Create,
            ) {
                Ok(_) => {}
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn lock(&self, wait: bool) -> Result<Option<Box<dyn Guard>>> {
        self.take_lease(wait)
    }

    fn staging(&self) -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix(&format!("{LOCAL_STAGING}{}-", std::process::id()))
            .tempdir()?)
    }

    fn clean_staging(&self) -> Result<usize> {
        let inner = self.inner()?;
        let mut n = 0;
        // Multipart uploads of killed imports.
        for m in inner.list("staging")? {
            if let Some((bytes, _)) = inner.get(&m)? {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    if let (Some(k), Some(id)) = (v["key"].as_str(), v["uploadId"].as_str()) {
                        if let Ok(key) = Path::parse(k) {
                            let _ = inner.run(inner.s3.abort_multipart(&key, &id.to_string()));
                        }
                    }
                }
            }
            inner.delete(&m)?;
            n += 1;
        }
        // Tag files of records that never got their record.json.
        let keys = inner.list("bundles")?;
        let with_record: std::collections::HashSet<&str> = keys
            .iter()
            .filter_map(|k| k.strip_suffix(&format!("/{}", super::RECORD)))
            .collect();
        let mut orphans = std::collections::BTreeSet::new();
        for k in &keys {
            let parts: Vec<&str> = k.splitn(4, '/').collect();
            if parts.len() == 4 {
                let rec = format!("bundles/{}/{}", parts[1], parts[2]);
                if !with_record.contains(rec.as_str()) {
                    inner.delete(k)?;
                    orphans.insert(rec);
                }
            }
        }
        n += orphans.len();
        // Local staging of killed processes on this host.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(LOCAL_STAGING) else {
                    continue;
                };
                let pid = rest.split('-').next().unwrap_or("");
                if !pid.is_empty()
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && !FsPath::new(&format!("/proc/{pid}")).exists()
                    && std::fs::remove_dir_all(e.path()).is_ok()
                {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn record_names(&self) -> Result<Vec<(String, String)>> {
        let inner = self.inner()?;
        let mut out = Vec::new();
        for k in inner.list("bundles")? {
            let parts: Vec<&str> = k.split('/').collect();
            if parts.len() == 4 && parts[3] == super::RECORD {
                out.push((parts[1].to_string(), parts[2].to_string()));
            }
        }
        Ok(out)
    }

    fn record_file(&self, name: &str, version: &str, file: &str) -> Result<Option<Vec<u8>>> {
        let rel = format!("{}/{file}", record_rel(name, version)?);
        Ok(self.inner()?.get(&rel)?.map(|(b, _)| b))
    }

    fn record_dir(&self, name: &str, version: &str, dir: &str) -> Result<Vec<String>> {
        let rec = record_rel(name, version)?;
        let under = format!("{rec}/{dir}/");
        Ok(self
            .inner()?
            .list(&format!("{rec}/{dir}"))?
            .iter()
            .filter_map(|k| k.strip_prefix(&under))
            .filter(|f| !f.is_empty() && !f.contains('/'))
            .map(|f| format!("{dir}/{f}"))
            .collect())
    }

    fn store_id(&self) -> Result<Option<String>> {
        Ok(self
            .inner()?
            .get("store-id")?
            .map(|(b, _)| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// Created once, with a conditional put: two hosts racing to give the
    /// store an identity cannot both win.
    fn put_store_id(&self, id: &str) -> Result<()> {
        self.inner()?
            .put("store-id", format!("{id}\n").as_bytes(), PutMode::Create)
            .map(|_| ())
    }

    fn put_record(
        &self,
        name: &str,
        version: &str,
        files: Vec<(String, RecordFile)>,
    ) -> Result<()> {
        let inner = self.inner()?;
        let rec = record_rel(name, version)?;
        let last = format!("{rec}/{}", super::RECORD);
        if inner.exists(&last)? {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: a record already exists", inner.shown(&rec)),
            )));
        }
        let mut record = None;
        for (rel, file) in files {
            // One file's bytes at a time: an object is put whole.
            let bytes = file.into_bytes()?;
            if rel == super::RECORD {
                record = Some(bytes);
                continue;
            }
            inner.put(&format!("{rec}/{rel}"), &bytes, PutMode::Overwrite)?;
        }
        let record = record.expect("record.json is among the files");
        inner.put(&last, &record, PutMode::Create)?;
        Ok(())
    }

    fn remove_record(&self, name: &str, version: &str) -> Result<()> {
        let inner = self.inner()?;
        let rec = record_rel(name, version)?;
        // record.json first: the record disappears at once; the rest is
        // what clean_staging removes if a kill interrupts this.
        inner.delete(&format!("{rec}/{}", super::RECORD))?;
        for k in inner.list(&rec)? {
            inner.delete(&k)?;
        }
        Ok(())
    }

    fn locate_record(&self, name: &str, version: &str) -> String {
        format!("{}/bundles/{name}/{version}", self.shown)
    }

    fn ledger_lines(&self) -> Result<Vec<String>> {
        let inner = self.inner()?;
        let keys = inner.list("ledger")?;
        let fetched: Vec<Option<(Vec<u8>, UpdateVersion)>> = inner.run(
            futures_util::stream::iter(keys.iter())
                .map(|k| inner.get_opt(k))
                .buffered(16)
                .try_collect(),
        )?;
        let mut out = Vec::new();
        for (k, got) in keys.iter().zip(fetched) {
            // Keys are ledger/<seq>; a line missing since the listing ends the ledger.
            let Some((bytes, _)) = got else { break };
            if k.strip_prefix("ledger/")
                .and_then(|s| s.parse::<u64>().ok())
                != Some(out.len() as u64 + 1)
            {
                break;
            }
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(out)
    }

    fn ledger_append(&self, seq: u64, line: &str) -> Result<()> {
        let inner = self.inner()?;
        if seq > 1 && !inner.exists(&ledger_rel(seq - 1))? {
            return Err(Error::Io(std::io::Error::other(format!(
                "{}: has no entry {}, cannot append entry {seq}",
                inner.shown("ledger"),
                seq - 1
            ))));
        }
        inner.put(&ledger_rel(seq), line.as_bytes(), PutMode::Create)?;
        Ok(())
    }

    fn ledger_truncate(&self, count: u64) -> Result<()> {
        let inner = self.inner()?;
        for k in inner.list("ledger")? {
            let seq = k
                .strip_prefix("ledger/")
                .and_then(|s| s.parse::<u64>().ok());
            if seq.is_none_or(|s| s > count) {
                inner.delete(&k)?;
            }
        }
        Ok(())
    }

    fn head(&self) -> Result<Option<Vec<u8>>> {
        let inner = self.inner()?;
        let got = inner.get("ledger.head")?;
        let bytes = got.as_ref().map(|(b, _)| b.clone());
        *inner.head.lock().expect("head") = got;
        Ok(bytes)
    }

    fn swap_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<()> {
        let inner = self.inner()?;
        let changed = || {
            Error::Io(std::io::Error::other(format!(
                "{}: changed by another writer",
                inner.shown("ledger.head")
            )))
        };
        let mode = match expected {
            None => PutMode::Create,
            Some(want) => {
                let cached = inner.head.lock().expect("head").clone();
                let (bytes, v) = match cached {
                    Some((b, v)) if b == want => (b, v),
                    _ => inner.get("ledger.head")?.ok_or_else(changed)?,
                };
                if bytes != want {
                    return Err(changed());
                }
                PutMode::Update(v)
            }
        };
        match inner.put("ledger.head", new, mode) {
            Ok(v) => {
                *inner.head.lock().expect("head") = Some((new.to_vec(), v));
                Ok(())
            }
            Err(Error::Io(_)) => Err(changed()),
            Err(e) => Err(e),
        }
    }

    fn locate_ledger(&self) -> (String, String) {
        (
            format!("{}/ledger", self.shown),
            format!("{}/ledger.head", self.shown),
        )
    }

    fn index(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.inner()?.get("oci/index.json")?.map(|(b, _)| b))
    }

    fn put_index(&self, bytes: &[u8]) -> Result<()> {
        self.inner()?
            .put("oci/index.json", bytes, PutMode::Overwrite)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_in_messages() {
        let secrets = vec!["AKIAEXAMPLE".to_string(), "s3cr3t/value".to_string()];
        assert_eq!(
            mask(
                "<AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId> key s3cr3t/value",
                &secrets
            ),
            "<AWSAccessKeyId>***</AWSAccessKeyId> key ***"
        );
    }

    #[test]
    fn a_lease_is_stale_when_expired_or_its_local_process_is_gone() {
        let lease = |host: String, pid: u32, expires: u64| {
            serde_json::to_vec(&Lease {
                owner: "o".into(),
                host,
                pid,
                expires,
            })
            .unwrap()
        };
        let later = now_secs() + 60;
        assert!(!stale(&lease(hostname(), std::process::id(), later)));
        assert!(stale(&lease(
            hostname(),
            std::process::id(),
            now_secs() - 1
        )));
        // pid_max is below 2^22 on Linux: no such process.
        assert!(stale(&lease(hostname(), 4_194_305, later)));
        assert!(!stale(&lease("elsewhere".into(), 4_194_305, later)));
        assert!(stale(b"not json"));
    }

    #[test]
    fn urls_and_record_names() {
        let s = S3::new("s3://bucket/a/b/");
        assert_eq!(s.shown, "s3://bucket/a/b");
        assert!(S3::new("s3:///x").inner.is_err());
        assert!(record_rel("..", "1").is_err());
        assert!(record_rel("a/b", "1").is_err());
        assert_eq!(record_rel("demo", "1.0.0").unwrap(), "bundles/demo/1.0.0");
        assert_eq!(ledger_rel(7), "ledger/00000000000000000007");
    }
}
