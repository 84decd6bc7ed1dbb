//! A bounded parser of zstd frame and block headers (RFC 8878) that finds
//! frames made only of raw (stored) blocks, so their bytes can be read by
//! position where they lie in the file instead of through the decoder.
//!
//! `pack` stores a large input that does not compress as one such frame
//! (`tarball::RawFrame`: 128 KiB raw blocks, no content size, no checksum),
//! and each large input's tar header as a single-segment frame of one raw
//! block. [`frame_at`] reads the headers of the frame at an offset and
//! answers with the frame's layout when every block is raw and the frame is
//! one libzstd's decoder (as airlock runs it) decodes to exactly those bytes;
//! anything else (a compressed or RLE block, a content checksum, a
//! dictionary, a skippable frame) is [`Frame::Other`], and every malformed
//! header a typed [`FrameError`] naming the file and offset. The caller
//! (`source`'s tar.zst walk) hands both to the decoder, which reports what is
//! wrong exactly as it would have without this parser.
//!
//! The bytes are untrusted: nothing is allocated by a size read from them
//! (the layout is at most [`MAX_RUNS`] runs of equal blocks), every read is
//! inside the file's length, and block sizes are checked against the
//! window and the 128 KiB block limit before they are believed.

use std::io;
use std::path::{Path, PathBuf};

/// The zstd frame magic number (little-endian on disk).
pub const MAGIC: u32 = 0xFD2F_B528;
/// The largest block of any zstd frame (RFC 8878 `Block_Maximum_Size`).
pub const BLOCK_MAX: u64 = 128 << 10;
/// The largest window airlock's decoder accepts (libzstd's default
/// `ZSTD_WINDOWLOG_LIMIT_DEFAULT`, 2^27): a frame needing more is the
/// decoder's to refuse.
pub const WINDOW_MAX: u64 = 1 << 27;
/// A frame of raw blocks whose block sizes change more often than this is
/// left to the decoder: the layout is held as runs of equal blocks, and
/// `pack` writes two (full blocks, then the last).
pub const MAX_RUNS: usize = 64;

/// Blocks of equal content length laid out one after another: block `i`'s
/// content is `len` bytes at `at + i * (len + 3)` (each preceded by its
/// 3-byte header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// File offset of the first block's content.
    pub at: u64,
    /// Content length of every block of the run.
    pub len: u64,
    /// How many blocks.
    pub count: u64,
}

impl Run {
    fn bytes(&self) -> u64 {
        self.len * self.count
    }
}

/// Part of a frame's content, where it lies in the file: `count` pieces of
/// `len` bytes, piece `i` at `at + i * stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub at: u64,
    pub len: u64,
    pub stride: u64,
    pub count: u64,
}

impl Extent {
    pub fn bytes(&self) -> u64 {
        self.len * self.count
    }
}

/// A frame whose every block is raw: its content is the blocks' bytes in
/// order, readable where they lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// File offset of the frame's magic number.
    pub start: u64,
    /// File offset just past the frame (after its last block).
    pub end: u64,
    /// The content's length: the sum of the blocks' sizes.
    pub content: u64,
    pub runs: Vec<Run>,
}

impl RawFrame {
    /// Where content byte `c` lies in the file, and how many bytes from
    /// there are contiguous (to the end of its block); `None` past the end.
    pub fn locate(&self, c: u64) -> Option<(u64, u64)> {
        let mut base = 0u64;
        for r in &self.runs {
            let b = r.bytes();
            if c < base + b {
                let o = c - base;
                return Some((
                    r.at + (o / r.len) * (r.len + 3) + o % r.len,
                    r.len - o % r.len,
                ));
            }
            base += b;
        }
        None
    }

    /// Where the content bytes `[from, from + len)` lie, as extents in
    /// order; `None` when the range is not inside the content.
    pub fn extents(&self, from: u64, len: u64) -> Option<Vec<Extent>> {
        let end = from.checked_add(len)?;
        if end > self.content {
            return None;
        }
        let mut out = Vec::new();
        let mut base = 0u64; // content offset of the run's first byte
        for r in &self.runs {
            let (lo, hi) = (base, base + r.bytes());
            base = hi;
            let (a, b) = (from.max(lo), end.min(hi));
            if a >= b || r.len == 0 {
                continue;
            }
            let stride = r.len + 3;
            let place = |c: u64| r.at + (c / r.len) * stride + c % r.len;
            let (a, b) = (a - lo, b - lo);
            // A partial first block, the whole blocks, a partial last one.
            let first_whole = a.div_ceil(r.len);
            let last_whole = b / r.len;
            if first_whole > last_whole {
                // Inside one block.
                out.push(Extent {
                    at: place(a),
                    len: b - a,
                    stride,
                    count: 1,
                });
                continue;
            }
            if a % r.len != 0 {
                out.push(Extent {
                    at: place(a),
                    len: first_whole * r.len - a,
                    stride,
                    count: 1,
                });
            }
            if last_whole > first_whole {
                out.push(Extent {
                    at: r.at + first_whole * stride,
                    len: r.len,
                    stride,
                    count: last_whole - first_whole,
                });
            }
            if b % r.len != 0 {
                out.push(Extent {
                    at: r.at + last_whole * stride,
                    len: b % r.len,
                    stride,
                    count: 1,
                });
            }
        }
        Some(out)
    }
}

/// What lies at an offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A zstd frame of raw blocks only, valid as far as its headers go.
    Raw(RawFrame),
    /// A frame this parser does not map (compressed or RLE blocks, a content
    /// checksum, a dictionary, a skippable frame, too many runs): for the
    /// decoder.
    Other,
}

/// What is wrong with a frame's headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the file ends inside a frame or block header")]
    Truncated,
    #[error("not a zstd frame (magic {0:#010x})")]
    Magic(u32),
    #[error("the frame header's reserved bit is set")]
    ReservedBit,
    #[error("block type 3 (reserved)")]
    ReservedBlockType,
    #[error("a block of {size} bytes, over the frame's block limit of {max}")]
    BlockTooLarge { size: u64, max: u64 },
    #[error("a window of {0} bytes, over the decoder's limit of {WINDOW_MAX}")]
    WindowTooLarge(u64),
    #[error("the frame header declares {declared} bytes of content, its blocks hold {actual}")]
    ContentSize { declared: u64, actual: u64 },
    #[error("a block's {size} bytes run past the end of the file ({file_len} bytes)")]
    PastEnd { size: u64, file_len: u64 },
    #[error("reading the file: {0}")]
    Read(String),
}

/// A malformed frame header, naming the bundle file and the offset of the
/// header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: zstd frame header at offset {at}: {problem}; the bundle is damaged or hostile, get it again from its source", file.display())]
pub struct FrameError {
    pub file: PathBuf,
    pub at: u64,
    pub problem: Problem,
}

/// Positioned reads of the bytes being parsed.
pub trait ReadAt {
    /// The file's length: no read goes past it.
    fn size(&self) -> u64;
    /// Fills `buf` from `at` (`at + buf.len() <= size()`).
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let s = usize::try_from(at)
            .ok()
            .and_then(|a| self.get(a..a.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(s);
        Ok(())
    }
}

/// A file and its length, taken once.
pub struct FileAt<'a> {
    pub file: &'a std::fs::File,
    pub len: u64,
}

impl ReadAt for FileAt<'_> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self.file, buf, at)
    }
}

/// Reads headers through a small window of the file, so that many small
/// blocks cost one read, not one each.
struct Window<'r, R: ReadAt + ?Sized> {
    src: &'r R,
    buf: [u8; 4096],
    at: u64,
    filled: usize,
}

impl<R: ReadAt + ?Sized> Window<'_, R> {
    /// `N` bytes at `at`, or `None` past the file's end.
    fn get<const N: usize>(&mut self, at: u64) -> io::Result<Option<[u8; N]>> {
        let len = self.src.size();
        if at.checked_add(N as u64).is_none_or(|e| e > len) {
            return Ok(None);
        }
        let inside = at >= self.at && at + N as u64 <= self.at + self.filled as u64;
        if !inside {
            // Headers close together (small blocks) are read 4 KiB at a
            // time; one far from the last (a 128 KiB block away) alone, so
            // that a large frame's scan reads little beyond its headers.
            let end = self.at + self.filled as u64;
            let near = at >= end && at - end < self.buf.len() as u64;
            let want = if near { self.buf.len() } else { 64 };
            let n = (len - at).min(want as u64) as usize;
            self.src.read_exact_at(&mut self.buf[..n], at)?;
            self.at = at;
            self.filled = n;
        }
        let o = (at - self.at) as usize;
        Ok(Some(self.buf[o..o + N].try_into().expect("N bytes")))
    }
}

/// Parses the frame at `at` of `src` (the bundle file `file`, named in
/// errors): its layout when every block is raw, [`Frame::Other`] for any
/// other frame, an error for a malformed header. Reads only headers, each
/// inside `src.size()`; holds at most [`MAX_RUNS`] runs.
pub fn frame_at<R: ReadAt + ?Sized>(src: &R, at: u64, file: &Path) -> Result<Frame, FrameError> {
    let fail = |at: u64, problem: Problem| FrameError {
        file: file.to_path_buf(),
        at,
        problem,
    };
    let mut w = Window {
        src,
        buf: [0; 4096],
        at: 0,
        filled: 0,
    };
    let read = |e: io::Error| Problem::Read(e.to_string());
    let magic = w
        .get::<4>(at)
        .map_err(|e| fail(at, read(e)))?
        .ok_or_else(|| fail(at, Problem::Truncated))?;
    let magic = u32::from_le_bytes(magic);
    if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
        return Ok(Frame::Other); // skippable
    }
    if magic != MAGIC {
        return Err(fail(at, Problem::Magic(magic)));
    }
    let [fhd] = w
        .get::<1>(at + 4)
        .map_err(|e| fail(at, read(e)))?
        .ok_or_else(|| fail(at, Problem::Truncated))?;
    let fcs_flag = fhd >> 6;
    let single = fhd & 0x20 != 0;
    if fhd & 0x08 != 0 {
        return Err(fail(at, Problem::ReservedBit));
    }
    let checksum = fhd & 0x04 != 0;
    let did_len = [0u64, 1, 2, 4][(fhd & 3) as usize];
    let fcs_len = match fcs_flag {
        0 => u64::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let mut pos = at + 5;
    let mut window = None;
    if !single {
        let [wd] = w
            .get::<1>(pos)
            .map_err(|e| fail(at, read(e)))?
            .ok_or_else(|| fail(at, Problem::Truncated))?;
        let log = 10 + u64::from(wd >> 3);
        // Exponents up to 31 give a window log up to 41: no overflow in u64.
        let base = 1u64 << log;
        window = Some(base + (base / 8) * u64::from(wd & 7));
        pos += 1;
    }
    if pos + did_len + fcs_len > src.size() {
        return Err(fail(at, Problem::Truncated));
    }
    let mut field = |from: u64, n: u64| -> Result<u64, FrameError> {
        let mut b = [0u8; 8];
        for (i, byte) in b.iter_mut().take(n as usize).enumerate() {
            *byte = w
                .get::<1>(from + i as u64)
                .map_err(|e| fail(at, read(e)))?
                .ok_or_else(|| fail(at, Problem::Truncated))?[0];
        }
        Ok(u64::from_le_bytes(b))
    };
    let did = field(pos, did_len)?;
    pos += did_len;
    let fcs = match fcs_len {
        0 => None,
        2 => Some(field(pos, 2)? + 256),
        n => Some(field(pos, n)?),
    };
    pos += fcs_len;
    let window = match (window, fcs) {
        (Some(w), _) => w,
        (None, Some(f)) => f,
        (None, None) => unreachable!("a single-segment frame has a content size"),
    };
    if window > WINDOW_MAX {
        return Err(fail(at, Problem::WindowTooLarge(window)));
    }
    let max = window.min(BLOCK_MAX);
    // A dictionary or checksum: the decoder's to check.
    let mut other = did != 0 || checksum;
    let mut runs: Vec<Run> = Vec::new();
    let mut content = 0u64;
    loop {
        let h = w
            .get::<3>(pos)
            .map_err(|e| fail(pos, read(e)))?
            .ok_or_else(|| fail(pos, Problem::Truncated))?;
        let h = u32::from_le_bytes([h[0], h[1], h[2], 0]);
        let last = h & 1 != 0;
        let kind = (h >> 1) & 3;
        let size = u64::from(h >> 3);
        let stored = match kind {
            0 => size,
            1 => 1,
            2 => size,
            _ => return Err(fail(pos, Problem::ReservedBlockType)),
        };
        if size > max {
            return Err(fail(pos, Problem::BlockTooLarge { size, max }));
        }
        let data = pos + 3;
        if data + stored > src.size() {
            return Err(fail(
                pos,
                Problem::PastEnd {
                    size: stored,
                    file_len: src.size(),
                },
            ));
        }
        if kind != 0 {
            other = true;
        } else if !other {
            let full = runs.len() == MAX_RUNS;
            match runs.last_mut() {
                Some(r) if r.len == size && r.at + r.count * (r.len + 3) == data => r.count += 1,
                _ if full => other = true,
                _ => runs.push(Run {
                    at: data,
                    len: size,
                    count: 1,
                }),
            }
            content += size;
        }
        pos = data + stored;
        if last {
            break;
        }
    }
    if other {
        return Ok(Frame::Other);
    }
    if let Some(declared) = fcs {
        if declared != content {
            return Err(fail(
                at,
                Problem::ContentSize {
                    declared,
                    actual: content,
                },
            ));
        }
    }
    Ok(Frame::Raw(RawFrame {
        start: at,
        end: pos,
        content,
        runs,
    }))
}

/// Bytes that do not compress (xorshift from `seed`), for the reader's tests.
#[cfg(test)]
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("b.tar.zst")
    }

    /// A frame header: descriptor `fhd`, then `rest` (window, dict, fcs).
    fn header(fhd: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_le_bytes().to_vec();
        v.push(fhd);
        v.extend_from_slice(rest);
        v
    }

    fn block(v: &mut Vec<u8>, last: bool, kind: u32, size: u32, content: &[u8]) {
        let h = (size << 3 | kind << 1 | u32::from(last)).to_le_bytes();
        v.extend_from_slice(&h[..3]);
        v.extend_from_slice(content);
    }

    fn raw_frame(sizes: &[usize], seed: u8) -> (Vec<u8>, Vec<u8>) {
        // Window 2^17, as pack writes.
        let mut v = header(0x00, &[0x38]);
        let mut content = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..s).map(|j| (j as u8).wrapping_mul(7) ^ seed).collect();
            block(&mut v, i + 1 == sizes.len(), 0, s as u32, &data);
            content.extend_from_slice(&data);
        }
        (v, content)
    }

    fn read(frame: &RawFrame, src: &[u8], from: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for e in frame.extents(from, len).unwrap() {
            for i in 0..e.count {
                let at = (e.at + i * e.stride) as usize;
                out.extend_from_slice(&src[at..at + e.len as usize]);
            }
        }
        out
    }

    #[test]
    fn a_frame_of_raw_blocks_maps_to_its_bytes_and_decodes_the_same() {
        let (mut v, content) = raw_frame(&[131072, 131072, 131072, 5000], 3);
        // Something after the frame: not part of it.
        v.extend_from_slice(b"after");
        let Frame::Raw(f) = frame_at(&v[..], 0, file()).unwrap() else {
            panic!("raw")
        };
        assert_eq!(f.content, content.len() as u64);
        assert_eq!(f.end, v.len() as u64 - 5);
        assert_eq!(f.runs.len(), 2);
        assert_eq!(zstd::decode_all(&v[..f.end as usize]).unwrap(), content);
        for (from, len) in [
            (0, content.len()),
            (1, 10),
            (131070, 5),
            (131072, 131072),
            (100, 300000),
            (393216, 5000),
            (393215, 1),
            (7, 0),
        ] {
            assert_eq!(
                read(&f, &v, from as u64, len as u64),
                content[from..from + len],
                "{from}+{len}"
            );
        }
        assert!(f.extents(1, content.len() as u64).is_none());
        for c in [0u64, 1, 131071, 131072, 393215, 398215] {
            let (at, n) = f.locate(c).unwrap();
            assert_eq!(v[at as usize], content[c as usize], "{c}");
            assert_eq!(
                n,
                if c < 393216 {
                    131072 - c % 131072
                } else {
                    398216 - c
                }
            );
        }
        assert_eq!(f.locate(398216), None);
        assert!(f.extents(u64::MAX, 2).is_none());
    }

    #[test]
    fn pack_s_raw_frames_are_mapped() {
        // The tar.zst pack writes of random data: a header frame of one raw
        // block, single segment, and the data's frame.
        let dir = tempfile::tempdir().unwrap();
        let data = noise(3_000_000, 0x9E37_79B9_7F4A_7C15);
        std::fs::write(dir.path().join("in"), &data).unwrap();
        let out = dir.path().join("b.tar.zst");
        let mut sp =
            crate::tarball::SinglePass::create(&out, true, 7, &crate::progress::Silent).unwrap();
        sp.add_input(0, &dir.path().join("in"), &|_| false, &mut |_| Ok(()))
            .unwrap();
        drop(sp);
        let z = std::fs::read(&out).unwrap();
        let Frame::Raw(head) = frame_at(&z[..], 0, file()).unwrap() else {
            panic!("the header's frame is raw")
        };
        assert_eq!(head.content, 512);
        let Frame::Raw(body) = frame_at(&z[..], head.end, file()).unwrap() else {
            panic!("the data's frame is raw")
        };
        assert_eq!(body.content, 3_000_000 + 512 - 3_000_000 % 512);
        assert_eq!(read(&body, &z, 0, data.len() as u64), data);
    }

    #[test]
    fn every_block_type() {
        // RLE and compressed blocks: another frame, for the decoder.
        let mut v = header(0x00, &[0x38]);
        block(&mut v, false, 0, 3, b"abc");
        block(&mut v, true, 1, 10, b"x");
        assert_eq!(frame_at(&v[..], 0, file()).unwrap(), Frame::Other);
        assert_eq!(zstd::decode_all(&v[..]).unwrap(), b"abcxxxxxxxxxx");
        let c = zstd::encode_all(&[b'a'; 100000][..], 3).unwrap();
        assert_eq!(frame_at(&c[..], 0, file()).unwrap(), Frame::Other);
        // Reserved.
        let mut v = header(0x00, &[0x38]);
        block(&mut v, true, 3, 1, b"a");
        let e = frame_at(&v[..], 0, file()).unwrap_err();
        assert_eq!((e.at, e.problem.clone()), (6, Problem::ReservedBlockType));
        assert!(e.to_string().contains("b.tar.zst") && e.to_string().contains("offset 6"));
        assert!(zstd::decode_all(&v[..]).is_err());
        // Skippable frames.
        let mut s = 0x184D_2A5Au32.to_le_bytes().to_vec();
        s.extend_from_slice(&4u32.to_le_bytes());
        s.extend_from_slice(b"skip");
        assert_eq!(frame_at(&s[..], 0, file()).unwrap(), Frame::Other);
        // An empty raw frame.
        let mut v = header(0x00, &[0x38]);
        block(&mut v, true, 0, 0, b"");
        let Frame::Raw(f) = frame_at(&v[..], 0, file()).unwrap() else {
            panic!()
        };
        assert_eq!((f.content, f.extents(0, 0)), (0, Some(vec![])));
    }

    #[test]
    fn a_checksum_or_dictionary_leaves_the_frame_to_the_decoder() {
        let mut v = header(0x04, &[0x38]);
        block(&mut v, true, 0, 3, b"abc");
        v.extend_from_slice(&[0; 4]);
        assert_eq!(frame_at(&v[..], 0, file()).unwrap(), Frame::Other);
        let mut v = header(0x01, &[0x38, 9]);
        block(&mut v, true, 0, 3, b"abc");
        assert_eq!(frame_at(&v[..], 0, file()).unwrap(), Frame::Other);
    }

    #[test]
    fn truncated_headers_are_refused_at_their_offset() {
        let (v, _) = raw_frame(&[1000, 1000], 1);
        let full = v.len();
        for cut in 1..full {
            let r = frame_at(&v[..cut], 0, file());
            let e = r.expect_err("a cut frame is refused");
            assert!(
                matches!(e.problem, Problem::Truncated | Problem::PastEnd { .. }),
                "{cut}: {e}"
            );
            assert!(zstd::decode_all(&v[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn sizes_over_the_limits_are_refused() {
        // A raw block over 128 KiB (window 2^20).
        let mut v = header(0x00, &[0x50]);
        let big = vec![0u8; 131073];
        block(&mut v, true, 0, 131073, &big);
        let e = frame_at(&v[..], 0, file()).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::BlockTooLarge {
                size: 131073,
                max: BLOCK_MAX
            }
        );
        assert!(zstd::decode_all(&v[..]).is_err());
        // A block larger than the window (2^10) it names.
        let mut v = header(0x00, &[0x00]);
        block(&mut v, true, 0, 2000, &[0u8; 2000]);
        assert!(matches!(
            frame_at(&v[..], 0, file()).unwrap_err().problem,
            Problem::BlockTooLarge { max: 1024, .. }
        ));
        assert!(zstd::decode_all(&v[..]).is_err());
        // A window over the decoder's limit (2^28).
        let mut v = header(0x00, &[18 << 3]);
        block(&mut v, true, 0, 3, b"abc");
        assert_eq!(
            frame_at(&v[..], 0, file()).unwrap_err().problem,
            Problem::WindowTooLarge(1 << 28)
        );
        assert!(zstd::decode_all(&v[..]).is_err());
        // A block whose size runs past the file.
        let mut v = header(0x00, &[0x38]);
        block(&mut v, true, 0, 100, b"short");
        assert!(matches!(
            frame_at(&v[..], 0, file()).unwrap_err().problem,
            Problem::PastEnd { size: 100, .. }
        ));
        // The reserved header bit.
        let mut v = header(0x08, &[0x38]);
        block(&mut v, true, 0, 3, b"abc");
        assert_eq!(
            frame_at(&v[..], 0, file()).unwrap_err().problem,
            Problem::ReservedBit
        );
        assert!(zstd::decode_all(&v[..]).is_err());
        // Not a frame.
        assert!(matches!(
            frame_at(&b"PK\x03\x04rest"[..], 0, file())
                .unwrap_err()
                .problem,
            Problem::Magic(0x0403_4b50)
        ));
    }

    #[test]
    fn a_content_size_that_lies_is_refused() {
        // Single segment, 1-byte content size 5, blocks holding 3.
        let mut v = header(0x20, &[5]);
        block(&mut v, true, 0, 3, b"abc");
        assert_eq!(
            frame_at(&v[..], 0, file()).unwrap_err().problem,
            Problem::ContentSize {
                declared: 5,
                actual: 3
            }
        );
        assert!(zstd::decode_all(&v[..]).is_err());
        // Single segment: the content size is the window, so a block over
        // it is over the limit.
        let mut v = header(0x20, &[2]);
        block(&mut v, true, 0, 3, b"abc");
        assert!(matches!(
            frame_at(&v[..], 0, file()).unwrap_err().problem,
            Problem::BlockTooLarge { max: 2, .. }
        ));
        // 2-byte content size (+256) that is right.
        let mut v = header(0x60, &[44, 0]);
        block(&mut v, true, 0, 300, &[1u8; 300]);
        let Frame::Raw(f) = frame_at(&v[..], 0, file()).unwrap() else {
            panic!()
        };
        assert_eq!(f.content, 300);
        assert_eq!(zstd::decode_all(&v[..]).unwrap(), vec![1u8; 300]);
        // A window (not single segment) with an 8-byte content size.
        let mut v = header(0xC0, &[0x38, 3, 0, 0, 0, 0, 0, 0, 0]);
        block(&mut v, true, 0, 3, b"abc");
        assert!(matches!(
            frame_at(&v[..], 0, file()).unwrap(),
            Frame::Raw(_)
        ));
        assert_eq!(zstd::decode_all(&v[..]).unwrap(), b"abc");
    }

    #[test]
    fn irregular_blocks_past_the_run_limit_go_to_the_decoder() {
        let sizes: Vec<usize> = (0..MAX_RUNS + 1).map(|i| 10 + i).collect();
        let (v, content) = raw_frame(&sizes, 9);
        assert_eq!(frame_at(&v[..], 0, file()).unwrap(), Frame::Other);
        let (v, _) = raw_frame(&sizes[..MAX_RUNS], 9);
        let Frame::Raw(f) = frame_at(&v[..], 0, file()).unwrap() else {
            panic!()
        };
        assert_eq!(f.runs.len(), MAX_RUNS);
        assert_eq!(read(&f, &v, 0, f.content), content[..f.content as usize]);
    }

    /// Every frame it maps decodes (by libzstd) to exactly the bytes its
    /// extents name, and every frame it refuses the decoder refuses too:
    /// each single-byte change and each cut of small frames of each kind.
    #[test]
    fn every_change_of_a_frame_is_mapped_exactly_or_left_to_a_decoder_that_fails() {
        let (raw, _) = raw_frame(&[700, 700, 300], 5);
        let mut single = header(0x20, &[40]);
        block(&mut single, true, 0, 40, &[9u8; 40]);
        let mut fcs2 = header(0x60, &[4, 0]);
        block(&mut fcs2, false, 0, 200, &[1u8; 200]);
        block(&mut fcs2, true, 0, 60, &[2u8; 60]);
        let mut rle = header(0x00, &[0x38]);
        block(&mut rle, true, 1, 9, b"r");
        for seed in [raw, single, fcs2, rle] {
            let mut cases: Vec<Vec<u8>> = (1..seed.len()).map(|n| seed[..n].to_vec()).collect();
            for i in 0..seed.len().min(40) {
                for x in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF] {
                    let mut v = seed.clone();
                    v[i] ^= x;
                    cases.push(v);
                }
            }
            for v in cases {
                let decoded = zstd::stream::decode_all(&v[..]);
                match frame_at(&v[..], 0, file()) {
                    Ok(Frame::Raw(f)) => {
                        let mapped = read(&f, &v, 0, f.content);
                        // The decoder reads on past the frame: judge the
                        // frame alone.
                        let alone = zstd::stream::decode_all(&v[..f.end as usize]);
                        assert_eq!(alone.ok(), Some(mapped), "{v:02x?}");
                    }
                    Ok(Frame::Other) => {}
                    Err(e) => assert!(decoded.is_err(), "{e}: {v:02x?}"),
                }
            }
        }
    }
}
