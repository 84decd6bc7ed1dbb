//! Keys, signatures and what makes them count: Ed25519 keys, SSHSIG, DSSE, bundle signatures, the trust policy, custody chains, receipts.
//!
//! Layer of airlock (see ARCHITECTURE.md): it uses only the layers below it;
//! `tests/layers.rs` enforces that.

pub mod custody;
pub mod dsse;
pub mod keys;
pub mod policy;
pub mod receipt;
pub mod signing;
pub mod sshsig;
