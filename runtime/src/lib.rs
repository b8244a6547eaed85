//! resin-runtime: executes compiled plans on the CPU.
//!
//! This is the crate applications embed. It owns the [`Plan`] (steps over numbered buffers, produced by
//! the compiler's lowering), the kernels that execute steps, and the [`Model`] / [`Session`] API. It must
//! never depend on the IR, petgraph, tract or clap: the runtime sees only plans.
//!
//! # Embedding
//!
//! An application ships a compiled `.resin` file (`resin compile model.onnx -o model.resin`) and uses
//! three types:
//!
//! - [`Model`]: the checked plan and its weights, loaded once with [`Model::load`] (which memory-maps the
//!   file: nothing is copied) or [`Model::from_bytes`]. A model is immutable, cheap to clone (an `Arc`)
//!   and `Send + Sync`: share one model between all threads.
//! - [`Session`]: made by [`Model::session`] or [`Model::session_with_threads`], one per thread that runs
//!   the model. It owns a thread pool for the kernels and the activation buffers, which are planned for
//!   a batch size on the first run at that size and reused by later runs. A session is `Send` (it can
//!   move between threads) but [`Session::run`] takes `&mut self`: use one session per concurrent caller.
//! - [`Tensor`]: a row-major `f32` array with its shape, what [`Session::run`] takes and returns.
//!   [`Session::run_arrays`] does the same with `ndarray` arrays.
//!
//! Inputs are given in the model's input order ([`Model::input_names`], [`Model::inputs`] with their
//! shapes, where [`plan::Dim::Batch`] is the free batch dimension); outputs come back in the model's
//! output order ([`Model::output_names`]). Every failure is an [`Error`] that says what was expected
//! and what was given; the runtime does not panic on bad input or a bad file.
//!
//! ```no_run
//! use resin_runtime::{Model, Tensor};
//! use std::path::Path;
//!
//! fn main() -> resin_runtime::Result<()> {
//!     // Once per process: load and check the compiled model (shared by every thread).
//!     let model = Model::load(Path::new("resnet20.resin"))?;
//!     println!("inputs {:?}, outputs {:?}", model.input_names(), model.output_names());
//!
//!     // Once per thread: a session (here with 2 kernel threads), reused for every run.
//!     let mut session = model.session_with_threads(2)?;
//!
//!     // A batch of one 3x32x32 image.
//!     let image = Tensor::new(vec![1, 3, 32, 32], vec![0.5; 3 * 32 * 32]).expect("shape matches data");
//!     let outputs = session.run(&[&image])?;
//!     let logits = &outputs[0]; // shape [1, 10]
//!     println!("class {} (logits {:?})", logits.argmax_rows()[0], logits.data);
//!
//!     // The same with ndarray.
//!     let x = ndarray::Array4::<f32>::zeros((2, 3, 32, 32)).into_dyn();
//!     let y = session.run_arrays(&[x.view()])?;
//!     assert_eq!(y[0].shape(), &[2, 10]);
//!     Ok(())
//! }
//! ```
//!
//! Threads: share the model, give each thread its own session.
//!
//! ```no_run
//! # use resin_runtime::{Model, Tensor};
//! # fn main() -> resin_runtime::Result<()> {
//! let model = Model::load(std::path::Path::new("resnet20.resin"))?;
//! let image = Tensor::new(vec![1, 3, 32, 32], vec![0.0; 3 * 32 * 32]).unwrap();
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| {
//!             let mut session = model.session_with_threads(1)?;
//!             session.run(&[&image])
//!         });
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! With the `capi` feature the crate also exports a C API (the `capi` module, declared in
//! `runtime/include/resin.h`), built as `libresin_runtime.so`.

#[cfg(feature = "capi")]
pub mod capi;
mod check;
pub mod error;
mod exec;
pub mod format;
pub mod io_args;
pub mod kernels;
pub mod npy;
pub mod parallel;
pub mod plan;
pub mod session;
pub mod standalone;
pub mod tensor;

pub use error::{Error, Result};
pub use plan::Plan;
pub use session::{Model, Session};
pub use tensor::Tensor;
