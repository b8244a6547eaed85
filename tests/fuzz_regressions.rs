//! Every input the fuzzers found a crash with (fuzz/regressions/<target>/) is replayed here the way the
//! fuzz target runs it, so a fixed crash stays fixed. A `.resin` input is loaded as it is and with its
//! CRC-32 re-sealed (and once more as the current format version, so old inputs keep reaching the decoder);
//! an ONNX input is imported and compiled; whatever loads is run once at batch 1.

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
    run_once(&model);
}

/// Runs `model` once at batch 1 on zeros, unless its buffers are large (as the fuzz targets do).
fn run_once(model: &Model) {
    let total: usize =
        model.plan().buffers.iter().map(|b| b.shape.iter().map(|d| d.resolve(1)).product::<usize>()).sum();
    if total > 1 << 22 {
        return;
    }
    let inputs: Vec<Tensor> = (0..model.num_inputs())
        .filter_map(|i| model.input_shape(i, 1))
        .map(|shape| Tensor { data: vec![0.0; shape.iter().product()], shape })
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let _ = model.session_with_threads(1).unwrap().run(&refs);
}

/// Replays every file in fuzz/regressions/`target`; returns how many there were.
fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        println!("{target}: {}", path.display());
        run(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
    n
}

#[test]
fn resin_file_crashes_stay_fixed() {
    let n = replay("resin_file", |data| {
        load_and_run(data);
        if data.len() >= 48 {
            let mut sealed = data.to_vec();
            let crc = crc32(&[&sealed[..40], &sealed[44..]]);
            sealed[40..44].copy_from_slice(&crc.to_le_bytes());
            load_and_run(&sealed);
            // An input saved under an older format version still reaches the decoder and the checker.
            sealed[8..12].copy_from_slice(&resin_runtime::format::VERSION.to_le_bytes());
            let crc = crc32(&[&sealed[..40], &sealed[44..]]);
            sealed[40..44].copy_from_slice(&crc.to_le_bytes());
            load_and_run(&sealed);
        }
    });
    println!("{n} .resin regression inputs replayed without a panic");
}

/// Each ONNX crash so far was an arithmetic overflow on absurd sizes (which panics only where overflow is
/// checked, as in the fuzz build): the fixed importer or compiler refuses each of these inputs with an error,
/// which is asserted here so that the test also means something in a release build.
#[test]
fn onnx_import_crashes_stay_fixed() {
    let n = replay("onnx_import", |data| {
        let refused = match resin::onnx::import_bytes(data, &Default::default()) {
            Err(e) => format!("{e:#}"),
            Ok(g) => match resin::compile::compile(g, &[]) {
                Err(e) => format!("{e:#}"),
                Ok(compiled) => {
                    let model = Model::new(compiled.plan).expect("a compiled plan passes the check");
                    run_once(&model);
                    panic!("compiled and ran: the fix should refuse this input");
                }
            },
        };
        println!("  refused: {refused}");
    });
    println!("{n} ONNX regression inputs refused without a panic");
}
