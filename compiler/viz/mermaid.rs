//! Mermaid (`flowchart TB`) for Markdown pages: node ids `n{index}`, quoted labels with Mermaid's `#…;`
//! entities, inputs as stadiums, outputs as double-bordered boxes, constants small; blocks as
//! `subgraph`s; skip edges as dotted links labelled with their kind and coloured by `linkStyle`. The legend
//! is in `%%` comments (Mermaid has no legend element).

use super::{category, edge_style, node_text, BlockKind, SKIP_KINDS};
use resin_ir::{EdgeKind, Graph, NodeId};
use std::fmt::Write;

/// Text for inside a Mermaid `"..."` label.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn node_stmt(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    let t = node_text(g, id);
    if t.is_const {
        return format!("n{}[\"const {}<br/>{}\"]:::const", id.index(), esc(&t.shape), esc(&n.name));
    }
    let mut label = format!("{}<br/>{}<br/>{}", esc(&t.label), esc(&n.name), esc(&t.shape));
    if !t.cost.is_empty() {
        write!(label, "<br/>{}", esc(&t.cost)).unwrap();
    }
    for o in &t.outputs {
        write!(label, "<br/>output {}", esc(o)).unwrap();
    }
    let (class, _, _) = category(&n.op);
    let (open, close) = if t.is_input {
        ("([", "])")
    } else if !t.outputs.is_empty() {
        ("[[", "]]")
    } else {
        ("[", "]")
    };
    format!("n{}{open}\"{label}\"{close}:::{class}", id.index())
}

pub(crate) fn render(g: &Graph, title: &str) -> String {
    let blocks = super::blocks(g);
    let mut o = String::from("flowchart TB\n");
    writeln!(o, "  %% {}", title.replace(['\n', '\r'], " ")).unwrap();
    writeln!(o, "  %% {}", super::summary(g)).unwrap();
    let mut legend = vec!["data: solid grey".to_string()];
    for k in SKIP_KINDS {
        let st = edge_style(EdgeKind::Skip(k));
        legend.push(format!("{} skip: dotted {}", k.name(), st.color));
    }
    writeln!(o, "  %% legend: {}", legend.join("; ")).unwrap();

    let mut in_block = std::collections::HashSet::new();
    for (i, b) in blocks.iter().enumerate() {
        writeln!(o, "  subgraph b{i}[\"{}\"]", esc(&b.label)).unwrap();
        for &n in &b.nodes {
            in_block.insert(n);
            writeln!(o, "    {}", node_stmt(g, n)).unwrap();
        }
        o.push_str("  end\n");
        let color = if matches!(b.kind, BlockKind::Dense { .. }) { "#e64980" } else { "#74a9e0" };
        let bg = if matches!(b.kind, BlockKind::Dense { .. }) { "#fff0f6" } else { "#f3f8ff" };
        writeln!(o, "  style b{i} fill:{bg},stroke:{color},stroke-dasharray:5 3").unwrap();
    }
    for id in super::order(g) {
        if !in_block.contains(&id) {
            writeln!(o, "  {}", node_stmt(g, id)).unwrap();
        }
    }
    let mut by_kind: Vec<(EdgeKind, Vec<usize>)> = Vec::new();
    for (i, (s, t, _, kind)) in super::edges(g).into_iter().enumerate() {
        match kind {
            EdgeKind::Data => writeln!(o, "  n{} --> n{}", s.index(), t.index()).unwrap(),
            EdgeKind::Skip(k) => writeln!(o, "  n{} -. {} .-> n{}", s.index(), k.name(), t.index()).unwrap(),
        }
        match by_kind.iter_mut().find(|b| b.0 == kind) {
            Some(b) => b.1.push(i),
            None => by_kind.push((kind, vec![i])),
        }
    }
    for (kind, links) in by_kind {
        if kind == EdgeKind::Data {
            continue;
        }
        let st = edge_style(kind);
        let ids: Vec<String> = links.iter().map(|i| i.to_string()).collect();
        writeln!(o, "  linkStyle {} stroke:{},stroke-width:{}px,color:{}", ids.join(","), st.color, st.width, st.color)
            .unwrap();
    }
    for (class, fill, stroke) in [
        ("input", "#d3f9d8", "#2b8a3e"),
        ("conv", "#dbe4ff", "#4c6ef5"),
        ("linear", "#eebefa", "#ae3ec9"),
        ("norm", "#fff3bf", "#f08c00"),
        ("act", "#c3fae8", "#12b886"),
        ("join", "#ffe8cc", "#e8590c"),
        ("pool", "#c5f6fa", "#15aabf"),
        ("shape", "#f1f3f5", "#868e96"),
    ] {
        writeln!(o, "  classDef {class} fill:{fill},stroke:{stroke}").unwrap();
    }
    o.push_str("  classDef const fill:#f8f9fa,stroke:#adb5bd,font-size:9px\n");
    o
}
