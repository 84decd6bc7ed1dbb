//! The OCI distribution API, through `oci-client`. Its async runtime stays
//! inside this module: every call runs on a current-thread tokio runtime
//! created here, so the rest of airlock is plain blocking code. TLS is rustls
//! (ring); plain HTTP only for registries the caller marks insecure.
//!
//! Credentials come from the environment (`AIRLOCK_REGISTRY_USERNAME` and
//! `AIRLOCK_REGISTRY_PASSWORD`) or `~/.docker/config.json` (`$DOCKER_CONFIG`)
//! and are handed to the client only; they are never written anywhere.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::Digest as _;

use crate::digest::{Hashed, Sha256Digest};
use crate::error::{Error, Result};
use crate::image::{BlobSource, Desc, ACCEPTED, MT_DOCKER_LIST, MT_DOCKER_MANIFEST};

const ATTEMPTS: u32 = 3;
/// Blob downloads in flight at once.
const PARALLEL: usize = 4;
/// Most referrers `pack` carries for one image digest from a registry's
/// referrers API: a longer list is refused, not truncated.
pub const MAX_REFERRERS: usize = 1000;

/// Runs `f` up to `ATTEMPTS` times with backoff while it fails transiently.
async fn retry_async<T, F, Fut>(mut f: F) -> std::result::Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// State of a blob upload stream: the store file, hashed as it is read.
struct Upload {
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    hasher: sha2::Sha256,
    size: u64,
    /// The chunk read last, not yet sent.
    pending: Option<bytes::Bytes>,
    done: bool,
}

/// A connection to one repository of one registry.
pub struct Registry {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    reference: Reference,
    /// `HOST/REPO`, for messages.
    pub repo: String,
}

/// A network failure, named by what was being done and where.
fn net(what: &str, e: OciDistributionError) -> Error {
    Error::Usage(format!(
        "{what}: {}",
        match &e {
            OciDistributionError::RequestError(r) => {
                let mut s = r.to_string();
                let mut src = std::error::Error::source(r);
                while let Some(x) = src {
                    s.push_str(": ");
                    s.push_str(&x.to_string());
                    src = x.source();
                }
                s
            }
            _ => e.to_string(),
        }
    ))
}

fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            r.is_connect() || r.is_timeout() || r.status().is_some_and(|s| s.is_server_error())
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                oci_client::errors::OciErrorCode::ManifestUnknown
                    | oci_client::errors::OciErrorCode::BlobUnknown
                    | oci_client::errors::OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

impl Registry {
    /// Connects to the repository of `reference` (`HOST/REPO[:TAG][@DIGEST]`).
    pub fn open(reference: &str, insecure: bool) -> Result<Self> {
        let parsed: Reference = reference.parse().map_err(|e| {
            Error::Usage(format!(
                "{reference:?} is not an image reference such as registry.example/ml/infer:1.4.0: {e}"
            ))
        })?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = parsed.registry().to_string();
        let protocol = if insecure {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            // A blob is uploaded as one streamed PUT of known length.
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the network runtime: {e}")))?;
        let auth = credentials(&registry);
        Ok(Registry {
            rt,
            client,
            auth,
            repo: format!("{}/{}", parsed.registry(), parsed.repository()),
            reference: parsed,
        })
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Runs `f` up to three times with backoff while it fails transiently.
    fn retry<T, F, Fut>(&self, f: F) -> std::result::Result<T, OciDistributionError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        self.rt.block_on(retry_async(f))
    }

    /// Streams blob `d` into `out` while hashing it; reads at most
    /// `d.size + 1` bytes. The request is retried only before the first
    /// byte is written.
    async fn pull_into(&self, d: &Desc, out: &mut dyn Write) -> Result<Hashed> {
        let desc = OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.oci(),
            size: d.size as i64,
            ..Default::default()
        };
        let what = format!("cannot pull blob {} from {}", d.digest.oci(), self.repo);
        let stream = retry_async(|| self.client.pull_blob_stream(&self.reference, &desc))
            .await
            .map_err(|e| net(&what, e))?;
        let mut stream = stream.stream;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Usage(format!("{what}: {e}")))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
            out.write_all(&chunk)?;
            if size > d.size {
                break;
            }
        }
        let digest: [u8; 32] = hasher.finalize().into();
        Ok(Hashed {
            digest: Sha256Digest::of_raw(digest),
            size,
        })
    }

    /// Fetches the manifest or index `reference` names (its tag or digest)
    /// and returns its bytes, its sha256 and its media type.
    pub fn manifest(&self, reference: &Reference) -> Result<Option<(Vec<u8>, Desc)>> {
        let res = self.retry(|| {
            self.client
                .pull_manifest_raw(reference, &self.auth, ACCEPTED)
        });
        let bytes = match res {
            Ok((bytes, _)) => bytes.to_vec(),
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(net(
                    &format!("cannot fetch the manifest of {}", reference.whole()),
                    e,
                ))
            }
        };
        let media_type = media_type_of(&bytes).ok_or_else(|| {
            Error::Usage(format!(
                "{}: the registry answered with something that is not a schema 2 manifest or index",
                reference.whole()
            ))
        })?;
        let desc = Desc {
            media_type,
            digest: Sha256Digest::of(&bytes),
            size: bytes.len() as u64,
            platform: None,
        };
        Ok(Some((bytes, desc)))
    }

    /// Does the repository hold blob `d`?
    pub fn has_blob(&self, d: &Sha256Digest) -> Result<bool> {
        let digest = d.oci();
        self.retry(|| self.client.blob_exists(&self.reference, &digest))
            .map_err(|e| net(&format!("cannot ask {} for blob {}", self.repo, d.oci()), e))
    }

    /// Uploads blob `d` as read from `open` (called again for each retry;
    /// streamed, never held in memory). `shown` names its source in messages.
    pub fn push_blob(
        &self,
        open: &dyn Fn() -> std::io::Result<Box<dyn Read + Send>>,
        shown: &str,
        d: &Sha256Digest,
        size: u64,
    ) -> Result<()> {
        let what = format!("cannot push blob {} to {}", d.oci(), self.repo);
        self.client_auth(RegistryOperation::Push, &what)?;
        // Hashed as it is sent (one read of the store file); bytes that do
        // not match the digest end the upload with an error before the
        // registry can finish it, and are reported as a corrupt store blob.
        let corrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let expected = *d;
        let res = self.retry(|| {
            let file = open();
            let corrupt = corrupt.clone();
            async move {
                let file = file?;
                let state = Upload {
                    file,
                    buf: vec![0u8; crate::digest::COPY_BUFFER],
                    hasher: sha2::Sha256::new(),
                    size: 0,
                    pending: None,
                    done: false,
                };
                // One chunk is held back until the next is read: the last
                // is sent only once the whole file hashed to the digest, so
                // a corrupt blob ends the upload short, never complete.
                let stream = futures_util::stream::unfold(state, move |mut st| {
                    let corrupt = corrupt.clone();
                    async move {
                        loop {
                            if st.done {
                                return None;
                            }
                            match st.file.read(&mut st.buf) {
                                Ok(0) => {
                                    st.done = true;
                                    let got: [u8; 32] = st.hasher.clone().finalize().into();
                                    if Sha256Digest::of_raw(got) != expected || st.size != size {
                                        corrupt.store(true, std::sync::atomic::Ordering::SeqCst);
                                        let e = OciDistributionError::GenericError(Some(
                                            "store blob does not match its digest".into(),
                                        ));
                                        return Some((Err(e), st));
                                    }
                                    return st.pending.take().map(|c| (Ok(c), st));
                                }
                                Ok(n) => {
                                    st.hasher.update(&st.buf[..n]);
                                    st.size += n as u64;
                                    let chunk = bytes::Bytes::copy_from_slice(&st.buf[..n]);
                                    if let Some(prev) = st.pending.replace(chunk) {
                                        return Some((Ok(prev), st));
                                    }
                                }
                                Err(e) => {
                                    st.done = true;
                                    return Some((Err(OciDistributionError::IoError(e)), st));
                                }
                            }
                        }
                    }
                });
                self.client
                    .push_blob_stream(&self.reference, stream, &d.oci(), Some(size))
                    .await
            }
        });
        match res {
            Ok(_) => Ok(()),
            Err(_) if corrupt.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(crate::error::single(
                    shown,
                    format!(
                        "store blob is corrupt: its bytes do not hash to {} ({size} bytes); nothing was pushed for it",
                        d.oci()
                    ),
                ))
            }
            Err(e) => Err(net(&what, e)),
        }
    }

    /// Uploads a manifest or index under `reference` (a tag or its digest).
    pub fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<()> {
        let what = format!("cannot push manifest to {}", reference.whole());
        self.client_auth(RegistryOperation::Push, &what)?;
        let ct = http::HeaderValue::from_str(media_type)
            .map_err(|e| Error::Usage(format!("{what}: media type {media_type:?}: {e}")))?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.retry(|| {
            self.client
                .push_manifest_raw(reference, body.clone(), ct.clone())
        })
        .map(|_| ())
        .map_err(|e| net(&what, e))
    }

    /// Uploads `bytes` (a small blob made in memory) unless the repository
    /// already has it. Returns whether it was sent.
    pub fn push_bytes(&self, bytes: &[u8], shown: &str) -> Result<bool> {
        let d = Sha256Digest::of(bytes);
        if self.has_blob(&d)? {
            return Ok(false);
        }
        let owned = bytes.to_vec();
        let open = move || -> std::io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(owned.clone())))
        };
        self.push_blob(&open, shown, &d, bytes.len() as u64)?;
        Ok(true)
    }

    /// The manifests the registry lists as referrers of `subject` in this
    /// repository: from its referrers API (`/v2/<name>/referrers/<digest>`),
    /// or, where it has none (404, as Debian's registry 2.8), from the
    /// referrers tag schema's fallback index (tag `sha256-<hex>`). `None`
    /// when neither can be read.
    pub fn referrers(&self, subject: &Sha256Digest) -> Option<Vec<Sha256Digest>> {
        let r = self.by_digest(subject);
        let what = format!("referrers of {}", r.whole());
        self.client_auth(RegistryOperation::Pull, &what).ok()?;
        let index = self.retry(|| self.client.pull_referrers(&r, None)).ok()?;
        Some(
            index
                .manifests
                .iter()
                .filter_map(|m| Sha256Digest::parse_oci(&m.digest))
                .collect(),
        )
    }

    /// The manifests the registry's referrers API
    /// (`GET /v2/<name>/referrers/<digest>`, distribution spec 1.1) lists as
    /// referrers of `subject`, for `pack`. Where the registry has no such
    /// API (it answers 404), oci-client reads the referrers tag schema's
    /// fallback index instead (tag `sha256-<hex>`), which `pack` carries by
    /// its tag anyway; a fallback tag holding something other than an index
    /// lists nothing here. Any other failure, an answer that does not parse
    /// as an image index, an entry whose digest is not sha256, or more than
    /// [`MAX_REFERRERS`] entries (in either list) is an error naming the
    /// registry and subject. Only the first page of an answer is read: oci-client 0.18
    /// does not follow the `Link` header of a paginated answer.
    ///
    /// `image_at_fallback`: the caller found an image manifest, not an
    /// index, under the fallback tag; oci-client's fallback then reports a
    /// spec violation, which here means "no API, nothing listed".
    pub fn listed_referrers(
        &self,
        subject: &Sha256Digest,
        image_at_fallback: bool,
    ) -> Result<Vec<Sha256Digest>> {
        let r = self.by_digest(subject);
        let what = format!("cannot list the referrers of {}", r.whole());
        self.client_auth(RegistryOperation::Pull, &what)?;
        let index = match self.retry(|| self.client.pull_referrers(&r, None)) {
            Ok(index) => index,
            // oci-client's fallback after a 404 found the image manifest the
            // caller saw under `sha256-<hex>`, not an index: there is no
            // API, and the tag is carried as whatever it holds.
            Err(OciDistributionError::SpecViolationError(_)) if image_at_fallback => {
                return Ok(Vec::new())
            }
            Err(OciDistributionError::ManifestParsingError(e)) => {
                return Err(Error::Usage(format!(
                    "{what}: the registry's referrers API answered with something that is not an OCI image index ({e})"
                )))
            }
            Err(e) => return Err(net(&what, e)),
        };
        if index.manifests.len() > MAX_REFERRERS {
            return Err(Error::Refused(format!(
                "{what}: the registry lists {} referrers; airlock carries at most {MAX_REFERRERS} per image. \
                 Remove stale referrers at the source, or pack from a registry that lists fewer",
                index.manifests.len()
            )));
        }
        index
            .manifests
            .iter()
            .map(|m| {
                Sha256Digest::parse_oci(&m.digest).ok_or_else(|| {
                    Error::Usage(format!(
                        "{what}: the registry lists a referrer {:?}, which is not a sha256 digest",
                        m.digest
                    ))
                })
            })
            .collect()
    }

    fn client_auth(&self, op: RegistryOperation, what: &str) -> Result<()> {
        self.retry(|| self.client.auth(&self.reference, &self.auth, op))
            .map(|_| ())
            .map_err(|e| net(what, e))
    }

    /// A reference in this repository by digest.
    pub fn by_digest(&self, d: &Sha256Digest) -> Reference {
        Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            d.oci(),
        )
    }

    /// A reference in this repository by tag.
    pub fn by_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            tag.to_string(),
        )
    }
}

/// The media type a manifest or index declares, or infers from its shape.
fn media_type_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    if v.get("manifests").is_some() {
        Some(crate::bundle::MT_INDEX.to_string())
    } else if v.get("config").is_some() {
        Some(crate::bundle::MT_MANIFEST.to_string())
    } else {
        None
    }
    .filter(|m| ACCEPTED.contains(&m.as_str()) || m == MT_DOCKER_LIST || m == MT_DOCKER_MANIFEST)
}

/// Blobs of one repository, pulled as a build-side image source.
impl BlobSource for Registry {
    fn copy(&mut self, d: &Desc, out: &mut dyn Write) -> Result<Hashed> {
        self.rt.block_on(self.pull_into(d, out))
    }
    /// Several blobs at once (up to `PARALLEL` downloads in flight), each
    /// streamed into its own file while hashed.
    fn copy_to_files(&mut self, jobs: &[(Desc, std::path::PathBuf)]) -> Result<Vec<Hashed>> {
        let this = &*self;
        let tasks = jobs.iter().map(|(d, path)| async move {
            let file = fs_err::File::create(path)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let h = this.pull_into(d, &mut out).await?;
            out.into_inner()
                .map_err(|e| Error::Io(e.into_error()))?
                .sync_all()?;
            Ok::<Hashed, Error>(h)
        });
        this.rt.block_on(async {
            futures_util::stream::iter(tasks)
                .buffered(PARALLEL)
                .collect::<Vec<Result<Hashed>>>()
                .await
                .into_iter()
                .collect()
        })
    }
    fn copy_manifest(&mut self, d: &Desc, out: &mut Vec<u8>) -> Result<Hashed> {
        let r = self.by_digest(&d.digest);
        let (bytes, _) = self.manifest(&r)?.ok_or_else(|| {
            crate::error::single(
                self.describe(d),
                "the registry does not have this manifest, which the image references",
            )
        })?;
        out.extend_from_slice(&bytes);
        Ok(Hashed {
            digest: Sha256Digest::of(&bytes),
            size: bytes.len() as u64,
        })
    }
    fn describe(&self, d: &Desc) -> String {
        format!("{}@{}", self.repo, d.digest.oci())
    }
}

/// Credentials for `registry`: the environment first, then the Docker
/// config's `auths` (`auth` = base64 of `user:password`).
fn credentials(registry: &str) -> RegistryAuth {
    if let (Ok(u), Ok(p)) = (
        std::env::var("AIRLOCK_REGISTRY_USERNAME"),
        std::env::var("AIRLOCK_REGISTRY_PASSWORD"),
    ) {
        return RegistryAuth::Basic(u, p);
    }
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    let Some(dir) = dir else {
        return RegistryAuth::Anonymous;
    };
    let Ok(bytes) = std::fs::read(dir.join("config.json")) else {
        return RegistryAuth::Anonymous;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return RegistryAuth::Anonymous;
    };
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return RegistryAuth::Anonymous;
    };
    let keys = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
    ];
    let docker_hub = matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    );
    for (k, entry) in auths {
        let hit = keys.contains(k)
            || docker_hub && k.contains("index.docker.io")
            || k.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                == registry;
        if !hit {
            continue;
        }
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
            use base64::Engine as _;
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(auth) {
                if let Ok(s) = String::from_utf8(raw) {
                    if let Some((u, p)) = s.split_once(':') {
                        return RegistryAuth::Basic(u.to_string(), p.to_string());
                    }
                }
            }
        }
    }
    RegistryAuth::Anonymous
}
