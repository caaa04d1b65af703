/* fuse_transformer.c — the ALL-level passes: the decomposed LayerNorm that PyTorch exports
 * below opset 17 becomes one LayerNormalization node, and the erf form of GELU becomes
 * com.microsoft Gelu. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optimize/pass_impl.h"

/* Input of binary node n that is not v (n reads v at exactly one of its two slots). */
static int other_input(const fy_node *n, int v)
{
    if (n->n_inputs != 2) return -1;
    if (n->inputs[0] == v && n->inputs[1] != v) return n->inputs[1];
    if (n->inputs[1] == v && n->inputs[0] != v) return n->inputs[0];
    return -1;
}

/* The single usable node reading v, if it is op (ONNX domain) with one output. */
static int next_node(const fy_rewrite *rw, int v, const char *op)
{
    int c = fy_rw_sole_consumer(rw, v, NULL);
    if (c < 0 || !fy_rw_usable(rw, c)) return -1;
    const fy_node *n = &rw->g->nodes[c];
    if (!fy_node_is(n, op) || n->n_outputs != 1 || n->outputs[0] < 0) return -1;
    return c;
}

static bool near(double v, double want, double rel) { return fabs(v - want) <= rel * fabs(want); }

/* ---- LayerNormalization ------------------------------------------------------------------ */

/* ReduceMean's axes as ints (attribute before opset 18, constant input from 18); count or -1.
 * Also requires keepdims (the default) so that the result broadcasts back. */
static int reduce_axes(const fy_rewrite *rw, const fy_node *n, int64_t *axes)
{
    const fy_attr *kd = fy_node_attr(n, "keepdims");
    if (kd && kd->type == FY_ATTR_INT && kd->i == 0) return -1;
    if (n->opset >= 18) {
        const fy_value *t = fy_rw_const(rw, fy_node_in(n, 1));
        if (!t || t->rank != 1 || t->count < 1 || t->count > FERRY_MAX_RANK) return -1;
        for (int64_t i = 0; i < t->count; i++) axes[i] = fy_tensor_get_i64(t, i);
        return (int)t->count;
    }
    const fy_attr *a = fy_node_attr(n, "axes");
    if (!a || a->type != FY_ATTR_INTS || a->n < 1 || a->n > FERRY_MAX_RANK) return -1;
    memcpy(axes, a->ints, sizeof(int64_t) * a->n);
    return (int)a->n;
}

/* The axis LayerNormalization takes for reduce axes that must be the trailing ones of a rank
 * `rank` tensor (rank < 0: unknown, then the axes must be negative); 1 on success. */
static bool trailing_axis(const int64_t *axes, int n, int rank, int64_t *axis)
{
    int64_t norm[FERRY_MAX_RANK];
    for (int i = 0; i < n; i++) {
        norm[i] = axes[i];
        if (norm[i] >= 0) {
            if (rank < 0) return false;
            norm[i] -= rank;
        }
        if (rank >= 0 && norm[i] < -rank) return false;
    }
    /* sorted, they must be -n .. -1 */
    for (int want = -n; want < 0; want++) {
        bool found = false;
        for (int i = 0; i < n; i++) found |= norm[i] == want;
        if (!found) return false;
    }
    *axis = -n;
    return true;
}

/* A scale/bias constant that LayerNormalization can take for x's trailing n_norm dims: float32,
 * of rank <= n_norm, each dim equal to x's (known) dim or 1. */
static bool fits_norm(const fy_value *p, const fy_type_info *xt, int n_norm)
{
    if (!p || p->dtype != FERRY_DTYPE_F32 || p->rank > n_norm || xt->rank < n_norm) return false;
    for (int i = 0; i < p->rank; i++) {
        int64_t xd = xt->dims[xt->rank - p->rank + i];
        if (xd < 0 || (p->dims[i] != xd && p->dims[i] != 1)) return false;
    }
    return true;
}

static ferry_status fuse_layernorm_at(fy_rewrite *rw, int r1, bool *done)
{
    fy_graph *g = rw->g;
    *done = false;
    const fy_node *n1 = &g->nodes[r1];
    int x = fy_node_in(n1, 0);
    int64_t ax1[FERRY_MAX_RANK], ax2[FERRY_MAX_RANK], axis;
    int na = reduce_axes(rw, n1, ax1);
    const fy_type_info *xt = &g->values[x].type;
    if (x < 0 || na < 0 || fy_rw_dtype(rw, x) != FERRY_DTYPE_F32 || xt->kind != FERRY_VALUE_TENSOR)
        return FERRY_OK;
    if (!trailing_axis(ax1, na, xt->rank, &axis)) return FERRY_OK;
    /* d = x - mean */
    int mean = n1->outputs[0];
    int sub = next_node(rw, mean, "Sub");
    if (sub < 0 || g->nodes[sub].inputs[0] != x || g->nodes[sub].inputs[1] != mean) return FERRY_OK;
    int d = g->nodes[sub].outputs[0];
    if (fy_rw_is_output(rw, d) || fy_rw_n_uses(rw, d) != 2) return FERRY_OK;
    int pw = -1, dv = -1;
    for (int u = rw->use_start[d]; u < rw->use_start[d + 1]; u++) {
        int ni = rw->uses[u].node;
        if (!fy_rw_usable(rw, ni) || rw->uses[u].slot != 0) return FERRY_OK;
        if (fy_node_is(&g->nodes[ni], "Pow")) pw = ni;
        else if (fy_node_is(&g->nodes[ni], "Div")) dv = ni;
    }
    double v;
    if (pw < 0 || dv < 0 || !fy_rw_const_scalar(rw, fy_node_in(&g->nodes[pw], 1), &v) || v != 2.0)
        return FERRY_OK;
    /* var = mean(d^2); s = sqrt(var + eps); n = d / s */
    int r2 = next_node(rw, g->nodes[pw].outputs[0], "ReduceMean");
    if (r2 < 0 || reduce_axes(rw, &g->nodes[r2], ax2) != na) return FERRY_OK;
    int64_t axis2;
    if (!trailing_axis(ax2, na, xt->rank, &axis2) || axis2 != axis) return FERRY_OK;
    int add = next_node(rw, g->nodes[r2].outputs[0], "Add");
    double eps;
    if (add < 0 ||
        !fy_rw_const_scalar(rw, other_input(&g->nodes[add], g->nodes[r2].outputs[0]), &eps) ||
        !(eps >= 0))
        return FERRY_OK;
    int sq = next_node(rw, g->nodes[add].outputs[0], "Sqrt");
    if (sq < 0 || fy_rw_sole_consumer(rw, g->nodes[sq].outputs[0], NULL) != dv ||
        g->nodes[dv].inputs[1] != g->nodes[sq].outputs[0] || g->nodes[dv].n_outputs != 1)
        return FERRY_OK;
    /* optional affine: y = n * gamma + beta */
    int last = dv, y = g->nodes[dv].outputs[0], gamma = -1, beta = -1, mul_used = -1;
    int mul = next_node(rw, y, "Mul");
    if (mul >= 0 && fits_norm(fy_rw_const(rw, other_input(&g->nodes[mul], y)), xt, na)) {
        gamma = other_input(&g->nodes[mul], y);
        mul_used = mul;
        last = mul;
        y = g->nodes[mul].outputs[0];
        int badd = next_node(rw, y, "Add");
        if (badd >= 0 && fits_norm(fy_rw_const(rw, other_input(&g->nodes[badd], y)), xt, na)) {
            beta = other_input(&g->nodes[badd], y);
            last = badd;
            y = g->nodes[badd].outputs[0];
        }
    }
    if (gamma < 0) { /* LayerNormalization requires a scale: ones over the normalized dims */
        if (xt->rank < na) return FERRY_OK;
        int64_t dims[FERRY_MAX_RANK];
        for (int i = 0; i < na; i++) {
            dims[i] = xt->dims[xt->rank - na + i];
            if (dims[i] < 0) return FERRY_OK;
        }
        fy_value *ones;
        FY_CHECK(fy_tensor_new(FERRY_DTYPE_F32, na, dims, &ones));
        for (int64_t i = 0; i < ones->count; i++) ((float *)ones->data)[i] = 1.0f;
        char base[512];
        snprintf(base, sizeof base, "%s_scale", g->nodes[r1].name);
        FY_CHECK(fy_rw_add_init(rw, base, ones, &gamma));
    }
    int chain[] = {r1, sub, pw, r2, add, sq, dv, mul_used};
    for (int i = 0; i < 8; i++)
        if (chain[i] >= 0 && chain[i] != last) fy_rw_kill(rw, chain[i]);
    fy_node *ln = &g->nodes[last];
    int ins[3] = {x, gamma, beta};
    int opset = g->nodes[last].opset < 17 ? 17 : g->nodes[last].opset;
    FY_CHECK(fy_rw_remake(rw, last, "", "LayerNormalization", opset, "_layernorm"));
    fy_node_attrs_clear(ln);
    FY_CHECK(fy_node_set_inputs(ln, beta >= 0 ? 3 : 2, ins));
    FY_CHECK(fy_node_set_outputs(ln, 1, &y));
    FY_CHECK(fy_node_attr_set_int(ln, "axis", axis));
    FY_CHECK(fy_node_attr_set_float(ln, "epsilon", (float)eps));
    *done = true;
    return FERRY_OK;
}

int fy_pass_fuse_layernorm(fy_rewrite *rw)
{
    int done = 0;
    for (int i = 0; i < rw->n_nodes; i++) {
        if (!fy_rw_usable(rw, i) || !fy_node_is(&rw->g->nodes[i], "ReduceMean") ||
            rw->g->nodes[i].n_outputs != 1)
            continue;
        bool ok;
        ferry_status rc = fuse_layernorm_at(rw, i, &ok);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        done += ok;
    }
    return done;
}

/* ---- GELU -------------------------------------------------------------------------------- */

/* From Erf node e: x / sqrt(2) (or x * 1/sqrt(2)) feeds it, 1 + erf follows; then the result
 * is x * (1 + erf) * 0.5 in one of the three orders exporters write. */
static ferry_status fuse_gelu_at(fy_rewrite *rw, int e, bool *done)
{
    fy_graph *g = rw->g;
    *done = false;
    int t = fy_node_in(&g->nodes[e], 0);
    int di = fy_rw_producer(rw, t);
    if (di < 0 || !fy_rw_usable(rw, di) || fy_rw_sole_consumer(rw, t, NULL) != e) return FERRY_OK;
    const fy_node *dn = &g->nodes[di];
    double c;
    int x = fy_node_in(dn, 0);
    if (fy_node_is(dn, "Div") && dn->n_inputs == 2) {
        if (!fy_rw_const_scalar(rw, dn->inputs[1], &c) || !near(c, M_SQRT2, 1e-4)) return FERRY_OK;
    } else if (fy_node_is(dn, "Mul") && dn->n_inputs == 2) {
        x = -1;
        for (int s = 0; s < 2 && x < 0; s++)
            if (fy_rw_const_scalar(rw, dn->inputs[s], &c) && near(c, M_SQRT1_2, 1e-4))
                x = dn->inputs[1 - s];
    } else {
        return FERRY_OK;
    }
    if (x < 0 || fy_rw_dtype(rw, x) != FERRY_DTYPE_F32) return FERRY_OK;
    int erf_out = g->nodes[e].outputs[0];
    int ai = next_node(rw, erf_out, "Add");
    if (ai < 0 || !fy_rw_const_scalar(rw, other_input(&g->nodes[ai], erf_out), &c) || c != 1.0)
        return FERRY_OK;
    int p = g->nodes[ai].outputs[0]; /* 1 + erf(x / sqrt 2) */
    int m1 = next_node(rw, p, "Mul");
    if (m1 < 0) return FERRY_OK;
    int q = other_input(&g->nodes[m1], p), m1_out = g->nodes[m1].outputs[0];
    int kill2 = -1, last = -1;
    if (q == x) { /* (x * p) * 0.5 */
        int m2 = next_node(rw, m1_out, "Mul");
        if (m2 < 0 || !fy_rw_const_scalar(rw, other_input(&g->nodes[m2], m1_out), &c) || c != 0.5)
            return FERRY_OK;
        last = m2;
    } else if (fy_rw_const_scalar(rw, q, &c)) { /* x * (p * 0.5) */
        if (c != 0.5) return FERRY_OK;
        int m2 = next_node(rw, m1_out, "Mul");
        if (m2 < 0 || other_input(&g->nodes[m2], m1_out) != x) return FERRY_OK;
        last = m2;
    } else { /* (x * 0.5) * p */
        int h = fy_rw_producer(rw, q);
        if (h < 0 || !fy_rw_usable(rw, h) || !fy_node_is(&g->nodes[h], "Mul") ||
            fy_rw_sole_consumer(rw, q, NULL) != m1 || other_input(&g->nodes[h], x) < 0 ||
            !fy_rw_const_scalar(rw, other_input(&g->nodes[h], x), &c) || c != 0.5)
            return FERRY_OK;
        kill2 = h;
        last = m1;
    }
    int y = g->nodes[last].outputs[0];
    int chain[] = {di, e, ai, m1, kill2};
    for (int i = 0; i < 5; i++)
        if (chain[i] >= 0 && chain[i] != last) fy_rw_kill(rw, chain[i]);
    fy_node *gn = &g->nodes[last];
    FY_CHECK(fy_rw_remake(rw, last, "com.microsoft", "Gelu", 1, "_gelu"));
    fy_node_attrs_clear(gn);
    FY_CHECK(fy_node_set_inputs(gn, 1, &x));
    FY_CHECK(fy_node_set_outputs(gn, 1, &y));
    *done = true;
    return FERRY_OK;
}

int fy_pass_fuse_gelu(fy_rewrite *rw)
{
    int done = 0;
    for (int i = 0; i < rw->n_nodes; i++) {
        const fy_node *n = &rw->g->nodes[i];
        if (!fy_rw_usable(rw, i) || !fy_node_is(n, "Erf") || n->n_outputs != 1 || n->n_inputs != 1)
            continue;
        bool ok;
        ferry_status rc = fuse_gelu_at(rw, i, &ok);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        done += ok;
    }
    return done;
}
