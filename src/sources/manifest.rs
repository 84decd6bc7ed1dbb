//! The build-side bundle manifest (YAML). Parsed only on the connected side;
//! nothing in a bundle is YAML. Unknown fields are errors.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    #[serde(default)]
    pub python: Vec<PythonEntry>,
    #[serde(default)]
    pub cargo: Vec<CargoEntry>,
    #[serde(default)]
    pub npm: Vec<NpmEntry>,
    #[serde(default)]
    pub apt: Vec<AptEntry>,
    #[serde(default)]
    pub sboms: Vec<SbomEntry>,
    #[serde(default)]
    pub policy: BuildPolicy,
    /// The directory every input path must stay below (after resolving `..`
    /// and symbolic links), relative to this file. Default: this file's
    /// directory. `pack --root DIR` bounds it further.
    #[serde(default)]
    pub root: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub path: String,
    /// The model's origin on the Hugging Face Hub (`{repo: ORG/NAME,
    /// revision: COMMIT}`): recorded in the description and the SBOMs, and
    /// export writes a Hub cache for it. Nothing is downloaded.
    #[serde(default)]
    pub huggingface: Option<HfOrigin>,
    /// Check the model's OpenSSF model-signing signature (`model.sig`) at
    /// pack against this key. Without it, a `model.sig` is carried unverified.
    #[serde(default)]
    pub signature: Option<ModelSignatureEntry>,
}

/// `models[].signature`: what a model's `model.sig` is checked against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSignatureEntry {
    /// The signer's EC P-256 public key (PEM), relative to the manifest.
    #[serde(default)]
    pub public_key: Option<String>,
    /// A signing certificate: named only to be refused with a reason
    /// (certificate chains and Sigstore keyless signatures are not verified).
    #[serde(default)]
    pub certificate: Option<String>,
}

pub use crate::bundle::HfOrigin;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// `docker://HOST/REPO:TAG`, `docker://HOST/REPO@sha256:...`,
    /// `oci-layout:DIR[:REF]` or `docker-archive:FILE`.
    pub source: String,
    /// Allow a plain-HTTP registry (loopback test registries).
    #[serde(default)]
    pub insecure: bool,
    /// Keep only these platforms of a multi-platform image (`linux/amd64`).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// The reference the image is known by on the high side (in the store
    /// and exports). Default: the registry reference, the layout's ref.name,
    /// or the archive's first tag.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct PythonEntry {
    /// A requirements file in pip's hash-checking form.
    #[serde(default)]
    pub requirements: Option<String>,
    /// The folder holding the files the requirements pin (`pip download`
    /// output). Required with `requirements:`; optional with `lock:` alone.
    #[serde(default)]
    pub wheelhouse: Option<String>,
    /// A PEP 751 `pylock.toml`: files it lists that the wheelhouse lacks are
    /// downloaded from its URLs (HTTPS only), hash-checked while downloading.
    #[serde(default)]
    pub lock: Option<String>,
    /// Files no requirement names are left out instead of refused.
    #[serde(default)]
    pub allow_extra: bool,
    /// Source distributions are refused (they run code when installed).
    #[serde(default = "yes")]
    pub only_binary: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoEntry {
    pub lockfile: String,
    pub vendor: String,
}

/// An npm project: its `package-lock.json` (the `package.json` beside it
/// is carried too) and the folder of the tarballs it pins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmEntry {
    pub lockfile: String,
    pub tarballs: String,
}

/// Debian packages: `apt-get download PKG...` output and the lock
/// `apt-cache show --no-all-versions PKG... > LOCK` prints for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptEntry {
    pub lock: String,
    pub debs: String,
    /// The distribution the packages come from: the purl namespace
    /// (`pkg:deb/DISTRO/...`). Default `debian`.
    #[serde(default)]
    pub distro: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomEntry {
    pub path: String,
}

pub use crate::bundle::PicklePolicy;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildPolicy {
    #[serde(default)]
    pub pickle: PicklePolicy,
}

/// A manifest checked and resolved against its directory.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub path: PathBuf,
    pub base: PathBuf,
    /// Canonical directory no input may resolve outside of.
    pub root: PathBuf,
    pub manifest: Manifest,
    pub version: semver::Version,
}

pub use crate::bundle::valid_name;

/// True for a model's `name:`: the folder name it is exported under, as
/// model hubs spell them (`all-MiniLM-L6-v2`, `Qwen2.5-0.5B`): ASCII
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn valid_model_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && name.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The artifact name of a model (`all-minilm-l6-v2`): lowercased, with `.`
/// and `_` as `-`, a [`valid_name`].
pub fn model_artifact_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '.' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The folder export writes model artifact `a` into: the name the manifest
/// gave it, recorded in the description's model facts, if it is a valid
/// model name that normalizes to the artifact's name; else the artifact name.
pub fn model_folder<'a>(
    d: &'a crate::bundle::Description,
    a: &'a crate::bundle::Artifact,
) -> &'a str {
    d.models
        .iter()
        .find(|m| m.artifact == a.reference)
        .and_then(|m| m.folder.as_deref())
        .filter(|f| valid_model_name(f) && model_artifact_name(f) == a.name)
        .unwrap_or(&a.name)
}

/// A relative path that stays below its base: no root, no `..`, not empty.
pub fn is_contained(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)))
}

/// The name a manifest path is recorded under inside the bundle: resolved
/// lexically, with leading `..` dropped (`../target/release/airlock` →
/// `target/release/airlock`), so what the builder points at outside the
/// manifest's directory still lands below the export directory.
pub fn record_name(rel: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl LoadedManifest {
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_root(path, None)
    }

    /// Loads a manifest whose inputs must all resolve below `root` (the
    /// command line's `--root`); without one, below the manifest's `root:`,
    /// else the manifest's directory. A manifest `root:` outside `root` is
    /// refused, so a pipeline packing manifests it did not write bounds what
    /// they can read.
    pub fn load_with_root(path: &Path, root: Option<&Path>) -> Result<Self> {
        let manifest: Manifest = crate::yaml::load(path)?;
        let bad = |msg: String| Error::input(path, msg);
        if manifest.api_version != "airlock/v1" {
            return Err(bad(format!(
                "apiVersion: expected \"airlock/v1\", found {:?}",
                manifest.api_version
            )));
        }
        if manifest.kind != "Bundle" {
            return Err(bad(format!(
                "kind: expected \"Bundle\", found {:?}",
                manifest.kind
            )));
        }
        if !valid_name(&manifest.metadata.name) {
            return Err(bad(format!(
                "metadata.name: {:?} is not a valid name (lowercase letters, digits and '-', starting with a letter or digit)",
                manifest.metadata.name
            )));
        }
        let version = semver::Version::parse(&manifest.metadata.version).map_err(|e| {
            bad(format!(
                "metadata.version: {:?} is not a semantic version such as 1.4.0 ({e})",
                manifest.metadata.version
            ))
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let root = confinement(path, &base, manifest.root.as_deref(), root)?;
        let loaded = LoadedManifest {
            path: path.to_path_buf(),
            base,
            root,
            manifest,
            version,
        };
        loaded.check_entries()?;
        Ok(loaded)
    }

    fn check_entries(&self) -> Result<()> {
        let m = &self.manifest;
        let bad = |msg: String| Error::input(&self.path, msg);
        for (i, f) in m.files.iter().enumerate() {
            self.existing(&format!("files[{i}].path"), &f.path)?;
            if let Some(pin) = &f.sha256 {
                pin.parse::<Sha256Digest>()
                    .map_err(|e| bad(format!("files[{i}].sha256: {e}")))?;
                if !self.resolve(&f.path).is_file() {
                    return Err(bad(format!(
                        "files[{i}].sha256: a pin applies to a single file, but {} is a directory",
                        f.path
                    )));
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, model) in m.models.iter().enumerate() {
            if !valid_model_name(&model.name) {
                return Err(bad(format!("models[{i}].name: {:?} is not a valid model name (letters, digits, '.', '_' and '-', starting with a letter or digit; it names the folder export writes)", model.name)));
            }
            if !names.insert(model_artifact_name(&model.name)) {
                return Err(bad(format!(
                    "models[{i}].name: {:?} appears twice (model names are compared ignoring case, '.' and '_')",
                    model.name
                )));
            }
            let dir = self.existing(&format!("models[{i}].path"), &model.path)?;
            if let Some(sig) = &model.signature {
                self.signature_key(i, sig, &dir)?;
            }
            if let Some(hf) = &model.huggingface {
                if let Some((field, problem)) = hf.problem() {
                    return Err(bad(format!(
                        "models[{i}].huggingface.{field} (model {:?}): {problem}",
                        model.name
                    )));
                }
                if let Some(j) = m.models[..i].iter().position(|o| {
                    o.huggingface
                        .as_ref()
                        .is_some_and(|o| o.repo.eq_ignore_ascii_case(&hf.repo))
                }) {
                    return Err(bad(format!(
                        "models[{i}].huggingface.repo (model {:?}): {:?} is also models[{j}]'s origin; a bundle carries one snapshot of a Hub repository (export writes one Hub cache entry for it)",
                        model.name, hf.repo
                    )));
                }
            }
        }
        let mut paths = std::collections::BTreeSet::new();
        for (i, f) in m.files.iter().enumerate() {
            if !paths.insert(record_name(&f.path)) {
                return Err(bad(format!("files[{i}].path: {:?} appears twice", f.path)));
            }
        }
        for (i, s) in m.sboms.iter().enumerate() {
            self.existing(&format!("sboms[{i}].path"), &s.path)?;
        }
        for (i, p) in m.python.iter().enumerate() {
            if p.requirements.is_none() && p.lock.is_none() {
                return Err(bad(format!(
                    "python[{i}].requirements: missing; name a requirements file in pip's hash-checking form, or a PEP 751 pylock.toml as `lock:`"
                )));
            }
            for (field, file) in [("requirements", &p.requirements), ("lock", &p.lock)] {
                let Some(file) = file else { continue };
                if !self
                    .existing(&format!("python[{i}].{field}"), file)?
                    .is_file()
                {
                    return Err(bad(format!("python[{i}].{field}: {file} is not a file")));
                }
            }
            match &p.wheelhouse {
                Some(wh)
                    if !self
                        .existing(&format!("python[{i}].wheelhouse"), wh)?
                        .is_dir() =>
                {
                    return Err(bad(format!(
                        "python[{i}].wheelhouse: {wh} is not a directory"
                    )));
                }
                Some(_) => {}
                None if p.requirements.is_some() => {
                    return Err(bad(format!(
                        "python[{i}].wheelhouse: missing; name the folder holding the files the requirements pin (`pip download` output)"
                    )));
                }
                None => {}
            }
        }
        for (i, c) in m.cargo.iter().enumerate() {
            if !self
                .existing(&format!("cargo[{i}].lockfile"), &c.lockfile)?
                .is_file()
            {
                return Err(bad(format!(
                    "cargo[{i}].lockfile: {} is not a file",
                    c.lockfile
                )));
            }
            if !self
                .existing(&format!("cargo[{i}].vendor"), &c.vendor)?
                .is_dir()
            {
                return Err(bad(format!(
                    "cargo[{i}].vendor: {} is not a directory (the output of `cargo vendor`)",
                    c.vendor
                )));
            }
        }
        for (i, n) in m.npm.iter().enumerate() {
            if !self
                .existing(&format!("npm[{i}].lockfile"), &n.lockfile)?
                .is_file()
            {
                return Err(bad(format!(
                    "npm[{i}].lockfile: {} is not a file (a package-lock.json)",
                    n.lockfile
                )));
            }
            if !self
                .existing(&format!("npm[{i}].tarballs"), &n.tarballs)?
                .is_dir()
            {
                return Err(bad(format!(
                    "npm[{i}].tarballs: {} is not a directory (the tarballs `npm pack` writes)",
                    n.tarballs
                )));
            }
        }
        for (i, a) in m.apt.iter().enumerate() {
            if !self.existing(&format!("apt[{i}].lock"), &a.lock)?.is_file() {
                return Err(bad(format!(
                    "apt[{i}].lock: {} is not a file (the output of `apt-cache show --no-all-versions PKG...`)",
                    a.lock
                )));
            }
            if !self.existing(&format!("apt[{i}].debs"), &a.debs)?.is_dir() {
                return Err(bad(format!(
                    "apt[{i}].debs: {} is not a directory (where `apt-get download PKG...` wrote the .deb files)",
                    a.debs
                )));
            }
            if let Some(d) = &a.distro {
                if !super::apt::valid_distro(d) {
                    return Err(bad(format!(
                        "apt[{i}].distro: {d:?} is not a distribution name such as debian or ubuntu (lowercase letters, digits, '.' and '-')"
                    )));
                }
            }
        }
        let mut image_names = std::collections::BTreeSet::new();
        for (i, img) in m.images.iter().enumerate() {
            let src = ImageSource::parse(&img.source)
                .map_err(|e| bad(format!("images[{i}].source: {e}")))?;
            match &src {
                ImageSource::Layout { dir, .. } => {
                    self.existing(&format!("images[{i}].source"), dir)?;
                }
                ImageSource::Archive { file } => {
                    self.existing(&format!("images[{i}].source"), file)?;
                }
                ImageSource::Registry { .. } => {}
            }
            for p in &img.platforms {
                let parts: Vec<&str> = p.split('/').collect();
                if !(2..=3).contains(&parts.len()) || parts.iter().any(|x| x.is_empty()) {
                    return Err(bad(format!(
                        "images[{i}].platforms: {p:?} is not OS/ARCH[/VARIANT] such as linux/amd64"
                    )));
                }
            }
            if let Some(n) = &img.name {
                if !valid_reference(n) {
                    return Err(bad(format!(
                        "images[{i}].name: {n:?} is not an image reference such as registry.example/ml/infer:1.4.0"
                    )));
                }
                if !image_names.insert(n.clone()) {
                    return Err(bad(format!("images[{i}].name: {n:?} appears twice")));
                }
            }
        }
        Ok(())
    }

    /// Resolves a manifest path against the manifest's directory.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    /// Refuses `path` (an input named by `field`) unless it resolves, `..`
    /// and symbolic links included, below the root.
    pub fn within_root(&self, field: &str, path: &Path) -> Result<()> {
        let real = fs_err::canonicalize(path)
            .map_err(|e| Error::input(&self.path, format!("{field}: {e}")))?;
        if real.starts_with(&self.root) {
            return Ok(());
        }
        Err(Error::input(
            &self.path,
            format!(
                "{field}: {} resolves to {}, outside {}; airlock packs only what lies below the manifest's directory or its root: move the input below it, or set `root:` in the manifest (relative to it) or pass --root DIR",
                path.display(),
                real.display(),
                self.root.display()
            ),
        ))
    }

    /// `models[i].signature`: the public key a model's `model.sig` is
    /// checked against, read and parsed (an EC P-256 key, PEM).
    pub fn signature_key(
        &self,
        i: usize,
        sig: &ModelSignatureEntry,
        model_dir: &Path,
    ) -> Result<crate::modelsig::SignerKey> {
        let bad = |msg: String| Error::input(&self.path, msg);
        let field = format!("models[{i}].signature");
        if !model_dir.is_dir() {
            return Err(bad(format!(
                "{field}: a model signature (model.sig) covers a model directory, but models[{i}].path is a single file"
            )));
        }
        let key = match (&sig.public_key, &sig.certificate) {
            (Some(k), None) => k,
            (None, Some(c)) => {
                return Err(bad(format!(
                    "{field}.certificate: {c}: airlock does not verify certificate-based model signatures (x509 chains, Sigstore keyless): it has no trust root or transparency log to check them against. Sign with a key (`model_signing sign key`) and name its public key as {field}.publicKey, or drop {field} to carry model.sig unverified"
                )));
            }
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "{field}: name publicKey or certificate, not both"
                )));
            }
            (None, None) => {
                return Err(bad(format!(
                    "{field}: missing publicKey (the signer's EC P-256 public key, PEM)"
                )));
            }
        };
        let p = self.existing(&format!("{field}.publicKey"), key)?;
        if !p.is_file() {
            return Err(bad(format!("{field}.publicKey: {key} is not a file")));
        }
        let md = fs_err::metadata(&p)?;
        if md.len() > 64 << 10 {
            return Err(bad(format!(
                "{field}.publicKey: {key} is {} bytes; a public key is a few hundred",
                md.len()
            )));
        }
        let text = String::from_utf8(fs_err::read(&p)?)
            .map_err(|_| bad(format!("{field}.publicKey: {key} is not text (PEM)")))?;
        crate::modelsig::SignerKey::from_pem(&text)
            .map_err(|e| bad(format!("{field}.publicKey: {key} {e}")))
    }

    fn existing(&self, field: &str, rel: &str) -> Result<PathBuf> {
        if record_name(rel).is_none() {
            return Err(Error::input(
                &self.path,
                format!("{field}: {rel:?} must be a path relative to the manifest's directory (not absolute, not empty)"),
            ));
        }
        let p = self.resolve(rel);
        match fs_err::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => Err(Error::input(
                &self.path,
                format!("{field}: {} is a symbolic link; airlock packs regular files and directories only", p.display()),
            )),
            Ok(_) => {
                self.within_root(field, &p)?;
                Ok(p)
            }
            Err(_) => Err(Error::input(
                &self.path,
                format!("{field}: {} does not exist", p.display()),
            )),
        }
    }
}

/// The canonical directory a manifest's inputs must stay below: `cli`
/// (`--root`), else the manifest's `root:` (relative to its directory),
/// else its directory. A manifest `root:` must itself lie below `cli`.
fn confinement(
    path: &Path,
    base: &Path,
    declared: Option<&str>,
    cli: Option<&Path>,
) -> Result<PathBuf> {
    let dir = |field: &str, p: &Path, origin: &Path| -> Result<PathBuf> {
        let real =
            fs_err::canonicalize(p).map_err(|e| Error::input(origin, format!("{field}: {e}")))?;
        if !real.is_dir() {
            return Err(Error::input(
                origin,
                format!("{field}: {} is not a directory", p.display()),
            ));
        }
        Ok(real)
    };
    let cli = cli
        .map(|r| {
            dir("--root", r, r).map_err(|e| match e {
                Error::Input { message, .. } => Error::Usage(message),
                e => e,
            })
        })
        .transpose()?;
    let declared = declared
        .map(|r| {
            if r.is_empty() || Path::new(r).is_absolute() {
                return Err(Error::input(
                    path,
                    format!(
                        "root: {r:?} must be a directory relative to the manifest (such as ..)"
                    ),
                ));
            }
            dir("root", &base.join(r), path)
        })
        .transpose()?;
    match (cli, declared) {
        (Some(cli), Some(declared)) if !declared.starts_with(&cli) => Err(Error::input(
            path,
            format!(
                "root: {} lies outside --root {}; the command line bounds what a manifest may read",
                declared.display(),
                cli.display()
            ),
        )),
        (_, Some(declared)) => Ok(declared),
        (Some(cli), None) => Ok(cli),
        (None, None) => dir("the manifest's directory", base, path),
    }
}

/// `a/./b/` → `a/b`, the form a path is recorded under in the bundle.
pub fn normalize(rel: &str) -> String {
    Path::new(rel)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

// ---------------------------------------------------------------- image sources

/// Where an image comes from, as `source:` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `docker://HOST/REPO:TAG` or `docker://HOST/REPO[:TAG]@sha256:...`.
    Registry { reference: String },
    /// `oci-layout:DIR[:REF]` (DIR relative to the manifest).
    Layout {
        dir: String,
        reference: Option<String>,
    },
    /// `docker-archive:FILE` (relative to the manifest).
    Archive { file: String },
}

impl ImageSource {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if let Some(r) = s.strip_prefix("docker://") {
            if !valid_reference(r) || !r.contains('/') {
                return Err(format!(
                    "{s:?}: expected docker://HOST/REPO:TAG or docker://HOST/REPO@sha256:<64 hex>"
                ));
            }
            if let Some((_, d)) = r.split_once('@') {
                if d.strip_prefix("sha256:")
                    .and_then(|h| h.parse::<crate::digest::Sha256Digest>().ok())
                    .is_none()
                {
                    return Err(format!("{s:?}: the pin must be @sha256:<64 lowercase hex>"));
                }
            }
            Ok(ImageSource::Registry {
                reference: r.to_string(),
            })
        } else if let Some(rest) = s.strip_prefix("oci-layout:") {
            let (dir, reference) = match rest.split_once(':') {
                Some((d, r)) if !r.is_empty() => (d, Some(r.to_string())),
                Some((d, _)) => (d, None),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(format!("{s:?}: expected oci-layout:DIR[:REF]"));
            }
            Ok(ImageSource::Layout {
                dir: dir.to_string(),
                reference,
            })
        } else if let Some(file) = s.strip_prefix("docker-archive:") {
            if file.is_empty() {
                return Err(format!("{s:?}: expected docker-archive:FILE"));
            }
            Ok(ImageSource::Archive {
                file: file.to_string(),
            })
        } else {
            Err(format!(
                "{s:?}: expected docker://HOST/REPO:TAG, docker://HOST/REPO@sha256:..., oci-layout:DIR[:REF] or docker-archive:FILE"
            ))
        }
    }
}

/// A plausible image reference: `[HOST[:PORT]/]PATH[:TAG][@sha256:HEX]`
/// in the characters references use.
pub fn valid_reference(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 512
        && !r.starts_with(['/', ':', '@', '.', '-'])
        && !r.ends_with(['/', ':', '@'])
        && !r.contains("//")
        && !r.contains("..")
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("sensor-classifier"));
        assert!(valid_name("0x"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("Sensor"));
        assert!(!valid_name(""));
        assert!(!valid_name("a_b"));
        assert!(valid_model_name("all-MiniLM-L6-v2"));
        assert!(valid_model_name("Qwen2.5-0.5B_x"));
        assert!(!valid_model_name(".hidden"));
        assert!(!valid_model_name("a/b"));
        assert!(!valid_model_name(".."));
        assert_eq!(model_artifact_name("Qwen2.5-0.5B_x"), "qwen2-5-0-5b-x");
        assert!(valid_name(&model_artifact_name("all-MiniLM-L6-v2")));
    }

    #[test]
    fn containment() {
        assert!(is_contained(Path::new("a/b")));
        assert!(is_contained(Path::new("./a")));
        assert!(!is_contained(Path::new("../a")));
        assert!(!is_contained(Path::new("a/../../b")));
        assert!(!is_contained(Path::new("/etc/passwd")));
        assert!(!is_contained(Path::new(".")));
        assert_eq!(normalize("./a//b/"), "a/b");
        assert_eq!(
            record_name("../target/release/airlock").as_deref(),
            Some("target/release/airlock")
        );
        assert_eq!(record_name("a/../../b").as_deref(), Some("b"));
        assert_eq!(record_name("/etc/passwd"), None);
        assert_eq!(record_name(".."), None);
    }
}
