//! Memory per file. Pack, verify and import of a tree of many small files
//! must not hold kilobytes per file (pack: the SBOMs as JSON value trees,
//! the OCI manifest as descriptors and a JSON tree, airlock.json as bytes
//! beside its struct; verify: the stored SBOMs' bytes): peak RSS (`VmHWM`)
//! is measured for two trees and its growth per added file bounded.

mod common;
use common::*;

use std::path::Path;

/// A tree of `n` source-like files of 200-700 bytes, 500 to a directory.
fn tree(root: &Path, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("tree/d{:03}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let line = format!("fn f{i}() -> usize {{ {i} }} // some text to make it longer\n");
        std::fs::write(dir.join(format!("f{i:06}.rs")), line.repeat(4 + i % 10)).unwrap();
    }
    std::fs::write(
        root.join("airlock.yaml"),
        "apiVersion: airlock/v1\nkind: Bundle\nmetadata: {name: many, version: 1.0.0}\nfiles:\n  - path: tree\n",
    )
    .unwrap();
}

/// Peak RSS in bytes of pack, verify and import of a tree of `n` files.
fn peaks(n: usize) -> [u64; 3] {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    tree(root, n);
    let key = root.join("k");
    assert!(run(&["keygen", key.to_str().unwrap()]).status.success());
    std::fs::write(
        root.join("policy.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: k\n    publicKey: k.pub\n    roles: [builder]\nrequire:\n  builder: 1\n",
    )
    .unwrap();
    let s = |p: &str| root.join(p).to_str().unwrap().to_string();
    let (o, pack) = run_measured(&[
        "pack",
        &s("airlock.yaml"),
        "--key",
        &s("k.key"),
        "--out",
        &s("out"),
    ]);
    assert_eq!(code(&o), 0, "pack: {}", stderr(&o));
    let bundle = s("out/many-1.0.0");
    let (o, verify) = run_measured(&["verify", &bundle, "--trust", &s("policy.yaml")]);
    assert_eq!(code(&o), 0, "verify: {}", stderr(&o));
    let (o, import) = run_measured(&[
        "import",
        &bundle,
        "--trust",
        &s("policy.yaml"),
        "--store",
        &s("store"),
    ]);
    assert_eq!(code(&o), 0, "import: {}", stderr(&o));
    [pack, verify, import]
}

#[test]
fn peak_memory_grows_by_little_per_file() {
    let (small, large) = (1_000, 9_000);
    let a = peaks(small);
    let b = peaks(large);
    // Bytes of peak RSS per added file. Before the SBOMs were streamed (and
    // the rest below): pack about 6.6 KiB, verify 2.5 KiB, import 2.9 KiB.
    // Verify and import still hold the description, the tag files, the
    // payload plan and the parsed OCI manifest.
    for (i, (command, bound)) in [("pack", 1536), ("verify", 3072), ("import", 3072)]
        .into_iter()
        .enumerate()
    {
        let per_file = b[i].saturating_sub(a[i]) / (large - small) as u64;
        eprintln!(
            "{command}: {} KiB at {small} files, {} KiB at {large}: {per_file} bytes per file",
            a[i] >> 10,
            b[i] >> 10
        );
        assert!(
            per_file < bound,
            "{command} holds {per_file} bytes per file ({} KiB at {small} files, {} KiB at {large}); at most {bound}",
            a[i] >> 10,
            b[i] >> 10
        );
    }
}
