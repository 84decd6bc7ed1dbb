//! Additions carried inside a bundle file: co-signatures and custody events
//! added after pack travel with the file itself, so an officer who copies only
//! the file carries everything.
//!
//! - A plain tar grows the way `tar -r` grows it: the new entries overwrite the
//!   end-of-archive blocks, followed by new ones. Stock `tar` lists them.
//! - A tar.zst gets one zstd *skippable frame* per addition batch, appended to
//!   the file. zstd and `tar --zstd` skip such frames, so stock tools still read
//!   the bundle; airlock finds them from the end of the file without
//!   decompressing anything. Each frame holds a small tar of the new entries,
//!   then the frame's total length (u64, little-endian) and [`TRAILER_MAGIC`].
//! - Volumes: every volume file gets the additions, so each still verifies alone.
//! - A directory bundle gets the files in `signatures/` and `custody/`.
//!
//! The payload is never rewritten: the bundle id stays the same. Only
//! signatures and custody events can be added; the reader refuses anything
//! else after the payload, and a payload entry after an addition.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::bundle::MAX_TAG_TOTAL;
use crate::error::{Error, Result};
use crate::rawtar::{Member, Members};
use crate::source::{is_zstd, place_of, Form, Place, SKIPPABLE_MAGIC, TRAILER, TRAILER_MAGIC};

/// Adds `entries` (`signatures/...` or `custody/...`, with their bytes) to the
/// bundle at `form`. Returns the files written to.
pub fn append(form: &Form, entries: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<PathBuf>> {
    for (path, _) in entries {
        if !matches!(place_of(path), Place::Signature | Place::Custody) {
            return Err(Error::Usage(format!(
                "{path}: only signatures and custody events can be added to a bundle"
            )));
        }
    }
    match form {
        Form::Dir(dir) => entries
            .iter()
            .map(|(rel, bytes)| write_new(&dir.join(rel), bytes))
            .collect(),
        Form::Tar { path, zstd } => {
            append_file(path, *zstd, entries, mtime)?;
            Ok(vec![path.clone()])
        }
        Form::Volumes { files } => {
            for f in files {
                append_file(f, is_zstd(f)?, entries, mtime)?;
            }
            Ok(files.clone())
        }
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    fs_err::create_dir_all(path.parent().expect("has parent"))?;
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            Error::Usage(format!(
                "{}: {e} (another sign or custody append running at the same time?)",
                path.display()
            ))
        })?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(path.to_path_buf())
}

/// The entries as a tar fragment (no end-of-archive blocks), deterministic headers.
fn tar_fragment(entries: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for (path, bytes) in entries {
        crate::tarball::append(
            &mut b,
            path,
            bytes.len() as u64,
            crate::bundle::MODE_FILE,
            mtime,
            &mut bytes.as_slice(),
        )?;
    }
    let mut out = b.into_inner()?;
    // `into_inner` wrote the two end-of-archive blocks; the caller places them.
    out.truncate(out.len() - 1024);
    Ok(out)
}

fn append_file(path: &Path, zstd: bool, entries: &[(String, Vec<u8>)], mtime: u64) -> Result<()> {
    let fragment = tar_fragment(entries, mtime)?;
    let mut file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    // One writer at a time per bundle file.
    file.file()
        .lock()
        .map_err(|e| Error::Usage(format!("cannot lock {}: {e}", path.display())))?;
    if zstd {
        let mut user = fragment;
        user.extend_from_slice(&[0u8; 1024]);
        let total = 8 + user.len() as u64 + TRAILER;
        if total > MAX_TAG_TOTAL {
            return Err(Error::Usage(format!(
                "{}: additions of {total} bytes are more than a bundle may carry",
                path.display()
            )));
        }
        user.extend_from_slice(&total.to_le_bytes());
        user.extend_from_slice(TRAILER_MAGIC);
        let mut frame = Vec::with_capacity(user.len() + 8);
        frame.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        frame.extend_from_slice(&(user.len() as u32).to_le_bytes());
        frame.extend_from_slice(&user);
        file.seek(SeekFrom::End(0))?;
        file.write_all(&frame)?;
    } else {
        let end = tar_end(path)?;
        file.seek(SeekFrom::Start(end))?;
        file.write_all(&fragment)?;
        file.write_all(&[0u8; 1024])?;
        let len = end + fragment.len() as u64 + 1024;
        file.set_len(len)?;
    }
    file.sync_all()?;
    Ok(())
}

/// Where the entries of a plain tar end (the offset of its end-of-archive
/// blocks). Everything after must be zeros, so nothing is overwritten.
/// Walked raw like every tar (`rawtar`): metadata entries are bounded, and
/// a tar the walk cannot place its end in the way other tools would (one
/// stopped early, a pax size record) is refused, not added to.
fn tar_end(path: &Path) -> Result<u64> {
    let f = std::io::BufReader::new(fs_err::File::open(path)?);
    let mut archive = tar::Archive::new(f);
    let mut end = 0u64;
    let refuse = |problem: String| {
        crate::error::single(
            path.display().to_string(),
            format!(
                "{problem}; not adding to it (verify the bundle, or get it again from its source)"
            ),
        )
    };
    for member in Members::new(archive.entries_with_seek()?) {
        let Member { entry, meta } = member.map_err(|stop| refuse(stop.to_string()))?;
        if meta.size_disagrees(entry.size()) {
            let name = String::from_utf8_lossy(&meta.path_bytes(&entry)).into_owned();
            return Err(refuse(format!(
                "a pax size record for {name:?} other than its header's"
            )));
        }
        end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
    }
    let mut rest = fs_err::File::open(path)?;
    rest.seek(SeekFrom::Start(end))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = rest.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(Error::Usage(format!(
                "{}: unexpected bytes after the end of the tar; not adding to it",
                path.display()
            )));
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawtar::test_member as member;

    fn end_of(bytes: &[u8]) -> Result<u64> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.tar");
        std::fs::write(&p, bytes).unwrap();
        tar_end(&p)
    }

    #[test]
    fn the_end_of_a_tar_is_found_with_its_metadata_bounded() {
        let mut t = member(tar::EntryType::Regular, "bagit.txt", 3, b"abc");
        t.extend(member(tar::EntryType::GNULongName, "L", 4, b"abc\0"));
        t.extend(member(tar::EntryType::Regular, "x", 600, &[1u8; 600]));
        let end = t.len() as u64;
        t.extend([0u8; 1024]);
        assert_eq!(end_of(&t).unwrap(), end);
        // An 8 GiB pax header (4 KiB of it present): refused, not read.
        let mut t = member(tar::EntryType::Regular, "bagit.txt", 3, b"abc");
        t.extend(member(
            tar::EntryType::XHeader,
            "PaxHeaders/x",
            8 << 30,
            &[b'a'; 4096],
        ));
        let err = end_of(&t).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let msg = err.to_string();
        assert!(msg.contains("b.tar"), "{msg}");
        assert!(
            msg.contains("\"PaxHeaders/x\" declares 8589934592 bytes"),
            "{msg}"
        );
        // A pax size other than the header's: where it ends is in dispute.
        let mut t = member(tar::EntryType::XHeader, "P", 12, b"12 size=600\n");
        t.extend(member(tar::EntryType::Regular, "x", 3, b"abc"));
        t.extend([0u8; 1024]);
        let msg = end_of(&t).unwrap_err().to_string();
        assert!(msg.contains("pax size record"), "{msg}");
    }
}
