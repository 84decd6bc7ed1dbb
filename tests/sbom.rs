//! SBOMs, checked with the real validators from PyPI (installed by
//! scripts/test): CycloneDX 1.6 with `cyclonedx-python-lib`'s strict JSON
//! validator, SPDX 2.3 with `pyspdxtools`. A bundle with a model, files,
//! pinned wheels, vendored crates and a carried SBOM is packed; both stored
//! documents and both derived ones (`airlock sbom`, with the bundle id)
//! must validate, list every layer by its sha256, be byte-identical when
//! packed again, reference the carried SBOM, and read the same from every
//! transport form.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::Digest;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A minimal valid safetensors file: one F32 tensor of shape [2, 3].
fn safetensors() -> Vec<u8> {
    let mut header =
        br#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"format":"pt"}}"#
            .to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend([0u8; 24]);
    out
}

const CDX_SBOM: &str =
    r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []}"#;

/// The common fixture plus a valid model, a pinned wheel, a vendored crate
/// (and a workspace member that is not carried) and a carried SBOM.
fn fixture() -> Fixture {
    let f = Fixture::new();
    std::fs::write(f.path("src/models/minilm/model.safetensors"), safetensors()).unwrap();

    let wheel = f.path("src/wheelhouse/Tiny_Pkg-0.1.0-py3-none-any.whl");
    std::fs::create_dir_all(wheel.parent().unwrap()).unwrap();
    std::fs::write(&wheel, b"not really a wheel; airlock checks its pin").unwrap();
    std::fs::write(
        f.path("src/requirements.txt"),
        format!(
            "tiny-pkg==0.1.0 \\\n    --hash=sha256:{}\n",
            sha256_hex(&std::fs::read(&wheel).unwrap())
        ),
    )
    .unwrap();

    let krate = f.path("src/proj/vendor/itoa");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let files: [(&str, &[u8]); 2] = [
        (
            "Cargo.toml",
            b"[package]\nname = \"itoa\"\nversion = \"1.0.0\"\n",
        ),
        ("src/lib.rs", b"pub fn f() {}\n"),
    ];
    for (p, b) in files {
        std::fs::write(krate.join(p), b).unwrap();
    }
    let crate_sum = sha256_hex(b"the .crate file");
    let listed: serde_json::Map<String, Value> = files
        .iter()
        .map(|(p, b)| (p.to_string(), Value::String(sha256_hex(b))))
        .collect();
    std::fs::write(
        krate.join(".cargo-checksum.json"),
        serde_json::to_vec(&serde_json::json!({"files": listed, "package": crate_sum})).unwrap(),
    )
    .unwrap();
    std::fs::write(
        f.path("src/proj/Cargo.lock"),
        format!("version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"itoa\"]\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{crate_sum}\"\n"),
    )
    .unwrap();

    std::fs::create_dir_all(f.path("src/sboms")).unwrap();
    std::fs::write(f.path("src/sboms/infer.cdx.json"), CDX_SBOM).unwrap();
    f.write_manifest(
        "python:\n  - requirements: requirements.txt\n    wheelhouse: wheelhouse\ncargo:\n  - lockfile: proj/Cargo.lock\n    vendor: proj/vendor\nsboms:\n  - path: sboms/infer.cdx.json\n",
    );
    f
}

fn description(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

fn artifacts(d: &Value) -> &Vec<Value> {
    d["artifacts"].as_array().unwrap()
}

/// `airlock sbom` (extra args appended) → the document's bytes.
fn sbom(bundle: &Path, format: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["sbom", bundle.to_str().unwrap(), "--format", format];
    args.extend(extra);
    let o = run(&args);
    assert_eq!(code(&o), 0, "airlock sbom: {}", stderr(&o));
    o.stdout
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("the SBOM is JSON")
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed; run the tests through scripts/test, which installs it from PyPI"
    );
    Command::new(name)
}

const CDX_VALIDATE: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read(), all_errors=True)
if errors:
    for e in errors:
        print(e.data.message, "at", list(e.data.absolute_path))
    sys.exit(1)
"#;

/// cyclonedx-python-lib's strict CycloneDX 1.6 JSON validator.
#[track_caller]
fn assert_valid_cyclonedx(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let o = tool("python3")
        .args(["-c", CDX_VALIDATE, p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name} is not valid CycloneDX 1.6 (needs `pip install 'cyclonedx-python-lib[json-validation]'`, done by scripts/test):\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// pyspdxtools (spdx-tools) parses and validates SPDX 2.3 JSON.
#[track_caller]
fn assert_valid_spdx(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let o = tool("pyspdxtools")
        .args(["-i", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name} is not valid SPDX 2.3:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every component, nested ones included.
fn all_components(v: &Value) -> Vec<&Value> {
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

fn cdx_hashes(v: &Value) -> BTreeSet<String> {
    all_components(v)
        .iter()
        .flat_map(|c| c["hashes"].as_array().into_iter().flatten())
        .filter(|h| h["alg"] == "SHA-256")
        .map(|h| h["content"].as_str().unwrap().to_string())
        .collect()
}

fn spdx_checksums(v: &Value) -> BTreeSet<String> {
    v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["SPDXID"] != "SPDXRef-Bundle")
        .flat_map(|p| p["checksums"].as_array().into_iter().flatten())
        .filter(|c| c["algorithm"] == "SHA256")
        .map(|c| c["checksumValue"].as_str().unwrap().to_string())
        .collect()
}

fn bundle_id(bundle: &Path) -> String {
    sha256_hex(&std::fs::read(bundle.join("tagmanifest-sha256.txt")).unwrap())
}

#[test]
fn stored_and_derived_sboms_pass_the_real_validators() {
    let f = fixture();
    let b = f.pack("dir");
    let id = bundle_id(&b);
    let d = description(&b);
    // Stored as OCI 1.1 artifacts with the documents' media types, listed in airlock.json.
    for (reference, media_type, file) in [
        (
            "sbom/cyclonedx",
            "application/vnd.cyclonedx+json",
            "demo-1.0.0.cdx.json",
        ),
        ("sbom/spdx", "application/spdx+json", "demo-1.0.0.spdx.json"),
    ] {
        let a = artifacts(&d)
            .iter()
            .find(|a| a["reference"] == reference)
            .unwrap_or_else(|| panic!("no {reference} in airlock.json"));
        assert_eq!(a["kind"], "sbom");
        assert_eq!(a["artifactType"], media_type);
        assert_eq!(
            a["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let layers = a["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], media_type);
        assert_eq!(layers[0]["path"], file);
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(
                b.join("data/blobs/sha256").join(
                    a["manifest"]["digest"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("sha256:"),
                ),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["artifactType"], media_type);
        assert_eq!(
            manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
            file
        );
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(b.join("data/index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        refs.contains(&"sbom/cyclonedx") && refs.contains(&"sbom/spdx"),
        "{refs:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let cdx_stored = sbom(&b, "cyclonedx", &["--stored"]);
    let cdx = sbom(&b, "cyclonedx", &[]);
    let spdx_stored = sbom(&b, "spdx", &["--stored"]);
    let spdx = sbom(&b, "spdx", &[]);
    assert_valid_cyclonedx(tmp.path(), "stored.cdx.json", &cdx_stored);
    assert_valid_cyclonedx(tmp.path(), "derived.cdx.json", &cdx);
    assert_valid_spdx(tmp.path(), "stored.spdx.json", &spdx_stored);
    assert_valid_spdx(tmp.path(), "derived.spdx.json", &spdx);

    // The stored documents are the payload blobs airlock.json declares.
    for (reference, bytes) in [("sbom/cyclonedx", &cdx_stored), ("sbom/spdx", &spdx_stored)] {
        let a = artifacts(&d)
            .iter()
            .find(|a| a["reference"] == reference)
            .unwrap();
        assert_eq!(
            a["layers"][0]["digest"].as_str().unwrap(),
            format!("sha256:{}", sha256_hex(bytes))
        );
    }

    // CycloneDX 1.6 with ML-BOM: the model is a machine-learning-model with a model card.
    let c = parse(&cdx);
    assert_eq!(c["specVersion"], "1.6");
    let model = all_components(&c)
        .into_iter()
        .find(|x| x["type"] == "machine-learning-model")
        .expect("an ML component");
    assert_eq!(model["name"], "minilm");
    assert_eq!(model["purl"], "pkg:generic/demo/minilm@1.0.0");
    // The model card carries what pack read from the headers: the fixture's
    // config.json names BertModel; its safetensors holds one F32 tensor [2, 3].
    assert_eq!(
        model["modelCard"]["modelParameters"]["modelArchitecture"],
        "BertModel"
    );
    let card = model["modelCard"]["properties"].as_array().unwrap();
    for (name, value) in [
        ("airlock:model:format", "safetensors"),
        ("airlock:model:parameters", "6"),
        ("airlock:model:dtype:F32", "6"),
        ("airlock:model:weightFiles", "1"),
    ] {
        assert!(
            card.iter()
                .any(|p| p["name"] == name && p["value"] == value),
            "no {name}={value} in {card:#?}"
        );
    }
    let purls: BTreeSet<&str> = all_components(&c)
        .iter()
        .filter_map(|x| x["purl"].as_str())
        .collect();
    for want in [
        "pkg:pypi/tiny-pkg@0.1.0",
        "pkg:pypi/tiny-pkg@0.1.0?file_name=Tiny_Pkg-0.1.0-py3-none-any.whl",
        "pkg:cargo/itoa@1.0.0",
    ] {
        assert!(purls.contains(want), "no {want} in {purls:#?}");
    }
    assert!(
        !purls.iter().any(|p| p.starts_with("pkg:cargo/app")),
        "a workspace member is not carried, so not listed: {purls:#?}"
    );
    assert!(purls.contains(
        format!(
            "pkg:generic/demo/files/docs/runbook.txt?checksum=sha256:{}",
            sha256_hex(b"step one\nstep two\n")
        )
        .as_str()
    ));
    // Every component has a purl.
    assert!(all_components(&c).iter().all(|x| x["purl"].is_string()));

    // The subject: name@version in the stored documents (which cannot hold
    // the id), the bundle id added by `airlock sbom`.
    let cs = parse(&cdx_stored);
    assert_eq!(
        cs["metadata"]["component"]["purl"],
        "pkg:generic/demo@1.0.0"
    );
    assert!(cs["metadata"]["component"]["hashes"].is_null());
    assert!(!String::from_utf8_lossy(&cdx_stored).contains(&id));
    assert_eq!(
        c["metadata"]["component"]["hashes"][0]["content"],
        id.as_str()
    );
    assert!(c["metadata"]["component"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "airlock:bundle:id" && p["value"] == format!("sha256:{id}")));
    assert_ne!(c["serialNumber"], cs["serialNumber"]);
    let ss = parse(&spdx_stored);
    let s = parse(&spdx);
    let bundle_pkg = |v: &Value| {
        v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["SPDXID"] == "SPDXRef-Bundle")
            .unwrap()
            .clone()
    };
    assert!(bundle_pkg(&ss)["checksums"].is_null());
    assert!(!String::from_utf8_lossy(&spdx_stored).contains(&id));
    assert_eq!(bundle_pkg(&s)["checksums"][0]["checksumValue"], id.as_str());
    assert_ne!(s["documentNamespace"], ss["documentNamespace"]);
    assert!(s["relationships"].as_array().unwrap().iter().any(|r| {
        r["spdxElementId"] == "SPDXRef-DOCUMENT"
            && r["relationshipType"] == "DESCRIBES"
            && r["relatedSpdxElement"] == "SPDXRef-Bundle"
    }));
    // Apart from the subject's id, the derived document is the stored one.
    let strip_cdx = |mut v: Value| {
        v["serialNumber"] = Value::Null;
        let comp = v["metadata"]["component"].as_object_mut().unwrap();
        for k in ["hashes", "properties", "description"] {
            comp.remove(k);
        }
        v
    };
    assert_eq!(strip_cdx(c.clone()), strip_cdx(cs.clone()));

    // The bundle still verifies, and skopeo reads the SBOM artifact.
    let v = f.verify(&b);
    assert_eq!(code(&v), 0, "{}", stderr(&v));
    let o = tool("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:sbom/spdx", b.join("data").display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let raw: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(raw["artifactType"], "application/spdx+json");
    assert_eq!(
        raw["layers"][0]["digest"],
        format!("sha256:{}", sha256_hex(&spdx_stored))
    );
}

#[test]
fn every_layer_digest_appears_in_both_documents() {
    let f = fixture();
    let b = f.pack("dir");
    let d = description(&b);
    let c = parse(&sbom(&b, "cyclonedx", &[]));
    let s = parse(&sbom(&b, "spdx", &[]));
    let (in_cdx, in_spdx) = (cdx_hashes(&c), spdx_checksums(&s));
    let mut layers = 0;
    for a in artifacts(&d) {
        let reference = a["reference"].as_str().unwrap();
        if reference == "sbom/cyclonedx" || reference == "sbom/spdx" {
            continue; // a document cannot list its own digest
        }
        for l in a["layers"].as_array().unwrap() {
            layers += 1;
            let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
            assert!(
                in_cdx.contains(hex),
                "{reference} {} missing from CycloneDX",
                l["path"]
            );
            assert!(
                in_spdx.contains(hex),
                "{reference} {} missing from SPDX",
                l["path"]
            );
        }
        if a["kind"] == "model" {
            // A model is pinned by its OCI manifest.
            let hex = a["manifest"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:");
            assert!(in_cdx.contains(hex) && in_spdx.contains(hex));
        }
    }
    // model (4 files) + docs (2) + tool.sh + python (2) + cargo (4) + carried SBOM
    assert_eq!(layers, 14);
    // Every SPDX package is reachable from the bundle through CONTAINS.
    let rels = s["relationships"].as_array().unwrap();
    for p in s["packages"].as_array().unwrap() {
        let id = p["SPDXID"].as_str().unwrap();
        if id != "SPDXRef-Bundle" {
            assert!(
                rels.iter()
                    .any(|r| r["relationshipType"] == "CONTAINS" && r["relatedSpdxElement"] == id),
                "{id} is contained by nothing"
            );
        }
    }
}

#[test]
fn packing_twice_gives_the_same_sbom_bytes_and_content_derived_serials() {
    let f = fixture();
    let a = f.pack_to("dir", "one");
    let b = f.pack_to("dir", "two");
    for format in ["cyclonedx", "spdx"] {
        assert_eq!(
            sbom(&a, format, &["--stored"]),
            sbom(&b, format, &["--stored"]),
            "{format}"
        );
        assert_eq!(sbom(&a, format, &[]), sbom(&b, format, &[]), "{format}");
    }
    let c = parse(&sbom(&a, "cyclonedx", &["--stored"]));
    let serial = c["serialNumber"].as_str().unwrap().to_string();
    assert!(
        serial.starts_with("urn:uuid:") && serial.len() == 45,
        "{serial}"
    );
    // The timestamps are SOURCE_DATE_EPOCH (1700000000).
    assert_eq!(c["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    let s = parse(&sbom(&a, "spdx", &["--stored"]));
    assert_eq!(s["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let namespace = s["documentNamespace"].as_str().unwrap().to_string();

    // Other content: other serial number and namespace.
    std::fs::write(f.path("src/docs/runbook.txt"), b"step one\nstep three\n").unwrap();
    let changed = f.pack_to("dir", "three");
    let c2 = parse(&sbom(&changed, "cyclonedx", &["--stored"]));
    let s2 = parse(&sbom(&changed, "spdx", &["--stored"]));
    assert_ne!(c2["serialNumber"].as_str().unwrap(), serial);
    assert_ne!(s2["documentNamespace"].as_str().unwrap(), namespace);
}

/// Each stored document's serial number (CycloneDX) or namespace (SPDX) is
/// the version-8 UUID of the sha256 of a domain line and the very document
/// with that field empty: pack renders a document once and splices the
/// seal into its blob file, wherever the field falls in it (here after 500
/// file items, past the first 64 KiB), leaving no unsealed copy behind.
#[test]
fn stored_seals_are_the_uuid_of_the_document_with_the_field_empty() {
    let f = fixture();
    let many = f.path("src/docs/many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..500 {
        std::fs::write(many.join(format!("n{i:03}.txt")), format!("file {i}\n")).unwrap();
    }
    let b = f.pack("dir");
    for (format, key, domain) in [
        ("cyclonedx", "serialNumber", "airlock cyclonedx serial\n"),
        ("spdx", "documentNamespace", "airlock spdx namespace\n"),
    ] {
        let stored = sbom(&b, format, &["--stored"]);
        assert!(stored.len() > 1 << 16, "{format}: {} bytes", stored.len());
        let value = parse(&stored)[key].as_str().unwrap().to_string();
        let text = String::from_utf8(stored).unwrap();
        let field = format!("\n  \"{key}\": {}", serde_json::to_string(&value).unwrap());
        assert_eq!(text.matches(&field).count(), 1, "{format}");
        let unsealed = text.replace(&field, &format!("\n  \"{key}\": \"\""));
        let mut h = sha2::Sha256::new();
        h.update(domain.as_bytes());
        h.update(unsealed.as_bytes());
        let d = h.finalize();
        let mut u = [0u8; 16];
        u.copy_from_slice(&d[..16]);
        u[6] = (u[6] & 0x0f) | 0x80;
        u[8] = (u[8] & 0x3f) | 0x80;
        let hex: String = u.iter().map(|x| format!("{x:02x}")).collect();
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        assert!(
            value.ends_with(&format!("-{uuid}")) || value == format!("urn:uuid:{uuid}"),
            "{format}: {value} is not sealed by {uuid}"
        );
    }
    for e in std::fs::read_dir(b.join("data/blobs/sha256")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "{name} left in the blob directory");
    }
}

#[test]
fn carried_sboms_are_stored_referenced_and_exported() {
    let f = fixture();
    let b = f.pack("dir");
    let d = description(&b);
    let carried = artifacts(&d)
        .iter()
        .find(|a| a["reference"] == "sbom/carried/sboms/infer.cdx.json")
        .expect("the carried SBOM is an artifact");
    assert_eq!(carried["kind"], "sbom");
    assert_eq!(carried["artifactType"], "application/vnd.cyclonedx+json");
    let digest = sha256_hex(CDX_SBOM.as_bytes());
    assert_eq!(carried["layers"][0]["digest"], format!("sha256:{digest}"));

    // CycloneDX: a BOM external reference with its hash.
    let c = parse(&sbom(&b, "cyclonedx", &[]));
    let refs = c["externalReferences"]
        .as_array()
        .expect("externalReferences");
    assert!(
        refs.iter().any(|r| r["type"] == "bom"
            && r["url"] == "sbom/carried/sboms/infer.cdx.json"
            && r["hashes"][0]["content"] == digest.as_str()),
        "{refs:#?}"
    );
    // SPDX: a package with its checksum, related to the bundle.
    let s = parse(&sbom(&b, "spdx", &[]));
    let pkg = s["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["checksums"][0]["checksumValue"] == digest.as_str())
        .expect("the carried SBOM is a package");
    let spdx_id = pkg["SPDXID"].as_str().unwrap();
    let rels = s["relationships"].as_array().unwrap();
    assert!(rels.iter().any(|r| r["spdxElementId"] == spdx_id
        && r["relatedSpdxElement"] == "SPDXRef-Bundle"
        && r["relationshipType"] == "OTHER"
        && r["comment"].as_str().unwrap().contains("SBOM")));

    // Export writes the generated documents (as stored) and the carried one to DIR/sbom/.
    assert_eq!(code(&f.import(&b, "store")), 0);
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
    assert_eq!(
        std::fs::read(f.path("out/sbom/carried/sboms/infer.cdx.json")).unwrap(),
        CDX_SBOM.as_bytes()
    );
    assert_eq!(
        std::fs::read(f.path("out/sbom/demo-1.0.0.cdx.json")).unwrap(),
        sbom(&b, "cyclonedx", &["--stored"])
    );
    assert_eq!(
        std::fs::read(f.path("out/sbom/demo-1.0.0.spdx.json")).unwrap(),
        sbom(&b, "spdx", &["--stored"])
    );
}

#[test]
fn a_file_that_is_no_sbom_is_refused_at_pack() {
    let f = fixture();
    std::fs::write(f.path("src/sboms/infer.cdx.json"), b"{\"hello\": 1}").unwrap();
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("dist"),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("sboms[0].path"), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a CycloneDX"), "{}", stderr(&o));
}

#[test]
fn output_writes_the_file_and_every_form_gives_the_same_document() {
    let f = fixture();
    let dir = f.pack("dir");
    let id = bundle_id(&dir);
    let out = f.path("sbom.cdx.json");
    let o = run(&[
        "sbom",
        dir.to_str().unwrap(),
        "--format",
        "cyclonedx",
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written, sbom(&dir, "cyclonedx", &[]));
    let j = json(&o);
    assert_eq!(j["bundleId"], id.as_str());
    assert_eq!(j["format"], "cyclonedx");
    assert_eq!(j["sha256"], sha256_hex(&written).as_str());
    assert_eq!(j["stored"], false);

    // Enough payload for several volumes of the smallest size allowed.
    for i in 0..4u8 {
        let bytes: Vec<u8> = (0..40_000u32).map(|n| (n as u8) ^ i).collect();
        std::fs::write(f.path(&format!("src/docs/big{i}.bin")), bytes).unwrap();
    }
    let dir = f.pack_to("dir", "dist-big");
    let mut forms: Vec<PathBuf> = vec![f.pack("tar"), f.pack("tar.zst")];
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("vols"),
        "--volume-size",
        "120KB",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        json(&o)["paths"].as_array().unwrap().len() > 1,
        "several volumes"
    );
    forms.push(f.path("vols"));
    for format in ["cyclonedx", "spdx"] {
        let want = sbom(&dir, format, &[]);
        let want_stored = sbom(&dir, format, &["--stored"]);
        for b in &forms {
            assert_eq!(sbom(b, format, &[]), want, "{format} {}", b.display());
            // --stored reads the payload of every form.
            assert_eq!(
                sbom(b, format, &["--stored"]),
                want_stored,
                "{format} {}",
                b.display()
            );
        }
    }
}

#[test]
fn a_tampered_stored_sbom_or_description_is_refused() {
    let f = fixture();
    let b = f.pack("dir");
    let d = description(&b);
    let a = artifacts(&d)
        .iter()
        .find(|a| a["reference"] == "sbom/spdx")
        .unwrap();
    let blob = format!(
        "data/blobs/sha256/{}",
        a["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    let mut bytes = std::fs::read(b.join(&blob)).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(b.join(&blob), &bytes).unwrap();
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "spdx", "--stored"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(&blob), "{}", stderr(&o));
    assert!(stderr(&o).contains("sha256 mismatch"), "{}", stderr(&o));

    // A description that no longer matches the tag manifest.
    let desc = b.join("airlock.json");
    let text = std::fs::read_to_string(&desc)
        .unwrap()
        .replace("test bundle", "best bundle");
    std::fs::write(&desc, text).unwrap();
    let o = run(&["sbom", b.to_str().unwrap(), "--format", "cyclonedx"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("airlock.json"), "{}", stderr(&o));
}
