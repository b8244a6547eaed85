//! `resin bench`: how fast one model runs here — median latency, images/s, effective GFLOP/s against the
//! machine's measured FMA peak, and the process's peak RSS.
//!
//! Owns the measuring loop and its report; loading and compiling belong to `cli`, the kernels to the
//! runtime. Timing is of `Session::run` alone, on a fixed pseudo-random input, after warm-up runs.

use anyhow::{Context, Result};
use resin_runtime::kernels::gemm::{fma_peak_gflops, Isa};
use resin_runtime::{Model, Tensor};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub batch: usize,
    pub threads: usize,
    /// Timed runs (after `warmup` untimed ones).
    pub runs: usize,
    pub warmup: usize,
    /// Also measure the FMA peak (about a second per thread count).
    pub peak: bool,
}

/// What was measured. Times in milliseconds.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub batch: usize,
    pub threads: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub macs: u64,
    pub peak_rss_mib: f64,
    /// Measured FMA peak for `threads` cores, GFLOP/s.
    pub peak_gflops: Option<f64>,
    pub isa: &'static str,
}

impl BenchResult {
    pub fn images_per_s(&self) -> f64 {
        self.batch as f64 / (self.median_ms / 1e3)
    }
    pub fn gflops(&self) -> f64 {
        2.0 * self.macs as f64 / (self.median_ms / 1e3) / 1e9
    }

    /// One JSON object (for scripts such as benches/compare.py).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"engine\":\"resin\",\"batch\":{},\"threads\":{},\"runs\":{},\"median_ms\":{:.4},\"p10_ms\":{:.4},\"p90_ms\":{:.4},\"macs\":{},\"gflops\":{:.2},\"peak_rss_mib\":{:.1},\"peak_gflops\":{},\"isa\":\"{}\"}}",
            self.batch,
            self.threads,
            self.runs,
            self.median_ms,
            self.p10_ms,
            self.p90_ms,
            self.macs,
            self.gflops(),
            self.peak_rss_mib,
            self.peak_gflops.map_or("null".to_string(), |p| format!("{p:.1}")),
            self.isa
        )
    }
}

impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "batch {}, {} thread(s), {} kernels, {} timed runs",
            self.batch, self.threads, self.isa, self.runs
        )?;
        writeln!(f, "  latency   median {:.3} ms  (p10 {:.3}, p90 {:.3})", self.median_ms, self.p10_ms, self.p90_ms)?;
        writeln!(f, "  throughput {:.1} images/s", self.images_per_s())?;
        write!(f, "  compute   {:.2} GMAC/run, {:.1} GFLOP/s", self.macs as f64 / 1e9, self.gflops())?;
        if let Some(p) = self.peak_gflops {
            write!(
                f,
                " = {:.0}% of the measured FMA peak ({p:.0} GFLOP/s on {} core(s))",
                100.0 * self.gflops() / p,
                self.threads
            )?;
        }
        write!(f, "\n  peak RSS  {:.1} MiB", self.peak_rss_mib)
    }
}

/// The process's peak resident set (VmHWM), MiB; 0 where /proc is missing.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// FMA peak of `threads` cores running at once, GFLOP/s.
pub fn machine_peak(threads: usize, millis: u64) -> f64 {
    let isa = Isa::detect();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(move || fma_peak_gflops(isa, millis))).collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    })
}

/// Deterministic inputs in [-1, 1) for every model input at `batch`.
pub fn synthetic_inputs(model: &Model, batch: usize) -> Result<Vec<Tensor>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..model.num_inputs())
        .map(|i| {
            let shape = model.input_shape(i, batch).context("input shape")?;
            let len = shape.iter().product();
            let data = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            Tensor::new(shape, data).context("input shape and data disagree")
        })
        .collect()
}

/// Times `model` as `opts` says, showing progress on standard error when `progress`.
pub fn bench(model: &Model, opts: &BenchOptions, progress: bool) -> Result<BenchResult> {
    let mut session = model.session_with_threads(opts.threads)?;
    let inputs = synthetic_inputs(model, opts.batch)?;
    let refs: Vec<&Tensor> = inputs.iter().collect();
    for _ in 0..opts.warmup {
        session.run(&refs)?;
    }
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(opts.runs as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} runs").expect("valid template"),
        );
        b.set_message("timing");
        b
    });
    let mut times: Vec<Duration> = Vec::with_capacity(opts.runs.max(1));
    for _ in 0..opts.runs.max(1) {
        let t = Instant::now();
        session.run(&refs)?;
        times.push(t.elapsed());
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    times.sort();
    let ms = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    let peak_gflops = opts.peak.then(|| machine_peak(opts.threads, 500));
    Ok(BenchResult {
        batch: opts.batch,
        threads: opts.threads,
        runs: times.len(),
        median_ms: ms(0.5),
        p10_ms: ms(0.1),
        p90_ms: ms(0.9),
        macs: model.plan().macs(opts.batch),
        peak_rss_mib: peak_rss_mib(),
        peak_gflops,
        isa: Isa::detect().name(),
    })
}
