//! Where the training plan's tensors live: storages (one `Vec<f32>` each) and row-strided views into them.
//!
//! Every tensor of a training plan has the batch as its first axis, so it is a matrix of `batch` rows and
//! `cols` = the product of its other dims. A [`View`] places it in a storage: element (r, c) at
//! `off + r·ld + c`. Ordinary tensors own a storage (`off = 0`, `ld = cols`); the activations a layer reads
//! through several matrices share a *feature arena*, one storage whose row holds each of them side by side,
//! so that a layer's concatenated input `a_cat` is one view (a column range of the arena), never a copy.
//! Gradients mirror the values: the gradient of a tensor has the same view in the gradient storages.
//!
//! This module owns that layout and the raw access to it. Steps borrow rows or whole strided matrices
//! through [`Mem`]. A whole matrix borrowed to write ([`Mem::mat_mut`]) may share a storage with what the
//! step reads (a layer writing its output into the feature arena it reads its inputs from), so a step
//! finishes reading any view that overlaps that storage (a product packs its A first) before it borrows it.

/// A tensor's place: storage, column offset and row stride, `cols` elements per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub store: usize,
    pub off: usize,
    pub ld: usize,
    pub cols: usize,
}

impl View {
    /// True when the rows follow each other with no gap (the tensor is one contiguous block).
    pub fn contiguous(&self) -> bool {
        self.ld == self.cols
    }
}

/// The storages of one pass (values or gradients), accessed through raw pointers so that a step can read
/// some views and write another of the same storage list at once.
pub struct Mem<'a> {
    ptrs: Vec<(*mut f32, usize)>,
    rows: usize,
    _life: std::marker::PhantomData<&'a mut [Vec<f32>]>,
}

// SAFETY: a Mem is only storage addresses; steps that run on several threads at once write disjoint rows
// (or disjoint channels) of their output views, and read only what no part writes (see `mat_mut`).
unsafe impl Sync for Mem<'_> {}

impl<'a> Mem<'a> {
    /// Takes the storages for the duration of a pass; every storage holds `rows · ld` elements.
    pub fn new(stores: &'a mut [Vec<f32>], rows: usize) -> Self {
        let ptrs = stores.iter_mut().map(|s| (s.as_mut_ptr(), s.len())).collect();
        Mem { ptrs, rows, _life: std::marker::PhantomData }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    fn span(&self, v: &View) -> (*mut f32, usize) {
        let (p, len) = self.ptrs[v.store];
        let n = if self.rows == 0 { 0 } else { (self.rows - 1) * v.ld + v.cols };
        assert!(v.off + n <= len, "view out of its storage");
        // SAFETY: in bounds by the assert.
        (unsafe { p.add(v.off) }, n)
    }

    /// Row `r` of `v`.
    pub fn row(&self, v: &View, r: usize) -> &[f32] {
        assert!(r < self.rows);
        let (p, _) = self.span(v);
        // SAFETY: row r lies inside the span checked by `span`; no `&mut` to it is live (rows of distinct
        // tensors are disjoint, and a step never writes the tensor it reads).
        unsafe { std::slice::from_raw_parts(p.add(r * v.ld), v.cols) }
    }

    /// Row `r` of `v`, to write.
    #[allow(clippy::mut_from_ref)]
    pub fn row_mut(&self, v: &View, r: usize) -> &mut [f32] {
        assert!(r < self.rows);
        let (p, _) = self.span(v);
        // SAFETY: as in `row`; the caller holds no other reference to this row (the plan gives each step
        // output a view disjoint from every view the step reads).
        unsafe { std::slice::from_raw_parts_mut(p.add(r * v.ld), v.cols) }
    }

    /// [`Mem::row_mut`] of a gradient to add into, zeroed first when `first` (the running step is the
    /// first to write it: see `BackCtx::overwrite`).
    pub fn grad_row(&self, v: &View, r: usize, first: bool) -> &mut [f32] {
        let row = self.row_mut(v, r);
        if first {
            row.fill(0.0);
        }
        row
    }

    /// The whole strided matrix of `v` as a slice starting at its first element (for GEMM with `ld`).
    pub fn mat(&self, v: &View) -> &[f32] {
        let (p, n) = self.span(v);
        // SAFETY: in bounds; read-only.
        unsafe { std::slice::from_raw_parts(p, n) }
    }

    /// The whole strided matrix of `v`, to write. The slice spans the rows of `v` and whatever lies between
    /// them in the storage, so the caller must hold no other borrow of that storage while it uses it:
    /// a product packs its A before it borrows its C, and its B is never in C's storage.
    #[allow(clippy::mut_from_ref)]
    pub fn mat_mut(&self, v: &View) -> &mut [f32] {
        let (p, n) = self.span(v);
        // SAFETY: in bounds; exclusive by the plan's construction (see the doc comment).
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }

    /// Zeroes the rows of `v`, split between the installed pool's threads when it is large.
    pub fn zero_view(&self, v: &View) {
        let threads = resin_runtime::parallel::current_threads();
        if v.contiguous() {
            return resin_runtime::parallel::for_chunks_mut(
                self.mat_mut(v),
                (self.rows * v.cols).div_ceil(threads).max(1 << 14),
                |_, c| c.fill(0.0),
            );
        }
        let per = self.rows.div_ceil(threads).max((1 << 14) / v.cols.max(1)).max(1);
        let rows = self.rows;
        resin_runtime::parallel::run(rows.div_ceil(per), &|p| {
            for r in p * per..((p + 1) * per).min(rows) {
                self.row_mut(v, r).fill(0.0);
            }
        });
    }
}
