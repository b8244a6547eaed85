//! Kernels: pure functions over `f32` slices and explicit shapes (NCHW, row-major).
//!
//! A kernel owns its math and nothing else: no plan, no buffers, no allocation beyond what its signature
//! hands it (scratch is passed in). Each kernel's doc comment states its math.

/// Defines a function (or, with `method`, a method of `&self`) that runs `$body` compiled with AVX2 when the
/// CPU has it (detected at run time) and as the baseline x86-64 build otherwise. For the element-wise loops
/// and copies around the micro-kernels (packing, Winograd's transforms), which the baseline build leaves
/// 4 lanes wide or scalar. The body is safe code; Rust never contracts a·b + c into an FMA, so both
/// builds give the same bits (tests pin it where it is used). Defined before the modules below, so that
/// they see it without an import.
macro_rules! avx2_twin {
    ($(#[$doc:meta])* fn $name:ident / $avx:ident => $body:ident ($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above); the body is safe code.
                unsafe { $avx($($arg),*) };
                return;
            }
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx($($arg: $ty),*) {
            $body($($arg),*)
        }
    };
    ($(#[$doc:meta])* method $name:ident / $avx:ident => $body:ident ($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name(&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above); the body is safe code.
                unsafe { self.$avx($($arg),*) };
                return;
            }
            self.$body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx(&self, $($arg: $ty),*) {
            self.$body($($arg),*)
        }
    };
}

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

/// Zeroes a short run without a `memset` call (a padding column or two, a short row): fixed-size chunks
/// are inlined vector stores, the tail is written out. A `fill` of a run whose length is not known at
/// compile time is a call to `memset`: a call per one- or two-float padding edge, for each row of every
/// padded plane. (Replacing those calls measured within noise on ResNet-20; what it removes is the
/// calls, not a measured share of time.)
#[inline]
pub fn zero_short(dst: &mut [f32]) {
    // A zero the compiler cannot see through: stores of a known constant in a loop are exactly what it
    // turns back into a `memset` call.
    let z = std::hint::black_box(0.0f32);
    let mut d8 = dst.chunks_exact_mut(8);
    for d in &mut d8 {
        let b: &mut [f32; 8] = d.try_into().unwrap();
        *b = [z; 8];
    }
    let d = d8.into_remainder();
    let mut i = 0;
    if d.len() >= 4 {
        let b: &mut [f32; 4] = (&mut d[..4]).try_into().unwrap();
        *b = [z; 4];
        i = 4;
    }
    if i < d.len() {
        d[i] = z;
        if i + 1 < d.len() {
            d[i + 1] = z;
            if i + 2 < d.len() {
                d[i + 2] = z;
            }
        }
    }
}

/// Asks for the cache lines at every 16 floats of `data` (from its start) to be brought into L1 ahead of
/// their use: a hint that never faults and changes no value (no-op off x86-64). An unaligned run's last
/// line may be left to the hardware. (Also asking for it, through `iter().step_by(16).chain(last)`,
/// made ResNet-50 on 2 threads 1.08-1.10x slower: the 1x1 layers' packing calls this once per row.)
#[inline]
pub fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for line in data.chunks(16) {
            // SAFETY: prefetching is a hint about an address inside `data`; it reads nothing.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr() as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from empty to past two 8-float chunks: exactly the run is written, nothing around it.
    #[test]
    fn short_zero_and_copy_write_exactly_their_run() {
        for len in 0..21 {
            let mut buf = vec![7.0f32; len + 2];
            zero_short(&mut buf[1..1 + len]);
            assert!(buf[1..1 + len].iter().all(|&x| x == 0.0), "zero_short({len})");
            assert_eq!((buf[0], buf[len + 1]), (7.0, 7.0), "zero_short({len}) wrote outside its run");
            let src: Vec<f32> = (0..len).map(|i| i as f32 + 1.0).collect();
            copy_short(&mut buf[1..1 + len], &src);
            assert_eq!(&buf[1..1 + len], &src[..], "copy_short({len})");
            assert_eq!((buf[0], buf[len + 1]), (7.0, 7.0), "copy_short({len}) wrote outside its run");
        }
    }
}
