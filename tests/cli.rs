//! The `resin` binary as a user meets it: help with examples, `info` and `run` on a committed model, compile,
//! viz, export, demo and standalone executables, and a few refusals of bad arguments. The bad-input
//! catalogue (bad files, models, inputs and output paths) is `tests/bad_inputs.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn resin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resin")).args(args).output().expect("run resin")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("resin-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn model(name: &str) -> String {
    common::models_dir().join(name).to_string_lossy().into_owned()
}

/// Asserts a failed run: exit code 1, one line on stderr containing `want`, no panic.
fn assert_error(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(want), "expected '{want}' in: {err}");
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        &["info", "--help"][..],
        &["run", "--help"],
        &["compile", "--help"],
        &["viz", "--help"],
        &["export", "--help"],
        &["demo", "--help"],
    ] {
        let o = resin(cmd);
        assert!(o.status.success());
        assert!(stdout(&o).contains("Example"), "{cmd:?}: {}", stdout(&o));
    }
    assert!(stdout(&resin(&["--help"])).contains("info"));
    // The help names every pass that --disable accepts.
    let help = stdout(&resin(&["run", "--help"])).replace(['\n', ' '], "");
    for (pass, _) in resin::passes::PIPELINE {
        assert!(help.contains(pass), "`resin run --help` does not list the pass {pass}");
    }
}

#[test]
fn info_reports_structure() {
    let o = resin(&["info", &model("resnet18_w8.onnx")]);
    let s = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.contains("skips: 5 identity + 3 weighted"), "{s}");
    assert!(s.contains("parameters: 177362"), "{s}");
    assert!(s.contains("input: input float32[batch,3,64,64]"), "{s}");
    let plain = stdout(&resin(&["info", &model("plain18_w8.onnx")]));
    assert!(plain.contains("skips: none"), "{plain}");
    let dense = stdout(&resin(&["info", &model("densenet_small.onnx"), "--graph"]));
    assert!(dense.contains("3 dense blocks of 2, 3, 4 layers"), "{dense}");
    assert!(dense.contains("~dense %"), "the listing marks skip edges: {dense}");
}

#[test]
fn run_writes_outputs_by_order_and_by_name() {
    let d = scratch("run");
    let out = d.join("y.npy");
    let o = resin(&[
        "run",
        &model("resnet20.onnx"),
        "--input",
        &model("resnet20_input.npy"),
        "--output",
        out.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("top-5"), "{}", stdout(&o));
    let reference = common::read_npy(&common::models_dir().join("resnet20_output.npy"));
    common::assert_close("resnet20 via CLI", &common::read_npy(&out), &reference);

    let named = d.join("named.npy");
    let arg_in = format!("input={}", model("resnet20_input.npy"));
    let arg_out = format!("output={}", named.display());
    let o = resin(&["run", &model("resnet20.onnx"), "--input", &arg_in, "--output", &arg_out]);
    assert!(o.status.success(), "{}", stderr(&o));
    common::assert_close("resnet20 by name", &common::read_npy(&named), &reference);

    // The profile: time by step kind, then the slowest steps with their MACs and rate.
    let o = resin(&["run", &model("resnet20.onnx"), "--input", &arg_in, "--profile", "3", "--steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("profile: median") && text.contains("conv+add+relu"), "{text}");
    let slowest: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("slowest steps")).skip(1).take(4).collect();
    assert_eq!(slowest.len(), 4, "{text}");
    assert!(slowest.iter().all(|l| l.contains(" ms")), "{text}");
    assert!(slowest.iter().any(|l| l.contains("MACs") && l.contains("GFLOP/s")), "{text}");
    // --steps means nothing without --profile.
    assert!(!resin(&["run", &model("resnet20.onnx"), "--input", &arg_in, "--steps", "4"]).status.success());
}

/// `resin run MODEL` on ResNet-20's sample input (output written in `dir`) gives ONNX Runtime's answer.
fn assert_runs_resnet20(model_file: &Path, dir: &Path, label: &str) {
    let y = dir.join("y.npy");
    let o = resin(&[
        "run",
        model_file.to_str().unwrap(),
        "--input",
        &model("resnet20_input.npy"),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{label}: {}", stderr(&o));
    let reference = common::read_npy(&common::models_dir().join("resnet20_output.npy"));
    common::assert_close(label, &common::read_npy(&y), &reference);
}

#[test]
fn compile_then_run_the_artifact() {
    let d = scratch("compile");
    let art = d.join("resnet20.resin");
    let o = resin(&["compile", &model("resnet20.onnx"), "-o", art.to_str().unwrap(), "--report"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("fold_batchnorm") && s.contains("conv+add+relu") && s.contains("naive plan"), "{s}");
    // The artifact runs and gives ONNX Runtime's answer.
    assert_runs_resnet20(&art, &d, "resnet20.resin");
    let info = stdout(&resin(&["info", art.to_str().unwrap()]));
    assert!(
        info.contains("compiled model")
            && info.contains("from resnet20.onnx")
            && info.contains("report.pass.fold_batchnorm: 21"),
        "{info}"
    );

    // A corrupted or truncated artifact is a one-line error.
    let bytes = std::fs::read(&art).unwrap();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let bad = d.join("flipped.resin");
    std::fs::write(&bad, &flipped).unwrap();
    assert_error(&resin(&["run", bad.to_str().unwrap(), "--input", &model("resnet20_input.npy")]), "checksum mismatch");
    let short = d.join("short.resin");
    std::fs::write(&short, &bytes[..bytes.len() - 100]).unwrap();
    assert_error(&resin(&["info", short.to_str().unwrap()]), "truncated");

    // Unknown pass names and missing directories are refused before anything is written.
    assert_error(&resin(&["compile", &model("resnet20.onnx"), "--disable", "nope"]), "unknown pass 'nope'");
    let missing = d.join("no/such/dir/x.resin");
    assert_error(&resin(&["compile", &model("resnet20.onnx"), "-o", missing.to_str().unwrap()]), "does not exist");
    assert!(!missing.exists());
}

#[test]
fn viz_and_export_write_files() {
    let d = scratch("viz");
    for fmt in ["svg", "dot", "mermaid", "html", "json"] {
        let out = d.join(format!("g.{fmt}"));
        let o = resin(&["viz", &model("resnet18_w8.onnx"), "--after-passes", "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "{fmt}: {}", stderr(&o));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.len() > 200, "{fmt}: {text}");
    }
    assert!(std::fs::read_to_string(d.join("g.svg")).unwrap().contains("<svg"));
    assert_error(&resin(&["viz", &model("resnet18_w8.onnx"), "--format", "png"]), "unknown format 'png'");
    let out = d.join("e.onnx");
    let o = resin(&["export", &model("resnet20.onnx"), "--after-passes", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The export imports again and runs to the same answer.
    assert_runs_resnet20(&out, &d, "resnet20 export");
}

#[test]
fn demo_runs_the_whole_path() {
    let d = scratch("demo");
    let o = resin(&["demo", "--dir", d.to_str().unwrap(), "--threads", "2"]);
    let s = stdout(&o);
    assert!(o.status.success(), "{}\n{s}", stderr(&o));
    assert!(s.contains("skips: 1 identity + 2 weighted"), "{s}");
    // Three residual adds fused into their convolutions (whichever kernel each one runs on).
    let plan = s.lines().find(|l| l.starts_with("plan: ")).expect("a plan line");
    let fused: usize = plan
        .split("steps: ")
        .nth(1)
        .unwrap()
        .split(", ")
        .filter(|kind| kind.contains("+add+relu"))
        .map(|kind| kind.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(fused, 3, "{s}");
    assert!(s.contains("10 of 10 images classified"), "{s}");
    let acc: f64 =
        s.split("accuracy on 297 held-out digits: ").nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
    assert!(acc >= 97.0, "accuracy {acc}");
    for f in ["digits.resin", "digits.svg", "digits.html", "digits-classifier"] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn compile_exe_runs_alone() {
    let d = scratch("exe");
    let exe = d.join("classify");
    let o = resin(&["compile", &model("resnet20.onnx"), "--exe", "-o", exe.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let alone = scratch("exe-alone");
    std::fs::copy(&exe, alone.join("classify")).unwrap();
    std::fs::copy(model("resnet20_input.npy"), alone.join("x.npy")).unwrap();
    let o = common::run_fresh_exe(&alone.join("classify"), &alone, &["--input", "x.npy", "--output", "y.npy"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = common::read_npy(&common::models_dir().join("resnet20_output.npy"));
    common::assert_close("resnet20 exe", &common::read_npy(&alone.join("y.npy")), &reference);
}
