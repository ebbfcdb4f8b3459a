//! Where a blob is known to live in registries: the repositories it was pulled from or
//! pushed to, so a push to another repository of the same registry can ask for a
//! cross-repository mount instead of uploading the bytes again.
//!
//! Main items: [`remember`] and [`recall`].
//!
//! Key decision: this is a hint, kept as a cache-index record under a key derived from the
//! blob digest (its own blake3 context, so it never collides with a solver key) with no
//! blob attached, so it never keeps a blob alive. A lost or stale record only costs an
//! upload: the registry answers a failed mount by opening an ordinary upload.

use strata_cache::{CacheKey, CacheValue, Store};
use strata_oci::Digest;

const KEY_CONTEXT: &str = "strata-worker image blob-sources v1";
/// Repositories kept per blob (the most recent ones).
const MAX_SOURCES: usize = 8;

fn key(digest: &Digest) -> CacheKey {
    blake3::derive_key(KEY_CONTEXT, digest.to_string().as_bytes())
}

/// The repositories (`registry/repository`) `digest` is known to be in, most recent first.
pub fn recall(store: &Store, digest: &Digest) -> Vec<String> {
    store
        .cache()
        .get(&key(digest), None)
        .ok()
        .flatten()
        .and_then(|record| serde_json::from_slice(&record.value.payload).ok())
        .unwrap_or_default()
}

/// Records that `digest` is in `repository` (`registry/repository`). Best effort: a failure
/// to record is ignored (see the module docs).
pub fn remember(store: &Store, digest: &Digest, repository: &str) {
    let mut sources = recall(store, digest);
    sources.retain(|s| s != repository);
    sources.insert(0, repository.to_owned());
    sources.truncate(MAX_SOURCES);
    let value = CacheValue {
        snapshot: None,
        blobs: Vec::new(),
        payload: serde_json::to_vec(&sources).expect("strings serialize"),
    };
    let _ = store.cache().put(&key(digest), &value);
}
