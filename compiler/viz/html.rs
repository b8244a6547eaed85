//! One self-contained HTML page: the SVG inline, the graph's JSON in a `<script type="application/json">`,
//! inline CSS and JS, nothing fetched from the network. Drag to pan, wheel to zoom (around the cursor),
//! hover a node for its details in the side panel, click to pin them (and highlight its edges), find a node
//! by name; the legend stays in the panel.

use super::{edge_style, xml_escape, BlockKind, SKIP_KINDS};
use resin_ir::{EdgeKind, Graph};
use std::fmt::Write;

const CSS: &str = r###"
html, body { margin: 0; height: 100%; font-family: "DejaVu Sans", Verdana, Helvetica, Arial, sans-serif; color: #212529; }
body { display: flex; flex-direction: column; }
header { display: flex; align-items: baseline; gap: 14px; padding: 8px 14px; border-bottom: 1px solid #dee2e6; background: #f8f9fa; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .summary { font-size: 12px; color: #495057; }
header .tools { margin-left: auto; display: flex; gap: 6px; }
header input { font: inherit; font-size: 12px; padding: 3px 6px; width: 200px; }
header button { font: inherit; font-size: 12px; padding: 3px 10px; cursor: pointer; }
main { flex: 1; display: flex; min-height: 0; }
#view { flex: 1; position: relative; overflow: hidden; background: #fff; cursor: grab; touch-action: none; }
#view.dragging { cursor: grabbing; }
#view svg { width: 100%; height: 100%; display: block; user-select: none; }
aside { width: 340px; flex: none; border-left: 1px solid #dee2e6; overflow: auto; padding: 10px 14px; font-size: 13px; background: #fcfcfd; }
aside h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #868e96; margin: 12px 0 6px; }
.legend-row { display: flex; align-items: center; gap: 8px; margin: 3px 0; font-size: 12px; }
.legend-row svg { flex: none; }
#details table { border-collapse: collapse; width: 100%; }
#details td { padding: 3px 4px; vertical-align: top; border-bottom: 1px solid #f1f3f5; word-break: break-all; }
#details td:first-child { color: #868e96; white-space: nowrap; width: 70px; word-break: normal; }
#details .name { font-weight: bold; font-size: 14px; word-break: break-all; margin-bottom: 6px; }
#details a { color: #1971c2; cursor: pointer; text-decoration: none; }
#details a:hover { text-decoration: underline; }
.kind { font-size: 11px; padding: 0 4px; border-radius: 3px; color: #fff; }
.help { color: #868e96; font-size: 12px; }
.node { cursor: pointer; }
.node:hover > rect:last-of-type { stroke-width: 2.5px; }
.node.selected > rect { stroke: #212529; stroke-width: 3px; }
.node.found > rect:last-of-type { stroke: #f59f00; stroke-width: 4px; }
.edge.hl { stroke-width: 4px; }
"###;

const JS: &str = r###"
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var svg = document.getElementById("graph");
  var view = document.getElementById("view");
  var details = document.getElementById("details");
  var nodes = new Map(), ins = new Map(), outs = new Map(), blockOf = new Map();
  data.nodes.forEach(function (n) { nodes.set("n" + n.id, n); ins.set("n" + n.id, []); outs.set("n" + n.id, []); });
  data.edges.forEach(function (e) { ins.get("n" + e.to).push(e); outs.get("n" + e.from).push(e); });
  data.blocks.forEach(function (b) { b.nodes.forEach(function (n) { blockOf.set("n" + n, b.label); }); });
  var colors = { data: "#495057", identity: "#1971c2", weighted: "#e8590c", gated: "#9c36b5", dense: "#c2255c" };

  var full = svg.viewBox.baseVal;
  var vb = { x: full.x, y: full.y, w: full.width, h: full.height };
  function apply() { svg.setAttribute("viewBox", vb.x + " " + vb.y + " " + vb.w + " " + vb.h); }
  function toSvg(cx, cy) {
    var m = svg.getScreenCTM();
    if (!m) { return { x: vb.x, y: vb.y }; }
    return new DOMPoint(cx, cy).matrixTransform(m.inverse());
  }
  function unitsPerPixel() {
    return Math.max(vb.w / Math.max(svg.clientWidth, 1), vb.h / Math.max(svg.clientHeight, 1));
  }
  function fitAll() { vb = { x: full.x, y: full.y, w: full.width, h: full.height }; apply(); }
  function fitWidth() {
    var cw = Math.max(svg.clientWidth, 1), ch = Math.max(svg.clientHeight, 1);
    var s = Math.min(cw / full.width, 1.2);
    vb = { w: cw / s, h: ch / s, x: 0, y: 0 };
    vb.x = (full.width - vb.w) / 2;
    apply();
  }
  function centerOn(el) {
    var r = el.getBoundingClientRect();
    var c = toSvg(r.left + r.width / 2, r.top + r.height / 2);
    vb.x = c.x - vb.w / 2; vb.y = c.y - vb.h / 2; apply();
  }

  view.addEventListener("wheel", function (e) {
    e.preventDefault();
    var f = Math.exp(Math.max(-100, Math.min(100, e.deltaY)) * 0.002);
    var w = vb.w * f;
    if (w < 50 || w > full.width * 20 + 2000) { return; }
    var p = toSvg(e.clientX, e.clientY);
    vb.x = p.x - (p.x - vb.x) * f; vb.y = p.y - (p.y - vb.y) * f; vb.w = w; vb.h *= f;
    apply();
  }, { passive: false });

  var drag = null, moved = false;
  view.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) { return; }
    drag = { x: e.clientX, y: e.clientY, vx: vb.x, vy: vb.y, s: unitsPerPixel() };
    moved = false;
  });
  window.addEventListener("pointermove", function (e) {
    if (!drag) { return; }
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) > 3) { moved = true; view.classList.add("dragging"); }
    if (moved) { vb.x = drag.vx - dx * drag.s; vb.y = drag.vy - dy * drag.s; apply(); }
  });
  window.addEventListener("pointerup", function () { drag = null; view.classList.remove("dragging"); });

  function human(n) {
    if (n >= 1e9) { return (n / 1e9).toFixed(1) + " G"; }
    if (n >= 1e6) { return (n / 1e6).toFixed(1) + " M"; }
    if (n >= 1e3) { return (n / 1e3).toFixed(1) + " K"; }
    return String(n);
  }
  function el(tag, text, cls) {
    var x = document.createElement(tag);
    if (text !== undefined) { x.textContent = text; }
    if (cls) { x.className = cls; }
    return x;
  }
  function link(id) {
    var n = nodes.get(id);
    var a = el("a", n ? n.name : id);
    a.addEventListener("click", function () { var g = document.getElementById(id); if (g) { select(id); centerOn(g); } });
    return a;
  }
  function edgeList(list, end) {
    var td = el("td");
    list.forEach(function (e) {
      var row = el("div");
      if (e.kind !== "data") {
        var k = el("span", e.kind, "kind");
        k.style.background = colors[e.kind] || "#868e96";
        row.appendChild(k); row.appendChild(document.createTextNode(" "));
      }
      row.appendChild(link("n" + e[end]));
      td.appendChild(row);
    });
    if (!list.length) { td.textContent = "none"; }
    return td;
  }
  function show(id) {
    var n = nodes.get(id);
    if (!n) { return; }
    details.textContent = "";
    details.appendChild(el("div", n.name, "name"));
    var t = el("table");
    function row(k, v) {
      var tr = el("tr");
      tr.appendChild(el("td", k));
      if (v instanceof Node) { tr.appendChild(v); } else { tr.appendChild(el("td", v)); }
      t.appendChild(tr);
    }
    var shape = "[" + n.shape.join(",") + "]";
    row("op", n.op);
    row("label", n.label);
    row("fused", n.fused.length ? n.fused.join(", ") : "nothing");
    row("shape", n.dtype + shape);
    var params = n.params + ins.get(id).reduce(function (s, e) {
      var c = nodes.get("n" + e.from); return s + (c && c.op === "Constant" ? c.params : 0);
    }, 0);
    row("params", params ? human(params) + " (" + params + ")" : "0");
    row("MACs", n.macs ? human(n.macs) + "MACs (" + n.macs + ")" : "0");
    if (blockOf.has(id)) { row("block", blockOf.get(id)); }
    if (n.outputs.length) { row("output", n.outputs.join(", ")); }
    row("inputs", edgeList(ins.get(id), "from"));
    row("consumers", edgeList(outs.get(id), "to"));
    details.appendChild(t);
  }

  var pinned = null;
  function clearSelection() {
    svg.querySelectorAll(".selected").forEach(function (x) { x.classList.remove("selected"); });
    svg.querySelectorAll(".edge.hl").forEach(function (x) { x.classList.remove("hl"); });
  }
  function select(id) {
    clearSelection();
    pinned = id;
    var g = document.getElementById(id);
    if (g) { g.classList.add("selected"); }
    svg.querySelectorAll('.edge[data-from="' + id + '"], .edge[data-to="' + id + '"]').forEach(function (x) { x.classList.add("hl"); });
    show(id);
  }
  svg.querySelectorAll(".node").forEach(function (g) {
    g.addEventListener("mouseenter", function () { if (!pinned) { show(g.id); } });
    g.addEventListener("click", function () { if (!moved) { select(g.id); } });
  });
  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.tagName === "INPUT") { return; }
    if (e.key === "Escape") { pinned = null; clearSelection(); }
    if (e.key === "f") { fitAll(); }
    if (e.key === "w") { fitWidth(); }
  });
  document.getElementById("fit").addEventListener("click", fitAll);
  document.getElementById("fitw").addEventListener("click", fitWidth);

  var search = document.getElementById("search"), hits = [], hit = -1, last = "";
  search.addEventListener("keydown", function (e) {
    if (e.key !== "Enter") { return; }
    var q = search.value.trim().toLowerCase();
    if (!q) { return; }
    if (q !== last) {
      last = q; hit = -1;
      hits = data.nodes.filter(function (n) {
        return n.op !== "Constant" && (n.name.toLowerCase().indexOf(q) >= 0 || n.label.toLowerCase().indexOf(q) >= 0);
      }).map(function (n) { return "n" + n.id; });
    }
    svg.querySelectorAll(".found").forEach(function (x) { x.classList.remove("found"); });
    if (!hits.length) { search.style.background = "#ffe3e3"; return; }
    search.style.background = "";
    hit = (hit + 1) % hits.length;
    var g = document.getElementById(hits[hit]);
    if (g) { g.classList.add("found"); select(hits[hit]); centerOn(g); }
  });

  fitWidth();
  window.addEventListener("resize", function () { apply(); });
})();
"###;

/// The legend for the side panel: edge styles with counts, then block kinds.
fn legend(g: &Graph, blocks: &[super::Block]) -> String {
    let counts = g.skip_counts();
    let mut o = String::new();
    let mut kinds = vec![(EdgeKind::Data, "data".to_string())];
    for k in SKIP_KINDS {
        let n = counts.iter().find(|c| c.0 == k).map_or(0, |c| c.1);
        kinds.push((EdgeKind::Skip(k), format!("{} skip ({n})", k.name())));
    }
    for (kind, text) in kinds {
        let st = edge_style(kind);
        let dash = if st.dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{}\"", st.dash) };
        writeln!(
            o,
            "<div class=\"legend-row\"><svg width=\"44\" height=\"12\"><path d=\"M2,6 L36,6\" stroke=\"{}\" stroke-width=\"{}\"{dash} fill=\"none\"/><path d=\"M34,2 L42,6 L34,10 z\" fill=\"{}\"/></svg>{}</div>",
            st.color,
            st.width,
            st.color,
            xml_escape(&text)
        )
        .unwrap();
    }
    let dense = blocks.iter().filter(|b| matches!(b.kind, BlockKind::Dense { .. })).count();
    let residual = blocks.len() - dense;
    for (n, what, fill, stroke) in
        [(residual, "residual blocks", "#f3f8ff", "#74a9e0"), (dense, "dense blocks", "#fff0f6", "#e64980")]
    {
        if n > 0 {
            writeln!(
                o,
                "<div class=\"legend-row\"><svg width=\"44\" height=\"16\"><rect x=\"2\" y=\"1\" width=\"38\" height=\"14\" rx=\"4\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-dasharray=\"4 3\"/></svg>{what} ({n})</div>"
            )
            .unwrap();
        }
    }
    o.push_str("<div class=\"legend-row\"><svg width=\"44\" height=\"16\"><rect x=\"2\" y=\"1\" width=\"38\" height=\"14\" rx=\"7\" fill=\"#d3f9d8\" stroke=\"#2b8a3e\" stroke-width=\"2\"/></svg>input</div>\n");
    o.push_str("<div class=\"legend-row\"><svg width=\"44\" height=\"18\"><rect x=\"2\" y=\"2\" width=\"38\" height=\"14\" rx=\"4\" fill=\"#fff\" stroke=\"#c92a2a\" stroke-width=\"2.5\"/></svg>output</div>\n");
    o
}

pub(crate) fn render(g: &Graph, title: &str) -> String {
    let blocks = super::blocks(g);
    let svg = super::svg::render(g, title, false);
    let json = super::json::render_with(g, title, &blocks);
    let t = xml_escape(title);
    let mut o = String::with_capacity(svg.len() + json.len() + 16 * 1024);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    writeln!(o, "<title>{t} · resin</title>\n<style>{CSS}</style>\n</head>\n<body>").unwrap();
    writeln!(
        o,
        "<header><h1>{t}</h1><span class=\"summary\">{}</span><span class=\"tools\"><input id=\"search\" type=\"search\" placeholder=\"find a node (Enter)\"><button id=\"fitw\" title=\"fit the width (w)\">fit width</button><button id=\"fit\" title=\"show everything (f)\">fit all</button></span></header>",
        xml_escape(&super::summary(g))
    )
    .unwrap();
    o.push_str("<main>\n<div id=\"view\">\n");
    o.push_str(&svg);
    o.push_str("</div>\n<aside>\n<h2>Legend</h2>\n");
    o.push_str(&legend(g, &blocks));
    o.push_str("<h2>Node</h2>\n<div id=\"details\"><p class=\"help\">Hover a node to see its details; click to pin them.</p></div>\n");
    o.push_str("<p class=\"help\">Drag to pan, wheel to zoom, Escape to unpin, f to fit all, w to fit the width.</p>\n</aside>\n</main>\n");
    writeln!(o, "<script type=\"application/json\" id=\"graph-data\">{json}</script>").unwrap();
    writeln!(o, "<script>{JS}</script>\n</body>\n</html>").unwrap();
    o
}
