//! A bundle is checkable without airlock: the real stock tools the contract
//! names are run on a packed bundle (installed by scripts/test).

mod common;
use common::*;
use std::process::Command;

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

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn sha256sum_checks_both_manifests() {
    let f = Fixture::new();
    let b = f.pack("dir");
    ok(tool("sha256sum")
        .arg("-c")
        .arg("tagmanifest-sha256.txt")
        .current_dir(&b));
    ok(tool("sha256sum")
        .arg("-c")
        .arg("manifest-sha256.txt")
        .current_dir(&b));
    // And it notices tampering: the same tool fails on a flipped byte.
    let blob = std::fs::read_dir(b.join("data/blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    assert!(!tool("sha256sum")
        .arg("-c")
        .arg("--quiet")
        .arg("manifest-sha256.txt")
        .current_dir(&b)
        .status()
        .unwrap()
        .success());
}

#[test]
fn bagit_py_validates_the_bag() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let py = Command::new("python3")
        .args(["-c", "import bagit"])
        .status()
        .unwrap();
    assert!(
        py.success(),
        "python bagit is not installed; run the tests through scripts/test"
    );
    ok(Command::new("python3")
        .args(["-m", "bagit", "--validate"])
        .arg(&b));
    std::fs::write(b.join("data/extra.txt"), b"x").unwrap();
    let bad = Command::new("python3")
        .args(["-m", "bagit", "--validate"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(!bad.status.success(), "bagit notices an extra payload file");
}

#[test]
fn ssh_keygen_verifies_the_sshsig() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let pubkey = std::fs::read_to_string(f.path("keys/builder.ssh.pub")).unwrap();
    let allowed = f.path("allowed_signers");
    std::fs::write(&allowed, format!("builder {pubkey}")).unwrap();
    let sig = std::fs::read_dir(b.join("signatures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".sshsig"))
        .unwrap();
    let verify = |msg: &std::path::Path| {
        tool("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(&allowed)
            .args(["-I", "builder", "-n", "airlock-bundle", "-s"])
            .arg(&sig)
            .stdin(std::fs::File::open(msg).unwrap())
            .output()
            .unwrap()
    };
    let good = verify(&b.join("tagmanifest-sha256.txt"));
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("Good \"airlock-bundle\" signature"));
    let bad = verify(&b.join("manifest-sha256.txt"));
    assert!(
        !bad.status.success(),
        "a signature over another file must not verify"
    );
}

#[test]
fn skopeo_reads_the_model_artifact_and_the_store() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let raw = ok(tool("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:models/minilm", b.join("data").display())));
    let m: serde_json::Value = serde_json::from_str(raw.trim()).unwrap();
    assert_eq!(
        m["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 4);
    assert_eq!(code(&f.import(&b, "store")), 0);
    let raw = ok(tool("skopeo").args(["inspect", "--raw"]).arg(format!(
        "oci:{}:demo/1.0.0/models/minilm",
        f.path("store/oci").display()
    )));
    assert!(raw.contains("application/vnd.cncf.model.weight.v1.raw"));
}

#[test]
fn verify_txt_names_the_stock_commands() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let text = std::fs::read_to_string(b.join("VERIFY.txt")).unwrap();
    for needle in [
        "sha256sum -c tagmanifest-sha256.txt",
        "bagit.py --validate",
        "ssh-keygen -Y verify",
        "-n airlock-bundle",
        "skopeo inspect --raw oci:data:",
    ] {
        assert!(text.contains(needle), "VERIFY.txt lacks {needle:?}");
    }
}

#[test]
fn modelpack_config_is_valid_against_model_spec_schema() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("airlock.json")).unwrap()).unwrap();
    let model = desc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reference"] == "models/minilm")
        .unwrap();
    assert_eq!(
        model["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let hex = model["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let bytes = std::fs::read(b.join("data/blobs/sha256").join(hex)).unwrap();
    check_modelpack_config(&bytes).unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // diffIds are the layers' digests (raw layers: uncompressed), in order.
    let manifest_hex = model["manifest"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.join("data/blobs/sha256").join(manifest_hex)).unwrap(),
    )
    .unwrap();
    let layers: Vec<&serde_json::Value> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let diff_ids: Vec<&serde_json::Value> = cfg["modelfs"]["diffIds"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(diff_ids, layers);
    assert_eq!(cfg["config"]["precision"], "float32");

    // The schema is a real check: the v0.0.6 form (`diff_ids`) is refused.
    let mut old = cfg.clone();
    let ids = old["modelfs"]
        .as_object_mut()
        .unwrap()
        .remove("diffIds")
        .unwrap();
    old["modelfs"]["diff_ids"] = ids;
    let e = check_modelpack_config(&serde_json::to_vec(&old).unwrap()).unwrap_err();
    assert!(e.contains("diffIds"), "{e}");
}
