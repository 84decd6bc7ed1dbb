//! A minimal zip reader: lists members from the central directory (zip64
//! included) and opens *stored* members (how `torch.save` writes its
//! archives) and *deflated* ones (which `torch.load` reads too) for reading.
//! It exists to reach a PyTorch checkpoint's `data.pkl` without a general
//! zip dependency. A deflated member is inflated as it is read, within
//! [`inflate_bound`]: past it the read fails. Other methods and encrypted
//! members are reported, never read. Member data is located the
//! way zip loaders (miniz, Python's zipfile) locate it: central directory
//! offset → local header → data, so the scanner reads the bytes a loader
//! would unpickle.

use std::io::{Read, Seek, SeekFrom};

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// Largest central directory read into memory.
pub const MAX_CENTRAL_DIRECTORY: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub method: u16,
    pub flags: u16,
    pub compressed_size: u64,
    pub size: u64,
    pub local_offset: u64,
}

impl Member {
    pub fn encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8"))
}

fn read_at<R: Read + Seek>(f: &mut R, at: u64, len: usize) -> Result<Vec<u8>, String> {
    f.seek(SeekFrom::Start(at))
        .map_err(|e| format!("cannot seek to byte {at}: {e}"))?;
    let mut b = vec![0u8; len];
    f.read_exact(&mut b)
        .map_err(|e| format!("cannot read {len} bytes at {at}: {e}"))?;
    Ok(b)
}

/// Every member the central directory lists, in its order.
pub fn members<R: Read + Seek>(f: &mut R, size: u64) -> Result<Vec<Member>, String> {
    if size < 22 {
        return Err("too short to be a zip archive (no end of central directory)".into());
    }
    let tail_len = size.min(22 + 0xffff);
    let tail = read_at(f, size - tail_len, tail_len as usize)?;
    // The last EOCD record whose comment runs exactly to the end of the file.
    let at = (0..=tail.len() - 22)
        .rev()
        .find(|&i| {
            u32_at(&tail, i) == EOCD_SIG
                && i + 22 + usize::from(u16_at(&tail, i + 20)) == tail.len()
        })
        .ok_or("no end-of-central-directory record: not a zip archive, or truncated")?;
    let eocd_pos = size - tail_len + at as u64;
    let e = &tail[at..at + 22];
    let (disk, cd_disk) = (u16_at(e, 4), u16_at(e, 6));
    let mut count = u64::from(u16_at(e, 10));
    let mut cd_size = u64::from(u32_at(e, 12));
    let mut cd_offset = u64::from(u32_at(e, 16));
    if disk != 0 || cd_disk != 0 {
        return Err("a multi-disk (split) zip archive".into());
    }
    if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        if eocd_pos < 20 {
            return Err("zip64 end-of-central-directory locator missing".into());
        }
        let loc = read_at(f, eocd_pos - 20, 20)?;
        if u32_at(&loc, 0) != EOCD64_LOCATOR_SIG {
            return Err("zip64 end-of-central-directory locator missing".into());
        }
        let rec_at = u64_at(&loc, 8);
        if rec_at.checked_add(56).is_none_or(|end| end > eocd_pos) {
            return Err("zip64 end-of-central-directory record out of bounds".into());
        }
        let rec = read_at(f, rec_at, 56)?;
        if u32_at(&rec, 0) != EOCD64_SIG {
            return Err("zip64 end-of-central-directory record missing".into());
        }
        count = u64_at(&rec, 32);
        cd_size = u64_at(&rec, 40);
        cd_offset = u64_at(&rec, 48);
    }
    if cd_size > MAX_CENTRAL_DIRECTORY {
        return Err(format!(
            "central directory of {cd_size} bytes is larger than the {MAX_CENTRAL_DIRECTORY}-byte limit"
        ));
    }
    if cd_offset
        .checked_add(cd_size)
        .is_none_or(|end| end > eocd_pos)
    {
        return Err("central directory lies outside the archive".into());
    }
    if count > cd_size / 46 {
        return Err(format!(
            "end record claims {count} members, more than the central directory can hold"
        ));
    }
    let cd = read_at(f, cd_offset, cd_size as usize)?;
    let mut out = Vec::with_capacity(count as usize);
    let mut p = 0usize;
    for i in 0..count {
        if p + 46 > cd.len() || u32_at(&cd, p) != CENTRAL_SIG {
            return Err(format!("central directory entry {i} is damaged"));
        }
        let h = &cd[p..p + 46];
        let (flags, method) = (u16_at(h, 8), u16_at(h, 10));
        let mut compressed_size = u64::from(u32_at(h, 20));
        let mut usize_ = u64::from(u32_at(h, 24));
        let (nlen, xlen, clen) = (
            usize::from(u16_at(h, 28)),
            usize::from(u16_at(h, 30)),
            usize::from(u16_at(h, 32)),
        );
        let mut local_offset = u64::from(u32_at(h, 42));
        let end = p + 46 + nlen + xlen + clen;
        if end > cd.len() {
            return Err(format!("central directory entry {i} runs past its end"));
        }
        let name = String::from_utf8_lossy(&cd[p + 46..p + 46 + nlen]).into_owned();
        // zip64 extended information: present fields follow in a fixed order.
        let mut x = &cd[p + 46 + nlen..p + 46 + nlen + xlen];
        while x.len() >= 4 {
            let (id, len) = (u16_at(x, 0), usize::from(u16_at(x, 2)));
            if 4 + len > x.len() {
                break;
            }
            if id == 1 {
                let mut d = &x[4..4 + len];
                let mut next = |field: &mut u64| {
                    if *field == 0xffff_ffff {
                        if d.len() < 8 {
                            return Err(format!("{name}: zip64 field missing"));
                        }
                        *field = u64_at(d, 0);
                        d = &d[8..];
                    }
                    Ok(())
                };
                next(&mut usize_)?;
                next(&mut compressed_size)?;
                next(&mut local_offset)?;
            }
            x = &x[4 + len..];
        }
        out.push(Member {
            name,
            method,
            flags,
            compressed_size,
            size: usize_,
            local_offset,
        });
        p = end;
    }
    Ok(out)
}

/// Where a member's data starts, from its local header, checked to lie inside the archive.
pub fn data_offset<R: Read + Seek>(f: &mut R, size: u64, m: &Member) -> Result<u64, String> {
    if m.local_offset.checked_add(30).is_none_or(|e| e > size) {
        return Err(format!("{}: local header lies outside the archive", m.name));
    }
    let h = read_at(f, m.local_offset, 30)?;
    if u32_at(&h, 0) != LOCAL_SIG {
        return Err(format!(
            "{}: no local header where the central directory points",
            m.name
        ));
    }
    let start = m.local_offset + 30 + u64::from(u16_at(&h, 26)) + u64::from(u16_at(&h, 28));
    if start
        .checked_add(m.compressed_size)
        .is_none_or(|e| e > size)
    {
        return Err(format!("{}: data runs past the end of the archive", m.name));
    }
    Ok(start)
}

/// Opens a stored member for reading. Compressed and encrypted members are refused.
pub fn open_stored<'f, R: Read + Seek>(
    f: &'f mut R,
    size: u64,
    m: &Member,
) -> Result<std::io::Take<&'f mut R>, String> {
    if m.encrypted() {
        return Err(format!("{}: encrypted member", m.name));
    }
    if m.method != 0 {
        return Err(format!(
            "{}: compressed member (method {}); airlock reads stored and deflated members only",
            m.name, m.method
        ));
    }
    if m.compressed_size != m.size {
        return Err(format!(
            "{}: stored member whose sizes disagree ({} vs {})",
            m.name, m.compressed_size, m.size
        ));
    }
    let start = data_offset(f, size, m)?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot seek to byte {start}: {e}"))?;
    Ok(f.take(m.size))
}

/// Most bytes any compressed stream may inflate to.
pub const MAX_INFLATED: u64 = 16 << 30;
/// Most a compressed stream may grow (inflated / compressed bytes) beyond
/// [`RATIO_FLOOR`]: deflate's own maximum is about 1032.
pub const MAX_RATIO: u64 = 1100;
/// Inflated size allowed whatever the ratio.
pub const RATIO_FLOOR: u64 = 64 << 20;

/// How many bytes `compressed` bytes may inflate to: `MAX_RATIO` times
/// their size, at least `RATIO_FLOOR`, at most `MAX_INFLATED`.
pub fn inflate_bound(compressed: u64) -> u64 {
    compressed
        .saturating_mul(MAX_RATIO)
        .clamp(RATIO_FLOOR, MAX_INFLATED)
}

/// A reader that fails once more than its bound came through.
pub struct Bounded<R> {
    inner: R,
    left: u64,
    bound: u64,
    what: String,
}

impl<R> Bounded<R> {
    pub fn new(inner: R, bound: u64, what: impl Into<String>) -> Self {
        Bounded {
            inner,
            left: bound,
            bound,
            what: what.into(),
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "{} inflates past {} bytes, airlock's bound for it ({}x its compressed size, at least {} MiB, at most {} GiB)",
                self.what,
                self.bound,
                MAX_RATIO,
                RATIO_FLOOR >> 20,
                MAX_INFLATED >> 30
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Opens a stored or deflated member for reading: its uncompressed bytes,
/// bounded by its declared size and [`inflate_bound`].
pub fn open_member<'f, R: Read + Seek>(
    f: &'f mut R,
    size: u64,
    m: &Member,
) -> Result<Box<dyn Read + 'f>, String> {
    if m.method != 8 {
        return Ok(Box::new(open_stored(f, size, m)?));
    }
    if m.encrypted() {
        return Err(format!("{}: encrypted member", m.name));
    }
    let bound = inflate_bound(m.compressed_size);
    if m.size > bound {
        return Err(format!(
            "{}: deflated member declares {} bytes, past airlock's bound of {bound} for {} compressed bytes",
            m.name, m.size, m.compressed_size
        ));
    }
    let start = data_offset(f, size, m)?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot seek to byte {start}: {e}"))?;
    let raw = f.take(m.compressed_size);
    let inflated = flate2::read::DeflateDecoder::new(std::io::BufReader::new(raw));
    // A loader reads the declared size: no more is scanned, and a stream
    // that inflates past it is cut there.
    Ok(Box::new(
        Bounded::new(inflated, bound, m.name.clone()).take(m.size),
    ))
}

/// Writes a zip archive of stored members; for tests and fixtures.
pub fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let mut local = Vec::new();
        local.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn lists_and_reads_stored_members() {
        let z = build(&[
            ("archive/data.pkl", b"\x80\x02N."),
            ("archive/data/0", b"abcd"),
        ]);
        let mut c = Cursor::new(z.clone());
        let ms = members(&mut c, z.len() as u64).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].name, "archive/data.pkl");
        let mut body = Vec::new();
        open_stored(&mut c, z.len() as u64, &ms[1])
            .unwrap()
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, b"abcd");
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn damaged_archives_are_errors() {
        let z = build(&[("a.pkl", b"xyz")]);
        for cut in [0, 10, z.len() - 1] {
            let b = &z[..cut];
            assert!(
                members(&mut Cursor::new(b), b.len() as u64).is_err(),
                "cut {cut}"
            );
        }
        // A compressed member is refused, not inflated.
        let mut comp = z.clone();
        let cd = z.len() - 22 - 46 - 5;
        comp[cd + 10] = 8;
        let ms = members(&mut Cursor::new(&comp), comp.len() as u64).unwrap();
        let e = open_stored(&mut Cursor::new(&comp), comp.len() as u64, &ms[0]).unwrap_err();
        assert!(e.contains("compressed"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut c = Cursor::new(&bytes);
            if let Ok(ms) = members(&mut c, bytes.len() as u64) {
                for m in &ms {
                    let _ = open_stored(&mut c, bytes.len() as u64, m).map(|mut r| {
                        let mut v = Vec::new();
                        let _ = r.read_to_end(&mut v);
                    });
                }
            }
        }
    }
}
