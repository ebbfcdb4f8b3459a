//! The solver: cache keys for every vertex the target needs, cache lookups from the target
//! down, then parallel execution of what is left.
//!
//! Key decision: lookups happen before anything executes and stop at the first hit on each
//! path, so a fully cached build executes nothing and does not even load the results below
//! the target. Execution is Kahn's algorithm over the vertices that missed: a vertex starts
//! as soon as all its inputs are ready, up to `max_parallelism` at once; the first failure
//! aborts every running vertex.

use crate::graph::{Digest, Graph, VertexId};
use crate::progress::{Event, EventKind, Progress};
use crate::worker::{BoxError, Job, Worker};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// How to solve.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// Vertices running at once.
    pub max_parallelism: usize,
    /// Ignore every cached result (`--no-cache`).
    pub no_cache: bool,
    /// Where progress events go.
    pub progress: Option<mpsc::UnboundedSender<Event>>,
}

/// Default vertices in flight per core. A running vertex is mostly a process waiting on its
/// own children, the network or the disk (a `RUN sleep 2` uses no CPU at all), so capping at
/// one per core serialises independent stages for nothing; the CPU-bound work inside a
/// vertex (hashing, tar, compression) is bounded separately by rayon's pool. BuildKit sets no
/// limit by default.
const VERTICES_PER_CORE: usize = 8;

impl Default for SolveOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            max_parallelism: cores * VERTICES_PER_CORE,
            no_cache: false,
            progress: None,
        }
    }
}

/// What a solve produced.
#[derive(Debug)]
pub struct Solved<R> {
    /// The target's result.
    pub result: R,
    /// Cache key of every vertex the target needs.
    pub keys: HashMap<VertexId, Digest>,
    /// Vertices that ran.
    pub executed: Vec<VertexId>,
    /// Vertices whose cached result was used.
    pub cached: Vec<VertexId>,
}

/// A failed solve.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A vertex failed to execute.
    #[error("{name}: {source}")]
    Vertex {
        /// Progress name of the vertex.
        name: String,
        /// Dockerfile lines it comes from.
        lines: Option<(usize, usize)>,
        /// Its identity.
        digest: Digest,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The cache key of a vertex could not be computed (e.g. a context file is unreadable).
    #[error("{name}: failed to compute cache key: {source}")]
    CacheKey {
        /// Progress name of the vertex.
        name: String,
        /// Dockerfile lines it comes from.
        lines: Option<(usize, usize)>,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A worker task panicked or was aborted outside our control.
    #[error("internal error running {name}: {message}")]
    Internal {
        /// Progress name of the vertex.
        name: String,
        /// The panic or join error.
        message: String,
    },
}

impl SolveError {
    /// The Dockerfile lines the failing vertex comes from.
    pub fn lines(&self) -> Option<(usize, usize)> {
        match self {
            Self::Vertex { lines, .. } | Self::CacheKey { lines, .. } => *lines,
            Self::Internal { .. } => None,
        }
    }
}

/// Runs graphs on a worker.
#[derive(Debug)]
pub struct Solver<W> {
    worker: Arc<W>,
}

impl<W> Clone for Solver<W> {
    fn clone(&self) -> Self {
        Self {
            worker: self.worker.clone(),
        }
    }
}

impl<W: Worker> Solver<W> {
    /// A solver over `worker`.
    pub fn new(worker: Arc<W>) -> Self {
        Self { worker }
    }

    /// Solves `target`: everything it needs, nothing else.
    pub async fn solve(
        &self,
        graph: Arc<Graph>,
        target: VertexId,
        options: SolveOptions,
    ) -> Result<Solved<W::Ref>, SolveError> {
        let order = graph.closure(target);
        let keys = self.cache_keys(&graph, &order).await?;
        let progress = |id: VertexId| match &options.progress {
            Some(tx) => {
                let v = graph.vertex(id);
                Progress::new(tx.clone(), v.digest, Arc::from(v.meta.name.as_str()))
            }
            None => Progress::discard(graph.vertex(id).digest),
        };

        // Top-down lookups: a hit ends the walk on that path.
        let mut results: HashMap<VertexId, W::Ref> = HashMap::new();
        let mut needed: HashSet<VertexId> = HashSet::new();
        let mut cached = Vec::new();
        let mut stack = vec![target];
        let mut seen = HashSet::from([target]);
        while let Some(id) = stack.pop() {
            let vertex = graph.vertex(id);
            if !options.no_cache && !vertex.meta.ignore_cache {
                let hit = self
                    .worker
                    .load(&graph, id, keys[&id])
                    .await
                    .map_err(|source| vertex_error(&graph, id, source))?;
                if let Some(found) = hit {
                    results.insert(id, found);
                    cached.push(id);
                    continue;
                }
            }
            needed.insert(id);
            for input in &vertex.inputs {
                if seen.insert(input.vertex) {
                    stack.push(input.vertex);
                }
            }
        }

        // Every step not run is reported cached, inputs first, as buildx lists a no-op
        // rebuild: the hits and what lies below them (not needed, so not loaded).
        for &id in &order {
            if !needed.contains(&id) {
                progress(id).send(EventKind::Cached);
            }
        }
        let executed = self
            .execute(&graph, &keys, &needed, &mut results, &progress, &options)
            .await?;
        let result = results
            .remove(&target)
            .ok_or_else(|| SolveError::Internal {
                name: graph.vertex(target).meta.name.clone(),
                message: "target produced no result".into(),
            })?;
        Ok(Solved {
            result,
            keys,
            executed,
            cached,
        })
    }

    /// Cache key of each vertex, inputs first: its identity, its content key, and its inputs'
    /// cache keys (which carry their own content keys).
    async fn cache_keys(
        &self,
        graph: &Graph,
        order: &[VertexId],
    ) -> Result<HashMap<VertexId, Digest>, SolveError> {
        let mut keys: HashMap<VertexId, Digest> = HashMap::with_capacity(order.len());
        for &id in order {
            let vertex = graph.vertex(id);
            let content = self.worker.content_key(graph, id).await.map_err(|source| {
                SolveError::CacheKey {
                    name: vertex.meta.name.clone(),
                    lines: vertex.meta.lines,
                    source,
                }
            })?;
            let mut h = blake3::Hasher::new();
            h.update(b"strata.cachekey.v1\0");
            h.update(&vertex.digest.0);
            match content {
                Some(c) => h.update(&[1]).update(&c.0),
                None => h.update(&[0]),
            };
            for input in &vertex.inputs {
                h.update(&keys[&input.vertex].0);
                h.update(&(input.output as u64).to_le_bytes());
            }
            keys.insert(id, Digest(*h.finalize().as_bytes()));
        }
        Ok(keys)
    }

    /// Runs every vertex of `needed` once its inputs are ready.
    async fn execute(
        &self,
        graph: &Arc<Graph>,
        keys: &HashMap<VertexId, Digest>,
        needed: &HashSet<VertexId>,
        results: &mut HashMap<VertexId, W::Ref>,
        progress: &impl Fn(VertexId) -> Progress,
        options: &SolveOptions,
    ) -> Result<Vec<VertexId>, SolveError> {
        let mut pending: HashMap<VertexId, usize> = HashMap::new();
        let mut ready = Vec::new();
        for &id in needed {
            let distinct: HashSet<VertexId> = graph
                .vertex(id)
                .inputs
                .iter()
                .map(|i| i.vertex)
                .filter(|v| needed.contains(v))
                .collect();
            if distinct.is_empty() {
                ready.push(id);
            } else {
                pending.insert(id, distinct.len());
            }
        }
        // Deterministic start order (graph insertion order) keeps progress output stable.
        ready.sort();

        let semaphore = Arc::new(Semaphore::new(options.max_parallelism.max(1)));
        let mut running: JoinSet<(VertexId, Result<W::Ref, BoxError>)> = JoinSet::new();
        let mut names: HashMap<tokio::task::Id, VertexId> = HashMap::new();
        let mut executed = Vec::with_capacity(needed.len());
        let mut spawn =
            |id: VertexId, results: &HashMap<VertexId, W::Ref>, running: &mut JoinSet<_>| {
                let vertex = graph.vertex(id);
                let inputs: Vec<W::Ref> = vertex
                    .inputs
                    .iter()
                    .map(|i| results[&i.vertex].clone())
                    .collect();
                let worker = self.worker.clone();
                let graph = graph.clone();
                let key = keys[&id];
                let progress = progress(id);
                let semaphore = semaphore.clone();
                let handle = running.spawn(async move {
                    // The semaphore is never closed, so acquiring only waits.
                    let _permit = semaphore.acquire_owned().await;
                    progress.send(EventKind::Started);
                    let started = Instant::now();
                    let job = Job {
                        graph: &graph,
                        vertex: id,
                        key,
                        inputs,
                        progress: progress.clone(),
                    };
                    let result = worker.execute(job).await;
                    match &result {
                        Ok(_) => progress.send(EventKind::Completed {
                            duration: started.elapsed(),
                        }),
                        Err(e) => progress.send(EventKind::Failed {
                            error: e.to_string(),
                        }),
                    }
                    (id, result)
                });
                names.insert(handle.id(), id);
            };
        for id in ready {
            spawn(id, results, &mut running);
        }

        while let Some(joined) = running.join_next_with_id().await {
            let (id, result) = match joined {
                Ok((_, (id, result))) => (id, result),
                Err(e) => {
                    let id = names.get(&e.id()).copied();
                    abort_all(&mut running, &names, progress).await;
                    let name = id
                        .map(|id| graph.vertex(id).meta.name.clone())
                        .unwrap_or_default();
                    return Err(SolveError::Internal {
                        name,
                        message: e.to_string(),
                    });
                }
            };
            match result {
                Ok(r) => {
                    results.insert(id, r);
                    executed.push(id);
                    let mut users: Vec<VertexId> =
                        graph.users(id).filter(|u| needed.contains(u)).collect();
                    users.sort();
                    users.dedup();
                    for user in users {
                        if let Some(count) = pending.get_mut(&user) {
                            *count -= 1;
                            if *count == 0 {
                                pending.remove(&user);
                                spawn(user, results, &mut running);
                            }
                        }
                    }
                }
                Err(source) => {
                    abort_all(&mut running, &names, progress).await;
                    return Err(vertex_error(graph, id, source));
                }
            }
        }
        Ok(executed)
    }
}

/// Stops every running vertex and reports it canceled.
async fn abort_all<T: 'static>(
    running: &mut JoinSet<T>,
    names: &HashMap<tokio::task::Id, VertexId>,
    progress: &impl Fn(VertexId) -> Progress,
) {
    running.abort_all();
    while let Some(joined) = running.join_next_with_id().await {
        if let Err(e) = joined {
            if let Some(&id) = names.get(&e.id()) {
                progress(id).send(EventKind::Canceled);
            }
        }
    }
}

fn vertex_error(graph: &Graph, id: VertexId, source: BoxError) -> SolveError {
    let v = graph.vertex(id);
    SolveError::Vertex {
        name: v.meta.name.clone(),
        lines: v.meta.lines,
        digest: v.digest,
        source,
    }
}
