//! The library's error type. Each variant carries what a user needs to act
//! (the file, the field, what was expected and found) and maps to one of the
//! contract's exit codes: 1 for verification or policy failures, 2 for usage,
//! environment or I/O errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::digest::Sha256Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure. Errors from `fs_err` already name the path.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// An input file (manifest, trust policy, key) is malformed.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    /// A manifest or trust policy is not the YAML expected, at a known place.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The command line or environment does not allow the operation.
    #[error("{0}")]
    Usage(String),

    /// A file does not match the sha256 pinned for it.
    #[error("{path}: pinned sha256 {expected} but the file has {actual}; fix the pin or the file")]
    PinMismatch {
        path: PathBuf,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },

    /// The bundle or an input failed verification; every finding is listed.
    #[error("{0}")]
    Verification(Report),

    /// Pack refused its inputs (pins, packages, model content, image
    /// digests); every finding is listed. Nothing was verified yet, so the
    /// report is not headed "verification failed".
    #[error("{}", .0.render("cannot pack"))]
    PackRefused(Report),

    /// A policy or store rule refused the operation (downgrade, name not allowed, ...).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Why a file the user named cannot be opened: "no such WHAT file" when
    /// it is missing, else the OS's reason; names the path.
    pub fn cannot_open(path: &std::path::Path, what: &str, e: &std::io::Error) -> Self {
        Error::input(
            path,
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("no such {what} file; check the path")
            } else {
                format!("cannot read this {what} file: {e}")
            },
        )
    }

    /// A verification report raised while packing, headed as a pack failure.
    pub fn at_pack(self) -> Self {
        match self {
            Error::Verification(r) => Error::PackRefused(r),
            e => e,
        }
    }

    /// True when the input was judged and refused (verification, policy,
    /// pins), as opposed to the command being unable to run (usage, I/O).
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::PinMismatch { .. }
            | Error::Verification(_)
            | Error::PackRefused(_)
            | Error::Refused(_) => true,
            Error::Io(_) | Error::Input { .. } | Error::Yaml { .. } | Error::Usage(_) => false,
        }
    }

    /// The process exit code the contract assigns to this error.
    pub fn exit_code(&self) -> u8 {
        if self.is_refusal() {
            1
        } else {
            2
        }
    }
}

/// One thing found wrong: the file, signature or field at fault, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub subject: String,
    pub problem: String,
}

/// Every problem verification found; empty means it passed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn add(&mut self, subject: impl Into<String>, problem: impl Into<String>) {
        self.findings.push(Finding {
            subject: subject.into(),
            problem: problem.into(),
        });
    }

    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
    }

    /// `Ok(())` when nothing was found, else the report as a verification error.
    pub fn into_result(mut self) -> Result<()> {
        if self.is_ok() {
            Ok(())
        } else {
            self.findings
                .sort_by(|a, b| a.subject.cmp(&b.subject).then(a.problem.cmp(&b.problem)));
            self.findings.dedup();
            Err(Error::Verification(self))
        }
    }
}

impl Report {
    /// `HEAD (N problems):` and one finding a line.
    pub fn render(&self, head: &str) -> String {
        let mut s = format!(
            "{head} ({} problem{}):",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" }
        );
        for x in &self.findings {
            s.push_str(&format!("\n  {}: {}", x.subject, x.problem));
        }
        s
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("verification failed"))
    }
}

pub(crate) fn single(subject: impl Into<String>, problem: impl Into<String>) -> Error {
    let mut r = Report::default();
    r.add(subject, problem);
    Error::Verification(r)
}
