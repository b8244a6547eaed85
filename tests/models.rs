//! End to end on the committed models (tests/models, exported by PyTorch with `make_models.py`, reference
//! outputs from ONNX Runtime): import → lower → run → compare; and the structure `resin info` reports
//! (skips by kind, op histogram, parameters) against `expected.json`.

mod common;

use common::{check_model, models_dir};
use resin::onnx::{self, ImportOptions};

const MODELS: &[&str] = &[
    "resnet20",
    "resnet18_w8",
    "plain18_w8",
    "densenet_small",
    "resnext_small",
    "mlp_res",
    "mlp_highway",
    "mlp_dense",
    "mlp_gated",
    "ops_misc",
    "ops_opset11",
    "sum_gemm_variants",
];

#[test]
fn every_committed_model_matches_onnx_runtime() {
    let dir = models_dir();
    for name in MODELS {
        let max = check_model(&dir, name);
        println!("{name}: max abs diff {max:.2e}");
    }
    // Every model in the folder is in the list (a new export cannot be forgotten).
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".onnx").map(String::from))
        .collect();
    found.sort();
    let mut listed: Vec<String> = MODELS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// Ops an exporter emits that the importer folds away (so they do not appear in the IR).
const FOLDED: &[&str] = &["Constant", "Shape", "Gather", "Cast", "ConstantOfShape", "Slice", "Transpose", "Unsqueeze"];

#[test]
fn structure_matches_the_exporter() {
    let dir = models_dir();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for name in MODELS {
        let e = &expected[name];
        let mut g = onnx::load(&dir.join(format!("{name}.onnx")), &ImportOptions::default()).unwrap();
        let s = g.recognize_skips();
        let k = &e["skips"];
        let n = |key: &str| k[key].as_u64().unwrap() as usize;
        assert_eq!(
            (s.identity, s.weighted, s.gated, s.dense),
            (n("identity"), n("weighted"), n("gated"), n("dense")),
            "{name}: skips {s}"
        );
        if !k["dense_blocks"].as_array().unwrap().is_empty() {
            let blocks: Vec<usize> =
                k["dense_blocks"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            assert_eq!(s.dense_blocks, blocks, "{name}: dense blocks");
        }
        assert_eq!(g.param_count() as u64, e["params"].as_u64().unwrap(), "{name}: parameters");
        let hist = e["op_histogram"].as_object().unwrap();
        if hist.keys().all(|op| !FOLDED.contains(&op.as_str()) && op != "Reshape") {
            let ours: Vec<(String, u64)> = g.op_histogram().iter().map(|(o, c)| (o.to_string(), *c as u64)).collect();
            let mut want: Vec<(String, u64)> = hist.iter().map(|(o, c)| (o.clone(), c.as_u64().unwrap())).collect();
            want.sort();
            assert_eq!(ours, want, "{name}: op histogram");
        }
    }
}

#[test]
fn plain_network_has_no_skip_edges_and_resnet_has_typed_ones() {
    use resin_ir::{EdgeKind, SkipKind};
    let dir = models_dir();
    let plain = onnx::load(&dir.join("plain18_w8.onnx"), &ImportOptions::default()).unwrap();
    assert!(plain.g.edge_weights().all(|e| e.kind == EdgeKind::Data));
    let res = onnx::load(&dir.join("resnet18_w8.onnx"), &ImportOptions::default()).unwrap();
    let counts = res.skip_counts();
    assert_eq!(counts[0], (SkipKind::Identity, 5));
    assert_eq!(counts[1], (SkipKind::Weighted, 3));
    // Every skip edge ends at an Add: the residual sum.
    for e in res.g.edge_indices() {
        if let EdgeKind::Skip(_) = res.g[e].kind {
            let (_, dst) = res.g.edge_endpoints(e).unwrap();
            assert_eq!(res.node(dst).op.name(), "Add");
        }
    }
}
