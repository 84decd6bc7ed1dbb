//! DSSE envelopes carrying in-toto Statement v1 payloads.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::keys::{PrivateKey, PublicKey};

pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// in-toto Statement v1 with a typed predicate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    pub predicate_type: String,
    pub predicate: P,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: &str, digest: &crate::digest::Sha256Digest) -> Self {
        Subject {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), digest.hex())]),
        }
    }
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    pub fn sign(key: &PrivateKey, payload_type: &str, payload: &[u8]) -> Self {
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: b64().encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: key.public.id.clone(),
                sig: b64().encode(sig),
            }],
        }
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        b64()
            .decode(&self.payload)
            .map_err(|e| format!("DSSE payload is not base64: {e}"))
    }

    /// True when a signature by `key` (matched by key id) verifies.
    pub fn verify_with(&self, key: &PublicKey) -> bool {
        let Ok(payload) = self.payload_bytes() else {
            return false;
        };
        let msg = pae(&self.payload_type, &payload);
        self.signatures
            .iter()
            .filter(|s| s.keyid == key.id)
            .any(|s| {
                b64()
                    .decode(&s.sig)
                    .map(|sig| key.verify(&msg, &sig))
                    .unwrap_or(false)
            })
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("envelope serializes");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_verify() {
        let k = PrivateKey::generate().unwrap();
        let other = PrivateKey::generate().unwrap();
        let e = Envelope::sign(&k, INTOTO_PAYLOAD_TYPE, b"{}");
        assert!(e.verify_with(&k.public));
        assert!(!e.verify_with(&other.public));
        let mut t = e.clone();
        t.payload = b64().encode(b"{ }");
        assert!(!t.verify_with(&k.public));
    }
}
