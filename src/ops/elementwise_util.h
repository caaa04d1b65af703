/* elementwise_util.h — what the elementwise family shares: the broadcasting loop driver
 * (defined in binary.c), the dtype lists that stamp out typed row kernels, and vectorizable
 * float32 exp/tanh/erf used by the hot activations and Softmax. Internal to src/ops. */
#ifndef FY_OPS_ELEMENTWISE_UTIL_H
#define FY_OPS_ELEMENTWISE_UTIL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops/kernel.h"

/* Most inputs a broadcast loop reads (Where has three). */
#define FY_EW_MAX_IN 3
/* Below this many output elements the work stays on the calling thread. */
#define FY_EW_PARALLEL_MIN 65536
/* Elements one task handles when a long row is split across threads. */
#define FY_EW_CHUNK 16384
/* Table size for per-dtype kernels: ONNX dtype numbers run 1..16. */
#define FY_EW_NDTYPES 17

/* A row kernel: out[i] = f(in[0][i * step[0]], in[1][i * step[1]], ...) for i < n. step[j]
 * is 1 (the input advances with the output) or 0 (the input is one broadcast element). ctx
 * carries the op's parameters (or NULL). Row kernels never fail. */
typedef void (*fy_ew_fn)(void *out, const void *const *in, const int *step, int64_t n,
                         const void *ctx);

/* How the inputs of an elementwise op walk the output: the output shape with size-1 dims
 * dropped and neighbouring dims merged wherever every input is contiguous across them (or
 * broadcast across both), so equal shapes and scalars become one flat row. */
typedef struct fy_ew_plan {
    int rank; /* >= 1 */
    int64_t dims[FERRY_MAX_RANK];
    int64_t count;
    int n_in;
    int64_t strides[FY_EW_MAX_IN][FERRY_MAX_RANK]; /* in elements, 0 along broadcast dims */
} fy_ew_plan;

/* Plan for n_in inputs of the given shapes, each of which must broadcast to (rank, dims). */
void fy_ew_plan_init(fy_ew_plan *p, int rank, const int64_t *dims, int n_in, const int *in_rank,
                     const int64_t *const *in_dims);
/* Run fn over the plan: in[j] are the inputs' data, in_esize[j] their element sizes. Splits
 * the work over `threads` OpenMP threads (0: all) when it is large. */
void fy_ew_plan_run(const fy_ew_plan *p, void *out, size_t out_esize, const void *const *in,
                    const size_t *in_esize, fy_ew_fn fn, const void *ctx, int threads);

/* Output 0 of x's shape and out_dtype, filled by fn over x (one input, step 1). */
ferry_status fy_ew_unary(fy_kernel *k, const fy_value *x, ferry_dtype out_dtype, fy_ew_fn fn,
                         const void *ctx);
/* Output 0 of broadcast(a, b) and out_dtype, filled by fn over (a, b). Honours the legacy
 * `broadcast`/`axis` attributes of opset < 7 models. */
ferry_status fy_ew_binary(fy_kernel *k, const fy_value *a, const fy_value *b, ferry_dtype out_dtype,
                          fy_ew_fn fn, const void *ctx);
/* The common case: inputs 0 and 1 of one dtype, table[dtype] the kernel, output of that dtype
 * (or bool when to_bool). Errors name the node for a dtype mismatch or an unsupported dtype. */
ferry_status fy_ew_binary_table(fy_kernel *k, const fy_ew_fn *table, bool to_bool);
/* Input 0 through table[dtype] into an output of the same dtype (or bool when to_bool). */
ferry_status fy_ew_unary_table(fy_kernel *k, const fy_ew_fn *table, bool to_bool, const void *ctx);
/* table[t] for a dtype t, NULL when t is out of range or has no kernel. */
static inline fy_ew_fn fy_ew_lookup(const fy_ew_fn *table, ferry_dtype t)
{
    return (unsigned)t < FY_EW_NDTYPES ? table[t] : NULL;
}

/* ---- stamping typed row kernels -----------------------------------------------------------
 * A list macro calls X(A, D, T, C, LD, ST) once per dtype: A is the op's token (passed
 * through), D the ferry dtype suffix (F32 ...), T the storage type, C the type computed in,
 * LD/ST convert storage to and from C. float16 and bfloat16 compute in float. */
#define FY_EW_ID(x) (x)
#define FY_EW_FLOAT_TYPES(X, A)                                                                    \
    X(A, F32, float, float, FY_EW_ID, FY_EW_ID)                                                    \
    X(A, F64, double, double, FY_EW_ID, FY_EW_ID)                                                  \
    X(A, F16, uint16_t, float, fy_half_to_float, fy_float_to_half)                                 \
    X(A, BF16, uint16_t, float, fy_bf16_to_float, fy_float_to_bf16)
#define FY_EW_SINT_TYPES(X, A)                                                                     \
    X(A, I8, int8_t, int8_t, FY_EW_ID, FY_EW_ID)                                                   \
    X(A, I16, int16_t, int16_t, FY_EW_ID, FY_EW_ID)                                                \
    X(A, I32, int32_t, int32_t, FY_EW_ID, FY_EW_ID)                                                \
    X(A, I64, int64_t, int64_t, FY_EW_ID, FY_EW_ID)
#define FY_EW_UINT_TYPES(X, A)                                                                     \
    X(A, U8, uint8_t, uint8_t, FY_EW_ID, FY_EW_ID)                                                 \
    X(A, U16, uint16_t, uint16_t, FY_EW_ID, FY_EW_ID)                                              \
    X(A, U32, uint32_t, uint32_t, FY_EW_ID, FY_EW_ID)                                              \
    X(A, U64, uint64_t, uint64_t, FY_EW_ID, FY_EW_ID)
#define FY_EW_INT_TYPES(X, A)    FY_EW_SINT_TYPES(X, A) FY_EW_UINT_TYPES(X, A)
#define FY_EW_SIGNED_TYPES(X, A) FY_EW_FLOAT_TYPES(X, A) FY_EW_SINT_TYPES(X, A)
#define FY_EW_NUM_TYPES(X, A)    FY_EW_FLOAT_TYPES(X, A) FY_EW_INT_TYPES(X, A)
#define FY_EW_BOOL_TYPE(X, A)    X(A, BOOL, uint8_t, uint8_t, FY_EW_ID, FY_EW_ID)

/* The table entry for one stamped kernel: [FERRY_DTYPE_F32] = name_F32, */
#define FY_EW_ENTRY(A, D, T, C, LD, ST) [FERRY_DTYPE_##D] = A##_##D,

/* Hot kernels are compiled twice, for baseline x86-64 and for x86-64-v3 (AVX2, FMA), and the
 * loader picks one by CPU (an ifunc), so the binary stays portable while the float kernels get
 * 8-wide vectors: 3-4x faster for exp/tanh/erf-based ones. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FY_EW_TARGET __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FY_EW_TARGET
#endif

/* Ask for vectorization of a loop (honoured under -fopenmp even at -O2, where GCC's default
 * cost model leaves loops with unknown trip counts scalar). */
#define FY_EW_SIMD _Pragma("omp simd")

/* Scalar attributes of an op (alpha, beta, gamma, switches), the ctx of unary kernels. */
typedef struct fy_ew_params {
    float alpha, beta, gamma;
    int flag_a, flag_b;
} fy_ew_params;

/* A unary kernel named A_D: out = ST(A_OP(x, prm)) over storage T computed in C, where prm is
 * a local copy of the fy_ew_params passed as ctx (zeros when ctx is NULL). */
#define FY_EW_UN_BODY(A, D, T, TO, C, LD, ST, SIMD)                                                \
    FY_EW_TARGET static void A##_##D(void *o_, const void *const *in, const int *step, int64_t n,  \
                                     const void *ctx)                                              \
    {                                                                                              \
        TO *o = o_;                                                                                \
        const T *a = in[0];                                                                        \
        const fy_ew_params prm = ctx ? *(const fy_ew_params *)ctx : (fy_ew_params){0};             \
        (void)step;                                                                                \
        (void)prm;                                                                                 \
        SIMD for (int64_t i = 0; i < n; i++)                                                       \
        {                                                                                          \
            C x = LD(a[i]);                                                                        \
            o[i] = ST(A##_OP(x, prm));                                                             \
        }                                                                                          \
    }
#define FY_EW_UN_DEF(A, D, T, C, LD, ST) FY_EW_UN_BODY(A, D, T, T, C, LD, ST, FY_EW_SIMD)
#define FY_EW_TO_BOOL(x)                 ((uint8_t)(x))
#define FY_EW_PRED_DEF(A, D, T, C, LD, ST)                                                         \
    FY_EW_UN_BODY(A, D, T, uint8_t, C, LD, FY_EW_TO_BOOL, FY_EW_SIMD)

/* A binary kernel named A_D: out = ST(A_OP(x, y)) from two inputs of storage type T. The four
 * branches give the compiler plain loops for vector-vector, scalar-vector and vector-scalar. */
#define FY_EW_BIN_BODY(A, D, T, TO, C, LD, ST, SIMD)                                               \
    FY_EW_TARGET static void A##_##D(void *o_, const void *const *in, const int *step, int64_t n,  \
                                     const void *ctx)                                              \
    {                                                                                              \
        TO *o = o_;                                                                                \
        const T *a = in[0], *b = in[1];                                                            \
        (void)ctx;                                                                                 \
        if (step[0] && step[1]) {                                                                  \
            SIMD for (int64_t i = 0; i < n; i++)                                                   \
            {                                                                                      \
                C x = LD(a[i]), y = LD(b[i]);                                                      \
                o[i] = ST(A##_OP(x, y));                                                           \
            }                                                                                      \
        } else if (step[1]) {                                                                      \
            C x = LD(a[0]);                                                                        \
            SIMD for (int64_t i = 0; i < n; i++)                                                   \
            {                                                                                      \
                C y = LD(b[i]);                                                                    \
                o[i] = ST(A##_OP(x, y));                                                           \
            }                                                                                      \
        } else if (step[0]) {                                                                      \
            C y = LD(b[0]);                                                                        \
            SIMD for (int64_t i = 0; i < n; i++)                                                   \
            {                                                                                      \
                C x = LD(a[i]);                                                                    \
                o[i] = ST(A##_OP(x, y));                                                           \
            }                                                                                      \
        } else {                                                                                   \
            C x = LD(a[0]), y = LD(b[0]);                                                          \
            TO v = ST(A##_OP(x, y));                                                               \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = v;                                                                          \
        }                                                                                          \
    }
#define FY_EW_BIN_DEF(A, D, T, C, LD, ST) FY_EW_BIN_BODY(A, D, T, T, C, LD, ST, FY_EW_SIMD)

/* ---- vectorizable float32 math ------------------------------------------------------------
 * libm's expf/tanhf/erff are calls the vectorizer cannot inline, which keeps Sigmoid, Tanh,
 * Gelu and Softmax scalar. These branch-free versions vectorize and stay within ~2 ulp of the
 * correctly rounded result (checked against double precision over [-100, 100]). */

/* c ? a : b with both a and b evaluated, as a bit blend. Under GCC's default -ftrapping-math
 * a float `?:` whose arms compute something stays a branch (the arithmetic is sunk into the
 * arm and may not be executed speculatively), which blocks vectorization; a blend does not. */
static inline float fy_ew_self(int c, float a, float b)
{
    union {
        float f;
        uint32_t u;
    } x = {a}, y = {b}, r;
    uint32_t m = 0u - (uint32_t)(c != 0);
    r.u = (x.u & m) | (y.u & ~m);
    return r.f;
}
static inline double fy_ew_seld(int c, double a, double b)
{
    union {
        double f;
        uint64_t u;
    } x = {a}, y = {b}, r;
    uint64_t m = 0u - (uint64_t)(c != 0);
    r.u = (x.u & m) | (y.u & ~m);
    return r.f;
}
/* Type-generic select: the blend for float and double, a plain ?: for integers. */
#define FY_EW_SEL(c, a, b)                                                                         \
    _Generic((a) + (b), float                                                                      \
             : fy_ew_self((c), (a), (b)), double                                                   \
             : fy_ew_seld((c), (a), (b)), default                                                  \
             : ((c) ? (a) : (b)))

/* e^x: Cody-Waite reduction by ln 2, Cephes' degree-6 polynomial, and 2^n applied in two
 * halves so that results near overflow and in the subnormal range come out right. NaN runs
 * through the arithmetic (with n forced to 0, keeping the float-to-int conversion defined). */
static inline float fy_ew_expf(float x)
{
    float xc = fy_ew_self(x > 88.8f, 88.8f, x);
    xc = fy_ew_self(xc < -104.0f, -104.0f, xc);
    float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    fn = fy_ew_self(fn == fn, fn, 0.0f);
    float r = xc - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t n = (int32_t)fn, n1 = n >> 1, n2 = n - n1;
    union {
        uint32_t u;
        float f;
    } s1 = {(uint32_t)(n1 + 127) << 23}, s2 = {(uint32_t)(n2 + 127) << 23};
    return p * s1.f * s2.f;
}

/* tanh: Cephes' odd polynomial below 0.625, 1 - 2 / (e^2|x| + 1) above. */
static inline float fy_ew_tanhf(float x)
{
    float ax = fabsf(x), z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) *
                       z -
                   3.33332819422e-1f) *
                      z * x +
                  x;
    float big = copysignf(1.0f - 2.0f / (fy_ew_expf(2.0f * ax) + 1.0f), x);
    return fy_ew_self(ax < 0.625f, small, big);
}

/* erfc(z) for z >= 0 with relative error about 1e-7 wherever erfc(z) > 1e-30 (Numerical
 * Recipes' erfcc, a Chebyshev fit of log(erfc(z) / t)). Relative, not absolute, accuracy is what
 * Gelu needs for negative inputs, where 1 + erf(x) cancels. */
static inline float fy_ew_erfc_pos(float z)
{
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * fy_ew_expf(p - z * z);
}

/* erf: its Taylor series below 1 (exact to float precision there), 1 - erfc above. */
static inline float fy_ew_erff(float x)
{
    float ax = fabsf(x), z = x * x;
    float s = 1.0f / 76204800.0f;
    s = s * z - 1.0f / 6894720.0f;
    s = s * z + 1.0f / 685440.0f;
    s = s * z - 1.0f / 75600.0f;
    s = s * z + 1.0f / 9360.0f;
    s = s * z - 1.0f / 1320.0f;
    s = s * z + 1.0f / 216.0f;
    s = s * z - 1.0f / 42.0f;
    s = s * z + 1.0f / 10.0f;
    s = s * z - 1.0f / 3.0f;
    s = s * z + 1.0f;
    float small = 1.12837916709551257f * x * s;
    float big = copysignf(1.0f - fy_ew_erfc_pos(ax), x);
    return fy_ew_self(ax < 1.0f, small, big);
}

/* Type-generic math for stamped kernels: float uses the fast versions or libm's *f
 * functions, double (and anything else) libm's double ones. */
#define FY_EW_EXP(x)   _Generic((x), float : fy_ew_expf, default : exp)(x)
#define FY_EW_TANH(x)  _Generic((x), float : fy_ew_tanhf, default : tanh)(x)
#define FY_EW_ERF(x)   _Generic((x), float : fy_ew_erff, default : erf)(x)
#define FY_EW_M(fn, x) _Generic((x), float : fn##f, default : fn)(x)

#endif
