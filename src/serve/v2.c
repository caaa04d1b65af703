/* v2.c — the Open Inference Protocol (KServe v2) REST endpoints of ferry serve, the v2 request
 * decoder and answer encoder (JSON tensors and the binary tensor data extension), and the
 * tensor helpers both protocols share (datatype names, JSON → tensor, half floats). */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/codec.h"
#include "serve/http.h"
#include "serve/log.h"

/* ---- datatypes ----------------------------------------------------------------------------- */

static const struct {
    ferry_dtype t;
    const char *v2, *tfs;
} dtypes[] = {
    {FERRY_DTYPE_BOOL, "BOOL", "DT_BOOL"},      {FERRY_DTYPE_U8, "UINT8", "DT_UINT8"},
    {FERRY_DTYPE_U16, "UINT16", "DT_UINT16"},   {FERRY_DTYPE_U32, "UINT32", "DT_UINT32"},
    {FERRY_DTYPE_U64, "UINT64", "DT_UINT64"},   {FERRY_DTYPE_I8, "INT8", "DT_INT8"},
    {FERRY_DTYPE_I16, "INT16", "DT_INT16"},     {FERRY_DTYPE_I32, "INT32", "DT_INT32"},
    {FERRY_DTYPE_I64, "INT64", "DT_INT64"},     {FERRY_DTYPE_F16, "FP16", "DT_HALF"},
    {FERRY_DTYPE_F32, "FP32", "DT_FLOAT"},      {FERRY_DTYPE_F64, "FP64", "DT_DOUBLE"},
    {FERRY_DTYPE_STRING, "BYTES", "DT_STRING"}, {FERRY_DTYPE_BF16, "BF16", "DT_BFLOAT16"},
};
enum { N_DTYPES = (int)(sizeof(dtypes) / sizeof(dtypes[0])) };

const char *sv_v2_dtype_name(ferry_dtype t)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].t == t) return dtypes[i].v2;
    return NULL;
}

const char *sv_tfs_dtype_name(ferry_dtype t)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].t == t) return dtypes[i].tfs;
    return "DT_INVALID";
}

ferry_dtype sv_v2_dtype_parse(const char *s)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].v2, s) == 0) return dtypes[i].t;
    return FERRY_DTYPE_UNDEFINED;
}

uint16_t sv_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xFF, m = x & 0x7FFFFF;
    if (e == 0xFF) return (uint16_t)(sign | 0x7C00 | (m ? 0x200 : 0));
    int ne = (int)e - 127 + 15;
    if (ne >= 0x1F) return (uint16_t)(sign | 0x7C00);
    if (ne <= 0) {
        if (ne < -10) return (uint16_t)sign;
        m |= 0x800000;
        int shift = 14 - ne;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1))) hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1FFF;
    uint32_t r = sign | ((uint32_t)ne << 10) | hm;
    if (rem > 0x1000 || (rem == 0x1000 && (hm & 1))) r++;
    return (uint16_t)r;
}

float sv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, x;
    if (e == 0) {
        if (!m) {
            x = sign;
        } else {
            e = 127 - 15 + 1;
            while (!(m & 0x400)) {
                m <<= 1;
                e--;
            }
            x = sign | (e << 23) | ((m & 0x3FF) << 13);
        }
    } else if (e == 0x1F) {
        x = sign | 0x7F800000 | (m << 13);
    } else {
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t sv_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

float sv_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- JSON → tensor ------------------------------------------------------------------------- */

typedef struct fill_ctx fill_ctx;
static int fill_rec(fill_ctx *f, const sj_val *arr);

struct fill_ctx {
    ferry_value *t;
    ferry_dtype dt;
    unsigned char *data;
    int64_t pos, count;
    char *err;
    size_t errlen;
};

static int fill_fail(fill_ctx *f, const char *what)
{
    snprintf(f->err, f->errlen, "element %lld: %s", (long long)f->pos, what);
    return -1;
}

/* Base64 (standard or URL-safe alphabet, padding optional) for TF Serving's {"b64": ...}. */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t *out_len)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else if (c == '=')
            break;
        else
            return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = o;
    return 0;
}

static int fill_scalar(fill_ctx *f, const sj_val *v)
{
    if (f->pos >= f->count) return fill_fail(f, "more data than the shape holds");
    int64_t i = f->pos;
    if (f->dt == FERRY_DTYPE_STRING) {
        const char *s;
        size_t n;
        unsigned char *dec = NULL;
        const sj_val *b64 = v->type == SJ_OBJ ? sj_get(v, "b64") : NULL;
        if (b64 && b64->type == SJ_STR) {
            dec = malloc(b64->n + 1);
            if (!dec) return fill_fail(f, "out of memory");
            if (b64_decode(b64->u.s, b64->n, dec, &n) != 0) {
                free(dec);
                return fill_fail(f, "invalid base64 in {\"b64\": ...}");
            }
            s = (const char *)dec;
        } else if (v->type == SJ_STR) {
            s = v->u.s;
            n = v->n;
        } else {
            return fill_fail(f, "expected a string for BYTES");
        }
        ferry_status rc = ferry_tensor_set_string(f->t, i, s, n);
        free(dec);
        if (rc != FERRY_OK) return fill_fail(f, "could not store the string");
        f->pos++;
        return 0;
    }
    if (f->dt == FERRY_DTYPE_BOOL) {
        if (v->type == SJ_TRUE || v->type == SJ_FALSE)
            f->data[i] = v->type == SJ_TRUE;
        else if (v->type == SJ_NUM && (v->u.d == 0 || v->u.d == 1))
            f->data[i] = v->u.d == 1;
        else
            return fill_fail(f, "expected true or false for BOOL");
        f->pos++;
        return 0;
    }
    if (v->type != SJ_NUM) return fill_fail(f, "expected a number");
    double d = v->u.d;
    switch (f->dt) {
    case FERRY_DTYPE_F32: ((float *)f->data)[i] = (float)d; break;
    case FERRY_DTYPE_F64: ((double *)f->data)[i] = v->approx ? sj_exact(v) : d; break;
    case FERRY_DTYPE_F16: ((uint16_t *)f->data)[i] = sv_f32_to_f16((float)d); break;
    case FERRY_DTYPE_BF16: ((uint16_t *)f->data)[i] = sv_f32_to_bf16((float)d); break;
    default: {
        /* Integers: exact when written as integers; integral doubles are accepted too. */
        int64_t iv;
        if (v->is_int) {
            iv = v->i;
        } else if (d == floor(d) && d >= -9.2233720368547758e18 && d < 9.2233720368547758e18) {
            iv = (int64_t)d;
        } else if (f->dt == FERRY_DTYPE_U64 && d == floor(d) && d >= 0 &&
                   d < 1.8446744073709552e19) {
            ((uint64_t *)f->data)[i] = (uint64_t)d;
            break;
        } else {
            return fill_fail(f, "expected an integer");
        }
        int64_t lo, hi;
        switch (f->dt) {
        case FERRY_DTYPE_I8: lo = INT8_MIN, hi = INT8_MAX; break;
        case FERRY_DTYPE_I16: lo = INT16_MIN, hi = INT16_MAX; break;
        case FERRY_DTYPE_I32: lo = INT32_MIN, hi = INT32_MAX; break;
        case FERRY_DTYPE_I64: lo = INT64_MIN, hi = INT64_MAX; break;
        case FERRY_DTYPE_U8: lo = 0, hi = UINT8_MAX; break;
        case FERRY_DTYPE_U16: lo = 0, hi = UINT16_MAX; break;
        case FERRY_DTYPE_U32: lo = 0, hi = UINT32_MAX; break;
        case FERRY_DTYPE_U64: lo = 0, hi = INT64_MAX; break;
        default: return fill_fail(f, "this datatype cannot be sent as JSON");
        }
        if (iv < lo || iv > hi) return fill_fail(f, "integer out of range for the datatype");
        switch (f->dt) {
        case FERRY_DTYPE_I8: ((int8_t *)f->data)[i] = (int8_t)iv; break;
        case FERRY_DTYPE_I16: ((int16_t *)f->data)[i] = (int16_t)iv; break;
        case FERRY_DTYPE_I32: ((int32_t *)f->data)[i] = (int32_t)iv; break;
        case FERRY_DTYPE_I64: ((int64_t *)f->data)[i] = iv; break;
        case FERRY_DTYPE_U8: ((uint8_t *)f->data)[i] = (uint8_t)iv; break;
        case FERRY_DTYPE_U16: ((uint16_t *)f->data)[i] = (uint16_t)iv; break;
        case FERRY_DTYPE_U32: ((uint32_t *)f->data)[i] = (uint32_t)iv; break;
        default: ((uint64_t *)f->data)[i] = (uint64_t)iv; break;
        }
    }
    }
    f->pos++;
    return 0;
}

static int fill_packed(fill_ctx *f, const sj_val *arr)
{
    if (arr->approx &&
        (f->dt == FERRY_DTYPE_F64 || f->dt == FERRY_DTYPE_I64 || f->dt == FERRY_DTYPE_U64)) {
        /* Some values were only parsed to within an ulp: read the text again, exactly. */
        char *copy = malloc(arr->txtlen);
        if (!copy) return fill_fail(f, "out of memory");
        memcpy(copy, arr->txt, arr->txtlen);
        sv_arena a = {0};
        sj_val *exact;
        char e2[128];
        int rc = sj_parse_unpacked(&a, copy, arr->txtlen, &exact, e2, sizeof(e2)) == 0
                     ? fill_rec(f, exact)
                     : fill_fail(f, "could not re-read a number");
        sv_arena_free(&a);
        free(copy);
        return rc;
    }
    if (f->dt == FERRY_DTYPE_F32) {
        if ((int64_t)arr->n > f->count - f->pos)
            return fill_fail(f, "more data than the shape holds");
        float *p = (float *)f->data + f->pos;
        for (uint32_t i = 0; i < arr->n; i++)
            p[i] = (float)arr->u.nums[i];
        f->pos += arr->n;
        return 0;
    }
    for (uint32_t i = 0; i < arr->n; i++) {
        double d = arr->u.nums[i];
        sj_val num = {.type = SJ_NUM};
        num.u.d = d;
        if (d == floor(d) && d >= -9.2233720368547758e18 && d < 9.2233720368547758e18) {
            num.is_int = 1;
            num.i = (int64_t)d;
        }
        if (fill_scalar(f, &num)) return -1;
    }
    return 0;
}

static int fill_rec(fill_ctx *f, const sj_val *arr)
{
    if (arr->packed) return fill_packed(f, arr);
    const sj_val *m = arr->u.first;
    if (f->dt == FERRY_DTYPE_F32) {
        /* The common case (a flat run of numbers into FP32) without a call per element. */
        float *p = (float *)f->data;
        while (m && m->type == SJ_NUM && f->pos < f->count) {
            p[f->pos++] = (float)m->u.d;
            m = m->next;
        }
    }
    for (; m; m = m->next) {
        int rc = m->type == SJ_ARR ? fill_rec(f, m) : fill_scalar(f, m);
        if (rc) return rc;
    }
    return 0;
}

int sv_fill_part(const sj_val *data, ferry_value *t, int64_t from, int64_t n, char *err,
                 size_t errlen)
{
    fill_ctx f = {.t = t,
                  .dt = ferry_tensor_dtype(t),
                  .data = ferry_tensor_data(t),
                  .pos = from,
                  .count = from + n,
                  .err = err,
                  .errlen = errlen};
    int rc = data->type == SJ_ARR ? fill_rec(&f, data) : fill_scalar(&f, data);
    if (rc) return rc;
    if (f.pos != f.count) {
        snprintf(err, errlen, "data has %lld elements, the shape holds %lld",
                 (long long)(f.pos - from), (long long)n);
        return -1;
    }
    return 0;
}

int sv_fill_tensor(const sj_val *data, ferry_value *t, char *err, size_t errlen)
{
    return sv_fill_part(data, t, 0, ferry_tensor_count(t), err, errlen);
}

void sv_decoded_clear(sv_decoded *d)
{
    for (int i = 0; i < d->n_inputs; i++) {
        ferry_value_free(d->inputs[i]);
        d->inputs[i] = NULL;
    }
    d->n_inputs = 0;
}

/* ---- v2 request ---------------------------------------------------------------------------- */

static int find_io(const ferry_io_info *ios, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ios[i].name, name) == 0) return i;
    return -1;
}

static void list_names(char *buf, size_t len, const ferry_io_info *ios, int n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 4 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", ios[i].name);
}

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 400;
}

static int param_bool(const sj_val *params, const char *key, int *out)
{
    const sj_val *v = sj_get(params, key);
    if (!v) return 0;
    if (v->type != SJ_TRUE && v->type != SJ_FALSE) return -1;
    *out = v->type == SJ_TRUE;
    return 1;
}

/* Reads a binary tensor of nbytes from the section after the JSON header. */
static int take_binary(ferry_value *t, const unsigned char **bin, size_t *left, int64_t nbytes,
                       const char *name, char *err, size_t errlen)
{
    if (nbytes < 0 || (uint64_t)nbytes > *left)
        return bad(err, errlen,
                   "input '%s': binary_data_size %lld exceeds the %zu bytes of binary "
                   "data left in the body",
                   name, (long long)nbytes, *left);
    const unsigned char *p = *bin;
    if (ferry_tensor_dtype(t) == FERRY_DTYPE_STRING) {
        int64_t count = ferry_tensor_count(t), off = 0;
        for (int64_t i = 0; i < count; i++) {
            if (nbytes - off < 4)
                return bad(err, errlen, "input '%s': BYTES element %lld is truncated", name,
                           (long long)i);
            uint32_t n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                         (uint32_t)p[off + 3] << 24;
            off += 4;
            if ((uint64_t)(nbytes - off) < n)
                return bad(err, errlen, "input '%s': BYTES element %lld is truncated", name,
                           (long long)i);
            if (ferry_tensor_set_string(t, i, (const char *)p + off, n) != FERRY_OK)
                return bad(err, errlen, "input '%s': could not store element %lld", name,
                           (long long)i);
            off += n;
        }
        if (off != nbytes)
            return bad(err, errlen,
                       "input '%s': binary_data_size %lld does not match its %lld "
                       "BYTES elements",
                       name, (long long)nbytes, (long long)count);
    } else {
        if ((uint64_t)nbytes != ferry_tensor_nbytes(t))
            return bad(err, errlen,
                       "input '%s': binary_data_size is %lld bytes, the shape and "
                       "datatype need %zu",
                       name, (long long)nbytes, ferry_tensor_nbytes(t));
        if (nbytes) memcpy(ferry_tensor_data(t), p, (size_t)nbytes);
    }
    *bin += nbytes;
    *left -= (size_t)nbytes;
    return 0;
}

/* The binary extension's raw form (Inference-Header-Content-Length: 0): the whole body is the
 * one input's tensor at batch 1, and every output comes back binary. The input's shape must be
 * known apart from a leading batch dimension. */
static int decode_raw(sv_arena *a, const char *body, size_t len, const sv_sig *sig, sv_decoded *d,
                      char *err, size_t errlen)
{
    if (sig->n_inputs != 1)
        return bad(err, errlen,
                   "a raw binary body (Inference-Header-Content-Length: 0) needs a "
                   "model with one input; this one has %d",
                   sig->n_inputs);
    const ferry_io_info *io = &sig->inputs[0];
    if (io->rank < 0 || io->dtype == FERRY_DTYPE_STRING || !ferry_dtype_size(io->dtype))
        return bad(err, errlen,
                   "a raw binary body needs an input of known shape and a fixed-size "
                   "datatype; send a JSON header instead");
    int64_t dims[FERRY_MAX_RANK];
    for (int j = 0; j < io->rank; j++) {
        dims[j] = io->dims[j];
        if (dims[j] < 0 && j == 0) dims[j] = 1;
        if (dims[j] < 0)
            return bad(err, errlen,
                       "a raw binary body cannot say the size of dim %d of input "
                       "'%s'; send a JSON header instead",
                       j, io->name);
    }
    d->input_names = sv_arena_alloc(a, sizeof(char *));
    d->inputs = sv_arena_alloc(a, sizeof(ferry_value *));
    if (!d->input_names || !d->inputs) return bad(err, errlen, "out of memory");
    ferry_value *t;
    if (ferry_tensor_create(io->dtype, io->rank, dims, &t) != FERRY_OK)
        return bad(err, errlen, "input '%s': %s", io->name, ferry_last_error());
    d->input_names[0] = io->name;
    d->inputs[0] = t;
    d->n_inputs = 1;
    if (len != ferry_tensor_nbytes(t))
        return bad(err, errlen, "raw binary body has %zu bytes, input '%s' at batch 1 needs %zu",
                   len, io->name, ferry_tensor_nbytes(t));
    if (len) memcpy(ferry_tensor_data(t), body, len);
    d->binary_default = 1;
    return 0;
}

int sv_v2_decode(sv_arena *a, char *body, size_t len, int64_t header_len, const sv_sig *sig,
                 sv_decoded *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    size_t jlen = len;
    if (header_len == 0) return decode_raw(a, body, len, sig, d, err, errlen);
    if (header_len > 0) {
        if ((uint64_t)header_len > len)
            return bad(err, errlen,
                       "Inference-Header-Content-Length %lld is larger than the body "
                       "(%zu bytes)",
                       (long long)header_len, len);
        jlen = (size_t)header_len;
    }
    if (!body || jlen == 0) return bad(err, errlen, "empty request body; expected a JSON object");
    sj_val *root;
    if (sj_parse(a, body, jlen, &root, err, errlen) != 0) return 400;
    if (root->type != SJ_OBJ) return bad(err, errlen, "the request must be a JSON object");
    const unsigned char *bin = (const unsigned char *)body + jlen;
    size_t bin_left = len - jlen;

    const sj_val *id = sj_get(root, "id");
    if (id) {
        if (id->type != SJ_STR) return bad(err, errlen, "\"id\" must be a string");
        d->id = id->u.s;
        d->id_len = id->n;
    }
    const sj_val *params = sj_get(root, "parameters");
    if (params) {
        if (params->type != SJ_OBJ) return bad(err, errlen, "\"parameters\" must be an object");
        if (param_bool(params, "binary_data_output", &d->binary_default) < 0)
            return bad(err, errlen, "parameters.binary_data_output must be true or false");
        const sj_val *t = sj_get(params, "timeout");
        if (t) {
            if (t->type != SJ_NUM || !(t->u.d > 0) || t->u.d > 1e15)
                return bad(err, errlen,
                           "parameters.timeout must be a positive number of microseconds");
            d->timeout_s = t->u.d * 1e-6;
        }
    }
    const sj_val *inputs = sj_get(root, "inputs");
    if (!inputs || inputs->type != SJ_ARR || inputs->n == 0)
        return bad(err, errlen, "\"inputs\" must be a non-empty array");
    if (inputs->n > (uint32_t)sig->n_inputs)
        return bad(err, errlen, "%u inputs given, the model has %d", inputs->n, sig->n_inputs);
    int n = (int)inputs->n;
    d->input_names = sv_arena_alloc(a, sizeof(char *) * (size_t)n);
    d->inputs = sv_arena_alloc(a, sizeof(ferry_value *) * (size_t)n);
    if (!d->input_names || !d->inputs) return bad(err, errlen, "out of memory");
    char names[512];
    for (const sj_val *in = inputs->u.first; in; in = in->next) {
        if (in->type != SJ_OBJ) return bad(err, errlen, "each input must be an object");
        const sj_val *name = sj_get(in, "name");
        if (!name || name->type != SJ_STR) return bad(err, errlen, "an input has no \"name\"");
        int k = find_io(sig->inputs, sig->n_inputs, name->u.s);
        if (k < 0) {
            list_names(names, sizeof(names), sig->inputs, sig->n_inputs);
            return bad(err, errlen, "unknown input '%s'; the model's inputs are: %s", name->u.s,
                       names);
        }
        const ferry_io_info *io = &sig->inputs[k];
        for (int j = 0; j < d->n_inputs; j++)
            if (d->input_names[j] == io->name)
                return bad(err, errlen, "input '%s' is given twice", io->name);
        const sj_val *dt = sj_get(in, "datatype");
        if (!dt || dt->type != SJ_STR)
            return bad(err, errlen, "input '%s' has no \"datatype\"", io->name);
        ferry_dtype t = sv_v2_dtype_parse(dt->u.s);
        if (t == FERRY_DTYPE_UNDEFINED)
            return bad(err, errlen, "input '%s': unknown datatype '%s'", io->name, dt->u.s);
        if (t != io->dtype)
            return bad(err, errlen, "input '%s' has datatype %s, the model expects %s", io->name,
                       dt->u.s, sv_v2_dtype_name(io->dtype) ? sv_v2_dtype_name(io->dtype) : "?");
        const sj_val *shape = sj_get(in, "shape");
        if (!shape || shape->type != SJ_ARR)
            return bad(err, errlen, "input '%s' has no \"shape\" array", io->name);
        if (shape->n > FERRY_MAX_RANK)
            return bad(err, errlen, "input '%s': shape has %u dims, at most %d", io->name, shape->n,
                       FERRY_MAX_RANK);
        int64_t dims[FERRY_MAX_RANK];
        int rank = 0;
        uint64_t count = 1;
        for (const sj_val *s = shape->u.first; s; s = s->next) {
            if (s->type != SJ_NUM || !s->is_int || s->i < 0 || s->i > ((int64_t)1 << 40))
                return bad(err, errlen, "input '%s': shape must hold non-negative integers",
                           io->name);
            dims[rank++] = s->i;
            count *= (uint64_t)s->i;
            if (count > ((uint64_t)1 << 40))
                return bad(err, errlen, "input '%s': shape is too large", io->name);
        }
        if (io->rank >= 0) {
            if (rank != io->rank)
                return bad(err, errlen, "input '%s' has %d dims, the model expects %d", io->name,
                           rank, io->rank);
            for (int j = 0; j < rank; j++)
                if (io->dims[j] >= 0 && io->dims[j] != dims[j])
                    return bad(err, errlen, "input '%s': dim %d is %lld, the model expects %lld",
                               io->name, j, (long long)dims[j], (long long)io->dims[j]);
        }
        const sj_val *ip = sj_get(in, "parameters");
        const sj_val *bsize = ip && ip->type == SJ_OBJ ? sj_get(ip, "binary_data_size") : NULL;
        const sj_val *data = sj_get(in, "data");
        if (!bsize && !data)
            return bad(err, errlen,
                       "input '%s' has neither \"data\" nor parameters.binary_data_size", io->name);
        /* Element count against what the body can hold, before allocating: every JSON element
         * takes at least one byte, every binary one at least one (or four for BYTES). */
        if (count > (uint64_t)len + 1 && !(count == 0))
            return bad(err, errlen,
                       "input '%s': shape holds %llu elements, more than the body "
                       "carries",
                       io->name, (unsigned long long)count);
        ferry_value *tv;
        if (ferry_tensor_create(t, rank, dims, &tv) != FERRY_OK)
            return bad(err, errlen, "input '%s': %s", io->name, ferry_last_error());
        d->input_names[d->n_inputs] = io->name;
        d->inputs[d->n_inputs++] = tv;
        if (bsize) {
            if (bsize->type != SJ_NUM || !bsize->is_int)
                return bad(err, errlen, "input '%s': binary_data_size must be an integer",
                           io->name);
            int rc = take_binary(tv, &bin, &bin_left, bsize->i, io->name, err, errlen);
            if (rc) return rc;
        } else {
            char e2[256];
            if (sv_fill_tensor(data, tv, e2, sizeof(e2)) != 0)
                return bad(err, errlen, "input '%s': %s", io->name, e2);
        }
    }
    if (bin_left)
        return bad(err, errlen,
                   "%zu bytes of binary data follow the JSON header but no input "
                   "claims them (binary_data_size)",
                   bin_left);
    for (int k = 0; k < sig->n_inputs; k++) {
        if (sig->inputs[k].optional) continue;
        int found = 0;
        for (int j = 0; j < d->n_inputs; j++)
            found |= d->input_names[j] == sig->inputs[k].name;
        if (!found) return bad(err, errlen, "missing input '%s'", sig->inputs[k].name);
    }
    const sj_val *outs = sj_get(root, "outputs");
    if (outs) {
        if (outs->type != SJ_ARR) return bad(err, errlen, "\"outputs\" must be an array");
        if (outs->n > (uint32_t)sig->n_outputs)
            return bad(err, errlen, "%u outputs requested, the model has %d", outs->n,
                       sig->n_outputs);
        d->output_names = sv_arena_alloc(a, sizeof(char *) * (outs->n + 1));
        d->output_binary = sv_arena_alloc(a, outs->n + 1);
        if (!d->output_names || !d->output_binary) return bad(err, errlen, "out of memory");
        for (const sj_val *o = outs->u.first; o; o = o->next) {
            const sj_val *name = o->type == SJ_OBJ ? sj_get(o, "name") : NULL;
            if (!name || name->type != SJ_STR)
                return bad(err, errlen, "each requested output needs a \"name\"");
            int k = find_io(sig->outputs, sig->n_outputs, name->u.s);
            if (k < 0) {
                list_names(names, sizeof(names), sig->outputs, sig->n_outputs);
                return bad(err, errlen, "unknown output '%s'; the model's outputs are: %s",
                           name->u.s, names);
            }
            for (int j = 0; j < d->n_outputs; j++)
                if (d->output_names[j] == sig->outputs[k].name)
                    return bad(err, errlen, "output '%s' is requested twice", name->u.s);
            int binary = d->binary_default;
            const sj_val *op = sj_get(o, "parameters");
            if (op && (op->type != SJ_OBJ || param_bool(op, "binary_data", &binary) < 0))
                return bad(err, errlen, "output '%s': parameters.binary_data must be true or false",
                           name->u.s);
            d->output_binary[d->n_outputs] = (uint8_t)binary;
            d->output_names[d->n_outputs++] = sig->outputs[k].name;
        }
    }
    return 0;
}

/* ---- v2 answer ----------------------------------------------------------------------------- */

static void put_shape(sv_buf *out, const ferry_value *t)
{
    sv_buf_putc(out, '[');
    for (int i = 0; i < ferry_tensor_rank(t); i++) {
        if (i) sv_buf_putc(out, ',');
        sv_buf_i64(out, ferry_tensor_dims(t)[i]);
    }
    sv_buf_putc(out, ']');
}

void sv_put_elements(sv_buf *out, const ferry_value *t, int64_t from, int64_t n)
{
    const void *p = ferry_tensor_cdata(t);
    ferry_dtype dt = ferry_tensor_dtype(t);
    sv_buf_reserve(out, (size_t)n * 12);
    for (int64_t i = from; i < from + n; i++) {
        if (i > from) sv_buf_putc(out, ',');
        switch (dt) {
        case FERRY_DTYPE_F32: sv_buf_f32(out, ((const float *)p)[i]); break;
        case FERRY_DTYPE_F64: sv_buf_f64(out, ((const double *)p)[i]); break;
        case FERRY_DTYPE_F16: sv_buf_f32(out, sv_f16_to_f32(((const uint16_t *)p)[i])); break;
        case FERRY_DTYPE_BF16: sv_buf_f32(out, sv_bf16_to_f32(((const uint16_t *)p)[i])); break;
        case FERRY_DTYPE_I8: sv_buf_i64(out, ((const int8_t *)p)[i]); break;
        case FERRY_DTYPE_I16: sv_buf_i64(out, ((const int16_t *)p)[i]); break;
        case FERRY_DTYPE_I32: sv_buf_i64(out, ((const int32_t *)p)[i]); break;
        case FERRY_DTYPE_I64: sv_buf_i64(out, ((const int64_t *)p)[i]); break;
        case FERRY_DTYPE_U8: sv_buf_u64(out, ((const uint8_t *)p)[i]); break;
        case FERRY_DTYPE_U16: sv_buf_u64(out, ((const uint16_t *)p)[i]); break;
        case FERRY_DTYPE_U32: sv_buf_u64(out, ((const uint32_t *)p)[i]); break;
        case FERRY_DTYPE_U64: sv_buf_u64(out, ((const uint64_t *)p)[i]); break;
        case FERRY_DTYPE_BOOL: sv_buf_puts(out, ((const uint8_t *)p)[i] ? "true" : "false"); break;
        case FERRY_DTYPE_STRING: {
            const char *s = ((char *const *)p)[i];
            sv_buf_json_str(out, s, strlen(s));
            break;
        }
        default: sv_buf_puts(out, "null"); break;
        }
    }
}

static int output_is_binary(const sv_decoded *d, const char *name)
{
    for (int i = 0; i < d->n_outputs; i++)
        if (strcmp(d->output_names[i], name) == 0) return d->output_binary[i];
    return d->binary_default;
}

static size_t binary_size(const ferry_value *t)
{
    if (ferry_tensor_dtype(t) != FERRY_DTYPE_STRING) return ferry_tensor_nbytes(t);
    size_t n = 0;
    char *const *s = ferry_tensor_cdata(t);
    for (int64_t i = 0; i < ferry_tensor_count(t); i++)
        n += 4 + strlen(s[i]);
    return n;
}

void sv_v2_encode(sv_buf *out, const char *model, int64_t version, const sv_decoded *d,
                  int n_results, const char *const *names, ferry_value *const *results,
                  int64_t *json_len)
{
    int any_binary = 0;
    sv_buf_puts(out, "{\"model_name\":");
    sv_buf_json_str(out, model, strlen(model));
    sv_buf_puts(out, ",\"model_version\":\"");
    sv_buf_i64(out, version);
    sv_buf_putc(out, '"');
    if (d->id) {
        sv_buf_puts(out, ",\"id\":");
        sv_buf_json_str(out, d->id, d->id_len);
    }
    sv_buf_puts(out, ",\"outputs\":[");
    for (int i = 0; i < n_results; i++) {
        const ferry_value *t = results[i];
        if (i) sv_buf_putc(out, ',');
        sv_buf_puts(out, "{\"name\":");
        sv_buf_json_str(out, names[i], strlen(names[i]));
        if (ferry_value_get_kind(t) != FERRY_VALUE_TENSOR) {
            sv_buf_puts(out, ",\"datatype\":\"BYTES\",\"shape\":[0],\"data\":[]}");
            continue;
        }
        const char *dn = sv_v2_dtype_name(ferry_tensor_dtype(t));
        sv_buf_puts(out, ",\"datatype\":\"");
        sv_buf_puts(out, dn ? dn : "BYTES");
        sv_buf_puts(out, "\",\"shape\":");
        put_shape(out, t);
        if (output_is_binary(d, names[i])) {
            any_binary = 1;
            sv_buf_puts(out, ",\"parameters\":{\"binary_data_size\":");
            sv_buf_u64(out, binary_size(t));
            sv_buf_puts(out, "}}");
        } else {
            sv_buf_puts(out, ",\"data\":[");
            sv_put_elements(out, t, 0, ferry_tensor_count(t));
            sv_buf_puts(out, "]}");
        }
    }
    sv_buf_puts(out, "]}");
    *json_len = -1;
    if (!any_binary) return;
    *json_len = (int64_t)out->len;
    for (int i = 0; i < n_results; i++) {
        const ferry_value *t = results[i];
        if (ferry_value_get_kind(t) != FERRY_VALUE_TENSOR || !output_is_binary(d, names[i]))
            continue;
        if (ferry_tensor_dtype(t) == FERRY_DTYPE_STRING) {
            char *const *s = ferry_tensor_cdata(t);
            for (int64_t k = 0; k < ferry_tensor_count(t); k++) {
                uint32_t n = (uint32_t)strlen(s[k]);
                unsigned char le[4] = {(unsigned char)n, (unsigned char)(n >> 8),
                                       (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
                sv_buf_put(out, le, 4);
                sv_buf_put(out, s[k], n);
            }
        } else {
            sv_buf_put(out, ferry_tensor_cdata(t), ferry_tensor_nbytes(t));
        }
    }
}

int sv_sig_of(sv_arena *a, const ferry_model *m, sv_sig *sig)
{
    sig->n_inputs = ferry_model_input_count(m);
    sig->n_outputs = ferry_model_output_count(m);
    sig->inputs = sv_arena_alloc(a, sizeof(ferry_io_info) * (size_t)(sig->n_inputs + 1));
    sig->outputs = sv_arena_alloc(a, sizeof(ferry_io_info) * (size_t)(sig->n_outputs + 1));
    if (!sig->inputs || !sig->outputs) return -1;
    for (int i = 0; i < sig->n_inputs; i++)
        ferry_model_input(m, i, &sig->inputs[i]);
    for (int i = 0; i < sig->n_outputs; i++)
        ferry_model_output(m, i, &sig->outputs[i]);
    return 0;
}

/* ---- endpoints ----------------------------------------------------------------------------- */

int sv_v2_health_live(sv_http *h)
{
    (void)h;
    return 200;
}

int sv_v2_health_ready(sv_http *h)
{
    if (atomic_load(&h->srv->draining)) return sv_http_error(h, 503, "shutting down");
    if (atomic_load(&h->srv->loading))
        return sv_http_error(h, 503, "the model repository is still loading");
    if (!sv_manager_ready(h->srv->manager))
        return sv_http_error(h, 503, "not every model in the repository has a ready version yet");
    return 200;
}

int sv_v2_server_metadata(sv_http *h)
{
    return sv_http_json(h, 200,
                        json_pack("{s:s, s:s, s:[s,s,s,s]}", "name", "ferry", "version", "0.1.0",
                                  "extensions", "binary_tensor_data", "model_repository",
                                  "statistics", "model_configuration"));
}

static json_t *io_json(const ferry_io_info *io, int drop_batch, int triton_config)
{
    json_t *shape = json_array();
    for (int d = drop_batch ? 1 : 0; d < io->rank; d++)
        json_array_append_new(shape, json_integer(io->dims[d] >= 0 ? io->dims[d] : -1));
    const char *dn = sv_v2_dtype_name(io->dtype);
    if (triton_config) {
        char tn[32];
        snprintf(tn, sizeof(tn), "TYPE_%s",
                 dn ? (strcmp(dn, "BYTES") == 0 ? "STRING" : dn) : "INVALID");
        return json_pack("{s:s, s:s, s:o}", "name", io->name, "data_type", tn, "dims", shape);
    }
    return json_pack("{s:s, s:s, s:o}", "name", io->name, "datatype", dn ? dn : "BYTES", "shape",
                     shape);
}

typedef struct versions_ctx {
    const char *model;
    json_t *arr;
} versions_ctx;

static void collect_versions(void *ctx, const sv_index_entry *e)
{
    versions_ctx *c = ctx;
    if (strcmp(e->model, c->model) != 0 || strcmp(e->state, "READY") != 0) return;
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)e->version);
    json_array_append_new(c->arr, json_string(v));
}

int sv_v2_model_metadata(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    const ferry_model *m = sv_version_model(v);
    json_t *ins = json_array(), *outs = json_array();
    for (int i = 0; i < ferry_model_input_count(m); i++) {
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        json_array_append_new(ins, io_json(&io, 0, 0));
    }
    for (int i = 0; i < ferry_model_output_count(m); i++) {
        ferry_io_info io;
        ferry_model_output(m, i, &io);
        json_array_append_new(outs, io_json(&io, 0, 0));
    }
    versions_ctx vc = {sv_version_model_name(v), json_array()};
    sv_manager_foreach(h->srv->manager, collect_versions, &vc);
    return sv_http_json(h, 200,
                        json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", sv_version_model_name(v),
                                  "versions", vc.arr, "platform", "onnx", "inputs", ins, "outputs",
                                  outs));
}

int sv_v2_model_ready(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    return 200;
}

int sv_v2_model_config(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    const ferry_model *m = sv_version_model(v);
    int mbs = sv_version_max_batch_size(v);
    json_t *cfg = NULL;
    const char *text = sv_version_config_json(v);
    if (text) cfg = json_loads(text, 0, NULL);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        cfg = json_object();
    }
    /* Triton's field names, so perf_analyzer and tritonclient read what they expect; dims leave
     * out the batch dimension when the model batches, as Triton's config does. */
    json_t *ins = json_array(), *outs = json_array();
    for (int i = 0; i < ferry_model_input_count(m); i++) {
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        json_array_append_new(ins, io_json(&io, mbs > 0 && io.rank > 0, 1));
    }
    for (int i = 0; i < ferry_model_output_count(m); i++) {
        ferry_io_info io;
        ferry_model_output(m, i, &io);
        json_array_append_new(outs, io_json(&io, mbs > 0 && io.rank > 0, 1));
    }
    json_object_set_new(cfg, "name", json_string(sv_version_model_name(v)));
    json_object_set_new(cfg, "platform", json_string("onnx"));
    json_object_set_new(cfg, "backend", json_string("ferry"));
    json_object_set_new(cfg, "max_batch_size", json_integer(mbs));
    json_object_set_new(cfg, "input", ins);
    json_object_set_new(cfg, "output", outs);
    return sv_http_json(h, 200, cfg);
}

/* ---- statistics (Triton's shape) ----------------------------------------------------------- */

static json_t *duration(uint64_t count, double seconds)
{
    return json_pack("{s:I, s:I}", "count", (json_int_t)count, "ns", (json_int_t)(seconds * 1e9));
}

typedef struct stats_ctx {
    const char *model; /* NULL = every model */
    int64_t version;   /* 0 = every version */
    json_t *arr;
} stats_ctx;

static void collect_stats(void *ctx, const sv_index_entry *e)
{
    stats_ctx *c = ctx;
    if (c->model && strcmp(c->model, e->model) != 0) return;
    if (c->version && c->version != e->version) return;
    const sv_version_stats *s = e->version_stats;
    if (!s) return;
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)e->version);
    uint64_t ok = atomic_load(&s->requests_ok), failed = atomic_load(&s->requests_failed);
    double q = sv_hist_sum(&s->queue_seconds), comp = sv_hist_sum(&s->compute_seconds);
    uint64_t qn = atomic_load(&s->queue_seconds.count), cn = atomic_load(&s->compute_seconds.count);
    json_t *inf =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "success", duration(ok, q + comp), "fail",
                  duration(failed, 0), "queue", duration(qn, q), "compute_input", duration(cn, 0),
                  "compute_infer", duration(cn, comp), "compute_output", duration(cn, 0));
    json_array_append_new(
        c->arr,
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:[]}", "name", e->model, "version", v,
                  "last_inference", (json_int_t)atomic_load(&s->last_inference_ms),
                  "inference_count", (json_int_t)atomic_load(&s->inferences), "execution_count",
                  (json_int_t)atomic_load(&s->executions), "inference_stats", inf, "batch_stats"));
}

int sv_v2_model_stats(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    stats_ctx c = {sv_version_model_name(v), h->version, json_array()};
    sv_manager_foreach(h->srv->manager, collect_stats, &c);
    return sv_http_json(h, 200, json_pack("{s:o}", "model_stats", c.arr));
}

int sv_v2_all_stats(sv_http *h)
{
    stats_ctx c = {NULL, 0, json_array()};
    sv_manager_foreach(h->srv->manager, collect_stats, &c);
    return sv_http_json(h, 200, json_pack("{s:o}", "model_stats", c.arr));
}

/* ---- repository ---------------------------------------------------------------------------- */

typedef struct index_ctx {
    int ready_only;
    json_t *arr;
} index_ctx;

static void collect_index(void *ctx, const sv_index_entry *e)
{
    index_ctx *c = ctx;
    if (c->ready_only && strcmp(e->state, "READY") != 0) return;
    json_t *o = json_pack("{s:s, s:s, s:s}", "name", e->model, "state", e->state, "reason",
                          e->reason ? e->reason : "");
    if (e->version > 0) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)e->version);
        json_object_set_new(o, "version", json_string(v));
    }
    json_array_append_new(c->arr, o);
}

int sv_v2_repo_index(sv_http *h)
{
    index_ctx c = {0, json_array()};
    if (h->body_len) {
        sj_val *root;
        char err[256];
        if (sj_parse(&h->arena, h->body, h->body_len, &root, err, sizeof(err)) != 0) {
            json_decref(c.arr);
            return sv_http_error(h, 400, "%s", err);
        }
        const sj_val *r = sj_get(root, "ready");
        if (r) c.ready_only = r->type == SJ_TRUE;
    }
    sv_manager_foreach(h->srv->manager, collect_index, &c);
    return sv_http_json(h, 200, c.arr);
}

/* Loading takes seconds; it runs on its own thread while the connection is suspended, so neither
 * HTTP threads nor inference wait for it. */
typedef struct control_job {
    sv_http *h;
    int unload;
} control_job;

static void *control_thread(void *arg)
{
    control_job *job = arg;
    sv_http *h = job->h;
    ferry_status rc = job->unload ? sv_manager_unload_model(h->srv->manager, h->model)
                                  : sv_manager_load_model(h->srv->manager, h->model);
    if (rc == FERRY_OK) {
        h->req.http_status = 200;
    } else {
        h->req.http_status = rc == FERRY_E_INVALID_ARG ? 404 : 400;
        snprintf(h->req.error, sizeof(h->req.error), "%s model '%s': %s",
                 job->unload ? "unloading" : "loading", h->model, ferry_last_error());
    }
    free(job);
    h->req.done(&h->req);
    return NULL;
}

static int control_finish(sv_http *h)
{
    h->out.len = 0;
    sv_buf_puts(&h->out, "{}");
    return 200;
}

static int repo_control(sv_http *h, int unload)
{
    if (atomic_load(&h->srv->loading))
        return sv_http_error(h, 503, "the model repository is still loading");
    control_job *job = malloc(sizeof(*job));
    if (!job) return sv_http_error(h, 500, "out of memory");
    job->h = h;
    job->unload = unload;
    sv_log(SV_LOG_INFO, h->rid, "%s model '%s' (repository API)", unload ? "unloading" : "loading",
           h->model);
    int rc = sv_http_begin_async(h, control_finish);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, control_thread, job) != 0) {
        free(job);
        h->req.http_status = 500;
        snprintf(h->req.error, sizeof(h->req.error), "could not start a thread");
        h->req.done(&h->req);
    }
    pthread_attr_destroy(&attr);
    return rc;
}

int sv_v2_repo_load(sv_http *h) { return repo_control(h, 0); }
int sv_v2_repo_unload(sv_http *h) { return repo_control(h, 1); }

/* ---- infer --------------------------------------------------------------------------------- */

static int infer_finish(sv_http *h)
{
    sv_decoded *d = h->proto;
    sv_request *r = &h->req;
    int64_t json_len;
    h->out.len = 0;
    sv_v2_encode(&h->out, sv_version_model_name(h->ver), sv_version_number(h->ver), d, r->n_results,
                 r->result_names, r->results, &json_len);
    if (json_len >= 0) {
        h->resp_header_len = json_len;
        h->content_type = "application/octet-stream";
    }
    return 200;
}

int sv_v2_infer(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    const char *hl = sv_http_header(h, "Inference-Header-Content-Length");
    if (hl) {
        char *end;
        long long n = strtoll(hl, &end, 10);
        if (end == hl || *end || n < 0)
            return sv_http_error(h, 400,
                                 "Inference-Header-Content-Length must be a non-negative integer");
        h->header_len = n;
    }
    sv_sig sig;
    sv_decoded *d = sv_arena_alloc(&h->arena, sizeof(*d));
    if (!d || sv_sig_of(&h->arena, sv_version_model(v), &sig) != 0)
        return sv_http_error(h, 500, "out of memory");
    char err[768];
    status =
        sv_v2_decode(&h->arena, h->body, h->body_len, h->header_len, &sig, d, err, sizeof(err));
    if (status) {
        sv_decoded_clear(d);
        return sv_http_error(h, status, "%s", err);
    }
    h->proto = d;
    sv_request *r = &h->req;
    r->n_inputs = d->n_inputs;
    r->input_names = d->input_names;
    r->inputs = d->inputs;
    r->n_outputs = d->n_outputs;
    r->output_names = d->output_names;
    if (d->timeout_s > 0) {
        double dl = h->t_start + d->timeout_s;
        if (!h->deadline || dl < h->deadline) h->deadline = dl;
    }
    h->ver = NULL; /* sv_http_submit takes it over */
    return sv_http_submit(h, v, infer_finish);
}
