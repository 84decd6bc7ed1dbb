//! `airlock push`: a bundle's images and artifacts from the store to an OCI
//! registry, digests unchanged. Images go to their own repository path below
//! the target prefix (`ml/infer:1.0` → `HOST/PREFIX/ml/infer:1.0`); models,
//! file sets and packages go to `HOST/PREFIX/<bundle>/<artifact ref>` tagged
//! with the bundle version. Blobs the registry already has are not sent
//! again (HEAD first), so a second push sends nothing and an interrupted one
//! resumes. Every blob is hashed as it is streamed from the store (a corrupt
//! one is never completed, and is exit 1); after each
//! manifest is pushed the registry is asked for it and must return the same
//! digest. Each push is recorded in the store's ledger.
//!
//! Then each pushed image, model, file set and package gets the bundle's
//! SBOMs, signatures and custody record as OCI 1.1 referrers (artifacts
//! whose `subject` is its manifest; see [`crate::referrers`]), listed by the
//! registry's referrers API or, on a registry without one, under the
//! referrers tag schema's fallback tag `sha256-<hex>`. Referrers carried
//! from the source's referrers API (images pushed by digest whose manifest
//! has a `subject`) are listed under their subject's fallback tag the same
//! way where the destination has no referrers API.

use serde::Serialize;

pub use crate::bundle::{push_collision as collision, push_target};
use crate::bundle::{push_target_of as target_of, PushTag as Tag};
use crate::bundle::{Artifact, ArtifactKind, Blob, Description, EMPTY_JSON, MT_INDEX, MT_MANIFEST};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::image::{is_index, is_manifest};
use crate::progress::Progress;
use crate::referrers::{self, Planned};
use crate::registry::Registry;
use crate::store::Store;

#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    pub name: String,
    pub version: String,
    pub registry: String,
    pub pushed: Vec<PushedRef>,
    /// The SBOMs, signatures and custody record pushed as OCI 1.1
    /// referrers of what was pushed.
    pub referrers: Vec<PushedReferrer>,
    /// The referrers tag schema's indexes (`REPO:sha256-<hex>`) that list
    /// them on a registry without the referrers API, and the digest each
    /// tag serves now.
    pub referrer_indexes: Vec<PushedRef>,
    pub blobs_sent: usize,
    pub blobs_present: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushedReferrer {
    /// What it describes: `HOST/REPO@sha256:...`.
    pub subject: String,
    /// The referrer's manifest: `HOST/REPO@sha256:...`.
    pub reference: String,
    pub digest: String,
    pub artifact_type: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushedRef {
    pub reference: String,
    pub digest: String,
}

/// Pushes bundle `spec` (`NAME[@VERSION]`) from `store` to `target`
/// (`HOST[/PREFIX]`).
pub fn push(
    store: &Store,
    spec: &str,
    target: &str,
    insecure: bool,
    progress: &dyn Progress,
) -> Result<Pushed> {
    let target = target.trim_end_matches('/');
    let (host, prefix) = match target.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (target, None),
    };
    if host.is_empty()
        || prefix
            .is_some_and(|p| !crate::sources::images::valid_reference(p) || p.contains([':', '@']))
    {
        return Err(Error::Usage(format!(
            "--registry {target:?}: expected HOST[:PORT][/PREFIX] such as registry.internal:5000/mirror"
        )));
    }
    let rec = store.find(spec)?;
    let d = store.description(&rec)?;
    // Two artifacts pushed to one reference: the second would overwrite the
    // first, and what push reports for the first would be false.
    if let Some((x, y, to)) = collision(&d.artifacts, &d.name, &d.version) {
        return Err(Error::Refused(format!(
            "{} and {} would both be pushed to {target}/{to}, the second overwriting the first; nothing was pushed. \
             Pack the bundle again with a distinct `name:` for one of the images",
            describe(x),
            describe(y)
        )));
    }
    // The referrers' content, read (and checked against the record's id)
    // before anything is pushed.
    let planned = referrers::plan(store, &rec, &d)?;
    let mut out = Pushed {
        name: rec.name.clone(),
        version: rec.version.clone(),
        registry: target.to_string(),
        pushed: Vec::new(),
        referrers: Vec::new(),
        referrer_indexes: Vec::new(),
        blobs_sent: 0,
        blobs_present: 0,
    };
    let total: u64 = d.total_size();
    progress.begin("pushing", total);
    let res = (|| -> Result<()> {
        let targets: Vec<(String, Tag)> = d
            .artifacts
            .iter()
            .map(|a| {
                let (repo, tag) = target_of(a, &d.name, &d.version);
                let repo = match prefix {
                    Some(p) => format!("{host}/{p}/{repo}"),
                    None => format!("{host}/{repo}"),
                };
                (repo, tag)
            })
            .collect();
        for (a, (repo, tag)) in d.artifacts.iter().zip(&targets) {
            // A referrers index carried from the source (tag `sha256-<hex>`)
            // is pushed by digest, and its entries merged into what that tag
            // lists at the destination: pushed under the tag it would drop
            // referrers others (or an earlier push) listed there.
            let carried_index = match tag {
                Tag::Tag(t)
                    if a.kind == ArtifactKind::Image
                        && referrers::is_fallback_tag(t)
                        && a.manifest.media_type == MT_INDEX =>
                {
                    Some(t.as_str())
                }
                _ => None,
            };
            let reference = match (tag, carried_index) {
                (Tag::Tag(t), None) => format!("{repo}:{t}"),
                _ => format!("{repo}@{}", a.manifest.digest.oci()),
            };
            let reg = Registry::open(&reference, insecure)?;
            let by = if carried_index.is_some() {
                &Tag::Digest
            } else {
                tag
            };
            push_artifact(store, &reg, a, by, &mut out, progress)?;
            if let Some(t) = carried_index {
                let bytes = read_checked(store, &a.manifest)?;
                let entries = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
                    .unwrap_or_default();
                list_under(
                    &reg,
                    repo,
                    t,
                    Some(&bytes),
                    &entries,
                    &a.manifest.digest,
                    &mut out,
                )?;
            }
            out.pushed.push(PushedRef {
                reference,
                digest: a.manifest.digest.oci(),
            });
        }
        // Images carried by digest that are referrers themselves (those
        // only the source's referrers API listed): listed under their
        // subject's fallback tag where the destination has no referrers API.
        for (a, (repo, tag)) in d.artifacts.iter().zip(&targets) {
            if a.kind != ArtifactKind::Image || !matches!(tag, Tag::Digest) {
                continue;
            }
            let bytes = read_checked(store, &a.manifest)?;
            let Some(subject) = subject_of(&bytes) else {
                continue;
            };
            let reg = Registry::open(&format!("{repo}@{}", a.manifest.digest.oci()), insecure)?;
            let fallback = referrers::fallback_tag(&subject);
            let listed = reg.referrers(&subject).unwrap_or_default();
            if listed.contains(&a.manifest.digest)
                && reg.manifest(&reg.by_tag(&fallback))?.is_none()
            {
                continue;
            }
            let mut entry = referrers::index_entry(&bytes);
            entry["mediaType"] = a.manifest.media_type.clone().into();
            list_under(&reg, repo, &fallback, None, &[entry], &subject, &mut out)?;
        }
        // Referrers, once what they describe is in place.
        let mut done = std::collections::BTreeSet::new();
        for (a, (repo, tag)) in d.artifacts.iter().zip(&targets) {
            let tag = match tag {
                Tag::Tag(t) => Some(t.as_str()),
                Tag::Digest => None,
            };
            if planned.is_empty()
                || !referrers::is_subject(a, tag)
                || !done.insert((repo.clone(), a.manifest.digest))
            {
                continue;
            }
            // A carried referrer (listed by the source's referrers API) is
            // not a subject, as those carried under tags are not.
            if a.kind == ArtifactKind::Image
                && tag.is_none()
                && subject_of(&read_checked(store, &a.manifest)?).is_some()
            {
                continue;
            }
            let reg = Registry::open(&format!("{repo}@{}", a.manifest.digest.oci()), insecure)?;
            attach(
                store,
                &reg,
                repo,
                &a.manifest,
                &planned,
                &d,
                &rec.id,
                &mut out,
            )?;
        }
        // Every reference reported must still resolve to the digest reported.
        for (p, a) in out.pushed.iter().zip(&d.artifacts) {
            let reg = Registry::open(&p.reference, insecure)?;
            confirm(&reg, reg.reference(), &a.manifest.digest)?;
        }
        for t in &out.referrer_indexes {
            let reg = Registry::open(&t.reference, insecure)?;
            let want = Sha256Digest::parse_oci(&t.digest).expect("made from a digest");
            confirm(&reg, reg.reference(), &want)?;
        }
        Ok(())
    })();
    progress.finish();
    let refs: Vec<String> = out
        .pushed
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p.reference.split('@').next().unwrap_or(""),
                p.digest
            )
        })
        .collect();
    match res {
        Ok(()) => {
            store.append_ledger(
                "push",
                Some(rec.id.clone()),
                Some((rec.name.clone(), rec.version.clone())),
                &format!(
                    "pushed {} {} to {}: {} ({} referrer(s); {} blob(s) sent, {} already there)",
                    rec.name,
                    rec.version,
                    target,
                    refs.join(", "),
                    out.referrers.len(),
                    out.blobs_sent,
                    out.blobs_present
                ),
            )?;
            Ok(out)
        }
        Err(e) => {
            store.append_ledger(
                "push-failed",
                Some(rec.id.clone()),
                Some((rec.name.clone(), rec.version.clone())),
                &format!(
                    "push of {} {} to {} failed after {} artifact(s) ({} blob(s) sent): {e}",
                    rec.name,
                    rec.version,
                    target,
                    out.pushed.len(),
                    out.blobs_sent
                ),
            )?;
            Err(e)
        }
    }
}

/// `image test/app:v1 (from docker-archive:app.tar)`, `artifact models/minilm`.
fn describe(a: &Artifact) -> String {
    match (&a.kind, &a.source) {
        (ArtifactKind::Image, Some(s)) => format!("image {} (from {s})", a.name),
        (ArtifactKind::Image, None) => format!("image {}", a.name),
        _ => format!("artifact {}", a.reference),
    }
}

fn push_artifact(
    store: &Store,
    reg: &Registry,
    a: &Artifact,
    tag: &Tag,
    out: &mut Pushed,
    progress: &dyn Progress,
) -> Result<()> {
    // Blobs first, then child manifests (deepest first), then the top.
    let mut plain: Vec<&Blob> = Vec::new();
    let mut manifests: Vec<&Blob> = Vec::new();
    let all: Vec<&Blob> = if a.kind == ArtifactKind::Image {
        a.blobs.iter().collect()
    } else {
        vec![&a.config]
    };
    for b in all {
        if is_manifest(&b.media_type) || is_index(&b.media_type) {
            manifests.push(b);
        } else {
            plain.push(b);
        }
    }
    let layer_blobs: Vec<Blob> = a
        .layers
        .iter()
        .map(|l| Blob {
            media_type: l.media_type.to_string(),
            digest: *l.digest,
            size: l.size,
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for b in plain.into_iter().chain(layer_blobs.iter()) {
        if !seen.insert(b.digest) {
            continue;
        }
        if reg.has_blob(&b.digest)? {
            out.blobs_present += 1;
            progress.advance(b.size);
            continue;
        }
        let open = || {
            store
                .open_blob(&b.digest)
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        reg.push_blob(&open, &store.locate_blob(&b.digest), &b.digest, b.size)?;
        out.blobs_sent += 1;
        progress.advance(b.size);
    }
    for m in manifests.into_iter().rev() {
        let bytes = read_checked(store, m)?;
        let r = reg.by_digest(&m.digest);
        reg.push_manifest(&r, &bytes, &m.media_type)?;
        confirm(reg, &r, &m.digest)?;
    }
    let bytes = read_checked(store, &a.manifest)?;
    let r = match tag {
        Tag::Tag(t) => reg.by_tag(t),
        Tag::Digest => reg.by_digest(&a.manifest.digest),
    };
    reg.push_manifest(&r, &bytes, &a.manifest.media_type)?;
    confirm(reg, &r, &a.manifest.digest)
}

/// Pushes the referrers `planned` of `subject` (in `repo`, `HOST/REPO`) and
/// makes them discoverable: by the registry's referrers API where it lists
/// them, else under the referrers tag schema's fallback tag, merged into
/// the index already there.
#[allow(clippy::too_many_arguments)]
fn attach(
    store: &Store,
    reg: &Registry,
    repo: &str,
    subject: &Blob,
    planned: &[Planned],
    d: &Description,
    id: &str,
    out: &mut Pushed,
) -> Result<()> {
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for p in planned {
        for l in &p.layers {
            let sent = match &l.bytes {
                Some(bytes) => reg.push_bytes(bytes, &l.title)?,
                None if reg.has_blob(&l.digest)? => false,
                None => {
                    let open = || {
                        store
                            .open_blob(&l.digest)
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    };
                    reg.push_blob(&open, &store.locate_blob(&l.digest), &l.digest, l.size)?;
                    true
                }
            };
            count(out, sent);
        }
        let sent = reg.push_bytes(EMPTY_JSON, "the OCI empty config")?;
        count(out, sent);
        let bytes = referrers::manifest(p, subject, d, id);
        let digest = Sha256Digest::of(&bytes);
        let r = reg.by_digest(&digest);
        reg.push_manifest(&r, &bytes, MT_MANIFEST)?;
        confirm(reg, &r, &digest)?;
        entries.push(referrers::index_entry(&bytes));
        digests.push(digest);
        out.referrers.push(PushedReferrer {
            subject: format!("{repo}@{}", subject.digest.oci()),
            reference: format!("{repo}@{}", digest.oci()),
            digest: digest.oci(),
            artifact_type: p.artifact_type.clone(),
        });
    }
    let tag = referrers::fallback_tag(&subject.digest);
    let listed = reg.referrers(&subject.digest).unwrap_or_default();
    if reg.manifest(&reg.by_tag(&tag))?.is_none() && digests.iter().all(|x| listed.contains(x)) {
        // The registry's referrers API lists them.
        return Ok(());
    }
    list_under(reg, repo, &tag, None, &entries, &subject.digest, out)
}

/// Lists `entries` under the referrers tag schema's fallback tag `tag` of
/// `repo`: merged into the index the tag serves (every entry kept, none
/// twice; written only if something was added), or, where the tag serves
/// nothing, `whole` as it is when given (a carried index, byte for byte).
fn list_under(
    reg: &Registry,
    repo: &str,
    tag: &str,
    whole: Option<&[u8]>,
    entries: &[serde_json::Value],
    subject: &Sha256Digest,
    out: &mut Pushed,
) -> Result<()> {
    let tr = reg.by_tag(tag);
    let existing = reg.manifest(&tr)?;
    let write = match (&existing, whole) {
        (None, Some(bytes)) => Some(bytes.to_vec()),
        _ => referrers::merged_index(existing.as_ref().map(|(b, _)| b.as_slice()), entries)
            .map_err(|why| {
                Error::Usage(format!(
                    "{}: {why}; the referrers of {} cannot be listed there. Remove or move that tag, then push again",
                    tr.whole(),
                    subject.oci()
                ))
            })?,
    };
    let served = match (write, existing) {
        (Some(bytes), _) => {
            reg.push_manifest(&tr, &bytes, MT_INDEX)?;
            let digest = Sha256Digest::of(&bytes);
            confirm(reg, &tr, &digest)?;
            digest
        }
        (None, Some((_, d))) => d.digest,
        (None, None) => unreachable!("nothing under the tag: an index is written"),
    };
    let reference = format!("{repo}:{tag}");
    out.referrer_indexes.retain(|t| t.reference != reference);
    out.referrer_indexes.push(PushedRef {
        reference,
        digest: served.oci(),
    });
    Ok(())
}

/// The digest a manifest's `subject` names, if it has one.
fn subject_of(bytes: &[u8]) -> Option<Sha256Digest> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Sha256Digest::parse_oci(v.get("subject")?.get("digest")?.as_str()?)
}

fn count(out: &mut Pushed, sent: bool) {
    if sent {
        out.blobs_sent += 1;
    } else {
        out.blobs_present += 1;
    }
}

/// Asks the registry for what it now serves under `r`: it must be `digest`.
fn confirm(reg: &Registry, r: &oci_client::Reference, digest: &Sha256Digest) -> Result<()> {
    match reg.manifest(r)? {
        Some((_, d)) if d.digest == *digest => Ok(()),
        Some((_, d)) => Err(crate::error::single(
            r.whole(),
            format!(
                "after the push the registry serves {} instead of {}: it changed the manifest",
                d.digest.oci(),
                digest.oci()
            ),
        )),
        None => Err(Error::Usage(format!(
            "{}: the registry accepted the manifest but does not serve it",
            r.whole()
        ))),
    }
}

fn read_checked(store: &Store, b: &Blob) -> Result<Vec<u8>> {
    if b.size > crate::bundle::MAX_JSON_BLOB {
        return Err(crate::error::single(
            store.locate_blob(&b.digest),
            "manifest larger than airlock accepts",
        ));
    }
    store.read_blob_checked(&b.digest, b.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> Artifact {
        let b = Blob {
            media_type: crate::bundle::MT_MANIFEST.into(),
            digest: Sha256Digest::of(b""),
            size: 0,
        };
        Artifact {
            kind: ArtifactKind::Image,
            name: name.into(),
            reference: "images/x".into(),
            artifact_type: crate::bundle::MT_MANIFEST.into(),
            manifest: b.clone(),
            config: b,
            layers: Default::default(),
            packages: vec![],
            source: None,
            blobs: vec![],
        }
    }

    #[test]
    fn targets() {
        let (r, t) = target_of(&image("127.0.0.1:5000/ml/infer:1.0"), "b", "1.0.0");
        assert_eq!(r, "ml/infer");
        assert!(matches!(t, Tag::Tag(ref x) if x == "1.0"));
        let (r, t) = target_of(&image("busybox:latest"), "b", "1.0.0");
        assert_eq!(r, "busybox");
        assert!(matches!(t, Tag::Tag(_)));
        let (r, t) = target_of(
            &image(&format!("reg.example/a/b@{}", Sha256Digest::of(b"").oci())),
            "b",
            "1.0.0",
        );
        assert_eq!(r, "a/b");
        assert!(matches!(t, Tag::Digest));
    }

    #[test]
    fn collisions_ignore_the_source_registry_and_identical_content() {
        let mut a = image("127.0.0.1:5000/test/app:v1");
        let mut b = image("test/app:v1");
        let same = [a.clone(), b.clone()];
        assert!(
            collision(&same, "x", "1.0.0").is_none(),
            "same manifest: harmless"
        );
        b.manifest.digest = Sha256Digest::of(b"other");
        let both = [a.clone(), b.clone()];
        let (x, y, t) = collision(&both, "x", "1.0.0").unwrap();
        assert_eq!(
            (x.name.as_str(), y.name.as_str(), t.as_str()),
            ("127.0.0.1:5000/test/app:v1", "test/app:v1", "test/app:v1")
        );
        a.name = "test/app-1:v1".into();
        assert!(collision(&[a, b], "x", "1.0.0").is_none());
    }
}
