//! Products with a handful of columns (a classifier or an MLP layer at batch 1): C[m×n] = A · B for
//! n ≤ [`MAX_N`], read straight from the packed A panels.
//!
//! Math: for each panel of [`MR`] rows, acc[j][r] = Σ_p A[p][r] · B[p][j], an `MR`-wide vector
//! multiply-add per (p, j); then the same epilogue as the tile kernels (accumulate into C, bias per row,
//! activation). The tile kernels would compute `isa.nr()` columns for these few; here the cost is one
//! pass over A, which is what bounds a matrix-vector product. Each element sums its k terms in order,
//! so results do not depend on the thread count (threads split the panels).
//!
//! Owns no unsafe SIMD: one generic body, compiled twice — with AVX2+FMA enabled (selected at run time)
//! and portable.

use super::{Epilogue, Isa, MR};
use crate::kernels::elementwise::unary_inplace;

/// The most columns this path takes.
pub const MAX_N: usize = 4;

/// Rows `panels` of C = epilogue(A · B), B row-major `k × n` at stride `ldb`, C at stride `ldc`.
///
/// # Safety
/// `c` must hold `(m - 1)·ldc + n` floats and no other thread may write the rows of these panels;
/// `a` must hold the panels (`k·MR` floats each), `b` `(k - 1)·ldb + n` floats.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    panels: std::ops::Range<usize>,
) {
    debug_assert!((1..=MAX_N).contains(&n));
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512) {
        // SAFETY: the ISA is available (checked by gemm_packed), so AVX2 and FMA are.
        unsafe { run_fma(m, n, k, a, b, ldb, c, ldc, epi, panels) };
        return;
    }
    let _ = isa;
    unsafe { body(m, n, k, a, b, ldb, c, ldc, epi, panels, |x, y, z| x * y + z) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn run_fma(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    panels: std::ops::Range<usize>,
) {
    unsafe { body(m, n, k, a, b, ldb, c, ldc, epi, panels, f32::mul_add) };
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn body(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    panels: std::ops::Range<usize>,
    fma: impl Fn(f32, f32, f32) -> f32,
) {
    for p in panels {
        let panel = &a[p * k * MR..(p + 1) * k * MR];
        let mut acc = [[0f32; MR]; MAX_N];
        for (q, ap) in panel.chunks_exact(MR).enumerate() {
            let ap: &[f32; MR] = ap.try_into().expect("MR floats");
            for (j, accj) in acc.iter_mut().enumerate().take(n) {
                let bv = b[q * ldb + j];
                for r in 0..MR {
                    accj[r] = fma(ap[r], bv, accj[r]);
                }
            }
        }
        let (m0, rows) = (p * MR, MR.min(m - p * MR));
        for r in 0..rows {
            // SAFETY: row m0 + r < m of C, n floats, ours alone (the caller's contract).
            let row = unsafe { std::slice::from_raw_parts_mut(c.add((m0 + r) * ldc), n) };
            let bias = epi.bias.map_or(0.0, |bias| bias[m0 + r]);
            for (j, o) in row.iter_mut().enumerate() {
                let v = acc[j][r] + bias;
                *o = if epi.accumulate { *o + v } else { v };
            }
            if let Some(act) = epi.act {
                unary_inplace(act, row);
            }
        }
    }
}
