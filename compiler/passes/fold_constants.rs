//! Constant folding: a node whose operands are all constants (an Add of two initializers, a MatMul of
//! two weights, an activation of a constant...) is computed at compile time and replaced by a constant
//! holding its value: y = op(c₁, …, cₙ) becomes the constant y. The value is computed by lowering that one
//! node and running it on the runtime, so folding uses exactly the kernels inference does and no op has a
//! second implementation. Nodes whose value would be large (over 16 M elements) are left alone.

use super::{replace_uses, PassReport};
use resin_ir::{Graph, NodeId, Op, Output, Tensor, TensorType};

/// The value of `id`, computed from its constant operands, if it can be.
fn evaluate(g: &Graph, id: NodeId) -> Option<Tensor> {
    let node = g.node(id);
    let shape: Vec<usize> = node.ty.shape.iter().map(|d| d.fixed()).collect::<Option<_>>()?;
    if shape.iter().product::<usize>() > 1 << 24 {
        return None;
    }
    let mut mini = Graph::new();
    let ins: Vec<NodeId> = g
        .inputs_of(id)
        .into_iter()
        .map(|c| {
            let n = g.node(c);
            mini.add_node(n.name.clone(), n.op.clone(), n.ty.clone())
        })
        .collect();
    let y = mini.add_node(node.name.clone(), node.op.clone(), node.ty.clone());
    for (port, &c) in ins.iter().enumerate() {
        mini.connect(c, y, port);
    }
    mini.outputs.push(Output { name: "y".into(), node: y });
    let plan = crate::lower::lower(&mini).ok()?;
    let model = resin_runtime::Model::new(plan).ok()?;
    let out = model.session_with_threads(1).ok()?.run(&[]).ok()?.pop()?;
    (out.shape == shape).then(|| Tensor::f32(shape, out.data))
}

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("fold_constants");
    for id in g.topo_order().unwrap_or_default() {
        let foldable = !matches!(g.node(id).op, Op::Input | Op::Const(_))
            && !g.inputs_of(id).is_empty()
            && g.inputs_of(id).iter().all(|&i| matches!(g.node(i).op, Op::Const(_)));
        if !foldable {
            continue;
        }
        let Some(value) = evaluate(g, id) else { continue };
        let node = g.node(id);
        let (name, op_name) = (node.name.clone(), node.op.name());
        let ty: TensorType = value.ty();
        let c = g.add_node(name.clone(), Op::Const(value), ty);
        g.node_mut(c).output = g.node(id).output.clone();
        replace_uses(g, id, c);
        g.g.remove_node(id);
        report.changes.push(format!("computed {op_name} '{name}' at compile time"));
    }
    report
}
