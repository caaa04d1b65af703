/* resize.c — Resize (opsets 10, 11, 13, 18+) and the older Upsample (1, 7, 9): nearest, n-linear
 * and cubic interpolation, antialiasing, every coordinate_transformation_mode, roi and axes.
 *
 * Interpolation is separable: each resized axis gets a table of taps (input index, weight) per
 * output index, and the data goes through one pass per axis that changes. That is the ONNX
 * reference's nested 1-D interpolation regrouped, so results agree up to rounding. Nearest mode
 * gathers bytes instead, so it works for every dtype. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

typedef enum { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC } resize_mode;

typedef enum {
    CT_HALF_PIXEL,
    CT_HALF_PIXEL_SYMMETRIC,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_FOR_NN,
    CT_TF_CROP_AND_RESIZE,
} coord_mode;

typedef enum {
    NEAREST_ROUND_PREFER_FLOOR,
    NEAREST_ROUND_PREFER_CEIL,
    NEAREST_FLOOR,
    NEAREST_CEIL,
    NEAREST_SIMPLE, /* Resize-10 and Upsample: floor, or ceil when downsampling (onnxruntime) */
} nearest_mode;

typedef struct resize_cfg {
    resize_mode mode;
    coord_mode coord;
    nearest_mode nearest;
    double cubic_a;
    int exclude_outside;
    int antialias;
    double extrapolation;
    int rank;
    int64_t in[FERRY_MAX_RANK], out[FERRY_MAX_RANK];
    double scale[FERRY_MAX_RANK];  /* output / input, as the model gives it */
    double length[FERRY_MAX_RANK]; /* the resized length before flooring (scale * input) */
    double roi_start[FERRY_MAX_RANK], roi_end[FERRY_MAX_RANK];
} resize_cfg;

/* The taps of one axis: output index o reads input indices idx[o*n .. o*n+n) with weights w. */
typedef struct axis_taps {
    int n;
    int identity; /* output index o reads input index o unchanged: no pass needed */
    int64_t *idx;
    double *w;
    unsigned char *extrap; /* per output index: outside the roi, gets extrapolation_value */
    int any_extrap;
} axis_taps;

#define MAX_TAPS_TOTAL ((int64_t)1 << 28)

static double original_coord(const resize_cfg *c, int d, int64_t o)
{
    double s = c->scale[d], len = c->length[d], in = (double)c->in[d], x = (double)o;
    switch (c->coord) {
    case CT_HALF_PIXEL: return (x + 0.5) / s - 0.5;
    case CT_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)c->out[d] / len;
        double offset = in / 2 * (1 - adjustment);
        return offset + (x + 0.5) / s - 0.5;
    }
    case CT_PYTORCH_HALF_PIXEL: return len > 1 ? (x + 0.5) / s - 0.5 : 0;
    case CT_ALIGN_CORNERS: return len == 1 ? 0 : x * (in - 1) / (len - 1);
    case CT_ASYMMETRIC: return x / s;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / s;
    case CT_TF_CROP_AND_RESIZE: {
        double a = c->roi_start[d], b = c->roi_end[d];
        if (len > 1) return a * (in - 1) + x * (b - a) * (in - 1) / (len - 1);
        return 0.5 * (a + b) * (in - 1);
    }
    }
    return 0;
}

static double cubic_kernel(double x, double A)
{
    x = fabs(x);
    if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0;
}

static int64_t round_nearest(nearest_mode m, double x, double scale)
{
    switch (m) {
    case NEAREST_ROUND_PREFER_FLOOR: return (int64_t)ceil(x - 0.5);
    case NEAREST_ROUND_PREFER_CEIL: return (int64_t)floor(x + 0.5);
    case NEAREST_FLOOR: return (int64_t)floor(x);
    case NEAREST_CEIL: return (int64_t)ceil(x);
    case NEAREST_SIMPLE: return scale < 1 ? (int64_t)ceil(x) : (int64_t)trunc(x);
    }
    return 0;
}

static void taps_free(axis_taps *a)
{
    free(a->idx), free(a->w), free(a->extrap);
    memset(a, 0, sizeof *a);
}

/* Build the taps of axis d. Fails only on allocation or an absurd antialias footprint. */
static ferry_status taps_build(const fy_kernel *k, const resize_cfg *c, int d, axis_taps *a)
{
    int64_t in = c->in[d], out = c->out[d];
    double s = c->scale[d], sa = s < 1 ? s : 1;
    int64_t start = 0, n = 1;
    int aa = c->antialias && sa < 1;
    memset(a, 0, sizeof *a);
    if (c->mode == MODE_LINEAR) {
        start = aa ? (int64_t)floor(-1 / sa) + 1 : 0;
        n = 2 - 2 * start;
    } else if (c->mode == MODE_CUBIC) {
        start = aa ? (int64_t)floor(-2 / sa) + 1 : -1;
        n = 2 - 2 * start;
    }
    if (n > MAX_TAPS_TOTAL || (out > 0 && n * out > MAX_TAPS_TOTAL))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED,
                               "axis %d: downscaling by %g needs too many filter taps", d, s);
    a->n = (int)n;
    size_t cnt = (size_t)(n * out > 0 ? n * out : 1);
    a->idx = malloc(cnt * sizeof *a->idx);
    a->w = malloc(cnt * sizeof *a->w);
    a->extrap = calloc((size_t)(out > 0 ? out : 1), 1);
    if (!a->idx || !a->w || !a->extrap) {
        taps_free(a);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    a->identity = in == out && !aa;
    for (int64_t o = 0; o < out; o++) {
        int64_t *idx = a->idx + o * n;
        double *w = a->w + o * n;
        double x = original_coord(c, d, o);
        if (!(x >= -1e12)) x = -1e12; /* also catches NaN from a bad roi */
        if (x > 1e12) x = 1e12;
        if (x != (double)o) a->identity = 0;
        if (c->coord == CT_TF_CROP_AND_RESIZE && (x < 0 || x > (double)(in - 1))) {
            a->extrap[o] = 1;
            a->any_extrap = 1;
            a->identity = 0;
            for (int64_t j = 0; j < n; j++)
                idx[j] = 0, w[j] = 0;
            continue;
        }
        if (c->mode == MODE_NEAREST) {
            int64_t i = round_nearest(c->nearest, x, s);
            idx[0] = i < 0 ? 0 : i >= in ? in - 1 : i;
            w[0] = 1;
            continue;
        }
        double x0 = floor(x), t = x - x0, sum = 0;
        for (int64_t j = 0; j < n; j++) {
            double off = (double)(start + j);
            if (c->mode == MODE_LINEAR)
                w[j] = aa ? fmax(0, 1 - fabs((off - t) * sa)) : (j == 0 ? 1 - t : t);
            else
                w[j] = cubic_kernel(aa ? (off - t) * sa : off - t, c->cubic_a);
            int64_t i = (int64_t)x0 + start + j;
            if (c->exclude_outside && (i < 0 || i >= in)) w[j] = 0;
            idx[j] = i < 0 ? 0 : i >= in ? in - 1 : i;
            sum += w[j];
        }
        if ((aa || c->exclude_outside) && sum != 0)
            for (int64_t j = 0; j < n; j++)
                w[j] /= sum;
    }
    return FERRY_OK;
}

/* One separable pass: src is [outer, n_in, inner], dst is [outer, n_out, inner]. */
#define DEFINE_PASS(T, NAME)                                                                       \
    static void NAME(const T *src, T *dst, int64_t outer, int64_t n_in, int64_t n_out,             \
                     int64_t inner, const axis_taps *a)                                            \
    {                                                                                              \
        const int n = a->n;                                                                        \
        const int64_t rows = outer * n_out;                                                        \
        _Pragma(                                                                                   \
            "omp parallel for schedule(static) if (rows * inner * n > (1 << 16))") for (int64_t    \
                                                                                            q = 0; \
                                                                                        q < rows;  \
                                                                                        q++)       \
        {                                                                                          \
            int64_t o = q % n_out;                                                                 \
            const T *s = src + (q / n_out) * n_in * inner;                                         \
            T *d = dst + q * inner;                                                                \
            const int64_t *idx = a->idx + o * n;                                                   \
            const double *w = a->w + o * n;                                                        \
            if (inner == 1) {                                                                      \
                T acc = 0;                                                                         \
                for (int j = 0; j < n; j++)                                                        \
                    acc += (T)w[j] * s[idx[j]];                                                    \
                d[0] = acc;                                                                        \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t i = 0; i < inner; i++)                                                    \
                d[i] = 0;                                                                          \
            for (int j = 0; j < n; j++) {                                                          \
                if (w[j] == 0) continue;                                                           \
                const T wj = (T)w[j];                                                              \
                const T *sj = s + idx[j] * inner;                                                  \
                for (int64_t i = 0; i < inner; i++)                                                \
                    d[i] += wj * sj[i];                                                            \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_PASS(float, pass_f32)
DEFINE_PASS(double, pass_f64)

/* Store a double into an integer (or bool) element: truncate like the ONNX reference's
 * astype, saturating instead of wrapping. */
static void store_int(fy_value *t, int64_t i, double v)
{
    double lo = -9.2e18, hi = 9.2e18;
    switch (t->dtype) {
    case FERRY_DTYPE_I8: lo = INT8_MIN, hi = INT8_MAX; break;
    case FERRY_DTYPE_U8: lo = 0, hi = UINT8_MAX; break;
    case FERRY_DTYPE_I16: lo = INT16_MIN, hi = INT16_MAX; break;
    case FERRY_DTYPE_U16: lo = 0, hi = UINT16_MAX; break;
    case FERRY_DTYPE_I32: lo = INT32_MIN, hi = INT32_MAX; break;
    case FERRY_DTYPE_U32: lo = 0, hi = UINT32_MAX; break;
    case FERRY_DTYPE_U64: lo = 0; break;
    default: break;
    }
    if (t->dtype == FERRY_DTYPE_BOOL) {
        fy_tensor_set_f64(t, i, v);
        return;
    }
    v = v != v ? 0 : v < lo ? lo : v > hi ? hi : trunc(v);
    if (t->dtype == FERRY_DTYPE_U64)
        ((uint64_t *)t->data)[i] = (uint64_t)v;
    else
        fy_tensor_set_i64(t, i, (int64_t)v);
}

/* Nearest: a gather of whole elements, for every dtype. */
static ferry_status resize_nearest(fy_kernel *k, const resize_cfg *c, const axis_taps *ax,
                                   const fy_value *X, fy_value *Y)
{
    const int r = c->rank;
    const size_t es = ferry_dtype_size(X->dtype);
    int64_t stride[FERRY_MAX_RANK];
    int64_t acc = 1;
    for (int d = r - 1; d >= 0; d--)
        stride[d] = acc, acc *= c->in[d];
    const int64_t last = r ? c->out[r - 1] : 1;
    const int64_t rows = last ? Y->count / last : 0;
    unsigned char fill[8] = {0};
    if (X->dtype != FERRY_DTYPE_STRING) {
        fy_value tmp = *Y; /* a one-element view over `fill` to convert the value */
        tmp.data = fill;
        if (fy_dtype_is_float(X->dtype))
            fy_tensor_set_f64(&tmp, 0, c->extrapolation);
        else
            store_int(&tmp, 0, c->extrapolation);
    }
    const int is_str = X->dtype == FERRY_DTYPE_STRING;
    ferry_status rc = FERRY_OK;

#pragma omp parallel for schedule(static) if (!is_str && Y->count > (1 << 16))
    for (int64_t q = 0; q < rows; q++) {
        int64_t rem = q, base = 0;
        int ext = 0;
        for (int d = r - 2; d >= 0; d--) {
            int64_t o = rem % c->out[d];
            rem /= c->out[d];
            base += ax[d].idx[o] * stride[d];
            ext |= ax[d].extrap[o];
        }
        const int64_t *li = r ? ax[r - 1].idx : NULL;
        const unsigned char *le = r ? ax[r - 1].extrap : NULL;
        int64_t y0 = q * last;
        if (is_str) {
            char *const *src = X->data;
            for (int64_t j = 0; j < last && rc == FERRY_OK; j++) {
                const char *sv = (ext || (le && le[j])) ? "" : src[base + (li ? li[j] : 0)];
                rc = ferry_tensor_set_string(Y, y0 + j, sv, strlen(sv));
            }
            continue;
        }
        switch (es) {
#define GATHER(T)                                                                                  \
    {                                                                                              \
        const T *src = (const T *)X->data + base;                                                  \
        T *dst = (T *)Y->data + y0;                                                                \
        T fv;                                                                                      \
        memcpy(&fv, fill, sizeof fv);                                                              \
        for (int64_t j = 0; j < last; j++)                                                         \
            dst[j] = (ext || (le && le[j])) ? fv : src[li ? li[j] : 0];                            \
    }                                                                                              \
    break;
        case 1: GATHER(uint8_t)
        case 2: GATHER(uint16_t)
        case 4: GATHER(uint32_t)
        case 8: GATHER(uint64_t)
#undef GATHER
        default: {
            for (int64_t j = 0; j < last; j++) {
                const unsigned char *sv =
                    (ext || (le && le[j]))
                        ? fill
                        : (const unsigned char *)X->data + (size_t)(base + (li ? li[j] : 0)) * es;
                memcpy((unsigned char *)Y->data + (size_t)(y0 + j) * es, sv, es);
            }
        }
        }
    }
    if (rc != FERRY_OK) return fy_kernel_error(k, rc, "could not store a string");
    return FERRY_OK;
}

/* Linear and cubic: separable passes in float (f32, f16, bf16) or double (the rest). */
static ferry_status resize_interp(fy_kernel *k, const resize_cfg *c, const axis_taps *ax,
                                  const fy_value *X, fy_value *Y)
{
    const int r = c->rank;
    const int dbl = !(X->dtype == FERRY_DTYPE_F32 || X->dtype == FERRY_DTYPE_F16 ||
                      X->dtype == FERRY_DTYPE_BF16);
    const size_t ws = dbl ? sizeof(double) : sizeof(float);
    const int native = X->dtype == (dbl ? FERRY_DTYPE_F64 : FERRY_DTYPE_F32);
    ferry_status rc = FERRY_OK;
    void *owned_in = NULL, *bufs[2] = {NULL, NULL};
    const void *cur;

    if (native) {
        cur = X->data;
    } else {
        owned_in = malloc((size_t)(X->count > 0 ? X->count : 1) * ws);
        if (!owned_in) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < X->count; i++) {
            double v = fy_tensor_get_f64(X, i);
            if (dbl)
                ((double *)owned_in)[i] = v;
            else
                ((float *)owned_in)[i] = (float)v;
        }
        cur = owned_in;
    }

    /* the axes that change, shrinking ones first so later passes touch less data */
    int order[FERRY_MAX_RANK], n_pass = 0;
    for (int pass_kind = 0; pass_kind < 2; pass_kind++)
        for (int d = 0; d < r; d++) {
            if (ax[d].identity) continue;
            int shrinks = c->out[d] < c->in[d];
            if (shrinks == (pass_kind == 0)) order[n_pass++] = d;
        }

    int64_t dims[FERRY_MAX_RANK];
    for (int d = 0; d < r; d++)
        dims[d] = c->in[d];
    for (int p = 0; p < n_pass; p++) {
        int d = order[p];
        int64_t outer = 1, inner = 1;
        for (int e = 0; e < d; e++)
            outer *= dims[e];
        for (int e = d + 1; e < r; e++)
            inner *= dims[e];
        int64_t n_out = outer * c->out[d] * inner;
        void *dst;
        if (p == n_pass - 1 && native) {
            dst = Y->data;
        } else {
            free(bufs[p & 1]);
            bufs[p & 1] = malloc((size_t)(n_out > 0 ? n_out : 1) * ws);
            if (!bufs[p & 1]) {
                rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
                goto out;
            }
            dst = bufs[p & 1];
        }
        if (dbl)
            pass_f64(cur, dst, outer, c->in[d], c->out[d], inner, &ax[d]);
        else
            pass_f32(cur, dst, outer, c->in[d], c->out[d], inner, &ax[d]);
        dims[d] = c->out[d];
        cur = dst;
    }

    if (cur != Y->data) {
        if (native) {
            memcpy(Y->data, cur, (size_t)Y->count * ws);
        } else {
            for (int64_t i = 0; i < Y->count; i++) {
                double v = dbl ? ((const double *)cur)[i] : ((const float *)cur)[i];
                if (fy_dtype_is_float(Y->dtype))
                    fy_tensor_set_f64(Y, i, v);
                else
                    store_int(Y, i, v);
            }
        }
    }

    int any_extrap = 0;
    for (int d = 0; d < r; d++)
        any_extrap |= ax[d].any_extrap;
    if (any_extrap) {
        int64_t o[FERRY_MAX_RANK] = {0};
        for (int64_t i = 0; i < Y->count; i++) {
            int ext = 0;
            for (int d = 0; d < r; d++)
                ext |= ax[d].extrap[o[d]];
            if (ext) {
                if (fy_dtype_is_float(Y->dtype))
                    fy_tensor_set_f64(Y, i, c->extrapolation);
                else
                    store_int(Y, i, c->extrapolation);
            }
            for (int d = r - 1; d >= 0; d--) {
                if (++o[d] < c->out[d]) break;
                o[d] = 0;
            }
        }
    }
out:
    free(owned_in);
    free(bufs[0]);
    free(bufs[1]);
    return rc;
}

/* Compute output shape and run. cfg has mode, coordinate mode, in[], scale[] or out[] filled. */
static ferry_status resize_run(fy_kernel *k, resize_cfg *c, const fy_value *X)
{
    if (c->mode != MODE_NEAREST && !fy_dtype_is_numeric(X->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "%s interpolation of %s data",
                               c->mode == MODE_LINEAR ? "linear" : "cubic",
                               ferry_dtype_name(X->dtype));
    /* scales come from the model: refuse outputs no machine holds (1 TiB) before allocating */
    int64_t n_out = fy_shape_count(c->rank, c->out);
    if (n_out < 0 ||
        (double)n_out * (double)ferry_dtype_size(X->dtype) > (double)((int64_t)1 << 40)) {
        char buf[256];
        return fy_kernel_error(k, FERRY_E_SHAPE, "output shape %s is too large",
                               fy_shape_str(c->rank, c->out, buf, sizeof buf));
    }
    fy_value *Y;
    FY_CHECK(fy_output(k, 0, X->dtype, c->rank, c->out, &Y));
    if (Y->count == 0) return FERRY_OK;
    for (int d = 0; d < c->rank; d++)
        if (c->in[d] == 0)
            return fy_kernel_error(k, FERRY_E_SHAPE,
                                   "axis %d is empty and cannot be resized to %lld", d,
                                   (long long)c->out[d]);
    axis_taps ax[FERRY_MAX_RANK];
    memset(ax, 0, sizeof ax);
    ferry_status rc = FERRY_OK;
    for (int d = 0; d < c->rank && rc == FERRY_OK; d++)
        rc = taps_build(k, c, d, &ax[d]);
    if (rc == FERRY_OK) {
        if (c->mode == MODE_NEAREST)
            rc = resize_nearest(k, c, ax, X, Y);
        else
            rc = resize_interp(k, c, ax, X, Y);
    }
    for (int d = 0; d < c->rank; d++)
        taps_free(&ax[d]);
    return rc;
}

/* Output length floor(length) of a scaled axis, refusing lengths no tensor could have. */
static ferry_status scaled_length(const fy_kernel *k, int d, double length, int64_t *out)
{
    if (!(length >= 0) || length > 9e15)
        return fy_kernel_error(k, FERRY_E_SHAPE, "axis %d: resized length %g is invalid", d,
                               length);
    *out = (int64_t)floor(length);
    return FERRY_OK;
}

static ferry_status read_floats(const fy_kernel *k, int i, const fy_value *t, double *v, int n,
                                const char *what)
{
    if (!fy_dtype_is_float(t->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d (%s) must be floating point, got %s", i,
                               what, ferry_dtype_name(t->dtype));
    if (t->count != n)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d (%s) has %lld values, expected %d", i,
                               what, (long long)t->count, n);
    for (int j = 0; j < n; j++)
        v[j] = fy_tensor_get_f64(t, j);
    return FERRY_OK;
}

static ferry_status parse_mode(const fy_kernel *k, resize_cfg *c, int upsample_v1)
{
    const char *mode = fy_attr_string(k, "mode", "nearest");
    if (strcmp(mode, "nearest") == 0)
        c->mode = MODE_NEAREST;
    else if (strcmp(mode, "linear") == 0 || (upsample_v1 && strcmp(mode, "bilinear") == 0))
        c->mode = MODE_LINEAR;
    else if (strcmp(mode, "cubic") == 0 && !upsample_v1)
        c->mode = MODE_CUBIC;
    else
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "mode \"%s\" is not supported", mode);
    return FERRY_OK;
}

ferry_status fy_op_Resize(fy_kernel *k)
{
    const int opset = k->node->opset;
    resize_cfg c;
    memset(&c, 0, sizeof c);
    const fy_value *X, *roi = NULL, *scales = NULL, *sizes = NULL;
    FY_CHECK(fy_input_tensor(k, 0, &X));
    if (X->dtype == FERRY_DTYPE_C64 || X->dtype == FERRY_DTYPE_C128)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "complex data is not supported");
    c.rank = X->rank;
    for (int d = 0; d < c.rank; d++)
        c.in[d] = X->dims[d];
    FY_CHECK(parse_mode(k, &c, 0));
    c.cubic_a = fy_attr_float(k, "cubic_coeff_a", -0.75f);
    c.exclude_outside = fy_attr_int(k, "exclude_outside", 0) != 0;
    c.extrapolation = fy_attr_float(k, "extrapolation_value", 0.0f);
    c.antialias = opset >= 18 && fy_attr_int(k, "antialias", 0) != 0;

    if (opset < 11) {
        FY_CHECK(fy_input_tensor(k, 1, &scales));
        c.coord = CT_ASYMMETRIC;
        c.nearest = NEAREST_SIMPLE;
        if (c.mode == MODE_CUBIC)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "cubic mode needs opset 11");
    } else {
        FY_CHECK(fy_input_tensor_opt(k, 1, &roi));
        FY_CHECK(fy_input_tensor_opt(k, 2, &scales));
        FY_CHECK(fy_input_tensor_opt(k, 3, &sizes));
        if (roi && roi->count == 0) roi = NULL;
        if (scales && scales->count == 0) scales = NULL;
        if (sizes && sizes->count == 0) sizes = NULL;
        static const struct {
            const char *name;
            coord_mode mode;
        } coords[] = {
            {"half_pixel", CT_HALF_PIXEL},
            {"half_pixel_symmetric", CT_HALF_PIXEL_SYMMETRIC},
            {"pytorch_half_pixel", CT_PYTORCH_HALF_PIXEL},
            {"align_corners", CT_ALIGN_CORNERS},
            {"asymmetric", CT_ASYMMETRIC},
            {"tf_half_pixel_for_nn", CT_TF_HALF_PIXEL_FOR_NN},
            {"tf_crop_and_resize", CT_TF_CROP_AND_RESIZE},
        };
        const char *cm = fy_attr_string(k, "coordinate_transformation_mode", "half_pixel");
        size_t i = 0, n = sizeof coords / sizeof coords[0];
        while (i < n && strcmp(cm, coords[i].name) != 0)
            i++;
        if (i == n)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED,
                                   "coordinate_transformation_mode \"%s\" is not supported", cm);
        c.coord = coords[i].mode;
        static const char *const nearest_names[] = {"round_prefer_floor", "round_prefer_ceil",
                                                    "floor", "ceil"};
        const char *nm = fy_attr_string(k, "nearest_mode", "round_prefer_floor");
        for (i = 0; i < 4 && strcmp(nm, nearest_names[i]) != 0; i++) {
        }
        if (i == 4)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "nearest_mode \"%s\" is not supported",
                                   nm);
        c.nearest = (nearest_mode)i;
    }
    if (scales && sizes)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "only one of scales and sizes may be given");
    if (!scales && !sizes)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "one of scales and sizes is required");

    /* axes (opset 18): scales, sizes and roi name only these axes */
    int axes[FERRY_MAX_RANK], n_axes = c.rank;
    for (int d = 0; d < c.rank; d++)
        axes[d] = d;
    const int64_t *ax_vals = NULL;
    int64_t n_ax = opset >= 18 ? fy_attr_ints(k, "axes", &ax_vals) : -1;
    if (n_ax >= 0) {
        if (n_ax > c.rank)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axes has %lld entries for rank %d",
                                   (long long)n_ax, c.rank);
        int seen[FERRY_MAX_RANK] = {0};
        n_axes = (int)n_ax;
        for (int i = 0; i < n_axes; i++) {
            FY_CHECK(fy_axis(k, ax_vals[i], c.rank, &axes[i]));
            if (seen[axes[i]]++)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axis %d repeats in axes", axes[i]);
        }
    }

    for (int d = 0; d < c.rank; d++) {
        c.scale[d] = 1;
        c.roi_start[d] = 0;
        c.roi_end[d] = 1;
    }
    if (roi && c.coord == CT_TF_CROP_AND_RESIZE) {
        double v[2 * FERRY_MAX_RANK];
        FY_CHECK(read_floats(k, 1, roi, v, 2 * n_axes, "roi"));
        for (int i = 0; i < n_axes; i++) {
            c.roi_start[axes[i]] = v[i];
            c.roi_end[axes[i]] = v[n_axes + i];
        }
    }
    if (scales) {
        double v[FERRY_MAX_RANK];
        FY_CHECK(read_floats(k, opset < 11 ? 1 : 2, scales, v, n_axes, "scales"));
        for (int i = 0; i < n_axes; i++) {
            if (!(v[i] > 0) || v[i] > 1e9)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "scale %g for axis %d is invalid",
                                       v[i], axes[i]);
            c.scale[axes[i]] = v[i];
        }
        for (int d = 0; d < c.rank; d++) {
            c.length[d] = (double)c.in[d] * c.scale[d];
            if (c.coord == CT_TF_CROP_AND_RESIZE) c.length[d] *= c.roi_end[d] - c.roi_start[d];
            FY_CHECK(scaled_length(k, d, c.length[d], &c.out[d]));
        }
    } else {
        int64_t v[FERRY_MAX_RANK];
        int n;
        FY_CHECK(fy_input_ints(k, 3, v, FERRY_MAX_RANK, &n));
        if (n != n_axes)
            return fy_kernel_error(k, FERRY_E_SHAPE, "sizes has %d values, expected %d", n, n_axes);
        for (int d = 0; d < c.rank; d++)
            c.out[d] = c.in[d];
        for (int i = 0; i < n_axes; i++) {
            if (v[i] < 0)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "sizes[%d] = %lld is negative", i,
                                       (long long)v[i]);
            c.out[axes[i]] = v[i];
        }
        for (int d = 0; d < c.rank; d++) {
            c.scale[d] = c.in[d] ? (double)c.out[d] / (double)c.in[d] : 1;
            c.length[d] = (double)c.out[d];
        }
        const char *policy =
            opset >= 18 ? fy_attr_string(k, "keep_aspect_ratio_policy", "stretch") : "stretch";
        if (strcmp(policy, "stretch") != 0 && n_axes > 0) {
            int larger = strcmp(policy, "not_smaller") == 0;
            if (!larger && strcmp(policy, "not_larger") != 0)
                return fy_kernel_error(k, FERRY_E_UNSUPPORTED,
                                       "keep_aspect_ratio_policy \"%s\" is not supported", policy);
            double s = c.scale[axes[0]];
            for (int i = 1; i < n_axes; i++) {
                double si = c.scale[axes[i]];
                s = larger ? fmax(s, si) : fmin(s, si);
            }
            for (int i = 0; i < n_axes; i++) {
                int d = axes[i];
                c.scale[d] = s;
                c.length[d] = s * (double)c.in[d];
                FY_CHECK(scaled_length(k, d, c.length[d] + 0.5, &c.out[d]));
            }
        }
    }
    return resize_run(k, &c, X);
}

ferry_status fy_op_Upsample(fy_kernel *k)
{
    const int opset = k->node->opset;
    resize_cfg c;
    memset(&c, 0, sizeof c);
    const fy_value *X;
    FY_CHECK(fy_input_tensor(k, 0, &X));
    c.rank = X->rank;
    for (int d = 0; d < c.rank; d++)
        c.in[d] = X->dims[d];
    FY_CHECK(parse_mode(k, &c, opset < 7));
    if (c.mode == MODE_CUBIC)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "Upsample has no cubic mode");
    c.coord = CT_ASYMMETRIC;
    c.nearest = NEAREST_SIMPLE;
    double v[FERRY_MAX_RANK];
    if (opset >= 9) {
        const fy_value *scales;
        FY_CHECK(fy_input_tensor(k, 1, &scales));
        FY_CHECK(read_floats(k, 1, scales, v, c.rank, "scales"));
    } else if (opset >= 7) {
        const float *f;
        int64_t n = fy_attr_floats(k, "scales", &f);
        if (n != c.rank)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "scales has %lld values for rank %d",
                                   (long long)n, c.rank);
        for (int d = 0; d < c.rank; d++)
            v[d] = f[d];
    } else {
        if (c.rank != 4)
            return fy_kernel_error(k, FERRY_E_SHAPE, "input must have 4 dims, got %d", c.rank);
        v[0] = v[1] = 1;
        v[2] = fy_attr_float(k, "height_scale", 1.0f);
        v[3] = fy_attr_float(k, "width_scale", 1.0f);
    }
    for (int d = 0; d < c.rank; d++) {
        if (!(v[d] > 0) || v[d] > 1e9)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "scale %g for axis %d is invalid", v[d],
                                   d);
        c.scale[d] = v[d];
        c.length[d] = (double)c.in[d] * v[d];
        FY_CHECK(scaled_length(k, d, c.length[d], &c.out[d]));
    }
    return resize_run(k, &c, X);
}
