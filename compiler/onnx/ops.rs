//! One translator per ONNX op: attributes and constant operands read, checked and turned into an IR op.
//! Errors here are wrapped by the driver with the node's name, op and opset.

use super::import::{Importer, Value};
use super::proto::{self, Attrs};
use anyhow::{anyhow, bail, Result};
use resin_ir::dim::Volume;
use resin_ir::op::{BatchNorm, Conv, Gemm, PadMode, Pool, PoolKind};
use resin_ir::{Dim, NodeId, Op, Tensor, TensorData};
use tract_onnx::pb::NodeProto;

/// The name of input `i`, if present and non-empty.
fn input(n: &NodeProto, i: usize) -> Option<&str> {
    n.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

fn required(n: &NodeProto, i: usize) -> Result<&str> {
    input(n, i).ok_or_else(|| anyhow!("missing input {i}"))
}

/// A float constant operand (a layer weight): error if it is computed at run time.
fn const_f32(imp: &Importer, n: &NodeProto, i: usize, what: &str) -> Result<Option<Tensor>> {
    let Some(name) = input(n, i) else { return Ok(None) };
    imp.value(name)?;
    let t = imp.constant(name).ok_or_else(|| anyhow!("the {what} '{name}' must be a constant initializer"))?;
    match t.data {
        TensorData::F32(_) => Ok(Some(t)),
        TensorData::I64(_) => bail!("the {what} '{name}' must be float32, got int64"),
    }
}

/// A constant integer vector (possibly with symbolic elements).
fn ints(imp: &Importer, name: &str, what: &str) -> Result<(Vec<Dim>, bool)> {
    match imp.value(name)? {
        Value::Ints { dims, scalar } => Ok((dims.clone(), *scalar)),
        _ => {
            let t = imp.constant(name).ok_or_else(|| anyhow!("the {what} '{name}' must be constant"))?;
            let v = t.as_i64().ok_or_else(|| anyhow!("the {what} '{name}' must be an integer tensor"))?;
            if t.shape.len() > 1 {
                bail!("the {what} '{name}' must be 0-D or 1-D, got shape {:?}", t.shape);
            }
            let dims = v.iter().map(|&x| Dim::Fixed(x as usize)).collect();
            Ok((dims, t.shape.is_empty()))
        }
    }
}

/// A constant integer vector with concrete (possibly negative) values.
fn int_values(imp: &Importer, name: &str, what: &str) -> Result<Vec<i64>> {
    if let Some(t) = imp.constant(name) {
        return t.as_i64().map(<[i64]>::to_vec).ok_or_else(|| anyhow!("the {what} '{name}' must be an integer tensor"));
    }
    match imp.value(name)? {
        Value::Ints { .. } => bail!("the {what} '{name}' depends on a dynamic dimension"),
        _ => bail!("the {what} '{name}' must be constant"),
    }
}

fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Explicit [begin.., end..] pads for `auto_pad` over spatial sizes.
fn resolve_auto_pad(
    mode: &str,
    pads: Option<Vec<usize>>,
    spatial: &[Dim],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Result<Vec<usize>> {
    let r = kernel.len();
    match mode {
        "NOTSET" | "" => {
            let p = pads.unwrap_or_else(|| vec![0; 2 * r]);
            if p.len() != 2 * r {
                bail!("pads has {} values, expected {}", p.len(), 2 * r);
            }
            Ok(p)
        }
        "VALID" => Ok(vec![0; 2 * r]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = vec![0; 2 * r];
            for a in 0..r {
                let len = spatial[a].fixed().ok_or_else(|| anyhow!("auto_pad {mode} needs known spatial sizes"))?;
                let out = len.div_ceil(strides[a]);
                let need = ((out - 1) * strides[a] + (kernel[a] - 1) * dilations[a] + 1).saturating_sub(len);
                let (small, big) = (need / 2, need - need / 2);
                if mode == "SAME_UPPER" {
                    (p[a], p[a + r]) = (small, big);
                } else {
                    (p[a], p[a + r]) = (big, small);
                }
            }
            Ok(p)
        }
        other => bail!("auto_pad '{other}' is not supported"),
    }
}

fn two(v: Vec<usize>, what: &str) -> Result<[usize; 2]> {
    <[usize; 2]>::try_from(v.as_slice()).map_err(|_| anyhow!("{what} must have 2 values for 2-D, got {v:?}"))
}

fn four(v: Vec<usize>) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(v.as_slice()).map_err(|_| anyhow!("pads must have 4 values for 2-D, got {v:?}"))
}

fn positive(v: &[usize], what: &str) -> Result<()> {
    if v.contains(&0) {
        bail!("{what} must be positive, got {v:?}");
    }
    Ok(())
}

/// Translates one ONNX node.
pub fn import_node(imp: &mut Importer, n: &NodeProto) -> Result<()> {
    let a = Attrs { node: n };
    let out = n.output.first().filter(|s| !s.is_empty()).ok_or_else(|| anyhow!("the node has no output"))?.clone();
    if let Some(t) = fold_constant(imp, n)? {
        imp.values.insert(out, Value::Const(t));
        return Ok(());
    }
    let v = match n.op_type.as_str() {
        "Conv" => conv(imp, n, &a)?,
        "BatchNormalization" => {
            if a.int("training_mode", 0)? != 0 {
                bail!("training_mode=1 is not supported for inference");
            }
            if n.output.iter().skip(1).any(|o| !o.is_empty()) {
                bail!("the running-statistics outputs of training mode are not supported");
            }
            let x = imp.node_for(required(n, 0)?)?;
            let get = |i, w| const_f32(imp, n, i, w)?.ok_or_else(|| anyhow!("missing {w}"));
            let bn = BatchNorm {
                scale: get(1, "scale")?,
                bias: get(2, "bias")?,
                mean: get(3, "mean")?,
                var: get(4, "variance")?,
                epsilon: a.float("epsilon", 1e-5)?,
            };
            node(imp, n, Op::BatchNorm(bn), &[x])?
        }
        "Relu" => unary(imp, n, Op::Relu)?,
        "Sigmoid" => unary(imp, n, Op::Sigmoid)?,
        "Clip" => {
            let (min, max) = if imp.opset < 11 {
                (a.float("min", f32::NEG_INFINITY)?, a.float("max", f32::INFINITY)?)
            } else {
                let scalar = |i| -> Result<Option<f32>> {
                    Ok(match const_f32(imp, n, i, if i == 1 { "min" } else { "max" })? {
                        None => None,
                        Some(t) if t.len() == 1 => Some(t.as_f32().unwrap()[0]),
                        Some(t) => bail!("min and max must be scalars, got shape {:?}", t.shape),
                    })
                };
                (scalar(1)?.unwrap_or(f32::NEG_INFINITY), scalar(2)?.unwrap_or(f32::INFINITY))
            };
            unary(imp, n, Op::Clip { min, max })?
        }
        "Softmax" => softmax(imp, n, &a)?,
        "Add" | "Sub" | "Mul" | "Div" => binary(imp, n)?,
        "Sum" => {
            let ids = n.input.iter().filter(|s| !s.is_empty()).map(|s| imp.node_for(s)).collect::<Result<Vec<_>>>()?;
            if ids.is_empty() {
                bail!("Sum needs at least one input");
            }
            node(imp, n, Op::Sum, &ids)?
        }
        "MaxPool" | "AveragePool" => pool(imp, n, &a)?,
        "GlobalAveragePool" => unary(imp, n, Op::GlobalAvgPool)?,
        "Flatten" => {
            let x = imp.node_for(required(n, 0)?)?;
            let rank = imp.g.node(x).ty.rank();
            let axis = a.int("axis", 1)?;
            let axis = if axis == rank as i64 { rank } else { norm_axis(axis, rank)? };
            node(imp, n, Op::Flatten { axis }, &[x])?
        }
        "Reshape" => reshape(imp, n, &a)?,
        "Unsqueeze" | "Squeeze" => squeeze(imp, n, &a)?,
        "Gemm" => {
            let x = imp.node_for(required(n, 0)?)?;
            let b = const_f32(imp, n, 1, "B")?.ok_or_else(|| anyhow!("missing B"))?;
            let c = const_f32(imp, n, 2, "C")?;
            let g = Gemm {
                b,
                c,
                alpha: a.float("alpha", 1.0)?,
                beta: a.float("beta", 1.0)?,
                trans_a: a.int("transA", 0)? != 0,
                trans_b: a.int("transB", 0)? != 0,
                act: None,
            };
            node(imp, n, Op::Gemm(g), &[x])?
        }
        "MatMul" => {
            let x = imp.node_for(required(n, 0)?)?;
            let y = imp.node_for(required(n, 1)?)?;
            node(imp, n, Op::MatMul, &[x, y])?
        }
        "Concat" => concat(imp, n, &a)?,
        "Identity" | "Dropout" => {
            if let Some(mask) = n.output.get(1).filter(|m| !m.is_empty()) {
                imp.refused.insert(mask.clone(), "the mask output of Dropout".into());
            }
            if n.op_type == "Dropout" {
                if let Some(t) = input(n, 2) {
                    let training = int_values(imp, t, "training_mode").unwrap_or_default();
                    if training.first().copied().unwrap_or(0) != 0 {
                        bail!("training_mode=true is not supported for inference");
                    }
                }
            }
            let x = required(n, 0)?;
            match imp.value(x)?.clone() {
                Value::Node(id) => node(imp, n, Op::Identity, &[id])?,
                other => other,
            }
        }
        "Constant" => constant(&a)?,
        "Pad" => pad(imp, n, &a)?,
        "Shape" => {
            let ty = imp.type_of(required(n, 0)?)?;
            let r = ty.rank() as i64;
            let clamp = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) } as usize;
            let (s, e) = (clamp(a.int("start", 0)?), clamp(a.int("end", r)?));
            Value::Ints { dims: ty.shape[s..e.max(s)].to_vec(), scalar: false }
        }
        "Gather" => {
            let (data, _) = ints(imp, required(n, 0)?, "data")?;
            if a.int("axis", 0)? != 0 {
                bail!("only axis 0 is supported for Gather on shape values");
            }
            let idx_name = required(n, 1)?;
            let idx = imp.constant(idx_name).ok_or_else(|| anyhow!("indices '{idx_name}' must be constant"))?;
            let iv = idx.as_i64().ok_or_else(|| anyhow!("indices must be integers"))?;
            let dims = iv
                .iter()
                .map(|&i| {
                    let k = norm_axis(i, data.len())
                        .map_err(|_| anyhow!("index {i} out of range for {} values", data.len()))?;
                    Ok(data[k].clone())
                })
                .collect::<Result<Vec<_>>>()?;
            Value::Ints { dims, scalar: idx.shape.is_empty() }
        }
        "Cast" => {
            let x = required(n, 0)?;
            let to = a.int("to", 0)?;
            match (imp.value(x)?.clone(), to) {
                (Value::Node(id), 1) if imp.g.node(id).ty.dtype == resin_ir::DType::F32 => {
                    node(imp, n, Op::Identity, &[id])?
                }
                (v @ Value::Ints { .. }, 6 | 7) => v,
                (Value::Const(t), 1) => Value::Const(Tensor::f32(t.shape.clone(), t.to_f32_vec())),
                (Value::Const(t), 6 | 7) if t.as_i64().is_some() => Value::Const(t),
                _ => bail!("Cast to dtype {to} is supported only between float32 values or on integer constants"),
            }
        }
        "Transpose" => bail!("Transpose is supported on constants only (it is folded at import), not on runtime data"),
        other => bail!("unsupported op '{other}' (supported: {})", super::SUPPORTED_OPS.join(", ")),
    };
    imp.values.insert(out, v);
    Ok(())
}

/// Evaluates `n` now when every operand is a constant (see `fold.rs`).
fn fold_constant(imp: &Importer, n: &NodeProto) -> Result<Option<Tensor>> {
    if !super::fold::FOLDABLE.contains(&n.op_type.as_str()) || n.input.iter().all(String::is_empty) {
        return Ok(None);
    }
    let mut ins = Vec::with_capacity(n.input.len());
    for name in &n.input {
        if name.is_empty() {
            ins.push(None);
            continue;
        }
        imp.value(name)?;
        match imp.constant(name) {
            Some(t) => ins.push(Some(t)),
            None => return Ok(None),
        }
    }
    super::fold::eval(n, &ins, imp.opset)
}

fn node(imp: &mut Importer, n: &NodeProto, op: Op, ins: &[NodeId]) -> Result<Value> {
    Ok(Value::Node(imp.add(n, op, ins)?))
}

fn unary(imp: &mut Importer, n: &NodeProto, op: Op) -> Result<Value> {
    let x = imp.node_for(required(n, 0)?)?;
    node(imp, n, op, &[x])
}

fn conv(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = imp.node_for(required(n, 0)?)?;
    let weight = const_f32(imp, n, 1, "weight")?.ok_or_else(|| anyhow!("missing weight"))?;
    if weight.shape.len() != 4 {
        bail!("only 2-D convolution is supported (weight shape {:?})", weight.shape);
    }
    let kernel = [weight.shape[2], weight.shape[3]];
    if let Some(ks) = a.usizes("kernel_shape")? {
        if ks != kernel {
            bail!("kernel_shape {ks:?} does not match the weight's {kernel:?}");
        }
    }
    let bias = const_f32(imp, n, 2, "bias")?;
    let strides = a.usizes("strides")?.unwrap_or(vec![1, 1]);
    let dilations = a.usizes("dilations")?.unwrap_or(vec![1, 1]);
    positive(&strides, "strides")?;
    positive(&dilations, "dilations")?;
    let xs = imp.g.node(x).ty.shape.clone();
    if xs.len() != 4 {
        bail!("expected an NCHW input, got rank {}", xs.len());
    }
    let pads =
        resolve_auto_pad(&a.string("auto_pad", "NOTSET")?, a.usizes("pads")?, &xs[2..], &kernel, &strides, &dilations)?;
    let group = usize::try_from(a.int("group", 1)?).map_err(|_| anyhow!("group must be positive"))?;
    let c = Conv {
        weight,
        bias,
        strides: two(strides, "strides")?,
        pads: four(pads)?,
        dilations: two(dilations, "dilations")?,
        group,
        act: None,
        pre: None,
    };
    node(imp, n, Op::Conv(c), &[x])
}

fn pool(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = imp.node_for(required(n, 0)?)?;
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        bail!("the Indices output of MaxPool is not supported");
    }
    let xs = imp.g.node(x).ty.shape.clone();
    if xs.len() != 4 {
        bail!("only 2-D pooling over NCHW input is supported, got rank {}", xs.len());
    }
    let kernel = a.usizes("kernel_shape")?.ok_or_else(|| anyhow!("kernel_shape is required"))?;
    positive(&kernel, "kernel_shape")?;
    let strides = a.usizes("strides")?.unwrap_or(vec![1; kernel.len()]);
    let dilations = a.usizes("dilations")?.unwrap_or(vec![1; kernel.len()]);
    positive(&strides, "strides")?;
    positive(&dilations, "dilations")?;
    if a.int("storage_order", 0)? != 0 {
        bail!("storage_order=1 is not supported");
    }
    let kind = if n.op_type == "MaxPool" { PoolKind::Max } else { PoolKind::Avg };
    if kind == PoolKind::Avg && dilations.iter().any(|&d| d != 1) {
        bail!("dilated AveragePool is not supported");
    }
    let pads =
        resolve_auto_pad(&a.string("auto_pad", "NOTSET")?, a.usizes("pads")?, &xs[2..], &kernel, &strides, &dilations)?;
    let p = Pool {
        kind,
        kernel: two(kernel, "kernel_shape")?,
        strides: two(strides, "strides")?,
        pads: four(pads)?,
        dilations: two(dilations, "dilations")?,
        ceil_mode: a.int("ceil_mode", 0)? != 0,
        count_include_pad: a.int("count_include_pad", 0)? != 0,
        pre: None,
    };
    node(imp, n, Op::Pool(p), &[x])
}

fn softmax(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = imp.node_for(required(n, 0)?)?;
    let ty = imp.g.node(x).ty.clone();
    let rank = ty.rank();
    let axis = norm_axis(a.int("axis", if imp.opset < 13 { 1 } else { -1 })?, rank)?;
    if imp.opset >= 13 || axis + 1 == rank {
        return node(imp, n, Op::Softmax { axis }, &[x]);
    }
    // Before opset 13, Softmax normalizes over all axes from `axis` on: flatten, softmax, reshape back.
    let base = super::import::node_name(n);
    let flat = imp.g.add_node(format!("{base}/flatten"), Op::Flatten { axis }, ty.clone());
    imp.g.connect(x, flat, 0);
    imp.g.infer_shapes().map_err(|e| anyhow!(e))?;
    let sm = imp.g.add_node(format!("{base}/softmax"), Op::Softmax { axis: 1 }, imp.g.node(flat).ty.clone());
    imp.g.connect(flat, sm, 0);
    node(imp, n, Op::Reshape { shape: ty.shape }, &[sm])
}

fn binary(imp: &mut Importer, n: &NodeProto) -> Result<Value> {
    let (l, r) = (required(n, 0)?, required(n, 1)?);
    // Integer shape arithmetic on fixed values folds here.
    if let (Ok((x, xs)), Ok((y, ys))) = (ints(imp, l, "operand"), ints(imp, r, "operand")) {
        let fx: Option<Vec<i64>> = x.iter().map(|d| d.fixed().map(|v| v as i64)).collect();
        let fy: Option<Vec<i64>> = y.iter().map(|d| d.fixed().map(|v| v as i64)).collect();
        if let (Some(fx), Some(fy)) = (fx, fy) {
            if fx.len() == fy.len() || fx.len() == 1 || fy.len() == 1 {
                let len = fx.len().max(fy.len());
                let at = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
                let vals: Vec<i64> = (0..len)
                    .map(|i| {
                        let (p, q) = (at(&fx, i), at(&fy, i));
                        match n.op_type.as_str() {
                            "Add" => p + q,
                            "Sub" => p - q,
                            "Mul" => p * q,
                            _ => {
                                if q == 0 {
                                    0
                                } else {
                                    p / q
                                }
                            }
                        }
                    })
                    .collect();
                if vals.iter().all(|&v| v >= 0) {
                    return Ok(Value::Ints {
                        dims: vals.iter().map(|&v| Dim::Fixed(v as usize)).collect(),
                        scalar: xs && ys,
                    });
                }
                return Ok(Value::Const(Tensor::i64(if xs && ys { vec![] } else { vec![len] }, vals)));
            }
        }
    }
    let op = match n.op_type.as_str() {
        "Add" => Op::Add,
        "Sub" => Op::Sub,
        "Mul" => Op::Mul,
        _ => Op::Div,
    };
    let (x, y) = (imp.node_for(l)?, imp.node_for(r)?);
    node(imp, n, op, &[x, y])
}

fn reshape(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let data = required(n, 0)?;
    let in_ty = imp.type_of(data)?;
    let (target, _) = ints(imp, required(n, 1)?, "shape")?;
    let allowzero = a.int("allowzero", 0)? != 0;
    // Values arrive as usize (from Ints); negative entries come through constants.
    let raw: Vec<Option<i64>> = match imp.constant(required(n, 1)?) {
        Some(t) => t.as_i64().ok_or_else(|| anyhow!("shape must be int64"))?.iter().map(|&v| Some(v)).collect(),
        None => target.iter().map(|d| d.fixed().map(|v| v as i64)).collect(),
    };
    let mut shape = Vec::with_capacity(raw.len());
    let mut infer_at = None;
    for (i, v) in raw.iter().enumerate() {
        match v {
            None => shape.push(target[i].clone()),
            Some(0) if !allowzero => shape.push(
                in_ty.shape.get(i).cloned().ok_or_else(|| anyhow!("shape value 0 at {i} has no input dim to copy"))?,
            ),
            Some(0) => bail!("zero-size tensors are not supported"),
            Some(-1) if infer_at.is_none() => {
                infer_at = Some(i);
                shape.push(Dim::Fixed(1));
            }
            Some(x) if *x > 0 => shape.push(Dim::Fixed(*x as usize)),
            Some(x) => bail!("invalid shape value {x}"),
        }
    }
    if let Some(i) = infer_at {
        shape[i] = Volume::of(&in_ty.shape)
            .div(&Volume::of(&shape))
            .ok_or_else(|| anyhow!("cannot infer -1 reshaping {} to {:?}", in_ty, raw))?;
    }
    if let Some(t) = imp.constant(data) {
        let dims: Option<Vec<usize>> = shape.iter().map(Dim::fixed).collect();
        let dims = dims.ok_or_else(|| anyhow!("constant reshaped to a dynamic shape"))?;
        if dims.iter().product::<usize>() != t.len() {
            bail!("cannot reshape constant of shape {:?} to {:?}", t.shape, dims);
        }
        return Ok(Value::Const(Tensor { shape: dims, data: t.data }));
    }
    let x = imp.node_for(data)?;
    node(imp, n, Op::Reshape { shape }, &[x])
}

fn squeeze(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let data = required(n, 0)?;
    let axes: Option<Vec<i64>> =
        if imp.opset < 13 { a.ints("axes")? } else { input(n, 1).map(|s| int_values(imp, s, "axes")).transpose()? };
    let unsq = n.op_type == "Unsqueeze";
    if let Value::Ints { dims, scalar } = imp.value(data)?.clone() {
        let axes = axes.unwrap_or_default();
        return match (unsq, scalar, axes.as_slice()) {
            (true, true, [0]) | (true, true, [-1]) => Ok(Value::Ints { dims, scalar: false }),
            (false, false, [0]) | (false, false, [-1]) | (false, false, []) if dims.len() == 1 => {
                Ok(Value::Ints { dims, scalar: true })
            }
            _ => bail!("unsupported {} of a shape value with axes {axes:?}", n.op_type),
        };
    }
    let ty = imp.type_of(data)?;
    let mut shape = ty.shape.clone();
    if unsq {
        let axes = axes.ok_or_else(|| anyhow!("axes are required"))?;
        let out_rank = shape.len() + axes.len();
        let mut ax: Vec<usize> = axes.iter().map(|&x| norm_axis(x, out_rank)).collect::<Result<_>>()?;
        ax.sort();
        for &x in &ax {
            shape.insert(x, Dim::Fixed(1));
        }
    } else {
        let ax: Vec<usize> = match axes {
            Some(v) => v.iter().map(|&x| norm_axis(x, shape.len())).collect::<Result<_>>()?,
            None => (0..shape.len()).filter(|&i| shape[i] == Dim::Fixed(1)).collect(),
        };
        for &x in &ax {
            if shape[x] != Dim::Fixed(1) {
                bail!("cannot squeeze axis {x} of size {}", shape[x]);
            }
        }
        shape = shape.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, d)| d.clone()).collect();
    }
    if let Some(t) = imp.constant(data) {
        let dims: Vec<usize> = shape.iter().map(|d| d.fixed().unwrap_or(1)).collect();
        return Ok(Value::Const(Tensor { shape: dims, data: t.data }));
    }
    let x = imp.node_for(data)?;
    node(imp, n, Op::Reshape { shape }, &[x])
}

fn concat(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let names: Vec<&str> = n.input.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    if names.is_empty() {
        bail!("Concat needs at least one input");
    }
    let all_ints = names.iter().all(|s| {
        matches!(imp.value(s), Ok(Value::Ints { .. })) || imp.constant(s).is_some_and(|t| t.as_i64().is_some())
    });
    if all_ints {
        let mut dims = Vec::new();
        for s in &names {
            dims.extend(ints(imp, s, "operand")?.0);
        }
        return Ok(Value::Ints { dims, scalar: false });
    }
    let ids = names.iter().map(|s| imp.node_for(s)).collect::<Result<Vec<_>>>()?;
    let rank = imp.g.node(ids[0]).ty.rank();
    let axis = norm_axis(a.int("axis", 1)?, rank)?;
    node(imp, n, Op::Concat { axis }, &ids)
}

fn constant(a: &Attrs) -> Result<Value> {
    if let Some(t) = a.tensor("value")? {
        return Ok(Value::Const(proto::tensor(t)?));
    }
    if a.get("value_float").is_some() {
        return Ok(Value::Const(Tensor::f32(vec![], vec![a.float("value_float", 0.0)?])));
    }
    if let Some(v) = a.floats("value_floats")? {
        return Ok(Value::Const(Tensor::f32(vec![v.len()], v)));
    }
    if a.get("value_int").is_some() {
        return Ok(Value::Const(Tensor::i64(vec![], vec![a.int("value_int", 0)?])));
    }
    if let Some(v) = a.ints("value_ints")? {
        return Ok(Value::Const(Tensor::i64(vec![v.len()], v)));
    }
    bail!("Constant without a supported value attribute (value, value_float(s), value_int(s))")
}

fn pad(imp: &mut Importer, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = imp.node_for(required(n, 0)?)?;
    let rank = imp.g.node(x).ty.rank();
    let mode_s = a.string("mode", "constant")?;
    let (pads, value): (Vec<i64>, f32) = if imp.opset < 11 {
        (a.ints("pads")?.ok_or_else(|| anyhow!("pads are required"))?, a.float("value", 0.0)?)
    } else {
        let p = int_values(imp, required(n, 1)?, "pads")?;
        let v = match const_f32(imp, n, 2, "constant_value")? {
            Some(t) if t.len() == 1 => t.as_f32().unwrap()[0],
            Some(t) => bail!("constant_value must be a scalar, got shape {:?}", t.shape),
            None => 0.0,
        };
        (p, v)
    };
    // Opset 18 `axes`: pads for the listed axes only.
    let pads = match input(n, 3) {
        Some(ax) => {
            let axes: Vec<usize> =
                int_values(imp, ax, "axes")?.iter().map(|&x| norm_axis(x, rank)).collect::<Result<_>>()?;
            if pads.len() != 2 * axes.len() {
                bail!("pads has {} values for {} axes", pads.len(), axes.len());
            }
            let mut full = vec![0i64; 2 * rank];
            for (i, &ax) in axes.iter().enumerate() {
                full[ax] = pads[i];
                full[ax + rank] = pads[i + axes.len()];
            }
            full
        }
        None => pads,
    };
    if pads.len() != 2 * rank {
        bail!("pads has {} values, expected {} for rank {rank}", pads.len(), 2 * rank);
    }
    if let Some(p) = pads.iter().find(|&&p| p < 0) {
        bail!("negative pads ({p}) are not supported");
    }
    let mode = match mode_s.as_str() {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => bail!("pad mode '{other}' is not supported"),
    };
    node(imp, n, Op::Pad { pads: pads.iter().map(|&p| p as usize).collect(), mode }, &[x])
}
