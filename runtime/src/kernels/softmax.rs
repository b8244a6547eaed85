//! Softmax kernel: normalised exponentials along one axis.
//!
//! The tensor is viewed as `[outer, axis_len, inner]` (the axis in the middle), so any ONNX `axis`
//! maps onto this kernel. The usual classifier head (`[N, classes]`, axis 1) is `inner == 1`,
//! which takes a contiguous fast path.

/// Softmax over the middle axis of an [outer, axis_len, inner] view: y = exp(x - max) / Σ exp(x - max). NaN-safe: a row containing NaN gives NaN, a row of -inf and finite values is fine.
///
/// Math, for every `o < outer`, `i < inner` (a "row" is the `axis_len` values `x[o, :, i]`):
/// `m = max_a x[o, a, i]`, `y[o, a, i] = exp(x[o, a, i] - m) / Σ_b exp(x[o, b, i] - m)`.
/// Subtracting the row maximum keeps every exponent `≤ 0`, so nothing overflows.
///
/// Non-finite inputs: a NaN anywhere in a row makes the whole row NaN; `-inf` entries get probability 0
/// as long as the row has a finite entry; a row that is entirely `-inf`, or that contains `+inf`, yields
/// NaN (the same as ONNX Runtime / PyTorch).
pub fn softmax(x: &[f32], outer: usize, axis_len: usize, inner: usize, y: &mut [f32]) {
    let n = outer * axis_len * inner;
    debug_assert_eq!(x.len(), n, "softmax: input length");
    debug_assert_eq!(y.len(), n, "softmax: output length");
    if n == 0 {
        return;
    }
    if inner == 1 {
        for (xr, yr) in x.chunks_exact(axis_len).zip(y.chunks_exact_mut(axis_len)) {
            softmax_row(xr, yr);
        }
        return;
    }
    let block = axis_len * inner;
    for (xb, yb) in x.chunks_exact(block).zip(y.chunks_exact_mut(block)) {
        for i in 0..inner {
            // NaN is skipped by `f32::max`; it still reaches the sum below and poisons the row.
            let m = (0..axis_len).map(|a| xb[a * inner + i]).fold(f32::NEG_INFINITY, f32::max);
            let mut s = 0.0f32;
            for a in 0..axis_len {
                let e = (xb[a * inner + i] - m).exp();
                yb[a * inner + i] = e;
                s += e;
            }
            let r = 1.0 / s;
            for a in 0..axis_len {
                yb[a * inner + i] *= r;
            }
        }
    }
}

/// Softmax of one contiguous row.
fn softmax_row(x: &[f32], y: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for (yv, &xv) in y.iter_mut().zip(x) {
        let e = (xv - m).exp();
        *yv = e;
        s += e;
    }
    let r = 1.0 / s;
    for yv in y.iter_mut() {
        *yv *= r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference in f64, straight from the definition.
    fn naive(x: &[f32], outer: usize, axis_len: usize, inner: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let idx = |a: usize| (o * axis_len + a) * inner + i;
                let m = (0..axis_len).map(|a| x[idx(a)] as f64).fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..axis_len).map(|a| (x[idx(a)] as f64 - m).exp()).sum();
                for a in 0..axis_len {
                    y[idx(a)] = ((x[idx(a)] as f64 - m).exp() / s) as f32;
                }
            }
        }
        y
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 20.0 - 10.0
            })
            .collect()
    }

    fn check(outer: usize, axis_len: usize, inner: usize) {
        let x = data(outer * axis_len * inner, (outer * 31 + axis_len * 7 + inner) as u32);
        let want = naive(&x, outer, axis_len, inner);
        let mut got = vec![f32::NAN; x.len()];
        softmax(&x, outer, axis_len, inner, &mut got);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                "shape=({outer},{axis_len},{inner}) k={k} got={g} want={w}"
            );
        }
    }

    #[test]
    fn softmax_matches_naive() {
        check(1, 1000, 1);
        check(4, 10, 1);
        check(2, 5, 3);
        check(3, 4, 7);
        check(1, 1, 1);
        check(2, 1, 4);
    }

    #[test]
    fn softmax_empty() {
        let mut y: [f32; 0] = [];
        softmax(&[], 0, 5, 1, &mut y);
        softmax(&[], 3, 0, 2, &mut y);
        softmax(&[], 3, 2, 0, &mut y);
    }

    #[test]
    fn softmax_large_values_no_overflow() {
        let x = [1000.0, 1000.0, -1000.0, 999.0];
        let mut y = [0.0; 4];
        softmax(&x, 1, 4, 1, &mut y);
        assert!(y.iter().all(|v| v.is_finite()));
        assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((y[0] - y[1]).abs() < 1e-7);
        assert_eq!(y[2], 0.0);
    }

    #[test]
    fn softmax_non_finite() {
        // NaN poisons its row only.
        let x = [1.0, f32::NAN, 2.0, 1.0, 2.0, 3.0];
        let mut y = [0.0; 6];
        softmax(&x, 2, 3, 1, &mut y);
        assert!(y[..3].iter().all(|v| v.is_nan()));
        assert!(y[3..].iter().all(|v| v.is_finite()));
        // Strided path: NaN in column 0 only.
        let x = [f32::NAN, 1.0, 0.0, 2.0];
        let mut y = [0.0; 4];
        softmax(&x, 1, 2, 2, &mut y);
        assert!(y[0].is_nan() && y[2].is_nan());
        assert!(y[1].is_finite() && y[3].is_finite());
        // -inf mixed with finite values is fine.
        let x = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        let mut y = [0.0; 4];
        softmax(&x, 1, 4, 1, &mut y);
        assert_eq!(y, [0.0, 0.5, 0.0, 0.5]);
        let x = [f32::NEG_INFINITY, 0.0, 3.0, f32::NEG_INFINITY];
        let mut y = [0.0; 4];
        softmax(&x, 1, 2, 2, &mut y);
        assert_eq!(y, [0.0, 1.0, 1.0, 0.0]);
    }
}
