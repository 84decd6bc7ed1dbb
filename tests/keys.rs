//! Key files other tools read and write: `keygen`'s PKCS#8 v1 key is read by
//! OpenSSL 3 and Python `cryptography`, its OpenSSH private key by
//! `ssh-keygen -Y sign`; `--key` takes OpenSSH keys made by `ssh-keygen`, still
//! loads PKCS#8 v2 keys (the committed demo key), names the algorithm of a key
//! it cannot use and warns about a key file others can read.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed; run the tests through scripts/test, which installs it"
    );
    Command::new(name)
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Packs the fixture's manifest with `key`; returns the output.
fn pack_with_key(f: &Fixture, key: &Path, out: &str) -> std::process::Output {
    run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        key.to_str().unwrap(),
        "--out",
        &f.s(out),
        "--json",
    ])
}

#[test]
fn keygen_writes_keys_openssl_and_python_cryptography_read() {
    let f = Fixture::new();
    let o = run(&["keygen", &f.s("k/alice"), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["sshPrivateKey"], f.s("k/alice.ssh"));
    for (file, want) in [
        ("k/alice.key", 0o600),
        ("k/alice.ssh", 0o600),
        ("k/alice.pub", 0o644),
    ] {
        assert_eq!(mode(&f.path(file)) & 0o077, want & 0o077, "{file}");
    }
    let pem = std::fs::read_to_string(f.path("k/alice.key")).unwrap();
    // RFC 8410 v1: version 0 and no public key, 48 bytes of DER in one line.
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"),
        "{pem}"
    );

    // OpenSSL 3.0 reads it, and derives the public key keygen wrote.
    let spki = ok(tool("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(f.path("k/alice.key")));
    assert_eq!(
        spki,
        std::fs::read_to_string(f.path("k/alice.pub")).unwrap()
    );
    let text = ok(tool("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(f.path("k/alice.key")));
    assert!(text.starts_with("ED25519 Private-Key:"), "{text}");

    // Python cryptography reads both private files as the same key, whose
    // public half is the one in alice.pub and alice.ssh.pub.
    let script = r#"
import sys
from cryptography.hazmat.primitives import serialization as s
base = sys.argv[1]
pem = s.load_pem_private_key(open(base + ".key", "rb").read(), None)
ssh = s.load_ssh_private_key(open(base + ".ssh", "rb").read(), None)
assert pem.private_bytes_raw() == ssh.private_bytes_raw(), "the two private files differ"
spki = pem.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
assert spki == open(base + ".pub", "rb").read(), "public key differs from .pub"
line = ssh.public_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
assert open(base + ".ssh.pub", "rb").read().startswith(line + b" "), "differs from .ssh.pub"
print(type(pem).__name__)
"#;
    let out = ok(Command::new("python3")
        .args(["-c", script])
        .arg(f.path("k/alice")));
    assert!(out.contains("Ed25519PrivateKey"), "{out}");

    // airlock itself signs with both files under the same key id.
    let id = j["keyId"].as_str().unwrap().to_string();
    for (file, out) in [("k/alice.key", "d1"), ("k/alice.ssh", "d2")] {
        let o = pack_with_key(&f, &f.path(file), out);
        assert_eq!(code(&o), 0, "{file}: {}", stderr(&o));
        let b = json(&o)["path"].as_str().unwrap().to_string();
        assert!(
            Path::new(&b)
                .join(format!("signatures/{id}.sshsig"))
                .is_file(),
            "{file} signs as {id}"
        );
    }
}

#[test]
fn ssh_keygen_signs_with_the_written_openssh_key() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let sig_name = std::fs::read_dir(b.join("signatures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".sshsig"))
        .unwrap();
    let tm = b.join("tagmanifest-sha256.txt");
    let work = f.path("sshwork");
    std::fs::create_dir_all(&work).unwrap();
    let msg = work.join("tagmanifest-sha256.txt");
    std::fs::copy(&tm, &msg).unwrap();
    ok(tool("ssh-keygen")
        .args(["-Y", "sign", "-n", "airlock-bundle", "-f"])
        .arg(f.path("keys/builder.ssh"))
        .arg(&msg));
    let ours = std::fs::read(b.join("signatures").join(&sig_name)).unwrap();
    let theirs = std::fs::read(work.join("tagmanifest-sha256.txt.sig")).unwrap();
    // Ed25519 and SSHSIG are deterministic: ssh-keygen with the OpenSSH key
    // keygen wrote makes exactly the signature airlock made with builder.key.
    assert_eq!(
        String::from_utf8_lossy(&theirs),
        String::from_utf8_lossy(&ours)
    );

    // ssh-keygen -Y verify accepts it against keygen's .ssh.pub.
    let allowed = work.join("allowed_signers");
    let pubkey = std::fs::read_to_string(f.path("keys/builder.ssh.pub")).unwrap();
    std::fs::write(&allowed, format!("builder {pubkey}")).unwrap();
    let v = ok(tool("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "airlock-bundle",
            "-I",
            "builder",
            "-f",
        ])
        .arg(&allowed)
        .arg("-s")
        .arg(work.join("tagmanifest-sha256.txt.sig"))
        .stdin(std::fs::File::open(&msg).unwrap()));
    assert!(v.contains("Good \"airlock-bundle\" signature"), "{v}");

    // And airlock's verification accepts the bundle carrying ssh-keygen's signature.
    std::fs::write(b.join("signatures").join(&sig_name), &theirs).unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn key_accepts_an_openssh_key_from_ssh_keygen() {
    let f = Fixture::new();
    let key = f.path("keys/ops");
    ok(tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@example", "-f"])
        .arg(&key));
    let o = pack_with_key(&f, &key, "dist");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let b = json(&o)["path"].as_str().unwrap().to_string();
    // The trust policy names the key by ssh-keygen's own public key file.
    std::fs::write(
        f.path("policy.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: ops\n    publicKey: keys/ops.pub\n    roles: [builder]\nrequire:\n  builder: 1\n",
    )
    .unwrap();
    let o = f.verify(Path::new(&b));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // ssh-keygen -Y verify accepts the bundle's signature under the same key.
    let allowed = f.path("allowed_signers");
    let pubkey = std::fs::read_to_string(f.path("keys/ops.pub")).unwrap();
    std::fs::write(&allowed, format!("ops {pubkey}")).unwrap();
    let sig = std::fs::read_dir(Path::new(&b).join("signatures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".sshsig"))
        .unwrap();
    ok(tool("ssh-keygen")
        .args(["-Y", "verify", "-n", "airlock-bundle", "-I", "ops", "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(&sig)
        .stdin(std::fs::File::open(Path::new(&b).join("tagmanifest-sha256.txt")).unwrap()));
}

#[test]
fn encrypted_openssh_key_is_refused_clearly() {
    let f = Fixture::new();
    let key = f.path("keys/locked");
    ok(tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(&key));
    let o = pack_with_key(&f, &key, "dist");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(key.to_str().unwrap()), "{e}");
    assert!(
        e.contains("encrypted (passphrase-protected) OpenSSH private key"),
        "{e}"
    );
    assert!(e.contains("aes256-ctr"), "names the cipher: {e}");
    assert!(!f.path("dist").join("demo-1.0.0").exists());

    // The same for a passphrase-protected PKCS#8 key from OpenSSL.
    let p8 = f.path("keys/locked.p8");
    ok(tool("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ED25519",
            "-aes256",
            "-pass",
            "pass:correct-horse",
            "-out",
        ])
        .arg(&p8));
    let o = pack_with_key(&f, &p8, "dist");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("encrypted (passphrase-protected) PKCS#8 private key"),
        "{e}"
    );
    assert!(e.contains(p8.to_str().unwrap()), "{e}");
}

#[test]
fn pkcs8_v2_keys_keep_loading() {
    // The committed demo key is PKCS#8 v2 (public key embedded).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = repo.join("keys/demo-builder.key");
    let pem = std::fs::read_to_string(&demo).unwrap();
    assert!(pem.contains("\nMFECAQEw"), "demo key is v2: {pem}");
    let f = Fixture::new();
    let key = f.path("keys/demo.key");
    std::fs::copy(&demo, &key).unwrap();
    chmod(&key, 0o600);
    let o = pack_with_key(&f, &key, "dist");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let b = json(&o)["path"].as_str().unwrap().to_string();
    let o = run(&[
        "verify",
        &b,
        "--trust",
        repo.join("keys/demo-trust-policy.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // A v2 key whose embedded public key is not its own is refused.
    let mut der = base64_decode(&pem);
    let last = der.len() - 1;
    der[last] ^= 1;
    std::fs::write(
        &key,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64_encode(&der)
        ),
    )
    .unwrap();
    let o = pack_with_key(&f, &key, "dist2");
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("embedded public key does not match"),
        "{}",
        stderr(&o)
    );
}

fn base64_decode(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b64.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    out.stdout
}

fn base64_encode(b: &[u8]) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn other_key_algorithms_are_named() {
    let f = Fixture::new();
    let k = |n: &str| f.path(&format!("keys/{n}"));
    ok(tool("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(k("rsa.p8")));
    ok(tool("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(k("ec.p8")));
    ok(tool("openssl")
        .args(["genpkey", "-algorithm", "ED448", "-out"])
        .arg(k("ed448.p8")));
    ok(tool("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(k("rsa.pkcs1"))
        .arg("2048"));
    ok(tool("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(k("ecdsa.ssh")));
    let cases = [
        (
            "rsa.p8",
            "PKCS#8 private key for RSA (algorithm OID 1.2.840.113549.1.1.1)",
        ),
        (
            "ec.p8",
            "PKCS#8 private key for EC (ECDSA, P-256) (algorithm OID 1.2.840.10045.2.1)",
        ),
        (
            "ed448.p8",
            "PKCS#8 private key for Ed448 (algorithm OID 1.3.101.113)",
        ),
        ("rsa.pkcs1", "an RSA private key (PKCS#1 PEM)"),
        ("ecdsa.ssh", "an OpenSSH ecdsa-sha2-nistp256 private key"),
        ("builder.pub", "a public key, not a private key"),
        (
            "builder.ssh.pub",
            "an OpenSSH public key line, not a private key",
        ),
    ];
    for (name, want) in cases {
        chmod(&k(name), 0o600);
        let o = pack_with_key(&f, &k(name), "dist");
        assert_eq!(code(&o), 2, "{name}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(want), "{name}: {e}");
        assert!(
            e.contains(k(name).to_str().unwrap()),
            "{name} names the file: {e}"
        );
        assert!(
            !e.contains("1.3.101.112"),
            "{name} does not name Ed25519's OID: {e}"
        );
        assert!(!e.contains("BEGIN"), "{e}");
    }
}

#[test]
fn a_key_others_can_read_is_used_with_a_warning() {
    let f = Fixture::new();
    let key = f.path("keys/builder.key");
    let o = pack_with_key(&f, &key, "d0");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    for m in [0o640, 0o604, 0o644] {
        chmod(&key, m);
        let out = format!("d{m:o}");
        let o = pack_with_key(&f, &key, &out);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!(
                "warning: private key {} is accessible by group or others (mode {m:04o})",
                key.display()
            )),
            "{e}"
        );
        assert!(e.contains(&format!("chmod 600 {}", key.display())), "{e}");
    }
    // The same warning for the OpenSSH form and for `sign`.
    let ssh = f.path("keys/builder.ssh");
    chmod(&ssh, 0o644);
    let b = f.pack_to("dir", "d1");
    let o = run(&["sign", b.to_str().unwrap(), "--key", ssh.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
}
