//! The layered layout that resin's own SVG uses (Sugiyama style, top to bottom).
//!
//! 1. **Layers**: longest path from the sources, so a node's layer is its topological depth. Constant
//!    operands are left out (pictures hide them).
//! 2. **Long edges**: a data edge that spans several layers gets a chain of thin dummy nodes, one per layer
//!    it crosses, so it is routed between nodes, not through them. A skip edge that spans several layers is
//!    not: it is routed in a *lane* to the side (step 5).
//! 3. **Order in a layer**: starting from topological order, a few down and up sweeps sort each layer by the
//!    barycenter of its neighbours in the layer before (after); the order with the fewest crossings wins
//!    (crossings are counted in O(E log E) per pair of layers).
//! 4. **x coordinates**: sweeps that move every node toward the mean x of its neighbours while keeping the
//!    layer's order and spacing (a weighted isotonic regression, pool-adjacent-violators, O(n) per layer).
//! 5. **Skip lanes**: every skip edge that spans two layers or more leaves its source at the bottom, swings
//!    right to a vertical lane beyond every node of the layers it spans, runs down and swings back into the
//!    top of its destination. The skips from one source share a lane (a DenseNet layer's output feeds every
//!    later Concat of its block: one bus, not a fan); lanes whose spans overlap keep apart, short spans
//!    nearest the nodes.
//! 6. **Routes** are cubic Bézier curves with vertical tangents at the nodes; clusters are the bounding
//!    boxes of their blocks' nodes.
//!
//! Cost: O((V + D + E) · sweeps · log) for ordering and placing (D = dummies), plus O(L² log L) for L lanes; the
//! ~450 nodes of DenseNet-121 lay out in milliseconds.

use super::blocks::Block;
use resin_ir::{EdgeKind, Graph, NodeId};
use std::collections::HashMap;

/// Spacing, in SVG user units (px).
const LAYER_GAP: f64 = 46.0;
const NODE_GAP: f64 = 28.0;
const DUMMY_W: f64 = 6.0;
const DUMMY_GAP: f64 = 10.0;
const LANE_GAP: f64 = 26.0;
const LANE_SEP: f64 = 10.0;
const MARGIN: f64 = 24.0;
const CLUSTER_PAD: f64 = 10.0;
const CLUSTER_PAD_TOP: f64 = 18.0;
const ORDER_SWEEPS: usize = 6;
const PLACE_SWEEPS: usize = 8;

/// A point.
pub type P = (f64, f64);

/// One step of a path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seg {
    Move(P),
    Line(P),
    Cubic(P, P, P),
}

/// A placed node: its box (top-left corner, size) and layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeBox {
    pub id: NodeId,
    pub layer: usize,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl NodeBox {
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
}

/// A routed edge.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeRoute {
    pub from: NodeId,
    pub to: NodeId,
    pub port: usize,
    pub kind: EdgeKind,
    pub path: Vec<Seg>,
    /// The x of the side lane, for a skip routed around the layers it spans.
    pub lane: Option<f64>,
}

/// A cluster's box: the index of its block in the slice given to [`layout`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterBox {
    pub block: usize,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// A laid-out graph; coordinates start at (0, 0).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub nodes: Vec<NodeBox>,
    pub edges: Vec<EdgeRoute>,
    pub clusters: Vec<ClusterBox>,
    pub layers: usize,
    pub width: f64,
    pub height: f64,
}

/// A node or a dummy in the layered graph.
struct Item {
    layer: usize,
    w: f64,
    h: f64,
    dummy: bool,
    up: Vec<usize>,
    down: Vec<usize>,
}

enum Way {
    /// Adjacent layers (or a back edge of a broken graph).
    Direct,
    /// Through these dummies.
    Chain(Vec<usize>),
    /// Around, in a side lane.
    Lane,
}

/// Lays out `g`; `size` gives each node's (width, height). Constant nodes and their edges are left out.
pub fn layout(g: &Graph, size: &dyn Fn(NodeId) -> (f64, f64), blocks: &[Block]) -> Layout {
    let order: Vec<NodeId> = super::order(g).into_iter().filter(|&n| !super::is_const(g, n)).collect();
    if order.is_empty() {
        return Layout { width: 2.0 * MARGIN, height: 2.0 * MARGIN, ..Layout::default() };
    }
    let idx: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let edges: Vec<(usize, usize, usize, EdgeKind)> =
        super::edges(g).into_iter().filter_map(|(s, t, p, k)| Some((*idx.get(&s)?, *idx.get(&t)?, p, k))).collect();

    // 1. Layers: longest path (edges that go back, in a broken graph, are ignored).
    let mut layer = vec![0usize; order.len()];
    let mut ins: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
    for &(s, t, _, _) in &edges {
        ins[t].push(s);
    }
    for t in 0..order.len() {
        layer[t] = ins[t].iter().filter(|&&s| s < t).map(|&s| layer[s] + 1).max().unwrap_or(0);
    }
    let nlayers = layer.iter().max().unwrap() + 1;

    // 2. Items: nodes, then dummies for long data edges.
    let mut items: Vec<Item> = order
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let (w, h) = size(n);
            Item { layer: layer[i], w, h, dummy: false, up: Vec::new(), down: Vec::new() }
        })
        .collect();
    let mut ways = Vec::with_capacity(edges.len());
    // Initial order key: topological position (dummies just after their source).
    let mut key: Vec<f64> = (0..order.len()).map(|i| i as f64).collect();
    for &(s, t, _, kind) in &edges {
        let span = layer[t] as isize - layer[s] as isize;
        let way = if span == 1 {
            items[s].down.push(t);
            items[t].up.push(s);
            Way::Direct
        } else if span <= 0 {
            Way::Direct
        } else if kind != EdgeKind::Data {
            Way::Lane
        } else {
            let mut chain = Vec::new();
            let mut prev = s;
            for l in layer[s] + 1..layer[t] {
                let d = items.len();
                items.push(Item { layer: l, w: DUMMY_W, h: 0.0, dummy: true, up: vec![prev], down: Vec::new() });
                key.push(s as f64 + 0.5);
                items[prev].down.push(d);
                chain.push(d);
                prev = d;
            }
            items[prev].down.push(t);
            items[t].up.push(prev);
            Way::Chain(chain)
        };
        ways.push(way);
    }
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); nlayers];
    for (i, it) in items.iter().enumerate() {
        layers[it.layer].push(i);
    }
    for l in &mut layers {
        l.sort_by(|&a, &b| key[a].total_cmp(&key[b]));
    }

    // 3. Order within layers.
    let mut pos = vec![0usize; items.len()];
    let set_pos = |layers: &[Vec<usize>], pos: &mut Vec<usize>| {
        for l in layers {
            for (i, &it) in l.iter().enumerate() {
                pos[it] = i;
            }
        }
    };
    set_pos(&layers, &mut pos);
    let mut best = layers.clone();
    let mut best_crossings = crossings(&items, &layers, &pos);
    for _ in 0..ORDER_SWEEPS {
        if best_crossings == 0 {
            break;
        }
        for layer in layers.iter_mut().skip(1) {
            sort_by_barycenter(&items, layer, &mut pos, true);
        }
        for l in (0..nlayers.saturating_sub(1)).rev() {
            sort_by_barycenter(&items, &mut layers[l], &mut pos, false);
        }
        let c = crossings(&items, &layers, &pos);
        if c < best_crossings {
            best_crossings = c;
            best = layers.clone();
        }
    }
    let layers = best;
    set_pos(&layers, &mut pos);

    // 4. x coordinates (centres).
    let gap = |a: &Item, b: &Item| (a.w + b.w) / 2.0 + if a.dummy || b.dummy { DUMMY_GAP } else { NODE_GAP };
    let mut x = vec![0.0f64; items.len()];
    for l in &layers {
        let mut cur = 0.0;
        for (i, &it) in l.iter().enumerate() {
            if i > 0 {
                cur += gap(&items[l[i - 1]], &items[it]);
            }
            x[it] = cur;
        }
        let shift = cur / 2.0;
        for &it in l {
            x[it] -= shift;
        }
    }
    let mean_of = |ns: &[usize], x: &[f64]| -> Option<f64> {
        (!ns.is_empty()).then(|| ns.iter().map(|&n| x[n]).sum::<f64>() / ns.len() as f64)
    };
    // The neighbours a node is pulled toward: those through which the graph goes on (a side branch that
    // ends, like a projection feeding a skip lane, must not drag the main path sideways).
    let onward = |ns: &[usize], up: bool| -> Vec<usize> {
        let go_on: Vec<usize> = ns
            .iter()
            .copied()
            .filter(|&n| if up { !items[n].up.is_empty() } else { !items[n].down.is_empty() })
            .collect();
        if go_on.is_empty() {
            ns.to_vec()
        } else {
            go_on
        }
    };
    let place_layer = |l: &[usize], x: &mut Vec<f64>, dir: i32| {
        let desired: Vec<f64> = l
            .iter()
            .map(|&it| {
                let ns: Vec<usize> = match dir {
                    1 => onward(&items[it].up, true),
                    -1 => onward(&items[it].down, false),
                    _ => onward(&items[it].up, true).into_iter().chain(onward(&items[it].down, false)).collect(),
                };
                mean_of(&ns, x).unwrap_or(x[it])
            })
            .collect();
        let weights: Vec<f64> = l.iter().map(|&it| if items[it].dummy { 1.5 } else { 1.0 }).collect();
        let gaps: Vec<f64> = l.windows(2).map(|w| gap(&items[w[0]], &items[w[1]])).collect();
        for (&it, v) in l.iter().zip(place(&desired, &weights, &gaps)) {
            x[it] = v;
        }
    };
    for _ in 0..PLACE_SWEEPS {
        for l in layers.iter().skip(1) {
            place_layer(l, &mut x, 1);
        }
        for l in layers.iter().rev().skip(1) {
            place_layer(l, &mut x, -1);
        }
    }
    for l in &layers {
        place_layer(l, &mut x, 0);
    }

    // y: layer tops.
    let mut top = vec![0.0f64; nlayers];
    let mut height = vec![0.0f64; nlayers];
    let mut y = MARGIN;
    for (l, its) in layers.iter().enumerate() {
        height[l] = its.iter().map(|&i| items[i].h).fold(0.0, f64::max).max(8.0);
        top[l] = y;
        y += height[l] + LAYER_GAP;
    }
    let total_h = y - LAYER_GAP + MARGIN;
    let item_top = |i: usize| top[items[i].layer] + (height[items[i].layer] - items[i].h) / 2.0;

    // Shift so that the leftmost box starts at the margin (clusters add their padding).
    let min_left = (0..items.len()).map(|i| x[i] - items[i].w / 2.0).fold(f64::INFINITY, f64::min);
    let shift = MARGIN + CLUSTER_PAD - min_left;
    for v in &mut x {
        *v += shift;
    }
    let layer_right: Vec<f64> =
        layers.iter().map(|l| l.iter().map(|&i| x[i] + items[i].w / 2.0).fold(f64::NEG_INFINITY, f64::max)).collect();

    let boxes: Vec<NodeBox> = order
        .iter()
        .enumerate()
        .map(|(i, &id)| NodeBox {
            id,
            layer: layer[i],
            x: x[i] - items[i].w / 2.0,
            y: item_top(i),
            w: items[i].w,
            h: items[i].h,
        })
        .collect();

    // 5. Lanes: one per source of long skips.
    let mut groups: Vec<(usize, usize, usize, f64)> = Vec::new(); // (source, first layer, last layer, x)
    for (e, way) in edges.iter().zip(&ways) {
        if let Way::Lane = way {
            match groups.iter_mut().find(|g| g.0 == e.0) {
                Some(g) => g.2 = g.2.max(layer[e.1]),
                None => groups.push((e.0, layer[e.0], layer[e.1], 0.0)),
            }
        }
    }
    let mut by_span: Vec<usize> = (0..groups.len()).collect();
    by_span.sort_by_key(|&i| (groups[i].2 - groups[i].1, groups[i].1, groups[i].0));
    let mut placed: Vec<usize> = Vec::new();
    for gi in by_span {
        let (_, a, b, _) = groups[gi];
        let base = layer_right[a..=b].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // The first free x at or right of base + LANE_GAP, among the lanes whose spans overlap this one.
        let mut taken: Vec<f64> =
            placed.iter().map(|&q| groups[q]).filter(|q| a < q.2 && q.1 < b).map(|q| q.3).collect();
        taken.sort_by(f64::total_cmp);
        let mut lx = base + LANE_GAP;
        for t in taken {
            if t >= lx + LANE_SEP - 1e-9 {
                break;
            }
            if (lx - t).abs() < LANE_SEP - 1e-9 {
                lx = t + LANE_SEP;
            }
        }
        groups[gi].3 = lx;
        placed.push(gi);
    }
    let lane_of: HashMap<usize, f64> = groups.iter().map(|g| (g.0, g.3)).collect();

    // Entry points on top of each node: data edges spread by where they come from.
    let mut entry: HashMap<usize, f64> = HashMap::new(); // edge index -> x offset
    {
        let mut incoming: HashMap<usize, Vec<(f64, usize)>> = HashMap::new();
        for (ei, (e, way)) in edges.iter().zip(&ways).enumerate() {
            let from_x = match way {
                Way::Direct => x[e.0],
                Way::Chain(c) => x[*c.last().unwrap()],
                Way::Lane => continue,
            };
            incoming.entry(e.1).or_default().push((from_x, ei));
        }
        for (t, mut v) in incoming {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let k = v.len() as f64;
            let step = (items[t].w * 0.5 / k).min(14.0);
            for (i, &(_, ei)) in v.iter().enumerate() {
                entry.insert(ei, (i as f64 - (k - 1.0) / 2.0) * step);
            }
        }
    }

    // 6. Routes.
    let vcurve = |a: P, b: P| -> Seg {
        let m = (b.1 - a.1) / 2.0;
        Seg::Cubic((a.0, a.1 + m), (b.0, b.1 - m), b)
    };
    let mut routes = Vec::with_capacity(edges.len());
    for (ei, (&(s, t, port, kind), way)) in edges.iter().zip(&ways).enumerate() {
        let (sb, tb) = (&boxes[s], &boxes[t]);
        let tin = (tb.cx() + entry.get(&ei).copied().unwrap_or(0.0), tb.y);
        let mut path = Vec::new();
        let mut lane = None;
        match way {
            Way::Direct if layer[t] > layer[s] => {
                let a = (sb.cx(), sb.bottom());
                path.push(Seg::Move(a));
                path.push(vcurve(a, tin));
            }
            Way::Direct => {
                // A back edge (only in a graph with a cycle): a loop out to the right.
                let a = (sb.right(), sb.y + sb.h / 2.0);
                let b = (tb.right(), tb.y + tb.h / 2.0);
                let r = a.0.max(b.0) + LANE_GAP * 2.0;
                path.push(Seg::Move(a));
                path.push(Seg::Cubic((r, a.1), (r, b.1), b));
            }
            Way::Chain(chain) => {
                let mut cur = (sb.cx(), sb.bottom());
                path.push(Seg::Move(cur));
                for &d in chain {
                    let dt = (x[d], top[items[d].layer]);
                    let db = (x[d], top[items[d].layer] + height[items[d].layer]);
                    path.push(vcurve(cur, dt));
                    path.push(Seg::Line(db));
                    cur = db;
                }
                path.push(vcurve(cur, tin));
            }
            Way::Lane => {
                let lx = lane_of[&s];
                lane = Some(lx);
                let a = (sb.cx() + sb.w * 0.3, sb.bottom());
                let below = top[layer[s]] + height[layer[s]];
                let mid1 = below + LAYER_GAP / 2.0;
                let b = (lx, below + LAYER_GAP);
                let above = top[layer[t]];
                let c = (lx, above - LAYER_GAP);
                let mid2 = above - LAYER_GAP / 2.0;
                let d = (tb.cx() + tb.w * 0.3, tb.y);
                path.push(Seg::Move(a));
                path.push(Seg::Cubic((a.0, mid1), (lx, mid1), b));
                if c.1 > b.1 {
                    path.push(Seg::Line(c));
                }
                path.push(Seg::Cubic((lx, mid2), (d.0, mid2), d));
            }
        }
        routes.push(EdgeRoute { from: order[s], to: order[t], port, kind, path, lane });
    }

    // Clusters.
    let mut clusters = Vec::new();
    for (bi, b) in blocks.iter().enumerate() {
        let members: Vec<&NodeBox> = b.nodes.iter().filter_map(|n| idx.get(n)).map(|&i| &boxes[i]).collect();
        if members.is_empty() {
            continue;
        }
        let x0 = members.iter().map(|m| m.x).fold(f64::INFINITY, f64::min) - CLUSTER_PAD;
        let x1 = members.iter().map(|m| m.right()).fold(f64::NEG_INFINITY, f64::max) + CLUSTER_PAD;
        let y0 = members.iter().map(|m| m.y).fold(f64::INFINITY, f64::min) - CLUSTER_PAD_TOP;
        let y1 = members.iter().map(|m| m.bottom()).fold(f64::NEG_INFINITY, f64::max) + CLUSTER_PAD / 2.0;
        clusters.push(ClusterBox { block: bi, x: x0, y: y0, w: x1 - x0, h: y1 - y0 });
    }

    let right = layer_right
        .iter()
        .copied()
        .chain(groups.iter().map(|g| g.3))
        .chain(clusters.iter().map(|c| c.x + c.w))
        .fold(0.0, f64::max);
    Layout { nodes: boxes, edges: routes, clusters, layers: nlayers, width: right + MARGIN, height: total_h }
}

/// Sorts one layer by the mean position of its neighbours above (`down` sweep) or below.
fn sort_by_barycenter(items: &[Item], layer: &mut [usize], pos: &mut [usize], down: bool) {
    let keys: HashMap<usize, f64> = layer
        .iter()
        .map(|&it| {
            let ns = if down { &items[it].up } else { &items[it].down };
            let k = if ns.is_empty() {
                pos[it] as f64
            } else {
                ns.iter().map(|&n| pos[n] as f64).sum::<f64>() / ns.len() as f64
            };
            (it, k)
        })
        .collect();
    layer.sort_by(|a, b| keys[a].total_cmp(&keys[b]));
    for (i, &it) in layer.iter().enumerate() {
        pos[it] = i;
    }
}

/// Edge crossings between consecutive layers: inversions of the lower ends, counted with a Fenwick tree.
fn crossings(items: &[Item], layers: &[Vec<usize>], pos: &[usize]) -> usize {
    let mut total = 0;
    for pair in layers.windows(2) {
        let mut ends: Vec<(usize, usize)> =
            pair[0].iter().flat_map(|&u| items[u].down.iter().map(move |&v| (pos[u], pos[v]))).collect();
        ends.sort_unstable();
        let n = pair[1].len();
        let mut tree = vec![0usize; n + 1];
        for (seen, &(_, v)) in ends.iter().enumerate() {
            // Earlier edges that end strictly right of v cross this one.
            let mut not_greater = 0;
            let mut i = v + 1;
            while i > 0 {
                not_greater += tree[i];
                i &= i - 1;
            }
            total += seen - not_greater;
            let mut i = v + 1;
            while i <= n {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

/// Positions closest (in weighted least squares) to `desired` that keep the order and at least `gaps[i]`
/// between items i and i+1: pool-adjacent-violators on x_i − offset_i.
fn place(desired: &[f64], weights: &[f64], gaps: &[f64]) -> Vec<f64> {
    let n = desired.len();
    let mut offset = vec![0.0; n];
    for i in 1..n {
        offset[i] = offset[i - 1] + gaps[i - 1];
    }
    // Blocks: (weight, weighted sum, count).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        blocks.push((weights[i], weights[i] * (desired[i] - offset[i]), 1));
        while blocks.len() > 1 {
            let (w1, s1, c1) = blocks[blocks.len() - 1];
            let (w0, s0, c0) = blocks[blocks.len() - 2];
            if s0 / w0 <= s1 / w1 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().unwrap() = (w0 + w1, s0 + s1, c0 + c1);
        }
    }
    let mut out = Vec::with_capacity(n);
    for (w, s, c) in blocks {
        for _ in 0..c {
            out.push(s / w + offset[out.len()]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_keeps_order_and_gaps() {
        let x = place(&[0.0, 0.0, 0.0], &[1.0; 3], &[10.0, 10.0]);
        assert_eq!(x, vec![-10.0, 0.0, 10.0]);
        let x = place(&[0.0, 100.0], &[1.0; 2], &[10.0]);
        assert_eq!(x, vec![0.0, 100.0]);
    }
}
