//! An artifact's layers held compact: a file set declares a layer per file,
//! and both sides hold every layer of a bundle at once (pack while it
//! writes the description, verify and import while they check the payload
//! against it).
//!
//! [`Layers`] keeps every path in one string and a 64-byte record per layer
//! (digest, size, where its path is, mode, media type), where a `Vec` of
//! [`Layer`]s held 96 bytes a layer, its path in an allocation of its own
//! and, for a media type other than airlock's, another. Read through
//! [`LayerRef`], a borrowed view with the same fields. Written and read as
//! the same JSON array of layer objects.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::bundle::{Layer, LAYER_MEDIA_TYPES};
use super::digest::Sha256Digest;

/// A borrowed view of one layer of a [`Layers`]: the fields of [`Layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRef<'a> {
    pub media_type: &'a str,
    pub digest: &'a Sha256Digest,
    pub size: u64,
    pub path: &'a str,
    pub mode: u32,
}

impl LayerRef<'_> {
    /// An owned copy.
    pub fn to_layer(&self) -> Layer {
        Layer {
            media_type: match LAYER_MEDIA_TYPES.iter().find(|&&c| c == self.media_type) {
                Some(&c) => Cow::Borrowed(c),
                None => Cow::Owned(self.media_type.to_owned()),
            },
            digest: *self.digest,
            size: self.size,
            path: self.path.to_owned(),
            mode: self.mode,
        }
    }
}

impl Layer {
    /// A borrowed view, as a [`Layers`] gives its own.
    pub fn view(&self) -> LayerRef<'_> {
        LayerRef {
            media_type: &self.media_type,
            digest: &self.digest,
            size: self.size,
            path: &self.path,
            mode: self.mode,
        }
    }
}

/// One layer's record: its path is `text[at..at + len]`; its media type
/// airlock's constant `LAYER_MEDIA_TYPES[media]`, or `other[media - K]`
/// past them.
#[derive(Debug, Clone, Copy)]
struct Rec {
    digest: Sha256Digest,
    size: u64,
    at: u64,
    len: u32,
    mode: u32,
    media: u32,
}

/// An artifact's layers in order, compact (see the module's note).
#[derive(Clone, Default)]
pub struct Layers {
    text: String,
    recs: Vec<Rec>,
    /// Media types other than airlock's constants, each as first seen
    /// (a run of the same one is held once).
    other: Vec<Box<str>>,
}

impl Layers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` layers whose paths total `text` bytes.
    pub fn with_capacity(n: usize, text: usize) -> Self {
        Layers {
            text: String::with_capacity(text),
            recs: Vec::with_capacity(n),
            other: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.recs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Adds a layer at the end.
    pub fn push(&mut self, l: Layer) {
        self.push_parts(&l.media_type, l.digest, l.size, &l.path, l.mode);
    }

    /// Adds a layer at the end from borrowed parts.
    pub fn push_parts(
        &mut self,
        media_type: &str,
        digest: Sha256Digest,
        size: u64,
        path: &str,
        mode: u32,
    ) {
        let r = self.record(media_type, digest, size, path, mode);
        self.recs.push(r);
    }

    /// A layer's record, its path appended to the buffer.
    fn record(
        &mut self,
        media_type: &str,
        digest: Sha256Digest,
        size: u64,
        path: &str,
        mode: u32,
    ) -> Rec {
        let media = self.media_id(media_type);
        let at = self.text.len() as u64;
        self.text.push_str(path);
        Rec {
            digest,
            size,
            at,
            // A path of 4 GiB would not have been read or written.
            len: u32::try_from(path.len()).expect("a path under 4 GiB"),
            mode,
            media,
        }
    }

    fn media_id(&mut self, media_type: &str) -> u32 {
        let k = LAYER_MEDIA_TYPES.len();
        if let Some(i) = LAYER_MEDIA_TYPES.iter().position(|&c| c == media_type) {
            return i as u32;
        }
        // Any other: the last one again, else a new entry (never a search
        // of every earlier one: a hostile description may name a new type
        // for each of its layers).
        if self.other.last().is_none_or(|o| &**o != media_type) {
            self.other.push(media_type.into());
        }
        (k + self.other.len() - 1) as u32
    }

    fn view<'a>(&'a self, r: &'a Rec) -> LayerRef<'a> {
        let k = LAYER_MEDIA_TYPES.len();
        let m = r.media as usize;
        let at = r.at as usize;
        LayerRef {
            media_type: if m < k {
                LAYER_MEDIA_TYPES[m]
            } else {
                &self.other[m - k]
            },
            digest: &r.digest,
            size: r.size,
            path: &self.text[at..at + r.len as usize],
            mode: r.mode,
        }
    }

    /// The layer at `i`; panics past the end, as indexing a slice does.
    pub fn at(&self, i: usize) -> LayerRef<'_> {
        self.view(&self.recs[i])
    }

    pub fn get(&self, i: usize) -> Option<LayerRef<'_>> {
        self.recs.get(i).map(|r| self.view(r))
    }

    pub fn first(&self) -> Option<LayerRef<'_>> {
        self.get(0)
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            ls: self,
            recs: self.recs.iter(),
        }
    }

    /// Replaces the layer at `i` (its old path's bytes stay in the
    /// buffer, unused: for tests and the rare rewrite).
    pub fn set(&mut self, i: usize, l: Layer) {
        self.recs[i] = self.record(&l.media_type, l.digest, l.size, &l.path, l.mode);
    }

    /// Lets go of the room grown past the layers and their paths.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.recs.shrink_to_fit();
        self.other.shrink_to_fit();
    }

    /// Puts the layers in the opposite order (their paths stay where
    /// they are in the buffer).
    pub fn reverse(&mut self) {
        self.recs.reverse();
    }

    /// The heap bytes held: every path's bytes once, a record per layer.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.text.capacity()
            + self.recs.capacity() * std::mem::size_of::<Rec>()
            + self.other.capacity() * std::mem::size_of::<Box<str>>()
            + self.other.iter().map(|o| o.len()).sum::<usize>()
    }

    /// Owned copies of every layer.
    pub fn to_vec(&self) -> Vec<Layer> {
        self.iter().map(|l| l.to_layer()).collect()
    }
}

impl From<Vec<Layer>> for Layers {
    fn from(v: Vec<Layer>) -> Self {
        v.into_iter().collect()
    }
}

impl FromIterator<Layer> for Layers {
    fn from_iter<I: IntoIterator<Item = Layer>>(it: I) -> Self {
        let mut ls = Layers::new();
        for l in it {
            ls.push(l);
        }
        ls
    }
}

/// The layers of a [`Layers`] in order, as [`LayerRef`]s.
#[derive(Clone)]
pub struct Iter<'a> {
    ls: &'a Layers,
    recs: std::slice::Iter<'a, Rec>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = LayerRef<'a>;
    fn next(&mut self) -> Option<LayerRef<'a>> {
        self.recs.next().map(|r| self.ls.view(r))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.recs.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<LayerRef<'a>> {
        self.recs.nth(n).map(|r| self.ls.view(r))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.recs.next_back().map(|r| self.ls.view(r))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Layers {
    type Item = LayerRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Equal when every layer is, whatever the buffer's history.
impl PartialEq for Layers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Layers {}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Layers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Layers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Layers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of layers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Layers, A::Error> {
                // Each layer is parsed whole (its fields checked as
                // `Layer`'s), then its path copied into the buffer and its
                // own allocation let go at once.
                let mut ls = Layers::new();
                while let Some(l) = seq.next_element::<Layer>()? {
                    ls.push(l);
                }
                Ok(ls)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{FILE_LAYER, MODEL_WEIGHT};

    fn layer(mt: &str, path: &str, bytes: &[u8]) -> Layer {
        Layer {
            media_type: Cow::Owned(mt.to_owned()),
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            path: path.to_owned(),
            mode: 0o644,
        }
    }

    #[test]
    fn layers_read_back_as_pushed_with_any_media_type() {
        let v = vec![
            layer(FILE_LAYER, "a/b.txt", b"one"),
            layer("application/x-other", "c", b"two"),
            layer("application/x-other", "d/é", b"three"),
            layer(MODEL_WEIGHT, "w.safetensors", b""),
            layer("application/x-third", "", b"four"),
            layer("application/x-other", "e", b"five"),
        ];
        let ls: Layers = v.clone().into();
        assert_eq!(ls.len(), v.len());
        assert_eq!(ls.to_vec(), v);
        for (i, l) in v.iter().enumerate() {
            let r = ls.at(i);
            assert_eq!((r.media_type, r.path), (&*l.media_type, l.path.as_str()));
            assert_eq!((r.digest, r.size, r.mode), (&l.digest, l.size, l.mode));
        }
        // airlock's own media types are borrowed again when copied out.
        assert!(matches!(
            ls.at(0).to_layer().media_type,
            Cow::Borrowed(FILE_LAYER)
        ));
        assert!(ls.get(v.len()).is_none());
        assert_eq!(ls.iter().next_back().unwrap().path, "e");
    }

    #[test]
    fn layers_are_written_and_read_as_a_json_array_of_layers() {
        let v = vec![
            layer(FILE_LAYER, "a", b"one"),
            layer("application/x-other", "b\"q", b"two"),
        ];
        let ls: Layers = v.clone().into();
        // Byte for byte what the Vec of layers was written as.
        let json = serde_json::to_string(&ls).unwrap();
        assert_eq!(json, serde_json::to_string(&v).unwrap());
        let back: Layers = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ls);
        let empty: Layers = serde_json::from_str("[]").unwrap();
        assert!(empty.is_empty());
        // A layer's fields are checked as `Layer`'s are.
        let unknown = json.replacen("\"mode\"", "\"extra\":1,\"mode\"", 1);
        assert!(serde_json::from_str::<Layers>(&unknown).is_err());
        assert!(serde_json::from_str::<Layers>("{}").is_err());
    }

    /// A file set's description parsed (10k layers of 100-byte paths) holds
    /// a layer in its path's bytes and 64 more (a `Vec<Layer>` held 96
    /// beside a path's own allocation, with the allocator's overhead on
    /// top); a run of one other media type is held once.
    #[test]
    fn parsed_layers_hold_a_path_and_64_bytes_each() {
        let n = 10_000;
        let json = serde_json::to_string(
            &(0..n)
                .map(|i| {
                    let mt = if i < n / 2 {
                        FILE_LAYER
                    } else {
                        "application/x-other"
                    };
                    layer(mt, &format!("{:0>100}", i), b"x")
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let mut ls: Layers = serde_json::from_str(&json).unwrap();
        ls.shrink_to_fit();
        assert_eq!(ls.len(), n);
        assert_eq!(ls.at(n - 1).path, format!("{:0>100}", n - 1));
        assert_eq!(std::mem::size_of::<Rec>(), 64);
        let per_layer = ls.held() as f64 / n as f64;
        assert!(per_layer <= 100.0 + 64.0 + 1.0, "{per_layer} bytes a layer");
        assert_eq!(ls.other.len(), 1);
    }

    #[test]
    fn a_replaced_layer_reads_back_and_layers_compare_by_content() {
        let mut ls: Layers =
            vec![layer(FILE_LAYER, "a", b"1"), layer(FILE_LAYER, "b", b"2")].into();
        ls.set(0, layer("application/x-other", "z", b"3"));
        let same: Layers = vec![
            layer("application/x-other", "z", b"3"),
            layer(FILE_LAYER, "b", b"2"),
        ]
        .into();
        assert_eq!(ls, same);
        assert_ne!(ls, Layers::from(vec![layer(FILE_LAYER, "b", b"2")]));
    }
}
