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
    let bytes = fs_err::read(path)?;
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
