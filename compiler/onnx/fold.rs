//! Constant evaluation at import: ONNX nodes whose operands are all constants are computed here, so
//! that exporters' shape and pad arithmetic (Shape, Gather, Slice, Transpose, ConstantOfShape, Cast, ...)
//! never reaches the IR. Values are small; clarity beats speed.

use super::proto::{self, Attrs};
use anyhow::{anyhow, bail, Result};
use resin_ir::{Tensor, TensorData};
use tract_onnx::pb::NodeProto;

/// Ops that [`eval`] can compute on constants.
pub const FOLDABLE: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Cast",
    "Concat",
    "ConstantOfShape",
    "Gather",
    "Identity",
    "Reshape",
    "Shape",
    "Slice",
    "Squeeze",
    "Transpose",
    "Unsqueeze",
    "Dropout",
];

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Unravels flat index `i` of `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        idx[a] = i % shape[a].max(1);
        i /= shape[a].max(1);
    }
    idx
}

/// A new tensor of `shape` whose flat element k is `t`'s flat element `src[k]`.
fn take(t: &Tensor, src: &[usize], shape: Vec<usize>) -> Tensor {
    let data = match &t.data {
        TensorData::F32(v) => TensorData::F32(src.iter().map(|&i| v[i]).collect()),
        TensorData::I64(v) => TensorData::I64(src.iter().map(|&i| v[i]).collect()),
    };
    Tensor { shape, data }
}

fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        bail!("axis {a} out of range for rank {rank}");
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn ints(t: &Option<Tensor>, what: &str) -> Result<Vec<i64>> {
    let t = t.as_ref().ok_or_else(|| anyhow!("missing {what}"))?;
    t.as_i64().map(<[i64]>::to_vec).ok_or_else(|| anyhow!("{what} must be integers"))
}

fn broadcast_binary(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let r = a.shape.len().max(b.shape.len());
    let pad = |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, r - s.len()).chain(s.iter().copied()).collect() };
    let (sa, sb) = (pad(&a.shape), pad(&b.shape));
    let mut out = vec![0; r];
    for i in 0..r {
        out[i] = match (sa[i], sb[i]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!("constant shapes {:?} and {:?} do not broadcast", a.shape, b.shape),
        };
    }
    let n: usize = out.iter().product();
    let (ta, tb) = (strides(&sa), strides(&sb));
    let pick = |idx: &[usize], s: &[usize], st: &[usize]| -> usize {
        idx.iter().zip(s).zip(st).map(|((&i, &d), &k)| if d == 1 { 0 } else { i * k }).sum()
    };
    let pairs: Vec<(usize, usize)> = (0..n)
        .map(|k| {
            let idx = unravel(k, &out);
            (pick(&idx, &sa, &ta), pick(&idx, &sb, &tb))
        })
        .collect();
    let data = match (&a.data, &b.data) {
        (TensorData::I64(x), TensorData::I64(y)) => TensorData::I64(
            pairs
                .iter()
                .map(|&(i, j)| match op {
                    "Add" => x[i].wrapping_add(y[j]),
                    "Sub" => x[i].wrapping_sub(y[j]),
                    "Mul" => x[i].wrapping_mul(y[j]),
                    _ => x[i].checked_div(y[j]).unwrap_or(0),
                })
                .collect(),
        ),
        (TensorData::F32(x), TensorData::F32(y)) => TensorData::F32(
            pairs
                .iter()
                .map(|&(i, j)| match op {
                    "Add" => x[i] + y[j],
                    "Sub" => x[i] - y[j],
                    "Mul" => x[i] * y[j],
                    _ => x[i] / y[j],
                })
                .collect(),
        ),
        _ => bail!("operands have different dtypes"),
    };
    Ok(Tensor { shape: out, data })
}

/// Computes node `n` on constant operands (`None` for an absent optional input). Returns `Ok(None)`
/// when the op is not one this evaluator knows.
pub fn eval(n: &NodeProto, ins: &[Option<Tensor>], opset: i64) -> Result<Option<Tensor>> {
    let a = Attrs { node: n };
    let x = || ins.first().and_then(|t| t.as_ref()).ok_or_else(|| anyhow!("missing input 0"));
    let t = match n.op_type.as_str() {
        "Identity" | "Dropout" => x()?.clone(),
        "Add" | "Sub" | "Mul" | "Div" => {
            let b = ins.get(1).and_then(|t| t.as_ref()).ok_or_else(|| anyhow!("missing input 1"))?;
            broadcast_binary(&n.op_type, x()?, b)?
        }
        "Cast" => {
            let x = x()?;
            match a.int("to", 0)? {
                1 => Tensor::f32(x.shape.clone(), x.to_f32_vec()),
                6 | 7 => match &x.data {
                    TensorData::I64(_) => x.clone(),
                    TensorData::F32(v) => Tensor::i64(x.shape.clone(), v.iter().map(|&f| f as i64).collect()),
                },
                to => bail!("Cast of a constant to dtype {to} is not supported"),
            }
        }
        "Shape" => {
            let x = x()?;
            let r = x.shape.len() as i64;
            let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) } as usize;
            let (s, e) = (clamp(a.int("start", 0)?), clamp(a.int("end", r)?));
            let dims: Vec<i64> = x.shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
            Tensor::i64(vec![dims.len()], dims)
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = ints(&ins[0], "shape")?
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| anyhow!("negative dimension {d}")))
                .collect::<Result<_>>()?;
            // Checked: the dims are arbitrary integers from the file.
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= 1 << 24);
            let Some(n) = n else { bail!("ConstantOfShape of {shape:?} is too large to fold") };
            match a.tensor("value")? {
                Some(v) => {
                    let v = proto::tensor(v)?;
                    match v.data {
                        TensorData::F32(d) => Tensor::f32(shape, vec![d.first().copied().unwrap_or(0.0); n]),
                        TensorData::I64(d) => Tensor::i64(shape, vec![d.first().copied().unwrap_or(0); n]),
                    }
                }
                None => Tensor::f32(shape, vec![0.0; n]),
            }
        }
        "Gather" => {
            let x = x()?;
            let ax = axis(a.int("axis", 0)?, x.shape.len())?;
            let idx_t = ins.get(1).and_then(|t| t.clone()).ok_or_else(|| anyhow!("missing indices"))?;
            let idx = ints(&Some(idx_t.clone()), "indices")?;
            let d = x.shape[ax];
            let idx: Vec<usize> = idx
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + d as i64 } else { i };
                    if j < 0 || j >= d as i64 {
                        bail!("index {i} out of range for axis of {d}");
                    }
                    Ok(j as usize)
                })
                .collect::<Result<_>>()?;
            let outer: usize = x.shape[..ax].iter().product();
            let inner: usize = x.shape[ax + 1..].iter().product();
            let mut src = Vec::new();
            for o in 0..outer {
                for &i in &idx {
                    src.extend((0..inner).map(|k| (o * d + i) * inner + k));
                }
            }
            let shape: Vec<usize> =
                x.shape[..ax].iter().chain(idx_t.shape.iter()).chain(x.shape[ax + 1..].iter()).copied().collect();
            take(x, &src, shape)
        }
        "Concat" => {
            let parts: Vec<&Tensor> = ins.iter().flatten().collect();
            let first = parts.first().ok_or_else(|| anyhow!("no inputs"))?;
            let ax = axis(a.int("axis", 0)?, first.shape.len())?;
            let outer: usize = first.shape[..ax].iter().product();
            let inner: usize = first.shape[ax + 1..].iter().product();
            let mut shape = first.shape.clone();
            shape[ax] = parts.iter().map(|p| p.shape[ax]).sum();
            let mut data_f = Vec::new();
            let mut data_i = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let len = p.shape[ax] * inner;
                    match &p.data {
                        TensorData::F32(v) => data_f.extend_from_slice(&v[o * len..(o + 1) * len]),
                        TensorData::I64(v) => data_i.extend_from_slice(&v[o * len..(o + 1) * len]),
                    }
                }
            }
            match (data_f.is_empty(), data_i.is_empty()) {
                (_, true) if first.as_f32().is_some() => Tensor::f32(shape, data_f),
                (true, _) => Tensor::i64(shape, data_i),
                _ => bail!("operands have different dtypes"),
            }
        }
        "Reshape" => {
            let x = x()?;
            let spec = ints(&ins[1], "shape")?;
            let mut shape = Vec::new();
            let mut infer = None;
            for (i, &s) in spec.iter().enumerate() {
                match s {
                    0 => shape.push(*x.shape.get(i).ok_or_else(|| anyhow!("no dim {i} to copy"))?),
                    -1 => {
                        infer = Some(i);
                        shape.push(1)
                    }
                    s if s > 0 => shape.push(s as usize),
                    s => bail!("invalid shape value {s}"),
                }
            }
            // Checked: a product that wrapped around could otherwise equal the element count.
            let volume = |s: &[usize]| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if let Some(i) = infer {
                let known = volume(&shape).ok_or_else(|| anyhow!("cannot reshape {:?} to {:?}", x.shape, spec))?;
                shape[i] = x.len() / known.max(1);
            }
            if volume(&shape) != Some(x.len()) {
                bail!("cannot reshape {:?} to {:?}", x.shape, spec);
            }
            Tensor { shape, data: x.data.clone() }
        }
        "Transpose" => {
            let x = x()?;
            let r = x.shape.len();
            let perm: Vec<usize> = match a.ints("perm")? {
                Some(p) => p.iter().map(|&v| axis(v, r)).collect::<Result<_>>()?,
                None => (0..r).rev().collect(),
            };
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            let st = strides(&x.shape);
            let src: Vec<usize> = (0..x.len())
                .map(|k| unravel(k, &shape).iter().enumerate().map(|(i, &v)| v * st[perm[i]]).sum())
                .collect();
            take(x, &src, shape)
        }
        "Slice" => {
            let x = x()?;
            let r = x.shape.len();
            let (starts, ends, axes, steps) = if opset < 10 {
                (a.ints("starts")?.unwrap_or_default(), a.ints("ends")?.unwrap_or_default(), a.ints("axes")?, None)
            } else {
                let opt = |i: usize| ins.get(i).cloned().flatten();
                (
                    ints(&opt(1), "starts")?,
                    ints(&opt(2), "ends")?,
                    opt(3).map(|t| ints(&Some(t), "axes")).transpose()?,
                    opt(4).map(|t| ints(&Some(t), "steps")).transpose()?,
                )
            };
            let axes: Vec<usize> = match axes {
                Some(v) => v.iter().map(|&x| axis(x, r)).collect::<Result<_>>()?,
                None => (0..starts.len()).collect(),
            };
            let mut ranges: Vec<Vec<usize>> = x.shape.iter().map(|&d| (0..d).collect()).collect();
            for (k, &ax) in axes.iter().enumerate() {
                let d = x.shape[ax] as i64;
                let step = steps.as_ref().map_or(1, |s| s[k]);
                if step == 0 {
                    bail!("Slice step 0");
                }
                let norm = |v: i64| if v < 0 { v + d } else { v };
                let (s, e) = (norm(starts[k]), norm(ends[k]));
                let v: Vec<usize> = if step > 0 {
                    let (s, e) = (s.clamp(0, d), e.clamp(0, d));
                    (s..e).step_by(step as usize).map(|i| i as usize).collect()
                } else {
                    let (s, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
                    let mut v = Vec::new();
                    let mut i = s;
                    while i > e {
                        v.push(i as usize);
                        i += step;
                    }
                    v
                };
                ranges[ax] = v;
            }
            let shape: Vec<usize> = ranges.iter().map(Vec::len).collect();
            let st = strides(&x.shape);
            let n: usize = shape.iter().product();
            let src: Vec<usize> = (0..n)
                .map(|k| unravel(k, &shape).iter().enumerate().map(|(i, &v)| ranges[i][v] * st[i]).sum())
                .collect();
            take(x, &src, shape)
        }
        "Unsqueeze" | "Squeeze" => {
            let x = x()?;
            let axes: Option<Vec<i64>> = if opset < 13 {
                a.ints("axes")?
            } else {
                ins.get(1).cloned().flatten().map(|t| ints(&Some(t), "axes")).transpose()?
            };
            let mut shape = x.shape.clone();
            if n.op_type == "Unsqueeze" {
                let axes = axes.ok_or_else(|| anyhow!("axes are required"))?;
                let out_rank = shape.len() + axes.len();
                let mut ax: Vec<usize> = axes.iter().map(|&v| axis(v, out_rank)).collect::<Result<_>>()?;
                ax.sort();
                for v in ax {
                    shape.insert(v, 1);
                }
            } else {
                let ax: Vec<usize> = match axes {
                    Some(v) => v.iter().map(|&v| axis(v, shape.len())).collect::<Result<_>>()?,
                    None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
                };
                shape = shape.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, &d)| d).collect();
            }
            Tensor { shape, data: x.data.clone() }
        }
        _ => return Ok(None),
    };
    Ok(Some(t))
}
