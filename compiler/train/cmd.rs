//! `resin train`: its arguments and what it does. Trains an ONNX model's initializers or a zoo
//! architecture on the bundled digits or an `.npy` pair, shows a progress bar with loss and accuracy, and
//! writes the trained network as `.onnx` (through the exporter) and `.resin` (through the compiler); or runs
//! the degradation experiment.
//!
//! This module owns the command's arguments and its output; the training itself is the library's.

use super::data::Dataset;
use super::experiment;
use super::loss::Loss;
use super::optim::{OptimizerKind, Schedule};
use super::plan::{PlanOptions, TrainPlan};
use super::trainer::{evaluate, TrainConfig, Trainer};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use resin_ir::Graph;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// An ONNX model whose initializers are trained (instead of --arch).
    pub model: Option<PathBuf>,
    /// A model-zoo architecture: plain-mlp, res-mlp, highway-mlp, gated-highway-mlp, dense-mlp, resnet20.
    #[arg(long)]
    pub arch: Option<String>,
    /// Hidden layers of a zoo MLP.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Features per zoo MLP layer (channels of resnet20's first stage).
    #[arg(long)]
    pub width: Option<usize>,
    /// Inputs as a float32 .npy (first axis: samples); with --y. Default: the bundled UCI digits.
    #[arg(long, requires = "y")]
    pub x: Option<PathBuf>,
    /// Class labels as an int64/int32 .npy, one per sample of --x.
    #[arg(long, requires = "x")]
    pub y: Option<PathBuf>,
    /// Fraction of the samples held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val: f32,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Learning rate η.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// sgd (the spec's ΔW = −η a δ), momentum, or adam.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Momentum of --optimizer momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// L2 weight decay λ (added to every gradient: g + λw).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA (e.g. step:10:0.1).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// ce (softmax cross-entropy) or mse (against one-hot labels).
    #[arg(long, default_value = "ce")]
    pub loss: String,
    /// Seed of the split, the shuffling and zoo weights: the same seed gives the same result.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads for the matrix products (default 1).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// One product per matrix instead of one merged product per layer (for comparison).
    #[arg(long)]
    pub no_merge: bool,
    /// Where to write the trained model: OUT.onnx and OUT.resin.
    #[arg(long, short = 'o', default_value = "trained")]
    pub output: PathBuf,
    /// Run an experiment instead: `degradation` (plain vs residual MLPs of several depths).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Depths of the degradation experiment.
    #[arg(long, value_delimiter = ',', default_value = "4,16,48")]
    pub depths: Vec<usize>,
    /// Where the degradation experiment writes its plot (the table goes next to it as .md).
    #[arg(long, default_value = "degradation.svg")]
    pub plot: PathBuf,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// After training, print where the time went: forward and backward milliseconds per step kind (conv,
    /// batchnorm, linear, ...), over the training steps and the validation passes.
    #[arg(long)]
    pub profile: bool,
}

/// The configuration the arguments describe.
pub fn config(a: &TrainArgs) -> Result<TrainConfig> {
    let optimizer = match a.optimizer.as_str() {
        "sgd" => OptimizerKind::Sgd { momentum: 0.0 },
        "momentum" => OptimizerKind::Sgd { momentum: a.momentum },
        "adam" => OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        o => bail!("unknown optimizer '{o}' (sgd, momentum, adam)"),
    };
    let schedule = match a.schedule.split(':').collect::<Vec<_>>().as_slice() {
        ["constant"] => Schedule::Constant,
        ["cosine"] => Schedule::Cosine { epochs: a.epochs },
        ["step", every, gamma] => Schedule::Step {
            every: every.parse().map_err(|_| anyhow!("schedule step:EVERY:GAMMA: '{every}' is not a number"))?,
            gamma: gamma.parse().map_err(|_| anyhow!("schedule step:EVERY:GAMMA: '{gamma}' is not a number"))?,
        },
        _ => bail!("unknown schedule '{}' (constant, cosine, step:EVERY:GAMMA)", a.schedule),
    };
    super::optim::Optimizer::new(optimizer, a.lr, a.weight_decay)?;
    if a.epochs == 0 || a.batch == 0 {
        bail!("--epochs and --batch must be at least 1");
    }
    Ok(TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        optimizer,
        weight_decay: a.weight_decay,
        schedule,
        loss: a.loss.parse::<Loss>()?,
        seed: a.seed,
    })
}

/// The data the arguments name, viewed with the model's per-sample shape when the sizes agree.
fn load_data(a: &TrainArgs) -> Result<Dataset> {
    match (&a.x, &a.y) {
        (Some(x), Some(y)) => Dataset::from_npy(x, y),
        _ => Dataset::bundled_digits(),
    }
}

/// A zoo architecture as a graph (the model zoo builds it; digits' 64 features or 1x8x8 images in).
pub fn zoo_graph(
    arch: &str,
    depth: Option<usize>,
    width: Option<usize>,
    input: &[usize],
    classes: usize,
    seed: u64,
) -> Result<Graph> {
    let opts = crate::zoo::ZooOptions {
        depth,
        width,
        input: Some(input.to_vec()),
        classes: Some(classes),
        seed,
        ..Default::default()
    };
    crate::zoo::build(arch, &opts)
}

/// Runs `resin train`.
pub fn run(a: &TrainArgs) -> Result<()> {
    let cfg = config(a)?;
    let data = load_data(a)?;
    if a.experiment.is_some() {
        return degradation(a, &cfg, data);
    }
    let mut g = match (&a.model, &a.arch) {
        (Some(_), Some(_)) => bail!("give either an ONNX model or --arch, not both"),
        (Some(m), None) => crate::onnx::load(m, &Default::default())?,
        (None, Some(arch)) => {
            let input = if arch.starts_with("resnet") { vec![1, 8, 8] } else { vec![data.features()] };
            zoo_graph(arch, a.depth, a.width, &input, data.classes.max(2), a.seed)?
        }
        (None, None) => bail!("give an ONNX model to train, or --arch NAME (see --help)"),
    };
    let mut plan = TrainPlan::new(&g, &PlanOptions { merge: !a.no_merge, threads: a.threads })?;
    let data =
        if plan.input_shape() != data.shape.as_slice() { data.reshape(plan.input_shape().to_vec())? } else { data };
    let (train, val) = data.split(a.val, a.seed)?;
    println!("training plan: {}", plan.describe());
    println!(
        "data: {} training and {} validation samples of {:?}, {} classes",
        train.len(),
        val.len(),
        train.shape,
        train.classes
    );
    if a.profile {
        plan.profile();
    }
    let t0 = Instant::now();
    let mut tr = Trainer::new(&cfg)?;
    let batches = train.len().div_ceil(cfg.batch) as u64;
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(batches * cfg.epochs as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} batches {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let mut last = String::new();
    for epoch in 0..cfg.epochs {
        let (loss, acc) = tr.epoch(&mut plan, &train, |_, _, l, acc| {
            bar.inc(1);
            bar.set_message(format!("epoch {}/{} loss {l:.4} acc {:.1}%", epoch + 1, cfg.epochs, 100.0 * acc));
        })?;
        let v = if val.is_empty() { None } else { Some(evaluate(&mut plan, &val, 256, cfg.loss)?) };
        last = match v {
            Some((vl, va)) => format!(
                "epoch {:>3}: loss {loss:.4}, train accuracy {:.2}%, validation loss {vl:.4}, accuracy {:.2}%",
                epoch + 1,
                100.0 * acc,
                100.0 * va
            ),
            None => format!("epoch {:>3}: loss {loss:.4}, train accuracy {:.2}%", epoch + 1, 100.0 * acc),
        };
        bar.suspend(|| println!("{last}"));
    }
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "trained {} epochs in {secs:.1} s ({:.0} samples/s)",
        cfg.epochs,
        (train.len() * cfg.epochs) as f64 / secs
    );
    let _ = last;
    if let Some(report) = plan.profile_report() {
        print!(
            "time by step kind (training steps and validation passes; the optimizer's update not included):\n{report}"
        );
    }
    plan.write_back(&mut g)?;
    write_outputs(&g, &a.output)
}

/// Writes the trained graph as `OUT.onnx` and, compiled, as `OUT.resin`.
pub fn write_outputs(g: &Graph, out: &Path) -> Result<()> {
    let onnx_path = out.with_extension("onnx");
    let resin_path = out.with_extension("resin");
    crate::onnx::save(g, &onnx_path).with_context(|| format!("writing '{}'", onnx_path.display()))?;
    let c = crate::compile::compile(g.clone(), &[])?;
    let meta = resin_runtime::format::Metadata::new("resin train".to_string());
    resin_runtime::format::save(&c.plan, &meta, &resin_path)
        .with_context(|| format!("writing '{}'", resin_path.display()))?;
    println!("wrote {} and {}", onnx_path.display(), resin_path.display());
    Ok(())
}

fn degradation(a: &TrainArgs, cfg: &TrainConfig, data: Dataset) -> Result<()> {
    if a.experiment.as_deref() != Some("degradation") {
        bail!("unknown experiment '{}' (degradation)", a.experiment.as_deref().unwrap_or(""));
    }
    let (train, val) = data.split(a.val, a.seed)?;
    let archs = ["plain-mlp", "res-mlp"];
    let width = a.width.or(Some(64));
    let build = |arch: &str, depth: usize| {
        let mut g = zoo_graph(arch, Some(depth), width, &[train.features()], train.classes, a.seed)?;
        // Residual branches start at 1/√depth of their He-initialized size (plain nets have none).
        experiment::scale_residual_branches(&mut g, 1.0 / (depth as f32).sqrt());
        Ok(g)
    };
    let curves = experiment::run(&archs, &a.depths, &train, &val, cfg, a.threads, build, |label, e, err| {
        if !a.quiet {
            eprintln!("{label}: epoch {:>3} training error {:.2}%", e + 1, 100.0 * err);
        }
    })?;
    let table = experiment::table(&curves);
    print!("{table}");
    let title = format!(
        "Training error on digits: plain vs residual MLPs (width {}, {} epochs)",
        width.unwrap_or(64),
        cfg.epochs
    );
    resin_runtime::npy::write_atomic(&a.plot, experiment::svg(&curves, &title).as_bytes())?;
    let md = a.plot.with_extension("md");
    resin_runtime::npy::write_atomic(&md, table.as_bytes())?;
    println!("wrote {} and {}", a.plot.display(), md.display());
    Ok(())
}
