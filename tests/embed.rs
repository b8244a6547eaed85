//! The embedding API: one `Model` loaded from a `.resin` file and shared by threads, each with its own
//! `Session`; every answer bit-identical to the single-thread one; `run_arrays` agreeing with `run`.

mod common;

use common::{assert_close, read_npy};
use resin_runtime::format::{self, Metadata};
use resin_runtime::{Model, Session, Tensor};
use std::path::PathBuf;
use std::sync::Arc;

// Compile-time: a model can be shared between threads and a session moved to one.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Model>();
    send_sync::<Arc<Model>>();
    send::<Session>();
};

/// A fresh `.resin` of resnet20, compiled through the library (as `resin compile` does).
fn compiled_resnet20(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("resin-embed-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let onnx = common::models_dir().join("resnet20.onnx");
    let compiled = resin::compile::compile(resin::cli::load_graph(&onnx).unwrap(), &[]).unwrap();
    let path = dir.join("resnet20.resin");
    format::save(&compiled.plan, &Metadata::new("resnet20.onnx"), &path).unwrap();
    (dir, path)
}

/// Batch 2: the reference sample and a different one (mirrored left-right and dimmed).
fn batch2(x: &Tensor) -> Tensor {
    let w = *x.shape.last().unwrap();
    let other: Vec<f32> =
        x.data.chunks(w).flat_map(|row| row.iter().rev().map(|v| v * 0.5 + 0.1).collect::<Vec<_>>()).collect();
    let mut shape = x.shape.clone();
    shape[0] = 2;
    Tensor { shape, data: [x.data.clone(), other].concat() }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn threads_share_one_model_and_agree_bit_for_bit() {
    let (dir, path) = compiled_resnet20("threads");
    let model = Arc::new(Model::load(&path).unwrap());
    assert_eq!(model.input_names(), model.inputs().iter().map(|(n, _)| *n).collect::<Vec<_>>());
    assert_eq!(model.output_names(), model.outputs().iter().map(|(n, _)| *n).collect::<Vec<_>>());
    assert_eq!(model.input_shape(0, 7), Some(vec![7, 3, 32, 32]));
    assert_eq!(model.input_shape(1, 7), None);
    assert_eq!(model.num_inputs(), 1);
    assert_eq!(model.num_outputs(), 1);
    let x1 = read_npy(&common::models_dir().join("resnet20_input.npy"));
    let reference = read_npy(&common::models_dir().join("resnet20_output.npy"));
    let x2 = batch2(&x1);

    // The single-thread answers.
    let mut single = model.session_with_threads(1).unwrap();
    let want1 = single.run(&[&x1]).unwrap().remove(0);
    let want2 = single.run(&[&x2]).unwrap().remove(0);
    assert_close("resnet20 (from .resin)", &want1, &reference);
    assert_eq!(want2.shape, vec![2, 10]);
    assert_close(
        "resnet20 batch 2, row 0",
        &Tensor { shape: vec![1, 10], data: want2.data[..10].to_vec() },
        &reference,
    );
    assert_ne!(want2.data[..10], want2.data[10..], "the two samples of batch 2 should differ");

    let handles: Vec<_> = (0..4)
        .map(|t| {
            let model = Arc::clone(&model);
            let (x1, x2) = (x1.clone(), x2.clone());
            let (w1, w2) = (bits(&want1), bits(&want2));
            std::thread::spawn(move || {
                let mut session = model.session_with_threads(1).unwrap();
                for i in 0..50 {
                    // Alternate batch sizes, so that every run re-plans the session's buffers.
                    let y1 = session.run(&[&x1]).unwrap().remove(0);
                    assert_eq!(bits(&y1), w1, "thread {t}, run {i}, batch 1");
                    let y2 = session.run(&[&x2]).unwrap().remove(0);
                    assert_eq!(bits(&y2), w2, "thread {t}, run {i}, batch 2");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a worker thread failed");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn clones_share_the_plan_across_threads() {
    let (dir, path) = compiled_resnet20("clones");
    let model = Model::load(&path).unwrap();
    let x = read_npy(&common::models_dir().join("resnet20_input.npy"));
    let want = bits(&model.session_with_threads(2).unwrap().run(&[&x]).unwrap()[0]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let model = model.clone();
            let (x, want) = (&x, &want);
            s.spawn(move || {
                let mut session = model.session_with_threads(2).unwrap();
                for _ in 0..5 {
                    assert_eq!(&bits(&session.run(&[x]).unwrap()[0]), want);
                }
            });
        }
    });
    drop(model);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_arrays_agrees_with_run() {
    let (dir, path) = compiled_resnet20("arrays");
    let model = Model::load(&path).unwrap();
    let x1 = read_npy(&common::models_dir().join("resnet20_input.npy"));
    let x2 = batch2(&x1);
    let mut session = model.session_with_threads(1).unwrap();
    for x in [&x1, &x2] {
        let want = session.run(&[x]).unwrap();
        let got = session.run_arrays(&[x.view()]).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.shape(), w.shape.as_slice());
            assert_eq!(g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits(w));
            assert_eq!(Tensor::from_view(&g.view()), *w);
        }
    }

    // A non-contiguous view (the batch-2 array reversed along the batch axis) is read in logical order.
    let a2 = x2.clone().into_array();
    let reversed = a2.slice_axis(ndarray::Axis(0), ndarray::Slice::new(0, None, -1));
    assert!(!reversed.is_standard_layout());
    let got = session.run_arrays(&[reversed]).unwrap().remove(0);
    let half = x1.data.len();
    let swapped = Tensor { shape: x2.shape.clone(), data: [&x2.data[half..], &x2.data[..half]].concat() };
    let want = session.run(&[&swapped]).unwrap().remove(0);
    assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits(&want));

    // Errors come back as errors.
    let wrong = ndarray::ArrayD::<f32>::zeros(vec![1, 3, 16, 16]);
    let e = session.run_arrays(&[wrong.view()]).unwrap_err();
    assert!(e.to_string().contains("expected shape [N,3,32,32]"), "{e}");
    assert!(matches!(session.run_arrays(&[]), Err(resin_runtime::Error::InputCount { expected: 1, got: 0 })));
    let _ = std::fs::remove_dir_all(dir);
}
