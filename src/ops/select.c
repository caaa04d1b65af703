/* select.c — ops that order or accumulate along an axis: TopK, Unique, CumSum,
 * ReverseSequence. Sorting is a stable merge sort of indices, so equal elements keep their
 * input order (TopK ties go to the lower index, as ONNX requires). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/tensor_util.h"

typedef int (*cmp_fn)(int64_t a, int64_t b, const void *ctx);

static void merge(int64_t *dst, const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                  cmp_fn cmp, const void *ctx)
{
    int64_t i = 0, j = 0, o = 0;
    while (i < na && j < nb) dst[o++] = cmp(b[j], a[i], ctx) < 0 ? b[j++] : a[i++];
    while (i < na) dst[o++] = a[i++];
    while (j < nb) dst[o++] = b[j++];
}

/* Stable sort of idx[0..n) by cmp. False when out of memory. */
static bool sort_stable(int64_t *idx, int64_t n, cmp_fn cmp, const void *ctx)
{
    enum { RUN = 16 };
    for (int64_t s = 0; s < n; s += RUN) { /* insertion sort of short runs */
        int64_t e = s + RUN < n ? s + RUN : n;
        for (int64_t i = s + 1; i < e; i++) {
            int64_t v = idx[i], j = i;
            while (j > s && cmp(v, idx[j - 1], ctx) < 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
    }
    if (n <= RUN) return true;
    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)n), *from = idx, *to = tmp;
    if (!tmp) return false;
    for (int64_t w = RUN; w < n; w *= 2) {
        for (int64_t s = 0; s < n; s += 2 * w) {
            int64_t m = s + w < n ? s + w : n, e = s + 2 * w < n ? s + 2 * w : n;
            merge(to + s, from + s, m - s, from + m, e - m, cmp, ctx);
        }
        int64_t *t = from;
        from = to;
        to = t;
    }
    if (from != idx) memcpy(idx, from, sizeof(int64_t) * (size_t)n);
    free(tmp);
    return true;
}

/* Three-way comparison of elements p and q of x; NaN sorts above every number. */
static int elem_cmp(const fy_value *x, int64_t p, int64_t q)
{
    switch (x->dtype) {
    case FERRY_DTYPE_STRING: {
        const char *a = ((char *const *)x->data)[p], *b = ((char *const *)x->data)[q];
        int c = strcmp(a ? a : "", b ? b : "");
        return (c > 0) - (c < 0);
    }
    case FERRY_DTYPE_U64: {
        uint64_t a = ((const uint64_t *)x->data)[p], b = ((const uint64_t *)x->data)[q];
        return (a > b) - (a < b);
    }
    case FERRY_DTYPE_F32: case FERRY_DTYPE_F64: case FERRY_DTYPE_F16: case FERRY_DTYPE_BF16: {
        double a = fy_tensor_get_f64(x, p), b = fy_tensor_get_f64(x, q);
        if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
        return (a > b) - (a < b);
    }
    default: {
        int64_t a = fy_tensor_get_i64(x, p), b = fy_tensor_get_i64(x, q);
        return (a > b) - (a < b);
    }
    }
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

/* ---- TopK --------------------------------------------------------------------------------- */

/* One slice of TopK: keys extracted to a typed array so comparisons skip the dtype switch. */
typedef struct topk_ctx {
    int kind; /* 0: double, 1: int64, 2: uint64 */
    const void *keys;
    int largest;
} topk_ctx;

static int topk_cmp(int64_t a, int64_t b, const void *vctx)
{
    const topk_ctx *c = vctx;
    int r;
    if (c->kind == 0) {
        double x = ((const double *)c->keys)[a], y = ((const double *)c->keys)[b];
        if (isnan(x) || isnan(y)) r = isnan(x) - isnan(y);
        else r = (x > y) - (x < y);
    } else if (c->kind == 1) {
        int64_t x = ((const int64_t *)c->keys)[a], y = ((const int64_t *)c->keys)[b];
        r = (x > y) - (x < y);
    } else {
        uint64_t x = ((const uint64_t *)c->keys)[a], y = ((const uint64_t *)c->keys)[b];
        r = (x > y) - (x < y);
    }
    return c->largest ? -r : r;
}

ferry_status fy_op_TopK(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!fy_dtype_is_numeric(x->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    int axis, r = x->rank;
    if (r < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 1");
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", -1), r, &axis));
    int64_t kk;
    if (k->node->opset >= 10)
        FY_CHECK(fy_read_scalar_i64(k, 1, &kk));
    else
        kk = fy_attr_int(k, "k", -1);
    int64_t n = x->dims[axis];
    if (kk < 0 || kk > n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "k = %lld is outside 0..%lld",
                               (long long)kk, (long long)n);
    topk_ctx ctx;
    ctx.largest = k->node->opset >= 11 ? (int)fy_attr_int(k, "largest", 1) != 0 : 1;
    ctx.kind = fy_dtype_is_float(x->dtype) ? 0
               : x->dtype == FERRY_DTYPE_U64 ? 2
                                             : 1;
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * r);
    dims[axis] = kk;
    fy_value *vals, *inds;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &vals));
    FY_CHECK(fy_output(k, 1, FERRY_DTYPE_I64, r, dims, &inds));
    if (vals->count == 0) return FERRY_OK;
    int64_t outer = prod(x->dims, 0, axis), inner = prod(x->dims, axis + 1, r);
    size_t esz = ferry_dtype_size(x->dtype);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    uint64_t *keys = malloc(sizeof(uint64_t) * (size_t)n); /* doubles, int64 or uint64 */
    ctx.keys = keys;
    ferry_status rc = FERRY_OK;
    if (!idx || !keys) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            for (int64_t j = 0; j < n; j++) {
                int64_t p = base + j * inner;
                idx[j] = j;
                if (ctx.kind == 0) ((double *)keys)[j] = fy_tensor_get_f64(x, p);
                else if (ctx.kind == 1) ((int64_t *)keys)[j] = fy_tensor_get_i64(x, p);
                else keys[j] = ((const uint64_t *)x->data)[p];
            }
            if (!sort_stable(idx, n, topk_cmp, &ctx)) {
                rc = fy_error(FERRY_E_NOMEM, "out of memory");
                goto out;
            }
            for (int64_t j = 0; j < kk; j++) {
                int64_t q = (o * kk + j) * inner + i;
                memcpy((char *)vals->data + q * esz,
                       (const char *)x->data + (base + idx[j] * inner) * esz, esz);
                ((int64_t *)inds->data)[q] = idx[j];
            }
        }
    }
out:
    free(idx);
    free(keys);
    return rc;
}

/* ---- Unique ------------------------------------------------------------------------------- */

/* Items are the n slices along the axis; they compare lexicographically in C order. */
typedef struct unique_ctx {
    const fy_value *x;
    int64_t outer, n, inner;
    const int64_t *first; /* for ordering groups by first occurrence */
} unique_ctx;

static int item_cmp(int64_t a, int64_t b, const void *vctx)
{
    const unique_ctx *c = vctx;
    for (int64_t o = 0; o < c->outer; o++)
        for (int64_t i = 0; i < c->inner; i++) {
            int r = elem_cmp(c->x, (o * c->n + a) * c->inner + i, (o * c->n + b) * c->inner + i);
            if (r) return r;
        }
    return 0;
}

static int first_cmp(int64_t a, int64_t b, const void *vctx)
{
    const unique_ctx *c = vctx;
    return (c->first[a] > c->first[b]) - (c->first[a] < c->first[b]);
}

ferry_status fy_op_Unique(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (ferry_dtype_size(x->dtype) == 0 || x->dtype == FERRY_DTYPE_C64 ||
        x->dtype == FERRY_DTYPE_C128)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    unique_ctx c = {x, 1, x->count, 1, NULL};
    const fy_attr *aa = fy_attr_get(k, "axis");
    int axis = -1;
    if (aa) {
        if (x->rank < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 1");
        FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
        c.outer = prod(x->dims, 0, axis);
        c.n = x->dims[axis];
        c.inner = prod(x->dims, axis + 1, x->rank);
    }
    int sorted = (int)fy_attr_int(k, "sorted", 1);
    int64_t n = c.n, u = 0;
    ferry_status rc = FERRY_OK;
    /* order: items sorted; group[i]: group of item i; first/count per group (sorted order) */
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *group = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *count = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *gorder = malloc(sizeof(int64_t) * (size_t)(n + 1)); /* output slot -> group */
    int64_t *slot = malloc(sizeof(int64_t) * (size_t)(n + 1));   /* group -> output slot */
    if (!order || !group || !first || !count || !gorder || !slot) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (!sort_stable(order, n, item_cmp, &c)) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || item_cmp(order[i - 1], order[i], &c) != 0) {
            first[u] = order[i]; /* stable sort: the lowest index of its group */
            count[u] = 0;
            u++;
        }
        group[order[i]] = u - 1;
        count[u - 1]++;
    }
    for (int64_t g = 0; g < u; g++) gorder[g] = g;
    if (!sorted) {
        c.first = first;
        if (!sort_stable(gorder, u, first_cmp, &c)) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
    }
    for (int64_t s = 0; s < u; s++) slot[gorder[s]] = s;

    int64_t dims[FERRY_MAX_RANK];
    int r = 1;
    if (axis >= 0) {
        r = x->rank;
        memcpy(dims, x->dims, sizeof(int64_t) * r);
        dims[axis] = u;
    } else {
        dims[0] = u;
    }
    fy_value *y;
    rc = fy_output(k, 0, x->dtype, r, dims, &y);
    if (rc != FERRY_OK) goto out;
    size_t esz = ferry_dtype_size(x->dtype), run = (size_t)c.inner * esz;
    fy_move_strings_begin(y);
    for (int64_t s = 0; s < u; s++)
        for (int64_t o = 0; o < c.outer; o++)
            memcpy((char *)y->data + (o * u + s) * run,
                   (const char *)x->data + (o * n + first[gorder[s]]) * run, run);
    rc = fy_move_strings_end(y, FERRY_OK);
    if (rc != FERRY_OK) goto out;
    fy_value *t;
    if (fy_output_wanted(k, 1)) {
        if ((rc = fy_output(k, 1, FERRY_DTYPE_I64, 1, &u, &t)) != FERRY_OK) goto out;
        for (int64_t s = 0; s < u; s++) ((int64_t *)t->data)[s] = first[gorder[s]];
    }
    if (fy_output_wanted(k, 2)) {
        if ((rc = fy_output(k, 2, FERRY_DTYPE_I64, 1, &n, &t)) != FERRY_OK) goto out;
        for (int64_t i = 0; i < n; i++) ((int64_t *)t->data)[i] = slot[group[i]];
    }
    if (fy_output_wanted(k, 3)) {
        if ((rc = fy_output(k, 3, FERRY_DTYPE_I64, 1, &u, &t)) != FERRY_OK) goto out;
        for (int64_t s = 0; s < u; s++) ((int64_t *)t->data)[s] = count[gorder[s]];
    }
out:
    free(order), free(group), free(first), free(count), free(gorder), free(slot);
    return rc;
}

/* ---- CumSum ------------------------------------------------------------------------------- */

ferry_status fy_op_CumSum(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t av;
    int axis;
    FY_CHECK(fy_read_scalar_i64(k, 1, &av));
    if (x->rank < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 1");
    FY_CHECK(fy_axis(k, av, x->rank, &axis));
    int exclusive = fy_attr_int(k, "exclusive", 0) != 0, reverse = fy_attr_int(k, "reverse", 0) != 0;
    fy_value *out;
    switch (x->dtype) {
    case FERRY_DTYPE_F32: case FERRY_DTYPE_F64: case FERRY_DTYPE_F16: case FERRY_DTYPE_BF16:
    case FERRY_DTYPE_I32: case FERRY_DTYPE_I64: case FERRY_DTYPE_U32: case FERRY_DTYPE_U64:
        break;
    default:
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    }
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &out));
    if (out->count == 0) return FERRY_OK;
    int64_t outer = prod(x->dims, 0, axis), n = x->dims[axis];
    int64_t inner = prod(x->dims, axis + 1, x->rank);
    /* A: accumulator type (integers wrap in uint64 rather than overflow) */
#define CUMSUM(T, A, LOAD, STORE)                                                                  \
    do {                                                                                           \
        A *acc = malloc(sizeof(A) * (size_t)inner);                                                \
        if (!acc) return fy_error(FERRY_E_NOMEM, "out of memory");                                 \
        const T *s_ = x->data;                                                                     \
        T *d_ = out->data;                                                                         \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            for (int64_t i = 0; i < inner; i++) acc[i] = 0;                                        \
            for (int64_t jj = 0; jj < n; jj++) {                                                   \
                int64_t j = reverse ? n - 1 - jj : jj, base = (o * n + j) * inner;                 \
                for (int64_t i = 0; i < inner; i++) {                                              \
                    A v = (A)LOAD(s_[base + i]);                                                   \
                    if (exclusive) {                                                               \
                        d_[base + i] = STORE(acc[i]);                                              \
                        acc[i] += v;                                                               \
                    } else {                                                                       \
                        acc[i] += v;                                                               \
                        d_[base + i] = STORE(acc[i]);                                              \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(acc);                                                                                 \
    } while (0)
#define AS_IS(v) (v)
#define TO_I32(v) ((int32_t)(v))
#define TO_I64(v) ((int64_t)(v))
#define TO_U32(v) ((uint32_t)(v))
    switch (x->dtype) {
    case FERRY_DTYPE_F32: CUMSUM(float, float, AS_IS, AS_IS); break;
    case FERRY_DTYPE_F64: CUMSUM(double, double, AS_IS, AS_IS); break;
    case FERRY_DTYPE_F16: CUMSUM(uint16_t, float, fy_half_to_float, fy_float_to_half); break;
    case FERRY_DTYPE_BF16: CUMSUM(uint16_t, float, fy_bf16_to_float, fy_float_to_bf16); break;
    case FERRY_DTYPE_I32: CUMSUM(int32_t, uint64_t, AS_IS, TO_I32); break;
    case FERRY_DTYPE_I64: CUMSUM(int64_t, uint64_t, AS_IS, TO_I64); break;
    case FERRY_DTYPE_U32: CUMSUM(uint32_t, uint64_t, AS_IS, TO_U32); break;
    case FERRY_DTYPE_U64: CUMSUM(uint64_t, uint64_t, AS_IS, AS_IS); break;
    default: break;
    }
#undef CUMSUM
#undef AS_IS
#undef TO_I32
#undef TO_I64
#undef TO_U32
    return FERRY_OK;
}

/* ---- ReverseSequence ---------------------------------------------------------------------- */

ferry_status fy_op_ReverseSequence(fy_kernel *k)
{
    const fy_value *x, *lens;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &lens));
    if (x->rank < 2) return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 2");
    int64_t ba = fy_attr_int(k, "batch_axis", 1), ta = fy_attr_int(k, "time_axis", 0);
    if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0)))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "batch_axis and time_axis must be 0 and 1");
    if (!fy_dtype_is_int(lens->dtype) || lens->rank != 1 || lens->count != x->dims[ba])
        return fy_kernel_error(k, FERRY_E_SHAPE, "sequence_lens must be 1-D integers, one per "
                               "batch entry (%lld)", (long long)x->dims[ba]);
    int64_t nb = x->dims[ba], nt = x->dims[ta], inner = prod(x->dims, 2, x->rank);
    for (int64_t b = 0; b < nb; b++) {
        int64_t l = fy_tensor_get_i64(lens, b);
        if (l < 0 || l > nt)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "sequence_lens[%lld] = %lld is outside "
                                   "0..%lld", (long long)b, (long long)l, (long long)nt);
    }
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &out));
    size_t esz = ferry_dtype_size(x->dtype), run = (size_t)inner * esz;
    /* element strides of the batch and time axes (dims 0 and 1) */
    int64_t sb = ba == 0 ? x->dims[1] * inner : inner, st = ta == 0 ? x->dims[1] * inner : inner;
    fy_move_strings_begin(out);
    for (int64_t b = 0; b < nb; b++) {
        int64_t l = fy_tensor_get_i64(lens, b);
        for (int64_t t = 0; t < nt; t++) {
            int64_t from = t < l ? l - 1 - t : t;
            memcpy((char *)out->data + (b * sb + t * st) * esz,
                   (const char *)x->data + (b * sb + from * st) * esz, run);
        }
    }
    return fy_move_strings_end(out, FERRY_OK);
}
