/* binary.c — the broadcasting loop driver every elementwise op runs on, and the ops with two or
 * more inputs: arithmetic, Pow, Mod, comparisons, logic, bitwise ops, Min/Max/Sum/Mean, Where. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/elementwise_util.h"

/* ---- the driver ------------------------------------------------------------------------- */

void fy_ew_plan_init(fy_ew_plan *p, int rank, const int64_t *dims, int n_in, const int *in_rank,
                     const int64_t *const *in_dims)
{
    int64_t st[FY_EW_MAX_IN][FERRY_MAX_RANK];
    for (int j = 0; j < n_in; j++)
        fy_broadcast_strides(in_rank[j], in_dims[j], rank, dims, st[j]);
    p->count = fy_shape_count(rank, dims);
    p->n_in = n_in;
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 1) continue; /* a size-1 dim moves nothing */
        bool merge = r > 0;
        for (int j = 0; j < n_in && merge; j++)
            merge = (uint64_t)p->strides[j][r - 1] == (uint64_t)st[j][d] * (uint64_t)dims[d];
        if (merge) { /* products wrap only for empty tensors, which iterate nothing */
            p->dims[r - 1] = (int64_t)((uint64_t)p->dims[r - 1] * (uint64_t)dims[d]);
            for (int j = 0; j < n_in; j++)
                p->strides[j][r - 1] = st[j][d];
            continue;
        }
        p->dims[r] = dims[d];
        for (int j = 0; j < n_in; j++)
            p->strides[j][r] = st[j][d];
        r++;
    }
    if (r == 0) { /* a scalar, or all dims 1 */
        p->dims[0] = 1;
        for (int j = 0; j < n_in; j++)
            p->strides[j][0] = 0;
        r = 1;
    }
    p->rank = r;
}

void fy_ew_plan_run(const fy_ew_plan *p, void *out, size_t out_esize, const void *const *in,
                    const size_t *in_esize, fy_ew_fn fn, const void *ctx, int threads)
{
    if (p->count <= 0) return;
    int last = p->rank - 1, n_in = p->n_in;
    int64_t inner = p->dims[last], rows = p->count / inner;
    int step[FY_EW_MAX_IN] = {0};
    /* The innermost merged dim of an input is either contiguous or broadcast. */
    for (int j = 0; j < n_in; j++)
        step[j] = p->strides[j][last] != 0;
    bool par = p->count >= FY_EW_PARALLEL_MIN && threads != 1;
    int64_t pieces = 1, per = inner;
    if (par && inner > FY_EW_CHUNK) {
        pieces = (inner + FY_EW_CHUNK - 1) / FY_EW_CHUNK;
        per = (inner + pieces - 1) / pieces;
    }
    int64_t tasks = rows * pieces;
    int nt = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for schedule(static) if (par) num_threads(nt)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t row = t / pieces, start = (t % pieces) * per;
        int64_t len = inner - start < per ? inner - start : per;
        int64_t off[FY_EW_MAX_IN] = {0}, rem = row;
        for (int d = last - 1; d >= 0 && rem; d--) {
            int64_t i = rem % p->dims[d];
            rem /= p->dims[d];
            for (int j = 0; j < n_in; j++)
                off[j] += i * p->strides[j][d];
        }
        const void *ptr[FY_EW_MAX_IN] = {0};
        for (int j = 0; j < n_in; j++)
            ptr[j] = (const char *)in[j] + (size_t)(off[j] + start * step[j]) * in_esize[j];
        fn((char *)out + (size_t)(row * inner + start) * out_esize, ptr, step, len, ctx);
    }
}

static ferry_status wrap(const fy_kernel *k, ferry_status rc)
{
    return fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
}

ferry_status fy_ew_unary(fy_kernel *k, const fy_value *x, ferry_dtype out_dtype, fy_ew_fn fn,
                         const void *ctx)
{
    fy_value *out;
    FY_CHECK(fy_output(k, 0, out_dtype, x->rank, x->dims, &out));
    fy_ew_plan p;
    const int64_t *dims[1] = {x->dims};
    fy_ew_plan_init(&p, x->rank, x->dims, 1, &x->rank, dims);
    const void *in[1] = {x->data};
    size_t es[1] = {ferry_dtype_size(x->dtype)};
    fy_ew_plan_run(&p, out->data, ferry_dtype_size(out_dtype), in, es, fn, ctx, k->threads);
    return FERRY_OK;
}

/* Opset < 7 spelled broadcasting as attributes: with broadcast=1 and an axis, B's shape sits
 * inside A's starting at axis (without axis it is a suffix, which numpy's rule covers). */
static ferry_status legacy_b_shape(const fy_kernel *k, const fy_value *a, const fy_value *b,
                                   int *rb, int64_t *db)
{
    *rb = b->rank;
    if (b->rank) memcpy(db, b->dims, sizeof(int64_t) * b->rank);
    if (k->node->opset >= 7 || fy_attr_int(k, "broadcast", 0) == 0) return FERRY_OK;
    const fy_attr *ax = fy_attr_get(k, "axis");
    if (!ax || ax->type != FY_ATTR_INT) return FERRY_OK;
    int64_t axis = ax->i < 0 ? ax->i + a->rank : ax->i;
    if (axis < 0 || axis + b->rank > a->rank)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "axis %lld cannot place input 1 (rank %d) inside input 0 (rank %d)",
                               (long long)ax->i, b->rank, a->rank);
    *rb = a->rank;
    for (int d = 0; d < a->rank; d++)
        db[d] = 1;
    for (int d = 0; d < b->rank; d++)
        db[axis + d] = b->dims[d];
    return FERRY_OK;
}

ferry_status fy_ew_binary(fy_kernel *k, const fy_value *a, const fy_value *b, ferry_dtype out_dtype,
                          fy_ew_fn fn, const void *ctx)
{
    int rb, rank;
    int64_t db[FERRY_MAX_RANK], dims[FERRY_MAX_RANK];
    FY_CHECK(legacy_b_shape(k, a, b, &rb, db));
    ferry_status rc = fy_broadcast_shape(a->rank, a->dims, rb, db, &rank, dims);
    if (rc != FERRY_OK) return wrap(k, rc);
    fy_value *out;
    FY_CHECK(fy_output(k, 0, out_dtype, rank, dims, &out));
    fy_ew_plan p;
    int ranks[2] = {a->rank, rb};
    const int64_t *shapes[2] = {a->dims, db};
    fy_ew_plan_init(&p, rank, dims, 2, ranks, shapes);
    const void *in[2] = {a->data, b->data};
    size_t es[2] = {ferry_dtype_size(a->dtype), ferry_dtype_size(b->dtype)};
    fy_ew_plan_run(&p, out->data, ferry_dtype_size(out_dtype), in, es, fn, ctx, k->threads);
    return FERRY_OK;
}

static ferry_status unsupported(const fy_kernel *k, ferry_dtype t)
{
    return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                           ferry_dtype_name(t));
}

static ferry_status same_dtype(const fy_kernel *k, const fy_value *a, const fy_value *b)
{
    if (a->dtype == b->dtype) return FERRY_OK;
    return fy_kernel_error(k, FERRY_E_DTYPE, "inputs have different dtypes (%s and %s)",
                           ferry_dtype_name(a->dtype), ferry_dtype_name(b->dtype));
}

ferry_status fy_ew_binary_table(fy_kernel *k, const fy_ew_fn *table, bool to_bool)
{
    const fy_value *a, *b;
    FY_CHECK(fy_input_tensor(k, 0, &a));
    FY_CHECK(fy_input_tensor(k, 1, &b));
    FY_CHECK(same_dtype(k, a, b));
    fy_ew_fn fn = fy_ew_lookup(table, a->dtype);
    if (!fn) return unsupported(k, a->dtype);
    return fy_ew_binary(k, a, b, to_bool ? FERRY_DTYPE_BOOL : a->dtype, fn, NULL);
}

ferry_status fy_ew_unary_table(fy_kernel *k, const fy_ew_fn *table, bool to_bool, const void *ctx)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    fy_ew_fn fn = fy_ew_lookup(table, x->dtype);
    if (!fn) return unsupported(k, x->dtype);
    return fy_ew_unary(k, x, to_bool ? FERRY_DTYPE_BOOL : x->dtype, fn, ctx);
}

/* ---- typed row kernels ------------------------------------------------------------------ */

/* For integer division: no simd request, so nothing is ever evaluated speculatively. */
#define BIN_DEF_SCALAR(A, D, T, C, LD, ST) FY_EW_BIN_BODY(A, D, T, T, C, LD, ST, )
#define CMP_DEF(A, D, T, C, LD, ST)                                                                \
    FY_EW_BIN_BODY(A, D, T, uint8_t, C, LD, FY_EW_TO_BOOL, FY_EW_SIMD)

/* Integers wrap around like numpy's: add, sub and mul run in uint64 so overflow is defined. */
#define add_OP(x, y)  ((x) + (y))
#define sub_OP(x, y)  ((x) - (y))
#define mul_OP(x, y)  ((x) * (y))
#define div_OP(x, y)  ((x) / (y))
#define addi_OP(x, y) ((uint64_t)(x) + (uint64_t)(y))
#define subi_OP(x, y) ((uint64_t)(x) - (uint64_t)(y))
#define muli_OP(x, y) ((uint64_t)(x) * (uint64_t)(y))
#define divs_OP(x, y) sdiv((x), (y))
#define divu_OP(x, y) udiv((x), (y))

/* Integer division truncates toward zero; x / 0 gives 0 rather than a crash. */
static inline int64_t sdiv(int64_t x, int64_t y)
{
    if (y == 0) return 0;
    if (y == -1) return (int64_t)(0 - (uint64_t)x); /* INT64_MIN / -1 wraps */
    return x / y;
}
static inline uint64_t udiv(uint64_t x, uint64_t y) { return y ? x / y : 0; }

FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, add)
FY_EW_INT_TYPES(FY_EW_BIN_DEF, addi)
FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, sub)
FY_EW_INT_TYPES(FY_EW_BIN_DEF, subi)
FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, mul)
FY_EW_INT_TYPES(FY_EW_BIN_DEF, muli)
FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, div)
FY_EW_SINT_TYPES(BIN_DEF_SCALAR, divs)
FY_EW_UINT_TYPES(BIN_DEF_SCALAR, divu)

static const fy_ew_fn add_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, add)
                                                      FY_EW_INT_TYPES(FY_EW_ENTRY, addi)};
static const fy_ew_fn sub_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, sub)
                                                      FY_EW_INT_TYPES(FY_EW_ENTRY, subi)};
static const fy_ew_fn mul_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, mul)
                                                      FY_EW_INT_TYPES(FY_EW_ENTRY, muli)};
static const fy_ew_fn div_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(
    FY_EW_ENTRY, div) FY_EW_SINT_TYPES(FY_EW_ENTRY, divs) FY_EW_UINT_TYPES(FY_EW_ENTRY, divu)};

ferry_status fy_op_Add(fy_kernel *k) { return fy_ew_binary_table(k, add_table, false); }
ferry_status fy_op_Sub(fy_kernel *k) { return fy_ew_binary_table(k, sub_table, false); }
ferry_status fy_op_Mul(fy_kernel *k) { return fy_ew_binary_table(k, mul_table, false); }
ferry_status fy_op_Div(fy_kernel *k) { return fy_ew_binary_table(k, div_table, false); }

/* ---- Mod ---- */

#define FY_EW_M2(fn, x, y) _Generic((x), float : fn##f, default : fn)((x), (y))
/* fmod=1: the remainder has the dividend's sign (C's fmod and %). fmod=0: the divisor's sign,
 * as Python and numpy's mod do. */
#define fmodf_OP(x, y) FY_EW_M2(fmod, x, y)
#define pmodf_OP(x, y) pymodf((x), (y))
#define fmods_OP(x, y) cmods((x), (y))
#define pmods_OP(x, y) pymods((x), (y))
#define modu_OP(x, y)  ((y) ? (x) % (y) : 0)

static inline double pymodf(double x, double y)
{
    double r = fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}
static inline int64_t cmods(int64_t x, int64_t y) { return y == 0 || y == -1 ? 0 : x % y; }
static inline int64_t pymods(int64_t x, int64_t y)
{
    int64_t r = cmods(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}

FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, fmodf)
FY_EW_FLOAT_TYPES(BIN_DEF_SCALAR, pmodf)
FY_EW_SINT_TYPES(BIN_DEF_SCALAR, fmods)
FY_EW_SINT_TYPES(BIN_DEF_SCALAR, pmods)
FY_EW_UINT_TYPES(BIN_DEF_SCALAR, modu)

static const fy_ew_fn fmod_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(
    FY_EW_ENTRY, fmodf) FY_EW_SINT_TYPES(FY_EW_ENTRY, fmods) FY_EW_UINT_TYPES(FY_EW_ENTRY, modu)};
static const fy_ew_fn pmod_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(
    FY_EW_ENTRY, pmodf) FY_EW_SINT_TYPES(FY_EW_ENTRY, pmods) FY_EW_UINT_TYPES(FY_EW_ENTRY, modu)};

ferry_status fy_op_Mod(fy_kernel *k)
{
    return fy_ew_binary_table(k, fy_attr_int(k, "fmod", 0) ? fmod_table : pmod_table, false);
}

/* ---- comparisons and logic ---- */

#define eq_OP(x, y)  ((x) == (y))
#define gt_OP(x, y)  ((x) > (y))
#define lt_OP(x, y)  ((x) < (y))
#define ge_OP(x, y)  ((x) >= (y))
#define le_OP(x, y)  ((x) <= (y))
#define and_OP(x, y) (((x) != 0) & ((y) != 0))
#define or_OP(x, y)  (((x) != 0) | ((y) != 0))
#define xor_OP(x, y) (((x) != 0) ^ ((y) != 0))
#define eqs_OP(x, y) (strcmp((x) ? (x) : "", (y) ? (y) : "") == 0)
/* Typedefs so that the macros' `const T *` and `C x, y` declare what they mean. */
typedef char *str_t;
typedef const char *cstr_t;
#define CMP_STR_DEF(A) FY_EW_BIN_BODY(A, STRING, str_t, uint8_t, cstr_t, FY_EW_ID, FY_EW_TO_BOOL, )

FY_EW_NUM_TYPES(CMP_DEF, eq)
FY_EW_BOOL_TYPE(CMP_DEF, eq)
CMP_STR_DEF(eqs)
FY_EW_NUM_TYPES(CMP_DEF, gt)
FY_EW_BOOL_TYPE(CMP_DEF, gt)
FY_EW_NUM_TYPES(CMP_DEF, lt)
FY_EW_BOOL_TYPE(CMP_DEF, lt)
FY_EW_NUM_TYPES(CMP_DEF, ge)
FY_EW_BOOL_TYPE(CMP_DEF, ge)
FY_EW_NUM_TYPES(CMP_DEF, le)
FY_EW_BOOL_TYPE(CMP_DEF, le)
FY_EW_BOOL_TYPE(CMP_DEF, and)
FY_EW_BOOL_TYPE(CMP_DEF, or)
FY_EW_BOOL_TYPE(CMP_DEF, xor)

#define CMP_TABLE(A)                                                                               \
    {                                                                                              \
        FY_EW_NUM_TYPES(FY_EW_ENTRY, A) FY_EW_BOOL_TYPE(FY_EW_ENTRY, A)                            \
    }
static const fy_ew_fn eq_table[FY_EW_NDTYPES] = {
    FY_EW_NUM_TYPES(FY_EW_ENTRY, eq) FY_EW_BOOL_TYPE(FY_EW_ENTRY, eq)[FERRY_DTYPE_STRING] =
        eqs_STRING};
static const fy_ew_fn gt_table[FY_EW_NDTYPES] = CMP_TABLE(gt);
static const fy_ew_fn lt_table[FY_EW_NDTYPES] = CMP_TABLE(lt);
static const fy_ew_fn ge_table[FY_EW_NDTYPES] = CMP_TABLE(ge);
static const fy_ew_fn le_table[FY_EW_NDTYPES] = CMP_TABLE(le);
static const fy_ew_fn and_table[FY_EW_NDTYPES] = {FY_EW_BOOL_TYPE(FY_EW_ENTRY, and)};
static const fy_ew_fn or_table[FY_EW_NDTYPES] = {FY_EW_BOOL_TYPE(FY_EW_ENTRY, or)};
static const fy_ew_fn xor_table[FY_EW_NDTYPES] = {FY_EW_BOOL_TYPE(FY_EW_ENTRY, xor)};

ferry_status fy_op_Equal(fy_kernel *k) { return fy_ew_binary_table(k, eq_table, true); }
ferry_status fy_op_Greater(fy_kernel *k) { return fy_ew_binary_table(k, gt_table, true); }
ferry_status fy_op_Less(fy_kernel *k) { return fy_ew_binary_table(k, lt_table, true); }
ferry_status fy_op_GreaterOrEqual(fy_kernel *k) { return fy_ew_binary_table(k, ge_table, true); }
ferry_status fy_op_LessOrEqual(fy_kernel *k) { return fy_ew_binary_table(k, le_table, true); }
ferry_status fy_op_And(fy_kernel *k) { return fy_ew_binary_table(k, and_table, true); }
ferry_status fy_op_Or(fy_kernel *k) { return fy_ew_binary_table(k, or_table, true); }
ferry_status fy_op_Xor(fy_kernel *k) { return fy_ew_binary_table(k, xor_table, true); }

/* ---- bitwise ops and BitShift: they only see bits, so one kernel per element size ---- */

#define band_OP(x, y) ((x) & (y))
#define bor_OP(x, y)  ((x) | (y))
#define bxor_OP(x, y) ((x) ^ (y))
/* Shifting by the width or more gives 0 (C leaves it undefined). */
#define shl_OP(x, y) ((y) >= sizeof(x) * 8 ? 0 : (uint64_t)(x) << (y))
#define shr_OP(x, y) ((y) >= sizeof(x) * 8 ? 0 : (x) >> (y))

FY_EW_UINT_TYPES(FY_EW_BIN_DEF, band)
FY_EW_UINT_TYPES(FY_EW_BIN_DEF, bor)
FY_EW_UINT_TYPES(FY_EW_BIN_DEF, bxor)
FY_EW_UINT_TYPES(FY_EW_BIN_DEF, shl)
FY_EW_UINT_TYPES(FY_EW_BIN_DEF, shr)

#define BITS_TABLE(A)                                                                              \
    {                                                                                              \
        [FERRY_DTYPE_U8] = A##_U8, [FERRY_DTYPE_U16] = A##_U16, [FERRY_DTYPE_U32] = A##_U32,       \
        [FERRY_DTYPE_U64] = A##_U64, [FERRY_DTYPE_I8] = A##_U8, [FERRY_DTYPE_I16] = A##_U16,       \
        [FERRY_DTYPE_I32] = A##_U32, [FERRY_DTYPE_I64] = A##_U64,                                  \
    }
static const fy_ew_fn band_table[FY_EW_NDTYPES] = BITS_TABLE(band);
static const fy_ew_fn bor_table[FY_EW_NDTYPES] = BITS_TABLE(bor);
static const fy_ew_fn bxor_table[FY_EW_NDTYPES] = BITS_TABLE(bxor);
static const fy_ew_fn shl_table[FY_EW_NDTYPES] = {FY_EW_UINT_TYPES(FY_EW_ENTRY, shl)};
static const fy_ew_fn shr_table[FY_EW_NDTYPES] = {FY_EW_UINT_TYPES(FY_EW_ENTRY, shr)};

ferry_status fy_op_BitwiseAnd(fy_kernel *k) { return fy_ew_binary_table(k, band_table, false); }
ferry_status fy_op_BitwiseOr(fy_kernel *k) { return fy_ew_binary_table(k, bor_table, false); }
ferry_status fy_op_BitwiseXor(fy_kernel *k) { return fy_ew_binary_table(k, bxor_table, false); }

ferry_status fy_op_BitShift(fy_kernel *k)
{
    const char *dir = fy_attr_string(k, "direction", NULL);
    if (!dir || (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "attribute direction must be \"LEFT\" or \"RIGHT\"");
    return fy_ew_binary_table(k, strcmp(dir, "LEFT") == 0 ? shl_table : shr_table, false);
}

/* ---- Pow: base and exponent may have different dtypes; the result has the base's ---- */

/* Element i of raw data of dtype t as a double / int64, and the reverse. */
static double load_f64(const void *p, int64_t i, ferry_dtype t)
{
    fy_value v = {.dtype = t, .data = (void *)p};
    return fy_tensor_get_f64(&v, i);
}
static int64_t load_i64(const void *p, int64_t i, ferry_dtype t)
{
    fy_value v = {.dtype = t, .data = (void *)p};
    return fy_tensor_get_i64(&v, i);
}

/* Integer power by squaring, wrapping like the other integer ops. Negative exponents
 * truncate 1 / x^n toward zero. */
static int64_t ipow(int64_t x, int64_t e)
{
    if (e < 0) return x == 1 ? 1 : x == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)x;
    while (e) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

typedef struct pow_ctx {
    ferry_dtype ta, tb;
} pow_ctx;

static void pow_any(void *o, const void *const *in, const int *step, int64_t n, const void *ctx_)
{
    const pow_ctx *c = ctx_;
    fy_value out = {.dtype = c->ta, .data = o};
    bool ints = !fy_dtype_is_float(c->ta) && !fy_dtype_is_float(c->tb);
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = i * step[0], ib = i * step[1];
        if (ints)
            fy_tensor_set_i64(&out, i,
                              ipow(load_i64(in[0], ia, c->ta), load_i64(in[1], ib, c->tb)));
        else
            fy_tensor_set_f64(&out, i, pow(load_f64(in[0], ia, c->ta), load_f64(in[1], ib, c->tb)));
    }
}

/* float32 ^ float32, with the exponents models actually use (x^2 in LayerNorm decompositions,
 * x^0.5, x^1) turned into plain arithmetic when the exponent is one broadcast scalar. */
static void pow_f32(void *o_, const void *const *in, const int *step, int64_t n, const void *ctx)
{
    float *o = o_;
    const float *a = in[0], *b = in[1];
    (void)ctx;
    if (step[0] && !step[1]) {
        float y = b[0];
        if (y == 2.0f) {
            FY_EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = a[i] * a[i];
        } else if (y == 1.0f) {
            memmove(o, a, sizeof(float) * (size_t)n);
        } else if (y == 0.5f) {
            for (int64_t i = 0; i < n; i++)
                o[i] = sqrtf(a[i]);
        } else {
            for (int64_t i = 0; i < n; i++)
                o[i] = powf(a[i], y);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        o[i] = powf(a[i * step[0]], b[i * step[1]]);
}

ferry_status fy_op_Pow(fy_kernel *k)
{
    const fy_value *a, *b;
    FY_CHECK(fy_input_tensor(k, 0, &a));
    FY_CHECK(fy_input_tensor(k, 1, &b));
    if (!fy_dtype_is_numeric(a->dtype) || a->dtype == FERRY_DTYPE_BOOL)
        return unsupported(k, a->dtype);
    if (!fy_dtype_is_numeric(b->dtype) || b->dtype == FERRY_DTYPE_BOOL)
        return unsupported(k, b->dtype);
    if (a->dtype == FERRY_DTYPE_F32 && b->dtype == FERRY_DTYPE_F32)
        return fy_ew_binary(k, a, b, a->dtype, pow_f32, NULL);
    pow_ctx c = {a->dtype, b->dtype};
    return fy_ew_binary(k, a, b, a->dtype, pow_any, &c);
}

/* ---- Min, Max, Sum, Mean: any number of inputs, broadcast together ---- */

/* Float Min/Max propagate NaN, as numpy's minimum/maximum do. */
#define maxf_OP(x, y) FY_EW_SEL(((x) > (y)) | ((x) != (x)), (x), (y))
#define minf_OP(x, y) FY_EW_SEL(((x) < (y)) | ((x) != (x)), (x), (y))
#define maxi_OP(x, y) ((x) > (y) ? (x) : (y))
#define mini_OP(x, y) ((x) < (y) ? (x) : (y))

FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, maxf)
FY_EW_INT_TYPES(FY_EW_BIN_DEF, maxi)
FY_EW_FLOAT_TYPES(FY_EW_BIN_DEF, minf)
FY_EW_INT_TYPES(FY_EW_BIN_DEF, mini)

static const fy_ew_fn max_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, maxf)
                                                      FY_EW_INT_TYPES(FY_EW_ENTRY, maxi)};
static const fy_ew_fn min_table[FY_EW_NDTYPES] = {FY_EW_FLOAT_TYPES(FY_EW_ENTRY, minf)
                                                      FY_EW_INT_TYPES(FY_EW_ENTRY, mini)};

/* out[i] /= count, for Mean. */
#define MEAN_DEF(A, D, T, C, LD, ST)                                                               \
    static void A##_##D(void *o_, const void *const *in, const int *step, int64_t n,               \
                        const void *ctx)                                                           \
    {                                                                                              \
        T *o = o_;                                                                                 \
        const T *a = in[0];                                                                        \
        C d = (C)(*(const int64_t *)ctx);                                                          \
        (void)step;                                                                                \
        for (int64_t i = 0; i < n; i++)                                                            \
            o[i] = ST(LD(a[i]) / d);                                                               \
    }
FY_EW_NUM_TYPES(MEAN_DEF, meandiv)
static const fy_ew_fn meandiv_table[FY_EW_NDTYPES] = {FY_EW_NUM_TYPES(FY_EW_ENTRY, meandiv)};

static ferry_status variadic(fy_kernel *k, const fy_ew_fn *table, bool mean)
{
    int n = k->n_inputs;
    if (n < 1) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "needs at least one input");
    const fy_value *in0, *x;
    FY_CHECK(fy_input_tensor(k, 0, &in0));
    int rank = in0->rank;
    int64_t dims[FERRY_MAX_RANK];
    if (rank) memcpy(dims, in0->dims, sizeof(int64_t) * rank);
    for (int i = 1; i < n; i++) {
        FY_CHECK(fy_input_tensor(k, i, &x));
        FY_CHECK(same_dtype(k, in0, x));
        int64_t prev[FERRY_MAX_RANK];
        int prank = rank;
        if (rank) memcpy(prev, dims, sizeof(int64_t) * rank);
        ferry_status rc = fy_broadcast_shape(prank, prev, x->rank, x->dims, &rank, dims);
        if (rc != FERRY_OK) return wrap(k, rc);
    }
    fy_ew_fn fn = fy_ew_lookup(table, in0->dtype);
    fy_ew_fn div = fy_ew_lookup(meandiv_table, in0->dtype);
    if (!fn || (mean && !div)) return unsupported(k, in0->dtype);
    if (n == 1) return fy_output_set(k, 0, fy_value_ref((fy_value *)in0));

    fy_value *out;
    FY_CHECK(fy_output(k, 0, in0->dtype, rank, dims, &out));
    size_t es = ferry_dtype_size(in0->dtype), ess[2] = {es, es};
    for (int i = 1; i < n; i++) {
        const fy_value *a = i == 1 ? in0 : out, *b = k->inputs[i];
        fy_ew_plan p;
        int ranks[2] = {a->rank, b->rank};
        const int64_t *shapes[2] = {a->dims, b->dims};
        fy_ew_plan_init(&p, rank, dims, 2, ranks, shapes);
        const void *src[2] = {a->data, b->data};
        fy_ew_plan_run(&p, out->data, es, src, ess, fn, NULL, k->threads);
    }
    if (mean) {
        int64_t count = n;
        fy_ew_plan p;
        const int64_t *shapes[1] = {dims};
        fy_ew_plan_init(&p, rank, dims, 1, &rank, shapes);
        const void *src[1] = {out->data};
        fy_ew_plan_run(&p, out->data, es, src, ess, div, &count, k->threads);
    }
    return FERRY_OK;
}

ferry_status fy_op_Max(fy_kernel *k) { return variadic(k, max_table, false); }
ferry_status fy_op_Min(fy_kernel *k) { return variadic(k, min_table, false); }
ferry_status fy_op_Sum(fy_kernel *k) { return variadic(k, add_table, false); }
ferry_status fy_op_Mean(fy_kernel *k) { return variadic(k, add_table, true); }

/* ---- Where: a select that only moves bytes, so one kernel per element size ---- */

#define WHERE_DEF(T)                                                                               \
    static void where_##T(void *o_, const void *const *in, const int *step, int64_t n,             \
                          const void *ctx)                                                         \
    {                                                                                              \
        T *o = o_;                                                                                 \
        const uint8_t *c = in[0];                                                                  \
        const T *x = in[1], *y = in[2];                                                            \
        (void)ctx;                                                                                 \
        if (step[0] && step[1] && step[2]) {                                                       \
            FY_EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = c[i] ? x[i] : y[i];                  \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = c[i * step[0]] ? x[i * step[1]] : y[i * step[2]];                           \
        }                                                                                          \
    }
WHERE_DEF(uint8_t)
WHERE_DEF(uint16_t)
WHERE_DEF(uint32_t)
WHERE_DEF(uint64_t)

/* Strings are copied; ctx is an int set when an allocation failed. */
static void where_str(void *o_, const void *const *in, const int *step, int64_t n, const void *ctx)
{
    char **o = o_;
    const uint8_t *c = in[0];
    char *const *x = in[1], *const *y = in[2];
    for (int64_t i = 0; i < n; i++) {
        const char *s = c[i * step[0]] ? x[i * step[1]] : y[i * step[2]];
        char *d = strdup(s ? s : "");
        if (!d) {
            __atomic_store_n((int *)ctx, 1, __ATOMIC_RELAXED);
            continue;
        }
        free(o[i]);
        o[i] = d;
    }
}

ferry_status fy_op_Where(fy_kernel *k)
{
    const fy_value *v[3];
    for (int i = 0; i < 3; i++)
        FY_CHECK(fy_input_tensor(k, i, &v[i]));
    if (v[0]->dtype != FERRY_DTYPE_BOOL)
        return fy_kernel_error(k, FERRY_E_DTYPE, "condition must be bool, got %s",
                               ferry_dtype_name(v[0]->dtype));
    FY_CHECK(same_dtype(k, v[1], v[2]));
    ferry_dtype t = v[1]->dtype;
    size_t es = ferry_dtype_size(t);
    fy_ew_fn fn = t == FERRY_DTYPE_STRING ? where_str
                  : es == 1               ? where_uint8_t
                  : es == 2               ? where_uint16_t
                  : es == 4               ? where_uint32_t
                  : es == 8               ? where_uint64_t
                                          : NULL;
    if (!fn) return unsupported(k, t);
    int rank, r2;
    int64_t dims[FERRY_MAX_RANK], d2[FERRY_MAX_RANK];
    ferry_status rc = fy_broadcast_shape(v[0]->rank, v[0]->dims, v[1]->rank, v[1]->dims, &r2, d2);
    if (rc == FERRY_OK) rc = fy_broadcast_shape(r2, d2, v[2]->rank, v[2]->dims, &rank, dims);
    if (rc != FERRY_OK) return wrap(k, rc);
    fy_value *out;
    FY_CHECK(fy_output(k, 0, t, rank, dims, &out));
    fy_ew_plan p;
    int ranks[3] = {v[0]->rank, v[1]->rank, v[2]->rank};
    const int64_t *shapes[3] = {v[0]->dims, v[1]->dims, v[2]->dims};
    fy_ew_plan_init(&p, rank, dims, 3, ranks, shapes);
    const void *src[3] = {v[0]->data, v[1]->data, v[2]->data};
    size_t ess[3] = {1, es, es};
    int failed = 0;
    fy_ew_plan_run(&p, out->data, es, src, ess, fn, &failed, k->threads);
    if (failed) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory copying strings");
    return FERRY_OK;
}
