//! The degradation experiment: plain and residual networks of increasing depth trained with the same
//! budget (epochs, batch, optimizer, learning rate, seed) on the same data; the training error after every
//! epoch, as a table and an SVG plot.
//!
//! He et al. (2016) observed that a deeper plain network reaches a *higher training error* than a shallower
//! one (so it is not overfitting: it optimizes worse), and that identity skips remove the effect. This
//! module owns running that comparison and drawing it; the networks come from the caller (the model zoo).

use super::data::Dataset;
use super::plan::{PlanOptions, TrainPlan};
use super::trainer::{evaluate, TrainConfig, Trainer};
use anyhow::Result;
use resin_ir::Graph;
use std::fmt::Write;

/// One trained network's curve.
#[derive(Clone, Debug)]
pub struct Curve {
    /// e.g. `plain-mlp 48`.
    pub label: String,
    pub arch: String,
    pub depth: usize,
    /// Training error (1 − accuracy over the whole training set, evaluation mode) after each epoch.
    pub train_error: Vec<f64>,
    /// Validation error after the last epoch.
    pub val_error: f64,
    pub seconds: f64,
}

/// Trains `arch` at each depth (built by `build(arch, depth)`) with `cfg`; `progress` hears each finished
/// epoch as (label, epoch, training error).
#[allow(clippy::too_many_arguments)]
pub fn run(
    archs: &[&str],
    depths: &[usize],
    train: &Dataset,
    val: &Dataset,
    cfg: &TrainConfig,
    threads: usize,
    build: impl Fn(&str, usize) -> Result<Graph>,
    mut progress: impl FnMut(&str, usize, f64),
) -> Result<Vec<Curve>> {
    let mut curves = Vec::new();
    for &arch in archs {
        for &depth in depths {
            let g = build(arch, depth)?;
            let mut plan = TrainPlan::new(&g, &PlanOptions { merge: true, threads })?;
            let label = format!("{arch} {depth}");
            let t0 = std::time::Instant::now();
            let mut errors = Vec::new();
            let mut tr = Trainer::new(cfg)?;
            for epoch in 0..cfg.epochs {
                tr.epoch(&mut plan, train, |_, _, _, _| {})?;
                let (_, acc) = evaluate(&mut plan, train, 512, cfg.loss)?;
                errors.push(1.0 - acc);
                progress(&label, epoch, 1.0 - acc);
            }
            let (_, vacc) = evaluate(&mut plan, val, 512, cfg.loss)?;
            curves.push(Curve {
                label,
                arch: arch.to_string(),
                depth,
                train_error: errors,
                val_error: 1.0 - vacc,
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
    }
    Ok(curves)
}

/// Scales the weights of every residual branch of `g` by `factor`: for each Add with an identity skip, the
/// Gemm on its main path. Residual MLPs in the zoo add a^{l-2} at every layer unscaled, so with He-initialized
/// branches the signal grows geometrically with depth (a_l ≈ W a_{l-1} + a_{l-2}); starting the branches
/// small (SkipInit / Fixup, as ResNets zero the last BatchNorm of each block) keeps a 48-layer one trainable.
/// Returns how many branches were scaled.
pub fn scale_residual_branches(g: &mut Graph, factor: f32) -> usize {
    use resin_ir::{Op, TensorData};
    // An Add of a Gemm (the branch) and an activation that is not a product (the identity skip).
    let is_product = |g: &Graph, n| matches!(g.node(n).op, Op::Gemm(_) | Op::MatMul);
    let adds: Vec<_> =
        g.g.node_indices()
            .filter(|&n| {
                matches!(g.node(n).op, Op::Add) && g.inputs_of(n).iter().filter(|&&i| is_product(g, i)).count() == 1
            })
            .collect();
    let mut scaled = 0;
    for a in adds {
        for src in g.inputs_of(a) {
            if let Op::Gemm(gm) = &mut g.node_mut(src).op {
                if let TensorData::F32(w) = &mut gm.b.data {
                    w.iter_mut().for_each(|v| *v *= factor);
                    scaled += 1;
                }
            }
        }
    }
    scaled
}

/// The results as a Markdown table: training error at a few epochs, final validation error, time.
pub fn table(curves: &[Curve]) -> String {
    let epochs = curves.iter().map(|c| c.train_error.len()).max().unwrap_or(0);
    let marks: Vec<usize> = [1, epochs / 4, epochs / 2, epochs].into_iter().filter(|&e| e >= 1).collect::<Vec<_>>();
    let mut marks = marks;
    marks.dedup();
    let mut s = String::from("| network | depth |");
    for e in &marks {
        let _ = write!(s, " train error, epoch {e} |");
    }
    s.push_str(" validation error | time |\n|---|---|");
    for _ in &marks {
        s.push_str("---|");
    }
    s.push_str("---|---|\n");
    for c in curves {
        let _ = write!(s, "| {} | {} |", c.arch, c.depth);
        for &e in &marks {
            let _ = write!(s, " {:.1}% |", 100.0 * c.train_error.get(e - 1).copied().unwrap_or(f64::NAN));
        }
        let _ = writeln!(s, " {:.1}% | {:.1} s |", 100.0 * c.val_error, c.seconds);
    }
    s
}

/// An SVG line plot of training error against epoch: one line per network, residual solid, plain dashed,
/// one color per depth.
pub fn svg(curves: &[Curve], title: &str) -> String {
    let (w, h) = (720.0, 440.0);
    let (l, r, t, b) = (64.0, 190.0, 40.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let epochs = curves.iter().map(|c| c.train_error.len()).max().unwrap_or(1).max(2);
    let ymax = curves.iter().flat_map(|c| c.train_error.iter().copied()).fold(0.0f64, f64::max).max(0.05);
    let ymax = (ymax * 10.0).ceil() / 10.0;
    let x = |e: usize| l + pw * (e as f64) / ((epochs - 1) as f64);
    let y = |v: f64| t + ph * (1.0 - v / ymax);
    let colors = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b"];
    let mut depths: Vec<usize> = curves.iter().map(|c| c.depth).collect();
    depths.sort();
    depths.dedup();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#, l + pw / 2.0, esc(title));
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let yy = y(v);
        let _ = writeln!(s, r##"<line x1="{l}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/>"##, l + pw);
        let _ =
            writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}%</text>"#, l - 6.0, yy + 4.0, v * 100.0);
    }
    let step = (epochs / 10).max(1);
    for e in (0..epochs).step_by(step) {
        let xx = x(e);
        let _ = writeln!(s, r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, t + ph + 18.0, e + 1);
    }
    let _ = writeln!(s, r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
    let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">epoch</text>"#, l + pw / 2.0, h - 12.0);
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">training error</text>"#,
        t + ph / 2.0,
        t + ph / 2.0
    );
    for (i, c) in curves.iter().enumerate() {
        let color = colors[depths.iter().position(|&d| d == c.depth).unwrap_or(0) % colors.len()];
        let dash = if c.arch.starts_with("plain") { r#" stroke-dasharray="6 4""# } else { "" };
        let pts: Vec<String> =
            c.train_error.iter().enumerate().map(|(e, &v)| format!("{:.1},{:.1}", x(e), y(v))).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            pts.join(" ")
        );
        let ly = t + 14.0 + 20.0 * i as f64;
        let lx = l + pw + 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>"#,
            lx + 28.0
        );
        let last = c.train_error.last().copied().unwrap_or(f64::NAN);
        let _ =
            writeln!(s, r#"<text x="{}" y="{}">{} ({:.1}%)</text>"#, lx + 34.0, ly + 4.0, esc(&c.label), 100.0 * last);
    }
    s.push_str("</svg>\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
