/* conv.c — Conv and ConvTranspose (1-D to 3-D, groups, dilations, auto_pad), plus the window
 * geometry the pools share. Conv lowers to im2col + fy_sgemm; depthwise convs run direct. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/nn_util.h"

#define WIN_MAX_ATTR                                                                               \
    ((int64_t)1 << 30) /* bound on sizes, strides, pads: products stay in int64                    \
                        */

/* ---- geometry ---------------------------------------------------------------------------- */

/* Copy an optional ints attribute of n entries into dst at offset off; -1 when absent. */
static ferry_status read_ints(const fy_kernel *k, const char *name, int n, int off, int64_t lo,
                              int64_t *dst, int *present)
{
    const int64_t *v;
    int64_t len = fy_attr_ints(k, name, &v);
    *present = len >= 0;
    if (len < 0) return FERRY_OK;
    if (len != n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute %s has %lld values, expected %d",
                               name, (long long)len, n);
    for (int i = 0; i < n; i++) {
        if (v[i] < lo || v[i] > WIN_MAX_ATTR)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "attribute %s[%d] = %lld is out of "
                                   "range",
                                   name, i, (long long)v[i]);
        dst[off + i] = v[i];
    }
    return FERRY_OK;
}

/* auto_pad as 0 NOTSET, 1 SAME_UPPER, 2 SAME_LOWER, 3 VALID. */
static ferry_status read_auto_pad(const fy_kernel *k, int *mode)
{
    const char *s = fy_attr_string(k, "auto_pad", "NOTSET");
    if (!strcmp(s, "NOTSET") || !*s)
        *mode = 0;
    else if (!strcmp(s, "SAME_UPPER"))
        *mode = 1;
    else if (!strcmp(s, "SAME_LOWER"))
        *mode = 2;
    else if (!strcmp(s, "VALID"))
        *mode = 3;
    else
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "unknown auto_pad \"%s\"", s);
    return FERRY_OK;
}

static ferry_status check_input_rank(const fy_kernel *k, const fy_value *x)
{
    if (x->rank < 3 || x->rank > 2 + FY_WIN_DIMS)
        return fy_kernel_error(k, x->rank < 3 ? FERRY_E_SHAPE : FERRY_E_UNSUPPORTED,
                               "input has rank %d; N x C x D1.. with 1 to %d spatial dims is "
                               "supported",
                               x->rank, FY_WIN_DIMS);
    return FERRY_OK;
}

static void window_reset(fy_window *w, const fy_value *x)
{
    w->nsp = x->rank - 2;
    int off = FY_WIN_DIMS - w->nsp;
    for (int i = 0; i < FY_WIN_DIMS; i++) {
        w->in[i] = i >= off ? x->dims[2 + i - off] : 1;
        w->out[i] = w->kernel[i] = w->stride[i] = w->dil[i] = 1;
        w->pad0[i] = w->pad1[i] = 0;
    }
}

ferry_status fy_window_init(const fy_kernel *k, const fy_value *x, const int64_t *kernel,
                            int use_dilations, int ceil_mode, fy_window *w)
{
    FY_CHECK(check_input_rank(k, x));
    window_reset(w, x);
    int nsp = w->nsp, off = FY_WIN_DIMS - nsp, present, mode;
    FY_CHECK(read_ints(k, "kernel_shape", nsp, off, 1, w->kernel, &present));
    if (!present) {
        if (!kernel) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "kernel_shape is required");
        for (int i = 0; i < nsp; i++) {
            if (kernel[i] < 1 || kernel[i] > WIN_MAX_ATTR)
                return fy_kernel_error(k, FERRY_E_SHAPE, "kernel dim %d is %lld", i,
                                       (long long)kernel[i]);
            w->kernel[off + i] = kernel[i];
        }
    } else if (kernel) {
        for (int i = 0; i < nsp; i++)
            if (kernel[i] != w->kernel[off + i])
                return fy_kernel_error(k, FERRY_E_SHAPE,
                                       "kernel_shape does not match the "
                                       "weights");
    }
    FY_CHECK(read_ints(k, "strides", nsp, off, 1, w->stride, &present));
    if (use_dilations) FY_CHECK(read_ints(k, "dilations", nsp, off, 1, w->dil, &present));
    int64_t pads[2 * FY_WIN_DIMS];
    FY_CHECK(read_ints(k, "pads", 2 * nsp, 0, 0, pads, &present));
    if (present)
        for (int i = 0; i < nsp; i++)
            w->pad0[off + i] = pads[i], w->pad1[off + i] = pads[nsp + i];
    FY_CHECK(read_auto_pad(k, &mode));

    for (int i = off; i < FY_WIN_DIMS; i++) {
        int64_t ext = (w->kernel[i] - 1) * w->dil[i] + 1, in = w->in[i], s = w->stride[i];
        if (mode == 1 || mode == 2) {
            w->out[i] = (in + s - 1) / s;
            int64_t total = (w->out[i] - 1) * s + ext - in;
            if (total < 0) total = 0;
            w->pad0[i] = mode == 1 ? total / 2 : total - total / 2;
            w->pad1[i] = total - w->pad0[i];
            continue;
        }
        if (mode == 3) w->pad0[i] = w->pad1[i] = 0;
        int64_t span = in + w->pad0[i] + w->pad1[i] - ext;
        if (span < 0)
            return fy_kernel_error(k, FERRY_E_SHAPE,
                                   "window of %lld does not fit input size %lld "
                                   "plus padding",
                                   (long long)ext, (long long)in);
        w->out[i] = (ceil_mode ? span + s - 1 : span) / s + 1;
        /* a last window starting inside the end padding is dropped, as in PyTorch */
        if (ceil_mode && (w->out[i] - 1) * s >= in + w->pad0[i]) w->out[i]--;
    }
    return FERRY_OK;
}

/* ---- im2col / col2im --------------------------------------------------------------------- */

/* Output positions o (o < n_out) along one dim whose input position o*s - p + kk*d falls in
 * [0, in): returns [lo, hi). */
static void valid_range(int64_t n_out, int64_t in, int64_t s, int64_t p, int64_t kk, int64_t d,
                        int64_t *lo, int64_t *hi)
{
    int64_t shift = kk * d - p; /* input = o*s + shift */
    int64_t l = shift >= 0 ? 0 : (-shift + s - 1) / s;
    int64_t h = in - shift <= 0 ? 0 : (in - shift - 1) / s + 1;
    if (l > n_out) l = n_out;
    if (h > n_out) h = n_out;
    if (h < l) h = l;
    *lo = l, *hi = h;
}

/* im2col of one group's channels for output rows [r0, r1) (a row = one (od, oh) pair):
 * col[(c*Ksp + kidx) * ncols + (r - r0)*OW + ow]. */
#define DEFINE_IM2COL(T)                                                                           \
    static void im2col_##T(const T *x, int64_t channels, const fy_window *w, int64_t r0,           \
                           int64_t r1, T *col)                                                     \
    {                                                                                              \
        int64_t KD = w->kernel[0], KH = w->kernel[1], KW = w->kernel[2];                           \
        int64_t OH = w->out[1], OW = w->out[2], H = w->in[1], W = w->in[2];                        \
        int64_t plane = w->in[0] * H * W, ncols = (r1 - r0) * OW, nrows = channels * KD * KH * KW; \
        int par = nrows * ncols > 65536 && !omp_in_parallel();                                     \
        _Pragma("omp parallel for if (par)") for (int64_t row = 0; row < nrows; row++)             \
        {                                                                                          \
            int64_t kw = row % KW, kh = row / KW % KH, kd = row / (KW * KH) % KD;                  \
            int64_t c = row / (KW * KH * KD);                                                      \
            const T *xc = x + c * plane;                                                           \
            T *dst = col + row * ncols;                                                            \
            int64_t lo, hi;                                                                        \
            valid_range(OW, W, w->stride[2], w->pad0[2], kw, w->dil[2], &lo, &hi);                 \
            for (int64_t r = r0; r < r1; r++, dst += OW) {                                         \
                int64_t od = r / OH, oh = r % OH;                                                  \
                int64_t id = od * w->stride[0] - w->pad0[0] + kd * w->dil[0];                      \
                int64_t ih = oh * w->stride[1] - w->pad0[1] + kh * w->dil[1];                      \
                if (id < 0 || id >= w->in[0] || ih < 0 || ih >= H) {                               \
                    memset(dst, 0, sizeof(T) * (size_t)OW);                                        \
                    continue;                                                                      \
                }                                                                                  \
                const T *src = xc + (id * H + ih) * W + kw * w->dil[2] - w->pad0[2];               \
                int64_t s = w->stride[2];                                                          \
                for (int64_t o = 0; o < lo; o++)                                                   \
                    dst[o] = 0;                                                                    \
                if (s == 1)                                                                        \
                    memcpy(dst + lo, src + lo, sizeof(T) * (size_t)(hi - lo));                     \
                else                                                                               \
                    for (int64_t o = lo; o < hi; o++)                                              \
                        dst[o] = src[o * s];                                                       \
                for (int64_t o = hi; o < OW; o++)                                                  \
                    dst[o] = 0;                                                                    \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_IM2COL(float)
DEFINE_IM2COL(double)

/* Direct convolution for one input plane into one output plane (depthwise convs):
 * y += sum over taps of wk[tap] * shifted x. Per output row the taps that land on real input
 * rows are listed once; outputs whose whole window is inside the row run a branch-free loop
 * over the taps, the few edge outputs check each tap. */
#define DIRECT_MAX_TAPS 512
#define DEFINE_DIRECT(T)                                                                           \
    static void direct_##T(const T *x, const T *wk, T *y, const fy_window *w)                      \
    {                                                                                              \
        int64_t KD = w->kernel[0], KH = w->kernel[1], KW = w->kernel[2];                           \
        int64_t OD = w->out[0], OH = w->out[1], OW = w->out[2], H = w->in[1], W = w->in[2];        \
        int64_t s = w->stride[2], dw = w->dil[2], pw = w->pad0[2];                                 \
        int64_t L = (pw + s - 1) / s, num = W - 1 + pw - (KW - 1) * dw;                            \
        int64_t R = num < 0 ? 0 : num / s + 1;                                                     \
        if (L > OW) L = OW;                                                                        \
        if (R > OW) R = OW;                                                                        \
        if (R < L) R = L;                                                                          \
        int64_t off[DIRECT_MAX_TAPS], kwo[DIRECT_MAX_TAPS];                                        \
        int64_t k0 = -pw, k1 = dw - pw, k2 = 2 * dw - pw;                                          \
        T wt[DIRECT_MAX_TAPS];                                                                     \
        for (int64_t od = 0; od < OD; od++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++) {                                                  \
                T *yr = y + (od * OH + oh) * OW;                                                   \
                int nt = 0;                                                                        \
                for (int64_t kd = 0; kd < KD; kd++) {                                              \
                    int64_t id = od * w->stride[0] - w->pad0[0] + kd * w->dil[0];                  \
                    if (id < 0 || id >= w->in[0]) continue;                                        \
                    for (int64_t kh = 0; kh < KH; kh++) {                                          \
                        int64_t ih = oh * w->stride[1] - w->pad0[1] + kh * w->dil[1];              \
                        if (ih < 0 || ih >= H) continue;                                           \
                        for (int64_t kw = 0; kw < KW; kw++) {                                      \
                            off[nt] = (id * H + ih) * W, kwo[nt] = kw * dw - pw;                   \
                            wt[nt++] = wk[(kd * KH + kh) * KW + kw];                               \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                for (int64_t o = 0; o < OW; o++) {                                                 \
                    if (o == L) o = R;                                                             \
                    if (o >= OW) break;                                                            \
                    T acc = yr[o];                                                                 \
                    for (int t = 0; t < nt; t++) {                                                 \
                        int64_t iw = o * s + kwo[t];                                               \
                        if (iw >= 0 && iw < W) acc += wt[t] * x[off[t] + iw];                      \
                    }                                                                              \
                    yr[o] = acc;                                                                   \
                }                                                                                  \
                /* interior: one pass per input row, its KW taps fused (3 is the usual KW) */      \
                for (int t = 0; t < nt; t += (int)KW) {                                            \
                    const T *xr = x + off[t];                                                      \
                    if (KW == 3 && s == 1) {                                                       \
                        T w0 = wt[t], w1 = wt[t + 1], w2 = wt[t + 2];                              \
                        _Pragma("omp simd") for (int64_t o = L; o < R; o++) yr[o] +=               \
                            w0 * xr[o + k0] + w1 * xr[o + k1] + w2 * xr[o + k2];                   \
                    } else if (KW == 3) {                                                          \
                        T w0 = wt[t], w1 = wt[t + 1], w2 = wt[t + 2];                              \
                        for (int64_t o = L; o < R; o++)                                            \
                            yr[o] +=                                                               \
                                w0 * xr[o * s + k0] + w1 * xr[o * s + k1] + w2 * xr[o * s + k2];   \
                    } else {                                                                       \
                        for (int64_t kw = 0; kw < KW; kw++) {                                      \
                            T wv = wt[t + kw];                                                     \
                            int64_t kk = kw * dw - pw;                                             \
                            if (s == 1) {                                                          \
                                _Pragma("omp simd") for (int64_t o = L; o < R; o++) yr[o] +=       \
                                    wv * xr[o + kk];                                               \
                            } else {                                                               \
                                for (int64_t o = L; o < R; o++)                                    \
                                    yr[o] += wv * xr[o * s + kk];                                  \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
    }
DEFINE_DIRECT(float)
DEFINE_DIRECT(double)

static ferry_status gemm_float(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                               int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                               int64_t ldc)
{
    return fy_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static ferry_status gemm_double(int ta, int tb, int64_t M, int64_t N, int64_t K, const double *A,
                                int64_t lda, const double *B, int64_t ldb, double beta, double *C,
                                int64_t ldc)
{
    return fy_dgemm(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

#define IM2COL_BYTES ((int64_t)32 << 20) /* column buffer cap: big images go in row chunks */

/* Conv over typed buffers: x [N,C,in...], w [M,C/g,k...], b [M] or NULL, y [N,M,out...]. */
#define DEFINE_CONV(T)                                                                             \
    static ferry_status conv_##T(const T *x, const T *wt, const T *b, T *y, int64_t N, int64_t C,  \
                                 int64_t M, int64_t group, const fy_window *w)                     \
    {                                                                                              \
        int64_t Cg = C / group, Mg = M / group;                                                    \
        int64_t Ksp = w->kernel[0] * w->kernel[1] * w->kernel[2];                                  \
        int64_t Isp = w->in[0] * w->in[1] * w->in[2], Osp = w->out[0] * w->out[1] * w->out[2];     \
        int64_t rows = Cg * Ksp, OW = w->out[2], nrow_out = w->out[0] * w->out[1];                 \
        if (Cg == 1 && Ksp <= DIRECT_MAX_TAPS) {                                                   \
            int par = N * M * Osp * Ksp > 32768;                                                   \
            _Pragma("omp parallel for schedule(static) if (par)") for (int64_t nm = 0; nm < N * M; \
                                                                       nm++)                       \
            {                                                                                      \
                int64_t n = nm / M, m = nm % M;                                                    \
                T *yp = y + nm * Osp;                                                              \
                T bv = b ? b[m] : (T)0;                                                            \
                for (int64_t o = 0; o < Osp; o++)                                                  \
                    yp[o] = bv;                                                                    \
                direct_##T(x + (n * C + m / Mg) * Isp, wt + m * Ksp, yp, w);                       \
            }                                                                                      \
            return FERRY_OK;                                                                       \
        }                                                                                          \
        int pointwise = Ksp == 1;                                                                  \
        for (int i = 0; i < FY_WIN_DIMS; i++)                                                      \
            if (w->stride[i] != 1 || w->pad0[i] != 0 || w->pad1[i] != 0) pointwise = 0;            \
        int64_t chunk = nrow_out; /* output rows per im2col pass */                                \
        if (!pointwise && rows * Osp * (int64_t)sizeof(T) > IM2COL_BYTES) {                        \
            chunk = IM2COL_BYTES / ((int64_t)sizeof(T) * rows * OW);                               \
            if (chunk < 1) chunk = 1;                                                              \
        }                                                                                          \
        T *col = NULL;                                                                             \
        if (!pointwise && !(col = malloc(sizeof(T) * (size_t)(rows * chunk * OW))))                \
            return fy_error(FERRY_E_NOMEM, "out of memory for a %lldx%lld column buffer",          \
                            (long long)rows, (long long)(chunk * OW));                             \
        ferry_status rc = FERRY_OK;                                                                \
        for (int64_t n = 0; n < N && rc == FERRY_OK; n++)                                          \
            for (int64_t g = 0; g < group && rc == FERRY_OK; g++) {                                \
                const T *xg = x + (n * C + g * Cg) * Isp;                                          \
                const T *wg = wt + g * Mg * rows;                                                  \
                T *yg = y + (n * M + g * Mg) * Osp;                                                \
                if (pointwise) {                                                                   \
                    rc = gemm_##T(0, 0, Mg, Osp, rows, wg, rows, xg, Isp, 0, yg, Osp);             \
                    continue;                                                                      \
                }                                                                                  \
                for (int64_t r0 = 0; r0 < nrow_out && rc == FERRY_OK; r0 += chunk) {               \
                    int64_t r1 = r0 + chunk < nrow_out ? r0 + chunk : nrow_out;                    \
                    im2col_##T(xg, Cg, w, r0, r1, col);                                            \
                    rc = gemm_##T(0, 0, Mg, (r1 - r0) * OW, rows, wg, rows, col, (r1 - r0) * OW,   \
                                  0, yg + r0 * OW, Osp);                                           \
                }                                                                                  \
            }                                                                                      \
        free(col);                                                                                 \
        if (rc == FERRY_OK && b) {                                                                 \
            int par = N * M * Osp > 65536;                                                         \
            _Pragma("omp parallel for if (par)") for (int64_t nm = 0; nm < N * M; nm++)            \
            {                                                                                      \
                T bv = b[nm % M], *yp = y + nm * Osp;                                              \
                _Pragma("omp simd") for (int64_t o = 0; o < Osp; o++) yp[o] += bv;                 \
            }                                                                                      \
        }                                                                                          \
        return rc;                                                                                 \
    }
DEFINE_CONV(float)
DEFINE_CONV(double)

/* Inputs of one dtype, as float (f32/f16/bf16) or double views; owned copies freed by caller. */
typedef struct conv_io {
    const void *x, *w, *b;
    float *own[3];
} conv_io;

static ferry_status float_views(const fy_kernel *k, const fy_value *x, const fy_value *w,
                                const fy_value *b, conv_io *io)
{
    memset(io, 0, sizeof *io);
    if (x->dtype == FERRY_DTYPE_F64) {
        io->x = x->data, io->w = w->data, io->b = b ? b->data : NULL;
        return FERRY_OK;
    }
    io->x = fy_nn_to_float(x, &io->own[0]);
    io->w = fy_nn_to_float(w, &io->own[1]);
    io->b = b ? fy_nn_to_float(b, &io->own[2]) : NULL;
    if (!io->x || !io->w || (b && !io->b))
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory converting inputs to float");
    return FERRY_OK;
}

static void free_views(conv_io *io)
{
    for (int i = 0; i < 3; i++)
        free(io->own[i]);
}

typedef ferry_status (*conv_float_fn)(const float *, const float *, const float *, float *,
                                      int64_t, int64_t, int64_t, int64_t, const fy_window *);
typedef ferry_status (*conv_double_fn)(const double *, const double *, const double *, double *,
                                       int64_t, int64_t, int64_t, int64_t, const fy_window *);

/* Shared tail of Conv and ConvTranspose: run the float or double kernel on views of the inputs
 * (f16/bf16 computed in float) and store into y. */
static ferry_status run_typed(const fy_kernel *k, const fy_value *x, const fy_value *w,
                              const fy_value *b, fy_value *y, int64_t N, int64_t C, int64_t M,
                              int64_t group, const fy_window *win, conv_float_fn f32,
                              conv_double_fn f64)
{
    conv_io io;
    ferry_status rc = float_views(k, x, w, b, &io);
    if (rc != FERRY_OK) goto out;
    if (x->dtype == FERRY_DTYPE_F64) {
        rc = f64(io.x, io.w, io.b, y->data, N, C, M, group, win);
    } else {
        float *py =
            x->dtype == FERRY_DTYPE_F32 ? y->data : malloc(sizeof(float) * (size_t)y->count);
        if (!py) {
            rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        rc = f32(io.x, io.w, io.b, py, N, C, M, group, win);
        if (rc == FERRY_OK) fy_nn_from_float(y, py);
        if (py != y->data) free(py);
    }
    if (rc != FERRY_OK) rc = fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
out:
    free_views(&io);
    return rc;
}

static ferry_status check_conv_inputs(const fy_kernel *k, const fy_value **x, const fy_value **w,
                                      const fy_value **b)
{
    FY_CHECK(fy_input_tensor(k, 0, x));
    FY_CHECK(fy_input_tensor(k, 1, w));
    FY_CHECK(fy_input_tensor_opt(k, 2, b));
    FY_CHECK(fy_check_dtype(k, 0, *x, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    if ((*w)->dtype != (*x)->dtype || (*b && (*b)->dtype != (*x)->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "X, W and B must share one dtype");
    FY_CHECK(check_input_rank(k, *x));
    if ((*w)->rank != (*x)->rank)
        return fy_kernel_error(k, FERRY_E_SHAPE, "W has rank %d, X has rank %d", (*w)->rank,
                               (*x)->rank);
    return FERRY_OK;
}

ferry_status fy_op_Conv(fy_kernel *k)
{
    const fy_value *x, *w, *b;
    FY_CHECK(check_conv_inputs(k, &x, &w, &b));
    int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0];
    int64_t group = fy_attr_int(k, "group", 1);
    if (group < 1 || C % group != 0 || M % group != 0 || w->dims[1] * group != C)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "group %lld does not fit %lld input channels, "
                               "%lld filters of %lld channels",
                               (long long)group, (long long)C, (long long)M, (long long)w->dims[1]);
    if (b && (b->rank != 1 || b->dims[0] != M))
        return fy_kernel_error(k, FERRY_E_SHAPE, "B must have shape [%lld]", (long long)M);
    fy_window win;
    FY_CHECK(fy_window_init(k, x, w->dims + 2, 1, 0, &win));
    int64_t odims[2 + FY_WIN_DIMS] = {N, M};
    for (int i = 0; i < win.nsp; i++)
        odims[2 + i] = win.out[FY_WIN_DIMS - win.nsp + i];
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, odims, &y));
    if (y->count == 0) return FERRY_OK;
    if (w->count == 0 || x->count == 0) {
        for (int64_t i = 0; i < y->count; i++)
            fy_tensor_set_f64(y, i, b ? fy_tensor_get_f64(b, i / (y->count / N / M) % M) : 0.0);
        return FERRY_OK;
    }

    return run_typed(k, x, w, b, y, N, C, M, group, &win, conv_float, conv_double);
}

/* ---- ConvTranspose ----------------------------------------------------------------------- */

/* col [Mg*Ksp, Isp] scattered into y [Mg, Osp]: the adjoint of im2col. */
#define DEFINE_COL2IM(T)                                                                           \
    static void col2im_##T(const T *col, int64_t channels, const fy_window *w, T *y)               \
    {                                                                                              \
        int64_t KD = w->kernel[0], KH = w->kernel[1], KW = w->kernel[2];                           \
        int64_t ID = w->in[0], IH = w->in[1], IW = w->in[2];                                       \
        int64_t OD = w->out[0], OH = w->out[1], OW = w->out[2];                                    \
        int64_t Ksp = KD * KH * KW, Isp = ID * IH * IW, Osp = OD * OH * OW;                        \
        int par = channels > 1 && channels * Ksp * Isp > 65536;                                    \
        _Pragma("omp parallel for if (par)") for (int64_t c = 0; c < channels; c++)                \
        {                                                                                          \
            T *yc = y + c * Osp;                                                                   \
            for (int64_t kidx = 0; kidx < Ksp; kidx++) {                                           \
                int64_t kw = kidx % KW, kh = kidx / KW % KH, kd = kidx / (KW * KH);                \
                const T *src = col + (c * Ksp + kidx) * Isp;                                       \
                for (int64_t id = 0; id < ID; id++) {                                              \
                    int64_t od = id * w->stride[0] - w->pad0[0] + kd * w->dil[0];                  \
                    if (od < 0 || od >= OD) continue;                                              \
                    for (int64_t ih = 0; ih < IH; ih++) {                                          \
                        int64_t oh = ih * w->stride[1] - w->pad0[1] + kh * w->dil[1];              \
                        if (oh < 0 || oh >= OH) continue;                                          \
                        const T *s = src + (id * IH + ih) * IW;                                    \
                        T *d = yc + (od * OH + oh) * OW;                                           \
                        for (int64_t iw = 0; iw < IW; iw++) {                                      \
                            int64_t ow = iw * w->stride[2] - w->pad0[2] + kw * w->dil[2];          \
                            if (ow >= 0 && ow < OW) d[ow] += s[iw];                                \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_COL2IM(float)
DEFINE_COL2IM(double)

#define DEFINE_CONVT(T)                                                                            \
    static ferry_status convt_##T(const T *x, const T *wt, const T *b, T *y, int64_t N, int64_t C, \
                                  int64_t M, int64_t group, const fy_window *w)                    \
    {                                                                                              \
        int64_t Cg = C / group, Mg = M / group;                                                    \
        int64_t Ksp = w->kernel[0] * w->kernel[1] * w->kernel[2];                                  \
        int64_t Isp = w->in[0] * w->in[1] * w->in[2], Osp = w->out[0] * w->out[1] * w->out[2];     \
        T *col = malloc(sizeof(T) * (size_t)(Mg * Ksp * Isp + 1));                                 \
        if (!col) return fy_error(FERRY_E_NOMEM, "out of memory for the column buffer");           \
        ferry_status rc = FERRY_OK;                                                                \
        memset(y, 0, sizeof(T) * (size_t)(N * M * Osp));                                           \
        for (int64_t n = 0; n < N && rc == FERRY_OK; n++)                                          \
            for (int64_t g = 0; g < group && rc == FERRY_OK; g++) {                                \
                rc = gemm_##T(1, 0, Mg * Ksp, Isp, Cg, wt + g * Cg * Mg * Ksp, Mg * Ksp,           \
                              x + (n * C + g * Cg) * Isp, Isp, 0, col, Isp);                       \
                if (rc == FERRY_OK) col2im_##T(col, Mg, w, y + (n * M + g * Mg) * Osp);            \
            }                                                                                      \
        free(col);                                                                                 \
        if (b)                                                                                     \
            for (int64_t nm = 0; nm < N * M; nm++) {                                               \
                T bv = b[nm % M], *yp = y + nm * Osp;                                              \
                for (int64_t o = 0; o < Osp; o++)                                                  \
                    yp[o] += bv;                                                                   \
            }                                                                                      \
        return rc;                                                                                 \
    }
DEFINE_CONVT(float)
DEFINE_CONVT(double)

ferry_status fy_op_ConvTranspose(fy_kernel *k)
{
    const fy_value *x, *w, *b;
    FY_CHECK(check_conv_inputs(k, &x, &w, &b));
    int64_t N = x->dims[0], C = x->dims[1];
    int64_t group = fy_attr_int(k, "group", 1);
    if (group < 1 || C % group != 0 || w->dims[0] != C)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "W must be [C=%lld, M/group, k...] with C "
                               "divisible by group %lld",
                               (long long)C, (long long)group);
    int64_t M = w->dims[1] * group;
    if (b && (b->rank != 1 || b->dims[0] != M))
        return fy_kernel_error(k, FERRY_E_SHAPE, "B must have shape [%lld]", (long long)M);

    fy_window win;
    window_reset(&win, x);
    int nsp = win.nsp, off = FY_WIN_DIMS - nsp, present, mode, has_os;
    for (int i = 0; i < nsp; i++)
        win.kernel[off + i] = w->dims[2 + i];
    int64_t ks[FY_WIN_DIMS];
    FY_CHECK(read_ints(k, "kernel_shape", nsp, 0, 1, ks, &present));
    for (int i = 0; present && i < nsp; i++)
        if (ks[i] != win.kernel[off + i])
            return fy_kernel_error(k, FERRY_E_SHAPE, "kernel_shape does not match the weights");
    FY_CHECK(read_ints(k, "strides", nsp, off, 1, win.stride, &present));
    FY_CHECK(read_ints(k, "dilations", nsp, off, 1, win.dil, &present));
    int64_t pads[2 * FY_WIN_DIMS], opad[FY_WIN_DIMS] = {0, 0, 0}, oshape[2 + FY_WIN_DIMS];
    FY_CHECK(read_ints(k, "pads", 2 * nsp, 0, 0, pads, &present));
    if (present)
        for (int i = 0; i < nsp; i++)
            win.pad0[off + i] = pads[i], win.pad1[off + i] = pads[nsp + i];
    FY_CHECK(read_ints(k, "output_padding", nsp, 0, 0, opad, &present));
    FY_CHECK(read_auto_pad(k, &mode));
    /* output_shape may list the spatial dims or the whole shape */
    const int64_t *osv;
    int64_t osn = fy_attr_ints(k, "output_shape", &osv);
    has_os = osn >= 0;
    if (has_os) {
        if (osn != nsp && osn != nsp + 2)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "output_shape has %lld values",
                                   (long long)osn);
        for (int i = 0; i < nsp; i++) {
            oshape[i] = osv[osn - nsp + i];
            if (oshape[i] < 0 || oshape[i] > WIN_MAX_ATTR)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "output_shape is out of range");
        }
    }
    for (int i = 0; i < nsp; i++) {
        int d = off + i;
        int64_t ext = (win.kernel[d] - 1) * win.dil[d] + 1, in = win.in[d], s = win.stride[d];
        int64_t full = s * (in - 1) + opad[i] + ext;
        if (has_os || mode == 1 || mode == 2) {
            int64_t out = has_os ? oshape[i] : in * s;
            int64_t total = full - out;
            /* the odd pad goes at the end, except for SAME_LOWER (as the reference and ORT
             * do, whatever older spec text says about SAME_UPPER) */
            win.pad0[d] = mode == 2 ? total - total / 2 : total / 2;
            win.pad1[d] = total - win.pad0[d];
            win.out[d] = out;
        } else {
            if (mode == 3) win.pad0[d] = win.pad1[d] = 0;
            win.out[d] = full - win.pad0[d] - win.pad1[d];
            if (win.out[d] < 0)
                return fy_kernel_error(k, FERRY_E_SHAPE, "padding exceeds the output size");
        }
    }
    int64_t odims[2 + FY_WIN_DIMS] = {N, M};
    for (int i = 0; i < nsp; i++)
        odims[2 + i] = win.out[off + i];
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, odims, &y));
    if (y->count == 0) return FERRY_OK;

    return run_typed(k, x, w, b, y, N, C, M, group, &win, convt_float, convt_double);
}
