//! Helpers shared by the end-to-end tests: loading models and references, comparing within the
//! project's tolerance |ours − ref| ≤ 1e-4 + 1e-3·|ref| with the same argmax.

#![allow(dead_code)]

use resin_runtime::{npy, Model, Tensor};
use std::path::{Path, PathBuf};

pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

pub fn read_npy(path: &Path) -> Tensor {
    let a = npy::read(path).unwrap_or_else(|e| panic!("{e}"));
    Tensor { shape: a.shape, data: a.f32_data.expect("float32 .npy") }
}

pub fn compile(path: &Path) -> Model {
    resin::cli::load_model(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// Max |a − b|, after asserting the tolerance and the argmax of every row.
pub fn assert_close(name: &str, ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.shape, reference.shape, "{name}: output shape");
    let mut max = 0.0f32;
    for (i, (&a, &r)) in ours.data.iter().zip(&reference.data).enumerate() {
        let d = (a - r).abs();
        assert!(d <= 1e-4 + 1e-3 * r.abs(), "{name}: element {i}: ours {a} vs reference {r} (diff {d})");
        max = max.max(d);
    }
    if reference.shape.len() == 2 {
        assert_eq!(ours.argmax_rows(), reference.argmax_rows(), "{name}: argmax differs");
    }
    max
}

/// The same sample stacked `n` times along axis 0.
pub fn stack(t: &Tensor, n: usize) -> Tensor {
    let mut shape = t.shape.clone();
    shape[0] *= n;
    Tensor { shape, data: t.data.repeat(n) }
}

/// Runs `NAME.onnx` from `dir` on `NAME_input.npy` at batch 1 and stacked to batch 3 (with both thread
/// counts), compares with `NAME_output.npy`, returns the max abs difference.
pub fn check_model(dir: &Path, name: &str) -> f32 {
    let model = compile(&dir.join(format!("{name}.onnx")));
    let input = read_npy(&dir.join(format!("{name}_input.npy")));
    let reference = read_npy(&dir.join(format!("{name}_output.npy")));
    let mut session = model.session_with_threads(2).unwrap();
    let out = session.run(&[&input]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let max = assert_close(name, &out[0], &reference);
    // Batch 3: every row must equal the batch-1 answer.
    let mut single = model.session_with_threads(1).unwrap();
    let out3 = single.run(&[&stack(&input, 3)]).unwrap();
    assert_close(&format!("{name} (batch 3)"), &out3[0], &stack(&reference, 3));
    max
}
