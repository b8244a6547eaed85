//! A warmed-up `Session::run_into` allocates nothing per run: a counting global allocator (this test
//! binary's own) sees every allocation on every thread, the session's kernel threads included, while
//! the same session runs again at the same batch size, and must count zero. (With rayon as the pool
//! this was 2-7 per 130 runs, from its job queues; resin's own pool, `resin_runtime::parallel`,
//! dispatches without allocating.) Covered: a ResNet (residual epilogues, pooling, the
//! classifier), a DenseNet (feature-arena windows), a ResNeXt (grouped convolutions) and a dense MLP (a
//! step that reads a window of its own output's arena), at batch 1, at batch 3 (strided windows)
//! and at batch 4 (2 threads take whole images of a convolution), with 1 and 2 threads.

mod common;

use resin_runtime::Tensor;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RUNS: usize = 130;

#[test]
fn warmed_up_runs_do_not_allocate() {
    for name in ["resnet20", "densenet_small", "resnext_small", "mlp_dense"] {
        let model = common::compile(&common::models_dir().join(format!("{name}.onnx")));
        for threads in [1, 2] {
            for batch in [1, 3, 4] {
                let mut session = model.session_with_threads(threads).unwrap();
                let inputs: Vec<Tensor> = (0..model.num_inputs())
                    .map(|i| {
                        let shape = model.input_shape(i, batch).unwrap();
                        let len = shape.iter().product();
                        Tensor::new(shape, (0..len).map(|j| ((j * 7 % 23) as f32 - 11.0) / 10.0).collect()).unwrap()
                    })
                    .collect();
                let refs: Vec<&Tensor> = inputs.iter().collect();
                let mut outputs = vec![Tensor::default(); model.num_outputs()];
                session.run_into(&refs, &mut outputs).unwrap();
                let first = outputs.clone();
                ALLOCATIONS.store(0, Ordering::SeqCst);
                COUNTING.store(true, Ordering::SeqCst);
                for _ in 0..RUNS {
                    session.run_into(&refs, &mut outputs).unwrap();
                }
                COUNTING.store(false, Ordering::SeqCst);
                let n = ALLOCATIONS.load(Ordering::SeqCst);
                println!("{name}, batch {batch}, {threads} thread(s): {n} allocations in {RUNS} warmed-up runs");
                assert_eq!(
                    n, 0,
                    "{name}, batch {batch}, {threads} thread(s): {n} allocations in {RUNS} warmed-up runs"
                );
                assert_eq!(outputs, first, "{name}: the reused session gave different outputs");
            }
        }
    }
}
