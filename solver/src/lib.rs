//! `strata-solver`: the build graph and the engine that solves it.
//!
//! Role: owns the build graph (a petgraph DAG of `Source`, `Exec`, `File`, `Merge` and `Diff`
//! ops), vertex digests and cache keys, de-duplication of identical vertices, the parallel
//! scheduler, progress events, and the `Worker` trait through which ops are executed.
//!
//! Key decision: the solver knows ops only through the `Worker` trait, so it is testable with a
//! fake worker and the frontend can depend on it for graph types without any system dependency.
//!
//! Status: not built yet (the build-core issue fills it). This crate holds no code on purpose.
