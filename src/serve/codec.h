/* codec.h — request decoding and response encoding for ferry serve's two protocols, kept apart
 * from HTTP and the model manager so the unit tests and the fuzzer can drive them directly.
 * v2.c implements the KServe v2 half and the shared tensor helpers, tfs.c the TF Serving half. */
#ifndef FERRY_SERVE_CODEC_H
#define FERRY_SERVE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/ferry.h"
#include "serve/json.h"

/* A model's inputs and outputs as the decoders see them (from ferry_model_input/output). */
typedef struct sv_sig {
    int n_inputs, n_outputs;
    ferry_io_info *inputs, *outputs;
} sv_sig;

/* Fills sig from a loaded model; arrays come from a. Returns 0 or -1 (out of memory). */
int sv_sig_of(sv_arena *a, const ferry_model *m, sv_sig *sig);
/* Elements [from, from + n) of tensor t as JSON values separated by commas. */
void sv_put_elements(sv_buf *out, const ferry_value *t, int64_t from, int64_t n);

/* "FP32", "INT64", "BYTES"... for a ferry dtype (NULL when v2 has no name for it), and back
 * (FERRY_DTYPE_UNDEFINED when unknown). */
const char *sv_v2_dtype_name(ferry_dtype t);
ferry_dtype sv_v2_dtype_parse(const char *s);
/* "DT_FLOAT", "DT_INT64", "DT_STRING"... for TF Serving metadata. */
const char *sv_tfs_dtype_name(ferry_dtype t);

/* IEEE half and bfloat16 conversions (round to nearest even). */
uint16_t sv_f32_to_f16(float f);
float sv_f16_to_f32(uint16_t h);
uint16_t sv_f32_to_bf16(float f);
float sv_bf16_to_f32(uint16_t h);

/* Copies JSON data (nested arrays or flat, in row-major order) into t, converting each element
 * to t's dtype. Checks the element count, types and integer ranges; -1 with err on mismatch. */
int sv_fill_tensor(const sj_val *data, ferry_value *t, char *err, size_t errlen);
/* The same for elements [from, from + n) of t (one row of a stacked batch). */
int sv_fill_part(const sj_val *data, ferry_value *t, int64_t from, int64_t n, char *err,
                 size_t errlen);

/* A decoded inference request. Arrays live in the arena; values are owned by the caller. */
typedef struct sv_decoded {
    const char *id; /* v2 "id" or NULL */
    size_t id_len;
    int n_inputs;
    const char **input_names; /* the model's own name strings (stable while it is loaded) */
    ferry_value **inputs;
    int n_outputs; /* 0 = all */
    const char **output_names;
    uint8_t *output_binary; /* per requested output: answer in the binary section */
    int binary_default;     /* request parameters.binary_data_output */
    double timeout_s;       /* parameters.timeout (us) converted; 0 = none */
    int tfs_columnar;       /* TF Serving: 1 = "inputs" (answer "outputs") */
} sv_decoded;

/* Frees the values a (possibly partial) decode created. */
void sv_decoded_clear(sv_decoded *d);

/* v2 infer body: JSON, or JSON of header_len bytes followed by binary tensors (header_len >= 0).
 * Returns 0, or an HTTP status (400) with err filled. */
int sv_v2_decode(sv_arena *a, char *body, size_t len, int64_t header_len, const sv_sig *sig,
                 sv_decoded *d, char *err, size_t errlen);
/* v2 infer answer into out; *json_len receives the JSON part's length when a binary section
 * follows (else -1). */
void sv_v2_encode(sv_buf *out, const char *model, int64_t version, const sv_decoded *d,
                  int n_results, const char *const *names, ferry_value *const *results,
                  int64_t *json_len);

/* TF Serving :predict body ("instances" or "inputs"). Returns 0 or 400 with err. */
int sv_tfs_decode(sv_arena *a, char *body, size_t len, const sv_sig *sig, sv_decoded *d, char *err,
                  size_t errlen);
/* "predictions" (row) or "outputs" (columnar) as TF Serving writes them. */
void sv_tfs_encode(sv_buf *out, const sv_decoded *d, int n_results, const char *const *names,
                   ferry_value *const *results);

#endif
