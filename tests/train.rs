//! Training: every backward step against central finite differences, the merged update against the
//! per-matrix one, BatchNorm's running statistics, the losses, and bad input refused with a clear error.
//!
//! The gradient checks build one small graph per op (through `Graph::add_node`), take the loss
//! L = Σ c ⊙ y with fixed random c (so ∂L/∂y = c), and compare the plan's ∂L/∂x and ∂L/∂θ with
//! (L(v + ε) − L(v − ε)) / 2ε for every input element and every parameter element. The plan computes in
//! float32, so ε = 1e-2 and inputs are kept away from the kinks of Relu, Clip and max pooling by more than
//! ε; the tolerance is |numeric − analytic| ≤ 2e-3 + 2e-3·|analytic| (the largest error seen is printed).

use resin::train::loss::{loss_and_grad, Loss, Targets};
use resin::train::{PlanOptions, Rng, TrainPlan};
use resin_ir::op::{BatchNorm, Conv, Gemm, Pool, PoolKind};
use resin_ir::{Dim, Graph, NodeId, Op, Output, Tensor, TensorType};

/// A small graph under construction.
struct G {
    g: Graph,
    rng: Rng,
}

impl G {
    fn new(input: &[usize], seed: u64) -> (G, NodeId) {
        let mut g = Graph::new();
        let mut shape = vec![Dim::Sym("batch".into())];
        shape.extend(input.iter().map(|&d| Dim::Fixed(d)));
        let x = g.add_input("x", TensorType::f32(shape));
        (G { g, rng: Rng::new(seed) }, x)
    }
    fn rand(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| (self.rng.uniform() * 2.0 - 1.0) * scale).collect()
    }
    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::f32(shape.to_vec(), self.rand(n, scale))
    }
    fn op(&mut self, name: &str, op: Op, ins: &[NodeId]) -> NodeId {
        let id = self.g.add_node(name, op, TensorType::f32(vec![]));
        for (p, &i) in ins.iter().enumerate() {
            self.g.connect(i, id, p);
        }
        id
    }
    fn konst(&mut self, name: &str, t: Tensor) -> NodeId {
        let ty = t.ty();
        self.g.add_node(name, Op::Const(t), ty)
    }
    fn gemm(&mut self, name: &str, x: NodeId, k: usize, n: usize, trans_b: bool) -> NodeId {
        let shape = if trans_b { [n, k] } else { [k, n] };
        let b = self.tensor(&shape, 0.5);
        let c = Some(self.tensor(&[n], 0.5));
        self.op(name, Op::Gemm(Gemm { b, c, alpha: 1.0, beta: 1.0, trans_a: false, trans_b, act: None }), &[x])
    }
    fn matmul(&mut self, name: &str, x: NodeId, k: usize, n: usize) -> NodeId {
        let w = self.tensor(&[k, n], 0.5);
        let c = self.konst(&format!("{name}.w"), w);
        self.op(name, Op::MatMul, &[x, c])
    }
    fn finish(mut self, out: NodeId) -> Graph {
        self.g.outputs.push(Output { name: "y".into(), node: out });
        self.g.infer_shapes().unwrap();
        self.g.validate().unwrap();
        self.g
    }
}

fn pool(kind: PoolKind, k: usize, s: usize, p: usize, include_pad: bool) -> Op {
    Op::Pool(Pool {
        kind,
        kernel: [k, k],
        strides: [s, s],
        pads: [p, p, p, p],
        dilations: [1, 1],
        ceil_mode: false,
        count_include_pad: include_pad,
        pre: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn conv(g: &mut G, cin: usize, cout: usize, k: usize, stride: usize, pad: usize, group: usize, dil: usize) -> Op {
    Op::Conv(Conv {
        weight: g.tensor(&[cout, cin / group, k, k], 0.4),
        bias: Some(g.tensor(&[cout], 0.3)),
        strides: [stride, stride],
        pads: [pad; 4],
        dilations: [dil, dil],
        group,
        act: None,
        pre: None,
    })
}

fn bn(g: &mut G, c: usize) -> Op {
    let scale = Tensor::f32(vec![c], (0..c).map(|i| 0.8 + 0.1 * i as f32).collect());
    Op::BatchNorm(BatchNorm {
        scale,
        bias: g.tensor(&[c], 0.3),
        mean: Tensor::f32(vec![c], vec![0.0; c]),
        var: Tensor::f32(vec![c], vec![1.0; c]),
        epsilon: 1e-5,
    })
}

/// Inputs uniform in ±1 with |x| ≥ `margin` (away from Relu's kink), or distinct values spaced by
/// `margin` in random order (no near-ties for max pooling) when `distinct`.
fn inputs(n: usize, seed: u64, margin: f32, distinct: bool) -> Vec<f32> {
    let mut r = Rng::new(seed);
    if distinct {
        let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * margin).collect();
        r.shuffle(&mut v);
        return v;
    }
    (0..n)
        .map(|_| {
            let u = r.uniform() * 2.0 - 1.0;
            u.signum() * (margin + u.abs() * (1.0 - margin))
        })
        .collect()
}

/// L = Σ c·y for the plan's output y.
fn loss(plan: &mut TrainPlan, x: &[f32], c: &[f32]) -> f64 {
    let y = plan.forward(x, true).unwrap();
    y.iter().zip(c).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Checks ∂L/∂x and every ∂L/∂θ of `g` against central differences; returns the largest error.
fn grad_check(name: &str, g: &Graph, batch: usize, margin: f32, distinct: bool) -> f64 {
    let mut plan = TrainPlan::new(g, &PlanOptions::default()).unwrap();
    let per: usize = plan.input_shape().iter().product();
    let x = inputs(batch * per, 1, margin, distinct);
    let y = plan.forward(&x, true).unwrap();
    let c: Vec<f32> = inputs(y.len(), 2, 0.1, false);
    plan.backward(&c).unwrap();
    let dx = plan.input_grad();
    let dparams: Vec<Vec<f32>> = plan.params.iter().map(|p| p.grad.clone()).collect();
    same_gradients_twice(name, &mut plan, &c, &dx, &dparams);
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    let mut check = |what: String, num: f64, ana: f32| {
        let err = (num - ana as f64).abs();
        assert!(err <= 2e-3 + 2e-3 * (ana as f64).abs(), "{name}: {what}: numeric {num} vs analytic {ana}");
        worst = worst.max(err / (1.0 + (ana as f64).abs()));
    };
    for i in 0..x.len() {
        let mut xp = x.clone();
        xp[i] += eps;
        let lp = loss(&mut plan, &xp, &c);
        xp[i] -= 2.0 * eps;
        let lm = loss(&mut plan, &xp, &c);
        check(format!("dL/dx[{i}]"), (lp - lm) / (2.0 * eps as f64), dx[i]);
    }
    for (p, dp) in dparams.iter().enumerate() {
        #[allow(clippy::needless_range_loop)]
        for j in 0..dp.len() {
            let v = plan.params[p].data[j];
            plan.params[p].data[j] = v + eps;
            let lp = loss(&mut plan, &x, &c);
            plan.params[p].data[j] = v - eps;
            let lm = loss(&mut plan, &x, &c);
            plan.params[p].data[j] = v;
            let pname = plan.params[p].name.clone();
            check(format!("dL/d{pname}[{j}]"), (lp - lm) / (2.0 * eps as f64), dp[j]);
        }
    }
    println!("{name}: max error {worst:.2e} (relative to 1 + |gradient|)");
    worst
}

/// A second backward pass from the same forward and ∂L/∂y gives bit-identical gradients: every gradient the
/// steps add into was zeroed before its first writer ran (a missed zeroing would double it).
fn same_gradients_twice(name: &str, plan: &mut TrainPlan, dout: &[f32], dx: &[f32], dparams: &[Vec<f32>]) {
    plan.backward(dout).unwrap();
    assert_eq!(plan.input_grad(), dx, "{name}: ∂L/∂x changed on a second backward pass");
    for (p, want) in plan.params.iter().zip(dparams) {
        assert_eq!(&p.grad, want, "{name}: ∂L/∂{} changed on a second backward pass", p.name);
    }
}

#[test]
fn backward_twice_gives_the_same_gradients_on_the_fixtures_and_a_concat_arena() {
    let mut graphs: Vec<(String, Graph)> =
        ["mlp_plain", "mlp_res", "mlp_highway", "mlp_gated", "mlp_dense", "resnet_small"]
            .iter()
            .map(|n| (n.to_string(), fixture(n)))
            .collect();
    // The zoo's dense MLP is written with Concat: its layers read arena windows that alias their inputs.
    graphs.push((
        "zoo dense-mlp".into(),
        resin::train::cmd::zoo_graph("dense-mlp", Some(4), Some(16), &[8], 3, 0).unwrap(),
    ));
    for (name, g) in &graphs {
        let mut plan = TrainPlan::new(g, &PlanOptions::default()).unwrap();
        if name.starts_with("zoo") {
            assert!(plan.arena_layers > 0 && !plan.describe().contains("concat"), "{}", plan.describe());
        }
        let per: usize = plan.input_shape().iter().product();
        let x = inputs(3 * per, 1, 0.01, false);
        let y = plan.forward(&x, true).unwrap();
        let c = inputs(y.len(), 2, 0.1, false);
        plan.backward(&c).unwrap();
        let dx = plan.input_grad();
        let dparams: Vec<Vec<f32>> = plan.params.iter().map(|p| p.grad.clone()).collect();
        assert!(dparams.iter().flatten().any(|&g| g != 0.0), "{name}: all gradients are zero");
        same_gradients_twice(name, &mut plan, &c, &dx, &dparams);
    }
}

fn flat(g: &mut G, x: NodeId) -> NodeId {
    g.op("flatten", Op::Flatten { axis: 1 }, &[x])
}

#[test]
fn gemm_and_matmul_gradients() {
    let (mut g, x) = G::new(&[5], 10);
    let h = g.gemm("fc_t", x, 5, 4, true);
    let y = g.gemm("fc", h, 4, 3, false);
    grad_check("Gemm (transB and not)", &g.finish(y), 3, 0.0, false);
    let (mut g, x) = G::new(&[5], 11);
    let y = g.matmul("mm", x, 5, 3);
    grad_check("MatMul", &g.finish(y), 3, 0.0, false);
}

#[test]
fn merged_layer_gradients_weighted_dense_identity_skips_and_bias() {
    // z = x W0 + b + a1 W1 + a2 W2 + c + a2 (identity), as a dense-skip layer imports.
    let (mut g, x) = G::new(&[4], 12);
    let a1 = g.gemm("l1", x, 4, 4, true);
    let a1 = g.op("r1", Op::Sigmoid, &[a1]);
    let a2 = g.gemm("l2", a1, 4, 4, true);
    let a2 = g.op("r2", Op::Sigmoid, &[a2]);
    let m0 = g.gemm("main", a2, 4, 4, true);
    let s1 = g.matmul("skip1", a1, 4, 4);
    let s0 = g.matmul("skip0", x, 4, 4);
    let bias = g.tensor(&[4], 0.5);
    let cb = g.konst("bias", bias);
    let t1 = g.op("add1", Op::Add, &[m0, s1]);
    let t2 = g.op("add2", Op::Add, &[t1, s0]);
    let t3 = g.op("add3", Op::Add, &[t2, cb]);
    let t4 = g.op("add4", Op::Add, &[t3, a2]);
    let graph = g.finish(t4);
    let plan = TrainPlan::new(&graph, &PlanOptions::default()).unwrap();
    assert_eq!(plan.merged_layers, 1, "{}", plan.describe());
    grad_check("merged layer (3 matrices, bias, identity addend)", &graph, 3, 0.0, false);
}

#[test]
fn conv_gradients_with_stride_padding_groups_and_dilation() {
    let (mut g, x) = G::new(&[4, 6, 6], 13);
    let op = conv(&mut g, 4, 4, 3, 2, 1, 2, 1);
    let c = g.op("conv", op, &[x]);
    let op = conv(&mut g, 4, 2, 2, 1, 1, 1, 2);
    let c = g.op("conv_dil", op, &[c]);
    let y = flat(&mut g, c);
    grad_check("Conv (stride 2, pad 1, group 2; dilation 2)", &g.finish(y), 2, 0.0, false);
}

/// Stride-1 convolutions run on the padded grid (forward and ∂L/∂x) and take ∂L/∂W from a channels-last
/// copy: a 3x3 with groups, then a 3x3 wider than the padded grid's micro-tiles, with dilation.
#[test]
fn conv_gradients_on_the_padded_grid() {
    let (mut g, x) = G::new(&[4, 7, 9], 17);
    let op = conv(&mut g, 4, 6, 3, 1, 1, 2, 1);
    let c = g.op("conv_g2", op, &[x]);
    let op = conv(&mut g, 6, 3, 3, 1, 2, 1, 2);
    let c = g.op("conv_dil2", op, &[c]);
    let y = flat(&mut g, c);
    grad_check("Conv on the padded grid (stride 1, group 2; dilation 2)", &g.finish(y), 3, 0.0, false);
}

/// Geometries the runtime's in-place convolution takes in training (small weights): a non-square kernel
/// with different strides and dilations per axis, asymmetric pads and an output that does not read the
/// whole input, with groups.
#[test]
fn conv_gradients_non_square_asymmetric() {
    let (mut g, x) = G::new(&[4, 7, 6], 19);
    let op = Op::Conv(Conv {
        weight: g.tensor(&[4, 2, 3, 2], 0.4),
        bias: Some(g.tensor(&[4], 0.3)),
        strides: [2, 1],
        pads: [1, 0, 0, 1],
        dilations: [2, 1],
        group: 2,
        act: None,
        pre: None,
    });
    let c = g.op("conv_odd", op, &[x]);
    let y = flat(&mut g, c);
    grad_check("Conv (3x2 kernel, strides 2/1, dilations 2/1, pads 1,0,0,1, group 2)", &g.finish(y), 2, 0.0, false);
}

#[test]
fn batchnorm_gradients_2d_and_4d() {
    let (mut g, x) = G::new(&[3, 2, 2], 14);
    let op = bn(&mut g, 3);
    let b = g.op("bn", op, &[x]);
    let y = flat(&mut g, b);
    grad_check("BatchNormalization 4-D", &g.finish(y), 3, 0.0, false);
    let (mut g, x) = G::new(&[3], 15);
    let op = bn(&mut g, 3);
    let y = g.op("bn", op, &[x]);
    grad_check("BatchNormalization 2-D", &g.finish(y), 4, 0.0, false);
    // Planes of 42: the passes' 32-lane loops and their tails (the 2x2 planes above are tails only).
    let (mut g, x) = G::new(&[2, 6, 7], 17);
    let op = bn(&mut g, 2);
    let b = g.op("bn", op, &[x]);
    let y = flat(&mut g, b);
    grad_check("BatchNormalization 4-D, 6x7 planes", &g.finish(y), 3, 0.0, false);
    // BatchNorm then Sigmoid: the plan fuses the activation into the BatchNorm step (smooth, so the
    // finite differences see no kink; the conv ResNet fixture checks the fused Relu against PyTorch).
    let (mut g, x) = G::new(&[3, 2, 2], 16);
    let op = bn(&mut g, 3);
    let b = g.op("bn", op, &[x]);
    let a = g.op("act", Op::Sigmoid, &[b]);
    let y = flat(&mut g, a);
    let fused = g.finish(y);
    let steps = TrainPlan::new(&fused, &PlanOptions::default()).unwrap().describe();
    assert!(steps.contains("1 with a fused activation") && !steps.contains("unary 2"), "{steps}");
    grad_check("BatchNormalization + Sigmoid (fused)", &fused, 3, 0.0, false);
}

#[test]
fn activation_gradients() {
    for (name, op) in [("Relu", Op::Relu), ("Sigmoid", Op::Sigmoid), ("Clip", Op::Clip { min: -0.5, max: 0.5 })] {
        let (mut g, x) = G::new(&[6], 16);
        let y = g.op("act", op, &[x]);
        // |x| ≥ 0.1 keeps Relu away from 0; for Clip, inputs on a grid of 0.13 stay 0.02 from ±0.5.
        let graph = g.finish(y);
        let clip = name == "Clip";
        grad_check(name, &graph, 3, if clip { 0.13 } else { 0.1 }, clip);
    }
}

/// x → a = Gemm(x), t = Sigmoid(Gemm(x)), and the highway carry s = a·t + x·(1 − t) as exporters write it
/// (Mul, Sub, Mul, Add), with every operand order as given or `swapped`. Returns the graph so far and
/// [a, t, 1 − t, a·t, x·(1 − t), s].
fn highway_carry(seed: u64, swapped: bool) -> (G, [NodeId; 6]) {
    let (mut g, x) = G::new(&[4], seed);
    let a = g.gemm("a", x, 4, 4, true);
    let t = g.gemm("t", x, 4, 4, true);
    let t = g.op("gate", Op::Sigmoid, &[t]);
    let one = g.konst("one", Tensor::f32(vec![1], vec![1.0]));
    let carry = g.op("one_minus_t", Op::Sub, &[one, t]);
    let order = |p: NodeId, q: NodeId| if swapped { [q, p] } else { [p, q] };
    let h = g.op("h_t", Op::Mul, &order(a, t));
    let c = g.op("x_carry", Op::Mul, &order(x, carry));
    let s = g.op("highway", Op::Add, &order(h, c));
    (g, [a, t, carry, h, c, s])
}

#[test]
fn elementwise_gradients_gate_mul_add_sub_div_sum() {
    let (mut g, [a, t, _, _, _, s]) = highway_carry(17, false);
    let two = g.konst("two", Tensor::f32(vec![4], vec![2.0, 3.0, 4.0, 5.0]));
    let d = g.op("den", Op::Add, &[t, two]);
    let q = g.op("div", Op::Div, &[s, d]);
    let sum = g.op("sum", Op::Sum, &[q, s, a]);
    let fused = g.finish(sum);
    let steps = TrainPlan::new(&fused, &PlanOptions::default()).unwrap().describe();
    assert!(steps.contains("gate 1"), "the carry is one gate step: {steps}");
    grad_check("highway carry (one gate step), Add, Div, Sum", &fused, 3, 0.0, false);

    // The carry written with every operand order swapped (t·h, (1 − t)·x, m2 + m1): the same gate step.
    let (g, [.., s]) = highway_carry(19, true);
    let swapped = g.finish(s);
    let steps = TrainPlan::new(&swapped, &PlanOptions::default()).unwrap().describe();
    assert!(steps.contains("gate 1") && !steps.contains("binary"), "operands swapped: {steps}");
    grad_check("highway carry, operands swapped (one gate step)", &swapped, 3, 0.0, false);

    // The carry's products also read through a Concat that becomes an arena window (no step, so no
    // counted reader): they must stay steps of their own, or the layer reading the window reads zeros.
    let (mut g, [_, _, _, h, c, s]) = highway_carry(20, false);
    let both = g.op("both", Op::Concat { axis: 1 }, &[h, c]);
    let z = g.gemm("z", both, 8, 4, true);
    // A Sigmoid between the carry and the last Add keeps the carry's Add a step of its own (an Add into
    // a layer's output becomes the layer's addend).
    let s = g.op("squash", Op::Sigmoid, &[s]);
    let y = g.op("y", Op::Add, &[s, z]);
    let windowed = g.finish(y);
    let steps = TrainPlan::new(&windowed, &PlanOptions::default()).unwrap().describe();
    assert!(!steps.contains("gate") && !steps.contains("concat"), "{steps}");
    grad_check("highway carry whose products are also read through a Concat window", &windowed, 3, 0.0, false);

    // The same carry with 1 − t read twice: not fusable, so Mul, Sub and Add run as steps of their own.
    let (mut g, [_, _, carry, _, _, s]) = highway_carry(18, false);
    let sum = g.op("sum", Op::Sum, &[s, carry]);
    let unfused = g.finish(sum);
    let steps = TrainPlan::new(&unfused, &PlanOptions::default()).unwrap().describe();
    assert!(!steps.contains("gate") && steps.contains("binary 4"), "{steps}");
    grad_check("Mul (gate), Sub, Add, Sum", &unfused, 3, 0.0, false);
}

#[test]
fn concat_flatten_reshape_gradients() {
    let (mut g, x) = G::new(&[2, 3, 3], 18);
    let op = conv(&mut g, 2, 3, 1, 1, 0, 1, 1);
    let c = g.op("conv", op, &[x]);
    let cat = g.op("concat", Op::Concat { axis: 1 }, &[x, c]);
    let cat2 = g.op("concat_w", Op::Concat { axis: 3 }, &[cat, cat]);
    let r =
        g.op("reshape", Op::Reshape { shape: vec![Dim::Sym("batch".into()), Dim::Fixed(5), Dim::Fixed(18)] }, &[cat2]);
    let y = flat(&mut g, r);
    grad_check("Concat (axis 1 and 3), Reshape, Flatten", &g.finish(y), 2, 0.0, false);
}

#[test]
fn pooling_gradients() {
    for (name, op) in [
        ("MaxPool 3x3 s1 p1", pool(PoolKind::Max, 3, 1, 1, false)),
        ("MaxPool 2x2 s2", pool(PoolKind::Max, 2, 2, 0, false)),
        ("AveragePool 3x3 s2 p1 (pad counted)", pool(PoolKind::Avg, 3, 2, 1, true)),
        ("AveragePool 3x3 s2 p1 (pad not counted)", pool(PoolKind::Avg, 3, 2, 1, false)),
        ("GlobalAveragePool", Op::GlobalAvgPool),
    ] {
        let (mut g, x) = G::new(&[2, 5, 5], 19);
        let p = g.op("pool", op, &[x]);
        let y = flat(&mut g, p);
        grad_check(name, &g.finish(y), 2, 0.05, true);
    }
}

#[test]
fn loss_gradients_against_finite_differences() {
    let z = inputs(12, 3, 0.0, false);
    for (loss, name) in [(Loss::SoftmaxCrossEntropy, "softmax cross-entropy"), (Loss::MeanSquaredError, "MSE")] {
        let labels = [2usize, 0, 3];
        let mut dz = vec![0.0; 12];
        loss_and_grad(loss, &z, 4, Targets::Labels(&labels), &mut dz).unwrap();
        let mut scratch = vec![0.0; 12];
        for i in 0..12 {
            let eps = 1e-3f32;
            let mut zp = z.clone();
            zp[i] += eps;
            let lp = loss_and_grad(loss, &zp, 4, Targets::Labels(&labels), &mut scratch).unwrap();
            zp[i] -= 2.0 * eps;
            let lm = loss_and_grad(loss, &zp, 4, Targets::Labels(&labels), &mut scratch).unwrap();
            let num = (lp - lm) / (2.0 * eps as f64);
            assert!((num - dz[i] as f64).abs() < 1e-4, "{name}[{i}]: {num} vs {}", dz[i]);
        }
    }
}

fn fixture(name: &str) -> Graph {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train").join(format!("{name}.onnx"));
    resin::onnx::load(&p, &Default::default()).unwrap()
}

#[test]
fn merged_update_equals_per_matrix_updates() {
    for name in ["mlp_dense", "mlp_highway"] {
        let g = fixture(name);
        let mut merged = TrainPlan::new(&g, &PlanOptions { merge: true, threads: 1 }).unwrap();
        let mut separate = TrainPlan::new(&g, &PlanOptions { merge: false, threads: 1 }).unwrap();
        // Every several-matrix layer reads a_cat straight from the feature arena: no gather, no copy.
        assert!(merged.merged_layers >= 2 && merged.arena_layers == merged.merged_layers, "{}", merged.describe());
        assert_eq!(separate.merged_layers, 0);
        let x = inputs(8 * 64, 4, 0.0, false);
        let ym = merged.forward(&x, true).unwrap();
        let ys = separate.forward(&x, true).unwrap();
        let c = inputs(ym.len(), 5, 0.0, false);
        merged.backward(&c).unwrap();
        separate.backward(&c).unwrap();
        let mut worst = 0.0f32;
        for (a, b) in ym.iter().zip(&ys) {
            worst = worst.max((a - b).abs());
        }
        for (pm, ps) in merged.params.iter().zip(&separate.params) {
            assert_eq!(pm.name, ps.name);
            for (a, b) in pm.grad.iter().zip(&ps.grad) {
                worst = worst.max((a - b).abs() / (1.0 + b.abs()));
            }
        }
        println!("{name}: merged vs per-matrix: max difference {worst:.2e}");
        assert!(worst < 1e-5, "{name}: {worst}");
        // The SGD update from the merged gradient is the per-matrix ΔW^{l-k,l} = −η a^{l-k} δ^l, block by block.
        let eta = 0.1;
        let mut opt = resin::train::Optimizer::sgd(eta);
        let before: Vec<Vec<f32>> = merged.params.iter().map(|p| p.data.clone()).collect();
        opt.step(&mut merged.params);
        for ((p, b), s) in merged.params.iter().zip(&before).zip(&separate.params) {
            for ((w, w0), g) in p.data.iter().zip(b).zip(&s.grad) {
                assert!((w - (w0 - eta * g)).abs() <= 1e-6 * (1.0 + w0.abs()));
            }
        }
    }
}

/// Plain SGD applied inside the weight-gradient products (`backward_sgd`, what `train_step` does with
/// plain SGD) lands on the same weights as `backward` then the optimizer's step, for merged and per-matrix
/// layers, one and two threads, over two steps (so the second step's forward and ∂L/∂a read the updated
/// weights, and each ∂L/∂a product must have read W before its update).
#[test]
fn sgd_in_the_weight_products_equals_backward_then_step() {
    let eta = 0.1;
    for name in ["mlp_dense", "mlp_highway", "mlp_gated", "resnet_small"] {
        let g = fixture(name);
        for (merge, threads) in [(true, 1), (false, 1), (true, 2)] {
            let opts = PlanOptions { merge, threads };
            let (mut fused, mut plain) = (TrainPlan::new(&g, &opts).unwrap(), TrainPlan::new(&g, &opts).unwrap());
            let (mut opt_f, mut opt_p) = (resin::train::Optimizer::sgd(eta), resin::train::Optimizer::sgd(eta));
            assert_eq!(opt_f.fused_sgd_lr(), Some(eta));
            let per: usize = fused.input_shape().iter().product();
            let mut worst = 0.0f32;
            for step in 0..2 {
                let x = inputs(4 * per, 10 + step, 0.0, false);
                let yf = fused.forward(&x, true).unwrap();
                let yp = plain.forward(&x, true).unwrap();
                let c = inputs(yf.len(), 20 + step, 0.0, false);
                fused.backward_sgd(&c, eta).unwrap();
                plain.backward(&c).unwrap();
                let updated = fused.params.iter().filter(|p| p.updated).count();
                assert!(updated > 0, "{name}: no weight was updated in its product");
                opt_f.step(&mut fused.params);
                opt_p.step(&mut plain.params);
                assert!(fused.params.iter().all(|p| !p.updated), "{name}: the step left a flag set");
                for (a, b) in yf.iter().zip(&yp) {
                    worst = worst.max((a - b).abs() / (1.0 + b.abs()));
                }
                for (a, b) in fused.input_grad().iter().zip(&plain.input_grad()) {
                    worst = worst.max((a - b).abs() / (1.0 + b.abs()));
                }
                for (pf, pp) in fused.params.iter().zip(&plain.params) {
                    for (a, b) in pf.data.iter().zip(&pp.data) {
                        worst = worst.max((a - b).abs() / (1.0 + b.abs()));
                    }
                }
            }
            println!("{name} merge={merge} threads={threads}: fused vs separate SGD: max difference {worst:.2e}");
            assert!(worst < 2e-6, "{name} merge={merge} threads={threads}: {worst}");
        }
    }
    // Momentum or weight decay keep their own pass: no product applies them.
    let kinds = [
        resin::train::Optimizer::new(resin::train::OptimizerKind::Sgd { momentum: 0.9 }, 0.1, 0.0).unwrap(),
        resin::train::Optimizer::new(resin::train::OptimizerKind::Sgd { momentum: 0.0 }, 0.1, 1e-4).unwrap(),
    ];
    assert!(kinds.iter().all(|o| o.fused_sgd_lr().is_none()));
}

#[test]
fn batchnorm_running_statistics_follow_pytorch() {
    let (mut g, x) = G::new(&[2], 20);
    let op = bn(&mut g, 2);
    let y = g.op("bn", op, &[x]);
    let graph = g.finish(y);
    let mut plan = TrainPlan::new(&graph, &PlanOptions::default()).unwrap();
    plan.forward(&[1.0, 10.0, 3.0, 20.0, 5.0, 60.0], true).unwrap();
    let (_, mean, var) = &plan.running_stats()[0];
    // channel 0: batch mean 3, unbiased var 4 -> 0.9·0 + 0.1·3, 0.9·1 + 0.1·4
    assert!((mean[0] - 0.3).abs() < 1e-6 && (var[0] - 1.3).abs() < 1e-6, "{mean:?} {var:?}");
    assert!((mean[1] - 3.0).abs() < 1e-5 && (var[1] - (0.9 + 0.1 * 700.0)).abs() < 1e-3, "{mean:?} {var:?}");
    // Evaluation uses them: y = γ(x − μ_r)/√(σ²_r + ε) + β.
    let y = plan.forward(&[0.3, 3.0], false).unwrap();
    let b = match &graph.node(graph.find("bn").unwrap()).op {
        Op::BatchNorm(b) => b.bias.to_f32_vec(),
        _ => unreachable!(),
    };
    assert!((y[0] - b[0]).abs() < 1e-5 && (y[1] - b[1]).abs() < 1e-5);
}

#[test]
fn unsupported_graphs_are_refused_with_the_node_named() {
    let (mut g, x) = G::new(&[4], 21);
    let s = g.op("probs", Op::Softmax { axis: 1 }, &[x]);
    let e = TrainPlan::new(&g.finish(s), &PlanOptions::default()).err().unwrap().to_string();
    assert!(e.contains("'probs'") && e.contains("Softmax"), "{e}");
    let (mut g, x) = G::new(&[4], 22);
    let a = g.gemm("a", x, 4, 4, true);
    let m = g.op("m", Op::Mul, &[a, x]);
    let graph = g.finish(m);
    assert!(TrainPlan::new(&graph, &PlanOptions::default()).is_ok());
    // Wrong data sizes are errors, not panics.
    let mut plan = TrainPlan::new(&graph, &PlanOptions::default()).unwrap();
    assert!(plan.forward(&[1.0; 5], true).unwrap_err().to_string().contains("not a whole number"));
    plan.forward(&[1.0; 8], true).unwrap();
    assert!(plan.backward(&[1.0; 3]).is_err());
}

/// A 3x3 convolution (same size) then a BatchNorm, optionally a Relu, flattened: on `[c, h, w]` inputs.
fn conv_bn(chw: [usize; 3], cout: usize, relu: bool, seed: u64) -> Graph {
    let (mut g, x) = G::new(&chw, seed);
    let op = conv(&mut g, chw[0], cout, 3, 1, 1, 1, 1);
    let c = g.op("conv", op, &[x]);
    let op = bn(&mut g, cout);
    let mut y = g.op("bn", op, &[c]);
    if relu {
        y = g.op("act", Op::Relu, &[y]);
    }
    let y = flat(&mut g, y);
    g.finish(y)
}

/// `TrainPlan::profile` times every step of the passes that follow, by kind, and only those.
#[test]
fn training_profile_reports_each_step_kind() {
    let mut plan = TrainPlan::new(&conv_bn([2, 6, 6], 4, false, 18), &PlanOptions::default()).unwrap();
    assert!(plan.profile_report().is_none(), "no report before profiling starts");
    let per: usize = plan.input_shape().iter().product();
    let x = inputs(2 * per, 3, 0.0, false);
    plan.profile();
    let y = plan.forward(&x, true).unwrap();
    plan.backward(&vec![1.0; y.len()]).unwrap();
    let report = plan.profile_report().unwrap();
    for kind in ["conv", "batchnorm", "unary"] {
        let line = report.lines().find(|l| l.starts_with(kind)).unwrap_or_else(|| panic!("no {kind} in\n{report}"));
        let f: Vec<f64> = line.split_whitespace().skip(1).map(|v| v.trim_end_matches('%').parse().unwrap()).collect();
        assert!(f.len() == 3 && f.iter().all(|&t| t >= 0.0), "{report}");
        // (A sub-microsecond Flatten copy may print as 0.0%; the convolution cannot.)
        assert!(kind != "conv" || f[2] > 0.0, "{report}");
    }
    let share: f64 = report
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap().trim_end_matches('%').parse::<f64>().unwrap())
        .sum();
    assert!((share - 100.0).abs() < 0.5, "shares sum to {share}:\n{report}");
}

/// A conv → BatchNorm → Relu large enough for the plan to split BatchNorm's passes between threads (past
/// 2^14 elements): 1 and 2 threads give the same outputs, input gradient and BatchNorm gradients, bit for
/// bit (its per-image partial sums are added in image order whatever the split). The convolution's weight
/// gradient is not compared: each thread sums its own images first, so its rounding follows the split.
#[test]
fn two_threads_give_the_same_bits_as_one_on_a_conv_batchnorm() {
    let graph = conv_bn([3, 20, 20], 8, true, 19);
    let run = |threads: usize| {
        let mut plan = TrainPlan::new(&graph, &PlanOptions { threads, ..PlanOptions::default() }).unwrap();
        let per: usize = plan.input_shape().iter().product();
        let x = inputs(9 * per, 1, 0.0, false);
        let y = plan.forward(&x, true).unwrap();
        assert!(y.len() >= 1 << 14, "too small to split: {}", y.len());
        let c = inputs(y.len(), 2, 0.1, false);
        plan.backward(&c).unwrap();
        // BatchNorm's γ and β: the parameters after the convolution's weight and bias.
        let grads: Vec<Vec<f32>> = plan.params[2..].iter().map(|p| p.grad.clone()).collect();
        assert_eq!(grads.len(), 2);
        (y, plan.input_grad(), grads)
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.0, two.0, "outputs differ between 1 and 2 threads");
    assert_eq!(one.1, two.1, "∂L/∂x differs between 1 and 2 threads");
    assert_eq!(one.2, two.2, "BatchNorm's gradients differ between 1 and 2 threads");
}
