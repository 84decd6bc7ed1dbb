//! What the command line prints: `--json` against the published schemas,
//! escaped untrusted text, quiet broken pipes, help, completions, man pages,
//! progress lines in logs, and `airlock init`.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs with `--json` appended; returns (exit code, stdout as JSON).
fn j(args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let o = run(&a);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON object ({e}):\n{}\nstderr: {}",
            stdout(&o),
            stderr(&o)
        )
    });
    (code(&o), v)
}

#[test]
fn every_command_json_matches_its_schema() {
    let f = Fixture::new();
    let mut outs: Vec<(&str, serde_json::Value)> = Vec::new();
    let ok = |name: &'static str, args: &[&str], outs: &mut Vec<_>| {
        let (c, v) = j(args);
        assert_eq!(c, 0, "{name}: {v}");
        assert_eq!(v["ok"], true, "{name}: {v}");
        assert_eq!(v["schemaVersion"], 1, "{name}: {v}");
        outs.push((name, v.clone()));
        v
    };
    let key = ok("keygen", &["keygen", &f.s("keys/high")], &mut outs);
    assert_eq!(key["keyId"].as_str().unwrap().len(), 32);
    // PRODUCT.md names the key id and the bundle id `id`.
    assert_eq!(key["id"], key["keyId"]);
    let packed = ok(
        "pack",
        &[
            "pack",
            &f.s("src/airlock.yaml"),
            "--key",
            &f.s("keys/builder.key"),
            "--out",
            &f.s("dist"),
            "--format",
            "tar",
        ],
        &mut outs,
    );
    let b = packed["path"].as_str().unwrap().to_string();
    let id = packed["bundleId"].as_str().unwrap().to_string();
    assert_eq!(packed["id"].as_str(), Some(id.as_str()));
    ok(
        "pack",
        &[
            "pack",
            &f.s("src/airlock.yaml"),
            "--key",
            &f.s("keys/builder.key"),
            "--out",
            &f.s("vols"),
            "--format",
            "tar",
            "--volume-size",
            "400000",
        ],
        &mut outs,
    );
    let i = ok("inspect", &["inspect", &b], &mut outs);
    assert_eq!(i["bundleId"], id.as_str());
    ok(
        "sign",
        &["sign", &b, "--key", &f.s("keys/stranger.key")],
        &mut outs,
    );
    ok(
        "custody-append",
        &[
            "custody",
            "append",
            &b,
            "--key",
            &f.s("keys/stranger.key"),
            "--event",
            "scanned",
            "--note",
            "clean",
        ],
        &mut outs,
    );
    ok("custody-show", &["custody", "show", &b], &mut outs);
    let v = ok(
        "verify",
        &["verify", &b, "--trust", &f.s("policy.yaml")],
        &mut outs,
    );
    assert_eq!(v["bundleId"], id.as_str());
    assert!(v["checked"]["blobs"].as_u64().unwrap() > 0);
    let receipt = f.path("receipt.json");
    let imp = ok(
        "import",
        &[
            "import",
            &b,
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            &f.s("store"),
            "--key",
            &f.s("keys/builder.key"),
            "--receipt",
            s(&receipt),
        ],
        &mut outs,
    );
    assert_eq!(imp["bundleId"], id.as_str());
    ok(
        "receipt-verify",
        &[
            "receipt",
            "verify",
            s(&receipt),
            "--trust",
            &f.s("policy.yaml"),
        ],
        &mut outs,
    );
    let e = ok(
        "export",
        &[
            "export",
            "demo",
            "--store",
            &f.s("store"),
            "--out",
            &f.s("out"),
        ],
        &mut outs,
    );
    assert_eq!(
        e["bundleId"],
        id.as_str(),
        "export names the bundle by its id"
    );
    ok(
        "store-ls",
        &["store", "ls", "--store", &f.s("store")],
        &mut outs,
    );
    ok(
        "store-log",
        &["store", "log", "--store", &f.s("store"), "--verify"],
        &mut outs,
    );
    ok(
        "sbom",
        &["sbom", &b, "--format", "spdx", "--out", &f.s("sbom.json")],
        &mut outs,
    );
    ok(
        "report",
        &[
            "report",
            &b,
            "--trust",
            &f.s("policy.yaml"),
            "--out",
            &f.s("report.html"),
        ],
        &mut outs,
    );
    ok("man", &["man", "--out", &f.s("man")], &mut outs);

    // Failures print the error object: verification (exit 1, findings),
    // I/O (exit 2), usage caught by the argument parser (exit 2).
    let tampered = f.pack("dir");
    std::fs::write(f.path("src/docs/runbook.txt"), b"changed\n").unwrap();
    let blob = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(b"step one\nstep two\n");
        format!("data/blobs/sha256/{}", hex(&d))
    };
    std::fs::write(tampered.join(&blob), b"tampered\n").unwrap();
    let (c, err) = j(&["verify", s(&tampered), "--trust", &f.s("policy.yaml")]);
    assert_eq!(c, 1);
    assert_eq!(err["ok"], false);
    assert_eq!(err["error"]["exitCode"], 1);
    let finding = err["error"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subject"] == blob.as_str())
        .unwrap_or_else(|| panic!("a finding about {blob}: {err}"))
        .clone();
    assert_eq!(
        finding["holds"][0], "files/docs: docs/runbook.txt",
        "the corrupt blob names the file it holds"
    );
    outs.push(("error", err));
    let (c, err) = j(&["inspect", &f.s("nothere")]);
    assert_eq!(c, 2);
    outs.push(("error", err));
    let (c, err) = j(&["verify", &b]);
    assert_eq!(c, 2, "missing --trust is a usage error");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--trust"));
    outs.push(("error", err));
    assert_schemas(&outs);
}

#[test]
fn a_failed_check_prints_one_json_object() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let o = run(&[
        "custody",
        "append",
        s(&b),
        "--key",
        &f.s("keys/stranger.key"),
        "--event",
        "scanned",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let first = std::fs::read_dir(b.join("custody"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("0001-"))
        .unwrap();
    std::fs::remove_file(first).unwrap();
    // custody show: its own object, ok false, exit 1.
    let (c, shown) = j(&["custody", "show", s(&b)]);
    assert_eq!(c, 1);
    assert_eq!(shown["ok"], false);
    // report: written, ok false, the findings, exit 1.
    let (c, rep) = j(&[
        "report",
        s(&b),
        "--trust",
        &f.s("policy.yaml"),
        "--out",
        &f.s("r.html"),
    ]);
    assert_eq!(c, 1);
    assert_eq!(rep["ok"], false);
    assert!(!rep["findings"].as_array().unwrap().is_empty(), "{rep}");
    assert!(f.path("r.html").is_file());
    assert_schemas(&[("custody-show", shown), ("report", rep)]);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn init_json_matches_its_schema_and_the_starter_manifest_packs() {
    let f = Fixture::new();
    let dir = f.path("project");
    std::fs::create_dir_all(dir.join("models/minilm")).unwrap();
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(
            f.path("src/models/minilm").join(name),
            dir.join("models/minilm").join(name),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/runbook.txt"), b"step one\n").unwrap();
    std::fs::write(dir.join("README.md"), b"# project\n").unwrap();
    std::fs::write(
        dir.join("requirements.txt"),
        b"six==1.16.0 --hash=sha256:00\n",
    )
    .unwrap();
    let o = airlock()
        .current_dir(&dir)
        .args(["init", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["models"][0], "models/minilm");
    assert_eq!(v["files"], serde_json::json!(["README.md", "docs"]));
    assert_schemas(&[("init", v)]);
    let manifest = std::fs::read_to_string(dir.join("airlock.yaml")).unwrap();
    assert!(manifest.contains("# "), "commented");
    assert!(
        manifest.contains("pip download --require-hashes -r requirements.txt -d wheelhouse"),
        "says how to fill the wheelhouse it lacks:\n{manifest}"
    );
    // The starter files work as written: pack, then verify with the starter policy.
    let o = run(&["keygen", s(&dir.join("keys/build-ci"))]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "pack",
        s(&dir.join("airlock.yaml")),
        "--key",
        s(&dir.join("keys/build-ci.key")),
        "--out",
        s(&dir.join("dist")),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "the starter manifest packs: {}", stderr(&o));
    let b = json(&o)["path"].as_str().unwrap().to_string();
    let o = run(&["verify", &b, "--trust", s(&dir.join("trust-policy.yaml"))]);
    assert_eq!(
        code(&o),
        0,
        "the starter policy verifies it: {}",
        stderr(&o)
    );
    let i = json(&run(&["inspect", &b, "--json"]));
    let kinds: Vec<&str> = i["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"model") && kinds.contains(&"files"),
        "{kinds:?}"
    );
    // A second init does not overwrite the reviewed files.
    let o = airlock().current_dir(&dir).arg("init").output().unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn untrusted_text_is_escaped() {
    let f = Fixture::new();
    let evil = "evil\nOK demo 9.9.9\u{1b}[2J.txt";
    std::fs::write(f.path("src/docs").join(evil), b"x\n").unwrap();
    let b = f.pack("tar");
    let note = "clean\nOK fake line\u{1b}[31m\u{9b}red";
    let o = run(&[
        "custody",
        "append",
        s(&b),
        "--key",
        &f.s("keys/stranger.key"),
        "--event",
        "scanned",
        "--note",
        note,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let check = |args: &[&str], expect: &str| {
        let o = run(args);
        let out = stdout(&o);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{9b}'),
            "{args:?} printed a raw escape character:\n{out:?}"
        );
        assert!(
            !out.lines()
                .any(|l| l.starts_with("OK demo 9.9.9") || l.starts_with("OK fake")),
            "{args:?}: a name or note forged an output line:\n{out}"
        );
        assert!(out.contains(expect), "{args:?} shows {expect:?}:\n{out}");
    };
    check(&["inspect", s(&b)], "evil\\nOK demo 9.9.9\\u{1b}[2J.txt");
    check(
        &["custody", "show", s(&b)],
        "clean\\nOK fake line\\u{1b}[31m\\u{9b}red",
    );
    check(
        &["verify", s(&b), "--trust", &f.s("policy.yaml")],
        "\\u{1b}[31m",
    );
    // JSON carries the text exactly (escaped by JSON itself).
    let v = json(&run(&["custody", "show", s(&b), "--json"]));
    assert_eq!(v["events"][1]["note"], note);
    assert!(!stdout(&run(&["custody", "show", s(&b), "--json"])).contains('\u{1b}'));
}

/// Many small files, so `inspect` prints far more than a pipe holds.
fn big_bundle(f: &Fixture) -> std::path::PathBuf {
    let d = f.path("src/docs/many");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..1200 {
        std::fs::write(
            d.join(format!("file-{i:05}-with-a-longish-name.txt")),
            format!("{i}\n"),
        )
        .unwrap();
    }
    f.pack("tar")
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let f = Fixture::new();
    let b = big_bundle(&f);
    let b = s(&b);
    let policy = f.s("policy.yaml");
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", b],
        vec!["inspect", b, "--json"],
        vec!["verify", b, "--trust", &policy],
        vec!["custody", "show", b],
        vec!["sbom", b, "--format", "cyclonedx"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["--help"],
    ];
    for args in cases {
        // The reader is gone before airlock writes anything.
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("airlock"))
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 0, "{args:?}: exit {:?}, stderr:\n{err}", o.status);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
    // The shell form from the issue.
    let o = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} inspect {b} | head -3",
                assert_cmd::cargo::cargo_bin("airlock").display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn help_has_examples_and_consistent_names() {
    for cmd in [
        vec!["keygen"],
        vec!["init"],
        vec!["pack"],
        vec!["inspect"],
        vec!["verify"],
        vec!["import"],
        vec!["sign"],
        vec!["custody", "append"],
        vec!["custody", "show"],
        vec!["receipt", "verify"],
        vec!["export"],
        vec!["push"],
        vec!["store", "ls"],
        vec!["store", "log"],
        vec!["store", "receipt"],
        vec!["sbom"],
        vec!["report"],
        vec!["completions"],
        vec!["man"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let o = run(&args);
        assert_eq!(code(&o), 0, "{cmd:?}");
        let text = stdout(&o);
        assert!(
            text.contains("Examples:\n  airlock "),
            "{cmd:?} --help:\n{text}"
        );
        assert!(
            !text.contains("--to ") && !text.contains("--output ") && !text.contains("--bundle "),
            "old spellings stay hidden: {cmd:?}\n{text}"
        );
        for l in text.lines() {
            assert!(l.chars().count() <= 100, "{cmd:?}: long help line {l:?}");
        }
    }
    let text = stdout(&run(&["export", "--help"]));
    assert!(
        text.contains("--out <DIR>") && text.contains("[env: AIRLOCK_STORE"),
        "{text}"
    );
    assert!(
        text.contains("Arguments:\n  [BUNDLE]"),
        "the bundle is positional: {text}"
    );
}

#[test]
fn store_comes_from_the_environment_and_old_spellings_still_work() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let o = airlock()
        .env("AIRLOCK_STORE", f.path("store"))
        .args(["import", s(&b), "--trust", &f.s("policy.yaml")])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = airlock()
        .env("AIRLOCK_STORE", f.path("store"))
        .args(["store", "ls", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&o)["bundles"][0]["name"], "demo");
    // New spelling, positional bundle.
    let o = airlock()
        .env("AIRLOCK_STORE", f.path("store"))
        .args(["export", "demo@1.0.0", "--out", &f.s("new")])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Old spellings: --bundle, --to, sbom --output.
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--to",
        &f.s("old"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(snapshot(&f.path("new")), snapshot(&f.path("old")));
    let o = run(&[
        "sbom",
        s(&b),
        "--format",
        "spdx",
        "--output",
        &f.s("x.json"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(f.path("x.json").is_file());
    // Both spellings at once is a usage error.
    let o = run(&[
        "export",
        "demo",
        "--bundle",
        "demo",
        "--store",
        &f.s("store"),
        "--out",
        &f.s("x"),
    ]);
    assert_eq!(code(&o), 2);
}

#[test]
fn completions_and_man_page() {
    let bin = assert_cmd::cargo::cargo_bin("airlock");
    // bash: load the script and complete `airlock ver`.
    let o = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "source <({} completions bash) && COMP_WORDS=(airlock ver) COMP_CWORD=1 && \
                 _airlock airlock ver airlock && echo \"${{COMPREPLY[@]}}\"",
                bin.display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "verify");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", shell]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("custody"), "{shell}");
    }
    let o = run(&["completions", "tcsh"]);
    assert_eq!(code(&o), 2, "unknown shells are refused");

    let o = run(&["man"]);
    assert_eq!(code(&o), 0);
    let page = stdout(&o);
    assert!(page.contains(".TH airlock 1"), "{page}");
    // man renders it, and it lists the commands.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("airlock.1"), &page).unwrap();
    let o = std::process::Command::new("man")
        .args(["-l", s(&dir.path().join("airlock.1"))])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man runs (scripts/test installs man-db)");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    for c in ["verify", "import", "custody", "report", "AIRLOCK_STORE"] {
        assert!(text.contains(c), "man page mentions {c}:\n{text}");
    }
    let o = run(&["man", "--out", s(&dir.path().join("pages"))]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for p in [
        "airlock.1",
        "airlock-verify.1",
        "airlock-store-ls.1",
        "airlock-custody-append.1",
    ] {
        let t = std::fs::read_to_string(dir.path().join("pages").join(p)).unwrap();
        assert!(t.contains(".TH"), "{p}");
    }
}

#[test]
fn logs_progress_lines_when_stderr_is_not_a_terminal() {
    let f = Fixture::new();
    let o = airlock()
        .env("AIRLOCK_PROGRESS_INTERVAL", "0")
        .args([
            "pack",
            &f.s("src/airlock.yaml"),
            "--key",
            &f.s("keys/builder.key"),
            "--out",
            &f.s("dist"),
            "--format",
            "tar",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    // A plain tar is written straight from the inputs, in one pass.
    assert!(err.contains("airlock: packing "), "{err}");
    assert!(!err.contains("1/2"), "{err}");
    assert!(err.contains("% "), "{err}");
    // The default interval (5 s) prints nothing for a quick job.
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("dist2"),
    ]);
    assert_eq!(code(&o), 0);
    assert!(!stderr(&o).contains("packing"), "{}", stderr(&o));
}

#[test]
fn human_output_is_readable() {
    let f = Fixture::new();
    let b = f.pack("tar");
    let o = run(&["inspect", s(&b)]);
    let text = stdout(&o);
    assert!(text.contains(" KiB"), "human sizes: {text}");
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = stdout(&o);
    for line in text.lines().chain(v.lines()) {
        assert!(
            line.chars().count() <= 100,
            "line over 100 columns: {line:?}"
        );
    }
    // verify says what it checked, and names signers by the policy.
    assert!(v.contains("hashed against the signed manifests"), "{v}");
    assert!(v.contains("model file(s) scanned"), "{v}");
    assert!(v.contains("custody event(s), chain intact"), "{v}");
    assert!(v.contains("builder (key "), "{v}");
    // A corrupt blob is named with the file it holds.
    let dir = f.pack("dir");
    let w = std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap();
    let blob = {
        use sha2::Digest as _;
        format!("data/blobs/sha256/{}", hex(&sha2::Sha256::digest(&w)))
    };
    let mut bytes = std::fs::read(dir.join(&blob)).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(dir.join(&blob), bytes).unwrap();
    let o = f.verify(&dir);
    assert_eq!(code(&o), 1);
    // Errors are wrapped at 100 columns, however long the finding (a blob
    // path and two digests run to about 270).
    let raw = String::from_utf8_lossy(&o.stderr).into_owned();
    for line in raw.lines() {
        assert!(
            line.chars().count() <= 100,
            "stderr line over 100 columns: {line:?}"
        );
    }
    let err = stderr(&o);
    let at = err
        .find(&format!("  {blob}: "))
        .expect("finding about the blob");
    assert!(
        err[at..].lines().nth(1).unwrap().trim() == "holds models/minilm: model.safetensors",
        "{err}"
    );
    // A file that is not there is named as such, not as raw OS text.
    let manifest = f.s("src/airlock.yaml");
    for (args, says) in [
        (
            vec!["pack", "no-such.yaml", "--key", "k", "--out", "o"],
            "no-such.yaml: no such manifest or trust policy file",
        ),
        (
            vec!["pack", &manifest, "--key", "no-such.key", "--out", "o"],
            "no-such.key: no such private key file",
        ),
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
}
