//! `cargo:` entries: a `Cargo.lock` and the `cargo vendor` directory it pins,
//! carried as one OCI artifact of airlock's own type: `Cargo.lock` and one raw
//! layer per vendored file (`vendor/<crate dir>/...`).
//!
//! Build side: every registry package of the lock must be vendored, its
//! `.cargo-checksum.json` `package` must equal the lock's `checksum`, every
//! file it lists must hash to the listed value (checked on the hashes `pack`
//! computes while copying) and no unlisted file may sit beside them. Git
//! dependencies are refused by name; local crates (workspace members and path
//! dependencies) are recorded in the description but not carried.
//! High side: the same checks again, from the description, the layer digests
//! and the carried `.cargo-checksum.json` files; `Cargo.lock` is read as plain
//! text (its quoted checksums), never parsed as TOML.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::packages::{PinCheck, PlannedPackage};
use super::{walk, InputFile, PlannedArtifact};
use crate::bundle::{
    safe_relative, Artifact, ArtifactKind, Description, LayerRef, CARGO_ARTIFACT, CARGO_CHECKSUM,
    CARGO_FILE, CARGO_LOCK, MODE_FILE,
};
use crate::digest::Sha256Digest;
use crate::error::{Error, Report, Result};
use crate::manifest::{normalize, LoadedManifest};

/// Where the lockfile lands inside a cargo artifact.
pub const LOCK_PATH: &str = "Cargo.lock";
/// The directory holding the vendored crates inside a cargo artifact.
pub const VENDOR_DIR: &str = "vendor";
/// The checksum file `cargo vendor` writes in every crate directory.
pub const CHECKSUM_FILE: &str = ".cargo-checksum.json";

const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
    /// Version 1 lockfiles keep checksums here: `"checksum NAME VERSION (SOURCE)" = "HEX"`.
    #[serde(default)]
    metadata: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

/// `.cargo-checksum.json`: file → sha256 hex, and the `.crate`'s sha256.
#[derive(Deserialize)]
struct CargoChecksum {
    files: BTreeMap<String, String>,
    package: Option<String>,
}

#[derive(Deserialize)]
struct CrateManifest {
    package: CratePackage,
}

#[derive(Deserialize)]
struct CratePackage {
    name: String,
    version: toml::Value,
}

fn is_registry(source: &str) -> bool {
    source.starts_with("registry+") || source.starts_with("sparse+")
}

/// A vendored crate directory as found on disk.
struct Vendored {
    dir: String,
    abs: PathBuf,
    checksum: CargoChecksum,
}

/// Plans one artifact per `cargo:` entry; every problem is reported at once.
pub fn plan(m: &LoadedManifest, taken_refs: &mut BTreeSet<String>) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    let mut report = Report::default();
    // Vendor directory name → (checksum, entry): one export vendor directory holds them all.
    let mut dirs_taken: BTreeMap<String, (Sha256Digest, usize)> = BTreeMap::new();
    for (i, entry) in m.manifest.cargo.iter().enumerate() {
        let label = format!("cargo[{i}]");
        let lock_src = m.resolve(&entry.lockfile);
        let vendor = m.resolve(&entry.vendor);
        let text = fs_err::read_to_string(&lock_src)?;
        let lock: LockFile = toml::from_str(&text)
            .map_err(|e| Error::input(&lock_src, format!("not a Cargo.lock: {e}")))?;

        let mut found: BTreeMap<(String, String), Vendored> = BTreeMap::new();
        let mut entries: Vec<_> = fs_err::read_dir(&vendor)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let abs = e.path();
            let Some(dir) = e.file_name().to_str().map(str::to_owned) else {
                report.add(
                    format!("{label} {}", abs.display()),
                    "name is not UTF-8; cargo vendor writes crate directories named after crates",
                );
                continue;
            };
            if !e.file_type()?.is_dir() {
                report.add(
                    format!("{label} {dir}"),
                    format!(
                        "{} is not a crate directory (cargo vendor writes one directory per crate); remove it",
                        abs.display()
                    ),
                );
                continue;
            }
            let manifest = fs_err::read_to_string(abs.join("Cargo.toml"))
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<CrateManifest>(&t).map_err(|e| e.to_string()));
            let (name, version) = match manifest {
                Ok(CrateManifest {
                    package:
                        CratePackage {
                            name,
                            version: toml::Value::String(v),
                        },
                }) => (name, v),
                Ok(_) => {
                    report.add(
                        format!("{label} {dir}"),
                        format!("{}: package.version is not a plain version string; a vendored registry crate always has one", abs.join("Cargo.toml").display()),
                    );
                    continue;
                }
                Err(e) => {
                    report.add(
                        format!("{label} {dir}"),
                        format!("{} is not a vendored crate: {e}", abs.display()),
                    );
                    continue;
                }
            };
            let checksum = match fs_err::read(abs.join(CHECKSUM_FILE))
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<CargoChecksum>(&b).map_err(|e| e.to_string())
                }) {
                Ok(c) => c,
                Err(e) => {
                    report.add(
                        format!("{label} crate {name} {version}"),
                        format!(
                            "{}: {e}; run `cargo vendor` again",
                            abs.join(CHECKSUM_FILE).display()
                        ),
                    );
                    continue;
                }
            };
            if let Some(other) = found.insert(
                (name.clone(), version.clone()),
                Vendored {
                    dir: dir.clone(),
                    abs,
                    checksum,
                },
            ) {
                report.add(
                    format!("{label} crate {name} {version}"),
                    format!("vendored twice, in {} and {dir}", other.dir),
                );
            }
        }

        let mut files = vec![InputFile {
            src: lock_src.clone(),
            path: LOCK_PATH.to_string(),
            mode: MODE_FILE,
            media_type: CARGO_LOCK,
            pin: None,
        }];
        let mut packages = Vec::new();
        for p in &lock.package {
            let subject = format!("{label} crate {} {}", p.name, p.version);
            let Some(source) = &p.source else {
                // A workspace member or path dependency: the project's own code.
                packages.push(PlannedPackage {
                    subject,
                    name: p.name.clone(),
                    version: p.version.clone(),
                    source: None,
                    checksum: None,
                    integrity: None,
                    path: None,
                    hashes: Vec::new(),
                    files: Vec::new(),
                    checks: Vec::new(),
                });
                continue;
            };
            if source.starts_with("git+") {
                report.add(
                    subject,
                    format!(
                        "is a git dependency ({source}); airlock carries registry crates pinned by Cargo.lock checksums only: publish it to a registry, or pack its source under files:"
                    ),
                );
                continue;
            }
            if !is_registry(source) {
                report.add(
                    subject,
                    format!("has source {source:?}, which is not a registry; airlock carries registry crates only"),
                );
                continue;
            }
            let lock_sum = p.checksum.clone().or_else(|| {
                lock.metadata
                    .get(&format!("checksum {} {} ({source})", p.name, p.version))
                    .and_then(|v| v.as_str().map(str::to_owned))
            });
            let Some(lock_sum) = lock_sum.and_then(|s| s.parse::<Sha256Digest>().ok()) else {
                report.add(
                    subject,
                    format!(
                        "{} gives no sha256 checksum for it; regenerate the lockfile",
                        lock_src.display()
                    ),
                );
                continue;
            };
            let Some(v) = found.remove(&(p.name.clone(), p.version.clone())) else {
                report.add(
                    subject,
                    format!(
                        "missing from {}; run `cargo vendor` again",
                        vendor.display()
                    ),
                );
                continue;
            };
            let ck_path = v.abs.join(CHECKSUM_FILE);
            match v
                .checksum
                .package
                .as_deref()
                .map(str::parse::<Sha256Digest>)
            {
                Some(Ok(d)) if d == lock_sum => {}
                Some(Ok(d)) => {
                    report.add(
                        &subject,
                        format!(
                            "{} says package {d}, but {} pins checksum {lock_sum}; vendor from this lockfile again",
                            ck_path.display(),
                            lock_src.display()
                        ),
                    );
                    continue;
                }
                _ => {
                    report.add(
                        &subject,
                        format!(
                            "{} has no package checksum (not a registry crate); run `cargo vendor` again",
                            ck_path.display()
                        ),
                    );
                    continue;
                }
            }
            match dirs_taken.get(&v.dir) {
                Some((other, j)) if *other != lock_sum => report.add(
                    &subject,
                    format!(
                        "vendor directory {} holds another crate in cargo[{j}]; one export vendor directory holds both entries: vendor with --versioned-dirs",
                        v.dir
                    ),
                ),
                _ => {
                    dirs_taken.insert(v.dir.clone(), (lock_sum, i));
                }
            }
            let prefix = format!("{VENDOR_DIR}/{}", v.dir);
            let mut listed: BTreeMap<&str, Option<Sha256Digest>> = v
                .checksum
                .files
                .iter()
                .map(|(k, h)| (k.as_str(), h.parse().ok()))
                .collect();
            let mut checks = Vec::new();
            for (rel, abs, mode) in walk(&v.abs)? {
                let path = format!("{prefix}/{rel}");
                if rel == CHECKSUM_FILE {
                    files.push(InputFile {
                        src: abs,
                        path,
                        mode,
                        media_type: CARGO_CHECKSUM,
                        pin: None,
                    });
                    continue;
                }
                match listed.remove(rel.as_str()) {
                    None => report.add(
                        &subject,
                        format!(
                            "{} is not listed in {} (added after `cargo vendor`); remove it or vendor again",
                            abs.display(),
                            ck_path.display()
                        ),
                    ),
                    Some(None) => report.add(
                        &subject,
                        format!("{} lists {rel} with a value that is not a sha256", ck_path.display()),
                    ),
                    Some(Some(pin)) => {
                        checks.push(PinCheck {
                            path: path.clone(),
                            allowed: vec![pin],
                            pinned_by: format!(
                                "the sha256 {pin} that {} lists for {rel} (the vendored file was modified: run `cargo vendor` again)",
                                ck_path.display()
                            ),
                        });
                        files.push(InputFile {
                            src: abs,
                            path,
                            mode,
                            media_type: CARGO_FILE,
                            pin: None,
                        });
                    }
                }
            }
            for rel in listed.keys() {
                report.add(
                    &subject,
                    format!(
                        "{} lists {rel}, which is missing from {}",
                        ck_path.display(),
                        v.abs.display()
                    ),
                );
            }
            packages.push(PlannedPackage {
                subject,
                name: p.name.clone(),
                version: p.version.clone(),
                source: Some(source.clone()),
                checksum: Some(lock_sum),
                integrity: None,
                path: Some(prefix),
                hashes: Vec::new(),
                files: Vec::new(),
                checks,
            });
        }
        for ((name, version), v) in &found {
            report.add(
                format!("{label} crate {name} {version}"),
                format!(
                    "{} is vendored but {} lists it as no registry package (a stale vendor directory, or a git or path dependency); run `cargo vendor` again",
                    v.abs.display(),
                    lock_src.display()
                ),
            );
        }

        let name = normalize(&entry.lockfile);
        let reference = super::kind::entry_reference("cargo", &name, i, taken_refs);
        out.push(PlannedArtifact {
            kind: ArtifactKind::Cargo,
            name,
            reference,
            artifact_type: CARGO_ARTIFACT.to_string(),
            files: files.into(),
            packages,
        });
    }
    report.into_result()?;
    Ok(out)
}

/// Every `"<64 hex>"` in a lockfile's text: its checksums, in every lockfile version.
fn quoted_digests(text: &str) -> BTreeSet<Sha256Digest> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i + 66 <= b.len() {
        if b[i] == b'"' && b[i + 65] == b'"' {
            if let Ok(d) = text[i + 1..i + 65].parse() {
                out.insert(d);
                i += 66;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The high side's check of one cargo artifact, from the description, the
/// layer digests and the kept `.cargo-checksum.json` and `Cargo.lock` bytes.
pub fn check_artifact<'k>(
    a: &Artifact,
    bytes_of: &dyn Fn(LayerRef<'_>) -> Option<&'k [u8]>,
    report: &mut Report,
) {
    let subject = |what: &str| format!("{} {what}", a.reference);
    let Some(lock) = a
        .layers
        .iter()
        .find(|l| l.path == LOCK_PATH)
        .and_then(bytes_of)
        .and_then(|b| std::str::from_utf8(b).ok())
    else {
        report.add(
            subject(LOCK_PATH),
            "missing or unreadable: a cargo artifact carries the Cargo.lock that pins it",
        );
        return;
    };
    let locked = quoted_digests(lock);
    let layers: HashMap<&str, LayerRef<'_>> = a
        .layers
        .iter()
        .filter(|l| l.path != LOCK_PATH)
        .map(|l| (l.path, l))
        .collect();
    let mut claimed: HashSet<String> = HashSet::new();
    let mut carried: BTreeSet<Sha256Digest> = BTreeSet::new();
    for p in &a.packages {
        let s = subject(&format!("crate {} {}", p.name, p.version));
        match &p.source {
            None => {
                if p.path.is_some() || p.checksum.is_some() {
                    report.add(&s, "a local crate cannot carry files or a checksum");
                }
                continue;
            }
            Some(src) if !is_registry(src) => {
                report.add(
                    &s,
                    format!("source {src} is not a registry; only registry crates are carried"),
                );
                continue;
            }
            Some(_) => {}
        }
        let Some(sum) = p.checksum else {
            report.add(&s, "registry crate without a checksum");
            continue;
        };
        if !locked.contains(&sum) {
            report.add(
                &s,
                format!("checksum {sum} is not in the carried Cargo.lock"),
            );
        }
        carried.insert(sum);
        let Some(dir) = p.path.as_deref().filter(|d| {
            safe_relative(d)
                && d.strip_prefix(&format!("{VENDOR_DIR}/"))
                    .is_some_and(|c| !c.contains('/'))
        }) else {
            report.add(&s, format!("path {:?} is not vendor/<directory>", p.path));
            continue;
        };
        let ck_path = format!("{dir}/{CHECKSUM_FILE}");
        let Some(ck_layer) = layers.get(ck_path.as_str()) else {
            report.add(&s, format!("{ck_path} is missing"));
            continue;
        };
        claimed.insert(ck_path.clone());
        let ck = match bytes_of(*ck_layer).map(serde_json::from_slice::<CargoChecksum>) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                report.add(&s, format!("{ck_path} is not a cargo checksum file: {e}"));
                continue;
            }
            None => {
                report.add(
                    &s,
                    format!("{ck_path} could not be read to re-check the pins"),
                );
                continue;
            }
        };
        if ck
            .package
            .as_deref()
            .and_then(|x| x.parse::<Sha256Digest>().ok())
            != Some(sum)
        {
            report.add(
                &s,
                format!(
                    "{ck_path} says package {:?}, but Cargo.lock pins checksum {sum}",
                    ck.package
                ),
            );
        }
        for (rel, hex) in &ck.files {
            let path = format!("{dir}/{rel}");
            if !safe_relative(rel) {
                report.add(&s, format!("{ck_path} lists unsafe path {rel:?}"));
                continue;
            }
            let Some(l) = layers.get(path.as_str()) else {
                report.add(&s, format!("{ck_path} lists {rel}, which is not carried"));
                continue;
            };
            claimed.insert(path.clone());
            match hex.parse::<Sha256Digest>() {
                Ok(d) if d == *l.digest => {}
                _ => report.add(
                    &s,
                    format!(
                        "{path} has sha256 {}, but {ck_path} lists {hex} (the vendored file was modified)",
                        l.digest
                    ),
                ),
            }
        }
    }
    for path in layers.keys() {
        if !claimed.contains(*path) {
            report.add(
                subject(path),
                "belongs to no vendored crate or is not listed in its .cargo-checksum.json",
            );
        }
    }
    for sum in locked.difference(&carried) {
        report.add(
            subject(LOCK_PATH),
            format!("pins a crate with checksum {sum} that the artifact does not carry"),
        );
    }
}

/// `DIR/cargo/config.toml` for an export: every registry the carried crates
/// come from replaced by the vendor directory, named by absolute path.
pub fn render_config(d: &Description, artifacts: &[&Artifact], vendor: &Path) -> Result<String> {
    let vendor = vendor.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "{} is not UTF-8, so config.toml cannot name it; export elsewhere",
            vendor.display()
        ))
    })?;
    let sources: BTreeSet<&str> = artifacts
        .iter()
        .flat_map(|a| &a.packages)
        .filter_map(|p| p.source.as_deref())
        .filter(|s| is_registry(s) && !CRATES_IO.contains(s))
        .collect();
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let mut s = format!(
        "# Written by airlock export from bundle {} {}.\n# Copy to a project's .cargo/config.toml, then: cargo build --offline\n\n[source.crates-io]\nreplace-with = \"vendored-sources\"\n",
        d.name, d.version
    );
    for src in sources {
        // As `cargo vendor` writes it: named by the source, `registry` the index URL.
        let url = src.strip_prefix("registry+").unwrap_or(src);
        s.push_str(&format!(
            "\n[source.{}]\nregistry = {}\nreplace-with = \"vendored-sources\"\n",
            q(src),
            q(url)
        ));
    }
    s.push_str(&format!(
        "\n[source.vendored-sources]\ndirectory = {}\n",
        q(vendor)
    ));
    Ok(s)
}

/// `cargo:` entries.
pub struct Cargo;

impl super::kind::SourceKind for Cargo {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Cargo
    }
    fn plan(
        &self,
        m: &LoadedManifest,
        taken_refs: &mut BTreeSet<String>,
        _staging: &Path,
    ) -> Result<Vec<PlannedArtifact>> {
        plan(m, taken_refs)
    }
    fn carries_packages(&self) -> bool {
        true
    }
    fn pin_layer(&self, l: LayerRef<'_>) -> bool {
        l.path == LOCK_PATH || l.path.rsplit('/').next() == Some(CHECKSUM_FILE)
    }
    fn check_artifact(&self, a: &Artifact, kept: &dyn super::kind::Kept, report: &mut Report) {
        check_artifact(a, &|l| kept.bytes(l), report)
    }
    /// `cargo/vendor/...`, and the Cargo.lock at `cargo/Cargo.lock`, or at
    /// `cargo/entries/N/Cargo.lock` when the bundle has several cargo entries.
    fn export_path(&self, d: &Description, a: &Artifact, l: LayerRef<'_>) -> Option<String> {
        Some(
            if l.path == LOCK_PATH && super::kind::count_of_kind(d, a.kind) > 1 {
                format!(
                    "cargo/entries/{}/{}",
                    super::kind::nth_of_kind(d, a),
                    l.path
                )
            } else {
                format!("cargo/{}", l.path)
            },
        )
    }
    /// `cargo/config.toml`: vendored sources replacing the registries.
    fn export_rendered(
        &self,
        d: &Description,
        artifacts: &[&Artifact],
        to: &Path,
        final_to: &Path,
        _read: super::kind::ReadLayer<'_>,
    ) -> Result<Vec<PathBuf>> {
        fs_err::create_dir_all(to.join("cargo/vendor"))?;
        let text = render_config(d, artifacts, &final_to.join("cargo/vendor"))?;
        Ok(vec![super::packages::write_new(
            &to.join("cargo/config.toml"),
            text.as_bytes(),
        )?])
    }
    fn sbom_package<'a>(
        &self,
        a: &'a Artifact,
        p: &'a crate::bundle::Package,
    ) -> Option<super::kind::SbomPackage<'a>> {
        // Listed by Cargo.lock but not carried (a workspace member or a path
        // dependency): not a payload item.
        let dir = p.path.as_deref()?;
        let files = a
            .layers
            .iter()
            .filter(|l| l.path.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
            .map(|l| (l, None))
            .collect();
        Some(super::kind::SbomPackage {
            purl: crate::purl::cargo_purl(&p.name, &p.version, p.source.as_deref()),
            id: format!("pkg:cargo/{}@{}", p.name, p.version),
            // The sha256 of the `.crate` file, which Cargo.lock pins.
            sha256: p.checksum,
            properties: p
                .source
                .iter()
                .map(|s| ("airlock:cargo:source".to_string(), s.clone()))
                .collect(),
            files,
        })
    }
    fn package_noun(&self) -> &'static str {
        "crate(s)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Layer;

    #[test]
    fn finds_lockfile_checksums_as_text() {
        let h = "8f42a60cbdf9a97f5d2305f08a87dc4e09308d1276d28c869c684d7777685682";
        let v3 = format!("[[package]]\nname = \"itoa\"\nversion = \"1.0.18\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{h}\"\n");
        let v1 = format!("[metadata]\n\"checksum itoa 1.0.18 (registry+https://github.com/rust-lang/crates.io-index)\" = \"{h}\"\n");
        for text in [v3, v1] {
            let found = quoted_digests(&text);
            assert_eq!(found.len(), 1);
            assert_eq!(found.iter().next().unwrap().hex(), h);
        }
        assert!(quoted_digests("\"abc\"").is_empty());
    }

    #[test]
    fn high_side_check_of_a_cargo_artifact() {
        let lib = b"pub fn f() {}\n".as_slice();
        let crate_sum = Sha256Digest::of(b"the .crate file");
        let ck = format!(
            "{{\"files\":{{\"src/lib.rs\":\"{}\"}},\"package\":\"{}\"}}",
            Sha256Digest::of(lib).hex(),
            crate_sum.hex()
        );
        let lock = format!(
            "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"{}\"\nchecksum = \"{}\"\n",
            CRATES_IO[0],
            crate_sum.hex()
        );
        let layer = |path: &str, bytes: &[u8]| Layer {
            media_type: CARGO_FILE.into(),
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            path: path.into(),
            mode: MODE_FILE,
        };
        let blob = crate::bundle::Blob {
            media_type: "x".into(),
            digest: crate_sum,
            size: 0,
        };
        let good = Artifact {
            kind: ArtifactKind::Cargo,
            name: "Cargo.lock".into(),
            reference: "cargo/Cargo.lock".into(),
            artifact_type: CARGO_ARTIFACT.into(),
            manifest: blob.clone(),
            config: blob,
            layers: vec![
                layer(LOCK_PATH, lock.as_bytes()),
                layer("vendor/x/.cargo-checksum.json", ck.as_bytes()),
                layer("vendor/x/src/lib.rs", lib),
            ]
            .into(),
            packages: vec![crate::bundle::Package {
                name: "x".into(),
                version: "1.0.0".into(),
                source: Some(CRATES_IO[0].into()),
                checksum: Some(crate_sum),
                integrity: None,
                path: Some("vendor/x".into()),
                hashes: vec![],
                files: vec![],
            }],
            source: None,
            blobs: vec![],
        };
        let run = |a: &Artifact, lock: &str| {
            let mut report = Report::default();
            let lock = lock.as_bytes().to_vec();
            let ck = ck.as_bytes().to_vec();
            check_artifact(
                a,
                &|l: LayerRef<'_>| match l.path {
                    LOCK_PATH => Some(&lock[..]),
                    p if p.ends_with(CHECKSUM_FILE) => Some(&ck[..]),
                    _ => None,
                },
                &mut report,
            );
            report
                .findings
                .into_iter()
                .map(|f| format!("{}: {}", f.subject, f.problem))
                .collect::<Vec<_>>()
        };
        assert!(run(&good, &lock).is_empty(), "{:?}", run(&good, &lock));

        let mut modified = good.clone();
        modified
            .layers
            .set(2, layer("vendor/x/src/lib.rs", b"changed"));
        let f = run(&modified, &lock);
        assert!(
            f.iter()
                .any(|x| x.contains("crate x 1.0.0") && x.contains("was modified")),
            "{f:?}"
        );

        let mut added = good.clone();
        added
            .layers
            .push(layer("vendor/x/build.rs", b"fn main() {}"));
        let f = run(&added, &lock);
        assert!(
            f.iter()
                .any(|x| x.contains("vendor/x/build.rs") && x.contains("not listed")),
            "{f:?}"
        );

        let more = format!("{lock}checksum = \"{}\"\n", "1".repeat(64));
        let f = run(&good, &more);
        assert!(f.iter().any(|x| x.contains("does not carry")), "{f:?}");

        let mut git = good.clone();
        git.packages[0].source = Some("git+https://example.invalid/x#abc".into());
        let f = run(&git, &lock);
        assert!(f.iter().any(|x| x.contains("not a registry")), "{f:?}");
    }

    #[test]
    fn config_replaces_every_registry() {
        let d = Description {
            api_version: "airlock/v1".into(),
            kind: crate::bundle::DESCRIPTION_KIND.into(),
            name: "demo".into(),
            version: "1.0.0".into(),
            description: None,
            created: "2023-11-14T22:13:20Z".into(),
            generator: "test".into(),
            pickle: Default::default(),
            artifacts: vec![],
            models: vec![],
            content: vec![],
            delta: None,
        };
        let pkg = |source: &str| crate::bundle::Package {
            name: "x".into(),
            version: "1.0.0".into(),
            source: Some(source.into()),
            checksum: None,
            integrity: None,
            path: None,
            hashes: vec![],
            files: vec![],
        };
        let blob = crate::bundle::Blob {
            media_type: "x".into(),
            digest: Sha256Digest::of(b""),
            size: 0,
        };
        let a = Artifact {
            kind: ArtifactKind::Cargo,
            name: "Cargo.lock".into(),
            reference: "cargo/Cargo.lock".into(),
            artifact_type: CARGO_ARTIFACT.into(),
            manifest: blob.clone(),
            config: blob,
            layers: Default::default(),
            packages: vec![
                pkg(CRATES_IO[0]),
                pkg("sparse+https://reg.example/index/"),
                pkg("registry+https://git.example/index"),
            ],
            source: None,
            blobs: vec![],
        };
        let text = render_config(&d, &[&a], Path::new("/x/cargo/vendor \"q\"")).unwrap();
        let v: toml::Table = toml::from_str(&text).unwrap();
        let src = v["source"].as_table().unwrap();
        assert_eq!(
            src["crates-io"]["replace-with"].as_str(),
            Some("vendored-sources")
        );
        assert_eq!(
            src["vendored-sources"]["directory"].as_str(),
            Some("/x/cargo/vendor \"q\"")
        );
        assert_eq!(
            src["sparse+https://reg.example/index/"]["registry"].as_str(),
            Some("sparse+https://reg.example/index/")
        );
        assert_eq!(
            src["registry+https://git.example/index"]["registry"].as_str(),
            Some("https://git.example/index")
        );
    }
}
