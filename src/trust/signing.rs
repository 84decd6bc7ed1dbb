//! Bundle signatures: per signer, a DSSE envelope (in-toto Statement v1 whose
//! subject is the tag manifest) and an OpenSSH SSHSIG over the tag manifest.

use serde::{Deserialize, Serialize};

use crate::bundle::{SIGNATURES_DIR, TAGMANIFEST};
use crate::digest::Sha256Digest;
use crate::dsse::{Envelope, Statement, Subject, INTOTO_PAYLOAD_TYPE, STATEMENT_V1};
use crate::keys::{PrivateKey, PublicKey};
use crate::sshsig;

pub const SIGNATURE_PREDICATE: &str = "https://airlock.dev/attestations/bundle-signature/v1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignaturePredicate {
    pub bundle: String,
    pub version: String,
    /// The signer's public key (OpenSSH form), so anyone can check the
    /// signature; whether the key is trusted is the trust policy's business.
    pub public_key: String,
}

pub fn dsse_path(key_id: &str) -> String {
    format!("{SIGNATURES_DIR}/{key_id}.dsse.json")
}

pub fn sshsig_path(key_id: &str) -> String {
    format!("{SIGNATURES_DIR}/{key_id}.sshsig")
}

/// The two signature files of one signer: (path, bytes).
pub fn sign(
    key: &PrivateKey,
    bundle: &str,
    version: &str,
    tagmanifest: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let statement = Statement {
        type_: STATEMENT_V1.to_string(),
        subject: vec![Subject::sha256(TAGMANIFEST, &Sha256Digest::of(tagmanifest))],
        predicate_type: SIGNATURE_PREDICATE.to_string(),
        predicate: SignaturePredicate {
            bundle: bundle.to_string(),
            version: version.to_string(),
            public_key: key.public.openssh(),
        },
    };
    let payload = crate::bundle::canonical_json(&statement);
    let envelope = Envelope::sign(key, INTOTO_PAYLOAD_TYPE, &payload);
    vec![
        (dsse_path(&key.public.id), envelope.to_json()),
        (
            sshsig_path(&key.public.id),
            sshsig::sign(key, sshsig::BUNDLE_NAMESPACE, tagmanifest).into_bytes(),
        ),
    ]
}

/// Checks one signer's files against the tag manifest. Returns the signer's
/// key when both signatures hold; otherwise why not.
pub fn check(
    file_key_id: &str,
    dsse: &[u8],
    ssh: Option<&[u8]>,
    tagmanifest: &[u8],
) -> Result<PublicKey, String> {
    let envelope: Envelope =
        serde_json::from_slice(dsse).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(format!(
            "payloadType is {:?}, expected {INTOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    let payload = envelope.payload_bytes()?;
    let statement: Statement<SignaturePredicate> = serde_json::from_slice(&payload)
        .map_err(|e| format!("payload is not an airlock signature statement: {e}"))?;
    if statement.type_ != STATEMENT_V1 || statement.predicate_type != SIGNATURE_PREDICATE {
        return Err("payload is not an in-toto Statement v1 of an airlock bundle signature".into());
    }
    let key = PublicKey::parse(&statement.predicate.public_key)?;
    if key.id != file_key_id {
        return Err(format!(
            "signed by key {} but stored under key id {file_key_id}",
            key.id
        ));
    }
    let expected = Subject::sha256(TAGMANIFEST, &Sha256Digest::of(tagmanifest));
    if statement.subject != vec![expected] {
        return Err("statement subject is not this bundle's tagmanifest-sha256.txt (signature of another bundle?)".into());
    }
    if !envelope.verify_with(&key) {
        return Err("DSSE signature does not verify".into());
    }
    let ssh = ssh.ok_or("the OpenSSH signature (.sshsig) is missing")?;
    let text = std::str::from_utf8(ssh).map_err(|_| "the .sshsig file is not text")?;
    let ssh_key = sshsig::verify(text, sshsig::BUNDLE_NAMESPACE, tagmanifest)
        .map_err(|e| format!(".sshsig: {e}"))?;
    if ssh_key != key {
        return Err(".sshsig is by a different key than the DSSE envelope".into());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_check() {
        let k = PrivateKey::generate().unwrap();
        let files = sign(&k, "b", "1.0.0", b"tagmanifest");
        let (dsse, ssh) = (&files[0].1, &files[1].1);
        assert_eq!(
            check(&k.public.id, dsse, Some(ssh), b"tagmanifest").unwrap(),
            k.public
        );
        assert!(check(&k.public.id, dsse, Some(ssh), b"other").is_err());
        assert!(check(&k.public.id, dsse, None, b"tagmanifest").is_err());
        assert!(check("0000", dsse, Some(ssh), b"tagmanifest").is_err());
    }
}
