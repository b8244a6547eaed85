//! 2-D convolution (NCHW) as an implicit GEMM, per image and group:
//! Y_g[M/G × OH·OW] = W_g[M/G × (C/G)·kh·kw] · col_g[(C/G)·kh·kw × OH·OW] (+ bias, + the residual already in
//! Y, then the activation), where col_g[(c·kh + u)·kw + v][i·ow + j] = x[c, i·s0 + u·d0 − top, j·s1 + v·d1 −
//! left] (0 outside the image). The im2col matrix is never materialized: [`ConvB`] gathers each GEMM tile
//! of it (KC × NR floats, contiguous, so it stays in L1 while every weight panel passes over it) straight
//! from the input; for a 1x1, stride-1, unpadded convolution each tile row is one contiguous copy.
//!
//! Weights arrive packed by the compiler ([`Conv2d::pack_weights`]), in the GEMM's panel layout.
//! Why implicit GEMM rather than a direct kernel over a blocked channel layout: it keeps NCHW (so the
//! compiler's feature-arena views, residual views and every other kernel stay as they are), it shares one
//! tuned micro-kernel with the classifier and MatMul, and the gather costs O(K·N) against the product's
//! O(M·K·N) — under 2% of a ResNet-50 convolution with M ≥ 64.

use super::elementwise::UnaryOp;
use super::gemm::{gemm_packed, pack_a, packed_len, put_row, BSource, Epilogue, Isa, MatRef, MAX_BLOCK};

/// Geometry of a convolution step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// [top, left, bottom, right]
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
}

impl Conv2d {
    /// Rows of one group's im2col matrix: (C/G)·kh·kw.
    pub fn k(&self) -> usize {
        self.cin / self.group * self.kernel[0] * self.kernel[1]
    }
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.strides == [1, 1] && self.pads == [0; 4]
    }
    /// Scratch floats [`conv2d`] needs with `threads` threads (GEMM tile packing; no im2col matrix).
    pub fn scratch_len(threads: usize) -> usize {
        super::gemm::scratch_len(Isa::detect(), threads)
    }
    /// Floats of the weights once packed by [`Conv2d::pack_weights`].
    pub fn packed_weight_len(&self) -> usize {
        self.group * packed_len(self.cout / self.group, self.k())
    }
    /// Packs `[M, (C/G)·kh·kw]` row-major weights into the GEMM's panels, group by group (done once, by
    /// the compiler).
    pub fn pack_weights(&self, weight: &[f32]) -> Vec<f32> {
        let (cout_g, k) = (self.cout / self.group, self.k());
        assert_eq!(weight.len(), self.cout * k, "pack_weights: expected [M, (C/G)·kh·kw] weights");
        let wlen = packed_len(cout_g, k);
        let mut out = vec![0.0; self.group * wlen];
        for g in 0..self.group {
            let src = MatRef::new(&weight[g * cout_g * k..(g + 1) * cout_g * k], k);
            pack_a(cout_g, k, src, 1.0, &mut out[g * wlen..(g + 1) * wlen]);
        }
        out
    }
}

/// A per-input-channel prologue: x' = act(scale[c]·x + shift[c]).
#[derive(Clone, Copy, Debug)]
pub struct Pre<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub act: Option<UnaryOp>,
}

impl Pre<'_> {
    /// `apply` over a run of channel `c`'s values, in loops the compiler vectorizes.
    pub(crate) fn apply_row(&self, c: usize, xs: &mut [f32]) {
        let (s, t) = (self.scale[c], self.shift[c]);
        match self.act {
            None => xs.iter_mut().for_each(|x| *x = s * *x + t),
            Some(UnaryOp::Relu) => xs.iter_mut().for_each(|x| {
                let v = s * *x + t;
                // max(v, 0) keeping NaN, written branch-free.
                *x = if v <= 0.0 { 0.0 } else { v };
            }),
            Some(_) => xs.iter_mut().for_each(|x| *x = self.apply(c, *x)),
        }
    }

    #[inline]
    pub(crate) fn apply(&self, c: usize, x: f32) -> f32 {
        let v = self.scale[c] * x + self.shift[c];
        match self.act {
            None => v,
            Some(UnaryOp::Relu) => {
                if v > 0.0 || v.is_nan() {
                    v
                } else {
                    0.0
                }
            }
            Some(a) => {
                let mut one = [v];
                super::elementwise::unary_inplace(a, &mut one);
                one[0]
            }
        }
    }
}

/// The implicit im2col matrix of one image and group, as GEMM B tiles.
struct ConvB<'a> {
    /// The group's input planes, `[C/G, h, w]`.
    x: &'a [f32],
    h: usize,
    w: usize,
    p: &'a Conv2d,
    ow: usize,
    /// The prologue and the group's first channel in the whole input.
    pre: Option<(Pre<'a>, usize)>,
}

impl BSource for ConvB<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let (h, w, p, ow) = (self.h, self.w, self.p, self.ow);
        let mut buf = [0f32; MAX_BLOCK];
        let hw = h * w;
        let [kh, kw] = p.kernel;
        let pre = |ch: usize, o: &mut [f32]| {
            if let Some((f, c0)) = &self.pre {
                f.apply_row(c0 + ch, o);
            }
        };
        if p.is_pointwise() {
            // Row k of B is channel k's plane: each tile row is one contiguous copy, straight into the
            // micro-panels unless a prologue has to transform it on the way.
            for i in 0..kc {
                let ch = k0 + i;
                let src = &self.x[ch * hw + n0..ch * hw + n0 + nc];
                if self.pre.is_none() {
                    put_row(dst, kc, nr, i, src);
                    continue;
                }
                let row = &mut buf[..nc];
                row.copy_from_slice(src);
                pre(ch, row);
                put_row(dst, kc, nr, i, row);
            }
            return;
        }
        // The tile's columns split into runs along output rows: (first column, length, output row, col).
        let mut runs = [(0usize, 0usize, 0usize, 0usize); MAX_BLOCK];
        let mut count = 0;
        let mut q = 0;
        while q < nc {
            let (oi, oj) = ((n0 + q) / ow, (n0 + q) % ow);
            let len = (ow - oj).min(nc - q);
            runs[count] = (q, len, oi, oj);
            count += 1;
            q += len;
        }
        let (s0, s1) = (p.strides[0], p.strides[1]);
        let (d0, d1) = (p.dilations[0], p.dilations[1]);
        let (top, left) = (p.pads[0] as isize, p.pads[1] as isize);
        let (mut ch, mut u, mut v) = (k0 / (kh * kw), (k0 / kw) % kh, k0 % kw);
        for i in 0..kc {
            let plane = &self.x[ch * hw..(ch + 1) * hw];
            let row = &mut buf[..nc];
            for &(q, len, oi, oj) in &runs[..count] {
                let out = &mut row[q..q + len];
                let y = (oi * s0 + u * d0) as isize - top;
                if y < 0 || y >= h as isize {
                    out.fill(0.0);
                    continue;
                }
                let src = &plane[y as usize * w..(y as usize + 1) * w];
                // Input column of out[j] is x0 + j·s1; the valid j are those with 0 ≤ x0 + j·s1 < w.
                let x0 = (oj * s1 + v * d1) as isize - left;
                let lo = if x0 >= 0 { 0 } else { ((-x0) as usize).div_ceil(s1).min(len) };
                let hi = if x0 >= w as isize { lo } else { ((w as isize - x0) as usize).div_ceil(s1).clamp(lo, len) };
                out[..lo].fill(0.0);
                out[hi..].fill(0.0);
                if lo == hi {
                    continue; // the whole run falls in the padding
                }
                let first = (x0 + (lo * s1) as isize) as usize;
                let dst = &mut out[lo..hi];
                if s1 == 1 {
                    dst.copy_from_slice(&src[first..first + dst.len()]);
                } else {
                    // Every s1-th input column (chunks keep the loop free of bounds checks).
                    dst.iter_mut().zip(src[first..].chunks(s1)).for_each(|(o, c)| *o = c[0]);
                }
                pre(ch, dst);
            }
            put_row(dst, kc, nr, i, row);
            v += 1;
            if v == kw {
                v = 0;
                u += 1;
                if u == kh {
                    u = 0;
                    ch += 1;
                }
            }
        }
    }
}

/// y[n, m, :, :] = act(Σ W ⋆ x + bias[m] (+ y[n, m, :, :] when `accumulate`)) for every image n: with
/// `accumulate` the product adds to what `y` holds (the residual epilogue: y enters holding the skip).
/// With `pre`, every input value is transformed as it is gathered: x' = act(scale[c]·x + shift[c]).
/// `weight` is packed by [`Conv2d::pack_weights`]; `scratch` holds at least [`Conv2d::scratch_len`]
/// floats for `threads`. Image `i` of x starts at `i·x_stride` and image `i` of y at `i·y_stride`
/// (strides larger than an image read and write windows of wider feature arenas).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    x_stride: usize,
    n: usize,
    h: usize,
    w: usize,
    p: &Conv2d,
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Option<UnaryOp>,
    accumulate: bool,
    pre: Option<Pre>,
    oh: usize,
    ow: usize,
    y: &mut [f32],
    y_stride: usize,
    scratch: &mut [f32],
    threads: usize,
) {
    let isa = Isa::detect();
    let (cin_g, cout_g) = (p.cin / p.group, p.cout / p.group);
    let k = p.k();
    let ohw = oh * ow;
    let wlen = packed_len(cout_g, k);
    assert!(weight.len() >= p.group * wlen, "conv2d: packed weights are too short");
    for img in 0..n {
        let xi = &x[img * x_stride..img * x_stride + p.cin * h * w];
        let yi = &mut y[img * y_stride..img * y_stride + p.cout * ohw];
        for g in 0..p.group {
            let src = ConvB {
                x: &xi[g * cin_g * h * w..(g + 1) * cin_g * h * w],
                h,
                w,
                p,
                ow,
                pre: pre.map(|f| (f, g * cin_g)),
            };
            let epi = Epilogue { accumulate, bias: bias.map(|b| &b[g * cout_g..(g + 1) * cout_g]), act };
            let yg = &mut yi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
            let wg = &weight[g * wlen..(g + 1) * wlen];
            gemm_packed(isa, cout_g, ohw, k, wg, &src, yg, ohw, &epi, threads, scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        p: &Conv2d,
        wt: &[f32],
        b: &[f32],
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let (cg, mg) = (p.cin / p.group, p.cout / p.group);
        let [kh, kw] = p.kernel;
        let mut y = vec![0.0; n * p.cout * oh * ow];
        for img in 0..n {
            for m in 0..p.cout {
                let g = m / mg;
                for i in 0..oh {
                    for j in 0..ow {
                        let mut s = b[m] as f64;
                        for c in 0..cg {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let yy = (i * p.strides[0] + u * p.dilations[0]) as isize - p.pads[0] as isize;
                                    let xx = (j * p.strides[1] + v * p.dilations[1]) as isize - p.pads[1] as isize;
                                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                        let xv = x[((img * p.cin + g * cg + c) * h + yy as usize) * w + xx as usize];
                                        s += xv as f64 * wt[((m * cg + c) * kh + u) * kw + v] as f64;
                                    }
                                }
                            }
                        }
                        y[((img * p.cout + m) * oh + i) * ow + j] = s as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_naive_over_geometries() {
        let cases = [
            Conv2d {
                cin: 3,
                cout: 4,
                kernel: [3, 3],
                strides: [1, 1],
                pads: [1, 1, 1, 1],
                dilations: [1, 1],
                group: 1,
            },
            Conv2d { cin: 4, cout: 6, kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1], group: 1 },
            Conv2d { cin: 4, cout: 8, kernel: [1, 1], strides: [2, 2], pads: [0; 4], dilations: [1, 1], group: 1 },
            Conv2d {
                cin: 8,
                cout: 8,
                kernel: [3, 3],
                strides: [2, 2],
                pads: [1, 0, 2, 1],
                dilations: [1, 1],
                group: 4,
            },
            Conv2d {
                cin: 6,
                cout: 6,
                kernel: [3, 3],
                strides: [1, 1],
                pads: [2, 2, 2, 2],
                dilations: [2, 2],
                group: 6,
            },
            Conv2d {
                cin: 40,
                cout: 20,
                kernel: [3, 3],
                strides: [1, 1],
                pads: [1, 1, 1, 1],
                dilations: [1, 1],
                group: 1,
            },
            Conv2d { cin: 300, cout: 9, kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1], group: 1 },
            Conv2d {
                cin: 3,
                cout: 5,
                kernel: [7, 7],
                strides: [2, 2],
                pads: [3, 3, 3, 3],
                dilations: [1, 1],
                group: 1,
            },
        ];
        for p in cases {
            let (n, h, w) = (2, 11, 9);
            let oh = (h + p.pads[0] + p.pads[2] - p.dilations[0] * (p.kernel[0] - 1) - 1) / p.strides[0] + 1;
            let ow = (w + p.pads[1] + p.pads[3] - p.dilations[1] * (p.kernel[1] - 1) - 1) / p.strides[1] + 1;
            let x: Vec<f32> = (0..n * p.cin * h * w).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let wt: Vec<f32> = (0..p.cout * p.k()).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let b: Vec<f32> = (0..p.cout).map(|i| i as f32 * 0.1 - 0.2).collect();
            let want = naive(&x, n, h, w, &p, &wt, &b, oh, ow);
            let mut y = vec![f32::NAN; want.len()];
            let mut scratch = vec![0.0; Conv2d::scratch_len(2)];
            let wt_raw = wt;
            let wt = p.pack_weights(&wt_raw);
            let (xs, ys) = (p.cin * h * w, p.cout * oh * ow);
            conv2d(&x, xs, n, h, w, &p, &wt, Some(&b), None, false, None, oh, ow, &mut y, ys, &mut scratch, 2);
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e).abs() <= 1e-4 + 1e-4 * e.abs(), "{p:?}: {a} vs {e}");
            }
            conv2d(
                &x,
                xs,
                n,
                h,
                w,
                &p,
                &wt,
                Some(&b),
                Some(UnaryOp::Relu),
                false,
                None,
                oh,
                ow,
                &mut y,
                ys,
                &mut scratch,
                1,
            );
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e.max(0.0)).abs() <= 1e-4 + 1e-4 * e.abs());
            }
            // Residual epilogue: y enters holding the skip; y = relu(conv + b + skip).
            let skip: Vec<f32> = (0..want.len()).map(|i| (i % 7) as f32 - 3.0).collect();
            y.copy_from_slice(&skip);
            conv2d(
                &x,
                xs,
                n,
                h,
                w,
                &p,
                &wt,
                Some(&b),
                Some(UnaryOp::Relu),
                true,
                None,
                oh,
                ow,
                &mut y,
                ys,
                &mut scratch,
                2,
            );
            for ((a, e), s) in y.iter().zip(&want).zip(&skip) {
                assert!((a - (e + s).max(0.0)).abs() <= 1e-4 + 1e-4 * e.abs());
            }
            // Prologue: conv(relu(s·x + t)) equals the plain conv of the transformed input.
            let (sc, sh): (Vec<f32>, Vec<f32>) =
                (0..p.cin).map(|c| (0.5 + c as f32 * 0.25, c as f32 * 0.1 - 0.3)).unzip();
            let xt: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| (sc[(i / (h * w)) % p.cin] * v + sh[(i / (h * w)) % p.cin]).max(0.0))
                .collect();
            let want_pre = naive(&xt, n, h, w, &p, &wt_raw, &b, oh, ow);
            let pre = Pre { scale: &sc, shift: &sh, act: Some(UnaryOp::Relu) };
            conv2d(&x, xs, n, h, w, &p, &wt, Some(&b), None, false, Some(pre), oh, ow, &mut y, ys, &mut scratch, 2);
            for (a, e) in y.iter().zip(&want_pre) {
                assert!((a - e).abs() <= 1e-4 + 1e-4 * e.abs(), "{p:?} with prologue: {a} vs {e}");
            }
        }
    }
}
