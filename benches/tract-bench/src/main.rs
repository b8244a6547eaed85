//! `tract-bench MODEL --shape 1,3,224,224 --threads T --runs N --warmup W`: times tract-onnx's optimized
//! plan on a fixed pseudo-random input and prints one JSON line (median ms, peak RSS) for
//! benches/compare.py. Multi-threaded matrix products use tract-linalg's rayon executor.

use std::time::Instant;
use tract_onnx::prelude::*;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.into())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let model_path = args.get(1).expect("usage: tract-bench MODEL --shape 1,3,224,224 [--threads T] [--runs N]");
    let shape: Vec<usize> = arg(&args, "--shape", "1,3,224,224").split(',').map(|d| d.parse().unwrap()).collect();
    let threads: usize = arg(&args, "--threads", "1").parse()?;
    let runs: usize = arg(&args, "--runs", "10").parse()?;
    let warmup: usize = arg(&args, "--warmup", "2").parse()?;
    if threads > 1 {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    }
    let model = tract_onnx::onnx()
        .model_for_path(model_path)?
        .with_input_fact(0, f32::fact(&shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let len: usize = shape.iter().product();
    let data: Vec<f32> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), data)?.into();
    for _ in 0..warmup {
        model.run(tvec!(input.clone().into()))?;
    }
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        model.run(tvec!(input.clone().into()))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"engine\":\"tract\",\"batch\":{},\"threads\":{threads},\"runs\":{},\"median_ms\":{:.4},\"peak_rss_mib\":{:.1}}}",
        shape[0],
        times.len(),
        times[times.len() / 2],
        peak_rss_mib()
    );
    Ok(())
}
