//! The command line: argument parsing, printing and progress bars. The only
//! module that writes to stdout or stderr. Each command is a plain function
//! that returns what to print; `main` maps errors to the contract's exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::PrivateKey;
use crate::manifest::LoadedManifest;
use crate::pack::Format;
use crate::policy::TrustPolicy;
use crate::progress::Progress;
use crate::source::Form;
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "Carry software and AI models across an air gap: signed, content-addressed bundles with chain of custody"
)]
struct Cli {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 key pair: PATH.key (PKCS#8 PEM, 0600), PATH.pub (SPKI PEM),
    /// PATH.ssh (the same private key in OpenSSH form, 0600) and PATH.ssh.pub (OpenSSH).
    Keygen { path: PathBuf },
    /// Pack a manifest into a signed bundle.
    Pack {
        manifest: PathBuf,
        /// The builder's private key (PKCS#8 PEM or unencrypted OpenSSH).
        #[arg(long)]
        key: PathBuf,
        /// Directory the bundle is written into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "dir")]
        format: Format,
        /// Split into tar volumes no larger than SIZE (4.7GB, 25GB, 700MiB, or bytes; GB = 10^9, GiB = 2^30).
        #[arg(long, value_name = "SIZE", value_parser = parse_volume_size)]
        volume_size: Option<u64>,
        /// Every input must resolve (`..` and symbolic links included) below DIR; default: the manifest's `root:`, else its directory.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Show what a bundle holds without hashing its payload.
    Inspect { bundle: PathBuf },
    /// Verify a bundle fully against a trust policy.
    Verify {
        /// A bundle directory or tar; a folder of volumes; or one or more volume files.
        #[arg(required = true, num_args = 1..)]
        bundle: Vec<PathBuf>,
        #[arg(long)]
        trust: PathBuf,
    },
    /// Verify a bundle, then import it atomically into a store.
    Import {
        /// A bundle directory or tar; a folder of volumes; or all its volume files.
        #[arg(required = true, num_args = 1..)]
        bundle: Vec<PathBuf>,
        #[arg(long)]
        trust: PathBuf,
        #[arg(long)]
        store: PathBuf,
        /// Import even if a newer version of the bundle is already in the store (recorded in the ledger).
        #[arg(long)]
        allow_downgrade: bool,
        /// The high side's key: signs the `imported` custody event and the receipt.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Write a signed import receipt here, to carry back to the build side.
        #[arg(long)]
        receipt: Option<PathBuf>,
    },
    /// Add a co-signature; the bundle id does not change.
    Sign {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Signed, hash-chained custody events.
    #[command(subcommand)]
    Custody(CustodyCommand),
    /// Import receipts.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Write a bundle's content from the store in usable form.
    Export {
        #[arg(long)]
        store: PathBuf,
        /// NAME or NAME@VERSION (default: the newest version).
        #[arg(long)]
        bundle: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Push a bundle's images and artifacts to an OCI registry, digests unchanged.
    Push {
        #[arg(long)]
        store: PathBuf,
        /// NAME or NAME@VERSION (default: the newest version).
        #[arg(long)]
        bundle: String,
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
    Sbom {
        /// A bundle directory or tar, a folder of volumes, or a volume file.
        bundle: PathBuf,
        #[arg(long, value_enum)]
        format: crate::sbom::SbomFormat,
        /// Write the document to FILE instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The document exactly as stored in the bundle, which cannot contain the bundle id.
        #[arg(long)]
        stored: bool,
    },
}

#[derive(Subcommand)]
enum CustodyCommand {
    /// Append a signed event (e.g. scanned, transferred, received).
    Append {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        event: String,
        #[arg(long)]
        note: Option<String>,
        /// A trust policy whose `custodyEvents:` lists the event names allowed (default: packed, signed, imported, scanned, approved, transferred, received, released).
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// Show the chain: who, what, when, and whether each signature and link checks.
    Show {
        bundle: PathBuf,
        /// A trust policy: signers it lists are shown by their name in it.
        #[arg(long)]
        trust: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Check a receipt the high side signed, against a trust policy.
    Verify {
        receipt: PathBuf,
        #[arg(long)]
        trust: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// List imported bundles.
    Ls {
        #[arg(long)]
        store: PathBuf,
    },
    /// Show the ledger; with --verify, check its hash chain (exit 1 if broken).
    Log {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        verify: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let report = match &e {
                    Error::Verification(r) | Error::PackRefused(r) => serde_json::to_value(r).ok(),
                    _ => None,
                };
                println!(
                    "{}",
                    serde_json::json!({"error": e.to_string(), "exitCode": e.exit_code(), "findings": report.map(|r| r["findings"].clone())})
                );
            }
            eprintln!("airlock: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Loads a `--key` file, warning on stderr (as ssh does) when others can read it.
fn load_key(path: &std::path::Path) -> Result<PrivateKey> {
    let key = PrivateKey::load(path)?;
    if let Some(w) = crate::keys::exposure_warning(path) {
        eprintln!("airlock: warning: {w}");
    }
    Ok(key)
}

fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    let bar = Bar::new();
    match cli.command {
        Command::Keygen { path } => {
            let files = PrivateKey::generate()?.write_files(&path)?;
            emit(json, &files, || {
                format!(
                    "{}\nwrote {} and {} (private, keep secret), {}, {}",
                    files.id,
                    files.private_key.display(),
                    files.ssh_private_key.display(),
                    files.public_key.display(),
                    files.ssh_public_key.display()
                )
            })
        }
        Command::Pack {
            manifest,
            key,
            out,
            format,
            volume_size,
            root,
        } => {
            let m = LoadedManifest::load_with_root(&manifest, root.as_deref())?;
            let key = load_key(&key)?;
            let packed = crate::pack::pack(&m, &key, &out, format, volume_size, &bar)
                .map_err(Error::at_pack)?;
            emit(json, &packed, || {
                let mut s = format!(
                    "packed {} {}: {} artifact(s), {} blob(s), {} bytes\nid   {}\npath {}",
                    packed.name,
                    packed.version,
                    packed.artifacts,
                    packed.blobs,
                    packed.size,
                    packed.id,
                    packed.path.display()
                );
                for img in &packed.images {
                    s.push_str(&format!(
                        "\nimage {} = {} (from {})",
                        img.name, img.digest, img.source
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
            emit(json, &i, || render_inspection(&i))
        }
        Command::Verify { bundle, trust } => {
            let policy = TrustPolicy::load(&trust)?;
            let v = crate::verify::verify(&Form::open_all(&bundle)?, &policy, None, &bar)?;
            #[derive(Serialize)]
            struct Out<'a> {
                ok: bool,
                id: String,
                name: &'a str,
                version: &'a str,
                signers: &'a crate::policy::Signers,
                custody_events: usize,
            }
            let out = Out {
                ok: true,
                id: v.id.hex(),
                name: &v.description.name,
                version: &v.description.version,
                signers: &v.signers,
                custody_events: v.custody.len(),
            };
            emit(json, &out, || {
                let roles: Vec<String> = v
                    .signers
                    .counted
                    .iter()
                    .map(|(r, n)| format!("{r}: {}", n.join(", ")))
                    .collect();
                let mut s = format!(
                    "OK {} {}\nid       {}\nroles    {}\ncustody  {} event(s), chain intact\nsignatures:",
                    out.name,
                    out.version,
                    out.id,
                    roles.join("; "),
                    out.custody_events
                );
                for k in &v.signers.keys {
                    s.push_str(&format!(
                        "\n  {} {}: {}",
                        k.key_id,
                        k.name.as_deref().unwrap_or("(unknown)"),
                        k.status
                    ));
                }
                s
            })
        }
        Command::Import {
            bundle,
            trust,
            store,
            allow_downgrade,
            key,
            receipt,
        } => {
            let policy = TrustPolicy::load(&trust)?;
            let key = key.map(|k| load_key(&k)).transpose()?;
            let opts = crate::store::ImportOptions {
                allow_downgrade,
                key: key.as_ref(),
                receipt: receipt.clone(),
            };
            let done = Store::new(&store).import(&bundle, &policy, &opts, &bar)?;
            if let Some(r) = &receipt {
                eprintln!("receipt written to {}", r.display());
            }
            emit(json, &done, || {
                if done.already_present {
                    format!(
                        "{} {} ({}) is already in {}; nothing changed",
                        done.name,
                        done.version,
                        done.id,
                        store.display()
                    )
                } else {
                    format!(
                        "imported {} {} ({}) into {}: {} new blob(s)",
                        done.name,
                        done.version,
                        done.id,
                        store.display(),
                        done.blobs_written
                    )
                }
            })
        }
        Command::Export { store, bundle, to } => {
            let done = Store::new(&store).export(&bundle, &to, &bar)?;
            emit(json, &done, || {
                format!(
                    "exported {} {} to {}: {} file(s)",
                    done.name,
                    done.version,
                    done.to.display(),
                    done.files.len()
                )
            })
        }
        Command::Push {
            store,
            bundle,
            registry,
            insecure,
        } => {
            let done = crate::push::push(&Store::new(&store), &bundle, &registry, insecure, &bar)?;
            emit(json, &done, || {
                let mut s = format!(
                    "pushed {} {} to {}: {} blob(s) sent, {} already there",
                    done.name, done.version, done.registry, done.blobs_sent, done.blobs_present
                );
                for p in &done.pushed {
                    s.push_str(&format!("\n  {} = {}", p.reference, p.digest));
                }
                s
            })
        }
        Command::Sign { bundle, key } => {
            let key = load_key(&key)?;
            let done = crate::amend::sign(&bundle, &key)?;
            emit(json, &done, || {
                if done.wrote.is_empty() {
                    format!(
                        "key {} has already signed {}; nothing changed",
                        done.key_id, done.id
                    )
                } else {
                    format!(
                        "signed {} with key {}; wrote {}",
                        done.id,
                        done.key_id,
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
            emit(json, &done, || {
                format!(
                    "recorded {event} for {} by key {}; wrote {}",
                    done.id,
                    done.key_id,
                    list_paths(&done.wrote)
                )
            })
        }
        Command::Custody(CustodyCommand::Show { bundle, trust }) => {
            let policy = trust.as_deref().map(TrustPolicy::load).transpose()?;
            let shown = crate::amend::show_custody(&bundle, policy.as_ref())?;
            emit(json, &shown, || {
                let mut s = format!("custody of {}\n", shown.id);
                s.push_str(&render_custody(&shown.events));
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
                Err(Error::Verification({
                    let mut r = crate::error::Report::default();
                    for e in &shown.events {
                        for p in &e.problems {
                            r.add(&e.file, p);
                        }
                    }
                    r
                }))
            }
        }
        Command::Receipt(ReceiptCommand::Verify { receipt, trust }) => {
            let policy = TrustPolicy::load(&trust)?;
            let r = crate::receipt::verify(&receipt, &policy)?;
            emit(json, &r, || {
                format!(
                    "OK receipt: {} {} ({}) imported at {} by {} (key {}); the store holds {} blob(s) of it",
                    r.receipt.bundle,
                    r.receipt.version,
                    r.receipt.bundle_id,
                    r.receipt.time,
                    r.signer,
                    r.receipt.store_key,
                    r.receipt.blobs.len()
                )
            })
        }
        Command::Sbom {
            bundle,
            format,
            output,
            stored,
        } => {
            let doc = crate::sbom::document(&bundle, format, stored)?;
            let Some(out) = output else {
                // The document is itself one JSON object, with or without --json;
                // its bytes go out unchanged (`--stored | sha256sum` matches).
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&doc.bytes)?;
                stdout.flush()?;
                return Ok(());
            };
            fs_err::write(&out, &doc.bytes)?;
            let sha256 = crate::digest::Sha256Digest::of(&doc.bytes).hex();
            let summary = serde_json::json!({
                "path": out,
                "format": doc.format,
                "id": doc.id,
                "stored": doc.stored,
                "storedSha256": doc.stored_sha256,
                "sha256": sha256,
                "size": doc.bytes.len(),
            });
            emit(json, &summary, || {
                format!(
                    "wrote {} ({} SBOM of bundle {}, {}, {} bytes, sha256 {sha256})",
                    out.display(),
                    doc.format.label(),
                    doc.id,
                    if doc.stored {
                        "as stored"
                    } else {
                        "with the bundle id"
                    },
                    doc.bytes.len()
                )
            })
        }
        Command::Store(StoreCommand::Ls { store }) => {
            let list = Store::new(&store).list()?;
            emit(json, &serde_json::json!({ "bundles": list }), || {
                if list.is_empty() {
                    return "(store is empty)".to_string();
                }
                list.iter()
                    .map(|r| {
                        format!(
                            "{}\t{}\t{}\t{} artifact(s)\t{} bytes\timported {}",
                            r.name, r.version, r.id, r.artifacts, r.size, r.imported
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Store(StoreCommand::Log { store, verify }) => {
            let entries = Store::new(&store).log(verify)?;
            emit(
                json,
                &serde_json::json!({ "entries": entries, "verified": verify }),
                || {
                    let mut s: Vec<String> = entries
                        .iter()
                        .map(|e| format!("{:>4} {} {:<16} {}", e.seq, e.time, e.action, e.detail))
                        .collect();
                    if verify {
                        s.push(format!("ledger chain intact ({} entries)", entries.len()));
                    }
                    s.join("\n")
                },
            )
        }
    }
}

fn parse_volume_size(s: &str) -> std::result::Result<u64, String> {
    crate::volumes::parse_size(s)
}

fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(value).expect("serializable"));
    } else {
        println!("{}", text());
    }
    Ok(())
}

fn render_inspection(i: &crate::inspect::Inspection) -> String {
    let d = &i.description;
    let mut s = format!(
        "{} {}\nid       {}\npath     {}\ncreated  {}\n",
        d.name,
        d.version,
        i.id,
        i.path.display(),
        d.created
    );
    if let Some(desc) = &d.description {
        s.push_str(&format!("about    {desc}\n"));
    }
    s.push_str(&format!(
        "size     {} bytes in {} blob(s)\n\nartifacts:\n",
        d.total_size(),
        d.blobs().len()
    ));
    for a in &d.artifacts {
        if a.kind == crate::bundle::ArtifactKind::Image {
            let size: u64 = a.blobs.iter().map(|b| b.size).sum::<u64>() + a.manifest.size;
            s.push_str(&format!(
                "  Image {} ({}), {} blob(s), {} bytes, {} {}\n      from {}\n",
                a.name,
                a.reference,
                a.blobs.len() + 1,
                size,
                if crate::image::is_index(&a.manifest.media_type) {
                    "index"
                } else {
                    "manifest"
                },
                a.manifest.digest.oci(),
                a.source.as_deref().unwrap_or("(source not recorded)")
            ));
            continue;
        }
        let size: u64 = a.layers.iter().map(|l| l.size).sum();
        s.push_str(&format!(
            "  {:?} {} ({}), {} file(s), {} bytes, manifest {}\n",
            a.kind,
            a.name,
            a.reference,
            a.layers.len(),
            size,
            a.manifest.digest.oci()
        ));
        for l in &a.layers {
            s.push_str(&format!(
                "      {:>12}  {}  {}\n",
                l.size,
                l.digest.oci(),
                l.path
            ));
        }
    }
    s.push_str(&crate::modelcheck::render(d));
    s.push_str("\nsigners:\n");
    for sg in &i.signers {
        s.push_str(&format!(
            "  {}  {}\n",
            sg.key_id,
            if sg.signature_ok {
                "signature intact".to_string()
            } else {
                format!("BROKEN: {}", sg.problem.as_deref().unwrap_or(""))
            }
        ));
    }
    s.push_str("\ncustody:\n");
    s.push_str(&render_custody(&i.custody));
    s.trim_end().to_string()
}

fn render_custody(events: &[crate::custody::EventView]) -> String {
    let mut s = String::new();
    for e in events {
        match &e.record {
            Some(r) => s.push_str(&format!(
                "  {:>3} {:<12} {} by {}{}{}\n",
                r.sequence,
                r.event,
                r.time,
                e.signer_name.as_deref().unwrap_or(&r.signer),
                r.note
                    .as_ref()
                    .map(|n| format!(" — {n}"))
                    .unwrap_or_default(),
                if e.signature_ok && e.link_ok {
                    "  [signature ok, link ok]".to_string()
                } else {
                    format!("  [BROKEN: {}]", e.problems.join("; "))
                }
            )),
            None => s.push_str(&format!(
                "  {}  [UNREADABLE: {}]\n",
                e.file,
                e.problems.join("; ")
            )),
        }
    }
    s.trim_end().to_string()
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// indicatif progress bars on stderr, drawn only when stderr is a terminal.
struct Bar {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    enabled: bool,
}

impl Bar {
    fn new() -> Self {
        Bar {
            bar: std::sync::Mutex::new(None),
            enabled: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bar {
    fn begin(&self, phase: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_message(phase.to_string());
        *self.bar.lock().expect("not poisoned") = Some(pb);
    }
    fn advance(&self, n: u64) {
        if let Some(pb) = self.bar.lock().expect("not poisoned").as_ref() {
            pb.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(pb) = self.bar.lock().expect("not poisoned").take() {
            pb.finish_and_clear();
        }
    }
}
