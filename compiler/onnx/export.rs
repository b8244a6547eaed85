//! ONNX export: the IR written back as an ONNX model (`tract_onnx::pb::ModelProto`), so that what resin's
//! passes made of a network (BatchNorm folded into the weights, for one) can be saved and run elsewhere.
//!
//! This module owns the translation from IR to protobuf and the errors about what ONNX cannot express at
//! the requested opset. It must not change the graph: it reads it, and it neither runs nor optimizes
//! anything.
//!
//! The mapping is the importer's, backwards:
//!
//! - One ONNX node per IR node, named after it, writing a tensor named after the node's output (names made
//!   unique with a `_1`, `_2`, … suffix where they clash). Graph inputs keep their names and dims (symbolic
//!   dims as `dim_param`); graph outputs their names and types.
//! - Weights (Conv, BatchNormalization, Gemm) and [`Op::Const`] nodes become initializers in `raw_data`,
//!   bit for bit. Attribute-like operands (Reshape's shape, Pad's pads and value, Clip's bounds at
//!   opset ≥ 11) become small initializers named `<node>/shape`, `<node>/pads`, ….
//! - A Conv with an input prologue (a BatchNorm folded in front of it) is written as BatchNormalization
//!   (scale, shift, mean 0, var 1, ε 0) and its activation before the Conv.
//! - A Conv or Gemm that passes gave a residual operand (port 1) and/or an activation epilogue is written as
//!   the plain layer followed by `Add` (node `<node>/add`) and the activation (`<node>/relu`,
//!   `<node>/sigmoid`, `<node>/clip`), the last of which writes the layer's tensor: skips become Add again,
//!   and ONNX Runtime computes what resin computes. What `Node::fused` lists beyond these (a folded
//!   BatchNormalization) is already in the weights.
//! - A Reshape's target shape is an int64 initializer: a symbolic dim becomes `0` when the input has the
//!   same symbol at the same position, otherwise `-1` (at most one such dim).
//! - Other opsets than 17 (7 to 21) get their versioned forms: Clip's bounds and Pad's pads and value as
//!   attributes below 11, a zero C for a Gemm without one below 11, initializers listed as graph inputs at
//!   IR version 3; what an opset cannot say (a Softmax over a non-last axis below 13, ceil_mode or a dilated
//!   MaxPool below 10) is an error naming the node.
//!
//! [`export`] builds the model, [`save`] writes it at [`OPSET`] atomically (a temporary file, then a rename).

use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use resin_ir::op::{Activation, PadMode, PoolKind, PreAffine};
use resin_ir::{DType, Dim, Graph, NodeId, Op, Tensor, TensorData, TensorType};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

/// The opset [`save`] writes.
pub const OPSET: i64 = 17;

/// The default-domain opsets [`export`] can write (the importer's range).
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

/// The lowest ONNX IR version that carries `opset` (opset 17 → IR 8), which is the version written.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// Translates `g` into an ONNX model at default-domain opset `opset` (one of [`OPSETS`]; 17 is the
/// tested one). The graph is validated first; errors name the node and say what the opset cannot express.
pub fn export(g: &Graph, opset: i64) -> Result<ModelProto> {
    if !OPSETS.contains(&opset) {
        bail!("cannot export at opset {opset} (resin writes opsets {} to {})", OPSETS.start(), OPSETS.end());
    }
    g.validate().map_err(|e| anyhow!("cannot export an invalid graph: {e}"))?;
    let order = g.topo_order().map_err(|e| anyhow!(e))?;
    let mut ex = Exporter::new(g, opset);
    ex.assign_names(&order)?;
    for &id in &order {
        let node = g.node(id);
        ex.emit(id).with_context(|| format!("cannot export node '{}' ({})", node.name, node.label()))?;
    }
    ex.bind_outputs();

    let mut input: Vec<ValueInfoProto> =
        g.inputs.iter().map(|&id| value_info(&ex.tensor[&id], &g.node(id).ty)).collect();
    if ir_version_for(opset) < 4 {
        // IR 3 requires every initializer to be listed as a graph input too.
        input.extend(ex.inits.iter().map(initializer_info));
    }
    let output = g.outputs.iter().map(|o| value_info(&o.name, &g.node(o.node).ty)).collect();
    let graph =
        GraphProto { name: "resin".into(), node: ex.nodes, initializer: ex.inits, input, output, ..Default::default() };
    Ok(ModelProto {
        ir_version: ir_version_for(opset),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "resin".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    })
}

/// Exports `g` at [`OPSET`] and writes it to `path` (see [`write()`]).
pub fn save(g: &Graph, path: &Path) -> Result<()> {
    let model = export(g, OPSET)?;
    write(&model, path)
}

/// Writes an encoded model to `path` atomically: a sibling temporary file, synced, then renamed over `path`,
/// so a reader never sees half a model. The directory must exist.
pub fn write(model: &ModelProto, path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("cannot write '{}': the directory '{}' does not exist", path.display(), dir.display());
    }
    let file = path.file_name().ok_or_else(|| anyhow!("cannot write '{}': not a file path", path.display()))?;
    static SAVES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp{}-{n}", file.to_string_lossy(), std::process::id()));
    let bytes = model.encode_to_vec();
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write '{}': {e}", path.display());
    }
    Ok(())
}

/// A set of names, handing out `base`, or `base_1`, `base_2`, … when `base` is taken.
#[derive(Default)]
struct Names(HashSet<String>);

impl Names {
    fn unique(&mut self, base: &str) -> String {
        if self.0.insert(base.to_string()) {
            return base.to_string();
        }
        let name = (1..).map(|i| format!("{base}_{i}")).find(|n| !self.0.contains(n)).unwrap();
        self.0.insert(name.clone());
        name
    }
}

struct Exporter<'a> {
    g: &'a Graph,
    opset: i64,
    /// Tensor names (values and initializers share one namespace in ONNX).
    tensors: Names,
    /// Node names.
    node_names: Names,
    /// The ONNX tensor holding each IR node's output.
    tensor: HashMap<NodeId, String>,
    /// The ONNX name of each IR node.
    name: HashMap<NodeId, String>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl<'a> Exporter<'a> {
    fn new(g: &'a Graph, opset: i64) -> Self {
        Exporter {
            g,
            opset,
            tensors: Names::default(),
            node_names: Names::default(),
            tensor: HashMap::new(),
            name: HashMap::new(),
            nodes: Vec::new(),
            inits: Vec::new(),
        }
    }

    /// Names every IR node and its tensor before anything is emitted, so that the names the graph has win
    /// over the ones export makes up: graph inputs and outputs first, then every node in `order`.
    fn assign_names(&mut self, order: &[NodeId]) -> Result<()> {
        let g = self.g;
        for &id in &g.inputs {
            let n = g.node(id);
            let name = if n.output.is_empty() { &n.name } else { &n.output };
            if !self.tensors.0.insert(name.clone()) {
                bail!("two graph inputs are named '{name}'");
            }
            self.tensor.insert(id, name.clone());
        }
        for id in g.g.node_indices() {
            if matches!(g.node(id).op, Op::Input) && !g.inputs.contains(&id) {
                bail!("input node '{}' is not listed among the graph's inputs", g.node(id).name);
            }
        }
        let mut outputs = HashSet::new();
        for o in &g.outputs {
            if o.name.is_empty() {
                bail!("a graph output has no name");
            }
            if !outputs.insert(o.name.as_str()) {
                bail!("two graph outputs are named '{}'", o.name);
            }
            // A graph output may be a graph input itself, but not share a name with another input.
            if self.tensors.0.contains(&o.name) && self.tensor.get(&o.node) != Some(&o.name) {
                bail!("graph output '{}' has the name of a graph input", o.name);
            }
            self.tensors.0.insert(o.name.clone());
        }
        for &id in order {
            let n = g.node(id);
            let base = if n.name.is_empty() { format!("{}_{}", n.op.name(), id.index()) } else { n.name.clone() };
            let name = self.node_names.unique(&base);
            self.name.insert(id, name);
            if self.tensor.contains_key(&id) {
                continue;
            }
            // The first graph output this node produces names its tensor (if no other node claimed it). A
            // constant stays an initializer; an Identity will write the output (see `bind_outputs`).
            let claimed: HashSet<&String> = self.tensor.values().collect();
            let out = g
                .outputs
                .iter()
                .find(|o| o.node == id && !claimed.contains(&o.name) && !matches!(n.op, Op::Const(_)))
                .map(|o| o.name.clone());
            let t = match out {
                Some(t) => t,
                None => {
                    let base = if n.output.is_empty() { self.name[&id].clone() } else { n.output.clone() };
                    self.tensors.unique(&base)
                }
            };
            self.tensor.insert(id, t);
        }
        Ok(())
    }

    /// A graph output whose name is not its producer's tensor (the producer feeds two outputs, or is a graph
    /// input or an initializer) gets an Identity that writes it.
    fn bind_outputs(&mut self) {
        for o in &self.g.outputs {
            let src = self.tensor[&o.node].clone();
            if src != o.name {
                let name = self.node_names.unique(&format!("{}/identity", o.name));
                self.nodes.push(node("Identity", name, vec![src], o.name.clone(), vec![]));
            }
        }
    }

    /// Adds an initializer named after `base` (made unique) and returns its name.
    fn init(&mut self, base: &str, t: &Tensor) -> String {
        let name = self.tensors.unique(base);
        self.inits.push(tensor_proto(&name, t));
        name
    }

    /// An input prologue `act(scale·x + shift)` as the nodes it was folded from:
    /// BatchNormalization(scale, shift, mean 0, var 1, ε 0), then its activation. Returns the tensor
    /// they write.
    fn emit_pre(&mut self, name: &str, input: String, pre: &PreAffine) -> String {
        let n = pre.scale.len();
        let bn_name = self.node_names.unique(&format!("{name}/pre_bn"));
        let params: Vec<String> =
            [("scale", pre.scale.clone()), ("shift", pre.shift.clone()), ("mean", vec![0.0; n]), ("var", vec![1.0; n])]
                .into_iter()
                .map(|(k, v)| self.init(&format!("{bn_name}/{k}"), &Tensor::f32(vec![n], v)))
                .collect();
        let mut bn_out = self.tensors.unique(&format!("{bn_name}_output"));
        let inputs = std::iter::once(input).chain(params).collect();
        self.nodes.push(node("BatchNormalization", bn_name, inputs, bn_out.clone(), vec![float("epsilon", 0.0)]));
        if let Some(a) = pre.act {
            let act_name = self.node_names.unique(&format!("{name}/pre_{}", a.name().to_lowercase()));
            let act_out = self.tensors.unique(&format!("{act_name}_output"));
            let nd = match a {
                Activation::Relu => node("Relu", act_name, vec![bn_out], act_out.clone(), vec![]),
                Activation::Sigmoid => node("Sigmoid", act_name, vec![bn_out], act_out.clone(), vec![]),
                Activation::Clip { min, max } => self.clip(act_name, bn_out, act_out.clone(), min, max),
            };
            self.nodes.push(nd);
            bn_out = act_out;
        }
        bn_out
    }

    fn emit(&mut self, id: NodeId) -> Result<()> {
        let g = self.g;
        let n = g.node(id);
        let name = self.name[&id].clone();
        let out = self.tensor[&id].clone();
        let ins: Vec<String> = g.inputs_of(id).iter().map(|i| self.tensor[i].clone()).collect();
        let opset = self.opset;
        let plain = |op: &str, attrs| node(op, name.clone(), ins.clone(), out.clone(), attrs);
        let nd = match &n.op {
            Op::Input => return Ok(()),
            Op::Const(t) => {
                self.inits.push(tensor_proto(&out, t));
                return Ok(());
            }
            Op::Conv(c) => {
                let x = match &c.pre {
                    None => ins[0].clone(),
                    Some(pre) => self.emit_pre(&name, ins[0].clone(), pre),
                };
                let w = self.init(&format!("{name}/weight"), &c.weight);
                let mut inputs = vec![x, w];
                if let Some(b) = &c.bias {
                    inputs.push(self.init(&format!("{name}/bias"), b));
                }
                let attrs = vec![
                    ints("kernel_shape", &c.kernel()),
                    ints("strides", &c.strides),
                    ints("pads", &c.pads),
                    ints("dilations", &c.dilations),
                    int("group", c.group as i64),
                ];
                let layer =
                    NodeProto { op_type: "Conv".into(), name, input: inputs, attribute: attrs, ..Default::default() };
                return self.layer(layer, ins.get(1).cloned(), c.act, out);
            }
            Op::Gemm(gm) => {
                let b = self.init(&format!("{name}/B"), &gm.b);
                let mut inputs = vec![ins[0].clone(), b];
                match &gm.c {
                    Some(c) => inputs.push(self.init(&format!("{name}/C"), c)),
                    // C became optional at opset 11; before, a zero C (broadcast) says the same.
                    None if opset < 11 => {
                        inputs.push(self.init(&format!("{name}/C"), &Tensor::f32(vec![1], vec![0.0])))
                    }
                    None => {}
                }
                let attrs = vec![
                    float("alpha", gm.alpha),
                    float("beta", gm.beta),
                    int("transA", gm.trans_a as i64),
                    int("transB", gm.trans_b as i64),
                ];
                let layer =
                    NodeProto { op_type: "Gemm".into(), name, input: inputs, attribute: attrs, ..Default::default() };
                return self.layer(layer, ins.get(1).cloned(), gm.act, out);
            }
            Op::BatchNorm(bn) => {
                let mut inputs = vec![ins[0].clone()];
                for (what, t) in [("scale", &bn.scale), ("bias", &bn.bias), ("mean", &bn.mean), ("var", &bn.var)] {
                    inputs.push(self.init(&format!("{name}/{what}"), t));
                }
                node("BatchNormalization", name, inputs, out, vec![float("epsilon", bn.epsilon)])
            }
            Op::Clip { min, max } => {
                let (min, max) = (*min, *max);
                self.clip(name, ins[0].clone(), out, min, max)
            }
            Op::Softmax { axis } => {
                let rank = g.node(g.inputs_of(id)[0]).ty.rank();
                if opset < 13 && axis + 1 != rank {
                    bail!("Softmax over axis {axis} of a rank-{rank} tensor needs opset 13 (before, Softmax flattens from the axis on)");
                }
                plain("Softmax", vec![int("axis", *axis as i64)])
            }
            Op::Pool(p) => {
                // A prologue (moved here from a 1x1 convolution by `pool_first`) goes in front, as for Conv.
                let ins = match &p.pre {
                    None => ins.clone(),
                    Some(pre) => vec![self.emit_pre(&name, ins[0].clone(), pre)],
                };
                let plain = |op: &str, attrs| node(op, name.clone(), ins.clone(), out.clone(), attrs);
                let mut attrs =
                    vec![ints("kernel_shape", &p.kernel), ints("strides", &p.strides), ints("pads", &p.pads)];
                let dilated = p.dilations != [1, 1];
                if opset >= 10 {
                    attrs.push(int("ceil_mode", p.ceil_mode as i64));
                } else if p.ceil_mode {
                    bail!("ceil_mode needs opset 10");
                }
                match p.kind {
                    PoolKind::Max => {
                        if opset >= 10 {
                            attrs.push(ints("dilations", &p.dilations));
                        } else if dilated {
                            bail!("a dilated MaxPool needs opset 10");
                        }
                    }
                    PoolKind::Avg => {
                        attrs.push(int("count_include_pad", p.count_include_pad as i64));
                        if dilated {
                            if opset < 19 {
                                bail!("a dilated AveragePool needs opset 19");
                            }
                            attrs.push(ints("dilations", &p.dilations));
                        }
                    }
                }
                plain(n.op.name(), attrs)
            }
            Op::Flatten { axis } => plain("Flatten", vec![int("axis", *axis as i64)]),
            Op::Concat { axis } => plain("Concat", vec![int("axis", *axis as i64)]),
            Op::Reshape { shape } => {
                let from = &g.node(g.inputs_of(id)[0]).ty;
                let spec = reshape_spec(from, shape)?;
                let s = self.init(&format!("{name}/shape"), &Tensor::i64(vec![spec.len()], spec));
                node("Reshape", name, vec![ins[0].clone(), s], out, vec![])
            }
            Op::Pad { pads, mode } => {
                let (mode_s, value) = match mode {
                    PadMode::Constant(v) => ("constant", Some(*v)),
                    PadMode::Reflect => ("reflect", None),
                    PadMode::Edge => ("edge", None),
                };
                let mut attrs = vec![string("mode", mode_s)];
                let mut inputs = vec![ins[0].clone()];
                if opset < 11 {
                    attrs.push(ints("pads", pads));
                    attrs.push(float("value", value.unwrap_or(0.0)));
                } else {
                    let p: Vec<i64> = pads.iter().map(|&p| p as i64).collect();
                    inputs.push(self.init(&format!("{name}/pads"), &Tensor::i64(vec![p.len()], p)));
                    if let Some(v) = value {
                        inputs.push(self.init(&format!("{name}/value"), &Tensor::f32(vec![], vec![v])));
                    }
                }
                node("Pad", name, inputs, out, attrs)
            }
            Op::MatMul
            | Op::Relu
            | Op::Sigmoid
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Sum
            | Op::GlobalAvgPool
            | Op::Identity => plain(n.op.name(), vec![]),
        };
        self.nodes.push(nd);
        Ok(())
    }

    /// Emits a Conv or Gemm (`layer`, without its output) with its epilogues: `Add(layer, residual)` then
    /// the activation, the last node writing `out`.
    fn layer(
        &mut self,
        mut layer: NodeProto,
        residual: Option<String>,
        act: Option<Activation>,
        out: String,
    ) -> Result<()> {
        let base = layer.name.clone();
        let mut cur = if residual.is_none() && act.is_none() {
            out.clone()
        } else {
            self.tensors.unique(&format!("{base}_output"))
        };
        layer.output = vec![cur.clone()];
        self.nodes.push(layer);
        if let Some(skip) = residual {
            let name = self.node_names.unique(&format!("{base}/add"));
            let dst = if act.is_none() { out.clone() } else { self.tensors.unique(&format!("{name}_output")) };
            self.nodes.push(node("Add", name, vec![cur, skip], dst.clone(), vec![]));
            cur = dst;
        }
        if let Some(a) = act {
            let name = self.node_names.unique(&format!("{base}/{}", a.name().to_lowercase()));
            let nd = match a {
                Activation::Relu => node("Relu", name, vec![cur], out, vec![]),
                Activation::Sigmoid => node("Sigmoid", name, vec![cur], out, vec![]),
                Activation::Clip { min, max } => self.clip(name, cur, out, min, max),
            };
            self.nodes.push(nd);
        }
        Ok(())
    }

    /// A Clip node: bounds as scalar initializers from opset 11 (an infinite bound is left out), as
    /// attributes before.
    fn clip(&mut self, name: String, x: String, out: String, min: f32, max: f32) -> NodeProto {
        if self.opset < 11 {
            return node("Clip", name, vec![x], out, vec![float("min", min), float("max", max)]);
        }
        let mut inputs = vec![x, String::new(), String::new()];
        if min != f32::NEG_INFINITY {
            inputs[1] = self.init(&format!("{name}/min"), &Tensor::f32(vec![], vec![min]));
        }
        if max != f32::INFINITY {
            inputs[2] = self.init(&format!("{name}/max"), &Tensor::f32(vec![], vec![max]));
        }
        while inputs.last().is_some_and(String::is_empty) {
            inputs.pop();
        }
        node("Clip", name, inputs, out, vec![])
    }
}

/// ONNX Reshape's `shape` operand for the IR target `to` of an input of type `from`: fixed dims as they
/// are, a symbolic dim as `0` (copy) when `from` has the same symbol at that position, otherwise `-1`.
pub fn reshape_spec(from: &TensorType, to: &[Dim]) -> Result<Vec<i64>> {
    let mut inferred: Option<&str> = None;
    to.iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Fixed(n) => Ok(*n as i64),
            Dim::Sym(_) if from.shape.get(i) == Some(d) => Ok(0),
            Dim::Sym(s) => match inferred {
                None => {
                    inferred = Some(s);
                    Ok(-1)
                }
                Some(other) => bail!(
                    "Reshape of {from} to a shape with two moved symbolic dims ('{other}' and '{s}') cannot be written as ONNX"
                ),
            },
        })
        .collect()
}

fn node(op: &str, name: String, input: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto { op_type: op.into(), name, input, output: vec![output], attribute, ..Default::default() }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn elem_type(d: DType) -> i32 {
    match d {
        DType::F32 => DataType::Float as i32,
        DType::I64 => DataType::Int64 as i32,
    }
}

/// An initializer: little-endian `raw_data`, the exact bits of the IR tensor.
fn tensor_proto(name: &str, t: &Tensor) -> TensorProto {
    let raw_data = match &t.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    TensorProto {
        name: name.into(),
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: elem_type(t.dtype()),
        raw_data,
        ..Default::default()
    }
}

/// The graph-input entry of an initializer (for IR version 3).
fn initializer_info(t: &TensorProto) -> ValueInfoProto {
    let dtype = if t.data_type == DataType::Int64 as i32 { DType::I64 } else { DType::F32 };
    let shape = t.dims.iter().map(|&d| Dim::Fixed(d as usize)).collect();
    value_info(&t.name, &TensorType { dtype, shape })
}

fn value_info(name: &str, ty: &TensorType) -> ValueInfoProto {
    let dim = ty
        .shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Sym(s) => dimension::Value::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: elem_type(ty.dtype), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}
