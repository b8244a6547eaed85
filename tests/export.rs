//! ONNX export (`resin::onnx::export`): import → export → import gives the same IR (structure, types and
//! bit-identical weights) and the same outputs; what passes made of a model exports as a model that
//! `onnx.checker` accepts and ONNX Runtime runs to the committed reference (`tests/export_check.py`); every
//! IR op and fused form exports; `save` writes atomically and names a missing directory.
//!
//! The ONNX Runtime tests need `python3` with `onnx` and `onnxruntime`; without them they print
//! "SKIPPED: python onnx/onnxruntime not installed" and pass.

mod common;

use common::{models_dir, read_npy};
use prost::Message;
use resin::onnx::{self as ronnx, export::export, ImportOptions};
use resin_ir::op::{Activation, Conv, Gemm, PadMode, Pool, PoolKind, PreAffine};
use resin_ir::{Dim, EdgeKind, Graph, NodeId, Op, Tensor, TensorData, TensorType};
use resin_runtime::Model;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every `*.onnx` directly in tests/models (not ops/), sorted.
fn committed_models() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(models_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".onnx").map(String::from))
        .collect();
    v.sort();
    assert!(v.len() >= 12, "expected the committed models in {}", models_dir().display());
    v
}

fn load(path: &Path) -> Graph {
    ronnx::load(path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn passes(mut g: Graph) -> Graph {
    resin::passes::run_pipeline(&mut g, &[]).unwrap();
    g
}

fn reimport(m: &tract_onnx::pb::ModelProto) -> Graph {
    ronnx::import_bytes(&m.encode_to_vec(), &ImportOptions::default()).unwrap_or_else(|e| panic!("re-import: {e:#}"))
}

/// Runs `g` (lowered as it is) on one thread.
fn run(g: &Graph, x: &resin_runtime::Tensor) -> resin_runtime::Tensor {
    let model = Model::new(resin::lower::lower(g).unwrap()).unwrap();
    model.session_with_threads(1).unwrap().run(&[x]).unwrap().remove(0)
}

fn bits(t: &Tensor) -> Vec<u64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

fn by_name(what: &str, g: &Graph) -> BTreeMap<String, NodeId> {
    let mut m = BTreeMap::new();
    for id in g.g.node_indices() {
        assert!(m.insert(g.node(id).name.clone(), id).is_none(), "{what}: two nodes named '{}'", g.node(id).name);
    }
    m
}

/// Same nodes by name with the same op (attributes and bit-identical weights), type and incoming edges
/// (port, source name, kind); same inputs and outputs.
fn assert_same_graph(what: &str, a: &Graph, b: &Graph) {
    assert_eq!(a.len(), b.len(), "{what}: node count");
    assert_eq!(a.op_histogram(), b.op_histogram(), "{what}: op histogram");
    let (ma, mb) = (by_name(what, a), by_name(what, b));
    assert_eq!(ma.keys().collect::<Vec<_>>(), mb.keys().collect::<Vec<_>>(), "{what}: node names");
    for (name, &ia) in &ma {
        let (na, nb) = (a.node(ia), b.node(mb[name]));
        assert_eq!(na.ty, nb.ty, "{what}: type of '{name}'");
        assert_eq!(na.op.name(), nb.op.name(), "{what}: op of '{name}'");
        let (wa, wb) = (na.op.weights(), nb.op.weights());
        assert_eq!(wa.len(), wb.len(), "{what}: weights of '{name}'");
        for (x, y) in wa.iter().zip(&wb) {
            assert_eq!(x.shape, y.shape, "{what}: weight shape of '{name}'");
            assert!(bits(x) == bits(y), "{what}: weights of '{name}' differ in their bits");
        }
        assert_eq!(na.op, nb.op, "{what}: attributes of '{name}'");
        let edges = |g: &Graph, id| -> Vec<(usize, String, EdgeKind)> {
            g.in_edges(id).into_iter().map(|(p, s, k)| (p, g.node(s).name.clone(), k)).collect()
        };
        assert_eq!(edges(a, ia), edges(b, mb[name]), "{what}: edges into '{name}'");
    }
    let ins = |g: &Graph| -> Vec<(String, TensorType)> {
        g.inputs.iter().map(|&i| (g.node(i).name.clone(), g.node(i).ty.clone())).collect()
    };
    assert_eq!(ins(a), ins(b), "{what}: graph inputs");
    let outs = |g: &Graph| -> Vec<(String, String)> {
        g.outputs.iter().map(|o| (o.name.clone(), g.node(o.node).name.clone())).collect()
    };
    assert_eq!(outs(a), outs(b), "{what}: graph outputs");
}

/// One ONNX node per IR node (named after it), unique tensor names, opset 17 / IR 8 / producer resin.
fn assert_one_to_one(what: &str, g: &Graph, m: &tract_onnx::pb::ModelProto) {
    assert_eq!((m.ir_version, m.producer_name.as_str()), (8, "resin"), "{what}");
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!((m.opset_import[0].domain.as_str(), m.opset_import[0].version), ("", 17), "{what}");
    let graph = m.graph.as_ref().unwrap();
    let ir: HashSet<&str> =
        g.g.node_weights().filter(|n| !matches!(n.op, Op::Input | Op::Const(_))).map(|n| n.name.as_str()).collect();
    let onnx: HashSet<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(graph.node.len(), ir.len(), "{what}: ONNX nodes");
    assert_eq!(onnx, ir, "{what}: ONNX node names");
    let consts = g.g.node_weights().filter(|n| matches!(n.op, Op::Const(_))).count();
    let weights: usize =
        g.g.node_weights().filter(|n| !matches!(n.op, Op::Const(_))).map(|n| n.op.weights().len()).sum();
    assert!(graph.initializer.len() >= consts + weights, "{what}: initializers");
    let mut seen = HashSet::new();
    let defined = graph.input.iter().map(|v| &v.name).chain(graph.initializer.iter().map(|t| &t.name));
    for t in defined.chain(graph.node.iter().flat_map(|n| &n.output)) {
        assert!(seen.insert(t.clone()), "{what}: tensor '{t}' is defined twice");
    }
    for t in &graph.initializer {
        assert!(!t.raw_data.is_empty() && t.float_data.is_empty(), "{what}: initializer '{}' not in raw_data", t.name);
    }
}

#[test]
fn round_trip_gives_the_same_ir_and_outputs() {
    let dir = models_dir();
    for name in committed_models() {
        let g1 = load(&dir.join(format!("{name}.onnx")));
        let m = export(&g1, 17).unwrap();
        assert_one_to_one(&name, &g1, &m);
        let g2 = reimport(&m);
        assert_same_graph(&name, &g1, &g2);
        let x = read_npy(&dir.join(format!("{name}_input.npy")));
        let (y1, y2) = (run(&passes(g1.clone()), &x), run(&passes(g2), &x));
        assert_eq!(y1.shape, y2.shape, "{name}");
        let max = y1.data.iter().zip(&y2.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(
            y1.data.iter().zip(&y2.data).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: outputs differ ({max:e})"
        );
        let refd = common::assert_close(&name, &y2, &read_npy(&dir.join(format!("{name}_output.npy"))));
        println!(
            "{name}: {} nodes, {} ONNX nodes, {} initializers: same IR, identical outputs (vs ORT reference {refd:.1e})",
            g1.len(),
            m.graph.as_ref().unwrap().node.len(),
            m.graph.as_ref().unwrap().initializer.len()
        );
    }
}

/// After passes, the fused layers come back as layer + Add + activation; importing that and running the
/// passes again gives the same graph (BatchNorm already folded, the same fusions) and the same outputs.
#[test]
fn round_trip_after_passes_is_a_fixed_point() {
    let dir = models_dir();
    for name in committed_models() {
        let g1 = passes(load(&dir.join(format!("{name}.onnx"))));
        let m = export(&g1, 17).unwrap();
        let graph = m.graph.as_ref().unwrap();
        // BatchNorm after a Conv/Gemm is folded; DenseNet's pre-activation BNs become conv prologues, which
        // export writes as BatchNormalization again; a BN with no conv after it (DenseNet's last) stays.
        let bn = graph.node.iter().filter(|n| n.op_type == "BatchNormalization").count();
        let ir_bn =
            g1.g.node_weights()
                .filter(|n| match &n.op {
                    Op::BatchNorm(_) => true,
                    Op::Conv(c) => c.pre.is_some(),
                    Op::Pool(p) => p.pre.is_some(),
                    _ => false,
                })
                .count();
        assert_eq!(bn, ir_bn, "{name}: BatchNormalization nodes");
        if !name.starts_with("densenet") {
            assert_eq!(bn, 0, "{name}: BatchNorm left after folding");
        }
        // Each epilogue is its own node again, named after the layer.
        let names: HashSet<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        let (mut adds, mut acts, mut prologue) = (0, 0, 0);
        for id in g1.g.node_indices() {
            let n = g1.node(id);
            let act = match &n.op {
                Op::Conv(c) => {
                    if let Some(pre) = &c.pre {
                        prologue += 1 + pre.act.is_some() as usize;
                    }
                    c.act
                }
                Op::Pool(p) => {
                    if let Some(pre) = &p.pre {
                        prologue += 1 + pre.act.is_some() as usize;
                    }
                    continue;
                }
                Op::Gemm(gm) => gm.act,
                _ => continue,
            };
            if g1.inputs_of(id).len() == 2 {
                assert!(names.contains(format!("{}/add", n.name).as_str()), "{name}: no '{}/add'", n.name);
                adds += 1;
            }
            if let Some(a) = act {
                let want = format!("{}/{}", n.name, a.name().to_lowercase());
                assert!(names.contains(want.as_str()), "{name}: no '{want}'");
                acts += 1;
            }
        }
        let non_value = g1.g.node_weights().filter(|n| !matches!(n.op, Op::Input | Op::Const(_))).count();
        assert_eq!(graph.node.len(), non_value + adds + acts + prologue, "{name}: ONNX nodes");
        let g2 = passes(reimport(&m));
        assert_same_graph(&format!("{name} after passes"), &g1, &g2);
        let x = read_npy(&dir.join(format!("{name}_input.npy")));
        let (y1, y2) = (run(&g1, &x), run(&g2, &x));
        assert!(y1.data.iter().zip(&y2.data).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: outputs differ");
        println!("{name}: after passes {} IR nodes → {} ONNX nodes ({adds} Add, {acts} activations re-expanded); re-import + passes gives the same graph", g1.len(), graph.node.len());
    }
}

fn python_ok() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIPPED: python onnx/onnxruntime not installed");
    }
    ok
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("resin-export-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs tests/export_check.py on `dir` against references in `refs`; prints its report, returns it.
fn ort_check(dir: &Path, refs: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_check.py");
    let out = Command::new("python3").arg(&script).arg(dir).arg("--ref").arg(refs).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "export_check.py failed ({}):\n{stdout}", out.status);
    stdout
}

#[test]
fn exports_pass_the_checker_and_match_onnx_runtime() {
    if !python_ok() {
        return;
    }
    let dir = models_dir();
    let out = temp_dir("ort");
    let mut files = 0;
    for name in committed_models() {
        let g = load(&dir.join(format!("{name}.onnx")));
        ronnx::save(&g, &out.join(format!("{name}.onnx"))).unwrap();
        ronnx::save(&passes(g.clone()), &out.join(format!("{name}.passes.onnx"))).unwrap();
        files += 2;
    }
    // The versioned forms: attribute Clip and Pad (opset 10), input Clip and Pad with old Softmax (11), Gemm
    // with a required C and initializers listed as inputs (opset 8, IR 3).
    for (name, opset) in [("ops_misc", 10), ("ops_opset11", 11), ("ops_misc", 13), ("resnet20", 8)] {
        let g = passes(load(&dir.join(format!("{name}.onnx"))));
        let m = export(&g, opset).unwrap();
        ronnx::export::write(&m, &out.join(format!("{name}.passes.opset{opset}.onnx"))).unwrap();
        files += 1;
    }
    let report = ort_check(&out, &dir);
    assert!(report.contains(&format!("{files}/{files} passed")), "{report}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn resnet50_after_passes_is_smaller_and_matches_onnx_runtime() {
    let Some(refs) = std::env::var_os("RESIN_MODELS").map(PathBuf::from) else {
        println!("SKIPPED: RESIN_MODELS is not set");
        return;
    };
    let src = refs.join("resnet50.onnx");
    if !src.exists() {
        println!("SKIPPED: {} is missing", src.display());
        return;
    }
    let g = passes(load(&src));
    assert!(g.g.node_weights().all(|n| !matches!(n.op, Op::BatchNorm(_))), "BatchNorm left after folding");
    let out = temp_dir("resnet50");
    let dst = out.join("resnet50.onnx");
    ronnx::save(&g, &dst).unwrap();
    let (before, after) = (std::fs::metadata(&src).unwrap().len(), std::fs::metadata(&dst).unwrap().len());
    println!("resnet50: {before} bytes → {after} bytes after passes ({:+} bytes)", after as i64 - before as i64);
    assert!(after < before, "the export ({after} bytes) is not smaller than the original ({before} bytes)");
    if python_ok() {
        ort_check(&out, &refs);
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// A graph with what the committed models lack: Div, edge Pad, Clip with one infinite bound, Reshapes whose
/// symbolic batch moves (written as -1), MatMul with a constant operand, a Conv with a Sigmoid epilogue, a Gemm with a residual operand and a
/// Clip epilogue, a dilated MaxPool, Sum, Flatten and Softmax. Built in the IR, its reference is resin's own
/// output.
fn every_op_graph() -> Graph {
    let mut g = Graph::new();
    let b = || Dim::Sym("batch".into());
    let any = TensorType::f32(vec![]);
    let mut seed = 7u32;
    let mut rand = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
            })
            .collect()
    };
    let x = g.add_input("input", TensorType::f32(vec![b(), 3.into(), 6.into(), 6.into()]));
    let add = |g: &mut Graph, name: &str, op: Op, ins: &[NodeId]| {
        let id = g.add_node(name, op, any.clone());
        g.node_mut(id).output = format!("{name}_out");
        for (p, &i) in ins.iter().enumerate() {
            g.connect(i, id, p);
        }
        id
    };
    let pad = add(&mut g, "pad", Op::Pad { pads: vec![0, 0, 1, 2, 0, 0, 1, 0], mode: PadMode::Edge }, &[x]);
    let conv = Conv {
        weight: Tensor::f32(vec![4, 3, 3, 3], rand(108, 1.0)),
        bias: Some(Tensor::f32(vec![4], rand(4, 1.0))),
        strides: [1, 1],
        pads: [1, 0, 0, 1],
        dilations: [1, 1],
        group: 1,
        act: Some(Activation::Sigmoid),
        pre: None,
    };
    let conv = add(&mut g, "conv", Op::Conv(conv), &[pad]);
    let k = g.add_node("divisor", Op::Const(Tensor::f32(vec![1, 4, 1, 1], vec![0.5, 2.0, 3.0, 0.25])), any.clone());
    let div = add(&mut g, "div", Op::Div, &[conv, k]);
    let clip = add(&mut g, "clip", Op::Clip { min: f32::NEG_INFINITY, max: 1.5 }, &[div]);
    let pool = Pool {
        kind: PoolKind::Max,
        kernel: [2, 2],
        strides: [2, 1],
        pads: [0, 0, 1, 0],
        dilations: [1, 2],
        ceil_mode: false,
        count_include_pad: false,
        pre: None,
    };
    let pool = add(&mut g, "pool", Op::Pool(pool), &[clip]); // [b,4,4,5]

    // An average pool with an input prologue (what `pool_first` makes): BatchNorm and Relu in front.
    let avg = Pool {
        kind: PoolKind::Avg,
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
        pre: Some(PreAffine {
            scale: vec![1.5, -0.5, 0.75, 2.0],
            shift: vec![0.1, 0.2, -0.3, 0.0],
            act: Some(Activation::Relu),
        }),
    };
    let pool = add(&mut g, "avg_pre", Op::Pool(avg), &[pool]);
    let r1 = add(&mut g, "to_1_b_80", Op::Reshape { shape: vec![1.into(), b(), 80.into()] }, &[pool]);
    let r2 = add(&mut g, "to_b_80", Op::Reshape { shape: vec![b(), 80.into()] }, &[r1]);
    let gemm = |b: Tensor, act| Gemm { b, c: None, alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false, act };
    let mut skip = gemm(Tensor::f32(vec![80, 8], rand(640, 0.5)), None);
    skip.c = Some(Tensor::f32(vec![8], rand(8, 1.0)));
    let skip = add(&mut g, "skip_proj", Op::Gemm(skip), &[r2]);
    let mut main = gemm(Tensor::f32(vec![8, 80], rand(640, 0.5)), Some(Activation::Clip { min: -0.5, max: 0.75 }));
    (main.trans_b, main.alpha, main.beta) = (true, 0.5, 2.0);
    main.c = Some(Tensor::f32(vec![1, 8], rand(8, 1.0)));
    let main = add(&mut g, "main", Op::Gemm(main), &[r2, skip]);
    let w = g.add_node("mm_weight", Op::Const(Tensor::f32(vec![80, 8], rand(640, 0.5))), any.clone());
    let mm = add(&mut g, "matmul", Op::MatMul, &[r2, w]);
    let sum = add(&mut g, "sum", Op::Sum, &[main, skip, mm]);
    let sum = add(&mut g, "sum_3d", Op::Reshape { shape: vec![b(), 1.into(), 8.into()] }, &[sum]);
    let flat = add(&mut g, "flatten", Op::Flatten { axis: 1 }, &[sum]);
    let sm = add(&mut g, "softmax", Op::Softmax { axis: 1 }, &[flat]);
    g.outputs.push(resin_ir::Output { name: "probs".into(), node: sm });
    g.infer_shapes().unwrap();
    g.validate().unwrap();
    g
}

#[test]
fn every_op_and_fused_form_exports() {
    let g = every_op_graph();
    let m = export(&g, 17).unwrap();
    let graph = m.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    for op in [
        "Pad", "Conv", "Sigmoid", "Div", "Clip", "MaxPool", "Reshape", "Gemm", "MatMul", "Add", "Sum", "Flatten",
        "Softmax",
    ] {
        assert!(ops.contains(&op), "no {op} in {ops:?}");
    }
    let node = |name: &str| graph.node.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node '{name}'"));
    assert_eq!(node("conv/sigmoid").input[0], node("conv").output[0]);
    assert_eq!(node("conv/sigmoid").output[0], "conv_out");
    assert_eq!(node("main/add").input, vec![node("main").output[0].clone(), "skip_proj_out".to_string()]);
    assert_eq!(node("main/clip").input[0], node("main/add").output[0]);
    assert_eq!(node("main/clip").output[0], "main_out");
    assert_eq!(node("clip").input.len(), 3);
    assert_eq!(node("clip").input[1], "", "an infinite bound is left out");
    let init = |name: &str| graph.initializer.iter().find(|t| t.name == name).unwrap();
    let i64s = |t: &tract_onnx::pb::TensorProto| -> Vec<i64> {
        t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    };
    assert_eq!(i64s(init(&node("to_1_b_80").input[1])), vec![1, -1, 80]);
    assert_eq!(i64s(init(&node("to_b_80").input[1])), vec![-1, 80]);
    assert_eq!(i64s(init(&node("sum_3d").input[1])), vec![0, 1, 8]);
    assert_eq!(graph.output[0].name, "probs");
    assert_eq!(graph.node.last().unwrap().output[0], "probs");
    // Re-imported: the unfused forms, computing the same.
    let g2 = reimport(&m);
    let n = |g: &Graph, name: &str| g.node(g.find(name).unwrap()).op.clone();
    assert!(matches!(n(&g2, "main"), Op::Gemm(Gemm { act: None, .. })));
    assert!(matches!(n(&g2, "main/clip"), Op::Clip { min, max } if min == -0.5 && max == 0.75));
    assert_eq!(n(&g2, "to_1_b_80"), n(&g, "to_1_b_80"));
    let x =
        resin_runtime::Tensor::new(vec![2, 3, 6, 6], (0..216).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect())
            .unwrap();
    let (y1, y2) = (run(&g, &x), run(&passes(g2.clone()), &x));
    let max = common::assert_close("every_op", &y2, &y1);
    assert!(max <= 1e-6, "every_op: re-imported differs by {max}");
    let (y3, y4) = (run(&g2, &x), run(&passes(reimport(&export(&passes(g2.clone()), 17).unwrap())), &x));
    assert!(common::assert_close("every_op unfused", &y3, &y1) <= 1e-6);
    assert!(common::assert_close("every_op again", &y4, &y1) <= 1e-6);

    if !python_ok() {
        return;
    }
    let dir = temp_dir("every-op");
    ronnx::save(&g, &dir.join("every_op.onnx")).unwrap();
    ronnx::save(&g2, &dir.join("every_op.reimported.onnx")).unwrap();
    resin_runtime::npy::write_f32(&dir.join("every_op_input.npy"), &x.shape, &x.data).unwrap();
    resin_runtime::npy::write_f32(&dir.join("every_op_output.npy"), &y1.shape, &y1.data).unwrap();
    let report = ort_check(&dir, &dir);
    assert!(report.contains("2/2 passed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_onnx_cannot_say_is_an_error() {
    let from = TensorType::f32(vec![Dim::Sym("batch".into()), Dim::Sym("seq".into()), 4.into()]);
    let spec = |to: Vec<Dim>| resin::onnx::export::reshape_spec(&from, &to);
    let (b, s) = (Dim::Sym("batch".into()), Dim::Sym("seq".into()));
    assert_eq!(spec(vec![b.clone(), s.clone(), 4.into()]).unwrap(), vec![0, 0, 4]);
    assert_eq!(spec(vec![b.clone(), Dim::Fixed(4), s.clone()]).unwrap(), vec![0, 4, -1]);
    let e = spec(vec![s, b, 4.into()]).unwrap_err().to_string();
    assert!(e.contains("two moved symbolic dims"), "{e}");

    let g = every_op_graph();
    let e = export(&g, 6).unwrap_err().to_string();
    assert!(e.contains("opset 6"), "{e}");
    // A dilated MaxPool needs opset 10; the error names the node.
    let e = format!("{:#}", export(&g, 9).unwrap_err());
    assert!(e.contains("'pool'") && e.contains("opset 10"), "{e}");
}

#[test]
fn save_is_atomic_and_names_a_missing_directory() {
    let dir = temp_dir("save");
    let g = load(&models_dir().join("mlp_res.onnx"));
    let path = dir.join("model.onnx");
    std::fs::write(&path, b"old").unwrap();
    ronnx::save(&g, &path).unwrap();
    assert_same_graph("saved", &g, &load(&path));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "temporary files left behind: {left:?}");

    let missing = dir.join("no/such/dir/model.onnx");
    let e = ronnx::save(&g, &missing).unwrap_err().to_string();
    assert!(e.contains("does not exist") && e.contains("no/such/dir"), "{e}");
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
