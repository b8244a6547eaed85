//! Register-blocked micro-kernels: one call computes a tile of C, at most `MR` rows by `isa.nr()`
//! columns (or, on AVX-512, a tall tile of 2-3 whole panels by at most 16 columns, or a [`TapMasks`]
//! tile of up to [`TAP_VECS`] vectors), over a block of k.
//!
//! Math: C[r, j] = (C[r, j] if accumulate) + Σ_p A[p][r] · B[p][j] (+ bias[r]), then max(·, 0) when
//! `relu`, for r < rows and j < cols. A is an `MR`-row panel (k-major: `MR` floats per p); row p of B
//! starts at `b + p·ldb`, or at `b + b_offs[p]` when the tile carries row offsets (a convolution's
//! shifted views of its padded input, or of its unpadded input under per-tap masks, read in place: see
//! `gemm_shifted`, `gemm_taps`). Accumulators live in registers for the whole k loop. Rows of B are read
//! whole vectors at a time (up to `cols` rounded up to the vector width — the caller guarantees that
//! memory, whose extra lanes compute values nobody stores), except in an AVX-512 tile across rows
//! ([`VecSegs`]), whose vectors are up to 4 masked loads each, and in a [`TapMasks`] tile, whose vectors
//! are one masked load each from rows that may start outside B (its `b` is never dereferenced unmasked);
//! C is stored under a mask, so a ragged edge of C is never written past `cols`.
//!
//! This module owns the unsafe SIMD; its only entry is [`run`], which the safe driver in `gemm` calls
//! after checking every bound.

use super::isa::Isa;
use super::MR;

/// One micro-tile's operands (raw pointers, checked by the caller).
pub(super) struct Tile {
    pub k: usize,
    pub a: *const f32,
    pub b: *const f32,
    pub ldb: usize,
    /// Null, or `k` offsets: row p of B starts at `b + b_offs[p]` (then `ldb` is unused).
    pub b_offs: *const u32,
    /// Null, or the A panel the next tile will read (at least `k·MR` floats; for a tall tile, as many
    /// panels as it has, `a_stride` apart): the full AVX2 tile and the AVX-512 tiles ask for it into L2,
    /// three cache lines every 8 steps of their k loop (up to the last multiple of 8), so that the first
    /// pass over a block of weights streams them from L3 or memory behind the arithmetic instead of
    /// stalling on each panel (`run_part` sets it on that pass only). Other kernels ignore it.
    pub a_next: *const f32,
    /// Where a row of B continues after its first 8 columns, from the row's start: 8 (contiguous), or
    /// further when a tile covers two rows of an 8-wide grid (`gemm_shifted`). Not 8 only on AVX2 and
    /// scalar kernels (AVX-512 loads 16 columns at once).
    pub b_hi: usize,
    /// Null, or how each 16-lane vector of a row of B is loaded (AVX-512 kernels only; needs `b_offs`):
    /// a tile of consecutive output pixels that spans rows of a convolution's padded input.
    pub segs: *const VecSegs,
    /// Null, or which lanes of B each kernel tap reads (AVX-512 kernels only; needs `b_offs`): a
    /// convolution read in place from unpadded planes (its input, or its phase planes), see
    /// [`TapMasks`]. Row p of B is tap `(tap0 + p) % taps`.
    pub taps: *const TapMasks,
    pub tap0: usize,
    pub c: *mut f32,
    pub ldc: usize,
    /// Floats from one A panel to the next, for a tall AVX-512 tile (`rows` > MR: 2 or 3 whole panels
    /// down one 16-column vector of B, see [`TALL_PANELS`]).
    pub a_stride: usize,
    /// 1..=MR, or a multiple of MR up to `TALL_PANELS`·MR for a tall tile
    pub rows: usize,
    /// 1..=isa.nr()
    pub cols: usize,
    pub accumulate: bool,
    /// Null, or the bias of the tile's first row.
    pub bias: *const f32,
    pub relu: bool,
}

/// The loads that make each 16-lane vector of a tile's B row when its lanes lie in up to [`MAX_SEGS`]
/// runs of memory: lane j of vector v is `row[offs[v][s] + j]` for the segment s whose `masks[v][s]` has
/// bit j (lanes in no mask are 0 and never read). `count` is the most segments any vector uses.
///
/// `gemm_shifted` on AVX-512 builds these so that one tile covers 48 consecutive output pixels across
/// the rows of an output that does not split into whole tiles (ResNet-20's 16 and 8, DenseNet's 56 to 7): a tile
/// per output row left 16 or 8 columns of a 48-column tile, 6 of its 18 accumulators, in FMA chains too
/// few to cover the latency.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct VecSegs {
    pub offs: [[isize; MAX_SEGS]; 3],
    pub masks: [[u16; MAX_SEGS]; 3],
    pub count: usize,
}

/// Most rows one 16-lane vector of a [`VecSegs`] tile spans (a 7-pixel output: 1 + 7 + 7 + 1).
pub(super) const MAX_SEGS: usize = 4;

/// Most kernel taps a convolution read under masks has (a 5 × 5 kernel; see `gemm_taps`).
pub const MAX_TAPS: usize = 25;

/// The lanes a tile of a convolution reads from its unpadded planes (its input at stride 1, or its phase
/// planes), per kernel tap: lane j of vector v under tap t is `row + 16v + j` when bit j of
/// `masks[t][v]` is set, and 0 otherwise (its input pixel lies in the padding). Consecutive output pixels
/// read consecutive plane pixels under every tap when the planes are as wide as the output, across rows
/// too, so each vector is one masked load; the masks (a tap's column and row bounds) take the place of a
/// zero-padded copy of the input.
#[derive(Clone, Copy, Debug)]
pub(super) struct TapMasks {
    pub masks: [[u16; TAP_VECS]; MAX_TAPS],
    pub taps: usize,
}

/// Most 16-lane vectors a [`TapMasks`] tile has: 6 rows × 4 vectors is 24 accumulators, 4 vectors of B
/// and a broadcast of A, 29 of AVX-512's 32 registers.
pub const TAP_VECS: usize = 4;

/// Most panels of A a tall tile covers. A tile of one 16-column vector (a product 16 columns wide, such
/// as a Winograd product over 16 tiles, or the last micro-tile of a row) has only 6 accumulators on
/// AVX-512, one FMA chain per row, too few to cover the FMA latency; 3 panels make 18.
pub(super) const TALL_PANELS: usize = 3;

/// Runs the micro-kernel of `isa` on `t`.
///
/// # Safety
/// `isa` must be available on this CPU; `t.a` must hold `t.k · MR` floats (a tall tile: that at each of
/// its `rows / MR` panels, `a_stride` apart), every row p < k of B must
/// hold `t.cols` rounded up to `isa`'s vector width (8 or 16) readable floats where it starts (see
/// [`Tile::b_offs`]; `b_offs`, if not null, holds `t.k` offsets) — or, with `b_hi != 8`, 8 floats there
/// and `t.cols - 8` rounded up to 8 at `b_hi` further; or, with `segs` (AVX-512, `b_offs` set, at most
/// `MR` rows), `row + offs[v][s] + j` readable for every lane j in `masks[v][s]`, and nothing else; or,
/// with `taps` (AVX-512, `b_offs` set, `segs` null, at most `MR` rows; `taps` pointing to a live
/// [`TapMasks`] with 1 ≤ `taps.taps` ≤ [`MAX_TAPS`] and `tap0 < taps.taps`), `row + 16v + j` readable for
/// every lane j in the row's tap's `masks[v]`, and nothing else (`row` and `b` may then lie outside any
/// allocation: such a tile's rows are formed with wrapping arithmetic, never through `b_row`) —,
/// C must hold `t.cols` floats at `t.c + r·t.ldc` for r < rows, `t.bias` (if not null) `t.rows` floats,
/// and `t.a_next` (if not null) `t.k · MR` floats of one allocation at each of the tile's panels
/// (`a_stride` apart in a tall tile).
pub(super) unsafe fn run(isa: Isa, t: &Tile) {
    debug_assert!(t.rows >= 1 && t.cols >= 1 && t.cols <= if t.taps.is_null() { isa.nr() } else { 16 * TAP_VECS });
    debug_assert!(
        t.rows <= MR
            || (isa == Isa::Avx512
                && t.rows.is_multiple_of(MR)
                && t.rows <= TALL_PANELS * MR
                && (2..=16).contains(&t.cols)
                && t.segs.is_null())
    );
    debug_assert!(
        t.taps.is_null()
            || (isa == Isa::Avx512
                && t.rows <= MR
                && t.segs.is_null()
                && !t.b_offs.is_null()
                && unsafe { (1..=MAX_TAPS).contains(&(*t.taps).taps) && t.tap0 < (*t.taps).taps })
    );
    match isa {
        Isa::Scalar => scalar(t),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::avx2(t) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::avx512(t) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar(t),
    }
}

/// Where row `p` of the tile's B starts.
///
/// # Safety
/// `p < t.k`, and `t.b_offs` (if not null) holds `t.k` offsets.
#[inline(always)]
unsafe fn b_row(t: &Tile, p: usize) -> *const f32 {
    unsafe {
        if t.b_offs.is_null() {
            b_row_of::<false>(t, p)
        } else {
            b_row_of::<true>(t, p)
        }
    }
}

/// [`b_row`] with the layout known at compile time (the kernels' loops are instantiated for both).
///
/// # Safety
/// As [`b_row`]; with `OFFS`, `t.b_offs` is not null.
#[inline(always)]
unsafe fn b_row_of<const OFFS: bool>(t: &Tile, p: usize) -> *const f32 {
    unsafe {
        if OFFS {
            t.b.add(*t.b_offs.add(p) as usize)
        } else {
            t.b.add(p * t.ldb)
        }
    }
}

/// The portable reference: the same contract in plain Rust (16 columns).
fn scalar(t: &Tile) {
    const NR: usize = 16;
    let mut acc = [[0f32; NR]; MR];
    for p in 0..t.k {
        // SAFETY: bounds are the caller's contract (see `run`).
        let (a, lo, hi) = unsafe {
            let row = b_row(t, p);
            (
                std::slice::from_raw_parts(t.a.add(p * MR), MR),
                std::slice::from_raw_parts(row, t.cols.min(8)),
                // Only formed when the tile has columns past 8: `row + b_hi` may lie past B otherwise.
                if t.cols > 8 { std::slice::from_raw_parts(row.add(t.b_hi), t.cols - 8) } else { &[] },
            )
        };
        for (r, row) in acc.iter_mut().enumerate().take(t.rows) {
            let av = a[r];
            for (o, &bv) in row.iter_mut().zip(lo.iter().chain(hi)) {
                *o += av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        // SAFETY: as above.
        let c = unsafe { std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), t.cols) };
        let bias = if t.bias.is_null() { 0.0 } else { unsafe { *t.bias.add(r) } };
        for (o, &v) in c.iter_mut().zip(row) {
            let mut x = if t.accumulate { v + *o } else { v };
            x += bias;
            if t.relu && x <= 0.0 {
                x = 0.0;
            }
            *o = x;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{b_row_of, Tile, MR, TAP_VECS};

    use std::arch::x86_64::*;

    /// `$by_nv!(R)` with R the tile's rows as a constant (1 to `MR`): the dispatchers' outer match.
    macro_rules! by_rows {
        ($t:expr, $by_nv:ident) => {
            match $t.rows {
                1 => $by_nv!(1),
                2 => $by_nv!(2),
                3 => $by_nv!(3),
                4 => $by_nv!(4),
                5 => $by_nv!(5),
                _ => $by_nv!(6),
            }
        };
    }

    /// Dispatches on (rows, vectors per row) to a kernel whose loops are fully unrolled.
    pub(super) unsafe fn avx512(t: &Tile) {
        if !t.taps.is_null() {
            return unsafe {
                match t.cols == 1 && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    true => k256_col1::<true, true>(t),
                    false => avx512_of::<true, true>(t),
                }
            };
        }
        if t.cols == 1 && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // One column (the 49th pixel of a 7 × 7 output): vectorized along the panel's rows (see
            // `k256_col1`). A tile across rows reads its one pixel at the row's start (offset 0).
            return unsafe {
                match t.b_offs.is_null() {
                    true => k256_col1::<false, false>(t),
                    false => k256_col1::<true, false>(t),
                }
            };
        }
        if !t.segs.is_null() {
            return unsafe { avx512_segs(t) };
        }
        if t.b_offs.is_null() {
            unsafe { avx512_of::<false, false>(t) }
        } else {
            unsafe { avx512_of::<true, false>(t) }
        }
    }

    /// Dispatches a tile on (rows, vectors); with TAP, a [`TapMasks`] tile (never a tall one).
    unsafe fn avx512_of<const OFFS: bool, const TAP: bool>(t: &Tile) {
        assert_eq!(t.b_hi, 8, "AVX-512 tiles read rows of B contiguously");
        if !TAP && t.rows > MR {
            // A tall tile: whole panels down one vector of B.
            return unsafe {
                match t.rows / MR {
                    2 => k512_tall::<2, OFFS>(t),
                    _ => k512_tall::<3, OFFS>(t),
                }
            };
        }
        let nv = t.cols.div_ceil(16);
        macro_rules! by_nv {
            ($r:literal) => {
                match nv {
                    1 => k512::<$r, 1, OFFS, 0, TAP>(t),
                    2 => k512::<$r, 2, OFFS, 0, TAP>(t),
                    3 => k512::<$r, 3, OFFS, 0, TAP>(t),
                    // Only tap tiles are 4 vectors wide (see `TAP_VECS`).
                    _ => k512::<$r, 4, OFFS, 0, TAP>(t),
                }
            };
        }
        unsafe { by_rows!(t, by_nv) }
    }

    /// Dispatches a [`VecSegs`] tile on (rows, vectors, segments).
    unsafe fn avx512_segs(t: &Tile) {
        assert!(!t.b_offs.is_null(), "segmented tiles read shifted rows");
        let nv = t.cols.div_ceil(16);
        let segs = unsafe { (*t.segs).count };
        macro_rules! by_seg {
            ($r:literal, $v:literal) => {
                match segs {
                    0 | 1 => k512::<$r, $v, true, 1, false>(t),
                    2 => k512::<$r, $v, true, 2, false>(t),
                    3 => k512::<$r, $v, true, 3, false>(t),
                    _ => k512::<$r, $v, true, 4, false>(t),
                }
            };
        }
        macro_rules! by_nv {
            ($r:literal) => {
                match nv {
                    1 => by_seg!($r, 1),
                    2 => by_seg!($r, 2),
                    _ => by_seg!($r, 3),
                }
            };
        }
        unsafe { by_rows!(t, by_nv) }
    }

    /// R rows × NV vectors of 16: up to 18 accumulators (24 in a tap tile of 4 vectors), NV loads of B
    /// and R broadcasts of A per step.
    /// With SEG > 0 each vector of B is SEG masked loads from `t.segs` (see [`super::VecSegs`]); with
    /// TAP, one load under the mask of the row's kernel tap (see [`super::TapMasks`]).
    #[target_feature(enable = "avx512f")]
    unsafe fn k512<const R: usize, const NV: usize, const OFFS: bool, const SEG: usize, const TAP: bool>(t: &Tile) {
        let rem = t.cols - (NV - 1) * 16;
        let mask: __mmask16 = if rem >= 16 { 0xffff } else { (1u16 << rem) - 1 };
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        // With TAP: the masks, how many taps there are, and the tap of the step about to run.
        let (tap_masks, taps) = match TAP {
            true => unsafe { ((*t.taps).masks.as_ptr(), (*t.taps).taps) },
            false => (std::ptr::null(), 1),
        };
        let mut tap = t.tap0;
        unsafe {
            prefetch_c(t);
            let step = |acc: &mut [[__m512; NV]; R], p: usize, tap: &mut usize| {
                let a = t.a.add(p * MR);
                let mut bv = [_mm512_setzero_ps(); NV];
                if TAP {
                    // The row's start may lie outside the input (a tap in the padding): only the lanes
                    // under its mask are read, so the address is formed without `add`'s bounds promise.
                    let b = t.b.wrapping_add(*t.b_offs.add(p) as usize);
                    let m: &[u16; TAP_VECS] = &*tap_masks.add(*tap);
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(m[v], b.wrapping_add(16 * v));
                    }
                    *tap += 1;
                    if *tap == taps {
                        *tap = 0;
                    }
                } else {
                    let b = b_row_of::<OFFS>(t, p);
                    for (v, x) in bv.iter_mut().enumerate() {
                        if SEG == 0 {
                            *x = _mm512_loadu_ps(b.add(16 * v));
                        } else {
                            // Masked lanes are never read, so a segment's base may lie outside B.
                            let sg = &*t.segs;
                            *x = _mm512_maskz_loadu_ps(sg.masks[v][0], b.wrapping_offset(sg.offs[v][0]));
                            for s in 1..SEG {
                                *x = _mm512_mask_loadu_ps(*x, sg.masks[v][s], b.wrapping_offset(sg.offs[v][s]));
                            }
                        }
                    }
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r));
                    for (o, &x) in row.iter_mut().zip(&bv) {
                        *o = _mm512_fmadd_ps(av, x, *o);
                    }
                }
            };
            let mut p = 0;
            if !t.a_next.is_null() {
                // 8 steps read 48 floats of A (three cache lines): ask for the same three of the next panel.
                while p + 8 <= t.k {
                    prefetch_a8(t.a_next, p);
                    for q in 0..8 {
                        step(&mut acc, p + q, &mut tap);
                    }
                    p += 8;
                }
            }
            while p < t.k {
                step(&mut acc, p, &mut tap);
                p += 1;
            }
            let zero = _mm512_setzero_ps();
            for (r, row) in acc.iter().enumerate() {
                let c = t.c.add(r * t.ldc);
                let bias = if t.bias.is_null() { zero } else { _mm512_set1_ps(*t.bias.add(r)) };
                for (v, &x) in row.iter().enumerate() {
                    let m = if v + 1 < NV { 0xffff } else { mask };
                    let mut x = x;
                    if t.accumulate {
                        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c.add(16 * v)));
                    }
                    x = _mm512_add_ps(x, bias);
                    if t.relu {
                        // max(0, x) returns x when x is NaN: NaN propagates as in the scalar Relu.
                        x = _mm512_max_ps(zero, x);
                    }
                    _mm512_mask_storeu_ps(c.add(16 * v), m, x);
                }
            }
        }
    }

    /// A tall tile: P whole panels of A (6·P rows) down one 16-column vector of B, 6·P accumulators
    /// written out (a loop over 18 rows was not unrolled, and its accumulators lived on the stack). Per
    /// step: one load of B and 6·P broadcasts of A. With [`Tile::a_next`], each group of 8 steps first
    /// prefetches the matching three lines of each of the next tile's panels.
    #[target_feature(enable = "avx512f")]
    unsafe fn k512_tall<const P: usize, const OFFS: bool>(t: &Tile) {
        let rem = t.cols.min(16);
        let mask: __mmask16 = if rem >= 16 { 0xffff } else { (1u16 << rem) - 1 };
        let z = _mm512_setzero_ps();
        let mut acc = [z; 18];
        unsafe {
            prefetch_c(t);
            // The third panel's pointer only when there is one (past the end of A is not a pointer to form).
            let (a0, a1) = (t.a, t.a.add(t.a_stride));
            let a2 = if P == 3 { t.a.add(2 * t.a_stride) } else { t.a };
            macro_rules! panel {
                ($a:expr, $base:literal, $b:expr, $p:expr) => {{
                    let a = $a.add($p * MR);
                    acc[$base] = _mm512_fmadd_ps(_mm512_set1_ps(*a), $b, acc[$base]);
                    acc[$base + 1] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(1)), $b, acc[$base + 1]);
                    acc[$base + 2] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(2)), $b, acc[$base + 2]);
                    acc[$base + 3] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(3)), $b, acc[$base + 3]);
                    acc[$base + 4] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(4)), $b, acc[$base + 4]);
                    acc[$base + 5] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(5)), $b, acc[$base + 5]);
                }};
            }
            macro_rules! step {
                ($p:expr) => {{
                    let b = _mm512_loadu_ps(b_row_of::<OFFS>(t, $p));
                    panel!(a0, 0, b, $p);
                    panel!(a1, 6, b, $p);
                    if P == 3 {
                        panel!(a2, 12, b, $p);
                    }
                }};
            }
            let mut p = 0;
            if !t.a_next.is_null() {
                while p + 8 <= t.k {
                    for j in 0..P {
                        prefetch_a8(t.a_next.add(j * t.a_stride), p);
                    }
                    for q in 0..8 {
                        step!(p + q);
                    }
                    p += 8;
                }
            }
            while p < t.k {
                step!(p);
                p += 1;
            }
            for (r, &x) in acc.iter().enumerate().take(P * MR) {
                let c = t.c.add(r * t.ldc);
                let mut x = x;
                if t.accumulate {
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, c));
                }
                // + 0 without a bias, as `k512` does: the same bits (a −0 becomes +0) whichever kernel a
                // panel gets, and that depends on the thread count.
                let bias = if t.bias.is_null() { z } else { _mm512_set1_ps(*t.bias.add(r)) };
                x = _mm512_add_ps(x, bias);
                if t.relu {
                    // max(0, x) returns x when x is NaN: NaN propagates as in the scalar Relu.
                    x = _mm512_max_ps(z, x);
                }
                _mm512_mask_storeu_ps(c, mask, x);
            }
        }
    }

    /// AVX2 has 16 registers: a full 6 × 16 tile is 12 accumulators, 2 vectors of B and a broadcast of A.
    pub(super) unsafe fn avx2(t: &Tile) {
        if t.b_offs.is_null() {
            unsafe { avx2_of::<false>(t) }
        } else {
            unsafe { avx2_of::<true>(t) }
        }
    }

    unsafe fn avx2_of<const OFFS: bool>(t: &Tile) {
        let nv = t.cols.div_ceil(8);
        macro_rules! by_nv {
            ($r:literal) => {
                match nv {
                    1 => k256::<$r, 1, OFFS>(t),
                    _ => k256::<$r, 2, OFFS>(t),
                }
            };
        }
        unsafe {
            if t.rows == MR && nv == 2 {
                return k256_6x2::<OFFS>(t);
            }
            if t.cols == 1 {
                return k256_col1::<OFFS, false>(t);
            }
            by_rows!(t, by_nv)
        }
    }

    /// The common full tile, 6 rows × 16 columns, written out by hand (BLIS's Haswell shape): 12
    /// independent accumulators cover the FMA latency on both ports, and each k step loads 2 vectors of
    /// B for 12 FMAs. 15 of the 16 registers are live; one more (a 4 × 24 tile needs 17) spills an
    /// accumulator, whose store-to-load round trip then limits every iteration. With [`Tile::a_next`]
    /// the k loop runs in groups of 8 steps, each group first prefetching the next panel's matching
    /// 48 floats.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn k256_6x2<const OFFS: bool>(t: &Tile) {
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11) = (z, z, z, z);
        let (mut c20, mut c21, mut c30, mut c31) = (z, z, z, z);
        let (mut c40, mut c41, mut c50, mut c51) = (z, z, z, z);
        unsafe {
            prefetch_c(t);
            let mut a = t.a;
            macro_rules! step {
                ($p:expr) => {{
                    let b = b_row_of::<OFFS>(t, $p);
                    let b0 = _mm256_loadu_ps(b);
                    let b1 = _mm256_loadu_ps(b.add(t.b_hi));
                    let x = _mm256_broadcast_ss(&*a);
                    c00 = _mm256_fmadd_ps(x, b0, c00);
                    c01 = _mm256_fmadd_ps(x, b1, c01);
                    let x = _mm256_broadcast_ss(&*a.add(1));
                    c10 = _mm256_fmadd_ps(x, b0, c10);
                    c11 = _mm256_fmadd_ps(x, b1, c11);
                    let x = _mm256_broadcast_ss(&*a.add(2));
                    c20 = _mm256_fmadd_ps(x, b0, c20);
                    c21 = _mm256_fmadd_ps(x, b1, c21);
                    let x = _mm256_broadcast_ss(&*a.add(3));
                    c30 = _mm256_fmadd_ps(x, b0, c30);
                    c31 = _mm256_fmadd_ps(x, b1, c31);
                    let x = _mm256_broadcast_ss(&*a.add(4));
                    c40 = _mm256_fmadd_ps(x, b0, c40);
                    c41 = _mm256_fmadd_ps(x, b1, c41);
                    let x = _mm256_broadcast_ss(&*a.add(5));
                    c50 = _mm256_fmadd_ps(x, b0, c50);
                    c51 = _mm256_fmadd_ps(x, b1, c51);
                    a = a.add(MR);
                }};
            }
            let mut p = 0;
            if !t.a_next.is_null() {
                // 8 steps read 48 floats of A (three cache lines): ask for the same three of the next panel.
                while p + 8 <= t.k {
                    prefetch_a8(t.a_next, p);
                    for q in 0..8 {
                        step!(p + q);
                    }
                    p += 8;
                }
            }
            while p < t.k {
                step!(p);
                p += 1;
            }
            store256(t, [[c00, c01], [c10, c11], [c20, c21], [c30, c31], [c40, c41], [c50, c51]]);
        }
    }

    /// A one-column tile (the 49th pixel of a 7 × 7 output), vectorized along the panel's rows instead of
    /// the columns: one load of A (its 6 rows at step p, plus 2 floats of step p + 1 that are ignored)
    /// times a broadcast of B[p] is one FMA per step, where the column-vector kernels spend 6 FMAs with 1
    /// useful lane of 8, in chains too few to cover the FMA latency. Four accumulators over interleaved
    /// steps cover it here. The last step loads under a 6-lane mask, so nothing past the panel is read.
    ///
    /// With TAP ([`super::TapMasks`]), B[p] is read only when its tap's mask has lane 0, and is 0 otherwise
    /// (a test per step, the same pattern every `taps` steps, which the branch predictor learns).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn k256_col1<const OFFS: bool, const TAP: bool>(t: &Tile) {
        let zero = _mm256_setzero_ps();
        let mut acc = [zero; 4];
        unsafe {
            let (masks, taps) = match TAP {
                true => ((*t.taps).masks.as_ptr(), (*t.taps).taps),
                false => (std::ptr::null(), 1),
            };
            let mut tap = t.tap0;
            // B[p] broadcast; steps must be asked for in order (the tap advances with each).
            let mut b = |p: usize| {
                if !TAP {
                    return _mm256_broadcast_ss(&*b_row_of::<OFFS>(t, p));
                }
                let read = (*masks.add(tap))[0] & 1 != 0;
                tap = if tap + 1 == taps { 0 } else { tap + 1 };
                match read {
                    true => _mm256_broadcast_ss(&*t.b.wrapping_add(*t.b_offs.add(p) as usize)),
                    false => zero,
                }
            };
            let a = |p: usize| _mm256_loadu_ps(t.a.add(p * MR));
            // Unmasked loads reach 2 floats into step p + 1, so they stop before the last step.
            let full = t.k.saturating_sub(1);
            let mut p = 0;
            while p + 4 <= full {
                for (u, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(a(p + u), b(p + u), *acc);
                }
                p += 4;
            }
            while p < full {
                acc[0] = _mm256_fmadd_ps(a(p), b(p), acc[0]);
                p += 1;
            }
            if t.k > 0 {
                let six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
                let last = _mm256_maskload_ps(t.a.add((t.k - 1) * MR), six);
                acc[1] = _mm256_fmadd_ps(last, b(t.k - 1), acc[1]);
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut v = [0f32; 8];
            _mm256_storeu_ps(v.as_mut_ptr(), sum);
            for (r, &x) in v.iter().enumerate().take(t.rows) {
                let c = t.c.add(r * t.ldc);
                let mut x = if t.accumulate { x + *c } else { x };
                if !t.bias.is_null() {
                    x += *t.bias.add(r);
                }
                // As `_mm256_max_ps(0, x)` in `store256`: NaN and −0 pass through.
                if t.relu && 0.0 > x {
                    x = 0.0;
                }
                *c = x;
            }
        }
    }

    /// Asks for the tile's rows of C while the k loop runs: the epilogue then finds them in cache instead
    /// of waiting on memory for each (a wide activation's rows are a page apart; with k = 64 a tile's
    /// arithmetic is short enough that these misses cost as much as the FMAs).
    #[inline(always)]
    unsafe fn prefetch_c(t: &Tile) {
        for r in 0..t.rows {
            unsafe {
                let c = t.c.add(r * t.ldc);
                _mm_prefetch::<_MM_HINT_T0>(c as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(c.add(t.cols - 1) as *const i8);
            }
        }
    }

    /// Asks for the three cache lines (48 floats) that steps p..p + 8 read of the A panel at `next`, into
    /// L2 ([`Tile::a_next`]): every kernel that prefetches weights calls it once per 8 steps and panel.
    ///
    /// # Safety
    /// A hint only, but `next + p·MR + 32` must lie in the panel's allocation (`p + 8 ≤ k`).
    #[inline(always)]
    unsafe fn prefetch_a8(next: *const f32, p: usize) {
        unsafe {
            let nx = next.add(p * MR) as *const i8;
            _mm_prefetch::<_MM_HINT_T1>(nx);
            _mm_prefetch::<_MM_HINT_T1>(nx.add(64));
            _mm_prefetch::<_MM_HINT_T1>(nx.add(128));
        }
    }

    /// The epilogue of an AVX2 tile: (+ C) (+ bias) (max 0), stored under a mask past `cols`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store256<const R: usize, const NV: usize>(t: &Tile, acc: [[__m256; NV]; R]) {
        unsafe {
            let rem = (t.cols - (NV - 1) * 8) as i32;
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            let all = _mm256_set1_epi32(-1);
            let zero = _mm256_setzero_ps();
            for (r, row) in acc.iter().enumerate() {
                let c = t.c.add(r * t.ldc);
                let bias = if t.bias.is_null() { zero } else { _mm256_set1_ps(*t.bias.add(r)) };
                for (v, &x) in row.iter().enumerate() {
                    // Masked moves are slow on some CPUs (AMD): only the ragged last vector uses them.
                    let full = v + 1 < NV || rem == 8;
                    let m = if v + 1 < NV { all } else { mask };
                    let mut x = x;
                    if t.accumulate {
                        let old =
                            if full { _mm256_loadu_ps(c.add(8 * v)) } else { _mm256_maskload_ps(c.add(8 * v), m) };
                        x = _mm256_add_ps(x, old);
                    }
                    x = _mm256_add_ps(x, bias);
                    if t.relu {
                        x = _mm256_max_ps(zero, x);
                    }
                    if full {
                        _mm256_storeu_ps(c.add(8 * v), x);
                    } else {
                        _mm256_maskstore_ps(c.add(8 * v), m, x);
                    }
                }
            }
        }
    }

    /// The edge tiles: up to 6 rows × 1-2 vectors. A tile of at most 4 accumulators (a 2-row last
    /// panel: 32 output channels are 5 panels of 6 and one of 2) would wait on the FMA latency at every
    /// step, so it keeps a second set for odd k and adds the two at the end.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn k256<const R: usize, const NV: usize, const OFFS: bool>(t: &Tile) {
        let zero = _mm256_setzero_ps();
        let mut acc = [[zero; NV]; R];
        let mut odd = [[zero; NV]; R];
        let split = R * NV <= 4;
        unsafe {
            prefetch_c(t);
            // A macro, not a closure: the body must be compiled with this function's target features.
            macro_rules! step {
                ($p:expr, $acc:expr) => {{
                    let b = b_row_of::<OFFS>(t, $p);
                    let a = t.a.add($p * MR);
                    let mut bv = [zero; NV];
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = _mm256_loadu_ps(b.add(if v == 0 { 0 } else { t.b_hi }));
                    }
                    for (r, row) in $acc.iter_mut().enumerate() {
                        let av = _mm256_broadcast_ss(&*a.add(r));
                        for (o, &x) in row.iter_mut().zip(&bv) {
                            *o = _mm256_fmadd_ps(av, x, *o);
                        }
                    }
                }};
            }
            let mut p = 0;
            if split {
                while p + 2 <= t.k {
                    step!(p, acc);
                    step!(p + 1, odd);
                    p += 2;
                }
            }
            while p < t.k {
                step!(p, acc);
                p += 1;
            }
            if split {
                for (row, o) in acc.iter_mut().zip(&odd) {
                    for (x, &y) in row.iter_mut().zip(o) {
                        *x = _mm256_add_ps(*x, y);
                    }
                }
            }
            store256(t, acc);
        }
    }
}
