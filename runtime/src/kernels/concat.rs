//! Concatenation kernel: joins tensors along one axis.
//!
//! Every tensor is viewed as `[outer, axis_len, inner]`, where `outer` is the product of the dimensions
//! before the concatenation axis and `inner` the product of those after it. Concatenation is then a
//! sequence of contiguous block copies.

/// Concatenate along an axis of an [outer, axis_len_k, inner] view: inputs are (data, axis_len_k) pairs; y is [outer, Σ axis_len_k, inner].
///
/// Math: with `T = Σ_k axis_len_k` and `off_k = Σ_{j<k} axis_len_j`,
/// `y[o, off_k + a, i] = inputs[k][o, a, i]` for every `o < outer`, `a < axis_len_k`, `i < inner`.
/// Each input must hold exactly `outer * axis_len_k * inner` elements and `y` exactly `outer * T * inner`.
pub fn concat(inputs: &[(&[f32], usize)], outer: usize, inner: usize, y: &mut [f32]) {
    let total: usize = inputs.iter().map(|&(_, len)| len).sum();
    debug_assert_eq!(y.len(), outer * total * inner, "concat: output length");
    debug_assert!(inputs.iter().all(|&(data, len)| data.len() == outer * len * inner), "concat: input length");
    let out_row = total * inner;
    if out_row == 0 {
        return;
    }
    for (o, y_row) in y.chunks_exact_mut(out_row).take(outer).enumerate() {
        let mut off = 0;
        for &(data, len) in inputs {
            let block = len * inner;
            y_row[off..off + block].copy_from_slice(&data[o * block..(o + 1) * block]);
            off += block;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, base: f32) -> Vec<f32> {
        (0..n).map(|i| base + i as f32).collect()
    }

    /// Naive reference: index arithmetic per output element.
    fn naive(inputs: &[(&[f32], usize)], outer: usize, inner: usize) -> Vec<f32> {
        let total: usize = inputs.iter().map(|&(_, l)| l).sum();
        let mut y = vec![f32::NAN; outer * total * inner];
        for o in 0..outer {
            let mut off = 0;
            for &(data, len) in inputs {
                for a in 0..len {
                    for i in 0..inner {
                        y[(o * total + off + a) * inner + i] = data[(o * len + a) * inner + i];
                    }
                }
                off += len;
            }
        }
        y
    }

    fn check(lens: &[usize], outer: usize, inner: usize) {
        let datas: Vec<Vec<f32>> =
            lens.iter().enumerate().map(|(k, &l)| seq(outer * l * inner, 1000.0 * k as f32)).collect();
        let inputs: Vec<(&[f32], usize)> = datas.iter().zip(lens).map(|(d, &l)| (d.as_slice(), l)).collect();
        let want = naive(&inputs, outer, inner);
        let mut got = vec![f32::NAN; want.len()];
        concat(&inputs, outer, inner, &mut got);
        assert_eq!(got, want, "lens={lens:?} outer={outer} inner={inner}");
    }

    #[test]
    fn concat_matches_naive() {
        check(&[2, 3], 1, 4);
        check(&[2, 3, 1], 2, 5);
        check(&[64, 32], 1, 49);
        check(&[1, 1, 1, 1], 3, 1);
        check(&[5], 2, 3);
    }

    #[test]
    fn concat_edge_cases() {
        // Zero-length input along the axis.
        check(&[2, 0, 3], 2, 3);
        // Empty outer / inner.
        check(&[2, 3], 0, 4);
        check(&[2, 3], 2, 0);
        // No inputs at all.
        check(&[], 2, 3);
    }

    #[test]
    fn concat_last_axis() {
        // [2,2] ++ [2,1] along axis 1.
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0];
        let mut y = [0.0; 6];
        concat(&[(&a, 2), (&b, 1)], 2, 1, &mut y);
        assert_eq!(y, [1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
    }
}
