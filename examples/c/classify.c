/*
 * classify: runs a compiled .resin classifier from C and prints the top-5 classes of every row.
 *
 *   classify MODEL.resin [INPUT.f32 [THREADS]]
 *
 * INPUT.f32 holds raw little-endian float32 values for the model's single input, row-major; its batch
 * size is the file's size divided by one sample's size. Without it (or with "-"), one synthetic sample
 * is made up. THREADS is the number of kernel threads (default 0: one per core).
 *
 * Build (from the repository root, after `cargo build --release`):
 *   cc examples/c/classify.c -I runtime/include -L target/release -lresin_runtime \
 *      -Wl,-rpath,"$PWD/target/release" -o classify
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resin.h"

#define TOP 5

static int fail(const char *what) {
    const char *msg = resin_last_error();
    fprintf(stderr, "error: %s: %s\n", what, msg ? msg : "(no message)");
    return 1;
}

/* Reads a whole file of float32 values; *n is their count. NULL on error (message printed). */
static float *read_floats(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        perror(path);
        fclose(f);
        return NULL;
    }
    long size = ftell(f);
    rewind(f);
    if (size < 0 || size % (long)sizeof(float) != 0) {
        fprintf(stderr, "error: %s: %ld bytes is not a whole number of float32 values\n", path, size);
        fclose(f);
        return NULL;
    }
    *n = (size_t)size / sizeof(float);
    float *data = malloc(*n ? (size_t)size : 1);
    if (!data || fread(data, sizeof(float), *n, f) != *n) {
        fprintf(stderr, "error: %s: cannot read %zu floats\n", path, *n);
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    return data;
}

/* Prints the TOP largest values of each row of a [rows, cols] tensor. */
static void print_top(const resin_tensor *t) {
    size_t rank = resin_tensor_rank(t);
    const size_t *shape = resin_tensor_shape(t);
    const float *data = resin_tensor_data(t);
    size_t len = resin_tensor_len(t);
    size_t cols = rank ? shape[rank - 1] : 1;
    size_t rows = cols ? len / cols : 0;
    for (size_t r = 0; r < rows; r++) {
        const float *row = data + r * cols;
        int taken[TOP];
        size_t k = cols < TOP ? cols : TOP;
        printf("row %zu:\n", r);
        for (size_t i = 0; i < k; i++) {
            size_t best = (size_t)-1;
            for (size_t c = 0; c < cols; c++) {
                int used = 0;
                for (size_t j = 0; j < i; j++) used |= (size_t)taken[j] == c;
                if (!used && (best == (size_t)-1 || row[c] > row[best])) best = c;
            }
            taken[i] = (int)best;
            printf("  %zu. class %zu  score %.5f\n", i + 1, best, row[best]);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.resin [INPUT.f32|- [THREADS]]\n", argv[0]);
        return 2;
    }
    size_t threads = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 0;

    resin_model *model = resin_model_load(argv[1]);
    if (!model) return fail("cannot load the model");
    if (resin_model_num_inputs(model) != 1) {
        fprintf(stderr, "error: this example handles models with one input, not %zu\n",
                resin_model_num_inputs(model));
        resin_model_free(model);
        return 1;
    }
    size_t n_out = resin_model_num_outputs(model);

    /* The input's shape; 0 marks the free batch dimension. */
    size_t rank = resin_model_input_rank(model, 0);
    const size_t *model_shape = resin_model_input_shape(model, 0);
    size_t shape[16];
    size_t sample = 1;
    if (rank > 16) {
        fprintf(stderr, "error: input rank %zu is too large for this example\n", rank);
        resin_model_free(model);
        return 1;
    }
    for (size_t d = 0; d < rank; d++) {
        shape[d] = model_shape[d];
        if (shape[d]) sample *= shape[d];
    }

    size_t n = 0;
    float *input = NULL;
    if (argc > 2 && strcmp(argv[2], "-") != 0) {
        input = read_floats(argv[2], &n);
        if (!input) {
            resin_model_free(model);
            return 1;
        }
        if (n == 0 || n % sample != 0) {
            fprintf(stderr, "error: %s: %zu floats is not a whole number of samples of %zu\n", argv[2], n, sample);
            free(input);
            resin_model_free(model);
            return 1;
        }
    } else {
        n = sample;
        input = malloc(n * sizeof(float));
        if (!input) {
            resin_model_free(model);
            return 1;
        }
        for (size_t i = 0; i < n; i++) input[i] = (float)((i * 7919) % 255) / 127.5f - 1.0f;
    }
    for (size_t d = 0; d < rank; d++)
        if (shape[d] == 0) shape[d] = n / sample;

    printf("model: %s\ninput '%s': [", argv[1], resin_model_input_name(model, 0));
    for (size_t d = 0; d < rank; d++) printf("%s%zu", d ? ", " : "", shape[d]);
    printf("]\n");

    int status = 1;
    resin_session *session = resin_session_new(model, threads);
    /* The session does not need the model any more. */
    resin_model_free(model);
    if (!session) {
        free(input);
        return fail("cannot create a session");
    }

    resin_tensor **outputs = calloc(n_out ? n_out : 1, sizeof *outputs);
    const float *inputs[1] = {input};
    const size_t *shapes[1] = {shape};
    size_t ranks[1] = {rank};
    size_t got = n_out;
    if (!outputs) {
        fprintf(stderr, "error: out of memory\n");
    } else if (resin_session_run(session, inputs, shapes, ranks, 1, outputs, &got) != RESIN_OK) {
        fail("run failed");
    } else {
        for (size_t k = 0; k < got; k++) {
            size_t r = resin_tensor_rank(outputs[k]);
            const size_t *s = resin_tensor_shape(outputs[k]);
            printf("output %zu: [", k);
            for (size_t d = 0; d < r; d++) printf("%s%zu", d ? ", " : "", s[d]);
            printf("]\n");
            print_top(outputs[k]);
            resin_tensor_free(outputs[k]);
        }
        status = 0;
    }
    free(outputs);
    resin_session_free(session);
    free(input);
    return status;
}
