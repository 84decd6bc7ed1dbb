//! Reading the `control` file of a `.deb` with bounded memory: a `.deb` is
//! an `ar` archive of `debian-binary`, `control.tar[.gz|.xz|.zst]` and
//! `data.tar.*`; only the first two members are read.
//!
//! Bounds: the control member at most [`MAX_CONTROL_MEMBER`] bytes,
//! inflated to at most [`MAX_CONTROL_TAR`] bytes, its `control` file at
//! most [`MAX_CONTROL_FILE`]. Every compression is inflated as a stream
//! and stopped at the bound; the xz decoder's dictionary is at most
//! [`XZ_MEM_LIMIT_KB`]. (xz was once decoded with lzma-rs, which holds a
//! whole block in memory, after summing the sizes the LZMA2 chunk headers
//! declare; but a chunk may end before its declared packed size, and the
//! decoder then reads the rest as further chunks the sum never saw: 30 KiB
//! inflated to 160 MiB past a declared 1 KiB.)

use std::io::{self, Read};
use std::path::Path;

/// The largest control member (compressed) read.
pub const MAX_CONTROL_MEMBER: u64 = 16 << 20;
/// The largest control.tar (inflated) read.
pub const MAX_CONTROL_TAR: u64 = 32 << 20;
/// The largest `control` file read.
pub const MAX_CONTROL_FILE: u64 = 1 << 20;
/// The most memory the xz decoder may use (KiB): a 64 MiB dictionary
/// (`dpkg-deb -z9`, `xz -9`) and the decoder's own state.
pub const XZ_MEM_LIMIT_KB: u32 = 72 * 1024;

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
        "control.tar.xz" => bounded(
            lzma_rust2::XzReader::new_mem_limit(&member[..], false, XZ_MEM_LIMIT_KB),
            &name,
        )?,
        other => {
            return Err(format!(
                "its second member is {other:?}, not control.tar, control.tar.gz, control.tar.xz or control.tar.zst"
            ))
        }
    };
    let mut archive = tar::Archive::new(&tar[..]);
    // Raw, metadata bounded, long names and pax paths applied (`rawtar`).
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for member in crate::rawtar::Members::new(entries) {
        let m = member.map_err(|e| format!("control.tar: {e}"))?;
        // dpkg goes by a pax size record, the walk by the header: after a
        // member where they differ, the two would see different members.
        if m.meta.size_disagrees(m.entry.size()) {
            return Err(format!(
                "control.tar: {:?} has a pax size record other than its header's size",
                String::from_utf8_lossy(&m.path_bytes())
            ));
        }
        let control = {
            let p = m.path_bytes();
            p.strip_prefix(b"./").unwrap_or(&p) == b"control"
        };
        if !control {
            continue;
        }
        if !m.kind().is_file() {
            return Err("control in control.tar is not a regular file".into());
        }
        let entry = m.entry;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An ar archive of `debian-binary` and one control member.
    fn deb(member: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, bytes) in [("debian-binary", &b"2.0\n"[..]), (member, data)] {
            let header = format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                100644,
                bytes.len()
            );
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(bytes);
            if bytes.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn read(member: &str, data: &[u8]) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, deb(member, data)).unwrap();
        read_control(&path)
    }

    #[test]
    fn xz_control_with_chunks_hidden_in_a_chunk_is_stopped_at_the_bound() {
        // Found while writing the deb_control fuzz target (fuzz/README.md):
        // one LZMA2 chunk of 1000 bytes whose declared packed size also
        // covers 20 chunks of 2 MiB of zeros (7 KiB in all; written by
        // fuzz/make-seeds-sources). The chunk headers summed to 1 KiB;
        // lzma-rs inflated 40 MiB into memory (then found no control file).
        // The streaming decoder refuses the chunk as corrupt.
        let xz = include_bytes!("../../../tests/fixtures/apt/hidden-chunks.xz");
        let err = read("control.tar.xz", xz).unwrap_err();
        assert!(err.starts_with("control.tar.xz: "), "{err}");
    }

    #[test]
    fn xz_control_inflating_past_the_bound_is_stopped_there() {
        // 33 MiB of zeros in 5 KiB (Python's lzma; fuzz/make-seeds-sources).
        let xz = include_bytes!("../../../tests/fixtures/apt/zeros-33m.xz");
        let err = read("control.tar.xz", xz).unwrap_err();
        assert!(
            err.starts_with("control.tar.xz") && err.contains("bound of 33554432"),
            "{err}"
        );
    }

    #[test]
    fn xz_control_is_read() {
        let mut tar = tar::Builder::new(Vec::new());
        let control = b"Package: zstd\nVersion: 1.5\nArchitecture: amd64\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(control.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "./control", &control[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar[..], &mut xz).unwrap();
        assert_eq!(
            read("control.tar.xz", &xz).unwrap(),
            String::from_utf8_lossy(control)
        );
        // Garbage after the xz magic is an error, never a panic.
        let mut x: u32 = 1;
        for len in 0..200usize {
            let mut b = vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0, 1, 0, 0, 0, 0];
            for _ in 0..len {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                b.push((x >> 24) as u8);
            }
            assert!(read("control.tar.xz", &b).is_err());
        }
    }
}
