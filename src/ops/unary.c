/* unary.c — one-input math ops (Abs ... Erf), the predicates IsNaN and IsInf, and the logical
 * and bitwise negations. Each op is a table of typed row kernels run by fy_ew_unary. */
#include <math.h>

#include "ops/elementwise_util.h"

/* Ops defined for the four float types only. */
#define FLOAT_OP(A)                                                                                \
    FY_EW_FLOAT_TYPES(FY_EW_UN_DEF, A)                                                             \
    static const fy_ew_fn A##_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, A)};

#define exp_OP(x, p)        FY_EW_EXP(x)
#define log_OP(x, p)        FY_EW_M(log, x)
#define sqrt_OP(x, p)       FY_EW_M(sqrt, x)
#define reciprocal_OP(x, p) (1 / (x))
#define floor_OP(x, p)      FY_EW_M(floor, x)
#define ceil_OP(x, p)       FY_EW_M(ceil, x)
/* Halves go to the even neighbour (the default rounding mode), as ONNX's Round requires. */
#define round_OP(x, p) FY_EW_M(nearbyint, x)
#define sin_OP(x, p)   FY_EW_M(sin, x)
#define cos_OP(x, p)   FY_EW_M(cos, x)
#define tan_OP(x, p)   FY_EW_M(tan, x)
#define asin_OP(x, p)  FY_EW_M(asin, x)
#define acos_OP(x, p)  FY_EW_M(acos, x)
#define atan_OP(x, p)  FY_EW_M(atan, x)
#define sinh_OP(x, p)  FY_EW_M(sinh, x)
#define cosh_OP(x, p)  FY_EW_M(cosh, x)
#define asinh_OP(x, p) FY_EW_M(asinh, x)
#define acosh_OP(x, p) FY_EW_M(acosh, x)
#define atanh_OP(x, p) FY_EW_M(atanh, x)
#define erf_OP(x, p)   FY_EW_ERF(x)

FLOAT_OP(exp)
FLOAT_OP(log)
FLOAT_OP(sqrt)
FLOAT_OP(reciprocal)
FLOAT_OP(floor)
FLOAT_OP(ceil)
FLOAT_OP(round)
FLOAT_OP(sin)
FLOAT_OP(cos)
FLOAT_OP(tan)
FLOAT_OP(asin)
FLOAT_OP(acos)
FLOAT_OP(atan)
FLOAT_OP(sinh)
FLOAT_OP(cosh)
FLOAT_OP(asinh)
FLOAT_OP(acosh)
FLOAT_OP(atanh)
FLOAT_OP(erf)

ferry_status fy_op_Exp(fy_kernel *k) { return fy_ew_unary_table(k, exp_table, false, NULL); }
ferry_status fy_op_Log(fy_kernel *k) { return fy_ew_unary_table(k, log_table, false, NULL); }
ferry_status fy_op_Sqrt(fy_kernel *k) { return fy_ew_unary_table(k, sqrt_table, false, NULL); }
ferry_status fy_op_Reciprocal(fy_kernel *k)
{
    return fy_ew_unary_table(k, reciprocal_table, false, NULL);
}
ferry_status fy_op_Floor(fy_kernel *k) { return fy_ew_unary_table(k, floor_table, false, NULL); }
ferry_status fy_op_Ceil(fy_kernel *k) { return fy_ew_unary_table(k, ceil_table, false, NULL); }
ferry_status fy_op_Round(fy_kernel *k) { return fy_ew_unary_table(k, round_table, false, NULL); }
ferry_status fy_op_Sin(fy_kernel *k) { return fy_ew_unary_table(k, sin_table, false, NULL); }
ferry_status fy_op_Cos(fy_kernel *k) { return fy_ew_unary_table(k, cos_table, false, NULL); }
ferry_status fy_op_Tan(fy_kernel *k) { return fy_ew_unary_table(k, tan_table, false, NULL); }
ferry_status fy_op_Asin(fy_kernel *k) { return fy_ew_unary_table(k, asin_table, false, NULL); }
ferry_status fy_op_Acos(fy_kernel *k) { return fy_ew_unary_table(k, acos_table, false, NULL); }
ferry_status fy_op_Atan(fy_kernel *k) { return fy_ew_unary_table(k, atan_table, false, NULL); }
ferry_status fy_op_Sinh(fy_kernel *k) { return fy_ew_unary_table(k, sinh_table, false, NULL); }
ferry_status fy_op_Cosh(fy_kernel *k) { return fy_ew_unary_table(k, cosh_table, false, NULL); }
ferry_status fy_op_Asinh(fy_kernel *k) { return fy_ew_unary_table(k, asinh_table, false, NULL); }
ferry_status fy_op_Acosh(fy_kernel *k) { return fy_ew_unary_table(k, acosh_table, false, NULL); }
ferry_status fy_op_Atanh(fy_kernel *k) { return fy_ew_unary_table(k, atanh_table, false, NULL); }
ferry_status fy_op_Erf(fy_kernel *k) { return fy_ew_unary_table(k, erf_table, false, NULL); }

/* ---- Abs, Neg, Sign: every numeric type. Signed integers negate through unsigned
 * arithmetic so that the most negative value wraps instead of overflowing. ---- */

#define absf_OP(x, p) FY_EW_M(fabs, x)
#define abss_OP(x, p) ((x) < 0 ? (uint64_t)0 - (uint64_t)(x) : (uint64_t)(x))
#define absu_OP(x, p) (x)
#define negf_OP(x, p) (-(x))
#define negs_OP(x, p) ((uint64_t)0 - (uint64_t)(x))
/* Sign keeps NaN (and the sign of zero) by returning x itself when x is neither > 0 nor < 0. */
#define signf_OP(x, p) ((x) > 0 ? 1 : (x) < 0 ? -1 : (x))
#define signs_OP(x, p) ((x) > 0 ? 1 : (x) < 0 ? -1 : 0)
#define signu_OP(x, p) ((x) != 0)

FY_EW_FLOAT_TYPES(FY_EW_UN_DEF, absf)
FY_EW_SINT_TYPES(FY_EW_UN_DEF, abss)
FY_EW_UINT_TYPES(FY_EW_UN_DEF, absu)
FY_EW_FLOAT_TYPES(FY_EW_UN_DEF, negf)
FY_EW_SINT_TYPES(FY_EW_UN_DEF, negs)
FY_EW_FLOAT_TYPES(FY_EW_UN_DEF, signf)
FY_EW_SINT_TYPES(FY_EW_UN_DEF, signs)
FY_EW_UINT_TYPES(FY_EW_UN_DEF, signu)

static const fy_ew_fn abs_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(
    FY_EW_ENTRY, absf) FY_EW_SINT_TYPES(FY_EW_ENTRY, abss) FY_EW_UINT_TYPES(FY_EW_ENTRY, absu)};
static const fy_ew_fn neg_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, negf)
                                                      FY_EW_SINT_TYPES(FY_EW_ENTRY, negs)};
static const fy_ew_fn sign_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(
    FY_EW_ENTRY, signf) FY_EW_SINT_TYPES(FY_EW_ENTRY, signs) FY_EW_UINT_TYPES(FY_EW_ENTRY, signu)};

ferry_status fy_op_Abs(fy_kernel *k) { return fy_ew_unary_table(k, abs_table, false, NULL); }
ferry_status fy_op_Neg(fy_kernel *k) { return fy_ew_unary_table(k, neg_table, false, NULL); }
ferry_status fy_op_Sign(fy_kernel *k) { return fy_ew_unary_table(k, sign_table, false, NULL); }

/* ---- predicates and negations ---- */

#define isnan_OP(x, p) ((x) != (x))
FY_EW_FLOAT_TYPES(FY_EW_PRED_DEF, isnan)
static const fy_ew_fn isnan_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, isnan)};

/* flag_a: detect -inf, flag_b: detect +inf */
#define isinf_OP(x, p) (((x) == INFINITY && (p).flag_b) || ((x) == -INFINITY && (p).flag_a))
FY_EW_FLOAT_TYPES(FY_EW_PRED_DEF, isinf)
static const fy_ew_fn isinf_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, isinf)};

ferry_status fy_op_IsNaN(fy_kernel *k) { return fy_ew_unary_table(k, isnan_table, true, NULL); }

ferry_status fy_op_IsInf(fy_kernel *k)
{
    fy_ew_params p = {.flag_a = fy_attr_int(k, "detect_negative", 1) != 0,
                      .flag_b = fy_attr_int(k, "detect_positive", 1) != 0};
    return fy_ew_unary_table(k, isinf_table, true, &p);
}

#define not_OP(x, p) ((x) == 0)
FY_EW_BOOL_TYPE(FY_EW_UN_DEF, not )
static const fy_ew_fn not_table[FY_EW_NDTYPES] = {FY_EW_BOOL_TYPE(FY_EW_ENTRY, not )};
ferry_status fy_op_Not(fy_kernel *k) { return fy_ew_unary_table(k, not_table, false, NULL); }

/* Bitwise negation only sees bits: one kernel per element size serves signed and unsigned. */
#define bnot_OP(x, p) (~(x))
FY_EW_UINT_TYPES(FY_EW_UN_DEF, bnot)
static const fy_ew_fn bnot_table[FY_EW_NDTYPES] = {
    FY_EW_UINT_TYPES(FY_EW_ENTRY, bnot)[FERRY_DTYPE_I8] = bnot_U8,
    [FERRY_DTYPE_I16] = bnot_U16,
    [FERRY_DTYPE_I32] = bnot_U32,
    [FERRY_DTYPE_I64] = bnot_U64,
};
ferry_status fy_op_BitwiseNot(fy_kernel *k)
{
    return fy_ew_unary_table(k, bnot_table, false, NULL);
}
