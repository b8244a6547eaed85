//! The plan: what lowering hands the runtime. Steps over numbered buffers, each buffer with a shape in
//! which the batch may be symbolic, and one flat weight array that steps address by range.
//!
//! A plan is data; `Model::new` checks it (every buffer, range and shape) before a session trusts it.

use crate::kernels::conv::Conv2d;
use crate::kernels::elementwise::{BinaryOp, UnaryOp};
use crate::kernels::pad::PadMode;
use crate::kernels::pool::Pool2d;

/// One dimension of a buffer: fixed, or the batch size chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Batch,
}

impl Dim {
    pub fn resolve(self, batch: usize) -> usize {
        match self {
            Dim::Fixed(n) => n,
            Dim::Batch => batch,
        }
    }
}

/// Resolves a symbolic shape for one batch size.
pub fn resolve(shape: &[Dim], batch: usize) -> Vec<usize> {
    shape.iter().map(|d| d.resolve(batch)).collect()
}

/// Formats a symbolic shape as `[N,3,224,224]`.
pub fn fmt_dims(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Batch => "N".to_string(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

/// A range of the plan's weight array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightRange {
    pub offset: usize,
    pub len: usize,
}

/// Where a buffer's contents come from.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferKind {
    /// Model input number `i`.
    Input(usize),
    /// Written by a step.
    Activation,
    /// A constant operand, read from the weights.
    Const(WeightRange),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub shape: Vec<Dim>,
    pub kind: BufferKind,
}

/// A named model input or output and its buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Io {
    pub name: String,
    pub buffer: usize,
}

/// A convolution step: `weight` is `[M, (C/G)·kh·kw]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvStep {
    pub geom: Conv2d,
    pub weight: WeightRange,
    pub bias: Option<WeightRange>,
    pub act: Option<UnaryOp>,
}

/// Y[M×N] = alpha · op(A) · W + beta · C, A read as `[M, K]` (or `[K, M]` when `trans_a`), `weight` is
/// `W = op(B)` packed as `[K, N]` row-major; `c` broadcasts to `[M, N]` with the given shape.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmStep {
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub alpha: f32,
    pub weight: WeightRange,
    pub c: Option<(WeightRange, Vec<usize>)>,
    pub beta: f32,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOp {
    Conv(ConvStep),
    Gemm(GemmStep),
    /// Batched matrix product of the two inputs.
    MatMul,
    /// y = x · scale[c] + shift[c] over axis 1 (inference BatchNorm, precomputed per channel).
    ChannelAffine {
        scale: WeightRange,
        shift: WeightRange,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Sum,
    MaxPool(Pool2d),
    AvgPool(Pool2d),
    GlobalAvgPool,
    Softmax {
        axis: usize,
    },
    Concat {
        axis: usize,
    },
    Pad {
        pads: Vec<usize>,
        mode: PadMode,
    },
    /// Reshape, Flatten, Identity: the same elements under another shape.
    Copy,
}

impl StepOp {
    pub fn name(&self) -> &'static str {
        match self {
            StepOp::Conv(_) => "conv",
            StepOp::Gemm(_) => "gemm",
            StepOp::MatMul => "matmul",
            StepOp::ChannelAffine { .. } => "channel_affine",
            StepOp::Unary(_) => "unary",
            StepOp::Binary(_) => "binary",
            StepOp::Sum => "sum",
            StepOp::MaxPool(_) => "max_pool",
            StepOp::AvgPool(_) => "avg_pool",
            StepOp::GlobalAvgPool => "global_avg_pool",
            StepOp::Softmax { .. } => "softmax",
            StepOp::Concat { .. } => "concat",
            StepOp::Pad { .. } => "pad",
            StepOp::Copy => "copy",
        }
    }
}

/// One step: `output = op(inputs...)`. `name` is the IR node's name, for errors and profiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub op: StepOp,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// A compiled model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub buffers: Vec<Buffer>,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub steps: Vec<Step>,
    pub weights: Vec<f32>,
}
