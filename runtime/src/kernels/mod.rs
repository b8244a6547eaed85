//! Kernels: pure functions over `f32` slices and explicit shapes (NCHW, row-major).
//!
//! A kernel owns its math and nothing else: no plan, no buffers, no allocation beyond what its signature
//! hands it (scratch is passed in). Each kernel's doc comment states its math.

pub mod concat;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod matmul;
pub mod pad;
pub mod pool;
pub mod softmax;
pub mod transpose;
pub mod winograd;

/// Copies a short run without a `memcpy` call (fixed-size chunks are inlined vector moves; the tail is
/// written out so that no loop is turned back into a call).
#[inline]
pub fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let (mut d8, mut s8) = (dst.chunks_exact_mut(8), src[..n].chunks_exact(8));
    for (d, s) in (&mut d8).zip(&mut s8) {
        let a: &[f32; 8] = s.try_into().unwrap();
        let b: &mut [f32; 8] = d.try_into().unwrap();
        *b = *a;
    }
    let (d, s) = (d8.into_remainder(), s8.remainder());
    let mut i = 0;
    if d.len() >= 4 {
        let a: &[f32; 4] = s[..4].try_into().unwrap();
        let b: &mut [f32; 4] = (&mut d[..4]).try_into().unwrap();
        *b = *a;
        i = 4;
    }
    if i < d.len() {
        d[i] = s[i];
        if i + 1 < d.len() {
            d[i + 1] = s[i + 1];
            if i + 2 < d.len() {
                d[i + 2] = s[i + 2];
            }
        }
    }
}
