//! What each command does, built from the layers below: pack, verify, import (with the store), inspect, sign and custody, volumes, push, init.
//!
//! Layer of airlock (see ARCHITECTURE.md): it uses only the layers below it;
//! `tests/layers.rs` enforces that.

pub mod amend;
pub mod import;
pub mod init;
pub mod inspect;
pub mod pack;
pub mod push;
pub mod referrers;
pub mod verify;
pub mod volumes;
