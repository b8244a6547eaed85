//! ONNX import (and later export) through tract-onnx's prost types (`tract_onnx::pb`).
//!
//! Import is faithful: one IR node per ONNX node, except the static shape arithmetic exporters emit
//! before a Reshape (Shape → Gather → Unsqueeze → Concat), which is folded here, symbolically, so that a
//! dynamic batch axis survives. After import, skips are recognized (`Graph::recognize_skips`).
//!
//! This module owns the translation from protobuf to IR and the errors about what a model file contains;
//! it must not run or optimize anything.

pub mod export;
mod fold;
mod import;
mod ops;
mod proto;

pub use export::{export, save};
pub use import::{import_bytes, load, ImportOptions, SUPPORTED_OPS};
