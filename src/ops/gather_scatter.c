/* gather_scatter.c — ops that move elements by index: Gather, GatherElements, GatherND,
 * Scatter, ScatterElements, ScatterND, OneHot, Compress, NonZero. Every index is checked
 * (negative ones counted from the end) before any element moves. */
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/tensor_util.h"

#define PARALLEL_MIN 65536

static ferry_status check_indices(const fy_kernel *k, int i, const fy_value *t)
{
    if (t->dtype != FERRY_DTYPE_I64 && t->dtype != FERRY_DTYPE_I32)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d (indices) must be int32 or int64, "
                               "got %s", i, ferry_dtype_name(t->dtype));
    return FERRY_OK;
}

static inline int64_t index_at(const fy_value *t, int64_t i)
{
    return t->dtype == FERRY_DTYPE_I64 ? ((const int64_t *)t->data)[i]
                                       : ((const int32_t *)t->data)[i];
}

/* v in [-n, n) made non-negative, or an error naming the position. */
static ferry_status norm_index(const fy_kernel *k, int64_t v, int64_t n, int64_t at, int64_t *out)
{
    if (v < -n || v >= n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "index %lld at position %lld is out of "
                               "range for a dim of size %lld", (long long)v, (long long)at,
                               (long long)n);
    *out = v < 0 ? v + n : v;
    return FERRY_OK;
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

static int64_t *alloc_i64(int64_t n)
{
    return malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
}

ferry_status fy_op_Gather(fy_kernel *k)
{
    const fy_value *x, *ind;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &ind));
    FY_CHECK(check_indices(k, 1, ind));
    int axis, r = x->rank;
    if (r < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "data must have rank >= 1");
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), r, &axis));
    int orank = r - 1 + ind->rank;
    if (orank > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "output rank %d exceeds %d", orank, FERRY_MAX_RANK);
    int64_t dims[FERRY_MAX_RANK], n = x->dims[axis], ni = ind->count;
    int o = 0;
    for (int d = 0; d < axis; d++) dims[o++] = x->dims[d];
    for (int d = 0; d < ind->rank; d++) dims[o++] = ind->dims[d];
    for (int d = axis + 1; d < r; d++) dims[o++] = x->dims[d];
    int64_t idx_stack[256]; /* the usual handful of indices needs no allocation */
    int64_t *idx = ni <= 256 ? idx_stack : alloc_i64(ni);
    if (!idx) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = FERRY_OK;
    for (int64_t i = 0; i < ni && rc == FERRY_OK; i++)
        rc = norm_index(k, index_at(ind, i), n, i, &idx[i]);
    fy_value *out;
    if (rc == FERRY_OK) rc = fy_output(k, 0, x->dtype, orank, dims, &out);
    if (rc != FERRY_OK || out->count == 0) goto done;
    size_t esz = ferry_dtype_size(x->dtype);
    int64_t outer = prod(x->dims, 0, axis), inner = prod(x->dims, axis + 1, r);
    size_t run = (size_t)inner * esz;
    const char *src = x->data;
    char *dst = out->data;
    fy_move_strings_begin(out);
    if (inner == 1 && esz == 4) {
        /* the common embedding-free case: single float32/int32 elements */
        for (int64_t a = 0; a < outer; a++)
            for (int64_t j = 0; j < ni; j++)
                ((uint32_t *)dst)[a * ni + j] = ((const uint32_t *)src)[a * n + idx[j]];
    } else {
#pragma omp parallel for if (out->count >= PARALLEL_MIN)
        for (int64_t w = 0; w < outer * ni; w++) {
            int64_t a = w / ni, j = w % ni;
            memcpy(dst + w * run, src + (a * n + idx[j]) * run, run);
        }
    }
    rc = fy_move_strings_end(out, FERRY_OK);
done:
    if (idx != idx_stack) free(idx);
    return rc;
}

/* For every element of ind (same rank as data, dims no larger except on axis), the data
 * offset of its position with the axis coordinate replaced by the (checked) index. */
static ferry_status element_offsets(const fy_kernel *k, const fy_value *data,
                                    const fy_value *ind, int axis, int64_t **offs)
{
    int r = data->rank;
    *offs = NULL;
    if (ind->rank != r)
        return fy_kernel_error(k, FERRY_E_SHAPE, "indices have rank %d, data has %d", ind->rank, r);
    for (int d = 0; d < r; d++)
        if (d != axis && ind->dims[d] > data->dims[d])
            return fy_kernel_error(k, FERRY_E_SHAPE, "indices dim %d (%lld) exceeds data's "
                                   "(%lld)", d, (long long)ind->dims[d], (long long)data->dims[d]);
    int64_t ds[FERRY_MAX_RANK], c[FERRY_MAX_RANK] = {0}, base = 0;
    fy_move_strides(r, data->dims, ds);
    int64_t *o = alloc_i64(ind->count);
    if (!o) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < ind->count; i++) {
        int64_t v = 0;
        ferry_status rc = norm_index(k, index_at(ind, i), data->dims[axis], i, &v);
        if (rc != FERRY_OK) {
            free(o);
            return rc;
        }
        o[i] = base + v * ds[axis];
        for (int d = r - 1; d >= 0; d--) {
            if (d != axis) base += ds[d];
            if (++c[d] < ind->dims[d]) break;
            if (d != axis) base -= ds[d] * ind->dims[d];
            c[d] = 0;
        }
    }
    *offs = o;
    return FERRY_OK;
}

ferry_status fy_op_GatherElements(fy_kernel *k)
{
    const fy_value *x, *ind;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &ind));
    FY_CHECK(check_indices(k, 1, ind));
    int axis;
    if (x->rank < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "data must have rank >= 1");
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
    int64_t *offs;
    FY_CHECK(element_offsets(k, x, ind, axis, &offs));
    fy_value *out;
    ferry_status rc = fy_output(k, 0, x->dtype, ind->rank, ind->dims, &out);
    if (rc == FERRY_OK) {
        size_t esz = ferry_dtype_size(x->dtype);
        fy_move_strings_begin(out);
        for (int64_t i = 0; i < ind->count; i++)
            memcpy((char *)out->data + i * esz, (const char *)x->data + offs[i] * esz, esz);
        rc = fy_move_strings_end(out, FERRY_OK);
    }
    free(offs);
    return rc;
}

/* ---- scatter ------------------------------------------------------------------------------ */

enum reduction { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static ferry_status read_reduction(const fy_kernel *k, ferry_dtype t, enum reduction *red)
{
    const char *s = fy_attr_string(k, "reduction", "none");
    if (strcmp(s, "none") == 0) *red = RED_NONE;
    else if (strcmp(s, "add") == 0) *red = RED_ADD;
    else if (strcmp(s, "mul") == 0) *red = RED_MUL;
    else if (strcmp(s, "max") == 0) *red = RED_MAX;
    else if (strcmp(s, "min") == 0) *red = RED_MIN;
    else return fy_kernel_error(k, FERRY_E_INVALID_ARG, "reduction \"%s\" is not supported", s);
    if (*red != RED_NONE && !fy_dtype_is_numeric(t))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "reduction \"%s\" on %s is not supported",
                               s, ferry_dtype_name(t));
    return FERRY_OK;
}

/* dst[i] = dst[i] (red) src[i] for n elements of dtype t. Integer sums and products wrap
 * (computed in the unsigned type U) instead of overflowing. */
static void reduce_run(void *dst, const void *src, int64_t n, ferry_dtype t, enum reduction red)
{
#define RED(T, U)                                                                                  \
    do {                                                                                           \
        T *d_ = dst;                                                                               \
        const T *s_ = src;                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T a = d_[i], b = s_[i];                                                                \
            switch (red) {                                                                         \
            case RED_ADD: d_[i] = (T)((U)a + (U)b); break;                                         \
            case RED_MUL: d_[i] = (T)((U)a * (U)b); break;                                         \
            case RED_MAX: d_[i] = b > a ? b : a; break;                                            \
            case RED_MIN: d_[i] = b < a ? b : a; break;                                            \
            default: d_[i] = b;                                                                    \
            }                                                                                      \
        }                                                                                          \
    } while (0)
#define RED_HALF(TO, FROM)                                                                         \
    do {                                                                                           \
        uint16_t *d_ = dst;                                                                        \
        const uint16_t *s_ = src;                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float a = FROM(d_[i]), b = FROM(s_[i]), v = b;                                         \
            if (red == RED_ADD) v = a + b;                                                         \
            else if (red == RED_MUL) v = a * b;                                                    \
            else if (red == RED_MAX) v = b > a ? b : a;                                            \
            else if (red == RED_MIN) v = b < a ? b : a;                                            \
            d_[i] = TO(v);                                                                         \
        }                                                                                          \
    } while (0)
    switch (t) {
    case FERRY_DTYPE_F32: RED(float, float); break;
    case FERRY_DTYPE_F64: RED(double, double); break;
    case FERRY_DTYPE_I8: RED(int8_t, uint8_t); break;
    case FERRY_DTYPE_I16: RED(int16_t, uint16_t); break;
    case FERRY_DTYPE_I32: RED(int32_t, uint32_t); break;
    case FERRY_DTYPE_I64: RED(int64_t, uint64_t); break;
    case FERRY_DTYPE_U8: RED(uint8_t, uint32_t); break;
    case FERRY_DTYPE_U16: RED(uint16_t, uint32_t); break;
    case FERRY_DTYPE_U32: RED(uint32_t, uint32_t); break;
    case FERRY_DTYPE_U64: RED(uint64_t, uint64_t); break;
    case FERRY_DTYPE_F16: RED_HALF(fy_float_to_half, fy_half_to_float); break;
    case FERRY_DTYPE_BF16: RED_HALF(fy_float_to_bf16, fy_bf16_to_float); break;
    case FERRY_DTYPE_BOOL: {
        /* logical: add and max are or, mul and min are and */
        uint8_t *d_ = dst;
        const uint8_t *s_ = src;
        for (int64_t i = 0; i < n; i++)
            d_[i] = (red == RED_ADD || red == RED_MAX) ? (d_[i] || s_[i]) : (d_[i] && s_[i]);
        break;
    }
    default: break;
    }
#undef RED
#undef RED_HALF
}

/* Output 0 as a copy of data, ready for scatter (strings still borrowed: see _strings_end). */
static ferry_status scatter_start(fy_kernel *k, const fy_value *x, fy_value **out)
{
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, out));
    fy_move_strings_begin(*out);
    if (x->count) memcpy((*out)->data, x->data, (size_t)x->count * ferry_dtype_size(x->dtype));
    return FERRY_OK;
}

static void scatter_apply(fy_value *out, int64_t dst_off, const fy_value *upd, int64_t src_off,
                          int64_t n, enum reduction red)
{
    size_t esz = ferry_dtype_size(out->dtype);
    char *d = (char *)out->data + dst_off * esz;
    const char *s = (const char *)upd->data + src_off * esz;
    if (red == RED_NONE)
        memcpy(d, s, (size_t)n * esz);
    else
        reduce_run(d, s, n, out->dtype, red);
}

static ferry_status scatter_elements(fy_kernel *k, bool with_reduction)
{
    const fy_value *x, *ind, *upd;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &ind));
    FY_CHECK(fy_input_tensor(k, 2, &upd));
    FY_CHECK(check_indices(k, 1, ind));
    if (upd->dtype != x->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "updates are %s, data is %s",
                               ferry_dtype_name(upd->dtype), ferry_dtype_name(x->dtype));
    if (!fy_shape_equal(upd->rank, upd->dims, ind->rank, ind->dims))
        return fy_kernel_error(k, FERRY_E_SHAPE, "updates and indices differ in shape");
    enum reduction red = RED_NONE;
    if (with_reduction && k->node->opset >= 16) FY_CHECK(read_reduction(k, x->dtype, &red));
    int axis;
    if (x->rank < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "data must have rank >= 1");
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
    int64_t *offs;
    FY_CHECK(element_offsets(k, x, ind, axis, &offs));
    fy_value *out;
    ferry_status rc = scatter_start(k, x, &out);
    if (rc == FERRY_OK) {
        for (int64_t i = 0; i < ind->count; i++) scatter_apply(out, offs[i], upd, i, 1, red);
        rc = fy_move_strings_end(out, FERRY_OK);
    }
    free(offs);
    return rc;
}

ferry_status fy_op_ScatterElements(fy_kernel *k) { return scatter_elements(k, true); }

/* Scatter (opset 9-10) is ScatterElements without reduction, deprecated in opset 11. */
ferry_status fy_op_Scatter(fy_kernel *k) { return scatter_elements(k, false); }

/* Offsets into data (dims ddims, strides ds) of the index tuples of length kk found in ind,
 * starting at data dim `first`; tuple t is read at ind[t * kk...]. */
static ferry_status tuple_offsets(const fy_kernel *k, const fy_value *ind, int64_t ntup, int kk,
                                  const int64_t *ddims, const int64_t *ds, int first,
                                  int64_t *offs)
{
    for (int64_t t = 0; t < ntup; t++) {
        int64_t off = 0;
        for (int j = 0; j < kk; j++) {
            int64_t v = 0;
            FY_CHECK(norm_index(k, index_at(ind, t * kk + j), ddims[first + j], t * kk + j, &v));
            off += v * ds[first + j];
        }
        offs[t] = off;
    }
    return FERRY_OK;
}

ferry_status fy_op_ScatterND(fy_kernel *k)
{
    const fy_value *x, *ind, *upd;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &ind));
    FY_CHECK(fy_input_tensor(k, 2, &upd));
    FY_CHECK(check_indices(k, 1, ind));
    if (upd->dtype != x->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "updates are %s, data is %s",
                               ferry_dtype_name(upd->dtype), ferry_dtype_name(x->dtype));
    enum reduction red = RED_NONE;
    if (k->node->opset >= 16) FY_CHECK(read_reduction(k, x->dtype, &red));
    int r = x->rank, q = ind->rank;
    if (r < 1 || q < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "data and indices need rank >= 1");
    int64_t kk = ind->dims[q - 1];
    if (kk > r)
        return fy_kernel_error(k, FERRY_E_SHAPE, "index tuples of %lld for data of rank %d",
                               (long long)kk, r);
    /* updates must be indices.shape[:-1] + data.shape[kk:] */
    int64_t want[2 * FERRY_MAX_RANK];
    int nw = 0;
    for (int d = 0; d < q - 1; d++) want[nw++] = ind->dims[d];
    for (int d = (int)kk; d < r; d++) want[nw++] = x->dims[d];
    if (!fy_shape_equal(upd->rank, upd->dims, nw, want)) {
        char a[256], b[256];
        return fy_kernel_error(k, FERRY_E_SHAPE, "updates have shape %s, expected %s",
                               fy_shape_str(upd->rank, upd->dims, a, sizeof a),
                               fy_shape_str(nw, want, b, sizeof b));
    }
    int64_t ds[FERRY_MAX_RANK], ntup = prod(ind->dims, 0, q - 1), inner = prod(x->dims, (int)kk, r);
    fy_move_strides(r, x->dims, ds);
    int64_t *offs = alloc_i64(ntup);
    if (!offs) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = kk ? tuple_offsets(k, ind, ntup, (int)kk, x->dims, ds, 0, offs) : FERRY_OK;
    if (!kk)
        for (int64_t t = 0; t < ntup; t++) offs[t] = 0;
    fy_value *out;
    if (rc == FERRY_OK) rc = scatter_start(k, x, &out);
    if (rc == FERRY_OK) {
        for (int64_t t = 0; t < ntup; t++) scatter_apply(out, offs[t], upd, t * inner, inner, red);
        rc = fy_move_strings_end(out, FERRY_OK);
    }
    free(offs);
    return rc;
}

ferry_status fy_op_GatherND(fy_kernel *k)
{
    const fy_value *x, *ind;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &ind));
    FY_CHECK(check_indices(k, 1, ind));
    int r = x->rank, q = ind->rank;
    int64_t b = k->node->opset >= 12 ? fy_attr_int(k, "batch_dims", 0) : 0;
    if (r < 1 || q < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "data and indices need rank >= 1");
    if (b < 0 || b >= q || b >= r)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "batch_dims %lld does not fit ranks %d "
                               "and %d", (long long)b, r, q);
    for (int d = 0; d < b; d++)
        if (ind->dims[d] != x->dims[d])
            return fy_kernel_error(k, FERRY_E_SHAPE, "batch dim %d differs: data %lld, indices "
                                   "%lld", d, (long long)x->dims[d], (long long)ind->dims[d]);
    int64_t kk = ind->dims[q - 1];
    if (kk < 1 || kk > r - b)
        return fy_kernel_error(k, FERRY_E_SHAPE, "index tuples of %lld for data of rank %d with "
                               "%lld batch dims", (long long)kk, r, (long long)b);
    int64_t dims[2 * FERRY_MAX_RANK];
    int orank = 0;
    for (int d = 0; d < q - 1; d++) dims[orank++] = ind->dims[d];
    for (int d = (int)(b + kk); d < r; d++) dims[orank++] = x->dims[d];
    if (orank > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "output rank %d exceeds %d", orank, FERRY_MAX_RANK);
    int64_t ds[FERRY_MAX_RANK], nbatch = prod(x->dims, 0, (int)b), slab = prod(x->dims, (int)b, r);
    int64_t ntup = prod(ind->dims, (int)b, q - 1), inner = prod(x->dims, (int)(b + kk), r);
    fy_move_strides(r, x->dims, ds);
    int64_t *offs = alloc_i64(nbatch * ntup);
    if (!offs) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = tuple_offsets(k, ind, nbatch * ntup, (int)kk, x->dims, ds, (int)b, offs);
    for (int64_t t = 0; rc == FERRY_OK && t < nbatch * ntup; t++) offs[t] += (t / ntup) * slab;
    fy_value *out;
    if (rc == FERRY_OK) rc = fy_output(k, 0, x->dtype, orank, dims, &out);
    if (rc == FERRY_OK) {
        size_t esz = ferry_dtype_size(x->dtype), run = (size_t)inner * esz;
        fy_move_strings_begin(out);
        for (int64_t t = 0; t < nbatch * ntup; t++)
            memcpy((char *)out->data + t * run, (const char *)x->data + offs[t] * esz, run);
        rc = fy_move_strings_end(out, FERRY_OK);
    }
    free(offs);
    return rc;
}

/* ---- OneHot, Compress, NonZero ------------------------------------------------------------ */

ferry_status fy_op_OneHot(fy_kernel *k)
{
    const fy_value *ind, *dt, *vals;
    FY_CHECK(fy_input_tensor(k, 0, &ind));
    FY_CHECK(fy_input_tensor(k, 1, &dt));
    FY_CHECK(fy_input_tensor(k, 2, &vals));
    if (!fy_dtype_is_numeric(ind->dtype) || !fy_dtype_is_numeric(dt->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "indices and depth must be numeric");
    if (dt->count != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "depth must hold one value");
    if (vals->count != 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "values must hold [off, on], got %lld elements",
                               (long long)vals->count);
    int64_t depth = fy_tensor_get_i64(dt, 0);
    if (depth < 1 || depth > ((int64_t)1 << 40))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "depth %lld is invalid", (long long)depth);
    int r = ind->rank + 1;
    if (r > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "output rank %d exceeds %d", r, FERRY_MAX_RANK);
    int axis;
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", -1), r, &axis));
    int64_t dims[FERRY_MAX_RANK];
    for (int d = 0, j = 0; d < r; d++) dims[d] = d == axis ? depth : ind->dims[j++];
    fy_value *out;
    FY_CHECK(fy_output(k, 0, vals->dtype, r, dims, &out));
    size_t esz = ferry_dtype_size(vals->dtype);
    const char *off = vals->data, *on = off + esz;
    int64_t outer = prod(ind->dims, 0, axis), inner = prod(ind->dims, axis, ind->rank);
    char *dst = out->data;
    fy_move_strings_begin(out);
    fy_move_fill(dst, out->count, esz, off);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t v = fy_tensor_get_i64(ind, o * inner + i);
            if (v < -depth || v >= depth) continue; /* out of range: all "off" */
            if (v < 0) v += depth;
            memcpy(dst + ((o * depth + v) * inner + i) * esz, on, esz);
        }
    return fy_move_strings_end(out, FERRY_OK);
}

ferry_status fy_op_Compress(fy_kernel *k)
{
    const fy_value *x, *cond;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &cond));
    if (!fy_dtype_is_numeric(cond->dtype) || cond->rank != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "condition must be a 1-D bool tensor");
    const fy_attr *aa = fy_attr_get(k, "axis");
    int axis = 0, r;
    int64_t dims[FERRY_MAX_RANK], outer, n, inner;
    if (aa) {
        if (x->rank < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 1");
        FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
        r = x->rank;
        memcpy(dims, x->dims, sizeof(int64_t) * r);
        outer = prod(x->dims, 0, axis);
        n = x->dims[axis];
        inner = prod(x->dims, axis + 1, r);
    } else {
        r = 1;
        outer = inner = 1;
        n = x->count;
    }
    if (cond->count > n)
        return fy_kernel_error(k, FERRY_E_SHAPE, "condition has %lld entries, the axis only %lld",
                               (long long)cond->count, (long long)n);
    int64_t kept = 0;
    for (int64_t i = 0; i < cond->count; i++) kept += fy_tensor_get_f64(cond, i) != 0;
    dims[axis] = kept;
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &out));
    if (out->count == 0) return FERRY_OK;
    size_t esz = ferry_dtype_size(x->dtype), run = (size_t)inner * esz;
    char *dst = out->data;
    fy_move_strings_begin(out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < cond->count; i++)
            if (fy_tensor_get_f64(cond, i) != 0) {
                memcpy(dst, (const char *)x->data + (o * n + i) * run, run);
                dst += run;
            }
    return fy_move_strings_end(out, FERRY_OK);
}

ferry_status fy_op_NonZero(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!fy_dtype_is_numeric(x->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    int64_t nz = 0;
    for (int64_t i = 0; i < x->count; i++) nz += fy_tensor_get_f64(x, i) != 0;
    /* a scalar is treated as a one-element vector, as onnxruntime does */
    int r = x->rank ? x->rank : 1;
    int64_t dims[2] = {r, nz}, xdims[FERRY_MAX_RANK], c[FERRY_MAX_RANK] = {0};
    if (x->rank)
        memcpy(xdims, x->dims, sizeof(int64_t) * r);
    else
        xdims[0] = 1;
    fy_value *out;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, 2, dims, &out));
    int64_t *o = out->data, j = 0;
    for (int64_t i = 0; i < x->count; i++) {
        if (fy_tensor_get_f64(x, i) != 0) {
            for (int d = 0; d < r; d++) o[d * nz + j] = c[d];
            j++;
        }
        for (int d = r - 1; d >= 0; d--) {
            if (++c[d] < xdims[d]) break;
            c[d] = 0;
        }
    }
    return FERRY_OK;
}
