//! npm projects with the real npm client, no network at run time: a small
//! project (`tests/fixtures/npm/app`: `is-odd` with its own nested
//! `is-number`, `is-number`, and the scoped `@isaacs/string-locale-compare`)
//! locked by `npm install --package-lock-only`, its tarballs fetched once
//! with `npm pack`. It is packed, verified, imported and exported, then
//! installed with `npm ci --offline` from the exported cache with the
//! registry pointed at a closed port. Every way the pins can be broken is
//! refused, naming the package; the high side re-checks the integrity of a
//! bundle whose description was altered and re-signed.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

const HEAD: &str =
    "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: deps\n  version: 1.0.0\n";

const SCOPED: &str = "@isaacs/string-locale-compare@1.1.0";

#[track_caller]
fn ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npm")
}

/// A workspace holding the fixture project at `src/app` (its tarballs in
/// `src/app/npm-tarballs`) and a manifest packing it.
fn npm_fixture() -> Fixture {
    let f = Fixture::new();
    let app = f.path("src/app");
    std::fs::create_dir_all(app.join("npm-tarballs")).unwrap();
    for name in ["package.json", "package-lock.json"] {
        std::fs::copy(fixtures().join("app").join(name), app.join(name)).unwrap();
    }
    for e in std::fs::read_dir(fixtures().join("tarballs")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), app.join("npm-tarballs").join(e.file_name())).unwrap();
    }
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!(
            "{HEAD}npm:\n  - lockfile: app/package-lock.json\n    tarballs: app/npm-tarballs\n"
        ),
    )
    .unwrap();
    f
}

fn lock_path(f: &Fixture) -> PathBuf {
    f.path("src/app/package-lock.json")
}

fn read_lock(f: &Fixture) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(lock_path(f)).unwrap()).unwrap()
}

fn write_lock(f: &Fixture, v: &serde_json::Value) {
    std::fs::write(lock_path(f), serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn pack_output(f: &Fixture) -> Output {
    run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("dist"),
    ])
}

#[track_caller]
fn assert_refused(f: &Fixture, needles: &[&str]) {
    let o = pack_output(f);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
    let left = std::fs::read_dir(f.path("dist"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "a refused pack leaves nothing behind");
}

fn description(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// npm with no user or global configuration, its cache in `cache`, and the
/// registry a closed loopback port: anything not in the cache fails.
fn npm(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    let (user, global) = (dir.join(".npmrc-user"), dir.join(".npmrc-global"));
    for p in [&user, &global] {
        std::fs::write(p, "").unwrap();
    }
    let mut c = Command::new("npm");
    for (k, _) in std::env::vars() {
        if k.to_ascii_lowercase().starts_with("npm_config_") {
            c.env_remove(k);
        }
    }
    c.args(args)
        .arg("--cache")
        .arg(cache)
        .args(["--registry", "http://127.0.0.1:9/"])
        .arg("--userconfig")
        .arg(&user)
        .arg("--globalconfig")
        .arg(&global)
        .args(["--no-audit", "--no-fund", "--no-update-notifier"])
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .expect("npm is installed (scripts/test installs Debian's npm)")
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

fn sbom(bundle: &Path, format: &str) -> serde_json::Value {
    let o = run(&["sbom", bundle.to_str().unwrap(), "--format", format]);
    ok("airlock sbom", &o);
    let p = bundle.with_extension(format!("{format}.json"));
    std::fs::write(&p, &o.stdout).unwrap();
    let o = if format == "cyclonedx" {
        Command::new("python3")
            .args(["-c", CDX_VALIDATE, p.to_str().unwrap()])
            .output()
            .unwrap()
    } else {
        Command::new("pyspdxtools")
            .args(["-i", p.to_str().unwrap()])
            .output()
            .expect("pyspdxtools is installed (scripts/test)")
    };
    ok(&format!("validating the {format} SBOM"), &o);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn purls(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("purl", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("referenceLocator", serde_json::Value::String(s)) if s.starts_with("pkg:") => {
                        out.push(s.clone())
                    }
                    _ => purls(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| purls(x, out)),
        _ => {}
    }
}

#[test]
fn npm_project_installs_offline_from_the_export() {
    let f = npm_fixture();
    let bundle = f.pack("tar.zst");
    ok("verify", &f.verify(&bundle));
    ok("import", &f.import(&bundle, "store"));
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "deps",
        "--to",
        &f.s("out"),
    ]);
    ok("export", &o);

    // The description records every package with the lock's integrity.
    let dir_bundle = f.pack_to("dir", "dist-dir");
    let d = description(&dir_bundle);
    let o = run(&["inspect", dir_bundle.to_str().unwrap(), "--json"]);
    ok("inspect", &o);
    assert_schemas(&[("inspect", json(&o))]);
    let a = &d["artifacts"][0];
    assert_eq!(a["kind"], "npm");
    assert_eq!(a["artifactType"], "application/vnd.airlock.npm.v1+json");
    let lock = read_lock(&f);
    let packages = a["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 4, "{packages:?}");
    for (key, name) in [
        (
            "node_modules/@isaacs/string-locale-compare",
            "@isaacs/string-locale-compare",
        ),
        ("node_modules/is-odd", "is-odd"),
        ("node_modules/is-number", "is-number"),
        ("node_modules/is-odd/node_modules/is-number", "is-number"),
    ] {
        let e = &lock["packages"][key];
        let p = packages
            .iter()
            .find(|p| p["name"] == name && p["version"] == e["version"])
            .unwrap_or_else(|| panic!("{key} not recorded: {packages:?}"));
        assert_eq!(p["integrity"], e["integrity"], "{key}");
        assert_eq!(p["source"], e["resolved"], "{key}");
    }
    let layers: Vec<&str> = a["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert!(
        layers.contains(&"package-lock.json")
            && layers.contains(&"package.json")
            && layers.contains(&"tarballs/isaacs-string-locale-compare-1.1.0.tgz"),
        "{layers:?}"
    );

    // Both SBOMs pass the real validators and name every package by its purl.
    for format in ["cyclonedx", "spdx"] {
        let mut found = Vec::new();
        purls(&sbom(&dir_bundle, format), &mut found);
        for p in [
            "pkg:npm/%40isaacs/string-locale-compare@1.1.0",
            "pkg:npm/is-odd@3.0.1",
            "pkg:npm/is-number@7.0.0",
            "pkg:npm/is-number@6.0.0",
        ] {
            assert!(
                found.iter().any(|x| x == p),
                "{format}: no {p} in {found:?}"
            );
        }
    }

    // The export: the project's package.json and lock, byte for byte, and an
    // npm cache holding the tarballs by their integrity.
    for name in ["package.json", "package-lock.json"] {
        assert_eq!(
            std::fs::read(f.path("out/npm").join(name)).unwrap(),
            std::fs::read(f.path("src/app").join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(f.path("out/npm/cache/_cacache/content-v2/sha512").is_dir());

    // `npm ci --offline` installs from the exported cache with the registry
    // unreachable, and node loads the packages.
    let proj = f.path("proj");
    std::fs::create_dir_all(&proj).unwrap();
    for name in ["package.json", "package-lock.json"] {
        std::fs::copy(f.path("out/npm").join(name), proj.join(name)).unwrap();
    }
    let cache = f.path("out/npm/cache");
    let o = npm(&proj, &cache, &["ci", "--offline", "--ignore-scripts"]);
    ok("npm ci --offline from the exported cache", &o);
    assert!(proj
        .join("node_modules/is-odd/node_modules/is-number/package.json")
        .is_file());
    let o = Command::new("node")
        .args([
            "-e",
            "const isOdd = require('is-odd'); const cmp = require('@isaacs/string-locale-compare')('en'); console.log(isOdd(3), isOdd(4), require('is-number')('5'), cmp('a', 'b'))",
        ])
        .current_dir(&proj)
        .output()
        .unwrap();
    ok("node", &o);
    assert_eq!(stdout(&o), "true false true -1\n");

    // The same install with an empty cache fails: the export's cache is what
    // npm installed from.
    let proj2 = f.path("proj2");
    std::fs::create_dir_all(&proj2).unwrap();
    for name in ["package.json", "package-lock.json"] {
        std::fs::copy(f.path("out/npm").join(name), proj2.join(name)).unwrap();
    }
    let o = npm(
        &proj2,
        &f.path("empty-cache"),
        &["ci", "--offline", "--ignore-scripts"],
    );
    assert!(!o.status.success(), "npm ci with an empty cache succeeded");
}

#[test]
fn npm_refuses_a_tampered_tarball_naming_the_package() {
    let f = npm_fixture();
    // Another real tarball under is-odd's name: a different package.
    std::fs::copy(
        f.path("src/app/npm-tarballs/is-number-7.0.0.tgz"),
        f.path("src/app/npm-tarballs/is-odd-3.0.1.tgz"),
    )
    .unwrap();
    assert_refused(
        &f,
        &["npm[0] is-odd@3.0.1", "is-odd-3.0.1.tgz", "does not match"],
    );
}

#[test]
fn npm_refuses_a_git_dependency_naming_the_package() {
    let f = npm_fixture();
    let mut lock = read_lock(&f);
    lock["packages"]["node_modules/from-git"] = serde_json::json!({
        "version": "1.2.0",
        "resolved": "git+ssh://git@github.com/example/from-git.git#0123456789abcdef0123456789abcdef01234567",
        "integrity": "sha512-SQ7Kzhh9+D+ZW9MA0zkYv3VXhIDNx+LzM6EJ+/65I3QY+enU6Itte7E5XX7EWrqLW2FN4n06GWzBnPoC3th2aQ=="
    });
    write_lock(&f, &lock);
    assert_refused(&f, &["npm[0] from-git@1.2.0", "git dependency"]);
}

#[test]
fn npm_refuses_file_and_link_dependencies_naming_the_package() {
    let f = npm_fixture();
    let mut lock = read_lock(&f);
    lock["packages"]["node_modules/local-tgz"] = serde_json::json!({
        "version": "0.1.0",
        "resolved": "file:../local-tgz-0.1.0.tgz",
        "integrity": "sha512-SQ7Kzhh9+D+ZW9MA0zkYv3VXhIDNx+LzM6EJ+/65I3QY+enU6Itte7E5XX7EWrqLW2FN4n06GWzBnPoC3th2aQ=="
    });
    lock["packages"]["node_modules/linked"] = serde_json::json!({
        "resolved": "packages/linked",
        "link": true
    });
    lock["packages"]["packages/linked"] = serde_json::json!({
        "name": "linked",
        "version": "0.2.0"
    });
    write_lock(&f, &lock);
    assert_refused(
        &f,
        &[
            "npm[0] local-tgz@0.1.0",
            "`file:` dependency",
            "npm[0] linked",
            "is a link to packages/linked",
            "npm[0] linked@0.2.0",
            "directory of the project",
        ],
    );
}

#[test]
fn npm_refuses_a_missing_or_extra_tarball_naming_it() {
    let f = npm_fixture();
    std::fs::remove_file(f.path("src/app/npm-tarballs/is-number-6.0.0.tgz")).unwrap();
    assert_refused(
        &f,
        &[
            "npm[0] is-number@6.0.0",
            "is-number-6.0.0.tgz is missing",
            "npm pack is-number@6.0.0",
        ],
    );

    let f = npm_fixture();
    std::fs::write(f.path("src/app/npm-tarballs/left-over-1.0.0.tgz"), b"x").unwrap();
    assert_refused(
        &f,
        &["npm[0] left-over-1.0.0.tgz", "not a tarball", "remove it"],
    );
}

#[test]
fn npm_refuses_weak_or_missing_integrity_naming_the_package() {
    let f = npm_fixture();
    let mut lock = read_lock(&f);
    lock["packages"]["node_modules/is-odd"]["integrity"] =
        serde_json::json!("sha1-dMt1u8eWWkCD4n5VZRldSRFvcXQ=");
    lock["packages"]["node_modules/is-number"]
        .as_object_mut()
        .unwrap()
        .remove("integrity");
    write_lock(&f, &lock);
    assert_refused(
        &f,
        &[
            "npm[0] is-odd@3.0.1",
            "has no sha512",
            "npm[0] is-number@7.0.0",
            "has no integrity",
        ],
    );
}

#[test]
fn npm_refuses_lockfile_version_1_with_a_hint() {
    let f = npm_fixture();
    std::fs::write(
        lock_path(&f),
        r#"{"name": "x", "version": "1.0.0", "lockfileVersion": 1, "requires": true, "dependencies": {"is-number": {"version": "7.0.0", "resolved": "https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz", "integrity": "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng=="}}}"#,
    )
    .unwrap();
    assert_refused(
        &f,
        &[
            "npm[0]",
            "package-lock.json",
            "lockfileVersion 1",
            "--lockfile-version 3",
        ],
    );
}

#[test]
fn high_side_rechecks_npm_integrity_itself() {
    let f = npm_fixture();
    let bundle = f.pack("dir");
    ok("verify", &f.verify(&bundle));
    // The description claims another integrity for is-odd (is-number 7's).
    let lock = read_lock(&f);
    let other = lock["packages"]["node_modules/is-number"]["integrity"].clone();
    alter_description(&f, &bundle, |d| {
        for p in d["artifacts"][0]["packages"].as_array_mut().unwrap() {
            if p["name"] == "is-odd" {
                p["integrity"] = other.clone();
            }
        }
    });
    let o = f.verify(&bundle);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("is-odd@3.0.1") && err.contains("the carried package-lock.json pins"),
        "{err}"
    );
    assert!(err.contains("the tarball was modified"), "{err}");
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(!f.path("store/bundles/deps").exists());

    // A package the description leaves out is still pinned by the carried lock.
    let f = npm_fixture();
    let bundle = f.pack("dir");
    alter_description(&f, &bundle, |d| {
        let a = &mut d["artifacts"][0];
        a["packages"]
            .as_array_mut()
            .unwrap()
            .retain(|p| p["name"] != "@isaacs/string-locale-compare");
    });
    let o = f.verify(&bundle);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains(&format!("pins {SCOPED}, which the artifact does not carry")),
        "{err}"
    );
    assert!(
        err.contains("isaacs-string-locale-compare-1.1.0.tgz")
            && err.contains("is the tarball of no package"),
        "{err}"
    );
}

#[test]
fn npm_bundle_packs_as_volumes_and_imports() {
    let f = npm_fixture();
    // Filler so the bundle needs several volumes.
    let mut x: u32 = 7;
    let filler: Vec<u8> = (0..1_500_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(f.path("src/filler.bin"), filler).unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}files:\n  - path: filler.bin\nnpm:\n  - lockfile: app/package-lock.json\n    tarballs: app/npm-tarballs\n"),
    )
    .unwrap();
    let o = f.pack_with("tar", "vols", &["--volume-size", "500000"]);
    ok("pack into volumes", &o);
    let paths = volume_paths(&o);
    assert!(paths.len() >= 3, "{paths:?}");
    ok("verify the volumes", &f.verify_paths(&paths));
    ok("import the volumes", &f.import(&f.path("vols"), "store"));
    let o = run(&[
        "export",
        "--store",
        &f.s("store"),
        "--bundle",
        "deps",
        "--to",
        &f.s("out"),
    ]);
    ok("export", &o);
    assert!(f.path("out/npm/package-lock.json").is_file());
}

#[test]
fn npm_delta_leaves_out_the_tarballs_and_rechecks_them_from_the_store() {
    let f = npm_fixture();
    let o = run(&["keygen", &f.s("keys/high")]);
    ok("keygen", &o);
    std::fs::write(
        f.path("base.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: high\n    publicKey: keys/high.pub\n    roles: [store]\n",
    )
    .unwrap();
    std::fs::write(f.path("src/notes.txt"), b"v1\n").unwrap();
    let manifest = |version: &str| {
        format!("apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: deps\n  version: {version}\nfiles:\n  - path: notes.txt\nnpm:\n  - lockfile: app/package-lock.json\n    tarballs: app/npm-tarballs\n")
    };
    std::fs::write(f.path("src/airlock.yaml"), manifest("1.0.0")).unwrap();
    let v1 = f.pack("dir");
    ok("import v1", &f.import(&v1, "store"));
    let o = run(&[
        "store",
        "receipt",
        "--store",
        &f.s("store"),
        "--key",
        &f.s("keys/high.key"),
        "--out",
        &f.s("have.json"),
    ]);
    ok("store receipt", &o);

    // 1.1.0 changes only notes.txt: the lock and tarballs are left out.
    std::fs::write(f.path("src/notes.txt"), b"v2\n").unwrap();
    std::fs::write(f.path("src/airlock.yaml"), manifest("1.1.0")).unwrap();
    let o = f.pack_with(
        "tar",
        "delta",
        &[
            "--base",
            &f.s("have.json"),
            "--base-trust",
            &f.s("base.yaml"),
        ],
    );
    ok("pack --base", &o);
    let bundle = PathBuf::from(json(&o)["path"].as_str().unwrap());
    let tarball = std::fs::read(f.path("src/app/npm-tarballs/is-odd-3.0.1.tgz")).unwrap();
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    ok("verify the delta alone", &o);
    let v = json(&o);
    assert!(
        v["checked"]["delta"]["unchecked"]
            .as_array()
            .unwrap()
            .contains(&format!("sha256:{}", sha256_hex(&tarball)).into()),
        "{v}"
    );
    // With the store, the integrity is re-checked from its copies.
    let o = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--json",
    ]);
    ok("verify the delta with the store", &o);
    let v = json(&o);
    assert_eq!(v["checked"]["delta"]["structureChecked"], true, "{v}");
    assert!(v["checked"]["pins"].as_u64().unwrap() >= 1, "{v}");
    ok("import the delta", &f.import(&bundle, "store"));
    let o = run(&[
        "export",
        "deps@1.1.0",
        "--store",
        &f.s("store"),
        "--out",
        &f.s("out"),
    ]);
    ok("export 1.1.0", &o);
    assert_eq!(
        std::fs::read(f.path("out/files/notes.txt")).unwrap(),
        b"v2\n"
    );
    let lock = read_lock(&f);
    let integrity = lock["packages"]["node_modules/is-odd"]["integrity"]
        .as_str()
        .unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(integrity.trim_start_matches("sha512-"))
        .unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let cached = f.path(&format!(
        "out/npm/cache/_cacache/content-v2/sha512/{}/{}/{}",
        &hex[..2],
        &hex[2..4],
        &hex[4..]
    ));
    assert_eq!(std::fs::read(cached).unwrap(), tarball);
}

#[cfg(unix)]
#[test]
fn npm_refuses_a_symlinked_package_json() {
    let f = npm_fixture();
    let pj = f.path("src/app/package.json");
    std::fs::rename(&pj, f.path("src/real-package.json")).unwrap();
    std::os::unix::fs::symlink("../real-package.json", &pj).unwrap();
    assert_refused(&f, &["npm[0]", "package.json", "symbolic link"]);
}

/// A real npm tarball (`package/package.json` and an incompressible
/// `package/blob.bin` of `size` bytes, gzip with stored blocks) for
/// `name@version`.
fn big_tarball(name: &str, version: &str, size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut blob = Vec::with_capacity(size);
    while blob.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        blob.extend_from_slice(&x.to_le_bytes());
    }
    blob.truncate(size);
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    let mut t = tar::Builder::new(gz);
    for (path, bytes) in [
        (
            "package/package.json",
            format!(r#"{{"name": "{name}", "version": "{version}"}}"#).into_bytes(),
        ),
        ("package/blob.bin", blob),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        t.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

/// A tarball larger than the 32 MiB a kept blob may have: its bytes are
/// not kept on the high side, its sha512 is computed as its parts stream
/// by across volumes, and `verify` stays within the product's 64 MiB of
/// resident memory.
#[test]
fn npm_tarball_over_32_mib_is_rechecked_without_keeping_its_bytes() {
    use base64::Engine;
    let f = Fixture::new();
    let app = f.path("src/big");
    std::fs::create_dir_all(app.join("tarballs")).unwrap();
    let tgz = big_tarball("airlock-big", "1.0.0", 33 << 20);
    assert!(tgz.len() > 33 << 20);
    std::fs::write(app.join("tarballs/airlock-big-1.0.0.tgz"), &tgz).unwrap();
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&tgz))
    );
    drop(tgz);
    std::fs::write(
        app.join("package.json"),
        r#"{"name": "big-app", "version": "1.0.0", "dependencies": {"airlock-big": "1.0.0"}}"#,
    )
    .unwrap();
    let lock = serde_json::json!({
        "name": "big-app",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": true,
        "packages": {
            "": {"name": "big-app", "version": "1.0.0", "dependencies": {"airlock-big": "1.0.0"}},
            "node_modules/airlock-big": {
                "version": "1.0.0",
                "resolved": "https://registry.npmjs.org/airlock-big/-/airlock-big-1.0.0.tgz",
                "integrity": integrity,
            }
        }
    });
    std::fs::write(
        app.join("package-lock.json"),
        serde_json::to_vec_pretty(&lock).unwrap(),
    )
    .unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}npm:\n  - lockfile: big/package-lock.json\n    tarballs: big/tarballs\n"),
    )
    .unwrap();

    // As 16 MB volumes the tarball is split: its sha512 is computed over
    // its parts as they are joined.
    let o = f.pack_with("tar", "vols", &["--volume-size", "16000000"]);
    ok("pack into volumes", &o);
    let paths = volume_paths(&o);
    assert!(paths.len() >= 3, "{paths:?}");
    let mut args = vec!["verify".to_string()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(["--trust", &f.s("policy.yaml"), "--json"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    #[cfg(target_os = "linux")]
    {
        let (o, peak) = run_measured(&args);
        ok("verify the volumes", &o);
        eprintln!("verify peaked at {} KiB of resident memory", peak >> 10);
        assert!(json(&o)["checked"]["pins"].as_u64().unwrap() >= 1);
        assert!(
            peak > 0 && peak < 64 << 20,
            "verify peaked at {peak} bytes of resident memory"
        );
    }
    #[cfg(not(target_os = "linux"))]
    ok("verify the volumes", &run(&args));
    ok("import the volumes", &f.import(&f.path("vols"), "store"));
}
