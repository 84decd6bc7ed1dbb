//! Progress reporting from the library to whoever draws it (the CLI draws
//! indicatif bars on a terminal; tests and `--json` draw nothing).

pub trait Progress: Sync {
    /// A new phase of `total` bytes begins.
    fn begin(&self, _phase: &str, _total: u64) {}
    /// `n` more bytes done.
    fn advance(&self, _n: u64) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Draws nothing.
pub struct Silent;
impl Progress for Silent {}
