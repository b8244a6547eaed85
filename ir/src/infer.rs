//! Shape inference: each op's output type from its operands' types. Errors name the node and say
//! expected versus got.

use crate::dim::{fmt_shape, Dim, Volume};
use crate::graph::{Graph, GraphError, NodeId};
use crate::op::{Op, PoolKind};
use crate::tensor::{DType, TensorType};
use std::collections::HashMap;

impl Graph {
    /// Recomputes every node's type from its operands, in topological order.
    pub fn infer_shapes(&mut self) -> Result<(), GraphError> {
        for (id, ty) in self.inferred_types()? {
            self.g[id].ty = ty;
        }
        Ok(())
    }

    /// Every node's type as inference computes it from the inputs, without changing the graph.
    pub fn inferred_types(&self) -> Result<HashMap<NodeId, TensorType>, GraphError> {
        let mut types: HashMap<NodeId, TensorType> = HashMap::new();
        for id in self.topo_order()? {
            let node = &self.g[id];
            let ty = if matches!(node.op, Op::Input) {
                node.ty.clone()
            } else {
                let ins: Vec<TensorType> = self.inputs_of(id).iter().map(|i| types[i].clone()).collect();
                infer(&node.op, &ins).map_err(|msg| GraphError::Shape {
                    node: node.name.clone(),
                    op: node.op.name(),
                    msg,
                })?
            };
            types.insert(id, ty);
        }
        Ok(types)
    }
}

fn need_rank(t: &TensorType, rank: usize, what: &str) -> Result<(), String> {
    if t.rank() != rank {
        return Err(format!("expected a rank-{rank} {what}, got {}", fmt_shape(&t.shape)));
    }
    Ok(())
}

fn need_f32(t: &TensorType) -> Result<(), String> {
    if t.dtype != DType::F32 {
        return Err(format!("expected float32 input, got {}", t.dtype));
    }
    Ok(())
}

/// Output length of a convolution or pooling window along one axis.
pub fn window_out(len: usize, k: usize, s: usize, pb: usize, pe: usize, d: usize, ceil: bool) -> Result<usize, String> {
    if k == 0 || d == 0 || s == 0 {
        return Err(format!("kernel {k}, dilation {d} and stride {s} must be at least 1"));
    }
    // Checked: kernel, dilation and pads are arbitrary integers from the file.
    let eff = (k - 1).checked_mul(d).and_then(|e| e.checked_add(1));
    let padded = len.checked_add(pb).and_then(|p| p.checked_add(pe));
    let (Some(eff), Some(padded)) = (eff, padded) else {
        return Err(format!("kernel {k}, dilation {d} and pads {pb}+{pe} are too large"));
    };
    if padded < eff {
        return Err(format!("window of {eff} does not fit an input of {len} padded to {padded}"));
    }
    let span = padded - eff;
    let mut out = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
    // With ceil_mode, a window that would start in the end padding is dropped (ONNX/PyTorch).
    if ceil && (out - 1) * s >= len + pb {
        out -= 1;
    }
    Ok(out)
}

fn fixed(d: &Dim, what: &str) -> Result<usize, String> {
    d.fixed().ok_or_else(|| format!("{what} must be known at compile time, got '{d}'"))
}

/// NumPy broadcasting of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let r = a.len().max(b.len());
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r].clone() } else { Dim::Fixed(1) };
        let db = if i + b.len() >= r { b[i + b.len() - r].clone() } else { Dim::Fixed(1) };
        out.push(match (&da, &db) {
            (x, y) if x == y => da,
            (Dim::Fixed(1), _) => db,
            (_, Dim::Fixed(1)) => da,
            _ => return Err(format!("shapes {} and {} do not broadcast", fmt_shape(a), fmt_shape(b))),
        });
    }
    Ok(out)
}

/// A residual operand (operand 1 of a Conv or Gemm) must have the output's type exactly.
fn residual(ins: &[TensorType], out: TensorType) -> Result<TensorType, String> {
    match ins.get(1) {
        Some(skip) if *skip != out => Err(format!("residual operand {skip} does not match the output {out}")),
        _ => Ok(out),
    }
}

/// The output type of `op` applied to operands of types `ins`.
pub fn infer(op: &Op, ins: &[TensorType]) -> Result<TensorType, String> {
    let x = || ins.first().ok_or_else(|| "missing operand".to_string());
    match op {
        Op::Input => Err("an Input has no inferred type".into()),
        Op::Const(t) => Ok(t.ty()),
        Op::Conv(c) => {
            let x = x()?;
            need_f32(x)?;
            need_rank(x, 4, "NCHW input")?;
            let cin = fixed(&x.shape[1], "input channels")?;
            let w = &c.weight.shape;
            if w.len() != 4 {
                return Err(format!("expected a rank-4 weight, got {w:?}"));
            }
            if c.group == 0 || cin != w[1] * c.group || w[0] % c.group != 0 {
                return Err(format!(
                    "weight {:?} with group {} expects {} input channels, got {cin}",
                    w,
                    c.group,
                    w[1] * c.group
                ));
            }
            if let Some(b) = &c.bias {
                if b.shape != [w[0]] {
                    return Err(format!("bias shape {:?} does not match {} output channels", b.shape, w[0]));
                }
            }
            let mut shape = vec![x.shape[0].clone(), Dim::Fixed(w[0])];
            for a in 0..2 {
                let len = fixed(&x.shape[2 + a], "spatial size")?;
                shape.push(Dim::Fixed(window_out(
                    len,
                    w[2 + a],
                    c.strides[a],
                    c.pads[a],
                    c.pads[2 + a],
                    c.dilations[a],
                    false,
                )?));
            }
            residual(ins, TensorType::f32(shape))
        }
        Op::BatchNorm(b) => {
            let x = x()?;
            need_f32(x)?;
            if x.rank() < 2 {
                return Err(format!("expected rank >= 2, got {}", fmt_shape(&x.shape)));
            }
            let c = fixed(&x.shape[1], "channels")?;
            for (n, t) in [("scale", &b.scale), ("bias", &b.bias), ("mean", &b.mean), ("var", &b.var)] {
                if t.shape != [c] {
                    return Err(format!("{n} has shape {:?}, expected [{c}]", t.shape));
                }
            }
            Ok(x.clone())
        }
        Op::Gemm(g) => {
            let a = x()?;
            need_f32(a)?;
            need_rank(a, 2, "A")?;
            if g.b.shape.len() != 2 {
                return Err(format!("expected a rank-2 B, got {:?}", g.b.shape));
            }
            let (m, ka) = if g.trans_a { (&a.shape[1], &a.shape[0]) } else { (&a.shape[0], &a.shape[1]) };
            let (k, n) = g.kn();
            if ka != &Dim::Fixed(k) {
                return Err(format!("A is {} but B needs K = {k}", fmt_shape(&a.shape)));
            }
            let out = vec![m.clone(), Dim::Fixed(n)];
            if let Some(c) = &g.c {
                let cs: Vec<Dim> = c.shape.iter().map(|&d| Dim::Fixed(d)).collect();
                let bc = broadcast(&out, &cs)?;
                if bc != out {
                    return Err(format!("C {:?} does not broadcast to {}", c.shape, fmt_shape(&out)));
                }
            }
            residual(ins, TensorType::f32(out))
        }
        Op::MatMul => {
            let (a, b) = (&ins[0], &ins[1]);
            need_f32(a)?;
            need_f32(b)?;
            if a.rank() < 2 || b.rank() < 1 || a.rank() < 1 {
                return Err(format!("unsupported MatMul ranks {} x {}", fmt_shape(&a.shape), fmt_shape(&b.shape)));
            }
            if b.rank() == 1 {
                let k = &a.shape[a.rank() - 1];
                if k != &b.shape[0] {
                    return Err(format!("inner dims differ: {} x {}", fmt_shape(&a.shape), fmt_shape(&b.shape)));
                }
                return Ok(TensorType::f32(a.shape[..a.rank() - 1].to_vec()));
            }
            let (ka, kb) = (&a.shape[a.rank() - 1], &b.shape[b.rank() - 2]);
            if ka != kb {
                return Err(format!("inner dims differ: {} x {}", fmt_shape(&a.shape), fmt_shape(&b.shape)));
            }
            let mut out = broadcast(&a.shape[..a.rank() - 2], &b.shape[..b.rank() - 2])?;
            out.push(a.shape[a.rank() - 2].clone());
            out.push(b.shape[b.rank() - 1].clone());
            Ok(TensorType::f32(out))
        }
        Op::Relu | Op::Sigmoid | Op::Clip { .. } | Op::Identity => {
            let x = x()?;
            need_f32(x)?;
            Ok(x.clone())
        }
        Op::Softmax { axis } => {
            let x = x()?;
            need_f32(x)?;
            if *axis >= x.rank() {
                return Err(format!("axis {axis} out of range for {}", fmt_shape(&x.shape)));
            }
            Ok(x.clone())
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Sum => {
            let mut shape = x()?.shape.clone();
            for t in ins {
                need_f32(t)?;
                shape = broadcast(&shape, &t.shape)?;
            }
            Ok(TensorType::f32(shape))
        }
        Op::Pool(p) => {
            let x = x()?;
            need_f32(x)?;
            need_rank(x, 4, "NCHW input")?;
            let mut shape = x.shape[..2].to_vec();
            for a in 0..2 {
                let len = fixed(&x.shape[2 + a], "spatial size")?;
                let d = if p.kind == PoolKind::Max { p.dilations[a] } else { 1 };
                shape.push(Dim::Fixed(window_out(
                    len,
                    p.kernel[a],
                    p.strides[a],
                    p.pads[a],
                    p.pads[2 + a],
                    d,
                    p.ceil_mode,
                )?));
            }
            for a in 0..2 {
                if p.pads[a] >= p.kernel[a] || p.pads[a + 2] >= p.kernel[a] {
                    return Err(format!("pads {:?} must be smaller than the kernel {:?}", p.pads, p.kernel));
                }
            }
            Ok(TensorType::f32(shape))
        }
        Op::GlobalAvgPool => {
            let x = x()?;
            need_f32(x)?;
            if x.rank() < 3 {
                return Err(format!("expected rank >= 3, got {}", fmt_shape(&x.shape)));
            }
            let mut shape = x.shape[..2].to_vec();
            shape.extend(std::iter::repeat_n(Dim::Fixed(1), x.rank() - 2));
            Ok(TensorType::f32(shape))
        }
        Op::Flatten { axis } => {
            let x = x()?;
            if *axis > x.rank() {
                return Err(format!("axis {axis} out of range for {}", fmt_shape(&x.shape)));
            }
            let prod = |s: &[Dim]| -> Result<Dim, String> {
                let v = Volume::of(s);
                v.div(&Volume { fixed: 1, syms: vec![] })
                    .ok_or_else(|| format!("cannot flatten {} with more than one symbolic dim", fmt_shape(s)))
            };
            Ok(TensorType { dtype: x.dtype, shape: vec![prod(&x.shape[..*axis])?, prod(&x.shape[*axis..])?] })
        }
        Op::Reshape { shape } => {
            let x = x()?;
            if Volume::of(&x.shape) != Volume::of(shape) {
                return Err(format!("cannot reshape {} to {}", fmt_shape(&x.shape), fmt_shape(shape)));
            }
            Ok(TensorType { dtype: x.dtype, shape: shape.clone() })
        }
        Op::Concat { axis } => {
            let first = x()?;
            if *axis >= first.rank() {
                return Err(format!("axis {axis} out of range for {}", fmt_shape(&first.shape)));
            }
            let mut total = 0usize;
            for t in ins {
                if t.rank() != first.rank() || t.dtype != first.dtype {
                    return Err(format!("operands {} and {} differ in rank or dtype", first, t));
                }
                for a in 0..t.rank() {
                    if a != *axis && t.shape[a] != first.shape[a] {
                        return Err(format!(
                            "operands {} and {} differ outside axis {axis}",
                            fmt_shape(&first.shape),
                            fmt_shape(&t.shape)
                        ));
                    }
                }
                total = total
                    .checked_add(fixed(&t.shape[*axis], "the concatenated axis")?)
                    .ok_or_else(|| "the concatenated axis is too large".to_string())?;
            }
            let mut shape = first.shape.clone();
            shape[*axis] = Dim::Fixed(total);
            Ok(TensorType { dtype: first.dtype, shape })
        }
        Op::Pad { pads, .. } => {
            let x = x()?;
            need_f32(x)?;
            let r = x.rank();
            if pads.len() != 2 * r {
                return Err(format!("expected {} pads for rank {r}, got {}", 2 * r, pads.len()));
            }
            let mut shape = x.shape.clone();
            for a in 0..r {
                if pads[a] > 0 || pads[a + r] > 0 {
                    let padded = fixed(&x.shape[a], "a padded axis")?
                        .checked_add(pads[a])
                        .and_then(|n| n.checked_add(pads[a + r]))
                        .ok_or_else(|| format!("pads {pads:?} are too large"))?;
                    shape[a] = Dim::Fixed(padded);
                }
            }
            Ok(TensorType::f32(shape))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_drops_window_starting_in_padding() {
        // 112 -> 56 for ResNet's stem max pool (k3 s2 p1)
        assert_eq!(window_out(112, 3, 2, 1, 1, 1, false).unwrap(), 56);
        // 5 with k2 s2 ceil: 3 windows
        assert_eq!(window_out(5, 2, 2, 0, 0, 1, true).unwrap(), 3);
        // 4 with k2 s2 p1 ceil: windows start at -1,1,3 -> 3 (start 3 < 4+1)
        assert_eq!(window_out(4, 2, 2, 1, 1, 1, true).unwrap(), 3);
    }

    #[test]
    fn broadcasting_symbolic_batch() {
        let a = vec![Dim::Sym("batch".into()), Dim::Fixed(8), Dim::Fixed(4), Dim::Fixed(4)];
        let b = vec![Dim::Fixed(8), Dim::Fixed(1), Dim::Fixed(1)];
        assert_eq!(broadcast(&a, &b).unwrap(), a);
        assert!(broadcast(&a, &[Dim::Fixed(3)]).is_err());
    }
}
