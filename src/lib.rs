//! airlock: carry software and AI models across an air gap in signed,
//! content-addressed bundles with a chain of custody.
//!
//! The library holds the domain; `cli` is the only module that prints.
//! See ARCHITECTURE.md for the data flow and the invariants.

pub mod additions;
pub mod amend;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod custody;
pub mod digest;
pub mod dsse;
pub mod error;
pub mod fetch;
pub mod gguf;
pub mod image;
pub mod init;
pub mod inspect;
pub mod keys;
pub mod manifest;
pub mod modelcheck;
pub mod output;
pub mod pack;
pub mod pickle;
pub mod policy;
pub mod progress;
pub mod push;
pub mod receipt;
pub mod registry;
pub mod report;
pub mod safetensors;
pub mod sbom;
pub mod signing;
pub mod source;
pub mod sources;
pub mod sshsig;
pub mod store;
pub mod storedzip;
pub mod tarball;
pub mod verify;
pub mod volumes;
pub mod yaml;

pub use error::{Error, Result};
