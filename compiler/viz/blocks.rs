//! Blocks: the groups of nodes that pictures draw as clusters.
//!
//! - A **residual block** belongs to an identity, weighted or gated skip edge `s → d`. Its *source* is `s`
//!   traced back through what only feeds the skip (the projection Conv and BatchNorm of a weighted skip, the
//!   carry Mul of a gated one: nodes whose one consumer is on the skip path). The block is every node on a
//!   path from the source to `d`, the source excluded and `d` included (`d` is the join: the Add, or after
//!   passes the layer that absorbed it).
//! - A **dense block** is a DenseNet block: the Concats that share their earliest operand (as in
//!   `resin_ir::skips`) and every node between that operand and them. Dense skips into sums (a densely
//!   connected MLP) make dense blocks too: the blocks of those skips, merged where they overlap.
//!
//! Clusters must nest or stay apart for Graphviz, and pictures are simplest when they never nest: every node
//! is in at most one block. Dense blocks are taken first, then residual blocks in topological order of their
//! join; a block that would share a node with one already taken is dropped.

use super::order;
use resin_ir::{EdgeKind, Graph, NodeId, Op, SkipKind};
use std::collections::{HashMap, HashSet};

/// What a block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Bypassed by a skip of this kind: identity, weighted or gated; dense for the merged blocks of dense
    /// skips into sums (a densely connected MLP).
    Residual(SkipKind),
    /// A DenseNet block of `layers` layers, counted as `SkipSummary::dense_blocks` counts them.
    Dense { layers: usize },
}

/// A cluster of nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub kind: BlockKind,
    /// `residual block`, `dense block 2 · 3 layers`, ...
    pub label: String,
    /// The members, in topological order.
    pub nodes: Vec<NodeId>,
}

/// The blocks of `g`, disjoint, ordered by their first node (see the module doc).
pub fn blocks(g: &Graph) -> Vec<Block> {
    let order = order(g);
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let depth = depths(g, &order, &pos);
    let between = |from: NodeId, to: NodeId| -> HashSet<NodeId> {
        let down = reach(g, from, petgraph::Direction::Outgoing);
        let up = reach(g, to, petgraph::Direction::Incoming);
        let mut s: HashSet<NodeId> = down.intersection(&up).copied().collect();
        s.remove(&from);
        s.insert(to);
        s
    };

    let mut candidates: Vec<(BlockKind, HashSet<NodeId>)> = Vec::new();

    // DenseNet blocks: Concats grouped by their earliest operand.
    let mut groups: Vec<(NodeId, usize, Vec<NodeId>)> = Vec::new();
    for &n in &order {
        if !matches!(g.node(n).op, Op::Concat { .. }) {
            continue;
        }
        let ins = g.inputs_of(n);
        let has_dense = g.in_edges(n).iter().any(|e| e.2 == EdgeKind::Skip(SkipKind::Dense));
        if ins.is_empty() || !(has_dense || ins.len() == 1) {
            continue;
        }
        let first = *ins.iter().min_by_key(|&&i| depth[&i]).unwrap();
        match groups.iter_mut().find(|b| b.0 == first) {
            Some(b) => {
                b.1 = b.1.max(ins.len());
                b.2.push(n);
            }
            None => groups.push((first, ins.len(), vec![n])),
        }
    }
    for (first, widest, concats) in groups.into_iter().filter(|b| b.1 >= 2) {
        let mut nodes = HashSet::new();
        for c in concats {
            nodes.extend(between(first, c));
        }
        candidates.push((BlockKind::Dense { layers: widest - 1 }, nodes));
    }

    // Dense skips into sums: one block per overlapping set.
    let mut sums: Vec<HashSet<NodeId>> = Vec::new();
    let mut residual: Vec<(usize, BlockKind, HashSet<NodeId>)> = Vec::new();
    for (s, d, _, kind) in super::edges(g) {
        let EdgeKind::Skip(k) = kind else { continue };
        if matches!(g.node(d).op, Op::Concat { .. }) {
            continue;
        }
        let nodes = between(trace(g, s, &depth), d);
        if k == SkipKind::Dense {
            let mut merged = nodes;
            sums.retain(|b| {
                if b.is_disjoint(&merged) {
                    true
                } else {
                    merged.extend(b.iter().copied());
                    false
                }
            });
            sums.push(merged);
        } else {
            residual.push((pos[&d], BlockKind::Residual(k), nodes));
        }
    }
    candidates.extend(sums.into_iter().map(|nodes| (BlockKind::Residual(SkipKind::Dense), nodes)));
    residual.sort_by_key(|r| (r.0, r.2.len()));
    candidates.extend(residual.into_iter().map(|r| (r.1, r.2)));

    let mut taken: HashSet<NodeId> = HashSet::new();
    let mut out = Vec::new();
    for (kind, nodes) in candidates {
        if nodes.is_empty() || nodes.iter().any(|n| taken.contains(n)) {
            continue;
        }
        taken.extend(nodes.iter().copied());
        let mut nodes: Vec<NodeId> = nodes.into_iter().collect();
        nodes.sort_by_key(|n| pos[n]);
        out.push(Block { kind, label: String::new(), nodes });
    }
    out.sort_by_key(|b| pos[&b.nodes[0]]);
    let mut dense_no = 0;
    for b in &mut out {
        b.label = match b.kind {
            BlockKind::Residual(SkipKind::Identity) => "residual block".into(),
            BlockKind::Residual(SkipKind::Weighted) => "residual block (projection)".into(),
            BlockKind::Residual(SkipKind::Gated) => "highway block (gated)".into(),
            BlockKind::Residual(SkipKind::Dense) => "densely connected layers".into(),
            BlockKind::Dense { layers } => {
                dense_no += 1;
                format!("dense block {dense_no} · {layers} layer{}", if layers == 1 { "" } else { "s" })
            }
        };
    }
    out
}

/// Longest-path depth of every node (as `resin_ir::skips` measures "earliest").
fn depths(g: &Graph, order: &[NodeId], pos: &HashMap<NodeId, usize>) -> HashMap<NodeId, usize> {
    let mut depth: HashMap<NodeId, usize> = HashMap::with_capacity(order.len());
    for &n in order {
        let d = g
            .inputs_of(n)
            .iter()
            .filter(|p| pos[p] < pos[&n])
            .map(|p| depth.get(p).copied().unwrap_or(0) + 1)
            .max()
            .unwrap_or(0);
        depth.insert(n, d);
    }
    depth
}

/// Every node reachable from `from` in direction `dir`, `from` included.
fn reach(g: &Graph, from: NodeId, dir: petgraph::Direction) -> HashSet<NodeId> {
    let mut seen = HashSet::from([from]);
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        for m in g.g.neighbors_directed(n, dir) {
            if seen.insert(m) {
                stack.push(m);
            }
        }
    }
    seen
}

/// The source of a skip that starts at `s`: back through nodes that only feed the skip path.
fn trace(g: &Graph, mut s: NodeId, depth: &HashMap<NodeId, usize>) -> NodeId {
    for _ in 0..g.len() {
        if matches!(g.node(s).op, Op::Input) || g.consumers(s).len() != 1 || g.outputs.iter().any(|o| o.node == s) {
            break;
        }
        let ins: Vec<NodeId> = g.inputs_of(s).into_iter().filter(|&i| !super::is_const(g, i)).collect();
        match ins.iter().min_by_key(|&&i| depth[&i]) {
            Some(&p) => s = p,
            None => break,
        }
    }
    s
}
