//! Writing a bundle directory as one tar (optionally zstd-compressed), in the
//! canonical entry order the streaming verifier relies on: tag files first,
//! then signatures and custody events, then the payload. Headers are
//! deterministic: fixed mtime, uid/gid 0, no user names, modes 0644/0755.

use std::io::{self, Read, Seek, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::bundle::MODE_FILE;
use crate::bundle::{
    BAGIT_TXT, BAG_INFO, CUSTODY_DIR, DESCRIPTION, MANIFEST, OCI_INDEX, OCI_LAYOUT, SIGNATURES_DIR,
    TAGMANIFEST, VERIFY_TXT,
};
use crate::digest::{Hashed, InspectReader, Sha256Digest};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Order of the tag files in a tar: what the verifier needs first comes first.
pub const TAR_TAG_ORDER: [&str; 6] = [
    BAGIT_TXT,
    BAG_INFO,
    DESCRIPTION,
    VERIFY_TXT,
    MANIFEST,
    TAGMANIFEST,
];

/// Lists a bundle directory's files in canonical tar order.
pub fn canonical_order(dir: &Path) -> Result<Vec<String>> {
    let mut out = head_order(dir)?;
    out.extend(
        list_dir(&dir.join(crate::bundle::BLOBS_PREFIX))?
            .into_iter()
            .map(|n| format!("{}{n}", crate::bundle::BLOBS_PREFIX)),
    );
    Ok(out)
}

/// Everything of a bundle directory that precedes the blobs in a tar: the
/// tag files, signatures and custody events, `oci-layout` and `index.json`.
pub fn head_order(dir: &Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = TAR_TAG_ORDER.iter().map(|s| s.to_string()).collect();
    for sub in [SIGNATURES_DIR, CUSTODY_DIR] {
        out.extend(
            list_dir(&dir.join(sub))?
                .into_iter()
                .map(|n| format!("{sub}/{n}")),
        );
    }
    out.push(OCI_LAYOUT.to_string());
    out.push(OCI_INDEX.to_string());
    Ok(out)
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut names: Vec<String> = fs_err::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// Appends one regular file entry with a deterministic header.
pub fn append<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    mode: u32,
    mtime: u64,
    data: &mut dyn Read,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, path, data)
}

/// Writes the files listed in `entries` as a tar into `out`, in order: each
/// from its input file when one is given (read straight into the tar, see
/// [`append_input`]), otherwise from `dir`. An iterator, so that a tar of
/// many files is never listed in memory.
pub fn write_tar<'p, W: Write>(
    dir: &Path,
    entries: impl IntoIterator<Item = (String, Option<(&'p Path, Hashed)>)>,
    out: W,
    mtime: u64,
    progress: &dyn Progress,
) -> Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    for (p, input) in entries {
        if let Some((src, expected)) = input {
            append_input(&mut b, &p, src, expected, mtime, progress)?;
            continue;
        }
        let f = fs_err::File::open(dir.join(&p))?;
        let size = f.metadata()?.len();
        let mut counted = Counting { inner: f, progress };
        append(
            &mut b,
            &p,
            size,
            crate::bundle::MODE_FILE,
            mtime,
            &mut counted,
        )?;
    }
    Ok(b.into_inner()?)
}

/// Inputs at least this large are hashed on a second thread while they are
/// written, so the hash costs no time beside the copy.
const PIPELINE_MIN: u64 = 4 << 20;
const CHUNK: usize = 1 << 20;

/// Appends the input file `src` as entry `path`, hashing it as it passes:
/// the bytes written must be exactly those hashed (and checked) before the
/// description was signed. A file that changed since refuses the pack
/// rather than produce a bundle the high side would reject.
pub fn append_input<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    src: &Path,
    expected: Hashed,
    mtime: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let mut f = fs_err::File::open(src)?;
    let (digest, size) = if expected.size >= PIPELINE_MIN {
        std::thread::scope(|s| -> Result<(Sha256Digest, u64)> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let hasher = s.spawn(move || {
                let mut h = Sha256::new();
                let mut n = 0u64;
                for chunk in rx {
                    h.update(&chunk);
                    n += chunk.len() as u64;
                }
                (Sha256Digest::of_raw(h.finalize().into()), n)
            });
            let mut tee = ChunkTee {
                inner: Counting {
                    inner: (&mut f).take(expected.size),
                    progress,
                },
                pending: Vec::with_capacity(CHUNK),
                tx: Some(tx),
            };
            let appended = append(b, path, expected.size, MODE_FILE, mtime, &mut tee);
            let flushed = tee.flush_pending();
            drop(tee);
            let got = hasher.join().expect("the hashing thread does not panic");
            appended?;
            flushed?;
            Ok(got)
        })?
    } else {
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut r = InspectReader::new(
            Counting {
                inner: (&mut f).take(expected.size),
                progress,
            },
            |bytes: &[u8]| {
                h.update(bytes);
                n += bytes.len() as u64;
            },
        );
        append(b, path, expected.size, MODE_FILE, mtime, &mut r)?;
        (Sha256Digest::of_raw(h.finalize().into()), n)
    };
    let longer = f.read(&mut [0u8; 1])? != 0;
    if digest != expected.digest || size != expected.size || longer {
        return Err(Error::Input {
            path: src.to_path_buf(),
            message: format!(
                "changed while being packed (it was {} bytes with {} when hashed); pack again once it no longer changes",
                expected.size, expected.digest
            ),
        });
    }
    Ok(())
}

/// Passes reads through, sending every byte to a hashing thread in chunks.
struct ChunkTee<R> {
    inner: R,
    pending: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl<R> ChunkTee<R> {
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        match &self.tx {
            Some(tx) if tx.send(chunk).is_ok() => Ok(()),
            _ => Err(io::Error::other("the hashing thread stopped")),
        }
    }
}

impl<R: Read> Read for ChunkTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let room = CHUNK - self.pending.len();
            let take = room.min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == CHUNK {
                self.flush_pending()?;
            }
        }
        Ok(n)
    }
}

struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Inputs at least this large get their own tar entry written before their
/// digest is known (see [`SinglePass`]): a placeholder header, the data
/// hashed as it passes on a second thread, then the header patched in place.
/// Smaller ones are read into memory and hashed first.
pub const STREAM_MIN: u64 = 1 << 20;

/// A zstd frame holding `len` bytes in one raw (stored) block: a fixed
/// size, so a tar header inside it can be patched after it was written.
const RAW_FRAME_PREFIX: usize = 10;

fn raw_frame_prefix(len: usize) -> [u8; RAW_FRAME_PREFIX] {
    debug_assert!((256..65536 + 256).contains(&len) && len <= 128 << 10);
    let fcs = ((len - 256) as u16).to_le_bytes();
    // Single segment, 2-byte content size, no checksum, no dictionary.
    let block = ((len as u32) << 3 | 1).to_le_bytes(); // last block, raw
    [
        0x28, 0xB5, 0x2F, 0xFD, 0x60, fcs[0], fcs[1], block[0], block[1], block[2],
    ]
}

/// The skippable-frame magic of the padding after a tar.zst's head frames
/// (distinct from the additions frames' [`crate::source::SKIPPABLE_MAGIC`]).
const PAD_MAGIC: u32 = 0x184D_2A50;

/// The bytes of one tar entry's header (with any long-name entries) as the
/// `tar` crate writes it: the same headers as [`append`].
fn header_bytes(path: &str, size: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, path, size, MODE_FILE, mtime, &mut io::empty())?;
    // Taken before the builder's drop appends the end-of-archive blocks.
    Ok(std::mem::take(b.get_mut()))
}

fn head_frame_pad(head_len: u64) -> Vec<u8> {
    let need = (head_len + 8).next_multiple_of(4096) - head_len;
    let mut pad = vec![0u8; need as usize];
    pad[..4].copy_from_slice(&PAD_MAGIC.to_le_bytes());
    pad[4..8].copy_from_slice(&((need - 8) as u32).to_le_bytes());
    pad
}

/// A writer that counts what passed, so entry offsets are known.
struct Counted {
    w: io::BufWriter<std::fs::File>,
    pos: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// What an input was like when it was read into the tar; checked again by
/// [`SinglePass::check_unchanged`] once the checks that read inputs by path
/// (content, model signatures) have run.
#[derive(PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    unix: (u64, u64, i64, i64),
}

impl Seen {
    fn of(m: &std::fs::Metadata) -> Self {
        Seen {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            unix: {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
            },
        }
    }
}

/// A tar or tar.zst written in one pass over the inputs: each input is read
/// once, hashed as it passes and written once, before the tag files that
/// carry its digest exist. The payload goes to a file first; the head (tag
/// files, signatures, custody, OCI layout and index) is put in front at the
/// end ([`SinglePass::finish`]). The tar is the same, entry for entry and
/// byte for byte, as one written in canonical order with the head first.
/// `pack` uses it for a tar.zst; a plain tar cannot be padded to put its head
/// in front in place, so it would cost a copy of the payload, and `pack`
/// writes it with [`write_tar`] after a hash pass instead.
///
/// - An input of at least [`STREAM_MIN`] bytes: a header naming a
///   placeholder, then its data, hashed on a second thread; then the header
///   is patched with the blob's name (`blobs/sha256/<hex>`, which fits the
///   ustar name field), or, if the digest was already written (identical
///   content) or is left out (a delta), the file is cut back to the header.
///   In a tar.zst the header is a zstd frame of one raw block (a fixed size,
///   patchable in place) and the data its own compressed frame(s).
/// - A smaller input is read into memory, hashed, then written.
/// - A tar.zst's head is its own frame, followed by a skippable frame that
///   pads it to a multiple of 4096 bytes, so that on filesystems with
///   `FALLOC_FL_INSERT_RANGE` (ext4, xfs) it is put in front without copying
///   the payload; elsewhere the payload is copied once, in the kernel.
pub struct SinglePass<'a> {
    out: Option<Counted>,
    frame: Option<zstd::Encoder<'static, Counted>>,
    zstd: bool,
    mtime: u64,
    written: std::collections::HashSet<Sha256Digest>,
    /// Each input's metadata when read, in the order added (the caller
    /// names the paths again at `check_unchanged`: not held per file here).
    seen: Vec<Seen>,
    progress: &'a dyn Progress,
}

impl<'a> SinglePass<'a> {
    /// Starts the payload file at `path` (created; removed by the caller on
    /// failure).
    pub fn create(path: &Path, zstd: bool, mtime: u64, progress: &'a dyn Progress) -> Result<Self> {
        let f = fs_err::File::create(path)?.into_parts().0;
        Ok(SinglePass {
            out: Some(Counted {
                w: io::BufWriter::with_capacity(CHUNK, f),
                pos: 0,
            }),
            frame: None,
            zstd,
            mtime,
            written: Default::default(),
            seen: Vec::new(),
            progress,
        })
    }

    /// The sink for entry bytes: the open zstd frame, or the file.
    fn sink(&mut self) -> io::Result<&mut dyn Write> {
        if self.zstd {
            if self.frame.is_none() {
                let out = self.out.take().expect("the payload file");
                self.frame = Some(zstd_encoder(out)?);
            }
            Ok(self.frame.as_mut().expect("a frame"))
        } else {
            Ok(self.out.as_mut().expect("the payload file"))
        }
    }

    /// Ends the open zstd frame, if any, and returns the file.
    fn file(&mut self) -> io::Result<&mut Counted> {
        if let Some(enc) = self.frame.take() {
            self.out = Some(enc.finish()?);
        }
        Ok(self.out.as_mut().expect("the payload file"))
    }

    /// Whether `digest` is in the tar already.
    pub fn has(&self, digest: &Sha256Digest) -> bool {
        self.written.contains(digest)
    }

    /// Reads the input `src` into the tar as `blobs/sha256/<its digest>`,
    /// unless that digest is already there or `omit` says it is left out,
    /// and returns what it hashed to.
    pub fn add_input(
        &mut self,
        src: &Path,
        omit: &dyn Fn(&Sha256Digest) -> bool,
    ) -> Result<Hashed> {
        let mut f = fs_err::File::open(src)?;
        let size = f.metadata()?.len();
        let changed = || {
            Error::Input {
            path: src.to_path_buf(),
            message: format!(
                "changed while being packed (it was {size} bytes when opened); pack again once it no longer changes"
            ),
        }
        };
        if size < STREAM_MIN {
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut f).take(size + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 != size {
                return Err(changed());
            }
            self.progress.advance(size);
            let h = Hashed {
                digest: Sha256Digest::of(&bytes),
                size,
            };
            self.seen(&f)?;
            if !omit(&h.digest) && self.written.insert(h.digest) {
                let path = crate::bundle::blob_path(&h.digest);
                let header = header_bytes(&path, size, self.mtime)?;
                let w = self.sink()?;
                w.write_all(&header)?;
                w.write_all(&bytes)?;
                w.write_all(&[0u8; 512][..pad(size)])?;
            }
            return Ok(h);
        }
        // A placeholder name of the blob name's length: the header's
        // length and every field but the name are final.
        let placeholder = crate::bundle::blob_path(&Sha256Digest::of_raw([0; 32]));
        let header = header_bytes(&placeholder, size, self.mtime)?;
        if header.len() != 512 {
            return Err(Error::Usage(format!(
                "internal error: a blob's tar header is {} bytes, not 512",
                header.len()
            )));
        }
        let zstd = self.zstd;
        let out = self.file()?;
        let start = out.pos;
        if zstd {
            out.write_all(&raw_frame_prefix(512))?;
        }
        let header_at = out.pos;
        out.write_all(&header)?;
        let progress = self.progress;
        let (digest, n) = std::thread::scope(|s| -> Result<(Sha256Digest, u64)> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let hasher = s.spawn(move || {
                let mut h = Sha256::new();
                for chunk in rx {
                    h.update(&chunk);
                }
                Sha256Digest::of_raw(h.finalize().into())
            });
            let copied = (|| -> io::Result<u64> {
                let w = self.sink()?;
                let mut n = 0u64;
                let mut limited = (&mut f).take(size);
                loop {
                    let mut chunk = vec![0u8; CHUNK];
                    let mut filled = 0;
                    while filled < CHUNK {
                        match limited.read(&mut chunk[filled..]) {
                            Ok(0) => break,
                            Ok(k) => filled += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    if filled == 0 {
                        break;
                    }
                    chunk.truncate(filled);
                    w.write_all(&chunk)?;
                    n += filled as u64;
                    progress.advance(filled as u64);
                    if tx.send(chunk).is_err() {
                        return Err(io::Error::other("the hashing thread stopped"));
                    }
                }
                w.write_all(&[0u8; 512][..pad(n)])?;
                Ok(n)
            })();
            drop(tx);
            let digest = hasher.join().expect("the hashing thread does not panic");
            Ok((digest, copied?))
        })?;
        let longer = f.read(&mut [0u8; 1])? != 0;
        if n != size || longer {
            return Err(changed());
        }
        self.seen(&f)?;
        let keep = !omit(&digest) && self.written.insert(digest);
        let mtime = self.mtime;
        let out = self.file()?;
        out.flush()?;
        if !keep {
            // Identical content is one blob; a delta leaves it out.
            out.w.get_ref().set_len(start)?;
            out.w.seek(io::SeekFrom::Start(start))?;
            out.pos = start;
        } else {
            let header = header_bytes(&crate::bundle::blob_path(&digest), size, mtime)?;
            write_at(out.w.get_ref(), &header, header_at)?;
        }
        Ok(Hashed { digest, size })
    }

    fn seen(&mut self, f: &fs_err::File) -> Result<()> {
        let m = f.metadata()?;
        self.seen.push(Seen::of(&m));
        Ok(())
    }

    /// Refuses the pack if an input changed (size, modification or change
    /// time, or file) since it was read into the tar: the checks that read
    /// inputs by path after that would have seen other bytes than packed.
    /// `inputs` are the paths given to `add_input`, in the same order.
    pub fn check_unchanged<'p>(&self, inputs: impl IntoIterator<Item = &'p Path>) -> Result<()> {
        let mut inputs = inputs.into_iter();
        for seen in &self.seen {
            let path = inputs.next().ok_or_else(|| {
                Error::Usage("internal error: fewer inputs named than were packed".into())
            })?;
            let now = fs_err::metadata(path)?;
            if Seen::of(&now) != *seen {
                return Err(Error::Input {
                    path: path.to_path_buf(),
                    message: "changed while being packed; pack again once it no longer changes"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// Appends the entries `rest` (files under `dir`, skipping blobs already
    /// written) and the end of the archive, then puts the entries `head`
    /// (files under `dir`) in front, and moves the result to `dest`.
    pub fn finish(
        mut self,
        dir: &Path,
        head: &[String],
        rest: &[String],
        tmp: &Path,
        dest: &Path,
    ) -> Result<()> {
        for p in rest {
            let written = p
                .strip_prefix(crate::bundle::BLOBS_PREFIX)
                .and_then(|hex| hex.parse::<Sha256Digest>().ok())
                .is_some_and(|d| self.written.contains(&d));
            if written {
                continue;
            }
            // Streamed: the generated blobs (SBOMs, OCI manifests) grow
            // with the file count.
            let mut f = fs_err::File::open(dir.join(p))?;
            let size = f.metadata()?.len();
            let header = header_bytes(p, size, self.mtime)?;
            let w = self.sink()?;
            w.write_all(&header)?;
            let n = io::copy(&mut (&mut f).take(size), w)?;
            if n != size {
                return Err(Error::Input {
                    path: dir.join(p),
                    message: format!("changed while being packed (it was {size} bytes)"),
                });
            }
            w.write_all(&[0u8; 512][..pad(size)])?;
            self.progress.advance(size);
        }
        self.sink()?.write_all(&[0u8; 1024])?;
        let out = self.file()?;
        out.flush()?;
        let payload = self
            .out
            .take()
            .expect("the payload file")
            .w
            .into_inner()
            .map_err(|e| e.into_error())?;

        // The head (airlock.json and the manifest grow with the file count)
        // is written to a file of its own, never held in memory.
        let joined = tmp.with_extension("joined");
        let mut head_file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&joined)?
            .into_parts()
            .0;
        {
            let mtime = self.mtime;
            let write_head = |w: &mut dyn Write| -> Result<()> {
                for p in head {
                    let mut f = fs_err::File::open(dir.join(p))?;
                    let size = f.metadata()?.len();
                    w.write_all(&header_bytes(p, size, mtime)?)?;
                    let n = io::copy(&mut (&mut f).take(size), w)?;
                    if n != size {
                        return Err(Error::Input {
                            path: dir.join(p),
                            message: format!("changed while being packed (it was {size} bytes)"),
                        });
                    }
                    w.write_all(&[0u8; 512][..pad(size)])?;
                }
                Ok(())
            };
            let mut w = io::BufWriter::with_capacity(CHUNK, &mut head_file);
            if self.zstd {
                let mut enc = zstd_encoder(&mut w)?;
                write_head(&mut enc)?;
                enc.finish()?;
            } else {
                write_head(&mut w)?;
            }
            w.flush()?;
        }
        if self.zstd {
            let len = head_file.seek(io::SeekFrom::End(0))?;
            head_file.write_all(&head_frame_pad(len))?;
        }
        let head_len = head_file.seek(io::SeekFrom::End(0))?;
        if !prepend_in_place(&payload, &head_file, head_len)? {
            // Copied once, in the kernel (copy_file_range where it can).
            // std's copy between two `std::fs::File`s is copy_file_range.
            let (mut from, _) = fs_err::File::open(tmp)?.into_parts();
            io::copy(&mut from, &mut head_file).map_err(|e| Error::Input {
                path: joined.clone(),
                message: format!("writing the tar: {e}"),
            })?;
            drop(head_file);
            drop(payload);
            fs_err::remove_file(tmp)?;
            fs_err::rename(&joined, dest)?;
            return Ok(());
        }
        drop(head_file);
        fs_err::remove_file(&joined)?;
        drop(payload);
        fs_err::rename(tmp, dest)?;
        Ok(())
    }
}

fn pad(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

#[cfg(unix)]
fn write_at(f: &std::fs::File, bytes: &[u8], at: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(bytes, at)
}

#[cfg(not(unix))]
fn write_at(f: &std::fs::File, bytes: &[u8], at: u64) -> io::Result<()> {
    let mut f = f;
    let back = f.stream_position()?;
    f.seek(io::SeekFrom::Start(at))?;
    f.write_all(bytes)?;
    f.seek(io::SeekFrom::Start(back))?;
    Ok(())
}

/// Puts the first `len` bytes of `head` in front of the file's bytes
/// without moving them, where the filesystem can insert a range (its length
/// a multiple of the block size).
#[cfg(target_os = "linux")]
fn prepend_in_place(f: &std::fs::File, head: &std::fs::File, len: u64) -> io::Result<bool> {
    use rustix::fs::{fallocate, FallocateFlags};
    if len == 0 || !len.is_multiple_of(4096) {
        return Ok(len == 0);
    }
    if fallocate(f, FallocateFlags::INSERT_RANGE, 0, len).is_err() {
        return Ok(false);
    }
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        read_exact_at(head, &mut buf[..n], at)?;
        write_at(f, &buf[..n], at)?;
        at += n as u64;
    }
    Ok(true)
}

#[cfg(target_os = "linux")]
fn read_exact_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, at)
}

#[cfg(not(target_os = "linux"))]
fn prepend_in_place(_: &std::fs::File, _: &std::fs::File, len: u64) -> io::Result<bool> {
    Ok(len == 0)
}

/// The size of each multi-threaded zstd job. zstd's default for level 3
/// (8 MiB jobs) holds about 70 MiB of job buffers on two workers; 2 MiB jobs
/// hold a quarter of that and compress as well (`zstd -T2 -3 -B2MiB` of a
/// source tree: 0.1% smaller than without `-B`).
pub const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// The zstd encoder every tar.zst is written with: level 3, compressed on
/// every core, in [`ZSTD_JOB_SIZE`] jobs. zstd's multi-threaded output is
/// the same for any number of workers, so a bundle's bytes do not depend on
/// the machine that packed it.
pub fn zstd_encoder<W: std::io::Write>(w: W) -> std::io::Result<zstd::Encoder<'static, W>> {
    let mut enc = zstd::Encoder::new(w, 3)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    enc.multithread(workers.max(1))?;
    enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    Ok(enc)
}

#[cfg(test)]
mod zstd_tests {
    use std::io::Write;

    fn compress(workers: u32, data: &[u8]) -> Vec<u8> {
        let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
        enc.multithread(workers).unwrap();
        enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(super::ZSTD_JOB_SIZE))
            .unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn multithreaded_zstd_is_the_same_for_any_worker_count() {
        // Several zstd jobs' worth of mixed data.
        let mut x = 1u64;
        let block: Vec<u8> = (0..1 << 16)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 60) as u8 + b'a'
            })
            .collect();
        let data: Vec<u8> = block.iter().copied().cycle().take(12 << 20).collect();
        let one = compress(1, &data);
        assert_eq!(one, compress(2, &data));
        assert_eq!(one, compress(4, &data));
        let mut out = Vec::new();
        let mut enc = super::zstd_encoder(&mut out).unwrap();
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        assert_eq!(out, one);
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }
}

#[cfg(test)]
mod single_pass_tests {
    use std::path::Path;

    use super::*;

    fn bytes(size: usize, seed: usize) -> Vec<u8> {
        (0..size).map(|i| ((i * 7 + seed) % 251) as u8).collect()
    }

    /// The tar of `head` then `blobs`, each once, written entry by entry
    /// with the `tar` crate: what the single pass must produce.
    fn reference(dir: &Path, head: &[String], blobs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut seen = std::collections::HashSet::new();
        for p in head {
            let data = std::fs::read(dir.join(p)).unwrap();
            append(&mut b, p, data.len() as u64, MODE_FILE, 7, &mut &data[..]).unwrap();
        }
        for data in blobs {
            let d = Sha256Digest::of(data);
            if seen.insert(d) {
                let p = crate::bundle::blob_path(&d);
                append(&mut b, &p, data.len() as u64, MODE_FILE, 7, &mut &data[..]).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// Packs `inputs` (written as files) with the single pass, then a
    /// generated blob from `dir` and the head; returns the output's bytes.
    fn single(dir: &Path, zstd: bool, inputs: &[Vec<u8>], omit: Option<Sha256Digest>) -> Vec<u8> {
        let tmp = dir.join("out.tmp");
        let dest = dir.join("out");
        let mut sp = SinglePass::create(&tmp, zstd, 7, &crate::progress::Silent).unwrap();
        for (i, data) in inputs.iter().enumerate() {
            let src = dir.join(format!("in{i}"));
            std::fs::write(&src, data).unwrap();
            let h = sp.add_input(&src, &|d| Some(*d) == omit).unwrap();
            assert_eq!(h.digest, Sha256Digest::of(data));
            assert_eq!(h.size, data.len() as u64);
        }
        let srcs: Vec<_> = (0..inputs.len())
            .map(|i| dir.join(format!("in{i}")))
            .collect();
        sp.check_unchanged(srcs.iter().map(|p| p.as_path()))
            .unwrap();
        let generated = b"{}".to_vec();
        let gen_path = crate::bundle::blob_path(&Sha256Digest::of(&generated));
        std::fs::create_dir_all(dir.join(crate::bundle::BLOBS_PREFIX)).unwrap();
        std::fs::write(dir.join(&gen_path), &generated).unwrap();
        let head = vec!["bagit.txt".to_string(), "index.json".to_string()];
        // The rest lists the streamed blobs too (skipped: already written).
        let mut rest: Vec<String> = inputs
            .iter()
            .map(|d| crate::bundle::blob_path(&Sha256Digest::of(d)))
            .filter(|p| Some(p.clone()) != omit.map(|d| crate::bundle::blob_path(&d)))
            .collect();
        rest.push(gen_path);
        sp.finish(dir, &head, &rest, &tmp, &dest).unwrap();
        assert!(!tmp.exists());
        let out = std::fs::read(&dest).unwrap();
        std::fs::remove_file(&dest).unwrap();
        out
    }

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bagit.txt"), b"BagIt-Version: 1.0\n").unwrap();
        std::fs::write(dir.path().join("index.json"), bytes(5000, 3)).unwrap();
        dir
    }

    #[test]
    fn a_single_pass_tar_is_the_canonical_tar_byte_for_byte() {
        let dir = setup();
        let big = STREAM_MIN as usize + 12345;
        // Large and small, with identical content among both.
        let inputs = vec![
            bytes(big, 1),
            bytes(3000, 2),
            bytes(big, 1),
            bytes(0, 0),
            bytes(3000, 2),
            bytes(2 * big, 5),
        ];
        let got = single(dir.path(), false, &inputs, None);
        let mut blobs = inputs.clone();
        blobs.push(b"{}".to_vec());
        let want = reference(
            dir.path(),
            &["bagit.txt".into(), "index.json".into()],
            &blobs,
        );
        assert_eq!(got, want);
        // A zstd frame sequence around the same tar.
        let z = single(dir.path(), true, &inputs, None);
        assert_eq!(&z[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), want);
    }

    #[test]
    fn a_left_out_blob_is_cut_back() {
        let dir = setup();
        let big = STREAM_MIN as usize + 1;
        let inputs = vec![bytes(big, 1), bytes(big, 9), bytes(100, 4)];
        let omit = Sha256Digest::of(&inputs[0]);
        let want = reference(
            dir.path(),
            &["bagit.txt".into(), "index.json".into()],
            &[inputs[1].clone(), inputs[2].clone(), b"{}".to_vec()],
        );
        for zstd in [false, true] {
            let got = single(dir.path(), zstd, &inputs, Some(omit));
            let tar = if zstd {
                zstd::decode_all(&got[..]).unwrap()
            } else {
                got
            };
            assert_eq!(tar, want, "zstd: {zstd}");
        }
    }

    #[test]
    fn an_input_that_changed_after_it_was_read_refuses() {
        let dir = tempfile::tempdir().unwrap();
        for size in [5000usize, STREAM_MIN as usize + 12345] {
            let src = dir.path().join(format!("in{size}"));
            let data = bytes(size, 1);
            std::fs::write(&src, &data).unwrap();
            let mut sp =
                SinglePass::create(&dir.path().join("t"), false, 7, &crate::progress::Silent)
                    .unwrap();
            sp.add_input(&src, &|_| false).unwrap();
            sp.check_unchanged([src.as_path()]).unwrap();
            // Other bytes, same size: the change time moves on.
            std::thread::sleep(std::time::Duration::from_millis(30));
            let mut other = data.clone();
            other[size / 2] ^= 1;
            std::fs::write(&src, &other).unwrap();
            match sp.check_unchanged([src.as_path()]) {
                Err(Error::Input { path, message }) => {
                    assert_eq!(path, src);
                    assert!(message.contains("changed while being packed"), "{message}");
                }
                other => panic!("{size}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn the_raw_frame_holds_a_patchable_header() {
        let header =
            header_bytes(&crate::bundle::blob_path(&Sha256Digest::of(b"x")), 5, 7).unwrap();
        assert_eq!(header.len(), 512);
        let mut frame = raw_frame_prefix(512).to_vec();
        frame.extend(&header);
        assert_eq!(zstd::decode_all(&frame[..]).unwrap(), header);
        let pad = head_frame_pad(100);
        assert_eq!((100 + pad.len()) % 4096, 0);
        let mut both = frame.clone();
        both.extend(pad);
        assert_eq!(zstd::decode_all(&both[..]).unwrap(), header);
    }
}

#[cfg(test)]
mod input_tests {
    use std::path::Path;

    use super::*;

    fn pack_one(src: &Path, expected: Hashed) -> Result<Vec<u8>> {
        write_tar(
            Path::new("/nonexistent"),
            [("data/x".to_string(), Some((src, expected)))],
            Vec::new(),
            7,
            &crate::progress::Silent,
        )
    }

    fn hashed(bytes: &[u8]) -> Hashed {
        Hashed {
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
        }
    }

    fn entry(tar: &[u8]) -> (String, Vec<u8>, u64, u32) {
        let mut a = tar::Archive::new(tar);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let h = e.header();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        (path, data, h.mtime().unwrap(), h.mode().unwrap())
    }

    #[test]
    fn an_input_is_written_as_hashed_small_or_large() {
        let dir = tempfile::tempdir().unwrap();
        // Below and above the size from which a second thread hashes.
        for size in [0usize, 5000, PIPELINE_MIN as usize + 12345] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let src = dir.path().join("in");
            std::fs::write(&src, &bytes).unwrap();
            let tar = pack_one(&src, hashed(&bytes)).unwrap();
            assert_eq!(
                entry(&tar),
                ("data/x".to_string(), bytes, 7, MODE_FILE),
                "{size}"
            );
        }
    }

    #[test]
    fn an_input_that_changed_since_it_was_hashed_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        for size in [5000usize, PIPELINE_MIN as usize + 12345] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut other = bytes.clone();
            other[size / 2] ^= 1;
            let cases: [(&str, Vec<u8>); 3] = [
                ("same size, other bytes", other),
                ("shorter", bytes[..size - 1].to_vec()),
                ("longer", [&bytes[..], b"!"].concat()),
            ];
            for (what, now) in cases {
                std::fs::write(&src, &now).unwrap();
                match pack_one(&src, hashed(&bytes)) {
                    Err(Error::Input { path, message }) => {
                        assert_eq!(path, src, "{size} {what}");
                        assert!(message.contains("changed while being packed"), "{message}");
                    }
                    other => panic!("{size} {what}: {:?}", other.map(|_| ())),
                }
            }
        }
    }
}
