//! Pooling kernels: 2-D max and average pooling over NCHW planes, global average pooling, and the
//! ONNX output-size rule they share.
//!
//! Images are handled as `planes = N * C` independent `[h, w]` planes. Large problems are split across
//! planes on the session's thread pool; small ones run sequentially.

use super::conv::Pre;
use super::elementwise::UnaryOp;
use crate::parallel::for_chunks_mut;

/// Geometry of a 2-D pooling window. pads are [top, left, bottom, right].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool2d {
    /// Window size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Window step `[sh, sw]`.
    pub strides: [usize; 2],
    /// Implicit padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Spacing between window taps `[dh, dw]` (1 = dense).
    pub dilations: [usize; 2],
    /// Average pooling only: whether padded positions count in the divisor.
    pub count_include_pad: bool,
}

/// Output length of one spatial axis, ONNX semantics (floor, or ceil when ceil_mode; with ceil_mode a window
/// that would start inside the end padding only is dropped, as ONNX Runtime / PyTorch do).
///
/// Math: with the effective window `ek = (kernel - 1) * dilation + 1` and padded length
/// `L = input + pad_begin + pad_end`, `out = floor((L - ek) / stride) + 1` (or `ceil` in ceil mode); then,
/// in ceil mode, if the last window would start at or beyond `input + pad_begin` (i.e. in the end padding)
/// `out` is reduced by one. If the window does not fit at all (`L < ek`) the result is 0.
/// A zero `stride` is treated as 1.
pub fn pool_output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    pad_begin: usize,
    pad_end: usize,
    dilation: usize,
    ceil_mode: bool,
) -> usize {
    let stride = stride.max(1);
    let ek = kernel.saturating_sub(1) * dilation + 1;
    let Some(span) = (input + pad_begin + pad_end).checked_sub(ek) else {
        return 0;
    };
    let mut out = if ceil_mode { span.div_ceil(stride) + 1 } else { span / stride + 1 };
    if ceil_mode && (out - 1) * stride >= input + pad_begin {
        out -= 1;
    }
    out
}

/// Work (output elements × window taps) below which the plane loop stays sequential.
const PAR_THRESHOLD: usize = 1 << 16;

/// Runs `f(x_plane, y_plane)` for each of `planes` planes, in parallel when the work is large.
fn for_each_plane<F>(x: &[f32], hw: usize, y: &mut [f32], ohw: usize, taps: usize, f: F)
where
    F: Fn(&[f32], &mut [f32]) + Sync + Send,
{
    for_each_plane_at(x, hw, y, ohw, taps, |_, xp, yp| f(xp, yp))
}

/// [`for_each_plane`] passing each plane's index too.
fn for_each_plane_at<F>(x: &[f32], hw: usize, y: &mut [f32], ohw: usize, taps: usize, f: F)
where
    F: Fn(usize, &[f32], &mut [f32]) + Sync + Send,
{
    if ohw == 0 {
        return;
    }
    let plane = |(p, yp): (usize, &mut [f32])| f(p, &x[p * hw..(p + 1) * hw], yp);
    if y.len().saturating_mul(taps) >= PAR_THRESHOLD && y.len() > ohw {
        for_chunks_mut(y, ohw, |p, yp| plane((p, yp)));
    } else {
        y.chunks_mut(ohw).enumerate().for_each(plane);
    }
}

/// The taps `k` of a dilated window starting at (possibly negative) `start` whose coordinates
/// `start + k * dilation` lie in `[lo, hi)`, as a half-open range `[k0, k1)` clipped to `[0, kernel)`.
#[inline]
fn tap_range(start: isize, kernel: usize, dilation: usize, lo: isize, hi: isize) -> (usize, usize) {
    let d = dilation.max(1) as isize;
    // Smallest k with start + k*d >= lo.
    let k0 = if start >= lo { 0 } else { (lo - start + d - 1) / d };
    // Smallest k with start + k*d >= hi.
    let k1 = if start >= hi { 0 } else { (hi - start + d - 1) / d };
    let k1 = (k1 as usize).min(kernel);
    ((k0 as usize).min(k1), k1)
}

/// x: [n*c, h, w] planes, y: [n*c, oh, ow]. Max over the window; padded positions are ignored (never -inf in output unless the window is entirely padding, which cannot happen with valid geometry).
///
/// Math: `y[p, i, j] = max { x[p, i*sh - top + a*dh, j*sw - left + b*dw] : 0 ≤ a < kh, 0 ≤ b < kw,
/// coordinates inside the image }`. A NaN in the window makes the output NaN (as PyTorch does).
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d(x: &[f32], planes: usize, h: usize, w: usize, p: &Pool2d, oh: usize, ow: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), planes * h * w, "max_pool2d: input length");
    debug_assert_eq!(y.len(), planes * oh * ow, "max_pool2d: output length");
    let taps = p.kernel[0] * p.kernel[1];
    if separable_fits(p, ow) {
        for_each_plane(x, h * w, y, oh * ow, taps, |xp, yp| max_plane_separable(p, xp, h, w, ow, yp));
        return;
    }
    for_each_plane(x, h * w, y, oh * ow, taps, |xp, yp| {
        window_plane(p, h, w, ow, yp, |rows, cols| {
            let mut m = f32::NEG_INFINITY;
            for r in rows {
                let row = &xp[r * w..(r + 1) * w];
                for c in cols.clone() {
                    let v = row[c];
                    // Once `m` is NaN no comparison succeeds, so NaN sticks.
                    if v > m || v.is_nan() {
                        m = v;
                    }
                }
            }
            m
        });
    });
}

/// The widest padded row [`max_pool2d`]'s separable path takes: the columns its windows span, left
/// padding included (the row buffer lives on the stack).
const SEPARABLE_MAX_W: usize = 1024;

/// NaN-sticky maximum: once either side is NaN the result is NaN.
#[inline(always)]
fn max_nan(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// Whether an undilated pool's windows fit [`max_plane_separable`]'s row buffer.
fn separable_fits(p: &Pool2d, ow: usize) -> bool {
    p.dilations == [1, 1] && ow > 0 && (ow - 1) * p.strides[1].max(1) + p.kernel[1] < SEPARABLE_MAX_W
}

avx2_twin!(
    /// One plane of an undilated max pool, separably ([`max_plane_body`]), with 256-bit vectors where the
    /// CPU has AVX2 (same bits). This and the prefetch of input rows in the body took ResNet-50's max pool went from 0.22-0.24 to
    /// 0.17-0.18 ms on 1 thread.
    fn max_plane_separable / max_plane_avx2 => max_plane_body(p: &Pool2d, xp: &[f32], h: usize, w: usize, ow: usize, yp: &mut [f32])
);

/// One plane of an undilated max pool, separably. For each output row, the element-wise maximum of the
/// window's input rows goes into a padded row `c` (c[t] = column t − left, −∞ in the padding), a
/// vectorizable pass over whole rows; then y[i, j] = max_{b < kw} c[j·sw + b]. With the usual 3-wide,
/// stride-2 window that is max(max(c[2j], c[2j+1]), c[2j+2]) over pairs, which the compiler vectorizes.
/// Same result as the window-by-window loop: the taps are folded in the same order, −∞ never wins over a
/// value, and NaN sticks.
#[inline(always)]
fn max_plane_body(p: &Pool2d, xp: &[f32], h: usize, w: usize, ow: usize, yp: &mut [f32]) {
    let sh = p.strides[0].max(1) as isize;
    let (kw, sw) = (p.kernel[1], p.strides[1].max(1));
    // The columns the windows span, and one more so that the pairs below always have a successor.
    let span = (ow - 1) * sw + kw;
    // (A left padding wider than the span leaves every window in the padding: all −∞.)
    let left = p.pads[1].min(span);
    let mut buf = [f32::NEG_INFINITY; SEPARABLE_MAX_W];
    let c = &mut buf[..span + 1];
    // The input columns inside the span: c[left + t] = column t for t < cols.
    let cols = w.min(span.saturating_sub(left));
    for (i, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let r0 = i as isize * sh - p.pads[0] as isize;
        let (a0, a1) = tap_range(r0, p.kernel[0], 1, 0, h as isize);
        let row = |a: usize| {
            let r = (r0 + a as isize) as usize;
            &xp[r * w..r * w + cols]
        };
        // The input rows two output rows ahead, requested now: the pool is bound by reading its input
        // (the stem's output, past L2), one row at a time.
        let ahead = (r0 + 2 * sh).max(0) as usize;
        if ahead < h {
            let end = (ahead + sh as usize).min(h);
            super::prefetch(&xp[ahead * w..end * w]);
        }
        let m = &mut c[left..left + cols];
        if a0 == a1 {
            m.fill(f32::NEG_INFINITY);
        } else {
            // max(−∞, v) = v for every v (NaN included): the first row is a copy.
            m.copy_from_slice(row(a0));
            for a in a0 + 1..a1 {
                for (m, &v) in m.iter_mut().zip(row(a)) {
                    *m = max_nan(*m, v);
                }
            }
        }
        if (kw, sw) == (3, 2) {
            for ((o, pair), next) in yr.iter_mut().zip(c.chunks_exact(2)).zip(c[2..].chunks_exact(2)) {
                *o = max_nan(max_nan(pair[0], pair[1]), next[0]);
            }
        } else {
            for (j, o) in yr.iter_mut().enumerate() {
                *o = c[j * sw..j * sw + kw].iter().fold(f32::NEG_INFINITY, |m, &v| max_nan(m, v));
            }
        }
    }
}

/// Average: count_include_pad=true divides by the number of window positions inside the *padded* input (positions beyond the padded extent introduced by ceil_mode are NOT counted — this matches ONNX Runtime); false divides by the number of valid (in-image) positions.
///
/// Math: `y[p, i, j] = (Σ_{taps in the image} x) / count`, where `count` is the number of window taps with
/// both coordinates in the padded extent `[-top, h + bottom) × [-left, w + right)` when
/// `count_include_pad`, and the number of taps inside the image `[0, h) × [0, w)` otherwise. (A window
/// with no counted tap, impossible with valid geometry, gives `0 / 0 = NaN`.)
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(x: &[f32], planes: usize, h: usize, w: usize, p: &Pool2d, oh: usize, ow: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), planes * h * w, "avg_pool2d: input length");
    debug_assert_eq!(y.len(), planes * oh * ow, "avg_pool2d: output length");
    let taps = p.kernel[0] * p.kernel[1];
    if p.kernel == [2, 2]
        && p.strides == [2, 2]
        && p.pads == [0; 4]
        && p.dilations == [1, 1]
        && 2 * oh <= h
        && 2 * ow <= w
    {
        // DenseNet's transitions: every window whole, four taps summed in the general path's order
        // ((x00 + x01) + x10) + x11 (the same values, but for the sign of an all-(-0.0) window), in loops
        // over rows the compiler vectorizes.
        for_each_plane(x, h * w, y, oh * ow, taps, |xp, yp| {
            for (i, yr) in yp.chunks_exact_mut(ow).enumerate() {
                let (r0, r1) = (&xp[2 * i * w..][..2 * ow], &xp[(2 * i + 1) * w..][..2 * ow]);
                for ((o, a), b) in yr.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    *o = (a[0] + a[1] + b[0] + b[1]) / 4.0;
                }
            }
        });
        return;
    }
    for_each_plane(x, h * w, y, oh * ow, taps, |xp, yp| avg_plane(p, h, w, ow, xp, yp, |v| v));
}

/// One plane of [`avg_pool2d`], window by window, each input value passed through `f` first.
fn avg_plane(p: &Pool2d, h: usize, w: usize, ow: usize, xp: &[f32], yp: &mut [f32], f: impl Fn(f32) -> f32) {
    let [top, left, bottom, right] = p.pads.map(|v| v as isize);
    let (sh, sw) = (p.strides[0].max(1) as isize, p.strides[1].max(1) as isize);
    let (dh, dw) = (p.dilations[0].max(1), p.dilations[1].max(1));
    let [kh, kw] = p.kernel;
    for (i, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let r0 = i as isize * sh - top;
        let rows = tap_range(r0, kh, dh, 0, h as isize);
        let rows_padded = if p.count_include_pad { tap_range(r0, kh, dh, -top, h as isize + bottom) } else { rows };
        for (j, out) in yr.iter_mut().enumerate() {
            let c0 = j as isize * sw - left;
            let cols = tap_range(c0, kw, dw, 0, w as isize);
            let cols_padded = if p.count_include_pad { tap_range(c0, kw, dw, -left, w as isize + right) } else { cols };
            let mut s = 0.0f32;
            for r in TapIter::new(r0, rows.0, rows.1, dh) {
                let row = &xp[r * w..(r + 1) * w];
                for c in TapIter::new(c0, cols.0, cols.1, dw) {
                    s += f(row[c]);
                }
            }
            let count = (rows_padded.1 - rows_padded.0) * (cols_padded.1 - cols_padded.0);
            *out = s / count as f32;
        }
    }
}

avx2_twin!(
    /// [`pool2x2_pre_plane_body`], with AVX2 where the CPU has it (same bits).
    fn pool2x2_pre_plane / pool2x2_pre_plane_avx2 => pool2x2_pre_plane_body(xp: &[f32], w: usize, ow: usize, yp: &mut [f32], s: f32, t: f32, relu: bool)
);

/// One plane of a whole-window 2x2 stride-2 average pool of `max(s·x + t, 0)` (or `s·x + t` without
/// `relu`; NaN passes, as in `Pre::apply_row`).
#[inline(always)]
fn pool2x2_pre_plane_body(xp: &[f32], w: usize, ow: usize, yp: &mut [f32], s: f32, t: f32, relu: bool) {
    let f = |x: f32| {
        let v = s * x + t;
        if relu && v <= 0.0 {
            0.0
        } else {
            v
        }
    };
    for (i, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let (r0, r1) = (&xp[2 * i * w..][..2 * ow], &xp[(2 * i + 1) * w..][..2 * ow]);
        for ((o, a), b) in yr.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            *o = (f(a[0]) + f(a[1]) + f(b[0]) + f(b[1])) / 4.0;
        }
    }
}

/// [`avg_pool2d`] of `act(scale[c]·x + shift[c])` (the prologue `pre`, per channel c of `channels`;
/// plane p is channel p mod `channels`): the transformed input is never stored. A 1x1 convolution's
/// prologue moves here when the pool moves in front of it (the compiler's `pool_first` pass).
///
/// Math: `y[p, i, j] = (Σ_{taps in the image} pre(x)) / count`, `count` as in [`avg_pool2d`].
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d_pre(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    p: &Pool2d,
    oh: usize,
    ow: usize,
    y: &mut [f32],
    channels: usize,
    pre: &Pre,
) {
    debug_assert_eq!(x.len(), planes * h * w, "avg_pool2d_pre: input length");
    debug_assert_eq!(y.len(), planes * oh * ow, "avg_pool2d_pre: output length");
    assert!(channels > 0 && pre.scale.len() >= channels && pre.shift.len() >= channels, "avg_pool2d_pre: prologue");
    let taps = p.kernel[0] * p.kernel[1];
    let whole_2x2 = p.kernel == [2, 2]
        && p.strides == [2, 2]
        && p.pads == [0; 4]
        && p.dilations == [1, 1]
        && 2 * oh <= h
        && 2 * ow <= w;
    let plain = matches!(pre.act, None | Some(UnaryOp::Relu));
    if whole_2x2 && plain {
        // DenseNet's transitions (BatchNorm and ReLU): each output transforms its four inputs as it sums
        // them, in the order `avg_pool2d` sums, in one loop the compiler vectorizes (AVX2 where the CPU
        // has it).
        let relu = pre.act.is_some();
        for_each_plane_at(x, h * w, y, oh * ow, taps, |pl, xp, yp| {
            let c = pl % channels;
            pool2x2_pre_plane(xp, w, ow, yp, pre.scale[c], pre.shift[c], relu)
        });
        return;
    }
    // Any other pool or activation: window by window (the same sums in the same order).
    for_each_plane_at(x, h * w, y, oh * ow, taps, |pl, xp, yp| {
        let c = pl % channels;
        avg_plane(p, h, w, ow, xp, yp, |v| pre.apply(c, v));
    });
}

/// Calls `reduce(rows, cols)` for every output position of one plane, with the in-image input row and
/// column indices the window covers, and stores the result.
fn window_plane<R>(p: &Pool2d, h: usize, w: usize, ow: usize, yp: &mut [f32], reduce: R)
where
    R: Fn(TapIter, TapIter) -> f32,
{
    let (sh, sw) = (p.strides[0].max(1) as isize, p.strides[1].max(1) as isize);
    let (dh, dw) = (p.dilations[0].max(1), p.dilations[1].max(1));
    for (i, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let r0 = i as isize * sh - p.pads[0] as isize;
        let (a0, a1) = tap_range(r0, p.kernel[0], dh, 0, h as isize);
        let rows = TapIter::new(r0, a0, a1, dh);
        for (j, out) in yr.iter_mut().enumerate() {
            let c0 = j as isize * sw - p.pads[1] as isize;
            let (b0, b1) = tap_range(c0, p.kernel[1], dw, 0, w as isize);
            *out = reduce(rows.clone(), TapIter::new(c0, b0, b1, dw));
        }
    }
}

/// Input coordinates `start + k * step` for `k` in `[k0, k1)`; all are in range by construction.
#[derive(Clone)]
struct TapIter {
    next: usize,
    left: usize,
    step: usize,
}

impl TapIter {
    #[inline]
    fn new(start: isize, k0: usize, k1: usize, step: usize) -> Self {
        let left = k1 - k0;
        // When the range is empty the first coordinate may be out of range; it is never yielded.
        let next = if left == 0 { 0 } else { (start + (k0 * step) as isize) as usize };
        TapIter { next, left, step }
    }
}

impl Iterator for TapIter {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let v = self.next;
        self.left -= 1;
        self.next += self.step;
        Some(v)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for TapIter {}

/// `y[p]` = mean of plane p (len hw).
///
/// Math: `y[p] = (1 / hw) Σ_{k < hw} x[p * hw + k]`, accumulated in `f32`. (`hw == 0` gives NaN, the
/// mean of nothing.)
pub fn global_avg_pool(x: &[f32], planes: usize, hw: usize, y: &mut [f32]) {
    debug_assert_eq!(x.len(), planes * hw, "global_avg_pool: input length");
    debug_assert_eq!(y.len(), planes, "global_avg_pool: output length");
    if hw == 0 {
        y.fill(f32::NAN);
        return;
    }
    let inv = 1.0 / hw as f32;
    for (yp, xp) in y.iter_mut().zip(x.chunks_exact(hw)) {
        *yp = xp.iter().sum::<f32>() * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(3);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 10.0 - 5.0
            })
            .collect()
    }

    /// Naive reference for both pools: enumerate every tap, classify it, reduce in f64.
    #[allow(clippy::too_many_arguments)]
    fn naive(x: &[f32], planes: usize, h: usize, w: usize, p: &Pool2d, oh: usize, ow: usize, max: bool) -> Vec<f32> {
        let mut y = Vec::new();
        let (h, w) = (h as i64, w as i64);
        let [top, left, bottom, right] = p.pads.map(|v| v as i64);
        for pl in 0..planes {
            for i in 0..oh as i64 {
                for j in 0..ow as i64 {
                    let mut m = f64::NEG_INFINITY;
                    let (mut s, mut valid, mut padded) = (0.0f64, 0usize, 0usize);
                    for a in 0..p.kernel[0] as i64 {
                        for b in 0..p.kernel[1] as i64 {
                            let r = i * p.strides[0] as i64 - top + a * p.dilations[0] as i64;
                            let c = j * p.strides[1] as i64 - left + b * p.dilations[1] as i64;
                            if r >= -top && r < h + bottom && c >= -left && c < w + right {
                                padded += 1;
                            }
                            if r >= 0 && r < h && c >= 0 && c < w {
                                let v = x[pl * (h * w) as usize + (r * w + c) as usize] as f64;
                                valid += 1;
                                s += v;
                                m = m.max(v);
                            }
                        }
                    }
                    let count = if p.count_include_pad { padded } else { valid };
                    y.push(if max { m as f32 } else { (s / count as f64) as f32 });
                }
            }
        }
        y
    }

    struct Case {
        planes: usize,
        h: usize,
        w: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        pads: [usize; 4],
        dilations: [usize; 2],
        ceil: bool,
    }

    fn check(c: &Case) {
        let oh = pool_output_len(c.h, c.kernel[0], c.strides[0], c.pads[0], c.pads[2], c.dilations[0], c.ceil);
        let ow = pool_output_len(c.w, c.kernel[1], c.strides[1], c.pads[1], c.pads[3], c.dilations[1], c.ceil);
        let x = data(c.planes * c.h * c.w, (c.h * 131 + c.w * 17 + c.planes) as u32);
        for include in [false, true] {
            let p = Pool2d {
                kernel: c.kernel,
                strides: c.strides,
                pads: c.pads,
                dilations: c.dilations,
                count_include_pad: include,
            };
            let mut y = vec![f32::NAN; c.planes * oh * ow];
            max_pool2d(&x, c.planes, c.h, c.w, &p, oh, ow, &mut y);
            let want = naive(&x, c.planes, c.h, c.w, &p, oh, ow, true);
            assert_eq!(y, want, "max {p:?} h={} w={} ceil={}", c.h, c.w, c.ceil);
            avg_pool2d(&x, c.planes, c.h, c.w, &p, oh, ow, &mut y);
            let want = naive(&x, c.planes, c.h, c.w, &p, oh, ow, false);
            for (k, (g, wv)) in y.iter().zip(&want).enumerate() {
                assert!((g - wv).abs() <= 1e-5, "avg {p:?} h={} w={} ceil={} at {k}: {g} vs {wv}", c.h, c.w, c.ceil);
            }
        }
    }

    fn case(h: usize, w: usize, k: usize, s: usize, pads: [usize; 4], d: usize, ceil: bool) -> Case {
        Case { planes: 3, h, w, kernel: [k, k], strides: [s, s], pads, dilations: [d, d], ceil }
    }

    #[test]
    fn pool_output_len_onnx_rules() {
        // ResNet stem max pool: 112 -> 56.
        assert_eq!(pool_output_len(112, 3, 2, 1, 1, 1, false), 56);
        // ceil: (112 + 2 - 3) / 2 = 55.5 -> 57 windows; the last starts at row 111, inside the image.
        assert_eq!(pool_output_len(112, 3, 2, 1, 1, 1, true), 57);
        // Global-like 7x7 average.
        assert_eq!(pool_output_len(7, 7, 1, 0, 0, 1, false), 1);
        // floor vs ceil.
        assert_eq!(pool_output_len(5, 2, 2, 0, 0, 1, false), 2);
        assert_eq!(pool_output_len(5, 2, 2, 0, 0, 1, true), 3);
        assert_eq!(pool_output_len(6, 3, 2, 1, 1, 1, true), 4);
        // ceil would add a window starting in the end padding only: dropped.
        assert_eq!(pool_output_len(3, 2, 2, 1, 1, 1, true), 2);
        assert_eq!(pool_output_len(3, 2, 2, 1, 1, 1, false), 2);
        // Dilation: effective kernel 5.
        assert_eq!(pool_output_len(10, 3, 1, 0, 0, 2, false), 6);
        assert_eq!(pool_output_len(10, 3, 2, 0, 0, 2, true), 4);
        // Window larger than the padded input.
        assert_eq!(pool_output_len(2, 5, 1, 1, 1, 1, false), 0);
    }

    #[test]
    fn pools_match_naive() {
        check(&case(112, 112, 3, 2, [1, 1, 1, 1], 1, false)); // ResNet stem (parallel path)
        check(&case(7, 7, 7, 1, [0, 0, 0, 0], 1, false));
        check(&case(8, 8, 2, 2, [0, 0, 0, 0], 1, false)); // DenseNet transition
        check(&case(9, 7, 2, 2, [0, 0, 0, 0], 1, false)); // the same, odd sizes (last row and column unused)
        check(&case(9, 7, 2, 2, [0, 0, 0, 0], 1, true)); // ceil mode: partial windows, general path
        check(&case(56, 56, 2, 2, [0, 0, 0, 0], 1, false)); // large enough for the parallel path
        check(&case(9, 7, 3, 1, [1, 1, 1, 1], 1, false));
        check(&case(6, 5, 3, 2, [2, 0, 1, 2], 1, false)); // asymmetric pads
        check(&case(7, 9, 3, 2, [0, 0, 0, 0], 1, false)); // stride-2 pairs, no padding, odd width
        check(&case(5, 6, 3, 2, [1, 1, 1, 1], 1, true)); // stride-2 pairs in ceil mode
        check(&case(4, 6, 2, 2, [1, 1, 1, 1], 1, false)); // 2-wide windows on the padded row
        check(&case(10, 11, 3, 2, [1, 1, 1, 1], 2, false)); // dilation
        check(&Case {
            planes: 2,
            h: 9,
            w: 6,
            kernel: [3, 2],
            strides: [2, 1],
            pads: [1, 0, 0, 1],
            dilations: [1, 2],
            ceil: false,
        });
        check(&case(1, 1, 1, 1, [0, 0, 0, 0], 1, false));
    }

    #[test]
    fn pools_ceil_mode_match_naive() {
        check(&case(5, 5, 2, 2, [0, 0, 0, 0], 1, true));
        check(&case(6, 6, 3, 2, [1, 1, 1, 1], 1, true));
        check(&case(3, 3, 2, 2, [1, 1, 1, 1], 1, true)); // dropped last window
        check(&case(7, 8, 3, 3, [1, 1, 0, 0], 1, true));
        check(&case(10, 9, 3, 2, [0, 1, 1, 0], 2, true));
    }

    #[test]
    fn avg_pool_divisors() {
        // 1x1x3x3 input of ones, k=2, s=2, pads 1 all round, ceil: output 2x2 (the third window, which
        // would start in the bottom/right padding, is dropped).
        let x = [1.0f32; 9];
        let oh = pool_output_len(3, 2, 2, 1, 1, 1, true);
        assert_eq!(oh, 2);
        let mut p =
            Pool2d { kernel: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], count_include_pad: false };
        let mut y = [0.0; 4];
        avg_pool2d(&x, 1, 3, 3, &p, 2, 2, &mut y);
        assert_eq!(y, [1.0; 4]);
        p.count_include_pad = true;
        avg_pool2d(&x, 1, 3, 3, &p, 2, 2, &mut y);
        // Top-left window: 1 valid of 4 padded taps; the others 2/4 and 4/4.
        assert_eq!(y, [0.25, 0.5, 0.5, 1.0]);

        // Ceil mode window running past the padded extent: 1x4 row, k=3, s=2, no pads, ceil -> 2 windows;
        // the second covers cols 2,3 and one position beyond the input, which is never counted.
        let x = [1.0, 2.0, 3.0, 4.0];
        let ow = pool_output_len(4, 3, 2, 0, 0, 1, true);
        assert_eq!(ow, 2);
        let p = Pool2d { kernel: [1, 3], strides: [1, 2], pads: [0; 4], dilations: [1, 1], count_include_pad: true };
        let mut y = [0.0; 2];
        avg_pool2d(&x, 1, 1, 4, &p, 1, 2, &mut y);
        assert_eq!(y, [2.0, 3.5]);
    }

    #[test]
    fn avg_pool_with_a_prologue_is_the_pool_of_the_transformed_input() {
        // 2 images × 3 channels; the plane's channel is its index mod 3.
        let (n, c) = (2, 3);
        let scale = [0.5f32, -1.25, 2.0];
        let shift = [0.1f32, 0.3, -0.2];
        for act in [Some(UnaryOp::Relu), None, Some(UnaryOp::Sigmoid)] {
            let pre = Pre { scale: &scale, shift: &shift, act };
            // The 2x2 stride-2 path (odd sizes: the last row and column unused), and the general one.
            for (h, w, k, s, pads) in [(9, 7, 2, 2, [0; 4]), (8, 8, 2, 2, [0; 4]), (6, 5, 3, 1, [1, 0, 1, 1])] {
                let p = Pool2d { kernel: [k, k], strides: [s, s], pads, dilations: [1, 1], count_include_pad: true };
                let (oh, ow) = (
                    pool_output_len(h, k, s, pads[0], pads[2], 1, false),
                    pool_output_len(w, k, s, pads[1], pads[3], 1, false),
                );
                let x = data(n * c * h * w, (h * w + k) as u32);
                let xt: Vec<f32> = x.iter().enumerate().map(|(i, &v)| pre.apply((i / (h * w)) % c, v)).collect();
                let mut want = vec![0.0; n * c * oh * ow];
                avg_pool2d(&xt, n * c, h, w, &p, oh, ow, &mut want);
                let mut y = vec![f32::NAN; want.len()];
                avg_pool2d_pre(&x, n * c, h, w, &p, oh, ow, &mut y, c, &pre);
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{act:?} {h}x{w} k{k} at {i}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn max_pool_nan_and_padding() {
        // Padding never wins over negative values.
        let x = [-3.0, -2.0, -4.0, -5.0];
        let p =
            Pool2d { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], count_include_pad: false };
        let mut y = [0.0; 4];
        max_pool2d(&x, 1, 2, 2, &p, 2, 2, &mut y);
        assert_eq!(y, [-2.0; 4]);
        // NaN propagates.
        let x = [1.0, f32::NAN, 3.0, 0.0];
        max_pool2d(&x, 1, 2, 2, &p, 2, 2, &mut y);
        assert!(y.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn pools_empty() {
        let p = Pool2d { kernel: [2, 2], strides: [1, 1], pads: [0; 4], dilations: [1, 1], count_include_pad: false };
        let mut y: [f32; 0] = [];
        max_pool2d(&[], 0, 4, 4, &p, 3, 3, &mut y);
        avg_pool2d(&[], 0, 4, 4, &p, 3, 3, &mut y);
        max_pool2d(&[0.0; 4], 1, 1, 4, &p, 0, 3, &mut y);
        global_avg_pool(&[], 0, 5, &mut y);
    }

    #[test]
    fn global_avg_pool_matches_naive() {
        for &(planes, hw) in &[(1, 1), (3, 49), (64, 7), (2, 1000)] {
            let x = data(planes * hw, hw as u32);
            let mut y = vec![f32::NAN; planes];
            global_avg_pool(&x, planes, hw, &mut y);
            for p in 0..planes {
                let want = x[p * hw..(p + 1) * hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
                assert!((y[p] as f64 - want).abs() < 1e-5, "planes={planes} hw={hw}");
            }
        }
        let mut y = [0.0; 2];
        global_avg_pool(&[], 2, 0, &mut y);
        assert!(y.iter().all(|v| v.is_nan()));
    }
}
