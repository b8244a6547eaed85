//! `Model` (a checked plan, shared by threads) and `Session` (one per thread: its thread pool and its
//! buffers, planned once per batch size and reused by every run).

use crate::error::{Error, Result};
use crate::exec::{exec, Operand};
use crate::format::Metadata;
use crate::plan::{fmt_dims, resolve, BufferKind, Dim, Plan, StepOp};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A compiled model ready to run. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Model {
    plan: Arc<Plan>,
    metadata: Arc<Metadata>,
}

impl Model {
    /// Checks every index, range and shape of `plan` and wraps it.
    pub fn new(plan: Plan) -> Result<Model> {
        Model::with_metadata(plan, Metadata::default())
    }

    /// [`Model::new`], keeping the metadata of the `.resin` file the plan came from.
    pub fn with_metadata(plan: Plan, metadata: Metadata) -> Result<Model> {
        crate::check::check_plan(&plan)?;
        Ok(Model { plan: Arc::new(plan), metadata: Arc::new(metadata) })
    }

    /// What the `.resin` file says about the model (empty for a model made from a plan in memory).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
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

/// Memory for one batch size: one vector per slot, one per model input.
struct Arena {
    batch: usize,
    shapes: Vec<Vec<usize>>,
    slots: Vec<Vec<f32>>,
    inputs: Vec<Vec<f32>>,
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
fn arena_for<'a>(plan: &Plan, arena: &'a mut Option<Arena>, batch: usize) -> &'a mut Arena {
    if arena.as_ref().is_none_or(|a| a.batch != batch) {
        let shapes: Vec<Vec<usize>> = plan.buffers.iter().map(|b| resolve(&b.shape, batch)).collect();
        let mut slots = vec![0usize; plan.slots];
        let mut inputs = vec![0usize; plan.inputs.len()];
        for (b, s) in plan.buffers.iter().zip(&shapes) {
            let len = s.iter().product::<usize>();
            match b.kind {
                BufferKind::Activation { slot } => slots[slot] = slots[slot].max(len),
                BufferKind::Input(k) => inputs[k] = len,
                BufferKind::Const(_) => {}
            }
        }
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
        *arena = Some(Arena {
            batch,
            shapes,
            slots: slots.into_iter().map(|n| vec![0.0; n]).collect(),
            inputs: inputs.into_iter().map(|n| vec![0.0; n]).collect(),
            scratch: vec![0.0; scratch_len],
        });
    }
    arena.as_mut().unwrap()
}

/// The elements of buffer `b`: a slot's prefix, an input, or weights.
fn buffer_data<'a>(
    plan: &'a Plan,
    shapes: &[Vec<usize>],
    slots: &'a [Vec<f32>],
    inputs: &'a [Vec<f32>],
    b: usize,
) -> &'a [f32] {
    let len = shapes[b].iter().product::<usize>();
    match plan.buffers[b].kind {
        BufferKind::Const(r) => &plan.weights[r.offset..r.offset + r.len],
        BufferKind::Input(k) => &inputs[k],
        BufferKind::Activation { slot } => &slots[slot][..len],
    }
}

impl Session {
    /// Runs the model on `inputs` (in the model's input order) and returns its outputs in order.
    pub fn run(&mut self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let batch = self.batch_of(inputs)?;
        let Session { plan, pool, threads, arena } = self;
        let threads = *threads;
        let Arena { shapes, slots, inputs: input_bufs, scratch, .. } = arena_for(plan, arena, batch);
        for (k, t) in inputs.iter().enumerate() {
            input_bufs[k].copy_from_slice(&t.data);
        }
        pool.install(|| {
            for step in &plan.steps {
                let out_slot = plan.buffers[step.output].slot().expect("checked: steps write activations");
                let out_len = shapes[step.output].iter().product::<usize>();
                let mut out = std::mem::take(&mut slots[out_slot]);
                // An operand in the output's slot is the in-place one: the kernel finds it in `out`.
                let ins: Vec<Option<Operand>> = step
                    .inputs
                    .iter()
                    .map(|&b| {
                        (plan.buffers[b].slot() != Some(out_slot))
                            .then(|| (buffer_data(plan, shapes, slots, input_bufs, b), shapes[b].as_slice()))
                    })
                    .collect();
                exec(&step.op, &ins, &mut out[..out_len], &shapes[step.output], &plan.weights, scratch, threads);
                slots[out_slot] = out;
            }
        });
        Ok(plan
            .outputs
            .iter()
            .map(|io| Tensor {
                shape: shapes[io.buffer].clone(),
                data: buffer_data(plan, shapes, slots, input_bufs, io.buffer).to_vec(),
            })
            .collect())
    }
}
