//! Lowering: an IR graph becomes a runtime [`Plan`] — one step per op node in topological order, one
//! buffer per tensor, weights laid out as the kernels read them (Gemm's B transposed to `[K, N]`,
//! BatchNorm reduced to a per-channel scale and shift s = γ/√(σ²+ε), t = β − μ·s).
//!
//! The only symbolic dimension the runtime knows is the batch: a graph may use at most one symbol.
//! Fused epilogues (activation, residual operand) become step fields; `memory` then assigns every
//! activation buffer a slot.

pub mod arena;
pub mod memory;

use anyhow::{anyhow, bail, Result};
use resin_ir::op::{Activation, PadMode, PoolKind};
use resin_ir::{Dim, Graph, NodeId, Op};
use resin_runtime::kernels::conv::Conv2d;
use resin_runtime::kernels::elementwise::{BinaryOp, UnaryOp};
use resin_runtime::kernels::pad::PadMode as RtPad;
use resin_runtime::kernels::pool::Pool2d;
use resin_runtime::kernels::winograd;
use resin_runtime::plan::{self, Buffer, BufferKind, ConvStep, GemmStep, Io, Plan, PreStep, Step, StepOp, WeightRange};
use std::collections::HashMap;

/// Weights are aligned to 16 floats (64 bytes) so that a file can be memory-mapped straight into them.
const ALIGN: usize = 16;

struct Lowering {
    plan: Plan,
    batch: Option<String>,
    buffer_of: HashMap<NodeId, usize>,
    /// Lower eligible 3x3 convolutions to Winograd F(2×2, 3×3) or F(4×4, 3×3).
    winograd: bool,
}

/// Choices lowering makes that a user may override.
#[derive(Clone, Copy, Debug)]
pub struct LowerOptions {
    /// 3x3, stride-1 convolutions run as Winograd F(4×4, 3×3) (1/4 of the multiplies) or F(2×2, 3×3)
    /// (4/9) where `winograd::choose` measured it faster than the GEMM path (`--disable winograd` turns
    /// it off).
    pub winograd: bool,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions { winograd: true }
    }
}

impl Lowering {
    fn push_weights(&mut self, data: &[f32]) -> WeightRange {
        let w = self.plan.weights.to_mut();
        w.resize(w.len().div_ceil(ALIGN) * ALIGN, 0.0);
        let offset = w.len();
        w.extend_from_slice(data);
        WeightRange { offset, len: data.len() }
    }

    /// The plan's dims for `shape`, refusing a second dynamic dimension and a shape of more than
    /// [`plan::MAX_SAMPLE_LEN`] elements per sample (which no later size computation could be trusted with).
    fn dims(&mut self, shape: &[Dim], node: &str) -> Result<Vec<plan::Dim>> {
        let per_sample = shape.iter().try_fold(1usize, |a, d| a.checked_mul(d.fixed().unwrap_or(1)));
        if per_sample.is_none_or(|n| n > plan::MAX_SAMPLE_LEN) {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            bail!(
                "node '{node}': shape [{}] has more than {} elements per sample",
                dims.join(","),
                plan::MAX_SAMPLE_LEN
            );
        }
        shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Ok(plan::Dim::Fixed(*n)),
                Dim::Sym(s) => match &self.batch {
                    Some(b) if b != s => {
                        bail!("node '{node}': a second dynamic dimension '{s}' (besides '{b}') is not supported")
                    }
                    _ => {
                        self.batch = Some(s.clone());
                        Ok(plan::Dim::Batch)
                    }
                },
            })
            .collect()
    }

    fn add_buffer(&mut self, shape: Vec<plan::Dim>, kind: BufferKind) -> usize {
        self.plan.buffers.push(Buffer { shape, kind });
        self.plan.buffers.len() - 1
    }
}

fn act(a: Option<Activation>) -> Option<UnaryOp> {
    a.map(|a| match a {
        Activation::Relu => UnaryOp::Relu,
        Activation::Sigmoid => UnaryOp::Sigmoid,
        Activation::Clip { min, max } => UnaryOp::Clip { min, max },
    })
}

fn f32s<'a>(t: &'a resin_ir::Tensor, node: &str) -> Result<&'a [f32]> {
    t.as_f32().ok_or_else(|| anyhow!("node '{node}': an int64 tensor cannot be used as data"))
}

/// Lowers `g` to a plan, memory planned.
pub fn lower(g: &Graph) -> Result<Plan> {
    Ok(lower_with_report(g)?.0)
}

/// [`lower`], also returning what the memory planner did.
pub fn lower_with_report(g: &Graph) -> Result<(Plan, memory::MemoryReport)> {
    lower_with_options(g, &LowerOptions::default())
}

/// [`lower_with_report`] with explicit options.
pub fn lower_with_options(g: &Graph, opts: &LowerOptions) -> Result<(Plan, memory::MemoryReport)> {
    let mut plan = lower_steps(g, opts)?;
    arena::realize_concats(&mut plan);
    let report = memory::plan_memory(&mut plan);
    Ok((plan, report))
}

/// One step per op node and one buffer per tensor; slots not yet assigned.
fn lower_steps(g: &Graph, opts: &LowerOptions) -> Result<Plan> {
    let mut l = Lowering { plan: Plan::default(), batch: None, buffer_of: HashMap::new(), winograd: opts.winograd };
    for id in g.topo_order()? {
        let node = g.node(id);
        let name = node.name.as_str();
        let shape = l.dims(&node.ty.shape, name)?;
        let ins: Vec<usize> = g.inputs_of(id).iter().map(|i| l.buffer_of[i]).collect();
        let op = match &node.op {
            Op::Input => {
                let k =
                    g.inputs.iter().position(|&i| i == id).ok_or_else(|| anyhow!("input '{name}' is not listed"))?;
                let b = l.add_buffer(shape, BufferKind::Input(k));
                l.buffer_of.insert(id, b);
                continue;
            }
            Op::Const(t) => {
                let r = l.push_weights(f32s(t, name)?);
                let b = l.add_buffer(shape, BufferKind::Const(r));
                l.buffer_of.insert(id, b);
                continue;
            }
            Op::Conv(c) => {
                let xs = &g.node(g.inputs_of(id)[0]).ty.shape;
                let cin = xs[1].fixed().ok_or_else(|| anyhow!("node '{name}': unknown input channels"))?;
                let geom = Conv2d {
                    cin,
                    cout: c.out_channels(),
                    kernel: c.kernel(),
                    strides: c.strides,
                    pads: c.pads,
                    dilations: c.dilations,
                    group: c.group,
                };
                let raw = f32s(&c.weight, name)?;
                // The output's spatial size picks the variant (ragged tiles); unknown sizes get none.
                let os = &node.ty.shape;
                let winograd = match (os.get(2).and_then(|d| d.fixed()), os.get(3).and_then(|d| d.fixed())) {
                    (Some(oh), Some(ow)) if l.winograd => winograd::choose(&geom, oh, ow),
                    _ => None,
                };
                let weight = match winograd {
                    Some(v) => l.push_weights(&winograd::transform_weights(&geom, v, raw)),
                    None => l.push_weights(&geom.pack_weights(raw)),
                };
                let bias = match &c.bias {
                    Some(b) => Some(l.push_weights(f32s(b, name)?)),
                    None => None,
                };
                let pre = c.pre.as_ref().map(|p| PreStep {
                    scale: l.push_weights(&p.scale),
                    shift: l.push_weights(&p.shift),
                    act: act(p.act),
                });
                StepOp::Conv(ConvStep { geom, weight, bias, act: act(c.act), residual: ins.len() == 2, pre, winograd })
            }
            Op::BatchNorm(b) => {
                let (g_, beta, mean, var) =
                    (f32s(&b.scale, name)?, f32s(&b.bias, name)?, f32s(&b.mean, name)?, f32s(&b.var, name)?);
                let s: Vec<f32> = g_.iter().zip(var).map(|(&g, &v)| g / (v + b.epsilon).sqrt()).collect();
                let t: Vec<f32> = beta.iter().zip(mean).zip(&s).map(|((&b, &m), &s)| b - m * s).collect();
                StepOp::ChannelAffine { scale: l.push_weights(&s), shift: l.push_weights(&t) }
            }
            Op::Gemm(gm) => {
                let (k, n) = gm.kn();
                let b = f32s(&gm.b, name)?;
                let packed: Vec<f32> =
                    if gm.trans_b { (0..k * n).map(|i| b[(i % n) * k + i / n]).collect() } else { b.to_vec() };
                let weight = l.push_weights(&packed);
                let c = match &gm.c {
                    Some(c) => Some((l.push_weights(f32s(c, name)?), c.shape.clone())),
                    None => None,
                };
                StepOp::Gemm(GemmStep {
                    k,
                    n,
                    trans_a: gm.trans_a,
                    alpha: gm.alpha,
                    weight,
                    c,
                    beta: gm.beta,
                    act: act(gm.act),
                    residual: ins.len() == 2,
                })
            }
            Op::MatMul => StepOp::MatMul,
            Op::Relu => StepOp::Unary(UnaryOp::Relu),
            Op::Sigmoid => StepOp::Unary(UnaryOp::Sigmoid),
            Op::Clip { min, max } => StepOp::Unary(UnaryOp::Clip { min: *min, max: *max }),
            Op::Add => StepOp::Binary(BinaryOp::Add),
            Op::Sub => StepOp::Binary(BinaryOp::Sub),
            Op::Mul => StepOp::Binary(BinaryOp::Mul),
            Op::Div => StepOp::Binary(BinaryOp::Div),
            Op::Sum => StepOp::Sum,
            Op::Pool(p) => {
                let geom = Pool2d {
                    kernel: p.kernel,
                    strides: p.strides,
                    pads: p.pads,
                    dilations: p.dilations,
                    count_include_pad: p.count_include_pad,
                };
                match (p.kind, &p.pre) {
                    (PoolKind::Max, None) => StepOp::MaxPool(geom),
                    (PoolKind::Avg, None) => StepOp::AvgPool(geom),
                    (PoolKind::Avg, Some(pre)) => StepOp::AvgPoolPre {
                        pool: geom,
                        pre: PreStep {
                            scale: l.push_weights(&pre.scale),
                            shift: l.push_weights(&pre.shift),
                            act: act(pre.act),
                        },
                    },
                    (PoolKind::Max, Some(_)) => bail!("node '{name}': a max pool with an input prologue"),
                }
            }
            Op::GlobalAvgPool => StepOp::GlobalAvgPool,
            Op::Softmax { axis } => StepOp::Softmax { axis: *axis },
            Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => StepOp::Copy,
            Op::Concat { axis } => StepOp::Concat { axis: *axis },
            Op::Pad { pads, mode } => StepOp::Pad {
                pads: pads.clone(),
                mode: match mode {
                    PadMode::Constant(v) => RtPad::Constant(*v),
                    PadMode::Reflect => RtPad::Reflect,
                    PadMode::Edge => RtPad::Edge,
                },
            },
        };
        let out = l.add_buffer(shape, BufferKind::Activation { slot: usize::MAX });
        l.buffer_of.insert(id, out);
        l.plan.steps.push(Step { name: name.to_string(), op, inputs: ins, output: out });
    }
    for inp in &g.inputs {
        let name = g.node(*inp).name.clone();
        l.plan.inputs.push(Io { name, buffer: l.buffer_of[inp] });
    }
    for o in &g.outputs {
        l.plan.outputs.push(Io { name: o.name.clone(), buffer: l.buffer_of[&o.node] });
    }
    Ok(l.plan)
}
