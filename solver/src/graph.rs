//! The build graph: a DAG of vertices, each an [`Op`] over inputs produced by other vertices.
//!
//! A vertex's identity ([`Digest`]) is the blake3 digest of its op's canonical encoding and its
//! inputs' identities, so two identical steps — in two stages, or added twice — are one vertex:
//! [`Graph::add`] returns the existing one.

use crate::op::{Op, VertexMeta};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use std::fmt;

/// A 32-byte blake3 digest: a vertex's identity or a cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 12 hex digits, for progress output.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Handle of a vertex in its [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexId(pub(crate) NodeIndex);

impl VertexId {
    /// Position in the graph (insertion order).
    pub fn index(self) -> usize {
        self.0.index()
    }
}

/// One input of a vertex: output `output` of vertex `vertex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Input {
    /// The producing vertex.
    pub vertex: VertexId,
    /// Which of its outputs (0 for the rootfs / main result).
    pub output: usize,
}

impl From<VertexId> for Input {
    fn from(vertex: VertexId) -> Self {
        Input { vertex, output: 0 }
    }
}

/// A node of the graph.
#[derive(Debug, Clone)]
pub struct Vertex {
    /// What it does.
    pub op: Op,
    /// What it reads.
    pub inputs: Vec<Input>,
    /// Name, lines and labels (not part of the identity).
    pub meta: VertexMeta,
    /// Identity: digest of op and inputs.
    pub digest: Digest,
}

/// Errors building a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// An input names a vertex of another graph.
    #[error("input {input} refers to a vertex that is not in this graph")]
    UnknownInput {
        /// Position of the input.
        input: usize,
    },
}

/// The build graph.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    dag: DiGraph<Vertex, usize>,
    by_digest: HashMap<Digest, VertexId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vertex, or returns the identical one already present (its meta is kept; a
    /// vertex reached from several stages is named after the first).
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        meta: VertexMeta,
    ) -> Result<VertexId, GraphError> {
        for (i, input) in inputs.iter().enumerate() {
            if self.dag.node_weight(input.vertex.0).is_none() {
                return Err(GraphError::UnknownInput { input: i });
            }
        }
        let digest = vertex_digest(
            &op,
            inputs
                .iter()
                .map(|i| (self.dag[i.vertex.0].digest, i.output)),
        );
        if let Some(&id) = self.by_digest.get(&digest) {
            return Ok(id);
        }
        let node = self.dag.add_node(Vertex {
            op,
            inputs: inputs.clone(),
            meta,
            digest,
        });
        for (position, input) in inputs.iter().enumerate() {
            self.dag.add_edge(input.vertex.0, node, position);
        }
        let id = VertexId(node);
        self.by_digest.insert(digest, id);
        Ok(id)
    }

    /// The vertex behind a handle.
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.dag[id.0]
    }

    /// Mutable access to a vertex's meta (e.g. to rename it).
    pub fn meta_mut(&mut self, id: VertexId) -> &mut VertexMeta {
        &mut self.dag[id.0].meta
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    /// Whether the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// Every vertex `target` depends on, itself included, inputs before their users.
    /// Vertices the target does not need (unused stages) are not listed.
    pub fn closure(&self, target: VertexId) -> Vec<VertexId> {
        let mut order = Vec::new();
        let mut state = vec![0u8; self.dag.node_count()]; // 0 new, 1 open, 2 done
        let mut stack = vec![(target, false)];
        while let Some((id, expanded)) = stack.pop() {
            let slot = &mut state[id.index()];
            if expanded {
                *slot = 2;
                order.push(id);
                continue;
            }
            if *slot != 0 {
                continue;
            }
            *slot = 1;
            stack.push((id, true));
            for input in self.dag[id.0].inputs.iter().rev() {
                if state[input.vertex.index()] == 0 {
                    stack.push((input.vertex, false));
                }
            }
        }
        order
    }

    /// Vertices that read `id`'s outputs.
    pub fn users(&self, id: VertexId) -> impl Iterator<Item = VertexId> + '_ {
        self.dag
            .neighbors_directed(id.0, petgraph::Direction::Outgoing)
            .map(VertexId)
    }
}

/// blake3 over a domain tag, the op's canonical JSON and each input's (digest, output).
fn vertex_digest(op: &Op, inputs: impl Iterator<Item = (Digest, usize)>) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"strata.vertex.v1\0");
    // Serializing plain data with fixed field order and ordered maps cannot fail.
    let encoded = serde_json::to_vec(op).unwrap_or_default();
    h.update(&(encoded.len() as u64).to_le_bytes());
    h.update(&encoded);
    for (digest, output) in inputs {
        h.update(&digest.0);
        h.update(&(output as u64).to_le_bytes());
    }
    Digest(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{FileAction, FileOp, SourceOp};

    fn mkdir(path: &str) -> Op {
        Op::File(FileOp {
            has_base: true,
            actions: vec![FileAction::Mkdir {
                path: path.into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                mtime: None,
            }],
        })
    }

    #[test]
    fn identical_vertices_are_one() {
        let mut g = Graph::new();
        let base = g
            .add(Op::Source(SourceOp::Scratch), vec![], VertexMeta::default())
            .unwrap();
        let a = g
            .add(
                mkdir("/a"),
                vec![base.into()],
                VertexMeta {
                    name: "first".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let b = g
            .add(
                mkdir("/a"),
                vec![base.into()],
                VertexMeta {
                    name: "second".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let c = g
            .add(mkdir("/c"), vec![base.into()], VertexMeta::default())
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(g.len(), 3);
        assert_eq!(g.vertex(a).meta.name, "first");
    }

    #[test]
    fn identity_depends_on_inputs() {
        let mut g = Graph::new();
        let s1 = g
            .add(Op::Source(SourceOp::Scratch), vec![], VertexMeta::default())
            .unwrap();
        let x = g
            .add(mkdir("/x"), vec![s1.into()], VertexMeta::default())
            .unwrap();
        let y1 = g
            .add(mkdir("/y"), vec![s1.into()], VertexMeta::default())
            .unwrap();
        let y2 = g
            .add(mkdir("/y"), vec![x.into()], VertexMeta::default())
            .unwrap();
        assert_ne!(g.vertex(y1).digest, g.vertex(y2).digest);
    }

    #[test]
    fn closure_lists_only_what_the_target_needs() {
        let mut g = Graph::new();
        let s = g
            .add(Op::Source(SourceOp::Scratch), vec![], VertexMeta::default())
            .unwrap();
        let unused = g
            .add(mkdir("/unused"), vec![s.into()], VertexMeta::default())
            .unwrap();
        let a = g
            .add(mkdir("/a"), vec![s.into()], VertexMeta::default())
            .unwrap();
        let b = g
            .add(Op::Merge, vec![s.into(), a.into()], VertexMeta::default())
            .unwrap();
        let order = g.closure(b);
        assert_eq!(order, vec![s, a, b]);
        assert!(!order.contains(&unused));
    }
}
