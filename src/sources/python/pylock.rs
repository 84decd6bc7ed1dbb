//! PEP 751 `pylock.toml` (lock-version 1.x), read on the build side only:
//! the packages it locks, each with a version and the files (wheels, and the
//! sdist when `onlyBinary` is off) it may be installed from, each pinned by
//! sha256 and located by `url` and/or `path`. Sources airlock cannot pin to
//! one file hash (`vcs`, `directory`, `archive`) are problems naming the
//! package; keys airlock does not use (`requires-python`, `dependencies`,
//! `upload-time`, `tool`, ...) are ignored, as the specification allows.

use std::collections::{BTreeMap, HashMap};

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{normalize_name, parse_dist, same_version, valid_project_name, DistKind};
use crate::digest::Sha256Digest;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLock {
    lock_version: Option<String>,
    #[serde(default)]
    packages: Vec<RawPackage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPackage {
    name: Option<String>,
    version: Option<String>,
    marker: Option<String>,
    vcs: Option<IgnoredAny>,
    directory: Option<IgnoredAny>,
    archive: Option<IgnoredAny>,
    sdist: Option<RawFile>,
    #[serde(default)]
    wheels: Vec<RawFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// One package the lock pins, with the files airlock carries for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// Position in `[[packages]]` (0-based), for messages.
    pub index: usize,
    pub name: String,
    pub version: String,
    /// The package's environment marker, as pip can evaluate it (markers on
    /// lock-only variables `extras` / `dependency_groups` are dropped).
    pub marker: Option<String>,
    pub files: Vec<LockedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedFile {
    /// The distribution's file name (from `name`, else the URL or path).
    pub name: String,
    pub kind: DistKind,
    pub sha256: Sha256Digest,
    pub size: Option<u64>,
    pub url: Option<String>,
    pub path: Option<String>,
}

/// A problem with one package (`name` when it has one) or with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProblem {
    pub name: Option<String>,
    pub problem: String,
}

/// Parses a `pylock.toml`. `Err` when it is not TOML or not a lock file at
/// all; otherwise the packages that could be read and the problems found.
pub fn parse(
    text: &str,
    only_binary: bool,
) -> Result<(Vec<LockedPackage>, Vec<LockProblem>), String> {
    let raw: RawLock = toml::from_str(text).map_err(|e| format!("not a PEP 751 lock file: {e}"))?;
    match raw.lock_version.as_deref() {
        Some(v) if v == "1" || v.starts_with("1.") => {}
        Some(v) => {
            return Err(format!(
                "lock-version {v:?} is not supported (airlock reads lock-version 1.x)"
            ))
        }
        None => return Err("lock-version: missing; not a PEP 751 lock file".into()),
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (k, p) in raw.packages.into_iter().enumerate() {
        let mut problem = |name: Option<&str>, text: String| {
            problems.push(LockProblem {
                name: name.map(str::to_owned),
                problem: text,
            })
        };
        let Some(name) = p.name.filter(|n| valid_project_name(n)) else {
            problem(
                None,
                format!("packages[{k}]: name is missing or not a valid project name"),
            );
            continue;
        };
        let at = format!("packages[{k}] ({name})");
        let source = [
            ("vcs", p.vcs.is_some()),
            ("directory", p.directory.is_some()),
            ("archive", p.archive.is_some()),
        ]
        .into_iter()
        .find(|(_, present)| *present);
        if let Some((kind, _)) = source {
            problem(
                Some(&name),
                format!(
                    "{at}: {name} is locked as a {kind} source, which cannot be pinned to a file hash; airlock carries wheels (and sdists) from an index: build a wheel and lock that, or pack the source under files:"
                ),
            );
            continue;
        }
        if let Some(first) = seen.insert(normalize_name(&name), k) {
            problem(
                Some(&name),
                format!(
                    "{at}: {name} is locked twice (also packages[{first}]); a bundle carries one version of a package, so lock one environment per python entry"
                ),
            );
            continue;
        }
        let version = match p.version {
            Some(v) if valid_version(&v) => v,
            Some(v) => {
                problem(
                    Some(&name),
                    format!("{at}: version {v:?} is not a plain version"),
                );
                continue;
            }
            None => {
                problem(
                    Some(&name),
                    format!(
                        "{at}: {name} has no version; airlock carries packages locked to a version"
                    ),
                );
                continue;
            }
        };
        let subject = format!("{name}=={version}");
        let mut raw_files: Vec<(DistKind, RawFile)> =
            p.wheels.into_iter().map(|w| (DistKind::Wheel, w)).collect();
        match p.sdist {
            Some(s) if !only_binary => raw_files.push((DistKind::Sdist, s)),
            Some(_) if raw_files.is_empty() => {
                problem(
                    Some(&name),
                    format!("{at}: {subject} is locked as a source distribution only and onlyBinary is true (installing it runs its build code); lock a wheel, or set onlyBinary: false"),
                );
                continue;
            }
            _ => {}
        }
        if raw_files.is_empty() {
            problem(
                Some(&name),
                format!("{at}: {subject} lists no wheels or sdist"),
            );
            continue;
        }
        let mut files = Vec::new();
        let mut bad = false;
        for (kind, f) in raw_files {
            let what = match kind {
                DistKind::Wheel => "wheels",
                DistKind::Sdist => "sdist",
            };
            let file_name = f
                .name
                .clone()
                .or_else(|| f.url.as_deref().and_then(url_file_name))
                .or_else(|| f.path.as_deref().and_then(path_file_name));
            let Some(file_name) = file_name else {
                problem(
                    Some(&name),
                    format!("{at}: {subject}: a {what} entry has no name, url or path"),
                );
                bad = true;
                continue;
            };
            let dist = (!file_name.contains(['/', '\\']))
                .then(|| parse_dist(&file_name))
                .flatten();
            match dist {
                Some(d)
                    if d.kind == kind
                        && normalize_name(&d.name) == normalize_name(&name)
                        && same_version(&d.version, &version) => {}
                _ => {
                    problem(
                        Some(&name),
                        format!(
                            "{at}: {subject}: {file_name:?} is not a {} file name of {subject}",
                            match kind {
                                DistKind::Wheel => "wheel",
                                DistKind::Sdist => "source distribution",
                            }
                        ),
                    );
                    bad = true;
                    continue;
                }
            }
            if f.url.is_none() && f.path.is_none() {
                problem(
                    Some(&name),
                    format!("{at}: {subject}: {file_name} has neither url nor path"),
                );
                bad = true;
                continue;
            }
            let sha256 = match f.hashes.get("sha256") {
                Some(hex) => match hex.to_ascii_lowercase().parse::<Sha256Digest>() {
                    Ok(d) => d,
                    Err(e) => {
                        problem(
                            Some(&name),
                            format!("{at}: {subject}: {file_name}: hashes.sha256: {e}"),
                        );
                        bad = true;
                        continue;
                    }
                },
                None => {
                    problem(
                        Some(&name),
                        format!(
                            "{at}: {subject}: {file_name} pins no sha256 hash (airlock checks sha256; the lock has {})",
                            if f.hashes.is_empty() {
                                "none".to_string()
                            } else {
                                f.hashes.keys().cloned().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    );
                    bad = true;
                    continue;
                }
            };
            if files.iter().any(|x: &LockedFile| x.name == file_name) {
                problem(
                    Some(&name),
                    format!("{at}: {subject}: {file_name} is listed twice"),
                );
                bad = true;
                continue;
            }
            files.push(LockedFile {
                name: file_name,
                kind,
                sha256,
                size: f.size,
                url: f.url,
                path: f.path,
            });
        }
        if bad {
            continue;
        }
        let marker = p
            .marker
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty() && !m.contains("extras") && !m.contains("dependency_groups"));
        out.push(LockedPackage {
            index: k,
            name,
            version,
            marker,
            files,
        });
    }
    Ok((out, problems))
}

/// A version as a pin can hold it: PEP 440 characters, no spaces or wildcards.
fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_' | '!'))
}

/// The last path segment of a URL, percent-decoded, without query or fragment.
fn url_file_name(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next()?;
    let last = url.rsplit('/').next()?;
    let decoded = percent_decode(last)?;
    (!decoded.is_empty()).then_some(decoded)
}

fn path_file_name(path: &str) -> Option<String> {
    let last = path.rsplit(['/', '\\']).next()?;
    (!last.is_empty()).then(|| last.to_string())
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn reads_packages_wheels_and_sdists() {
        let text = format!(
            r#"
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.9"
environments = ["sys_platform == 'linux'"]

[[packages]]
name = "Six"
version = "1.16.0"
marker = "python_version >= '3.8'"
index = "https://pypi.org/simple"
sdist = {{ url = "https://files.example/six-1.16.0.tar.gz", size = 34041, hashes = {{ sha256 = "{H2}" }} }}
wheels = [
  {{ url = "https://files.example/p/six-1.16.0-py2.py3-none-any.whl", upload-time = 2021-05-05T14:18:17Z, size = 11053, hashes = {{ sha256 = "{H1}", md5 = "x" }} }},
]

[[packages]]
name = "dev-tool"
version = "2.0"
marker = "'dev' in dependency_groups"
wheels = [{{ name = "dev_tool-2.0-py3-none-any.whl", path = "wheels/dev_tool-2.0-py3-none-any.whl", hashes = {{ sha256 = "{}" }} }}]
"#,
            H2.to_uppercase()
        );
        let (pkgs, problems) = parse(&text, true).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "Six");
        assert_eq!(pkgs[0].marker.as_deref(), Some("python_version >= '3.8'"));
        assert_eq!(pkgs[0].files.len(), 1, "onlyBinary leaves the sdist out");
        assert_eq!(pkgs[0].files[0].name, "six-1.16.0-py2.py3-none-any.whl");
        assert_eq!(pkgs[0].files[0].size, Some(11053));
        assert_eq!(pkgs[0].files[0].sha256.hex(), H1);
        assert_eq!(
            pkgs[1].marker, None,
            "dependency_groups markers are dropped"
        );
        assert_eq!(pkgs[1].files[0].sha256.hex(), H2);
        let (pkgs, _) = parse(&text, false).unwrap();
        assert_eq!(pkgs[0].files.len(), 2);
        assert_eq!(pkgs[0].files[1].kind, DistKind::Sdist);
    }

    #[test]
    fn refuses_what_cannot_be_pinned_naming_the_package() {
        let cases = [
            (
                "[[packages]]\nname = \"gitpkg\"\nvcs = { type = \"git\", url = \"https://g/x\", commit-id = \"abc\" }\n".to_string(),
                "gitpkg",
                "vcs source",
            ),
            (
                "[[packages]]\nname = \"localpkg\"\ndirectory = { path = \"./src\" }\n".to_string(),
                "localpkg",
                "directory source",
            ),
            (
                format!("[[packages]]\nname = \"arcpkg\"\nversion = \"1\"\narchive = {{ url = \"https://x/a.zip\", hashes = {{ sha256 = \"{H1}\" }} }}\n"),
                "arcpkg",
                "archive source",
            ),
            (
                format!("[[packages]]\nname = \"nover\"\nwheels = [{{ url = \"https://x/nover-1-py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]\n"),
                "nover",
                "no version",
            ),
            (
                "[[packages]]\nname = \"nohash\"\nversion = \"1\"\nwheels = [{ url = \"https://x/nohash-1-py3-none-any.whl\", hashes = { sha512 = \"ab\" } }]\n".to_string(),
                "nohash",
                "pins no sha256",
            ),
            (
                format!("[[packages]]\nname = \"onlysrc\"\nversion = \"1\"\nsdist = {{ url = \"https://x/onlysrc-1.tar.gz\", hashes = {{ sha256 = \"{H1}\" }} }}\n"),
                "onlysrc",
                "onlyBinary",
            ),
            (
                format!("[[packages]]\nname = \"wrongfile\"\nversion = \"1\"\nwheels = [{{ url = \"https://x/other-1-py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]\n"),
                "wrongfile",
                "is not a wheel file name of wrongfile==1",
            ),
            (
                format!("[[packages]]\nname = \"twice\"\nversion = \"1\"\nwheels = [{{ url = \"https://x/twice-1-py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]\n[[packages]]\nname = \"Twice\"\nversion = \"2\"\nwheels = [{{ url = \"https://x/twice-2-py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]\n"),
                "Twice",
                "locked twice",
            ),
        ];
        for (body, name, want) in cases {
            let text = format!("lock-version = \"1.0\"\ncreated-by = \"t\"\n{body}");
            let (pkgs, problems) = parse(&text, true).unwrap();
            assert!(
                problems
                    .iter()
                    .any(|p| p.name.as_deref() == Some(name) && p.problem.contains(want)),
                "{body}: {problems:?}"
            );
            assert!(pkgs.iter().all(|p| p.name != name), "{pkgs:?}");
        }
        assert!(parse("lock-version = \"2.0\"\n", true)
            .unwrap_err()
            .contains("not supported"));
        assert!(parse("[[packages]]\n", true)
            .unwrap_err()
            .contains("lock-version"));
        assert!(parse("not toml = = \n", true).is_err());
    }

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            url_file_name("https://h/p/x-1.0%2Blocal-py3-none-any.whl#sha256=ab").as_deref(),
            Some("x-1.0+local-py3-none-any.whl")
        );
        assert_eq!(url_file_name("https://h/p/"), None);
        assert_eq!(url_file_name("https://h/p/%zz"), None);
    }
}
