//! OpenSSF model-signing signatures (`model.sig`) from untrusted bytes: the
//! Sigstore bundle JSON, its verification material and key hint, the DSSE
//! envelope and its ECDSA P-256 signature (`modelsig::check`), and the
//! signer's public key PEM (`SignerKey::from_pem`, read from `airlock.json`
//! on the high side).
//!
//! The signature gates everything after it, so the bytes are also signed
//! here, with a fixed key, as the envelope's payload: that reaches the
//! in-toto statement parser (statement and predicate types, serialization,
//! resources, subject digest, ignore paths) and the match of the signed
//! files against a model's files.
#![no_main]
use std::collections::BTreeMap;
use std::sync::OnceLock;

use airlock::digest::Sha256Digest;
use airlock::dsse::{pae, INTOTO_PAYLOAD_TYPE};
use airlock::modelsig::{self, SignerKey};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey, LineEnding};

/// The fixed signing key (the seeds are signed with it: `fuzz/make-seeds`).
fn signing_key() -> &'static p256::ecdsa::SigningKey {
    static K: OnceLock<p256::ecdsa::SigningKey> = OnceLock::new();
    K.get_or_init(|| p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).expect("a P-256 key"))
}

fn signer() -> &'static SignerKey {
    static K: OnceLock<SignerKey> = OnceLock::new();
    K.get_or_init(|| {
        let pem = p256::PublicKey::from(signing_key().verifying_key())
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM");
        SignerKey::from_pem(&pem).expect("the fixed key reads back")
    })
}

/// The model's files beside `model.sig`: two signed, one the seed
/// statement ignores (`extra/`).
fn files() -> &'static BTreeMap<String, Sha256Digest> {
    static F: OnceLock<BTreeMap<String, Sha256Digest>> = OnceLock::new();
    F.get_or_init(|| {
        [
            ("config.json", &b"{}"[..]),
            ("model.safetensors", b"weights"),
            ("extra/notes.txt", b"notes"),
            ("model.sig", b""),
        ]
        .into_iter()
        .map(|(n, b)| (n.to_string(), Sha256Digest::of(b)))
        .collect()
    })
}

/// `payload` as model_signing writes it: signed, in a DSSE envelope, in a Sigstore bundle.
fn bundle(payload: &[u8]) -> Vec<u8> {
    let sig: p256::ecdsa::Signature = signing_key().sign(&pae(INTOTO_PAYLOAD_TYPE, payload));
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "dsseEnvelope": {"payload": b64.encode(payload), "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": b64.encode(sig.to_der().as_bytes()), "keyid": ""}]},
    }))
    .expect("JSON")
}

fuzz_target!(|data: &[u8]| {
    let key = signer();
    if let Ok(s) = modelsig::check("model.sig", data, key, files()) {
        let _ = modelsig::summary(&s);
    }
    if let Ok(s) = modelsig::check("model.sig", &bundle(data), key, files()) {
        let _ = modelsig::summary(&s);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SignerKey::from_pem(text);
    }
});
