//! `strata-oci`: the OCI image format and distribution.
//!
//! Role: layer tar diffs (with whiteouts), compression (gzip, zstd), manifests, configs and
//! indexes, OCI layouts and docker archives, and the registry client (pull, push, auth).
//!
//! Status: not built yet (the build-core and distribution issues fill it). No code on purpose.
