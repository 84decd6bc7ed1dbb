//! `models:` entries: a Hugging Face style directory or a single weights file,
//! carried as one CNCF ModelPack artifact with raw layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::PlannedArtifact;
use crate::bundle::{
    ArtifactKind, ModelSignature, SignatureStatus, MAX_JSON_BLOB, MODEL_ARTIFACT, MODEL_CODE,
    MODEL_DOC, MODEL_SIGNATURE_FILE, MODEL_WEIGHT, MODEL_WEIGHT_CONFIG,
};
use crate::digest::Sha256Digest;
use crate::error::{Report, Result};
use crate::manifest::LoadedManifest;

const WEIGHT_EXT: &[&str] = &[
    "safetensors",
    "gguf",
    "ggml",
    "onnx",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "h5",
    "msgpack",
    "tflite",
    "pb",
    "pkl",
    "joblib",
    "npz",
    "npy",
];
const CONFIG_EXT: &[&str] = &["json", "model", "tiktoken", "vocab", "yaml", "yml", "jinja"];
const CONFIG_NAMES: &[&str] = &["vocab.txt", "merges.txt", "added_tokens.txt"];
const CODE_EXT: &[&str] = &["py"];

/// The ModelPack layer media type for a file in a model directory.
pub fn classify(path: &str) -> &'static str {
    let file = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if WEIGHT_EXT.contains(&ext) {
        MODEL_WEIGHT
    } else if CONFIG_EXT.contains(&ext) || CONFIG_NAMES.contains(&file.as_str()) {
        MODEL_WEIGHT_CONFIG
    } else if CODE_EXT.contains(&ext) {
        MODEL_CODE
    } else {
        MODEL_DOC
    }
}

pub fn plan(m: &LoadedManifest, taken_refs: &mut BTreeSet<String>) -> Result<Vec<PlannedArtifact>> {
    let mut out = Vec::new();
    for entry in &m.manifest.models {
        let mut files = super::InputFiles::new();
        super::walk_each(&m.resolve(&entry.path), &mut |rel, abs, mode| {
            files.add(abs, rel, mode, classify(rel), None);
            Ok(())
        })?;
        // The artifact is known by the normalized name; export keeps the
        // manifest's spelling as the folder name (see pack, `folder`).
        let name = crate::manifest::model_artifact_name(&entry.name);
        let reference = format!("models/{name}");
        taken_refs.insert(reference.clone());
        out.push(PlannedArtifact {
            kind: ArtifactKind::Model,
            name,
            reference,
            artifact_type: MODEL_ARTIFACT.to_string(),
            files,
            packages: Vec::new(),
        });
    }
    Ok(out)
}

/// Each model directory's OpenSSF model-signing signature (`model.sig`),
/// from the bytes packed: checked against the key `models[].signature`
/// names (refused, naming the model and the file, when it is missing or does
/// not verify, or when a model file is not the one signed), or recorded as
/// unverified when the manifest names no key. Artifact reference → record.
pub fn check_signatures(
    m: &LoadedManifest,
    planned: &[PlannedArtifact],
    hashed: &super::Hashes,
    blobs_dir: &Path,
) -> Result<BTreeMap<String, ModelSignature>> {
    let mut out = BTreeMap::new();
    let mut report = Report::default();
    for (i, entry) in m.manifest.models.iter().enumerate() {
        let reference = format!(
            "models/{}",
            crate::manifest::model_artifact_name(&entry.name)
        );
        let Some(a) = planned.iter().find(|a| a.reference == reference) else {
            continue;
        };
        let dir = m.resolve(&entry.path);
        let sig = a.files.iter().find(|f| f.path == MODEL_SIGNATURE_FILE);
        let key = entry
            .signature
            .as_ref()
            .map(|s| m.signature_key(i, s, &dir))
            .transpose()?;
        match (key, sig) {
            (None, None) => {}
            (None, Some(f)) => {
                out.insert(
                    reference,
                    ModelSignature {
                        path: f.path.to_string(),
                        status: SignatureStatus::Unverified,
                        public_key: None,
                        key_fingerprint: None,
                        algorithm: None,
                        predicate_type: None,
                        files: None,
                        unsigned: Vec::new(),
                    },
                );
            }
            (Some(_), None) => {
                let p = crate::modelsig::SigProblem::NoSignature {
                    file: MODEL_SIGNATURE_FILE.to_string(),
                };
                report.add(
                    dir.join(MODEL_SIGNATURE_FILE).display().to_string(),
                    format!("model {}: {p}", entry.name),
                );
            }
            (Some(key), Some(f)) => {
                let h = hashed[f.src];
                if h.size > MAX_JSON_BLOB {
                    report.add(
                        f.src.display().to_string(),
                        format!(
                            "model {}: {} bytes, more than the {MAX_JSON_BLOB} a model signature may have",
                            entry.name, h.size
                        ),
                    );
                    continue;
                }
                // The staged copy, or (a tar written straight from the
                // inputs) the input itself, as hashed.
                let staged = blobs_dir.join(h.digest.hex());
                let bytes = if staged.is_file() {
                    fs_err::read(&staged)?
                } else {
                    fs_err::read(f.src)?
                };
                if Sha256Digest::of(&bytes) != h.digest {
                    report.add(
                        f.src.display().to_string(),
                        format!(
                            "model {}: changed while being packed; pack again",
                            entry.name
                        ),
                    );
                    continue;
                }
                let files: BTreeMap<String, Sha256Digest> = a
                    .files
                    .iter()
                    .filter(|x| x.path != f.path)
                    .map(|x| (x.path.to_string(), hashed[x.src].digest))
                    .collect();
                match crate::modelsig::check(f.path, &bytes, &key, &files) {
                    Ok(s) => {
                        out.insert(reference, s);
                    }
                    Err(problems) => {
                        for p in problems {
                            report.add(
                                dir.join(p.file()).display().to_string(),
                                format!("model {}: {p}", entry.name),
                            );
                        }
                    }
                }
            }
        }
    }
    report.into_result()?;
    Ok(out)
}

#[derive(Serialize)]
struct ModelConfig {
    descriptor: ModelDescriptor,
    config: ModelProps,
    modelfs: ModelFs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelDescriptor {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    created_at: String,
    /// The Hugging Face repository the model comes from, and its commit.
    #[serde(rename = "sourceURL", skip_serializing_if = "Option::is_none")]
    source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelProps {
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    /// `<count><K|M|B|T|Q>`, e.g. `22.7M`.
    #[serde(skip_serializing_if = "Option::is_none")]
    param_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantization: Option<String>,
}

/// model-spec v0.0.7 and later: `diffIds` (v0.0.6 and earlier: `diff_ids`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// model-spec's `precision` name for a tensor dtype (safetensors, GGUF or
/// torch spelling, or airlock's short form); `None` for quantized block types
/// and dtypes the spec does not list.
fn spec_precision(dtype: &str) -> Option<&'static str> {
    Some(match dtype.to_ascii_uppercase().as_str() {
        "F64" | "FP64" | "FLOAT64" => "float64",
        "F32" | "FP32" | "FLOAT32" => "float32",
        "F16" | "FP16" | "FLOAT16" => "float16",
        "BF16" | "BFLOAT16" => "bfloat16",
        "F8_E4M3" | "FLOAT8_E4M3FN" | "FLOAT8_E4M3" => "float8_e4m3",
        "F8_E5M2" | "FLOAT8_E5M2" => "float8_e5m2",
        "C32" | "COMPLEX32" => "complex32",
        "C64" | "COMPLEX64" => "complex64",
        "C128" | "COMPLEX128" => "complex128",
        "I8" | "INT8" => "int8",
        "I16" | "INT16" => "int16",
        "I32" | "INT32" => "int32",
        "I64" | "INT64" => "int64",
        "U8" | "UINT8" => "uint8",
        "U16" | "UINT16" => "uint16",
        "U32" | "UINT32" => "uint32",
        "U64" | "UINT64" => "uint64",
        "BOOL" => "bool",
        _ => return None,
    })
}

/// `precision` and `quantization` in model-spec's vocabulary: the floating
/// point types of the weights, comma-separated when several (integer tensors
/// count only when there is no float one: they are usually index buffers),
/// and GGUF block quantizations (`q4_k`, `q8_0`, ...) as the quantization.
/// Without weight headers, the `torch_dtype` pack read from config.json.
fn spec_precision_and_quantization(
    facts: &crate::modelcheck::ModelFacts,
) -> (Option<String>, Option<String>) {
    if facts.dtypes.is_empty() {
        let p = facts.precision.as_deref().and_then(spec_precision);
        return (p.map(str::to_string), None);
    }
    let named: BTreeSet<&str> = facts
        .dtypes
        .keys()
        .filter_map(|d| spec_precision(d))
        .collect();
    let floats: Vec<&str> = named
        .iter()
        .copied()
        .filter(|p| p.starts_with("float") || p.starts_with("bfloat") || p.starts_with("complex"))
        .collect();
    let quant: Vec<String> = facts
        .dtypes
        .keys()
        .filter(|d| d.starts_with(['Q', 'q']) || d.starts_with("IQ") || d.starts_with("TQ"))
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let precision = if !floats.is_empty() {
        Some(floats.join(","))
    } else if !named.is_empty() && quant.is_empty() {
        Some(named.into_iter().collect::<Vec<_>>().join(","))
    } else {
        None
    };
    let quantization = (!quant.is_empty()).then(|| quant.join(","));
    (precision, quantization)
}

/// Builds the ModelPack config blob from the model's summary (architecture,
/// format, parameter count and precision read from config.json and the
/// weight files' headers; see `modelcheck`).
pub fn config_blob(
    name: &str,
    version: &str,
    created: &str,
    layers: &[(String, Sha256Digest)],
    facts: &crate::modelcheck::ModelFacts,
) -> Vec<u8> {
    let architecture = facts.architecture.clone();
    // model-spec names PyTorch's format "pt"; airlock's own records say "pytorch".
    let format = facts.format.as_deref().map(|f| match f {
        "pytorch" => "pt".to_string(),
        other => other.to_string(),
    });
    let (precision, quantization) = spec_precision_and_quantization(facts);
    let param_size = facts.param_size.clone();
    let cfg = ModelConfig {
        descriptor: ModelDescriptor {
            name: name.to_string(),
            version: Some(version.to_string()),
            created_at: created.to_string(),
            source_url: facts.huggingface.as_ref().map(super::huggingface::repo_url),
            revision: facts.huggingface.as_ref().map(|o| o.revision.clone()),
        },
        config: ModelProps {
            architecture,
            format,
            param_size,
            precision,
            quantization,
        },
        modelfs: ModelFs {
            kind: "layers",
            diff_ids: layers.iter().map(|(_, d)| d.oci()).collect(),
        },
    };
    crate::bundle::canonical_json(&cfg)
}

/// `models:` entries.
pub struct Models;

impl super::kind::SourceKind for Models {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Model
    }
    fn plan(
        &self,
        m: &LoadedManifest,
        taken_refs: &mut BTreeSet<String>,
        _staging: &std::path::Path,
    ) -> Result<Vec<PlannedArtifact>> {
        plan(m, taken_refs)
    }
    fn export_path(
        &self,
        d: &crate::bundle::Description,
        a: &crate::bundle::Artifact,
        l: crate::bundle::LayerRef<'_>,
    ) -> Option<String> {
        Some(format!(
            "models/{}/{}",
            crate::manifest::model_folder(d, a),
            l.path
        ))
    }
    /// The Hugging Face Hub cache of the models with a Hub origin
    /// (`huggingface/hub/models--ORG--NAME/`), its blobs hard links to the
    /// files just exported below `models/`.
    fn export_rendered(
        &self,
        d: &crate::bundle::Description,
        artifacts: &[&crate::bundle::Artifact],
        to: &std::path::Path,
        _final_to: &std::path::Path,
        read: super::kind::ReadLayer<'_>,
    ) -> Result<Vec<std::path::PathBuf>> {
        let path =
            |a: &crate::bundle::Artifact, l: crate::bundle::LayerRef<'_>| self.export_path(d, a, l);
        super::huggingface::write_cache(d, artifacts, to, &path, read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(dtypes: &[(&str, u64)], precision: Option<&str>) -> crate::modelcheck::ModelFacts {
        crate::modelcheck::ModelFacts {
            dtypes: dtypes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            precision: precision.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn precision_and_quantization_follow_model_spec() {
        let pq = |d: &[(&str, u64)], p: Option<&str>| spec_precision_and_quantization(&facts(d, p));
        let s = |a: &str| Some(a.to_string());
        assert_eq!(pq(&[("BF16", 9), ("I64", 1)], None), (s("bfloat16"), None));
        assert_eq!(
            pq(&[("F16", 9), ("F8_E4M3", 9)], None),
            (s("float16,float8_e4m3"), None)
        );
        assert_eq!(pq(&[("I8", 9), ("U8", 1)], None), (s("int8,uint8"), None));
        assert_eq!(
            pq(&[("F32", 1), ("Q8_0", 9), ("Q4_K", 9)], None),
            (s("float32"), s("q4_k,q8_0"))
        );
        assert_eq!(pq(&[("Q4_K", 9)], None), (None, s("q4_k")));
        // From config.json's torch_dtype when no weight header was read.
        assert_eq!(pq(&[], Some("bf16")), (s("bfloat16"), None));
        assert_eq!(pq(&[], Some("weird")), (None, None));
    }

    #[test]
    fn classifies_hugging_face_files() {
        assert_eq!(classify("model.safetensors"), MODEL_WEIGHT);
        assert_eq!(classify("sub/pytorch_model.bin"), MODEL_WEIGHT);
        assert_eq!(classify("config.json"), MODEL_WEIGHT_CONFIG);
        assert_eq!(classify("vocab.txt"), MODEL_WEIGHT_CONFIG);
        assert_eq!(classify("README.md"), MODEL_DOC);
        assert_eq!(classify("modeling.py"), MODEL_CODE);
    }
}
