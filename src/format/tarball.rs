//! Writing a bundle directory as one tar (optionally zstd-compressed), in the
//! canonical entry order the streaming verifier relies on: tag files first,
//! then signatures and custody events, then the payload. Headers are
//! deterministic: fixed mtime, uid/gid 0, no user names, modes 0644/0755.

use std::collections::HashMap;
use std::io::{self, Read, Write};
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

/// Writes the files listed in `paths` as a tar into `out`: each from
/// `inputs` when it is there (an input file read straight into the tar, see
/// [`append_input`]), otherwise from `dir`.
pub fn write_tar<W: Write>(
    dir: &Path,
    paths: &[String],
    inputs: &HashMap<String, (&Path, Hashed)>,
    out: W,
    mtime: u64,
    progress: &dyn Progress,
) -> Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    for p in paths {
        if let Some((src, expected)) = inputs.get(p) {
            append_input(&mut b, p, src, *expected, mtime, progress)?;
            continue;
        }
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
mod input_tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn pack_one(src: &Path, expected: Hashed) -> Result<Vec<u8>> {
        let inputs = HashMap::from([("data/x".to_string(), (src, expected))]);
        write_tar(
            Path::new("/nonexistent"),
            &["data/x".to_string()],
            &inputs,
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
