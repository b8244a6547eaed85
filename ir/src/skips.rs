//! Skip recognition: marks the edges of a faithfully imported graph that bypass layers.
//!
//! A *sum group* is a maximal tree of Add/Sum nodes (inner nodes with one consumer), seen as one n-ary
//! sum. Each operand is traced back to its *source* by stripping what a skip path may apply:
//! - nothing: an **identity** skip, S(a) = a;
//! - a projection — a 1x1 Conv (optionally followed by BatchNorm), a MatMul with a constant operand, or a
//!   Gemm — with one consumer: a **weighted** skip, S(a) = W a;
//! - a Mul by a gate: a **gated** skip, S(a) = a ⊙ g.
//!
//! The operand whose source is deepest is the main path; every other operand whose source is a strict
//! ancestor of the main operand's source bypasses layers and its edge into the group becomes a skip edge
//! (parallel branches from one tensor are not skips). A layer fed through matrices by two or more earlier
//! layers makes the network densely connected: then all its weighted skips are **dense**.
//!
//! For concatenation (DenseNet) the deepest operand of a Concat is the data input and every operand that
//! is an ancestor of it is a **dense** skip; Concats that share their earliest operand form a dense block
//! whose layer count is the widest Concat's operand count minus one.

use crate::graph::{EdgeKind, Graph, NodeId, SkipKind};
use crate::op::Op;
use std::collections::HashMap;

/// What recognition found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipSummary {
    pub identity: usize,
    pub weighted: usize,
    pub gated: usize,
    pub dense: usize,
    /// Layers per dense block, in graph order.
    pub dense_blocks: Vec<usize>,
}

impl SkipSummary {
    pub fn total(&self) -> usize {
        self.identity + self.weighted + self.gated + self.dense
    }
}

impl std::fmt::Display for SkipSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.total() == 0 {
            return f.write_str("none (a plain network)");
        }
        let mut parts = Vec::new();
        for (n, k) in
            [(self.identity, "identity"), (self.weighted, "weighted"), (self.gated, "gated"), (self.dense, "dense")]
        {
            if n > 0 {
                parts.push(format!("{n} {k}"));
            }
        }
        write!(f, "{}", parts.join(" + "))?;
        if !self.dense_blocks.is_empty() {
            let sizes: Vec<String> = self.dense_blocks.iter().map(|b| b.to_string()).collect();
            write!(f, "; {} dense blocks of {} layers", self.dense_blocks.len(), sizes.join(", "))?;
        }
        Ok(())
    }
}

/// Reachability over a DAG: `anc[n]` is the bitset of strict ancestors of `n`.
struct Ancestry {
    index: HashMap<NodeId, usize>,
    words: usize,
    bits: Vec<u64>,
    depth: Vec<usize>,
}

impl Ancestry {
    fn new(g: &Graph, order: &[NodeId]) -> Self {
        let index: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let words = order.len().div_ceil(64);
        let mut bits = vec![0u64; words * order.len()];
        let mut depth = vec![0usize; order.len()];
        for (i, &n) in order.iter().enumerate() {
            for p in g.inputs_of(n) {
                let j = index[&p];
                depth[i] = depth[i].max(depth[j] + 1);
                bits[i * words + j / 64] |= 1 << (j % 64);
                for w in 0..words {
                    bits[i * words + w] |= bits[j * words + w];
                }
            }
        }
        Ancestry { index, words, bits, depth }
    }
    /// Is `a` a strict ancestor of `b`?
    fn is_ancestor(&self, a: NodeId, b: NodeId) -> bool {
        let (i, j) = (self.index[&a], self.index[&b]);
        self.bits[j * self.words + i / 64] & (1 << (i % 64)) != 0
    }
    fn depth(&self, n: NodeId) -> usize {
        self.depth[self.index[&n]]
    }
}

fn is_const(g: &Graph, n: NodeId) -> bool {
    matches!(g.node(n).op, Op::Const(_))
}

/// Traces an operand of a sum back through what a skip path may apply: (kind, source).
fn strip(g: &Graph, anc: &Ancestry, operand: NodeId) -> (SkipKind, NodeId) {
    let single = |n: NodeId| g.consumers(n).len() == 1;
    let mut n = operand;
    if !single(n) {
        return (SkipKind::Identity, operand);
    }
    while matches!(g.node(n).op, Op::Identity) && single(n) {
        n = g.inputs_of(n)[0];
    }
    let operand = n;
    if matches!(g.node(n).op, Op::BatchNorm(_)) {
        let p = g.inputs_of(n)[0];
        if matches!(&g.node(p).op, Op::Conv(c) if c.kernel() == [1, 1]) && single(p) {
            n = p;
        }
    }
    match &g.node(n).op {
        Op::Conv(c) if c.kernel() == [1, 1] => return (SkipKind::Weighted, g.inputs_of(n)[0]),
        Op::Gemm(_) => return (SkipKind::Weighted, g.inputs_of(n)[0]),
        Op::MatMul => {
            let ins = g.inputs_of(n);
            if let Some(&x) = ins.iter().find(|&&i| !is_const(g, i)) {
                if ins.iter().any(|&i| is_const(g, i)) {
                    return (SkipKind::Weighted, x);
                }
            }
        }
        Op::Mul => {
            let ins: Vec<NodeId> = g.inputs_of(n).into_iter().filter(|&i| !is_const(g, i)).collect();
            if ins.len() == 2 {
                let src = if anc.depth(ins[0]) <= anc.depth(ins[1]) { ins[0] } else { ins[1] };
                return (SkipKind::Gated, src);
            }
        }
        _ => {}
    }
    (SkipKind::Identity, operand)
}

/// The operands of the sum group rooted at `root`, as (edge target, port, operand).
fn sum_operands(g: &Graph, root: NodeId, out: &mut Vec<(NodeId, usize, NodeId)>) {
    for (port, src, _) in g.in_edges(root) {
        let inner = matches!(g.node(src).op, Op::Add | Op::Sum) && g.consumers(src).len() == 1;
        if inner {
            sum_operands(g, src, out);
        } else {
            out.push((root, port, src));
        }
    }
}

impl Graph {
    /// Marks skip edges (see the module doc) and returns what was found. Idempotent: existing skip
    /// marks are cleared first.
    pub fn recognize_skips(&mut self) -> SkipSummary {
        let Ok(order) = self.topo_order() else { return SkipSummary::default() };
        for e in self.g.edge_weights_mut() {
            e.kind = EdgeKind::Data;
        }
        let anc = Ancestry::new(self, &order);
        let mut summary = SkipSummary::default();
        let mut marks: Vec<(NodeId, NodeId, usize, SkipKind)> = Vec::new();
        let mut dense_net = false;
        let is_sum = |g: &Graph, n: NodeId| matches!(g.node(n).op, Op::Add | Op::Sum);

        for &n in &order {
            // Sum groups, visited at their root (an Add/Sum that is not an inner node of another group).
            if is_sum(self, n) {
                let cons = self.consumers(n);
                let inner = cons.len() == 1 && is_sum(self, cons[0]);
                if !inner {
                    let mut ops = Vec::new();
                    sum_operands(self, n, &mut ops);
                    let traced: Vec<(SkipKind, NodeId)> = ops.iter().map(|o| strip(self, &anc, o.2)).collect();
                    let main = (0..ops.len())
                        .filter(|&i| !is_const(self, ops[i].2))
                        .max_by_key(|&i| (anc.depth(traced[i].1), anc.depth(ops[i].2)));
                    if let Some(main) = main {
                        let mut group = Vec::new();
                        let (main_kind, main_src) = traced[main];
                        for (i, &(dst, port, src)) in ops.iter().enumerate() {
                            let (kind, source) = traced[i];
                            // A skip bypasses a layer: its source comes strictly before the main path's
                            // (x + W x counts too); parallel branches from one tensor are not skips.
                            let bypasses = anc.is_ancestor(source, main_src)
                                || (kind == SkipKind::Identity
                                    && main_kind != SkipKind::Identity
                                    && source == main_src);
                            if i != main && !is_const(self, src) && bypasses {
                                group.push((src, dst, port, kind));
                            }
                        }
                        dense_net |= group.iter().filter(|m| m.3 == SkipKind::Weighted).count() >= 2;
                        marks.extend(group);
                    }
                }
            }
            // Dense concatenations.
            if let Op::Concat { .. } = self.node(n).op {
                let ins = self.inputs_of(n);
                if let Some(&deepest) = ins.iter().max_by_key(|&&i| anc.depth(i)) {
                    for (port, &src) in ins.iter().enumerate() {
                        if src != deepest && anc.is_ancestor(src, deepest) {
                            marks.push((src, n, port, SkipKind::Dense));
                        }
                    }
                }
            }
        }
        for (src, dst, port, mut kind) in marks {
            if dense_net && kind == SkipKind::Weighted {
                kind = SkipKind::Dense;
            }
            self.set_edge_kind(src, dst, port, EdgeKind::Skip(kind));
            match kind {
                SkipKind::Identity => summary.identity += 1,
                SkipKind::Weighted => summary.weighted += 1,
                SkipKind::Gated => summary.gated += 1,
                SkipKind::Dense => summary.dense += 1,
            }
        }
        summary.dense_blocks = dense_blocks(self, &order, &anc);
        summary
    }

    /// Counts the skip edges by kind as currently marked (without re-running recognition).
    pub fn skip_counts(&self) -> [(SkipKind, usize); 4] {
        let mut c = [(SkipKind::Identity, 0), (SkipKind::Weighted, 0), (SkipKind::Gated, 0), (SkipKind::Dense, 0)];
        for e in self.g.edge_weights() {
            if let EdgeKind::Skip(k) = e.kind {
                c.iter_mut().find(|x| x.0 == k).unwrap().1 += 1;
            }
        }
        c
    }
}

/// Dense blocks: Concats with a dense skip, grouped by their earliest operand.
fn dense_blocks(g: &Graph, order: &[NodeId], anc: &Ancestry) -> Vec<usize> {
    let mut blocks: Vec<(NodeId, usize)> = Vec::new();
    for &n in order {
        if !matches!(g.node(n).op, Op::Concat { .. }) {
            continue;
        }
        let ins = g.inputs_of(n);
        let has_dense = g.in_edges(n).iter().any(|e| e.2 == EdgeKind::Skip(SkipKind::Dense));
        let single_of_block = ins.len() == 1;
        if !has_dense && !single_of_block {
            continue;
        }
        let first = *ins.iter().min_by_key(|&&i| anc.depth(i)).unwrap();
        match blocks.iter_mut().find(|b| b.0 == first) {
            Some(b) => b.1 = b.1.max(ins.len()),
            None => blocks.push((first, ins.len())),
        }
    }
    blocks.into_iter().filter(|b| b.1 >= 2).map(|b| b.1 - 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Gemm;
    use crate::{Dim, Tensor, TensorType};

    fn vec_ty(n: usize) -> TensorType {
        TensorType::f32(vec![Dim::Sym("batch".into()), Dim::Fixed(n)])
    }

    fn dense(g: &mut Graph, name: &str, x: NodeId) -> NodeId {
        let op = Op::Gemm(Gemm {
            b: Tensor::f32(vec![4, 4], vec![0.5; 16]),
            c: None,
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
            act: None,
        });
        let id = g.add_node(name, op, vec_ty(4));
        g.connect(x, id, 0);
        id
    }

    fn unary(g: &mut Graph, name: &str, op: Op, x: NodeId) -> NodeId {
        let id = g.add_node(name, op, vec_ty(4));
        g.connect(x, id, 0);
        id
    }

    fn binary(g: &mut Graph, name: &str, op: Op, a: NodeId, b: NodeId) -> NodeId {
        let id = g.add_node(name, op, vec_ty(4));
        g.connect(a, id, 0);
        g.connect(b, id, 1);
        id
    }

    #[test]
    fn residual_and_highway_blocks() {
        // a1 = relu(W x); a2 = relu(W a1 + x) [identity]; a3 = relu(W a2 + V a1) [weighted]
        let mut g = Graph::new();
        let x = g.add_input("x", vec_ty(4));
        let h1 = dense(&mut g, "w1", x);
        let a1 = unary(&mut g, "a1", Op::Relu, h1);
        let h2 = dense(&mut g, "w2", a1);
        let s2 = binary(&mut g, "sum2", Op::Add, h2, x);
        let a2 = unary(&mut g, "a2", Op::Relu, s2);
        let h3 = dense(&mut g, "w3", a2);
        let v = dense(&mut g, "v3", a1);
        let s3 = binary(&mut g, "sum3", Op::Add, h3, v);
        let a3 = unary(&mut g, "a3", Op::Relu, s3);
        g.outputs.push(crate::Output { name: "y".into(), node: a3 });
        g.validate().unwrap();
        let s = g.recognize_skips();
        assert_eq!((s.identity, s.weighted, s.gated, s.dense), (1, 1, 0, 0), "{g}");
        assert_eq!(g.in_edges(s2)[1].2, EdgeKind::Skip(SkipKind::Identity));
        assert_eq!(g.in_edges(s3)[1].2, EdgeKind::Skip(SkipKind::Weighted));
        assert_eq!(g.in_edges(s3)[0].2, EdgeKind::Data);
    }

    #[test]
    fn gated_carry_and_parallel_branches() {
        // y = h·t + x·(1 − t): the carry is a gated skip.
        let mut g = Graph::new();
        let x = g.add_input("x", vec_ty(4));
        let hw = dense(&mut g, "wh", x);
        let h = unary(&mut g, "h", Op::Relu, hw);
        let tw = dense(&mut g, "wt", x);
        let t = unary(&mut g, "t", Op::Sigmoid, tw);
        let one = g.add_node("one", Op::Const(Tensor::f32(vec![], vec![1.0])), TensorType::f32(vec![]));
        let c = binary(&mut g, "carry", Op::Sub, one, t);
        let ht = binary(&mut g, "ht", Op::Mul, h, t);
        let xc = binary(&mut g, "xc", Op::Mul, x, c);
        let y = binary(&mut g, "y", Op::Add, ht, xc);
        // Two parallel projections of y summed: not a skip.
        let p1 = dense(&mut g, "p1", y);
        let p2 = dense(&mut g, "p2", y);
        let z = binary(&mut g, "z", Op::Add, p1, p2);
        g.outputs.push(crate::Output { name: "z".into(), node: z });
        g.validate().unwrap();
        let s = g.recognize_skips();
        assert_eq!((s.identity, s.weighted, s.gated, s.dense), (0, 0, 1, 0), "{g}");
        assert_eq!(g.in_edges(y)[1].2, EdgeKind::Skip(SkipKind::Gated));
    }

    #[test]
    fn validation_names_the_node() {
        let mut g = Graph::new();
        let x = g.add_input("x", vec_ty(4));
        let a = unary(&mut g, "first", Op::Relu, x);
        let b = unary(&mut g, "second", Op::Relu, a);
        g.outputs.push(crate::Output { name: "y".into(), node: b });
        g.validate().unwrap();
        // An Add with one operand.
        let bad = g.add_node("lonely_add", Op::Add, vec_ty(4));
        g.connect(b, bad, 0);
        let e = g.validate().unwrap_err().to_string();
        assert_eq!(e, "node 'lonely_add' (Add) takes 2 inputs, got 1");
        g.g.remove_node(bad);
        // A cycle.
        g.connect(b, a, 1);
        assert!(g.validate().unwrap_err().to_string().contains("cycle"));
        g.g.remove_edge(g.g.find_edge(b, a).unwrap());
        // A shape mismatch: a Gemm whose K does not match.
        let wrong = g.add_node(
            "proj",
            Op::Gemm(Gemm {
                b: Tensor::f32(vec![3, 2], vec![0.0; 6]),
                c: None,
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
                act: None,
            }),
            vec_ty(2),
        );
        g.connect(b, wrong, 0);
        let e = g.validate().unwrap_err().to_string();
        assert_eq!(e, "node 'proj' (Gemm): A is [batch,4] but B needs K = 3");
    }
}
