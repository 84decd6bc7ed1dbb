//! Tars of untrusted bytes, walked as raw entries with their metadata bounded.
//!
//! Left to itself the `tar` crate reads the data of every pax extended
//! header (`x`) and GNU long name or link (`L`, `K`) whole into memory,
//! however large its header says it is, before the caller sees the member
//! it describes: an 8 GiB `x` header makes it allocate as much as the file
//! holds. [`Members`] asks the crate for raw entries instead, refuses any
//! metadata entry (`x`, `g`, `L`, `K`) declaring more than [`MAX_TAR_META`]
//! before a byte of it is read, and hands each member over with the
//! metadata read in front of it ([`Meta`]), so its real name (a GNU long
//! name, else a pax `path`) and link target are still seen. Every reader of
//! a tar from outside (a bundle, its additions, a `docker save` archive, a
//! legacy torch checkpoint, a `.deb`'s control tar) walks through here.

use std::borrow::Cow;
use std::io::Read;

/// The most data a tar metadata entry (a pax header, `x` or `g`; a GNU long
/// name or link, `L` or `K`) may declare. airlock's own tars carry at most
/// 4096 bytes of pax padding, and a GNU long name of any path the reader
/// admits is far shorter.
pub const MAX_TAR_META: u64 = 64 << 10;

/// What a metadata entry of `kind` is called, or `None` for a member.
pub fn meta_kind(kind: tar::EntryType) -> Option<&'static str> {
    if kind.is_pax_local_extensions() {
        Some("pax extended header")
    } else if kind.is_pax_global_extensions() {
        Some("pax global header")
    } else if kind.is_gnu_longname() {
        Some("GNU long name")
    } else if kind.is_gnu_longlink() {
        Some("GNU long link name")
    } else {
        None
    }
}

/// The metadata entries read in front of a member (at most one of each).
#[derive(Default)]
pub struct Meta {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

impl Meta {
    fn set(&mut self, kind: tar::EntryType, data: Vec<u8>) -> std::result::Result<(), String> {
        let slot = if kind.is_gnu_longname() {
            &mut self.long_name
        } else if kind.is_gnu_longlink() {
            &mut self.long_link
        } else {
            &mut self.pax
        };
        if slot.is_some() {
            let what = meta_kind(kind).unwrap_or("metadata entry");
            return Err(format!("two {what}s describe the same member"));
        }
        *slot = Some(data);
        Ok(())
    }

    /// What is still waiting for its member, if anything.
    pub fn what(&self) -> Option<&'static str> {
        if self.pax.is_some() {
            Some("pax extended header")
        } else if self.long_name.is_some() {
            Some("GNU long name")
        } else if self.long_link.is_some() {
            Some("GNU long link name")
        } else {
            None
        }
    }

    /// The pax extended header's records, as read (`None`: there was none).
    pub fn pax(&self) -> Option<&[u8]> {
        self.pax.as_deref()
    }

    /// Whether a pax `size` record (or records no one can read) moves the
    /// next header for other readers, which go by it, not the header's size.
    pub fn pax_size(&self) -> bool {
        self.pax.as_deref().is_some_and(|pax| {
            tar::PaxExtensions::new(pax).any(|r| r.map_or(true, |r| r.key_bytes() == b"size"))
        })
    }

    /// Whether other readers would see a size other than `header_size`: a
    /// pax `size` record saying something else, or records no one can read.
    /// A raw walk goes by the header's size, so such a member (and where the
    /// next header is) cannot be read the way the tools that use the tar do.
    pub fn size_disagrees(&self, header_size: u64) -> bool {
        self.pax.as_deref().is_some_and(|pax| {
            tar::PaxExtensions::new(pax).any(|r| match r {
                Err(_) => true,
                Ok(r) if r.key_bytes() == b"size" => {
                    std::str::from_utf8(r.value_bytes())
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        != Some(header_size)
                }
                Ok(_) => false,
            })
        })
    }

    /// A member's name as the tar crate would give it: a GNU long name (its
    /// one trailing NUL dropped), else a pax `path`, else the header's.
    pub fn path_bytes<'e, R: Read>(&'e self, entry: &'e tar::Entry<'_, R>) -> Cow<'e, [u8]> {
        if let Some(name) = &self.long_name {
            return name.strip_suffix(&[0]).unwrap_or(name).into();
        }
        if let Some(v) = self.pax_value(b"path") {
            return v.into();
        }
        entry.path_bytes()
    }

    /// A link's target as the tar crate would give it: a GNU long link name
    /// (its one trailing NUL dropped), else a pax `linkpath`, else the
    /// header's (`None`: the header names none).
    pub fn link_bytes<'e, R: Read>(
        &'e self,
        entry: &'e tar::Entry<'_, R>,
    ) -> Option<Cow<'e, [u8]>> {
        if let Some(name) = &self.long_link {
            return Some(name.strip_suffix(&[0]).unwrap_or(name).into());
        }
        if let Some(v) = self.pax_value(b"linkpath") {
            return Some(v.into());
        }
        entry.link_name_bytes()
    }

    fn pax_value(&self, key: &[u8]) -> Option<&[u8]> {
        tar::PaxExtensions::new(self.pax.as_deref()?)
            .filter_map(|r| r.ok())
            .find(|r| r.key_bytes() == key)
            .map(|r| r.value_bytes())
    }
}

/// Why a walk ended early. Each says what went wrong; callers put it in
/// context (the file, the member before it).
#[derive(Debug)]
pub enum Stop {
    /// The tar crate could not read a header: truncated or corrupt.
    Corrupt(std::io::Error),
    /// A metadata entry declares more than [`MAX_TAR_META`]; nothing of it
    /// was read. `name` is the metadata entry's own header name.
    TooLarge {
        what: &'static str,
        name: String,
        size: u64,
    },
    /// Reading a metadata entry's data failed.
    Unreadable {
        what: &'static str,
        error: std::io::Error,
    },
    /// A metadata entry's data ends early.
    Short {
        what: &'static str,
        size: u64,
        got: usize,
    },
    /// Two metadata entries of one kind for one member.
    Twice(String),
    /// Metadata entries with no member after them.
    Dangling(&'static str),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Corrupt(e) => write!(f, "truncated or corrupt tar: {e}"),
            Stop::TooLarge { what, name, size } => write!(
                f,
                "{what} {name:?} declares {size} bytes of data; airlock reads at most {MAX_TAR_META}: the tar is damaged or hostile"
            ),
            Stop::Unreadable { what, error } => {
                write!(f, "truncated or corrupt tar: {what}: {error}")
            }
            Stop::Short { what, size, got } => {
                write!(f, "truncated tar: {what} of {size} bytes has {got}")
            }
            Stop::Twice(e) => write!(f, "corrupt tar: {e}"),
            Stop::Dangling(what) => write!(
                f,
                "truncated or corrupt tar: a {what} describes a member that is not there"
            ),
        }
    }
}

/// One member of a tar and the metadata read in front of it.
pub struct Member<'a, R: Read> {
    pub entry: tar::Entry<'a, R>,
    pub meta: Meta,
}

impl<R: Read> Member<'_, R> {
    /// The member's real name (GNU long name, else pax `path`, else header).
    pub fn path_bytes(&self) -> Cow<'_, [u8]> {
        self.meta.path_bytes(&self.entry)
    }

    /// The link target (GNU long link, else pax `linkpath`, else header).
    pub fn link_bytes(&self) -> Option<Cow<'_, [u8]>> {
        self.meta.link_bytes(&self.entry)
    }

    pub fn kind(&self) -> tar::EntryType {
        self.entry.header().entry_type()
    }
}

/// The members of a tar, each with its metadata, bounded (see the module).
/// Yields members in order; after a [`Stop`] it yields nothing more.
/// A pax global header (`g`) is bounded but not read: it is handed over as
/// a member of its own (as the tar crate does), for the caller to refuse or
/// skip. GNU sparse members are handed over raw (their map unread).
pub struct Members<'a, R: Read> {
    entries: tar::Entries<'a, R>,
    pending: Meta,
    done: bool,
}

impl<'a, R: Read> Members<'a, R> {
    /// Walks `entries` (made raw here).
    pub fn new(entries: tar::Entries<'a, R>) -> Self {
        Members {
            entries: entries.raw(true),
            pending: Meta::default(),
            done: false,
        }
    }

    fn stop<T>(&mut self, s: Stop) -> Option<Result<T, Stop>> {
        self.done = true;
        Some(Err(s))
    }
}

impl<'a, R: Read> Iterator for Members<'a, R> {
    type Item = Result<Member<'a, R>, Stop>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let mut entry = match self.entries.next() {
                None => {
                    self.done = true;
                    let what = self.pending.what()?;
                    return Some(Err(Stop::Dangling(what)));
                }
                Some(Err(e)) => return self.stop(Stop::Corrupt(e)),
                Some(Ok(e)) => e,
            };
            let kind = entry.header().entry_type();
            // Metadata entries: bounded before a byte of them is read, then
            // kept for the member after.
            if let Some(what) = meta_kind(kind) {
                let size = entry.size();
                if size > MAX_TAR_META {
                    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                    return self.stop(Stop::TooLarge { what, name, size });
                }
                if !kind.is_pax_global_extensions() {
                    let mut data = Vec::with_capacity(size as usize);
                    if let Err(error) = (&mut entry).take(size).read_to_end(&mut data) {
                        return self.stop(Stop::Unreadable { what, error });
                    }
                    if data.len() as u64 != size {
                        let got = data.len();
                        return self.stop(Stop::Short { what, size, got });
                    }
                    if let Err(e) = self.pending.set(kind, data) {
                        return self.stop(Stop::Twice(e));
                    }
                    continue;
                }
            }
            let meta = std::mem::take(&mut self.pending);
            return Some(Ok(Member { entry, meta }));
        }
        None
    }
}

/// For unit tests of tar readers: a tar header of `kind` named `name`
/// declaring `size` bytes, then `data`, padded to its 512-byte block.
#[cfg(test)]
pub(crate) fn test_member(kind: tar::EntryType, name: &str, size: u64, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

#[cfg(test)]
mod tests {
    use super::test_member as member;
    use super::*;

    fn record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}").into_bytes()
    }

    fn names(tar: &[u8]) -> (Vec<(String, Option<String>)>, Option<String>) {
        let mut a = tar::Archive::new(tar);
        let mut out = Vec::new();
        for m in Members::new(a.entries().unwrap()) {
            match m {
                Ok(m) => out.push((
                    String::from_utf8_lossy(&m.path_bytes()).into_owned(),
                    m.link_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                )),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[test]
    fn long_names_and_pax_records_name_the_member_after_them() {
        let mut t = member(tar::EntryType::GNULongName, "././@LongLink", 6, b"long1\0");
        t.extend(member(tar::EntryType::Regular, "short1", 0, b""));
        let pax = [record("path", "p/x"), record("linkpath", "../up")].concat();
        t.extend(member(
            tar::EntryType::XHeader,
            "PaxHeaders/x",
            pax.len() as u64,
            &pax,
        ));
        t.extend(member(tar::EntryType::Symlink, "short2", 0, b""));
        t.extend(member(
            tar::EntryType::GNULongLink,
            "././@LongLink",
            4,
            b"tgt\0",
        ));
        t.extend(member(tar::EntryType::Link, "short3", 0, b""));
        t.extend(member(tar::EntryType::Regular, "plain", 0, b""));
        t.extend([0u8; 1024]);
        let (got, stop) = names(&t);
        assert_eq!(stop, None);
        let s = |a: &str, b: Option<&str>| (a.to_string(), b.map(str::to_string));
        assert_eq!(
            got,
            [
                s("long1", None),
                s("p/x", Some("../up")),
                s("short3", Some("tgt")),
                s("plain", None)
            ]
        );
    }

    #[test]
    fn metadata_over_the_bound_stops_the_walk_before_it_is_read() {
        for kind in [
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
        ] {
            // 8 GiB declared, a little data present: nothing of it is read.
            let mut t = member(tar::EntryType::Regular, "first", 1, b"a");
            t.extend(member(kind, "M", 8 << 30, &[b'a'; 4096]));
            let (got, stop) = names(&t);
            assert_eq!(got.len(), 1, "{kind:?}");
            let stop = stop.unwrap();
            assert!(stop.contains("declares 8589934592 bytes"), "{stop}");
            assert!(stop.contains("\"M\""), "{stop}");
        }
        // At the bound: read.
        let mut name = vec![b'n'; MAX_TAR_META as usize - 1];
        name.push(0);
        let mut t = member(tar::EntryType::GNULongName, "L", MAX_TAR_META, &name);
        t.extend(member(tar::EntryType::Regular, "x", 0, b""));
        t.extend([0u8; 1024]);
        let (got, stop) = names(&t);
        assert_eq!(stop, None);
        assert_eq!(got[0].0.len(), MAX_TAR_META as usize - 1);
    }

    #[test]
    fn two_of_a_kind_or_none_after_are_corrupt() {
        let mut t = member(tar::EntryType::GNULongName, "L", 2, b"a\0");
        t.extend(member(tar::EntryType::GNULongName, "L", 2, b"b\0"));
        t.extend(member(tar::EntryType::Regular, "x", 0, b""));
        assert!(names(&t).1.unwrap().contains("two GNU long names"));
        let mut t = member(tar::EntryType::Regular, "x", 0, b"");
        let pax = record("path", "y");
        t.extend(member(tar::EntryType::XHeader, "P", pax.len() as u64, &pax));
        t.extend([0u8; 1024]);
        let (got, stop) = names(&t);
        assert_eq!(got.len(), 1);
        assert!(stop
            .unwrap()
            .contains("describes a member that is not there"));
    }

    #[test]
    fn a_pax_size_other_than_the_header_s_disagrees() {
        let meta = |records: Vec<u8>| Meta {
            pax: Some(records),
            ..Meta::default()
        };
        assert!(!Meta::default().size_disagrees(5));
        assert!(!meta(record("path", "x")).size_disagrees(5));
        assert!(!meta(record("size", "5")).size_disagrees(5));
        assert!(meta(record("size", "6")).size_disagrees(5));
        assert!(meta(record("size", "x")).size_disagrees(5));
        assert!(meta(b"99 broken".to_vec()).size_disagrees(5));
    }
}
