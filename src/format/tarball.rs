//! Writing a bundle directory as one tar (optionally zstd-compressed), in the
//! canonical entry order the streaming verifier relies on: tag files first,
//! then signatures and custody events, then the payload. Headers are
//! deterministic: fixed mtime, uid/gid 0, no user names, modes 0644/0755.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::bundle::{
    BAGIT_TXT, BAG_INFO, CUSTODY_DIR, DESCRIPTION, MANIFEST, OCI_INDEX, OCI_LAYOUT, SIGNATURES_DIR,
    TAGMANIFEST, VERIFY_TXT,
};
use crate::error::Result;
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
    out.extend(
        list_dir(&dir.join(crate::bundle::BLOBS_PREFIX))?
            .into_iter()
            .map(|n| format!("{}{n}", crate::bundle::BLOBS_PREFIX)),
    );
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

/// Writes the files of `dir` listed in `paths` as a tar into `out`.
pub fn write_tar<W: Write>(
    dir: &Path,
    paths: &[String],
    out: W,
    mtime: u64,
    progress: &dyn Progress,
) -> Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    for p in paths {
        let f = fs_err::File::open(dir.join(p))?;
        let size = f.metadata()?.len();
        let mut counted = Counting { inner: f, progress };
        append(
            &mut b,
            p,
            size,
            crate::bundle::MODE_FILE,
            mtime,
            &mut counted,
        )?;
    }
    Ok(b.into_inner()?)
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

/// The zstd encoder every tar.zst is written with: level 3, compressed on
/// every core. zstd's multi-threaded output is the same for any number of
/// workers, so a bundle's bytes do not depend on the machine that packed it.
pub fn zstd_encoder<W: std::io::Write>(w: W) -> std::io::Result<zstd::Encoder<'static, W>> {
    let mut enc = zstd::Encoder::new(w, 3)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    enc.multithread(workers.max(1))?;
    Ok(enc)
}

#[cfg(test)]
mod zstd_tests {
    use std::io::Write;

    fn compress(workers: u32, data: &[u8]) -> Vec<u8> {
        let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
        enc.multithread(workers).unwrap();
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
