//! `--store s3://BUCKET/PREFIX` against a real S3-compatible server: moto's
//! server mode (`python3 -m moto.server`, PyPI `moto[server]`, installed by
//! scripts/test) on a loopback port, one per test. Covers import, export,
//! push, `store ls` / `store log`, two importers at once, an import killed
//! in the middle of a multipart upload and at the commit point, a missing
//! bucket, wrong credentials, and that no credential reaches any output or
//! any object in the bucket.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY_ID: &str = "AKIAAIRLOCKTESTKEY77";
const SECRET: &str = "airlock-test-secret-5fQ2xWv9";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's S3 server on a loopback port; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        Self::start_env(&[])
    }

    fn start_env(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut m = Moto { child, port };
        let start = Instant::now();
        while !m.answers() {
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!("moto server exited ({st}); scripts/test installs moto[server] from PyPI");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        m
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.")
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `script` with boto3 client `s3` on this server; returns stdout.
    fn py(&self, script: &str) -> String {
        self.py_as(KEY_ID, SECRET, script)
    }

    fn py_as(&self, key: &str, secret: &str, script: &str) -> String {
        let prelude = format!(
            "import boto3, json, sys\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{key}', aws_secret_access_key='{secret}')\n",
            self.endpoint()
        );
        let o = Command::new("python3")
            .args(["-c", &format!("{prelude}{script}")])
            .output()
            .expect("python3 runs");
        assert!(
            o.status.success(),
            "boto3 script failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn make_bucket(&self, bucket: &str) {
        self.py(&format!("s3.create_bucket(Bucket='{bucket}')"));
    }

    /// Every key in `bucket`.
    fn keys(&self, bucket: &str) -> Vec<String> {
        let out = self.py(&format!(
            "p = s3.get_paginator('list_objects_v2')\nfor page in p.paginate(Bucket='{bucket}'):\n    for o in page.get('Contents', []): print(o['Key'])"
        ));
        out.lines().map(str::to_string).collect()
    }

    /// Multipart uploads begun and neither completed nor aborted.
    fn open_uploads(&self, bucket: &str) -> usize {
        self.py(&format!(
            "print(len(s3.list_multipart_uploads(Bucket='{bucket}').get('Uploads', [])))"
        ))
        .trim()
        .parse()
        .unwrap()
    }

    /// The concatenated bytes of every object in `bucket`.
    fn all_bytes(&self, bucket: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("all");
        self.py(&format!(
            "f = open('{}', 'wb')\np = s3.get_paginator('list_objects_v2')\nfor page in p.paginate(Bucket='{bucket}'):\n    for o in page.get('Contents', []): f.write(s3.get_object(Bucket='{bucket}', Key=o['Key'])['Body'].read())\nf.close()",
            out.display()
        ));
        std::fs::read(out).unwrap()
    }

    /// airlock with this server's endpoint and the test credentials.
    fn airlock(&self) -> assert_cmd::Command {
        let mut c = airlock();
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env());
        c
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ]
    }

    fn run(&self, args: &[&str]) -> Output {
        let o = self.airlock().args(args).output().unwrap();
        assert_clean(&o);
        o
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No credential in a command's output.
#[track_caller]
fn assert_clean(o: &Output) {
    for out in [stdout(o), stderr(o)] {
        assert!(
            !out.contains(SECRET) && !out.contains(KEY_ID),
            "a credential was printed: {out}"
        );
    }
}

fn import(m: &Moto, f: &Fixture, bundle: &Path, store: &str) -> Output {
    m.run(&[
        "import",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        store,
        "--json",
    ])
}

/// The fixture with weights large enough for a multipart upload (3 parts).
fn big_fixture() -> Fixture {
    let f = Fixture::new();
    let weights: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(
        f.path("src/models/minilm/model.safetensors"),
        safetensors_wrap(&weights),
    )
    .unwrap();
    f
}

fn ls(m: &Moto, store: &str) -> Vec<(String, String)> {
    let o = m.run(&["store", "ls", "--store", store, "--json"]);
    assert_eq!(code(&o), 0, "store ls: {}", stderr(&o));
    json(&o)["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn log_verified(m: &Moto, store: &str) -> Vec<serde_json::Value> {
    let o = m.run(&["store", "log", "--store", store, "--verify", "--json"]);
    assert_eq!(code(&o), 0, "store log --verify: {}", stderr(&o));
    json(&o)["entries"].as_array().unwrap().clone()
}

#[test]
fn import_export_ls_log_and_no_credential_anywhere() {
    let m = Moto::start();
    m.make_bucket("high");
    let f = big_fixture();
    let bundle = f.pack("tar");
    let store = "s3://high/site/a";

    let o = import(&m, &f, &bundle, store);
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["store"], store, "the store is shown as its URL only");
    let written = j["blobsWritten"].as_u64().unwrap();
    assert!(written > 0);

    let keys = m.keys("high");
    let blobs: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("site/a/oci/blobs/sha256/"))
        .collect();
    assert_eq!(blobs.len() as u64, written, "{keys:?}");
    for k in [
        "site/a/oci/oci-layout",
        "site/a/oci/index.json",
        "site/a/bundles/demo/1.0.0/record.json",
        "site/a/ledger/00000000000000000001",
        "site/a/ledger.head",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("/staging/") || k.ends_with("/lock")),
        "nothing in flight is left: {keys:?}"
    );
    assert_eq!(
        m.open_uploads("high"),
        0,
        "every multipart upload completed"
    );

    // Again: already present, nothing written.
    let again = import(&m, &f, &bundle, store);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(json(&again)["alreadyPresent"], true);

    assert_eq!(ls(&m, store), [("demo".into(), "1.0.0".into())]);
    let log = log_verified(&m, store);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "import");
    let human = m.run(&["store", "log", "--store", store]);
    assert!(
        stdout(&human).contains("imported demo 1.0.0"),
        "{}",
        stdout(&human)
    );

    // Export streams the blobs back out of the bucket, byte for byte.
    let out = f.path("exported");
    let e = m.run(&[
        "export",
        "demo",
        "--store",
        store,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&e), 0, "export: {}", stderr(&e));
    for rel in [
        "models/minilm/model.safetensors",
        "models/minilm/config.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(rel)).unwrap(),
            std::fs::read(f.path(&format!("src/{rel}"))).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read(out.join("files/docs/runbook.txt")).unwrap(),
        b"step one\nstep two\n"
    );

    // The export is in the ledger too.
    assert_eq!(log_verified(&m, store).len(), 2);

    // The store states what it holds (a base for delta bundles): its id is
    // created once in the bucket and kept.
    let key = f.s("keys/builder.key");
    let mut ids = Vec::new();
    for out in ["have.json", "have2.json"] {
        let o = m.run(&[
            "store",
            "receipt",
            "--store",
            store,
            "--key",
            &key,
            "--out",
            f.path(out).to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code(&o), 0, "store receipt: {}", stderr(&o));
        assert_clean(&o);
        let j = json(&o);
        assert_eq!(j["blobCount"].as_u64().unwrap(), written);
        ids.push(j["storeId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1], "the store id is kept");
    assert!(m.keys("high").iter().any(|k| k == "site/a/store-id"));
    assert!(
        log_verified(&m, store).len() >= 4,
        "receipts are in the ledger"
    );

    // No credential in any object the store wrote (ledger, records, index).
    let all = m.all_bytes("high");
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("imported demo 1.0.0"), "the ledger was read");
    assert!(!text.contains(SECRET) && !text.contains(KEY_ID));
}

#[test]
fn two_importers_at_once_lose_nothing() {
    let m = Moto::start();
    m.make_bucket("shared");
    let f = Fixture::new();
    let a = f.pack_to("tar", "dist-a");
    let manifest = std::fs::read_to_string(f.path("src/airlock.yaml")).unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        manifest.replace("name: demo", "name: other"),
    )
    .unwrap();
    let b = f.pack_to("tar", "dist-b");
    let store = "s3://shared/hs";

    // Two processes, as on two hosts: nothing local is shared but the bucket.
    let spawn = |bundle: &Path| {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("airlock"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.envs(m.env())
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args([
                "import",
                bundle.to_str().unwrap(),
                "--trust",
                &f.s("policy.yaml"),
                "--store",
                store,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a), spawn(&b));
    for p in [pa, pb] {
        let o = p.wait_with_output().unwrap();
        assert_clean(&o);
        assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    }
    assert_eq!(
        ls(&m, store),
        [
            ("demo".to_string(), "1.0.0".to_string()),
            ("other".to_string(), "1.0.0".to_string())
        ]
    );
    let log = log_verified(&m, store);
    let mut names: Vec<&str> = log
        .iter()
        .filter(|e| e["action"] == "import")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["demo", "other"], "{log:?}");
    assert_eq!(log.len(), 2);
}

#[test]
fn killed_import_leaves_no_bundle_and_nothing_billable() {
    let m = Moto::start();
    m.make_bucket("high");
    let f = big_fixture();
    let bundle = f.pack("tar");
    let store = "s3://high/hs";

    // Killed after the first part of the large blob's multipart upload.
    let o = m
        .airlock()
        .env("AIRLOCK_FAILPOINT", "s3-part")
        .args([
            "import",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            store,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), None, "killed: {}", stderr(&o));
    assert_eq!(m.open_uploads("high"), 1, "the upload was in flight");
    let keys = m.keys("high");
    assert!(
        keys.iter().any(|k| k.starts_with("hs/staging/")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k == "hs/lock"),
        "the lease is left: {keys:?}"
    );

    // The next command takes over the dead process's lease and recovers.
    assert!(ls(&m, store).is_empty());
    assert_eq!(m.open_uploads("high"), 0, "the upload was aborted");
    let keys = m.keys("high");
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("hs/staging/") || k == "hs/lock"),
        "{keys:?}"
    );
    assert!(log_verified(&m, store).is_empty());

    // Killed at the commit point: record and ledger line written, head not.
    let o = m
        .airlock()
        .env("AIRLOCK_FAILPOINT", "head")
        .args([
            "import",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            store,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), None, "killed: {}", stderr(&o));
    let keys = m.keys("high");
    assert!(keys
        .iter()
        .any(|k| k == "hs/bundles/demo/1.0.0/record.json"));
    assert!(keys.iter().any(|k| k == "hs/ledger/00000000000000000001"));
    assert!(ls(&m, store).is_empty(), "uncommitted: not visible");
    let keys = m.keys("high");
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("hs/bundles/") || k.starts_with("hs/ledger/")),
        "recovery removed the uncommitted record and ledger line: {keys:?}"
    );
    assert!(log_verified(&m, store).is_empty());

    // A re-import works and commits.
    let o = import(&m, &f, &bundle, store);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ls(&m, store), [("demo".into(), "1.0.0".into())]);
    assert_eq!(log_verified(&m, store).len(), 1);
}

#[test]
fn missing_bucket_and_wrong_credentials_are_exit_2() {
    let m = Moto::start();
    let f = Fixture::new();
    let bundle = f.pack("tar");
    let o = import(&m, &f, &bundle, "s3://no-such-bucket/hs");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("s3://no-such-bucket/hs: bucket no-such-bucket does not exist"),
        "{}",
        stderr(&o)
    );
    let o = m.run(&["store", "ls", "--store", "s3://no-such-bucket"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));

    // A bucket without a store: store commands say so.
    m.make_bucket("empty");
    let o = m.run(&["store", "log", "--store", "s3://empty/x"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("s3://empty/x: no such store"),
        "{}",
        stderr(&o)
    );

    // moto checking signatures against its IAM users (the first 3 requests,
    // which create the user, are let through).
    let auth = Moto::start_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let made = auth.py_as(
        "x",
        "y",
        "iam = boto3.client('iam', endpoint_url=s3.meta.endpoint_url, region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='y')\niam.create_user(UserName='u')\nk = iam.create_access_key(UserName='u')['AccessKey']\niam.put_user_policy(UserName='u', PolicyName='s3', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}))\nprint(k['AccessKeyId'], k['SecretAccessKey'])",
    );
    let (id, secret) = made.trim().split_once(' ').unwrap();
    auth.py_as(id, secret, "s3.create_bucket(Bucket='guarded')");
    for (key, wrong) in [(KEY_ID, SECRET), (id, SECRET)] {
        // An unknown key id, then a known id with a wrong secret.
        let o = auth
            .airlock()
            .env("AWS_ACCESS_KEY_ID", key)
            .args([
                "import",
                bundle.to_str().unwrap(),
                "--trust",
                &f.s("policy.yaml"),
                "--store",
                "s3://guarded/hs",
            ])
            .env("AWS_SECRET_ACCESS_KEY", wrong)
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert_eq!(
            stderr(&o).trim(),
            "airlock: s3://guarded/hs: access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), and that they may use this bucket"
        );
        assert!(!stderr(&o).contains(key) && !stderr(&o).contains(wrong));
    }
}

/// Debian's docker-registry on a loopback port (as in tests/images.rs).
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/test installs it)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "registry down");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn push_streams_from_the_bucket_to_a_registry() {
    let m = Moto::start();
    m.make_bucket("high");
    let reg = Registry::start();
    let f = big_fixture();
    let bundle = f.pack("tar");
    let store = "s3://high/hs";
    let o = import(&m, &f, &bundle, store);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let host = format!("127.0.0.1:{}", reg.port);
    let o = m.run(&[
        "push",
        "--store",
        store,
        "--bundle",
        "demo@1.0.0",
        "--registry",
        &format!("{host}/mirror"),
        "--insecure",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "push: {}", stderr(&o));
    let j = json(&o);
    assert!(j["blobsSent"].as_u64().unwrap() > 0, "{j}");
    let model = j["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["reference"].as_str().unwrap().contains("/models/minilm:"))
        .unwrap_or_else(|| panic!("model pushed: {j}"))
        .clone();
    // Its referrers: the SBOMs, and the signatures and custody events the
    // bucket's record holds.
    let subject = format!(
        "{}@{}",
        model["reference"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .0,
        model["digest"].as_str().unwrap()
    );
    let mut types: Vec<&str> = j["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["subject"] == subject.as_str())
        .map(|r| r["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.airlock.custody.v1+json",
            "application/vnd.airlock.signatures.v1+json",
            "application/vnd.cyclonedx+json"
        ],
        "{j}"
    );
    // The registry serves the manifest under the reported digest and the
    // weights byte for byte.
    let weights = std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap();
    let checked = Command::new("python3")
        .args([
            "-c",
            "import sys, json, hashlib, urllib.request as u
host, digest, size, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
req = u.Request(f'http://{host}/v2/mirror/demo/models/minilm/manifests/{digest}', headers={'Accept': 'application/vnd.oci.image.manifest.v1+json'})
raw = u.urlopen(req).read()
assert 'sha256:' + hashlib.sha256(raw).hexdigest() == digest
layers = [l for l in json.loads(raw)['layers'] if l['size'] == size]
assert layers, 'no layer of the weights size'
blob = u.urlopen(f'http://{host}/v2/mirror/demo/models/minilm/blobs/' + layers[0]['digest']).read()
assert hashlib.sha256(blob).hexdigest() == want, 'weights differ'
print('ok')",
            &host,
            model["digest"].as_str().unwrap(),
            &weights.len().to_string(),
            &sha256_hex(&weights),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&checked.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let log = log_verified(&m, store);
    assert_eq!(log.last().unwrap()["action"], "push");
}

fn sha256_hex(b: &[u8]) -> String {
    let o = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&o.stdout)[..64].to_string()
}

/// A bundle of many files: its description is over the 1 MiB that verify
/// holds in memory, so import streams it from the file it was spilled to
/// while verified. The record in the bucket
/// holds them byte for byte, and it checks.
#[test]
fn a_record_with_spilled_tag_files_is_stored_byte_for_byte() {
    let m = Moto::start();
    m.make_bucket("high");
    let f = Fixture::new();
    let many = f.path("src/many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..6000 {
        std::fs::write(many.join(format!("file-{i:05}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(
        f.path("src/airlock.yaml"),
        "apiVersion: airlock/v1\nkind: Bundle\nmetadata: {name: many, version: 1.0.0}\nfiles:\n  - path: many\n",
    )
    .unwrap();
    let bundle = f.pack("dir");
    let store = "s3://high/site/b";
    let o = import(&m, &f, &bundle, store);
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    for name in ["airlock.json", "manifest-sha256.txt"] {
        let want = std::fs::read(bundle.join(name)).unwrap();
        if name == "airlock.json" {
            assert!(want.len() > 1 << 20, "{name} is only {} bytes", want.len());
        }
        let got = f.path(&format!("got-{name}"));
        m.py(&format!(
            "open('{}', 'wb').write(s3.get_object(Bucket='high', Key='site/b/bundles/many/1.0.0/{name}')['Body'].read())",
            got.display()
        ));
        assert!(
            std::fs::read(&got).unwrap() == want,
            "{name} differs in the bucket"
        );
    }
    let log = log_verified(&m, store);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "import");
}
