//! `airlock pack`: manifest → signed bundle.
//!
//! A directory bundle (or volumes): every input file is copied into the
//! bundle's blob store and the copy hashed, in parallel across files. A single
//! tar or tar.zst: every input read once, hashed (and compressed) on the way,
//! the tag files put in front at the end. Nothing is staged. Identical files
//! become one blob. The bundle is
//! built in a hidden staging directory beside the output and renamed into
//! place only when complete, so a failed pack leaves nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndexBuilder, ImageManifestBuilder, MediaType};
use rayon::prelude::*;

use crate::bundle::*;
use crate::digest::{Hashed, Sha256Digest};
use crate::error::{Error, Result};
use crate::keys::PrivateKey;
use crate::manifest::LoadedManifest;
use crate::progress::Progress;
use crate::sources::content::{precheck, Pre, Prechecked};
use crate::sources::{self, PlannedArtifact};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Format {
    #[value(name = "dir")]
    Dir,
    #[value(name = "tar")]
    Tar,
    #[value(name = "tar.zst")]
    TarZst,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Packed {
    pub id: String,
    /// The bundle directory or file; for volumes, the folder holding them.
    pub path: PathBuf,
    /// The volume files, in order (volumes only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
    pub name: String,
    pub version: String,
    pub artifacts: usize,
    pub blobs: usize,
    /// Bytes carried (for a delta: without the blobs the base provides).
    pub size: u64,
    /// Blobs left out because the base receipt says the high side holds them.
    pub omitted: usize,
    pub omitted_size: u64,
    /// Each image: its name, where it came from and the digest it resolved to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<sources::images::PackedImage>,
}

pub fn pack(
    m: &LoadedManifest,
    key: &PrivateKey,
    out: &Path,
    format: Format,
    volume_size: Option<u64>,
    progress: &dyn Progress,
) -> Result<Packed> {
    pack_delta(m, key, out, format, volume_size, None, progress)
}

/// `pack`, leaving out every blob `base` (a receipt from the high side) says
/// the high side's store holds. The description still declares every blob;
/// `airlock.json` records the receipt the delta was cut against.
pub fn pack_delta(
    m: &LoadedManifest,
    key: &PrivateKey,
    out: &Path,
    format: Format,
    volume_size: Option<u64>,
    base: Option<&crate::receipt::Base>,
    progress: &dyn Progress,
) -> Result<Packed> {
    let time = crate::clock::build_time()?;
    let created = crate::clock::rfc3339(time);
    let meta = &m.manifest.metadata;
    let stem = format!("{}-{}", meta.name, meta.version);
    let final_path = match format {
        Format::Dir => out.join(&stem),
        Format::Tar => out.join(format!("{stem}.tar")),
        Format::TarZst => out.join(format!("{stem}.tar.zst")),
    };
    if volume_size.is_none() && final_path.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; remove it or choose another --out",
            final_path.display()
        )));
    }
    fs_err::create_dir_all(out)?;

    // Staging first: python lock entries download into it (removed with it
    // if the pack fails).
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{stem}."))
        .tempdir_in(out)?;
    let mut refs = BTreeSet::new();
    let mut planned: Vec<PlannedArtifact> = Vec::new();
    for kind in sources::kind::KINDS {
        planned.extend(kind.plan(m, &mut refs, staging.path())?);
    }
    planned.extend(crate::sbom::plan_carried(m, &mut refs)?);

    let root = staging.path().join(&stem);
    let blobs_dir = root.join(BLOBS_PREFIX);
    fs_err::create_dir_all(&blobs_dir)?;
    // Images first: their blobs are fetched (perhaps over the network),
    // hashed and checked straight into the blob directory.
    let images = sources::images::fetch_all(m, &blobs_dir, &mut refs, progress)?;

    // Hash while copying, in parallel, each distinct source path once.
    let mut sources: Vec<&Path> = planned
        .iter()
        .flat_map(|a| a.files.iter().map(|f| f.src))
        .collect();
    sources.sort();
    sources.dedup();
    // A tar or tar.zst (not split into volumes) is written straight from the
    // inputs in one pass, in path order, each input read once, hashed as it
    // passes and written once (see `tarball::SinglePass`). Its tag files,
    // which carry every digest, come before the payload: they are put in
    // front at the end, without moving the payload where the filesystem can
    // insert a range.
    let stream = volume_size.is_none() && format != Format::Dir;
    // Each input's size, by position in `sources` (a directory bundle
    // chooses how to copy by it; a single tar only needs the total).
    // Measured on every core: one stat per input.
    let size_of = |p: &&Path| fs_err::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (sizes, total): (Vec<u64>, u64) = if stream {
        (Vec::new(), sources.par_iter().map(size_of).sum())
    } else {
        let sizes: Vec<u64> = sources.par_iter().map(size_of).collect();
        let total = sizes.iter().sum();
        (sizes, total)
    };
    let mtime = time.max(0) as u64;
    let tar_tmp = staging.path().join("out.tar");
    let mut single = None;
    progress.begin("packing", total);
    let chmod_needed = !umask_keeps(0o644);
    // What the pass checked of the bytes it held (small inputs).
    let mut pre = Prechecked::default();
    let hashed: Vec<Hashed> = if stream {
        let mut sp = crate::tarball::SinglePass::create(
            &tar_tmp,
            format == Format::TarZst,
            mtime,
            progress,
        )?;
        // A delta leaves out what the high side's store holds.
        let omit = |d: &Sha256Digest| base.is_some_and(|b| b.blobs.contains(d));
        // Each input once, in plan order (`first_uses` names them again in
        // that order for `check_unchanged`); the pass keeps each one's hash
        // by its position in `sources`.
        sp.reserve(sources.len());
        for (i, src) in first_uses(&planned, &sources) {
            // A small input is checked by content from the bytes the pass
            // read and hashed, as `pack_small` does for a directory: not
            // read again unless its path matters.
            let mut checked = Pre::Unchecked;
            let h = sp.add_input(i, src, &omit, &mut |bytes| {
                checked = precheck(bytes)?;
                Ok(())
            })?;
            pre.add(h.digest, checked);
        }
        // What the pass wrote is known again from the inputs' digests.
        let hashed = sp.end_inputs();
        assert_eq!(hashed.len(), sources.len(), "every input is added");
        single = Some(sp);
        hashed
    } else {
        let results: Vec<(Hashed, Pre)> = sources
            .par_iter()
            .enumerate()
            .map(|(i, src)| -> Result<(Hashed, Pre)> {
                if sizes[i] <= SMALL_INPUT {
                    if let Some(done) = pack_small(src, &blobs_dir, chmod_needed)? {
                        progress.advance(done.0.size);
                        return Ok(done);
                    }
                }
                let tmp = blobs_dir.join(format!(".in-{i}"));
                // The kernel copies the input once (copy_file_range; a clone on
                // filesystems that support it), then the staged copy, which
                // nothing else can change, is hashed: the digest is always that
                // of the bytes packed, even if the input changes meanwhile. No
                // fsync: a bundle is verified before use, and a pack cut short
                // by a crash is simply run again.
                fs_err::copy(src, &tmp)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
                }
                let h = crate::digest::hash_reader(&mut fs_err::File::open(&tmp)?, None, &|n| {
                    progress.advance(n)
                })?;
                fs_err::rename(&tmp, blobs_dir.join(h.digest.hex()))?;
                Ok((h, Pre::Unchecked))
            })
            .collect::<Result<_>>()?;
        let mut hashed = Vec::with_capacity(results.len());
        for (h, p) in results {
            pre.add(h.digest, p);
            hashed.push(h);
        }
        hashed
    };
    drop(sizes);
    // Each input's hash by its path: the sorted paths beside their hashes
    // (no map of every path).
    let hashed = sources::Hashes::new(sources, hashed);
    progress.finish();

    // Pins are checked against the bytes actually packed.
    for a in &planned {
        for f in &a.files {
            if let Some(&pin) = f.pin {
                let actual = hashed[f.src].digest;
                if actual != pin {
                    return Err(Error::PinMismatch {
                        path: f.src.to_path_buf(),
                        expected: pin,
                        actual,
                    });
                }
            }
        }
    }
    // Python and cargo packages: every file against its pins (one or several).
    let mut packages = sources::packages::finish(&planned, &|p| hashed[p].digest)?;
    // Weights and pickles, by content (see modelcheck): invalid safetensors,
    // GGUF or shard indexes refuse; pickles are scanned against the allowlist.
    let content = crate::sources::content::check_packed(
        &planned,
        &hashed,
        (!stream).then_some(blobs_dir.as_path()),
        m.manifest.policy.pickle,
        &pre,
    )?;
    drop(pre);
    // OpenSSF model-signing signatures (model.sig), against the manifest's keys.
    let signatures = sources::models::check_signatures(m, &planned, &hashed, &blobs_dir)?;
    let mut models = Vec::new();

    // A model's facts come from its files (config.json is read by path).
    let model_facts: Vec<Option<ModelFacts>> = planned
        .iter()
        .map(|a| {
            if a.kind != ArtifactKind::Model {
                return Ok(None);
            }
            let hf = a
                .files
                .iter()
                .find(|f| f.path == "config.json")
                .map(|f| fs_err::read(f.src))
                .transpose()?;
            Ok(Some(crate::sources::content::model_facts(
                a,
                &content,
                hf.as_deref(),
            )))
        })
        .collect::<Result<_>>()?;
    if let Some(single) = &mut single {
        // The checks above read some inputs again by path: refuse if any
        // changed since it went into the tar.
        single.check_unchanged(first_uses(&planned, hashed.paths()).map(|(_, p)| p))?;
        single.forget_seen();
    }
    // The planned files become the description's layers: each file's path
    // and media type move into its layer (never copied), and the plan is
    // freed artifact by artifact. Each file's hash is found by its input's
    // position (4 bytes a file) before the paths borrowed from the plan go.
    let file_hashes: Vec<u32> = planned
        .iter()
        .flat_map(|a| &a.files)
        .map(|f| {
            hashed
                .position(f.src)
                .expect("every planned input is hashed") as u32
        })
        .collect();
    let hashed = hashed.into_hashes();
    let mut next_file = 0usize;

    let write_blob = |bytes: &[u8]| -> Result<Sha256Digest> {
        let d = Sha256Digest::of(bytes);
        fs_err::write(blobs_dir.join(d.hex()), bytes)?;
        Ok(d)
    };

    let mut artifacts = Vec::new();
    let mut index_entries = Vec::new();
    // The planned artifacts come first in the description.
    let planned_count = planned.len();
    for (mut a, model_facts) in planned.into_iter().zip(model_facts) {
        // Taken from the back of the plan, which shrinks as it goes: the
        // plan's and the layers' lists are never both whole. The layers
        // are made last first, then put in order.
        let mut files = std::mem::take(&mut a.files);
        let first = next_file;
        next_file += files.len();
        let mut layers = Layers::with_capacity(files.len(), files.paths_len());
        let mut i = files.len();
        while files
            .pop_with(|f| {
                i -= 1;
                let h = hashed[file_hashes[first + i] as usize];
                layers.push_parts(f.media_type, h.digest, h.size, f.path, f.mode);
            })
            .is_some()
        {}
        layers.reverse();
        let a = &a;
        let config_bytes = match a.kind {
            ArtifactKind::Model => {
                let pairs: Vec<(String, Sha256Digest)> = layers
                    .iter()
                    .map(|l| (l.path.to_owned(), *l.digest))
                    .collect();
                let mut facts = model_facts.expect("computed for a model");
                facts.folder = m
                    .manifest
                    .models
                    .iter()
                    .map(|e| &e.name)
                    .find(|n| crate::manifest::model_artifact_name(n) == a.name && **n != a.name)
                    .cloned();
                facts.signature = signatures.get(&a.reference).cloned();
                facts.huggingface = sources::huggingface::origin(m, &a.name);
                let blob =
                    sources::models::config_blob(&a.name, &meta.version, &created, &pairs, &facts);
                models.push(facts);
                blob
            }
            ArtifactKind::Image => {
                unreachable!("images are fetched by sources::images, never planned")
            }
            _ => EMPTY_JSON.to_vec(),
        };
        let config_type = match a.kind {
            ArtifactKind::Model => MODEL_CONFIG,
            ArtifactKind::Image => {
                unreachable!("images are fetched by sources::images, never planned")
            }
            _ => MT_EMPTY,
        };
        let config = Blob {
            media_type: config_type.into(),
            digest: write_blob(&config_bytes)?,
            size: config_bytes.len() as u64,
        };
        // Written layer by layer into its blob file, hashed on the way: it
        // grows with the file count.
        let tmp = blobs_dir.join(".manifest");
        let (size, digest) =
            write_hashed(&tmp, &mut |w| write_oci_manifest(a, &config, &layers, w))?;
        fs_err::rename(&tmp, blobs_dir.join(digest.hex()))?;
        let manifest = Blob {
            media_type: MT_MANIFEST.into(),
            digest,
            size,
        };
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            manifest.size,
            oci_digest(&manifest.digest),
        );
        d.set_artifact_type(Some(MediaType::Other(a.artifact_type.clone())));
        d.set_annotations(Some(HashMap::from([(
            REF_NAME.to_string(),
            a.reference.clone(),
        )])));
        index_entries.push(d);
        artifacts.push(Artifact {
            kind: a.kind,
            name: a.name.clone(),
            reference: a.reference.clone(),
            artifact_type: a.artifact_type.clone(),
            manifest,
            config,
            layers,
            packages: packages.remove(&a.reference).unwrap_or_default(),
            source: None,
            blobs: Vec::new(),
        });
    }
    drop(file_hashes);
    drop(hashed);
    for a in images {
        let mut d = Descriptor::new(
            MediaType::from(a.manifest.media_type.as_str()),
            a.manifest.size,
            oci_digest(&a.manifest.digest),
        );
        d.set_annotations(Some(HashMap::from([
            (REF_NAME.to_string(), a.reference.clone()),
            (IMAGE_REFERENCE.to_string(), a.name.clone()),
            (IMAGE_DIGEST.to_string(), a.manifest.digest.oci()),
        ])));
        index_entries.push(d);
        artifacts.push(a);
    }
    let mut description = Description {
        api_version: "airlock/v1".into(),
        kind: DESCRIPTION_KIND.into(),
        name: meta.name.clone(),
        version: meta.version.clone(),
        description: meta.description.clone(),
        created: created.clone(),
        generator: format!("airlock {}", env!("CARGO_PKG_VERSION")),
        pickle: m.manifest.policy.pickle,
        artifacts,
        models,
        content,
        delta: None,
    };
    // The SBOMs (CycloneDX, SPDX) of everything above, as two more artifacts.
    index_entries.extend(crate::sbom::add_generated(&mut description, &blobs_dir)?);
    // Every distinct blob, by digest: a compact list (no media types), made
    // once. The payload is those the bundle carries, sorted by digest.
    // Made at its final size: no doubled capacity, no second copy.
    let mut blob_list: Vec<(Sha256Digest, u64)> = Vec::with_capacity(
        description
            .artifacts
            .iter()
            .map(|a| 2 + a.layers.len() + a.blobs.len())
            .sum(),
    );
    for a in &description.artifacts {
        blob_list.push((a.manifest.digest, a.manifest.size));
        blob_list.push((a.config.digest, a.config.size));
        blob_list.extend(a.layers.iter().map(|l| (*l.digest, l.size)));
        blob_list.extend(a.blobs.iter().map(|b| (b.digest, b.size)));
    }
    blob_list.sort_unstable_by_key(|b| b.0);
    blob_list.dedup_by_key(|b| b.0);
    let total_size = blob_list
        .iter()
        .fold(0u64, |sum, b| sum.saturating_add(b.1));
    let blob_count = blob_list.len();
    let mut omitted = (0usize, 0u64);
    // The payload is the list itself, less what a delta leaves out.
    let mut payload = blob_list;
    let mut left_out = Ok(());
    payload.retain(|&(d, size)| {
        if base.is_some_and(|b| b.blobs.contains(&d)) {
            // Provided by the high side's store: declared, not carried.
            // (Streamed inputs were never staged.)
            let staged = blobs_dir.join(d.hex());
            if left_out.is_ok() && (!stream || staged.exists()) {
                left_out = fs_err::remove_file(staged);
            }
            omitted = (omitted.0 + 1, omitted.1 + size);
            false
        } else {
            true
        }
    });
    left_out?;
    if let Some(b) = base {
        description.delta = Some(DeltaBase {
            receipt: b.digest,
            store_id: b.store_id.clone(),
            store_key: b.store_key.clone(),
            time: b.time.clone(),
            omitted: omitted.0,
            omitted_size: omitted.1,
        });
    }

    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_entries)
        .build()
        .map_err(|e| Error::Usage(format!("cannot build OCI index: {e}")))?;
    let index_bytes = canonical_json(&index);
    fs_err::write(root.join(OCI_INDEX), &index_bytes)?;
    fs_err::write(root.join(OCI_LAYOUT), OCI_LAYOUT_CONTENT)?;
    // The payload files besides the blobs.
    let payload_files: BTreeMap<String, Sha256Digest> = BTreeMap::from([
        (OCI_INDEX.to_string(), Sha256Digest::of(&index_bytes)),
        (
            OCI_LAYOUT.to_string(),
            Sha256Digest::of(OCI_LAYOUT_CONTENT.as_bytes()),
        ),
    ]);

    // Tag files.
    let oxum_bytes: u64 =
        total_size - omitted.1 + index_bytes.len() as u64 + OCI_LAYOUT_CONTENT.len() as u64;
    // airlock.json and manifest-sha256.txt grow with the file count: each
    // is written straight into its file, hashed and measured on the way,
    // never held as bytes. The small tag files are.
    let tags: Vec<(&str, Vec<u8>)> = vec![
        (BAGIT_TXT, BAGIT_CONTENT.as_bytes().to_vec()),
        (
            BAG_INFO,
            bag_info(
                &description,
                time,
                oxum_bytes,
                payload.len() + payload_files.len(),
            )
            .into_bytes(),
        ),
        (
            VERIFY_TXT,
            verify_txt(&meta.name, &meta.version).into_bytes(),
        ),
    ];
    let mut written: BTreeMap<&str, (u64, Sha256Digest)> = BTreeMap::new();
    for (name, bytes) in &tags {
        fs_err::write(root.join(name), bytes)?;
        written.insert(*name, (bytes.len() as u64, Sha256Digest::of(bytes)));
    }
    drop(tags);
    written.insert(
        DESCRIPTION,
        write_hashed(&root.join(DESCRIPTION), &mut |w| {
            crate::bundle::write_description(w, &description).map_err(std::io::Error::from)
        })?,
    );
    written.insert(
        MANIFEST,
        write_hashed(&root.join(MANIFEST), &mut |w| {
            write_payload_manifest(&payload, &payload_files, w)
        })?,
    );
    // The high side reads the tag area within fixed bounds (`source::TagSet`);
    // never make a bundle it would refuse for size (the staging directory
    // holding what was written goes with the error).
    let mut bounds = crate::source::TagSet::default();
    for name in [BAGIT_TXT, BAG_INFO, DESCRIPTION, VERIFY_TXT, MANIFEST] {
        if let Err(e) = bounds.admit(crate::source::place_of(name), written[name].0) {
            return Err(Error::Usage(format!(
                "{name} would be {e}; the high side would refuse this bundle. Shorten the manifest's metadata, or split the content into several bundles"
            )));
        }
    }
    let tag_entries: BTreeMap<String, Sha256Digest> = written
        .iter()
        .map(|(name, (_, digest))| (name.to_string(), *digest))
        .collect();
    let tagmanifest = render_manifest(&tag_entries).into_bytes();
    fs_err::write(root.join(TAGMANIFEST), &tagmanifest)?;
    let id = Sha256Digest::of(&tagmanifest);

    fs_err::create_dir_all(root.join(SIGNATURES_DIR))?;
    for (path, bytes) in crate::signing::sign(key, &meta.name, &meta.version, &tagmanifest) {
        fs_err::write(root.join(path), bytes)?;
    }
    fs_err::create_dir_all(root.join(CUSTODY_DIR))?;
    let (path, bytes) = crate::custody::new_event(&BTreeMap::new(), key, "packed", None, &id, time);
    fs_err::write(root.join(path), bytes)?;

    let size = total_size - omitted.1;
    let mut paths = Vec::new();
    match (format, volume_size) {
        (_, Some(capacity)) => {
            let zstd = format == Format::TarZst;
            paths = crate::volumes::write_volumes(
                &root,
                &stem,
                out,
                capacity,
                zstd,
                time.max(0) as u64,
                key,
                &id,
                progress,
            )?;
        }
        (Format::Dir, None) => fs_err::rename(&root, &final_path)?,
        (Format::Tar | Format::TarZst, None) => {
            // Blobs in path order (each artifact's files as listed, then the
            // rest by digest): neighbouring files compress together.
            let head = crate::tarball::head_order(&root)?;
            // Each payload blob once, in that order (`payload` is sorted);
            // only what the pass did not write yet is named (no list of
            // every blob). The pass wrote every input's digest the bundle
            // carries: the planned artifacts' layers, placed first.
            let single = single.expect("a tar is packed in one pass");
            let mut placed = vec![false; payload.len()];
            let at = |d: &Sha256Digest| payload.binary_search_by_key(d, |b| b.0).ok();
            let inputs = description.artifacts[..planned_count].iter();
            for l in inputs.flat_map(|a| &a.layers) {
                if let Some(i) = at(l.digest) {
                    placed[i] = true;
                }
            }
            let layers = description.artifacts.iter().flat_map(|a| &a.layers);
            let mut rest: Vec<String> = Vec::new();
            for d in layers.map(|l| *l.digest).chain(payload.iter().map(|b| b.0)) {
                if let Some(i) = at(&d) {
                    if !std::mem::replace(&mut placed[i], true) {
                        rest.push(blob_path(&d));
                    }
                }
            }
            drop(placed);
            single.finish(&root, &head, &rest, &tar_tmp, &final_path)?;
        }
    }
    Ok(Packed {
        id: id.hex(),
        path: if paths.is_empty() {
            final_path
        } else {
            out.to_path_buf()
        },
        paths,
        name: meta.name.clone(),
        version: meta.version.clone(),
        artifacts: description.artifacts.len(),
        blobs: blob_count,
        size,
        omitted: omitted.0,
        omitted_size: omitted.1,
        images: description
            .artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::Image)
            .map(|a| sources::images::PackedImage {
                name: a.name.clone(),
                source: a.source.clone().unwrap_or_default(),
                digest: a.manifest.digest.oci(),
                reference: a.reference.clone(),
            })
            .collect(),
    })
}

pub(crate) use crate::bundle::oci_digest;

/// Each distinct input in plan order, at its first use, with its position
/// in `sources` (the inputs sorted, without duplicates): the order the
/// single pass reads them, named again without a list of paths.
fn first_uses<'p>(
    planned: &'p [PlannedArtifact],
    sources: &'p [&'p Path],
) -> impl Iterator<Item = (usize, &'p Path)> + 'p {
    let mut seen = vec![false; sources.len()];
    planned.iter().flat_map(|a| &a.files).filter_map(move |f| {
        let i = sources
            .binary_search(&f.src)
            .expect("every planned input is listed");
        (!std::mem::replace(&mut seen[i], true)).then_some((i, f.src))
    })
}

/// Inputs up to this size are packed by `pack_small`.
const SMALL_INPUT: u64 = crate::digest::COPY_BUFFER as u64;

thread_local! {
    static SMALL_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Packs a small input: read once into memory, hashed, and written straight
/// to its blob name in the bundle's staging directory, created with its
/// mode (0644). Nothing else in the directory is renamed or probed: the
/// whole bundle is renamed into place only when complete, so a blob cut
/// short by a failure is never seen under a final path. An input whose
/// content is already there (the same bytes from another path) is not
/// written again. `None` when the input has grown past `SMALL_INPUT` since
/// it was measured: the caller copies it as a large one.
fn pack_small(src: &Path, blobs_dir: &Path, chmod: bool) -> Result<Option<(Hashed, Pre)>> {
    use std::io::Write;
    SMALL_BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        let Some(n) = read_small(src, &mut buf)? else {
            return Ok(None);
        };
        let bytes = &buf[..n];
        let digest = Sha256Digest::of(bytes);
        let h = Hashed {
            digest,
            size: n as u64,
        };
        // The content check, on the bytes just hashed (see `precheck`).
        let pre = precheck(bytes)?;
        let dest = blobs_dir.join(digest.hex());
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o644);
        let mut out = match fs_err::OpenOptions::from_options(open).open(&dest) {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Some((h, pre))),
            Err(e) => return Err(e.into()),
        };
        out.write_all(bytes)?;
        #[cfg(unix)]
        if chmod {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        let _ = chmod;
        Ok(Some((h, pre)))
    })
}

/// Reads `src` whole into `buf` (the thread's small-input buffer) and
/// returns its length; `None` if it is larger than `SMALL_INPUT`.
fn read_small(src: &Path, buf: &mut Vec<u8>) -> Result<Option<usize>> {
    use std::io::Read;
    if buf.is_empty() {
        buf.resize(SMALL_INPUT as usize + 1, 0);
    }
    let mut f = fs_err::File::open(src)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((n as u64 <= SMALL_INPUT).then_some(n))
}

/// Whether the process umask leaves every bit of `mode` to a new file (read
/// from /proc, since umask(2) cannot be read without changing it).
fn umask_keeps(mode: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .is_some_and(|umask| umask & mode == 0)
}

/// The payload manifest (`manifest-sha256.txt`) of the blobs `blobs`
/// (sorted by digest) and the other payload files `files`: the lines
/// [`write_manifest`] writes, sorted by path, without a map of every path.
fn write_payload_manifest(
    blobs: &[(Sha256Digest, u64)],
    files: &BTreeMap<String, Sha256Digest>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut files = files.iter().peekable();
    for (d, _) in blobs {
        let path = blob_path(d);
        while let Some((p, fd)) = files.next_if(|(p, _)| p.as_str() < path.as_str()) {
            write_manifest(&BTreeMap::from([(p.clone(), *fd)]), w)?;
        }
        write_manifest(&BTreeMap::from([(path, *d)]), w)?;
    }
    for (p, fd) in files {
        write_manifest(&BTreeMap::from([(p.clone(), *fd)]), w)?;
    }
    Ok(())
}

/// Writes the file `path` through `render`, hashing it on the way; returns
/// its size and digest.
fn write_hashed(
    path: &Path,
    render: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(u64, Sha256Digest)> {
    use sha2::Digest as _;
    use std::io::Write as _;
    let mut hasher = sha2::Sha256::new();
    let mut w = std::io::BufWriter::with_capacity(
        1 << 16,
        crate::digest::HashingWriter::new(fs_err::File::create(path)?, &mut hasher),
    );
    render(&mut w)?;
    w.flush()?;
    drop(w);
    let size = fs_err::metadata(path)?.len();
    Ok((size, Sha256Digest::of_raw(hasher.finalize().into())))
}

#[cfg(test)]
fn oci_manifest(a: &PlannedArtifact, config: &Blob, layers: &Layers) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_oci_manifest(a, config, layers, &mut out)?;
    Ok(out)
}

/// Writes an artifact's OCI manifest (canonical JSON) into `out`.
fn write_oci_manifest(
    a: &PlannedArtifact,
    config: &Blob,
    layers: &Layers,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let config_desc = Descriptor::new(
        MediaType::from(config.media_type.as_str()),
        config.size,
        oci_digest(&config.digest),
    );
    let layer_desc = |l: LayerRef<'_>| {
        let mut d = Descriptor::new(
            MediaType::Other(l.media_type.to_string()),
            l.size,
            oci_digest(l.digest),
        );
        let mut ann = HashMap::from([(TITLE.to_string(), l.path.to_owned())]);
        match a.kind {
            ArtifactKind::Model => {
                ann.insert(MODEL_FILEPATH.to_string(), l.path.to_owned());
            }
            ArtifactKind::Sbom | ArtifactKind::Image => {}
            // Files and packages: exported with their mode.
            _ => {
                ann.insert(FILE_MODE.to_string(), format!("{:04o}", l.mode));
            }
        }
        d.set_annotations(Some(ann));
        d
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(a.artifact_type.clone()))
        .config(config_desc)
        .layers(Vec::new())
        .build()
        .map_err(|e| {
            std::io::Error::other(format!("cannot build OCI manifest for {}: {e}", a.name))
        })?;
    // The layers are written into the empty `layers` array one at a time,
    // each in canonical form: a manifest of many files is never held as
    // descriptors or as a JSON tree. (`"layers":[]` occurs once: inside a
    // JSON string every quote is escaped.)
    let shell = canonical_json(&manifest);
    const EMPTY: &[u8] = b"\"layers\":[]";
    let at = shell
        .windows(EMPTY.len())
        .position(|w| w == EMPTY)
        .expect("a manifest has its layers")
        + EMPTY.len()
        - 1;
    out.write_all(&shell[..at])?;
    for (i, l) in layers.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(&canonical_json(&layer_desc(l)))?;
    }
    out.write_all(&shell[at..])
}

fn bag_info(d: &Description, time: i64, octets: u64, count: usize) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Bag-Software-Agent: airlock {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(&format!("Bagging-Date: {}\n", crate::clock::date(time)));
    s.push_str(&format!("External-Identifier: {}\n", d.stem()));
    if let Some(desc) = &d.description {
        s.push_str(&format!(
            "External-Description: {}\n",
            desc.replace('\n', " ")
        ));
    }
    s.push_str(&format!("Payload-Oxum: {octets}.{count}\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest written layer by layer is the canonical JSON of the
    /// whole manifest, for each kind's annotations and for no layers.
    #[test]
    fn oci_manifest_layer_by_layer_is_the_canonical_json_of_the_whole() {
        let config = Blob {
            media_type: MT_EMPTY.into(),
            digest: Sha256Digest::of(EMPTY_JSON),
            size: EMPTY_JSON.len() as u64,
        };
        let layers: Vec<Layer> = (0..3)
            .map(|i| Layer {
                media_type: format!("text/x-{i}").into(),
                digest: Sha256Digest::of(&[i as u8]),
                size: i,
                path: format!("dir/\"layers\":[]-{i}.txt"),
                mode: if i == 1 { MODE_EXEC } else { MODE_FILE },
            })
            .collect();
        for kind in [ArtifactKind::Files, ArtifactKind::Model, ArtifactKind::Sbom] {
            let a = PlannedArtifact {
                kind,
                name: "x".into(),
                reference: "files/x".into(),
                artifact_type: "application/vnd.example+type".into(),
                files: Default::default(),
                packages: Vec::new(),
            };
            for n in [0, 1, 3] {
                let whole = ImageManifestBuilder::default()
                    .schema_version(2u32)
                    .media_type(MediaType::ImageManifest)
                    .artifact_type(MediaType::Other(a.artifact_type.clone()))
                    .config(Descriptor::new(
                        MediaType::from(config.media_type.as_str()),
                        config.size,
                        oci_digest(&config.digest),
                    ))
                    .layers(
                        layers[..n]
                            .iter()
                            .map(|l| {
                                let mut d = Descriptor::new(
                                    MediaType::Other(l.media_type.to_string()),
                                    l.size,
                                    oci_digest(&l.digest),
                                );
                                let mut ann = HashMap::from([(TITLE.to_string(), l.path.clone())]);
                                match kind {
                                    ArtifactKind::Model => {
                                        ann.insert(MODEL_FILEPATH.to_string(), l.path.clone());
                                    }
                                    ArtifactKind::Sbom => {}
                                    _ => {
                                        ann.insert(
                                            FILE_MODE.to_string(),
                                            format!("{:04o}", l.mode),
                                        );
                                    }
                                }
                                d.set_annotations(Some(ann));
                                d
                            })
                            .collect::<Vec<_>>(),
                    )
                    .build()
                    .unwrap();
                let streamed = oci_manifest(&a, &config, &layers[..n].to_vec().into()).unwrap();
                assert_eq!(
                    String::from_utf8(streamed).unwrap(),
                    String::from_utf8(canonical_json(&whole)).unwrap(),
                    "{kind:?}, {n} layer(s)"
                );
            }
        }
    }
}
