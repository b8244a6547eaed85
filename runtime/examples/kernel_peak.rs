//! Micro-kernel speed with every operand in L1 (one packed A panel, one B tile, one C tile), against the
//! FMA peak: the ceiling the GEMM driver works under.
//! `cargo run --release -p resin-runtime --example kernel_peak`

use resin_runtime::kernels::gemm::{
    fma_peak_gflops, gemm_matrix_b, pack_a, packed_len, scratch_len, Epilogue, Isa, MatRef, MR,
};
use std::time::Instant;

fn main() {
    for isa in Isa::all_available() {
        let (m, n, k) = (MR, isa.nr(), 256);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.01).collect();
        let mut pa = vec![0.0; packed_len(m, k)];
        pack_a(m, k, MatRef::new(&a, k), 1.0, &mut pa);
        let mut c = vec![0.0; m * n];
        // The ISA's own packing scratch (AVX-512's blocks are 3x AVX2's: a fixed 64K floats was too small).
        let mut scratch = vec![0.0; scratch_len(isa, 1)];
        let epi = Epilogue::default();
        let reps = 20_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                gemm_matrix_b(isa, m, n, k, &pa, MatRef::new(&b, n), &mut c, n, &epi, 1, &mut scratch);
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (m * n * k * reps) as f64 / best / 1e9;
        println!("{:>9}: {gflops:.1} GFLOP/s in L1, FMA peak {:.1}", isa.name(), fma_peak_gflops(isa, 300));
    }
}
