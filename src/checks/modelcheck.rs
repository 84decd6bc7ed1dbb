//! Content checks on model weights and pickles, the same on both sides.
//!
//! Every layer of a model or file-set artifact is classified by its content
//! (first 64 KiB, size) and its name:
//!
//! | recognised as | by | check |
//! |---|---|---|
//! | safetensors | `.safetensors`, or an 8-byte length followed by `{` | header validated ([`crate::safetensors`]); by name it must validate, by content only a file that validates counts |
//! | GGUF | `.gguf`, or the `GGUF` magic | magic, version 1–3, header and tensor bounds ([`crate::gguf`]) |
//! | shard index | `*.safetensors.index.json`, `*.bin.index.json` | JSON `weight_map` whose shards are files of the same model |
//! | pickle | starts with `PROTO` (0x80, protocol ≤ 5) unless it is safetensors; or it parses as a pickle that imports and calls (a file whose first 64 KiB are all valid opcodes is scanned to its end to tell); or named `.pt .pth .ckpt .pkl .joblib` and nothing else | opcode scan ([`crate::pickle`]) |
//! | zip | `PK\x03\x04` | every `*.pkl` member (a PyTorch checkpoint's `*/data.pkl`) and every `*.npy` member holding objects (`.npz`) is scanned; members stored or deflated (inflated within [`storedzip::inflate_bound`]) |
//! | npy | `\x93NUMPY` | an object dtype's pickle after the header is scanned |
//! | compressed | gzip, zlib, bz2, xz, lzma magic | inflated (bounded); scanned when it inflates to something pickle-like or is named like a pickle |
//! | tar | a valid first tar header | the legacy `torch.save` tar: every pickle of `storages`, `tensors`, `pickle` |
//!
//! `.bin` files are classified by content alone: a `.bin` that is neither a
//! pickle, a zip, safetensors nor GGUF (GGML, ONNX external data, ...) is
//! carried as opaque bytes. A file named `.pt .pth .ckpt .pkl .joblib` that
//! is none of those is scanned as a pickle, so it is refused as malformed.
//!
//! Format problems (invalid safetensors, GGUF, index) always refuse. Pickle
//! problems (an import off the allowlist, a malformed or unscannable pickle)
//! refuse under `pickle: deny` and are recorded under `pickle: allow`; a
//! trust policy's `pickle: {allow: [...]}` adds imports to the allowlist. A
//! file recognised by content alone whose parse fails before any import or
//! call took effect is data ([`pickle::Malformed::is_threat`]).
//!
//! Pack runs [`check`] on each packed blob; verify and import run it on the
//! blob file (directory bundles, staged blobs) or, for a tar streamed without
//! a file to read back, on what a [`Probe`] kept while the bytes streamed by:
//! the header it needs (at most 100 MiB) in memory, or, for pickles and
//! zips, which need the whole file (a zip is read from its end), a spool file
//! in the store's staging directory or the system temporary directory.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bundle::{safe_relative, ArtifactKind, Description, BLOBS_PREFIX};

pub use crate::bundle::{ContentEntry, Facts, ModelFacts, PicklePolicy};
use crate::digest::Sha256Digest;
use crate::error::{Report, Result};
use crate::pickle::{self, Sniff};
pub use crate::policy::PickleRules;
use crate::{gguf, safetensors, storedzip};

/// Bytes of a file's start used to classify it.
pub const SNIFF_LEN: u64 = 64 << 10;
/// Largest shard index read.
pub const MAX_INDEX: u64 = 16 << 20;
/// Names that are pickles by convention: scanned whatever their content.
const PICKLE_EXT: &[&str] = &[".pt", ".pth", ".ckpt", ".pkl", ".joblib"];
const INDEX_SUFFIXES: &[&str] = &[".safetensors.index.json", ".bin.index.json"];

/// One layer using a blob: its path in the artifact, and every path in that artifact.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    pub path: &'a str,
    pub siblings: &'a BTreeSet<String>,
}

impl Facts {
    fn is_pickle(&self) -> bool {
        self.format.starts_with("pickle")
            || matches!(
                self.format.as_str(),
                "pytorch-legacy"
                    | "pytorch-legacy-tar"
                    | "pytorch-zip"
                    | "zip"
                    | "npz"
                    | "npy-pickle"
            )
            || !self.imports.is_empty()
            || self.malformed.is_some()
    }
}

/// The outcome of checking one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub facts: Option<Facts>,
    /// A format problem (always refused).
    pub invalid: Option<String>,
}

impl Checked {
    /// What refuses this file under `pickle`; `hint` tells the reader how a
    /// pickle refusal could be lifted.
    pub fn problems(&self, pickle: &PickleRules, hint: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(i) = &self.invalid {
            out.push(i.clone());
        }
        if pickle.policy == PicklePolicy::Deny {
            if let Some(f) = &self.facts {
                let unsafe_imports: Vec<&String> = f
                    .unsafe_imports
                    .iter()
                    .filter(|i| !pickle::matches_extra(i, &pickle.allow))
                    .collect();
                if !unsafe_imports.is_empty() {
                    out.push(format!(
                        "unsafe pickle: imports {}, not on the allowlist (PyTorch state dicts and plain data types, plus the trust policy's pickle.allow); {hint}",
                        unsafe_imports
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if let Some(m) = &f.malformed {
                    out.push(format!(
                        "{m}; a pickle that cannot be scanned is refused; {hint}"
                    ));
                }
            }
        }
        out
    }
}

/// How a file will be checked, decided from its first bytes, size and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    format: Option<Format>,
    pickle: PickleRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `strict`: named `.safetensors`, so it must validate.
    Safetensors {
        strict: bool,
    },
    Gguf,
    Zip,
    Index,
    /// A gzip, zlib, bzip2, xz or lzma stream (joblib's compressors).
    Compressed(Codec),
    /// A NumPy `.npy` file.
    Npy,
    /// A tar archive (the legacy `torch.save` tar: `storages`, `tensors`, `pickle`).
    Tar,
}

/// A compressed stream's format, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zlib,
    Bzip2,
    Xz,
    Lzma,
}

impl Codec {
    fn of(head: &[u8]) -> Option<Codec> {
        match head {
            [0x1f, 0x8b, 8, ..] => Some(Codec::Gzip),
            [0x78, flg, ..]
                if (0x7800u16 | u16::from(*flg)).is_multiple_of(31) && flg & 0x20 == 0 =>
            {
                Some(Codec::Zlib)
            }
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Codec::Bzip2),
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some(Codec::Xz),
            // LZMA "alone": properties 0x5d, a dictionary size, a length.
            [0x5d, 0, _, _, _, ..] if head.len() >= 13 => Some(Codec::Lzma),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Bzip2 => "bz2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PickleRule {
    No,
    /// Starts with PROTO: a pickle unless it validates as safetensors.
    UnlessSafetensors,
    /// The first bytes are a valid pickle prefix with no call yet: a pickle
    /// if the whole file imports and calls.
    Maybe,
    Yes,
}

/// Whether a file's path can change what [`check`] finds in its bytes (a
/// weights, shard index or pickle name). For any other path the outcome
/// depends on the bytes alone: the same as checking them with no uses.
pub fn path_matters(path: &str) -> bool {
    ends_with_any(path, &[".safetensors", ".gguf"])
        || ends_with_any(path, INDEX_SUFFIXES)
        || ends_with_any(path, PICKLE_EXT)
}

/// Whether [`check`] can read a use's siblings (its artifact's other paths):
/// only for a shard index, which is known by its name.
pub fn reads_siblings(path: &str) -> bool {
    ends_with_any(path, INDEX_SUFFIXES)
}

/// Whether `path`, ASCII-lowercased, ends with one of the (lowercase)
/// `suffixes`; compared in place, since it runs several times per file.
fn ends_with_any(path: &str, suffixes: &[&str]) -> bool {
    let path = path.as_bytes();
    suffixes.iter().any(|s| {
        path.len() >= s.len() && path[path.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
    })
}

fn looks_like_safetensors(head: &[u8], size: u64) -> bool {
    head.len() >= 9
        && head[8] == b'{'
        && u64::from_le_bytes(head[..8].try_into().expect("8"))
            .checked_add(8)
            .is_some_and(|end| end <= size)
}

fn classify(head: &[u8], size: u64, uses: &[Use]) -> Plan {
    let named = |s: &[&str]| uses.iter().any(|u| ends_with_any(u.path, s));
    let format = if named(&[".safetensors"]) {
        Some(Format::Safetensors { strict: true })
    } else if named(&[".gguf"]) || head.starts_with(b"GGUF") {
        Some(Format::Gguf)
    } else if named(INDEX_SUFFIXES) {
        Some(Format::Index)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.starts_with(b"\x93NUMPY") {
        Some(Format::Npy)
    } else if let Some(c) = Codec::of(head) {
        Some(Format::Compressed(c))
    } else if is_tar_header(head) {
        Some(Format::Tar)
    } else if looks_like_safetensors(head, size) {
        Some(Format::Safetensors { strict: false })
    } else {
        None
    };
    let proto = head.first() == Some(&0x80) && head.get(1).is_some_and(|v| *v <= 5);
    let sniffed = pickle::sniff(head, head.len() as u64 >= size);
    let pickle = if proto {
        if matches!(format, Some(Format::Safetensors { .. })) {
            PickleRule::UnlessSafetensors
        } else {
            PickleRule::Yes
        }
    } else if sniffed == Sniff::Pickle || format.is_none() && named(PICKLE_EXT) {
        PickleRule::Yes
    } else if sniffed == Sniff::Undecided {
        PickleRule::Maybe
    } else {
        PickleRule::No
    };
    Plan { format, pickle }
}

fn read_up_to(r: &mut dyn Read, n: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(n).read_to_end(&mut v)?;
    Ok(v)
}

/// Checks one file of `size` bytes read from `r`, used as `uses`.
pub fn check<R: Read + Seek>(r: &mut R, size: u64, uses: &[Use]) -> io::Result<Checked> {
    r.seek(SeekFrom::Start(0))?;
    let head = read_up_to(r, SNIFF_LEN.min(size))?;
    let plan = classify(&head, size, uses);
    let mut out = Checked::default();
    let mut is_safetensors = false;
    match plan.format {
        None => {}
        Some(Format::Safetensors { strict }) => {
            r.seek(SeekFrom::Start(0))?;
            match safetensors::validate(r, size) {
                Ok(info) => {
                    is_safetensors = true;
                    out.facts = Some(Facts {
                        format: "safetensors".into(),
                        tensors: Some(info.tensors),
                        parameters: Some(info.parameters),
                        dtypes: info.dtypes,
                        ..Facts::default()
                    });
                }
                Err(e) if strict => out.invalid = Some(format!("invalid safetensors file: {e}")),
                Err(_) => {}
            }
        }
        Some(Format::Gguf) => {
            let mut buf = head.clone();
            let limit = size.min(gguf::MAX_HEADER);
            let res = loop {
                match gguf::parse(&buf, size) {
                    Err(gguf::Problem::NeedMore) if (buf.len() as u64) < limit => {
                        let want = (buf.len() as u64 * 2).clamp(SNIFF_LEN, limit);
                        r.seek(SeekFrom::Start(buf.len() as u64))?;
                        let more = read_up_to(r, want - buf.len() as u64)?;
                        if more.is_empty() {
                            break gguf::parse(&buf, buf.len() as u64);
                        }
                        buf.extend(more);
                    }
                    other => break other,
                }
            };
            match res {
                Ok(info) => {
                    out.facts = Some(Facts {
                        format: "gguf".into(),
                        version: Some(info.version),
                        tensors: Some(info.tensors),
                        parameters: Some(info.parameters),
                        dtypes: info.dtypes,
                        architecture: info.architecture,
                        ..Facts::default()
                    })
                }
                Err(gguf::Problem::Invalid(e)) => {
                    out.invalid = Some(format!("invalid GGUF file: {e}"))
                }
                Err(gguf::Problem::NeedMore) => {
                    out.invalid = Some("invalid GGUF file: truncated header".into())
                }
            }
        }
        Some(Format::Index) => {
            if size > MAX_INDEX {
                out.invalid = Some(format!(
                    "shard index of {size} bytes is larger than the {MAX_INDEX}-byte limit"
                ));
            } else {
                r.seek(SeekFrom::Start(0))?;
                let json = read_up_to(r, size)?;
                match check_index(&json, uses) {
                    Ok(shards) => {
                        out.facts = Some(Facts {
                            format: "shard-index".into(),
                            shards,
                            ..Facts::default()
                        })
                    }
                    Err(e) => out.invalid = Some(format!("invalid shard index: {e}")),
                }
            }
        }
        Some(Format::Tar) => {
            if let Some(f) = scan_legacy_tar(r)? {
                out.facts = Some(f);
            }
        }
        Some(Format::Npy) => {
            if let Some(f) = scan_npy(r, &head)? {
                out.facts = Some(f);
            }
        }
        Some(Format::Compressed(codec)) => {
            let named = uses.iter().any(|u| ends_with_any(u.path, PICKLE_EXT));
            if let Some(f) = scan_compressed(r, size, codec, named)? {
                out.facts = Some(f);
            }
        }
        Some(Format::Zip) => {
            let named_pickle = uses.iter().any(|u| ends_with_any(u.path, PICKLE_EXT));
            match scan_zip(r, size)? {
                Some(f) => out.facts = Some(f),
                None if named_pickle => {
                    out.facts = Some(Facts {
                        format: "zip".into(),
                        malformed: Some(
                            "a zip archive without a data.pkl: not a PyTorch checkpoint airlock can scan"
                                .into(),
                        ),
                        ..Facts::default()
                    })
                }
                None => {}
            }
        }
    }
    let scan_pickle = match plan.pickle {
        PickleRule::No => false,
        PickleRule::UnlessSafetensors => !is_safetensors,
        PickleRule::Maybe | PickleRule::Yes => true,
    };
    if scan_pickle {
        r.seek(SeekFrom::Start(0))?;
        let result = pickle::scan(r);
        if plan.pickle == PickleRule::Maybe && !pickle::acts(&result) {
            // Valid-looking opcodes throughout, but nothing a loader would
            // import and call: not a pickle.
            return Ok(out);
        }
        let named = uses.iter().any(|u| ends_with_any(u.path, PICKLE_EXT));
        if let Err(m) = &result {
            if !m.is_threat() && !named && plan.format.is_none() {
                // It fails before importing or calling anything (random data
                // that starts like PROTO, a compressed image): every loader
                // raises on it first. Data, not a threat. A file named like
                // a pickle must still scan cleanly.
                return Ok(out);
            }
        }
        let (scan, malformed) = match result {
            Ok(s) => (s, None),
            Err(m) => {
                let msg = if plan.format.is_none() && m.offset <= 1 && head.first() != Some(&0x80) {
                    format!(
                        "not a pickle, PyTorch zip, safetensors or GGUF file ({})",
                        m.message
                    )
                } else {
                    m.to_string()
                };
                (m.partial, Some(msg))
            }
        };
        let f = out.facts.get_or_insert_with(|| Facts {
            format: if scan.legacy_torch {
                "pytorch-legacy".into()
            } else {
                "pickle".into()
            },
            ..Facts::default()
        });
        merge_scan(f, &scan, malformed);
    }
    Ok(out)
}

fn merge_scan(f: &mut Facts, scan: &pickle::Scan, malformed: Option<String>) {
    let mut imports: BTreeSet<String> = f.imports.iter().cloned().collect();
    imports.extend(scan.imports.iter().cloned());
    f.imports = imports.into_iter().collect();
    f.unsafe_imports = f
        .imports
        .iter()
        .filter(|i| !pickle::is_allowed(i))
        .cloned()
        .collect();
    if f.malformed.is_none() {
        f.malformed = malformed;
    }
}

/// Scans every `*.pkl` member of a zip (stored or deflated), and every
/// `*.npy` member whose dtype holds objects (an `.npz`); `None` when it
/// holds neither (or is not a readable zip, which no loader could unpickle
/// from either).
fn scan_zip<R: Read + Seek>(r: &mut R, size: u64) -> io::Result<Option<Facts>> {
    let members = match storedzip::members(r, size) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let lower = |m: &storedzip::Member| m.name.to_ascii_lowercase();
    let pickles: Vec<_> = members
        .iter()
        .filter(|m| lower(m).ends_with(".pkl"))
        .collect();
    let npys: Vec<_> = members
        .iter()
        .filter(|m| lower(m).ends_with(".npy"))
        .collect();
    let mut f = Facts {
        format: "zip".into(),
        ..Facts::default()
    };
    for m in npys {
        match storedzip::open_member(r, size, m) {
            Ok(mut member) => {
                let head = read_up_to(&mut member, SNIFF_LEN)?;
                match npy_header(&head) {
                    Some((start, true)) => {
                        let mut rest =
                            io::Cursor::new(head.get(start as usize..).unwrap_or_default())
                                .chain(member);
                        f.pickles.push(m.name.clone());
                        match pickle::scan(&mut rest) {
                            Ok(s) => merge_scan(&mut f, &s, None),
                            Err(e) => merge_scan(
                                &mut f,
                                &e.partial,
                                Some(format!("{} (object array): {e}", m.name)),
                            ),
                        }
                    }
                    _ => continue,
                }
            }
            Err(e) => merge_scan(&mut f, &pickle::Scan::default(), Some(e)),
        }
    }
    if pickles.is_empty() && f.pickles.is_empty() {
        return Ok(None);
    }
    let torch = pickles
        .iter()
        .any(|m| m.name == "data.pkl" || m.name.ends_with("/data.pkl"));
    if torch {
        f.format = "pytorch-zip".into();
    } else if !f.pickles.is_empty() && pickles.is_empty() {
        f.format = "npz".into();
    }
    for m in pickles {
        f.pickles.push(m.name.clone());
        match storedzip::open_member(r, size, m) {
            Ok(mut member) => match pickle::scan(&mut member) {
                Ok(s) => merge_scan(&mut f, &s, None),
                Err(e) => merge_scan(&mut f, &e.partial, Some(format!("{}: {e}", m.name))),
            },
            Err(e) => merge_scan(&mut f, &pickle::Scan::default(), Some(e)),
        }
    }
    Ok(Some(f))
}

/// A valid first tar header (its checksum matches), as Python's tarfile
/// (and so `torch.load`) accepts one.
fn is_tar_header(head: &[u8]) -> bool {
    if head.len() < 512 || head[0] == 0 {
        return false;
    }
    let h = &head[..512];
    let field = std::str::from_utf8(&h[148..156]).unwrap_or("");
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

/// The legacy `torch.save` tar format, which `torch.load` tries first on
/// any file: `storages` (a count, then per storage a pickle of
/// `(key, location, storage type)`, an int64 element count and the raw
/// elements; then a pickle of storage views), `tensors` (a count, then per
/// tensor a pickle of `(key, storage id, type)` and its dimensions, sizes,
/// strides and offset) and `pickle` (the object). Every pickle in them is
/// scanned; the raw data between is skipped by its declared size. `None`
/// when the tar holds none of those members.
fn scan_legacy_tar<R: Read + Seek>(r: &mut R) -> io::Result<Option<Facts>> {
    r.seek(SeekFrom::Start(0))?;
    let mut ar = tar::Archive::new(&mut *r);
    let Ok(entries) = ar.entries_with_seek() else {
        return Ok(None);
    };
    let mut f = Facts {
        format: "pytorch-legacy-tar".into(),
        ..Facts::default()
    };
    let mut scans = Vec::new();
    let mut last = String::new();
    // Raw, with metadata bounded (`rawtar`): `torch.load`'s tarfile applies
    // GNU long names and pax paths, so they name the members here too.
    for member in crate::rawtar::Members::new(entries) {
        let m = match member {
            Ok(m) => m,
            // A member beyond the bound could hide the pickle: refused.
            Err(stop @ crate::rawtar::Stop::TooLarge { .. }) => {
                let after = if last.is_empty() {
                    "at the start".to_string()
                } else {
                    format!("after member {last:?}")
                };
                let msg = format!("unscannable: legacy torch tar, {after}: {stop}");
                merge_scan(&mut f, &pickle::Scan::default(), Some(msg));
                return Ok(Some(f));
            }
            // As before: the members read so far are what it holds.
            Err(_) => break,
        };
        let name = String::from_utf8_lossy(&m.path_bytes()).into_owned();
        last.clone_from(&name);
        // tarfile goes by a pax size record, the walk by the header: after
        // a member where they differ, the two see different members.
        if m.meta.size_disagrees(m.entry.size()) {
            let msg = format!(
                "unscannable: legacy torch tar member {name:?} has a pax size record other than its header's size"
            );
            merge_scan(&mut f, &pickle::Scan::default(), Some(msg));
            return Ok(Some(f));
        }
        if !matches!(name.as_str(), "storages" | "tensors" | "pickle") {
            continue;
        }
        // tarfile follows a link and expands a sparse file; the walk would
        // read the header's bytes only.
        if !m.kind().is_file() {
            f.pickles.push(name.clone());
            let msg = format!(
                "unscannable: legacy torch tar member {name:?} is not a regular file (a link or a sparse file)"
            );
            merge_scan(&mut f, &pickle::Scan::default(), Some(msg));
            continue;
        }
        let mut e = m.entry;
        let res = match name.as_str() {
            "storages" => legacy_storages(&mut e, &mut scans),
            "tensors" => legacy_tensors(&mut e, &mut scans),
            "pickle" => pickle::scan(&mut e).map_err(|m| m.to_string()).map(|s| {
                merge_scan(&mut f, &s, None);
            }),
            _ => continue,
        };
        f.pickles.push(name.clone());
        match res {
            Ok(()) => {}
            Err(msg) => merge_scan(
                &mut f,
                &pickle::Scan::default(),
                Some(format!("{name}: {msg}")),
            ),
        }
        for s in scans.drain(..) {
            merge_scan(&mut f, &s, None);
        }
    }
    Ok((!f.pickles.is_empty()).then_some(f))
}

/// Scans one pickle of a legacy tar member; its scan (or what was seen
/// before it failed) goes to `scans`.
fn legacy_pickle(
    r: &mut dyn Read,
    scans: &mut Vec<pickle::Scan>,
) -> Result<pickle::OneValue, String> {
    match pickle::scan_one(r) {
        Ok((scan, value)) => {
            scans.push(scan);
            Ok(value)
        }
        Err(m) => {
            let msg = m.to_string();
            scans.push(m.partial);
            Err(msg)
        }
    }
}

fn legacy_count(
    r: &mut dyn Read,
    scans: &mut Vec<pickle::Scan>,
    what: &str,
) -> Result<u64, String> {
    match legacy_pickle(r, scans)?.int {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(format!("the {what} count is not a non-negative integer")),
    }
}

fn skip(r: &mut dyn Read, n: u64, what: &str) -> Result<(), String> {
    let got = io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| e.to_string())?;
    if got < n {
        return Err(format!("truncated: {what} runs past the end of the member"));
    }
    Ok(())
}

fn read_i64(r: &mut dyn Read, what: &str) -> Result<i64, String> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)
        .map_err(|_| format!("truncated: {what} runs past the end of the member"))?;
    Ok(i64::from_le_bytes(b))
}

fn legacy_storages(r: &mut dyn Read, scans: &mut Vec<pickle::Scan>) -> Result<(), String> {
    let n = legacy_count(r, scans, "storage")?;
    for i in 0..n {
        let args = legacy_pickle(r, scans)?;
        let size = args
            .imports
            .iter()
            .find_map(|t| pickle::storage_element_size(t))
            .ok_or_else(|| {
                format!("unscannable: storage {i} has no torch storage type airlock can size")
            })?;
        let numel = read_i64(r, "a storage's size")?;
        let bytes = u64::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| format!("unscannable: storage {i} has size {numel}"))?;
        skip(r, bytes, "a storage's data")?;
    }
    // The storage views.
    legacy_pickle(r, scans)?;
    Ok(())
}

fn legacy_tensors(r: &mut dyn Read, scans: &mut Vec<pickle::Scan>) -> Result<(), String> {
    let n = legacy_count(r, scans, "tensor")?;
    for i in 0..n {
        legacy_pickle(r, scans)?;
        let mut b = [0u8; 4];
        r.read_exact(&mut b)
            .map_err(|_| "truncated: a tensor's dimensions run past the end".to_string())?;
        let ndim = i32::from_le_bytes(b);
        if !(0..=64).contains(&ndim) {
            return Err(format!("unscannable: tensor {i} has {ndim} dimensions"));
        }
        skip(r, 4 + 16 * ndim as u64 + 8, "a tensor's sizes and strides")?;
    }
    Ok(())
}

/// Where an NPY file's data starts, and whether its dtype holds Python
/// objects (then the data is a pickle, which `numpy.load(allow_pickle=True)`
/// unpickles). A header longer than `head` counts as holding objects.
fn npy_header(head: &[u8]) -> Option<(u64, bool)> {
    if !head.starts_with(b"\x93NUMPY") || head.len() < 10 {
        return None;
    }
    let (len, start) = match head[6] {
        1 => (u64::from(u16::from_le_bytes([head[8], head[9]])), 10u64),
        2 | 3 if head.len() >= 12 => (
            u64::from(u32::from_le_bytes(head[8..12].try_into().ok()?)),
            12,
        ),
        _ => return None,
    };
    let end = start + len;
    let Some(text) = head.get(start as usize..end as usize) else {
        return Some((end, true));
    };
    // `descr` of an object dtype is '|O' (alone or as a field's type): any O
    // right after a quote or byte-order mark counts, conservatively.
    let object = text
        .windows(2)
        .any(|w| w[1] == b'O' && b"'\"|<>=".contains(&w[0]));
    Some((end, object))
}

/// Scans an `.npy` file whose dtype holds objects: the pickle after its header.
fn scan_npy<R: Read + Seek>(r: &mut R, head: &[u8]) -> io::Result<Option<Facts>> {
    let Some((start, true)) = npy_header(head) else {
        return Ok(None);
    };
    r.seek(SeekFrom::Start(start))?;
    let mut f = Facts {
        format: "npy-pickle".into(),
        ..Facts::default()
    };
    match pickle::scan(r) {
        Ok(s) => merge_scan(&mut f, &s, None),
        Err(e) => merge_scan(&mut f, &e.partial, Some(format!("object array: {e}"))),
    }
    Ok(Some(f))
}

/// Counts the compressed bytes a decoder consumed, to find data after its stream.
struct Counting<R> {
    inner: R,
    used: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: io::BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.used.set(self.used.get() + n as u64);
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.used.set(self.used.get() + n as u64);
        self.inner.consume(n);
    }
}

/// The most memory an xz or lzma decoder may use (KiB): a 64 MiB dictionary
/// (`xz -9`) and the decoder's own state. A stream that declares more is
/// unscannable, so refused.
const LZMA_MEM_LIMIT_KB: u32 = 72 * 1024;

/// The decompressed stream of a file, read as it inflates and bounded by
/// [`storedzip::inflate_bound`]; memory stays bounded whatever the stream
/// declares. The counter tells how many compressed bytes the decoder used
/// (zlib, xz, lzma).
fn decompressed<'a, R: Read + Seek>(
    r: &'a mut R,
    size: u64,
    codec: Codec,
    used: &std::rc::Rc<std::cell::Cell<u64>>,
) -> io::Result<Box<dyn Read + 'a>> {
    r.seek(SeekFrom::Start(0))?;
    let bound = storedzip::inflate_bound(size);
    let what = format!("the {} stream", codec.name());
    let input = Counting {
        inner: io::BufReader::new(r),
        used: used.clone(),
    };
    Ok(match codec {
        Codec::Gzip => Box::new(storedzip::Bounded::new(
            flate2::bufread::MultiGzDecoder::new(input),
            bound,
            what,
        )),
        Codec::Zlib => Box::new(storedzip::Bounded::new(
            flate2::bufread::ZlibDecoder::new(input),
            bound,
            what,
        )),
        Codec::Bzip2 => Box::new(storedzip::Bounded::new(
            bzip2_rs::DecoderReader::new(input),
            bound,
            what,
        )),
        // Streaming decoders whose memory is the dictionary the stream
        // declares, refused past `LZMA_MEM_LIMIT_KB` (lzma-rs held a whole
        // xz block in memory: a 291 KiB xz of zeros took 3.9 GiB).
        Codec::Xz => Box::new(storedzip::Bounded::new(
            lzma_rust2::XzReader::new_mem_limit(input, false, LZMA_MEM_LIMIT_KB),
            bound,
            what,
        )),
        Codec::Lzma => Box::new(storedzip::Bounded::new(
            lzma_rust2::LzmaReader::new_mem_limit(input, LZMA_MEM_LIMIT_KB, None)?,
            bound,
            what,
        )),
    })
}

/// A compressed file (joblib's `compress=` formats, `model.pkl.gz`, ...):
/// when what it inflates to starts like a pickle (or it is named like one),
/// the whole stream is inflated within the bound and scanned.
fn scan_compressed<R: Read + Seek>(
    r: &mut R,
    size: u64,
    codec: Codec,
    named: bool,
) -> io::Result<Option<Facts>> {
    let used = std::rc::Rc::new(std::cell::Cell::new(0));
    let inner_head = match decompressed(r, size, codec, &used) {
        Ok(mut d) => read_up_to(&mut d, SNIFF_LEN).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let proto = inner_head.first() == Some(&0x80) && inner_head.get(1).is_some_and(|v| *v <= 5);
    let complete = (inner_head.len() as u64) < SNIFF_LEN;
    let sniffed = pickle::sniff(&inner_head, complete);
    if !named && !proto && sniffed == Sniff::NotPickle {
        return Ok(None);
    }
    let mut f = Facts {
        format: format!("pickle+{}", codec.name()),
        ..Facts::default()
    };
    let result = match decompressed(r, size, codec, &used) {
        Ok(mut d) => pickle::scan(&mut d),
        Err(e) => {
            merge_scan(
                &mut f,
                &pickle::Scan::default(),
                Some(format!("unscannable {} stream: {e}", codec.name())),
            );
            return Ok(Some(f));
        }
    };
    if !named {
        match &result {
            _ if !proto && !pickle::acts(&result) => return Ok(None),
            Err(m) if !m.is_threat() => return Ok(None),
            _ => {}
        }
    }
    match result {
        Ok(s) => {
            let mut malformed = None;
            // Data after the compressed stream: loaders that read several
            // streams would go on into it.
            let trailing = match codec {
                Codec::Zlib | Codec::Xz | Codec::Lzma => used.get() < size,
                Codec::Bzip2 => has_second_bzip2_stream(r, size)?,
                Codec::Gzip => false,
            };
            if trailing {
                malformed = Some(format!(
                    "unscannable: data follows the {} stream, which airlock does not read",
                    codec.name()
                ));
            }
            merge_scan(&mut f, &s, malformed)
        }
        Err(e) => merge_scan(&mut f, &e.partial, Some(e.to_string())),
    }
    Ok(Some(f))
}

/// Whether a bzip2 stream header (`BZh` + level + the block magic) appears
/// after the start: Python's bz2 reads every stream of a file.
fn has_second_bzip2_stream<R: Read + Seek>(r: &mut R, size: u64) -> io::Result<bool> {
    r.seek(SeekFrom::Start(1))?;
    let mut rd = io::BufReader::with_capacity(1 << 16, r.take(size.saturating_sub(1)));
    let mut window: Vec<u8> = Vec::with_capacity(10);
    let mut buf = [0u8; 1 << 16];
    loop {
        let n = rd.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        window.extend_from_slice(&buf[..n]);
        if window
            .windows(10)
            .any(|w| w.starts_with(b"BZh") && (b'1'..=b'9').contains(&w[3]) && &w[4..] == b"1AY&SY")
        {
            return Ok(true);
        }
        let keep = window.len().saturating_sub(9);
        window.drain(..keep);
    }
}

/// Checks a shard index: every shard it names is a file of the same artifact.
fn check_index(json: &[u8], uses: &[Use]) -> Result<Vec<String>, String> {
    let shards = safetensors::index_shards(json)?;
    let mut out = BTreeSet::new();
    for u in uses {
        let dir = u.path.rsplit_once('/').map(|(d, _)| d);
        for s in &shards {
            let full = match dir {
                Some(d) => format!("{d}/{s}"),
                None => s.clone(),
            };
            if !safe_relative(&full) {
                return Err(format!("shard {s:?} is not a plain path inside the model"));
            }
            if !u.siblings.contains(&full) {
                return Err(format!("names shard {s:?}, which is not in the model"));
            }
            out.insert(full);
        }
    }
    Ok(out.into_iter().collect())
}

/// Checks a file on disk.
pub fn check_path(path: &Path, size: u64, uses: &[Use]) -> io::Result<Checked> {
    let mut f = io::BufReader::with_capacity(1 << 16, fs_err::File::open(path)?);
    check(&mut f, size, uses)
}

/// Watches a file stream by and keeps what [`check`] will need.
pub struct Probe {
    uses: Vec<(String, Arc<BTreeSet<String>>)>,
    size: u64,
    head: Vec<u8>,
    mode: Mode,
    spool_dir: Option<PathBuf>,
    spool: Option<io::BufWriter<std::fs::File>>,
    /// Where the verified bytes can be read back: a file that needs the
    /// whole stream is read from there at `finish` instead of spooled.
    reread: Option<PathBuf>,
    /// Set when `finish` must read `reread` whole.
    read_back: bool,
    /// Set when the sniffed head classified the file as plain data (no
    /// format, no pickle): [`check`] of that same head finds nothing, so
    /// `finish` does not classify it a second time.
    plain: bool,
    error: Option<io::Error>,
    next_try: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sniffing,
    Capture(u64),
    CaptureGguf,
    Spool,
    Done,
}

impl Probe {
    fn new(
        uses: Vec<(String, Arc<BTreeSet<String>>)>,
        size: u64,
        spool_dir: Option<PathBuf>,
        reread: Option<PathBuf>,
    ) -> Self {
        Probe {
            uses,
            size,
            head: Vec::with_capacity(SNIFF_LEN.min(size) as usize),
            mode: Mode::Sniffing,
            spool_dir,
            spool: None,
            reread,
            read_back: false,
            plain: false,
            error: None,
            next_try: SNIFF_LEN * 2,
        }
    }

    fn with_uses<T>(&self, f: impl FnOnce(&[Use]) -> T) -> T {
        let uses: Vec<Use> = self
            .uses
            .iter()
            .map(|(p, s)| Use {
                path: p,
                siblings: s,
            })
            .collect();
        f(&uses)
    }

    fn decide(&mut self) {
        let plan = self.with_uses(|u| classify(&self.head, self.size, u));
        self.plain = plan.format.is_none() && plan.pickle == PickleRule::No;
        let spool = plan.pickle != PickleRule::No
            || matches!(
                plan.format,
                Some(Format::Zip | Format::Compressed(_) | Format::Npy | Format::Tar)
            );
        self.mode = if spool && self.reread.is_some() {
            self.head = Vec::new();
            self.read_back = true;
            Mode::Done
        } else if spool {
            let file = match &self.spool_dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            };
            match file {
                Ok(f) => {
                    let mut w = io::BufWriter::with_capacity(1 << 20, f);
                    if let Err(e) = w.write_all(&self.head) {
                        self.error = Some(e);
                    }
                    self.spool = Some(w);
                    self.head = Vec::new();
                    Mode::Spool
                }
                Err(e) => {
                    self.error = Some(e);
                    Mode::Done
                }
            }
        } else {
            match plan.format {
                Some(Format::Safetensors { .. }) => {
                    let n = u64::from_le_bytes(
                        self.head
                            .get(..8)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or([0; 8]),
                    );
                    Mode::Capture(n.min(safetensors::MAX_HEADER).saturating_add(8))
                }
                Some(Format::Gguf) => Mode::CaptureGguf,
                Some(Format::Index) => Mode::Capture(MAX_INDEX.saturating_add(1)),
                _ => Mode::Done,
            }
        };
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && self.error.is_none() {
            match self.mode {
                Mode::Done => return,
                Mode::Spool => {
                    if let Err(e) = self.spool.as_mut().expect("spooling").write_all(buf) {
                        self.error = Some(e);
                    }
                    return;
                }
                Mode::Sniffing | Mode::Capture(_) | Mode::CaptureGguf => {
                    let limit = match self.mode {
                        Mode::Sniffing => SNIFF_LEN.min(self.size),
                        Mode::Capture(n) => n.min(self.size),
                        _ => gguf::MAX_HEADER.min(self.size).min(self.next_try),
                    };
                    let room = limit.saturating_sub(self.head.len() as u64) as usize;
                    let n = room.min(buf.len());
                    self.head.extend_from_slice(&buf[..n]);
                    buf = &buf[n..];
                    if (self.head.len() as u64) < limit {
                        continue;
                    }
                    match self.mode {
                        Mode::Sniffing => self.decide(),
                        Mode::CaptureGguf => {
                            let done = !matches!(
                                gguf::parse(&self.head, self.size),
                                Err(gguf::Problem::NeedMore)
                            ) || self.head.len() as u64
                                >= gguf::MAX_HEADER.min(self.size);
                            if done {
                                self.mode = Mode::Done;
                            } else {
                                self.next_try *= 2;
                            }
                        }
                        _ => self.mode = Mode::Done,
                    }
                }
            }
        }
        if self.mode == Mode::Sniffing && self.head.len() as u64 >= SNIFF_LEN.min(self.size) {
            self.decide();
        }
    }

    /// Checks what was kept, once the stream has ended and its digest verified.
    pub fn finish(mut self) -> io::Result<Checked> {
        if self.mode == Mode::Sniffing {
            self.decide();
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let size = self.size;
        if self.plain {
            // `check` of the head kept (all of it: a plain file's mode is
            // `Done` from its decision on) classifies it as `decide` did,
            // then has no format to check and no pickle to scan.
            return Ok(Checked::default());
        }
        if self.read_back {
            let file = self
                .reread
                .take()
                .expect("read_back is set only with a file");
            return self.with_uses(|u| check_path(&file, size, u));
        }
        match self.spool.take() {
            Some(w) => {
                let mut f = io::BufReader::new(w.into_inner().map_err(|e| e.into_error())?);
                self.with_uses(|u| check(&mut f, size, u))
            }
            None => {
                let mut c = io::Cursor::new(std::mem::take(&mut self.head));
                self.with_uses(|u| check(&mut c, size, u))
            }
        }
    }
}

/// The high side's view: which blobs are layers of model or file-set
/// artifacts, under which names, and the trust policy's pickle setting.
/// Compact, since a file set has a layer per file: one 16-byte record per
/// layer, naming it in the description it borrows (no copy of its path, 8
/// bytes of its digest to search by).
pub struct ContentPlan<'d> {
    d: &'d Description,
    /// Every layer of a model or file-set artifact: its digest's first 8
    /// bytes and (artifact, layer) indexes into `d`, sorted by those bytes,
    /// and for one digest in artifact and layer order.
    layers: Vec<(u64, u32, u32)>,
    /// Per artifact of `d`: every path in it, for the shard-index check
    /// (`Use`): built only when one of its blobs is named as a shard index
    /// in some artifact, else empty (no check then reads it).
    siblings: Vec<Arc<BTreeSet<String>>>,
    pickle: PickleRules,
}

impl<'d> ContentPlan<'d> {
    pub fn new(d: &'d Description, pickle: impl Into<PickleRules>) -> Self {
        let checked = |a: &crate::bundle::Artifact| {
            matches!(a.kind, ArtifactKind::Model | ArtifactKind::Files)
        };
        // Blobs some artifact names as a shard index: `check_index` looks
        // each name it lists up among the siblings of every use of it.
        let indexes: HashSet<Sha256Digest> = d
            .artifacts
            .iter()
            .filter(|a| checked(a))
            .flat_map(|a| &a.layers)
            .filter(|l| ends_with_any(l.path, INDEX_SUFFIXES))
            .map(|l| *l.digest)
            .collect();
        let none = Arc::new(BTreeSet::new());
        // Sized up front: grown by doubling, it would hold up to twice its
        // records (a file set has a layer per file).
        let count = d
            .artifacts
            .iter()
            .filter(|a| checked(a))
            .map(|a| a.layers.len())
            .sum();
        let mut layers = Vec::with_capacity(count);
        let mut siblings = Vec::with_capacity(d.artifacts.len());
        for (idx, a) in d.artifacts.iter().enumerate() {
            if !checked(a) {
                siblings.push(Arc::clone(&none));
                continue;
            }
            layers.extend(
                a.layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (prefix(l.digest), idx as u32, i as u32)),
            );
            siblings.push(if a.layers.iter().any(|l| indexes.contains(l.digest)) {
                Arc::new(a.layers.iter().map(|l| l.path.to_owned()).collect())
            } else {
                Arc::clone(&none)
            });
        }
        // By prefix, and for one prefix in artifact and layer order (the
        // whole record is the key: a stable sort by prefix would give the
        // same order but hold a scratch copy of every record).
        layers.sort_unstable();
        ContentPlan {
            d,
            layers,
            siblings,
            pickle: pickle.into(),
        }
    }

    /// The layer at (artifact, layer) indexes.
    fn layer(&self, (a, i): (u32, u32)) -> crate::bundle::LayerRef<'d> {
        self.d.artifacts[a as usize].layers.at(i as usize)
    }

    fn digest_of(payload_path: &str) -> Option<Sha256Digest> {
        payload_path.strip_prefix(BLOBS_PREFIX)?.parse().ok()
    }

    /// The layers using blob `d`: (artifact, layer) indexes, in artifact
    /// and layer order (those whose digest only begins as `d`'s left out).
    fn users<'a>(&'a self, d: &'a Sha256Digest) -> impl Iterator<Item = (u32, u32)> + 'a {
        let p = prefix(d);
        let lo = self.layers.partition_point(|l| l.0 < p);
        let n = self.layers[lo..].partition_point(|l| l.0 == p);
        self.layers[lo..lo + n]
            .iter()
            .map(|&(_, a, i)| (a, i))
            .filter(move |&l| self.layer(l).digest == d)
    }

    /// Whether the payload file at `payload_path` is checked at all.
    pub fn wants(&self, payload_path: &str) -> bool {
        Self::digest_of(payload_path).is_some_and(|d| self.users(&d).next().is_some())
    }

    /// Starts checking payload file `payload_path` of `size` bytes as it is
    /// taken: its bytes are probed as they stream by (the caller feeds
    /// [`Pending::probe`] while it hashes them), so most files are judged
    /// from the one read that hashes them. When the whole file is needed
    /// (a pickle, an archive), it is read back from `file` (the bundle's own
    /// file, or the staged copy) once its digest verified, or without one,
    /// spooled to `spool_dir` (else the system temporary directory). `None`
    /// when the file is not a layer of a model or file-set artifact.
    pub fn start(
        &self,
        payload_path: &str,
        size: u64,
        file: Option<PathBuf>,
        spool_dir: Option<&Path>,
    ) -> Option<Pending> {
        let d = Self::digest_of(payload_path)?;
        let users: Vec<_> = self
            .users(&d)
            .map(|(a, i)| {
                let path = self.layer((a, i)).path.to_owned();
                (path, Arc::clone(&self.siblings[a as usize]))
            })
            .collect();
        if users.is_empty() {
            return None;
        }
        let probe = Probe::new(users, size, spool_dir.map(Path::to_path_buf), file);
        Some(Pending {
            payload: payload_path.to_string(),
            probe,
        })
    }

    fn report(&self, d: &Sha256Digest, payload_path: &str, checked: &Checked) -> Report {
        let mut r = Report::default();
        let problems = checked.problems(
            &self.pickle,
            "the trust policy's pickle: deny refuses it (pickle: {allow: [module.name]} admits named imports, pickle: allow admits every pickle)",
        );
        for (a, i) in self.users(d) {
            let reference = &self.d.artifacts[a as usize].reference;
            let subject = format!("{reference}/{}", self.layer((a, i)).path);
            for p in &problems {
                r.add(&subject, format!("{p} ({payload_path})"));
            }
        }
        r
    }
}

/// A digest's first 8 bytes, which `ContentPlan` searches by.
fn prefix(d: &Sha256Digest) -> u64 {
    let b = d.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A payload file being checked: see [`ContentPlan::start`].
pub struct Pending {
    payload: String,
    probe: Probe,
}

impl Pending {
    /// The probe to show the streaming bytes.
    pub fn probe(&mut self) -> &mut Probe {
        &mut self.probe
    }

    /// Checks the file, once its digest verified; the findings name each
    /// artifact file that uses it.
    pub fn finish(self, plan: &ContentPlan) -> io::Result<Report> {
        let checked = self.probe.finish()?;
        Ok(match ContentPlan::digest_of(&self.payload) {
            Some(d) => plan.report(&d, &self.payload, &checked),
            None => Report::default(),
        })
    }
}

/// What `inspect` shows about models and pickles, from the description
/// (what pack found; `verify` re-checks the files themselves).
pub fn render(d: &Description) -> String {
    let mut s = String::new();
    if !d.models.is_empty() {
        s.push_str("\nmodels:\n");
        for m in &d.models {
            let mut parts: Vec<String> = Vec::new();
            parts.extend(m.format.clone());
            if let Some(n) = m.parameters {
                parts.push(format!("{n} parameters"));
            }
            parts.extend(m.precision.clone());
            parts.extend(m.architecture.clone());
            s.push_str(&format!(
                "  {} ({}): {}\n",
                m.name,
                m.artifact,
                parts.join(", ")
            ));
            if let Some(o) = &m.huggingface {
                s.push_str(&format!(
                    "      Hugging Face {}@{} (export writes a Hub cache)\n",
                    o.repo, o.revision
                ));
            }
            if let Some(sig) = &m.signature {
                s.push_str(&format!("      {}\n", crate::modelsig::summary(sig)));
            }
        }
    }
    let pickles: Vec<&ContentEntry> = d.content.iter().filter(|c| is_pickle(c)).collect();
    if !pickles.is_empty() || d.pickle == PicklePolicy::Allow {
        s.push_str(&format!(
            "\npickles (builder policy: pickle {}):\n",
            match d.pickle {
                PicklePolicy::Allow => "allow",
                PicklePolicy::Deny => "deny",
            }
        ));
        for c in pickles {
            let f = &c.facts;
            let verdict = if let Some(m) = &f.malformed {
                format!("NOT SCANNABLE: {m}")
            } else if f.imports.is_empty() {
                "no imports".to_string()
            } else if f.unsafe_imports.is_empty() {
                format!("allowlisted imports only: {}", f.imports.join(", "))
            } else {
                format!("UNSAFE imports {}", f.unsafe_imports.join(", "))
            };
            s.push_str(&format!(
                "  {}/{}: {}, {verdict}\n",
                c.artifact, c.path, f.format
            ));
        }
    }
    s
}

/// `22.7M`, `6.7B`: the ModelPack `paramSize` form; `None` below 50.
pub fn param_size(n: u64) -> Option<String> {
    const SCALES: [(u128, char); 5] = [
        (1_000_000_000_000_000, 'Q'),
        (1_000_000_000_000, 'T'),
        (1_000_000_000, 'B'),
        (1_000_000, 'M'),
        (1_000, 'K'),
    ];
    let n = u128::from(n);
    let mut i = SCALES
        .iter()
        .position(|(s, _)| n >= *s)
        .unwrap_or(SCALES.len() - 1);
    loop {
        let (s, c) = SCALES[i];
        let tenths = (n * 10 + s / 2) / s;
        if tenths >= 10_000 && i > 0 {
            i -= 1;
            continue;
        }
        if tenths == 0 {
            return None;
        }
        return Some(format!("{}.{}{c}", tenths / 10, tenths % 10));
    }
}

fn precision_name(dtype: &str) -> String {
    match dtype {
        "F64" => "fp64",
        "F32" => "fp32",
        "F16" => "fp16",
        "BF16" => "bf16",
        "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => "fp8",
        "F6_E2M3" | "F6_E3M2" => "fp6",
        "F4" => "fp4",
        "I8" => "int8",
        "U8" => "uint8",
        "I16" => "int16",
        "U16" => "uint16",
        "I32" => "int32",
        "U32" => "uint32",
        "I64" => "int64",
        "U64" => "uint64",
        "BOOL" => "bool",
        "float32" => "fp32",
        "float16" => "fp16",
        "bfloat16" => "bf16",
        "float64" => "fp64",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

fn is_float(precision: &str) -> bool {
    precision.starts_with("fp") || precision.starts_with("bf") || precision.starts_with('q')
}

/// Summarizes a model from its files' facts and its `config.json`.
pub fn summarize(
    artifact: &str,
    name: &str,
    layer_paths: &[String],
    content: &[&ContentEntry],
    hf_config: Option<&[u8]>,
) -> ModelFacts {
    let hf: Option<serde_json::Value> = hf_config.and_then(|b| serde_json::from_slice(b).ok());
    let mut m = ModelFacts {
        artifact: artifact.to_string(),
        name: name.to_string(),
        ..ModelFacts::default()
    };
    m.architecture = hf
        .as_ref()
        .and_then(|v| {
            v.get("architectures")
                .and_then(|a| a.get(0))
                .or_else(|| v.get("model_type"))
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        })
        .or_else(|| content.iter().find_map(|c| c.facts.architecture.clone()));
    let of = |fmt: &[&str]| -> Vec<&&ContentEntry> {
        content
            .iter()
            .filter(|c| fmt.contains(&c.facts.format.as_str()))
            .collect()
    };
    let safetensors = of(&["safetensors"]);
    let gguf = of(&["gguf"]);
    let torch = of(&[
        "pytorch-zip",
        "pytorch-legacy",
        "pytorch-legacy-tar",
        "pickle",
    ]);
    let counted: Vec<&&ContentEntry> = if !safetensors.is_empty() {
        m.format = Some("safetensors".into());
        safetensors
    } else if !gguf.is_empty() {
        m.format = Some("gguf".into());
        // Split files (`-00001-of-00003.gguf`) add up; separate files are
        // variants of one model (quantizations): the largest is counted.
        let split: Vec<_> = gguf
            .iter()
            .copied()
            .filter(|c| is_split_gguf(&c.path))
            .collect();
        if split.is_empty() {
            gguf.iter()
                .copied()
                .max_by_key(|c| (c.facts.parameters, std::cmp::Reverse(c.path.clone())))
                .into_iter()
                .collect()
        } else {
            split
        }
    } else if !torch.is_empty() {
        m.format = Some("pytorch".into());
        Vec::new()
    } else {
        if layer_paths
            .iter()
            .any(|p| p.to_ascii_lowercase().ends_with(".onnx"))
        {
            m.format = Some("onnx".into());
        }
        Vec::new()
    };
    if !counted.is_empty() {
        let mut total = 0u64;
        for c in &counted {
            total = total.saturating_add(c.facts.parameters.unwrap_or(0));
            for (k, v) in &c.facts.dtypes {
                *m.dtypes.entry(k.clone()).or_default() += v;
            }
            m.weights.push(c.path.clone());
        }
        m.parameters = Some(total);
        m.param_size = param_size(total);
    }
    let precisions: BTreeSet<String> = m.dtypes.keys().map(|d| precision_name(d)).collect();
    let floats: BTreeSet<&String> = precisions.iter().filter(|p| is_float(p)).collect();
    m.precision = match (floats.len(), precisions.len()) {
        (1, _) => floats.into_iter().next().cloned(),
        (0, 1) => precisions.into_iter().next(),
        (0, 0) => hf
            .as_ref()
            .and_then(|v| v.get("torch_dtype").or_else(|| v.get("dtype")))
            .and_then(|s| s.as_str())
            .map(precision_name),
        _ => Some("mixed".into()),
    };
    m
}

fn is_split_gguf(path: &str) -> bool {
    let Some(stem) = path.strip_suffix(".gguf") else {
        return false;
    };
    let b = stem.as_bytes();
    b.len() > 15 && {
        let t = &b[b.len() - 15..];
        t[0] == b'-'
            && t[1..6].iter().all(u8::is_ascii_digit)
            && &t[6..10] == b"-of-"
            && t[10..15].iter().all(u8::is_ascii_digit)
    }
}

/// Whether an entry is about a pickle (for the bundle's `pickle` record).
pub fn is_pickle(e: &ContentEntry) -> bool {
    e.facts.is_pickle()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawtar::test_member as tar_member;

    fn uses<'a>(path: &'a str, sib: &'a BTreeSet<String>) -> Vec<Use<'a>> {
        vec![Use {
            path,
            siblings: sib,
        }]
    }

    fn run(bytes: &[u8], path: &str) -> Checked {
        let sib = BTreeSet::from([path.to_string()]);
        check(
            &mut io::Cursor::new(bytes),
            bytes.len() as u64,
            &uses(path, &sib),
        )
        .unwrap()
    }

    /// The same result from a probe fed in odd-sized chunks, spooling what
    /// it needs whole, or with `reread`, reading it back from a file.
    fn probed(bytes: &[u8], path: &str, reread: bool) -> Checked {
        let sib = Arc::new(BTreeSet::from([path.to_string()]));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        std::fs::write(&file, bytes).unwrap();
        let mut p = Probe::new(
            vec![(path.to_string(), sib)],
            bytes.len() as u64,
            None,
            reread.then_some(file),
        );
        for c in bytes.chunks(7777) {
            p.feed(c);
        }
        p.finish().unwrap()
    }

    fn both(bytes: &[u8], path: &str) -> Checked {
        let a = run(bytes, path);
        assert_eq!(
            a,
            probed(bytes, path, false),
            "probe and file disagree for {path}"
        );
        assert_eq!(
            a,
            probed(bytes, path, true),
            "probe reading back disagrees for {path}"
        );
        a
    }

    fn malicious() -> Vec<u8> {
        b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.".to_vec()
    }

    #[test]
    fn safetensors_by_name_and_content() {
        let f = safetensors::build(&[("w", "F32", &[100, 50])], |i| i as u8);
        let c = both(&f, "model.safetensors");
        assert_eq!(c.invalid, None);
        let facts = c.facts.unwrap();
        assert_eq!(facts.format, "safetensors");
        assert_eq!(facts.parameters, Some(5000));
        // Same bytes under another name: recognised by content.
        assert_eq!(both(&f, "weights.bin").facts.unwrap().format, "safetensors");
        // A broken one named .safetensors is invalid; named otherwise it is opaque.
        let mut bad = f.clone();
        bad.truncate(f.len() - 4);
        assert!(both(&bad, "model.safetensors")
            .invalid
            .unwrap()
            .contains("invalid safetensors"));
        assert_eq!(both(&bad, "blob.dat"), Checked::default());
    }

    #[test]
    fn plain_files_probe_as_they_check_and_names_match_in_any_case() {
        // Plain data (the short cut in `Probe::finish`): text, empty,
        // shorter and longer than the sniff window.
        let text = b"fn main() { let x = 1; }\n".repeat(4000);
        for bytes in [&b""[..], b"x", &text[..100], &text[..]] {
            assert_eq!(both(bytes, "src/main.rs"), Checked::default());
        }
        // A name still decides, whatever its case: junk named like a
        // pickle or a safetensors file is refused, not taken for data.
        for name in ["MODEL.PT", "w.Pkl", "Model.SafeTensors"] {
            let c = both(b"plain text, not a model", name);
            assert!(c != Checked::default(), "{name}: {c:?}");
        }
        assert!(ends_with_any("a/B.SAFETENSORS.INDEX.JSON", INDEX_SUFFIXES));
        assert!(!ends_with_any("pt", PICKLE_EXT));
        assert!(!ends_with_any("model.pt.txt", PICKLE_EXT));
        // Non-ASCII before the suffix: compared byte-wise, as lowercasing did.
        assert!(ends_with_any("modèle.pt", PICKLE_EXT));
        assert!(!ends_with_any("é", PICKLE_EXT));
    }

    #[test]
    fn safetensors_whose_length_reads_as_proto_is_not_a_pickle() {
        // A header of 640 bytes starts the file with 0x80 0x02, like PROTO 2.
        let mut h = String::from(r#"{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}"#);
        while h.len() < 639 {
            h.push(' ');
        }
        h.push('}');
        let mut f = 640u64.to_le_bytes().to_vec();
        f.extend_from_slice(h.as_bytes());
        f.extend_from_slice(b"ab");
        assert_eq!(&f[..2], b"\x80\x02");
        let c = both(&f, "weights.bin");
        assert_eq!(c.facts.unwrap().format, "safetensors");
        assert_eq!(c.invalid, None);
    }

    #[test]
    fn probe_captures_headers_larger_than_the_sniff_window() {
        // A safetensors header of ~150 KiB and a GGUF header of ~300 KiB:
        // the probe keeps exactly what the file check reads.
        let names: Vec<String> = (0..3000).map(|i| format!("layer.{i:05}.weight")).collect();
        let tensors: Vec<(&str, &str, &[u64])> = names
            .iter()
            .map(|n| (n.as_str(), "F16", &[4u64][..]))
            .collect();
        let f = safetensors::build(&tensors, |i| i as u8);
        assert!(f.len() as u64 > 2 * SNIFF_LEN);
        let c = both(&f, "model.safetensors");
        assert_eq!(c.facts.unwrap().tensors, Some(3000));
        let mut bad = f.clone();
        let at = bad.len() - 1;
        bad.truncate(at);
        assert!(both(&bad, "model.safetensors").invalid.is_some());

        let arch = "a".repeat(300_000);
        let g = gguf::build(&arch, &[("t", &[8])]);
        let c = both(&g, "big.gguf");
        assert_eq!(
            c.facts.unwrap().architecture.as_deref(),
            Some(arch.as_str())
        );
        let cut = &g[..200_000];
        assert!(both(cut, "big.gguf").invalid.unwrap().contains("truncated"));
    }

    #[test]
    fn gguf_checked() {
        let g = gguf::build("llama", &[("t", &[64, 2])]);
        let facts = both(&g, "m.gguf").facts.unwrap();
        assert_eq!(facts.version, Some(3));
        assert_eq!(facts.parameters, Some(128));
        assert_eq!(facts.architecture.as_deref(), Some("llama"));
        let mut v = g.clone();
        v[4] = 9;
        assert!(both(&v, "m.gguf").invalid.unwrap().contains("version 9"));
        assert!(both(b"nope", "m.gguf").invalid.unwrap().contains("GGUF"));
    }

    #[test]
    fn pickles_found_by_content_and_name() {
        let m = malicious();
        for name in ["model.bin", "x.pt", "weights.dat", "README"] {
            let c = both(&m, name);
            let facts = c.facts.clone().expect(name);
            assert_eq!(facts.unsafe_imports, ["posix.system"], "{name}");
            let problems = c.problems(&PicklePolicy::Deny.into(), "hint");
            assert!(problems[0].contains("posix.system"), "{problems:?}");
            assert!(c.problems(&PicklePolicy::Allow.into(), "hint").is_empty());
        }
        // Protocol 0 has no magic: found because it imports and calls.
        let p0 = b"cos\nsystem\n(S'id'\ntR.";
        assert_eq!(
            both(p0, "notes.txt").facts.unwrap().unsafe_imports,
            ["os.system"]
        );
        // Padding beyond the sniff window before the call: still found.
        let mut padded = b"N0".repeat(50_000);
        padded.extend_from_slice(b"cposix\nsystem\n(S'id'\ntR.");
        let c = both(&padded, "pytorch_model.bin");
        assert_eq!(c.facts.unwrap().unsafe_imports, ["posix.system"]);
        // A log whose lines happen to be valid opcodes throughout is not one.
        let log = b"Processing shard\n".repeat(5000);
        assert_eq!(both(&log, "run.log"), Checked::default());
        // Text is not a pickle.
        assert_eq!(
            both(b"certifi\nrequests\n", "requirements.txt"),
            Checked::default()
        );
        // A .pt that is nothing recognisable is refused as malformed; a .bin is opaque.
        let junk = b"\x00\x01\x02 not a checkpoint";
        let c = both(junk, "model.pt");
        assert!(c.facts.unwrap().malformed.unwrap().contains("not a pickle"));
        assert_eq!(both(junk, "ggml-model.bin"), Checked::default());
        // Truncated pickle: malformed.
        let cut = &m[..m.len() - 3];
        assert!(both(cut, "model.bin")
            .facts
            .unwrap()
            .malformed
            .unwrap()
            .contains("truncated"));
    }

    #[test]
    fn torch_zip_members_scanned() {
        let sd = crate::pickle::state_dict_pickle();
        let z = storedzip::build(&[
            ("archive/data.pkl", &sd),
            ("archive/version", b"3\n"),
            ("archive/data/0", &[0u8; 16]),
        ]);
        let c = both(&z, "pytorch_model.bin");
        let f = c.facts.unwrap();
        assert_eq!(f.format, "pytorch-zip");
        assert!(
            f.unsafe_imports.is_empty() && f.malformed.is_none(),
            "{f:?}"
        );
        let bad = storedzip::build(&[("archive/data.pkl", &malicious())]);
        let f = both(&bad, "model.pt").facts.unwrap();
        assert_eq!(f.unsafe_imports, ["posix.system"]);
        // A zip without pickles is just a zip, unless it is named like a checkpoint.
        let plain = storedzip::build(&[("a.txt", b"hi")]);
        assert_eq!(both(&plain, "bundle.zip"), Checked::default());
        assert!(both(&plain, "model.pt").facts.unwrap().malformed.is_some());
    }

    #[test]
    fn shard_index_names_existing_shards() {
        let idx = br#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;
        let sib: BTreeSet<String> = [
            "sub/model.safetensors.index.json",
            "sub/model-00001-of-00002.safetensors",
            "sub/model-00002-of-00002.safetensors",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let u = uses("sub/model.safetensors.index.json", &sib);
        let c = check(&mut io::Cursor::new(idx), idx.len() as u64, &u).unwrap();
        assert_eq!(c.facts.unwrap().shards.len(), 2);
        let mut fewer = sib.clone();
        fewer.remove("sub/model-00002-of-00002.safetensors");
        let u = uses("sub/model.safetensors.index.json", &fewer);
        let c = check(&mut io::Cursor::new(idx), idx.len() as u64, &u).unwrap();
        assert!(c
            .invalid
            .unwrap()
            .contains("model-00002-of-00002.safetensors"));
        let evil = br#"{"weight_map":{"a":"../../etc/passwd"}}"#;
        let c = check(&mut io::Cursor::new(evil), evil.len() as u64, &u).unwrap();
        assert!(c.invalid.unwrap().contains("not a plain path"));
    }

    #[test]
    fn summaries() {
        assert_eq!(param_size(22_713_216).as_deref(), Some("22.7M"));
        assert_eq!(param_size(6_738_415_616).as_deref(), Some("6.7B"));
        assert_eq!(param_size(999_960).as_deref(), Some("1.0M"));
        assert_eq!(param_size(5000).as_deref(), Some("5.0K"));
        assert_eq!(param_size(10), None);
        let e = |path: &str, format: &str, n: u64, dtypes: &[(&str, u64)]| ContentEntry {
            artifact: "models/m".into(),
            path: path.into(),
            facts: Facts {
                format: format.into(),
                parameters: Some(n),
                dtypes: dtypes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                ..Facts::default()
            },
        };
        let a = e(
            "m-00001-of-00002.safetensors",
            "safetensors",
            3000,
            &[("BF16", 2990), ("I64", 10)],
        );
        let b = e(
            "m-00002-of-00002.safetensors",
            "safetensors",
            2000,
            &[("BF16", 2000)],
        );
        let g = e("m.Q4.gguf", "gguf", 9999, &[("Q4_K", 9999)]);
        let s = summarize(
            "models/m",
            "m",
            &[],
            &[&a, &b, &g],
            Some(br#"{"architectures":["LlamaForCausalLM"]}"#),
        );
        assert_eq!(s.format.as_deref(), Some("safetensors"));
        assert_eq!(s.parameters, Some(5000));
        assert_eq!(s.precision.as_deref(), Some("bf16"));
        assert_eq!(s.architecture.as_deref(), Some("LlamaForCausalLM"));
        let q8 = e("m.Q8.gguf", "gguf", 10_000, &[("Q8_0", 10_000)]);
        let s = summarize("models/m", "m", &[], &[&g, &q8], None);
        assert_eq!(s.parameters, Some(10_000));
        assert_eq!(s.precision.as_deref(), Some("q8_0"));
        assert!(is_split_gguf("x-00001-of-00003.gguf"));
        assert!(!is_split_gguf("x.gguf"));
    }

    fn malformed(bytes: &[u8]) -> String {
        both(bytes, "old.bin")
            .facts
            .and_then(|f| f.malformed)
            .unwrap_or_default()
    }

    #[test]
    fn legacy_tar_metadata_is_bounded_and_sizes_must_agree() {
        use tar::EntryType::{GNULongName, Regular, XHeader};
        let pickle = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.";
        // An 8 GiB pax header (a little of it present): unscannable, unread.
        let mut t = tar_member(XHeader, "PaxHeaders/pickle", 8 << 30, &[b'a'; 2048]);
        t.extend([0u8; 1024]);
        let m = malformed(&t);
        assert!(m.contains("declares 8589934592 bytes"), "{m}");
        // A long name calls a member `pickle`: it is scanned as one.
        let mut t = tar_member(GNULongName, "././@LongLink", 7, b"pickle\0");
        t.extend(tar_member(Regular, "x", pickle.len() as u64, pickle));
        t.extend([0u8; 1024]);
        let c = both(&t, "old.bin");
        assert_eq!(c.facts.unwrap().unsafe_imports, ["os.system"]);
        // A pax size other than the header's on any member: where tarfile
        // finds the next member is not where the walk does.
        let rec = b"13 size=4096\n";
        let mut t = tar_member(XHeader, "P", rec.len() as u64, rec);
        t.extend(tar_member(Regular, "junk", 0, b""));
        t.extend(tar_member(Regular, "pickle", 3, b"N.\0"));
        t.extend([0u8; 1024]);
        let m = malformed(&t);
        assert!(m.contains("\"junk\" has a pax size record"), "{m}");
        // A link called `pickle`: tarfile would follow it.
        let mut t = tar_member(tar::EntryType::Symlink, "pickle", 0, b"");
        t.extend([0u8; 1024]);
        let m = malformed(&t);
        assert!(m.contains("not a regular file"), "{m}");
    }
}
