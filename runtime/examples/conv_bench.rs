//! Per-layer convolution speed on ResNet-50's shapes at batch 1: GFLOP/s of `conv2d` for 1 and 2
//! threads (fastest of 15 runs, robust on a shared machine), with the FMA peak for scale, and the
//! Winograd F(2×2, 3×3) and F(4×4, 3×3) times of each 3x3 stride-1 layer next to its GEMM time (speedup
//! over GEMM in parentheses) and what `winograd::choose` picks. `cargo run --release -p resin-runtime --example conv_bench`
//! (`RESIN_ISA=avx2|scalar` forces a slower micro-kernel; `RESIN_CONV=padded` makes stride-1 ones read a
//! zero-padded copy instead of their input under masks; `RESIN_CONV=gather` makes convolutions with
//! small weights pack GEMM tiles from their padded input instead of reading it in place). Arguments, if any,
//! keep the layers whose line contains one of them: `conv_bench 16->32 "3x3/2"`.

use resin_runtime::kernels::conv::{conv2d, Conv2d, ConvArgs};
use resin_runtime::kernels::gemm::{fma_peak_gflops, Isa};
use resin_runtime::kernels::winograd;
use std::time::Instant;

fn main() {
    // (cin, cout, kernel, stride, h) of ResNet-50's convolutions, one of each kind.
    let layers = [
        (3, 64, 7, 2, 224),
        (64, 64, 1, 1, 56),
        (64, 64, 3, 1, 56),
        (64, 256, 1, 1, 56),
        (256, 64, 1, 1, 56),
        (128, 128, 3, 1, 28),
        (128, 512, 1, 1, 28),
        (256, 256, 3, 1, 14),
        (1024, 256, 1, 1, 14),
        (512, 512, 3, 1, 7),
        (512, 2048, 1, 1, 7),
        (2048, 512, 1, 1, 7),
        // Each stage's first block: its stride-2 3x3 and its stride-2 projection shortcut.
        (128, 128, 3, 2, 56),
        (256, 256, 3, 2, 28),
        (512, 512, 3, 2, 14),
        (1024, 2048, 1, 2, 14),
        // CIFAR ResNet-20's stages and DenseNet-121's 32-channel growth convolutions.
        (16, 16, 3, 1, 32),
        (32, 32, 3, 1, 16),
        (64, 64, 3, 1, 8),
        // ResNet-18's stride-2 3x3 convolutions (each stage's first, from the stage before's width).
        (64, 128, 3, 2, 56),
        (128, 256, 3, 2, 28),
        (256, 512, 3, 2, 14),
        // Its stride-2 projection shortcuts.
        (64, 128, 1, 2, 56),
        (128, 256, 1, 2, 28),
        (256, 512, 1, 2, 14),
        (16, 32, 1, 2, 32),
        (32, 64, 1, 2, 16),
        (16, 32, 3, 2, 32),
        (32, 64, 3, 2, 16),
        (128, 32, 3, 1, 56),
        (128, 32, 3, 1, 28),
        (128, 32, 3, 1, 14),
        (128, 32, 3, 1, 7),
    ];
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let isa = Isa::detect();
    // RESIN_COLD=1 evicts every cache level before each run; RESIN_COLD=l2 only L1 and L2 (a 2 MiB sweep),
    // so that weights and input come from L3, as they do for a small network's layers run after each other.
    let flush_floats = match std::env::var("RESIN_COLD").as_deref() {
        Ok("1") => 16 << 20,
        Ok("l2") => 1 << 19,
        _ => 0,
    };
    let cold = flush_floats > 0;
    let mut flush = vec![0.0f32; flush_floats];
    println!("{} kernels, FMA peak {:.0} GFLOP/s per core", isa.name(), fma_peak_gflops(isa, 300));
    for threads in [1, 2] {
        let pool = resin_runtime::parallel::ThreadPool::new(threads).unwrap();
        for &(cin, cout, k, s, h) in &layers {
            let label = format!("{cin:>4}->{cout:<4} {k}x{k}/{s} {h:>3}px");
            if !filters.is_empty() && !filters.iter().any(|f| label.contains(f.as_str())) {
                continue;
            }
            let pad = k / 2;
            let p = Conv2d { cin, cout, kernel: [k, k], strides: [s, s], pads: [pad; 4], dilations: [1, 1], group: 1 };
            let oh = (h + 2 * pad - k) / s + 1;
            let x: Vec<f32> = (0..cin * h * h).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
            let w: Vec<f32> = (0..cout * p.k()).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
            let packed = p.pack_weights(&w);
            let mut y = vec![0.0; cout * oh * oh];
            let flops = 2.0 * (cout * p.k() * oh * oh) as f64;
            let mut time = |f: &mut dyn FnMut()| {
                let t = Instant::now();
                f();
                // At least 15 runs, more for a small layer (about 20 ms in all): its fastest run then
                // is robust to the machine's noise.
                let runs = (0.02 / t.elapsed().as_secs_f64()).clamp(15.0, 500.0) as usize;
                let mut best = f64::MAX;
                for _ in 0..runs {
                    if cold {
                        // Evict the weights and input from every cache level, as a layer of a whole
                        // network meets them (its weights were last read one run ago).
                        flush.iter_mut().for_each(|v| *v += 1.0);
                    }
                    let t = Instant::now();
                    f();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                best
            };
            let mut scratch = vec![0.0; p.scratch_len(oh, oh, threads)];
            let gemm = time(&mut || {
                pool.install(|| conv2d(&ConvArgs::new(&x, 1, h, h, &p, &packed, oh, oh), &mut y, &mut scratch, threads))
            });
            let mut line =
                format!("t{threads} {label}: gemm {:>8.4} ms {:>6.1} GFLOP/s", gemm * 1e3, flops / gemm / 1e9);
            if winograd::fits(&p) {
                for v in [winograd::Variant::F2, winograd::Variant::F4] {
                    let u = winograd::transform_weights(&p, v, &w);
                    let mut ws = vec![0.0; winograd::scratch_len(&p, v, oh, oh, threads)];
                    let wt = time(&mut || {
                        pool.install(|| {
                            let args = ConvArgs::new(&x, 1, h, h, &p, &u, oh, oh);
                            winograd::conv3x3(v, &args, &mut y, &mut ws, threads)
                        })
                    });
                    line += &format!("  F{} {:>7.3} ms ({:.2}x)", v.tile(), wt * 1e3, gemm / wt);
                }
                let pick = match winograd::choose(&p, oh, oh) {
                    Some(v) => format!("F{}", v.tile()),
                    None => "gemm".into(),
                };
                line += &format!("  chosen: {pick}");
            }
            println!("{line}");
        }
    }
}
