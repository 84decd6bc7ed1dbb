//! What the command line shows, without printing it: the `--json` objects
//! (one schema, `schemas/*.schema.json`, camelCase, `schemaVersion`), human
//! sizes, and the escaping of untrusted text. `cli` prints what this builds.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// The version of the `--json` schema; bumped on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// Text read from a bundle or a store, made safe for a terminal: control
/// characters (C0, DEL, C1), bidirectional overrides and backslashes are
/// written as escapes (`\n`, `\t`, `\r`, `\\`, `\u{1b}`), so a file name
/// cannot move the cursor, clear the screen or fake extra output lines.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// Like [`esc`], but keeps line breaks: for multi-line messages built by
/// airlock (errors) that quote untrusted text.
pub fn esc_lines(s: &str) -> String {
    s.split('\n')
        .map(|l| esc(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_escape(c: char) -> bool {
    c == '\\' || is_unsafe(c)
}

fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\\' => out.push_str("\\\\"),
        c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// `esc` of a path's display form.
pub fn esc_path(p: &std::path::Path) -> String {
    esc(&p.display().to_string()).into_owned()
}

/// Bytes in IEC units: `812 B`, `1.5 KiB`, `287.4 MiB`, `4.38 GiB`.
pub use crate::progress::size;

/// `sha256:0123456789ab…`: a digest short enough for a line of text
/// (the full digest is in `--json` and in the bundle).
pub fn short_digest(hex_or_oci: &str) -> String {
    let hex = hex_or_oci.strip_prefix("sha256:").unwrap_or(hex_or_oci);
    format!("sha256:{}…", &hex[..hex.len().min(12)])
}

/// Splits `text` into lines no wider than `width` columns (at spaces; a word
/// longer than `width` stays whole), each after the first indented by `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let rest = text.trim_start_matches(' ');
    let mut line = text[..text.len() - rest.len()].to_string();
    let mut out = String::new();
    let mut first = true;
    for word in rest.split(' ') {
        if !first && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = format!("{indent}{word}");
        } else {
            if !first {
                line.push(' ');
            }
            line.push_str(word);
        }
        first = false;
    }
    out.push_str(&line);
    out
}

// ---------------------------------------------------------------- JSON ----
//
// One struct per command's `--json` object. Names mean the same thing in
// every command: `bundleId` (the sha256 of tagmanifest-sha256.txt, hex),
// `keyId` (32 hex), `name`/`version` (the bundle's), `ok` (the command's
// check passed), `path` (what the command wrote), `size` (bytes).

/// Wraps a command's object with `schemaVersion` and `ok`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T: Serialize> {
    pub schema_version: u32,
    pub ok: bool,
    #[serde(flatten)]
    pub body: T,
}

pub fn envelope<T: Serialize>(ok: bool, body: T) -> Envelope<T> {
    Envelope {
        schema_version: SCHEMA_VERSION,
        ok,
        body,
    }
}

/// The error object (`schemas/error.schema.json`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOut {
    pub error: ErrorBody,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub message: String,
    pub exit_code: u8,
    pub findings: Vec<FindingOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingOut {
    pub subject: String,
    pub problem: String,
    /// For a payload blob: the artifact files it holds (`models/minilm: model.safetensors`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeygenOut {
    /// The name PRODUCT.md gives the key id (`id`); the same as `keyId`.
    pub id: String,
    pub key_id: String,
    pub private_key: PathBuf,
    /// The same private key in OpenSSH form (for `ssh-keygen -Y sign`).
    pub ssh_private_key: PathBuf,
    pub public_key: PathBuf,
    pub ssh_public_key: PathBuf,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackOut {
    /// The name PRODUCT.md gives the bundle id (`id`); the same as `bundleId`.
    pub id: String,
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
    /// `dir`, `tar` or `tar.zst`.
    pub format: String,
    pub artifact_count: usize,
    pub blob_count: usize,
    pub size: u64,
    pub images: Vec<ImageOut>,
    /// Set for a delta: what the base receipt provides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaOut>,
}

/// A delta bundle: the receipt it was cut against and what it leaves out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaOut {
    /// sha256 of the receipt file.
    pub receipt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// Blobs provided by the base (not carried), and their bytes.
    pub blobs: usize,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageOut {
    pub name: String,
    pub source: String,
    pub digest: String,
    pub reference: String,
}

/// `inspect`: the bundle's description (`airlock.json`, already camelCase)
/// flattened, plus what the tag files show.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectOut<'a> {
    pub bundle_id: &'a str,
    pub path: &'a std::path::Path,
    #[serde(flatten)]
    pub description: &'a crate::bundle::Description,
    pub size: u64,
    pub blob_count: usize,
    pub signers: Vec<SignatureOut>,
    pub custody: Vec<CustodyEventOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureOut {
    pub key_id: String,
    /// The signature is intact (not whether the signer is trusted).
    pub signature_ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustodyEventOut {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The signer's name in the trust policy, when one was given and names the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub signature_ok: bool,
    pub link_ok: bool,
    pub problems: Vec<String>,
}

impl CustodyEventOut {
    pub fn new(e: &crate::custody::EventView, names: &BTreeMap<String, String>) -> Self {
        let r = e.record.as_ref();
        CustodyEventOut {
            file: e.file.clone(),
            sequence: r.map(|r| r.sequence),
            event: r.map(|r| r.event.clone()),
            time: r.map(|r| r.time.clone()),
            key_id: r.map(|r| r.signer.clone()),
            signer_name: r.and_then(|r| names.get(&r.signer).cloned()),
            public_key: r.map(|r| r.public_key.clone()),
            note: r.and_then(|r| r.note.clone()),
            bundle_id: r.map(|r| r.bundle_id.clone()),
            previous: r.and_then(|r| r.previous.clone()),
            signature_ok: e.signature_ok,
            link_ok: e.link_ok,
            problems: e.problems.clone(),
        }
    }
}

/// `verify`: who signed, what was checked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    /// role → names of the trusted signers counted for it.
    pub roles: BTreeMap<String, Vec<String>>,
    pub signers: Vec<SignerOut>,
    pub checked: CheckedOut,
    pub custody: Vec<CustodyEventOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignerOut {
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
}

/// What `verify` checked.
#[derive(Serialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CheckedOut {
    /// Payload blobs hashed against the signed manifests.
    pub blobs: usize,
    pub bytes: u64,
    /// Python and cargo pins re-checked against the files carried.
    pub pins: usize,
    /// Weight and pickle files whose content was scanned.
    pub models: usize,
    /// Models whose OpenSSF model-signing signature (`model.sig`) was
    /// verified again against the key recorded at pack.
    pub model_signatures: usize,
    pub custody_events: usize,
    /// False when one volume of several was checked alone (its pieces only).
    pub whole_bundle: bool,
    /// A delta: the blobs its base provides (not counted in `blobs`/`bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaCheckOut>,
}

/// What `verify` made of the blobs a delta leaves out.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DeltaCheckOut {
    /// sha256 of the receipt the delta was cut against.
    pub receipt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    pub blobs: usize,
    pub bytes: u64,
    /// The store they were checked against (`--store`); absent: not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// Every one re-hashed from the store (`--recheck`).
    pub rehashed: bool,
    /// The OCI structure and pins were checked.
    pub structure_checked: bool,
    /// Without a store: each blob left out, which was not checked.
    pub unchecked: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    pub store: PathBuf,
    pub already_present: bool,
    pub blobs_written: usize,
    /// A delta: the blobs it left out, which the store already held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs_from_base: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<PathBuf>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    pub registry: String,
    pub pushed: Vec<PushedOut>,
    pub referrers: Vec<ReferrerOut>,
    pub referrer_indexes: Vec<PushedOut>,
    pub blobs_sent: usize,
    pub blobs_present: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerOut {
    pub subject: String,
    pub reference: String,
    pub digest: String,
    pub artifact_type: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedOut {
    pub reference: String,
    pub digest: String,
}

/// `sign` and `custody append`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmendOut {
    pub bundle_id: String,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub wrote: Vec<PathBuf>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustodyShowOut {
    pub bundle_id: String,
    pub events: Vec<CustodyEventOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    /// The high side's key that signed the receipt, and its name in the policy.
    pub key_id: String,
    pub signer_name: String,
    pub public_key: String,
    pub time: String,
    pub blobs: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SbomOut {
    pub bundle_id: String,
    pub path: PathBuf,
    pub format: crate::sbom::SbomFormat,
    pub stored: bool,
    pub stored_sha256: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreLsOut {
    pub store: PathBuf,
    pub bundles: Vec<StoredBundleOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredBundleOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    pub imported: String,
    /// role → names of the signers counted at import.
    pub roles: BTreeMap<String, Vec<String>>,
    pub artifact_count: usize,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreReceiptOut {
    pub store: PathBuf,
    pub store_id: String,
    pub key_id: String,
    /// Blobs the receipt states the store holds.
    pub blob_count: usize,
    /// The receipt file written, and its size in bytes.
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreLogOut {
    pub store: PathBuf,
    /// `--verify` was given: the hash chain was checked (and held, or the
    /// command would have failed).
    pub chain_checked: bool,
    pub entries: Vec<LedgerEntryOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryOut {
    pub sequence: u64,
    pub time: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportOut {
    pub bundle_id: String,
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    /// `--trust` was given: the bundle was verified in full against it.
    pub verified: bool,
    pub findings: Vec<FindingOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitOut {
    pub manifest: PathBuf,
    pub policy: PathBuf,
    pub models: Vec<String>,
    pub files: Vec<String>,
    pub python: Vec<String>,
    pub cargo: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(esc("plain name.txt"), "plain name.txt");
        assert_eq!(esc("a\nb"), "a\\nb");
        assert_eq!(esc("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(esc("tab\there"), "tab\\there");
        assert_eq!(esc("del\u{7f}"), "del\\u{7f}");
        assert_eq!(esc("c1\u{9b}2J"), "c1\\u{9b}2J");
        assert_eq!(esc("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert_eq!(esc("back\\slash"), "back\\\\slash");
        assert_eq!(esc("ünïcode ok"), "ünïcode ok");
        assert_eq!(esc_lines("one\ntwo\u{1b}"), "one\ntwo\\u{1b}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.50 KiB");
        assert_eq!(size(300_123), "293 KiB");
        assert_eq!(size(25 * 1024 * 1024), "25.0 MiB");
        assert_eq!(size(4_700_000_000), "4.38 GiB");
    }

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("aaa bbb ccc", 7, "  "), "aaa bbb\n  ccc");
        assert_eq!(wrap("short", 80, "  "), "short");
        assert_eq!(wrap("   1 a  b", 80, "  "), "   1 a  b");
        assert_eq!(wrap("  xx yy zz", 8, "    "), "  xx yy\n    zz");
    }
}
