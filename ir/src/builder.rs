//! A builder for writing networks by hand: each call adds one node with its type inferred from its
//! operands and returns the node's handle; layers get seeded, deterministic random weights.
//!
//! The builder owns only construction. The nodes it makes are the ones the ONNX importer makes for what
//! PyTorch exports (a `Linear` is a [`Gemm`] with `transB = 1` and `B` stored `[out, in]`; a bias-free
//! matrix on a skip path is a `MatMul` with a constant `[in, out]` operand; `AdaptiveAvgPool2d(1)` is a
//! `GlobalAveragePool`; `flatten(x, 1)` is a `Flatten`), so a built graph exports, compiles and
//! visualizes exactly like an imported one. [`Builder::finish`] validates the graph and recognizes its skips.
//!
//! Weights are drawn from the builder's own generator ([`Rng`], SplitMix64), so a seed gives the same
//! bits on every machine:
//! - Conv and Linear weights: He (Kaiming) normal, N(0, 2 / fan_in), fan_in = inputs per output
//!   (`in_channels / group · kh · kw` for a convolution);
//! - Conv and Linear biases, and the matrices of [`Builder::matmul`]: uniform in ±1/√fan_in (PyTorch's
//!   default for `nn.Linear` biases);
//! - BatchNorm: scale 1, bias 0, mean 0, variance 1 (a freshly constructed `nn.BatchNorm2d`), unless
//!   [`Builder::randomize_batchnorm`] asks for random statistics (scale in [0.5, 1.5], bias and mean in
//!   [−0.2, 0.2], variance in [0.5, 2]) so that folding BatchNorm changes the weights.
//!
//! ```
//! use resin_ir::builder::{Builder, Conv2d};
//! use resin_ir::Dim;
//!
//! // A residual block on a 3x32x32 input: relu(bn(conv(relu(bn(conv(x))))) + x), then a classifier.
//! let mut b = Builder::new(7);
//! let x = b.input("input", vec![Dim::Sym("batch".into()), 3.into(), 32.into(), 32.into()]);
//! let stem = b.conv("stem", x, Conv2d::new(16, 3).pad(1))?;
//! let stem = b.relu("stem.relu", stem)?;
//! let h = b.conv("block.conv1", stem, Conv2d::new(16, 3).pad(1))?;
//! let h = b.batchnorm("block.bn1", h)?;
//! let h = b.relu("block.relu1", h)?;
//! let h = b.conv("block.conv2", h, Conv2d::new(16, 3).pad(1))?;
//! let h = b.batchnorm("block.bn2", h)?;
//! let sum = b.add("block.add", h, stem)?;
//! let y = b.relu("block.relu2", sum)?;
//! let y = b.global_avg_pool("avgpool", y)?;
//! let y = b.flatten("flatten", y, 1)?;
//! let y = b.linear("fc", y, 10, true)?;
//! b.output("output", y);
//! let (g, skips) = b.finish()?;
//! assert_eq!(skips.to_string(), "1 identity");
//! assert_eq!(g.node(y).ty.to_string(), "float32[batch,10]");
//! # Ok::<(), resin_ir::builder::BuildError>(())
//! ```

use crate::graph::{Graph, GraphError, NodeId, Output};
use crate::op::{BatchNorm, Conv, Gemm, Op, Pool, PoolKind};
use crate::skips::SkipSummary;
use crate::tensor::{Tensor, TensorType};
use crate::Dim;
use std::collections::HashSet;

/// What can go wrong while building: a shape that does not fit (naming the node), or a reused name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("node name '{0}' is used twice")]
    DuplicateName(String),
    #[error("node '{node}': {msg}")]
    Layer { node: String, msg: String },
}

/// SplitMix64: a small, fast generator with a 64-bit state whose output is the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    /// The second normal of the last Box–Muller pair, not handed out yet.
    spare: Option<f32>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed, spare: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }

    /// Standard normal (Box–Muller: two uniforms give two independent normals).
    pub fn normal(&mut self) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some((r * s) as f32);
        (r * c) as f32
    }

    /// `n` values from N(0, std²).
    pub fn normal_vec(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * std).collect()
    }

    /// `n` values uniform in [−bound, bound).
    pub fn uniform_vec(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-bound, bound)).collect()
    }
}

/// A 2-D convolution's hyper-parameters: `Conv2d::new(out_channels, kernel).stride(2).pad(1)`.
/// Defaults: stride 1, no padding, dilation 1, one group, no bias (the ResNet/DenseNet convention, where a
/// BatchNorm follows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// [top, left, bottom, right]
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
    pub bias: bool,
}

impl Conv2d {
    /// A square `kernel` x `kernel` convolution to `out_channels` channels.
    pub fn new(out_channels: usize, kernel: usize) -> Conv2d {
        Conv2d {
            out_channels,
            kernel: [kernel, kernel],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            group: 1,
            bias: false,
        }
    }
    pub fn stride(mut self, s: usize) -> Conv2d {
        self.strides = [s, s];
        self
    }
    /// The same padding on all four sides.
    pub fn pad(mut self, p: usize) -> Conv2d {
        self.pads = [p; 4];
        self
    }
    pub fn dilation(mut self, d: usize) -> Conv2d {
        self.dilations = [d, d];
        self
    }
    pub fn group(mut self, g: usize) -> Conv2d {
        self.group = g;
        self
    }
    pub fn bias(mut self, yes: bool) -> Conv2d {
        self.bias = yes;
        self
    }
}

/// A 2-D pooling window: `Pool2d::new(3).stride(2).pad(1)`. Defaults: stride = kernel (PyTorch's), no
/// padding, floor mode, and for average pooling padding counted (PyTorch's `count_include_pad=True`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub pads: [usize; 4],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl Pool2d {
    pub fn new(kernel: usize) -> Pool2d {
        Pool2d {
            kernel: [kernel, kernel],
            strides: [kernel, kernel],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: true,
        }
    }
    pub fn stride(mut self, s: usize) -> Pool2d {
        self.strides = [s, s];
        self
    }
    pub fn pad(mut self, p: usize) -> Pool2d {
        self.pads = [p; 4];
        self
    }
    pub fn ceil_mode(mut self, yes: bool) -> Pool2d {
        self.ceil_mode = yes;
        self
    }
    pub fn count_include_pad(mut self, yes: bool) -> Pool2d {
        self.count_include_pad = yes;
        self
    }
}

/// Builds a [`Graph`] node by node (see the module doc for an example and the weight initialization).
pub struct Builder {
    g: Graph,
    rng: Rng,
    names: HashSet<String>,
    random_bn: bool,
}

impl Builder {
    /// An empty network whose weights will be drawn from `seed`.
    pub fn new(seed: u64) -> Builder {
        Builder { g: Graph::new(), rng: Rng::new(seed), names: HashSet::new(), random_bn: false }
    }

    /// Give later BatchNorms random statistics instead of the identity (see the module doc).
    pub fn randomize_batchnorm(&mut self, yes: bool) -> &mut Builder {
        self.random_bn = yes;
        self
    }

    /// The weight generator, for layers made by hand with [`Builder::op`].
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The graph so far (read only).
    pub fn graph(&self) -> &Graph {
        &self.g
    }

    /// The type of a node added earlier.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.g.node(id).ty
    }

    /// The op of a node added earlier, to adjust its initial weights (a highway gate's bias, say). Its
    /// type must stay what it was: [`Builder::finish`] validates.
    pub fn op_mut(&mut self, id: NodeId) -> &mut Op {
        &mut self.g.node_mut(id).op
    }

    /// The fixed size of axis `axis` of a node's output, or an error naming the node.
    pub fn dim(&self, id: NodeId, axis: usize) -> Result<usize, BuildError> {
        let n = self.g.node(id);
        n.ty.shape.get(axis).and_then(Dim::fixed).ok_or_else(|| BuildError::Layer {
            node: n.name.clone(),
            msg: format!("axis {axis} of its output {} is not a known size", n.ty),
        })
    }

    fn claim(&mut self, name: &str) -> Result<(), BuildError> {
        if !self.names.insert(name.to_string()) {
            return Err(BuildError::DuplicateName(name.to_string()));
        }
        Ok(())
    }

    /// A float32 graph input of the given shape (use `Dim::Sym("batch".into())` for a dynamic batch).
    pub fn input(&mut self, name: &str, shape: Vec<Dim>) -> NodeId {
        // A duplicate input name is a programming error in the caller's network; make it loud at once.
        assert!(self.names.insert(name.to_string()), "input name '{name}' is used twice");
        self.g.add_input(name, TensorType::f32(shape))
    }

    /// Any op on the given operands (in port order), its type inferred; the base of every other method.
    pub fn op(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> Result<NodeId, BuildError> {
        let ins: Vec<TensorType> = inputs.iter().map(|&i| self.g.node(i).ty.clone()).collect();
        let ty = crate::infer::infer(&op, &ins).map_err(|msg| GraphError::Shape {
            node: name.to_string(),
            op: op.name(),
            msg,
        })?;
        self.claim(name)?;
        let id = self.g.add_node(name, op, ty);
        for (port, &src) in inputs.iter().enumerate() {
            self.g.connect(src, id, port);
        }
        Ok(id)
    }

    /// A constant operand (not a layer weight: those live in their op).
    pub fn constant(&mut self, name: &str, t: Tensor) -> Result<NodeId, BuildError> {
        self.op(name, Op::Const(t), &[])
    }

    /// A 2-D convolution of an NCHW tensor with He-initialized weights.
    pub fn conv(&mut self, name: &str, x: NodeId, c: Conv2d) -> Result<NodeId, BuildError> {
        let cin = self.dim(x, 1)?;
        if c.group == 0 || cin % c.group != 0 {
            return Err(BuildError::Layer {
                node: name.into(),
                msg: format!("{cin} input channels do not split into {} groups", c.group),
            });
        }
        let per_group = cin / c.group;
        let fan_in = per_group * c.kernel[0] * c.kernel[1];
        let shape = vec![c.out_channels, per_group, c.kernel[0], c.kernel[1]];
        let n: usize = shape.iter().product();
        let weight = Tensor::f32(shape, self.rng.normal_vec(n, (2.0 / fan_in as f32).sqrt()));
        let bias = c.bias.then(|| {
            Tensor::f32(vec![c.out_channels], self.rng.uniform_vec(c.out_channels, 1.0 / (fan_in as f32).sqrt()))
        });
        let op = Op::Conv(Conv {
            weight,
            bias,
            strides: c.strides,
            pads: c.pads,
            dilations: c.dilations,
            group: c.group,
            act: None,
            pre: None,
        });
        self.op(name, op, &[x])
    }

    /// Inference BatchNormalization over axis 1 (ε = 1e-5, PyTorch's).
    pub fn batchnorm(&mut self, name: &str, x: NodeId) -> Result<NodeId, BuildError> {
        let c = self.dim(x, 1)?;
        let (scale, bias, mean, var) = if self.random_bn {
            let r = &mut self.rng;
            let scale = (0..c).map(|_| r.uniform(0.5, 1.5)).collect();
            let bias = r.uniform_vec(c, 0.2);
            let mean = r.uniform_vec(c, 0.2);
            let var = (0..c).map(|_| r.uniform(0.5, 2.0)).collect();
            (scale, bias, mean, var)
        } else {
            (vec![1.0; c], vec![0.0; c], vec![0.0; c], vec![1.0; c])
        };
        let t = |v: Vec<f32>| Tensor::f32(vec![c], v);
        let op = Op::BatchNorm(BatchNorm { scale: t(scale), bias: t(bias), mean: t(mean), var: t(var), epsilon: 1e-5 });
        self.op(name, op, &[x])
    }

    /// PyTorch's `nn.Linear(in, out)` on a `[batch, in]` tensor: a Gemm with `B` stored `[out, in]`
    /// (`transB = 1`) and, with `bias`, `C` of `[out]`.
    pub fn linear(&mut self, name: &str, x: NodeId, out: usize, bias: bool) -> Result<NodeId, BuildError> {
        let k = self.dim(x, 1)?;
        let w = Tensor::f32(vec![out, k], self.rng.normal_vec(out * k, (2.0 / k as f32).sqrt()));
        let c = bias.then(|| Tensor::f32(vec![out], self.rng.uniform_vec(out, 1.0 / (k as f32).sqrt())));
        let op = Op::Gemm(Gemm { b: w, c, alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true, act: None });
        self.op(name, op, &[x])
    }

    /// `x · W` with a learned, bias-free `W` of `[in, out]` held in a constant node named `<name>.weight`:
    /// a matrix on a skip path as PyTorch exports it (one MatMul, no Transpose).
    pub fn matmul(&mut self, name: &str, x: NodeId, out: usize) -> Result<NodeId, BuildError> {
        let k = self.dim(x, 1)?;
        let w = Tensor::f32(vec![k, out], self.rng.uniform_vec(k * out, 1.0 / (k as f32).sqrt()));
        let w = self.constant(&format!("{name}.weight"), w)?;
        self.op(name, Op::MatMul, &[x, w])
    }

    pub fn relu(&mut self, name: &str, x: NodeId) -> Result<NodeId, BuildError> {
        self.op(name, Op::Relu, &[x])
    }

    pub fn sigmoid(&mut self, name: &str, x: NodeId) -> Result<NodeId, BuildError> {
        self.op(name, Op::Sigmoid, &[x])
    }

    /// y = min(max(x, min), max) (ReLU6 is `clip(x, 0, 6)`).
    pub fn clip(&mut self, name: &str, x: NodeId, min: f32, max: f32) -> Result<NodeId, BuildError> {
        self.op(name, Op::Clip { min, max }, &[x])
    }

    pub fn softmax(&mut self, name: &str, x: NodeId, axis: usize) -> Result<NodeId, BuildError> {
        self.op(name, Op::Softmax { axis }, &[x])
    }

    /// Elementwise `a + b` with broadcasting (a residual sum: the main path first, the skip second).
    pub fn add(&mut self, name: &str, a: NodeId, b: NodeId) -> Result<NodeId, BuildError> {
        self.op(name, Op::Add, &[a, b])
    }

    pub fn sub(&mut self, name: &str, a: NodeId, b: NodeId) -> Result<NodeId, BuildError> {
        self.op(name, Op::Sub, &[a, b])
    }

    pub fn mul(&mut self, name: &str, a: NodeId, b: NodeId) -> Result<NodeId, BuildError> {
        self.op(name, Op::Mul, &[a, b])
    }

    /// An n-ary sum.
    pub fn sum(&mut self, name: &str, xs: &[NodeId]) -> Result<NodeId, BuildError> {
        self.op(name, Op::Sum, xs)
    }

    /// Concatenation along `axis` (axis 1: channels, or features of a `[batch, n]` tensor).
    pub fn concat(&mut self, name: &str, xs: &[NodeId], axis: usize) -> Result<NodeId, BuildError> {
        self.op(name, Op::Concat { axis }, xs)
    }

    fn pool(&mut self, name: &str, x: NodeId, kind: PoolKind, p: Pool2d) -> Result<NodeId, BuildError> {
        let op = Op::Pool(Pool {
            kind,
            kernel: p.kernel,
            strides: p.strides,
            pads: p.pads,
            dilations: [1, 1],
            ceil_mode: p.ceil_mode,
            // ONNX's MaxPool has no such attribute; the importer reads its default, 0.
            count_include_pad: kind == PoolKind::Avg && p.count_include_pad,
            pre: None,
        });
        self.op(name, op, &[x])
    }

    pub fn max_pool(&mut self, name: &str, x: NodeId, p: Pool2d) -> Result<NodeId, BuildError> {
        self.pool(name, x, PoolKind::Max, p)
    }

    pub fn avg_pool(&mut self, name: &str, x: NodeId, p: Pool2d) -> Result<NodeId, BuildError> {
        self.pool(name, x, PoolKind::Avg, p)
    }

    /// Mean over the spatial axes: `[N, C, H, W]` → `[N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, name: &str, x: NodeId) -> Result<NodeId, BuildError> {
        self.op(name, Op::GlobalAvgPool, &[x])
    }

    /// `[d0, …, d(axis−1) | d(axis), …]` → `[∏ before, ∏ after]`.
    pub fn flatten(&mut self, name: &str, x: NodeId, axis: usize) -> Result<NodeId, BuildError> {
        self.op(name, Op::Flatten { axis }, &[x])
    }

    /// Marks `node` as a graph output named `name`.
    pub fn output(&mut self, name: &str, node: NodeId) {
        self.g.outputs.push(Output { name: name.to_string(), node });
    }

    /// Validates the graph, recognizes its skips, and returns both.
    pub fn finish(self) -> Result<(Graph, SkipSummary), BuildError> {
        let mut g = self.g;
        g.validate()?;
        let skips = g.recognize_skips();
        Ok((g, skips))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EdgeKind, SkipKind};

    fn batch(n: usize) -> Vec<Dim> {
        vec![Dim::Sym("batch".into()), Dim::Fixed(n)]
    }

    #[test]
    fn rng_is_deterministic_and_roughly_normal() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let xs: Vec<f32> = (0..20000).map(|_| a.normal()).collect();
        let ys: Vec<f32> = (0..20000).map(|_| b.normal()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn weights_follow_the_seed_and_he_scale() {
        let build = |seed| {
            let mut b = Builder::new(seed);
            let x = b.input("x", vec![Dim::Fixed(1), 64.into(), 8.into(), 8.into()]);
            let c = b.conv("c", x, Conv2d::new(128, 3).pad(1)).unwrap();
            b.output("y", c);
            b.finish().unwrap().0
        };
        let w = |g: &Graph| match &g.node(g.find("c").unwrap()).op {
            Op::Conv(c) => c.weight.as_f32().unwrap().to_vec(),
            _ => unreachable!(),
        };
        let (a, b, c) = (w(&build(3)), w(&build(3)), w(&build(4)));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let var = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / a.len() as f64;
        let want = 2.0 / (64.0 * 9.0);
        assert!((var / want - 1.0).abs() < 0.05, "variance {var}, He gives {want}");
    }

    #[test]
    fn shapes_are_inferred_and_errors_name_the_node() {
        let mut b = Builder::new(0);
        let x = b.input("x", vec![Dim::Sym("batch".into()), 3.into(), 32.into(), 32.into()]);
        let c = b.conv("stem", x, Conv2d::new(8, 7).stride(2).pad(3)).unwrap();
        let p = b.max_pool("pool", c, Pool2d::new(3).stride(2).pad(1)).unwrap();
        assert_eq!(b.ty(p).to_string(), "float32[batch,8,8,8]");
        let f = b.flatten("flat", p, 1).unwrap();
        assert_eq!(b.ty(f).to_string(), "float32[batch,512]");
        let e = b.add("bad", f, c).unwrap_err().to_string();
        assert_eq!(e, "node 'bad' (Add): shapes [batch,512] and [batch,8,16,16] do not broadcast");
        assert_eq!(b.relu("stem", c).unwrap_err().to_string(), "node name 'stem' is used twice");
        let e = b.conv("grouped", x, Conv2d::new(8, 3).group(2)).unwrap_err().to_string();
        assert_eq!(e, "node 'grouped': 3 input channels do not split into 2 groups");
    }

    #[test]
    fn linear_is_a_torch_gemm_and_matmul_skips_are_weighted() {
        let mut b = Builder::new(1);
        let x = b.input("x", batch(16));
        let h1 = b.linear("l1", x, 16, true).unwrap();
        let a1 = b.relu("a1", h1).unwrap();
        let h2 = b.linear("l2", a1, 16, true).unwrap();
        let v = b.matmul("v2", x, 16).unwrap();
        let s = b.add("s2", h2, v).unwrap();
        let a2 = b.relu("a2", s).unwrap();
        b.output("y", a2);
        let (g, skips) = b.finish().unwrap();
        assert_eq!(skips.to_string(), "1 weighted");
        match &g.node(h1).op {
            Op::Gemm(gm) => {
                assert!(gm.trans_b && !gm.trans_a);
                assert_eq!(gm.b.shape, [16, 16]);
                assert_eq!(gm.c.as_ref().unwrap().shape, [16]);
            }
            _ => unreachable!(),
        }
        assert_eq!(g.in_edges(s)[1].2, EdgeKind::Skip(SkipKind::Weighted));
        // Two Linear layers (16·16 + 16 each) and the 16·16 skip matrix.
        assert_eq!(g.param_count(), 2 * (256 + 16) + 256);
    }
}
