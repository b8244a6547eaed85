//! The bad-input catalogue: every kind of malformed file, model or run-time input that a user or an
//! embedder can hand resin, each checked for the exact error (or its essential words) and for the
//! absence of a panic.
//!
//! - Through the CLI (where a user meets it): exit code 1, and one line on stderr that starts with
//!   `error: ` and names the problem (node, op, expected against got). Nothing is half-written.
//! - Through the Rust API (where an embedder meets it): an `Err` with the same message, never a panic.
//!
//! Covered: empty, truncated and non-protobuf ONNX files; `.resin` files with a wrong magic, a future
//! version, a truncation or a flipped byte; a cycle, an unsorted graph (accepted), an input that is never
//! produced, a missing initializer, duplicate tensor names, an attribute of the wrong type, an unknown op,
//! mismatched Gemm and Conv shapes, zero, negative and absurd dimensions; at run time the wrong input count,
//! name, rank, shape, data length or dtype, NaN and Inf inputs (propagated as IEEE 754 says), batch sizes
//! (a free batch is re-planned, a fixed one refused); output paths in a missing directory and writes that
//! fail half-way (no file left behind, an existing file untouched). The malformed models are made by
//! `tests/models/bad/make_bad_models.py`.

mod common;

use resin_runtime::{Model, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------------------------------
// Helpers

fn resin_bin() -> &'static str {
    env!("CARGO_BIN_EXE_resin")
}

fn resin(args: &[&str]) -> Output {
    Command::new(resin_bin()).args(args).output().expect("run resin")
}

/// Asserts a failed CLI run: exit code 1, one line on stderr starting with `error: ` and containing every
/// one of `want`, no panic. Returns the line.
fn assert_cli_error(o: &Output, want: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for w in want {
        assert!(err.contains(w), "expected '{w}' in: {err}");
    }
    err
}

/// Runs `f`, failing the test with `what` if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what}: panicked instead of returning an error"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("resin-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn bad(name: &str) -> PathBuf {
    common::models_dir().join("bad").join(name)
}

fn model(name: &str) -> String {
    common::models_dir().join(name).to_string_lossy().into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The import error of an ONNX file through the library, with its whole context chain.
fn import_error(path: &Path) -> String {
    let r = no_panic(&path.display().to_string(), || resin::onnx::load(path, &Default::default()));
    format!("{:#}", r.expect_err(&format!("{} imported", path.display())))
}

/// The compile error of an ONNX file through the library (import succeeds).
fn compile_error(path: &Path) -> String {
    let g = resin::onnx::load(path, &Default::default()).unwrap();
    let r = no_panic(&path.display().to_string(), || resin::compile::compile(g, &[]));
    format!("{:#}", r.err().unwrap_or_else(|| panic!("{} compiled", path.display())))
}

/// The `.resin` bytes of a compiled model.
fn resin_bytes(onnx: &str) -> Vec<u8> {
    let g = resin::onnx::load(Path::new(&model(onnx)), &Default::default()).unwrap();
    let c = resin::compile::compile(g, &[]).unwrap();
    resin_runtime::format::to_bytes(&c.plan, &resin_runtime::format::Metadata::new(onnx))
}

/// `Model::from_bytes`'s error.
fn load_error(bytes: &[u8]) -> String {
    no_panic("Model::from_bytes", || Model::from_bytes(bytes)).expect_err("loaded").to_string()
}

/// Writes a `.npy` header for `shape` with dtype `descr` and zeroed data of `elem` bytes per element.
fn write_npy(path: &Path, descr: &str, shape: &[usize], elem: usize) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + shape.iter().product::<usize>() * elem, 0);
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Files that are not models

#[test]
fn onnx_files_that_are_not_models() {
    let d = scratch("not-models");
    let x = model("resnet20_input.npy");

    let empty = d.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(import_error(&empty), format!("cannot import '{}': the file is empty", empty.display()));
    for cmd in [&["info", s(&empty)][..], &["run", s(&empty), "--input", &x], &["compile", s(&empty)]] {
        assert_cli_error(&resin(cmd), &["the file is empty"]);
    }
    assert!(!d.join("empty.resin").exists(), "compile wrote an artifact for an empty file");

    // Text is not protobuf ('n' = field 13 with the invalid wire type 6).
    let text = d.join("text.onnx");
    std::fs::write(&text, b"not a model, just some text\n").unwrap();
    assert!(import_error(&text).contains("not a valid ONNX model (protobuf decode failed"));
    assert_cli_error(&resin(&["info", s(&text)]), &["not a valid ONNX model"]);

    // A real model cut in half.
    let bytes = std::fs::read(model("resnet20.onnx")).unwrap();
    let half = d.join("half.onnx");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    assert!(import_error(&half).contains("not a valid ONNX model"));
    assert_cli_error(&resin(&["run", s(&half), "--input", &x]), &["not a valid ONNX model"]);

    // Valid protobuf that is not an ONNX model (an empty message).
    let nothing = d.join("nothing.onnx");
    std::fs::write(&nothing, [0x08, 0x01]).unwrap(); // ir_version = 1, nothing else
    assert!(import_error(&nothing).contains("imports no default-domain opset"), "{}", import_error(&nothing));

    // A file that does not exist.
    assert_cli_error(&resin(&["info", s(&d.join("missing.onnx"))]), &["cannot read", "missing.onnx"]);
}

#[test]
fn damaged_resin_files() {
    let d = scratch("resin-files");
    let good = resin_bytes("mlp_res.onnx");
    let x = model("mlp_res_input.npy");
    assert!(Model::from_bytes(&good).is_ok());

    let mut cases: Vec<(&str, Vec<u8>, String)> = Vec::new();
    cases.push(("empty", vec![], "not a resin file (its first bytes are not the resin magic number)".into()));
    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"NISER\0\0\x01");
    cases.push(("magic", magic, "not a resin file (its first bytes are not the resin magic number)".into()));
    let mut future = good.clone();
    let v = resin_runtime::format::VERSION;
    future[8..12].copy_from_slice(&(v + 1).to_le_bytes());
    cases.push(("future", future, format!("format version {} is newer than this resin ({v})", v + 1)));
    let short = good[..good.len() - 10].to_vec();
    let msg = format!("the file is truncated: it has {} bytes of {} (10 bytes missing)", good.len() - 10, good.len());
    cases.push(("truncated", short, msg));
    cases.push((
        "prelude",
        good[..20].to_vec(),
        "the file is truncated: it has 20 bytes of 48 (28 bytes missing)".into(),
    ));
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    cases.push(("flipped", flipped, "checksum mismatch: the file is corrupted".into()));

    for (name, bytes, want) in &cases {
        // The API says exactly what is wrong.
        assert_eq!(&load_error(bytes), want, "{name}");
        // So does loading the file, naming it; and the CLI, in one line.
        let path = d.join(format!("{name}.resin"));
        std::fs::write(&path, bytes).unwrap();
        let e = no_panic(name, || Model::load(&path)).expect_err("loaded");
        assert_eq!(e.to_string(), format!("{}: {want}", path.display()), "{name}");
        assert_cli_error(&resin(&["info", s(&path)]), &[want, name]);
        assert_cli_error(&resin(&["run", s(&path), "--input", &x]), &[want]);
    }
}

// ---------------------------------------------------------------------------------------------------
// Malformed graphs

#[test]
fn malformed_graphs_are_refused_naming_the_problem() {
    // (file, the essential words of the error)
    let cases: &[(&str, &str)] = &[
        ("cycle.onnx", "the graph has a cycle: 'relu_b' -> 'add_a' -> 'relu_b'"),
        (
            "unproduced.onnx",
            "node 'add_ghost' (Add, opset 17): input 'ghost' is never produced (not a graph input, an initializer or an earlier node's output)",
        ),
        ("missing_initializer.onnx", "node 'fc' (Gemm, opset 17): input 'fc.weight' is never produced"),
        (
            "duplicate_output.onnx",
            "node 'sigmoid_1' (Sigmoid): output 'y' is already defined (duplicate tensor name)",
        ),
        ("duplicate_initializer.onnx", "initializer 'w' is defined twice"),
        ("duplicate_input.onnx", "graph input 'x' is declared twice"),
        ("attribute_wrong_type.onnx", "node 'fc' (Gemm, opset 17): attribute 'transB' should be INT, got FLOAT"),
        ("gemm_mismatch.onnx", "node 'fc' (Gemm, opset 17): A is [batch,4] but B needs K = 5"),
        (
            "conv_mismatch.onnx",
            "node 'conv1' (Conv, opset 17): weight [8, 2, 3, 3] with group 1 expects 2 input channels, got 3",
        ),
        ("zero_dim.onnx", "input 'x' has dimension 1 of size 0"),
        ("negative_dim.onnx", "input 'x' has dimension 1 of size -3"),
        ("negative_initializer_dim.onnx", "tensor 'w' has a negative dimension -1"),
        ("float64_input.onnx", "input 'x' has dtype DOUBLE; only float32 inputs are supported"),
    ];
    let x = bad("x.npy"); // never read: every model fails to import first
    for (file, want) in cases {
        let path = bad(file);
        let e = import_error(&path);
        assert!(e.starts_with(&format!("cannot import '{}': {want}", path.display())), "{file}: {e}");
        assert_cli_error(&resin(&["info", s(&path)]), &[want]);
        assert_cli_error(&resin(&["run", s(&path), "--input", s(&x)]), &[want]);
    }
}

#[test]
fn an_unknown_op_is_named() {
    use prost::Message;
    let d = scratch("unknown-op");
    let bytes = std::fs::read(model("resnet20.onnx")).unwrap();
    let mut m = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let node = m.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    node.op_type = "Frobnicate".into();
    let want = format!("node '{}' (Frobnicate, opset 17): unsupported op 'Frobnicate'", node.name);
    let path = d.join("unknown.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    assert!(import_error(&path).contains(&want), "{}", import_error(&path));
    assert_cli_error(&resin(&["info", s(&path)]), &[&want]);
}

/// ONNX requires nodes in topological order, but ONNX Runtime accepts any order; so does resin.
#[test]
fn an_unsorted_graph_is_sorted() {
    let m = common::compile(&bad("unsorted.onnx"));
    let x = Tensor::new(vec![2, 4], vec![-2.0, -1.0, 0.5, 3.0, 1.0, -0.0, f32::NAN, -7.0]).unwrap();
    let y = m.session_with_threads(1).unwrap().run(&[&x]).unwrap();
    let want = [0.0, 0.0, 0.5, 3.0, 1.0, 0.0, f32::NAN, 0.0];
    assert_eq!(format!("{:?}", y[0].data), format!("{want:?}"));
}

/// An input that declares 2^60 elements per sample is refused before any allocation, and `compile` does
/// not write an artifact that could never load.
#[test]
fn absurd_shapes_are_refused_before_allocation() {
    let d = scratch("absurd");
    let path = bad("absurd_dim.onnx");
    let want = "node 'x': shape [batch,1048576,1048576,1048576] has more than 1073741824 elements per sample";
    assert!(compile_error(&path).contains(want), "{}", compile_error(&path));
    let out = d.join("absurd.resin");
    assert_cli_error(&resin(&["compile", s(&path), "-o", s(&out)]), &[want]);
    assert!(listing(&d).is_empty(), "{:?}", listing(&d));
    let x = d.join("x.npy");
    write_npy(&x, "<f4", &[1, 4], 4);
    assert_cli_error(&resin(&["run", s(&path), "--input", s(&x)]), &[want]);
}

// ---------------------------------------------------------------------------------------------------
// Run time

#[test]
fn wrong_inputs_at_run_time_through_the_api() {
    let m = common::compile(Path::new(&model("resnet20.onnx")));
    let mut sess = m.session_with_threads(1).unwrap();
    let good = common::read_npy(&common::models_dir().join("resnet20_input.npy"));
    let mut run = |inputs: &[&Tensor]| no_panic("run", || sess.run(inputs)).expect_err("ran").to_string();

    assert_eq!(run(&[]), "expected 1 input(s), got 0");
    assert_eq!(run(&[&good, &good]), "expected 1 input(s), got 2");
    let rank3 = Tensor::new(vec![3, 32, 32], vec![0.0; 3 * 32 * 32]).unwrap();
    assert_eq!(run(&[&rank3]), "input 'input': expected shape [N,3,32,32], got [3, 32, 32]");
    let small = Tensor::new(vec![1, 3, 16, 16], vec![0.0; 3 * 16 * 16]).unwrap();
    assert_eq!(run(&[&small]), "input 'input': expected shape [N,3,32,32], got [1, 3, 16, 16]");
    let channels_last = Tensor::new(vec![1, 32, 32, 3], vec![0.0; 3 * 32 * 32]).unwrap();
    assert_eq!(run(&[&channels_last]), "input 'input': expected shape [N,3,32,32], got [1, 32, 32, 3]");
    let empty_batch = Tensor::new(vec![0, 3, 32, 32], vec![]).unwrap();
    assert_eq!(run(&[&empty_batch]), "input 'input': expected shape [N,3,32,32], got [0, 3, 32, 32]");
    // Tensor's fields are public: data that does not fill the shape is an error, not an out-of-bounds read.
    let short = Tensor { shape: vec![1, 3, 32, 32], data: vec![0.0; 5] };
    assert_eq!(run(&[&short]), "input 'input': data has 5 elements, its shape [1, 3, 32, 32] needs 3072");
    assert!(Tensor::new(vec![1, 3, 32, 32], vec![0.0; 5]).is_none());

    // Two inputs: count and order.
    let two = common::compile(&bad("two_inputs.onnx"));
    assert_eq!(two.input_names(), ["a", "b"]);
    let mut s2 = two.session_with_threads(1).unwrap();
    let a = Tensor::new(vec![1, 4], vec![1.0; 4]).unwrap();
    let b3 = Tensor::new(vec![3, 4], vec![1.0; 12]).unwrap();
    assert_eq!(s2.run(&[&a]).unwrap_err().to_string(), "expected 2 input(s), got 1");
    // Batch dimensions that disagree between inputs.
    assert_eq!(s2.run(&[&a, &b3]).unwrap_err().to_string(), "input 'b': expected shape [N,4], got [3, 4]");
    // A failed run leaves the session usable.
    assert_eq!(s2.run(&[&a, &a]).unwrap()[0].data, vec![2.0; 4]);
}

#[test]
fn wrong_inputs_at_run_time_through_the_cli() {
    let d = scratch("run-time");
    let r20 = model("resnet20.onnx");
    let x = model("resnet20_input.npy");

    // Count.
    assert_cli_error(&resin(&["run", &r20]), &["missing --input for model input 'input'"]);
    assert_cli_error(
        &resin(&["run", &r20, "--input", &x, "--input", &x]),
        &["too many --input arguments: the model has 1 input(s): input"],
    );
    let two = bad("two_inputs.onnx");
    let a = d.join("a.npy");
    write_npy(&a, "<f4", &[1, 4], 4);
    assert_cli_error(&resin(&["run", s(&two), "--input", s(&a)]), &["missing --input for model input 'b'"]);
    assert_cli_error(
        &resin(&["run", s(&two), "--input", &format!("a={}", s(&a)), "--input", &format!("a={}", s(&a))]),
        &["--input 'a' is given twice"],
    );

    // Name.
    assert_cli_error(
        &resin(&["run", &r20, "--input", &format!("image={x}")]),
        &["the model has no input named 'image' (its inputs: input)"],
    );
    let y = d.join("y.npy");
    assert_cli_error(
        &resin(&["run", &r20, "--input", &x, "--output", &format!("logits={}", s(&y))]),
        &["the model has no output named 'logits' (its outputs: output)"],
    );
    assert!(!y.exists());

    // Rank, shape, dtype.
    let cases: &[(&str, &str, &[usize], usize, &str)] = &[
        ("rank.npy", "<f4", &[3, 32, 32], 4, "input 'input': expected shape [N,3,32,32], got [3, 32, 32]"),
        ("shape.npy", "<f4", &[1, 3, 16, 16], 4, "input 'input': expected shape [N,3,32,32], got [1, 3, 16, 16]"),
        ("f64.npy", "<f8", &[1, 3, 32, 32], 8, "input 'input': expected dtype float32, got float64"),
        ("i64.npy", "<i8", &[1, 3, 32, 32], 8, "input 'input': expected dtype float32, got int64"),
        ("u8.npy", "|u1", &[1, 3, 32, 32], 1, "input 'input': expected dtype float32, got uint8"),
    ];
    for (file, descr, shape, elem, want) in cases {
        let p = d.join(file);
        write_npy(&p, descr, shape, *elem);
        assert_cli_error(&resin(&["run", &r20, "--input", s(&p)]), &[want]);
    }
    // Not a .npy file; a .npy whose data is cut short.
    let text = d.join("text.npy");
    std::fs::write(&text, b"0.5 0.25 1.0\n").unwrap();
    assert_cli_error(&resin(&["run", &r20, "--input", s(&text)]), &["text.npy", "not a .npy file (bad magic)"]);
    let full = std::fs::read(&x).unwrap();
    let cut = d.join("cut.npy");
    std::fs::write(&cut, &full[..full.len() - 4]).unwrap();
    assert_cli_error(
        &resin(&["run", &r20, "--input", s(&cut)]),
        &["cut.npy", "the .npy data is 12284 bytes, shape [1, 3, 32, 32] of float32 needs 12288"],
    );
}

/// The batch size is free where the model's is (`batch` in the export): the session re-plans its buffers
/// for each new batch size and every row is the batch-1 answer. A model exported with a fixed batch of 1
/// refuses other batch sizes, saying what it expects.
#[test]
fn batch_sizes() {
    let m = common::compile(Path::new(&model("resnet20.onnx")));
    let x1 = common::read_npy(&common::models_dir().join("resnet20_input.npy"));
    let reference = common::read_npy(&common::models_dir().join("resnet20_output.npy"));
    let mut sess = m.session_with_threads(1).unwrap();
    for n in [1, 4, 2, 1, 7] {
        let y = sess.run(&[&common::stack(&x1, n)]).unwrap();
        common::assert_close(&format!("resnet20 batch {n}"), &y[0], &common::stack(&reference, n));
    }

    let fixed = common::compile(&bad("fixed_batch.onnx"));
    assert_eq!(resin_runtime::plan::fmt_dims(fixed.inputs()[0].1), "[1,4]");
    let mut sess = fixed.session_with_threads(1).unwrap();
    let one = Tensor::new(vec![1, 4], vec![1.0; 4]).unwrap();
    assert_eq!(sess.run(&[&one]).unwrap()[0].shape, vec![1, 4]);
    let two = Tensor::new(vec![2, 4], vec![1.0; 8]).unwrap();
    assert_eq!(sess.run(&[&two]).unwrap_err().to_string(), "input 'x': expected shape [1,4], got [2, 4]");
    let d = scratch("batch");
    let x2 = d.join("x2.npy");
    write_npy(&x2, "<f4", &[2, 4], 4);
    assert_cli_error(
        &resin(&["run", s(&bad("fixed_batch.onnx")), "--input", s(&x2)]),
        &["input 'x': expected shape [1,4], got [2, 4]"],
    );
}

// ---------------------------------------------------------------------------------------------------
// NaN and Inf

/// Runs the single-op model `tests/models/ops/NAME.onnx` on `x`.
fn run_op(name: &str, x: &Tensor) -> Tensor {
    let m = common::compile(&common::models_dir().join("ops").join(format!("{name}.onnx")));
    let mut y = no_panic(name, || m.session_with_threads(2).unwrap().run(&[x])).unwrap();
    y.remove(0)
}

/// `n` finite values in [-1, 1] of shape `shape`.
fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|i| (i as f32 / n as f32) * 2.0 - 1.0).collect()).unwrap()
}

#[test]
fn nan_and_inf_propagate_as_ieee_says() {
    let (nan, inf) = (f32::NAN, f32::INFINITY);

    // Elementwise: Relu(NaN) = NaN (max with NaN is NaN, it is not a number below 0), Relu(±inf) = inf / 0;
    // Sigmoid(NaN) = NaN, Sigmoid(±inf) = 1 / 0.
    let x = Tensor::new(vec![1, 3, 4, 5], [nan, inf, -inf, -0.5, 0.5].repeat(12)).unwrap();
    let relu = run_op("relu", &x);
    assert_eq!(format!("{:?}", &relu.data[..5]), format!("{:?}", [nan, inf, 0.0, 0.0, 0.5]));
    let sig = run_op("sigmoid", &x);
    assert!(sig.data[0].is_nan() && sig.data[1] == 1.0 && sig.data[2] == 0.0, "{:?}", &sig.data[..5]);

    // Softmax over rows of 4: a NaN makes its row NaN; -inf gets probability 0; +inf gives inf - inf = NaN.
    let x = Tensor::new(vec![1, 3, 4], vec![0.0, nan, 1.0, 2.0, -inf, 0.0, 1.0, 2.0, 0.0, inf, 1.0, 2.0]).unwrap();
    let y = run_op("softmax_opset13_default_axis", &x).data;
    assert!(y[..4].iter().all(|v| v.is_nan()), "{y:?}");
    assert_eq!(y[4], 0.0);
    assert!((y[5..8].iter().sum::<f32>() - 1.0).abs() < 1e-6, "{y:?}");
    assert!(y[8..].iter().any(|v| v.is_nan()), "{y:?}");

    // Gemm [batch, 5] x [5, 3]: a NaN or an inf in a row leaves no finite number in that row; other rows
    // stay finite.
    let mut x = ramp(&[3, 5]);
    x.data[2] = nan;
    x.data[5 + 4] = inf;
    let y = run_op("gemm_no_C", &x).data;
    assert!(y[..3].iter().all(|v| v.is_nan()), "{y:?}");
    assert!(y[3..6].iter().all(|v| !v.is_finite()), "{y:?}");
    assert!(y[6..].iter().all(|v| v.is_finite()), "{y:?}");

    // Conv 3x3, pads 1, on [2, 3, 6, 5]: a NaN at sample 0, channel 0, pixel (0, 0) reaches exactly the
    // outputs whose window covers it, (0..2, 0..2), in every output channel; sample 1 stays finite.
    let mut x = ramp(&[2, 3, 6, 5]);
    x.data[0] = nan;
    let y = run_op("conv_no_bias", &x);
    let (m, h, w) = (y.shape[1], y.shape[2], y.shape[3]);
    for (i, v) in y.data.iter().enumerate() {
        let (n, r, c) = (i / (m * h * w), (i / w) % h, i % w);
        assert_eq!(v.is_nan(), n == 0 && r < 2 && c < 2, "conv output {i} (sample {n}, row {r}, col {c}) = {v}");
    }

    // MaxPool 3x3, stride 2, pads 1: the NaN at (0, 0) is in the window of output (0, 0) only; an inf wins
    // its windows.
    let mut x = ramp(&[1, 3, 8, 10]);
    x.data[0] = nan;
    x.data[80 + 5 * 10 + 5] = inf; // channel 1, (5, 5): windows of outputs (2..4, 2..4) that cover it
    let y = run_op("maxpool_ceil_pads", &x);
    let (h, w) = (y.shape[2], y.shape[3]);
    for (i, v) in y.data.iter().enumerate() {
        let (ch, r, c) = (i / (h * w), (i / w) % h, i % w);
        assert_eq!(v.is_nan(), ch == 0 && r == 0 && c == 0, "maxpool output {i} = {v}");
        let covers = |o: usize| (o * 2).saturating_sub(1) <= 5 && 5 <= o * 2 + 1;
        assert_eq!(*v == inf, ch == 1 && covers(r) && covers(c), "maxpool output {i} = {v}");
    }

    // GlobalAveragePool: a NaN or inf in a channel makes that channel's mean NaN or inf; +inf and -inf
    // together give NaN.
    let mut x = ramp(&[1, 3, 5, 7]);
    x.data[3] = nan;
    x.data[35 + 3] = inf;
    let y = run_op("globalavgpool", &x).data;
    assert!(y[0].is_nan() && y[1] == inf && y[2].is_finite(), "{y:?}");
}

/// A whole ResNet: a NaN pixel in sample 0 of a batch makes all of sample 0's logits NaN (no ReLU, pooling
/// or fused epilogue hides it), an inf pixel gives no crash, and sample 1 keeps its exact answer.
#[test]
fn nan_and_inf_through_a_resnet() {
    let m = common::compile(Path::new(&model("resnet20.onnx")));
    let x1 = common::read_npy(&common::models_dir().join("resnet20_input.npy"));
    let mut sess = m.session_with_threads(2).unwrap();
    let clean = sess.run(&[&common::stack(&x1, 2)]).unwrap().remove(0);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = common::stack(&x1, 2);
        x.data[32 * 32 + 16 * 32 + 16] = bad; // sample 0, channel 1, pixel (16, 16)
        let y = no_panic("resnet20 with a non-finite pixel", || sess.run(&[&x])).unwrap().remove(0);
        assert_eq!(y.data[10..], clean.data[10..], "sample 1 changed when sample 0 had {bad}");
        if bad.is_nan() {
            assert!(y.data[..10].iter().all(|v| v.is_nan()), "{:?}", &y.data[..10]);
        } else {
            assert!(y.data[..10].iter().any(|v| !v.is_finite()), "{bad} vanished: {:?}", &y.data[..10]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Output files

/// Every command that writes a file refuses an output path in a missing directory with an error naming the
/// directory, and leaves nothing behind.
#[test]
fn outputs_in_a_missing_directory() {
    let d = scratch("missing-dir");
    let r20 = model("resnet20.onnx");
    let x = model("resnet20_input.npy");
    let missing = d.join("no/such/dir");
    let out = |name: &str| missing.join(name).to_string_lossy().into_owned();
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["compile".into(), r20.clone(), "-o".into(), out("m.resin")], out("m.resin")),
        (vec!["compile".into(), r20.clone(), "--exe".into(), "-o".into(), out("m")], out("m")),
        (vec!["run".into(), r20.clone(), "--input".into(), x.clone(), "--output".into(), out("y.npy")], out("y.npy")),
        (vec!["export".into(), r20.clone(), "-o".into(), out("e.onnx")], out("e.onnx")),
        (vec!["viz".into(), r20.clone(), "-o".into(), out("g.svg")], out("g.svg")),
    ];
    for (args, target) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = assert_cli_error(&resin(&args), &["does not exist"]);
        assert!(e.contains("no/such/dir"), "{args:?}: the message names the directory: {e}");
        assert!(!Path::new(target).exists(), "{target}");
    }
    assert!(listing(&d).is_empty(), "{:?}", listing(&d));
}

/// `resin ARGS` with the file-size limit set to `blocks` (shell `ulimit -f` units) and SIGXFSZ ignored, so
/// that a write past the limit fails with EFBIG half-way through the file.
fn resin_with_file_limit(blocks: u32, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\""))
        .arg(resin_bin())
        .args(args)
        .output()
        .expect("run sh")
}

/// A write that fails half-way (the disk is full, a quota is hit) leaves no partial file: every writer
/// writes a temporary file in the same directory and renames it over the target only when complete, so
/// an existing target keeps its old contents and the temporary file is removed.
#[test]
fn a_write_that_fails_half_way_leaves_nothing_behind() {
    let d = scratch("half-way");
    let r20 = model("resnet20.onnx");
    let x = model("resnet20_input.npy");
    let p = |name: &str| d.join(name).to_string_lossy().into_owned();
    // (args, target, blocks): the limit is below each file's size (the .npy output is 168 bytes).
    let cases: Vec<(Vec<String>, String, u32)> = vec![
        (vec!["compile".into(), r20.clone(), "-o".into(), p("m.resin")], p("m.resin"), 64),
        (vec!["compile".into(), r20.clone(), "--exe".into(), "-o".into(), p("m")], p("m"), 64),
        (vec!["export".into(), r20.clone(), "-o".into(), p("e.onnx")], p("e.onnx"), 64),
        (vec!["viz".into(), r20.clone(), "-o".into(), p("g.svg")], p("g.svg"), 8),
        (vec!["run".into(), r20.clone(), "--input".into(), x.clone(), "--output".into(), p("y.npy")], p("y.npy"), 0),
    ];
    for (args, target, blocks) in &cases {
        std::fs::write(target, b"old contents").unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = resin_with_file_limit(*blocks, &args);
        assert_cli_error(&o, &["File too large"]);
        assert_eq!(std::fs::read(target).unwrap(), b"old contents", "{args:?} changed its target");
        std::fs::remove_file(target).unwrap();
        assert!(listing(&d).is_empty(), "{args:?} left {:?}", listing(&d));
        // Without the limit the same command writes its file.
        let o = resin(&args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::metadata(target).unwrap().len() > 100, "{target}");
        std::fs::remove_file(target).unwrap();
    }
}
