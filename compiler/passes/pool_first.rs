//! Average pooling moved in front of the 1x1 convolution it follows (DenseNet's transitions: BN, ReLU,
//! a 1x1 convolution, then a 2x2 average pool). For a 1x1, stride-1, unpadded convolution without an
//! activation or residual, and an average pool without padding or ceil mode (every window whole, k
//! positions), with `x' = pre(x)` the convolution's input after its prologue:
//!
//! ```text
//! avgpool(conv(x))[m, q] = (1/k) Σ_{p ∈ S(q)} (b[m] + Σ_c W[m,c]·x'[c,p])
//!                        = b[m] + Σ_c W[m,c]·((1/k) Σ_{p ∈ S(q)} x'[c,p]) = conv(avgpool(x'))[m, q]
//! ```
//!
//! so the convolution runs on the pooled map: k times fewer multiply-adds (a 2x2 stride-2 pool: 4x;
//! DenseNet-121's three transitions are 11% of its multiply-adds). The prologue moves with the pool
//! (`Pool::pre`: the pool averages transformed values, which the runtime computes on the fly), and the
//! convolution is left without one. Outputs are unchanged up to float rounding.
//!
//! This pass owns only that rewrite; it runs after `fold_batchnorm` (which gives the convolution its
//! prologue) and must not touch convolutions with an epilogue.

use super::PassReport;
use resin_ir::op::{Activation, PoolKind};
use resin_ir::{Dim, Graph, Op, TensorType};

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("pool_first");
    let pools: Vec<_> = g.g.node_indices().filter(|&n| matches!(g.node(n).op, Op::Pool(_))).collect();
    for pool in pools {
        let Op::Pool(p) = &g.node(pool).op else { continue };
        let pool_ok = p.kind == PoolKind::Avg
            && p.pads == [0; 4]
            && !p.ceil_mode
            && p.dilations == [1, 1]
            && p.pre.is_none()
            && p.kernel[0] * p.kernel[1] * p.strides[0] * p.strides[1] > 1;
        let conv = g.inputs_of(pool)[0];
        let conv_ok = match &g.node(conv).op {
            Op::Conv(c) => c.kernel() == [1, 1] && c.strides == [1, 1] && c.pads == [0; 4] && c.act.is_none(),
            _ => false,
        };
        let alone = g.inputs_of(conv).len() == 1
            && g.consumers(conv) == [pool]
            && !g.outputs.iter().any(|o| o.node == conv)
            && g.node(conv).ty.rank() == 4;
        if !(pool_ok && conv_ok && alone) {
            continue;
        }
        let src = g.inputs_of(conv)[0];
        let src_edge = g.in_edges(conv)[0].2;
        // Types: the pool now keeps the convolution's input channels; the convolution writes what the
        // pool wrote.
        let pooled = g.node(pool).ty.clone();
        let cin = g.node(src).ty.shape[1].clone();
        let mut pool_ty: Vec<Dim> = pooled.shape.clone();
        pool_ty[1] = cin;
        // The prologue moves to the pool.
        let pre = match &mut g.node_mut(conv).op {
            Op::Conv(c) => c.pre.take(),
            _ => unreachable!("checked above"),
        };
        let moved: Vec<&'static str> = match &pre {
            Some(pre) => std::iter::once("BatchNormalization(pre)").chain(pre.act.map(Activation::name)).collect(),
            None => vec![],
        };
        g.node_mut(conv).fused.retain(|f| !moved.contains(f));
        if let Op::Pool(p) = &mut g.node_mut(pool).op {
            p.pre = pre;
        }
        g.node_mut(pool).fused.splice(0..0, moved);
        // Rewire src → pool → conv → (the pool's readers).
        super::replace_uses(g, pool, conv);
        for e in g.g.edges_connecting(src, conv).map(|e| petgraph::visit::EdgeRef::id(&e)).collect::<Vec<_>>() {
            g.g.remove_edge(e);
        }
        for e in g.g.edges_connecting(conv, pool).map(|e| petgraph::visit::EdgeRef::id(&e)).collect::<Vec<_>>() {
            g.g.remove_edge(e);
        }
        // (The pool takes over the convolution's input edge, skip kind included; the convolution now
        // reads the pool's output on the main path.)
        g.g.add_edge(src, pool, resin_ir::Edge { port: 0, kind: src_edge });
        g.g.add_edge(pool, conv, resin_ir::Edge { port: 0, kind: resin_ir::EdgeKind::Data });
        g.node_mut(pool).ty = TensorType { dtype: pooled.dtype, shape: pool_ty };
        g.node_mut(conv).ty = pooled;
        let (pool_name, conv_name) = (g.node(pool).name.clone(), g.node(conv).name.clone());
        report.changes.push(format!("moved average pool '{pool_name}' in front of 1x1 convolution '{conv_name}'"));
    }
    report
}
