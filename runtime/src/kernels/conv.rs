//! 2-D convolution (NCHW) as GEMM over an im2col matrix, per image and group:
//! Y_g[M/G × OH·OW] = W_g[M/G × (C/G)·kh·kw] · col_g[(C/G)·kh·kw × OH·OW] (+ bias, then the activation).
//! A 1x1, stride-1, unpadded convolution reads its input directly as `col`.

use super::elementwise::{unary_inplace, UnaryOp};
use super::gemm::{sgemm, MatRef};
use rayon::prelude::*;

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
    /// Scratch floats `conv2d` needs for an output of `oh × ow` (with an input prologue, a pointwise
    /// convolution packs its transformed input too).
    pub fn scratch_len(&self, oh: usize, ow: usize, pre: bool) -> usize {
        if self.is_pointwise() && !pre {
            0
        } else {
            self.k() * oh * ow
        }
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
    #[inline]
    fn apply(&self, c: usize, x: f32) -> f32 {
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

/// Fills `col[(c·kh + u)·kw + v][i·ow + j] = pre(x[c, i·s0 + u·d0 − top, j·s1 + v·d1 − left])` (0 outside;
/// `pre` is the identity when absent, and gets the channel index within the whole input, `c0 + c`).
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    p: &Conv2d,
    oh: usize,
    ow: usize,
    col: &mut [f32],
    pre: Option<(Pre, usize)>,
) {
    let [kh, kw] = p.kernel;
    let rows = c * kh * kw;
    let fill = |(r, row): (usize, &mut [f32])| {
        let ch = r / (kh * kw);
        let u = (r / kw) % kh;
        let v = r % kw;
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for i in 0..oh {
            let y = (i * p.strides[0] + u * p.dilations[0]) as isize - p.pads[0] as isize;
            let out = &mut row[i * ow..(i + 1) * ow];
            if y < 0 || y >= h as isize {
                out.fill(0.0);
                continue;
            }
            let src = &plane[y as usize * w..(y as usize + 1) * w];
            for (j, o) in out.iter_mut().enumerate() {
                let xx = (j * p.strides[1] + v * p.dilations[1]) as isize - p.pads[1] as isize;
                *o = if xx >= 0 && xx < w as isize {
                    match &pre {
                        Some((f, c0)) => f.apply(c0 + ch, src[xx as usize]),
                        None => src[xx as usize],
                    }
                } else {
                    0.0
                };
            }
        }
    };
    let col = &mut col[..rows * oh * ow];
    if rows * oh * ow >= 1 << 15 {
        col.par_chunks_mut(oh * ow).enumerate().for_each(fill);
    } else {
        col.chunks_mut(oh * ow).enumerate().for_each(fill);
    }
}

/// y[n, m, :, :] = act(Σ W ⋆ x + bias[m] (+ y[n, m, :, :] when `accumulate`)) for every image n: with
/// `accumulate` the product adds to what `y` holds (the residual epilogue: y enters holding the skip).
/// With `pre`, every input value is transformed as it is packed: x' = act(scale[c]·x + shift[c]).
/// `weight` is `[M, (C/G)·kh·kw]` row-major, `scratch` holds at least `p.scratch_len(oh, ow, pre)` floats.
/// Image `i` of x starts at `i·x_stride` and image `i` of y at `i·y_stride` (strides larger than an image
/// read and write windows of wider feature arenas).
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
    let (cin_g, cout_g) = (p.cin / p.group, p.cout / p.group);
    let k = p.k();
    let ohw = oh * ow;
    for img in 0..n {
        let xi = &x[img * x_stride..img * x_stride + p.cin * h * w];
        let yi = &mut y[img * y_stride..img * y_stride + p.cout * ohw];
        for g in 0..p.group {
            let xg = &xi[g * cin_g * h * w..(g + 1) * cin_g * h * w];
            let pre_g = pre.map(|f| (f, g * cin_g));
            let col: &[f32] = if p.is_pointwise() && pre.is_none() {
                xg
            } else {
                im2col(xg, cin_g, h, w, p, oh, ow, scratch, pre_g);
                &scratch[..k * ohw]
            };
            let wg = &weight[g * cout_g * k..(g + 1) * cout_g * k];
            let yg = &mut yi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
            let beta = if accumulate { 1.0 } else { 0.0 };
            sgemm(cout_g, ohw, k, 1.0, MatRef::new(wg, k), MatRef::new(col, ohw), beta, yg, ohw, threads);
        }
        if bias.is_some() || act.is_some() {
            let epilogue = |(m, plane): (usize, &mut [f32])| {
                if let Some(b) = bias {
                    let bm = b[m];
                    plane.iter_mut().for_each(|v| *v += bm);
                }
                if let Some(a) = act {
                    unary_inplace(a, plane);
                }
            };
            if p.cout * ohw >= 1 << 15 {
                yi.par_chunks_mut(ohw).enumerate().for_each(epilogue);
            } else {
                yi.chunks_mut(ohw).enumerate().for_each(epilogue);
            }
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
            let mut scratch = vec![0.0; p.scratch_len(oh, ow, true)];
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
            let want_pre = naive(&xt, n, h, w, &p, &wt, &b, oh, ow);
            let pre = Pre { scale: &sc, shift: &sh, act: Some(UnaryOp::Relu) };
            conv2d(&x, xs, n, h, w, &p, &wt, Some(&b), None, false, Some(pre), oh, ow, &mut y, ys, &mut scratch, 2);
            for (a, e) in y.iter().zip(&want_pre) {
                assert!((a - e).abs() <= 1e-4 + 1e-4 * e.abs(), "{p:?} with prologue: {a} vs {e}");
            }
        }
    }
}
