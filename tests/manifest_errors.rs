//! Bad build-side manifests and bad trust policies: each is refused with the
//! contract's exit code and a message naming the file and the field at fault.
//! A failed pack leaves nothing in the output directory.

mod common;
use common::*;

use std::process::Output;

use sha2::Digest;

const HEAD: &str =
    "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: demo\n  version: 1.0.0\n";

/// Writes `src/airlock.yaml` verbatim and packs it.
fn pack_manifest(f: &Fixture, text: &str) -> Output {
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("dist"),
    ])
}

/// Asserts the exit code, that stderr names the manifest file, and that it
/// contains every one of `needles`; and that no bundle was left behind.
#[track_caller]
fn assert_pack_fails(f: &Fixture, o: &Output, exit: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(code(o), exit, "stderr:\n{err}");
    assert!(err.contains("airlock.yaml"), "names the manifest:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
    let left: Vec<String> = std::fs::read_dir(f.path("dist"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed pack leaves nothing: {left:?}");
}

#[test]
fn the_baseline_manifest_packs() {
    // The manifests below differ from this one in one place each.
    let f = Fixture::new();
    let o = pack_manifest(&f, &format!("{HEAD}files:\n  - path: tool.sh\n"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn unknown_top_level_field() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\nsignWith: somebody\n"),
    );
    assert_pack_fails(&f, &o, 2, &["unknown field `signWith`"]);
}

#[test]
fn unknown_field_in_a_files_entry() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n    mode: \"0777\"\n"),
    );
    assert_pack_fails(&f, &o, 2, &["files[0]", "unknown field `mode`"]);
}

#[test]
fn unknown_field_in_metadata() {
    let f = Fixture::new();
    let text = HEAD.replace("  version: 1.0.0\n", "  version: 1.0.0\n  owner: me\n");
    let o = pack_manifest(&f, &format!("{text}files:\n  - path: tool.sh\n"));
    assert_pack_fails(&f, &o, 2, &["metadata", "unknown field `owner`"]);
}

#[test]
fn path_that_does_not_exist() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n  - path: docs/missing.pdf\n"),
    );
    assert_pack_fails(
        &f,
        &o,
        2,
        &["files[1].path", "docs/missing.pdf", "does not exist"],
    );
}

#[test]
fn model_path_that_does_not_exist() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}models:\n  - name: minilm\n    path: models/nope\n"),
    );
    assert_pack_fails(&f, &o, 2, &["models[0].path", "models/nope"]);
}

#[test]
fn entry_without_a_path() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - sha256: {}\n", "0".repeat(64)),
    );
    assert_pack_fails(&f, &o, 2, &["files[0]", "missing field `path`"]);
}

#[test]
fn bad_metadata_name() {
    let f = Fixture::new();
    let text = HEAD.replace("name: demo", "name: Bad_Name");
    let o = pack_manifest(&f, &format!("{text}files:\n  - path: tool.sh\n"));
    assert_pack_fails(&f, &o, 2, &["metadata.name", "Bad_Name"]);
}

#[test]
fn bad_metadata_version() {
    let f = Fixture::new();
    let text = HEAD.replace("version: 1.0.0", "version: \"1.0\"");
    let o = pack_manifest(&f, &format!("{text}files:\n  - path: tool.sh\n"));
    assert_pack_fails(&f, &o, 2, &["metadata.version", "\"1.0\""]);
}

#[test]
fn dotdot_path_packs_under_its_name_without_the_parent_steps() {
    // With a declared root, the builder may point outside the manifest's
    // directory (the release manifest packs ../target/release/airlock);
    // inside the bundle the path is recorded without the leading `..`, so
    // export never escapes its target. (Without `root:` it is refused: see
    // tests/hardening.rs.)
    let f = Fixture::new();
    std::fs::write(f.path("secret.txt"), b"outside the manifest dir\n").unwrap();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}root: ..\nfiles:\n  - path: tool.sh\n  - path: ../secret.txt\n"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("dist/demo-1.0.0/airlock.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = desc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"secret.txt"), "{names:?}");
    assert!(
        !std::fs::read_to_string(f.path("dist/demo-1.0.0/airlock.json"))
            .unwrap()
            .contains("..")
    );
}

#[test]
fn absolute_path_is_refused() {
    let f = Fixture::new();
    let abs = f.s("src/tool.sh");
    let o = pack_manifest(&f, &format!("{HEAD}files:\n  - path: {abs}\n"));
    assert_pack_fails(&f, &o, 2, &["files[0].path", "absolute"]);
}

#[test]
fn pin_mismatch_names_the_file_and_both_digests() {
    let f = Fixture::new();
    let actual: String = sha2::Sha256::digest(std::fs::read(f.path("src/tool.sh")).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let wrong = "ab".repeat(32);
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n    sha256: {wrong}\n"),
    );
    let err = stderr(&o);
    assert_eq!(
        code(&o),
        1,
        "a pin mismatch is a verification failure:\n{err}"
    );
    assert!(err.contains("tool.sh"), "names the file:\n{err}");
    assert!(err.contains(&wrong), "names the pinned digest:\n{err}");
    assert!(err.contains(&actual), "names the file's digest:\n{err}");
    let left = std::fs::read_dir(f.path("dist"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "a failed pack leaves nothing");
}

#[test]
fn correct_pin_packs() {
    let f = Fixture::new();
    let actual: String = sha2::Sha256::digest(std::fs::read(f.path("src/tool.sh")).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n    sha256: {actual}\n"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn malformed_pin_names_the_field() {
    let f = Fixture::new();
    let o = pack_manifest(
        &f,
        &format!("{HEAD}files:\n  - path: tool.sh\n    sha256: not-a-digest\n"),
    );
    assert_pack_fails(&f, &o, 2, &["files[0].sha256", "not-a-digest"]);
}

// ---------------------------------------------------------------- trust policy

/// Verifies a freshly packed bundle against `policy.yaml` as written by the test.
#[track_caller]
fn verify_with_policy(f: &Fixture, policy: &str) -> Output {
    let b = f.pack("dir");
    assert_eq!(code(&f.verify(&b)), 0, "verifies with the fixture's policy");
    std::fs::write(f.path("policy.yaml"), policy).unwrap();
    f.verify(&b)
}

const POLICY_HEAD: &str = "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: builder\n    publicKey: keys/builder.pub\n    roles: [builder]\n";

#[track_caller]
fn assert_bad_policy(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(code(o), 2, "a bad policy is a usage error:\n{err}");
    assert!(err.contains("policy.yaml"), "names the policy:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
}

#[test]
fn policy_with_an_unknown_top_level_field() {
    let f = Fixture::new();
    let o = verify_with_policy(
        &f,
        &format!("{POLICY_HEAD}require:\n  builder: 1\nallowUnsigned: true\n"),
    );
    assert_bad_policy(&o, &["allowUnsigned", "unknown field"]);
}

#[test]
fn policy_with_an_unknown_field_in_a_key() {
    let f = Fixture::new();
    let o = verify_with_policy(
        &f,
        &format!("{POLICY_HEAD}    trustLevel: full\nrequire:\n  builder: 1\n"),
    );
    assert_bad_policy(&o, &["trustLevel", "unknown field"]);
}

#[test]
fn policy_requiring_a_role_no_key_holds() {
    let f = Fixture::new();
    let o = verify_with_policy(
        &f,
        &format!("{POLICY_HEAD}require:\n  builder: 1\n  reviewer: 1\n"),
    );
    assert_bad_policy(&o, &["require.reviewer"]);
}

#[test]
fn policy_requiring_more_signers_than_keys() {
    let f = Fixture::new();
    let o = verify_with_policy(&f, &format!("{POLICY_HEAD}require:\n  builder: 2\n"));
    assert_bad_policy(&o, &["require.builder"]);
}

#[test]
fn policy_whose_only_builder_is_revoked() {
    let f = Fixture::new();
    let id = json(&run(&[
        "keygen",
        f.path("keys/other").to_str().unwrap(),
        "--json",
    ]))["keyId"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = format!(
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: other\n    publicKey: keys/other.pub\n    roles: [builder]\nrevoked: [{id}]\nrequire:\n  builder: 1\n"
    );
    let o = verify_with_policy(&f, &policy);
    assert_bad_policy(&o, &["require.builder"]);
}

#[test]
fn policy_with_a_missing_key_file() {
    let f = Fixture::new();
    let o = verify_with_policy(
        &f,
        &POLICY_HEAD
            .replace("keys/builder.pub", "keys/nobody.pub")
            .to_string(),
    );
    assert_bad_policy(&o, &["keys[0]", "publicKey"]);
}

#[test]
fn bad_policy_is_refused_by_import_before_the_store_exists() {
    let f = Fixture::new();
    let b = f.pack("dir");
    std::fs::write(
        f.path("policy.yaml"),
        format!("{POLICY_HEAD}require:\n  auditor: 1\n"),
    )
    .unwrap();
    let o = f.import(&b, "store");
    assert_bad_policy(&o, &["require.auditor"]);
    assert!(
        !f.path("store").exists(),
        "nothing written for a bad policy"
    );
}
