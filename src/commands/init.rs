//! `airlock init`: a commented starter manifest and trust policy, filled in
//! from what the directory holds (model folders, requirements.txt with a
//! wheelhouse, pylock.toml, Cargo.lock with vendor/, other files).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const MANIFEST: &str = "airlock.yaml";
pub const POLICY: &str = "trust-policy.yaml";

/// What `init` wrote and what it found.
#[derive(Debug, Clone)]
pub struct Initialized {
    pub manifest: PathBuf,
    pub policy: PathBuf,
    /// Model folders or files (paths relative to the directory).
    pub models: Vec<String>,
    pub files: Vec<String>,
    pub python: Vec<String>,
    pub cargo: Vec<String>,
}

const WEIGHT_EXT: [&str; 7] = [
    ".safetensors",
    ".gguf",
    ".bin",
    ".pt",
    ".pth",
    ".onnx",
    ".ckpt",
];

/// Directories and files never proposed as payload.
const SKIP: [&str; 9] = [
    ".git",
    "target",
    "dist",
    "keys",
    "node_modules",
    "__pycache__",
    ".venv",
    MANIFEST,
    POLICY,
];

fn is_weight(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    WEIGHT_EXT.iter().any(|e| n.ends_with(e))
}

/// A Hugging Face style folder: config.json plus at least one weight file.
fn is_model_dir(dir: &Path) -> bool {
    if !dir.join("config.json").is_file() {
        return false;
    }
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_str().is_some_and(is_weight))
        })
        .unwrap_or(false)
}

/// A name in the manifest's form (`[a-z0-9][a-z0-9-]*`) from any text.
pub fn to_name(raw: &str) -> String {
    let mut s = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "bundle".into()
    } else {
        s.chars().take(64).collect()
    }
}

/// A YAML single-quoted scalar.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Plain, printable names only: a file name with control characters or
/// invalid UTF-8 is left for the user to add by hand.
fn usable_name(n: &std::ffi::OsStr) -> Option<String> {
    let s = n.to_str()?;
    (!s.chars().any(char::is_control)).then(|| s.to_string())
}

struct Found {
    models: Vec<(String, String)>,
    files: Vec<String>,
    requirements: Option<String>,
    pylock: Option<String>,
    wheelhouse: Option<String>,
    cargo_lock: Option<String>,
    vendor: Option<String>,
}

fn scan(dir: &Path) -> Result<Found> {
    let mut found = Found {
        models: vec![],
        files: vec![],
        requirements: None,
        pylock: None,
        wheelhouse: None,
        cargo_lock: None,
        vendor: None,
    };
    let mut entries: Vec<(String, PathBuf)> = fs_err::read_dir(dir)?
        .flatten()
        .filter_map(|e| usable_name(&e.file_name()).map(|n| (n, e.path())))
        .collect();
    entries.sort();
    let mut names_taken = std::collections::BTreeSet::new();
    let mut add_model = |found: &mut Found, rel: String, base: &str| {
        let mut name = to_name(base);
        let stem = name.clone();
        let mut i = 2;
        while !names_taken.insert(name.clone()) {
            name = format!("{stem}-{i}");
            i += 1;
        }
        found.models.push((name, rel));
    };
    for (name, path) in entries {
        if name.starts_with('.') || SKIP.contains(&name.as_str()) {
            continue;
        }
        let meta = fs_err::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        match name.as_str() {
            "requirements.txt" => {
                found.requirements = Some(name);
                continue;
            }
            "pylock.toml" => {
                found.pylock = Some(name);
                continue;
            }
            "Cargo.lock" => {
                found.cargo_lock = Some(name);
                continue;
            }
            "wheelhouse" if meta.is_dir() => {
                found.wheelhouse = Some(name);
                continue;
            }
            "vendor" if meta.is_dir() => {
                found.vendor = Some(name);
                continue;
            }
            _ => {}
        }
        if meta.is_dir() {
            if is_model_dir(&path) {
                add_model(&mut found, name.clone(), &name);
                continue;
            }
            // A folder of model folders (models/NAME).
            let mut subs: Vec<(String, PathBuf)> = fs_err::read_dir(&path)?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| usable_name(&e.file_name()).map(|n| (n, e.path())))
                .collect();
            subs.sort();
            let models: Vec<_> = subs.iter().filter(|(_, p)| is_model_dir(p)).collect();
            if !models.is_empty() && models.len() == subs.len() {
                for (sub, _) in models {
                    add_model(&mut found, format!("{name}/{sub}"), sub);
                }
                continue;
            }
            found.files.push(name);
        } else if meta.is_file() {
            if is_weight(&name) {
                let stem = name.rsplit_once('.').map_or(name.as_str(), |x| x.0);
                add_model(&mut found, name.clone(), stem);
            } else {
                found.files.push(name);
            }
        }
    }
    Ok(found)
}

/// Writes `airlock.yaml` and `trust-policy.yaml` into `dir`.
pub fn init(dir: &Path, name: Option<&str>, version: &str, force: bool) -> Result<Initialized> {
    let manifest = dir.join(MANIFEST);
    let policy = dir.join(POLICY);
    for p in [&manifest, &policy] {
        if !force && fs_err::symlink_metadata(p).is_ok() {
            return Err(Error::Usage(format!(
                "{} already exists; edit it, or give --force to overwrite it",
                p.display()
            )));
        }
    }
    let name = match name {
        Some(n) if crate::manifest::valid_name(n) => n.to_string(),
        Some(n) => {
            return Err(Error::Usage(format!(
                "--name {n:?}: a bundle name is lowercase letters, digits and '-', starting with a letter or digit (e.g. {})",
                to_name(n)
            )))
        }
        None => to_name(
            &dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    };
    if version.is_empty() || version.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Usage(format!(
            "--version {version:?}: give a version such as 1.0.0"
        )));
    }
    let f = scan(dir)?;
    fs_err::write(&manifest, manifest_text(&name, version, &f))?;
    fs_err::write(&policy, policy_text())?;
    Ok(Initialized {
        manifest,
        policy,
        models: f.models.iter().map(|m| m.1.clone()).collect(),
        files: f.files.clone(),
        python: [&f.requirements, &f.pylock, &f.wheelhouse]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        cargo: [&f.cargo_lock, &f.vendor]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
    })
}

fn manifest_text(name: &str, version: &str, f: &Found) -> String {
    let mut s = format!(
        "# airlock manifest, written by `airlock init` from what this directory holds.\n\
         # Review it, then: airlock pack {MANIFEST} --key keys/build-ci.key --out dist\n\
         # Paths are relative to this file. Unknown fields are errors.\n\
         apiVersion: airlock/v1\n\
         kind: Bundle\n\
         metadata:\n\
         \x20 name: {name}                # [a-z0-9][a-z0-9-]*\n\
         \x20 version: {}\n\
         \x20 description: {}\n",
        q(version),
        q(&format!("{name}, packed with airlock"))
    );
    s.push_str(
        "\n# Files and folders carried as they are. Pin a single file with\n\
         # `sha256: <hex>` to have pack refuse any other content.\n",
    );
    if f.files.is_empty() {
        s.push_str("files: []\n#  - path: docs/runbook.pdf\n");
    } else {
        s.push_str("files:\n");
        for p in &f.files {
            s.push_str(&format!("  - path: {}\n", q(p)));
        }
    }
    s.push_str(
        "\n# Models: a Hugging Face style folder (config.json and weights) or one\n\
         # weight file. Weights are read at pack and again on the high side;\n\
         # pickles are refused unless `policy: pickle: allow`.\n",
    );
    if f.models.is_empty() {
        s.push_str("models: []\n#  - name: minilm\n#    path: models/all-MiniLM-L6-v2\n");
    } else {
        s.push_str("models:\n");
        for (n, p) in &f.models {
            s.push_str(&format!("  - name: {n}\n    path: {}\n", q(p)));
        }
    }
    s.push_str(
        "\n# Python: a requirements file in pip's hash-checking form (every line\n\
         # `name==version --hash=sha256:...`) and the wheelhouse `pip download`\n\
         # filled, or a PEP 751 pylock.toml.\n",
    );
    match (&f.requirements, &f.pylock, &f.wheelhouse) {
        (Some(r), _, Some(w)) => s.push_str(&format!(
            "python:\n  - requirements: {}\n    wheelhouse: {}\n",
            q(r),
            q(w)
        )),
        (_, Some(l), w) => {
            s.push_str(&format!("python:\n  - lock: {}\n", q(l)));
            if let Some(w) = w {
                s.push_str(&format!("    wheelhouse: {}\n", q(w)));
            }
        }
        (Some(r), None, None) => s.push_str(&format!(
            "# {r} was found but no wheelhouse/ folder: run\n\
             #   pip download --require-hashes -r {r} -d wheelhouse\n\
             # then uncomment:\n\
             # python:\n#   - requirements: {}\n#     wheelhouse: wheelhouse\n",
            q(r)
        )),
        (None, None, _) => s.push_str(
            "# python:\n#   - requirements: requirements.txt\n#     wheelhouse: wheelhouse\n",
        ),
    }
    s.push_str("\n# Rust: Cargo.lock and the folder `cargo vendor` wrote.\n");
    match (&f.cargo_lock, &f.vendor) {
        (Some(l), Some(v)) => s.push_str(&format!(
            "cargo:\n  - lockfile: {}\n    vendor: {}\n",
            q(l),
            q(v)
        )),
        (Some(l), None) => s.push_str(&format!(
            "# {l} was found but no vendor/ folder: run `cargo vendor`, then uncomment:\n\
             # cargo:\n#   - lockfile: {}\n#     vendor: vendor\n",
            q(l)
        )),
        (None, _) => s.push_str("# cargo:\n#   - lockfile: Cargo.lock\n#     vendor: vendor\n"),
    }
    s.push_str(
        "\n# Container images, fetched at pack time:\n\
         # images:\n\
         #   - source: docker://registry.example/ml/infer:1.4.0\n\
         \n\
         # SBOMs made elsewhere, carried along (airlock writes its own too):\n\
         # sboms:\n\
         #   - path: sboms/infer.cdx.json\n\
         \n\
         policy:\n\
         \x20 pickle: deny                  # deny (default) | allow\n",
    );
    s
}

fn policy_text() -> String {
    "# airlock trust policy, written by `airlock init`. It belongs to the high\n\
     # side's administrator: copy it there and review every key. Paths are\n\
     # relative to this file.\n\
     apiVersion: airlock/v1\n\
     kind: TrustPolicy\n\
     keys:\n\
     \x20 # The build side's key: `airlock keygen keys/build-ci` writes keys/build-ci.pub.\n\
     \x20 - name: build-ci\n\
     \x20   publicKey: keys/build-ci.pub   # PEM or OpenSSH public key, or inline\n\
     \x20   roles: [builder]\n\
     \x20   # expires: 2027-12-31\n\
     \x20 # A reviewer who co-signs with `airlock sign`:\n\
     \x20 # - name: reviewer-1\n\
     \x20 #   publicKey: keys/reviewer-1.ssh.pub\n\
     \x20 #   roles: [reviewer]\n\
     \x20 # The data-transfer officer who records custody events:\n\
     \x20 # - name: officer\n\
     \x20 #   publicKey: keys/officer.pub\n\
     \x20 #   roles: [transfer-officer]\n\
     revoked: []                          # key ids no longer trusted\n\
     require:                             # distinct valid signers needed per role\n\
     \x20 builder: 1\n\
     \x20 # reviewer: 1\n\
     # Custody events that must be present, by role:\n\
     # custody:\n\
     #   - event: scanned\n\
     #     role: transfer-officer\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(to_name("all-MiniLM-L6-v2"), "all-minilm-l6-v2");
        assert_eq!(to_name("My Project_2"), "my-project-2");
        assert_eq!(to_name("___"), "bundle");
    }

    /// Lockfiles with their folders become entries; a loose weight file is a
    /// model; the manifest loads (schema and field checks) as written.
    #[test]
    fn finds_lockfiles_and_weights() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for dir in ["vendor/serde", "wheelhouse", "docs", "keys", ".git"] {
            std::fs::create_dir_all(d.join(dir)).unwrap();
        }
        for f in [
            "Cargo.lock",
            "pylock.toml",
            "tiny-Q4.gguf",
            "docs/a.md",
            "it's.txt",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let done = init(d, Some("demo"), "2.0.0", false).unwrap();
        assert_eq!(done.models, ["tiny-Q4.gguf"]);
        assert_eq!(done.files, ["docs", "it's.txt"]);
        assert_eq!(done.python, ["pylock.toml", "wheelhouse"]);
        assert_eq!(done.cargo, ["Cargo.lock", "vendor"]);
        let m = crate::manifest::LoadedManifest::load(&done.manifest).unwrap();
        assert_eq!(m.manifest.metadata.name, "demo");
        assert_eq!(m.manifest.models[0].name, "tiny-q4");
        assert_eq!(m.manifest.python[0].lock.as_deref(), Some("pylock.toml"));
        assert_eq!(m.manifest.cargo[0].vendor, "vendor");
        assert_eq!(m.manifest.files[1].path, "it's.txt");
        crate::keys::PrivateKey::generate()
            .unwrap()
            .write_files(&d.join("keys/build-ci"))
            .unwrap();
        let p = crate::policy::TrustPolicy::load(&done.policy).unwrap();
        assert_eq!(p.keys[0].name, "build-ci");
        assert_eq!(p.require.get("builder"), Some(&1));
        assert!(init(d, None, "1", false).is_err(), "refuses to overwrite");
        assert!(init(d, None, "1", true).is_ok(), "unless forced");
    }

    #[test]
    fn quotes_yaml() {
        assert_eq!(q("it's"), "'it''s'");
    }
}
