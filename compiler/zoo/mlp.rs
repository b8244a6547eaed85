//! Multilayer perceptrons with each kind of skip, as `tests/models/make_models.py` writes them in PyTorch.
//!
//! a_0 is the input; for l = 1..L (L = `depth`, default 8) a hidden layer of `width` features (default 128);
//! then a Linear head to `classes` outputs (default 10). With W_l a Linear (a Gemm, bias b_l):
//!
//! - `plain-mlp`: a_l = relu(W_l a_{l−1} + b_l).
//! - `res-mlp`: a_l = relu(W_l a_{l−1} + b_l + a_{l−2}) for l ≥ 2: L − 1 **identity** skips. When the
//!   input has another size than `width`, layer 2's skip from the input goes through a bias-free matrix (a
//!   weighted skip, as a ResNet projects where shapes change).
//! - `highway-mlp`: a_l = relu(W_l a_{l−1} + b_l + V_l a_{l−2}) for l ≥ 2, V_l a bias-free learned matrix
//!   (a MatMul with a constant `[in, out]`): the spec's **weighted** skip S(a) = V a, L − 1 of them.
//! - `gated-highway-mlp`: Srivastava et al.'s highway layer x ← H(x)·T(x) + x·(1 − T(x)) with
//!   H(x) = relu(W_h x + b_h) and the transform gate T(x) = sigmoid(W_t x + b_t), its bias starting near −1
//!   so that the carry path matters: L **gated** skips. When the input has another size than `width`, a
//!   Linear + ReLU stem (`stem`) maps it to `width` first.
//! - `dense-mlp`: a_l = relu(W_l [a_0; a_1; …; a_{l−1}] + b_l), every earlier layer feeding every later one
//!   through a Concat (layer 1 reads a_0 alone): L(L − 1)/2 **dense** skips. This is the form the
//!   compiler's `merge_dense_skips` gives a sum of matrix products, so each layer is one GEMM over a window
//!   of one feature arena. Its parameters and MACs equal those of the sum form
//!   a_l = relu(b_l + Σ_k W_{l,k} a_{l−k}).

use super::{batch_dim, builder, ZooOptions};
use anyhow::Result;
use resin_ir::builder::{BuildError, Builder};
use resin_ir::{Dim, Graph, NodeId, Tensor};

/// Which skips the MLP has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpKind {
    Plain,
    Res,
    Highway,
    Gated,
    Dense,
}

/// Builds the MLP of `kind` (see the module doc).
pub fn build(kind: MlpKind, opts: &ZooOptions) -> Result<Graph> {
    let depth = opts.depth.unwrap_or(8);
    let width = opts.width.unwrap_or(128);
    let features = opts.input.as_ref().map_or(128, |s| s[0]);
    let classes = opts.classes.unwrap_or(10);
    let mut b = builder(opts);
    let x = b.input("input", vec![batch_dim(opts), Dim::Fixed(features)]);
    let last = match kind {
        MlpKind::Gated => gated(&mut b, x, depth, width)?,
        _ => layered(&mut b, kind, x, depth, width)?,
    };
    let y = b.linear("head", last, classes, true)?;
    b.output("output", y);
    Ok(b.finish()?.0)
}

/// Plain, residual, highway and dense MLPs: a_l = relu(main_l + skip_l).
fn layered(b: &mut Builder, kind: MlpKind, x: NodeId, depth: usize, width: usize) -> Result<NodeId, BuildError> {
    let mut acts = vec![x];
    for l in 1..=depth {
        let i = l - 1;
        let z = match kind {
            MlpKind::Dense if l >= 2 => {
                let cat = b.concat(&format!("concat.{i}"), &acts, 1)?;
                b.linear(&format!("main.{i}"), cat, width, true)?
            }
            _ => b.linear(&format!("main.{i}"), acts[l - 1], width, true)?,
        };
        let z = match kind {
            MlpKind::Res if l >= 2 => {
                let skip = acts[l - 2];
                let skip = if b.dim(skip, 1)? == width { skip } else { b.matmul("skip.0", skip, width)? };
                b.add(&format!("add.{i}"), z, skip)?
            }
            MlpKind::Highway if l >= 2 => {
                let v = b.matmul(&format!("skip.{}", l - 2), acts[l - 2], width)?;
                b.add(&format!("add.{i}"), z, v)?
            }
            _ => z,
        };
        acts.push(b.relu(&format!("relu.{i}"), z)?);
    }
    Ok(acts[depth])
}

/// Highway layers with transform gates.
fn gated(b: &mut Builder, x: NodeId, depth: usize, width: usize) -> Result<NodeId, BuildError> {
    let mut x = x;
    if b.dim(x, 1)? != width {
        let s = b.linear("stem", x, width, true)?;
        x = b.relu("stem.relu", s)?;
    }
    for i in 0..depth {
        let h = b.linear(&format!("h.{i}"), x, width, true)?;
        let h = b.relu(&format!("h.{i}.relu"), h)?;
        let t = b.linear(&format!("t.{i}"), x, width, true)?;
        shift_bias(b, t, -1.0);
        let t = b.sigmoid(&format!("t.{i}.sigmoid"), t)?;
        let ht = b.mul(&format!("transform.{i}"), h, t)?;
        let one = b.constant(&format!("one.{i}"), Tensor::f32(vec![], vec![1.0]))?;
        let carry = b.sub(&format!("carry_gate.{i}"), one, t)?;
        let xc = b.mul(&format!("carry.{i}"), x, carry)?;
        x = b.add(&format!("add.{i}"), ht, xc)?;
    }
    Ok(x)
}

/// Adds `delta` to the bias of the Linear layer `id` (the usual negative start of a highway gate).
fn shift_bias(b: &mut Builder, id: NodeId, delta: f32) {
    if let resin_ir::Op::Gemm(g) = b.op_mut(id) {
        if let Some(resin_ir::TensorData::F32(v)) = g.c.as_mut().map(|c| &mut c.data) {
            v.iter_mut().for_each(|x| *x += delta);
        }
    }
}
