//! GGUF header validation: magic `GGUF`, a supported version (1–3), and a
//! header (metadata key/values and tensor infos) that parses within bounds
//! and places every tensor inside the file. Only the header is read.

use std::collections::BTreeMap;

/// Largest header accepted.
pub const MAX_HEADER: u64 = 100_000_000;
const MAX_DIMS: u32 = 4;
const DEFAULT_ALIGNMENT: u64 = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub version: u32,
    pub tensors: u64,
    pub parameters: u64,
    /// ggml type name → parameters of that type.
    pub dtypes: BTreeMap<String, u64>,
    /// `general.architecture`, when present.
    pub architecture: Option<String>,
    pub header_len: u64,
}

/// Why a header did not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The header runs past the bytes given; give more (up to the file's size).
    NeedMore,
    Invalid(String),
}

/// ggml tensor types: name, and (block size, bytes per block) where airlock
/// knows it for certain.
fn ggml_type(t: u32) -> (String, Option<(u64, u64)>) {
    let (name, size) = match t {
        0 => ("F32", Some((1, 4))),
        1 => ("F16", Some((1, 2))),
        2 => ("Q4_0", Some((32, 18))),
        3 => ("Q4_1", Some((32, 20))),
        6 => ("Q5_0", Some((32, 22))),
        7 => ("Q5_1", Some((32, 24))),
        8 => ("Q8_0", Some((32, 34))),
        9 => ("Q8_1", Some((32, 36))),
        10 => ("Q2_K", Some((256, 84))),
        11 => ("Q3_K", Some((256, 110))),
        12 => ("Q4_K", Some((256, 144))),
        13 => ("Q5_K", Some((256, 176))),
        14 => ("Q6_K", Some((256, 210))),
        15 => ("Q8_K", Some((256, 292))),
        16 => ("IQ2_XXS", None),
        17 => ("IQ2_XS", None),
        18 => ("IQ3_XXS", None),
        19 => ("IQ1_S", None),
        20 => ("IQ4_NL", None),
        21 => ("IQ3_S", None),
        22 => ("IQ2_S", None),
        23 => ("IQ4_XS", None),
        24 => ("I8", Some((1, 1))),
        25 => ("I16", Some((1, 2))),
        26 => ("I32", Some((1, 4))),
        27 => ("I64", Some((1, 8))),
        28 => ("F64", Some((1, 8))),
        29 => ("IQ1_M", None),
        30 => ("BF16", Some((1, 2))),
        34 => ("TQ1_0", None),
        35 => ("TQ2_0", None),
        39 => ("MXFP4", None),
        other => return (format!("type-{other}"), None),
    };
    (name.to_string(), size)
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
    version: u32,
}

impl Cursor<'_> {
    fn take(&mut self, n: u64) -> Result<&[u8], Problem> {
        let n = usize::try_from(n).map_err(|_| Problem::NeedMore)?;
        let end = self.at.checked_add(n).ok_or(Problem::NeedMore)?;
        if end > self.buf.len() {
            return Err(Problem::NeedMore);
        }
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Problem> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, Problem> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    /// A count or length: u32 in version 1, u64 after.
    fn count(&mut self) -> Result<u64, Problem> {
        if self.version == 1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }
    fn string(&mut self, what: &str) -> Result<String, Problem> {
        let n = self.count()?;
        if n > MAX_HEADER {
            return Err(Problem::Invalid(format!(
                "{what}: string length {n} is larger than any header may be"
            )));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Problem::Invalid(format!("{what}: string is not UTF-8")))
    }
    /// Skips (or, for strings and u32s, returns) one metadata value.
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value, Problem> {
        Ok(match ty {
            0 | 1 | 7 => {
                self.take(1)?;
                Value::Other
            }
            2 | 3 => {
                self.take(2)?;
                Value::Other
            }
            4 | 5 => Value::U32(self.u32()?),
            6 => {
                self.take(4)?;
                Value::Other
            }
            10..=12 => {
                self.take(8)?;
                Value::Other
            }
            8 => Value::Str(self.string(key)?),
            9 if depth == 0 => {
                let inner = self.u32()?;
                let n = self.count()?;
                // Every element takes at least one byte: a count beyond what
                // is left cannot be honest.
                if n > MAX_HEADER {
                    return Err(Problem::Invalid(format!(
                        "metadata {key:?}: array of {n} elements is larger than any header may be"
                    )));
                }
                for _ in 0..n {
                    self.value(inner, key, depth + 1)?;
                }
                Value::Other
            }
            9 => {
                return Err(Problem::Invalid(format!(
                    "metadata {key:?}: nested arrays are not supported"
                )))
            }
            other => {
                return Err(Problem::Invalid(format!(
                    "metadata {key:?}: unknown value type {other}"
                )))
            }
        })
    }
}

enum Value {
    U32(u32),
    Str(String),
    Other,
}

/// Just the magic and version, from the first 8 bytes.
pub fn check_magic(head: &[u8]) -> Result<u32, Problem> {
    if head.len() < 8 {
        return Err(Problem::NeedMore);
    }
    if &head[..4] != b"GGUF" {
        return Err(Problem::Invalid(
            "does not start with the GGUF magic".into(),
        ));
    }
    let version = u32::from_le_bytes(head[4..8].try_into().expect("4"));
    if !(1..=3).contains(&version) {
        return Err(Problem::Invalid(format!(
            "GGUF version {version} is not supported (1 to 3 are)"
        )));
    }
    Ok(version)
}

/// Parses the header held in `head` (the file's first bytes) of a file of
/// `size` bytes.
pub fn parse(head: &[u8], size: u64) -> Result<Info, Problem> {
    let short = |p: Problem| match p {
        Problem::NeedMore if head.len() as u64 >= size => {
            Problem::Invalid("truncated: the file ends inside its header".into())
        }
        Problem::NeedMore if head.len() as u64 >= MAX_HEADER => {
            Problem::Invalid(format!("header is larger than the {MAX_HEADER}-byte limit"))
        }
        p => p,
    };
    parse_inner(head, size).map_err(short)
}

fn parse_inner(head: &[u8], size: u64) -> Result<Info, Problem> {
    let version = check_magic(head)?;
    let mut c = Cursor {
        buf: head,
        at: 8,
        version,
    };
    let tensors = c.count()?;
    let kvs = c.count()?;
    // Each tensor info and key/value pair takes more than 8 bytes.
    if tensors > size / 8 || kvs > size / 8 {
        return Err(Problem::Invalid(format!(
            "header claims {tensors} tensors and {kvs} metadata entries, more than a {size}-byte file can hold"
        )));
    }
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut architecture = None;
    for _ in 0..kvs {
        let key = c.string("metadata key")?;
        let ty = c.u32()?;
        match (c.value(ty, &key, 0)?, key.as_str()) {
            (Value::U32(a), "general.alignment") => {
                if a == 0 || !a.is_power_of_two() {
                    return Err(Problem::Invalid(format!(
                        "general.alignment {a} is not a power of two"
                    )));
                }
                alignment = u64::from(a);
            }
            (Value::Str(s), "general.architecture") => architecture = Some(s),
            _ => {}
        }
    }
    let mut infos = Vec::new();
    for _ in 0..tensors {
        let name = c.string("tensor name")?;
        let dims = c.u32()?;
        if dims > MAX_DIMS {
            return Err(Problem::Invalid(format!(
                "tensor {name:?}: {dims} dimensions (at most {MAX_DIMS})"
            )));
        }
        let mut shape = Vec::new();
        for _ in 0..dims {
            shape.push(c.count()?);
        }
        let ty = c.u32()?;
        let offset = c.u64()?;
        infos.push((name, shape, ty, offset));
    }
    let header_len = c.at as u64;
    let data_start = header_len.div_ceil(alignment) * alignment;
    if data_start > size {
        return Err(Problem::Invalid(format!(
            "the data area would start at {data_start}, past the end of the {size}-byte file"
        )));
    }
    let data_len = size - data_start;
    let mut info = Info {
        version,
        tensors,
        parameters: 0,
        dtypes: BTreeMap::new(),
        architecture,
        header_len,
    };
    let mut ranges = Vec::new();
    for (name, shape, ty, offset) in &infos {
        let numel = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Problem::Invalid(format!("tensor {name:?}: shape overflows")))?;
        let (tname, sizes) = ggml_type(*ty);
        if offset % alignment != 0 {
            return Err(Problem::Invalid(format!(
                "tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        if *offset > data_len {
            return Err(Problem::Invalid(format!(
                "tensor {name:?}: offset {offset} is past the end of the data area ({data_len} bytes)"
            )));
        }
        if let Some((block, bytes)) = sizes {
            let ne0 = shape.first().copied().unwrap_or(1);
            if ne0 % block != 0 {
                return Err(Problem::Invalid(format!(
                    "tensor {name:?}: first dimension {ne0} is not a multiple of the {tname} block size {block}"
                )));
            }
            let len = (numel / block)
                .checked_mul(bytes)
                .ok_or_else(|| Problem::Invalid(format!("tensor {name:?}: size overflows")))?;
            if offset.checked_add(len).is_none_or(|end| end > data_len) {
                return Err(Problem::Invalid(format!(
                    "tensor {name:?}: {len} bytes at offset {offset} run past the end of the data area ({data_len} bytes)"
                )));
            }
            ranges.push((*offset, offset + len, name.as_str()));
        }
        info.parameters = info.parameters.saturating_add(numel);
        let per_dtype = info.dtypes.entry(tname).or_default();
        *per_dtype = per_dtype.saturating_add(numel);
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(Problem::Invalid(format!(
                "tensor {:?} overlaps tensor {:?}",
                w[1].2, w[0].2
            )));
        }
    }
    Ok(info)
}

/// Builds a small valid GGUF v3 file of F32 tensors; for tests and fixtures.
pub fn build(arch: &str, tensors: &[(&str, &[u64])]) -> Vec<u8> {
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    let key = b"general.architecture";
    h.extend_from_slice(&(key.len() as u64).to_le_bytes());
    h.extend_from_slice(key);
    h.extend_from_slice(&8u32.to_le_bytes());
    h.extend_from_slice(&(arch.len() as u64).to_le_bytes());
    h.extend_from_slice(arch.as_bytes());
    let mut offset = 0u64;
    let mut data = Vec::new();
    for (name, shape) in tensors {
        h.extend_from_slice(&(name.len() as u64).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in *shape {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        let len = shape.iter().product::<u64>() * 4;
        data.extend((0..len).map(|i| i as u8));
        offset += len;
        while !offset.is_multiple_of(DEFAULT_ALIGNMENT) {
            data.push(0);
            offset += 1;
        }
    }
    while !(h.len() as u64).is_multiple_of(DEFAULT_ALIGNMENT) {
        h.push(0);
    }
    h.extend(data);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_file() {
        let f = build("llama", &[("a", &[4, 2]), ("b", &[8])]);
        let info = parse(&f, f.len() as u64).unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.tensors, 2);
        assert_eq!(info.parameters, 16);
        assert_eq!(info.dtypes["F32"], 16);
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        // The header alone is enough.
        assert_eq!(
            parse(&f[..info.header_len as usize], f.len() as u64),
            Ok(info.clone())
        );
        assert_eq!(parse(&f[..20], f.len() as u64), Err(Problem::NeedMore));
    }

    #[test]
    fn bad_magic_version_and_bounds() {
        let f = build("x", &[("a", &[4])]);
        let mut bad = f.clone();
        bad[0] = b'X';
        assert!(
            matches!(parse(&bad, bad.len() as u64), Err(Problem::Invalid(m)) if m.contains("magic"))
        );
        let mut v = f.clone();
        v[4] = 4;
        assert!(
            matches!(parse(&v, v.len() as u64), Err(Problem::Invalid(m)) if m.contains("version 4"))
        );
        // Tensor data cut off.
        let cut = &f[..f.len() - 20];
        assert!(
            matches!(parse(cut, cut.len() as u64), Err(Problem::Invalid(m)) if m.contains("past the end"))
        );
        // Header cut off.
        assert!(matches!(parse(&f[..30], 30), Err(Problem::Invalid(m)) if m.contains("truncated")));
    }

    /// Found while fuzzing (fuzz/README.md): two tensors of a type without a
    /// known size (IQ2_XXS) whose element counts sum past u64 overflowed the
    /// per-dtype count (a panic where overflow checks are on).
    #[test]
    fn huge_element_counts_of_unsized_types_saturate() {
        let file = hex(concat!(
            "474755460300000002000000000000000000000000000000",
            "010000000000000061010000000000000000000080100000000000000000000000",
            "010000000000000062010000000000000000000080100000000000000000000000",
            "000000000000",
        ));
        let info = parse(&file, file.len() as u64).unwrap();
        assert_eq!(info.dtypes["IQ2_XXS"], u64::MAX);
        assert_eq!(info.parameters, u64::MAX);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..256), v in 0u32..5) {
            if bytes.len() >= 8 {
                bytes[..4].copy_from_slice(b"GGUF");
                bytes[4..8].copy_from_slice(&v.to_le_bytes());
            }
            let _ = parse(&bytes, bytes.len() as u64);
        }
    }
}
