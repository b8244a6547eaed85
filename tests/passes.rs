//! Every pass preserves outputs: proptest builds random networks with identity, weighted and dense skips
//! (BatchNorm after Gemm/Conv, Identity nodes, dead branches), runs them before and after each pass and
//! after the whole pipeline, and compares.

use proptest::prelude::*;
use resin::passes::{self, PIPELINE};
use resin_ir::op::{BatchNorm, Conv, Gemm, Pool, PoolKind};
use resin_ir::{Dim, Graph, NodeId, Op, Output, Tensor, TensorType};
use resin_runtime::Model;

/// One layer of a random network: which skip joins it.
#[derive(Clone, Debug)]
enum Layer {
    Plain {
        bn: bool,
        identity_node: bool,
    },
    Identity {
        back: usize,
        bn: bool,
    },
    Weighted {
        back: usize,
    },
    Dense {
        bn: bool,
    },
    /// BN → ReLU → linear map (DenseNet's pre-activation), reading the previous layer.
    PreActivation,
    /// W a^{l-1} + Σ V_k a^{l-k} summed by Adds (MatMuls in MLP mode), then ReLU.
    MatrixSum {
        back: usize,
    },
    /// relu(linear(a^{l-1}) · (c₁ + c₂)): a constant subexpression for fold_constants.
    ConstScale,
    Dead,
    /// (BN → ReLU →) 1x1 convolution → 2x2 average pool (DenseNet's transition), which ends the network
    /// in convolution mode (`pool_first` moves the pool in front of the convolution).
    Transition {
        pre: bool,
    },
}

fn layer() -> impl Strategy<Value = Layer> {
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(bn, identity_node)| Layer::Plain { bn, identity_node }),
        (1usize..4, any::<bool>()).prop_map(|(back, bn)| Layer::Identity { back, bn }),
        (1usize..4).prop_map(|back| Layer::Weighted { back }),
        any::<bool>().prop_map(|bn| Layer::Dense { bn }),
        Just(Layer::PreActivation),
        (1usize..4).prop_map(|back| Layer::MatrixSum { back }),
        Just(Layer::ConstScale),
        Just(Layer::Dead),
        any::<bool>().prop_map(|pre| Layer::Transition { pre }),
    ]
}

struct Builder {
    g: Graph,
    seed: u64,
    conv: bool,
    width: usize,
}

impl Builder {
    fn rand(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }
    fn ty(&self, c: usize) -> TensorType {
        let mut s = vec![Dim::Sym("batch".into()), Dim::Fixed(c)];
        if self.conv {
            s.extend([Dim::Fixed(5), Dim::Fixed(4)]);
        }
        TensorType::f32(s)
    }
    fn node(&mut self, op: Op, ins: &[NodeId], c: usize) -> NodeId {
        let name = format!("n{}", self.g.len());
        let id = self.g.add_node(name, op, self.ty(c));
        for (p, &i) in ins.iter().enumerate() {
            self.g.connect(i, id, p);
        }
        id
    }
    /// The layer's linear map from `cin` to `width` channels.
    fn linear(&mut self, x: NodeId, cin: usize, bias: bool) -> NodeId {
        let w = self.width;
        let scale = 1.0 / (cin as f32).sqrt();
        let op = if self.conv {
            let weight = Tensor::f32(vec![w, cin, 3, 3], self.rand(w * cin * 9, scale / 3.0));
            let bias = bias.then(|| Tensor::f32(vec![w], self.rand(w, 0.1)));
            Op::Conv(Conv {
                weight,
                bias,
                strides: [1, 1],
                pads: [1, 1, 1, 1],
                dilations: [1, 1],
                group: 1,
                act: None,
                pre: None,
            })
        } else {
            let b = Tensor::f32(vec![cin, w], self.rand(cin * w, scale));
            let c = bias.then(|| Tensor::f32(vec![w], self.rand(w, 0.1)));
            Op::Gemm(Gemm { b, c, alpha: 1.0, beta: 0.5, trans_a: false, trans_b: false, act: None })
        };
        self.node(op, &[x], w)
    }
    fn bn(&mut self, x: NodeId) -> NodeId {
        let w = self.width;
        let scale = self.rand(w, 0.5).iter().map(|v| v + 1.0).collect();
        let var = self.rand(w, 0.4).iter().map(|v| v + 0.6).collect();
        let bn = BatchNorm {
            scale: Tensor::f32(vec![w], scale),
            bias: Tensor::f32(vec![w], self.rand(w, 0.2)),
            mean: Tensor::f32(vec![w], self.rand(w, 0.3)),
            var: Tensor::f32(vec![w], var),
            epsilon: 1e-5,
        };
        self.node(Op::BatchNorm(bn), &[x], w)
    }
}

fn build(layers: &[Layer], conv: bool, seed: u64) -> Graph {
    let width = 3;
    let mut b = Builder { g: Graph::new(), seed, conv, width };
    let ty = b.ty(width);
    let x = b.g.add_input("x", ty);
    let mut acts = vec![x];
    for l in layers {
        let prev = *acts.last().unwrap();
        let out = match *l {
            Layer::Plain { bn, identity_node } => {
                let mut h = b.linear(prev, width, true);
                if bn {
                    h = b.bn(h);
                }
                if identity_node {
                    h = b.node(Op::Identity, &[h], width);
                }
                b.node(Op::Relu, &[h], width)
            }
            Layer::Identity { back, bn } => {
                let mut h = b.linear(prev, width, !bn);
                if bn {
                    h = b.bn(h);
                }
                let skip = acts[acts.len().saturating_sub(back + 1)];
                let s = b.node(Op::Add, &[h, skip], width);
                b.node(Op::Relu, &[s], width)
            }
            Layer::Weighted { back } => {
                let h = b.linear(prev, width, true);
                let src = acts[acts.len().saturating_sub(back + 1)];
                let proj = b.linear(src, width, false);
                let proj = b.bn(proj);
                let s = b.node(Op::Add, &[h, proj], width);
                b.node(Op::Relu, &[s], width)
            }
            Layer::Dense { bn } => {
                let cat = b.node(Op::Concat { axis: 1 }, &acts.clone(), width * acts.len());
                let mut h = b.linear(cat, width * acts.len(), true);
                if bn {
                    h = b.bn(h);
                }
                b.node(Op::Sigmoid, &[h], width)
            }
            Layer::PreActivation => {
                let n = b.bn(prev);
                let r = b.node(Op::Relu, &[n], width);
                b.linear(r, width, true)
            }
            Layer::MatrixSum { back } => {
                let mut sum = b.linear(prev, width, true);
                for k in 1..=back.min(acts.len() - 1) {
                    let src = acts[acts.len() - 1 - k];
                    let skip = if b.conv {
                        b.linear(src, width, false)
                    } else {
                        let w = Tensor::f32(vec![width, width], b.rand(width * width, 0.5));
                        let wt = TensorType::f32(vec![Dim::Fixed(width), Dim::Fixed(width)]);
                        let c = b.g.add_node(format!("w{}", b.g.len()), Op::Const(w), wt);
                        b.node(Op::MatMul, &[src, c], width)
                    };
                    sum = b.node(Op::Add, &[sum, skip], width);
                }
                b.node(Op::Relu, &[sum], width)
            }
            Layer::ConstScale => {
                let h = b.linear(prev, width, true);
                let cshape: Vec<usize> = if b.conv { vec![width, 1, 1] } else { vec![width] };
                let cty = TensorType::f32(cshape.iter().map(|&d| Dim::Fixed(d)).collect());
                let (c1, c2) = (b.rand(width, 1.0), b.rand(width, 1.0));
                let c1 =
                    b.g.add_node(format!("c{}", b.g.len()), Op::Const(Tensor::f32(cshape.clone(), c1)), cty.clone());
                let c2 =
                    b.g.add_node(format!("c{}", b.g.len()), Op::Const(Tensor::f32(cshape.clone(), c2)), cty.clone());
                let sum = b.g.add_node(format!("n{}", b.g.len()), Op::Add, cty);
                b.g.connect(c1, sum, 0);
                b.g.connect(c2, sum, 1);
                let m = b.node(Op::Mul, &[h, sum], width);
                b.node(Op::Relu, &[m], width)
            }
            Layer::Dead => {
                let h = b.linear(prev, width, true);
                b.bn(h);
                prev
            }
            Layer::Transition { pre } if conv => {
                let mut h = prev;
                if pre {
                    let n = b.bn(h);
                    h = b.node(Op::Relu, &[n], width);
                }
                let weight = Tensor::f32(vec![width, width, 1, 1], b.rand(width * width, 0.6));
                let bias = Some(Tensor::f32(vec![width], b.rand(width, 0.1)));
                let op = Op::Conv(Conv {
                    weight,
                    bias,
                    strides: [1, 1],
                    pads: [0; 4],
                    dilations: [1, 1],
                    group: 1,
                    act: None,
                    pre: None,
                });
                let c = b.node(op, &[h], width);
                // The 5 × 4 map pooled to 2 × 2: the network ends here.
                let pool = Op::Pool(Pool {
                    kind: PoolKind::Avg,
                    kernel: [2, 2],
                    strides: [2, 2],
                    pads: [0; 4],
                    dilations: [1, 1],
                    ceil_mode: false,
                    count_include_pad: false,
                    pre: None,
                });
                let ty =
                    TensorType::f32(vec![Dim::Sym("batch".into()), Dim::Fixed(width), Dim::Fixed(2), Dim::Fixed(2)]);
                let p = b.g.add_node(format!("n{}", b.g.len()), pool, ty.clone());
                b.g.connect(c, p, 0);
                let y = b.g.add_node(format!("n{}", b.g.len()), Op::Identity, ty);
                b.g.connect(p, y, 0);
                b.g.outputs.push(Output { name: "y".into(), node: y });
                b.g.infer_shapes().unwrap();
                b.g.validate().unwrap();
                b.g.recognize_skips();
                return b.g;
            }
            Layer::Transition { .. } => {
                let n = b.bn(prev);
                let r = b.node(Op::Relu, &[n], width);
                b.linear(r, width, true)
            }
        };
        if out != prev {
            acts.push(out);
        }
    }
    let last = *acts.last().unwrap();
    let y = b.node(Op::Identity, &[last], width);
    b.g.outputs.push(Output { name: "y".into(), node: y });
    b.g.infer_shapes().unwrap();
    b.g.validate().unwrap();
    b.g.recognize_skips();
    b.g
}

fn run(g: &Graph, x: &resin_runtime::Tensor) -> Vec<f32> {
    let model = Model::new(resin::lower::lower(g).unwrap()).unwrap();
    model.session_with_threads(1).unwrap().run(&[x]).unwrap().remove(0).data
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 + 1e-4 * y.abs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn passes_preserve_outputs(layers in prop::collection::vec(layer(), 1..7), conv in any::<bool>(), seed in any::<u64>()) {
        let g = build(&layers, conv, seed);
        let shape: Vec<usize> = if conv { vec![2, 3, 5, 4] } else { vec![2, 3] };
        let n: usize = shape.iter().product();
        let mut b = Builder { g: Graph::new(), seed: seed ^ 0x5eed, conv, width: 3 };
        let x = resin_runtime::Tensor::new(shape, b.rand(n, 1.0)).unwrap();
        let want = run(&g, &x);
        for (name, pass) in PIPELINE {
            let mut h = g.clone();
            let report = pass(&mut h);
            h.validate().unwrap();
            let got = run(&h, &x);
            prop_assert!(close(&got, &want), "{name} changed outputs ({:?}):\n{g}", report.changes);
        }
        let mut all = g.clone();
        passes::run_pipeline(&mut all, &[]).unwrap();
        prop_assert!(close(&run(&all, &x), &want), "the pipeline changed outputs:\n{g}");
        // BatchNorm after a single-use Conv/Gemm is always folded; no Identity survives except one that
        // carries a graph input straight to an output.
        for id in all.g.node_indices() {
            if matches!(all.node(id).op, Op::Identity) {
                prop_assert!(matches!(all.node(all.inputs_of(id)[0]).op, Op::Input), "{all}");
            }
        }
        // Nothing computable at compile time is left to run.
        for id in all.g.node_indices() {
            let ins = all.inputs_of(id);
            let all_const = !ins.is_empty() && ins.iter().all(|&i| matches!(all.node(i).op, Op::Const(_)));
            prop_assert!(!all_const || matches!(all.node(id).op, Op::MatMul), "a constant subexpression survived:\n{all}");
        }
        // A BN survives only where nothing can take it: not after a plain single-use Conv/Gemm, not before
        // a Conv (in MLP mode a BN before a Gemm, or after an activation, stays).
        for id in all.g.node_indices() {
            if matches!(all.node(id).op, Op::BatchNorm(_)) {
                let src = all.inputs_of(id)[0];
                let plain_layer = match &all.node(src).op {
                    Op::Conv(c) => c.act.is_none() && all.inputs_of(src).len() == 1,
                    Op::Gemm(gm) => gm.act.is_none() && all.inputs_of(src).len() == 1,
                    _ => false,
                };
                prop_assert!(!plain_layer || all.consumers(src).len() > 1, "a foldable BN survived:\n{all}");
                prop_assert!(!conv, "a BN before a convolution was not folded into its prologue:\n{all}");
            }
        }
    }
}
