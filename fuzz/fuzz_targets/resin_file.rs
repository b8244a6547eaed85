//! Fuzz target: arbitrary bytes as a `.resin` artifact. Loading must return an error or a model that runs;
//! it must never panic, hang or allocate absurdly. Whatever loads is run once at batch 1 on zeros.
//!
//! Each input is tried twice: as it is, and with its CRC-32 re-sealed (bytes 40..44, over the rest of the
//! file), so that mutations get past the checksum into the header decoder, the plan checker and the
//! kernels. (Every single-byte change is caught by the checksum; `format` tests sweep that.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use resin_runtime::{Model, Tensor};

fuzz_target!(|data: &[u8]| {
    load_and_run(data);
    if data.len() >= 48 {
        let mut sealed = data.to_vec();
        let mut h = crc32fast::Hasher::new();
        h.update(&sealed[..40]);
        h.update(&sealed[44..]);
        sealed[40..44].copy_from_slice(&h.finalize().to_le_bytes());
        load_and_run(&sealed);
    }
});

fn load_and_run(data: &[u8]) {
    let Ok(model) = Model::from_bytes(data) else { return };
    let inputs: Vec<Tensor> = (0..model.num_inputs())
        .filter_map(|i| model.input_shape(i, 1))
        .map(|shape| Tensor { data: vec![0.0; shape.iter().product()], shape })
        .collect();
    // Keep runs small: a model whose activations are huge is legal but not what we fuzz here.
    let total: usize = model.plan().buffers.iter().map(|b| b.shape.iter().map(|d| d.resolve(1)).product::<usize>()).sum();
    if total > 1 << 22 {
        return;
    }
    if let Ok(mut s) = model.session_with_threads(1) {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let _ = s.run(&refs);
    }
}
