//! The one bundle reader: every transport form (directory, tar, tar.zst, volumes, additions carried in the file) read through one set of rules on entries, with the tag area bounded.
//!
//! Layer of airlock (see ARCHITECTURE.md): it uses only the layers below it;
//! `tests/layers.rs` enforces that.

pub mod additions;
pub mod rawtar;
pub mod source;
pub mod zstdraw;
