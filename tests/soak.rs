//! Concurrency soak: many threads, each with its own `Session`, run one shared `Model` (ResNet-20 loaded
//! from a `.resin` file, so every thread reads the same memory-mapped weights) continuously for a while.
//! Every output must be bit-identical to what a single thread computes for the same input, batch size and
//! kernel thread count, and the process's resident memory (VmRSS), measured after warm-up and again at
//! the end while every session is still alive, must stay flat.
//!
//! Each thread has its own input (so outputs mixed up between sessions would show), half the sessions use
//! 1 kernel thread and half 2, and every eighth run is at batch 3, so sessions also re-plan their buffers
//! while the others run. The duration is `RESIN_SOAK_SECS` (default 60 s), the thread count
//! `RESIN_SOAK_THREADS` (default 8).

mod common;

use resin_runtime::{Model, Tensor};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// RSS may grow by this much from warm-up to the end (allocator caches and per-thread arenas settling).
/// A leak of one input tensor (12 KiB) per run would pass it within the first thousand runs.
const RSS_TOLERANCE_KIB: u64 = 16 * 1024;

/// The process's resident set size in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Kernel threads of the session of soak thread `t`.
fn kernel_threads(t: usize) -> usize {
    1 + t % 2
}

#[test]
fn sessions_on_one_model_agree_and_memory_stays_flat() {
    let secs = env_or("RESIN_SOAK_SECS", 60).max(1);
    let n_threads = env_or("RESIN_SOAK_THREADS", 8).max(1) as usize;

    // The model, compiled and loaded from a file as an application would.
    let dir = std::env::temp_dir().join(format!("resin-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resnet20.resin");
    let g = resin::onnx::load(&common::models_dir().join("resnet20.onnx"), &Default::default()).unwrap();
    let c = resin::compile::compile(g, &[]).unwrap();
    resin_runtime::format::save(&c.plan, &resin_runtime::format::Metadata::new("resnet20.onnx"), &path).unwrap();
    drop(c);
    let model = Model::load(&path).unwrap();

    // One input per thread (the sample, shifted by the thread's number), at batch 1 and 3, and the
    // single-thread answers for each, computed one after another before the soak starts.
    let x = common::read_npy(&common::models_dir().join("resnet20_input.npy"));
    let inputs: Vec<[Tensor; 2]> = (0..n_threads)
        .map(|t| {
            let xt = Tensor { shape: x.shape.clone(), data: x.data.iter().map(|v| v + 0.01 * t as f32).collect() };
            let x3 = common::stack(&xt, 3);
            [xt, x3]
        })
        .collect();
    let expected: Vec<[Vec<f32>; 2]> = inputs
        .iter()
        .enumerate()
        .map(|(t, [x1, x3])| {
            let mut s = model.session_with_threads(kernel_threads(t)).unwrap();
            [s.run(&[x1]).unwrap().remove(0).data, s.run(&[x3]).unwrap().remove(0).data]
        })
        .collect();
    // The answers differ between threads (else mixed-up outputs would not show).
    assert_ne!(expected[0][0], expected[n_threads - 1][0]);

    let runs = AtomicUsize::new(0);
    // The first failure (a thread never panics: it records the failure and still meets every barrier).
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    let barrier = Barrier::new(n_threads + 1);
    let deadline = OnceLock::new();
    let (rss_start, rss_end) = std::thread::scope(|scope| {
        for t in 0..n_threads {
            let (model, inputs, expected) = (&model, &inputs[t], &expected[t]);
            let (runs, failure, failed, barrier, deadline) = (&runs, &failure, &failed, &barrier, &deadline);
            scope.spawn(move || {
                let mut session = model.session_with_threads(kernel_threads(t)).unwrap();
                let mut check = |k: usize| -> bool {
                    let b = usize::from(k % 8 == 7);
                    let problem = match session.run(&[&inputs[b]]) {
                        Err(e) => format!("thread {t}, run {k}: {e}"),
                        Ok(y) if y[0].data != expected[b] => {
                            format!(
                                "thread {t}, run {k} (batch {}): output differs from the single-thread answer",
                                [1, 3][b]
                            )
                        }
                        Ok(_) => return true,
                    };
                    failure.lock().unwrap().get_or_insert(problem);
                    failed.store(true, Ordering::Relaxed);
                    false
                };
                // Warm-up: both batch sizes, a few runs each.
                let mut k = 0;
                while k < 16 && check(k) {
                    k += 1;
                }
                barrier.wait(); // warmed up: the main thread measures RSS
                barrier.wait();
                let end: Instant = *deadline.get().expect("set before the second barrier");
                let mut done = 0;
                while Instant::now() < end && !failed.load(Ordering::Relaxed) && check(k) {
                    k += 1;
                    done += 1;
                }
                runs.fetch_add(done, Ordering::Relaxed);
                barrier.wait(); // done: the main thread measures RSS with every session alive
                barrier.wait();
            });
        }
        barrier.wait();
        let start = rss_kib();
        deadline.set(Instant::now() + Duration::from_secs(secs)).unwrap();
        barrier.wait();
        barrier.wait();
        let end = rss_kib();
        barrier.wait();
        (start, end)
    });
    let _ = std::fs::remove_dir_all(&dir);

    let runs = runs.into_inner();
    if let Some(f) = failure.into_inner().unwrap() {
        panic!("{f}");
    }
    println!(
        "soak: {n_threads} threads, {secs} s, {runs} runs ({:.0} per second), every output bit-identical to the \
         single-thread answer; RSS after warm-up {rss_start} KiB, at the end {rss_end} KiB ({:+} KiB; tolerance \
         {RSS_TOLERANCE_KIB} KiB)",
        runs as f64 / secs as f64,
        rss_end as i64 - rss_start as i64
    );
    assert!(runs >= n_threads, "only {runs} runs in {secs} s");
    assert!(
        rss_end <= rss_start + RSS_TOLERANCE_KIB,
        "RSS grew from {rss_start} KiB to {rss_end} KiB over {runs} runs"
    );
}
