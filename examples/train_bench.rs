//! Training throughput of one model: `samples/s` of SGD steps (forward, loss, backward, update) on random
//! data, and with `--compare-merge` the step time with each layer's matrices merged into one product
//! against one product per matrix (the two plans step in turn; medians); `--profile` adds where the time of
//! those steps went, by step kind.
//!
//! ```sh
//! cargo run --release --example train_bench -- MODEL.onnx [--batch 128] [--threads 1] [--steps 50] [--compare-merge] [--profile]
//! ```
//! `benches/train_torch.py` runs it beside PyTorch on the same models and prints the ratios (see
//! `benches/README.md`).

use anyhow::{anyhow, Result};
use resin::train::loss::{Loss, Targets};
use resin::train::trainer::train_step;
use resin::train::{Optimizer, PlanOptions, Rng, TrainPlan};
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("{name} needs a number")),
        None => Ok(default),
    }
}

/// A fixed random batch for `plan`.
fn batch_for(plan: &TrainPlan, batch: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let per: usize = plan.input_shape().iter().product();
    let classes = plan.output_cols();
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..batch * per).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    let y: Vec<usize> = (0..batch).map(|_| rng.below(classes)).collect();
    (x, y)
}

/// Seconds of one SGD step.
fn step(plan: &mut TrainPlan, opt: &mut Optimizer, x: &[f32], y: &[usize]) -> Result<f64> {
    let t = Instant::now();
    train_step(plan, opt, x, Targets::Labels(y), Loss::SoftmaxCrossEntropy)?;
    Ok(t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds per step over `steps` steps after 3 warm-up steps.
fn time_steps(plan: &mut TrainPlan, batch: usize, steps: usize, seed: u64, profile: bool) -> Result<f64> {
    let (x, y) = batch_for(plan, batch, seed);
    let mut opt = Optimizer::sgd(1e-3);
    let mut times = Vec::with_capacity(steps);
    for i in 0..steps + 3 {
        let t = step(plan, &mut opt, &x, &y)?;
        if i >= 3 {
            times.push(t);
        }
        if i == 2 && profile {
            plan.profile();
        }
    }
    Ok(median(times))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().filter(|a| !a.starts_with("--")).ok_or_else(|| {
        anyhow!("usage: train_bench MODEL.onnx [--batch N] [--threads N] [--steps N] [--compare-merge] [--profile]")
    })?;
    let batch = arg(&args, "--batch", 128usize)?;
    let threads = arg(&args, "--threads", 1usize)?;
    let steps = arg(&args, "--steps", 50usize)?.max(1);
    let g = resin::onnx::load(model.as_ref(), &Default::default())?;
    let mut plan = TrainPlan::new(&g, &PlanOptions { merge: true, threads })?;
    let profile = args.iter().any(|a| a == "--profile");
    let t = time_steps(&mut plan, batch, steps, 1, profile)?;
    println!("{model}: batch {batch}, {threads} thread(s): {:.3} ms/step, {:.0} samples/s", t * 1e3, batch as f64 / t);
    if let Some(report) = plan.profile_report() {
        print!(
            "per step kind, summed over {steps} steps (the optimizer's update and the loss not included):\n{report}"
        );
    }
    if args.iter().any(|a| a == "--compare-merge") {
        // One step of each in turn, so that this machine's drifting speed weighs on both alike.
        let mut sep = TrainPlan::new(&g, &PlanOptions { merge: false, threads })?;
        let (x, y) = batch_for(&plan, batch, 1);
        let (mut om, mut os) = (Optimizer::sgd(1e-3), Optimizer::sgd(1e-3));
        let (mut tm, mut ts) = (vec![], vec![]);
        for i in 0..steps + 3 {
            let a = step(&mut plan, &mut om, &x, &y)?;
            let b = step(&mut sep, &mut os, &x, &y)?;
            if i >= 3 {
                tm.push(a);
                ts.push(b);
            }
        }
        let (tm, ts) = (median(tm), median(ts));
        println!(
            "merged ({} layers, {} over an arena): {:.3} ms/step; separate: {:.3} ms/step; separate/merged = {:.2}",
            plan.merged_layers,
            plan.arena_layers,
            tm * 1e3,
            ts * 1e3,
            ts / tm
        );
    }
    Ok(())
}
