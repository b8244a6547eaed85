//! Passes over the IR. Each pass is one module with `pub fn run(&mut Graph) -> PassReport`, preserves the
//! graph's outputs (a property test checks every pass on random skip graphs), and can be switched off by
//! name. The pipeline is a list of values, run in order.

pub mod canonicalize;
pub mod eliminate_dead;
pub mod fold_batchnorm;
pub mod fold_constants;
pub mod fuse_activation;
pub mod identity_skip_inplace;
pub mod merge_dense_skips;
pub mod pool_first;

use resin_ir::Graph;

/// What a pass changed, one line per change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub pass: &'static str,
    pub changes: Vec<String>,
}

impl PassReport {
    pub fn new(pass: &'static str) -> Self {
        PassReport { pass, changes: Vec::new() }
    }
}

/// A pass: its name and its function.
pub type Pass = (&'static str, fn(&mut Graph) -> PassReport);

/// The default pipeline, in order (a pass may appear twice; `--disable NAME` switches off both).
pub const PIPELINE: &[Pass] = &[
    ("canonicalize", canonicalize::run),
    // Dead branches first, so that they do not hold a layer at two readers while BatchNorms fold.
    ("eliminate_dead", eliminate_dead::run),
    ("fold_constants", fold_constants::run),
    ("fold_batchnorm", fold_batchnorm::run),
    // After BatchNorm folding, which gives a transition's 1x1 convolution the prologue that moves.
    ("pool_first", pool_first::run),
    ("merge_dense_skips", merge_dense_skips::run),
    ("identity_skip_inplace", identity_skip_inplace::run),
    ("fuse_activation", fuse_activation::run),
    ("eliminate_dead", eliminate_dead::run),
];

/// Runs every pass of the pipeline not named in `disabled`; errors on an unknown name.
pub fn run_pipeline(g: &mut Graph, disabled: &[String]) -> anyhow::Result<Vec<PassReport>> {
    for d in disabled {
        if !PIPELINE.iter().any(|p| p.0 == d) {
            let names: Vec<&str> = PIPELINE.iter().map(|p| p.0).collect();
            anyhow::bail!("unknown pass '{d}' (passes: {})", names.join(", "));
        }
    }
    let mut reports = Vec::new();
    for (name, pass) in PIPELINE {
        if !disabled.iter().any(|d| d == name) {
            reports.push(pass(g));
        }
    }
    g.validate().map_err(|e| anyhow::anyhow!("after passes: {e}"))?;
    Ok(reports)
}

/// Rewires every consumer of `from` to read `to` instead (keeping ports and edge kinds) and moves graph
/// outputs along.
pub(crate) fn replace_uses(g: &mut Graph, from: resin_ir::NodeId, to: resin_ir::NodeId) {
    use petgraph::visit::EdgeRef;
    let uses: Vec<_> =
        g.g.edges_directed(from, petgraph::Direction::Outgoing).map(|e| (e.id(), e.target(), *e.weight())).collect();
    for (id, dst, w) in uses {
        g.g.remove_edge(id);
        g.g.add_edge(to, dst, w);
    }
    for o in &mut g.outputs {
        if o.node == from {
            o.node = to;
        }
    }
}
