//! `models:` entries: a Hugging Face style directory or a single weights file,
//! carried as one CNCF ModelPack artifact with raw layers.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{walk, InputFile, PlannedArtifact};
use crate::bundle::{
    ArtifactKind, MODEL_ARTIFACT, MODEL_CODE, MODEL_DOC, MODEL_WEIGHT, MODEL_WEIGHT_CONFIG,
};
use crate::digest::Sha256Digest;
use crate::error::Result;
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
        let files = walk(&m.resolve(&entry.path))?
            .into_iter()
            .map(|(rel, abs, mode)| InputFile {
                media_type: classify(&rel).to_string(),
                src: abs,
                path: rel,
                mode,
                pin: None,
            })
            .collect();
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
}

#[derive(Serialize)]
struct ModelFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
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
    let format = facts.format.clone();
    let precision = facts.precision.clone();
    let param_size = facts.param_size.clone();
    let cfg = ModelConfig {
        descriptor: ModelDescriptor {
            name: name.to_string(),
            version: Some(version.to_string()),
            created_at: created.to_string(),
        },
        config: ModelProps {
            architecture,
            format,
            param_size,
            precision,
        },
        modelfs: ModelFs {
            kind: "layers",
            diff_ids: layers.iter().map(|(_, d)| d.oci()).collect(),
        },
    };
    crate::bundle::canonical_json(&cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

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
