/* pool.c — MaxPool (with Indices), AveragePool, LpPool, their Global forms, and MaxUnpool.
 * Windows come from fy_window (conv.c); each (n, c) plane is one parallel work item. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/nn_util.h"

/* Per spatial dim and output index: first input position of the window, the range of kernel
 * taps that land inside the input, and how many taps land inside input + padding. */
typedef struct pool_ranges {
    int64_t *start[FY_WIN_DIMS], *klo[FY_WIN_DIMS], *khi[FY_WIN_DIMS], *npad[FY_WIN_DIMS];
    int64_t *wlo, *whi; /* per tap of the last dim: outputs [wlo, whi) whose input is inside */
    int64_t *mem;
} pool_ranges;

static ferry_status ranges_init(const fy_kernel *k, const fy_window *w, pool_ranges *r)
{
    int64_t total = 0;
    for (int d = 0; d < FY_WIN_DIMS; d++)
        total += w->out[d];
    r->mem = malloc(sizeof(int64_t) * (4 * (size_t)total + 2 * (size_t)w->kernel[2] + 1));
    if (!r->mem) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    int64_t *p = r->mem;
    for (int d = 0; d < FY_WIN_DIMS; d++) {
        int64_t n = w->out[d], K = w->kernel[d], dil = w->dil[d], in = w->in[d];
        r->start[d] = p, r->klo[d] = p + n, r->khi[d] = p + 2 * n, r->npad[d] = p + 3 * n;
        p += 4 * n;
        for (int64_t o = 0; o < n; o++) {
            int64_t st = o * w->stride[d] - w->pad0[d];
            int64_t lo = st >= 0 ? 0 : (-st + dil - 1) / dil;
            int64_t hi = in - st <= 0 ? 0 : (in - st + dil - 1) / dil;
            if (hi > K) hi = K;
            if (lo > hi) lo = hi;
            /* taps inside [-pad0, in + pad1): the divisor when padding counts */
            int64_t plo = st >= -w->pad0[d] ? 0 : (-w->pad0[d] - st + dil - 1) / dil;
            int64_t lim = in + w->pad1[d] - st;
            int64_t phi = lim <= 0 ? 0 : (lim + dil - 1) / dil;
            if (phi > K) phi = K;
            r->start[d][o] = st, r->klo[d][o] = lo, r->khi[d][o] = hi;
            r->npad[d][o] = phi > plo ? phi - plo : 0;
        }
    }
    r->wlo = p, r->whi = p + w->kernel[2];
    for (int64_t kw = 0; kw < w->kernel[2]; kw++) {
        int64_t shift = kw * w->dil[2] - w->pad0[2], s = w->stride[2], n = w->out[2];
        int64_t lo = shift >= 0 ? 0 : (-shift + s - 1) / s;
        int64_t hi = w->in[2] - shift <= 0 ? 0 : (w->in[2] - shift - 1) / s + 1;
        r->wlo[kw] = lo < n ? lo : n;
        r->whi[kw] = hi < r->wlo[kw] ? r->wlo[kw] : hi < n ? hi : n;
    }
    return FERRY_OK;
}

#define WINDOW_LOOPS(T, ...)                                                                       \
    for (int64_t kd = r->klo[0][od]; kd < r->khi[0][od]; kd++) {                                   \
        int64_t id = r->start[0][od] + kd * w->dil[0];                                             \
        for (int64_t kh = r->klo[1][oh]; kh < r->khi[1][oh]; kh++) {                               \
            int64_t ih = r->start[1][oh] + kh * w->dil[1];                                         \
            const T *row = x + (id * IH + ih) * IW;                                                \
            for (int64_t kw = r->klo[2][ow]; kw < r->khi[2][ow]; kw++) {                           \
                int64_t iw = r->start[2][ow] + kw * w->dil[2];                                     \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    }

/* MaxPool over one plane. ind (may be NULL) gets base + the flat position of the max, row-major
 * or, with col_major, column-major over the spatial dims. */
#define DEFINE_MAXPOOL(T, LOWEST)                                                                  \
    static void maxpool_##T(const T *x, T *y, int64_t *ind, int64_t base, int col_major,           \
                            const fy_window *w, const pool_ranges *r)                              \
    {                                                                                              \
        int64_t IH = w->in[1], IW = w->in[2], ID = w->in[0];                                       \
        for (int64_t od = 0; od < w->out[0]; od++)                                                 \
            for (int64_t oh = 0; oh < w->out[1]; oh++)                                             \
                for (int64_t ow = 0; ow < w->out[2]; ow++) {                                       \
                    T best = LOWEST;                                                               \
                    int64_t bd = 0, bh = 0, bw = 0;                                                \
                    int have = 0;                                                                  \
                    WINDOW_LOOPS(                                                                  \
                        T, if (!have || row[iw] > best) {                                          \
                            best = row[iw], bd = id, bh = ih, bw = iw, have = 1;                   \
                        })                                                                         \
                    *y++ = best;                                                                   \
                    if (ind)                                                                       \
                        *ind++ = base + (col_major ? bd + bh * ID + bw * ID * IH                   \
                                                   : (bd * IH + bh) * IW + bw);                    \
                }                                                                                  \
    }
DEFINE_MAXPOOL(float, -INFINITY)
DEFINE_MAXPOOL(double, -INFINITY)
DEFINE_MAXPOOL(int8_t, INT8_MIN)
DEFINE_MAXPOOL(uint8_t, 0)

/* AveragePool (p == 0) or LpPool (p > 0) over one plane. */
#define DEFINE_AVGPOOL(T)                                                                          \
    static void avgpool_##T(const T *x, T *y, int count_pad, double p, const fy_window *w,         \
                            const pool_ranges *r)                                                  \
    {                                                                                              \
        int64_t IH = w->in[1], IW = w->in[2];                                                      \
        for (int64_t od = 0; od < w->out[0]; od++)                                                 \
            for (int64_t oh = 0; oh < w->out[1]; oh++)                                             \
                for (int64_t ow = 0; ow < w->out[2]; ow++) {                                       \
                    double s = 0;                                                                  \
                    if (p == 0) {                                                                  \
                        WINDOW_LOOPS(T, s += row[iw];)                                             \
                        int64_t n = count_pad ? r->npad[0][od] * r->npad[1][oh] * r->npad[2][ow]   \
                                              : (r->khi[0][od] - r->klo[0][od]) *                  \
                                                    (r->khi[1][oh] - r->klo[1][oh]) *              \
                                                    (r->khi[2][ow] - r->klo[2][ow]);               \
                        *y++ = (T)(n > 0 ? s / (double)n : 0.0);                                   \
                    } else if (p == 1) {                                                           \
                        WINDOW_LOOPS(T, s += fabs((double)row[iw]);)                               \
                        *y++ = (T)s;                                                               \
                    } else if (p == 2) {                                                           \
                        WINDOW_LOOPS(T, s += (double)row[iw] * row[iw];)                           \
                        *y++ = (T)sqrt(s);                                                         \
                    } else {                                                                       \
                        WINDOW_LOOPS(T, s += pow(fabs((double)row[iw]), p);)                       \
                        *y++ = (T)pow(s, 1.0 / p);                                                 \
                    }                                                                              \
                }                                                                                  \
    }
DEFINE_AVGPOOL(float)
DEFINE_AVGPOOL(double)

/* Row sweeps for the common cases (max without indices, average). Per output row, the input
 * rows under the window are first combined element-wise into vr (contiguous, vectorized), then
 * each output takes its KW taps from vr: the strided part runs once instead of once per row. */
#define ROW_SWEEP(T, INIT, COMBINE, ACC, ACC3)                                                     \
    int64_t IH = w->in[1], IW = w->in[2], OW = w->out[2], s = w->stride[2], KW = w->kernel[2];     \
    /* outputs [L, R) see all KW taps inside the row */                                            \
    int64_t L = r->wlo[0], R = r->whi[0];                                                          \
    for (int64_t kw = 1; kw < KW; kw++) {                                                          \
        if (r->wlo[kw] > L) L = r->wlo[kw];                                                        \
        if (r->whi[kw] < R) R = r->whi[kw];                                                        \
    }                                                                                              \
    if (R < L) R = L;                                                                              \
    int fuse3 = KW == 3 && R > L;                                                                  \
    int64_t k0 = -w->pad0[2], k1 = w->dil[2] - w->pad0[2], k2 = 2 * w->dil[2] - w->pad0[2];        \
    for (int64_t od = 0; od < w->out[0]; od++)                                                     \
        for (int64_t oh = 0; oh < w->out[1]; oh++) {                                               \
            T *yr = y + (od * w->out[1] + oh) * OW;                                                \
            for (int64_t o = 0; o < OW; o++)                                                       \
                yr[o] = INIT;                                                                      \
            int nrows = 0;                                                                         \
            for (int64_t kd = r->klo[0][od]; kd < r->khi[0][od]; kd++) {                           \
                int64_t id = r->start[0][od] + kd * w->dil[0];                                     \
                for (int64_t kh = r->klo[1][oh]; kh < r->khi[1][oh]; kh++) {                       \
                    const T *xr = x + (id * IH + r->start[1][oh] + kh * w->dil[1]) * IW;           \
                    if (nrows++ == 0) {                                                            \
                        memcpy(vr, xr, sizeof(T) * (size_t)IW);                                    \
                    } else {                                                                       \
                        _Pragma("omp simd") for (int64_t i = 0; i < IW; i++)                       \
                        {                                                                          \
                            T a = vr[i], b = xr[i];                                                \
                            vr[i] = COMBINE;                                                       \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            if (nrows > 0) {                                                                       \
                const T *xr = vr;                                                                  \
                if (fuse3) {                                                                       \
                    if (s == 1) {                                                                  \
                        _Pragma("omp simd") for (int64_t o = L; o < R; o++)                        \
                        {                                                                          \
                            T v0 = xr[o + k0], v1 = xr[o + k1], v2 = xr[o + k2];                   \
                            ACC3;                                                                  \
                        }                                                                          \
                    } else {                                                                       \
                        for (int64_t o = L; o < R; o++) {                                          \
                            T v0 = xr[o * s + k0], v1 = xr[o * s + k1], v2 = xr[o * s + k2];       \
                            ACC3;                                                                  \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                for (int64_t kw = 0; kw < KW; kw++) {                                              \
                    int64_t off = kw * w->dil[2] - w->pad0[2], lo = r->wlo[kw], hi = r->whi[kw];   \
                    /* with fuse3 only the edges [lo, L) and [R, hi) are left */                   \
                    for (int part = 0; part < 2; part++) {                                         \
                        int64_t a = lo, e = hi;                                                    \
                        if (fuse3)                                                                 \
                            a = part ? R : lo, e = part ? hi : L;                                  \
                        else if (part)                                                             \
                            break;                                                                 \
                        if (s == 1) {                                                              \
                            _Pragma("omp simd") for (int64_t o = a; o < e; o++)                    \
                            {                                                                      \
                                T v = xr[o + off];                                                 \
                                ACC;                                                               \
                            }                                                                      \
                        } else {                                                                   \
                            for (int64_t o = a; o < e; o++) {                                      \
                                T v = xr[o * s + off];                                             \
                                ACC;                                                               \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            FINISH_ROW                                                                             \
        }

#define FINISH_ROW
#define DEFINE_MAXROWS(T, LOWEST)                                                                  \
    static void maxrows_##T(const T *x, T *y, const fy_window *w, const pool_ranges *r, T *vr)     \
    {                                                                                              \
        ROW_SWEEP(T, LOWEST, b > a ? b : a, yr[o] = v > yr[o] ? v : yr[o], {                       \
            T m = v0 > v1 ? v0 : v1;                                                               \
            m = v2 > m ? v2 : m;                                                                   \
            yr[o] = m > yr[o] ? m : yr[o];                                                         \
        })                                                                                         \
    }
DEFINE_MAXROWS(float, -INFINITY)
DEFINE_MAXROWS(double, -INFINITY)
DEFINE_MAXROWS(int8_t, INT8_MIN)
DEFINE_MAXROWS(uint8_t, 0)
#undef FINISH_ROW

#define FINISH_ROW                                                                                 \
    {                                                                                              \
        int64_t nd = count_pad ? r->npad[0][od] : r->khi[0][od] - r->klo[0][od];                   \
        int64_t nh = count_pad ? r->npad[1][oh] : r->khi[1][oh] - r->klo[1][oh];                   \
        for (int64_t o = 0; o < OW; o++) {                                                         \
            int64_t n = nd * nh * (count_pad ? r->npad[2][o] : r->khi[2][o] - r->klo[2][o]);       \
            yr[o] = n > 0 ? yr[o] / (__typeof__(yr[0]))n : 0;                                      \
        }                                                                                          \
    }
#define DEFINE_AVGROWS(T)                                                                          \
    static void avgrows_##T(const T *x, T *y, int count_pad, const fy_window *w,                   \
                            const pool_ranges *r, T *vr)                                           \
    {                                                                                              \
        ROW_SWEEP(T, (T)0, a + b, yr[o] += v, yr[o] += v0 + v1 + v2)                               \
    }
DEFINE_AVGROWS(float)
DEFINE_AVGROWS(double)
#undef FINISH_ROW

enum pool_kind { POOL_MAX, POOL_AVG, POOL_LP };

static ferry_status run_pool(fy_kernel *k, enum pool_kind kind)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (kind == POOL_MAX)
        FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                                FERRY_DTYPE_BF16, FERRY_DTYPE_I8, FERRY_DTYPE_U8,
                                FERRY_DTYPE_UNDEFINED));
    else
        FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                                FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    fy_window w;
    int ceil_mode = fy_attr_int(k, "ceil_mode", 0) != 0;
    FY_CHECK(fy_window_init(k, x, NULL, 1, ceil_mode, &w));
    int count_pad = fy_attr_int(k, "count_include_pad", 0) != 0;
    double p = 0;
    if (kind == POOL_LP) {
        p = fy_attr_float(k, "p", 2.0f);
        if (!(p > 0) || p > 1e6)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "p must be positive, got %g", p);
    }
    int col_major = fy_attr_int(k, "storage_order", 0) != 0;

    int64_t N = x->dims[0], C = x->dims[1], odims[2 + FY_WIN_DIMS] = {N, C};
    for (int i = 0; i < w.nsp; i++)
        odims[2 + i] = w.out[FY_WIN_DIMS - w.nsp + i];
    fy_value *y, *ind = NULL;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, odims, &y));
    if (kind == POOL_MAX && fy_output_wanted(k, 1))
        FY_CHECK(fy_output(k, 1, FERRY_DTYPE_I64, x->rank, odims, &ind));
    if (y->count == 0) return FERRY_OK;

    pool_ranges r;
    FY_CHECK(ranges_init(k, &w, &r));
    /* one row of vertically combined input per thread */
    char *scratch = malloc(sizeof(double) * (size_t)(w.in[2] * omp_get_max_threads() + 1));
    if (!scratch) {
        free(r.mem);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
#define SCRATCH(T) (T *)(scratch + sizeof(double) * (size_t)(w.in[2] * omp_get_thread_num()))
    int64_t planes = N * C, isp = w.in[0] * w.in[1] * w.in[2];
    int64_t osp = w.out[0] * w.out[1] * w.out[2];
    int64_t ksp = w.kernel[0] * w.kernel[1] * w.kernel[2];
    int par = (double)y->count * (double)ksp > 65536;
    float *fx = NULL, *fy = NULL;
    ferry_status rc = FERRY_OK;
    switch (x->dtype) {
    case FERRY_DTYPE_F64: {
        const double *px = x->data;
        double *py = y->data;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t pl = 0; pl < planes; pl++) {
            if (kind == POOL_MAX && !ind)
                maxrows_double(px + pl * isp, py + pl * osp, &w, &r, SCRATCH(double));
            else if (kind == POOL_MAX)
                maxpool_double(px + pl * isp, py + pl * osp, (int64_t *)ind->data + pl * osp,
                               pl * isp, col_major, &w, &r);
            else if (kind == POOL_AVG)
                avgrows_double(px + pl * isp, py + pl * osp, count_pad, &w, &r, SCRATCH(double));
            else
                avgpool_double(px + pl * isp, py + pl * osp, count_pad, p, &w, &r);
        }
        break;
    }
#define INT_CASE(DT, T)                                                                            \
    case DT: {                                                                                     \
        const T *px = x->data;                                                                     \
        T *py = y->data;                                                                           \
        _Pragma("omp parallel for if (par) schedule(static)") for (int64_t pl = 0; pl < planes;    \
                                                                   pl++)                           \
        {                                                                                          \
            if (!ind)                                                                              \
                maxrows_##T(px + pl * isp, py + pl * osp, &w, &r, SCRATCH(T));                     \
            else                                                                                   \
                maxpool_##T(px + pl * isp, py + pl * osp, (int64_t *)ind->data + pl * osp,         \
                            pl * isp, col_major, &w, &r);                                          \
        }                                                                                          \
        break;                                                                                     \
    }
        INT_CASE(FERRY_DTYPE_I8, int8_t)
        INT_CASE(FERRY_DTYPE_U8, uint8_t)
#undef INT_CASE
    default: {
        const float *px = fy_nn_to_float(x, &fx);
        float *py =
            x->dtype == FERRY_DTYPE_F32 ? y->data : (fy = malloc(sizeof(float) * (size_t)y->count));
        if (!px || !py) {
            rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            break;
        }
#pragma omp parallel for if (par) schedule(static)
        for (int64_t pl = 0; pl < planes; pl++) {
            if (kind == POOL_MAX && !ind)
                maxrows_float(px + pl * isp, py + pl * osp, &w, &r, SCRATCH(float));
            else if (kind == POOL_MAX)
                maxpool_float(px + pl * isp, py + pl * osp, (int64_t *)ind->data + pl * osp,
                              pl * isp, col_major, &w, &r);
            else if (kind == POOL_AVG)
                avgrows_float(px + pl * isp, py + pl * osp, count_pad, &w, &r, SCRATCH(float));
            else
                avgpool_float(px + pl * isp, py + pl * osp, count_pad, p, &w, &r);
        }
        fy_nn_from_float(y, py);
        break;
    }
    }
    free(fx), free(fy), free(r.mem), free(scratch);
    return rc;
#undef SCRATCH
}

ferry_status fy_op_MaxPool(fy_kernel *k) { return run_pool(k, POOL_MAX); }
ferry_status fy_op_AveragePool(fy_kernel *k) { return run_pool(k, POOL_AVG); }
ferry_status fy_op_LpPool(fy_kernel *k) { return run_pool(k, POOL_LP); }

/* ---- global pools ------------------------------------------------------------------------ */

static double global_reduce_f(const float *x, int64_t n, enum pool_kind kind, double p)
{
    if (kind == POOL_MAX) {
        float m = n > 0 ? x[0] : -INFINITY;
        for (int64_t i = 1; i < n; i++)
            m = x[i] > m ? x[i] : m;
        return m;
    }
    if (kind == POOL_AVG || p == 1) {
        float s = 0;
        if (kind == POOL_AVG) {
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < n; i++)
                s += x[i];
            return n > 0 ? (double)s / (double)n : 0.0;
        }
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; i++)
            s += fabsf(x[i]);
        return s;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += p == 2 ? (double)x[i] * x[i] : pow(fabs(x[i]), p);
    return p == 2 ? sqrt(s) : pow(s, 1.0 / p);
}

static double global_reduce_d(const double *x, int64_t n, enum pool_kind kind, double p)
{
    double s = kind == POOL_MAX ? -INFINITY : 0;
    for (int64_t i = 0; i < n; i++) {
        if (kind == POOL_MAX)
            s = x[i] > s ? x[i] : s;
        else if (kind == POOL_AVG)
            s += x[i];
        else
            s += pow(fabs(x[i]), p);
    }
    if (kind == POOL_AVG) return n > 0 ? s / (double)n : 0.0;
    if (kind == POOL_LP) return pow(s, 1.0 / p);
    return s;
}

static ferry_status run_global(fy_kernel *k, enum pool_kind kind)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    if (x->rank < 2) return fy_kernel_error(k, FERRY_E_SHAPE, "input must be N x C x ...");
    double p = 0;
    if (kind == POOL_LP) {
        p = fy_attr_float(k, "p", 2.0f);
        if (!(p > 0) || p > 1e6)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "p must be positive, got %g", p);
    }
    int64_t odims[FERRY_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        odims[i] = i < 2 ? x->dims[i] : 1;
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, odims, &y));
    int64_t planes = y->count, sp = planes ? x->count / planes : 0;
    if (planes == 0) return FERRY_OK;
    int par = x->count > 65536;
    if (x->dtype == FERRY_DTYPE_F64) {
        const double *px = x->data;
        double *py = y->data;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t pl = 0; pl < planes; pl++)
            py[pl] = global_reduce_d(px + pl * sp, sp, kind, p);
        return FERRY_OK;
    }
    float *fx = NULL;
    const float *px = fy_nn_to_float(x, &fx);
    if (!px) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    if (x->dtype == FERRY_DTYPE_F32) {
        float *py = y->data;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t pl = 0; pl < planes; pl++)
            py[pl] = (float)global_reduce_f(px + pl * sp, sp, kind, p);
    } else {
        for (int64_t pl = 0; pl < planes; pl++)
            fy_tensor_set_f64(y, pl, global_reduce_f(px + pl * sp, sp, kind, p));
    }
    free(fx);
    return FERRY_OK;
}

ferry_status fy_op_GlobalMaxPool(fy_kernel *k) { return run_global(k, POOL_MAX); }
ferry_status fy_op_GlobalAveragePool(fy_kernel *k) { return run_global(k, POOL_AVG); }
ferry_status fy_op_GlobalLpPool(fy_kernel *k) { return run_global(k, POOL_LP); }

/* ---- MaxUnpool --------------------------------------------------------------------------- */

ferry_status fy_op_MaxUnpool(fy_kernel *k)
{
    const fy_value *x, *ind, *shape;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &ind));
    FY_CHECK(fy_input_tensor_opt(k, 2, &shape));
    FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    if (ind->dtype != FERRY_DTYPE_I64 || !fy_shape_equal(ind->rank, ind->dims, x->rank, x->dims))
        return fy_kernel_error(k, FERRY_E_SHAPE, "I must be int64 with the shape of X");
    /* Indices are flat positions in the pooled tensor's shape, (in - 1) * stride + kernel -
     * pads; an explicit output_shape receives them at the same coordinates. */
    fy_window w;
    FY_CHECK(fy_window_init(k, x, NULL, 0, 0, &w));
    int64_t idims[FERRY_MAX_RANK], odims[FERRY_MAX_RANK];
    idims[0] = x->dims[0], idims[1] = x->dims[1];
    for (int i = 0; i < w.nsp; i++) {
        int d = FY_WIN_DIMS - w.nsp + i;
        idims[2 + i] = (w.in[d] - 1) * w.stride[d] + w.kernel[d] - w.pad0[d] - w.pad1[d];
        if (idims[2 + i] < 0)
            return fy_kernel_error(k, FERRY_E_SHAPE, "pads exceed the output size");
    }
    memcpy(odims, idims, sizeof(int64_t) * (size_t)x->rank);
    if (shape) {
        int n;
        FY_CHECK(fy_input_ints(k, 2, odims, FERRY_MAX_RANK, &n));
        if (n != x->rank)
            return fy_kernel_error(k, FERRY_E_SHAPE, "output_shape has %d dims, X has %d", n,
                                   x->rank);
        if (odims[0] != x->dims[0] || odims[1] != x->dims[1])
            return fy_kernel_error(k, FERRY_E_SHAPE, "output_shape must keep N and C of X");
    }
    int same = fy_shape_equal(x->rank, idims, x->rank, odims);
    int64_t icount = fy_shape_count(x->rank, idims);
    fy_value *y;
    FY_CHECK(fy_output_zeros(k, 0, x->dtype, x->rank, odims, &y));
    const int64_t *pi = ind->data;
    size_t es = ferry_dtype_size(x->dtype);
    for (int64_t i = 0; i < x->count; i++) {
        int64_t at = pi[i];
        if (at < 0 || at >= icount)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "index %lld is outside the pooled "
                                   "shape of %lld elements",
                                   (long long)at, (long long)icount);
        if (!same) {
            int64_t rem = at, mul = 1, to = 0;
            int inside = 1;
            for (int d = x->rank - 1; d >= 0; d--) {
                int64_t c = rem % idims[d];
                rem /= idims[d];
                if (c >= odims[d]) inside = 0;
                to += c * mul;
                mul *= odims[d];
            }
            if (!inside) continue;
            at = to;
        }
        memcpy((char *)y->data + (size_t)at * es, (const char *)x->data + (size_t)i * es, es);
    }
    return FERRY_OK;
}
