//! Verification of a bundle against a trust policy, in every transport form.
//!
//! Order: tag files (tag manifest, description, payload manifest), then
//! signatures and custody against the policy, then the payload: every file's
//! size against what the signed manifests declare, then its digest, then the
//! OCI layout's structure. Every problem found is reported; nothing is
//! followed or executed. Directory bundles are hashed in parallel; tar
//! bundles are streamed once, never extracted to a temporary copy (a plain
//! tar's large entries are hashed in parallel where they lie: `placed`).

mod placed;
mod split;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use rayon::prelude::*;
use sha2::{Digest as _, Sha512};

use crate::bundle::*;
use crate::custody::{check_chain, EventView};
use crate::digest::{copy_hashed, Hashed, Sha256Digest, Tee};
use crate::error::{Report, Result};
use crate::keys::PublicKey;
use crate::policy::{KeyStanding, Signers, TrustPolicy};
use crate::progress::Progress;
use crate::source::{Flow, Form, Item, TagSet};

/// What verifying the tag files established.
#[derive(Debug, Clone)]
pub struct TagCheck {
    pub id: Sha256Digest,
    pub description: Option<Description>,
    /// Payload path → (digest, size bound, keep bytes for structure checks).
    pub plan: Option<Plan>,
    pub signers: Signers,
    pub custody: Vec<EventView>,
    pub report: Report,
    pub tags: TagSet,
    /// A delta's declared blobs that it does not carry: digest → (media type, size).
    pub omitted: BTreeMap<Sha256Digest, (String, u64)>,
}

/// Which of a plan's blobs a tar walk has met (`Plan::marks`).
struct PlanMarks<'p> {
    blobs: &'p [Sha256Digest],
    met: Vec<bool>,
    /// The position after the last blob met: a tar pack wrote holds its
    /// blobs in digest order, so the next one met is tried there first.
    next: usize,
}

impl crate::source::Marks for PlanMarks<'_> {
    fn mark(&mut self, digest: &Sha256Digest) -> Option<bool> {
        let i = match self.blobs.get(self.next) {
            Some(e) if e == digest => self.next,
            _ => self.blobs.binary_search(digest).ok()?,
        };
        self.next = i + 1;
        Some(!std::mem::replace(&mut self.met[i], true))
    }
}

/// What each payload file must be, by path: the two OCI layout files by
/// name, every blob by digest (its path is `blob_path` of it) in sorted
/// parallel Vecs of fixed-size records, since a bundle of many files has an
/// entry per file: the digests are the payload manifest's own Vec, taken
/// over (`make_plan`), so a blob costs 16 bytes beside them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `data/index.json` and `data/oci-layout`, when listed.
    layout: BTreeMap<String, Expected>,
    /// Blobs' digests, sorted (so in the order of their paths).
    digests: Vec<Sha256Digest>,
    /// What each of `digests` must be, by position.
    blobs: Vec<Planned>,
}

/// A planned blob's [`Expected`] without its digest.
#[derive(Debug, Clone, Copy)]
struct Planned {
    size: u64,
    exact: bool,
    keep: bool,
    sha512: bool,
    fold: bool,
}

impl Planned {
    fn expected(self, digest: Sha256Digest) -> Expected {
        Expected {
            digest,
            size: self.size,
            exact: self.exact,
            keep: self.keep,
            sha512: self.sha512,
            fold: self.fold,
        }
    }
}

impl Plan {
    pub fn get(&self, path: &str) -> Option<Expected> {
        self.position(path).map(|(_, e)| e)
    }

    /// Every planned blob's digest, sorted.
    pub(crate) fn blob_digests(&self) -> &[Sha256Digest] {
        &self.digests
    }

    /// Blob `i`'s entry.
    fn blob(&self, i: usize) -> Expected {
        self.blobs[i].expected(self.digests[i])
    }

    /// The entry of `path` and its position in `iter`'s order.
    pub fn position(&self, path: &str) -> Option<(usize, Expected)> {
        match path.strip_prefix(BLOBS_PREFIX) {
            // Only a digest's own (lowercase) spelling is ever in the plan.
            Some(hex) => {
                let d: Sha256Digest = hex.parse().ok()?;
                let i = self.digests.binary_search(&d).ok()?;
                Some((i, self.blob(i)))
            }
            None => self
                .layout
                .iter()
                .position(|(p, _)| p == path)
                .map(|i| (self.digests.len() + i, self.layout[path])),
        }
    }

    /// `position` of a payload file found in a directory bundle: a blob
    /// at its plain path by its digest, without spelling and parsing it.
    pub(crate) fn position_of(&self, p: &crate::source::DirPayload) -> Option<(usize, Expected)> {
        match p {
            crate::source::DirPayload::Blob(d, _) => {
                let i = self.digests.binary_search(d).ok()?;
                Some((i, self.blob(i)))
            }
            other => self.position(&other.path()),
        }
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub fn len(&self) -> usize {
        self.layout.len() + self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry in path order.
    pub fn iter(&self) -> impl Iterator<Item = (String, Expected)> + '_ {
        (0..self.digests.len())
            .map(|i| (blob_path(&self.digests[i]), self.blob(i)))
            .chain(self.layout.iter().map(|(p, e)| (p.clone(), *e)))
    }

    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.iter().map(|(p, _)| p)
    }

    /// Adds the entry of `path` (blob paths in ascending order).
    #[cfg(test)]
    fn insert(&mut self, path: &str, e: Expected) {
        if path.starts_with(BLOBS_PREFIX) {
            assert!(path == blob_path(&e.digest));
            assert!(self.digests.last().is_none_or(|l| *l < e.digest));
            self.digests.push(e.digest);
            self.blobs.push(Planned {
                size: e.size,
                exact: e.exact,
                keep: e.keep,
                sha512: e.sha512,
                fold: e.fold,
            });
        } else {
            self.layout.insert(path.to_string(), e);
        }
    }

    /// The plan's blobs as a tar walk's [`crate::source::Marks`]: a flag
    /// per blob, so the walk holds no name of its own for them.
    fn marks(&self) -> PlanMarks<'_> {
        PlanMarks {
            blobs: &self.digests,
            met: vec![false; self.digests.len()],
            next: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub digest: Sha256Digest,
    /// Exact size when declared, else an upper bound.
    pub size: u64,
    pub exact: bool,
    pub keep: bool,
    /// Whether its sha512 is computed as it is hashed (npm tarballs).
    pub sha512: bool,
    /// An OCI manifest of an artifact that is not an image (a file set's
    /// has a layer per file): parsed as it is hashed, its layers folded
    /// (`ImageManifest`), its bytes not kept. Set only where `keep` would be.
    pub fold: bool,
}

/// What the payload pass keeps for the structure and pin checks.
#[derive(Default)]
pub(crate) struct Kept {
    /// Payload path → bytes: manifests, indexes, pin files (each at most
    /// `MAX_JSON_BLOB`).
    pub bytes: HashMap<String, Vec<u8>>,
    /// Blob → sha512, for the layers a kind re-checks by sha512; their
    /// bytes are not kept.
    pub sha512: HashMap<Sha256Digest, [u8; 64]>,
    /// Blob → its parse as an OCI manifest, for `Expected::fold` blobs:
    /// the layers folded, the bytes not kept.
    pub manifests: HashMap<Sha256Digest, std::result::Result<ImageManifest, String>>,
}

impl Kept {
    /// Keeps what `take_payload` took of a verified payload file.
    pub(crate) fn add(&mut self, path: &str, exp: &Expected, taken: Taken) {
        if let Some(b) = taken.bytes {
            self.bytes.insert(path.to_string(), b);
        }
        if let Some(s) = taken.sha512 {
            self.sha512.insert(exp.digest, s);
        }
        if let Some(m) = taken.manifest {
            self.manifests.insert(exp.digest, m);
        }
    }

    /// Keeps the whole bytes of a verified payload file (a blob joined
    /// from the parts of several volumes): as bytes, or parsed when folded.
    pub(crate) fn add_bytes(&mut self, path: &str, exp: &Expected, bytes: Vec<u8>) {
        if exp.fold {
            let m = serde_json::from_slice(&bytes).map_err(|e| e.to_string());
            self.manifests.insert(exp.digest, m);
        } else {
            self.bytes.insert(path.to_string(), bytes);
        }
    }
}

/// What `take_payload` took of one payload file besides its digest.
#[derive(Default)]
pub(crate) struct Taken {
    /// Its bytes, when `Expected::keep`.
    pub bytes: Option<Vec<u8>>,
    /// Its sha512, when `Expected::sha512`.
    pub sha512: Option<[u8; 64]>,
    /// Its parse as an OCI manifest, when `Expected::fold`.
    pub manifest: Option<std::result::Result<ImageManifest, String>>,
}

impl Taken {
    /// Whether nothing was taken (`Kept::add` would keep nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_none() && self.sha512.is_none() && self.manifest.is_none()
    }
}

/// An OCI manifest written aside to an anonymous temporary file as it is
/// hashed, then parsed from there with its layers folded as they pass
/// (`ImageManifest`): its bytes are never held whole. Only a manifest that
/// does not parse and is at most `MAX_JSON_BLOB` is read back whole, so
/// that its finding names the same line and column as a parse of its bytes;
/// a larger one gets the streamed parse's finding.
pub(crate) struct ManifestFold(io::BufWriter<std::fs::File>);

impl ManifestFold {
    /// In `dir` (import's private staging directory), else in the system's
    /// temporary directory.
    pub(crate) fn start(dir: Option<&Path>) -> io::Result<ManifestFold> {
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        Ok(ManifestFold(io::BufWriter::with_capacity(256 << 10, file)))
    }

    /// The parse of every byte written.
    pub(crate) fn finish(self) -> io::Result<std::result::Result<ImageManifest, String>> {
        use io::Seek as _;
        let mut file = self.0.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let streamed = serde_json::from_reader::<_, ImageManifest>(io::BufReader::with_capacity(
            256 << 10,
            &mut file,
        ));
        Ok(match streamed {
            Ok(m) => Ok(m),
            // Too large to read whole: the streamed parse's finding.
            Err(e) if file.metadata()?.len() > MAX_JSON_BLOB => Err(e.to_string()),
            Err(e) => {
                file.rewind()?;
                let mut bytes = Vec::new();
                file.take(MAX_JSON_BLOB).read_to_end(&mut bytes)?;
                match serde_json::from_slice::<ImageManifest>(&bytes) {
                    Err(exact) => Err(exact.to_string()),
                    Ok(_) => Err(e.to_string()),
                }
            }
        })
    }
}

impl io::Write for ManifestFold {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A fully verified bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    pub id: Sha256Digest,
    pub description: Description,
    pub signers: Signers,
    pub custody: Vec<EventView>,
    pub tags: TagSet,
    /// A delta's blobs provided by the base, and how far they were checked.
    pub base: BaseCheck,
}

/// What became of the blobs a delta leaves out.
#[derive(Debug, Clone, Default)]
pub struct BaseCheck {
    /// Digest → size of every blob the delta leaves out.
    pub omitted: BTreeMap<Sha256Digest, u64>,
    /// Checked against this store (present, content and structure checks
    /// run on its copies); `None`: not checked at all.
    pub store: Option<PathBuf>,
    /// Re-hashed from the store (`--recheck`).
    pub rehashed: bool,
    /// The OCI structure and the pins were checked (false when a delta
    /// verified without a store leaves out a manifest or pin file).
    pub structure: bool,
}

/// The store a delta's omitted blobs are read from.
pub struct Base<'a> {
    pub store: &'a crate::store::Store,
    /// Re-hash every omitted blob, not only those read for content checks.
    pub recheck: bool,
}

/// Where verified blobs are written during import.
pub struct Staging<'a> {
    pub dir: &'a Path,
    /// Blobs the store already holds: hashed, not written again.
    pub have: &'a HashSet<Sha256Digest>,
}

/// Reads the tag files of any form (for a tar: only the entries before the
/// payload; for volumes: the lowest-numbered volume's), with the additions
/// beside a bundle file, through the one reader (`source`).
pub use crate::source::read_tags;

/// Checks tag files, signatures, custody and policy.
/// What import reads of a bundle before it writes anything: the tag files,
/// checked, and for a directory its listing, so that the full verification
/// that follows neither walks the directory nor checks the tags again.
pub struct Precheck {
    pub check: TagCheck,
    /// A directory bundle's payload files, as `walk_dir` listed them.
    listing: Option<Vec<crate::source::DirPayload>>,
}

/// Reads and checks `form`'s tag files (`check_tags`); a directory is
/// walked once, its listing kept for `verify_with_base`.
pub fn precheck(form: &Form, policy: &TrustPolicy, now: i64) -> crate::error::Result<Precheck> {
    Ok(match form {
        Form::Dir(dir) => {
            let (check, listing) = check_dir(dir, policy, now)?;
            Precheck {
                check,
                listing: Some(listing),
            }
        }
        _ => Precheck {
            check: check_tags(crate::source::read_tags_spilling(form)?, policy, now),
            listing: None,
        },
    })
}

/// A payload manifest up to this size (about 110k files) is checked while
/// the directory is listed; past it, one after the other, so that the
/// listing's sorted names (about 48 bytes a file while it runs) and the
/// check's parse (the description's about 125) are not held at once.
const LIST_BESIDE_CHECK_MAX: u64 = 16 << 20;

/// A directory bundle's tag files read and checked (`check_tags`) while its
/// payload files are listed on another thread (one after the other for
/// very many files, `LIST_BESIDE_CHECK_MAX`); the listing's findings join
/// the check's.
fn check_dir(
    dir: &Path,
    policy: &TrustPolicy,
    now: i64,
) -> crate::error::Result<(TagCheck, Vec<crate::source::DirPayload>)> {
    let mut tags = TagSet::spilling();
    crate::source::walk_dir_heads(dir, &mut tags)?;
    let manifest = tags.files.get(MANIFEST).map(|b| b.len() as u64);
    let manifest = manifest.or(tags.spilled.get(MANIFEST).map(|s| s.len));
    let (mut check, listed) = if manifest.unwrap_or(0) > LIST_BESIDE_CHECK_MAX {
        let listed = crate::source::walk_dir_payload(dir);
        (check_tags(tags, policy, now), listed)
    } else {
        std::thread::scope(|s| {
            let listing = s.spawn(|| crate::source::walk_dir_payload(dir));
            let check = check_tags(tags, policy, now);
            let listed = listing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (check, listed)
        })
    };
    let (mut listing, found) = listed?;
    check.report.merge(found);
    // Grown by doubling: up to half of it slack, held through the checks.
    listing.shrink_to_fit();
    Ok((check, listing))
}

pub fn check_tags(mut tags: TagSet, policy: &TrustPolicy, now: i64) -> TagCheck {
    let mut report = std::mem::take(&mut tags.report);
    let empty = Vec::new();
    let tagmanifest = tags.files.get(TAGMANIFEST).unwrap_or(&empty).clone();
    let id = Sha256Digest::of(&tagmanifest);
    if !tags.files.contains_key(TAGMANIFEST) {
        report.add(
            TAGMANIFEST,
            "missing; this is not an airlock bundle or it is incomplete",
        );
    }
    match parse_manifest(&String::from_utf8_lossy(&tagmanifest)) {
        Err(e) => report.add(TAGMANIFEST, e),
        Ok(listed) => {
            for name in TAG_FILES {
                // A spilled tag file was hashed as it was set aside.
                let has = tags
                    .files
                    .get(name)
                    .map(|b| Sha256Digest::of(b))
                    .or_else(|| tags.spilled.get(name).map(|s| s.digest));
                match (listed.get(name), has) {
                    (None, _) => report.add(TAGMANIFEST, format!("does not list {name}")),
                    (Some(_), None) => report.add(name, "missing"),
                    (Some(d), Some(actual)) => {
                        if actual != *d {
                            report.add(name, format!("sha256 mismatch: tagmanifest-sha256.txt says {d}, file has {actual}"));
                        }
                    }
                }
            }
            for name in listed.keys() {
                if !TAG_FILES.contains(&name.as_str()) {
                    report.add(TAGMANIFEST, format!("lists unexpected file {name}"));
                }
            }
        }
    }
    if tags
        .files
        .get(BAGIT_TXT)
        .is_some_and(|b| b != BAGIT_CONTENT.as_bytes())
    {
        report.add(BAGIT_TXT, "not the BagIt 1.0 declaration airlock writes");
    }

    // The payload manifest is read into compact records, then the two tag
    // files that grow with the file count leave memory: the description is
    // parsed from its spilled copy, never beside its bytes.
    let manifest = match (tags.files.get(MANIFEST), tags.spilled.get(MANIFEST)) {
        (Some(b), _) => Some(PayloadList::parse(&b[..])),
        (None, Some(s)) => Some(
            s.reader()
                .map_err(|e| format!("cannot be read back: {e}"))
                .and_then(PayloadList::parse),
        ),
        (None, None) => None,
    };
    tags.spill(MANIFEST);
    tags.spill(DESCRIPTION);
    let description = match parse_description(&tags) {
        Some(Ok(d)) => {
            check_description(&d, &mut report);
            Some(d)
        }
        Some(Err(e)) => {
            report.add(DESCRIPTION, format!("not a valid bundle description: {e}"));
            None
        }
        None => None,
    };
    let manifest = match manifest {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            report.add(MANIFEST, e);
            None
        }
        None => None,
    };
    let omitted = match (&description, &manifest) {
        (Some(d), Some(m)) => d.omitted(m),
        _ => BTreeMap::new(),
    };
    let plan = match (&description, manifest) {
        (Some(d), Some(m)) => Some(make_plan(d, m, &mut report)),
        _ => None,
    };
    if let Some(delta) = description.as_ref().and_then(|d| d.delta.as_ref()) {
        let size: u64 = omitted.values().map(|x| x.1).sum();
        if (delta.omitted, delta.omitted_size) != (omitted.len(), size) {
            report.add(
                DESCRIPTION,
                format!(
                    "delta states {} blob(s) of {} bytes provided by the base, but manifest-sha256.txt leaves out {} of {size} bytes",
                    delta.omitted, delta.omitted_size, omitted.len()
                ),
            );
        }
    }

    // Signatures.
    let mut valid: Vec<PublicKey> = Vec::new();
    for (path, bytes) in &tags.signatures {
        let file = path.trim_start_matches("signatures/");
        if let Some(key_id) = file.strip_suffix(".dsse.json") {
            let ssh = tags
                .signatures
                .get(&crate::signing::sshsig_path(key_id))
                .map(Vec::as_slice);
            match crate::signing::check(key_id, bytes, ssh, &tagmanifest) {
                Ok(key) => valid.push(key),
                Err(e) => report.add(path, e),
            }
        } else if let Some(key_id) = file.strip_suffix(".sshsig") {
            if !tags
                .signatures
                .contains_key(&crate::signing::dsse_path(key_id))
            {
                report.add(path, "OpenSSH signature without its DSSE envelope");
            }
        } else {
            report.add(path, "unexpected file in signatures/");
        }
    }
    let (sig_report, signers) = policy.check_signers(&valid, now);
    report.merge(sig_report);
    if let Some(d) = &description {
        if !policy.allows_bundle(&d.name) {
            report.add(
                DESCRIPTION,
                format!(
                    "bundle name {:?} is not among the names the trust policy allows",
                    d.name
                ),
            );
        }
    }

    // Custody.
    let (custody, chain_report) = check_chain(&tags.custody, &id);
    report.merge(chain_report);
    for req in &policy.custody {
        let met = custody.iter().any(|v| {
            v.signature_ok
                && v.link_ok
                && v.record.as_ref().is_some_and(|r| r.event == req.event)
                && v.key.as_ref().is_some_and(|k| matches!(policy.standing(k, now), KeyStanding::Trusted(t) if t.roles.contains(&req.role)))
        });
        if !met {
            report.add(
                format!("policy custody ({})", req.event),
                format!("requires a {:?} custody event signed by a trusted key with role {:?}; none found", req.event, req.role),
            );
        }
    }

    TagCheck {
        id,
        description,
        plan,
        signers,
        custody,
        report,
        tags,
        omitted,
    }
}

/// The description, parsed from its bytes or from its spilled copy (with
/// the message a parse of its bytes gives when it does not parse).
fn parse_description(tags: &TagSet) -> Option<std::result::Result<Description, String>> {
    if let Some(b) = tags.files.get(DESCRIPTION) {
        return Some(serde_json::from_slice(b).map_err(|e| e.to_string()));
    }
    let s = tags.spilled.get(DESCRIPTION)?;
    let streamed = s
        .reader()
        .map_err(|e| format!("cannot be read back: {e}"))
        .and_then(|r| serde_json::from_reader::<_, Description>(r).map_err(|e| e.to_string()));
    Some(match streamed {
        Ok(mut d) => {
            // Vectors grown by doubling: their slack is up to half.
            for a in &mut d.artifacts {
                a.layers.shrink_to_fit();
            }
            Ok(d)
        }
        // Only a description that does not parse is read back whole.
        Err(e) => match s.bytes().map(|b| serde_json::from_slice::<Description>(&b)) {
            Ok(Err(exact)) => Err(exact.to_string()),
            _ => Err(e),
        },
    })
}

fn check_description(d: &Description, report: &mut Report) {
    if d.api_version != "airlock/v1" || d.kind != DESCRIPTION_KIND {
        report.add(DESCRIPTION, "not an airlock/v1 BundleDescription");
    }
    if !crate::manifest::valid_name(&d.name) {
        report.add(
            DESCRIPTION,
            format!("bundle name {:?} is not valid", d.name),
        );
    }
    if semver::Version::parse(&d.version).is_err() {
        report.add(
            DESCRIPTION,
            format!("bundle version {:?} is not a semantic version", d.version),
        );
    }
    let mut refs = BTreeSet::new();
    for a in &d.artifacts {
        if !refs.insert(&a.reference) || !safe_relative(&a.reference) {
            report.add(
                DESCRIPTION,
                format!(
                    "artifact reference {:?} is duplicated or unsafe",
                    a.reference
                ),
            );
        }
        // Each unsafe path, and each later use of a safe path, in layer
        // order: found by sorting the layers' positions by path (4 bytes a
        // layer, one allocation) rather than in a set of every path (a file
        // set has a layer per file: about 40 bytes each, 8 MB at 200k,
        // held while the description and the payload's listing are).
        let safe = |i: u32| safe_relative(a.layers.at(i as usize).path);
        let path = |i: u32| a.layers.at(i as usize).path;
        let mut order: Vec<u32> = (0..a.layers.len() as u32).filter(|&i| safe(i)).collect();
        order.sort_unstable_by(|&i, &j| path(i).cmp(path(j)).then(i.cmp(&j)));
        let mut flagged: Vec<u32> = order
            .windows(2)
            .filter(|w| path(w[0]) == path(w[1]))
            .map(|w| w[1])
            .collect();
        drop(order);
        flagged.extend((0..a.layers.len() as u32).filter(|&i| !safe(i)));
        flagged.sort_unstable();
        for i in flagged {
            let problem = if safe(i) {
                format!("artifact {}: file path {:?} appears twice", a.name, path(i))
            } else {
                format!("artifact {}: unsafe file path {:?}", a.name, path(i))
            };
            report.add(DESCRIPTION, problem);
        }
        if a.kind != ArtifactKind::Image && (!a.blobs.is_empty() || a.source.is_some()) {
            report.add(
                DESCRIPTION,
                format!(
                    "artifact {}: only images declare extra blobs or a source",
                    a.name
                ),
            );
        }
        if a.kind == ArtifactKind::Image && !crate::sources::images::valid_reference(&a.name) {
            report.add(
                DESCRIPTION,
                format!("image name {:?} is not an image reference", a.name),
            );
        }
        if a.kind == ArtifactKind::Model && !crate::manifest::valid_name(&a.name) {
            report.add(DESCRIPTION, format!("model name {:?} is not valid", a.name));
        }
    }
    // A model's export folder must be its artifact's name as the manifest spelled it.
    for m in &d.models {
        if let Some(folder) = &m.folder {
            let artifact = d.artifacts.iter().find(|a| a.reference == m.artifact);
            if !crate::manifest::valid_model_name(folder)
                || artifact.is_none_or(|a| {
                    a.kind != ArtifactKind::Model
                        || crate::manifest::model_artifact_name(folder) != a.name
                })
            {
                report.add(
                    DESCRIPTION,
                    format!(
                        "model {}: folder {folder:?} is not a valid model name that normalizes to the artifact's name",
                        m.artifact
                    ),
                );
            }
        }
    }
    // Hub origins become a cache folder on export: re-checked here.
    crate::sources::huggingface::check_origins(d, DESCRIPTION, report);
}

/// Cross-checks the payload manifest against the description and returns what
/// each payload file must be. The plan takes over the manifest's Vec of
/// blob names (a bundle of many files has one per file).
fn make_plan(d: &Description, m: PayloadList, report: &mut Report) -> Plan {
    use std::ops::Bound;
    let mut plan = Plan::default();
    // Requirements files, Cargo.lock and .cargo-checksum.json: read for the
    // pin re-check; model signatures (model.sig): for their re-check.
    let mut pin_blobs = crate::sources::packages::pin_blobs(d);
    pin_blobs.extend(crate::modelsig::signature_blobs(d));
    // npm tarballs: their sha512 computed as they are hashed.
    let sha512_blobs = crate::sources::packages::sha512_blobs(d);
    let folds = fold_blobs(d, &pin_blobs);
    // 1. Every listed path, in path order: the two layout files planned by
    // name, any other path that is not a blob reported, then each blob
    // line (their paths sort between the two) whose listed digest is its
    // name planned, its size and media type what airlock.json declares,
    // filled in below.
    let crate::bundle::PayloadParts {
        blobs: mut digests,
        differ,
        other,
    } = m.into_parts();
    let mut other_path = |path: &str, digest: &Sha256Digest, report: &mut Report| {
        if path == OCI_INDEX || path == OCI_LAYOUT {
            let exp = Expected {
                digest: *digest,
                size: MAX_JSON_BLOB,
                exact: false,
                keep: true,
                sha512: false,
                fold: false,
            };
            plan.layout.insert(path.to_string(), exp);
        } else {
            report.add(
                path,
                "listed in manifest-sha256.txt but is not part of an OCI layout",
            );
        }
    };
    for (path, digest) in other.range::<str, _>((Bound::Unbounded, Bound::Excluded(BLOBS_PREFIX))) {
        other_path(path, digest, report);
    }
    for &(i, listed) in &differ {
        report.add(
            blob_path(&digests[i]),
            format!("listed in manifest-sha256.txt with digest {listed}, which is not its name"),
        );
    }
    for (path, digest) in other.range::<str, _>((Bound::Included(BLOBS_PREFIX), Bound::Unbounded)) {
        other_path(path, digest, report);
    }
    // A blob line listing another digest than its name's is not planned;
    // its name is still listed (for the check of declared blobs below).
    let misnamed: Vec<Sha256Digest> = differ.iter().map(|&(i, _)| digests[i]).collect();
    if !differ.is_empty() {
        let mut differ = differ.iter().map(|&(i, _)| i).peekable();
        let mut i = 0;
        digests.retain(|_| {
            let drop = differ.next_if_eq(&i).is_some();
            i += 1;
            !drop
        });
        digests.shrink_to_fit();
    }
    // One record per blob, sized up front (not grown by doubling).
    let mut blobs = Vec::with_capacity(digests.len());
    blobs.extend(digests.iter().map(|dg| Planned {
        size: 0,
        exact: true,
        keep: false,
        sha512: sha512_blobs.contains(dg),
        fold: folds.contains(dg),
    }));
    plan.digests = digests;
    plan.blobs = blobs;
    // 2. What airlock.json declares of each, in one walk of its artifacts
    // (as `Description::blob_refs` reads them: an artifact's manifest and
    // config over whatever came before, a layer or blob only where nothing
    // did), into one media type per listed blob rather than a map of every
    // declared blob (a file set declares one per file), held as one byte:
    // 0 nothing declares it, 1 declared with a media type whose bytes are
    // kept (`kept_for_checks`, size and pins aside), 2 any other.
    let mut media: Vec<u8> = vec![0; plan.blobs.len()];
    let mut unlisted = Vec::new();
    let delta = d.delta.is_some();
    let declared = d.artifacts.iter().flat_map(|a| {
        [(&a.manifest, true), (&a.config, true)]
            .into_iter()
            .map(|(b, over)| (&b.digest, b.media_type.as_str(), b.size, over))
            .chain(
                a.layers
                    .iter()
                    .map(|l| (l.digest, l.media_type, l.size, false)),
            )
            .chain(
                a.blobs
                    .iter()
                    .map(|b| (&b.digest, b.media_type.as_str(), b.size, false)),
            )
    });
    for (digest, mt, size, over) in declared {
        match plan.digests.binary_search(digest) {
            Ok(i) => {
                if over || media[i] == 0 {
                    plan.blobs[i].size = size;
                    media[i] = if kept_media_type(mt) { 1 } else { 2 };
                }
            }
            // A delta leaves out what its base provides (`Description::omitted`).
            Err(_) => {
                if !delta && misnamed.binary_search(digest).is_err() {
                    unlisted.push(*digest);
                }
            }
        }
    }
    // 3. A listed blob nothing declares is not planned; the others keep
    // their bytes where a check reads them.
    let mut kept = 0;
    for (i, media) in media.into_iter().enumerate() {
        let kept_type = match media {
            1 => true,
            2 => false,
            _ => {
                report.add(
                    blob_path(&plan.digests[i]),
                    "listed in manifest-sha256.txt but no artifact in airlock.json uses it",
                );
                continue;
            }
        };
        let (digest, mut e) = (plan.digests[i], plan.blobs[i]);
        // As `kept_for_checks`; folded whatever its size: its bytes are never held.
        e.keep = (kept_type || pin_blobs.contains(&digest)) && e.size <= MAX_JSON_BLOB && !e.fold;
        plan.digests[kept] = digest;
        plan.blobs[kept] = e;
        kept += 1;
    }
    plan.digests.truncate(kept);
    plan.blobs.truncate(kept);
    for required in [OCI_LAYOUT, OCI_INDEX] {
        if !other.contains_key(required) {
            report.add(MANIFEST, format!("does not list {required}"));
        }
    }
    unlisted.sort_unstable();
    unlisted.dedup();
    for d in unlisted {
        report.add(
            MANIFEST,
            format!("does not list blob {d:?} that airlock.json declares"),
        );
    }
    plan
}

/// The blobs `check_oci` reads as folds (`Expected::fold`): the OCI
/// manifests of artifacts that are not images, unless the same blob is also
/// read as bytes (by an image's check, or as a pin or signature file).
fn fold_blobs(d: &Description, pin_blobs: &BTreeSet<Sha256Digest>) -> BTreeSet<Sha256Digest> {
    let mut bytes_read: BTreeSet<Sha256Digest> = pin_blobs.clone();
    for a in d.artifacts.iter().filter(|a| a.kind == ArtifactKind::Image) {
        bytes_read.extend([a.manifest.digest, a.config.digest]);
        bytes_read.extend(a.layers.iter().map(|l| l.digest));
        bytes_read.extend(a.blobs.iter().map(|b| b.digest));
    }
    d.artifacts
        .iter()
        .filter(|a| a.kind != ArtifactKind::Image)
        .map(|a| a.manifest.digest)
        .filter(|dg| !bytes_read.contains(dg))
        .collect()
}

/// Whether a blob's bytes are kept for the structure and pin checks. SBOM
/// documents (`+json` too) are not: no check reads them, and they grow with
/// the file count (about 1.8 KB per file for the generated two).
fn kept_for_checks(
    digest: &Sha256Digest,
    media_type: &str,
    size: u64,
    pin_blobs: &BTreeSet<Sha256Digest>,
) -> bool {
    (kept_media_type(media_type) || pin_blobs.contains(digest)) && size <= MAX_JSON_BLOB
}

/// Whether `kept_for_checks` keeps a blob of this media type (pins and
/// size aside).
fn kept_media_type(media_type: &str) -> bool {
    let sbom = media_type == crate::sbom::CYCLONEDX_JSON || media_type == crate::sbom::SPDX_JSON;
    media_type == MT_MANIFEST || media_type == MT_INDEX || (media_type.ends_with("+json") && !sbom)
}

/// Hashes (and, when staging, copies) one payload file. Returns its digest and,
/// when asked, its bytes and its sha512.
pub(crate) fn take_payload(
    path: &str,
    reader: &mut dyn Read,
    exp: &Expected,
    staging: Option<&Staging>,
    progress: &dyn Progress,
) -> Result<(Hashed, Taken)> {
    // A blob's declared size is exact (and at most `MAX_JSON_BLOB` when
    // kept): one allocation, not a doubling series.
    // A folded manifest whose temporary file cannot be made is kept as
    // bytes, as before folding (`check_oci` reads either).
    let mut fold = match exp.fold {
        true => ManifestFold::start(staging.map(|s| s.dir)).ok(),
        false => None,
    };
    let mut kept = (exp.keep || exp.fold && fold.is_none())
        .then(|| Vec::with_capacity(if exp.exact { exp.size as usize } else { 0 }));
    let mut sha512 = exp.sha512.then(Sha512::new);
    // Staged straight under its digest: the staging directory is private
    // to this import and only a fully verified bundle's staged blobs are
    // moved into the store (a failed one's are removed with the directory),
    // so a staged file cut short is never taken for a blob. One that does
    // not match is removed at once.
    let stage_to = staged_path(path, exp, staging);
    let mut file = match &stage_to {
        Some(p) => Some(io::BufWriter::with_capacity(
            (exp.size as usize).clamp(8 << 10, 1 << 20),
            crate::store::StagedFile::create(p)?,
        )),
        None => None,
    };
    let mut tee = Tee(
        file.as_mut(),
        Some(Tee(
            kept.as_mut(),
            Some(Tee(sha512.as_mut(), fold.as_mut())),
        )),
    );
    let copied = copy_hashed(reader, &mut tee, Some(exp.size), &|n| progress.advance(n));
    let flushed = match file {
        Some(f) => f
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.finish()),
        None => Ok(()),
    };
    let h = match (copied, flushed) {
        (Ok(h), Ok(())) if h.digest == exp.digest && h.size <= exp.size => h,
        (copied, flushed) => {
            if let Some(p) = &stage_to {
                let _ = fs_err::remove_file(p);
            }
            let h = copied?;
            flushed?;
            h
        }
    };
    Ok((
        h,
        Taken {
            bytes: kept,
            sha512: sha512.map(|s| s.finalize().into()),
            manifest: match fold {
                // Parsed only once its digest is known to match.
                Some(f) if h.digest == exp.digest => Some(f.finish()?),
                _ => None,
            },
        },
    ))
}

/// A reader that shows every byte it yields to a content probe, if any.
pub(crate) fn tap<'a>(
    inner: &'a mut dyn Read,
    mut probe: Option<&'a mut crate::modelcheck::Probe>,
) -> impl Read + 'a {
    crate::digest::InspectReader::new(inner, move |b: &[u8]| {
        if let Some(p) = probe.as_mut() {
            p.feed(b)
        }
    })
}

/// Where `take_payload` leaves payload file `path` once verified, when it stages it.
pub(crate) fn staged_path(
    path: &str,
    exp: &Expected,
    staging: Option<&Staging>,
) -> Option<PathBuf> {
    staging
        .filter(|s| path.starts_with(BLOBS_PREFIX) && !s.have.contains(&exp.digest))
        .map(|s| s.dir.join(exp.digest.hex()))
}

pub(crate) fn judge(path: &str, exp: &Expected, h: &Hashed, report: &mut Report) -> bool {
    if exp.exact && h.size != exp.size || !exp.exact && h.size > exp.size {
        report.add(
            path,
            format!(
                "size {} but the signed manifests declare {}{}",
                h.size,
                if exp.exact { "" } else { "at most " },
                exp.size
            ),
        );
        false
    } else if h.digest != exp.digest {
        report.add(
            path,
            format!(
                "sha256 mismatch: manifest-sha256.txt says {}, file has {}",
                exp.digest, h.digest
            ),
        );
        false
    } else {
        true
    }
}

/// Verifies a bundle fully. With `staging`, verified blobs are also written
/// there (import); the payload is then read only if the tag files verified.
pub fn verify(
    form: &Form,
    policy: &TrustPolicy,
    staging: Option<&Staging>,
    progress: &dyn Progress,
) -> Result<Verified> {
    verify_with_base(form, policy, staging, None, progress, None)
}

/// `verify`, with a store that provides the blobs a delta leaves out: each
/// must be there, and is read from there for the content, structure and pin
/// checks (every one re-hashed with `recheck`). Without a store, a delta's
/// omitted blobs are listed as not checked, and the structure and pins are
/// checked only if no manifest or pin file is among them.
pub fn verify_with_base(
    form: &Form,
    policy: &TrustPolicy,
    staging: Option<&Staging>,
    base: Option<&Base>,
    progress: &dyn Progress,
    pre: Option<Precheck>,
) -> Result<Verified> {
    let now = crate::clock::now();
    // A directory's listing and checked tags are used as they are; a tar's
    // or volumes' are read again in their one pass, so the first reading
    // (its description and plan grow with the file count) is not held
    // beside the second.
    let pre = match (form, pre) {
        (
            Form::Dir(_),
            Some(Precheck {
                check,
                listing: Some(listing),
            }),
        ) => Some((check, listing)),
        _ => None,
    };
    // One volume given alone is checked alone: its pieces against the signed
    // volume map. The OCI structure and the package pins need the whole set.
    let mut whole_payload = true;
    let (check, mut report, mut kept) = match form {
        Form::Dir(dir) => verify_dir(dir, policy, now, staging, progress, pre)?,
        Form::Tar { .. } => verify_tar(form, policy, now, staging, progress)?,
        Form::Volumes { files } => {
            whole_payload = files.len() > 1 || staging.is_some();
            split::verify_volumes(files, whole_payload, policy, now, staging, progress)?
        }
    };
    let mut base_check = BaseCheck {
        omitted: check.omitted.iter().map(|(d, x)| (*d, x.1)).collect(),
        structure: true,
        ..Default::default()
    };
    if let (false, Some(d)) = (check.omitted.is_empty(), &check.description) {
        let mut pin_blobs = crate::sources::packages::pin_blobs(d);
        pin_blobs.extend(crate::modelsig::signature_blobs(d));
        let sha512_blobs = crate::sources::packages::sha512_blobs(d);
        let needed = check.omitted.iter().any(|(dg, (mt, size))| {
            kept_for_checks(dg, mt, *size, &pin_blobs) || sha512_blobs.contains(dg)
        });
        match base {
            Some(b) if report.is_ok() => {
                base_check.store = Some(b.store.root.clone());
                base_check.rehashed = b.recheck;
                let content = crate::modelcheck::ContentPlan::new(d, policy.pickle.clone());
                let folds = fold_blobs(d, &pin_blobs);
                for (dg, (mt, size)) in &check.omitted {
                    let sha512 = sha512_blobs.contains(dg);
                    check_from_store(
                        b, d, dg, mt, *size, &pin_blobs, &folds, sha512, &content, &mut kept,
                    )
                    .map(|r| report.merge(r))?;
                }
            }
            Some(_) => {}
            None => base_check.structure = !needed,
        }
    }
    if let (true, true, Some(d), Some(index)) = (
        whole_payload,
        base_check.structure,
        &check.description,
        kept.bytes.get(OCI_INDEX),
    ) {
        check_oci(d, index, &kept.bytes, &kept.manifests, &mut report);
        // The high side re-checks every package pin itself.
        let pins = crate::sources::packages::KeptPins {
            bytes: &kept.bytes,
            sha512: &kept.sha512,
        };
        crate::sources::packages::check_pins(d, &pins, &mut report);
        // And every model signature pack verified (OpenSSF model-signing).
        crate::modelsig::check_bundle(d, &kept.bytes, &mut report);
    }
    if let (true, Some(plan)) = (whole_payload, &check.plan) {
        check_oxum(&check.tags, plan, &kept.bytes, &mut report);
    }
    report.into_result()?;
    Ok(Verified {
        id: check.id,
        description: check
            .description
            .expect("verified bundles have a description"),
        signers: check.signers,
        custody: check.custody,
        tags: check.tags,
        base: base_check,
    })
}

/// One blob a delta leaves out, from the store: present, and (when a
/// content check wants it, its bytes are kept for the structure and pin
/// checks, or `recheck`) read, hashed and checked like a carried blob.
#[allow(clippy::too_many_arguments)]
fn check_from_store(
    b: &Base,
    d: &Description,
    digest: &Sha256Digest,
    media_type: &str,
    size: u64,
    pin_blobs: &BTreeSet<Sha256Digest>,
    folds: &BTreeSet<Sha256Digest>,
    sha512: bool,
    content: &crate::modelcheck::ContentPlan,
    kept: &mut Kept,
) -> Result<Report> {
    let path = blob_path(digest);
    let mut r = Report::default();
    if !b.store.has_blob(digest)? {
        r.add(
            &path,
            format!(
                "provided by the base (receipt {}), but store {} does not hold it",
                d.delta.as_ref().map_or(String::new(), |x| x.receipt.oci()),
                b.store.root.display()
            ),
        );
        return Ok(r);
    }
    let keep = kept_for_checks(digest, media_type, size, pin_blobs);
    let fold = folds.contains(digest);
    let wanted = content.wants(&path);
    if !(keep || fold || sha512 || wanted || b.recheck) {
        return Ok(r);
    }
    let exp = Expected {
        digest: *digest,
        size,
        exact: true,
        keep: keep && !fold,
        sha512,
        fold,
    };
    let mut pending = content.start(&path, size, None, None);
    let mut reader = b.store.open_blob(digest)?;
    let (h, taken) = take_payload(
        &path,
        &mut tap(&mut reader, pending.as_mut().map(|p| p.probe())),
        &exp,
        None,
        &crate::progress::Silent,
    )?;
    let at = b.store.locate_blob(digest);
    if judge(&at, &exp, &h, &mut r) {
        kept.add(&path, &exp, taken);
        if let Some(p) = pending {
            r.merge(p.finish(content)?);
        }
    }
    Ok(r)
}

/// `Payload-Oxum` in bag-info.txt against the payload manifest: BagIt
/// validators refuse a bag whose octet or file count differs, so airlock
/// does too. Every listed file was checked to have its declared size; the
/// two OCI layout files are sized by their verified bytes.
fn check_oxum(tags: &TagSet, plan: &Plan, kept: &HashMap<String, Vec<u8>>, report: &mut Report) {
    let Some(bag_info) = tags.files.get(BAG_INFO) else {
        return; // reported as missing with the tag files
    };
    let (octets, count) = match payload_oxum(&String::from_utf8_lossy(bag_info)) {
        Ok(x) => x,
        Err(e) => return report.add(BAG_INFO, e),
    };
    let mut total = 0u64;
    for (path, exp) in plan.iter() {
        match (exp.exact, kept.get(&path)) {
            (true, _) => total += exp.size,
            (false, Some(bytes)) => total += bytes.len() as u64,
            (false, None) => return, // unreadable; reported already
        }
    }
    if (octets, count) != (total, plan.len() as u64) {
        report.add(
            BAG_INFO,
            format!(
                "Payload-Oxum {octets}.{count} does not match the payload: manifest-sha256.txt lists {} file(s) of {total} bytes in all",
                plan.len()
            ),
        );
    }
}

type Outcome = (TagCheck, Report, Kept);

fn verify_dir(
    dir: &Path,
    policy: &TrustPolicy,
    now: i64,
    staging: Option<&Staging>,
    progress: &dyn Progress,
    pre: Option<(TagCheck, Vec<crate::source::DirPayload>)>,
) -> Result<Outcome> {
    let (check, present) = match pre {
        Some(done) => done,
        None => check_dir(dir, policy, now)?,
    };
    let mut report = check.report.clone();
    let mut kept = Kept::default();
    // Borrowed, not cloned: the plan has an entry per file.
    let Some(plan) = check.plan.as_ref() else {
        return Ok((check, report, kept));
    };
    // Signatures and the trust policy are judged before any payload byte is read.
    if !report.is_ok() {
        return Ok((check, report, kept));
    }
    if !fs_err::symlink_metadata(dir.join("data")).is_ok_and(|m| m.is_dir()) {
        report.add("data/", "missing or not a directory");
    }
    // Each listed file by its plan position: whether it is present and its
    // size as listed. A blob is known by its position, so the listing's
    // record of it (48 bytes) is let go here, before the files are hashed
    // (9 bytes a plan entry instead); only the few other files (the two
    // layout files) keep theirs.
    let mut seen = vec![false; plan.len()];
    let mut sizes = vec![0u64; plan.len()];
    let mut others: Vec<(usize, crate::source::DirPayload)> = Vec::new();
    for p in present {
        match plan.position_of(&p) {
            Some((i, _)) => {
                seen[i] = true;
                sizes[i] = p.size();
                if !matches!(p, crate::source::DirPayload::Blob(..)) {
                    others.push((i, p));
                }
            }
            None => report.add(p.path(), "extra file: not listed in manifest-sha256.txt"),
        }
    }
    for (path, seen) in plan.keys().zip(&seen) {
        if !seen {
            report.add(
                path,
                "missing: listed in manifest-sha256.txt but not in the bundle",
            );
        }
    }
    // Weights and pickles are re-checked by content (modelcheck).
    let content = check
        .description
        .as_ref()
        .map(|d| crate::modelcheck::ContentPlan::new(d, policy.pickle.clone()));
    let found = |i: usize| seen[i].then_some(i);
    progress.begin(
        "verifying",
        (0..plan.len()).filter_map(found).map(|i| sizes[i]).sum(),
    );
    // Per file with something to report or keep: its path, its findings,
    // its bytes when kept. A file that verified and keeps nothing leaves
    // nothing behind.
    type FileOutcome = (String, Report, Option<Taken>);
    let results: Vec<Result<FileOutcome>> = (0..plan.len())
        .into_par_iter()
        .filter_map(found)
        .map(|i| {
            let blob;
            let p = match others.iter().find(|(at, _)| *at == i) {
                Some((_, p)) => p,
                None => {
                    blob = crate::source::DirPayload::Blob(plan.blob_digests()[i], sizes[i]);
                    &blob
                }
            };
            let path = p.path();
            let (rel, abs, len) = (&*path, p.file(dir), &p.size());
            let (_, exp) = &plan.position_of(p).expect("listed");
            let mut r = Report::default();
            if exp.exact && *len != exp.size || *len > exp.size {
                r.add(
                    rel,
                    format!("size {len} but the signed manifests declare {}", exp.size),
                );
                return Ok((rel.to_string(), r, None));
            }
            // Weights and pickles (modelcheck): probed from the one read
            // that hashes the file, read back only when wholly needed.
            let mut pending = content.as_ref().and_then(|c| {
                let file = staged_path(rel, exp, staging).unwrap_or_else(|| abs.clone());
                c.start(rel, exp.size, Some(file), None)
            });
            let mut f = fs_err::File::open(&abs)?;
            let (h, taken) = take_payload(
                rel,
                &mut tap(&mut f, pending.as_mut().map(|p| p.probe())),
                exp,
                staging,
                progress,
            )?;
            let ok = judge(rel, exp, &h, &mut r);
            if let (true, Some(c), Some(p)) = (ok, &content, pending) {
                r.merge(p.finish(c)?);
            }
            let taken = Some(taken).filter(|t| {
                ok && (t.bytes.is_some() || t.sha512.is_some() || t.manifest.is_some())
            });
            Ok((rel.to_string(), r, taken))
        })
        .filter(|res| !matches!(res, Ok((_, r, None)) if r.is_ok()))
        .collect();
    progress.finish();
    for res in results {
        let (rel, r, taken) = res?;
        report.merge(r);
        if let Some(t) = taken {
            kept.add(&rel, &plan.get(&rel).expect("listed"), t);
        }
    }
    Ok((check, report, kept))
}

fn verify_tar(
    form: &Form,
    policy: &TrustPolicy,
    now: i64,
    staging: Option<&Staging>,
    progress: &dyn Progress,
) -> Result<Outcome> {
    // Pass 1: the tag area (with additions), signatures and the trust policy,
    // before any payload byte is read.
    let check = check_tags(crate::source::read_tags_spilling(form)?, policy, now);
    let mut report = check.report.clone();
    let mut kept = Kept::default();
    let (true, Some(plan)) = (report.is_ok(), check.plan.as_ref()) else {
        return Ok((check, report, kept));
    };
    let content = check
        .description
        .as_ref()
        .map(|d| crate::modelcheck::ContentPlan::new(d, policy.pickle.clone()));
    progress.begin(
        "verifying",
        check
            .description
            .as_ref()
            .map_or(0, Description::total_size),
    );
    // Pass 2: the payload, streamed once; in a plain tar, large entries
    // are hashed in parallel where they lie (`placed`).
    // One flag per plan entry, by position.
    let mut seen = vec![false; plan.len()];
    let tags = &check.tags;
    let shared = placed::Shared::dropping_quiet();
    let batch = std::cell::RefCell::new(placed::Batch::default());
    let mut visit = |pool: &placed::Pool, report: &mut Report, item: Item<'_>| -> Result<Flow> {
        if shared.stopped() {
            return Ok(Flow::Stop);
        }
        let (path, size, entry, at) = match item {
            Item::HeadSpilled { path, spilled } => {
                if !tags.same_digest(&path, spilled.len, &spilled.digest) {
                    report.add(
                        &path,
                        "differs from what was read before the payload (changed during verification, or hidden inside the compressed payload)",
                    );
                }
                return Ok(Flow::Continue);
            }
            Item::HeadHashed { path, size, digest } => {
                if !tags.same_digest(&path, size, &digest) {
                    report.add(
                        &path,
                        "differs from what was read before the payload (changed during verification, or hidden inside the compressed payload)",
                    );
                }
                return Ok(Flow::Continue);
            }
            Item::Head { path, bytes } => {
                if !tags.same(&path, &bytes) {
                    report.add(
                        &path,
                        "differs from what was read before the payload (changed during verification, or hidden inside the compressed payload)",
                    );
                }
                return Ok(Flow::Continue);
            }
            Item::Payload {
                path,
                size,
                read,
                at,
            } => (path, size, read, at),
        };
        let Some((i, ref exp)) = plan.position(&path) else {
            report.add(&path, "extra file: not listed in manifest-sha256.txt");
            return Ok(Flow::Continue);
        };
        seen[i] = true;
        if exp.exact && size != exp.size || size > exp.size {
            report.add(
                &path,
                format!(
                    "size {size} but the signed manifests declare {}; stopped reading",
                    exp.size
                ),
            );
            return Ok(Flow::Stop);
        }
        // A plain tar's entry (one offset): a tar.zst's walk already shares
        // the two cores with its decoding thread, and its small entries
        // stream as before.
        let plain = matches!(&at, Some(a) if matches!(a.layout, crate::source::Layout::At(_)));
        if let Some(at) = at.filter(|_| size >= placed::PARALLEL_AT) {
            pool.send(placed::Job {
                path,
                exp: *exp,
                file: at.file.try_clone()?,
                layout: at.layout,
                size,
            });
            return Ok(Flow::Continue);
        }
        // A plain tar's small entry: read whole here (a read error is the
        // tar's, as in the stream), hashed and probed by the pool with others.
        if plain && size <= placed::SMALL_MAX {
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes)?;
            let mut batch = batch.borrow_mut();
            if batch.push(path, *exp, bytes) {
                pool.send_batch(&mut batch);
            }
            return Ok(Flow::Continue);
        }
        // Weights and pickles (modelcheck): read back from the staged copy,
        // or probed as they stream by.
        let mut pending = content.as_ref().and_then(|c| {
            c.start(
                &path,
                exp.size,
                staged_path(&path, exp, staging),
                staging.map(|s| s.dir),
            )
        });
        let (h, taken) = take_payload(
            &path,
            &mut tap(entry, pending.as_mut().map(|p| p.probe())),
            exp,
            staging,
            progress,
        )?;
        if judge(&path, exp, &h, report) {
            kept.add(&path, exp, taken);
            if let (Some(c), Some(p)) = (&content, pending) {
                report.merge(p.finish(c)?);
            }
        }
        Ok(Flow::Continue)
    };
    std::thread::scope(|scope| {
        let pool = placed::Pool::start(scope, &shared, content.as_ref(), staging, progress);
        // The plan's blobs met are flags by position, not names the walk
        // holds (32 bytes a blob).
        let mut marks = plan.marks();
        let walked = crate::source::walk_tar_hashing_heads(
            form.path(),
            &mut marks,
            &mut report,
            &mut |report, item| visit(&pool, report, item),
        );
        // The small entries read before the walk ended (or stopped, as the
        // stream would have hashed them).
        pool.send_batch(&mut batch.borrow_mut());
        walked
        // Dropping the pool ends its threads once their queue is empty;
        // the scope waits for them.
    })?;
    shared.merge(&mut report, &mut kept)?;
    progress.finish();
    if report.is_ok() {
        for (path, seen) in plan.keys().zip(seen) {
            if !seen {
                report.add(
                    path,
                    "missing: listed in manifest-sha256.txt but not in the bundle",
                );
            }
        }
    }
    Ok((check, report, kept))
}

/// `check_oci` on documents in memory: `index` as `data/index.json`, each of
/// `blobs` as a blob of the bundle under its digest, both kept (as an
/// image's manifests are) and folded from a temporary file (as a file set's
/// manifest is). For the fuzz targets (`fuzz/`): verification itself gets
/// these from the walk.
#[doc(hidden)]
pub fn check_oci_documents(d: &Description, index: &[u8], blobs: &[&[u8]]) -> io::Result<Report> {
    use io::Write as _;
    let mut kept = HashMap::new();
    let mut folded = HashMap::new();
    for bytes in blobs {
        let digest = Sha256Digest::of(bytes);
        let mut fold = ManifestFold::start(None)?;
        fold.write_all(bytes)?;
        folded.insert(digest, fold.finish()?);
        kept.insert(blob_path(&digest), bytes.to_vec());
    }
    let mut report = Report::default();
    check_oci(d, index, &kept, &folded, &mut report);
    Ok(report)
}

/// Checks the OCI layout against the description: every index entry named and
/// declared, every manifest's config and layers exactly as declared.
fn check_oci(
    d: &Description,
    index: &[u8],
    kept: &HashMap<String, Vec<u8>>,
    folded: &HashMap<Sha256Digest, std::result::Result<ImageManifest, String>>,
    report: &mut Report,
) {
    let index: ImageIndex = match serde_json::from_slice(index) {
        Ok(i) => i,
        Err(e) => return report.add(OCI_INDEX, format!("not an OCI image index: {e}")),
    };
    let mut found = BTreeSet::new();
    for m in index.manifests() {
        let digest = Sha256Digest::parse_oci(m.digest().as_ref());
        let Some(name) = m.annotations().as_ref().and_then(|a| a.get(REF_NAME)) else {
            report.add(OCI_INDEX, format!("entry {} has no {REF_NAME}", m.digest()));
            continue;
        };
        let Some(a) = d.artifacts.iter().find(|a| &a.reference == name) else {
            report.add(
                OCI_INDEX,
                format!("entry {name:?} is not declared in airlock.json"),
            );
            continue;
        };
        found.insert(name.clone());
        if digest != Some(a.manifest.digest) || m.size() != a.manifest.size {
            report.add(
                OCI_INDEX,
                format!("entry {name:?} does not point at the manifest airlock.json declares"),
            );
            continue;
        }
        if a.kind == ArtifactKind::Image {
            if m.media_type().to_string() != a.manifest.media_type {
                report.add(
                    OCI_INDEX,
                    format!("entry {name:?} has another media type than airlock.json declares"),
                );
            }
            crate::image::check(a, kept, report);
            continue;
        }
        // Read as `ImageManifest` reads it, its layers folded as they pass
        // (a file set's manifest has a layer per file; see `ImageManifest`
        // below): parsed as it was hashed (`Expected::fold`), or from its
        // kept bytes.
        let parsed;
        let manifest: &ImageManifest = match folded.get(&a.manifest.digest) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                report.add(
                    blob_path(&a.manifest.digest),
                    format!("not an OCI image manifest: {e}"),
                );
                continue;
            }
            None => {
                let Some(bytes) = kept.get(&blob_path(&a.manifest.digest)) else {
                    report.add(
                        blob_path(&a.manifest.digest),
                        format!("manifest of {name:?} missing or damaged: its layers were not checked against airlock.json"),
                    );
                    continue;
                };
                parsed = match serde_json::from_slice::<ImageManifest>(bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        report.add(
                            blob_path(&a.manifest.digest),
                            format!("not an OCI image manifest: {e}"),
                        );
                        continue;
                    }
                };
                &parsed
            }
        };
        let same = |desc: &oci_spec::image::Descriptor, mt: &str, dg: &Sha256Digest, size: u64| {
            desc.media_type().to_string() == mt
                && Sha256Digest::parse_oci(desc.digest().as_ref()) == Some(*dg)
                && desc.size() == size
        };
        if !same(
            &manifest.config,
            &a.config.media_type,
            &a.config.digest,
            a.config.size,
        ) {
            report.add(
                blob_path(&a.manifest.digest),
                format!("config of {name:?} differs from airlock.json"),
            );
        }
        // Each layer's media type, digest, size and title as declared, in
        // order: compared as folds of the two sequences.
        let layers_match = manifest.layers == LayerFold::declared(&a.layers);
        if !layers_match {
            report.add(
                blob_path(&a.manifest.digest),
                format!("layers of {name:?} differ from airlock.json"),
            );
        }
    }
    for a in &d.artifacts {
        if !found.contains(&a.reference) {
            report.add(
                OCI_INDEX,
                format!(
                    "artifact {:?} declared in airlock.json is not in the index",
                    a.reference
                ),
            );
        }
    }
}

/// An OCI image manifest as `check_oci` reads it: the fields, types and
/// errors of `oci_spec`'s `ImageManifest` (each layer parsed as a full
/// `Descriptor`), but the layers folded one by one as they are parsed
/// instead of held: a file set's manifest has a layer per file, and held as
/// descriptors it took about 1 KB per file.
///
/// Named as `oci_spec`'s is, since serde's messages name it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // parsed for their checks, not read
pub(crate) struct ImageManifest {
    schema_version: u32,
    media_type: Option<oci_spec::image::MediaType>,
    artifact_type: Option<oci_spec::image::MediaType>,
    config: oci_spec::image::Descriptor,
    layers: LayerFold,
    subject: Option<oci_spec::image::Descriptor>,
    annotations: Option<HashMap<String, String>>,
}

/// A sequence of layers reduced to what `check_oci` compares: their count
/// and a sha256 over each one's media type, sha256 digest (if it is one),
/// size and title, length-prefixed so that two folds are equal exactly when
/// the sequences are (up to a sha256 collision).
#[derive(Debug, PartialEq, Eq)]
struct LayerFold {
    count: u64,
    sum: [u8; 32],
}

#[derive(Default)]
struct LayerFolder {
    count: u64,
    hasher: sha2::Sha256,
}

impl LayerFolder {
    fn add(
        &mut self,
        media_type: &str,
        digest: Option<Sha256Digest>,
        size: u64,
        title: Option<&str>,
    ) {
        let h = &mut self.hasher;
        h.update((media_type.len() as u64).to_le_bytes());
        h.update(media_type.as_bytes());
        match digest {
            Some(d) => {
                h.update([1]);
                h.update(d.as_bytes());
            }
            None => h.update([0]),
        }
        h.update(size.to_le_bytes());
        match title {
            Some(t) => {
                h.update([1]);
                h.update((t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
            }
            None => h.update([0]),
        }
        self.count += 1;
    }

    fn finish(self) -> LayerFold {
        LayerFold {
            count: self.count,
            sum: self.hasher.finalize().into(),
        }
    }
}

impl LayerFold {
    /// The fold of the layers as airlock.json declares them.
    fn declared(layers: &Layers) -> LayerFold {
        let mut f = LayerFolder::default();
        for l in layers {
            f.add(l.media_type, Some(*l.digest), l.size, Some(l.path));
        }
        f.finish()
    }
}

impl<'de> serde::Deserialize<'de> for LayerFold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Layers;
        impl<'de> serde::de::Visitor<'de> for Layers {
            type Value = LayerFold;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<LayerFold, A::Error> {
                let mut f = LayerFolder::default();
                while let Some(x) = seq.next_element::<oci_spec::image::Descriptor>()? {
                    f.add(
                        x.media_type().as_ref(),
                        Sha256Digest::parse_oci(x.digest().as_ref()),
                        x.size(),
                        x.annotations()
                            .as_ref()
                            .and_then(|an| an.get(TITLE))
                            .map(String::as_str),
                    );
                }
                Ok(f.finish())
            }
        }
        d.deserialize_seq(Layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our `ImageManifest` accepts what `oci_spec`'s accepts, with its
    /// errors, and its layer fold matches the declared layers exactly when
    /// the descriptor-by-descriptor comparison it replaced did.
    #[test]
    fn manifest_check_reads_and_compares_as_image_manifest_did() {
        let (d1, d2) = (Sha256Digest::of(b"1"), Sha256Digest::of(b"2"));
        let layer = |d: &Sha256Digest, size: u64, path: &str| Layer {
            media_type: FILE_LAYER.into(),
            digest: *d,
            size,
            path: path.into(),
            mode: MODE_FILE,
        };
        let declared = [layer(&d1, 1, "a"), layer(&d2, 2, "b/c")];
        let desc = |mt: &str, digest: &str, size: u64, title: Option<&str>| {
            let mut v = serde_json::json!({"mediaType": mt, "digest": digest, "size": size});
            if let Some(t) = title {
                v["annotations"] = serde_json::json!({ TITLE: t, "other": "x" });
            }
            v
        };
        let (a, b) = (d1.oci(), d2.oci());
        let good = || {
            vec![
                desc(FILE_LAYER, &a, 1, Some("a")),
                desc(FILE_LAYER, &b, 2, Some("b/c")),
            ]
        };
        let manifest = |layers: serde_json::Value| {
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": desc(MT_EMPTY, &a, 2, None),
                "layers": layers,
            })
            .to_string()
        };
        let mut cases = vec![
            manifest(serde_json::json!(good())),
            manifest(serde_json::json!([good()[1], good()[0]])),
            manifest(serde_json::json!([good()[0]])),
            manifest(serde_json::json!([good()[0], good()[1], good()[1]])),
            manifest(serde_json::json!([])),
            manifest(serde_json::json!([
                good()[0],
                desc(FILE_LAYER, &b, 2, None)
            ])),
            manifest(serde_json::json!([
                good()[0],
                desc(FILE_LAYER, &b, 2, Some("b/d"))
            ])),
            manifest(serde_json::json!([
                good()[0],
                desc(FILE_LAYER, &b, 3, Some("b/c"))
            ])),
            manifest(serde_json::json!([
                good()[0],
                desc(MT_EMPTY, &b, 2, Some("b/c"))
            ])),
            manifest(serde_json::json!([
                good()[0],
                desc(FILE_LAYER, &a, 2, Some("b/c"))
            ])),
            manifest(serde_json::json!([
                good()[0],
                desc(
                    FILE_LAYER,
                    &format!("sha512:{}{}", d2.hex(), d2.hex()),
                    2,
                    Some("b/c")
                )
            ])),
            manifest(serde_json::json!([
                good()[0],
                desc(FILE_LAYER, "sha256:xyz", 2, Some("b/c"))
            ])),
            manifest(serde_json::json!({})),
            manifest(serde_json::json!("layers")),
            manifest(serde_json::json!([1])),
            manifest(serde_json::json!(null)),
        ];
        let ok = manifest(serde_json::json!(good()));
        cases.push(ok.replace("\"schemaVersion\":2,", ""));
        cases.push(ok.replace("\"layers\":", "\"extra\":1,\"layers\":"));
        cases.push(ok.replace("\"layers\":", "\"layers\":[],\"layers\":"));
        cases.push(ok.replacen('{', "{\"annotations\":{\"k\":\"v\"},", 1));
        cases.push(ok.replacen('{', "{\"subject\":1,", 1));
        cases.push(format!(
            "[2,null,null,{},{}]",
            desc(MT_EMPTY, &a, 2, None),
            serde_json::json!(good())
        ));
        cases.push(format!(
            "[2,null,null,{},{},null,null]",
            desc(MT_EMPTY, &a, 2, None),
            serde_json::json!(good())
        ));
        cases.push("{".into());
        let old = |bytes: &[u8]| -> std::result::Result<bool, String> {
            let m: oci_spec::image::ImageManifest =
                serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            Ok(m.layers().len() == declared.len()
                && m.layers().iter().zip(&declared).all(|(x, l)| {
                    x.media_type().to_string() == l.media_type
                        && Sha256Digest::parse_oci(x.digest().as_ref()) == Some(l.digest)
                        && x.size() == l.size
                        && x.annotations().as_ref().and_then(|an| an.get(TITLE)) == Some(&l.path)
                }))
        };
        let new = |bytes: &[u8]| -> std::result::Result<bool, String> {
            let m: ImageManifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            Ok(m.layers == LayerFold::declared(&declared.iter().cloned().collect()))
        };
        // The same parse fed through a `ManifestFold` in pieces (as the
        // payload pass writes it), with the same errors.
        let streamed = |bytes: &[u8], piece: usize| -> std::result::Result<bool, String> {
            let mut f = ManifestFold::start(None).unwrap();
            for p in bytes.chunks(piece) {
                io::Write::write_all(&mut f, p).unwrap();
            }
            Ok(f.finish().unwrap()?.layers
                == LayerFold::declared(&declared.iter().cloned().collect()))
        };
        let mut outcomes = BTreeSet::new();
        for c in &cases {
            let want = old(c.as_bytes());
            assert_eq!(new(c.as_bytes()), want, "{c}");
            for piece in [1, 7, 1 << 20] {
                assert_eq!(
                    streamed(c.as_bytes(), piece),
                    want,
                    "{c} in pieces of {piece}"
                );
            }
            outcomes.insert(format!("{:?}", want.map_err(|_| ())));
        }
        // The cases cover a match, a mismatch and a refusal.
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    }

    /// A file set's paths: each unsafe one, and each later use of a path,
    /// reported in layer order; another artifact may use the same path.
    #[test]
    fn description_paths_unsafe_or_twice_are_named_in_order() {
        let dg = |i: u8| Sha256Digest::of(&[i]).oci();
        let layer = |i: u8, path: &str| serde_json::json!({"mediaType": FILE_LAYER, "digest": dg(i), "size": 1, "path": path, "mode": 420});
        let artifact = |name: &str, layers: Vec<serde_json::Value>| {
            serde_json::json!({"kind": "files", "name": name, "reference": format!("files/{name}"), "artifactType": FILES_ARTIFACT,
            "manifest": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dg(100), "size": 10},
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": dg(101), "size": 2},
            "layers": layers})
        };
        let d: Description = serde_json::from_value(serde_json::json!({
            "apiVersion": "airlock/v1", "kind": "BundleDescription", "name": "n", "version": "1.0.0",
            "created": "2026-01-01T00:00:00Z", "generator": "g", "pickle": "deny",
            "artifacts": [
                artifact("one", vec![layer(1, "b"), layer(2, "../x"), layer(3, "a"), layer(4, "b"), layer(5, "b"), layer(6, "/abs"), layer(7, "a/c"), layer(8, "../x")]),
                artifact("two", vec![layer(1, "b"), layer(9, "a")]),
            ],
        }))
        .unwrap();
        let mut report = Report::default();
        check_description(&d, &mut report);
        let found: Vec<&str> = report.findings.iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(
            found,
            [
                "artifact one: unsafe file path \"../x\"",
                "artifact one: file path \"b\" appears twice",
                "artifact one: file path \"b\" appears twice",
                "artifact one: unsafe file path \"/abs\"",
                "artifact one: unsafe file path \"../x\"",
            ]
        );
        assert!(report.findings.iter().all(|f| f.subject == DESCRIPTION));
    }

    /// `make_plan` plans each blob line naming its own digest that the
    /// description declares, at the size it declares, and reports every
    /// other kind of line, and each declared blob no line lists.
    #[test]
    fn plan_cross_checks_manifest_and_description() {
        let dg = |i: u8| Sha256Digest::of(&[i]);
        let declared = |i: u8, size: u64| serde_json::json!({"mediaType": FILE_LAYER, "digest": dg(i).oci(), "size": size, "path": format!("f{i}"), "mode": 420});
        let d: Description = serde_json::from_value(serde_json::json!({
            "apiVersion": "airlock/v1", "kind": "BundleDescription", "name": "n", "version": "1.0.0",
            "created": "c", "generator": "g", "pickle": "deny",
            "artifacts": [{"kind": "files", "name": "n", "reference": "r", "artifactType": "t",
                "manifest": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dg(1).oci(), "size": 10},
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": dg(2).oci(), "size": 2},
                "layers": [declared(3, 30), declared(4, 40), declared(5, 50), declared(3, 31)]}],
        }))
        .unwrap();
        // 1, 2, 3 listed as they are; 4 listed with another digest; 5 not
        // listed; 6 listed but declared by nothing; a path outside the
        // layout; `oci-layout` missing.
        let line = |name: &Sha256Digest, listed: &Sha256Digest| {
            format!("{}  {}\n", listed.hex(), blob_path(name))
        };
        let mut text = String::new();
        for i in [1, 2, 3, 6] {
            text += &line(&dg(i), &dg(i));
        }
        text += &line(&dg(4), &dg(9));
        text += &format!("{}  {OCI_INDEX}\n", dg(7).hex());
        text += &format!("{}  data/extra\n", dg(8).hex());
        let m = PayloadList::parse(text.as_bytes()).unwrap();
        let mut report = Report::default();
        let plan = make_plan(&d, m, &mut report);
        let found: Vec<(String, String)> = report
            .findings
            .iter()
            .map(|f| (f.subject.clone(), f.problem.clone()))
            .collect();
        let expected = [
            (
                "data/extra".to_string(),
                "listed in manifest-sha256.txt but is not part of an OCI layout".to_string(),
            ),
            (
                blob_path(&dg(4)),
                format!(
                    "listed in manifest-sha256.txt with digest {}, which is not its name",
                    dg(9)
                ),
            ),
            (
                blob_path(&dg(6)),
                "listed in manifest-sha256.txt but no artifact in airlock.json uses it".to_string(),
            ),
            (MANIFEST.to_string(), format!("does not list {OCI_LAYOUT}")),
            (
                MANIFEST.to_string(),
                format!("does not list blob {:?} that airlock.json declares", dg(5)),
            ),
        ];
        let mut sorted = found.clone();
        sorted.sort();
        let mut want = expected.to_vec();
        want.sort();
        assert_eq!(sorted, want, "{found:#?}");
        // Planned: blobs 1, 2, 3 at their declared sizes (a layer's first
        // declaration), and the index by name.
        let planned: Vec<(String, u64, bool)> =
            plan.iter().map(|(p, e)| (p, e.size, e.exact)).collect();
        let mut want: Vec<(String, u64, bool)> = [(1, 10), (2, 2), (3, 30)]
            .into_iter()
            .map(|(i, size)| (blob_path(&dg(i)), size, true))
            .collect();
        want.sort();
        want.push((OCI_INDEX.to_string(), MAX_JSON_BLOB, false));
        assert_eq!(planned, want);
        assert_eq!(plan.get(&blob_path(&dg(3))).map(|e| e.digest), Some(dg(3)));
        for absent in [4, 5, 6] {
            assert!(!plan.contains_key(&blob_path(&dg(absent))), "{absent}");
        }
        assert_eq!(plan.marks().blobs.len(), 3);
    }

    /// The plan answers by path as the map of paths it replaced did, and
    /// lists its entries in path order, at the positions it gives.
    #[test]
    fn plan_finds_and_orders_entries_by_path() {
        let exp = |d: Sha256Digest| Expected {
            digest: d,
            size: 1,
            exact: true,
            keep: false,
            sha512: false,
            fold: false,
        };
        let mut digests: Vec<Sha256Digest> = (0..5u8).map(|i| Sha256Digest::of(&[i])).collect();
        digests.sort();
        let mut plan = Plan::default();
        let mut paths = BTreeMap::new();
        for d in &digests {
            plan.insert(&blob_path(d), exp(*d));
            paths.insert(blob_path(d), *d);
        }
        for p in [OCI_INDEX, OCI_LAYOUT] {
            let d = Sha256Digest::of(p.as_bytes());
            plan.insert(p, exp(d));
            paths.insert(p.to_string(), d);
        }
        assert_eq!(plan.len(), paths.len());
        let listed: Vec<(String, Sha256Digest)> = plan.iter().map(|(p, e)| (p, e.digest)).collect();
        assert_eq!(listed, paths.clone().into_iter().collect::<Vec<_>>());
        for (i, (p, d)) in paths.iter().enumerate() {
            let (at, e) = plan.position(p).expect("listed");
            assert_eq!((at, e.digest), (i, *d), "{p}");
        }
        let hex = digests[0].hex();
        for absent in [
            format!("{BLOBS_PREFIX}{}", hex.to_uppercase()),
            format!("{BLOBS_PREFIX}{hex}x"),
            format!("{BLOBS_PREFIX}{}", Sha256Digest::of(b"other").hex()),
            format!("data/{hex}"),
            "data/index.json/".to_string(),
            BLOBS_PREFIX.to_string(),
        ] {
            assert!(plan.get(&absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn sbom_documents_are_not_kept_but_manifests_configs_and_pins_are() {
        let d = Sha256Digest::of(b"x");
        let none = BTreeSet::new();
        for mt in [crate::sbom::CYCLONEDX_JSON, crate::sbom::SPDX_JSON] {
            assert!(!kept_for_checks(&d, mt, 100, &none), "{mt}");
        }
        for mt in [
            MT_MANIFEST,
            MT_INDEX,
            MODEL_CONFIG,
            "application/vnd.docker.distribution.manifest.v2+json",
        ] {
            assert!(kept_for_checks(&d, mt, 100, &none), "{mt}");
            assert!(!kept_for_checks(&d, mt, MAX_JSON_BLOB + 1, &none), "{mt}");
        }
        // A pin file is kept whatever its media type, an SBOM's included.
        let pins = BTreeSet::from([d]);
        assert!(kept_for_checks(&d, crate::sbom::SPDX_JSON, 100, &pins));
        assert!(!kept_for_checks(&d, "text/plain", 100, &none));
    }
}
