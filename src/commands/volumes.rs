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

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::*;
use crate::digest::Sha256Digest;
use crate::dsse::{Envelope, Statement, Subject, INTOTO_PAYLOAD_TYPE, STATEMENT_V1};
use crate::error::{Error, Result};
use crate::keys::PrivateKey;
use crate::progress::Progress;

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

    // Real digests: whole blobs are named by theirs; parts are hashed once,
    // in parallel.
    let mut plan = plan;
    {
        use rayon::prelude::*;
        let mut pieces: Vec<&mut Piece> = plan.iter_mut().flatten().collect();
        pieces.par_iter_mut().try_for_each(|piece| -> Result<()> {
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
            Ok(())
        })?;
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
