//! `images:` entries: container images from a registry (`docker://`), an OCI
//! image layout (`oci-layout:`) or a `docker save` archive
//! (`docker-archive:`), each carried with its original manifest digest and
//! every blob it references. Unlike files, images are fetched here: every
//! blob is streamed into the bundle's blob directory while it is hashed and
//! checked against its digest; a blob already there is not fetched again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::bundle::Artifact;
use crate::error::{Error, Result};
use crate::image::{self, BlobWriter, DirSource, LayoutSource, Resolved};
use crate::manifest::{ImageEntry, LoadedManifest};
use crate::progress::Progress;

pub use crate::manifest::{valid_reference, ImageSource};

/// One packed image, for `pack`'s report: what it is called and what its
/// reference resolved to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackedImage {
    pub name: String,
    pub source: String,
    pub digest: String,
    pub reference: String,
}

/// Fetches every image of the manifest into `blobs_dir` and returns their
/// artifacts. Fails on the first image that cannot be fetched or verified;
/// `pack` then removes its staging directory, so nothing partial remains.
pub fn fetch_all(
    m: &LoadedManifest,
    blobs_dir: &Path,
    taken_refs: &mut BTreeSet<String>,
    progress: &dyn Progress,
) -> Result<Vec<Artifact>> {
    let mut w = BlobWriter::new(blobs_dir, progress);
    let mut out: Vec<Artifact> = Vec::new();
    // The manifest entry each artifact came from, for messages.
    let mut entry_of: Vec<usize> = Vec::new();
    for (i, entry) in m.manifest.images.iter().enumerate() {
        for a in fetch_one(m, i, entry, &mut w, taken_refs)? {
            if let Some(prev) = out.iter().find(|p| p.name == a.name) {
                return Err(Error::input(
                    &m.path,
                    format!(
                        "images[{i}]: {} is also the name of {}; give one of them another `name:`",
                        a.name,
                        prev.source.as_deref().unwrap_or("another image")
                    ),
                ));
            }
            // `airlock push` drops an image's source registry: two images
            // whose names differ only there would overwrite each other.
            let target = crate::bundle::push_target(&a, &m.manifest.metadata.name, "");
            if let Some(j) = out.iter().position(|p| {
                p.manifest.digest != a.manifest.digest
                    && crate::bundle::push_target(p, &m.manifest.metadata.name, "") == target
            }) {
                let prev = &out[j];
                return Err(Error::input(
                    &m.path,
                    format!(
                        "images[{}] ({}, named {}) and images[{i}] ({}, named {}) would both be pushed to REGISTRY/{target}, \
                         since push drops the source registry from the name; give one of them another `name:`, \
                         for example `name: {}`",
                        entry_of[j],
                        prev.source.as_deref().unwrap_or("?"),
                        prev.name,
                        a.source.as_deref().unwrap_or("?"),
                        a.name,
                        suggest_name(&a.name, i)
                    ),
                ));
            }
            out.push(a);
            entry_of.push(i);
        }
    }
    Ok(out)
}

/// A distinct name to suggest for entry `i`: its repository with `-N` appended.
fn suggest_name(name: &str, i: usize) -> String {
    let base = name.split('@').next().unwrap_or(name);
    match base.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => format!("{repo}-{i}:{tag}"),
        _ => format!("{base}-{i}"),
    }
}

fn fetch_one(
    m: &LoadedManifest,
    i: usize,
    entry: &ImageEntry,
    w: &mut BlobWriter,
    taken_refs: &mut BTreeSet<String>,
) -> Result<Vec<Artifact>> {
    let src = ImageSource::parse(&entry.source)
        .map_err(|e| Error::input(&m.path, format!("images[{i}].source: {e}")))?;
    let need_name = |found: Option<String>, what: &str| -> Result<String> {
        entry.name.clone().or(found).ok_or_else(|| {
            Error::input(
                &m.path,
                format!("images[{i}]: {what}; set `name:` to the reference the image should have"),
            )
        })
    };
    match src {
        ImageSource::Layout { dir, reference } => {
            let dir: PathBuf = m.resolve(&dir);
            // What the layout reads beyond its directory: its index and blob
            // folder must not be links out of the root either.
            for inner in ["index.json", "blobs/sha256"] {
                let p = dir.join(inner);
                if p.exists() {
                    m.within_root(&format!("images[{i}].source ({inner})"), &p)?;
                }
            }
            let (top, ref_name) = image::resolve_layout(&dir, reference.as_deref())?;
            let name = need_name(ref_name, "the layout's image has no ref.name")?;
            let bundle_ref = image::bundle_ref(&name, taken_refs);
            let mut s = LayoutSource { dir };
            Ok(vec![image::collect(
                &mut s,
                w,
                Resolved { top, name },
                &entry.platforms,
                &entry.source,
                bundle_ref,
            )?])
        }
        ImageSource::Archive { file } => {
            let file = m.resolve(&file);
            let (top, tag) = image::convert_docker_archive(&file, entry.name.as_deref(), w)?;
            let name = need_name(tag, "the archive's image has no tag")?;
            let bundle_ref = image::bundle_ref(&name, taken_refs);
            let dir = w.dir.to_path_buf();
            let mut s = DirSource { dir: &dir };
            Ok(vec![image::collect(
                &mut s,
                w,
                Resolved { top, name },
                &entry.platforms,
                &entry.source,
                bundle_ref,
            )?])
        }
        ImageSource::Registry { reference } => {
            let mut reg = crate::registry::Registry::open(&reference, entry.insecure)?;
            let top = resolve_registry(&reg, &reference, &entry.source)?;
            // The name keeps the tag the builder asked for; an untagged pin
            // is known by its digest.
            let base = reference.split('@').next().expect("split yields one");
            let name = entry.name.clone().unwrap_or_else(|| {
                if reference.contains('@') && !has_tag(base) {
                    reference.clone()
                } else {
                    base.to_string()
                }
            });
            let bundle_ref = image::bundle_ref(&name, taken_refs);
            let resolved = top.digest;
            let main = image::collect(
                &mut reg,
                w,
                Resolved {
                    top,
                    name: name.clone(),
                },
                &entry.platforms,
                &entry.source,
                bundle_ref,
            )?;
            // Signatures, attestations and SBOMs stored beside the image
            // under cosign's tags (`sha256-<hex>.sig`, `.att`, `.sbom`) and
            // OCI 1.1 referrers under the referrers tag schema's fallback tag
            // (`sha256-<hex>`, an index of the referrer manifests), for the
            // digest the reference resolved to and the one kept.
            let mut out = Vec::new();
            let repo = repository_of(&name);
            let mut digests = vec![resolved];
            if main.manifest.digest != resolved {
                digests.push(main.manifest.digest);
            }
            out.push(main);
            // A referrer, carried as its own image with no platform filter.
            let mut carry = |reg: &mut crate::registry::Registry,
                             name: String,
                             desc: image::Desc|
             -> Result<Artifact> {
                let bundle_ref = image::bundle_ref(&name, taken_refs);
                image::collect(
                    reg,
                    w,
                    Resolved { top: desc, name },
                    &[],
                    &entry.source,
                    bundle_ref,
                )
            };
            // Subjects whose fallback tag holds an image manifest rather than
            // an index: carried by the tag, and listed by nothing else.
            let mut image_at_fallback = BTreeSet::new();
            for &d in &digests {
                for suffix in ["sig", "att", "sbom", ""] {
                    let tag = match suffix {
                        "" => format!("sha256-{}", d.hex()),
                        s => format!("sha256-{}.{s}", d.hex()),
                    };
                    let Some((_, desc)) = reg.manifest(&reg.by_tag(&tag))? else {
                        continue;
                    };
                    if suffix.is_empty() && !image::is_index(&desc.media_type) {
                        image_at_fallback.insert(d);
                    }
                    out.push(carry(&mut reg, format!("{repo}:{tag}"), desc)?);
                }
            }
            // Referrers only the registry's referrers API lists: each its
            // own image, named `REPO@sha256:<hex of the referrer>`. One
            // already carried (a tag's manifest, or an entry of the
            // fallback index) is not carried again.
            let mut carried: BTreeSet<crate::digest::Sha256Digest> = BTreeSet::new();
            for a in &out {
                carried.insert(a.manifest.digest);
                carried.extend(a.blobs.iter().map(|b| b.digest));
            }
            for &d in &digests {
                let mut listed = reg.listed_referrers(&d, image_at_fallback.contains(&d))?;
                listed.sort();
                listed.dedup();
                for r in listed {
                    if !carried.insert(r) {
                        continue;
                    }
                    let desc = api_referrer(&reg, &r, &d)?;
                    out.push(carry(&mut reg, format!("{repo}@{}", r.oci()), desc)?);
                }
            }
            Ok(out)
        }
    }
}

/// The manifest `r` that the referrers API lists as a referrer of
/// `subject`: the registry must have it, and its `subject` must be
/// `subject` (a list naming anything else is refused, not carried).
fn api_referrer(
    reg: &crate::registry::Registry,
    r: &crate::digest::Sha256Digest,
    subject: &crate::digest::Sha256Digest,
) -> Result<image::Desc> {
    let at = format!("{}@{}", reg.repo, r.oci());
    let (bytes, desc) = reg.manifest(&reg.by_digest(r))?.ok_or_else(|| {
        crate::error::single(
            &at,
            format!(
                "the registry's referrers API lists this manifest as a referrer of {}, but the registry does not have it",
                subject.oci()
            ),
        )
    })?;
    let named = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("subject")?
                .get("digest")?
                .as_str()
                .map(str::to_string)
        });
    if desc.digest != *r {
        return Err(crate::error::single(
            &at,
            format!(
                "the registry's manifest hashes to {}: the registry contradicts the digest its referrers API lists",
                desc.digest.oci()
            ),
        ));
    }
    if named.as_deref() != Some(subject.oci().as_str()) {
        return Err(crate::error::single(
            &at,
            format!(
                "the registry's referrers API lists this manifest as a referrer of {}, but its subject is {}",
                subject.oci(),
                named.as_deref().unwrap_or("absent")
            ),
        ));
    }
    Ok(desc)
}

/// `HOST/REPO` of a reference: without its digest and tag.
fn repository_of(name: &str) -> &str {
    let base = name.split('@').next().unwrap_or(name);
    if has_tag(base) {
        base.rsplit_once(':').map(|(r, _)| r).unwrap_or(base)
    } else {
        base
    }
}

fn has_tag(repo: &str) -> bool {
    repo.rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

/// Resolves a registry reference to its manifest's digest: a tag to what it
/// names now; a pin to the manifest whose bytes hash to it. A pin the
/// registry does not have, or that the tag beside it contradicts, is refused.
fn resolve_registry(
    reg: &crate::registry::Registry,
    reference: &str,
    source: &str,
) -> Result<image::Desc> {
    let pin = reference
        .split_once('@')
        .and_then(|(_, d)| crate::digest::Sha256Digest::parse_oci(d));
    let base = reference.split('@').next().expect("split yields one");
    let r = reg.reference();
    let found = match pin {
        Some(pin) => {
            let by_digest = reg.by_digest(&pin);
            let (_, desc) = reg.manifest(&by_digest)?.ok_or_else(|| {
                crate::error::single(
                    source,
                    format!(
                        "the registry has no manifest {}; the pin names an image that is not there (check the digest)",
                        pin.oci()
                    ),
                )
            })?;
            if desc.digest != pin {
                return Err(crate::error::single(
                    source,
                    format!(
                        "the registry's manifest for {} hashes to {}: the registry contradicts the pin",
                        pin.oci(),
                        desc.digest.oci()
                    ),
                ));
            }
            if has_tag(base) {
                let tag = r.tag().unwrap_or("latest");
                let (_, now) = reg.manifest(&reg.by_tag(tag))?.ok_or_else(|| {
                    crate::error::single(source, format!("tag {tag:?} is not in the registry"))
                })?;
                if now.digest != pin {
                    return Err(crate::error::single(
                        source,
                        format!(
                            "tag {tag:?} now points at {}, not at the pinned {}: the pin is contradicted (update the pin or the tag)",
                            now.digest.oci(),
                            pin.oci()
                        ),
                    ));
                }
            }
            desc
        }
        None => {
            let tag = r.tag().unwrap_or("latest");
            let (_, desc) = reg.manifest(&reg.by_tag(tag))?.ok_or_else(|| {
                crate::error::single(
                    source,
                    format!("the registry has no tag {tag:?} in {}", reg.repo),
                )
            })?;
            desc
        }
    };
    Ok(found)
}

/// `images:` entries: fetched by `fetch_all` rather than planned, and
/// exported as an OCI layout (`images/`), not file by file.
pub struct Images;

impl super::kind::SourceKind for Images {
    fn kind(&self) -> crate::bundle::ArtifactKind {
        crate::bundle::ArtifactKind::Image
    }
    fn export_path(
        &self,
        _d: &crate::bundle::Description,
        _a: &crate::bundle::Artifact,
        _l: crate::bundle::LayerRef<'_>,
    ) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            ImageSource::parse("oci-layout:img:v1").unwrap(),
            ImageSource::Layout {
                dir: "img".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            ImageSource::parse("oci-layout:img").unwrap(),
            ImageSource::Layout {
                dir: "img".into(),
                reference: None
            }
        );
        assert!(ImageSource::parse("docker://127.0.0.1:5000/ml/infer:1.0").is_ok());
        assert!(ImageSource::parse("docker://h/r@sha256:abc").is_err());
        assert!(ImageSource::parse("docker://infer").is_err());
        assert!(ImageSource::parse("podman://x/y").is_err());
        assert!(has_tag("127.0.0.1:5000/ml/infer:1.0"));
        assert!(!has_tag("127.0.0.1:5000/ml/infer"));
        assert_eq!(
            repository_of("127.0.0.1:5000/ml/infer:1.0"),
            "127.0.0.1:5000/ml/infer"
        );
        assert_eq!(repository_of("h/r:t@sha256:ab"), "h/r");
        assert_eq!(repository_of("localhost:5000/r"), "localhost:5000/r");
    }
}
