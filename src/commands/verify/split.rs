//! Verifying volumes: each volume's head through the one reader, the signed
//! volume map, then every piece hashed alone and split blobs joined in volume
//! order (part of `verify`; `volumes` writes them).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256, Sha512};

use super::{judge, staged_path, take_payload, tap, Expected, Kept, Staging, TagCheck};
use crate::bundle::*;
use crate::digest::{copy_hashed, HashingWriter, Sha256Digest, Tee};
use crate::dsse::{Envelope, Statement, Subject};
use crate::error::{Error, Report, Result};
use crate::policy::{KeyStanding, TrustPolicy};
use crate::progress::Progress;
use crate::source::{Flow, Item};
use crate::volumes::{Piece, VolumeMap, MAP_FILE, MAP_PREDICATE, MARKER_FILE};

use crate::source::read_volume_head as read_head;

/// The checked map, if its signer is a key the policy trusts.
fn check_map(
    bytes: &[u8],
    id: &Sha256Digest,
    policy: &TrustPolicy,
    now: i64,
) -> std::result::Result<VolumeMap, String> {
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let trusted = env.signatures.iter().any(|s| {
        policy.keys.iter().any(|k| {
            k.key.id == s.keyid
                && matches!(policy.standing(&k.key, now), KeyStanding::Trusted(_))
                && env.verify_with(&k.key)
        })
    });
    if !trusted {
        return Err("not signed by a key the trust policy trusts".into());
    }
    let payload = env.payload_bytes()?;
    let st: Statement<VolumeMap> =
        serde_json::from_slice(&payload).map_err(|e| format!("not a volume map: {e}"))?;
    if st.predicate_type != MAP_PREDICATE
        || st.subject != vec![Subject::sha256(TAGMANIFEST, id)]
        || st.predicate.bundle_id != id.hex()
    {
        return Err("a volume map of another bundle".into());
    }
    Ok(st.predicate)
}

/// A split blob being reassembled across volumes.
struct Open {
    path: String,
    next_part: u32,
    hasher: Sha256,
    /// The joined blob's sha512, when asked (`Expected::sha512`).
    sha512: Option<Sha512>,
    /// The joined blob's bytes, when asked (`Expected::keep`: a pin file or
    /// manifest, at most `MAX_JSON_BLOB`): a lock split across volumes is
    /// re-checked like a whole one.
    bytes: Option<Vec<u8>>,
    /// The joined blob written aside and parsed as it streams by, when
    /// asked (`Expected::fold`: a file set's OCI manifest, of any size).
    fold: Option<super::ManifestFold>,
    read: u64,
    stage: Option<(PathBuf, io::BufWriter<crate::store::StagedFile>)>,
    /// The blob's content check (modelcheck), fed as its parts stream by.
    content: Option<crate::modelcheck::Pending>,
}

/// Verifies volumes. `whole` means the set is meant to be complete (a folder
/// or several files): missing volumes are then reported and whole-blob
/// digests checked; a single volume is checked alone.
pub fn verify_volumes(
    files: &[PathBuf],
    whole: bool,
    policy: &TrustPolicy,
    now: i64,
    staging: Option<&Staging>,
    progress: &dyn Progress,
) -> Result<(TagCheck, Report, Kept)> {
    let mut report = Report::default();
    let mut heads = Vec::new();
    for f in files {
        let h = read_head(f)?;
        report.merge(h.problems.clone());
        heads.push(h);
    }
    // The reference is the volume with the lowest number that has a marker.
    heads.sort_by_key(|h| h.marker.as_ref().map_or(u32::MAX, |m| m.number));
    let first = heads
        .first()
        .ok_or_else(|| Error::Usage("no volumes given".into()))?;
    let mut tags = first.tags.clone();
    for other in &heads[1..] {
        let origin = other.file.display().to_string();
        crate::source::merge_additions_of(&mut tags, other.tags.clone(), &origin);
    }
    let form = crate::source::Form::Volumes {
        files: files.to_vec(),
    };
    tags.merge_additions(&form)?;
    let check = super::check_tags(tags, policy, now);
    report.merge(check.report.clone());
    let id = check.id;
    let map = match first.map.as_deref().map(|b| check_map(b, &id, policy, now)) {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            report.add(format!("{}: {MAP_FILE}", first.file.display()), e);
            None
        }
        None => {
            report.add(
                first.file.display().to_string(),
                format!("no {MAP_FILE}: not an airlock volume"),
            );
            None
        }
    };
    let total = map.as_ref().map_or(0, |m| m.volumes.len() as u32);
    let mut seen_numbers = BTreeMap::new();
    let mut usable = Vec::new();
    for h in &heads {
        let name = h.file.display().to_string();
        let Some(marker) = &h.marker else {
            report.add(&name, format!("no {MARKER_FILE}: not an airlock volume"));
            continue;
        };
        let other_id = h.tags.files.get(TAGMANIFEST).map(|b| Sha256Digest::of(b));
        if other_id != Some(id) || marker.bundle_id != id.hex() {
            report.add(
                &name,
                format!(
                    "volume {} belongs to another bundle (id {}), not {id}",
                    marker.number, marker.bundle_id
                ),
            );
            continue;
        }
        for t in TAG_FILES {
            if !check
                .tags
                .file_is(t, h.tags.files.get(t).map(Vec::as_slice))
            {
                report.add(
                    format!("{name}: {t}"),
                    format!(
                        "volume {}: differs from the signed tag files",
                        marker.number
                    ),
                );
            }
        }
        if marker.of != total || marker.number == 0 || marker.number > total {
            report.add(
                &name,
                format!(
                    "volume {} of {} does not fit the volume map of {total} volume(s)",
                    marker.number, marker.of
                ),
            );
            continue;
        }
        if let Some(prev) = seen_numbers.insert(marker.number, name.clone()) {
            report.add(
                &name,
                format!("volume {} given twice (also {prev})", marker.number),
            );
            continue;
        }
        usable.push(h);
    }
    if whole {
        for n in 1..=total {
            if !seen_numbers.contains_key(&n) {
                report.add(format!("volume {n} of {total}"), "missing");
            }
        }
    }
    let mut kept = Kept::default();
    let (Some(map), Some(plan)) = (map, check.plan.clone()) else {
        return Ok((check, report, kept));
    };
    // Signatures, the trust policy and the volume map are judged before any
    // payload byte is read.
    if !report.is_ok() {
        return Ok((check, report, kept));
    }
    // The map must cover the payload manifest exactly.
    let mut covered: BTreeMap<&str, u64> = BTreeMap::new();
    for p in map.volumes.iter().flatten() {
        *covered.entry(p.path.as_str()).or_default() += p.size;
        if !plan.contains_key(&p.path) {
            report.add(
                MAP_FILE,
                format!("lists {} which manifest-sha256.txt does not", p.path),
            );
        }
    }
    for (path, exp) in plan.iter() {
        match covered.get(path.as_str()) {
            None => report.add(MAP_FILE, format!("does not place {path}")),
            Some(n) if exp.exact && *n != exp.size => report.add(
                MAP_FILE,
                format!("places {n} bytes of {path}, which has {}", exp.size),
            ),
            _ => {}
        }
    }

    progress.begin(
        "verifying",
        usable
            .iter()
            .map(|h| {
                map.volumes[h.marker.as_ref().expect("usable").number as usize - 1]
                    .iter()
                    .map(|p| p.size)
                    .sum::<u64>()
            })
            .sum(),
    );
    let mut open: Option<Open> = None;
    let mut done_paths: BTreeSet<String> = BTreeSet::new();
    // The split blobs whose every part is in a volume given here: only those
    // can be joined, so only their parts feed a whole-blob hash beside their
    // own (a volume verified alone hashes each part once).
    let given: BTreeSet<u32> = usable
        .iter()
        .filter_map(|h| h.marker.as_ref().map(|m| m.number))
        .collect();
    let mut joinable: BTreeMap<&str, bool> = BTreeMap::new();
    for (i, v) in map.volumes.iter().enumerate() {
        for p in v.iter().filter(|p| p.part > 0) {
            let all = joinable.entry(p.path.as_str()).or_insert(true);
            *all &= given.contains(&(i as u32 + 1));
        }
    }
    // Weights and pickles are re-checked by content once a blob is whole.
    let content = check
        .description
        .as_ref()
        .map(|d| crate::modelcheck::ContentPlan::new(d, policy.pickle.clone()));
    let start_content = |path: &str, exp: &Expected| {
        content.as_ref().and_then(|c| {
            c.start(
                path,
                exp.size,
                staged_path(path, exp, staging),
                staging.map(|s| s.dir),
            )
        })
    };
    for h in &usable {
        let number = h.marker.as_ref().expect("usable").number;
        let vol = format!("volume {number} ({})", h.file.display());
        let expected: BTreeMap<String, &Piece> = map.volumes[number as usize - 1]
            .iter()
            .map(|p| (p.entry_name(), p))
            .collect();
        let mut seen = BTreeSet::new();
        let mut vol_report = Report::default();
        // A whole file in a plain volume, when large, is hashed in parallel
        // where it lies, as in a plain tar (`placed`).
        let shared = super::placed::Shared::default();
        let mut visit = |pool: &super::placed::Pool,
                         report: &mut Report,
                         item: Item<'_>|
         -> Result<Flow> {
            if shared.stopped() {
                return Ok(Flow::Stop);
            }
            let (name, size, entry, at) = match item {
                // Read and checked with the head, before the payload.
                Item::Head { path, bytes } => {
                    // (The map and marker were taken out of the head's tags.)
                    let known = crate::source::place_of(&path) == crate::source::Place::Volume
                        || h.tags.get(&path) == Some(&bytes);
                    if !known {
                        report.add(
                            &path,
                            "differs from what was read before the payload (changed during verification, or hidden inside the compressed payload)",
                        );
                    }
                    return Ok(Flow::Continue);
                }
                // Only `walk_tar_hashing_heads` and a spilling read hand these over.
                Item::HeadHashed { path, .. } | Item::HeadSpilled { path, .. } => {
                    report.add(&path, "differs from what was read before the payload (changed during verification, or hidden inside the compressed payload)");
                    return Ok(Flow::Continue);
                }
                Item::Payload {
                    path,
                    size,
                    read,
                    at,
                } => (path, size, read, at),
            };
            let Some(piece) = expected.get(&name) else {
                report.add(&name, "not in the volume map for this volume");
                return Ok(Flow::Continue);
            };
            seen.insert(name.clone());
            if size != piece.size {
                report.add(
                    &name,
                    format!(
                        "size {size} but the volume map says {}; stopped reading",
                        piece.size
                    ),
                );
                return Ok(Flow::Stop);
            }
            // The signed map may name a path the payload manifest lacks
            // (reported above); never index the plan blindly.
            let Some(exp) = plan.get(&piece.path) else {
                report.add(&name, "in the volume map but not in manifest-sha256.txt");
                return Ok(Flow::Continue);
            };
            if let Some(at) = at.filter(|_| piece.part == 0 && size >= super::placed::PARALLEL_AT) {
                pool.send(super::placed::Job {
                    path: piece.path.clone(),
                    exp,
                    file: at.file.try_clone()?,
                    layout: at.layout,
                    size,
                });
                return Ok(Flow::Continue);
            }
            if piece.part == 0 {
                let mut pending = start_content(&piece.path, &exp);
                let (hsh, taken) = take_payload(
                    &piece.path,
                    &mut tap(entry, pending.as_mut().map(|p| p.probe())),
                    &exp,
                    staging,
                    progress,
                )?;
                if judge(&piece.path, &exp, &hsh, report) {
                    done_paths.insert(piece.path.clone());
                    kept.add(&piece.path, &exp, taken);
                    if let (Some(c), Some(p)) = (&content, pending) {
                        report.merge(p.finish(c)?);
                    }
                }
                return Ok(Flow::Continue);
            }
            // A part: check it alone, and feed the whole blob if its parts arrive in order.
            if piece.part == 1 && joinable.get(piece.path.as_str()) == Some(&true) {
                let stage = match staging.filter(|s| !s.have.contains(&exp.digest)) {
                    Some(s) => {
                        let p = s.dir.join(format!("{}.part", exp.digest.hex()));
                        Some((
                            p.clone(),
                            io::BufWriter::with_capacity(
                                1 << 20,
                                crate::store::StagedFile::create(&p)?,
                            ),
                        ))
                    }
                    None => None,
                };
                let fold = match exp.fold {
                    true => super::ManifestFold::start(staging.map(|s| s.dir)).ok(),
                    false => None,
                };
                let fold_failed = exp.fold && fold.is_none();
                open = Some(Open {
                    path: piece.path.clone(),
                    next_part: 1,
                    hasher: Sha256::new(),
                    sha512: exp.sha512.then(Sha512::new),
                    // A manifest to fold whose temporary file cannot be
                    // made is kept as bytes (`Kept::add_bytes` parses them).
                    fold,
                    bytes: (exp.keep || fold_failed).then(Vec::new),
                    read: 0,
                    stage,
                    content: start_content(&piece.path, &exp),
                });
            }
            let feeding = open.as_ref().is_some_and(|o| {
                o.path == piece.path && o.next_part == piece.part && o.read == piece.offset
            });
            let part_hash = if feeding {
                let o = open.as_mut().expect("feeding");
                let mut tap = tap(entry, o.content.as_mut().map(|p| p.probe()));
                let hsh = match o.stage.as_mut() {
                    Some(s) => {
                        let w = HashingWriter::new(&mut s.1, &mut o.hasher);
                        let w = Tee(Some(Tee(Some(w), o.sha512.as_mut())), o.bytes.as_mut());
                        let mut w = Tee(Some(w), o.fold.as_mut());
                        copy_hashed(&mut tap, &mut w, Some(piece.size), &|n| progress.advance(n))?
                    }
                    None => {
                        let w = HashingWriter::new(io::sink(), &mut o.hasher);
                        let w = Tee(Some(Tee(Some(w), o.sha512.as_mut())), o.bytes.as_mut());
                        let mut w = Tee(Some(w), o.fold.as_mut());
                        copy_hashed(&mut tap, &mut w, Some(piece.size), &|n| progress.advance(n))?
                    }
                };
                o.read += hsh.size;
                o.next_part += 1;
                hsh
            } else {
                open = None;
                crate::digest::hash_reader(entry, Some(piece.size), &|n| progress.advance(n))?
            };
            if part_hash.digest != piece.digest || part_hash.size != piece.size {
                report.add(
                    &name,
                    format!(
                        "sha256 mismatch: the volume map says {}, the part has {}",
                        piece.digest, part_hash.digest
                    ),
                );
                open = None;
                return Ok(Flow::Continue);
            }
            if feeding && piece.offset + piece.size == piece.total {
                let o = open.take().expect("feeding");
                let whole = Sha256Digest::of_raw(o.hasher.finalize().into());
                if whole != exp.digest {
                    report.add(&piece.path, format!("sha256 mismatch after joining its parts: manifest says {}, parts give {whole}", exp.digest));
                } else {
                    done_paths.insert(piece.path.clone());
                    if let Some(s) = o.sha512 {
                        kept.sha512.insert(exp.digest, s.finalize().into());
                    }
                    if let Some(b) = o.bytes {
                        kept.add_bytes(&piece.path, &exp, b);
                    }
                    if let Some(f) = o.fold {
                        kept.manifests.insert(exp.digest, f.finish()?);
                    }
                    if let Some((p, f)) = o.stage {
                        f.into_inner().map_err(|e| e.into_error())?.finish()?;
                        fs_err::rename(&p, p.with_extension(""))?;
                    }
                    if let (Some(c), Some(p)) = (&content, o.content) {
                        report.merge(p.finish(c)?);
                    }
                }
            }
            Ok(Flow::Continue)
        };
        std::thread::scope(|scope| {
            let pool =
                super::placed::Pool::start(scope, &shared, content.as_ref(), staging, progress);
            crate::source::walk_tar(&h.file, true, &mut vol_report, &mut |report, item| {
                visit(&pool, report, item)
            })
            // Dropping the pool ends its threads once their queue is empty;
            // the scope waits for them.
        })?;
        done_paths.extend(shared.merge(&mut vol_report, &mut kept)?);
        for f in vol_report.findings {
            report.add(format!("{vol}: {}", f.subject), f.problem);
        }
        for name in expected.keys() {
            if !seen.contains(name) {
                report.add(format!("{vol}: {name}"), "missing from this volume");
            }
        }
    }
    progress.finish();
    if whole && report.is_ok() {
        for path in plan.keys() {
            if !done_paths.contains(&path) {
                report.add(path, "not verified: its parts were not all read in order");
            }
        }
    }
    Ok((check, report, kept))
}
