/* activation.c — the neural-network activations (Relu ... Mish, Gelu), PRelu and Clip. The
 * float32 versions of the common ones are branch-free loops that vectorize. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/elementwise_util.h"

/* Ops defined for the four float types. */
#define FLOAT_OP(A)                                                                                \
    FY_EW_FLOAT_TYPES(FY_EW_UN_DEF, A)                                                             \
    static const fy_ew_fn A##_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, A)};

/* x < 0 rather than max(x, 0) so that NaN passes through. */
#define relu_OP(x, p)        ((x) < 0 ? 0 : (x))
#define leakyrelu_OP(x, p)   FY_EW_SEL((x) < 0, (x) * (p).alpha, (x))
#define elu_OP(x, p)         ((x) < 0 ? (p).alpha * FY_EW_M(expm1, x) : (x))
#define selu_OP(x, p)        ((p).gamma * ((x) <= 0 ? (p).alpha * FY_EW_M(expm1, x) : (x)))
#define celu_OP(x, p)        ((x) < 0 ? (p).alpha * FY_EW_M(expm1, (x) / (p).alpha) : (x))
#define sigmoid_OP(x, p)     (1 / (1 + FY_EW_EXP(-(x))))
#define hardsigmoid_OP(x, p) clamp01((p).alpha *(x) + (p).beta)
#define hardswish_OP(x, p)   ((x)*clamp01((x)*K(x, 1.0 / 6) + K(x, 0.5)))
/* log(1 + e^x) without overflow: x + log1p(e^-x) for positive x. */
#define softplus_OP(x, p)                                                                          \
    ((x) > 0 ? (x) + FY_EW_M(log1p, FY_EW_EXP(-(x))) : FY_EW_M(log1p, FY_EW_EXP(x)))
#define softsign_OP(x, p)        ((x) / (1 + FY_EW_M(fabs, x)))
#define tanh_OP(x, p)            FY_EW_TANH(x)
#define thresholdedrelu_OP(x, p) FY_EW_SEL((x) > (p).alpha, (x), 0)
#define mish_OP(x, p)            _Generic((x), float : mishf, default : mishd)(x)
/* Gelu = x Phi(x) = 0.5 x erfc(-x / sqrt 2), and its tanh form 0.5 x (1 + tanh u) =
 * x / (1 + e^-2u): written so that nothing cancels for negative x. */
#define gelu_OP(x, p) _Generic((x), float : geluf, default : gelud)(x)
#define gelut_OP(x, p)                                                                             \
    ((x) / (1 + FY_EW_EXP(K(x, -1.5957691216057308) * ((x) + K(x, 0.044715) * (x) * (x) * (x)))))

#define clamp01(v) _Generic((v), float : clamp01f, default : clamp01d)(v)
static inline float clamp01f(float v) { return fy_ew_self(v < 0, 0, fy_ew_self(v > 1, 1, v)); }
static inline double clamp01d(double v) { return fy_ew_seld(v < 0, 0, fy_ew_seld(v > 1, 1, v)); }
static inline float geluf(float x)
{
    float e = fy_ew_erfc_pos(fabsf(x) * 0.70710678118654752f);
    return 0.5f * x * fy_ew_self(x < 0, e, 2.0f - e);
}
static inline double gelud(double x) { return 0.5 * x * erfc(-x * 0.70710678118654752); }

/* Mish = x tanh(softplus(x)) = x q / (q + 2) with q = e^x (e^x + 2), which needs one
 * exponential; above 20 the factor is 1 to float precision (and q would overflow). */
static inline float mishf(float x)
{
    float n = fy_ew_expf(fy_ew_self(x > 20, 20, x)), q = n * (n + 2);
    float y = x * fy_ew_self(x > 20, 1, q / (q + 2));
    return fy_ew_self(x < -120, -0.0f, y); /* x e^x underflows; keeps -inf from giving NaN */
}
static inline double mishd(double x)
{
    double n = exp(x > 20 ? 20 : x), q = n * (n + 2);
    return x > 20 ? x : x < -800 ? -0.0 : x * q / (q + 2);
}
/* A constant in x's type (float constants would round f64 results, double ones would slow f32). */
#define K(x, c) ((__typeof__(x))(c))

FY_EW_FLOAT_TYPES(FY_EW_UN_DEF, relu)
FY_EW_SINT_TYPES(FY_EW_UN_DEF, relu)
static const fy_ew_fn relu_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, relu)
                                                       FY_EW_SINT_TYPES(FY_EW_ENTRY, relu)};
FLOAT_OP(leakyrelu)
FLOAT_OP(elu)
FLOAT_OP(selu)
FLOAT_OP(celu)
FLOAT_OP(sigmoid)
FLOAT_OP(hardsigmoid)
FLOAT_OP(hardswish)
FLOAT_OP(softplus)
FLOAT_OP(softsign)
FLOAT_OP(tanh)
FLOAT_OP(thresholdedrelu)
FLOAT_OP(mish)
FLOAT_OP(gelu)
FLOAT_OP(gelut)

static ferry_status run(fy_kernel *k, const fy_ew_fn *table, float alpha, float beta, float gamma)
{
    fy_ew_params p = {.alpha = alpha, .beta = beta, .gamma = gamma};
    return fy_ew_unary_table(k, table, false, &p);
}

ferry_status fy_op_Relu(fy_kernel *k) { return run(k, relu_table, 0, 0, 0); }
ferry_status fy_op_LeakyRelu(fy_kernel *k)
{
    return run(k, leakyrelu_table, fy_attr_float(k, "alpha", 0.01f), 0, 0);
}
ferry_status fy_op_Elu(fy_kernel *k)
{
    return run(k, elu_table, fy_attr_float(k, "alpha", 1), 0, 0);
}
ferry_status fy_op_Selu(fy_kernel *k)
{
    return run(k, selu_table, fy_attr_float(k, "alpha", 1.67326319217681884765625f), 0,
               fy_attr_float(k, "gamma", 1.05070102214813232421875f));
}
ferry_status fy_op_Celu(fy_kernel *k)
{
    float alpha = fy_attr_float(k, "alpha", 1);
    if (alpha == 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "alpha must not be 0");
    return run(k, celu_table, alpha, 0, 0);
}
ferry_status fy_op_Sigmoid(fy_kernel *k) { return run(k, sigmoid_table, 0, 0, 0); }
ferry_status fy_op_HardSigmoid(fy_kernel *k)
{
    return run(k, hardsigmoid_table, fy_attr_float(k, "alpha", 0.2f),
               fy_attr_float(k, "beta", 0.5f), 0);
}
ferry_status fy_op_HardSwish(fy_kernel *k) { return run(k, hardswish_table, 0, 0, 0); }
ferry_status fy_op_Softplus(fy_kernel *k) { return run(k, softplus_table, 0, 0, 0); }
ferry_status fy_op_Softsign(fy_kernel *k) { return run(k, softsign_table, 0, 0, 0); }
ferry_status fy_op_Tanh(fy_kernel *k) { return run(k, tanh_table, 0, 0, 0); }
ferry_status fy_op_ThresholdedRelu(fy_kernel *k)
{
    return run(k, thresholdedrelu_table, fy_attr_float(k, "alpha", 1), 0, 0);
}
ferry_status fy_op_Mish(fy_kernel *k) { return run(k, mish_table, 0, 0, 0); }

/* Gelu (opset 20, and com.microsoft's): exact through erf, or the tanh approximation. */
ferry_status fy_op_Gelu(fy_kernel *k)
{
    const char *approx = fy_attr_string(k, "approximate", "none");
    if (strcmp(approx, "tanh") == 0) return run(k, gelut_table, 0, 0, 0);
    if (strcmp(approx, "none") != 0)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "attribute approximate must be \"none\" or \"tanh\", got \"%s\"",
                               approx);
    return run(k, gelu_table, 0, 0, 0);
}

/* ---- Shrink: every numeric type, computed in double ---- */

#define SHRINK_DEF(A, D, T, C, LD, ST)                                                             \
    static void A##_##D(void *o_, const void *const *in, const int *step, int64_t n,               \
                        const void *ctx)                                                           \
    {                                                                                              \
        T *o = o_;                                                                                 \
        const T *a = in[0];                                                                        \
        const fy_ew_params *p = ctx;                                                               \
        double lambd = p->alpha, bias = p->beta;                                                   \
        (void)step;                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                          \
            double x = (double)LD(a[i]);                                                           \
            double y = x < -lambd ? x + bias : x > lambd ? x - bias : 0;                           \
            if ((C)0.5 == 0) /* integers: out-of-range results wrap instead of being undefined */  \
                o[i] = ST((C)(int64_t)(y != y ? 0 : y < -9.2e18 ? -9.2e18 : y > 9.2e18 ? 9.2e18 : y)); \
            else                                                                                   \
                o[i] = ST((C)y);                                                                   \
        }                                                                                          \
    }
FY_EW_NUM_TYPES(SHRINK_DEF, shrink)
static const fy_ew_fn shrink_table[FY_EW_NDTYPES] = {FY_EW_NUM_TYPES(FY_EW_ENTRY, shrink)};

ferry_status fy_op_Shrink(fy_kernel *k)
{
    return run(k, shrink_table, fy_attr_float(k, "lambd", 0.5f), fy_attr_float(k, "bias", 0), 0);
}

/* ---- PRelu: x < 0 ? x * slope : x, slope broadcast to x ---- */

#define preluf_OP(x, y) FY_EW_SEL((x) < 0, (x) * (y), (x))
#define prelus_OP(x, y) ((x) < 0 ? (x) * (y) : (x))
#define preluu_OP(x, y) ((void)(y), (x))
FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, preluf)
FY_EW_SINT_TYPES(FY_EW_BIN_DEF, prelus)
FY_EW_UINT_TYPES(FY_EW_BIN_DEF, preluu)
static const fy_ew_fn prelu_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, preluf)
                                                        FY_EW_SINT_TYPES(FY_EW_ENTRY, prelus)
                                                            FY_EW_UINT_TYPES(FY_EW_ENTRY, preluu)};

ferry_status fy_op_PRelu(fy_kernel *k)
{
    const fy_value *x, *slope;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &slope));
    if (x->dtype != slope->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "slope is %s but X is %s",
                               ferry_dtype_name(slope->dtype), ferry_dtype_name(x->dtype));
    fy_ew_fn fn = fy_ew_lookup(prelu_table, x->dtype);
    if (!fn)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    /* Before opset 7 (and in models exported that way) a 1-D slope holds one value per channel,
     * dim 1 of X; numpy broadcasting would align it with the last dim instead. */
    int r;
    int64_t dims[FERRY_MAX_RANK];
    bool per_channel =
        slope->rank == 1 && x->rank >= 2 && slope->dims[0] == x->dims[1] && slope->dims[0] != 1 &&
        (k->node->opset < 7 ||
         fy_broadcast_shape(x->rank, x->dims, slope->rank, slope->dims, &r, dims) != FERRY_OK);
    if (!per_channel) return fy_ew_binary(k, x, slope, x->dtype, fn, NULL);
    int64_t sdims[FERRY_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        sdims[d] = d == 1 ? slope->dims[0] : 1;
    fy_value *view;
    FY_CHECK(fy_tensor_view(slope, x->rank, sdims, &view));
    ferry_status rc = fy_ew_binary(k, x, view, x->dtype, fn, NULL);
    fy_value_unref(view);
    return rc;
}

/* ---- Clip: bounds from attributes (opset < 11) or optional scalar inputs ---- */

/* Bounds as raw bytes of X's dtype. */
typedef struct clip_ctx {
    unsigned char lo[8], hi[8];
} clip_ctx;

#define CLIP_DEF(A, D, T, C, LD, ST)                                                               \
    FY_EW_TARGET static void A##_##D(void *o_, const void *const *in, const int *step, int64_t n,  \
                                     const void *ctx)                                              \
    {                                                                                              \
        T *o = o_, lo_s, hi_s;                                                                     \
        const T *a = in[0];                                                                        \
        const clip_ctx *c = ctx;                                                                   \
        (void)step;                                                                                \
        memcpy(&lo_s, c->lo, sizeof lo_s);                                                         \
        memcpy(&hi_s, c->hi, sizeof hi_s);                                                         \
        C lo = LD(lo_s), hi = LD(hi_s);                                                            \
        FY_EW_SIMD for (int64_t i = 0; i < n; i++)                                                 \
        {                                                                                          \
            C x = LD(a[i]);                                                                        \
            x = FY_EW_SEL(x < lo, lo, x);                                                          \
            o[i] = ST(FY_EW_SEL(x > hi, hi, x));                                                   \
        }                                                                                          \
    }
FY_EW_NUM_TYPES(CLIP_DEF, clip)
static const fy_ew_fn clip_table[FY_EW_NDTYPES] = {FY_EW_NUM_TYPES(FY_EW_ENTRY, clip)};

/* The dtype's lowest and highest finite values, the bounds of an absent min or max. */
static void dtype_limits(ferry_dtype t, unsigned char *lo, unsigned char *hi)
{
#define LIMITS(T, L, H)                                                                            \
    do {                                                                                           \
        T l = (L), h = (H);                                                                        \
        memcpy(lo, &l, sizeof l);                                                                  \
        memcpy(hi, &h, sizeof h);                                                                  \
    } while (0)
    switch (t) {
    case FERRY_DTYPE_F32: LIMITS(float, -FLT_MAX, FLT_MAX); break;
    case FERRY_DTYPE_F64: LIMITS(double, -DBL_MAX, DBL_MAX); break;
    case FERRY_DTYPE_F16: LIMITS(uint16_t, 0xfbff, 0x7bff); break;
    case FERRY_DTYPE_BF16: LIMITS(uint16_t, 0xff7f, 0x7f7f); break;
    case FERRY_DTYPE_I8: LIMITS(int8_t, INT8_MIN, INT8_MAX); break;
    case FERRY_DTYPE_I16: LIMITS(int16_t, INT16_MIN, INT16_MAX); break;
    case FERRY_DTYPE_I32: LIMITS(int32_t, INT32_MIN, INT32_MAX); break;
    case FERRY_DTYPE_I64: LIMITS(int64_t, INT64_MIN, INT64_MAX); break;
    case FERRY_DTYPE_U8: LIMITS(uint8_t, 0, UINT8_MAX); break;
    case FERRY_DTYPE_U16: LIMITS(uint16_t, 0, UINT16_MAX); break;
    case FERRY_DTYPE_U32: LIMITS(uint32_t, 0, UINT32_MAX); break;
    case FERRY_DTYPE_U64: LIMITS(uint64_t, 0, UINT64_MAX); break;
    default: break;
    }
#undef LIMITS
}

/* A float attribute bound stored in X's (float) dtype. */
static void float_bound(ferry_dtype t, float v, unsigned char *raw)
{
    fy_value tmp = {.dtype = t, .data = raw};
    fy_tensor_set_f64(&tmp, 0, v);
}

static ferry_status bound_input(fy_kernel *k, int i, const fy_value *x, unsigned char *raw)
{
    const fy_value *b;
    FY_CHECK(fy_input_tensor_opt(k, i, &b));
    if (!b) return FERRY_OK;
    if (b->dtype != x->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d is %s but X is %s", i,
                               ferry_dtype_name(b->dtype), ferry_dtype_name(x->dtype));
    if (b->count != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must be a scalar, has %lld elements", i,
                               (long long)b->count);
    memcpy(raw, b->data, ferry_dtype_size(b->dtype));
    return FERRY_OK;
}

ferry_status fy_op_Clip(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    fy_ew_fn fn = fy_ew_lookup(clip_table, x->dtype);
    if (!fn)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    clip_ctx c;
    memset(&c, 0, sizeof c);
    dtype_limits(x->dtype, c.lo, c.hi);
    if (k->node->opset < 11) {
        const fy_attr *a;
        if ((a = fy_attr_get(k, "min")) && a->type == FY_ATTR_FLOAT)
            float_bound(x->dtype, a->f, c.lo);
        if ((a = fy_attr_get(k, "max")) && a->type == FY_ATTR_FLOAT)
            float_bound(x->dtype, a->f, c.hi);
    } else {
        FY_CHECK(bound_input(k, 1, x, c.lo));
        FY_CHECK(bound_input(k, 2, x, c.hi));
    }
    return fy_ew_unary(k, x, x->dtype, fn, &c);
}
