//! Feature arenas: concatenations along the channel axis become windows of one buffer.
//!
//! Every operand of a realized Concat is laid out at its own offset of an arena (the *base* buffer) and
//! written there by its producer; the Concat's output is the window over its operands, so no step copies
//! anything. Concats that share operands share the arena: DenseNet's layer l reads [x0, f1, …, f_{l-1}] and
//! writes f_l right after it, so a whole dense block is one arena; a dense MLP's layer reads a prefix of its
//! arena. A Concat is realized when its operands are consecutive members of one arena (those already
//! placed) followed by new ones appended at its end; otherwise it stays a copying step. An operand that
//! cannot be placed (a model input, a constant, a window of another arena, a value placed elsewhere) is
//! copied into the arena once by a Copy step.

use resin_runtime::plan::{Buffer, BufferKind, Dim, Plan, Step, StepOp};
use std::collections::HashMap;

fn inner(shape: &[Dim]) -> usize {
    shape.iter().skip(2).map(|d| d.resolve(1)).product()
}

/// Realizes the channel concatenations of `plan` as arena windows; returns how many Concat steps it removed.
pub fn realize_concats(plan: &mut Plan) -> usize {
    let producer: HashMap<usize, usize> = plan.steps.iter().enumerate().map(|(i, s)| (s.output, i)).collect();
    let mut member_of: HashMap<usize, (usize, usize)> = HashMap::new(); // buffer -> (arena, index)
    let mut arenas: Vec<Vec<usize>> = Vec::new();
    let mut substitute: HashMap<usize, usize> = HashMap::new(); // unplaceable operand -> its copy
    let mut realized: Vec<(usize, usize)> = Vec::new(); // (concat step, arena)
    let mut copies: Vec<(usize, Step)> = Vec::new(); // (insert before step index, copy step)
    let mut concat_outputs: Vec<usize> = Vec::new();

    for si in 0..plan.steps.len() {
        let StepOp::Concat { axis: 1 } = plan.steps[si].op else { continue };
        let out = plan.steps[si].output;
        let out_shape = plan.buffers[out].shape.clone();
        if out_shape.len() < 2 {
            continue;
        }
        let ops: Vec<usize> = plan.steps[si].inputs.iter().map(|b| *substitute.get(b).unwrap_or(b)).collect();
        let same_frame = ops.iter().all(|&b| {
            let s = &plan.buffers[b].shape;
            s.len() == out_shape.len() && s[0] == out_shape[0] && s[2..] == out_shape[2..]
        });
        let mut distinct = ops.clone();
        distinct.sort();
        distinct.dedup();
        if !same_frame || distinct.len() != ops.len() {
            continue;
        }
        // Placed operands must be a run of consecutive members ending at the arena's end, then new ones.
        let placed: Vec<(usize, usize)> = ops.iter().map_while(|b| member_of.get(b).copied()).collect();
        let arena = match placed.first() {
            None => None,
            Some(&(a, first)) => {
                let consecutive = placed.iter().enumerate().all(|(k, &(a2, i))| a2 == a && i == first + k);
                let at_end = first + placed.len() == arenas[a].len();
                if !consecutive || !at_end {
                    continue;
                }
                Some(a)
            }
        };
        if ops[placed.len()..].iter().any(|b| member_of.contains_key(b)) {
            continue;
        }
        let arena = arena.unwrap_or_else(|| {
            arenas.push(Vec::new());
            arenas.len() - 1
        });
        // Append the new operands, copying in those whose producer cannot write into the arena.
        for (pos, &b) in ops.iter().enumerate().skip(placed.len()) {
            let placeable = matches!(plan.buffers[b].kind, BufferKind::Activation { .. })
                && producer.contains_key(&b)
                && !concat_outputs.contains(&b);
            let member = if placeable {
                b
            } else {
                let copy = plan.buffers.len();
                plan.buffers.push(Buffer {
                    shape: plan.buffers[b].shape.clone(),
                    kind: BufferKind::Activation { slot: usize::MAX },
                });
                let name = format!("{}/arena_copy{pos}", plan.steps[si].name);
                copies.push((si, Step { name, op: StepOp::Copy, inputs: vec![b], output: copy }));
                substitute.insert(b, copy);
                copy
            };
            member_of.insert(member, (arena, arenas[arena].len()));
            arenas[arena].push(member);
        }
        // The concat now reads its members (substitutes included).
        plan.steps[si].inputs = ops.iter().map(|b| *substitute.get(b).unwrap_or(b)).collect();
        concat_outputs.push(out);
        realized.push((si, arena));
    }

    // Bases and windows.
    let mut base_of_arena = Vec::new();
    for members in &arenas {
        let first = &plan.buffers[members[0]].shape;
        let channels: usize = members.iter().map(|&m| plan.buffers[m].shape[1].resolve(1)).sum();
        let mut shape = first.clone();
        shape[1] = Dim::Fixed(channels);
        let base = plan.buffers.len();
        plan.buffers.push(Buffer { shape, kind: BufferKind::Activation { slot: usize::MAX } });
        base_of_arena.push(base);
        let mut offset = 0;
        for &m in members {
            let c = plan.buffers[m].shape[1].resolve(1);
            let per = inner(&plan.buffers[m].shape);
            plan.buffers[m].kind = BufferKind::View { base, offset: offset * per };
            offset += c;
        }
    }
    for &(si, arena) in &realized {
        let step = &plan.steps[si];
        let first = step.inputs[0];
        let Some((base, offset)) = plan.buffers[first].view() else { unreachable!("members are windows") };
        debug_assert_eq!(base, base_of_arena[arena]);
        plan.buffers[step.output].kind = BufferKind::View { base, offset };
    }
    // Drop the realized Concat steps and insert the copies.
    let removed: Vec<usize> = realized.iter().map(|r| r.0).collect();
    let old = std::mem::take(&mut plan.steps);
    for (i, step) in old.into_iter().enumerate() {
        for (_, c) in copies.iter().filter(|c| c.0 == i) {
            plan.steps.push(c.clone());
        }
        if !removed.contains(&i) {
            plan.steps.push(step);
        }
    }
    removed.len()
}
