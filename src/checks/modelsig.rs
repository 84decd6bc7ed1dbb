//! OpenSSF model-signing signatures (`model.sig`, as PyPI `model-signing`
//! 1.x writes them with `model_signing sign key`), checked against a public
//! key: the same code at pack and on the high side.
//!
//! A `model.sig` is a Sigstore bundle (JSON) holding a DSSE envelope whose
//! payload is an in-toto Statement v1 with predicate type
//! `https://model_signing/signature/v1.0`. Its predicate lists every signed
//! file of the model (`resources`: name, sha256) and the paths the signer
//! left out (`serialization.ignore_paths`); its one subject's sha256 is the
//! sha256 of the resources' digests, concatenated in order.
//!
//! Checked here: the signature (ECDSA P-256 with SHA-256, DER encoded) over
//! the DSSE pre-authentication encoding, with the given key (the bundle's
//! key hint, when present, must name the same key); the statement's form and
//! subject digest; then the model's files: each signed file present with the
//! signed sha256, and every other file of the model (but the signature
//! itself) one the statement says it ignores, else refused.
//!
//! Not checked: signatures made with a certificate (Sigstore keyless, x509
//! chains), which need a trust root and a transparency log airlock does not
//! carry; they are refused as such, never passed as verified. Keys other than
//! EC P-256 are refused by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use serde::Deserialize;

use crate::bundle::{
    blob_path, Artifact, ArtifactKind, Description, ModelSignature, SignatureStatus, DESCRIPTION,
    MAX_JSON_BLOB, MODEL_SIGNING_PREDICATE,
};
use crate::digest::Sha256Digest;
use crate::dsse::{pae, INTOTO_PAYLOAD_TYPE, STATEMENT_V1};
use crate::error::Report;

/// The one signature scheme verified.
pub const ALGORITHM: &str = "ecdsa-p256-sha256";

/// A model signer's public key.
#[derive(Debug, Clone)]
pub struct SignerKey {
    key: p256::ecdsa::VerifyingKey,
    /// SubjectPublicKeyInfo, PEM, as OpenSSL and Python's cryptography write it.
    pub pem: String,
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo.
    pub fingerprint: String,
    /// model-signing's key hint: hex sha256 of `pem`.
    hint: String,
}

/// Why a public key cannot be used to check a model signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("is a certificate; airlock checks model signatures against a public key only (certificate chains and Sigstore keyless signing are not verified). Name the signer's public key instead (`openssl x509 -in CERT -pubkey -noout`)")]
    Certificate,
    #[error(
        "is a private key; name the signer's public key instead (`openssl pkey -in KEY -pubout`)"
    )]
    Private,
    #[error("is not an EC P-256 public key in PEM (SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout` writes it): {0}. airlock verifies model signatures made with EC P-256 keys")]
    NotP256(String),
}

impl SignerKey {
    /// Reads an EC P-256 public key (SubjectPublicKeyInfo PEM).
    pub fn from_pem(text: &str) -> Result<Self, KeyProblem> {
        let t = text.trim_start();
        if t.starts_with("-----BEGIN CERTIFICATE-----") {
            return Err(KeyProblem::Certificate);
        }
        if t.starts_with("-----BEGIN") && t.lines().next().is_some_and(|l| l.contains("PRIVATE")) {
            return Err(KeyProblem::Private);
        }
        let key = p256::PublicKey::from_public_key_pem(t.trim_end())
            .map_err(|e| KeyProblem::NotP256(e.to_string()))?;
        let pem = key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyProblem::NotP256(e.to_string()))?;
        let der = key
            .to_public_key_der()
            .map_err(|e| KeyProblem::NotP256(e.to_string()))?;
        Ok(SignerKey {
            key: p256::ecdsa::VerifyingKey::from(&key),
            fingerprint: Sha256Digest::of(der.as_bytes()).oci(),
            hint: Sha256Digest::of(pem.as_bytes()).hex(),
            pem,
        })
    }
}

/// What is wrong with a model's signature or its files. `file` names the
/// file at fault, a path in the model (`model.sig`, `config.json`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigProblem {
    #[error("not an OpenSSF model-signing signature: {why}")]
    Malformed { file: String, why: String },
    #[error("signed with a certificate ({what}); airlock verifies model signatures made with a key (`model_signing sign key`) only: certificate chains and Sigstore keyless signatures are not verified")]
    Certificate { file: String, what: String },
    #[error("{why}; airlock verifies OpenSSF model-signing v1.0 signatures of the `files` kind with sha256 digests (`model_signing sign key`)")]
    Unsupported { file: String, why: String },
    #[error("signed by another key: the signature names key hint {hint}, but key {fingerprint} has hint {ours}")]
    OtherKey {
        file: String,
        hint: String,
        fingerprint: String,
        ours: String,
    },
    #[error("the signature does not verify with key {fingerprint}: the signature was changed after signing, or another key made it")]
    BadSignature { file: String, fingerprint: String },
    #[error("sha256 {actual}, but the signature signs {signed}: the file changed after signing (restore it, or sign the model again)")]
    Changed {
        file: String,
        signed: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("signed by {signature}, but the model has no such file")]
    Missing { file: String, signature: String },
    #[error("not covered by {signature} (added after signing, or left out by the signer): remove it from the model directory, or sign the model again")]
    Unsigned { file: String, signature: String },
    #[error("the model names a signature key, but has no {file} (sign it with `model_signing sign key --private_key KEY DIR`, or drop `signature:` from the manifest)")]
    NoSignature { file: String },
}

impl SigProblem {
    /// The model file the problem is about.
    pub fn file(&self) -> &str {
        match self {
            SigProblem::Malformed { file, .. }
            | SigProblem::Certificate { file, .. }
            | SigProblem::Unsupported { file, .. }
            | SigProblem::OtherKey { file, .. }
            | SigProblem::BadSignature { file, .. }
            | SigProblem::Changed { file, .. }
            | SigProblem::Missing { file, .. }
            | SigProblem::Unsigned { file, .. }
            | SigProblem::NoSignature { file } => file,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigstoreBundle {
    media_type: String,
    #[serde(default)]
    verification_material: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Deserialize)]
struct Subject {
    digest: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Predicate {
    serialization: Serialization,
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Serialization {
    method: String,
    hash_type: String,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(Deserialize)]
struct Resource {
    name: String,
    algorithm: String,
    digest: String,
}

/// Checks the signature file `sig_path` (its bytes `sig`) of a model whose
/// other files are `files` (path in the model → sha256) against `key`.
/// Every problem found is returned, each naming its file.
pub fn check(
    sig_path: &str,
    sig: &[u8],
    key: &SignerKey,
    files: &BTreeMap<String, Sha256Digest>,
) -> Result<ModelSignature, Vec<SigProblem>> {
    let (predicate_type, resources, ignore) =
        verify_envelope(sig_path, sig, key).map_err(|p| vec![p])?;
    let mut problems = Vec::new();
    for (name, signed) in &resources {
        match files.get(name) {
            None => problems.push(SigProblem::Missing {
                file: name.clone(),
                signature: sig_path.to_string(),
            }),
            Some(actual) if actual != signed => problems.push(SigProblem::Changed {
                file: name.clone(),
                signed: *signed,
                actual: *actual,
            }),
            Some(_) => {}
        }
    }
    let mut unsigned = Vec::new();
    for path in files.keys() {
        if path == sig_path || resources.contains_key(path) {
            continue;
        }
        if ignore.iter().any(|i| {
            path == i
                || path
                    .strip_prefix(i.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        }) {
            unsigned.push(path.clone());
        } else {
            problems.push(SigProblem::Unsigned {
                file: path.clone(),
                signature: sig_path.to_string(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ModelSignature {
        path: sig_path.to_string(),
        status: SignatureStatus::Verified,
        public_key: Some(key.pem.clone()),
        key_fingerprint: Some(key.fingerprint.clone()),
        algorithm: Some(ALGORITHM.to_string()),
        predicate_type: Some(predicate_type),
        files: Some(resources.len() as u64),
        unsigned,
    })
}

type Signed = (String, BTreeMap<String, Sha256Digest>, Vec<String>);

/// The signature over the statement, then the statement's form: its
/// predicate type, the signed files (name → sha256) and the ignored paths.
fn verify_envelope(sig_path: &str, sig: &[u8], key: &SignerKey) -> Result<Signed, SigProblem> {
    let malformed = |why: String| SigProblem::Malformed {
        file: sig_path.to_string(),
        why,
    };
    let unsupported = |why: String| SigProblem::Unsupported {
        file: sig_path.to_string(),
        why,
    };
    if sig.len() as u64 > MAX_JSON_BLOB {
        return Err(malformed(format!(
            "{} bytes, more than the {MAX_JSON_BLOB} read",
            sig.len()
        )));
    }
    let bundle: SigstoreBundle = serde_json::from_slice(sig)
        .map_err(|e| malformed(format!("not a Sigstore bundle (JSON): {e}")))?;
    if !bundle
        .media_type
        .starts_with("application/vnd.dev.sigstore.bundle")
    {
        return Err(malformed(format!(
            "media type {:?} is not a Sigstore bundle's",
            bundle.media_type
        )));
    }
    let material = bundle.verification_material.unwrap_or_default();
    for what in ["x509CertificateChain", "certificate"] {
        if material.contains_key(what) {
            return Err(SigProblem::Certificate {
                file: sig_path.to_string(),
                what: format!("verificationMaterial.{what}"),
            });
        }
    }
    let hint = material
        .get("publicKey")
        .and_then(|k| k.get("hint"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty());
    if let Some(hint) = hint {
        if hint != key.hint {
            return Err(SigProblem::OtherKey {
                file: sig_path.to_string(),
                hint: hint.to_string(),
                fingerprint: key.fingerprint.clone(),
                ours: key.hint.clone(),
            });
        }
    }
    let env = bundle.dsse_envelope.ok_or_else(|| {
        unsupported("it holds no DSSE envelope (a message signature)".to_string())
    })?;
    if env.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(unsupported(format!(
            "payload type {:?} is not {INTOTO_PAYLOAD_TYPE}",
            env.payload_type
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&env.payload)
        .map_err(|e| malformed(format!("payload is not base64: {e}")))?;
    let [one] = env.signatures.as_slice() else {
        return Err(malformed(format!(
            "{} signatures in the envelope; model_signing writes one",
            env.signatures.len()
        )));
    };
    let bad = || SigProblem::BadSignature {
        file: sig_path.to_string(),
        fingerprint: key.fingerprint.clone(),
    };
    let der = b64.decode(&one.sig).map_err(|_| bad())?;
    let signature = p256::ecdsa::Signature::from_der(&der).map_err(|_| bad())?;
    key.key
        .verify(&pae(&env.payload_type, &payload), &signature)
        .map_err(|_| bad())?;

    // Signed: from here on the statement is the signer's word.
    let st: Statement = serde_json::from_slice(&payload).map_err(|e| {
        malformed(format!(
            "the signed payload is not an in-toto statement: {e}"
        ))
    })?;
    if st.type_ != STATEMENT_V1 {
        return Err(unsupported(format!(
            "statement type {:?} is not {STATEMENT_V1}",
            st.type_
        )));
    }
    if st.predicate_type != MODEL_SIGNING_PREDICATE {
        return Err(unsupported(format!(
            "predicate type {:?} is not {MODEL_SIGNING_PREDICATE}",
            st.predicate_type
        )));
    }
    let ser = &st.predicate.serialization;
    if ser.method != "files" || ser.hash_type != "sha256" {
        return Err(unsupported(format!(
            "serialization {:?} with {:?} digests",
            ser.method, ser.hash_type
        )));
    }
    let mut resources = BTreeMap::new();
    let mut root = Vec::with_capacity(32 * st.predicate.resources.len());
    for r in &st.predicate.resources {
        if r.algorithm != "sha256" {
            return Err(unsupported(format!(
                "{}: digest algorithm {:?}",
                r.name, r.algorithm
            )));
        }
        let d: Sha256Digest = r
            .digest
            .parse()
            .map_err(|e| malformed(format!("{}: {e}", r.name)))?;
        if !safe_name(&r.name) {
            return Err(malformed(format!(
                "signed file name {:?} is not a relative path",
                r.name
            )));
        }
        if resources.insert(r.name.clone(), d).is_some() {
            return Err(malformed(format!("signs {:?} twice", r.name)));
        }
        root.extend_from_slice(d.as_bytes());
    }
    if resources.is_empty() {
        return Err(malformed("it signs no file".to_string()));
    }
    let [subject] = st.subject.as_slice() else {
        return Err(malformed(format!(
            "{} subjects; model_signing writes one",
            st.subject.len()
        )));
    };
    let expected = Sha256Digest::of(&root).hex();
    if subject.digest.get("sha256") != Some(&expected) {
        return Err(malformed(format!(
            "the subject's sha256 {:?} is not that of the signed files' digests ({expected})",
            subject.digest.get("sha256").map_or("", String::as_str)
        )));
    }
    let ignore: BTreeSet<String> = ser
        .ignore_paths
        .iter()
        .map(|p| p.trim_end_matches('/').to_string())
        .filter(|p| safe_name(p))
        .collect();
    Ok((st.predicate_type, resources, ignore.into_iter().collect()))
}

/// The signature in one line, for people (inspect, the transfer report).
pub fn summary(s: &ModelSignature) -> String {
    match s.status {
        SignatureStatus::Unverified => format!(
            "{} (OpenSSF model-signing) carried, NOT verified: the manifest named no key",
            s.path
        ),
        SignatureStatus::Verified => {
            let mut line = format!(
                "{} (OpenSSF model-signing) verified with key {}: {} file(s) signed",
                s.path,
                s.key_fingerprint.as_deref().unwrap_or("?"),
                s.files.unwrap_or(0)
            );
            if !s.unsigned.is_empty() {
                line.push_str(&format!(
                    "; not covering {} (ignored by the signer)",
                    s.unsigned.join(", ")
                ));
            }
            line
        }
    }
}

/// The blobs of the signature files `airlock.json` records as verified at
/// pack: verify keeps their bytes for `check_bundle`.
pub fn signature_blobs(d: &Description) -> BTreeSet<Sha256Digest> {
    recorded(d)
        .filter(|(_, s)| s.status == SignatureStatus::Verified)
        .filter_map(|(a, s)| a.layers.iter().find(|l| l.path == s.path))
        .map(|l| *l.digest)
        .collect()
}

/// Each model artifact with the signature its facts record.
fn recorded(d: &Description) -> impl Iterator<Item = (&Artifact, &ModelSignature)> {
    d.models.iter().filter_map(|m| {
        let s = m.signature.as_ref()?;
        let a = d
            .artifacts
            .iter()
            .find(|a| a.reference == m.artifact && a.kind == ArtifactKind::Model)?;
        Some((a, s))
    })
}

/// The high side's own check of every model signature pack verified: the
/// signature file's bytes (kept by verify: payload path → bytes) against the
/// public key `airlock.json` records, and the signed files against the
/// digests of the model's layers (each verified against the payload). A
/// failure, or a result other than the one recorded, is a finding naming the
/// model and the file. Returns how many signatures were checked.
pub fn check_bundle(
    d: &Description,
    kept: &HashMap<String, Vec<u8>>,
    report: &mut Report,
) -> usize {
    let mut checked = 0;
    for m in &d.models {
        let Some(s) = &m.signature else { continue };
        let at = |file: &str| format!("{}/{file}", m.artifact);
        let Some(a) = d
            .artifacts
            .iter()
            .find(|a| a.reference == m.artifact && a.kind == ArtifactKind::Model)
        else {
            report.add(
                DESCRIPTION,
                format!(
                    "models: {:?} records a signature but is not a model artifact",
                    m.artifact
                ),
            );
            continue;
        };
        let Some(layer) = a.layers.iter().find(|l| l.path == s.path) else {
            report.add(
                at(&s.path),
                format!("model {}: airlock.json records this signature file, but the model has no such file", a.name),
            );
            continue;
        };
        if s.status != SignatureStatus::Verified {
            continue;
        }
        let key = match s.public_key.as_deref().map(SignerKey::from_pem) {
            Some(Ok(k)) => k,
            Some(Err(e)) => {
                report.add(
                    at(&s.path),
                    format!("model {}: the public key airlock.json records {e}", a.name),
                );
                continue;
            }
            None => {
                report.add(
                    at(&s.path),
                    format!("model {}: airlock.json records the signature as verified but no public key", a.name),
                );
                continue;
            }
        };
        let Some(bytes) = kept.get(&blob_path(layer.digest)) else {
            report.add(
                at(&s.path),
                format!("model {}: the signature file was not read (larger than {MAX_JSON_BLOB} bytes, or missing)", a.name),
            );
            continue;
        };
        let files: BTreeMap<String, Sha256Digest> = a
            .layers
            .iter()
            .filter(|l| l.path != s.path)
            .map(|l| (l.path.to_owned(), *l.digest))
            .collect();
        checked += 1;
        match check(&s.path, bytes, &key, &files) {
            Ok(again) if again == *s => {}
            Ok(again) => report.add(
                at(&s.path),
                format!(
                    "model {}: the signature verifies, but not as airlock.json records it (recorded {}, found {})",
                    a.name,
                    String::from_utf8_lossy(&crate::bundle::canonical_json(s)),
                    String::from_utf8_lossy(&crate::bundle::canonical_json(&again)),
                ),
            ),
            Err(problems) => {
                for p in problems {
                    report.add(at(p.file()), format!("model {}: {p}", a.name));
                }
            }
        }
    }
    checked
}

/// A relative path of normal components (`a/b.txt`), no `.`, `..` or empty parts.
fn safe_name(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_other_than_p256_public_keys_are_named() {
        assert_eq!(
            SignerKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err(),
            KeyProblem::Certificate
        );
        assert_eq!(
            SignerKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err(),
            KeyProblem::Private
        );
        assert!(matches!(
            SignerKey::from_pem("not a key").unwrap_err(),
            KeyProblem::NotP256(_)
        ));
    }

    /// A model_signing-shaped signature over `files` (name, bytes), with
    /// `ignore` as its ignore_paths and `subject` overriding the root digest.
    fn signed(
        sk: &p256::ecdsa::SigningKey,
        files: &[(&str, &[u8])],
        ignore: &[&str],
        subject: Option<&str>,
    ) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let mut root = Vec::new();
        let resources: Vec<serde_json::Value> = files
            .iter()
            .map(|(n, b)| {
                root.extend_from_slice(Sha256Digest::of(b).as_bytes());
                serde_json::json!({"name": n, "algorithm": "sha256", "digest": Sha256Digest::of(b).hex()})
            })
            .collect();
        let st = serde_json::json!({
            "_type": STATEMENT_V1,
            "subject": [{"name": "m", "digest": {"sha256": subject.map_or_else(|| Sha256Digest::of(&root).hex(), str::to_string)}}],
            "predicateType": MODEL_SIGNING_PREDICATE,
            "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": ignore}, "resources": resources},
        });
        let payload = serde_json::to_vec(&st).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(&pae(INTOTO_PAYLOAD_TYPE, &payload));
        let b64 = base64::engine::general_purpose::STANDARD;
        serde_json::to_vec(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
            "dsseEnvelope": {"payload": b64.encode(&payload), "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": b64.encode(sig.to_der().as_bytes()), "keyid": ""}]},
        }))
        .unwrap()
    }

    #[test]
    fn files_are_matched_and_ignore_paths_cover_whole_components() {
        let sk = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let pem = p256::PublicKey::from(sk.verifying_key())
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let key = SignerKey::from_pem(&pem).unwrap();
        let files = [
            ("a.bin", b"aa".as_slice()),
            ("sub/b.json", b"{}".as_slice()),
        ];
        let have = |extra: &[&str]| -> BTreeMap<String, Sha256Digest> {
            files
                .iter()
                .map(|(n, b)| (n.to_string(), Sha256Digest::of(b)))
                .chain(
                    extra
                        .iter()
                        .map(|n| (n.to_string(), Sha256Digest::of(n.as_bytes()))),
                )
                .collect()
        };
        let sig = signed(&sk, &files, &[".git", "model.sig"], None);
        let ok = check("model.sig", &sig, &key, &have(&[".git/config"])).unwrap();
        assert_eq!(ok.files, Some(2));
        assert_eq!(ok.unsigned, [".git/config"]);
        // `.git` ignores `.git/...`, not `.gitfoo`.
        let err = check("model.sig", &sig, &key, &have(&[".gitfoo"])).unwrap_err();
        assert!(
            matches!(&err[..], [SigProblem::Unsigned { file, .. }] if file == ".gitfoo"),
            "{err:?}"
        );
        // A root digest that is not that of the resources.
        let bad = signed(&sk, &files, &[], Some(&"0".repeat(64)));
        let err = check("model.sig", &bad, &key, &have(&[])).unwrap_err();
        assert!(
            err[0].to_string().contains("the subject's sha256"),
            "{err:?}"
        );
        // Another key, without a hint: the signature fails.
        let other = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let sig = signed(&other, &files, &[], None);
        let err = check("model.sig", &sig, &key, &have(&[])).unwrap_err();
        assert!(
            matches!(&err[..], [SigProblem::BadSignature { .. }]),
            "{err:?}"
        );
    }

    #[test]
    fn safe_names() {
        assert!(safe_name("a/b.txt"));
        for p in ["", "/a", "a//b", "./a", "a/../b", ".."] {
            assert!(!safe_name(p), "{p}");
        }
    }
}
