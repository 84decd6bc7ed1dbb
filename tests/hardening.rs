//! Hostile or mistaken inputs outside the bundle reader: manifests and trust
//! policies too large or too deep, bundle paths that are FIFOs or missing, a
//! wrong Payload-Oxum in a re-signed bundle, manifest paths that reach
//! outside the manifest's directory. Each is refused with a clear message
//! and the contract's exit code.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HEAD: &str =
    "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: demo\n  version: 1.0.0\n";

/// Runs airlock, killing it (and failing the test) if it takes longer than `limit`.
fn run_within(args: &[&str], limit: Duration) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("airlock");
    let mut child = Command::new(bin)
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!(
                "airlock {args:?} still running after {limit:?}; stderr: {}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pack_manifest(f: &Fixture, text: &str) -> Output {
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    run_within(
        &[
            "pack",
            &f.s("src/airlock.yaml"),
            "--key",
            &f.s("keys/builder.key"),
            "--out",
            &f.s("dist"),
        ],
        Duration::from_secs(20),
    )
}

#[track_caller]
fn assert_fails(o: &Output, exit: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(code(o), exit, "stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
}

// ---------------------------------------------------------------------------
// 11.3: YAML bounded in size and depth before parsing
// ---------------------------------------------------------------------------

#[test]
fn manifests_nested_100k_deep_are_refused_fast() {
    let f = Fixture::new();
    let n = 100_000;
    let docs = [
        // Flow sequences as a field's value.
        format!("{HEAD}files: {}{}\n", "[".repeat(n), "]".repeat(n)),
        // Flow maps under an unknown key.
        format!("{HEAD}extra: {}1{}\n", "{a: ".repeat(n), "}".repeat(n)),
        // Block sequences, compact (`- - - x`).
        format!("{HEAD}files:\n{}x\n", "- ".repeat(n)),
    ];
    for doc in &docs {
        let start = Instant::now();
        let o = pack_manifest(&f, doc);
        assert_fails(&o, 2, &["airlock.yaml:", "nested more than 64 levels"]);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "refused in {:?}",
            start.elapsed()
        );
    }
    // Block mappings, each line indented one more (the file grows with the
    // square of the depth, so the size cap or the depth scan stops it).
    let mut doc = format!("{HEAD}extra:\n");
    for d in 1..2_000 {
        doc.push_str(&" ".repeat(d));
        doc.push_str("k:\n");
    }
    let o = pack_manifest(&f, &doc);
    assert_fails(&o, 2, &["airlock.yaml:", "nested more than 64 levels"]);
}

#[test]
fn trust_policies_nested_deep_are_refused_fast() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let n = 100_000;
    std::fs::write(
        f.path("policy.yaml"),
        format!(
            "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys: {}{}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
    )
    .unwrap();
    let start = Instant::now();
    let o = run_within(
        &[
            "verify",
            b.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
        ],
        Duration::from_secs(20),
    );
    assert_fails(&o, 2, &["policy.yaml:3:", "nested more than 64 levels"]);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn manifests_larger_than_the_cap_are_refused_unread() {
    let f = Fixture::new();
    let mut doc = format!("{HEAD}files:\n  - path: tool.sh\n");
    doc.push_str(&format!("# {}\n", "x".repeat(5 << 20)));
    let o = pack_manifest(&f, &doc);
    assert_fails(&o, 2, &["airlock.yaml", "larger than 4 MiB"]);
}

#[test]
fn ordinary_manifests_with_brackets_in_scalars_still_pack() {
    // The depth scan counts flow brackets only where a flow collection can
    // start: brackets inside plain, quoted and block scalars and comments
    // open nothing.
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!(
            "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: demo\n  version: 1.0.0\n  description: |\n    {open}\n    [[[[ {{{{\nfiles:  # {open}\n  - path: tool.sh\n  - path: \"docs\"\n",
            open = "[".repeat(200)
        ),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// 14.9: YAML errors at FILE:LINE:COLUMN, with hints
// ---------------------------------------------------------------------------

#[test]
fn yaml_errors_name_file_line_and_column_with_a_tab_hint() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n\tname: demo\n  version: 1.0.0\n",
    );
    assert_fails(&o, 2, &["airlock.yaml:4:1:", "line 4 contains a tab"]);
}

#[test]
fn yaml_errors_hint_at_indentation() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n   sha256: abc\n"),
    );
    assert_fails(
        &o,
        2,
        &["airlock.yaml:8:4:", "check the indentation of line 8"],
    );
    // A schema error is placed too.
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n    mode: x\n"),
    );
    assert_fails(&o, 2, &["airlock.yaml:8:5:", "unknown field `mode`"]);
}

// ---------------------------------------------------------------------------
// 11.5 and 14.9: the bundle path
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn a_fifo_as_the_bundle_path_is_refused_without_reading() {
    let f = Fixture::new();
    let fifo = f.path("bundle.tar");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let p = fifo.to_str().unwrap();
    let policy = f.s("policy.yaml");
    let key = f.s("keys/builder.key");
    let store = f.s("store");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["inspect", p],
        vec!["verify", p, "--trust", &policy],
        vec!["import", p, "--trust", &policy, "--store", &store],
        vec!["sign", p, "--key", &key],
        vec!["custody", "show", p],
    ];
    for args in cmds {
        let o = run_within(&args, Duration::from_secs(10));
        assert_fails(&o, 2, &[p, "is not a regular file or a directory (a FIFO"]);
    }
    // A FIFO named like a volume, given with a real volume.
    let vol = f.path("demo-1.0.0.vol001.tar");
    assert!(Command::new("mkfifo").arg(&vol).status().unwrap().success());
    let o = run_within(
        &["verify", vol.to_str().unwrap(), "--trust", &policy],
        Duration::from_secs(10),
    );
    assert_fails(&o, 2, &["is not a regular file or a directory"]);
}

#[test]
fn a_missing_bundle_path_reads_no_such_bundle() {
    let f = Fixture::new();
    let missing = f.s("nothere");
    for args in [
        vec!["inspect", missing.as_str()],
        vec!["verify", missing.as_str(), "--trust", &f.s("policy.yaml")],
        vec!["custody", "show", missing.as_str()],
    ] {
        let o = run(&args);
        assert_fails(&o, 2, &[&format!("no such bundle: {missing}")]);
        assert!(!stderr(&o).contains("metadata"), "{}", stderr(&o));
    }
}

// ---------------------------------------------------------------------------
// 11.8: Payload-Oxum checked on the high side
// ---------------------------------------------------------------------------

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Rewrites bag-info.txt with `edit`, fixes the tag manifest, drops the old
/// signatures and custody and re-signs with the builder key: a consistent,
/// signed bundle whose only fault is what `edit` did.
fn resign_with_bag_info(f: &Fixture, b: &Path, edit: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(b.join("bag-info.txt")).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text);
    std::fs::write(b.join("bag-info.txt"), &edited).unwrap();
    let tm: String = std::fs::read_to_string(b.join("tagmanifest-sha256.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with("  bag-info.txt") {
                format!("{}  bag-info.txt\n", sha256_hex(edited.as_bytes()))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(b.join("tagmanifest-sha256.txt"), tm).unwrap();
    for d in ["signatures", "custody"] {
        std::fs::remove_dir_all(b.join(d)).unwrap();
    }
    let o = run(&[
        "sign",
        b.to_str().unwrap(),
        "--key",
        &f.s("keys/builder.key"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn bagit_validates(b: &Path) -> bool {
    Command::new("python3")
        .args(["-m", "bagit", "--validate"])
        .arg(b)
        .output()
        .expect("python3 runs (bagit is installed by scripts/test)")
        .status
        .success()
}

fn oxum(b: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(b.join("bag-info.txt")).unwrap();
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("Payload-Oxum: "))
        .unwrap();
    let (a, c) = v.split_once('.').unwrap();
    (a.parse().unwrap(), c.parse().unwrap())
}

#[test]
fn a_wrong_payload_oxum_in_a_resigned_bundle_is_refused() {
    let f = Fixture::new();
    let good = f.pack("dir");
    assert!(bagit_validates(&good), "the packed bag is valid BagIt");
    assert_eq!(code(&f.verify(&good)), 0);
    let (octets, count) = oxum(&good);
    let cases: Vec<(&str, String)> = vec![
        ("octets", format!("{}.{count}", octets + 1)),
        ("count", format!("{octets}.{}", count - 1)),
        ("malformed", format!("{octets}")),
    ];
    for (what, wrong) in cases {
        let b = f.path(&format!("{what}/demo-1.0.0"));
        std::fs::create_dir_all(b.parent().unwrap()).unwrap();
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&good)
            .arg(&b)
            .status()
            .unwrap()
            .success());
        resign_with_bag_info(&f, &b, |t| {
            t.replace(
                &format!("Payload-Oxum: {octets}.{count}"),
                &format!("Payload-Oxum: {wrong}"),
            )
        });
        assert!(!bagit_validates(&b), "{what}: bagit.py refuses it too");
        let o = f.verify(&b);
        assert_fails(&o, 1, &["bag-info.txt", "Payload-Oxum"]);
        if what != "malformed" {
            assert!(
                stderr(&o).contains(&format!("lists {count} file(s) of {octets} bytes")),
                "{}",
                stderr(&o)
            );
        }
        let o = f.import(&b, "store");
        assert_fails(&o, 1, &["bag-info.txt", "Payload-Oxum"]);
    }
}

#[test]
fn the_payload_oxum_is_checked_in_a_tar() {
    let f = Fixture::new();
    let good = f.pack("dir");
    let (octets, count) = oxum(&good);
    resign_with_bag_info(&f, &good, |t| {
        t.replace(
            &format!("Payload-Oxum: {octets}.{count}"),
            &format!("Payload-Oxum: {}.{count}", octets * 2),
        )
    });
    // The re-signed directory as a tar, tag files first as pack writes them.
    let tar = f.path("resigned.tar");
    let st = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && tar -cf \"$2\" bagit.txt bag-info.txt airlock.json VERIFY.txt manifest-sha256.txt tagmanifest-sha256.txt signatures custody data")
        .arg("sh")
        .arg(&good)
        .arg(&tar)
        .status()
        .unwrap();
    assert!(st.success());
    let o = f.verify(&tar);
    assert_fails(&o, 1, &["bag-info.txt", "Payload-Oxum"]);
}
