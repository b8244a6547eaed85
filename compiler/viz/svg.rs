//! The SVG that resin draws itself (no Graphviz): a title and summary, a legend, then the graph laid out
//! by `layout.rs` — cluster boxes behind, edges, nodes on top. Every node is a `<g id="n{index}">` with a
//! `<title>` holding its full name; every edge a `<path>` with `data-from`/`data-to` and a `<title>`.
//! Styling is in presentation attributes (not CSS) so that every renderer (browsers, rsvg, Inkscape)
//! draws the same picture.

use super::layout::{layout, Layout, Seg, P};
use super::{category, edge_style, node_text, short_name, xml_escape, Block, BlockKind, NodeText, SKIP_KINDS};
use resin_ir::{EdgeKind, Graph, NodeId, Op};
use std::fmt::Write;

const FONT: &str = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif";
const NAME_CHARS: usize = 32;
const HEADER: f64 = 118.0;

/// Estimated text widths per character (px) at the sizes used, generous enough for wide fonts.
const BOLD12: f64 = 8.3;
const REG11: f64 = 6.7;
const REG10: f64 = 6.1;

/// The lines drawn in a node: (text, font size, bold, colour).
fn node_lines(g: &Graph, id: NodeId, t: &NodeText) -> Vec<(String, f64, bool, &'static str)> {
    let n = g.node(id);
    let mut lines = vec![(t.label.clone(), 12.0, true, "#212529")];
    lines.push((short_name(&n.name, NAME_CHARS), 10.0, false, "#6c757d"));
    lines.push((t.shape.clone(), 11.0, false, "#343a40"));
    if !t.cost.is_empty() {
        lines.push((t.cost.clone(), 11.0, false, "#343a40"));
    }
    for o in &t.outputs {
        lines.push((format!("output '{}'", short_name(o, NAME_CHARS - 9)), 11.0, true, "#c92a2a"));
    }
    lines
}

fn line_height(size: f64) -> f64 {
    size + 4.0
}

/// A node's box size, from its text.
fn node_size(lines: &[(String, f64, bool, &str)]) -> (f64, f64) {
    let w = lines
        .iter()
        .map(|(s, size, bold, _)| {
            let cw = if *bold {
                BOLD12 * size / 12.0
            } else if *size >= 11.0 {
                REG11
            } else {
                REG10
            };
            s.chars().count() as f64 * cw
        })
        .fold(0.0, f64::max)
        + 24.0;
    let h = lines.iter().map(|l| line_height(l.1)).sum::<f64>() + 12.0;
    (w.max(110.0).ceil(), h.ceil())
}

fn fmt_p(p: P) -> String {
    format!("{:.1},{:.1}", p.0, p.1)
}

/// An SVG path's `d`.
pub(crate) fn path_d(path: &[Seg]) -> String {
    let mut d = String::new();
    for s in path {
        match *s {
            Seg::Move(p) => write!(d, "M{}", fmt_p(p)).unwrap(),
            Seg::Line(p) => write!(d, " L{}", fmt_p(p)).unwrap(),
            Seg::Cubic(a, b, c) => write!(d, " C{} {} {}", fmt_p(a), fmt_p(b), fmt_p(c)).unwrap(),
        }
    }
    d
}

fn arrow_marker(out: &mut String, name: &str, color: &str) {
    writeln!(
        out,
        r##"<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>"##
    )
    .unwrap();
}

/// Draws the legend at (x, y); returns its width.
fn legend(out: &mut String, g: &Graph, blocks: &[Block], x: f64, y: f64) -> f64 {
    let counts = g.skip_counts();
    writeln!(out, r##"<g class="legend" transform="translate({x:.1},{y:.1})">"##).unwrap();
    // Row 1: edges.
    let mut cx = 0.0;
    let mut entries: Vec<(EdgeKind, String)> = vec![(EdgeKind::Data, "data".to_string())];
    for k in SKIP_KINDS {
        let n = counts.iter().find(|c| c.0 == k).map_or(0, |c| c.1);
        entries.push((EdgeKind::Skip(k), format!("{} skip ({n})", k.name())));
    }
    for (kind, text) in &entries {
        let st = edge_style(*kind);
        let dash = if st.dash.is_empty() { String::new() } else { format!(r##" stroke-dasharray="{}""##, st.dash) };
        writeln!(
            out,
            r##"<path d="M{cx:.1},8 L{:.1},8" stroke="{}" stroke-width="{}" fill="none"{dash} marker-end="url(#arrow-{})"/><text x="{:.1}" y="12" font-size="11" fill="#343a40">{}</text>"##,
            cx + 38.0,
            st.color,
            st.width,
            st.name,
            cx + 46.0,
            xml_escape(text)
        )
        .unwrap();
        cx += 56.0 + text.chars().count() as f64 * REG11;
    }
    let mut width: f64 = cx;
    // Row 2: node kinds present, inputs, outputs, blocks.
    let mut cx = 0.0;
    let mut seen: Vec<&str> = Vec::new();
    let mut chips: Vec<(&str, &str, &str, bool)> = vec![("input", "#d3f9d8", "#2b8a3e", false)];
    for n in g.g.node_weights() {
        let (name, fill, stroke) = category(&n.op);
        if matches!(n.op, Op::Input | Op::Const(_)) || seen.contains(&name) {
            continue;
        }
        seen.push(name);
        chips.push((name, fill, stroke, false));
    }
    chips.push(("output", "#ffffff", "#c92a2a", true));
    for (name, fill, stroke, double) in chips {
        let rx = if name == "input" { 7.0 } else { 3.0 };
        let sw = if double { 2.5 } else { 1.2 };
        writeln!(
            out,
            r##"<rect x="{cx:.1}" y="22" width="22" height="14" rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/><text x="{:.1}" y="33" font-size="11" fill="#343a40">{name}</text>"##,
            cx + 28.0
        )
        .unwrap();
        cx += 40.0 + name.len() as f64 * REG11;
    }
    let mut kinds: Vec<&str> = Vec::new();
    for b in blocks {
        let k = match b.kind {
            BlockKind::Dense { .. } => "dense block",
            BlockKind::Residual(_) => "residual block",
        };
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    for k in kinds {
        let (fill, stroke) = cluster_colors(k == "dense block");
        writeln!(
            out,
            r##"<rect x="{cx:.1}" y="20" width="26" height="18" rx="5" fill="{fill}" stroke="{stroke}" stroke-dasharray="4 3"/><text x="{:.1}" y="33" font-size="11" fill="#343a40">{k}</text>"##,
            cx + 32.0
        )
        .unwrap();
        cx += 44.0 + k.len() as f64 * REG11;
    }
    width = width.max(cx);
    out.push_str("</g>\n");
    width
}

fn cluster_colors(dense: bool) -> (&'static str, &'static str) {
    if dense {
        ("#fff0f6", "#e64980")
    } else {
        ("#f3f8ff", "#74a9e0")
    }
}

/// A node's text block and its lines (text, width, bold, color).
type NodeLines = (NodeText, Vec<(String, f64, bool, &'static str)>);

/// The SVG document; `standalone` adds the XML declaration and namespace (left out when embedded in HTML).
pub(crate) fn render(g: &Graph, title: &str, standalone: bool) -> String {
    let blocks = super::blocks(g);
    let texts: std::collections::HashMap<NodeId, NodeLines> =
        g.g.node_indices()
            .filter(|&n| !super::is_const(g, n))
            .map(|n| {
                let t = node_text(g, n);
                let lines = node_lines(g, n, &t);
                (n, (t, lines))
            })
            .collect();
    let size = |n: NodeId| texts.get(&n).map_or((110.0, 40.0), |t| node_size(&t.1));
    let lay: Layout = layout(g, &size, &blocks);

    let mut body = String::new();
    let legend_w = legend(&mut body, g, &blocks, 24.0, 62.0);
    let summary = super::summary(g);
    let width = lay.width.max(legend_w + 48.0).max(summary.chars().count() as f64 * 7.0 + 48.0).ceil();
    let height = (lay.height + HEADER).ceil();

    let mut out = String::with_capacity(64 * 1024);
    if standalone {
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    }
    let ns = if standalone { r##" xmlns="http://www.w3.org/2000/svg""## } else { r##" id="graph""## };
    writeln!(
        out,
        r##"<svg{ns} width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" class="resin-graph">"##
    )
    .unwrap();
    writeln!(out, "<title>{}</title>", xml_escape(title)).unwrap();
    out.push_str("<defs>\n");
    arrow_marker(&mut out, "data", edge_style(EdgeKind::Data).color);
    for k in SKIP_KINDS {
        let st = edge_style(EdgeKind::Skip(k));
        arrow_marker(&mut out, st.name, st.color);
    }
    out.push_str("</defs>\n");
    writeln!(out, r##"<rect class="background" width="{width}" height="{height}" fill="#ffffff"/>"##).unwrap();
    writeln!(
        out,
        r##"<text x="24" y="32" font-size="20" font-weight="bold" fill="#212529">{}</text>"##,
        xml_escape(title)
    )
    .unwrap();
    writeln!(out, r##"<text x="24" y="52" font-size="12" fill="#495057">{}</text>"##, xml_escape(&summary)).unwrap();
    out.push_str(&body);

    writeln!(out, r##"<g class="graph" transform="translate(0,{HEADER})">"##).unwrap();
    out.push_str("<g class=\"clusters\">\n");
    let mut labels = String::new();
    for c in &lay.clusters {
        let b = &blocks[c.block];
        let (fill, stroke) = cluster_colors(matches!(b.kind, BlockKind::Dense { .. }));
        writeln!(
            out,
            r##"<rect class="cluster" id="block{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="1.2" stroke-dasharray="5 3"><title>{}</title></rect>"##,
            c.block,
            c.x,
            c.y,
            c.w,
            c.h,
            xml_escape(&b.label)
        )
        .unwrap();
        // Labels go over the edges, with a halo so that an edge passing under stays readable.
        writeln!(
            labels,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" font-style="italic" fill="{stroke}" stroke="{fill}" stroke-width="4" stroke-linejoin="round" paint-order="stroke">{}</text>"##,
            c.x + 8.0,
            c.y + 12.0,
            xml_escape(&b.label)
        )
        .unwrap();
    }
    out.push_str("</g>\n<g class=\"edges\" fill=\"none\">\n");
    // Data edges first so that skips are drawn over them.
    let mut routes: Vec<_> = lay.edges.iter().collect();
    routes.sort_by_key(|r| r.kind != EdgeKind::Data);
    for r in routes {
        let st = edge_style(r.kind);
        let dash = if st.dash.is_empty() { String::new() } else { format!(r##" stroke-dasharray="{}""##, st.dash) };
        let what = match r.kind {
            EdgeKind::Data => "data".to_string(),
            EdgeKind::Skip(k) => format!("{} skip", k.name()),
        };
        writeln!(
            out,
            r##"<path class="edge {}" data-from="n{}" data-to="n{}" d="{}" stroke="{}" stroke-width="{}"{dash} stroke-linecap="round" marker-end="url(#arrow-{})"><title>{} → {} (port {}, {what})</title></path>"##,
            st.name,
            r.from.index(),
            r.to.index(),
            path_d(&r.path),
            st.color,
            st.width,
            st.name,
            xml_escape(&g.node(r.from).name),
            xml_escape(&g.node(r.to).name),
            r.port
        )
        .unwrap();
    }
    out.push_str("</g>\n<g class=\"cluster-labels\">\n");
    out.push_str(&labels);
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for b in &lay.nodes {
        let (t, lines) = &texts[&b.id];
        let n = g.node(b.id);
        let (cat, fill, stroke) = category(&n.op);
        let is_out = !t.outputs.is_empty();
        let mut class = format!("node {cat}");
        if is_out {
            class.push_str(" output");
        }
        writeln!(
            out,
            r##"<g class="{class}" id="n{}" transform="translate({:.1},{:.1})"><title>{}</title>"##,
            b.id.index(),
            b.x,
            b.y,
            xml_escape(&n.name)
        )
        .unwrap();
        let rx = if t.is_input { b.h / 2.0 } else { 6.0 };
        if is_out {
            writeln!(
                out,
                r##"<rect x="-3" y="-3" width="{:.1}" height="{:.1}" rx="{:.1}" fill="none" stroke="#c92a2a" stroke-width="2.5"/>"##,
                b.w + 6.0,
                b.h + 6.0,
                rx + 3.0
            )
            .unwrap();
        }
        let sw = if t.is_input { 2.0 } else { 1.3 };
        writeln!(
            out,
            r##"<rect width="{:.1}" height="{:.1}" rx="{rx:.1}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>"##,
            b.w, b.h
        )
        .unwrap();
        let mut y = 6.0;
        for (s, size, bold, color) in lines {
            y += line_height(*size);
            let weight = if *bold { r##" font-weight="bold""## } else { "" };
            writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="{size}" text-anchor="middle" fill="{color}"{weight}>{}</text>"##,
                b.w / 2.0,
                y - 4.0,
                xml_escape(s)
            )
            .unwrap();
        }
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n</g>\n</svg>\n");
    out
}
