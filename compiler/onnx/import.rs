//! The import driver: decode, check opsets, read inputs and initializers, translate nodes in order,
//! bind outputs, infer shapes, validate, recognize skips.

use super::ops;
use super::proto;
use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use resin_ir::{DType, Dim, Graph, NodeId, Op, Output, Tensor, TensorType};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb::{type_proto, ModelProto, NodeProto, ValueInfoProto};

/// The ONNX ops the importer accepts (the conformance test checks each against ONNX's node tests).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pad",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Squeeze",
    "Sub",
    "Sum",
    "Transpose",
    "Unsqueeze",
];

/// The range of default-domain opsets the importer understands.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

/// Options for import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Skip `recognize_skips` (keep every edge `Data`).
    pub no_skip_recognition: bool,
}

/// What an ONNX value name stands for during import.
#[derive(Clone, Debug)]
pub enum Value {
    /// The output of an IR node.
    Node(NodeId),
    /// A constant that no node has consumed as an edge yet.
    Const(Tensor),
    /// A 0-D or 1-D integer vector whose elements may be symbolic (folded shape arithmetic).
    Ints { dims: Vec<Dim>, scalar: bool },
}

/// Import state shared with the per-op translators.
pub struct Importer {
    pub g: Graph,
    pub values: HashMap<String, Value>,
    /// Const nodes already made for a named constant (so a shared weight becomes one node).
    const_nodes: HashMap<String, NodeId>,
    pub opset: i64,
    /// Outputs of accepted nodes that resin does not compute, with the reason (e.g. Dropout's mask).
    pub refused: HashMap<String, String>,
}

impl Importer {
    /// The value named `name`, or an error naming what is missing.
    pub fn value(&self, name: &str) -> Result<&Value> {
        self.values.get(name).ok_or_else(|| match self.refused.get(name) {
            Some(why) => anyhow!("'{name}' is {why}, which resin does not compute"),
            None => {
                anyhow!(
                    "input '{name}' is never produced (not a graph input, an initializer or an earlier node's output)"
                )
            }
        })
    }

    /// The IR node for `name`, making a Const node for a constant.
    pub fn node_for(&mut self, name: &str) -> Result<NodeId> {
        match self.value(name)?.clone() {
            Value::Node(id) => Ok(id),
            Value::Const(t) => {
                if let Some(&id) = self.const_nodes.get(name) {
                    return Ok(id);
                }
                let ty = t.ty();
                let id = self.g.add_node(name, Op::Const(t), ty);
                self.const_nodes.insert(name.to_string(), id);
                Ok(id)
            }
            Value::Ints { dims, scalar } => {
                let vals: Option<Vec<i64>> = dims.iter().map(|d| d.fixed().map(|x| x as i64)).collect();
                let vals =
                    vals.ok_or_else(|| anyhow!("'{name}' depends on a dynamic dimension and is used as data"))?;
                let shape = if scalar { vec![] } else { vec![vals.len()] };
                let t = Tensor::i64(shape, vals);
                self.values.insert(name.to_string(), Value::Const(t));
                self.node_for(name)
            }
        }
    }

    /// The constant named `name` (an initializer, a Constant, or a folded value), or None.
    pub fn constant(&self, name: &str) -> Option<Tensor> {
        match self.values.get(name)? {
            Value::Const(t) => Some(t.clone()),
            Value::Node(id) => match &self.g.node(*id).op {
                Op::Const(t) => Some(t.clone()),
                _ => None,
            },
            Value::Ints { dims, scalar } => {
                let vals: Option<Vec<i64>> = dims.iter().map(|d| d.fixed().map(|x| x as i64)).collect();
                vals.map(|v| Tensor::i64(if *scalar { vec![] } else { vec![v.len()] }, v))
            }
        }
    }

    /// The type of the value named `name`.
    pub fn type_of(&self, name: &str) -> Result<TensorType> {
        Ok(match self.value(name)? {
            Value::Node(id) => self.g.node(*id).ty.clone(),
            Value::Const(t) => t.ty(),
            Value::Ints { dims, scalar } => {
                TensorType { dtype: DType::I64, shape: if *scalar { vec![] } else { vec![Dim::Fixed(dims.len())] } }
            }
        })
    }

    /// Adds an IR node for ONNX node `n` with operands `inputs`, inferring its type now so later
    /// translators can read it. Errors name the node.
    pub fn add(&mut self, n: &NodeProto, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let ins: Vec<TensorType> = inputs.iter().map(|&i| self.g.node(i).ty.clone()).collect();
        let ty = resin_ir::infer::infer(&op, &ins).map_err(|e| anyhow!(e))?;
        let name = node_name(n);
        let id = self.g.add_node(name, op, ty);
        self.g.node_mut(id).output = n.output.first().cloned().unwrap_or_default();
        for (port, &src) in inputs.iter().enumerate() {
            self.g.connect(src, id, port);
        }
        Ok(id)
    }
}

/// The stable name of an ONNX node: its name, or `op_type:first_output` when it has none.
pub fn node_name(n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!("{}:{}", n.op_type, n.output.first().map(String::as_str).unwrap_or("?"))
    } else {
        n.name.clone()
    }
}

/// Reads and imports an ONNX file.
pub fn load(path: &Path, opts: &ImportOptions) -> Result<Graph> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    import_bytes(&bytes, opts).with_context(|| format!("cannot import '{}'", path.display()))
}

fn value_type(v: &ValueInfoProto) -> Result<TensorType> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("input '{}' is not a tensor", v.name);
    };
    let dtype = match t.elem_type {
        1 => DType::F32,
        7 => DType::I64,
        other => {
            let name =
                tract_onnx::pb::tensor_proto::DataType::try_from(other).map(|d| d.as_str_name()).unwrap_or("UNKNOWN");
            bail!("input '{}' has dtype {name}; only float32 inputs are supported", v.name)
        }
    };
    let Some(shape) = &t.shape else { bail!("input '{}' has no shape", v.name) };
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| {
            use tract_onnx::pb::tensor_shape_proto::dimension::Value as D;
            match &d.value {
                Some(D::DimValue(x)) if *x > 0 => Ok(Dim::Fixed(*x as usize)),
                Some(D::DimValue(x)) => bail!("input '{}' has dimension {i} of size {x}", v.name),
                Some(D::DimParam(p)) if !p.is_empty() => Ok(Dim::Sym(p.clone())),
                _ if i == 0 => Ok(Dim::Sym("batch".into())),
                _ => bail!("input '{}' has an unnamed dynamic dimension {i}", v.name),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TensorType { dtype, shape: dims })
}

/// Imports an ONNX model from its bytes.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Graph> {
    if bytes.is_empty() {
        bail!("the file is empty");
    }
    let model =
        ModelProto::decode(bytes).map_err(|e| anyhow!("not a valid ONNX model (protobuf decode failed: {e})"))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| anyhow!("the model imports no default-domain opset (is it an ONNX model?)"))?;
    if !OPSETS.contains(&opset) {
        bail!("opset {opset} is not supported (resin reads opsets {} to {})", OPSETS.start(), OPSETS.end());
    }
    let graph = model.graph.as_ref().ok_or_else(|| anyhow!("the model has no graph"))?;
    let mut imp = Importer {
        g: Graph::new(),
        values: HashMap::new(),
        const_nodes: HashMap::new(),
        opset,
        refused: HashMap::new(),
    };

    for init in &graph.initializer {
        if imp.values.contains_key(&init.name) {
            bail!("initializer '{}' is defined twice", init.name);
        }
        let t = proto::tensor(init)?;
        imp.values.insert(init.name.clone(), Value::Const(t));
    }
    let mut declared = std::collections::HashSet::new();
    for inp in &graph.input {
        if !declared.insert(inp.name.as_str()) {
            bail!("graph input '{}' is declared twice", inp.name);
        }
        if imp.values.contains_key(&inp.name) {
            continue; // an initializer listed as an input (older exporters): a constant
        }
        let ty = value_type(inp)?;
        let id = imp.g.add_input(inp.name.clone(), ty);
        imp.values.insert(inp.name.clone(), Value::Node(id));
    }
    if imp.g.inputs.is_empty() {
        bail!("the model has no runtime inputs");
    }

    for n in topological_order(&graph.node)? {
        let name = node_name(n);
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            bail!("node '{name}' ({}, domain '{}'): only the default ONNX domain is supported", n.op_type, n.domain);
        }
        for out in &n.output {
            if !out.is_empty() && imp.values.contains_key(out) {
                bail!("node '{name}' ({}): output '{out}' is already defined (duplicate tensor name)", n.op_type);
            }
        }
        ops::import_node(&mut imp, n).map_err(|e| anyhow!("node '{name}' ({}, opset {opset}): {e:#}", n.op_type))?;
    }

    if graph.output.is_empty() {
        bail!("the model has no outputs");
    }
    for o in &graph.output {
        if imp.type_of(&o.name).is_ok_and(|t| t.dtype != DType::F32) {
            let t = imp.type_of(&o.name)?;
            bail!("graph output '{}' is {t}: resin's outputs are float32", o.name);
        }
        let id = imp.node_for(&o.name).map_err(|e| anyhow!("graph output '{}': {e}", o.name))?;
        let id = match imp.g.node(id).op {
            // An output that is a graph input or constant still needs a step to produce it.
            Op::Input | Op::Const(_) => {
                let ty = imp.g.node(id).ty.clone();
                let c = imp.g.add_node(format!("{}:output", o.name), Op::Identity, ty);
                imp.g.connect(id, c, 0);
                c
            }
            _ => id,
        };
        imp.g.outputs.push(Output { name: o.name.clone(), node: id });
    }

    let mut g = imp.g;
    remove_unused_consts(&mut g);
    g.validate().map_err(|e| anyhow!(e))?;
    if !opts.no_skip_recognition {
        g.recognize_skips();
    }
    Ok(g)
}

/// The nodes in an order where every node comes after the nodes whose outputs it reads: the file's order
/// when it is already one (as ONNX requires), else the stable topological sort of it (ONNX Runtime accepts
/// unsorted graphs too). A cycle is an error naming its nodes in data-flow order.
fn topological_order(nodes: &[NodeProto]) -> Result<Vec<&NodeProto>> {
    use std::cmp::Reverse;
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for out in n.output.iter().filter(|o| !o.is_empty()) {
            producer.entry(out.as_str()).or_insert(i); // a second producer is refused during import
        }
    }
    // deps[i]: the nodes that node i reads from (each once).
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            let mut d: Vec<usize> = n.input.iter().filter_map(|x| producer.get(x.as_str()).copied()).collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            users[j].push(i);
        }
    }
    let mut ready: std::collections::BinaryHeap<Reverse<usize>> =
        (0..nodes.len()).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(&nodes[i]);
        for &u in &users[i] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    // Every node left waits on another node left: walk back through those until one repeats.
    let mut path = vec![(0..nodes.len()).find(|&i| waiting[i] > 0).expect("a node is left")];
    loop {
        let last = *path.last().expect("not empty");
        let next = deps[last].iter().copied().find(|&j| waiting[j] > 0).expect("a node left waits on one left");
        if let Some(at) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> =
                path[at..].iter().rev().map(|&i| format!("'{}'", node_name(&nodes[i]))).collect();
            cycle.push(cycle[0].clone());
            bail!("the graph has a cycle: {}", cycle.join(" -> "));
        }
        path.push(next);
    }
}

/// Constants folded into a layer leave their Const node unused.
fn remove_unused_consts(g: &mut Graph) {
    let unused: Vec<NodeId> =
        g.g.node_indices().filter(|&n| matches!(g.node(n).op, Op::Const(_)) && g.consumers(n).is_empty()).collect();
    for n in unused {
        g.g.remove_node(n);
    }
}
