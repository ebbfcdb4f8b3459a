//! The registry client: pull and push images over the OCI distribution API.
//!
//! - [`reference`](mod@reference): image references and Docker's name normalisation;
//! - [`auth`]: credentials (`~/.docker/config.json`, credential helpers) and
//!   `WWW-Authenticate` challenges;
//! - [`client`]: the HTTP client — manifests (Docker schema 2, OCI, lists and indexes),
//!   verified streaming blob downloads, uploads (HEAD first, cross-repository mount,
//!   monolithic or chunked) and manifest `PUT`s, with Bearer/Basic auth and retries.
//!
//! The client is async (reqwest on tokio) and store-agnostic: it hands out verified chunks
//! and reads uploads from files; the worker decides where bytes land.
//!
//! Key decision: hand-written on reqwest rather than `oci-client`, so downloads stream chunk
//! by chunk into the store's ingest (verified on the way) and uploads stream from the
//! content store's files, with nothing buffered whole.

pub mod auth;
pub mod client;
pub mod reference;

pub use auth::{AuthError, Challenge, Credentials, DockerConfig};
pub use client::{BlobStream, Client, ClientOptions, FetchedManifest, ResolvedImage, UploadMode};
pub use reference::{Reference, ReferenceError};

use std::path::PathBuf;

use crate::digest::Digest;
use crate::manifest::ManifestError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The HTTP client could not be set up.
    #[error("cannot set up the http client")]
    Setup {
        /// The cause.
        #[source]
        source: Box<reqwest::Error>,
    },
    /// A URL could not be formed or parsed.
    #[error("invalid url {url:?}: {reason}")]
    Url {
        /// The text.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request failed before a reply (connection, TLS, timeout, broken body).
    #[error("{method} {url}")]
    Http {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<reqwest::Error>,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: unexpected status {status}{detail}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// `: CODE message` from the registry, or empty.
        detail: String,
    },
    /// The registry has no such manifest or blob.
    #[error("{what}: not found{detail}")]
    NotFound {
        /// What was asked for.
        what: String,
        /// `: CODE message` from the registry, or empty.
        detail: String,
    },
    /// Authentication failed or is needed.
    #[error("unauthorized for {registry}: {reason}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What happened, with a hint.
        reason: String,
    },
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Content does not hash to the digest it was asked for by.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A blob is not the size its descriptor says.
    #[error("blob {digest}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// What arrived (or would have).
        actual: u64,
    },
    /// A document is larger than this client accepts.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// What.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest of a kind this client does not read.
    #[error("unsupported manifest {reference} (media type {media_type:?}): only OCI and docker schema 2 images are supported")]
    UnsupportedManifest {
        /// The reference.
        reference: String,
        /// Its media type.
        media_type: String,
    },
    /// A manifest does not parse.
    #[error("invalid manifest {reference}")]
    InvalidManifest {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<ManifestError>,
    },
    /// No index entry fits the platform asked for.
    #[error("{reference}: no image for platform {wanted} (it has: {available})")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// What the index has.
        available: String,
    },
    /// A local file to upload could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Whether retrying the whole operation may succeed (a network failure or a registry
    /// hiccup, not a refusal or bad content).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_body()
                    || source.is_request()
            }
            RegistryError::Status { status, .. } => matches!(status, 429 | 500..=504),
            _ => false,
        }
    }
}
