/* random.c — the random generators: RandomUniform(Like), RandomNormal(Like), Bernoulli and
 * Multinomial, over xoshiro256** seeded by the node's `seed` attribute (or fresh entropy). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/kernel.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ONNX leaves the generator unspecified, so no other runtime's numbers can be reproduced (the
 * conformance tests, drawn with numpy, cannot match). A node with a seed gives the same values
 * on every run; without one, every run draws new values. Generation is sequential so that a
 * seeded result does not depend on the thread count. */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Standard normal by Box-Muller (one value per call; simple and exact enough). */
static inline double rng_normal(rng *r)
{
    double u1 = 1.0 - rng_uniform(r); /* (0, 1] keeps the log finite */
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2);
}

static void rng_seed(const fy_kernel *k, rng *r)
{
    static atomic_ullong counter;
    uint64_t x;
    const fy_attr *a = fy_attr_get(k, "seed");
    if (a && (a->type == FY_ATTR_FLOAT || a->type == FY_ATTR_INT)) {
        double sd = a->type == FY_ATTR_FLOAT ? (double)a->f : (double)a->i;
        memcpy(&x, &sd, sizeof x);
    } else {
        struct timespec ts;
        timespec_get(&ts, TIME_UTC);
        x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
            (atomic_fetch_add(&counter, 1) << 32) ^ (uint64_t)(uintptr_t)k->node;
    }
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static bool is_rand_float(ferry_dtype t)
{
    return t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_F64 || t == FERRY_DTYPE_F16 ||
           t == FERRY_DTYPE_BF16;
}

static ferry_status float_dtype(const fy_kernel *k, int64_t dt, ferry_dtype *out)
{
    if (!is_rand_float((ferry_dtype)dt))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %lld is not a float type",
                               (long long)dt);
    *out = (ferry_dtype)dt;
    return FERRY_OK;
}

static void fill(const fy_kernel *k, fy_value *y, int normal, double a, double b)
{
    rng r;
    rng_seed(k, &r);
    for (int64_t i = 0; i < y->count; i++) {
        double v = normal ? a + b * rng_normal(&r) : a + (b - a) * rng_uniform(&r);
        if (y->dtype == FERRY_DTYPE_F32)
            ((float *)y->data)[i] = (float)v;
        else
            fy_tensor_set_f64(y, i, v);
    }
}

/* RandomUniform / RandomNormal: shape and dtype come from attributes. */
static ferry_status random_shaped(fy_kernel *k, int normal)
{
    const int64_t *shape;
    int64_t rank = fy_attr_ints(k, "shape", &shape);
    if (rank < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute shape is required");
    if (rank > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "shape has %lld dims, at most %d supported",
                               (long long)rank, FERRY_MAX_RANK);
    for (int64_t i = 0; i < rank; i++)
        if (shape[i] < 0)
            return fy_kernel_error(k, FERRY_E_SHAPE, "shape[%lld] is negative", (long long)i);
    ferry_dtype dt = FERRY_DTYPE_F32;
    FY_CHECK(float_dtype(k, fy_attr_int(k, "dtype", FERRY_DTYPE_F32), &dt));
    fy_value *y;
    FY_CHECK(fy_output(k, 0, dt, (int)rank, shape, &y));
    if (normal)
        fill(k, y, 1, fy_attr_float(k, "mean", 0), fy_attr_float(k, "scale", 1));
    else
        fill(k, y, 0, fy_attr_float(k, "low", 0), fy_attr_float(k, "high", 1));
    return FERRY_OK;
}

/* RandomUniformLike / RandomNormalLike: shape from the input, dtype from it unless given. */
static ferry_status random_like(fy_kernel *k, int normal)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    ferry_dtype dt = FERRY_DTYPE_F32;
    FY_CHECK(float_dtype(k, fy_attr_int(k, "dtype", x->dtype), &dt));
    fy_value *y;
    FY_CHECK(fy_output(k, 0, dt, x->rank, x->dims, &y));
    if (normal)
        fill(k, y, 1, fy_attr_float(k, "mean", 0), fy_attr_float(k, "scale", 1));
    else
        fill(k, y, 0, fy_attr_float(k, "low", 0), fy_attr_float(k, "high", 1));
    return FERRY_OK;
}

ferry_status fy_op_RandomUniform(fy_kernel *k) { return random_shaped(k, 0); }
ferry_status fy_op_RandomNormal(fy_kernel *k) { return random_shaped(k, 1); }
ferry_status fy_op_RandomUniformLike(fy_kernel *k) { return random_like(k, 0); }
ferry_status fy_op_RandomNormalLike(fy_kernel *k) { return random_like(k, 1); }

ferry_status fy_op_Bernoulli(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!is_rand_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be float, got %s",
                               ferry_dtype_name(x->dtype));
    int64_t dt = fy_attr_int(k, "dtype", x->dtype);
    if (!fy_dtype_is_numeric((ferry_dtype)dt) || dt == FERRY_DTYPE_C64 || dt == FERRY_DTYPE_C128)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %lld is not supported",
                               (long long)dt);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, (ferry_dtype)dt, x->rank, x->dims, &y));
    rng r;
    rng_seed(k, &r);
    for (int64_t i = 0; i < x->count; i++)
        fy_tensor_set_f64(y, i, rng_uniform(&r) < fy_tensor_get_f64(x, i) ? 1.0 : 0.0);
    return FERRY_OK;
}

/* Multinomial: the input rows are unnormalized log-probabilities; each sample is a class index
 * drawn by inverting the cumulative distribution of exp(x - max). */
ferry_status fy_op_Multinomial(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!is_rand_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be float, got %s",
                               ferry_dtype_name(x->dtype));
    if (x->rank != 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 must be [batch, classes], got rank %d",
                               x->rank);
    int64_t dt = fy_attr_int(k, "dtype", FERRY_DTYPE_I32);
    if (dt != FERRY_DTYPE_I32 && dt != FERRY_DTYPE_I64)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %lld must be int32 or int64",
                               (long long)dt);
    int64_t samples = fy_attr_int(k, "sample_size", 1);
    if (samples < 0)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "sample_size %lld is negative",
                               (long long)samples);
    int64_t B = x->dims[0], C = x->dims[1];
    int64_t dims[2] = {B, samples};
    fy_value *y;
    FY_CHECK(fy_output(k, 0, (ferry_dtype)dt, 2, dims, &y));
    if (B * samples == 0) return FERRY_OK;
    if (C < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 has no classes");
    double *cdf = malloc(sizeof(double) * (size_t)C);
    if (!cdf) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    rng r;
    rng_seed(k, &r);
    for (int64_t b = 0; b < B; b++) {
        double mx = -INFINITY, total = 0;
        for (int64_t c = 0; c < C; c++) {
            double v = fy_tensor_get_f64(x, b * C + c);
            if (v > mx) mx = v;
        }
        for (int64_t c = 0; c < C; c++) {
            total += exp(fy_tensor_get_f64(x, b * C + c) - mx);
            cdf[c] = total;
        }
        for (int64_t s = 0; s < samples; s++) {
            /* first class whose cumulative weight exceeds u (binary search) */
            double u = rng_uniform(&r) * total;
            int64_t lo = 0, hi = C - 1;
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (u < cdf[mid])
                    hi = mid;
                else
                    lo = mid + 1;
            }
            fy_tensor_set_i64(y, b * samples + s, lo);
        }
    }
    free(cdf);
    return FERRY_OK;
}
