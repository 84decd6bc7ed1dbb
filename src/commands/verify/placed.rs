//! Large payload entries of a plain tar, or of a tar.zst where zstd frames
//! of raw blocks hold them, hashed in parallel where they lie.
//!
//! The walk (`source::walk_tar_hashing_heads`) rules on every entry in
//! order, as for any tar; a payload entry of at least [`PARALLEL_AT`] bytes
//! whose place in the file it knows (`Item::Payload { at: Some(..) }`: one
//! offset in a plain tar, the raw blocks' extents in a tar.zst) is
//! handed, once its size passed the same check the stream makes, to a small
//! pool of threads that read it by position (`FileExt::read_at`, one
//! `COPY_BUFFER` per thread) and run on those bytes exactly what the stream
//! would: `take_payload` (sha256, kept bytes, sha512, folds, staging), the
//! content probe, `judge`. The walk meanwhile seeks past the entry to the
//! next header. Every finding is the stream's, about the same entry; they
//! are merged once the pool is done, before anything looks at the report.

use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use super::{judge, staged_path, take_payload, tap, Expected, Kept, Staging, Taken};
use crate::error::{Error, Report, Result};
use crate::progress::Progress;
use crate::source::Layout;

/// Payload entries at least this large are hashed by the pool; smaller
/// ones stream through the walk's own buffer.
pub(super) const PARALLEL_AT: u64 = 4 << 20;

/// A payload entry of at most this many bytes may be read whole by the walk
/// and handed to the pool as bytes ([`Batch`]): many small files are then
/// hashed and probed on every core while the walk reads on.
pub(super) const SMALL_MAX: u64 = 256 << 10;

/// A [`Batch`] is sent once it holds this many bytes or [`BATCH_ENTRIES`]
/// entries: the channel is crossed once per batch, not per file, and at
/// most a few batches are in flight (the channel holds one per thread).
const BATCH_BYTES: usize = 512 << 10;
const BATCH_ENTRIES: usize = 128;

/// One entry for the pool: `size` bytes (the tar header's) where `layout`
/// says.
pub(super) struct Job {
    pub path: String,
    pub exp: Expected,
    pub file: std::fs::File,
    pub layout: Layout,
    pub size: u64,
}

/// Small entries the walk read whole, each with what the stream would have
/// checked it against.
#[derive(Default)]
pub(super) struct Batch {
    entries: Vec<(String, Expected, Vec<u8>)>,
    bytes: usize,
}

impl Batch {
    /// Adds an entry; whether the batch is full and should be sent.
    pub(super) fn push(&mut self, path: String, exp: Expected, bytes: Vec<u8>) -> bool {
        self.bytes += bytes.len();
        self.entries.push((path, exp, bytes));
        self.bytes >= BATCH_BYTES || self.entries.len() >= BATCH_ENTRIES
    }
}

/// What the pool's threads take: one large entry read where it lies, or a
/// batch of small ones.
enum Work {
    Placed(Job),
    Batch(Batch),
}

/// What an entry left behind: its findings, its kept bytes once verified.
type Done = (String, Expected, Report, Option<Taken>);

/// `size` bytes of `file` where `layout` puts them, read by position. A
/// read error is remembered: it is the tar's (truncated or unreadable), not
/// the visitor's.
struct PlacedReader<'a> {
    file: &'a std::fs::File,
    layout: &'a Layout,
    /// Bytes read so far, of `size`.
    done: u64,
    size: u64,
    /// In a tar.zst's raw blocks: the extent being read, and how far.
    extent: usize,
    into: u64,
    failed: bool,
}

impl PlacedReader<'_> {
    /// Where the next byte lies, and how many from there are contiguous.
    fn next_run(&mut self) -> Option<(u64, u64)> {
        match self.layout {
            Layout::At(offset) => Some((offset.checked_add(self.done)?, u64::MAX)),
            Layout::Blocks(extents) => {
                while self.extent < extents.len() && self.into >= extents[self.extent].bytes() {
                    self.extent += 1;
                    self.into = 0;
                }
                let e = extents.get(self.extent)?;
                let (piece, within) = (self.into / e.len, self.into % e.len);
                Some((e.at + piece * e.stride + within, e.len - within))
            }
        }
    }
}

impl Read for PlacedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.done;
        let Some((at, run)) = self.next_run().filter(|_| left > 0) else {
            return Ok(0);
        };
        let want = (buf.len() as u64).min(left).min(run) as usize;
        let n = self
            .file
            .read_at(&mut buf[..want], at)
            .inspect_err(|e| self.failed |= e.kind() != io::ErrorKind::Interrupted)?;
        self.done += n as u64;
        self.into += n as u64;
        Ok(n)
    }
}

/// What the pool's threads leave for the walk's side: each entry's
/// outcome, and whether the walk should stop.
#[derive(Default)]
pub(super) struct Shared {
    done: Mutex<Vec<Result<Done>>>,
    /// Set when an entry failed where the stream would have stopped: the
    /// walk stops at its next entry.
    stop: AtomicBool,
    /// Whether an entry that verified and left nothing behind (no finding,
    /// nothing kept) is dropped at once rather than kept for `merge`, which
    /// then does not list it: memory stays flat whatever the entry count.
    drop_quiet: bool,
}

impl Shared {
    /// A `Shared` whose `merge` lists only the entries that left something
    /// behind (see `drop_quiet`).
    pub(super) fn dropping_quiet() -> Shared {
        Shared {
            drop_quiet: true,
            ..Shared::default()
        }
    }

    /// Keeps what an entry left behind (see `drop_quiet`).
    fn keep(&self, out: Result<Done>) {
        if out.is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
        let quiet = matches!(&out, Ok((_, _, r, Some(t))) if r.is_ok() && t.is_empty());
        if quiet && self.drop_quiet {
            return;
        }
        if let Ok(mut d) = self.done.lock() {
            d.push(out);
        }
    }

    /// Whether an entry failed so that the stream would have stopped.
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Once the pool's threads ended: merges what the entries left behind
    /// (findings, kept bytes) in the order of their paths, and returns the
    /// paths that verified; an error (one the stream would have returned)
    /// wins.
    pub(super) fn merge(self, report: &mut Report, kept: &mut Kept) -> Result<Vec<String>> {
        let mut done = self.done.into_inner().map_err(|_| poisoned())?;
        if let Some(i) = done.iter().position(|d| d.is_err()) {
            return done.swap_remove(i).map(|_| Vec::new());
        }
        let mut done: Vec<Done> = done.into_iter().filter_map(|d| d.ok()).collect();
        done.sort_by(|a, b| a.0.cmp(&b.0));
        let mut verified = Vec::new();
        for (path, exp, r, taken) in done {
            report.merge(r);
            if let Some(t) = taken {
                kept.add(&path, &exp, t);
                verified.push(path);
            }
        }
        Ok(verified)
    }
}

/// The pool's queue: `send` entries while the walk runs; dropping it lets
/// the threads end once the queue is empty (the scope joins them).
pub(super) struct Pool {
    jobs: mpsc::SyncSender<Work>,
}

impl Pool {
    /// Starts as many threads as there are cores (at most 4) in `scope`.
    pub(super) fn start<'s, 'e: 's>(
        scope: &'s std::thread::Scope<'s, 'e>,
        shared: &'e Shared,
        content: Option<&'e crate::modelcheck::ContentPlan>,
        staging: Option<&'e Staging<'e>>,
        progress: &'e dyn Progress,
    ) -> Pool {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        // One entry waiting per thread at most: the walk blocks beyond that.
        let (jobs, rx) = mpsc::sync_channel::<Work>(workers);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = rx.clone();
            scope.spawn(move || loop {
                // A poisoned lock: another thread panicked; the scope
                // passes its panic on.
                let Ok(job) = rx.lock().map(|r| r.recv()) else {
                    return;
                };
                let Ok(work) = job else { return };
                match work {
                    Work::Placed(job) => {
                        shared.keep(hash(job, content, staging, progress, &shared.stop))
                    }
                    Work::Batch(batch) => {
                        for (path, exp, bytes) in batch.entries {
                            // As the stream: nothing more once an entry failed.
                            if shared.stopped() {
                                break;
                            }
                            let out =
                                check_entry(path, exp, &mut &bytes[..], content, staging, progress);
                            shared.keep(out);
                        }
                    }
                }
            });
        }
        Pool { jobs }
    }

    /// Queues an entry (blocks while every thread is busy and one waits).
    pub(super) fn send(&self, job: Job) {
        // The threads end only once this sender is dropped: it cannot fail.
        let _ = self.jobs.send(Work::Placed(job));
    }

    /// Queues a batch of small entries, if it holds any.
    pub(super) fn send_batch(&self, batch: &mut Batch) {
        if !batch.entries.is_empty() {
            let _ = self.jobs.send(Work::Batch(std::mem::take(batch)));
        }
    }
}

fn poisoned() -> Error {
    Error::Io(io::Error::other("a hashing thread panicked"))
}

/// One entry from `read`, as the stream checks it (see `verify_tar`):
/// `take_payload` (sha256, kept bytes, sha512, folds, staging), the content
/// probe, `judge`.
fn check_entry(
    path: String,
    exp: Expected,
    read: &mut dyn Read,
    content: Option<&crate::modelcheck::ContentPlan>,
    staging: Option<&Staging>,
    progress: &dyn Progress,
) -> Result<Done> {
    let mut r = Report::default();
    let mut pending = content.and_then(|c| {
        c.start(
            &path,
            exp.size,
            staged_path(&path, &exp, staging),
            staging.map(|s| s.dir),
        )
    });
    let (h, taken) = take_payload(
        &path,
        &mut tap(read, pending.as_mut().map(|p| p.probe())),
        &exp,
        staging,
        progress,
    )?;
    let mut kept = None;
    if judge(&path, &exp, &h, &mut r) {
        kept = Some(taken);
        if let (Some(c), Some(p)) = (content, pending) {
            r.merge(p.finish(c)?);
        }
    }
    Ok((path, exp, r, kept))
}

/// One large entry, read where it lies.
fn hash(
    job: Job,
    content: Option<&crate::modelcheck::ContentPlan>,
    staging: Option<&Staging>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<Done> {
    let Job {
        path,
        exp,
        file,
        layout,
        size,
    } = job;
    let mut reader = PlacedReader {
        file: &file,
        layout: &layout,
        done: 0,
        size,
        extent: 0,
        into: 0,
        failed: false,
    };
    match check_entry(path.clone(), exp, &mut reader, content, staging, progress) {
        // As the stream: the tar's own read failed; reported, and the
        // walk stops.
        Err(Error::Io(e)) if reader.failed => {
            let mut r = Report::default();
            r.add(&path, format!("truncated or corrupt tar: {e}"));
            stop.store(true, Ordering::Relaxed);
            Ok((path, exp, r, None))
        }
        done => done,
    }
}
