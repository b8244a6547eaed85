//! Dead code elimination: removes every node no graph output depends on (graph inputs stay: they are the
//! model's interface).

use super::PassReport;
use resin_ir::{Graph, Op};
use std::collections::HashSet;

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("eliminate_dead");
    let mut live: HashSet<_> = HashSet::new();
    let mut stack: Vec<_> = g.outputs.iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(g.inputs_of(n));
        }
    }
    let dead: Vec<_> =
        g.g.node_indices().filter(|n| !live.contains(n) && !matches!(g.node(*n).op, Op::Input)).collect();
    for n in dead {
        report.changes.push(format!("removed {} '{}'", g.node(n).op.name(), g.node(n).name));
        g.g.remove_node(n);
    }
    report
}
