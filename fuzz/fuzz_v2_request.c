/* fuzz_v2_request.c — libFuzzer driver for ferry serve's request decoding: the JSON reader,
 * KServe v2 bodies (JSON and binary tensor data) and TF Serving :predict bodies, against a
 * signature with every kind of input. Whatever decodes is encoded back as an answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/codec.h"

static const int64_t dims_a[] = {-1, 4}, dims_b[] = {-1}, dims_d[] = {2, 2};
static ferry_io_info inputs[] = {
    {.name = "a", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F32, .rank = 2, .dims = dims_a},
    {.name = "b", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_I64, .rank = 1, .dims = dims_b},
    {.name = "c",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_STRING,
     .rank = 1,
     .dims = dims_b,
     .optional = 1},
    {.name = "d",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_BOOL,
     .rank = 2,
     .dims = dims_d,
     .optional = 1},
    {.name = "e", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F16, .rank = -1, .optional = 1},
    {.name = "f", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F64, .rank = -1, .optional = 1},
    {.name = "g", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_U8, .rank = -1, .optional = 1},
};
static ferry_io_info outputs[] = {
    {.name = "a", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F32, .rank = 2, .dims = dims_a},
    {.name = "c_bytes",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_STRING,
     .rank = 1,
     .dims = dims_b},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int mode = data[0] % 3;
    int64_t header_len = -1;
    if (mode == 1) header_len = (int64_t)(data[1] | data[2] << 8);
    data += 3;
    size -= 3;
    char *body = malloc(size + 1);
    if (!body) return 0;
    memcpy(body, data, size);
    sv_sig sig = {(int)(sizeof(inputs) / sizeof(inputs[0])), 2, inputs, outputs};
    sv_arena arena = {0};
    sv_decoded d;
    char err[512];
    int rc = mode == 2 ? sv_tfs_decode(&arena, body, size, &sig, &d, err, sizeof(err))
                       : sv_v2_decode(&arena, body, size, header_len, &sig, &d, err, sizeof(err));
    if (rc == 0 && d.n_inputs > 0) {
        /* Encode the inputs back as if they were the outputs. */
        sv_buf out = {0};
        int64_t json_len;
        if (mode == 2)
            sv_tfs_encode(&out, &d, d.n_inputs, d.input_names, d.inputs);
        else
            sv_v2_encode(&out, "m", 1, &d, d.n_inputs, d.input_names, d.inputs, &json_len);
        sv_buf_free(&out);
    }
    if (rc != 0 && !err[0]) abort(); /* every rejection must say why */
    sv_decoded_clear(&d);
    sv_arena_free(&arena);
    free(body);
    return 0;
}
