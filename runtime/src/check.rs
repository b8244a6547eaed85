//! Plan checking: everything a session will index is verified once, when a `Model` is made, so that a
//! corrupted or hand-made plan is an error and never an out-of-bounds panic or a wrong answer.

use crate::error::{Error, Result};
use crate::plan::{BufferKind, Dim, Plan, StepOp, WeightRange, MAX_SAMPLE_LEN};

fn bad(msg: String) -> Error {
    Error::InvalidPlan(msg)
}

fn fixed_len(shape: &[Dim]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, d| match d {
        Dim::Fixed(n) => a.checked_mul(*n),
        Dim::Batch => None,
    })
}

/// Elements per sample (axis 0 excluded): the stride of a feature arena.
fn per_sample(shape: &[Dim]) -> usize {
    shape.iter().skip(1).map(|d| d.resolve(1)).product()
}

/// Per-sample element count (batch taken as 1), or None on overflow.
fn sample_len(shape: &[Dim]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, d| a.checked_mul(d.resolve(1)))
}

/// What buffer `i` holds, for a message: ` (input 'x')`, ` (the output of step 'conv1')`, or nothing.
fn describe(plan: &Plan, i: usize) -> String {
    if let Some(io) = plan.inputs.iter().find(|io| io.buffer == i) {
        return format!(" (input '{}')", io.name);
    }
    match plan.steps.iter().find(|s| s.output == i) {
        Some(s) => format!(" (the output of step '{}')", s.name),
        None => String::new(),
    }
}

/// Checks `plan`.
pub fn check_plan(plan: &Plan) -> Result<()> {
    let nw = plan.weights.len();
    let range = |r: &WeightRange, what: &str| -> Result<()> {
        match r.offset.checked_add(r.len) {
            Some(end) if end <= nw => Ok(()),
            _ => Err(bad(format!("{what}: weight range {}+{} exceeds the {nw} weights", r.offset, r.len))),
        }
    };
    let nb = plan.buffers.len();
    let mut written = vec![false; nb];
    // Which buffer each slot holds now: a step may read a buffer only while it is still in its slot.
    let mut occupant: Vec<Option<usize>> = vec![None; plan.slots];
    for (i, b) in plan.buffers.iter().enumerate() {
        if sample_len(&b.shape).is_none_or(|n| n > MAX_SAMPLE_LEN) {
            return Err(bad(format!(
                "buffer {i}{} has shape {}: more than {MAX_SAMPLE_LEN} elements per sample",
                describe(plan, i),
                crate::plan::fmt_dims(&b.shape)
            )));
        }
        match &b.kind {
            BufferKind::Const(r) => {
                range(r, &format!("buffer {i}"))?;
                if fixed_len(&b.shape) != Some(r.len) {
                    return Err(bad(format!("constant buffer {i}: shape does not match its {} weights", r.len)));
                }
                written[i] = true;
            }
            BufferKind::Input(k) => {
                if plan.inputs.get(*k).is_none_or(|io| io.buffer != i) {
                    return Err(bad(format!("buffer {i} claims to be input {k}")));
                }
                written[i] = true;
            }
            BufferKind::Activation { slot } => {
                if *slot >= plan.slots {
                    return Err(bad(format!("buffer {i} uses slot {slot} of {}", plan.slots)));
                }
            }
            BufferKind::View { base, offset } => {
                let Some(bb) = plan.buffers.get(*base).filter(|bb| bb.slot().is_some()) else {
                    return Err(bad(format!("view {i} has base {base}, which is not an activation buffer")));
                };
                let fits = offset.checked_add(per_sample(&b.shape)).is_some_and(|end| end <= per_sample(&bb.shape));
                if b.shape.first() != bb.shape.first() || b.shape.is_empty() || !fits {
                    return Err(bad(format!("view {i} does not lie within its base {base}")));
                }
            }
        }
    }
    for (k, io) in plan.inputs.iter().enumerate() {
        if plan.buffers.get(io.buffer).is_none_or(|b| b.kind != BufferKind::Input(k)) {
            return Err(bad(format!("input '{}' refers to buffer {} which is not input {k}", io.name, io.buffer)));
        }
    }
    for step in &plan.steps {
        let name = &step.name;
        for &b in &step.inputs {
            if b >= nb {
                return Err(bad(format!("step '{name}' reads buffer {b} of {nb}")));
            }
            // A buffer in a slot (its own, or its base's for a view) must still be resident there.
            let (holder, slot) = match plan.buffers[b].kind {
                BufferKind::View { base, .. } => (base, plan.buffers[base].slot()),
                _ => (b, plan.buffers[b].slot()),
            };
            let resident = slot.is_none_or(|s| occupant[s] == Some(holder));
            if !resident || (plan.buffers[b].view().is_none() && !written[b]) {
                return Err(bad(format!("step '{name}' reads buffer {b}, which does not hold its value then")));
            }
        }
        let out = step.output;
        let out_holder = plan.buffers.get(out).map(|b| b.view().map_or(out, |v| v.0));
        let Some(out_slot) = out_holder.and_then(|h| plan.buffers[h].slot()).filter(|_| !written[out]) else {
            return Err(bad(format!("step '{name}' writes buffer {out}, which is not a fresh activation")));
        };
        // Sharing the output's slot: a window of an arena is copied out first; any other operand must be
        // the op's in-place one, of the same size, and the output a buffer of its own.
        for (k, &b) in step.inputs.iter().enumerate() {
            if plan.buffers[b].slot() == Some(out_slot) {
                let same_len = sample_len(&plan.buffers[b].shape) == sample_len(&plan.buffers[out].shape);
                if step.op.in_place_input() != Some(k) || !same_len || plan.buffers[out].view().is_some() {
                    return Err(bad(format!(
                        "step '{name}' overwrites its input {k} in place, which its op cannot do"
                    )));
                }
            }
        }
        let arity = match &step.op {
            StepOp::MatMul | StepOp::Binary(_) => 2..=2,
            StepOp::Sum | StepOp::Concat { .. } => 1..=usize::MAX,
            StepOp::Conv(_) | StepOp::Gemm(_) => 1..=2,
            _ => 1..=1,
        };
        if !arity.contains(&step.inputs.len()) {
            return Err(bad(format!("step '{name}' has {} inputs", step.inputs.len())));
        }
        let in_shape = &plan.buffers[step.inputs[0]].shape;
        let out_shape = &plan.buffers[out].shape;
        let rank_is = |s: &[Dim], r: usize| s.len() == r;
        match &step.op {
            StepOp::Conv(c) => {
                range(&c.weight, name)?;
                let g = &c.geom;
                let ok = g.group > 0
                    && g.cin % g.group == 0
                    && g.cout % g.group == 0
                    && g.strides.iter().all(|&s| s > 0)
                    && g.dilations.iter().all(|&d| d > 0)
                    && c.weight.len
                        == match c.winograd {
                            Some(v) => crate::kernels::winograd::weights_len(g, v),
                            None => g.packed_weight_len(),
                        }
                    && (c.winograd.is_none() || crate::kernels::winograd::fits(g))
                    && rank_is(in_shape, 4)
                    && rank_is(out_shape, 4)
                    && in_shape[1] == Dim::Fixed(g.cin)
                    && out_shape[1] == Dim::Fixed(g.cout)
                    && in_shape[0] == out_shape[0];
                if !ok {
                    return Err(bad(format!("conv step '{name}' has inconsistent geometry")));
                }
                let (h, w) = (in_shape[2].resolve(1), in_shape[3].resolve(1));
                let (oh, ow) = (out_shape[2].resolve(1), out_shape[3].resolve(1));
                let fits = |len: usize, o: usize, a: usize| {
                    o > 0
                        && (o - 1) * g.strides[a] + g.dilations[a] * (g.kernel[a] - 1) < len + g.pads[a] + g.pads[a + 2]
                };
                if !fits(h, oh, 0) || !fits(w, ow, 1) {
                    return Err(bad(format!("conv step '{name}': output does not fit the input")));
                }
                if let Some(p) = &c.pre {
                    range(&p.scale, name)?;
                    range(&p.shift, name)?;
                    if p.scale.len != g.cin || p.shift.len != g.cin {
                        return Err(bad(format!(
                            "conv step '{name}': prologue length does not match {} channels",
                            g.cin
                        )));
                    }
                }
                if let Some(b) = &c.bias {
                    range(b, name)?;
                    if b.len != g.cout {
                        return Err(bad(format!("conv step '{name}': bias length {}", b.len)));
                    }
                }
            }
            StepOp::Gemm(gm) => {
                range(&gm.weight, name)?;
                if gm.weight.len != gm.k * gm.n
                    || !rank_is(in_shape, 2)
                    || !rank_is(out_shape, 2)
                    || out_shape[1] != Dim::Fixed(gm.n)
                {
                    return Err(bad(format!("gemm step '{name}' has inconsistent shapes")));
                }
                let (m_in, k_in) = if gm.trans_a { (in_shape[1], in_shape[0]) } else { (in_shape[0], in_shape[1]) };
                if k_in != Dim::Fixed(gm.k) || m_in != out_shape[0] {
                    return Err(bad(format!("gemm step '{name}': A does not match K={} ", gm.k)));
                }
                if let Some((c, cs)) = &gm.c {
                    range(c, name)?;
                    if cs.iter().product::<usize>() != c.len || cs.len() > 2 {
                        return Err(bad(format!("gemm step '{name}': C shape {cs:?}")));
                    }
                }
            }
            StepOp::ChannelAffine { scale, shift }
            | StepOp::AvgPoolPre { pre: crate::plan::PreStep { scale, shift, .. }, .. } => {
                range(scale, name)?;
                range(shift, name)?;
                if in_shape.len() < 2 || in_shape[1] != Dim::Fixed(scale.len) || shift.len != scale.len {
                    return Err(bad(format!("step '{name}': per-channel parameters do not match")));
                }
            }
            _ => {}
        }
        let has_skip = |residual: bool| -> Result<()> {
            let want = if residual { 2 } else { 1 };
            if step.inputs.len() != want || (residual && plan.buffers[step.inputs[1]].shape != plan.buffers[out].shape)
            {
                return Err(bad(format!("step '{name}': residual operand does not match the output")));
            }
            Ok(())
        };
        match &step.op {
            StepOp::Conv(c) => has_skip(c.residual)?,
            StepOp::Gemm(g) => has_skip(g.residual)?,
            _ => {}
        }
        for batch in [1, 2] {
            let shape = |b: usize| crate::plan::resolve(&plan.buffers[b].shape, batch);
            let ins: Vec<Vec<usize>> = step.inputs.iter().map(|&b| shape(b)).collect();
            step_shapes(&step.op, &ins, &shape(out))
                .map_err(|m| bad(format!("step '{name}' ({}): {m}", step.op.name())))?;
        }
        written[out] = true;
        occupant[out_slot] = out_holder;
    }
    for io in &plan.outputs {
        // A window (a concatenation) holds its value when its base does, checked below.
        if io.buffer >= nb || (!written[io.buffer] && plan.buffers[io.buffer].view().is_none()) {
            return Err(bad(format!("output '{}' is never written", io.name)));
        }
        let holder = plan.buffers[io.buffer].view().map_or(io.buffer, |v| v.0);
        if let Some(slot) = plan.buffers[holder].slot() {
            if occupant[slot] != Some(holder) {
                return Err(bad(format!("output '{}' is overwritten before the end", io.name)));
            }
        }
    }
    Ok(())
}

/// Checks that a step's output shape is what its op computes from its input shapes (concrete, at one
/// batch size), so that no kernel indexes past a buffer.
fn step_shapes(op: &StepOp, ins: &[Vec<usize>], out: &[usize]) -> std::result::Result<(), String> {
    use crate::kernels::elementwise::broadcast_shape;
    use crate::kernels::pool::pool_output_len;
    let numel = |s: &[usize]| s.iter().product::<usize>();
    let x = &ins[0];
    let fail = |what: &str| Err(format!("{what}: inputs {ins:?}, output {out:?}"));
    let ok = |cond: bool, what: &str| if cond { Ok(()) } else { fail(what) };
    match op {
        StepOp::Conv(c) => {
            ok(c.residual == (ins.len() == 2), "residual operand")?;
            ok(!c.residual || ins[1] == out, "residual shape")
        }
        StepOp::Gemm(g) => {
            let m = out[0];
            if let Some((_, cs)) = &g.c {
                let rows = if cs.len() == 2 { cs[0] } else { 1 };
                let cols = cs.last().copied().unwrap_or(1);
                ok((rows == 1 || rows == m) && (cols == 1 || cols == g.n), "C does not broadcast")?;
            }
            ok(g.residual == (ins.len() == 2), "residual operand")?;
            ok(!g.residual || ins[1] == out, "residual shape")
        }
        StepOp::MatMul => {
            let (a, b) = (&ins[0], &ins[1]);
            if a.len() < 2 || b.is_empty() {
                return fail("ranks");
            }
            let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
            let (kb, n, bb): (usize, Option<usize>, &[usize]) = if b.len() == 1 {
                (b[0], None, &[])
            } else {
                (b[b.len() - 2], Some(b[b.len() - 1]), &b[..b.len() - 2])
            };
            let Some(mut want) = broadcast_shape(&a[..a.len() - 2], bb) else { return fail("batch axes") };
            want.push(m);
            want.extend(n);
            ok(k == kb && want == out, "shapes")
        }
        StepOp::ChannelAffine { .. } => ok(x == out && x.len() >= 2, "shape"),
        StepOp::Unary(_) | StepOp::Copy => ok(numel(x) == numel(out), "element count"),
        StepOp::Binary(_) => ok(broadcast_shape(&ins[0], &ins[1]).as_deref() == Some(out), "broadcast"),
        StepOp::Sum => {
            let mut acc = ins[0].clone();
            for s in &ins[1..] {
                acc = match broadcast_shape(&acc, s) {
                    Some(b) => b,
                    None => return fail("broadcast"),
                };
            }
            ok(acc == out, "broadcast")
        }
        StepOp::MaxPool(p) | StepOp::AvgPool(p) | StepOp::AvgPoolPre { pool: p, .. } => {
            if x.len() != 4 || out.len() != 4 || x[..2] != out[..2] {
                return fail("NCHW shapes");
            }
            let positive = p.kernel.iter().chain(&p.strides).chain(&p.dilations).all(|&v| v > 0);
            if !positive {
                return fail("kernel, strides and dilations must be positive");
            }
            for a in 0..2 {
                let (pb, pe) = (p.pads[a], p.pads[a + 2]);
                let lo = pool_output_len(x[2 + a], p.kernel[a], p.strides[a], pb, pe, p.dilations[a], false);
                let hi = pool_output_len(x[2 + a], p.kernel[a], p.strides[a], pb, pe, p.dilations[a], true);
                if out[2 + a] == 0 || out[2 + a] < lo || out[2 + a] > hi || pb >= p.kernel[a] || pe >= p.kernel[a] {
                    return fail("window geometry");
                }
            }
            Ok(())
        }
        StepOp::GlobalAvgPool => {
            ok(x.len() >= 3 && numel(out) == x[0] * x[1] && x[2..].iter().all(|&d| d > 0), "shape")
        }
        StepOp::Softmax { axis } => ok(*axis < x.len() && x == out, "shape"),
        StepOp::Concat { axis } => {
            let a = *axis;
            let same = ins
                .iter()
                .all(|s| s.len() == out.len() && s.iter().zip(out).enumerate().all(|(i, (d, o))| i == a || d == o));
            ok(a < out.len() && same && ins.iter().map(|s| s[a]).sum::<usize>() == out[a], "shapes")
        }
        StepOp::Pad { pads, .. } => {
            let r = x.len();
            let fits = pads.len() == 2 * r
                && out.len() == r
                && (0..r).all(|i| x[i].checked_add(pads[i]).and_then(|v| v.checked_add(pads[i + r])) == Some(out[i]));
            ok(fits, "pads")
        }
    }
}
