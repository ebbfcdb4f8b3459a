//! Content digests (`sha256:<64 hex>`), the names of blobs in the content store.
//!
//! Key decision: the store uses `strata-oci`'s [`Digest`] itself, so blobs named by an image
//! manifest and blobs in the store are the same type with no conversion in between.

pub use strata_oci::digest::{Digest, DigestError};
