//! `apt:` entries: Debian packages (`.deb` files, as `apt-get download PKG...`
//! writes them) pinned by a lock, the stanzas `apt-cache show
//! --no-all-versions PKG... > LOCK` prints (deb822: `Package`, `Version`,
//! `Architecture`, `Depends`, ..., `Filename`, `Size`, `SHA256`). Carried as
//! one OCI artifact of airlock's own type: the lock as `apt.lock`, byte for
//! byte, and one raw layer per `.deb`, named `NAME_VERSION_ARCH.deb` (the
//! archive's pool convention: no epoch).
//!
//! Build side: every `.deb` must be a lock entry's (by file name), every
//! entry must have its `.deb`, the `.deb`'s own control must name the
//! entry's package, version and architecture, its size must be the entry's
//! `Size` and its sha256 the entry's `SHA256` (checked on the hash `pack`
//! computes while copying). High side: the carried lock is parsed again and
//! every package, layer digest and size re-checked against it.
//! Export: a flat apt repository, `apt/` with the `.deb` files, `Packages`
//! (each lock stanza with `Filename`, `Size` and `SHA256` set from the
//! verified bytes), `Packages.gz` and an unsigned `Release`; apt reads it
//! with `deb [trusted=yes] file:/ABS/apt ./`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

mod debfile;

pub use debfile::read_control;

use super::packages::{PinCheck, PlannedPackage};
use super::{InputFile, PlannedArtifact};
use crate::bundle::{
    Artifact, ArtifactKind, Description, LayerRef, APT_ARTIFACT, APT_DEB, APT_LOCK, MODE_FILE,
};
use crate::digest::Sha256Digest;
use crate::error::{Error, Report, Result};
use crate::manifest::{normalize, LoadedManifest};

/// Where the lock lands inside an apt artifact.
pub const LOCK_PATH: &str = "apt.lock";
/// The distribution (purl namespace) when the entry names none.
pub const DEFAULT_DISTRO: &str = "debian";
/// The largest lock read.
pub const MAX_LOCK: u64 = 32 << 20;
const MAX_STANZAS: usize = 100_000;
const MAX_FIELDS: usize = 1_000;
/// Fields airlock sets from the verified bytes when it writes `Packages`
/// (the lock's hashes of other algorithms are not re-checked, so dropped).
const FILE_FIELDS: [&str; 7] = [
    "Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Status",
];

/// A distribution name (purl namespace): `debian`, `ubuntu`.
pub fn valid_distro(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
}

/// Debian policy 5.6.1: lowercase letters, digits, `+-.`, starting
/// alphanumeric, at least two characters.
fn valid_package(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')
        })
}

/// Debian policy 5.6.12: `[epoch:]upstream[-revision]` of letters, digits
/// and `.+~-:`, the epoch digits.
fn valid_version(s: &str) -> bool {
    let (epoch, rest) = s.split_once(':').unwrap_or(("0", s));
    !rest.is_empty()
        && s.len() <= 256
        && !epoch.is_empty()
        && epoch.bytes().all(|c| c.is_ascii_digit())
        && rest.as_bytes()[0].is_ascii_alphanumeric()
        && rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'~' | b'-' | b':'))
}

fn valid_arch(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// One deb822 paragraph: its fields in order, each value as written
/// (continuation lines joined with `\n`, keeping their leading blank).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// The line the paragraph starts on (1-based).
    pub line: usize,
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// A field's value, the name compared ignoring case (as apt does).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses deb822 text (`apt-cache show` output, a `control` file): paragraphs
/// separated by blank lines, `Name: value` fields, continuation lines
/// starting with a space or tab, `#` comment lines. Bounded: at most
/// 100 000 paragraphs of 1 000 fields; control characters other than tab,
/// repeated fields and continuation lines without a field are errors.
pub fn parse_deb822(text: &str) -> std::result::Result<Vec<Stanza>, String> {
    let mut out: Vec<Stanza> = Vec::new();
    let mut cur: Option<Stanza> = None;
    for (n, line) in text.split('\n').enumerate() {
        let n = n + 1;
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("line {n}: control character {c:?}"));
        }
        if line.trim().is_empty() {
            if let Some(s) = cur.take() {
                out.push(s);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, v)) = cur.as_mut().and_then(|s| s.fields.last_mut()) else {
                return Err(format!(
                    "line {n}: a continuation line (starting with a blank) before any field"
                ));
            };
            v.push('\n');
            v.push_str(line.trim_end());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {n}: not a `Name: value` field: {line:?}"));
        };
        if name.is_empty()
            || name.starts_with('-')
            || !name.bytes().all(|c| c.is_ascii_graphic() && c != b':')
        {
            return Err(format!("line {n}: {name:?} is not a field name"));
        }
        let s = cur.get_or_insert_with(|| Stanza {
            line: n,
            fields: Vec::new(),
        });
        if s.get(name).is_some() {
            return Err(format!(
                "line {n}: field {name} appears twice in one paragraph"
            ));
        }
        if s.fields.len() >= MAX_FIELDS {
            return Err(format!(
                "line {n}: more than {MAX_FIELDS} fields in one paragraph"
            ));
        }
        s.fields.push((name.to_string(), value.trim().to_string()));
        if out.len() >= MAX_STANZAS {
            return Err(format!("line {n}: more than {MAX_STANZAS} paragraphs"));
        }
    }
    if let Some(s) = cur.take() {
        out.push(s);
    }
    Ok(out)
}

/// One package the lock pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Its paragraph in the lock.
    pub stanza: usize,
    pub package: String,
    pub version: String,
    pub arch: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The archive's `Filename` (`pool/main/z/zstd/zstd_1.5_amd64.deb`).
    pub filename: Option<String>,
}

impl LockEntry {
    /// How apt names it: `zstd:amd64=1.5.4+dfsg2-5`.
    pub fn id(&self) -> String {
        format!("{}:{}={}", self.package, self.arch, self.version)
    }
    /// `NAME_VERSION_ARCH.deb`, the version without its epoch (the archive's
    /// pool names): its layer path and exported file name.
    pub fn file_name(&self) -> String {
        deb_file_name(&self.package, &self.version, &self.arch)
    }
}

/// `NAME_VERSION_ARCH.deb` without the version's epoch.
pub fn deb_file_name(package: &str, version: &str, arch: &str) -> String {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    format!("{package}_{v}_{arch}.deb")
}

/// The architecture in a `NAME_VERSION_ARCH.deb` name.
fn arch_of(file: &str) -> Option<&str> {
    file.strip_suffix(".deb")?.rsplit_once('_').map(|(_, a)| a)
}

/// The lock's entries, and its problems as (what: the package `NAME:ARCH=VERSION`
/// or the paragraph's line, problem).
pub fn lock_entries(stanzas: &[Stanza]) -> (Vec<LockEntry>, Vec<(String, String)>) {
    let mut entries: Vec<LockEntry> = Vec::new();
    let mut problems = Vec::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for (i, s) in stanzas.iter().enumerate() {
        let field = |n: &str| s.get(n).filter(|v| !v.contains('\n'));
        let (Some(package), Some(version), Some(arch)) =
            (field("Package"), field("Version"), field("Architecture"))
        else {
            problems.push((
                format!("paragraph at line {}", s.line),
                "needs Package, Version and Architecture fields (the stanzas `apt-cache show --no-all-versions PKG...` prints)".to_string(),
            ));
            continue;
        };
        let what = format!("{package}:{arch}={version}");
        if !valid_package(package) || !valid_version(version) || !valid_arch(arch) {
            problems.push((
                what,
                format!(
                    "paragraph at line {}: not a Debian package name, version and architecture",
                    s.line
                ),
            ));
            continue;
        }
        let sha256 = match field("SHA256").map(|h| h.to_ascii_lowercase().parse::<Sha256Digest>()) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                problems.push((what, format!("SHA256: {e}")));
                continue;
            }
            None => {
                problems.push((
                    what,
                    "no SHA256 field (apt-cache show printed a record without one, such as an installed package's status: the package must come from a configured repository)".to_string(),
                ));
                continue;
            }
        };
        let Some(size) = field("Size").and_then(|v| v.parse::<u64>().ok()) else {
            problems.push((what, "no Size field holding a number of bytes".to_string()));
            continue;
        };
        let filename = field("Filename").map(str::to_owned);
        let e = LockEntry {
            stanza: i,
            package: package.to_string(),
            version: version.to_string(),
            arch: arch.to_string(),
            sha256,
            size,
            filename,
        };
        if !ids.insert(what.clone()) {
            problems.push((what, "listed twice".to_string()));
            continue;
        }
        if let Some(other) = files.insert(e.file_name(), what.clone()) {
            problems.push((
                what,
                format!(
                    "has the same file name {} as {other} (versions that differ only by epoch); keep one",
                    e.file_name()
                ),
            ));
            continue;
        }
        entries.push(e);
    }
    (entries, problems)
}

/// The names a `.deb` of lock entry `e` may have in the entry's `debs:`
/// folder: the pool name, `apt-get download`'s (epoch as `%3a`) and the
/// base name of the archive's `Filename`.
fn accepted_names(e: &LockEntry) -> Vec<String> {
    let mut names = vec![
        e.file_name(),
        format!(
            "{}_{}_{}.deb",
            e.package,
            e.version.replace(':', "%3a"),
            e.arch
        ),
    ];
    if let Some(f) = &e.filename {
        if let Some(base) = f.rsplit('/').next() {
            names.push(base.to_string());
        }
    }
    names.dedup();
    names
}

/// Plans one artifact per `apt:` entry; every problem is reported at once.
pub fn plan(m: &LoadedManifest, taken_refs: &mut BTreeSet<String>) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    let mut report = Report::default();
    // Every entry exports into one flat repository: file name → (sha256, entry).
    let mut taken: BTreeMap<String, (Sha256Digest, usize)> = BTreeMap::new();
    for (i, entry) in m.manifest.apt.iter().enumerate() {
        let label = format!("apt[{i}]");
        let distro = entry.distro.as_deref().unwrap_or(DEFAULT_DISTRO);
        let lock_src = m.resolve(&entry.lock);
        let debs = m.resolve(&entry.debs);
        let len = fs_err::metadata(&lock_src)?.len();
        if len > MAX_LOCK {
            return Err(Error::input(
                &lock_src,
                format!("{len} bytes, past airlock's bound of {MAX_LOCK} for an apt lock"),
            ));
        }
        let text = String::from_utf8(fs_err::read(&lock_src)?).map_err(|_| {
            Error::input(
                &lock_src,
                "not UTF-8 text; write it with `apt-cache show --no-all-versions PKG... > FILE`",
            )
        })?;
        let stanzas = parse_deb822(&text).map_err(|e| {
            Error::input(
                &lock_src,
                format!("{e}; write it with `apt-cache show --no-all-versions PKG... > FILE`"),
            )
        })?;
        let (entries, problems) = lock_entries(&stanzas);
        let clean = problems.is_empty();
        for (what, p) in problems {
            report.add(
                format!("{label} {what}"),
                format!("{}: {p}", lock_src.display()),
            );
        }
        if entries.is_empty() && clean {
            report.add(&label, format!("{} pins no package", lock_src.display()));
        }
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (k, e) in entries.iter().enumerate() {
            for n in accepted_names(e) {
                by_name.entry(n).or_insert(k);
            }
        }
        let mut found: Vec<Option<PathBuf>> = vec![None; entries.len()];
        let mut listing: Vec<_> = fs_err::read_dir(&debs)?.collect::<std::io::Result<_>>()?;
        listing.sort_by_key(|e| e.file_name());
        for d in listing {
            let path = d.path();
            let name = d.file_name().to_string_lossy().into_owned();
            if !d.file_type()?.is_file() {
                report.add(
                    format!("{label} {name}"),
                    format!(
                        "{} is not a regular file; the folder holds the .deb files `apt-get download` wrote",
                        path.display()
                    ),
                );
                continue;
            }
            if !name.ends_with(".deb") {
                report.add(
                    format!("{label} {name}"),
                    format!("{} is not a .deb; remove it", path.display()),
                );
                continue;
            }
            let Some(&k) = by_name.get(&name) else {
                // Name the package by its own control, when it has one.
                let what = read_control(&path)
                    .ok()
                    .and_then(|t| parse_deb822(&t).ok())
                    .and_then(|s| {
                        let s = s.into_iter().next()?;
                        Some(format!(
                            "{}:{}={}",
                            s.get("Package")?,
                            s.get("Architecture")?,
                            s.get("Version")?
                        ))
                    })
                    .unwrap_or(name.clone());
                report.add(
                    format!("{label} {what}"),
                    format!(
                        "{} is not in {}; add the package's `apt-cache show` stanza to the lock, or remove the file",
                        path.display(),
                        lock_src.display()
                    ),
                );
                continue;
            };
            match &found[k] {
                Some(other) => report.add(
                    format!("{label} {}", entries[k].id()),
                    format!(
                        "both {} and {} are its .deb; remove one",
                        other.display(),
                        path.display()
                    ),
                ),
                None => found[k] = Some(path),
            }
        }

        let mut files = vec![InputFile {
            src: lock_src.clone(),
            path: LOCK_PATH.to_string(),
            mode: MODE_FILE,
            media_type: APT_LOCK,
            pin: None,
        }];
        let mut packages = Vec::new();
        for (e, path) in entries.iter().zip(found) {
            let subject = format!("{label} {}", e.id());
            let Some(path) = path else {
                report.add(
                    &subject,
                    format!(
                        "{} pins it but {} holds no .deb for it (expected {}); run `apt-get download {}={}` there",
                        lock_src.display(),
                        debs.display(),
                        e.file_name(),
                        e.package,
                        e.version
                    ),
                );
                continue;
            };
            let size = fs_err::metadata(&path)?.len();
            if size != e.size {
                report.add(
                    &subject,
                    format!(
                        "{} is {size} bytes, but {} gives Size {} (not the .deb the archive published: download it again)",
                        path.display(),
                        lock_src.display(),
                        e.size
                    ),
                );
            }
            match read_control(&path).and_then(|t| {
                parse_deb822(&t)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| "its control file is empty".to_string())
            }) {
                Err(why) => report.add(&subject, format!("{}: {why}", path.display())),
                Ok(control) => {
                    for (field, want) in [
                        ("Package", &e.package),
                        ("Version", &e.version),
                        ("Architecture", &e.arch),
                    ] {
                        let have = control.get(field).unwrap_or("");
                        if have != want {
                            report.add(
                                &subject,
                                format!(
                                    "{}: its control says {field} {have:?}, but {} gives {want:?} (the file is not the package the lock pins)",
                                    path.display(),
                                    lock_src.display()
                                ),
                            );
                        }
                    }
                }
            }
            let file = e.file_name();
            match taken.get(&file) {
                Some((other, j)) if *other != e.sha256 => report.add(
                    &subject,
                    format!(
                        "apt[{j}] carries another {file} (SHA256 {other}); one export repository cannot hold both"
                    ),
                ),
                _ => {
                    taken.insert(file.clone(), (e.sha256, i));
                }
            }
            files.push(InputFile {
                src: path,
                path: file.clone(),
                mode: MODE_FILE,
                media_type: APT_DEB,
                pin: None,
            });
            packages.push(PlannedPackage {
                subject,
                name: e.package.clone(),
                version: e.version.clone(),
                source: Some(distro.to_string()),
                checksum: Some(e.sha256),
                path: None,
                hashes: Vec::new(),
                files: vec![file.clone()],
                integrity: None,
                checks: vec![PinCheck {
                    path: file,
                    allowed: vec![e.sha256],
                    pinned_by: format!(
                        "the SHA256 {} that {} gives for {} (not the .deb the archive published: download it again)",
                        e.sha256,
                        lock_src.display(),
                        e.id()
                    ),
                }],
            });
        }
        let name = normalize(&entry.lock);
        let reference = super::kind::entry_reference("apt", &name, i, taken_refs);
        out.push(PlannedArtifact {
            kind: ArtifactKind::Apt,
            name,
            reference,
            artifact_type: APT_ARTIFACT.to_string(),
            files: files.into(),
            packages,
        });
    }
    report.into_result()?;
    Ok(out)
}

/// A parsed lock: its paragraphs, entries and problems (what, problem).
type ParsedLock = (Vec<Stanza>, Vec<LockEntry>, Vec<(String, String)>);

/// The carried lock of an apt artifact, parsed: its paragraphs and entries.
fn carried_lock(text: &str) -> std::result::Result<ParsedLock, String> {
    let stanzas = parse_deb822(text)?;
    let (entries, problems) = lock_entries(&stanzas);
    Ok((stanzas, entries, problems))
}

/// The high side's check of one apt artifact, from the description, the
/// layer digests and sizes, and the kept `apt.lock` bytes.
pub fn check_artifact<'k>(
    a: &Artifact,
    bytes_of: &dyn Fn(LayerRef<'_>) -> Option<&'k [u8]>,
    report: &mut Report,
) {
    let subject = |what: &str| format!("{} {what}", a.reference);
    let Some(lock_layer) = a.layers.iter().find(|l| l.path == LOCK_PATH) else {
        report.add(
            subject(LOCK_PATH),
            "missing: an apt artifact carries the lock that pins its packages",
        );
        return;
    };
    if lock_layer.media_type != APT_LOCK {
        report.add(
            subject(LOCK_PATH),
            format!("has media type {}, not {APT_LOCK}", lock_layer.media_type),
        );
    }
    let Some(text) = bytes_of(lock_layer).and_then(|b| std::str::from_utf8(b).ok()) else {
        report.add(
            subject(LOCK_PATH),
            "could not be read as UTF-8 text to re-check the pins",
        );
        return;
    };
    let (_, entries, problems) = match carried_lock(text) {
        Ok(x) => x,
        Err(e) => {
            report.add(subject(LOCK_PATH), e);
            return;
        }
    };
    for (what, p) in problems {
        report.add(subject(&what), format!("{LOCK_PATH}: {p}"));
    }
    let by_file: HashMap<String, &LockEntry> = entries.iter().map(|e| (e.file_name(), e)).collect();
    let layers: HashMap<&str, LayerRef<'_>> = a
        .layers
        .iter()
        .filter(|l| l.path != LOCK_PATH)
        .map(|l| (l.path, l))
        .collect();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for p in &a.packages {
        let s = subject(&format!("{}={}", p.name, p.version));
        let [f] = p.files.as_slice() else {
            report.add(&s, "an apt package has exactly one file, its .deb");
            continue;
        };
        let Some(e) = by_file.get(f.path.as_str()) else {
            report.add(
                &s,
                format!("{} is not pinned by the carried {LOCK_PATH}", f.path),
            );
            continue;
        };
        let s = subject(&e.id());
        if e.package != p.name || e.version != p.version {
            report.add(
                &s,
                format!(
                    "airlock.json records {}={} for {}, but {LOCK_PATH} pins {}",
                    p.name,
                    p.version,
                    f.path,
                    e.id()
                ),
            );
        }
        if !p.source.as_deref().is_some_and(valid_distro) {
            report.add(
                &s,
                format!("distribution {:?} is not a distribution name", p.source),
            );
        }
        if p.path.is_some() || !p.hashes.is_empty() {
            report.add(&s, "has fields apt packages do not use (path, hashes)");
        }
        if p.checksum != Some(e.sha256) {
            report.add(
                &s,
                format!(
                    "airlock.json records checksum {:?}, but {LOCK_PATH} pins SHA256 {}",
                    p.checksum.map(|c| c.hex()),
                    e.sha256
                ),
            );
        }
        let Some(l) = super::packages::claim_layer(f, &layers, &mut claimed, &s, report) else {
            continue;
        };
        if *l.digest != e.sha256 {
            report.add(
                &s,
                format!(
                    "{} has sha256 {}, but {LOCK_PATH} pins SHA256 {}",
                    f.path, l.digest, e.sha256
                ),
            );
        }
        if l.size != e.size {
            report.add(
                &s,
                format!(
                    "{} is {} bytes, but {LOCK_PATH} gives Size {}",
                    f.path, l.size, e.size
                ),
            );
        }
        if l.media_type != APT_DEB {
            report.add(
                &s,
                format!("{} has media type {}, not {APT_DEB}", f.path, l.media_type),
            );
        }
    }
    for path in layers.keys() {
        if !claimed.contains(path) {
            report.add(subject(path), "belongs to no package of the artifact");
        }
    }
    for e in &entries {
        if !claimed.contains(e.file_name().as_str()) {
            report.add(
                subject(&e.id()),
                format!("{LOCK_PATH} pins it, but the artifact does not carry it"),
            );
        }
    }
}

/// `Mon, 30 Nov 2026 02:21:52 UTC` from the description's `created`
/// (`2026-11-30T02:21:52Z`); `None` when it is not in that form.
fn release_date(created: &str) -> Option<String> {
    let day = crate::clock::parse_date(created.get(..10)?)?;
    let time = created.get(11..19)?;
    if created.as_bytes().get(10) != Some(&b'T')
        || !time.bytes().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                c == b':'
            } else {
                c.is_ascii_digit()
            }
        })
    {
        return None;
    }
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[((day / 86_400) + 4).rem_euclid(7) as usize];
    let month: usize = created.get(5..7)?.parse().ok()?;
    Some(format!(
        "{weekday}, {} {} {} {time} UTC",
        created.get(8..10)?,
        MONTHS.get(month.checked_sub(1)?)?,
        created.get(..4)?
    ))
}

/// One `Packages` paragraph: the lock's stanza without its file fields, then
/// `Filename`, `Size` and `SHA256` of the verified layer. `apt-cache show`
/// prints the English long description as `Description-en` (from the
/// archive's Translation-en); with no `Description` it is written as
/// `Description`, as a Packages file holds it.
fn packages_stanza(stanza: &Stanza, l: LayerRef<'_>) -> String {
    let plain = stanza.get("Description").is_some();
    let mut out = String::new();
    for (k, v) in &stanza.fields {
        if FILE_FIELDS.iter().any(|x| x.eq_ignore_ascii_case(k)) {
            continue;
        }
        let k = if !plain && k.eq_ignore_ascii_case("Description-en") {
            "Description"
        } else {
            k
        };
        let sep = if v.is_empty() || v.starts_with('\n') {
            ""
        } else {
            " "
        };
        out.push_str(&format!("{k}:{sep}{v}\n"));
    }
    out.push_str(&format!(
        "Filename: ./{}\nSize: {}\nSHA256: {}\n\n",
        l.path,
        l.size,
        l.digest.hex()
    ));
    out
}

/// `apt/Packages` of an export: every carried package's lock stanza, with
/// `Filename`, `Size` and `SHA256` set from its verified layer; a `.deb`
/// two entries carry alike is listed once.
pub fn render_packages(
    artifacts: &[&Artifact],
    read: super::kind::ReadLayer<'_>,
) -> Result<String> {
    let mut out = String::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for a in artifacts {
        let Some(lock_layer) = a.layers.iter().find(|l| l.path == LOCK_PATH) else {
            continue;
        };
        let bad = |e: String| {
            Error::input(
                format!("{} {LOCK_PATH}", a.reference),
                format!("{e} (the bundle was verified when imported: is the store damaged?)"),
            )
        };
        let bytes = read(lock_layer)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".into()))?;
        let (stanzas, entries, _) = carried_lock(text).map_err(bad)?;
        let by_file: HashMap<String, &LockEntry> =
            entries.iter().map(|e| (e.file_name(), e)).collect();
        for p in &a.packages {
            let Some(f) = p.files.first() else { continue };
            let (Some(e), Some(l)) = (
                by_file.get(f.path.as_str()),
                a.layers.iter().find(|l| l.path == f.path),
            ) else {
                return Err(bad(format!("{} is not pinned by the lock", f.path)));
            };
            if !seen.insert(l.path) {
                continue;
            }
            out.push_str(&packages_stanza(&stanzas[e.stanza], l));
        }
    }
    Ok(out)
}

/// `apt/Release`: the SHA256 of each index file (unsigned: apt reads the
/// repository with `[trusted=yes]`).
pub fn render_release(d: &Description, index: &[(&str, &[u8])]) -> String {
    let mut s = format!(
        "Origin: airlock\nLabel: {}\nVersion: {}\n",
        d.name, d.version
    );
    if let Some(date) = release_date(&d.created) {
        s.push_str(&format!("Date: {date}\n"));
    }
    s.push_str(&format!(
        "Description: Debian packages of bundle {} {}, exported by airlock\nSHA256:\n",
        d.name, d.version
    ));
    for (name, bytes) in index {
        s.push_str(&format!(
            " {} {} {name}\n",
            Sha256Digest::of(bytes).hex(),
            bytes.len()
        ));
    }
    s
}

/// `apt:` entries.
pub struct Apt;

impl super::kind::SourceKind for Apt {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Apt
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
        l.path == LOCK_PATH
    }
    fn check_artifact(&self, a: &Artifact, kept: &dyn super::kind::Kept, report: &mut Report) {
        check_artifact(a, &|l| kept.bytes(l), report)
    }
    /// `apt/FILE.deb` (one flat repository for every entry), and each
    /// entry's lock, byte for byte, at `apt/entries/N/apt.lock`.
    fn export_path(&self, d: &Description, a: &Artifact, l: LayerRef<'_>) -> Option<String> {
        Some(if l.path == LOCK_PATH {
            format!("apt/entries/{}/{LOCK_PATH}", super::kind::nth_of_kind(d, a))
        } else {
            format!("apt/{}", l.path)
        })
    }
    /// `apt/Packages`, `apt/Packages.gz` and `apt/Release`.
    fn export_rendered(
        &self,
        d: &Description,
        artifacts: &[&Artifact],
        to: &Path,
        _final_to: &Path,
        read: super::kind::ReadLayer<'_>,
    ) -> Result<Vec<PathBuf>> {
        use std::io::Write;
        let packages = render_packages(artifacts, read)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(packages.as_bytes())?;
        let gz = gz.finish()?;
        let release = render_release(
            d,
            &[("Packages", packages.as_bytes()), ("Packages.gz", &gz)],
        );
        let dir = to.join("apt");
        Ok(vec![
            super::packages::write_new(&dir.join("Packages"), packages.as_bytes())?,
            super::packages::write_new(&dir.join("Packages.gz"), &gz)?,
            super::packages::write_new(&dir.join("Release"), release.as_bytes())?,
        ])
    }
    fn sbom_package<'a>(
        &self,
        a: &'a Artifact,
        p: &'a crate::bundle::Package,
    ) -> Option<super::kind::SbomPackage<'a>> {
        let f = p.files.first()?;
        let arch = arch_of(&f.path)?.to_string();
        let distro = p.source.as_deref().unwrap_or(DEFAULT_DISTRO);
        let purl = crate::purl::purl(
            "deb",
            &[distro, p.name.as_str()],
            Some(&p.version),
            &[("arch", arch.clone())],
        );
        Some(super::kind::SbomPackage {
            id: purl.clone(),
            purl,
            sha256: None,
            properties: vec![("airlock:deb:architecture".to_string(), arch)],
            files: a
                .layers
                .iter()
                .filter(|l| l.path == f.path)
                .map(|l| (l, None))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Layer;

    const H: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn stanza(pkg: &str, ver: &str, arch: &str) -> String {
        format!(
            "Package: {pkg}\nVersion: {ver}\nArchitecture: {arch}\nDepends: libc6 (>= 2.34)\nDescription: a tool\n that does things\n .\n more\nFilename: pool/main/{pkg}_{ver}_{arch}.deb\nSize: 10\nMD5sum: abc\nSHA256: {H}\n"
        )
    }

    #[test]
    fn parses_apt_cache_show_output() {
        let text = format!(
            "{}\n{}",
            stanza("zstd", "1.5.4+dfsg2-5", "amd64"),
            stanza("libzstd1", "1:1.5-1", "amd64")
        );
        let s = parse_deb822(&text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].get("description"),
            Some("a tool\n that does things\n .\n more")
        );
        let (e, problems) = lock_entries(&s);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(e[1].id(), "libzstd1:amd64=1:1.5-1");
        assert_eq!(e[1].file_name(), "libzstd1_1.5-1_amd64.deb");
        assert_eq!(arch_of(&e[1].file_name()), Some("amd64"));
        assert!(accepted_names(&e[1]).contains(&"libzstd1_1%3a1.5-1_amd64.deb".to_string()));
    }

    #[test]
    fn refuses_malformed_locks_without_panicking() {
        for bad in [
            " continuation first\n",
            "Package zstd\n",
            "Package: a\nPackage: b\n",
            "Pack\u{1}age: x\n",
            ": x\n",
        ] {
            assert!(parse_deb822(bad).is_err(), "{bad:?}");
        }
        let cases = [
            ("Package: zstd\nVersion: 1\n", "needs Package"),
            (
                "Package: Zstd\nVersion: 1\nArchitecture: amd64\nSize: 1\nSHA256: x\n",
                "not a Debian",
            ),
            (
                "Package: zstd\nVersion: 1\nArchitecture: amd64\nSize: 1\n",
                "no SHA256",
            ),
            (
                "Package: zstd\nVersion: 1\nArchitecture: amd64\nSHA256: 12\nSize: 1\n",
                "SHA256:",
            ),
            (
                &format!("Package: zstd\nVersion: 1\nArchitecture: amd64\nSHA256: {H}\n"),
                "no Size",
            ),
            (
                &format!("{}\n{}", stanza("zz", "1", "all"), stanza("zz", "1", "all")),
                "listed twice",
            ),
            (
                &format!(
                    "{}\n{}",
                    stanza("zz", "1:1", "all"),
                    stanza("zz", "2:1", "all")
                ),
                "same file name",
            ),
        ];
        for (text, want) in cases {
            let (_, problems) = lock_entries(&parse_deb822(text).unwrap());
            assert!(
                problems.iter().any(|(_, p)| p.contains(want)),
                "{text:?}: {problems:?}"
            );
        }
        // Arbitrary bytes never panic.
        let mut x: u32 = 9;
        for len in 0..400 {
            let s: String = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    b"Pa:ckge \n\t#:1SHA256"[(x >> 24) as usize % 19] as char
                })
                .collect();
            if let Ok(st) = parse_deb822(&s) {
                let _ = lock_entries(&st);
            }
        }
    }

    #[test]
    fn packages_stanzas_take_file_fields_from_the_layer() {
        let text = "Package: zstd\nVersion: 1.5\nArchitecture: amd64\nDepends: libc6\nDescription-en: fast\n compression\nDescription-md5: 0a\nFilename: pool/z.deb\nSize: 9\nMD5sum: ab\nSHA256: 11\nSHA512: 22\n";
        let s = &parse_deb822(text).unwrap()[0];
        let l = Layer {
            media_type: APT_DEB.into(),
            digest: Sha256Digest::of(b"x"),
            size: 1,
            path: "zstd_1.5_amd64.deb".into(),
            mode: MODE_FILE,
        };
        assert_eq!(
            packages_stanza(s, l.view()),
            format!(
                "Package: zstd\nVersion: 1.5\nArchitecture: amd64\nDepends: libc6\nDescription: fast\n compression\nDescription-md5: 0a\nFilename: ./zstd_1.5_amd64.deb\nSize: 1\nSHA256: {}\n\n",
                Sha256Digest::of(b"x").hex()
            )
        );
        // Beside a plain Description, Description-en stays as it is.
        let s = &parse_deb822("Package: a1\nDescription: x\nDescription-en: y\n").unwrap()[0];
        assert!(packages_stanza(s, l.view()).contains("Description: x\nDescription-en: y\n"));
    }

    #[test]
    fn release_dates_are_rfc2822() {
        assert_eq!(
            release_date("2023-11-14T22:13:20Z").as_deref(),
            Some("Tue, 14 Nov 2023 22:13:20 UTC")
        );
        assert_eq!(release_date("2023-11-14"), None);
        assert_eq!(release_date("x"), None);
    }
}
