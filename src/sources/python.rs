//! `python:` entries: a requirements file in pip's hash-checking form and the
//! wheelhouse holding the files it pins, carried as one OCI artifact of
//! airlock's own type: the requirements file as `requirements.txt` and one
//! raw layer per distribution file.
//!
//! The requirements parser is plain text and shared by both sides: the build
//! side refuses what cannot be pinned; the high side parses the carried
//! `requirements.txt` again and checks every package against it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

mod pylock;

use super::packages::{PinCheck, PlannedPackage};
use super::{walk, InputFile, PlannedArtifact};
use crate::bundle::{
    Artifact, ArtifactKind, Description, LayerRef, MODE_FILE, PYTHON_ARTIFACT, PYTHON_PYLOCK,
    PYTHON_REQUIREMENTS, PYTHON_SDIST, PYTHON_WHEEL,
};
use crate::digest::Sha256Digest;
use crate::error::{Report, Result};
use crate::manifest::{normalize, LoadedManifest};

/// Where the requirements file lands inside a python artifact.
pub const REQUIREMENTS_PATH: &str = "requirements.txt";
/// The layer holding a `lock:` entry's original `pylock.toml`, byte for byte.
pub const PYLOCK_PATH: &str = "pylock.toml";

/// One `name==version` requirement with its sha256 pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// First physical line of the requirement (1-based).
    pub line: usize,
    /// As written.
    pub name: String,
    /// `[a,b]` or empty.
    pub extras: String,
    pub version: String,
    /// The environment marker after `;`, if any.
    pub marker: Option<String>,
    /// Every `--hash=sha256:` value, in order, without duplicates.
    pub hashes: Vec<Sha256Digest>,
}

/// Why a requirements line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    /// The package the line names, when it names one.
    pub name: Option<String>,
    pub problem: String,
}

/// Parses a requirements file in pip's hash-checking form. Every requirement
/// must be `name==version` with at least one `--hash=sha256:`; includes,
/// editables, direct references, ranges and unknown options are problems.
/// Index options (`--index-url`, `--find-links`, ...) are ignored.
pub fn parse_requirements(text: &str) -> (Vec<Requirement>, Vec<Problem>) {
    let mut reqs = Vec::new();
    let mut problems = Vec::new();
    let mut logical = String::new();
    let mut start = 1;
    for (n, raw) in text.lines().enumerate() {
        if logical.is_empty() {
            start = n + 1;
        }
        if let Some(joined) = raw.strip_suffix('\\') {
            logical.push_str(joined);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        parse_logical(
            start,
            &std::mem::take(&mut logical),
            &mut reqs,
            &mut problems,
        );
    }
    if !logical.is_empty() {
        parse_logical(start, &logical, &mut reqs, &mut problems);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &reqs {
        if let Some(first) = seen.insert(normalize_name(&r.name), r.line) {
            problems.push(Problem {
                line: r.line,
                name: Some(r.name.clone()),
                problem: format!(
                    "line {}: {} is required twice (also on line {first}); keep one pinned line",
                    r.line, r.name
                ),
            });
        }
    }
    (reqs, problems)
}

/// Parses a PEP 751 `pylock.toml` as `plan` does: the number of packages
/// read and of problems found. For the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn parse_pylock(text: &str, only_binary: bool) -> std::result::Result<(usize, usize), String> {
    pylock::parse(text, only_binary).map(|(packages, problems)| (packages.len(), problems.len()))
}

/// Cuts a comment: `#` at the start or after whitespace, as pip does.
fn strip_comment(s: &str) -> &str {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &s[..i];
        }
    }
    s
}

const IGNORED_OPTIONS: &[&str] = &[
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--no-index",
    "--trusted-host",
    "--pre",
    "--prefer-binary",
    "--require-hashes",
    "--only-binary",
    "--no-binary",
    "--use-feature",
];

fn parse_logical(line: usize, text: &str, reqs: &mut Vec<Requirement>, out: &mut Vec<Problem>) {
    let text = strip_comment(text).trim();
    if text.is_empty() {
        return;
    }
    let problem = |name: Option<&str>, p: String| Problem {
        line,
        name: name.map(str::to_owned),
        problem: format!("line {line}: {p}"),
    };
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if text.starts_with('-') {
        let first = tokens[0];
        let key = if first.starts_with("--") {
            first.split('=').next().unwrap_or(first)
        } else {
            // Its first two characters (`-rfile.txt` is `-r file.txt`); not
            // two bytes, which may cut a character.
            &first[..first.char_indices().nth(2).map_or(first.len(), |(i, _)| i)]
        };
        let why = match key {
            "-r" | "--requirement" | "-c" | "--constraint" => format!(
                "{text:?} includes another file; airlock reads one requirements file, so inline it (pip-compile writes a single file)"
            ),
            "-e" | "--editable" => format!(
                "{text:?} is an editable requirement, which cannot be pinned by hash; build a wheel and pin it"
            ),
            "--hash" => "--hash without a requirement before it (a missing `\\` line continuation?)".to_string(),
            k if IGNORED_OPTIONS.contains(&k) => return,
            k => format!("unknown option {k}; a hash-checking requirements file holds `name==version --hash=sha256:...` lines"),
        };
        out.push(problem(None, why));
        return;
    }
    // As pip does: the requirement runs up to the first token that is an option.
    let split = tokens
        .iter()
        .position(|t| t.starts_with('-'))
        .unwrap_or(tokens.len());
    let spec = tokens[..split].join(" ");
    let (spec, marker) = match spec.split_once(';') {
        Some((s, m)) => (
            s.trim().to_string(),
            Some(m.trim().to_string()).filter(|m| !m.is_empty()),
        ),
        None => (spec.trim().to_string(), None),
    };
    let name_end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let name = &spec[..name_end];
    if !valid_project_name(name) {
        out.push(problem(
            None,
            format!("{spec:?} is not a `name==version` requirement (paths and URLs cannot be pinned by airlock)"),
        ));
        return;
    }
    let mut rest = spec[name_end..].trim_start();
    let mut extras = String::new();
    if rest.starts_with('[') {
        let Some(end) = rest.find(']') else {
            out.push(problem(Some(name), format!("{name}: unclosed [extras]")));
            return;
        };
        extras = rest[..=end].split_whitespace().collect();
        rest = rest[end + 1..].trim_start();
    }
    let version = if rest.starts_with('@') {
        Err(format!(
            "{name} is a direct reference ({rest}); write {name}==<version> with --hash=sha256:... pins"
        ))
    } else if rest.is_empty() {
        Err(format!(
            "{name} is not pinned; write {name}==<version> with --hash=sha256:... pins"
        ))
    } else if rest.contains(',') || !rest.starts_with("==") || rest.starts_with("===") {
        Err(format!(
            "{name} is a version range ({rest}), not a pin; write {name}==<version>"
        ))
    } else {
        let v = rest[2..].trim();
        if v.is_empty() || v.contains('*') || v.contains(char::is_whitespace) {
            Err(format!(
                "{name} is a version range ({rest}), not a pin; write {name}==<version>"
            ))
        } else {
            Ok(v.to_string())
        }
    };
    let version = match version {
        Ok(v) => v,
        Err(e) => {
            out.push(problem(Some(name), e));
            return;
        }
    };
    let mut hashes: Vec<Sha256Digest> = Vec::new();
    let mut other_algorithms = 0;
    let mut opts = tokens[split..].iter();
    while let Some(t) = opts.next() {
        let value = if let Some(v) = t.strip_prefix("--hash=") {
            Some(v)
        } else if *t == "--hash" {
            opts.next().copied()
        } else {
            out.push(problem(
                Some(name),
                format!("{name}: option {t} is not supported on a requirement line (airlock accepts --hash only)"),
            ));
            return;
        };
        let Some(value) = value else {
            out.push(problem(
                Some(name),
                format!("{name}: --hash without a value"),
            ));
            return;
        };
        match value.split_once(':') {
            Some(("sha256", hex)) => match hex.to_ascii_lowercase().parse::<Sha256Digest>() {
                Ok(d) => {
                    if !hashes.contains(&d) {
                        hashes.push(d)
                    }
                }
                Err(e) => {
                    out.push(problem(Some(name), format!("{name}: --hash={value}: {e}")));
                    return;
                }
            },
            Some(("sha384" | "sha512", _)) => other_algorithms += 1,
            _ => {
                out.push(problem(
                    Some(name),
                    format!(
                        "{name}: --hash={value} is not algorithm:hex with sha256, sha384 or sha512"
                    ),
                ));
                return;
            }
        }
    }
    if hashes.is_empty() {
        out.push(problem(
            Some(name),
            if other_algorithms > 0 {
                format!("{name}=={version} pins no sha256 hash (airlock checks sha256); add --hash=sha256:... pins")
            } else {
                format!("{name}=={version} has no --hash=sha256:... pin; generate them (pip-compile --generate-hashes, or pip hash FILE)")
            },
        ));
        return;
    }
    reqs.push(Requirement {
        line,
        name: name.to_string(),
        extras,
        version,
        marker,
        hashes,
    });
}

/// PEP 508 project names: letters, digits, `-_.`, starting and ending alphanumeric.
fn valid_project_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// PEP 503 normalized name: lowercase, runs of `-_.` as one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A version in a form where PEP 440 spellings of the same version compare
/// equal in the common cases: `1.0` = `1.0.0` = `v1.0`, `1.0-RC1` = `1.0rc1`.
pub fn canonical_version(v: &str) -> String {
    let v = v.trim().to_ascii_lowercase();
    let v = v.strip_prefix('v').unwrap_or(&v);
    let (public, local) = match v.split_once('+') {
        Some((p, l)) => (p, Some(l.replace(['-', '_'], "."))),
        None => (v, None),
    };
    let (epoch, public) = match public.split_once('!') {
        Some((e, p)) => (e.trim_start_matches('0').to_string(), p),
        None => (String::new(), public),
    };
    let release_end = public
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(public.len());
    let mut release: Vec<String> = public[..release_end]
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let t = s.trim_start_matches('0');
            if t.is_empty() { "0" } else { t }.to_string()
        })
        .collect();
    while release.len() > 1 && release.last().is_some_and(|s| s == "0") {
        release.pop();
    }
    let mut rest: String = public[release_end..]
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .collect();
    for (long, short) in [
        ("alpha", "a"),
        ("beta", "b"),
        ("preview", "rc"),
        ("pre", "rc"),
        ("rev", "post"),
    ] {
        rest = rest.replace(long, short);
    }
    let mut out = String::new();
    if !epoch.is_empty() {
        out.push_str(&epoch);
        out.push('!');
    }
    out.push_str(&release.join("."));
    out.push_str(&rest);
    if let Some(l) = local {
        out.push('+');
        out.push_str(&l);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistKind {
    Wheel,
    Sdist,
}

/// A distribution file's kind, project name and version, from its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dist {
    pub kind: DistKind,
    pub name: String,
    pub version: String,
}

/// Parses `name-version(-build)?-py-abi-platform.whl` and `name-version.tar.gz`
/// (also `.zip`, `.tar.bz2`, `.tgz`, `.tar.xz`).
pub fn parse_dist(file: &str) -> Option<Dist> {
    if let Some(stem) = file.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if (parts.len() == 5 || parts.len() == 6) && parts.iter().all(|p| !p.is_empty()) {
            return Some(Dist {
                kind: DistKind::Wheel,
                name: parts[0].to_string(),
                version: parts[1].to_string(),
            });
        }
        return None;
    }
    for ext in [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz"] {
        if let Some(stem) = file.strip_suffix(ext) {
            let (name, version) = stem.rsplit_once('-')?;
            if name.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            return Some(Dist {
                kind: DistKind::Sdist,
                name: name.to_string(),
                version: version.to_string(),
            });
        }
    }
    None
}

fn same_version(a: &str, b: &str) -> bool {
    canonical_version(a) == canonical_version(b)
}

/// One package an entry pins: from its requirements file, or from its lock
/// (with the files the lock names for it).
struct Pin {
    req: Requirement,
    /// Where it is pinned, for messages: `requirements.txt line 3`, `pylock.toml packages[2]`.
    origin: String,
    locked: Option<Vec<pylock::LockedFile>>,
}

/// A distribution file found for a pin.
struct Found {
    rel: String,
    abs: PathBuf,
    mode: u32,
    kind: DistKind,
}

/// A file to download into the staging directory once planning found no problem.
struct Pending {
    subject: String,
    url: String,
    sha256: Sha256Digest,
    size: Option<u64>,
    dest: PathBuf,
}

/// Plans one artifact per `python:` entry. Refused (all problems at once, exit
/// 1): unpinned or range requirements, a requirement with no file in the
/// wheelhouse, a file no requirement names (unless `allowExtra`, which leaves
/// it out of the bundle), an sdist when `onlyBinary`, and one package pinned
/// to two versions by two entries. A `lock:` (PEP 751) adds its packages:
/// each file it names is taken from the wheelhouse, else from its `path`,
/// else downloaded from its `https://` URL into `staging` (hash-checked while
/// downloading, after every other check passed); the artifact then carries a
/// `requirements.txt` airlock writes, pinning every package to the hashes of
/// the files carried. Hashes are checked after `pack` hashes the files
/// (`packages::finish`).
pub fn plan(
    m: &LoadedManifest,
    taken_refs: &mut BTreeSet<String>,
    staging: &Path,
) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    let mut report = Report::default();
    let mut pinned: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    for (i, entry) in m.manifest.python.iter().enumerate() {
        let label = format!("python[{i}]");
        let mut pins: Vec<Pin> = Vec::new();
        // Packages a refused requirement names: their files are reported
        // with that requirement, not again as extra files.
        let mut refused: BTreeSet<String> = BTreeSet::new();
        let req_src = entry.requirements.as_deref().map(|r| m.resolve(r));
        if let Some(req_src) = &req_src {
            let text = fs_err::read_to_string(req_src)?;
            let (reqs, problems) = parse_requirements(&text);
            refused.extend(
                problems
                    .iter()
                    .filter_map(|p| p.name.as_deref())
                    .map(normalize_name),
            );
            for p in problems {
                let subject = match &p.name {
                    Some(n) => format!("{label} {n}"),
                    None => label.clone(),
                };
                report.add(subject, format!("{}: {}", req_src.display(), p.problem));
            }
            pins.extend(reqs.into_iter().map(|r| Pin {
                origin: format!("{} line {}", req_src.display(), r.line),
                req: r,
                locked: None,
            }));
        }
        let lock_src = entry.lock.as_deref().map(|l| m.resolve(l));
        if let Some(lock_src) = &lock_src {
            let text = fs_err::read_to_string(lock_src)?;
            let (locked, problems) = pylock::parse(&text, entry.only_binary)
                .map_err(|e| crate::error::Error::input(lock_src, e))?;
            refused.extend(
                problems
                    .iter()
                    .filter_map(|p| p.name.as_deref())
                    .map(normalize_name),
            );
            for p in problems {
                let subject = match &p.name {
                    Some(n) => format!("{label} {n}"),
                    None => label.clone(),
                };
                report.add(subject, format!("{}: {}", lock_src.display(), p.problem));
            }
            for p in locked {
                let origin = format!("{} packages[{}]", lock_src.display(), p.index);
                if let Some(other) = pins
                    .iter()
                    .find(|q| normalize_name(&q.req.name) == normalize_name(&p.name))
                {
                    report.add(
                        format!("{label} {}", p.name),
                        format!(
                            "pinned by both {} and {origin}; pin each package in one of them",
                            other.origin
                        ),
                    );
                    continue;
                }
                pins.push(Pin {
                    req: Requirement {
                        line: p.index + 1,
                        name: p.name,
                        extras: String::new(),
                        version: p.version,
                        marker: p.marker,
                        // The hashes of the files carried, filled in below.
                        hashes: Vec::new(),
                    },
                    origin,
                    locked: Some(p.files),
                });
            }
        }
        let index: HashMap<String, usize> = pins
            .iter()
            .enumerate()
            .map(|(k, p)| (normalize_name(&p.req.name), k))
            .collect();
        for p in &pins {
            let r = &p.req;
            let norm = normalize_name(&r.name);
            match pinned.get(&norm) {
                Some((j, v)) if !same_version(v, &r.version) => report.add(
                    format!("{label} {}", r.name),
                    format!(
                        "pinned to {} here but to {v} by python[{j}]; a bundle exports one Python environment, so pin one version",
                        r.version
                    ),
                ),
                Some(_) => {}
                None => {
                    pinned.insert(norm, (i, r.version.clone()));
                }
            }
        }

        let mut files_of: Vec<Vec<Found>> = pins.iter().map(|_| Vec::new()).collect();
        let wheelhouse = entry.wheelhouse.as_deref().map(|w| m.resolve(w));
        if let Some(wheelhouse) = &wheelhouse {
            let skip: Vec<PathBuf> = [&req_src, &lock_src]
                .into_iter()
                .flatten()
                .filter_map(|p| fs_err::canonicalize(p).ok())
                .collect();
            let pinned_by = |k: usize| {
                let r = &pins[k].req;
                format!("{} pins {}=={}", pins[k].origin, r.name, r.version)
            };
            for (rel, abs, mode) in walk(wheelhouse)? {
                if !skip.is_empty() && std::fs::canonicalize(&abs).is_ok_and(|c| skip.contains(&c))
                {
                    continue;
                }
                let extra = |report: &mut Report, subject: String, why: String| {
                    if !entry.allow_extra {
                        report.add(
                            subject,
                            format!("{why}; remove it from the wheelhouse or set allowExtra: true (extra files are left out of the bundle)"),
                        );
                    }
                };
                let dist = (!rel.contains('/')).then(|| parse_dist(&rel)).flatten();
                let Some(dist) = dist else {
                    extra(
                        &mut report,
                        format!("{label} {rel}"),
                        format!(
                            "{} is not a wheel or source distribution in the top level of the wheelhouse, and no requirement names it",
                            abs.display()
                        ),
                    );
                    continue;
                };
                let Some(&k) = index.get(&normalize_name(&dist.name)) else {
                    if refused.contains(&normalize_name(&dist.name)) {
                        continue;
                    }
                    extra(
                        &mut report,
                        format!("{label} {}", dist.name),
                        format!(
                            "{} is an extra file: no requirement in {} names {}",
                            abs.display(),
                            [&req_src, &lock_src]
                                .into_iter()
                                .flatten()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(" or "),
                            dist.name
                        ),
                    );
                    continue;
                };
                let r = &pins[k].req;
                if !same_version(&dist.version, &r.version) {
                    extra(
                        &mut report,
                        format!("{label} {}", r.name),
                        format!(
                            "{} is an extra file: version {}, but {}",
                            abs.display(),
                            dist.version,
                            pinned_by(k)
                        ),
                    );
                    continue;
                }
                if dist.kind == DistKind::Sdist && entry.only_binary {
                    report.add(
                        format!("{label} {}=={}", r.name, r.version),
                        format!(
                            "{} is a source distribution and onlyBinary is true (installing it runs its build code); use a wheel, or set onlyBinary: false",
                            abs.display()
                        ),
                    );
                    continue;
                }
                if let Some(locked) = &pins[k].locked {
                    if !locked.iter().any(|f| f.name == rel) {
                        extra(
                            &mut report,
                            format!("{label} {}", r.name),
                            format!(
                                "{} is an extra file: {} lists no file of that name",
                                abs.display(),
                                pins[k].origin
                            ),
                        );
                        continue;
                    }
                }
                files_of[k].push(Found {
                    rel,
                    abs,
                    mode,
                    kind: dist.kind,
                });
            }
        }

        // Locked files the wheelhouse lacks: from `path`, else downloaded.
        for (k, pin) in pins.iter_mut().enumerate() {
            let Some(locked) = &pin.locked else { continue };
            let r = &pin.req;
            let subject = format!("{label} {}=={}", r.name, r.version);
            let lock_dir = lock_src
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            for f in locked {
                if files_of[k].iter().any(|x| x.rel == f.name) {
                    continue;
                }
                if let Some(p) = &f.path {
                    let abs = lock_dir.join(p);
                    if abs.exists() {
                        m.within_root(&format!("{label}.lock ({} path {p})", pin.origin), &abs)?;
                    }
                    if abs.is_file() {
                        let (_, abs, mode) = walk(&abs)?.remove(0);
                        files_of[k].push(Found {
                            rel: f.name.clone(),
                            abs,
                            mode,
                            kind: f.kind,
                        });
                        continue;
                    }
                    if f.url.is_none() {
                        report.add(
                            &subject,
                            format!(
                                "missing: {} is not in the wheelhouse and {} (its path in {}) is not a file",
                                f.name,
                                abs.display(),
                                pin.origin
                            ),
                        );
                        continue;
                    }
                }
                let Some(url) = &f.url else {
                    report.add(
                        &subject,
                        format!(
                            "missing: {} is not in the wheelhouse and {} gives no url for it",
                            f.name, pin.origin
                        ),
                    );
                    continue;
                };
                if !crate::fetch::is_https(url) {
                    report.add(
                        &subject,
                        format!(
                            "{} is not in the wheelhouse and its URL {url} is not https://; airlock downloads over HTTPS only: put the file in the wheelhouse, or lock an https:// URL",
                            f.name
                        ),
                    );
                    continue;
                }
                let dest = staging.join(format!("downloads/{i}")).join(&f.name);
                pending.push(Pending {
                    subject: subject.clone(),
                    url: url.clone(),
                    sha256: f.sha256,
                    size: f.size,
                    dest: dest.clone(),
                });
                files_of[k].push(Found {
                    rel: f.name.clone(),
                    abs: dest,
                    mode: MODE_FILE,
                    kind: f.kind,
                });
            }
            let mut hashes = Vec::new();
            for x in &files_of[k] {
                if let Some(f) = locked.iter().find(|f| f.name == x.rel) {
                    if !hashes.contains(&f.sha256) {
                        hashes.push(f.sha256);
                    }
                }
            }
            pin.req.hashes = hashes;
        }

        // With a lock, the artifact's requirements.txt is written here.
        let req_file = match (&lock_src, &req_src) {
            (None, Some(req_src)) => req_src.clone(),
            (Some(_), _) => {
                let lock_rel = entry.lock.as_deref().expect("lock given");
                let text = render_pins(
                    &format!(
                        "# Written by airlock from {} (PEP 751): every package it pins, with the sha256 of each file carried.\n",
                        normalize(lock_rel)
                    ),
                    pins.iter().map(|p| &p.req),
                );
                let (back, problems) = parse_requirements(&text);
                let same = problems.is_empty()
                    && back.len() == pins.len()
                    && back.iter().zip(&pins).all(|(b, p)| {
                        b.name == p.req.name
                            && b.extras == p.req.extras
                            && b.version == p.req.version
                            && b.marker == p.req.marker
                            && b.hashes == p.req.hashes
                    });
                if !same && pins.iter().all(|p| !p.req.hashes.is_empty()) {
                    report.add(
                        &label,
                        format!(
                            "the packages of {} cannot be written as one requirements file pip reads back the same ({}); check their names, versions and markers",
                            lock_src.as_ref().expect("lock").display(),
                            problems
                                .first()
                                .map(|p| p.problem.as_str())
                                .unwrap_or("a requirement reads back differently")
                        ),
                    );
                }
                let path = staging.join(format!("python-{i}-requirements.txt"));
                fs_err::write(&path, text)?;
                path
            }
            (None, None) => unreachable!("checked when loading"),
        };

        let mut files = vec![InputFile {
            src: req_file,
            path: REQUIREMENTS_PATH.to_string(),
            mode: MODE_FILE,
            media_type: PYTHON_REQUIREMENTS,
            pin: None,
        }];
        if let Some(lock) = &lock_src {
            // The user's own lock crosses too, so a PEP 751 tool can install from it.
            files.push(InputFile {
                src: lock.clone(),
                path: PYLOCK_PATH.to_string(),
                mode: MODE_FILE,
                media_type: PYTHON_PYLOCK,
                pin: None,
            });
        }
        let mut packages = Vec::new();
        for (pin, dists) in pins.iter().zip(files_of) {
            let r = &pin.req;
            let subject = format!("{label} {}=={}", r.name, r.version);
            if dists.is_empty() {
                if pin.locked.is_none() {
                    report.add(
                        &subject,
                        format!(
                            "missing: no file in {} for {}=={} ({}); run `pip download` for it again",
                            wheelhouse
                                .as_ref()
                                .map(|w| w.display().to_string())
                                .unwrap_or_default(),
                            r.name,
                            r.version,
                            pin.origin
                        ),
                    );
                }
                continue;
            }
            let mut names = Vec::new();
            let mut checks = Vec::new();
            for d in dists {
                let (allowed, pinned_by) = match &pin.locked {
                    Some(locked) => {
                        let f = locked
                            .iter()
                            .find(|f| f.name == d.rel)
                            .expect("locked files only");
                        (
                            vec![f.sha256],
                            format!(
                                "the sha256 {} {} pins for {} (a changed or tampered file: download it again, or fix the lock)",
                                f.sha256, pin.origin, f.name
                            ),
                        )
                    }
                    None => (
                        r.hashes.clone(),
                        format!(
                            "the {} sha256 hash(es) {} pins for {}=={} (a changed or tampered file: download it again, or fix the pin)",
                            r.hashes.len(),
                            pin.origin,
                            r.name,
                            r.version
                        ),
                    ),
                };
                files.push(InputFile {
                    src: d.abs,
                    path: d.rel.clone(),
                    mode: d.mode,
                    media_type: match d.kind {
                        DistKind::Wheel => PYTHON_WHEEL,
                        DistKind::Sdist => PYTHON_SDIST,
                    },
                    pin: None,
                });
                checks.push(PinCheck {
                    path: d.rel.clone(),
                    allowed,
                    pinned_by,
                });
                names.push(d.rel);
            }
            packages.push(PlannedPackage {
                subject,
                name: r.name.clone(),
                version: r.version.clone(),
                source: None,
                checksum: None,
                integrity: None,
                path: None,
                hashes: r.hashes.clone(),
                files: names,
                checks,
            });
        }
        files[1..].sort_by(|a, b| a.path.cmp(&b.path));

        let name = normalize(
            entry
                .lock
                .as_deref()
                .or(entry.requirements.as_deref())
                .expect("checked when loading"),
        );
        let reference = super::kind::entry_reference("python", &name, i, taken_refs);
        out.push(PlannedArtifact {
            kind: ArtifactKind::Python,
            name,
            reference,
            artifact_type: PYTHON_ARTIFACT.to_string(),
            files: files.into(),
            packages,
        });
    }
    report.into_result()?;
    download_all(&pending)?;
    Ok(out)
}

/// Downloads every pending file (in parallel), each hash-checked while it is
/// written. Hash or size mismatches are reported together (exit 1); else the
/// first transport failure (exit 2).
fn download_all(pending: &[Pending]) -> Result<()> {
    use rayon::prelude::*;
    if pending.is_empty() {
        return Ok(());
    }
    let fetcher = crate::fetch::Fetcher::new();
    for p in pending {
        if let Some(dir) = p.dest.parent() {
            fs_err::create_dir_all(dir)?;
        }
    }
    let results: Vec<Result<()>> = pending
        .par_iter()
        .with_max_len(1)
        .map(|p| {
            fetcher.download(
                &crate::fetch::Download {
                    subject: &p.subject,
                    url: &p.url,
                    sha256: p.sha256,
                    size: p.size,
                },
                &p.dest,
            )
        })
        .collect();
    let mut report = Report::default();
    let mut transport = None;
    for r in results {
        match r {
            Ok(()) => {}
            Err(crate::error::Error::Verification(r)) => report.merge(r),
            Err(e) => {
                transport.get_or_insert(e);
            }
        }
    }
    report.into_result()?;
    match transport {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Requirement lines in pip's hash-checking form, after `header`.
fn render_pins<'a>(header: &str, reqs: impl IntoIterator<Item = &'a Requirement>) -> String {
    let mut s = header.to_string();
    for r in reqs {
        s.push_str(&r.name);
        s.push_str(&r.extras);
        s.push_str("==");
        s.push_str(&r.version);
        if let Some(m) = &r.marker {
            s.push_str(" ; ");
            s.push_str(m);
        }
        for h in &r.hashes {
            s.push_str(" \\\n    --hash=sha256:");
            s.push_str(&h.hex());
        }
        s.push('\n');
    }
    s
}

/// The high side's check of one python artifact: its `requirements.txt`
/// parses and pins every package the description lists (same version, same
/// hashes), every distribution layer belongs to one package and its digest is
/// among that package's pins, and file names agree with the packages.
pub fn check_artifact<'k>(
    a: &Artifact,
    bytes_of: &dyn Fn(LayerRef<'_>) -> Option<&'k [u8]>,
    report: &mut Report,
) {
    let subject = |what: &str| format!("{} {what}", a.reference);
    let Some(req_layer) = a.layers.iter().find(|l| l.path == REQUIREMENTS_PATH) else {
        report.add(
            subject(REQUIREMENTS_PATH),
            "missing: a python artifact carries its requirements file",
        );
        return;
    };
    let Some(text) = bytes_of(req_layer).and_then(|b| std::str::from_utf8(b).ok()) else {
        report.add(
            subject(REQUIREMENTS_PATH),
            "could not be read as UTF-8 text to re-check the pins",
        );
        return;
    };
    let (reqs, problems) = parse_requirements(text);
    for p in problems {
        report.add(subject(REQUIREMENTS_PATH), p.problem);
    }
    let by_name: HashMap<String, &Requirement> =
        reqs.iter().map(|r| (normalize_name(&r.name), r)).collect();
    if let Some(l) = a.layers.iter().find(|l| l.path == PYLOCK_PATH) {
        if l.media_type != PYTHON_PYLOCK {
            report.add(
                subject(PYLOCK_PATH),
                format!("has media type {}, not {PYTHON_PYLOCK}", l.media_type),
            );
        }
    }
    let layers: HashMap<&str, LayerRef<'_>> = a
        .layers
        .iter()
        .filter(|l| l.path != REQUIREMENTS_PATH && l.path != PYLOCK_PATH)
        .map(|l| (l.path, l))
        .collect();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut carried: HashSet<String> = HashSet::new();
    for p in &a.packages {
        let s = subject(&format!("{}=={}", p.name, p.version));
        let norm = normalize_name(&p.name);
        if !carried.insert(norm.clone()) {
            report.add(&s, "listed twice in airlock.json");
            continue;
        }
        let Some(r) = by_name.get(&norm) else {
            report.add(&s, "not pinned by the artifact's requirements.txt");
            continue;
        };
        if r.version != p.version {
            report.add(&s, format!("requirements.txt pins version {}", r.version));
        }
        let pins: BTreeSet<_> = r.hashes.iter().collect();
        if pins != p.hashes.iter().collect::<BTreeSet<_>>() {
            report.add(
                &s,
                "the hashes airlock.json records differ from those requirements.txt pins",
            );
        }
        if p.files.is_empty() {
            report.add(&s, "no distribution file is carried for it");
        }
        if p.source.is_some() || p.checksum.is_some() || p.path.is_some() {
            report.add(&s, "has cargo fields (source, checksum, path)");
        }
        for f in &p.files {
            let Some(l) = super::packages::claim_layer(f, &layers, &mut claimed, &s, report) else {
                continue;
            };
            if !r.hashes.contains(l.digest) {
                report.add(
                    &s,
                    format!(
                        "{} has sha256 {}, which is not among the hashes requirements.txt line {} pins",
                        f.path, l.digest, r.line
                    ),
                );
            }
            match parse_dist(&f.path) {
                Some(d)
                    if normalize_name(&d.name) == norm && same_version(&d.version, &r.version) =>
                {
                    let expected = match d.kind {
                        DistKind::Wheel => PYTHON_WHEEL,
                        DistKind::Sdist => PYTHON_SDIST,
                    };
                    if l.media_type != expected {
                        report.add(
                            &s,
                            format!("{} has media type {}, not {expected}", f.path, l.media_type),
                        );
                    }
                }
                _ => report.add(
                    &s,
                    format!(
                        "{} is not a distribution file of {}=={}",
                        f.path, r.name, r.version
                    ),
                ),
            }
        }
    }
    for r in &reqs {
        if !carried.contains(&normalize_name(&r.name)) {
            report.add(
                subject(&format!("{}=={}", r.name, r.version)),
                "pinned by requirements.txt but no file is carried for it",
            );
        }
    }
    for path in layers.keys() {
        if !claimed.contains(path) {
            report.add(subject(path), "layer belongs to no pinned package");
        }
    }
}

/// `DIR/python/requirements.txt` for an export: every python artifact's
/// requirements, merged by package (hashes joined), one pinned line each.
pub fn render_export(
    d: &Description,
    artifacts: &[&Artifact],
    read: &dyn Fn(LayerRef<'_>) -> Result<Vec<u8>>,
) -> Result<String> {
    let mut merged: BTreeMap<String, Requirement> = BTreeMap::new();
    for a in artifacts {
        let Some(l) = a.layers.iter().find(|l| l.path == REQUIREMENTS_PATH) else {
            return Err(crate::error::single(
                format!("{} {REQUIREMENTS_PATH}", a.reference),
                "missing from the store's description",
            ));
        };
        let bytes = read(l)?;
        let text = String::from_utf8_lossy(&bytes);
        let (reqs, problems) = parse_requirements(&text);
        if let Some(p) = problems.first() {
            return Err(crate::error::single(
                format!("{} {REQUIREMENTS_PATH}", a.reference),
                p.problem.clone(),
            ));
        }
        for r in reqs {
            match merged.entry(normalize_name(&r.name)) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(r);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let have = e.get_mut();
                    if !same_version(&have.version, &r.version) {
                        return Err(crate::error::single(
                            format!("{} {}", a.reference, r.name),
                            format!(
                                "pinned to {} here and to {} by another python artifact; one requirements.txt cannot hold both",
                                r.version, have.version
                            ),
                        ));
                    }
                    for h in r.hashes {
                        if !have.hashes.contains(&h) {
                            have.hashes.push(h);
                        }
                    }
                }
            }
        }
    }
    Ok(render_pins(
        &format!(
            "# Written by airlock export from bundle {} {}.\n# pip install --no-index --find-links <this directory> --require-hashes -r requirements.txt\n",
            d.name, d.version
        ),
        merged.values(),
    ))
}

/// `python:` entries.
pub struct Python;

impl super::kind::SourceKind for Python {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Python
    }
    fn plan(
        &self,
        m: &LoadedManifest,
        taken_refs: &mut BTreeSet<String>,
        staging: &Path,
    ) -> Result<Vec<PlannedArtifact>> {
        plan(m, taken_refs, staging)
    }
    fn carries_packages(&self) -> bool {
        true
    }
    fn pin_layer(&self, l: LayerRef<'_>) -> bool {
        l.path == REQUIREMENTS_PATH
    }
    fn check_artifact(&self, a: &Artifact, kept: &dyn super::kind::Kept, report: &mut Report) {
        check_artifact(a, &|l| kept.bytes(l), report)
    }
    /// `python/FILE` for distributions (one wheelhouse for every entry), and
    /// each entry's own `requirements.txt` and original `pylock.toml`, byte
    /// for byte, in `python/entries/N/` (N: the entry's place among the
    /// bundle's python entries, from 0).
    fn export_path(&self, d: &Description, a: &Artifact, l: LayerRef<'_>) -> Option<String> {
        Some(if l.path == REQUIREMENTS_PATH || l.path == PYLOCK_PATH {
            format!(
                "python/entries/{}/{}",
                super::kind::nth_of_kind(d, a),
                l.path
            )
        } else {
            format!("python/{}", l.path)
        })
    }
    /// `python/requirements.txt`, rendered from every entry's pins.
    fn export_rendered(
        &self,
        d: &Description,
        artifacts: &[&Artifact],
        to: &Path,
        _final_to: &Path,
        read: super::kind::ReadLayer<'_>,
    ) -> Result<Vec<PathBuf>> {
        let text = render_export(d, artifacts, read)?;
        Ok(vec![super::packages::write_new(
            &to.join("python/requirements.txt"),
            text.as_bytes(),
        )?])
    }
    fn sbom_package<'a>(
        &self,
        a: &'a Artifact,
        p: &'a crate::bundle::Package,
    ) -> Option<super::kind::SbomPackage<'a>> {
        use crate::purl::{pep503, purl};
        if p.files.is_empty() {
            return None;
        }
        let name = pep503(&p.name);
        let files = p
            .files
            .iter()
            .filter_map(|f| a.layers.iter().find(|l| l.path == f.path))
            .map(|l| {
                // A distribution file: its purl names the package and the file.
                let file_name = l.path.rsplit('/').next().unwrap_or(l.path).to_string();
                let purl = purl(
                    "pypi",
                    &[name.as_str()],
                    Some(&p.version),
                    &[("file_name", file_name)],
                );
                (l, Some(purl))
            })
            .collect();
        Some(super::kind::SbomPackage {
            purl: purl("pypi", &[name.as_str()], Some(&p.version), &[]),
            id: format!("pkg:pypi/{name}@{}", p.version),
            sha256: None,
            properties: Vec::new(),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Layer;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parses_pip_compile_output() {
        let text = format!(
            "# comment\n--index-url https://pypi.org/simple\n\nrequests[socks]==2.31.0 ; python_version >= \"3.8\" \\\n    --hash=sha256:{H1} \\\n    --hash=sha256:{H2}\n    # via foo\nidna==3.4 --hash sha256:{H1} --hash=sha512:abcd  # trailing comment\n"
        );
        let (reqs, problems) = parse_requirements(&text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].name, "requests");
        assert_eq!(reqs[0].extras, "[socks]");
        assert_eq!(reqs[0].version, "2.31.0");
        assert_eq!(reqs[0].marker.as_deref(), Some("python_version >= \"3.8\""));
        assert_eq!(reqs[0].hashes.len(), 2);
        assert_eq!(reqs[0].line, 4);
        assert_eq!(reqs[1].name, "idna");
        assert_eq!(reqs[1].hashes, vec![H1.parse().unwrap()]);
    }

    #[test]
    fn refuses_what_cannot_be_pinned() {
        let cases = [
            ("tinypkg\n".to_string(), "not pinned"),
            (format!("tinypkg>=0.1 --hash=sha256:{H1}\n"), "range"),
            (format!("tinypkg==0.* --hash=sha256:{H1}\n"), "range"),
            (format!("tinypkg==1,!=2 --hash=sha256:{H1}\n"), "range"),
            ("tinypkg==0.1\n".to_string(), "no --hash"),
            ("tinypkg==0.1 --hash=sha512:ab\n".to_string(), "no sha256"),
            (
                format!("tinypkg==0.1 --hash=sha256:{}\n", &H1[..10]),
                "not a sha256",
            ),
            (
                format!("tinypkg @ https://x/t.whl --hash=sha256:{H1}\n"),
                "direct reference",
            ),
            ("-r other.txt\n".to_string(), "includes another file"),
            ("-e ./pkg\n".to_string(), "editable"),
            ("--frobnicate\n".to_string(), "unknown option"),
            (
                format!("./pkg --hash=sha256:{H1}\n"),
                "not a `name==version`",
            ),
            (
                format!("tinypkg==0.1 --hash=sha256:{H1}\nTinyPkg==0.1 --hash=sha256:{H1}\n"),
                "required twice",
            ),
        ];
        for (text, want) in cases {
            let (_, problems) = parse_requirements(&text);
            assert!(
                problems.iter().any(|p| p.problem.contains(want)),
                "{text:?}: {problems:?}"
            );
        }
        let (r, p) = parse_requirements(&format!(
            "tinypkg==0.1 --hash=sha256:{}\n",
            H1.to_uppercase().replace('1', "A")
        ));
        assert!(p.is_empty(), "pip accepts upper-case hex: {p:?}");
        assert_eq!(r[0].hashes[0].hex(), "a".repeat(64));
        let (_, p) = parse_requirements("tinypkg>=0.1\n");
        assert_eq!(p[0].name.as_deref(), Some("tinypkg"));
        assert_eq!(p[0].line, 1);
    }

    /// Found by fuzzing (fuzz/README.md): an option line whose second
    /// character is not ASCII was cut inside that character (a panic).
    #[test]
    fn option_with_a_non_ascii_character_is_an_unknown_option() {
        for text in [
            "-\u{fffd}\n",
            "-\u{c1}s://example.invalid/simple\n",
            "-é -r x\n",
        ] {
            let (reqs, problems) = parse_requirements(text);
            assert!(reqs.is_empty());
            assert_eq!(problems.len(), 1, "{text:?}: {problems:?}");
            assert!(
                problems[0].problem.contains("unknown option -"),
                "{text:?}: {problems:?}"
            );
        }
        let (_, problems) = parse_requirements("-rother.txt\n");
        assert!(problems[0].problem.contains("includes another file"));
    }

    fn layer(path: &str, bytes: &[u8], media_type: &str) -> Layer {
        Layer {
            media_type: media_type.to_string().into(),
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            path: path.into(),
            mode: MODE_FILE,
        }
    }

    fn findings(a: &Artifact, reqs: &[u8]) -> Vec<String> {
        let mut report = Report::default();
        let reqs = reqs.to_vec();
        check_artifact(
            a,
            &|l: LayerRef<'_>| (l.path == REQUIREMENTS_PATH).then_some(&reqs[..]),
            &mut report,
        );
        report
            .findings
            .into_iter()
            .map(|f| format!("{}: {}", f.subject, f.problem))
            .collect()
    }

    #[test]
    fn high_side_check_of_a_python_artifact() {
        let wheel = b"wheel bytes".as_slice();
        let name = "tinypkg-0.1.0-py3-none-any.whl";
        let d = Sha256Digest::of(wheel);
        let reqs = format!("tinypkg==0.1.0 --hash=sha256:{}\n", d.hex());
        let blob = crate::bundle::Blob {
            media_type: "x".into(),
            digest: d,
            size: 0,
        };
        let good = Artifact {
            kind: ArtifactKind::Python,
            name: "requirements.txt".into(),
            reference: "python/requirements.txt".into(),
            artifact_type: PYTHON_ARTIFACT.into(),
            manifest: blob.clone(),
            config: blob,
            layers: vec![
                layer(REQUIREMENTS_PATH, reqs.as_bytes(), PYTHON_REQUIREMENTS),
                layer(name, wheel, PYTHON_WHEEL),
            ]
            .into(),
            packages: vec![crate::bundle::Package {
                name: "tinypkg".into(),
                version: "0.1.0".into(),
                source: None,
                checksum: None,
                integrity: None,
                path: None,
                hashes: vec![d],
                files: vec![crate::bundle::PackageFile {
                    path: name.into(),
                    sha256: d,
                }],
            }],
            source: None,
            blobs: vec![],
        };
        assert!(findings(&good, reqs.as_bytes()).is_empty());

        let mut extra = good.clone();
        extra
            .layers
            .push(layer("evil-1.0-py3-none-any.whl", b"evil", PYTHON_WHEEL));
        let f = findings(&extra, reqs.as_bytes());
        assert!(f.iter().any(|x| x.contains("evil-1.0-py3-none-any.whl") && x.contains("no pinned package")), "{f:?}");

        let mut swapped = good.clone();
        swapped
            .layers
            .set(1, layer(name, b"other bytes", PYTHON_WHEEL));
        let f = findings(&swapped, reqs.as_bytes());
        assert!(
            f.iter()
                .any(|x| x.contains("tinypkg==0.1.0") && x.contains("not among the hashes")),
            "{f:?}"
        );
        assert!(
            f.iter().any(|x| x.contains("airlock.json records sha256")),
            "{f:?}"
        );

        let other_pin = format!("tinypkg==0.1.0 --hash=sha256:{H1}\n");
        let f = findings(&good, other_pin.as_bytes());
        assert!(
            f.iter().any(|x| x.contains("not among the hashes")),
            "{f:?}"
        );

        let more = format!("{reqs}otherpkg==1.0 --hash=sha256:{H2}\n");
        let f = findings(&good, more.as_bytes());
        assert!(
            f.iter()
                .any(|x| x.contains("otherpkg==1.0") && x.contains("no file is carried")),
            "{f:?}"
        );

        let mut renamed = good.clone();
        renamed.layers.set(
            1,
            Layer {
                path: "otherpkg-0.1.0-py3-none-any.whl".into(),
                ..renamed.layers.at(1).to_layer()
            },
        );
        renamed.packages[0].files[0].path = "otherpkg-0.1.0-py3-none-any.whl".into();
        let f = findings(&renamed, reqs.as_bytes());
        assert!(
            f.iter()
                .any(|x| x.contains("is not a distribution file of tinypkg==0.1.0")),
            "{f:?}"
        );
    }

    #[test]
    fn names_versions_and_files() {
        assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
        assert!(same_version("1.0", "1.0.0"));
        assert!(same_version("v1.0-RC1", "1.0rc1"));
        assert!(same_version("2.0.post1", "2.0-post1"));
        assert!(!same_version("1.0", "1.0.1"));
        assert!(!same_version("1.0", "1.0+local"));
        assert_eq!(
            parse_dist("my_pkg-1.0-py3-none-any.whl"),
            Some(Dist {
                kind: DistKind::Wheel,
                name: "my_pkg".into(),
                version: "1.0".into()
            })
        );
        assert_eq!(
            parse_dist("numpy-1.26.0-1-cp311-cp311-manylinux_2_17_x86_64.whl").map(|d| d.version),
            Some("1.26.0".into())
        );
        assert_eq!(
            parse_dist("my-pkg-1.0.tar.gz").map(|d| (d.kind, d.name)),
            Some((DistKind::Sdist, "my-pkg".into()))
        );
        assert_eq!(parse_dist("README.md"), None);
        assert_eq!(parse_dist("bad.whl"), None);
    }
}
