//! Co-signatures and custody events travel inside the bundle file: copying
//! only the file (or only the volume files) carries everything added after
//! pack, in every form, and stock tools still read the bundle.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A policy that needs the builder, a reviewer co-signature and a
/// `scanned` custody event by the transfer officer.
fn strict_policy(f: &Fixture) {
    for k in ["reviewer", "dto"] {
        assert_eq!(code(&run(&["keygen", &f.s(&format!("keys/{k}"))])), 0);
    }
    let text = "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: builder\n    publicKey: keys/builder.pub\n    roles: [builder]\n  - name: reviewer\n    publicKey: keys/reviewer.pub\n    roles: [reviewer]\n  - name: dto\n    publicKey: keys/dto.pub\n    roles: [transfer-officer]\nrequire:\n  builder: 1\n  reviewer: 1\ncustody:\n  - event: scanned\n    role: transfer-officer\n";
    std::fs::write(f.path("policy.yaml"), text).unwrap();
}

fn amend(f: &Fixture, bundle: &[&Path]) {
    let paths: Vec<&str> = bundle.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["sign"];
    args.extend(&paths);
    let key = f.s("keys/reviewer.key");
    args.extend(["--key", &key]);
    let o = run(&args);
    assert_eq!(code(&o), 0, "sign: {}", stderr(&o));
    let mut args = vec!["custody", "append"];
    args.extend(&paths);
    let key = f.s("keys/dto.key");
    args.extend(["--key", &key, "--event", "scanned", "--note", "scanned"]);
    let o = run(&args);
    assert_eq!(code(&o), 0, "custody append: {}", stderr(&o));
}

/// Copies `files` alone into a fresh directory, as an officer would.
fn carry(f: &Fixture, files: &[PathBuf]) -> Vec<PathBuf> {
    let to = f.path("media");
    std::fs::create_dir_all(&to).unwrap();
    files
        .iter()
        .map(|p| {
            let dst = to.join(p.file_name().unwrap());
            std::fs::copy(p, &dst).unwrap();
            dst
        })
        .collect()
}

fn only_the_file_carries_everything(format: &str) {
    let f = Fixture::new();
    strict_policy(&f);
    let b = f.pack(format);
    let o = f.verify(&b);
    assert_eq!(code(&o), 1, "unsigned by a reviewer yet: {}", stderr(&o));
    amend(&f, &[&b]);
    let side = PathBuf::from(format!("{}.airlock", b.display()));
    assert!(!side.exists(), "nothing is written beside the file");
    let carried = if format == "dir" {
        vec![b.clone()]
    } else {
        carry(&f, std::slice::from_ref(&b))
    };
    let o = f.verify_paths(&carried);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = f.import(&carried[0], "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let events = std::fs::read_dir(f.path("store/bundles/demo/1.0.0/custody"))
        .unwrap()
        .count();
    assert!(events >= 3, "packed, signed, scanned: {events}");
}

#[test]
fn a_tar_carries_its_additions() {
    only_the_file_carries_everything("tar");
    // Stock tar lists the added entries after the payload.
    let f = Fixture::new();
    strict_policy(&f);
    let b = f.pack("tar");
    amend(&f, &[&b]);
    let o = std::process::Command::new("tar")
        .args(["-tf", b.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let list = String::from_utf8_lossy(&o.stdout);
    let last: Vec<&str> = list.lines().rev().take(3).collect();
    assert!(
        last.iter()
            .all(|l| l.starts_with("custody/") || l.starts_with("signatures/")),
        "additions come last: {list}"
    );
}

#[test]
fn a_tar_zst_carries_its_additions() {
    only_the_file_carries_everything("tar.zst");
    // Stock zstd and tar still read it.
    let f = Fixture::new();
    strict_policy(&f);
    let b = f.pack("tar.zst");
    amend(&f, &[&b]);
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -t", b.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("airlock.json"));
}

#[test]
fn a_directory_carries_its_additions() {
    only_the_file_carries_everything("dir");
}

#[test]
fn volume_files_carry_their_additions_each() {
    let f = Fixture::new();
    strict_policy(&f);
    let vols = f.pack_volumes("tar.zst");
    // `sign` and `custody append` take the folder of volumes.
    amend(&f, &[&f.path("vols")]);
    let carried = carry(&f, &vols);
    let o = f.verify_paths(&carried);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Each volume alone carries them too.
    for v in &carried {
        let o = f.verify_paths(std::slice::from_ref(v));
        assert_eq!(code(&o), 0, "{}: {}", v.display(), stderr(&o));
    }
}

#[test]
fn a_forged_custody_event_appended_to_a_tar_is_refused() {
    let f = Fixture::new();
    let b = f.pack("tar");
    let mut entries = read_tar(&b);
    entries.push(RawEntry {
        path: "custody/9999-forged.dsse.json".into(),
        kind: tar::EntryType::Regular,
        data: br#"{"payloadType":"x","payload":"","signatures":[]}"#.to_vec(),
        link: None,
    });
    write_tar(&b, &entries);
    let o = f.verify(&b);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("custody/9999-forged.dsse.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_payload_entry_after_an_addition_is_refused() {
    let f = Fixture::new();
    let b = f.pack("tar");
    let mut entries = read_tar(&b);
    let at = entries
        .iter()
        .position(|e| e.path.starts_with("data/blobs/"))
        .unwrap();
    let blob = entries.remove(at);
    let sig = entries
        .iter()
        .position(|e| e.path.starts_with("signatures/"))
        .unwrap();
    let sig = entries.remove(sig);
    entries.push(sig);
    entries.push(blob.clone());
    write_tar(&b, &entries);
    let o = f.verify(&b);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("payload entry after signatures or custody events"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_damaged_additions_frame_is_refused() {
    let f = Fixture::new();
    strict_policy(&f);
    let b = f.pack("tar.zst");
    amend(&f, &[&b]);
    let mut bytes = std::fs::read(&b).unwrap();
    // The frame's declared length (just before the trailer magic) is corrupted.
    let n = bytes.len();
    bytes[n - 12] ^= 0x40;
    std::fs::write(&b, bytes).unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("additions frame"), "{}", stderr(&o));
}
