//! The bundle format and the plumbing under everything: errors, digests and hashing readers/writers, time, the progress seam, `airlock.json` and BagIt types, deterministic tar writing, bounded YAML.
//!
//! Layer of airlock (see ARCHITECTURE.md): it uses only the layers below it;
//! `tests/layers.rs` enforces that.

pub mod bundle;
pub mod clock;
pub mod digest;
pub mod error;
pub mod layers;
pub mod progress;
pub mod purl;
pub mod tarball;
pub mod yaml;
