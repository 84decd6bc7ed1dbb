//! The build side's content checks of planned artifacts: every packed blob of
//! a model or file set checked by `modelcheck` (read back from the staging
//! directory, so what is checked is exactly what was packed), and each
//! model's summary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use rayon::prelude::*;

use super::PlannedArtifact;
use crate::bundle::{ArtifactKind, ContentEntry, ModelFacts, PicklePolicy};
use crate::digest::{Hashed, Sha256Digest};
use crate::error::{Report, Result};
use crate::modelcheck::{check_path, summarize, Checked, Use};

/// The build side: checks every distinct packed blob of the model and
/// file-set artifacts (read back from `blobs_dir` when the blobs are staged
/// there, so what is checked is exactly what was packed; otherwise from the
/// input, which the tar writer hashes again as it packs it) and returns what
/// was found, per file. Problems refuse the pack, each naming the input file.
pub fn check_packed(
    planned: &[PlannedArtifact],
    hashed: &HashMap<&Path, Hashed>,
    blobs_dir: Option<&Path>,
    pickle: PicklePolicy,
) -> Result<Vec<ContentEntry>> {
    let mut siblings: Vec<BTreeSet<String>> = Vec::new();
    let mut by_digest: BTreeMap<Sha256Digest, Vec<(usize, usize)>> = BTreeMap::new();
    for (ai, a) in planned.iter().enumerate() {
        siblings.push(a.files.iter().map(|f| f.path.clone()).collect());
        if !matches!(a.kind, ArtifactKind::Model | ArtifactKind::Files) {
            continue;
        }
        for (fi, f) in a.files.iter().enumerate() {
            if let Some(h) = hashed.get(f.src.as_path()) {
                by_digest.entry(h.digest).or_default().push((ai, fi));
            }
        }
    }
    let jobs: Vec<(&Sha256Digest, &Vec<(usize, usize)>)> = by_digest.iter().collect();
    type Job<'a> = (Sha256Digest, &'a Vec<(usize, usize)>, Checked);
    // Only what found something is kept (facts or a problem): a tree of
    // many plain files keeps nothing per file.
    let results: Vec<Job> = jobs
        .par_iter()
        .filter_map(|(d, users)| {
            let uses: Vec<Use> = users
                .iter()
                .map(|(ai, fi)| Use {
                    path: &planned[*ai].files[*fi].path,
                    siblings: &siblings[*ai],
                })
                .collect();
            let src = planned[users[0].0].files[users[0].1].src.as_path();
            let size = hashed[src].size;
            let at = blobs_dir.map_or_else(|| src.to_path_buf(), |dir| dir.join(d.hex()));
            match check_path(&at, size, &uses) {
                Ok(Checked {
                    facts: None,
                    invalid: None,
                }) => None,
                Ok(checked) => Some(Ok((**d, *users, checked))),
                Err(e) => Some(Err(e.into())),
            }
        })
        .collect::<Result<_>>()?;
    let mut report = Report::default();
    let mut entries = Vec::new();
    for (_, users, checked) in results {
        let problems = checked.problems(
            &pickle.into(),
            "set policy: {pickle: allow} in the manifest to pack it anyway",
        );
        for (ai, fi) in users {
            let (a, f) = (&planned[*ai], &planned[*ai].files[*fi]);
            for p in &problems {
                report.add(f.src.display().to_string(), p.clone());
            }
            if let Some(facts) = &checked.facts {
                entries.push(ContentEntry {
                    artifact: a.reference.clone(),
                    path: f.path.clone(),
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
    let paths: Vec<String> = a.files.iter().map(|f| f.path.clone()).collect();
    summarize(&a.reference, &a.name, &paths, &mine, hf_config)
}
