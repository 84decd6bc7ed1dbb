//! Import receipts: signed by the high side's key after a successful import,
//! carried back to the build side, checked there with `airlock receipt verify`.

use serde::{Deserialize, Serialize};

use crate::bundle::TAGMANIFEST;
use crate::digest::Sha256Digest;
use crate::dsse::{Envelope, Statement, Subject, INTOTO_PAYLOAD_TYPE, STATEMENT_V1};
use crate::error::Result;
use crate::keys::{PrivateKey, PublicKey};
use crate::policy::{KeyStanding, TrustPolicy};

pub const RECEIPT_PREDICATE: &str = "https://airlock.dev/attestations/import-receipt/v1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiptPredicate {
    pub bundle: String,
    pub version: String,
    pub bundle_id: String,
    pub store_key: String,
    pub public_key: String,
    pub time: String,
    /// Every blob the store holds for the bundle.
    pub blobs: Vec<Sha256Digest>,
}

pub fn make(
    key: &PrivateKey,
    name: &str,
    version: &str,
    id: &Sha256Digest,
    blobs: Vec<Sha256Digest>,
    time: i64,
) -> Vec<u8> {
    let st = Statement {
        type_: STATEMENT_V1.into(),
        subject: vec![Subject::sha256(TAGMANIFEST, id)],
        predicate_type: RECEIPT_PREDICATE.into(),
        predicate: ReceiptPredicate {
            bundle: name.into(),
            version: version.into(),
            bundle_id: id.hex(),
            store_key: key.public.id.clone(),
            public_key: key.public.openssh(),
            time: crate::clock::rfc3339(time),
            blobs,
        },
    };
    Envelope::sign(
        key,
        INTOTO_PAYLOAD_TYPE,
        &crate::bundle::canonical_json(&st),
    )
    .to_json()
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedReceipt {
    #[serde(flatten)]
    pub receipt: ReceiptPredicate,
    pub signer: String,
}

/// Checks a receipt's signature and that the policy trusts its signer.
pub fn verify(path: &std::path::Path, policy: &TrustPolicy) -> Result<CheckedReceipt> {
    let bad = |m: String| crate::error::single(path.display().to_string(), m);
    let bytes =
        std::fs::read(path).map_err(|e| crate::error::Error::cannot_open(path, "receipt", &e))?;
    let env: Envelope =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a DSSE envelope: {e}")))?;
    let payload = env.payload_bytes().map_err(bad)?;
    let st: Statement<ReceiptPredicate> = serde_json::from_slice(&payload)
        .map_err(|e| bad(format!("not an airlock import receipt: {e}")))?;
    if st.type_ != STATEMENT_V1 || st.predicate_type != RECEIPT_PREDICATE {
        return Err(bad("not an airlock import receipt".into()));
    }
    let id: Sha256Digest = st
        .predicate
        .bundle_id
        .parse()
        .map_err(|e| bad(format!("bundleId: {e}")))?;
    if st.subject != vec![Subject::sha256(TAGMANIFEST, &id)] {
        return Err(bad("subject does not match the receipt's bundle id".into()));
    }
    let key = PublicKey::parse(&st.predicate.public_key).map_err(bad)?;
    if key.id != st.predicate.store_key || !env.verify_with(&key) {
        return Err(bad("signature does not verify (receipt altered?)".into()));
    }
    let signer = match policy.standing(&key, crate::clock::now()) {
        KeyStanding::Trusted(k) => k.name.clone(),
        KeyStanding::Unknown => {
            return Err(bad(format!(
                "signed by key {}, which the trust policy does not know",
                key.id
            )))
        }
        KeyStanding::Revoked(k) => {
            return Err(bad(format!(
                "signed by {} (key {}), which the trust policy revokes",
                k.name, key.id
            )))
        }
        KeyStanding::Expired(k) => {
            return Err(bad(format!(
                "signed by {} (key {}), whose key has expired",
                k.name, key.id
            )))
        }
    };
    Ok(CheckedReceipt {
        receipt: st.predicate,
        signer,
    })
}

// ------------------------------------------------------------ holdings

/// A store's statement of every blob it holds (`airlock store receipt`),
/// the base a delta bundle is cut against.
pub const HOLDINGS_PREDICATE: &str = "https://airlock.dev/attestations/store-holdings/v1";
/// How `blobs` is encoded: the raw 32-byte sha256 digests, sorted ascending
/// and concatenated, then base64 (standard alphabet, padded). 43 bytes of
/// JSON a blob: about 43 MB for a million blobs, against 67 MB as hex strings.
pub const HOLDINGS_ENCODING: &str = "sha256-sorted-concat-base64";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HoldingsPredicate {
    /// The store's random identity, created once and kept in `STORE/store-id`.
    pub store_id: String,
    pub store_key: String,
    pub public_key: String,
    pub time: String,
    /// Committed ledger entries when the receipt was issued (the receipt's
    /// own `receipt` entry included).
    pub ledger_entries: u64,
    pub blob_count: u64,
    pub encoding: String,
    pub blobs: String,
}

fn holdings_subject(store_id: &str, raw: &[u8]) -> Subject {
    Subject::sha256(&format!("store:{store_id}"), &Sha256Digest::of(raw))
}

/// Signs a holdings receipt for `blobs` (any order; sorted here).
pub fn make_holdings(
    key: &PrivateKey,
    store_id: &str,
    ledger_entries: u64,
    mut blobs: Vec<Sha256Digest>,
    time: i64,
) -> Vec<u8> {
    use base64::Engine;
    blobs.sort();
    blobs.dedup();
    let mut raw = Vec::with_capacity(blobs.len() * 32);
    for b in &blobs {
        raw.extend_from_slice(b.as_bytes());
    }
    let st = Statement {
        type_: STATEMENT_V1.into(),
        subject: vec![holdings_subject(store_id, &raw)],
        predicate_type: HOLDINGS_PREDICATE.into(),
        predicate: HoldingsPredicate {
            store_id: store_id.into(),
            store_key: key.public.id.clone(),
            public_key: key.public.openssh(),
            time: crate::clock::rfc3339(time),
            ledger_entries,
            blob_count: blobs.len() as u64,
            encoding: HOLDINGS_ENCODING.into(),
            blobs: base64::engine::general_purpose::STANDARD.encode(&raw),
        },
    };
    Envelope::sign(
        key,
        INTOTO_PAYLOAD_TYPE,
        &crate::bundle::canonical_json(&st),
    )
    .to_json()
}

/// A receipt checked as the base of a delta: what the high side holds.
#[derive(Debug, Clone)]
pub struct Base {
    /// sha256 of the receipt file.
    pub digest: Sha256Digest,
    pub store_id: Option<String>,
    pub store_key: String,
    pub signer: String,
    pub time: String,
    pub blobs: std::collections::HashSet<Sha256Digest>,
}

/// The trusted name of `key` if the policy trusts it for role `store`.
fn trusted_store_key(
    policy: &TrustPolicy,
    key: &PublicKey,
    bad: &dyn Fn(String) -> crate::error::Error,
) -> Result<String> {
    match policy.standing(key, crate::clock::now()) {
        KeyStanding::Trusted(k) if k.roles.contains(STORE_ROLE) => Ok(k.name.clone()),
        KeyStanding::Trusted(k) => Err(bad(format!(
            "signed by {} (key {}), which the trust policy does not trust for role {STORE_ROLE:?}",
            k.name, key.id
        ))),
        KeyStanding::Unknown => Err(bad(format!(
            "signed by key {}, which the trust policy does not know",
            key.id
        ))),
        KeyStanding::Revoked(k) => Err(bad(format!(
            "signed by {} (key {}), which the trust policy revokes",
            k.name, key.id
        ))),
        KeyStanding::Expired(k) => Err(bad(format!(
            "signed by {} (key {}), whose key has expired",
            k.name, key.id
        ))),
    }
}

/// The role a key must hold for its receipts to serve as a delta's base.
pub const STORE_ROLE: &str = "store";

/// Reads a holdings receipt (or an import receipt) as a delta's base: the
/// signature must verify and the policy must trust the signer for role
/// `store`.
pub fn load_base(path: &std::path::Path, policy: &TrustPolicy) -> Result<Base> {
    use base64::Engine;
    let bad = |m: String| crate::error::single(path.display().to_string(), m);
    let bytes =
        std::fs::read(path).map_err(|e| crate::error::Error::cannot_open(path, "receipt", &e))?;
    let digest = Sha256Digest::of(&bytes);
    let env: Envelope =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a DSSE envelope: {e}")))?;
    let payload = env.payload_bytes().map_err(bad)?;
    let kind: Statement<serde_json::Value> = serde_json::from_slice(&payload)
        .map_err(|e| bad(format!("not an in-toto statement: {e}")))?;
    if kind.type_ != STATEMENT_V1 {
        return Err(bad("not an in-toto statement v1".into()));
    }
    if kind.predicate_type == RECEIPT_PREDICATE {
        let r = verify(path, policy)?;
        let key = PublicKey::parse(&r.receipt.public_key).map_err(bad)?;
        let signer = trusted_store_key(policy, &key, &bad)?;
        return Ok(Base {
            digest,
            store_id: None,
            store_key: r.receipt.store_key,
            signer,
            time: r.receipt.time,
            blobs: r.receipt.blobs.into_iter().collect(),
        });
    }
    if kind.predicate_type != HOLDINGS_PREDICATE {
        return Err(bad(format!(
            "predicate {:?} is neither a store receipt nor an import receipt",
            kind.predicate_type
        )));
    }
    let st: Statement<HoldingsPredicate> = serde_json::from_slice(&payload)
        .map_err(|e| bad(format!("not an airlock store receipt: {e}")))?;
    let p = st.predicate;
    let key = PublicKey::parse(&p.public_key).map_err(bad)?;
    if key.id != p.store_key || !env.verify_with(&key) {
        return Err(bad("signature does not verify (receipt altered?)".into()));
    }
    let signer = trusted_store_key(policy, &key, &bad)?;
    if p.encoding != HOLDINGS_ENCODING {
        return Err(bad(format!("unknown blob encoding {:?}", p.encoding)));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&p.blobs)
        .map_err(|e| bad(format!("blobs: not base64: {e}")))?;
    if raw.len() % 32 != 0 || (raw.len() / 32) as u64 != p.blob_count {
        return Err(bad(format!(
            "blobs: {} bytes do not hold the {} digest(s) blobCount states",
            raw.len(),
            p.blob_count
        )));
    }
    if st.subject != vec![holdings_subject(&p.store_id, &raw)] {
        return Err(bad("subject does not match the receipt's blob list".into()));
    }
    let blobs = raw
        .chunks_exact(32)
        .map(|c| Sha256Digest::of_raw(c.try_into().expect("32 bytes")))
        .collect();
    Ok(Base {
        digest,
        store_id: Some(p.store_id),
        store_key: p.store_key,
        signer,
        time: p.time,
        blobs,
    })
}
