//! Matrix products through the `gemm` crate (chosen by measurement: 85-107 GFLOP/s per core on ResNet-50's
//! im2col shapes here, and it stays fast on the classifier's matrix-vector shapes).
//!
//! Every matrix is row-major with an explicit leading dimension; a transposed operand is read through
//! swapped strides, never copied.

use gemm::Parallelism;

/// A row-major matrix operand: element (i, j) is at `i·ld + j`, or at `j·ld + i` when `trans`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub trans: bool,
}

impl<'a> MatRef<'a> {
    pub fn new(data: &'a [f32], ld: usize) -> Self {
        MatRef { data, ld, trans: false }
    }
    fn strides(&self) -> (isize, isize) {
        // (column stride, row stride)
        if self.trans {
            (self.ld as isize, 1)
        } else {
            (1, self.ld as isize)
        }
    }
    /// The flat index of element (rows-1, cols-1): bounds check of the whole view.
    fn last(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        let (cs, rs) = self.strides();
        (rows - 1) * rs as usize + (cols - 1) * cs as usize
    }
}

/// C[m×n] (row stride `ldc`) = alpha · A[m×k] · B[k×n] + beta · C.
///
/// With `beta == 0` the old contents of C are ignored (NaNs in them do not leak). Threads split the
/// product when `threads > 1` and the product is large enough to pay for it.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.last(m, k) < a.data.len().max(1) || k == 0, "sgemm: A is too small");
    assert!(b.last(k, n) < b.data.len().max(1) || k == 0, "sgemm: B is too small");
    assert!((m - 1) * ldc + n <= c.len(), "sgemm: C is too small");
    if k == 0 {
        for i in 0..m {
            for v in &mut c[i * ldc..i * ldc + n] {
                *v = if beta == 0.0 { 0.0 } else { beta * *v };
            }
        }
        return;
    }
    let work = m * n * k;
    let par = if threads > 1 && work >= 64 * 64 * 64 { Parallelism::Rayon(threads) } else { Parallelism::None };
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    // SAFETY: the asserts above check that every element the views address lies inside its slice, and
    // `c` is borrowed mutably so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let x = if ta { a[p * m + i] } else { a[i * k + p] };
                    let y = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += x as f64 * y as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn matches_naive_with_transposes_and_beta() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 65), (64, 100, 3), (1, 1000, 512)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let want = naive(m, n, k, &a, ta, &b, tb);
                let am = MatRef { data: &a, ld: if ta { m } else { k }, trans: ta };
                let bm = MatRef { data: &b, ld: if tb { k } else { n }, trans: tb };
                let mut c = vec![f32::NAN; m * n];
                sgemm(m, n, k, 1.0, am, bm, 0.0, &mut c, n, 2);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{m}x{n}x{k} {ta} {tb}: {x} vs {y}");
                }
                let mut c2 = vec![1.0; m * n];
                sgemm(m, n, k, 0.5, am, bm, 2.0, &mut c2, n, 1);
                for (x, y) in c2.iter().zip(&want) {
                    assert!((x - (0.5 * y + 2.0)).abs() <= 1e-4 + 1e-4 * y.abs());
                }
            }
        }
    }
}
