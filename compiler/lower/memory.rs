//! Memory planning: liveness intervals over the schedule, then slots.
//!
//! A buffer is live from the step that writes it to the last step that reads it (graph outputs live to the
//! end). Walking the schedule, each step's output takes, in order of preference:
//! 1. the slot of its in-place operand (the residual skip of a Conv/Gemm, the input of a Copy or Unary)
//!    when that operand dies at this step and has the same size — the residual add then happens in the
//!    skip's own memory, and a reshape moves nothing;
//! 2. the smallest free slot that is large enough, else the largest free slot (which grows), else a new
//!    slot. Inputs that die at a step are freed after its output is placed, so no step reads and writes
//!    the same memory except in place.
//!
//! Sizes are counted per sample (batch 1); a session sizes slots exactly for its batch.

use resin_runtime::plan::{BufferKind, Plan};

/// What the planner did, in bytes at batch 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub slots: usize,
    /// Σ of slot sizes: the activation memory a session holds.
    pub peak_bytes: usize,
    /// One buffer per tensor: what a plan without reuse would hold.
    pub naive_bytes: usize,
    /// Steps whose output took an operand's slot.
    pub in_place: usize,
    /// The largest kernel scratch a step needs with one thread (GEMM tile packing; held once per session).
    pub scratch_bytes: usize,
}

fn len1(plan: &Plan, b: usize) -> usize {
    plan.buffers[b].shape.iter().map(|d| d.resolve(1)).product()
}

fn is_activation(plan: &Plan, b: usize) -> bool {
    matches!(plan.buffers[b].kind, BufferKind::Activation { .. })
}

/// The buffer that owns `b`'s storage: its base for a window, else itself.
fn holder(plan: &Plan, b: usize) -> usize {
    plan.buffers[b].view().map_or(b, |v| v.0)
}

/// Assigns a slot to every activation buffer of `plan` (windows use their base's).
pub fn plan_memory(plan: &mut Plan) -> MemoryReport {
    let nb = plan.buffers.len();
    // Liveness per holder: until the last step that reads or writes anything stored in it.
    let mut last_use: Vec<Option<usize>> = vec![None; nb];
    for (s, step) in plan.steps.iter().enumerate() {
        for &b in &step.inputs {
            last_use[holder(plan, b)] = Some(s);
        }
        let h = holder(plan, step.output);
        if h != step.output {
            last_use[h] = Some(last_use[h].map_or(s, |u| u.max(s)));
        }
    }
    for io in &plan.outputs {
        last_use[holder(plan, io.buffer)] = Some(usize::MAX);
    }
    let mut slot_of: Vec<Option<usize>> = vec![None; nb];
    let mut size: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut report = MemoryReport::default();
    for s in 0..plan.steps.len() {
        let step = &plan.steps[s];
        let out = holder(plan, step.output);
        let dies_here = |b: usize| is_activation(plan, b) && last_use[b] == Some(s);
        let slot = match slot_of[out] {
            Some(slot) => slot, // another window of an arena already placed
            None => {
                let need = len1(plan, out);
                let mut chosen = None;
                if let (Some(k), None) = (step.op.in_place_input(), plan.buffers[step.output].view()) {
                    if let Some(&b) = step.inputs.get(k) {
                        let unique = step.inputs.iter().filter(|&&x| x == b).count() == 1;
                        let own = plan.buffers[b].view().is_none();
                        if own && dies_here(b) && unique && len1(plan, b) == need {
                            chosen = slot_of[b];
                            report.in_place += 1;
                        }
                    }
                }
                let slot = chosen.unwrap_or_else(|| {
                    let fit =
                        free.iter().enumerate().filter(|(_, &sl)| size[sl] >= need).min_by_key(|(_, &sl)| size[sl]);
                    let pick = fit.or_else(|| free.iter().enumerate().max_by_key(|(_, &sl)| size[sl])).map(|(i, _)| i);
                    match pick {
                        Some(i) => free.swap_remove(i),
                        None => {
                            size.push(0);
                            size.len() - 1
                        }
                    }
                });
                size[slot] = size[slot].max(need);
                slot_of[out] = Some(slot);
                slot
            }
        };
        let mut holders: Vec<usize> = step.inputs.iter().map(|&b| holder(plan, b)).collect();
        holders.sort();
        holders.dedup();
        for h in holders {
            if dies_here(h) && slot_of[h] != Some(slot) {
                free.push(slot_of[h].expect("an activation is written before it is read"));
            }
        }
        if last_use[out].is_none_or(|u| u == s) && !plan.outputs.iter().any(|io| holder(plan, io.buffer) == out) {
            free.push(slot); // written and never read afterwards
        }
    }
    for (b, buf) in plan.buffers.iter_mut().enumerate() {
        if let BufferKind::Activation { slot } = &mut buf.kind {
            *slot = slot_of[b].expect("every activation is written by a step");
        }
    }
    plan.slots = size.len();
    report.slots = size.len();
    report.peak_bytes = size.iter().sum::<usize>() * 4;
    // A plan without reuse holds every tensor in its own buffer (arenas' members counted, not their bases).
    let bases: Vec<usize> = (0..nb).filter_map(|b| plan.buffers[b].view().map(|v| v.0)).collect();
    report.naive_bytes = (0..nb)
        .filter(|&b| (is_activation(plan, b) && !bases.contains(&b)) || plan.buffers[b].view().is_some())
        .map(|b| len1(plan, b) * 4)
        .sum();
    report.scratch_bytes = plan
        .steps
        .iter()
        .map(|s| {
            let shape: Vec<usize> = plan.buffers[s.output].shape.iter().map(|d| d.resolve(1)).collect();
            s.op.scratch_len(&shape, 1) * 4
        })
        .max()
        .unwrap_or(0);
    report
}
