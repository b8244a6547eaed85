//! BatchNorm folding: a BatchNormalization whose input is a Conv or Gemm read by nothing else is folded into
//! that layer's weights. With s = γ / √(σ² + ε) per output channel m:
//!
//! - Conv: `W'[m,…] = s[m]·W[m,…]`, `b'[m] = s[m]·(b[m] − μ[m]) + β[m]`
//! - Gemm (Y = α·op(A)·op(B) + β_c·C): `op(B)'[:,m] = s[m]·op(B)[:,m]`, C' = s ⊙ β_c·C + (β − μ ⊙ s) with
//!   β_c' = 1 (C' broadcast to `[N]`, or kept `[M,N]` when C was full).
//!
//! The BN node disappears; outputs are unchanged up to float rounding.
//!
//! A BatchNormalization *before* a convolution — BN, optionally an activation, then a Conv that is their only
//! reader, as in DenseNet's BN-ReLU-Conv layers — cannot enter the weights (the activation sits between), so
//! it becomes the convolution's input prologue: `x' = act(s[c]·x + t[c])` with s = γ/√(σ²+ε), t = β − μ·s,
//! applied as the convolution packs its input (zero padding stays zero, as it was after the BN and ReLU).
//! An average pool read the same way takes the prologue too (`Pool::pre`: it averages the transformed
//! values), which is how an exported `pool_first` transition (BN, ReLU, AveragePool, Conv) reads back.

use super::{replace_uses, PassReport};
use resin_ir::op::{Activation, PoolKind, PreAffine};
use resin_ir::{Graph, NodeId, Op, Tensor};

/// BN, then optionally an activation, then a Conv or an average pool without a prologue that reads only
/// it: fold the BN (and the activation) into that reader's prologue.
fn fold_into_prologue(g: &mut Graph, bn_id: NodeId, report: &mut PassReport) {
    let Op::BatchNorm(bn) = &g.node(bn_id).op else { return };
    if g.node(bn_id).ty.rank() != 4 {
        return;
    }
    let (Some(gamma), Some(beta), Some(mean), Some(var)) =
        (bn.scale.as_f32(), bn.bias.as_f32(), bn.mean.as_f32(), bn.var.as_f32())
    else {
        return;
    };
    let scale: Vec<f32> = gamma.iter().zip(var).map(|(&g, &v)| g / (v + bn.epsilon).sqrt()).collect();
    let shift: Vec<f32> = beta.iter().zip(mean).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
    let only_reader = |g: &Graph, n: NodeId| -> Option<NodeId> {
        let c = g.consumers(n);
        (c.len() == 1 && !g.outputs.iter().any(|o| o.node == n) && g.inputs_of(c[0])[0] == n).then(|| c[0])
    };
    let Some(next) = only_reader(g, bn_id) else { return };
    let (act, act_node, conv) = match g.node(next).op {
        Op::Relu => (Some(Activation::Relu), Some(next), only_reader(g, next)),
        Op::Clip { min, max } => (Some(Activation::Clip { min, max }), Some(next), only_reader(g, next)),
        Op::Sigmoid => (Some(Activation::Sigmoid), Some(next), only_reader(g, next)),
        Op::Conv(_) | Op::Pool(_) => (None, None, Some(next)),
        _ => return,
    };
    let Some(conv) = conv else { return };
    // A convolution, or an average pool (the form `pool_first` leaves a transition in, and what its
    // export reads back as), without a prologue yet.
    let free = match &g.node(conv).op {
        Op::Conv(c) => c.pre.is_none() && g.inputs_of(conv).len() == 1,
        Op::Pool(p) => p.kind == PoolKind::Avg && p.pre.is_none(),
        _ => false,
    };
    if !free {
        return;
    }
    let slot = match &mut g.node_mut(conv).op {
        Op::Conv(c) => &mut c.pre,
        Op::Pool(p) => &mut p.pre,
        _ => return,
    };
    *slot = Some(PreAffine { scale, shift, act });
    let src = g.inputs_of(bn_id)[0];
    let kind = g.in_edges(bn_id)[0].2;
    let (bn_name, conv_name) = (g.node(bn_id).name.clone(), g.node(conv).name.clone());
    // conv now reads the BN's input directly (the edge keeps the BN input's kind).
    let old: Vec<_> = g.in_edges(conv).into_iter().filter(|e| e.0 == 0).collect();
    for (_, s, _) in old {
        if let Some(e) = g.g.find_edge(s, conv) {
            g.g.remove_edge(e);
        }
    }
    g.g.add_edge(src, conv, resin_ir::Edge { port: 0, kind });
    g.g.remove_node(bn_id);
    if let Some(a) = act_node {
        g.g.remove_node(a);
    }
    let fused = &mut g.node_mut(conv).fused;
    fused.insert(0, "BatchNormalization(pre)");
    if let Some(a) = act {
        fused.insert(1, a.name());
    }
    report.changes.push(format!(
        "folded BatchNorm '{bn_name}'{} into the input of '{conv_name}'",
        if act.is_some() { " and its activation" } else { "" }
    ));
}

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("fold_batchnorm");
    let bns: Vec<_> = g.g.node_indices().filter(|&n| matches!(g.node(n).op, Op::BatchNorm(_))).collect();
    for bn_id in bns {
        let src = g.inputs_of(bn_id)[0];
        if g.consumers(src).len() != 1 || g.outputs.iter().any(|o| o.node == src) {
            continue;
        }
        // A layer that already has an epilogue would apply BN after it: not foldable.
        let has_epilogue = match &g.node(src).op {
            Op::Conv(c) => c.act.is_some() || g.inputs_of(src).len() > 1,
            Op::Gemm(gm) => gm.act.is_some() || g.inputs_of(src).len() > 1,
            _ => true,
        };
        if has_epilogue {
            continue;
        }
        let Op::BatchNorm(bn) = &g.node(bn_id).op else { continue };
        let (Some(gamma), Some(beta), Some(mean), Some(var)) =
            (bn.scale.as_f32(), bn.bias.as_f32(), bn.mean.as_f32(), bn.var.as_f32())
        else {
            continue;
        };
        let s: Vec<f32> = gamma.iter().zip(var).map(|(&g, &v)| g / (v + bn.epsilon).sqrt()).collect();
        let t: Vec<f32> = beta.iter().zip(mean).zip(&s).map(|((&b, &m), &s)| b - m * s).collect();
        let (beta, mean) = (beta.to_vec(), mean.to_vec());
        let bn_name = g.node(bn_id).name.clone();
        let layer_name = g.node(src).name.clone();
        let folded = match &mut g.node_mut(src).op {
            Op::Conv(c) => {
                let m = c.out_channels();
                let per = c.weight.len() / m;
                let w = match &mut c.weight.data {
                    resin_ir::TensorData::F32(w) => w,
                    _ => continue,
                };
                for (i, v) in w.iter_mut().enumerate() {
                    *v *= s[i / per];
                }
                let old = c.bias.as_ref().and_then(|b| b.as_f32().map(<[f32]>::to_vec)).unwrap_or(vec![0.0; m]);
                let b: Vec<f32> = (0..m).map(|i| s[i] * (old[i] - mean[i]) + beta[i]).collect();
                c.bias = Some(Tensor::f32(vec![m], b));
                true
            }
            Op::Gemm(gm) => {
                let (k, n) = gm.kn();
                let trans = gm.trans_b;
                let b = match &mut gm.b.data {
                    resin_ir::TensorData::F32(b) => b,
                    _ => continue,
                };
                for i in 0..k * n {
                    // element (p, j) of op(B) lives at p·n + j, or j·k + p when transposed
                    let (idx, j) = if trans { ((i % n) * k + i / n, i % n) } else { (i, i % n) };
                    b[idx] *= s[j];
                }
                // C' = s ⊙ β_c·C + t, broadcast over [M, N]. C varies per column only ([], [N], [1,N]) or
                // per row too ([M,1], [M,N]); the result has shape [N] or [M,N].
                let c_new = match &gm.c {
                    None => Tensor::f32(vec![n], t.clone()),
                    Some(c) => {
                        let cv = c.to_f32_vec();
                        let rows = if c.shape.len() == 2 { c.shape[0] } else { 1 };
                        let cols = c.shape.last().copied().unwrap_or(1);
                        let v: Vec<f32> = (0..rows * n)
                            .map(|i| {
                                let (r, j) = (i / n, i % n);
                                let cij = cv[r * cols + if cols == 1 { 0 } else { j }];
                                s[j] * gm.beta * cij + t[j]
                            })
                            .collect();
                        Tensor::f32(if rows > 1 { vec![rows, n] } else { vec![n] }, v)
                    }
                };
                gm.c = Some(c_new);
                gm.beta = 1.0;
                true
            }
            _ => false,
        };
        if folded {
            replace_uses(g, bn_id, src);
            g.g.remove_node(bn_id);
            g.node_mut(src).fused.push("BatchNormalization");
            report.changes.push(format!("folded BatchNorm '{bn_name}' into '{layer_name}'"));
        }
    }
    // What remains may precede a convolution.
    let rest: Vec<_> = g.g.node_indices().filter(|&n| matches!(g.node(n).op, Op::BatchNorm(_))).collect();
    for bn_id in rest {
        fold_into_prologue(g, bn_id, &mut report);
    }
    report
}
