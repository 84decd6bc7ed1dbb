//! `export` is safe against its target and against an edited store: it
//! never writes through a link, refuses a non-empty target, leaves nothing
//! behind when it fails, and checks every name it reads from the store's
//! record before using it as a path.

mod common;
use common::*;

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Output;

fn imported() -> Fixture {
    let f = Fixture::new();
    let b = f.pack("dir");
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    f
}

fn export(f: &Fixture, to: &Path) -> Output {
    run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--to",
        to.to_str().unwrap(),
        "--json",
    ])
}

/// Names in `dir` other than `keep`: leftovers of an export.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

fn ledger_exports(f: &Fixture) -> usize {
    std::fs::read_to_string(f.path("store/ledger.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"action\":\"export\""))
        .count()
}

#[test]
fn export_writes_into_a_new_or_empty_directory_and_lists_final_paths() {
    let f = imported();
    std::fs::create_dir(f.path("empty")).unwrap();
    for to in [f.path("new/deeper/out"), f.path("empty")] {
        let o = export(&f, &to);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let files = json(&o)["files"].as_array().unwrap().clone();
        assert!(!files.is_empty());
        for p in files {
            let p = Path::new(p.as_str().unwrap());
            assert!(p.starts_with(&to), "{}", p.display());
            assert!(p.is_file(), "{}", p.display());
        }
        assert_eq!(
            std::fs::read(to.join("models/minilm/model.safetensors")).unwrap(),
            std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap()
        );
    }
    assert!(leftovers(f.root(), &[])
        .iter()
        .all(|n| !n.starts_with(".airlock-export")));
}

#[cfg(unix)]
#[test]
fn export_never_writes_through_a_link_in_the_target() {
    let f = imported();
    let elsewhere = f.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let to = f.path("out");
    std::fs::create_dir(&to).unwrap();
    std::os::unix::fs::symlink(&elsewhere, to.join("models")).unwrap();
    let o = export(&f, &to);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(json(&o)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is not empty"));
    assert!(
        leftovers(&elsewhere, &[]).is_empty(),
        "written through the link"
    );
    assert_eq!(leftovers(&to, &[]), ["models"]);
    assert_eq!(ledger_exports(&f), 0);
}

#[cfg(unix)]
#[test]
fn export_refuses_a_target_that_is_a_link() {
    let f = imported();
    let elsewhere = f.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let to = f.path("out");
    std::os::unix::fs::symlink(&elsewhere, &to).unwrap();
    let o = export(&f, &to);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        json(&o)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is a symbolic link"),
        "{}",
        stdout(&o)
    );
    assert!(leftovers(&elsewhere, &[]).is_empty());
    assert!(std::fs::symlink_metadata(&to)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn export_refuses_a_non_empty_target_and_leaves_it_alone() {
    let f = imported();
    let to = f.path("out");
    std::fs::create_dir_all(to.join("models/minilm")).unwrap();
    std::fs::write(to.join("mine.txt"), "keep me").unwrap();
    let before = snapshot(&to);
    let o = export(&f, &to);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(json(&o)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is not empty; export into a new or empty directory"));
    assert_eq!(snapshot(&to), before);
    // A file as the target is refused too.
    let o = export(&f, &to.join("mine.txt"));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(snapshot(&to), before);
}

#[test]
fn failed_export_leaves_no_partial_output() {
    let f = imported();
    // A corrupt store blob: found after other files were already written.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("store/oci/index.json")).unwrap()).unwrap();
    let desc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.path("store/bundles/demo/1.0.0/airlock.json")).unwrap(),
    )
    .unwrap();
    assert!(index["manifests"].as_array().unwrap().len() >= 2);
    let last_layer = desc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .flat_map(|a| a["layers"].as_array().unwrap().iter().rev())
        .next()
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = f.path("store/oci/blobs/sha256").join(&last_layer);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 1;
    std::fs::write(&blob, &bad).unwrap();
    let to = f.path("out");
    let o = export(&f, &to);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        json(&o)["error"]["findings"]
            .to_string()
            .contains("store blob is corrupt"),
        "{}",
        stdout(&o)
    );
    assert!(!to.exists(), "partial output left");
    assert_eq!(
        leftovers(f.root(), &["dist", "keys", "policy.yaml", "src", "store"]),
        Vec::<String>::new()
    );
    assert_eq!(ledger_exports(&f), 0);
    std::fs::write(&blob, &good).unwrap();

    // A failure at the very end (the last step before the rename), through
    // the failpoint of debug builds.
    if !cfg!(debug_assertions) {
        return;
    }
    let o = airlock()
        .env("AIRLOCK_FAILPOINT", "export:error")
        .args([
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            to.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!to.exists(), "partial output left");
    assert_eq!(
        leftovers(f.root(), &["dist", "keys", "policy.yaml", "src", "store"]),
        Vec::<String>::new()
    );
    assert_eq!(ledger_exports(&f), 0);
    let o = export(&f, &to);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ledger_exports(&f), 1);
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Rewrites the stored description with `edit`; with `consistent`, also
/// the record's tag manifest and id, as an attacker with write access to
/// the store would, so that only the name checks stand in the way.
fn edit_record(f: &Fixture, consistent: bool, edit: impl Fn(&mut serde_json::Value)) {
    let rec = f.path("store/bundles/demo/1.0.0");
    let mut d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rec.join("airlock.json")).unwrap()).unwrap();
    edit(&mut d);
    let bytes = serde_json::to_vec(&d).unwrap();
    std::fs::write(rec.join("airlock.json"), &bytes).unwrap();
    if !consistent {
        return;
    }
    let tm = std::fs::read_to_string(rec.join("tagmanifest-sha256.txt")).unwrap();
    let tm: String = tm
        .lines()
        .map(|l| {
            if l.ends_with("  airlock.json") {
                format!("{}  airlock.json\n", sha256_hex(&bytes))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(rec.join("tagmanifest-sha256.txt"), &tm).unwrap();
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rec.join("record.json")).unwrap()).unwrap();
    r["id"] = sha256_hex(tm.as_bytes()).into();
    std::fs::write(rec.join("record.json"), serde_json::to_vec(&r).unwrap()).unwrap();
}

fn rename_model(d: &mut serde_json::Value, to: &str) {
    for a in d["artifacts"].as_array_mut().unwrap() {
        if a["kind"] == "model" {
            a["name"] = to.into();
        }
    }
}

#[track_caller]
fn assert_export_refused(f: &Fixture, says: &str) {
    let to = f.path("sub/out");
    let o = export(f, &to);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        json(&o)["error"]["findings"].to_string().contains(says),
        "{}",
        stdout(&o)
    );
    assert!(!f.path("outside").exists(), "wrote outside --to");
    assert!(!to.exists());
    assert_eq!(ledger_exports(f), 0);
}

#[test]
fn export_refuses_an_edited_record() {
    // The record's description no longer matches the tag manifest whose
    // sha256 is the bundle id.
    let f = imported();
    edit_record(&f, false, |d| rename_model(d, "../../outside/x"));
    assert_export_refused(&f, "does not match the record's tag manifest");
}

#[test]
fn export_refuses_a_model_name_that_leaves_the_target() {
    let f = imported();
    edit_record(&f, true, |d| rename_model(d, "../../outside/x"));
    assert_export_refused(&f, "is not a plain directory name");
}

#[test]
fn export_refuses_a_file_path_that_leaves_the_target() {
    let f = imported();
    edit_record(&f, true, |d| {
        for a in d["artifacts"].as_array_mut().unwrap() {
            if a["kind"] == "files" {
                a["layers"][0]["path"] = "../../../outside/x".into();
            }
        }
    });
    assert_export_refused(&f, "unsafe path");
}

/// Exported files are copies: byte-identical, not links into the store
/// (an inode of their own, one link), and writing one leaves the store's
/// blob as it was. Where the filesystem has reflinks (btrfs, XFS) the copy
/// shares the blob's blocks: set AIRLOCK_TEST_REFLINK_DIR to a directory on
/// such a filesystem and the store and export go there, and `filefrag` must
/// show the exported file's extents as shared. Elsewhere (ext4, tmpfs) the
/// export is a plain copy.
#[cfg(unix)]
#[test]
fn exported_files_are_copies_reflinked_where_the_filesystem_can() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new();
    let reflinks = std::env::var_os("AIRLOCK_TEST_REFLINK_DIR").map(std::path::PathBuf::from);
    let base = match &reflinks {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let bytes: Vec<u8> = std::iter::once(b'd')
        .chain((1..8 << 20).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }))
        .collect();
    std::fs::write(f.path("src/docs/big.bin"), &bytes).unwrap();
    let b = f.pack("dir");
    let store = base.path().join("store");
    let o = run(&[
        "import",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let to = base.path().join("out");
    let o = run(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        "--bundle",
        "demo",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let exported = to.join("files/docs/big.bin");
    let blob = store.join("oci/blobs/sha256").join(sha256_hex(&bytes));
    assert!(std::fs::read(&exported).unwrap() == bytes, "bytes differ");
    let (m, s) = (
        std::fs::symlink_metadata(&exported).unwrap(),
        std::fs::metadata(&blob).unwrap(),
    );
    assert!(m.file_type().is_file());
    assert_eq!(m.nlink(), 1, "a hard link into the store");
    assert_ne!(
        (m.dev(), m.ino()),
        (s.dev(), s.ino()),
        "the store's own file"
    );
    if reflinks.is_some() {
        let o = std::process::Command::new("filefrag")
            .arg("-v")
            .arg(&exported)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("shared"),
            "not reflinked: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    std::fs::write(&exported, b"changed").unwrap();
    assert!(
        std::fs::read(&blob).unwrap() == bytes,
        "the store's blob changed"
    );
    let o = run(&[
        "store",
        "log",
        "--store",
        store.to_str().unwrap(),
        "--verify",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
