//! Delta bundles closed by receipts (issue 16): `store receipt`, `pack --base`,
//! `inspect`, `verify` with and without `--store`, `import` of a delta, and
//! every bad input refused with exit 1 and nothing written. Each runs the
//! real binary.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A fixture whose v1.0.0 is imported into `store`, a high-side key
/// `keys/high` and `base.yaml` trusting it for role `store`.
fn setup() -> Fixture {
    let f = Fixture::new();
    let o = run(&["keygen", &f.s("keys/high")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    write_base_policy(&f, "high", "[store]");
    let v1 = f.pack("dir");
    let o = f.import(&v1, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    f
}

fn write_base_policy(f: &Fixture, key: &str, roles: &str) {
    std::fs::write(
        f.path("base.yaml"),
        format!(
            "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: {key}\n    publicKey: keys/{key}.pub\n    roles: {roles}\n"
        ),
    )
    .unwrap();
}

/// `store receipt --json` of `store` into `out`; returns its JSON output.
fn receipt(f: &Fixture, store: &str, out: &str) -> serde_json::Value {
    let o = run(&[
        "store",
        "receipt",
        "--store",
        &f.s(store),
        "--key",
        &f.s("keys/high.key"),
        "--out",
        &f.s(out),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    json(&o)
}

/// The new docs/runbook.txt: 150 kB (with notes.txt, a delta spans two volumes).
fn new_runbook() -> Vec<u8> {
    (0..10_000u32)
        .flat_map(|i| format!("step {i:09}\n").into_bytes())
        .collect()
}

/// Version 1.1.0 with two changed files (docs/runbook.txt, docs/sub/notes.txt).
fn change_one_file(f: &Fixture) {
    let text = std::fs::read_to_string(f.path("src/airlock.yaml")).unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        text.replace("version: 1.0.0", "version: 1.1.0"),
    )
    .unwrap();
    std::fs::write(f.path("src/docs/runbook.txt"), new_runbook()).unwrap();
    let mut notes = new_runbook();
    notes.reverse();
    std::fs::write(f.path("src/docs/sub/notes.txt"), notes).unwrap();
}

fn pack_delta(f: &Fixture, format: &str, out: &str, base: &str) -> std::process::Output {
    let (b, t) = (f.s(base), f.s("base.yaml"));
    f.pack_with(format, out, &["--base", &b, "--base-trust", &t])
}

fn blobs_in(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("oci/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn records_in(store: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for n in std::fs::read_dir(store.join("bundles")).unwrap() {
        for r in std::fs::read_dir(n.unwrap().path()).unwrap() {
            v.push(r.unwrap().path());
        }
    }
    v.sort();
    v
}

fn size_of(p: &Path) -> u64 {
    if p.is_file() {
        return std::fs::metadata(p).unwrap().len();
    }
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| size_of(&e.unwrap().path()))
        .sum()
}

#[test]
fn store_receipt_states_every_blob_with_a_lasting_store_id() {
    let f = setup();
    let a = receipt(&f, "store", "have.json");
    let b = receipt(&f, "store", "have2.json");
    assert_schemas(&[("store-receipt", a.clone())]);
    assert_eq!(a["storeId"], b["storeId"], "the store id is kept");
    let id = a["storeId"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        std::fs::read_to_string(f.path("store/store-id"))
            .unwrap()
            .trim(),
        id
    );
    // Every blob of the imported bundle, as the store holds them.
    assert_eq!(
        a["blobCount"].as_u64().unwrap() as usize,
        blobs_in(&f.path("store")).len()
    );
    // A DSSE envelope of an in-toto statement with our predicate type.
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("have.json")).unwrap()).unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        st["predicateType"],
        "https://airlock.dev/attestations/store-holdings/v1"
    );
    assert_eq!(st["predicate"]["storeId"], id);
    // Recorded in the ledger, which still verifies.
    let o = run(&[
        "store",
        "log",
        "--store",
        &f.s("store"),
        "--verify",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let actions: Vec<String> = json(&o)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["import", "store-id", "receipt", "receipt"]);
}

#[test]
fn a_delta_in_every_format_carries_only_the_change_and_imports_complete() {
    let f = setup();
    receipt(&f, "store", "have.json");
    change_one_file(&f);
    let full = f.pack_with("tar", "full", &[]);
    assert_eq!(code(&full), 0, "{}", stderr(&full));
    let full_size = size_of(Path::new(json(&full)["path"].as_str().unwrap()));

    for (i, format) in ["dir", "tar", "tar.zst", "volumes"].iter().enumerate() {
        let out = format!("delta-{i}");
        let o = if *format == "volumes" {
            let (b, t) = (f.s("have.json"), f.s("base.yaml"));
            f.pack_with(
                "tar",
                &out,
                &["--base", &b, "--base-trust", &t, "--volume-size", "200KB"],
            )
        } else {
            pack_delta(&f, format, &out, "have.json")
        };
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
        let p = json(&o);
        assert_schemas(&[("pack", p.clone())]);
        let delta = &p["delta"];
        // Everything but the changed file, the new configs/manifests and
        // SBOMs is provided by the base: the weights above all.
        assert!(delta["blobs"].as_u64().unwrap() >= 3, "{format}: {p}");
        assert!(delta["size"].as_u64().unwrap() > 300_000, "{format}: {p}");
        let bundle = PathBuf::from(p["path"].as_str().unwrap());
        if *format == "volumes" {
            assert!(p["paths"].as_array().unwrap().len() >= 2, "{p}");
        }
        if *format == "tar" {
            assert!(
                // The weights (300 kB) are not carried.
                size_of(&bundle) + 300_000 < full_size,
                "delta {} bytes vs full {full_size}",
                size_of(&bundle)
            );
        }

        // inspect says so, from the signed description.
        let o = run(&["inspect", bundle.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!(
                "delta: {} blob(s)",
                delta["blobs"].as_u64().unwrap()
            )) && stdout(&o).contains("provided by the base"),
            "{}",
            stdout(&o)
        );
        let o = run(&["inspect", bundle.to_str().unwrap(), "--json"]);
        assert_schemas(&[("inspect", json(&o))]);
        assert_eq!(json(&o)["delta"]["omitted"], delta["blobs"]);

        // verify without a store: exit 0, and says what it could not check.
        let o = run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
        ]);
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("NOT CHECKED") && stdout(&o).contains("model.safetensors"),
            "{}",
            stdout(&o)
        );
        let o = run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--json",
        ]);
        let v = json(&o);
        assert_schemas(&[("verify", v.clone())]);
        assert_eq!(
            v["checked"]["delta"]["unchecked"].as_array().unwrap().len() as u64,
            delta["blobs"].as_u64().unwrap()
        );
        // The weights are left out: not scanned without the store.
        assert_eq!(v["checked"]["models"], 0, "{v}");
        // verify --store: complete against the store.
        let o = run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            &f.s("store"),
            "--recheck",
            "--json",
        ]);
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
        let v = json(&o);
        assert_schemas(&[("verify", v.clone())]);
        assert_eq!(v["checked"]["delta"]["rehashed"], true);
        assert!(v["checked"]["delta"]["unchecked"]
            .as_array()
            .unwrap()
            .is_empty());
    }

    // Import one (the tar.zst): the store then holds a complete 1.1.0.
    let bundle = f.path("delta-2/demo-1.1.0.tar.zst");
    let o = run(&[
        "import",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--recheck",
        "--key",
        &f.s("keys/high.key"),
        "--receipt",
        &f.s("r11.json"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let imp = json(&o);
    assert_schemas(&[("import", imp.clone())]);
    assert!(imp["blobsFromBase"].as_u64().unwrap() >= 3, "{imp}");
    let o = run(&[
        "export",
        "demo@1.1.0",
        "--store",
        &f.s("store"),
        "--out",
        &f.s("exported"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let weights = walk_find(&f.path("exported"), "model.safetensors").expect("weights exported");
    assert_eq!(
        std::fs::read(weights).unwrap(),
        std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap()
    );
    let runbook = walk_find(&f.path("exported"), "runbook.txt").expect("runbook exported");
    assert_eq!(std::fs::read(runbook).unwrap(), new_runbook());
    // The import receipt lists every blob, the base's included.
    let o = run(&[
        "receipt",
        "verify",
        &f.s("r11.json"),
        "--trust",
        &f.s("base.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let full_blobs = json(&full)["blobCount"].as_u64().unwrap() as usize;
    assert_eq!(json(&o)["blobs"].as_array().unwrap().len(), full_blobs);
    let o = run(&["store", "log", "--store", &f.s("store"), "--verify"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir() {
            if let Some(x) = walk_find(&p, name) {
                return Some(x);
            }
        }
    }
    None
}

#[test]
fn an_import_receipt_serves_as_a_base() {
    let f = Fixture::new();
    let o = run(&["keygen", &f.s("keys/high")]);
    assert_eq!(code(&o), 0);
    write_base_policy(&f, "high", "[store]");
    let v1 = f.pack("dir");
    let o = run(&[
        "import",
        v1.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--key",
        &f.s("keys/high.key"),
        "--receipt",
        &f.s("imported.json"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    change_one_file(&f);
    let o = pack_delta(&f, "tar", "d", "imported.json");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let p = json(&o);
    assert!(p["delta"]["storeId"].is_null());
    assert!(p["delta"]["blobs"].as_u64().unwrap() >= 3);
    let o = f.import(Path::new(p["path"].as_str().unwrap()), "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Into a store that never held 1.0.0: refused, the missing blobs listed.
    let before = std::fs::read_dir(f.path("dist")).unwrap().count();
    let o = f.import(Path::new(p["path"].as_str().unwrap()), "other");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("missing from store"), "{}", stderr(&o));
    assert!(records_in(&f.path("other")).is_empty());
    assert!(blobs_in(&f.path("other")).is_empty());
    assert_eq!(before, std::fs::read_dir(f.path("dist")).unwrap().count());
}

#[test]
fn a_receipt_from_an_untrusted_key_or_without_role_store_is_refused() {
    let f = setup();
    receipt(&f, "store", "have.json");
    change_one_file(&f);
    // The policy trusts another key.
    write_base_policy(&f, "stranger", "[store]");
    let o = pack_delta(&f, "dir", "out1", "have.json");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("does not know"), "{}", stderr(&o));
    assert!(!f.path("out1").exists(), "nothing written");
    // The policy trusts the key, but not for role store.
    write_base_policy(&f, "high", "[builder]");
    let o = pack_delta(&f, "dir", "out2", "have.json");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("role \"store\""), "{}", stderr(&o));
    assert!(!f.path("out2").exists(), "nothing written");
}

#[test]
fn a_tampered_receipt_is_refused() {
    let f = setup();
    receipt(&f, "store", "have.json");
    change_one_file(&f);
    let mut env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("have.json")).unwrap()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    // Claim one more blob: drop the last digest instead of adding, so the
    // count is the only thing changed besides the list.
    let blobs = b64
        .decode(st["predicate"]["blobs"].as_str().unwrap())
        .unwrap();
    let fewer = &blobs[..blobs.len() - 32];
    st["predicate"]["blobs"] = b64.encode(fewer).into();
    st["predicate"]["blobCount"] = ((fewer.len() / 32) as u64).into();
    env["payload"] = b64.encode(serde_json::to_vec(&st).unwrap()).into();
    std::fs::write(f.path("bad.json"), serde_json::to_vec(&env).unwrap()).unwrap();
    let o = pack_delta(&f, "tar", "out", "bad.json");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("signature does not verify"),
        "{}",
        stderr(&o)
    );
    assert!(!f.path("out").exists(), "nothing written");
}

#[test]
fn a_delta_cut_against_another_stores_receipt_is_refused_at_import() {
    let f = setup();
    // A second store holding the same 1.0.0, with its own identity.
    let o = f.import(&f.path("dist/demo-1.0.0"), "store2");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let other = receipt(&f, "store2", "have2.json");
    let ours = receipt(&f, "store", "have.json");
    assert_ne!(other["storeId"], ours["storeId"]);
    change_one_file(&f);
    let o = pack_delta(&f, "dir", "d", "have2.json");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bundle = PathBuf::from(json(&o)["path"].as_str().unwrap());
    let (records, blobs) = (records_in(&f.path("store")), blobs_in(&f.path("store")));
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(other["storeId"].as_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert_eq!(records, records_in(&f.path("store")), "no record written");
    assert_eq!(blobs, blobs_in(&f.path("store")), "no blob written");
    // The store it was cut against takes it.
    let o = f.import(&bundle, "store2");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn a_delta_into_a_store_lacking_blobs_is_refused_listing_them() {
    let f = setup();
    receipt(&f, "store", "have.json");
    change_one_file(&f);
    let o = pack_delta(&f, "tar", "d", "have.json");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bundle = PathBuf::from(json(&o)["path"].as_str().unwrap());
    // A blob removed behind the store's back (the store never removes one).
    let weights = blobs_in(&f.path("store"))
        .into_iter()
        .max_by_key(|b| {
            std::fs::metadata(f.path(&format!("store/oci/blobs/sha256/{b}")))
                .unwrap()
                .len()
        })
        .unwrap();
    std::fs::remove_file(f.path(&format!("store/oci/blobs/sha256/{weights}"))).unwrap();
    let (records, blobs) = (records_in(&f.path("store")), blobs_in(&f.path("store")));
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&weights) && stderr(&o).contains("missing from store"),
        "{}",
        stderr(&o)
    );
    assert_eq!(records, records_in(&f.path("store")));
    assert_eq!(blobs, blobs_in(&f.path("store")));
    // verify --store says the same, exit 1.
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(&weights), "{}", stderr(&o));
}

#[test]
fn omitted_blobs_are_content_checked_from_the_store_at_import() {
    let f = setup();
    receipt(&f, "store", "have.json");
    change_one_file(&f);
    let o = pack_delta(&f, "dir", "d", "have.json");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bundle = PathBuf::from(json(&o)["path"].as_str().unwrap());
    // The store's copy of the weights corrupted: read for the model gate,
    // its digest no longer matches, even without --recheck.
    let weights = blobs_in(&f.path("store"))
        .into_iter()
        .max_by_key(|b| {
            std::fs::metadata(f.path(&format!("store/oci/blobs/sha256/{b}")))
                .unwrap()
                .len()
        })
        .unwrap();
    let at = f.path(&format!("store/oci/blobs/sha256/{weights}"));
    let mut bytes = std::fs::read(&at).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&at, bytes).unwrap();
    let records = records_in(&f.path("store"));
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("sha256 mismatch"), "{}", stderr(&o));
    assert_eq!(records, records_in(&f.path("store")));
}

// ------------------------------------------------------------ images

fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d: [u8; 32] = sha2::Sha256::digest(bytes).into();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A layer tar holding one file `name` of `size` bytes derived from `seed`.
fn layer_tar(name: &str, size: usize, seed: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, &data[..]).unwrap();
    b.into_inner().unwrap()
}

/// Writes an OCI layout at `dir` holding one image of `layers`, tagged 1.0;
/// returns the manifest digest.
fn write_image(dir: &Path, layers: &[Vec<u8>]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8], mt: &str| {
        let hex = sha_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        serde_json::json!({"mediaType": mt, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| put(l, "application/vnd.oci.image.layer.v1.tar"))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": descs.iter().map(|d| d["digest"].clone()).collect::<Vec<_>>()},
    });
    let config = put(
        &serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": descs,
    });
    let mut m = put(
        &serde_json::to_vec(&manifest).unwrap(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let digest = m["digest"].as_str().unwrap().to_string();
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "1.0"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [m]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

#[test]
fn an_image_delta_leaves_out_the_shared_layer_and_imports_complete() {
    let f = Fixture::new();
    let o = run(&["keygen", &f.s("keys/high")]);
    assert_eq!(code(&o), 0);
    write_base_policy(&f, "high", "[store]");
    let base_layer = layer_tar("base.bin", 400_000, 1);
    write_image(
        &f.path("src/layout1"),
        &[base_layer.clone(), layer_tar("app.bin", 2_000, 2)],
    );
    f.write_manifest(
        "images:\n  - source: oci-layout:layout1:1.0\n    name: registry.example/ml/infer:1.0\n",
    );
    let v1 = f.pack("dir");
    let o = f.import(&v1, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    receipt(&f, "store", "have.json");

    // 1.1.0: the app layer changes, the base layer is shared.
    let digest2 = write_image(
        &f.path("src/layout2"),
        &[base_layer.clone(), layer_tar("app.bin", 2_000, 3)],
    );
    std::fs::write(
        f.path("src/airlock.yaml"),
        std::fs::read_to_string(f.path("src/airlock.yaml"))
            .unwrap()
            .replace("version: 1.0.0", "version: 1.1.0")
            .replace("layout1", "layout2"),
    )
    .unwrap();
    let o = pack_delta(&f, "tar.zst", "d", "have.json");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let p = json(&o);
    assert!(
        p["delta"]["size"].as_u64().unwrap() > 400_000 + 300_000,
        "the base layer and the weights are provided by the base: {p}"
    );
    let bundle = PathBuf::from(p["path"].as_str().unwrap());
    assert!(size_of(&bundle) < 100_000, "{} bytes", size_of(&bundle));
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "export",
        "demo@1.1.0",
        "--store",
        &f.s("store"),
        "--out",
        &f.s("exported"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The exported image layout holds the shared layer, by its digest.
    let layer =
        walk_find(&f.path("exported"), &sha_hex(&base_layer)).expect("shared layer exported");
    assert_eq!(std::fs::read(layer).unwrap(), base_layer);
    let index = walk_find(&f.path("exported"), "index.json").expect("an OCI index exported");
    assert!(std::fs::read_to_string(index).unwrap().contains(&digest2));
}

#[test]
fn a_python_delta_rechecks_pins_from_the_store() {
    let f = Fixture::new();
    let o = run(&["keygen", &f.s("keys/high")]);
    assert_eq!(code(&o), 0);
    write_base_policy(&f, "high", "[store]");
    // A wheelhouse of one wheel (airlock reads wheels by name and pin only).
    let wheel: Vec<u8> = (0..50_000u32).map(|i| ((i * 7919) >> 5) as u8).collect();
    std::fs::create_dir_all(f.path("src/wheelhouse")).unwrap();
    std::fs::write(
        f.path("src/wheelhouse/tinypkg-0.1.0-py3-none-any.whl"),
        &wheel,
    )
    .unwrap();
    std::fs::write(
        f.path("src/requirements.txt"),
        format!("tinypkg==0.1.0 --hash=sha256:{}\n", sha_hex(&wheel)),
    )
    .unwrap();
    f.write_manifest("python:\n  - requirements: requirements.txt\n    wheelhouse: wheelhouse\n");
    let v1 = f.pack("dir");
    let o = f.import(&v1, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    receipt(&f, "store", "have.json");
    change_one_file(&f);
    let o = pack_delta(&f, "tar", "d", "have.json");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bundle = PathBuf::from(json(&o)["path"].as_str().unwrap());
    // The wheel and requirements.txt are left out: without a store the pins
    // cannot be re-checked, and verify says so.
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["checked"]["delta"]["structureChecked"], false, "{v}");
    assert_eq!(
        v["checked"]["pins"], 0,
        "no pin re-checked without the store: {v}"
    );
    let unchecked = v["checked"]["delta"]["unchecked"].as_array().unwrap();
    assert!(unchecked.contains(&format!("sha256:{}", sha_hex(&wheel)).into()));
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
    ]);
    assert!(
        stdout(&o).contains("nor the OCI structure and pins"),
        "{}",
        stdout(&o)
    );
    // With the store, the pins are re-checked against its copies.
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["checked"]["delta"]["structureChecked"], true, "{v}");
    assert!(v["checked"]["pins"].as_u64().unwrap() >= 1, "{v}");
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "export",
        "demo@1.1.0",
        "--store",
        &f.s("store"),
        "--out",
        &f.s("exported"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let w =
        walk_find(&f.path("exported"), "tinypkg-0.1.0-py3-none-any.whl").expect("wheel exported");
    assert_eq!(std::fs::read(w).unwrap(), wheel);
}
