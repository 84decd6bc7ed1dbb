//! airlock: carry software and AI models across an air gap in signed,
//! content-addressed bundles with a chain of custody.
//!
//! The crate is layered; each layer uses only the layers before it
//! (enforced by `tests/layers.rs`, drawn in ARCHITECTURE.md):
//!
//! `format` → `trust` → `reader` → `checks` → `sources` → `sbom` → `store` →
//! `commands` → `cli`.
//!
//! `cli` is the only layer that prints.

pub mod checks;
pub mod cli;
pub mod commands;
pub mod format;
pub mod reader;
pub mod sbom;
pub mod sources;
pub mod store;
pub mod trust;

// Each module is also reachable by its own name (`crate::bundle`,
// `airlock::verify`): the layer is where it lives, not part of its name.
pub use checks::{gguf, image, modelcheck, modelsig, pickle, safetensors, storedzip};
pub use cli::{output, report};
pub use commands::{amend, init, inspect, pack, push, referrers, verify, volumes};
pub use format::{bundle, clock, digest, error, progress, purl, tarball, yaml};
pub use reader::{additions, rawtar, source, zstdraw};
pub use sources::{fetch, manifest, registry};
pub use trust::{custody, dsse, keys, policy, receipt, signing, sshsig};

pub use error::{Error, Result};
