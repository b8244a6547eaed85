//! BatchNormalization in training: batch statistics forward, and the backward through them.
//!
//! Per channel ch over the batch's n = rows·s values (s = spatial size):
//!
//! - forward: μ = Σx/n, σ² = Σ(x − μ)²/n, x̂ = (x − μ)/√(σ² + ε), y = γ x̂ + β (then the fused activation);
//!   running statistics move by `momentum` towards μ and the unbiased σ²·n/(n − 1), as PyTorch does;
//! - backward, with δ = ∂L/∂y: ∂L/∂γ = Σδx̂, ∂L/∂β = Σδ, and
//!   ∂L/∂x = γ/(n√(σ²+ε)) · (n δ − Σδ − x̂ Σδx̂).
//!
//! x̂ is not stored: the backward recomputes it from x (the step's input, which no later step writes) with
//! the same float32 operations, so it has the same bits, and the forward writes one tensor instead of two.
//! Each pass is one sweep over the batch, image by image (threads split the images; a channel-major
//! sweep, every image's plane of one channel in turn, was 1.5x slower), in float32 lanes with the sums
//! carried in float64 across images, compiled with 256-bit vectors where the CPU has AVX.
//!
//! This module owns that arithmetic; the tensors' places come from the plan ([`super::mem`]).

use super::steps::{par_rows, parts_for, BackCtx, BatchNorm, Ctx, Unary};

/// Defines `fn $name(args) -> R` running `$body` compiled with AVX where the CPU has it, else as is: the
/// same float32 operations in the same order either way, so the same bits.
macro_rules! with_avx {
    ($(#[$doc:meta])* fn $name:ident($($a:ident: $t:ty),*) -> $r:ty $body:block) => {
        $(#[$doc])*
        fn $name($($a: $t),*) -> $r {
            #[inline(always)]
            fn body($($a: $t),*) -> $r $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx")]
                unsafe fn avx($($a: $t),*) -> $r {
                    body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx") {
                    // SAFETY: the CPU has AVX (checked); the body is safe code.
                    return unsafe { avx($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}

/// Lanes of the float32 partial sums: four 256-bit vectors, so that the adds of consecutive chunks do not
/// wait on each other.
const L: usize = 32;

/// Σ of the lanes in float64, plus a tail summed in float32.
#[inline(always)]
fn fold(acc: &[f32; L], tail: f32) -> f64 {
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}

/// Σx over one plane.
#[inline(always)]
fn sum(x: &[f32]) -> f64 {
    let mut acc = [0f32; L];
    let mut it = x.chunks_exact(L);
    for c in &mut it {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    fold(&acc, it.remainder().iter().sum())
}

/// (Σ(x − m)², Σ(x − m)) over one plane, in one sweep.
#[inline(always)]
fn deviations(x: &[f32], m: f32) -> (f64, f64) {
    let (mut sq, mut dev) = ([0f32; L], [0f32; L]);
    let mut it = x.chunks_exact(L);
    for c in &mut it {
        for ((q, d), x) in sq.iter_mut().zip(dev.iter_mut()).zip(c) {
            let v = x - m;
            *q += v * v;
            *d += v;
        }
    }
    let r = it.remainder();
    (fold(&sq, r.iter().map(|x| (x - m) * (x - m)).sum()), fold(&dev, r.iter().map(|x| x - m).sum()))
}

/// (Σδ, Σδx̂) over one plane, with x̂ = (x − μ)·inv.
#[inline(always)]
fn grad_sums(d: &[f32], x: &[f32], mu: f32, inv: f32) -> (f64, f64) {
    let (mut sd, mut sdx) = ([0f32; L], [0f32; L]);
    let x = &x[..d.len()];
    let (mut id, mut ix) = (d.chunks_exact(L), x.chunks_exact(L));
    for (cd, cx) in (&mut id).zip(&mut ix) {
        for (((s, t), d), x) in sd.iter_mut().zip(sdx.iter_mut()).zip(cd).zip(cx) {
            *s += d;
            *t += d * ((x - mu) * inv);
        }
    }
    let (rd, rx) = (id.remainder(), ix.remainder());
    let tail_dx = rd.iter().zip(rx).map(|(d, x)| d * ((x - mu) * inv)).sum();
    (fold(&sd, rd.iter().sum()), fold(&sdx, tail_dx))
}

// The passes over one image's row (c planes of s values), each compiled with AVX where the CPU has it: one
// feature test per row, not per plane (a 2-D BatchNorm's planes are single values).

with_avx! {
    /// Per plane: out[ch] = (Σx, 0).
    fn sums_row(x: &[f32], s: usize, out: &mut [(f64, f64)]) -> () {
        for (ch, o) in out.iter_mut().enumerate() {
            *o = (sum(&x[ch * s..(ch + 1) * s]), 0.0);
        }
    }
}

with_avx! {
    /// Per plane: out[ch] = (Σ(x − m_ch)², Σ(x − m_ch)).
    fn deviations_row(x: &[f32], s: usize, m: &[f32], out: &mut [(f64, f64)]) -> () {
        for (ch, o) in out.iter_mut().enumerate() {
            *o = deviations(&x[ch * s..(ch + 1) * s], m[ch]);
        }
    }
}

with_avx! {
    /// Per plane: y = act(γ (x − μ)·inv + β), with k[ch] = [μ, inv, γ, β].
    fn normalize_row(x: &[f32], y: &mut [f32], s: usize, k: &[[f32; 4]], act: Option<Unary>) -> () {
        for (ch, &[mu, inv, g, b]) in k.iter().enumerate() {
            let y = &mut y[ch * s..(ch + 1) * s];
            for (y, x) in y.iter_mut().zip(&x[ch * s..(ch + 1) * s]) {
                *y = g * ((x - mu) * inv) + b;
            }
            if let Some(op) = act {
                op.apply_inplace(y);
            }
        }
    }
}

with_avx! {
    /// Per plane: δ ← δ ⊙ act'(z) (from a = act(z), when an activation is fused), then
    /// out[ch] = (Σδ, Σδx̂) with x̂ = (x − μ)·inv and k[ch] = (μ, inv).
    fn grad_sums_row(d: &mut [f32], a: Option<(&[f32], Unary)>, x: &[f32], s: usize, k: &[(f32, f32)], out: &mut [(f64, f64)]) -> () {
        for (ch, (o, &(mu, inv))) in out.iter_mut().zip(k).enumerate() {
            let span = ch * s..(ch + 1) * s;
            let d = &mut d[span.clone()];
            if let Some((a, op)) = a {
                op.through(&a[span.clone()], d);
            }
            *o = grad_sums(d, &x[span], mu, inv);
        }
    }
}

with_avx! {
    /// Per plane: δx += a·δ − b − e·x̂ with x̂ = (x − μ)·inv and k[ch] = [a, b, e, μ, inv].
    fn grad_input_row(dx: &mut [f32], d: &[f32], x: &[f32], s: usize, k: &[[f32; 5]]) -> () {
        for (ch, &[a, b, e, mu, inv]) in k.iter().enumerate() {
            let span = ch * s..(ch + 1) * s;
            for ((dx, d), x) in dx[span.clone()].iter_mut().zip(&d[span.clone()]).zip(&x[span]) {
                *dx += a * d - b - e * ((x - mu) * inv);
            }
        }
    }
}

/// Σ over the rows of `f(r, out)`, which fills `out[ch]` for every channel (planes of `s` values): the rows
/// split between the threads, each swept once in order, and the partial sums, kept per row in `partial`,
/// added in row order (the same sums whatever the thread count).
fn row_sums(
    partial: &mut Vec<(f64, f64)>,
    rows: usize,
    c: usize,
    s: usize,
    threads: usize,
    f: impl Fn(usize, &mut [(f64, f64)]) + Sync,
) -> Vec<(f64, f64)> {
    partial.resize(rows * c, (0.0, 0.0));
    let per = rows.div_ceil(parts_for(rows, rows * c * s, threads)).max(1);
    resin_runtime::parallel::for_chunks_mut(&mut partial[..rows * c], per * c, |i, chunk| {
        for (j, part) in chunk.chunks_exact_mut(c).enumerate() {
            f(i * per + j, part);
        }
    });
    let mut sums = vec![(0.0f64, 0.0f64); c];
    for row in partial.chunks_exact(c) {
        for (s, p) in sums.iter_mut().zip(row) {
            s.0 += p.0;
            s.1 += p.1;
        }
    }
    sums
}

impl BatchNorm {
    pub(super) fn forward(&mut self, cx: &mut Ctx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let (c, s) = (self.c, self.s);
        let gamma = &cx.params[self.scale].data;
        let beta = &cx.params[self.bias].data;
        let vals = cx.vals;
        let act = self.act;
        if !cx.training {
            let kt: Vec<(f32, f32)> = (0..c)
                .map(|ch| {
                    let inv = 1.0 / (self.running_var[ch] + self.eps).sqrt();
                    (gamma[ch] * inv, beta[ch] - gamma[ch] * self.running_mean[ch] * inv)
                })
                .collect();
            par_rows(rows, rows * c * s, cx.threads, |r| {
                let (x, y) = (vals.row(&xv, r), vals.row_mut(&ov, r));
                for (ch, &(k, t)) in kt.iter().enumerate() {
                    for (y, x) in y[ch * s..(ch + 1) * s].iter_mut().zip(&x[ch * s..(ch + 1) * s]) {
                        *y = k * x + t;
                    }
                }
                if let Some(op) = act {
                    op.apply_inplace(y);
                }
            });
            return;
        }
        let n = (rows * s) as f64;
        // Two sweeps (the mean, then the deviations from its float32 rounding), as accurate as PyTorch's
        // Welford: (mean, Σ(x − μ32)², Σ(x − μ32)) per channel. Each sweep goes image by image.
        let sums = row_sums(&mut self.partial, rows, c, s, cx.threads, |r, out| sums_row(vals.row(&xv, r), s, out));
        let m32: Vec<f32> = sums.iter().map(|&(t, _)| (t / n) as f32).collect();
        let devs = row_sums(&mut self.partial, rows, c, s, cx.threads, |r, out| {
            deviations_row(vals.row(&xv, r), s, &m32, out)
        });
        let stats: Vec<_> = sums.iter().zip(&devs).map(|(&(t, _), &(sq, dev))| (t / n, sq, dev)).collect();
        self.inv_std.resize(c, 0.0);
        self.mean.resize(c, 0.0);
        for (ch, &(mean, sq, dev)) in stats.iter().enumerate() {
            // Σ(x − μ)² from deviations about the rounded μ32: Σ(x − μ32)² − (Σ(x − μ32))²/n.
            let var = ((sq - dev * dev / n) / n).max(0.0);
            let inv = 1.0 / (var + self.eps as f64).sqrt();
            self.inv_std[ch] = inv as f32;
            let m = self.momentum;
            let mean = mean + dev / n;
            self.mean[ch] = mean as f32;
            self.running_mean[ch] = (1.0 - m) * self.running_mean[ch] + m * mean as f32;
            let unbiased = if n > 1.0 { var * n / (n - 1.0) } else { var };
            self.running_var[ch] = (1.0 - m) * self.running_var[ch] + m * unbiased as f32;
        }
        // y, rows split between the threads; the activation on each plane while it is in L1.
        let k: Vec<[f32; 4]> = (0..c).map(|ch| [self.mean[ch], self.inv_std[ch], gamma[ch], beta[ch]]).collect();
        par_rows(rows, rows * c * s, cx.threads, |r| normalize_row(vals.row(&xv, r), vals.row_mut(&ov, r), s, &k, act));
    }

    pub(super) fn backward(&mut self, cx: &mut BackCtx) {
        let rows = cx.vals.rows();
        let (xv, ov) = (cx.views[self.x], cx.views[self.out]);
        let (c, s) = (self.c, self.s);
        let n = (rows * s) as f32;
        let (vals, grads, act) = (cx.vals, cx.grads, self.act);
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        let mk: Vec<(f32, f32)> = mean.iter().copied().zip(inv_std.iter().copied()).collect();
        // Per image (rows split between the threads, each row swept in order): δ of the normalized output
        // (a fused activation's derivative applied in place, this step being δa's only reader), then each
        // channel's Σδ and Σδx̂ over the row, summed over the rows in row order (whatever the threads).
        let sums = row_sums(&mut self.partial, rows, c, s, cx.threads, |r, out| {
            let a = act.map(|op| (vals.row(&ov, r), op));
            grad_sums_row(grads.row_mut(&ov, r), a, vals.row(&xv, r), s, &mk, out)
        });
        let mut coef = Vec::with_capacity(c);
        for (ch, &(sd, sdx)) in sums.iter().enumerate() {
            cx.params[self.scale].grad[ch] = sdx as f32;
            cx.params[self.bias].grad[ch] = sd as f32;
            // ∂L/∂x = γ/(n√(σ²+ε)) · (n δ − Σδ − x̂ Σδx̂) = a·δ − b − e·x̂.
            let k = cx.params[self.scale].data[ch] as f64 * inv_std[ch] as f64 / n as f64;
            coef.push([(k * n as f64) as f32, (k * sd) as f32, (k * sdx) as f32, mean[ch], inv_std[ch]]);
        }
        let first = cx.first_write(self.x);
        par_rows(rows, rows * c * s, cx.threads, |r| {
            grad_input_row(grads.grad_row(&xv, r, first), grads.row(&ov, r), vals.row(&xv, r), s, &coef)
        });
    }
}
