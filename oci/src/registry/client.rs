//! The registry HTTP client: manifests, blobs, uploads, with authentication and retries.
//!
//! Main types: [`Client`] (one per command; it caches tokens per registry and scope),
//! [`ClientOptions`], [`FetchedManifest`], [`BlobStream`] and [`UploadMode`].
//!
//! Key decisions:
//! - Every byte read from a registry is checked: manifests against the digest asked for
//!   (and the registry's `Docker-Content-Digest`), blobs against their descriptor's digest
//!   and size while they stream ([`BlobStream`] fails on the last chunk, before the caller
//!   commits anything, and as soon as a blob grows past its size).
//! - Blobs stream: downloads hand out chunks as they arrive, uploads read from a file; no
//!   layer is ever held in memory (a chunked upload holds one chunk).
//! - Authentication is lazy: a request goes out with what is known for its registry and
//!   scope; a 401 names the scheme (Basic, or Bearer with a token realm), credentials are
//!   looked up then (see [`super::auth`]), and the request is rebuilt and sent again.
//!   Requests are built by closures so bodies can be made afresh for that second send.
//! - Plain http only for loopback registries and `--insecure-registry` hosts.
//! - Transient failures (connection errors, 429, 5xx) are retried with exponential backoff;
//!   a broken upload is restarted from a new upload session.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::auth::{Challenge, Credentials, DockerConfig};
use super::reference::Reference;
use super::RegistryError;
use crate::digest::{Digest, Hasher};
use crate::manifest::{Descriptor, ImageManifest, ManifestDocument};
use crate::media_type;

/// Largest manifest or index accepted (containerd's limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest image config read into memory.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// What a manifest request accepts, most specific first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// How blobs are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// One `PUT` with the whole blob as its body (streamed from the file).
    #[default]
    Monolithic,
    /// `PATCH` requests of at most this many bytes, then a closing `PUT`.
    Chunked(u64),
}

/// How a [`Client`] behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registry hosts (`host:port`) spoken to over plain http besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// The Docker config to read credentials from (`None`: `$DOCKER_CONFIG` or `~/.docker`).
    pub docker_config: Option<PathBuf>,
    /// How many times a transient failure is retried.
    pub retries: u32,
    /// First backoff delay; doubled on every retry.
    pub backoff: Duration,
    /// How blobs are uploaded.
    pub upload: UploadMode,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            docker_config: None,
            retries: 3,
            backoff: Duration::from_millis(200),
            upload: UploadMode::Monolithic,
        }
    }
}

/// A manifest or index as fetched: its bytes (verified) and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// Media type (from `Content-Type`, or the document's `mediaType`).
    pub media_type: String,
    /// Digest of the bytes.
    pub digest: Digest,
    /// The bytes, exactly as served.
    pub bytes: Vec<u8>,
}

impl FetchedManifest {
    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest,
            self.bytes.len() as u64,
        )
    }
}

/// An image resolved to a single-platform manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The index or manifest list the reference named, if it named one (the outermost).
    pub index: Option<FetchedManifest>,
    /// The chosen manifest.
    pub manifest: FetchedManifest,
    /// The manifest, parsed.
    pub parsed: ImageManifest,
}

/// Per-registry authentication state.
#[derive(Debug, Default)]
struct AuthState {
    /// The last challenge each registry host sent.
    challenges: HashMap<String, Challenge>,
    /// Bearer tokens by (host, scopes).
    tokens: HashMap<(String, String), String>,
    /// Credentials looked up so far, by registry (`None`: none configured).
    credentials: HashMap<String, Option<Credentials>>,
}

/// A registry client (see the module docs).
#[derive(Debug)]
pub struct Client {
    /// Made on first use: building it loads the system's root certificates, which a build
    /// that never talks to a registry should not pay for.
    http: std::sync::OnceLock<reqwest::Client>,
    options: ClientOptions,
    auth: Mutex<AuthState>,
}

#[derive(Debug, Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorReply {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Debug, Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The scope of pulling from `r`'s repository.
fn pull_scope(r: &Reference) -> String {
    format!("repository:{}:pull", r.repository)
}

/// The scope of pushing to `r`'s repository.
fn push_scope(r: &Reference) -> String {
    format!("repository:{}:pull,push", r.repository)
}

impl Client {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Client, RegistryError> {
        Ok(Client {
            http: std::sync::OnceLock::new(),
            options,
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The HTTP client, built on first use.
    fn http(&self) -> Result<&reqwest::Client, RegistryError> {
        if let Some(http) = self.http.get() {
            return Ok(http);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| RegistryError::Setup {
                source: Box::new(source),
            })?;
        Ok(self.http.get_or_init(|| http))
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn scheme(&self, r: &Reference) -> &'static str {
        if r.is_loopback()
            || self
                .options
                .insecure_registries
                .iter()
                .any(|h| h == &r.registry || h == r.api_host())
        {
            "http"
        } else {
            "https"
        }
    }

    /// `scheme://host/v2/<repository>/<tail>`.
    fn url(&self, r: &Reference, tail: &str) -> Result<Url, RegistryError> {
        let text = format!(
            "{}://{}/v2/{}/{tail}",
            self.scheme(r),
            r.api_host(),
            r.repository
        );
        Url::parse(&text).map_err(|e| RegistryError::Url {
            url: text,
            reason: e.to_string(),
        })
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(found) = self.auth.lock().unwrap().credentials.get(registry) {
            return Ok(found.clone());
        }
        let config = match &self.options.docker_config {
            Some(path) => DockerConfig::load(path)?,
            None => DockerConfig::load_default()?,
        };
        let found = config.credentials(registry)?;
        self.auth
            .lock()
            .unwrap()
            .credentials
            .insert(registry.to_owned(), found.clone());
        Ok(found)
    }

    /// The `Authorization` value known for `r`'s registry and `scopes`, if any.
    fn authorization(&self, r: &Reference, scopes: &str) -> Result<Option<String>, RegistryError> {
        let challenge = {
            let state = self.auth.lock().unwrap();
            if let Some(token) = state
                .tokens
                .get(&(r.api_host().to_owned(), scopes.to_owned()))
            {
                return Ok(Some(format!("Bearer {token}")));
            }
            state.challenges.get(r.api_host()).cloned()
        };
        match challenge {
            Some(Challenge::Basic) => Ok(self.credentials(&r.registry)?.and_then(|c| match c {
                Credentials::Basic { username, password } => {
                    Some(basic_header(&username, &password))
                }
                Credentials::IdentityToken(_) => None,
            })),
            _ => Ok(None),
        }
    }

    /// Answers `challenge` for `scopes`: fetches a Bearer token (Basic needs nothing more).
    async fn authenticate(
        &self,
        r: &Reference,
        scopes: &str,
        challenge: Challenge,
    ) -> Result<(), RegistryError> {
        self.auth
            .lock()
            .unwrap()
            .challenges
            .insert(r.api_host().to_owned(), challenge.clone());
        let Challenge::Bearer {
            realm,
            service,
            scope: _,
        } = challenge
        else {
            if self.credentials(&r.registry)?.is_none() {
                return Err(RegistryError::Unauthorized {
                    registry: r.registry.clone(),
                    reason: "the registry requires a login and no credentials are configured"
                        .into(),
                });
            }
            return Ok(());
        };
        let mut url = Url::parse(&realm).map_err(|e| RegistryError::Url {
            url: realm.clone(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "https"
            && !super::reference::is_loopback_host(url.host_str().unwrap_or(""))
            && self.scheme(r) == "https"
        {
            return Err(RegistryError::Unauthorized {
                registry: r.registry.clone(),
                reason: format!("token realm {realm} is not https"),
            });
        }
        let credentials = self.credentials(&r.registry)?;
        let mut attempt = 0;
        let reply = loop {
            let request = match &credentials {
                Some(Credentials::IdentityToken(token)) => {
                    // OAuth2 refresh-token grant, as the Docker CLI does for identity tokens.
                    let mut form = Url::parse("http://form/").expect("static url");
                    {
                        let mut pairs = form.query_pairs_mut();
                        pairs
                            .append_pair("grant_type", "refresh_token")
                            .append_pair("refresh_token", token)
                            .append_pair("client_id", "strata");
                        if let Some(service) = &service {
                            pairs.append_pair("service", service);
                        }
                        pairs.append_pair("scope", scopes);
                    }
                    self.http()?
                        .post(url.clone())
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.query().unwrap_or_default().to_owned())
                }
                other => {
                    {
                        let mut pairs = url.query_pairs_mut();
                        pairs.clear();
                        if let Some(service) = &service {
                            pairs.append_pair("service", service);
                        }
                        for scope in scopes.split(' ') {
                            pairs.append_pair("scope", scope);
                        }
                    }
                    let request = self.http()?.get(url.clone());
                    match other {
                        Some(Credentials::Basic { username, password }) => {
                            request.basic_auth(username, Some(password))
                        }
                        _ => request,
                    }
                }
            };
            match request.send().await {
                Ok(reply) if is_transient(reply.status()) && attempt < self.options.retries => {}
                Ok(reply) => break reply,
                Err(e) if attempt < self.options.retries && is_transient_error(&e) => {}
                Err(source) => {
                    return Err(RegistryError::Http {
                        method: "GET",
                        url: realm,
                        source: Box::new(source),
                    })
                }
            }
            self.backoff(attempt).await;
            attempt += 1;
        };
        let status = reply.status();
        if !status.is_success() {
            let detail = error_detail(reply).await;
            let reason = if credentials.is_some() {
                format!("token server {realm} refused the credentials ({status}{detail})")
            } else {
                format!("token server {realm} refused anonymous access ({status}{detail}); log in or configure credentials in the docker config")
            };
            return Err(RegistryError::Unauthorized {
                registry: r.registry.clone(),
                reason,
            });
        }
        let body = read_limited(reply, 1 << 20, &realm).await?;
        let token: TokenReply =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Unauthorized {
                registry: r.registry.clone(),
                reason: format!("invalid token reply from {realm}: {e}"),
            })?;
        let Some(token) = token.token.or(token.access_token).filter(|t| !t.is_empty()) else {
            return Err(RegistryError::Unauthorized {
                registry: r.registry.clone(),
                reason: format!("token server {realm} returned no token"),
            });
        };
        self.auth
            .lock()
            .unwrap()
            .tokens
            .insert((r.api_host().to_owned(), scopes.to_owned()), token);
        Ok(())
    }

    async fn backoff(&self, attempt: u32) {
        let delay = self.options.backoff.saturating_mul(1 << attempt.min(6));
        tokio::time::sleep(delay).await;
    }

    /// Sends the request `build` makes, with authentication and retries (see the module
    /// docs). `build` is called again for every send.
    async fn send(
        &self,
        r: &Reference,
        scopes: &str,
        method: &'static str,
        build: impl Fn(&reqwest::Client) -> Result<RequestBuilder, RegistryError>,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            let mut request = build(self.http()?)?;
            if let Some(value) = self.authorization(r, scopes)? {
                request = request.header(AUTHORIZATION, value);
            }
            let request = request.build().map_err(|source| RegistryError::Http {
                method,
                url: r.to_string(),
                source: Box::new(source),
            })?;
            let url = request.url().to_string();
            match self.http()?.execute(request).await {
                Ok(reply) if reply.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    authenticated = true;
                    let challenge = reply
                        .headers()
                        .get_all(reqwest::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(Challenge::parse);
                    let Some(challenge) = challenge else {
                        return Err(RegistryError::Unauthorized {
                            registry: r.registry.clone(),
                            reason: format!("{method} {url}: 401 without a usable challenge"),
                        });
                    };
                    // A token for these scopes was refused: drop it and ask again.
                    self.auth
                        .lock()
                        .unwrap()
                        .tokens
                        .remove(&(r.api_host().to_owned(), scopes.to_owned()));
                    self.authenticate(r, scopes, challenge).await?;
                    continue;
                }
                Ok(reply) if reply.status() == StatusCode::UNAUTHORIZED => {
                    let detail = error_detail(reply).await;
                    return Err(RegistryError::Unauthorized {
                        registry: r.registry.clone(),
                        reason: format!("{method} {url} was refused{detail}; check the credentials in the docker config"),
                    });
                }
                Ok(reply) if is_transient(reply.status()) && attempt < self.options.retries => {}
                Ok(reply) => return Ok(reply),
                Err(e) if attempt < self.options.retries && is_transient_error(&e) => {}
                Err(source) => {
                    return Err(RegistryError::Http {
                        method,
                        url,
                        source: Box::new(source),
                    })
                }
            }
            self.backoff(attempt).await;
            attempt += 1;
        }
    }

    /// Fetches the manifest or index `r` names (by digest if it has one, else by tag) and
    /// verifies it.
    pub async fn fetch_manifest(&self, r: &Reference) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(r, &format!("manifests/{}", r.manifest_reference()))?;
        let scopes = pull_scope(r);
        let reply = self
            .send(r, &scopes, "GET", |http| {
                Ok(http.get(url.clone()).header(ACCEPT, MANIFEST_ACCEPT))
            })
            .await?;
        let reply = expect(reply, "GET", &url, &[StatusCode::OK], || {
            format!("manifest {r}")
        })
        .await?;
        let header_digest = header_str(reply.headers(), "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok());
        let content_type = header_str(reply.headers(), CONTENT_TYPE.as_str())
            .map(|t| t.split(';').next().unwrap_or("").trim().to_owned());
        let bytes = read_limited(reply, MAX_MANIFEST_SIZE, url.as_str()).await?;
        let digest = Digest::of(&bytes);
        let expected = r.digest.or(header_digest);
        if let Some(expected) = expected {
            if expected != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {r}"),
                    expected,
                    actual: digest,
                });
            }
        }
        let media_type = match content_type {
            Some(t) if media_type::is_manifest(&t) || media_type::is_index(&t) => t,
            _ => sniff_media_type(&bytes).ok_or_else(|| RegistryError::UnsupportedManifest {
                reference: r.to_string(),
                media_type: header_str_owned(&bytes),
            })?,
        };
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Resolves `r` to one image manifest: an index is followed through the entry `choose`
    /// picks (platform selection is the caller's), up to a few levels deep.
    pub async fn resolve_image(
        &self,
        r: &Reference,
        choose: impl Fn(&[Descriptor]) -> Result<Descriptor, RegistryError>,
    ) -> Result<ResolvedImage, RegistryError> {
        let mut fetched = self.fetch_manifest(r).await?;
        let mut index = None;
        for _ in 0..4 {
            match ManifestDocument::from_json(&fetched.media_type, &fetched.bytes).map_err(
                |source| RegistryError::InvalidManifest {
                    reference: r.with_digest(fetched.digest).to_string(),
                    source: Box::new(source),
                },
            )? {
                ManifestDocument::Manifest(manifest) => {
                    return Ok(ResolvedImage {
                        index,
                        manifest: fetched,
                        parsed: *manifest,
                    })
                }
                ManifestDocument::Index(list) => {
                    let child = choose(&list.manifests)?;
                    let next = self.fetch_manifest(&r.with_digest(child.digest)).await?;
                    index.get_or_insert(fetched);
                    fetched = next;
                }
            }
        }
        Err(RegistryError::UnsupportedManifest {
            reference: r.to_string(),
            media_type: "indexes nested too deeply".into(),
        })
    }

    /// Fetches a small blob (an image config) into memory, verified.
    pub async fn fetch_blob_bytes(
        &self,
        r: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        if descriptor.size > MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                what: format!("blob {}", descriptor.digest),
                limit: MAX_CONFIG_SIZE,
            });
        }
        let mut stream = self.open_blob(r, descriptor).await?;
        let mut out = Vec::with_capacity(descriptor.size as usize);
        while let Some(chunk) = stream.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Starts downloading a blob; its chunks are verified as they come (see [`BlobStream`]).
    pub async fn open_blob(
        &self,
        r: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobStream, RegistryError> {
        let url = self.url(r, &format!("blobs/{}", descriptor.digest))?;
        let reply = self
            .send(r, &pull_scope(r), "GET", |http| Ok(http.get(url.clone())))
            .await?;
        let reply = expect(reply, "GET", &url, &[StatusCode::OK], || {
            format!("blob {} in {}", descriptor.digest, r.name())
        })
        .await?;
        if let Some(length) = reply.content_length() {
            if length != descriptor.size {
                return Err(RegistryError::SizeMismatch {
                    digest: descriptor.digest,
                    expected: descriptor.size,
                    actual: length,
                });
            }
        }
        Ok(BlobStream {
            reply,
            url: url.to_string(),
            hasher: Hasher::new(),
            expected: descriptor.digest,
            size: descriptor.size,
            done: false,
        })
    }

    /// Whether the repository of `r` has blob `digest` (a `HEAD`).
    pub async fn has_blob(&self, r: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(r, &format!("blobs/{digest}"))?;
        let reply = self
            .send(r, &push_scope(r), "HEAD", |http| Ok(http.head(url.clone())))
            .await?;
        match reply.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(reply, "HEAD", &url).await),
        }
    }

    /// Asks the registry to mount `digest` from repository `from` (same registry) into
    /// `r`'s repository; `true` if it did (nothing to upload).
    pub async fn mount_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let mut url = self.url(r, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let scopes = format!("{} repository:{from}:pull", push_scope(r));
        let reply = self
            .send(r, &scopes, "POST", |http| {
                Ok(http.post(url.clone()).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        match reply.status() {
            StatusCode::CREATED => Ok(true),
            // The registry opened an upload session instead; it expires unused.
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(status_error(reply, "POST", &url).await),
        }
    }

    /// Uploads the blob in `file` (which must hold exactly `descriptor`'s bytes) to `r`'s
    /// repository, monolithic or chunked per the options; restarted on transient failures.
    pub async fn upload_blob(
        &self,
        r: &Reference,
        descriptor: &Descriptor,
        file: &Path,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            match self.upload_once(r, descriptor, file).await {
                Err(e) if attempt < self.options.retries && e.is_transient() => {}
                other => return other,
            }
            self.backoff(attempt).await;
            attempt += 1;
        }
    }

    async fn upload_once(
        &self,
        r: &Reference,
        descriptor: &Descriptor,
        file: &Path,
    ) -> Result<(), RegistryError> {
        let scopes = push_scope(r);
        let start = self.url(r, "blobs/uploads/")?;
        let reply = self
            .send(r, &scopes, "POST", |http| {
                Ok(http.post(start.clone()).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        let reply = expect(reply, "POST", &start, &[StatusCode::ACCEPTED], || {
            format!("upload to {}", r.name())
        })
        .await?;
        let mut location = location(&reply, &start)?;
        let open = || {
            std::fs::File::open(file).map_err(|source| RegistryError::Io {
                path: file.to_owned(),
                source,
            })
        };
        if let UploadMode::Chunked(chunk_size) = self.options.upload {
            let chunk_size = chunk_size.max(1);
            let mut reader = open()?;
            let mut offset = 0u64;
            while offset < descriptor.size {
                let len = chunk_size.min(descriptor.size - offset);
                let mut chunk = Vec::with_capacity(len as usize);
                (&mut reader)
                    .take(len)
                    .read_to_end(&mut chunk)
                    .map_err(|source| RegistryError::Io {
                        path: file.to_owned(),
                        source,
                    })?;
                if chunk.len() as u64 != len {
                    return Err(RegistryError::Io {
                        path: file.to_owned(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "blob file is shorter than its descriptor",
                        ),
                    });
                }
                let chunk = Bytes::from(chunk);
                let range = format!("{}-{}", offset, offset + len - 1);
                let target = location.clone();
                let reply = self
                    .send(r, &scopes, "PATCH", |http| {
                        Ok(http
                            .patch(target.clone())
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .header("Content-Range", range.clone())
                            .header(CONTENT_LENGTH, len)
                            .body(chunk.clone()))
                    })
                    .await?;
                let reply = expect(reply, "PATCH", &target, &[StatusCode::ACCEPTED], || {
                    format!("upload to {}", r.name())
                })
                .await?;
                location = self::location(&reply, &target)?;
                offset += len;
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", &descriptor.digest.to_string());
        let monolithic = self.options.upload == UploadMode::Monolithic;
        let size = descriptor.size;
        let reply = self
            .send(r, &scopes, "PUT", |http| {
                let request = http.put(location.clone());
                Ok(if monolithic {
                    request
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(file_body(open()?, file.to_owned()))
                } else {
                    request.header(CONTENT_LENGTH, "0")
                })
            })
            .await?;
        expect(
            reply,
            "PUT",
            &location,
            &[StatusCode::CREATED, StatusCode::NO_CONTENT],
            || format!("blob {} in {}", descriptor.digest, r.name()),
        )
        .await?;
        Ok(())
    }

    /// Puts a manifest under `r`'s tag (or digest); returns the digest the registry gave.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = self.url(r, &format!("manifests/{}", r.manifest_reference()))?;
        let body = Bytes::copy_from_slice(bytes);
        let reply = self
            .send(r, &push_scope(r), "PUT", |http| {
                Ok(http
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        let reply = expect(
            reply,
            "PUT",
            &url,
            &[StatusCode::CREATED, StatusCode::OK],
            || format!("manifest {r}"),
        )
        .await?;
        let digest = Digest::of(bytes);
        if let Some(given) =
            header_str(reply.headers(), "docker-content-digest").and_then(|d| d.parse().ok())
        {
            if given != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("pushed manifest {r}"),
                    expected: digest,
                    actual: given,
                });
            }
        }
        Ok(digest)
    }
}

/// A blob download in progress. Chunks are hashed as they pass; the end of the stream is
/// reported only after the digest and size matched, so a caller that commits on `None`
/// never commits a bad blob.
#[derive(Debug)]
pub struct BlobStream {
    reply: Response,
    url: String,
    hasher: Hasher,
    expected: Digest,
    size: u64,
    done: bool,
}

impl BlobStream {
    /// The next chunk; `Ok(None)` once the whole blob arrived and verified.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        if self.done {
            return Ok(None);
        }
        let chunk = self
            .reply
            .chunk()
            .await
            .map_err(|source| RegistryError::Http {
                method: "GET",
                url: self.url.clone(),
                source: Box::new(source),
            })?;
        match chunk {
            Some(chunk) => {
                if self.hasher.count() + chunk.len() as u64 > self.size {
                    return Err(RegistryError::SizeMismatch {
                        digest: self.expected,
                        expected: self.size,
                        actual: self.hasher.count() + chunk.len() as u64,
                    });
                }
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
            None => {
                self.done = true;
                if self.hasher.count() != self.size {
                    return Err(RegistryError::SizeMismatch {
                        digest: self.expected,
                        expected: self.size,
                        actual: self.hasher.count(),
                    });
                }
                let actual = self.hasher.digest();
                if actual != self.expected {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("blob from {}", self.url),
                        expected: self.expected,
                        actual,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.hasher.count()
    }
}

/// Bytes read per upload chunk: large reads keep the per-chunk cost (a blocking-pool hop,
/// one frame through hyper) negligible; `tokio::fs::File` as a body reads 4 KiB at a time,
/// which cost twice skopeo's time on a 200 MB layer.
const UPLOAD_READ: usize = 1 << 20;

/// A request body streaming `file` in [`UPLOAD_READ`] chunks, read on the blocking pool.
fn file_body(file: std::fs::File, path: PathBuf) -> reqwest::Body {
    let stream = futures_util::stream::try_unfold(Some(file), move |file| {
        let path = path.clone();
        async move {
            let Some(mut file) = file else {
                return Ok::<_, RegistryError>(None);
            };
            let read = tokio::task::spawn_blocking(move || {
                let mut buffer = vec![0u8; UPLOAD_READ];
                let mut filled = 0;
                while filled < buffer.len() {
                    match file.read(&mut buffer[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buffer.truncate(filled);
                Ok((buffer, file))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|source| RegistryError::Io { path, source })?;
            let (buffer, file) = read;
            if buffer.is_empty() {
                return Ok(None);
            }
            Ok(Some((Bytes::from(buffer), Some(file))))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

fn basic_header(username: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{username}:{password}");
    let mut out = String::from("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

fn is_transient_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `mediaType` a document names, for the error message of an unknown one.
fn header_str_owned(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, rename = "mediaType")]
        media_type: String,
    }
    serde_json::from_slice::<Probe>(bytes)
        .map(|p| p.media_type)
        .unwrap_or_default()
}

/// The media type of a manifest served without a usable `Content-Type`.
fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, rename = "mediaType")]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    if media_type::is_manifest(&probe.media_type) || media_type::is_index(&probe.media_type) {
        return Some(probe.media_type);
    }
    if !probe.media_type.is_empty() {
        return None;
    }
    match (probe.manifests, probe.config) {
        (Some(_), None) => Some(media_type::OCI_INDEX.to_owned()),
        (None, Some(_)) => Some(media_type::OCI_MANIFEST.to_owned()),
        _ => None,
    }
}

/// Reads a whole body, failing past `limit` bytes.
async fn read_limited(
    mut reply: Response,
    limit: u64,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    if reply.content_length().is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge {
            what: url.to_owned(),
            limit,
        });
    }
    let mut out = Vec::new();
    while let Some(chunk) = reply.chunk().await.map_err(|source| RegistryError::Http {
        method: "GET",
        url: url.to_owned(),
        source: Box::new(source),
    })? {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(RegistryError::TooLarge {
                what: url.to_owned(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `: CODE message` from a registry error body, or nothing.
async fn error_detail(reply: Response) -> String {
    let Ok(body) = read_limited(reply, 64 << 10, "").await else {
        return String::new();
    };
    match serde_json::from_slice::<ErrorReply>(&body) {
        Ok(parsed) if !parsed.errors.is_empty() => {
            let parts: Vec<String> = parsed
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message.to_lowercase()))
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    }
}

async fn status_error(reply: Response, method: &'static str, url: &Url) -> RegistryError {
    let status = reply.status();
    RegistryError::Status {
        method,
        url: url.to_string(),
        status: status.as_u16(),
        detail: error_detail(reply).await,
    }
}

/// The reply if its status is one of `ok`; a 404 becomes [`RegistryError::NotFound`].
async fn expect(
    reply: Response,
    method: &'static str,
    url: &Url,
    ok: &[StatusCode],
    what: impl FnOnce() -> String,
) -> Result<Response, RegistryError> {
    if ok.contains(&reply.status()) {
        return Ok(reply);
    }
    if reply.status() == StatusCode::NOT_FOUND && method != "PUT" {
        return Err(RegistryError::NotFound {
            what: what(),
            detail: error_detail(reply).await,
        });
    }
    Err(status_error(reply, method, url).await)
}

/// The upload session URL a reply points at (relative locations resolved against `base`).
fn location(reply: &Response, base: &Url) -> Result<Url, RegistryError> {
    let value =
        header_str(reply.headers(), LOCATION.as_str()).ok_or_else(|| RegistryError::Status {
            method: "POST",
            url: base.to_string(),
            status: reply.status().as_u16(),
            detail: ": no Location header for the upload".into(),
        })?;
    base.join(value).map_err(|e| RegistryError::Url {
        url: value.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_header() {
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
        assert_eq!(basic_header("a", ""), "Basic YTo=");
        assert_eq!(basic_header("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn media_types_are_sniffed() {
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(media_type::OCI_INDEX)
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).as_deref(),
            Some(media_type::OCI_MANIFEST)
        );
        assert_eq!(
            sniff_media_type(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#
            ),
            None
        );
    }
}
