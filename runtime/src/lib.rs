//! resin-runtime: executes compiled plans on the CPU.
//!
//! This is the crate applications embed. It owns the [`Plan`] (steps over numbered buffers, produced by
//! the compiler's lowering), the kernels that execute steps, and the [`Model`] / [`Session`] API. It must
//! never depend on the IR, petgraph, tract or clap: the runtime sees only plans.

mod check;
pub mod error;
mod exec;
pub mod format;
pub mod kernels;
pub mod npy;
pub mod plan;
pub mod session;
pub mod tensor;

pub use error::{Error, Result};
pub use plan::Plan;
pub use session::{Model, Session};
pub use tensor::Tensor;
