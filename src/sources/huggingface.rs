//! A model's origin on the Hugging Face Hub (`models[].huggingface:
//! {repo, revision}`): recorded in the description's model facts, named in
//! the SBOMs (`pkg:huggingface/ORG/NAME@REVISION`), checked again on the
//! high side, and written by `airlock export` as a Hub cache entry that
//! `huggingface_hub` reads offline. airlock never downloads from the Hub:
//! the files are the manifest's model directory.
//!
//! The cache is the Hub's own layout, below `DIR/huggingface/hub/`
//! (`HF_HOME=DIR/huggingface`, or `HF_HUB_CACHE=DIR/huggingface/hub`):
//!
//! ```text
//! models--ORG--NAME/
//!   refs/main                 the revision (no newline)
//!   blobs/<git blob sha1>     a file git keeps itself
//!   blobs/<sha256>            a file kept by Git LFS
//!   snapshots/<revision>/<path> -> ../../blobs/<name>   (relative links)
//! ```
//!
//! A file is an LFS file when the model's own `.gitattributes` says
//! `filter=lfs` for it (the Hub's default patterns when the model carries
//! none) or when it is larger than the Hub's 10 MiB limit for plain git
//! files. Each blob is a hard link to the file export wrote below
//! `models/FOLDER/` (a copy where the file system has no hard links), so
//! the cache takes no extra space. The links are airlock's own, made in
//! export's fresh staging directory; nothing from a bundle is a link.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use super::kind::ReadLayer;
use crate::bundle::{safe_relative, Artifact, ArtifactKind, Description, HfOrigin, DESCRIPTION};
use crate::error::{Error, Report, Result};
use crate::manifest::LoadedManifest;

/// Where export writes the Hub cache, below the export directory.
pub const CACHE_DIR: &str = "huggingface/hub";

/// The Hub's limit for a file kept in plain git; larger files are LFS files.
const PLAIN_GIT_MAX: u64 = 10 << 20;

/// The most of a `.gitattributes` read, and of its lines used.
const GITATTRIBUTES_MAX: u64 = 64 << 10;
const GITATTRIBUTES_LINES: usize = 512;

/// The Hub's default `.gitattributes` LFS patterns (a new repository's).
const DEFAULT_LFS: &[&str] = &[
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
];

/// The origin the manifest gives the model whose artifact is `artifact_name`.
pub fn origin(m: &LoadedManifest, artifact_name: &str) -> Option<HfOrigin> {
    m.manifest
        .models
        .iter()
        .find(|e| crate::manifest::model_artifact_name(&e.name) == artifact_name)
        .and_then(|e| e.huggingface.clone())
}

/// The high side's check of every recorded origin (a signed description
/// may still carry values no manifest check would pass): the repository
/// id and revision by the Hub's rules, a model artifact it belongs to,
/// and each repository once.
pub fn check_origins(d: &Description, at: &str, report: &mut Report) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for m in &d.models {
        let Some(o) = &m.huggingface else { continue };
        if let Some((field, problem)) = o.problem() {
            report.add(
                at,
                format!("model {:?}: huggingface.{field}: {problem}", m.artifact),
            );
            continue;
        }
        if !d
            .artifacts
            .iter()
            .any(|a| a.kind == ArtifactKind::Model && a.reference == m.artifact)
        {
            report.add(
                at,
                format!(
                    "model {:?}: a huggingface origin for no model artifact of the bundle",
                    m.artifact
                ),
            );
        }
        if let Some(first) = seen.insert(o.repo.to_ascii_lowercase(), &m.artifact) {
            report.add(
                at,
                format!(
                    "model {:?}: huggingface.repo {:?} is also model {first:?}'s origin; a bundle carries one snapshot of a Hub repository",
                    m.artifact, o.repo
                ),
            );
        }
    }
}

/// The origin recorded for model artifact `a`, if it is a valid one.
pub fn origin_of<'a>(d: &'a Description, a: &Artifact) -> Option<&'a HfOrigin> {
    d.models
        .iter()
        .find(|m| m.artifact == a.reference)
        .and_then(|m| m.huggingface.as_ref())
        .filter(|o| o.problem().is_none())
}

/// `pkg:huggingface/ORG/NAME@REVISION` (purl-spec: name and namespace as
/// the Hub spells them, the revision lowercase).
pub fn purl(o: &HfOrigin) -> String {
    let (org, name) = o.parts();
    crate::purl::purl("huggingface", &[org, name], Some(&o.revision), &[])
}

/// The repository's page on the Hub.
pub fn repo_url(o: &HfOrigin) -> String {
    format!("https://huggingface.co/{}", o.repo)
}

/// The repository's files at the revision, on the Hub.
pub fn tree_url(o: &HfOrigin) -> String {
    format!("https://huggingface.co/{}/tree/{}", o.repo, o.revision)
}

/// Writes the Hub cache entry of every model in `artifacts` that has an
/// origin, below `to/huggingface/hub/`; the model's files must already be
/// exported below `to` (at `export_path`). Returns each repository folder.
pub fn write_cache(
    d: &Description,
    artifacts: &[&Artifact],
    to: &Path,
    export_path: &dyn Fn(&Artifact, crate::bundle::LayerRef<'_>) -> Option<String>,
    read: ReadLayer<'_>,
) -> Result<Vec<PathBuf>> {
    let mut report = Report::default();
    check_origins(d, DESCRIPTION, &mut report);
    report.into_result()?;
    let mut out = Vec::new();
    for a in artifacts {
        let Some(o) = origin_of(d, a) else { continue };
        let repo_dir = to.join(CACHE_DIR).join(o.cache_folder());
        let blobs = repo_dir.join("blobs");
        let snapshot = repo_dir.join("snapshots").join(&o.revision);
        fs_err::create_dir_all(&blobs)?;
        fs_err::create_dir_all(&snapshot)?;
        let rules = LfsRules::of(a, read)?;
        let mut made = BTreeSet::new();
        for l in &a.layers {
            let rel = export_path(a, l).filter(|_| safe_relative(l.path));
            let Some(rel) = rel else {
                return Err(crate::error::single(
                    DESCRIPTION,
                    format!(
                        "model {:?}: file {:?} has no place in the export (record edited?); nothing was exported",
                        a.name, l.path
                    ),
                ));
            };
            let src = to.join(rel);
            // Written by export itself in its staging directory: a plain file.
            if !fs_err::symlink_metadata(&src)?.is_file() {
                return Err(Error::Usage(format!(
                    "{}: not a regular file; export writes into a directory of its own",
                    src.display()
                )));
            }
            let blob = if rules.is_lfs(l.path, l.size) {
                l.digest.hex()
            } else {
                git_blob_sha1(&src)?
            };
            if made.insert(blob.clone()) {
                link_or_copy(&src, &blobs.join(&blob))?;
            }
            let link = snapshot.join(l.path);
            if let Some(parent) = link.parent() {
                fs_err::create_dir_all(parent)?;
            }
            let target = format!(
                "{}blobs/{blob}",
                "../".repeat(l.path.matches('/').count() + 2)
            );
            symlink(&target, &link)?;
        }
        super::packages::write_new(&repo_dir.join("refs/main"), o.revision.as_bytes())?;
        out.push(repo_dir);
    }
    Ok(out)
}

#[cfg(unix)]
fn symlink(target: &str, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| Error::Usage(format!("{}: {e}", link.display())))
}

#[cfg(not(unix))]
fn symlink(_target: &str, link: &Path) -> Result<()> {
    Err(Error::Usage(format!(
        "{}: the Hugging Face cache needs symbolic links, which this system does not make",
        link.display()
    )))
}

/// A hard link to `src` at the new name `dest`, or a copy where the file
/// system makes none.
fn link_or_copy(src: &Path, dest: &Path) -> Result<()> {
    if std::fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    let mut out = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    std::io::copy(&mut fs_err::File::open(src)?, &mut out)?;
    Ok(())
}

/// git's object id of a file: sha1 of `blob <size>\0` and the bytes.
fn git_blob_sha1(path: &Path) -> Result<String> {
    let mut f = fs_err::File::open(path)?;
    let size = f.metadata()?.len();
    let mut h = Sha1::new();
    h.update(format!("blob {size}\0").as_bytes());
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        h.update(&buf[..n]);
    }
    if seen != size {
        return Err(Error::Usage(format!(
            "{}: changed while it was read",
            path.display()
        )));
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Which files git keeps with LFS: `(pattern, lfs)` rules, the last
/// matching one deciding, as git reads `.gitattributes`.
#[derive(Debug)]
struct LfsRules(Vec<(String, bool)>);

impl LfsRules {
    /// The model's own `.gitattributes` (read from the store, re-hashed),
    /// else the Hub's default patterns.
    fn of(a: &Artifact, read: ReadLayer<'_>) -> Result<Self> {
        match a
            .layers
            .iter()
            .find(|l| l.path == ".gitattributes" && l.size <= GITATTRIBUTES_MAX)
        {
            Some(l) => Ok(Self::parse(&String::from_utf8_lossy(&read(l)?))),
            None => Ok(LfsRules(
                DEFAULT_LFS.iter().map(|p| (p.to_string(), true)).collect(),
            )),
        }
    }

    fn parse(text: &str) -> Self {
        let mut rules = Vec::new();
        for line in text.lines().take(GITATTRIBUTES_LINES) {
            let mut words = line.split_whitespace();
            let Some(pattern) = words.next() else {
                continue;
            };
            if pattern.starts_with(['#', '!', '"']) || pattern.len() > 256 {
                continue;
            }
            let mut lfs = None;
            for w in words {
                if let Some(v) = w.strip_prefix("filter=") {
                    lfs = Some(v == "lfs");
                } else if w == "-filter" || w == "!filter" {
                    lfs = Some(false);
                }
            }
            if let Some(lfs) = lfs {
                rules.push((pattern.to_string(), lfs));
            }
        }
        LfsRules(rules)
    }

    fn is_lfs(&self, path: &str, size: u64) -> bool {
        size > PLAIN_GIT_MAX
            || self
                .0
                .iter()
                .rev()
                .find(|(p, _)| attr_match(p, path))
                .is_some_and(|(_, lfs)| *lfs)
    }
}

/// A `.gitattributes` pattern against a repository path: without a `/`
/// it matches the file name at any depth; with one, the whole path, `**`
/// standing for any number of directories.
fn attr_match(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches('/');
    if !pattern.contains('/') {
        return glob(pattern, path.rsplit('/').next().unwrap_or(path));
    }
    let pat: Vec<&str> = pattern.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    // ok[i][j]: pat[i..] matches parts[j..] (filled from the end).
    let (n, m) = (pat.len(), parts.len());
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if pat[i] == "**" {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else {
                j < m && ok[i + 1][j + 1] && glob(pat[i], parts[j])
            };
        }
    }
    ok[0][0]
}

/// `*` (any run) and `?` (one character) within one path component.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_ids_follow_the_hub_rules() {
        for ok in [
            "sentence-transformers/all-MiniLM-L6-v2",
            "Qwen/Qwen2.5-0.5B",
            "a/b",
            "_x_/y_",
        ] {
            assert_eq!(HfOrigin::repo_problem(ok), None, "{ok}");
        }
        let long = format!("org/{}", "a".repeat(93));
        for bad in [
            "",
            "name-only",
            "a/b/c",
            "../x",
            "org/..",
            "org/a..b",
            "org/a--b",
            "org/-a",
            "org/a.",
            ".org/a",
            "org/a b",
            "org/a\\b",
            "/a",
            "a/",
            long.as_str(),
        ] {
            assert!(HfOrigin::repo_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(HfOrigin::repo_problem(&long[1..]), None);
    }

    #[test]
    fn revisions_are_lowercase_commits() {
        let rev = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
        assert_eq!(HfOrigin::revision_problem(rev), None);
        for bad in [
            "main",
            "C9745ED1D9F207416BE6D2E6F8DE32D1F16199BF",
            &rev[1..],
            "g9745ed1d9f207416be6d2e6f8de32d1f16199bf",
        ] {
            assert!(HfOrigin::revision_problem(bad).is_some(), "{bad}");
        }
        let o = HfOrigin {
            repo: "sentence-transformers/all-MiniLM-L6-v2".into(),
            revision: rev.into(),
        };
        assert_eq!(
            o.cache_folder(),
            "models--sentence-transformers--all-MiniLM-L6-v2"
        );
        assert_eq!(
            purl(&o),
            format!("pkg:huggingface/sentence-transformers/all-MiniLM-L6-v2@{rev}")
        );
    }

    #[test]
    fn git_blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\n").unwrap();
        assert_eq!(
            git_blob_sha1(&p).unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn lfs_follows_gitattributes() {
        let rules = LfsRules::parse(
            "*.bin filter=lfs diff=lfs merge=lfs -text\n\
             saved_model/**/* filter=lfs diff=lfs merge=lfs -text \n\
             model.safetensors filter=lfs diff=lfs merge=lfs -text\n\
             *tfevents* filter=lfs\n\
             # a comment filter=lfs\n\
             small.bin -filter\n",
        );
        assert!(rules.is_lfs("model.safetensors", 10));
        assert!(rules.is_lfs("sub/pytorch_model.bin", 10));
        assert!(rules.is_lfs("saved_model/variables/v.data", 10));
        assert!(rules.is_lfs("runs/events.out.tfevents.1", 10));
        assert!(!rules.is_lfs("small.bin", 10));
        assert!(!rules.is_lfs("other.safetensors", 10));
        assert!(!rules.is_lfs("config.json", 10));
        assert!(!rules.is_lfs("saved_model", 10));
        assert!(rules.is_lfs("config.json", PLAIN_GIT_MAX + 1));
        let defaults = LfsRules(DEFAULT_LFS.iter().map(|p| (p.to_string(), true)).collect());
        assert!(defaults.is_lfs("x/model.safetensors", 1));
        assert!(!defaults.is_lfs("tokenizer.json", 1));
        assert!(glob("*a*b", "xaxxb") && !glob("*a*b", "xaxxbc") && glob("?.t*", "a.txt"));
    }
}
