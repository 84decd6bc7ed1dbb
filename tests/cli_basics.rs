//! The happy path a user relies on: keygen, pack in every form, inspect,
//! verify, import, export byte-identical, store ls / log, determinism.

mod common;
use common::*;

#[test]
fn keygen_writes_three_files_and_prints_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("k/builder");
    let o = run(&["keygen", base.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = json(&o)["keyId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let key = std::fs::read_to_string(dir.path().join("k/builder.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(dir.path().join("k/builder.pub"))
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(
        std::fs::read_to_string(dir.path().join("k/builder.ssh.pub"))
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("k/builder.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The private key never reaches stdout.
    assert!(!stdout(&o).contains("PRIVATE"));
    // Refuses to overwrite an existing key.
    let again = run(&["keygen", base.to_str().unwrap()]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn every_form_has_the_same_id_and_verifies() {
    let f = Fixture::new();
    let mut ids = Vec::new();
    for format in ["dir", "tar", "tar.zst"] {
        let bundle = f.pack(format);
        let o = run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--json",
        ]);
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
        ids.push(json(&o)["bundleId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    // The id is the sha256 of the tag manifest.
    let tm = std::fs::read(f.path("dist/demo-1.0.0/tagmanifest-sha256.txt")).unwrap();
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&tm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ids[0], hex);
}

#[test]
fn layout_has_bagit_oci_signatures_and_custody() {
    let f = Fixture::new();
    let b = f.pack("dir");
    for p in [
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
        "tagmanifest-sha256.txt",
        "airlock.json",
        "VERIFY.txt",
        "data/oci-layout",
        "data/index.json",
        "custody/0001-packed.dsse.json",
    ] {
        assert!(b.join(p).is_file(), "missing {p}");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("data/index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(
        manifests.len(),
        5,
        "one model, two file sets and two SBOMs (CycloneDX, SPDX)"
    );
    for m in manifests {
        assert!(m["annotations"]["org.opencontainers.image.ref.name"].is_string());
    }
    let model = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "models/minilm")
        .expect("model artifact");
    assert_eq!(
        model["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    let digest = model["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("data/blobs/sha256").join(digest)).unwrap())
            .unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let weight = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["org.cncf.model.filepath"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        weight["mediaType"],
        "application/vnd.cncf.model.weight.v1.raw"
    );
    let sigs: Vec<_> = std::fs::read_dir(b.join("signatures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let id = std::fs::read_to_string(f.path("keys/builder.ssh.pub")).unwrap();
    assert!(id.contains("airlock:"));
    assert!(
        sigs.iter().any(|s| s.ends_with(".dsse.json"))
            && sigs.iter().any(|s| s.ends_with(".sshsig")),
        "{sigs:?}"
    );
    // The DSSE payload is an in-toto Statement v1 about the tag manifest.
    let dsse = sigs.iter().find(|s| s.ends_with(".dsse.json")).unwrap();
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("signatures").join(dsse)).unwrap()).unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["subject"][0]["name"], "tagmanifest-sha256.txt");
}

#[test]
fn identical_files_are_stored_once() {
    let f = Fixture::new();
    std::fs::write(f.path("src/docs/copy-of-notes.txt"), b"notes\n").unwrap();
    let b = f.pack("dir");
    let blobs = std::fs::read_dir(b.join("data/blobs/sha256"))
        .unwrap()
        .count();
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("airlock.json")).unwrap()).unwrap();
    let layers: usize = desc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["layers"].as_array().unwrap().len())
        .sum();
    // 5 manifests (model, two file sets, two SBOMs) + 2 configs (the file sets
    // and SBOMs share the empty config) + distinct layers.
    assert_eq!(blobs, 5 + 2 + layers - 1, "the duplicate file is one blob");
}

#[test]
fn packing_twice_is_byte_identical() {
    let f = Fixture::new();
    let a = f.pack_to("dir", "one");
    let b = f.pack_to("dir", "two");
    assert_eq!(snapshot(&a), snapshot(&b));
    for format in ["tar", "tar.zst"] {
        let a = f.pack_to(format, "one");
        let b = f.pack_to(format, "two");
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{format}"
        );
    }
}

#[test]
fn a_tar_holds_the_directory_bundle_with_blobs_in_path_order() {
    // The tar forms are written straight from the inputs; they must hold
    // exactly the files of the directory form, tag files first, and the
    // blobs in the order of the files they hold (not by digest), so that
    // neighbouring files compress together.
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("src/docs/many")).unwrap();
    for i in 0..40 {
        let text = format!("file {i}\n").repeat(i + 1);
        std::fs::write(f.path(&format!("src/docs/many/f{i:02}.txt")), text).unwrap();
    }
    let dir = f.pack("dir");
    let files: std::collections::BTreeMap<String, Vec<u8>> = snapshot(&dir)
        .into_iter()
        .filter(|(p, _)| !p.ends_with('/'))
        .map(|(p, (bytes, _))| (p, bytes))
        .collect();
    let description: serde_json::Value = serde_json::from_slice(&files["airlock.json"]).unwrap();
    let mut expected: Vec<String> = Vec::new();
    for a in description["artifacts"].as_array().unwrap() {
        for l in a["layers"].as_array().unwrap() {
            let p = format!("data/blobs/sha256/{}", &l["digest"].as_str().unwrap()[7..]);
            if files.contains_key(&p) && !expected.contains(&p) {
                expected.push(p);
            }
        }
    }
    let layer_blobs = expected.len();
    assert!(layer_blobs > 40, "{layer_blobs}");
    let mut rest: Vec<String> = files
        .keys()
        .filter(|p| p.starts_with("data/blobs/") && !expected.contains(p))
        .cloned()
        .collect();
    rest.sort();
    expected.extend(rest);
    for format in ["tar", "tar.zst"] {
        let bundle = f.pack(format);
        let plain = f.path("plain.tar");
        if format == "tar.zst" {
            let bytes = zstd::decode_all(&std::fs::read(&bundle).unwrap()[..]).unwrap();
            std::fs::write(&plain, bytes).unwrap();
        } else {
            std::fs::copy(&bundle, &plain).unwrap();
        }
        let entries = read_tar(&plain);
        let in_tar: std::collections::BTreeMap<String, Vec<u8>> = entries
            .iter()
            .map(|e| (e.path.clone(), e.data.clone()))
            .collect();
        assert_eq!(in_tar.len(), entries.len(), "{format}: a name twice");
        assert_eq!(in_tar, files, "{format}: not the directory's files");
        assert_eq!(entries[0].path, "bagit.txt", "{format}");
        let blobs: Vec<String> = entries
            .iter()
            .map(|e| e.path.clone())
            .filter(|p| p.starts_with("data/blobs/"))
            .collect();
        assert_eq!(blobs, expected, "{format}: blobs not in path order");
        let first_blob = entries
            .iter()
            .position(|e| e.path.starts_with("data/"))
            .unwrap();
        assert!(
            entries[first_blob..]
                .iter()
                .all(|e| e.path.starts_with("data/")),
            "{format}: everything after the first blob is a blob"
        );
    }
}

#[test]
fn inspect_shows_artifacts_signers_and_custody_without_the_payload() {
    let f = Fixture::new();
    let b = f.pack("dir");
    // Inspect reads tag files only: corrupting every blob does not change it.
    for e in std::fs::read_dir(b.join("data/blobs/sha256")).unwrap() {
        std::fs::write(e.unwrap().path(), b"garbage").unwrap();
    }
    let o = run(&["inspect", b.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["name"], "demo");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["bundleId"].as_str().unwrap().len(), 64);
    assert_eq!(v["artifacts"].as_array().unwrap().len(), 5, "3 + 2 SBOMs");
    assert_eq!(v["signers"][0]["signatureOk"], true);
    assert_eq!(v["custody"][0]["event"], "packed");
    let text = stdout(&run(&["inspect", b.to_str().unwrap()]));
    assert!(
        text.contains("model.safetensors") && text.contains("packed"),
        "{text}"
    );
}

#[test]
fn import_export_round_trip_is_byte_identical() {
    let f = Fixture::new();
    let b = f.pack("tar.zst");
    let o = f.import(&b, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let again = f.import(&b, "store");
    assert_eq!(code(&again), 0);
    assert!(stdout(&again).contains("already"), "{}", stdout(&again));

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
    let model_in = snapshot(&f.path("src/models/minilm"));
    let model_out = snapshot(&f.path("out/models/minilm"));
    assert_eq!(
        model_in.keys().collect::<Vec<_>>(),
        model_out.keys().collect::<Vec<_>>()
    );
    for (k, v) in &model_in {
        assert_eq!(v.0, model_out[k].0, "{k}");
    }
    let docs_out = snapshot(&f.path("out/files/docs"));
    for (k, v) in snapshot(&f.path("src/docs")) {
        assert_eq!(v.0, docs_out[&k].0, "{k}");
    }
    let tool = std::fs::read(f.path("out/files/tool.sh")).unwrap();
    assert_eq!(tool, std::fs::read(f.path("src/tool.sh")).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.path("out/files/tool.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executables stay executable");
    }

    let ls = json(&run(&["store", "ls", "--store", &f.s("store"), "--json"]));
    assert_eq!(ls["bundles"][0]["name"], "demo");
    let log = run(&[
        "store",
        "log",
        "--store",
        &f.s("store"),
        "--verify",
        "--json",
    ]);
    assert_eq!(code(&log), 0, "{}", stderr(&log));
    let actions: Vec<String> = json(&log)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["import", "export"]);
    // Exporting over an existing export refuses instead of overwriting.
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo@1.0.0",
        "--to",
        &f.s("out"),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn store_is_an_oci_layout_shared_by_bundles() {
    let f = Fixture::new();
    let b = f.pack("dir");
    assert_eq!(code(&f.import(&b, "store")), 0);
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace("version: 1.0.0", "version: 1.1.0");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let b2 = f.pack("tar");
    let o = f.import(&b2, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&run(&[
        "import",
        b2.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--json",
    ]));
    assert_eq!(v["alreadyPresent"], true);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("store/oci/index.json")).unwrap()).unwrap();
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
        refs.contains(&"demo/1.0.0/models/minilm") && refs.contains(&"demo/1.1.0/models/minilm"),
        "{refs:?}"
    );
    // Same content in both versions: the weights blob is stored once.
    let blobs_in_bundle = std::fs::read_dir(b.join("data/blobs/sha256"))
        .unwrap()
        .count();
    let blobs_in_store = std::fs::read_dir(f.path("store/oci/blobs/sha256"))
        .unwrap()
        .count();
    assert!(blobs_in_store < 2 * blobs_in_bundle);
}

/// Small inputs are written straight to their blob name, large ones copied
/// by the kernel then renamed: either way every blob is named by its sha256,
/// duplicates (small or large) are one blob, every blob is 0644 whatever the
/// input's mode or the umask, and nothing else is left in the bundle or
/// beside it.
#[cfg(unix)]
#[test]
fn small_and_large_inputs_are_blobs_named_by_content_with_mode_0644() {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let docs = f.path("src/docs");
    let noise = |n: usize, seed: u64| -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    // Around the 1 MiB threshold, duplicated on both sides of it.
    for (name, bytes) in [
        ("small-a.txt", b"same small bytes\n".to_vec()),
        ("small-b.txt", b"same small bytes\n".to_vec()),
        ("empty.txt", Vec::new()),
        ("at-limit.bin", noise(1 << 20, 1)),
        ("at-limit-copy.bin", noise(1 << 20, 1)),
        ("over-limit.bin", noise((1 << 20) + 1, 2)),
        ("big-a.bin", noise(3 << 20, 3)),
        ("big-b.bin", noise(3 << 20, 3)),
    ] {
        std::fs::write(docs.join(name), bytes).unwrap();
    }
    std::fs::set_permissions(
        docs.join("small-a.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        docs.join("big-a.bin"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let sha = |bytes: &[u8]| -> String {
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let inputs: std::collections::BTreeSet<String> = walkdir::WalkDir::new(f.path("src"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != "airlock.yaml")
        .map(|e| sha(&std::fs::read(e.path()).unwrap()))
        .collect();
    let bin = airlock().get_program().to_owned();
    let mut bundles = Vec::new();
    for (umask, out) in [("077", "strict"), ("022", "usual")] {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(&bin)
            .args([
                "pack",
                &f.s("src/airlock.yaml"),
                "--key",
                &f.s("keys/builder.key"),
                "--out",
                &f.s(out),
                "--json",
            ])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "umask {umask}: {}", stderr(&o));
        let b = std::path::PathBuf::from(json(&o)["path"].as_str().unwrap());
        let beside: Vec<_> = std::fs::read_dir(f.path(out)).unwrap().collect();
        assert_eq!(beside.len(), 1, "only the bundle is left in --out");
        let v = f.verify(&b);
        assert_eq!(code(&v), 0, "{}", stderr(&v));
        let listed: std::collections::BTreeSet<String> =
            std::fs::read_to_string(b.join("manifest-sha256.txt"))
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once("  "))
                .filter(|(_, p)| p.starts_with("data/blobs/"))
                .map(|(d, _)| d.to_string())
                .collect();
        let mut names = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(b.join("data/blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            assert_eq!(
                name,
                sha(&std::fs::read(e.path()).unwrap()),
                "a blob is named by its content"
            );
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if inputs.contains(&name) {
                assert_eq!(mode, 0o644, "umask {umask}: {name} has mode {mode:o}");
            }
            names.insert(name);
        }
        assert!(
            inputs.iter().all(|d| names.contains(d)),
            "every input is a blob"
        );
        assert_eq!(names, listed, "exactly the listed blobs, each once");
        for (a, b) in [
            ("small-a.txt", "small-b.txt"),
            ("at-limit.bin", "at-limit-copy.bin"),
            ("big-a.bin", "big-b.bin"),
        ] {
            let a = std::fs::read(docs.join(a)).unwrap();
            assert_eq!(a, std::fs::read(docs.join(b)).unwrap());
            assert!(
                names.contains(&sha(&a)),
                "duplicate pair stored as one blob"
            );
        }
        bundles.push(b);
    }
    let input_blobs = |b: &std::path::Path| {
        let mut s = snapshot(&b.join("data/blobs/sha256"));
        s.retain(|name, _| inputs.contains(name));
        s
    };
    assert_eq!(
        input_blobs(&bundles[0]),
        input_blobs(&bundles[1]),
        "the umask changes no input blob"
    );
}
