//! Fuzz target: arbitrary bytes as an ONNX model. Import, passes, lowering and the plan check must return
//! an error or a model that runs; never a panic, a hang or an absurd allocation. Whatever compiles is run
//! once at batch 1 on zeros.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resin_runtime::{Model, Tensor};

fuzz_target!(|data: &[u8]| {
    let Ok(g) = resin::onnx::import_bytes(data, &Default::default()) else { return };
    let Ok(compiled) = resin::compile::compile(g, &[]) else { return };
    let total: usize =
        compiled.plan.buffers.iter().map(|b| b.shape.iter().map(|d| d.resolve(1)).product::<usize>()).sum();
    if total > 1 << 22 {
        return; // legal but large: not what this target is for
    }
    let Ok(model) = Model::new(compiled.plan) else { return };
    let inputs: Vec<Tensor> = (0..model.num_inputs())
        .filter_map(|i| model.input_shape(i, 1))
        .map(|shape| Tensor { data: vec![0.0; shape.iter().product()], shape })
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let _ = model.session_with_threads(1).unwrap().run(&refs);
});
