//! Training: backpropagation through the forward IR graph, with the spec's learning rule.
//!
//! A [`TrainPlan`] is built from an imported graph ([`plan`]): every layer becomes a step with its forward
//! and backward arithmetic ([`steps`]; BatchNorm's in `batchnorm`), the matrices that feed one layer (main path and weighted or dense
//! skips) are merged so that their update ΔW_cat = −η δ^l a_catᵀ is one product over a feature arena
//! ([`mem`]), identity skips pass δ^l back with no weight. [`loss`] has the losses, [`optim`] SGD (the spec's
//! rule), momentum, Adam, weight decay and schedules, [`data`] the digits and `.npy` data, [`trainer`] the
//! epoch loop, and [`experiment`] the degradation experiment.
//!
//! This module tree owns training end to end; it reads the IR and writes trained weights back into it, and
//! uses the runtime only for its matrix product.

mod batchnorm;
pub mod cmd;
pub mod data;
pub mod experiment;
pub mod gemm;
pub mod loss;
pub mod mem;
pub mod optim;
pub mod plan;
pub mod steps;
pub mod trainer;

pub use data::{Dataset, Rng};
pub use loss::{Loss, Targets};
pub use optim::{Optimizer, OptimizerKind, Schedule};
pub use plan::{PlanOptions, TrainPlan};
pub use trainer::{evaluate, fit, EpochStats, TrainConfig};
