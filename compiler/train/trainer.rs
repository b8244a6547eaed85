//! The epoch loop: seeded shuffling, mini-batches, forward, loss, backward, optimizer step, the
//! learning-rate schedule and evaluation.
//!
//! This module owns the loop and its statistics; what a step computes is the plan's business.

use super::data::{Dataset, Rng};
use super::loss::{argmax_rows, loss_and_grad, Loss, Targets};
use super::optim::{Optimizer, OptimizerKind, Schedule};
use super::plan::TrainPlan;
use anyhow::{bail, Result};
use std::time::Instant;

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub optimizer: OptimizerKind,
    pub weight_decay: f32,
    pub schedule: Schedule,
    pub loss: Loss,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch: 32,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            loss: Loss::SoftmaxCrossEntropy,
            seed: 0,
        }
    }
}

/// What one epoch did.
#[derive(Clone, Debug)]
pub struct EpochStats {
    pub epoch: usize,
    pub lr: f32,
    /// Mean training loss and accuracy over the epoch's batches (as they were computed, in training mode).
    pub train_loss: f64,
    pub train_acc: f64,
    /// Validation loss and accuracy (evaluation mode), when a validation set is given.
    pub val: Option<(f64, f64)>,
    pub seconds: f64,
}

/// Loss and accuracy of the plan on `data` in evaluation mode, in batches of `batch`.
pub fn evaluate(plan: &mut TrainPlan, data: &Dataset, batch: usize, loss: Loss) -> Result<(f64, f64)> {
    check_data(plan, data)?;
    let f = data.features();
    let cols = plan.output_cols();
    let (mut total, mut correct) = (0.0, 0usize);
    for start in (0..data.len()).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(data.len());
        let z = plan.forward(&data.x[start * f..end * f], false)?;
        let mut dz = vec![0.0; z.len()];
        total += loss_and_grad(loss, &z, cols, Targets::Labels(&data.y[start..end]), &mut dz)? * (end - start) as f64;
        correct += argmax_rows(&z, cols).iter().zip(&data.y[start..end]).filter(|(a, b)| a == b).count();
    }
    Ok((total / data.len() as f64, correct as f64 / data.len() as f64))
}

fn check_data(plan: &TrainPlan, data: &Dataset) -> Result<()> {
    let want: usize = plan.input_shape().iter().product();
    if data.features() != want {
        bail!("the model takes samples of {:?} ({want} values), the data has {:?}", plan.input_shape(), data.shape);
    }
    if data.classes > plan.output_cols() {
        bail!("the data has {} classes, the model has {} outputs", data.classes, plan.output_cols());
    }
    if data.is_empty() {
        bail!("no training samples");
    }
    Ok(())
}

/// One optimization step on a batch: forward (training mode), loss, backward, update. Returns the loss
/// and the number of correct predictions.
pub fn train_step(
    plan: &mut TrainPlan,
    opt: &mut Optimizer,
    x: &[f32],
    targets: Targets,
    loss: Loss,
) -> Result<(f64, usize)> {
    let z = plan.forward(x, true)?;
    let cols = plan.output_cols();
    let mut dz = vec![0.0; z.len()];
    let l = loss_and_grad(loss, &z, cols, targets, &mut dz)?;
    if !l.is_finite() {
        bail!("the loss is {l}: training diverged (lower the learning rate)");
    }
    // Plain SGD is applied inside the weight-gradient products where the plan can (one pass over W
    // fewer); the optimizer updates the rest.
    match opt.fused_sgd_lr() {
        Some(lr) => plan.backward_sgd(&dz, lr)?,
        None => plan.backward(&dz)?,
    }
    super::plan::with_pool(plan.threads, || opt.step(&mut plan.params));
    let correct = match targets {
        Targets::Labels(y) => argmax_rows(&z, cols).iter().zip(y).filter(|(a, b)| a == b).count(),
        Targets::Values(_) => 0,
    };
    Ok((l, correct))
}

/// The state of a training run across epochs: optimizer (with its momentum or Adam moments), shuffling.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub opt: Optimizer,
    rng: Rng,
    order: Vec<usize>,
    epoch: usize,
    xb: Vec<f32>,
    yb: Vec<usize>,
}

impl Trainer {
    pub fn new(cfg: &TrainConfig) -> Result<Trainer> {
        if cfg.batch == 0 || cfg.epochs == 0 {
            bail!("batch size and epochs must be at least 1");
        }
        Ok(Trainer {
            cfg: cfg.clone(),
            opt: Optimizer::new(cfg.optimizer, cfg.lr, cfg.weight_decay)?,
            rng: Rng::new(cfg.seed),
            order: vec![],
            epoch: 0,
            xb: vec![],
            yb: vec![],
        })
    }

    /// Runs the next epoch over `train` (shuffled by the seed, learning rate from the schedule); calls
    /// `on_batch(batch_index, batches, loss, accuracy)` after each step. Returns (mean loss, accuracy).
    pub fn epoch(
        &mut self,
        plan: &mut TrainPlan,
        train: &Dataset,
        mut on_batch: impl FnMut(usize, usize, f64, f64),
    ) -> Result<(f64, f64)> {
        check_data(plan, train)?;
        if self.order.len() != train.len() {
            self.order = (0..train.len()).collect();
        }
        self.opt.lr = self.cfg.schedule.lr(self.cfg.lr, self.epoch);
        self.rng.shuffle(&mut self.order);
        let f = train.features();
        let batches = train.len().div_ceil(self.cfg.batch);
        let (mut total, mut correct) = (0.0, 0usize);
        for (bi, chunk) in self.order.chunks(self.cfg.batch).enumerate() {
            self.xb.clear();
            self.yb.clear();
            for &i in chunk {
                self.xb.extend_from_slice(&train.x[i * f..(i + 1) * f]);
                self.yb.push(train.y[i]);
            }
            let (l, c) = train_step(plan, &mut self.opt, &self.xb, Targets::Labels(&self.yb), self.cfg.loss)?;
            total += l * chunk.len() as f64;
            correct += c;
            on_batch(bi, batches, l, c as f64 / chunk.len() as f64);
        }
        self.epoch += 1;
        Ok((total / train.len() as f64, correct as f64 / train.len() as f64))
    }
}

/// Trains for `cfg.epochs` epochs; calls `on_batch(epoch, batch_index, batches, loss, accuracy)` after each
/// step and `on_epoch` after each epoch. The same seed gives the same result.
pub fn fit(
    plan: &mut TrainPlan,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    mut on_batch: impl FnMut(usize, usize, usize, f64, f64),
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<Vec<EpochStats>> {
    let mut tr = Trainer::new(cfg)?;
    let mut stats = Vec::new();
    for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        let (train_loss, train_acc) = tr.epoch(plan, train, |b, n, l, a| on_batch(epoch, b, n, l, a))?;
        let val = match val {
            Some(v) => Some(evaluate(plan, v, 256, cfg.loss)?),
            None => None,
        };
        let s = EpochStats { epoch, lr: tr.opt.lr, train_loss, train_acc, val, seconds: t0.elapsed().as_secs_f64() };
        on_epoch(&s);
        stats.push(s);
    }
    Ok(stats)
}
