//! OpenSSH signatures (`PROTOCOL.sshsig`), so `ssh-keygen -Y verify` can check
//! a bundle without airlock.

use base64::Engine as _;
use sha2::{Digest, Sha512};

use crate::keys::{put_string, PrivateKey, PublicKey, SshReader, SSH_ED25519};

const MAGIC: &[u8; 6] = b"SSHSIG";
const VERSION: u32 = 1;
const HASH: &str = "sha512";
const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const END: &str = "-----END SSH SIGNATURE-----";

/// The namespace airlock signs bundles under.
pub const BUNDLE_NAMESPACE: &str = "airlock-bundle";

fn signed_data(namespace: &str, message: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(MAGIC);
    put_string(&mut d, namespace.as_bytes());
    put_string(&mut d, b"");
    put_string(&mut d, HASH.as_bytes());
    put_string(&mut d, &Sha512::digest(message));
    d
}

/// An armored SSHSIG over `message`.
pub fn sign(key: &PrivateKey, namespace: &str, message: &[u8]) -> String {
    let sig = key.sign(&signed_data(namespace, message));
    let mut sig_blob = Vec::new();
    put_string(&mut sig_blob, SSH_ED25519.as_bytes());
    put_string(&mut sig_blob, &sig);
    let mut blob = Vec::new();
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&VERSION.to_be_bytes());
    put_string(&mut blob, &key.public.ssh_wire());
    put_string(&mut blob, namespace.as_bytes());
    put_string(&mut blob, b"");
    put_string(&mut blob, HASH.as_bytes());
    put_string(&mut blob, &sig_blob);
    let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
    let mut out = String::from(BEGIN);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Checks an armored SSHSIG over `message`; returns the signer's public key.
pub fn verify(armored: &str, namespace: &str, message: &[u8]) -> Result<PublicKey, String> {
    let body = armored
        .trim()
        .strip_prefix(BEGIN)
        .and_then(|s| s.strip_suffix(END))
        .ok_or("not an armored SSH signature")?;
    let b64: String = body.split_whitespace().collect();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("SSH signature is not base64: {e}"))?;
    let mut r = SshReader::new(&blob);
    if r.take(6) != Some(MAGIC) || r.u32() != Some(VERSION) {
        return Err("not an SSHSIG version 1 blob".into());
    }
    let truncated = || "truncated SSH signature".to_string();
    let pk = PublicKey::from_ssh_wire(r.string().ok_or_else(truncated)?)?;
    let ns = r.string().ok_or_else(truncated)?;
    if ns != namespace.as_bytes() {
        return Err(format!(
            "signature namespace is {:?}, expected {namespace:?}",
            String::from_utf8_lossy(ns)
        ));
    }
    let _reserved = r.string().ok_or_else(truncated)?;
    let hash = r.string().ok_or_else(truncated)?;
    if hash != HASH.as_bytes() {
        return Err(format!(
            "unsupported SSHSIG hash {:?}",
            String::from_utf8_lossy(hash)
        ));
    }
    let sig_blob = r.string().ok_or_else(truncated)?;
    if !r.done() {
        return Err("trailing bytes after SSH signature".into());
    }
    let mut s = SshReader::new(sig_blob);
    if s.string() != Some(SSH_ED25519.as_bytes()) {
        return Err("SSH signature is not ssh-ed25519".into());
    }
    let sig = s.string().ok_or_else(truncated)?;
    if !pk.verify(&signed_data(namespace, message), sig) {
        return Err("SSH signature does not match".into());
    }
    Ok(pk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = PrivateKey::generate().unwrap();
        let s = sign(&k, BUNDLE_NAMESPACE, b"msg");
        assert_eq!(
            verify(&s, BUNDLE_NAMESPACE, b"msg").unwrap().id,
            k.public.id
        );
        assert!(verify(&s, BUNDLE_NAMESPACE, b"msG").is_err());
        assert!(verify(&s, "other", b"msg").is_err());
    }
}
