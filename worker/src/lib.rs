//! `strata-worker`: the implementation of the solver's `Worker` trait.
//!
//! Role: executes one op at a time — sources (scratch, images, the local context, git,
//! http), exec (through `strata-executor`), file actions and merges — over snapshots kept by
//! `strata-cache`, and exports results as images with `strata-oci`.
//!
//! Main parts:
//! - [`engine`]: [`engine::LocalWorker`], the `Worker` the solver drives: sources, file ops,
//!   RUN in the executor's sandbox, cache records.
//! - [`context`]: the build context as the client gave it — a filtered walk (`.dockerignore`,
//!   include patterns), content checksums of exactly the paths an op selects (the content part
//!   of its cache key), with a stat cache so an unchanged file is not read twice.
//! - [`file`](mod@file): BuildKit's file actions (COPY/ADD semantics, mkdir, mkfile, rm) written into a
//!   new snapshot diff over a read-only layered view of the parent snapshots.
//! - [`cache_remote`]: `--cache-to` / `--cache-from`: build cache records exported to and
//!   imported from a local OCI layout or a registry, layers fetched only when a lookup hits.
//! - [`image`]: images in the local store — load archives, unpack an image into snapshots,
//!   export a snapshot chain and a config as an image, read and name stored images.
//!
//! Key decision: a vertex's result is a committed snapshot (an overlay-ready diff directory
//! plus its parent chain), never a copied-out tree: RUN mounts the chain as overlay lowerdirs,
//! COPY writes only what changes, and the exporter turns each diff into one layer.

pub mod cache_remote;
pub mod context;
pub mod engine;
pub mod file;
pub mod image;
