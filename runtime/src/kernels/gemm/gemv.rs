//! Products with a handful of columns or of rows, where the tile kernels would compute a whole
//! `isa.nr()`-wide or [`MR`]-tall tile for a few useful lines: one pass over the big operand instead.
//!
//! - Few columns ([`run`], n ≤ [`MAX_N`]; an MLP layer at batch 1 with weights as A): for each panel of
//!   [`MR`] rows, acc[j][r] = Σ_p A[p][r] · B[p][j], an `MR`-wide vector multiply-add per (p, j).
//! - Few rows ([`run_rows`], m ≤ [`MAX_N`]; a classifier at batch 1, weights as B): for a chunk of
//!   columns, acc[i][j] = Σ_p A[i][p] · B[p][j], a multiply-add along a row of B per (p, i).
//!
//! Then the tile kernels' epilogue (accumulate into C, bias per row, activation). Each element sums its
//! k terms in order (threads split panels or columns), or, for a classifier's long k
//! ([`run_rows_segmented`]), two partial sums over fixed halves of k added in order (threads split the
//! halves): either way results do not depend on the thread count.
//!
//! Owns no unsafe SIMD: one generic body, compiled twice — with AVX2+FMA enabled (selected at run time)
//! and portable.

use super::{Epilogue, Isa, MR};
use crate::kernels::elementwise::unary_inplace;

/// The most columns (or rows, for [`run_rows`]) these paths take.
pub const MAX_N: usize = 4;

/// Columns of C one pass of [`run_rows`] accumulates (in L1: `MAX_N` rows of them, 16 KiB). A
/// classifier's 1000 classes make one pass, so B streams by whole rows: in 512-column passes every pass
/// read half of each 4 KB row, and ResNet-50's 2048 × 1000 classifier took 1.41 ms on 1 thread, against
/// 0.84 ms in one pass (same bits: each element still sums its k terms in order). That classifier now
/// takes [`run_rows_segmented`] (k ≥ 1024), whose two halves each stream whole rows the same way.
pub const COLS: usize = 1024;

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
            store_row(row, acc.iter().map(|accj| accj[r]), m0 + r, epi);
        }
    }
}

/// The tile kernels' epilogue on row `i` of C, one value per column: o = v + bias[i] (added to o when
/// the epilogue accumulates), then the activation over the row. One place for the three paths here.
#[inline(always)]
fn store_row(row: &mut [f32], values: impl Iterator<Item = f32>, i: usize, epi: &Epilogue) {
    let bias = epi.bias.map_or(0.0, |bias| bias[i]);
    for (o, v) in row.iter_mut().zip(values) {
        let v = v + bias;
        *o = if epi.accumulate { *o + v } else { v };
    }
    if let Some(act) = epi.act {
        unary_inplace(act, row);
    }
}

/// Into how many consecutive segments of k [`run_rows_segmented`] splits an m ≤ [`MAX_N`]-row product
/// with `n` columns and depth `k`: 2 for a classifier's weights (k ≥ 1024, at least 2¹⁷ multiply-adds a
/// row, and the partial sums of every row fit the one-thread GEMM scratch, whose `nr` is at least 16 on
/// every ISA), otherwise 1. It depends on the shape alone, never on the thread count, so the sums (and
/// the bits) are the same on any number of threads.
pub(super) fn k_segments(n: usize, k: usize) -> usize {
    if k >= 1024 && n * k >= 1 << 17 && 2 * MAX_N * n <= super::KC * super::NB * 16 {
        2
    } else {
        1
    }
}

/// C = epilogue(A · B) for m ≤ [`MAX_N`] rows as `segs` partial products over consecutive segments of
/// k, each streaming whole rows of B: P_s = A[:, k_s] · B[k_s, :] into `partial` (`segs·m·n` floats),
/// then C = epilogue(P_0 + P_1 + …) in that order. The threads take segments (and, past one thread a
/// segment, column ranges of them). Splitting the columns instead made every thread read part of each
/// row: ResNet-50's 2048 × 1000 classifier on 2 threads read two half rows of every 4 KB row.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_rows_segmented(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
    threads: usize,
    segs: usize,
    partial: &mut [f32],
) {
    assert!(partial.len() >= segs * m * n && (1..=MAX_N).contains(&m));
    let cparts = threads.div_ceil(segs).min(n.div_ceil(64)).max(1);
    let plain = Epilogue { accumulate: false, bias: None, act: None };
    let shared = crate::parallel::SendPtr(partial.as_mut_ptr());
    let unit = |u: usize| {
        let (sg, cp) = (u / cparts, u % cparts);
        let (k0, k1) = (sg * k / segs, (sg + 1) * k / segs);
        let at = |q: usize| (q * n.div_ceil(16) / cparts * 16).min(n);
        // A packed is one panel: column p of row i at p·MR + i, so segment k0.. starts at k0·MR.
        // SAFETY: unit (sg, cp) alone writes columns at(cp)..at(cp + 1) of the m rows of P_sg, inside
        // `partial` (asserted); A and B are read from row k0 on, within the caller's bounds.
        unsafe {
            let p = shared.get().add(sg * m * n);
            run_rows(isa, m, k1 - k0, &a[k0 * MR..], &b[k0 * ldb..], ldb, p, n, &plain, at(cp)..at(cp + 1))
        };
    };
    // One thread asked for: the units in turn, on this thread, whatever pool is installed.
    if threads <= 1 {
        (0..segs * cparts).for_each(unit);
    } else {
        crate::parallel::run(segs * cparts, &unit);
    }
    for i in 0..m {
        // P_0 + P_1 + … for each column, in segment order.
        let sum = |j: usize| (1..segs).fold(partial[i * n + j], |v, sg| v + partial[(sg * m + i) * n + j]);
        store_row(&mut c[i * ldc..i * ldc + n], (0..n).map(sum), i, epi);
    }
}

/// Columns `cols` of C = epilogue(A · B) for m ≤ [`MAX_N`] rows, A packed (one panel), B row-major
/// `k × n` at stride `ldb`, C at stride `ldc`.
///
/// # Safety
/// As [`run`], with `cols` ⊆ 0..n the columns no other thread writes.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run_rows(
    isa: Isa,
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    cols: std::ops::Range<usize>,
) {
    debug_assert!((1..=MAX_N).contains(&m));
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512) {
        // SAFETY: as in `run`.
        unsafe { run_rows_fma(m, k, a, b, ldb, c, ldc, epi, cols) };
        return;
    }
    let _ = isa;
    unsafe { rows_body(m, k, a, b, ldb, c, ldc, epi, cols, |x, y, z| x * y + z) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn run_rows_fma(
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    cols: std::ops::Range<usize>,
) {
    unsafe { rows_body(m, k, a, b, ldb, c, ldc, epi, cols, f32::mul_add) };
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_body(
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    cols: std::ops::Range<usize>,
    fma: impl Fn(f32, f32, f32) -> f32,
) {
    let mut j0 = cols.start;
    while j0 < cols.end {
        let nc = COLS.min(cols.end - j0);
        let mut acc = [[0f32; COLS]; MAX_N];
        for p in 0..k {
            let brow = &b[p * ldb + j0..p * ldb + j0 + nc];
            for (i, acci) in acc.iter_mut().enumerate().take(m) {
                // A packed: row i, column p of the first panel.
                let av = a[p * MR + i];
                for (o, &bv) in acci[..nc].iter_mut().zip(brow) {
                    *o = fma(av, bv, *o);
                }
            }
        }
        for (i, acci) in acc.iter().enumerate().take(m) {
            // SAFETY: row i < m, columns j0..j0 + nc of C, ours alone (the caller's contract).
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc + j0), nc) };
            store_row(row, acci[..nc].iter().copied(), i, epi);
        }
        j0 += nc;
    }
}
