//! Content checks of untrusted bytes, the same code on both sides: the pickle scanner, safetensors, GGUF, stored zips, model layers, OpenSSF model signatures, OCI image structure.
//!
//! Layer of airlock (see ARCHITECTURE.md): it uses only the layers below it;
//! `tests/layers.rs` enforces that.

pub mod gguf;
pub mod image;
pub mod modelcheck;
pub mod modelsig;
pub mod pickle;
pub mod safetensors;
pub mod storedzip;
