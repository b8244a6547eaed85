//! Kernels: pure functions over `f32` slices and explicit shapes (NCHW, row-major).
//!
//! A kernel owns its math and nothing else: no plan, no buffers, no allocation beyond what its signature
//! hands it (scratch is passed in). Each kernel's doc comment states its math.

pub mod concat;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod matmul;
pub mod pad;
pub mod pool;
pub mod softmax;
pub mod transpose;
pub mod winograd;
