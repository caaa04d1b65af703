/* reduce.c — the Reduce* family and ArgMax/ArgMin. A reduction over any set of axes is done as
 * one pass per contiguous block of reduced dims, each pass a typed [outer, R, inner] loop. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/nn_util.h"

enum red_op { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ };
/* What one pass does: the first pass may transform elements (abs, square); later ones add. */
enum red_pass { P_SUM, P_ABSSUM, P_SQSUM, P_MAX, P_MIN, P_PROD, P_LSE };

static enum red_pass first_pass(enum red_op op)
{
    switch (op) {
    case R_MAX: return P_MAX;
    case R_MIN: return P_MIN;
    case R_PROD: return P_PROD;
    case R_L1: return P_ABSSUM;
    case R_L2:
    case R_SUMSQ: return P_SQSUM;
    case R_LOGSUMEXP: return P_LSE;
    default: return P_SUM;
    }
}

static enum red_pass later_pass(enum red_pass first)
{
    return first == P_ABSSUM || first == P_SQSUM ? P_SUM : first;
}

/* y[o, j] = reduce over r of x[o, r, j]. W is the working type; ADD/MUL keep integer
 * arithmetic wrapping (no signed overflow); LOWEST/HIGHEST seed max/min. */
#define DEFINE_PASS(NAME, W, ADD, MUL, ABS, LOWEST, HIGHEST, IS_FLOAT)                             \
    static void pass_##NAME(enum red_pass kind, const W *x, W *y, int64_t outer, int64_t R,        \
                            int64_t inner)                                                         \
    {                                                                                              \
        int par = outer > 1 && outer * R * inner > 65536;                                          \
        _Pragma("omp parallel for if (par) schedule(static)") for (int64_t o = 0; o < outer; o++)  \
        {                                                                                          \
            const W *xo = x + o * R * inner;                                                       \
            W *yo = y + o * inner;                                                                 \
            W init = (W)0;                                                                         \
            if (kind == P_MAX || kind == P_LSE) init = LOWEST;                                     \
            if (kind == P_MIN) init = HIGHEST;                                                     \
            if (kind == P_PROD) init = (W)1;                                                       \
            for (int64_t j = 0; j < inner; j++)                                                    \
                yo[j] = init;                                                                      \
            if (kind == P_LSE) { /* max first, then the shifted sum of exponentials */             \
                for (int64_t r = 0; r < R; r++)                                                    \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[j] = xo[r * inner + j] > yo[j] ? xo[r * inner + j] : yo[j];             \
                for (int64_t j = 0; j < inner; j++) {                                              \
                    W m = yo[j];                                                                   \
                    if (!IS_FLOAT || !isfinite((double)m)) continue;                               \
                    double s = 0;                                                                  \
                    for (int64_t r = 0; r < R; r++)                                                \
                        s += exp((double)xo[r * inner + j] - (double)m);                           \
                    yo[j] = (W)(m + log(s));                                                       \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            if (inner == 1) {                                                                      \
                W acc = init;                                                                      \
                switch (kind) {                                                                    \
                case P_SUM:                                                                        \
                    _Pragma("omp simd reduction(+ : acc)") for (int64_t r = 0; r < R; r++) acc =   \
                        ADD(acc, xo[r]);                                                           \
                    break;                                                                         \
                case P_ABSSUM:                                                                     \
                    for (int64_t r = 0; r < R; r++)                                                \
                        acc = ADD(acc, ABS(xo[r]));                                                \
                    break;                                                                         \
                case P_SQSUM:                                                                      \
                    _Pragma("omp simd reduction(+ : acc)") for (int64_t r = 0; r < R; r++) acc =   \
                        ADD(acc, MUL(xo[r], xo[r]));                                               \
                    break;                                                                         \
                case P_MAX:                                                                        \
                    for (int64_t r = 0; r < R; r++)                                                \
                        acc = xo[r] > acc ? xo[r] : acc;                                           \
                    break;                                                                         \
                case P_MIN:                                                                        \
                    for (int64_t r = 0; r < R; r++)                                                \
                        acc = xo[r] < acc ? xo[r] : acc;                                           \
                    break;                                                                         \
                default:                                                                           \
                    for (int64_t r = 0; r < R; r++)                                                \
                        acc = MUL(acc, xo[r]);                                                     \
                    break;                                                                         \
                }                                                                                  \
                yo[0] = acc;                                                                       \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t r = 0; r < R; r++) {                                                      \
                const W *xr = xo + r * inner;                                                      \
                switch (kind) {                                                                    \
                case P_SUM:                                                                        \
                    _Pragma("omp simd") for (int64_t j = 0; j < inner; j++) yo[j] =                \
                        ADD(yo[j], xr[j]);                                                         \
                    break;                                                                         \
                case P_ABSSUM:                                                                     \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[j] = ADD(yo[j], ABS(xr[j]));                                            \
                    break;                                                                         \
                case P_SQSUM:                                                                      \
                    _Pragma("omp simd") for (int64_t j = 0; j < inner; j++) yo[j] =                \
                        ADD(yo[j], MUL(xr[j], xr[j]));                                             \
                    break;                                                                         \
                case P_MAX:                                                                        \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[j] = xr[j] > yo[j] ? xr[j] : yo[j];                                     \
                    break;                                                                         \
                case P_MIN:                                                                        \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[j] = xr[j] < yo[j] ? xr[j] : yo[j];                                     \
                    break;                                                                         \
                default:                                                                           \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yo[j] = MUL(yo[j], xr[j]);                                                 \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

#define F_ADD(a, b) ((a) + (b))
#define F_MUL(a, b) ((a) * (b))
#define I_ADD(a, b) ((int64_t)((uint64_t)(a) + (uint64_t)(b)))
#define I_MUL(a, b) ((int64_t)((uint64_t)(a) * (uint64_t)(b)))
#define I_ABS(a)    ((a) < 0 ? (int64_t)(0 - (uint64_t)(a)) : (a))
DEFINE_PASS(f, float, F_ADD, F_MUL, fabsf, -INFINITY, INFINITY, 1)
DEFINE_PASS(d, double, F_ADD, F_MUL, fabs, -INFINITY, INFINITY, 1)
DEFINE_PASS(i, int64_t, I_ADD, I_MUL, I_ABS, INT64_MIN, INT64_MAX, 0)

/* Working type of a reduction: float for f32/f16/bf16, int64 for exact integer results,
 * double for everything else (integer means, norms and logs included). */
enum work { W_FLOAT, W_DOUBLE, W_INT };

static ferry_status axes_of(fy_kernel *k, enum red_op op, int rank, int *red, int *n_axes)
{
    int64_t axes[FERRY_MAX_RANK];
    int n = 0;
    int from_input = (op == R_SUM && k->node->opset >= 13) || k->node->opset >= 18;
    if (from_input) {
        const fy_value *a;
        FY_CHECK(fy_input_tensor_opt(k, 1, &a));
        if (a) FY_CHECK(fy_input_ints(k, 1, axes, FERRY_MAX_RANK, &n));
    } else {
        const int64_t *v;
        int64_t len = fy_attr_ints(k, "axes", &v);
        if (len > FERRY_MAX_RANK)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "too many axes (%lld)", (long long)len);
        for (int64_t i = 0; i < len; i++)
            axes[n++] = v[i];
    }
    for (int i = 0; i < rank; i++)
        red[i] = 0;
    for (int i = 0; i < n; i++) {
        int a;
        FY_CHECK(fy_axis(k, axes[i], rank, &a));
        red[a] = 1;
    }
    *n_axes = n;
    return FERRY_OK;
}

static ferry_status run_reduce(fy_kernel *k, enum red_op op)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!fy_dtype_is_numeric(x->dtype) || x->dtype == FERRY_DTYPE_BOOL)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    int red[FERRY_MAX_RANK], n_axes = 0;
    FY_CHECK(axes_of(k, op, x->rank, red, &n_axes));
    int keep = fy_attr_int(k, "keepdims", 1) != 0;
    if (n_axes == 0) {
        if (fy_attr_int(k, "noop_with_empty_axes", 0))
            return fy_output_set(k, 0, fy_value_ref((fy_value *)x));
        for (int i = 0; i < x->rank; i++)
            red[i] = 1;
    }
    int64_t odims[FERRY_MAX_RANK], total_r = 1;
    int ro = 0;
    for (int i = 0; i < x->rank; i++) {
        if (red[i]) total_r *= x->dims[i];
        if (!red[i])
            odims[ro++] = x->dims[i];
        else if (keep)
            odims[ro++] = 1;
    }
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, ro, odims, &y));
    if (y->count == 0) return FERRY_OK;

    /* coalesce into blocks of kept / reduced dims (unit dims dropped) */
    int64_t size[FERRY_MAX_RANK + 1];
    int flag[FERRY_MAX_RANK + 1], nb = 0;
    for (int i = 0; i < x->rank; i++) {
        if (x->dims[i] == 1) continue;
        if (nb > 0 && flag[nb - 1] == red[i]) {
            size[nb - 1] *= x->dims[i];
        } else {
            size[nb] = x->dims[i], flag[nb] = red[i];
            nb++;
        }
    }
    int any = 0;
    for (int b = 0; b < nb; b++)
        any |= flag[b];
    if (!any) size[nb] = 1, flag[nb] = 1, nb++; /* element-wise finish (abs, square, log) */

    enum work wk;
    if (x->dtype == FERRY_DTYPE_F32 || x->dtype == FERRY_DTYPE_F16 || x->dtype == FERRY_DTYPE_BF16)
        wk = W_FLOAT;
    else if (fy_dtype_is_int(x->dtype) && op != R_MEAN && op != R_L2 && op != R_LOGSUM &&
             op != R_LOGSUMEXP)
        wk = W_INT;
    else
        wk = W_DOUBLE;
    size_t ws = wk == W_FLOAT ? sizeof(float) : 8;

    /* source in the working type */
    void *conv = NULL, *buf[2] = {NULL, NULL};
    const void *src = x->data;
    if (wk == W_FLOAT && x->dtype != FERRY_DTYPE_F32) {
        float *f;
        src = fy_nn_to_float(x, &f);
        conv = f;
    } else if ((wk == W_DOUBLE && x->dtype != FERRY_DTYPE_F64) ||
               (wk == W_INT && x->dtype != FERRY_DTYPE_I64)) {
        conv = malloc(ws * (size_t)(x->count + 1));
        if (conv)
            for (int64_t i = 0; i < x->count; i++) {
                if (wk == W_INT)
                    ((int64_t *)conv)[i] = fy_tensor_get_i64(x, i);
                else
                    ((double *)conv)[i] = fy_tensor_get_f64(x, i);
            }
        src = conv;
    }
    ferry_status rc = FERRY_OK;
    if (!src) {
        rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        goto out;
    }

    int64_t cur[FERRY_MAX_RANK + 1];
    memcpy(cur, size, sizeof(int64_t) * (size_t)nb);
    enum red_pass kind = first_pass(op);
    const void *in = src;
    int which = 0;
    for (int b = nb - 1; b >= 0; b--) {
        if (!flag[b]) continue;
        int64_t outer = 1, inner = 1;
        for (int j = 0; j < b; j++)
            outer *= cur[j];
        for (int j = b + 1; j < nb; j++)
            inner *= cur[j];
        if (!buf[which] && !(buf[which] = malloc(ws * (size_t)(outer * inner + 1)))) {
            rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        if (wk == W_FLOAT)
            pass_f(kind, in, buf[which], outer, cur[b], inner);
        else if (wk == W_DOUBLE)
            pass_d(kind, in, buf[which], outer, cur[b], inner);
        else
            pass_i(kind, in, buf[which], outer, cur[b], inner);
        cur[b] = 1;
        in = buf[which];
        which ^= 1;
        kind = later_pass(kind);
        free(buf[which]); /* the buffer two passes back; the next pass allocates afresh */
        buf[which] = NULL;
    }

    /* finish and store */
    for (int64_t i = 0; i < y->count; i++) {
        double v;
        if (wk == W_INT) {
            fy_tensor_set_i64(y, i, ((const int64_t *)in)[i]);
            continue;
        }
        v = wk == W_FLOAT ? ((const float *)in)[i] : ((const double *)in)[i];
        if (op == R_MEAN)
            v /= (double)total_r;
        else if (op == R_L2)
            v = sqrt(v);
        else if (op == R_LOGSUM)
            v = log(v);
        if (y->dtype == FERRY_DTYPE_F32)
            ((float *)y->data)[i] = (float)v;
        else if (y->dtype == FERRY_DTYPE_F64)
            ((double *)y->data)[i] = v;
        else
            fy_tensor_set_f64(y, i, v);
    }
out:
    free(conv), free(buf[0]), free(buf[1]);
    return rc;
}

ferry_status fy_op_ReduceSum(fy_kernel *k) { return run_reduce(k, R_SUM); }
ferry_status fy_op_ReduceMean(fy_kernel *k) { return run_reduce(k, R_MEAN); }
ferry_status fy_op_ReduceMax(fy_kernel *k) { return run_reduce(k, R_MAX); }
ferry_status fy_op_ReduceMin(fy_kernel *k) { return run_reduce(k, R_MIN); }
ferry_status fy_op_ReduceProd(fy_kernel *k) { return run_reduce(k, R_PROD); }
ferry_status fy_op_ReduceL1(fy_kernel *k) { return run_reduce(k, R_L1); }
ferry_status fy_op_ReduceL2(fy_kernel *k) { return run_reduce(k, R_L2); }
ferry_status fy_op_ReduceLogSum(fy_kernel *k) { return run_reduce(k, R_LOGSUM); }
ferry_status fy_op_ReduceLogSumExp(fy_kernel *k) { return run_reduce(k, R_LOGSUMEXP); }
ferry_status fy_op_ReduceSumSquare(fy_kernel *k) { return run_reduce(k, R_SUMSQ); }

/* ---- ArgMax / ArgMin --------------------------------------------------------------------- */

/* Index of the max (want_max) or min over r of x[o, r, j]; ties go to the first index, or the
 * last with last. */
#define DEFINE_ARG(T)                                                                              \
    static ferry_status arg_##T(const T *x, int64_t *y, int64_t outer, int64_t R, int64_t inner,   \
                                int want_max, int last)                                            \
    {                                                                                              \
        T *best = malloc(sizeof(T) * (size_t)(inner + 1));                                         \
        if (!best) return FERRY_E_NOMEM;                                                           \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *xo = x + o * R * inner;                                                       \
            int64_t *yo = y + o * inner;                                                           \
            for (int64_t j = 0; j < inner; j++)                                                    \
                best[j] = xo[j], yo[j] = 0;                                                        \
            for (int64_t r = 1; r < R; r++) {                                                      \
                const T *xr = xo + r * inner;                                                      \
                for (int64_t j = 0; j < inner; j++) {                                              \
                    T v = xr[j];                                                                   \
                    int better = want_max ? (last ? v >= best[j] : v > best[j])                    \
                                          : (last ? v <= best[j] : v < best[j]);                   \
                    if (better) best[j] = v, yo[j] = r;                                            \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(best);                                                                                \
        return FERRY_OK;                                                                           \
    }
DEFINE_ARG(float)
DEFINE_ARG(double)
DEFINE_ARG(int8_t)
DEFINE_ARG(uint8_t)
DEFINE_ARG(int16_t)
DEFINE_ARG(uint16_t)
DEFINE_ARG(int32_t)
DEFINE_ARG(uint32_t)
DEFINE_ARG(int64_t)
DEFINE_ARG(uint64_t)

static ferry_status run_arg(fy_kernel *k, int want_max)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!fy_dtype_is_numeric(x->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    int axis;
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
    int keep = fy_attr_int(k, "keepdims", 1) != 0;
    int last = fy_attr_int(k, "select_last_index", 0) != 0;
    int64_t R = x->rank ? x->dims[axis] : 1, outer = 1, inner = 1, odims[FERRY_MAX_RANK];
    int ro = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i < axis) outer *= x->dims[i];
        if (i > axis) inner *= x->dims[i];
        if (i != axis)
            odims[ro++] = x->dims[i];
        else if (keep)
            odims[ro++] = 1;
    }
    fy_value *y;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, ro, odims, &y));
    if (y->count == 0) return FERRY_OK;
    if (R == 0) return fy_kernel_error(k, FERRY_E_SHAPE, "cannot take the arg of an empty axis");
    ferry_status rc;
    int64_t *py = y->data;
    switch (x->dtype) {
    case FERRY_DTYPE_F32: rc = arg_float(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_F64: rc = arg_double(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_I8: rc = arg_int8_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_BOOL:
    case FERRY_DTYPE_U8: rc = arg_uint8_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_I16: rc = arg_int16_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_U16: rc = arg_uint16_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_I32: rc = arg_int32_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_U32: rc = arg_uint32_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_I64: rc = arg_int64_t(x->data, py, outer, R, inner, want_max, last); break;
    case FERRY_DTYPE_U64: rc = arg_uint64_t(x->data, py, outer, R, inner, want_max, last); break;
    default: { /* f16, bf16 */
        float *f;
        const float *pf = fy_nn_to_float(x, &f);
        rc = pf ? arg_float(pf, py, outer, R, inner, want_max, last) : FERRY_E_NOMEM;
        free(f);
        break;
    }
    }
    if (rc != FERRY_OK) return fy_kernel_error(k, rc, "out of memory");
    return FERRY_OK;
}

ferry_status fy_op_ArgMax(fy_kernel *k) { return run_arg(k, 1); }
ferry_status fy_op_ArgMin(fy_kernel *k) { return run_arg(k, 0); }
