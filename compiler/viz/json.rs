//! The graph as JSON, for other tools (and the HTML page's details panel):
//!
//! ```text
//! { "title", "params", "macs",
//!   "nodes": [{"id", "name", "op", "label", "shape", "dtype", "params", "macs", "fused", "input", "outputs"}],
//!   "edges": [{"from", "to", "port", "kind"}],          kind: data | identity | weighted | gated | dense
//!   "inputs": [id], "outputs": [{"name", "node"}],
//!   "skips": {"identity", "weighted", "gated", "dense", "total"},
//!   "dense_blocks": [{"layers", "nodes"}],              DenseNet blocks, as SkipSummary counts them
//!   "blocks": [{"kind", "skip", "label", "nodes"}] }    every cluster the pictures draw
//! ```
//!
//! Every node and edge is listed, constants too; `id` is the node's index and `shape` a list of numbers
//! and symbol names. A node's `params` are its own (a constant holds a MatMul's weights), so they sum to
//! `Graph::param_count`. Written by hand: `<`, `>` and `&` are escaped so the text can sit in a `<script>`.

use super::{human, human_macs, node_params, Block, BlockKind};
use resin_ir::{Dim, EdgeKind, Graph, NodeId};
use std::fmt::Write;

/// A JSON string literal.
pub(crate) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ids(nodes: &[NodeId]) -> String {
    let v: Vec<String> = nodes.iter().map(|n| n.index().to_string()).collect();
    format!("[{}]", v.join(","))
}

fn kind_name(k: EdgeKind) -> &'static str {
    match k {
        EdgeKind::Data => "data",
        EdgeKind::Skip(s) => s.name(),
    }
}

pub(crate) fn render(g: &Graph, title: &str) -> String {
    render_with(g, title, &super::blocks(g))
}

pub(crate) fn render_with(g: &Graph, title: &str, blocks: &[Block]) -> String {
    let mut o = String::with_capacity(256 * g.len() + 1024);
    let params = g.param_count();
    let macs = g.macs();
    write!(
        o,
        "{{\"title\":{},\"params\":{params},\"params_human\":{},\"macs\":{macs},\"macs_human\":{},\n\"nodes\":[",
        string(title),
        string(&human(params as u64)),
        string(&human_macs(macs))
    )
    .unwrap();
    for (i, id) in super::order(g).into_iter().enumerate() {
        let n = g.node(id);
        let shape: Vec<String> =
            n.ty.shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(v) => v.to_string(),
                    Dim::Sym(s) => string(s),
                })
                .collect();
        let fused: Vec<String> = n.fused.iter().map(|f| string(f)).collect();
        let outputs: Vec<String> = g.outputs.iter().filter(|o| o.node == id).map(|o| string(&o.name)).collect();
        write!(
            o,
            "{}\n{{\"id\":{},\"name\":{},\"op\":{},\"label\":{},\"shape\":[{}],\"dtype\":\"{}\",\"params\":{},\"macs\":{},\"fused\":[{}],\"input\":{},\"outputs\":[{}]}}",
            if i > 0 { "," } else { "" },
            id.index(),
            string(&n.name),
            string(n.op.name()),
            string(&n.label()),
            shape.join(","),
            n.ty.dtype,
            node_params(g, id),
            g.node_macs(id),
            fused.join(","),
            matches!(n.op, resin_ir::Op::Input),
            outputs.join(",")
        )
        .unwrap();
    }
    o.push_str("],\n\"edges\":[");
    for (i, (s, t, port, kind)) in super::edges(g).into_iter().enumerate() {
        write!(
            o,
            "{}\n{{\"from\":{},\"to\":{},\"port\":{port},\"kind\":\"{}\"}}",
            if i > 0 { "," } else { "" },
            s.index(),
            t.index(),
            kind_name(kind)
        )
        .unwrap();
    }
    o.push_str("],\n");
    write!(o, "\"inputs\":{},\"outputs\":[", ids(&g.inputs)).unwrap();
    let outs: Vec<String> =
        g.outputs.iter().map(|x| format!("{{\"name\":{},\"node\":{}}}", string(&x.name), x.node.index())).collect();
    o.push_str(&outs.join(","));
    o.push_str("],\n\"skips\":{");
    let counts = g.skip_counts();
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("\"{}\":{n}", k.name())).collect();
    writeln!(o, "{},\"total\":{}}},", parts.join(","), counts.iter().map(|c| c.1).sum::<usize>()).unwrap();
    let dense: Vec<String> = blocks
        .iter()
        .filter_map(|b| match b.kind {
            BlockKind::Dense { layers } => Some(format!("{{\"layers\":{layers},\"nodes\":{}}}", ids(&b.nodes))),
            _ => None,
        })
        .collect();
    write!(o, "\"dense_blocks\":[{}],\n\"blocks\":[", dense.join(",")).unwrap();
    for (i, b) in blocks.iter().enumerate() {
        let (kind, skip) = match b.kind {
            BlockKind::Dense { .. } => ("dense", "dense"),
            BlockKind::Residual(k) => ("residual", k.name()),
        };
        write!(
            o,
            "{}\n{{\"kind\":\"{kind}\",\"skip\":\"{skip}\",\"label\":{},\"nodes\":{}}}",
            if i > 0 { "," } else { "" },
            string(&b.label),
            ids(&b.nodes)
        )
        .unwrap();
    }
    o.push_str("]}\n");
    o
}
