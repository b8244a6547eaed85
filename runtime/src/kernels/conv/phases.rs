//! A strided convolution's input split into unpadded phase planes as wide as its output, so that
//! [`gemm_taps`](super::gemm_taps) reads it in place under per-tap masks, as it reads a stride-1
//! convolution's input (see [`Conv2d::reads_unpadded`]).
//!
//! Math: along an axis with stride s, dilation d and padding t before the input, kernel position u reads
//! input coordinate o·s + u·d − t for output coordinate o. Write u·d − t = s·shift_u + phase_u
//! (0 ≤ phase_u < s): that is coordinate o + shift_u of phase plane phase_u, the plane holding input
//! coordinates phase_u, phase_u + s, phase_u + 2s, … So each tap reads one plane shifted by a constant,
//! consecutive output pixels read consecutive plane pixels when planes are exactly as wide as the
//! output, and the padding (and anything past the input) is where the shifted coordinate leaves the
//! plane's extent — which the tap masks stand for, so no zero is stored. A 3x3 stride-2 layer with
//! padding 1 reads phases 1, 0, 1 at shifts −1, 0, 0 along each axis.
//!
//! This module owns the planes' geometry and the copy into them; it must not touch the GEMM's tiles
//! or masks (`gemm::TapB` checks every plane it is given against the data).

use super::{copy_short, for_chunks_mut, gather_even, Conv2d, Pre};
use crate::kernels::gemm::{TapAxis, TapB, MAX_TAPS};

/// Floats left unused after each plane. Planes of a power-of-two size (16 × 16 floats, 4 of them a
/// channel: 4 KiB) put every channel's rows in the same L1 sets, and a tile reads all its channels'
/// rows at once: more lines per set than L1 has ways. One cache line of gap moves each plane to other sets.
pub(super) const PLANE_GAP: usize = 16;

/// Where one image and group's phase planes lie and what fills them (see the module doc).
#[derive(Clone, Copy, Debug)]
pub(super) struct PhasePlanes {
    ys: TapAxis,
    xs: TapAxis,
    rows: Axis,
    cols: Axis,
    /// The input's size.
    h: usize,
    w: usize,
    /// Rows of every plane (each `ow` floats).
    plane_rows: usize,
    ow: usize,
    strides: [usize; 2],
}

/// One axis's kernel positions: the phase each reads and its shift (`u·d − t = s·shift + phase`), the
/// phases some position reads (ascending) and each position's rank among them.
#[derive(Clone, Copy, Debug)]
struct Axis {
    phase: [usize; MAX_TAPS],
    shift: [isize; MAX_TAPS],
    read: [usize; MAX_TAPS],
    count: usize,
    rank: [usize; MAX_TAPS],
    len: usize,
}

impl Axis {
    fn new(len: usize, dilation: usize, pad: usize, stride: usize) -> Self {
        assert!(len <= MAX_TAPS && stride > 0);
        let mut a = Axis {
            phase: [0; MAX_TAPS],
            shift: [0; MAX_TAPS],
            read: [0; MAX_TAPS],
            count: 0,
            rank: [0; MAX_TAPS],
            len,
        };
        for u in 0..len {
            let r = (u * dilation) as isize - pad as isize;
            (a.phase[u], a.shift[u]) = (r.rem_euclid(stride as isize) as usize, r.div_euclid(stride as isize));
            // Insert the phase into the ascending list of those read, unless it is there.
            if let Err(at) = a.read[..a.count].binary_search(&a.phase[u]) {
                a.read.copy_within(at..a.count, at + 1);
                a.read[at] = a.phase[u];
                a.count += 1;
            }
        }
        for u in 0..len {
            a.rank[u] = a.read[..a.count].binary_search(&a.phase[u]).expect("listed");
        }
        a
    }

    /// (phase, shift) of each kernel position.
    fn taps(&self) -> impl Iterator<Item = (usize, isize)> + '_ {
        self.phase[..self.len].iter().copied().zip(self.shift[..self.len].iter().copied())
    }
}

/// Coordinates of phase `phase` in an input `extent` long: phase, phase + s, … below extent.
fn phase_len(extent: usize, phase: usize, stride: usize) -> usize {
    extent.saturating_sub(phase).div_ceil(stride)
}

impl PhasePlanes {
    /// The planes of convolution `p` over an `h × w` input for an `oh × ow` output, or `None` when they
    /// cannot be as wide as the output: a tap reading to the right of its output pixel (positive shift)
    /// from a phase with more columns than the output has (the columns past the output's width would
    /// not fit in a plane row), or more taps than [`MAX_TAPS`], or stride 1 (read the input itself).
    pub(super) fn new(p: &Conv2d, h: usize, w: usize, oh: usize, ow: usize) -> Option<Self> {
        let ([kh, kw], [s0, s1], [d0, d1]) = (p.kernel, p.strides, p.dilations);
        if kh * kw == 0 || kh * kw > MAX_TAPS || p.strides == [1, 1] || s0 == 0 || s1 == 0 || oh * ow == 0 {
            return None;
        }
        let (rows, cols) = (Axis::new(kh, d0, p.pads[0], s0), Axis::new(kw, d1, p.pads[1], s1));
        if cols.taps().any(|(phase, shift)| shift > 0 && phase_len(w, phase, s1) > ow) {
            return None;
        }
        // Every plane holds the most rows any tap reads that exist (output row oh − 1 reads plane row
        // oh − 1 + shift).
        let needed =
            |(phase, shift): (usize, isize)| phase_len(h, phase, s0).min((oh as isize + shift).max(0) as usize);
        let plane_rows = rows.taps().map(needed).max().unwrap_or(0);
        let ys = TapAxis {
            shift: rows.shift,
            extent: std::array::from_fn(|u| phase_len(h, rows.phase[u], s0).min(plane_rows)),
            len: kh,
        };
        let xs = TapAxis {
            shift: cols.shift,
            extent: std::array::from_fn(|v| phase_len(w, cols.phase[v], s1).min(ow)),
            len: kw,
        };
        Some(PhasePlanes { ys, xs, rows, cols, h, w, plane_rows, ow, strides: [s0, s1] })
    }

    /// Floats from one plane to the next: its rows, then [`PLANE_GAP`].
    fn plane_len(&self) -> usize {
        match self.plane_rows * self.ow {
            0 => 0,
            n => n + PLANE_GAP,
        }
    }

    /// Floats of one channel's planes.
    fn channel_len(&self) -> usize {
        self.rows.count * self.cols.count * self.plane_len()
    }

    /// Floats of `channels` channels' planes.
    pub(super) fn len(&self, channels: usize) -> usize {
        channels * self.channel_len()
    }

    /// Copies `channels` input planes `x` (`[channels, h, w]`) into their phase planes at the front of
    /// `planes` ([`PhasePlanes::len`] floats), passing each value through `pre` (channel `c0 + c`), the
    /// channels split between the threads. Plane columns past a phase's extent are left as they are:
    /// no mask lets a lane read them.
    pub(super) fn fill(&self, x: &[f32], pre: Option<&(Pre, usize)>, planes: &mut [f32]) {
        let (per, plane) = (self.channel_len(), self.plane_len());
        if per == 0 {
            return; // every tap reads only padding: no plane has a row
        }
        let (h, w, ow) = (self.h, self.w, self.ow);
        let channels = planes.len() / per;
        assert!(x.len() >= channels * h * w, "conv2d: the input is too small for its phase planes");
        let [s0, s1] = self.strides;
        // Rows and columns each read phase has (within the planes).
        let rows_of = |a: usize| phase_len(h, a, s0).min(self.plane_rows);
        let cols_of = |b: usize| phase_len(w, b, s1).min(ow);
        #[cfg(target_arch = "x86_64")]
        let simd = std::arch::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let simd = false;
        let (row_phases, col_phases) = (&self.rows.read[..self.rows.count], &self.cols.read[..self.cols.count]);
        for_chunks_mut(planes, per, |c, chan| {
            let src = &x[c * h * w..(c + 1) * h * w];
            for (ra, &a) in row_phases.iter().enumerate() {
                let group = &mut chan[ra * col_phases.len() * plane..][..col_phases.len() * plane];
                let rows = rows_of(a);
                if s1 == 2 && col_phases.len() == 2 {
                    // Both column phases of a stride-2 input: one pass per row splits it.
                    let (ne, no) = (cols_of(0), cols_of(1));
                    let (even, odd) = group.split_at_mut(plane);
                    Rows { src, w, s0, a, rows, ow }.deinterleave((even, ne), (odd, no), simd);
                    if let Some((f, c0)) = pre {
                        for i in 0..rows {
                            f.apply_row(c0 + c, &mut even[i * ow..][..ne]);
                            f.apply_row(c0 + c, &mut odd[i * ow..][..no]);
                        }
                    }
                    continue;
                }
                for i in 0..rows {
                    let input = &src[(i * s0 + a) * w..][..w];
                    for (rb, &b) in col_phases.iter().enumerate() {
                        let n = cols_of(b);
                        if n == 0 {
                            continue; // a phase past the input's width (a stride wider than the input)
                        }
                        let dst = &mut group[rb * plane + i * ow..][..n];
                        match s1 {
                            1 => copy_short(dst, &input[b..b + n]),
                            2 => gather_even(dst, &input[b..]),
                            _ => dst.iter_mut().zip(input[b..].iter().step_by(s1)).for_each(|(o, &v)| *o = v),
                        }
                        if let Some((f, c0)) = pre {
                            f.apply_row(c0 + c, dst);
                        }
                    }
                }
            }
        });
    }

    /// B of the product over `planes` (filled by [`PhasePlanes::fill`] for `channels` channels) for an
    /// output of `oh` rows, the tap offsets written to the front of `scratch`.
    pub(super) fn tap_b<'a>(&self, planes: &'a [f32], channels: usize, oh: usize, scratch: &'a mut [f32]) -> TapB<'a> {
        let (per, plane, nc) = (self.channel_len(), self.plane_len(), self.cols.count);
        let at = |c: usize, u: usize, v: usize| c * per + (self.rows.rank[u] * nc + self.cols.rank[v]) * plane;
        TapB::planes(planes, channels, self.ow, oh, self.ys, self.xs, at, scratch)
    }
}

/// Rows a, a + s0, … (`rows` of them) of one channel's input `src` (`w` wide), and the width `ow` of
/// the planes they are split into.
struct Rows<'s> {
    src: &'s [f32],
    w: usize,
    s0: usize,
    a: usize,
    rows: usize,
    ow: usize,
}

impl Rows<'_> {
    /// Splits each row into its two column phases: `even[i·ow + j]` = column 2j of row i (j < ne) and
    /// `odd[i·ow + j]` = column 2j + 1 (j < no). With `simd` (the CPU has AVX-512F), 16 of each per two
    /// vectors (two loads, two permutes, two stores), one call for all the rows (a call per row cost
    /// more than its moves); one value at a time otherwise. Panics if a row or plane is too short.
    fn deinterleave(&self, (even, ne): (&mut [f32], usize), (odd, no): (&mut [f32], usize), simd: bool) {
        let Rows { src, w, s0, a, rows, ow } = *self;
        if rows == 0 {
            return;
        }
        assert!(ne <= ow && no <= ow && 2 * ne <= w + 1 && 2 * no <= w, "deinterleave: {ne} + {no} from {w}");
        assert!(((rows - 1) * s0 + a + 1) * w <= src.len(), "deinterleave: the input has too few rows");
        assert!(
            even.len() >= (rows - 1) * ow + ne && odd.len() >= (rows - 1) * ow + no,
            "deinterleave: planes too short"
        );
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the caller detected AVX-512F; the bounds are checked above.
            unsafe { self.deinterleave_avx512(even, ne, odd, no) };
            return;
        }
        let _ = simd;
        for i in 0..rows {
            let row = &src[(i * s0 + a) * w..][..w];
            for (j, e) in even[i * ow..][..ne].iter_mut().enumerate() {
                *e = row[2 * j];
            }
            for (j, o) in odd[i * ow..][..no].iter_mut().enumerate() {
                *o = row[2 * j + 1];
            }
        }
    }

    /// # Safety
    /// AVX-512F is available, and the bounds [`Rows::deinterleave`] asserts hold.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn deinterleave_avx512(&self, even: &mut [f32], ne: usize, odd: &mut [f32], no: usize) {
        use std::arch::x86_64::*;
        let Rows { src, w, s0, a, rows, ow } = *self;
        let idx_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let idx_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let lanes = |n: usize| -> __mmask16 {
            if n >= 16 {
                0xffff
            } else {
                (1u16 << n) - 1
            }
        };
        // Chunks of 16 outputs outside, rows inside: each chunk's masks are worked out once for all
        // the rows (per row and chunk they were most of the instructions).
        let mut j = 0;
        while j < ne.max(no) {
            // Row values 2j .. 2j + 32, masked past the row's end: every lane an output takes is below
            // 2·ne − 1 or 2·no, within the row.
            let avail = w - 2 * j;
            let (m_lo, m_hi, hi_at) = (lanes(avail), lanes(avail.saturating_sub(16)), 2 * j + 16.min(avail));
            let (m_e, m_o) = (lanes(ne.saturating_sub(j)), lanes(no.saturating_sub(j)));
            for i in 0..rows {
                unsafe {
                    let row = src.as_ptr().add((i * s0 + a) * w);
                    let lo = _mm512_maskz_loadu_ps(m_lo, row.add(2 * j));
                    let hi = _mm512_maskz_loadu_ps(m_hi, row.add(hi_at));
                    // A zero mask stores nothing (and faults on nothing).
                    let e = _mm512_permutex2var_ps(lo, idx_even, hi);
                    _mm512_mask_storeu_ps(even.as_mut_ptr().add(i * ow + j.min(ne)), m_e, e);
                    let o = _mm512_permutex2var_ps(lo, idx_odd, hi);
                    _mm512_mask_storeu_ps(odd.as_mut_ptr().add(i * ow + j.min(no)), m_o, o);
                }
            }
            j += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deinterleave_matches_the_scalar_split_at_every_length() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for w in 1..80usize {
            // Rows 1, 3 and 5 of 7, into planes w/2 + 3 wide: every split the rows can fill.
            let src: Vec<f32> = (0..7 * w).map(|i| i as f32 + 0.5).collect();
            let ow = w / 2 + 3;
            for ne in 0..=w.div_ceil(2) {
                for no in [0, w / 4, w / 2] {
                    let rows = Rows { src: &src, w, s0: 2, a: 1, rows: 3, ow };
                    let mut planes = [vec![f32::NAN; 3 * ow], vec![f32::NAN; 3 * ow]];
                    let mut want = planes.clone();
                    let [e, o] = &mut planes;
                    rows.deinterleave((e, ne), (o, no), true);
                    let [e2, o2] = &mut want;
                    rows.deinterleave((e2, ne), (o2, no), false);
                    // Bit for bit, NaN (never written) included.
                    let bits = |v: &[Vec<f32>; 2]| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&planes), bits(&want), "w {w} even {ne} odd {no}");
                    for i in 0..3 {
                        for j in 0..ow {
                            let at = ((2 * i + 1) * w) as f32 + 0.5;
                            assert_eq!(want[0][i * ow + j].is_nan(), j >= ne);
                            assert_eq!(want[1][i * ow + j].is_nan(), j >= no);
                            if j < ne {
                                assert_eq!(want[0][i * ow + j], at + (2 * j) as f32);
                            }
                            if j < no {
                                assert_eq!(want[1][i * ow + j], at + (2 * j + 1) as f32);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn phase_planes_of_resnet_layers() {
        // A 3x3 stride-2 layer with padding 1 reads phases 1, 0, 1 at shifts −1, 0, 0 on each axis, from
        // 16 × 16 planes of a 32 × 32 input.
        let p =
            Conv2d { cin: 16, cout: 32, kernel: [3, 3], strides: [2, 2], pads: [1; 4], dilations: [1, 1], group: 1 };
        let g = PhasePlanes::new(&p, 32, 32, 16, 16).expect("planes");
        assert_eq!(g.ys.shift[..3], [-1, 0, 0]);
        assert_eq!(g.xs.shift[..3], [-1, 0, 0]);
        assert_eq!((g.rows.count, g.cols.count, g.plane_rows), (2, 2, 16));
        assert_eq!(g.rows.rank[..3], [1, 0, 1]);
        assert_eq!(g.len(16), 16 * 4 * (256 + PLANE_GAP));
        // A 1x1 stride-2 projection reads phase (0, 0) only.
        let p = Conv2d { kernel: [1, 1], pads: [0; 4], ..p };
        let g = PhasePlanes::new(&p, 32, 32, 16, 16).expect("planes");
        assert_eq!((g.rows.count, g.cols.count), (1, 1));
        // A tap to the right of its pixel in a phase wider than the output: no planes.
        let p = Conv2d { kernel: [1, 3], pads: [0; 4], ..p };
        assert!(PhasePlanes::new(&p, 32, 32, 16, 15).is_none());
        // Stride 1 reads the input itself.
        let p = Conv2d { strides: [1, 1], ..p };
        assert!(PhasePlanes::new(&p, 32, 32, 32, 30).is_none());
    }
}
