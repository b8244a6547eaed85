//! 3x3, stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3): 16 multiplies per 2×2 output
//! tile and input channel instead of 36, so the products cost 4/9 of a direct or im2col convolution.
//!
//! Math (Lavin & Gray, 2015). For a 4×4 input tile d (stride 2 between tiles), a 3×3 filter g and
//! ```text
//!       ⎡1  0 −1  0⎤         ⎡1    0    0 ⎤         ⎡1  1  1  0⎤
//! Bᵀ =  ⎢0  1  1  0⎥    G =  ⎢½    ½    ½ ⎥    Aᵀ = ⎣0  1 −1 −1⎦
//!       ⎢0 −1  1  0⎥         ⎢½   −½    ½ ⎥
//!       ⎣0  1  0 −1⎦         ⎣0    0    1 ⎦
//! ```
//! the 2×2 output tile is Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A. Summed over input channels, each of the 16
//! positions ξ of the 4×4 products is one matrix product: M_ξ[m, t] = Σ_c U_ξ[m, c] · V_ξ[c, t] with
//! U = G g Gᵀ (computed once, by the compiler: [`transform_weights`]) and V = Bᵀ d B for every tile t.
//! The 16 products run on the GEMM micro-kernels; the output transform applies bias, the residual
//! already in Y and the activation, so the epilogue stays fused.
//!
//! Error: the transforms only add, subtract and halve, so F(2×2, 3×3) keeps float32 results within a few
//! ulps of a direct convolution (measured in the tests and against ONNX Runtime on whole ResNets).

use super::conv::{Conv2d, Pre};
use super::elementwise::{unary_inplace, UnaryOp};
use super::gemm::{self, gemm_packed, pack_a, packed_len, put_row, BSource, Epilogue, Isa, MatRef};
use crate::parallel::for_chunks_mut;

/// Whether a convolution can run as F(2×2, 3×3): 3x3, stride 1, no dilation, one group, pads ≤ 2.
pub fn fits(p: &Conv2d) -> bool {
    p.kernel == [3, 3] && p.strides == [1, 1] && p.dilations == [1, 1] && p.group == 1 && p.pads.iter().all(|&q| q <= 2)
}

/// Whether a convolution [`fits`] and is big enough for the transforms to pay off: they cost O(C·T) and
/// O(M·T) against the products' O(16·M·C·T). Measured with `examples/conv_bench.rs` (2026-11-28, Zen 4,
/// vectorized transforms, best of 15): 1.3-1.9x faster than the GEMM path at 128 to 512 channels, 1 and 2
/// threads; at 64 channels and 56 px, 0.7-1.26x — there V and M (16·64·784 floats each) outgrow L2, and
/// the products have k = 64 only — so 64-channel layers stay on the GEMM path.
pub fn applies(p: &Conv2d) -> bool {
    fits(p) && p.cin >= MIN_CHANNELS && p.cout >= MIN_CHANNELS
}

/// Channels in and out from which Winograd is used.
pub const MIN_CHANNELS: usize = 128;

/// Floats of the transformed weights: 16 matrices [M × C], each packed for the GEMM.
pub fn weights_len(p: &Conv2d) -> usize {
    16 * packed_len(p.cout, p.cin)
}

/// U_ξ = G g Gᵀ for every (m, c), as 16 packed [M × C] matrices. `w` is `[M, C, 3, 3]`.
pub fn transform_weights(p: &Conv2d, w: &[f32]) -> Vec<f32> {
    let (m, c) = (p.cout, p.cin);
    assert_eq!(w.len(), m * c * 9, "winograd: expected [M, C, 3, 3] weights");
    let mut u = vec![0.0f32; 16 * m * c];
    for (mc, g) in w.chunks_exact(9).enumerate() {
        // t = G g (4×3), then U = t Gᵀ (4×4); in f64 so the only rounding is the final one.
        let g: Vec<f64> = g.iter().map(|&v| v as f64).collect();
        let mut t = [[0f64; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
            t[0][j] = g0;
            t[1][j] = 0.5 * (g0 + g1 + g2);
            t[2][j] = 0.5 * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        for (i, row) in t.iter().enumerate() {
            let (r0, r1, r2) = (row[0], row[1], row[2]);
            let vals = [r0, 0.5 * (r0 + r1 + r2), 0.5 * (r0 - r1 + r2), r2];
            for (j, v) in vals.iter().enumerate() {
                u[(i * 4 + j) * m * c + mc] = *v as f32;
            }
        }
    }
    let plen = packed_len(m, c);
    let mut out = vec![0.0; 16 * plen];
    for xi in 0..16 {
        pack_a(m, c, MatRef::new(&u[xi * m * c..(xi + 1) * m * c], c), 1.0, &mut out[xi * plen..(xi + 1) * plen]);
    }
    out
}

/// Output tiles of an `oh × ow` output: (rows, cols) of 2×2 tiles.
fn tiles(oh: usize, ow: usize) -> (usize, usize) {
    (oh.div_ceil(2), ow.div_ceil(2))
}

/// Scratch floats for one image: V (16·C·T), M (16·M·T) and the GEMM's packing for `threads`.
pub fn scratch_len(p: &Conv2d, oh: usize, ow: usize, threads: usize) -> usize {
    let (th, tw) = tiles(oh, ow);
    16 * (p.cin + p.cout) * th * tw + gemm::scratch_len(Isa::detect(), threads)
}

/// The convolution of [`super::conv::conv2d`] (same operands and epilogue) for a geometry that
/// [`applies`], with `u` from [`transform_weights`].
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    x: &[f32],
    x_stride: usize,
    n: usize,
    h: usize,
    w: usize,
    p: &Conv2d,
    u: &[f32],
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
    let (c, m) = (p.cin, p.cout);
    let (th, tw) = tiles(oh, ow);
    let t = th * tw;
    let (top, left) = (p.pads[0] as isize, p.pads[1] as isize);
    let plen = packed_len(m, c);
    assert!(u.len() >= 16 * plen, "winograd: transformed weights are too short");
    let (v, rest) = scratch.split_at_mut(16 * c * t);
    let (mm, gemm_scratch) = rest.split_at_mut(16 * m * t);
    let isa = Isa::detect();
    for img in 0..n {
        let xi = &x[img * x_stride..img * x_stride + c * h * w];
        // Input transform, channel by channel, into V laid out [ch][ξ][t]: the product for ξ reads rows
        // of its [C × T] matrix at stride 16·T.
        for_chunks_mut(v, 16 * t, |ch, vc| {
            let plane = &xi[ch * h * w..(ch + 1) * h * w];
            let pre = pre.as_ref();
            input_transform(plane, h, w, top, left, th, tw, |v| pre.map_or(v, |f| f.apply(ch, v)), vc);
        });
        // The 16 products M_ξ = U_ξ · V_ξ, written to M laid out [m][ξ][t].
        for xi_ in 0..16 {
            gemm_packed(
                isa,
                m,
                t,
                c,
                &u[xi_ * plen..(xi_ + 1) * plen],
                &Rows { data: &v[xi_ * t..], ld: 16 * t },
                &mut mm[xi_ * t..],
                16 * t,
                &Epilogue::default(),
                threads,
                gemm_scratch,
            );
        }
        // Output transform Y = Aᵀ M A with the epilogue, output channel by channel.
        let yi = &mut y[img * y_stride..img * y_stride + m * oh * ow];
        let mm = &*mm;
        for_chunks_mut(yi, oh * ow, |k, plane| {
            let b = bias.map_or(0.0, |b| b[k]);
            output_transform(&mm[k * 16 * t..(k + 1) * 16 * t], th, tw, oh, ow, b, accumulate, plane);
            if let Some(a) = act {
                unary_inplace(a, plane);
            }
        });
    }
}

/// Tiles transformed together: the transforms run along a row of tiles, [`TB`] at a time, as
/// element-wise operations on arrays the compiler vectorizes.
const TB: usize = 64;

/// V = Bᵀ d B for every 4×4 input tile d of one channel's `h × w` plane (`f` applied to each input value,
/// zero padding outside), written to `vc[ξ·T + t]` (ξ = 4i + j, t = ti·tw + tj).
///
/// Row by row: with a row's values at the tiles' even and odd columns, ev[t] = x[2t − left] and
/// od[t] = x[2t + 1 − left], the row product d·B of tile t is
/// `[ev[t] − ev[t+1], od[t] + ev[t+1], ev[t+1] − od[t], od[t] − od[t+1]]`: contiguous in t. The column
/// product Bᵀ(d·B) then combines the four rows' results the same way.
#[allow(clippy::too_many_arguments)]
fn input_transform(
    plane: &[f32],
    h: usize,
    w: usize,
    top: isize,
    left: isize,
    th: usize,
    tw: usize,
    f: impl Fn(f32) -> f32,
    vc: &mut [f32],
) {
    let t = th * tw;
    // Buffers set up once (not per row of tiles: zeroing them each time cost more than the transform
    // on 7- and 14-pixel maps); every element read below is written first for the current chunk.
    let mut rt = [[[0f32; TB]; 4]; 4]; // [row a][j][tile]
    let (mut ev, mut od) = ([0f32; TB + 1], [0f32; TB + 1]);
    for ti in 0..th {
        let mut tj0 = 0;
        while tj0 < tw {
            let nb = TB.min(tw - tj0);
            for (a, rta) in rt.iter_mut().enumerate() {
                let r = 2 * ti as isize - top + a as isize;
                if r < 0 || r >= h as isize {
                    ev[..=nb].fill(0.0);
                    od[..=nb].fill(0.0);
                } else {
                    let row = &plane[r as usize * w..(r as usize + 1) * w];
                    let c0 = 2 * tj0 as isize - left;
                    if c0 >= 0 && c0 + 2 * nb as isize + 2 <= w as isize {
                        let src = &row[c0 as usize..c0 as usize + 2 * nb + 2];
                        for (i, pair) in src.chunks_exact(2).enumerate() {
                            ev[i] = f(pair[0]);
                            od[i] = f(pair[1]);
                        }
                    } else {
                        let at = |c: isize| if c >= 0 && c < w as isize { f(row[c as usize]) } else { 0.0 };
                        for i in 0..=nb {
                            ev[i] = at(c0 + 2 * i as isize);
                            od[i] = at(c0 + 2 * i as isize + 1);
                        }
                    }
                }
                let [r0, r1, r2, r3] = rta;
                for i in 0..nb {
                    r0[i] = ev[i] - ev[i + 1];
                    r1[i] = od[i] + ev[i + 1];
                    r2[i] = ev[i + 1] - od[i];
                    r3[i] = od[i] - od[i + 1];
                }
            }
            let base = ti * tw + tj0;
            for j in 0..4 {
                let (d0, d1, d2, d3) = (&rt[0][j], &rt[1][j], &rt[2][j], &rt[3][j]);
                for i4 in 0..4 {
                    let out = &mut vc[(i4 * 4 + j) * t + base..(i4 * 4 + j) * t + base + nb];
                    match i4 {
                        0 => out.iter_mut().enumerate().for_each(|(i, o)| *o = d0[i] - d2[i]),
                        1 => out.iter_mut().enumerate().for_each(|(i, o)| *o = d1[i] + d2[i]),
                        2 => out.iter_mut().enumerate().for_each(|(i, o)| *o = d2[i] - d1[i]),
                        _ => out.iter_mut().enumerate().for_each(|(i, o)| *o = d1[i] - d3[i]),
                    }
                }
            }
            tj0 += nb;
        }
    }
}

/// Y = Aᵀ M A (+ bias, + the old Y when `accumulate`) for every 2×2 output tile of one output channel,
/// from `mk[ξ·T + t]`, into its `oh × ow` plane. Along a row of tiles, for output row r of the tile:
/// s_r = rows of Aᵀ M, then the pair (s_r0 + s_r1 + s_r2, s_r1 − s_r2 − s_r3) lands at columns 2t, 2t+1.
#[allow(clippy::too_many_arguments)]
fn output_transform(
    mk: &[f32],
    th: usize,
    tw: usize,
    oh: usize,
    ow: usize,
    b: f32,
    accumulate: bool,
    plane: &mut [f32],
) {
    let t = th * tw;
    // Set up once (see `input_transform`); every element read is written first for the current chunk.
    let mut s = [[[0f32; TB]; 4]; 2]; // [r][j][tile]
    let (mut o0, mut o1) = ([0f32; TB], [0f32; TB]);
    for ti in 0..th {
        let mut tj0 = 0;
        while tj0 < tw {
            let nb = TB.min(tw - tj0);
            let base = ti * tw + tj0;
            let q = |xi_: usize| &mk[xi_ * t + base..xi_ * t + base + nb];
            let [s0, s1] = &mut s;
            for (j, (s0j, s1j)) in s0.iter_mut().zip(s1.iter_mut()).enumerate() {
                let (q0, q1, q2, q3) = (q(j), q(4 + j), q(8 + j), q(12 + j));
                for i in 0..nb {
                    s0j[i] = q0[i] + q1[i] + q2[i];
                    s1j[i] = q1[i] - q2[i] - q3[i];
                }
            }
            for (r, sr) in s.iter().enumerate() {
                let oi = 2 * ti + r;
                if oi >= oh {
                    continue;
                }
                for i in 0..nb {
                    o0[i] = sr[0][i] + sr[1][i] + sr[2][i] + b;
                    o1[i] = sr[1][i] - sr[2][i] - sr[3][i] + b;
                }
                let c0 = 2 * tj0;
                let row = &mut plane[oi * ow + c0..oi * ow + ow.min(c0 + 2 * nb)];
                if accumulate {
                    for (i, pair) in row.chunks_mut(2).enumerate() {
                        pair[0] += o0[i];
                        if let Some(x) = pair.get_mut(1) {
                            *x += o1[i];
                        }
                    }
                } else {
                    for (i, pair) in row.chunks_mut(2).enumerate() {
                        pair[0] = o0[i];
                        if let Some(x) = pair.get_mut(1) {
                            *x = o1[i];
                        }
                    }
                }
            }
            tj0 += nb;
        }
    }
}

/// A row-major B read through its rows (stride `ld`) and always packed: V's rows are 16·T floats apart,
/// a stride that would map a micro-panel read in place onto a handful of L1 sets.
struct Rows<'a> {
    data: &'a [f32],
    ld: usize,
}

impl BSource for Rows<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        for i in 0..kc {
            let at = (k0 + i) * self.ld + n0;
            put_row(dst, kc, nr, i, &self.data[at..at + nc]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2d;

    #[test]
    fn matches_the_gemm_convolution() {
        for &(cin, cout, h, w, pads, acc) in &[
            (128, 128, 8, 8, [1usize; 4], false),
            (130, 140, 7, 9, [1, 1, 1, 1], true),
            (128, 129, 5, 6, [0, 0, 0, 0], false),
            (136, 128, 14, 14, [2, 1, 0, 2], true),
        ] {
            let p = Conv2d { cin, cout, kernel: [3, 3], strides: [1, 1], pads, dilations: [1, 1], group: 1 };
            assert!(applies(&p));
            let oh = h + pads[0] + pads[2] - 2;
            let ow = w + pads[1] + pads[3] - 2;
            let n = 2;
            let x: Vec<f32> = (0..n * cin * h * w).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let wt: Vec<f32> = (0..cout * cin * 9).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let b: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.2).collect();
            let (sc, sh): (Vec<f32>, Vec<f32>) =
                (0..cin).map(|c| (0.5 + c as f32 * 0.05, c as f32 * 0.1 - 0.3)).unzip();
            let pre = Pre { scale: &sc, shift: &sh, act: Some(UnaryOp::Relu) };
            let skip: Vec<f32> = (0..n * cout * oh * ow).map(|i| (i % 7) as f32 - 3.0).collect();
            let (xs, ys) = (cin * h * w, cout * oh * ow);
            let mut want = skip.clone();
            let mut s1 = vec![0.0; p.scratch_len(oh, ow, 2)];
            let packed = p.pack_weights(&wt);
            conv2d(
                &x,
                xs,
                n,
                h,
                w,
                &p,
                &packed,
                Some(&b),
                Some(UnaryOp::Relu),
                acc,
                Some(pre),
                oh,
                ow,
                &mut want,
                ys,
                &mut s1,
                2,
            );
            let mut got = skip.clone();
            let mut s2 = vec![0.0; scratch_len(&p, oh, ow, 2)];
            let u = transform_weights(&p, &wt);
            conv3x3(
                &x,
                xs,
                n,
                h,
                w,
                &p,
                &u,
                Some(&b),
                Some(UnaryOp::Relu),
                acc,
                Some(pre),
                oh,
                ow,
                &mut got,
                ys,
                &mut s2,
                2,
            );
            // Each output sums ~1200 products of magnitude ~1 that largely cancel; float32 rounding of
            // either method is ~1e-7 of that sum, so differences up to ~1e-3 are expected.
            let mut worst = 0f32;
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!((g - e).abs() <= 1e-3 + 1e-4 * e.abs(), "{p:?} at {i}: winograd {g} vs gemm {e}");
                worst = worst.max((g - e).abs());
            }
            eprintln!("{p:?}: max |winograd - gemm| = {worst:e}");
        }
    }
}
