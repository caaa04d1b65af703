/* softmax.c — Softmax, LogSoftmax and Hardmax. Before opset 13 they flatten the input to 2-D
 * at axis (default 1) and normalize whole rows; from 13 on they normalize along one axis
 * (default -1). Both become one loop over (outer, n, inner) blocks. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "ops/elementwise_util.h"

enum { SOFTMAX, LOG_SOFTMAX, HARDMAX };

/* Columns handled together when the axis is not the last one (scratch lives on the stack). */
#define COLS 256

/* Stamp the kernels for one float type T with exponential EXP and logarithm LOG. row_T works on
 * a contiguous run of n values; cols_T on `w` interleaved columns of n values, stride inner. */
#define SOFTMAX_IMPL(T, EXP, LOG)                                                                  \
    FY_EW_TARGET static void row_##T(const T *x, T *y, int64_t n, int mode)                        \
    {                                                                                              \
        T m = x[0];                                                                                \
        if (mode == HARDMAX) { /* the first maximum wins */                                        \
            int64_t arg = 0;                                                                       \
            for (int64_t i = 1; i < n; i++)                                                        \
                if (x[i] > m) m = x[i], arg = i;                                                   \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = 0;                                                                          \
            y[arg] = 1;                                                                            \
            return;                                                                                \
        }                                                                                          \
        _Pragma("omp simd reduction(max : m)") for (int64_t i = 1; i < n; i++)                     \
        {                                                                                          \
            m = x[i] > m ? x[i] : m;                                                               \
        }                                                                                          \
        T s = 0;                                                                                   \
        _Pragma("omp simd reduction(+ : s)") for (int64_t i = 0; i < n; i++)                       \
        {                                                                                          \
            T e = EXP(x[i] - m);                                                                   \
            y[i] = e;                                                                              \
            s += e;                                                                                \
        }                                                                                          \
        if (mode == SOFTMAX) {                                                                     \
            T inv = 1 / s;                                                                         \
            FY_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] *= inv;                                \
        } else {                                                                                   \
            T shift = m + LOG(s);                                                                  \
            FY_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] - shift;                        \
        }                                                                                          \
    }                                                                                              \
    FY_EW_TARGET static void cols_##T(const T *x, T *y, int64_t n, int64_t inner, int64_t w,       \
                                      int mode)                                                    \
    {                                                                                              \
        T m[COLS], s[COLS];                                                                        \
        int64_t arg[COLS];                                                                         \
        for (int64_t j = 0; j < w; j++)                                                            \
            m[j] = x[j], s[j] = 0, arg[j] = 0;                                                     \
        if (mode == HARDMAX) { /* the first maximum of each column wins */                         \
            for (int64_t i = 1; i < n; i++)                                                        \
                for (int64_t j = 0; j < w; j++)                                                    \
                    if (x[i * inner + j] > m[j]) m[j] = x[i * inner + j], arg[j] = i;              \
            for (int64_t i = 0; i < n; i++)                                                        \
                for (int64_t j = 0; j < w; j++)                                                    \
                    y[i * inner + j] = arg[j] == i;                                                \
            return;                                                                                \
        }                                                                                          \
        for (int64_t i = 1; i < n; i++) {                                                          \
            const T *xi = x + i * inner;                                                           \
            FY_EW_SIMD for (int64_t j = 0; j < w; j++) m[j] =                                      \
                FY_EW_SEL(xi[j] > m[j], xi[j], m[j]);                                              \
        }                                                                                          \
        for (int64_t i = 0; i < n; i++) {                                                          \
            const T *xi = x + i * inner;                                                           \
            T *yi = y + i * inner;                                                                 \
            FY_EW_SIMD for (int64_t j = 0; j < w; j++)                                             \
            {                                                                                      \
                T e = EXP(xi[j] - m[j]);                                                           \
                yi[j] = e;                                                                         \
                s[j] += e;                                                                         \
            }                                                                                      \
        }                                                                                          \
        for (int64_t j = 0; j < w; j++)                                                            \
            s[j] = mode == SOFTMAX ? 1 / s[j] : m[j] + LOG(s[j]);                                  \
        for (int64_t i = 0; i < n; i++) {                                                          \
            const T *xi = x + i * inner;                                                           \
            T *yi = y + i * inner;                                                                 \
            if (mode == SOFTMAX) {                                                                 \
                FY_EW_SIMD for (int64_t j = 0; j < w; j++) yi[j] *= s[j];                          \
            } else {                                                                               \
                FY_EW_SIMD for (int64_t j = 0; j < w; j++) yi[j] = xi[j] - s[j];                   \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void run_##T(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, int mode,       \
                        int threads)                                                               \
    {                                                                                              \
        int64_t blocks = (inner + COLS - 1) / COLS, tasks = outer * blocks;                        \
        bool par = outer * n * inner >= FY_EW_PARALLEL_MIN && tasks > 1 && threads != 1;           \
        int nt = threads > 0 ? threads : omp_get_max_threads();                                    \
        _Pragma("omp parallel for schedule(static) if (par) num_threads(nt)") for (int64_t t = 0;  \
                                                                                   t < tasks; t++) \
        {                                                                                          \
            int64_t o = t / blocks, j0 = (t % blocks) * COLS;                                      \
            int64_t w = inner - j0 < COLS ? inner - j0 : COLS;                                     \
            const T *xb = x + o * n * inner + j0;                                                  \
            T *yb = y + o * n * inner + j0;                                                        \
            if (inner == 1)                                                                        \
                row_##T(xb, yb, n, mode);                                                          \
            else                                                                                   \
                cols_##T(xb, yb, n, inner, w, mode);                                               \
        }                                                                                          \
    }

SOFTMAX_IMPL(float, fy_ew_expf, logf)
SOFTMAX_IMPL(double, exp, log)

void fy_softmax_rows_f32(float *x, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) row_float(x + r * n, x + r * n, n, SOFTMAX);
}

static ferry_status softmax_like(fy_kernel *k, int mode)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!fy_dtype_is_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    bool legacy = k->node->opset < 13;
    int64_t outer = 1, n = 1, inner = 1;
    if (x->rank > 0) {
        int axis;
        FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", legacy ? 1 : -1), x->rank, &axis));
        for (int d = 0; d < x->rank; d++) {
            if (d < axis)
                outer *= x->dims[d];
            else if (d == axis || legacy)
                n *= x->dims[d];
            else
                inner *= x->dims[d];
        }
    }
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &out));
    if (x->count == 0) return FERRY_OK;
    if (x->dtype == FERRY_DTYPE_F32) {
        run_float(x->data, out->data, outer, n, inner, mode, k->threads);
    } else if (x->dtype == FERRY_DTYPE_F64) {
        run_double(x->data, out->data, outer, n, inner, mode, k->threads);
    } else { /* float16 and bfloat16 compute in float32 */
        float *buf = malloc(sizeof(float) * (size_t)x->count * 2);
        if (!buf) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        float *y = buf + x->count;
        for (int64_t i = 0; i < x->count; i++)
            buf[i] = (float)fy_tensor_get_f64(x, i);
        run_float(buf, y, outer, n, inner, mode, k->threads);
        for (int64_t i = 0; i < x->count; i++)
            fy_tensor_set_f64(out, i, y[i]);
        free(buf);
    }
    return FERRY_OK;
}

ferry_status fy_op_Softmax(fy_kernel *k) { return softmax_like(k, SOFTMAX); }
ferry_status fy_op_LogSoftmax(fy_kernel *k) { return softmax_like(k, LOG_SOFTMAX); }
ferry_status fy_op_Hardmax(fy_kernel *k) { return softmax_like(k, HARDMAX); }
