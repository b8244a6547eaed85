//! The steps of a training plan: each op's forward pass in training mode and its backward pass.
//!
//! Notation: a step maps its inputs `x` to its output `y`; `δy = ∂L/∂y` arrives from the steps that read
//! `y` (already summed over all of them: a tensor read by a layer and by a skip gets both gradients), and
//! the backward pass *adds* `δx = ∂L/∂x` into each input's gradient and *writes* the gradient of each
//! parameter (or, with [`BackCtx::sgd`], applies plain SGD to a layer's matrix in the product that would
//! have written its gradient). Tensors are matrices of `batch` rows (see [`super::mem`]); parameter gradients are summed
//! over the batch (the loss already carries the 1/batch of its mean).
//!
//! This module owns the arithmetic of those steps; which steps a graph becomes, and where their tensors
//! live, is decided by [`super::plan`].

use super::gemm::{copy_panels, Copied, Gemm};
use super::mem::{Mem, View};
use resin_runtime::kernels::conv::{conv2d, Conv2d, ConvArgs};
use resin_runtime::kernels::elementwise::{unary, unary_inplace, UnaryOp};
use resin_runtime::kernels::gemm::{
    gemm_packed, gemm_shifted, pack_a, packed_len, BSource, Epilogue, Isa, MatB, MatRef, ShiftedB, MAX_BLOCK,
};
use resin_runtime::kernels::transpose::transpose;
use resin_runtime::kernels::{copy_short, zero_short};

/// A trainable tensor: its values, its gradient (same layout) and the name reports use.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub grad: Vec<f32>,
    /// Set by a backward pass that applied plain SGD to `data` inside the weight-gradient product
    /// ([`BackCtx::sgd`]): `grad` was not written (it holds whatever an earlier pass left), and the
    /// optimizer skips this parameter (and clears the flag) at its next step.
    pub updated: bool,
}

impl Param {
    pub fn new(name: String, shape: Vec<usize>, data: Vec<f32>) -> Self {
        let grad = vec![0.0; data.len()];
        Param { name, shape, data, grad, updated: false }
    }
}

/// One operand of an elementwise step: a tensor of the plan (`batch` rows), or a constant already
/// broadcast to one row (the same for every sample).
#[derive(Clone, Debug)]
pub enum Operand {
    Value(usize),
    Const(Vec<f32>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Relu,
    Sigmoid,
    Clip {
        min: f32,
        max: f32,
    },
    /// Identity, Flatten, Reshape (the batch axis kept, so the rows are unchanged) and inference Dropout.
    Copy,
}

impl Unary {
    /// The runtime's epilogue activation computing the same function (Copy has none: it is no activation).
    pub fn runtime_op(self) -> Option<UnaryOp> {
        match self {
            Unary::Relu => Some(UnaryOp::Relu),
            Unary::Sigmoid => Some(UnaryOp::Sigmoid),
            Unary::Clip { min, max } => Some(UnaryOp::Clip { min, max }),
            Unary::Copy => None,
        }
    }

    /// Whether the derivative is a function of the output a, so that a fused layer can keep a only.
    pub fn fusable(self) -> bool {
        matches!(self, Unary::Relu | Unary::Sigmoid)
    }

    /// y ← act(y).
    #[inline]
    pub(super) fn apply_inplace(self, y: &mut [f32]) {
        match self {
            Unary::Relu => y.iter_mut().for_each(|y| *y = y.max(0.0)),
            Unary::Sigmoid => unary_inplace(UnaryOp::Sigmoid, y),
            Unary::Clip { min, max } => y.iter_mut().for_each(|y| *y = y.max(min).min(max)),
            Unary::Copy => {}
        }
    }

    /// δ ← δ ⊙ act'(z) given a = act(z), for a [`fusable`](Self::fusable) activation: Relu δ·[a > 0],
    /// Sigmoid δ·a(1 − a).
    #[inline]
    pub(super) fn through(self, a: &[f32], d: &mut [f32]) {
        let a = &a[..d.len()];
        match self {
            Unary::Relu => {
                for (d, a) in d.iter_mut().zip(a) {
                    let keep = 0u32.wrapping_sub((*a > 0.0) as u32);
                    *d = f32::from_bits(d.to_bits() & keep);
                }
            }
            Unary::Sigmoid => d.iter_mut().zip(a).for_each(|(d, a)| *d *= a * (1.0 - a)),
            Unary::Clip { .. } | Unary::Copy => unreachable!("only Relu and Sigmoid are fused into a layer"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// A layer fed by one or more matrices, with biases and unweighted addends:
///
/// z = α · Σ_i a_i W_i + Σ_j β_j c_j + Σ_k s_k,  written  z = α · a_cat W_cat + …
///
/// where `a_cat = [a_1 … a_m]` (batch × ΣK_i) concatenates the inputs and `W_cat` stacks the matrices
/// (ΣK_i × N, each `W_i` stored `[K_i, N]`). An identity skip is an addend `s_k` (no weight); a weighted or
/// dense skip is one of the `W_i`. Backward, with δ = ∂L/∂z:
///
/// - ∂L/∂W_cat = α · a_catᵀ δ — ONE product for all of the layer's matrices (the spec's
///   ΔW^{l-k,l} = −η a^{l-k} δ^l for every k at once, once the optimizer applies −η, or the product
///   itself with plain SGD: W_cat += −η α a_catᵀ δ, after the ∂L/∂a_cat product that reads the old W);
/// - ∂L/∂a_cat += α · δ W_catᵀ — one product again, added into the inputs' gradients;
/// - ∂L/∂c_j = β_j Σ_rows δ;   ∂L/∂s_k += δ (an identity skip passes δ^l unchanged to a^{l-k}).
///
/// With `merged` off the same quantities are computed matrix by matrix (one product per `W_i`), which is
/// what the merged form is tested and timed against.
#[derive(Clone, Debug)]
pub struct Linear {
    pub terms: Vec<usize>,
    pub widths: Vec<usize>,
    /// `a_cat` as one view of a feature arena, when the inputs lie side by side in it.
    pub cat: Option<View>,
    pub w: usize,
    pub alpha: f32,
    pub biases: Vec<(usize, f32)>,
    pub addends: Vec<usize>,
    pub out: usize,
    pub n: usize,
    pub merged: bool,
    /// The activation that follows the layer, fused by the plan when z has no other reader: the step's
    /// `out` is then a = act(z) (a merged layer's Relu in the product's epilogue, otherwise in a pass over
    /// the rows just written), and backward first turns δa into δz = δa ⊙ act'(z) in place (Relu: `[a > 0]`;
    /// Sigmoid: a(1 − a)). Only Relu and Sigmoid, whose derivatives are functions of a.
    pub act: Option<Unary>,
    /// Set by the plan when this step is the first to write every column of `cat`'s gradient and no
    /// addend lies among them: the ∂L/∂a_cat product then overwrites instead of adding, and those
    /// columns are not zeroed first (see `plan::first_writes`).
    pub dx_overwrites: bool,
    pub(crate) gathered: Vec<f32>,
    pub(crate) dgathered: Vec<f32>,
    pub(crate) gemm: Gemm,
}

/// 2-D convolution (NCHW), per image n and group g, as products over the im2col matrix
///
/// ```text
/// cols_ng[(c,u,v), (i,j)] = x[n, g·C_g + c, i·s₀ + u·d₀ − p_t, j·s₁ + v·d₁ − p_l]  (0 in the padding)
/// Y_ng = W_g cols_ng  (W_g: M_g × C_g·kh·kw),   y[n, m, i, j] = Y[m, (i,j)] + b[m]
/// ```
///
/// which is never materialized: its blocks are copied straight into the product's tiles from a zero-padded
/// copy of the image (implicit GEMM). With stride 1 the product runs on the padded grid (output pixel (i, j)
/// at column i·W_p + j, so each im2col row of a block is one contiguous run; the kept columns are then
/// compacted into y). Backward, with Δ_ng = ∂L/∂Y_ng: ∂L/∂W_g = Σ_n Δ_ng cols_ngᵀ (colsᵀ with its columns in
/// (u, v, c) order, copied from a channels-last padded copy of the image, then reordered to W's layout),
/// `∂L/∂b[m] = Σ Δ[·, m, ·]`, and ∂L/∂x: with stride 1 the convolution of Δ by the flipped, channel-swapped
/// kernel (on the padded grid again), otherwise ∂L/∂cols_ng = W_gᵀ Δ_ng scattered back (col2im, adding
/// overlaps). The batch's images are split between the threads.
#[derive(Clone, Debug)]
pub struct Conv {
    pub x: usize,
    pub out: usize,
    pub w: usize,
    pub b: Option<usize>,
    /// Input channels, height, width.
    pub chw: [usize; 3],
    pub m: usize,
    pub k: [usize; 2],
    pub o: [usize; 2],
    pub strides: [usize; 2],
    /// [top, left]
    pub pads: [usize; 2],
    pub dil: [usize; 2],
    pub group: usize,
    pub(crate) bufs: ConvBufs,
}

/// Batch normalization over axis 1 of `[batch, C, S…]`. In training, with n = batch·S values per channel:
///
/// μ = mean(x), σ² = mean((x − μ)²), x̂ = (x − μ)/√(σ² + ε), y = γ x̂ + β, and the running statistics move
/// as PyTorch's do: μ_r ← (1 − m)μ_r + m μ, σ²_r ← (1 − m)σ²_r + m σ²·n/(n − 1) (m = 0.1).
/// Backward: ∂L/∂γ = Σ δ x̂, ∂L/∂β = Σ δ, ∂L/∂x = γ/(n√(σ²+ε)) · (n δ − Σδ − x̂ Σ δ x̂).
/// In evaluation the running statistics replace μ and σ² (no gradient is taken then).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub x: usize,
    pub out: usize,
    pub scale: usize,
    pub bias: usize,
    pub c: usize,
    pub s: usize,
    pub eps: f32,
    pub momentum: f32,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    /// The last training pass's batch mean and 1/√(σ² + ε) per channel, for the backward.
    pub(crate) mean: Vec<f32>,
    pub(crate) inv_std: Vec<f32>,
    /// Per image and channel, partial sums over the image's plane, added in image order: the forward's Σx
    /// and (Σ(x − μ)², Σ(x − μ)), the backward's (Σδ, Σδx̂).
    pub(crate) partial: Vec<(f64, f64)>,
    /// A Relu or Sigmoid fused by the plan, as [`Linear::act`]: `out` holds a = act(BN(x)), and backward
    /// first turns δa into δ of the normalized output, in place.
    pub act: Option<Unary>,
}

/// Max or average pooling (2-D). Max: y = x at the window's arg-max (first one on ties), and δ goes
/// back to that one input. Average: y = Σ_window x / count, δx += δy / count for every input of the window,
/// where count is PyTorch's (the window clipped to the padded input with `count_include_pad`, else to the
/// input). GlobalAveragePool is the average over the whole plane.
#[derive(Clone, Debug)]
pub struct Pool {
    pub x: usize,
    pub out: usize,
    pub max: bool,
    pub chw: [usize; 3],
    pub o: [usize; 2],
    pub k: [usize; 2],
    pub strides: [usize; 2],
    pub pads: [usize; 4],
    pub dil: [usize; 2],
    pub count_include_pad: bool,
    pub(crate) arg: Vec<u32>,
}

/// A step of the training plan.
#[derive(Clone, Debug)]
pub enum StepKind {
    Linear(Linear),
    Conv(Conv),
    BatchNorm(BatchNorm),
    Pool(Pool),
    /// y[n, c] = mean over the plane of x[n, c, ·]; δx = δy / (H·W).
    GlobalAvgPool {
        x: usize,
        out: usize,
        c: usize,
        s: usize,
    },
    /// Relu: `δx = δy·[y > 0]`. Sigmoid: δx = δy·y(1 − y). Clip: `δx = δy·[min < x < max]`. Copy: δx = δy.
    Unary {
        op: Unary,
        x: usize,
        out: usize,
    },
    /// y = a ∘ b elementwise (same shapes, or a constant broadcast). Add: δa = δy, δb = δy. Sub: δa = δy,
    /// δb = −δy. Mul: δa = δy·b, δb = δy·a (a gate's gradient). Div: δa = δy/b, δb = −δy·a/b².
    Binary {
        op: Binary,
        a: Operand,
        b: Operand,
        out: usize,
    },
    /// A highway layer's carry, y = h ⊙ t + x ⊙ (1 − t) (h the transform, t the gate, x the carried
    /// input), fused by the plan from the Mul, Sub, Mul and Add it is exported as, and computed in that
    /// order, so the values are the same bits. Backward: δh += δy ⊙ t, δx += δy ⊙ (1 − t),
    /// δt += δy ⊙ h − δy ⊙ x (the gate's gradient), one pass where the four steps took seven.
    Gate {
        h: usize,
        t: usize,
        x: usize,
        out: usize,
    },
    /// y = Σ x_i; δx_i = δy.
    Sum {
        xs: Vec<usize>,
        out: usize,
    },
    /// Concatenation along an axis ≥ 1: per sample, `outer` blocks of each input's `chunk` elements in turn;
    /// δ is split the same way.
    Concat {
        xs: Vec<(usize, usize)>,
        out: usize,
        outer: usize,
    },
}

impl StepKind {
    /// The value the step writes.
    pub fn output(&self) -> usize {
        match self {
            StepKind::Linear(Linear { out, .. })
            | StepKind::Conv(Conv { out, .. })
            | StepKind::BatchNorm(BatchNorm { out, .. })
            | StepKind::Pool(Pool { out, .. })
            | StepKind::GlobalAvgPool { out, .. }
            | StepKind::Unary { out, .. }
            | StepKind::Binary { out, .. }
            | StepKind::Gate { out, .. }
            | StepKind::Sum { out, .. }
            | StepKind::Concat { out, .. } => *out,
        }
    }

    /// The values the step reads, whose gradients its backward adds to.
    pub fn reads(&self) -> Vec<usize> {
        match self {
            StepKind::Linear(l) => l.terms.iter().chain(&l.addends).copied().collect(),
            StepKind::Conv(Conv { x, .. })
            | StepKind::BatchNorm(BatchNorm { x, .. })
            | StepKind::Pool(Pool { x, .. })
            | StepKind::GlobalAvgPool { x, .. }
            | StepKind::Unary { x, .. } => vec![*x],
            StepKind::Binary { a, b, .. } => [a, b]
                .into_iter()
                .filter_map(|o| match o {
                    Operand::Value(v) => Some(*v),
                    Operand::Const(_) => None,
                })
                .collect(),
            StepKind::Gate { h, t, x, .. } => vec![*h, *t, *x],
            StepKind::Sum { xs, .. } => xs.clone(),
            StepKind::Concat { xs, .. } => xs.iter().map(|x| x.0).collect(),
        }
    }
}

/// A named step.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
}

/// What a step needs to run: the tensors' views and the parameters.
pub struct Ctx<'a, 'b> {
    pub views: &'a [View],
    pub vals: &'a Mem<'b>,
    pub params: &'a mut [Param],
    pub threads: usize,
    pub training: bool,
}

/// The backward context: values, gradients (same views) and parameters.
pub struct BackCtx<'a, 'b> {
    pub views: &'a [View],
    pub vals: &'a Mem<'b>,
    pub grads: &'a Mem<'b>,
    pub params: &'a mut [Param],
    pub threads: usize,
    /// Plain SGD's learning rate η when the optimizer lets the weight-gradient products apply the update
    /// themselves: a layer's matrix then becomes W ← W − η ∂L/∂W in the product that computes ∂L/∂W
    /// (C = W, accumulated, A scaled by −η), after every product that reads the old W. The spec's rule
    /// ΔW = −η a^{l-k} δ^l, equal to the separate update up to rounding (−η scales a before the products
    /// are summed; a batch past 256 rows adds into W block by block), with no gradient buffer written and
    /// no separate update pass over W.
    pub sgd: Option<f32>,
    /// The values whose gradient the running step writes first, over every column (set by the plan per
    /// step): it zeroes each of their rows right before adding into it, where the plan would otherwise
    /// have zeroed the whole gradient in a pass of its own (streaming it through memory once more).
    pub overwrite: &'a [usize],
}

impl BackCtx<'_, '_> {
    /// Whether the running step writes `v`'s gradient first (see [`BackCtx::overwrite`]).
    pub(super) fn first_write(&self, v: usize) -> bool {
        self.overwrite.contains(&v)
    }
}

impl Linear {
    fn forward(&mut self, cx: &mut Ctx) {
        let rows = cx.vals.rows();
        let out = cx.views[self.out];
        for r in 0..rows {
            let y = cx.vals.row_mut(&out, r);
            y.fill(0.0);
            for &(b, beta) in &self.biases {
                for (y, c) in y.iter_mut().zip(&cx.params[b].data) {
                    *y += beta * c;
                }
            }
            for &s in &self.addends {
                for (y, s) in y.iter_mut().zip(cx.vals.row(&cx.views[s], r)) {
                    *y += s;
                }
            }
        }
        let ktot: usize = self.widths.iter().sum();
        let w = &cx.params[self.w].data;
        // Each product packs its A (the inputs) before C is borrowed: a fused layer may write a into the
        // feature arena its inputs lie in (disjoint columns), so the two slices must never be live at once.
        let n = self.n;
        if self.merged {
            let a = match &self.cat {
                Some(v) => MatRef::new(cx.vals.mat(v), v.ld),
                None => {
                    self.gathered.resize(rows * ktot, 0.0);
                    let mut off = 0;
                    for (&t, &k) in self.terms.iter().zip(&self.widths) {
                        for r in 0..rows {
                            self.gathered[r * ktot + off..r * ktot + off + k]
                                .copy_from_slice(cx.vals.row(&cx.views[t], r));
                        }
                        off += k;
                    }
                    MatRef::new(&self.gathered, ktot)
                }
            };
            self.gemm.pack(rows, ktot, a, self.alpha);
            // Relu runs in the micro-kernel's store; Sigmoid in a pass of its own below (the epilogue's
            // per-tile calls measured slower than one vectorizable pass over the rows).
            let epi = self.act.filter(|a| *a == Unary::Relu).and_then(Unary::runtime_op);
            let b = Copied(MatB(MatRef::new(w, n)));
            self.gemm.mul_packed(rows, n, ktot, &b, true, epi, cx.vals.mat_mut(&out), out.ld, cx.threads);
        } else {
            let mut off = 0;
            for (&t, &k) in self.terms.iter().zip(&self.widths) {
                let v = cx.views[t];
                self.gemm.pack(rows, k, MatRef::new(cx.vals.mat(&v), v.ld), self.alpha);
                let b = Copied(MatB(MatRef::new(&w[off * n..(off + k) * n], n)));
                self.gemm.mul_packed(rows, n, k, &b, true, None, cx.vals.mat_mut(&out), out.ld, cx.threads);
                off += k;
            }
        }
        if let Some(op) = self.act.filter(|a| !self.merged || *a != Unary::Relu) {
            let vals = cx.vals;
            par_rows(rows, rows * out.cols, cx.threads, |r| op.apply_inplace(vals.row_mut(&out, r)));
        }
    }

    fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let dv = cx.views[self.out];
        if let Some(op) = self.act {
            undo_activation(op, &dv, cx.vals, cx.grads, cx.threads);
        }
        let n = self.n;
        let ktot: usize = self.widths.iter().sum();
        for &(b, beta) in &self.biases {
            let g = &mut cx.params[b].grad;
            g.fill(0.0);
            for r in 0..rows {
                for (g, x) in g.iter_mut().zip(cx.grads.row(&dv, r)) {
                    *g += beta * x;
                }
            }
        }
        for &s in &self.addends {
            let sv = cx.views[s];
            for r in 0..rows {
                let src = cx.grads.row(&dv, r);
                for (g, x) in cx.grads.row_mut(&sv, r).iter_mut().zip(src) {
                    *g += x;
                }
            }
        }
        // δ as a matrix, borrowed afresh at every use: the addends' rows above and each ∂L/∂a product
        // below may write the arena δ lies in (other columns), and a slice of it held across such a write
        // would alias the write's.
        let grads = cx.grads;
        let delta = || MatRef::new(grads.mat(&dv), dv.ld);
        let sgd = cx.sgd;
        let p = &mut cx.params[self.w];
        // ∂L/∂W (rows k0..k0+k of it) = α aᵀ δ, or with fused SGD W ← W − η α aᵀ δ: the same product
        // with A scaled by −η and accumulated into W. It runs after the ∂L/∂a product of the same rows,
        // which reads the old W.
        let weight_product = |gemm: &mut Gemm, p: &mut Param, a: MatRef, k0: usize, k: usize| {
            let rows_of = k0 * n..(k0 + k) * n;
            let d = delta();
            match sgd {
                None => gemm.mul(k, n, rows, self.alpha, a, d, 0.0, &mut p.grad[rows_of], n, cx.threads),
                Some(lr) => gemm.mul(k, n, rows, -lr * self.alpha, a, d, 1.0, &mut p.data[rows_of], n, cx.threads),
            }
        };
        if self.merged {
            let (a, lda) = match &self.cat {
                Some(v) => (cx.vals.mat(v), v.ld),
                None => (&self.gathered[..], ktot),
            };
            let at = MatRef { data: a, ld: lda, trans: true };
            // ∂L/∂W_cat = α a_catᵀ δ: one product over the concatenated inputs.
            if sgd.is_none() {
                weight_product(&mut self.gemm, p, at, 0, ktot);
            }
            // ∂L/∂a_cat += α δ W_catᵀ: one product, straight into the arena's gradient when a_cat is a view.
            let wp = &p.data;
            let wt = Copied(MatB(MatRef { data: wp, ld: n, trans: true }));
            match &self.cat {
                Some(v) => {
                    // δ is packed before the arena's gradient is borrowed (δ of a fused layer may lie in it).
                    self.gemm.pack(rows, n, delta(), self.alpha);
                    let acc = !self.dx_overwrites;
                    self.gemm.mul_packed(rows, ktot, n, &wt, acc, None, cx.grads.mat_mut(v), v.ld, cx.threads);
                }
                None => {
                    let wt = wt.0 .0;
                    self.dgathered.resize(rows * ktot, 0.0);
                    self.gemm.mul(rows, ktot, n, self.alpha, delta(), wt, 0.0, &mut self.dgathered, ktot, cx.threads);
                    let mut off = 0;
                    for (&t, &k) in self.terms.iter().zip(&self.widths) {
                        for r in 0..rows {
                            let src = &self.dgathered[r * ktot + off..r * ktot + off + k];
                            for (g, x) in cx.grads.row_mut(&cx.views[t], r).iter_mut().zip(src) {
                                *g += x;
                            }
                        }
                        off += k;
                    }
                }
            }
            if sgd.is_some() {
                weight_product(&mut self.gemm, p, at, 0, ktot);
            }
        } else {
            let mut off = 0;
            for (&t, &k) in self.terms.iter().zip(&self.widths) {
                let v = cx.views[t];
                let a = MatRef { data: cx.vals.mat(&v), ld: v.ld, trans: true };
                if sgd.is_none() {
                    weight_product(&mut self.gemm, p, a, off, k);
                }
                let wt = Copied(MatB(MatRef { data: &p.data[off * n..(off + k) * n], ld: n, trans: true }));
                self.gemm.pack(rows, n, delta(), self.alpha);
                self.gemm.mul_packed(rows, k, n, &wt, true, None, cx.grads.mat_mut(&v), v.ld, cx.threads);
                if sgd.is_some() {
                    weight_product(&mut self.gemm, p, a, off, k);
                }
                off += k;
            }
        }
        p.updated = sgd.is_some();
    }
}

/// A convolution's buffers, kept between steps.
#[derive(Clone, Debug, Default)]
pub struct ConvBufs {
    /// The weights packed for the forward product, and the flipped, transposed weights (`W'`) packed for
    /// the backward product by the input when it is a convolution too.
    wpacked: Vec<f32>,
    wflip: Vec<f32>,
    flip: Vec<f32>,
    /// One per thread: the images are split between them.
    lanes: Vec<Lane>,
}

/// What one thread of a convolution works with.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    scratch: Vec<f32>,
    /// One image's input planes, zero-padded.
    pad: Vec<f32>,
    /// Products of the weight gradient, and of ∂L/∂cols when that is scattered back.
    gw: Gemm,
    gx: Gemm,
    dcols: Vec<f32>,
    /// This thread's share of ∂L/∂W.
    dw: Vec<f32>,
    /// A stride-1 product's output on the padded grid, before it is compacted into y.
    grid: Vec<f32>,
    /// ∂L/∂W of one group with its columns in (u, v, c) order, summed over this thread's images.
    dwt: Vec<f32>,
    /// One image's Δ packed as the weight gradient's A, and where each output pixel's window starts in
    /// the channels-last copy (B read in place, see [`Conv::backward`]).
    dpack: Vec<f32>,
    offs: Vec<u32>,
}

/// Runs `f(lane, images, part_of_y, gemm_threads)` over the `rows` images split into contiguous parts, one
/// per thread of the installed pool (see [`super::plan::TrainPlan`]); `part_of_y` starts at the part's first image (row stride
/// `yld`). With fewer images than threads, one part whose products use all the threads. Returns the number
/// of parts (lanes used).
fn split_images<F>(rows: usize, threads: usize, lanes: &mut Vec<Lane>, y: &mut [f32], yld: usize, f: F) -> usize
where
    F: Fn(&mut Lane, std::ops::Range<usize>, &mut [f32], usize) + Sync,
{
    let threads = threads.max(1);
    let parts = if rows >= threads { threads } else { 1 };
    if lanes.len() < parts {
        lanes.resize_with(parts, Lane::default);
    }
    if parts == 1 {
        f(&mut lanes[0], 0..rows, y, threads);
        return 1;
    }
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = y;
    let mut at = 0;
    for (i, lane) in lanes.iter_mut().take(parts).enumerate() {
        let (lo, hi) = (i * rows / parts, (i + 1) * rows / parts);
        let end = if i + 1 == parts { rest.len() } else { (hi * yld - at).min(rest.len()) };
        let (head, tail) = rest.split_at_mut(end);
        pieces.push((lane, lo..hi, head));
        rest = tail;
        at += end;
    }
    // On the plan's installed pool (persistent workers; no thread is spawned per step).
    resin_runtime::parallel::for_chunks_mut(&mut pieces, 1, |_, p| {
        let (lane, r, yp) = &mut p[0];
        f(lane, r.clone(), yp, 1)
    });
    parts
}

/// Where a convolution reads: one image's (and group's) input planes, zero-padded to exactly the extent
/// the convolution reads ([`ConvDims::padded`]), so that every im2col run is a plain copy; and the geometry.
#[derive(Clone, Copy)]
struct Gather<'a> {
    x: &'a [f32],
    hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    o: [usize; 2],
}

/// A stretch of consecutive output pixels along one output row: (first index in the range, length,
/// output row, output column).
type Run = (usize, usize, usize, usize);

impl Gather<'_> {
    /// The runs of output pixels p0..p0+len.
    fn runs(&self, p0: usize, len: usize, out: &mut Vec<Run>) {
        out.clear();
        let o1 = self.o[1];
        let mut q = 0;
        while q < len {
            let p = p0 + q;
            let (oi, oj) = (p / o1, p % o1);
            let n = (o1 - oj).min(len - q);
            out.push((q, n, oi, oj));
            q += n;
        }
    }

    /// Writes im2col row (c, u, v) over the pixels of `runs` into `out`, from zero-padded planes.
    #[inline]
    fn row(&self, c: usize, u: usize, v: usize, runs: &[Run], out: &mut [f32]) {
        let [h, w] = self.hw;
        let plane = &self.x[c * h * w..(c + 1) * h * w];
        let s1 = self.s[1];
        let base = u * self.d[0] * w + v * self.d[1];
        for &(q, len, oi, oj) in runs {
            let at = base + oi * self.s[0] * w + oj * s1;
            if s1 == 1 {
                copy_short(&mut out[q..q + len], &plane[at..at + len]);
            } else {
                for (o, s) in out[q..q + len].iter_mut().zip(plane[at..].iter().step_by(s1)) {
                    *o = *s;
                }
            }
        }
    }

    /// (c, u, v) of im2col row `r`.
    #[inline]
    fn tap(&self, r: usize) -> (usize, usize, usize) {
        let [kh, kw] = self.k;
        (r / (kh * kw), (r / kw) % kh, r % kw)
    }
}

/// The im2col matrix of one image and group as GEMM B (rows (c,u,v), columns output pixels), gathered
/// straight into the packed tiles.
struct Im2col<'a>(Gather<'a>);

impl BSource for Im2col<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let mut buf = [0f32; MAX_BLOCK];
        let mut runs = Vec::with_capacity(nc);
        self.0.runs(n0, nc, &mut runs);
        let (mut c, mut u, mut v) = self.0.tap(k0);
        for i in 0..kc {
            let row = &mut buf[..nc];
            self.0.row(c, u, v, &runs, row);
            v += 1;
            if v == self.0.k[1] {
                v = 0;
                u += 1;
                if u == self.0.k[0] {
                    u = 0;
                    c += 1;
                }
            }
            for (t, piece) in row.chunks(nr).enumerate() {
                let at = t * kc * nr + i * nr;
                copy_short(&mut dst[at..at + piece.len()], piece);
            }
        }
    }
}

/// The im2col matrix of one image and group on the padded grid (stride 1): row (c, u, v), column q (an
/// output pixel (i, j) sits at q = i·W_p + j, W_p the padded width; the columns j ≥ W_o are garbage that
/// nobody keeps) is `x_p[c, u·d₀·W_p + v·d₁ + q]`, so every row of a block is ONE contiguous run of the
/// padded plane, whatever the image width.
struct GridIm2col<'a>(Gather<'a>);

impl BSource for GridIm2col<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let g = &self.0;
        let [h, w] = g.hw;
        // Where each row of the block starts in the padded planes.
        let mut rows = [0usize; resin_runtime::kernels::gemm::KC];
        assert!(kc <= rows.len());
        let (mut c, mut u, mut v) = g.tap(k0);
        for r in rows[..kc].iter_mut() {
            *r = c * h * w + u * g.d[0] * w + v * g.d[1] + n0;
            v += 1;
            if v == g.k[1] {
                v = 0;
                u += 1;
                if u == g.k[0] {
                    u = 0;
                    c += 1;
                }
            }
        }
        copy_panels(g.x, &rows[..kc], nc, dst, nr);
    }
}

/// One image's (and group's) input, zero-padded as [`ConvDims::padded`] does but channels-last: channel c
/// of padded pixel (r, col) at `(r·W_p + col)·C + c`.
struct Nhwc<'a> {
    x: &'a [f32],
    c: usize,
    wp: usize,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    ow: usize,
}

/// The transposed im2col of one image and group as B of ∂L/∂W = Δ colsᵀ, with the columns in (u, v, c)
/// order: element (p, (u, v, c)) = x_p[c, i·s₀ + u·d₀, j·s₁ + v·d₁] for output pixel p = (i, j). From the
/// channels-last copy, a micro-panel's row is a run of consecutive channels of one padded pixel: one
/// contiguous copy, no transpose (the image was transposed once, instead of every im2col element).
struct ColsTNhwc<'a>(Nhwc<'a>);

impl BSource for ColsTNhwc<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let g = &self.0;
        let cg = g.c;
        // Where each row's pixel starts in the channels-last copy.
        let mut rows = [0usize; resin_runtime::kernels::gemm::KC];
        assert!(kc <= rows.len());
        let (mut i0, mut j0) = (k0 / g.ow, k0 % g.ow);
        for r in rows[..kc].iter_mut() {
            *r = (i0 * g.s[0] * g.wp + j0 * g.s[1]) * cg;
            j0 += 1;
            if j0 == g.ow {
                j0 = 0;
                i0 += 1;
            }
        }
        let tap_off = |col: usize| {
            let (tap, c) = (col / cg, col % cg);
            (u_v_off(tap / g.k[1], tap % g.k[1], g) * cg + c, cg - c)
        };
        if cg.is_multiple_of(nr) {
            // Every panel lies within one tap: one contiguous run of nr channels per row. Offsetting the
            // rows by the panel's tap and handing them to `copy_panels` one panel at a time.
            let mut shifted = [0usize; resin_runtime::kernels::gemm::KC];
            for t in 0..nc.div_ceil(nr) {
                let cols = nr.min(nc - t * nr);
                let (off, _) = tap_off(n0 + t * nr);
                for (s, r) in shifted[..kc].iter_mut().zip(&rows[..kc]) {
                    *s = r + off;
                }
                copy_panels(g.x, &shifted[..kc], cols, &mut dst[t * kc * nr..(t + 1) * kc * nr], nr);
            }
            return;
        }
        for t in 0..nc.div_ceil(nr) {
            let cols = nr.min(nc - t * nr);
            let panel = &mut dst[t * kc * nr..(t + 1) * kc * nr];
            // Columns of one tap (u, v) are consecutive channels: one run per tap within the panel.
            let mut jj = 0;
            while jj < cols {
                let (off, left) = tap_off(n0 + t * nr + jj);
                let len = left.min(cols - jj);
                for (i, &r) in rows[..kc].iter().enumerate() {
                    let at = r + off;
                    copy_short(&mut panel[i * nr + jj..i * nr + jj + len], &g.x[at..at + len]);
                }
                jj += len;
            }
        }
    }
}

/// Offset, in pixels of the padded grid, of kernel tap (u, v).
#[inline]
fn u_v_off(u: usize, v: usize, g: &Nhwc) -> usize {
    u * g.d[0] * g.wp + v * g.d[1]
}

/// The shape of one convolution as the products see it (the forward one, or the backward one by the input).
#[derive(Clone, Copy, Debug)]
struct ConvDims {
    c: usize,
    hw: [usize; 2],
    m: usize,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    pads: [usize; 2],
    o: [usize; 2],
    group: usize,
}

impl ConvDims {
    fn ckk(&self) -> usize {
        self.c / self.group * self.k[0] * self.k[1]
    }

    /// The extent of the input the convolution reads, padding included: rows and columns.
    fn padded_hw(&self) -> [usize; 2] {
        let span = |o: usize, s: usize, k: usize, d: usize| (o.max(1) - 1) * s + (k - 1) * d + 1;
        [span(self.o[0], self.s[0], self.k[0], self.d[0]), span(self.o[1], self.s[1], self.k[1], self.d[1])]
    }

    /// Copies one image's (and group's) input planes into `buf`, zero-padded to exactly what the
    /// convolution reads, and returns the gather over it (every im2col run then is a plain copy).
    fn padded<'a>(&self, x: &[f32], buf: &'a mut Vec<f32>) -> Gather<'a> {
        let cg = self.c / self.group;
        let [h, w] = self.hw;
        let [hp, wp] = self.padded_hw();
        let [pt, pl] = self.pads;
        buf.resize(cg * hp * wp, 0.0);
        // Columns of a padded row that come from the input: iw = col − pl in 0..w.
        let (c0, c1) = (pl.min(wp), (pl + w).min(wp));
        for c in 0..cg {
            for r in 0..hp {
                let dst = &mut buf[(c * hp + r) * wp..(c * hp + r + 1) * wp];
                let ih = r as isize - pt as isize;
                if ih < 0 || ih >= h as isize || c0 >= c1 {
                    dst.fill(0.0);
                    continue;
                }
                let src = &x[(c * h + ih as usize) * w..(c * h + ih as usize + 1) * w];
                zero_short(&mut dst[..c0]);
                copy_short(&mut dst[c0..c1], src);
                zero_short(&mut dst[c1..]);
            }
        }
        Gather { x: buf, hw: [hp, wp], k: self.k, s: self.s, d: self.d, o: self.o }
    }

    /// The channels-last version of [`ConvDims::padded`] (for the weight gradient's B): each input row
    /// of every channel transposed into its padded row, only the padding zeroed.
    fn padded_nhwc<'a>(&self, x: &[f32], buf: &'a mut Vec<f32>) -> Nhwc<'a> {
        let cg = self.c / self.group;
        let [h, w] = self.hw;
        let [hp, wp] = self.padded_hw();
        let [pt, pl] = self.pads;
        // 16 floats of slack past the grid: a product reading it in place loads whole 16-float vectors.
        buf.resize(hp * wp * cg + 16, 0.0);
        // Input columns that land inside the padded extent: iw < c1.
        let c1 = w.min(wp.saturating_sub(pl));
        for (r, row) in buf[..hp * wp * cg].chunks_exact_mut(wp * cg).enumerate() {
            let ih = r as isize - pt as isize;
            if ih < 0 || ih >= h as isize || c1 == 0 {
                row.fill(0.0);
                continue;
            }
            let ih = ih as usize;
            row[..pl * cg].fill(0.0);
            row[(pl + c1) * cg..].fill(0.0);
            transpose(cg, c1, &x[ih * w..], h * w, &mut row[pl * cg..], cg);
        }
        Nhwc { x: buf, c: cg, wp, k: self.k, s: self.s, d: self.d, ow: self.o[1] }
    }

    /// The runtime's description of this convolution. Its bottom and right pads are what the output size
    /// needs; the in-place path never reads them (it pads to what the output reads, as [`Self::padded_hw`]).
    fn conv2d(&self) -> Conv2d {
        let [hp, wp] = self.padded_hw();
        Conv2d {
            cin: self.c,
            cout: self.m,
            kernel: self.k,
            strides: self.s,
            pads: [
                self.pads[0],
                self.pads[1],
                hp.saturating_sub(self.pads[0] + self.hw[0]),
                wp.saturating_sub(self.pads[1] + self.hw[1]),
            ],
            dilations: self.d,
            group: self.group,
        }
    }

    /// Whether the products run on the padded grid ([`GridIm2col`]): stride 1 and not a plain 1x1.
    fn on_grid(&self) -> bool {
        self.s == [1, 1] && !(self.k == [1, 1] && self.pads == [0, 0] && self.o == self.hw)
    }

    /// Packs `[M, C/G·kh·kw]` weights group by group as the products' A.
    fn pack(&self, w: &[f32], dst: &mut Vec<f32>) {
        let (mg, ckk) = (self.m / self.group, self.ckk());
        let wlen = packed_len(mg, ckk);
        dst.resize(self.group * wlen, 0.0);
        for g in 0..self.group {
            let src = MatRef::new(&w[g * mg * ckk..(g + 1) * mg * ckk], ckk);
            pack_a(mg, ckk, src, 1.0, &mut dst[g * wlen..(g + 1) * wlen]);
        }
    }

    /// y_n = W ⋆ x_n (+ bias) (+ y_n when `accumulate`) for the `rows` images: one product per image and
    /// group, the im2col matrix gathered into the product's tiles (read in place for a 1x1, stride-1 conv);
    /// a convolution with small weights runs the runtime's `conv2d` instead, which reads a padded copy in
    /// place (so `RESIN_CONV` steers training too).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        packed: &[f32],
        bias: Option<&[f32]>,
        accumulate: bool,
        x: &[f32],
        xld: usize,
        y: &mut [f32],
        yld: usize,
        rows: usize,
        threads: usize,
        lanes: &mut Vec<Lane>,
    ) {
        let isa = Isa::detect();
        let (cg, mg, ckk) = (self.c / self.group, self.m / self.group, self.ckk());
        let [h, w] = self.hw;
        let ohw = self.o[0] * self.o[1];
        let wlen = packed_len(mg, ckk);
        let pointwise = self.k == [1, 1] && self.s == [1, 1] && self.pads == [0, 0] && self.o == self.hw;
        let grid = self.on_grid();
        // The runtime's convolution when its in-place path applies (small weights): it reads a padded
        // copy of the input through shifted views (on AVX-512 a stride-1 layer as wide as its input reads
        // the input itself under masks), no packing of B (and on AVX-512 its tiles run across the rows
        // of a narrow output); see `Conv2d::reads_in_place`.
        let p = self.conv2d();
        let runtime = p.reads_in_place(self.o[1]);
        split_images(rows, threads, lanes, y, yld, |lane, images, y, threads| {
            let gemm_scratch = resin_runtime::kernels::gemm::scratch_len(isa, threads);
            let need =
                if runtime { p.scratch_len(self.o[0], self.o[1], threads).max(gemm_scratch) } else { gemm_scratch };
            if lane.scratch.len() < need {
                lane.scratch.resize(need, 0.0);
            }
            let first = images.start;
            if runtime {
                let [oh, ow] = self.o;
                for n in images {
                    let args = ConvArgs {
                        x: &x[n * xld..],
                        x_stride: xld,
                        n: 1,
                        h,
                        w,
                        p: &p,
                        weight: packed,
                        bias,
                        act: None,
                        accumulate,
                        pre: None,
                        oh,
                        ow,
                        y_stride: yld,
                    };
                    let yo = (n - first) * yld;
                    conv2d(&args, &mut y[yo..yo + self.m * ohw], &mut lane.scratch, threads);
                }
                return;
            }
            for n in images {
                for g in 0..self.group {
                    let xg = &x[n * xld + g * cg * h * w..n * xld + (g + 1) * cg * h * w];
                    let yo = (n - first) * yld;
                    let yg = &mut y[yo + g * mg * ohw..yo + (g + 1) * mg * ohw];
                    let epi = Epilogue { accumulate, bias: bias.map(|b| &b[g * mg..(g + 1) * mg]), act: None };
                    let a = &packed[g * wlen..(g + 1) * wlen];
                    if pointwise {
                        let b = MatB(MatRef::new(xg, h * w));
                        gemm_packed(isa, mg, ohw, ckk, a, &b, yg, ohw, &epi, threads, &mut lane.scratch);
                    } else if grid {
                        // On the padded grid, then the kept columns (j < W_o) moved (or added) into y.
                        let [oh, ow] = self.o;
                        let wp = self.padded_hw()[1];
                        let ng = (oh - 1) * wp + ow;
                        lane.grid.resize(mg * ng, 0.0);
                        let b = GridIm2col(self.padded(xg, &mut lane.pad));
                        let epi = Epilogue { accumulate: false, ..epi };
                        gemm_packed(isa, mg, ng, ckk, a, &b, &mut lane.grid, ng, &epi, threads, &mut lane.scratch);
                        for (m, ym) in yg.chunks_exact_mut(ohw).enumerate() {
                            for (i, yr) in ym.chunks_exact_mut(ow).enumerate() {
                                let src = &lane.grid[m * ng + i * wp..m * ng + i * wp + ow];
                                if accumulate {
                                    yr.iter_mut().zip(src).for_each(|(y, s)| *y += s);
                                } else {
                                    yr.copy_from_slice(src);
                                }
                            }
                        }
                    } else {
                        let b = Im2col(self.padded(xg, &mut lane.pad));
                        gemm_packed(isa, mg, ohw, ckk, a, &b, yg, ohw, &epi, threads, &mut lane.scratch);
                    }
                }
            }
        });
    }
}

impl Conv {
    fn ckk(&self) -> usize {
        self.chw[0] / self.group * self.k[0] * self.k[1]
    }

    fn dims(&self) -> ConvDims {
        ConvDims {
            c: self.chw[0],
            hw: [self.chw[1], self.chw[2]],
            m: self.m,
            k: self.k,
            s: self.strides,
            d: self.dil,
            pads: self.pads,
            o: self.o,
            group: self.group,
        }
    }

    /// The backward product by the input as a convolution of Δ, when the stride is 1: ∂L/∂x[c, i, j] =
    /// Σ_{m,u,v} W[m, c, u, v] Δ[m, i + p_t − u·d₀, j + p_l − v·d₁], a convolution with the kernel flipped and
    /// its channel axes swapped, padded by d·(k − 1) − p.
    fn transposed_dims(&self) -> Option<ConvDims> {
        if self.strides != [1, 1] {
            return None;
        }
        let pt = (self.dil[0] * (self.k[0] - 1)).checked_sub(self.pads[0])?;
        let pl = (self.dil[1] * (self.k[1] - 1)).checked_sub(self.pads[1])?;
        Some(ConvDims {
            c: self.m,
            hw: self.o,
            m: self.chw[0],
            k: self.k,
            s: [1, 1],
            d: self.dil,
            pads: [pt, pl],
            o: [self.chw[1], self.chw[2]],
            group: self.group,
        })
    }

    fn forward(&mut self, cx: &mut Ctx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let dims = self.dims();
        dims.pack(&cx.params[self.w].data, &mut self.bufs.wpacked);
        let bias = self.b.map(|b| &cx.params[b].data[..]);
        let (x, y) = (cx.vals.mat(&xv), cx.vals.mat_mut(&ov));
        dims.run(&self.bufs.wpacked, bias, false, x, xv.ld, y, ov.ld, rows, cx.threads, &mut self.bufs.lanes);
    }

    fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let ohw = self.o[0] * self.o[1];
        let ckk = self.ckk();
        let mg = self.m / self.group;
        let [c, h, w] = self.chw;
        let cg = c / self.group;
        let dims = self.dims();
        let (x, dy) = (cx.vals.mat(&xv), cx.grads.mat(&ov));
        if let Some(b) = self.b {
            let g = &mut cx.params[b].grad;
            g.fill(0.0);
            for n in 0..rows {
                for (m, g) in g.iter_mut().enumerate() {
                    *g += lanes_sum(&dy[n * ov.ld + m * ohw..n * ov.ld + (m + 1) * ohw], |v| v) as f32;
                }
            }
        }
        // ∂L/∂W_g = Σ_n Δ_ng cols_ngᵀ, one product per image with the transposed im2col (columns in (u, v, c)
        // order, from a channels-last copy of the image) as B; each thread sums its images and reorders the
        // columns to W's (c, u, v), then the threads' sums are added in order.
        //
        // With no dilation along the width, a window row (one u, every v and c) is `kw·C_g` consecutive
        // floats of the channels-last copy, so B is read in place ([`gemm_shifted`]): the row of output
        // pixel p = (i, j) starts at offs[p] = (i·s₀·W_p + j·s₁)·C_g, its columns (u, (v, c)) lie at
        // u·d₀·W_p·C_g + v·C_g + c from there; no im2col is packed.
        let taps = self.k[0] * self.k[1];
        let in_place = self.dil[1] == 1 && ohw > 0;
        let isa = Isa::detect();
        let parts = split_images(rows, cx.threads, &mut self.bufs.lanes, &mut [], 0, |lane, images, _, threads| {
            lane.dw.resize(self.group * mg * ckk, 0.0);
            lane.dwt.resize(mg * ckk, 0.0);
            let first = images.start;
            let wp = dims.padded_hw()[1];
            if in_place {
                let (ow, [s0, s1]) = (self.o[1], self.strides);
                lane.offs.clear();
                lane.offs.extend(
                    (0..ohw).map(|p| u32::try_from((p / ow * s0 * wp + p % ow * s1) * cg).expect("image too large")),
                );
                lane.dpack.resize(packed_len(mg, ohw), 0.0);
            }
            for g in 0..self.group {
                for n in images.clone() {
                    let d = MatRef::new(&dy[n * ov.ld + g * mg * ohw..n * ov.ld + (g + 1) * mg * ohw], ohw);
                    let xg = &x[n * xv.ld + g * cg * h * w..n * xv.ld + (g + 1) * cg * h * w];
                    let nhwc = dims.padded_nhwc(xg, &mut lane.pad);
                    if in_place {
                        pack_a(mg, ohw, d, 1.0, &mut lane.dpack);
                        let b = ShiftedB {
                            data: nhwc.x,
                            offs: &lane.offs,
                            width: self.k[1] * cg,
                            rows: self.k[0],
                            stride: self.dil[0] * wp * cg,
                        };
                        let epi = Epilogue { accumulate: n > first, bias: None, act: None };
                        gemm_shifted(isa, mg, &lane.dpack, &b, &mut lane.dwt, ckk, &epi, threads);
                    } else {
                        lane.gw.pack(mg, ohw, d, 1.0);
                        let b = ColsTNhwc(nhwc);
                        lane.gw.mul_packed(mg, ckk, ohw, &b, n > first, None, &mut lane.dwt, ckk, threads);
                    }
                }
                for (m, src) in lane.dwt.chunks_exact(ckk).enumerate() {
                    let dst = &mut lane.dw[(g * mg + m) * ckk..(g * mg + m + 1) * ckk];
                    for (tap, run) in src.chunks_exact(cg).enumerate() {
                        for (c, v) in run.iter().enumerate() {
                            dst[c * taps + tap] = *v;
                        }
                    }
                }
            }
        });
        let p = &mut cx.params[self.w];
        p.grad.copy_from_slice(&self.bufs.lanes[0].dw);
        for lane in &self.bufs.lanes[1..parts] {
            p.grad.iter_mut().zip(&lane.dw).for_each(|(g, d)| *g += d);
        }
        let wt = &p.data;
        let dx = cx.grads.mat_mut(&xv);
        if let Some(td) = self.transposed_dims() {
            // ∂L/∂x += conv(Δ, W') with W'[g·C_g + c, m, u, v] = W[g·M_g + m, c, kh−1−u, kw−1−v].
            let [kh, kw] = self.k;
            self.bufs.flip.resize(wt.len(), 0.0);
            for g in 0..self.group {
                for cl in 0..cg {
                    for ml in 0..mg {
                        for u in 0..kh {
                            for v in 0..kw {
                                self.bufs.flip[(((g * cg + cl) * mg + ml) * kh + u) * kw + v] =
                                    wt[(((g * mg + ml) * cg + cl) * kh + kh - 1 - u) * kw + kw - 1 - v];
                            }
                        }
                    }
                }
            }
            td.pack(&self.bufs.flip, &mut self.bufs.wflip);
            td.run(&self.bufs.wflip, None, true, dy, ov.ld, dx, xv.ld, rows, cx.threads, &mut self.bufs.lanes);
            return;
        }
        // Otherwise ∂L/∂cols = W_gᵀ Δ_ng per image, scattered back (col2im, adding overlaps).
        let mut lanes = std::mem::take(&mut self.bufs.lanes);
        split_images(rows, cx.threads, &mut lanes, dx, xv.ld, |lane, images, dx, threads| {
            lane.dcols.resize(ckk * ohw, 0.0);
            let first = images.start;
            for g in 0..self.group {
                let wgt = MatRef { data: &wt[g * mg * ckk..(g + 1) * mg * ckk], ld: ckk, trans: true };
                lane.gx.pack(ckk, mg, wgt, 1.0);
                for n in images.clone() {
                    let d = MatRef::new(&dy[n * ov.ld + g * mg * ohw..n * ov.ld + (g + 1) * mg * ohw], ohw);
                    lane.gx.mul_packed(ckk, ohw, mg, &Copied(MatB(d)), false, None, &mut lane.dcols, ohw, threads);
                    let xo = (n - first) * xv.ld;
                    for cl in 0..cg {
                        let plane = &mut dx[xo + (g * cg + cl) * h * w..xo + (g * cg + cl + 1) * h * w];
                        for u in 0..self.k[0] {
                            for v in 0..self.k[1] {
                                let row = (cl * self.k[0] + u) * self.k[1] + v;
                                let src = &lane.dcols[row * ohw..(row + 1) * ohw];
                                self.col2im_row(src, plane, u, v);
                            }
                        }
                    }
                }
            }
        });
        self.bufs.lanes = lanes;
    }

    /// Adds one row of ∂L/∂cols (kernel tap (u, v) of one channel, every output pixel) into the channel's
    /// input-gradient plane.
    fn col2im_row(&self, src: &[f32], plane: &mut [f32], u: usize, v: usize) {
        let [_, h, w] = self.chw;
        let s1 = self.strides[1];
        for i in 0..self.o[0] {
            let ih = (i * self.strides[0] + u * self.dil[0]) as isize - self.pads[0] as isize;
            if ih < 0 || ih >= h as isize {
                continue;
            }
            let len = self.o[1];
            let x0 = (v * self.dil[1]) as isize - self.pads[1] as isize;
            let lo = if x0 >= 0 { 0 } else { ((-x0) as usize).div_ceil(s1).min(len) };
            let hi = if x0 >= w as isize { lo } else { ((w as isize - x0) as usize).div_ceil(s1).clamp(lo, len) };
            let drow = &mut plane[ih as usize * w..(ih as usize + 1) * w];
            let srow = &src[i * len..(i + 1) * len];
            for q in lo..hi {
                drow[(x0 + (q * s1) as isize) as usize] += srow[q];
            }
        }
    }
}

/// Σ xs in eight float32 lanes (vectorized), returned in float64.
#[inline]
fn lanes_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += f(*x);
        }
    }
    let tail: f32 = it.remainder().iter().map(|&x| f(x)).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}

/// Elementwise work below this many elements stays on one thread (a dispatch costs a few microseconds).
const PAR_MIN: usize = 1 << 14;

/// How many parts `units` independent pieces of `elems` elements in all are split into.
pub(super) fn parts_for(units: usize, elems: usize, threads: usize) -> usize {
    if elems >= PAR_MIN {
        threads.min(units).max(1)
    } else {
        1
    }
}

/// The backward of an activation fused into the step that writes `out` (a layer or a BatchNorm):
/// δz = δa ⊙ act'(z) in place, from a = act(z) in `out`'s values. The fusing step is the only reader of
/// δa, so it may overwrite it.
fn undo_activation(op: Unary, out: &View, vals: &Mem, grads: &Mem, threads: usize) {
    let rows = vals.rows();
    par_rows(rows, rows * out.cols, threads, |r| op.through(vals.row(out, r), grads.row_mut(out, r)));
}

/// Runs `f(r)` for every row r < `rows`, the rows split into contiguous ranges, one per thread of the
/// installed pool. `f` must write only row r of the tensors it writes (so the parts write disjoint rows).
pub(super) fn par_rows(rows: usize, elems: usize, threads: usize, f: impl Fn(usize) + Sync) {
    let parts = parts_for(rows, elems, threads);
    resin_runtime::parallel::run(parts, &|p| (p * rows / parts..(p + 1) * rows / parts).for_each(&f));
}

impl Pool {
    /// Calls `f(out_index, in_index, count)` for every input of every output window (in bounds only), with
    /// the window's averaging count as PyTorch computes it.
    fn windows(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [c, h, w] = self.chw;
        for ch in 0..c {
            for i in 0..self.o[0] {
                for j in 0..self.o[1] {
                    let oi = (ch * self.o[0] + i) * self.o[1] + j;
                    let h0 = (i * self.strides[0]) as isize - self.pads[0] as isize;
                    let w0 = (j * self.strides[1]) as isize - self.pads[1] as isize;
                    let count = if self.count_include_pad {
                        let he = (h0 + self.k[0] as isize).min((h + self.pads[2]) as isize);
                        let we = (w0 + self.k[1] as isize).min((w + self.pads[3]) as isize);
                        ((he - h0) * (we - w0)) as usize
                    } else {
                        let hs = h0.max(0);
                        let ws = w0.max(0);
                        let he = (h0 + self.k[0] as isize).min(h as isize);
                        let we = (w0 + self.k[1] as isize).min(w as isize);
                        ((he - hs).max(0) * (we - ws).max(0)) as usize
                    };
                    let count = count.max(1);
                    for u in 0..self.k[0] {
                        let ih = h0 + (u * self.dil[0]) as isize;
                        if ih < 0 || ih >= h as isize {
                            continue;
                        }
                        for v in 0..self.k[1] {
                            let iw = w0 + (v * self.dil[1]) as isize;
                            if iw >= 0 && iw < w as isize {
                                f(oi, (ch * h + ih as usize) * w + iw as usize, count);
                            }
                        }
                    }
                }
            }
        }
    }

    fn forward(&mut self, cx: &mut Ctx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let per = self.chw[0] * self.o[0] * self.o[1];
        let mut args = std::mem::take(&mut self.arg);
        args.resize(rows * per, 0);
        let mut counts = vec![1usize; per];
        for r in 0..rows {
            let x = cx.vals.row(&xv, r);
            let y = cx.vals.row_mut(&ov, r);
            let arg = &mut args[r * per..(r + 1) * per];
            if self.max {
                y.fill(f32::NEG_INFINITY);
                self.windows(|o, i, _| {
                    if x[i] > y[o] {
                        y[o] = x[i];
                        arg[o] = i as u32;
                    }
                });
            } else {
                y.fill(0.0);
                self.windows(|o, i, n| {
                    y[o] += x[i];
                    counts[o] = n;
                });
                for (y, n) in y.iter_mut().zip(&counts) {
                    *y /= *n as f32;
                }
            }
        }
        self.arg = args;
    }

    fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let per = self.chw[0] * self.o[0] * self.o[1];
        for r in 0..rows {
            let dy = cx.grads.row(&ov, r);
            let dx = cx.grads.row_mut(&xv, r);
            if self.max {
                for (o, d) in dy.iter().enumerate() {
                    dx[self.arg[r * per + o] as usize] += d;
                }
            } else {
                self.windows(|o, i, n| dx[i] += dy[o] / n as f32);
            }
        }
    }
}

fn operand_row<'a>(o: &'a Operand, cx_vals: &'a Mem, views: &[View], r: usize) -> &'a [f32] {
    match o {
        Operand::Value(v) => cx_vals.row(&views[*v], r),
        Operand::Const(c) => c,
    }
}

impl Step {
    /// Runs the step forward (training mode uses batch statistics and keeps what backward needs).
    pub fn forward(&mut self, cx: &mut Ctx) {
        let rows = cx.vals.rows();
        match &mut self.kind {
            StepKind::Linear(l) => l.forward(cx),
            StepKind::Conv(c) => c.forward(cx),
            StepKind::BatchNorm(b) => b.forward(cx),
            StepKind::Pool(p) => p.forward(cx),
            StepKind::GlobalAvgPool { x, out, c, s } => {
                let (xv, ov, vals, s) = (cx.views[*x], cx.views[*out], cx.vals, *s);
                par_rows(rows, rows * *c * s, cx.threads, |r| {
                    let xr = vals.row(&xv, r);
                    for (ch, y) in vals.row_mut(&ov, r).iter_mut().enumerate() {
                        *y = xr[ch * s..(ch + 1) * s].iter().sum::<f32>() / s as f32;
                    }
                });
            }
            StepKind::Unary { op, x, out } => {
                let (op, xv, ov, vals) = (*op, cx.views[*x], cx.views[*out], cx.vals);
                par_rows(rows, rows * ov.cols, cx.threads, |r| {
                    let xr = vals.row(&xv, r);
                    let y = vals.row_mut(&ov, r);
                    match op {
                        Unary::Relu => y.iter_mut().zip(xr).for_each(|(y, x)| *y = x.max(0.0)),
                        Unary::Sigmoid => unary(UnaryOp::Sigmoid, xr, y),
                        Unary::Clip { min, max } => y.iter_mut().zip(xr).for_each(|(y, x)| *y = x.max(min).min(max)),
                        Unary::Copy => y.copy_from_slice(xr),
                    }
                });
            }
            StepKind::Binary { op, a, b, out } => {
                let (op, ov, vals, views) = (*op, cx.views[*out], cx.vals, cx.views);
                let (a, b) = (&*a, &*b);
                par_rows(rows, rows * ov.cols, cx.threads, |r| {
                    let (ar, br) = (operand_row(a, vals, views, r), operand_row(b, vals, views, r));
                    let it = vals.row_mut(&ov, r).iter_mut().zip(ar).zip(br);
                    match op {
                        Binary::Add => it.for_each(|((y, a), b)| *y = a + b),
                        Binary::Sub => it.for_each(|((y, a), b)| *y = a - b),
                        Binary::Mul => it.for_each(|((y, a), b)| *y = a * b),
                        Binary::Div => it.for_each(|((y, a), b)| *y = a / b),
                    }
                });
            }
            StepKind::Gate { h, t, x, out } => {
                let (vals, views) = (cx.vals, cx.views);
                let [hv, tv, xv, ov] = [*h, *t, *x, *out].map(|v| views[v]);
                par_rows(rows, rows * ov.cols * 3, cx.threads, |r| {
                    let (h, t, x) = (vals.row(&hv, r), vals.row(&tv, r), vals.row(&xv, r));
                    for (((y, h), t), x) in vals.row_mut(&ov, r).iter_mut().zip(h).zip(t).zip(x) {
                        *y = h * t + x * (1.0 - t);
                    }
                });
            }
            StepKind::Sum { xs, out } => {
                let (ov, vals, views, xs) = (cx.views[*out], cx.vals, cx.views, &*xs);
                par_rows(rows, rows * ov.cols * xs.len(), cx.threads, |r| {
                    let y = vals.row_mut(&ov, r);
                    y.copy_from_slice(vals.row(&views[xs[0]], r));
                    for x in &xs[1..] {
                        y.iter_mut().zip(vals.row(&views[*x], r)).for_each(|(y, x)| *y += x);
                    }
                });
            }
            StepKind::Concat { xs, out, outer } => {
                let ov = cx.views[*out];
                let total: usize = xs.iter().map(|x| x.1).sum();
                for r in 0..rows {
                    let y = cx.vals.row_mut(&ov, r);
                    let mut off = 0;
                    for &(x, chunk) in xs.iter() {
                        let xr = cx.vals.row(&cx.views[x], r);
                        for o in 0..*outer {
                            y[o * total + off..o * total + off + chunk]
                                .copy_from_slice(&xr[o * chunk..(o + 1) * chunk]);
                        }
                        off += chunk;
                    }
                }
            }
        }
    }

    /// Runs the step backward: adds its inputs' gradients, writes its parameters' gradients.
    pub fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        match &mut self.kind {
            StepKind::Linear(l) => l.backward(cx),
            StepKind::Conv(c) => c.backward(cx),
            StepKind::BatchNorm(b) => b.backward(cx),
            StepKind::Pool(p) => p.backward(cx),
            StepKind::GlobalAvgPool { x, out, c, s } => {
                let (xv, ov, grads, s, first) = (cx.views[*x], cx.views[*out], cx.grads, *s, cx.first_write(*x));
                par_rows(rows, rows * *c * s, cx.threads, |r| {
                    let dy = grads.row(&ov, r);
                    let dx = grads.grad_row(&xv, r, first);
                    for (ch, d) in dy.iter().enumerate() {
                        dx[ch * s..(ch + 1) * s].iter_mut().for_each(|g| *g += d / s as f32);
                    }
                });
            }
            StepKind::Unary { op, x, out } => {
                let (op, xv, ov, vals, grads) = (*op, cx.views[*x], cx.views[*out], cx.vals, cx.grads);
                let first = cx.first_write(*x);
                par_rows(rows, rows * ov.cols, cx.threads, |r| {
                    let (dy, y, xr) = (grads.row(&ov, r), vals.row(&ov, r), vals.row(&xv, r));
                    let dx = grads.grad_row(&xv, r, first);
                    let n = dx.len();
                    let (dy, y, xr) = (&dy[..n], &y[..n], &xr[..n]);
                    match op {
                        Unary::Relu => {
                            // δ where y > 0, else +0: a bit mask, so that the loop vectorizes.
                            for ((dx, d), y) in dx.iter_mut().zip(dy).zip(y) {
                                let keep = 0u32.wrapping_sub((*y > 0.0) as u32);
                                *dx += f32::from_bits(d.to_bits() & keep);
                            }
                        }
                        Unary::Sigmoid => {
                            for ((dx, d), y) in dx.iter_mut().zip(dy).zip(y) {
                                *dx += d * y * (1.0 - y);
                            }
                        }
                        Unary::Clip { min, max } => {
                            for ((dx, d), x) in dx.iter_mut().zip(dy).zip(xr) {
                                *dx += if *x > min && *x < max { *d } else { 0.0 };
                            }
                        }
                        Unary::Copy => dx.iter_mut().zip(dy).for_each(|(dx, d)| *dx += d),
                    }
                });
            }
            StepKind::Binary { op, a, b, out } => {
                let (op, ov, vals, grads, views) = (*op, cx.views[*out], cx.vals, cx.grads, cx.views);
                let first = |o: &Operand| matches!(o, Operand::Value(v) if cx.first_write(*v));
                let (a, b, first_a, first_b) = (&*a, &*b, first(a), first(b));
                par_rows(rows, rows * ov.cols, cx.threads, |r| {
                    let dy = grads.row(&ov, r);
                    let (ar, br) = (operand_row(a, vals, views, r), operand_row(b, vals, views, r));
                    if let Operand::Value(av) = a {
                        let da = grads.grad_row(&views[*av], r, first_a);
                        let it = da.iter_mut().zip(dy).zip(br);
                        match op {
                            Binary::Add | Binary::Sub => it.for_each(|((g, d), _)| *g += d),
                            Binary::Mul => it.for_each(|((g, d), b)| *g += d * b),
                            Binary::Div => it.for_each(|((g, d), b)| *g += d / b),
                        }
                    }
                    if let Operand::Value(bv) = b {
                        let db = grads.grad_row(&views[*bv], r, first_b);
                        let it = db.iter_mut().zip(dy).zip(ar).zip(br);
                        match op {
                            Binary::Add => it.for_each(|(((g, d), _), _)| *g += d),
                            Binary::Sub => it.for_each(|(((g, d), _), _)| *g -= d),
                            Binary::Mul => it.for_each(|(((g, d), a), _)| *g += d * a),
                            Binary::Div => it.for_each(|(((g, d), a), b)| *g += -d * a / (b * b)),
                        }
                    }
                });
            }
            StepKind::Gate { h, t, x, out } => {
                let (vals, grads, views) = (cx.vals, cx.grads, cx.views);
                let [hv, tv, xv, ov] = [*h, *t, *x, *out].map(|v| views[v]);
                par_rows(rows, rows * ov.cols * 4, cx.threads, |r| {
                    let (dy, h, t, x) = (grads.row(&ov, r), vals.row(&hv, r), vals.row(&tv, r), vals.row(&xv, r));
                    // h, t and x are distinct tensors (the plan fuses only then), so their rows are too.
                    let (dh, dt, dx) = (grads.row_mut(&hv, r), grads.row_mut(&tv, r), grads.row_mut(&xv, r));
                    let n = dy.len();
                    let (h, t, x, dh, dt, dx) = (&h[..n], &t[..n], &x[..n], &mut dh[..n], &mut dt[..n], &mut dx[..n]);
                    for i in 0..n {
                        let d = dy[i];
                        dx[i] += d * (1.0 - t[i]);
                        dt[i] = (dt[i] - d * x[i]) + d * h[i];
                        dh[i] += d * t[i];
                    }
                });
            }
            StepKind::Sum { xs, out } => {
                let (ov, grads, views, xs) = (cx.views[*out], cx.grads, cx.views, &*xs);
                par_rows(rows, rows * ov.cols * xs.len(), cx.threads, |r| {
                    let dy = grads.row(&ov, r);
                    for x in xs.iter() {
                        grads.row_mut(&views[*x], r).iter_mut().zip(dy).for_each(|(g, d)| *g += d);
                    }
                });
            }
            StepKind::Concat { xs, out, outer } => {
                let ov = cx.views[*out];
                let total: usize = xs.iter().map(|x| x.1).sum();
                for r in 0..rows {
                    let dy = cx.grads.row(&ov, r);
                    let mut off = 0;
                    for &(x, chunk) in xs.iter() {
                        let dx = cx.grads.row_mut(&cx.views[x], r);
                        for o in 0..*outer {
                            let src = &dy[o * total + off..o * total + off + chunk];
                            dx[o * chunk..(o + 1) * chunk].iter_mut().zip(src).for_each(|(g, d)| *g += d);
                        }
                        off += chunk;
                    }
                }
            }
        }
    }
}
