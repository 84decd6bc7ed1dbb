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
    // A FIFO as the trust policy or the manifest: refused, not read.
    let o = run_within(
        &["verify", &f.s("src"), "--trust", p],
        Duration::from_secs(10),
    );
    assert_fails(&o, 2, &[p, "not a regular file"]);
    let o = run_within(
        &["pack", p, "--key", &key, "--out", &f.s("dist")],
        Duration::from_secs(10),
    );
    assert_fails(&o, 2, &[p, "not a regular file"]);
    // A FIFO named like a volume.
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
    resign_with_tag_file(f, b, "bag-info.txt", edit)
}

/// Rewrites tag file `name` with `edit`, fixes the tag manifest, drops the
/// old signatures and custody and re-signs with the builder key.
fn resign_with_tag_file(f: &Fixture, b: &Path, name: &str, edit: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(b.join(name)).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text);
    std::fs::write(b.join(name), &edited).unwrap();
    let tm: String = std::fs::read_to_string(b.join("tagmanifest-sha256.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with(&format!("  {name}")) {
                format!("{}  {name}\n", sha256_hex(edited.as_bytes()))
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

// ---------------------------------------------------------------------------
// 11.1: pack reads only below the manifest's directory, or its root
// ---------------------------------------------------------------------------

/// A fixture with `outside/` beside `src/` (the manifest's directory) holding
/// a file, a model, SBOM, python and cargo inputs and an OCI layout: all
/// real, so that only their place is wrong.
fn outside_fixture() -> Fixture {
    let f = Fixture::new();
    let o = f.path("outside");
    for d in ["model", "wheels", "vendor", "layout/blobs/sha256"] {
        std::fs::create_dir_all(o.join(d)).unwrap();
    }
    std::fs::write(o.join("secret.txt"), b"not for the bundle\n").unwrap();
    std::fs::write(o.join("model/config.json"), b"{}").unwrap();
    std::fs::write(
        o.join("sbom.json"),
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
    )
    .unwrap();
    std::fs::write(o.join("requirements.txt"), b"").unwrap();
    std::fs::write(o.join("pylock.toml"), b"lock-version = \"1.0\"\n").unwrap();
    std::fs::write(o.join("Cargo.lock"), b"version = 4\n").unwrap();
    std::fs::write(
        o.join("layout/oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        o.join("layout/index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    std::fs::write(o.join("image.tar"), b"").unwrap();
    f
}

#[test]
fn every_input_field_is_refused_outside_the_manifests_directory() {
    let f = outside_fixture();
    let cases: &[(&str, &str)] = &[
        ("files[0].path", "files:\n  - path: ../outside/secret.txt\n"),
        ("files[0].path", "files:\n  - path: docs/../../outside\n"),
        (
            "models[0].path",
            "models:\n  - name: m\n    path: ../outside/model\n",
        ),
        ("sboms[0].path", "sboms:\n  - path: ../outside/sbom.json\n"),
        (
            "python[0].requirements",
            "python:\n  - requirements: ../outside/requirements.txt\n    wheelhouse: docs\n",
        ),
        (
            "python[0].wheelhouse",
            "python:\n  - requirements: tool.sh\n    wheelhouse: ../outside/wheels\n",
        ),
        (
            "python[0].lock",
            "python:\n  - lock: ../outside/pylock.toml\n",
        ),
        (
            "cargo[0].lockfile",
            "cargo:\n  - lockfile: ../outside/Cargo.lock\n    vendor: docs\n",
        ),
        (
            "cargo[0].vendor",
            "cargo:\n  - lockfile: tool.sh\n    vendor: ../outside/vendor\n",
        ),
        (
            "images[0].source",
            "images:\n  - source: oci-layout:../outside/layout\n    name: x.example/a:1\n",
        ),
        (
            "images[0].source",
            "images:\n  - source: docker-archive:../outside/image.tar\n    name: x.example/a:1\n",
        ),
    ];
    for (field, body) in cases {
        let o = pack_manifest(&f, &format!("{HEAD}{body}"));
        let outside = std::fs::canonicalize(f.path("outside")).unwrap();
        assert_fails(
            &o,
            2,
            &[
                "airlock.yaml",
                &format!("{field}: "),
                &outside.display().to_string(),
                "outside",
                "--root",
            ],
        );
        assert!(
            std::fs::read_dir(f.path("dist")).map_or(true, |mut d| d.next().is_none()),
            "nothing written for {field}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_symlinked_directory_cannot_lead_outside_either() {
    let f = outside_fixture();
    std::os::unix::fs::symlink(f.path("outside"), f.path("src/docs/escape")).unwrap();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: docs/escape/secret.txt\n"),
    );
    assert_fails(
        &o,
        2,
        &["files[0].path", "resolves to", "secret.txt", "outside"],
    );
    // An OCI layout whose blob folder is a link out of the root.
    let layout = f.path("src/layout");
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::copy(
        f.path("outside/layout/index.json"),
        layout.join("index.json"),
    )
    .unwrap();
    std::fs::copy(
        f.path("outside/layout/oci-layout"),
        layout.join("oci-layout"),
    )
    .unwrap();
    std::os::unix::fs::symlink(f.path("outside/layout/blobs"), layout.join("blobs")).unwrap();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}images:\n  - source: oci-layout:layout\n    name: x.example/a:1\n"),
    );
    assert_fails(&o, 2, &["images[0].source (blobs/sha256)", "outside"]);
    // A symbolic link inside a packed directory is refused as before.
    std::fs::remove_file(f.path("src/docs/escape")).unwrap();
    std::os::unix::fs::symlink(f.path("outside/secret.txt"), f.path("src/docs/link.txt")).unwrap();
    let o = pack_manifest(&f, &format!("{HEAD}files:\n  - path: docs\n"));
    assert_fails(&o, 2, &["link.txt", "symbolic link"]);
}

#[test]
fn a_root_in_the_manifest_or_on_the_command_line_widens_and_bounds() {
    let f = outside_fixture();
    // `root: ..` (relative to the manifest) lets it read ../outside.
    let body = "files:\n  - path: tool.sh\n  - path: ../outside/secret.txt\n";
    let o = pack_manifest(&f, &format!("{HEAD}root: ..\n{body}"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::remove_dir_all(f.path("dist")).unwrap();
    // --root on the command line does the same without touching the manifest.
    std::fs::write(f.path("src/airlock.yaml"), format!("{HEAD}{body}")).unwrap();
    let o = f.pack_with("dir", "dist", &["--root", &f.s(".")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::remove_dir_all(f.path("dist")).unwrap();
    // ... and bounds a manifest's own root: a manifest cannot widen past it.
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}root: ..\n{body}"),
    )
    .unwrap();
    let o = f.pack_with("dir", "dist", &["--root", &f.s("src")]);
    assert_fails(&o, 2, &["airlock.yaml", "root: ", "outside --root"]);
    // --root src with no manifest root: ../outside is outside it.
    std::fs::write(f.path("src/airlock.yaml"), format!("{HEAD}{body}")).unwrap();
    let o = f.pack_with("dir", "dist", &["--root", &f.s("src")]);
    assert_fails(&o, 2, &["files[1].path", "outside"]);
    // An absolute or missing root is refused, naming the field.
    let o = pack_manifest(&f, &format!("{HEAD}root: /\n{body}"));
    assert_fails(&o, 2, &["root: \"/\"", "relative to the manifest"]);
    let o = pack_manifest(&f, &format!("{HEAD}root: nothere\n{body}"));
    assert_fails(&o, 2, &["airlock.yaml", "root: "]);
}

#[test]
fn the_release_manifest_declares_its_root() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/airlock-release.yaml"),
    )
    .unwrap();
    assert!(text.lines().any(|l| l == "root: .."), "{text}");
}

#[test]
fn a_pylock_file_path_cannot_lead_outside() {
    let f = outside_fixture();
    let wheel = "tinypkg-0.1.0-py3-none-any.whl";
    std::fs::write(f.path(&format!("outside/{wheel}")), b"PK\x05\x06").unwrap();
    std::fs::write(
        f.path("src/pylock.toml"),
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"t\"\n\n[[packages]]\nname = \"tinypkg\"\nversion = \"0.1.0\"\nwheels = [{{ path = \"../outside/{wheel}\", hashes = {{ sha256 = \"{}\" }} }}]\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let o = pack_manifest(&f, &format!("{HEAD}python:\n  - lock: pylock.toml\n"));
    assert_fails(
        &o,
        2,
        &["python[0].lock", "packages[0] path ../outside/", "outside"],
    );
}

// ---------------------------------------------------------------------------
// 14.9: pack failures read as pack failures, each problem once
// ---------------------------------------------------------------------------

#[test]
fn an_unhashed_requirement_is_reported_once_under_a_pack_heading() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("src/wheels")).unwrap();
    std::fs::write(f.path("src/wheels/six-1.16.0-py2.py3-none-any.whl"), b"PK").unwrap();
    std::fs::write(f.path("src/requirements.txt"), b"six==1.16.0\n").unwrap();
    let manifest =
        format!("{HEAD}python:\n  - requirements: requirements.txt\n    wheelhouse: wheels\n");
    let o = pack_manifest(&f, &manifest);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.starts_with("airlock: cannot pack (1 problem):"),
        "{err}"
    );
    assert!(!err.contains("verification failed"), "{err}");
    assert_eq!(err.matches("six").count(), 2, "one finding: {err}");
    assert!(err.contains("has no --hash=sha256:"), "{err}");
    assert!(!err.contains("extra file"), "{err}");
    // A hash that does not match: still a pack failure, with the digest.
    std::fs::write(
        f.path("src/requirements.txt"),
        format!("six==1.16.0 --hash=sha256:{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let o = pack_manifest(&f, &manifest);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.starts_with("airlock: cannot pack (1 problem):"),
        "{err}"
    );
    assert!(err.contains("does not match"), "{err}");
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("dist"),
        "--json",
    ]);
    let j = json(&o);
    assert_eq!(j["error"]["exitCode"], 1);
    assert_eq!(
        j["error"]["findings"][0]["subject"],
        "python[0] six==1.16.0"
    );
}

// ---------------------------------------------------------------------------
// 14.10: model folder names keep their case on export
// ---------------------------------------------------------------------------

#[test]
fn a_mixed_case_model_name_is_the_export_folder() {
    let f = Fixture::new();
    f.write_manifest("");
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace("  - name: minilm\n", "  - name: all-MiniLM-L6-v2\n");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let b = f.pack("dir");
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("airlock.json")).unwrap()).unwrap();
    let model = desc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "model")
        .unwrap();
    assert_eq!(
        model["name"], "all-minilm-l6-v2",
        "the artifact name is normalized"
    );
    assert_eq!(model["reference"], "models/all-minilm-l6-v2");
    assert_eq!(desc["models"][0]["folder"], "all-MiniLM-L6-v2");
    assert_eq!(code(&f.verify(&b)), 0, "{}", stderr(&f.verify(&b)));
    let o = f.import(&b, "store");
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
    let folders: Vec<String> = std::fs::read_dir(f.path("out/models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(folders, ["all-MiniLM-L6-v2"]);
    assert_eq!(
        std::fs::read(f.path("out/models/all-MiniLM-L6-v2/config.json")).unwrap(),
        std::fs::read(f.path("src/models/minilm/config.json")).unwrap()
    );
    // Two names equal but for case are one model twice; a slash is no name.
    let base = std::fs::read_to_string(f.path("src/airlock.yaml")).unwrap();
    for (name, why) in [
        ("MiniLM", "appears twice"),
        ("a/b", "not a valid model name"),
    ] {
        let text = base.replace(
            "  - name: all-MiniLM-L6-v2\n",
            &format!("  - name: minilm\n    path: models/minilm\n  - name: {name}\n"),
        );
        std::fs::write(f.path("src/airlock.yaml"), &text).unwrap();
        let o = f.pack_with("dir", "dist2", &[]);
        assert_fails(&o, 2, &["models[1].name", why]);
    }
}

#[test]
fn a_model_folder_edited_into_a_resigned_description_is_refused() {
    let f = Fixture::new();
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace("  - name: minilm\n", "  - name: MiniLM\n");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let b = f.pack("dir");
    resign_with_tag_file(&f, &b, "airlock.json", |t| {
        t.replace("\"folder\": \"MiniLM\"", "\"folder\": \"../../outside\"")
    });
    let o = f.verify(&b);
    assert_fails(&o, 1, &["airlock.json", "folder \"../../outside\""]);
}
