//! Executes one step: resolves the step's operands to slices and shapes and calls its kernel.
//! Owns nothing; the session hands it buffers. An operand given as `None` is the step's in-place operand:
//! its elements are already in `out`.

use crate::kernels::gemm::{sgemm, MatRef};
use crate::kernels::{concat, conv, elementwise, matmul, pad, pool, softmax};
use crate::plan::{StepOp, WeightRange};

/// An operand: its elements and its concrete shape.
pub type Operand<'a> = (&'a [f32], &'a [usize]);

fn w(weights: &[f32], r: WeightRange) -> &[f32] {
    &weights[r.offset..r.offset + r.len]
}

/// The operand `i`, which the plan guarantees is not in place.
fn get<'a>(ins: &[Option<Operand<'a>>], i: usize) -> Operand<'a> {
    ins[i].expect("checked plan: only the in-place operand shares the output's slot")
}

/// Puts the residual operand into `out` unless it is already there (in place).
fn load_skip(ins: &[Option<Operand>], out: &mut [f32]) {
    if let Some((skip, _)) = ins[1] {
        out.copy_from_slice(skip);
    }
}

/// Runs `op` on `ins`, writing `out` (of shape `out_shape`).
#[allow(clippy::too_many_arguments)]
pub fn exec(
    op: &StepOp,
    ins: &[Option<Operand>],
    out: &mut [f32],
    out_shape: &[usize],
    weights: &[f32],
    scratch: &mut [f32],
    threads: usize,
) {
    match op {
        StepOp::Conv(c) => {
            let (x, xs) = get(ins, 0);
            if c.residual {
                load_skip(ins, out);
            }
            conv::conv2d(
                x,
                xs[0],
                xs[2],
                xs[3],
                &c.geom,
                w(weights, c.weight),
                c.bias.map(|b| w(weights, b)),
                c.act,
                c.residual,
                out_shape[2],
                out_shape[3],
                out,
                scratch,
                threads,
            );
        }
        StepOp::Gemm(g) => {
            let (a, a_shape) = get(ins, 0);
            let (m, n) = (out_shape[0], g.n);
            if g.residual {
                load_skip(ins, out);
            }
            if let Some((c, c_shape)) = &g.c {
                // out (+)= beta·C, C broadcast from [], [N], [1,N], [M,1] or [M,N] to [M, N].
                let c = w(weights, *c);
                let rows = if c_shape.len() == 2 { c_shape[0] } else { 1 };
                let cols = c_shape.last().copied().unwrap_or(1);
                for i in 0..m {
                    let crow = &c[(i % rows) * cols..(i % rows) * cols + cols];
                    let orow = &mut out[i * n..(i + 1) * n];
                    for (j, o) in orow.iter_mut().enumerate() {
                        let v = g.beta * crow[if cols == 1 { 0 } else { j }];
                        *o = if g.residual { *o + v } else { v };
                    }
                }
            }
            let accumulate = if g.residual || g.c.is_some() { 1.0 } else { 0.0 };
            let lda = if g.trans_a { a_shape[1] } else { g.k };
            let am = MatRef { data: a, ld: lda, trans: g.trans_a };
            sgemm(m, n, g.k, g.alpha, am, MatRef::new(w(weights, g.weight), n), accumulate, out, n, threads);
            if let Some(act) = g.act {
                elementwise::unary_inplace(act, out);
            }
        }
        StepOp::MatMul => {
            let ((a, as_), (b, bs)) = (get(ins, 0), get(ins, 1));
            matmul::matmul(a, as_, b, bs, out, threads);
        }
        StepOp::ChannelAffine { scale, shift } => {
            let (x, xs) = get(ins, 0);
            let hw: usize = xs[2..].iter().product();
            elementwise::channel_affine(x, xs[0], xs[1], hw, w(weights, *scale), w(weights, *shift), out);
        }
        StepOp::Unary(u) => match ins[0] {
            Some((x, _)) => elementwise::unary(*u, x, out),
            None => elementwise::unary_inplace(*u, out),
        },
        StepOp::Binary(b) => {
            let ((x, xs), (y, ys)) = (get(ins, 0), get(ins, 1));
            elementwise::binary(*b, x, xs, y, ys, out, out_shape);
        }
        StepOp::Sum => {
            let ops: Vec<Operand> = (0..ins.len()).map(|i| get(ins, i)).collect();
            if ops.iter().all(|(_, s)| *s == out_shape) {
                let slices: Vec<&[f32]> = ops.iter().map(|i| i.0).collect();
                elementwise::sum(&slices, out);
            } else {
                // Broadcasting sum: accumulate pairwise through `binary`.
                let mut acc = vec![0.0f32; out.len()];
                for (x, xs) in ops {
                    let prev = acc.clone();
                    elementwise::binary(elementwise::BinaryOp::Add, &prev, out_shape, x, xs, &mut acc, out_shape);
                }
                out.copy_from_slice(&acc);
            }
        }
        StepOp::MaxPool(p) | StepOp::AvgPool(p) => {
            let (x, xs) = get(ins, 0);
            let f = if matches!(op, StepOp::MaxPool(_)) { pool::max_pool2d } else { pool::avg_pool2d };
            f(x, xs[0] * xs[1], xs[2], xs[3], p, out_shape[2], out_shape[3], out);
        }
        StepOp::GlobalAvgPool => {
            let (x, xs) = get(ins, 0);
            pool::global_avg_pool(x, xs[0] * xs[1], xs[2..].iter().product(), out);
        }
        StepOp::Softmax { axis } => {
            let (x, xs) = get(ins, 0);
            let outer: usize = xs[..*axis].iter().product();
            let inner: usize = xs[axis + 1..].iter().product();
            softmax::softmax(x, outer, xs[*axis], inner, out);
        }
        StepOp::Concat { axis } => {
            let outer: usize = out_shape[..*axis].iter().product();
            let inner: usize = out_shape[axis + 1..].iter().product();
            let parts: Vec<(&[f32], usize)> = (0..ins.len()).map(|i| get(ins, i)).map(|(x, s)| (x, s[*axis])).collect();
            concat::concat(&parts, outer, inner, out);
        }
        StepOp::Pad { pads, mode } => {
            let (x, xs) = get(ins, 0);
            pad::pad(x, xs, pads, *mode, out);
        }
        StepOp::Copy => {
            if let Some((x, _)) = ins[0] {
                out.copy_from_slice(x);
            }
        }
    }
}
