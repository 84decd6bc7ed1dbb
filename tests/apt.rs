//! Debian packages with the real tools, no network and no change to the
//! machine: small .deb files built with `dpkg-deb --build` (one depending on
//! the other), served from a local flat repository to a private apt
//! configuration (APT_CONFIG: every state, cache and source file in a
//! temporary directory), locked with `apt-cache show --no-all-versions` and
//! fetched with `apt-get download`, as an operator does. The bundle is
//! packed, verified, imported and exported; a second private apt reads the
//! exported repository and resolves, simulates and downloads the install.
//! Every way the lock can be broken is refused, naming the package; the
//! high side re-checks the pins of a bundle whose description was altered
//! and re-signed.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

const APP: &str = "airlock-demo";
const LIB: &str = "airlock-demo-lib";
const APP_V: &str = "1.0-1";
/// With an epoch: the file names drop it, apt and the purl keep it.
const LIB_V: &str = "1:2.0-1";

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

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn native_arch() -> String {
    let o = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .unwrap();
    ok("dpkg --print-architecture", &o);
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Builds a .deb with `dpkg-deb --build` (xz members, dpkg's default) at
/// `out/file`: control naming `name` `version` `arch`, one file under
/// /usr/share/NAME holding `payload`.
fn build_deb(
    out: &Path,
    file: &str,
    package: (&str, &str, &str),
    depends: Option<&str>,
    payload: &str,
) -> PathBuf {
    build_deb_z(out, file, package, depends, payload, "xz")
}

/// As `build_deb`, compressing the members with `compressor` (`dpkg-deb -Z`).
fn build_deb_z(
    out: &Path,
    file: &str,
    (name, version, arch): (&str, &str, &str),
    depends: Option<&str>,
    payload: &str,
    compressor: &str,
) -> PathBuf {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path().join("p");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(root.join(format!("usr/share/{name}/payload")), payload).unwrap();
    let mut control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: airlock tests <tests@airlock.invalid>\nSection: misc\nPriority: optional\n"
    );
    if let Some(d) = depends {
        control.push_str(&format!("Depends: {d}\n"));
    }
    control.push_str(&format!(
        "Description: {name} for airlock's tests\n A small package.\n"
    ));
    std::fs::write(root.join("DEBIAN/control"), control).unwrap();
    std::fs::create_dir_all(out).unwrap();
    let dest = out.join(file);
    let o = Command::new("dpkg-deb")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["--root-owner-group", &format!("-Z{compressor}"), "--build"])
        .arg(&root)
        .arg(&dest)
        .output()
        .unwrap();
    ok("dpkg-deb --build", &o);
    dest
}

/// The app (Architecture all, depending on the lib) and the lib (the
/// machine's architecture, a version with an epoch) in `dir`, named as the
/// archive's pool names them.
fn build_pair(dir: &Path, arch: &str) -> (PathBuf, PathBuf) {
    let app = build_deb(
        dir,
        &format!("{APP}_{APP_V}_all.deb"),
        (APP, APP_V, "all"),
        Some(&format!("{LIB} (>= 1:2.0)")),
        "app\n",
    );
    let lib = build_deb(
        dir,
        &format!("{LIB}_2.0-1_{arch}.deb"),
        (LIB, LIB_V, arch),
        None,
        "lib\n",
    );
    (app, lib)
}

/// A private apt: APT_CONFIG naming a sources.list with `source` and every
/// state, cache, preferences and keyring path below `dir`.
struct Apt {
    conf: PathBuf,
}

impl Apt {
    fn new(dir: &Path, source: &str) -> Apt {
        for d in [
            "sources.list.d",
            "preferences.d",
            "trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "archives/partial",
            "log",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("sources.list"), format!("{source}\n")).unwrap();
        std::fs::write(dir.join("status"), "").unwrap();
        let d = dir.to_str().unwrap();
        let conf = dir.join("apt.conf");
        std::fs::write(
            &conf,
            format!(
                r#"Dir::Etc::sourcelist "{d}/sources.list";
Dir::Etc::sourceparts "{d}/sources.list.d";
Dir::Etc::preferences "{d}/preferences";
Dir::Etc::preferencesparts "{d}/preferences.d";
Dir::Etc::trusted "{d}/trusted.gpg";
Dir::Etc::trustedparts "{d}/trusted.gpg.d";
Dir::State "{d}/state";
Dir::State::lists "{d}/state/lists";
Dir::State::status "{d}/status";
Dir::Cache "{d}/cache";
Dir::Cache::archives "{d}/archives";
Dir::Log "{d}/log";
Debug::NoLocking "1";
APT::Sandbox::User "root";
Acquire::Languages "none";
APT::Architectures {{ "{}"; }};
"#,
                native_arch()
            ),
        )
        .unwrap();
        Apt { conf }
    }

    fn run(&self, program: &str, args: &[&str], cwd: Option<&Path>) -> Output {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", &self.conf)
            .env("LC_ALL", "C")
            .args(args);
        if let Some(cwd) = cwd {
            c.current_dir(cwd);
        }
        c.output().unwrap()
    }

    fn update(&self) {
        let o = self.run("apt-get", &["update"], None);
        ok("apt-get update", &o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("E:") && !err.contains("W:"), "{err}");
    }
}

/// A flat repository with `Packages` (dpkg-scanpackages) and a `Release`.
fn flat_repository(dir: &Path) {
    let o = Command::new("dpkg-scanpackages")
        .args([".", "/dev/null"])
        .current_dir(dir)
        .output()
        .unwrap();
    ok("dpkg-scanpackages", &o);
    std::fs::write(dir.join("Packages"), &o.stdout).unwrap();
    std::fs::write(
        dir.join("Release"),
        format!(
            "Origin: tests\nDate: Tue, 14 Nov 2023 22:13:20 UTC\nSHA256:\n {} {} Packages\n",
            sha256_hex(&o.stdout),
            o.stdout.len()
        ),
    )
    .unwrap();
}

/// The lock as `dpkg-scanpackages` prints it for the .deb files in `dir`
/// (the same stanzas `apt-cache show` prints).
fn scan_lock(dir: &Path) -> String {
    let o = Command::new("dpkg-scanpackages")
        .args([".", "/dev/null"])
        .current_dir(dir)
        .output()
        .unwrap();
    ok("dpkg-scanpackages", &o);
    String::from_utf8(o.stdout).unwrap()
}

const MANIFEST: &str = "apt:\n  - lock: apt.lock\n    debs: debs\n";

/// A fixture whose `src/debs` holds the pair and `src/apt.lock` their lock.
fn apt_fixture() -> (Fixture, String) {
    let f = Fixture::new();
    let arch = native_arch();
    build_pair(&f.path("src/debs"), &arch);
    std::fs::write(f.path("src/apt.lock"), scan_lock(&f.path("src/debs"))).unwrap();
    f.write_manifest(MANIFEST);
    (f, arch)
}

fn pack_output(f: &Fixture) -> Output {
    f.pack_with("dir", "dist", &[])
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

#[test]
fn apt_installs_from_the_exported_repository() {
    let f = Fixture::new();
    let arch = native_arch();
    // The archive the build side downloads from: a local flat repository.
    let origin = f.path("origin");
    let (app, lib) = build_pair(&origin, &arch);
    flat_repository(&origin);
    let low = Apt::new(
        &f.path("apt-low"),
        &format!("deb [trusted=yes] file:{} ./", origin.display()),
    );
    low.update();
    // The operator's two commands: the lock, then the files.
    let o = low.run("apt-cache", &["show", "--no-all-versions", APP, LIB], None);
    ok("apt-cache show", &o);
    std::fs::write(f.path("src/apt.lock"), &o.stdout).unwrap();
    std::fs::create_dir_all(f.path("src/debs")).unwrap();
    ok(
        "apt-get download",
        &low.run(
            "apt-get",
            &["download", APP, LIB],
            Some(&f.path("src/debs")),
        ),
    );
    let mut got: Vec<String> = std::fs::read_dir(f.path("src/debs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    // apt-get download keeps the epoch, as %3a.
    let mut want = [
        format!("{APP}_{APP_V}_all.deb"),
        format!("{LIB}_1%3a2.0-1_{arch}.deb"),
    ];
    want.sort();
    assert_eq!(got, want);
    f.write_manifest(MANIFEST);

    let bundle = f.pack("dir");
    ok("verify", &f.verify(&bundle));
    let d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap();
    let a = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "apt")
        .expect("an apt artifact");
    assert_eq!(a["reference"], "apt/apt.lock");
    let names: Vec<&str> = a["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [APP, LIB]);
    assert_eq!(a["packages"][1]["version"], LIB_V);
    assert_eq!(a["packages"][1]["source"], "debian");
    let o = run(&["inspect", bundle.to_str().unwrap(), "--json"]);
    ok("inspect --json", &o);
    assert_schemas(&[("inspect", json(&o))]);

    // SBOMs name each package by its deb purl and pass the validators.
    let o = run(&["sbom", bundle.to_str().unwrap(), "--format", "cyclonedx"]);
    ok("sbom cyclonedx", &o);
    let cdx = stdout(&o);
    for purl in [
        format!("pkg:deb/debian/{APP}@{APP_V}?arch=all"),
        format!("pkg:deb/debian/{LIB}@{LIB_V}?arch={arch}"),
    ] {
        assert!(cdx.contains(&format!("\"{purl}\"")), "{purl} not in\n{cdx}");
    }
    let p = f.path("bom.cdx.json");
    std::fs::write(&p, &o.stdout).unwrap();
    let o = Command::new("python3")
        .args(["-c", CDX_VALIDATE, p.to_str().unwrap()])
        .output()
        .unwrap();
    ok("cyclonedx-python-lib validates the CycloneDX SBOM", &o);
    let o = run(&["sbom", bundle.to_str().unwrap(), "--format", "spdx"]);
    ok("sbom spdx", &o);
    assert!(stdout(&o).contains(&format!("pkg:deb/debian/{LIB}@{LIB_V}?arch={arch}")));
    let p = f.path("bom.spdx.json");
    std::fs::write(&p, &o.stdout).unwrap();
    ok(
        "pyspdxtools validates the SPDX SBOM",
        &Command::new("pyspdxtools")
            .args(["-i", p.to_str().unwrap()])
            .output()
            .unwrap(),
    );

    ok("import", &f.import(&bundle, "store"));
    ok(
        "export",
        &run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            &f.s("out"),
        ]),
    );
    let repo = f.path("out/apt");
    let packages = std::fs::read_to_string(repo.join("Packages")).unwrap();
    assert!(
        packages.contains(&format!("Depends: {LIB} (>= 1:2.0)")),
        "{packages}"
    );
    assert!(packages.contains(&format!("Filename: ./{LIB}_2.0-1_{arch}.deb")));
    assert!(packages.contains(&format!(
        "SHA256: {}",
        sha256_hex(&std::fs::read(&lib).unwrap())
    )));
    assert!(!packages.contains("MD5sum"), "{packages}");
    let release = std::fs::read_to_string(repo.join("Release")).unwrap();
    assert!(release.contains(&format!(
        " {} {} Packages\n",
        sha256_hex(packages.as_bytes()),
        packages.len()
    )));
    assert!(repo.join("Packages.gz").is_file());
    assert!(repo.join("entries/0/apt.lock").is_file());

    // The high side's apt reads the exported repository offline.
    let high = Apt::new(
        &f.path("apt-high"),
        &format!("deb [trusted=yes] file:{} ./", repo.display()),
    );
    high.update();
    let o = high.run("apt-get", &["install", "-s", APP], None);
    ok("apt-get install -s", &o);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("Inst {LIB} ({LIB_V} "))
            && out.contains(&format!("Inst {APP} ({APP_V} ")),
        "apt does not install the package and its dependency:\n{out}"
    );
    // What apt would fetch for the install: both files, from the exported
    // repository.
    let o = high.run("apt-get", &["install", "--print-uris", "-y", APP], None);
    ok("apt-get install --print-uris", &o);
    let uris = stdout(&o);
    for original in [&app, &lib] {
        let name = original.file_name().unwrap().to_str().unwrap();
        let line = format!("'file:{}/./{name}' ", repo.display());
        assert!(uris.contains(&line), "{line} not in\n{uris}");
    }
    // And apt fetches them, checked against the Size and SHA256 airlock
    // wrote into Packages, byte for byte.
    let fetched = f.path("fetched");
    std::fs::create_dir_all(&fetched).unwrap();
    ok(
        "apt-get download from the export",
        &high.run("apt-get", &["download", APP, LIB], Some(&fetched)),
    );
    for (name, original) in [
        (format!("{APP}_{APP_V}_all.deb"), &app),
        (format!("{LIB}_1%3a2.0-1_{arch}.deb"), &lib),
    ] {
        assert_eq!(
            std::fs::read(fetched.join(&name)).unwrap(),
            std::fs::read(original).unwrap(),
            "{name}"
        );
    }
    // apt checks those: a file swapped in the repository is refused.
    let swapped = repo.join(lib.file_name().unwrap());
    let mut bytes = std::fs::read(&swapped).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&swapped, bytes).unwrap();
    let again = f.path("fetched-again");
    std::fs::create_dir_all(&again).unwrap();
    let o = high.run("apt-get", &["download", LIB], Some(&again));
    assert!(
        !o.status.success(),
        "apt took a swapped file: {}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("Hash Sum mismatch"), "{}", stderr(&o));
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

#[test]
fn apt_refuses_a_deb_whose_hash_differs_from_the_lock() {
    let (f, arch) = apt_fixture();
    // One byte of the data member changed after the lock was written: same
    // size, same control; only the hash pack computes while copying tells.
    let p = f.path(&format!("src/debs/{LIB}_2.0-1_{arch}.deb"));
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&p, bytes).unwrap();
    assert_refused(
        &f,
        &[
            &format!("apt[0] {LIB}:{arch}={LIB_V}"),
            "which does not match the SHA256",
            "not the .deb the archive published",
        ],
    );
    // A byte more: refused on its size before anything is copied.
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.push(0);
    std::fs::write(&p, bytes).unwrap();
    assert_refused(&f, &[&format!("apt[0] {LIB}:{arch}={LIB_V}"), "gives Size"]);
}

#[test]
fn apt_refuses_a_deb_missing_from_the_lock() {
    let (f, _) = apt_fixture();
    build_deb(
        &f.path("src/debs"),
        "airlock-extra_3.0_all.deb",
        ("airlock-extra", "3.0", "all"),
        None,
        "extra\n",
    );
    assert_refused(&f, &["apt[0] airlock-extra:all=3.0", "is not in"]);
}

#[test]
fn apt_refuses_a_lock_entry_without_its_deb() {
    let (f, arch) = apt_fixture();
    std::fs::remove_file(f.path(&format!("src/debs/{LIB}_2.0-1_{arch}.deb"))).unwrap();
    assert_refused(
        &f,
        &[
            &format!("apt[0] {LIB}:{arch}={LIB_V}"),
            "holds no .deb for it",
        ],
    );
}

#[test]
fn apt_refuses_a_deb_whose_control_differs_from_the_lock() {
    let (f, _) = apt_fixture();
    // A .deb of another version under the locked name, and a lock whose
    // hash and size were made to match it: its own control gives it away.
    let file = format!("{APP}_{APP_V}_all.deb");
    let path = build_deb(
        &f.path("src/debs"),
        &file,
        (APP, "1.1-1", "all"),
        Some(LIB),
        "app\n",
    );
    let bytes = std::fs::read(&path).unwrap();
    let lock = std::fs::read_to_string(f.path("src/apt.lock")).unwrap();
    let lock: String = lock
        .split("\n\n")
        .map(|s| {
            if s.starts_with(&format!("Package: {APP}\n")) {
                s.lines()
                    .map(|l| {
                        if l.starts_with("SHA256:") {
                            format!("SHA256: {}\n", sha256_hex(&bytes))
                        } else if l.starts_with("Size:") {
                            format!("Size: {}\n", bytes.len())
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect::<String>()
            } else {
                format!("{s}\n")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(f.path("src/apt.lock"), lock).unwrap();
    assert_refused(
        &f,
        &[
            &format!("apt[0] {APP}:all={APP_V}"),
            "its control says Version \"1.1-1\"",
        ],
    );
}

#[test]
fn apt_reads_the_control_of_debs_in_every_compression() {
    let f = Fixture::new();
    let debs = f.path("src/debs");
    let kinds = ["xz", "gzip", "zstd", "none"];
    for z in kinds {
        let name = format!("airlock-z-{z}");
        build_deb_z(
            &debs,
            &format!("{name}_1.0_all.deb"),
            (&name, "1.0", "all"),
            None,
            z,
            z,
        );
    }
    let lock = scan_lock(&debs);
    f.write_manifest(MANIFEST);
    // A lock that says 1.5 for each, the files renamed to match: only the
    // control inside each .deb tells.
    std::fs::write(
        f.path("src/apt.lock"),
        lock.replace("Version: 1.0", "Version: 1.5"),
    )
    .unwrap();
    for z in kinds {
        std::fs::rename(
            debs.join(format!("airlock-z-{z}_1.0_all.deb")),
            debs.join(format!("airlock-z-{z}_1.5_all.deb")),
        )
        .unwrap();
    }
    let needles: Vec<String> = kinds
        .iter()
        .map(|z| format!("apt[0] airlock-z-{z}:all=1.5: "))
        .collect();
    let mut all: Vec<&str> = needles.iter().map(String::as_str).collect();
    all.push("its control says Version \"1.0\"");
    assert_refused(&f, &all);
    assert_eq!(
        stderr(&pack_output(&f))
            .matches("its control says Version")
            .count(),
        kinds.len()
    );
    // The true lock and names pack.
    std::fs::write(f.path("src/apt.lock"), lock).unwrap();
    for z in kinds {
        std::fs::rename(
            debs.join(format!("airlock-z-{z}_1.5_all.deb")),
            debs.join(format!("airlock-z-{z}_1.0_all.deb")),
        )
        .unwrap();
    }
    ok("pack", &pack_output(&f));
}

#[test]
fn apt_refuses_a_malformed_lock_naming_the_line() {
    let (f, _) = apt_fixture();
    f.write_manifest("apt:\n  - lock: apt.lock\n    debs: debs\n    distro: Debian/x\n");
    let o = pack_output(&f);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("apt[0].distro"), "{}", stderr(&o));
    f.write_manifest(MANIFEST);
    std::fs::write(f.path("src/apt.lock"), " stray continuation\n").unwrap();
    let o = pack_output(&f);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("apt.lock") && stderr(&o).contains("line 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn high_side_rechecks_apt_pins_itself() {
    let (f, arch) = apt_fixture();
    let bundle = f.pack("dir");
    ok("verify", &f.verify(&bundle));
    // The description claims another version than the carried lock pins.
    alter_description(&f, &bundle, |d| {
        for a in d["artifacts"].as_array_mut().unwrap() {
            if a["kind"] == "apt" {
                a["packages"][1]["version"] = serde_json::json!("1:9.9-1");
            }
        }
    });
    let o = f.verify(&bundle);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{LIB}:{arch}={LIB_V}"))
            && stderr(&o).contains(&format!("records {LIB}=1:9.9-1")),
        "{}",
        stderr(&o)
    );
    let o = f.import(&bundle, "store");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(!f.path("store/bundles/demo").exists());
}

#[test]
fn apt_bundle_packs_as_volumes() {
    let (f, _) = apt_fixture();
    let paths = f.pack_volumes("dir");
    ok("verify the volume set", &f.verify_paths(&paths));
    ok(
        "import the volume set",
        &run(&[
            "import",
            f.path("vols").to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            &f.s("store"),
        ]),
    );
    ok(
        "export",
        &run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            &f.s("out"),
        ]),
    );
    assert!(f.path("out/apt/Packages").is_file());
}

#[test]
fn apt_bundle_goes_as_a_delta() {
    let (f, arch) = apt_fixture();
    ok("keygen", &run(&["keygen", &f.s("keys/high")]));
    std::fs::write(
        f.path("base.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: high\n    publicKey: keys/high.pub\n    roles: [store]\n",
    )
    .unwrap();
    let v1 = f.pack("dir");
    ok("import 1.0.0", &f.import(&v1, "store"));
    ok(
        "store receipt",
        &run(&[
            "store",
            "receipt",
            "--store",
            &f.s("store"),
            "--key",
            &f.s("keys/high.key"),
            "--out",
            &f.s("have.json"),
        ]),
    );
    // 1.1.0: a file changes; the .deb files and the lock do not, so the
    // delta leaves them out and the high side takes them from its store.
    let text = std::fs::read_to_string(f.path("src/airlock.yaml")).unwrap();
    std::fs::write(
        f.path("src/airlock.yaml"),
        text.replace("version: 1.0.0", "version: 1.1.0"),
    )
    .unwrap();
    std::fs::write(f.path("src/docs/runbook.txt"), "step three\n").unwrap();
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
    let lib = std::fs::read(f.path(&format!("src/debs/{LIB}_2.0-1_{arch}.deb"))).unwrap();
    let d = run(&["inspect", bundle.to_str().unwrap(), "--json"]);
    ok("inspect", &d);
    assert!(
        json(&d)["delta"]["omitted"].as_u64().unwrap() >= 3,
        "{}",
        stdout(&d)
    );
    ok(
        "verify --store",
        &run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml"),
            "--store",
            &f.s("store"),
        ]),
    );
    ok("import the delta", &f.import(&bundle, "store"));
    ok(
        "export 1.1.0",
        &run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo@1.1.0",
            "--to",
            &f.s("out"),
        ]),
    );
    assert_eq!(
        std::fs::read(f.path(&format!("out/apt/{LIB}_2.0-1_{arch}.deb"))).unwrap(),
        lib
    );
    let packages = std::fs::read_to_string(f.path("out/apt/Packages")).unwrap();
    assert!(packages.contains(&format!("SHA256: {}", sha256_hex(&lib))));
}

#[test]
fn apt_entries_merge_into_one_repository_and_conflicting_files_are_refused() {
    let (f, arch) = apt_fixture();
    // A second entry carrying the same lib, byte for byte.
    let lib = format!("{LIB}_2.0-1_{arch}.deb");
    std::fs::create_dir_all(f.path("src/more")).unwrap();
    std::fs::copy(
        f.path(&format!("src/debs/{lib}")),
        f.path(&format!("src/more/{lib}")),
    )
    .unwrap();
    std::fs::write(f.path("src/more.lock"), scan_lock(&f.path("src/more"))).unwrap();
    f.write_manifest(&format!("{MANIFEST}  - lock: more.lock\n    debs: more\n"));
    let bundle = f.pack("dir");
    ok("import", &f.import(&bundle, "store"));
    ok(
        "export",
        &run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            &f.s("out"),
        ]),
    );
    let packages = std::fs::read_to_string(f.path("out/apt/Packages")).unwrap();
    assert_eq!(
        packages.matches(&format!("Package: {LIB}\n")).count(),
        1,
        "{packages}"
    );
    assert_eq!(
        packages.matches(&format!("Package: {APP}\n")).count(),
        1,
        "{packages}"
    );
    assert!(f.path("out/apt/entries/1/apt.lock").is_file());

    // Another lib under the same name: one repository cannot hold both.
    std::fs::remove_dir_all(f.path("dist")).unwrap();
    build_deb(
        &f.path("src/more"),
        &lib,
        (LIB, LIB_V, &arch),
        None,
        "another lib\n",
    );
    std::fs::write(f.path("src/more.lock"), scan_lock(&f.path("src/more"))).unwrap();
    assert_refused(
        &f,
        &[
            &format!("apt[1] {LIB}:{arch}={LIB_V}"),
            "one export repository cannot hold both",
        ],
    );
}
