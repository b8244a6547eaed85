//! Residual adds into epilogues: `y = Add(main, skip)` where `main` is a Conv or Gemm read only by this add
//! (and with no activation yet) becomes `main`'s residual operand: y = conv(x) + b + skip, computed by
//! letting the product accumulate into a buffer that holds the skip. The memory planner then writes the
//! result into the skip's own buffer when the skip dies there, so a ResNet block needs no Add step and no
//! extra buffer. A weighted (projection) skip is itself a Conv/Gemm: it writes its buffer, and the main
//! path's product accumulates into it.
//!
//! The skip edge keeps its kind (identity, weighted, ...) as it moves to the layer's port 1.

use super::{replace_uses, PassReport};
use petgraph::visit::EdgeRef;
use resin_ir::{EdgeKind, Graph, NodeId, Op};

/// Can `n` take a residual operand?
fn absorbs(g: &Graph, n: NodeId, add: NodeId) -> bool {
    let free = match &g.node(n).op {
        Op::Conv(c) => c.act.is_none(),
        Op::Gemm(gm) => gm.act.is_none(),
        _ => false,
    };
    free && g.inputs_of(n).len() == 1
        && g.consumers(n) == [add]
        && !g.outputs.iter().any(|o| o.node == n)
        && g.node(n).ty == g.node(add).ty
}

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("identity_skip_inplace");
    let order = g.topo_order().unwrap_or_default();
    for add in order {
        let is_add =
            matches!(g.node(add).op, Op::Add) || (matches!(g.node(add).op, Op::Sum) && g.inputs_of(add).len() == 2);
        if !is_add {
            continue;
        }
        let edges = g.in_edges(add);
        // Prefer the data operand as the main path; its partner is the skip.
        let mut order = [0usize, 1];
        if edges[0].2 != EdgeKind::Data && edges[1].2 == EdgeKind::Data {
            order = [1, 0];
        }
        let Some(&m) = order.iter().find(|&&i| absorbs(g, edges[i].1, add)) else { continue };
        let (main, skip, kind) = (edges[m].1, edges[1 - m].1, edges[1 - m].2);
        if g.node(skip).ty != g.node(add).ty || skip == main {
            continue;
        }
        // Remove the add's two operand edges, give `main` the skip on port 1, move the add's uses to main.
        let ids: Vec<_> = g.g.edges_directed(add, petgraph::Direction::Incoming).map(|e| e.id()).collect();
        for e in ids {
            g.g.remove_edge(e);
        }
        g.g.add_edge(skip, main, resin_ir::Edge { port: 1, kind });
        let add_name = g.node(add).name.clone();
        replace_uses(g, add, main);
        g.g.remove_node(add);
        g.node_mut(main).fused.push("Add");
        let kind_name = match kind {
            EdgeKind::Skip(k) => k.name(),
            EdgeKind::Data => "data",
        };
        report.changes.push(format!("fused Add '{add_name}' ({kind_name} skip) into '{}'", g.node(main).name));
    }
    report
}
