/*
 * resin.h: the C API of resin's CPU runtime (libresin_runtime.so, built by `cargo build --release`
 * with the `capi` feature of resin-runtime, which the resin workspace enables).
 *
 * Usage:
 *
 *     resin_model *model = resin_model_load("resnet20.resin");
 *     if (!model) { fprintf(stderr, "error: %s\n", resin_last_error()); return 1; }
 *     resin_session *session = resin_session_new(model, 0);      // 0: one kernel thread per core
 *     const float *inputs[1] = { pixels };                      // row-major float32
 *     size_t shape[4] = { 1, 3, 32, 32 };
 *     const size_t *shapes[1] = { shape };
 *     size_t ranks[1] = { 4 };
 *     resin_tensor *outputs[1];
 *     size_t n_outputs = 1;                                      // capacity of `outputs`
 *     if (resin_session_run(session, inputs, shapes, ranks, 1, outputs, &n_outputs) != RESIN_OK) { ... }
 *     const float *logits = resin_tensor_data(outputs[0]);     // shape: resin_tensor_shape(outputs[0])
 *     ...
 *     resin_tensor_free(outputs[0]);
 *     resin_session_free(session);
 *     resin_model_free(model);
 *
 * Conventions:
 *  - Errors: a failing function returns NULL (pointers), 0 (counts and sizes) or a non-zero code
 *    (resin_session_run), and records a message that resin_last_error() returns on the same thread.
 *    No function aborts or unwinds into C: internal panics are caught and reported as errors.
 *  - NULL arguments are checked: they are errors (the _free functions ignore NULL, like free()).
 *  - Ownership: every pointer returned by a _load, _new or _run function is owned by the caller and
 *    released by the matching _free function, exactly once. Strings and arrays returned by accessors
 *    are owned by the object they were read from and live as long as it does.
 *  - Threads: a resin_model is immutable and may be used by any number of threads at once (share one
 *    model, create one session per thread). A resin_session must not be used by two threads at the same
 *    time. A session does not borrow its model: the model may be freed before its sessions.
 *  - Sizes: shapes are arrays of size_t, row-major; tensors hold float32.
 */
#ifndef RESIN_H
#define RESIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes of resin_session_run. */
#define RESIN_OK 0           /* success */
#define RESIN_ERR_ARGUMENT 1 /* a NULL pointer, or an output array too small for the model's outputs */
#define RESIN_ERR_RUN 2      /* the runtime refused the inputs (count, shape or size; see resin_last_error) */
#define RESIN_ERR_PANIC 3    /* an internal error (a bug in resin), caught at the boundary */

/* A compiled model loaded from a .resin file (opaque). */
typedef struct resin_model resin_model;
/* A session: the kernels' thread pool and the buffers of one model, reused between runs (opaque). */
typedef struct resin_session resin_session;
/* An output tensor: float32 elements and their shape (opaque). */
typedef struct resin_tensor resin_tensor;

/* The message of the last failed call on this thread (NUL-terminated, UTF-8), or NULL if no call has
 * failed on this thread. Valid until the next failing call on this thread. */
const char *resin_last_error(void);

/* Loads a .resin file (memory-mapped: the weights are not copied) and checks it. NULL on error (missing
 * file, not a .resin file, corrupt or truncated file, unsupported version). The file must not be
 * modified in place while the model lives. */
resin_model *resin_model_load(const char *path);

/* Frees a model. NULL is ignored. Sessions created from it remain valid. */
void resin_model_free(resin_model *model);

/* The number of inputs and outputs of the model (0 if model is NULL). */
size_t resin_model_num_inputs(const resin_model *model);
size_t resin_model_num_outputs(const resin_model *model);

/* The name of input i / output i, owned by the model; NULL if i is out of range. */
const char *resin_model_input_name(const resin_model *model, size_t i);
const char *resin_model_output_name(const resin_model *model, size_t i);

/* The rank of input i (0 if out of range), and its shape: resin_model_input_rank(model, i) sizes, where
 * 0 marks the free batch dimension (any size >= 1, the same for every input of a run). The array is
 * owned by the model; NULL if i is out of range. */
size_t resin_model_input_rank(const resin_model *model, size_t i);
const size_t *resin_model_input_shape(const resin_model *model, size_t i);

/* A session running `model` with `threads` kernel threads (0: one per core). NULL on error. */
resin_session *resin_session_new(const resin_model *model, size_t threads);

/* Frees a session. NULL is ignored. */
void resin_session_free(resin_session *session);

/* Runs the model on n_inputs inputs, in the model's input order: input k is inputs[k], row-major
 * float32, of shape shapes[k][0 .. ranks[k]].
 *
 * `outputs` is an array of *n_outputs pointers, filled by the call: on entry *n_outputs is its capacity
 * (resin_model_num_outputs(model) is enough). On success the result is RESIN_OK (0), *n_outputs is the
 * number of outputs and outputs[0 .. *n_outputs] are new tensors, in the model's output order, each
 * owned by the caller (resin_tensor_free) and independent of the session and of later runs.
 * On error the result is non-zero, nothing is allocated and outputs is left as it was; if the array was
 * too small, *n_outputs is set to the capacity needed. */
int resin_session_run(resin_session *session, const float *const *inputs, const size_t *const *shapes,
                      const size_t *ranks, size_t n_inputs, resin_tensor **outputs, size_t *n_outputs);

/* A tensor's elements (row-major, resin_tensor_len of them) and shape (resin_tensor_rank sizes), owned
 * by the tensor. NULL / 0 if t is NULL. */
const float *resin_tensor_data(const resin_tensor *t);
size_t resin_tensor_len(const resin_tensor *t);
size_t resin_tensor_rank(const resin_tensor *t);
const size_t *resin_tensor_shape(const resin_tensor *t);

/* Frees a tensor. NULL is ignored. */
void resin_tensor_free(resin_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* RESIN_H */
