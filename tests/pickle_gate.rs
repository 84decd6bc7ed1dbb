//! The unsafe-model gate against evasions and false alarms: every evasion
//! class is refused at pack and on the high side (verify and import, in
//! every bundle form) whatever the file is named; benign files made by the
//! real libraries (numpy 1 and 2, joblib, torch) pass. Evasions are
//! opcode-level pickles written by hand here; numpy and joblib files come
//! from the packages `scripts/test` installs (PyPI numpy 2 and joblib for
//! `python3`; Debian's python3-numpy 1, python3-joblib and python3-torch
//! 1.13 for `/usr/bin/python3`).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EVIL0: &[u8] = b"cposix\nsystem\n(S'echo pwned'\ntR.";

/// Runs `interpreter` with `script` and `args`; the script writes the files.
fn python_with(interpreter: &str, script: &str, args: &[&Path]) {
    let o = Command::new(interpreter)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "{interpreter} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Debian's python3 (numpy 1, joblib, torch 1.13 from Debian packages).
const DEBIAN_PY: &str = "/usr/bin/python3";

fn framed(len: u64, body: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x04\x95".to_vec();
    p.extend_from_slice(&len.to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// One file per evasion class: (name, bytes, what the refusal says).
fn evasions() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut out = Vec::new();
    // 1. Scan limits: a long run of MARK before the payload.
    let mut marks = vec![b'('; (1 << 20) + 10];
    marks.extend_from_slice(EVIL0);
    out.push(("weights.bin", marks, "unscannable"));
    // 1. A unicode string over 1 MiB, then the payload, named config.json.
    let mut long = b"V".to_vec();
    long.extend(std::iter::repeat_n(b'x', (1 << 20) + 5));
    long.extend_from_slice(b"\n0");
    long.extend_from_slice(EVIL0);
    out.push(("config.json", long, "posix.system"));
    // 2. Legacy torch.save with the magic number in protocol 0.
    let mut legacy = b"L119547037146038801333356L\n.".to_vec();
    legacy.extend_from_slice(b"\x80\x02M\xe9\x03.");
    legacy.extend_from_slice(b"\x80\x02}q\x00.");
    legacy.extend_from_slice(EVIL0);
    legacy.extend_from_slice(b"\x80\x02]q\x00.");
    legacy.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    out.push(("legacy.bin", legacy, "posix.system"));
    // 3. A benign pickle first, the payload in a second one (no PROTO).
    let mut concat = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.".to_vec();
    concat.extend_from_slice(EVIL0);
    out.push(("concat.pkl", concat, "posix.system"));
    // 4. A FRAME that ends inside an opcode: a flat reader sees bytes; the
    //    file unpickler runs the GLOBAL/REDUCE inside them.
    let mut body = b"\x8e".to_vec();
    body.extend_from_slice(&(EVIL0.len() as u64).to_le_bytes());
    body.extend_from_slice(EVIL0);
    body.push(b'.');
    out.push(("split.bin", framed(2, &body), "splits the opcode"));
    // 8. An unsafe import followed by garbage.
    let mut garbage = b"\x80\x04cposix\nsystem\n".to_vec();
    garbage.extend_from_slice(&[0xff, 0x00, 0x13]);
    out.push(("garbage.dat", garbage, "posix.system"));
    out
}

fn assert_refused(o: &Output, name: &str, what: &str) {
    assert_eq!(code(o), 1, "{name} not refused: {}", stderr(o));
    let e = stderr(o);
    assert!(
        e.lines().any(|l| l.contains(name) && l.contains(what)),
        "{name}: expected {what:?} in:\n{e}"
    );
}

#[test]
fn every_evasion_class_is_refused_at_pack() {
    let f = Fixture::new();
    for (i, (name, bytes, what)) in evasions().into_iter().enumerate() {
        let p = f.path("src/docs").join(name);
        std::fs::write(&p, &bytes).unwrap();
        let o = f.pack_with("dir", &format!("out{i}"), &[]);
        assert_refused(&o, name, what);
        std::fs::remove_file(&p).unwrap();
    }
}

/// A tar or tar.zst pack checks a small input by content from the bytes it
/// read into the tar (one read, as a directory pack does): every evasion,
/// small (under 1 MiB, checked in the pass) or large (read again by path),
/// under a name that matters to the gate or not, is refused in every form
/// with the same error, and nothing is left behind.
#[test]
fn every_evasion_class_is_refused_alike_by_every_form_of_pack() {
    let f = Fixture::new();
    let mut small = 0;
    for (i, (name, bytes, what)) in evasions().into_iter().enumerate() {
        small += usize::from(bytes.len() < 1 << 20);
        let p = f.path("src/docs").join(name);
        std::fs::write(&p, &bytes).unwrap();
        let mut errors = Vec::new();
        for format in ["dir", "tar", "tar.zst"] {
            let out = format!("out{i}-{}", format.replace('.', "-"));
            let o = f.pack_with(format, &out, &[]);
            assert_refused(&o, name, what);
            let left: Vec<_> = std::fs::read_dir(f.path(&out)).unwrap().collect();
            assert!(left.is_empty(), "{format}: {left:?}");
            errors.push((format, stderr(&o)));
        }
        for (format, e) in &errors[1..] {
            assert_eq!(e, &errors[0].1, "{name}: {format} and dir differ");
        }
        std::fs::remove_file(&p).unwrap();
    }
    assert!(small >= 3, "some evasions are small inputs");
}

/// What the content checks record of small inputs (checked in the pass from
/// the bytes hashed) is the same whichever form is packed: same description
/// (content facts, model summary), same SBOMs, so the same bundle id.
#[test]
fn small_inputs_record_the_same_content_facts_in_every_form() {
    let f = Fixture::new();
    let docs = f.path("src/docs");
    // Names that do not matter to the gate: found by content alone.
    std::fs::write(docs.join("state.dat"), EVIL0).unwrap();
    std::fs::write(
        docs.join("dict.data"),
        b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.",
    )
    .unwrap();
    std::fs::write(docs.join("w.data"), safetensors_wrap(&[7u8; 4000])).unwrap();
    // A name that matters (a pickle name): read again by path.
    std::fs::write(docs.join("named.pkl"), EVIL0).unwrap();
    // In the model: its small model.safetensors (a weights name) and a
    // pickle under a plain name.
    std::fs::write(f.path("src/models/minilm/extra.bin"), EVIL0).unwrap();
    f.write_manifest("policy:\n  pickle: allow\n");
    let mut ids = Vec::new();
    for format in ["dir", "tar", "tar.zst"] {
        let o = f.pack_with(format, &format!("out-{format}"), &[]);
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
        ids.push((format, json(&o)["bundleId"].as_str().unwrap().to_string()));
        let o = f.verify(&PathBuf::from(json(&o)["path"].as_str().unwrap()));
        // The high side denies pickles: refused for the same files.
        assert_refused(&o, "docs/docs/state.dat", "posix.system");
        assert_refused(&o, "models/minilm/extra.bin", "posix.system");
    }
    for (format, id) in &ids[1..] {
        assert_eq!(id, &ids[0].1, "{format} and dir record differently");
    }
    // What was recorded: facts for every one of them.
    let d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("out-dir/demo-1.0.0/airlock.json")).unwrap())
            .unwrap();
    let content = d["content"].as_array().unwrap();
    let facts = |artifact: &str, path: &str| {
        content
            .iter()
            .find(|c| c["artifact"] == artifact && c["path"] == path)
            .unwrap_or_else(|| panic!("no content entry for {artifact} {path}: {content:?}"))
            ["facts"]
            .clone()
    };
    for path in ["docs/state.dat", "docs/named.pkl"] {
        assert_eq!(
            facts("files/docs", path)["unsafeImports"][0],
            "posix.system"
        );
    }
    assert_eq!(
        facts("models/minilm", "extra.bin")["unsafeImports"][0],
        "posix.system"
    );
    assert_eq!(facts("files/docs", "docs/w.data")["format"], "safetensors");
    assert_eq!(
        facts("models/minilm", "model.safetensors")["format"],
        "safetensors"
    );
    assert!(facts("files/docs", "docs/dict.data")["format"].is_string());
}

/// Packs every evasion with the builder's `pickle: allow`.
fn allowed_bundle(f: &Fixture, format: &str, out: &str) -> PathBuf {
    for (name, bytes, _) in evasions() {
        std::fs::write(f.path("src/docs").join(name), &bytes).unwrap();
    }
    f.write_manifest("policy:\n  pickle: allow\n");
    f.pack_to(format, out)
}

#[test]
fn every_evasion_class_is_refused_on_the_high_side_in_every_form() {
    let f = Fixture::new();
    for format in ["dir", "tar", "tar.zst"] {
        let b = allowed_bundle(&f, format, &format!("out-{format}"));
        let o = f.verify(&b);
        for (name, _, what) in evasions() {
            assert_refused(&o, &format!("docs/docs/{name}"), what);
        }
        let store = format!("store-{}", format.replace('.', "-"));
        let o = f.import(&b, &store);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("pickle"), "{}", stderr(&o));
        assert!(!f.path(&store).join("bundles/demo").exists());
    }
}

/// xorshift64*, for deterministic random files.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_files_that_start_like_proto_are_data() {
    let f = Fixture::new();
    let dir = f.path("src/docs/random");
    std::fs::create_dir_all(&dir).unwrap();
    let mut st = 42u64;
    for i in 0..600u32 {
        let len = 1024 + (rng(&mut st) % 7168) as usize;
        let mut b = vec![0x80, 2 + (i % 4) as u8];
        while b.len() < len {
            b.extend_from_slice(&rng(&mut st).to_le_bytes());
        }
        b.truncate(len);
        std::fs::write(dir.join(format!("{i:04}.dat")), b).unwrap();
    }
    let b = f.pack_to("tar", "out");
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn datetime_and_decimal_pickles_pass() {
    let f = Fixture::new();
    python_with(
        "python3",
        r#"
import datetime, decimal, pickle, sys
v = {"when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
     "day": datetime.date(2024, 5, 1), "at": datetime.time(8, 15), "span": datetime.timedelta(days=2),
     "price": decimal.Decimal("12.50")}
for proto in (0, 2, 4, 5):
    open(sys.argv[1] + f"/values-{proto}.pkl", "wb").write(pickle.dumps(v, protocol=proto))
"#,
        &[&f.path("src/docs")],
    );
    let b = f.pack_to("tar.zst", "out");
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The imports stay listed.
    let o = run(&["inspect", b.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(text.contains("docs/docs/values-4.pkl"), "{text}");
}

fn numpy_script() -> &'static str {
    r#"
import pickle, sys, numpy as np
d = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array([1, 2, 3]),
     "scale": np.float64(0.5), "names": np.array(["a", "bc"])}
for proto in (2, 4, 5):
    open(sys.argv[1] + f"/arrays-{proto}.pkl", "wb").write(pickle.dumps(d, protocol=proto))
"#
}

#[test]
fn numpy_arrays_in_a_dict_pass_under_numpy_1_and_2() {
    let f = Fixture::new();
    let d1 = f.path("src/docs/np1");
    let d2 = f.path("src/docs/np2");
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    python_with(DEBIAN_PY, numpy_script(), &[&d1]);
    python_with("python3", numpy_script(), &[&d2]);
    let pkl = std::fs::read(d2.join("arrays-4.pkl")).unwrap();
    assert!(
        pkl.windows(11).any(|w| w == b"numpy._core"),
        "numpy 2 writes numpy._core"
    );
    for format in ["dir", "tar"] {
        let b = f.pack_to(format, &format!("out-{format}"));
        let o = f.verify(&b);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
}

fn joblib_script() -> &'static str {
    r#"
import sys, joblib, numpy as np
d = {"coef": np.linspace(0, 1, 1000).reshape(10, 100), "labels": np.array(["x", "yz"]),
     "objs": np.array([{"a": 1}, None], dtype=object), "n": 3}
joblib.dump(d, sys.argv[1] + "/model.joblib")
joblib.dump(d, sys.argv[1] + "/model-joblib.bin")
"#
}

#[test]
fn joblib_numpy_array_wrappers_pass() {
    let f = Fixture::new();
    for (py, sub) in [(DEBIAN_PY, "jl-debian"), ("python3", "jl-pypi")] {
        let d = f.path(&format!("src/docs/{sub}"));
        std::fs::create_dir_all(&d).unwrap();
        python_with(py, joblib_script(), &[&d]);
    }
    for format in ["dir", "tar.zst"] {
        let b = f.pack_to(format, &format!("out-{format}"));
        let o = f.verify(&b);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
}

#[test]
fn a_joblib_file_with_an_evil_object_array_is_refused() {
    let f = Fixture::new();
    python_with(
        "python3",
        r#"
import os, sys, joblib, numpy as np
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
a = np.empty(2, dtype=object); a[0] = Evil(); a[1] = 1
joblib.dump({"w": np.zeros(4), "objs": a}, sys.argv[1])
"#,
        &[&f.path("src/docs/model.bin")],
    );
    let o = f.pack_with("dir", "out", &[]);
    assert_refused(&o, "model.bin", "posix.system");
}

/// A pickle importing `argparse.Namespace`: harmless, but on no built-in list.
fn namespace_pickle(path: &Path) {
    python_with(
        "python3",
        r#"
import argparse, pickle, sys
open(sys.argv[1], "wb").write(pickle.dumps({"args": argparse.Namespace(lr=0.1)}, protocol=4))
"#,
        &[path],
    );
}

fn trust(f: &Fixture, pickle: &str) {
    f.write_policy(
        "builder",
        "[builder]",
        &format!("require:\n  builder: 1\npickle: {pickle}\n"),
    );
}

#[test]
fn a_trust_policy_extends_the_allowlist() {
    let f = Fixture::new();
    namespace_pickle(&f.path("src/docs/run.pkl"));
    let o = f.pack_with("dir", "refused", &[]);
    assert_refused(&o, "run.pkl", "argparse.Namespace");
    f.write_manifest("policy:\n  pickle: allow\n");
    for format in ["dir", "tar", "tar.zst"] {
        let b = f.pack_to(format, &format!("out-{format}"));
        trust(&f, "deny");
        assert_refused(&f.verify(&b), "docs/docs/run.pkl", "argparse.Namespace");
        for setting in ["{allow: [argparse.Namespace]}", "{allow: [argparse.*]}"] {
            trust(&f, setting);
            let o = f.verify(&b);
            assert_eq!(code(&o), 0, "{setting}: {}", stderr(&o));
        }
        trust(&f, "{allow: [argparse.ArgumentParser, json.*]}");
        assert_refused(&f.verify(&b), "docs/docs/run.pkl", "argparse.Namespace");
        let store = format!("store-{}", format.replace('.', "-"));
        trust(&f, "{allow: [argparse.Namespace]}");
        let o = f.import(&b, &store);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        // The import is still listed for the operator.
        let o = run(&["inspect", b.to_str().unwrap()]);
        assert!(stdout(&o).contains("argparse.Namespace"), "{}", stdout(&o));
    }
    // A malformed setting names the field.
    trust(&f, "{allow: [os]}");
    let b = f.pack_to("dir", "out-bad");
    let o = f.verify(&b);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("pickle.allow[0]"), "{}", stderr(&o));
}

#[test]
fn compressed_joblib_files_are_inflated_and_scanned_under_any_name() {
    let f = Fixture::new();
    python_with(
        "python3",
        r#"
import os, sys, joblib, numpy as np
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
d = sys.argv[1]
for codec in ("zlib", "gzip", "bz2", "lzma", "xz"):
    joblib.dump({"w": np.arange(100.0), "n": 1}, f"{d}/good-{codec}.bin", compress=(codec, 3))
    os.makedirs(f"{d}/../evil-{codec}", exist_ok=True)
    joblib.dump({"w": np.arange(10.0), "x": Evil()}, f"{d}/../evil-{codec}/model.pkl.{codec}", compress=(codec, 3))
"#,
        &[&f.path("src/docs")],
    );
    // The benign ones pass, in every form.
    for format in ["dir", "tar.zst"] {
        let b = f.pack_to(format, &format!("good-{format}"));
        let o = f.verify(&b);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let d = run(&["inspect", b.to_str().unwrap()]);
        assert!(stdout(&d).contains("pickle+bz2"), "{}", stdout(&d));
    }
    // Each evil one is refused at pack and on the high side.
    for codec in ["zlib", "gzip", "bz2", "lzma", "xz"] {
        let from = f.path(&format!("src/evil-{codec}/model.pkl.{codec}"));
        let to = f.path(&format!("src/docs/model.pkl.{codec}"));
        std::fs::rename(&from, &to).unwrap();
        let o = f.pack_with("dir", &format!("evil-{codec}"), &[]);
        assert_refused(&o, &format!("model.pkl.{codec}"), "posix.system");
        std::fs::rename(&to, f.path(&format!("src/docs/model-{codec}.bin"))).unwrap();
    }
    f.write_manifest("policy:\n  pickle: allow\n");
    for format in ["dir", "tar", "tar.zst"] {
        let b = f.pack_to(format, &format!("allowed-{format}"));
        let o = f.verify(&b);
        for codec in ["zlib", "gzip", "bz2", "lzma", "xz"] {
            assert_refused(&o, &format!("model-{codec}.bin"), "posix.system");
        }
    }
}

#[test]
fn a_compressed_pickle_past_the_inflate_bound_is_refused() {
    let f = Fixture::new();
    // 100 MiB of zeros in a BINBYTES8: bz2 shrinks it far past the ratio bound.
    python_with(
        "python3",
        r#"
import bz2, struct, sys
n = 100 << 20
body = b"\x80\x04\x8e" + struct.pack("<Q", n) + bytes(n) + b"."
open(sys.argv[1], "wb").write(bz2.compress(body, 9))
"#,
        &[&f.path("src/docs/zeros.bin")],
    );
    let o = f.pack_with("dir", "out", &[]);
    assert_refused(&o, "zeros.bin", "inflates past");
}

#[test]
fn npy_object_arrays_and_npz_archives_are_scanned() {
    let f = Fixture::new();
    python_with(
        "python3",
        r#"
import os, sys, numpy as np
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
d = sys.argv[1]
np.save(f"{d}/good.npy", np.arange(10.0))
np.save(f"{d}/good-objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
np.savez(f"{d}/good.npz", a=np.arange(4), b=np.array([1, "x"], dtype=object))
np.savez_compressed(f"{d}/good-deflated.npz", a=np.arange(4))
os.makedirs(f"{d}/../evil", exist_ok=True)
a = np.empty(1, dtype=object); a[0] = Evil()
np.save(f"{d}/../evil/arr.bin", a, allow_pickle=True)
os.rename(f"{d}/../evil/arr.bin.npy", f"{d}/../evil/arr.bin")
np.savez_compressed(f"{d}/../evil/bundle.zip", w=np.arange(3), x=a)
os.rename(f"{d}/../evil/bundle.zip.npz", f"{d}/../evil/bundle.zip")
"#,
        &[&f.path("src/docs")],
    );
    let b = f.pack_to("tar", "good");
    assert_eq!(code(&f.verify(&b)), 0);
    for name in ["arr.bin", "bundle.zip"] {
        let to = f.path("src/docs").join(name);
        std::fs::rename(f.path("src/evil").join(name), &to).unwrap();
        let o = f.pack_with("dir", &format!("evil-{name}"), &[]);
        assert_refused(&o, name, "posix.system");
        std::fs::remove_file(&to).unwrap();
    }
}

#[test]
fn real_torch_checkpoints_pass_stored_deflated_and_legacy() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm");
    python_with(
        DEBIAN_PY,
        r#"
import os, sys, zipfile, torch
d = sys.argv[1]
sd = {"layer.weight": torch.arange(12.0).reshape(3, 4), "layer.bias": torch.zeros(3, dtype=torch.bfloat16)}
torch.save(sd, f"{d}/stored.pt")
torch.save(sd, f"{d}/legacy.bin", _use_new_zipfile_serialization=False)
with zipfile.ZipFile(f"{d}/stored.pt") as src, zipfile.ZipFile(f"{d}/deflated.bin", "w", zipfile.ZIP_DEFLATED) as dst:
    for i in src.infolist():
        dst.writestr(i.filename, src.read(i.filename))
# torch.load reads the deflated copy too.
assert torch.equal(torch.load(f"{d}/deflated.bin")["layer.weight"], sd["layer.weight"])
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
os.makedirs(f"{d}/../evil", exist_ok=True)
torch.save({"w": sd["layer.weight"], "x": Evil()}, f"{d}/../evil/evil.pt")
with zipfile.ZipFile(f"{d}/../evil/evil.pt") as src, zipfile.ZipFile(f"{d}/../evil/evil.bin", "w", zipfile.ZIP_DEFLATED) as dst:
    for i in src.infolist():
        dst.writestr(i.filename, src.read(i.filename))
"#,
        &[&model],
    );
    for format in ["dir", "tar"] {
        let b = f.pack_to(format, &format!("out-{format}"));
        let o = f.verify(&b);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let d = run(&["inspect", b.to_str().unwrap()]);
        let text = stdout(&d);
        assert!(text.contains("minilm/legacy.bin: pytorch-legacy"), "{text}");
        assert!(text.contains("minilm/deflated.bin: pytorch-zip"), "{text}");
    }
    std::fs::rename(f.path("src/models/evil/evil.bin"), model.join("evil.bin")).unwrap();
    let o = f.pack_with("dir", "evil", &[]);
    assert_refused(&o, "evil.bin", "posix.system");
}

/// The legacy torch tar format, written member by member as old
/// `torch.save` did; torch 1.13's `torch.load` reads it back.
const LEGACY_TAR: &str = r#"
import io, os, pickle, struct, sys, tarfile, torch
evil = sys.argv[2] == "evil"
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
def member(tar, name, data):
    info = tarfile.TarInfo(name); info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
st = io.BytesIO()
pickle.dump(1, st, protocol=2)
pickle.dump((0, "cpu", Evil() if evil else torch.FloatStorage), st, protocol=2)
st.write(struct.pack("<q", 4)); st.write(struct.pack("<4f", 1, 2, 3, 4))
pickle.dump([], st, protocol=2)
te = io.BytesIO()
pickle.dump(1, te, protocol=2)
pickle.dump((1, 0, torch.FloatTensor), te, protocol=2)
te.write(struct.pack("<i", 1) + b"\0" * 4 + struct.pack("<q", 4) + struct.pack("<q", 1) + struct.pack("<q", 0))
class Ref:
    pass
class P(pickle.Pickler):
    def persistent_id(self, obj):
        return "1" if isinstance(obj, Ref) else None
pk = io.BytesIO(); P(pk, protocol=2).dump({"w": Ref()})
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
    member(tar, "sys_info", pickle.dumps({"little_endian": True}, protocol=2))
    member(tar, "storages", st.getvalue())
    member(tar, "tensors", te.getvalue())
    member(tar, "pickle", pk.getvalue())
if not evil:
    assert torch.load(sys.argv[1])["w"].tolist() == [1, 2, 3, 4]
"#;

#[test]
fn the_legacy_torch_tar_format_is_scanned() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm");
    let good = model.join("old.bin");
    let evil = f.path("src/evil.bin");
    let o = Command::new(DEBIAN_PY)
        .args(["-c", LEGACY_TAR, good.to_str().unwrap(), "good"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(DEBIAN_PY)
        .args(["-c", LEGACY_TAR, evil.to_str().unwrap(), "evil"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = f.pack_to("tar.zst", "good");
    assert_eq!(code(&f.verify(&b)), 0);
    let text = stdout(&run(&["inspect", b.to_str().unwrap()]));
    assert!(
        text.contains("minilm/old.bin: pytorch-legacy-tar"),
        "{text}"
    );
    std::fs::rename(&evil, model.join("old.bin")).unwrap();
    let o = f.pack_with("dir", "evil", &[]);
    assert_refused(&o, "old.bin", "posix.system");
    f.write_manifest("policy:\n  pickle: allow\n");
    for format in ["dir", "tar"] {
        let b = f.pack_to(format, &format!("allowed-{format}"));
        assert_refused(&f.verify(&b), "minilm/old.bin", "posix.system");
    }
}

/// A compressed stream is read as it inflates: an xz of 512 MiB of zeros
/// (about 80 KiB) in a model directory, sniffed (`blob.xz`) and scanned as a
/// pickle (`weights.joblib`), costs pack no more than a few tens of MiB.
/// (lzma-rs held a whole xz block in memory: 3.9 GiB for 2 GB of zeros.)
#[cfg(target_os = "linux")]
#[test]
fn an_xz_bomb_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("m")).unwrap();
    let xz = Command::new("sh")
        .arg("-c")
        .arg("head -c 536870912 /dev/zero | xz -1 -T1 > m/blob.xz && head -c 536870913 /dev/zero | xz -1 -T1 > m/weights.joblib")
        .current_dir(root)
        .status()
        .expect("xz runs");
    assert!(xz.success());
    std::fs::write(root.join("m/config.json"), b"{}").unwrap();
    std::fs::write(
        root.join("airlock.yaml"),
        "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: bomb\n  version: 1.0.0\nmodels:\n  - name: m\n    path: m\n",
    )
    .unwrap();
    let key = root.join("k");
    assert!(run(&["keygen", key.to_str().unwrap()]).status.success());
    let (o, peak) = run_measured(&[
        "pack",
        root.join("airlock.yaml").to_str().unwrap(),
        "--key",
        root.join("k.key").to_str().unwrap(),
        "--out",
        root.join("out").to_str().unwrap(),
    ]);
    // The pickle-named stream inflates to zeros, not a pickle: refused as
    // unscannable, naming it; the other one is sniffed and carried.
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("weights.joblib"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("blob.xz:"), "{}", stderr(&o));
    assert!(
        peak < 128 << 20,
        "pack peaked at {} MiB on an 80 KiB xz",
        peak >> 20
    );
}
