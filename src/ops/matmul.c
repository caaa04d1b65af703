/* matmul.c — MatMul, Gemm, Einsum and Det, and fy_sgemm: the packed, cache-blocked float GEMM
 * that Conv and the recurrent ops share, kept behind one function so a backend can replace it. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/nn_util.h"

/* ---- fy_sgemm ---------------------------------------------------------------------------

 * BLIS-style blocking. B is packed, KC x NC at a time, into NR-column micro-panels (k-major), so
 * the micro-kernel streams it contiguously; A is read in place (6 rows at a time, through row
 * and column strides, which covers transA for free) unless alpha != 1, when MC x KC blocks of
 * alpha * A are packed. The micro-kernel keeps a 6 x 16 tile of C in twelve 8-float vector
 * registers (GCC vector types: AVX2+FMA code is chosen at run time on x86-64, baseline code
 * elsewhere). Threads take whole column (or row) strips of C from a dynamic queue and run the
 * serial algorithm on them: no barriers inside, which matters when cores are oversubscribed. */

#define GEMM_MR      6
#define GEMM_NR      16
#define GEMM_KC      256       /* depth of a packed block: a B micro-panel is 16 KiB (L1) */
#define GEMM_MC      48        /* rows of A swept over one B micro-panel */
#define GEMM_NC      1024      /* columns of a packed B block (1 MiB, about an L2) */
#define GEMM_PAR_MIN (1 << 17) /* M*N*K below which threads cost more than they give */

typedef float v8sf __attribute__((vector_size(32)));
typedef float v8sf_u __attribute__((vector_size(32), aligned(4)));

static void *alloc_aligned(size_t n)
{
    size_t sz = (n + 63) / 64 * 64;
    return aligned_alloc(64, sz ? sz : 64);
}

/* GEMM packing buffers are kept per thread and only grow: small GEMMs run many times per
 * inference (one per attention head), and allocating their panels each time would cost more
 * than some of them. A key destructor frees them when a thread ends. */
enum { PACK_B, PACK_A, PACK_EDGE, PACK_KINDS };
typedef struct pack_cache {
    float *buf[PACK_KINDS];
    size_t size[PACK_KINDS];
} pack_cache;

static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;

static void pack_cache_free(void *p)
{
    pack_cache *c = p;
    for (int i = 0; i < PACK_KINDS; i++) free(c->buf[i]);
    free(c);
}

static void pack_key_make(void) { pthread_key_create(&pack_key, pack_cache_free); }

static float *pack_buffer(int kind, size_t floats)
{
    pthread_once(&pack_once, pack_key_make);
    pack_cache *c = pthread_getspecific(pack_key);
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return NULL;
        pthread_setspecific(pack_key, c);
    }
    if (c->size[kind] < floats) {
        free(c->buf[kind]);
        c->buf[kind] = alloc_aligned(sizeof(float) * floats);
        c->size[kind] = c->buf[kind] ? floats : 0;
    }
    return c->buf[kind];
}

/* C[0:mr, 0:nr] += A[0:6, 0:kc] * Bpanel, A(i, p) at a[i*rs + p*cs]. Rows of A beyond mr must
 * be readable (callers pad the last panel). */
static inline __attribute__((always_inline)) void micro_kernel(int64_t kc, const float *a,
                                                               int64_t rs, int64_t cs,
                                                               const float *b, float *c,
                                                               int64_t ldc, int mr, int nr)
{
    v8sf c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    v8sf c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    for (int64_t p = 0; p < kc; p++) {
        v8sf b0 = *(const v8sf *)b, b1 = *(const v8sf *)(b + 8);
        float a0 = a[0], a1 = a[rs], a2 = a[2 * rs], a3 = a[3 * rs], a4 = a[4 * rs], a5 = a[5 * rs];
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
        c40 += a4 * b0, c41 += a4 * b1;
        c50 += a5 * b0, c51 += a5 * b1;
        a += cs, b += GEMM_NR;
    }
    if (mr == GEMM_MR && nr == GEMM_NR) {
        *(v8sf_u *)(c + 0 * ldc) += c00;
        *(v8sf_u *)(c + 0 * ldc + 8) += c01;
        *(v8sf_u *)(c + 1 * ldc) += c10;
        *(v8sf_u *)(c + 1 * ldc + 8) += c11;
        *(v8sf_u *)(c + 2 * ldc) += c20;
        *(v8sf_u *)(c + 2 * ldc + 8) += c21;
        *(v8sf_u *)(c + 3 * ldc) += c30;
        *(v8sf_u *)(c + 3 * ldc + 8) += c31;
        *(v8sf_u *)(c + 4 * ldc) += c40;
        *(v8sf_u *)(c + 4 * ldc + 8) += c41;
        *(v8sf_u *)(c + 5 * ldc) += c50;
        *(v8sf_u *)(c + 5 * ldc + 8) += c51;
        return;
    }
    v8sf t[GEMM_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < mr; i++) {
        const float *ti = (const float *)t[i];
        for (int j = 0; j < nr; j++)
            c[i * ldc + j] += ti[j];
    }
}

/* m x n of C += A[m, kc] * packed B. packed: A is alpha-scaled MR-row panels; otherwise A(i, p)
 * is A[i*rs + p*cs] and a partial last panel is copied into edge (MR * kc floats). */
#define MACRO_BODY                                                                                 \
    int64_t mfull = m / GEMM_MR * GEMM_MR;                                                         \
    if (!packed && mfull < m) {                                                                    \
        for (int64_t p = 0; p < kc; p++)                                                           \
            for (int64_t i = 0; i < GEMM_MR; i++)                                                  \
                edge[p * GEMM_MR + i] = mfull + i < m ? A[(mfull + i) * rs + p * cs] : 0.0f;       \
    }                                                                                              \
    for (int64_t j = 0; j < n; j += GEMM_NR) {                                                     \
        int nr = n - j < GEMM_NR ? (int)(n - j) : GEMM_NR;                                         \
        const float *bp = Bp + j * kc;                                                             \
        for (int64_t i = 0; i < m; i += GEMM_MR) {                                                 \
            int mr = m - i < GEMM_MR ? (int)(m - i) : GEMM_MR;                                     \
            if (packed)                                                                            \
                micro_kernel(kc, A + i * kc, 1, GEMM_MR, bp, C + i * ldc + j, ldc, mr, nr);        \
            else if (mr < GEMM_MR)                                                                 \
                micro_kernel(kc, edge, 1, GEMM_MR, bp, C + i * ldc + j, ldc, mr, nr);              \
            else                                                                                   \
                micro_kernel(kc, A + i * rs, rs, cs, bp, C + i * ldc + j, ldc, mr, nr);            \
        }                                                                                          \
    }

typedef void (*macro_fn)(int64_t m, int64_t n, int64_t kc, const float *A, int64_t rs, int64_t cs,
                         int packed, const float *Bp, float *C, int64_t ldc, float *edge);

static void macro_base(int64_t m, int64_t n, int64_t kc, const float *A, int64_t rs, int64_t cs,
                       int packed, const float *Bp, float *C, int64_t ldc, float *edge)
{
    MACRO_BODY
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void macro_avx2(int64_t m, int64_t n, int64_t kc,
                                                           const float *A, int64_t rs, int64_t cs,
                                                           int packed, const float *Bp, float *C,
                                                           int64_t ldc, float *edge)
{
    MACRO_BODY
}
#endif

static macro_fn pick_macro(void)
{
    static macro_fn chosen;
    macro_fn f = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (f) return f;
    f = macro_base;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f = macro_avx2;
#endif
    __atomic_store_n(&chosen, f, __ATOMIC_RELAXED);
    return f;
}

/* alpha * op(A)[0:rows, 0:kc] (A(i, p) at A[i*rs + p*cs]) as MR-row panels, zero-padded. */
static void pack_a(const float *A, int64_t rs, int64_t cs, int64_t rows, int64_t kc, float alpha,
                   float *d)
{
    for (int64_t i0 = 0; i0 < rows; i0 += GEMM_MR, d += GEMM_MR * kc) {
        int64_t mr = rows - i0 < GEMM_MR ? rows - i0 : GEMM_MR;
        for (int64_t i = 0; i < GEMM_MR; i++) {
            const float *src = A + (i0 + i) * rs;
            if (i >= mr)
                for (int64_t p = 0; p < kc; p++)
                    d[p * GEMM_MR + i] = 0.0f;
            else
                for (int64_t p = 0; p < kc; p++)
                    d[p * GEMM_MR + i] = alpha * src[p * cs];
        }
    }
}

/* op(B)[0:kc, 0:cols] (B(p, j) at B[p*rs + j*cs]) as NR-column panels, zero-padded. */
static void pack_b(const float *B, int64_t rs, int64_t cs, int64_t kc, int64_t cols, float *d)
{
    for (int64_t j0 = 0; j0 < cols; j0 += GEMM_NR, d += GEMM_NR * kc) {
        int64_t nr = cols - j0 < GEMM_NR ? cols - j0 : GEMM_NR;
        if (cs == 1) {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = B + p * rs + j0;
                float *dp = d + p * GEMM_NR;
                if (nr == GEMM_NR) {
                    memcpy(dp, src, GEMM_NR * sizeof(float));
                } else {
                    int64_t j = 0;
                    for (; j < nr; j++)
                        dp[j] = src[j];
                    for (; j < GEMM_NR; j++)
                        dp[j] = 0.0f;
                }
            }
        } else {
            for (int64_t j = 0; j < GEMM_NR; j++) {
                const float *src = B + (j0 + j) * cs;
                if (j >= nr)
                    for (int64_t p = 0; p < kc; p++)
                        d[p * GEMM_NR + j] = 0.0f;
                else
                    for (int64_t p = 0; p < kc; p++)
                        d[p * GEMM_NR + j] = src[p * rs];
            }
        }
    }
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc, int par)
{
    if (beta == 1.0f) return;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) {
            memset(c, 0, (size_t)N * sizeof(float));
        } else {
#pragma omp simd
            for (int64_t j = 0; j < N; j++)
                c[j] *= beta;
        }
    }
}

/* The serial algorithm on one strip of C (beta applied first). Bp holds KC x NC floats, Ap
 * MC x KC (alpha != 1). */
static void sgemm_strip(int64_t m, int64_t n, int64_t K, float alpha, const float *A, int64_t ars,
                        int64_t acs, const float *B, int64_t brs, int64_t bcs, float beta, float *C,
                        int64_t ldc, float *Bp, float *Ap, float *edge, macro_fn macro)
{
    scale_c(m, n, beta, C, ldc, 0);
    for (int64_t jc = 0; jc < n; jc += GEMM_NC) {
        int64_t nc = n - jc < GEMM_NC ? n - jc : GEMM_NC;
        for (int64_t pc = 0; pc < K; pc += GEMM_KC) {
            int64_t kc = K - pc < GEMM_KC ? K - pc : GEMM_KC;
            pack_b(B + pc * brs + jc * bcs, brs, bcs, kc, nc, Bp);
            for (int64_t ic = 0; ic < m; ic += GEMM_MC) {
                int64_t mc = m - ic < GEMM_MC ? m - ic : GEMM_MC;
                const float *a = A + ic * ars + pc * acs;
                if (alpha != 1.0f) {
                    pack_a(a, ars, acs, mc, kc, alpha, Ap);
                    macro(mc, nc, kc, Ap, 1, GEMM_MR, 1, Bp, C + ic * ldc + jc, ldc, edge);
                } else {
                    macro(mc, nc, kc, a, ars, acs, 0, Bp, C + ic * ldc + jc, ldc, edge);
                }
            }
        }
    }
}

/* y[j*incy] += alpha * dot(x, W + j*ldw), j < n: op(B) rows against a vector. */
static void gemv_dot(int64_t n, int64_t K, float alpha, const float *x, const float *W, int64_t ldw,
                     float *y, int64_t incy, int par)
{
#pragma omp parallel for if (par) schedule(static)
    for (int64_t j = 0; j < n; j++) {
        const float *w = W + j * ldw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t p = 0; p < K; p++)
            s += x[p] * w[p];
        y[j * incy] += alpha * s;
    }
}

/* y[j*incy] += alpha * sum_p x[p] * W[p*ldw + j], j < n, in column chunks per thread. */
static void gemv_axpy(int64_t n, int64_t K, float alpha, const float *x, const float *W,
                      int64_t ldw, float *y, int64_t incy, int par)
{
    enum { CHUNK = 512 };
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for if (par && nchunks > 1) schedule(static)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        float acc[CHUNK];
        int64_t j0 = ch * CHUNK, len = n - j0 < CHUNK ? n - j0 : CHUNK;
        memset(acc, 0, sizeof acc);
        for (int64_t p = 0; p < K; p++) {
            const float *w = W + p * ldw + j0;
            float xp = x[p];
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                acc[j] += xp * w[j];
        }
        for (int64_t j = 0; j < len; j++)
            y[(j0 + j) * incy] += alpha * acc[j];
    }
}

/* Matrix-vector products (M == 1 or N == 1) are memory-bound: packing would double the
 * traffic, so they get their own loops. */
static ferry_status sgemv(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                          int64_t ldc, int par)
{
    float *tmp = NULL;
    const float *x;
    if (M == 1) {
        /* x = row 0 of op(A) */
        if (ta && lda != 1 && K > 1) {
            if (!(tmp = malloc((size_t)K * sizeof(float))))
                return fy_error(FERRY_E_NOMEM, "out of memory in gemv");
            for (int64_t p = 0; p < K; p++)
                tmp[p] = A[p * lda];
            x = tmp;
        } else {
            x = A;
        }
        if (tb)
            gemv_dot(N, K, alpha, x, B, ldb, C, 1, par);
        else
            gemv_axpy(N, K, alpha, x, B, ldb, C, 1, par);
    } else {
        /* N == 1: x = column 0 of op(B) */
        if (!tb && ldb != 1 && K > 1) {
            if (!(tmp = malloc((size_t)K * sizeof(float))))
                return fy_error(FERRY_E_NOMEM, "out of memory in gemv");
            for (int64_t p = 0; p < K; p++)
                tmp[p] = B[p * ldb];
            x = tmp;
        } else {
            x = B;
        }
        if (!ta)
            gemv_dot(M, K, alpha, x, A, lda, C, ldc, par);
        else
            gemv_axpy(M, K, alpha, x, A, lda, C, ldc, par);
    }
    free(tmp);
    return FERRY_OK;
}

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

ferry_status fy_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return FERRY_OK;
    int nth = omp_in_parallel() ? 1 : omp_get_max_threads();
    int par = nth > 1 && (double)M * (double)N * (double)(K > 0 ? K : 1) >= GEMM_PAR_MIN;
    if (K <= 0 || alpha == 0.0f || M == 1 || N == 1) {
        scale_c(M, N, beta, C, ldc, par && (double)M * N >= GEMM_PAR_MIN);
        if (K <= 0 || alpha == 0.0f) return FERRY_OK;
        return sgemv(transA, transB, M, N, K, alpha, A, lda, B, ldb, C, ldc, par);
    }

    /* About three strips per thread: column strips of at least 64 (each packs only its part of
     * B), then row strips (which re-pack B) when the columns alone are too few. */
    int64_t ars = transA ? 1 : lda, acs = transA ? lda : 1;
    int64_t brs = transB ? 1 : ldb, bcs = transB ? ldb : 1;
    int64_t rows = M, cols = N;
    if (par) {
        int64_t target = 3 * (int64_t)nth;
        cols = round_up((N + target - 1) / target, GEMM_NR);
        if (cols < 4 * GEMM_NR) cols = 4 * GEMM_NR;
        int64_t ncs = (N + cols - 1) / cols;
        if (ncs < target) {
            int64_t parts = (target + ncs - 1) / ncs;
            rows = round_up((M + parts - 1) / parts, GEMM_MR);
            if (rows < 4 * GEMM_MR) rows = 4 * GEMM_MR;
        }
    }
    int64_t nrs = (M + rows - 1) / rows, ncs = (N + cols - 1) / cols, nstrips = nrs * ncs;
    int64_t kcmax = K < GEMM_KC ? K : GEMM_KC;
    int64_t ncmax = round_up(cols < GEMM_NC ? cols : GEMM_NC, GEMM_NR);
    macro_fn macro = pick_macro();
    int failed = 0;

#pragma omp parallel if (par && nstrips > 1)
    {
        float *Bp = pack_buffer(PACK_B, (size_t)(kcmax * ncmax));
        float *Ap = alpha != 1.0f ? pack_buffer(PACK_A, GEMM_MC * (size_t)kcmax) : NULL;
        float *edge = pack_buffer(PACK_EDGE, GEMM_MR * (size_t)kcmax);
        int ok = Bp && edge && (alpha == 1.0f || Ap);
        if (!ok) __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < nstrips; s++) {
            if (!ok) continue;
            int64_t i0 = s / ncs * rows, j0 = s % ncs * cols;
            int64_t m = M - i0 < rows ? M - i0 : rows, n = N - j0 < cols ? N - j0 : cols;
            sgemm_strip(m, n, K, alpha, A + i0 * ars, ars, acs, B + j0 * bcs, brs, bcs, beta,
                        C + i0 * ldc + j0, ldc, Bp, Ap, edge, macro);
        }
    }
    if (failed)
        return fy_error(FERRY_E_NOMEM, "out of memory packing a %lldx%lldx%lld GEMM", (long long)M,
                        (long long)N, (long long)K);
    return FERRY_OK;
}

ferry_status fy_dgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                      double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return FERRY_OK;
    int par = !omp_in_parallel() && (double)M * N * (K > 0 ? K : 1) >= GEMM_PAR_MIN;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        double *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++)
            c[j] = beta == 0.0 ? 0.0 : beta * c[j];
        for (int64_t p = 0; p < K && alpha != 0.0; p++) {
            double a = alpha * (transA ? A[p * lda + i] : A[i * lda + p]);
            if (!transB) {
                const double *b = B + p * ldb;
#pragma omp simd
                for (int64_t j = 0; j < N; j++)
                    c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < N; j++)
                    c[j] += a * B[j * ldb + p];
            }
        }
    }
    return FERRY_OK;
}

/* ---- float views ------------------------------------------------------------------------- */

const float *fy_nn_to_float(const fy_value *t, float **owned)
{
    *owned = NULL;
    if (t->dtype == FERRY_DTYPE_F32) return t->data;
    float *f = malloc((size_t)(t->count ? t->count : 1) * sizeof(float));
    if (!f) return NULL;
    const uint16_t *h = t->data;
    if (t->dtype == FERRY_DTYPE_F16)
        for (int64_t i = 0; i < t->count; i++)
            f[i] = fy_half_to_float(h[i]);
    else if (t->dtype == FERRY_DTYPE_BF16)
        for (int64_t i = 0; i < t->count; i++)
            f[i] = fy_bf16_to_float(h[i]);
    else
        for (int64_t i = 0; i < t->count; i++)
            f[i] = (float)fy_tensor_get_f64(t, i);
    *owned = f;
    return f;
}

void fy_nn_from_float(fy_value *t, const float *src)
{
    if (src == t->data) return;
    uint16_t *h = t->data;
    if (t->dtype == FERRY_DTYPE_F32)
        memcpy(t->data, src, (size_t)t->count * sizeof(float));
    else if (t->dtype == FERRY_DTYPE_F16)
        for (int64_t i = 0; i < t->count; i++)
            h[i] = fy_float_to_half(src[i]);
    else if (t->dtype == FERRY_DTYPE_BF16)
        for (int64_t i = 0; i < t->count; i++)
            h[i] = fy_float_to_bf16(src[i]);
    else
        for (int64_t i = 0; i < t->count; i++)
            fy_tensor_set_f64(t, i, src[i]);
}

/* ---- MatMul ------------------------------------------------------------------------------ */

/* Integer products wrap like the hardware does: arithmetic is done unsigned. */
#define MATMUL_INT(T, UT)                                                                          \
    static void matmul_##T(const T *a, const T *b, T *c, int64_t M, int64_t N, int64_t K)          \
    {                                                                                              \
        for (int64_t i = 0; i < M; i++) {                                                          \
            UT *ci = (UT *)(c + i * N);                                                            \
            for (int64_t j = 0; j < N; j++)                                                        \
                ci[j] = 0;                                                                         \
            for (int64_t p = 0; p < K; p++) {                                                      \
                UT av = (UT)a[i * K + p];                                                          \
                const T *bp = b + p * N;                                                           \
                for (int64_t j = 0; j < N; j++)                                                    \
                    ci[j] += av * (UT)bp[j];                                                       \
            }                                                                                      \
        }                                                                                          \
    }
MATMUL_INT(int32_t, uint32_t)
MATMUL_INT(int64_t, uint64_t)
MATMUL_INT(uint32_t, uint32_t)
MATMUL_INT(uint64_t, uint64_t)

static int is_float_type(ferry_dtype t)
{
    return t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_F64 || t == FERRY_DTYPE_F16 ||
           t == FERRY_DTYPE_BF16;
}

ferry_status fy_op_MatMul(fy_kernel *k)
{
    const fy_value *a, *b;
    FY_CHECK(fy_input_tensor(k, 0, &a));
    FY_CHECK(fy_input_tensor(k, 1, &b));
    FY_CHECK(fy_check_dtype(k, 0, a, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_I32, FERRY_DTYPE_I64, FERRY_DTYPE_U32,
                            FERRY_DTYPE_U64, FERRY_DTYPE_UNDEFINED));
    if (b->dtype != a->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "inputs have different dtypes (%s, %s)",
                               ferry_dtype_name(a->dtype), ferry_dtype_name(b->dtype));
    if (a->rank < 1 || b->rank < 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "inputs must have rank >= 1 (got %d and %d)",
                               a->rank, b->rank);

    /* 1-D operands are promoted to matrices and the added dim is dropped from the result */
    int64_t M = a->rank == 1 ? 1 : a->dims[a->rank - 2], K = a->dims[a->rank - 1];
    int64_t Kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    int64_t N = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (K != Kb) {
        char sa[128], sb[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "shapes %s and %s cannot be multiplied",
                               fy_shape_str(a->rank, a->dims, sa, sizeof sa),
                               fy_shape_str(b->rank, b->dims, sb, sizeof sb));
    }
    int rba = a->rank > 2 ? a->rank - 2 : 0, rbb = b->rank > 2 ? b->rank - 2 : 0;
    int rbo;
    int64_t bdims[FERRY_MAX_RANK];
    FY_CHECK(fy_broadcast_shape(rba, a->dims, rbb, b->dims, &rbo, bdims));
    int64_t odims[FERRY_MAX_RANK];
    int ro = rbo;
    memcpy(odims, bdims, sizeof(int64_t) * (size_t)rbo);
    if (a->rank > 1) odims[ro++] = M;
    if (b->rank > 1) odims[ro++] = N;
    if (ro > FERRY_MAX_RANK) return fy_kernel_error(k, FERRY_E_SHAPE, "result rank too large");
    fy_value *y;
    FY_CHECK(fy_output(k, 0, a->dtype, ro, odims, &y));
    if (y->count == 0) return FERRY_OK;

    int64_t nbatch = fy_shape_count(rbo, bdims);
    int64_t sa[FERRY_MAX_RANK], sb[FERRY_MAX_RANK];
    fy_broadcast_strides(rba, a->dims, rbo, bdims, sa);
    fy_broadcast_strides(rbb, b->dims, rbo, bdims, sb);
    int64_t *aoff = malloc(sizeof(int64_t) * 2 * (size_t)nbatch);
    if (!aoff) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    int64_t *boff = aoff + nbatch;
    int a_plain = 1, b_single = 1; /* A's batches in order / B shared by all batches */
    for (int64_t t = 0; t < nbatch; t++) {
        int64_t rem = t, oa = 0, ob = 0;
        for (int d = rbo - 1; d >= 0; d--) {
            int64_t idx = rem % bdims[d];
            rem /= bdims[d];
            oa += idx * sa[d], ob += idx * sb[d];
        }
        aoff[t] = oa * M * K, boff[t] = ob * K * N;
        if (oa != t) a_plain = 0;
        if (ob != 0) b_single = 0;
    }

    ferry_status rc = FERRY_OK;
    float *fa = NULL, *fb = NULL, *fy = NULL;
    switch (a->dtype) {
    case FERRY_DTYPE_F32:
    case FERRY_DTYPE_F16:
    case FERRY_DTYPE_BF16: {
        const float *pa = fy_nn_to_float(a, &fa), *pb = fy_nn_to_float(b, &fb);
        float *py =
            a->dtype == FERRY_DTYPE_F32 ? y->data : (fy = malloc(sizeof(float) * (size_t)y->count));
        if (!pa || !pb || !py) {
            rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            break;
        }
        if (a_plain && b_single) {
            /* one tall GEMM: batches of A stacked on top of each other */
            rc = fy_sgemm(0, 0, nbatch * M, N, K, 1.0f, pa, K, pb, N, 0.0f, py, N);
        } else {
            int batch_par =
                nbatch > 1 && (nbatch >= omp_get_max_threads() || (double)M * N * K < GEMM_PAR_MIN);
            int failed = 0;
#pragma omp parallel for if (batch_par) schedule(dynamic, 1)
            for (int64_t t = 0; t < nbatch; t++) {
                if (fy_sgemm(0, 0, M, N, K, 1.0f, pa + aoff[t], K, pb + boff[t], N, 0.0f,
                             py + t * M * N, N) != FERRY_OK)
                    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
            }
            if (failed) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        }
        if (rc == FERRY_OK) fy_nn_from_float(y, py);
        break;
    }
    case FERRY_DTYPE_F64: {
        const double *pa = a->data, *pb = b->data;
        double *py = y->data;
        for (int64_t t = 0; t < nbatch; t++)
            fy_dgemm(0, 0, M, N, K, 1.0, pa + aoff[t], K, pb + boff[t], N, 0.0, py + t * M * N, N);
        break;
    }
#define INT_CASE(DT, T)                                                                            \
    case DT: {                                                                                     \
        const T *pa = a->data, *pb = b->data;                                                      \
        T *py = y->data;                                                                           \
        int par = nbatch > 1 && (double)nbatch * M * N * K > 65536;                                \
        _Pragma("omp parallel for if (par)") for (int64_t t = 0; t < nbatch; t++)                  \
            matmul_##T(pa + aoff[t], pb + boff[t], py + t * M * N, M, N, K);                       \
        break;                                                                                     \
    }
        INT_CASE(FERRY_DTYPE_I32, int32_t)
        INT_CASE(FERRY_DTYPE_I64, int64_t)
        INT_CASE(FERRY_DTYPE_U32, uint32_t)
        INT_CASE(FERRY_DTYPE_U64, uint64_t)
#undef INT_CASE
    default: rc = fy_kernel_error(k, FERRY_E_INTERNAL, "unhandled dtype"); break;
    }
    free(fa), free(fb), free(fy), free(aoff);
    return rc;
}

/* ---- Gemm -------------------------------------------------------------------------------- */

ferry_status fy_op_Gemm(fy_kernel *k)
{
    const fy_value *a, *b, *c;
    FY_CHECK(fy_input_tensor(k, 0, &a));
    FY_CHECK(fy_input_tensor(k, 1, &b));
    FY_CHECK(fy_input_tensor_opt(k, 2, &c));
    FY_CHECK(fy_check_dtype(k, 0, a, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_I32, FERRY_DTYPE_I64, FERRY_DTYPE_U32,
                            FERRY_DTYPE_U64, FERRY_DTYPE_UNDEFINED));
    if (b->dtype != a->dtype || (c && c->dtype != a->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "inputs must share one dtype");
    if (a->rank != 2 || b->rank != 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "A and B must be 2-D (got ranks %d and %d)",
                               a->rank, b->rank);
    int ta = fy_attr_int(k, "transA", 0) != 0, tb = fy_attr_int(k, "transB", 0) != 0;
    float alpha = fy_attr_float(k, "alpha", 1.0f), beta = fy_attr_float(k, "beta", 1.0f);
    int64_t M = ta ? a->dims[1] : a->dims[0], K = ta ? a->dims[0] : a->dims[1];
    int64_t Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    if (K != Kb)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "inner dims differ: op(A) is %lldx%lld, op(B) "
                               "is %lldx%lld",
                               (long long)M, (long long)K, (long long)Kb, (long long)N);
    int64_t odims[2] = {M, N};
    int64_t cs[2] = {0, 0};
    if (c) {
        int r;
        int64_t bd[FERRY_MAX_RANK];
        if (c->rank > 2 || fy_broadcast_shape(c->rank, c->dims, 2, odims, &r, bd) != FERRY_OK ||
            bd[0] != M || bd[1] != N) {
            char sc[128];
            return fy_kernel_error(k, FERRY_E_SHAPE, "C %s does not broadcast to [%lld,%lld]",
                                   fy_shape_str(c->rank, c->dims, sc, sizeof sc), (long long)M,
                                   (long long)N);
        }
        fy_broadcast_strides(c->rank, c->dims, 2, odims, cs);
    }
    fy_value *y;
    FY_CHECK(fy_output(k, 0, a->dtype, 2, odims, &y));
    if (y->count == 0) return FERRY_OK;

    ferry_status rc = FERRY_OK;
    if (a->dtype == FERRY_DTYPE_F64) {
        double *py = y->data;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                py[i * N + j] = c ? ((const double *)c->data)[i * cs[0] + j * cs[1]] : 0.0;
        return fy_dgemm(ta, tb, M, N, K, alpha, a->data, a->dims[1], b->data, b->dims[1],
                        c ? beta : 0.0, py, N);
    }
    if (!is_float_type(a->dtype)) {
        /* integer Gemm is rare: exact through double for the magnitudes models use */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t p = 0; p < K; p++)
                    s += fy_tensor_get_f64(a, ta ? p * M + i : i * K + p) *
                         fy_tensor_get_f64(b, tb ? j * K + p : p * N + j);
                s *= alpha;
                if (c) s += beta * fy_tensor_get_f64(c, i * cs[0] + j * cs[1]);
                fy_tensor_set_f64(y, i * N + j, s);
            }
        return FERRY_OK;
    }
    float *fa = NULL, *fb = NULL, *fc = NULL, *fy = NULL;
    const float *pa = fy_nn_to_float(a, &fa), *pb = fy_nn_to_float(b, &fb);
    const float *pc = c ? fy_nn_to_float(c, &fc) : NULL;
    float *py =
        a->dtype == FERRY_DTYPE_F32 ? y->data : (fy = malloc(sizeof(float) * (size_t)y->count));
    if (!pa || !pb || (c && !pc) || !py) {
        rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    if (pc) {
        for (int64_t i = 0; i < M; i++) {
            float *yi = py + i * N;
            const float *ci = pc + i * cs[0];
            if (cs[1] == 1)
                memcpy(yi, ci, sizeof(float) * (size_t)N);
            else
                for (int64_t j = 0; j < N; j++)
                    yi[j] = ci[0];
        }
    }
    rc = fy_sgemm(ta, tb, M, N, K, alpha, pa, a->dims[1], pb, b->dims[1], pc ? beta : 0.0f, py, N);
    if (rc == FERRY_OK) fy_nn_from_float(y, py);
out:
    free(fa), free(fb), free(fc), free(fy);
    return rc;
}

/* ---- Einsum ------------------------------------------------------------------------------

 * Labels are letters (52) plus one per ellipsis dim (right-aligned across operands). Each
 * operand gets a stride per label (a repeated label sums its axes' strides: a diagonal), and
 * the result is a sum over the labels missing from the output of the product of operands. */

#define EIN_MAXL   (52 + FERRY_MAX_RANK)
#define EIN_MAXOPS 16

static int ein_letter(char ch)
{
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    return -1;
}

/* Parse one term into labels[]; ell_rank dims of the ellipsis map to labels 52 + (maxell -
 * ell_rank) ... so ellipses right-align. Returns the label count or -1. */
static int ein_term(const char *s, size_t len, int rank, int maxell, int *labels, int *has_ell)
{
    int n = 0, nletters = 0;
    *has_ell = 0;
    for (size_t i = 0; i < len; i++)
        if (ein_letter(s[i]) >= 0) nletters++;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (*has_ell || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.') return -1;
            *has_ell = 1;
            int er = rank < 0 ? maxell : rank - nletters;
            if (er < 0 || er > maxell) return -1;
            for (int e = 0; e < er; e++) {
                if (n >= FERRY_MAX_RANK) return -1;
                labels[n++] = 52 + (maxell - er) + e;
            }
            i += 2;
        } else {
            int l = ein_letter(s[i]);
            if (l < 0 || n >= FERRY_MAX_RANK) return -1;
            labels[n++] = l;
        }
    }
    return n;
}

/* dst[i] = src[i] over an nd-dim index space with per-dim strides (elements) on both sides. */
static void permute_copy(const float *src, float *dst, int nd, const int64_t *dims,
                         const int64_t *sst, const int64_t *dst_st)
{
    int64_t idx[EIN_MAXL] = {0}, so = 0, d_o = 0, total = 1;
    for (int d = 0; d < nd; d++)
        total *= dims[d];
    int64_t inner = nd > 0 ? dims[nd - 1] : 1;
    int contiguous = nd > 0 && sst[nd - 1] == 1 && dst_st[nd - 1] == 1;
    for (int64_t n = 0; n < total; n += inner) {
        if (contiguous) {
            memcpy(dst + d_o, src + so, sizeof(float) * (size_t)inner);
        } else {
            for (int64_t j = 0; j < inner; j++)
                dst[d_o + j * (nd ? dst_st[nd - 1] : 0)] = src[so + j * (nd ? sst[nd - 1] : 0)];
        }
        for (int d = nd - 2; d >= 0; d--) {
            so += sst[d], d_o += dst_st[d];
            if (++idx[d] < dims[d]) break;
            so -= sst[d] * dims[d], d_o -= dst_st[d] * dims[d];
            idx[d] = 0;
        }
    }
}

/* Two float32 operands whose labels are each batch (both inputs and the output), M (first and
 * output), N (second and output) or K (both inputs, summed) form a batched GEMM: gather them
 * into [batch, M, K] and [batch, K, N], multiply, and scatter into the output's order. Sets
 * *handled when it applied. */
static ferry_status einsum_gemm(fy_kernel *k, const fy_value *const *x, int lab[][FERRY_MAX_RANK],
                                const int64_t *size, const int *olab, int no, fy_value *y,
                                int *handled)
{
    *handled = 0;
    int64_t sta[EIN_MAXL] = {0}, stb[EIN_MAXL] = {0}, sto[EIN_MAXL] = {0};
    int in_a[EIN_MAXL] = {0}, in_b[EIN_MAXL] = {0}, in_o[EIN_MAXL] = {0};
    for (int i = 0; i < 2; i++) {
        int *in = i ? in_b : in_a;
        int64_t *st = i ? stb : sta, s = 1;
        for (int d = x[i]->rank - 1; d >= 0; d--) {
            int l = lab[i][d];
            if (in[l] || x[i]->dims[d] != size[l]) return FERRY_OK; /* diagonal or broadcast */
            in[l] = 1, st[l] = s;
            s *= x[i]->dims[d];
        }
    }
    int64_t so = 1;
    for (int d = no - 1; d >= 0; d--)
        in_o[olab[d]] = 1, sto[olab[d]] = so, so *= size[olab[d]];
    int bl[EIN_MAXL], ml[EIN_MAXL], nl[EIN_MAXL], kl[EIN_MAXL], nb = 0, nm = 0, nn = 0, nk = 0;
    int64_t B = 1, M = 1, N = 1, K = 1;
    for (int l = 0; l < EIN_MAXL; l++) {
        if (!in_a[l] && !in_b[l]) continue;
        if (in_a[l] && in_b[l] && in_o[l])
            bl[nb++] = l, B *= size[l];
        else if (in_a[l] && in_o[l])
            ml[nm++] = l, M *= size[l];
        else if (in_b[l] && in_o[l])
            nl[nn++] = l, N *= size[l];
        else if (in_a[l] && in_b[l])
            kl[nk++] = l, K *= size[l];
        else
            return FERRY_OK; /* a label summed within one operand */
    }
    float *pa = malloc(sizeof(float) * (size_t)(B * M * K + B * K * N + B * M * N + 1));
    if (!pa) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    float *pb = pa + B * M * K, *pc = pb + B * K * N;
    int64_t dims[EIN_MAXL], s1[EIN_MAXL], s2[EIN_MAXL];
    /* A as [batch, M, K], B as [batch, K, N], C as [batch, M, N] */
    const int *groups[3][3] = {{bl, ml, kl}, {bl, kl, nl}, {bl, ml, nl}};
    const int counts[3][3] = {{nb, nm, nk}, {nb, nk, nn}, {nb, nm, nn}};
    for (int t = 0; t < 3; t++) {
        int nd = 0;
        for (int g = 0; g < 3; g++)
            for (int j = 0; j < counts[t][g]; j++) {
                int l = groups[t][g][j];
                dims[nd] = size[l];
                s1[nd++] = t == 0 ? sta[l] : t == 1 ? stb[l] : sto[l];
            }
        int64_t c = 1;
        for (int d = nd - 1; d >= 0; d--)
            s2[d] = c, c *= dims[d];
        if (t == 0) permute_copy(x[0]->data, pa, nd, dims, s1, s2);
        if (t == 1) permute_copy(x[1]->data, pb, nd, dims, s1, s2);
        if (t == 2) {
            ferry_status rc = FERRY_OK;
            int par_batch = B > 1 && (B >= omp_get_max_threads() || M * N * K < GEMM_PAR_MIN);
            int failed = 0;
#pragma omp parallel for if (par_batch) schedule(dynamic, 1)
            for (int64_t b = 0; b < B; b++)
                if (fy_sgemm(0, 0, M, N, K, 1.0f, pa + b * M * K, K, pb + b * K * N, N, 0.0f,
                             pc + b * M * N, N) != FERRY_OK)
                    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
            if (failed) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            if (rc == FERRY_OK) permute_copy(pc, y->data, nd, dims, s2, s1);
            free(pa);
            *handled = rc == FERRY_OK;
            return rc;
        }
    }
    free(pa);
    return FERRY_OK;
}

ferry_status fy_op_Einsum(fy_kernel *k)
{
    const char *eq = fy_attr_string(k, "equation", NULL);
    if (!eq) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute equation is required");
    int nops = k->n_inputs;
    if (nops < 1 || nops > EIN_MAXOPS)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "%d operands (1..%d supported)", nops,
                               EIN_MAXOPS);
    const fy_value *x[EIN_MAXOPS];
    for (int i = 0; i < nops; i++) {
        FY_CHECK(fy_input_tensor(k, i, &x[i]));
        if (x[i]->dtype != x[0]->dtype)
            return fy_kernel_error(k, FERRY_E_DTYPE, "operands must share one dtype");
        if (!fy_dtype_is_numeric(x[i]->dtype) || x[i]->dtype == FERRY_DTYPE_BOOL)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                                   ferry_dtype_name(x[i]->dtype));
    }
    /* strip spaces */
    char buf[512];
    size_t n = 0;
    for (const char *p = eq; *p; p++) {
        if (*p == ' ') continue;
        if (n + 1 >= sizeof buf)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "equation is too long");
        buf[n++] = *p;
    }
    buf[n] = 0;
    char *arrow = strstr(buf, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - buf) : n;

    int maxell = 0;
    for (int i = 0; i < nops; i++)
        maxell = x[i]->rank > maxell ? x[i]->rank : maxell;
    int lab[EIN_MAXOPS][FERRY_MAX_RANK];
    int ell_rank = 0;
    const char *t = buf;
    for (int i = 0; i < nops; i++) {
        const char *end = memchr(t, ',', lhs_len - (size_t)(t - buf));
        size_t tl = end ? (size_t)(end - t) : lhs_len - (size_t)(t - buf);
        if ((i < nops - 1) != (end != NULL))
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "equation \"%s\" does not have %d "
                                   "operand terms",
                                   eq, nops);
        int has_ell;
        int nl = ein_term(t, tl, x[i]->rank, maxell, lab[i], &has_ell);
        if (nl != x[i]->rank)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "term %d of \"%s\" does not match "
                                   "input rank %d",
                                   i, eq, x[i]->rank);
        if (has_ell) {
            int nletters = 0;
            for (size_t c = 0; c < tl; c++)
                nletters += ein_letter(t[c]) >= 0;
            if (x[i]->rank - nletters > ell_rank) ell_rank = x[i]->rank - nletters;
        }
        t = end ? end + 1 : t + tl;
    }

    /* sizes of every label; ellipsis dims broadcast */
    int64_t size[EIN_MAXL];
    int count[EIN_MAXL];
    for (int l = 0; l < EIN_MAXL; l++)
        size[l] = -1, count[l] = 0;
    for (int i = 0; i < nops; i++)
        for (int d = 0; d < x[i]->rank; d++) {
            int l = lab[i][d];
            int64_t s = x[i]->dims[d];
            count[l]++;
            if (size[l] < 0) {
                size[l] = s;
            } else if (size[l] != s) {
                if (l < 52 || (s != 1 && size[l] != 1))
                    return fy_kernel_error(k, FERRY_E_SHAPE,
                                           "dimension sizes of a label differ "
                                           "in \"%s\"",
                                           eq);
                if (s > size[l]) size[l] = s;
            }
        }

    int olab[FERRY_MAX_RANK], no = 0;
    if (arrow) {
        int has_ell;
        no = ein_term(arrow + 2, strlen(arrow + 2), -1, maxell, olab, &has_ell);
        if (no < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "bad output term in \"%s\"", eq);
        /* the output's ellipsis has the broadcast rank, which may be below maxell */
        int w = 0;
        for (int d = 0; d < no; d++)
            if (olab[d] < 52 || olab[d] >= 52 + maxell - ell_rank) olab[w++] = olab[d];
        no = w;
        for (int d = 0; d < no; d++) {
            if (size[olab[d]] < 0)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                       "output label of \"%s\" is not "
                                       "in any input",
                                       eq);
            for (int e = 0; e < d; e++)
                if (olab[e] == olab[d])
                    return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                           "repeated output label in "
                                           "\"%s\"",
                                           eq);
        }
    } else {
        for (int l = 52; l < 52 + maxell; l++)
            if (size[l] >= 0 && l >= 52 + maxell - ell_rank) olab[no++] = l;
        for (int l = 0; l < 52; l++)
            if (count[l] == 1 && no < FERRY_MAX_RANK) olab[no++] = l;
    }

    /* all labels: output ones first, then the summed ones */
    int all[EIN_MAXL], nall = 0, in_out[EIN_MAXL] = {0};
    for (int d = 0; d < no; d++)
        all[nall++] = olab[d], in_out[olab[d]] = 1;
    for (int l = 0; l < EIN_MAXL; l++)
        if (size[l] >= 0 && !in_out[l]) all[nall++] = l;
    int64_t st[EIN_MAXOPS][EIN_MAXL];
    memset(st, 0, sizeof st);
    for (int i = 0; i < nops; i++) {
        int64_t s = 1;
        for (int d = x[i]->rank - 1; d >= 0; d--) {
            int l = lab[i][d];
            if (!(x[i]->dims[d] == 1 && size[l] != 1)) st[i][l] += s;
            s *= x[i]->dims[d];
        }
    }
    int64_t odims[FERRY_MAX_RANK], dims_all[EIN_MAXL];
    for (int d = 0; d < no; d++)
        odims[d] = size[olab[d]];
    for (int a = 0; a < nall; a++)
        dims_all[a] = size[all[a]];
    fy_value *y;
    FY_CHECK(fy_output_zeros(k, 0, x[0]->dtype, no, odims, &y));
    if (y->count == 0) return FERRY_OK;
    int64_t inner = 1;
    for (int a = no; a < nall; a++) {
        if (dims_all[a] == 0) return FERRY_OK;
        inner *= dims_all[a];
    }
    int is_f32 = x[0]->dtype == FERRY_DTYPE_F32, is_f64 = x[0]->dtype == FERRY_DTYPE_F64;
    int is_int = fy_dtype_is_int(x[0]->dtype);
    if (nops == 2 && is_f32 && (double)y->count * inner >= 4096) {
        int handled;
        ferry_status rc = einsum_gemm(k, x, lab, size, olab, no, y, &handled);
        if (rc != FERRY_OK || handled) return rc;
    }

#pragma omp parallel for if ((double)y->count * inner > 65536) schedule(static)
    for (int64_t o = 0; o < y->count; o++) {
        int64_t base[EIN_MAXOPS] = {0}, rem = o;
        for (int d = no - 1; d >= 0; d--) {
            int64_t idx = rem % dims_all[d];
            rem /= dims_all[d];
            for (int i = 0; i < nops; i++)
                base[i] += idx * st[i][all[d]];
        }
        int64_t idx[EIN_MAXL] = {0}, off[EIN_MAXOPS];
        memcpy(off, base, sizeof off);
        double acc = 0;
        int64_t iacc = 0;
        for (int64_t r = 0; r < inner; r++) {
            if (is_f32) {
                double p = 1;
                for (int i = 0; i < nops; i++)
                    p *= ((const float *)x[i]->data)[off[i]];
                acc += p;
            } else if (is_f64) {
                double p = 1;
                for (int i = 0; i < nops; i++)
                    p *= ((const double *)x[i]->data)[off[i]];
                acc += p;
            } else if (is_int) {
                uint64_t p = 1;
                for (int i = 0; i < nops; i++)
                    p *= (uint64_t)fy_tensor_get_i64(x[i], off[i]);
                iacc = (int64_t)((uint64_t)iacc + p);
            } else {
                double p = 1;
                for (int i = 0; i < nops; i++)
                    p *= fy_tensor_get_f64(x[i], off[i]);
                acc += p;
            }
            /* odometer over the summed labels */
            for (int a = nall - 1; a >= no; a--) {
                int l = all[a];
                if (++idx[a] < dims_all[a]) {
                    for (int i = 0; i < nops; i++)
                        off[i] += st[i][l];
                    break;
                }
                idx[a] = 0;
                for (int i = 0; i < nops; i++)
                    off[i] -= st[i][l] * (dims_all[a] - 1);
            }
        }
        if (is_f32)
            ((float *)y->data)[o] = (float)acc;
        else if (is_f64)
            ((double *)y->data)[o] = acc;
        else if (is_int)
            fy_tensor_set_i64(y, o, iacc);
        else
            fy_tensor_set_f64(y, o, acc);
    }
    return FERRY_OK;
}

/* ---- Det --------------------------------------------------------------------------------- */

ferry_status fy_op_Det(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return fy_kernel_error(k, FERRY_E_SHAPE, "input must be [..., M, M]");
    int64_t m = x->dims[x->rank - 1];
    if (m > 4096)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED,
                               "matrix of size %lld is too "
                               "large",
                               (long long)m);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank - 2, x->dims, &y));
    double *lu = malloc(sizeof(double) * (size_t)(m > 0 ? m * m : 1));
    if (!lu) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    for (int64_t b = 0; b < y->count; b++) {
        for (int64_t i = 0; i < m * m; i++)
            lu[i] = fy_tensor_get_f64(x, b * m * m + i);
        double det = 1.0;
        /* Gaussian elimination with partial pivoting */
        for (int64_t c = 0; c < m && det != 0.0; c++) {
            int64_t piv = c;
            for (int64_t r = c + 1; r < m; r++)
                if (fabs(lu[r * m + c]) > fabs(lu[piv * m + c])) piv = r;
            if (lu[piv * m + c] == 0.0) {
                det = 0.0;
                break;
            }
            if (piv != c) {
                for (int64_t j = 0; j < m; j++) {
                    double tmp = lu[c * m + j];
                    lu[c * m + j] = lu[piv * m + j];
                    lu[piv * m + j] = tmp;
                }
                det = -det;
            }
            double d = lu[c * m + c];
            det *= d;
            for (int64_t r = c + 1; r < m; r++) {
                double f = lu[r * m + c] / d;
                for (int64_t j = c; j < m; j++)
                    lu[r * m + j] -= f * lu[c * m + j];
            }
        }
        fy_tensor_set_f64(y, b, det);
    }
    free(lu);
    return FERRY_OK;
}
