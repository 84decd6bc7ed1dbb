//! Chain of custody: signed, hash-chained events stored under `custody/`,
//! outside both manifests. Each event is a DSSE envelope around an in-toto
//! Statement v1 with a link-style predicate (in-toto link v0.3), naming the
//! bundle (subject: the tag manifest) and the digest of the previous event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bundle::{CUSTODY_DIR, TAGMANIFEST};
use crate::digest::Sha256Digest;
use crate::dsse::{Envelope, Statement, Subject, INTOTO_PAYLOAD_TYPE, STATEMENT_V1};
use crate::error::Report;
use crate::keys::{PrivateKey, PublicKey};

pub const LINK_PREDICATE: &str = "https://in-toto.io/attestation/link/v0.3";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub name: String,
    pub command: Vec<String>,
    pub materials: Vec<Subject>,
    pub byproducts: Record,
}

/// What an event says: who did what, when, to which bundle, after which event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Record {
    pub sequence: u32,
    pub event: String,
    pub signer: String,
    pub public_key: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub bundle_id: String,
    /// sha256 of the previous event file's bytes; absent for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// An event as found in a bundle, with what checking it showed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub file: String,
    #[serde(flatten)]
    pub record: Option<Record>,
    pub signature_ok: bool,
    pub link_ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    #[serde(skip)]
    pub key: Option<PublicKey>,
    /// The signer's name in the trust policy, when one was given and knows the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer_name: Option<String>,
}

pub fn valid_event_name(s: &str) -> bool {
    crate::bundle::valid_name(s) && s.len() <= 64
}

/// Events airlock records itself (pack, sign, import); always known.
pub const BUILTIN_EVENTS: [&str; 3] = ["packed", "signed", "imported"];

/// Events people record when the trust policy declares no `custodyEvents:`.
pub const DEFAULT_EVENTS: [&str; 5] =
    ["scanned", "approved", "transferred", "received", "released"];

/// The known name closest to `name`, if it is a likely typo of it (at most
/// two edits, or a third of its length for long names).
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

pub fn event_path(sequence: u32, event: &str) -> String {
    format!("{CUSTODY_DIR}/{sequence:04}-{event}.dsse.json")
}

/// Creates the next event after `existing` (path → bytes, the whole chain).
pub fn new_event(
    existing: &BTreeMap<String, Vec<u8>>,
    key: &PrivateKey,
    event: &str,
    note: Option<&str>,
    bundle_id: &Sha256Digest,
    time: i64,
) -> (String, Vec<u8>) {
    let last = existing.iter().next_back();
    let sequence = existing.len() as u32 + 1;
    let record = Record {
        sequence,
        event: event.to_string(),
        signer: key.public.id.clone(),
        public_key: key.public.openssh(),
        time: crate::clock::rfc3339(time),
        note: note.map(str::to_owned),
        bundle_id: bundle_id.hex(),
        previous: last.map(|(_, bytes)| Sha256Digest::of(bytes).hex()),
    };
    let statement = Statement {
        type_: STATEMENT_V1.to_string(),
        subject: vec![Subject::sha256(TAGMANIFEST, bundle_id)],
        predicate_type: LINK_PREDICATE.to_string(),
        predicate: Link {
            name: event.to_string(),
            command: vec![],
            materials: vec![Subject::sha256(TAGMANIFEST, bundle_id)],
            byproducts: record,
        },
    };
    let payload = crate::bundle::canonical_json(&statement);
    (
        event_path(sequence, event),
        Envelope::sign(key, INTOTO_PAYLOAD_TYPE, &payload).to_json(),
    )
}

fn parse_event(
    bytes: &[u8],
    bundle_id: &Sha256Digest,
) -> Result<(Record, PublicKey, bool), String> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let payload = envelope.payload_bytes()?;
    let st: Statement<Link> = serde_json::from_slice(&payload)
        .map_err(|e| format!("not an airlock custody event: {e}"))?;
    if st.type_ != STATEMENT_V1
        || st.predicate_type != LINK_PREDICATE
        || envelope.payload_type != INTOTO_PAYLOAD_TYPE
    {
        return Err("not an in-toto Statement v1 with a link predicate".into());
    }
    let record = st.predicate.byproducts;
    if st.subject != vec![Subject::sha256(TAGMANIFEST, bundle_id)]
        || record.bundle_id != bundle_id.hex()
    {
        return Err("recorded for another bundle".into());
    }
    if record.event != st.predicate.name {
        return Err("event name in the link and the record differ".into());
    }
    let key = PublicKey::parse(&record.public_key)?;
    if key.id != record.signer {
        return Err("signer key id does not match the embedded public key".into());
    }
    let ok = envelope.verify_with(&key);
    Ok((record, key, ok))
}

/// Checks every event's signature and the chain: sequence numbers 1..n in
/// file order, each naming the digest of the one before.
pub fn check_chain(
    events: &BTreeMap<String, Vec<u8>>,
    bundle_id: &Sha256Digest,
) -> (Vec<EventView>, Report) {
    let mut report = Report::default();
    let mut views = Vec::new();
    let mut previous: Option<String> = None;
    for (i, (file, bytes)) in events.iter().enumerate() {
        let expected_seq = i as u32 + 1;
        let mut view = EventView {
            file: file.clone(),
            record: None,
            signature_ok: false,
            link_ok: false,
            problems: vec![],
            key: None,
            signer_name: None,
        };
        match parse_event(bytes, bundle_id) {
            Ok((record, key, sig_ok)) => {
                view.signature_ok = sig_ok;
                if !sig_ok {
                    view.problems
                        .push("signature does not verify (event edited?)".into());
                }
                if record.sequence != expected_seq
                    || *file != event_path(record.sequence, &record.event)
                {
                    view.problems.push(format!(
                        "out of order: expected event number {expected_seq} here, found {} (event removed or reordered?)",
                        record.sequence
                    ));
                }
                if record.previous != previous {
                    view.problems.push("does not link to the event before it (event removed, inserted or reordered?)".into());
                }
                view.link_ok = view.problems.iter().all(|p| p.starts_with("signature"));
                view.key = Some(key);
                view.record = Some(record);
            }
            Err(e) => view.problems.push(e),
        }
        for p in &view.problems {
            report.add(file.clone(), p.clone());
        }
        previous = Some(Sha256Digest::of(bytes).hex());
        views.push(view);
    }
    (views, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_matched() {
        let known = ["scanned", "transferred", "received"];
        assert_eq!(did_you_mean("trasnferred", known), Some("transferred"));
        assert_eq!(did_you_mean("scaned", known), Some("scanned"));
        assert_eq!(did_you_mean("recieved", known), Some("received"));
        assert_eq!(did_you_mean("deployed", known), None);
    }

    fn chain(n: usize, key: &PrivateKey, id: &Sha256Digest) -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        for i in 0..n {
            let (p, b) = new_event(&m, key, &format!("e{i}"), None, id, 0);
            m.insert(p, b);
        }
        m
    }

    #[test]
    fn intact_chain_checks() {
        let k = PrivateKey::generate().unwrap();
        let id = Sha256Digest::of(b"bundle");
        let (views, report) = check_chain(&chain(3, &k, &id), &id);
        assert!(report.is_ok(), "{report}");
        assert!(views.iter().all(|v| v.signature_ok && v.link_ok));
    }

    #[test]
    fn removed_event_breaks_the_chain() {
        let k = PrivateKey::generate().unwrap();
        let id = Sha256Digest::of(b"bundle");
        let mut c = chain(3, &k, &id);
        c.remove(&event_path(2, "e1"));
        let (_, report) = check_chain(&c, &id);
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.subject == event_path(3, "e2")),
            "{report}"
        );
    }

    #[test]
    fn other_bundle_is_refused() {
        let k = PrivateKey::generate().unwrap();
        let id = Sha256Digest::of(b"bundle");
        let (_, report) = check_chain(&chain(1, &k, &id), &Sha256Digest::of(b"other"));
        assert!(!report.is_ok());
    }
}
