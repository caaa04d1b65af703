/* fuse_qdq.c — the load-time pass that makes a QDQ-format int8 model (ferry optimize --int8
 * static, ONNX Runtime's quantizer, TensorRT-style exports) run on int8 kernels: DQ → Conv /
 * Gemm / MatMul → [Relu] → Q becomes one QLinearConv (a Gemm as a 1x1 QLinearConv between two
 * Reshapes, so the bias and the Relu stay fused), DQ → MaxPool/Flatten/Reshape/... → Q with the
 * same parameters runs on the int8 tensor, and Q(DQ(x)) with equal parameters disappears.
 * Without it the DequantizeLinear of each weight would be constant-folded and the model would
 * run in float with extra rounding steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimize/pass_impl.h"

/* A DequantizeLinear producing v: its data, scale and zero point (-1 when omitted). */
typedef struct dq_info {
    int node;
    int x, s, z;
    int64_t axis;
} dq_info;

static bool dq_of(const fy_rewrite *rw, int v, dq_info *d)
{
    int p = fy_rw_producer(rw, v);
    if (p < 0 || rw->dead[p]) return false;
    const fy_node *n = &rw->g->nodes[p];
    if (!fy_node_is(n, "DequantizeLinear") || n->n_inputs < 2 || n->n_outputs != 1) return false;
    d->node = p;
    d->x = fy_node_in(n, 0);
    d->s = fy_node_in(n, 1);
    d->z = fy_node_in(n, 2);
    const fy_attr *a = fy_node_attr(n, "axis");
    d->axis = a && a->type == FY_ATTR_INT ? a->i : 1;
    return true;
}

/* The element type of v is t, or unknown (values a rewrite just added have no type yet). */
static bool dtype_ok(const fy_rewrite *rw, int v, ferry_dtype t)
{
    ferry_dtype d = fy_rw_dtype(rw, v);
    return d == t || d == FERRY_DTYPE_UNDEFINED;
}

static const fy_value *f32_const(const fy_rewrite *rw, int v)
{
    const fy_value *t = fy_rw_const(rw, v);
    return t && t->dtype == FERRY_DTYPE_F32 && !t->layout ? t : NULL;
}

/* Activation quantization: a per-tensor f32 scale and a u8/i8 zero point, both constant. */
static bool per_tensor(const fy_rewrite *rw, int s, int z, float *scale, int *zp, ferry_dtype *zt)
{
    const fy_value *st = f32_const(rw, s), *zt_ = fy_rw_const(rw, z);
    if (!st || st->count != 1 || !zt_ || zt_->count != 1 || zt_->layout ||
        (zt_->dtype != FERRY_DTYPE_U8 && zt_->dtype != FERRY_DTYPE_I8))
        return false;
    *scale = ((const float *)st->data)[0];
    *zp = zt_->dtype == FERRY_DTYPE_U8 ? ((const uint8_t *)zt_->data)[0]
                                       : ((const int8_t *)zt_->data)[0];
    *zt = zt_->dtype;
    return *scale > 0 && isfinite(*scale);
}

/* The QuantizeLinear that is the sole reader of v, with per-tensor parameters. */
static int q_after(const fy_rewrite *rw, int v, float *scale, int *zp, ferry_dtype *zt)
{
    int slot, c = fy_rw_sole_consumer(rw, v, &slot);
    if (c < 0 || !fy_rw_usable(rw, c) || slot != 0) return -1;
    const fy_node *n = &rw->g->nodes[c];
    if (!fy_node_is(n, "QuantizeLinear") || n->n_inputs < 3 || n->n_outputs != 1) return -1;
    const fy_attr *a = fy_node_attr(n, "saturate");
    if (a) return -1;
    return per_tensor(rw, fy_node_in(n, 1), fy_node_in(n, 2), scale, zp, zt) ? c : -1;
}

static ferry_status new_init(fy_rewrite *rw, const char *base, const char *suffix,
                             ferry_dtype dt, int rank, const int64_t *dims, fy_value **t, int *id)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    FY_CHECK(fy_tensor_new(dt, rank, dims, t));
    ferry_status rc = fy_rw_add_init(rw, name, *t, id);
    if (rc != FERRY_OK) fy_value_unref(*t);
    return rc;
}

enum { L_CONV, L_GEMM_T, L_GEMM_N };

/* DQ(x) → layer(DQ(w), bias) → [Relu] → Q  ⇒  QLinearConv (see the file comment). */
static bool fuse_layer(fy_rewrite *rw, int i)
{
    const fy_node *n = &rw->g->nodes[i];
    int kind;
    if (fy_node_is(n, "Conv")) kind = L_CONV;
    else if (fy_node_is(n, "Gemm")) {
        const fy_attr *ta = fy_node_attr(n, "transA"), *tb = fy_node_attr(n, "transB");
        const fy_attr *al = fy_node_attr(n, "alpha"), *be = fy_node_attr(n, "beta");
        if ((ta && ta->i) || (al && al->f != 1) || (be && be->f != 1)) return false;
        kind = tb && tb->i ? L_GEMM_T : L_GEMM_N;
    } else if (fy_node_is(n, "MatMul") && n->n_inputs == 2)
        kind = L_GEMM_N;
    else
        return false;
    if (n->n_inputs < 2 || n->n_outputs != 1) return false;
    dq_info dx, dw;
    if (!dq_of(rw, fy_node_in(n, 0), &dx) || !dq_of(rw, fy_node_in(n, 1), &dw)) return false;
    float xs, ys;
    int xz, yz;
    ferry_dtype xt, yt;
    if (!per_tensor(rw, dx.s, dx.z, &xs, &xz, &xt)) return false;
    if (!dtype_ok(rw, dx.x, xt)) return false;
    const fy_value *w = fy_rw_const(rw, dw.x), *ws = f32_const(rw, dw.s);
    const fy_value *wz = dw.z >= 0 ? fy_rw_const(rw, dw.z) : NULL;
    if (!w || w->dtype != FERRY_DTYPE_I8 || w->layout || !ws || ws->rank > 1) return false;
    if (dw.z >= 0 && (!wz || wz->dtype != FERRY_DTYPE_I8 || wz->count != ws->count)) return false;
    for (int64_t k = 0; wz && k < wz->count; k++)
        if (((const int8_t *)wz->data)[k] != 0) return false;
    int64_t m, kk = 0;
    if (kind == L_CONV) {
        if (w->rank < 3) return false;
        m = w->dims[0];
        if (ws->count != 1 && (dw.axis != 0 || ws->count != m)) return false;
    } else {
        if (w->rank != 2) return false;
        const fy_type_info *xi = &rw->g->values[dx.x].type;
        if (xi->rank != 2) return false;
        m = kind == L_GEMM_T ? w->dims[0] : w->dims[1];
        kk = kind == L_GEMM_T ? w->dims[1] : w->dims[0];
        int64_t want_axis = kind == L_GEMM_T ? 0 : 1;
        if (ws->count != 1 && ((dw.axis != want_axis && dw.axis != want_axis - 2) ||
                               ws->count != m))
            return false;
    }
    /* bias: float constant, or DequantizeLinear of an int32 constant */
    int b = n->n_inputs > 2 ? fy_node_in(n, 2) : -1;
    const fy_value *bf = NULL, *bq = NULL, *bs = NULL;
    if (b >= 0) {
        dq_info db;
        if ((bf = f32_const(rw, b))) {
            if (bf->count != m) return false;
        } else if (dq_of(rw, b, &db)) {
            bq = fy_rw_const(rw, db.x);
            bs = f32_const(rw, db.s);
            if (!bq || bq->dtype != FERRY_DTYPE_I32 || bq->count != m || !bs ||
                (bs->count != 1 && bs->count != m) || db.z >= 0)
                return false;
        } else {
            return false;
        }
    }
    /* output: [Relu] then a QuantizeLinear */
    int y = n->outputs[0], relu = -1, slot;
    int c = fy_rw_sole_consumer(rw, y, &slot);
    if (c >= 0 && fy_rw_usable(rw, c) && fy_node_is(&rw->g->nodes[c], "Relu")) {
        relu = c;
        y = rw->g->nodes[c].outputs[0];
    }
    int qn = q_after(rw, y, &ys, &yz, &yt);
    if (qn < 0) return false;
    if (relu >= 0 && yz != (yt == FERRY_DTYPE_U8 ? 0 : -128)) return false;
    int yq = rw->g->nodes[qn].outputs[0];
    int ysv = fy_node_in(&rw->g->nodes[qn], 1), yzv = fy_node_in(&rw->g->nodes[qn], 2);

    /* new constants: int32 bias in the accumulator's scale, weights as [M, C, k...] */
    char base[400];
    snprintf(base, sizeof base, "%s", n->name);
    ferry_status rc = FERRY_OK;
    int bias_id = -1, wid = dw.x, wzid = dw.z;
    if (b >= 0) {
        fy_value *bt;
        rc = new_init(rw, base, "_bias_int32", FERRY_DTYPE_I32, 1, &m, &bt, &bias_id);
        for (int64_t k = 0; rc == FERRY_OK && k < m; k++) {
            double bv = bf ? ((const float *)bf->data)[k]
                           : ((const int32_t *)bq->data)[k] *
                                 (double)((const float *)bs->data)[bs->count == 1 ? 0 : k];
            double s = (double)xs * ((const float *)ws->data)[ws->count == 1 ? 0 : k];
            double v = rint(bv / s);
            v = v < -2147483647.0 ? -2147483647.0 : v > 2147483647.0 ? 2147483647.0 : v;
            ((int32_t *)bt->data)[k] = (int32_t)(v == v ? v : 0);
        }
    }
    if (rc == FERRY_OK && wzid < 0) {
        fy_value *zt;
        rc = new_init(rw, base, "_weight_zero_point", FERRY_DTYPE_I8, 0, NULL, &zt, &wzid);
        if (rc == FERRY_OK) ((int8_t *)zt->data)[0] = 0;
    }
    int xin = dx.x, out = yq, x4 = -1, y4 = -1, idx;
    if (rc == FERRY_OK && kind != L_CONV) {
        /* [N, K] → [N, K, 1, 1] → 1x1 QLinearConv → [N, M, 1, 1] → [N, M] */
        int64_t wd[4] = {m, kk, 1, 1}, four = 4, two = 2;
        fy_value *wt, *s1, *s2;
        int sh1, sh2;
        rc = new_init(rw, base, "_weight_1x1", FERRY_DTYPE_I8, 4, wd, &wt, &wid);
        if (rc == FERRY_OK) {
            const int8_t *src = w->data;
            int8_t *dst = wt->data;
            for (int64_t o = 0; o < m; o++)
                for (int64_t k = 0; k < kk; k++)
                    dst[o * kk + k] = kind == L_GEMM_T ? src[o * kk + k] : src[k * m + o];
        }
        if (rc == FERRY_OK) rc = new_init(rw, base, "_shape_4d", FERRY_DTYPE_I64, 1, &four, &s1, &sh1);
        if (rc == FERRY_OK) {
            int64_t *d = s1->data;
            d[0] = 0, d[1] = kk, d[2] = 1, d[3] = 1;
            rc = new_init(rw, base, "_shape_2d", FERRY_DTYPE_I64, 1, &two, &s2, &sh2);
        }
        if (rc == FERRY_OK) {
            int64_t *d = s2->data;
            d[0] = 0, d[1] = m;
            char nm[512];
            snprintf(nm, sizeof nm, "%s_x_4d", base);
            rc = fy_rw_add_value(rw, nm, &x4);
            snprintf(nm, sizeof nm, "%s_y_4d", base);
            if (rc == FERRY_OK) rc = fy_rw_add_value(rw, nm, &y4);
            int in1[2] = {dx.x, sh1}, in2[2] = {y4, sh2};
            snprintf(nm, sizeof nm, "%s_to_4d", base);
            if (rc == FERRY_OK) rc = fy_rw_add_node(rw, "", "Reshape", 13, nm, 2, in1, 1, &x4, &idx);
            snprintf(nm, sizeof nm, "%s_to_2d", base);
            if (rc == FERRY_OK) rc = fy_rw_add_node(rw, "", "Reshape", 13, nm, 2, in2, 1, &yq, &idx);
        }
        xin = x4, out = y4;
    }
    if (rc == FERRY_OK) rc = fy_rw_remake(rw, i, "", "QLinearConv", 10, "_int8");
    fy_node *nn = &rw->g->nodes[i];
    if (rc == FERRY_OK && kind != L_CONV) fy_node_attrs_clear(nn);
    int ins[9] = {xin, dx.s, dx.z, wid, dw.s, wzid, ysv, yzv, bias_id};
    if (rc == FERRY_OK) rc = fy_node_set_inputs(nn, b >= 0 ? 9 : 8, ins);
    if (rc == FERRY_OK) rc = fy_node_set_outputs(nn, 1, &out);
    if (rc != FERRY_OK) {
        rw->error = rc;
        return false;
    }
    if (relu >= 0) fy_rw_kill(rw, relu);
    fy_rw_kill(rw, qn);
    rw->changes++;
    return true;
}

static bool is_pass_op(const fy_node *n)
{
    static const char *const ops[] = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze",
                                      "Unsqueeze"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (fy_node_is(n, ops[i])) return true;
    return false;
}

/* DQ(x) → pass-through op → Q with the same parameters ⇒ the op on the int8 tensor. */
static bool fuse_pass_through(fy_rewrite *rw, int i)
{
    const fy_node *n = &rw->g->nodes[i];
    if (!is_pass_op(n) || n->n_inputs < 1 || n->n_outputs != 1) return false;
    dq_info dx;
    float xs, ys;
    int xz, yz;
    ferry_dtype xt, yt;
    if (!dq_of(rw, fy_node_in(n, 0), &dx) || !per_tensor(rw, dx.s, dx.z, &xs, &xz, &xt)) return false;
    int qn = q_after(rw, n->outputs[0], &ys, &yz, &yt);
    if (qn < 0 || xs != ys || xz != yz || xt != yt || !dtype_ok(rw, dx.x, xt)) return false;
    fy_node *nn = &rw->g->nodes[i];
    nn->inputs[0] = dx.x;
    nn->outputs[0] = rw->g->nodes[qn].outputs[0];
    fy_rw_touch(rw, i);
    fy_rw_kill(rw, qn);
    rw->changes++;
    return true;
}

/* Q(DQ(x)) with the same parameters ⇒ x. */
static bool drop_requant(fy_rewrite *rw, int i)
{
    const fy_node *n = &rw->g->nodes[i];
    if (!fy_node_is(n, "QuantizeLinear") || n->n_inputs < 3 || n->n_outputs != 1) return false;
    if (fy_rw_is_output(rw, n->outputs[0]) || fy_node_attr(n, "saturate")) return false;
    dq_info dx;
    float xs, ys;
    int xz, yz;
    ferry_dtype xt, yt;
    if (!dq_of(rw, fy_node_in(n, 0), &dx) || !per_tensor(rw, dx.s, dx.z, &xs, &xz, &xt) ||
        !per_tensor(rw, fy_node_in(n, 1), fy_node_in(n, 2), &ys, &yz, &yt))
        return false;
    if (xs != ys || xz != yz || xt != yt || !dtype_ok(rw, dx.x, xt)) return false;
    fy_rw_replace_uses(rw, n->outputs[0], dx.x);
    fy_rw_kill(rw, i);
    rw->changes++;
    return true;
}

int fy_pass_fuse_qdq(fy_rewrite *rw)
{
    int done = 0;
    for (int i = 0; i < rw->n_nodes && rw->error == FERRY_OK; i++) {
        if (!fy_rw_usable(rw, i)) continue;
        if (fuse_layer(rw, i) || fuse_pass_through(rw, i) || drop_requant(rw, i)) done++;
    }
    return done;
}
