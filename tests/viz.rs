//! Visualization: every format on the committed models, before and after passes. DOT goes through
//! Graphviz (`dot -Tsvg`, skipped when it is not installed), the SVG through a small XML well-formedness
//! checker, the JSON through serde_json and a count check, Mermaid and HTML through text checks; the layout
//! has no overlapping nodes and routes long skips beside the layers they span; a DenseNet-121-sized graph
//! renders quickly.
//!
//! Set `RESIN_VIZ_OUT=/some/dir` to keep every rendering there for a look.

mod common;

use resin::viz::{self, layout::layout, Format};
use resin_ir::{Dim, EdgeKind, Graph, NodeId, Op, Output, TensorType};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

const MODELS: [&str; 5] = ["resnet18_w8", "densenet_small", "mlp_gated", "mlp_dense", "plain18_w8"];

/// Every committed model, as imported ("before") and after the pass pipeline ("after").
fn graphs() -> Vec<(String, Graph)> {
    let mut v = Vec::new();
    for name in MODELS {
        let path = common::models_dir().join(format!("{name}.onnx"));
        let g = resin::cli::load_graph(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let mut after = g.clone();
        resin::passes::run_pipeline(&mut after, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        v.push((format!("{name} (before passes)"), g));
        v.push((format!("{name} (after passes)"), after));
    }
    v
}

fn visible_names(g: &Graph) -> Vec<String> {
    g.g.node_weights().filter(|n| !matches!(n.op, Op::Const(_))).map(|n| n.name.clone()).collect()
}

/// Writes a rendering to `$RESIN_VIZ_OUT` when it is set.
fn keep(title: &str, format: Format, text: &str) {
    if let Some(dir) = std::env::var_os("RESIN_VIZ_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file: String = title.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let file = file.split('_').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("_");
        std::fs::write(dir.join(format!("{file}.{}", format.extension())), text).unwrap();
    }
}

/// A minimal XML well-formedness check: one root element, properly nested tags, quoted attributes without
/// duplicates or `<`, only the predefined or numeric entities. Returns the text of every `<title>`,
/// unescaped.
fn check_xml(s: &str) -> Result<Vec<String>, String> {
    fn entity(s: &str, i: usize) -> Result<(char, usize), String> {
        let end = s[i..].find(';').map(|e| i + e).ok_or_else(|| format!("unterminated entity at {i}"))?;
        let name = &s[i + 1..end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&n[2..], 16).map_err(|_| format!("bad entity &{n};"))?)
                    .ok_or("bad char")?
            }
            n if n.starts_with('#') => {
                char::from_u32(n[1..].parse().map_err(|_| format!("bad entity &{n};"))?).ok_or("bad char")?
            }
            n => return Err(format!("unknown entity &{n}; at {i}")),
        };
        Ok((c, end + 1))
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut titles = Vec::new();
    let mut text = String::new();
    while i < b.len() {
        match b[i] {
            b'<' if s[i..].starts_with("<?") => {
                if i != 0 {
                    return Err("a processing instruction after the start".into());
                }
                i += s[i..].find("?>").ok_or("unterminated <?")? + 2;
            }
            b'<' if s[i..].starts_with("<!--") => i += s[i..].find("-->").ok_or("unterminated comment")? + 3,
            b'<' if s[i..].starts_with("<!DOCTYPE") && stack.is_empty() && roots == 0 => {
                i += s[i..].find('>').ok_or("unterminated DOCTYPE")? + 1
            }
            b'<' if s[i..].starts_with("</") => {
                let end = i + s[i..].find('>').ok_or("unterminated end tag")?;
                let name = s[i + 2..end].trim();
                let open = stack.pop().ok_or_else(|| format!("</{name}> closes nothing"))?;
                if open != name {
                    return Err(format!("<{open}> closed by </{name}> at {i}"));
                }
                if name == "title" {
                    titles.push(std::mem::take(&mut text));
                }
                i = end + 1;
            }
            b'<' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && !b" \t\r\n/>".contains(&b[j]) {
                    j += 1;
                }
                let name = &s[start..j];
                if name.is_empty() || !name.chars().next().unwrap().is_alphabetic() {
                    return Err(format!("bad tag name at {i}"));
                }
                let mut attrs = HashSet::new();
                loop {
                    while j < b.len() && b" \t\r\n".contains(&b[j]) {
                        j += 1;
                    }
                    if j >= b.len() {
                        return Err(format!("unterminated tag <{name}>"));
                    }
                    if b[j] == b'>' || s[j..].starts_with("/>") {
                        break;
                    }
                    let a0 = j;
                    while j < b.len() && b[j] != b'=' && !b" \t\r\n>".contains(&b[j]) {
                        j += 1;
                    }
                    let attr = &s[a0..j];
                    if j >= b.len() || b[j] != b'=' {
                        return Err(format!("attribute '{attr}' of <{name}> has no value"));
                    }
                    if !attrs.insert(attr) {
                        return Err(format!("duplicate attribute '{attr}' in <{name}>"));
                    }
                    let q = b[j + 1];
                    if q != b'"' && q != b'\'' {
                        return Err(format!("unquoted attribute '{attr}' in <{name}>"));
                    }
                    let close = j + 2 + s[j + 2..].find(q as char).ok_or("unterminated attribute value")?;
                    let value = &s[j + 2..close];
                    if value.contains('<') {
                        return Err(format!("'<' in attribute '{attr}' of <{name}>"));
                    }
                    let mut k = 0;
                    while let Some(p) = value[k..].find('&') {
                        k = entity(value, k + p)?.1;
                    }
                    j = close + 1;
                }
                if stack.is_empty() {
                    roots += 1;
                }
                if s[j..].starts_with("/>") {
                    i = j + 2;
                } else {
                    stack.push(name);
                    if name == "title" {
                        text.clear();
                    }
                    i = j + 1;
                }
            }
            b'&' => {
                let (c, next) = entity(s, i)?;
                text.push(c);
                i = next;
            }
            _ => {
                let c = s[i..].chars().next().unwrap();
                if stack.is_empty() && !c.is_whitespace() {
                    return Err(format!("text outside the root at {i}"));
                }
                text.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed <{}>", stack.last().unwrap()));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(titles)
}

#[test]
fn formats_parse_by_name() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>(), Ok(f));
        assert_eq!(f.name().to_uppercase().parse::<Format>(), Ok(f));
    }
    let e = "png".parse::<Format>().unwrap_err();
    assert!(e.contains("dot, svg, mermaid, html, json"), "{e}");
}

#[test]
fn xml_checker_rejects_broken_documents() {
    assert!(check_xml("<a><b/></a>").is_ok());
    assert_eq!(check_xml("<svg><title>x &amp; y</title></svg>").unwrap(), vec!["x & y"]);
    for bad in ["<a><b></a>", "<a x=1/>", "<a>&nbsp;</a>", "<a></a><b/>", "<a x=\"<\"/>", "<a x=\"1\" x=\"2\"/>", "<a>"]
    {
        assert!(check_xml(bad).is_err(), "{bad}");
    }
}

#[test]
fn dot_is_accepted_by_graphviz() {
    let have_dot = Command::new("dot").arg("-V").stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    for (title, g) in graphs() {
        let dot = viz::render(&g, Format::Dot, &title);
        keep(&title, Format::Dot, &dot);
        assert!(dot.starts_with("digraph "), "{title}");
        assert!(dot.contains("rankdir=TB"), "{title}");
        // Every node once, by id (its name is in the label and tooltip).
        for id in g.g.node_indices() {
            assert!(
                dot.contains(&format!("\n    n{} [", id.index())) || dot.contains(&format!("\n  n{} [", id.index()))
            );
        }
        if !have_dot {
            continue;
        }
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{title}: dot failed: {err}");
        let bad: Vec<&str> =
            err.lines().filter(|l| l.contains("Error") || l.contains("Warning") || l.contains("syntax")).collect();
        assert!(bad.is_empty(), "{title}: dot complained: {bad:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"), "{title}");
    }
    if !have_dot {
        println!("SKIPPED: dot not installed (the DOT text was still checked)");
    }
}

#[test]
fn svg_is_well_formed_and_names_every_node() {
    for (title, g) in graphs() {
        let svg = viz::render(&g, Format::Svg, &title);
        keep(&title, Format::Svg, &svg);
        let titles = check_xml(&svg).unwrap_or_else(|e| panic!("{title}: not well-formed XML: {e}"));
        let titles: HashSet<String> = titles.into_iter().collect();
        for name in visible_names(&g) {
            assert!(titles.contains(&name), "{title}: no <title> for node '{name}'");
        }
        assert!(svg.starts_with("<?xml") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""), "{title}");
        assert!(
            !svg.contains("NaN") && !svg.contains("inf,") && !svg.contains(",inf"),
            "{title}: a coordinate is not finite"
        );
        let drawn = svg.matches("<g class=\"node ").count();
        assert_eq!(drawn, visible_names(&g).len(), "{title}: one <g> per non-constant node");
        // Every skip edge is drawn in its colour, and the legend names the four kinds.
        let skips: usize = g.skip_counts().iter().map(|c| c.1).sum();
        let drawn_skips = ["identity", "weighted", "gated", "dense"]
            .iter()
            .map(|k| svg.matches(&format!("class=\"edge {k}\"")).count())
            .sum::<usize>();
        assert_eq!(drawn_skips, skips, "{title}: skip edges drawn");
        for k in ["identity skip", "weighted skip", "gated skip", "dense skip"] {
            assert!(svg.contains(k), "{title}: legend lacks '{k}'");
        }
    }
}

#[test]
fn layout_keeps_nodes_apart_and_skips_beside_them() {
    for (title, g) in graphs() {
        let blocks = viz::blocks(&g);
        let size = |n: NodeId| (80.0 + 3.0 * g.node(n).name.len() as f64, 40.0 + (n.index() % 3) as f64 * 10.0);
        let lay = layout(&g, &size, &blocks);
        assert_eq!(lay.nodes.len(), visible_names(&g).len(), "{title}");
        for (i, a) in lay.nodes.iter().enumerate() {
            assert!(a.x >= 0.0 && a.y >= 0.0 && a.right() <= lay.width && a.bottom() <= lay.height, "{title}");
            for b in &lay.nodes[i + 1..] {
                let apart = a.right() <= b.x || b.right() <= a.x || a.bottom() <= b.y || b.bottom() <= a.y;
                assert!(apart, "{title}: '{}' overlaps '{}'", g.node(a.id).name, g.node(b.id).name);
            }
        }
        let layer_of: HashMap<NodeId, usize> = lay.nodes.iter().map(|n| (n.id, n.layer)).collect();
        for e in &lay.edges {
            let (lf, lt) = (layer_of[&e.from], layer_of[&e.to]);
            assert!(lt > lf, "{title}: edges go down");
            if let Some(x) = e.lane {
                assert!(matches!(e.kind, EdgeKind::Skip(_)), "{title}: only skips take lanes");
                for n in lay.nodes.iter().filter(|n| n.layer > lf && n.layer < lt) {
                    assert!(n.right() < x, "{title}: the lane of a skip crosses '{}'", g.node(n.id).name);
                }
            } else if matches!(e.kind, EdgeKind::Skip(_)) {
                assert_eq!(lt, lf + 1, "{title}: a long skip without a lane");
            }
        }
        // Clusters never overlap one another.
        for (i, a) in lay.clusters.iter().enumerate() {
            for b in &lay.clusters[i + 1..] {
                let apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                assert!(apart, "{title}: clusters {} and {} overlap", a.block, b.block);
            }
        }
    }
}

#[test]
fn json_counts_match_the_graph() {
    for (title, g) in graphs() {
        let text = viz::render(&g, Format::Json, &title);
        keep(&title, Format::Json, &text);
        let j: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{title}: {e}"));
        let nodes = j["nodes"].as_array().unwrap();
        let edges = j["edges"].as_array().unwrap();
        assert_eq!(nodes.len(), g.len(), "{title}: nodes");
        assert_eq!(edges.len(), g.g.edge_count(), "{title}: edges");
        for n in nodes {
            for key in ["id", "name", "op", "label", "shape", "params", "macs", "fused"] {
                assert!(n.get(key).is_some(), "{title}: node without '{key}'");
            }
        }
        let ids: HashSet<u64> = nodes.iter().map(|n| n["id"].as_u64().unwrap()).collect();
        assert_eq!(ids.len(), g.len(), "{title}: ids are unique");
        for e in edges {
            assert!(ids.contains(&e["from"].as_u64().unwrap()) && ids.contains(&e["to"].as_u64().unwrap()));
        }
        for (kind, count) in g.skip_counts() {
            assert_eq!(j["skips"][kind.name()].as_u64(), Some(count as u64), "{title}: {} skips", kind.name());
            let drawn = edges.iter().filter(|e| e["kind"] == kind.name()).count();
            assert_eq!(drawn, count, "{title}: {} edges", kind.name());
        }
        let params: u64 = nodes.iter().map(|n| n["params"].as_u64().unwrap()).sum();
        assert_eq!(params, g.param_count() as u64, "{title}: parameters");
        let macs: u64 = nodes.iter().map(|n| n["macs"].as_u64().unwrap()).sum();
        assert_eq!(macs, g.macs(), "{title}: MACs");
        // Blocks are disjoint.
        let mut seen = HashSet::new();
        for b in j["blocks"].as_array().unwrap() {
            for n in b["nodes"].as_array().unwrap() {
                assert!(seen.insert(n.as_u64().unwrap()), "{title}: node {n} in two blocks");
            }
        }
        let dense: Vec<u64> =
            j["dense_blocks"].as_array().unwrap().iter().map(|b| b["layers"].as_u64().unwrap()).collect();
        if title.contains("before") {
            let summary = g.clone().recognize_skips();
            let want: Vec<u64> = summary.dense_blocks.iter().map(|&b| b as u64).collect();
            assert_eq!(dense, want, "{title}: dense blocks");
        }
        if title.starts_with("densenet_small") {
            assert_eq!(dense, [2, 3, 4], "{title}");
        }
        if title.starts_with("resnet18_w8") {
            let residual = j["blocks"].as_array().unwrap().iter().filter(|b| b["kind"] == "residual").count();
            assert_eq!(residual, 8, "{title}: one residual block per skip");
        }
        if title.starts_with("plain18_w8") {
            assert!(j["blocks"].as_array().unwrap().is_empty(), "{title}: a plain network has no blocks");
        }
    }
}

#[test]
fn mermaid_is_a_flowchart_naming_every_node() {
    for (title, g) in graphs() {
        let m = viz::render(&g, Format::Mermaid, &title);
        keep(&title, Format::Mermaid, &m);
        assert!(m.starts_with("flowchart TB\n"), "{title}");
        for n in g.g.node_weights() {
            assert!(m.contains(&n.name), "{title}: '{}' not named", n.name);
        }
        let skips: usize = g.skip_counts().iter().map(|c| c.1).sum();
        assert_eq!(m.matches(".-> n").count(), skips, "{title}: skip links");
        let styled: usize = m
            .lines()
            .filter_map(|l| l.trim().strip_prefix("linkStyle "))
            .map(|l| l.split_whitespace().next().unwrap().split(',').count())
            .sum();
        assert_eq!(styled, skips, "{title}: every skip link is styled");
        let links = m.matches(" --> ").count() + skips;
        assert_eq!(links, g.g.edge_count(), "{title}: links");
        assert_eq!(m.matches("subgraph ").count(), m.lines().filter(|l| l.trim() == "end").count(), "{title}");
    }
}

#[test]
fn html_is_one_self_contained_page() {
    for (title, g) in graphs() {
        let html = viz::render(&g, Format::Html, &title);
        keep(&title, Format::Html, &html);
        assert!(html.starts_with("<!DOCTYPE html>"), "{title}");
        assert!(!html.contains("http"), "{title}: an external URL");
        for tag in ["<link", "<img", "src=", "@import", "url(http"] {
            assert!(!html.contains(tag), "{title}: '{tag}' fetches something");
        }
        assert!(html.contains("<svg id=\"graph\"") && html.contains("</svg>"), "{title}: the SVG is embedded");
        assert!(html.contains("<script>") && html.contains("<style>"), "{title}");
        let start = html.find("<script type=\"application/json\" id=\"graph-data\">").expect("data") + 48;
        let end = start + html[start..].find("</script>").unwrap();
        let j: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap_or_else(|e| panic!("{title}: {e}"));
        assert_eq!(j["nodes"].as_array().unwrap().len(), g.len());
        let svg_start = html.find("<svg id=\"graph\"").unwrap();
        let svg_end = html.find("</svg>\n</div>").unwrap() + 6;
        let titles = check_xml(&html[svg_start..svg_end]).unwrap_or_else(|e| panic!("{title}: embedded SVG: {e}"));
        for name in visible_names(&g) {
            assert!(titles.contains(&name), "{title}: '{name}' missing from the page");
        }
        for k in ["identity skip", "weighted skip", "gated skip", "dense skip"] {
            assert!(html.contains(k), "{title}: legend lacks '{k}'");
        }
    }
}

/// A DenseNet-121-shaped graph (blocks of 6, 12, 24 and 16 layers, 7 nodes a layer): about 450 nodes and
/// 350 dense skips.
fn densenet121_shape() -> Graph {
    let mut g = Graph::new();
    let ty = |c: usize| TensorType::f32(vec![Dim::Sym("batch".into()), Dim::Fixed(c), Dim::Fixed(7), Dim::Fixed(7)]);
    let mut x = g.add_input("input", ty(64));
    let mut c = 64;
    let unary = |g: &mut Graph, name: String, op: Op, x: NodeId, c: usize| {
        let id = g.add_node(name, op, ty(c));
        g.connect(x, id, 0);
        id
    };
    for (b, layers) in [6, 12, 24, 16].into_iter().enumerate() {
        let mut feats = vec![x];
        for l in 0..layers {
            let cat = g.add_node(format!("/block{b}/layer{l}/Concat"), Op::Concat { axis: 1 }, ty(c));
            for (p, &f) in feats.iter().enumerate() {
                g.connect(f, cat, p);
            }
            let mut h = cat;
            for (k, op) in
                [Op::Identity, Op::Relu, Op::Identity, Op::Identity, Op::Relu, Op::Identity].into_iter().enumerate()
            {
                h = unary(&mut g, format!("/block{b}/layer{l}/op{k}"), op, h, 32);
            }
            feats.push(h);
            c += 32;
        }
        let cat = g.add_node(format!("/block{b}/Concat"), Op::Concat { axis: 1 }, ty(c));
        for (p, &f) in feats.iter().enumerate() {
            g.connect(f, cat, p);
        }
        x = unary(&mut g, format!("/transition{b}/Relu"), Op::Relu, cat, c);
        c /= 2;
    }
    g.outputs.push(Output { name: "output".into(), node: x });
    g.recognize_skips();
    g
}

#[test]
fn a_densenet121_sized_graph_renders_quickly() {
    let g = densenet121_shape();
    assert!(g.len() > 400, "{}", g.len());
    let dense = g.skip_counts().iter().find(|c| c.0 == resin_ir::SkipKind::Dense).unwrap().1;
    assert!(dense > 300, "{dense} dense skips");
    let t = Instant::now();
    for f in Format::ALL {
        let out = viz::render(&g, f, "densenet121-shaped");
        assert!(!out.is_empty());
        if f == Format::Svg {
            check_xml(&out).unwrap();
        }
        keep("densenet121_shaped", f, &out);
    }
    let secs = t.elapsed().as_secs_f64();
    println!("all five formats of a {}-node graph in {secs:.2} s", g.len());
    assert!(secs < 20.0, "rendering took {secs:.1} s");
    let j: serde_json::Value = serde_json::from_str(&viz::render(&g, Format::Json, "x")).unwrap();
    let sizes: Vec<u64> = j["dense_blocks"].as_array().unwrap().iter().map(|b| b["layers"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [6, 12, 24, 16]);
}

/// The full-size exports in `$RESIN_MODELS`, when set.
#[test]
fn full_size_models_render() {
    let Some(dir) = std::env::var_os("RESIN_MODELS") else {
        println!("SKIPPED: RESIN_MODELS is not set");
        return;
    };
    for name in ["densenet121", "resnet50"] {
        let path = std::path::Path::new(&dir).join(format!("{name}.onnx"));
        if !path.exists() {
            println!("SKIPPED: {} does not exist", path.display());
            continue;
        }
        let mut g = resin::cli::load_graph(&path).unwrap();
        resin::passes::run_pipeline(&mut g, &[]).unwrap();
        let t = Instant::now();
        let svg = viz::render(&g, Format::Svg, name);
        println!("{name}: {} nodes, SVG in {:.2} s", g.len(), t.elapsed().as_secs_f64());
        check_xml(&svg).unwrap();
        keep(&format!("{name}_after"), Format::Svg, &svg);
        keep(&format!("{name}_after"), Format::Html, &viz::render(&g, Format::Html, name));
    }
}

/// Names with every character that a format treats specially, a constant operand, and a skip.
fn hostile_graph() -> Graph {
    let mut g = Graph::new();
    let ty = || TensorType::f32(vec![Dim::Sym("batch".into()), Dim::Fixed(4)]);
    let x = g.add_input("in\"put<1>", ty());
    let a = g.add_node("/a/b:c.d&e'f\\g#h{i}[j]|k;l", Op::Relu, ty());
    g.connect(x, a, 0);
    let b = g.add_node("--> end %% <!-- -->", Op::Relu, ty());
    g.connect(a, b, 0);
    let c = g.add_node(
        "]]>\n&amp; http:x",
        Op::Const(resin_ir::Tensor::f32(vec![4], vec![1.0; 4])),
        TensorType::f32(vec![Dim::Fixed(4)]),
    );
    let m = g.add_node("mul \\\" \\n", Op::Mul, ty());
    g.connect(b, m, 0);
    g.connect(c, m, 1);
    let s = g.add_node("subgraph end", Op::Add, ty());
    g.connect(m, s, 0);
    g.connect(x, s, 1);
    g.outputs.push(Output { name: "out\"</script>".into(), node: s });
    g.validate().unwrap();
    g.recognize_skips();
    g
}

#[test]
fn special_characters_in_names_are_escaped() {
    let g = hostile_graph();
    assert_eq!(g.skip_counts()[0].1, 1, "one identity skip:\n{g}");
    let title = "a \"title\" <with> & stuff";
    let svg = viz::render(&g, Format::Svg, title);
    let titles = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    for name in visible_names(&g) {
        assert!(titles.contains(&name), "'{name}'");
    }
    assert!(titles.contains(&title.to_string()));
    let j: serde_json::Value = serde_json::from_str(&viz::render(&g, Format::Json, title)).unwrap();
    let names: HashSet<&str> = j["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    for n in g.g.node_weights() {
        assert!(names.contains(n.name.as_str()), "'{}'", n.name);
    }
    assert_eq!(j["title"], title);
    let html = viz::render(&g, Format::Html, title);
    let data = &html[html.find("id=\"graph-data\">").unwrap()..];
    assert!(!data[..data.find("</script>").unwrap()].contains('<'), "the JSON cannot end its <script>");
    let m = viz::render(&g, Format::Mermaid, title);
    assert!(m.starts_with("flowchart TB\n"));
    for line in m.lines().filter(|l| l.contains("[\"") || l.contains("([\"")) {
        let label = &line[line.find('"').unwrap() + 1..line.rfind('"').unwrap()];
        assert!(!label.contains(['"', '<', '>']) || label.contains("<br/>"), "{line}");
        assert!(!label.replace("<br/>", "").contains(['"', '<', '>']), "{line}");
    }
    let dot = viz::render(&g, Format::Dot, title);
    if Command::new("dot").arg("-V").stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false) {
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "{}\n{dot}", String::from_utf8_lossy(&out.stderr));
        // Graphviz's own SVG keeps the names (as tooltips).
        check_xml(&String::from_utf8_lossy(&out.stdout)).unwrap();
    } else {
        println!("SKIPPED: dot not installed");
    }
}

#[test]
fn empty_and_cyclic_graphs_still_render() {
    let mut cyclic = hostile_graph();
    let ids: Vec<NodeId> = cyclic.g.node_indices().collect();
    cyclic.connect(ids[2], ids[1], 1); // a back edge
    assert!(cyclic.topo_order().is_err());
    for g in [Graph::new(), cyclic] {
        for f in Format::ALL {
            let out = viz::render(&g, f, "broken");
            assert!(!out.is_empty(), "{f}");
            if f == Format::Svg {
                check_xml(&out).unwrap();
            }
            if f == Format::Json {
                let _: serde_json::Value = serde_json::from_str(&out).unwrap();
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------------
// The HTML page in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run).
// ------------------------------------------------------------------------------------------------------

/// The first Chromium found: `$RESIN_CHROMIUM`, then `chromium`, `chromium-browser`, `google-chrome`.
fn chromium() -> Option<String> {
    let candidates = std::env::var("RESIN_CHROMIUM")
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].into_iter().map(String::from));
    candidates.into_iter().find(|c| {
        Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

/// What headless Chromium made of a page: its console messages (every `CONSOLE` line of its log: uncaught
/// exceptions and console calls alike; this page logs nothing when all is well) and its DOM after the
/// scripts ran, or the screenshot written to `shot`.
struct PageRun {
    console: Vec<String>,
    dom: String,
}

fn open_in_chromium(browser: &str, page: &std::path::Path, shot: Option<&std::path::Path>) -> PageRun {
    let profile = page.with_extension(format!("profile-{}", shot.is_some()));
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1400,900",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match shot {
        Some(s) => cmd.arg(format!("--screenshot={}", s.display())),
        None => cmd.arg("--dump-dom"),
    };
    let mut child =
        cmd.arg(format!("file://{}", page.display())).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Never hang the test suite on a stuck browser.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("chromium did not finish {} within 60 s", page.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed on {} ({}):\n{log}", page.display(), out.status);
    PageRun {
        console: log.lines().filter(|l| l.contains(":CONSOLE")).map(String::from).collect(),
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// The `viewBox` of the page's graph: the script's last act (`fitWidth()`) changes it, so a page whose
/// script stopped early keeps the SVG's own.
fn graph_viewbox(html: &str) -> String {
    let svg = &html[html.find("<svg id=\"graph\"").expect("the graph's <svg>")..];
    let at = svg.find("viewBox=\"").expect("a viewBox") + 9;
    svg[at..at + svg[at..].find('"').unwrap()].to_string()
}

/// ResNet-18 (1/8 width) after passes, as `resin viz --format html` writes it, opens in headless Chromium
/// with no console message, its script runs to the end, and the screenshot shows the graph: enough ink,
/// and identity-skip blue inside the graph's pane. The same page with a typo in its script is caught (the
/// check can fail).
#[test]
fn html_page_opens_in_headless_chromium() {
    let Some(browser) = chromium() else {
        println!("SKIPPED: no headless Chromium (install Debian's chromium, or set RESIN_CHROMIUM)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("resin-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let g = {
        let path = common::models_dir().join("resnet18_w8.onnx");
        let mut g = resin::cli::load_graph(&path).unwrap();
        resin::passes::run_pipeline(&mut g, &[]).unwrap();
        g
    };
    let html = viz::render(&g, Format::Html, "resnet18_w8.onnx (after passes)");
    let page = dir.join("resnet18.html");
    std::fs::write(&page, &html).unwrap();
    let t = Instant::now();

    let run = open_in_chromium(&browser, &page, None);
    assert!(run.console.is_empty(), "console messages:\n{}", run.console.join("\n"));
    let before = graph_viewbox(&html);
    let after = graph_viewbox(&run.dom);
    assert_ne!(before, after, "the page's script did not run to its end (viewBox unchanged)");
    assert!(run.dom.contains("Conv+BatchNormalization+Add+Relu"), "the graph is not in the DOM");

    // The control: a typo in the script's last call must be reported, and the viewBox left alone.
    let broken = dir.join("broken.html");
    let typo = html.replacen("  fitWidth();\n", "  fitWidht();\n", 1);
    assert_ne!(typo, html, "the page's script no longer ends with fitWidth(); update this control");
    std::fs::write(&broken, &typo).unwrap();
    let bad = open_in_chromium(&browser, &broken, None);
    assert!(
        bad.console.iter().any(|l| l.contains("Uncaught ReferenceError: fitWidht is not defined")),
        "the broken page's error was not caught; console: {:?}",
        bad.console
    );
    assert_eq!(graph_viewbox(&bad.dom), before);

    let shot = dir.join("resnet18.png");
    let run = open_in_chromium(&browser, &page, Some(&shot));
    assert!(run.console.is_empty(), "console messages:\n{}", run.console.join("\n"));
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1400, 900));
    // Ink: pixels clearly darker than the white/light-grey background.
    let ink = img.pixels().filter(|p| p.0.iter().any(|&c| c < 200)).count();
    let share = ink as f64 / (1400.0 * 900.0);
    // Identity skips are drawn #1971c2; count that blue in the graph's pane (left of the 340-pixel panel).
    let blue = img
        .enumerate_pixels()
        .filter(|(x, y, p)| {
            *x < 1000 && *y > 50 && p.0.iter().zip([0x19u8, 0x71, 0xc2]).all(|(&a, b)| a.abs_diff(b) < 24)
        })
        .count();
    println!(
        "chromium: no console message, script ran (viewBox {before} -> {after}); screenshot {:.1}% ink, {blue} identity-blue pixels; {:.1} s",
        100.0 * share,
        t.elapsed().as_secs_f64()
    );
    assert!(share > 0.02, "the screenshot is nearly blank ({:.2}% ink)", 100.0 * share);
    assert!(blue > 200, "no identity skip visible in the graph pane ({blue} blue pixels)");
    std::fs::remove_dir_all(&dir).unwrap();
}
