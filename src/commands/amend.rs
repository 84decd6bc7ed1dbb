//! Adding to a bundle after pack without changing its id: co-signatures
//! (`airlock sign`) and custody events (`airlock custody append`). Both live
//! outside the two manifests; for tar bundles they are written beside the
//! file (`<file>.airlock/`), never into it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{parse_manifest, TAGMANIFEST, TAG_FILES};
use crate::custody::{check_chain, new_event, valid_event_name, EventView};
use crate::digest::Sha256Digest;
use crate::error::{Error, Report, Result};
use crate::keys::PrivateKey;
use crate::source::{Form, TagSet};

#[derive(Debug, Clone, Serialize)]
pub struct Amended {
    pub id: String,
    pub key_id: String,
    /// Files written (empty when nothing needed to change).
    pub wrote: Vec<PathBuf>,
}

/// The bundle's tag files (with additions), checked to be intact and unchanged
/// since pack: whoever signs or records custody vouches for this id.
fn intact_tags(form: &Form) -> Result<(TagSet, Sha256Digest)> {
    let tags = crate::verify::read_tags(form)?;
    let mut report = tags.report.clone();
    let tm = tags
        .files
        .get(TAGMANIFEST)
        .ok_or_else(|| crate::error::single(TAGMANIFEST, "missing: not an airlock bundle"))?;
    match parse_manifest(&String::from_utf8_lossy(tm)) {
        Err(e) => report.add(TAGMANIFEST, e),
        Ok(listed) => {
            for name in TAG_FILES {
                let ok = matches!((listed.get(name), tags.files.get(name)), (Some(d), Some(b)) if *d == Sha256Digest::of(b));
                if !ok {
                    report.add(name, "missing or does not match tagmanifest-sha256.txt");
                }
            }
        }
    }
    report.into_result()?;
    let id = Sha256Digest::of(tm);
    Ok((tags, id))
}

/// Appends a signed custody event. Refuses to extend a broken chain.
pub fn append_custody(
    bundle: &Path,
    key: &PrivateKey,
    event: &str,
    note: Option<&str>,
    policy: Option<&crate::policy::TrustPolicy>,
) -> Result<Amended> {
    if !valid_event_name(event) {
        return Err(Error::Usage(format!(
            "--event {event:?}: use lowercase letters, digits and '-' (e.g. scanned, transferred)"
        )));
    }
    match policy {
        Some(p) => crate::policy::check_event(
            event,
            &p.events,
            &format!("the trust policy {}", p.path.display()),
        )?,
        None => crate::policy::check_event(
            event,
            &crate::policy::default_events(),
            "airlock (without --trust, only the default vocabulary; a trust policy's custodyEvents: declares others)",
        )?,
    }
    let form = Form::open(bundle)?;
    let (tags, id) = intact_tags(&form)?;
    append_to(&form, &tags.custody, key, event, note, &id)
}

fn append_to(
    form: &Form,
    chain: &BTreeMap<String, Vec<u8>>,
    key: &PrivateKey,
    event: &str,
    note: Option<&str>,
    id: &Sha256Digest,
) -> Result<Amended> {
    let (_, report) = check_chain(chain, id);
    if !report.is_ok() {
        let mut r = Report::default();
        r.add(
            "custody/",
            "the custody chain is already broken; refusing to extend it",
        );
        r.merge(report);
        return Err(Error::Verification(r));
    }
    let time = crate::clock::build_time()?;
    let (rel, bytes) = new_event(chain, key, event, note, id, time);
    let wrote = crate::additions::append(form, &[(rel, bytes)], time.max(0) as u64)?;
    Ok(Amended {
        id: id.hex(),
        key_id: key.public.id.clone(),
        wrote,
    })
}

/// Adds `key`'s DSSE and SSHSIG signatures and a `signed` custody event.
/// Signing again with a key that already signed changes nothing.
pub fn sign(bundle: &Path, key: &PrivateKey) -> Result<Amended> {
    let form = Form::open(bundle)?;
    let (tags, id) = intact_tags(&form)?;
    let dsse = crate::signing::dsse_path(&key.public.id);
    if let Some(existing) = tags.signatures.get(&dsse) {
        let ssh = tags
            .signatures
            .get(&crate::signing::sshsig_path(&key.public.id))
            .map(Vec::as_slice);
        if crate::signing::check(&key.public.id, existing, ssh, &tags.files[TAGMANIFEST]).is_ok() {
            return Ok(Amended {
                id: id.hex(),
                key_id: key.public.id.clone(),
                wrote: vec![],
            });
        }
        return Err(crate::error::single(
            dsse,
            "a broken signature by this key is already present; remove it first",
        ));
    }
    let d: crate::bundle::Description =
        serde_json::from_slice(&tags.files[crate::bundle::DESCRIPTION])
            .map_err(|e| crate::error::single(crate::bundle::DESCRIPTION, e.to_string()))?;
    let time = crate::clock::build_time()?;
    let mut entries = crate::signing::sign(key, &d.name, &d.version, &tags.files[TAGMANIFEST]);
    let (_, report) = check_chain(&tags.custody, &id);
    if !report.is_ok() {
        let mut r = Report::default();
        r.add(
            "custody/",
            "the custody chain is already broken; refusing to extend it",
        );
        r.merge(report);
        return Err(Error::Verification(r));
    }
    entries.push(new_event(&tags.custody, key, "signed", None, &id, time));
    // Signatures and the `signed` event are added in one batch.
    let mut wrote = crate::additions::append(&form, &entries, time.max(0) as u64)?;
    wrote.dedup();
    Ok(Amended {
        id: id.hex(),
        key_id: key.public.id.clone(),
        wrote,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct CustodyShow {
    pub id: String,
    pub intact: bool,
    pub events: Vec<EventView>,
}

/// The chain; with a trust policy, signers it lists are named.
pub fn show_custody(
    bundle: &Path,
    policy: Option<&crate::policy::TrustPolicy>,
) -> Result<CustodyShow> {
    let form = Form::open(bundle)?;
    let tags = crate::verify::read_tags(&form)?;
    let tm = tags
        .files
        .get(TAGMANIFEST)
        .ok_or_else(|| crate::error::single(TAGMANIFEST, "missing: not an airlock bundle"))?;
    let id = Sha256Digest::of(tm);
    let (mut events, report) = check_chain(&tags.custody, &id);
    if let Some(p) = policy {
        for e in &mut events {
            // By the key that signed the event, not the id it claims.
            e.signer_name = e
                .key
                .as_ref()
                .and_then(|k| p.key_name(k))
                .map(str::to_owned);
        }
    }
    Ok(CustodyShow {
        id: id.hex(),
        intact: report.is_ok(),
        events,
    })
}
