//! The build side's content checks of planned artifacts: every packed blob of
//! a model or file set checked by `modelcheck` (read back from the staging
//! directory, so what is checked is exactly what was packed), and each
//! model's summary.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use super::PlannedArtifact;
use crate::bundle::{ArtifactKind, ContentEntry, ModelFacts, PicklePolicy};
use crate::digest::Sha256Digest;
use crate::error::{Report, Result};
use crate::modelcheck::{check_path, summarize, Checked, Use};

/// What the hashing pass found when it checked an input's bytes itself (a
/// small input, held in memory to be hashed): checked with no uses, which
/// is the whole check of a file whose paths do not matter
/// ([`crate::modelcheck::path_matters`]).
pub enum Pre {
    /// Nothing found.
    Clean,
    Found(Box<Checked>),
    /// Not checked in the pass (a large input): read back when checked.
    Unchecked,
}

/// Checks bytes held in memory (exactly those hashed) with no uses.
pub fn precheck(bytes: &[u8]) -> std::io::Result<Pre> {
    let checked =
        crate::modelcheck::check(&mut std::io::Cursor::new(bytes), bytes.len() as u64, &[])?;
    Ok(match checked {
        Checked {
            facts: None,
            invalid: None,
        } => Pre::Clean,
        c => Pre::Found(Box::new(c)),
    })
}

/// The outcomes of [`precheck`] by digest. Compact for a tree of many
/// plain files: only what found something, and the digests left unchecked,
/// are kept.
#[derive(Default)]
pub struct Prechecked {
    any: bool,
    found: HashMap<Sha256Digest, Checked>,
    unchecked: HashSet<Sha256Digest>,
}

impl Prechecked {
    pub fn add(&mut self, digest: Sha256Digest, pre: Pre) {
        self.any = true;
        match pre {
            Pre::Clean => {}
            Pre::Found(c) => {
                self.found.insert(digest, *c);
            }
            Pre::Unchecked => {
                self.unchecked.insert(digest);
            }
        }
    }

    /// The pass's outcome for `digest`, if the pass checked it.
    fn get(&self, digest: &Sha256Digest) -> Option<Checked> {
        if !self.any || self.unchecked.contains(digest) {
            return None;
        }
        Some(self.found.get(digest).cloned().unwrap_or_default())
    }
}

/// The build side: checks every distinct packed blob of the model and
/// file-set artifacts and returns what was found, per file. A blob the
/// hashing pass checked in memory (`pre`) is not read again unless one of
/// its paths matters to the check; any other is read back from `blobs_dir`
/// when the blobs are staged there, so what is checked is exactly what was
/// packed; otherwise from the input, which a single tar's pass then finds
/// unchanged since it hashed it (`SinglePass::check_unchanged`) or refuses.
/// Problems refuse the pack, each naming the input file.
pub fn check_packed(
    planned: &[PlannedArtifact],
    hashed: &super::Hashes,
    blobs_dir: Option<&Path>,
    pickle: PicklePolicy,
    pre: &Prechecked,
) -> Result<Vec<ContentEntry>> {
    // An artifact's paths are only read for a shard index: a tree without
    // one holds no second copy of its paths.
    let none = BTreeSet::new();
    let siblings: Vec<Option<BTreeSet<String>>> = planned
        .iter()
        .map(|a| {
            a.files
                .iter()
                .any(|f| crate::modelcheck::reads_siblings(f.path))
                .then(|| a.files.iter().map(|f| f.path.to_string()).collect())
        })
        .collect();
    // (input, artifact, file), sorted by the input's digest: each digest's
    // users are a run. Made at its final size (no second copy while it
    // grows), the digest looked up by the input's position (12 bytes a
    // file).
    let checked_kind =
        |a: &&PlannedArtifact| matches!(a.kind, ArtifactKind::Model | ArtifactKind::Files);
    let mut by_digest: Vec<(u32, u32, u32)> = Vec::with_capacity(
        planned
            .iter()
            .filter(checked_kind)
            .map(|a| a.files.len())
            .sum(),
    );
    for (ai, a) in planned.iter().enumerate() {
        if !checked_kind(&a) {
            continue;
        }
        for (fi, f) in a.files.iter().enumerate() {
            if let Some(i) = hashed.position(f.src) {
                by_digest.push((i as u32, ai as u32, fi as u32));
            }
        }
    }
    let digest = |i: u32| hashed.at(i as usize).digest;
    by_digest.sort_unstable_by_key(|&(i, ai, fi)| (digest(i), ai, fi));
    type Job<'a> = (&'a [(u32, u32, u32)], Checked);
    // Only what found something is kept (facts or a problem): a tree of
    // many plain files keeps nothing per file. The runs are handed out as
    // they are found (no list of them).
    let results: Vec<Job> = by_digest
        .par_chunk_by(|x, y| digest(x.0) == digest(y.0))
        .filter_map(|users| {
            let d = digest(users[0].0);
            let file = |ai: u32, fi: u32| planned[ai as usize].files.get(fi as usize);
            let uses: Vec<Use> = users
                .iter()
                .map(|(_, ai, fi)| Use {
                    path: file(*ai, *fi).path,
                    siblings: siblings[*ai as usize].as_ref().unwrap_or(&none),
                })
                .collect();
            let checked = match pre.get(&d) {
                Some(c) if !uses.iter().any(|u| crate::modelcheck::path_matters(u.path)) => Ok(c),
                _ => {
                    let src = file(users[0].1, users[0].2).src;
                    let size = hashed.at(users[0].0 as usize).size;
                    let at = blobs_dir.map_or_else(|| src.to_path_buf(), |dir| dir.join(d.hex()));
                    check_path(&at, size, &uses)
                }
            };
            match checked {
                Ok(Checked {
                    facts: None,
                    invalid: None,
                }) => None,
                Ok(checked) => Some(Ok((users, checked))),
                Err(e) => Some(Err(e.into())),
            }
        })
        .collect::<Result<_>>()?;
    let mut report = Report::default();
    let mut entries = Vec::new();
    for (users, checked) in results {
        let problems = checked.problems(
            &pickle.into(),
            "set policy: {pickle: allow} in the manifest to pack it anyway",
        );
        for (_, ai, fi) in users {
            let a = &planned[*ai as usize];
            let f = a.files.get(*fi as usize);
            for p in &problems {
                report.add(f.src.display().to_string(), p.clone());
            }
            if let Some(facts) = &checked.facts {
                entries.push(ContentEntry {
                    artifact: a.reference.clone(),
                    path: f.path.to_string(),
                    facts: facts.clone(),
                });
            }
        }
    }
    report.into_result()?;
    entries.sort_by(|x, y| (&x.artifact, &x.path).cmp(&(&y.artifact, &y.path)));
    Ok(entries)
}

/// A planned model's summary from the content found in its files.
pub fn model_facts(
    a: &PlannedArtifact,
    content: &[ContentEntry],
    hf_config: Option<&[u8]>,
) -> ModelFacts {
    let mine: Vec<&ContentEntry> = content
        .iter()
        .filter(|c| c.artifact == a.reference)
        .collect();
    let paths: Vec<String> = a.files.iter().map(|f| f.path.to_string()).collect();
    summarize(&a.reference, &a.name, &paths, &mine, hf_config)
}
