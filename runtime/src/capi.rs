//! The C API (feature `capi`), declared in `runtime/include/resin.h` and built into
//! `libresin_runtime.so`.
//!
//! Three opaque types cross the boundary, each a `Box` handed out as a raw pointer and taken back by
//! its `_free` function: `resin_model` (a [`Model`] and its input and output names as C strings),
//! `resin_session` (a [`Session`]) and `resin_tensor` (an output [`Tensor`]).
//!
//! Every function catches panics (`catch_unwind`), so no unwinding crosses into C; a caught panic is
//! reported as an error like any other. Every pointer argument is checked for null. A failing call
//! returns `NULL` (or a non-zero code, or 0 for counts) and stores a message that
//! [`resin_last_error`] returns on the same thread.
//!
//! Outputs: the caller passes an array of `resin_tensor *` with its capacity in `*n_outputs`
//! ([`resin_model_num_outputs`] is enough); [`resin_session_run`] fills it with one new tensor per
//! model output, each owned by the caller (free it with [`resin_tensor_free`]) and independent of the
//! session, so outputs of several runs can be kept at once.

#![allow(non_camel_case_types)]

use crate::{Model, Session, Tensor};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;

/// Success.
pub const RESIN_OK: c_int = 0;
/// A null pointer, an index out of range or too small an output array.
pub const RESIN_ERR_ARGUMENT: c_int = 1;
/// The runtime refused the inputs (count, shape, size).
pub const RESIN_ERR_RUN: c_int = 2;
/// A panic inside the runtime (a bug), caught at the boundary.
pub const RESIN_ERR_PANIC: c_int = 3;

/// A loaded model (opaque to C).
pub struct resin_model {
    model: Model,
    input_names: Vec<CString>,
    output_names: Vec<CString>,
    /// Each input's shape, the free batch dimension as 0.
    input_shapes: Vec<Vec<usize>>,
}

/// A session (opaque to C).
pub struct resin_session {
    session: Session,
    n_outputs: usize,
}

/// An output tensor (opaque to C).
pub struct resin_tensor {
    tensor: Tensor,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_error(msg: impl Into<String>) {
    let mut msg = msg.into();
    msg.retain(|c| c != '\0');
    let c = CString::new(msg).unwrap_or_default();
    // A thread being torn down has no slot any more: the message is dropped.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(c));
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
    format!("internal error (panic): {}", what.as_deref().unwrap_or("unknown cause"))
}

/// Runs `f`, turning a panic into an error message and `on_panic`.
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            set_error(panic_message(&*p));
            on_panic
        }
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// The message of the last failed call on this thread, or NULL if none failed yet. Valid until the
/// next failing call on this thread.
#[no_mangle]
pub extern "C" fn resin_last_error() -> *const c_char {
    guard(ptr::null(), || {
        LAST_ERROR.try_with(|e| e.borrow().as_ref().map_or(ptr::null(), |c| c.as_ptr())).unwrap_or(ptr::null())
    })
}

/// Loads and checks a `.resin` file. NULL on error.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn resin_model_load(path: *const c_char) -> *mut resin_model {
    guard(ptr::null_mut(), || {
        if path.is_null() {
            set_error("resin_model_load: path is NULL");
            return ptr::null_mut();
        }
        // SAFETY: non-null, NUL-terminated by the caller's contract.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        #[cfg(unix)]
        let path: &Path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes).as_ref();
        #[cfg(not(unix))]
        let owned = String::from_utf8_lossy(bytes).into_owned();
        #[cfg(not(unix))]
        let path: &Path = owned.as_ref();
        match Model::load(path) {
            Ok(model) => {
                let input_names = model.input_names().into_iter().map(c_string).collect();
                let output_names = model.output_names().into_iter().map(c_string).collect();
                let input_shapes = (0..model.num_inputs()).map(|i| model.input_shape(i, 0).unwrap()).collect();
                Box::into_raw(Box::new(resin_model { model, input_names, output_names, input_shapes }))
            }
            Err(e) => {
                set_error(e.to_string());
                ptr::null_mut()
            }
        }
    })
}

/// Frees a model (NULL is ignored). Sessions made from it stay valid.
///
/// # Safety
/// `model` is NULL or a pointer from [`resin_model_load`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn resin_model_free(model: *mut resin_model) {
    guard((), || {
        if !model.is_null() {
            // SAFETY: from Box::into_raw, freed once by the caller's contract.
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

/// # Safety
/// `model` is NULL or a live model.
unsafe fn model_ref<'a>(model: *const resin_model, func: &str) -> Option<&'a resin_model> {
    if model.is_null() {
        set_error(format!("{func}: model is NULL"));
    }
    // SAFETY: a live model by the caller's contract.
    unsafe { model.as_ref() }
}

/// The number of inputs (0 if `model` is NULL).
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_model_num_inputs(model: *const resin_model) -> usize {
    guard(0, || unsafe { model_ref(model, "resin_model_num_inputs") }.map_or(0, |m| m.input_names.len()))
}

/// The number of outputs (0 if `model` is NULL).
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_model_num_outputs(model: *const resin_model) -> usize {
    guard(0, || unsafe { model_ref(model, "resin_model_num_outputs") }.map_or(0, |m| m.output_names.len()))
}

fn name_at(names: &[CString], i: usize, func: &str) -> *const c_char {
    match names.get(i) {
        Some(n) => n.as_ptr(),
        None => {
            set_error(format!("{func}: index {i} out of range (the model has {})", names.len()));
            ptr::null()
        }
    }
}

/// The name of input `i`, owned by the model; NULL if out of range.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_model_input_name(model: *const resin_model, i: usize) -> *const c_char {
    guard(ptr::null(), || {
        unsafe { model_ref(model, "resin_model_input_name") }
            .map_or(ptr::null(), |m| name_at(&m.input_names, i, "resin_model_input_name"))
    })
}

/// The name of output `i`, owned by the model; NULL if out of range.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_model_output_name(model: *const resin_model, i: usize) -> *const c_char {
    guard(ptr::null(), || {
        unsafe { model_ref(model, "resin_model_output_name") }
            .map_or(ptr::null(), |m| name_at(&m.output_names, i, "resin_model_output_name"))
    })
}

/// The rank of input `i` (0 if out of range).
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_model_input_rank(model: *const resin_model, i: usize) -> usize {
    guard(0, || {
        let Some(m) = (unsafe { model_ref(model, "resin_model_input_rank") }) else { return 0 };
        match m.input_shapes.get(i) {
            Some(s) => s.len(),
            None => {
                set_error(format!(
                    "resin_model_input_rank: index {i} out of range (the model has {})",
                    m.input_shapes.len()
                ));
                0
            }
        }
    })
}

/// The shape of input `i` (`resin_model_input_rank` elements, 0 for the free batch dimension), owned
/// by the model; NULL if out of range.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_model_input_shape(model: *const resin_model, i: usize) -> *const usize {
    guard(ptr::null(), || {
        let Some(m) = (unsafe { model_ref(model, "resin_model_input_shape") }) else { return ptr::null() };
        match m.input_shapes.get(i) {
            Some(s) => s.as_ptr(),
            None => {
                set_error(format!(
                    "resin_model_input_shape: index {i} out of range (the model has {})",
                    m.input_shapes.len()
                ));
                ptr::null()
            }
        }
    })
}

/// A session whose kernels use `threads` threads (0: one per core). NULL on error.
///
/// # Safety
/// `model` is NULL or a live model.
#[no_mangle]
pub unsafe extern "C" fn resin_session_new(model: *const resin_model, threads: usize) -> *mut resin_session {
    guard(ptr::null_mut(), || {
        let Some(m) = (unsafe { model_ref(model, "resin_session_new") }) else { return ptr::null_mut() };
        let session = if threads == 0 { m.model.session() } else { m.model.session_with_threads(threads) };
        match session {
            Ok(session) => Box::into_raw(Box::new(resin_session { session, n_outputs: m.output_names.len() })),
            Err(e) => {
                set_error(e.to_string());
                ptr::null_mut()
            }
        }
    })
}

/// Frees a session (NULL is ignored).
///
/// # Safety
/// `session` is NULL or a pointer from [`resin_session_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn resin_session_free(session: *mut resin_session) {
    guard((), || {
        if !session.is_null() {
            // SAFETY: from Box::into_raw, freed once by the caller's contract.
            drop(unsafe { Box::from_raw(session) });
        }
    })
}

/// Runs the model. Input `k` is `inputs[k]`, row-major, of shape `shapes[k][0..ranks[k]]`. On entry
/// `*n_outputs` is the capacity of `outputs`; on success `outputs[0..*n_outputs]` are new tensors
/// owned by the caller and the result is 0. On error nothing is allocated, `outputs` is untouched
/// (`*n_outputs` is set to the number of outputs needed if the array was too small) and the result
/// is non-zero.
///
/// # Safety
/// `session` is NULL or a live session; the arrays have the lengths said above, and `inputs[k]` holds
/// the product of its shape's elements.
#[no_mangle]
pub unsafe extern "C" fn resin_session_run(
    session: *mut resin_session,
    inputs: *const *const f32,
    shapes: *const *const usize,
    ranks: *const usize,
    n_inputs: usize,
    outputs: *mut *mut resin_tensor,
    n_outputs: *mut usize,
) -> c_int {
    guard(RESIN_ERR_PANIC, || {
        let fail = |msg: String| {
            set_error(format!("resin_session_run: {msg}"));
            RESIN_ERR_ARGUMENT
        };
        // SAFETY: a live session by the caller's contract.
        let Some(s) = (unsafe { session.as_mut() }) else { return fail("session is NULL".into()) };
        if outputs.is_null() || n_outputs.is_null() {
            return fail("outputs or n_outputs is NULL".into());
        }
        if n_inputs > 0 && (inputs.is_null() || shapes.is_null() || ranks.is_null()) {
            return fail("inputs, shapes or ranks is NULL".into());
        }
        let mut tensors = Vec::with_capacity(n_inputs);
        for k in 0..n_inputs {
            // SAFETY: arrays of n_inputs elements by the caller's contract.
            let (data, shape, rank) = unsafe { (*inputs.add(k), *shapes.add(k), *ranks.add(k)) };
            if shape.is_null() && rank > 0 {
                return fail(format!("shapes[{k}] is NULL"));
            }
            let shape: Vec<usize> =
                if rank == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(shape, rank) }.to_vec() };
            let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let len = match len {
                Some(n) if n <= isize::MAX as usize / 4 => n,
                _ => return fail(format!("input {k}: shape {shape:?} is too large")),
            };
            if data.is_null() && len > 0 {
                return fail(format!("inputs[{k}] is NULL"));
            }
            let data = if len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(data, len) }.to_vec() };
            tensors.push(Tensor { shape, data });
        }
        // SAFETY: checked non-null.
        let capacity = unsafe { *n_outputs };
        let needed = s.n_outputs;
        if capacity < needed {
            unsafe { *n_outputs = needed };
            return fail(format!("the output array holds {capacity} tensor(s), the model has {needed} output(s)"));
        }
        let refs: Vec<&Tensor> = tensors.iter().collect();
        match s.session.run(&refs) {
            Ok(outs) => {
                unsafe { *n_outputs = outs.len() };
                for (k, tensor) in outs.into_iter().enumerate() {
                    // SAFETY: capacity ≥ needed outputs, checked above.
                    unsafe { *outputs.add(k) = Box::into_raw(Box::new(resin_tensor { tensor })) };
                }
                RESIN_OK
            }
            Err(e) => {
                set_error(e.to_string());
                RESIN_ERR_RUN
            }
        }
    })
}

/// # Safety
/// `t` is NULL or a live tensor.
unsafe fn tensor_ref<'a>(t: *const resin_tensor, func: &str) -> Option<&'a Tensor> {
    if t.is_null() {
        set_error(format!("{func}: tensor is NULL"));
    }
    // SAFETY: a live tensor by the caller's contract.
    unsafe { t.as_ref() }.map(|t| &t.tensor)
}

/// The tensor's elements, row-major (`resin_tensor_len` of them), owned by the tensor.
///
/// # Safety
/// `t` is NULL or a live tensor.
#[no_mangle]
pub unsafe extern "C" fn resin_tensor_data(t: *const resin_tensor) -> *const f32 {
    guard(ptr::null(), || unsafe { tensor_ref(t, "resin_tensor_data") }.map_or(ptr::null(), |t| t.data.as_ptr()))
}

/// The number of elements (the product of the shape).
///
/// # Safety
/// `t` is NULL or a live tensor.
#[no_mangle]
pub unsafe extern "C" fn resin_tensor_len(t: *const resin_tensor) -> usize {
    guard(0, || unsafe { tensor_ref(t, "resin_tensor_len") }.map_or(0, |t| t.data.len()))
}

/// The rank (number of dimensions).
///
/// # Safety
/// `t` is NULL or a live tensor.
#[no_mangle]
pub unsafe extern "C" fn resin_tensor_rank(t: *const resin_tensor) -> usize {
    guard(0, || unsafe { tensor_ref(t, "resin_tensor_rank") }.map_or(0, |t| t.shape.len()))
}

/// The shape (`resin_tensor_rank` elements), owned by the tensor.
///
/// # Safety
/// `t` is NULL or a live tensor.
#[no_mangle]
pub unsafe extern "C" fn resin_tensor_shape(t: *const resin_tensor) -> *const usize {
    guard(ptr::null(), || unsafe { tensor_ref(t, "resin_tensor_shape") }.map_or(ptr::null(), |t| t.shape.as_ptr()))
}

/// Frees a tensor (NULL is ignored).
///
/// # Safety
/// `t` is NULL or a tensor from [`resin_session_run`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn resin_tensor_free(t: *mut resin_tensor) {
    guard((), || {
        if !t.is_null() {
            // SAFETY: from Box::into_raw, freed once by the caller's contract.
            drop(unsafe { Box::from_raw(t) });
        }
    })
}
