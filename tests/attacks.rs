//! Hostile and damaged bundles. Each test makes one attack or fault and checks
//! that `verify` (or `import`) refuses it with exit code 1 and names the file
//! at fault, and that a refused import leaves the store as it was.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::Digest;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bundle path of the blob holding the fixture's model weights.
fn weights_blob(f: &Fixture) -> String {
    let w = std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap();
    format!("data/blobs/sha256/{}", sha256_hex(&w))
}

/// The bundle path of the blob holding `src/docs/runbook.txt`.
fn runbook_blob(f: &Fixture) -> String {
    let w = std::fs::read(f.path("src/docs/runbook.txt")).unwrap();
    format!("data/blobs/sha256/{}", sha256_hex(&w))
}

/// The report's findings about exactly `subject` (findings are printed one
/// per line as `  SUBJECT: PROBLEM`).
fn findings<'a>(err: &'a str, subject: &str) -> Vec<&'a str> {
    let prefix = format!("{subject}: ");
    err.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(&prefix))
        .collect()
}

fn has_finding(err: &str, subject: &str) -> bool {
    !findings(err, subject).is_empty()
}

/// Asserts exit code 1 and a finding about `subject` whose problem contains `what`.
#[track_caller]
fn assert_refused(o: &Output, subject: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 1, "expected exit 1; stderr:\n{err}");
    let found = findings(&err, subject);
    assert!(
        !found.is_empty(),
        "no finding about {subject:?} in stderr:\n{err}"
    );
    assert!(
        found.iter().any(|l| l.contains(what)),
        "no finding about {subject:?} says {what:?}; stderr:\n{err}"
    );
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    assert!(!b.is_empty(), "{} is empty", path.display());
    let at = at.min(b.len() - 1);
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn signature_files(bundle: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(bundle.join("signatures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn regular(path: &str, data: &[u8]) -> RawEntry {
    RawEntry {
        path: path.to_string(),
        kind: tar::EntryType::Regular,
        data: data.to_vec(),
        link: None,
    }
}

/// Packs a tar, lets `edit` change its entries, writes the result beside it
/// as `hostile.tar` and returns that path. The original is verified first so
/// that every refusal below is due to the edit alone.
fn hostile_tar(f: &Fixture, edit: impl FnOnce(&mut Vec<RawEntry>)) -> PathBuf {
    let good = f.pack("tar");
    hostile_tar_from(f, &good, edit)
}

fn hostile_tar_from(f: &Fixture, good: &Path, edit: impl FnOnce(&mut Vec<RawEntry>)) -> PathBuf {
    assert_eq!(code(&f.verify(good)), 0, "the untouched tar verifies");
    let mut entries = read_tar(good);
    // Rewriting the untouched entries with the test writer still verifies.
    let same = f.path("dist/same.tar");
    write_tar(&same, &entries);
    let o = f.verify(&same);
    assert_eq!(code(&o), 0, "rewritten tar: {}", stderr(&o));
    edit(&mut entries);
    let out = f.path("dist/hostile.tar");
    write_tar(&out, &entries);
    out
}

fn index_of(entries: &[RawEntry], path: &str) -> usize {
    entries
        .iter()
        .position(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {path}"))
}

// ---------------------------------------------------------------- directory form

#[test]
fn flipped_byte_in_a_blob_is_named() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let blob = weights_blob(&f);
    flip_byte(&b.join(&blob), 150_000);
    assert_refused(&f.verify(&b), &blob, "sha256 mismatch");
}

#[test]
fn flipped_byte_in_each_tag_file_is_named() {
    let f = Fixture::new();
    let good = f.pack("dir");
    for (i, name) in [
        "bagit.txt",
        "bag-info.txt",
        "airlock.json",
        "VERIFY.txt",
        "manifest-sha256.txt",
    ]
    .into_iter()
    .enumerate()
    {
        let b = f.path(&format!("case-{i}"));
        copy_dir(&good, &b);
        assert_eq!(code(&f.verify(&b)), 0, "the copy verifies");
        flip_byte(&b.join(name), 20);
        assert_refused(&f.verify(&b), name, "sha256 mismatch");
    }
}

#[test]
fn edited_tag_manifest_breaks_the_signature() {
    let f = Fixture::new();
    let b = f.pack("dir");
    // A consistent edit: change VERIFY.txt and re-hash it in the tag manifest,
    // so every digest matches and only the signature can catch it.
    let verify_txt = b.join("VERIFY.txt");
    let old = sha256_hex(&std::fs::read(&verify_txt).unwrap());
    std::fs::write(&verify_txt, b"Nothing to check here, just run it.\n").unwrap();
    let new = sha256_hex(&std::fs::read(&verify_txt).unwrap());
    let tm = b.join("tagmanifest-sha256.txt");
    let text = std::fs::read_to_string(&tm).unwrap();
    assert!(text.contains(&old));
    std::fs::write(&tm, text.replace(&old, &new)).unwrap();

    let o = f.verify(&b);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        !has_finding(&err, "VERIFY.txt"),
        "the digests are consistent, only the signature fails:\n{err}"
    );
    let dsse = signature_files(&b)
        .into_iter()
        .find(|s| s.ends_with(".dsse.json"))
        .unwrap();
    assert!(
        has_finding(&err, &format!("signatures/{dsse}")),
        "the signature is named:\n{err}"
    );
    assert!(has_finding(&err, "policy require.builder"), "{err}");
}

#[test]
fn deleted_blob_is_named_as_missing() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let blob = runbook_blob(&f);
    std::fs::remove_file(b.join(&blob)).unwrap();
    assert_refused(&f.verify(&b), &blob, "missing");
}

#[test]
fn extra_file_in_data_is_named_as_extra() {
    let f = Fixture::new();
    let b = f.pack("dir");
    std::fs::write(b.join("data/blobs/sha256/payload.sh"), b"rm -rf /\n").unwrap();
    assert_refused(&f.verify(&b), "data/blobs/sha256/payload.sh", "extra");
}

#[test]
fn removed_signatures_leave_the_policy_unmet() {
    let f = Fixture::new();
    let b = f.pack("dir");
    std::fs::remove_dir_all(b.join("signatures")).unwrap();
    assert_refused(&f.verify(&b), "policy require.builder", "found 0");
}

#[test]
fn bundle_signed_only_by_an_untrusted_key_is_refused() {
    let f = Fixture::new();
    let b = f.pack("dir");
    // The policy trusts only `stranger`; the bundle is signed by `builder`.
    f.write_policy("stranger", "[builder]", "require:\n  builder: 1\n");
    let o = f.verify(&b);
    assert_refused(&o, "policy require.builder", "found 0");
    // The key that signed is named, so the operator knows whose it is.
    let key_id = signature_files(&b)
        .into_iter()
        .find_map(|s| s.strip_suffix(".dsse.json").map(str::to_string))
        .unwrap();
    assert!(stderr(&o).contains(&key_id), "{}", stderr(&o));
}

#[test]
fn untrusted_key_is_refused_even_without_a_require_rule() {
    let f = Fixture::new();
    let b = f.pack("dir");
    f.write_policy("stranger", "[builder]", "");
    assert_refused(&f.verify(&b), "signatures/", "no valid signature");
}

#[test]
fn symlink_in_a_directory_bundle_is_refused() {
    #[cfg(unix)]
    {
        let f = Fixture::new();
        let b = f.pack("dir");
        let blob = runbook_blob(&f);
        let real = b.join(&blob);
        let bytes = std::fs::read(&real).unwrap();
        std::fs::write(f.path("outside.txt"), bytes).unwrap();
        std::fs::remove_file(&real).unwrap();
        std::os::unix::fs::symlink(f.path("outside.txt"), &real).unwrap();
        assert_refused(&f.verify(&b), &blob, "symbolic link");
    }
}

// ---------------------------------------------------------------- tar form

#[test]
fn tar_entry_with_dotdot_path_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, "data/index.json");
        e.insert(at, regular("../escape.txt", b"owned\n"));
    });
    assert_refused(&f.verify(&t), "../escape.txt", "unsafe path");
}

#[test]
fn tar_entry_with_dotdot_inside_data_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        e.push(regular("data/blobs/../../../escape.txt", b"owned\n"));
    });
    assert_refused(
        &f.verify(&t),
        "data/blobs/../../../escape.txt",
        "unsafe path",
    );
}

#[test]
fn tar_entry_with_absolute_path_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, "data/index.json");
        e.insert(at, regular("/tmp/airlock-escape.txt", b"owned\n"));
    });
    assert_refused(&f.verify(&t), "/tmp/airlock-escape.txt", "unsafe path");
}

#[test]
fn tar_symlink_entry_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        e.push(RawEntry {
            path: "data/passwd".into(),
            kind: tar::EntryType::Symlink,
            data: vec![],
            link: Some("/etc/passwd".into()),
        });
    });
    assert_refused(&f.verify(&t), "data/passwd", "symbolic link");
}

#[test]
fn tar_symlink_replacing_a_blob_is_refused() {
    let f = Fixture::new();
    let blob = runbook_blob(&f);
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, &blob);
        e[at] = RawEntry {
            path: blob.clone(),
            kind: tar::EntryType::Symlink,
            data: vec![],
            link: Some("/etc/passwd".into()),
        };
    });
    let o = f.verify(&t);
    assert_refused(&o, &blob, "symbolic link");
}

#[test]
fn tar_hardlink_entry_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        e.push(RawEntry {
            path: "data/shadow".into(),
            kind: tar::EntryType::Link,
            data: vec![],
            link: Some("data/oci-layout".into()),
        });
    });
    assert_refused(&f.verify(&t), "data/shadow", "hard link");
}

#[test]
fn tar_device_entry_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        e.push(RawEntry {
            path: "data/null".into(),
            kind: tar::EntryType::Char,
            data: vec![],
            link: None,
        });
    });
    assert_refused(&f.verify(&t), "data/null", "device");
}

#[test]
fn tar_duplicated_blob_entry_is_refused() {
    let f = Fixture::new();
    let blob = runbook_blob(&f);
    let t = hostile_tar(&f, |e| {
        // The first copy is genuine; a naive extractor would keep the second.
        let mut evil = e[index_of(e, &blob)].clone();
        evil.data = b"step one\nstep 2!!\n".to_vec();
        assert_eq!(evil.data.len(), e[index_of(e, &blob)].data.len());
        e.push(evil);
    });
    assert_refused(&f.verify(&t), &blob, "appears twice");
}

#[test]
fn tar_duplicated_tag_file_is_refused() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, "airlock.json");
        let dup = e[at].clone();
        e.insert(at + 1, dup);
    });
    assert_refused(&f.verify(&t), "airlock.json", "appears twice");
}

#[test]
fn truncated_tar_is_refused() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let blob = weights_blob(&f);
    // Find where the weights blob's data starts: each entry is a 512-byte
    // header followed by its data padded to 512 bytes.
    let mut offset = 0usize;
    let mut found = None;
    for e in read_tar(&good) {
        if e.path == blob {
            found = Some((offset + 512, e.data.len()));
            break;
        }
        offset += 512 + e.data.len().div_ceil(512) * 512;
    }
    let (start, len) = found.expect("weights blob in the tar");
    let bytes = std::fs::read(&good).unwrap();
    let cut = f.path("dist/cut.tar");
    std::fs::write(&cut, &bytes[..start + len / 2]).unwrap();
    let o = f.verify(&cut);
    assert_refused(&o, &blob, "");
    let err = stderr(&o);
    assert!(
        findings(&err, &blob)
            .iter()
            .any(|l| l.contains("truncated") || l.contains("size")),
        "says what is wrong:\n{err}"
    );
}

#[test]
fn truncated_tar_in_the_tag_files_is_refused() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let bytes = std::fs::read(&good).unwrap();
    // Cut inside the second entry (bag-info.txt's data).
    let cut = f.path("dist/cut.tar");
    std::fs::write(&cut, &bytes[..512 + 512 + 512 + 20]).unwrap();
    let o = f.verify(&cut);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        has_finding(&err, "bag-info.txt") || has_finding(&err, cut.to_str().unwrap()),
        "names the truncated entry or the tar:\n{err}"
    );
}

/// Decompresses the tar.zst `good`, lets `edit` change its entries, and
/// writes them compressed again (one zstd frame) as `evil.tar.zst`.
fn hostile_zst(f: &Fixture, good: &Path, edit: impl FnOnce(&mut Vec<RawEntry>)) -> PathBuf {
    let raw = zstd::decode_all(std::fs::File::open(good).unwrap()).unwrap();
    let plain = f.path("dist/plain.tar");
    std::fs::write(&plain, raw).unwrap();
    let mut entries = read_tar(&plain);
    edit(&mut entries);
    write_tar(&plain, &entries);
    let evil = f.path("dist/evil.tar.zst");
    let packed = zstd::encode_all(std::fs::File::open(&plain).unwrap(), 3).unwrap();
    std::fs::write(&evil, packed).unwrap();
    evil
}

#[test]
fn flipped_byte_in_a_blob_of_a_tar_zst_is_named() {
    let f = Fixture::new();
    let good = f.pack("tar.zst");
    let blob = weights_blob(&f);
    let evil = hostile_zst(&f, &good, |entries| {
        let at = index_of(entries, &blob);
        entries[at].data[1234] ^= 0x01;
    });
    assert_refused(&f.verify(&evil), &blob, "sha256 mismatch");
}

/// A tar.zst's tag pass stops where the payload begins, so a duplicate
/// within the payload is found by the payload pass, which tracks the
/// signed blobs by their place in its plan rather than by name: a second
/// copy of a signed blob, and of a name nothing lists, are both refused, by
/// verify and by import (which leaves the store as it was).
#[test]
fn tar_zst_duplicated_blob_entries_are_refused() {
    let f = Fixture::new();
    let good = f.pack("tar.zst");
    let blob = runbook_blob(&f);
    let unlisted = format!("data/blobs/sha256/{}", "ab".repeat(32));
    let evil = hostile_zst(&f, &good, |entries| {
        // The first copy is genuine; a naive extractor would keep the second.
        let at = index_of(entries, &blob);
        let mut second = entries[at].clone();
        second.data = b"step one\nstep 2!!\n".to_vec();
        assert_eq!(second.data.len(), entries[at].data.len());
        entries.insert(at + 1, second);
        let extra = regular(&unlisted, b"not listed\n");
        entries.push(extra.clone());
        entries.push(extra);
    });
    let o = f.verify(&evil);
    assert_refused(&o, &blob, "appears twice");
    assert_refused(&o, &unlisted, "appears twice");
    assert!(stderr(&o).contains("extra file"), "{}", stderr(&o));

    // Import stages blobs as it verifies: refused, it leaves no blob and no
    // record behind, only the ledger's refusal, and the store takes the
    // genuine bundle afterwards.
    let o = f.import(&evil, "store");
    assert_refused(&o, &blob, "appears twice");
    let store = f.path("store");
    let left: Vec<String> = store_state(&store)
        .into_keys()
        .filter(|p| !p.ends_with('/'))
        .filter(|p| p.contains("blobs/sha256/") || p.starts_with("bundles/"))
        .collect();
    assert!(left.is_empty(), "a refused import left {left:?}");
    assert_eq!(ledger_actions(&store), ["refuse"]);
    let o = f.import(&good, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn flipped_byte_in_a_tag_file_of_a_tar_is_named() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, "bag-info.txt");
        e[at].data[5] ^= 0x20;
    });
    assert_refused(&f.verify(&t), "bag-info.txt", "sha256 mismatch");
}

// ---------------------------------------------------------------- every failure

#[test]
fn verify_names_every_tampered_blob_in_a_directory() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let (w, r) = (weights_blob(&f), runbook_blob(&f));
    flip_byte(&b.join(&w), 10);
    flip_byte(&b.join(&r), 3);
    let o = f.verify(&b);
    assert_refused(&o, &w, "sha256 mismatch");
    assert_refused(&o, &r, "sha256 mismatch");
}

#[test]
fn verify_names_every_tampered_blob_in_a_tar() {
    let f = Fixture::new();
    let (w, r) = (weights_blob(&f), runbook_blob(&f));
    let t = hostile_tar(&f, |e| {
        let a = index_of(e, &w);
        e[a].data[10] ^= 0x01;
        let b = index_of(e, &r);
        e[b].data[3] ^= 0x01;
    });
    let o = f.verify(&t);
    assert_refused(&o, &w, "sha256 mismatch");
    assert_refused(&o, &r, "sha256 mismatch");
}

// ---------------------------------------------------------------- import

/// The store's files, without the ledger and its head.
fn store_state(store: &Path) -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
    let mut s = snapshot(store);
    s.remove("ledger.jsonl");
    s.remove("ledger.head");
    s
}

fn ledger_actions(store: &Path) -> Vec<String> {
    std::fs::read_to_string(store.join("ledger.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Imports 1.0.0, then packs 1.1.0 with new weights (so its blobs are not in
/// the store yet and import would stage them) in `format`; returns it.
fn store_with_one_import_and_a_new_version(f: &Fixture, format: &str) -> PathBuf {
    let b = f.pack("dir");
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace("version: 1.0.0", "version: 1.1.0");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(
        f.path("src/models/minilm/model.safetensors"),
        safetensors_wrap(&weights),
    )
    .unwrap();
    std::fs::write(f.path("src/docs/runbook.txt"), b"step one\nstep three\n").unwrap();
    f.pack_to(format, "dist2")
}

#[track_caller]
fn assert_refused_import_changes_only_the_ledger(f: &Fixture, bundle: &Path, subject: &str) {
    let store = f.path("store");
    let before = store_state(&store);
    let actions_before = ledger_actions(&store);
    let parent = bundle.parent().unwrap();
    let parent_before = snapshot(parent);
    let root_before: Vec<String> = std::fs::read_dir(f.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();

    let o = f.import(bundle, "store");
    assert_refused(&o, subject, "");

    assert_eq!(
        store_state(&store),
        before,
        "a refused import leaves the store byte-for-byte as it was"
    );
    let mut expected = actions_before.clone();
    expected.push("refuse".to_string());
    assert_eq!(ledger_actions(&store), expected, "one refuse entry added");
    let chain = run(&["store", "log", "--store", &f.s("store"), "--verify"]);
    assert_eq!(code(&chain), 0, "ledger chain intact: {}", stderr(&chain));
    assert_eq!(
        snapshot(parent),
        parent_before,
        "nothing written beside the bundle"
    );
    let mut root_after: Vec<String> = std::fs::read_dir(f.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut root_before = root_before;
    root_before.sort();
    root_after.sort();
    assert_eq!(root_after, root_before, "nothing new in the workspace");
}

#[test]
fn refused_directory_import_changes_only_the_ledger() {
    let f = Fixture::new();
    let b = store_with_one_import_and_a_new_version(&f, "dir");
    // The last blob in name order is hashed after others were staged.
    let blob = weights_blob(&f);
    flip_byte(&b.join(&blob), 100_000);
    assert_refused_import_changes_only_the_ledger(&f, &b, &blob);
}

#[test]
fn refused_tar_import_changes_only_the_ledger() {
    let f = Fixture::new();
    let good = store_with_one_import_and_a_new_version(&f, "tar");
    let blob = weights_blob(&f);
    let mut entries = read_tar(&good);
    // Tamper the last payload entry, so every other new blob is staged first.
    let last = entries.len() - 1;
    let at = index_of(&entries, &blob);
    entries.swap(at, last);
    entries[last].data[777] ^= 0x01;
    write_tar(&good, &entries);
    assert_refused_import_changes_only_the_ledger(&f, &good, &blob);
}

#[test]
fn refused_import_of_an_untrusted_bundle_changes_only_the_ledger() {
    let f = Fixture::new();
    let b = store_with_one_import_and_a_new_version(&f, "tar.zst");
    // The policy now also wants a reviewer's signature, which the bundle lacks.
    std::fs::write(
        f.path("policy.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: builder\n    publicKey: keys/builder.pub\n    roles: [builder]\n  - name: reviewer\n    publicKey: keys/stranger.pub\n    roles: [reviewer]\nrequire:\n  builder: 1\n  reviewer: 1\n",
    )
    .unwrap();
    assert_refused_import_changes_only_the_ledger(&f, &b, "policy require.reviewer");
}

#[test]
fn tampered_copy_of_an_already_imported_bundle_is_refused() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Same tag files, so the same id: only the payload is damaged. The store
    // already holds the genuine content, but import must not call this copy good.
    let blob = weights_blob(&f);
    flip_byte(&b.join(&blob), 42);
    assert_refused_import_changes_only_the_ledger(&f, &b, &blob);
}

#[test]
fn hostile_entry_before_the_tag_files_is_named_by_import() {
    let f = Fixture::new();
    let t = hostile_tar(&f, |e| e.insert(0, regular("../escape.txt", b"owned\n")));
    let o = f.import(&t, "store");
    assert_refused(&o, "../escape.txt", "unsafe path");
    assert!(!f.path("escape.txt").exists() && !f.path("dist/escape.txt").exists());
}

#[test]
fn symlink_shadowing_a_tag_file_is_refused_by_import_of_a_known_bundle() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let o = f.import(&good, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t = hostile_tar_from(&f, &good, |e| {
        e.insert(
            0,
            RawEntry {
                path: "bagit.txt".into(),
                kind: tar::EntryType::Symlink,
                data: vec![],
                link: Some("/etc/passwd".into()),
            },
        )
    });
    assert_refused_import_changes_only_the_ledger(&f, &t, "bagit.txt");
}

#[test]
fn tar_truncated_inside_a_tag_file_is_refused_by_import_with_exit_1() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let entries = read_tar(&good);
    assert_eq!(entries[2].path, "airlock.json");
    // Everything before airlock.json's data (the padding, the first two
    // entries, its header), then half of it.
    let mut a = tar::Archive::new(std::fs::File::open(&good).unwrap());
    let start = a
        .entries()
        .unwrap()
        .nth(2)
        .unwrap()
        .unwrap()
        .raw_file_position() as usize;
    let bytes = std::fs::read(&good).unwrap();
    let cut = f.path("dist/cut.tar");
    std::fs::write(&cut, &bytes[..start + entries[2].data.len() / 2]).unwrap();
    assert_refused(&f.verify(&cut), "airlock.json", "");
    assert_refused(&f.import(&cut, "store"), "airlock.json", "truncated");
}

// ---------------------------------------------------------------- pax headers

/// The pax padding a packed plain tar begins with: its header's data (the
/// one `comment` record).
fn pax_padding(tar: &Path) -> Vec<u8> {
    let raw = std::fs::read(tar).unwrap();
    assert_eq!(raw[156], b'x', "the packed tar begins with its padding");
    let size = std::str::from_utf8(&raw[124..135]).unwrap();
    let size = usize::from_str_radix(size.trim_matches(|c| c == ' ' || c == '\0'), 8).unwrap();
    raw[512..512 + size].to_vec()
}

/// One pax record, `<len> key=value\n`, its length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

fn pax(data: Vec<u8>) -> RawEntry {
    RawEntry {
        path: "PaxHeaders/x".to_string(),
        kind: tar::EntryType::XHeader,
        data,
        link: None,
    }
}

#[test]
fn a_packed_tar_with_and_without_its_pax_padding_verifies() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let padding = pax_padding(&good);
    // The read-back entries hide the pax header: rewritten without it (as
    // earlier releases wrote a tar) the tar verifies; with the same padding
    // put back in front of bagit.txt, too.
    let t = hostile_tar_from(&f, &good, |e| e.insert(0, pax(padding)));
    let o = f.verify(&t);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn tar_pax_padding_in_front_of_another_entry_is_refused() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let padding = pax_padding(&good);
    let blob = runbook_blob(&f);
    let t = hostile_tar_from(&f, &good, |e| {
        let at = index_of(e, &blob);
        e.insert(at, pax(padding));
    });
    assert_refused(&f.verify(&t), &blob, "pax extended header");
}

#[test]
fn tar_pax_padding_with_another_record_is_refused() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let mut padding = pax_padding(&good);
    // The same comment and an owner: no longer only the padding.
    padding.extend(pax_record("uid", "1000"));
    let t = hostile_tar_from(&f, &good, |e| e.insert(0, pax(padding)));
    assert_refused(&f.verify(&t), "bagit.txt", "pax extended header");
}

#[test]
fn tar_pax_comment_of_other_text_is_refused() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let padding = pax_padding(&good);
    // A record of the same length, another comment.
    let text = "run me";
    let mut fill = 0;
    let other = loop {
        let r = pax_record("comment", &format!("{text}{}", " ".repeat(fill)));
        if r.len() >= padding.len() {
            break r;
        }
        fill += 1;
    };
    assert_eq!(other.len(), padding.len());
    let t = hostile_tar_from(&f, &good, |e| e.insert(0, pax(other)));
    assert_refused(&f.verify(&t), "bagit.txt", "pax extended header");
}

#[test]
fn tar_pax_path_renaming_an_entry_is_refused() {
    let f = Fixture::new();
    let blob = runbook_blob(&f);
    // Tools that honour pax names (all of them) would extract the runbook
    // elsewhere; the reader must not quietly take the new name either.
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, &blob);
        e.insert(at, pax(pax_record("path", "data/renamed.txt")));
    });
    assert_refused(&f.verify(&t), "data/renamed.txt", "pax extended header");
}

// ---------------------------------------------------------------- oversized tar metadata

/// A tar header of `kind` named `name` declaring `size` bytes of data (an
/// 8 GiB size is written base-256, as tar does).
fn meta_header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h.as_bytes().to_vec()
}

const DECLARED: u64 = 8 << 30;

/// A packed tar with a metadata header in front declaring 8 GiB and followed
/// by `real` bytes of data, then the packed tar itself: a reader that takes
/// the metadata whole reads to the end of the file (`real` bytes and more).
fn tar_behind_oversized_meta(
    f: &Fixture,
    kind: tar::EntryType,
    name: &str,
    real: usize,
) -> Vec<u8> {
    let good = f.pack("tar");
    assert_eq!(code(&f.verify(&good)), 0, "the untouched tar verifies");
    let mut bytes = meta_header(kind, name, DECLARED);
    bytes.resize(512 + real, b'a');
    bytes.extend(std::fs::read(&good).unwrap());
    bytes
}

/// Verifies `bundle` measuring its peak memory: refused with exit 1, a
/// finding about `subject` naming the declared size, and a peak far below
/// the `real` bytes behind the header.
#[track_caller]
fn assert_refused_small(f: &Fixture, bundle: &Path, subject: &str, real: usize) {
    let (o, peak) = run_measured(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
    ]);
    eprintln!("peak memory of verify: {peak} bytes");
    assert!(
        peak < real as u64 / 2,
        "peak memory {peak} bytes: the metadata was read ({real} bytes behind its header); stderr:\n{}",
        stderr(&o)
    );
    assert_refused(&o, subject, &format!("declares {DECLARED} bytes"));
}

#[test]
fn tar_pax_header_of_8_gib_is_refused_before_it_is_read() {
    let f = Fixture::new();
    let real = 128 << 20;
    let bytes =
        tar_behind_oversized_meta(&f, tar::EntryType::XHeader, "PaxHeaders/bagit.txt", real);
    let t = f.path("dist/huge-pax.tar");
    std::fs::write(&t, bytes).unwrap();
    assert_refused_small(&f, &t, "PaxHeaders/bagit.txt", real);
    // import reads through the same walk.
    let o = f.import(&t, "store");
    assert_refused(&o, "PaxHeaders/bagit.txt", "declares 8589934592 bytes");
}

#[test]
fn tar_gnu_long_name_of_8_gib_is_refused_before_it_is_read() {
    let f = Fixture::new();
    let real = 128 << 20;
    let bytes = tar_behind_oversized_meta(&f, tar::EntryType::GNULongName, "././@LongLink", real);
    let t = f.path("dist/huge-long-name.tar");
    std::fs::write(&t, bytes).unwrap();
    assert_refused_small(&f, &t, "././@LongLink", real);
}

#[test]
fn tar_zst_pax_header_of_8_gib_is_refused_before_it_is_read() {
    let f = Fixture::new();
    // Compressed, the data behind the header costs the attacker nothing.
    let real = 256 << 20;
    let bytes =
        tar_behind_oversized_meta(&f, tar::EntryType::XHeader, "PaxHeaders/bagit.txt", real);
    let t = f.path("dist/huge-pax.tar.zst");
    std::fs::write(&t, zstd::encode_all(&bytes[..], 1).unwrap()).unwrap();
    drop(bytes);
    assert!(std::fs::metadata(&t).unwrap().len() < 16 << 20);
    assert_refused_small(&f, &t, "PaxHeaders/bagit.txt", real);
}

fn long_name(name: &str) -> RawEntry {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    RawEntry {
        path: "././@LongLink".to_string(),
        kind: tar::EntryType::GNULongName,
        data,
        link: None,
    }
}

#[test]
fn tar_gnu_long_name_names_the_entry_after_it() {
    let f = Fixture::new();
    let good = f.pack("tar");
    let blob = runbook_blob(&f);
    // The name as GNU tar (and the tar crate, past 100 bytes) writes it: a
    // long-name entry, then the member under a name of no meaning.
    let t = hostile_tar_from(&f, &good, |e| {
        let at = index_of(e, &blob);
        e[at].path = "ignored".to_string();
        e.insert(at, long_name(&blob));
    });
    let o = f.verify(&t);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The same long name, unsafe: named and refused as any unsafe name.
    let t = hostile_tar_from(&f, &good, |e| {
        let at = index_of(e, &blob);
        e.insert(at, long_name("../escape.txt"));
    });
    assert_refused(&f.verify(&t), "../escape.txt", "unsafe path");
}

#[test]
fn tar_two_gnu_long_names_for_one_entry_are_refused() {
    let f = Fixture::new();
    let blob = runbook_blob(&f);
    let t = hostile_tar(&f, |e| {
        let at = index_of(e, &blob);
        e.insert(at, long_name(&blob));
        e.insert(at, long_name("data/other.txt"));
    });
    let o = f.verify(&t);
    assert_refused(
        &o,
        t.to_str().unwrap(),
        "two GNU long names describe the same member",
    );
}

// ---------------------------------------------------------------- oversized tar metadata in content
// Every other tar airlock reads from outside (a `docker save` archive, a
// legacy torch checkpoint in a model, a tar bundle being added to) walks
// through the same bounded raw walk as the bundle reader.

/// Writes to `path` a tar whose first header is `kind` declaring 8 GiB,
/// followed by `real` bytes: a reader that takes the metadata whole reads
/// all of them into memory.
fn write_oversized_meta_tar(path: &Path, kind: tar::EntryType, name: &str, real: usize) {
    let mut bytes = meta_header(kind, name, DECLARED);
    bytes.resize(512 + real, b'a');
    std::fs::write(path, bytes).unwrap();
}

/// `pack --format dir` of the fixture's manifest into `out`, measuring its
/// peak memory.
fn pack_measured(f: &Fixture, out: &str) -> (Output, u64) {
    run_measured(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s(out),
        "--format",
        "dir",
    ])
}

#[track_caller]
fn assert_small(o: &Output, peak: u64, real: usize, what: &str) {
    eprintln!("peak memory of {what}: {peak} bytes");
    assert!(
        peak < real as u64 / 2,
        "peak memory of {what} {peak} bytes: the metadata was read ({real} bytes behind its header); stderr:\n{}",
        stderr(o)
    );
}

fn docker_archive_refuses_oversized(kind: tar::EntryType, name: &str) {
    let f = Fixture::new();
    let real = 128 << 20;
    let archive = f.path("src/app.tar");
    write_oversized_meta_tar(&archive, kind, name, real);
    f.write_manifest("images:\n  - source: docker-archive:app.tar\n    name: demo/app:1\n");
    let (o, peak) = pack_measured(&f, "dist");
    assert_small(&o, peak, real, "pack");
    let err = stderr(&o);
    assert_eq!(
        code(&o),
        1,
        "a hostile archive is refused with exit 1: {err}"
    );
    assert!(
        err.contains("app.tar")
            && err.contains(&format!("{name:?} declares {DECLARED} bytes"))
            && err.contains("at the start of the archive"),
        "names the archive, the entry and the size: {err}"
    );
    assert!(
        !f.path("dist").exists() || std::fs::read_dir(f.path("dist")).unwrap().next().is_none()
    );
}

#[test]
fn docker_archive_pax_header_of_8_gib_is_refused_before_it_is_read() {
    docker_archive_refuses_oversized(tar::EntryType::XHeader, "PaxHeaders/manifest.json");
}

#[test]
fn docker_archive_gnu_long_name_of_8_gib_is_refused_before_it_is_read() {
    docker_archive_refuses_oversized(tar::EntryType::GNULongName, "././@LongLink");
}

fn sha256_hex_of(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A small `docker save` archive: a config, one layer (`l1/layer.tar`) and
/// manifest.json, as raw entries.
fn docker_archive_entries() -> Vec<RawEntry> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "etc/hello", &b"hello\n"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex_of(&layer))]},
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_hex_of(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["demo/app:1"],
        "Layers": ["l1/layer.tar"],
    }]))
    .unwrap();
    vec![
        regular(&config_name, &config),
        regular("l1/layer.tar", &layer),
        regular("manifest.json", &manifest),
    ]
}

#[test]
fn docker_archive_names_from_pax_records_and_long_names_are_still_applied() {
    let f = Fixture::new();
    f.write_manifest("images:\n  - source: docker-archive:app.tar\n");
    // manifest.json named only by a pax `path`, the layer only by a GNU
    // long name: found under their real names, so the archive converts.
    let mut e = docker_archive_entries();
    e[2].path = "PaxHeaders/ignored".into();
    e.insert(2, pax(pax_record("path", "manifest.json")));
    e[1].path = "ignored".into();
    e.insert(1, long_name("l1/layer.tar"));
    write_tar(&f.path("src/app.tar"), &e);
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A second copy of the layer, other bytes, hidden behind a pax `path`
    // under a harmless header name: still seen, so refused as a duplicate.
    let mut e = docker_archive_entries();
    e.push(pax(pax_record("path", "l1/layer.tar")));
    e.push(regular("harmless.txt", b"other bytes"));
    write_tar(&f.path("src/app.tar"), &e);
    let o = f.pack_with("dir", "dist2", &[]);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("l1/layer.tar appears twice"),
        "{}",
        stderr(&o)
    );
    // The same behind a GNU long name.
    let mut e = docker_archive_entries();
    e.push(long_name("l1/layer.tar"));
    e.push(regular("harmless.txt", b"other bytes"));
    write_tar(&f.path("src/app.tar"), &e);
    let o = f.pack_with("dir", "dist3", &[]);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("l1/layer.tar appears twice"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn model_tar_with_a_pax_header_of_8_gib_is_refused_before_it_is_read() {
    let f = Fixture::new();
    let real = 128 << 20;
    // A file torch.load would open as a legacy torch tar.
    let model = f.path("src/models/minilm/old.bin");
    write_oversized_meta_tar(&model, tar::EntryType::XHeader, "PaxHeaders/pickle", real);
    let (o, peak) = pack_measured(&f, "dist");
    assert_small(&o, peak, real, "pack");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("old.bin")
            && err.contains(&format!("\"PaxHeaders/pickle\" declares {DECLARED} bytes"))
            && err.contains("unscannable"),
        "{err}"
    );
    // Packed where pickles are allowed, the high side (pickles denied)
    // refuses it the same way, reading as little.
    f.write_manifest("policy:\n  pickle: allow\n");
    let b = f.pack_to("tar", "allowed");
    let (o, peak) = run_measured(&[
        "verify",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
    ]);
    assert_small(&o, peak, real, "verify");
    assert_refused(
        &o,
        "models/minilm/old.bin",
        &format!("declares {DECLARED} bytes"),
    );
}

#[test]
fn model_tar_with_a_gnu_long_name_of_8_gib_is_refused_before_it_is_read() {
    let f = Fixture::new();
    let real = 128 << 20;
    let model = f.path("src/models/minilm/old.bin");
    write_oversized_meta_tar(&model, tar::EntryType::GNULongName, "././@LongLink", real);
    let (o, peak) = pack_measured(&f, "dist");
    assert_small(&o, peak, real, "pack");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("declares {DECLARED} bytes")),
        "{}",
        stderr(&o)
    );
}

/// A pickle calling `os.system` when loaded (protocol 2).
const EVIL_PICKLE: &[u8] = b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R.";

#[test]
fn model_tar_member_named_pickle_by_a_pax_path_or_long_name_is_still_scanned() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm/old.bin");
    for name_it in [pax(pax_record("path", "pickle")), long_name("pickle")] {
        // The header says `x`; torch.load (tarfile) reads it as `pickle`.
        write_tar(&model, &[name_it, regular("x", EVIL_PICKLE)]);
        let o = f.pack_with("dir", "dist", &[]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("os.system"), "{}", stderr(&o));
    }
}

#[test]
fn sign_of_a_tar_with_a_pax_header_of_8_gib_after_its_payload_is_refused() {
    let f = Fixture::new();
    let real = 128 << 20;
    let t = hostile_tar(&f, |_| {});
    // Where additions go (after the payload, over the end-of-archive
    // blocks): an 8 GiB pax header and 128 MiB behind it.
    let mut bytes = std::fs::read(&t).unwrap();
    bytes.truncate(bytes.len() - 1024);
    bytes.extend(meta_header(
        tar::EntryType::XHeader,
        "PaxHeaders/custody",
        DECLARED,
    ));
    bytes.resize(bytes.len() + real, b'a');
    std::fs::write(&t, &bytes).unwrap();
    let (o, peak) = run_measured(&[
        "sign",
        t.to_str().unwrap(),
        "--key",
        &f.s("keys/stranger.key"),
    ]);
    assert_small(&o, peak, real, "sign");
    assert_refused(
        &o,
        "PaxHeaders/custody",
        &format!("declares {DECLARED} bytes"),
    );
    assert!(
        std::fs::read(&t).unwrap() == bytes,
        "the bundle is unchanged"
    );
}

/// A file set's OCI manifest larger than the 32 MiB airlock reads whole (a
/// 200k-file set's is about 50 MB) is still checked against the description,
/// parsed as it streams by: one re-signed with a renamed layer behind 33 MiB
/// of annotation is refused, not let through unchecked.
#[test]
fn a_file_set_manifest_over_32_mib_is_still_checked_against_the_description() {
    let f = Fixture::new();
    let bundle = f.pack("dir");
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap();
    let files = desc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "files")
        .expect("the fixture has a file set")
        .clone();
    let old_hex = files["manifest"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = |hex: &str| bundle.join("data/blobs/sha256").join(hex);
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&old_hex)).unwrap()).unwrap();
    let title = &mut m["layers"][0]["annotations"]["org.opencontainers.image.title"];
    *title = format!("{}-renamed", title.as_str().unwrap()).into();
    m["annotations"]["padding"] = "x".repeat(33 << 20).into();
    let bytes = serde_json::to_vec(&m).unwrap();
    let new_hex = sha256_hex(&bytes);
    std::fs::remove_file(blob(&old_hex)).unwrap();
    std::fs::write(blob(&new_hex), &bytes).unwrap();
    let index_path = bundle.join("data/index.json");
    let index = std::fs::read_to_string(&index_path)
        .unwrap()
        .replace(&old_hex, &new_hex);
    let mut index: serde_json::Value = serde_json::from_str(&index).unwrap();
    for e in index["manifests"].as_array_mut().unwrap() {
        if e["digest"].as_str().unwrap().ends_with(&new_hex) {
            e["size"] = bytes.len().into();
        }
    }
    let index = serde_json::to_vec(&index).unwrap();
    std::fs::write(&index_path, &index).unwrap();
    let listing = std::fs::read_to_string(bundle.join("manifest-sha256.txt")).unwrap();
    let listing: String = listing
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, "data/index.json")) => format!("{}  data/index.json\n", sha256_hex(&index)),
            _ => format!("{}\n", l.replace(&old_hex, &new_hex)),
        })
        .collect();
    std::fs::write(bundle.join("manifest-sha256.txt"), &listing).unwrap();
    let (mut octets, mut count) = (0, 0);
    for l in listing.lines() {
        octets += std::fs::metadata(bundle.join(l.split_once("  ").unwrap().1))
            .unwrap()
            .len();
        count += 1;
    }
    let info = std::fs::read_to_string(bundle.join("bag-info.txt")).unwrap();
    let info: String = info
        .lines()
        .map(|l| match l.starts_with("Payload-Oxum:") {
            true => format!("Payload-Oxum: {octets}.{count}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(bundle.join("bag-info.txt"), &info).unwrap();
    let tm = std::fs::read_to_string(bundle.join("tagmanifest-sha256.txt")).unwrap();
    let tm: String = tm
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, "manifest-sha256.txt")) => {
                format!("{}  manifest-sha256.txt\n", sha256_hex(listing.as_bytes()))
            }
            Some((_, "bag-info.txt")) => {
                format!("{}  bag-info.txt\n", sha256_hex(info.as_bytes()))
            }
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(bundle.join("tagmanifest-sha256.txt"), tm).unwrap();
    alter_description(&f, &bundle, |d| {
        for a in d["artifacts"].as_array_mut().unwrap() {
            if a["manifest"]["digest"]
                .as_str()
                .unwrap()
                .ends_with(&old_hex)
            {
                a["manifest"]["digest"] = format!("sha256:{new_hex}").into();
                a["manifest"]["size"] = bytes.len().into();
            }
        }
    });
    let o = f.verify(&bundle);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("1 problem")
            && err.contains(&format!("data/blobs/sha256/{new_hex}: layers of"))
            && err.contains("differ from airlock.json"),
        "{err}"
    );
}

/// A file set's and a model's OCI manifests are checked against the
/// description layer by layer (read as they are hashed, never kept whole):
/// a description re-signed with other paths than the manifests' titles is
/// refused by verify and import.
#[test]
fn layers_that_differ_from_the_signed_manifests_are_refused() {
    let f = Fixture::new();
    let bundle = f.pack("dir");
    assert_eq!(code(&f.verify(&bundle)), 0);
    let mut altered = 0;
    alter_description(&f, &bundle, |d| {
        for a in d["artifacts"].as_array_mut().unwrap() {
            if a["kind"] == "files" || a["kind"] == "model" {
                altered += 1;
                let l = &mut a["layers"][0];
                let renamed = format!("{}-renamed", l["path"].as_str().unwrap());
                l["path"] = renamed.into();
            }
        }
    });
    for o in [f.verify(&bundle), f.import(&bundle, "store")] {
        let err = stderr(&o);
        assert_eq!(code(&o), 1, "{err}");
        assert_eq!(
            err.matches("differ from airlock.json").count(),
            altered,
            "each artifact's layers: {err}"
        );
    }
    assert!(
        !f.path("store/bundles").exists()
            || std::fs::read_dir(f.path("store/bundles"))
                .unwrap()
                .next()
                .is_none()
    );
}
