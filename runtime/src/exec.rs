//! Executes one step: calls its kernel on the step's operands. Owns nothing; the session hands it views of
//! its buffers.
//!
//! Operands are [`View`]s: sample n of a view is `data[n·stride .. n·stride + sample]`. A buffer of its own
//! has `stride == sample`; a window of a feature arena (a concatenation member) has a larger stride when the
//! batch is above 1. Conv, Gemm and the per-channel affine read and write strided views natively; other
//! kernels get contiguous copies (gathered before, scattered after), which only happens for windows at
//! batch > 1. An operand given as `None` is the in-place operand: its elements are already in `out`.

use crate::kernels::gemm::{self, MatRef};
use crate::kernels::{concat, conv, elementwise, matmul, pad, pool, softmax, winograd};
use crate::parallel::SendPtr;
use crate::plan::{ConvStep, StepOp, WeightRange};
use smallvec::SmallVec;

/// A step's operand list: inline up to 8, so a step does not allocate for it.
pub type Operands<T> = SmallVec<[T; 8]>;

/// Buffers the copying path reuses from step to step and run to run: a warmed-up session does not
/// allocate (gathers of strided windows and scatters of strided outputs land here).
#[derive(Debug, Default)]
pub struct Temps {
    operands: Vec<Vec<f32>>,
    out: Vec<f32>,
    acc: Vec<f32>,
}

/// A read-only operand.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub shape: &'a [usize],
    /// Elements between consecutive samples (axis 0).
    pub stride: usize,
}

/// The output.
pub struct Out<'a> {
    pub data: &'a mut [f32],
    pub shape: &'a [usize],
    pub stride: usize,
}

fn sample_len(shape: &[usize]) -> usize {
    shape.iter().skip(1).product()
}

fn batch(shape: &[usize]) -> usize {
    shape.first().copied().unwrap_or(1)
}

impl<'a> View<'a> {
    pub fn contiguous(&self) -> bool {
        batch(self.shape) <= 1 || self.shape.len() < 2 || self.stride == sample_len(self.shape)
    }
    /// The elements as one contiguous slice, copying into `tmp` when strided.
    fn flat<'b>(&'b self, tmp: &'b mut Vec<f32>) -> &'b [f32] {
        let len: usize = self.shape.iter().product();
        if self.contiguous() {
            return &self.data[..len];
        }
        let s = sample_len(self.shape);
        tmp.clear();
        for n in 0..batch(self.shape) {
            tmp.extend_from_slice(&self.data[n * self.stride..n * self.stride + s]);
        }
        tmp
    }
}

fn w(weights: &[f32], r: WeightRange) -> &[f32] {
    &weights[r.offset..r.offset + r.len]
}

/// The operand `i`, which the plan guarantees is not in place.
fn get<'a>(ins: &[Option<View<'a>>], i: usize) -> View<'a> {
    ins[i].expect("checked plan: only the in-place operand shares the output's slot")
}

/// Runs `op` on `ins`, writing `out`.
pub fn exec(
    op: &StepOp,
    ins: &[Option<View>],
    out: Out,
    weights: &[f32],
    scratch: &mut [f32],
    temps: &mut Temps,
    threads: usize,
) {
    match op {
        StepOp::Conv(c) => {
            let x = get(ins, 0);
            let (xs, ys) = (x.shape, out.shape);
            let y_stride = if batch(ys) <= 1 { sample_len(ys) } else { out.stride };
            let x_stride = if batch(xs) <= 1 { sample_len(xs) } else { x.stride };
            if c.residual {
                load_skip(ins, out.data, y_stride, ys);
            }
            let (u, bias) = (w(weights, c.weight), c.bias.map(|b| w(weights, b)));
            let pre = c.pre.as_ref().map(|p| conv::Pre {
                scale: w(weights, p.scale),
                shift: w(weights, p.shift),
                act: p.act,
            });
            let (n, oh, ow) = (xs[0], ys[2], ys[3]);
            let args = conv::ConvArgs {
                x: x.data,
                x_stride,
                n,
                h: xs[2],
                w: xs[3],
                p: &c.geom,
                weight: u,
                bias,
                act: c.act,
                accumulate: c.residual,
                pre,
                oh,
                ow,
                y_stride,
            };
            let run_conv = |args: &conv::ConvArgs, y: &mut [f32], scratch: &mut [f32], threads: usize| match c.winograd
            {
                Some(v) => winograd::conv3x3(v, args, y, scratch, threads),
                None => conv::conv2d(args, y, scratch, threads),
            };
            let Some(parts) = conv_image_parts(c, n, oh, ow, threads) else {
                return run_conv(&args, out.data, scratch, threads);
            };
            let per = conv_scratch(c, oh, ow, 1);
            let image = c.geom.cout * oh * ow;
            assert!(scratch.len() >= parts * per && y_stride >= image && out.data.len() >= (n - 1) * y_stride + image);
            let (y, sp) = (SendPtr(out.data.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
            crate::parallel::run(parts, &|i| {
                let imgs = i * n / parts..(i + 1) * n / parts;
                let y_len = (imgs.len() - 1) * y_stride + image;
                // SAFETY: part i writes images `imgs` of y (y_stride ≥ one image, so the parts' ranges are
                // disjoint; the last ends inside y, asserted) and scratch chunk i; both are borrowed mutably.
                let (y, scratch) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(y.get().add(imgs.start * y_stride), y_len),
                        std::slice::from_raw_parts_mut(sp.get().add(i * per), per),
                    )
                };
                let part = conv::ConvArgs { x: &x.data[imgs.start * x_stride..], n: imgs.len(), ..args };
                run_conv(&part, y, scratch, 1)
            });
        }
        StepOp::Gemm(g) => gemm(g, ins, out, weights, scratch, temps, threads),
        StepOp::ChannelAffine { scale, shift } => {
            let x = get(ins, 0);
            let (n, c) = (x.shape[0], x.shape[1]);
            let hw: usize = x.shape[2..].iter().product();
            let (scale, shift) = (w(weights, *scale), w(weights, *shift));
            for i in 0..n {
                let xi = &x.data[i * x.stride..i * x.stride + c * hw];
                let yi = &mut out.data[i * out.stride..i * out.stride + c * hw];
                elementwise::channel_affine(xi, 1, c, hw, scale, shift, yi);
            }
        }
        _ => {
            // Kernels that want contiguous operands: gather windows, compute, scatter back.
            if temps.operands.len() < ins.len() {
                temps.operands.resize_with(ins.len(), Vec::new);
            }
            let Temps { operands, out: y, acc } = temps;
            let flat: Operands<Option<(&[f32], &[usize])>> =
                ins.iter().zip(operands.iter_mut()).map(|(v, t)| v.as_ref().map(|v| (v.flat(t), v.shape))).collect();
            let len: usize = out.shape.iter().product();
            let contiguous = batch(out.shape) <= 1 || out.shape.len() < 2 || out.stride == sample_len(out.shape);
            if contiguous {
                exec_contiguous(op, &flat, &mut out.data[..len], out.shape, weights, acc, threads);
            } else {
                y.clear();
                y.resize(len, 0.0);
                exec_contiguous(op, &flat, y, out.shape, weights, acc, threads);
                let s = sample_len(out.shape);
                for (n, chunk) in y.chunks(s).enumerate() {
                    out.data[n * out.stride..n * out.stride + s].copy_from_slice(chunk);
                }
            }
        }
    }
}

/// Copies the residual operand (input 1) into the output, sample by sample, unless it is already there
/// (in place, given as `None`).
fn load_skip(ins: &[Option<View>], y: &mut [f32], y_stride: usize, shape: &[usize]) {
    if let Some(skip) = ins[1] {
        let s = sample_len(shape);
        for n in 0..batch(shape) {
            y[n * y_stride..n * y_stride + s].copy_from_slice(&skip.data[n * skip.stride..n * skip.stride + s]);
        }
    }
}

fn gemm(
    g: &crate::plan::GemmStep,
    ins: &[Option<View>],
    out: Out,
    weights: &[f32],
    scratch: &mut [f32],
    temps: &mut Temps,
    threads: usize,
) {
    let a = get(ins, 0);
    let (m, n) = (out.shape[0], g.n);
    let ldc = out.stride.max(n);
    let ldc = if m <= 1 { n } else { ldc };
    let y = out.data;
    if g.residual {
        load_skip(ins, y, ldc, out.shape);
    }
    if let Some((c, c_shape)) = &g.c {
        // y (+)= beta·C, C broadcast from [], [N], [1,N], [M,1] or [M,N] to [M, N].
        let c = w(weights, *c);
        let rows = if c_shape.len() == 2 { c_shape[0] } else { 1 };
        let cols = c_shape.last().copied().unwrap_or(1);
        for i in 0..m {
            let crow = &c[(i % rows) * cols..(i % rows) * cols + cols];
            let yrow = &mut y[i * ldc..i * ldc + n];
            for (j, o) in yrow.iter_mut().enumerate() {
                let v = g.beta * crow[if cols == 1 { 0 } else { j }];
                *o = if g.residual { *o + v } else { v };
            }
        }
    }
    // A (the activations) is packed into the head of the scratch, the weights are read in place as B.
    let (packed, scratch) = scratch.split_at_mut(gemm::packed_len(m, g.k));
    let am = if g.trans_a {
        MatRef { data: a.flat(&mut temps.out), ld: a.shape[1], trans: true }
    } else {
        MatRef { data: a.data, ld: if m <= 1 { g.k } else { a.stride.max(g.k) }, trans: false }
    };
    gemm::pack_a(m, g.k, am, g.alpha, packed);
    let weights = MatRef::new(w(weights, g.weight), n);
    let epi = gemm::Epilogue { accumulate: g.residual || g.c.is_some(), bias: None, act: g.act };
    gemm::gemm_matrix_b(gemm::Isa::detect(), m, n, g.k, packed, weights, y, ldc, &epi, threads, scratch);
}

/// How many threads take whole images of a batch of `n`, one image at a time each, or `None` when the
/// threads split each image's work instead. Whole images need no synchronization inside a convolution
/// and give each thread a whole GEMM, so they win when every thread gets images and the busiest gets at
/// most 1.25x the even share: 8 or 5 images on 2 threads (4 + 4, 3 + 2) yes; 3 images (2 + 1), or 2
/// images on 4 threads, no.
fn image_parts(n: usize, threads: usize) -> Option<usize> {
    (threads > 1 && n >= threads && n.div_ceil(threads) * threads * 4 <= n * 5).then_some(threads)
}

/// [`image_parts`] for a convolution step: none for a Winograd step whose per-image buffers (the
/// transformed input V and the products M, [`winograd::scratch_len`] for one thread) pass
/// [`WINOGRAD_IMAGE_MAX`] floats. Two threads on two such images at once work in twice that, past what
/// the caches hold; splitting each image's transforms and products between them shares one V. Per-step
/// profiles at batch 8, 2 threads, rounds rotating the builds (`benches/ab_steps.py`, 6 rounds): the
/// 56-pixel F(4×4) layers (3.6 MB an image in ResNet-50, 4.5 MB in DenseNet-121) took 0.884 and 0.856 of
/// their whole-image time; at 28 px (1.8 MB) 1.007 and 0.996, at 14 px (1.2 MB) 0.974; every GEMM
/// convolution was faster by whole images (the 7-pixel ones by 10-15%). With this rule, against whole
/// images everywhere: DenseNet-121's 56-pixel layers 0.840 (the network 0.947), ResNet-50's 1.029 and
/// 0.910 in two runs.
fn conv_image_parts(c: &ConvStep, n: usize, oh: usize, ow: usize, threads: usize) -> Option<usize> {
    let big = c.winograd.is_some_and(|v| winograd::scratch_len(&c.geom, v, oh, ow, 1) > WINOGRAD_IMAGE_MAX);
    image_parts(n, threads).filter(|_| !big)
}

/// See [`conv_image_parts`]: 2 MiB of floats.
const WINOGRAD_IMAGE_MAX: usize = 512 << 10;

/// Scratch floats a convolution step needs for an `oh × ow` output with `threads` threads on one image.
fn conv_scratch(c: &ConvStep, oh: usize, ow: usize, threads: usize) -> usize {
    match c.winograd {
        Some(v) => winograd::scratch_len(&c.geom, v, oh, ow, threads),
        None => c.geom.scratch_len(oh, ow, threads),
    }
}

/// Scratch floats step `op` needs with `threads` threads, given its output shape.
pub fn step_scratch(op: &StepOp, out_shape: &[usize], threads: usize) -> usize {
    match op {
        StepOp::Conv(c) => {
            let (n, oh, ow) = (out_shape[0], out_shape[2], out_shape[3]);
            match conv_image_parts(c, n, oh, ow, threads) {
                Some(parts) => parts * conv_scratch(c, oh, ow, 1),
                None => conv_scratch(c, oh, ow, threads),
            }
        }
        StepOp::Gemm(g) => gemm::packed_len(out_shape[0], g.k) + gemm::scratch_len(gemm::Isa::detect(), threads),
        _ => 0,
    }
}

/// The ops whose kernels take contiguous operands.
fn exec_contiguous(
    op: &StepOp,
    ins: &[Option<(&[f32], &[usize])>],
    out: &mut [f32],
    out_shape: &[usize],
    weights: &[f32],
    acc: &mut Vec<f32>,
    threads: usize,
) {
    let get = |i: usize| ins[i].expect("checked plan: only the in-place operand shares the output's slot");
    match op {
        StepOp::MatMul => {
            let ((a, as_), (b, bs)) = (get(0), get(1));
            matmul::matmul(a, as_, b, bs, out, threads);
        }
        StepOp::Unary(u) => match ins[0] {
            Some((x, _)) => elementwise::unary(*u, x, out),
            None => elementwise::unary_inplace(*u, out),
        },
        StepOp::Binary(b) => {
            let ((x, xs), (y, ys)) = (get(0), get(1));
            elementwise::binary(*b, x, xs, y, ys, out, out_shape);
        }
        StepOp::Sum => {
            let ops: Operands<(&[f32], &[usize])> = (0..ins.len()).map(get).collect();
            if ops.iter().all(|(_, s)| *s == out_shape) {
                let slices: Operands<&[f32]> = ops.iter().map(|i| i.0).collect();
                elementwise::sum(&slices, out);
            } else {
                // Broadcasting sum: accumulate operand by operand through `binary`, via `acc`.
                out.fill(0.0);
                for (x, xs) in ops {
                    acc.clear();
                    acc.extend_from_slice(out);
                    elementwise::binary(elementwise::BinaryOp::Add, acc, out_shape, x, xs, out, out_shape);
                }
            }
        }
        StepOp::MaxPool(p) | StepOp::AvgPool(p) => {
            let (x, xs) = get(0);
            let f = if matches!(op, StepOp::MaxPool(_)) { pool::max_pool2d } else { pool::avg_pool2d };
            f(x, xs[0] * xs[1], xs[2], xs[3], p, out_shape[2], out_shape[3], out);
        }
        StepOp::AvgPoolPre { pool: p, pre } => {
            let (x, xs) = get(0);
            let pre = conv::Pre { scale: w(weights, pre.scale), shift: w(weights, pre.shift), act: pre.act };
            pool::avg_pool2d_pre(x, xs[0] * xs[1], xs[2], xs[3], p, out_shape[2], out_shape[3], out, xs[1], &pre);
        }
        StepOp::GlobalAvgPool => {
            let (x, xs) = get(0);
            pool::global_avg_pool(x, xs[0] * xs[1], xs[2..].iter().product(), out);
        }
        StepOp::Softmax { axis } => {
            let (x, xs) = get(0);
            let outer: usize = xs[..*axis].iter().product();
            let inner: usize = xs[axis + 1..].iter().product();
            softmax::softmax(x, outer, xs[*axis], inner, out);
        }
        StepOp::Concat { axis } => {
            let outer: usize = out_shape[..*axis].iter().product();
            let inner: usize = out_shape[axis + 1..].iter().product();
            let parts: Operands<(&[f32], usize)> = (0..ins.len()).map(get).map(|(x, s)| (x, s[*axis])).collect();
            concat::concat(&parts, outer, inner, out);
        }
        StepOp::Pad { pads, mode } => {
            let (x, xs) = get(0);
            pad::pad(x, xs, pads, *mode, out);
        }
        StepOp::Copy => {
            if let Some((x, _)) = ins[0] {
                out.copy_from_slice(x);
            }
        }
        StepOp::Conv(_) | StepOp::Gemm(_) | StepOp::ChannelAffine { .. } => unreachable!("handled with strides"),
    }
}
