//! `Model` (a checked plan, shared by threads) and `Session` (one per thread: its thread pool and its
//! buffers, planned once per batch size and reused by every run).

use crate::error::{Error, Result};
use crate::exec::{exec, Operand};
use crate::plan::{fmt_dims, resolve, BufferKind, Dim, Plan, StepOp};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A compiled model ready to run. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Model {
    plan: Arc<Plan>,
}

impl Model {
    /// Checks every index, range and shape of `plan` and wraps it.
    pub fn new(plan: Plan) -> Result<Model> {
        crate::check::check_plan(&plan)?;
        Ok(Model { plan: Arc::new(plan) })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Input names and shapes (`Dim::Batch` where the batch is free).
    pub fn inputs(&self) -> Vec<(&str, &[Dim])> {
        self.plan.inputs.iter().map(|io| (io.name.as_str(), self.plan.buffers[io.buffer].shape.as_slice())).collect()
    }

    pub fn outputs(&self) -> Vec<(&str, &[Dim])> {
        self.plan.outputs.iter().map(|io| (io.name.as_str(), self.plan.buffers[io.buffer].shape.as_slice())).collect()
    }

    /// A session using all available cores.
    pub fn session(&self) -> Result<Session> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.session_with_threads(threads)
    }

    /// A session whose kernels use `threads` threads (at least 1).
    pub fn session_with_threads(&self, threads: usize) -> Result<Session> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("resin-{i}"))
            .build()
            .map_err(|e| Error::InvalidPlan(format!("cannot start {threads} threads: {e}")))?;
        Ok(Session { plan: self.plan.clone(), pool, threads, arena: None })
    }
}

/// Buffers for one batch size.
struct Arena {
    batch: usize,
    shapes: Vec<Vec<usize>>,
    bufs: Vec<Vec<f32>>,
    scratch: Vec<f32>,
}

/// Runs a model. Reusable: buffers are kept between runs of the same batch size.
pub struct Session {
    plan: Arc<Plan>,
    pool: rayon::ThreadPool,
    threads: usize,
    arena: Option<Arena>,
}

impl Session {
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The batch size these inputs imply, after checking their shapes against the plan.
    fn batch_of(&self, inputs: &[&Tensor]) -> Result<usize> {
        let plan = &self.plan;
        if inputs.len() != plan.inputs.len() {
            return Err(Error::InputCount { expected: plan.inputs.len(), got: inputs.len() });
        }
        let mut batch = None;
        for (io, t) in plan.inputs.iter().zip(inputs) {
            let want = &plan.buffers[io.buffer].shape;
            let bad = || Error::InputShape { name: io.name.clone(), expected: fmt_dims(want), got: t.shape.clone() };
            if want.len() != t.shape.len() {
                return Err(bad());
            }
            for (d, &g) in want.iter().zip(&t.shape) {
                match d {
                    Dim::Fixed(n) if *n != g => return Err(bad()),
                    Dim::Batch if g == 0 || batch.is_some_and(|b| b != g) => return Err(bad()),
                    Dim::Batch => batch = Some(g),
                    _ => {}
                }
            }
            let need: usize = t.shape.iter().product();
            if t.data.len() != need {
                return Err(Error::InputData {
                    name: io.name.clone(),
                    shape: t.shape.clone(),
                    expected: need,
                    got: t.data.len(),
                });
            }
        }
        Ok(batch.unwrap_or(1))
    }
}

/// The arena for `batch`, re-planned only when the batch size changes.
fn arena_for<'a>(plan: &Plan, slot: &'a mut Option<Arena>, batch: usize) -> &'a mut Arena {
    if slot.as_ref().is_none_or(|a| a.batch != batch) {
        let shapes: Vec<Vec<usize>> = plan.buffers.iter().map(|b| resolve(&b.shape, batch)).collect();
        let bufs = plan
            .buffers
            .iter()
            .zip(&shapes)
            .map(|(b, s)| match b.kind {
                BufferKind::Const(_) => Vec::new(),
                _ => vec![0.0; s.iter().product()],
            })
            .collect();
        let scratch_len = plan
            .steps
            .iter()
            .map(|s| match &s.op {
                StepOp::Conv(c) => {
                    let o = &shapes[s.output];
                    c.geom.scratch_len(o[2], o[3])
                }
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        *slot = Some(Arena { batch, shapes, bufs, scratch: vec![0.0; scratch_len] });
    }
    slot.as_mut().unwrap()
}

impl Session {
    /// Runs the model on `inputs` (in the model's input order) and returns its outputs in order.
    pub fn run(&mut self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let batch = self.batch_of(inputs)?;
        let Session { plan, pool, threads, arena } = self;
        let threads = *threads;
        let arena = arena_for(plan, arena, batch);
        for (io, t) in plan.inputs.iter().zip(inputs) {
            arena.bufs[io.buffer].copy_from_slice(&t.data);
        }
        pool.install(|| {
            for step in &plan.steps {
                let mut out = std::mem::take(&mut arena.bufs[step.output]);
                let ins: Vec<Operand> = step
                    .inputs
                    .iter()
                    .map(|&b| {
                        let data: &[f32] = match plan.buffers[b].kind {
                            BufferKind::Const(r) => &plan.weights[r.offset..r.offset + r.len],
                            _ => &arena.bufs[b],
                        };
                        (data, arena.shapes[b].as_slice())
                    })
                    .collect();
                exec(&step.op, &ins, &mut out, &arena.shapes[step.output], &plan.weights, &mut arena.scratch, threads);
                arena.bufs[step.output] = out;
            }
        });
        Ok(plan
            .outputs
            .iter()
            .map(|io| Tensor { shape: arena.shapes[io.buffer].clone(), data: arena.bufs[io.buffer].clone() })
            .collect())
    }
}
