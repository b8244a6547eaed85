//! One small ONNX model per op and attribute variant (tests/models/ops, made by `make_op_models.py` with
//! onnx.helper, references from ONNX Runtime). Every op the importer accepts must be exercised here.

mod common;

use resin::onnx::SUPPORTED_OPS;
use std::collections::BTreeSet;

/// Cases resin refuses on purpose, with the error it must give. The runtime knows one symbolic dimension,
/// the batch; a Flatten that folds the batch into a larger axis (`[batch·3, 20]`) is refused clearly.
const REFUSED: &[(&str, &str)] = &[
    ("flatten_axis0", "cannot flatten [batch,3,4,5] with more than one symbolic dim"),
    ("flatten_axis2", "cannot flatten [batch,3] with more than one symbolic dim"),
    ("flatten_axis_rank", "cannot flatten [batch,3,4] with more than one symbolic dim"),
    ("flatten_negative_axis", "cannot flatten [batch,3,4] with more than one symbolic dim"),
];

#[test]
fn every_op_case_matches_onnx_runtime() {
    let dir = common::models_dir().join("ops");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases.as_object().unwrap();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for (name, spec) in cases {
        let loaded = resin::cli::load_model(&dir.join(format!("{name}.onnx")));
        if let Some((_, why)) = REFUSED.iter().find(|r| r.0 == name) {
            match loaded {
                Err(e) if format!("{e:#}").contains(why) => {}
                Err(e) => failures.push(format!("{name}: refused with the wrong error: {e:#}")),
                Ok(_) => failures.push(format!("{name}: now accepted; remove it from REFUSED")),
            }
            continue;
        }
        let model = match loaded {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        let n_in = spec["inputs"].as_u64().unwrap() as usize;
        let n_out = spec["outputs"].as_u64().unwrap() as usize;
        let inputs: Vec<_> = (0..n_in).map(|k| common::read_npy(&dir.join(format!("{name}_input_{k}.npy")))).collect();
        let refs: Vec<_> = inputs.iter().collect();
        let out = match model.session_with_threads(2).unwrap().run(&refs) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        assert_eq!(out.len(), n_out, "{name}: output count");
        for (k, o) in out.iter().enumerate() {
            let reference = common::read_npy(&dir.join(format!("{name}_output_{k}.npy")));
            let ok = o.shape == reference.shape
                && o.data.iter().zip(&reference.data).all(|(&a, &r)| (a - r).abs() <= 1e-4 + 1e-3 * r.abs());
            if !ok {
                let max = o.data.iter().zip(&reference.data).map(|(a, r)| (a - r).abs()).fold(0.0f32, f32::max);
                failures
                    .push(format!("{name} output {k}: shape {:?} vs {:?}, max diff {max}", o.shape, reference.shape));
            }
        }
    }
    assert!(failures.is_empty(), "op cases that differ from ONNX Runtime:\n{}", failures.join("\n"));
}

#[test]
fn every_supported_op_has_a_case() {
    let dir = common::models_dir().join("ops");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let covered: BTreeSet<&str> = cases
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| c["ops"].as_array().unwrap())
        .filter_map(|o| o.as_str())
        .collect();
    let missing: Vec<&&str> = SUPPORTED_OPS.iter().filter(|op| !covered.contains(**op)).collect();
    assert!(missing.is_empty(), "ops the importer accepts with no test case: {missing:?}");
}
