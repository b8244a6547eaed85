//! `Model` (a checked plan, shared by threads) and `Session` (one per thread: its thread pool and its
//! buffers, planned once per batch size and reused by every run).

use crate::error::{Error, Result};
use crate::exec::{exec, Operands, Out, View};
use crate::format::Metadata;
use crate::plan::{fmt_dims, resolve, BufferKind, Dim, Plan, StepOp};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A compiled model ready to run. Cheap to clone; `Send + Sync`.
///
/// Load one with [`Model::load`] (a `.resin` file, memory-mapped) or [`Model::from_bytes`], share it
/// between threads (clone it or put it in an `Arc`), and run it through a [`Session`] per thread.
///
/// ```no_run
/// let model = resin_runtime::Model::load(std::path::Path::new("model.resin"))?;
/// for ((name, shape), i) in model.inputs().into_iter().zip(0..) {
///     println!("input {i}: {name} {}", resin_runtime::plan::fmt_dims(shape));
/// }
/// let mut session = model.session()?;
/// # Ok::<(), resin_runtime::Error>(())
/// ```
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
        let pool = crate::parallel::ThreadPool::new(threads)
            .map_err(|e| Error::InvalidPlan(format!("cannot start {threads} threads: {e}")))?;
        let (separable, largest) = (batch_separable(&self.plan), largest_sample(&self.plan));
        Ok(Session { plan: self.plan.clone(), pool, arena: None, profile: None, separable, largest })
    }
}

/// Memory for one batch size: one vector per slot, one per model input.
struct Arena {
    batch: usize,
    shapes: Vec<Vec<usize>>,
    slots: Vec<Vec<f32>>,
    inputs: Vec<Vec<f32>>,
    scratch: Vec<f32>,
    /// Reused copies: operands that are windows of the output's own slot, and the copying path's buffers.
    owned: Vec<Vec<f32>>,
    temps: crate::exec::Temps,
}

/// Runs a model. Reusable: buffers are kept between runs of the same batch size.
///
/// Made by [`Model::session`] or [`Model::session_with_threads`]; it keeps the plan alive by itself (it
/// does not borrow the model). `Send`, not shared: one session per thread that runs the model.
pub struct Session {
    plan: Arc<Plan>,
    pool: crate::parallel::ThreadPool,
    arena: Option<Arena>,
    /// Time spent in each step, summed over runs, when profiling is on.
    profile: Option<Vec<std::time::Duration>>,
    /// Whether the plan treats every sample of a batch on its own ([`batch_separable`]).
    separable: bool,
    /// Bytes of the largest activation of one sample ([`largest_sample`]).
    largest: usize,
}

/// Whether every step of `plan` works on each sample of the batch alone: every buffer's batch
/// dimension, if it has one, leads; every step's output and every model input and output has one;
/// and no step works along axis 0 (a softmax, concatenation or padding over the batch). A step whose
/// output leads with the batch but that mixes samples would have to contract or move the batch
/// axis, which leaves it out of the output's leading position.
fn batch_separable(plan: &Plan) -> bool {
    let leads = |b: usize| plan.buffers[b].shape.first() == Some(&Dim::Batch);
    plan.buffers.iter().all(|b| !b.shape.iter().skip(1).any(|d| *d == Dim::Batch))
        && plan.inputs.iter().chain(&plan.outputs).all(|io| leads(io.buffer))
        && plan.steps.iter().all(|s| {
            leads(s.output)
                && match &s.op {
                    StepOp::Softmax { axis } | StepOp::Concat { axis } => *axis != 0,
                    StepOp::Pad { pads, .. } => pads.first() == Some(&0) && pads.get(pads.len() / 2) == Some(&0),
                    _ => true,
                }
        })
}

/// Samples of a batch run together ([`Session::run_into`]): the whole batch, or, for a plan whose samples
/// are independent and whose batch's activations outgrow the caches ([`CHUNK_MIN_BYTES`] for its largest
/// activation), one sample per thread at a time (each step splits a chunk's samples between the threads,
/// as it splits a batch's). Chunks keep a sample's activations in cache from step to step, where a
/// batch's (ResNet-50 at batch 8: 26 MB for one 56-px tensor) go to memory and back at every step.
/// `resin bench --batch 8`, 2 alternating runs each, median of 5 runs: ResNet-50 on 1 thread 0.96 of
/// the whole batch's time, on 2 threads (chunks of 2) 0.94-0.97; DenseNet-121 0.92-0.94 and 0.95-0.97;
/// ResNet-18 level (0.98-1.02). ResNet-20's activations stay in cache (512 KiB for its largest at batch 8):
/// on 2 threads chunks of 2 ran 1.04-1.08x slower than the batch (4x as many steps, each waiting on both
/// threads), so it keeps the whole batch. The outputs are the same bits either way (each sample's are
/// those of a batch of 1, which `tests/batch_chunks.rs` checks). `RESIN_BATCH=whole` in the environment
/// runs whole batches and `RESIN_BATCH=chunks` runs chunks whatever the activations' size (read once),
/// for benchmarks and tests.
fn chunk_of(batch: usize, threads: usize, separable: bool, largest: usize) -> usize {
    static FORCE: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    let force = *FORCE.get_or_init(|| match std::env::var("RESIN_BATCH").as_deref() {
        Ok("whole") => Some(false),
        Ok("chunks") => Some(true),
        _ => None,
    });
    let big = largest.saturating_mul(batch) >= CHUNK_MIN_BYTES;
    if !separable || !force.unwrap_or(big) {
        return batch;
    }
    let c = threads.clamp(1, batch);
    if batch.is_multiple_of(c) {
        c
    } else {
        1
    }
}

/// The size of a batch's largest activation (bytes) from which [`chunk_of`] runs it in chunks: a
/// quarter of this machine's 32 MiB L3 (ResNet-50's at batch 3; ResNet-20's only from batch 128).
const CHUNK_MIN_BYTES: usize = 8 << 20;

/// Bytes of the largest activation of one sample.
fn largest_sample(plan: &Plan) -> usize {
    let bytes = |b: &crate::plan::Buffer| resolve(&b.shape, 1).iter().product::<usize>() * std::mem::size_of::<f32>();
    plan.buffers.iter().filter(|b| matches!(b.kind, BufferKind::Activation { .. })).map(bytes).max().unwrap_or(0)
}

impl Session {
    /// Starts summing the time spent in each step over the following runs (see [`Session::profile`]).
    pub fn enable_profiling(&mut self) {
        self.profile = Some(vec![std::time::Duration::ZERO; self.plan.steps.len()]);
    }

    /// Time spent in each step (in plan order) since profiling was enabled.
    pub fn profile(&self) -> Option<&[std::time::Duration]> {
        self.profile.as_deref()
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// How many samples of a batch of `batch` each pass over the model's steps takes: `batch`, or, for a
    /// model whose samples are independent and whose batch's activations outgrow the caches, one per
    /// thread (the outputs are the same bits either way).
    pub fn samples_per_chunk(&self, batch: usize) -> usize {
        chunk_of(batch.max(1), self.pool.threads(), self.separable, self.largest)
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
fn arena_for<'a>(plan: &Plan, arena: &'a mut Option<Arena>, batch: usize, threads: usize) -> &'a mut Arena {
    if arena.as_ref().is_none_or(|a| a.batch != batch) {
        let shapes: Vec<Vec<usize>> = plan.buffers.iter().map(|b| resolve(&b.shape, batch)).collect();
        let mut slots = vec![0usize; plan.slots];
        let mut inputs = vec![0usize; plan.inputs.len()];
        for (b, s) in plan.buffers.iter().zip(&shapes) {
            let len = s.iter().product::<usize>();
            match b.kind {
                BufferKind::Activation { slot } => slots[slot] = slots[slot].max(len),
                BufferKind::Input(k) => inputs[k] = len,
                BufferKind::Const(_) | BufferKind::View { .. } => {}
            }
        }
        let scratch_len =
            plan.steps.iter().map(|s| crate::exec::step_scratch(&s.op, &shapes[s.output], threads)).max().unwrap_or(0);
        *arena = Some(Arena {
            batch,
            shapes,
            slots: slots.into_iter().map(|n| vec![0.0; n]).collect(),
            inputs: inputs.into_iter().map(|n| vec![0.0; n]).collect(),
            scratch: vec![0.0; scratch_len],
            owned: Vec::new(),
            temps: Default::default(),
        });
    }
    arena.as_mut().unwrap()
}

fn sample_len(shape: &[usize]) -> usize {
    shape.iter().skip(1).product()
}

/// Buffer `b` as an operand: a slot's prefix, a window of an arena in a slot, an input, or weights.
fn view_of<'a>(
    plan: &'a Plan,
    shapes: &'a [Vec<usize>],
    slots: &'a [Vec<f32>],
    inputs: &'a [Vec<f32>],
    b: usize,
) -> View<'a> {
    let shape = shapes[b].as_slice();
    let len = shape.iter().product::<usize>();
    let (data, stride): (&[f32], usize) = match plan.buffers[b].kind {
        BufferKind::Const(r) => (&plan.weights[r.offset..r.offset + r.len], sample_len(shape)),
        BufferKind::Input(k) => (&inputs[k], sample_len(shape)),
        BufferKind::Activation { slot } => (&slots[slot][..len], sample_len(shape)),
        BufferKind::View { base, offset } => {
            let slot = plan.buffers[base].slot().expect("checked: a view's base is an activation");
            (&slots[slot][offset..], sample_len(&shapes[base]))
        }
    };
    View { data, shape, stride }
}

/// The slot that holds buffer `b` (its own, or its base's), if any.
fn slot_of(plan: &Plan, b: usize) -> Option<usize> {
    match plan.buffers[b].kind {
        BufferKind::View { base, .. } => plan.buffers[base].slot(),
        _ => plan.buffers[b].slot(),
    }
}

/// Copies a (possibly strided) operand into `dst`, contiguous, reusing its capacity.
fn gather_into(v: &View, dst: &mut Vec<f32>) {
    dst.clear();
    let s = sample_len(v.shape);
    let n = v.shape.first().copied().unwrap_or(1);
    if n <= 1 || v.shape.len() < 2 {
        dst.extend_from_slice(&v.data[..v.shape.iter().product::<usize>()]);
        return;
    }
    for i in 0..n {
        dst.extend_from_slice(&v.data[i * v.stride..i * v.stride + s]);
    }
}

impl Session {
    /// Runs the model on `inputs` (in the model's input order) and returns its outputs in order.
    ///
    /// Every input's shape must match the model's ([`Model::inputs`]), with the same batch size `N` in
    /// every free batch dimension; otherwise an [`Error::InputCount`], [`Error::InputShape`] or
    /// [`Error::InputData`] says what was expected. Buffers are planned on the first run at each batch
    /// size and reused while the batch size stays the same. Deterministic: the same inputs on sessions
    /// with the same thread count give bit-identical outputs.
    ///
    /// ```no_run
    /// # let model = resin_runtime::Model::load(std::path::Path::new("model.resin"))?;
    /// let mut session = model.session_with_threads(1)?;
    /// let x = resin_runtime::Tensor::new(vec![1, 3, 32, 32], vec![0.0; 3072]).unwrap();
    /// let y = session.run(&[&x])?;
    /// println!("top class: {}", y[0].argmax_rows()[0]);
    /// # Ok::<(), resin_runtime::Error>(())
    /// ```
    pub fn run(&mut self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let mut outputs = vec![Tensor { shape: Vec::new(), data: Vec::new() }; self.plan.outputs.len()];
        self.run_into(inputs, &mut outputs)?;
        Ok(outputs)
    }

    /// [`Session::run`] writing into `outputs` (one tensor per model output, in order), whose vectors are
    /// reused: once a session has run at a batch size, running it again at that size allocates nothing
    /// (the test `tests/alloc_free.rs` counts). Returns [`Error::OutputCount`] if `outputs` has the wrong
    /// length.
    ///
    /// ```no_run
    /// # let model = resin_runtime::Model::load(std::path::Path::new("model.resin"))?;
    /// let mut session = model.session_with_threads(2)?;
    /// let x = resin_runtime::Tensor::new(vec![1, 3, 32, 32], vec![0.0; 3072]).unwrap();
    /// let mut y = vec![resin_runtime::Tensor::default(); model.num_outputs()];
    /// for _ in 0..100 {
    ///     session.run_into(&[&x], &mut y)?; // no allocation after the first run
    /// }
    /// # Ok::<(), resin_runtime::Error>(())
    /// ```
    pub fn run_into(&mut self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        if outputs.len() != self.plan.outputs.len() {
            return Err(Error::OutputCount { expected: self.plan.outputs.len(), got: outputs.len() });
        }
        let batch = self.batch_of(inputs)?;
        let chunk = self.samples_per_chunk(batch);
        for at in (0..batch).step_by(chunk) {
            self.run_chunk(inputs, batch, at..at + chunk, outputs);
        }
        Ok(())
    }

    /// Runs samples `range` of checked `inputs` (of `batch` samples), writing them to their place in
    /// `outputs` (sized for the whole batch by the chunk at sample 0).
    fn run_chunk(&mut self, inputs: &[&Tensor], batch: usize, range: std::ops::Range<usize>, outputs: &mut [Tensor]) {
        let Session { plan, pool, arena, profile, .. } = self;
        let threads = pool.threads();
        let Arena { shapes, slots, inputs: input_bufs, scratch, owned, temps, .. } =
            arena_for(plan, arena, range.len(), threads);
        for (k, t) in inputs.iter().enumerate() {
            // (Only a separable plan runs chunks, and all its inputs lead with the batch.)
            let per = t.data.len() / batch;
            let part = if range.len() == batch { &t.data[..] } else { &t.data[range.start * per..range.end * per] };
            input_bufs[k].copy_from_slice(part);
        }
        pool.install(|| {
            for (si, step) in plan.steps.iter().enumerate() {
                let started = profile.is_some().then(std::time::Instant::now);
                let out_slot = slot_of(plan, step.output).expect("checked: steps write activations");
                let out_shape = shapes[step.output].as_slice();
                let taken = std::mem::take(&mut slots[out_slot]);
                // Operands in the output's slot: the in-place one is found in `out` (None); a window of
                // the same arena is copied out first (dense MLPs read their arena and write into it).
                if owned.len() < step.inputs.len() {
                    owned.resize_with(step.inputs.len(), Vec::new);
                }
                let mut copied: Operands<bool> = Operands::new();
                for (i, &b) in step.inputs.iter().enumerate() {
                    let window = slot_of(plan, b) == Some(out_slot) && plan.buffers[b].view().is_some();
                    if window {
                        let (base, offset) = plan.buffers[b].view().unwrap();
                        let v = View { data: &taken[offset..], shape: &shapes[b], stride: sample_len(&shapes[base]) };
                        gather_into(&v, &mut owned[i]);
                    }
                    copied.push(window);
                }
                let ins: Operands<Option<View>> = step
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| {
                        if copied[i] {
                            return Some(View { data: &owned[i], shape: &shapes[b], stride: sample_len(&shapes[b]) });
                        }
                        (slot_of(plan, b) != Some(out_slot)).then(|| view_of(plan, shapes, slots, input_bufs, b))
                    })
                    .collect();
                let mut taken = taken;
                let (data, stride): (&mut [f32], usize) = match plan.buffers[step.output].view() {
                    Some((base, offset)) => (&mut taken[offset..], sample_len(&shapes[base])),
                    None => {
                        let len = out_shape.iter().product::<usize>();
                        (&mut taken[..len], sample_len(out_shape))
                    }
                };
                let out = Out { data, shape: out_shape, stride };
                exec(&step.op, &ins, out, &plan.weights, scratch, temps, threads);
                drop(ins);
                slots[out_slot] = taken;
                if let (Some(p), Some(t)) = (profile.as_mut(), started) {
                    p[si] += t.elapsed();
                }
            }
        });
        for (io, t) in plan.outputs.iter().zip(outputs.iter_mut()) {
            let view = view_of(plan, shapes, slots, input_bufs, io.buffer);
            if range.len() == batch {
                t.shape.clear();
                t.shape.extend_from_slice(&shapes[io.buffer]);
                gather_into(&view, &mut t.data);
                continue;
            }
            // A chunk of a separable plan: its samples go to their place in the batch's output.
            let s = sample_len(view.shape);
            if range.start == 0 {
                t.shape.clear();
                t.shape.extend_from_slice(&shapes[io.buffer]);
                t.shape[0] = batch;
                t.data.clear();
                t.data.resize(batch * s, 0.0);
            }
            for (i, n) in range.clone().enumerate() {
                t.data[n * s..(n + 1) * s].copy_from_slice(&view.data[i * view.stride..i * view.stride + s]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Embedding conveniences (names, counts, ndarray in and out).

impl Model {
    /// The names of the model's inputs, in the order [`Session::run`] takes them.
    pub fn input_names(&self) -> Vec<&str> {
        self.plan.inputs.iter().map(|io| io.name.as_str()).collect()
    }

    /// The names of the model's outputs, in the order [`Session::run`] returns them.
    pub fn output_names(&self) -> Vec<&str> {
        self.plan.outputs.iter().map(|io| io.name.as_str()).collect()
    }

    /// How many inputs [`Session::run`] takes.
    pub fn num_inputs(&self) -> usize {
        self.plan.inputs.len()
    }

    /// How many outputs [`Session::run`] returns.
    pub fn num_outputs(&self) -> usize {
        self.plan.outputs.len()
    }

    /// The shape of input `i` with the free batch dimension (if any) set to `batch`; `None` if there is
    /// no input `i`.
    pub fn input_shape(&self, i: usize, batch: usize) -> Option<Vec<usize>> {
        self.plan.inputs.get(i).map(|io| resolve(&self.plan.buffers[io.buffer].shape, batch))
    }
}

impl Session {
    /// [`Session::run`] on `ndarray` views (any layout: non-contiguous views are copied in row-major
    /// order), returning owned arrays.
    ///
    /// ```
    /// # fn demo(session: &mut resin_runtime::Session) -> resin_runtime::Result<()> {
    /// let x = ndarray::ArrayD::<f32>::zeros(vec![2, 3, 32, 32]);
    /// let outputs = session.run_arrays(&[x.view()])?;
    /// println!("logits: {:?}", outputs[0].shape());
    /// # Ok(()) }
    /// ```
    pub fn run_arrays(&mut self, inputs: &[ndarray::ArrayViewD<'_, f32>]) -> Result<Vec<ndarray::ArrayD<f32>>> {
        let tensors: Vec<Tensor> = inputs.iter().map(Tensor::from_view).collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        Ok(self.run(&refs)?.into_iter().map(Tensor::into_array).collect())
    }
}
