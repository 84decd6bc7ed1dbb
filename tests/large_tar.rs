//! A plain tar holding large files: its large payload entries are hashed in
//! parallel where they lie in the file (positioned reads), its small ones
//! as the walk streams by. Each fault below must be refused as the stream
//! refuses it, naming the entry at fault: the same bytes compressed into a
//! tar.zst (which is always streamed) give the same finding.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::Digest;

/// Sizes of the two large files, above the 4 MiB from which a plain tar's
/// entries are hashed in parallel.
const BIG_A: usize = 6 << 20;
const BIG_B: usize = (5 << 20) + 4321;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that look random (no pickle, no known header) of length `n`.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    v[0] = b'x';
    v
}

/// The fixture with two large files among its docs; returns their blob
/// paths inside the bundle.
fn large_fixture() -> (Fixture, String, String) {
    let f = Fixture::new();
    let (a, b) = (noise(BIG_A, 7), noise(BIG_B, 11));
    std::fs::write(f.path("src/docs/big-a.bin"), &a).unwrap();
    std::fs::write(f.path("src/docs/sub/big-b.bin"), &b).unwrap();
    let blob = |d: &[u8]| format!("data/blobs/sha256/{}", sha256_hex(d));
    (f, blob(&a), blob(&b))
}

/// Where entry `path`'s data starts in the tar, and its size.
fn data_of(tar: &Path, path: &str) -> (usize, usize) {
    let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.path_bytes() == path.as_bytes() {
            return (e.raw_file_position() as usize, e.size() as usize);
        }
    }
    panic!("no entry {path} in {}", tar.display())
}

/// The report's findings about exactly `subject`, as printed.
fn findings(o: &Output, subject: &str) -> Vec<String> {
    let prefix = format!("{subject}: ");
    stderr(o)
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// Writes `bytes` as `NAME.tar` and, compressed, as `NAME.tar.zst`.
fn both_forms(f: &Fixture, name: &str, bytes: &[u8]) -> (PathBuf, PathBuf) {
    let tar = f.path(&format!("dist/{name}.tar"));
    std::fs::write(&tar, bytes).unwrap();
    let zst = f.path(&format!("dist/{name}.tar.zst"));
    std::fs::write(&zst, zstd::encode_all(bytes, 1).unwrap()).unwrap();
    (tar, zst)
}

/// `tar` (hashed in parallel) is refused with a finding about `blob` that
/// contains `what`, and that finding is exactly the stream's (`zst`).
#[track_caller]
fn refused_alike(f: &Fixture, tar: &Path, zst: &Path, blob: &str, what: &str) -> Vec<String> {
    let (o, oz) = (f.verify(tar), f.verify(zst));
    assert_eq!(code(&o), 1, "tar: {}", stderr(&o));
    assert_eq!(code(&oz), 1, "tar.zst: {}", stderr(&oz));
    let got = findings(&o, blob);
    assert!(
        got.iter().any(|l| l.contains(what)),
        "no finding about {blob} says {what:?}:\n{}",
        stderr(&o)
    );
    assert_eq!(got, findings(&oz, blob), "tar and tar.zst differ");
    got
}

#[test]
fn a_tar_of_large_files_verifies_and_imports_them_byte_for_byte() {
    let (f, _, _) = large_fixture();
    let tar = f.pack("tar");
    let o = f.verify(&tar);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Import stages each large blob from the pool's threads.
    imports_and_exports_whole(&f, &tar);
}

/// Imports `bundle` into a fresh store and exports it: each large file
/// comes out once, byte for byte its source.
fn imports_and_exports_whole(f: &Fixture, bundle: &Path) {
    let o = f.import(bundle, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--to",
        &f.s("out"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for rel in ["big-a.bin", "sub/big-b.bin"] {
        let src = std::fs::read(f.path(&format!("src/docs/{rel}"))).unwrap();
        let hits: Vec<_> = walkdir::WalkDir::new(f.path("out"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file() && e.file_name().to_str() == rel.rsplit('/').next())
            .collect();
        assert_eq!(hits.len(), 1, "{rel} exported once");
        assert!(
            std::fs::read(hits[0].path()).unwrap() == src,
            "{rel} exported whole"
        );
    }
}

#[test]
fn a_flipped_byte_in_the_middle_of_large_members_names_each() {
    let (f, a, b) = large_fixture();
    let good = f.pack("tar");
    let mut bytes = std::fs::read(&good).unwrap();
    for blob in [&a, &b] {
        let (at, size) = data_of(&good, blob);
        bytes[at + size / 2] ^= 0x01;
    }
    let (tar, zst) = both_forms(&f, "flipped", &bytes);
    refused_alike(&f, &tar, &zst, &a, "sha256 mismatch");
    refused_alike(&f, &tar, &zst, &b, "sha256 mismatch");
}

#[test]
fn a_large_member_whose_tar_size_disagrees_with_the_manifest_is_named() {
    let (f, a, _) = large_fixture();
    let good = f.pack("tar");
    let mut entries = read_tar(&good);
    let i = entries.iter().position(|e| e.path == a).unwrap();
    entries[i].data.push(b'!');
    let longer = f.path("dist/longer.tar");
    write_tar(&longer, &entries);
    let (tar, zst) = both_forms(&f, "longer", &std::fs::read(&longer).unwrap());
    let got = refused_alike(&f, &tar, &zst, &a, "size");
    assert!(
        got.iter().any(|l| l.contains(&format!(
            "size {} but the signed manifests declare {BIG_A}",
            BIG_A + 1
        ))),
        "{got:?}"
    );
    // One byte short: the same.
    entries[i].data.truncate(BIG_A - 1);
    write_tar(&longer, &entries);
    let (tar, zst) = both_forms(&f, "shorter", &std::fs::read(&longer).unwrap());
    let got = refused_alike(&f, &tar, &zst, &a, "size");
    assert!(
        got.iter().any(|l| l.contains(&format!(
            "size {} but the signed manifests declare {BIG_A}",
            BIG_A - 1
        ))),
        "{got:?}"
    );
}

#[test]
fn a_tar_cut_inside_a_large_member_names_it() {
    let (f, a, _) = large_fixture();
    let good = f.pack("tar");
    let bytes = std::fs::read(&good).unwrap();
    let (at, size) = data_of(&good, &a);
    let (tar, zst) = both_forms(&f, "cut", &bytes[..at + size / 2]);
    let got = refused_alike(&f, &tar, &zst, &a, "size");
    assert!(
        got.iter().any(|l| l.contains(&format!(
            "size {} but the signed manifests declare {size}",
            size / 2
        ))),
        "{got:?}"
    );
}

#[test]
fn a_large_member_beyond_the_end_of_the_tar_is_named() {
    let (f, a, _) = large_fixture();
    let good = f.pack("tar");
    let bytes = std::fs::read(&good).unwrap();
    // Its header is there; not one byte of its data.
    let (at, size) = data_of(&good, &a);
    let (tar, zst) = both_forms(&f, "beyond", &bytes[..at]);
    let got = refused_alike(&f, &tar, &zst, &a, "size");
    assert!(
        got.iter()
            .any(|l| l.contains(&format!("size 0 but the signed manifests declare {size}"))),
        "{got:?}"
    );
}

/// Packs the large fixture as plain volumes of 8 MB (a large file fits
/// whole in one); returns the volume files in order.
fn large_volumes(f: &Fixture) -> Vec<PathBuf> {
    let o = f.pack_with("tar", "vols", &["--volume-size", "8000000"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    volume_paths(&o)
}

#[test]
fn plain_volumes_hash_large_whole_files_and_name_a_flipped_byte() {
    let (f, a, b) = large_fixture();
    let vols = large_volumes(&f);
    assert!(vols.len() >= 2, "{vols:?}");
    let o = f.verify_paths(&vols);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Each large file whole in one volume: flip a byte in its middle.
    let mut hit = Vec::new();
    for v in &vols {
        let mut bytes = std::fs::read(v).unwrap();
        let mut changed = false;
        for blob in [&a, &b] {
            let mut ar = tar::Archive::new(&bytes[..]);
            let found = ar.entries().unwrap().find_map(|e| {
                let e = e.unwrap();
                (e.path_bytes() == blob.as_bytes())
                    .then(|| (e.raw_file_position() as usize, e.size() as usize))
            });
            if let Some((at, size)) = found {
                bytes[at + size / 2] ^= 0x01;
                hit.push((v.clone(), blob.clone()));
                changed = true;
            }
        }
        if changed {
            std::fs::write(v, &bytes).unwrap();
        }
    }
    // (The other may be split into parts: those are joined as they stream.)
    assert!(!hit.is_empty(), "a large file whole in a volume");
    let o = f.verify_paths(&vols);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    for (v, blob) in &hit {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("{}): {blob}: sha256 mismatch", v.display()))),
            "no finding names {blob} in {}:\n{err}",
            v.display()
        );
    }
}

// A tar.zst from pack stores each large input that does not compress as a
// zstd frame of raw blocks: verify reads such a member where its blocks lie
// (the pool hashes it by position, as for a plain tar). Each fault below
// must be refused exactly as the decoder's stream refuses it: the
// reference is the same tar compressed by zstd itself (compressed frames,
// which are always streamed), or the decoder's own error.

/// The bytes of a zstd frame of raw blocks holding `data` in blocks of at
/// most `block` bytes (as pack's `RawFrame` writes: window 2^17, no content
/// size, no checksum).
fn raw_frame(data: &[u8], block: usize) -> Vec<u8> {
    let mut v = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38];
    let mut chunks: Vec<&[u8]> = data.chunks(block).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        let h = ((c.len() as u32) << 3 | u32::from(i + 1 == n)).to_le_bytes();
        v.extend_from_slice(&h[..3]);
        v.extend_from_slice(c);
    }
    v
}

/// Where the tar byte at `at` (of the decoded stream `tar`) lies in the
/// tar.zst `zst`, found by its surroundings: the noise around it occurs
/// once, verbatim, only where a raw block holds it.
fn stored_at(zst: &[u8], tar: &[u8], at: usize) -> usize {
    // A window around it inside one block (one that spans a block's or
    // frame's header is not in the file as such).
    // The tar.zst is no larger than the tar but for block headers (3 bytes
    // in 128 KiB) and its small head, so the search stays near `at`.
    let (lo, hi) = (at.saturating_sub(4 << 20), (at + (1 << 20)).min(zst.len()));
    for k in [0, 16, 31] {
        let Some(from) = at.checked_sub(k).filter(|f| f + 32 <= tar.len()) else {
            continue;
        };
        let window = &tar[from..from + 32];
        let hits: Vec<usize> = zst[lo..hi]
            .windows(32)
            .enumerate()
            .filter(|(_, w)| *w == window)
            .map(|(i, _)| lo + i)
            .take(2)
            .collect();
        if hits.len() == 1 {
            return hits[0] + k;
        }
    }
    panic!("the bytes around {at} are not stored verbatim")
}

/// Packs the large fixture as a tar.zst; returns it, its bytes and the tar
/// it decodes to (also written as `decoded.tar`, for `data_of`).
fn packed_zst(f: &Fixture) -> (PathBuf, Vec<u8>, Vec<u8>, PathBuf) {
    let zst = f.pack("tar.zst");
    let bytes = std::fs::read(&zst).unwrap();
    let tar = zstd::decode_all(&bytes[..]).unwrap();
    let plain = f.path("dist/decoded.tar");
    std::fs::write(&plain, &tar).unwrap();
    (zst, bytes, tar, plain)
}

/// Writes `zst` as `NAME.tar.zst` and, as the streamed reference, the tar
/// it decodes to recompressed by zstd as `NAME-ref.tar.zst`.
fn with_reference(f: &Fixture, name: &str, zst: &[u8], tar: &[u8]) -> (PathBuf, PathBuf) {
    let p = f.path(&format!("dist/{name}.tar.zst"));
    std::fs::write(&p, zst).unwrap();
    let r = f.path(&format!("dist/{name}-ref.tar.zst"));
    std::fs::write(&r, zstd::encode_all(tar, 1).unwrap()).unwrap();
    (p, r)
}

#[test]
fn a_tar_zst_holds_large_members_in_raw_blocks_and_verifies_and_imports_them() {
    let (f, a, b) = large_fixture();
    let (zst, bytes, tar, plain) = packed_zst(&f);
    for blob in [&a, &b] {
        let (at, size) = data_of(&plain, blob);
        // Stored: the member's bytes are in the file as they are.
        for i in [at, at + size / 2, at + size - 1] {
            assert_eq!(bytes[stored_at(&bytes, &tar, i)], tar[i]);
        }
    }
    let o = f.verify(&zst);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    imports_and_exports_whole(&f, &zst);
}

#[test]
fn a_flipped_byte_inside_a_raw_block_is_the_stream_s_finding() {
    let (f, a, b) = large_fixture();
    let (_, bytes, tar, plain) = packed_zst(&f);
    let (at_a, size_a) = data_of(&plain, &a);
    let (at_b, size_b) = data_of(&plain, &b);
    // The first and last byte of a member, the first byte of its second
    // block, the last of its first, and its middle.
    let cases = [
        ("first", at_a, at_b + size_b / 2),
        ("last", at_a + size_a - 1, at_b + (128 << 10)),
        ("edges", at_a + (128 << 10) - 1, at_b + size_b - 1),
        ("middle", at_a + size_a / 2, at_b),
    ];
    for (name, in_a, in_b) in cases {
        let (mut z, mut t) = (bytes.clone(), tar.clone());
        for i in [in_a, in_b] {
            z[stored_at(&bytes, &tar, i)] ^= 0x20;
            t[i] ^= 0x20;
        }
        let (p, r) = with_reference(&f, name, &z, &t);
        refused_alike(&f, &p, &r, &a, "sha256 mismatch");
        refused_alike(&f, &p, &r, &b, "sha256 mismatch");
    }
}

/// The finding the stream gives when the decoder fails on `zst`: the
/// decoder's own error, about the member being read.
fn decoder_error(zst: &[u8]) -> String {
    zstd::decode_all(zst).unwrap_err().to_string()
}

#[test]
fn a_corrupted_block_header_in_a_raw_frame_is_the_decoder_s_finding() {
    let (f, a, _) = large_fixture();
    let (_, bytes, tar, plain) = packed_zst(&f);
    let (at, _) = data_of(&plain, &a);
    // The header of the member's third block (the 3 bytes before its first
    // byte): the reserved block type 3, then a size over 128 KiB.
    let h = stored_at(&bytes, &tar, at + (256 << 10)) - 3;
    let header = u32::from_le_bytes([bytes[h], bytes[h + 1], bytes[h + 2], 0]);
    assert_eq!(header, (128 << 10) << 3, "a full raw block, not the last");
    for (name, new) in [("reserved", header | 6), ("oversize", 0x1F_FFFF << 3)] {
        let mut z = bytes.clone();
        z[h..h + 3].copy_from_slice(&new.to_le_bytes()[..3]);
        let p = f.path(&format!("dist/{name}.tar.zst"));
        std::fs::write(&p, &z).unwrap();
        let o = f.verify(&p);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let want = format!("{a}: truncated or corrupt tar: {}", decoder_error(&z));
        assert_eq!(findings(&o, &a), vec![want], "{name}: {}", stderr(&o));
    }
}

#[test]
fn a_tar_zst_cut_inside_a_raw_frame_is_the_decoder_s_finding() {
    let (f, a, _) = large_fixture();
    let (_, bytes, tar, plain) = packed_zst(&f);
    let (at, size) = data_of(&plain, &a);
    // Inside a block, then just after a block header.
    let mid = stored_at(&bytes, &tar, at + size / 2);
    let after_header = stored_at(&bytes, &tar, at + (128 << 10));
    for (name, cut) in [("cut-mid", mid), ("cut-header", after_header - 1)] {
        let z = &bytes[..cut];
        let p = f.path(&format!("dist/{name}.tar.zst"));
        std::fs::write(&p, z).unwrap();
        let o = f.verify(&p);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let want = format!("{a}: truncated or corrupt tar: {}", decoder_error(z));
        assert_eq!(findings(&o, &a), vec![want], "{name}: {}", stderr(&o));
    }
}

#[test]
fn members_in_compressed_or_several_frames_verify_and_name_a_flipped_byte() {
    let (f, a, b) = large_fixture();
    let (_, _, tar, plain) = packed_zst(&f);
    let (at_a, size_a) = data_of(&plain, &a);
    let (at_b, size_b) = data_of(&plain, &b);
    // Everything compressed by zstd, except: member a in two raw frames
    // (128 KiB blocks, then 1000-byte blocks), member b's first half in a
    // raw frame and the rest (with what follows) compressed.
    let split_a = at_a + size_a / 3;
    let split_b = at_b + size_b / 2;
    assert!(at_a + size_a <= at_b, "a before b");
    let build = |t: &[u8]| {
        let mut z = zstd::encode_all(&t[..at_a], 3).unwrap();
        z.extend(raw_frame(&t[at_a..split_a], 128 << 10));
        z.extend(raw_frame(&t[split_a..at_a + size_a], 1000));
        z.extend(zstd::encode_all(&t[at_a + size_a..at_b], 3).unwrap());
        z.extend(raw_frame(&t[at_b..split_b], 128 << 10));
        z.extend(zstd::encode_all(&t[split_b..], 3).unwrap());
        z
    };
    let z = build(&tar);
    assert_eq!(zstd::decode_all(&z[..]).unwrap(), tar);
    let p = f.path("dist/frames.tar.zst");
    std::fs::write(&p, &z).unwrap();
    let o = f.verify(&p);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A flipped byte in a's second raw frame, and in b's raw half.
    let mut t = tar.clone();
    t[split_a + 5000] ^= 1;
    t[at_b + 77] ^= 1;
    let (p, r) = with_reference(&f, "frames-flipped", &build(&t), &t);
    refused_alike(&f, &p, &r, &a, "sha256 mismatch");
    refused_alike(&f, &p, &r, &b, "sha256 mismatch");
}

#[test]
fn tar_zst_volumes_of_large_files_verify_and_name_damage() {
    let (f, _, _) = large_fixture();
    let o = f.pack_with("tar.zst", "vols", &["--volume-size", "8000000"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let vols = volume_paths(&o);
    assert!(vols.len() >= 2, "{vols:?}");
    let o = f.verify_paths(&vols);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A byte flipped in the middle of the first volume's file.
    let mut bytes = std::fs::read(&vols[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&vols[0], &bytes).unwrap();
    let o = f.verify_paths(&vols);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&vols[0].display().to_string()),
        "{}",
        stderr(&o)
    );
}
