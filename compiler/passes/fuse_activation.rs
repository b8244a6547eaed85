//! Activation fusion: an activation (Relu, Sigmoid, Clip) whose input is a Conv or Gemm read by nothing
//! else becomes that layer's epilogue: y = act(conv(x) + b [+ skip]). The activation node disappears and the
//! activation is applied to the output tile as it is written.

use super::{replace_uses, PassReport};
use resin_ir::op::Activation;
use resin_ir::{Graph, Op};

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("fuse_activation");
    let order = g.topo_order().unwrap_or_default();
    for id in order {
        let act = match g.node(id).op {
            Op::Relu => Activation::Relu,
            Op::Sigmoid => Activation::Sigmoid,
            Op::Clip { min, max } => Activation::Clip { min, max },
            _ => continue,
        };
        let src = g.inputs_of(id)[0];
        if g.consumers(src).len() != 1 || g.outputs.iter().any(|o| o.node == src) {
            continue;
        }
        let slot = match &mut g.node_mut(src).op {
            Op::Conv(c) => &mut c.act,
            Op::Gemm(gm) => &mut gm.act,
            _ => continue,
        };
        if slot.is_some() {
            continue;
        }
        *slot = Some(act);
        let name = g.node(id).name.clone();
        let producer = g.node(src).name.clone();
        g.node_mut(src).fused.push(act.name());
        replace_uses(g, id, src);
        g.g.remove_node(id);
        report.changes.push(format!("fused {} '{name}' into '{producer}'", act.name()));
    }
    report
}
