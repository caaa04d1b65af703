/* signal.c — the opset 17 signal ops: DFT, STFT, the Hann / Hamming / Blackman windows and
 * MelWeightMatrix, over a small double-precision FFT (radix 2, Bluestein for other sizes). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- FFT ----------------------------------------------------------------------------------- */

/* Complex data is interleaved (re, im) doubles. A plan computes
 *   X[k] = sum_j x[j] exp(-+2 pi i j k / n)   (sign - forward, + inverse; no 1/n scaling)
 * by radix-2 when n is a power of two, directly when n is small, and by Bluestein's chirp-z
 * transform (a power-of-two convolution) otherwise, so every length is O(n log n) and exact
 * to double rounding. Plans are read-only once made and shared between threads. */
typedef struct fft_plan {
    int64_t n;
    int inverse;
    int kind;              /* 0 radix-2, 1 direct, 2 Bluestein */
    double *tw;            /* n twiddles exp(-+2 pi i k / n) (radix-2 uses the first n/2) */
    int64_t m;             /* Bluestein: power-of-two convolution length >= 2n - 1 */
    double *chirp;         /* Bluestein: n values exp(-+pi i j^2 / n) */
    double *bfft;          /* Bluestein: FFT of the conjugate chirp, m values */
    struct fft_plan *sub;  /* Bluestein: forward radix-2 plan of length m */
    struct fft_plan *subi; /* and its inverse */
} fft_plan;

static bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

static void fft_plan_free(fft_plan *p)
{
    if (!p) return;
    free(p->tw);
    free(p->chirp);
    free(p->bfft);
    fft_plan_free(p->sub);
    fft_plan_free(p->subi);
    free(p->sub);
    free(p->subi);
    memset(p, 0, sizeof *p);
}

static void radix2(const fft_plan *p, double *a)
{
    int64_t n = p->n;
    for (int64_t i = 1, j = 0; i < n; i++) {
        int64_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double tr = a[2 * i], ti = a[2 * i + 1];
            a[2 * i] = a[2 * j];
            a[2 * i + 1] = a[2 * j + 1];
            a[2 * j] = tr;
            a[2 * j + 1] = ti;
        }
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
        int64_t half = len >> 1, step = n / len;
        for (int64_t s = 0; s < n; s += len)
            for (int64_t j = 0; j < half; j++) {
                double wr = p->tw[2 * j * step], wi = p->tw[2 * j * step + 1];
                double *u = a + 2 * (s + j), *v = a + 2 * (s + j + half);
                double vr = v[0] * wr - v[1] * wi, vi = v[0] * wi + v[1] * wr;
                v[0] = u[0] - vr;
                v[1] = u[1] - vi;
                u[0] += vr;
                u[1] += vi;
            }
    }
}

static ferry_status fft_plan_init(fft_plan *p, int64_t n, int inverse)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->inverse = inverse;
    p->kind = is_pow2(n) ? 0 : n <= 64 ? 1 : 2;
    double sign = inverse ? 1.0 : -1.0;
    if (p->kind != 2) {
        p->tw = malloc(sizeof(double) * 2 * (size_t)n);
        if (!p->tw) return FERRY_E_NOMEM;
        for (int64_t k = 0; k < n; k++) {
            p->tw[2 * k] = cos(2 * M_PI * (double)k / (double)n);
            p->tw[2 * k + 1] = sign * sin(2 * M_PI * (double)k / (double)n);
        }
        return FERRY_OK;
    }
    p->m = 1;
    while (p->m < 2 * n - 1)
        p->m <<= 1;
    p->chirp = malloc(sizeof(double) * 2 * (size_t)n);
    p->bfft = calloc(2 * (size_t)p->m, sizeof(double));
    p->sub = malloc(sizeof *p->sub);
    p->subi = malloc(sizeof *p->subi);
    if (p->sub) memset(p->sub, 0, sizeof *p->sub);
    if (p->subi) memset(p->subi, 0, sizeof *p->subi);
    if (!p->chirp || !p->bfft || !p->sub || !p->subi || fft_plan_init(p->sub, p->m, 0) ||
        fft_plan_init(p->subi, p->m, 1)) {
        fft_plan_free(p);
        return FERRY_E_NOMEM;
    }
    for (int64_t j = 0; j < n; j++) {
        /* j^2 mod 2n keeps the angle small and exact */
        int64_t q = (int64_t)(((unsigned __int128)j * (unsigned __int128)j) % (2 * (uint64_t)n));
        double ang = M_PI * (double)q / (double)n;
        p->chirp[2 * j] = cos(ang);
        p->chirp[2 * j + 1] = sign * sin(ang);
    }
    for (int64_t j = 0; j < n; j++) {
        p->bfft[2 * j] = p->chirp[2 * j];
        p->bfft[2 * j + 1] = -p->chirp[2 * j + 1];
        if (j) {
            p->bfft[2 * (p->m - j)] = p->chirp[2 * j];
            p->bfft[2 * (p->m - j) + 1] = -p->chirp[2 * j + 1];
        }
    }
    radix2(p->sub, p->bfft);
    return FERRY_OK;
}

/* Scratch doubles fft_exec needs for plan p. */
static size_t fft_scratch(const fft_plan *p)
{
    return p->kind == 2 ? 2 * (size_t)p->m : 2 * (size_t)p->n;
}

/* out = transform of in (n complex values each); scratch holds fft_scratch(p) doubles. */
static void fft_exec(const fft_plan *p, const double *in, double *out, double *scratch)
{
    int64_t n = p->n;
    if (p->kind == 0) {
        memcpy(out, in, sizeof(double) * 2 * (size_t)n);
        radix2(p, out);
    } else if (p->kind == 1) {
        for (int64_t k = 0; k < n; k++) {
            double sr = 0, si = 0;
            int64_t idx = 0;
            for (int64_t j = 0; j < n; j++) {
                double wr = p->tw[2 * idx], wi = p->tw[2 * idx + 1];
                sr += in[2 * j] * wr - in[2 * j + 1] * wi;
                si += in[2 * j] * wi + in[2 * j + 1] * wr;
                idx += k;
                if (idx >= n) idx -= n;
            }
            out[2 * k] = sr;
            out[2 * k + 1] = si;
        }
    } else {
        int64_t m = p->m;
        double *a = scratch;
        memset(a, 0, sizeof(double) * 2 * (size_t)m);
        for (int64_t j = 0; j < n; j++) {
            double cr = p->chirp[2 * j], ci = p->chirp[2 * j + 1];
            a[2 * j] = in[2 * j] * cr - in[2 * j + 1] * ci;
            a[2 * j + 1] = in[2 * j] * ci + in[2 * j + 1] * cr;
        }
        radix2(p->sub, a);
        for (int64_t j = 0; j < m; j++) {
            double ar = a[2 * j], ai = a[2 * j + 1];
            double br = p->bfft[2 * j], bi = p->bfft[2 * j + 1];
            a[2 * j] = ar * br - ai * bi;
            a[2 * j + 1] = ar * bi + ai * br;
        }
        radix2(p->subi, a);
        for (int64_t k = 0; k < n; k++) {
            double cr = p->chirp[2 * k], ci = p->chirp[2 * k + 1];
            double xr = a[2 * k] / (double)m, xi = a[2 * k + 1] / (double)m;
            out[2 * k] = xr * cr - xi * ci;
            out[2 * k + 1] = xr * ci + xi * cr;
        }
    }
}

/* ---- helpers ------------------------------------------------------------------------------- */

static bool is_signal_float(ferry_dtype t)
{
    return t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_F64 || t == FERRY_DTYPE_F16 ||
           t == FERRY_DTYPE_BF16;
}

static inline double ld(const fy_value *t, int64_t i)
{
    return t->dtype == FERRY_DTYPE_F32 ? ((const float *)t->data)[i] : fy_tensor_get_f64(t, i);
}

static inline void st(fy_value *t, int64_t i, double v)
{
    if (t->dtype == FERRY_DTYPE_F32)
        ((float *)t->data)[i] = (float)v;
    else
        fy_tensor_set_f64(t, i, v);
}

/* A scalar (or one-element) integer input. */
static ferry_status scalar_int(const fy_kernel *k, int i, int64_t *v)
{
    const fy_value *t;
    FY_CHECK(fy_input_tensor(k, i, &t));
    if (!fy_dtype_is_int(t->dtype) || t->count != 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "input %d must be one integer, got %s "
                               "with %lld values",
                               i, ferry_dtype_name(t->dtype), (long long)t->count);
    *v = fy_tensor_get_i64(t, 0);
    return FERRY_OK;
}

static ferry_status scalar_float(const fy_kernel *k, int i, double *v)
{
    const fy_value *t;
    FY_CHECK(fy_input_tensor(k, i, &t));
    if (!fy_dtype_is_numeric(t->dtype) || t->count != 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input %d must be one number", i);
    *v = fy_tensor_get_f64(t, 0);
    return FERRY_OK;
}

/* Lengths beyond this are not signals but corrupt models; keeps size arithmetic safe. */
#define MAX_SIGNAL ((int64_t)1 << 31)

/* ---- DFT ------------------------------------------------------------------------------------ */

ferry_status fy_op_DFT(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!is_signal_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be float, got %s",
                               ferry_dtype_name(x->dtype));
    int r = x->rank;
    if (r < 3 || (x->dims[r - 1] != 1 && x->dims[r - 1] != 2)) {
        char s[128];
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "input %s must be [batch, signal dims..., 1 "
                               "or 2]",
                               fy_shape_str(x->rank, x->dims, s, sizeof s));
    }
    int64_t axis = fy_attr_int(k, "axis", 1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis > r - 2)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axis %lld is out of range for rank %d",
                               (long long)fy_attr_int(k, "axis", 1), r);
    int inverse = fy_attr_int(k, "inverse", 0) != 0;
    int onesided = fy_attr_int(k, "onesided", 0) != 0;
    int64_t L = x->dims[axis], n = L;
    const fy_value *lt;
    FY_CHECK(fy_input_tensor_opt(k, 1, &lt));
    if (lt) FY_CHECK(scalar_int(k, 1, &n));
    if (n < 1 || n > MAX_SIGNAL)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "dft_length %lld is invalid", (long long)n);
    int64_t out_n = onesided ? n / 2 + 1 : n;
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * r);
    dims[axis] = out_n;
    dims[r - 1] = 2;
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &y));

    int64_t outer = 1, inner = 1, comp = x->dims[r - 1];
    for (int i = 0; i < axis; i++)
        outer *= x->dims[i];
    for (int i = (int)axis + 1; i < r - 1; i++)
        inner *= x->dims[i];
    int64_t lines = outer * inner;
    if (lines == 0) return FERRY_OK;
    fft_plan plan;
    if (fft_plan_init(&plan, n, inverse) != FERRY_OK)
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    double scale = inverse ? 1.0 / (double)n : 1.0;
    int64_t take = L < n ? L : n;
    size_t need = 4 * (size_t)n + fft_scratch(&plan);
    ferry_status rc = FERRY_OK;
#pragma omp parallel if (lines * n > 65536)
    {
        double *buf = malloc(sizeof(double) * need);
        if (!buf) {
#pragma omp atomic write
            rc = FERRY_E_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t li = 0; li < lines; li++) {
            if (!buf) continue;
            int64_t o = li / inner, i = li % inner;
            double *in = buf, *out = buf + 2 * n, *scr = buf + 4 * n;
            memset(in, 0, sizeof(double) * 2 * (size_t)n);
            for (int64_t j = 0; j < take; j++) {
                int64_t xi = ((o * L + j) * inner + i) * comp;
                in[2 * j] = ld(x, xi);
                if (comp == 2) in[2 * j + 1] = ld(x, xi + 1);
            }
            fft_exec(&plan, in, out, scr);
            for (int64_t j = 0; j < out_n; j++) {
                int64_t yi = ((o * out_n + j) * inner + i) * 2;
                st(y, yi, out[2 * j] * scale);
                st(y, yi + 1, out[2 * j + 1] * scale);
            }
        }
        free(buf);
    }
    fft_plan_free(&plan);
    if (rc != FERRY_OK) return fy_kernel_error(k, rc, "out of memory");
    if (k->flops) *k->flops += 5.0 * (double)lines * (double)n * log2((double)n + 1);
    return FERRY_OK;
}

/* ---- STFT ----------------------------------------------------------------------------------- */

ferry_status fy_op_STFT(fy_kernel *k)
{
    const fy_value *x, *win, *flt;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor_opt(k, 2, &win));
    FY_CHECK(fy_input_tensor_opt(k, 3, &flt));
    if (!is_signal_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be float, got %s",
                               ferry_dtype_name(x->dtype));
    if (x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2)) {
        char s[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "signal %s must be [batch, length, 1 or 2]",
                               fy_shape_str(x->rank, x->dims, s, sizeof s));
    }
    int64_t step = 0, fl = -1;
    FY_CHECK(scalar_int(k, 1, &step));
    if (flt) FY_CHECK(scalar_int(k, 3, &fl));
    if (win) {
        if (win->rank != 1 || !is_signal_float(win->dtype))
            return fy_kernel_error(k, FERRY_E_SHAPE, "window must be a 1-D float tensor");
        if (fl >= 0 && fl != win->dims[0])
            return fy_kernel_error(k, FERRY_E_SHAPE,
                                   "frame_length %lld differs from the window "
                                   "length %lld",
                                   (long long)fl, (long long)win->dims[0]);
        fl = win->dims[0];
    }
    if (fl < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "needs a window or a frame_length");
    int64_t B = x->dims[0], L = x->dims[1], comp = x->dims[2];
    if (step < 1 || fl < 1 || fl > L || fl > MAX_SIGNAL)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "frame_step %lld / frame_length %lld do "
                               "not fit a signal of %lld samples",
                               (long long)step, (long long)fl, (long long)L);
    int onesided = fy_attr_int(k, "onesided", 1) != 0;
    int64_t frames = (L - fl) / step + 1;
    int64_t bins = onesided ? fl / 2 + 1 : fl;
    int64_t dims[4] = {B, frames, bins, 2};
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, 4, dims, &y));
    int64_t jobs = B * frames;
    if (jobs == 0) return FERRY_OK;
    double *w = malloc(sizeof(double) * (size_t)fl);
    fft_plan plan;
    if (!w || fft_plan_init(&plan, fl, 0) != FERRY_OK) {
        free(w);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    for (int64_t j = 0; j < fl; j++)
        w[j] = win ? fy_tensor_get_f64(win, j) : 1.0;
    size_t need = 4 * (size_t)fl + fft_scratch(&plan);
    ferry_status rc = FERRY_OK;
#pragma omp parallel if (jobs * fl > 65536)
    {
        double *buf = malloc(sizeof(double) * need);
        if (!buf) {
#pragma omp atomic write
            rc = FERRY_E_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t job = 0; job < jobs; job++) {
            if (!buf) continue;
            int64_t b = job / frames, f = job % frames;
            double *in = buf, *out = buf + 2 * fl, *scr = buf + 4 * fl;
            for (int64_t j = 0; j < fl; j++) {
                int64_t xi = (b * L + f * step + j) * comp;
                in[2 * j] = ld(x, xi) * w[j];
                in[2 * j + 1] = comp == 2 ? ld(x, xi + 1) * w[j] : 0;
            }
            fft_exec(&plan, in, out, scr);
            for (int64_t j = 0; j < bins; j++) {
                st(y, (job * bins + j) * 2, out[2 * j]);
                st(y, (job * bins + j) * 2 + 1, out[2 * j + 1]);
            }
        }
        free(buf);
    }
    fft_plan_free(&plan);
    free(w);
    if (rc != FERRY_OK) return fy_kernel_error(k, rc, "out of memory");
    if (k->flops) *k->flops += 5.0 * (double)jobs * (double)fl * log2((double)fl + 1);
    return FERRY_OK;
}

/* ---- windows -------------------------------------------------------------------------------- */

static ferry_status check_out_dtype(const fy_kernel *k, int64_t dt, ferry_dtype *out)
{
    switch (dt) {
    case FERRY_DTYPE_F32:
    case FERRY_DTYPE_F64:
    case FERRY_DTYPE_F16:
    case FERRY_DTYPE_BF16:
    case FERRY_DTYPE_U8:
    case FERRY_DTYPE_U16:
    case FERRY_DTYPE_U32:
    case FERRY_DTYPE_U64:
    case FERRY_DTYPE_I8:
    case FERRY_DTYPE_I16:
    case FERRY_DTYPE_I32:
    case FERRY_DTYPE_I64: *out = (ferry_dtype)dt; return FERRY_OK;
    default:
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "output_datatype %lld is not supported",
                               (long long)dt);
    }
}

/* Generalized cosine window a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), N = size for a
 * periodic window, size - 1 for a symmetric one. */
static ferry_status cosine_window(fy_kernel *k, double a0, double a1, double a2)
{
    int64_t size;
    FY_CHECK(scalar_int(k, 0, &size));
    if (size < 0 || size > MAX_SIGNAL)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "size %lld is invalid", (long long)size);
    ferry_dtype dt = FERRY_DTYPE_F32;
    FY_CHECK(check_out_dtype(k, fy_attr_int(k, "output_datatype", FERRY_DTYPE_F32), &dt));
    int periodic = fy_attr_int(k, "periodic", 1) != 0;
    fy_value *y;
    FY_CHECK(fy_output(k, 0, dt, 1, &size, &y));
    double N = (double)(periodic ? size : size - 1);
    for (int64_t i = 0; i < size; i++) {
        double v = 1.0; /* a symmetric window of one point */
        if (N > 0) {
            double t = 2 * M_PI * (double)i / N;
            v = a0 - a1 * cos(t) + a2 * cos(2 * t);
        }
        st(y, i, v);
    }
    return FERRY_OK;
}

ferry_status fy_op_HannWindow(fy_kernel *k) { return cosine_window(k, 0.5, 0.5, 0); }

ferry_status fy_op_HammingWindow(fy_kernel *k)
{
    return cosine_window(k, 25.0 / 46.0, 21.0 / 46.0, 0);
}

ferry_status fy_op_BlackmanWindow(fy_kernel *k) { return cosine_window(k, 0.42, 0.5, 0.08); }

/* ---- MelWeightMatrix ------------------------------------------------------------------------ */

/* Triangular filters between num_mel_bins + 2 points equally spaced on the mel scale. This
 * follows the ONNX reference (and onnxruntime) exactly, including its mel step of
 * (high - low) / (num_mel_bins + 2) and the bin index floor((dft_length + 1) f / sample_rate). */
ferry_status fy_op_MelWeightMatrix(fy_kernel *k)
{
    int64_t nmel = 0, dftl = 0, sr = 0;
    double lo = 0, hi = 0;
    FY_CHECK(scalar_int(k, 0, &nmel));
    FY_CHECK(scalar_int(k, 1, &dftl));
    FY_CHECK(scalar_int(k, 2, &sr));
    FY_CHECK(scalar_float(k, 3, &lo));
    FY_CHECK(scalar_float(k, 4, &hi));
    if (nmel < 1 || nmel > (1 << 20) || dftl < 1 || dftl > MAX_SIGNAL || sr < 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "num_mel_bins %lld, dft_length %lld and "
                               "sample_rate %lld must be positive",
                               (long long)nmel, (long long)dftl, (long long)sr);
    ferry_dtype dt = FERRY_DTYPE_F32;
    FY_CHECK(check_out_dtype(k, fy_attr_int(k, "output_datatype", FERRY_DTYPE_F32), &dt));
    int64_t nbins = dftl / 2 + 1;
    int64_t dims[2] = {nbins, nmel};
    fy_value *y;
    FY_CHECK(fy_output_zeros(k, 0, dt, 2, dims, &y));
    int64_t *fb = malloc(sizeof(int64_t) * (size_t)(nmel + 2));
    if (!fb) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    double low_mel = 2595.0 * log10(1.0 + lo / 700.0);
    double high_mel = 2595.0 * log10(1.0 + hi / 700.0);
    double mel_step = (high_mel - low_mel) / (double)(nmel + 2);
    for (int64_t i = 0; i < nmel + 2; i++) {
        double f = 700.0 * (pow(10.0, ((double)i * mel_step + low_mel) / 2595.0) - 1.0);
        double b = floor((double)(dftl + 1) * f / (double)sr);
        fb[i] = b != b ? 0 : b < -1e15 ? -1 : b > 1e15 ? (int64_t)1e15 : (int64_t)b;
    }
    for (int64_t i = 0; i < nmel; i++) {
        int64_t left = fb[i], center = fb[i + 1], right = fb[i + 2];
        int64_t up = center - left, down = right - center;
        /* rows outside [0, nbins) (bands above Nyquist) are dropped */
        if (up == 0) {
            if (center >= 0 && center < nbins) st(y, center * nmel + i, 1.0);
        } else {
            int64_t j0 = left > 0 ? left : 0, j1 = center < nbins - 1 ? center : nbins - 1;
            for (int64_t j = j0; j <= j1; j++)
                st(y, j * nmel + i, (double)(j - left) / (double)up);
        }
        if (down > 0) {
            int64_t j0 = center > 0 ? center : 0, j1 = right < nbins ? right : nbins;
            for (int64_t j = j0; j < j1; j++)
                st(y, j * nmel + i, (double)(right - j) / (double)down);
        }
    }
    free(fb);
    return FERRY_OK;
}
