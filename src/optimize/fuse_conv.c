/* fuse_conv.c — the EXTENDED passes: BatchNormalization folded into Conv weights, Conv + Add
 * (residual) and Conv + activation into com.microsoft FusedConv, MatMul + bias into Gemm, and
 * Gemm + activation into com.microsoft FusedGemm. Semantics follow ONNX Runtime's contrib ops,
 * so the rewritten graph is also a model ORT can run. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/kernel.h"
#include "optimize/pass_impl.h"

#define MS_DOMAIN "com.microsoft"

static bool is_ms(const fy_node *n, const char *op)
{
    return strcmp(n->domain, MS_DOMAIN) == 0 && strcmp(n->op_type, op) == 0;
}

/* The value's element type is float32 (the fused kernels' type). */
static bool is_f32(const fy_rewrite *rw, int v) { return fy_rw_dtype(rw, v) == FERRY_DTYPE_F32; }

static float attr_f(const fy_node *n, const char *name, float def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_FLOAT ? a->f : def;
}

static int64_t attr_i(const fy_node *n, const char *name, int64_t def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_INT ? a->i : def;
}

/* An activation node as (name, params) the fused ops take; false if it is none we fuse. */
typedef struct activation {
    const char *name;
    int n_params;
    float params[2];
} activation;

static bool activation_of(const fy_rewrite *rw, const fy_node *n, activation *act, bool gemm)
{
    memset(act, 0, sizeof *act);
    if (!fy_domain_is_onnx(n->domain) || n->n_inputs < 1 || n->n_outputs < 1) return false;
    const char *op = n->op_type;
    if (strcmp(op, "Relu") == 0 || strcmp(op, "Sigmoid") == 0 || strcmp(op, "Tanh") == 0) {
        act->name = op;
    } else if (strcmp(op, "LeakyRelu") == 0) {
        act->name = op;
        act->n_params = 1;
        act->params[0] = attr_f(n, "alpha", 0.01f);
    } else if (strcmp(op, "HardSigmoid") == 0) {
        act->name = op;
        act->n_params = 2;
        act->params[0] = attr_f(n, "alpha", 0.2f);
        act->params[1] = attr_f(n, "beta", 0.5f);
    } else if (!gemm && strcmp(op, "HardSwish") == 0) {
        act->name = op;
    } else if (!gemm && strcmp(op, "Clip") == 0) {
        float lo = -FLT_MAX, hi = FLT_MAX;
        if (n->opset < 11) {
            lo = attr_f(n, "min", lo);
            hi = attr_f(n, "max", hi);
        } else {
            double v;
            int mn = fy_node_in(n, 1), mx = fy_node_in(n, 2);
            if (mn >= 0) {
                if (!fy_rw_const_scalar(rw, mn, &v)) return false;
                lo = (float)v;
            }
            if (mx >= 0) {
                if (!fy_rw_const_scalar(rw, mx, &v)) return false;
                hi = (float)v;
            }
        }
        act->name = op;
        act->n_params = 2;
        act->params[0] = lo;
        act->params[1] = hi;
    } else {
        return false;
    }
    return true;
}

/* The producer of v if it is usable and v is its output 0 with no reader but `reader`. */
static int sole_producer(const fy_rewrite *rw, int v, int reader)
{
    int p = fy_rw_producer(rw, v);
    if (p < 0 || !fy_rw_usable(rw, p) || rw->g->nodes[p].n_outputs < 1 ||
        rw->g->nodes[p].outputs[0] != v)
        return -1;
    if (fy_rw_sole_consumer(rw, v, NULL) != reader) return -1;
    for (int j = 1; j < rw->g->nodes[p].n_outputs; j++)
        if (rw->g->nodes[p].outputs[j] >= 0) return -1;
    return p;
}

/* ---- Conv + BatchNormalization ----------------------------------------------------------- */

static ferry_status fold_bn(fy_rewrite *rw, int ci, int bi, bool *done)
{
    fy_graph *g = rw->g;
    const fy_node *c = &g->nodes[ci], *b = &g->nodes[bi];
    *done = false;
    const fy_value *w = fy_rw_const(rw, fy_node_in(c, 1));
    int bias_in = fy_node_in(c, 2);
    const fy_value *cb = bias_in >= 0 ? fy_rw_const(rw, bias_in) : NULL;
    const fy_value *p[4];
    for (int i = 0; i < 4; i++) p[i] = fy_rw_const(rw, fy_node_in(b, 1 + i));
    if (!w || w->dtype != FERRY_DTYPE_F32 || w->rank < 3 || (bias_in >= 0 && !cb)) return FERRY_OK;
    int64_t M = w->dims[0];
    if (cb && (cb->dtype != FERRY_DTYPE_F32 || cb->count != M)) return FERRY_OK;
    for (int i = 0; i < 4; i++)
        if (!p[i] || p[i]->dtype != FERRY_DTYPE_F32 || p[i]->rank != 1 || p[i]->count != M)
            return FERRY_OK;
    double eps = attr_f(b, "epsilon", 1e-5f);
    fy_value *nw = NULL, *nb = NULL;
    FY_CHECK(fy_tensor_new(FERRY_DTYPE_F32, w->rank, w->dims, &nw));
    ferry_status rc = fy_tensor_new(FERRY_DTYPE_F32, 1, &M, &nb);
    if (rc != FERRY_OK) {
        fy_value_unref(nw);
        return rc;
    }
    const float *sc = p[0]->data, *bb = p[1]->data, *mean = p[2]->data, *var = p[3]->data;
    const float *wf = w->data;
    float *nwf = nw->data, *nbf = nb->data;
    int64_t per = w->count / M;
    for (int64_t m = 0; m < M; m++) {
        double s = sc[m] / sqrt((double)var[m] + eps);
        for (int64_t j = 0; j < per; j++) nwf[m * per + j] = (float)(wf[m * per + j] * s);
        double b0 = cb ? ((const float *)cb->data)[m] : 0.0;
        nbf[m] = (float)((b0 - mean[m]) * s + bb[m]);
    }
    char base[512];
    int wv, bv;
    snprintf(base, sizeof base, "%s_bn", g->values[c->inputs[1]].name);
    rc = fy_rw_add_init(rw, base, nw, &wv);
    if (rc != FERRY_OK) {
        fy_value_unref(nb);
        return rc;
    }
    snprintf(base, sizeof base, "%s_bn_bias", c->name);
    FY_CHECK(fy_rw_add_init(rw, base, nb, &bv));
    /* g->values may have moved; node pointers have not */
    fy_node *cn = &g->nodes[ci];
    int ins[3] = {cn->inputs[0], wv, bv}, outs[1] = {g->nodes[bi].outputs[0]};
    FY_CHECK(fy_node_set_inputs(cn, 3, ins));
    FY_CHECK(fy_node_set_outputs(cn, 1, outs));
    fy_rw_touch(rw, ci);
    fy_rw_kill(rw, bi);
    *done = true;
    return FERRY_OK;
}

static bool bn_inference_only(const fy_rewrite *rw, const fy_node *b)
{
    if (b->n_inputs != 5 || attr_i(b, "training_mode", 0) != 0) return false;
    if (b->opset < 9 && attr_i(b, "spatial", 1) != 1) return false;
    for (int j = 1; j < b->n_outputs; j++)
        if (b->outputs[j] >= 0 &&
            (fy_rw_n_uses(rw, b->outputs[j]) || fy_rw_is_output(rw, b->outputs[j])))
            return false;
    return true;
}

int fy_pass_fuse_conv_bn(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    for (int bi = 0; bi < rw->n_nodes; bi++) {
        const fy_node *b = &g->nodes[bi];
        if (!fy_rw_usable(rw, bi) || !fy_node_is(b, "BatchNormalization") || b->n_outputs < 1 ||
            !bn_inference_only(rw, b))
            continue;
        int ci = sole_producer(rw, fy_node_in(b, 0), bi);
        if (ci < 0 || !fy_node_is(&g->nodes[ci], "Conv")) continue;
        bool ok;
        ferry_status rc = fold_bn(rw, ci, bi, &ok);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        done += ok;
    }
    return done;
}

/* ---- Conv + Add (residual) --------------------------------------------------------------- */

/* A Conv (or an activation-free, Z-free FusedConv) whose only reader is node `reader`. */
static int plain_conv_producer(const fy_rewrite *rw, int v, int reader)
{
    int p = sole_producer(rw, v, reader);
    if (p < 0) return -1;
    const fy_node *c = &rw->g->nodes[p];
    if (fy_node_is(c, "Conv")) return c->n_inputs >= 2 && is_f32(rw, v) ? p : -1;
    if (is_ms(c, "FusedConv") && !fy_node_attr(c, "activation") && fy_node_in(c, 3) < 0) return p;
    return -1;
}

/* Make conv node ci a FusedConv reading X, W, B (as it has them) and Z. */
static ferry_status to_fused_conv(fy_rewrite *rw, int ci, int z)
{
    fy_node *c = &rw->g->nodes[ci];
    if (!is_ms(c, "FusedConv")) FY_CHECK(fy_rw_remake(rw, ci, MS_DOMAIN, "FusedConv", 1, "_fused"));
    if (z < 0) return FERRY_OK;
    int ins[4] = {fy_node_in(c, 0), fy_node_in(c, 1), fy_node_in(c, 2), z};
    return fy_node_set_inputs(c, 4, ins);
}

int fy_pass_fuse_conv_add(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    for (int ai = 0; ai < rw->n_nodes; ai++) {
        const fy_node *a = &g->nodes[ai];
        if (!fy_rw_usable(rw, ai) || !fy_node_is(a, "Add") || a->n_inputs != 2 ||
            a->n_outputs != 1 || a->outputs[0] < 0)
            continue;
        int best = -1, side = -1;
        for (int s = 0; s < 2; s++) {
            int ci = plain_conv_producer(rw, a->inputs[s], ai);
            int z = a->inputs[1 - s];
            if (ci < 0 || z == a->inputs[s] || !is_f32(rw, z)) continue;
            if (!fy_rw_same_shape(rw, a->inputs[s], z) || !fy_rw_same_shape(rw, z, a->outputs[0]))
                continue;
            /* the later conv absorbs the add: the earlier result is then just Z */
            if (ci > best) best = ci, side = s;
        }
        if (best < 0) continue;
        int z = a->inputs[1 - side], y = a->outputs[0];
        ferry_status rc = to_fused_conv(rw, best, z);
        if (rc == FERRY_OK) rc = fy_node_set_outputs(&g->nodes[best], 1, &y);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        fy_rw_kill(rw, ai);
        done++;
    }
    return done;
}

/* ---- Conv + activation ------------------------------------------------------------------- */

int fy_pass_fuse_conv_activation(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    for (int ai = 0; ai < rw->n_nodes; ai++) {
        const fy_node *a = &g->nodes[ai];
        activation act;
        if (!fy_rw_usable(rw, ai) || !activation_of(rw, a, &act, false) || a->outputs[0] < 0)
            continue;
        int ci = sole_producer(rw, a->inputs[0], ai);
        if (ci < 0) continue;
        const fy_node *c = &g->nodes[ci];
        bool conv = fy_node_is(c, "Conv") && c->n_inputs >= 2 && is_f32(rw, a->inputs[0]);
        const fy_attr *prev = is_ms(c, "FusedConv") ? fy_node_attr(c, "activation") : NULL;
        bool fused = is_ms(c, "FusedConv") && !prev;
        /* Clip(Relu(y), lo >= 0, hi) is Clip(y, lo, hi): ReLU6 exported as Relu + Clip */
        if (prev && prev->type == FY_ATTR_STRING && strcmp(prev->s, "Relu") == 0 &&
            strcmp(act.name, "Clip") == 0 && act.params[0] >= 0)
            fused = true;
        if (!conv && !fused) continue;
        int y = a->outputs[0];
        fy_node *cn = &g->nodes[ci];
        ferry_status rc = to_fused_conv(rw, ci, -1);
        if (rc == FERRY_OK) rc = fy_node_attr_set_string(cn, "activation", act.name);
        if (rc == FERRY_OK && act.n_params)
            rc = fy_node_attr_set_floats(cn, "activation_params", act.n_params, act.params);
        if (rc == FERRY_OK) rc = fy_node_set_outputs(cn, 1, &y);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        fy_rw_kill(rw, ai);
        done++;
    }
    return done;
}

/* ---- MatMul + Add → Gemm ----------------------------------------------------------------- */

/* A constant row bias of width N for Gemm's C: [N] or [1, N], float32. */
static bool row_bias(const fy_value *c, int64_t N)
{
    return c && c->dtype == FERRY_DTYPE_F32 &&
           ((c->rank == 1 && c->dims[0] == N) || (c->rank == 2 && c->dims[0] == 1 && c->dims[1] == N));
}

static ferry_status i64_init(fy_rewrite *rw, const char *base, int n, const int64_t *vals, int *id)
{
    fy_value *t;
    int64_t dims[1] = {n};
    FY_CHECK(fy_tensor_new(FERRY_DTYPE_I64, 1, dims, &t));
    memcpy(t->data, vals, sizeof(int64_t) * n);
    return fy_rw_add_init(rw, base, t, id);
}

/* MatMul(A, B) + C with A of rank >= 3: Reshape A to [-1, K], Gemm (fused with a following
 * activation when there is one), Reshape back. Reshapes are views, so this costs nothing and
 * lets the bias (and activation) ride on the matrix product. A's leading dims must be static
 * but for at most one (the batch), which the output shape then leaves as -1. */
static ferry_status matmul_nd_to_gemm(fy_rewrite *rw, int mi, int ai, int C, bool *done)
{
    fy_graph *g = rw->g;
    *done = false;
    const fy_node *mm = &g->nodes[mi];
    int A = fy_node_in(mm, 0), B = fy_node_in(mm, 1), y = g->nodes[ai].outputs[0];
    const fy_type_info *ta = &g->values[A].type;
    int r = ta->rank, unknown = 0;
    int64_t out_shape[FERRY_MAX_RANK], K = ta->dims[r - 1], N = g->values[B].type.dims[1];
    for (int d = 0; d < r - 1; d++) {
        if (ta->dims[d] == 0) return FERRY_OK;
        unknown += ta->dims[d] < 0;
        out_shape[d] = ta->dims[d] < 0 ? -1 : ta->dims[d];
    }
    out_shape[r - 1] = N;
    if (unknown > 1 || K <= 0 || N <= 0) return FERRY_OK;
    /* an activation that reads only this result joins the Gemm */
    activation act = {0};
    int act_node = fy_rw_sole_consumer(rw, y, NULL);
    if (act_node >= 0 && fy_rw_usable(rw, act_node) &&
        activation_of(rw, &g->nodes[act_node], &act, true) && g->nodes[act_node].outputs[0] >= 0)
        y = g->nodes[act_node].outputs[0];
    else
        act_node = -1, act.name = NULL;
    char base[512];
    int s_in, s_out, a2, gy, rin;
    int64_t in_shape[2] = {-1, K};
    snprintf(base, sizeof base, "%s_shape2d", mm->name);
    FY_CHECK(i64_init(rw, base, 2, in_shape, &s_in));
    snprintf(base, sizeof base, "%s_shapeNd", mm->name);
    FY_CHECK(i64_init(rw, base, r, out_shape, &s_out));
    snprintf(base, sizeof base, "%s_2d", g->values[A].name);
    FY_CHECK(fy_rw_add_value(rw, base, &a2));
    snprintf(base, sizeof base, "%s_2d", g->values[y].name);
    FY_CHECK(fy_rw_add_value(rw, base, &gy));
    snprintf(base, sizeof base, "%s_reshape2d", g->nodes[mi].name);
    int rin_in[2] = {A, s_in}, opset = g->nodes[mi].opset;
    FY_CHECK(fy_rw_add_node(rw, "", "Reshape", opset, base, 2, rin_in, 1, &a2, &rin));
    /* nodes may have moved */
    int gin[3] = {a2, B, C}, rout_in[2] = {gy, s_out};
    fy_node *gn = &g->nodes[mi], *rn = &g->nodes[ai];
    if (act.name) {
        FY_CHECK(fy_rw_remake(rw, mi, MS_DOMAIN, "FusedGemm", 1, "_fused"));
        FY_CHECK(fy_node_attr_set_string(gn, "activation", act.name));
        if (act.n_params > 0) FY_CHECK(fy_node_attr_set_float(gn, "activation_alpha", act.params[0]));
        if (act.n_params > 1) FY_CHECK(fy_node_attr_set_float(gn, "activation_beta", act.params[1]));
    } else {
        FY_CHECK(fy_rw_remake(rw, mi, "", "Gemm", opset, "_gemm"));
    }
    FY_CHECK(fy_node_set_inputs(gn, 3, gin));
    FY_CHECK(fy_node_set_outputs(gn, 1, &gy));
    FY_CHECK(fy_rw_remake(rw, ai, "", "Reshape", opset, "_reshapeNd"));
    fy_node_attrs_clear(rn);
    FY_CHECK(fy_node_set_inputs(rn, 2, rout_in));
    FY_CHECK(fy_node_set_outputs(rn, 1, &y));
    if (act_node >= 0) fy_rw_kill(rw, act_node);
    *done = true;
    return FERRY_OK;
}

int fy_pass_matmul_add_to_gemm(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    for (int ai = 0; ai < rw->n_nodes; ai++) {
        const fy_node *a = &g->nodes[ai];
        if (!fy_rw_usable(rw, ai) || !fy_node_is(a, "Add") || a->n_inputs != 2 ||
            a->n_outputs != 1 || a->outputs[0] < 0 || a->opset < 9)
            continue;
        for (int s = 0; s < 2; s++) {
            int mi = sole_producer(rw, a->inputs[s], ai);
            if (mi < 0 || !fy_node_is(&g->nodes[mi], "MatMul")) continue;
            const fy_node *mm = &g->nodes[mi];
            int A = fy_node_in(mm, 0), B = fy_node_in(mm, 1), C = a->inputs[1 - s];
            const fy_type_info *ta = &g->values[A].type, *tb = &g->values[B].type;
            if (A < 0 || B < 0 || ta->kind != FERRY_VALUE_TENSOR || ta->rank < 2 ||
                tb->kind != FERRY_VALUE_TENSOR || tb->rank != 2 || tb->dims[1] < 0)
                continue;
            if (!is_f32(rw, A) || !is_f32(rw, B) || !row_bias(fy_rw_const(rw, C), tb->dims[1]))
                continue;
            ferry_status rc = FERRY_OK;
            if (ta->rank == 2) {
                int ins[3] = {A, B, C}, y = a->outputs[0];
                rc = fy_rw_remake(rw, mi, "", "Gemm", mm->opset, "_gemm");
                if (rc == FERRY_OK) rc = fy_node_set_inputs(&g->nodes[mi], 3, ins);
                if (rc == FERRY_OK) rc = fy_node_set_outputs(&g->nodes[mi], 1, &y);
                if (rc == FERRY_OK) fy_rw_kill(rw, ai), done++;
            } else {
                bool ok;
                rc = matmul_nd_to_gemm(rw, mi, ai, C, &ok);
                done += ok;
            }
            if (rc != FERRY_OK) {
                rw->error = rc;
                return done;
            }
            break;
        }
    }
    return done;
}

/* ---- Gemm + activation ------------------------------------------------------------------- */

int fy_pass_fuse_gemm_activation(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    for (int ai = 0; ai < rw->n_nodes; ai++) {
        const fy_node *a = &g->nodes[ai];
        activation act;
        if (!fy_rw_usable(rw, ai) || !activation_of(rw, a, &act, true) || a->outputs[0] < 0)
            continue;
        int gi = sole_producer(rw, a->inputs[0], ai);
        if (gi < 0 || !fy_node_is(&g->nodes[gi], "Gemm") || !is_f32(rw, a->inputs[0])) continue;
        int y = a->outputs[0];
        fy_node *gn = &g->nodes[gi];
        ferry_status rc = fy_rw_remake(rw, gi, MS_DOMAIN, "FusedGemm", 1, "_fused");
        if (rc == FERRY_OK) rc = fy_node_attr_set_string(gn, "activation", act.name);
        if (rc == FERRY_OK && act.n_params > 0)
            rc = fy_node_attr_set_float(gn, "activation_alpha", act.params[0]);
        if (rc == FERRY_OK && act.n_params > 1)
            rc = fy_node_attr_set_float(gn, "activation_beta", act.params[1]);
        if (rc == FERRY_OK) rc = fy_node_set_outputs(gn, 1, &y);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        fy_rw_kill(rw, ai);
        done++;
    }
    return done;
}
