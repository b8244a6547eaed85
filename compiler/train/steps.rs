//! The steps of a training plan: each op's forward pass in training mode and its backward pass.
//!
//! Notation: a step maps its inputs `x` to its output `y`; `δy = ∂L/∂y` arrives from the steps that read
//! `y` (already summed over all of them: a tensor read by a layer and by a skip gets both gradients), and
//! the backward pass *adds* `δx = ∂L/∂x` into each input's gradient and *writes* the gradient of each
//! parameter. Tensors are matrices of `batch` rows (see [`super::mem`]); parameter gradients are summed
//! over the batch (the loss already carries the 1/batch of its mean).
//!
//! This module owns the arithmetic of those steps; which steps a graph becomes, and where their tensors
//! live, is decided by [`super::plan`].

use super::mem::{Mem, View};
use resin_runtime::kernels::gemm::{sgemm, MatRef};

/// A trainable tensor: its values, its gradient (same layout) and the name reports use.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub grad: Vec<f32>,
}

impl Param {
    pub fn new(name: String, shape: Vec<usize>, data: Vec<f32>) -> Self {
        let grad = vec![0.0; data.len()];
        Param { name, shape, data, grad }
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
///   ΔW^{l-k,l} = −η a^{l-k} δ^l for every k at once, once the optimizer applies −η);
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
    pub(crate) gathered: Vec<f32>,
    pub(crate) dgathered: Vec<f32>,
}

/// 2-D convolution (NCHW), computed as im2col + one product per group over the whole batch:
///
/// cols_g[(c,u,v), (n,i,j)] = x[n, g·C_g + c, i·s₀ + u·d₀ − p_t, j·s₁ + v·d₁ − p_l]  (0 in the padding)
/// Y_g = W_g cols_g  (W_g: M_g × C_g·kh·kw),   y[n, m, i, j] = Y[m, (n,i,j)] + b[m]
///
/// Backward, with Δ the gradient permuted like Y: ∂L/∂W_g = Δ_g cols_gᵀ, ∂L/∂b[m] = Σ Δ[m, ·],
/// ∂L/∂cols_g = W_gᵀ Δ_g, scattered back (col2im, adding overlaps) into ∂L/∂x.
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
    pub(crate) cols: Vec<f32>,
    pub(crate) y: Vec<f32>,
    pub(crate) dcols: Vec<f32>,
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
    pub(crate) xhat: Vec<f32>,
    pub(crate) inv_std: Vec<f32>,
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
    /// Relu: δx = δy·[y > 0]. Sigmoid: δx = δy·y(1 − y). Clip: δx = δy·[min < x < max]. Copy: δx = δy.
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
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
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
        let y = cx.vals.mat_mut(&out);
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
            sgemm(rows, self.n, ktot, self.alpha, a, MatRef::new(w, self.n), 1.0, y, out.ld, cx.threads);
        } else {
            let mut off = 0;
            for (&t, &k) in self.terms.iter().zip(&self.widths) {
                let v = cx.views[t];
                let wi = MatRef::new(&w[off * self.n..(off + k) * self.n], self.n);
                sgemm(rows, self.n, k, self.alpha, MatRef::new(cx.vals.mat(&v), v.ld), wi, 1.0, y, out.ld, cx.threads);
                off += k;
            }
        }
    }

    fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let dv = cx.views[self.out];
        let d = MatRef::new(cx.grads.mat(&dv), dv.ld);
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
        let (wp, gp) = {
            let p = &mut cx.params[self.w];
            (&p.data, &mut p.grad)
        };
        if self.merged {
            // ∂L/∂W_cat = α a_catᵀ δ: one product over the concatenated inputs.
            let (a, lda) = match &self.cat {
                Some(v) => (cx.vals.mat(v), v.ld),
                None => (&self.gathered[..], ktot),
            };
            sgemm(ktot, n, rows, self.alpha, MatRef { data: a, ld: lda, trans: true }, d, 0.0, gp, n, cx.threads);
            // ∂L/∂a_cat += α δ W_catᵀ: one product, straight into the arena's gradient when a_cat is a view.
            let wt = MatRef { data: wp, ld: n, trans: true };
            match &self.cat {
                Some(v) => sgemm(rows, ktot, n, self.alpha, d, wt, 1.0, cx.grads.mat_mut(v), v.ld, cx.threads),
                None => {
                    self.dgathered.resize(rows * ktot, 0.0);
                    sgemm(rows, ktot, n, self.alpha, d, wt, 0.0, &mut self.dgathered, ktot, cx.threads);
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
        } else {
            let mut off = 0;
            for (&t, &k) in self.terms.iter().zip(&self.widths) {
                let v = cx.views[t];
                let a = MatRef { data: cx.vals.mat(&v), ld: v.ld, trans: true };
                sgemm(k, n, rows, self.alpha, a, d, 0.0, &mut gp[off * n..(off + k) * n], n, cx.threads);
                let wt = MatRef { data: &wp[off * n..(off + k) * n], ld: n, trans: true };
                sgemm(rows, k, n, self.alpha, d, wt, 1.0, cx.grads.mat_mut(&v), v.ld, cx.threads);
                off += k;
            }
        }
    }
}

impl Conv {
    fn ckk(&self) -> usize {
        self.chw[0] / self.group * self.k[0] * self.k[1]
    }

    /// Fills `cols` ([group][ckk][batch·oh·ow]) from the input.
    fn im2col(&mut self, x: &[f32], rows: usize) {
        let [c, h, w] = self.chw;
        let cg = c / self.group;
        let ohw = self.o[0] * self.o[1];
        let ncols = rows * ohw;
        let ckk = self.ckk();
        self.cols.resize(self.group * ckk * ncols, 0.0);
        for g in 0..self.group {
            for cl in 0..cg {
                for u in 0..self.k[0] {
                    for v in 0..self.k[1] {
                        let row = (cl * self.k[0] + u) * self.k[1] + v;
                        let dst = &mut self.cols[(g * ckk + row) * ncols..(g * ckk + row + 1) * ncols];
                        for n in 0..rows {
                            let plane = &x[(n * c + g * cg + cl) * h * w..(n * c + g * cg + cl + 1) * h * w];
                            for i in 0..self.o[0] {
                                let ih = (i * self.strides[0] + u * self.dil[0]) as isize - self.pads[0] as isize;
                                let d = &mut dst[n * ohw + i * self.o[1]..n * ohw + (i + 1) * self.o[1]];
                                if ih < 0 || ih >= h as isize {
                                    d.fill(0.0);
                                    continue;
                                }
                                let src = &plane[ih as usize * w..(ih as usize + 1) * w];
                                for (j, d) in d.iter_mut().enumerate() {
                                    let iw = (j * self.strides[1] + v * self.dil[1]) as isize - self.pads[1] as isize;
                                    *d = if iw < 0 || iw >= w as isize { 0.0 } else { src[iw as usize] };
                                }
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
        self.im2col(cx.vals.mat(&xv), rows);
        let ohw = self.o[0] * self.o[1];
        let ncols = rows * ohw;
        let ckk = self.ckk();
        let mg = self.m / self.group;
        self.y.resize(self.m * ncols, 0.0);
        let w = &cx.params[self.w].data;
        for g in 0..self.group {
            sgemm(
                mg,
                ncols,
                ckk,
                1.0,
                MatRef::new(&w[g * mg * ckk..], ckk),
                MatRef::new(&self.cols[g * ckk * ncols..], ncols),
                0.0,
                &mut self.y[g * mg * ncols..],
                ncols,
                cx.threads,
            );
        }
        let bias = self.b.map(|b| &cx.params[b].data);
        for n in 0..rows {
            let out = cx.vals.row_mut(&ov, n);
            for m in 0..self.m {
                let b = bias.map_or(0.0, |b| b[m]);
                let src = &self.y[m * ncols + n * ohw..m * ncols + (n + 1) * ohw];
                for (o, s) in out[m * ohw..(m + 1) * ohw].iter_mut().zip(src) {
                    *o = s + b;
                }
            }
        }
    }

    fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let ohw = self.o[0] * self.o[1];
        let ncols = rows * ohw;
        let ckk = self.ckk();
        let mg = self.m / self.group;
        // Δ: the output gradient permuted to [M, batch·oh·ow] (reusing `y`).
        for n in 0..rows {
            let d = cx.grads.row(&ov, n);
            for m in 0..self.m {
                self.y[m * ncols + n * ohw..m * ncols + (n + 1) * ohw].copy_from_slice(&d[m * ohw..(m + 1) * ohw]);
            }
        }
        if let Some(b) = self.b {
            let g = &mut cx.params[b].grad;
            for (m, g) in g.iter_mut().enumerate() {
                *g = self.y[m * ncols..(m + 1) * ncols].iter().sum();
            }
        }
        self.dcols.resize(self.group * ckk * ncols, 0.0);
        let p = &mut cx.params[self.w];
        for g in 0..self.group {
            let dy = MatRef::new(&self.y[g * mg * ncols..], ncols);
            let cols_t = MatRef { data: &self.cols[g * ckk * ncols..], ld: ncols, trans: true };
            sgemm(mg, ckk, ncols, 1.0, dy, cols_t, 0.0, &mut p.grad[g * mg * ckk..], ckk, cx.threads);
            let wt = MatRef { data: &p.data[g * mg * ckk..], ld: ckk, trans: true };
            sgemm(ckk, ncols, mg, 1.0, wt, dy, 0.0, &mut self.dcols[g * ckk * ncols..], ncols, cx.threads);
        }
        // col2im: add every column entry back where im2col read it.
        let [c, h, w] = self.chw;
        let cg = c / self.group;
        let dx = cx.grads.mat_mut(&xv);
        debug_assert!(xv.contiguous());
        for g in 0..self.group {
            for cl in 0..cg {
                for u in 0..self.k[0] {
                    for v in 0..self.k[1] {
                        let row = (cl * self.k[0] + u) * self.k[1] + v;
                        let src = &self.dcols[(g * ckk + row) * ncols..(g * ckk + row + 1) * ncols];
                        for n in 0..rows {
                            let base = (n * c + g * cg + cl) * h * w;
                            for i in 0..self.o[0] {
                                let ih = (i * self.strides[0] + u * self.dil[0]) as isize - self.pads[0] as isize;
                                if ih < 0 || ih >= h as isize {
                                    continue;
                                }
                                let s = &src[n * ohw + i * self.o[1]..n * ohw + (i + 1) * self.o[1]];
                                for (j, s) in s.iter().enumerate() {
                                    let iw = (j * self.strides[1] + v * self.dil[1]) as isize - self.pads[1] as isize;
                                    if iw >= 0 && iw < w as isize {
                                        dx[base + ih as usize * w + iw as usize] += s;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

impl BatchNorm {
    fn forward(&mut self, cx: &mut Ctx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let (c, s) = (self.c, self.s);
        let gamma = &cx.params[self.scale].data;
        let beta = &cx.params[self.bias].data;
        self.inv_std.resize(c, 0.0);
        if !cx.training {
            for ch in 0..c {
                let inv = 1.0 / (self.running_var[ch] + self.eps).sqrt();
                for r in 0..rows {
                    let x = &cx.vals.row(&xv, r)[ch * s..(ch + 1) * s];
                    let y = &mut cx.vals.row_mut(&ov, r)[ch * s..(ch + 1) * s];
                    for (y, x) in y.iter_mut().zip(x) {
                        *y = gamma[ch] * (x - self.running_mean[ch]) * inv + beta[ch];
                    }
                }
            }
            return;
        }
        self.xhat.resize(rows * c * s, 0.0);
        let n = (rows * s) as f64;
        for ch in 0..c {
            let mut sum = 0.0f64;
            for r in 0..rows {
                sum += cx.vals.row(&xv, r)[ch * s..(ch + 1) * s].iter().map(|&v| v as f64).sum::<f64>();
            }
            let mean = sum / n;
            let mut sq = 0.0f64;
            for r in 0..rows {
                sq += cx.vals.row(&xv, r)[ch * s..(ch + 1) * s].iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>();
            }
            let var = sq / n;
            let inv = 1.0 / (var + self.eps as f64).sqrt();
            self.inv_std[ch] = inv as f32;
            let m = self.momentum;
            self.running_mean[ch] = (1.0 - m) * self.running_mean[ch] + m * mean as f32;
            let unbiased = if n > 1.0 { var * n / (n - 1.0) } else { var };
            self.running_var[ch] = (1.0 - m) * self.running_var[ch] + m * unbiased as f32;
            for r in 0..rows {
                let x = &cx.vals.row(&xv, r)[ch * s..(ch + 1) * s];
                let xh = &mut self.xhat[(r * c + ch) * s..(r * c + ch + 1) * s];
                let y = &mut cx.vals.row_mut(&ov, r)[ch * s..(ch + 1) * s];
                for ((y, x), xh) in y.iter_mut().zip(x).zip(xh.iter_mut()) {
                    *xh = ((*x as f64 - mean) * inv) as f32;
                    *y = gamma[ch] * *xh + beta[ch];
                }
            }
        }
    }

    fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let (c, s) = (self.c, self.s);
        let n = (rows * s) as f32;
        for ch in 0..c {
            let (mut sd, mut sdx) = (0.0f64, 0.0f64);
            for r in 0..rows {
                let d = &cx.grads.row(&ov, r)[ch * s..(ch + 1) * s];
                let xh = &self.xhat[(r * c + ch) * s..(r * c + ch + 1) * s];
                for (d, xh) in d.iter().zip(xh) {
                    sd += *d as f64;
                    sdx += (*d * *xh) as f64;
                }
            }
            cx.params[self.scale].grad[ch] = sdx as f32;
            cx.params[self.bias].grad[ch] = sd as f32;
            let k = cx.params[self.scale].data[ch] * self.inv_std[ch] / n;
            let (sd, sdx) = (sd as f32, sdx as f32);
            for r in 0..rows {
                let d = &cx.grads.row(&ov, r)[ch * s..(ch + 1) * s];
                let xh = &self.xhat[(r * c + ch) * s..(r * c + ch + 1) * s];
                let dx = &mut cx.grads.row_mut(&xv, r)[ch * s..(ch + 1) * s];
                for ((dx, d), xh) in dx.iter_mut().zip(d).zip(xh) {
                    *dx += k * (n * d - sd - xh * sdx);
                }
            }
        }
    }
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
                let (xv, ov) = (cx.views[*x], cx.views[*out]);
                for r in 0..rows {
                    let xr = cx.vals.row(&xv, r);
                    for (ch, y) in cx.vals.row_mut(&ov, r).iter_mut().enumerate() {
                        *y = xr[ch * *s..(ch + 1) * *s].iter().sum::<f32>() / *s as f32;
                    }
                    debug_assert_eq!(cx.vals.row(&ov, r).len(), *c);
                }
            }
            StepKind::Unary { op, x, out } => {
                let (xv, ov) = (cx.views[*x], cx.views[*out]);
                for r in 0..rows {
                    let xr = cx.vals.row(&xv, r);
                    let y = cx.vals.row_mut(&ov, r);
                    match *op {
                        Unary::Relu => y.iter_mut().zip(xr).for_each(|(y, x)| *y = x.max(0.0)),
                        Unary::Sigmoid => y.iter_mut().zip(xr).for_each(|(y, x)| *y = sigmoid(*x)),
                        Unary::Clip { min, max } => y.iter_mut().zip(xr).for_each(|(y, x)| *y = x.max(min).min(max)),
                        Unary::Copy => y.copy_from_slice(xr),
                    }
                }
            }
            StepKind::Binary { op, a, b, out } => {
                let ov = cx.views[*out];
                for r in 0..rows {
                    let (ar, br) = (operand_row(a, cx.vals, cx.views, r), operand_row(b, cx.vals, cx.views, r));
                    let y = cx.vals.row_mut(&ov, r);
                    for ((y, a), b) in y.iter_mut().zip(ar).zip(br) {
                        *y = match op {
                            Binary::Add => a + b,
                            Binary::Sub => a - b,
                            Binary::Mul => a * b,
                            Binary::Div => a / b,
                        };
                    }
                }
            }
            StepKind::Sum { xs, out } => {
                let ov = cx.views[*out];
                for r in 0..rows {
                    let y = cx.vals.row_mut(&ov, r);
                    y.copy_from_slice(cx.vals.row(&cx.views[xs[0]], r));
                    for x in &xs[1..] {
                        y.iter_mut().zip(cx.vals.row(&cx.views[*x], r)).for_each(|(y, x)| *y += x);
                    }
                }
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
            StepKind::GlobalAvgPool { x, out, c: _, s } => {
                let (xv, ov) = (cx.views[*x], cx.views[*out]);
                for r in 0..rows {
                    let dy = cx.grads.row(&ov, r);
                    let dx = cx.grads.row_mut(&xv, r);
                    for (ch, d) in dy.iter().enumerate() {
                        dx[ch * *s..(ch + 1) * *s].iter_mut().for_each(|g| *g += d / *s as f32);
                    }
                }
            }
            StepKind::Unary { op, x, out } => {
                let (xv, ov) = (cx.views[*x], cx.views[*out]);
                for r in 0..rows {
                    let (dy, y, xr) = (cx.grads.row(&ov, r), cx.vals.row(&ov, r), cx.vals.row(&xv, r));
                    let dx = cx.grads.row_mut(&xv, r);
                    for i in 0..dx.len() {
                        dx[i] += match *op {
                            Unary::Relu => {
                                if y[i] > 0.0 {
                                    dy[i]
                                } else {
                                    0.0
                                }
                            }
                            Unary::Sigmoid => dy[i] * y[i] * (1.0 - y[i]),
                            Unary::Clip { min, max } => {
                                if xr[i] > min && xr[i] < max {
                                    dy[i]
                                } else {
                                    0.0
                                }
                            }
                            Unary::Copy => dy[i],
                        };
                    }
                }
            }
            StepKind::Binary { op, a, b, out } => {
                let ov = cx.views[*out];
                for r in 0..rows {
                    let dy = cx.grads.row(&ov, r);
                    let (ar, br) = (operand_row(a, cx.vals, cx.views, r), operand_row(b, cx.vals, cx.views, r));
                    if let Operand::Value(av) = &*a {
                        let da = cx.grads.row_mut(&cx.views[*av], r);
                        for i in 0..da.len() {
                            da[i] += match op {
                                Binary::Add | Binary::Sub => dy[i],
                                Binary::Mul => dy[i] * br[i],
                                Binary::Div => dy[i] / br[i],
                            };
                        }
                    }
                    if let Operand::Value(bv) = &*b {
                        let db = cx.grads.row_mut(&cx.views[*bv], r);
                        for i in 0..db.len() {
                            db[i] += match op {
                                Binary::Add => dy[i],
                                Binary::Sub => -dy[i],
                                Binary::Mul => dy[i] * ar[i],
                                Binary::Div => -dy[i] * ar[i] / (br[i] * br[i]),
                            };
                        }
                    }
                }
            }
            StepKind::Sum { xs, out } => {
                let ov = cx.views[*out];
                for r in 0..rows {
                    let dy = cx.grads.row(&ov, r);
                    for x in xs.iter() {
                        cx.grads.row_mut(&cx.views[*x], r).iter_mut().zip(dy).for_each(|(g, d)| *g += d);
                    }
                }
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
