//! Ed25519 keys: generation, PEM / OpenSSH encodings and key ids.
//!
//! A key id is the first 32 hex digits of the SHA-256 of the key's OpenSSH
//! wire-format public key (the digest `ssh-keygen -l` prints in base64), so it
//! is stable whichever encoding the public key arrives in.
//!
//! Private keys are written as RFC 8410 PKCS#8 v1 PEM (`PATH.key`, the form
//! OpenSSL 3 and Python `cryptography` read) and as an unencrypted OpenSSH
//! private key (`PATH.ssh`, beside `PATH.ssh.pub`, for `ssh-keygen -Y sign`).
//! Either form, and PKCS#8 v2 (public key embedded), loads as `--key`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{
    DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes, PrivateKeyInfo,
};
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
    /// The same private key in OpenSSH form (unencrypted, 0600), for `ssh-keygen -Y sign`.
    pub ssh_private_key: PathBuf,
    pub ssh_public_key: PathBuf,
}

/// PEM label of an OpenSSH private key.
const OPENSSH_LABEL: &str = "OPENSSH PRIVATE KEY";
const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";
/// Key files are small; anything larger is not a key.
const MAX_KEY_FILE: u64 = 64 * 1024;

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

    /// Loads a private key: PKCS#8 PEM (v1 or v2) or an unencrypted OpenSSH
    /// private key. Errors never quote the file's content. The caller shows
    /// [`exposure_warning`] for the same path.
    pub fn load(path: &Path) -> Result<Self> {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(|e| Error::cannot_open(path, "private key", &e))?
            .take(MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(Error::input(
                path,
                format!("larger than {MAX_KEY_FILE} bytes, so not a private key file"),
            ));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            Error::input(
                path,
                "not a PEM text file; --key takes an Ed25519 private key in PKCS#8 PEM or OpenSSH form (make one with `airlock keygen`)",
            )
        })?;
        let key = parse_private(text).map_err(|m| Error::input(path, m))?;
        Ok(Self::from_signing(key))
    }

    /// The private key as RFC 8410 PKCS#8 v1 PEM (no public key inside), the
    /// form OpenSSL 3.0 and Python `cryptography` read.
    pub fn pkcs8_pem(&self) -> Result<String> {
        let pem = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| Error::Usage(format!("cannot encode private key: {e}")))?;
        Ok(pem.to_string())
    }

    /// The private key as an unencrypted OpenSSH private key (`PROTOCOL.key`).
    pub fn openssh_pem(&self, comment: &str) -> Result<String> {
        let mut check = [0u8; 4];
        getrandom::fill(&mut check)
            .map_err(|e| Error::Usage(format!("no system randomness for key encoding: {e}")))?;
        let public = self.public.ssh_wire();
        let mut private = Vec::new();
        private.extend_from_slice(&check);
        private.extend_from_slice(&check);
        put_string(&mut private, SSH_ED25519.as_bytes());
        put_string(&mut private, self.public.key.as_bytes());
        let mut both = self.key.to_bytes().to_vec();
        both.extend_from_slice(self.public.key.as_bytes());
        put_string(&mut private, &both);
        put_string(&mut private, comment.as_bytes());
        let mut pad = 1u8;
        while private.len() % 8 != 0 {
            private.push(pad);
            pad += 1;
        }
        let mut blob = OPENSSH_MAGIC.to_vec();
        put_string(&mut blob, b"none");
        put_string(&mut blob, b"none");
        put_string(&mut blob, b"");
        blob.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut blob, &public);
        put_string(&mut blob, &private);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
        let mut out = format!("-----BEGIN {OPENSSH_LABEL}-----\n");
        for chunk in b64.as_bytes().chunks(70) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
            out.push('\n');
        }
        out.push_str(&format!("-----END {OPENSSH_LABEL}-----\n"));
        Ok(out)
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// Writes `PATH.key` (PKCS#8 v1, 0600), `PATH.pub`, `PATH.ssh` (OpenSSH
    /// private key, 0600) and `PATH.ssh.pub`; refuses to overwrite.
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
            ssh_private_key: with(".ssh"),
            ssh_public_key: with(".ssh.pub"),
        };
        for p in [
            &files.private_key,
            &files.public_key,
            &files.ssh_private_key,
            &files.ssh_public_key,
        ] {
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
        let comment = format!("airlock:{}", self.public.id);
        write_secret(&files.private_key, &self.pkcs8_pem()?)?;
        write_secret(&files.ssh_private_key, &self.openssh_pem(&comment)?)?;
        fs_err::write(&files.public_key, self.public.pem())?;
        fs_err::write(
            &files.ssh_public_key,
            format!("{} {comment}\n", self.public.openssh()),
        )?;
        Ok(files)
    }
}

/// Creates `path` (which must not exist) with mode 0600 and writes `text`.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    let mut opts = fs_err::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use fs_err::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The warning to show, as ssh does, when a private key file can be read by
/// its group or by others. ssh refuses such keys; airlock only warns, so the
/// committed demo keys stay usable.
pub fn exposure_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "private key {} is accessible by group or others (mode {mode:04o}); \
                 anyone who can read it can sign as you. Fix: chmod 600 {}",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The PEM label of the first `-----BEGIN X-----` line, if any.
fn pem_label(text: &str) -> Option<&str> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

/// Parses a private key file's text; the error says what was found instead.
fn parse_private(text: &str) -> std::result::Result<SigningKey, String> {
    const MAKE: &str = "airlock signs with Ed25519 keys only; make one with `airlock keygen`";
    let t = text.trim();
    match pem_label(t) {
        Some("PRIVATE KEY") => parse_pkcs8(t),
        Some(OPENSSH_LABEL) => parse_openssh(t),
        Some("ENCRYPTED PRIVATE KEY") => Err(
            "an encrypted (passphrase-protected) PKCS#8 private key, which airlock does not read; \
             give --key an unencrypted key file kept with mode 0600, for example one from `airlock keygen`"
                .into(),
        ),
        Some("RSA PRIVATE KEY") => Err(format!("an RSA private key (PKCS#1 PEM); {MAKE}")),
        Some("EC PRIVATE KEY") => Err(format!("an EC (ECDSA) private key (SEC1 PEM); {MAKE}")),
        Some("DSA PRIVATE KEY") => Err(format!("a DSA private key; {MAKE}")),
        Some("PUBLIC KEY") | Some("RSA PUBLIC KEY") => Err(
            "a public key, not a private key; --key takes the private key (PATH.key or PATH.ssh from `airlock keygen`)"
                .into(),
        ),
        Some(other) => Err(format!(
            "a PEM block of type {:?}, not a private key; --key takes an Ed25519 private key in PKCS#8 PEM \
             or OpenSSH form; make one with `airlock keygen`",
            other.chars().take(40).collect::<String>()
        )),
        None if t.starts_with("ssh-") || t.starts_with("ecdsa-") => Err(
            "an OpenSSH public key line, not a private key; --key takes the private key (PATH.key or PATH.ssh from `airlock keygen`)"
                .into(),
        ),
        None => Err(
            "not a PEM private key; --key takes an Ed25519 private key in PKCS#8 PEM \
             or OpenSSH form; make one with `airlock keygen`"
                .into(),
        ),
    }
}

/// A PKCS#8 PEM private key, v1 (RFC 8410) or v2 (public key embedded, which
/// must match the private key).
fn parse_pkcs8(t: &str) -> std::result::Result<SigningKey, String> {
    const BAD: &str = "a malformed PKCS#8 PEM private key; make a new key with `airlock keygen`";
    // Any line width (not only PEM's 64 columns): the DER is what counts.
    let body = t
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|s| s.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or(BAD)?;
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| BAD.to_string())?;
    let info = PrivateKeyInfo::try_from(der.as_slice()).map_err(|_| BAD.to_string())?;
    let oid = info.algorithm.oid;
    if oid != ed25519_dalek::pkcs8::ALGORITHM_OID {
        return Err(format!(
            "a PKCS#8 private key for {} (algorithm OID {oid}); airlock signs with Ed25519 keys only; \
             make one with `airlock keygen`",
            algorithm_name(&info)
        ));
    }
    let pair = KeypairBytes::try_from(info).map_err(|_| BAD.to_string())?;
    SigningKey::try_from(pair).map_err(|_| {
        "a PKCS#8 v2 Ed25519 private key whose embedded public key does not match the private key; \
         the file is corrupt, make a new key with `airlock keygen`"
            .to_string()
    })
}

/// A human name for a PKCS#8 key's algorithm.
fn algorithm_name(info: &PrivateKeyInfo<'_>) -> String {
    let curve = || {
        info.algorithm
            .parameters_oid()
            .ok()
            .map(|c| match c.to_string().as_str() {
                "1.2.840.10045.3.1.7" => "P-256".to_string(),
                "1.3.132.0.34" => "P-384".to_string(),
                "1.3.132.0.35" => "P-521".to_string(),
                "1.3.132.0.10" => "secp256k1".to_string(),
                other => format!("curve {other}"),
            })
            .unwrap_or_else(|| "unknown curve".into())
    };
    match info.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        "1.2.840.10045.2.1" => format!("EC (ECDSA, {})", curve()),
        "1.2.840.10040.4.1" => "DSA".into(),
        "1.3.101.110" => "X25519".into(),
        "1.3.101.111" => "X448".into(),
        "1.3.101.113" => "Ed448".into(),
        _ => "an algorithm airlock does not know".into(),
    }
}

/// An unencrypted OpenSSH private key holding one ssh-ed25519 key.
fn parse_openssh(t: &str) -> std::result::Result<SigningKey, String> {
    const BAD: &str = "a malformed OpenSSH private key; make a new key with `airlock keygen` or `ssh-keygen -t ed25519`";
    let body = t
        .strip_prefix(&format!("-----BEGIN {OPENSSH_LABEL}-----"))
        .and_then(|s| s.strip_suffix(&format!("-----END {OPENSSH_LABEL}-----")))
        .ok_or(BAD)?;
    let b64: String = body.split_whitespace().collect();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| BAD.to_string())?;
    let mut r = SshReader::new(&blob);
    if r.take(OPENSSH_MAGIC.len()) != Some(OPENSSH_MAGIC) {
        return Err(BAD.into());
    }
    let cipher = r.string().ok_or(BAD)?;
    let kdf = r.string().ok_or(BAD)?;
    let _kdf_options = r.string().ok_or(BAD)?;
    if cipher != b"none" || kdf != b"none" {
        return Err(format!(
            "an encrypted (passphrase-protected) OpenSSH private key (cipher {}), which airlock does not read; \
             give --key an unencrypted key file kept with mode 0600, for example PATH.ssh from `airlock keygen`",
            String::from_utf8_lossy(cipher).chars().take(40).collect::<String>()
        ));
    }
    if r.u32() != Some(1) {
        return Err("an OpenSSH private key file holding more than one key; give --key a file with one ssh-ed25519 key".into());
    }
    let public = r.string().ok_or(BAD)?;
    let alg = SshReader::new(public).string().ok_or(BAD)?;
    if alg != SSH_ED25519.as_bytes() {
        return Err(format!(
            "an OpenSSH {} private key; airlock signs with Ed25519 (ssh-ed25519) only; \
             make a key with `airlock keygen` or `ssh-keygen -t ed25519`",
            String::from_utf8_lossy(alg)
                .chars()
                .take(40)
                .collect::<String>()
        ));
    }
    let public = PublicKey::from_ssh_wire(public)?;
    let private = r.string().ok_or(BAD)?;
    if !r.done() {
        return Err(BAD.into());
    }
    let mut p = SshReader::new(private);
    let (c1, c2) = (p.u32().ok_or(BAD)?, p.u32().ok_or(BAD)?);
    if c1 != c2 {
        return Err(BAD.into());
    }
    if p.string() != Some(SSH_ED25519.as_bytes()) {
        return Err(BAD.into());
    }
    let pub_raw = p.string().ok_or(BAD)?;
    let both = p.string().ok_or(BAD)?;
    let _comment = p.string().ok_or(BAD)?;
    let padding = p.take(p.remaining()).unwrap_or_default();
    if padding.len() >= 8
        || padding
            .iter()
            .enumerate()
            .any(|(i, b)| *b as usize != i + 1)
    {
        return Err(BAD.into());
    }
    let seed: [u8; 32] = both.get(..32).and_then(|s| s.try_into().ok()).ok_or(BAD)?;
    let key = SigningKey::from_bytes(&seed);
    let derived = key.verifying_key();
    if both.len() != 64
        || &both[32..] != derived.as_bytes()
        || pub_raw != derived.as_bytes()
        || public.key != derived
    {
        return Err(
            "an OpenSSH private key whose public half does not match its private key; the file is corrupt"
                .into(),
        );
    }
    Ok(key)
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
    pub fn remaining(&self) -> usize {
        self.buf.len()
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
    fn private_encodings_round_trip() {
        let k = PrivateKey::generate().unwrap();
        let v1 = k.pkcs8_pem().unwrap();
        assert!(v1.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw"));
        let ssh = k.openssh_pem("c").unwrap();
        for text in [&v1, &ssh] {
            let back = parse_private(text).unwrap();
            assert_eq!(back.to_bytes(), k.key.to_bytes());
        }
        // PKCS#8 v2 (what keygen wrote before) still loads.
        let v2 = k
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        assert_eq!(parse_private(&v2).unwrap().to_bytes(), k.key.to_bytes());
    }

    #[test]
    fn damaged_openssh_keys_are_errors_not_panics() {
        let k = PrivateKey::generate().unwrap();
        let ssh = k.openssh_pem("comment").unwrap();
        let b64: String = ssh.lines().filter(|l| !l.starts_with("-----")).collect();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let armor = |b: &[u8]| {
            format!(
                "-----BEGIN {OPENSSH_LABEL}-----\n{}\n-----END {OPENSSH_LABEL}-----\n",
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        };
        for n in 0..blob.len() {
            assert!(
                parse_private(&armor(&blob[..n])).is_err(),
                "truncated at {n}"
            );
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x40;
            // Flipping a byte of the comment still leaves a usable key; every
            // other change is refused. Nothing panics.
            if let Ok(key) = parse_private(&armor(&b)) {
                assert_eq!(key.to_bytes(), k.key.to_bytes(), "byte {i}");
            }
        }
    }

    #[test]
    fn rejects_other_key_types() {
        assert!(PublicKey::parse("ssh-rsa AAAAB3NzaC1yc2E= x").is_err());
        assert!(PublicKey::parse("garbage").is_err());
    }
}
