//! resin: the compiler. ONNX import and export, passes over the IR, lowering to a runtime plan, and the
//! `resin` command line.
//!
//! Data flows one way: ONNX → [`resin_ir::Graph`] → lowering → [`resin_runtime::Plan`]. The runtime never
//! sees the IR or ONNX.

pub mod bench;
pub mod cli;
pub mod compile;
pub mod demo;
pub mod exe;
pub mod lower;
pub mod onnx;
pub mod passes;
pub mod train;
pub mod viz;
pub mod zoo;

pub use resin_ir as ir;
pub use resin_runtime as runtime;
