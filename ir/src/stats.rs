//! Counting: trainable parameters and multiply-accumulates per sample.
//!
//! Parameters follow PyTorch's `model.parameters()`: Conv and Gemm weights and biases, BatchNorm's scale
//! and bias (its running statistics are buffers, not parameters), and constant matrices that feed a
//! MatMul (a bias-free Linear) or are added right after one.
//! MACs count the multiply-accumulates of Conv, Gemm and MatMul with every symbolic dimension taken as 1.

use crate::graph::Graph;
use crate::op::Op;
use crate::Dim;

fn dims1(shape: &[Dim]) -> Vec<usize> {
    shape.iter().map(|d| d.fixed().unwrap_or(1)).collect()
}

impl Graph {
    /// Trainable parameters (see the module doc).
    pub fn param_count(&self) -> usize {
        let mut total = 0;
        for id in self.g.node_indices() {
            total += match &self.g[id].op {
                Op::Conv(c) => c.weight.len() + c.bias.as_ref().map_or(0, |b| b.len()),
                Op::BatchNorm(b) => b.scale.len() + b.bias.len(),
                Op::Gemm(g) => g.b.len() + g.c.as_ref().map_or(0, |c| c.len()),
                Op::Const(t) => {
                    let feeds_weight = self.consumers(id).iter().any(|&c| match self.g[c].op {
                        Op::MatMul => true,
                        Op::Add => self.inputs_of(c).iter().any(|&i| matches!(self.g[i].op, Op::MatMul)),
                        _ => false,
                    });
                    if feeds_weight && t.as_f32().is_some() {
                        t.len()
                    } else {
                        0
                    }
                }
                _ => 0,
            };
        }
        total
    }

    /// MACs of one node for one sample.
    pub fn node_macs(&self, id: crate::NodeId) -> u64 {
        let n = &self.g[id];
        let out = dims1(&n.ty.shape);
        let out_elems: u64 = out.iter().map(|&d| d as u64).product();
        match &n.op {
            Op::Conv(c) => {
                let w = &c.weight.shape;
                out_elems * (w[1] * w[2] * w[3]) as u64
            }
            Op::Gemm(g) => out_elems * g.kn().0 as u64,
            Op::MatMul => {
                let a = &self.g[self.inputs_of(id)[0]].ty.shape;
                let k = a.last().and_then(|d| d.fixed()).unwrap_or(1) as u64;
                out_elems * k
            }
            _ => 0,
        }
    }

    /// Multiply-accumulates for one sample.
    pub fn macs(&self) -> u64 {
        self.g.node_indices().map(|id| self.node_macs(id)).sum()
    }
}
