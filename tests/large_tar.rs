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
    let (f, a, b) = large_fixture();
    let tar = f.pack("tar");
    let o = f.verify(&tar);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Import stages each large blob from the pool's threads.
    let o = f.import(&tar, "store");
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
    for (rel, blob) in [("big-a.bin", &a), ("sub/big-b.bin", &b)] {
        let src = std::fs::read(f.path(&format!("src/docs/{rel}"))).unwrap();
        let hits: Vec<_> = walkdir::WalkDir::new(f.path("out"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file() && e.file_name().to_str() == rel.rsplit('/').next())
            .collect();
        assert_eq!(hits.len(), 1, "{rel} exported once ({blob})");
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
