//! Volumes sized for physical media: each a valid tar that verifies alone,
//! blobs split across volumes, faults reported by volume number.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const SIZE: u64 = 400_000;

/// The fixture plus a 1.2 MB incompressible weights file, packed into volumes.
fn volumes(f: &Fixture, format: &str, out: &str) -> (String, Vec<PathBuf>) {
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
    let o = f.pack_with(format, out, &["--volume-size", &SIZE.to_string()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let paths: Vec<PathBuf> = v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    (v["bundleId"].as_str().unwrap().to_string(), paths)
}

fn verify_args(f: &Fixture, paths: &[&Path]) -> std::process::Output {
    let mut args = vec!["verify".to_string()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(["--trust".to_string(), f.s("policy.yaml")]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

#[test]
fn volumes_fit_the_size_carry_tags_and_verify_alone() {
    let f = Fixture::new();
    let (id, paths) = volumes(&f, "tar", "vols");
    assert!(paths.len() >= 4, "1.5 MB into 400 kB volumes: {paths:?}");
    for (i, p) in paths.iter().enumerate() {
        assert!(p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(&format!(".vol{:03}.tar", i + 1)));
        assert!(
            std::fs::metadata(p).unwrap().len() <= SIZE,
            "{} is over the volume size",
            p.display()
        );
        let names: Vec<String> = read_tar(p).into_iter().map(|e| e.path).collect();
        for tag in [
            "bagit.txt",
            "tagmanifest-sha256.txt",
            "airlock.json",
            "volumes.dsse.json",
            "volume.json",
        ] {
            assert!(
                names.iter().any(|n| n == tag),
                "{} lacks {tag}",
                p.display()
            );
        }
        assert!(names.iter().any(|n| n.starts_with("signatures/")));
        let o = verify_args(&f, &[p]);
        assert_eq!(code(&o), 0, "volume {} alone: {}", i + 1, stderr(&o));
    }
    let split: Vec<String> = paths
        .iter()
        .flat_map(|p| read_tar(p))
        .map(|e| e.path)
        .filter(|n| n.contains(".part"))
        .collect();
    assert!(
        split.len() >= 2,
        "the big blob is split into parts: {split:?}"
    );
    // Same id as the other forms.
    let dir = f.pack("dir");
    assert_eq!(
        json(&run(&["inspect", dir.to_str().unwrap(), "--json"]))["bundleId"],
        id
    );
    let o = run(&[
        "verify",
        &f.s("vols"),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["bundleId"], id);
}

#[test]
fn compressed_volumes_fit_and_verify() {
    let f = Fixture::new();
    let (_, paths) = volumes(&f, "tar.zst", "vols");
    for p in &paths {
        assert!(p.to_str().unwrap().ends_with(".tar.zst"));
        assert!(std::fs::metadata(p).unwrap().len() <= SIZE);
    }
    let o = run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn packing_volumes_twice_is_byte_identical() {
    let f = Fixture::new();
    let (_, a) = volumes(&f, "tar", "one");
    let (_, b) = volumes(&f, "tar", "two");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
}

#[test]
fn a_missing_volume_is_reported_by_number() {
    let f = Fixture::new();
    let (_, paths) = volumes(&f, "tar", "vols");
    std::fs::remove_file(&paths[1]).unwrap();
    let o = run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("volume 2 of {}", paths.len())),
        "{}",
        stderr(&o)
    );
    // Import refuses an incomplete set and leaves no store content behind.
    let o = f.import(&f.path("vols"), "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(!f.path("store/bundles/demo").exists());
}

#[test]
fn a_corrupt_volume_is_reported_by_number_and_the_rest_still_checked() {
    let f = Fixture::new();
    let (_, paths) = volumes(&f, "tar", "vols");
    // Flip one byte inside a payload part of volume 3.
    let mut entries = read_tar(&paths[2]);
    let e = entries
        .iter_mut()
        .find(|e| e.path.starts_with("data/") && e.data.len() > 100)
        .expect("payload in volume 3");
    e.data[50] ^= 0xff;
    write_tar(&paths[2], &entries);
    let o = run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(err.contains("volume 3 ("), "{err}");
    assert!(
        !err.contains("volume 1 ("),
        "intact volumes are not blamed: {err}"
    );
    // Verifying volume 1 alone still passes.
    assert_eq!(code(&verify_args(&f, &[&paths[0]])), 0);
}

#[test]
fn a_volume_of_another_bundle_and_a_duplicate_are_reported() {
    let f = Fixture::new();
    let (_, paths) = volumes(&f, "tar", "vols");
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace("version: 1.0.0", "version: 1.0.1");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let (_, other) = volumes(&f, "tar", "other");
    let o = verify_args(&f, &[&paths[0], &other[1], &paths[2]]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("belongs to another bundle"),
        "{}",
        stderr(&o)
    );
    let dup = f.path("vols/demo-1.0.0.vol099.tar");
    std::fs::copy(&paths[1], &dup).unwrap();
    let o = run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("volume 2 given twice"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn import_reads_volumes_in_place_and_exports_identical_content() {
    let f = Fixture::new();
    let (id, _) = volumes(&f, "tar.zst", "vols");
    let before = snapshot(&f.path("vols"));
    let o = run(&[
        "import",
        &f.s("vols"),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["bundleId"], id);
    assert_eq!(
        snapshot(&f.path("vols")),
        before,
        "nothing is written beside the volumes"
    );
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
        std::fs::read(f.path("out/models/minilm/model-00002.safetensors")).unwrap(),
        std::fs::read(f.path("src/models/minilm/model-00002.safetensors")).unwrap()
    );
    // No staging left in the store.
    let leftovers: Vec<_> = std::fs::read_dir(f.path("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn too_small_a_volume_size_is_a_usage_error() {
    let f = Fixture::new();
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("v"),
        "--volume-size",
        "10KB",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("too small"), "{}", stderr(&o));
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("v"),
        "--volume-size",
        "4.7 parsecs",
    ]);
    assert_eq!(code(&o), 2);
}

/// Fuzz finding 3 (fuzz/README.md): one volume whose `manifest-sha256.txt`
/// has one byte changed in a path (the signatures and the signed volume map
/// still verify) made `verify` panic (exit 101). It is refused, naming what
/// is wrong.
#[test]
fn a_volume_with_a_damaged_payload_manifest_is_refused_not_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run(&[
        "verify",
        root.join("fuzz/artifacts-found/volume-plan-panic/tiny-1.0.0.vol001.tar")
            .to_str()
            .unwrap(),
        "--trust",
        root.join("keys/demo-trust-policy.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("manifest-sha256.txt: sha256 mismatch"),
        "{}",
        stderr(&o)
    );
}

/// A volume verified alone hashes a split blob's first part once (no
/// whole-blob hash it could never finish) and still finds that part damaged
/// against the signed volume map; the whole set finds it too.
#[test]
fn a_damaged_first_part_is_found_when_its_volume_is_checked_without_the_rest() {
    let f = Fixture::new();
    let (_, paths) = volumes(&f, "tar", "vols");
    let holder = paths
        .iter()
        .position(|p| read_tar(p).iter().any(|e| e.path.ends_with(".part001")))
        .expect("a volume holds a first part");
    assert_eq!(code(&verify_args(&f, &[&paths[holder]])), 0);
    let mut entries = read_tar(&paths[holder]);
    let e = entries
        .iter_mut()
        .find(|e| e.path.ends_with(".part001"))
        .unwrap();
    e.data[7] ^= 0x01;
    write_tar(&paths[holder], &entries);
    let all: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    for given in [vec![paths[holder].as_path()], all] {
        let o = verify_args(&f, &given);
        assert_eq!(code(&o), 1, "{given:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(".part001") && err.contains("sha256 mismatch"),
            "{given:?}: {err}"
        );
    }
}

#[test]
fn a_volume_with_an_8_gib_gnu_long_name_is_refused_before_it_is_read() {
    let f = Fixture::new();
    let (_, paths) = volumes(&f, "tar", "vols");
    // In front of the second volume: a long-name header declaring 8 GiB, then
    // 128 MiB of data (a reader that takes the name whole reads all of it).
    let declared: u64 = 8 << 30;
    let real = 128usize << 20;
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(declared);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.resize(512 + real, b'a');
    bytes.extend(std::fs::read(&paths[1]).unwrap());
    std::fs::write(&paths[1], bytes).unwrap();
    let mut args = vec!["verify".to_string()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(["--trust".to_string(), f.s("policy.yaml")]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (o, peak) = run_measured(&refs);
    let err = stderr(&o);
    assert!(
        peak < real as u64 / 2,
        "peak memory {peak} bytes: the long name was read; stderr:\n{err}"
    );
    assert_eq!(code(&o), 1, "{err}");
    let subject = format!("{}: ././@LongLink: ", paths[1].display());
    assert!(
        err.lines().any(|l| l.trim_start().starts_with(&subject)
            && l.contains(&format!("declares {declared} bytes"))),
        "no finding about the long name in volume 2; stderr:\n{err}"
    );
}

/// A file set's OCI manifest split across volumes (about 1.4 MB for 6000
/// files) is parsed as its parts stream by and checked against the
/// description: the set verifies and imports, which it would not if the
/// manifest were not read (a manifest not read is a finding).
#[test]
fn a_file_set_manifest_split_across_volumes_is_checked_as_it_streams() {
    use base64::Engine;
    let f = Fixture::new();
    for i in 0..6000 {
        std::fs::write(f.path(&format!("src/docs/n{i:05}.txt")), format!("{i}\n")).unwrap();
    }
    let o = f.pack_with("tar", "vols", &["--volume-size", "5MB"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let paths: Vec<PathBuf> = json(&o)["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    // The layout this test is about: the file set's manifest in parts.
    let member = |name: &str| -> Vec<u8> {
        let mut t = tar::Archive::new(std::fs::File::open(&paths[0]).unwrap());
        let mut e = t
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some(name))
            .unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut out).unwrap();
        out
    };
    let d: serde_json::Value = serde_json::from_slice(&member("airlock.json")).unwrap();
    let files = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "files")
        .unwrap();
    let manifest = format!(
        "data/blobs/sha256/{}",
        files["manifest"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    let envelope: serde_json::Value = serde_json::from_slice(&member("volumes.dsse.json")).unwrap();
    let map = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let map = String::from_utf8(map).unwrap();
    let parts = map.matches(&format!("\"path\":\"{manifest}\"")).count()
        + map.matches(&format!("\"path\": \"{manifest}\"")).count();
    assert!(parts >= 2, "the manifest is split: {parts} pieces");
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let o = verify_args(&f, &refs);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut args = vec!["import".to_string()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(["--trust", &f.s("policy.yaml"), "--store", &f.s("store")].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&refs);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
