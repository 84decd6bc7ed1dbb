//! The store's commit protocol under failure: the import is killed
//! (`std::process::abort`, as kill -9) or fails (ENOSPC) at each step through
//! the debug-build failpoint `AIRLOCK_FAILPOINT`, and afterwards the bundle is
//! either fully present (record, index entry, ledger entry) or absent, with
//! `store ls`, `store log --verify`, `oci/index.json` and the records in
//! agreement, leftover staging removed, and a re-import working. Also: the
//! ledger's tail is protected by `ledger.head`, and a mistyped store path
//! gives the same error in every store command.

mod common;
use common::*;

use std::path::Path;
use std::process::Output;

fn import_failing(f: &Fixture, bundle: &Path, failpoint: &str) -> Output {
    airlock()
        .env("AIRLOCK_FAILPOINT", failpoint)
        .args([
            "import",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            &f.s("store"),
        ])
        .output()
        .unwrap()
}

fn staging_dirs(store: &Path) -> Vec<String> {
    std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging-"))
        .collect()
}

fn ledger_actions(f: &Fixture) -> Vec<(String, Option<String>)> {
    let log = run(&["store", "log", "--store", &f.s("store"), "--json"]);
    assert_eq!(code(&log), 0, "{}", stderr(&log));
    json(&log)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["version"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Checks that every view of the store agrees on whether demo 1.0.0 is
/// imported; returns whether it is. Runs `store ls` first, which recovers.
#[track_caller]
fn consistent(f: &Fixture) -> bool {
    let store = f.path("store");
    let ls = run(&["store", "ls", "--store", &f.s("store"), "--json"]);
    assert_eq!(code(&ls), 0, "{}", stderr(&ls));
    let listed: Vec<serde_json::Value> = json(&ls)["bundles"].as_array().unwrap().clone();
    let in_ls = listed
        .iter()
        .any(|b| b["name"] == "demo" && b["version"] == "1.0.0");
    assert!(
        staging_dirs(&store).is_empty(),
        "staging left after recovery"
    );

    let log = run(&[
        "store",
        "log",
        "--store",
        &f.s("store"),
        "--verify",
        "--json",
    ]);
    assert_eq!(code(&log), 0, "log --verify: {}", stderr(&log));
    let imports: Vec<serde_json::Value> = json(&log)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "import" && e["version"] == "1.0.0")
        .cloned()
        .collect();
    assert!(imports.len() <= 1, "{imports:?}");
    let in_ledger = imports.len() == 1;

    let record = store.join("bundles/demo/1.0.0/record.json");
    let has_record = record.exists();
    assert_eq!(
        has_record,
        store.join("bundles/demo/1.0.0").exists(),
        "a record directory exists exactly when its record.json does"
    );

    let index_ids: Vec<String> = match std::fs::read(store.join("oci/index.json")) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).unwrap()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["annotations"]["dev.airlock.bundle.id"].as_str())
            .map(str::to_string)
            .collect(),
        Err(_) => vec![],
    };
    let in_index = !index_ids.is_empty();
    assert_eq!(
        (in_ls, in_ledger, has_record, in_index),
        (in_ls, in_ls, in_ls, in_ls),
        "ls, ledger, record and index disagree (ls {in_ls}, ledger {in_ledger}, record {has_record}, index {in_index})"
    );
    if in_ls {
        let id = listed[0]["bundleId"].as_str().unwrap();
        assert_eq!(imports[0]["bundleId"], id);
        assert!(index_ids.iter().all(|i| i == id), "{index_ids:?}");
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        if !rec["commit"].is_null() {
            assert_eq!(rec["commit"]["seq"], imports[0]["sequence"]);
        }
    }
    in_ls
}

#[cfg(all(unix, debug_assertions))]
fn killed(o: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(6)
}

#[cfg(debug_assertions)]
/// Kills the import at `step`, then makes it fail there with ENOSPC; each
/// time the store must be consistent, `present` telling whether the bundle
/// counts as imported, and a plain re-import must then succeed.
fn fail_at(step: &str, present: bool) {
    for mode in ["abort", "error"] {
        let f = Fixture::new();
        let b = f.pack("tar");
        let o = import_failing(&f, &b, &format!("{step}:{mode}"));
        if mode == "abort" {
            assert!(
                killed(&o),
                "{step}: not killed: {:?} {}",
                o.status,
                stderr(&o)
            );
        } else {
            assert_eq!(code(&o), 2, "{step}: {}", stderr(&o));
            assert!(stderr(&o).contains("no space left"), "{}", stderr(&o));
            if present {
                assert!(stderr(&o).contains("is imported"), "{}", stderr(&o));
            } else {
                assert!(
                    staging_dirs(&f.path("store")).is_empty(),
                    "an error removes its own staging"
                );
            }
        }
        assert_eq!(consistent(&f), present, "{step}:{mode}");
        let actions = ledger_actions(&f);
        if !present {
            assert!(
                actions.iter().all(|(a, _)| a == "refuse"),
                "{step}:{mode}: {actions:?}"
            );
        }
        let o = f.import(&b, "store");
        assert_eq!(code(&o), 0, "{step}:{mode} re-import: {}", stderr(&o));
        assert!(consistent(&f), "{step}:{mode}: present after re-import");
        let imports = ledger_actions(&f)
            .into_iter()
            .filter(|(a, _)| a == "import")
            .count();
        assert_eq!(imports, 1, "{step}:{mode}: one import entry");
        // And the content is whole.
        let out = f.path("out");
        let o = run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            std::fs::read(out.join("models/minilm/model.safetensors")).unwrap(),
            std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap()
        );
    }
}

// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn failure_before_blobs_are_moved_leaves_nothing_and_staging_is_cleaned() {
    // A kill leaves a staging directory as large as the bundle; the next
    // store command removes it under the lock.
    let f = Fixture::new();
    let b = f.pack("dir");
    let o = import_failing(&f, &b, "blobs");
    assert!(killed(&o));
    let left = staging_dirs(&f.path("store"));
    assert_eq!(left.len(), 1, "{left:?}");
    let staged = std::fs::read_dir(f.path("store").join(&left[0]))
        .unwrap()
        .count();
    assert!(staged > 0, "the killed import had staged blobs");
    assert!(!consistent(&f));
    fail_at("blobs", false);
}

// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn failure_before_the_record_leaves_nothing() {
    fail_at("record", false);
}

// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn failure_before_the_ledger_entry_leaves_nothing() {
    // The error mode is ENOSPC on the ledger write: the record is removed
    // again and the import is not reported.
    fail_at("ledger", false);
}

// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn failure_before_the_head_leaves_nothing() {
    // The ledger line was appended but not committed by the head: it is
    // dropped, and the record naming it removed.
    fail_at("head", false);
}

// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn failure_before_the_index_leaves_the_bundle_imported() {
    // Committed: the index is derived from the records and rebuilt.
    fail_at("index", true);
}

/// Large and many blobs take the two ways the staged set is made durable
/// before the commit: a few files are synced one by one (a large one also
/// while it is written), more than 64 with one sync of the filesystem.
/// Either way a kill after the sync, before the blobs move, leaves the store
/// as it was, and the import then brings every byte.
// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn large_and_many_blobs_survive_a_kill_before_they_move_and_import_whole() {
    for (big, many) in [(40usize << 20, 0usize), (0, 80)] {
        let f = Fixture::new();
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let bytes: Vec<u8> = std::iter::once(b'd')
            .chain((1..big).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }))
            .collect();
        if big > 0 {
            std::fs::write(f.path("src/docs/big.bin"), &bytes).unwrap();
        }
        std::fs::create_dir_all(f.path("src/docs/many")).unwrap();
        for i in 0..many {
            std::fs::write(f.path(&format!("src/docs/many/{i}.txt")), format!("{i}\n")).unwrap();
        }
        let b = f.pack("dir");
        let o = import_failing(&f, &b, "blobs");
        assert!(killed(&o), "{}", stderr(&o));
        let left = staging_dirs(&f.path("store"));
        assert_eq!(left.len(), 1, "{left:?}");
        let staged = std::fs::read_dir(f.path("store").join(&left[0]))
            .unwrap()
            .count();
        if big > 0 {
            assert!(staged <= 64, "synced one by one: {staged} staged files");
        } else {
            assert!(staged > 64, "synced at once: {staged} staged files");
        }
        assert!(!consistent(&f), "nothing imported after the kill");
        let o = f.import(&b, "store");
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(consistent(&f));
        let out = f.path("out");
        let o = run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        if big > 0 {
            assert!(std::fs::read(out.join("files/docs/big.bin")).unwrap() == bytes);
        }
        for i in 0..many {
            assert_eq!(
                std::fs::read_to_string(out.join(format!("files/docs/many/{i}.txt"))).unwrap(),
                format!("{i}\n")
            );
        }
    }
}

// Failpoints exist in debug builds only.
#[cfg(debug_assertions)]
#[test]
fn uncommitted_ledger_tail_is_hidden_from_readers_while_a_writer_runs() {
    // A kill between the ledger append and the head: while another process
    // holds the lock (as a running import would), readers see only what
    // the head commits; then recovery drops the tail.
    let f = Fixture::new();
    let b = f.pack("dir");
    let o = import_failing(&f, &b, "head");
    assert!(killed(&o));
    let lines = std::fs::read_to_string(f.path("store/ledger.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 1, "the uncommitted line is there");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path("store/lock"))
        .unwrap();
    lock.lock().unwrap();
    let ls = run(&["store", "ls", "--store", &f.s("store"), "--json"]);
    assert_eq!(json(&ls)["bundles"], serde_json::json!([]));
    let log = run(&[
        "store",
        "log",
        "--store",
        &f.s("store"),
        "--verify",
        "--json",
    ]);
    assert_eq!(code(&log), 0, "{}", stderr(&log));
    assert_eq!(json(&log)["entries"], serde_json::json!([]));
    drop(lock);
    assert!(!consistent(&f));
    assert_eq!(
        std::fs::read_to_string(f.path("store/ledger.jsonl")).unwrap(),
        "",
        "recovery dropped the uncommitted line"
    );
}

// ------------------------------------------------------- the ledger's tail

/// A store with demo 1.0.0 imported and a refused import after it.
fn store_with_import_and_refusal(f: &Fixture) -> String {
    let b = f.pack("dir");
    assert_eq!(code(&f.import(&b, "store")), 0);
    f.write_policy("stranger", "[builder]", "require:\n  builder: 1\n");
    assert_eq!(code(&f.import(&b, "store")), 1);
    f.write_policy("builder", "[builder]", "require:\n  builder: 1\n");
    let o = run(&["store", "log", "--store", &f.s("store"), "--verify"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::read_to_string(f.path("store/ledger.jsonl")).unwrap()
}

#[track_caller]
fn log_verify_fails(f: &Fixture, says: &str) {
    let o = run(&["store", "log", "--store", &f.s("store"), "--verify"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(says), "{}", stderr(&o));
}

#[test]
fn ledger_truncated_to_zero_bytes_is_detected() {
    let f = Fixture::new();
    store_with_import_and_refusal(&f);
    std::fs::write(f.path("store/ledger.jsonl"), "").unwrap();
    log_verify_fails(&f, "entries were deleted or the ledger truncated");
    // A write is refused, so the evidence is not overwritten.
    let b = f.path("dist/demo-1.0.0");
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(f.path("store/ledger.jsonl")).unwrap(),
        ""
    );
}

#[test]
fn deleted_last_ledger_line_is_detected() {
    let f = Fixture::new();
    let text = store_with_import_and_refusal(&f);
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        f.path("store/ledger.jsonl"),
        lines[..lines.len() - 1].join("\n") + "\n",
    )
    .unwrap();
    log_verify_fails(&f, "holds 1 entries but");
}

#[test]
fn rewritten_last_ledger_entry_is_detected() {
    // refuse -> import in the last line keeps the chain intact (nothing
    // follows it); the head and the records catch it.
    let f = Fixture::new();
    let text = store_with_import_and_refusal(&f);
    let last = text.lines().last().unwrap();
    assert!(last.contains("\"action\":\"refuse\""), "{last}");
    let forged = last.replace("\"action\":\"refuse\"", "\"action\":\"import\"");
    std::fs::write(f.path("store/ledger.jsonl"), text.replace(last, &forged)).unwrap();
    log_verify_fails(&f, "the last committed entry was rewritten");
    log_verify_fails(&f, "holds no such record");
}

#[test]
fn deleted_ledger_head_is_detected() {
    let f = Fixture::new();
    store_with_import_and_refusal(&f);
    std::fs::remove_file(f.path("store/ledger.head")).unwrap();
    log_verify_fails(&f, "ledger.head: missing");
}

#[test]
fn record_without_its_ledger_entry_is_detected() {
    // The ledger and its head rewritten together from the start: the record
    // names an entry the ledger no longer holds. (Recovery removes only the
    // one record a crash can leave: the one naming the entry after the head.)
    let f = Fixture::new();
    let b = f.pack("dir");
    f.write_policy("stranger", "[builder]", "require:\n  builder: 1\n");
    assert_eq!(code(&f.import(&b, "store")), 1);
    f.write_policy("builder", "[builder]", "require:\n  builder: 1\n");
    assert_eq!(code(&f.import(&b, "store")), 0);
    std::fs::write(f.path("store/ledger.jsonl"), "").unwrap();
    std::fs::write(f.path("store/ledger.head"), "{\"count\":0}").unwrap();
    log_verify_fails(
        &f,
        "committed by ledger entry 2, which the ledger does not hold",
    );
    assert!(f.path("store/bundles/demo/1.0.0/record.json").exists());
}

#[test]
fn edited_record_is_reported_and_the_store_stays_readable() {
    let f = Fixture::new();
    let b = f.pack("dir");
    assert_eq!(code(&f.import(&b, "store")), 0);
    let index = std::fs::read(f.path("store/oci/index.json")).unwrap();
    std::fs::write(f.path("store/bundles/demo/1.0.0/airlock.json"), "{").unwrap();
    let ls = run(&["store", "ls", "--store", &f.s("store"), "--json"]);
    assert_eq!(code(&ls), 0, "{}", stderr(&ls));
    assert_eq!(json(&ls)["bundles"][0]["name"], "demo");
    log_verify_fails(
        &f,
        "does not match the record's tag manifest (record edited)",
    );
    assert_eq!(
        std::fs::read(f.path("store/oci/index.json")).unwrap(),
        index,
        "the index is not rebuilt from an unreadable record"
    );
}

#[test]
fn store_written_before_the_ledger_head_is_adopted() {
    // An older store: no ledger.head, records without `commit`.
    let f = Fixture::new();
    let b = f.pack("dir");
    assert_eq!(code(&f.import(&b, "store")), 0);
    std::fs::remove_file(f.path("store/ledger.head")).unwrap();
    let rec = f.path("store/bundles/demo/1.0.0/record.json");
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    r.as_object_mut().unwrap().remove("commit");
    std::fs::write(&rec, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    assert!(consistent(&f));
    let head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("store/ledger.head")).unwrap()).unwrap();
    assert_eq!(head["count"], 1, "{head}");
    // Its records are still checked against the ledger: an import entry
    // must name them.
    let ledger = f.path("store/ledger.jsonl");
    let text = std::fs::read_to_string(&ledger).unwrap();
    let forged = text.replace("\"action\":\"import\"", "\"action\":\"export\"");
    std::fs::write(&ledger, &forged).unwrap();
    let last = forged.lines().last().unwrap();
    let head = format!(
        "{{\"count\":1,\"last\":\"{}\"}}",
        sha256_hex(last.as_bytes())
    );
    std::fs::write(f.path("store/ledger.head"), head).unwrap();
    log_verify_fails(&f, "no ledger entry records this import");
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

// ------------------------------------------------- a mistyped store path

#[test]
fn every_store_command_gives_the_same_error_for_a_missing_or_file_store() {
    let f = Fixture::new();
    std::fs::write(f.path("afile"), "not a store").unwrap();
    std::fs::create_dir(f.path("emptydir")).unwrap();
    for (path, says) in [
        (f.s("no/such/store"), "no such store"),
        (f.s("afile"), "is a file, not an airlock store"),
        (f.s("emptydir"), "not an airlock store"),
    ] {
        let out = f.s("out");
        let commands: Vec<Vec<&str>> = vec![
            vec!["store", "ls", "--store", &path],
            vec!["store", "ls", "--store", &path, "--json"],
            vec!["store", "log", "--store", &path],
            vec!["store", "log", "--store", &path, "--verify"],
            vec!["export", "--store", &path, "--bundle", "demo", "--to", &out],
            vec![
                "push",
                "--store",
                &path,
                "--bundle",
                "demo",
                "--registry",
                "127.0.0.1:9",
            ],
        ];
        for args in commands {
            let o = run(&args);
            assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
            let message = if args.contains(&"--json") {
                json(&o)["error"]["message"].as_str().unwrap().to_string()
            } else {
                assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
                stderr(&o)
            };
            assert!(
                message.contains(&format!("{path}: {says}")),
                "{args:?}: {message}"
            );
        }
        assert!(!f.path("out").exists());
    }
    // Importing into a file is the same error too.
    let b = f.pack("dir");
    let o = f.import(&b, "afile");
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("is a file, not an airlock store"),
        "{}",
        stderr(&o)
    );
}
