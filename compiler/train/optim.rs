//! Optimizers and learning-rate schedules, with PyTorch's update rules (so that a step can be compared
//! with `torch.optim` to rounding).
//!
//! Plain SGD is the spec's rule: for every matrix, main path or skip, ΔW = −η ∂L/∂W, which for a layer l
//! fed by a^{l-k} is ΔW^{l-k,l} = −η a^{l-k} δ^l (the plan computes ∂L/∂W_cat = a_catᵀ δ^l in one product;
//! this applies −η to all of it at once; or, with plain SGD in [`train_step`](super::trainer::train_step), the
//! product itself accumulates −η a_catᵀ δ^l into W_cat and this step skips that matrix). This module owns
//! the update arithmetic and the optimizer state.

use super::steps::Param;
use anyhow::{bail, Result};

/// An optimizer and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// g' = g + λw;  buf = μ·buf + g' (buf = g' at the first step);  w ← w − η·buf  (μ = 0: w ← w − η g').
    Sgd { momentum: f32 },
    /// g' = g + λw;  m = β₁m + (1−β₁)g';  v = β₂v + (1−β₂)g'²;
    /// w ← w − (η/(1−β₁ᵗ)) · m / (√v/√(1−β₂ᵗ) + ε)   (torch.optim.Adam, L2 weight decay).
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

/// A learning-rate schedule, evaluated per epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// η·γ^⌊epoch/every⌋.
    Step {
        every: usize,
        gamma: f32,
    },
    /// η_min + (η − η_min)(1 + cos(π·epoch/epochs))/2, with η_min = 0.
    Cosine {
        epochs: usize,
    },
}

impl Schedule {
    /// The learning rate of epoch `epoch` (from 0) for base rate `lr`.
    pub fn lr(&self, lr: f32, epoch: usize) -> f32 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => lr * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { epochs } => {
                let t = epoch.min(epochs) as f64 / epochs.max(1) as f64;
                (lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

/// An optimizer bound to a set of parameters (its state follows their order).
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f32,
    pub weight_decay: f32,
    state: Vec<(Vec<f32>, Vec<f32>)>,
    t: i32,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, lr: f32, weight_decay: f32) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            bail!("learning rate must be a positive number, got {lr}");
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            bail!("weight decay must be zero or positive, got {weight_decay}");
        }
        Ok(Optimizer { kind, lr, weight_decay, state: vec![], t: 0 })
    }

    /// Plain SGD with learning rate η: exactly ΔW = −η ∂L/∂W.
    pub fn sgd(lr: f32) -> Self {
        Optimizer { kind: OptimizerKind::Sgd { momentum: 0.0 }, lr, weight_decay: 0.0, state: vec![], t: 0 }
    }

    /// The learning rate when this optimizer is plain SGD (no momentum, no weight decay): the rule a
    /// weight-gradient product can apply itself ([`TrainPlan::backward_sgd`](super::TrainPlan::backward_sgd)).
    pub fn fused_sgd_lr(&self) -> Option<f32> {
        (self.kind == OptimizerKind::Sgd { momentum: 0.0 } && self.weight_decay == 0.0).then_some(self.lr)
    }

    /// Applies one update to every parameter from its `grad`, except those a backward pass already
    /// updated ([`Param::updated`], whose flag this clears). Large parameters are split into chunks
    /// spread over the installed pool's threads (every element's update is independent).
    pub fn step(&mut self, params: &mut [Param]) {
        if self.state.len() != params.len() {
            self.state = params.iter().map(|p| (vec![0.0; p.data.len()], vec![0.0; p.data.len()])).collect();
            self.t = 0;
        }
        self.t += 1;
        let rule = Rule::new(self.kind, self.lr, self.weight_decay, self.t);
        let threads = resin_runtime::parallel::current_threads();
        for (p, (m, v)) in params.iter_mut().zip(&mut self.state) {
            if std::mem::take(&mut p.updated) {
                continue;
            }
            let n = p.data.len();
            if threads <= 1 || n < 1 << 14 {
                rule.apply(&mut p.data, &p.grad, m, v);
                continue;
            }
            let chunk = n.div_ceil(threads);
            let mut jobs: Vec<_> = p
                .data
                .chunks_mut(chunk)
                .zip(p.grad.chunks(chunk))
                .zip(m.chunks_mut(chunk))
                .zip(v.chunks_mut(chunk))
                .map(|(((w, g), m), v)| (w, g, m, v))
                .collect();
            resin_runtime::parallel::for_chunks_mut(&mut jobs, 1, |_, job| {
                for (w, g, m, v) in job.iter_mut() {
                    rule.apply(w, g, m, v);
                }
            });
        }
    }
}

/// One step's update rule with its constants (learning rate, decay, bias corrections) fixed.
#[derive(Clone, Copy)]
struct Rule {
    kind: OptimizerKind,
    lr: f32,
    wd: f32,
    first: bool,
    /// Adam: η/(1−β₁ᵗ) and √(1−β₂ᵗ).
    step: f32,
    bc2s: f32,
}

impl Rule {
    fn new(kind: OptimizerKind, lr: f32, wd: f32, t: i32) -> Self {
        let (step, bc2s) = match kind {
            OptimizerKind::Adam { beta1, beta2, .. } => (lr / (1.0 - beta1.powi(t)), (1.0 - beta2.powi(t)).sqrt()),
            _ => (0.0, 0.0),
        };
        Rule { kind, lr, wd, first: t == 1, step, bc2s }
    }

    /// Updates `w` from `g` and the state `m`, `v` (same lengths), with 256-bit vectors where the CPU has
    /// them (the same operations in the same order, so the same bits).
    fn apply(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked above); the body is safe code.
            unsafe { self.apply_avx(w, g, m, v) };
            return;
        }
        self.apply_body(w, g, m, v)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn apply_avx(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.apply_body(w, g, m, v)
    }

    #[inline(always)]
    fn apply_body(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (lr, wd) = (self.lr, self.wd);
        match self.kind {
            OptimizerKind::Sgd { momentum: 0.0 } => {
                for (w, g) in w.iter_mut().zip(g) {
                    *w -= lr * (g + wd * *w);
                }
            }
            OptimizerKind::Sgd { momentum } => {
                for ((w, g), b) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                    let g = g + wd * *w;
                    *b = if self.first { g } else { momentum * *b + g };
                    *w -= lr * *b;
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let (step, bc2s) = (self.step, self.bc2s);
                for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g + wd * *w;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *w -= step * *m / (v.sqrt() / bc2s + eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sgd_is_minus_eta_times_the_gradient() {
        let mut p = vec![Param::new("w".into(), vec![2], vec![1.0, -2.0])];
        p[0].grad = vec![0.5, 4.0];
        Optimizer::sgd(0.1).step(&mut p);
        assert_eq!(p[0].data, vec![1.0 - 0.1 * 0.5, -2.0 - 0.1 * 4.0]);
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Step { every: 10, gamma: 0.1 }.lr(1.0, 25), 1.0 * 0.1f32.powi(2));
        assert!((Schedule::Cosine { epochs: 10 }.lr(2.0, 5) - 1.0).abs() < 1e-6);
        assert!(Schedule::Cosine { epochs: 10 }.lr(2.0, 10).abs() < 1e-6);
    }

    #[test]
    fn bad_hyper_parameters_are_errors() {
        assert!(Optimizer::new(OptimizerKind::Sgd { momentum: 0.9 }, -1.0, 0.0).is_err());
        assert!(Optimizer::new(OptimizerKind::Sgd { momentum: 0.9 }, 0.1, f32::NAN).is_err());
    }
}
