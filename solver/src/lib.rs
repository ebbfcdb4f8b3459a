//! `strata-solver`: the build graph and the engine that solves it.
//!
//! Role: owns the build graph ([`Graph`]: a DAG of [`op::Op`]s — sources, exec, file actions,
//! merge, diff), vertex identities (blake3 of op + inputs, so identical steps are one vertex),
//! cache keys (identity + content checksums + inputs' keys), the parallel scheduler
//! ([`Solver`]) and progress events ([`progress::Event`]).
//!
//! Key decision: the solver knows ops only through the [`Worker`] trait — it decides what to
//! look up and what to run, in which order and how many at once; the worker touches files,
//! processes and networks. So the solver is tested with a fake worker, and the frontend can
//! depend on this crate for graph types without any system dependency.

pub mod graph;
pub mod op;
pub mod progress;
pub mod scheduler;
pub mod worker;

pub use graph::{Digest, Graph, GraphError, Input, Vertex, VertexId};
pub use scheduler::{SolveError, SolveOptions, Solved, Solver};
pub use worker::{BoxError, Job, Worker};
