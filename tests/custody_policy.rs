//! Trust policy, co-signing, chain of custody, rollback protection, receipts.

mod common;
use common::*;
use std::path::Path;

/// A policy trusting builder (builder), reviewer (reviewer) and dto
/// (transfer-officer) keys, plus `rest` verbatim.
fn policy(f: &Fixture, rest: &str) {
    for k in ["reviewer", "dto", "high"] {
        if !f.path(&format!("keys/{k}.key")).exists() {
            assert_eq!(code(&run(&["keygen", &f.s(&format!("keys/{k}"))])), 0);
        }
    }
    let text = format!(
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: builder\n    publicKey: keys/builder.pub\n    roles: [builder]\n  - name: reviewer\n    publicKey: keys/reviewer.ssh.pub\n    roles: [reviewer]\n  - name: dto\n    publicKey: keys/dto.pub\n    roles: [transfer-officer]\n  - name: high\n    publicKey: keys/high.pub\n    roles: [importer]\n{rest}"
    );
    std::fs::write(f.path("policy.yaml"), text).unwrap();
}

fn key_id(f: &Fixture, name: &str) -> String {
    let line = std::fs::read_to_string(f.path(&format!("keys/{name}.ssh.pub"))).unwrap();
    line.trim().rsplit("airlock:").next().unwrap().to_string()
}

fn id_of(bundle: &Path) -> String {
    json(&run(&["inspect", bundle.to_str().unwrap(), "--json"]))["bundleId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sign(f: &Fixture, bundle: &Path, key: &str) -> std::process::Output {
    run(&[
        "sign",
        bundle.to_str().unwrap(),
        "--key",
        &f.s(&format!("keys/{key}.key")),
        "--json",
    ])
}

fn custody(f: &Fixture, bundle: &Path, key: &str, event: &str) -> std::process::Output {
    run(&[
        "custody",
        "append",
        bundle.to_str().unwrap(),
        "--key",
        &f.s(&format!("keys/{key}.key")),
        "--event",
        event,
        "--note",
        "test note",
    ])
}

#[test]
fn reviewer_threshold_unmet_then_met_by_cosigning() {
    let f = Fixture::new();
    policy(&f, "require:\n  builder: 1\n  reviewer: 1\n");
    let b = f.pack("dir");
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("require.reviewer"), "{}", stderr(&o));
    let before = id_of(&b);
    let o = sign(&f, &b, "reviewer");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(id_of(&b), before, "co-signing keeps the id");
    let o = run(&[
        "verify",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["roles"]["reviewer"][0], "reviewer");
}

#[test]
fn two_reviewers_needed_one_is_not_enough() {
    let f = Fixture::new();
    assert_eq!(code(&run(&["keygen", &f.s("keys/reviewer2")])), 0);
    policy(
        &f,
        "  - name: reviewer-2\n    publicKey: keys/reviewer2.pub\n    roles: [reviewer]\nrequire:\n  builder: 1\n  reviewer: 2\n",
    );
    let b = f.pack("dir");
    assert_eq!(code(&sign(&f, &b, "reviewer")), 0);
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("needs 2") && stderr(&o).contains("found 1"),
        "{}",
        stderr(&o)
    );
    assert_eq!(code(&sign(&f, &b, "reviewer2")), 0);
    assert_eq!(code(&f.verify(&b)), 0);
}

#[test]
fn cosigning_a_tar_zst_travels_inside_the_file_and_twice_changes_nothing() {
    let f = Fixture::new();
    policy(&f, "require:\n  builder: 1\n  reviewer: 1\n");
    let b = f.pack("tar.zst");
    let bytes = std::fs::read(&b).unwrap();
    let before = id_of(&b);
    assert_eq!(code(&sign(&f, &b, "reviewer")), 0);
    let signed = std::fs::read(&b).unwrap();
    assert!(
        signed.len() > bytes.len() && signed.starts_with(&bytes),
        "the co-signature is appended; the packed bytes are never rewritten"
    );
    assert!(
        !f.path("dist/demo-1.0.0.tar.zst.airlock").exists(),
        "nothing is written beside the file"
    );
    // zstd skips the additions frame: the tar inside is unchanged.
    assert_eq!(
        zstd::decode_all(&signed[..]).unwrap(),
        zstd::decode_all(&bytes[..]).unwrap()
    );
    let again = sign(&f, &b, "reviewer");
    assert_eq!(code(&again), 0);
    assert!(json(&again)["wrote"].as_array().unwrap().is_empty());
    assert_eq!(
        std::fs::read(&b).unwrap(),
        signed,
        "signing twice with the same key changes nothing"
    );
    assert_eq!(id_of(&b), before);
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The co-signature is also checked on import.
    assert_eq!(code(&f.import(&b, "store")), 0);
    assert!(f
        .path(&format!(
            "store/bundles/demo/1.0.0/signatures/{}.dsse.json",
            key_id(&f, "reviewer")
        ))
        .exists());
}

#[test]
fn revoked_key_does_not_count() {
    let f = Fixture::new();
    let b = f.pack("dir");
    policy(
        &f,
        &format!(
            "revoked: [{}]\nrequire:\n  builder: 1\n",
            key_id(&f, "builder")
        ),
    );
    // A policy whose only builder is revoked can never be met: refused when loaded.
    let o = f.verify(&b);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("require.builder"), "{}", stderr(&o));
    // With a second builder key the policy is meetable, and the revoked signature does not count.
    assert_eq!(code(&run(&["keygen", &f.s("keys/builder2")])), 0);
    policy(
        &f,
        &format!("  - name: builder-2\n    publicKey: keys/builder2.pub\n    roles: [builder]\nrevoked: [{}]\nrequire:\n  builder: 1\n", key_id(&f, "builder")),
    );
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("revoked"), "{}", stderr(&o));
}

#[test]
fn expired_key_does_not_count() {
    let f = Fixture::new();
    let b = f.pack("dir");
    let text = std::fs::read_to_string(f.path("policy.yaml"))
        .unwrap()
        .replace(
            "roles: [builder]",
            "roles: [builder]\n    expires: 2001-01-01",
        );
    std::fs::write(f.path("policy.yaml"), text).unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("expired on 2001-01-01"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_signature_is_named_even_when_the_threshold_is_met() {
    let f = Fixture::new();
    policy(&f, "require:\n  builder: 1\n");
    let b = f.pack("dir");
    assert_eq!(code(&sign(&f, &b, "reviewer")), 0);
    let sig = b.join(format!("signatures/{}.sshsig", key_id(&f, "reviewer")));
    let text = std::fs::read_to_string(&sig).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let l = &mut lines[3];
    let c = if l.ends_with('A') { "B" } else { "A" };
    l.replace_range(l.len() - 1.., c);
    std::fs::write(&sig, lines.join("\n") + "\n").unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("signatures/{}.dsse.json", key_id(&f, "reviewer"))),
        "{}",
        stderr(&o)
    );
}

#[test]
fn required_custody_event_missing_then_present() {
    let f = Fixture::new();
    policy(
        &f,
        "require:\n  builder: 1\ncustody:\n  - event: scanned\n    role: transfer-officer\n",
    );
    let b = f.pack("tar");
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("scanned"), "{}", stderr(&o));
    // The event by a key without the role does not satisfy the policy.
    assert_eq!(code(&custody(&f, &b, "reviewer", "scanned")), 0);
    assert_eq!(code(&f.verify(&b)), 1);
    assert_eq!(code(&custody(&f, &b, "dto", "scanned")), 0);
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let shown = json(&run(&["custody", "show", b.to_str().unwrap(), "--json"]));
    let events: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["packed", "scanned", "scanned"]);
    assert_eq!(shown["events"][2]["note"], "test note");
    assert_eq!(shown["ok"], true);
}

fn three_events(f: &Fixture) -> std::path::PathBuf {
    policy(f, "require:\n  builder: 1\n");
    let b = f.pack("dir");
    assert_eq!(code(&custody(f, &b, "dto", "scanned")), 0);
    assert_eq!(code(&custody(f, &b, "dto", "transferred")), 0);
    assert_eq!(code(&f.verify(&b)), 0);
    b
}

#[test]
fn edited_custody_event_is_detected() {
    let f = Fixture::new();
    let b = three_events(&f);
    let p = b.join("custody/0002-scanned.dsse.json");
    let mut env: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    env["payload"] = b64
        .encode(payload.replace("test note", "edited note"))
        .into();
    std::fs::write(&p, serde_json::to_vec(&env).unwrap()).unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("custody/0002-scanned.dsse.json"),
        "{}",
        stderr(&o)
    );
    let show = run(&["custody", "show", b.to_str().unwrap()]);
    assert_eq!(code(&show), 1);
    assert!(stdout(&show).contains("BROKEN"));
}

#[test]
fn deleted_custody_event_is_detected() {
    let f = Fixture::new();
    let b = three_events(&f);
    std::fs::remove_file(b.join("custody/0002-scanned.dsse.json")).unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("custody/0003-transferred.dsse.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn reordered_custody_events_are_detected() {
    let f = Fixture::new();
    let b = three_events(&f);
    let (x, y) = (
        b.join("custody/0002-scanned.dsse.json"),
        b.join("custody/0003-transferred.dsse.json"),
    );
    let (bx, by) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
    std::fs::remove_file(&x).unwrap();
    std::fs::remove_file(&y).unwrap();
    std::fs::write(b.join("custody/0002-transferred.dsse.json"), by).unwrap();
    std::fs::write(b.join("custody/0003-scanned.dsse.json"), bx).unwrap();
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("out of order") || stderr(&o).contains("does not link"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn appending_to_a_broken_chain_is_refused() {
    let f = Fixture::new();
    let b = three_events(&f);
    std::fs::remove_file(b.join("custody/0002-scanned.dsse.json")).unwrap();
    let o = custody(&f, &b, "dto", "received");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(!b.join("custody/0003-received.dsse.json").exists());
}

fn repack(f: &Fixture, version: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(f.path("src/airlock.yaml")).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("version:") {
                format!("  version: {version}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    f.pack_to("dir", &format!("dist-{version}"))
}

#[test]
fn downgrade_refused_then_allowed_and_recorded() {
    let f = Fixture::new();
    let v2 = repack(&f, "2.0.0");
    let v1 = repack(&f, "1.10.0");
    assert_eq!(code(&f.import(&v2, "store")), 0);
    let o = f.import(&v1, "store");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("downgrade"), "{}", stderr(&o));
    assert!(!f.path("store/bundles/demo/1.10.0").exists());
    let o = run(&[
        "import",
        v1.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--allow-downgrade",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let log = json(&run(&[
        "store",
        "log",
        "--store",
        &f.s("store"),
        "--verify",
        "--json",
    ]));
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["import", "refuse", "import-downgrade"]);
    // Semantic-version order, not string order: 1.10.0 is newer than 1.9.0.
    let v19 = repack(&f, "1.9.0");
    assert_eq!(code(&f.import(&v19, "store")), 1);
}

#[test]
fn ledger_tampering_is_detected() {
    let f = Fixture::new();
    let b = f.pack("dir");
    assert_eq!(code(&f.import(&b, "store")), 0);
    assert_eq!(
        code(&run(&[
            "export",
            "--store",
            &f.s("store"),
            "--bundle",
            "demo",
            "--to",
            &f.s("out")
        ])),
        0
    );
    assert_eq!(
        code(&run(&[
            "store",
            "log",
            "--store",
            &f.s("store"),
            "--verify"
        ])),
        0
    );
    let ledger = f.path("store/ledger.jsonl");
    let text = std::fs::read_to_string(&ledger).unwrap();
    std::fs::write(&ledger, text.replacen("imported demo", "imported DEMO", 1)).unwrap();
    let o = run(&["store", "log", "--store", &f.s("store"), "--verify"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("ledger.jsonl:2"), "{}", stderr(&o));
    // Deleting the first entry breaks the chain too.
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&ledger, lines[1..].join("\n") + "\n").unwrap();
    assert_eq!(
        code(&run(&[
            "store",
            "log",
            "--store",
            &f.s("store"),
            "--verify"
        ])),
        1
    );
}

#[test]
fn receipt_verifies_and_a_tampered_one_does_not() {
    let f = Fixture::new();
    policy(&f, "require:\n  builder: 1\n");
    let b = f.pack("tar");
    let receipt = f.path("receipt.json");
    let o = run(&[
        "import",
        b.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
        "--key",
        &f.s("keys/high.key"),
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The imported event in the store is signed by the high side's key.
    let events: Vec<String> = std::fs::read_dir(f.path("store/bundles/demo/1.0.0/custody"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        events.contains(&"0002-imported.dsse.json".to_string()),
        "{events:?}"
    );
    let o = run(&[
        "receipt",
        "verify",
        receipt.to_str().unwrap(),
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["bundleId"], id_of(&b));
    assert_eq!(v["signerName"], "high");
    assert!(!v["blobs"].as_array().unwrap().is_empty());

    let mut env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    env["payload"] = b64.encode(payload.replace("\"1.0.0\"", "\"9.9.9\"")).into();
    std::fs::write(f.path("tampered.json"), serde_json::to_vec(&env).unwrap()).unwrap();
    let o = run(&[
        "receipt",
        "verify",
        &f.s("tampered.json"),
        "--trust",
        &f.s("policy.yaml"),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("tampered.json"), "{}", stderr(&o));
    // A receipt by a key the build side does not trust is refused.
    f.write_policy("builder", "[builder]", "");
    assert_eq!(
        code(&run(&[
            "receipt",
            "verify",
            receipt.to_str().unwrap(),
            "--trust",
            &f.s("policy.yaml")
        ])),
        1
    );
}

#[test]
fn bundle_names_outside_the_policy_globs_are_refused() {
    let f = Fixture::new();
    let b = f.pack("dir");
    policy(&f, "require:\n  builder: 1\nbundles: [\"sensor-*\"]\n");
    let o = f.verify(&b);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("\"demo\""), "{}", stderr(&o));
    policy(&f, "require:\n  builder: 1\nbundles: [\"de*\"]\n");
    assert_eq!(code(&f.verify(&b)), 0);
}

fn custody_with(
    f: &Fixture,
    bundle: &Path,
    key: &str,
    event: &str,
    extra: &[&str],
) -> std::process::Output {
    let (b, k) = (bundle.to_str().unwrap(), f.s(&format!("keys/{key}.key")));
    let mut args = vec!["custody", "append", b, "--key", &k, "--event", event];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn a_mistyped_custody_event_is_refused_with_a_suggestion() {
    let f = Fixture::new();
    policy(&f, "require:\n  builder: 1\n");
    let b = f.pack("dir");
    // Without a policy: the default vocabulary.
    let o = custody_with(&f, &b, "dto", "trasnferred", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("\"trasnferred\"")
            && stderr(&o).contains("did you mean \"transferred\"?"),
        "{}",
        stderr(&o)
    );
    assert!(!b.join("custody/0002-trasnferred.dsse.json").exists());
    // A name far from every known one gets the list, no guess.
    let o = custody_with(&f, &b, "dto", "deployed", &[]);
    assert_eq!(code(&o), 2);
    assert!(!stderr(&o).contains("did you mean"), "{}", stderr(&o));
    assert!(stderr(&o).contains("known events: "), "{}", stderr(&o));
    assert_eq!(code(&custody_with(&f, &b, "dto", "transferred", &[])), 0);
}

#[test]
fn the_trust_policy_declares_the_custody_vocabulary() {
    let f = Fixture::new();
    policy(
        &f,
        "require:\n  builder: 1\ncustodyEvents: [virus-scan, carried]\ncustody:\n  - event: virus-scan\n    role: transfer-officer\n",
    );
    let b = f.pack("dir");
    let trust = f.s("policy.yaml");
    // A declared name is accepted; a default one the policy did not declare is not.
    let o = custody_with(&f, &b, "dto", "virus-scna", &["--trust", &trust]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("did you mean \"virus-scan\"?"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("policy.yaml"), "{}", stderr(&o));
    let o = custody_with(&f, &b, "dto", "scanned", &["--trust", &trust]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = custody_with(&f, &b, "dto", "virus-scan", &["--trust", &trust]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&f.verify(&b)), 0);
    // A requirement naming an undeclared event makes the policy unusable.
    policy(
        &f,
        "require:\n  builder: 1\ncustodyEvents: [virus-scan]\ncustody:\n  - event: virus-sacn\n    role: transfer-officer\n",
    );
    let o = f.verify(&b);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("custody[0].event")
            && stderr(&o).contains("did you mean \"virus-scan\"?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn custody_show_with_a_policy_names_the_signers() {
    let f = Fixture::new();
    policy(&f, "require:\n  builder: 1\n");
    let b = f.pack("dir");
    assert_eq!(code(&custody(&f, &b, "dto", "scanned")), 0);
    assert_eq!(code(&custody(&f, &b, "stranger", "received")), 0);
    let bs = b.to_str().unwrap();
    let plain = stdout(&run(&["custody", "show", bs]));
    assert!(plain.contains(&key_id(&f, "dto")), "{plain}");
    let o = run(&["custody", "show", bs, "--trust", &f.s("policy.yaml")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let named = stdout(&o);
    assert!(
        named.contains("packed") && named.contains(" by builder (key "),
        "{named}"
    );
    assert!(named.contains(" by dto (key "), "{named}");
    assert!(!plain.contains(" by dto "), "{plain}");
    // A key the policy does not list is shown by its id alone.
    assert!(
        named.contains(&format!(" by key {}", key_id(&f, "stranger"))),
        "{named}"
    );
    let j = json(&run(&[
        "custody",
        "show",
        bs,
        "--trust",
        &f.s("policy.yaml"),
        "--json",
    ]));
    assert_eq!(j["events"][1]["signerName"], "dto");
    assert_eq!(j["events"][1]["keyId"], key_id(&f, "dto"));
    assert!(j["events"][2].get("signerName").is_none());
}
