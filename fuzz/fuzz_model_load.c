/* fuzz_model_load.c — libFuzzer driver for the ONNX loader: arbitrary bytes must load or fail
 * with an error, never crash, leak or read out of bounds. When a model loads, one run on zero
 * inputs exercises the kernels' own validation too. Run: make fuzz FUZZ_SECONDS=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ferry.h"

static void try_run(ferry_model *m)
{
    int n = ferry_model_input_count(m), n_out = ferry_model_output_count(m);
    if (n > 8 || n_out > 8) return;
    ferry_value *in[8] = {0}, *out[8] = {0};
    const char *names[8];
    ferry_session *s = NULL;
    for (int i = 0; i < n; i++) {
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        if (io.kind != FERRY_VALUE_TENSOR || io.rank < 0 || io.dtype == FERRY_DTYPE_STRING) goto out;
        int64_t dims[FERRY_MAX_RANK], count = 1;
        for (int d = 0; d < io.rank; d++) {
            dims[d] = io.dims[d] >= 0 && io.dims[d] <= 16 ? io.dims[d] : 1;
            count *= dims[d];
        }
        if (count > 4096 || ferry_tensor_create(io.dtype, io.rank, dims, &in[i]) != FERRY_OK) goto out;
        memset(ferry_tensor_data(in[i]), 0, ferry_tensor_nbytes(in[i]));
        names[i] = io.name;
    }
    if (ferry_session_create(m, &(ferry_session_options){.threads = 1}, &s) == FERRY_OK)
        ferry_session_run(s, n, names, in, out);
out:
    for (int i = 0; i < 8; i++) {
        ferry_value_free(in[i]);
        ferry_value_free(out[i]);
    }
    ferry_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ferry_model *m = NULL;
    if (ferry_model_load_memory(data, size, "/nonexistent", &m) == FERRY_OK) {
        try_run(m);
        ferry_model_free(m);
    }
    return 0;
}
