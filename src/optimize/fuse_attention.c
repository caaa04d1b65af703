/* fuse_attention.c — the RUNTIME-level pass that turns scaled dot-product attention, as
 * exporters write it, into one ai.ferry FusedAttention node (src/ops/attention.c):
 *
 *   [Transpose] → [Div|Mul by a scalar] → MatMul ← [Transpose] (keys)
 *                                           ↓
 *                                        Softmax (last axis)
 *                                           ↓
 *                   [Transpose] (values) → MatMul → [Transpose]
 *
 * Every bracketed node is absorbed when it is the only reader of what it reads: the scale
 * becomes an attribute and the transposes (PyTorch's [1,0,2] and [1,2,0] around multi-head
 * attention) become the kernel's layouts. The result only ferry runs, so `ferry optimize` never
 * writes it (level RUNTIME is for loading). */
#include <string.h>

#include "optimize/pass_impl.h"

/* The node producing v when it is a usable op whose output only `reader` reads; else -1. */
static int sole_producer(const fy_rewrite *rw, int v, int reader, const char *op)
{
    int p = fy_rw_producer(rw, v);
    if (p < 0 || !fy_rw_usable(rw, p) || fy_rw_sole_consumer(rw, v, NULL) != reader) return -1;
    const fy_node *n = &rw->g->nodes[p];
    return fy_node_is(n, op) && n->n_outputs == 1 ? p : -1;
}

static bool perm_is(const fy_node *n, int64_t a, int64_t b, int64_t c)
{
    const fy_attr *p = fy_node_attr(n, "perm");
    return p && p->type == FY_ATTR_INTS && p->n == 3 && p->ints[0] == a && p->ints[1] == b &&
           p->ints[2] == c;
}

/* A float32 value of known rank 3. */
static bool rank3_float(const fy_rewrite *rw, int v)
{
    return v >= 0 && rw->g->values[v].type.rank == 3 && fy_rw_dtype(rw, v) == FERRY_DTYPE_F32;
}

static ferry_status fuse_at(fy_rewrite *rw, int sm, bool *done)
{
    fy_graph *g = rw->g;
    *done = false;
    const fy_node *smn = &g->nodes[sm];
    const fy_attr *ax = fy_node_attr(smn, "axis");
    int64_t axis = ax ? ax->i : (smn->opset >= 13 ? -1 : 1);
    int scores = fy_node_in(smn, 0);
    if (!rank3_float(rw, scores) || (axis != -1 && axis != 2)) return FERRY_OK;
    int qk = sole_producer(rw, scores, sm, "MatMul");
    int probs = smn->outputs[0];
    int pv = fy_rw_sole_consumer(rw, probs, NULL);
    if (qk < 0 || pv < 0 || !fy_rw_usable(rw, pv) || !fy_node_is(&g->nodes[pv], "MatMul") ||
        fy_node_in(&g->nodes[pv], 0) != probs)
        return FERRY_OK;

    /* queries, with an optional scale and an optional [1,0,2] transpose before it */
    int q = fy_node_in(&g->nodes[qk], 0), reader = qk, kill[5] = {-1, -1, -1, -1, -1};
    double scale = 1, c;
    int sc = sole_producer(rw, q, qk, "Div");
    if (sc < 0) sc = sole_producer(rw, q, qk, "Mul");
    if (sc >= 0 && fy_rw_const_scalar(rw, fy_node_in(&g->nodes[sc], 1), &c) && c != 0) {
        scale = fy_node_is(&g->nodes[sc], "Div") ? 1 / c : c;
        q = fy_node_in(&g->nodes[sc], 0), reader = sc, kill[0] = sc;
    }
    int q_sf = 0, t = sole_producer(rw, q, reader, "Transpose");
    if (t >= 0 && perm_is(&g->nodes[t], 1, 0, 2))
        q = fy_node_in(&g->nodes[t], 0), q_sf = 1, kill[1] = t;

    /* keys: Kᵀ itself, or K [N,S,D] / [S,N,D] behind the transpose that made Kᵀ */
    int key = fy_node_in(&g->nodes[qk], 1), k_layout = 0;
    t = sole_producer(rw, key, qk, "Transpose");
    if (t >= 0 && (perm_is(&g->nodes[t], 0, 2, 1) || perm_is(&g->nodes[t], 1, 2, 0))) {
        k_layout = perm_is(&g->nodes[t], 0, 2, 1) ? 1 : 2;
        key = fy_node_in(&g->nodes[t], 0), kill[2] = t;
    }

    int val = fy_node_in(&g->nodes[pv], 1), v_sf = 0;
    t = sole_producer(rw, val, pv, "Transpose");
    if (t >= 0 && perm_is(&g->nodes[t], 1, 0, 2)) val = fy_node_in(&g->nodes[t], 0), v_sf = 1, kill[3] = t;

    /* the output, and a [1,0,2] transpose after it */
    int y = g->nodes[pv].outputs[0], last = pv, o_sf = 0;
    int after = fy_rw_sole_consumer(rw, y, NULL);
    if (after >= 0 && fy_rw_usable(rw, after) && fy_node_is(&g->nodes[after], "Transpose") &&
        perm_is(&g->nodes[after], 1, 0, 2)) {
        kill[4] = pv, last = after, o_sf = 1;
        y = g->nodes[after].outputs[0];
    }
    if (!rank3_float(rw, q) || !rank3_float(rw, key) || !rank3_float(rw, val)) return FERRY_OK;

    fy_rw_kill(rw, qk);
    fy_rw_kill(rw, sm);
    for (int i = 0; i < 5; i++)
        if (kill[i] >= 0) fy_rw_kill(rw, kill[i]);
    FY_CHECK(fy_rw_remake(rw, last, "ai.ferry", "FusedAttention", 1, "_attention"));
    fy_node *n = &g->nodes[last];
    fy_node_attrs_clear(n);
    int in[3] = {q, key, val};
    FY_CHECK(fy_node_set_inputs(n, 3, in));
    FY_CHECK(fy_node_set_outputs(n, 1, &y));
    FY_CHECK(fy_node_attr_set_float(n, "scale", (float)scale));
    FY_CHECK(fy_node_attr_set_int(n, "q_seq_first", q_sf));
    FY_CHECK(fy_node_attr_set_int(n, "k_layout", k_layout));
    FY_CHECK(fy_node_attr_set_int(n, "v_seq_first", v_sf));
    FY_CHECK(fy_node_attr_set_int(n, "out_seq_first", o_sf));
    *done = true;
    return FERRY_OK;
}

int fy_pass_fuse_attention(fy_rewrite *rw)
{
    int done = 0;
    for (int i = 0; i < rw->n_nodes; i++) {
        const fy_node *n = &rw->g->nodes[i];
        if (!fy_rw_usable(rw, i) || !fy_node_is(n, "Softmax") || n->n_outputs != 1) continue;
        bool ok;
        ferry_status rc = fuse_at(rw, i, &ok);
        if (rc != FERRY_OK) {
            rw->error = rc;
            return done;
        }
        done += ok;
    }
    return done;
}
