//! The training steps' matrix products, on the runtime's packed GEMM ([`gemm_packed`]) with the packing
//! buffers kept from one step to the next.
//!
//! The runtime's general [`sgemm`](resin_runtime::kernels::gemm::sgemm) allocates its packed A and its
//! scratch on every call and reads a transposed operand one element at a time; training multiplies by
//! transposes all the time (a_catᵀ δ, δ W_catᵀ, Δ colsᵀ), so this module packs them itself:
//! - A transposed (`Aᵀ` stored k × m) packs [`MR`] contiguous floats per k — a straight copy;
//! - B transposed ([`TransB`]) packs each column of the block from one contiguous source row.
//!
//! This module owns those buffers and packers only; what is multiplied is the steps' business.

use resin_runtime::kernels::gemm::{gemm_packed, packed_len, scratch_len, BSource, Epilogue, Isa, MatRef, MR};

/// Packing buffers for one step's products (each step keeps its own, so nothing is shared between them).
#[derive(Clone, Debug, Default)]
pub struct Gemm {
    packed: Vec<f32>,
    scratch: Vec<f32>,
}

/// Packs `alpha · A` (m × k) into the GEMM's [`MR`]-row panels, as the runtime's `pack_a` does, with the
/// inner loops over contiguous memory for both layouts.
pub fn pack_a_fast(m: usize, k: usize, a: MatRef, alpha: f32, dst: &mut [f32]) {
    let dst = &mut dst[..packed_len(m, k)];
    if k == 0 {
        return;
    }
    for (p, panel) in dst.chunks_exact_mut(MR * k).enumerate() {
        let rows = MR.min(m - p * MR);
        if a.trans {
            // A(i, q) = data[q·ld + i]: the panel's MR rows at one q are contiguous.
            for (q, d) in panel.chunks_exact_mut(MR).enumerate() {
                let src = &a.data[q * a.ld + p * MR..q * a.ld + p * MR + rows];
                for (d, s) in d.iter_mut().zip(src) {
                    *d = alpha * s;
                }
                d[rows..].fill(0.0);
            }
        } else if rows == MR {
            // A full panel: for each q, the MR rows' elements (gathered loads) become one contiguous store.
            let srcs: [&[f32]; MR] = std::array::from_fn(|r| &a.data[(p * MR + r) * a.ld..(p * MR + r) * a.ld + k]);
            for (q, d) in panel.chunks_exact_mut(MR).enumerate() {
                for (d, src) in d.iter_mut().zip(&srcs) {
                    *d = alpha * src[q];
                }
            }
        } else {
            for r in 0..MR {
                if r < rows {
                    let i = p * MR + r;
                    let src = &a.data[i * a.ld..i * a.ld + k];
                    for (q, s) in src.iter().enumerate() {
                        panel[q * MR + r] = alpha * s;
                    }
                } else {
                    for q in 0..k {
                        panel[q * MR + r] = 0.0;
                    }
                }
            }
        }
    }
}

/// B = Sᵀ for a row-major S (n × k, row stride `ld`): B(i, j) = S[j·ld + i].
pub struct TransB<'a> {
    pub data: &'a [f32],
    pub ld: usize,
}

impl BSource for TransB<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        for t in 0..nc.div_ceil(nr) {
            let cols = nr.min(nc - t * nr);
            let panel = &mut dst[t * kc * nr..(t + 1) * kc * nr];
            if cols == 16 && nr == 16 {
                // Row i of the micro-panel is element k0 + i of 16 source rows: gathered loads, one
                // contiguous store (scattered stores, one cache line each, were the slow way round).
                let srcs: [&[f32]; 16] = std::array::from_fn(|j| {
                    let r = (n0 + t * nr + j) * self.ld + k0;
                    &self.data[r..r + kc]
                });
                for (i, row) in panel.chunks_exact_mut(16).enumerate() {
                    for (d, src) in row.iter_mut().zip(&srcs) {
                        *d = src[i];
                    }
                }
                continue;
            }
            for j in 0..cols {
                let r = (n0 + t * nr + j) * self.ld + k0;
                let src = &self.data[r..r + kc];
                for (i, s) in src.iter().enumerate() {
                    panel[i * nr + j] = *s;
                }
            }
        }
    }
}

/// B given as a row-major matrix view (read in place).
pub struct DirectB<'a>(pub MatRef<'a>);

impl BSource for DirectB<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let MatRef { data, ld, .. } = self.0;
        for i in 0..kc {
            let row = &data[(k0 + i) * ld + n0..(k0 + i) * ld + n0 + nc];
            for (t, piece) in row.chunks(nr).enumerate() {
                let at = t * kc * nr + i * nr;
                dst[at..at + piece.len()].copy_from_slice(piece);
            }
        }
    }
    fn direct(&self) -> Option<(&[f32], usize)> {
        Some((self.0.data, self.0.ld))
    }
}

impl Gemm {
    pub fn new() -> Self {
        Self::default()
    }

    fn scratch(&mut self, threads: usize) -> &mut [f32] {
        let need = scratch_len(Isa::detect(), threads);
        if self.scratch.len() < need {
            self.scratch.resize(need, 0.0);
        }
        &mut self.scratch[..need]
    }

    /// Packs `alpha · A` (m × k) into this context's A buffer, for [`Gemm::mul_packed`].
    pub fn pack(&mut self, m: usize, k: usize, a: MatRef, alpha: f32) {
        let need = packed_len(m, k);
        if self.packed.len() < need {
            self.packed.resize(need, 0.0);
        }
        pack_a_fast(m, k, a, alpha, &mut self.packed);
    }

    /// C[m×n] (row stride `ldc`) = A · B (+ C when `accumulate`), A as last given to [`Gemm::pack`].
    #[allow(clippy::too_many_arguments)]
    pub fn mul_packed(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        b: &dyn BSource,
        accumulate: bool,
        c: &mut [f32],
        ldc: usize,
        threads: usize,
    ) {
        let isa = Isa::detect();
        let epi = Epilogue { accumulate, ..Default::default() };
        let packed = std::mem::take(&mut self.packed);
        gemm_packed(isa, m, n, k, &packed, b, c, ldc, &epi, threads, self.scratch(threads));
        self.packed = packed;
    }

    /// C[m×n] = alpha · A · B + beta · C, beta 0 or 1 (the products of the training steps), A and B any
    /// views (transposed or not).
    #[allow(clippy::too_many_arguments)]
    pub fn mul(
        &mut self,
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
        debug_assert!(beta == 0.0 || beta == 1.0);
        if m == 0 || n == 0 {
            return;
        }
        self.pack(m, k, a, alpha);
        if b.trans {
            self.mul_packed(m, n, k, &TransB { data: b.data, ld: b.ld }, beta != 0.0, c, ldc, threads);
        } else {
            self.mul_packed(m, n, k, &DirectB(b), beta != 0.0, c, ldc, threads);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_products_with_transposes() {
        let mut gm = Gemm::new();
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 65), (9, 49, 300), (8, 97, 257)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
                let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
                for beta in [0.0, 1.0] {
                    let mut c: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.01).collect();
                    let want: Vec<f64> = (0..m * n)
                        .map(|ij| {
                            let (i, j) = (ij / n, ij % n);
                            let s: f64 = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
                            0.5 * s + beta as f64 * c[ij] as f64
                        })
                        .collect();
                    let am = MatRef { data: &a, ld: if ta { m } else { k }, trans: ta };
                    let bm = MatRef { data: &b, ld: if tb { k } else { n }, trans: tb };
                    gm.mul(m, n, k, 0.5, am, bm, beta, &mut c, n, 2);
                    for (g, w) in c.iter().zip(&want) {
                        assert!((*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "{m}x{n}x{k} {ta} {tb}: {g} vs {w}");
                    }
                }
            }
        }
    }
}
