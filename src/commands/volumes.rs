//! Volumes: a bundle split across tar files sized for physical media.
//!
//! Every volume is a valid tar on its own and starts with the bundle's tag
//! files, signatures and custody events, then `volumes.dsse.json` (the volume
//! map: which pieces of which payload file each volume holds, with each
//! piece's sha256, signed by the packer) and `volume.json` (which volume this
//! is), then its payload pieces. A blob larger than the room left in a volume
//! is split into parts (`<blob path>.partNNN`), each with its own digest, so a
//! single volume can be verified alone; the whole blob's digest is checked
//! when all of its parts are read, in volume order, during a full verify or
//! import. The bundle id is the same as in every other form.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::bundle::*;
use crate::digest::{copy_hashed, HashingWriter, Sha256Digest};
use crate::dsse::{Envelope, Statement, Subject, INTOTO_PAYLOAD_TYPE, STATEMENT_V1};
use crate::error::{Error, Report, Result};
use crate::keys::PrivateKey;
use crate::policy::{KeyStanding, TrustPolicy};
use crate::progress::Progress;
use crate::source::{Flow, Item};
use crate::verify::{self, tap, Expected, Staging, TagCheck};

pub use crate::bundle::{parse_volume_name, VOLUME_MAP as MAP_FILE, VOLUME_MARKER as MARKER_FILE};
pub const MAP_PREDICATE: &str = "https://airlock.dev/attestations/volume-map/v1";
/// Blobs up to this size are never split: they move whole to the next volume.
const SPLIT_MIN: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMap {
    pub bundle_id: String,
    pub volumes: Vec<Vec<Piece>>,
}

/// A payload file, or one part of it, inside one volume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Piece {
    /// The payload file (`data/...`) this piece belongs to.
    pub path: String,
    /// 0 for a whole file; 1.. for the parts of a split blob.
    pub part: u32,
    pub offset: u64,
    pub size: u64,
    /// The whole file's size.
    pub total: u64,
    pub digest: Sha256Digest,
}

impl Piece {
    pub fn entry_name(&self) -> String {
        if self.part == 0 {
            self.path.clone()
        } else {
            format!("{}.part{:03}", self.path, self.part)
        }
    }
}

pub use crate::bundle::VolumeMarker as Marker;

/// Parses `4.7GB`, `25GB`, `700MiB`, `1048576`: GB = 10^9, GiB = 2^30.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 4.7GB, 700MiB or 1048576"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let v = (n * mult).floor();
    if !(1.0..=1.8e19).contains(&v) {
        return Err(format!("{s:?} is not a usable volume size"));
    }
    Ok(v as u64)
}

fn blocks(size: u64) -> u64 {
    512 + size.div_ceil(512) * 512
}

/// Splits a packed bundle directory into volumes written into `out`.
#[allow(clippy::too_many_arguments)]
pub fn write_volumes(
    root: &Path,
    stem: &str,
    out: &Path,
    capacity: u64,
    zstd: bool,
    mtime: u64,
    key: &PrivateKey,
    id: &Sha256Digest,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    let order = crate::tarball::canonical_order(root)?;
    let (tags, payload): (Vec<String>, Vec<String>) =
        order.into_iter().partition(|p| !p.starts_with("data/"));
    let size_of = |p: &str| -> Result<u64> { Ok(fs_err::metadata(root.join(p))?.len()) };
    // Zstd never grows incompressible data by more than ~1/256 plus framing.
    let budget = if zstd {
        capacity.saturating_sub(4096) / 257 * 256
    } else {
        capacity
    };
    let fixed: u64 = tags
        .iter()
        .map(|p| size_of(p).map(blocks))
        .sum::<Result<u64>>()?
        + blocks(256)
        + 1024;
    let sizes: Vec<(String, u64)> = payload
        .iter()
        .map(|p| Ok((p.clone(), size_of(p)?)))
        .collect::<Result<_>>()?;

    // The map's own size depends on the plan; plan with placeholder digests
    // (they have a fixed length) until the reserved room suffices.
    let mut reserve = blocks(4096);
    let plan = loop {
        let room = budget.checked_sub(fixed + reserve).filter(|r| *r >= blocks(SPLIT_MIN.min(64 << 10))).ok_or_else(|| {
            Error::Usage(format!(
                "--volume-size {capacity} is too small: every volume carries the tag files and signatures ({} bytes) plus payload",
                fixed + reserve
            ))
        })?;
        let plan = plan_pieces(&sizes, room)?;
        let map = VolumeMap {
            bundle_id: id.hex(),
            volumes: plan.clone(),
        };
        let need = blocks(sign_map(key, id, &map).len() as u64);
        if need <= reserve {
            break plan;
        }
        reserve = need + 4096;
    };

    // Real digests: whole blobs are named by theirs; parts are hashed once.
    let mut plan = plan;
    for piece in plan.iter_mut().flatten() {
        if piece.part == 0 {
            piece.digest = match piece.path.strip_prefix(BLOBS_PREFIX) {
                Some(hex) => hex
                    .parse()
                    .map_err(|e| Error::Usage(format!("{}: {e}", piece.path)))?,
                None => Sha256Digest::of(&fs_err::read(root.join(&piece.path))?),
            };
        } else {
            let mut f = fs_err::File::open(root.join(&piece.path))?;
            f.seek(SeekFrom::Start(piece.offset))?;
            piece.digest =
                crate::digest::hash_reader(&mut f.take(piece.size), None, &|_| {})?.digest;
        }
    }
    let map = VolumeMap {
        bundle_id: id.hex(),
        volumes: plan,
    };
    let map_bytes = sign_map(key, id, &map);
    let total = map.volumes.len() as u32;
    let mut paths = Vec::new();
    progress.begin("writing volumes", sizes.iter().map(|s| s.1).sum());
    for (i, pieces) in map.volumes.iter().enumerate() {
        let number = i as u32 + 1;
        let name = format!(
            "{stem}.vol{number:03}.tar{}",
            if zstd { ".zst" } else { "" }
        );
        let tmp = out.join(format!(".{name}.tmp"));
        let file = io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&tmp)?);
        let write = |w: &mut dyn Write| -> Result<()> {
            let mut b = tar::Builder::new(w);
            for p in &tags {
                let mut f = fs_err::File::open(root.join(p))?;
                let len = f.metadata()?.len();
                crate::tarball::append(&mut b, p, len, MODE_FILE, mtime, &mut f)?;
            }
            crate::tarball::append(
                &mut b,
                MAP_FILE,
                map_bytes.len() as u64,
                MODE_FILE,
                mtime,
                &mut &map_bytes[..],
            )?;
            let marker = serde_json::to_vec(&Marker {
                bundle_id: id.hex(),
                number,
                of: total,
            })
            .expect("serializes");
            crate::tarball::append(
                &mut b,
                MARKER_FILE,
                marker.len() as u64,
                MODE_FILE,
                mtime,
                &mut &marker[..],
            )?;
            for piece in pieces {
                let mut f = fs_err::File::open(root.join(&piece.path))?;
                f.seek(SeekFrom::Start(piece.offset))?;
                let mut data = f.take(piece.size);
                crate::tarball::append(
                    &mut b,
                    &piece.entry_name(),
                    piece.size,
                    MODE_FILE,
                    mtime,
                    &mut data,
                )?;
                progress.advance(piece.size);
            }
            b.into_inner()?.flush()?;
            Ok(())
        };
        let file = if zstd {
            let mut enc = crate::tarball::zstd_encoder(file)?;
            write(&mut enc)?;
            enc.finish()?
        } else {
            let mut file = file;
            write(&mut file)?;
            file
        };
        let f = file.into_inner().map_err(|e| e.into_error())?;
        let len = f.metadata()?.len();
        if len > capacity {
            return Err(Error::Usage(format!(
                "internal error: volume {number} is {len} bytes, over the {capacity}-byte limit"
            )));
        }
        paths.push((tmp, out.join(name)));
    }
    progress.finish();
    for (tmp, path) in &paths {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; remove it or choose another --out",
                path.display()
            )));
        }
        fs_err::rename(tmp, path)?;
    }
    Ok(paths.into_iter().map(|p| p.1).collect())
}

/// Fills volumes in payload order; splits blobs larger than the room left.
fn plan_pieces(sizes: &[(String, u64)], room: u64) -> Result<Vec<Vec<Piece>>> {
    let placeholder = Sha256Digest::of(b"");
    let mut volumes: Vec<Vec<Piece>> = vec![vec![]];
    let mut used = 0u64;
    for (path, size) in sizes {
        let mut offset = 0u64;
        let mut part = 0u32;
        loop {
            let left = size - offset;
            let free = room - used;
            if blocks(left) <= free && part == 0 {
                volumes.last_mut().expect("one volume").push(Piece {
                    path: path.clone(),
                    part: 0,
                    offset: 0,
                    size: left,
                    total: *size,
                    digest: placeholder,
                });
                used += blocks(left);
                break;
            }
            let splittable = path.starts_with(BLOBS_PREFIX) && *size > SPLIT_MIN;
            if splittable && free >= blocks(64 << 10) {
                let take = if blocks(left) <= free {
                    left
                } else {
                    (free - 512) / 512 * 512
                };
                part += 1;
                volumes.last_mut().expect("one volume").push(Piece {
                    path: path.clone(),
                    part,
                    offset,
                    size: take,
                    total: *size,
                    digest: placeholder,
                });
                used += blocks(take);
                offset += take;
                if offset == *size {
                    break;
                }
            }
            if !splittable && blocks(left) > room {
                return Err(Error::Usage(format!(
                    "{path} ({size} bytes) does not fit in a volume; choose a larger --volume-size"
                )));
            }
            volumes.push(vec![]);
            used = 0;
        }
    }
    volumes.retain(|v| !v.is_empty());
    Ok(volumes)
}

fn sign_map(key: &PrivateKey, id: &Sha256Digest, map: &VolumeMap) -> Vec<u8> {
    let st = Statement {
        type_: STATEMENT_V1.into(),
        subject: vec![Subject::sha256(TAGMANIFEST, id)],
        predicate_type: MAP_PREDICATE.into(),
        predicate: map.clone(),
    };
    Envelope::sign(key, INTOTO_PAYLOAD_TYPE, &canonical_json(&st)).to_json()
}

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
    read: u64,
    stage: Option<(PathBuf, io::BufWriter<fs_err::File>)>,
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
) -> Result<(TagCheck, Report, HashMap<String, Vec<u8>>)> {
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
        crate::additions::merge(&mut tags, other.tags.clone(), &origin);
    }
    let form = crate::source::Form::Volumes {
        files: files.to_vec(),
    };
    tags.merge_additions(&form)?;
    let check = verify::check_tags(tags, policy, now);
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
            if h.tags.files.get(t) != check.tags.files.get(t) {
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
    let mut kept = HashMap::new();
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
    for (path, exp) in &plan {
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
                verify::staged_path(path, exp, staging),
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
        crate::source::walk_tar(&h.file, true, &mut vol_report, &mut |report, item| {
            let (name, size, entry) = match item {
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
                Item::Payload { path, size, read } => (path, size, read),
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
            let Some(exp) = plan.get(&piece.path).copied() else {
                report.add(&name, "in the volume map but not in manifest-sha256.txt");
                return Ok(Flow::Continue);
            };
            if piece.part == 0 {
                let mut pending = start_content(&piece.path, &exp);
                let (hsh, bytes) = verify::take_payload(
                    &piece.path,
                    &mut tap(entry, pending.as_mut().and_then(|p| p.probe())),
                    &exp,
                    staging,
                    progress,
                )?;
                if verify::judge(&piece.path, &exp, &hsh, report) {
                    done_paths.insert(piece.path.clone());
                    if let Some(b) = bytes {
                        kept.insert(piece.path.clone(), b);
                    }
                    if let (Some(c), Some(p)) = (&content, pending) {
                        report.merge(p.finish(c)?);
                    }
                }
                return Ok(Flow::Continue);
            }
            // A part: check it alone, and feed the whole blob if its parts arrive in order.
            if piece.part == 1 {
                let stage = match staging.filter(|s| !s.have.contains(&exp.digest)) {
                    Some(s) => {
                        let p = s.dir.join(format!("{}.part", exp.digest.hex()));
                        Some((
                            p.clone(),
                            io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&p)?),
                        ))
                    }
                    None => None,
                };
                open = Some(Open {
                    path: piece.path.clone(),
                    next_part: 1,
                    hasher: Sha256::new(),
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
                let mut tap = tap(entry, o.content.as_mut().and_then(|p| p.probe()));
                let hsh = match o.stage.as_mut() {
                    Some(s) => {
                        let mut w = HashingWriter::new(&mut s.1, &mut o.hasher);
                        copy_hashed(&mut tap, &mut w, Some(piece.size), &|n| progress.advance(n))?
                    }
                    None => {
                        let mut w = HashingWriter::new(io::sink(), &mut o.hasher);
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
                    if let Some((p, f)) = o.stage {
                        let f = f.into_inner().map_err(|e| e.into_error())?;
                        drop(f);
                        fs_err::rename(&p, p.with_extension(""))?;
                    }
                    if let (Some(c), Some(p)) = (&content, o.content) {
                        report.merge(p.finish(c)?);
                    }
                }
            }
            Ok(Flow::Continue)
        })?;
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
            if !done_paths.contains(path) {
                report.add(path, "not verified: its parts were not all read in order");
            }
        }
    }
    Ok((check, report, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4.7GB").unwrap(), 4_700_000_000);
        assert_eq!(parse_size("25GB").unwrap(), 25_000_000_000);
        assert_eq!(parse_size("700MiB").unwrap(), 700 * 1024 * 1024);
        assert_eq!(parse_size("1048576").unwrap(), 1_048_576);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn volume_names() {
        assert_eq!(
            parse_volume_name("a-1.0.0.vol003.tar"),
            Some(("a-1.0.0", 3))
        );
        assert_eq!(
            parse_volume_name("a-1.0.0.vol012.tar.zst"),
            Some(("a-1.0.0", 12))
        );
        assert_eq!(parse_volume_name("a-1.0.0.tar"), None);
    }

    #[test]
    fn planning_splits_big_blobs_and_respects_room() {
        let big = format!("{BLOBS_PREFIX}{}", "a".repeat(64));
        let sizes = vec![(OCI_LAYOUT.to_string(), 30), (big.clone(), 10 << 20)];
        let room = 3 << 20;
        let plan = plan_pieces(&sizes, room).unwrap();
        assert!(plan.len() >= 4);
        for v in &plan {
            assert!(v.iter().map(|p| blocks(p.size)).sum::<u64>() <= room);
        }
        let total: u64 = plan
            .iter()
            .flatten()
            .filter(|p| p.path == big)
            .map(|p| p.size)
            .sum();
        assert_eq!(total, 10 << 20);
        let parts: Vec<u32> = plan
            .iter()
            .flatten()
            .filter(|p| p.path == big)
            .map(|p| p.part)
            .collect();
        assert_eq!(parts, (1..=parts.len() as u32).collect::<Vec<_>>());
    }
}
