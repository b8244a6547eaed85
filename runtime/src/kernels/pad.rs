//! Padding kernel: N-d `Pad` with ONNX `constant`, `reflect` and `edge` modes.
//!
//! The output is produced one innermost row at a time: the outer coordinates of the row are mapped back
//! to a source row once, then the row's interior is a block copy and only its borders are computed per
//! element.

/// How padded positions are filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// Every padded position holds this value.
    Constant(f32),
    /// Mirror about the border element, without repeating it (NumPy `reflect`).
    Reflect,
    /// Repeat the border element (NumPy `edge`).
    Edge,
}

/// N-d pad, ONNX semantics. shape: input shape; pads: `[begin_0..begin_{r-1}, end_0..end_{r-1}]` (non-negative; the caller rejects negative pads); y has shape `shape[i]+begin[i]+end[i]`. Reflect mirrors without repeating the edge (as numpy 'reflect'); Edge repeats the border.
///
/// Math: `y[o_0..o_{r-1}] = x[m_0(o_0 - begin_0)..m_{r-1}(o_{r-1} - begin_{r-1})]`, where for an axis of
/// length `n` and a shifted coordinate `i`:
/// - `Constant(v)`: `y = v` if any `i` falls outside `[0, n)`;
/// - `Edge`: `m(i) = clamp(i, 0, n - 1)`;
/// - `Reflect`: `m(i)` reflects `i` about `0` and `n - 1` with period `2(n - 1)` (so pads wider than
///   `n - 1` keep reflecting, as NumPy does); an axis of length 1 behaves like `Edge`.
///
/// An axis of length 0 cannot be reflected or edge-padded; if the input is empty the whole output is
/// filled with the constant (0 for `Reflect`/`Edge`) rather than panicking.
pub fn pad(x: &[f32], shape: &[usize], pads: &[usize], mode: PadMode, y: &mut [f32]) {
    let rank = shape.len();
    debug_assert_eq!(pads.len(), 2 * rank, "pad: pads length");
    debug_assert_eq!(x.len(), shape.iter().product::<usize>(), "pad: input length");
    debug_assert_eq!(
        y.len(),
        (0..rank).map(|d| shape[d] + pads[d] + pads[rank + d]).product::<usize>(),
        "pad: output length"
    );
    if y.is_empty() {
        return;
    }
    let fill = match mode {
        PadMode::Constant(v) => v,
        PadMode::Reflect | PadMode::Edge => 0.0,
    };
    if x.is_empty() {
        y.fill(fill);
        return;
    }
    if rank == 0 {
        y[0] = x[0];
        return;
    }

    let last = rank - 1;
    let (n, begin, end) = (shape[last], pads[last], pads[rank + last]);
    let out_row = begin + n + end;
    // Input element strides and the running output coordinate of the current row (outer dims only).
    let mut in_strides = vec![1usize; rank];
    for d in (0..last).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    let mut idx = vec![0usize; last];

    for row in y.chunks_exact_mut(out_row) {
        // Map the row's outer coordinates to a source row; `None` means it lies in constant padding.
        let src = (0..last).try_fold(0usize, |off, d| {
            let i = idx[d] as isize - pads[d] as isize;
            map_index(i, shape[d], mode).map(|j| off + j * in_strides[d])
        });
        match src {
            None => row.fill(fill),
            Some(off) => {
                let xr = &x[off..off + n];
                let (head, rest) = row.split_at_mut(begin);
                let (mid, tail) = rest.split_at_mut(n);
                mid.copy_from_slice(xr);
                match mode {
                    PadMode::Constant(v) => {
                        head.fill(v);
                        tail.fill(v);
                    }
                    PadMode::Reflect | PadMode::Edge => {
                        for (k, v) in head.iter_mut().enumerate() {
                            let i = k as isize - begin as isize;
                            *v = map_index(i, n, mode).map_or(fill, |j| xr[j]);
                        }
                        for (k, v) in tail.iter_mut().enumerate() {
                            let i = (n + k) as isize;
                            *v = map_index(i, n, mode).map_or(fill, |j| xr[j]);
                        }
                    }
                }
            }
        }
        // Odometer increment over the outer output dims.
        for d in (0..last).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] + pads[d] + pads[rank + d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Maps a (possibly out-of-range) coordinate on an axis of length `n > 0` to a source coordinate, or
/// `None` if the position is constant padding.
#[inline]
fn map_index(i: isize, n: usize, mode: PadMode) -> Option<usize> {
    if (0..n as isize).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Constant(_) => None,
        PadMode::Edge => Some(if i < 0 { 0 } else { n - 1 }),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let period = 2 * (n as isize - 1);
            let m = i.rem_euclid(period);
            Some(if m < n as isize { m } else { period - m } as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference: for every output index, reflect/clamp per axis by repeated folding.
    fn naive(x: &[f32], shape: &[usize], pads: &[usize], mode: PadMode) -> Vec<f32> {
        let r = shape.len();
        let out: Vec<usize> = (0..r).map(|d| shape[d] + pads[d] + pads[r + d]).collect();
        let total: usize = out.iter().product();
        let mut y = Vec::with_capacity(total);
        for flat in 0..total {
            let mut rem = flat;
            let mut o = vec![0usize; r];
            for d in (0..r).rev() {
                o[d] = rem % out[d];
                rem /= out[d];
            }
            let mut src = 0usize;
            let mut constant = false;
            for d in 0..r {
                let n = shape[d] as i64;
                let mut i = o[d] as i64 - pads[d] as i64;
                match mode {
                    PadMode::Constant(_) => constant |= i < 0 || i >= n,
                    PadMode::Edge => i = i.clamp(0, n - 1),
                    PadMode::Reflect => {
                        // Fold back and forth until inside, like NumPy's iterative reflection.
                        while i < 0 || i >= n {
                            if n == 1 {
                                i = 0;
                            } else if i < 0 {
                                i = -i;
                            } else {
                                i = 2 * (n - 1) - i;
                            }
                        }
                    }
                }
                src = src * shape[d] + i.clamp(0, n - 1) as usize;
            }
            y.push(match mode {
                PadMode::Constant(v) if constant => v,
                _ => x[src],
            });
        }
        y
    }

    fn check(shape: &[usize], pads: &[usize]) {
        let len: usize = shape.iter().product();
        let x: Vec<f32> = (0..len).map(|i| i as f32 + 1.0).collect();
        for mode in [PadMode::Constant(-7.5), PadMode::Reflect, PadMode::Edge] {
            let want = naive(&x, shape, pads, mode);
            let mut got = vec![f32::NAN; want.len()];
            pad(&x, shape, pads, mode, &mut got);
            assert_eq!(got, want, "shape={shape:?} pads={pads:?} mode={mode:?}");
        }
    }

    #[test]
    fn pad_matches_naive() {
        check(&[5], &[2, 3]);
        check(&[3, 4], &[1, 2, 2, 1]);
        check(&[2, 3, 4, 5], &[0, 0, 1, 1, 0, 0, 1, 1]);
        check(&[2, 3, 4, 5], &[1, 2, 3, 0, 0, 1, 2, 4]);
        check(&[1, 1, 3, 3], &[0, 1, 2, 2, 1, 0, 2, 2]);
        check(&[2, 2], &[0, 0, 0, 0]);
    }

    #[test]
    fn pad_edge_cases() {
        // Reflect wider than the axis (NumPy keeps reflecting), and axes of length 1.
        check(&[3], &[5, 5]);
        check(&[2], &[3, 3]);
        check(&[1], &[2, 2]);
        check(&[1, 3], &[2, 4, 3, 1]);
        // Rank 0.
        check(&[], &[]);
        // Constant padding of an empty tensor.
        let mut y = vec![0.0; 6];
        pad(&[], &[0, 2], &[1, 0, 2, 0], PadMode::Constant(3.0), &mut y);
        assert_eq!(y, vec![3.0; 6]);
        // Empty output.
        let mut y: Vec<f32> = vec![];
        pad(&[], &[0, 2], &[0, 0, 0, 0], PadMode::Reflect, &mut y);
    }

    #[test]
    fn pad_known_values() {
        // Matches np.pad([1, 2, 3], 5, 'reflect').
        let mut y = [0.0; 13];
        pad(&[1.0, 2.0, 3.0], &[3], &[5, 5], PadMode::Reflect, &mut y);
        assert_eq!(y, [2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
        let mut y = [0.0; 7];
        pad(&[1.0, 2.0, 3.0], &[3], &[2, 2], PadMode::Edge, &mut y);
        assert_eq!(y, [1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
    }
}
