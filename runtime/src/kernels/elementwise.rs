//! Elementwise kernels: unary activations (Relu, Sigmoid, Clip), broadcasting binary arithmetic
//! (Add, Sub, Mul, Div), n-ary Sum, and the per-channel affine map that inference BatchNorm folds into.
//!
//! NaN semantics follow ONNX Runtime: every operation here propagates NaN inputs to the output.

/// A unary activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `max(x, 0)`, with NaN propagated.
    Relu,
    /// `1 / (1 + exp(-x))`, evaluated without overflow.
    Sigmoid,
    /// `min(max(x, min), max)`, with NaN propagated.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

/// `max(x, 0)`; NaN compares false and is returned unchanged.
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x <= 0.0 {
        0.0
    } else {
        x
    }
}

/// e^z for z ≤ 0, in straight-line arithmetic that vectorizes (no call to libm's `expf`).
///
/// Math (Cody–Waite reduction, Cephes' `expf` polynomial): n = round(z·log₂e), r = z − n·ln 2 with ln 2
/// split in two so that r is exact to float precision, e^r ≈ 1 + r + r²·P(r) with P of degree 5 (relative
/// error ≈ 1 ulp on [−ln2/2, ln2/2]), and e^z = 2ⁿ·e^r with 2ⁿ built in the exponent bits. n is rounded
/// by the 1.5·2²³ trick, which leaves n in the low mantissa bits of the sum, so no float-to-int
/// conversion is needed. Below −87 the result is 0 (e^−87 ≈ 1.6·10⁻³⁸ is at the bottom of float's
/// normal range, and n + 127 must stay a valid exponent field). NaN gives NaN.
#[inline(always)]
fn exp_nonpositive(z: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³
    let f = z * std::f32::consts::LOG2_E + MAGIC;
    let n = f - MAGIC;
    let r = (z - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * (r * r) + r + 1.0;
    // f's bits are those of 1.5·2²³ plus n (|n| < 2²²): n + 127, shifted into the exponent, is 2ⁿ.
    let scale = f32::from_bits(f.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    if z < -87.0 {
        0.0
    } else {
        er * scale
    }
}

/// Stable logistic: only ever exponentiates a non-positive number, e = e^{−|x|}, and returns
/// 1/(1 + e) for x ≥ 0, e/(1 + e) otherwise. NaN stays NaN.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// `x[i] ← sigmoid(x[i])`, compiled for AVX2 when the CPU has it (8 lanes, not the baseline's 4); the
/// same operations either way, so the same bits.
fn sigmoid_slice(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above); the body is safe code.
        return unsafe { sigmoid_slice_avx2(x) };
    }
    x.iter_mut().for_each(|v| *v = sigmoid(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sigmoid_slice_avx2(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// Clamp that propagates NaN; if `min > max` every value maps to `max` (ONNX / NumPy behaviour).
#[inline(always)]
fn clip(x: f32, min: f32, max: f32) -> f32 {
    let t = if x < min { min } else { x };
    if t > max {
        max
    } else {
        t
    }
}

/// y = f(x) elementwise (x and y same length).
///
/// Math: `Relu(x) = max(x, 0)`; `Sigmoid(x) = 1 / (1 + e^{-x})`, computed as `e^{x} / (1 + e^{x})` for
/// `x < 0` so it never overflows; `Clip(x) = min(max(x, min), max)`. NaN inputs give NaN outputs.
pub fn unary(op: UnaryOp, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len(), "unary: length mismatch");
    // Matching on the op outside the loop lets each loop body vectorise.
    match op {
        UnaryOp::Relu => y.iter_mut().zip(x).for_each(|(o, &v)| *o = relu(v)),
        UnaryOp::Sigmoid => {
            y.copy_from_slice(x);
            sigmoid_slice(y)
        }
        UnaryOp::Clip { min, max } => y.iter_mut().zip(x).for_each(|(o, &v)| *o = clip(v, min, max)),
    }
}

/// In place variant.
///
/// Math: `x[i] ← f(x[i])` with `f` as in [`unary`].
pub fn unary_inplace(op: UnaryOp, x: &mut [f32]) {
    match op {
        UnaryOp::Relu => x.iter_mut().for_each(|v| *v = relu(*v)),
        UnaryOp::Sigmoid => sigmoid_slice(x),
        UnaryOp::Clip { min, max } => x.iter_mut().for_each(|v| *v = clip(*v, min, max)),
    }
}

/// A binary arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (IEEE: division by zero gives ±inf or NaN).
    Div,
}

/// NumPy/ONNX multidirectional broadcasting: a_shape and b_shape are right-aligned against out_shape
/// (which the caller computed; ranks may differ, missing leading dims are 1). out = a op b.
/// Fast paths: identical shapes (plain zip), b a scalar, and b broadcast along trailing dims
/// (e.g. `[N,C,H,W]` op `[C,1,1]`); general case by strided index walk.
///
/// Math: `out[i_0..i_{r-1}] = a[j_0..] op b[k_0..]` where, after right-aligning each operand's shape
/// against `out_shape`, `j_d = i_d` if `a`'s dim `d` equals `out_shape[d]` and `0` if it is 1 (likewise
/// `k_d` for `b`). The fast paths also apply with `a` and `b` swapped.
pub fn binary(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
) {
    debug_assert_eq!(a.len(), a_shape.iter().product::<usize>(), "binary: a length");
    debug_assert_eq!(b.len(), b_shape.iter().product::<usize>(), "binary: b length");
    debug_assert_eq!(out.len(), out_shape.iter().product::<usize>(), "binary: out length");
    debug_assert_eq!(
        broadcast_shape(a_shape, b_shape).as_deref(),
        Some(out_shape),
        "binary: out_shape is not the broadcast of a_shape and b_shape"
    );
    // One monomorphised copy per op, so the inner loops see a concrete `+`/`-`/`*`/`/`.
    match op {
        BinaryOp::Add => binary_with(a, a_shape, b, b_shape, out, out_shape, |x, y| x + y),
        BinaryOp::Sub => binary_with(a, a_shape, b, b_shape, out, out_shape, |x, y| x - y),
        BinaryOp::Mul => binary_with(a, a_shape, b, b_shape, out, out_shape, |x, y| x * y),
        BinaryOp::Div => binary_with(a, a_shape, b, b_shape, out, out_shape, |x, y| x / y),
    }
}

/// Dispatches to the fastest applicable loop for `out = f(a, b)`.
fn binary_with<F: Fn(f32, f32) -> f32 + Copy>(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
    f: F,
) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let a_full = a.len() == n;
    let b_full = b.len() == n;
    // Identical shapes (up to leading 1s).
    if a_full && b_full {
        out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&x, &y))| *o = f(x, y));
        return;
    }
    // One side a scalar.
    if a_full && b.len() == 1 {
        let y = b[0];
        out.iter_mut().zip(a).for_each(|(o, &x)| *o = f(x, y));
        return;
    }
    if b_full && a.len() == 1 {
        let x = a[0];
        out.iter_mut().zip(b).for_each(|(o, &y)| *o = f(x, y));
        return;
    }
    // One side broadcast along the dims around a contiguous block (e.g. a [C,1,1] bias).
    if a_full {
        if let Some(inner) = block_broadcast(b_shape, out_shape) {
            block_loop(a, b, out, inner, f);
            return;
        }
    }
    if b_full {
        if let Some(inner) = block_broadcast(a_shape, out_shape) {
            block_loop(b, a, out, inner, move |y, x| f(x, y));
            return;
        }
    }
    strided(a, a_shape, b, b_shape, out, out_shape, f);
}

/// If `small` (right-aligned against `out`) is all 1s except for one contiguous run of dims that equal
/// `out`'s, returns the product of `out`'s dims after that run (the `inner` size): then
/// `out` is `[outer, small.len(), inner]` and `small` indexes its middle axis.
fn block_broadcast(small: &[usize], out: &[usize]) -> Option<usize> {
    let lead = out.len().checked_sub(small.len())?;
    let dim = |d: usize| if d < lead { 1 } else { small[d - lead] };
    let first = (0..out.len()).find(|&d| dim(d) != 1)?;
    let last = (0..out.len()).rev().find(|&d| dim(d) != 1)?;
    if (first..=last).all(|d| dim(d) == out[d]) {
        Some(out[last + 1..].iter().product())
    } else {
        None
    }
}

/// `out[o, m, i] = f(big[o, m, i], small[m])` over the `[outer, small.len(), inner]` view of `out`.
fn block_loop<F: Fn(f32, f32) -> f32>(big: &[f32], small: &[f32], out: &mut [f32], inner: usize, f: F) {
    if inner == 1 {
        let m = small.len();
        for (oc, bc) in out.chunks_exact_mut(m).zip(big.chunks_exact(m)) {
            for ((o, &x), &y) in oc.iter_mut().zip(bc).zip(small) {
                *o = f(x, y);
            }
        }
        return;
    }
    let mut s = 0;
    for (oc, bc) in out.chunks_exact_mut(inner).zip(big.chunks_exact(inner)) {
        let y = small[s];
        oc.iter_mut().zip(bc).for_each(|(o, &x)| *o = f(x, y));
        s += 1;
        if s == small.len() {
            s = 0;
        }
    }
}

/// Element strides of `shape` (right-aligned against `out`), 0 along broadcast dims.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let lead = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut acc = 1;
    for d in (lead..out.len()).rev() {
        let s = shape[d - lead];
        strides[d] = if s == 1 { 0 } else { acc };
        acc *= s;
    }
    strides
}

/// General broadcasting: walks `out` row by row (innermost dim), carrying the offsets into `a` and `b`.
fn strided<F: Fn(f32, f32) -> f32>(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
    f: F,
) {
    let rank = out_shape.len();
    if rank == 0 {
        out[0] = f(a[0], b[0]);
        return;
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let inner = out_shape[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    let (mut oa, mut ob) = (0usize, 0usize);
    for row in out.chunks_exact_mut(inner) {
        for (j, o) in row.iter_mut().enumerate() {
            *o = f(a[oa + j * ia], b[ob + j * ib]);
        }
        // Odometer increment over the outer dims.
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
            oa -= sa[d] * out_shape[d];
            ob -= sb[d] * out_shape[d];
        }
    }
}

/// Returns the broadcast shape of two shapes, or None if incompatible.
///
/// Math: right-align `a` and `b` (missing leading dims are 1); per dim the result is the common size if
/// they are equal, the other size if one of them is 1, and incompatible otherwise. So `0` broadcasts
/// with `1` (giving `0`) but not with `n > 1`.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], d: usize| {
        let lead = rank - s.len();
        if d < lead {
            1
        } else {
            s[d - lead]
        }
    };
    (0..rank)
        .map(|d| match (at(a, d), at(b, d)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// `out[i] = Σ_k inputs[k][i]` (all same length).
///
/// Math: the n-ary ONNX `Sum` without broadcasting; with no inputs `out` is all zeros. Inputs are
/// accumulated left to right.
pub fn sum(inputs: &[&[f32]], out: &mut [f32]) {
    debug_assert!(inputs.iter().all(|x| x.len() == out.len()), "sum: length mismatch");
    match inputs {
        [] => out.fill(0.0),
        [x] => out.copy_from_slice(x),
        [x, y, rest @ ..] => {
            out.iter_mut().zip(x.iter().zip(y.iter())).for_each(|(o, (&p, &q))| *o = p + q);
            for z in rest {
                out.iter_mut().zip(z.iter()).for_each(|(o, &v)| *o += v);
            }
        }
    }
}

/// Per-channel affine over NCHW planes: `y[n,c,:] = x[n,c,:] * scale[c] + shift[c]`. (Inference BatchNorm with precomputed scale/shift.) x: [n, c, hw].
///
/// Math: with BatchNorm parameters `γ, β, μ, σ², ε`, the caller passes `scale = γ / sqrt(σ² + ε)` and
/// `shift = β - μ · scale`.
pub fn channel_affine(x: &[f32], n: usize, c: usize, hw: usize, scale: &[f32], shift: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), n * c * hw, "channel_affine: input length");
    debug_assert_eq!(y.len(), n * c * hw, "channel_affine: output length");
    debug_assert_eq!(scale.len(), c, "channel_affine: scale length");
    debug_assert_eq!(shift.len(), c, "channel_affine: shift length");
    if hw == 0 || c == 0 {
        return;
    }
    let planes = x.chunks_exact(hw).zip(y.chunks_exact_mut(hw));
    for ((xp, yp), (&s, &t)) in planes.zip(scale.iter().zip(shift).cycle()) {
        yp.iter_mut().zip(xp).for_each(|(o, &v)| *o = v * s + t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 8.0 - 4.0
            })
            .collect()
    }

    fn same(x: f32, y: f32) -> bool {
        x == y || (x.is_nan() && y.is_nan())
    }

    #[test]
    fn unary_matches_naive() {
        let mut x = data(37, 1);
        x.extend([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 100.0, -100.0, 1e30, -1e30]);
        let ops = [
            UnaryOp::Relu,
            UnaryOp::Sigmoid,
            UnaryOp::Clip { min: -1.0, max: 2.5 },
            UnaryOp::Clip { min: 0.0, max: 6.0 },
            UnaryOp::Clip { min: f32::NEG_INFINITY, max: 1.0 },
        ];
        for op in ops {
            let naive = |v: f32| -> f32 {
                if v.is_nan() {
                    return v;
                }
                match op {
                    UnaryOp::Relu => {
                        if v > 0.0 {
                            v
                        } else {
                            0.0
                        }
                    }
                    UnaryOp::Sigmoid => (1.0 / (1.0 + (-(v as f64)).exp())) as f32,
                    UnaryOp::Clip { min, max } => v.clamp(min, max),
                }
            };
            let mut y = vec![0.0; x.len()];
            unary(op, &x, &mut y);
            let mut z = x.clone();
            unary_inplace(op, &mut z);
            for ((&v, &g), &h) in x.iter().zip(&y).zip(&z) {
                let w = naive(v);
                assert!(same(g, h), "{op:?}: inplace {h} vs {g}");
                if op == UnaryOp::Sigmoid && !w.is_nan() {
                    assert!((g - w).abs() <= 1e-6, "{op:?}({v}) = {g}, want {w}");
                } else {
                    assert!(same(g, w), "{op:?}({v}) = {g}, want {w}");
                }
            }
        }
        let mut e: [f32; 0] = [];
        unary(UnaryOp::Relu, &[], &mut e);
    }

    #[test]
    fn sigmoid_is_within_a_few_ulps_of_the_float64_logistic() {
        // 200 001 points over [−90, 30]: the polynomial exp's range reduction, the cut-off below −87 and
        // both branches of the stable form.
        let x: Vec<f32> = (0..=200_000).map(|i| -90.0 + i as f32 * 6e-4).collect();
        let mut y = vec![0.0; x.len()];
        unary(UnaryOp::Sigmoid, &x, &mut y);
        let mut worst = 0.0f64;
        for (&v, &g) in x.iter().zip(&y) {
            let w = 1.0 / (1.0 + (-(v as f64)).exp());
            let err = (g as f64 - w).abs();
            // Relative to the value, except where e^x is below float's normal range (x < −87).
            assert!(err <= 4e-7 * w || (v < -87.0 && err <= 2e-38), "sigmoid({v}) = {g}, want {w}");
            if v >= -87.0 {
                worst = worst.max(err / w);
            }
        }
        println!("sigmoid: worst relative error {worst:.2e}");
    }

    /// The AVX2 build of the sigmoid loop and the baseline one give the same bits (no FMA contraction,
    /// the same operations in the same order), so results do not depend on the CPU.
    #[test]
    fn sigmoid_is_the_same_bits_with_and_without_avx2() {
        let mut x: Vec<f32> = (0..10_007).map(|i| (i as f32 - 5000.0) * 0.0191).collect();
        x.extend([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -87.0, -87.5, 88.0, 1e-30, -1e-30]);
        let baseline: Vec<f32> = x.iter().map(|&v| sigmoid(v)).collect();
        let mut fast = x.clone();
        sigmoid_slice(&mut fast);
        for ((v, b), f) in x.iter().zip(&baseline).zip(&fast) {
            assert!(b.to_bits() == f.to_bits() || (b.is_nan() && f.is_nan()), "sigmoid({v}): {b} vs {f}");
        }
    }

    #[test]
    fn unary_nan_and_extremes() {
        let x = [f32::NAN, -1e30, 1e30, f32::NEG_INFINITY, f32::INFINITY];
        let mut y = [0.0; 5];
        unary(UnaryOp::Sigmoid, &x, &mut y);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 1.0, 0.0, 1.0]);
        unary(UnaryOp::Relu, &x, &mut y);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 1e30, 0.0, f32::INFINITY]);
        unary(UnaryOp::Clip { min: -1.0, max: 1.0 }, &x, &mut y);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[-1.0, 1.0, -1.0, 1.0]);
        // min > max: everything becomes max.
        let mut z = [-5.0, 0.5, 5.0];
        unary_inplace(UnaryOp::Clip { min: 1.0, max: 0.0 }, &mut z);
        assert_eq!(z, [0.0, 0.0, 0.0]);
    }

    /// Naive broadcasting reference: decompose each output index and map it into a and b.
    fn naive_binary(
        op: BinaryOp,
        a: &[f32],
        a_shape: &[usize],
        b: &[f32],
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> Vec<f32> {
        let n: usize = out_shape.iter().product();
        let rank = out_shape.len();
        let map = |mut i: usize, s: &[usize]| -> usize {
            let mut idx = vec![0; rank];
            for d in (0..rank).rev() {
                idx[d] = i % out_shape[d];
                i /= out_shape[d];
            }
            let lead = rank - s.len();
            let mut off = 0;
            for d in 0..s.len() {
                let j = if s[d] == 1 { 0 } else { idx[d + lead] };
                off = off * s[d] + j;
            }
            off
        };
        (0..n)
            .map(|i| {
                let (x, y) = (a[map(i, a_shape)], b[map(i, b_shape)]);
                match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Sub => x - y,
                    BinaryOp::Mul => x * y,
                    BinaryOp::Div => x / y,
                }
            })
            .collect()
    }

    #[test]
    fn binary_matches_naive() {
        let cases: &[(&[usize], &[usize])] = &[
            // identical
            (&[2, 3, 4, 5], &[2, 3, 4, 5]),
            (&[1, 3, 4], &[3, 4]),
            // scalar on either side
            (&[2, 3, 4], &[]),
            (&[2, 3, 4], &[1]),
            (&[], &[2, 3, 4]),
            (&[1, 1], &[5, 7]),
            // block broadcasts on either side
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[3, 1, 1], &[2, 3, 4, 5]),
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[2, 3, 4, 5], &[5]),
            (&[2, 3, 4, 5], &[4, 5]),
            (&[2, 3, 4, 5], &[2, 1, 1, 1]),
            (&[2, 3, 4, 5], &[3, 4, 1]),
            // general
            (&[2, 1, 4], &[3, 1]),
            (&[1, 3, 1], &[2, 1, 5]),
            (&[2, 3, 4, 5], &[2, 1, 4, 1]),
            (&[4, 1], &[1, 6]),
            (&[2, 3, 4, 5], &[3, 1, 5]),
            // zero-sized
            (&[2, 0, 3], &[1, 3]),
            (&[0], &[1]),
            // rank 0
            (&[], &[]),
        ];
        let ops = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];
        for (k, &(sa, sb)) in cases.iter().enumerate() {
            let out_shape = broadcast_shape(sa, sb).expect("compatible");
            let a = data(sa.iter().product(), 2 * k as u32);
            let b = data(sb.iter().product(), 2 * k as u32 + 1);
            for op in ops {
                let want = naive_binary(op, &a, sa, &b, sb, &out_shape);
                let mut got = vec![f32::NAN; want.len()];
                binary(op, &a, sa, &b, sb, &mut got, &out_shape);
                for (g, w) in got.iter().zip(&want) {
                    assert!(same(*g, *w), "{op:?} {sa:?} {sb:?}: {got:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn binary_general_case_with_non_commutative_ops() {
        // [2,1] - [1,3] and its swap exercise the strided walk.
        let a = [10.0, 20.0];
        let b = [1.0, 2.0, 4.0];
        let mut y = [0.0; 6];
        binary(BinaryOp::Sub, &a, &[2, 1], &b, &[1, 3], &mut y, &[2, 3]);
        assert_eq!(y, [9.0, 8.0, 6.0, 19.0, 18.0, 16.0]);
        binary(BinaryOp::Div, &b, &[1, 3], &a, &[2, 1], &mut y, &[2, 3]);
        assert_eq!(y, [0.1, 0.2, 0.4, 0.05, 0.1, 0.2]);
    }

    #[test]
    fn broadcast_shape_rules() {
        assert_eq!(broadcast_shape(&[2, 3, 4], &[4]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shape(&[3, 1], &[1, 5]), Some(vec![3, 5]));
        assert_eq!(broadcast_shape(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shape(&[], &[]), Some(vec![]));
        assert_eq!(broadcast_shape(&[1, 0], &[3, 1]), Some(vec![3, 0]));
        assert_eq!(broadcast_shape(&[2, 3], &[3, 2]), None);
        assert_eq!(broadcast_shape(&[0], &[2]), None);
        assert_eq!(broadcast_shape(&[8, 1, 6, 1], &[7, 1, 5]), Some(vec![8, 7, 6, 5]));
    }

    #[test]
    fn sum_matches_naive() {
        for k in 0..5 {
            let xs: Vec<Vec<f32>> = (0..k).map(|i| data(13, i as u32)).collect();
            let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
            let mut got = vec![f32::NAN; 13];
            sum(&refs, &mut got);
            for (i, g) in got.iter().enumerate() {
                let w: f32 = xs.iter().map(|x| x[i]).fold(0.0, |s, v| s + v);
                assert_eq!(*g, w, "k={k} i={i}");
            }
        }
        let mut e: [f32; 0] = [];
        sum(&[&[], &[]], &mut e);
    }

    #[test]
    fn channel_affine_matches_naive() {
        for &(n, c, hw) in &[(1, 1, 1), (2, 3, 5), (1, 64, 49), (3, 2, 1), (0, 3, 4), (2, 3, 0)] {
            let x = data(n * c * hw, 9);
            let scale = data(c, 10);
            let shift = data(c, 11);
            let mut y = vec![f32::NAN; x.len()];
            channel_affine(&x, n, c, hw, &scale, &shift, &mut y);
            for i in 0..n {
                for j in 0..c {
                    for k in 0..hw {
                        let p = (i * c + j) * hw + k;
                        assert_eq!(y[p], x[p] * scale[j] + shift[j], "({n},{c},{hw}) at {p}");
                    }
                }
            }
        }
    }
}
