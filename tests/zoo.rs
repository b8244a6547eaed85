//! The model zoo (`resin::zoo`, `resin zoo`): every architecture builds with the skips it is meant to have;
//! each matches PyTorch's export of the same architecture — node for node (op, attributes, weight shapes,
//! tensor types) against the committed `tests/models` files and, with `RESIN_MODELS`, the full-size
//! torchvision exports; in parameters, MACs and op histogram against `tests/zoo_reference.json` (counted
//! from torchvision by `tests/zoo_reference.py`) for the architectures without a file; the exports pass
//! `onnx.checker` and ONNX Runtime computes what resin computes; the CLI writes `.onnx` and `.resin` and
//! names the valid models when given a wrong one.
//!
//! The ONNX Runtime test needs `python3` with `onnx` and `onnxruntime`; without them it prints SKIPPED.

mod common;

use resin::onnx::{self as ronnx, ImportOptions};
use resin::zoo::{self, densenet::DenseNetConfig, ZooOptions};
use resin_ir::builder::Rng;
use resin_ir::{Graph, Op};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn build(name: &str, opts: &ZooOptions) -> Graph {
    zoo::build(name, opts).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn load(path: &Path) -> Graph {
    ronnx::load(path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn mlp(depth: usize, width: usize) -> ZooOptions {
    ZooOptions { depth: Some(depth), width: Some(width), input: Some(vec![width]), ..Default::default() }
}

/// One line per node (graph inputs aside), sorted: op, attributes, weight shapes, operand types, output
/// type. Equal signatures mean the same layers with the same shapes, whatever the names and weights.
fn signature(g: &Graph) -> Vec<String> {
    let mut v: Vec<String> =
        g.g.node_indices()
            .filter(|&id| !matches!(g.node(id).op, Op::Input))
            .map(|id| {
                let n = g.node(id);
                let attrs = match &n.op {
                    Op::Conv(c) => format!(
                        "w{:?} b{:?} s{:?} p{:?} d{:?} g{} {:?} {}",
                        c.weight.shape,
                        c.bias.as_ref().map(|b| &b.shape),
                        c.strides,
                        c.pads,
                        c.dilations,
                        c.group,
                        c.act,
                        c.pre.is_some()
                    ),
                    Op::BatchNorm(b) => format!("c{:?} eps {}", b.scale.shape, b.epsilon),
                    Op::Gemm(m) => format!(
                        "b{:?} c{:?} {} {} {} {} {:?}",
                        m.b.shape,
                        m.c.as_ref().map(|c| &c.shape),
                        m.alpha,
                        m.beta,
                        m.trans_a,
                        m.trans_b,
                        m.act
                    ),
                    Op::Const(t) => format!("{:?} {:?}", t.shape, t.dtype()),
                    other => format!("{other:?}"),
                };
                let ins: Vec<String> = g.inputs_of(id).iter().map(|&i| g.node(i).ty.to_string()).collect();
                format!("{} {attrs} ({}) -> {}", n.op.name(), ins.join(", "), n.ty)
            })
            .collect();
    v.sort();
    v
}

/// Same layers (signature), inputs, outputs, parameters, MACs and skips.
fn assert_same_architecture(what: &str, zoo: &Graph, reference: &Graph) {
    let (mut a, mut b) = (zoo.clone(), reference.clone());
    let (sa, sb) = (a.recognize_skips(), b.recognize_skips());
    let io = |g: &Graph| {
        let i: Vec<String> = g.inputs.iter().map(|&i| g.node(i).ty.to_string()).collect();
        let o: Vec<String> = g.outputs.iter().map(|o| g.node(o.node).ty.to_string()).collect();
        (i, o)
    };
    assert_eq!(io(zoo), io(reference), "{what}: input and output types");
    assert_eq!(zoo.op_histogram(), reference.op_histogram(), "{what}: op histogram");
    let (x, y) = (signature(zoo), signature(reference));
    if let Some(i) = (0..x.len().max(y.len())).find(|&i| x.get(i) != y.get(i)) {
        panic!("{what}: first differing layer (sorted):\n  zoo:       {:?}\n  reference: {:?}", x.get(i), y.get(i));
    }
    assert_eq!(zoo.param_count(), reference.param_count(), "{what}: parameters");
    assert_eq!(zoo.macs(), reference.macs(), "{what}: MACs");
    assert_eq!(sa, sb, "{what}: skips");
}

#[test]
fn every_architecture_has_its_intended_skips() {
    let small_images = |input: [usize; 3]| ZooOptions { input: Some(input.to_vec()), ..Default::default() };
    let cases: &[(&str, ZooOptions, &str)] = &[
        ("plain-mlp", ZooOptions::default(), "none (a plain network)"),
        ("res-mlp", ZooOptions::default(), "7 identity"),
        ("highway-mlp", ZooOptions::default(), "7 weighted"),
        ("gated-highway-mlp", ZooOptions::default(), "8 gated"),
        ("dense-mlp", ZooOptions::default(), "28 dense; 1 dense blocks of 7 layers"),
        // Another input size: res-mlp projects its first skip, gated-highway-mlp gets a stem.
        ("res-mlp", ZooOptions { input: Some(vec![64]), ..mlp(4, 32) }, "2 identity + 1 weighted"),
        ("gated-highway-mlp", ZooOptions { input: Some(vec![64]), ..mlp(3, 32) }, "3 gated"),
        ("highway-mlp", ZooOptions { input: Some(vec![64]), ..mlp(3, 32) }, "2 weighted"),
        ("dense-mlp", ZooOptions { input: Some(vec![64]), ..mlp(3, 32) }, "3 dense; 1 dense blocks of 2 layers"),
        ("resnet20", ZooOptions::default(), "7 identity + 2 weighted"),
        ("resnet56", ZooOptions::default(), "25 identity + 2 weighted"),
        ("plain20", ZooOptions::default(), "none (a plain network)"),
        ("plain56", ZooOptions::default(), "none (a plain network)"),
        ("resnet20", small_images([1, 8, 8]), "7 identity + 2 weighted"),
        ("resnet18", small_images([3, 32, 32]), "5 identity + 3 weighted"),
        ("resnet34", small_images([3, 32, 32]), "13 identity + 3 weighted"),
        ("resnet50", small_images([3, 32, 32]), "12 identity + 4 weighted"),
        ("resnet101", small_images([3, 32, 32]), "29 identity + 4 weighted"),
        ("resnet152", small_images([3, 32, 32]), "46 identity + 4 weighted"),
        ("plain18", small_images([3, 32, 32]), "none (a plain network)"),
        ("plain34", small_images([3, 32, 32]), "none (a plain network)"),
        ("densenet121", small_images([3, 32, 32]), "535 dense; 4 dense blocks of 6, 12, 24, 16 layers"),
    ];
    for (name, opts, want) in cases {
        let mut g = build(name, opts);
        assert_eq!(g.recognize_skips().to_string(), *want, "{name} {opts:?}");
        g.validate().unwrap();
    }
    let names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for name in zoo::names() {
        assert!(names.contains(&name), "{name} is not checked here");
    }
}

#[test]
fn matches_the_committed_pytorch_exports() {
    let dir = common::models_dir();
    let image = |width, input: [usize; 3]| ZooOptions {
        width: Some(width),
        input: Some(input.to_vec()),
        classes: Some(10),
        ..Default::default()
    };
    let cases = [
        ("resnet20", "resnet20", ZooOptions::default()),
        ("resnet18", "resnet18_w8", image(8, [3, 64, 64])),
        ("plain18", "plain18_w8", image(8, [3, 64, 64])),
        ("res-mlp", "mlp_res", mlp(6, 32)),
        ("highway-mlp", "mlp_highway", mlp(6, 32)),
        ("gated-highway-mlp", "mlp_gated", mlp(4, 32)),
    ];
    for (name, file, opts) in cases {
        assert_same_architecture(name, &build(name, &opts), &load(&dir.join(format!("{file}.onnx"))));
    }
    // torchvision's DenseNet class with densenet_small's configuration.
    let cfg = DenseNetConfig { growth: 8, blocks: &[2, 3, 4], init_features: 16, bn_size: 2 };
    let g = zoo::densenet::build(&cfg, &image(8, [3, 32, 32])).unwrap();
    assert_same_architecture("densenet (small)", &g, &load(&dir.join("densenet_small.onnx")));
    dense_mlp_matches(&build("dense-mlp", &mlp(6, 32)), &load(&dir.join("mlp_dense.onnx")), 15);
}

/// The dense MLP is PyTorch's sum of matrix products in the form `merge_dense_skips` gives it: the same
/// parameters, MACs and dense skips, and the reference's histogram once merged.
fn dense_mlp_matches(zoo: &Graph, reference: &Graph, dense: usize) {
    let (mut a, mut b) = (zoo.clone(), reference.clone());
    assert_eq!((a.recognize_skips().dense, b.recognize_skips().dense), (dense, dense), "dense-mlp: dense skips");
    assert_eq!(zoo.param_count(), reference.param_count(), "dense-mlp: parameters");
    assert_eq!(zoo.macs(), reference.macs(), "dense-mlp: MACs");
    resin::passes::merge_dense_skips::run(&mut b);
    assert_eq!(a.op_histogram(), b.op_histogram(), "dense-mlp: op histogram against the merged reference");
    let merged = resin::passes::merge_dense_skips::run(&mut a);
    assert!(merged.changes.is_empty(), "the zoo's dense MLP is already merged: {:?}", merged.changes);
}

#[test]
fn matches_the_full_size_torchvision_exports() {
    let Some(dir) = std::env::var_os("RESIN_MODELS").map(PathBuf::from) else {
        println!(
            "SKIPPED: RESIN_MODELS is not set (the folder of full-size torchvision exports, e.g. ../shared/models)"
        );
        return;
    };
    let cases = [
        ("resnet18", "resnet18", ZooOptions::default()),
        ("resnet50", "resnet50", ZooOptions::default()),
        ("densenet121", "densenet121", ZooOptions::default()),
        ("resnet20", "resnet20", ZooOptions::default()),
        ("res-mlp", "mlp_res", ZooOptions::default()),
        ("highway-mlp", "mlp_highway", ZooOptions::default()),
    ];
    for (name, file, opts) in cases {
        let path = dir.join(format!("{file}.onnx"));
        if !path.exists() {
            println!("SKIPPED: {} is missing", path.display());
            continue;
        }
        let t = Instant::now();
        assert_same_architecture(name, &build(name, &opts), &load(&path));
        println!("{name}: same layers as {} ({:.1} s)", path.display(), t.elapsed().as_secs_f64());
    }
    let path = dir.join("mlp_dense.onnx");
    if path.exists() {
        dense_mlp_matches(&build("dense-mlp", &ZooOptions::default()), &load(&path), 28);
    }
}

#[test]
fn counts_match_torchvision() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zoo_reference.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let models = json["models"].as_object().unwrap();
    assert!(models.len() >= 12, "{}: expected every convolutional zoo model", path.display());
    for (name, want) in models {
        let t = Instant::now();
        let g = build(name, &ZooOptions::default());
        let input: Vec<usize> =
            want["input"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let ours: Vec<usize> = g.node(g.inputs[0]).ty.shape[1..].iter().map(|d| d.fixed().unwrap()).collect();
        assert_eq!(ours, input, "{name}: input");
        assert_eq!(g.param_count() as u64, want["params"].as_u64().unwrap(), "{name}: parameters");
        assert_eq!(g.macs(), want["macs"].as_u64().unwrap(), "{name}: MACs");
        let hist: Vec<(String, u64)> =
            want["op_histogram"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
        let ours: Vec<(String, u64)> = g.op_histogram().into_iter().map(|(k, v)| (k.to_string(), v as u64)).collect();
        assert_eq!(ours, hist, "{name}: op histogram");
        println!(
            "{name}: {} parameters, {} MACs, ops as torchvision ({:.2} s)",
            g.param_count(),
            g.macs(),
            t.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn weights_follow_the_seed() {
    let weights = |seed| {
        let g = build("resnet20", &ZooOptions { seed, ..Default::default() });
        let mut w: Vec<(String, Vec<u32>)> =
            g.g.node_weights()
                .flat_map(|n| {
                    n.op.weights()
                        .into_iter()
                        .map(|t| (n.name.clone(), t.to_f32_vec().iter().map(|x| x.to_bits()).collect()))
                })
                .collect();
        w.sort();
        w
    };
    assert_eq!(weights(1), weights(1));
    assert_ne!(weights(1), weights(2));
}

#[test]
fn bad_options_are_one_line_errors() {
    let err = |name: &str, opts: ZooOptions| match zoo::build(name, &opts) {
        Ok(_) => panic!("{name} {opts:?}: no error"),
        Err(e) => e.to_string(),
    };
    let e = err("resnet19", ZooOptions::default());
    assert!(
        e.starts_with("unknown zoo model 'resnet19' (models: plain-mlp, res-mlp,") && e.contains("densenet121"),
        "{e}"
    );
    assert_eq!(
        err("resnet18", ZooOptions { depth: Some(4), ..Default::default() }),
        "resnet18: --depth applies to the MLPs only (resnet18's depth is in its name)"
    );
    assert_eq!(
        err("res-mlp", ZooOptions { input: Some(vec![3, 32, 32]), ..Default::default() }),
        "res-mlp: the input of one sample must be [features] with positive sizes, got [3, 32, 32]"
    );
    // 8x8 shrinks to 1x1 before the second transition's 2x2 pooling.
    let e = err("densenet121", ZooOptions { input: Some(vec![3, 8, 8]), ..Default::default() });
    assert_eq!(
        e,
        "densenet121 with input [3, 8, 8]: node 'features.transition2.pool' (AveragePool): window of 2 does not \
         fit an input of 1 padded to 1"
    );
    assert!(!e.contains('\n'));
}

// ------------------------------------------------------------------------------------------------------
// ONNX Runtime
// ------------------------------------------------------------------------------------------------------

fn python_ok() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIPPED: python onnx/onnxruntime not installed");
    }
    ok
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("resin-zoo-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every zoo model (BatchNorm statistics random, 32x32 images), exported: `tests/export_check.py` runs each
/// in ONNX Runtime and compares with resin's own output for the same input, at batch 1 and 3.
#[test]
fn zoo_exports_run_in_onnx_runtime() {
    if !python_ok() {
        return;
    }
    let (out, refs) = (temp_dir("onnx"), temp_dir("refs"));
    let t = Instant::now();
    for &name in &zoo::names() {
        let mlp = name.ends_with("-mlp");
        let input = if mlp { None } else { Some(vec![3, 32, 32]) };
        // Full width for ResNet-18 and DenseNet-121; a quarter (16 channels in the first stage) for the
        // deeper ImageNet ResNets, which keeps the files small (ResNet-152: 15 MB, not 240 MB).
        let width = match name {
            "resnet34" | "resnet50" | "resnet101" | "resnet152" | "plain34" => Some(16),
            _ => None,
        };
        let opts = ZooOptions { input, width, seed: 11, random_batchnorm: true, ..Default::default() };
        let g = build(name, &opts);
        let sample: Vec<usize> = g.node(g.inputs[0]).ty.shape[1..].iter().map(|d| d.fixed().unwrap()).collect();
        let mut rng = Rng::new(5);
        let x = resin_runtime::Tensor::new(
            std::iter::once(1).chain(sample.iter().copied()).collect(),
            rng.normal_vec(sample.iter().product(), 1.0),
        )
        .unwrap();
        let model = resin::compile::compile(g.clone(), &[]).unwrap();
        let model = resin_runtime::Model::new(model.plan).unwrap();
        let y = model.session_with_threads(2).unwrap().run(&[&x]).unwrap().remove(0);
        let npy = |p: PathBuf, t: &resin_runtime::Tensor| resin_runtime::npy::write_f32(&p, &t.shape, &t.data).unwrap();
        npy(refs.join(format!("{name}_input.npy")), &x);
        npy(refs.join(format!("{name}_output.npy")), &y);
        ronnx::save(&g, &out.join(format!("{name}.onnx"))).unwrap();
    }
    println!("built, ran and exported {} models in {:.1} s", zoo::names().len(), t.elapsed().as_secs_f64());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_check.py");
    let res = Command::new("python3").arg(&script).arg(&out).arg("--ref").arg(&refs).output().unwrap();
    let report = String::from_utf8_lossy(&res.stdout).into_owned();
    print!("{report}");
    eprint!("{}", String::from_utf8_lossy(&res.stderr));
    let n = zoo::names().len();
    assert!(res.status.success() && report.contains(&format!("{n}/{n} passed")), "{report}");
    println!("ONNX Runtime checked them in {:.1} s", t.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&refs).unwrap();
}

// ------------------------------------------------------------------------------------------------------
// The command line
// ------------------------------------------------------------------------------------------------------

fn resin(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_resin")).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cli_writes_onnx_and_resin_and_names_the_models() {
    let dir = temp_dir("cli");
    let onnx_path = dir.join("digits.onnx");
    let (ok, out, err) = resin(&[
        "zoo",
        "resnet20",
        "--input",
        "1x8x8",
        "--classes",
        "10",
        "--seed",
        "3",
        "-o",
        onnx_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("resnet20: input float32[batch,1,8,8], output float32[batch,10]"), "{out}");
    assert!(out.contains("skips: 7 identity + 2 weighted"), "{out}");
    let g = load(&onnx_path);
    let want = build("resnet20", &ZooOptions { input: Some(vec![1, 8, 8]), seed: 3, ..Default::default() });
    assert_same_architecture("resin zoo resnet20 -o .onnx", &g, &want);

    let resin_path = dir.join("dense.resin");
    let (ok, out, err) = resin(&[
        "zoo",
        "dense-mlp",
        "--depth",
        "4",
        "--width",
        "16",
        "--input",
        "64",
        "--batch",
        "2",
        "-o",
        resin_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("input float32[2,64]"), "{out}");
    let model = resin_runtime::Model::load(&resin_path).unwrap();
    assert_eq!(resin_runtime::plan::fmt_dims(model.inputs()[0].1), "[2,64]");

    let (ok, _, err) = resin(&["zoo", "resnet19", "-o", "x.onnx"]);
    assert!(
        !ok && err.starts_with("error: unknown zoo model 'resnet19' (models: ") && err.contains("gated-highway-mlp"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (ok, _, err) = resin(&["zoo", "resnet18", "-o", dir.join("x.pt").to_str().unwrap()]);
    assert!(!ok && err.contains("name it NAME.onnx or NAME.resin"), "{err}");
    let (ok, _, err) = resin(&["zoo", "resnet18", "--input", "3xbig"]);
    assert!(!ok && err.contains("--input '3xbig': expected positive sizes"), "{err}");
    let (ok, out, _) = resin(&["zoo", "--list"]);
    assert!(ok && zoo::names().iter().all(|n| out.lines().any(|l| l.starts_with(n))), "{out}");
    let (ok, out, _) = resin(&["zoo", "--help"]);
    assert!(ok && out.contains("Examples:") && out.contains("resin zoo resnet18 -o resnet18.onnx"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
