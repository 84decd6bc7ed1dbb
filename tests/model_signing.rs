//! OpenSSF model-signing signatures (`model.sig`), made with the real tool
//! (PyPI `model-signing` 1.1.x, `model_signing sign key`, an EC P-256 key
//! from openssl): pack verifies them against the key the manifest names and
//! records the result in airlock.json and both SBOMs; verify and import check
//! them again from the bundle's bytes; each attack is refused, naming the
//! model and the file. scripts/test installs model-signing and openssl.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed; run the tests through scripts/test, which installs it"
    );
    Command::new(name)
}

fn ok(c: &mut Command) -> Vec<u8> {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// An EC P-256 key pair made by openssl: `NAME.key` (PKCS#8 PEM) and
/// `NAME.pub` (SubjectPublicKeyInfo PEM), in `dir`.
fn ec_key(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(format!("{name}.key"));
    ok(tool("openssl").args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap(),
    ]));
    ok(tool("openssl").args([
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        dir.join(format!("{name}.pub")).to_str().unwrap(),
    ]));
}

/// Signs `model` with `model_signing sign key` and the private key `key`,
/// writing `model/model.sig`.
fn model_sign(model: &Path, key: &Path) {
    ok(tool("model_signing").args([
        "sign",
        "key",
        "--private_key",
        key.to_str().unwrap(),
        "--signature",
        model.join("model.sig").to_str().unwrap(),
        model.to_str().unwrap(),
    ]));
}

/// `model_signing verify key` of `model` with the public key `public`.
fn model_verify(model: &Path, public: &Path) -> std::process::Output {
    tool("model_signing")
        .args([
            "verify",
            "key",
            "--public_key",
            public.to_str().unwrap(),
            "--signature",
            model.join("model.sig").to_str().unwrap(),
            model.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

const MODEL: &str = "src/models/minilm";
const SIGNED: &str = "    signature:\n      publicKey: keys/model-signer.pub\n";

/// The fixture with an EC key pair in `src/keys/` (model-signer) and its
/// model signed with it by the real tool; the manifest names the key.
fn signed_fixture() -> Fixture {
    let f = Fixture::new();
    ec_key(&f.path("src/keys"), "model-signer");
    // HF directories carry a .gitattributes; model_signing leaves it out.
    std::fs::write(f.path(MODEL).join(".gitattributes"), "*.safetensors lfs\n").unwrap();
    model_sign(&f.path(MODEL), &f.path("src/keys/model-signer.key"));
    f.write_manifest(SIGNED);
    f
}

fn description(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

/// Packs, expecting a refusal (exit 1); returns stderr.
fn pack_refused(f: &Fixture) -> String {
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 1, "pack should refuse: {}", stdout(&o));
    assert!(!f.path("dist/demo-1.0.0").exists());
    stderr(&o)
}

/// The model's signed in-toto statement, and a function writing model.sig
/// back with a new statement (the signature left as it is).
fn statement(model: &Path) -> serde_json::Value {
    let sig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("model.sig")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(sig["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn replace_statement(model: &Path, st: &serde_json::Value) {
    let p = model.join("model.sig");
    let mut sig: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    sig["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec_pretty(st).unwrap())
        .into();
    std::fs::write(&p, serde_json::to_vec_pretty(&sig).unwrap()).unwrap();
}

#[test]
fn signed_model_is_verified_at_pack_recorded_and_verified_again_on_import() {
    let f = signed_fixture();
    let public = std::fs::read_to_string(f.path("src/keys/model-signer.pub")).unwrap();
    let der = ok(tool("openssl").args([
        "pkey",
        "-pubin",
        "-in",
        f.path("src/keys/model-signer.pub").to_str().unwrap(),
        "-outform",
        "DER",
    ]));
    let b = f.pack("dir");

    // airlock.json records the result and the key itself.
    let d = description(&b);
    let s = &d["models"][0]["signature"];
    assert_eq!(s["status"], "verified", "{s}");
    assert_eq!(s["path"], "model.sig");
    assert_eq!(s["publicKey"], public.as_str());
    assert_eq!(s["keyFingerprint"], format!("sha256:{}", sha256_hex(&der)));
    assert_eq!(s["algorithm"], "ecdsa-p256-sha256");
    assert_eq!(s["predicateType"], "https://model_signing/signature/v1.0");
    // config.json, tokenizer.json, model.safetensors, README.md.
    assert_eq!(s["files"], 4);
    assert_eq!(s["unsigned"], serde_json::json!([".gitattributes"]));
    // model.sig itself still travels as a doc layer of the model.
    let model = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reference"] == "models/minilm")
        .unwrap();
    assert!(model["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["path"] == "model.sig"
            && l["mediaType"] == "application/vnd.cncf.model.doc.v1.raw"));

    // inspect --json follows its schema (models[].signature included).
    let o = run(&["inspect", b.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["models"][0]["signature"]["status"], "verified");
    assert_schemas(&[("inspect", json(&o))]);
    let text = stdout(&run(&["inspect", b.to_str().unwrap()]));
    assert!(
        text.contains("model.sig (OpenSSF model-signing) verified with key sha256:"),
        "{text}"
    );

    // The SBOMs record it on the model component.
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "cyclonedx"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cdx = json(&o);
    let comp = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "machine-learning-model")
        .unwrap();
    let props: Vec<(String, String)> = comp["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |k: &str, v: &str| props.iter().any(|(a, b)| a == k && b == v);
    assert!(has("airlock:model:signature", "verified"), "{props:?}");
    assert!(has(
        "airlock:model:signature:keyFingerprint",
        &format!("sha256:{}", sha256_hex(&der))
    ));
    assert!(has("airlock:model:signature:files", "4"));
    assert!(has("airlock:model:signature:unsigned", ".gitattributes"));
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "spdx"]);
    let spdx = json(&o);
    // Both stay valid for the real validators.
    std::fs::write(f.path("sbom.cdx.json"), cdx.to_string()).unwrap();
    std::fs::write(f.path("sbom.spdx.json"), spdx.to_string()).unwrap();
    ok(tool("python3").args([
        "-c",
        "import sys\nfrom cyclonedx.schema import SchemaVersion\nfrom cyclonedx.validation.json import JsonStrictValidator\ne = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\nsys.exit(str(e) if e else 0)",
        &f.s("sbom.cdx.json"),
    ]));
    ok(tool("pyspdxtools").args(["-i", &f.s("sbom.spdx.json")]));
    let pkg = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "minilm")
        .unwrap();
    let comment = pkg["comment"].as_str().unwrap();
    assert!(
        comment.contains("airlock:model:signature=verified")
            && comment.contains(
                "airlock:model:signature:predicateType=https://model_signing/signature/v1.0"
            ),
        "{comment}"
    );

    // The high side checks it again, in every form.
    let o = run(&[
        "verify",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["checked"]["modelSignatures"], 1);
    assert_schemas(&[("verify", json(&o))]);
    let tar = f.pack_to("tar.zst", "dist-tar");
    let o = f.verify(&tar);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 model signature(s) (OpenSSF model-signing) verified again"),
        "{}",
        stdout(&o)
    );
    let o = f.import(&tar, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // What export writes still verifies with the real tool.
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
    let o = model_verify(
        &f.path("out/models/minilm"),
        &f.path("src/keys/model-signer.pub"),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Volumes: the set checks it again; model.sig is read from its volume.
    // 1.2 MB more weights (signed too) make several 400 kB volumes.
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
        f.path(MODEL).join("model-00002.safetensors"),
        safetensors_wrap(&big),
    )
    .unwrap();
    model_sign(&f.path(MODEL), &f.path("src/keys/model-signer.key"));
    let o = f.pack_with("tar", "vols", &["--volume-size", "400000"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let vols: Vec<std::path::PathBuf> = json(&o)["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().into())
        .collect();
    assert!(vols.len() >= 2, "{vols:?}");
    let o = f.verify_paths(&vols);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 model signature(s) (OpenSSF model-signing) verified again"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn model_sig_without_a_key_is_carried_and_recorded_unverified() {
    let f = signed_fixture();
    f.write_manifest("");
    let b = f.pack("dir");
    let s = &description(&b)["models"][0]["signature"];
    assert_eq!(
        *s,
        serde_json::json!({"path": "model.sig", "status": "unverified"})
    );
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "cyclonedx"]);
    assert!(stdout(&o).contains("\"unverified\""), "{}", stdout(&o));
    let o = run(&[
        "verify",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["checked"]["modelSignatures"], 0);
    let text = stdout(&run(&["inspect", b.to_str().unwrap()]));
    assert!(text.contains("carried, NOT verified"), "{text}");
}

#[test]
fn a_model_file_changed_after_signing_is_refused() {
    let f = signed_fixture();
    std::fs::write(
        f.path(MODEL).join("config.json"),
        br#"{"architectures":["EvilModel"]}"#,
    )
    .unwrap();
    let err = pack_refused(&f);
    assert!(
        err.contains("minilm/config.json: model minilm: sha256 ")
            && err.contains("the file changed after signing"),
        "{err}"
    );
}

#[test]
fn a_tampered_model_sig_is_refused() {
    // The attacker changes a file and rewrites the signed statement to match.
    let f = signed_fixture();
    let model = f.path(MODEL);
    let evil = br#"{"architectures":["EvilModel"]}"#;
    std::fs::write(model.join("config.json"), evil).unwrap();
    let mut st = statement(&model);
    for r in st["predicate"]["resources"].as_array_mut().unwrap() {
        if r["name"] == "config.json" {
            r["digest"] = sha256_hex(evil).into();
        }
    }
    replace_statement(&model, &st);
    // The real tool refuses it too.
    assert!(!model_verify(&model, &f.path("src/keys/model-signer.pub"))
        .status
        .success());
    let err = pack_refused(&f);
    assert!(
        err.contains(
            "minilm/model.sig: model minilm: the signature does not verify with key sha256:"
        ),
        "{err}"
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let f = signed_fixture();
    ec_key(&f.path("src/keys"), "other");
    f.write_manifest("    signature:\n      publicKey: keys/other.pub\n");
    let err = pack_refused(&f);
    assert!(
        err.contains("minilm/model.sig: model minilm: signed by another key"),
        "{err}"
    );
    // Without the key hint, the signature itself fails against that key.
    let p = f.path(MODEL).join("model.sig");
    let mut sig: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    sig["verificationMaterial"]["publicKey"]["hint"] = "".into();
    std::fs::write(&p, serde_json::to_vec(&sig).unwrap()).unwrap();
    let err = pack_refused(&f);
    assert!(err.contains("the signature does not verify"), "{err}");
}

#[test]
fn a_file_the_statement_does_not_list_is_refused() {
    // Added after signing: not covered.
    let f = signed_fixture();
    std::fs::write(f.path(MODEL).join("modeling_evil.py"), b"import os\n").unwrap();
    let err = pack_refused(&f);
    assert!(
        err.contains("minilm/modeling_evil.py: model minilm: not covered by model.sig"),
        "{err}"
    );

    // Left out of the statement (re-signed by the signer without it): a
    // file the signature does not cover is refused, whoever left it out.
    let f = signed_fixture();
    let model = f.path(MODEL);
    let mut st = statement(&model);
    st["predicate"]["resources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["name"] != "tokenizer.json");
    replace_statement(&model, &st);
    let err = pack_refused(&f);
    // The statement was changed, so the signature fails first.
    assert!(err.contains("the signature does not verify"), "{err}");

    // Signed with tokenizer.json ignored, then tokenizer.json carried: it
    // is recorded as not covered (the signer said so), not passed silently.
    let f = signed_fixture();
    let model = f.path(MODEL);
    ok(tool("model_signing").args([
        "sign",
        "key",
        "--private_key",
        f.s("src/keys/model-signer.key").as_str(),
        "--signature",
        model.join("model.sig").to_str().unwrap(),
        "--ignore-paths",
        model.join("tokenizer.json").to_str().unwrap(),
        model.to_str().unwrap(),
    ]));
    let b = f.pack("dir");
    let s = &description(&b)["models"][0]["signature"];
    assert_eq!(s["files"], 3, "{s}");
    assert_eq!(
        s["unsigned"],
        serde_json::json!([".gitattributes", "tokenizer.json"])
    );
}

#[test]
fn a_signed_file_missing_from_the_model_is_refused() {
    let f = signed_fixture();
    std::fs::remove_file(f.path(MODEL).join("tokenizer.json")).unwrap();
    let err = pack_refused(&f);
    assert!(
        err.contains("minilm/tokenizer.json: model minilm: signed by model.sig, but the model has no such file"),
        "{err}"
    );
}

#[test]
fn a_named_key_without_model_sig_or_with_a_certificate_is_refused() {
    let f = Fixture::new();
    ec_key(&f.path("src/keys"), "model-signer");
    f.write_manifest(SIGNED);
    let err = pack_refused(&f);
    assert!(
        err.contains(
            "minilm/model.sig: model minilm: the model names a signature key, but has no model.sig"
        ),
        "{err}"
    );

    // A certificate is not verified: refused as such, never passed.
    f.write_manifest("    signature:\n      certificate: keys/model-signer.pub\n");
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(
        stderr(&o).contains("models[0].signature.certificate: keys/model-signer.pub: airlock does not verify certificate-based model signatures"),
        "{}",
        stderr(&o)
    );
    // Nor a key that is not EC P-256, or a private key.
    f.write_manifest("    signature:\n      publicKey: keys/model-signer.key\n");
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is a private key"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("BEGIN"), "{}", stderr(&o));
    std::fs::copy(f.path("keys/builder.pub"), f.path("src/keys/ed.pub")).unwrap();
    f.write_manifest("    signature:\n      publicKey: keys/ed.pub\n");
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o)
            .contains("models[0].signature.publicKey: keys/ed.pub is not an EC P-256 public key"),
        "{}",
        stderr(&o)
    );
    // A signature covers a directory, not a single-file model.
    f.write_manifest(
        "  - name: single\n    path: models/minilm/config.json\n    signature:\n      publicKey: keys/model-signer.pub\n",
    );
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("models[1].signature: a model signature (model.sig) covers a model directory, but models[1].path is a single file"),
        "{}",
        stderr(&o)
    );
    // Unknown fields stay errors.
    f.write_manifest("    signature:\n      key: keys/model-signer.pub\n");
    let o = f.pack_with("dir", "dist", &[]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("unknown field `key`"), "{}", stderr(&o));
}

// ------------------------------------------------------------ the high side

/// Rewrites a directory bundle as a builder holding its signing key could
/// (a compromised build host): `edit` changes `airlock.json` and the blobs
/// (given the description and the blob directory); the payload manifest,
/// Payload-Oxum and the tag manifest are made to match, and the bundle is
/// signed again. The high side must still find what is wrong.
fn forge(f: &Fixture, bundle: &Path, edit: impl FnOnce(&mut serde_json::Value, &Path)) {
    let mut d = description(bundle);
    edit(&mut d, &bundle.join("data/blobs/sha256"));
    std::fs::write(
        bundle.join("airlock.json"),
        serde_json::to_vec_pretty(&d).unwrap(),
    )
    .unwrap();
    let mut payload = Vec::new();
    let mut octets = 0u64;
    for e in walkdir(&bundle.join("data")) {
        let bytes = std::fs::read(&e).unwrap();
        octets += bytes.len() as u64;
        let rel = e
            .strip_prefix(bundle)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        payload.push((rel, sha256_hex(&bytes)));
    }
    payload.sort();
    let manifest: String = payload.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    std::fs::write(bundle.join("manifest-sha256.txt"), manifest).unwrap();
    let info = std::fs::read_to_string(bundle.join("bag-info.txt")).unwrap();
    let info: String = info
        .lines()
        .map(|l| {
            if l.starts_with("Payload-Oxum:") {
                format!("Payload-Oxum: {octets}.{}\n", payload.len())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(bundle.join("bag-info.txt"), info).unwrap();
    let mut tags: Vec<(String, String)> = [
        "airlock.json",
        "bag-info.txt",
        "bagit.txt",
        "manifest-sha256.txt",
        "VERIFY.txt",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            sha256_hex(&std::fs::read(bundle.join(n)).unwrap()),
        )
    })
    .collect();
    tags.sort();
    let tm: String = tags.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    std::fs::write(bundle.join("tagmanifest-sha256.txt"), tm).unwrap();
    std::fs::remove_dir_all(bundle.join("signatures")).unwrap();
    std::fs::remove_dir_all(bundle.join("custody")).unwrap();
    std::fs::create_dir(bundle.join("signatures")).unwrap();
    let o = run(&[
        "sign",
        bundle.to_str().unwrap(),
        "--key",
        &f.s("keys/builder.key"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Replaces the model's layer `path` by `bytes` everywhere the bundle
/// declares it: the blob, the OCI manifest, index.json and airlock.json.
fn swap_layer(d: &mut serde_json::Value, blobs: &Path, path: &str, bytes: &[u8]) {
    let new = sha256_hex(bytes);
    std::fs::write(blobs.join(&new), bytes).unwrap();
    let a = d["artifacts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["reference"] == "models/minilm")
        .unwrap();
    let old_manifest = a["manifest"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let layer = a["layers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["path"] == path)
        .unwrap();
    let old = layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::remove_file(blobs.join(&old)).unwrap();
    layer["digest"] = format!("sha256:{new}").into();
    layer["size"] = bytes.len().into();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(&old_manifest)).unwrap()).unwrap();
    for l in m["layers"].as_array_mut().unwrap() {
        if l["digest"] == format!("sha256:{old}") {
            l["digest"] = format!("sha256:{new}").into();
            l["size"] = bytes.len().into();
        }
    }
    let mb = serde_json::to_vec(&m).unwrap();
    let new_manifest = sha256_hex(&mb);
    std::fs::remove_file(blobs.join(&old_manifest)).unwrap();
    std::fs::write(blobs.join(&new_manifest), &mb).unwrap();
    a["manifest"]["digest"] = format!("sha256:{new_manifest}").into();
    a["manifest"]["size"] = mb.len().into();
    let index_path = blobs.join("../../index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for e in index["manifests"].as_array_mut().unwrap() {
        if e["digest"] == format!("sha256:{old_manifest}") {
            e["digest"] = format!("sha256:{new_manifest}").into();
            e["size"] = mb.len().into();
        }
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn the_high_side_checks_the_signature_again_and_refuses_a_forged_bundle() {
    let f = signed_fixture();
    ec_key(&f.path("src/keys"), "other");
    let policy = f.s("policy.yaml");
    let refused = |b: &Path, needle: &str| {
        let o = run(&["verify", b.to_str().unwrap(), "--trust", &policy]);
        assert_eq!(code(&o), 1, "{}", stdout(&o));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
        // import refuses the same and leaves the store untouched.
        let o = f.import(b, "store");
        assert_eq!(code(&o), 1, "{}", stdout(&o));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    };

    // Another key recorded as the one that verified it.
    let b = f.pack_to("dir", "d1");
    let other = std::fs::read_to_string(f.path("src/keys/other.pub")).unwrap();
    forge(&f, &b, |d, _| {
        d["models"][0]["signature"]["publicKey"] = other.clone().into();
    });
    refused(
        &b,
        "models/minilm/model.sig: model minilm: signed by another key",
    );

    // A weight swapped after the build host checked the signature.
    let b = f.pack_to("dir", "d2");
    forge(&f, &b, |d, blobs| {
        swap_layer(
            d,
            blobs,
            "config.json",
            br#"{"architectures":["EvilModel"]}"#,
        )
    });
    refused(&b, "models/minilm/config.json: model minilm: sha256 ");

    // model.sig itself replaced by one whose statement was changed.
    let b = f.pack_to("dir", "d3");
    let model = f.path(MODEL);
    let mut st = statement(&model);
    st["predicate"]["resources"][0]["digest"] = sha256_hex(b"evil").into();
    let orig = std::fs::read(model.join("model.sig")).unwrap();
    replace_statement(&model, &st);
    let tampered = std::fs::read(model.join("model.sig")).unwrap();
    std::fs::write(model.join("model.sig"), orig).unwrap();
    forge(&f, &b, |d, blobs| {
        swap_layer(d, blobs, "model.sig", &tampered)
    });
    refused(
        &b,
        "models/minilm/model.sig: model minilm: the signature does not verify",
    );

    // A recorded result the bytes do not give (files counted) is refused too.
    let b = f.pack_to("dir", "d4");
    forge(&f, &b, |d, _| {
        d["models"][0]["signature"]["files"] = 9.into();
    });
    refused(
        &b,
        "the signature verifies, but not as airlock.json records it",
    );

    // The forging itself is sound: an honest rewrite verifies.
    let b = f.pack_to("dir", "d5");
    forge(&f, &b, |_, _| {});
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
