//! The training plan: the forward IR graph turned into forward and backward steps over planned memory,
//! with its parameters pulled out of the graph (and written back into it after training).
//!
//! How a graph becomes steps:
//!
//! - **Layers are sums of matrix products.** Every Add/Sum tree whose leaves include products by a constant
//!   matrix (a Gemm, or a MatMul whose right operand is an initializer) becomes one `Linear` step:
//!   z = α·Σ a_i W_i + biases + unweighted addends. The main path's W^{l-1,l}, a highway's weighted skip
//!   V a^{l-2} and a dense MLP's W^{l-k,l} for every k are the layer's matrices, stacked earliest input first
//!   into one parameter `W_cat`; an identity skip is an addend, which adds δ^l to the skipped layer's
//!   gradient with no weight. A MatMul's or Add's constant bias becomes a trainable bias.
//! - **Feature arenas.** With merging on (the default), the activations that several-matrix layers read are
//!   placed side by side in one arena row (in topological order), so a layer whose inputs are consecutive
//!   there reads `a_cat` as one view and its weight gradient α·a_catᵀδ is one product with no copy; any other
//!   layer gathers its inputs into a scratch matrix first (still one product). Only tensors produced and read
//!   by row-wise steps (elementwise ops, Linear, the input) may live in an arena.
//! - Everything else is one step per node ([`StepKind`]): Conv, BatchNormalization (batch statistics),
//!   Relu, Sigmoid, Clip, Mul (gates), Add/Sub/Div, Sum, Concat, MaxPool, AveragePool, GlobalAveragePool,
//!   Flatten/Reshape/Identity. What a training plan cannot run (a Softmax inside the graph, fused epilogues
//!   of an already-optimized graph, a weight fed at run time, broadcasting between two activations) is an
//!   error naming the node.
//!
//! This module owns the translation and the memory layout; the arithmetic is in [`super::steps`].

use super::mem::{Mem, View};
use super::steps::{self, BackCtx, Binary, Ctx, Operand, Param, Step, StepKind, Unary};
use anyhow::{anyhow, bail, Result};
use resin_ir::op::PoolKind;
use resin_ir::{Dim, Graph, NodeId, Op, Tensor, TensorData};
use std::collections::{HashMap, HashSet};

/// How to build a training plan.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Merge each layer's matrices into one product over a feature arena (the spec's single-step update).
    /// Off: one product per matrix (the same numbers; kept to test and time the merged form against).
    pub merge: bool,
    /// Threads for the matrix products.
    pub threads: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { merge: true, threads: 1 }
    }
}

/// Where a parameter's values go back in the graph.
#[derive(Clone, Debug)]
enum Target {
    /// Rows `row0..row0+k` of a `W_cat` ([ΣK, N]) are this Gemm's B (stored `[N, K]` when `trans`).
    GemmB {
        node: NodeId,
        row0: usize,
        k: usize,
        trans: bool,
    },
    GemmC {
        node: NodeId,
    },
    /// Rows of a `W_cat`, or a whole bias, are this Const node's tensor (same element order).
    Const {
        node: NodeId,
        row0: usize,
        k: usize,
    },
    ConvW {
        node: NodeId,
    },
    ConvB {
        node: NodeId,
    },
    BnScale {
        node: NodeId,
    },
    BnBias {
        node: NodeId,
    },
}

/// A compiled training plan for one graph.
pub struct TrainPlan {
    pub params: Vec<Param>,
    targets: Vec<Vec<Target>>,
    steps: Vec<Step>,
    step_nodes: Vec<NodeId>,
    views: Vec<View>,
    /// Per-sample element count of each storage's row.
    store_ld: Vec<usize>,
    vals: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    batch: usize,
    input: usize,
    output: usize,
    out_cols: usize,
    in_shape: Vec<usize>,
    pub threads: usize,
    /// Layers whose input is several tensors under one matrix product (summed matrices, or a Concat), and
    /// how many of those read `a_cat` straight from a feature arena (no copy).
    pub merged_layers: usize,
    pub arena_layers: usize,
    /// Layers and BatchNorms whose Relu or Sigmoid runs inside them ([`steps::Linear::act`]).
    pub fused_activations: usize,
    /// Per step, the gradient columns zeroed just before its backward: those it is the first to add to
    /// (see [`first_writes`]).
    zero_before: Vec<Vec<View>>,
    /// Per step, the values whose gradient its backward writes first and whole: it zeroes each row just
    /// before adding into it, so the plan does not zero them beforehand ([`BackCtx::overwrite`], see
    /// [`overwrite_first_writes`]).
    overwrites: Vec<Vec<usize>>,
    /// When set ([`TrainPlan::profile`]), the time each step took, forward and backward, summed over passes.
    timings: Option<Vec<[std::time::Duration; 2]>>,
}

/// The row stride of a feature arena holding `cols` columns: one cache line more when `cols` is a multiple
/// of 64 floats. A dense MLP's arena of 8 × 256 columns otherwise has an 8 KiB row stride, which puts the
/// rows that a transposed packing or a micro-tile's C reads or writes together in one L1 set.
fn padded_ld(cols: usize) -> usize {
    if cols >= 64 && cols.is_multiple_of(64) {
        cols + 16
    } else {
        cols
    }
}

/// For each step, the gradient columns its backward is the first to add to (steps run backward in reverse
/// order), as views to zero just before it runs. Backward steps add (`+=`) into their inputs' gradients,
/// so every gradient must start at 0: zeroing each one right before its first writer touches it keeps the
/// columns in cache for that writer, where zeroing every storage up front streams the whole gradient
/// memory (tens of MiB for a conv net at batch 32) through DRAM once more per step.
///
/// Tracked per storage column, because views alias: a Concat over side-by-side arena tensors is a window
/// over them, so a layer reading it writes their gradients too. A step's output that no step reads is
/// zeroed before the step itself (its backward reads that δ, and a fused activation rewrites it in place).
/// Other columns no step writes are never zeroed: they are zero from allocation and nothing writes them. The output's columns belong to the loss, which
/// copies ∂L/∂output into them before the backward pass.
fn first_writes(steps: &[Step], views: &[View], store_ld: &[usize], output: usize) -> Vec<Vec<View>> {
    let mut claimed: Vec<Vec<bool>> = store_ld.iter().map(|&ld| vec![false; ld]).collect();
    let o = views[output];
    claimed[o.store][o.off..o.off + o.cols].fill(true);
    let mut out = vec![vec![]; steps.len()];
    for (i, s) in steps.iter().enumerate().rev() {
        // The step's own output first: unclaimed here means no step reads it (a dead output), and its
        // backward still reads δ of it, which a fused activation rewrites in place (a NaN activation would
        // otherwise leave a NaN there for good).
        for v in std::iter::once(s.kind.output()).chain(s.kind.reads()) {
            let v = views[v];
            let cols = &mut claimed[v.store];
            let mut c = v.off;
            while c < v.off + v.cols {
                if cols[c] {
                    c += 1;
                    continue;
                }
                let start = c;
                while c < v.off + v.cols && !cols[c] {
                    cols[c] = true;
                    c += 1;
                }
                out[i].push(View { store: v.store, off: start, ld: v.ld, cols: c - start });
            }
        }
    }
    out
}

/// Lets a layer whose ∂L/∂a_cat product is the first write to every column of `cat` overwrite them
/// ([`steps::Linear::dx_overwrites`]) instead of adding into zeroed columns: those columns leave the
/// layer's zeroing list. Not when an addend's gradient lies in `cat` (the layer adds δ into it before
/// the product).
fn overwrite_first_products(steps: &mut [Step], views: &[View], zero_before: &mut [Vec<View>]) {
    for (s, zs) in steps.iter_mut().zip(zero_before.iter_mut()) {
        let StepKind::Linear(l) = &mut s.kind else { continue };
        let Some(cat) = l.cat.filter(|_| l.merged) else { continue };
        let addend_in_cat = l.addends.iter().any(|&a| overlap(&views[a], &cat));
        if !addend_in_cat && take_if_covered(zs, &cat) {
            l.dx_overwrites = true;
        }
    }
}

/// Removes from a step's zeroing list `zs` the entries inside `v` when they cover every column of `v`
/// (the step then writes those columns first, whole), and says whether it did. The entries are disjoint
/// column ranges, so their widths summing to `v`'s means full coverage.
fn take_if_covered(zs: &mut Vec<View>, v: &View) -> bool {
    let inside = |z: &View| z.store == v.store && z.off >= v.off && z.off + z.cols <= v.off + v.cols;
    let covered: usize = zs.iter().filter(|z| inside(z)).map(|z| z.cols).sum();
    if covered == v.cols {
        zs.retain(|z| !inside(z));
    }
    covered == v.cols
}

/// Lets an elementwise step (BatchNorm, GlobalAveragePool, a unary or binary op) zero the rows of an
/// input's gradient itself, each just before adding into it, when its backward is the first to write
/// every column of that input ([`BackCtx::overwrite`]): those columns leave the step's zeroing list, so
/// the zeros are written into cache right before use instead of by a pass of their own over the whole
/// gradient. Only an input that overlaps neither another input of the step nor its output (x + x adds
/// twice into one gradient).
fn overwrite_first_writes(steps: &[Step], views: &[View], zero_before: &mut [Vec<View>]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]; steps.len()];
    for ((s, zs), ow) in steps.iter().zip(zero_before.iter_mut()).zip(&mut out) {
        if !matches!(
            s.kind,
            StepKind::BatchNorm(_) | StepKind::GlobalAvgPool { .. } | StepKind::Unary { .. } | StepKind::Binary { .. }
        ) {
            continue;
        }
        let reads = s.kind.reads();
        let output = views[s.kind.output()];
        for (i, &r) in reads.iter().enumerate() {
            let v = views[r];
            let alone =
                !overlap(&v, &output) && reads.iter().enumerate().all(|(j, &o)| j == i || !overlap(&v, &views[o]));
            if alone && take_if_covered(zs, &v) {
                ow.push(r);
            }
        }
    }
    out
}

/// Fuses each highway carry y = h ⊙ t + x ⊙ (1 − t), exported as m1 = Mul(h, t), s = Sub(1, t),
/// m2 = Mul(x, s), y = Add(m1, m2) (operands of Mul and Add in either order), into one
/// [`StepKind::Gate`] at the Add's place, when m1, s and m2 are read by the next step of the pattern only,
/// none is the output, and h, t, x are three distinct tensors.
fn fuse_gates(steps: &mut Vec<Step>, step_nodes: &mut Vec<NodeId>, views: &[View], output: usize) {
    let readers = readers(steps, views.len());
    let mut producer = vec![usize::MAX; views.len()];
    for (i, s) in steps.iter().enumerate() {
        producer[s.kind.output()] = i;
    }
    let value = |o: &Operand| match o {
        Operand::Value(v) => Some(*v),
        Operand::Const(_) => None,
    };
    // The step producing `v` when it is a Binary `op`, read only once and not the output. `v` must own its
    // storage: a tensor in a feature arena may also be read through a Concat window, which is no step
    // and so counts no reader.
    let binary = |steps: &[Step], v: usize, op: Binary| -> Option<usize> {
        let i = producer[v];
        let ok = i != usize::MAX && readers[v] == 1 && v != output && owns_storage(&views[v]);
        ok.then_some(i).filter(|&i| matches!(&steps[i].kind, StepKind::Binary { op: o, .. } if *o == op))
    };
    let mut drop = vec![false; steps.len()];
    for j in 0..steps.len() {
        let StepKind::Binary { op: Binary::Add, a: Operand::Value(p), b: Operand::Value(q), out } = &steps[j].kind
        else {
            continue;
        };
        let (p, q, out) = (*p, *q, *out);
        let found = [(p, q), (q, p)].into_iter().find_map(|(m1, m2)| {
            let (i1, i2) = (binary(steps, m1, Binary::Mul)?, binary(steps, m2, Binary::Mul)?);
            let (StepKind::Binary { a: a1, b: b1, .. }, StepKind::Binary { a: a2, b: b2, .. }) =
                (&steps[i1].kind, &steps[i2].kind)
            else {
                return None;
            };
            let (a1, b1, a2, b2) = (value(a1)?, value(b1)?, value(a2)?, value(b2)?);
            // m2 = Mul(x, s) with s = Sub(1, t); m1 = Mul(h, t).
            [(a2, b2), (b2, a2)].into_iter().find_map(|(x, sv)| {
                let i3 = binary(steps, sv, Binary::Sub)?;
                let StepKind::Binary { a: Operand::Const(one), b: Operand::Value(t), .. } = &steps[i3].kind else {
                    return None;
                };
                let h = if a1 == *t {
                    b1
                } else if b1 == *t {
                    a1
                } else {
                    return None;
                };
                // Distinct memory, not only distinct values (a one-input Concat window is its input):
                // backward writes the three gradients' rows at once.
                let apart = |u: usize, w: usize| !overlap(&views[u], &views[w]);
                let distinct = apart(h, *t) && apart(h, x) && apart(*t, x);
                (distinct && one.iter().all(|&c| c == 1.0)).then_some((h, *t, x, [i1, i2, i3]))
            })
        });
        if let Some((h, t, x, gone)) = found {
            if gone.iter().any(|&i| drop[i] || i > j) {
                continue;
            }
            gone.iter().for_each(|&i| drop[i] = true);
            steps[j].kind = StepKind::Gate { h, t, x, out };
        }
    }
    remove_steps(steps, step_nodes, &drop);
}

/// Fuses a Relu or Sigmoid into the layer or BatchNorm before it (see [`steps::Linear::act`]) when that
/// step's output z is read by the activation only, is not the plan's output and owns its storage: the
/// step then writes a = act(z) itself (a merged layer's Relu in its product's epilogue, otherwise in a
/// pass over the rows it just wrote), and z is never stored nor swept again. a may lie in the feature
/// arena the layer's inputs lie in (a dense or highway MLP): the layer packs its inputs before it
/// borrows its output.
fn fuse_activations(steps: &mut Vec<Step>, step_nodes: &mut Vec<NodeId>, views: &[View], output: usize) -> usize {
    let readers = readers(steps, views.len());
    let mut drop = vec![false; steps.len()];
    for j in 0..steps.len() {
        let StepKind::Unary { op, x, out } = steps[j].kind else { continue };
        // z owning its storage: no Concat window (which counts no reader) can read it.
        if !op.fusable() || readers[x] != 1 || x == output || !owns_storage(&views[x]) {
            continue;
        }
        let Some(i) = steps[..j].iter().position(|s| s.kind.output() == x) else { continue };
        let (act, producer_out) = match &mut steps[i].kind {
            StepKind::Linear(l) => (&mut l.act, &mut l.out),
            StepKind::BatchNorm(b) => (&mut b.act, &mut b.out),
            _ => continue,
        };
        if act.is_some() {
            continue;
        }
        *act = Some(op);
        *producer_out = out;
        drop[j] = true;
    }
    remove_steps(steps, step_nodes, &drop);
    drop.iter().filter(|d| **d).count()
}

/// How many steps read each value.
fn readers(steps: &[Step], nvals: usize) -> Vec<usize> {
    let mut n = vec![0usize; nvals];
    for s in steps {
        for v in s.kind.reads() {
            n[v] += 1;
        }
    }
    n
}

/// Removes the steps marked in `drop` (and their node ids).
fn remove_steps(steps: &mut Vec<Step>, step_nodes: &mut Vec<NodeId>, drop: &[bool]) {
    let mut k = drop.iter();
    steps.retain(|_| !*k.next().unwrap());
    let mut k = drop.iter();
    step_nodes.retain(|_| !*k.next().unwrap());
}

/// Whether the tensor has its storage to itself (not a member of a feature arena).
fn owns_storage(v: &View) -> bool {
    v.off == 0 && v.ld == v.cols
}

/// Whether two views share any element: the same storage and overlapping column ranges.
fn overlap(a: &View, b: &View) -> bool {
    a.store == b.store && a.off < b.off + b.cols && b.off < a.off + a.cols
}

/// Runs `f` with a pool of `threads` threads installed (the process-wide one of that size: its workers
/// persist between steps), so that the steps' products and per-image splits run on every thread.
pub fn with_pool<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    if threads > 1 {
        resin_runtime::parallel::global(threads).install(f)
    } else {
        f()
    }
}

/// The product of a shape's dims.
fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// The per-sample dims of a node's output: dims after the batch, all known.
fn sample_shape(g: &Graph, id: NodeId) -> Result<Vec<usize>> {
    let n = g.node(id);
    if n.ty.shape.is_empty() {
        bail!("node '{}' ({}): training needs a batch axis, got a scalar", n.name, n.op.name());
    }
    n.ty.shape[1..]
        .iter()
        .map(|d| d.fixed().ok_or_else(|| anyhow!("node '{}' ({}): dimension '{d}' is not known", n.name, n.op.name())))
        .collect()
}

/// A constant broadcast (NumPy rules) to one sample of `shape` (per-sample dims), or an error when it
/// varies along the batch axis.
fn broadcast_const(t: &Tensor, full_rank: usize, shape: &[usize]) -> Option<Vec<f32>> {
    let data = t.to_f32_vec();
    let r = t.shape.len();
    if r > full_rank || (r == full_rank && t.shape[0] != 1) {
        return None;
    }
    // The constant's dims aligned to the per-sample dims (right-aligned).
    let lead = full_rank - r; // dims of the full shape the constant lacks
    let cs: Vec<usize> = (0..shape.len())
        .map(|i| {
            let full_i = i + 1;
            if full_i < lead {
                1
            } else {
                t.shape[full_i - lead]
            }
        })
        .collect();
    for (c, s) in cs.iter().zip(shape) {
        if *c != 1 && c != s {
            return None;
        }
    }
    let n = numel(shape);
    let mut out = vec![0.0; n];
    let mut idx = vec![0usize; shape.len()];
    for o in out.iter_mut() {
        let mut ci = 0;
        for (k, &i) in idx.iter().enumerate() {
            ci = ci * cs[k] + if cs[k] == 1 { 0 } else { i };
        }
        *o = data[ci];
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Some(out)
}

fn f32_data(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    t.as_f32().map(|d| d.to_vec()).ok_or_else(|| anyhow!("{what} is not float32"))
}

struct Builder<'g> {
    g: &'g Graph,
    opts: PlanOptions,
    values: HashMap<NodeId, usize>,
    shapes: Vec<Vec<usize>>,
    /// The kind of step that produced each value ("input", "rowwise", "other").
    producer_rowwise: Vec<bool>,
    consumer_rowwise: Vec<bool>,
    steps: Vec<Step>,
    step_nodes: Vec<NodeId>,
    params: Vec<Param>,
    targets: Vec<Vec<Target>>,
}

/// A term of a layer: input node, matrix `[K, N]` row-major, where it came from.
struct Term {
    input: NodeId,
    w: Vec<f32>,
    k: usize,
    alpha: f32,
    origin: Target,
    bias: Option<(Vec<f32>, f32, Target)>,
}

impl<'g> Builder<'g> {
    fn value(&mut self, id: NodeId) -> Result<usize> {
        if let Some(&v) = self.values.get(&id) {
            return Ok(v);
        }
        let n = self.g.node(id);
        bail!("node '{}' ({}): its value is not computed by the training plan", n.name, n.op.name())
    }

    fn new_value(&mut self, id: NodeId, rowwise: bool) -> Result<usize> {
        let shape = sample_shape(self.g, id)?;
        let v = self.shapes.len();
        self.shapes.push(shape);
        self.producer_rowwise.push(rowwise);
        self.consumer_rowwise.push(true);
        self.values.insert(id, v);
        Ok(v)
    }

    fn read(&mut self, id: NodeId, rowwise: bool) -> Result<usize> {
        let v = self.value(id)?;
        if !rowwise {
            self.consumer_rowwise[v] = false;
        }
        Ok(v)
    }

    fn add_param(&mut self, name: String, shape: Vec<usize>, data: Vec<f32>, targets: Vec<Target>) -> usize {
        self.params.push(Param::new(name, shape, data));
        self.targets.push(targets);
        self.params.len() - 1
    }

    fn const_of(&self, id: NodeId) -> Option<&'g Tensor> {
        match &self.g.node(id).op {
            Op::Const(t) => Some(t),
            _ => None,
        }
    }

    /// Is `id` a product by a constant matrix that only one node reads (a candidate term of a layer)?
    fn is_term(&self, id: NodeId) -> bool {
        let n = self.g.node(id);
        let single = self.g.consumers(id).len() == 1 && !self.g.outputs.iter().any(|o| o.node == id);
        single
            && match &n.op {
                Op::Gemm(gm) => !gm.trans_a && self.g.inputs_of(id).len() == 1 && gm.act.is_none(),
                Op::MatMul => {
                    let ins = self.g.inputs_of(id);
                    self.const_of(ins[1]).is_some() && self.g.consumers(ins[1]).len() == 1
                }
                _ => false,
            }
    }

    fn term(&self, id: NodeId) -> Result<Term> {
        let n = self.g.node(id);
        let ins = self.g.inputs_of(id);
        let in_shape = sample_shape(self.g, ins[0])?;
        if in_shape.len() != 1 {
            bail!("node '{}' ({}): training needs a [batch, K] left operand, got {}", n.name, n.op.name(), n.ty);
        }
        match &n.op {
            Op::Gemm(gm) => {
                if gm.trans_a {
                    bail!("node '{}' (Gemm): transA is not supported in training", n.name);
                }
                let b = f32_data(&gm.b, &format!("node '{}' (Gemm): B", n.name))?;
                let (k, nn) = gm.kn();
                let w = if gm.trans_b {
                    let mut t = vec![0.0; k * nn];
                    for j in 0..nn {
                        for i in 0..k {
                            t[i * nn + j] = b[j * k + i];
                        }
                    }
                    t
                } else {
                    b
                };
                let bias = match &gm.c {
                    None => None,
                    Some(c) if c.len() == nn => Some((
                        f32_data(c, &format!("node '{}' (Gemm): C", n.name))?,
                        gm.beta,
                        Target::GemmC { node: id },
                    )),
                    Some(c) => bail!(
                        "node '{}' (Gemm): training needs C broadcast along rows ({} values), got shape {:?}",
                        n.name,
                        nn,
                        c.shape
                    ),
                };
                Ok(Term {
                    input: ins[0],
                    w,
                    k,
                    alpha: gm.alpha,
                    origin: Target::GemmB { node: id, row0: 0, k, trans: gm.trans_b },
                    bias,
                })
            }
            Op::MatMul => {
                let t = self.const_of(ins[1]).expect("checked by is_term");
                if t.shape.len() != 2 {
                    bail!("node '{}' (MatMul): training needs a 2-D constant matrix, got {:?}", n.name, t.shape);
                }
                let w = f32_data(t, &format!("node '{}' (MatMul): B", n.name))?;
                Ok(Term {
                    input: ins[0],
                    w,
                    k: t.shape[0],
                    alpha: 1.0,
                    origin: Target::Const { node: ins[1], row0: 0, k: t.shape[0] },
                    bias: None,
                })
            }
            _ => unreachable!(),
        }
    }

    /// Collects the leaves of the Add/Sum tree rooted at `root`: products by constant matrices, constant
    /// biases, and other addends. `absorbed` gets every interior node.
    fn collect_tree(
        &self,
        root: NodeId,
        terms: &mut Vec<NodeId>,
        others: &mut Vec<NodeId>,
        interior: &mut Vec<NodeId>,
    ) {
        for x in self.g.inputs_of(root) {
            let xn = self.g.node(x);
            let single = self.g.consumers(x).len() == 1 && !self.g.outputs.iter().any(|o| o.node == x);
            if matches!(xn.op, Op::Add | Op::Sum) && single && self.g.inputs_of(x).iter().all(|&i| i != x) {
                interior.push(x);
                self.collect_tree(x, terms, others, interior);
            } else if self.is_term(x) {
                terms.push(x);
            } else {
                others.push(x);
            }
        }
    }

    fn push(&mut self, id: NodeId, kind: StepKind) {
        self.steps.push(Step { name: self.g.node(id).name.clone(), kind });
        self.step_nodes.push(id);
    }

    /// One Linear step for the layer at `id` made of `terms` plus `others` (biases and addends).
    fn linear(&mut self, id: NodeId, mut terms: Vec<NodeId>, others: Vec<NodeId>) -> Result<()> {
        let name = self.g.node(id).name.clone();
        let out_shape = sample_shape(self.g, id)?;
        if out_shape.len() != 1 {
            bail!("node '{name}' ({}): training needs a [batch, N] layer output", self.g.node(id).op.name());
        }
        let n = out_shape[0];
        // Earliest input first: the arena's order, and merge_dense_skips' order.
        let order: HashMap<NodeId, usize> = self.values.iter().map(|(&k, &v)| (k, v)).collect();
        let mut made: Vec<Term> = terms.iter().map(|&t| self.term(t)).collect::<Result<_>>()?;
        let mut idx: Vec<usize> = (0..made.len()).collect();
        idx.sort_by_key(|&i| order.get(&made[i].input).copied().unwrap_or(usize::MAX));
        let mut sorted = Vec::new();
        for &i in &idx {
            sorted.push(std::mem::replace(
                &mut made[i],
                Term { input: id, w: vec![], k: 0, alpha: 1.0, origin: Target::GemmC { node: id }, bias: None },
            ));
        }
        terms = idx.iter().map(|&i| terms[i]).collect();
        let alpha = sorted[0].alpha;
        if sorted.iter().any(|t| t.alpha != alpha) {
            bail!("node '{name}': the matrices summed into this layer have different Gemm alphas");
        }
        let mut wcat = Vec::new();
        let mut targets = Vec::new();
        let mut row0 = 0;
        let mut biases = Vec::new();
        let mut inputs = Vec::new();
        let mut widths = Vec::new();
        for (t, &tn) in sorted.into_iter().zip(&terms) {
            if t.w.len() != t.k * n {
                bail!(
                    "node '{}': its matrix has {} columns, the layer has {n}",
                    self.g.node(tn).name,
                    t.w.len() / t.k.max(1)
                );
            }
            wcat.extend_from_slice(&t.w);
            targets.push(match t.origin {
                Target::GemmB { node, k, trans, .. } => Target::GemmB { node, row0, k, trans },
                Target::Const { node, k, .. } => Target::Const { node, row0, k },
                o => o,
            });
            row0 += t.k;
            if let Some((b, beta, tg)) = t.bias {
                let p = self.add_param(format!("{}.bias", self.g.node(tn).name), vec![n], b, vec![tg]);
                biases.push((p, beta));
            }
            inputs.push(self.read(t.input, true)?);
            widths.push(t.k);
        }
        let mut addends = Vec::new();
        for o in others {
            if let Some(c) = self.const_of(o) {
                if c.len() != n || c.shape.len() > 2 || (c.shape.len() == 2 && c.shape[0] != 1) {
                    bail!(
                        "node '{name}': a constant added to the layer must be a bias of {n} values, got shape {:?}",
                        c.shape
                    );
                }
                let data = f32_data(c, &format!("node '{name}': bias"))?;
                let p = self.add_param(
                    self.g.node(o).name.clone(),
                    vec![n],
                    data,
                    vec![Target::Const { node: o, row0: 0, k: 1 }],
                );
                biases.push((p, 1.0));
            } else {
                let v = self.read(o, true)?;
                if self.shapes[v] != out_shape {
                    bail!(
                        "node '{name}': an operand of shape {:?} is added to a layer of shape {:?} (training supports no broadcasting between activations)",
                        self.shapes[v],
                        out_shape
                    );
                }
                addends.push(v);
            }
        }
        let label = terms.iter().map(|&t| self.g.node(t).name.as_str()).collect::<Vec<_>>().join("+");
        let w = self.add_param(label, vec![row0, n], wcat, targets);
        let out = self.new_value(id, false)?;
        let lin = steps::Linear {
            terms: inputs,
            widths,
            cat: None,
            w,
            alpha,
            biases,
            addends,
            out,
            n,
            merged: self.opts.merge,
            act: None,
            dx_overwrites: false,
            gathered: Vec::new(),
            dgathered: Vec::new(),
            gemm: Default::default(),
        };
        self.push(id, StepKind::Linear(lin));
        Ok(())
    }

    fn operand(&mut self, id: NodeId, out: NodeId) -> Result<Operand> {
        if let Some(t) = self.const_of(id) {
            let full = self.g.node(out).ty.rank();
            let shape = sample_shape(self.g, out)?;
            return broadcast_const(t, full, &shape).map(Operand::Const).ok_or_else(|| {
                let n = self.g.node(out);
                anyhow!(
                    "node '{}' ({}): constant of shape {:?} does not broadcast to one sample",
                    n.name,
                    n.op.name(),
                    t.shape
                )
            });
        }
        let v = self.read(id, true)?;
        let want = sample_shape(self.g, out)?;
        if self.shapes[v] != want {
            let n = self.g.node(out);
            bail!(
                "node '{}' ({}): operand of shape {:?} broadcast to {:?} (training broadcasts constants only)",
                n.name,
                n.op.name(),
                self.shapes[v],
                want
            );
        }
        Ok(Operand::Value(v))
    }

    fn node(&mut self, id: NodeId) -> Result<()> {
        let g = self.g;
        let node = g.node(id);
        let ins = g.inputs_of(id);
        let err = |msg: &str| anyhow!("node '{}' ({}): {msg}", node.name, node.label());
        if !node.fused.is_empty() {
            return Err(err("was optimized by compiler passes; train the graph as imported"));
        }
        let kind = match &node.op {
            Op::Input | Op::Const(_) => return Ok(()),
            Op::Gemm(_) | Op::MatMul if self.is_term_any(id) => return self.linear(id, vec![id], vec![]),
            Op::MatMul => {
                return Err(err("training needs the right operand to be an initializer read by this node alone"))
            }
            Op::Gemm(_) => return Err(err("training supports Gemm without transA or a fused residual")),
            Op::Add | Op::Sum => {
                let (mut terms, mut others, mut interior) = (vec![], vec![], vec![]);
                self.collect_tree(id, &mut terms, &mut others, &mut interior);
                if !terms.is_empty() {
                    return self.linear(id, terms, others);
                }
                if matches!(node.op, Op::Add) {
                    let a = self.operand(ins[0], id)?;
                    let b = self.operand(ins[1], id)?;
                    let out = self.new_value(id, true)?;
                    StepKind::Binary { op: Binary::Add, a, b, out }
                } else {
                    let xs = ins.iter().map(|&x| self.operand(x, id)).collect::<Result<Vec<_>>>()?;
                    let xs = xs
                        .into_iter()
                        .map(|o| match o {
                            Operand::Value(v) => Ok(v),
                            Operand::Const(_) => Err(err("a constant operand of Sum is not supported in training")),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let out = self.new_value(id, true)?;
                    StepKind::Sum { xs, out }
                }
            }
            Op::Sub | Op::Mul | Op::Div => {
                let op = match node.op {
                    Op::Sub => Binary::Sub,
                    Op::Mul => Binary::Mul,
                    _ => Binary::Div,
                };
                let a = self.operand(ins[0], id)?;
                let b = self.operand(ins[1], id)?;
                let out = self.new_value(id, true)?;
                StepKind::Binary { op, a, b, out }
            }
            Op::Relu | Op::Sigmoid | Op::Clip { .. } | Op::Identity | Op::Flatten { .. } | Op::Reshape { .. } => {
                let op = match node.op {
                    Op::Relu => Unary::Relu,
                    Op::Sigmoid => Unary::Sigmoid,
                    Op::Clip { min, max } => Unary::Clip { min, max },
                    _ => Unary::Copy,
                };
                if matches!(node.op, Op::Flatten { .. } | Op::Reshape { .. }) {
                    let keeps_batch = node.ty.shape.first() == g.node(ins[0]).ty.shape.first();
                    if !keeps_batch {
                        return Err(err("training needs the batch axis kept as axis 0"));
                    }
                }
                let x = self.read(ins[0], true)?;
                let out = self.new_value(id, true)?;
                StepKind::Unary { op, x, out }
            }
            Op::Conv(c) => {
                if c.act.is_some() || c.pre.is_some() || ins.len() > 1 {
                    return Err(err("was optimized by compiler passes; train the graph as imported"));
                }
                let xs = sample_shape(g, ins[0])?;
                let os = sample_shape(g, id)?;
                if xs.len() != 3 {
                    return Err(err("training needs a [batch, C, H, W] input"));
                }
                let name = node.name.clone();
                let wdata = f32_data(&c.weight, &format!("node '{name}' (Conv): W"))?;
                let w = self.add_param(
                    format!("{name}.weight"),
                    c.weight.shape.clone(),
                    wdata,
                    vec![Target::ConvW { node: id }],
                );
                let b = match &c.bias {
                    Some(b) => {
                        let d = f32_data(b, &format!("node '{name}' (Conv): B"))?;
                        Some(self.add_param(
                            format!("{name}.bias"),
                            b.shape.clone(),
                            d,
                            vec![Target::ConvB { node: id }],
                        ))
                    }
                    None => None,
                };
                let x = self.read(ins[0], false)?;
                let out = self.new_value(id, false)?;
                StepKind::Conv(steps::Conv {
                    x,
                    out,
                    w,
                    b,
                    chw: [xs[0], xs[1], xs[2]],
                    m: c.out_channels(),
                    k: c.kernel(),
                    o: [os[1], os[2]],
                    strides: c.strides,
                    pads: [c.pads[0], c.pads[1]],
                    dil: c.dilations,
                    group: c.group,
                    bufs: Default::default(),
                })
            }
            Op::BatchNorm(bn) => {
                let xs = sample_shape(g, ins[0])?;
                let c = xs[0];
                let name = node.name.clone();
                let get = |t: &Tensor, what: &str| f32_data(t, &format!("node '{name}' (BatchNormalization): {what}"));
                let scale = get(&bn.scale, "scale")?;
                let bias = get(&bn.bias, "bias")?;
                let mean = get(&bn.mean, "mean")?;
                let var = get(&bn.var, "var")?;
                let scale = self.add_param(format!("{name}.scale"), vec![c], scale, vec![Target::BnScale { node: id }]);
                let bias = self.add_param(format!("{name}.bias"), vec![c], bias, vec![Target::BnBias { node: id }]);
                let x = self.read(ins[0], false)?;
                let out = self.new_value(id, false)?;
                StepKind::BatchNorm(steps::BatchNorm {
                    x,
                    out,
                    scale,
                    bias,
                    c,
                    s: numel(&xs[1..]),
                    eps: bn.epsilon,
                    momentum: 0.1,
                    running_mean: mean,
                    running_var: var,
                    mean: vec![],
                    partial: vec![],
                    inv_std: vec![],
                    act: None,
                })
            }
            Op::Pool(p) => {
                if p.pre.is_some() {
                    return Err(err("was optimized by compiler passes; train the graph as imported"));
                }
                let xs = sample_shape(g, ins[0])?;
                let os = sample_shape(g, id)?;
                if xs.len() != 3 {
                    return Err(err("training needs a [batch, C, H, W] input"));
                }
                let x = self.read(ins[0], false)?;
                let out = self.new_value(id, false)?;
                StepKind::Pool(steps::Pool {
                    x,
                    out,
                    max: p.kind == PoolKind::Max,
                    chw: [xs[0], xs[1], xs[2]],
                    o: [os[1], os[2]],
                    k: p.kernel,
                    strides: p.strides,
                    pads: p.pads,
                    dil: p.dilations,
                    count_include_pad: p.count_include_pad,
                    arg: vec![],
                })
            }
            Op::GlobalAvgPool => {
                let xs = sample_shape(g, ins[0])?;
                let x = self.read(ins[0], false)?;
                let out = self.new_value(id, false)?;
                StepKind::GlobalAvgPool { x, out, c: xs[0], s: numel(&xs[1..]) }
            }
            Op::Concat { axis } => {
                if *axis == 0 {
                    return Err(err("training cannot concatenate along the batch axis"));
                }
                let os = sample_shape(g, id)?;
                let outer = numel(&os[..axis - 1]);
                let mut xs = Vec::new();
                for &i in &ins {
                    let v = self.operand(i, i)?;
                    let Operand::Value(v) = v else {
                        return Err(err("a constant operand of Concat is not supported in training"));
                    };
                    xs.push((v, numel(&self.shapes[v]) / outer.max(1)));
                }
                let out = self.new_value(id, true)?;
                StepKind::Concat { xs, out, outer }
            }
            Op::Softmax { .. } => {
                return Err(err(
                    "a Softmax inside the graph is not trained; export the logits (the loss applies softmax)",
                ))
            }
            Op::Pad { .. } => return Err(err("Pad is not supported in training")),
        };
        self.push(id, kind);
        Ok(())
    }

    fn is_term_any(&self, id: NodeId) -> bool {
        let n = self.g.node(id);
        match &n.op {
            Op::Gemm(gm) => !gm.trans_a && self.g.inputs_of(id).len() == 1,
            Op::MatMul => {
                let ins = self.g.inputs_of(id);
                self.const_of(ins[1]).is_some() && self.g.consumers(ins[1]).len() == 1
            }
            _ => false,
        }
    }
}

impl TrainPlan {
    /// Builds the training plan of `g` (a graph as imported: one input, one output, batch as axis 0).
    pub fn new(g: &Graph, opts: &PlanOptions) -> Result<TrainPlan> {
        g.validate().map_err(|e| anyhow!("invalid graph: {e}"))?;
        if g.inputs.len() != 1 || g.outputs.len() != 1 {
            bail!("training needs one input and one output, the graph has {} and {}", g.inputs.len(), g.outputs.len());
        }
        let order = g.topo_order()?;
        let batch_dim = g.node(g.inputs[0]).ty.shape.first().cloned();
        if !matches!(batch_dim, Some(Dim::Sym(_))) && !matches!(batch_dim, Some(Dim::Fixed(_))) {
            bail!("the input has no batch axis");
        }
        let mut b = Builder {
            g,
            opts: opts.clone(),
            values: HashMap::new(),
            shapes: vec![],
            producer_rowwise: vec![],
            consumer_rowwise: vec![],
            steps: vec![],
            step_nodes: vec![],
            params: vec![],
            targets: vec![],
        };
        // Nodes absorbed into a layer (its products and the interior of its Add tree) are computed by the
        // Linear step at the tree's root. Roots are found from the outputs back.
        let mut absorbed: HashSet<NodeId> = HashSet::new();
        for &id in order.iter().rev() {
            if absorbed.contains(&id) || !matches!(g.node(id).op, Op::Add | Op::Sum) {
                continue;
            }
            let (mut terms, mut others, mut interior) = (vec![], vec![], vec![]);
            b.collect_tree(id, &mut terms, &mut others, &mut interior);
            if !terms.is_empty() {
                absorbed.extend(terms);
                absorbed.extend(interior);
            }
        }
        let input = b.new_value(g.inputs[0], true)?;
        for &id in &order {
            if absorbed.contains(&id) || id == g.inputs[0] {
                continue;
            }
            b.node(id)?;
        }
        let out_node = g.outputs[0].node;
        let output = b.value(out_node)?;
        b.consumer_rowwise[output] = false; // the loss reads it whole; keep it contiguous
        let out_shape = b.shapes[output].clone();
        if out_shape.len() != 1 {
            bail!("training needs a [batch, classes] output, got {}", g.node(out_node).ty);
        }
        // Memory: an arena for the inputs of several-matrix layers and of feature concatenations (a dense
        // MLP written with Concat), own storage for everything else.
        let nvals = b.shapes.len();
        let mut arena_member = vec![false; nvals];
        let is_output = |v: usize| v == output;
        if opts.merge {
            for s in &b.steps {
                let members: Vec<usize> = match &s.kind {
                    StepKind::Linear(l) if l.terms.len() >= 2 => l.terms.clone(),
                    StepKind::Concat { xs, out, outer: 1 } if b.shapes[*out].len() == 1 => {
                        xs.iter().map(|x| x.0).collect()
                    }
                    _ => vec![],
                };
                for t in members {
                    arena_member[t] =
                        b.producer_rowwise[t] && b.consumer_rowwise[t] && b.shapes[t].len() == 1 && !is_output(t);
                }
            }
        }
        let arena_ld = padded_ld((0..nvals).filter(|&v| arena_member[v]).map(|v| numel(&b.shapes[v])).sum());
        let mut views = Vec::with_capacity(nvals);
        let mut store_ld = Vec::new();
        let arena_store = if arena_ld > 0 {
            store_ld.push(arena_ld);
            Some(0)
        } else {
            None
        };
        let mut off = 0;
        #[allow(clippy::needless_range_loop)]
        for v in 0..nvals {
            let cols = numel(&b.shapes[v]);
            if arena_member[v] {
                views.push(View { store: arena_store.unwrap(), off, ld: arena_ld, cols });
                off += cols;
            } else {
                views.push(View { store: store_ld.len(), off: 0, ld: cols, cols });
                store_ld.push(cols);
            }
        }
        // A concatenation of tensors that lie side by side in the arena is that arena window: no step, no
        // copy, and its gradient is theirs.
        let consecutive = |views: &[View], xs: &[usize]| {
            let first = views[xs[0]];
            let mut expect = first.off;
            xs.iter().all(|&t| {
                let v = views[t];
                let ok = arena_member[t] && v.store == first.store && v.off == expect;
                expect += v.cols;
                ok
            })
        };
        let mut aliased = 0;
        let mut keep = vec![true; b.steps.len()];
        for (i, s) in b.steps.iter().enumerate() {
            if let StepKind::Concat { xs, out, outer: 1 } = &s.kind {
                let ins: Vec<usize> = xs.iter().map(|x| x.0).collect();
                if opts.merge && b.consumer_rowwise[*out] && !is_output(*out) && consecutive(&views, &ins) {
                    let first = views[ins[0]];
                    views[*out] =
                        View { store: first.store, off: first.off, ld: first.ld, cols: numel(&b.shapes[*out]) };
                    keep[i] = false;
                    aliased += 1;
                }
            }
        }
        let mut k = keep.iter();
        b.steps.retain(|_| *k.next().unwrap());
        let mut k = keep.iter();
        b.step_nodes.retain(|_| *k.next().unwrap());
        let fused_activations = fuse_activations(&mut b.steps, &mut b.step_nodes, &views, output);
        fuse_gates(&mut b.steps, &mut b.step_nodes, &views, output);
        let (mut merged_layers, mut arena_layers) = (aliased, aliased);
        for s in &mut b.steps {
            if let StepKind::Linear(l) = &mut s.kind {
                if l.merged && l.terms.len() == 1 {
                    // One matrix: its input is read where it lies (an arena window after a Concat, or its own).
                    l.cat = Some(views[l.terms[0]]);
                }
                if l.merged && l.terms.len() >= 2 {
                    merged_layers += 1;
                    let first = views[l.terms[0]];
                    let mut expect = first.off;
                    let side_by_side = l.terms.iter().all(|&t| {
                        let v = views[t];
                        let ok = arena_member[t] && v.off == expect;
                        expect += v.cols;
                        ok
                    });
                    if side_by_side {
                        l.cat = Some(View {
                            store: first.store,
                            off: first.off,
                            ld: first.ld,
                            cols: l.widths.iter().sum(),
                        });
                        arena_layers += 1;
                    }
                }
            }
        }
        let in_shape = b.shapes[input].clone();
        let mut plan = TrainPlan {
            params: b.params,
            targets: b.targets,
            steps: b.steps,
            step_nodes: b.step_nodes,
            views,
            store_ld,
            vals: vec![],
            grads: vec![],
            batch: 0,
            input,
            output,
            out_cols: out_shape[0],
            in_shape,
            threads: opts.threads.max(1),
            merged_layers,
            arena_layers,
            fused_activations,
            zero_before: vec![],
            overwrites: vec![],
            timings: None,
        };
        plan.zero_before = first_writes(&plan.steps, &plan.views, &plan.store_ld, plan.output);
        overwrite_first_products(&mut plan.steps, &plan.views, &mut plan.zero_before);
        plan.overwrites = overwrite_first_writes(&plan.steps, &plan.views, &mut plan.zero_before);
        plan.set_batch(1);
        Ok(plan)
    }

    /// Sizes the storages for batches of `batch` samples (no work when it is already so).
    pub fn set_batch(&mut self, batch: usize) {
        if batch == self.batch {
            return;
        }
        self.batch = batch;
        self.vals = self.store_ld.iter().map(|&ld| vec![0.0; ld * batch]).collect();
        self.grads = self.store_ld.iter().map(|&ld| vec![0.0; ld * batch]).collect();
    }

    /// Elements of one input sample, and its shape (without the batch).
    pub fn input_shape(&self) -> &[usize] {
        &self.in_shape
    }

    /// Number of outputs per sample (classes).
    pub fn output_cols(&self) -> usize {
        self.out_cols
    }

    /// Number of steps (one per layer or op).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the forward pass on `x` (`batch × input` values, row-major) and returns the outputs
    /// (`batch × classes`). `training` selects batch statistics for BatchNorm and keeps what backward needs.
    pub fn forward(&mut self, x: &[f32], training: bool) -> Result<Vec<f32>> {
        let cols = numel(&self.in_shape);
        if cols == 0 || !x.len().is_multiple_of(cols) || x.is_empty() {
            bail!("input has {} values, not a whole number of samples of {cols}", x.len());
        }
        self.set_batch(x.len() / cols);
        let mem = Mem::new(&mut self.vals, self.batch);
        let iv = self.views[self.input];
        for r in 0..self.batch {
            mem.row_mut(&iv, r).copy_from_slice(&x[r * cols..(r + 1) * cols]);
        }
        let mut cx = Ctx { views: &self.views, vals: &mem, params: &mut self.params, threads: self.threads, training };
        let steps = &mut self.steps;
        let timings = &mut self.timings;
        with_pool(self.threads, || {
            for (i, s) in steps.iter_mut().enumerate() {
                let t0 = timings.is_some().then(std::time::Instant::now);
                s.forward(&mut cx);
                if let (Some(t), Some(t0)) = (timings.as_mut(), t0) {
                    t[i][0] += t0.elapsed();
                }
            }
        });
        let ov = self.views[self.output];
        Ok((0..self.batch).flat_map(|r| mem.row(&ov, r).to_vec()).collect())
    }

    /// Runs the backward pass from `dout` = ∂L/∂output (`batch × classes`), after a training
    /// [`forward`](Self::forward): fills every parameter's `grad`.
    pub fn backward(&mut self, dout: &[f32]) -> Result<()> {
        self.backward_with(dout, None)
    }

    /// [`backward`](Self::backward) that also applies plain SGD with learning rate `lr` where a step can
    /// do it inside its weight-gradient product (see [`BackCtx::sgd`]): those parameters are updated and
    /// flagged [`Param::updated`], their `grad` left unwritten; the others get their `grad` as usual, for
    /// the optimizer's step.
    pub fn backward_sgd(&mut self, dout: &[f32], lr: f32) -> Result<()> {
        self.backward_with(dout, Some(lr))
    }

    fn backward_with(&mut self, dout: &[f32], sgd: Option<f32>) -> Result<()> {
        if dout.len() != self.batch * self.out_cols {
            bail!("output gradient has {} values, expected {}", dout.len(), self.batch * self.out_cols);
        }
        let vals = Mem::new(&mut self.vals, self.batch);
        let grads = Mem::new(&mut self.grads, self.batch);
        let ov = self.views[self.output];
        for r in 0..self.batch {
            grads.row_mut(&ov, r).copy_from_slice(&dout[r * self.out_cols..(r + 1) * self.out_cols]);
        }
        let mut cx = BackCtx {
            views: &self.views,
            vals: &vals,
            grads: &grads,
            params: &mut self.params,
            threads: self.threads,
            sgd,
            overwrite: &[],
        };
        let (steps, zero_before, overwrites) = (&mut self.steps, &self.zero_before, &self.overwrites);
        let timings = &mut self.timings;
        with_pool(self.threads, || {
            for (i, ((s, zs), ow)) in steps.iter_mut().zip(zero_before).zip(overwrites).enumerate().rev() {
                let t0 = timings.is_some().then(std::time::Instant::now);
                for z in zs {
                    cx.grads.zero_view(z);
                }
                cx.overwrite = ow;
                s.backward(&mut cx);
                if let (Some(t), Some(t0)) = (timings.as_mut(), t0) {
                    t[i][1] += t0.elapsed();
                }
            }
        });
        Ok(())
    }

    /// The gradient of the loss with respect to the input of the last backward pass (`batch × input`).
    pub fn input_grad(&mut self) -> Vec<f32> {
        let grads = Mem::new(&mut self.grads, self.batch);
        let iv = self.views[self.input];
        (0..self.batch).flat_map(|r| grads.row(&iv, r).to_vec()).collect()
    }

    /// Starts (or restarts) timing every step, forward and backward, for [`TrainPlan::profile_report`].
    pub fn profile(&mut self) {
        self.timings = Some(vec![Default::default(); self.steps.len()]);
    }

    /// The time of the passes run since [`TrainPlan::profile`], by step kind: one line per kind with its
    /// forward and backward milliseconds and share of the total, largest first; `None` when not profiling.
    pub fn profile_report(&self) -> Option<String> {
        let t = self.timings.as_ref()?;
        let mut m: std::collections::BTreeMap<&str, [f64; 2]> = Default::default();
        for (s, d) in self.steps.iter().zip(t) {
            let e = m.entry(Self::kind_name(s)).or_default();
            e[0] += d[0].as_secs_f64() * 1e3;
            e[1] += d[1].as_secs_f64() * 1e3;
        }
        let total: f64 = m.values().map(|v| v[0] + v[1]).sum::<f64>().max(f64::MIN_POSITIVE);
        let mut rows: Vec<_> = m.into_iter().collect();
        rows.sort_by(|a, b| (b.1[0] + b.1[1]).total_cmp(&(a.1[0] + a.1[1])));
        let mut out = format!("{:<14} {:>10} {:>10} {:>7}\n", "step kind", "fwd ms", "bwd ms", "share");
        for (k, [f, b]) in rows {
            out += &format!("{k:<14} {f:>10.2} {b:>10.2} {:>6.1}%\n", 100.0 * (f + b) / total);
        }
        Some(out)
    }

    fn kind_name(s: &Step) -> &'static str {
        match &s.kind {
            StepKind::Linear(_) => "linear",
            StepKind::Conv(_) => "conv",
            StepKind::BatchNorm(_) => "batchnorm",
            StepKind::Pool(p) if p.max => "maxpool",
            StepKind::Pool(_) => "avgpool",
            StepKind::GlobalAvgPool { .. } => "globalavgpool",
            StepKind::Unary { .. } => "unary",
            StepKind::Binary { .. } => "binary",
            StepKind::Gate { .. } => "gate",
            StepKind::Sum { .. } => "sum",
            StepKind::Concat { .. } => "concat",
        }
    }

    /// Steps by kind, e.g. `linear 7 (5 merged, 5 over an arena)`, for reports.
    pub fn describe(&self) -> String {
        let mut m: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &self.steps {
            let k = Self::kind_name(s);
            *m.entry(k).or_default() += 1;
        }
        let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "{} steps ({}); {} layers with merged matrices, {} reading a_cat from a feature arena, {} with a fused activation; {} parameters",
            self.steps.len(),
            parts.join(", "),
            self.merged_layers,
            self.arena_layers,
            self.fused_activations,
            self.params.iter().map(|p| p.data.len()).sum::<usize>()
        )
    }

    /// Writes the trained parameters and BatchNorm running statistics back into `g` (the graph the plan was
    /// built from), so that it can be exported or compiled.
    pub fn write_back(&self, g: &mut Graph) -> Result<()> {
        for (p, targets) in self.params.iter().zip(&self.targets) {
            let n = *p.shape.last().unwrap_or(&1);
            for t in targets {
                match *t {
                    Target::GemmB { node, row0, k, trans } => {
                        let rows = &p.data[row0 * n..(row0 + k) * n];
                        let Op::Gemm(gm) = &mut g.node_mut(node).op else {
                            bail!("graph changed since the plan was built")
                        };
                        let data = if trans {
                            let mut t = vec![0.0; k * n];
                            for i in 0..k {
                                for j in 0..n {
                                    t[j * k + i] = rows[i * n + j];
                                }
                            }
                            t
                        } else {
                            rows.to_vec()
                        };
                        gm.b.data = TensorData::F32(data);
                    }
                    Target::GemmC { node } => {
                        let Op::Gemm(gm) = &mut g.node_mut(node).op else {
                            bail!("graph changed since the plan was built")
                        };
                        if let Some(c) = &mut gm.c {
                            c.data = TensorData::F32(p.data.clone());
                        }
                    }
                    Target::Const { node, row0, k } => {
                        let Op::Const(c) = &mut g.node_mut(node).op else {
                            bail!("graph changed since the plan was built")
                        };
                        let len = c.len();
                        let start = if p.shape.len() == 2 { row0 * n } else { 0 };
                        let _ = k;
                        c.data = TensorData::F32(p.data[start..start + len].to_vec());
                    }
                    Target::ConvW { node } | Target::ConvB { node } => {
                        let Op::Conv(cv) = &mut g.node_mut(node).op else {
                            bail!("graph changed since the plan was built")
                        };
                        let dst =
                            if matches!(t, Target::ConvW { .. }) { Some(&mut cv.weight) } else { cv.bias.as_mut() };
                        if let Some(d) = dst {
                            d.data = TensorData::F32(p.data.clone());
                        }
                    }
                    Target::BnScale { node } | Target::BnBias { node } => {
                        let Op::BatchNorm(bn) = &mut g.node_mut(node).op else {
                            bail!("graph changed since the plan was built")
                        };
                        let dst = if matches!(t, Target::BnScale { .. }) { &mut bn.scale } else { &mut bn.bias };
                        dst.data = TensorData::F32(p.data.clone());
                    }
                }
            }
        }
        for (s, &node) in self.steps.iter().zip(&self.step_nodes) {
            if let StepKind::BatchNorm(b) = &s.kind {
                let Op::BatchNorm(bn) = &mut g.node_mut(node).op else {
                    bail!("graph changed since the plan was built")
                };
                bn.mean.data = TensorData::F32(b.running_mean.clone());
                bn.var.data = TensorData::F32(b.running_var.clone());
            }
        }
        Ok(())
    }

    /// The BatchNorm running statistics, by node name (mean, var), for tests and reports.
    pub fn running_stats(&self) -> Vec<(String, Vec<f32>, Vec<f32>)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::BatchNorm(b) => Some((s.name.clone(), b.running_mean.clone(), b.running_var.clone())),
                _ => None,
            })
            .collect()
    }
}
