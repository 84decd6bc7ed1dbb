//! SHA-256 digests: one type for the hex form, and readers/writers that hash
//! the bytes flowing through them so every input byte is read exactly once.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Size of the copy buffer: large enough for the SHA extensions to run at
/// full speed, small enough that memory stays bounded whatever the file size.
pub const COPY_BUFFER: usize = 1 << 20;

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

/// The order of the bytes (so of the hex names), compared as four
/// big-endian words: inlined, where comparing two `[u8; 32]` calls
/// `memcmp` (9% of a 50k-file verify went to that call, from the binary
/// searches by digest each file makes).
impl Ord for Sha256Digest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let word = |d: &[u8; 32], i: usize| {
            u64::from_be_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        };
        (0..4)
            .map(|i| word(&self.0, i).cmp(&word(&other.0, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Sha256Digest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// From a raw 32-byte SHA-256 output.
    pub fn of_raw(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        std::str::from_utf8(&out).expect("hex digits").to_string()
    }

    /// `sha256:<hex>`, the OCI form.
    pub fn oci(&self) -> String {
        format!("sha256:{}", self.hex())
    }

    /// Parses `sha256:<hex>` (the OCI form) or bare hex.
    pub fn parse_oci(s: &str) -> Option<Self> {
        s.strip_prefix("sha256:").unwrap_or(s).parse().ok()
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Why a string is not a SHA-256 hex digest.
#[derive(Debug, thiserror::Error)]
#[error("not a sha256 digest (64 lowercase hex digits): {0:?}")]
pub struct BadDigest(pub String);

impl FromStr for Sha256Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, BadDigest> {
        // Every payload path and manifest line is parsed here (several
        // times per file of a bundle of many small files): one table
        // look-up per digit, and one check of every digit at the end.
        let bytes: &[u8; 64] = match s.as_bytes().try_into() {
            Ok(b) => b,
            Err(_) => return Err(BadDigest(s.chars().take(80).collect())),
        };
        let mut out = [0u8; 32];
        let mut invalid = 0u8;
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            invalid |= (hi | lo) & 0x10;
            *o = (hi << 4) | (lo & 0xf);
        }
        if invalid != 0 {
            return Err(BadDigest(s.chars().take(80).collect()));
        }
        Ok(Self(out))
    }
}

/// A lowercase hex digit's value; 0x10 for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.oci())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            serde::de::Error::custom(format!("digest {s:?} must start with sha256:"))
        })?;
        hex.parse().map_err(serde::de::Error::custom)
    }
}

/// The outcome of streaming some bytes through a hasher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    pub digest: Sha256Digest,
    pub size: u64,
}

/// Copies `reader` into `writer`, hashing on the way. Reads at most `limit`
/// bytes plus one, so a source longer than declared is detected without
/// reading it to the end; the caller compares `size` with what it expected.
pub fn copy_hashed(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    limit: Option<u64>,
    progress: &dyn Fn(u64),
) -> io::Result<Hashed> {
    let mut hasher = Sha256::new();
    let mut buf = CopyBuffer::take();
    let buf = &mut buf.0[..];
    let mut size = 0u64;
    let cap = limit.map(|l| l.saturating_add(1));
    loop {
        let want = match cap {
            Some(c) if c - size == 0 => break,
            Some(c) => buf.len().min((c - size).min(usize::MAX as u64) as usize),
            None => buf.len(),
        };
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
        size += n as u64;
        progress(n as u64);
    }
    Ok(Hashed {
        digest: Sha256Digest(hasher.finalize().into()),
        size,
    })
}

/// A `COPY_BUFFER`-sized buffer borrowed from its thread for one copy and
/// given back when dropped: a copy of many small files costs one allocation
/// per thread, not a zeroed megabyte per file (40% of a 10k-file verify).
/// A nested copy on the same thread gets a buffer of its own.
struct CopyBuffer(Box<[u8]>);

thread_local! {
    static SPARE: std::cell::Cell<Option<Box<[u8]>>> = const { std::cell::Cell::new(None) };
}

impl CopyBuffer {
    fn take() -> Self {
        let spare = SPARE.try_with(|s| s.take()).ok().flatten();
        CopyBuffer(spare.unwrap_or_else(|| vec![0u8; COPY_BUFFER].into_boxed_slice()))
    }
}

impl Drop for CopyBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        let _ = SPARE.try_with(|s| s.set(Some(buf)));
    }
}

/// Hashes everything `reader` yields (up to `limit` + 1 bytes).
pub fn hash_reader(
    reader: &mut dyn Read,
    limit: Option<u64>,
    progress: &dyn Fn(u64),
) -> io::Result<Hashed> {
    copy_hashed(reader, &mut io::sink(), limit, progress)
}

/// A writer that feeds every byte written through it to a SHA-256 hasher it
/// borrows, then to `inner`: one hash over bytes that arrive in several pieces
/// (the parts of a split blob), while each piece is also hashed on its own.
pub struct HashingWriter<'h, W: Write> {
    inner: W,
    hasher: &'h mut Sha256,
}

impl<'h, W: Write> HashingWriter<'h, W> {
    pub fn new(inner: W, hasher: &'h mut Sha256) -> Self {
        HashingWriter { inner, hasher }
    }
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that shows every byte it yields to `observe` (a content probe, a
/// second hasher) so the source is still read only once.
pub struct InspectReader<R: Read, F: FnMut(&[u8])> {
    inner: R,
    observe: F,
}

impl<R: Read, F: FnMut(&[u8])> InspectReader<R, F> {
    pub fn new(inner: R, observe: F) -> Self {
        InspectReader { inner, observe }
    }
}

impl<R: Read, F: FnMut(&[u8])> Read for InspectReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.observe)(&buf[..n]);
        Ok(n)
    }
}

/// A writer that writes everything to both of two optional writers.
pub struct Tee<A: Write, B: Write>(pub Option<A>, pub Option<B>);

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(a) = self.0.as_mut() {
            a.write_all(buf)?;
        }
        if let Some(b) = self.1.as_mut() {
            b.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if let Some(a) = self.0.as_mut() {
            a.flush()?;
        }
        if let Some(b) = self.1.as_mut() {
            b.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests order as their bytes (and hex names) do, wherever two first
    /// differ: every byte position, every pair of byte values there.
    #[test]
    fn digests_order_as_their_bytes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for at in 0..32 {
            for _ in 0..64 {
                let mut a = [0u8; 32];
                a.iter_mut().for_each(|b| *b = next() as u8);
                let mut b = a;
                b[at] = next() as u8;
                for (i, v) in b.iter_mut().enumerate().skip(at + 1) {
                    *v = (next() as u8).wrapping_add(i as u8);
                }
                let (da, db) = (Sha256Digest(a), Sha256Digest(b));
                assert_eq!(da.cmp(&db), a.cmp(&b), "{da} {db}");
                assert_eq!(da.hex().cmp(&db.hex()), a.cmp(&b));
                assert_eq!(da.partial_cmp(&db), Some(a.cmp(&b)));
                assert_eq!(da.cmp(&da), std::cmp::Ordering::Equal);
            }
        }
    }

    #[test]
    fn known_vector() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.hex().parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(Sha256Digest::parse_oci(&d.oci()), Some(d));
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("ABCD".parse::<Sha256Digest>().is_err());
        assert!("g".repeat(64).parse::<Sha256Digest>().is_err());
        assert!("A".repeat(64).parse::<Sha256Digest>().is_err());
        // One bad digit anywhere, and every byte just outside the ranges.
        let good = Sha256Digest::of(b"abc").hex();
        for at in [0, 1, 31, 62, 63] {
            for c in ['/', ':', '@', 'G', '`', 'g', 'F', ' ', '\0'] {
                let mut s = good.clone().into_bytes();
                s[at] = c as u8;
                let s = String::from_utf8(s).unwrap();
                let e = s.parse::<Sha256Digest>().unwrap_err();
                assert_eq!(e.0, s, "names the whole string");
            }
        }
        assert!(format!("{good}0").parse::<Sha256Digest>().is_err());
        assert!(good[..63].parse::<Sha256Digest>().is_err());
        // A multi-byte character making the length 64 bytes.
        assert!(format!("é{}", &good[2..]).parse::<Sha256Digest>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let d = Sha256Digest::of_raw(bytes);
            let hex = d.hex();
            proptest::prop_assert_eq!(&hex, &bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
            proptest::prop_assert_eq!(hex.parse::<Sha256Digest>().unwrap(), d);
        }
    }

    #[test]
    fn copy_hashes_and_stops_after_limit() {
        let data = vec![7u8; 3 * COPY_BUFFER + 5];
        let mut out = Vec::new();
        let h = copy_hashed(&mut &data[..], &mut out, None, &|_| {}).unwrap();
        assert_eq!(h.size, data.len() as u64);
        assert_eq!(h.digest, Sha256Digest::of(&data));
        assert_eq!(out, data);
        let h = hash_reader(&mut &data[..], Some(10), &|_| {}).unwrap();
        assert_eq!(
            h.size, 11,
            "reads one byte past the limit to detect overlong input"
        );
    }

    #[test]
    fn hashing_writer_and_inspect_reader_see_every_byte() {
        let data = b"the quick brown fox".repeat(1000);
        let mut whole = Sha256::new();
        let mut seen = 0usize;
        let mut out = Vec::new();
        for chunk in data.chunks(777) {
            let mut r = InspectReader::new(chunk, |b: &[u8]| seen += b.len());
            let mut w = HashingWriter::new(&mut out, &mut whole);
            let h = copy_hashed(&mut r, &mut w, None, &|_| {}).unwrap();
            assert_eq!(h.digest, Sha256Digest::of(chunk));
        }
        assert_eq!(seen, data.len());
        assert_eq!(out, data);
        assert_eq!(
            Sha256Digest::of_raw(whole.finalize().into()),
            Sha256Digest::of(&data)
        );
        let mut a = Vec::new();
        let mut t: Tee<&mut Vec<u8>, &mut Vec<u8>> = Tee(Some(&mut a), None);
        t.write_all(b"xy").unwrap();
        assert_eq!(a, b"xy");
    }

    proptest::proptest! {
        #[test]
        fn streaming_equals_one_shot(data in proptest::collection::vec(proptest::num::u8::ANY, 0..5000)) {
            let h = hash_reader(&mut &data[..], None, &|_| {}).unwrap();
            proptest::prop_assert_eq!(h.digest, Sha256Digest::of(&data));
        }
    }
}
