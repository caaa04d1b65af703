/* quant.c — linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and
 * the integer kernels (MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv), exact to ONNX. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* Rounding is nearest-even (rint under the default FP environment), and results saturate to
 * the target type, as the spec demands. The integer kernels accumulate in int64 and store the
 * low 32 bits, which is the allowed "overflow only in 32 bits" behavior without C UB. */

static bool is_q8(ferry_dtype t) { return t == FERRY_DTYPE_U8 || t == FERRY_DTYPE_I8; }

static void q_range(ferry_dtype t, double *lo, double *hi)
{
    if (t == FERRY_DTYPE_I8) {
        *lo = -128;
        *hi = 127;
    } else {
        *lo = 0;
        *hi = 255;
    }
}

/* Element i of a u8 / i8 / i32 tensor. */
static inline int32_t q_get(const fy_value *t, int64_t i)
{
    switch (t->dtype) {
    case FERRY_DTYPE_U8: return ((const uint8_t *)t->data)[i];
    case FERRY_DTYPE_I8: return ((const int8_t *)t->data)[i];
    case FERRY_DTYPE_I32: return ((const int32_t *)t->data)[i];
    default: return (int32_t)fy_tensor_get_i64(t, i);
    }
}

/* Round half to even and saturate into [lo, hi]; NaN maps to the zero point's side (0). */
static inline int32_t q_saturate(double r, double lo, double hi)
{
    if (r != r) r = 0;
    if (r < lo) r = lo;
    if (r > hi) r = hi;
    return (int32_t)r;
}

static inline void q_store(fy_value *t, int64_t i, int32_t v)
{
    if (t->dtype == FERRY_DTYPE_U8)
        ((uint8_t *)t->data)[i] = (uint8_t)v;
    else
        ((int8_t *)t->data)[i] = (int8_t)v;
}

/* ---- per-tensor / per-axis parameters ---------------------------------------------------- */

/* Where a scale/zero-point pair applies along x: one value for the whole tensor (ch == 1),
 * or one per index of `axis`; x is seen as [outer, ch, inner]. */
typedef struct qaxis {
    int64_t outer, ch, inner;
} qaxis;

static ferry_status plan_axis(const fy_kernel *k, const fy_value *x, const fy_value *scale,
                              const fy_value *zp, int scale_input, qaxis *q)
{
    q->outer = 1;
    q->ch = 1;
    q->inner = x->count;
    if (scale->count == 1 && scale->rank <= 1) {
        if (zp && zp->count != 1)
            return fy_kernel_error(k, FERRY_E_SHAPE, "zero point has %lld values, scale has 1",
                                   (long long)zp->count);
        return FERRY_OK;
    }
    if (scale->rank != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "input %d (scale) must be a scalar or 1-D, got "
                               "rank %d",
                               scale_input, scale->rank);
    if (zp && (zp->rank != 1 || zp->count != scale->count))
        return fy_kernel_error(k, FERRY_E_SHAPE, "zero point shape must match the scale's [%lld]",
                               (long long)scale->count);
    int axis = 0;
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 1), x->rank, &axis));
    if (x->rank == 0 || x->dims[axis] != scale->count)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "scale has %lld values, axis %d of the input "
                               "has %lld",
                               (long long)scale->count, axis,
                               (long long)(x->rank ? x->dims[axis] : 1));
    q->outer = 1;
    q->inner = 1;
    for (int i = 0; i < axis; i++)
        q->outer *= x->dims[i];
    q->ch = x->dims[axis];
    for (int i = axis + 1; i < x->rank; i++)
        q->inner *= x->dims[i];
    return FERRY_OK;
}

static ferry_status check_scale(const fy_kernel *k, int i, const fy_value *s)
{
    if (!fy_dtype_is_float(s->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d (scale) must be float, got %s", i,
                               ferry_dtype_name(s->dtype));
    return FERRY_OK;
}

static ferry_status check_q8(const fy_kernel *k, int i, const fy_value *t)
{
    if (!is_q8(t->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be uint8 or int8, got %s", i,
                               ferry_dtype_name(t->dtype));
    return FERRY_OK;
}

/* ---- QuantizeLinear / DequantizeLinear ----------------------------------------------------- */

ferry_status fy_op_QuantizeLinear(fy_kernel *k)
{
    const fy_value *x, *scale, *zp;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &scale));
    FY_CHECK(fy_input_tensor_opt(k, 2, &zp));
    if (!fy_dtype_is_float(x->dtype) && x->dtype != FERRY_DTYPE_I32)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be float or int32, got %s",
                               ferry_dtype_name(x->dtype));
    FY_CHECK(check_scale(k, 1, scale));
    if (zp) FY_CHECK(check_q8(k, 2, zp));
    qaxis q = {0, 0, 0};
    FY_CHECK(plan_axis(k, x, scale, zp, 1, &q));
    for (int64_t c = 0; c < q.ch; c++) {
        float s = (float)fy_tensor_get_f64(scale, c);
        if (s == 0 || s != s)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "scale[%lld] is %g", (long long)c,
                                   (double)s);
    }
    ferry_dtype out_t = zp ? zp->dtype : FERRY_DTYPE_U8;
    double lo, hi;
    q_range(out_t, &lo, &hi);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, out_t, x->rank, x->dims, &y));

    for (int64_t c = 0; c < q.ch; c++) {
        float s = (float)fy_tensor_get_f64(scale, c);
        double z = zp ? q_get(zp, c) : 0;
        for (int64_t o = 0; o < q.outer; o++) {
            int64_t base = (o * q.ch + c) * q.inner, n = q.inner;
            if (x->dtype == FERRY_DTYPE_F32) {
                /* float32 division as the reference does it, then round-half-even */
                const float *xd = (const float *)x->data + base;
                if (out_t == FERRY_DTYPE_U8) {
                    uint8_t *yd = (uint8_t *)y->data + base;
#pragma omp parallel for schedule(static) if (n > 65536)
                    for (int64_t i = 0; i < n; i++)
                        yd[i] = (uint8_t)q_saturate((double)rintf(xd[i] / s) + z, lo, hi);
                } else {
                    int8_t *yd = (int8_t *)y->data + base;
#pragma omp parallel for schedule(static) if (n > 65536)
                    for (int64_t i = 0; i < n; i++)
                        yd[i] = (int8_t)q_saturate((double)rintf(xd[i] / s) + z, lo, hi);
                }
            } else {
                for (int64_t i = 0; i < n; i++) {
                    double v = fy_tensor_get_f64(x, base + i);
                    double r = x->dtype == FERRY_DTYPE_F64 || x->dtype == FERRY_DTYPE_I32
                                   ? rint(v / s)
                                   : (double)rintf((float)v / s);
                    q_store(y, base + i, q_saturate(r + z, lo, hi));
                }
            }
        }
    }
    return FERRY_OK;
}

ferry_status fy_op_DequantizeLinear(fy_kernel *k)
{
    const fy_value *x, *scale, *zp;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &scale));
    FY_CHECK(fy_input_tensor_opt(k, 2, &zp));
    if (!is_q8(x->dtype) && x->dtype != FERRY_DTYPE_I32)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be uint8, int8 or int32, got %s",
                               ferry_dtype_name(x->dtype));
    FY_CHECK(check_scale(k, 1, scale));
    if (zp && zp->dtype != x->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "zero point is %s, input is %s",
                               ferry_dtype_name(zp->dtype), ferry_dtype_name(x->dtype));
    qaxis q = {0, 0, 0};
    FY_CHECK(plan_axis(k, x, scale, zp, 1, &q));
    ferry_dtype out_t = scale->dtype == FERRY_DTYPE_F32 ? FERRY_DTYPE_F32 : scale->dtype;
    fy_value *y;
    FY_CHECK(fy_output(k, 0, out_t, x->rank, x->dims, &y));
    for (int64_t c = 0; c < q.ch; c++) {
        float s = (float)fy_tensor_get_f64(scale, c);
        int64_t z = zp ? q_get(zp, c) : 0;
        for (int64_t o = 0; o < q.outer; o++) {
            int64_t base = (o * q.ch + c) * q.inner;
            if (out_t == FERRY_DTYPE_F32) {
                float *yd = (float *)y->data + base;
                int64_t n = q.inner;
                if (x->dtype == FERRY_DTYPE_U8) {
                    const uint8_t *xd = (const uint8_t *)x->data + base;
#pragma omp parallel for schedule(static) if (n > 65536)
                    for (int64_t i = 0; i < n; i++)
                        yd[i] = (float)(xd[i] - z) * s;
                } else {
                    for (int64_t i = 0; i < n; i++)
                        yd[i] = (float)((int64_t)q_get(x, base + i) - z) * s;
                }
            } else {
                for (int64_t i = 0; i < q.inner; i++)
                    fy_tensor_set_f64(y, base + i, (float)((int64_t)q_get(x, base + i) - z) * s);
            }
        }
    }
    return FERRY_OK;
}

ferry_status fy_op_DynamicQuantizeLinear(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_F32, FERRY_DTYPE_UNDEFINED));
    const float *xd = (const float *)x->data;
    /* the range always includes 0 so that 0 is exactly representable */
    float mn = 0, mx = 0;
    for (int64_t i = 0; i < x->count; i++) {
        if (xd[i] < mn) mn = xd[i];
        if (xd[i] > mx) mx = xd[i];
    }
    float scale = (mx - mn) / 255.0f;
    float zpf = scale > 0 ? rintf(-mn / scale) : 0;
    int32_t zp = q_saturate(zpf, 0, 255);
    fy_value *y, *ys, *yz;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_U8, x->rank, x->dims, &y));
    FY_CHECK(fy_output(k, 1, FERRY_DTYPE_F32, 0, NULL, &ys));
    FY_CHECK(fy_output(k, 2, FERRY_DTYPE_U8, 0, NULL, &yz));
    *(float *)ys->data = scale;
    *(uint8_t *)yz->data = (uint8_t)zp;
    uint8_t *yd = (uint8_t *)y->data;
    for (int64_t i = 0; i < x->count; i++)
        yd[i] = scale > 0 ? (uint8_t)q_saturate((double)rintf(xd[i] / scale) + zp, 0, 255)
                          : (uint8_t)zp;
    return FERRY_OK;
}

/* ---- integer matrix products ---------------------------------------------------------------- */

/* numpy.matmul geometry: a 1-D A is [1, K] (and the M axis is dropped from the result), a 1-D
 * B is [K, 1]; batch dims broadcast. */
typedef struct mm_plan {
    int64_t M, K, N;
    int a_rank, b_rank; /* after promoting 1-D operands to 2-D */
    int64_t a_dims[FERRY_MAX_RANK], b_dims[FERRY_MAX_RANK];
    int batch_rank;
    int64_t batch[FERRY_MAX_RANK];
    int64_t n_batch;
    int64_t a_bstr[FERRY_MAX_RANK], b_bstr[FERRY_MAX_RANK]; /* batch strides in matrices */
    int64_t a_nbatch, b_nbatch;
    int out_rank;
    int64_t out_dims[FERRY_MAX_RANK];
} mm_plan;

static ferry_status mm_make_plan(const fy_kernel *k, const fy_value *a, const fy_value *b,
                                 mm_plan *p)
{
    if (a->rank < 1 || b->rank < 1)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "matmul operands must have rank >= 1 (got %d "
                               "and %d)",
                               a->rank, b->rank);
    p->a_rank = a->rank == 1 ? 2 : a->rank;
    p->b_rank = b->rank == 1 ? 2 : b->rank;
    if (a->rank == 1) {
        p->a_dims[0] = 1;
        p->a_dims[1] = a->dims[0];
    } else {
        memcpy(p->a_dims, a->dims, sizeof(int64_t) * a->rank);
    }
    if (b->rank == 1) {
        p->b_dims[0] = b->dims[0];
        p->b_dims[1] = 1;
    } else {
        memcpy(p->b_dims, b->dims, sizeof(int64_t) * b->rank);
    }
    p->M = p->a_dims[p->a_rank - 2];
    p->K = p->a_dims[p->a_rank - 1];
    p->N = p->b_dims[p->b_rank - 1];
    if (p->b_dims[p->b_rank - 2] != p->K) {
        char sa[128], sb[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "cannot multiply %s by %s",
                               fy_shape_str(a->rank, a->dims, sa, sizeof sa),
                               fy_shape_str(b->rank, b->dims, sb, sizeof sb));
    }
    int bra = p->a_rank - 2, brb = p->b_rank - 2;
    if (bra == 0 && brb == 0) {
        p->batch_rank = 0;
    } else if (bra == 0) {
        p->batch_rank = brb;
        memcpy(p->batch, p->b_dims, sizeof(int64_t) * brb);
    } else if (brb == 0) {
        p->batch_rank = bra;
        memcpy(p->batch, p->a_dims, sizeof(int64_t) * bra);
    } else {
        ferry_status rc =
            fy_broadcast_shape(bra, p->a_dims, brb, p->b_dims, &p->batch_rank, p->batch);
        if (rc != FERRY_OK) return fy_kernel_error(k, rc, "batch dims do not broadcast");
    }
    if (bra)
        fy_broadcast_strides(bra, p->a_dims, p->batch_rank, p->batch, p->a_bstr);
    else
        memset(p->a_bstr, 0, sizeof p->a_bstr);
    if (brb)
        fy_broadcast_strides(brb, p->b_dims, p->batch_rank, p->batch, p->b_bstr);
    else
        memset(p->b_bstr, 0, sizeof p->b_bstr);
    p->n_batch = fy_shape_count(p->batch_rank, p->batch);
    p->a_nbatch = fy_shape_count(bra, p->a_dims);
    p->b_nbatch = fy_shape_count(brb, p->b_dims);
    p->out_rank = 0;
    for (int i = 0; i < p->batch_rank; i++)
        p->out_dims[p->out_rank++] = p->batch[i];
    if (a->rank > 1) p->out_dims[p->out_rank++] = p->M;
    if (b->rank > 1) p->out_dims[p->out_rank++] = p->N;
    return FERRY_OK;
}

/* Batch index bi of the broadcast batch → matrix index in an operand (its batch strides count
 * matrices, since fy_broadcast_strides works on the batch dims alone). */
static int64_t mm_operand_batch(const mm_plan *p, const int64_t *bstr, int64_t bi)
{
    int64_t off = 0;
    for (int d = p->batch_rank - 1; d >= 0; d--) {
        int64_t idx = bi % p->batch[d];
        bi /= p->batch[d];
        off += idx * bstr[d];
    }
    return off;
}

/* Expand a zero point or scale of one operand to one value per (operand matrix, row) — for A,
 * rows are M — or per (operand matrix, column) for B (columns are N). Accepted shapes: a scalar
 * or [1]; a 1-D vector of `len` values; or any shape broadcastable to the operand's shape with
 * the other matrix axis set to 1 ([..., M, 1] for A, [..., 1, N] for B). */
static ferry_status expand_param(const fy_kernel *k, int input, const fy_value *param, int rank,
                                 const int64_t *dims, int per_col, double *out)
{
    int64_t len = per_col ? dims[rank - 1] : dims[rank - 2];
    int64_t nmat = fy_shape_count(rank - 2, dims);
    if (param->count == 1) {
        double v = fy_tensor_get_f64(param, 0);
        for (int64_t i = 0; i < nmat * len; i++)
            out[i] = v;
        return FERRY_OK;
    }
    if (param->rank == 1 && param->count == len) {
        for (int64_t m = 0; m < nmat; m++)
            for (int64_t i = 0; i < len; i++)
                out[m * len + i] = fy_tensor_get_f64(param, i);
        return FERRY_OK;
    }
    int64_t target[FERRY_MAX_RANK];
    memcpy(target, dims, sizeof(int64_t) * rank);
    target[per_col ? rank - 2 : rank - 1] = 1;
    int br;
    int64_t bd[FERRY_MAX_RANK];
    if (param->rank > rank ||
        fy_broadcast_shape(param->rank, param->dims, rank, target, &br, bd) != FERRY_OK ||
        !fy_shape_equal(br, bd, rank, target)) {
        char s1[128], s2[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d has shape %s, which does not fit %s",
                               input, fy_shape_str(param->rank, param->dims, s1, sizeof s1),
                               fy_shape_str(rank, target, s2, sizeof s2));
    }
    int64_t str[FERRY_MAX_RANK];
    fy_broadcast_strides(param->rank, param->dims, rank, target, str);
    int64_t total = nmat * len;
    for (int64_t i = 0; i < total; i++) {
        int64_t r = i, off = 0;
        for (int d = rank - 1; d >= 0; d--) {
            if (target[d] == 1) continue;
            off += (r % target[d]) * str[d];
            r /= target[d];
        }
        out[i] = fy_tensor_get_f64(param, off);
    }
    return FERRY_OK;
}

/* What the integer matmul kernels share: the plan, zero points expanded per row of A / per
 * column of B, and int32 (zero-point-subtracted) copies of both operands, B transposed. */
typedef struct imm {
    mm_plan p;
    double *azp, *bzp;
    int32_t *a, *bt; /* [a_nbatch][M][K], [b_nbatch][N][K] */
} imm;

static void imm_free(imm *m)
{
    free(m->azp);
    free(m->bzp);
    free(m->a);
    free(m->bt);
}

static ferry_status imm_prepare(const fy_kernel *k, const fy_value *a, const fy_value *azp,
                                int azp_in, const fy_value *b, const fy_value *bzp, int bzp_in,
                                imm *m)
{
    memset(m, 0, sizeof *m);
    mm_plan *p = &m->p;
    FY_CHECK(mm_make_plan(k, a, b, p));
    if (azp && azp->dtype != a->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must have A's type %s", azp_in,
                               ferry_dtype_name(a->dtype));
    if (bzp && bzp->dtype != b->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must have B's type %s", bzp_in,
                               ferry_dtype_name(b->dtype));
    int64_t na = p->a_nbatch * p->M, nb = p->b_nbatch * p->N;
    m->azp = calloc((size_t)na + 1, sizeof(double));
    m->bzp = calloc((size_t)nb + 1, sizeof(double));
    m->a = malloc(sizeof(int32_t) * (size_t)(na * p->K + 1));
    m->bt = malloc(sizeof(int32_t) * (size_t)(nb * p->K + 1));
    if (!m->azp || !m->bzp || !m->a || !m->bt) {
        imm_free(m);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    ferry_status rc = FERRY_OK;
    if (azp) rc = expand_param(k, azp_in, azp, p->a_rank, p->a_dims, 0, m->azp);
    if (rc == FERRY_OK && bzp) rc = expand_param(k, bzp_in, bzp, p->b_rank, p->b_dims, 1, m->bzp);
    if (rc != FERRY_OK) {
        imm_free(m);
        return rc;
    }
    int64_t K = p->K, N = p->N;
    for (int64_t r = 0; r < na; r++) {
        int32_t z = (int32_t)m->azp[r];
        for (int64_t j = 0; j < K; j++)
            m->a[r * K + j] = q_get(a, r * K + j) - z;
    }
    for (int64_t mb = 0; mb < p->b_nbatch; mb++)
        for (int64_t j = 0; j < K; j++)
            for (int64_t n = 0; n < N; n++) {
                int32_t z = (int32_t)m->bzp[mb * N + n];
                m->bt[(mb * N + n) * K + j] = q_get(b, (mb * K + j) * N + n) - z;
            }
    return FERRY_OK;
}

/* acc[bi][m][n] = sum_k A'[m,k] * B'[k,n]; calls store(out index, acc, a row, b column). */
static void imm_run(const imm *m, double *flops,
                    void (*store)(void *ctx, int64_t i, int32_t acc, int64_t arow, int64_t bcol),
                    void *ctx)
{
    const mm_plan *p = &m->p;
    int64_t M = p->M, N = p->N, K = p->K;
    int64_t total = p->n_batch * M;
#pragma omp parallel for schedule(static) if (total * N * K > 65536)
    for (int64_t t = 0; t < total; t++) {
        int64_t bi = t / M, i = t % M;
        int64_t ma = mm_operand_batch(p, p->a_bstr, bi);
        int64_t mb = mm_operand_batch(p, p->b_bstr, bi);
        const int32_t *ar = m->a + (ma * M + i) * K;
        for (int64_t n = 0; n < N; n++) {
            const int32_t *bc = m->bt + (mb * N + n) * K;
            int64_t acc = 0;
            for (int64_t j = 0; j < K; j++)
                acc += (int64_t)ar[j] * bc[j];
            store(ctx, (bi * M + i) * N + n, (int32_t)acc, ma * M + i, mb * N + n);
        }
    }
    if (flops) *flops += 2.0 * (double)total * (double)N * (double)K;
}

static void store_i32(void *ctx, int64_t i, int32_t acc, int64_t arow, int64_t bcol)
{
    ((int32_t *)ctx)[i] = acc;
}

ferry_status fy_op_MatMulInteger(fy_kernel *k)
{
    const fy_value *a, *b, *azp, *bzp;
    FY_CHECK(fy_input_tensor(k, 0, &a));
    FY_CHECK(fy_input_tensor(k, 1, &b));
    FY_CHECK(fy_input_tensor_opt(k, 2, &azp));
    FY_CHECK(fy_input_tensor_opt(k, 3, &bzp));
    FY_CHECK(check_q8(k, 0, a));
    FY_CHECK(check_q8(k, 1, b));
    imm m;
    FY_CHECK(imm_prepare(k, a, azp, 2, b, bzp, 3, &m));
    fy_value *y;
    ferry_status rc = fy_output(k, 0, FERRY_DTYPE_I32, m.p.out_rank, m.p.out_dims, &y);
    if (rc == FERRY_OK) imm_run(&m, NULL, store_i32, y->data);
    imm_free(&m);
    return rc;
}

/* Requantization of an int32 accumulator: multiplier = a_scale * b_scale / y_scale in float32
 * (as the reference computes it), applied in double, rounded half-even, zero point added. */
typedef struct requant {
    const double *as, *bs; /* per A row / per B column */
    float ys;
    double yzp, lo, hi;
    fy_value *y;
} requant;

static void store_requant(void *ctx, int64_t i, int32_t acc, int64_t arow, int64_t bcol)
{
    requant *r = ctx;
    float mult = (float)r->as[arow] * (float)r->bs[bcol] / r->ys;
    q_store(r->y, i, q_saturate(rint((double)acc * (double)mult) + r->yzp, r->lo, r->hi));
}

ferry_status fy_op_QLinearMatMul(fy_kernel *k)
{
    const fy_value *a, *as, *azp, *b, *bs, *bzp, *ys, *yzp;
    FY_CHECK(fy_input_tensor(k, 0, &a));
    FY_CHECK(fy_input_tensor(k, 1, &as));
    FY_CHECK(fy_input_tensor_opt(k, 2, &azp));
    FY_CHECK(fy_input_tensor(k, 3, &b));
    FY_CHECK(fy_input_tensor(k, 4, &bs));
    FY_CHECK(fy_input_tensor_opt(k, 5, &bzp));
    FY_CHECK(fy_input_tensor(k, 6, &ys));
    FY_CHECK(fy_input_tensor_opt(k, 7, &yzp));
    FY_CHECK(check_q8(k, 0, a));
    FY_CHECK(check_q8(k, 3, b));
    FY_CHECK(check_scale(k, 1, as));
    FY_CHECK(check_scale(k, 4, bs));
    FY_CHECK(check_scale(k, 6, ys));
    if (yzp) FY_CHECK(check_q8(k, 7, yzp));
    if (ys->count != 1 || (yzp && yzp->count != 1))
        return fy_kernel_error(k, FERRY_E_SHAPE, "y_scale and y_zero_point must be scalars");
    imm m;
    FY_CHECK(imm_prepare(k, a, azp, 2, b, bzp, 5, &m));
    ferry_status rc = FERRY_OK;
    double *asx = malloc(sizeof(double) * (size_t)(m.p.a_nbatch * m.p.M + 1));
    double *bsx = malloc(sizeof(double) * (size_t)(m.p.b_nbatch * m.p.N + 1));
    if (!asx || !bsx) {
        rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    rc = expand_param(k, 1, as, m.p.a_rank, m.p.a_dims, 0, asx);
    if (rc == FERRY_OK) rc = expand_param(k, 4, bs, m.p.b_rank, m.p.b_dims, 1, bsx);
    if (rc != FERRY_OK) goto out;
    requant r = {asx, bsx, (float)fy_tensor_get_f64(ys, 0), yzp ? q_get(yzp, 0) : 0, 0, 0, NULL};
    if (r.ys == 0) {
        rc = fy_kernel_error(k, FERRY_E_INVALID_ARG, "y_scale is 0");
        goto out;
    }
    ferry_dtype yt = yzp ? yzp->dtype : FERRY_DTYPE_U8;
    q_range(yt, &r.lo, &r.hi);
    rc = fy_output(k, 0, yt, m.p.out_rank, m.p.out_dims, &r.y);
    if (rc == FERRY_OK) imm_run(&m, NULL, store_requant, &r);
out:
    free(asx);
    free(bsx);
    imm_free(&m);
    return rc;
}

/* ---- integer convolution ---------------------------------------------------------------- */

typedef struct conv_geom {
    int nsp; /* spatial dims */
    int64_t N, C, M, group;
    int64_t in[FERRY_MAX_RANK], out[FERRY_MAX_RANK], ker[FERRY_MAX_RANK];
    int64_t stride[FERRY_MAX_RANK], dil[FERRY_MAX_RANK], pad[FERRY_MAX_RANK]; /* pad: begin */
    int64_t out_dims[FERRY_MAX_RANK];
} conv_geom;

static ferry_status conv_geometry(const fy_kernel *k, const fy_value *x, const fy_value *w,
                                  conv_geom *g)
{
    if (x->rank < 3 || w->rank != x->rank)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "x must have rank >= 3 and w the same rank "
                               "(got %d and %d)",
                               x->rank, w->rank);
    g->nsp = x->rank - 2;
    g->N = x->dims[0];
    g->C = x->dims[1];
    g->M = w->dims[0];
    g->group = fy_attr_int(k, "group", 1);
    if (g->group < 1 || g->C % g->group || g->M % g->group || w->dims[1] * g->group != g->C)
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "channels do not fit: x has %lld, w is "
                               "[%lld, %lld, ...], group %lld",
                               (long long)g->C, (long long)g->M, (long long)w->dims[1],
                               (long long)g->group);
    const int64_t *ks, *st, *dl, *pd;
    int64_t nks = fy_attr_ints(k, "kernel_shape", &ks);
    int64_t nst = fy_attr_ints(k, "strides", &st);
    int64_t ndl = fy_attr_ints(k, "dilations", &dl);
    int64_t npd = fy_attr_ints(k, "pads", &pd);
    if ((nks >= 0 && nks != g->nsp) || (nst >= 0 && nst != g->nsp) || (ndl >= 0 && ndl != g->nsp) ||
        (npd >= 0 && npd != 2 * g->nsp))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "kernel_shape/strides/dilations/pads do "
                               "not match %d spatial dims",
                               g->nsp);
    const char *ap = fy_attr_string(k, "auto_pad", "NOTSET");
    g->out_dims[0] = g->N;
    g->out_dims[1] = g->M;
    for (int i = 0; i < g->nsp; i++) {
        g->in[i] = x->dims[2 + i];
        g->ker[i] = w->dims[2 + i];
        if (nks >= 0 && ks[i] != g->ker[i])
            return fy_kernel_error(k, FERRY_E_SHAPE, "kernel_shape[%d] = %lld, w has %lld", i,
                                   (long long)ks[i], (long long)g->ker[i]);
        g->stride[i] = nst >= 0 ? st[i] : 1;
        g->dil[i] = ndl >= 0 ? dl[i] : 1;
        if (g->stride[i] < 1 || g->dil[i] < 1 || g->ker[i] < 1)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "strides, dilations and kernel dims "
                                   "must be >= 1");
        int64_t ext = (g->ker[i] - 1) * g->dil[i] + 1;
        int64_t pb = 0, pe = 0;
        if (!strcmp(ap, "NOTSET") || !strcmp(ap, "")) {
            if (npd >= 0) {
                pb = pd[i];
                pe = pd[i + g->nsp];
            }
            if (pb < 0 || pe < 0)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "pads must be >= 0");
            g->out[i] = (g->in[i] + pb + pe - ext) / g->stride[i] + 1;
            if (g->in[i] + pb + pe < ext) g->out[i] = 0;
        } else if (!strcmp(ap, "VALID")) {
            g->out[i] = g->in[i] >= ext ? (g->in[i] - ext) / g->stride[i] + 1 : 0;
        } else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            g->out[i] = (g->in[i] + g->stride[i] - 1) / g->stride[i];
            int64_t total = (g->out[i] - 1) * g->stride[i] + ext - g->in[i];
            if (total < 0) total = 0;
            pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
        } else {
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "unknown auto_pad \"%s\"", ap);
        }
        if (g->out[i] < 1)
            return fy_kernel_error(k, FERRY_E_SHAPE,
                                   "spatial dim %d: input %lld is smaller "
                                   "than the kernel extent %lld",
                                   i, (long long)g->in[i], (long long)ext);
        g->pad[i] = pb;
        g->out_dims[2 + i] = g->out[i];
    }
    return FERRY_OK;
}

/* acc[n][m][out...] = sum over the group's channels and kernel taps of x' * w', where x' and
 * w' have their zero points subtracted (so padding contributes 0); then store() each. */
static ferry_status conv_int(const fy_kernel *k, const conv_geom *g, const fy_value *x, int32_t xzp,
                             const fy_value *w, const fy_value *wzp,
                             void (*store)(void *ctx, int64_t i, int32_t acc, int64_t m), void *ctx)
{
    int64_t in_sz = 1, out_sz = 1, ker_sz = 1;
    for (int i = 0; i < g->nsp; i++) {
        in_sz *= g->in[i];
        out_sz *= g->out[i];
        ker_sz *= g->ker[i];
    }
    int64_t cg = g->C / g->group, mg = g->M / g->group;
    int32_t *xi = malloc(sizeof(int32_t) * (size_t)(x->count + 1));
    int32_t *wi = malloc(sizeof(int32_t) * (size_t)(w->count + 1));
    int64_t *koff = malloc(sizeof(int64_t) * (size_t)(ker_sz * g->nsp + 1));
    if (!xi || !wi || !koff) {
        free(xi);
        free(wi);
        free(koff);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < x->count; i++)
        xi[i] = q_get(x, i) - xzp;
    int64_t wper = w->count / (g->M ? g->M : 1);
    for (int64_t m = 0; m < g->M; m++) {
        int32_t z = wzp ? q_get(wzp, wzp->count == 1 ? 0 : m) : 0;
        for (int64_t i = 0; i < wper; i++)
            wi[m * wper + i] = q_get(w, m * wper + i) - z;
    }
    /* kernel tap coordinates (dilated), one row of nsp per tap */
    for (int64_t t = 0; t < ker_sz; t++) {
        int64_t r = t;
        for (int d = g->nsp - 1; d >= 0; d--) {
            koff[t * g->nsp + d] = (r % g->ker[d]) * g->dil[d];
            r /= g->ker[d];
        }
    }
    int64_t jobs = g->N * g->M;
#pragma omp parallel for schedule(static) if (jobs * out_sz * cg * ker_sz > 65536)
    for (int64_t job = 0; job < jobs; job++) {
        int64_t n = job / g->M, m = job % g->M, grp = m / mg;
        int64_t base[FERRY_MAX_RANK];
        for (int64_t o = 0; o < out_sz; o++) {
            int64_t r = o;
            for (int d = g->nsp - 1; d >= 0; d--) {
                base[d] = (r % g->out[d]) * g->stride[d] - g->pad[d];
                r /= g->out[d];
            }
            int64_t acc = 0;
            for (int64_t t = 0; t < ker_sz; t++) {
                int64_t off = 0;
                int inside = 1;
                for (int d = 0; d < g->nsp; d++) {
                    int64_t c = base[d] + koff[t * g->nsp + d];
                    if (c < 0 || c >= g->in[d]) {
                        inside = 0;
                        break;
                    }
                    off = off * g->in[d] + c;
                }
                if (!inside) continue;
                const int32_t *xp = xi + (n * g->C + grp * cg) * in_sz + off;
                const int32_t *wp = wi + m * wper + t;
                for (int64_t c = 0; c < cg; c++)
                    acc += (int64_t)xp[c * in_sz] * wp[c * ker_sz];
            }
            store(ctx, job * out_sz + o, (int32_t)acc, m);
        }
    }
    free(xi);
    free(wi);
    free(koff);
    return FERRY_OK;
}

static void conv_store_i32(void *ctx, int64_t i, int32_t acc, int64_t m)
{
    ((int32_t *)ctx)[i] = acc;
}

static ferry_status check_wzp(const fy_kernel *k, int input, const fy_value *wzp, const fy_value *w,
                              int64_t M)
{
    if (!wzp) return FERRY_OK;
    if (wzp->dtype != w->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must have w's type %s", input,
                               ferry_dtype_name(w->dtype));
    if (wzp->rank > 1 || (wzp->count != 1 && wzp->count != M))
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must be a scalar or have %lld values",
                               input, (long long)M);
    return FERRY_OK;
}

ferry_status fy_op_ConvInteger(fy_kernel *k)
{
    const fy_value *x, *w, *xzp, *wzp;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &w));
    FY_CHECK(fy_input_tensor_opt(k, 2, &xzp));
    FY_CHECK(fy_input_tensor_opt(k, 3, &wzp));
    FY_CHECK(check_q8(k, 0, x));
    FY_CHECK(check_q8(k, 1, w));
    if (xzp && (xzp->dtype != x->dtype || xzp->count != 1))
        return fy_kernel_error(k, FERRY_E_SHAPE, "x_zero_point must be one %s value",
                               ferry_dtype_name(x->dtype));
    conv_geom g;
    FY_CHECK(conv_geometry(k, x, w, &g));
    FY_CHECK(check_wzp(k, 3, wzp, w, g.M));
    fy_value *y;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I32, x->rank, g.out_dims, &y));
    return conv_int(k, &g, x, xzp ? q_get(xzp, 0) : 0, w, wzp, conv_store_i32, y->data);
}

typedef struct conv_requant {
    const int32_t *bias; /* or NULL */
    float xs, ys;
    const fy_value *ws;
    double yzp, lo, hi;
    fy_value *y;
} conv_requant;

static void conv_store_requant(void *ctx, int64_t i, int32_t acc, int64_t m)
{
    conv_requant *r = ctx;
    if (r->bias) acc = (int32_t)((int64_t)acc + r->bias[m]);
    float ws = (float)fy_tensor_get_f64(r->ws, r->ws->count == 1 ? 0 : m);
    float mult = r->xs * ws / r->ys;
    q_store(r->y, i, q_saturate(rint((double)acc * (double)mult) + r->yzp, r->lo, r->hi));
}

ferry_status fy_op_QLinearConv(fy_kernel *k)
{
    const fy_value *x, *xs, *xzp, *w, *ws, *wzp, *ys, *yzp, *bias;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &xs));
    FY_CHECK(fy_input_tensor_opt(k, 2, &xzp));
    FY_CHECK(fy_input_tensor(k, 3, &w));
    FY_CHECK(fy_input_tensor(k, 4, &ws));
    FY_CHECK(fy_input_tensor_opt(k, 5, &wzp));
    FY_CHECK(fy_input_tensor(k, 6, &ys));
    FY_CHECK(fy_input_tensor_opt(k, 7, &yzp));
    FY_CHECK(fy_input_tensor_opt(k, 8, &bias));
    FY_CHECK(check_q8(k, 0, x));
    FY_CHECK(check_q8(k, 3, w));
    FY_CHECK(check_scale(k, 1, xs));
    FY_CHECK(check_scale(k, 4, ws));
    FY_CHECK(check_scale(k, 6, ys));
    if (xzp && (xzp->dtype != x->dtype || xzp->count != 1))
        return fy_kernel_error(k, FERRY_E_SHAPE, "x_zero_point must be one %s value",
                               ferry_dtype_name(x->dtype));
    if (yzp) FY_CHECK(check_q8(k, 7, yzp));
    if (xs->count != 1 || ys->count != 1 || (yzp && yzp->count != 1))
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "x_scale, y_scale and y_zero_point must be "
                               "scalars");
    conv_geom g;
    FY_CHECK(conv_geometry(k, x, w, &g));
    FY_CHECK(check_wzp(k, 5, wzp, w, g.M));
    if (ws->rank > 1 || (ws->count != 1 && ws->count != g.M))
        return fy_kernel_error(k, FERRY_E_SHAPE, "w_scale must be a scalar or have %lld values",
                               (long long)g.M);
    if (bias && (bias->dtype != FERRY_DTYPE_I32 || bias->rank != 1 || bias->count != g.M))
        return fy_kernel_error(k, FERRY_E_SHAPE, "B must be int32 [%lld]", (long long)g.M);
    conv_requant r = {bias ? (const int32_t *)bias->data : NULL,
                      (float)fy_tensor_get_f64(xs, 0),
                      (float)fy_tensor_get_f64(ys, 0),
                      ws,
                      yzp ? q_get(yzp, 0) : 0,
                      0,
                      0,
                      NULL};
    if (r.ys == 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "y_scale is 0");
    ferry_dtype yt = yzp ? yzp->dtype : x->dtype;
    q_range(yt, &r.lo, &r.hi);
    FY_CHECK(fy_output(k, 0, yt, x->rank, g.out_dims, &r.y));
    return conv_int(k, &g, x, xzp ? q_get(xzp, 0) : 0, w, wzp, conv_store_requant, &r);
}
