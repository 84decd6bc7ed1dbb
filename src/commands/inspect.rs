//! `airlock inspect`: what a bundle holds, read from its tag files only
//! (the payload is neither read nor hashed).

use serde::Serialize;

use crate::bundle::{Description, DESCRIPTION, TAGMANIFEST};
use crate::custody::{check_chain, EventView};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::source::Form;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub id: String,
    pub path: std::path::PathBuf,
    #[serde(flatten)]
    pub description: Description,
    pub signers: Vec<SignerView>,
    pub custody: Vec<EventView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignerView {
    pub key_id: String,
    /// Whether the signature is intact (not whether the signer is trusted: that is `verify`'s job).
    pub signature_ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

pub fn inspect(path: &std::path::Path) -> Result<Inspection> {
    let form = Form::open(path)?;
    let tags = crate::verify::read_tags(&form)?;
    let tm = tags.files.get(TAGMANIFEST).ok_or_else(|| {
        crate::error::single(
            path.display().to_string(),
            "no tagmanifest-sha256.txt: not an airlock bundle",
        )
    })?;
    let id = Sha256Digest::of(tm);
    let description: Description = tags
        .files
        .get(DESCRIPTION)
        .ok_or_else(|| {
            crate::error::single(
                path.display().to_string(),
                "no airlock.json: not an airlock bundle",
            )
        })
        .and_then(|b| {
            serde_json::from_slice(b).map_err(|e| crate::error::single(DESCRIPTION, e.to_string()))
        })?;
    let mut signers = Vec::new();
    for (p, bytes) in &tags.signatures {
        if let Some(key_id) = p
            .trim_start_matches("signatures/")
            .strip_suffix(".dsse.json")
        {
            let ssh = tags
                .signatures
                .get(&crate::signing::sshsig_path(key_id))
                .map(Vec::as_slice);
            let res = crate::signing::check(key_id, bytes, ssh, tm);
            signers.push(SignerView {
                key_id: key_id.to_string(),
                signature_ok: res.is_ok(),
                problem: res.err(),
            });
        }
    }
    let (custody, _) = check_chain(&tags.custody, &id);
    Ok(Inspection {
        id: id.hex(),
        path: path.to_path_buf(),
        description,
        signers,
        custody,
    })
}
