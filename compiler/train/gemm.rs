//! The training steps' matrix products, on the runtime's packed GEMM ([`gemm_packed`]) with the packing
//! buffers kept from one step to the next.
//!
//! The runtime's general [`sgemm`](resin_runtime::kernels::gemm::sgemm) allocates its packed A and its
//! scratch on every call; training multiplies at every step, so this module keeps them. A (either layout)
//! is packed by the runtime's own [`pack_a`], its panels split between the installed pool's threads; B is
//! always packed ([`Copied`]: row-major by fixed-size copies, transposed by the runtime's [`MatB`]), never
//! read in place, because the 256-wide layers' 1 KiB row stride maps a micro-panel's rows into a few L1
//! sets. `copy_panels` is the packed-block copier the convolutions' B sources use too.
//!
//! This module owns those buffers only; what is multiplied is the steps' business.

use resin_runtime::kernels::copy_short;
use resin_runtime::kernels::elementwise::UnaryOp;
use resin_runtime::kernels::gemm::{
    gemm_packed, pack_a, packed_len, scratch_len, BSource, Epilogue, Isa, MatB, MatRef, KC, MR,
};

/// B always packed into contiguous micro-panels, never read in place.
///
/// Read in place, a row-major B whose row stride is a multiple of 1 KiB (the MLPs' 256-wide layers)
/// puts the rows of a micro-panel in a handful of L1 sets, so the panel keeps missing the L1 across the
/// A panels that reuse it; packed, it is one contiguous block.
pub struct Copied<'a>(pub MatB<'a>);

impl BSource for Copied<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let MatRef { data, ld, trans } = self.0 .0;
        if trans {
            return self.0.pack(k0, kc, n0, nc, dst, nr);
        }
        // Row-major: row i of the block is data[(k0 + i)·ld + n0 ..], copied panel by panel in fixed-size
        // pieces, compiled with AVX. (The runtime's row packer, `put_row`, also copies fixed 16-float
        // pieces since session 4; delegating to it measured the same within this machine's noise, so the
        // measured version stays.)
        let mut rows = [0usize; KC];
        for (i, r) in rows[..kc].iter_mut().enumerate() {
            *r = (k0 + i) * ld + n0;
        }
        copy_panels(data, &rows[..kc], nc, dst, nr);
    }
}

/// Fills the micro-panels of a packed block whose row i, columns j < nc, is `src[rows[i] + j ..]`:
/// panel by panel (each panel's rows written in order), every row piece one copy.
pub(crate) fn copy_panels(src: &[f32], rows: &[usize], nc: usize, dst: &mut [f32], nr: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked above); the body is safe code.
        unsafe { copy_panels_avx(src, rows, nc, dst, nr) };
        return;
    }
    copy_panels_body(src, rows, nc, dst, nr)
}

/// [`copy_panels_body`] compiled with 256-bit moves.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn copy_panels_avx(src: &[f32], rows: &[usize], nc: usize, dst: &mut [f32], nr: usize) {
    copy_panels_body(src, rows, nc, dst, nr)
}

#[inline(always)]
fn copy_panels_body(src: &[f32], rows: &[usize], nc: usize, dst: &mut [f32], nr: usize) {
    let kc = rows.len();
    for t in 0..nc.div_ceil(nr) {
        let (j0, cols) = (t * nr, nr.min(nc - t * nr));
        let panel = &mut dst[t * kc * nr..(t + 1) * kc * nr];
        match cols {
            // Whole AVX2 and AVX-512 panel rows: fixed-size copies.
            16 => copy_fixed::<16>(src, rows, j0, panel, nr),
            48 => copy_fixed::<48>(src, rows, j0, panel, nr),
            _ => {
                for (d, &r) in panel.chunks_exact_mut(nr).zip(rows) {
                    copy_short(&mut d[..cols], &src[r + j0..r + j0 + cols]);
                }
            }
        }
    }
}

/// Row i of a micro-panel (`nr` wide) gets W floats from `src[rows[i] + j0 ..]`, each a fixed-size copy.
#[inline(always)]
fn copy_fixed<const W: usize>(src: &[f32], rows: &[usize], j0: usize, panel: &mut [f32], nr: usize) {
    for (d, &r) in panel.chunks_exact_mut(nr).zip(rows) {
        let s: &[f32; W] = src[r + j0..r + j0 + W].try_into().unwrap();
        let d: &mut [f32; W] = (&mut d[..W]).try_into().unwrap();
        *d = *s;
    }
}

/// Packing buffers for one step's products (each step keeps its own, so nothing is shared between them).
#[derive(Clone, Debug, Default)]
pub struct Gemm {
    packed: Vec<f32>,
    scratch: Vec<f32>,
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
        // The panels are independent: on a pool, each thread packs a contiguous share of them.
        let panels = m.div_ceil(MR);
        let parts = if m * k >= 1 << 14 { resin_runtime::parallel::current_threads().min(panels) } else { 1 };
        if parts <= 1 {
            pack_a(m, k, a, alpha, &mut self.packed);
            return;
        }
        let per = panels.div_ceil(parts);
        resin_runtime::parallel::for_chunks_mut(&mut self.packed[..need], per * MR * k, |i, dst| {
            let r0 = i * per * MR;
            let rows = (m - r0).min(per * MR);
            let off = if a.trans { r0 } else { r0 * a.ld };
            pack_a(rows, k, MatRef { data: &a.data[off..], ..a }, alpha, dst);
        });
    }

    /// C[m×n] (row stride `ldc`) = act(A · B (+ C when `accumulate`)), A as last given to [`Gemm::pack`],
    /// the activation (if any) applied as the product's tiles are stored.
    #[allow(clippy::too_many_arguments)]
    pub fn mul_packed(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        b: &dyn BSource,
        accumulate: bool,
        act: Option<UnaryOp>,
        c: &mut [f32],
        ldc: usize,
        threads: usize,
    ) {
        let isa = Isa::detect();
        let epi = Epilogue { accumulate, bias: None, act };
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
        self.mul_packed(m, n, k, &Copied(MatB(b)), beta != 0.0, None, c, ldc, threads);
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
