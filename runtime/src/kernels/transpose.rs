//! Strided matrix transposes: the GEMM's packing of transposed operands (a transposed B's micro-panels, A's
//! row panels) and the training steps' layout changes (a convolution input copied channels-last for its
//! weight gradient).
//!
//! Math: [`transpose`] is `dst[j·ldd + i] = src[i·lds + j]` for i < rows, j < cols; [`rows6`] is the same
//! for exactly 6 rows into a destination of row length 6, scaled: `dst[6j + i] = alpha · src[i·lds + j]`.
//! The AVX paths move 8 × 8 blocks through registers (8 row loads, three rounds of shuffles, 8 row
//! stores) instead of one strided access per element; the edges, and CPUs without AVX, take the scalar
//! loop. Both give the same bits (a transpose only moves values, and the scaling is one rounded multiply
//! either way).
//!
//! This module owns the unsafe SIMD of those transposes; its only entries are the safe functions.

/// `dst[j·ldd + i] = src[i·lds + j]` for i < rows, j < cols.
///
/// Panics if `src` or `dst` is too small for the shape and strides.
pub fn transpose(rows: usize, cols: usize, src: &[f32], lds: usize, dst: &mut [f32], ldd: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(lds >= cols && (rows - 1) * lds + cols <= src.len(), "transpose: src is too small");
    assert!(ldd >= rows && (cols - 1) * ldd + rows <= dst.len(), "transpose: dst is too small");
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    #[cfg(target_arch = "x86_64")]
    if r8 > 0 && c8 > 0 && std::arch::is_x86_feature_detected!("avx") {
        for i in (0..r8).step_by(8) {
            for j in (0..c8).step_by(8) {
                // SAFETY: AVX is available (checked); the block's rows i..i+8 at columns j..j+8 lie inside
                // src, and its rows j..j+8 at columns i..i+8 inside dst (both asserted above, as i + 8 ≤
                // rows and j + 8 ≤ cols).
                unsafe { x86::block8(src.as_ptr().add(i * lds + j), lds, dst.as_mut_ptr().add(j * ldd + i), ldd) };
            }
        }
        scalar(rows, cols, src, lds, dst, ldd, r8, c8);
        return;
    }
    scalar(rows, cols, src, lds, dst, ldd, 0, 0);
}

/// `dst[6j + i] = alpha · src[i·lds + j]` for i < 6, j < cols: six source rows made into `cols`
/// contiguous groups of six (the GEMM's packed A panel, [`super::gemm::MR`] = 6 rows).
///
/// Panics if `src` or `dst` is too small for the shape and stride.
pub fn rows6(cols: usize, src: &[f32], lds: usize, alpha: f32, dst: &mut [f32]) {
    if cols == 0 {
        return;
    }
    assert!(lds >= cols && 5 * lds + cols <= src.len(), "rows6: src is too small");
    assert!(6 * cols <= dst.len(), "rows6: dst is too small");
    // Columns before `done` went through the 8 × 8 blocks; the rest (all of them without AVX) are scalar.
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        done = cols / 8 * 8;
        for j in (0..done).step_by(8) {
            // SAFETY: AVX is available (checked); rows 0..6 at columns j..j+8 lie inside src, and the 48
            // floats at dst[6j..6j + 48] inside dst (asserted above, as j + 8 ≤ cols).
            unsafe { x86::rows6_block8(src.as_ptr().add(j), lds, alpha, dst.as_mut_ptr().add(6 * j)) };
        }
    }
    for j in done..cols {
        for i in 0..6 {
            dst[6 * j + i] = alpha * src[i * lds + j];
        }
    }
}

/// The scalar transpose of everything outside the block `[0, r8) × [0, c8)` (all of it when that is
/// empty).
#[allow(clippy::too_many_arguments)]
fn scalar(rows: usize, cols: usize, src: &[f32], lds: usize, dst: &mut [f32], ldd: usize, r8: usize, c8: usize) {
    for i in 0..rows {
        let j0 = if i < r8 { c8 } else { 0 };
        for j in j0..cols {
            dst[j * ldd + i] = src[i * lds + j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 8 × 8 in registers: returns the columns of the 8 rows `r` (output c holds element c of every row).
    #[inline(always)]
    unsafe fn t8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// Six rows of 8 floats (at `s + r·lds`), scaled by `alpha`, stored as 8 groups of six: the 48
    /// floats at `d`. Rows 6 and 7 of the 8 × 8 transpose repeat row 5 (nothing past the six rows is
    /// read); each group is stored as 4 + 2 floats, so nothing past the 48 is written.
    ///
    /// # Safety
    /// AVX must be available; `s + r·lds + [0, 8)` readable for r < 6, `d + [0, 48)` writable.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn rows6_block8(s: *const f32, lds: usize, alpha: f32, d: *mut f32) {
        unsafe {
            let a = _mm256_set1_ps(alpha);
            let r: [__m256; 8] = std::array::from_fn(|k| _mm256_mul_ps(a, _mm256_loadu_ps(s.add(k.min(5) * lds))));
            for (c, v) in t8(r).iter().enumerate() {
                _mm_storeu_ps(d.add(6 * c), _mm256_castps256_ps128(*v));
                _mm_storel_epi64(d.add(6 * c + 4) as *mut __m128i, _mm_castps_si128(_mm256_extractf128_ps::<1>(*v)));
            }
        }
    }

    /// Transposes one 8 × 8 block: row r of the source (8 floats at `s + r·lds`) becomes column r of
    /// the destination (float r of the 8 at `d + c·ldd`, for every c).
    ///
    /// # Safety
    /// AVX must be available; `s + r·lds + [0, 8)` readable and `d + c·ldd + [0, 8)` writable for r, c < 8.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn block8(s: *const f32, lds: usize, d: *mut f32, ldd: usize) {
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(s.add(k * lds)));
            let o = t8(r);
            for (c, v) in o.iter().enumerate() {
                _mm256_storeu_ps(d.add(c * ldd), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_for_ragged_shapes_and_strides() {
        for &(rows, cols) in &[(1, 1), (3, 5), (8, 8), (9, 17), (16, 24), (64, 34), (13, 8), (8, 3)] {
            let (lds, ldd) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * lds).map(|i| i as f32 * 0.5 - 7.0).collect();
            let mut dst = vec![f32::NAN; cols * ldd];
            transpose(rows, cols, &src, lds, &mut dst, ldd);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(dst[j * ldd + i], src[i * lds + j], "{rows}x{cols} at ({i}, {j})");
                }
            }
            // Past each destination row's `rows` values nothing is written.
            for j in 0..cols {
                assert!(dst[j * ldd + rows..(j + 1) * ldd].iter().all(|v| v.is_nan()), "{rows}x{cols}");
            }
        }
    }

    #[test]
    fn rows6_matches_the_definition_and_writes_nothing_past_its_groups() {
        for &cols in &[1, 5, 8, 9, 16, 23, 256] {
            let lds = cols + 3;
            // Exactly six rows of source (the last one without its row padding): no read past them.
            let src: Vec<f32> = (0..5 * lds + cols).map(|i| i as f32 * 0.25 - 9.0).collect();
            let mut dst = vec![f32::NAN; 6 * cols + 7];
            rows6(cols, &src, lds, -1.5, &mut dst);
            for j in 0..cols {
                for i in 0..6 {
                    assert_eq!(dst[6 * j + i], -1.5 * src[i * lds + j], "cols {cols} at ({i}, {j})");
                }
            }
            assert!(dst[6 * cols..].iter().all(|v| v.is_nan()), "cols {cols}: wrote past the groups");
        }
    }
}
