//! Canonicalization: removes what exporters emit that computes nothing — Identity nodes (and inference
//! Dropout, which imports as Identity): y = x, so every use of y becomes a use of x. An Identity that
//! carries a graph input straight to an output stays (a step must produce the output).

use super::{replace_uses, PassReport};
use resin_ir::{Graph, Op};

pub fn run(g: &mut Graph) -> PassReport {
    let mut report = PassReport::new("canonicalize");
    let ids: Vec<_> = g.g.node_indices().filter(|&n| matches!(g.node(n).op, Op::Identity)).collect();
    for id in ids {
        let src = g.inputs_of(id)[0];
        let is_output = g.outputs.iter().any(|o| o.node == id);
        if is_output && matches!(g.node(src).op, Op::Input | Op::Const(_)) {
            continue;
        }
        replace_uses(g, id, src);
        report.changes.push(format!("removed Identity '{}'", g.node(id).name));
        g.g.remove_node(id);
    }
    report
}
