//! A strided matrix transpose for the training steps' layout changes (a convolution input copied
//! channels-last for its weight gradient).
//!
//! Math: `dst[j·ldd + i] = src[i·lds + j]` for i < rows, j < cols. The AVX path moves 8 × 8 blocks
//! through registers (8 row loads, three rounds of shuffles, 8 row stores) instead of one strided store
//! per element; the edges, and CPUs without AVX, take the scalar loop. Both give the same bits (a
//! transpose only moves values).
//!
//! This module owns the unsafe SIMD of that transpose; its only entry is the safe [`transpose`].

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

    /// Transposes one 8 × 8 block: row r of the source (8 floats at `s + r·lds`) becomes column r of
    /// the destination (float r of the 8 at `d + c·ldd`, for every c).
    ///
    /// # Safety
    /// AVX must be available; `s + r·lds + [0, 8)` readable and `d + c·ldd + [0, 8)` writable for r, c < 8.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn block8(s: *const f32, lds: usize, d: *mut f32, ldd: usize) {
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(s.add(k * lds)));
            // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves swapped into place.
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
            let o = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
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
}
