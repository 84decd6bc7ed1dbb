//! `npm:` entries: a `package-lock.json` (lockfileVersion 2 or 3), the
//! project's `package.json` beside it, and a folder of the package tarballs
//! the lock pins (`npm pack NAME@VERSION` names them), carried as one OCI
//! artifact of airlock's own type: `package-lock.json`, `package.json` and one
//! layer per tarball (`tarballs/FILE.tgz`).
//!
//! Build side: every package of the lock must come from a registry (git,
//! `file:`, link and workspace packages are refused by name) with a sha512
//! `integrity`, and its tarball must be in the folder, hash to that integrity
//! and be the only file there the lock does not pin. The sha512 is computed in
//! a pass over the tarballs before `pack` copies them; the sha256 computed in
//! the same pass pins the copy (`packages::finish`), so the bytes carried are
//! the bytes checked.
//! High side: the same checks again, from the description, the carried
//! `package-lock.json` and the sha512 of each tarball, computed while the
//! payload is hashed (the tarballs' bytes are not kept, so a tarball may be
//! of any size).
//! Export writes an npm cache (`npm/cache/_cacache/content-v2/sha512/...`,
//! content-addressed by the integrity) that `npm ci --offline --cache
//! npm/cache` installs from with no network.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha512};

use super::kind::Kept;
use super::packages::{PinCheck, PlannedPackage};
use super::{walk, InputFile, PlannedArtifact};
use crate::bundle::{
    Artifact, ArtifactKind, Description, LayerRef, MODE_FILE, NPM_ARTIFACT, NPM_LOCK,
    NPM_PACKAGE_JSON, NPM_TARBALL,
};
use crate::digest::Sha256Digest;
use crate::error::{Error, Report, Result};
use crate::manifest::{normalize, LoadedManifest};

/// Where the lockfile lands inside an npm artifact.
pub const LOCK_PATH: &str = "package-lock.json";
/// Where the project's `package.json` lands inside an npm artifact.
pub const PACKAGE_JSON_PATH: &str = "package.json";
/// The directory holding the tarballs inside an npm artifact.
pub const TARBALL_DIR: &str = "tarballs";
/// The export's npm cache directory (`npm ci --cache`), below the export.
pub const EXPORT_CACHE: &str = "npm/cache";

#[derive(Deserialize)]
struct LockFile {
    #[serde(rename = "lockfileVersion")]
    lockfile_version: Option<serde_json::Value>,
    #[serde(default)]
    packages: Option<BTreeMap<String, LockEntry>>,
}

#[derive(Deserialize)]
struct LockEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    resolved: Option<String>,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default, rename = "inBundle")]
    in_bundle: bool,
}

/// A registry package the lock pins.
#[derive(Debug, Clone)]
struct Locked {
    /// `node_modules/...`: where npm installs it.
    key: String,
    name: String,
    version: String,
    resolved: String,
    /// Every sha512 the lock's `integrity` lists.
    sha512: Vec<[u8; 64]>,
}

impl Locked {
    fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A lockfile read: its registry packages, and every entry airlock refuses
/// (package id → problem).
struct ReadLock {
    locked: Vec<Locked>,
    problems: Vec<(String, String)>,
}

/// Reads a `package-lock.json`; `Err` when it is not one airlock reads at all.
fn read_lock(bytes: &[u8]) -> std::result::Result<ReadLock, String> {
    let lock: LockFile =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package-lock.json: {e}"))?;
    match lock.lockfile_version.as_ref().and_then(|v| v.as_u64()) {
        Some(2 | 3) => {}
        Some(1) => {
            return Err(
                "lockfileVersion 1 does not list every installed package; regenerate it with npm 7 or later: `npm install --package-lock-only --lockfile-version 3`".into(),
            )
        }
        v => {
            return Err(format!(
                "lockfileVersion {} is not 2 or 3 (the versions airlock reads)",
                v.map_or("missing".to_string(), |v| v.to_string())
            ))
        }
    }
    let packages = lock
        .packages
        .ok_or("has no \"packages\" (every lockfileVersion 2 or 3 lock lists them)")?;
    let mut out = ReadLock {
        locked: Vec::new(),
        problems: Vec::new(),
    };
    for (key, e) in packages {
        if key.is_empty() {
            // The project itself.
            continue;
        }
        let installed = key.rsplit_once("node_modules/").map(|(_, n)| n);
        let name = e
            .name
            .clone()
            .or_else(|| installed.map(str::to_owned))
            .unwrap_or_else(|| key.clone());
        let id = match &e.version {
            Some(v) => format!("{name}@{v}"),
            None => name.clone(),
        };
        let mut refuse = |problem: String| out.problems.push((id.clone(), problem));
        if e.link {
            refuse(format!(
                "{key:?} is a link to {} (a workspace or `file:` directory dependency); airlock carries registry packages only: publish it to a registry, or pack its source under files:",
                e.resolved.as_deref().unwrap_or("a directory")
            ));
            continue;
        }
        if installed.is_none() {
            refuse(format!(
                "{key:?} is a directory of the project (a workspace or `file:` directory dependency); airlock carries registry packages only"
            ));
            continue;
        }
        if e.in_bundle {
            // A bundled dependency: inside its parent's tarball.
            continue;
        }
        let resolved = match &e.resolved {
            Some(r) if r.starts_with("https://") || r.starts_with("http://") => r.clone(),
            Some(r)
                if r.starts_with("git")
                    || r.starts_with("github:")
                    || r.starts_with("gitlab:")
                    || r.starts_with("bitbucket:")
                    || r.contains(".git#") =>
            {
                refuse(format!(
                    "is a git dependency ({r}); airlock carries registry packages pinned by a sha512 integrity only: publish it to a registry, or pack its source under files:"
                ));
                continue;
            }
            Some(r) if r.starts_with("file:") => {
                refuse(format!(
                    "is a `file:` dependency ({r}); airlock carries registry packages only: publish it to a registry, or pack its source under files:"
                ));
                continue;
            }
            Some(r) => {
                refuse(format!(
                    "resolved {r:?} is not a registry tarball URL; airlock carries registry packages only"
                ));
                continue;
            }
            None => {
                refuse(format!(
                    "{key:?} has no \"resolved\" URL, without which `npm ci --offline` looks the package up in the registry; regenerate the lock with `npm install --package-lock-only --omit-lockfile-registry-resolved=false`"
                ));
                continue;
            }
        };
        let Some(version) = e.version.clone() else {
            refuse(format!("{key:?} has no version"));
            continue;
        };
        if !safe_name(&name) || !safe_version(&version) {
            refuse(format!(
                "{key:?}: {name:?} {version:?} is not an npm package name and version"
            ));
            continue;
        }
        let Some(integrity) = e.integrity.as_deref() else {
            refuse(format!(
                "{key:?} has no integrity; airlock checks every tarball against the lock's sha512: regenerate the lock (`npm install --package-lock-only`)"
            ));
            continue;
        };
        let sha512 = match parse_sri(integrity) {
            Ok(v) if v.is_empty() => {
                refuse(format!(
                    "{key:?} has integrity {integrity:?}, which has no sha512 (sha1 is too weak to pin a package); regenerate the lock with npm 7 or later"
                ));
                continue;
            }
            Ok(v) => v,
            Err(e) => {
                refuse(format!("{key:?} integrity {integrity:?}: {e}"));
                continue;
            }
        };
        out.locked.push(Locked {
            key,
            name,
            version,
            resolved,
            sha512,
        });
    }
    Ok(out)
}

/// The sha512 values of a subresource-integrity string (`sha512-BASE64`,
/// several separated by spaces; other algorithms are skipped).
fn parse_sri(s: &str) -> std::result::Result<Vec<[u8; 64]>, String> {
    let mut out = Vec::new();
    for token in s.split_ascii_whitespace() {
        let Some(b64) = token.strip_prefix("sha512-") else {
            continue;
        };
        // SRI allows `?options` after the value.
        let b64 = b64.split('?').next().unwrap_or(b64);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("sha512 value is not base64: {e}"))?;
        let digest: [u8; 64] = bytes
            .try_into()
            .map_err(|_| "sha512 value is not 64 bytes".to_string())?;
        out.push(digest);
    }
    Ok(out)
}

/// `sha512-BASE64`, as npm writes it.
fn sri(d: &[u8; 64]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(d)
    )
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where npm's cache (cacache) keeps content with this sha512, below the
/// cache directory: `_cacache/content-v2/sha512/AB/CD/REST`.
pub fn cacache_content_path(d: &[u8; 64]) -> String {
    let h = hex(d);
    format!(
        "_cacache/content-v2/sha512/{}/{}/{}",
        &h[..2],
        &h[2..4],
        &h[4..]
    )
}

/// An npm package name: `name` or `@scope/name`, in characters a file name
/// can hold.
fn safe_name(name: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!()'*".contains(&b))
    };
    match name.strip_prefix('@') {
        Some(rest) => rest.split_once('/').is_some_and(|(s, n)| ok(s) && ok(n)),
        None => name.len() <= 214 && ok(name),
    }
}

fn safe_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+_".contains(&b))
}

/// The file `npm pack NAME@VERSION` writes: `NAME-VERSION.tgz`, a scoped
/// `@scope/name` as `scope-name`.
pub fn tarball_name(name: &str, version: &str) -> String {
    let n = name
        .strip_prefix('@')
        .map_or_else(|| name.to_string(), |s| s.replacen('/', "-", 1));
    format!("{n}-{version}.tgz")
}

/// Reads a file once, returning its sha512 and sha256.
fn hash_file(path: &Path) -> Result<([u8; 64], Sha256Digest)> {
    let mut f = fs_err::File::open(path)?;
    let mut s512 = Sha512::new();
    let mut s256 = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s512.update(&buf[..n]);
        s256.update(&buf[..n]);
    }
    let d256 = Sha256Digest::of_raw(s256.finalize().into());
    Ok((s512.finalize().into(), d256))
}

/// Plans one artifact per `npm:` entry; every problem is reported at once.
pub fn plan(m: &LoadedManifest, taken_refs: &mut BTreeSet<String>) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    let mut report = Report::default();
    for (i, entry) in m.manifest.npm.iter().enumerate() {
        let label = format!("npm[{i}]");
        let lock_src = m.resolve(&entry.lockfile);
        let dir = m.resolve(&entry.tarballs);
        let read = match read_lock(&fs_err::read(&lock_src)?) {
            Ok(r) => r,
            Err(e) => {
                report.add(&label, format!("{}: {e}", lock_src.display()));
                continue;
            }
        };
        for (id, problem) in &read.problems {
            report.add(
                format!("{label} {id}"),
                format!("{}: {problem}", lock_src.display()),
            );
        }
        let mut files = vec![InputFile {
            src: lock_src.clone(),
            path: LOCK_PATH.to_string(),
            mode: MODE_FILE,
            media_type: NPM_LOCK,
            pin: None,
        }];
        let package_json = lock_src.with_file_name(PACKAGE_JSON_PATH);
        // `npm ci` needs the project's package.json: carried when it is there.
        match std::fs::symlink_metadata(&package_json) {
            Ok(md) if md.is_file() => {
                m.within_root(&format!("npm[{i}] package.json"), &package_json)?;
                files.push(InputFile {
                    src: package_json,
                    path: PACKAGE_JSON_PATH.to_string(),
                    mode: MODE_FILE,
                    media_type: NPM_PACKAGE_JSON,
                    pin: None,
                });
            }
            Ok(_) => report.add(
                &label,
                format!(
                    "{} is a symbolic link or not a file; airlock packs regular files only (copy the target in its place)",
                    package_json.display()
                ),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::input(&package_json, e.to_string())),
        }
        // The folder's files by name (walk refuses links and special files).
        let mut found: BTreeMap<String, (PathBuf, u32)> = walk(&dir)?
            .into_iter()
            .map(|(rel, abs, mode)| (rel, (abs, mode)))
            .collect();
        // One tarball per name@version, however often the lock installs it.
        let mut by_file: BTreeMap<String, Locked> = BTreeMap::new();
        for l in &read.locked {
            let file = tarball_name(&l.name, &l.version);
            match by_file.get(&file) {
                Some(o) if o.sha512 != l.sha512 => report.add(
                    format!("{label} {}", l.id()),
                    format!(
                        "{}: {:?} and {:?} both need {file} but pin different integrity; airlock keeps one tarball per name and version",
                        lock_src.display(),
                        o.key,
                        l.key
                    ),
                ),
                Some(_) => {}
                None => {
                    by_file.insert(file, l.clone());
                }
            }
        }
        let mut packages = Vec::new();
        for (file, l) in &by_file {
            let subject = format!("{label} {}", l.id());
            let Some((abs, mode)) = found.remove(file) else {
                report.add(
                    subject,
                    format!(
                        "{} pins it, but {file} is missing from {}; fetch it with `npm pack {} --pack-destination {}`",
                        lock_src.display(),
                        dir.display(),
                        l.id(),
                        dir.display()
                    ),
                );
                continue;
            };
            let (s512, s256) = hash_file(&abs)?;
            if !l.sha512.contains(&s512) {
                report.add(
                    subject,
                    format!(
                        "{} has integrity {}, which does not match the {} that {} pins (a different or modified tarball: fetch it again with `npm pack {}`)",
                        abs.display(),
                        sri(&s512),
                        sri(&l.sha512[0]),
                        lock_src.display(),
                        l.id()
                    ),
                );
                continue;
            }
            let path = format!("{TARBALL_DIR}/{file}");
            files.push(InputFile {
                src: abs.clone(),
                path: path.clone(),
                mode,
                media_type: NPM_TARBALL,
                pin: None,
            });
            packages.push(PlannedPackage {
                subject,
                name: l.name.clone(),
                version: l.version.clone(),
                source: Some(l.resolved.clone()),
                checksum: None,
                integrity: Some(sri(&s512)),
                path: None,
                hashes: Vec::new(),
                files: vec![path.clone()],
                // The bytes pack copies must be the bytes hashed here.
                checks: vec![PinCheck {
                    path,
                    allowed: vec![s256],
                    pinned_by: format!(
                        "the sha256 {s256} it had when its sha512 was checked (it changed while packing)"
                    ),
                }],
            });
        }
        for (rel, (abs, _)) in &found {
            report.add(
                format!("{label} {rel}"),
                format!(
                    "{} is not a tarball {} pins (tarballs are named as `npm pack` names them); remove it",
                    abs.display(),
                    lock_src.display()
                ),
            );
        }
        let name = normalize(&entry.lockfile);
        let reference = super::kind::entry_reference("npm", &name, i, taken_refs);
        out.push(PlannedArtifact {
            kind: ArtifactKind::Npm,
            name,
            reference,
            artifact_type: NPM_ARTIFACT.to_string(),
            files: files.into(),
            packages,
        });
    }
    report.into_result()?;
    Ok(out)
}

/// The high side's check of one npm artifact, from the description, the
/// kept `package-lock.json` and the sha512 of each tarball.
pub fn check_artifact(a: &Artifact, kept: &dyn Kept, report: &mut Report) {
    let subject = |what: &str| format!("{} {what}", a.reference);
    let Some(lock_bytes) = a
        .layers
        .iter()
        .find(|l| l.path == LOCK_PATH)
        .and_then(|l| kept.bytes(l))
    else {
        report.add(
            subject(LOCK_PATH),
            "missing or unreadable: an npm artifact carries the package-lock.json that pins it",
        );
        return;
    };
    let read = match read_lock(lock_bytes) {
        Ok(r) => r,
        Err(e) => {
            report.add(subject(LOCK_PATH), e);
            return;
        }
    };
    for (id, problem) in &read.problems {
        report.add(subject(id), problem.clone());
    }
    // name@version → the sha512 values the carried lock pins for it.
    let mut locked: BTreeMap<String, Vec<[u8; 64]>> = BTreeMap::new();
    for l in &read.locked {
        locked.entry(l.id()).or_default().extend(&l.sha512);
    }
    let layers: HashMap<&str, LayerRef<'_>> = a
        .layers
        .iter()
        .filter(|l| l.path != LOCK_PATH && l.path != PACKAGE_JSON_PATH)
        .map(|l| (l.path, l))
        .collect();
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut carried: BTreeSet<String> = BTreeSet::new();
    for p in &a.packages {
        let id = format!("{}@{}", p.name, p.version);
        let s = subject(&id);
        if !carried.insert(id.clone()) {
            report.add(&s, "listed twice");
        }
        let recorded = match p.integrity.as_deref().map(parse_sri) {
            Some(Ok(v)) if v.len() == 1 => v[0],
            _ => {
                report.add(
                    &s,
                    format!(
                        "the description records integrity {:?}, not one sha512",
                        p.integrity
                    ),
                );
                continue;
            }
        };
        match locked.get(&id) {
            None => report.add(&s, "is not pinned by the carried package-lock.json"),
            Some(pins) if !pins.contains(&recorded) => report.add(
                &s,
                format!(
                    "the description records integrity {}, but the carried package-lock.json pins {}",
                    sri(&recorded),
                    pins.iter().map(sri).collect::<Vec<_>>().join(" ")
                ),
            ),
            Some(_) => {}
        }
        let expected = format!("{TARBALL_DIR}/{}", tarball_name(&p.name, &p.version));
        if p.files.len() != 1 || p.files[0].path != expected {
            report.add(
                &s,
                format!("the description does not name its one tarball {expected}"),
            );
            continue;
        }
        let Some(l) = layers.get(expected.as_str()) else {
            report.add(&s, format!("{expected} is not carried"));
            continue;
        };
        claimed.insert(l.path);
        if p.files[0].sha256 != *l.digest {
            report.add(
                &s,
                format!(
                    "the description records sha256 {} for {expected}, but the layer is {}",
                    p.files[0].sha256, l.digest
                ),
            );
        }
        match kept.sha512(*l) {
            None => report.add(
                &s,
                format!("{expected} could not be read to re-check its integrity"),
            ),
            Some(actual) => {
                if actual != recorded {
                    report.add(
                        &s,
                        format!(
                            "{expected} has integrity {}, but {} is recorded (the tarball was modified)",
                            sri(&actual),
                            sri(&recorded)
                        ),
                    );
                }
            }
        }
    }
    for path in layers.keys() {
        if !claimed.contains(path) {
            report.add(
                subject(path),
                "is the tarball of no package the artifact lists",
            );
        }
    }
    for id in locked.keys() {
        if !carried.contains(id) {
            report.add(
                subject(LOCK_PATH),
                format!("pins {id}, which the artifact does not carry"),
            );
        }
    }
}

/// The package's recorded sha512, if it is one well-formed value.
fn recorded_sha512(a: &Artifact, l: LayerRef<'_>) -> Option<[u8; 64]> {
    let p = a
        .packages
        .iter()
        .find(|p| p.files.iter().any(|f| f.path == l.path))?;
    match parse_sri(p.integrity.as_deref()?) {
        Ok(v) if v.len() == 1 => Some(v[0]),
        _ => None,
    }
}

/// `npm:` entries.
pub struct Npm;

impl super::kind::SourceKind for Npm {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Npm
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
    /// The lock.
    fn pin_layer(&self, l: LayerRef<'_>) -> bool {
        l.path == LOCK_PATH
    }
    /// Every tarball (its sha512, against the lock's integrity).
    fn sha512_layer(&self, l: LayerRef<'_>) -> bool {
        l.path.starts_with(&format!("{TARBALL_DIR}/"))
    }
    fn check_artifact(&self, a: &Artifact, kept: &dyn Kept, report: &mut Report) {
        check_artifact(a, kept, report)
    }
    /// Tarballs into one npm cache, `npm/cache/_cacache/content-v2/sha512/...`
    /// by their recorded integrity (shared by every npm entry); the lock and
    /// package.json at `npm/`, or at `npm/entries/N/` when the bundle has
    /// several npm entries.
    fn export_path(&self, d: &Description, a: &Artifact, l: LayerRef<'_>) -> Option<String> {
        if let Some(s) = recorded_sha512(a, l) {
            return Some(format!("{EXPORT_CACHE}/{}", cacache_content_path(&s)));
        }
        Some(if super::kind::count_of_kind(d, a.kind) > 1 {
            format!("npm/entries/{}/{}", super::kind::nth_of_kind(d, a), l.path)
        } else {
            format!("npm/{}", l.path)
        })
    }
    fn sbom_package<'a>(
        &self,
        a: &'a Artifact,
        p: &'a crate::bundle::Package,
    ) -> Option<super::kind::SbomPackage<'a>> {
        let files = p
            .files
            .iter()
            .filter_map(|f| a.layers.iter().find(|l| l.path == f.path))
            .map(|l| (l, None))
            .collect();
        let (scope, name) = match p.name.split_once('/') {
            Some((s, n)) if s.starts_with('@') => (s, n),
            _ => ("", p.name.as_str()),
        };
        let mut properties = Vec::new();
        if let Some(i) = &p.integrity {
            properties.push(("airlock:npm:integrity".to_string(), i.clone()));
        }
        if let Some(r) = &p.source {
            properties.push(("airlock:npm:resolved".to_string(), r.clone()));
        }
        let purl = crate::purl::purl("npm", &[scope, name], Some(&p.version), &[]);
        Some(super::kind::SbomPackage {
            id: purl.clone(),
            purl,
            sha256: None,
            properties,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Layer;

    const LOCK: &str = r#"{
  "name": "x", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {
    "": {"name": "x", "version": "1.0.0"},
    "node_modules/@isaacs/string-locale-compare": {
      "version": "1.1.0",
      "resolved": "https://registry.npmjs.org/@isaacs/string-locale-compare/-/string-locale-compare-1.1.0.tgz",
      "integrity": "sha512-SQ7Kzhh9+D+ZW9MA0zkYv3VXhIDNx+LzM6EJ+/65I3QY+enU6Itte7E5XX7EWrqLW2FN4n06GWzBnPoC3th2aQ=="
    },
    "node_modules/a/node_modules/b": {
      "version": "2.0.0",
      "resolved": "https://registry.npmjs.org/b/-/b-2.0.0.tgz",
      "integrity": "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA= sha512-SQ7Kzhh9+D+ZW9MA0zkYv3VXhIDNx+LzM6EJ+/65I3QY+enU6Itte7E5XX7EWrqLW2FN4n06GWzBnPoC3th2aQ=="
    },
    "node_modules/g": {"version": "1.0.0", "resolved": "git+ssh://git@github.com/o/g.git#abc", "integrity": "sha512-x"},
    "node_modules/f": {"version": "1.0.0", "resolved": "file:../f-1.0.0.tgz"},
    "node_modules/w": {"resolved": "packages/w", "link": true},
    "packages/w": {"name": "w", "version": "0.1.0"},
    "node_modules/s": {"version": "1.0.0", "resolved": "https://registry.npmjs.org/s/-/s-1.0.0.tgz", "integrity": "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    "node_modules/n": {"version": "1.0.0", "resolved": "https://registry.npmjs.org/n/-/n-1.0.0.tgz"},
    "node_modules/r": {"version": "1.0.0", "integrity": "sha512-SQ7Kzhh9+D+ZW9MA0zkYv3VXhIDNx+LzM6EJ+/65I3QY+enU6Itte7E5XX7EWrqLW2FN4n06GWzBnPoC3th2aQ=="},
    "node_modules/a/node_modules/bundled": {"version": "1.0.0", "inBundle": true}
  }
}"#;

    #[test]
    fn reads_registry_packages_and_refuses_the_rest() {
        let r = read_lock(LOCK.as_bytes()).unwrap();
        let ids: Vec<String> = r.locked.iter().map(Locked::id).collect();
        assert_eq!(ids, ["@isaacs/string-locale-compare@1.1.0", "b@2.0.0"]);
        assert_eq!(r.locked[1].sha512.len(), 1);
        let problems: BTreeMap<&str, &str> = r
            .problems
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert!(problems["g@1.0.0"].contains("git dependency"));
        assert!(problems["f@1.0.0"].contains("`file:` dependency"));
        assert!(problems["w"].contains("link"));
        assert!(problems["w@0.1.0"].contains("directory of the project"));
        assert!(problems["s@1.0.0"].contains("no sha512"));
        assert!(problems["n@1.0.0"].contains("no integrity"));
        assert!(problems["r@1.0.0"].contains("no \"resolved\""));
        assert_eq!(problems.len(), 7, "{problems:?}");

        let v1 = r#"{"lockfileVersion": 1, "dependencies": {}}"#;
        assert!(read_lock(v1.as_bytes())
            .err()
            .unwrap()
            .contains("--lockfile-version 3"));
    }

    #[test]
    fn names_tarballs_and_cache_paths_as_npm_does() {
        assert_eq!(
            tarball_name("@isaacs/string-locale-compare", "1.1.0"),
            "isaacs-string-locale-compare-1.1.0.tgz"
        );
        assert_eq!(tarball_name("is-odd", "3.0.1"), "is-odd-3.0.1.tgz");
        let d = parse_sri("sha512-Wu1VHeILBK8KAWJUAiSZQX94GmOE45Rg6/538fKwiloUu21KncEkYGPqob2oSZ5mUT73vLGrHQjKw3KMPwfDzg==").unwrap();
        assert_eq!(
            cacache_content_path(&d[0]),
            "_cacache/content-v2/sha512/5a/ed/551de20b04af0a016254022499417f781a6384e39460ebfe77f1f2b08a5a14bb6d4a9dc1246063eaa1bda8499e66513ef7bcb1ab1d08cac3728c3f07c3ce"
        );
        assert!(safe_name("@a/b") && safe_name("is-odd"));
        assert!(!safe_name("../x") && !safe_name("@a/../b") && !safe_name("a/b"));
        assert!(!safe_version("1/../2") && safe_version("1.0.0-rc.1+b"));
    }

    #[test]
    fn high_side_check_of_an_npm_artifact() {
        let tgz = b"a tarball".as_slice();
        let digest: [u8; 64] = Sha512::digest(tgz).into();
        let lock = format!(
            r#"{{"lockfileVersion": 3, "packages": {{"": {{}}, "node_modules/@s/x": {{"version": "1.0.0", "resolved": "https://r.example/x.tgz", "integrity": "{}"}}}}}}"#,
            sri(&digest)
        );
        let layer = |path: &str, bytes: &[u8]| Layer {
            media_type: NPM_TARBALL.into(),
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            path: path.into(),
            mode: MODE_FILE,
        };
        let blob = crate::bundle::Blob {
            media_type: "x".into(),
            digest: Sha256Digest::of(b""),
            size: 0,
        };
        let good = Artifact {
            kind: ArtifactKind::Npm,
            name: "package-lock.json".into(),
            reference: "npm/package-lock.json".into(),
            artifact_type: NPM_ARTIFACT.into(),
            manifest: blob.clone(),
            config: blob,
            layers: vec![
                layer(LOCK_PATH, lock.as_bytes()),
                layer("tarballs/s-x-1.0.0.tgz", tgz),
            ]
            .into(),
            packages: vec![crate::bundle::Package {
                name: "@s/x".into(),
                version: "1.0.0".into(),
                source: Some("https://r.example/x.tgz".into()),
                checksum: None,
                integrity: Some(sri(&digest)),
                path: None,
                hashes: vec![],
                files: vec![crate::bundle::PackageFile {
                    path: "tarballs/s-x-1.0.0.tgz".into(),
                    sha256: Sha256Digest::of(tgz),
                }],
            }],
            source: None,
            blobs: vec![],
        };
        // The lock's bytes; every other layer's sha512 is that of `tarball`.
        struct Read<'a>(&'a [u8], Option<&'a [u8]>);
        impl Kept for Read<'_> {
            fn bytes(&self, l: LayerRef<'_>) -> Option<&[u8]> {
                (l.path == LOCK_PATH).then_some(self.0)
            }
            fn sha512(&self, l: LayerRef<'_>) -> Option<[u8; 64]> {
                let b = self.1.filter(|_| l.path != LOCK_PATH)?;
                Some(Sha512::digest(b).into())
            }
        }
        let run = |a: &Artifact, tarball: Option<&[u8]>| {
            let mut report = Report::default();
            check_artifact(a, &Read(lock.as_bytes(), tarball), &mut report);
            report
                .findings
                .into_iter()
                .map(|f| format!("{}: {}", f.subject, f.problem))
                .collect::<Vec<_>>()
        };
        assert!(
            run(&good, Some(tgz)).is_empty(),
            "{:?}",
            run(&good, Some(tgz))
        );

        let f = run(&good, Some(b"another tarball"));
        assert!(
            f.iter()
                .any(|x| x.contains("@s/x@1.0.0") && x.contains("was modified")),
            "{f:?}"
        );
        let f = run(&good, None);
        assert!(f.iter().any(|x| x.contains("could not be read")), "{f:?}");

        let mut extra = good.clone();
        extra.layers.push(layer("run.sh", b"#!/bin/sh"));
        let f = run(&extra, Some(tgz));
        assert!(
            f.iter()
                .any(|x| x.contains("run.sh") && x.contains("no package")),
            "{f:?}"
        );

        let mut forged = good.clone();
        let other: [u8; 64] = Sha512::digest(b"other").into();
        forged.packages[0].integrity = Some(sri(&other));
        let f = run(&forged, Some(tgz));
        assert!(
            f.iter()
                .any(|x| x.contains("the carried package-lock.json pins")),
            "{f:?}"
        );

        let mut dropped = good.clone();
        dropped.packages.clear();
        let f = run(&dropped, Some(tgz));
        assert!(
            f.iter()
                .any(|x| x.contains("pins @s/x@1.0.0, which the artifact does not carry")),
            "{f:?}"
        );
    }
}
