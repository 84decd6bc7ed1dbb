//! HTTPS downloads on the build side (files a PEP 751 lock names that the
//! wheelhouse lacks). Only `https://` URLs, redirects included; rustls with
//! the system's CA store (so a site's own CA, installed the usual way, is
//! honoured); proxies from the usual environment variables. Each file is
//! streamed to disk and hashed as it arrives, never held in memory, and read
//! no further than its declared size (or `MAX_SIZE`). Failed connections and
//! server errors are retried a few times with backoff; a body that does not
//! hash to its pin is not retried: it is refused.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::digest::{copy_hashed, Sha256Digest};
use crate::error::{single, Error, Result};

/// Attempts per file (the first plus retries).
pub const ATTEMPTS: u32 = 3;
/// Wait before the first retry; doubled for each further one.
const BACKOFF: Duration = Duration::from_millis(500);
/// Files with no declared size are read up to this many bytes.
pub const MAX_SIZE: u64 = 8 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence while reading a response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking HTTPS client, shared across threads.
#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

/// One file to download, with what it must hash to.
#[derive(Debug, Clone)]
pub struct Download<'a> {
    /// Names the file in errors: `python[0] six==1.16.0`.
    pub subject: &'a str,
    pub url: &'a str,
    pub sha256: Sha256Digest,
    /// The size the lock declares, if any.
    pub size: Option<u64>,
}

/// True for URLs airlock downloads from: `https://` only.
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        && url.len() > 8
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    pub fn new() -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .https_only(true)
            .http_status_as_error(false)
            .max_redirects(10)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(READ_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Fetcher {
            agent: config.into(),
        }
    }

    /// Downloads `d.url` into `dest` (created or truncated), hashing while
    /// writing. Transport failures (after the retries) are usage errors (exit
    /// 2) naming the URL; a body whose size or sha256 is not what the lock
    /// pins is a verification error (exit 1) naming both digests. On any
    /// error `dest` is removed.
    pub fn download(&self, d: &Download, dest: &Path) -> Result<()> {
        let r = self.download_inner(d, dest);
        if r.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        r
    }

    fn download_inner(&self, d: &Download, dest: &Path) -> Result<()> {
        if !is_https(d.url) {
            return Err(single(
                d.subject,
                format!(
                    "{} is not an https:// URL; airlock downloads over HTTPS only",
                    d.url
                ),
            ));
        }
        let cap = d.size.unwrap_or(MAX_SIZE);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(BACKOFF * 2u32.pow(attempt - 1));
            }
            match self.attempt(d, dest, cap) {
                Ok(got) => return check(d, got),
                Err(Attempt::Fatal(e)) => {
                    last = e;
                    break;
                }
                Err(Attempt::Retry(e)) => last = e,
            }
        }
        Err(Error::Usage(format!(
            "{}: downloading {} failed: {last}; check the URL and the network (proxy settings come from HTTPS_PROXY), or put the file in the wheelhouse",
            d.subject, d.url
        )))
    }

    fn attempt(&self, d: &Download, dest: &Path, cap: u64) -> Result<Got, Attempt> {
        let mut resp = match self.agent.get(d.url).call() {
            Ok(r) => r,
            Err(e) => return Err(classify(e)),
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let e = format!("HTTP status {status}");
            return Err(if status == 408 || status == 429 || status >= 500 {
                Attempt::Retry(e)
            } else {
                Attempt::Fatal(e)
            });
        }
        if let Some(n) = resp.body().content_length() {
            if n > cap {
                return Ok(Got::TooLong(n));
            }
        }
        let mut file = fs_err::File::create(dest).map_err(|e| Attempt::Fatal(e.to_string()))?;
        // copy_hashed reads at most cap + 1 bytes: a longer body is seen
        // without reading it all.
        let mut body = resp
            .body_mut()
            .with_config()
            .limit(cap.saturating_add(1))
            .reader();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut file);
        let hashed = copy_hashed(&mut body as &mut dyn Read, &mut out, Some(cap), &|_| {})
            .map_err(|e| Attempt::Retry(format!("reading the response: {e}")))?;
        out.flush().map_err(|e| Attempt::Fatal(e.to_string()))?;
        drop(out);
        if hashed.size > cap {
            return Ok(Got::TooLong(hashed.size));
        }
        Ok(Got::Body(hashed.digest, hashed.size))
    }
}

enum Got {
    Body(Sha256Digest, u64),
    TooLong(u64),
}

enum Attempt {
    Retry(String),
    Fatal(String),
}

fn classify(e: ureq::Error) -> Attempt {
    match e {
        ureq::Error::RequireHttpsOnly(u) => {
            Attempt::Fatal(format!("redirected to {u}, which is not HTTPS"))
        }
        ureq::Error::TooManyRedirects => Attempt::Fatal("too many redirects".into()),
        ureq::Error::BadUri(u) => Attempt::Fatal(format!("not a valid URL ({u})")),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => Attempt::Fatal(format!("TLS failed: {e}")),
        e => Attempt::Retry(e.to_string()),
    }
}

fn check(d: &Download, got: Got) -> Result<()> {
    let (digest, size) = match got {
        Got::Body(digest, size) => (digest, size),
        Got::TooLong(n) => {
            return Err(single(
                d.subject,
                match d.size {
                    Some(s) => format!(
                        "{} sent at least {n} bytes but the lock declares size {s}; the file is not the one the lock pins (sha256 {})",
                        d.url, d.sha256
                    ),
                    None => format!(
                        "{} sent at least {n} bytes, more than airlock downloads ({MAX_SIZE}); download it into the wheelhouse instead",
                        d.url
                    ),
                },
            ))
        }
    };
    if let Some(s) = d.size {
        if s != size {
            return Err(single(
                d.subject,
                format!(
                    "{} sent {size} bytes (sha256 {digest}) but the lock declares size {s} and sha256 {}",
                    d.url, d.sha256
                ),
            ));
        }
    }
    if digest != d.sha256 {
        return Err(single(
            d.subject,
            format!(
                "{}: hash mismatch: the lock pins sha256 {} but the download has sha256 {digest}; the file changed or the lock is wrong",
                d.url, d.sha256
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https() {
        assert!(is_https("https://files.example/x.whl"));
        assert!(is_https("HTTPS://files.example/x.whl"));
        assert!(!is_https("http://files.example/x.whl"));
        assert!(!is_https("https://"));
        assert!(!is_https("file:///x.whl"));
        assert!(!is_https("ftp://x"));
    }

    #[test]
    fn refuses_plain_http_without_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.whl");
        let e = Fetcher::new()
            .download(
                &Download {
                    subject: "python[0] x==1",
                    url: "http://127.0.0.1:9/x.whl",
                    sha256: Sha256Digest::of(b""),
                    size: None,
                },
                &dest,
            )
            .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("https://"), "{e}");
        assert!(!dest.exists());
    }

    #[test]
    fn connection_failures_are_environment_errors_naming_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.whl");
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let e = Fetcher::new()
            .download(
                &Download {
                    subject: "python[0] x==1",
                    url: "https://127.0.0.1:1/x.whl",
                    sha256: Sha256Digest::of(b""),
                    size: None,
                },
                &dest,
            )
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("https://127.0.0.1:1/x.whl"), "{msg}");
        assert!(msg.contains("python[0] x==1"), "{msg}");
        assert!(!dest.exists());
    }

    #[test]
    fn size_and_digest_are_checked() {
        let d = Download {
            subject: "python[0] x==1",
            url: "https://h/x.whl",
            sha256: Sha256Digest::of(b"abc"),
            size: Some(3),
        };
        assert!(check(&d, Got::Body(Sha256Digest::of(b"abc"), 3)).is_ok());
        let e = check(&d, Got::Body(Sha256Digest::of(b"abd"), 3)).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        let msg = e.to_string();
        assert!(msg.contains(&Sha256Digest::of(b"abd").to_string()), "{msg}");
        assert!(msg.contains(&Sha256Digest::of(b"abc").to_string()), "{msg}");
        assert!(check(&d, Got::Body(Sha256Digest::of(b"abc"), 4)).is_err());
        assert_eq!(check(&d, Got::TooLong(9)).unwrap_err().exit_code(), 1);
    }
}
