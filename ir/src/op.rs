//! The op set. An op carries its attributes and, for layers with parameters (Conv, BatchNorm, Gemm),
//! its weights; every other operand arrives over an edge (constants as [`Op::Const`] nodes).
//!
//! Adding an op means: a variant here, its shape rule in `infer.rs`, its import in the compiler's
//! `onnx/ops.rs`, its lowering, its kernel, and its export. Nothing else should need to know.

use crate::tensor::Tensor;
use std::fmt;

/// An activation a pass fused into the op that produces its input (an epilogue).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Sigmoid,
    Clip { min: f32, max: f32 },
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "Relu",
            Activation::Sigmoid => "Sigmoid",
            Activation::Clip { .. } => "Clip",
        }
    }
}

/// A per-input-channel transform a convolution applies to its input as it reads it (a prologue):
/// `x' = act(scale[c]·x + shift[c])`. It is what an inference BatchNorm (and the activation after it) becomes
/// when it precedes a convolution, as in DenseNet's BN-ReLU-Conv layers.
#[derive(Clone, Debug, PartialEq)]
pub struct PreAffine {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub act: Option<Activation>,
}

/// 2-D convolution (NCHW). `weight` is `[M, C/group, kh, kw]`, `bias` is `[M]`.
/// ```text
/// y[n,m,i,j] = act(b[m] + Σ_{c,u,v} W[m,c,u,v] · x[n, g·C/group + c, i·s0 + u·d0 − p_top, j·s1 + v·d1 − p_left]
///              + skip[n,m,i,j])
/// ```
/// where `act` (default identity) and the residual `skip` (operand 1, when present) are epilogues that
/// passes fuse in, and `pre` (when present) transforms x first (zero padding stays zero).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub strides: [usize; 2],
    /// [top, left, bottom, right]
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
    pub act: Option<Activation>,
    pub pre: Option<PreAffine>,
}

impl Conv {
    pub fn out_channels(&self) -> usize {
        self.weight.shape[0]
    }
    pub fn kernel(&self) -> [usize; 2] {
        [self.weight.shape[2], self.weight.shape[3]]
    }
}

/// Inference BatchNormalization over axis 1:
/// y = scale · (x − mean) / sqrt(var + epsilon) + bias.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub scale: Tensor,
    pub bias: Tensor,
    pub mean: Tensor,
    pub var: Tensor,
    pub epsilon: f32,
}

/// General matrix product with a constant right operand:
/// Y = act(alpha · op(A) · op(B) + beta · C + skip), op(X) = Xᵀ when the flag is set. A is `[M,K]` (or
/// `[K,M]`); `act` and the residual `skip` (operand 1, when present) are epilogues fused by passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub b: Tensor,
    /// Broadcastable to `[M, N]`.
    pub c: Option<Tensor>,
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub act: Option<Activation>,
}

impl Gemm {
    /// (K, N) of op(B).
    pub fn kn(&self) -> (usize, usize) {
        let (r, c) = (self.b.shape[0], self.b.shape[1]);
        if self.trans_b {
            (c, r)
        } else {
            (r, c)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// 2-D max or average pooling. Output length per axis: ⌊(L + p_b + p_e − d·(k−1) − 1)/s⌋ + 1 (⌈⌉ with
/// `ceil_mode`).
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// [top, left, bottom, right]
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    /// An input prologue (average pools only): the pool averages `act(scale[c]·x + shift[c])`. It is
    /// what a 1x1 convolution's prologue becomes when the pool moves in front of the convolution.
    pub pre: Option<PreAffine>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    Constant(f32),
    Reflect,
    Edge,
}

/// The op of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A graph input; its type is the node's type.
    Input,
    /// A constant operand (an ONNX initializer or Constant node that is not a layer weight).
    Const(Tensor),
    Conv(Conv),
    BatchNorm(BatchNorm),
    Gemm(Gemm),
    /// Matrix product of two operands with NumPy broadcasting over leading axes.
    MatMul,
    Relu,
    Sigmoid,
    /// y = min(max(x, min), max)
    Clip {
        min: f32,
        max: f32,
    },
    /// Softmax over one axis (normalized, non-negative).
    Softmax {
        axis: usize,
    },
    Add,
    Sub,
    Mul,
    Div,
    /// n-ary sum with broadcasting.
    Sum,
    Pool(Pool),
    GlobalAvgPool,
    /// y = reshape(x, [∏ d[..axis], ∏ d[axis..]])
    Flatten {
        axis: usize,
    },
    /// Target shape with `0` and `-1` already resolved.
    Reshape {
        shape: Vec<crate::Dim>,
    },
    Concat {
        axis: usize,
    },
    /// pads: [begin_0.., end_0..] per axis.
    Pad {
        pads: Vec<usize>,
        mode: PadMode,
    },
    /// Identity (also what inference-mode Dropout imports as).
    Identity,
}

impl Op {
    /// The short name used in histograms, errors and pictures (ONNX's op type where there is one).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Const(_) => "Constant",
            Op::Conv(_) => "Conv",
            Op::BatchNorm(_) => "BatchNormalization",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::Relu => "Relu",
            Op::Sigmoid => "Sigmoid",
            Op::Clip { .. } => "Clip",
            Op::Softmax { .. } => "Softmax",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Sum => "Sum",
            Op::Pool(p) => match p.kind {
                PoolKind::Max => "MaxPool",
                PoolKind::Avg => "AveragePool",
            },
            Op::GlobalAvgPool => "GlobalAveragePool",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Concat { .. } => "Concat",
            Op::Pad { .. } => "Pad",
            Op::Identity => "Identity",
        }
    }

    /// How many edge operands the op takes: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input | Op::Const(_) => (0, 0),
            Op::MatMul | Op::Add | Op::Sub | Op::Mul | Op::Div => (2, 2),
            Op::Conv(_) | Op::Gemm(_) => (1, 2),
            Op::Sum | Op::Concat { .. } => (1, usize::MAX),
            _ => (1, 1),
        }
    }

    /// The weights the op carries, in a fixed order.
    pub fn weights(&self) -> Vec<&Tensor> {
        match self {
            Op::Const(t) => vec![t],
            Op::Conv(c) => std::iter::once(&c.weight).chain(c.bias.as_ref()).collect(),
            Op::BatchNorm(b) => vec![&b.scale, &b.bias, &b.mean, &b.var],
            Op::Gemm(g) => std::iter::once(&g.b).chain(g.c.as_ref()).collect(),
            _ => vec![],
        }
    }

    /// True for elementwise binary ops that broadcast.
    pub fn is_binary(&self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
