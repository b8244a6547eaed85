//! 2-D convolution (NCHW) as an implicit GEMM, per image and group:
//! Y_g[M/G × OH·OW] = W_g[M/G × (C/G)·kh·kw] · col_g[(C/G)·kh·kw × OH·OW] (+ bias, + the residual already in
//! Y, then the activation), where col_g[(c·kh + u)·kw + v][i·ow + j] = x[c, i·s0 + u·d0 − top, j·s1 + v·d1 −
//! left] (0 outside the image). The im2col matrix is never materialized. A 1x1 convolution's tiles of it
//! (KC × NR floats, contiguous, so they stay in L1 while every weight panel passes over them) are packed
//! straight from the input by `ConvB`: each tile row is one contiguous copy, or one strided gather for a
//! strided 1x1 (a projection shortcut); a stride-1 1x1 with at most 128 output channels and no prologue
//! is read in place instead (`IN_PLACE_1X1_MAX_M`).
//!
//! Any other convolution (but the case below) first copies its input, zero-padded, into scratch (split
//! into phase planes when strided; `shifted_input`), so that every kernel tap is a shifted view of that
//! copy, one row offset per tap. When its weights fit in L2 (16 to 64 output channels: CIFAR ResNets,
//! DenseNet's growth convolutions, ResNet-50's stem) the GEMM reads B in place through those views
//! ([`Conv2d::reads_in_place`], [`gemm_shifted`]); otherwise its tiles are packed from them with plain
//! copies ([`PackedShifted`]).
//! On AVX-512, a stride-1 convolution that reads in place and keeps the input's width skips the copy: the
//! GEMM reads the input itself, masked loads standing for the padding ([`Conv2d::reads_unpadded`],
//! [`gemm_taps`]); a strided one copies its input into unpadded phase planes as wide as its output
//! (`phases`), which the GEMM reads the same way.
//!
//! Weights arrive packed by the compiler ([`Conv2d::pack_weights`]), in the GEMM's panel layout.
//! Why implicit GEMM rather than a direct kernel over a blocked channel layout: it keeps NCHW (so the
//! compiler's feature-arena views, residual views and every other kernel stay as they are), it shares one
//! tuned micro-kernel with the classifier and MatMul, and the gather costs O(K·N) against the product's
//! O(M·K·N) — under 2% of a ResNet-50 convolution with M ≥ 64.

use super::elementwise::UnaryOp;
use super::gemm::{
    gemm_packed, gemm_shifted, gemm_taps, pack_a, packed_len, put_row, put_row_map, BSource, Epilogue, Isa, MatRef,
    PackedShifted, ShiftedB, TapB, MAX_BLOCK, MAX_TAPS,
};
use super::{copy_short, prefetch, zero_short};
use crate::parallel::for_chunks_mut;
use phases::PhasePlanes;

mod phases;

/// The most weights (floats, per group) a convolution may have and still read its input in place: 256 KB,
/// half of this machine's L2 (see [`Conv2d::reads_in_place`]).
pub const IN_PLACE_MAX_WEIGHTS: usize = 1 << 16;

/// Zeros after a padded input: the kernels read whole vectors, up to 15 floats past the last pixel.
const SLACK: usize = 16;

/// Geometry of a convolution step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// [top, left, bottom, right]
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
}

impl Conv2d {
    /// Rows of one group's im2col matrix: (C/G)·kh·kw.
    pub fn k(&self) -> usize {
        self.cin / self.group * self.kernel[0] * self.kernel[1]
    }
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.strides == [1, 1] && self.pads == [0; 4]
    }
    /// Scratch floats [`conv2d`] needs with `threads` threads for an `oh × ow` output: GEMM tile packing
    /// (a 1x1); one group's zero-padded input and its tap offsets (a [`Conv2d::reads_in_place`]
    /// convolution, which uses only the offsets, or its unpadded phase planes and the offsets, when it
    /// [`Conv2d::reads_unpadded`]: the size does not depend on the CPU); or both (any other convolution,
    /// whose tiles are packed from that padded input). Never an im2col matrix.
    pub fn scratch_len(&self, oh: usize, ow: usize, threads: usize) -> usize {
        let packing = super::gemm::scratch_len(Isa::detect(), threads);
        if self.reads_in_place(ow) {
            packing.max(self.planes_len(oh, ow))
        } else if self.reads_planes() {
            packing + self.planes_len(oh, ow)
        } else {
            packing
        }
    }
    /// Whether [`conv2d`] reads this convolution through its padded phase planes (`conv_padded`, in place
    /// or packing its tiles from them): any but a 1x1 (whose tiles [`ConvB`] packs straight from the
    /// input), up to [`MAX_PHASES`] planes (past that, [`ConvB`] gathers too).
    fn reads_planes(&self) -> bool {
        self.kernel != [1, 1] && self.phase_count() <= MAX_PHASES
    }
    /// Floats of one group's padded phase planes and tap offsets (see `shifted_input`), or of its
    /// unpadded ones (`phases`: no more rows or columns, a gap after each plane).
    fn planes_len(&self, oh: usize, ow: usize) -> usize {
        let (hq, wq) = self.phase_dims(oh, ow);
        self.cin / self.group * self.phase_count() * (hq * wq + phases::PLANE_GAP) + SLACK + self.k()
    }
    /// Whether some tap reads phase `x` along axis `a`: u·d ≡ x (mod s) for some u < k.
    fn reads_phase(&self, a: usize, x: usize) -> bool {
        (0..self.kernel[a]).any(|u| u * self.dilations[a] % self.strides[a].max(1) == x)
    }
    /// How many phases some tap reads along axis `a`.
    fn axis_phases(&self, a: usize) -> usize {
        (0..self.strides[a].max(1)).filter(|&x| self.reads_phase(a, x)).count()
    }
    /// How many phase planes `conv_padded` builds: the (row, column) phases some tap reads. A 3x3
    /// stride-2 convolution reads all four, a 1x2 stride-2 one only phases (0, 0) and (0, 1).
    fn phase_count(&self) -> usize {
        self.axis_phases(0) * self.axis_phases(1)
    }
    /// The slot of phase (a, b) among [`Conv2d::phase_count`]'s planes (row phases outer), if a tap reads it.
    fn phase_slot(&self, a: usize, b: usize) -> Option<usize> {
        let rank = |axis: usize, x: usize| {
            self.reads_phase(axis, x).then(|| (0..x).filter(|&y| self.reads_phase(axis, y)).count())
        };
        Some(rank(0, a)? * self.axis_phases(1) + rank(1, b)?)
    }
    /// Whether [`conv2d`] reads this convolution's input in place, from a zero-padded copy ([`gemm_shifted`])
    /// or under masks ([`Conv2d::reads_unpadded`]), instead of packing GEMM tiles: any convolution with
    /// small enough weights but a 1x1; a strided one through phase planes (see `conv_padded`). A 1x1
    /// reads each input value once, so its tiles are single copies (stride 1; with at most 128 output
    /// channels not even that: `ConvB::direct`) or one strided gather per
    /// row (a projection shortcut): the phase-plane
    /// copy would only be that gather done ahead, and the in-place GEMM's 16-pixel tiles with K = C
    /// (16 to 256) ran slower than packed blocks of 128. `conv_bench`, 3 alternating runs on 1 thread:
    /// ResNet-18's 64→128 1x1/2 at 56 px 0.19 ms gathered against 0.23 in place, 128→256 at 28 px 0.18
    /// against 0.21, ResNet-20's 32→64 at 16 px 8.0-9.2 µs against 9.6-9.7.
    ///
    /// Why: gathering a 3x3 convolution's tiles copies its input nine times over, with a boundary test per
    /// run; against the product's O(M·K·N) that is cheap when M (output channels) is large, but at M = 16
    /// to 64 (CIFAR ResNets, DenseNet's 32-channel growth convolutions, ResNet-50's first stage) it was
    /// half of ResNet-20's time. The padded copy costs one pass over the input. Its tiles are 16 output
    /// pixels, not 128, and each passes over every weight, so the group's weights must stay in L2:
    /// at most [`IN_PLACE_MAX_WEIGHTS`]. `examples/conv_bench` on 1 thread: 16→16 at 32 px 58-62 GFLOP/s
    /// in place against 26-38 gathered, DenseNet's 128→32 at 14 px 48-60 against 26-39; but 512→512 at
    /// 7 px (2.4 M weights) 17-19 against 41-43.
    ///
    /// `RESIN_CONV=gather` in the environment turns this off (the tiles are then packed from the padded
    /// copy, as for large weights) and `RESIN_CONV=in-place` ignores the weight
    /// limit (read once), so that benchmarks can time the strategies on the same binary.
    pub fn reads_in_place(&self, ow: usize) -> bool {
        static FORCE: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
        let force = *FORCE.get_or_init(|| match std::env::var("RESIN_CONV").as_deref() {
            Ok("gather") => Some(false),
            Ok("in-place") => Some(true),
            _ => None,
        });
        let weights = self.cout / self.group * self.k();
        self.reads_planes() && ow > 0 && force.unwrap_or(weights <= IN_PLACE_MAX_WEIGHTS)
    }
    /// Whether [`conv2d`] reads this convolution, when it [`Conv2d::reads_in_place`], straight from its
    /// unpadded input ([`gemm_taps`]) instead of a zero-padded copy: on AVX-512 (its masked loads stand
    /// for the padding), at most [`MAX_TAPS`] taps, and
    /// - stride 1: an output as wide as the input (so that consecutive output pixels read consecutive
    ///   input pixels under every tap, across rows too) and no prologue (which the copy applies). The copy
    ///   was a tenth of ResNet-20's time on 1 thread; and an 8-wide output's vectors, two rows of the
    ///   padded copy each, were two masked loads, one here.
    /// - strided: from unpadded phase planes as wide as the output (`phases`; a copy still, but with no
    ///   zeros, and each vector one masked load instead of one per output row it spans), when the
    ///   geometry allows them (a 3x3 stride-2 layer with padding 1 always does).
    ///
    /// The same with AVX2's `vmaskmovps` (each mask a table load) ran ResNet-20 1.15x slower than the
    /// copy, so AVX2 keeps it.
    /// `RESIN_CONV=padded` in the environment turns this off (read once), for benchmarks.
    pub fn reads_unpadded(&self, isa: Isa, hw: [usize; 2], ohw: [usize; 2], prologue: bool) -> bool {
        self.unpadded(isa, hw, ohw, prologue).is_some()
    }
    /// How [`Conv2d::reads_unpadded`] reads: the input itself (stride 1), or unpadded phase planes.
    fn unpadded(&self, isa: Isa, [h, w]: [usize; 2], [oh, ow]: [usize; 2], prologue: bool) -> Option<Unpadded> {
        static PADDED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let padded = *PADDED.get_or_init(|| std::env::var("RESIN_CONV").as_deref() == Ok("padded"));
        if isa != Isa::Avx512 || padded || self.kernel[0] * self.kernel[1] > MAX_TAPS || self.k() == 0 {
            return None;
        }
        match self.strides == [1, 1] {
            true => (!prologue && ow == w).then_some(Unpadded::Input),
            false => PhasePlanes::new(self, h, w, oh, ow).map(Unpadded::Planes),
        }
    }
    /// The part of the zero-padded input an `oh × ow` output reads: (oh − 1)·s + (k − 1)·d + 1 per axis.
    fn padded_dims(&self, oh: usize, ow: usize) -> (usize, usize) {
        let dim = |o: usize, a: usize| (o.max(1) - 1) * self.strides[a] + (self.kernel[a] - 1) * self.dilations[a] + 1;
        (dim(oh, 0), dim(ow, 1))
    }
    /// Height and width of each phase plane the padded input splits into (see `conv_padded`; the
    /// [`Conv2d::phase_count`] planes some tap reads are built); the padded input itself with stride 1.
    fn phase_dims(&self, oh: usize, ow: usize) -> (usize, usize) {
        let (hp, wp) = self.padded_dims(oh, ow);
        (hp.div_ceil(self.strides[0]), wp.div_ceil(self.strides[1]))
    }
    /// Floats of the weights once packed by [`Conv2d::pack_weights`].
    pub fn packed_weight_len(&self) -> usize {
        self.group * packed_len(self.cout / self.group, self.k())
    }
    /// Packs `[M, (C/G)·kh·kw]` row-major weights into the GEMM's panels, group by group (done once, by
    /// the compiler).
    pub fn pack_weights(&self, weight: &[f32]) -> Vec<f32> {
        let (cout_g, k) = (self.cout / self.group, self.k());
        assert_eq!(weight.len(), self.cout * k, "pack_weights: expected [M, (C/G)·kh·kw] weights");
        let wlen = packed_len(cout_g, k);
        let mut out = vec![0.0; self.group * wlen];
        for g in 0..self.group {
            let src = MatRef::new(&weight[g * cout_g * k..(g + 1) * cout_g * k], k);
            pack_a(cout_g, k, src, 1.0, &mut out[g * wlen..(g + 1) * wlen]);
        }
        out
    }
}

/// What a convolution read under masks reads ([`Conv2d::reads_unpadded`]). (One per call, on the stack:
/// boxing the planes' geometry would allocate at every run.)
#[allow(clippy::large_enum_variant)]
enum Unpadded {
    /// Its input itself (stride 1).
    Input,
    /// Its input copied into unpadded phase planes (strided).
    Planes(PhasePlanes),
}

/// A per-input-channel prologue: `x' = act(scale[c]·x + shift[c])`.
#[derive(Clone, Copy, Debug)]
pub struct Pre<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub act: Option<UnaryOp>,
}

impl Pre<'_> {
    /// `apply` over a run of channel `c`'s values, in loops the compiler vectorizes.
    pub(crate) fn apply_row(&self, c: usize, xs: &mut [f32]) {
        let (s, t) = (self.scale[c], self.shift[c]);
        match self.act {
            None => xs.iter_mut().for_each(|x| *x = s * *x + t),
            Some(UnaryOp::Relu) => xs.iter_mut().for_each(|x| {
                let v = s * *x + t;
                // max(v, 0) keeping NaN, written branch-free.
                *x = if v <= 0.0 { 0.0 } else { v };
            }),
            Some(_) => xs.iter_mut().for_each(|x| *x = self.apply(c, *x)),
        }
    }

    /// [`put_row`] of channel `c`'s values `row` with the prologue applied on the way (one pass: no copy
    /// to transform first). Inlined into [`ConvB`]'s packing, whose AVX2 twin vectorizes it (the baseline
    /// build left its 16-float pieces scalar: a multiply, add and select per value, 11% of DenseNet-121's
    /// samples on 1 thread).
    #[inline(always)]
    pub(crate) fn put_row(&self, c: usize, dst: &mut [f32], kc: usize, nr: usize, i: usize, row: &[f32]) {
        let (s, t) = (self.scale[c], self.shift[c]);
        match self.act {
            None => put_row_map(dst, kc, nr, i, row, |x| s * x + t),
            Some(UnaryOp::Relu) => put_row_map(dst, kc, nr, i, row, |x| {
                let v = s * x + t;
                if v <= 0.0 {
                    0.0
                } else {
                    v
                }
            }),
            Some(_) => put_row_map(dst, kc, nr, i, row, |x| self.apply(c, x)),
        }
    }

    #[inline]
    pub(crate) fn apply(&self, c: usize, x: f32) -> f32 {
        let v = self.scale[c] * x + self.shift[c];
        match self.act {
            None => v,
            Some(UnaryOp::Relu) => {
                if v > 0.0 || v.is_nan() {
                    v
                } else {
                    0.0
                }
            }
            Some(a) => {
                let mut one = [v];
                super::elementwise::unary_inplace(a, &mut one);
                one[0]
            }
        }
    }
}

/// The most output channels (per group) a pointwise convolution may have for the GEMM to read its input
/// in place ([`ConvB::direct`]) instead of packing it. Packing copies each value of B once for every
/// block of columns, and with few output channels there is little arithmetic per copied value (a
/// 256→64 layer: 64 multiply-adds). `conv_bench`, 2 alternating runs: ResNet-50's 256→64 at 56 px 0.438
/// against 0.483-0.494 ms packed on 1 thread and 0.227 against 0.254 on 2, its 64→64 0.115 against
/// 0.127; `ab_steps.py`, ResNet-50 at batch 1 on 2 threads, 8 rounds: 0.961 (a control copy 1.011), its
/// 56-px 1x1 steps 0.72 and 28-px 0.90-0.92; on 1 thread 0.991, forced AVX2 0.996. Up to 256 or every
/// width: no further change (1.000 and 1.004). (Session 12's README records in-place 1x1s 1.1-1.9x
/// slower in `conv_bench`, for every width; measured again now, up to 128 channels they are faster.)
const IN_PLACE_1X1_MAX_M: usize = 128;

/// Rows ahead that a 1x1 convolution's packing asks for: each row of a block is a run of up to 384
/// floats in its own channel plane, a plane apart, more streams than the hardware prefetchers follow.
const PREFETCH_ROWS: usize = 8;

/// The implicit im2col matrix of one image and group, as GEMM B tiles.
struct ConvB<'a> {
    /// The group's input planes, `[C/G, h, w]`.
    x: &'a [f32],
    h: usize,
    w: usize,
    p: &'a Conv2d,
    ow: usize,
    /// The prologue and the group's first channel in the whole input.
    pre: Option<(Pre<'a>, usize)>,
}

impl BSource for ConvB<'_> {
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        self.pack_twin(k0, kc, n0, nc, dst, nr)
    }
    /// A pointwise convolution without a prologue with at most [`IN_PLACE_1X1_MAX_M`] output channels
    /// per group: its B is the input itself (row k = channel k's plane), read in place by whole blocks.
    fn direct(&self) -> Option<(&[f32], usize)> {
        let small_m = self.p.cout / self.p.group <= IN_PLACE_1X1_MAX_M;
        (self.p.is_pointwise() && self.pre.is_none() && small_m).then_some((self.x, self.h * self.w))
    }
}

impl ConvB<'_> {
    avx2_twin!(
        /// [`ConvB::pack_body`], with AVX2 where the CPU has it: in the baseline build the prologue's
        /// 16-float pieces and the stride-2 gathers stayed scalar (ConvB's packing was 11% of
        /// DenseNet-121's samples and 6.9% of ResNet-50's on 1 thread). Same bits.
        method pack_twin / pack_avx2 => pack_body (k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize)
    );

    #[inline(always)]
    fn pack_body(&self, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32], nr: usize) {
        let (h, w, p, ow) = (self.h, self.w, self.p, self.ow);
        let mut buf = [0f32; MAX_BLOCK];
        let hw = h * w;
        let [kh, kw] = p.kernel;
        let pre = |ch: usize, o: &mut [f32]| {
            if let Some((f, c0)) = &self.pre {
                f.apply_row(c0 + ch, o);
            }
        };
        if p.is_pointwise() {
            // Row k of B is channel k's plane: each tile row is one contiguous copy, straight into the
            // micro-panels unless a prologue has to transform it on the way.
            for i in 0..kc {
                let ch = k0 + i;
                if i + PREFETCH_ROWS < kc {
                    let ahead = (ch + PREFETCH_ROWS) * hw + n0;
                    prefetch(&self.x[ahead..ahead + nc]);
                }
                let src = &self.x[ch * hw + n0..ch * hw + n0 + nc];
                match &self.pre {
                    None => put_row(dst, kc, nr, i, src),
                    Some((f, c0)) => f.put_row(c0 + ch, dst, kc, nr, i, src),
                }
            }
            return;
        }
        // The tile's columns split into runs along output rows: (first column, length, output row, col).
        let mut runs = [(0usize, 0usize, 0usize, 0usize); MAX_BLOCK];
        let mut count = 0;
        let mut q = 0;
        while q < nc {
            let (oi, oj) = ((n0 + q) / ow, (n0 + q) % ow);
            let len = (ow - oj).min(nc - q);
            runs[count] = (q, len, oi, oj);
            count += 1;
            q += len;
        }
        let (s0, s1) = (p.strides[0], p.strides[1]);
        let (d0, d1) = (p.dilations[0], p.dilations[1]);
        let (top, left) = (p.pads[0] as isize, p.pads[1] as isize);
        let (mut ch, mut u, mut v) = (k0 / (kh * kw), (k0 / kw) % kh, k0 % kw);
        for i in 0..kc {
            let plane = &self.x[ch * hw..(ch + 1) * hw];
            let row = &mut buf[..nc];
            for &(q, len, oi, oj) in &runs[..count] {
                let out = &mut row[q..q + len];
                let y = (oi * s0 + u * d0) as isize - top;
                if y < 0 || y >= h as isize {
                    zero_short(out);
                    continue;
                }
                let src = &plane[y as usize * w..(y as usize + 1) * w];
                // Input column of out[j] is x0 + j·s1; the valid j are those with 0 ≤ x0 + j·s1 < w.
                let x0 = (oj * s1 + v * d1) as isize - left;
                let lo = if x0 >= 0 { 0 } else { div_ceil_stride((-x0) as usize, s1).min(len) };
                let hi =
                    if x0 >= w as isize { lo } else { div_ceil_stride((w as isize - x0) as usize, s1).clamp(lo, len) };
                zero_short(&mut out[..lo]);
                zero_short(&mut out[hi..]);
                if lo == hi {
                    continue; // the whole run falls in the padding
                }
                let first = (x0 + (lo * s1) as isize) as usize;
                let dst = &mut out[lo..hi];
                if s1 == 1 {
                    dst.copy_from_slice(&src[first..first + dst.len()]);
                } else if s1 == 2 {
                    gather_even(dst, &src[first..]);
                } else {
                    // Every s1-th input column (chunks keep the loop free of bounds checks).
                    dst.iter_mut().zip(src[first..].chunks(s1)).for_each(|(o, c)| *o = c[0]);
                }
                pre(ch, dst);
            }
            put_row(dst, kc, nr, i, row);
            v += 1;
            if v == kw {
                v = 0;
                u += 1;
                if u == kh {
                    u = 0;
                    ch += 1;
                }
            }
        }
    }
}

/// dst[j] = src[2j] for every j < `dst.len()` (`src` holds at least 2·len − 1 values): 8 outputs from 16
/// inputs at a time (local arrays, which the compiler turns into loads and shuffles; a loop over pairs
/// vectorized only by 32 and left the rest of a 28- or 14-wide row scalar), then the tail as one more
/// group of 8 from the last 15 inputs, overlapping outputs already written with the same values (4 and 4
/// from 7 inputs each for rows of 4 to 7, such as a 7-pixel output row); only rows under 4 go one by one.
/// The tail was a scalar loop: in ResNet-50's stride-2 3x3 layers (rows of 28, 14 and 7 outputs) it was
/// the packing's hottest instructions after the loads.
#[inline(always)]
fn gather_even(dst: &mut [f32], src: &[f32]) {
    let len = dst.len();
    let mut done = 0;
    for (o, c) in dst.chunks_exact_mut(8).zip(src.chunks_exact(16)) {
        let c: [f32; 16] = c.try_into().expect("16 floats");
        let o: &mut [f32; 8] = o.try_into().expect("8 floats");
        *o = std::array::from_fn(|k| c[2 * k]);
        done += 8;
    }
    if done == len {
        return;
    }
    if len >= 8 {
        let at = len - 8;
        let c: [f32; 15] = src[2 * at..2 * at + 15].try_into().expect("15 floats");
        let o: &mut [f32; 8] = (&mut dst[at..]).try_into().expect("8 floats");
        *o = std::array::from_fn(|k| c[2 * k]);
    } else if len >= 4 {
        for at in [0, len - 4] {
            let c: [f32; 7] = src[2 * at..2 * at + 7].try_into().expect("7 floats");
            let o: &mut [f32; 4] = (&mut dst[at..at + 4]).try_into().expect("4 floats");
            *o = std::array::from_fn(|k| c[2 * k]);
        }
    } else {
        for (j, o) in dst.iter_mut().enumerate() {
            *o = src[2 * j];
        }
    }
}

/// ⌈a / s⌉ for a stride s, with the usual strides 1 and 2 as a plain value and a shift instead of an
/// integer division (two per run of every packed row of a strided convolution: 8% of its packing).
#[inline(always)]
fn div_ceil_stride(a: usize, s: usize) -> usize {
    match s {
        1 => a,
        2 => a.div_ceil(2),
        _ => a.div_ceil(s),
    }
}

/// Where one channel's input lands in its zero-padded phase planes (see [`conv2d`]): the same for every
/// channel, so worked out once per call ([`PadGeometry::new`]).
struct PadGeometry {
    w: usize,
    wq: usize,
    plane: usize,
    /// The phase planes some tap reads, the first `count` of `phases`.
    phases: [PhaseCopy; MAX_PHASES],
    count: usize,
}

/// The most phase planes a convolution builds (the phases its taps read, at most min(k, s) per axis: a
/// 3x3 at any stride needs 9 at most). With more (a 5x5 at stride 5), tiles are gathered straight from the
/// input ([`Conv2d::reads_planes`]).
const MAX_PHASES: usize = 16;

/// How one phase plane (a, b) (padded rows a, a + s0, …, columns b, b + s1, …) is filled: its `slot` among
/// the planes; its columns lo..lo + n come from input columns first, first + s1, …; its rows rlo..rhi
/// from input rows i·s0 + a − top; the rest is zero. `n == 0` or `rlo == rhi`: padding only.
#[derive(Clone, Copy, Debug, Default)]
struct PhaseCopy {
    slot: usize,
    a: usize,
    b: usize,
    lo: usize,
    n: usize,
    first: usize,
    rlo: usize,
    rhi: usize,
}

impl PadGeometry {
    fn new(p: &Conv2d, h: usize, w: usize, oh: usize, ow: usize) -> Self {
        let hp = p.padded_dims(oh, ow).0;
        let (hq, wq) = p.phase_dims(oh, ow);
        let (top, left) = (p.pads[0], p.pads[1]);
        let [s0, s1] = p.strides;
        let mut g = PadGeometry { w, wq, plane: hq * wq, phases: [PhaseCopy::default(); MAX_PHASES], count: 0 };
        for a in 0..s0 {
            for b in 0..s1 {
                let Some(slot) = p.phase_slot(a, b) else { continue };
                // Column j of this phase is padded column j·s1 + b, input column j·s1 + b − left: valid for
                // j in lo..hi. Row i is padded row i·s0 + a, input row i·s0 + a − top: valid for i in
                // rlo..rhi (and below hp, the rows the output reads).
                let lo = left.saturating_sub(b).div_ceil(s1).min(wq);
                let hi = (left + w).saturating_sub(b).div_ceil(s1).clamp(lo, wq);
                let first = (lo * s1 + b).saturating_sub(left);
                let below = |lim: usize| lim.saturating_sub(a).div_ceil(s0);
                let rhi = below(hp).min(below(top + h)).min(hq);
                let rlo = below(top).min(rhi);
                g.phases[g.count] = PhaseCopy { slot, a, b, lo, n: hi - lo, first, rlo, rhi };
                g.count += 1;
            }
        }
        g
    }
}

avx2_twin!(
    /// [`pad_channel_body`], with AVX2 where the CPU has it (its rows are 7 to 56 floats: one 256-bit move
    /// per 8 instead of two).
    fn pad_channel / pad_channel_avx2 => pad_channel_body (
        p: &Conv2d,
        g: &PadGeometry,
        src: &[f32],
        c: usize,
        pre: Option<&(Pre, usize)>,
        chan: &mut [f32],
    )
);

/// Channel `c`'s input plane `src` copied into its phase planes `chan` (only the phases some tap reads),
/// zero-padded, with the prologue applied to the copied values.
///
/// Each plane is written front to back as one run: the zeros before its first input row (and that row's
/// left padding), then per input row its values and the zeros up to the next row's values (this row's
/// right padding and the next one's left: a gap of `wq − n` floats, usually 1 or 2, stored as one
/// 8-float zero vector that the next row's values then overwrite), then the zeros after the last row.
/// Per row that is one copy and one store; the row-by-row version (three short runs per row, each
/// with its own length tests) spent about 60 cycles a row on control flow, 12.6% of ResNet-20's
/// samples on 1 thread.
#[inline(always)]
fn pad_channel_body(p: &Conv2d, g: &PadGeometry, src: &[f32], c: usize, pre: Option<&(Pre, usize)>, chan: &mut [f32]) {
    let (w, wq, plane) = (g.w, g.wq, g.plane);
    let [s0, s1] = p.strides;
    let top = p.pads[0];
    for &PhaseCopy { slot, a, lo, n, first, rlo, rhi, .. } in &g.phases[..g.count] {
        let dst = &mut chan[slot * plane..][..plane];
        if n == 0 || rlo == rhi {
            zero_short(dst); // this phase reads only padding (a stride wider than the input)
            continue;
        }
        zero_short(&mut dst[..rlo * wq + lo]);
        for i in rlo..rhi {
            let start = i * wq + lo;
            let input = &src[(i * s0 + a - top) * w..][..w];
            let inner = &mut dst[start..start + n];
            match s1 {
                // Rows of 7 to 56 floats: inline vector moves, not a `memcpy` call per row.
                1 => copy_short(inner, &input[first..first + n]),
                2 => gather_even(inner, &input[first..]),
                _ => inner.iter_mut().zip(input[first..].chunks(s1)).for_each(|(o, q)| *o = q[0]),
            }
            if let Some((f, c0)) = pre {
                f.apply_row(c0 + c, inner);
            }
            let gap = start + n;
            if i + 1 == rhi {
                zero_short(&mut dst[gap..]);
            } else if wq - n <= 8 && gap + 8 <= plane {
                let z: &mut [f32; 8] = (&mut dst[gap..gap + 8]).try_into().expect("8 floats");
                *z = [0.0; 8];
            } else {
                zero_short(&mut dst[gap..gap + wq - n]);
            }
        }
    }
}

/// The operands of one convolution call that it only reads: the images, the geometry and its packed
/// weights, the fused prologue and epilogue, and the output's size and image stride. (The output, the
/// scratch and the thread count are passed beside it.)
#[derive(Clone, Copy, Debug)]
pub struct ConvArgs<'a> {
    /// `n` images `[C, h, w]`, image i starting at `x[i·x_stride]`.
    pub x: &'a [f32],
    pub x_stride: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub p: &'a Conv2d,
    /// Packed by [`Conv2d::pack_weights`] (for Winograd: transformed by `winograd::transform_weights`).
    pub weight: &'a [f32],
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    pub act: Option<UnaryOp>,
    /// Add the convolution to what y holds (the residual epilogue: y enters holding the skip).
    pub accumulate: bool,
    /// Transforms every input value as it is read: `x' = act(scale[c]·x + shift[c])`.
    pub pre: Option<Pre<'a>>,
    pub oh: usize,
    pub ow: usize,
    /// Image i of y starts at `y[i·y_stride]`.
    pub y_stride: usize,
}

impl<'a> ConvArgs<'a> {
    /// Contiguous images and outputs, no bias, activation, accumulation or prologue (set those fields
    /// with struct update syntax).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: &'a [f32],
        n: usize,
        h: usize,
        w: usize,
        p: &'a Conv2d,
        weight: &'a [f32],
        oh: usize,
        ow: usize,
    ) -> Self {
        let (x_stride, y_stride) = (p.cin * h * w, p.cout * oh * ow);
        ConvArgs {
            x,
            x_stride,
            n,
            h,
            w,
            p,
            weight,
            bias: None,
            act: None,
            accumulate: false,
            pre: None,
            oh,
            ow,
            y_stride,
        }
    }
}

/// `y[n, m, :, :] = act(Σ W ⋆ x + bias[m] (+ y[n, m, :, :] when accumulate))` for every image n of
/// [`ConvArgs`]: with `accumulate` the product adds to what `y` holds. With `pre`, every input value is
/// transformed as it is gathered. `scratch` holds at least [`Conv2d::scratch_len`] floats for `threads`
/// and this output size. Strides larger than an image read and write windows of wider feature arenas.
pub fn conv2d(args: &ConvArgs, y: &mut [f32], scratch: &mut [f32], threads: usize) {
    conv2d_as(args.p.reads_in_place(args.ow), args, y, scratch, threads)
}

/// [`conv2d`] with the strategy chosen by the caller: `in_place` as [`Conv2d::reads_in_place`] (tests run
/// both strategies on the same geometry).
pub(crate) fn conv2d_as(in_place: bool, args: &ConvArgs, y: &mut [f32], scratch: &mut [f32], threads: usize) {
    let ConvArgs { x, x_stride, n, h, w, p, weight, bias, act, accumulate, pre, oh, ow, y_stride } = *args;
    let isa = Isa::detect();
    let (cin_g, cout_g) = (p.cin / p.group, p.cout / p.group);
    let k = p.k();
    let ohw = oh * ow;
    let wlen = packed_len(cout_g, k);
    assert!(weight.len() >= p.group * wlen, "conv2d: packed weights are too short");
    // Read under masks or not, worked out once for every image and group (a strided layer's phase planes
    // included).
    let unpadded = p.unpadded(isa, [h, w], [oh, ow], pre.is_some()).filter(|_| in_place);
    for img in 0..n {
        let xi = &x[img * x_stride..img * x_stride + p.cin * h * w];
        let yi = &mut y[img * y_stride..img * y_stride + p.cout * ohw];
        for g in 0..p.group {
            let xg = &xi[g * cin_g * h * w..(g + 1) * cin_g * h * w];
            let epi = Epilogue { accumulate, bias: bias.map(|b| &b[g * cout_g..(g + 1) * cout_g]), act };
            let yg = &mut yi[g * cout_g * ohw..(g + 1) * cout_g * ohw];
            let wg = &weight[g * wlen..(g + 1) * wlen];
            let pre = pre.map(|f| (f, g * cin_g));
            if let Some(Unpadded::Planes(ph)) = &unpadded {
                // Strided, under per-tap masks: from its unpadded phase planes, then the tap offsets, in
                // `scratch`.
                assert!(scratch.len() >= ph.len(cin_g) + k, "conv2d: scratch is too small for the phase planes");
                let (planes, rest) = scratch.split_at_mut(ph.len(cin_g));
                ph.fill(xg, pre.as_ref(), planes);
                let b = ph.tap_b(planes, cin_g, oh, rest);
                gemm_taps(isa, cout_g, wg, &b, yg, ohw, &epi, threads);
                continue;
            }
            if let Some(Unpadded::Input) = unpadded {
                // Straight from the input under per-tap masks; the tap offsets go at the front of `scratch`.
                let b = TapB::new(xg, cin_g, h, w, p.kernel, p.dilations, [p.pads[0], p.pads[1]], oh, scratch);
                gemm_taps(isa, cout_g, wg, &b, yg, ohw, &epi, threads);
                continue;
            }
            if in_place || p.reads_planes() {
                conv_padded(in_place, xg, h, w, p, wg, &epi, pre, oh, ow, yg, scratch, isa, threads);
                continue;
            }
            let src = ConvB { x: xg, h, w, p, ow, pre };
            gemm_packed(isa, cout_g, ohw, k, wg, &src, yg, ohw, &epi, threads, scratch);
        }
    }
}

/// One image and group of a convolution through its padded input: the input, zero-padded (and passed
/// through `pre`) into `scratch`; with `in_place`, [`gemm_shifted`] over shifted views of it, one offset
/// per kernel tap (c, u, v) in the k order of the packed weights.
///
/// Stride s splits the padded input into s0·s1 phase planes, phase (a, b) holding rows a, a + s0, … and
/// columns b, b + s1, …: output pixel (i, j) under tap (u, v) reads padded pixel (s0·i + u·d0, s1·j + v·d1),
/// which is pixel (i + ⌊u·d0/s0⌋, j + ⌊v·d1/s1⌋) of phase (u·d0 mod s0, v·d1 mod s1). So every tap is
/// still a shifted view of one plane, and a stride-2 convolution reads as a stride-1 one. With stride 1
/// there is one phase: the padded input. Only the planes of phases some tap reads are built
/// ([`Conv2d::phase_count`]).
///
/// With weights too large for that (each in-place tile passes over all of them; not a 1x1), `in_place` is
/// false: the same planes, then [`gemm_packed`] packs its B tiles from them ([`PackedShifted`]: contiguous
/// copies, the padding and stride done once by the planes). Gathering each tile straight from the input
/// instead tests every run of an output row against the padding and, with stride 2, gathers every other
/// value: that packing was 29% of a 256→256 3x3 stride-2 convolution at 28 px (`conv_bench` under perf),
/// with the product 71%.
#[allow(clippy::too_many_arguments)]
fn conv_padded(
    in_place: bool,
    x: &[f32],
    h: usize,
    w: usize,
    p: &Conv2d,
    weight: &[f32],
    epi: &Epilogue,
    pre: Option<(Pre, usize)>,
    oh: usize,
    ow: usize,
    y: &mut [f32],
    scratch: &mut [f32],
    isa: Isa,
    threads: usize,
) {
    if oh == 0 || ow == 0 {
        return;
    }
    let (b, packing) = shifted_input(x, h, w, p, pre, oh, ow, scratch);
    let m = p.cout / p.group;
    match in_place {
        true => gemm_shifted(isa, m, weight, &b, y, oh * ow, epi, threads),
        false => gemm_packed(isa, m, oh * ow, p.k(), weight, &PackedShifted(b), y, oh * ow, epi, threads, packing),
    }
}

/// Builds one image and group's zero-padded phase planes (the prologue applied) and tap offsets at the
/// front of `scratch` ([`Conv2d::planes_len`] floats); returns B as their shifted views, and the rest of
/// the scratch.
#[allow(clippy::too_many_arguments)]
fn shifted_input<'s>(
    x: &[f32],
    h: usize,
    w: usize,
    p: &Conv2d,
    pre: Option<(Pre, usize)>,
    oh: usize,
    ow: usize,
    scratch: &'s mut [f32],
) -> (ShiftedB<'s>, &'s mut [f32]) {
    assert!(scratch.len() >= p.planes_len(oh, ow), "conv2d: scratch is too small for the padded input");
    let cin_g = p.cin / p.group;
    let [s0, s1] = p.strides;
    let (hq, wq) = p.phase_dims(oh, ow);
    let (plane, phases) = (hq * wq, p.phase_count());
    let (padded, rest) = scratch.split_at_mut(cin_g * phases * plane + SLACK);
    // Channel by channel, the channels split between the threads (each channel's phase planes are one
    // chunk): a serial copy was a tenth of a small ResNet's time on 2 threads, the other thread waiting.
    let geo = PadGeometry::new(p, h, w, oh, ow);
    for_chunks_mut(&mut padded[..cin_g * phases * plane], phases * plane, |c, chan| {
        pad_channel(p, &geo, &x[c * h * w..(c + 1) * h * w], c, pre.as_ref(), chan)
    });
    padded[cin_g * phases * plane..].fill(0.0);
    let [kh, kw] = p.kernel;
    // Offsets stored in the float scratch as u32 bit patterns (same size and alignment; every pattern is
    // valid for both), so that a run allocates nothing.
    let (offs_f, rest) = rest.split_at_mut(p.k());
    // Tap (u, v)'s offset within a channel's planes, computed once per tap, not per channel.
    let slot_of = |a: usize, b: usize| geo.phases[..geo.count].iter().find(|q| (q.a, q.b) == (a, b)).map(|q| q.slot);
    for u in 0..kh {
        for v in 0..kw {
            let (du, dv) = (u * p.dilations[0], v * p.dilations[1]);
            let slot = slot_of(du % s0, dv % s1).expect("every tap's phase is built");
            let tap = slot * plane + du / s0 * wq + dv / s1;
            for c in 0..cin_g {
                let off = c * phases * plane + tap;
                offs_f[(c * kh + u) * kw + v] = f32::from_bits(u32::try_from(off).expect("offsets fit u32"));
            }
        }
    }
    // SAFETY: f32 and u32 have the same size and alignment, and any bits are a valid u32.
    let offs: &[u32] = unsafe { std::slice::from_raw_parts(offs_f.as_ptr() as *const u32, offs_f.len()) };
    (ShiftedB { data: padded, offs, width: ow, rows: oh, stride: wq }, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B's packing gives the same bits through its AVX2 twin and the baseline body: pointwise with a
    /// prologue (none, Relu, Sigmoid; a NaN among the inputs), and gathered 3x3 stride-2 rows.
    #[test]
    fn packing_same_bits_with_and_without_avx2() {
        let (h, w) = (9, 37);
        let x: Vec<f32> =
            (0..3 * h * w).map(|i| if i == 5 { f32::NAN } else { ((i * 7 % 13) as f32 - 6.0) / 3.0 }).collect();
        let scale = [1.5f32, -0.75, 2.0];
        let shift = [-0.25f32, 0.5, 0.0];
        let conv = |k: usize, s: usize, pad: usize| Conv2d {
            cin: 3,
            cout: 4,
            kernel: [k, k],
            strides: [s, s],
            pads: [pad; 4],
            dilations: [1, 1],
            group: 1,
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (p, act) in [
            (conv(1, 1, 0), None),
            (conv(1, 1, 0), Some(UnaryOp::Relu)),
            (conv(1, 1, 0), Some(UnaryOp::Sigmoid)),
            (conv(3, 2, 1), Some(UnaryOp::Relu)),
            (conv(3, 2, 0), None),
        ] {
            let oh = (h + 2 * p.pads[0] - p.kernel[0]) / p.strides[0] + 1;
            let ow = (w + 2 * p.pads[1] - p.kernel[1]) / p.strides[1] + 1;
            let pre = Some((Pre { scale: &scale, shift: &shift, act }, 0));
            let b = ConvB { x: &x, h, w, p: &p, ow, pre };
            let (kc, nc, nr) = (p.k(), (oh * ow).min(MAX_BLOCK), 16);
            let (mut got, mut want) =
                (vec![0f32; kc * nc.next_multiple_of(nr)], vec![0f32; kc * nc.next_multiple_of(nr)]);
            b.pack(0, kc, 0, nc, &mut got, nr);
            b.pack_body(0, kc, 0, nc, &mut want, nr);
            assert_eq!(bits(&got), bits(&want), "{p:?} {act:?}");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        p: &Conv2d,
        wt: &[f32],
        b: &[f32],
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let (cg, mg) = (p.cin / p.group, p.cout / p.group);
        let [kh, kw] = p.kernel;
        let mut y = vec![0.0; n * p.cout * oh * ow];
        for img in 0..n {
            for m in 0..p.cout {
                let g = m / mg;
                for i in 0..oh {
                    for j in 0..ow {
                        let mut s = b[m] as f64;
                        for c in 0..cg {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let yy = (i * p.strides[0] + u * p.dilations[0]) as isize - p.pads[0] as isize;
                                    let xx = (j * p.strides[1] + v * p.dilations[1]) as isize - p.pads[1] as isize;
                                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                        let xv = x[((img * p.cin + g * cg + c) * h + yy as usize) * w + xx as usize];
                                        s += xv as f64 * wt[((m * cg + c) * kh + u) * kw + v] as f64;
                                    }
                                }
                            }
                        }
                        y[((img * p.cout + m) * oh + i) * ow + j] = s as f32;
                    }
                }
            }
        }
        y
    }

    /// `gather_even` with its overlapping tail groups, for every length, from the shortest source it is
    /// given and from longer ones.
    #[test]
    fn gather_even_takes_every_other_value_from_the_shortest_source() {
        for len in 0..40 {
            // The shortest source, and longer ones (the main loop then finishes more of the row itself).
            for extra in [0, 1, 16] {
                let src: Vec<f32> = (0..((2 * len).max(1) - 1 + extra)).map(|i| i as f32).collect();
                let mut dst = vec![f32::NAN; len + 1];
                gather_even(&mut dst[..len], &src);
                let want: Vec<f32> = (0..len).map(|j| (2 * j) as f32).collect();
                assert_eq!(&dst[..len], &want[..], "len {len}, source {}", src.len());
                assert!(dst[len].is_nan(), "len {len}: wrote past the end");
            }
        }
    }

    /// Only the phases a tap reads get a plane, in row-major slots.
    #[test]
    fn phase_planes_only_for_the_phases_taps_read() {
        let conv = |k: [usize; 2], s: [usize; 2], d: [usize; 2]| Conv2d {
            cin: 2,
            cout: 2,
            kernel: k,
            strides: s,
            pads: [0; 4],
            dilations: d,
            group: 1,
        };
        // 1x1 stride 2: phase (0, 0) alone, a quarter of the input.
        let p = conv([1, 1], [2, 2], [1, 1]);
        assert_eq!(
            (p.phase_count(), p.phase_slot(0, 0), p.phase_slot(1, 0), p.phase_slot(0, 1)),
            (1, Some(0), None, None)
        );
        // 3x3 stride 2: all four.
        let p = conv([3, 3], [2, 2], [1, 1]);
        assert_eq!(p.phase_count(), 4);
        assert_eq!(
            (0..2).flat_map(|a| (0..2).map(move |b| (a, b))).map(|(a, b)| p.phase_slot(a, b)).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3)]
        );
        // Rows: stride 2, dilation 2 (every tap in phase 0); columns: stride 3, three taps (phases 0-2).
        let p = conv([3, 3], [2, 3], [2, 1]);
        assert_eq!((p.phase_count(), p.phase_slot(0, 2), p.phase_slot(1, 0)), (3, Some(2), None));
        // Stride 1: the padded input itself.
        assert_eq!(conv([3, 3], [1, 1], [1, 1]).phase_count(), 1);
    }

    /// Strides wider than the input: some phase planes get no input column at all.
    #[test]
    fn in_place_with_strides_wider_than_the_input() {
        let cases = [
            (
                // (A 1x1 gathers instead: see `reads_in_place`; 1x2 reads two phases of sixteen.)
                Conv2d { cin: 2, cout: 3, kernel: [1, 2], strides: [4, 4], pads: [0; 4], dilations: [1, 1], group: 1 },
                2,
                2,
            ),
            (
                Conv2d { cin: 2, cout: 3, kernel: [3, 3], strides: [3, 3], pads: [1; 4], dilations: [1, 1], group: 1 },
                1,
                1,
            ),
            (
                Conv2d {
                    cin: 1,
                    cout: 2,
                    kernel: [2, 2],
                    strides: [5, 5],
                    pads: [3, 3, 0, 0],
                    dilations: [1, 1],
                    group: 1,
                },
                3,
                3,
            ),
        ];
        for (p, h, w) in cases {
            let oh = (h + p.pads[0] + p.pads[2] - p.dilations[0] * (p.kernel[0] - 1) - 1) / p.strides[0] + 1;
            let ow = (w + p.pads[1] + p.pads[3] - p.dilations[1] * (p.kernel[1] - 1) - 1) / p.strides[1] + 1;
            assert!(p.reads_in_place(ow));
            let x: Vec<f32> = (0..p.cin * h * w).map(|i| i as f32 - 1.5).collect();
            let wt: Vec<f32> = (0..p.cout * p.k()).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
            let b: Vec<f32> = (0..p.cout).map(|i| i as f32).collect();
            let want = naive(&x, 1, h, w, &p, &wt, &b, oh, ow);
            let mut y = vec![f32::NAN; want.len()];
            let mut scratch = vec![0.0; p.scratch_len(oh, ow, 1)];
            let packed = p.pack_weights(&wt);
            conv2d_as(
                true,
                &ConvArgs { bias: Some(&b), ..ConvArgs::new(&x, 1, h, w, &p, &packed, oh, ow) },
                &mut y,
                &mut scratch,
                1,
            );
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e).abs() <= 1e-5, "{p:?}: {a} vs {e}");
            }
        }
    }

    /// A convolution's geometry in one line: (C, M, kernel, strides, [top, left, bottom, right], dilations,
    /// groups).
    fn geometry(
        cin: usize,
        cout: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        pads: [usize; 4],
        dilations: [usize; 2],
        group: usize,
    ) -> Conv2d {
        Conv2d { cin, cout, kernel, strides, pads, dilations, group }
    }

    #[test]
    fn matches_naive_over_geometries() {
        let cases = [
            geometry(3, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1),
            geometry(4, 6, [1, 1], [1, 1], [0; 4], [1, 1], 1),
            // Grouped pointwise: the prologue's channel is the group's first channel plus the row.
            geometry(6, 4, [1, 1], [1, 1], [0; 4], [1, 1], 2),
            geometry(4, 8, [1, 1], [2, 2], [0; 4], [1, 1], 1),
            geometry(8, 8, [3, 3], [2, 2], [1, 0, 2, 1], [1, 1], 4),
            geometry(6, 6, [3, 3], [1, 1], [2, 2, 2, 2], [2, 2], 6),
            geometry(40, 20, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1),
            geometry(300, 9, [1, 1], [1, 1], [0; 4], [1, 1], 1),
            geometry(3, 5, [7, 7], [2, 2], [3, 3, 3, 3], [1, 1], 1),
        ];
        let extra = [
            geometry(5, 7, [3, 2], [1, 1], [0, 1, 2, 0], [1, 1], 1),
            // Unequal strides with dilation: taps land in different phase planes at different shifts.
            geometry(4, 5, [3, 3], [2, 3], [1, 2, 0, 1], [2, 1], 1),
            // 25 phase planes, past MAX_PHASES: tiles gathered from the input.
            geometry(2, 3, [5, 5], [5, 5], [2, 2, 2, 2], [1, 1], 1),
            // Stride 1, as wide as the input but 2 rows shorter (no padding above or below): on AVX-512
            // read under masks, whose row bounds then differ from the output's.
            geometry(5, 7, [3, 3], [1, 1], [0, 1, 0, 1], [1, 1], 1),
            // A 1x3 and a 5x5 kernel, as wide as the input: 3 and 25 taps under masks.
            geometry(4, 6, [1, 3], [1, 1], [0, 1, 0, 1], [1, 1], 1),
            geometry(3, 5, [5, 5], [1, 1], [2, 2, 2, 2], [1, 1], 1),
            // Side padding wider than 8: the padded copy's gap between rows takes its general branch.
            geometry(3, 4, [3, 3], [1, 1], [1, 9, 1, 9], [1, 1], 1),
        ];
        // A narrow and two wide images: output rows shorter than a micro-tile, spanning several, and ending
        // in half a tile (24 = 16 + 8); and rows longer than a packed block (one run per block row); and
        // 7 × 7, whose 49th pixel is a one-column tile; and a one-pixel-wide image.
        for ((n, h, w), p) in [(2, 11, 9), (1, 5, 37), (1, 4, 24), (1, 7, 2 * MAX_BLOCK + 21), (1, 7, 7), (1, 9, 1)]
            .into_iter()
            .flat_map(|s| cases.iter().chain(&extra).map(move |p| (s, *p)))
        {
            // (The one-pixel-wide image is too narrow for some kernels: those cases are skipped.)
            let out = |size: usize, a: usize| {
                let reach = p.dilations[a] * (p.kernel[a] - 1) + 1;
                (size + p.pads[a] + p.pads[a + 2]).checked_sub(reach).map(|d| d / p.strides[a] + 1)
            };
            let (Some(oh), Some(ow)) = (out(h, 0), out(w, 1)) else { continue };
            let x: Vec<f32> = (0..n * p.cin * h * w).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let wt: Vec<f32> = (0..p.cout * p.k()).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let b: Vec<f32> = (0..p.cout).map(|i| i as f32 * 0.1 - 0.2).collect();
            let want = naive(&x, n, h, w, &p, &wt, &b, oh, ow);
            let mut y = vec![f32::NAN; want.len()];
            // NaN, not zeros: a padding value the copy forgot to write shows up in the output.
            // (The in-place strategy's length, plus packing for the gathered one this test also runs.)
            let mut scratch =
                vec![f32::NAN; p.scratch_len(oh, ow, 2) + super::super::gemm::scratch_len(Isa::detect(), 2)];
            let wt_raw = wt;
            let wt = p.pack_weights(&wt_raw);
            // Both strategies where the geometry allows reading in place, and the same bits
            // whatever the thread count.
            let strategies: &[bool] = if p.reads_in_place(ow) { &[true, false] } else { &[false] };
            for &in_place in strategies {
                let mut bits: Option<Vec<f32>> = None;
                for threads in [1, 2] {
                    y.fill(f32::NAN);
                    conv2d_as(
                        in_place,
                        &ConvArgs { bias: Some(&b), ..ConvArgs::new(&x, n, h, w, &p, &wt, oh, ow) },
                        &mut y,
                        &mut scratch,
                        threads,
                    );
                    for (a, e) in y.iter().zip(&want) {
                        assert!((a - e).abs() <= 1e-4 + 1e-4 * e.abs(), "{p:?} in place {in_place}: {a} vs {e}");
                    }
                    match &bits {
                        None => bits = Some(y.clone()),
                        Some(b) => assert_eq!(b, &y, "{p:?}: thread count changed the bits"),
                    }
                }
            }
            // The epilogues and the prologue below, on both strategies where both apply.
            for &in_place in strategies {
                conv2d_as(
                    in_place,
                    &ConvArgs {
                        bias: Some(&b),
                        act: Some(UnaryOp::Relu),
                        ..ConvArgs::new(&x, n, h, w, &p, &wt, oh, ow)
                    },
                    &mut y,
                    &mut scratch,
                    1,
                );
                for (a, e) in y.iter().zip(&want) {
                    assert!((a - e.max(0.0)).abs() <= 1e-4 + 1e-4 * e.abs());
                }
                // Residual epilogue: y enters holding the skip; y = relu(conv + b + skip).
                let skip: Vec<f32> = (0..want.len()).map(|i| (i % 7) as f32 - 3.0).collect();
                y.copy_from_slice(&skip);
                conv2d_as(
                    in_place,
                    &ConvArgs {
                        bias: Some(&b),
                        act: Some(UnaryOp::Relu),
                        accumulate: true,
                        ..ConvArgs::new(&x, n, h, w, &p, &wt, oh, ow)
                    },
                    &mut y,
                    &mut scratch,
                    2,
                );
                for ((a, e), s) in y.iter().zip(&want).zip(&skip) {
                    assert!((a - (e + s).max(0.0)).abs() <= 1e-4 + 1e-4 * e.abs(), "{p:?} in place {in_place}");
                }
            }
            // Prologue: conv(act(s·x + t)) equals the plain conv of the transformed input, with Relu and
            // without an activation (each channel has its own s and t: a wrong channel offset shows).
            let (sc, sh): (Vec<f32>, Vec<f32>) =
                (0..p.cin).map(|c| (0.5 + c as f32 * 0.25, c as f32 * 0.1 - 0.3)).unzip();
            for act in [Some(UnaryOp::Relu), None] {
                let xt: Vec<f32> = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let t = sc[(i / (h * w)) % p.cin] * v + sh[(i / (h * w)) % p.cin];
                        if act.is_some() {
                            t.max(0.0)
                        } else {
                            t
                        }
                    })
                    .collect();
                let want_pre = naive(&xt, n, h, w, &p, &wt_raw, &b, oh, ow);
                let pre = Pre { scale: &sc, shift: &sh, act };
                for &in_place in strategies {
                    conv2d_as(
                        in_place,
                        &ConvArgs { bias: Some(&b), pre: Some(pre), ..ConvArgs::new(&x, n, h, w, &p, &wt, oh, ow) },
                        &mut y,
                        &mut scratch,
                        2,
                    );
                    for (a, e) in y.iter().zip(&want_pre) {
                        assert!((a - e).abs() <= 1e-4 + 1e-4 * e.abs(), "{p:?} with prologue {act:?}: {a} vs {e}");
                    }
                }
            }
        }
    }
}
