//! Reading the `control` file of a `.deb` with bounded memory: a `.deb` is
//! an `ar` archive of `debian-binary`, `control.tar[.gz|.xz|.zst]` and
//! `data.tar.*`; only the first two members are read.
//!
//! Bounds: the control member at most [`MAX_CONTROL_MEMBER`] bytes,
//! inflated to at most [`MAX_CONTROL_TAR`] bytes, its `control` file at
//! most [`MAX_CONTROL_FILE`]. xz is decoded with lzma-rs, which holds a
//! whole block in memory; the LZMA2 chunk headers (which state each chunk's
//! unpacked size) are summed first, so a stream declaring more than the
//! bound is refused before anything is inflated.

use std::io::{self, Read};
use std::path::Path;

/// The largest control member (compressed) read.
pub const MAX_CONTROL_MEMBER: u64 = 16 << 20;
/// The largest control.tar (inflated) read.
pub const MAX_CONTROL_TAR: u64 = 32 << 20;
/// The largest `control` file read.
pub const MAX_CONTROL_FILE: u64 = 1 << 20;

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// One `ar` member header: its name (trailing `/` and spaces cut) and size.
fn member_header(r: &mut impl Read) -> Result<(String, u64), String> {
    let mut h = [0u8; 60];
    r.read_exact(&mut h)
        .map_err(|e| format!("truncated ar member header ({e})"))?;
    if &h[58..60] != b"`\n" {
        return Err("bad ar member header (not a .deb?)".into());
    }
    let name = std::str::from_utf8(&h[..16])
        .map_err(|_| "ar member name is not text".to_string())?
        .trim_end_matches(' ')
        .trim_end_matches('/')
        .to_string();
    let size = std::str::from_utf8(&h[48..58])
        .ok()
        .and_then(|s| s.trim_end_matches(' ').parse::<u64>().ok())
        .ok_or_else(|| format!("ar member {name:?} has no valid size"))?;
    Ok((name, size))
}

/// The `control` file of the `.deb` at `path`, as text.
pub fn read_control(path: &Path) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut r = io::BufReader::new(f);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "too short to be a .deb".to_string())?;
    if &magic != AR_MAGIC {
        return Err("not a .deb (no ar archive header)".into());
    }
    let (name, size) = member_header(&mut r)?;
    if name != "debian-binary" || size > 64 {
        return Err(format!(
            "not a .deb: its first member is {name:?}, not debian-binary"
        ));
    }
    let mut version = Vec::new();
    (&mut r)
        .take(size + size % 2)
        .read_to_end(&mut version)
        .map_err(|e| e.to_string())?;
    if !version.starts_with(b"2.") {
        return Err(format!(
            "debian-binary says format {:?}; airlock reads format 2.x .deb files",
            String::from_utf8_lossy(&version).trim()
        ));
    }
    let (name, size) = member_header(&mut r)?;
    if size > MAX_CONTROL_MEMBER {
        return Err(format!(
            "its {name} member is {size} bytes, past airlock's bound of {MAX_CONTROL_MEMBER}"
        ));
    }
    let mut member = Vec::new();
    (&mut r)
        .take(size)
        .read_to_end(&mut member)
        .map_err(|e| e.to_string())?;
    if member.len() as u64 != size {
        return Err(format!("its {name} member is truncated"));
    }
    let tar = match name.as_str() {
        "control.tar" => member,
        "control.tar.gz" => bounded(flate2::read::MultiGzDecoder::new(&member[..]), &name)?,
        "control.tar.zst" => {
            let mut d = zstd::stream::read::Decoder::new(&member[..]).map_err(|e| e.to_string())?;
            // Refuse frames that need a window past the bound (memory).
            d.window_log_max(25).map_err(|e| e.to_string())?;
            bounded(d, &name)?
        }
        "control.tar.xz" => {
            let declared = xz_unpacked_size(&member).map_err(|e| format!("{name}: {e}"))?;
            if declared > MAX_CONTROL_TAR {
                return Err(format!(
                    "{name} inflates to {declared} bytes, past airlock's bound of {MAX_CONTROL_TAR}"
                ));
            }
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut &member[..], &mut out)
                .map_err(|e| format!("{name}: {e:?}"))?;
            out
        }
        other => {
            return Err(format!(
                "its second member is {other:?}, not control.tar, control.tar.gz, control.tar.xz or control.tar.zst"
            ))
        }
    };
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| format!("control.tar: {e}"))?;
        let p = entry.path_bytes();
        let p = p.strip_prefix(b"./").unwrap_or(&p);
        if p != b"control" {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err("control in control.tar is not a regular file".into());
        }
        let mut text = Vec::new();
        entry
            .take(MAX_CONTROL_FILE + 1)
            .read_to_end(&mut text)
            .map_err(|e| e.to_string())?;
        if text.len() as u64 > MAX_CONTROL_FILE {
            return Err(format!(
                "its control file is larger than airlock's bound of {MAX_CONTROL_FILE} bytes"
            ));
        }
        return String::from_utf8(text).map_err(|_| "its control file is not UTF-8".to_string());
    }
    Err("control.tar holds no control file".into())
}

fn bounded(r: impl Read, name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(MAX_CONTROL_TAR + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))?;
    if out.len() as u64 > MAX_CONTROL_TAR {
        return Err(format!(
            "{name} inflates past airlock's bound of {MAX_CONTROL_TAR} bytes"
        ));
    }
    Ok(out)
}

/// A cursor over a byte slice that never panics.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cur<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.pos).ok_or("truncated xz stream")?;
        self.pos += 1;
        Ok(v)
    }
    fn u16be(&mut self) -> Result<u64, String> {
        Ok(((self.byte()? as u64) << 8) | self.byte()? as u64)
    }
    fn skip(&mut self, n: u64) -> Result<(), String> {
        let end = (self.pos as u64).saturating_add(n);
        if end > self.b.len() as u64 {
            return Err("truncated xz stream".into());
        }
        self.pos = end as usize;
        Ok(())
    }
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..9 {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad xz variable-length integer".into())
    }
}

/// The sum of the unpacked sizes the LZMA2 chunk headers of the first xz
/// stream in `b` declare (what lzma-rs will hold in memory, at most). Blocks
/// must have one filter, LZMA2, as `xz` and dpkg-deb write them.
pub fn xz_unpacked_size(b: &[u8]) -> Result<u64, String> {
    let mut c = Cur { b, pos: 0 };
    if b.get(..6) != Some(&[0xfd, b'7', b'z', b'X', b'Z', 0][..]) {
        return Err("not an xz stream".into());
    }
    c.skip(6)?;
    let _flags0 = c.byte()?;
    let check = c.byte()? & 0x0f;
    c.skip(4)?;
    let check_size: u64 = match check {
        0 => 0,
        1..=3 => 4,
        4..=6 => 8,
        7..=9 => 16,
        _ => 32 << ((check - 10) / 3),
    };
    let mut total = 0u64;
    loop {
        let block_start = c.pos;
        let hsize = c.byte()?;
        if hsize == 0 {
            return Ok(total); // the index: the end of the blocks
        }
        let header_len = (hsize as u64 + 1) * 4;
        let flags = c.byte()?;
        if flags & 0x03 != 0 {
            return Err("xz block with more than one filter (airlock reads plain LZMA2)".into());
        }
        if flags & 0x40 != 0 {
            c.varint()?;
        }
        if flags & 0x80 != 0 {
            c.varint()?;
        }
        if c.varint()? != 0x21 {
            return Err("xz block whose filter is not LZMA2".into());
        }
        c.pos = block_start;
        c.skip(header_len)?;
        loop {
            let ctl = c.byte()?;
            match ctl {
                0 => break,
                1 | 2 => {
                    let n = c.u16be()? + 1;
                    total = total.saturating_add(n);
                    c.skip(n)?;
                }
                0x80..=0xff => {
                    let unpacked = (((ctl & 0x1f) as u64) << 16 | c.u16be()?) + 1;
                    let packed = c.u16be()? + 1;
                    if ctl >= 0xc0 {
                        c.skip(1)?;
                    }
                    // An LZ match may run past the chunk's end by up to 273 bytes.
                    total = total.saturating_add(unpacked + 273);
                    c.skip(packed)?;
                }
                _ => return Err(format!("invalid LZMA2 chunk control byte {ctl:#04x}")),
            }
            if total > MAX_CONTROL_TAR {
                return Ok(total);
            }
        }
        let used = (c.pos - block_start) as u64;
        c.skip((4 - used % 4) % 4)?;
        c.skip(check_size)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xz_walk_never_panics_on_garbage() {
        let mut x: u32 = 1;
        for len in 0..300usize {
            let mut b = vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0, 1, 0, 0, 0, 0];
            for _ in 0..len {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                b.push((x >> 24) as u8);
            }
            let _ = xz_unpacked_size(&b);
            let _ = xz_unpacked_size(&b[..len.min(b.len())]);
        }
    }

    #[test]
    fn xz_walk_refuses_a_stream_declaring_more_than_the_bound() {
        // Stream header (CRC64 check), one LZMA2 block whose chunks each
        // declare 2 MiB from 7 bytes: read as headers only, never inflated.
        let mut b = vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4, 0, 0, 0, 0];
        b.extend([0x02, 0x00, 0x21, 0x01, 0x16, 0, 0, 0, 0, 0, 0, 0]);
        for _ in 0..40 {
            b.extend([0xff, 0xff, 0xff, 0x00, 0x00, 0x5d, 0x00]);
        }
        b.push(0);
        let declared = xz_unpacked_size(&b).unwrap();
        assert!(declared > MAX_CONTROL_TAR, "{declared}");
        // Two filters (a chain that could inflate twice) are refused.
        let mut two = b.clone();
        two[13] = 0x01;
        assert!(xz_unpacked_size(&two)
            .unwrap_err()
            .contains("more than one filter"));
    }

    #[test]
    fn xz_walk_sums_what_lzma_rs_inflates() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &data[..], &mut xz).unwrap();
        let declared = xz_unpacked_size(&xz).unwrap();
        assert!(declared >= data.len() as u64, "{declared}");
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut &xz[..], &mut out).unwrap();
        assert_eq!(out, data);
    }
}
