//! Progress events: what the solver tells its caller while a build runs.
//!
//! The shape follows BuildKit's StatusResponse (vertexes started / cached / completed /
//! failed, log chunks per vertex, warnings), so the CLI can render buildx-style output and the
//! gRPC server can forward them unchanged. Libraries never print; they send these.

use crate::graph::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's stdout.
    Stdout,
    /// The process's stderr.
    Stderr,
}

/// What happened to a vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Its result was found in the cache; it will not run.
    Cached,
    /// It started running.
    Started,
    /// A chunk of its output.
    Log {
        /// Stream.
        stream: Stream,
        /// Bytes as produced.
        data: Vec<u8>,
    },
    /// It finished successfully.
    Completed {
        /// How long it ran.
        duration: Duration,
    },
    /// It failed; the build stops.
    Failed {
        /// Rendered error.
        error: String,
    },
    /// It was stopped because another vertex failed or the build was cancelled.
    Canceled,
}

/// One progress event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The vertex's identity.
    pub vertex: Digest,
    /// Its progress name.
    pub name: Arc<str>,
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind,
}

/// Where a vertex reports progress. Cheap to clone; sending never blocks and never fails (a
/// caller that stopped listening just misses events).
#[derive(Debug, Clone)]
pub struct Progress {
    tx: Option<mpsc::UnboundedSender<Event>>,
    vertex: Digest,
    name: Arc<str>,
}

impl Progress {
    /// A sink that drops everything.
    pub fn discard(vertex: Digest) -> Self {
        Self {
            tx: None,
            vertex,
            name: Arc::from(""),
        }
    }

    pub(crate) fn new(tx: mpsc::UnboundedSender<Event>, vertex: Digest, name: Arc<str>) -> Self {
        Self {
            tx: Some(tx),
            vertex,
            name,
        }
    }

    /// Sends an event about this vertex.
    pub fn send(&self, kind: EventKind) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Event {
                vertex: self.vertex,
                name: self.name.clone(),
                at: Instant::now(),
                kind,
            });
        }
    }

    /// Sends a log chunk.
    pub fn log(&self, stream: Stream, data: &[u8]) {
        self.send(EventKind::Log {
            stream,
            data: data.to_vec(),
        });
    }
}
