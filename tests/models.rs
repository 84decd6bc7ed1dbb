//! Models as first-class artifacts and the unsafe-pickle gate: safetensors
//! validation (single and sharded), GGUF checks, ModelPack details, and
//! pickles scanned at pack and re-scanned on the high side in every form.
//! Pickles are made by python3's own `pickle` module (torch is not needed:
//! a stand-in `torch` module gives `torch.save`'s reducers and persistent ids).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs python3 with `script` and `args`; the script writes the files.
fn python(script: &str, args: &[&Path]) {
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A pickle whose loading calls `os.system` (protocol 2: GLOBAL; 4: STACK_GLOBAL).
fn write_evil_pickle(path: &Path, protocol: u8) {
    python(
        &format!(
            r#"
import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
with open(sys.argv[1], "wb") as f:
    pickle.dump({{"weight": Evil()}}, f, protocol={protocol})
"#
        ),
        &[path],
    );
}

/// A stand-in for `torch` so Python's pickle writes exactly what `torch.save`
/// of a state dict writes: `torch._utils._rebuild_tensor_v2`, storage types
/// by persistent id, `collections.OrderedDict`.
const FAKE_TORCH: &str = r#"
import collections, io, pickle, sys, types, zipfile
torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks): pass
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
def _rebuild_parameter(data, requires_grad, hooks): pass
_rebuild_parameter.__module__ = "torch._utils"
utils._rebuild_parameter = _rebuild_parameter
class FloatStorage: pass
FloatStorage.__module__ = "torch"
class BFloat16Storage: pass
BFloat16Storage.__module__ = "torch"
torch.FloatStorage = FloatStorage; torch.BFloat16Storage = BFloat16Storage; torch._utils = utils
sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils
class Storage:
    def __init__(self, key, kind, numel): self.key, self.kind, self.numel = key, kind, numel
class Tensor:
    def __init__(self, key, kind, rows, cols):
        self.storage = Storage(key, kind, rows * cols); self.size = (rows, cols)
    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.storage, 0, self.size, (self.size[1], 1), False, collections.OrderedDict()))
class Parameter:
    def __init__(self, t): self.t = t
    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.t, True, collections.OrderedDict()))
class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None
def state_dict_pickle():
    sd = collections.OrderedDict()
    sd["encoder.weight"] = Tensor("0", FloatStorage, 4, 4)
    sd["encoder.bias"] = Parameter(Tensor("1", BFloat16Storage, 1, 4))
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    b = io.BytesIO(); Pickler(b, protocol=2).dump(sd)
    return b.getvalue()
"#;

/// `torch.save`'s zip format: `archive/data.pkl` and the storages, stored.
fn write_torch_zip(path: &Path, compression: &str) {
    python(
        &format!(
            r#"{FAKE_TORCH}
with zipfile.ZipFile(sys.argv[1], "w", zipfile.{compression}) as z:
    z.writestr("archive/data.pkl", state_dict_pickle())
    z.writestr("archive/byteorder", "little")
    z.writestr("archive/data/0", bytes(64))
    z.writestr("archive/data/1", bytes(8))
    z.writestr("archive/version", "3\n")
"#
        ),
        &[path],
    );
}

/// The raw pickle of a state dict (what a pickle-only checkpoint holds).
fn write_state_dict_pickle(path: &Path) {
    python(
        &format!("{FAKE_TORCH}\nopen(sys.argv[1], 'wb').write(state_dict_pickle())\n"),
        &[path],
    );
}

/// A safetensors file from (name, dtype, shape); data filled deterministically.
fn safetensors(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
    airlock::safetensors::build(tensors, |i| (i * 31 % 251) as u8)
}

/// A safetensors file with this exact header (padded) and `data` data bytes.
fn raw_safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut h = header.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    let mut v = (h.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(h.as_bytes());
    v.extend(std::iter::repeat_n(7u8, data));
    v
}

/// A fixture whose manifest adds `extra` (more model entries, a policy).
fn fixture_with(extra: &str) -> Fixture {
    let f = Fixture::new();
    f.write_manifest(extra);
    f
}

fn pack_out(f: &Fixture, format: &str, out: &str) -> Output {
    f.pack_with(format, out, &[])
}

/// Asserts exit 1 and that stderr names `file` together with every `what`.
#[track_caller]
fn assert_refused_naming(o: &Output, file: &str, what: &[&str]) {
    let err = stderr(o);
    assert_eq!(code(o), 1, "expected exit 1; stderr:\n{err}");
    let line = err
        .lines()
        .find(|l| l.contains(file) && what.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| panic!("no line names {file:?} with {what:?}; stderr:\n{err}"));
    assert!(!line.is_empty());
}

fn description(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("airlock.json")).unwrap()).unwrap()
}

/// The ModelPack config blob of model `name` in a directory bundle.
fn model_config(bundle: &Path, name: &str) -> serde_json::Value {
    let d = description(bundle);
    let a = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reference"] == format!("models/{name}"))
        .expect("model artifact");
    let digest = a["config"]["digest"].as_str().unwrap();
    let hex = digest.trim_start_matches("sha256:");
    let bytes = std::fs::read(bundle.join("data/blobs/sha256").join(hex)).unwrap();
    // Every config these tests look at is valid against model-spec's own schema.
    check_modelpack_config(&bytes).unwrap_or_else(|e| panic!("model {name}: {e}"));
    serde_json::from_slice(&bytes).unwrap()
}

fn trust_pickles(f: &Fixture, setting: &str) {
    f.write_policy(
        "builder",
        "[builder]",
        &format!("require:\n  builder: 1\npickle: {setting}\n"),
    );
}

#[test]
fn a_safetensors_model_packs_with_its_modelpack_details() {
    let f = Fixture::new();
    let dir = f.path("src/models/minilm");
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors(&[
            ("embeddings.weight", "BF16", &[1000, 64]),
            ("encoder.bias", "BF16", &[64]),
            ("position_ids", "I64", &[1, 512]),
        ]),
    )
    .unwrap();
    for format in ["dir", "tar", "tar.zst"] {
        let b = f.pack_to(format, &format!("out-{format}"));
        let o = f.verify(&b);
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
    }
    let b = f.path("out-dir/demo-1.0.0");
    let cfg = model_config(&b, "minilm");
    assert_eq!(cfg["config"]["format"], "safetensors");
    assert_eq!(cfg["config"]["paramSize"], "64.6K");
    assert_eq!(cfg["config"]["precision"], "bfloat16");
    assert_eq!(cfg["config"]["architecture"], "BertModel");
    let d = description(&b);
    let m = &d["models"][0];
    assert_eq!(m["artifact"], "models/minilm");
    assert_eq!(m["parameters"], 64_000 + 64 + 512);
    assert_eq!(m["dtypes"]["BF16"], 64_064);
    assert_eq!(m["dtypes"]["I64"], 512);
    let c = d["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "model.safetensors")
        .unwrap();
    assert_eq!(c["artifact"], "models/minilm");
    assert_eq!(c["facts"]["format"], "safetensors");
    assert_eq!(c["facts"]["tensors"], 3);
    // Import re-checks and accepts it.
    let o = f.import(&f.path("out-tar/demo-1.0.0.tar"), "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn a_sharded_safetensors_model_packs_and_verifies() {
    let f = fixture_with("  - name: sharded\n    path: models/sharded\n");
    let dir = f.path("src/models/sharded");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("model-00001-of-00002.safetensors"),
        safetensors(&[("a", "F16", &[128, 32])]),
    )
    .unwrap();
    std::fs::write(
        dir.join("model-00002-of-00002.safetensors"),
        safetensors(&[("b", "F16", &[32]), ("c", "F16", &[32, 32])]),
    )
    .unwrap();
    let index = r#"{"metadata":{"total_size":10432},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    let b = f.pack_to("dir", "dist");
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cfg = model_config(&b, "sharded");
    assert_eq!(cfg["config"]["paramSize"], "5.2K");
    assert_eq!(cfg["config"]["precision"], "float16");
    let d = description(&b);
    let m = d["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifact"] == "models/sharded")
        .unwrap();
    assert_eq!(m["parameters"], 4096 + 32 + 1024);
    assert_eq!(m["weights"].as_array().unwrap().len(), 2);

    // An index naming a shard the model lacks is refused, naming the index.
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let o = pack_out(&f, "dir", "dist2");
    assert_refused_naming(
        &o,
        "model.safetensors.index.json",
        &["model-00002-of-00002.safetensors", "not in the model"],
    );
}

#[test]
fn broken_safetensors_are_refused_naming_file_and_problem() {
    let f = Fixture::new();
    let target = f.path("src/models/minilm/model.safetensors");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "offset past the end",
            raw_safetensors(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                12,
            ),
            "past the end of the data area",
        ),
        (
            "truncated header",
            {
                let mut v = 4096u64.to_le_bytes().to_vec();
                v.extend_from_slice(br#"{"w":{"dtype":"F32","#);
                v
            },
            "truncated header",
        ),
        (
            "overlapping tensors",
            raw_safetensors(
                r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}"#,
                12,
            ),
            "overlaps",
        ),
        (
            "a gap",
            raw_safetensors(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}"#,
                12,
            ),
            "gap",
        ),
        (
            "trailing bytes",
            raw_safetensors(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
                9,
            ),
            "trailing bytes",
        ),
        (
            "an unknown dtype",
            raw_safetensors(
                r#"{"a":{"dtype":"F12","shape":[4],"data_offsets":[0,4]}}"#,
                4,
            ),
            "unknown dtype",
        ),
        (
            "shape and size disagreeing",
            raw_safetensors(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                4,
            ),
            "needs 8 bytes",
        ),
    ];
    for (i, (what, bytes, problem)) in cases.into_iter().enumerate() {
        std::fs::write(&target, bytes).unwrap();
        let o = pack_out(&f, "dir", &format!("out{i}"));
        assert_eq!(code(&o), 1, "{what}: {}", stderr(&o));
        assert_refused_naming(&o, "model.safetensors", &["invalid safetensors", problem]);
        assert!(
            !f.path(&format!("out{i}/demo-1.0.0")).exists(),
            "{what}: nothing is left behind"
        );
    }
}

#[test]
fn gguf_models_pack_and_bad_versions_are_refused() {
    let f = fixture_with("  - name: llm\n    path: models/llm\n");
    let dir = f.path("src/models/llm");
    std::fs::create_dir_all(&dir).unwrap();
    let g = airlock::gguf::build("llama", &[("tok_embd", &[64, 100]), ("norm", &[64])]);
    std::fs::write(dir.join("llm.Q8.gguf"), &g).unwrap();
    let b = f.pack_to("tar", "dist");
    let o = f.verify(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("d2"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cfg = model_config(&f.path("d2/demo-1.0.0"), "llm");
    assert_eq!(cfg["config"]["format"], "gguf");
    assert_eq!(cfg["config"]["architecture"], "llama");
    assert_eq!(cfg["config"]["paramSize"], "6.5K");
    assert_eq!(cfg["config"]["precision"], "float32");

    let mut bad = g.clone();
    bad[4..8].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(dir.join("llm.Q8.gguf"), &bad).unwrap();
    let o = pack_out(&f, "dir", "d3");
    assert_refused_naming(&o, "llm.Q8.gguf", &["invalid GGUF", "version 7"]);
    std::fs::write(dir.join("llm.Q8.gguf"), b"GGML not gguf").unwrap();
    let o = pack_out(&f, "dir", "d4");
    assert_refused_naming(&o, "llm.Q8.gguf", &["invalid GGUF", "magic"]);
}

#[test]
fn a_pickle_that_calls_os_system_is_refused_at_pack() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm");
    for (protocol, name) in [(2, "pytorch_model.bin"), (4, "extra.pt")] {
        let p = model.join(name);
        write_evil_pickle(&p, protocol);
        let o = pack_out(&f, "dir", &format!("out-{protocol}"));
        assert_refused_naming(&o, name, &["unsafe pickle", "posix.system"]);
        assert!(stderr(&o).contains("pickle: allow"), "says how to override");
        std::fs::remove_file(&p).unwrap();
    }
    // Recognised by content, whatever its name; also in a files: entry.
    write_evil_pickle(&f.path("src/docs/notes.dat"), 4);
    let o = pack_out(&f, "dir", "out-files");
    assert_refused_naming(&o, "notes.dat", &["unsafe pickle", "posix.system"]);
}

#[test]
fn a_benign_state_dict_passes_as_raw_pickle_and_as_a_torch_zip() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm");
    std::fs::remove_file(model.join("model.safetensors")).unwrap();
    write_torch_zip(&model.join("pytorch_model.bin"), "ZIP_STORED");
    write_state_dict_pickle(&model.join("legacy.pkl"));
    for format in ["dir", "tar.zst"] {
        let b = f.pack_to(format, &format!("out-{format}"));
        let o = f.verify(&b);
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
        let o = f.import(&b, &format!("store-{format}"));
        assert_eq!(code(&o), 0, "{format}: {}", stderr(&o));
    }
    let d = description(&f.path("out-dir/demo-1.0.0"));
    let content = d["content"].as_array().unwrap();
    let zip = content
        .iter()
        .find(|c| c["path"] == "pytorch_model.bin")
        .unwrap();
    assert_eq!(zip["facts"]["format"], "pytorch-zip");
    assert_eq!(zip["facts"]["pickles"][0], "archive/data.pkl");
    let imports: Vec<&str> = zip["facts"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        imports,
        [
            "collections.OrderedDict",
            "torch.BFloat16Storage",
            "torch.FloatStorage",
            "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_tensor_v2"
        ]
    );
    assert!(zip["facts"].get("unsafeImports").is_none());
    let raw = content.iter().find(|c| c["path"] == "legacy.pkl").unwrap();
    assert_eq!(raw["facts"]["format"], "pickle");
    assert_eq!(
        model_config(&f.path("out-dir/demo-1.0.0"), "minilm")["config"]["format"],
        "pt"
    );
}

#[test]
fn compressed_and_truncated_checkpoints_are_refused() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm");
    // Deflated members are inflated and scanned (torch.load reads them);
    // other methods are refused.
    write_torch_zip(&model.join("pytorch_model.bin"), "ZIP_DEFLATED");
    let o = pack_out(&f, "dir", "out0");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    write_torch_zip(&model.join("pytorch_model.bin"), "ZIP_BZIP2");
    let o = pack_out(&f, "dir", "out1");
    assert_refused_naming(&o, "pytorch_model.bin", &["compressed member"]);
    std::fs::remove_file(model.join("pytorch_model.bin")).unwrap();

    write_state_dict_pickle(&model.join("ckpt.pt"));
    let full = std::fs::read(model.join("ckpt.pt")).unwrap();
    std::fs::write(model.join("ckpt.pt"), &full[..full.len() / 2]).unwrap();
    let o = pack_out(&f, "dir", "out2");
    assert_refused_naming(&o, "ckpt.pt", &["malformed pickle", "truncated"]);

    // A .pt that is not a checkpoint at all.
    std::fs::write(model.join("ckpt.pt"), b"\x00\x01 definitely not a pickle").unwrap();
    let o = pack_out(&f, "dir", "out3");
    assert_refused_naming(
        &o,
        "ckpt.pt",
        &["not a pickle, PyTorch zip, safetensors or GGUF"],
    );
}

/// Packs the fixture plus an evil pickle (in a torch zip and raw) with the
/// builder's `pickle: allow`; returns the bundle.
fn allowed_evil_bundle(f: &Fixture, format: &str, out: &str) -> PathBuf {
    let model = f.path("src/models/minilm");
    write_evil_pickle(&model.join("pytorch_model.bin"), 2);
    python(
        r#"
import os, pickle, sys, zipfile
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=4))
"#,
        &[&model.join("model.pt")],
    );
    f.write_manifest("policy:\n  pickle: allow\n");
    f.pack_to(format, out)
}

#[test]
fn a_builder_allowed_pickle_is_recorded_and_refused_by_a_denying_high_side() {
    let f = Fixture::new();
    let dir = allowed_evil_bundle(&f, "dir", "out-dir");
    let d = description(&dir);
    assert_eq!(d["pickle"], "allow");
    let rec = d["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "pytorch_model.bin")
        .unwrap();
    assert_eq!(rec["facts"]["unsafeImports"][0], "posix.system");
    // inspect tells the operator before anything is verified.
    let o = run(&["inspect", dir.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("pickles (builder policy: pickle allow)"),
        "{text}"
    );
    assert!(
        text.contains("models/minilm/pytorch_model.bin: pickle, UNSAFE imports posix.system"),
        "{text}"
    );

    let tar = f.pack_to("tar", "out-tar");
    let zst = f.pack_to("tar.zst", "out-zst");
    // Default trust policy: pickle deny.
    for b in [&dir, &tar, &zst] {
        let o = f.verify(b);
        assert_refused_naming(
            &o,
            "models/minilm/pytorch_model.bin",
            &["unsafe pickle", "posix.system"],
        );
        assert_refused_naming(
            &o,
            "models/minilm/model.pt",
            &["unsafe pickle", "posix.system"],
        );
        // Import stops reading at its first finding (nothing more is staged
        // for a refused bundle), so it names whichever pickle comes first.
        let store = format!("store-{}", b.file_name().unwrap().to_str().unwrap());
        let o = f.import(b, &store);
        assert_refused_naming(&o, "models/minilm/", &["unsafe pickle", "posix.system"]);
        assert!(
            !f.path(&store).join("bundles/demo").exists(),
            "nothing imported"
        );
        let ledger = std::fs::read_to_string(f.path(&store).join("ledger.jsonl")).unwrap();
        assert!(
            ledger.contains("\"refuse\""),
            "the refusal is in the ledger"
        );
    }
    // A high side that allows pickles takes it.
    trust_pickles(&f, "allow");
    for b in [&dir, &tar, &zst] {
        let o = f.verify(b);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = f.import(&tar, "store-allowing");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn a_pickle_blob_already_in_the_store_is_still_rescanned() {
    // The store took the pickle under an allowing policy; a later bundle with
    // the same blob, imported under a denying policy, is refused: blobs the
    // store already holds are scanned as they stream by, not skipped.
    let f = Fixture::new();
    let first = allowed_evil_bundle(&f, "tar", "out1");
    trust_pickles(&f, "allow");
    let o = f.import(&first, "store");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(f.path("src/airlock.yaml"))
        .unwrap()
        .replace("version: 1.0.0", "version: 1.1.0");
    std::fs::write(f.path("src/airlock.yaml"), text).unwrap();
    let second = f.pack_to("tar.zst", "out2");
    trust_pickles(&f, "deny");
    // Both pickle blobs are already in the store; import stops at the first.
    let o = f.import(&second, "store");
    assert_refused_naming(&o, "models/minilm/", &["unsafe pickle", "posix.system"]);
    assert!(!f.path("store/bundles/demo/1.1.0").exists());
}

#[test]
fn volumes_are_rescanned_too() {
    let f = Fixture::new();
    let model = f.path("src/models/minilm");
    // Big enough to be split across volumes: a protocol-4 pickle of a large
    // bytes object before the os.system call.
    python(
        r#"
import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
with open(sys.argv[1], "wb") as f:
    pickle.dump([os.urandom(1_300_000), Evil()], f, protocol=4)
"#,
        &[&model.join("pytorch_model.bin")],
    );
    // And one small enough to travel whole.
    write_evil_pickle(&model.join("small.pkl"), 2);
    f.write_manifest("policy:\n  pickle: allow\n");
    let o = run(&[
        "pack",
        &f.s("src/airlock.yaml"),
        "--key",
        &f.s("keys/builder.key"),
        "--out",
        &f.s("vols"),
        "--format",
        "tar",
        "--volume-size",
        "400000",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        std::fs::read_dir(f.path("vols")).unwrap().count() >= 4,
        "the pickle is split across volumes"
    );
    let o = run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]);
    assert_refused_naming(&o, "models/minilm/pytorch_model.bin", &["posix.system"]);
    assert_refused_naming(&o, "models/minilm/small.pkl", &["posix.system"]);
    let o = run(&[
        "import",
        &f.s("vols"),
        "--trust",
        &f.s("policy.yaml"),
        "--store",
        &f.s("store"),
    ]);
    assert_refused_naming(&o, "models/minilm/", &["unsafe pickle", "posix.system"]);
    trust_pickles(&f, "allow");
    let o = run(&["verify", &f.s("vols"), "--trust", &f.s("policy.yaml")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Replaces blob `old_hex` of a directory bundle with `bytes` and rewrites
/// every digest that depends on it (configs, manifests, SBOMs, index,
/// description, both BagIt manifests), then re-signs it with the builder's
/// key: what a builder running a patched airlock could produce.
fn forge(f: &Fixture, b: &Path, old_hex: &str, bytes: &[u8]) {
    let blobs = b.join("data/blobs/sha256");
    let mut map: Vec<(String, String)> = vec![(old_hex.to_string(), sha256_hex(bytes))];
    std::fs::remove_file(blobs.join(old_hex)).unwrap();
    std::fs::write(blobs.join(sha256_hex(bytes)), bytes).unwrap();
    let fix = |text: &str, map: &[(String, String)]| -> String {
        let mut t = text.to_string();
        loop {
            let before = t.clone();
            for (o, n) in map {
                t = t.replace(o.as_str(), n.as_str());
            }
            if t == before {
                return t;
            }
        }
    };
    loop {
        let mut changed = false;
        for e in std::fs::read_dir(&blobs).unwrap() {
            let p = e.unwrap().path();
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let fixed = fix(&text, &map);
            if fixed != text {
                let h = sha256_hex(fixed.as_bytes());
                std::fs::remove_file(&p).unwrap();
                std::fs::write(blobs.join(&h), &fixed).unwrap();
                map.push((p.file_name().unwrap().to_str().unwrap().to_string(), h));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for name in ["airlock.json", "data/index.json"] {
        let t = std::fs::read_to_string(b.join(name)).unwrap();
        std::fs::write(b.join(name), fix(&t, &map)).unwrap();
    }
    let mut lines: Vec<(String, String)> = walk_files(&b.join("data"))
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(b).unwrap().to_str().unwrap().to_string();
            (rel, sha256_hex(&std::fs::read(&p).unwrap()))
        })
        .collect();
    lines.sort();
    let text: String = lines.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    std::fs::write(b.join("manifest-sha256.txt"), text).unwrap();
    let mut tags: Vec<String> = [
        "VERIFY.txt",
        "airlock.json",
        "bag-info.txt",
        "bagit.txt",
        "manifest-sha256.txt",
    ]
    .iter()
    .map(|t| format!("{}  {t}\n", sha256_hex(&std::fs::read(b.join(t)).unwrap())))
    .collect();
    tags.sort_by(|x, y| x[66..].cmp(&y[66..]));
    std::fs::write(b.join("tagmanifest-sha256.txt"), tags.concat()).unwrap();
    for d in ["signatures", "custody"] {
        std::fs::remove_dir_all(b.join(d)).unwrap();
        std::fs::create_dir_all(b.join(d)).unwrap();
    }
    let o = run(&[
        "sign",
        b.to_str().unwrap(),
        "--key",
        &f.s("keys/builder.key"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn the_high_side_revalidates_what_pack_checked() {
    // The high side trusts nothing pack concluded: a signed bundle holding an
    // invalid safetensors file, or a pickle the description does not call
    // one, is refused by its own checks.
    let f = Fixture::new();
    let b = f.pack_to("dir", "dist");
    let weights = std::fs::read(f.path("src/models/minilm/model.safetensors")).unwrap();
    let old_hex = sha256_hex(&weights);
    // Same size; the tensor now starts 4 bytes in: a gap, and it runs past the end.
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(weights[8..8 + header_len].to_vec()).unwrap();
    let patched = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[4,", 1);
    assert_ne!(patched, header);
    let mut bad = weights.clone();
    bad[8..8 + header_len].copy_from_slice(patched.as_bytes());
    forge(&f, &b, &old_hex, &bad);
    let o = f.verify(&b);
    assert_refused_naming(
        &o,
        "models/minilm/model.safetensors",
        &["invalid safetensors"],
    );
    let o = f.import(&b, "store");
    assert_refused_naming(
        &o,
        "models/minilm/model.safetensors",
        &["invalid safetensors"],
    );

    // A runbook swapped for a protocol-0 pickle (no magic number) in a files: set.
    let g = Fixture::new();
    std::fs::write(g.path("src/docs/runbook.txt"), "step one\n".repeat(8)).unwrap();
    let b = g.pack_to("dir", "dist");
    let runbook = std::fs::read(g.path("src/docs/runbook.txt")).unwrap();
    let evil = b"cposix\nsystem\n(S'echo pwned'\ntR.";
    let mut same_size = evil.to_vec();
    assert!(evil.len() < runbook.len());
    same_size.resize(runbook.len(), b' ');
    forge(&g, &b, &sha256_hex(&runbook), &same_size);
    let o = g.verify(&b);
    assert_refused_naming(
        &o,
        "files/docs/docs/runbook.txt",
        &["unsafe pickle", "posix.system"],
    );
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
