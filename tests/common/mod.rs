//! Shared fixtures for the integration tests: a temporary workspace with
//! freshly generated keys, a small model directory and files, a manifest and a
//! trust policy, and helpers to run the real `airlock` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub const EPOCH: &str = "1700000000";

pub fn airlock() -> Command {
    let mut c = Command::cargo_bin("airlock").expect("binary built");
    c.env("SOURCE_DATE_EPOCH", EPOCH);
    c
}

/// Runs airlock with `args` and returns its output (any exit code).
pub fn run(args: &[&str]) -> Output {
    airlock().args(args).output().expect("airlock runs")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// stderr with airlock's wrapped lines joined again: a continuation line is
/// indented by exactly four spaces (findings are indented by two, the files a
/// blob holds by six), so assertions match a message whatever its width.
pub fn stderr(o: &Output) -> String {
    unwrap_lines(&String::from_utf8_lossy(&o.stderr))
}

pub fn unwrap_lines(text: &str) -> String {
    let mut out = String::new();
    for line in text.split('\n') {
        match line.strip_prefix("    ") {
            Some(rest) if !rest.starts_with(' ') && !out.is_empty() => {
                out.push(' ');
                out.push_str(rest);
            }
            _ => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(line);
            }
        }
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A workspace with a builder key, a second (untrusted) key, a model
    /// directory, a docs directory, a manifest and a trust policy.
    pub fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let root = f.root();
        for k in ["builder", "stranger"] {
            let o = run(&["keygen", root.join("keys").join(k).to_str().unwrap()]);
            assert!(o.status.success(), "keygen: {}", stderr(&o));
        }
        let model = root.join("src/models/minilm");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(
            model.join("config.json"),
            br#"{"architectures":["BertModel"],"torch_dtype":"float32"}"#,
        )
        .unwrap();
        std::fs::write(model.join("tokenizer.json"), br#"{"version":"1.0"}"#).unwrap();
        let weights: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(model.join("model.safetensors"), safetensors_wrap(&weights)).unwrap();
        std::fs::write(model.join("README.md"), b"# minilm\n").unwrap();
        let docs = root.join("src/docs");
        std::fs::create_dir_all(docs.join("sub")).unwrap();
        std::fs::write(docs.join("runbook.txt"), b"step one\nstep two\n").unwrap();
        std::fs::write(docs.join("sub/notes.txt"), b"notes\n").unwrap();
        std::fs::write(root.join("src/tool.sh"), b"#!/bin/sh\necho hi\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.join("src/tool.sh"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        f.write_manifest("");
        f.write_policy("builder", "[builder]", "require:\n  builder: 1\n");
        f
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_string()
    }

    /// Writes `src/airlock.yaml`; `extra` is appended verbatim.
    pub fn write_manifest(&self, extra: &str) {
        let text = format!(
            "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: demo\n  version: 1.0.0\n  description: test bundle\nfiles:\n  - path: docs\n  - path: tool.sh\nmodels:\n  - name: minilm\n    path: models/minilm\n{extra}"
        );
        std::fs::write(self.path("src/airlock.yaml"), text).unwrap();
    }

    /// Writes `policy.yaml` trusting key `key` with `roles`, plus `rest` verbatim.
    pub fn write_policy(&self, key: &str, roles: &str, rest: &str) {
        let text = format!(
            "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: {key}\n    publicKey: keys/{key}.pub\n    roles: {roles}\n{rest}"
        );
        std::fs::write(self.path("policy.yaml"), text).unwrap();
    }

    /// Packs the fixture's manifest with the builder key; returns the bundle path.
    pub fn pack(&self, format: &str) -> PathBuf {
        self.pack_to(format, "dist")
    }

    /// Runs `pack --json` of the fixture's manifest with the builder key into
    /// `out`, with `extra` arguments; returns the output whatever the exit code.
    pub fn pack_with(&self, format: &str, out: &str, extra: &[&str]) -> Output {
        let (manifest, key, out) = (
            self.s("src/airlock.yaml"),
            self.s("keys/builder.key"),
            self.s(out),
        );
        let mut args = vec![
            "pack", &manifest, "--key", &key, "--out", &out, "--format", format, "--json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    pub fn pack_to(&self, format: &str, out: &str) -> PathBuf {
        let o = self.pack_with(format, out, &[]);
        assert_eq!(code(&o), 0, "pack failed: {}", stderr(&o));
        PathBuf::from(json(&o)["path"].as_str().unwrap())
    }

    /// Adds 1.2 MB of incompressible weights to the model (so the bundle
    /// needs several 400 kB volumes), packs it in `format` as volumes into
    /// `vols/` and returns the volume files in order.
    pub fn pack_volumes(&self, format: &str) -> Vec<PathBuf> {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let big: Vec<u8> = (0..1_200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(
            self.path("src/models/minilm/model-00002.safetensors"),
            safetensors_wrap(&big),
        )
        .unwrap();
        let o = self.pack_with(format, "vols", &["--volume-size", "400000"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let paths = volume_paths(&o);
        assert!(paths.len() >= 2, "{paths:?}");
        paths
    }

    /// `verify` of several paths (volume files) against `policy.yaml`.
    pub fn verify_paths(&self, paths: &[PathBuf]) -> Output {
        let mut args = vec!["verify".to_string()];
        args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
        args.extend(["--trust".to_string(), self.s("policy.yaml")]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    }

    pub fn verify(&self, bundle: &Path) -> Output {
        run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--trust",
            &self.s("policy.yaml"),
        ])
    }

    pub fn import(&self, bundle: &Path, store: &str) -> Output {
        run(&[
            "import",
            bundle.to_str().unwrap(),
            "--trust",
            &self.s("policy.yaml"),
            "--store",
            &self.s(store),
        ])
    }
}

/// A valid safetensors file whose data area is exactly `data`: one tensor
/// `weight`, F32 when the length allows, else U8. pack validates
/// safetensors headers, so test weights must be real safetensors files.
pub fn safetensors_wrap(data: &[u8]) -> Vec<u8> {
    let (dtype, n) = if data.len().is_multiple_of(4) {
        ("F32", data.len() / 4)
    } else {
        ("U8", data.len())
    };
    let mut header = format!(
        r#"{{"weight":{{"dtype":"{dtype}","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        data.len()
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Every file below `dir` with its bytes (and mode), for byte-for-byte comparisons.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            e.metadata().unwrap().permissions().mode()
        };
        if e.file_type().is_file() {
            out.insert(rel, (std::fs::read(e.path()).unwrap(), mode));
        } else {
            out.insert(rel + "/", (vec![], 0));
        }
    }
    out
}

/// A tar entry as raw parts, for crafting hostile archives.
#[derive(Clone)]
pub struct RawEntry {
    pub path: String,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    pub link: Option<String>,
}

pub fn read_tar(path: &Path) -> Vec<RawEntry> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            RawEntry {
                path: String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                kind: e.header().entry_type(),
                data,
                link: e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            }
        })
        .collect()
}

/// Writes entries as a tar, bypassing the tar crate's path checks so that
/// hostile names (`../x`, `/etc/x`) are written exactly as given.
pub fn write_tar(path: &Path, entries: &[RawEntry]) {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let name = e.path.as_bytes();
            assert!(name.len() < 100, "test entry names stay short");
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        if let Some(l) = &e.link {
            h.set_link_name(l).unwrap();
        }
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    std::fs::write(path, out).unwrap();
}

/// Validates a ModelPack config blob against model-spec's published JSON
/// schema (tests/fixtures/modelpack/config-schema.json) with Python
/// `jsonschema`, formats checked; `Err` holds the validator's findings.
pub fn check_modelpack_config(config: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modelpack/config-schema.json");
    let script = r#"
import json, sys, datetime
import jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(sys.stdin)
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
errors = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(doc)]
# RFC 3339 date-time even where jsonschema's optional format packages are absent.
created = doc.get("descriptor", {}).get("createdAt")
if created is not None:
    try:
        datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except Exception as e:
        errors.append(f"descriptor/createdAt: {e}")
if errors:
    print("\n".join(errors))
    sys.exit(1)
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(config).unwrap();
    let o = child.wait_with_output().unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "not valid against model-spec's config schema:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// Validates `--json` outputs against the repository's JSON Schemas
/// (`schemas/NAME.schema.json`, draft 2020-12) with Python's `jsonschema`
/// (installed by scripts/test). Each item is (schema name, output).
#[track_caller]
pub fn assert_schemas(items: &[(&str, serde_json::Value)]) {
    const CHECK: &str = r#"
import json, pathlib, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
d = pathlib.Path(sys.argv[1])
schemas = {p.name[:-len(".schema.json")]: json.loads(p.read_text()) for p in d.glob("*.schema.json")}
for s in schemas.values():
    Draft202012Validator.check_schema(s)
reg = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in schemas.values()])
bad = 0
for name, inst in json.load(sys.stdin):
    if name not in schemas:
        print(f"{name}: no schemas/{name}.schema.json"); bad += 1; continue
    for e in sorted(Draft202012Validator(schemas[name], registry=reg).iter_errors(inst), key=str):
        print(f"{name}: at {list(e.absolute_path)}: {e.message}"); bad += 1
sys.exit(1 if bad else 0)
"#;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let input = serde_json::to_vec(
        &items
            .iter()
            .map(|(n, v)| serde_json::json!([n, v]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut child = std::process::Command::new("python3")
        .args(["-c", CHECK, dir.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs jsonschema)");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&input).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "--json output does not match the schemas:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs airlock with `args`, sampling its peak resident set (`VmHWM` in
/// `/proc/PID/status`, a high-water mark) until it exits. Returns the
/// output and the largest peak sampled, in bytes.
#[cfg(target_os = "linux")]
pub fn run_measured(args: &[&str]) -> (std::process::Output, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("airlock runs");
    // Drained on threads so a full pipe never blocks the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let o = std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (o, peak)
}

/// Edits a directory bundle's `airlock.json`, makes the tag manifest agree
/// and signs the result again with the fixture's builder key, as a
/// compromised build host could: the high side must catch the edit itself.
pub fn alter_description(f: &Fixture, bundle: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    use sha2::Digest as _;
    let mut d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap();
    edit(&mut d);
    let bytes = serde_json::to_vec_pretty(&d).unwrap();
    std::fs::write(bundle.join("airlock.json"), &bytes).unwrap();
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tm = std::fs::read_to_string(bundle.join("tagmanifest-sha256.txt")).unwrap();
    let tm: String = tm
        .lines()
        .map(|l| {
            if l.ends_with("  airlock.json") {
                format!("{hex}  airlock.json\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(bundle.join("tagmanifest-sha256.txt"), tm).unwrap();
    std::fs::remove_dir_all(bundle.join("signatures")).unwrap();
    std::fs::remove_dir_all(bundle.join("custody")).unwrap();
    let o = run(&[
        "sign",
        bundle.to_str().unwrap(),
        "--key",
        &f.s("keys/builder.key"),
    ]);
    assert!(o.status.success(), "sign: {}", stderr(&o));
}

/// The files a `pack --volume-size` printed (its JSON `paths`), sorted.
pub fn volume_paths(o: &Output) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = json(o)["paths"]
        .as_array()
        .expect("pack printed its paths")
        .iter()
        .map(|p| PathBuf::from(p.as_str().expect("a path string")))
        .collect();
    paths.sort();
    paths
}
