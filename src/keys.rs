//! Ed25519 keys: generation, PEM / OpenSSH encodings and key ids.
//!
//! A key id is the first 32 hex digits of the SHA-256 of the key's OpenSSH
//! wire-format public key (the digest `ssh-keygen -l` prints in base64), so it
//! is stable whichever encoding the public key arrives in.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

pub const SSH_ED25519: &str = "ssh-ed25519";

/// A private key with its id. The key bytes never appear in Debug output.
pub struct PrivateKey {
    key: SigningKey,
    pub public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.public.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub key: VerifyingKey,
    pub id: String,
}

/// The files `keygen` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyFiles {
    pub id: String,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub ssh_public_key: PathBuf,
}

impl PublicKey {
    pub fn new(key: VerifyingKey) -> Self {
        let id = Sha256Digest::of(&ssh_wire_public(&key)).hex()[..32].to_string();
        PublicKey { key, id }
    }

    /// Reads a public key given as SPKI PEM, an OpenSSH `ssh-ed25519 AAAA...` line,
    /// or a PKCS#8 private key PEM (whose public half is taken).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let t = text.trim();
        if t.starts_with("-----BEGIN PUBLIC KEY-----") {
            let key = VerifyingKey::from_public_key_pem(t)
                .map_err(|e| format!("not an Ed25519 SPKI PEM public key: {e}"))?;
            return Ok(Self::new(key));
        }
        if t.starts_with(SSH_ED25519) {
            let b64 = t
                .split_whitespace()
                .nth(1)
                .ok_or("OpenSSH key line has no key data")?;
            let blob = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("OpenSSH key data is not base64: {e}"))?;
            return Self::from_ssh_wire(&blob);
        }
        Err("expected an Ed25519 public key as SPKI PEM (-----BEGIN PUBLIC KEY-----) or an OpenSSH line (ssh-ed25519 AAAA...)".into())
    }

    pub fn from_ssh_wire(blob: &[u8]) -> std::result::Result<Self, String> {
        let mut r = SshReader::new(blob);
        let alg = r.string().ok_or("truncated OpenSSH public key")?;
        if alg != SSH_ED25519.as_bytes() {
            return Err(format!(
                "unsupported key type {:?}; airlock uses ssh-ed25519",
                String::from_utf8_lossy(alg)
            ));
        }
        let raw = r.string().ok_or("truncated OpenSSH public key")?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| "ed25519 public key must be 32 bytes")?;
        if !r.done() {
            return Err("trailing bytes after OpenSSH public key".into());
        }
        let key = VerifyingKey::from_bytes(&raw)
            .map_err(|e| format!("invalid ed25519 public key: {e}"))?;
        Ok(Self::new(key))
    }

    pub fn ssh_wire(&self) -> Vec<u8> {
        ssh_wire_public(&self.key)
    }

    /// `ssh-ed25519 AAAA...` (no comment).
    pub fn openssh(&self) -> String {
        format!(
            "{SSH_ED25519} {}",
            base64::engine::general_purpose::STANDARD.encode(self.ssh_wire())
        )
    }

    pub fn pem(&self) -> String {
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("ed25519 public key encodes")
    }

    /// Strict verification: rejects small-order keys and malleable signatures.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok()
    }
}

impl PrivateKey {
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| Error::Usage(format!("no system randomness for key generation: {e}")))?;
        Ok(Self::from_signing(SigningKey::from_bytes(&seed)))
    }

    fn from_signing(key: SigningKey) -> Self {
        let public = PublicKey::new(key.verifying_key());
        PrivateKey { key, public }
    }

    /// Loads a PKCS#8 PEM private key. The error never quotes the file's content.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path)?;
        let key = SigningKey::from_pkcs8_pem(text.trim()).map_err(|_| {
            Error::input(
                path,
                "not an Ed25519 private key in PKCS#8 PEM form; make one with `airlock keygen`",
            )
        })?;
        Ok(Self::from_signing(key))
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// Writes `PATH.key` (0600), `PATH.pub` and `PATH.ssh.pub`; refuses to overwrite.
    pub fn write_files(&self, base: &Path) -> Result<KeyFiles> {
        let with = |suffix: &str| {
            let mut s = base.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        let files = KeyFiles {
            id: self.public.id.clone(),
            private_key: with(".key"),
            public_key: with(".pub"),
            ssh_public_key: with(".ssh.pub"),
        };
        for p in [&files.private_key, &files.public_key, &files.ssh_public_key] {
            if p.exists() {
                return Err(Error::Usage(format!(
                    "{} already exists; choose another path or remove it first",
                    p.display()
                )));
            }
        }
        if let Some(dir) = files
            .private_key
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            fs_err::create_dir_all(dir)?;
        }
        let pem = self
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| Error::Usage(format!("cannot encode private key: {e}")))?;
        let mut opts = fs_err::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use fs_err::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&files.private_key)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        fs_err::write(&files.public_key, self.public.pem())?;
        fs_err::write(
            &files.ssh_public_key,
            format!("{} airlock:{}\n", self.public.openssh(), self.public.id),
        )?;
        Ok(files)
    }
}

fn ssh_wire_public(key: &VerifyingKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(51);
    put_string(&mut out, SSH_ED25519.as_bytes());
    put_string(&mut out, key.as_bytes());
    out
}

/// Appends an SSH wire `string` (u32 big-endian length, then the bytes).
pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads SSH wire-format fields.
pub(crate) struct SshReader<'a> {
    buf: &'a [u8],
}

impl<'a> SshReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        SshReader { buf }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn done(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_agree_on_the_id() {
        let k = PrivateKey::generate().unwrap();
        let from_pem = PublicKey::parse(&k.public.pem()).unwrap();
        let from_ssh = PublicKey::parse(&format!("{} comment", k.public.openssh())).unwrap();
        assert_eq!(from_pem.id, k.public.id);
        assert_eq!(from_ssh.id, k.public.id);
        assert_eq!(k.public.id.len(), 32);
    }

    #[test]
    fn signatures_verify_strictly() {
        let k = PrivateKey::generate().unwrap();
        let sig = k.sign(b"hello");
        assert!(k.public.verify(b"hello", &sig));
        assert!(!k.public.verify(b"hellO", &sig));
        assert!(!k.public.verify(b"hello", &sig[..63]));
    }

    #[test]
    fn rejects_other_key_types() {
        assert!(PublicKey::parse("ssh-rsa AAAAB3NzaC1yc2E= x").is_err());
        assert!(PublicKey::parse("garbage").is_err());
    }
}
