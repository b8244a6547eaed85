//! The runtime's convolution against a direct f64 one over random geometries (proptest): kernel sizes,
//! strides, dilations, asymmetric padding, groups, image sizes down to one pixel, the fused bias,
//! activation and residual, on 1 and 2 threads with the same bits. Whichever path `conv2d` takes for a
//! geometry (a 1x1's packed tiles, the padded phase planes read in place or packed, on AVX-512 the
//! unpadded input under per-tap masks) must give the same function; half the cases keep the output as
//! wide as the input, the shape that takes the masked path.

use proptest::prelude::*;
use resin_runtime::kernels::conv::{conv2d, Conv2d, ConvArgs};
use resin_runtime::kernels::elementwise::UnaryOp;
use resin_runtime::parallel::ThreadPool;

#[derive(Clone, Debug)]
struct Case {
    p: Conv2d,
    n: usize,
    h: usize,
    w: usize,
    relu: bool,
    residual: bool,
    seed: u64,
}

/// Output size along one axis, or None when the kernel does not fit the padded input.
fn out(size: usize, k: usize, s: usize, d: usize, lo: usize, hi: usize) -> Option<usize> {
    (size + lo + hi).checked_sub(d * (k - 1) + 1).map(|r| r / s + 1)
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..=5, 1usize..=6, 1usize..=3),
        (1usize..=5, 1usize..=5),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        ([0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3], any::<bool>()),
        (1usize..=2, 1usize..=14, 1usize..=20),
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((cg, mg, group), (kh, kw), (s0, s1, d0, d1), (mut pads, same), (n, h, w), (relu, residual, seed))| {
                if same {
                    // Stride 1 and "same" width: left + right = (kw - 1)·d1, split unevenly when odd.
                    let span = (kw - 1) * d1;
                    pads[1] = span / 2;
                    pads[3] = span - span / 2;
                }
                let strides = if same { [1, 1] } else { [s0, s1] };
                let p = Conv2d {
                    cin: cg * group,
                    cout: mg * group,
                    kernel: [kh, kw],
                    strides,
                    pads,
                    dilations: [d0, d1],
                    group,
                };
                Case { p, n, h, w, relu, residual, seed }
            },
        )
}

/// Deterministic values in [-2, 2) from a seed.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn direct(c: &Case, x: &[f32], wt: &[f32], b: &[f32], skip: &[f32], oh: usize, ow: usize) -> Vec<f64> {
    let p = &c.p;
    let (cg, mg) = (p.cin / p.group, p.cout / p.group);
    let [kh, kw] = p.kernel;
    let mut y = vec![0f64; c.n * p.cout * oh * ow];
    for img in 0..c.n {
        for m in 0..p.cout {
            let g = m / mg;
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = b[m] as f64;
                    for ci in 0..cg {
                        for u in 0..kh {
                            for v in 0..kw {
                                let yy = (i * p.strides[0] + u * p.dilations[0]) as isize - p.pads[0] as isize;
                                let xx = (j * p.strides[1] + v * p.dilations[1]) as isize - p.pads[1] as isize;
                                if yy >= 0 && xx >= 0 && (yy as usize) < c.h && (xx as usize) < c.w {
                                    let xv = x[((img * p.cin + g * cg + ci) * c.h + yy as usize) * c.w + xx as usize];
                                    s += xv as f64 * wt[((m * cg + ci) * kh + u) * kw + v] as f64;
                                }
                            }
                        }
                    }
                    let at = ((img * p.cout + m) * oh + i) * ow + j;
                    if c.residual {
                        s += skip[at] as f64;
                    }
                    y[at] = if c.relu { s.max(0.0) } else { s };
                }
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_a_direct_convolution(c in case()) {
        let p = c.p;
        let oh = out(c.h, p.kernel[0], p.strides[0], p.dilations[0], p.pads[0], p.pads[2]);
        let ow = out(c.w, p.kernel[1], p.strides[1], p.dilations[1], p.pads[1], p.pads[3]);
        let (Some(oh), Some(ow)) = (oh, ow) else { return Ok(()) };
        let x = values(c.n * p.cin * c.h * c.w, c.seed);
        let wt = values(p.cout * p.k(), c.seed.rotate_left(17));
        let b = values(p.cout, c.seed.rotate_left(33));
        let skip = values(c.n * p.cout * oh * ow, c.seed.rotate_left(49));
        let want = direct(&c, &x, &wt, &b, &skip, oh, ow);
        let packed = p.pack_weights(&wt);
        let args = ConvArgs {
            bias: Some(&b),
            act: c.relu.then_some(UnaryOp::Relu),
            accumulate: c.residual,
            ..ConvArgs::new(&x, c.n, c.h, c.w, &p, &packed, oh, ow)
        };
        let mut bits: Option<Vec<u32>> = None;
        for threads in [1, 2] {
            // NaN where no residual enters: an output the kernel forgot to write shows.
            let mut y = if c.residual { skip.clone() } else { vec![f32::NAN; skip.len()] };
            let mut scratch = vec![f32::NAN; p.scratch_len(oh, ow, threads)];
            let pool = ThreadPool::new(threads).expect("a thread pool");
            pool.install(|| conv2d(&args, &mut y, &mut scratch, threads));
            for (k, (&a, &e)) in y.iter().zip(&want).enumerate() {
                prop_assert!(
                    (a as f64 - e).abs() <= 1e-4 + 1e-4 * e.abs(),
                    "{:?} {}x{}x{} threads {}: output {} is {} against {}", p, c.n, c.h, c.w, threads, k, a, e
                );
            }
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            match &bits {
                None => bits = Some(got),
                Some(first) => prop_assert!(first == &got, "{:?}: the thread count changed the bits", p),
            }
        }
    }
}
