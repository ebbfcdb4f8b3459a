//! `strata-cache`: everything Strata keeps on disk between builds.
//!
//! Role: the content store (sha256 blobs in an OCI layout), snapshot directories (layer diffs
//! used as overlay lowerdirs), the redb metadata database, the cache index (cache key →
//! result), `RUN --mount=type=cache` directories, garbage collection, cache import/export.
//!
//! Key decision: on-disk layouts carry a version (`v1/`) and every write is atomic
//! (temp file + fsync + rename).
//!
//! Status: not built yet (the build-core issue fills it). No code on purpose.
