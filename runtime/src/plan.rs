//! The plan: what lowering hands the runtime. Steps over numbered buffers, each buffer with a shape in
//! which the batch may be symbolic, and one flat weight array that steps address by range.
//!
//! A plan is data; `Model::new` checks it (every buffer, range and shape) before a session trusts it.
//!
//! Memory: every activation buffer lives in a *slot*. Buffers whose lifetimes do not overlap share a slot
//! (the compiler's memory planner assigns them); a session sizes each slot for the largest buffer it holds
//! at the run's batch size. A step may write the slot of one of its inputs only where the op works in
//! place: the skip operand of a residual epilogue (the product accumulates into it), the input of a
//! `Copy` (a reshape: nothing moves) and the input of a `Unary`.

use crate::kernels::conv::Conv2d;
use crate::kernels::elementwise::{BinaryOp, UnaryOp};
use crate::kernels::pad::PadMode;
use crate::kernels::pool::Pool2d;
use std::sync::Arc;

/// One dimension of a buffer: fixed, or the batch size chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Batch,
}

impl Buffer {
    /// The slot of an activation buffer.
    pub fn slot(&self) -> Option<usize> {
        match self.kind {
            BufferKind::Activation { slot } => Some(slot),
            _ => None,
        }
    }

    /// The base buffer and offset of a view.
    pub fn view(&self) -> Option<(usize, usize)> {
        match self.kind {
            BufferKind::View { base, offset } => Some((base, offset)),
            _ => None,
        }
    }
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
    /// Written by a step, stored in the given slot.
    Activation { slot: usize },
    /// A window of another activation buffer, the *base* (a feature arena): sample n of this buffer is
    /// `base[n·S + offset .. n·S + offset + L]`, S and L the per-sample lengths of base and view. Members of
    /// a concatenation are views, so the concatenation is the base itself and nothing is copied.
    View { base: usize, offset: usize },
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
/// y = act(W ⋆ pre(x) + b + skip), where `skip` (the residual, `inputs[1]`) is present when `residual` and
/// `pre` is the identity when absent.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvStep {
    pub geom: Conv2d,
    pub weight: WeightRange,
    pub bias: Option<WeightRange>,
    pub act: Option<UnaryOp>,
    pub residual: bool,
    /// The input prologue `x' = act(scale[c]·x + shift[c])` (a BatchNorm before the convolution).
    pub pre: Option<PreStep>,
    /// Run as Winograd F(2×2, 3×3) or F(4×4, 3×3) (`kernels::winograd`); `weight` then holds the weights
    /// transformed for that variant. `None`: the GEMM convolution, `weight` packed by `Conv2d::pack_weights`.
    pub winograd: Option<crate::kernels::winograd::Variant>,
}

/// A per-input-channel prologue of a convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct PreStep {
    pub scale: WeightRange,
    pub shift: WeightRange,
    pub act: Option<UnaryOp>,
}

/// Y[M×N] = act(alpha · op(A) · W + beta · C + skip), A read as `[M, K]` (or `[K, M]` when `trans_a`),
/// `weight` is `W = op(B)` packed as `[K, N]` row-major; `c` broadcasts to `[M, N]` with the given shape;
/// `skip` (`inputs[1]`, shape `[M, N]`) is present when `residual`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmStep {
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub alpha: f32,
    pub weight: WeightRange,
    pub c: Option<(WeightRange, Vec<usize>)>,
    pub beta: f32,
    pub act: Option<UnaryOp>,
    pub residual: bool,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOp {
    Conv(ConvStep),
    Gemm(GemmStep),
    /// Batched matrix product of the two inputs.
    MatMul,
    /// `y = x · scale[c] + shift[c]` over axis 1 (inference BatchNorm, precomputed per channel).
    ChannelAffine {
        scale: WeightRange,
        shift: WeightRange,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Sum,
    MaxPool(Pool2d),
    AvgPool(Pool2d),
    /// An average pool of `act(scale[c]·x + shift[c])`: a 1x1 convolution's input prologue, moved in front
    /// of it with the pool (`kernels::pool::avg_pool2d_pre`).
    AvgPoolPre {
        pool: Pool2d,
        pre: PreStep,
    },
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
    /// Kernel scratch (floats) the step needs with `threads` threads, given its output shape: GEMM tile
    /// packing or the zero-padded input for convolutions, plus the packed activations for a Gemm.
    pub fn scratch_len(&self, out_shape: &[usize], threads: usize) -> usize {
        crate::exec::step_scratch(self, out_shape, threads)
    }

    /// Which input, if any, this op may overwrite in place (its output then shares that input's slot).
    pub fn in_place_input(&self) -> Option<usize> {
        match self {
            StepOp::Conv(ConvStep { residual: true, .. }) | StepOp::Gemm(GemmStep { residual: true, .. }) => Some(1),
            StepOp::Copy | StepOp::Unary(_) => Some(0),
            _ => None,
        }
    }

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
            StepOp::AvgPool(_) | StepOp::AvgPoolPre { .. } => "avg_pool",
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

/// The most elements one buffer may hold per sample (4 GiB of float32): a plan that declares more is refused
/// before anything is allocated (the compiler refuses such a shape when it lowers it). ResNet-50's largest
/// activation holds 0.8 M.
pub const MAX_SAMPLE_LEN: usize = 1 << 30;

/// A compiled model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// How many activation slots the buffers use.
    pub slots: usize,
    pub buffers: Vec<Buffer>,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub steps: Vec<Step>,
    pub weights: Weights,
}

impl Plan {
    /// Multiply-accumulates one run at `batch` performs in its convolutions and matrix products (the
    /// figure GFLOP/s = 2 · MACs / time is reported against).
    pub fn macs(&self, batch: usize) -> u64 {
        (0..self.steps.len()).map(|i| self.step_macs(i, batch)).sum()
    }

    /// The multiply-accumulates of step `i` alone at `batch` (0 for steps that are not products).
    pub fn step_macs(&self, i: usize, batch: usize) -> u64 {
        let shape = |b: usize| resolve(&self.buffers[b].shape, batch);
        let s = &self.steps[i];
        let out = shape(s.output);
        let vol = |v: &[usize]| v.iter().product::<usize>() as u64;
        match &s.op {
            StepOp::Conv(c) => vol(&out) * c.geom.k() as u64,
            StepOp::Gemm(g) => vol(&out) * g.k as u64,
            StepOp::MatMul => {
                let a = shape(s.inputs[0]);
                vol(&out) * a.last().copied().unwrap_or(1) as u64
            }
            _ => 0,
        }
    }

    /// Checks every index, range and shape, as [`crate::Model::new`] does (the compiler calls this before
    /// it writes an artifact, so that it never writes one that cannot load).
    pub fn check(&self) -> crate::Result<()> {
        crate::check::check_plan(self)
    }
}

/// The plan's weight array: reads as `&[f32]` (it derefs to a slice). Either owned (what lowering builds,
/// through [`Weights::to_mut`]) or a section of shared bytes such as a memory-mapped `.resin` file, which
/// is never copied: loading a model does not touch its weights.
#[derive(Clone, Default)]
pub struct Weights(Repr);

type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

#[derive(Clone)]
enum Repr {
    Owned(Vec<f32>),
    /// `len` floats at byte `offset` of `bytes`, checked in bounds and 4-byte aligned when made.
    Shared {
        bytes: SharedBytes,
        offset: usize,
        len: usize,
    },
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Owned(Vec::new())
    }
}

impl Weights {
    pub fn new() -> Weights {
        Weights::default()
    }

    /// The `len` little-endian floats at byte `offset` of `bytes`, without copying them. An error if the
    /// range is out of bounds or not 4-byte aligned in memory. On a big-endian target the floats are
    /// copied and byte-swapped instead.
    pub fn shared<T: AsRef<[u8]> + Send + Sync + 'static>(
        bytes: Arc<T>,
        offset: usize,
        len: usize,
    ) -> Result<Weights, String> {
        let all = (*bytes).as_ref();
        let section = len
            .checked_mul(4)
            .and_then(|n| offset.checked_add(n))
            .and_then(|end| all.get(offset..end))
            .ok_or_else(|| format!("{len} weights at byte {offset} exceed the {} bytes", all.len()))?;
        if cfg!(target_endian = "big") {
            let v = section.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            return Ok(Weights(Repr::Owned(v)));
        }
        if bytemuck::try_cast_slice::<u8, f32>(section).is_err() {
            return Err(format!("the weights at byte {offset} are not 4-byte aligned in memory"));
        }
        Ok(Weights(Repr::Shared { bytes, offset, len }))
    }

    pub fn as_slice(&self) -> &[f32] {
        match &self.0 {
            Repr::Owned(v) => v,
            // Checked in bounds and aligned by `shared`: the cast cannot fail.
            Repr::Shared { bytes, offset, len } => {
                bytemuck::cast_slice(&(**bytes).as_ref()[*offset..*offset + len * 4])
            }
        }
    }

    /// The weights as a vector to append to; shared weights are copied first.
    pub fn to_mut(&mut self) -> &mut Vec<f32> {
        if let Repr::Shared { .. } = self.0 {
            self.0 = Repr::Owned(self.as_slice().to_vec());
        }
        match &mut self.0 {
            Repr::Owned(v) => v,
            Repr::Shared { .. } => unreachable!("made owned above"),
        }
    }

    /// Whether the weights are borrowed from shared bytes (a memory-mapped file) rather than owned.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared { .. })
    }
}

impl std::ops::Deref for Weights {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl From<Vec<f32>> for Weights {
    fn from(v: Vec<f32>) -> Weights {
        Weights(Repr::Owned(v))
    }
}

impl PartialEq for Weights {
    fn eq(&self, other: &Weights) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}
