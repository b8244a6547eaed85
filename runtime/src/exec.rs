//! Executes one step: resolves the step's operands to slices and shapes and calls its kernel.
//! Owns nothing; the session hands it buffers.

use crate::kernels::gemm::{sgemm, MatRef};
use crate::kernels::{concat, conv, elementwise, matmul, pad, pool, softmax};
use crate::plan::{StepOp, WeightRange};

/// An operand: its elements and its concrete shape.
pub type Operand<'a> = (&'a [f32], &'a [usize]);

fn w(weights: &[f32], r: WeightRange) -> &[f32] {
    &weights[r.offset..r.offset + r.len]
}

/// Runs `op` on `ins`, writing `out` (of shape `out_shape`).
#[allow(clippy::too_many_arguments)]
pub fn exec(
    op: &StepOp,
    ins: &[Operand],
    out: &mut [f32],
    out_shape: &[usize],
    weights: &[f32],
    scratch: &mut [f32],
    threads: usize,
) {
    match op {
        StepOp::Conv(c) => {
            let (x, xs) = ins[0];
            conv::conv2d(
                x,
                xs[0],
                xs[2],
                xs[3],
                &c.geom,
                w(weights, c.weight),
                c.bias.map(|b| w(weights, b)),
                c.act,
                out_shape[2],
                out_shape[3],
                out,
                scratch,
                threads,
            );
        }
        StepOp::Gemm(g) => {
            let (a, a_shape) = ins[0];
            let (m, n) = (out_shape[0], g.n);
            let beta = match &g.c {
                Some((c, c_shape)) => {
                    // out = beta·C broadcast to [M, N], then the product accumulates into it.
                    let c = w(weights, *c);
                    elementwise::binary(elementwise::BinaryOp::Mul, c, c_shape, &[g.beta], &[], out, &[m, n]);
                    1.0
                }
                None => 0.0,
            };
            let lda = if g.trans_a { a_shape[1] } else { g.k };
            let am = MatRef { data: a, ld: lda, trans: g.trans_a };
            sgemm(m, n, g.k, g.alpha, am, MatRef::new(w(weights, g.weight), n), beta, out, n, threads);
        }
        StepOp::MatMul => {
            let ((a, as_), (b, bs)) = (ins[0], ins[1]);
            matmul::matmul(a, as_, b, bs, out, threads);
        }
        StepOp::ChannelAffine { scale, shift } => {
            let (x, xs) = ins[0];
            let c = xs[1];
            let hw: usize = xs[2..].iter().product();
            elementwise::channel_affine(x, xs[0], c, hw, w(weights, *scale), w(weights, *shift), out);
        }
        StepOp::Unary(u) => elementwise::unary(*u, ins[0].0, out),
        StepOp::Binary(b) => elementwise::binary(*b, ins[0].0, ins[0].1, ins[1].0, ins[1].1, out, out_shape),
        StepOp::Sum => {
            if ins.iter().all(|(_, s)| *s == out_shape) {
                let slices: Vec<&[f32]> = ins.iter().map(|i| i.0).collect();
                elementwise::sum(&slices, out);
            } else {
                // Broadcasting sum: accumulate pairwise through `binary`.
                let mut acc = vec![0.0f32; out.len()];
                for (x, xs) in ins {
                    elementwise::binary(
                        elementwise::BinaryOp::Add,
                        &acc.clone(),
                        out_shape,
                        x,
                        xs,
                        &mut acc,
                        out_shape,
                    );
                }
                out.copy_from_slice(&acc);
            }
        }
        StepOp::MaxPool(p) | StepOp::AvgPool(p) => {
            let (x, xs) = ins[0];
            let planes = xs[0] * xs[1];
            let f = if matches!(op, StepOp::MaxPool(_)) { pool::max_pool2d } else { pool::avg_pool2d };
            f(x, planes, xs[2], xs[3], p, out_shape[2], out_shape[3], out);
        }
        StepOp::GlobalAvgPool => {
            let (x, xs) = ins[0];
            pool::global_avg_pool(x, xs[0] * xs[1], xs[2..].iter().product(), out);
        }
        StepOp::Softmax { axis } => {
            let (x, xs) = ins[0];
            let outer: usize = xs[..*axis].iter().product();
            let inner: usize = xs[axis + 1..].iter().product();
            softmax::softmax(x, outer, xs[*axis], inner, out);
        }
        StepOp::Concat { axis } => {
            let outer: usize = out_shape[..*axis].iter().product();
            let inner: usize = out_shape[axis + 1..].iter().product();
            let parts: Vec<(&[f32], usize)> = ins.iter().map(|(x, s)| (*x, s[*axis])).collect();
            concat::concat(&parts, outer, inner, out);
        }
        StepOp::Pad { pads, mode } => pad::pad(ins[0].0, ins[0].1, pads, *mode, out),
        StepOp::Copy => out.copy_from_slice(ins[0].0),
    }
}
