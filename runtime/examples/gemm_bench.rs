//! GEMM speed on the shapes ResNet-50 produces at batch 1 (1x1 convolutions: C[M×N] = W[M×K] · X[K×N],
//! X read in place), against the FMA peak measured in the same run. Best of 7 (the machine is shared).
//! `cargo run --release -p resin-runtime --example gemm_bench`

use resin_runtime::kernels::gemm::{
    fma_peak_gflops, gemm_matrix_b, pack_a, packed_len, scratch_len, Epilogue, Isa, MatRef,
};
use resin_runtime::parallel::ThreadPool;
use std::time::Instant;

fn main() {
    // (M = output channels, K = input channels, N = pixels)
    let shapes = [
        (64, 64, 3136),
        (256, 64, 3136),
        (64, 256, 3136),
        (512, 128, 784),
        (128, 512, 784),
        (256, 1024, 196),
        (1024, 256, 196),
        (2048, 512, 49),
        (512, 2048, 49),
        (1000, 2048, 1),
        (1, 2048, 1000),
    ];
    let isa = Isa::detect();
    let peak = fma_peak_gflops(isa, 300);
    println!("{} kernels, FMA peak {peak:.0} GFLOP/s per core", isa.name());
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads).unwrap();
        for &(m, k, n) in &shapes {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.01).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.01).collect();
            let mut pa = vec![0.0; packed_len(m, k)];
            pack_a(m, k, MatRef::new(&a, k), 1.0, &mut pa);
            let mut c = vec![0.0; m * n];
            let mut scratch = vec![0.0; scratch_len(isa, threads)];
            let epi = Epilogue::default();
            let flops = 2.0 * (m * n * k) as f64;
            let reps = ((2e9 / flops) as usize).clamp(3, 2000);
            let mut times = Vec::new();
            for _ in 0..7 {
                let t = Instant::now();
                pool.install(|| {
                    for _ in 0..reps {
                        gemm_matrix_b(isa, m, n, k, &pa, MatRef::new(&b, n), &mut c, n, &epi, threads, &mut scratch);
                    }
                });
                times.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            times.sort_by(f64::total_cmp);
            let g = flops / times[0] / 1e9;
            println!(
                "t{threads} M {m:>5} K {k:>5} N {n:>5}: {:>8.3} ms {g:>6.1} GFLOP/s {:>4.0}% of peak",
                times[0] * 1e3,
                100.0 * g / (peak * threads as f64)
            );
        }
    }
}
