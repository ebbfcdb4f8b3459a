//! `strata-worker`: the implementation of the solver's `Worker` trait.
//!
//! Role: executes one op at a time — sources (scratch, images, local context, git, http),
//! exec (through `strata-executor`), file actions, merge and diff — over snapshots from
//! `strata-cache`, producing layers and blobs with `strata-oci`.
//!
//! Status: not built yet (the build-core and executor issues fill it). No code on purpose.
