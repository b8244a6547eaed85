//! Single-precision matrix products with resin's own register-blocked micro-kernels.
//!
//! Math: C[m×n] = A[m×k] · B[k×n] (+ C when accumulating) (+ bias per row) then the activation, in one
//! pass over C (the epilogue the compiler planned). Layout, BLIS-style but with the roles chosen for
//! NCHW convolutions (rows of C are output channels, columns are pixels):
//! - A is packed in panels of [`MR`] rows, k-major (`[panel][k][MR]`, zero-padded past m). Convolution
//!   weights are packed this way by the compiler, once ([`pack_a`]); other products pack A per call.
//! - B is produced in blocks of [`NB`] micro-panels `isa.nr()` columns wide and at most [`KC`] rows by a
//!   [`BSource`]: a convolution
//!   gathers its input pixels straight into the tile (implicit im2col, no im2col matrix), a plain matrix
//!   copies, and a row-major B that needs no gathering is read in place.
//! - Each micro-panel of B (KC × NR floats, L1-resident) is reused by every A panel of a block of at most
//!   [`MC`] rows (L2-resident, reused by every micro-panel of the block of B); accumulators stay in
//!   registers for a whole k block (`tile`).
//! - Threads split the columns (blocks of B) or, when there are too few, the rows (panels of A), so batch 1
//!   uses every core. Each thread packs into its own part of a caller-provided scratch; nothing allocates.
//!
//! The micro-kernel is picked at run time ([`Isa::detect`]): AVX-512F, AVX2+FMA, or portable scalar code.
//! Results do not depend on the thread count: every element of C sums its k blocks in the same order.

mod gemv;
mod isa;
mod peak;
mod tile;

pub use isa::Isa;
pub use peak::fma_peak_gflops;

use super::elementwise::{unary_inplace, UnaryOp};
use super::transpose;
pub use tile::MAX_TAPS;
use tile::{TapMasks, Tile, VecSegs, MAX_SEGS, TALL_PANELS, TAP_VECS};

/// Rows of A in one packed panel (and of C in one micro-tile), for every instruction set: 6 fills
/// AVX2's 16 registers (6 × 16 tile: 12 accumulators, 2 vectors of B, one broadcast of A) and, at
/// 6 × 48, leaves AVX-512 room; it is part of the artifact format (weights are stored packed).
pub const MR: usize = 6;
/// Rows of B (the k extent) in one packed block.
pub const KC: usize = 256;

/// Rows of A per block of [`gemm_packed`] and [`gemm_shifted`]: 240 × [`KC`] floats = 240 KiB, about half
/// of this machine's 512 KiB L2, which each block of A stays in while the micro-tiles of B pass over it.
pub const MC: usize = 240;

/// Micro-tiles of B packed together: a block is `NB · isa.nr()` columns, so gathering a convolution's
/// input runs along whole output rows instead of one micro-tile's width.
pub const NB: usize = 8;
/// The widest block any instruction set packs (AVX-512: 8 × 48 columns).
pub const MAX_BLOCK: usize = NB * 48;
/// The most bytes of B a tap tile of `TAP_VECS` vectors may read (all its rows' planes over the rows
/// it spans) to be cut that wide: two thirds of this machine's 48 KiB L1, so that B stays there while
/// the tile passes over each panel of A.
const WIDE_TAP_TILE_BYTES: usize = 32 << 10;

/// The most weights (floats) a product read in place by [`gemm_shifted`] or [`gemm_taps`] may have and
/// still run its whole k extent in one block: 256 KB, the in-place convolutions' own bound (`conv`'s
/// `IN_PLACE_MAX_WEIGHTS`), so every such convolution does unless forced in place. [`KC`] keeps a packed
/// micro-panel of B in L1; an in-place tile reads B from the input wherever it lies, so a k block of
/// its own only cost each tile a pass over its C (load, add, store) and a restart of its FMA chains:
/// ResNet-20's 288- and 576-deep layers ran as 256 + 32 and 256 + 256 + 64.
/// `ab_steps.py` on 1 thread, 6 rounds: ResNet-20 at batch 8, its 8- and 16-px layers 0.95-0.96;
/// DenseNet-121 (1152-deep growth convolutions), its 14-px ones 0.93 and 7-px ones 0.69; on AVX2,
/// ResNet-20's 8- and 16-px layers 0.94-0.97.
const WHOLE_K_MAX_WEIGHTS: usize = 1 << 16;

/// Floats that `m × k` occupies once packed by [`pack_a`].
pub fn packed_len(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * MR * k
}

/// Scratch [`gemm_packed`] needs for `threads` threads on `isa`: blocks of packed B, or a few-row
/// product's partial sums over segments of k (which fit `scratch_len(isa, 1)`, see `gemv::k_segments`).
pub fn scratch_len(isa: Isa, threads: usize) -> usize {
    threads.max(1) * KC * NB * isa.nr()
}

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
    /// The flat index of element (rows-1, cols-1): bounds check of the whole view.
    fn last(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        if self.trans {
            (cols - 1) * self.ld + rows - 1
        } else {
            (rows - 1) * self.ld + cols - 1
        }
    }
}

/// Packs `alpha · A` (m × k) into [`MR`]-row panels: `dst[(p·k + q)·MR + r] = alpha · A[p·MR + r, q]`,
/// zero for rows past m. `dst` holds at least [`packed_len`]`(m, k)` floats.
pub fn pack_a(m: usize, k: usize, a: MatRef, alpha: f32, dst: &mut [f32]) {
    assert!(a.last(m, k) < a.data.len().max(1) || m == 0 || k == 0, "pack_a: A is too small");
    let dst = &mut dst[..packed_len(m, k)];
    if k == 0 {
        return;
    }
    // Inner loops over contiguous memory for both layouts (training packs transposes at every step).
    for (p, panel) in dst.chunks_exact_mut(MR * k).enumerate() {
        let rows = MR.min(m - p * MR);
        if a.trans {
            // A(i, q) = data[q·ld + i]: the panel's rows at one q are contiguous.
            for (q, d) in panel.chunks_exact_mut(MR).enumerate() {
                let at = q * a.ld + p * MR;
                if rows == MR {
                    // Fixed-size, so the six products are two vector multiplies, not a counted loop.
                    let (s, d): (&[f32; MR], &mut [f32; MR]) =
                        (a.data[at..at + MR].try_into().expect("MR floats"), d.try_into().expect("MR floats"));
                    *d = std::array::from_fn(|r| alpha * s[r]);
                    continue;
                }
                for (d, s) in d.iter_mut().zip(&a.data[at..at + rows]) {
                    *d = alpha * s;
                }
                d[rows..].fill(0.0);
            }
        } else if rows == MR {
            // A full panel: the MR rows transposed into k groups of MR, 8 × 8 blocks at a time.
            const _: () = assert!(MR == 6, "pack_a's full panels use transpose::rows6");
            transpose::rows6(k, &a.data[p * MR * a.ld..], a.ld, alpha, panel);
        } else {
            for r in 0..MR {
                let i = p * MR + r;
                for q in 0..k {
                    panel[q * MR + r] = if r < rows { alpha * a.data[i * a.ld + q] } else { 0.0 };
                }
            }
        }
    }
}

/// Where the blocks of B come from.
pub trait BSource: Sync {
    /// Writes the block B[k0 + i, n0 + j] (i < kc, j < nc ≤ [`MAX_BLOCK`]) as micro-panels `nr` wide:
    /// element (i, j) goes to `dst[(j / nr)·kc·nr + i·nr + j % nr]` (use [`put_row`]).
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize);
    /// A row-major B (data, row stride) the kernels can read in place, skipping [`BSource::pack`].
    fn direct(&self) -> Option<(&[f32], usize)> {
        None
    }
}

/// Stores `row` (row i of a packed block of `kc` rows) into its micro-panels `nr` wide.
#[inline]
pub fn put_row(dst: &mut [f32], kc: usize, nr: usize, i: usize, row: &[f32]) {
    put_row_map(dst, kc, nr, i, row, |x| x)
}

/// [`put_row`] storing `f(x)` for each value x of `row`: a transform fused into the packing pass.
#[inline(always)]
pub fn put_row_map(dst: &mut [f32], kc: usize, nr: usize, i: usize, row: &[f32], f: impl Fn(f32) -> f32) {
    let store = |d: &mut [f32], piece: &[f32]| d.iter_mut().zip(piece).for_each(|(o, &x)| *o = f(x));
    if nr == 16 {
        // The AVX2 width as a constant: each piece is a few register operations, not a call to memmove
        // for 64 bytes (which was most of the packing time). (The same for AVX-512's 48 made DenseNet-121
        // 1.05x slower on 1 thread, its BatchNorm+ReLU prologue mapped over 48-float arrays.)
        let mut pieces = row.chunks_exact(16);
        for (t, piece) in (&mut pieces).enumerate() {
            let at = t * kc * 16 + i * 16;
            let d: &mut [f32; 16] = (&mut dst[at..at + 16]).try_into().expect("16 floats");
            // Through local arrays: once inlined, the compiler could not tell `dst` and `row` apart and
            // copied the piece value by value; a local copy in, a whole-array store out, vectorize.
            let src: [f32; 16] = piece.try_into().expect("16 floats");
            *d = src.map(&f);
        }
        let rest = pieces.remainder();
        if !rest.is_empty() {
            let at = (row.len() / 16) * kc * 16 + i * 16;
            store(&mut dst[at..at + rest.len()], rest);
        }
        return;
    }
    for (t, piece) in row.chunks(nr).enumerate() {
        let at = t * kc * nr + i * nr;
        store(&mut dst[at..at + piece.len()], piece);
    }
}

/// B given as a matrix view; read in place unless transposed.
pub struct MatB<'a>(pub MatRef<'a>);

impl BSource for MatB<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let MatRef { data, ld, trans } = self.0;
        if !trans {
            for i in 0..kc {
                let at = (k0 + i) * ld + n0;
                put_row(dst, kc, nr, i, &data[at..at + nc]);
            }
            return;
        }
        // B(i, j) = data[j·ld + i]: column j of the block is a contiguous source row, so each micro-panel
        // is the transpose of `cols` source rows (8 × 8 register blocks, not a gather per element).
        for t in 0..nc.div_ceil(nr) {
            let cols = nr.min(nc - t * nr);
            let panel = &mut dst[t * kc * nr..(t + 1) * kc * nr];
            transpose::transpose(cols, kc, &data[(n0 + t * nr) * ld + k0..], ld, panel, nr);
        }
    }
    fn direct(&self) -> Option<(&[f32], usize)> {
        (!self.0.trans).then_some((self.0.data, self.0.ld))
    }
}

/// What happens to a finished tile of C.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Add the product to what C holds (a residual that was loaded into C, or `beta = 1`).
    pub accumulate: bool,
    /// One value per row of C.
    pub bias: Option<&'a [f32]>,
    pub act: Option<UnaryOp>,
}

/// C, shared by the threads of one product; each writes a disjoint set of tiles.
type SharedC = crate::parallel::SendPtr<f32>;

/// `C[m×n]` (row stride `ldc`) = epilogue(A · B) with A packed by [`pack_a`] and B from `b`.
///
/// `scratch` holds at least [`scratch_len`]`(isa, threads)` floats; `isa` must be available (use
/// [`Isa::detect`]). Panics if an operand is too small for its shape (a bug in the caller, not bad input:
/// the plan checker vets shapes before anything runs).
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &dyn BSource,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
    threads: usize,
    scratch: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(isa.available(), "gemm: {} is not available on this CPU", isa.name());
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm: C is too small");
    assert!(a.len() >= packed_len(m, k), "gemm: packed A is too small");
    if let Some(bias) = epi.bias {
        assert!(bias.len() >= m, "gemm: bias is too short");
    }
    if let Some((d, ld)) = b.direct() {
        assert!(k == 0 || (ld >= n && (k - 1) * ld + n <= d.len()), "gemm: B is too small");
        // Full tiles are read in place: tile t reads B[.., t·nr .. (t+1)·nr], inside row-major B.
    }
    if k == 0 {
        for i in 0..m {
            let row = &mut c[i * ldc..i * ldc + n];
            let add = epi.bias.map_or(0.0, |b| b[i]);
            row.iter_mut().for_each(|v| *v = if epi.accumulate { *v + add } else { add });
            if let Some(act) = epi.act {
                unary_inplace(act, row);
            }
        }
        return;
    }
    let threads = threads.max(1);
    if let (true, Some((d, ld))) = (n <= gemv::MAX_N, b.direct()) {
        // A few columns read in place: one pass over A, threads splitting its panels.
        let panels = m.div_ceil(MR);
        let parts = if m * k >= 1 << 15 { threads.min(panels) } else { 1 };
        let shared = crate::parallel::SendPtr(c.as_mut_ptr());
        crate::parallel::run(parts, &|i| {
            let range = i * panels / parts..(i + 1) * panels / parts;
            // SAFETY: bounds asserted above; parts own disjoint panels, hence disjoint rows of C.
            unsafe { gemv::run(isa, m, n, k, a, d, ld, shared.get(), ldc, epi, range) }
        });
        return;
    }
    if let (true, Some((d, ld))) = (m <= gemv::MAX_N, b.direct()) {
        // A few rows (a classifier at batch 1): one pass over B.
        let segs = gemv::k_segments(n, k);
        if segs > 1 {
            assert!(scratch.len() >= segs * m * n, "gemm: scratch is too small");
            let (partial, _) = scratch.split_at_mut(segs * m * n);
            gemv::run_rows_segmented(isa, m, n, k, a, d, ld, c, ldc, epi, threads, segs, partial);
            return;
        }
        // Threads split its columns.
        let parts = if n * k >= 1 << 15 { threads.min(n.div_ceil(64)) } else { 1 };
        let shared = crate::parallel::SendPtr(c.as_mut_ptr());
        crate::parallel::run(parts, &|i| {
            // Whole vectors per part: split at multiples of 16 columns.
            let at = |q: usize| (q * n.div_ceil(16) / parts * 16).min(n);
            // SAFETY: bounds asserted above; parts own disjoint columns of C.
            unsafe { gemv::run_rows(isa, m, k, a, d, ld, shared.get(), ldc, epi, at(i)..at(i + 1)) }
        });
        return;
    }
    let nr = isa.nr();
    // Blocks of B are NB micro-panels wide, narrower when that is what it takes to give every thread
    // one: 196 columns on 2 threads make blocks of 112 + 84, not 128 + 68.
    let width = (NB * nr).min(n.div_ceil(threads).div_ceil(nr) * nr);
    let (tiles, panels) = (n.div_ceil(width), m.div_ceil(MR));
    // Split the columns (each thread packs only its own blocks) unless that loads the threads clearly
    // less evenly than splitting the rows (where every thread packs every block).
    let parts_of = |units: usize| threads.min(units);
    let worst_cols = (0..parts_of(tiles))
        .map(|i| {
            let r = i * tiles / parts_of(tiles)..(i + 1) * tiles / parts_of(tiles);
            (r.end * width).min(n) - r.start * width
        })
        .max()
        .unwrap_or(n);
    let imbalance_n = worst_cols as f64 * threads as f64 / n as f64;
    let imbalance_m = panels.div_ceil(threads) as f64 * threads as f64 / panels as f64;
    let split_n = imbalance_n <= imbalance_m + 0.25;
    // Split by rows, every thread runs every column: blocks as wide as `NB` micro-panels allow, so that
    // each block of A is read once per (up to) 128 columns. 49 columns in blocks of 32 read the weights
    // of ResNet-50's 7-pixel layers twice.
    let (width, tiles) = match split_n {
        true => (width, tiles),
        false => {
            let width = (NB * nr).min(n.next_multiple_of(nr));
            (width, n.div_ceil(width))
        }
    };
    let units = if split_n { tiles } else { panels };
    let parts = parts_of(units);
    let per = KC * NB * nr;
    assert!(scratch.len() >= parts * per, "gemm: scratch is too small");
    let shared = crate::parallel::SendPtr(c.as_mut_ptr());
    let job = |part: usize, buf: &mut [f32]| {
        let range = part * units / parts..(part + 1) * units / parts;
        let (t_range, p_range) = if split_n { (range, 0..panels) } else { (0..tiles, range) };
        // SAFETY: the asserts above bound every tile; parts own disjoint tiles or disjoint panels.
        unsafe { run_part(isa, m, n, k, a, b, shared, ldc, epi, width, t_range, p_range, buf) };
    };
    for_parts(parts, &mut scratch[..parts * per], per, &job);
}

/// Runs `f(i, chunk_i)` for i < parts on the installed thread pool, chunk i being `scratch[i·per..]`.
fn for_parts(parts: usize, scratch: &mut [f32], per: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    assert!(scratch.len() >= parts * per);
    let base = crate::parallel::SendPtr(scratch.as_mut_ptr());
    crate::parallel::run(parts, &|i| {
        // SAFETY: part i alone gets chunk i, inside `scratch` (asserted), which we borrow mutably.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.get().add(i * per), per) };
        f(i, chunk)
    });
}

/// The blocks `t_range` (each `width` columns) × panels `p_range` of C.
///
/// The first pass over each block of A (and, when the part's A outgrows half the L2, the first pass of
/// every block of columns) prefetches the next panel(s) while panel p's tile runs ([`Tile::a_next`]). Without
/// it, each 6 KiB panel of a layer's weights arrived from L3 or memory only when its tile asked, and the
/// prefetchers restart at every panel (panels of one k block are `k·MR` floats apart). ResNet-50 at
/// batch 1, per-step profiles alternating builds: the 7-pixel layers (4.2-9.4 MB of weights each) 0.75-0.94
/// of before on 2 threads, 0.76-0.92 on 1 thread; the whole network 0.94-0.96 on 2 threads and 0.95 on
/// 1; batch 8 on 2 threads 0.92 (the 2-thread figures with the new build in the place of its rounds that
/// ran ~5% faster whatever it held; with this change and the packing's vector tails together, in rounds
/// whose order rotates, `benches/ab_steps.py`: 0.933 on 2 threads, 0.942 on 1). Layers whose weights stay
/// in L2 did not change. Outputs are bit-identical (prefetching changes no arithmetic).
///
/// # Safety
/// `gemm_packed`'s asserts must hold, and no other thread may write these tiles.
#[allow(clippy::too_many_arguments)]
unsafe fn run_part(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &dyn BSource,
    c: SharedC,
    ldc: usize,
    epi: &Epilogue,
    width: usize,
    t_range: std::ops::Range<usize>,
    p_range: std::ops::Range<usize>,
    buf: &mut [f32],
) {
    let nr = isa.nr();
    let direct = b.direct();
    // Even blocks of at most `MC` rows: 43 panels make blocks of 21 and 22, not 40 and 3.
    let p_len = p_range.len();
    let blocks = p_len.div_ceil(MC / MR).max(1);
    let relu = epi.act == Some(UnaryOp::Relu);
    let other_act = epi.act.filter(|_| !relu);
    let panel_outer = panels_outer(m, n, k);
    // A part's panels that outgrow half the L2 come from L3 or memory for every block of columns;
    // smaller ones stay in L2 after the first block.
    let a_big = p_len * MR * k * std::mem::size_of::<f32>() > 256 << 10;
    let t_first = t_range.start;
    // A micro-tile of one vector of B runs down up to `TALL_PANELS` panels at once on AVX-512.
    let tall = isa == Isa::Avx512;
    for t in t_range {
        let fetch_a = a_big || t == t_first;
        let (nb0, nbc) = (t * width, width.min(n - t * width));
        // A direct B is read in place when the block has no ragged micro-tile (the kernels read whole
        // vectors); otherwise the block is packed.
        let in_place = direct.filter(|_| nbc % nr == 0);
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            if in_place.is_none() {
                b.pack(k0, kc, nb0, nbc, buf, nr);
            }
            let last = k0 + kc == k;
            // Blocks of at most `MC` rows of A: each stays in L2 while every micro-tile of the block of B
            // passes over it (with all of A inside the micro-tile loop, a layer whose weights outgrow L2
            // streamed them from L3 or DRAM once per 16 columns).
            for blk in 0..blocks {
                let p_block = p_range.start + blk * p_len / blocks..p_range.start + (blk + 1) * p_len / blocks;
                // The tile after which the next panel is read for the first time in this block: in column
                // order, the first micro-tile's; panel by panel, a panel's last (when that one is ragged,
                // 8 columns or fewer on AVX2 or 1 on AVX-512, its kernel does not prefetch).
                let fetch_mt = if panel_outer { nbc.div_ceil(nr) - 1 } else { 0 };
                // `np` panels from p down micro-tile mt: 1, or up to `TALL_PANELS` whole ones (see `tall`).
                let micro = |mt: usize, p: usize, np: usize| {
                    let (n0, nc) = (nb0 + mt * nr, nr.min(nbc - mt * nr));
                    let (bp, ldb) = match in_place {
                        Some((d, ld)) => (d[k0 * ld + n0..].as_ptr(), ld),
                        None => (buf[mt * kc * nr..].as_ptr(), nr),
                    };
                    let (m0, rows) = (p * MR, if np > 1 { np * MR } else { MR.min(m - p * MR) });
                    // The first pass over a block of A brings it in from beyond L2: that pass's tiles
                    // prefetch the next panel(s) while they run (later passes find the block in L2).
                    let a_next = match fetch_a && mt == fetch_mt && p + 2 * np <= p_block.end {
                        true => a[((p + np) * k + k0) * MR..].as_ptr(),
                        false => std::ptr::null(),
                    };
                    let tile = Tile {
                        k: kc,
                        a: a[(p * k + k0) * MR..].as_ptr(),
                        a_next,
                        b: bp,
                        ldb,
                        b_offs: std::ptr::null(),
                        b_hi: 8,
                        c: unsafe { c.0.add(m0 * ldc + n0) },
                        ldc,
                        a_stride: k * MR,
                        rows,
                        cols: nc,
                        ..block_epilogue(epi, m0, k0, last)
                    };
                    unsafe { run_tile(isa, &tile, other_act.filter(|_| last)) };
                };
                if panel_outer {
                    for p in p_block.clone() {
                        for mt in 0..nbc.div_ceil(nr) {
                            micro(mt, p, 1);
                        }
                    }
                } else {
                    for mt in 0..nbc.div_ceil(nr) {
                        // (One column is the row-vectorized kernel's, `k256_col1`.)
                        let narrow = tall && (2..=16).contains(&(nbc - mt * nr));
                        let mut p = p_block.start;
                        while p < p_block.end {
                            // Whole panels only: the last panel of A may be ragged.
                            let whole = (m / MR).min(p_block.end).saturating_sub(p);
                            let np = if narrow { whole.clamp(1, TALL_PANELS) } else { 1 };
                            micro(mt, p, np);
                            p += np;
                        }
                    }
                }
            }
            k0 += kc;
        }
    }
}

/// Whether [`run_part`] runs a block's micro-tiles panel by panel (each panel along the block's columns)
/// instead of column by column (each micro-panel of B down every panel): for a short k (at most 64) and a
/// C of at least 512 KiB. The usual order keeps one micro-panel of B in L1 while the panels pass, but walks
/// C down its rows, one 64-byte piece per row a tile, rows a channel plane apart (12.5 KB at 56 px), which
/// the prefetcher does not follow; with k = 64 the tile's k loop is too short to hide those misses. Panel
/// by panel, each row of C is read and written front to back, and B's block (k × `NB`·nr floats, 32 KiB
/// with AVX2) stays in L1 or L2. ResNet-50's stage-1 expand convolutions (64 → 256 channels, the residual read from
/// C, 3.2 MB an image), per-step profiles alternating the two builds at batch 8: 0.79-0.86 of before on 2
/// threads and 0.82-0.87 on 1, the other steps unchanged (within noise at batch 1). With a long k or a
/// small C (a Winograd layer's products) the usual order wins: 1.06-1.13 on ResNet-50's F(4×4) layers
/// when the switch applied to every product. The order changes no result: each tile sums the same terms
/// in the same order.
fn panels_outer(m: usize, n: usize, k: usize) -> bool {
    k <= 64 && m * n >= 1 << 17
}

/// The epilogue fields of a micro-tile whose C starts at row `m0`, for the k block starting at `k0`
/// (`last` if it is the final one): add to C after the first block (or when the epilogue accumulates);
/// the bias and a Relu only on the last block. The other fields are placeholders for the caller to set.
fn block_epilogue(epi: &Epilogue, m0: usize, k0: usize, last: bool) -> Tile {
    Tile {
        k: 0,
        a: std::ptr::null(),
        b: std::ptr::null(),
        ldb: 0,
        b_offs: std::ptr::null(),
        a_next: std::ptr::null(),
        b_hi: 8,
        segs: std::ptr::null(),
        taps: std::ptr::null(),
        tap0: 0,
        c: std::ptr::null_mut(),
        ldc: 0,
        a_stride: 0,
        rows: 0,
        cols: 0,
        accumulate: epi.accumulate || k0 > 0,
        bias: match epi.bias {
            Some(bias) if last => bias[m0..].as_ptr(),
            _ => std::ptr::null(),
        },
        relu: last && epi.act == Some(UnaryOp::Relu),
    }
}

/// Runs one micro-tile, then `act` over its rows of C when the kernel's store cannot apply it (any
/// activation but Relu, on the tile's last k block).
///
/// # Safety
/// As [`tile::run`]: the tile's operands must be in bounds and its C written by no other thread.
#[inline(always)]
unsafe fn run_tile(isa: Isa, t: &Tile, act: Option<UnaryOp>) {
    unsafe { tile::run(isa, t) };
    if let Some(act) = act {
        for r in 0..t.rows {
            // SAFETY: row r of the tile's C holds `cols` floats (the caller's contract).
            unary_inplace(act, unsafe { std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), t.cols) });
        }
    }
}

/// B as shifted views of one array, read in place (a convolution over its zero-padded input, or over its
/// phase planes when strided):
/// B(p, j) = `data[offs[p] + (j / width)·stride + j % width]` for p < k = `offs.len()` and
/// j < `rows · width`. Column j is output pixel (j / width, j % width); row p is the input pixel under
/// kernel tap p, `offs[p]` from the output pixel's own position in the padded input.
#[derive(Clone, Copy, Debug)]
pub struct ShiftedB<'a> {
    pub data: &'a [f32],
    pub offs: &'a [u32],
    /// Columns per grid row (the output width).
    pub width: usize,
    /// Grid rows (the output height).
    pub rows: usize,
    /// Distance in `data` between grid rows (the padded input's width, or a phase plane's).
    pub stride: usize,
}

impl ShiftedB<'_> {
    /// The loads of a tile of `cols` output pixels from pixel `n0` on (at most 48): relative to where
    /// pixel `n0` is read, lane j of vector v (pixel q = n0 + 16v + j, at row q / width, column
    /// q % width) reads `(q / width)·stride + q % width`, so each run of lanes in one row is one masked
    /// load at a fixed offset minus j.
    fn vec_segs(&self, n0: usize, cols: usize) -> VecSegs {
        // Walk the pixels once, (row, column) kept incrementally: no division per lane.
        let (mut y, mut x) = (n0 / self.width, n0 % self.width);
        let base = (y * self.stride + x) as isize;
        let mut segs = VecSegs::default();
        for v in 0..cols.div_ceil(16) {
            let mut s = 0;
            for j in 0..16.min(cols - 16 * v) {
                if j == 0 || x == 0 {
                    s += usize::from(j > 0);
                    segs.offs[v][s] = (y * self.stride + x) as isize - base - j as isize;
                }
                segs.masks[v][s] |= 1 << j;
                x += 1;
                if x == self.width {
                    (y, x) = (y + 1, 0);
                }
            }
            segs.count = segs.count.max(s + 1);
        }
        segs
    }
}

/// A [`ShiftedB`] packed into micro-panels, for [`gemm_packed`]: the same B (row k, pixel n = i·width + j
/// at `data[offs[k] + i·stride + j]`) for products whose weights are too large for the in-place tiles of
/// [`gemm_shifted`] (each of which passes over all of A). Each row of a block is one contiguous copy per
/// grid row and micro-panel it spans, straight into the panels: no bounds, padding or stride logic (the
/// padded phase planes hold all of that).
pub struct PackedShifted<'a>(pub ShiftedB<'a>);

impl BSource for PackedShifted<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        self.pack_twin(k0, kc, n0, nc, dst, nr)
    }
}

impl PackedShifted<'_> {
    avx2_twin!(
        /// [`PackedShifted::pack_body`] with AVX2 moves where the CPU has them. Same bits.
        method pack_twin / pack_avx2 => pack_body (k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize)
    );

    #[inline(always)]
    fn pack_body(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let b = &self.0;
        assert!(nc <= MAX_BLOCK && k0 + kc <= b.offs.len());
        // The block's columns as pieces that each lie in one grid row and one micro-panel, the same for
        // every row of B: (its place in the packed block's row 0, its length, its start in the data past
        // a row's offset). Each row is then one short copy per piece, straight into the micro-panels
        // (through a row buffer and `put_row`, every value was copied twice).
        let mut pieces = [(0usize, 0usize, 0usize); MAX_BLOCK];
        let (mut count, mut q) = (0, 0);
        while q < nc {
            let (i, j) = ((n0 + q) / b.width, (n0 + q) % b.width);
            let len = (b.width - j).min(nc - q).min(nr - q % nr);
            pieces[count] = ((q / nr) * kc * nr + q % nr, len, i * b.stride + j);
            count += 1;
            q += len;
        }
        for (i, &off) in b.offs[k0..k0 + kc].iter().enumerate() {
            let row = &b.data[off as usize..];
            for &(at, len, from) in &pieces[..count] {
                super::copy_short(&mut dst[at + i * nr..][..len], &row[from..][..len]);
            }
        }
    }
}

/// How one kernel axis of a [`TapB`] reads its planes: kernel position u reads plane coordinate
/// `o + shift[u]` for output coordinate o, and finds data there when it lies in `0..extent[u]` (zero
/// elsewhere: the padding, or past the input).
#[derive(Clone, Copy, Debug)]
pub struct TapAxis {
    pub shift: [isize; MAX_TAPS],
    pub extent: [usize; MAX_TAPS],
    /// Kernel positions on this axis.
    pub len: usize,
}

impl TapAxis {
    /// A stride-1 axis over an input `extent` long, padded by `pad` before it: position u reads input
    /// coordinate o + u·dilation − pad.
    pub fn unit(len: usize, dilation: usize, pad: usize, extent: usize) -> Self {
        assert!(len <= MAX_TAPS, "gemm_taps: a kernel {len} wide");
        let mut axis = TapAxis { shift: [0; MAX_TAPS], extent: [extent; MAX_TAPS], len };
        for (u, s) in axis.shift.iter_mut().enumerate().take(len) {
            *s = (u * dilation) as isize - pad as isize;
        }
        axis
    }
    /// How far before an output coordinate the axis reads at most (0 if it never reads before it).
    fn lead(&self) -> usize {
        self.shift[..self.len].iter().map(|&s| (-s).max(0) as usize).max().unwrap_or(0)
    }
}

/// B of a convolution read in place (AVX-512 only, see [`gemm_taps`]) from planes as wide as its output,
/// so that consecutive output pixels read consecutive plane pixels under every tap, across rows too:
/// a stride-1 convolution's unpadded input ([`TapB::new`]), or a strided one's unpadded phase planes
/// ([`TapB::planes`]). B(p, q) for row p = (c·kh + u)·kw + v and output pixel q = i·w + j is pixel
/// `(i + ys.shift[u], j + xs.shift[v])` of channel c's plane for tap (u, v), or 0 where that lies outside
/// the plane's extents. Row p starts `offs[p]` floats from `q − base` (possibly before the data): one
/// offset per row, as for [`ShiftedB`], and per tile one mask per tap and vector for the padding
/// (`TapMasks`).
#[derive(Clone, Copy, Debug)]
pub struct TapB<'a> {
    /// The group's planes.
    data: &'a [f32],
    /// Columns per grid row: the output's width, and every plane's row stride.
    w: usize,
    /// Output rows (each `w` pixels).
    rows: usize,
    ys: TapAxis,
    xs: TapAxis,
    /// Floats from where a tile's rows are read to its first output pixel's index: the axes' leads,
    /// rows times w plus columns.
    base: usize,
    /// One offset per row of B, as above (built by [`TapB::planes`], so that every lane a mask lets
    /// through lies in `data`).
    offs: &'a [u32],
    /// Whether what a tile of `TAP_VECS` vectors reads of B fits in [`WIDE_TAP_TILE_BYTES`] (then the
    /// driver cuts tiles that wide; 3 vectors otherwise).
    wide: bool,
}

impl<'a> TapB<'a> {
    /// B of a stride-1 convolution whose output is as wide as its input, `data` being its input
    /// (`[channels, h, w]`), for an output of `rows` rows; the offsets are written to the front of
    /// `scratch` (`channels·kh·kw` floats, holding u32 bit patterns: a run allocates nothing). Panics if
    /// `data` or `scratch` is too small, or a tap count is past [`MAX_TAPS`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data: &'a [f32],
        channels: usize,
        h: usize,
        w: usize,
        [kh, kw]: [usize; 2],
        [d0, d1]: [usize; 2],
        [top, left]: [usize; 2],
        rows: usize,
        scratch: &'a mut [f32],
    ) -> Self {
        assert!((1..=MAX_TAPS).contains(&(kh * kw)), "gemm_taps: a {kh}x{kw} kernel has too many taps");
        let volume = channels.checked_mul(h).and_then(|v| v.checked_mul(w));
        assert!(volume.is_some_and(|v| data.len() >= v), "gemm_taps: B is too small");
        let (ys, xs) = (TapAxis::unit(kh, d0, top, h), TapAxis::unit(kw, d1, left, w));
        Self::planes(data, channels, w, rows, ys, xs, |c, _, _| c * h * w, scratch)
    }

    /// B over planes `w` wide in `data`: channel c's tap (u, v) reads the plane that starts at
    /// `plane(c, u, v)`, as `ys` and `xs` say, for an output of `rows` rows. Offsets go to the front of
    /// `scratch` as in [`TapB::new`]. Panics if a plane's extents are wider than `w` or reach past
    /// `data`, `scratch` is too small, or the tap count is not 1 to [`MAX_TAPS`].
    #[allow(clippy::too_many_arguments)]
    pub fn planes(
        data: &'a [f32],
        channels: usize,
        w: usize,
        rows: usize,
        ys: TapAxis,
        xs: TapAxis,
        plane: impl Fn(usize, usize, usize) -> usize,
        scratch: &'a mut [f32],
    ) -> Self {
        let (kh, kw) = (ys.len, xs.len);
        assert!((1..=MAX_TAPS).contains(&(kh * kw)), "gemm_taps: a {kh}x{kw} kernel has too many taps");
        assert!(xs.extent[..kw].iter().all(|&e| e <= w), "gemm_taps: a plane is wider than the output");
        assert!(rows.checked_mul(w).is_some(), "gemm_taps: the output is too large");
        let (ty, tx) = (ys.lead(), xs.lead());
        let base = ty.checked_mul(w).and_then(|b| b.checked_add(tx)).expect("gemm_taps: the padding is too large");
        let k = channels * kh * kw;
        assert!(scratch.len() >= k, "gemm_taps: scratch is too small for the tap offsets");
        let offs_f = &mut scratch[..k];
        let mut p = 0;
        for c in 0..channels {
            for u in 0..kh {
                for v in 0..kw {
                    let start = plane(c, u, v);
                    // Every lane a mask lets through reads row 0..extent, column 0..extent of this plane.
                    let end = ys.extent[u].checked_mul(w).and_then(|e| e.checked_add(start));
                    let empty = ys.extent[u] == 0 || xs.extent[v] == 0;
                    assert!(empty || end.is_some_and(|e| e <= data.len()), "gemm_taps: B is too small");
                    // start + (ty + shift_y)·w + (tx + shift_x): both terms are at least 0 by the leads.
                    let off = (ty as isize + ys.shift[u]) as usize * w + (tx as isize + xs.shift[v]) as usize;
                    let off = start.checked_add(off).and_then(|o| u32::try_from(o).ok());
                    offs_f[p] = f32::from_bits(off.expect("tap offsets fit u32"));
                    p += 1;
                }
            }
        }
        // SAFETY: f32 and u32 have the same size and alignment, and any bits are a valid u32.
        let offs = unsafe { std::slice::from_raw_parts(offs_f.as_ptr() as *const u32, k) };
        // What a 64-pixel tile reads of B: each channel's planes (those its taps read), over the rows the
        // tile's pixels and the kernel's height span.
        let planes_read =
            (0..kh * kw).filter(|&t| (0..t).all(|e| plane(0, e / kw, e % kw) != plane(0, t / kw, t % kw)));
        let rows_read = (64usize.div_ceil(w.max(1)) + kh).min(ys.extent[..kh].iter().copied().max().unwrap_or(0));
        let tile_bytes = channels.saturating_mul(planes_read.count()).saturating_mul(rows_read * w * 4);
        let wide = tile_bytes <= WIDE_TAP_TILE_BYTES;
        TapB { data, w, rows, ys, xs, base, offs, wide }
    }

    /// The masks of a tile of `cols` (at most 64) output pixels from pixel `n0` on: lane j of vector v
    /// (pixel q = n0 + 16v + j, at row q / w and column q % w) under tap (u, v') is read when plane row
    /// q / w + ys.shift[u] and column q % w + xs.shift[v'] lie in the tap's extents.
    fn tap_masks(&self, n0: usize, cols: usize) -> TapMasks {
        // The masks are up to 64 bits (`TAP_VECS` 16-lane vectors): the widest tap tile.
        assert!(cols <= 16 * TAP_VECS, "gemm_taps: a tile of {cols} pixels");
        let ones = |n: usize| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let (kh, kw, w) = (self.ys.len, self.xs.len, self.w);
        // Per kernel row u (column v), the lanes whose plane row (column) lies in its extent, as one
        // 64-bit mask, built a run of lanes in one output row at a time (a few shifts per run and tap,
        // not a test per lane: the per-lane version cost a fifth of a 16-channel layer's time).
        let (mut row_ok, mut col_ok) = ([0u64; MAX_TAPS], [0u64; MAX_TAPS]);
        let (mut y, mut x, mut q) = (n0 / w, n0 % w, 0);
        while q < cols {
            // Lanes q..q + len: output row y, columns x..x + len.
            let len = (w - x).min(cols - q);
            let run = ones(len) << q;
            for (u, ok) in row_ok.iter_mut().enumerate().take(kh) {
                if (0..self.ys.extent[u] as isize).contains(&(y as isize + self.ys.shift[u])) {
                    *ok |= run;
                }
            }
            for (v, ok) in col_ok.iter_mut().enumerate().take(kw) {
                // Plane column x' + shift in 0..extent: x' in lo..hi.
                let (shift, extent) = (self.xs.shift[v], self.xs.extent[v] as isize);
                let lo = (x as isize).max(-shift);
                let hi = ((x + len) as isize).min(extent - shift);
                if lo < hi {
                    *ok |= ones((hi - lo) as usize) << (q as isize + lo - x as isize);
                }
            }
            (q, x, y) = (q + len, 0, y + 1);
        }
        let mut t = TapMasks { masks: [[0; TAP_VECS]; MAX_TAPS], taps: kh * kw };
        for (u, rows) in row_ok.iter().enumerate().take(kh) {
            for (v, cols) in col_ok.iter().enumerate().take(kw) {
                let both = rows & cols;
                t.masks[u * kw + v] = std::array::from_fn(|vec| (both >> (16 * vec)) as u16);
            }
        }
        t
    }
}

/// Where [`gemm_shifted`]'s driver reads B: shifted views of a padded input, or the unpadded input
/// under per-tap masks.
#[derive(Clone, Copy)]
enum InPlace<'a> {
    Padded(&'a ShiftedB<'a>),
    Taps(&'a TapB<'a>),
}

/// `C[m × rows·w]` (row stride `ldc`) = epilogue(A · B) with A packed by [`pack_a`] and B read in place
/// from planes as wide as the output ([`TapB`]: a stride-1 convolution's unpadded input, or a strided
/// one's unpadded phase planes): [`gemm_shifted`] without the zero-padded copy. Tiles are up to 48 (64
/// where [`TapB`]'s tile fits L1) consecutive output pixels across rows, each vector of B one masked
/// load; the same
/// loop nest, thread split and k-block order as [`gemm_shifted`], so the bits do not depend on the thread
/// count (they may differ from [`gemm_shifted`]'s in the last place where the two cut tiles differently:
/// a one-column tile sums in another order).
///
/// Panics unless `isa` is AVX-512, and if an operand is too small.
#[allow(clippy::too_many_arguments)]
pub fn gemm_taps(isa: Isa, m: usize, a: &[f32], b: &TapB, c: &mut [f32], ldc: usize, epi: &Epilogue, threads: usize) {
    assert_eq!(isa, Isa::Avx512, "gemm_taps: masked loads need AVX-512");
    shifted_driver(isa, m, a, InPlace::Taps(b), c, ldc, epi, threads)
}

/// `C[m × rows·width]` (row stride `ldc`) = epilogue(A · B) with A packed by [`pack_a`] and B read in
/// place through [`ShiftedB`]: no packing, no scratch. Micro-tiles run along grid rows (on AVX2 and
/// scalar kernels an 8-wide grid's tile takes two rows; on AVX-512 a tile is 48 consecutive pixels across
/// rows when rows would leave ragged tiles, see `VecSegs`), each over every A panel; threads split
/// the tiles, or A's panels when there are fewer than twice as many tiles as threads. Each element sums its k blocks in the
/// same order whatever the thread count.
///
/// Panics if an operand is too small: `data` must hold every row's reads, whole 16-float vectors
/// included (`max(offs) + (rows - 1)·stride + width` rounded up to 16).
#[allow(clippy::too_many_arguments)]
pub fn gemm_shifted(
    isa: Isa,
    m: usize,
    a: &[f32],
    b: &ShiftedB,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
    threads: usize,
) {
    if m == 0 || b.rows * b.width == 0 || b.offs.is_empty() {
        return shifted_driver(isa, m, a, InPlace::Padded(b), c, ldc, epi, threads);
    }
    assert!(b.stride >= b.width, "gemm_shifted: grid rows overlap");
    let max_off = *b.offs.iter().max().expect("k > 0") as usize;
    assert!(
        max_off + (b.rows - 1) * b.stride + b.width.next_multiple_of(16) <= b.data.len(),
        "gemm_shifted: B is too small"
    );
    shifted_driver(isa, m, a, InPlace::Padded(b), c, ldc, epi, threads)
}

/// The loop nest of [`gemm_shifted`] and [`gemm_taps`] (each has checked its B).
#[allow(clippy::too_many_arguments)]
fn shifted_driver(
    isa: Isa,
    m: usize,
    a: &[f32],
    src: InPlace,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
    threads: usize,
) {
    // The grid: columns per row, rows, and the distance between rows in the data.
    let (k, width, rows, stride, offs, data) = match src {
        InPlace::Padded(b) => (b.offs.len(), b.width, b.rows, b.stride, b.offs, b.data),
        InPlace::Taps(b) => (b.offs.len(), b.w, b.rows, b.w, b.offs, b.data),
    };
    let taps = matches!(src, InPlace::Taps(_));
    let n = rows * width;
    if m == 0 || n == 0 {
        return;
    }
    assert!(k > 0, "gemm_shifted: k is 0");
    assert!(isa.available(), "gemm: {} is not available on this CPU", isa.name());
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm_shifted: C is too small");
    assert!(a.len() >= packed_len(m, k), "gemm_shifted: packed A is too small");
    if let Some(bias) = epi.bias {
        assert!(bias.len() >= m, "gemm_shifted: bias is too short");
    }
    let nr = isa.nr();
    // An 8-wide grid (a CIFAR ResNet's last stage) would fill half of each 16-column AVX2 tile; instead
    // one tile takes two grid rows, its second vector of B read one grid row further (`b_hi`) and its C
    // contiguous (rows of C are 8 apart).
    let pair = !taps && width == 8 && matches!(isa, Isa::Avx2 | Isa::Scalar);
    // On AVX-512 a tile is `nr` consecutive output pixels whatever the rows they lie in, each 16-lane
    // vector of B loaded in as many masked pieces as the rows it spans ([`VecSegs`]), when a row's last
    // tile would have less than two whole vectors (a width of 32 keeps its 32-pixel tiles: 1.09x faster
    // than 48-pixel ones across rows) and rows are wide enough that a vector spans at most `MAX_SEGS`.
    // Tap tiles always run across rows: each vector is one masked load whatever the rows it spans (32-wide
    // rows too: ResNet-20's 16 → 16 layer at 32 px, 0.965 of the padded per-row tiles' time, against
    // 1.08 in per-row tiles of its own).
    let flow = taps || (isa == Isa::Avx512 && matches!(width % nr, 1..=31) && 16 <= (MAX_SEGS - 1) * width + 1);
    // Tiles per grid row, for the per-row tiles (neither paired nor across rows).
    let per_row = width.div_ceil(nr);
    // Tap tiles are cut from runs of whole 16-pixel vectors, a run per part: the parts then split the
    // pixels evenly (256 pixels on 2 threads: 128 + 128, not 3 tiles of 48 against 2 and one of 16; an
    // 8 × 8 output 32 + 32, not its weight panels 6 : 5). Where the tiles are cut does not change a tap
    // tile's bits (its kernel sums each lane's k terms in order, one accumulator per lane) unless a tile
    // is one pixel (the row-vectorized kernel sums in another order): only when the last vector holds one
    // pixel, and such outputs keep the fixed grid. `ab_steps.py`, 6 rounds: ResNet-20 on 2 threads 0.951
    // (a second copy of the build 0.959), its 8-px steps 0.91-0.93; 1 thread 1.002; DenseNet-121 on 2
    // threads 1.006 (0.997).
    let vecs = n.div_ceil(16);
    let by_vecs = taps && n % 16 != 1;
    let widest = match src {
        InPlace::Taps(b) if b.wide => TAP_VECS,
        _ => 3,
    };
    let units = match (pair, flow) {
        _ if by_vecs => vecs,
        (true, _) => rows.div_ceil(2),
        (_, true) => n.div_ceil(nr),
        _ => rows * per_row,
    };
    let panels = m.div_ceil(MR);
    // Threads split the tiles, or the panels of A when there are too few tiles to share evenly (an 8 × 8
    // output is one 48-pixel tile and one of 16 on AVX-512: 3/4 of the work on one thread).
    let split_m = units < 2 * threads && panels >= 2 * units;
    let parts = match m * n * k >= 1 << 16 {
        true => threads.max(1).min(if split_m { panels } else { units }),
        false => 1,
    };
    let relu = epi.act == Some(UnaryOp::Relu);
    let other_act = epi.act.filter(|_| !relu);
    let shared = crate::parallel::SendPtr(c.as_mut_ptr());
    // Loop nest: k blocks, then blocks of A's panels, then this part's tiles, then the block's panels. An
    // A block (at most `MC` rows × `KC`) stays in L2 while every tile of the part passes over it; with
    // tiles outermost, each 16-pixel tile streamed all of A, which is why large weights are packed instead.
    let mc_panels = (MC / MR).max(1);
    let kc_max = match m * k <= WHOLE_K_MAX_WEIGHTS {
        true => k,
        false => KC,
    };
    crate::parallel::run(parts, &|part| {
        let (my_units, my_panels) = match split_m {
            true => (0..units, part * panels / parts..(part + 1) * panels / parts),
            false => (part * units / parts..(part + 1) * units / parts, 0..panels),
        };
        let mut k0 = 0;
        while k0 < k {
            let kc = kc_max.min(k - k0);
            let last = k0 + kc == k;
            for p_block in my_panels.clone().step_by(mc_panels) {
                // This part's tiles: (output row, column, columns).
                let tiles = my_units
                    .clone()
                    .filter(|&u| !by_vecs || vec_tile(my_units.clone(), u, widest).is_some())
                    .map(|u| {
                        if by_vecs {
                            let n0 = 16 * u;
                            let nv = vec_tile(my_units.clone(), u, widest).expect("filtered");
                            let cols = (16 * (u + nv)).min(n) - n0;
                            return (n0 / width, n0 % width, cols);
                        }
                        let (oy, t) = match (pair, flow) {
                            (true, _) => (2 * u, 0),
                            (_, true) => (u * nr / width, 0),
                            _ => (u / per_row, u % per_row),
                        };
                        let (ox, cols) = match (pair, flow) {
                            (true, _) => (0, if oy + 1 < rows { 16 } else { 8 }),
                            (_, true) => (u * nr % width, nr.min(n - u * nr)),
                            _ => (t * nr, nr.min(width - t * nr)),
                        };
                        (oy, ox, cols)
                    });
                for (oy, ox, cols) in tiles {
                    let n0 = oy * width + ox;
                    let (bp, segs, masks) = match src {
                        InPlace::Padded(b) => {
                            (data[oy * stride + ox..].as_ptr(), flow.then(|| b.vec_segs(n0, cols)), None)
                        }
                        // Where pixel n0's input under tap (0, 0) would be: up to `base` floats before the
                        // planes, formed without `add`'s in-bounds promise (only masked lanes read it).
                        InPlace::Taps(b) => {
                            (data.as_ptr().wrapping_add(n0).wrapping_sub(b.base), None, Some(b.tap_masks(n0, cols)))
                        }
                    };
                    let b_hi = if pair { stride } else { 8 };
                    for p in p_block..(p_block + mc_panels).min(my_panels.end) {
                        let (m0, rows) = (p * MR, MR.min(m - p * MR));
                        let tile = Tile {
                            k: kc,
                            a: a[(p * k + k0) * MR..].as_ptr(),
                            b: bp,
                            ldb: 0,
                            b_offs: offs[k0..].as_ptr(),
                            b_hi,
                            segs: segs.as_ref().map_or(std::ptr::null(), |s| s as *const VecSegs),
                            taps: masks.as_ref().map_or(std::ptr::null(), |t| t as *const TapMasks),
                            tap0: masks.as_ref().map_or(0, |t| k0 % t.taps),
                            // SAFETY (this and the kernel call): bounds asserted above; parts own disjoint
                            // tiles, or disjoint panels (rows), of C.
                            c: unsafe { shared.get().add(m0 * ldc + n0) },
                            ldc,
                            rows,
                            cols,
                            ..block_epilogue(epi, m0, k0, last)
                        };
                        unsafe { run_tile(isa, &tile, other_act.filter(|_| last)) };
                    }
                }
            }
            k0 += kc;
        }
    });
}

/// The vectors of the tap tile that starts at 16-pixel vector `u` of a part's run of vectors, or `None`
/// when no tile starts there: tiles of `widest` vectors from the run's start, except that a run whose
/// last tile would be one vector (6 accumulators, one FMA chain per row: latency-bound) ends in two
/// tiles of about half of widest + 1 (3 + 1 becomes 2 + 2, 4 + 1 becomes 3 + 2). `ab_steps.py`, 6 rounds:
/// - widest 3, against 48-pixel tiles and a 16-pixel one per remainder: ResNet-20 at batch 8 on 1
///   thread, its 8-px layers (64 pixels: 32 + 32, not 48 + 16) 0.94-0.95, its 16-px ones (3 · 4 + 2 + 2
///   vectors) 0.97-0.98, the network 0.974 (a control copy 0.996);
/// - widest 4 (`TAP_VECS`, where `TapB::wide`) against 3: 6 rows × 4 vectors is 24 accumulators for 10
///   loads a step (4 of B, 6 broadcasts of A), against 18 for 9. ResNet-20 on 1 thread 0.932 at batch 8
///   and 0.936 at batch 1 (controls 0.995, 0.999), every stage 0.91-0.95; on 2 threads 0.930 and
///   0.953. DenseNet-121's 14-px growth layers, whose B does not fit (1152 rows), ran 1.02 at 4 and stay
///   at 3.
fn vec_tile(run: std::ops::Range<usize>, u: usize, widest: usize) -> Option<usize> {
    let (at, len) = (u - run.start, run.len());
    let tail = if len > widest && len % widest == 1 { len - widest - 1 } else { len };
    if at < tail {
        return (at % widest == 0).then(|| widest.min(tail - at));
    }
    // The last widest + 1 vectors: two tiles, the wider first.
    let first = (widest + 2) / 2;
    match at - tail {
        0 => Some(first),
        x if x == first => Some(widest + 1 - first),
        _ => None,
    }
}

/// [`gemm_packed`] with B a matrix view (read in place unless transposed).
#[allow(clippy::too_many_arguments)]
pub fn gemm_matrix_b(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
    threads: usize,
    scratch: &mut [f32],
) {
    assert!(b.last(k, n) < b.data.len().max(1) || k == 0 || n == 0, "gemm: B is too small");
    gemm_packed(isa, m, n, k, a, &MatB(b), c, ldc, epi, threads, scratch)
}

/// C[m×n] (row stride `ldc`) = alpha · A[m×k] · B[k×n] + beta · C.
///
/// The general entry (any strides, transposes, alpha and beta); it packs A and allocates its scratch per
/// call. With `beta == 0` the old contents of C are ignored (NaNs in them do not leak).
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
    sgemm_on(Isa::detect(), m, n, k, alpha, a, b, beta, c, ldc, threads)
}

/// [`sgemm`] on a chosen instruction set (tests compare every available one).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_on(
    isa: Isa,
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
    if beta != 0.0 && beta != 1.0 {
        for i in 0..m {
            c[i * ldc..i * ldc + n].iter_mut().for_each(|v| *v *= beta);
        }
    }
    let mut packed = vec![0.0; packed_len(m, k)];
    pack_a(m, k, a, alpha, &mut packed);
    let mut scratch = vec![0.0; scratch_len(isa, threads)];
    let epi = Epilogue { accumulate: beta != 0.0, ..Default::default() };
    let mut go = || gemm_packed(isa, m, n, k, &packed, &MatB(b), c, ldc, &epi, threads, &mut scratch);
    // Without a session's pool (training, tests), parts run on a process-wide pool of `threads`.
    if threads > 1 && crate::parallel::current_threads() == 1 {
        crate::parallel::global(threads).install(go)
    } else {
        go()
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

    /// The epilogue activations the tests use, in plain Rust.
    fn activate(act: Option<UnaryOp>, e: f32) -> f32 {
        match act {
            Some(UnaryOp::Relu) => e.max(0.0),
            Some(UnaryOp::Sigmoid) => 1.0 / (1.0 + (-e).exp()),
            _ => e,
        }
    }

    #[test]
    fn matches_naive_with_transposes_and_beta_on_every_isa() {
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 65),
            (64, 100, 3),
            (1, 1000, 512),
            (9, 49, 300),
            // One-column tiles with k = 1 and 2: only the masked last step, or one step before it.
            (9, 49, 1),
            (7, 33, 2),
            (8, 97, 257),
            // The few-column path (gemv), sequential and split over threads.
            (37, 3, 129),
            (300, 1, 2048),
            (129, 4, 300),
            (1, 1000, 2048),
            (3, 700, 64),
            // Few rows, k in two segments; and too many columns for the segments' partial sums.
            (4, 300, 1500),
            (1, 4200, 1024),
        ];
        for isa in Isa::all_available() {
            for &(m, n, k) in &shapes {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let want = naive(m, n, k, &a, ta, &b, tb);
                    let am = MatRef { data: &a, ld: if ta { m } else { k }, trans: ta };
                    let bm = MatRef { data: &b, ld: if tb { k } else { n }, trans: tb };
                    let mut c = vec![f32::NAN; m * n];
                    sgemm_on(isa, m, n, k, 1.0, am, bm, 0.0, &mut c, n, 2);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{isa:?} {m}x{n}x{k} {ta} {tb}: {x} vs {y}");
                    }
                    let mut c2 = vec![1.0; m * n];
                    sgemm_on(isa, m, n, k, 0.5, am, bm, 2.0, &mut c2, n, 1);
                    for (x, y) in c2.iter().zip(&want) {
                        assert!((x - (0.5 * y + 2.0)).abs() <= 1e-4 + 1e-4 * y.abs(), "{isa:?} beta");
                    }
                }
            }
        }
    }

    /// The fused epilogue (accumulate, bias per row, Relu or another activation) and a C wider than n,
    /// with 1, 2 and 3 threads splitting either columns or rows: every split gives the same bits.
    #[test]
    fn epilogue_and_thread_splits() {
        for isa in Isa::all_available() {
            // (600, 49, 300) and (500, 300, 70) have several blocks of `MC` rows, split by rows and by
            // columns; the last five take the few-column and few-row paths, the last two with k in two
            // segments (a classifier's weights streamed by whole rows, 1 and 3 rows of A).
            for &(m, n, k) in &[
                (5, 7, 3),
                (24, 200, 600),
                (200, 9, 40),
                (13, 49, 1000),
                (600, 49, 300),
                (500, 300, 70),
                (300, 3, 200),
                (1000, 1, 64),
                (2, 1000, 256),
                (1, 1000, 2048),
                (3, 500, 1111),
                // k ≤ 64 and a C of 512 KiB: the blocks run panel by panel (`panels_outer`).
                (70, 1900, 64),
            ] {
                let ldc = n + 3;
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
                let bias: Vec<f32> = (0..m).map(|i| i as f32 - 3.0).collect();
                let want = naive(m, n, k, &a, false, &b, false);
                let mut packed = vec![0.0; packed_len(m, k)];
                pack_a(m, k, MatRef::new(&a, k), 1.0, &mut packed);
                let mut first: Option<Vec<f32>> = None;
                for threads in 1..=3 {
                    let pool = crate::parallel::ThreadPool::new(threads).unwrap();
                    for act in [Some(UnaryOp::Relu), Some(UnaryOp::Sigmoid), None] {
                        let mut c: Vec<f32> = (0..m * ldc).map(|i| (i % 5) as f32).collect();
                        let skip = c.clone();
                        let mut scratch = vec![0.0; scratch_len(isa, threads)];
                        let epi = Epilogue { accumulate: true, bias: Some(&bias), act };
                        let b = MatB(MatRef::new(&b, n));
                        pool.install(|| {
                            gemm_packed(isa, m, n, k, &packed, &b, &mut c, ldc, &epi, threads, &mut scratch)
                        });
                        for i in 0..m {
                            for j in 0..n {
                                let e = activate(act, want[i * n + j] + skip[i * ldc + j] + bias[i]);
                                let x = c[i * ldc + j];
                                assert!(
                                    (x - e).abs() <= 1e-3 + 1e-4 * e.abs(),
                                    "{isa:?} {m}x{n}x{k} t{threads}: {x} vs {e}"
                                );
                            }
                            // The padding columns are never written.
                            assert_eq!(
                                &c[i * ldc + n..i * ldc + ldc.min(c.len() - i * ldc)],
                                &skip[i * ldc + n..i * ldc + ldc.min(c.len() - i * ldc)]
                            );
                        }
                        if act == Some(UnaryOp::Relu) {
                            match &first {
                                None => first = Some(c.clone()),
                                Some(f) => assert_eq!(f, &c, "{isa:?}: thread count changed the bits"),
                            }
                        }
                    }
                }
            }
        }
    }

    /// `gemm_shifted` against a naive product over the same shifted views: grids narrower and wider than
    /// a tile, k across several blocks, ragged panels, every epilogue, 1-3 threads with the same bits.
    #[test]
    fn shifted_b_matches_naive_on_every_isa() {
        for isa in Isa::all_available() {
            for &(m, k, rows, width, stride) in &[
                (5usize, 9usize, 3usize, 7usize, 9usize),
                (16, 27, 4, 16, 18),
                (13, 300, 2, 37, 40),
                (6, 600, 5, 8, 10),
                (20, 4, 1, 50, 50),
                (7, 20, 1, 8, 8),
                // One-column tiles at the end of each grid row on AVX2 (a 7 × 7 output is 3 tiles of 16 and
                // 1); on AVX-512 these flow across rows (48 + 48 + 2).
                (9, 300, 2, 49, 51),
                (6, 27, 3, 17, 19),
                // More rows than one block of A (MC): blocks of panels, the last one ragged.
                (250, 300, 2, 20, 22),
                // AVX-512 tiles across rows (`VecSegs`): DenseNet's 14, 28 and 56, a vector over 4 rows of 5,
                // and 4 (too narrow: a tile per row).
                (32, 50, 3, 14, 16),
                (8, 40, 2, 28, 30),
                (12, 30, 2, 56, 58),
                (6, 20, 6, 5, 7),
                (7, 11, 9, 4, 6),
                // AVX-512 per-row tiles: one 32-pixel tile a row, and 48 + 32 split between threads.
                (8, 27, 3, 32, 34),
                (7, 60, 2, 80, 82),
                // A 7 × 7 output across rows: 48 + a 1-pixel tile; and 3 vectors of 4 segments each (the
                // tile at pixel 48 of a 7-wide grid starts at column 6: 1 + 7 + 7 + 1), over threads.
                (9, 300, 7, 7, 9),
                (6, 120, 14, 7, 9),
                // Threads splitting A's panels (too few tiles): AVX2's 8-wide pairs, and a part of more
                // than one MC block starting past panel 0.
                (48, 300, 4, 8, 10),
                (500, 300, 1, 20, 22),
            ] {
                // Row p of B starts at offs[p]: taps spread over `data` like a 3-wide kernel over planes.
                let offs: Vec<u32> = (0..k).map(|p| ((p / 3) * (rows + 2) * stride + p % 3) as u32).collect();
                let len = *offs.iter().max().unwrap() as usize + (rows - 1) * stride + width.next_multiple_of(16);
                let data: Vec<f32> = (0..len).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 9.0).collect();
                let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.25 - 1.0).collect();
                let n = rows * width;
                let mut packed = vec![0.0; packed_len(m, k)];
                pack_a(m, k, MatRef::new(&a, k), 1.0, &mut packed);
                let b = ShiftedB { data: &data, offs: &offs, width, rows, stride };
                let ldc = n + 2;
                let old: Vec<f32> = (0..m * ldc).map(|i| (i % 3) as f32).collect();
                let mut first: Option<Vec<f32>> = None;
                for threads in 1..=3 {
                    let pool = crate::parallel::ThreadPool::new(threads).unwrap();
                    for act in [Some(UnaryOp::Relu), Some(UnaryOp::Sigmoid), None] {
                        let mut c = old.clone();
                        let epi = Epilogue { accumulate: true, bias: Some(&bias), act };
                        pool.install(|| gemm_shifted(isa, m, &packed, &b, &mut c, ldc, &epi, threads));
                        for i in 0..m {
                            for j in 0..n {
                                let col = (j / width) * stride + j % width;
                                let dot: f64 =
                                    (0..k).map(|p| a[i * k + p] as f64 * data[offs[p] as usize + col] as f64).sum();
                                let e = activate(act, dot as f32 + old[i * ldc + j] + bias[i]);
                                let x = c[i * ldc + j];
                                assert!(
                                    (x - e).abs() <= 1e-3 + 1e-4 * e.abs(),
                                    "{isa:?} {m}x{k} {rows}x{width}: {x} vs {e}"
                                );
                            }
                            assert_eq!(
                                &c[i * ldc + n..(i + 1) * ldc],
                                &old[i * ldc + n..(i + 1) * ldc],
                                "padding written"
                            );
                        }
                        if act.is_none() {
                            match &first {
                                None => first = Some(c.clone()),
                                Some(f) => assert_eq!(f, &c, "{isa:?}: thread count changed the bits"),
                            }
                        }
                    }
                }
            }
        }
    }

    /// The loads of a tile across rows: every lane of every vector in exactly one segment, at the offset
    /// of its pixel; a 7-wide grid needs all four segments.
    #[test]
    fn vec_segs_cover_each_lane_once() {
        let data = [0.0f32; 1];
        for (width, stride) in [(7usize, 9usize), (8, 10), (14, 16), (56, 58), (5, 5)] {
            let b = ShiftedB { data: &data, offs: &[0], width, rows: 40, stride };
            let at = |q: usize| ((q / width) * stride + q % width) as isize;
            let mut most = 0;
            for n0 in (0..200).step_by(48) {
                let cols = 48.min(40 * width - n0);
                let s = b.vec_segs(n0, cols);
                most = most.max(s.count);
                for v in 0..3 {
                    for j in 0..16 {
                        let hits: Vec<usize> = (0..MAX_SEGS).filter(|&k| s.masks[v][k] >> j & 1 == 1).collect();
                        let q = n0 + 16 * v + j;
                        if q >= n0 + cols {
                            assert!(hits.is_empty(), "lane past the tile is loaded");
                            continue;
                        }
                        assert_eq!(hits.len(), 1, "width {width} pixel {q}");
                        assert_eq!(s.offs[v][hits[0]] + j as isize, at(q) - at(n0), "width {width} pixel {q}");
                    }
                }
            }
            let expect = if width == 7 || width == 5 { 4 } else { 2 };
            assert_eq!(most, expect, "width {width}");
        }
    }

    #[test]
    fn vec_tiles_cover_a_run_once_without_lone_vectors() {
        for (start, widest) in [(0usize, 3), (5, 3), (0, 4), (3, 4)] {
            for len in 1..40 {
                let run = start..start + len;
                let mut next = start;
                let mut sizes = vec![];
                for u in run.clone() {
                    if let Some(nv) = vec_tile(run.clone(), u, widest) {
                        assert_eq!(u, next, "run {run:?}: a tile at {u}, the last one ended at {next}");
                        sizes.push(nv);
                        next = u + nv;
                    }
                }
                assert_eq!(next, run.end, "run {run:?}: tiles {sizes:?}");
                assert!(sizes.iter().all(|&s| (1..=widest).contains(&s)), "run {run:?}: {sizes:?}");
                assert!(len == 1 || !sizes.contains(&1), "run {run:?}: {sizes:?}");
            }
        }
    }

    /// `gemm_taps` against a direct convolution, with weights under [`WHOLE_K_MAX_WEIGHTS`] (one k
    /// block) and over it (k blocks of [`KC`] that start mid-kernel: 256 = 28 · 9 + 4, so a block's first
    /// row is tap 4, 8, ...), over 1 to 3 threads with the same bits, and tiles of 4, 3 and 2 vectors and
    /// of one column.
    #[test]
    fn taps_match_a_direct_convolution_in_one_or_many_k_blocks() {
        if !Isa::Avx512.available() {
            return;
        }
        // (output channels, input channels, h, w, whether B fits a 4-vector tile): 20 · 300 · 9 = 54 000
        // weights (one block); 26 · 300 · 9 = 70 200 (eleven blocks); 64 pixels in one 4-vector tile;
        // 7 × 7 (48 + 1: a one-column tile); 135 pixels (9 vectors: 4 + 3 + 2).
        for (m, ch, h, w, wide) in [
            (20usize, 300usize, 5usize, 13usize, false),
            (26, 300, 5, 13, false),
            (7, 40, 8, 8, true),
            (9, 30, 7, 7, true),
            (10, 8, 9, 15, true),
        ] {
            let k = ch * 9;
            let data: Vec<f32> = (0..ch * h * w).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 9.0).collect();
            let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.25 - 1.0).collect();
            let mut packed = vec![0.0; packed_len(m, k)];
            pack_a(m, k, MatRef::new(&a, k), 1.0, &mut packed);
            let mut scratch = vec![0.0; k];
            let b = TapB::new(&data, ch, h, w, [3, 3], [1, 1], [1, 1], h, &mut scratch);
            assert_eq!(b.wide, wide, "{ch} channels of {h} x {w}");
            let n = h * w;
            let mut first: Option<Vec<f32>> = None;
            for threads in 1..=3 {
                let pool = crate::parallel::ThreadPool::new(threads).unwrap();
                let mut c = vec![f32::NAN; m * n];
                let epi = Epilogue { accumulate: false, bias: Some(&bias), act: Some(UnaryOp::Relu) };
                pool.install(|| gemm_taps(Isa::Avx512, m, &packed, &b, &mut c, n, &epi, threads));
                for i in 0..m {
                    for q in 0..n {
                        let (y, x) = ((q / w) as isize, (q % w) as isize);
                        let mut dot = 0f64;
                        for p in 0..k {
                            let (cc, u, v) = (p / 9, (p % 9 / 3) as isize, (p % 3) as isize);
                            let (iy, ix) = (y + u - 1, x + v - 1);
                            if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                let at = cc * h * w + iy as usize * w + ix as usize;
                                dot += a[i * k + p] as f64 * data[at] as f64;
                            }
                        }
                        let want = (dot as f32 + bias[i]).max(0.0);
                        let got = c[i * n + q];
                        assert!(
                            (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                            "m {m} ch {ch} ({i}, {q}): {got} vs {want}"
                        );
                    }
                }
                match &first {
                    None => first = Some(c),
                    Some(f) => assert!(f.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()), "threads {threads}"),
                }
            }
        }
    }

    /// A tap tile's masks let a lane through exactly when its input pixel under that tap lies in the
    /// image (checked pixel by pixel), for tiles starting anywhere, across rows of widths 1 to 33, with
    /// dilations and padding wider than the kernel's reach on one side.
    #[test]
    fn tap_masks_match_the_image_bounds() {
        let data = vec![0.0f32; 4 * 40 * 40];
        let mut scratch = vec![0.0f32; 4 * 25];
        for (w, h, kernel, dil, top, left) in [
            (7, 7, [3, 3], [1, 1], 1, 1),
            (8, 5, [3, 3], [1, 1], 1, 1),
            (1, 9, [3, 1], [1, 1], 1, 0),
            (33, 3, [5, 5], [1, 1], 2, 2),
            (16, 6, [3, 3], [2, 2], 2, 2),
            (10, 4, [3, 2], [1, 1], 0, 1),
            (12, 12, [1, 3], [1, 3], 3, 3),
        ] {
            let rows = h + 1; // one row more than the input: the last row reads only the bottom padding
            let b = TapB::new(&data, 4, h, w, kernel, dil, [top, left], rows, &mut scratch);
            let n = rows * w;
            for n0 in 0..n {
                let cols = (16 * TAP_VECS).min(n - n0);
                let t = b.tap_masks(n0, cols);
                assert_eq!(t.taps, kernel[0] * kernel[1]);
                for u in 0..kernel[0] {
                    for v in 0..kernel[1] {
                        for lane in 0..16 * TAP_VECS {
                            let got = t.masks[u * kernel[1] + v][lane / 16] >> (lane % 16) & 1 == 1;
                            let q = n0 + lane;
                            let (y, x) = (
                                (q / w + u * dil[0]) as isize - top as isize,
                                (q % w + v * dil[1]) as isize - left as isize,
                            );
                            let want = lane < cols && (0..h as isize).contains(&y) && (0..w as isize).contains(&x);
                            assert_eq!(
                                got, want,
                                "w {w} h {h} {kernel:?} {dil:?} tile {n0} lane {lane} tap ({u}, {v})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// NaN in A or B reaches C; NaN in an old C does not when not accumulating.
    #[test]
    fn nan_propagates_and_stale_c_does_not_leak() {
        for isa in Isa::all_available() {
            let (m, n, k) = (3, 20, 4);
            let mut a = vec![1.0; m * k];
            a[k] = f32::NAN; // row 1
            let b = vec![1.0; k * n];
            let mut c = vec![f32::NAN; m * n];
            sgemm_on(isa, m, n, k, 1.0, MatRef::new(&a, k), MatRef::new(&b, n), 0.0, &mut c, n, 1);
            assert!(c[..n].iter().all(|&v| v == 4.0), "{isa:?}");
            assert!(c[n..2 * n].iter().all(|v| v.is_nan()), "{isa:?}");
            assert!(c[2 * n..].iter().all(|&v| v == 4.0), "{isa:?}");
        }
    }
}
