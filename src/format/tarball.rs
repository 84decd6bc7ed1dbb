//! Writing a bundle directory as one tar (optionally zstd-compressed), in the
//! canonical entry order the streaming verifier relies on: tag files first,
//! then signatures and custody events, then the payload. Headers are
//! deterministic: fixed mtime, uid/gid 0, no user names, modes 0644/0755.

use std::hash::BuildHasher as _;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::bundle::MODE_FILE;
use crate::bundle::{
    BAGIT_TXT, BAG_INFO, CUSTODY_DIR, DESCRIPTION, MANIFEST, OCI_INDEX, OCI_LAYOUT, SIGNATURES_DIR,
    TAGMANIFEST, VERIFY_TXT,
};
use crate::digest::{Hashed, Sha256Digest};
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

/// The size of the chunks an input is read, written and hashed in.
const CHUNK: usize = 1 << 20;

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

/// The largest block of a zstd frame (and the window of [`RawFrame`]).
const RAW_BLOCK: usize = 128 << 10;

/// Writes exactly `total` bytes as one zstd frame of raw (stored) blocks:
/// valid zstd that costs a copy to write and to read. The frame header names
/// a 128 KiB window (no content size, no checksum), so decoders need no more
/// memory for it than for any other frame.
struct RawFrame<'w> {
    w: &'w mut Counted,
    left: u64,
    block: Vec<u8>,
}

impl<'w> RawFrame<'w> {
    fn start(w: &'w mut Counted, total: u64) -> io::Result<Self> {
        // Frame header descriptor 0: no content size, not single-segment,
        // no checksum, no dictionary. Window descriptor 0x38: 2^(10+7).
        w.write_all(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38])?;
        Ok(RawFrame {
            w,
            left: total,
            block: Vec::with_capacity(RAW_BLOCK),
        })
    }

    fn emit(&mut self) -> io::Result<()> {
        let last = u32::from(self.left == 0);
        // Block type 0 (raw) in bits 1-2, the size from bit 3.
        let header = ((self.block.len() as u32) << 3 | last).to_le_bytes();
        self.w.write_all(&header[..3])?;
        self.w.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }
}

impl Write for RawFrame<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = (RAW_BLOCK - self.block.len()).min(buf.len());
        if take as u64 > self.left {
            return Err(io::Error::other(
                "more bytes than the stored zstd frame was started for",
            ));
        }
        self.block.extend_from_slice(&buf[..take]);
        self.left -= take as u64;
        if self.block.len() == RAW_BLOCK || self.left == 0 {
            self.emit()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.left != 0 {
            return Err(io::Error::other(format!(
                "the stored zstd frame lacks {} bytes",
                self.left
            )));
        }
        Ok(())
    }
}

/// Whether data worth compressing: a sample of a large input's first chunk
/// (four slices of 32 KiB across it), compressed at level 1, shrinks by more
/// than 1/32. Decided on the bytes alone, so the same input is always
/// written the same way.
fn compresses(chunk: &[u8]) -> bool {
    const SLICE: usize = 32 << 10;
    if chunk.len() < 4 * SLICE {
        return true;
    }
    let (mut raw, mut packed) = (0usize, 0usize);
    for i in 0..4 {
        let at = (chunk.len() - SLICE) * i / 3;
        let slice = &chunk[at..at + SLICE];
        raw += slice.len();
        packed += zstd::bulk::compress(slice, 1).map_or(slice.len(), |c| c.len());
    }
    packed * 32 < raw * 31
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

/// The name in the header of a plain tar's padding entry (see
/// [`tar_head_pad`]); readers take no name from it.
pub const PAD_NAME: &str = "PaxHeaders/bagit.txt";

/// The text of a plain tar's padding record (see [`tar_head_pad`]).
pub const PAD_COMMENT: &str = "airlock: pads the tag files to a multiple of 4096 bytes";

/// The one pax record `<len> comment=<PAD_COMMENT and spaces>\n` of exactly
/// `len` bytes (its length field counts itself), if `len` has room for it.
pub fn pad_record(len: u64) -> Option<Vec<u8>> {
    let mut r = format!("{len} comment={PAD_COMMENT}").into_bytes();
    if r.len() as u64 >= len {
        return None;
    }
    r.resize(len as usize - 1, b' ');
    r.push(b'\n');
    Some(r)
}

/// The padding in front of a plain tar's head of `head_len` bytes that makes
/// head and padding a multiple of 4096 bytes, so the head can be put in front
/// of the payload in place ([`prepend_in_place`]): nothing when the head is
/// aligned already, else a pax extended header (`x`) whose data is one
/// `comment` record ([`pad_record`], 512 to 4096 bytes), which describes the
/// first entry (`bagit.txt`) and which every tar reader ignores. Always the
/// same for the same head, whatever the filesystem. The streaming reader
/// admits exactly this, and only in front of `bagit.txt` at the start of
/// the tar ([`is_head_pad`]).
fn tar_head_pad(head_len: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut need = (4096 - head_len % 4096) % 4096;
    if need == 0 {
        return Ok(Vec::new());
    }
    if need == 512 {
        // A header and at least one block of data.
        need += 4096;
    }
    let len = need - 512;
    let record = pad_record(len).ok_or_else(|| io::Error::other("a padding record too short"))?;
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path(PAD_NAME)?;
    h.set_size(len);
    h.set_mode(MODE_FILE);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend(record);
    debug_assert_eq!(out.len() as u64, need);
    Ok(out)
}

/// Whether the pax records carried by the first entry of a tar, whose own
/// header is at `header_pos`, are exactly a plain tar's padding (see
/// [`tar_head_pad`]): one `comment` record with [`PAD_COMMENT`] and spaces,
/// the whole of the pax header's data (512 to 4096 bytes).
pub fn is_head_pad(records: &[(&[u8], &[u8])], header_pos: u64) -> bool {
    let Some(len) = header_pos.checked_sub(512) else {
        return false;
    };
    if !(512..=4096).contains(&len) || !len.is_multiple_of(512) {
        return false;
    }
    let [(key, value)] = records else {
        return false;
    };
    let Some(want) = pad_record(len) else {
        return false;
    };
    let prefix = format!("{len} comment=").len();
    *key == b"comment" && *value == &want[prefix..want.len() - 1]
}

/// A writer that counts what passed, so entry offsets are known.
struct Counted {
    w: io::BufWriter<std::fs::File>,
    pos: u64,
    /// Where the head will be inserted in place: the offset up to which
    /// writeback was started (see [`Counted::write_back`]).
    written_back: Option<u64>,
}

/// How far the payload's writeback is started at a time.
const WRITEBACK_STEP: u64 = 32 << 20;

impl Counted {
    fn new(f: std::fs::File, in_place: bool) -> Self {
        Counted {
            w: io::BufWriter::with_capacity(CHUNK, f),
            pos: 0,
            written_back: in_place.then_some(0),
        }
    }

    /// Inserting the head in place writes every dirty page of the file and
    /// drops its cache first: started as the payload is written, that
    /// writeback runs beside the pack instead of after it (1 GiB: 0.7 s).
    /// `POSIX_FADV_DONTNEED` starts writeback of the range without waiting.
    fn write_back(&mut self) {
        let Some(done) = self.written_back else {
            return;
        };
        // Only what surely left the buffer, in whole pages.
        let upto = self.pos.saturating_sub(CHUNK as u64 + 4096) & !4095;
        if upto < done + WRITEBACK_STEP {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let _ = rustix::fs::fadvise(
                self.w.get_ref(),
                done,
                std::num::NonZeroU64::new(upto - done),
                rustix::fs::Advice::DontNeed,
            );
        }
        self.written_back = Some(upto);
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.pos += n as u64;
        self.write_back();
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// What an input was like when it was read into the tar (size,
/// modification and change time, device and inode), as a 64-bit hash of
/// those (8 bytes an input, not 48): checked again by
/// [`SinglePass::check_unchanged`] once the checks that read inputs by path
/// (content, model signatures) have run. A change goes unseen only if its
/// hash collides (one chance in 2^64).
#[derive(PartialEq, Eq, Clone, Copy)]
struct Seen(u64);

impl Seen {
    fn of(m: &std::fs::Metadata) -> Self {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same metadata, the same value.
        let mut h = std::hash::DefaultHasher::new();
        m.len().hash(&mut h);
        m.modified().ok().hash(&mut h);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()).hash(&mut h);
        }
        Seen(h.finish())
    }
}

/// A tar or tar.zst written in one pass over the inputs: each input is read
/// once, hashed as it passes and written once, before the tag files that
/// carry its digest exist. The payload goes to a file first; the head (tag
/// files, signatures, custody, OCI layout and index) is put in front at the
/// end ([`SinglePass::finish`]). The tar is the same, entry for entry and
/// byte for byte, as one written in canonical order with the head first
/// (a plain tar's head begins with its padding, see [`tar_head_pad`]).
/// `pack` uses it for every tar and tar.zst that is not split into volumes.
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
///   pads it to a multiple of 4096 bytes; a plain tar's head is preceded by
///   a pax header holding only a `comment` ([`tar_head_pad`]) to the same
///   end. So on filesystems with `FALLOC_FL_INSERT_RANGE` (ext4, xfs) the
///   head is put in front without copying the payload; elsewhere the
///   payload is copied once, in the kernel. The bytes are the same either
///   way.
pub struct SinglePass<'a> {
    out: Option<Counted>,
    frame: Option<zstd::Encoder<'static, Counted>>,
    zstd: bool,
    mtime: u64,
    /// What each input hashed to, by the position the caller gave it.
    hashes: Vec<Hashed>,
    /// The digests written, as positions into `hashes` (about 5 bytes an
    /// input against a set of digests' 43: a pass of many small files holds
    /// one per file).
    written: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
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
        let in_place = can_insert(&f).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            message: format!("writing the tar: {e}"),
        })?;
        Ok(SinglePass {
            out: Some(Counted::new(f, in_place)),
            frame: None,
            zstd,
            mtime,
            hashes: Vec::new(),
            written: hashbrown::HashTable::new(),
            hasher: std::hash::RandomState::new(),
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

    /// Makes room for `inputs` more inputs at once: the inputs' hashes,
    /// the set of digests written and the metadata seen are never grown
    /// (and briefly held twice) on the way.
    pub fn reserve(&mut self, inputs: usize) {
        self.hashes.reserve_exact(inputs);
        let (hashes, hasher) = (&self.hashes, &self.hasher);
        self.written
            .reserve(inputs, |&j| hasher.hash_one(hashes[j as usize].digest));
        self.seen.reserve_exact(inputs);
    }

    /// Whether `digest` is in the tar already (until [`Self::end_inputs`]).
    pub fn has(&self, digest: &Sha256Digest) -> bool {
        let hashes = &self.hashes;
        self.written
            .find(self.hasher.hash_one(digest), |&j| {
                hashes[j as usize].digest == *digest
            })
            .is_some()
    }

    /// Records that input `at` hashed to `h`; then, unless `omit` says it
    /// is left out, whether its digest is new to the tar (and now in it).
    fn record(&mut self, at: usize, h: Hashed, omit: &dyn Fn(&Sha256Digest) -> bool) -> bool {
        if self.hashes.len() <= at {
            let unset = Hashed {
                digest: Sha256Digest::of_raw([0; 32]),
                size: 0,
            };
            self.hashes.resize(at + 1, unset);
        }
        self.hashes[at] = h;
        if omit(&h.digest) {
            return false;
        }
        let (hashes, hasher) = (&self.hashes, &self.hasher);
        let hash = hasher.hash_one(h.digest);
        match self.written.entry(
            hash,
            |&j| hashes[j as usize].digest == h.digest,
            |&j| hasher.hash_one(hashes[j as usize].digest),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                // A pass of 2^32 inputs would not fit in memory.
                v.insert(u32::try_from(at).expect("fewer than 2^32 inputs"));
                true
            }
        }
    }

    /// Ends the inputs: frees the set of digests written and returns what
    /// each input hashed to, by the position given to
    /// [`Self::add_input`]. The caller names in `finish` only what the pass
    /// did not write (every input's digest, less what it left out).
    pub fn end_inputs(&mut self) -> Vec<Hashed> {
        self.written = hashbrown::HashTable::new();
        std::mem::take(&mut self.hashes)
    }

    /// Reads the input `src` into the tar as `blobs/sha256/<its digest>`,
    /// unless that digest is already there or `omit` says it is left out,
    /// and returns what it hashed to, which is kept as input `at`'s. An input under [`STREAM_MIN`] bytes is
    /// held in memory whole: `small` is given exactly the bytes hashed (the
    /// caller's content check, so it need not read the input again), before
    /// they are written; its error ends the pass. A larger input is streamed
    /// and `small` is not called.
    pub fn add_input(
        &mut self,
        at: usize,
        src: &Path,
        omit: &dyn Fn(&Sha256Digest) -> bool,
        small: &mut dyn FnMut(&[u8]) -> Result<()>,
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
            small(&bytes)?;
            if self.record(at, h, omit) {
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
            // Hashed chunks come back to be filled again (nothing zeroed twice).
            let (back_tx, back) = std::sync::mpsc::channel::<Vec<u8>>();
            let hasher = s.spawn(move || {
                let mut h = Sha256::new();
                for chunk in rx {
                    h.update(&chunk);
                    let _ = back_tx.send(chunk);
                }
                Sha256Digest::of_raw(h.finalize().into())
            });
            let copied = (|| -> io::Result<u64> {
                let mut limited = (&mut f).take(size);
                let mut next = || -> io::Result<Vec<u8>> {
                    let mut chunk = back.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                    chunk.resize(CHUNK, 0);
                    let mut filled = 0;
                    while filled < CHUNK {
                        match limited.read(&mut chunk[filled..]) {
                            Ok(0) => break,
                            Ok(k) => filled += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    chunk.truncate(filled);
                    Ok(chunk)
                };
                let mut chunk = next()?;
                // In a tar.zst, data that does not compress is stored: the
                // frame of raw blocks costs a copy, not a compression.
                let mut raw;
                let stored = zstd && !compresses(&chunk);
                let w: &mut dyn Write = if stored {
                    let out = self.out.as_mut().expect("the payload file");
                    raw = RawFrame::start(out, size + pad(size) as u64)?;
                    &mut raw
                } else {
                    self.sink()?
                };
                let mut n = 0u64;
                while !chunk.is_empty() {
                    w.write_all(&chunk)?;
                    n += chunk.len() as u64;
                    progress.advance(chunk.len() as u64);
                    if tx.send(chunk).is_err() {
                        return Err(io::Error::other("the hashing thread stopped"));
                    }
                    chunk = next()?;
                }
                w.write_all(&[0u8; 512][..pad(n)])?;
                if stored {
                    // Checks the frame is whole (a compressed one is ended
                    // by `file`).
                    w.flush()?;
                }
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
        let keep = self.record(at, Hashed { digest, size }, omit);
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

    /// Frees what was seen of each input, once it is checked for the last
    /// time.
    pub fn forget_seen(&mut self) {
        self.seen = Vec::new();
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
                .is_some_and(|d| self.has(&d));
            if written {
                continue;
            }
            // Streamed: an image layer or a generated blob (SBOMs, OCI
            // manifests grow with the file count) may be large.
            let f = fs_err::File::open(dir.join(p))?;
            let size = f.metadata()?.len();
            let header = header_bytes(p, size, self.mtime)?;
            let progress = self.progress;
            let w = self.sink()?;
            w.write_all(&header)?;
            let mut counted = Counting {
                inner: f.take(size),
                progress,
            };
            let n = io::copy(&mut counted, w)?;
            if n != size {
                return Err(Error::Input {
                    path: dir.join(p),
                    message: format!("{n} bytes where {size} were expected; pack again"),
                });
            }
            w.write_all(&[0u8; 512][..pad(size)])?;
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
            // The head's length as a tar, known before it is written: the
            // zstd frame pledges it, the plain tar's padding depends on it.
            let mut head_tar_len = 0u64;
            for p in head {
                let size = fs_err::metadata(dir.join(p))?.len();
                head_tar_len += (header_bytes(p, size, mtime)?.len() + pad(size)) as u64 + size;
            }
            let mut w = io::BufWriter::with_capacity(CHUNK, &mut head_file);
            if self.zstd {
                let mut enc = head_encoder(&mut w, head_tar_len)?;
                write_head(&mut enc)?;
                enc.finish()?;
            } else {
                w.write_all(&tar_head_pad(head_tar_len, mtime)?)?;
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

/// Whether the filesystem of the empty file `f` inserts ranges: tried on a
/// page written for the purpose, then the file is emptied again.
#[cfg(target_os = "linux")]
fn can_insert(f: &std::fs::File) -> io::Result<bool> {
    use rustix::fs::{fallocate, FallocateFlags};
    write_at(f, &[0u8; 4096], 0)?;
    let ok = fallocate(f, FallocateFlags::INSERT_RANGE, 0, 4096).is_ok();
    f.set_len(0)?;
    Ok(ok)
}

#[cfg(not(target_os = "linux"))]
fn can_insert(_: &std::fs::File) -> io::Result<bool> {
    Ok(false)
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

/// The encoder of a tar.zst's head (the tag files): level 3 on one thread,
/// its content size pledged, so a small head declares a small window and
/// decoders allocate no more. (An 8 MiB window with 2^20-entry match tables
/// finds the digests the tag files repeat far apart, 10k files: 720 -> 544
/// KB of head, 1.5% of the bundle; but it held 6-19 MiB more at the head's
/// end, and pack of 50k files went over the 64 MiB target: left out.)
fn head_encoder<W: std::io::Write>(w: W, len: u64) -> std::io::Result<zstd::Encoder<'static, W>> {
    let mut enc = zstd::Encoder::new(w, 3)?;
    enc.set_pledged_src_size(Some(len))?;
    Ok(enc)
}

/// The size of each multi-threaded zstd job. zstd's default for level 3
/// (8 MiB jobs) holds about 70 MiB of job buffers on two workers; 2 MiB jobs
/// held about 19 MiB, 1 MiB jobs about 6 MiB less (pack of 200k small files
/// 58 -> 50 MiB; of 200k with 100-character paths 74 -> 67 MiB), and the
/// bundles came out 0.3% smaller (source-like trees of 10k, 50k and 200k
/// files) at the same speed. zstd's least, 512 KiB, held 3 MiB less again
/// but took pack of 50k small files about 10% longer (about 8% more CPU).
pub const ZSTD_JOB_SIZE: u32 = 1 << 20;

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
mod head_tests {
    use std::io::Write;

    fn compress(data: &[u8], head: bool) -> Vec<u8> {
        let out = Vec::new();
        if head {
            let mut enc = super::head_encoder(out, data.len() as u64).unwrap();
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        } else {
            let mut enc = super::zstd_encoder(out).unwrap();
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
    }

    #[test]
    fn the_head_frame_pledges_its_size_and_decodes_to_the_head() {
        let head = b"BagIt-Version: 1.0\n".repeat(1000);
        let frame = compress(&head, true);
        assert_eq!(zstd::decode_all(&frame[..]).unwrap(), head);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).ok(),
            Some(Some(head.len() as u64))
        );
        // A small head declares a small window (a content size is pledged).
        let small = compress(b"BagIt-Version: 1.0\n", true);
        let params = zstd::zstd_safe::get_frame_content_size(&small);
        assert_eq!(params.ok(), Some(Some(19)));
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

    /// The bytes of the entries `head` in a tar.
    fn head_len(dir: &Path, head: &[String]) -> u64 {
        head.iter()
            .map(|p| {
                let n = std::fs::metadata(dir.join(p)).unwrap().len();
                512 + n + pad(n) as u64
            })
            .sum()
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
            let mut given = None;
            let h = sp
                .add_input(i, &src, &|d| Some(*d) == omit, &mut |b| {
                    given = Some(b.to_vec());
                    Ok(())
                })
                .unwrap();
            // The hook sees exactly the bytes hashed, for small inputs only.
            if (data.len() as u64) < STREAM_MIN {
                assert_eq!(given.as_deref(), Some(&data[..]));
            } else {
                assert!(given.is_none());
            }
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
        let head = ["bagit.txt".to_string(), "index.json".to_string()];
        let want = reference(dir.path(), &head, &blobs);
        // A plain tar: its padding, then the same tar.
        let pad = tar_head_pad(head_len(dir.path(), &head), 7).unwrap();
        assert!(!pad.is_empty());
        assert_eq!(&got[..pad.len()], &pad[..]);
        assert_eq!(&got[pad.len()..], &want[..]);
        // A zstd frame sequence around the same tar.
        let z = single(dir.path(), true, &inputs, None);
        assert_eq!(&z[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), want);
    }

    fn random(size: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_inputs_are_stored_in_raw_blocks() {
        let dir = setup();
        // Random (stored, several raw blocks, the last one short), then
        // compressible, then random again with identical content (cut back).
        let big = STREAM_MIN as usize + 3 * RAW_BLOCK + 777;
        let noise = random(big, 7);
        let inputs = vec![noise.clone(), bytes(big, 3), random(2 * big, 9), noise];
        let z = single(dir.path(), true, &inputs, None);
        let mut blobs = inputs[..3].to_vec();
        blobs.push(b"{}".to_vec());
        let head = ["bagit.txt".to_string(), "index.json".to_string()];
        let want = reference(dir.path(), &head, &blobs);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), want);
        // Stored: barely larger than the random inputs and the rest.
        let compressed_rest = z.len() - 3 * big;
        assert!(compressed_rest < 64 << 10, "{} of {}", z.len(), want.len());
        assert!(compresses(&bytes(CHUNK, 1)));
        assert!(!compresses(&random(CHUNK, 1)));
    }

    #[test]
    fn a_raw_frame_is_exactly_its_blocks() {
        let data = random(3 * RAW_BLOCK + 10, 5);
        let f = tempfile::tempfile().unwrap();
        let mut out = Counted::new(f, false);
        let mut frame = RawFrame::start(&mut out, data.len() as u64).unwrap();
        frame.write_all(&data).unwrap();
        frame.flush().unwrap();
        // Header, four block headers.
        assert_eq!(out.pos, data.len() as u64 + 6 + 4 * 3);
        let mut f = out.w.into_inner().unwrap();
        f.seek(io::SeekFrom::Start(0)).unwrap();
        assert_eq!(zstd::decode_all(f).unwrap(), data);
        // One byte more or less than announced is an error.
        let mut sink = Counted::new(tempfile::tempfile().unwrap(), false);
        let mut short = RawFrame::start(&mut sink, 10).unwrap();
        short.write_all(&[1; 9]).unwrap();
        assert!(short.flush().is_err());
        assert!(short.write_all(&[1; 2]).is_err());
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
                let pad = tar_head_pad(
                    head_len(dir.path(), &["bagit.txt".into(), "index.json".into()]),
                    7,
                )
                .unwrap();
                got[pad.len()..].to_vec()
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
            sp.add_input(0, &src, &|_| false, &mut |_| Ok(())).unwrap();
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
    fn the_pass_keeps_each_input_s_hash_by_position_and_its_written_set_small() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2000usize;
        let mut sp =
            SinglePass::create(&dir.path().join("t"), false, 7, &crate::progress::Silent).unwrap();
        sp.reserve(n);
        // Added last first; every tenth input repeats the one before it, and
        // one digest is left out.
        let data = |i: usize| format!("input {}", i - (i % 10 == 9) as usize).into_bytes();
        let omitted = Sha256Digest::of(&data(500));
        for i in (0..n).rev() {
            let src = dir.path().join("in");
            std::fs::write(&src, data(i)).unwrap();
            let h = sp
                .add_input(i, &src, &|d| *d == omitted, &mut |_| Ok(()))
                .unwrap();
            assert_eq!(h.digest, Sha256Digest::of(&data(i)));
        }
        assert!(sp.has(&Sha256Digest::of(&data(7))));
        assert!(!sp.has(&omitted));
        assert!(!sp.has(&Sha256Digest::of(b"never added")));
        // Positions into the hashes, not digests: a set of 32-byte digests
        // took 43 bytes an input.
        let per_input = sp.written.allocation_size() as f64 / n as f64;
        assert!(per_input <= 12.0, "{per_input} bytes an input");
        let hashes = sp.end_inputs();
        assert_eq!(hashes.len(), n);
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(h.digest, Sha256Digest::of(&data(i)), "{i}");
            assert_eq!(h.size, data(i).len() as u64);
        }
        assert!(
            !sp.has(&Sha256Digest::of(&data(7))),
            "freed at the end of the inputs"
        );
        // The duplicates and the left-out input were cut back: 1800 - 1
        // entries of one header and one padded block each.
        drop(sp);
        let written = std::fs::metadata(dir.path().join("t")).unwrap().len();
        assert_eq!(written, (n as u64 - n as u64 / 10 - 1) * 1024);
    }

    #[test]
    fn the_small_input_hook_can_end_the_pass_before_the_input_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::write(&src, bytes(5000, 1)).unwrap();
        let tmp = dir.path().join("t");
        let mut sp = SinglePass::create(&tmp, false, 7, &crate::progress::Silent).unwrap();
        let refused = sp.add_input(0, &src, &|_| false, &mut |b| {
            Err(Error::Usage(format!("refused {} bytes", b.len())))
        });
        match refused {
            Err(Error::Usage(m)) => assert_eq!(m, "refused 5000 bytes"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(!sp.has(&Sha256Digest::of(&bytes(5000, 1))));
        drop(sp);
        assert_eq!(std::fs::metadata(&tmp).unwrap().len(), 0);
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
mod pad_tests {
    use std::io::Read;

    use super::*;

    /// The padding then `head_len` bytes of head (one entry) as a tar, read
    /// back with the `tar` crate: the pax records the first entry carries
    /// and where its header is.
    type Records = Option<Vec<(Vec<u8>, Vec<u8>)>>;

    fn read_back(pad: &[u8], head_len: u64) -> (Records, u64, Vec<u8>) {
        let data = vec![b'x'; head_len as usize - 512];
        let mut tar = pad.to_vec();
        tar.extend(header_bytes("bagit.txt", data.len() as u64, 7).unwrap());
        tar.extend(&data);
        tar.extend([0u8; 1024]);
        let mut a = tar::Archive::new(&tar[..]);
        let mut entries = a.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), b"bagit.txt");
        let at = e.raw_header_position();
        let records = e.pax_extensions().unwrap().map(|r| {
            r.map(|r| r.unwrap())
                .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
                .collect()
        });
        let mut got = Vec::new();
        e.read_to_end(&mut got).unwrap();
        assert!(entries.next().is_none());
        (records, at, got)
    }

    #[test]
    fn the_pad_aligns_every_head_and_is_admitted_as_written() {
        for blocks in 2..=24u64 {
            let head_len = blocks * 512;
            let pad = tar_head_pad(head_len, 7).unwrap();
            assert_eq!((head_len + pad.len() as u64) % 4096, 0, "{head_len}");
            assert_eq!(pad.is_empty(), head_len % 4096 == 0, "{head_len}");
            assert!(pad.len() <= 4608, "{head_len}");
            let (records, at, data) = read_back(&pad, head_len);
            assert_eq!(data.len() as u64, head_len - 512);
            assert_eq!(at, pad.len() as u64);
            match records {
                None => assert!(pad.is_empty()),
                Some(r) => {
                    assert_eq!(r.len(), 1);
                    assert_eq!(r[0].0, b"comment");
                    assert!(r[0].1.starts_with(PAD_COMMENT.as_bytes()));
                    let r: Vec<(&[u8], &[u8])> = r.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                    assert!(is_head_pad(&r, at), "{head_len}");
                    // Anywhere else, it is not the padding.
                    assert!(!is_head_pad(&r, at + 512), "{head_len}");
                    assert!(!is_head_pad(&r, at - 512), "{head_len}");
                }
            }
        }
    }

    #[test]
    fn only_the_exact_comment_is_the_pad() {
        let len = 1024u64;
        let record = pad_record(len).unwrap();
        assert_eq!(record.len() as u64, len);
        let prefix = "1024 comment=".len();
        let value = &record[prefix..record.len() - 1];
        let at = 512 + len;
        assert!(is_head_pad(&[(b"comment", value)], at));
        let mut other = value.to_vec();
        other[3] = b'X';
        for records in [
            vec![(&b"comment"[..], &other[..])],
            vec![(&b"path"[..], value)],
            vec![(&b"comment"[..], value), (&b"size"[..], &b"1"[..])],
            vec![],
        ] {
            assert!(!is_head_pad(&records, at), "{records:?}");
        }
        // Data longer than 4096 bytes or not whole blocks.
        assert!(!is_head_pad(&[(b"comment", value)], 512 + 4608));
        assert!(!is_head_pad(&[(b"comment", value)], 512 + 1000));
    }
}
