/* norm.c — BatchNormalization (all opsets, training outputs included), InstanceNormalization,
 * LayerNormalization, GroupNormalization, LRN and MeanVarianceNormalization. Statistics are
 * accumulated in double; the per-element work is a typed affine loop. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/nn_util.h"

/* Input x as a float or double array. For f16/bf16 a float copy is made; for f32/f64 the data
 * is borrowed. *owned gets what the caller must free. */
typedef struct norm_buf {
    int is_double;
    const float *xf;
    const double *xd;
    float *yf; /* output buffer for float work (the output itself for f32) */
    double *yd;
    float *owned_x, *owned_y;
} norm_buf;

static ferry_status norm_begin(const fy_kernel *k, const fy_value *x, fy_value *y, norm_buf *b)
{
    memset(b, 0, sizeof *b);
    if (x->dtype == FERRY_DTYPE_F64) {
        b->is_double = 1;
        b->xd = x->data, b->yd = y->data;
        return FERRY_OK;
    }
    b->xf = fy_nn_to_float(x, &b->owned_x);
    b->yf = x->dtype == FERRY_DTYPE_F32
                ? y->data
                : (b->owned_y = malloc(sizeof(float) * (size_t)(y->count ? y->count : 1)));
    if (!b->xf || !b->yf) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    return FERRY_OK;
}

static void norm_end(fy_value *y, norm_buf *b, int ok)
{
    if (ok && !b->is_double && b->yf) fy_nn_from_float(y, b->yf);
    free(b->owned_x), free(b->owned_y);
    memset(b, 0, sizeof *b);
}

static ferry_status check_float(const fy_kernel *k, int i, const fy_value *t)
{
    return fy_check_dtype(k, i, t, FERRY_DTYPE_F32, FERRY_DTYPE_F64, FERRY_DTYPE_F16,
                          FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED);
}

/* y[i] = x[i] * a + c over n contiguous elements. */
static void affine(const norm_buf *b, int64_t off, int64_t n, double a, double c)
{
    if (b->is_double) {
        const double *x = b->xd + off;
        double *y = b->yd + off;
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * a + c;
    } else {
        const float *x = b->xf + off;
        float *y = b->yf + off;
        float af = (float)a, cf = (float)c;
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * af + cf;
    }
}

/* Mean and population variance of n contiguous elements. */
static void moments(const norm_buf *b, int64_t off, int64_t n, double *mean, double *var)
{
    double s = 0, ss = 0;
    if (b->is_double) {
        const double *x = b->xd + off;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; i++)
            s += x[i];
        double m = n ? s / (double)n : 0;
#pragma omp simd reduction(+ : ss)
        for (int64_t i = 0; i < n; i++)
            ss += (x[i] - m) * (x[i] - m);
        *mean = m, *var = n ? ss / (double)n : 0;
        return;
    }
    const float *x = b->xf + off;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    double m = n ? s / (double)n : 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    *mean = m, *var = n ? ss / (double)n : 0;
}

/* ---- BatchNormalization ------------------------------------------------------------------ */

ferry_status fy_op_BatchNormalization(fy_kernel *k)
{
    const fy_value *x, *p[4]; /* scale, B, mean, var */
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(check_float(k, 0, x));
    for (int i = 0; i < 4; i++) {
        FY_CHECK(fy_input_tensor(k, 1 + i, &p[i]));
        FY_CHECK(check_float(k, 1 + i, p[i]));
    }
    if (x->rank < 2) return fy_kernel_error(k, FERRY_E_SHAPE, "X must be N x C x ...");
    int64_t N = x->dims[0], C = x->dims[1], S = N > 0 && C > 0 ? x->count / (N * C) : 0;
    /* per channel, or per channel and position (spatial = 0 before opset 9) */
    int per_elem = p[0]->count != C && p[0]->count == C * S;
    int64_t np = per_elem ? C * S : C;
    for (int i = 0; i < 4; i++)
        if (p[i]->count != np)
            return fy_kernel_error(k, FERRY_E_SHAPE, "input %d has %lld values, expected %lld",
                                   1 + i, (long long)p[i]->count, (long long)np);
    double eps = fy_attr_float(k, "epsilon", 1e-5f);
    double momentum = fy_attr_float(k, "momentum", 0.9f);
    int opset = k->node->opset, training;
    if (opset >= 14)
        training = fy_attr_int(k, "training_mode", 0) != 0;
    else if (opset < 7 && fy_attr_int(k, "is_test", 0))
        training = 0;
    else
        training = fy_output_wanted(k, 1) || fy_output_wanted(k, 2);
    if (training && per_elem)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "training with spatial=0 is not supported");

    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &y));
    double *a = malloc(sizeof(double) * 4 * (size_t)(np + 1));
    if (!a) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    double *c = a + np, *bmean = c + np, *bvar = bmean + np;
    norm_buf b;
    ferry_status rc = norm_begin(k, x, y, &b);
    if (rc != FERRY_OK) goto out;
    if (training) {
        for (int64_t ch = 0; ch < C; ch++) {
            double s = 0, ss = 0;
            for (int64_t n = 0; n < N; n++) {
                double m, v;
                moments(&b, (n * C + ch) * S, S, &m, &v);
                s += m, ss += v + m * m;
            }
            bmean[ch] = N ? s / (double)N : 0;
            bvar[ch] = N ? ss / (double)N - bmean[ch] * bmean[ch] : 0;
            if (bvar[ch] < 0) bvar[ch] = 0;
        }
    }
    for (int64_t i = 0; i < np; i++) {
        double mean = training ? bmean[i] : fy_tensor_get_f64(p[2], i);
        double var = training ? bvar[i] : fy_tensor_get_f64(p[3], i);
        a[i] = fy_tensor_get_f64(p[0], i) / sqrt(var + eps);
        c[i] = fy_tensor_get_f64(p[1], i) - mean * a[i];
    }
#pragma omp parallel for if (x->count > 65536) schedule(static)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t ch = nc % C;
        if (!per_elem) {
            affine(&b, nc * S, S, a[ch], c[ch]);
        } else {
            for (int64_t s = 0; s < S; s++)
                affine(&b, nc * S + s, 1, a[ch * S + s], c[ch * S + s]);
        }
    }
    norm_end(y, &b, 1);
    if (training) {
        /* outputs 1, 2: running mean and variance; opsets before 14 add 3, 4: the batch's */
        for (int o = 1; o <= (opset >= 14 ? 2 : 4) && rc == FERRY_OK; o++) {
            if (!fy_output_wanted(k, o)) continue;
            const fy_value *src = p[o == 2 || o == 4 ? 3 : 2];
            fy_value *t;
            rc = fy_output(k, o, src->dtype, src->rank, src->dims, &t);
            if (rc != FERRY_OK) break;
            for (int64_t i = 0; i < C; i++) {
                double batch = o == 1 || o == 3 ? bmean[i] : bvar[i];
                double v =
                    o <= 2 ? fy_tensor_get_f64(src, i) * momentum + batch * (1 - momentum) : batch;
                fy_tensor_set_f64(t, i, v);
            }
        }
    }
out:
    if (rc != FERRY_OK) norm_end(y, &b, 0);
    free(a);
    return rc;
}

/* ---- InstanceNormalization and GroupNormalization ---------------------------------------- */

/* Normalize N * G groups of C/G channels (each of S elements), then scale and shift per
 * channel with sc/bi (C values) or per group (G values, GroupNormalization-18). */
static ferry_status group_norm(fy_kernel *k, int64_t G)
{
    const fy_value *x, *sc, *bi;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &sc));
    FY_CHECK(fy_input_tensor(k, 2, &bi));
    FY_CHECK(check_float(k, 0, x));
    FY_CHECK(check_float(k, 1, sc));
    FY_CHECK(check_float(k, 2, bi));
    if (x->rank < 2) return fy_kernel_error(k, FERRY_E_SHAPE, "X must be N x C x ...");
    int64_t N = x->dims[0], C = x->dims[1], S = N > 0 && C > 0 ? x->count / (N * C) : 0;
    if (G <= 0) G = C > 0 ? C : 1; /* instance norm (an empty C still forms one group) */
    if (C % G != 0)
        return fy_kernel_error(k, FERRY_E_SHAPE, "%lld channels do not split into %lld groups",
                               (long long)C, (long long)G);
    int per_group = sc->count == G && G != C;
    if ((sc->count != C && !per_group) || bi->count != sc->count)
        return fy_kernel_error(k, FERRY_E_SHAPE, "scale and bias must have %lld values",
                               (long long)C);
    double eps = fy_attr_float(k, "epsilon", 1e-5f);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &y));
    norm_buf b;
    FY_CHECK(norm_begin(k, x, y, &b));
    int64_t cg = C / G;
#pragma omp parallel for if (x->count > 65536) schedule(static)
    for (int64_t ng = 0; ng < N * G; ng++) {
        double mean, var;
        moments(&b, ng * cg * S, cg * S, &mean, &var);
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t j = 0; j < cg; j++) {
            int64_t ch = ng % G * cg + j, pi = per_group ? ng % G : ch;
            double a = fy_tensor_get_f64(sc, pi) * inv;
            affine(&b, (ng * cg + j) * S, S, a, fy_tensor_get_f64(bi, pi) - mean * a);
        }
    }
    norm_end(y, &b, 1);
    return FERRY_OK;
}

ferry_status fy_op_InstanceNormalization(fy_kernel *k) { return group_norm(k, 0); }

ferry_status fy_op_GroupNormalization(fy_kernel *k)
{
    int64_t g = fy_attr_int(k, "num_groups", 0);
    if (g < 1) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "num_groups must be positive");
    return group_norm(k, g);
}

/* ---- LayerNormalization ------------------------------------------------------------------ */

/* Scale or bias broadcast over X's normalized dims: per-position index into p for each of
 * the inner positions, plus a per-row base (non-zero only if p also varies over outer dims). */
typedef struct ln_param {
    const fy_value *t;
    const float *f; /* values as float: t's own data when it is float32 */
    float *owned_f; /* the converted copy otherwise */
    int64_t *idx;   /* inner index map, NULL when contiguous */
    int64_t st[FERRY_MAX_RANK];
} ln_param;

static ferry_status ln_param_init(const fy_kernel *k, int input, const fy_value *x, int axis,
                                  int64_t inner, ln_param *p)
{
    memset(p, 0, sizeof *p);
    FY_CHECK(fy_input_tensor_opt(k, input, &p->t));
    if (!p->t) return FERRY_OK;
    FY_CHECK(check_float(k, input, p->t));
    int r;
    int64_t bd[FERRY_MAX_RANK];
    if (fy_broadcast_shape(p->t->rank, p->t->dims, x->rank, x->dims, &r, bd) != FERRY_OK ||
        !fy_shape_equal(r, bd, x->rank, x->dims)) {
        char s[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d %s does not broadcast to X", input,
                               fy_shape_str(p->t->rank, p->t->dims, s, sizeof s));
    }
    fy_broadcast_strides(p->t->rank, p->t->dims, x->rank, x->dims, p->st);
    if (p->t->dtype == FERRY_DTYPE_F32) {
        p->f = p->t->data;
    } else {
        p->f = p->owned_f = malloc(sizeof(float) * (size_t)(p->t->count + 1));
        if (!p->f) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < p->t->count; i++)
            p->owned_f[i] = (float)fy_tensor_get_f64(p->t, i);
    }
    int contiguous = p->t->count == inner;
    for (int d = 0; d < axis; d++)
        contiguous &= p->st[d] == 0;
    if (contiguous) return FERRY_OK;
    if (!(p->idx = malloc(sizeof(int64_t) * (size_t)(inner + 1))))
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    for (int64_t j = 0; j < inner; j++) {
        int64_t rem = j, off = 0;
        for (int d = x->rank - 1; d >= axis; d--)
            off += rem % x->dims[d] * p->st[d], rem /= x->dims[d];
        p->idx[j] = off;
    }
    return FERRY_OK;
}

static int64_t ln_row_base(const ln_param *p, const fy_value *x, int axis, int64_t row)
{
    int64_t off = 0;
    for (int d = axis - 1; d >= 0; d--)
        off += row % x->dims[d] * p->st[d], row /= x->dims[d];
    return off;
}

ferry_status fy_op_LayerNormalization(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(check_float(k, 0, x));
    int axis;
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", -1), x->rank, &axis));
    if (x->rank == 0) return fy_kernel_error(k, FERRY_E_SHAPE, "X must have rank >= 1");
    double eps = fy_attr_float(k, "epsilon", 1e-5f);
    int64_t stash = fy_attr_int(k, "stash_type", 1);
    ferry_dtype sdt = stash == FERRY_DTYPE_F64    ? FERRY_DTYPE_F64
                      : stash == FERRY_DTYPE_BF16 ? FERRY_DTYPE_BF16
                      : stash == FERRY_DTYPE_F16  ? FERRY_DTYPE_F16
                                                  : FERRY_DTYPE_F32;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < x->rank; d++)
        *(d < axis ? &outer : &inner) *= x->dims[d];
    ln_param ps, pb;
    ferry_status rc = ln_param_init(k, 1, x, axis, inner, &ps);
    if (rc == FERRY_OK && !ps.t) rc = fy_kernel_error(k, FERRY_E_INVALID_ARG, "Scale is required");
    if (rc == FERRY_OK)
        rc = ln_param_init(k, 2, x, axis, inner, &pb);
    else
        memset(&pb, 0, sizeof pb);
    fy_value *y = NULL, *mo = NULL, *io = NULL;
    int64_t sdims[FERRY_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        sdims[d] = d < axis ? x->dims[d] : 1;
    if (rc == FERRY_OK) rc = fy_output(k, 0, x->dtype, x->rank, x->dims, &y);
    if (rc == FERRY_OK && fy_output_wanted(k, 1)) rc = fy_output(k, 1, sdt, x->rank, sdims, &mo);
    if (rc == FERRY_OK && fy_output_wanted(k, 2)) rc = fy_output(k, 2, sdt, x->rank, sdims, &io);
    norm_buf b;
    memset(&b, 0, sizeof b);
    if (rc == FERRY_OK) rc = norm_begin(k, x, y, &b);
    if (rc != FERRY_OK) goto out;

#pragma omp parallel for if (x->count > 65536) schedule(static)
    for (int64_t r = 0; r < outer; r++) {
        double mean, var;
        moments(&b, r * inner, inner, &mean, &var);
        double inv = 1.0 / sqrt(var + eps);
        const float *sf = ps.f + (ps.idx ? ln_row_base(&ps, x, axis, r) : 0);
        const float *bf = pb.f ? pb.f + (pb.idx ? ln_row_base(&pb, x, axis, r) : 0) : NULL;
        if (b.is_double) {
            const double *xr = b.xd + r * inner;
            double *yr = b.yd + r * inner;
            for (int64_t j = 0; j < inner; j++) {
                double s = sf[ps.idx ? ps.idx[j] : j], o = bf ? bf[pb.idx ? pb.idx[j] : j] : 0;
                yr[j] = (xr[j] - mean) * inv * s + o;
            }
        } else if (!ps.idx && !pb.idx) {
            const float *xr = b.xf + r * inner;
            float *yr = b.yf + r * inner, m = (float)mean, iv = (float)inv;
            if (bf) {
#pragma omp simd
                for (int64_t j = 0; j < inner; j++)
                    yr[j] = (xr[j] - m) * iv * sf[j] + bf[j];
            } else {
#pragma omp simd
                for (int64_t j = 0; j < inner; j++)
                    yr[j] = (xr[j] - m) * iv * sf[j];
            }
        } else {
            const float *xr = b.xf + r * inner;
            float *yr = b.yf + r * inner;
            for (int64_t j = 0; j < inner; j++) {
                float s = sf[ps.idx ? ps.idx[j] : j], o = bf ? bf[pb.idx ? pb.idx[j] : j] : 0;
                yr[j] = (float)((xr[j] - mean) * inv) * s + o;
            }
        }
        if (mo) fy_tensor_set_f64(mo, r, mean);
        if (io) fy_tensor_set_f64(io, r, inv);
    }
    norm_end(y, &b, 1);
out:
    if (rc != FERRY_OK) norm_end(y, &b, 0);
    free(ps.owned_f), free(ps.idx), free(pb.owned_f), free(pb.idx);
    return rc;
}

/* ---- LRN --------------------------------------------------------------------------------- */

ferry_status fy_op_LRN(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(check_float(k, 0, x));
    if (x->rank < 2) return fy_kernel_error(k, FERRY_E_SHAPE, "X must be N x C x ...");
    int64_t size = fy_attr_int(k, "size", 0);
    if (size < 1) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "size must be positive");
    double alpha = fy_attr_float(k, "alpha", 1e-4f), beta = fy_attr_float(k, "beta", 0.75f);
    double bias = fy_attr_float(k, "bias", 1.0f);
    int64_t N = x->dims[0], C = x->dims[1], S = N > 0 && C > 0 ? x->count / (N * C) : 0;
    int64_t lo = (size - 1) / 2, hi = size / 2; /* floor and ceil of (size - 1) / 2 */
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &y));
    norm_buf b;
    FY_CHECK(norm_begin(k, x, y, &b));
#pragma omp parallel for if (x->count > 65536) schedule(static)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t n = nc / C, c = nc % C;
        int64_t c0 = c - lo < 0 ? 0 : c - lo, c1 = c + hi >= C ? C - 1 : c + hi;
        for (int64_t s = 0; s < S; s++) {
            double sq = 0;
            for (int64_t j = c0; j <= c1; j++) {
                int64_t at = (n * C + j) * S + s;
                double v = b.is_double ? b.xd[at] : b.xf[at];
                sq += v * v;
            }
            int64_t at = nc * S + s;
            double d = pow(bias + alpha / (double)size * sq, beta);
            if (b.is_double)
                b.yd[at] = b.xd[at] / d;
            else
                b.yf[at] = (float)(b.xf[at] / d);
        }
    }
    norm_end(y, &b, 1);
    return FERRY_OK;
}

/* ---- MeanVarianceNormalization ----------------------------------------------------------- */

ferry_status fy_op_MeanVarianceNormalization(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(check_float(k, 0, x));
    const int64_t *axv;
    int64_t nax = fy_attr_ints(k, "axes", &axv);
    static const int64_t def_axes[3] = {0, 2, 3};
    if (nax < 0) nax = 3, axv = def_axes;
    int red[FERRY_MAX_RANK] = {0};
    for (int64_t i = 0; i < nax; i++) {
        int a;
        FY_CHECK(fy_axis(k, axv[i], x->rank, &a));
        red[a] = 1;
    }
    /* statistics live in a tensor of x's shape with the reduced dims set to 1 */
    int64_t kd[FERRY_MAX_RANK], st[FERRY_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        kd[d] = red[d] ? 1 : x->dims[d];
    fy_broadcast_strides(x->rank, kd, x->rank, x->dims, st);
    int64_t nk = fy_shape_count(x->rank, kd);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &y));
    double *sum = calloc(2 * (size_t)(nk + 1), sizeof(double));
    if (!sum) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    double *sq = sum + nk;
    int64_t cnt = nk ? x->count / nk : 0;
    for (int pass = 0; pass < 2; pass++) {
        int64_t idx[FERRY_MAX_RANK] = {0}, off = 0;
        for (int64_t i = 0; i < x->count; i++) {
            double v = fy_tensor_get_f64(x, i);
            if (pass == 0) {
                sum[off] += v, sq[off] += v * v;
            } else {
                double m = sum[off] / (double)cnt, var = sq[off] / (double)cnt - m * m;
                fy_tensor_set_f64(y, i, (v - m) / (sqrt(var > 0 ? var : 0) + 1e-9));
            }
            for (int d = x->rank - 1; d >= 0; d--) {
                off += st[d];
                if (++idx[d] < x->dims[d]) break;
                off -= st[d] * x->dims[d];
                idx[d] = 0;
            }
        }
    }
    free(sum);
    return FERRY_OK;
}
