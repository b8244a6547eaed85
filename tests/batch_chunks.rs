//! Batches run in chunks of samples (`Session::samples_per_chunk`): forced on here with
//! `RESIN_BATCH=chunks` (this test binary is its own process, and every test sets it before any session
//! reads it), so that the small committed models, whose activations would otherwise run as whole
//! batches, take the chunked path. Each sample of a batch must come out bit for bit as its batch-1
//! answer, on 1 and 2 threads, for batches the thread count divides (chunks of one sample per thread)
//! and does not (chunks of one); and a plan that mixes samples keeps whole batches.

mod common;

use common::{compile, models_dir, read_npy};
use resin_runtime::plan::StepOp;
use resin_runtime::Tensor;

fn force_chunks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("RESIN_BATCH", "chunks"));
}

/// `n` different samples: the input scaled by 1, 1.1, 1.2, ...
fn samples(input: &Tensor, n: usize) -> Vec<Tensor> {
    (0..n)
        .map(|i| Tensor {
            shape: input.shape.clone(),
            data: input.data.iter().map(|v| v * (1.0 + 0.1 * i as f32)).collect(),
        })
        .collect()
}

#[test]
fn chunked_batches_give_each_sample_its_batch_1_bits() {
    force_chunks();
    let dir = models_dir();
    for name in ["resnet20", "densenet_small", "resnext_small", "mlp_dense", "mlp_highway", "sum_gemm_variants"] {
        let model = compile(&dir.join(format!("{name}.onnx")));
        let input = read_npy(&dir.join(format!("{name}_input.npy")));
        for threads in [1, 2] {
            let mut session = model.session_with_threads(threads).unwrap();
            for batch in [4, 3] {
                let expect = if batch % threads == 0 { threads } else { 1 };
                assert_eq!(session.samples_per_chunk(batch), expect, "{name}: chunk of a batch of {batch}");
                let xs = samples(&input, batch);
                let mut shape = input.shape.clone();
                shape[0] *= batch;
                let batched = Tensor { shape, data: xs.iter().flat_map(|t| t.data.iter().copied()).collect() };
                // Twice: the second run reuses the outputs' vectors.
                let mut out = vec![Tensor::default(); model.num_outputs()];
                for _ in 0..2 {
                    session.run_into(&[&batched], &mut out).unwrap();
                }
                let row = out[0].data.len() / batch;
                assert_eq!(out[0].shape[0], batch, "{name}: batch of the output");
                for (i, x) in xs.iter().enumerate() {
                    let one = session.run(&[x]).unwrap();
                    let same = one[0]
                        .data
                        .iter()
                        .zip(&out[0].data[i * row..(i + 1) * row])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{name}: sample {i} of a batch of {batch} on {threads} threads differs from its batch-1 answer"
                    );
                }
            }
        }
    }
}

#[test]
fn plans_that_mix_samples_keep_whole_batches() {
    force_chunks();
    // A softmax over the last axis is per sample; the same plan with the softmax over axis 0 (the batch)
    // mixes samples, and so does a concatenation along it.
    let path = models_dir().join("ops/softmax_opset13_default_axis.onnx");
    let plan = resin::compile::compile(resin::onnx::load(&path, &Default::default()).unwrap(), &[]).unwrap().plan;
    let chunk = |plan: &resin_runtime::plan::Plan| {
        let model = resin_runtime::Model::new(plan.clone()).unwrap();
        model.session_with_threads(2).unwrap().samples_per_chunk(4)
    };
    assert_eq!(chunk(&plan), 2, "a per-sample softmax");
    for op in [StepOp::Softmax { axis: 0 }, StepOp::Concat { axis: 0 }] {
        let mut mixed = plan.clone();
        let step = mixed.steps.iter_mut().find(|s| matches!(s.op, StepOp::Softmax { .. })).expect("a softmax step");
        step.op = op.clone();
        assert_eq!(chunk(&mixed), 4, "{op:?}");
    }
}
