//! A small FMA throughput benchmark: the machine's peak single-precision GFLOP/s per core, for reporting
//! kernels' efficiency against what the processor can do.
//!
//! Math: `ACC` independent accumulators, each updated as x ← x·a + b (one FMA = 2 flops per lane) in a loop
//! with no memory traffic, enough of them in flight to cover the FMA latency on every pipe.

use super::isa::Isa;
use std::time::Instant;

const ACC: usize = 12;

/// Peak GFLOP/s of one core with `isa`'s widest FMA, measured over about `millis` milliseconds.
pub fn fma_peak_gflops(isa: Isa, millis: u64) -> f64 {
    let iters = 1 << 16;
    let (mut flops, start) = (0.0f64, Instant::now());
    let mut sink = 0.0f32;
    while start.elapsed().as_millis() < millis as u128 {
        sink += run(isa, iters);
        flops += (iters * ACC * 2 * lanes(isa)) as f64;
    }
    std::hint::black_box(sink);
    flops / start.elapsed().as_secs_f64() / 1e9
}

fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => 1, // one multiply and one add, counted as 2 flops like an FMA
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
    }
}

fn run(isa: Isa, iters: usize) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `fma_peak_gflops` is only reached for an available `isa` (checked below).
        Isa::Avx512 if isa.available() => unsafe { x86::avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.available() => unsafe { x86::avx2(iters) },
        _ => {
            let mut acc = [1.0f32; ACC];
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = *a * 0.999_999 + 1e-7;
                }
            }
            acc.iter().sum()
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACC;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(iters: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); ACC];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let s = acc.iter().fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(iters: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); ACC];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let s = acc.iter().fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        out.iter().sum()
    }
}
