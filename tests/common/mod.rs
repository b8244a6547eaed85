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

/// Runs `NAME.onnx` from `dir` on `NAME_input.npy` at batch 1 (2 threads) and stacked to batch 3 (1
/// thread), compares with `NAME_output.npy`, returns the max abs difference. Then a batch of 4 different
/// images (the input scaled by 1, 1.1, 1.2, 1.3) on 2 threads, which take whole images each: every row
/// must be bit for bit that image's batch-1 answer, since results depend neither on the batch nor on how
/// threads share the work.
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
    let images: Vec<Tensor> = (0..4)
        .map(|i| Tensor {
            shape: input.shape.clone(),
            data: input.data.iter().map(|v| v * (1.0 + 0.1 * i as f32)).collect(),
        })
        .collect();
    let mut batch4 = stack(&input, 4);
    batch4.data = images.iter().flat_map(|t| t.data.iter().copied()).collect();
    let out4 = session.run(&[&batch4]).unwrap();
    let row = out4[0].data.len() / 4;
    for (i, image) in images.iter().enumerate() {
        let one = session.run(&[image]).unwrap();
        assert_eq!(one[0].data.len(), row, "{name}: batch-1 output size");
        let same =
            one[0].data.iter().zip(&out4[0].data[i * row..(i + 1) * row]).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: image {i} of batch 4 on 2 threads differs from its batch-1 answer");
    }
    max
}

/// Runs a freshly written executable in `dir`. Another test thread may fork while this one still holds
/// the file open for writing (the child keeps a copy of the descriptor until it execs), and exec then
/// fails with ETXTBSY ("Text file busy") for a moment: that is retried, anything else is an error.
pub fn run_fresh_exe(exe: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    const ETXTBSY: i32 = 26;
    for _ in 0..100 {
        match std::process::Command::new(exe).args(args).current_dir(dir).output() {
            Err(e) if cfg!(target_os = "linux") && e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("{} stayed busy (ETXTBSY) for 2 s", exe.display())
}
