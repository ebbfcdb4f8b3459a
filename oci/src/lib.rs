//! `strata-oci`: the OCI image format.
//!
//! Role: everything Strata needs to turn directories into images and images back into
//! directories, as pure synchronous library code:
//!
//! - [`digest`]: `sha256:` digests and hashing readers/writers;
//! - [`canonical_json`]: Go-compatible canonical JSON, so digests are reproducible;
//! - [`media_type`]: OCI and Docker media type names;
//! - [`config`]: the image config (Docker-compatible superset of the OCI config);
//! - [`manifest`]: manifests, indexes / manifest lists, descriptors, platforms;
//! - [`compression`]: parallel deterministic gzip and zstd, detection;
//! - [`layer`]: directory → layer tar diff (overlay whiteouts → OCI whiteouts) and safe
//!   layer unpacking;
//! - [`archive`]: OCI image layouts (directory and tar) and `docker save` archives;
//! - [`registry`]: the registry client — references, auth, pull and push (async, reqwest).
//!
//! CPU-heavy functions (layer writing and applying, archive reading and writing) are
//! blocking and self-contained: callers run them on rayon or `spawn_blocking`. Compressors
//! start their own worker threads and never use a shared pool, so they cannot deadlock it.
//!
//! The registry client is the one async part: it streams bytes between the network and
//! caller-provided sinks and files, and verifies every digest on the way.

#![warn(missing_docs)]

pub mod archive;
pub mod canonical_json;
pub mod compression;
pub mod config;
pub mod digest;
pub mod layer;
pub mod manifest;
pub mod media_type;
pub mod registry;
mod tar_format;

pub use compression::{Compression, CompressionKind};
pub use config::ImageConfig;
pub use digest::Digest;
pub use manifest::{Descriptor, ImageIndex, ImageManifest, Platform};
