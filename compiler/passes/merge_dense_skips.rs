//! Merging a layer's matrices: a sum of matrix products that feeds one layer,
//!
//!   z^l = W^{l-1,l} a^{l-1} + Σ_k W^{l-k,l} a^{l-k} + b^l,
//!
//! (a Gemm on the main path plus MatMuls with constant matrices on the skip paths, as a dense or highway
//! MLP exports) becomes one product over the concatenated inputs:
//!
//!   z^l = [W^{0,l} … W^{l-1,l}] · [a^0; …; a^{l-1}] + b^l.
//!
//! The inputs are concatenated in the order they were computed, earliest first, so that lowering can lay
//! every layer's output at its own offset of one feature arena: the concatenation is then a window of
//! memory, not a copy, and the layer is one GEMM forward (and one update ΔW_cat = −η δ^l a_catᵀ in training).
//! Constant factors are folded in: each block of the stacked matrix is α_k·op(B_k), and the biases add up.
//! DenseNet's concatenations are already in this form; lowering gives them the same arena.

use super::{replace_uses, PassReport};
use resin_ir::op::Gemm;
use resin_ir::{Dim, EdgeKind, Graph, NodeId, Op, SkipKind, Tensor};

/// A matrix product feeding the sum: its input, the matrix as [K, N] (scaled), and its bias over N.
struct Product {
    node: NodeId,
    input: NodeId,
    k: usize,
    matrix: Vec<f32>,
    bias: Option<Vec<f32>>,
}

fn as_product(g: &Graph, n: NodeId, sum: NodeId, cols: usize) -> Option<Product> {
    if g.consumers(n) != [sum] || g.outputs.iter().any(|o| o.node == n) {
        return None;
    }
    let ins = g.inputs_of(n);
    match &g.node(n).op {
        Op::Gemm(gm) if !gm.trans_a && gm.act.is_none() && ins.len() == 1 => {
            let (k, nn) = gm.kn();
            if nn != cols {
                return None;
            }
            let b = gm.b.as_f32()?;
            let matrix: Vec<f32> =
                (0..k * nn).map(|i| gm.alpha * if gm.trans_b { b[(i % nn) * k + i / nn] } else { b[i] }).collect();
            let bias = match &gm.c {
                None => None,
                Some(c) if c.len() == 1 => Some(vec![gm.beta * c.as_f32()?[0]; nn]),
                Some(c) if c.len() == nn => Some(c.as_f32()?.iter().map(|v| gm.beta * v).collect()),
                Some(_) => return None, // a per-row C does not merge
            };
            Some(Product { node: n, input: ins[0], k, matrix, bias })
        }
        Op::MatMul => {
            let (x, w) = (ins[0], ins[1]);
            let Op::Const(t) = &g.node(w).op else { return None };
            if g.node(x).ty.rank() != 2 || t.shape.len() != 2 || t.shape[1] != cols {
                return None;
            }
            Some(Product { node: n, input: x, k: t.shape[0], matrix: t.as_f32()?.to_vec(), bias: None })
        }
        _ => None,
    }
}

/// The operands of the Add tree rooted at `root` (inner Adds read only by their parent), each with the Add
/// that reads it.
fn operands(g: &Graph, root: NodeId, inner: &mut Vec<NodeId>, out: &mut Vec<(NodeId, NodeId)>) {
    for src in g.inputs_of(root) {
        if matches!(g.node(src).op, Op::Add) && g.consumers(src).len() == 1 {
            inner.push(src);
            operands(g, src, inner, out);
        } else {
            out.push((root, src));
        }
    }
}

fn depth_order(g: &Graph) -> std::collections::HashMap<NodeId, usize> {
    g.topo_order().unwrap_or_default().into_iter().enumerate().map(|(i, n)| (n, i)).collect()
}

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("merge_dense_skips");
    let roots: Vec<NodeId> =
        g.topo_order().unwrap_or_default().into_iter().filter(|&n| matches!(g.node(n).op, Op::Add)).collect();
    for root in roots {
        if !g.g.contains_node(root) {
            continue;
        }
        let cons = g.consumers(root);
        if cons.len() == 1 && matches!(g.node(cons[0]).op, Op::Add) {
            continue; // not the root of its tree
        }
        let ty = g.node(root).ty.clone();
        let Some(cols) = (ty.rank() == 2).then(|| ty.shape[1].fixed()).flatten() else { continue };
        let (mut inner, mut ops) = (Vec::new(), Vec::new());
        operands(g, root, &mut inner, &mut ops);
        let products: Option<Vec<Product>> = ops.iter().map(|&(parent, o)| as_product(g, o, parent, cols)).collect();
        let Some(mut products) = products else { continue };
        if products.len() < 2 {
            continue;
        }
        let order = depth_order(g);
        products.sort_by_key(|p| order[&p.input]);
        if products.windows(2).any(|w| w[0].input == w[1].input) {
            continue; // the same input twice cannot be two windows of one arena
        }
        // Stack the matrices (earliest input first) and add up the biases.
        let k_total: usize = products.iter().map(|p| p.k).sum();
        let mut b = Vec::with_capacity(k_total * cols);
        let mut bias = vec![0.0f32; cols];
        let mut has_bias = false;
        for p in &products {
            b.extend_from_slice(&p.matrix);
            if let Some(c) = &p.bias {
                has_bias = true;
                bias.iter_mut().zip(c).for_each(|(a, v)| *a += v);
            }
        }
        let name = g.node(root).name.clone();
        let batch = ty.shape[0].clone();
        let concat_ty = resin_ir::TensorType::f32(vec![batch, Dim::Fixed(k_total)]);
        let concat = g.add_node(format!("{name}/concat"), Op::Concat { axis: 1 }, concat_ty);
        let last = products.len() - 1;
        for (port, p) in products.iter().enumerate() {
            let kind = if port == last { EdgeKind::Data } else { EdgeKind::Skip(SkipKind::Dense) };
            g.g.add_edge(p.input, concat, resin_ir::Edge { port, kind });
        }
        let gemm = Gemm {
            b: Tensor::f32(vec![k_total, cols], b),
            c: has_bias.then(|| Tensor::f32(vec![cols], bias)),
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
            act: None,
        };
        let merged = g.add_node(format!("{name}/merged"), Op::Gemm(gemm), ty);
        g.connect(concat, merged, 0);
        g.node_mut(merged).fused = vec!["Concat", "MatMul", "Add"];
        replace_uses(g, root, merged);
        for n in products.iter().map(|p| p.node).chain(inner).chain(std::iter::once(root)) {
            g.g.remove_node(n);
        }
        report
            .changes
            .push(format!("merged {} matrices feeding '{name}' into one [{k_total}x{cols}] GEMM", products.len()));
    }
    report
}
