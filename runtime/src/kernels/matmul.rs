//! Batched matrix product with NumPy broadcasting over the leading axes (ONNX MatMul):
//! Y[..., i, j] = Σ_p A[..., i, p] · B[..., p, j].

use super::elementwise::broadcast_shape;
use super::gemm::{sgemm, MatRef};

/// `a_shape` is `[..., M, K]` (rank ≥ 2), `b_shape` is `[..., K, N]` or `[K]`; `y` has the broadcast
/// leading axes followed by `[M, N]` (or `[M]` for a vector `b`).
pub fn matmul(a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], y: &mut [f32], threads: usize) {
    let (ra, rb) = (a_shape.len(), b_shape.len());
    let (m, k) = (a_shape[ra - 2], a_shape[ra - 1]);
    let (b_batch, n): (&[usize], usize) = if rb == 1 { (&[], 1) } else { (&b_shape[..rb - 2], b_shape[rb - 1]) };
    let a_batch = &a_shape[..ra - 2];
    let batch = broadcast_shape(a_batch, b_batch).expect("matmul: batch axes do not broadcast");
    let count: usize = batch.iter().product();
    // Common case: B has no batch axes, so every A matrix stacks into one tall product.
    if b_batch.iter().product::<usize>() == 1 {
        let rows = a.len() / k.max(1);
        sgemm(rows, n, k, 1.0, MatRef::new(a, k), MatRef::new(b, n), 0.0, y, n, threads);
        return;
    }
    let offset = |idx: usize, shape: &[usize]| -> usize {
        // index of the (broadcast) batch element `idx` into an operand with batch `shape`
        let r = batch.len();
        let mut rem = idx;
        let mut off = 0;
        let mut stride = 1;
        for ax in (0..r).rev() {
            let d = batch[ax];
            let i = rem % d;
            rem /= d;
            let sd = if ax + shape.len() >= r { shape[ax + shape.len() - r] } else { 1 };
            if sd != 1 {
                off += i * stride;
            }
            stride *= sd;
        }
        off
    };
    for t in 0..count {
        let ao = offset(t, a_batch) * m * k;
        let bo = offset(t, b_batch) * k * n;
        sgemm(
            m,
            n,
            k,
            1.0,
            MatRef::new(&a[ao..ao + m * k], k),
            MatRef::new(&b[bo..bo + k * n], n),
            0.0,
            &mut y[t * m * n..(t + 1) * m * n],
            n,
            threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_batches() {
        // a: [2,1,2,3], b: [3,3,2] -> [2,3,2,2]
        let a: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..18).map(|i| (i as f32) * 0.5 - 3.0).collect();
        let mut y = vec![0.0; 24];
        matmul(&a, &[2, 1, 2, 3], &b, &[3, 3, 2], &mut y, 1);
        for i0 in 0..2 {
            for i1 in 0..3 {
                for r in 0..2 {
                    for c in 0..2 {
                        let mut s = 0.0;
                        for p in 0..3 {
                            s += a[i0 * 6 + r * 3 + p] * b[i1 * 6 + p * 2 + c];
                        }
                        assert_eq!(y[((i0 * 3 + i1) * 2 + r) * 2 + c], s);
                    }
                }
            }
        }
    }
}
