//! Pictures of a graph. This module owns every way resin draws or dumps a [`Graph`] for people and tools:
//!
//! - [`Format::Dot`]: Graphviz source (`dot -Tsvg`), clusters for blocks, a legend.
//! - [`Format::Svg`]: an SVG that resin lays out and writes itself, no Graphviz needed (`layout.rs` places
//!   the nodes, `svg.rs` draws them).
//! - [`Format::Mermaid`]: a `flowchart TB` for Markdown pages.
//! - [`Format::Html`]: one self-contained page (the SVG, inline CSS and JS) with pan, zoom and a details panel.
//! - [`Format::Json`]: nodes, edges, skip counts and blocks, for other tools.
//!
//! Every picture shows the same things: a node's label (its op plus what passes fused into it), output
//! shape, parameters and MACs; inputs and outputs drawn apart; constant operands hidden (SVG, HTML) or drawn
//! small (DOT, Mermaid); skip edges styled by kind with a legend; residual and dense blocks as clusters
//! (see [`blocks`]). Nothing here changes the graph.

mod blocks;
mod dot;
mod html;
mod json;
pub mod layout;
mod mermaid;
mod svg;

pub use blocks::{blocks, Block, BlockKind};

use resin_ir::dim::fmt_shape;
use resin_ir::{EdgeKind, Graph, NodeId, Op, SkipKind};
use std::str::FromStr;

/// An output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Dot,
    Svg,
    Mermaid,
    Html,
    Json,
}

impl Format {
    /// Every format, in the order the command line lists them.
    pub const ALL: [Format; 5] = [Format::Dot, Format::Svg, Format::Mermaid, Format::Html, Format::Json];

    /// The name `FromStr` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Format::Dot => "dot",
            Format::Svg => "svg",
            Format::Mermaid => "mermaid",
            Format::Html => "html",
            Format::Json => "json",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Dot => "dot",
            Format::Svg => "svg",
            Format::Mermaid => "mmd",
            Format::Html => "html",
            Format::Json => "json",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    /// `dot`, `svg`, `mermaid`, `html` or `json` (case-insensitive; `mmd`, `gv` and `htm` too).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "dot" | "gv" => Ok(Format::Dot),
            "svg" => Ok(Format::Svg),
            "mermaid" | "mmd" => Ok(Format::Mermaid),
            "html" | "htm" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format '{s}' (formats: dot, svg, mermaid, html, json)")),
        }
    }
}

/// Draws `g` in `format`; `title` names the picture (usually the model's file name).
pub fn render(g: &Graph, format: Format, title: &str) -> String {
    match format {
        Format::Dot => dot::render(g, title),
        Format::Svg => svg::render(g, title, true),
        Format::Mermaid => mermaid::render(g, title),
        Format::Html => html::render(g, title),
        Format::Json => json::render(g, title),
    }
}

/// Nodes in a topological order; for a graph with a cycle (which `validate` rejects), index order, so a
/// broken graph can still be drawn.
pub(crate) fn order(g: &Graph) -> Vec<NodeId> {
    g.topo_order().unwrap_or_else(|_| g.g.node_indices().collect())
}

pub(crate) fn is_const(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::Const(_))
}

/// All edges as (from, to, port, kind), sorted by destination then port.
pub(crate) fn edges(g: &Graph) -> Vec<(NodeId, NodeId, usize, EdgeKind)> {
    let mut v: Vec<_> =
        g.g.edge_indices()
            .filter_map(|e| {
                let (s, t) = g.g.edge_endpoints(e)?;
                Some((s, t, g.g[e].port, g.g[e].kind))
            })
            .collect();
    v.sort_by_key(|e| (e.1, e.2, e.0));
    v
}

/// The parameters a node holds, counted as `Graph::param_count` does, so that they sum to it: Conv and
/// Gemm weights and biases, BatchNorm's scale and bias, and a constant feeding a MatMul (or added right after
/// one).
pub fn node_params(g: &Graph, id: NodeId) -> usize {
    match &g.node(id).op {
        Op::Conv(c) => c.weight.len() + c.bias.as_ref().map_or(0, |b| b.len()),
        Op::BatchNorm(b) => b.scale.len() + b.bias.len(),
        Op::Gemm(gm) => gm.b.len() + gm.c.as_ref().map_or(0, |c| c.len()),
        Op::Const(t) => {
            let feeds_weight = g.consumers(id).iter().any(|&c| match g.node(c).op {
                Op::MatMul => true,
                Op::Add => g.inputs_of(c).iter().any(|&i| matches!(g.node(i).op, Op::MatMul)),
                _ => false,
            });
            if feeds_weight && t.as_f32().is_some() {
                t.len()
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// The parameters a picture shows on a node: its own plus those of the constant operands that pictures
/// hide (a MatMul's weight matrix).
pub(crate) fn shown_params(g: &Graph, id: NodeId) -> usize {
    let own = node_params(g, id);
    if is_const(g, id) {
        return own;
    }
    own + g.inputs_of(id).into_iter().filter(|&i| is_const(g, i)).map(|i| node_params(g, i)).sum::<usize>()
}

/// `1.2 M`, `177.4 K`, `512`.
pub(crate) fn human(n: u64) -> String {
    let f = n as f64;
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} G", f / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", f / 1e6),
        n if n >= 1_000 => format!("{:.1} K", f / 1e3),
        n => n.to_string(),
    }
}

/// `115.6 MMACs`, `512 MACs`.
pub(crate) fn human_macs(n: u64) -> String {
    let h = human(n);
    match h.strip_suffix(['G', 'M', 'K']) {
        Some(num) => format!("{num}{}MACs", &h[h.len() - 1..]),
        None => format!("{h} MACs"),
    }
}

/// What a picture says about one node.
pub(crate) struct NodeText {
    /// The op with what it absorbed: `Conv+BatchNormalization+Relu`.
    pub label: String,
    /// `[batch,64,56,56]`
    pub shape: String,
    /// `1.2 K params · 147.5 KMACs`, empty when both are zero.
    pub cost: String,
    /// Names of the graph outputs this node produces.
    pub outputs: Vec<String>,
    pub is_input: bool,
    pub is_const: bool,
}

pub(crate) fn node_text(g: &Graph, id: NodeId) -> NodeText {
    let n = g.node(id);
    let params = shown_params(g, id);
    let macs = g.node_macs(id);
    let mut cost = Vec::new();
    if params > 0 {
        cost.push(format!("{} params", human(params as u64)));
    }
    if macs > 0 {
        cost.push(human_macs(macs));
    }
    NodeText {
        label: n.label(),
        shape: fmt_shape(&n.ty.shape),
        cost: cost.join(" · "),
        outputs: g.outputs.iter().filter(|o| o.node == id).map(|o| o.name.clone()).collect(),
        is_input: matches!(n.op, Op::Input),
        is_const: matches!(n.op, Op::Const(_)),
    }
}

/// A node's colour family, by what its op does: (class name, fill, stroke).
pub(crate) fn category(op: &Op) -> (&'static str, &'static str, &'static str) {
    match op {
        Op::Input => ("input", "#d3f9d8", "#2b8a3e"),
        Op::Const(_) => ("const", "#f8f9fa", "#adb5bd"),
        Op::Conv(_) => ("conv", "#dbe4ff", "#4c6ef5"),
        Op::Gemm(_) | Op::MatMul => ("linear", "#eebefa", "#ae3ec9"),
        Op::BatchNorm(_) => ("norm", "#fff3bf", "#f08c00"),
        Op::Relu | Op::Sigmoid | Op::Clip { .. } | Op::Softmax { .. } => ("act", "#c3fae8", "#12b886"),
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Sum | Op::Concat { .. } => ("join", "#ffe8cc", "#e8590c"),
        Op::Pool(_) | Op::GlobalAvgPool => ("pool", "#c5f6fa", "#15aabf"),
        _ => ("shape", "#f1f3f5", "#868e96"),
    }
}

/// How an edge is drawn: (class name, colour, SVG dash array, SVG stroke width, Graphviz style, pen width).
pub(crate) struct EdgeStyle {
    pub name: &'static str,
    pub color: &'static str,
    pub dash: &'static str,
    pub width: f64,
    pub dot_style: &'static str,
    pub dot_penwidth: f64,
}

pub(crate) fn edge_style(kind: EdgeKind) -> EdgeStyle {
    match kind {
        EdgeKind::Data => {
            EdgeStyle { name: "data", color: "#495057", dash: "", width: 1.2, dot_style: "solid", dot_penwidth: 1.0 }
        }
        EdgeKind::Skip(SkipKind::Identity) => {
            EdgeStyle { name: "identity", color: "#1971c2", dash: "", width: 2.4, dot_style: "bold", dot_penwidth: 2.2 }
        }
        EdgeKind::Skip(SkipKind::Weighted) => EdgeStyle {
            name: "weighted",
            color: "#e8590c",
            dash: "8 4",
            width: 2.2,
            dot_style: "dashed",
            dot_penwidth: 2.0,
        },
        EdgeKind::Skip(SkipKind::Gated) => EdgeStyle {
            name: "gated",
            color: "#9c36b5",
            dash: "2 4",
            width: 2.6,
            dot_style: "dotted",
            dot_penwidth: 2.6,
        },
        EdgeKind::Skip(SkipKind::Dense) => EdgeStyle {
            name: "dense",
            color: "#c2255c",
            dash: "10 3 2 3",
            width: 1.8,
            dot_style: "dashed",
            dot_penwidth: 1.4,
        },
    }
}

/// The four skip kinds, in legend order.
pub(crate) const SKIP_KINDS: [SkipKind; 4] = [SkipKind::Identity, SkipKind::Weighted, SkipKind::Gated, SkipKind::Dense];

/// One line summing up the graph: `69 nodes · 177.4 K params · 3.4 MMACs · 5 identity + 3 weighted skips`.
pub(crate) fn summary(g: &Graph) -> String {
    let nodes = g.g.node_indices().filter(|&n| !is_const(g, n)).count();
    let mut s = format!("{nodes} nodes · {} params · {}", human(g.param_count() as u64), human_macs(g.macs()));
    let skips: Vec<String> =
        g.skip_counts().iter().filter(|c| c.1 > 0).map(|(k, n)| format!("{n} {}", k.name())).collect();
    if skips.is_empty() {
        s.push_str(" · no skips");
    } else {
        s.push_str(&format!(" · {} skips", skips.join(" + ")));
    }
    s
}

/// Escapes text for XML content and attribute values (SVG, HTML, Graphviz HTML labels).
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A long name cut from the front to at most `max` characters: `…layer1.0/conv1/Conv`.
pub(crate) fn short_name(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        return name.to_string();
    }
    let tail: String = name.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512");
        assert_eq!(human(177_362), "177.4 K");
        assert_eq!(human(1_234_567), "1.2 M");
        assert_eq!(human_macs(115_600_000), "115.6 MMACs");
        assert_eq!(human_macs(512), "512 MACs");
        assert_eq!(human_macs(3_367_552), "3.4 MMACs");
    }

    #[test]
    fn escaping_and_names() {
        assert_eq!(xml_escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&apos;");
        assert_eq!(short_name("/layer1/layer1.0/conv1/Conv", 12), "…/conv1/Conv");
        assert_eq!("Mermaid".parse::<Format>(), Ok(Format::Mermaid));
        assert!("png".parse::<Format>().is_err());
    }
}
