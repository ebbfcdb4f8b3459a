//! The `Worker` trait: how the solver gets an op executed without knowing how.
//!
//! The solver owns scheduling and caching decisions; a worker owns everything that touches a
//! filesystem, a process or the network. Tests drive the solver with a fake worker.

use crate::graph::{Digest, Graph, VertexId};
use crate::progress::Progress;
use std::future::Future;

/// Any error a worker reports; the solver adds which vertex it came from.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A vertex to execute, with its inputs' results in input order.
#[derive(Debug)]
pub struct Job<'a, R> {
    /// The whole graph (an op may need to look at its inputs' ops).
    pub graph: &'a Graph,
    /// The vertex to run.
    pub vertex: VertexId,
    /// Its cache key: the worker records its result under this key.
    pub key: Digest,
    /// Results of `graph.vertex(vertex).inputs`, in the same order.
    pub inputs: Vec<R>,
    /// Where to report output.
    pub progress: Progress,
}

/// Executes ops and keeps their results.
pub trait Worker: Send + Sync + 'static {
    /// A handle to an op's result (a snapshot, a directory, an image…). Cheap to clone.
    type Ref: Clone + Send + Sync + 'static;

    /// The part of a vertex's cache key that is not in the graph: checksums of what it reads
    /// from outside (context files selected by a COPY, a base image's manifest digest).
    /// `None` when the op reads nothing beyond its inputs.
    fn content_key(
        &self,
        graph: &Graph,
        vertex: VertexId,
    ) -> impl Future<Output = Result<Option<Digest>, BoxError>> + Send;

    /// A result recorded earlier under `key`, if the cache still holds it.
    fn load(
        &self,
        graph: &Graph,
        vertex: VertexId,
        key: Digest,
    ) -> impl Future<Output = Result<Option<Self::Ref>, BoxError>> + Send;

    /// Runs the vertex and records its result under `job.key`. Dropping the future cancels
    /// the work (the worker must then leave nothing behind that breaks a later build).
    fn execute(
        &self,
        job: Job<'_, Self::Ref>,
    ) -> impl Future<Output = Result<Self::Ref, BoxError>> + Send;
}
