//! resin-ir: the intermediate representation of a skip-connection network.
//!
//! A network is a DAG ([`Graph`], a `petgraph` `StableDiGraph`) whose nodes are ops with their attributes
//! and weights, and whose edges carry one tensor each and have a kind: [`EdgeKind::Data`] or
//! [`EdgeKind::Skip`] with a [`SkipKind`] (identity, weighted, gated, dense). A plain network is one with no
//! skip edges.
//!
//! This crate owns types, shapes, the op set, shape inference, validation, skip recognition, counting
//! (parameters, MACs) and a builder for writing networks by hand ([`builder`]). It knows nothing of file
//! formats (ONNX lives in the compiler) nor of execution (the runtime never sees this graph).

pub mod builder;
pub mod dim;
pub mod graph;
pub mod infer;
pub mod op;
pub mod skips;
pub mod stats;
pub mod tensor;

pub use dim::{Dim, Shape};
pub use graph::{Edge, EdgeKind, Graph, GraphError, Node, NodeId, Output, SkipKind};
pub use op::Op;
pub use tensor::{DType, Tensor, TensorData, TensorType};
