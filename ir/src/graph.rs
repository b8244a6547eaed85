//! The graph: a `StableDiGraph` of [`Node`]s and typed [`Edge`]s, its inputs and outputs, and the
//! validator that checks every invariant and names the offending node.

use crate::op::Op;
use crate::tensor::TensorType;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;
use std::fmt;

/// A node handle. Stable across removals.
pub type NodeId = NodeIndex<u32>;

/// How a skip connection transforms the tensor it carries to the layer it joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipKind {
    /// S(a) = a (a ResNet shortcut).
    Identity,
    /// S(a) = W a: a learned matrix on the skip path (a 1x1 projection shortcut, or a MatMul in an MLP).
    Weighted,
    /// S(a) = a ⊙ (1 − T(x)): a highway carry gate.
    Gated,
    /// A layer fed by every earlier layer (DenseNet concatenation, or an MLP summing W_k a^{l−k} for all k).
    Dense,
}

impl SkipKind {
    pub fn name(self) -> &'static str {
        match self {
            SkipKind::Identity => "identity",
            SkipKind::Weighted => "weighted",
            SkipKind::Gated => "gated",
            SkipKind::Dense => "dense",
        }
    }
}

/// The kind of an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    Data,
    Skip(SkipKind),
}

/// An edge carries the source node's output tensor to input `port` of the destination node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub port: usize,
    pub kind: EdgeKind,
}

/// A node: a stable name (from ONNX where there is one), its op, and the type of its one output.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    /// The name of the tensor this node produces (ONNX's output name).
    pub output: String,
    pub op: Op,
    pub ty: TensorType,
    /// What passes folded into this node, in order (e.g. `BatchNormalization`, `Add`, `Relu`).
    pub fused: Vec<&'static str>,
}

impl Node {
    /// The op with what it absorbed, e.g. `Conv+BatchNormalization+Add+Relu`.
    pub fn label(&self) -> String {
        std::iter::once(self.op.name()).chain(self.fused.iter().copied()).collect::<Vec<_>>().join("+")
    }
}

/// A graph output: a name and the node that produces it.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub node: NodeId,
}

/// A network.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub g: StableDiGraph<Node, Edge>,
    /// Input nodes (op [`Op::Input`]) in the model's order.
    pub inputs: Vec<NodeId>,
    pub outputs: Vec<Output>,
}

/// A violated invariant, naming the node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("the graph has a cycle through node '{0}'")]
    Cycle(String),
    #[error("node '{node}' ({op}) takes {expected} inputs, got {got}")]
    Arity { node: String, op: &'static str, expected: String, got: usize },
    #[error("node '{node}' ({op}) has no input on port {port}")]
    MissingPort { node: String, op: &'static str, port: usize },
    #[error("node '{node}' ({op}): {msg}")]
    Shape { node: String, op: &'static str, msg: String },
    #[error("graph output '{0}' refers to a removed node")]
    DanglingOutput(String),
    #[error("the graph has no outputs")]
    NoOutputs,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node whose type will be computed by [`Graph::infer_shapes`] (Input and Const nodes must
    /// be given their type).
    pub fn add_node(&mut self, name: impl Into<String>, op: Op, ty: TensorType) -> NodeId {
        let name = name.into();
        self.g.add_node(Node { output: name.clone(), name, op, ty, fused: Vec::new() })
    }

    /// Adds a graph input of the given type.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeId {
        let id = self.add_node(name, Op::Input, ty);
        self.inputs.push(id);
        id
    }

    /// Connects `src`'s output to input `port` of `dst` with a data edge.
    pub fn connect(&mut self, src: NodeId, dst: NodeId, port: usize) {
        self.g.add_edge(src, dst, Edge { port, kind: EdgeKind::Data });
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    /// The operands of `id`, ordered by port.
    pub fn inputs_of(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<(usize, NodeId)> =
            self.g.edges_directed(id, Direction::Incoming).map(|e| (e.weight().port, e.source())).collect();
        v.sort_by_key(|p| p.0);
        v.into_iter().map(|p| p.1).collect()
    }

    /// The incoming edges of `id` as (port, source, kind), ordered by port.
    pub fn in_edges(&self, id: NodeId) -> Vec<(usize, NodeId, EdgeKind)> {
        let mut v: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| (e.weight().port, e.source(), e.weight().kind))
            .collect();
        v.sort_by_key(|p| p.0);
        v
    }

    /// The nodes that read `id`'s output (each once, in no particular order).
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.neighbors_directed(id, Direction::Outgoing).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Sets the kind of the edge `src -> dst` at `port`.
    pub fn set_edge_kind(&mut self, src: NodeId, dst: NodeId, port: usize, kind: EdgeKind) {
        let ids: Vec<_> =
            self.g.edges_connecting(src, dst).filter(|e| e.weight().port == port).map(|e| e.id()).collect();
        for e in ids {
            self.g[e].kind = kind;
        }
    }

    /// Nodes in a topological order (deterministic: ties broken by node index).
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        let mut indeg: std::collections::HashMap<NodeId, usize> = self.g.node_indices().map(|n| (n, 0)).collect();
        for e in (&self.g).edge_references() {
            *indeg.get_mut(&e.target()).unwrap() += 1;
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<NodeId>> =
            indeg.iter().filter(|(_, &d)| d == 0).map(|(&n, _)| std::cmp::Reverse(n)).collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(std::cmp::Reverse(n)) = ready.pop() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target()).unwrap();
                *d -= 1;
                if *d == 0 {
                    ready.push(std::cmp::Reverse(e.target()));
                }
            }
        }
        if order.len() != indeg.len() {
            let stuck = indeg.iter().filter(|(_, &d)| d > 0).map(|(&n, _)| n).min().unwrap();
            return Err(GraphError::Cycle(self.g[stuck].name.clone()));
        }
        Ok(order)
    }

    /// Checks the invariants: acyclic, outputs present, every node's operands on ports 0..n within its
    /// arity, and every recorded type equal to what inference computes.
    pub fn validate(&self) -> Result<(), GraphError> {
        if self.outputs.is_empty() {
            return Err(GraphError::NoOutputs);
        }
        for o in &self.outputs {
            if !self.g.contains_node(o.node) {
                return Err(GraphError::DanglingOutput(o.name.clone()));
            }
        }
        self.topo_order()?;
        for id in self.g.node_indices() {
            let node = &self.g[id];
            let edges = self.in_edges(id);
            let (lo, hi) = node.op.arity();
            if edges.len() < lo || edges.len() > hi {
                let expected = if lo == hi {
                    lo.to_string()
                } else if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(GraphError::Arity {
                    node: node.name.clone(),
                    op: node.op.name(),
                    expected,
                    got: edges.len(),
                });
            }
            for (i, e) in edges.iter().enumerate() {
                if e.0 != i {
                    return Err(GraphError::MissingPort { node: node.name.clone(), op: node.op.name(), port: i });
                }
            }
        }
        for (id, ty) in self.inferred_types()? {
            if self.g[id].ty != ty {
                let n = &self.g[id];
                return Err(GraphError::Shape {
                    node: n.name.clone(),
                    op: n.op.name(),
                    msg: format!("recorded type {} but inference gives {ty}", n.ty),
                });
            }
        }
        Ok(())
    }

    /// A histogram of op names, sorted by name (Input and Const nodes excluded: they are values, not ops).
    pub fn op_histogram(&self) -> Vec<(&'static str, usize)> {
        let mut m = std::collections::BTreeMap::new();
        for n in self.g.node_weights() {
            if !matches!(n.op, Op::Input | Op::Const(_)) {
                *m.entry(n.op.name()).or_insert(0) += 1;
            }
        }
        m.into_iter().collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    /// Finds a node by name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.g.node_indices().find(|&n| self.g[n].name == name)
    }
}

impl fmt::Display for Graph {
    /// A readable listing, one node a line, skip edges marked: `%7 = Add(%5, ~identity %2) : float32[batch,64,56,56]  # name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = self.topo_order().map_err(|_| fmt::Error)?;
        for id in order {
            let n = &self.g[id];
            let args: Vec<String> = self
                .in_edges(id)
                .into_iter()
                .map(|(_, s, k)| match k {
                    EdgeKind::Data => format!("%{}", s.index()),
                    EdgeKind::Skip(kind) => format!("~{} %{}", kind.name(), s.index()),
                })
                .collect();
            writeln!(f, "%{} = {}({}) : {}  # {}", id.index(), n.label(), args.join(", "), n.ty, n.name)?;
        }
        let outs: Vec<String> = self.outputs.iter().map(|o| format!("{}=%{}", o.name, o.node.index())).collect();
        writeln!(f, "outputs: {}", outs.join(", "))
    }
}
