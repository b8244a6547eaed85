//! `resin train` end to end, and learning on digits: a dense-skip MLP reaches at least 97% validation
//! accuracy on the bundled digits (a fast configuration, a few seconds), training is deterministic given a
//! seed, and the trained model written by the CLI as `.onnx` gives the same predictions in ONNX Runtime as
//! the `.resin` does in resin; and the degradation experiment shows the effect the spec describes.
//!
//! The ONNX Runtime check needs `python3` with `onnxruntime`; without it that part prints "SKIPPED".

use resin::train::optim::OptimizerKind;
use resin::train::{fit, Dataset, PlanOptions, TrainConfig, TrainPlan};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train").join(format!("{name}.onnx"))
}

fn resin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resin"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("resin-train-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn digits_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 32,
        lr: 0.003,
        optimizer: OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        ..Default::default()
    }
}

#[test]
fn zoo_dense_mlp_learns_digits_to_97_percent_reading_a_cat_from_the_arena() {
    let g = resin::train::cmd::zoo_graph("dense-mlp", Some(4), Some(64), &[64], 10, 0).unwrap();
    let mut plan = TrainPlan::new(&g, &PlanOptions::default()).unwrap();
    // Layers 2..4 read [a_0 … a_{l-1}] as one window of the feature arena: no Concat step remains.
    assert_eq!(plan.arena_layers, 3, "{}", plan.describe());
    assert!(!plan.describe().contains("concat"), "{}", plan.describe());
    let (train, val) = Dataset::bundled_digits().unwrap().split(0.2, 0).unwrap();
    let t0 = std::time::Instant::now();
    let cfg = TrainConfig { schedule: resin::train::optim::Schedule::Cosine { epochs: 30 }, ..digits_cfg(30) };
    let stats = fit(&mut plan, &train, Some(&val), &cfg, |_, _, _, _, _| {}, |_| {}).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let (_, vacc) = stats.last().unwrap().val.unwrap();
    println!("zoo dense-mlp depth 4 width 64: validation accuracy {:.2}% in {secs:.2} s", 100.0 * vacc);
    assert!(vacc >= 0.97, "validation accuracy {vacc}");
    assert!(secs < 60.0);
}

#[test]
fn training_is_deterministic_given_a_seed() {
    let g = resin::onnx::load(&fixture("mlp_res"), &Default::default()).unwrap();
    let (train, _) = Dataset::bundled_digits().unwrap().split(0.5, 3).unwrap();
    let run = || {
        let mut plan = TrainPlan::new(&g, &PlanOptions::default()).unwrap();
        let cfg = TrainConfig { seed: 9, ..digits_cfg(2) };
        fit(&mut plan, &train, None, &cfg, |_, _, _, _, _| {}, |_| {}).unwrap();
        plan.params.iter().flat_map(|p| p.data.clone()).collect::<Vec<f32>>()
    };
    assert_eq!(run(), run());
}

fn python_ort() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIPPED: python onnxruntime not installed");
    }
    ok
}

#[test]
fn cli_trains_and_writes_onnx_that_onnx_runtime_agrees_with() {
    let dir = tmp("cli");
    let out = dir.join("digits-res");
    let o = resin()
        .arg("train")
        .arg(fixture("resnet_small"))
        .args(["--epochs", "2", "--batch", "64", "--lr", "0.01", "--quiet", "--profile", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("validation loss") && stdout.contains("wrote"), "{stdout}");
    // --profile: a line per step kind of the model, after the training.
    let profile = stdout.split("time by step kind").nth(1).unwrap_or_else(|| panic!("no profile in\n{stdout}"));
    for kind in ["conv", "batchnorm", "linear"] {
        assert!(profile.lines().any(|l| l.starts_with(kind)), "no {kind} line in the profile:\n{profile}");
    }
    let (onnx, resin_file) = (out.with_extension("onnx"), out.with_extension("resin"));
    // Predictions of the .resin on 64 digits.
    let d = Dataset::bundled_digits().unwrap().reshape(vec![1, 8, 8]).unwrap().subset(&(0..64).collect::<Vec<_>>());
    let model = resin_runtime::Model::load(&resin_file).unwrap();
    let x = resin_runtime::Tensor::new(vec![64, 1, 8, 8], d.x.clone()).unwrap();
    let y = model.session_with_threads(1).unwrap().run(&[&x]).unwrap().remove(0);
    let ours = y.argmax_rows();
    if !python_ort() {
        return;
    }
    let xs = dir.join("x.npy");
    resin_runtime::npy::write_f32(&xs, &[64, 1, 8, 8], &d.x).unwrap();
    let script = "import sys, numpy as np, onnxruntime as ort\n\
        s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n\
        y = s.run(None, {s.get_inputs()[0].name: np.load(sys.argv[2])})[0]\n\
        print(' '.join(str(int(v)) for v in y.argmax(1)))\n\
        np.save(sys.argv[3], y)";
    let yo = dir.join("y_ort.npy");
    let o = Command::new("python3").args(["-c", script]).arg(&onnx).arg(&xs).arg(&yo).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: Vec<usize> =
        String::from_utf8_lossy(&o.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!(ours, theirs, "resin and ONNX Runtime predict different classes");
    let yr = resin_runtime::npy::read(&yo).unwrap().f32_data.unwrap();
    let worst = yr.iter().zip(&y.data).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
    println!("trained model: ONNX Runtime vs resin: same 64 predictions, max difference {worst:.2e}");
    assert!(worst < 1e-4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_errors_are_one_line() {
    for (args, want) in [
        (vec!["train"], "give an ONNX model"),
        (vec!["train", "--arch", "no-such-net"], "no-such-net"),
        (vec!["train", "/nonexistent.onnx"], "cannot read"),
        (vec!["train", "--arch", "plain-mlp", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (vec!["train", "--arch", "plain-mlp", "--schedule", "linear"], "unknown schedule"),
        (vec!["train", "--arch", "plain-mlp", "--lr=-1"], "learning rate"),
    ] {
        let o = resin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // A model whose input does not fit the data.
    let o = resin()
        .arg("train")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/resnet20.onnx"))
        .arg("-q")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cannot view samples"), "{err}");
}

/// `resin train --experiment degradation` at depths 4 and 48 (the README's budget: 20 epochs, Adam, seed 0):
/// the 48-layer plain MLP ends with a clearly higher training error than the 4-layer one, and the 48-layer
/// residual MLP does not (He et al.'s degradation problem, and skips removing it). Also checks the plot and
/// the table are written.
#[test]
fn degradation_experiment_deep_plain_degrades_and_residual_does_not() {
    let dir = tmp("degradation");
    let plot = dir.join("deg.svg");
    let out = resin()
        .args(["train", "--experiment", "degradation", "--depths", "4,48", "--quiet", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    let table = std::fs::read_to_string(plot.with_extension("md")).unwrap();
    // | network | depth | epoch 1 | 5 | 10 | 20 | validation | time |: the last epoch's training error.
    let last = |net: &str, depth: &str| -> f64 {
        let row = table
            .lines()
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
            .find(|c| c.len() > 6 && c[1] == net && c[2] == depth)
            .unwrap_or_else(|| panic!("no {net} {depth} row in\n{table}"));
        row[6].trim_end_matches('%').parse::<f64>().unwrap() / 100.0
    };
    let (plain4, plain48, res48) = (last("plain-mlp", "4"), last("plain-mlp", "48"), last("res-mlp", "48"));
    println!("final training error: plain 4 {plain4}, plain 48 {plain48}, residual 48 {res48}");
    assert!(plain48 >= 0.05 && plain48 >= 5.0 * plain4.max(0.002), "the deep plain net did not degrade:\n{table}");
    assert!(res48 <= 0.05 && res48 <= plain48 / 4.0, "the deep residual net degraded:\n{table}");
}
