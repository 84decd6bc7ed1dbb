//! The one bundle reader: the same rules for every form (directory, tar,
//! tar.zst, volumes), the tag area bounded in size and count, and signatures
//! judged before any payload byte is read. One test per attack.

mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The report's findings about exactly `subject`.
fn findings<'a>(err: &'a str, subject: &str) -> Vec<&'a str> {
    let prefix = format!("{subject}: ");
    err.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(&prefix) || l.contains(&format!(": {prefix}")))
        .collect()
}

#[track_caller]
fn assert_refused(o: &Output, subject: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 1, "expected exit 1; stderr:\n{err}");
    let found = findings(&err, subject);
    assert!(
        found.iter().any(|l| l.contains(what)),
        "no finding about {subject:?} says {what:?}; stderr:\n{err}"
    );
}

fn regular(path: &str, data: &[u8]) -> RawEntry {
    RawEntry {
        path: path.to_string(),
        kind: tar::EntryType::Regular,
        data: data.to_vec(),
        link: None,
    }
}

/// The fixture as plain-tar volumes of 400 kB (at least three).
fn volumes(f: &Fixture) -> Vec<PathBuf> {
    let paths = f.pack_volumes("tar");
    assert!(paths.len() >= 3, "{paths:?}");
    paths
}

fn import_all(f: &Fixture, paths: &[PathBuf], store: &str) -> Output {
    let mut args = vec!["import".to_string()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend([
        "--trust".to_string(),
        f.s("policy.yaml"),
        "--store".to_string(),
        f.s(store),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

/// Rewrites volume `path` with `edit` applied to its entries.
fn edit_volume(path: &Path, edit: impl FnOnce(&mut Vec<RawEntry>)) {
    let mut entries = read_tar(path);
    edit(&mut entries);
    write_tar(path, &entries);
}

// ---------------------------------------------------------------- volumes

#[test]
fn files_appended_after_a_volumes_payload_are_refused() {
    let f = Fixture::new();
    let paths = volumes(&f);
    let o = f.verify_paths(&paths);
    assert_eq!(code(&o), 0, "untouched volumes verify: {}", stderr(&o));
    let third = paths[2].clone();
    edit_volume(&third, |e| {
        e.push(regular("evil.sh", b"#!/bin/sh\nrm -rf /\n"));
        e.push(regular("custody/9999-evil.dsse.json", b"{}"));
    });
    let o = f.verify_paths(&paths);
    assert_refused(&o, "evil.sh", "unexpected file");
    // A custody event after the payload is an addition: it must be a signed
    // link of the chain, and this one is not.
    assert_refused(&o, "custody/9999-evil.dsse.json", "");
    // The volume alone is refused the same way.
    let o = f.verify_paths(std::slice::from_ref(&third));
    assert_refused(&o, "evil.sh", "unexpected file");
    // And import writes nothing.
    let o = import_all(&f, &paths, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let ls = run(&["store", "ls", "--store", &f.s("store"), "--json"]);
    assert!(
        !stdout(&ls).contains("1.0.0"),
        "nothing imported: {}",
        stdout(&ls)
    );
}

#[test]
fn a_duplicated_tag_entry_in_a_volume_head_is_refused() {
    let f = Fixture::new();
    let paths = volumes(&f);
    edit_volume(&paths[1], |e| {
        let at = e.iter().position(|x| x.path == "bag-info.txt").unwrap();
        let mut dup = e[at].clone();
        dup.data = b"BagIt-Version: 0.97\n".to_vec();
        e.insert(at + 1, dup);
    });
    let o = f.verify_paths(&paths);
    assert_refused(&o, "bag-info.txt", "appears twice");
}

#[test]
fn an_unsafe_path_in_a_volume_head_is_refused_not_skipped() {
    let f = Fixture::new();
    let paths = volumes(&f);
    edit_volume(&paths[0], |e| {
        e.insert(1, regular("../../etc/cron.d/evil", b"* * * * * root sh\n"));
    });
    let o = f.verify_paths(&paths);
    assert_refused(&o, "../../etc/cron.d/evil", "unsafe path");
}

// ---------------------------------------------------------------- tag-area bounds

/// Writes a tar.zst holding the fixture's tag files, then `extra` entries of
/// `size` zero bytes each (streamed, never in memory), then the payload.
fn bomb(f: &Fixture, extra: usize, size: u64, dir: &str) -> PathBuf {
    let good = f.pack("tar");
    let entries = read_tar(&good);
    let out = f.path("dist/bomb.tar.zst");
    let file = std::fs::File::create(&out).unwrap();
    let mut z = zstd::Encoder::new(file, 3).unwrap();
    let header = |path: &str, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        h
    };
    let write_entry = |z: &mut zstd::Encoder<std::fs::File>, path: &str, data: &[u8]| {
        z.write_all(header(path, data.len() as u64).as_bytes())
            .unwrap();
        z.write_all(data).unwrap();
        let pad = (512 - data.len() % 512) % 512;
        z.write_all(&vec![0u8; pad]).unwrap();
    };
    let (tags, payload): (Vec<_>, Vec<_>) =
        entries.iter().partition(|e| !e.path.starts_with("data/"));
    for e in tags {
        write_entry(&mut z, &e.path, &e.data);
    }
    let zeros = vec![0u8; 1 << 20];
    for i in 0..extra {
        z.write_all(header(&format!("{dir}/bomb{i:04}.dsse.json"), size).as_bytes())
            .unwrap();
        let mut left = size;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            z.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
        let pad = ((512 - size % 512) % 512) as usize;
        z.write_all(&vec![0u8; pad]).unwrap();
    }
    for e in payload {
        write_entry(&mut z, &e.path, &e.data);
    }
    z.write_all(&[0u8; 1024]).unwrap();
    z.finish().unwrap();
    out
}

#[test]
fn an_oversized_signature_entry_is_refused_before_it_is_read() {
    let f = Fixture::new();
    // 16 zero-filled 64 MiB signatures compress to a few KiB.
    let b = bomb(&f, 16, 64 << 20, "signatures");
    assert!(std::fs::metadata(&b).unwrap().len() < 1 << 20);
    let o = f.verify(&b);
    assert_refused(
        &o,
        "signatures/bomb0000.dsse.json",
        "larger than a signature may be",
    );
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

#[test]
fn too_many_custody_entries_are_refused() {
    let f = Fixture::new();
    let b = bomb(&f, 4200, 10, "custody");
    let o = f.verify(&b);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("more than 4096 tag files, signatures and custody events"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_tag_area_total_is_bounded() {
    let f = Fixture::new();
    // 200 signatures just under the per-entry bound: 200 MiB in all.
    let b = bomb(&f, 200, (1 << 20) - 1, "signatures");
    let o = f.verify(&b);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("together exceed"), "{}", stderr(&o));
}

// ---------------------------------------------------------------- signatures first

/// With its signatures gone and a blob damaged, a bundle is refused for the
/// signatures alone: the payload is never hashed (so a bundle declaring a
/// huge payload costs nothing to refuse).
fn assert_unsigned_refused_without_hashing(o: &Output, blob: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 1, "{err}");
    assert!(
        err.contains("signature") || err.contains("builder"),
        "the policy finding is reported: {err}"
    );
    assert!(
        !err.contains("sha256 mismatch"),
        "the payload was hashed although the signatures failed: {err}"
    );
    assert!(!err.contains(blob), "{err}");
}

fn weights_blob(f: &Fixture) -> String {
    use sha2::Digest;
    let w = std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap();
    let hex: String = sha2::Sha256::digest(&w)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("data/blobs/sha256/{hex}")
}

#[test]
fn an_unsigned_tar_is_refused_before_its_payload_is_hashed() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let blob = weights_blob(&f);
    let mut entries = read_tar(&good);
    entries.retain(|e| !e.path.starts_with("signatures/"));
    let at = entries.iter().position(|e| e.path == blob).unwrap();
    entries[at].data[100] ^= 1;
    let t = f.path("dist/unsigned.tar");
    write_tar(&t, &entries);
    assert_unsigned_refused_without_hashing(&f.verify(&t), &blob);
}

#[test]
fn an_unsigned_directory_is_refused_before_its_payload_is_hashed() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let blob = weights_blob(&f);
    std::fs::remove_dir_all(b.join("signatures")).unwrap();
    let p = b.join(&blob);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    assert_unsigned_refused_without_hashing(&f.verify(&b), &blob);
}

#[test]
fn unsigned_volumes_are_refused_before_their_payload_is_hashed() {
    let f = Fixture::new();
    let paths = volumes(&f);
    for p in &paths {
        edit_volume(p, |e| e.retain(|x| !x.path.starts_with("signatures/")));
    }
    let o = f.verify_paths(&paths);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(!err.contains("sha256 mismatch"), "{err}");
}
