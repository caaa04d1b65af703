/* cast.c — Cast and CastLike between every pair of ferry's numeric dtypes, bool and string.
 * Numeric pairs are stamped-out loops; strings parse and print the way numpy does. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ops/elementwise_util.h"

/* ---- scalar conversions with defined results where C leaves them undefined ---- */

/* Float to integer: truncate toward zero, saturate at the int64 range, NaN gives 0. The caller
 * then narrows with wrap-around, which is what numpy does for in-range-of-int64 values. */
static inline int64_t f2i(double x)
{
    if (x != x) return 0;
    if (x >= 9223372036854775807.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}
static inline uint64_t f2u(double x)
{
    if (x != x) return 0;
    if (x < 0) return (uint64_t)f2i(x);
    if (x >= 18446744073709551615.0) return UINT64_MAX;
    return (uint64_t)x;
}

/* double to IEEE half, rounding once to nearest even (going through float would round twice). */
static uint16_t dbl_to_half(double d)
{
    uint16_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    if (a != a) return sign | 0x7e00;
    if (a >= 65520.0) return sign | 0x7c00; /* rounds to infinity (or is one) */
    if (a < 6.103515625e-05)                /* subnormal: a multiple of 2^-24 */
        return sign | (uint16_t)nearbyint(a * 16777216.0);
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e) */
    /* 11 significant bits, scaled exactly into [1024, 2048]; 2048 carries into the exponent. */
    uint32_t q = (uint32_t)nearbyint(ldexp(a, 11 - e));
    return sign | (uint16_t)(((uint32_t)(e + 14) << 10) + q - 1024);
}

/* float to bfloat16 by truncation: the ONNX 1.12 reference (and its test data) keeps the high
 * 16 bits. NaN stays a quiet NaN rather than truncating to infinity. */
static uint16_t flt_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)(x >> 16);
}
static uint16_t dbl_to_bf16(double d) { return flt_to_bf16((float)d); }
static uint16_t flt_to_half(float f) { return fy_float_to_half(f); }
/* Integer to integer conversions keep the low bits (two's complement wrap-around). */
static inline int64_t id_i64(int64_t v) { return v; }
static inline uint64_t id_u64(uint64_t v) { return v; }

/* ---- numeric to numeric: one kernel per (source, destination) pair ---- */

#define LD_BOOL(x) ((uint8_t)((x) != 0))
/* S(X, D, TD, CV) calls X(S, TS, LD, D, TD, CV) per source dtype S. */
#define SRC_TYPES(X, D, TD, CV)                                                                    \
    X(F32, float, FY_EW_ID, D, TD, CV)                                                             \
    X(F64, double, FY_EW_ID, D, TD, CV)                                                            \
    X(F16, uint16_t, fy_half_to_float, D, TD, CV)                                                  \
    X(BF16, uint16_t, fy_bf16_to_float, D, TD, CV)                                                 \
    X(I8, int8_t, FY_EW_ID, D, TD, CV)                                                             \
    X(I16, int16_t, FY_EW_ID, D, TD, CV)                                                           \
    X(I32, int32_t, FY_EW_ID, D, TD, CV)                                                           \
    X(I64, int64_t, FY_EW_ID, D, TD, CV)                                                           \
    X(U8, uint8_t, FY_EW_ID, D, TD, CV)                                                            \
    X(U16, uint16_t, FY_EW_ID, D, TD, CV)                                                          \
    X(U32, uint32_t, FY_EW_ID, D, TD, CV)                                                          \
    X(U64, uint64_t, FY_EW_ID, D, TD, CV)                                                          \
    X(BOOL, uint8_t, LD_BOOL, D, TD, CV)

/* Destination converters take the loaded source value (float for half types). */
#define CV_FLOAT(T, v) ((T)(v))
#define CV_F16(T, v)   _Generic((v), double : dbl_to_half, default : flt_to_half)(v)
#define CV_BF16(T, v)  _Generic((v), double : dbl_to_bf16, default : flt_to_bf16)(v)
#define CV_SINT(T, v)  ((T) _Generic((v), float : f2i, double : f2i, default : id_i64)(v))
#define CV_UINT(T, v)  ((T) _Generic((v), float : f2u, double : f2u, default : id_u64)(v))
#define CV_BOOL(T, v)  ((T)((v) != 0))

#define DST_TYPES(X)                                                                               \
    X(F32, float, CV_FLOAT)                                                                        \
    X(F64, double, CV_FLOAT)                                                                       \
    X(F16, uint16_t, CV_F16)                                                                       \
    X(BF16, uint16_t, CV_BF16)                                                                     \
    X(I8, int8_t, CV_SINT)                                                                         \
    X(I16, int16_t, CV_SINT)                                                                       \
    X(I32, int32_t, CV_SINT)                                                                       \
    X(I64, int64_t, CV_SINT)                                                                       \
    X(U8, uint8_t, CV_UINT)                                                                        \
    X(U16, uint16_t, CV_UINT)                                                                      \
    X(U32, uint32_t, CV_UINT)                                                                      \
    X(U64, uint64_t, CV_UINT)                                                                      \
    X(BOOL, uint8_t, CV_BOOL)

#define CAST_DEF(S, TS, LD, D, TD, CV)                                                             \
    static void cast_##S##_##D(void *o_, const void *const *in, const int *step, int64_t n,        \
                               const void *ctx)                                                    \
    {                                                                                              \
        TD *o = o_;                                                                                \
        const TS *a = in[0];                                                                       \
        (void)step;                                                                                \
        (void)ctx;                                                                                 \
        FY_EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = CV(TD, LD(a[i]));                        \
    }
#define CAST_DEFS(D, TD, CV) SRC_TYPES(CAST_DEF, D, TD, CV)
DST_TYPES(CAST_DEFS)

#define CAST_ENTRY(S, TS, LD, D, TD, CV) [FERRY_DTYPE_##S][FERRY_DTYPE_##D] = cast_##S##_##D,
#define CAST_ENTRIES(D, TD, CV)          SRC_TYPES(CAST_ENTRY, D, TD, CV)
static const fy_ew_fn cast_table[FY_EW_NDTYPES][FY_EW_NDTYPES] = {DST_TYPES(CAST_ENTRIES)};

/* ---- numbers to strings, as numpy's astype(str) prints them ---- */

/* Whether the text s reads back as exactly v in dtype t. */
static bool round_trips(const char *s, double v, ferry_dtype t)
{
    switch (t) {
    case FERRY_DTYPE_F32: return strtof(s, NULL) == (float)v;
    case FERRY_DTYPE_F16: return dbl_to_half(strtod(s, NULL)) == dbl_to_half(v);
    case FERRY_DTYPE_BF16: return fy_float_to_bf16(strtof(s, NULL)) == fy_float_to_bf16((float)v);
    default: return strtod(s, NULL) == v;
    }
}

/* The shortest decimal that reads back as v in dtype t, positional for 1e-4 <= |v| < 1e16
 * and scientific otherwise ("0.1", "100.0", "1e-05", "1.5e+16", "nan", "-inf"). */
static void format_float(double v, ferry_dtype t, char *buf, size_t size)
{
    if (v != v) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v < 0 ? "-inf" : "inf");
        return;
    }
    if (v == 0) {
        snprintf(buf, size, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (round_trips(e, v, t)) break;
    }
    /* e is "-d.ddde+XX": split into sign, digits and exponent. */
    char digits[24];
    int nd = 0, neg = e[0] == '-';
    const char *c = e + neg;
    for (; *c && *c != 'e'; c++)
        if (*c != '.' && nd < (int)sizeof digits - 1) digits[nd++] = *c;
    digits[nd] = '\0';
    int exp10 = *c == 'e' ? atoi(c + 1) : 0;
    double a = fabs(v);
    size_t at = 0;
#define PUT(...) at += (size_t)snprintf(buf + at, at < size ? size - at : 0, __VA_ARGS__)
    PUT("%s", neg ? "-" : "");
    if (a >= 1e-4 && a < 1e16) {
        if (exp10 >= 0) { /* integer part is digits[0..exp10], zero-padded */
            for (int i = 0; i <= exp10; i++)
                PUT("%c", i < nd ? digits[i] : '0');
            PUT(".%s", nd > exp10 + 1 ? digits + exp10 + 1 : "0");
        } else {
            PUT("0.");
            for (int i = 0; i < -exp10 - 1; i++)
                PUT("0");
            PUT("%s", digits);
        }
    } else {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
#undef PUT
}

static ferry_status to_string(fy_kernel *k, const fy_value *x, fy_value *out)
{
    char buf[64];
    for (int64_t i = 0; i < x->count; i++) {
        switch (x->dtype) {
        case FERRY_DTYPE_F32:
        case FERRY_DTYPE_F64:
        case FERRY_DTYPE_F16:
        case FERRY_DTYPE_BF16:
            format_float(fy_tensor_get_f64(x, i), x->dtype, buf, sizeof buf);
            break;
        case FERRY_DTYPE_BOOL:
            snprintf(buf, sizeof buf, "%s", ((const uint8_t *)x->data)[i] ? "True" : "False");
            break;
        case FERRY_DTYPE_U64:
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)((const uint64_t *)x->data)[i]);
            break;
        default: snprintf(buf, sizeof buf, "%lld", (long long)fy_tensor_get_i64(x, i)); break;
        }
        FY_CHECK(ferry_tensor_set_string(out, i, buf, strlen(buf)));
    }
    return FERRY_OK;
}

/* ---- strings to numbers ---- */

/* Whether only spaces follow end. */
static bool at_end(const char *end)
{
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
        end++;
    return *end == '\0';
}

/* Parse s as a number for dtype t into element i of out. strtod reads "NaN", "INF", "+INF",
 * "-inf", "Infinity" in any case; integers also accept a float spelling ("1e3", "2.0"). */
static ferry_status parse_into(const fy_kernel *k, const char *s, fy_value *out, int64_t i)
{
    ferry_dtype t = out->dtype;
    char *end;
    errno = 0;
    if (t == FERRY_DTYPE_BOOL) {
        if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
            ((uint8_t *)out->data)[i] = strcasecmp(s, "true") == 0;
            return FERRY_OK;
        }
    }
    if (fy_dtype_is_int(t)) {
        if (t == FERRY_DTYPE_U64) {
            unsigned long long u = strtoull(s, &end, 10);
            if (end != s && at_end(end) && errno == 0 && !strchr(s, '-')) {
                ((uint64_t *)out->data)[i] = u;
                return FERRY_OK;
            }
        } else {
            long long v = strtoll(s, &end, 10);
            if (end != s && at_end(end) && errno == 0) {
                fy_tensor_set_i64(out, i, v);
                return FERRY_OK;
            }
        }
        errno = 0;
    }
    double d;
    if (t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_BF16) {
        float f = strtof(s, &end); /* rounds once, straight from the decimal */
        d = f;
    } else {
        d = strtod(s, &end);
    }
    if (end == s || !at_end(end))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "cannot parse \"%.60s\" as %s", s,
                               ferry_dtype_name(t));
    switch (t) {
    case FERRY_DTYPE_F32: ((float *)out->data)[i] = (float)d; break;
    case FERRY_DTYPE_F64: ((double *)out->data)[i] = d; break;
    case FERRY_DTYPE_F16: ((uint16_t *)out->data)[i] = dbl_to_half(d); break;
    case FERRY_DTYPE_BF16: ((uint16_t *)out->data)[i] = flt_to_bf16((float)d); break;
    case FERRY_DTYPE_BOOL: ((uint8_t *)out->data)[i] = d != 0; break;
    case FERRY_DTYPE_U64: ((uint64_t *)out->data)[i] = f2u(d); break;
    default: fy_tensor_set_i64(out, i, f2i(d)); break;
    }
    return FERRY_OK;
}

static ferry_status from_string(fy_kernel *k, const fy_value *x, fy_value *out)
{
    char *const *s = x->data;
    for (int64_t i = 0; i < x->count; i++)
        FY_CHECK(parse_into(k, s[i] ? s[i] : "", out, i));
    return FERRY_OK;
}

/* ---- the ops ---- */

static bool castable(ferry_dtype t)
{
    return t == FERRY_DTYPE_STRING || ((unsigned)t < FY_EW_NDTYPES && cast_table[t][t]);
}

static ferry_status cast_to(fy_kernel *k, ferry_dtype to)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!castable(x->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "cannot cast from %s",
                               ferry_dtype_name(x->dtype));
    if (!castable(to))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "cannot cast to %s (dtype %d)",
                               ferry_dtype_name(to), (int)to);
    /* Values are immutable, so a cast to the same dtype can share the input. */
    if (x->dtype == to) return fy_output_set(k, 0, fy_value_ref((fy_value *)x));
    if (x->dtype != FERRY_DTYPE_STRING && to != FERRY_DTYPE_STRING)
        return fy_ew_unary(k, x, to, cast_table[x->dtype][to], NULL);
    fy_value *out;
    FY_CHECK(fy_output(k, 0, to, x->rank, x->dims, &out));
    return to == FERRY_DTYPE_STRING ? to_string(k, x, out) : from_string(k, x, out);
}

ferry_status fy_op_Cast(fy_kernel *k)
{
    const fy_attr *to = fy_attr_get(k, "to");
    if (!to) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute to is required");
    /* Opset 1 spelled the type as a string ("FLOAT"); later opsets use the enum. */
    if (to->type == FY_ATTR_STRING) {
        static const struct {
            const char *name;
            ferry_dtype t;
        } names[] = {
            {"FLOAT", FERRY_DTYPE_F32},  {"UINT8", FERRY_DTYPE_U8},
            {"INT8", FERRY_DTYPE_I8},    {"UINT16", FERRY_DTYPE_U16},
            {"INT16", FERRY_DTYPE_I16},  {"INT32", FERRY_DTYPE_I32},
            {"INT64", FERRY_DTYPE_I64},  {"STRING", FERRY_DTYPE_STRING},
            {"BOOL", FERRY_DTYPE_BOOL},  {"FLOAT16", FERRY_DTYPE_F16},
            {"DOUBLE", FERRY_DTYPE_F64}, {"UINT32", FERRY_DTYPE_U32},
            {"UINT64", FERRY_DTYPE_U64}, {"BFLOAT16", FERRY_DTYPE_BF16},
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcasecmp(to->s, names[i].name) == 0) return cast_to(k, names[i].t);
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "unknown type \"%.40s\" in attribute to",
                               to->s);
    }
    if (to->type != FY_ATTR_INT || to->i < 0 || to->i > 1000)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute to is not a dtype");
    return cast_to(k, (ferry_dtype)to->i);
}

ferry_status fy_op_CastLike(fy_kernel *k)
{
    const fy_value *like;
    FY_CHECK(fy_input_tensor(k, 1, &like));
    return cast_to(k, like->dtype);
}
