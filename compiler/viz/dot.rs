//! Graphviz DOT (`dot -Tsvg graph.dot > graph.svg`): top to bottom, node ids `n{index}` (names go in
//! labels and tooltips, escaped, since ONNX names hold `/`, `.` and `:`), HTML-like labels, one
//! `cluster_{i}` per block (blocks are disjoint, so the clusters never overlap), skip edges styled by kind,
//! and a legend cluster.

use super::{category, edge_style, node_text, short_name, xml_escape, BlockKind, SKIP_KINDS};
use resin_ir::{EdgeKind, Graph, NodeId};
use std::fmt::Write;

/// A DOT double-quoted string (an escString: `\` itself must be escaped too).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn node_stmt(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    let t = node_text(g, id);
    let (_, fill, stroke) = category(&n.op);
    if t.is_const {
        return format!(
            "n{} [label=<const {}>, tooltip={}, shape=box, style=filled, fillcolor=\"{fill}\", color=\"{stroke}\", fontsize=7, height=0.15, width=0.3, margin=\"0.04,0.01\"];",
            id.index(),
            xml_escape(&t.shape),
            quote(&n.name)
        );
    }
    let mut label = format!("<b>{}</b>", xml_escape(&t.label));
    write!(label, "<br/><font point-size=\"8\" color=\"#6c757d\">{}</font>", xml_escape(&short_name(&n.name, 36)))
        .unwrap();
    write!(label, "<br/>{}", xml_escape(&t.shape)).unwrap();
    if !t.cost.is_empty() {
        write!(label, "<br/>{}", xml_escape(&t.cost)).unwrap();
    }
    for o in &t.outputs {
        write!(label, "<br/><font color=\"#c92a2a\"><b>output '{}'</b></font>", xml_escape(o)).unwrap();
    }
    let mut attrs = format!("label=<{label}>, tooltip={}, fillcolor=\"{fill}\", color=\"{stroke}\"", quote(&n.name));
    if t.is_input {
        attrs.push_str(", shape=box, style=\"rounded,filled,bold\", penwidth=2");
    }
    if !t.outputs.is_empty() {
        attrs.push_str(", peripheries=2, color=\"#c92a2a\", penwidth=1.6");
    }
    format!("n{} [{attrs}];", id.index())
}

pub(crate) fn render(g: &Graph, title: &str) -> String {
    let blocks = super::blocks(g);
    let mut o = String::new();
    writeln!(o, "digraph {} {{", quote(title)).unwrap();
    writeln!(
        o,
        "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=16, labelloc=t, labeljust=l, nodesep=0.3, ranksep=0.32, label=<<b>{}</b><br/><font point-size=\"11\">{}</font>>];",
        xml_escape(title),
        xml_escape(&super::summary(g))
    )
    .unwrap();
    o.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10, margin=\"0.12,0.04\", penwidth=1.2];\n");
    o.push_str("  edge [color=\"#495057\", arrowsize=0.7, fontname=\"Helvetica\", fontsize=9];\n");

    let mut in_block = std::collections::HashSet::new();
    for (i, b) in blocks.iter().enumerate() {
        let (bg, color) =
            if matches!(b.kind, BlockKind::Dense { .. }) { ("#fff0f6", "#e64980") } else { ("#f3f8ff", "#74a9e0") };
        writeln!(
            o,
            "  subgraph cluster_{i} {{\n    label={}; style=\"rounded,dashed\"; color=\"{color}\"; bgcolor=\"{bg}\"; fontcolor=\"{color}\"; fontsize=10; labeljust=l;",
            quote(&b.label)
        )
        .unwrap();
        for &n in &b.nodes {
            in_block.insert(n);
            writeln!(o, "    {}", node_stmt(g, n)).unwrap();
        }
        o.push_str("  }\n");
    }
    for id in super::order(g) {
        if !in_block.contains(&id) {
            writeln!(o, "  {}", node_stmt(g, id)).unwrap();
        }
    }
    for (s, t, port, kind) in super::edges(g) {
        let st = edge_style(kind);
        let attrs = match kind {
            EdgeKind::Data if super::is_const(g, s) => "color=\"#adb5bd\", arrowsize=0.5".to_string(),
            EdgeKind::Data => String::new(),
            EdgeKind::Skip(k) => format!(
                "color=\"{}\", style={}, penwidth={}, tooltip={}",
                st.color,
                st.dot_style,
                st.dot_penwidth,
                quote(&format!("{} skip into port {port}", k.name()))
            ),
        };
        if attrs.is_empty() {
            writeln!(o, "  n{} -> n{};", s.index(), t.index()).unwrap();
        } else {
            writeln!(o, "  n{} -> n{} [{attrs}];", s.index(), t.index()).unwrap();
        }
    }

    // Legend: one short edge per kind.
    let counts = g.skip_counts();
    o.push_str("  subgraph cluster_legend {\n    label=\"legend\"; style=rounded; color=\"#adb5bd\"; fontsize=10;\n");
    o.push_str("    node [shape=point, width=0.04, style=invis, label=\"\"];\n");
    let mut kinds = vec![(EdgeKind::Data, "data".to_string())];
    for k in SKIP_KINDS {
        let n = counts.iter().find(|c| c.0 == k).map_or(0, |c| c.1);
        kinds.push((EdgeKind::Skip(k), format!("{} skip ({n})", k.name())));
    }
    for (i, (kind, text)) in kinds.iter().enumerate() {
        let st = edge_style(*kind);
        writeln!(
            o,
            "    legend_{i}_a -> legend_{i}_b [label={}, color=\"{}\", fontcolor=\"{}\", style={}, penwidth={}];",
            quote(&format!(" {text}")),
            st.color,
            st.color,
            st.dot_style,
            st.dot_penwidth
        )
        .unwrap();
    }
    // Keep the legend's entries in order, left to right.
    let firsts: Vec<String> = (0..kinds.len()).map(|i| format!("legend_{i}_a")).collect();
    let seconds: Vec<String> = (0..kinds.len()).map(|i| format!("legend_{i}_b")).collect();
    writeln!(o, "    {{ rank=same; {}; }}", firsts.join("; ")).unwrap();
    writeln!(o, "    {{ rank=same; {}; }}", seconds.join("; ")).unwrap();
    writeln!(o, "    {} [style=invis];", firsts.join(" -> ")).unwrap();
    o.push_str("  }\n}\n");
    o
}
