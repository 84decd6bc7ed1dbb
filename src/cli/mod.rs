//! The command line: argument parsing, printing and progress bars. The only
//! module that writes to stdout or stderr. Each command is a plain function
//! that returns what to print; `main` maps errors to the contract's exit codes.
//!
//! Everything printed from a bundle or a store goes through `output::esc`;
//! `--json` objects follow `schemas/*.schema.json` (see `output`). A closed
//! stdout (`airlock inspect B | head -3`) ends output quietly.

pub mod output;
pub mod report;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::PrivateKey;
use crate::manifest::LoadedManifest;
use crate::output::{self as out, esc, esc_lines, esc_path, size};
use crate::pack::Format;
use crate::policy::TrustPolicy;
use crate::progress::Progress;
use crate::source::Form;
use crate::store::Store;

const ABOUT: &str = "Carry software and AI models across an air gap: signed, content-addressed \
bundles with chain of custody";

const MAIN_HELP: &str = "\
Exit codes: 0 success; 1 the bundle or an input failed verification or policy;
2 usage, environment or I/O error. --json prints one object on stdout
(schemas/*.schema.json), also for errors.

Environment: AIRLOCK_STORE supplies --store. AIRLOCK_PROGRESS_INTERVAL (seconds,
default 5) sets how often progress is logged when stderr is not a terminal.

Examples:
  airlock keygen keys/build-ci
  airlock pack airlock.yaml --key keys/build-ci.key --out dist --format tar.zst
  airlock verify dist/demo-1.0.0.tar.zst --trust policy.yaml
  airlock import dist/demo-1.0.0.tar.zst --trust policy.yaml --store /srv/airlock
  airlock export demo@1.0.0 --store /srv/airlock --out /srv/models/demo";

#[derive(Parser)]
#[command(name = "airlock", version, about = ABOUT, after_help = MAIN_HELP, max_term_width = 100)]
struct Cli {
    /// Print one JSON object on stdout instead of text (errors too).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// A store directory: `--store`, or the AIRLOCK_STORE environment variable.
#[derive(clap::Args)]
struct StoreArg {
    /// The store directory (created by the first import).
    #[arg(long, env = "AIRLOCK_STORE", value_name = "DIR")]
    store: PathBuf,
}

/// A bundle in a store: positional, or the old `--bundle` spelling.
#[derive(clap::Args)]
struct StoredBundle {
    /// The bundle in the store: NAME or NAME@VERSION (default: the newest version).
    #[arg(value_name = "BUNDLE", required_unless_present = "bundle_flag")]
    bundle: Option<String>,
    #[arg(long = "bundle", hide = true, conflicts_with = "bundle")]
    bundle_flag: Option<String>,
}

impl StoredBundle {
    fn spec(&self) -> &str {
        self.bundle
            .as_deref()
            .or(self.bundle_flag.as_deref())
            .expect("clap requires one")
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 key pair and print its key id.
    #[command(after_help = "\
Writes PATH.key (PKCS#8 PEM, mode 0600: keep it secret), PATH.pub (SPKI PEM) and
PATH.ssh.pub (OpenSSH, for allowed_signers). Trust policies name the public file;
`revoked:` lists key ids.

Examples:
  airlock keygen keys/build-ci
  airlock keygen --json keys/reviewer-1")]
    Keygen {
        /// Path prefix of the three files written (PATH.key, PATH.pub, PATH.ssh.pub).
        path: PathBuf,
    },
    /// Write a commented starter manifest and trust policy for the current directory.
    #[command(after_help = "\
Looks for model folders (config.json with weights, or weight files), requirements.txt
with a wheelhouse/, pylock.toml, Cargo.lock with vendor/, and other files; writes
airlock.yaml and trust-policy.yaml (refused if they exist, unless --force).

Examples:
  airlock init
  airlock init --name sensor-classifier --version 1.4.0")]
    Init {
        /// Bundle name for the manifest (default: the directory's name, normalized).
        #[arg(long)]
        name: Option<String>,
        /// Bundle version for the manifest.
        #[arg(long, default_value = "0.1.0")]
        version: String,
        /// Overwrite airlock.yaml and trust-policy.yaml if they exist.
        #[arg(long)]
        force: bool,
    },
    /// Pack a manifest into a signed bundle.
    #[command(after_help = "\
Examples:
  airlock pack airlock.yaml --key keys/build-ci.key --out dist
  airlock pack airlock.yaml --key keys/build-ci.key --out dist --format tar.zst
  airlock pack airlock.yaml --key keys/build-ci.key --out media --volume-size 4.7GB")]
    Pack {
        /// The manifest (YAML, `kind: Bundle`); its paths are relative to it.
        manifest: PathBuf,
        /// The builder's private key (PKCS#8 PEM from `airlock keygen`, or unencrypted OpenSSH).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Directory the bundle is written into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// dir: a bundle directory; tar / tar.zst: one file.
        #[arg(long, value_enum, default_value = "dir")]
        format: Format,
        /// Split into tar volumes no larger than SIZE (4.7GB, 25GB, 700MiB, or bytes; GB = 10^9, GiB = 2^30).
        #[arg(long, value_name = "SIZE", value_parser = parse_volume_size)]
        volume_size: Option<u64>,
        /// Every input must resolve (`..` and symbolic links included) below DIR;
        /// default: the manifest's `root:`, else its directory.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Cut a delta: leave out every blob this receipt (`airlock store receipt`,
        /// or an import receipt) says the high side's store holds.
        #[arg(long, value_name = "RECEIPT", requires = "base_trust")]
        base: Option<PathBuf>,
        /// The trust policy the base receipt's signer must be trusted by, for role `store`.
        #[arg(long, value_name = "POLICY", requires = "base")]
        base_trust: Option<PathBuf>,
    },
    /// Show what a bundle holds, from its tag files only (nothing is hashed or trusted).
    #[command(after_help = "\
Examples:
  airlock inspect dist/demo-1.0.0.tar.zst
  airlock inspect --json dist/demo-1.0.0 | jq .artifacts")]
    Inspect {
        /// A bundle directory or .tar/.tar.zst file, a folder of volumes, or a volume file.
        bundle: PathBuf,
    },
    /// Verify a bundle fully against a trust policy.
    #[command(after_help = "\
Hashes every blob against the signed manifests, checks the signatures against the
policy's keys and roles, re-checks python and cargo pins, scans model weights and
pickles, and checks the custody chain and the events the policy requires.

Examples:
  airlock verify dist/demo-1.0.0.tar.zst --trust policy.yaml
  airlock verify media/ --trust policy.yaml
  airlock verify media/demo-1.0.0.vol002.tar --trust policy.yaml   (one volume alone)")]
    Verify {
        /// A bundle directory or tar; a folder of volumes; or one or more volume files.
        #[arg(required = true, num_args = 1..)]
        bundle: Vec<PathBuf>,
        /// The trust policy (YAML, `kind: TrustPolicy`): keys, roles, required signers and custody events.
        #[arg(long, value_name = "POLICY")]
        trust: PathBuf,
        /// For a delta: check the blobs it leaves out against this store (they must
        /// all be there; content, structure and pins are checked on the store's copies).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// With --store: re-hash every blob the store provides.
        #[arg(long, requires = "store")]
        recheck: bool,
    },
    /// Verify a bundle, then import it atomically into a store.
    #[command(after_help = "\
Examples:
  airlock import dist/demo-1.0.0.tar.zst --trust policy.yaml --store /srv/airlock
  AIRLOCK_STORE=/srv/airlock airlock import media/ --trust policy.yaml \\
      --key keys/high.key --receipt receipt.dsse.json")]
    Import {
        /// A bundle directory or tar; a folder of volumes; or all its volume files.
        #[arg(required = true, num_args = 1..)]
        bundle: Vec<PathBuf>,
        /// The trust policy the bundle must satisfy.
        #[arg(long, value_name = "POLICY")]
        trust: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Import even if a newer version of the bundle is already in the store (recorded in the ledger).
        #[arg(long)]
        allow_downgrade: bool,
        /// The high side's private key: signs the `imported` custody event and the receipt.
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
        /// Write a signed import receipt here, to carry back to the build side.
        #[arg(long, value_name = "FILE")]
        receipt: Option<PathBuf>,
        /// For a delta: re-hash every blob the store provides, not only those
        /// read for content, structure and pin checks.
        #[arg(long)]
        recheck: bool,
    },
    /// Add a co-signature; the bundle id does not change.
    #[command(after_help = "\
Checks the bundle's tag files first: whoever signs vouches for this bundle id.

Examples:
  airlock sign dist/demo-1.0.0.tar.zst --key keys/reviewer-1.key")]
    Sign {
        /// A bundle directory or .tar/.tar.zst file, or a folder of volumes.
        bundle: PathBuf,
        /// The co-signer's private key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Signed, hash-chained custody events.
    #[command(subcommand)]
    Custody(CustodyCommand),
    /// Import receipts.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Write a bundle's content from the store in usable form.
    #[command(after_help = "\
Writes model folders, a wheelhouse, a cargo vendor directory, an npm cache, an OCI
layout of the images and the files, each blob re-hashed on the way out.

Examples:
  airlock export demo --store /srv/airlock --out /srv/demo
  AIRLOCK_STORE=/srv/airlock airlock export demo@1.0.0 --out /srv/demo")]
    Export {
        #[command(flatten)]
        bundle: StoredBundle,
        #[command(flatten)]
        store: StoreArg,
        /// Directory to write into (old spelling: --to).
        #[arg(long, alias = "to", value_name = "DIR")]
        out: PathBuf,
    },
    /// Push a bundle's images and artifacts to an OCI registry, digests unchanged.
    #[command(after_help = "\
Each image, model, file set and package pushed gets the bundle's SBOMs (CycloneDX,
SPDX), signatures and custody record as OCI 1.1 referrers: `oras discover` lists
them. On a registry without the referrers API they are listed under the tag
sha256-<hex of the image's digest>, merged with what that tag already lists.

Credentials come from AIRLOCK_REGISTRY_USERNAME/AIRLOCK_REGISTRY_PASSWORD or
~/.docker/config.json and are never written to the bundle or the output.

Examples:
  airlock push demo --store /srv/airlock --registry registry.internal:5000/airlock
  airlock push demo@1.0.0 --registry 127.0.0.1:5000 --insecure")]
    Push {
        #[command(flatten)]
        bundle: StoredBundle,
        #[command(flatten)]
        store: StoreArg,
        /// HOST[:PORT][/PREFIX]: images go to PREFIX/<their repository>, other artifacts to PREFIX/<bundle>/<ref>.
        #[arg(long)]
        registry: String,
        /// Plain HTTP (loopback or test registries).
        #[arg(long)]
        insecure: bool,
    },
    /// The store's contents and ledger.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The bundle's SBOM (CycloneDX 1.6 or SPDX 2.3 JSON), naming the bundle by its id.
    #[command(after_help = "\
Without --out the document itself goes to stdout (with or without --json).

Examples:
  airlock sbom dist/demo-1.0.0.tar.zst --format cyclonedx > demo.cdx.json
  airlock sbom dist/demo-1.0.0 --format spdx --out demo.spdx.json")]
    Sbom {
        /// A bundle directory or tar, a folder of volumes, or a volume file.
        bundle: PathBuf,
        /// Which SBOM document.
        #[arg(long, value_enum)]
        format: crate::sbom::SbomFormat,
        /// Write the document to FILE instead of printing it (old spelling: --output).
        #[arg(long, alias = "output", value_name = "FILE")]
        out: Option<PathBuf>,
        /// The document exactly as stored in the bundle, which cannot contain the bundle id.
        #[arg(long)]
        stored: bool,
    },
    /// Write a printable HTML transfer report of a bundle (no script, no network).
    #[command(after_help = "\
The page shows the bundle id large enough to read aloud, the contents and sizes,
the signers and their verdicts, the custody timeline, pickle findings and an SBOM
summary. With --trust the bundle is verified in full first; the report is written
either way, and a failed verification is shown on it (exit 1).

Examples:
  airlock report dist/demo-1.0.0.tar.zst --trust policy.yaml --out report.html
  chromium --headless --print-to-pdf=report.pdf report.html")]
    Report {
        /// A bundle directory or tar; a folder of volumes; or all its volume files.
        #[arg(required = true, num_args = 1..)]
        bundle: Vec<PathBuf>,
        /// Verify against this trust policy and name signers by it.
        #[arg(long, value_name = "POLICY")]
        trust: Option<PathBuf>,
        /// The HTML file to write (old spelling: --output).
        #[arg(long, alias = "output", value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  airlock completions bash > /etc/bash_completion.d/airlock
  airlock completions zsh > ~/.zfunc/_airlock")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = "\
Examples:
  airlock man | man -l -
  airlock man --out /usr/local/share/man/man1")]
    Man {
        /// Write airlock.1 and airlock-COMMAND.1 pages into DIR instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CustodyCommand {
    /// Append a signed event (e.g. scanned, transferred, received).
    #[command(after_help = "\
Examples:
  airlock custody append dist/demo-1.0.0.tar.zst --key keys/officer.key --event scanned \\
      --note \"ClamAV 1.3, clean\"")]
    Append {
        /// A bundle directory or .tar/.tar.zst file, or a folder of volumes.
        bundle: PathBuf,
        /// The private key that signs the event.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// What happened: a lowercase name (scanned, transferred, received, ...).
        #[arg(long)]
        event: String,
        /// Free text recorded in the signed event.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// A trust policy whose `custodyEvents:` lists the event names allowed
        /// (default: packed, signed, imported, scanned, approved, transferred, received, released).
        #[arg(long, value_name = "POLICY")]
        trust: Option<PathBuf>,
    },
    /// Show the chain: who, what, when, and whether each signature and link checks.
    #[command(after_help = "\
Exit 1 when a signature or a link is broken.

Examples:
  airlock custody show dist/demo-1.0.0.tar.zst")]
    Show {
        /// A bundle directory or .tar/.tar.zst file, or a folder of volumes.
        bundle: PathBuf,
        /// A trust policy: signers it lists are shown by their name in it.
        #[arg(long, value_name = "POLICY")]
        trust: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Check a receipt the high side signed, against a trust policy.
    #[command(after_help = "\
Examples:
  airlock receipt verify receipt.dsse.json --trust high-side.yaml")]
    Verify {
        /// The receipt file written by `airlock import --receipt`.
        receipt: PathBuf,
        /// A trust policy naming the high side's key.
        #[arg(long, value_name = "POLICY")]
        trust: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// List imported bundles.
    #[command(after_help = "\
Examples:
  airlock store ls --store /srv/airlock
  AIRLOCK_STORE=/srv/airlock airlock store ls --json")]
    Ls {
        #[command(flatten)]
        store: StoreArg,
    },
    /// Show the ledger; with --verify, check its hash chain (exit 1 if broken).
    #[command(after_help = "\
Examples:
  airlock store log --store /srv/airlock --verify")]
    Log {
        #[command(flatten)]
        store: StoreArg,
        /// Check the ledger's hash chain (exit 1 if broken).
        #[arg(long)]
        verify: bool,
    },
    /// Write a signed statement of every blob the store holds: the base of a delta.
    #[command(after_help = "\
The receipt (DSSE, in-toto Statement v1) names the store's identity (created by the
first receipt and kept in STORE/store-id), the time, and every blob that an imported
bundle declares, as sorted sha256 digests. Carry it to the build side and pass it to
`airlock pack --base`; the key needs role `store` in the build side's --base-trust policy.

Examples:
  airlock store receipt --store /srv/airlock --key keys/high.key --out have.json")]
    Receipt {
        #[command(flatten)]
        store: StoreArg,
        /// The high side's private key, which signs the receipt.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The receipt file to write (old spelling: --output).
        #[arg(long, alias = "output", value_name = "FILE")]
        out: PathBuf,
    },
}

/// A failed command: the error, and for a failed verification which files
/// each payload blob named in a finding holds.
struct Failure {
    error: Error,
    holds: BTreeMap<String, Vec<String>>,
    /// The command already printed its own `--json` object (with `ok: false`).
    printed: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            holds: BTreeMap::new(),
            printed: false,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e).into()
    }
}

type CliResult<T = ()> = std::result::Result<T, Failure>;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let usage = e.use_stderr();
            if usage && std::env::args_os().any(|a| a == "--json") {
                let body = out::ErrorOut {
                    error: out::ErrorBody {
                        message: e.render().to_string().trim_end().to_string(),
                        exit_code: 2,
                        findings: vec![],
                    },
                };
                print_json(&out::envelope(false, body));
            }
            let _ = e.print();
            return ExitCode::from(if usage { 2 } else { 0 });
        }
    };
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let code = f.error.exit_code();
            if json && !f.printed {
                print_json(&out::envelope(false, error_object(&f)));
            }
            eprint_line(&wrap_lines(&format!("airlock: {}", render_error(&f))));
            ExitCode::from(code)
        }
    }
}

fn error_object(f: &Failure) -> out::ErrorOut {
    let findings = match &f.error {
        Error::Verification(r) | Error::PackRefused(r) => r
            .findings
            .iter()
            .map(|x| out::FindingOut {
                subject: x.subject.clone(),
                problem: x.problem.clone(),
                holds: f.holds.get(&x.subject).cloned().unwrap_or_default(),
            })
            .collect(),
        _ => vec![],
    };
    out::ErrorOut {
        error: out::ErrorBody {
            message: f.error.to_string(),
            exit_code: f.error.exit_code(),
            findings,
        },
    }
}

/// The error as text, untrusted parts escaped; a corrupt blob's finding is
/// followed by the files it holds.
fn render_error(f: &Failure) -> String {
    let (head, r) = match &f.error {
        Error::Verification(r) => ("verification failed", r),
        Error::PackRefused(r) => ("cannot pack", r),
        _ => return esc_lines(&f.error.to_string()),
    };
    let n = r.findings.len();
    let mut s = format!("{head} ({n} problem{}):", if n == 1 { "" } else { "s" });
    for x in &r.findings {
        s.push_str(&format!("\n  {}: {}", esc(&x.subject), esc(&x.problem)));
        for h in f.holds.get(&x.subject).into_iter().flatten() {
            s.push_str(&format!("\n      holds {}", esc(h)));
        }
    }
    s
}

/// Set once stdout is found closed (a pipe's reader exited): further output
/// is dropped and the command finishes with its own exit code.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; a closed pipe ends output quietly.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(Error::Usage(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

fn print_json<T: Serialize>(v: &T) {
    let mut s = serde_json::to_string(v).expect("serializable");
    s.push('\n');
    let _ = write_stdout(s.as_bytes());
}

/// A line on stderr; a closed stderr is ignored.
/// Human error text at most [`ERROR_WIDTH`] columns wide: each longer line
/// is split at spaces, its continuation lines indented by four spaces (a
/// digest or path longer than that stays whole).
fn wrap_lines(text: &str) -> String {
    text.lines()
        .map(|l| out::wrap(l, ERROR_WIDTH, "    "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The width of human error output.
const ERROR_WIDTH: usize = 100;

fn eprint_line(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{s}");
}

fn emit<T: Serialize>(json: bool, value: T, text: impl FnOnce() -> String) -> CliResult {
    emit_ok(json, true, value, text)
}

fn emit_ok<T: Serialize>(
    json: bool,
    ok: bool,
    value: T,
    text: impl FnOnce() -> String,
) -> CliResult {
    if json {
        let mut s = serde_json::to_string(&out::envelope(ok, value)).expect("serializable");
        s.push('\n');
        write_stdout(s.as_bytes())?;
    } else {
        let mut s = text();
        s.push('\n');
        write_stdout(s.as_bytes())?;
    }
    Ok(())
}

/// Loads a `--key` file, warning on stderr (as ssh does) when others can read it.
fn load_key(path: &std::path::Path) -> Result<PrivateKey> {
    let key = PrivateKey::load(path)?;
    if let Some(w) = crate::keys::exposure_warning(path) {
        eprintln!("airlock: warning: {w}");
    }
    Ok(key)
}

/// Key id → the name a trust policy gives it.
fn key_names(policy: Option<&TrustPolicy>) -> BTreeMap<String, String> {
    policy
        .map(|p| {
            p.keys
                .iter()
                .map(|k| (k.key.id.clone(), k.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn custody_out(
    events: &[crate::custody::EventView],
    names: &BTreeMap<String, String>,
) -> Vec<out::CustodyEventOut> {
    events
        .iter()
        .map(|e| out::CustodyEventOut::new(e, names))
        .collect()
}

fn run(cli: Cli) -> CliResult {
    let json = cli.json;
    let mut bar = Bar::new();
    match cli.command {
        Command::Keygen { path } => {
            let files = PrivateKey::generate()?.write_files(&path)?;
            emit(
                json,
                out::KeygenOut {
                    id: files.id.clone(),
                    key_id: files.id.clone(),
                    private_key: files.private_key.clone(),
                    ssh_private_key: files.ssh_private_key.clone(),
                    public_key: files.public_key.clone(),
                    ssh_public_key: files.ssh_public_key.clone(),
                },
                || {
                    format!(
                        "key id {}\nwrote  {} and {} (private, keep secret)\n       {}\n       {}",
                        files.id,
                        files.private_key.display(),
                        files.ssh_private_key.display(),
                        files.public_key.display(),
                        files.ssh_public_key.display()
                    )
                },
            )
        }
        Command::Init {
            name,
            version,
            force,
        } => {
            let cwd = std::env::current_dir()?;
            let done = crate::init::init(&cwd, name.as_deref(), &version, force)?;
            let found = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            emit(
                json,
                out::InitOut {
                    manifest: done.manifest.clone(),
                    policy: done.policy.clone(),
                    models: done.models.clone(),
                    files: done.files.clone(),
                    python: done.python.clone(),
                    cargo: done.cargo.clone(),
                },
                || {
                    let mut s = format!(
                        "wrote {} and {}\n",
                        done.manifest.display(),
                        done.policy.display()
                    );
                    s.push_str(&out::wrap(
                        &format!("models: {}", found(&done.models)),
                        96,
                        "    ",
                    ));
                    s.push('\n');
                    s.push_str(&out::wrap(
                        &format!("files:  {}", found(&done.files)),
                        96,
                        "    ",
                    ));
                    s.push_str(&format!(
                        "\npython: {}\ncargo:  {}\nnext: review both files, then `airlock keygen keys/build-ci` and\n  \
                         airlock pack {} --key keys/build-ci.key --out dist",
                        found(&done.python),
                        found(&done.cargo),
                        done.manifest.display()
                    ));
                    s
                },
            )
        }
        Command::Pack {
            manifest,
            key,
            out,
            format,
            volume_size,
            root,
            base,
            base_trust,
        } => {
            let m = LoadedManifest::load_with_root(&manifest, root.as_deref())?;
            let key = load_key(&key)?;
            let base = match (&base, &base_trust) {
                (Some(b), Some(t)) => Some(crate::receipt::load_base(b, &TrustPolicy::load(t)?)?),
                _ => None,
            };
            // Volumes are packed, then split; every other form in one pass.
            bar.steps = if volume_size.is_none() { 1 } else { 2 };
            let packed =
                crate::pack::pack_delta(&m, &key, &out, format, volume_size, base.as_ref(), &bar)
                    .map_err(Error::at_pack)?;
            let j = out::PackOut {
                id: packed.id.clone(),
                bundle_id: packed.id.clone(),
                name: packed.name.clone(),
                version: packed.version.clone(),
                path: packed.path.clone(),
                paths: packed.paths.clone(),
                format: clap::ValueEnum::to_possible_value(&format)
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
                artifact_count: packed.artifacts,
                blob_count: packed.blobs,
                size: packed.size,
                images: packed
                    .images
                    .iter()
                    .map(|i| out::ImageOut {
                        name: i.name.clone(),
                        source: i.source.clone(),
                        digest: i.digest.clone(),
                        reference: i.reference.clone(),
                    })
                    .collect(),
                delta: base.as_ref().map(|b| out::DeltaOut {
                    receipt: b.digest.oci(),
                    store_id: b.store_id.clone(),
                    blobs: packed.omitted,
                    size: packed.omitted_size,
                }),
            };
            emit(json, j, || {
                let mut s = format!(
                    "packed {} {}: {} artifact(s), {} blob(s), {}\nbundle id  {}\npath       {}",
                    esc(&packed.name),
                    esc(&packed.version),
                    packed.artifacts,
                    packed.blobs,
                    size(packed.size),
                    packed.id,
                    packed.path.display()
                );
                if let Some(b) = &base {
                    s.push_str(&format!(
                        "\ndelta: {} blob(s) ({}) provided by the base\n    receipt {} from {} (key {})",
                        packed.omitted,
                        size(packed.omitted_size),
                        b.digest.oci(),
                        b.store_id
                            .as_deref()
                            .map_or("an import receipt".to_string(), |i| format!("store {i}")),
                        esc(&b.store_key)
                    ));
                }
                for img in &packed.images {
                    s.push_str(&format!(
                        "\nimage {}\n    = {}\n    from {}",
                        esc(&img.name),
                        img.digest,
                        esc(&img.source)
                    ));
                }
                for (i, p) in packed.paths.iter().enumerate() {
                    s.push_str(&format!(
                        "\nvolume {} of {}: {}",
                        i + 1,
                        packed.paths.len(),
                        p.display()
                    ));
                }
                s
            })
        }
        Command::Inspect { bundle } => {
            let i = crate::inspect::inspect(&bundle)?;
            let d = &i.description;
            let j = out::InspectOut {
                bundle_id: &i.id,
                path: &i.path,
                description: d,
                size: d.total_size(),
                blob_count: d.blob_count(),
                signers: i
                    .signers
                    .iter()
                    .map(|s| out::SignatureOut {
                        key_id: s.key_id.clone(),
                        signature_ok: s.signature_ok,
                        problem: s.problem.clone(),
                    })
                    .collect(),
                custody: custody_out(&i.custody, &BTreeMap::new()),
            };
            emit(json, j, || render_inspection(&i))
        }
        Command::Verify {
            bundle,
            trust,
            store,
            recheck,
        } => {
            let policy = TrustPolicy::load(&trust)?;
            let form = Form::open_all(&bundle)?;
            let whole = !matches!(&form, Form::Volumes { files } if files.len() == 1);
            let st = store.as_deref().map(Store::new);
            if let Some(st) = &st {
                st.check_exists()?;
            }
            let base = st
                .as_ref()
                .map(|store| crate::verify::Base { store, recheck });
            let v =
                crate::verify::verify_with_base(&form, &policy, None, base.as_ref(), &bar, None)
                    .map_err(|e| with_holds(e, &bundle))?;
            let names = key_names(Some(&policy));
            let checked = checked(&v, whole);
            let j = out::VerifyOut {
                bundle_id: v.id.hex(),
                name: v.description.name.clone(),
                version: v.description.version.clone(),
                roles: v.signers.counted.clone(),
                signers: v
                    .signers
                    .keys
                    .iter()
                    .map(|k| out::SignerOut {
                        key_id: k.key_id.clone(),
                        name: k.name.clone(),
                        status: k.status.clone(),
                    })
                    .collect(),
                checked: checked.clone(),
                custody: custody_out(&v.custody, &names),
            };
            emit(json, j, || render_verified(&v, &checked, &names))
        }
        Command::Import {
            bundle,
            trust,
            store,
            allow_downgrade,
            key,
            receipt,
            recheck,
        } => {
            let store = store.store;
            let policy = TrustPolicy::load(&trust)?;
            let key = key.map(|k| load_key(&k)).transpose()?;
            let opts = crate::store::ImportOptions {
                allow_downgrade,
                key: key.as_ref(),
                receipt: receipt.clone(),
                recheck,
            };
            let done = Store::new(&store)
                .import(&bundle, &policy, &opts, &bar)
                .map_err(|e| with_holds(e, &bundle))?;
            if let (Some(r), false) = (&receipt, json) {
                eprint_line(&format!("receipt written to {}", r.display()));
            }
            let j = out::ImportOut {
                bundle_id: done.id.clone(),
                name: done.name.clone(),
                version: done.version.clone(),
                store: store.clone(),
                already_present: done.already_present,
                blobs_written: done.blobs_written,
                blobs_from_base: done.from_base,
                receipt: receipt.clone(),
            };
            emit(json, j, || {
                if done.already_present {
                    format!(
                        "{} {} is already in {}; nothing changed\nbundle id  {}",
                        esc(&done.name),
                        esc(&done.version),
                        store.display(),
                        done.id
                    )
                } else {
                    format!(
                        "imported {} {} into {}: {} new blob(s){}\nbundle id  {}",
                        esc(&done.name),
                        esc(&done.version),
                        store.display(),
                        done.blobs_written,
                        done.from_base.map_or(String::new(), |n| format!(
                            ", {n} provided by the store (a delta, now complete)"
                        )),
                        done.id
                    )
                }
            })
        }
        Command::Export { bundle, store, out } => {
            let st = Store::new(&store.store);
            let done = st.export(bundle.spec(), &out, &bar)?;
            let id = bundle_id_in(&st, &done.name, &done.version)?;
            let j = out::ExportOut {
                bundle_id: id,
                name: done.name.clone(),
                version: done.version.clone(),
                path: done.to.clone(),
                files: done.files.clone(),
            };
            emit(json, j, || {
                format!(
                    "exported {} {} to {}: {} file(s)",
                    esc(&done.name),
                    esc(&done.version),
                    done.to.display(),
                    done.files.len()
                )
            })
        }
        Command::Push {
            bundle,
            store,
            registry,
            insecure,
        } => {
            let st = Store::new(&store.store);
            let done = crate::push::push(&st, bundle.spec(), &registry, insecure, &bar)?;
            let id = bundle_id_in(&st, &done.name, &done.version)?;
            let j = out::PushOut {
                bundle_id: id,
                name: done.name.clone(),
                version: done.version.clone(),
                registry: done.registry.clone(),
                pushed: done
                    .pushed
                    .iter()
                    .map(|p| out::PushedOut {
                        reference: p.reference.clone(),
                        digest: p.digest.clone(),
                    })
                    .collect(),
                referrers: done
                    .referrers
                    .iter()
                    .map(|r| out::ReferrerOut {
                        subject: r.subject.clone(),
                        reference: r.reference.clone(),
                        digest: r.digest.clone(),
                        artifact_type: r.artifact_type.clone(),
                    })
                    .collect(),
                referrer_indexes: done
                    .referrer_indexes
                    .iter()
                    .map(|p| out::PushedOut {
                        reference: p.reference.clone(),
                        digest: p.digest.clone(),
                    })
                    .collect(),
                blobs_sent: done.blobs_sent,
                blobs_present: done.blobs_present,
            };
            emit(json, j, || {
                let mut s = format!(
                    "pushed {} {} to {}: {} blob(s) sent, {} already there",
                    esc(&done.name),
                    esc(&done.version),
                    esc(&done.registry),
                    done.blobs_sent,
                    done.blobs_present
                );
                for p in &done.pushed {
                    s.push_str(&format!("\n  {}\n    = {}", esc(&p.reference), p.digest));
                }
                if !done.referrers.is_empty() {
                    s.push_str(&format!(
                        "\nreferrers ({}: SBOMs, signatures, custody record):",
                        done.referrers.len()
                    ));
                    let mut subjects: Vec<&str> = Vec::new();
                    for r in &done.referrers {
                        if !subjects.contains(&r.subject.as_str()) {
                            subjects.push(&r.subject);
                        }
                    }
                    for subject in subjects {
                        s.push_str(&format!("\n  of {}", esc(subject)));
                        for r in done.referrers.iter().filter(|r| r.subject == subject) {
                            s.push_str(&format!("\n    {} {}", r.digest, esc(&r.artifact_type)));
                        }
                        // `HOST/REPO@sha256:HEX` → its fallback tag `HOST/REPO:sha256-HEX`.
                        let tag = subject.replacen("@sha256:", ":sha256-", 1);
                        if let Some(t) = done.referrer_indexes.iter().find(|t| t.reference == tag) {
                            s.push_str(&format!(
                                "\n    listed under tag {} = {}",
                                esc(tag.rsplit(':').next().unwrap_or("")),
                                t.digest
                            ));
                        }
                    }
                }
                s
            })
        }
        Command::Sign { bundle, key } => {
            let key = load_key(&key)?;
            let done = crate::amend::sign(&bundle, &key)?;
            let j = out::AmendOut {
                bundle_id: done.id.clone(),
                key_id: done.key_id.clone(),
                event: None,
                wrote: done.wrote.clone(),
            };
            emit(json, j, || {
                if done.wrote.is_empty() {
                    format!(
                        "key {} has already signed this bundle; nothing changed\nbundle id  {}",
                        done.key_id, done.id
                    )
                } else {
                    format!(
                        "signed with key {}\nbundle id  {}\nwrote      {}",
                        done.key_id,
                        done.id,
                        list_paths(&done.wrote)
                    )
                }
            })
        }
        Command::Custody(CustodyCommand::Append {
            bundle,
            key,
            event,
            note,
            trust,
        }) => {
            let policy = trust.as_deref().map(TrustPolicy::load).transpose()?;
            let key = load_key(&key)?;
            let done = crate::amend::append_custody(
                &bundle,
                &key,
                &event,
                note.as_deref(),
                policy.as_ref(),
            )?;
            let j = out::AmendOut {
                bundle_id: done.id.clone(),
                key_id: done.key_id.clone(),
                event: Some(event.clone()),
                wrote: done.wrote.clone(),
            };
            emit(json, j, || {
                format!(
                    "recorded {} by key {}\nbundle id  {}\nwrote      {}",
                    esc(&event),
                    done.key_id,
                    done.id,
                    list_paths(&done.wrote)
                )
            })
        }
        Command::Custody(CustodyCommand::Show { bundle, trust }) => {
            let policy = trust.as_deref().map(TrustPolicy::load).transpose()?;
            let shown = crate::amend::show_custody(&bundle, policy.as_ref())?;
            let names = key_names(policy.as_ref());
            let j = out::CustodyShowOut {
                bundle_id: shown.id.clone(),
                events: custody_out(&shown.events, &names),
            };
            emit_ok(json, shown.intact, j, || {
                let mut s = format!("custody of bundle {}\n", shown.id);
                s.push_str(&render_custody(&shown.events, &names));
                s.push_str(if shown.intact {
                    "\nchain intact"
                } else {
                    "\nCHAIN BROKEN"
                });
                s
            })?;
            if shown.intact {
                Ok(())
            } else {
                let mut f = Failure::from(Error::Verification({
                    let mut r = crate::error::Report::default();
                    for e in &shown.events {
                        for p in &e.problems {
                            r.add(&e.file, p);
                        }
                    }
                    r
                }));
                f.printed = true;
                Err(f)
            }
        }
        Command::Receipt(ReceiptCommand::Verify { receipt, trust }) => {
            let policy = TrustPolicy::load(&trust)?;
            let r = crate::receipt::verify(&receipt, &policy)?;
            let p = &r.receipt;
            let j = out::ReceiptOut {
                bundle_id: p.bundle_id.clone(),
                name: p.bundle.clone(),
                version: p.version.clone(),
                key_id: p.store_key.clone(),
                signer_name: r.signer.clone(),
                public_key: p.public_key.clone(),
                time: p.time.clone(),
                blobs: p.blobs.iter().map(|b| b.oci()).collect(),
            };
            emit(json, j, || {
                format!(
                    "OK receipt: {} {} imported at {}\nbundle id  {}\nsigned by  {} (key {})\n\
                     the store holds {} blob(s) of it",
                    esc(&p.bundle),
                    esc(&p.version),
                    esc(&p.time),
                    esc(&p.bundle_id),
                    esc(&r.signer),
                    esc(&p.store_key),
                    p.blobs.len()
                )
            })
        }
        Command::Sbom {
            bundle,
            format,
            out,
            stored,
        } => {
            let doc = crate::sbom::document(&bundle, format, stored)?;
            let Some(out) = out else {
                // The document is itself one JSON object, with or without --json;
                // its bytes go out unchanged (`--stored | sha256sum` matches).
                write_stdout(&doc.bytes)?;
                return Ok(());
            };
            fs_err::write(&out, &doc.bytes)?;
            let sha256 = crate::digest::Sha256Digest::of(&doc.bytes).hex();
            let j = out::SbomOut {
                bundle_id: doc.id.clone(),
                path: out.clone(),
                format: doc.format,
                stored: doc.stored,
                stored_sha256: doc.stored_sha256.clone(),
                sha256: sha256.clone(),
                size: doc.bytes.len() as u64,
            };
            emit(json, j, || {
                format!(
                    "wrote {} ({} SBOM, {}, {})\nbundle id  {}\nsha256     {sha256}",
                    out.display(),
                    doc.format.label(),
                    if doc.stored {
                        "as stored"
                    } else {
                        "with the bundle id"
                    },
                    size(doc.bytes.len() as u64),
                    doc.id,
                )
            })
        }
        Command::Report { bundle, trust, out } => run_report(json, &bundle, trust, &out, &bar),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "airlock", &mut buf);
            write_stdout(&buf)?;
            Ok(())
        }
        Command::Man { out } => run_man(json, out),
        Command::Store(StoreCommand::Ls { store }) => {
            let store = store.store;
            let list = Store::new(&store).list()?;
            let j = out::StoreLsOut {
                store: store.clone(),
                bundles: list
                    .iter()
                    .map(|r| out::StoredBundleOut {
                        bundle_id: r.id.clone(),
                        name: r.name.clone(),
                        version: r.version.clone(),
                        imported: r.imported.clone(),
                        roles: r.signers.clone(),
                        artifact_count: r.artifacts,
                        size: r.size,
                    })
                    .collect(),
            };
            emit(json, j, || {
                if list.is_empty() {
                    return "(store is empty)".to_string();
                }
                list.iter()
                    .map(|r| {
                        format!(
                            "{} {}  {} artifact(s), {}, imported {}\n    bundle id {}",
                            esc(&r.name),
                            esc(&r.version),
                            r.artifacts,
                            size(r.size),
                            esc(&r.imported),
                            esc(&r.id)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Store(StoreCommand::Receipt { store, key, out }) => {
            let store = store.store;
            let key = load_key(&key)?;
            let h = Store::new(&store).holdings_receipt(&key)?;
            crate::store::write_atomic(&out, &h.bytes)?;
            let j = out::StoreReceiptOut {
                store: store.clone(),
                store_id: h.store_id.clone(),
                key_id: key.public.id.clone(),
                blob_count: h.blobs,
                path: out.clone(),
                size: h.bytes.len() as u64,
            };
            emit(json, j, || {
                format!(
                    "receipt of {} blob(s) held by store {} ({})\nsigned by  key {}\nwritten to {}",
                    h.blobs,
                    h.store_id,
                    store.display(),
                    key.public.id,
                    out.display()
                )
            })
        }
        Command::Store(StoreCommand::Log { store, verify }) => {
            let store = store.store;
            let entries = Store::new(&store).log(verify)?;
            let j = out::StoreLogOut {
                store: store.clone(),
                chain_checked: verify,
                entries: entries
                    .iter()
                    .map(|e| out::LedgerEntryOut {
                        sequence: e.seq,
                        time: e.time.clone(),
                        action: e.action.clone(),
                        bundle_id: e.bundle.clone(),
                        name: e.name.clone(),
                        version: e.version.clone(),
                        detail: e.detail.clone(),
                        previous: e.prev.clone(),
                    })
                    .collect(),
            };
            emit(json, j, || {
                let mut s: Vec<String> = entries
                    .iter()
                    .map(|e| {
                        out::wrap(
                            &format!(
                                "{:>4} {} {:<10} {}",
                                e.seq,
                                esc(&e.time),
                                esc(&e.action),
                                esc(&e.detail)
                            ),
                            98,
                            "                                      ",
                        )
                    })
                    .collect();
                if verify {
                    s.push(format!("ledger chain intact ({} entries)", entries.len()));
                }
                s.join("\n")
            })
        }
    }
}

/// The bundle id the store records for NAME VERSION.
fn bundle_id_in(store: &Store, name: &str, version: &str) -> Result<String> {
    Ok(store
        .record(name, version)?
        .map(|r| r.id)
        .unwrap_or_default())
}

/// What a successful verification covered, from the verified description.
fn checked(v: &crate::verify::Verified, whole: bool) -> out::CheckedOut {
    let d = &v.description;
    let mut c = out::CheckedOut {
        custody_events: v.custody.len(),
        whole_bundle: whole,
        ..Default::default()
    };
    if whole {
        let b = &v.base;
        c.blobs = d.blob_count() - b.omitted.len();
        c.bytes = d.total_size() - b.omitted.values().sum::<u64>();
        if let Some(delta) = &d.delta {
            c.delta = Some(out::DeltaCheckOut {
                receipt: delta.receipt.oci(),
                store_id: delta.store_id.clone(),
                blobs: b.omitted.len(),
                bytes: b.omitted.values().sum(),
                store: b.store.clone(),
                rehashed: b.rehashed,
                structure_checked: b.structure,
                unchecked: if b.store.is_none() {
                    b.omitted.keys().map(|d| d.oci()).collect()
                } else {
                    Vec::new()
                },
            });
        }
        c.pins = d
            .artifacts
            .iter()
            .filter(|a| crate::sources::kind::of(a.kind).carries_packages())
            .map(|a| a.packages.len())
            .sum();
        if !v.base.structure {
            c.pins = 0; // a delta verified without the store it needs
        } else {
            c.model_signatures = d
                .models
                .iter()
                .filter_map(|m| m.signature.as_ref())
                .filter(|s| s.status == crate::bundle::SignatureStatus::Verified)
                .count();
        }
        c.models = d.content.len();
        if v.base.store.is_none() && !v.base.omitted.is_empty() {
            // Model files the delta leaves out were not scanned.
            c.models = d
                .content
                .iter()
                .filter(|e| {
                    d.artifacts
                        .iter()
                        .filter(|a| a.reference == e.artifact)
                        .flat_map(|a| &a.layers)
                        .find(|l| l.path == e.path)
                        .is_none_or(|l| !v.base.omitted.contains_key(l.digest))
                })
                .count();
        }
    }
    c
}

/// For each payload blob, the artifact files (or image) it holds, as
/// `models/minilm: model.safetensors`.
fn blob_holders(d: &crate::bundle::Description) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |digest: &crate::digest::Sha256Digest, what: String| {
        m.entry(crate::bundle::blob_path(digest))
            .or_default()
            .push(what);
    };
    for a in &d.artifacts {
        add(
            &a.manifest.digest,
            format!("{}: its OCI manifest", a.reference),
        );
        add(&a.config.digest, format!("{}: its OCI config", a.reference));
        for l in &a.layers {
            add(l.digest, format!("{}: {}", a.reference, l.path));
        }
        for b in &a.blobs {
            add(
                &b.digest,
                format!("{}: image blob ({})", a.reference, b.media_type),
            );
        }
    }
    m
}

/// Adds, for a failed verification, what each blob named in a finding holds
/// (read from the bundle's description, which tag files alone give).
fn with_holds(error: Error, bundle: &[PathBuf]) -> Failure {
    let mut f = Failure::from(error);
    if let (Error::Verification(r), Some(first)) = (&f.error, bundle.first()) {
        let names_blob = r
            .findings
            .iter()
            .any(|x| x.subject.starts_with("data/blobs/"));
        if names_blob {
            if let Ok(i) = crate::inspect::inspect(first) {
                let all = blob_holders(&i.description);
                for x in &r.findings {
                    if let Some(h) = all.get(&x.subject) {
                        f.holds.insert(x.subject.clone(), h.clone());
                    }
                }
            }
        }
    }
    f
}

fn run_report(
    json: bool,
    bundle: &[PathBuf],
    trust: Option<PathBuf>,
    path: &Path,
    bar: &Bar,
) -> CliResult {
    let policy = trust.as_deref().map(TrustPolicy::load).transpose()?;
    let built = crate::report::build(bundle, policy.as_ref(), bar)?;
    fs_err::write(path, built.html.as_bytes())?;
    let failure = built.failure;
    let j = out::ReportOut {
        bundle_id: built.id.clone(),
        name: built.name.clone(),
        version: built.version.clone(),
        path: path.to_path_buf(),
        verified: policy.is_some() && failure.is_none(),
        findings: failure
            .iter()
            .flat_map(|r| &r.findings)
            .map(|x| out::FindingOut {
                subject: x.subject.clone(),
                problem: x.problem.clone(),
                holds: vec![],
            })
            .collect(),
    };
    emit_ok(json, failure.is_none(), j, || {
        format!(
            "wrote {} ({})\nbundle id  {}\n{}",
            path.display(),
            size(built.html.len() as u64),
            built.id,
            match (&policy, &failure) {
                (None, _) =>
                    "not verified: give --trust POLICY to verify and judge the signers".to_string(),
                (Some(_), None) => format!(
                    "verified against {}",
                    trust.as_deref().unwrap_or(Path::new("")).display()
                ),
                (Some(_), Some(r)) => format!(
                    "VERIFICATION FAILED ({} problem(s)); the report shows them",
                    r.findings.len()
                ),
            }
        )
    })?;
    match failure {
        Some(r) => {
            let mut f = with_holds(Error::Verification(r), bundle);
            f.printed = true;
            Err(f)
        }
        None => Ok(()),
    }
}

fn run_man(json: bool, dir: Option<PathBuf>) -> CliResult {
    let cmd = Cli::command();
    let render = |c: clap::Command| -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        Ok(buf)
    };
    let Some(dir) = dir else {
        write_stdout(&render(cmd)?)?;
        return Ok(());
    };
    fs_err::create_dir_all(&dir)?;
    let mut wrote = Vec::new();
    let mut pages = vec![("airlock".to_string(), cmd.clone())];
    // One page per command and per subcommand (airlock-store-ls.1).
    fn walk(prefix: &str, c: &clap::Command, pages: &mut Vec<(String, clap::Command)>) {
        for sub in c.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let name = format!("{prefix}-{}", sub.get_name());
            pages.push((name.clone(), sub.clone().name(name.clone())));
            walk(&name, sub, pages);
        }
    }
    walk("airlock", &cmd, &mut pages);
    for (name, c) in pages {
        let p = dir.join(format!("{name}.1"));
        fs_err::write(&p, render(c)?)?;
        wrote.push(p);
    }
    #[derive(Serialize)]
    struct ManOut {
        wrote: Vec<PathBuf>,
    }
    let n = wrote.len();
    emit(json, ManOut { wrote }, || {
        format!("wrote {n} man page(s) into {}", dir.display())
    })
}

fn parse_volume_size(s: &str) -> std::result::Result<u64, String> {
    crate::volumes::parse_size(s)
}

fn render_verified(
    v: &crate::verify::Verified,
    c: &out::CheckedOut,
    names: &BTreeMap<String, String>,
) -> String {
    let d = &v.description;
    let mut s = format!(
        "OK {} {}\nbundle id  {}\n",
        esc(&d.name),
        esc(&d.version),
        v.id
    );
    if c.whole_bundle {
        s.push_str(&format!(
            "checked    {} blob(s), {}, hashed against the signed manifests\n\
             \x20          {} pin(s) re-checked against the files carried\n\
             \x20          {} model file(s) scanned (weights, shard indexes, pickles)\n",
            c.blobs,
            size(c.bytes),
            c.pins,
            c.models
        ));
        if c.model_signatures > 0 {
            s.push_str(&format!(
                "\x20          {} model signature(s) (OpenSSF model-signing) verified again\n",
                c.model_signatures
            ));
        }
        if let Some(dc) = &c.delta {
            s.push_str(&format!(
                "delta      {} blob(s) ({}) provided by the base (receipt {})\n",
                dc.blobs,
                size(dc.bytes),
                dc.receipt
            ));
            match &dc.store {
                Some(st) => s.push_str(&format!(
                    "\x20          all present in store {}{}\n",
                    st.display(),
                    if dc.rehashed {
                        ", re-hashed"
                    } else {
                        "; models, structure and pins checked on its copies (--recheck re-hashes every one)"
                    }
                )),
                None => {
                    s.push_str(&format!(
                        "NOT CHECKED {} blob(s) the delta leaves out (pass --store to check them against a store){}:\n",
                        dc.unchecked.len(),
                        if dc.structure_checked {
                            ""
                        } else {
                            "; nor the OCI structure and pins, which need some of them"
                        }
                    ));
                    let holders = blob_holders(&v.description);
                    for dg in &dc.unchecked {
                        let what = crate::digest::Sha256Digest::parse_oci(dg)
                            .and_then(|x| holders.get(&crate::bundle::blob_path(&x)))
                            .map(|h| h.join("; "))
                            .unwrap_or_default();
                        s.push_str(&format!("  {dg}  {}\n", esc(&what)));
                    }
                }
            }
        }
    } else {
        s.push_str(
            "checked    this volume's pieces against the signed volume map only;\n\
             \x20          verify the whole set for blobs, pins and models\n",
        );
    }
    s.push_str(&format!(
        "\x20          {} custody event(s), chain intact\n",
        c.custody_events
    ));
    let roles: Vec<String> = v
        .signers
        .counted
        .iter()
        .map(|(r, n)| format!("{}: {}", esc(r), esc(&n.join(", "))))
        .collect();
    if !roles.is_empty() {
        s.push_str(&format!("roles      {}\n", roles.join("; ")));
    }
    s.push_str("signers:\n");
    for k in &v.signers.keys {
        s.push_str(&format!(
            "  {} (key {})\n      {}\n",
            esc(k.name.as_deref().unwrap_or("unknown signer")),
            k.key_id,
            esc(&k.status)
        ));
    }
    s.push_str("custody:\n");
    s.push_str(&render_custody(&v.custody, names));
    s.trim_end().to_string()
}

fn render_inspection(i: &crate::inspect::Inspection) -> String {
    let d = &i.description;
    let mut s = format!(
        "{} {}\nbundle id  {}\npath       {}\ncreated    {}\n",
        esc(&d.name),
        esc(&d.version),
        i.id,
        i.path.display(),
        esc(&d.created)
    );
    if let Some(desc) = &d.description {
        s.push_str(&format!("about      {}\n", esc(desc)));
    }
    s.push_str(&format!(
        "size       {} in {} blob(s)\n",
        size(d.total_size()),
        d.blob_count()
    ));
    if let Some(b) = &d.delta {
        s.push_str(&format!(
            "delta: {} blob(s) ({}) provided by the base\n    receipt {} from {} (key {}, {})\n",
            b.omitted,
            size(b.omitted_size),
            b.receipt.oci(),
            b.store_id
                .as_deref()
                .map_or("an import receipt".to_string(), |i| format!(
                    "store {}",
                    esc(i)
                )),
            esc(&b.store_key),
            esc(&b.time)
        ));
    }
    s.push_str("\nartifacts:\n");
    for a in &d.artifacts {
        if a.kind == crate::bundle::ArtifactKind::Image {
            let total: u64 = a.blobs.iter().map(|b| b.size).sum::<u64>() + a.manifest.size;
            s.push_str(&format!(
                "  Image {} ({}), {} blob(s), {}\n      {} {}\n      from {}\n",
                esc(&a.name),
                esc(&a.reference),
                a.blobs.len() + 1,
                size(total),
                if crate::image::is_index(&a.manifest.media_type) {
                    "index"
                } else {
                    "manifest"
                },
                a.manifest.digest.oci(),
                esc(a.source.as_deref().unwrap_or("(source not recorded)"))
            ));
            continue;
        }
        let total: u64 = a.layers.iter().map(|l| l.size).sum();
        s.push_str(&format!(
            "  {:?} {} ({}), {} file(s), {}\n",
            a.kind,
            esc(&a.name),
            esc(&a.reference),
            a.layers.len(),
            size(total),
        ));
        for l in &a.layers {
            s.push_str(&format!(
                "      {:>10}  {}  {}\n",
                size(l.size),
                out::short_digest(&l.digest.hex()),
                esc(l.path)
            ));
        }
    }
    s.push_str(&esc_lines(&crate::modelcheck::render(d)));
    s.push_str("\nsigners:\n");
    for sg in &i.signers {
        s.push_str(&format!(
            "  key {}  {}\n",
            esc(&sg.key_id),
            if sg.signature_ok {
                "signature intact (trust not checked: use verify)".to_string()
            } else {
                format!("BROKEN: {}", esc(sg.problem.as_deref().unwrap_or("")))
            }
        ));
    }
    s.push_str("\ncustody:\n");
    s.push_str(&render_custody(&i.custody, &BTreeMap::new()));
    s.trim_end().to_string()
}

fn render_custody(
    events: &[crate::custody::EventView],
    names: &BTreeMap<String, String>,
) -> String {
    let mut s = String::new();
    for e in events {
        match &e.record {
            Some(r) => {
                let who = match names.get(&r.signer) {
                    Some(n) => format!("{} (key {})", esc(n), esc(&r.signer)),
                    None => format!("key {}", esc(&r.signer)),
                };
                s.push_str(&format!(
                    "  {:>3} {:<12} {}  {}\n      by {}\n",
                    r.sequence,
                    esc(&r.event),
                    esc(&r.time),
                    if e.signature_ok && e.link_ok {
                        "[signature ok, link ok]".to_string()
                    } else {
                        format!("[BROKEN: {}]", esc(&e.problems.join("; ")))
                    },
                    who,
                ));
                if let Some(n) = &r.note {
                    s.push_str(&out::wrap(
                        &format!("      note: {}", esc(n)),
                        98,
                        "            ",
                    ));
                    s.push('\n');
                }
            }
            None => s.push_str(&format!(
                "  {}  [UNREADABLE: {}]\n",
                esc(&e.file),
                esc(&e.problems.join("; "))
            )),
        }
    }
    s.trim_end().to_string()
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| esc_path(p))
        .collect::<Vec<_>>()
        .join("\n           ")
}

/// Progress on stderr: indicatif bars when stderr is a terminal; otherwise
/// (CI logs) one plain line every few seconds. Multi-step work is labelled
/// `1/2 hashing`, `2/2 writing tar`.
struct Bar {
    state: std::sync::Mutex<BarState>,
    tty: bool,
    /// How often a plain progress line is printed when stderr is not a terminal.
    interval: Duration,
    /// Phases this command runs (for the `N/M` label); 1 means no label.
    steps: usize,
}

struct BarState {
    pb: Option<indicatif::ProgressBar>,
    step: usize,
    label: String,
    total: u64,
    done: u64,
    start: Instant,
    last_line: Instant,
}

impl Bar {
    fn new() -> Self {
        let interval = std::env::var("AIRLOCK_PROGRESS_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(5));
        let now = Instant::now();
        Bar {
            state: std::sync::Mutex::new(BarState {
                pb: None,
                step: 0,
                label: String::new(),
                total: 0,
                done: 0,
                start: now,
                last_line: now,
            }),
            tty: std::io::stderr().is_terminal(),
            interval,
            steps: 1,
        }
    }
}

impl Progress for Bar {
    fn begin(&self, phase: &str, total: u64) {
        let mut st = self.state.lock().expect("not poisoned");
        st.step += 1;
        st.label = crate::progress::label(phase, st.step, self.steps);
        st.total = total;
        st.done = 0;
        st.start = Instant::now();
        st.last_line = st.start;
        if !self.tty {
            return;
        }
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {calm_eta}",
            )
            .expect("valid template")
            .with_key(
                "calm_eta",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    if let Some(t) =
                        crate::progress::eta(s.elapsed(), s.pos(), s.len().unwrap_or(0))
                    {
                        let _ = write!(w, "{} left", crate::progress::duration(t));
                    }
                },
            )
            .progress_chars("=> "),
        );
        pb.set_message(st.label.clone());
        st.pb = Some(pb);
    }
    fn advance(&self, n: u64) {
        let mut st = self.state.lock().expect("not poisoned");
        st.done += n;
        if let Some(pb) = st.pb.as_ref() {
            pb.inc(n);
            return;
        }
        if self.tty || st.label.is_empty() {
            return;
        }
        let now = Instant::now();
        if now.duration_since(st.last_line) >= self.interval {
            st.last_line = now;
            eprint_line(&format!(
                "airlock: {}",
                crate::progress::line(&st.label, st.done, st.total, now - st.start)
            ));
        }
    }
    fn finish(&self) {
        let mut st = self.state.lock().expect("not poisoned");
        if let Some(pb) = st.pb.take() {
            pb.finish_and_clear();
        } else if !self.tty && !st.label.is_empty() {
            let elapsed = st.start.elapsed();
            // A phase that logged progress also logs its end.
            if st.last_line != st.start {
                eprint_line(&format!(
                    "airlock: {} done, {} in {}",
                    st.label,
                    size(st.done),
                    crate::progress::duration(elapsed)
                ));
            }
        }
        st.label.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command shows examples, and every option and argument says what it is.
    #[test]
    fn every_argument_is_described() {
        fn walk(c: &clap::Command, path: &str) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    a.get_help()
                        .is_some_and(|h| !h.to_string().trim().is_empty()),
                    "{path}: argument {id} has no description"
                );
            }
            for sub in c.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    walk(sub, &p);
                    continue;
                }
                assert!(
                    sub.get_after_help()
                        .is_some_and(|h| h.to_string().contains("Examples:\n  airlock ")),
                    "{p}: no examples in its help"
                );
                walk(sub, &p);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        walk(&cmd, "airlock");
    }
}
