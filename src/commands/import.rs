//! `airlock import`: verification (`verify`) feeding the store's crash-safe
//! commit (`store`). The store itself never verifies: it is told what to
//! commit. Everything here runs under the store's lock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::bundle::*;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::policy::TrustPolicy;
use crate::progress::Progress;
use crate::source::Form;
use crate::store::*;
use crate::verify::{self, Staging, Verified};

impl Store {
    /// Verifies `bundle` against `policy` and imports it.
    pub fn import(
        &self,
        bundle: &[PathBuf],
        policy: &TrustPolicy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<Imported> {
        if opts.receipt.is_some() && opts.key.is_none() {
            return Err(Error::Usage(
                "--receipt needs --key: a receipt is signed by the high side's key".into(),
            ));
        }
        let form = Form::open_all(bundle)?;
        let (_lock, l) = self.open_write()?;
        match self.import_locked(&form, &l, policy, opts, progress) {
            Ok(done) => {
                if let (Some(key), Some(path)) = (opts.key, &opts.receipt) {
                    let rec = self
                        .record(&done.name, &done.version)?
                        .expect("just imported");
                    let d = self.description(&rec)?;
                    let id: Sha256Digest = rec.id.parse().expect("ids are digests");
                    let blobs = d.blobs().into_keys().collect();
                    let bytes = crate::receipt::make(
                        key,
                        &d.name,
                        &d.version,
                        &id,
                        blobs,
                        crate::clock::now(),
                    );
                    fs_err::write(path, bytes)?;
                }
                Ok(done)
            }
            Err(e) if e.is_refusal() => {
                let tags = verify::read_tags(&form).ok();
                let desc = tags
                    .as_ref()
                    .and_then(|t| t.files.get(DESCRIPTION))
                    .and_then(|b| serde_json::from_slice::<Description>(b).ok());
                let id = tags
                    .as_ref()
                    .and_then(|t| t.files.get(TAGMANIFEST))
                    .map(|b| Sha256Digest::of(b).hex());
                let detail = format!("refused {}: {}", form.path().display(), e);
                let l = self.read_ledger()?;
                self.append_locked(
                    &l,
                    "refuse",
                    id,
                    desc.as_ref().map(|d| (d.name.clone(), d.version.clone())),
                    &detail,
                )?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn import_locked(
        &self,
        form: &Form,
        l: &Ledger,
        policy: &TrustPolicy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<Imported> {
        let allow_downgrade = opts.allow_downgrade;
        // Tag files first: nothing is written unless they verify.
        let pre = verify::precheck(form, policy, crate::clock::now())?;
        pre.check.report.clone().into_result()?;
        let d = pre
            .check
            .description
            .as_ref()
            .expect("verified tags have a description");
        if let Some(existing) = self.record(&d.name, &d.version)? {
            if existing.id == pre.check.id.hex() {
                let from_base = d.delta.as_ref().map(|_| pre.check.omitted.len());
                // Nothing to write, but this copy must still verify in full:
                // a damaged or tampered copy is refused, never reported imported.
                verify::verify_with_base(form, policy, None, None, progress, Some(pre))?;
                return Ok(Imported {
                    id: existing.id,
                    name: existing.name,
                    version: existing.version,
                    already_present: true,
                    blobs_written: 0,
                    from_base,
                    store: self.root.clone(),
                });
            }
            return Err(Error::Refused(format!(
                "{} {} is already imported with a different id ({}); a version is imported once — publish a new version",
                d.name, d.version, existing.id
            )));
        }
        // A delta: cut against this store's receipt, and everything it
        // leaves out must be here; else refuse before anything is written.
        if let Some(delta) = &d.delta {
            if let Some(want) = &delta.store_id {
                let ours = self.meta.store_id()?;
                if ours.as_deref() != Some(want.as_str()) {
                    return Err(Error::Refused(format!(
                        "{} {} is a delta cut against a receipt of store {want}, but this store is {}; \
                         import it into that store, or pack a full bundle (or a delta against `airlock store receipt --store {}`)",
                        d.name,
                        d.version,
                        ours.map_or("without an identity (it never issued a receipt)".to_string(), |o| format!("store {o}")),
                        self.root.display()
                    )));
                }
            }
            let mut report = crate::error::Report::default();
            for (digest, (_, size)) in &pre.check.omitted {
                if !self.blobs.has(digest)? {
                    report.add(
                        blob_path(digest),
                        format!(
                            "missing from store {}: the delta leaves it ({size} bytes) to the base (receipt {}), \
                             but the store does not hold it; pack a full bundle, or a delta against a fresh `airlock store receipt`",
                            self.root.display(),
                            delta.receipt.oci()
                        ),
                    );
                }
            }
            report.into_result()?;
        }
        let version = semver::Version::parse(&d.version).expect("checked");
        let newest = self
            .records_committed(l)?
            .into_iter()
            .filter(|r| r.name == d.name)
            .filter_map(|r| semver::Version::parse(&r.version).ok())
            .max();
        let downgrade = newest.as_ref().is_some_and(|n| version < *n);
        if downgrade && !allow_downgrade {
            return Err(Error::Refused(format!(
                "{} {} is older than {} already imported; refusing a downgrade (pass --allow-downgrade to import it anyway)",
                d.name,
                d.version,
                newest.expect("set")
            )));
        }

        let staging = self.meta.staging()?;
        // Tags that verified declare exactly the blobs they list (the
        // plan's, sorted) and, for a delta, those left out (all in the
        // store: checked above): asked of the plan's own Vec, not a copy
        // of every declared digest (held beside the description, the plan
        // and a directory's listing, 6.4 MB at 200k files).
        let planned = pre
            .check
            .plan
            .as_ref()
            .map_or(&[][..], |p| p.blob_digests());
        debug_assert!({
            let mut both = planned.to_vec();
            both.extend(pre.check.omitted.keys());
            both.sort_unstable();
            both == declared_blobs(d)
        });
        let mut have = self.blobs.held(planned)?;
        let adds = planned.len() - have.len();
        have.extend(pre.check.omitted.keys().copied());
        // The full verification takes this first reading over (a tar's tag
        // files are read again in its one pass, a directory's are not).
        let pre_id = pre.check.id;
        let flusher = Flusher::start(staging.path(), adds)?;
        let verified = verify::verify_with_base(
            form,
            policy,
            Some(&Staging {
                dir: staging.path(),
                have: &have,
            }),
            Some(&verify::Base {
                store: self,
                recheck: opts.recheck,
            }),
            progress,
            Some(pre),
        );
        let flushed = flusher.map_or(Ok(()), Flusher::finish);
        let mut verified: Verified = verified?;
        flushed?;
        if verified.id != pre_id {
            return Err(crate::error::single(
                form.path().display().to_string(),
                "the bundle changed while it was being imported",
            ));
        }
        let d = &verified.description;

        // 1. Blobs (content-addressed: an orphan is harmless). The staged
        // set is made durable with one filesystem sync, not one per file
        // (and mostly written back already by the flusher).
        sync_staged(staging.path())?;
        failpoint("blobs")?;
        // What this bundle adds: every blob it declares that the store lacked.
        let mut new = declared_blobs(d);
        new.retain(|b| !have.contains(b));
        let written = self.blobs.put_staged(staging.path(), &new)?;
        drop(new);
        self.blobs.sync()?;
        // What the rest needs of the description, which then leaves memory
        // before the tag files are read back for the record (both grow
        // with the file count).
        let (name, version) = (d.name.clone(), d.version.clone());
        let (artifacts, size, delta) = (d.artifacts.len(), d.total_size(), d.delta.is_some());
        drop(verified.description);

        // 2. The record, naming the ledger entry that will commit it.
        let detail = format!(
            "imported {} {} ({} blob(s) new){}",
            name,
            version,
            written,
            if downgrade {
                "; DOWNGRADE allowed by --allow-downgrade"
            } else {
                ""
            }
        );
        let (seq, line) = self.entry_line(
            l,
            if downgrade {
                "import-downgrade"
            } else {
                "import"
            },
            Some(verified.id.hex()),
            Some((name.clone(), version.clone())),
            &detail,
        );
        let event = opts.key.map(|key| {
            let note = format!("imported into store {}", self.root.display());
            crate::custody::new_event(
                &verified.tags.custody,
                key,
                "imported",
                Some(&note),
                &verified.id,
                crate::clock::now(),
            )
        });
        // Moved, not copied: the description and payload manifest grow
        // with the file count, and when spilled they are streamed from
        // their spill files into the record, never read back whole.
        let tags = std::mem::take(&mut verified.tags);
        let mut named: BTreeMap<String, RecordFile> = tags
            .files
            .into_iter()
            .map(|(n, b)| (n, RecordFile::Bytes(b)))
            .collect();
        for (n, s) in tags.spilled {
            named.insert(n, RecordFile::Reader(Box::new(s.reader()?)));
        }
        let mut files: Vec<(String, RecordFile)> = named
            .into_iter()
            .chain(
                tags.signatures
                    .into_iter()
                    .chain(tags.custody)
                    .chain(event)
                    .map(|(n, b)| (n, RecordFile::Bytes(b))),
            )
            .collect();
        let record = BundleRecord {
            id: verified.id.hex(),
            name: name.clone(),
            version: version.clone(),
            imported: crate::clock::rfc3339(crate::clock::now()),
            signers: verified.signers.counted.clone(),
            artifacts,
            size,
            commit: Some(Commit {
                seq,
                entry: Sha256Digest::of(line.as_bytes()).hex(),
            }),
        };
        files.push((
            RECORD.to_string(),
            RecordFile::Bytes(serde_json::to_vec_pretty(&record).expect("serializes")),
        ));
        failpoint("record")?;
        self.meta.put_record(&name, &version, files)?;

        // 3. and 4. The ledger entry, then the head: the commit point.
        if let Err(e) = self.commit_line(l, seq, &line) {
            let _ = self.meta.remove_record(&name, &version);
            return Err(e);
        }
        drop(staging);

        // 5. The index, derived from the committed records.
        if let Err(e) = failpoint("index").and_then(|()| self.rebuild_index(seq)) {
            return Err(Error::Usage(format!(
                "{} {} is imported (ledger entry {seq}), but the store's OCI index could not be written: {e}; the next store command rebuilds it",
                name, version
            )));
        }
        Ok(Imported {
            id: record.id,
            name: record.name,
            version: record.version,
            already_present: false,
            blobs_written: written,
            from_base: delta.then_some(verified.base.omitted.len()),
            store: self.root.clone(),
        })
    }
}

/// Every distinct blob `d` declares, in digest order (`blob_refs`'s keys),
/// as sorted digests rather than a map: a file set declares one per file.
fn declared_blobs(d: &Description) -> Vec<Sha256Digest> {
    let count = d
        .artifacts
        .iter()
        .map(|a| 2 + a.layers.len() + a.blobs.len())
        .sum();
    let mut out = Vec::with_capacity(count);
    for a in &d.artifacts {
        out.extend([a.manifest.digest, a.config.digest]);
        out.extend(a.layers.iter().map(|l| l.digest));
        out.extend(a.blobs.iter().map(|b| b.digest));
    }
    out.sort_unstable();
    out.dedup();
    out
}
