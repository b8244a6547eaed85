//! The compile driver: passes, then lowering with memory planning, and the report of what each stage did.
//! Owns no transformation itself; it sequences the passes and the lowering and describes their results.

use crate::lower::{self, memory::MemoryReport};
use crate::passes::{self, PassReport};
use anyhow::Result;
use resin_ir::Graph;
use resin_runtime::kernels::winograd::Variant;
use resin_runtime::plan::{Plan, StepOp};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A compiled model and how it came to be.
pub struct Compiled {
    /// The graph after passes.
    pub graph: Graph,
    pub plan: Plan,
    pub passes: Vec<PassReport>,
    pub memory: MemoryReport,
}

/// Runs the pass pipeline (minus `disabled`) on `graph`, lowers it and checks the plan (as loading will).
/// Besides pass names, `disabled` may name `winograd`: lowering then keeps 3x3 convolutions on the GEMM
/// path.
pub fn compile(mut graph: Graph, disabled: &[String]) -> Result<Compiled> {
    let winograd = !disabled.iter().any(|d| d == "winograd");
    let disabled: Vec<String> = disabled.iter().filter(|d| *d != "winograd").cloned().collect();
    let passes = passes::run_pipeline(&mut graph, &disabled)?;
    let (plan, memory) = lower::lower_with_options(&graph, &lower::LowerOptions { winograd })?;
    plan.check()?;
    Ok(Compiled { graph, plan, passes, memory })
}

/// A step's kind with its epilogues, e.g. `conv+add+relu`.
pub fn step_label(op: &StepOp) -> String {
    let (base, residual, act) = match op {
        StepOp::Conv(c) if c.winograd == Some(Variant::F2) => ("conv3x3(winograd2)", c.residual, c.act),
        StepOp::Conv(c) if c.winograd == Some(Variant::F4) => ("conv3x3(winograd4)", c.residual, c.act),
        StepOp::Conv(c) => ("conv", c.residual, c.act),
        StepOp::Gemm(g) => ("gemm", g.residual, g.act),
        other => return other.name().to_string(),
    };
    let mut s = base.to_string();
    if residual {
        s.push_str("+add");
    }
    if let Some(a) = act {
        s.push('+');
        s.push_str(match a {
            resin_runtime::kernels::elementwise::UnaryOp::Relu => "relu",
            resin_runtime::kernels::elementwise::UnaryOp::Sigmoid => "sigmoid",
            resin_runtime::kernels::elementwise::UnaryOp::Clip { .. } => "clip",
        });
    }
    s
}

/// Steps counted by label, most frequent first.
pub fn step_histogram(plan: &Plan) -> Vec<(String, usize)> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for s in &plan.steps {
        *m.entry(step_label(&s.op)).or_default() += 1;
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Bytes in the unit that reads best: `5.4 MiB`, `42.0 KiB`, `512 B`.
fn mib(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

impl Compiled {
    /// The human report `resin compile --report` prints.
    pub fn report(&self, verbose: bool) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "passes:");
        for p in &self.passes {
            let _ = writeln!(r, "  {:<22} {} change(s)", p.pass, p.changes.len());
            if verbose {
                for c in &p.changes {
                    let _ = writeln!(r, "      {c}");
                }
            }
        }
        let hist: Vec<String> = step_histogram(&self.plan).iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(r, "plan: {} steps: {}", self.plan.steps.len(), hist.join(", "));
        let m = &self.memory;
        let _ = writeln!(
            r,
            "activation memory (batch 1): peak {} in {} slots (+ {} kernel scratch per thread); naive plan (one buffer per tensor) {}; {} steps in place",
            mib(m.peak_bytes),
            m.slots,
            mib(m.scratch_bytes),
            mib(m.naive_bytes),
            m.in_place
        );
        let _ = writeln!(r, "weights: {}", mib(self.plan.weights.len() * 4));
        r
    }
}
