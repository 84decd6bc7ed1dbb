//! safetensors validation from the header alone: no tensor is loaded.
//!
//! A safetensors file is an 8-byte little-endian header length `n`, `n`
//! bytes of JSON (tensor name → dtype, shape, `data_offsets` into the data
//! area; optional `__metadata__` of strings), then the data area. This module
//! reads the first `8 + n` bytes and checks, against the file's size, what a
//! loader would otherwise trust: the header fits and parses, every dtype is
//! known, every tensor's byte range lies inside the data area and is exactly
//! `shape × dtype` long, and the ranges tile the data area with no overlap,
//! gap or trailing byte. Each problem names the tensor at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Largest header accepted (the reference implementation's limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// What the header says, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub header_len: u64,
    pub tensors: u64,
    /// Sum over tensors of the product of their shapes.
    pub parameters: u64,
    /// dtype → parameters of that dtype.
    pub dtypes: BTreeMap<String, u64>,
    pub names: BTreeSet<String>,
    /// `__metadata__` `format` (e.g. `pt`), when given.
    pub format: Option<String>,
}

/// Size in bits of one element of a safetensors dtype, for the dtypes the
/// format defines; `None` for anything else.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The header's top-level object, keeping every entry so duplicates are seen.
struct RawHeader {
    metadata: Option<BTreeMap<String, String>>,
    tensors: Vec<(String, RawTensor)>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                let mut metadata = None;
                let mut tensors = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("{key:?} appears twice")));
                    }
                    if key == "__metadata__" {
                        metadata = Some(
                            map.next_value::<BTreeMap<String, String>>()
                                .map_err(|e| de::Error::custom(format!("__metadata__: {e}")))?,
                        );
                    } else {
                        let t = map
                            .next_value::<RawTensor>()
                            .map_err(|e| de::Error::custom(format!("tensor {key:?}: {e}")))?;
                        tensors.push((key, t));
                    }
                }
                Ok(RawHeader { metadata, tensors })
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads the header from `r` (positioned at the start of a file of `size`
/// bytes) and validates it. Reads `8 + header length` bytes at most.
pub fn validate(r: &mut dyn Read, size: u64) -> Result<Info, String> {
    if size < 8 {
        return Err(format!(
            "{size} bytes: shorter than the 8-byte header length every safetensors file starts with"
        ));
    }
    let mut len = [0u8; 8];
    r.read_exact(&mut len)
        .map_err(|e| format!("cannot read the header length: {e}"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(format!(
            "header length {n} is larger than the {MAX_HEADER}-byte limit"
        ));
    }
    if n > size - 8 {
        return Err(format!(
            "truncated header: its length field says {n} bytes but only {} follow",
            size - 8
        ));
    }
    if n < 2 {
        return Err(format!("header length {n} is too small for a JSON object"));
    }
    let mut header = Vec::with_capacity(n as usize);
    r.take(n)
        .read_to_end(&mut header)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    if (header.len() as u64) < n {
        return Err(format!(
            "truncated header: {} of {n} header bytes present",
            header.len()
        ));
    }
    check_header(&header, size - 8 - n).map(|mut info| {
        info.header_len = n;
        info
    })
}

/// Validates header JSON against a data area of `data_len` bytes.
pub fn check_header(header: &[u8], data_len: u64) -> Result<Info, String> {
    let text = std::str::from_utf8(header)
        .map_err(|e| format!("header is not UTF-8 (byte {})", e.valid_up_to()))?;
    if !text.starts_with('{') {
        return Err("header does not start with '{': not a safetensors file".into());
    }
    let raw: RawHeader = serde_json::from_str(text)
        .map_err(|e| format!("header is not valid safetensors JSON: {e}"))?;
    let mut info = Info {
        header_len: header.len() as u64,
        tensors: raw.tensors.len() as u64,
        parameters: 0,
        dtypes: BTreeMap::new(),
        names: BTreeSet::new(),
        format: raw.metadata.as_ref().and_then(|m| m.get("format").cloned()),
    };
    let mut ranges: Vec<(u64, u64, &str)> = Vec::with_capacity(raw.tensors.len());
    for (name, t) in &raw.tensors {
        let bits = dtype_bits(&t.dtype)
            .ok_or_else(|| format!("tensor {name:?}: unknown dtype {:?}", t.dtype))?;
        let (begin, end) = t.data_offsets;
        if end < begin {
            return Err(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] end before they begin"
            ));
        }
        if end > data_len {
            return Err(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] run past the end of the data area ({data_len} bytes)"
            ));
        }
        let numel = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("tensor {name:?}: shape {:?} overflows", t.shape))?;
        let nbits = numel
            .checked_mul(bits)
            .ok_or_else(|| format!("tensor {name:?}: shape {:?} overflows", t.shape))?;
        if nbits % 8 != 0 {
            return Err(format!(
                "tensor {name:?}: {numel} elements of {} do not fill whole bytes",
                t.dtype
            ));
        }
        if nbits / 8 != end - begin {
            return Err(format!(
                "tensor {name:?}: shape {:?} of {} needs {} bytes but data_offsets [{begin}, {end}] hold {}",
                t.shape,
                t.dtype,
                nbits / 8,
                end - begin
            ));
        }
        info.parameters = info.parameters.saturating_add(numel);
        *info.dtypes.entry(t.dtype.clone()).or_default() += numel;
        info.names.insert(name.clone());
        ranges.push((begin, end, name));
    }
    ranges.sort();
    let mut cursor = 0u64;
    let mut prev: Option<&str> = None;
    for (begin, end, name) in ranges {
        if begin < cursor {
            return Err(format!(
                "tensor {name:?} (bytes {begin}..{end}) overlaps tensor {:?}, which ends at {cursor}",
                prev.unwrap_or("")
            ));
        }
        if begin > cursor {
            return Err(format!(
                "gap: data area bytes {cursor}..{begin} belong to no tensor (before tensor {name:?})"
            ));
        }
        cursor = end;
        prev = Some(name);
    }
    if cursor != data_len {
        return Err(format!(
            "{} trailing bytes after the last tensor (tensors cover {cursor} of the {data_len}-byte data area)",
            data_len - cursor
        ));
    }
    Ok(info)
}

/// The shard files a sharded index (`*.safetensors.index.json`,
/// `*.bin.index.json`) names in its `weight_map`, as written.
pub fn index_shards(json: &[u8]) -> Result<BTreeSet<String>, String> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let idx: Index =
        serde_json::from_slice(json).map_err(|e| format!("not a valid shard index: {e}"))?;
    if idx.weight_map.is_empty() {
        return Err("weight_map is empty: the index names no shard".into());
    }
    Ok(idx.weight_map.into_values().collect())
}

/// Builds a valid safetensors file; for tests and fixtures.
pub fn build(tensors: &[(&str, &str, &[u64])], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let numel: u64 = shape.iter().product();
        let len = numel * dtype_bits(dtype).expect("known dtype") / 8;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut h = serde_json::to_vec(&header).expect("serializes");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset as usize);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend((0..offset as usize).map(fill));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(header: impl AsRef<[u8]>, data: usize) -> Vec<u8> {
        let header = header.as_ref();
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header);
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    fn check(bytes: &[u8]) -> Result<Info, String> {
        validate(&mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn valid_file_reports_counts_and_dtypes() {
        let f = build(
            &[
                ("a", "F32", &[2, 3]),
                ("b", "BF16", &[4]),
                ("c", "I64", &[]),
            ],
            |i| i as u8,
        );
        let info = check(&f).unwrap();
        assert_eq!(info.tensors, 3);
        assert_eq!(info.parameters, 6 + 4 + 1);
        assert_eq!(info.dtypes["F32"], 6);
        assert_eq!(info.dtypes["BF16"], 4);
        assert_eq!(info.dtypes["I64"], 1);
        assert!(info.names.contains("b"));
    }

    #[test]
    fn metadata_and_padding_are_accepted() {
        let h = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   "#;
        let info = check(&file(h, 2)).unwrap();
        assert_eq!(info.format.as_deref(), Some("pt"));
        // Zero-sized tensors may share an offset.
        let h = r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert!(check(&file(h, 1)).is_ok());
        assert!(check(&file("{}", 0)).is_ok());
    }

    #[track_caller]
    fn refused(bytes: &[u8], what: &str) {
        let e = check(bytes).expect_err("must be refused");
        assert!(e.contains(what), "{e:?} does not say {what:?}");
    }

    #[test]
    fn refuses_broken_headers() {
        refused(b"\x05\0\0", "shorter than the 8-byte");
        refused(&file("{}", 0)[..9], "truncated header");
        let mut big = 200u64.to_le_bytes().to_vec();
        big.extend_from_slice(b"{\"a\":");
        refused(&big, "truncated header");
        refused(&(MAX_HEADER + 1).to_le_bytes(), "header length");
        refused(&file("[1,2]", 0), "does not start with '{'");
        refused(&file("{\"a\":", 0), "not valid safetensors JSON");
        refused(&file(b"{\xff}", 0), "not UTF-8");
        refused(
            &file(
                r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
                1,
            ),
            "unknown dtype",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
                2,
            ),
            "appears twice",
        );
        refused(
            &file(r#"{"a":{"dtype":"U8","shape":[1]}}"#, 1),
            "data_offsets",
        );
        refused(&file(r#"{"__metadata__":{"x":1}}"#, 0), "__metadata__");
    }

    #[test]
    fn refuses_bad_offsets() {
        refused(
            &file(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                8,
            ),
            "past the end",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#,
                12,
            ),
            "needs 16 bytes",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                6,
            ),
            "overlaps",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}"#,
                10,
            ),
            "gap",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
                5,
            ),
            "1 trailing bytes",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,0]}}"#,
                4,
            ),
            "end before",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#,
                0,
            ),
            "overflows",
        );
        refused(
            &file(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#,
                1,
            ),
            "whole bytes",
        );
    }

    #[test]
    fn shard_index() {
        let s = index_shards(br#"{"metadata":{"total_size":4},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors","c":"m-1.safetensors"}}"#).unwrap();
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            ["m-1.safetensors", "m-2.safetensors"]
        );
        assert!(index_shards(b"{}").is_err());
        assert!(index_shards(br#"{"weight_map":{}}"#).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = check(&bytes);
        }

        #[test]
        fn arbitrary_headers_never_panic(header in "\\{[\"a-z:,\\[\\]{}0-9 FUIBL_]{0,200}", data in 0usize..64) {
            let _ = check(&file(&header, data));
        }

        #[test]
        fn mutated_valid_files_never_panic(flip in 0usize..200, byte in any::<u8>()) {
            let mut f = build(&[("x", "F16", &[3, 5]), ("y", "U8", &[7])], |i| i as u8);
            let at = flip % f.len();
            f[at] = byte;
            let _ = check(&f);
        }
    }
}
