//! What the compiler makes of real models, asserted from the plan: a ResNet has no BatchNorm, Add or
//! standalone activation step (they are folded into weights or fused into the convolution's epilogue), its
//! residual sums need no extra buffer, and its peak activation memory is far below one buffer per tensor.

mod common;

use resin::compile::{compile, step_histogram};
use resin::onnx::{self, ImportOptions};
use resin_runtime::plan::StepOp;
use std::path::Path;

fn compiled(path: &Path) -> resin::compile::Compiled {
    compile(onnx::load(path, &ImportOptions::default()).unwrap(), &[]).unwrap()
}

fn assert_resnet_plan(name: &str, c: &resin::compile::Compiled, residual_adds: usize, min_saving: usize) {
    let steps = &c.plan.steps;
    let count = |f: &dyn Fn(&StepOp) -> bool| steps.iter().filter(|s| f(&s.op)).count();
    assert_eq!(count(&|o| matches!(o, StepOp::ChannelAffine { .. })), 0, "{name}: BatchNorm steps");
    assert_eq!(count(&|o| matches!(o, StepOp::Binary(_) | StepOp::Sum)), 0, "{name}: Add steps");
    assert_eq!(count(&|o| matches!(o, StepOp::Unary(_))), 0, "{name}: standalone activation steps");
    let fused = count(&|o| matches!(o, StepOp::Conv(cv) if cv.residual && cv.act.is_some()));
    assert_eq!(fused, residual_adds, "{name}: conv+add+relu steps: {:?}", step_histogram(&c.plan));
    // Every residual add happens in the skip's own buffer: the output shares the skip's slot.
    for s in steps {
        if let StepOp::Conv(cv) = &s.op {
            if cv.residual {
                let skip = s.inputs[1];
                assert_eq!(c.plan.buffers[skip].slot(), c.plan.buffers[s.output].slot(), "{name}: step '{}'", s.name);
            }
        }
    }
    println!(
        "{name}: peak activation memory {:.2} MiB (naive {:.2} MiB) + conv scratch {:.2} MiB, {} slots, steps: {:?}",
        c.memory.peak_bytes as f64 / 1048576.0,
        c.memory.naive_bytes as f64 / 1048576.0,
        c.memory.scratch_bytes as f64 / 1048576.0,
        c.memory.slots,
        step_histogram(&c.plan)
    );
    assert!(
        c.memory.peak_bytes * min_saving < c.memory.naive_bytes,
        "{name}: memory plan saves less than {min_saving}x"
    );
}

#[test]
fn resnet18_w8_plan_is_fused() {
    let c = compiled(&common::models_dir().join("resnet18_w8.onnx"));
    assert_resnet_plan("resnet18_w8", &c, 8, 2);
}

#[test]
fn resnet50_plan_is_fused_and_fits_16_mib() {
    let Some(dir) = std::env::var_os("RESIN_MODELS") else {
        println!("SKIPPED: RESIN_MODELS is not set");
        return;
    };
    let c = compiled(&Path::new(&dir).join("resnet50.onnx"));
    assert_resnet_plan("resnet50", &c, 16, 6);
    let total = c.memory.peak_bytes + c.memory.scratch_bytes;
    assert!(total <= 16 << 20, "resnet50: activations + scratch {total} bytes > 16 MiB");
}

/// A DenseNet's concatenations are windows of block arenas: no Concat step copies anything.
fn assert_no_concat_copy(name: &str, c: &resin::compile::Compiled, blocks: usize) {
    let concats = c.plan.steps.iter().filter(|s| matches!(s.op, StepOp::Concat { .. })).count();
    assert_eq!(concats, 0, "{name}: Concat steps remain: {:?}", step_histogram(&c.plan));
    let bases: std::collections::BTreeSet<usize> =
        c.plan.buffers.iter().filter_map(|b| b.view().map(|v| v.0)).collect();
    assert_eq!(bases.len(), blocks, "{name}: one feature arena per dense block");
    println!("{name}: {} arenas, steps: {:?}", bases.len(), step_histogram(&c.plan));
}

#[test]
fn densenet_small_has_no_concat_copy() {
    let c = compiled(&common::models_dir().join("densenet_small.onnx"));
    assert_no_concat_copy("densenet_small", &c, 3);
}

#[test]
fn densenet121_has_no_concat_copy() {
    let Some(dir) = std::env::var_os("RESIN_MODELS") else {
        println!("SKIPPED: RESIN_MODELS is not set");
        return;
    };
    let c = compiled(&Path::new(&dir).join("densenet121.onnx"));
    assert_no_concat_copy("densenet121", &c, 4);
    // Every BN-ReLU before a convolution is the convolution's prologue: only the final norm5+relu remain.
    let affine = c.plan.steps.iter().filter(|s| matches!(s.op, StepOp::ChannelAffine { .. })).count();
    let unary = c.plan.steps.iter().filter(|s| matches!(s.op, StepOp::Unary(_))).count();
    assert_eq!((affine, unary), (1, 1), "densenet121: {:?}", step_histogram(&c.plan));
}

/// A dense MLP layer — main path plus a matrix per earlier layer — is one GEMM (with its activation).
#[test]
fn dense_mlp_layer_is_one_gemm() {
    for (name, layers) in [("mlp_dense", 6), ("mlp_highway", 6)] {
        let c = compiled(&common::models_dir().join(format!("{name}.onnx")));
        let hist = step_histogram(&c.plan);
        let gemms = c.plan.steps.iter().filter(|s| matches!(s.op, StepOp::Gemm(_))).count();
        let others = c.plan.steps.iter().filter(|s| !matches!(s.op, StepOp::Gemm(_) | StepOp::Copy)).count();
        // `layers` hidden layers, the first layer and the head: one GEMM each; the only other step copies
        // the model input into the feature arena once.
        assert_eq!(gemms, layers + 1, "{name}: {hist:?}");
        assert_eq!(others, 0, "{name}: {hist:?}");
        assert!(c.plan.steps.iter().filter(|s| matches!(s.op, StepOp::Copy)).count() <= 1, "{name}: {hist:?}");
    }
}

/// A model that declares absurd shapes is refused when it is lowered, and a plan that declares them (made
/// by hand, or read from a file) when it is checked: before any buffer is allocated.
#[test]
fn absurd_shapes_are_refused_before_allocation() {
    use resin_ir::{Dim, Graph, Op, Output, TensorType};
    use resin_runtime::plan;
    let relu = |dims: Vec<Dim>| {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::f32(dims));
        let y = g.add_node("relu", Op::Relu, TensorType::f32(vec![]));
        g.connect(x, y, 0);
        g.outputs.push(Output { name: "y".into(), node: y });
        g.infer_shapes().unwrap();
        g
    };
    let batch = || Dim::Sym("batch".into());
    let err = resin::lower::lower(&relu(vec![batch(), Dim::Fixed(65536), Dim::Fixed(65536)])).unwrap_err();
    assert_eq!(err.to_string(), "node 'x': shape [batch,65536,65536] has more than 1073741824 elements per sample");
    // The same shapes in a plan made otherwise (by hand, or read from a file) are refused by the checker.
    let mut p = resin::lower::lower(&relu(vec![batch(), Dim::Fixed(4), Dim::Fixed(4)])).unwrap();
    for b in &mut p.buffers {
        b.shape = vec![plan::Dim::Batch, plan::Dim::Fixed(65536), plan::Dim::Fixed(65536)];
    }
    let err = resin_runtime::Model::new(p).unwrap_err().to_string();
    assert!(err.contains("has shape [N,65536,65536]: more than 1073741824 elements per sample"), "{err}");
}
