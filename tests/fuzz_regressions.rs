//! Every input the fuzzers found a crash with (fuzz/regressions/<target>/) is replayed here the way the
//! fuzz target runs it, so a fixed crash stays fixed. A `.resin` input is loaded as it is and with its
//! CRC-32 re-sealed; whatever loads is run once at batch 1.

use resin_runtime::{Model, Tensor};
use std::path::Path;

fn crc32(bytes: &[&[u8]]) -> u32 {
    // The IEEE polynomial, bit by bit (small inputs; no dependency needed).
    let mut c = !0u32;
    for b in bytes.iter().flat_map(|s| s.iter()) {
        c ^= *b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

fn load_and_run(data: &[u8]) {
    let Ok(model) = Model::from_bytes(data) else { return };
    let inputs: Vec<Tensor> = (0..model.num_inputs())
        .filter_map(|i| model.input_shape(i, 1))
        .map(|shape| Tensor { data: vec![0.0; shape.iter().product()], shape })
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let _ = model.session_with_threads(1).unwrap().run(&refs);
}

#[test]
fn resin_file_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/resin_file");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        load_and_run(&data);
        if data.len() >= 48 {
            let mut sealed = data.clone();
            let crc = crc32(&[&sealed[..40], &sealed[44..]]);
            sealed[40..44].copy_from_slice(&crc.to_le_bytes());
            load_and_run(&sealed);
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
    println!("{n} fuzz regression inputs replayed without a panic");
}
