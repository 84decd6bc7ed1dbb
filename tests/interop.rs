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

/// The command lines VERIFY.txt gives under step `n` (its lines indented by
/// five spaces, until the next numbered step or unindented paragraph).
fn verify_txt_step(text: &str, n: u32) -> String {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with(&format!("{n}. ")) {
            inside = true;
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with(' ') {
            break;
        }
        if inside {
            if let Some(cmd) = line.strip_prefix("     ") {
                lines.push(cmd.to_string());
            }
        }
    }
    assert!(!lines.is_empty(), "VERIFY.txt has no commands in step {n}");
    lines.join("\n") + "\n"
}

fn sh(script: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("sh");
    c.arg("-ec").arg(script).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn verify_txt_volume_lines_reassemble_split_blobs_for_sha256sum() {
    let f = Fixture::new();
    // A 1.2 MB incompressible weights file, split across 400 kB volumes.
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
        f.path("src/models/minilm/model-00002.safetensors"),
        safetensors_wrap(&big),
    )
    .unwrap();
    for (format, out) in [("tar", "vols"), ("tar.zst", "zvols")] {
        let o = f.pack_with(format, out, &["--volume-size", "400000"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let first = json(&o)["paths"][0].as_str().unwrap().to_string();
        let work = f.path(&format!("untar-{format}"));
        std::fs::create_dir_all(&work).unwrap();
        // VERIFY.txt as the first volume carries it.
        ok(tool("tar")
            .args(["-xf", &first, "VERIFY.txt"])
            .current_dir(f.root()));
        let text = std::fs::read_to_string(f.path("VERIFY.txt")).unwrap();
        std::fs::remove_file(f.path("VERIFY.txt")).unwrap();
        let step6 = verify_txt_step(&text, 6);
        // Without the joining line, sha256sum -c fails on the split blob.
        let untar_only = step6.lines().next().unwrap();
        let o = sh(untar_only, &work, &[("VOLS", &f.s(out))]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let parts = walkdir::WalkDir::new(work.join("data"))
            .into_iter()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".part")
            })
            .count();
        assert!(parts >= 3, "the big blob is split: {parts} parts");
        assert!(!sh("sha256sum -c --quiet manifest-sha256.txt", &work, &[])
            .status
            .success());
        std::fs::remove_dir_all(&work).unwrap();
        std::fs::create_dir_all(&work).unwrap();

        // Exactly the lines VERIFY.txt gives, then step 1's line.
        let o = sh(&step6, &work, &[("VOLS", &f.s(out))]);
        assert!(
            o.status.success(),
            "{step6}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let step1 = verify_txt_step(&text, 1);
        let o = sh(&step1, &work, &[]);
        assert!(
            o.status.success(),
            "{format}: {step1}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let leftover = walkdir::WalkDir::new(work.join("data"))
            .into_iter()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".part")
            })
            .count();
        assert_eq!(leftover, 0, "parts are removed once joined");
    }
}

#[test]
fn verify_txt_dsse_lines_check_the_envelope_with_openssl_and_securesystemslib() {
    let has_ssl = Command::new("python3")
        .args([
            "-c",
            "import securesystemslib.dsse, securesystemslib.signer",
        ])
        .status()
        .unwrap();
    assert!(
        has_ssl.success(),
        "python securesystemslib is not installed; run the tests through scripts/test"
    );
    let f = Fixture::new();
    let b = f.pack("dir");
    let text = std::fs::read_to_string(b.join("VERIFY.txt")).unwrap();
    let step4 = verify_txt_step(&text, 4);
    // The signer's public keys, as the high side has them from a trusted channel.
    for (from, to) in [
        ("keys/builder.pub", "builder.pub"),
        ("keys/builder.ssh.pub", "builder.ssh.pub"),
    ] {
        std::fs::copy(f.path(from), b.join(to)).unwrap();
    }
    // The key id the documented command computes is the one airlock uses.
    let id_line = step4.lines().next().unwrap();
    let o = sh(id_line, &b, &[]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(o.status.success() && id.len() == 32, "{id_line}: {id}");
    assert!(b.join(format!("signatures/{id}.dsse.json")).is_file());
    let envelope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.join(format!("signatures/{id}.dsse.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(envelope["signatures"][0]["keyid"], id.as_str());

    let script = step4.replace("<key-id>", &id);
    let o = sh(&script, &b, &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{script}\n{out}");
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    assert!(out.contains("DSSE signature OK"), "{out}");

    // The same lines fail on a tampered envelope: securesystemslib and openssl both refuse.
    let path = b.join(format!("signatures/{id}.dsse.json"));
    let mut e = envelope.clone();
    let sig = e["signatures"][0]["sig"].as_str().unwrap().to_string();
    let mut raw = base64_decode(&sig);
    raw[0] ^= 1;
    e["signatures"][0]["sig"] = base64_encode(&raw).into();
    std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines.len(), 4, "{script}");
    assert!(sh(lines[1], &b, &[]).status.success(), "extracts again");
    for line in &lines[2..] {
        assert!(
            !sh(line, &b, &[]).status.success(),
            "accepted a bad signature: {line}"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import base64,sys; sys.stdout.buffer.write(base64.b64decode(sys.argv[1]))",
            s,
        ])
        .output()
        .unwrap();
    o.stdout
}

fn base64_encode(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let o = Command::new("python3")
        .args([
            "-c",
            "import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())",
            &hex,
        ])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A tar and a tar.zst are written in one pass over the inputs (placeholder
/// headers patched, duplicates cut back, the tag files put in front): GNU
/// tar and `zstd -d | tar` read them, list every blob once in the same order,
/// and `sha256sum -c` passes on what they extract.
#[test]
fn single_pass_tar_and_tar_zst_with_duplicate_inputs_extract_with_stock_tools() {
    let f = Fixture::new();
    // Two identical large inputs (streamed, the second cut back) and two
    // identical small ones.
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let big: Vec<u8> = (0..1_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect();
    std::fs::write(f.path("src/docs/big-a.bin"), &big).unwrap();
    std::fs::write(f.path("src/docs/sub/big-b.bin"), &big).unwrap();
    std::fs::write(f.path("src/docs/copy.txt"), b"step one\nstep two\n").unwrap();
    // Full-entropy bytes: stored in the tar.zst as a frame of raw blocks.
    let mut noise: Vec<u8> = (0..2_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    noise[0] = b'N';
    std::fs::write(f.path("src/docs/noise.bin"), &noise).unwrap();
    let dir = f.pack("dir");
    let tar = f.pack("tar");
    let zst = f.pack("tar.zst");
    let dir_blobs = std::fs::read_dir(dir.join("data/blobs/sha256"))
        .unwrap()
        .count();
    let list = ok(tool("tar").arg("-tf").arg(&tar));
    let zlist = ok(Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -tf -", zst.display())));
    assert_eq!(list, zlist, "the tar and the tar.zst list the same entries");
    let names: Vec<&str> = list.lines().collect();
    assert_eq!(names[0], "bagit.txt");
    let blobs: Vec<&&str> = names
        .iter()
        .filter(|n| n.starts_with("data/blobs/sha256/"))
        .collect();
    assert_eq!(blobs.len(), dir_blobs, "every blob once: {names:?}");
    let big_blob = format!("data/blobs/sha256/{}", sha256_hex(&big));
    assert!(names.contains(&big_blob.as_str()), "{names:?}");
    // The plain tar begins with a pax header (a comment padding the tag
    // files to 4096 bytes): bsdtar and Python's tarfile list the same
    // entries, and nothing warns (`ok` keeps stderr).
    // The noise is stored, not grown by a failed compression.
    let (tar_len, zst_len) = (
        std::fs::metadata(&tar).unwrap().len(),
        std::fs::metadata(&zst).unwrap().len(),
    );
    assert!(zst_len < tar_len, "{zst_len} {tar_len}");
    let zbytes = std::fs::read(&zst).unwrap();
    let stored_frame = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38];
    assert!(
        zbytes.windows(6).any(|w| w == stored_frame),
        "a frame of raw blocks (which stock zstd reads below)"
    );
    let raw = std::fs::read(&tar).unwrap();
    assert_eq!(raw[156], b'x', "the tar begins with its pax padding");
    let blist = ok(tool("bsdtar").arg("-tf").arg(&tar));
    assert_eq!(blist, list, "bsdtar lists what GNU tar lists");
    let plist = ok(Command::new("python3")
        .arg("-c")
        .arg("import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name)")
        .arg(&tar));
    assert_eq!(plist, list, "Python's tarfile lists what GNU tar lists");
    let py_extract =
        "import sys, tarfile\ntarfile.open(sys.argv[1]).extractall('.', filter='data')";
    for (i, cmd) in [
        format!("tar -xf '{}'", tar.display()),
        format!("zstd -dc '{}' | tar -xf -", zst.display()),
        format!("bsdtar -xf '{}'", tar.display()),
        format!("python3 -c \"{py_extract}\" '{}'", tar.display()),
    ]
    .iter()
    .enumerate()
    {
        let out = f.path(&format!("x{i}"));
        std::fs::create_dir_all(&out).unwrap();
        ok(Command::new("sh").arg("-c").arg(cmd).current_dir(&out));
        for m in ["tagmanifest-sha256.txt", "manifest-sha256.txt"] {
            ok(tool("sha256sum").arg("-c").arg(m).current_dir(&out));
        }
        assert_eq!(std::fs::read(out.join(&big_blob)).unwrap(), big);
        let noise_blob = format!("data/blobs/sha256/{}", sha256_hex(&noise));
        assert_eq!(std::fs::read(out.join(&noise_blob)).unwrap(), noise);
        // Nothing but the bundle's files: no file from the pax header.
        let mut top: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(
            top,
            [
                "VERIFY.txt",
                "airlock.json",
                "bag-info.txt",
                "bagit.txt",
                "custody",
                "data",
                "manifest-sha256.txt",
                "signatures",
                "tagmanifest-sha256.txt"
            ],
            "{cmd}"
        );
        ok(Command::new("python3")
            .args(["-m", "bagit", "--validate"])
            .arg(&out));
    }
    for b in [&tar, &zst] {
        let o = run(&[
            "verify",
            b.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
        ]);
        assert_eq!(code(&o), 0, "{}: {}", b.display(), stderr(&o));
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    o.stdin.as_ref().unwrap().write_all(bytes).unwrap();
    let out = o.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}
