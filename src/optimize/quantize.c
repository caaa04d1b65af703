/* quantize.c — int8 quantization of a model's IR, written as standard ONNX so ONNX Runtime runs
 * it too. Static mode is ORT's QDQ format: QuantizeLinear/DequantizeLinear pairs on the
 * activations around Conv/Gemm/MatMul (and through MaxPool/Flatten/Reshape and residual Adds,
 * so int8 flows between layers without requantizing), weights stored int8 per output channel
 * behind a DequantizeLinear, biases int32. Dynamic mode rewrites MatMul/Gemm into
 * DynamicQuantizeLinear + MatMulInteger. fuse_qdq.c turns the QDQ patterns back into int8
 * kernels when ferry loads the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "ops/kernel.h"
#include "optimize/pass_impl.h"
#include "optimize/passes.h"
#include "optimize/quantize_impl.h"
#include "runtime/bind.h"

/* DequantizeLinear's axis attribute (per-channel weights) needs opset 13. */
#define QDQ_AXIS_OPSET 13
/* Float layer outputs kept for the SQNR comparison, at most (bytes). */
#define SQNR_BUDGET ((int64_t)96 << 20)

bool fy_cpu_has_vnni(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    if (c & (1u << 11)) return true; /* AVX512_VNNI */
    __cpuid_count(7, 1, a, b, c, d);
    return (a & (1u << 4)) != 0; /* AVX_VNNI */
#else
    return false;
#endif
}

void fy_quant_report_free(fy_quant_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_layers; i++) {
        free(r->layers[i].node);
        free(r->layers[i].op);
    }
    free(r->layers);
    memset(r, 0, sizeof *r);
}

/* ---- layers ------------------------------------------------------------------------------ */

enum { K_OTHER = 0, K_CONV, K_GEMM, K_MATMUL };

typedef struct qlayer {
    int node;
    int kind;
    int trans_b;  /* Gemm */
    int keep;     /* kept in float */
} qlayer;

static int64_t attr_i(const fy_node *n, const char *name, int64_t def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_INT ? a->i : def;
}

static float attr_f(const fy_node *n, const char *name, float def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_FLOAT ? a->f : def;
}

static bool is_f32_const(const fy_rewrite *rw, int v, int rank)
{
    const fy_value *t = fy_rw_const(rw, v);
    return t && t->dtype == FERRY_DTYPE_F32 && !t->layout && (rank < 0 || t->rank == rank);
}

/* Which quantizable layer node i is (K_OTHER: none). */
static int layer_kind(const fy_rewrite *rw, int i, int dynamic, int *trans_b)
{
    const fy_node *n = &rw->g->nodes[i];
    *trans_b = 0;
    if (n->n_outputs < 1 || fy_rw_dtype(rw, fy_node_in(n, 0)) != FERRY_DTYPE_F32 ||
        fy_rw_const(rw, fy_node_in(n, 0)))
        return K_OTHER;
    if (!dynamic && fy_node_is(n, "Conv") && n->n_inputs >= 2) {
        const fy_value *w = fy_rw_const(rw, fy_node_in(n, 1));
        if (!w || w->dtype != FERRY_DTYPE_F32 || w->rank < 3 || w->rank > 5) return K_OTHER;
        int b = fy_node_in(n, 2);
        if (b >= 0 && !(is_f32_const(rw, b, 1) && fy_rw_const(rw, b)->count == w->dims[0]))
            return K_OTHER;
        return K_CONV;
    }
    if (fy_node_is(n, "Gemm") && n->n_inputs >= 2) {
        if (attr_i(n, "transA", 0) != 0 || attr_f(n, "alpha", 1) != 1 || attr_f(n, "beta", 1) != 1)
            return K_OTHER;
        if (!is_f32_const(rw, fy_node_in(n, 1), 2)) return K_OTHER;
        const fy_value *w = fy_rw_const(rw, fy_node_in(n, 1));
        *trans_b = attr_i(n, "transB", 0) != 0;
        int64_t m = *trans_b ? w->dims[0] : w->dims[1];
        int c = fy_node_in(n, 2);
        if (c >= 0 && !(is_f32_const(rw, c, -1) && fy_rw_const(rw, c)->count == m &&
                        fy_rw_const(rw, c)->rank <= 2))
            return K_OTHER;
        return K_GEMM;
    }
    if (fy_node_is(n, "MatMul") && n->n_inputs == 2 && is_f32_const(rw, fy_node_in(n, 1), 2))
        return K_MATMUL;
    return K_OTHER;
}

static bool kept_by_name(const fy_quant_config *c, const char *name)
{
    for (int i = 0; i < c->n_keep_float; i++)
        if (c->keep_float[i] && strcmp(c->keep_float[i], name) == 0) return true;
    return false;
}

/* ---- small tensors ----------------------------------------------------------------------- */

static ferry_status new_init(fy_rewrite *rw, const char *base, const char *suffix,
                             ferry_dtype dt, int rank, const int64_t *dims, fy_value **t, int *id)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    FY_CHECK(fy_tensor_zeros(dt, rank, dims, t));
    ferry_status rc = fy_rw_add_init(rw, name, *t, id);
    if (rc != FERRY_OK) fy_value_unref(*t);
    return rc;
}

static ferry_status scalar_f32(fy_rewrite *rw, const char *base, const char *suffix, float v,
                               int *id)
{
    fy_value *t;
    FY_CHECK(new_init(rw, base, suffix, FERRY_DTYPE_F32, 0, NULL, &t, id));
    ((float *)t->data)[0] = v;
    return FERRY_OK;
}

static ferry_status scalar_u8(fy_rewrite *rw, const char *base, const char *suffix, uint8_t v,
                              int *id)
{
    fy_value *t;
    FY_CHECK(new_init(rw, base, suffix, FERRY_DTYPE_U8, 0, NULL, &t, id));
    ((uint8_t *)t->data)[0] = v;
    return FERRY_OK;
}

static int default_opset(const struct ferry_model *m)
{
    for (int i = 0; i < m->n_opsets; i++)
        if (fy_domain_is_onnx(m->opset_domains[i])) return (int)m->opset_versions[i];
    return 13;
}

/* ---- activation ranges ------------------------------------------------------------------- */

typedef struct qparam {
    float scale;
    uint8_t zp;
} qparam;

/* u8 asymmetric parameters of a range (widened to hold 0, as ONNX requires zero be exact). */
static qparam qparam_of(fy_range r)
{
    double lo = fmin(r.lo, 0), hi = fmax(r.hi, 0);
    qparam p = {.scale = (float)((hi - lo) / 255.0), .zp = 0};
    if (!(p.scale > 0) || !isfinite(p.scale)) {
        p.scale = 1.0f;
        return p;
    }
    double z = rint(-lo / p.scale);
    p.zp = (uint8_t)(z < 0 ? 0 : z > 255 ? 255 : z);
    return p;
}

/* ---- which activations become int8 ------------------------------------------------------- */

enum { N_OTHER = 0, N_LAYER, N_ADD, N_PASS };

typedef struct marks {
    unsigned char *on; /* per value: quantized */
    int *share;        /* per value: root whose parameters it shares, -1: own */
    unsigned char *nk; /* per node: N_* */
} marks;

static bool is_pass_op(const fy_node *n)
{
    static const char *const ops[] = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze",
                                      "Unsqueeze"};
    if (n->n_outputs != 1 && !(fy_node_is(n, "MaxPool") && (n->n_outputs == 1 ||
                                                            n->outputs[1] < 0)))
        return false;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (fy_node_is(n, ops[i])) return true;
    return false;
}

/* Every use of v reads it as int8 in the quantized graph (a layer's activation, a residual
 * Add, a pass-through op's data input). */
static bool int8_consumers(const fy_rewrite *rw, const marks *mk, int v)
{
    if (v < 0 || fy_rw_is_output(rw, v)) return false;
    int start = rw->use_start[v], end = rw->use_start[v + 1];
    if (start == end) return false;
    for (int u = start; u < end; u++) {
        const fy_use *use = &rw->uses[u];
        if (use->slot < 0) return false;
        int k = mk->nk[use->node];
        if (k == N_ADD) continue;
        if ((k == N_LAYER || k == N_PASS) && use->slot == 0) continue;
        return false;
    }
    return true;
}

/* The tensor a layer's int8 output is: after a sole following Relu (folded into the range). */
static int after_relu(const fy_rewrite *rw, int v)
{
    int slot, c = fy_rw_sole_consumer(rw, v, &slot);
    if (c >= 0 && fy_node_is(&rw->g->nodes[c], "Relu") && rw->g->nodes[c].n_outputs == 1)
        return rw->g->nodes[c].outputs[0];
    return v;
}

static void mark(marks *mk, int v, int share)
{
    if (v < 0 || mk->on[v]) return;
    mk->on[v] = 1;
    mk->share[v] = share;
}

static int root_of(const marks *mk, int v)
{
    while (mk->share[v] >= 0) v = mk->share[v];
    return v;
}

static bool is_activation(const fy_rewrite *rw, int v)
{
    return v >= 0 && !fy_rw_const(rw, v) && fy_rw_dtype(rw, v) == FERRY_DTYPE_F32;
}

static void mark_graph(const fy_rewrite *rw, marks *mk)
{
    const fy_graph *g = rw->g;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < g->n_nodes; i++) {
            const fy_node *n = &g->nodes[i];
            int k = mk->nk[i];
            if (k == N_LAYER) {
                mark(mk, fy_node_in(n, 0), -1);
                int out = after_relu(rw, n->outputs[0]);
                if (int8_consumers(rw, mk, out)) mark(mk, out, -1);
            } else if (k == N_ADD) {
                int a = fy_node_in(n, 0), b = fy_node_in(n, 1);
                if (!(mk->on[a] || mk->on[b])) continue;
                mark(mk, a, -1);
                mark(mk, b, -1);
                int out = after_relu(rw, n->outputs[0]);
                if (int8_consumers(rw, mk, out)) mark(mk, out, -1);
            } else if (k == N_PASS) {
                int x = fy_node_in(n, 0), out = n->outputs[0];
                if (mk->on[x] && int8_consumers(rw, mk, out)) mark(mk, out, root_of(mk, x));
            }
        }
}

/* ---- weights ----------------------------------------------------------------------------- */

/* Quantize w symmetrically to int8 in [-qmax, qmax]: per channel along axis (or per tensor
 * when axis < 0). scale/zp are 1-D [channels] per channel, scalars per tensor. */
static ferry_status quant_weights(const fy_value *w, int axis, int qmax, fy_value **wq,
                                  fy_value **ws, fy_value **wz)
{
    *wq = *ws = *wz = NULL;
    int64_t ch = axis >= 0 ? w->dims[axis] : 1, inner = 1;
    for (int d = axis + 1; axis >= 0 && d < w->rank; d++) inner *= w->dims[d];
    int srank = axis >= 0 ? 1 : 0;
    ferry_status rc = fy_tensor_new(FERRY_DTYPE_I8, w->rank, w->dims, wq);
    if (rc == FERRY_OK) rc = fy_tensor_new(FERRY_DTYPE_F32, srank, &ch, ws);
    if (rc == FERRY_OK) rc = fy_tensor_zeros(FERRY_DTYPE_I8, srank, &ch, wz);
    if (rc != FERRY_OK) {
        fy_value_unref(*wq), fy_value_unref(*ws), fy_value_unref(*wz);
        *wq = *ws = *wz = NULL;
        return rc;
    }
    const float *src = w->data;
    float *sc = (*ws)->data;
    int8_t *q = (*wq)->data;
    for (int64_t c = 0; c < ch; c++) sc[c] = 0;
    for (int64_t i = 0; i < w->count; i++) {
        int64_t c = axis >= 0 ? (i / inner) % ch : 0;
        float a = fabsf(src[i]);
        if (a > sc[c] && isfinite(a)) sc[c] = a;
    }
    for (int64_t c = 0; c < ch; c++) sc[c] = sc[c] > 0 ? sc[c] / (float)qmax : 1.0f;
    for (int64_t i = 0; i < w->count; i++) {
        int64_t c = axis >= 0 ? (i / inner) % ch : 0;
        double v = rint((double)src[i] / sc[c]);
        v = v < -qmax ? -qmax : v > qmax ? qmax : v;
        q[i] = (int8_t)(v == v ? v : 0);
    }
    return FERRY_OK;
}

/* ---- the static (QDQ) rewrite ------------------------------------------------------------ */

typedef struct qctx {
    fy_rewrite *rw;
    const fy_quant_config *c;
    int opset;
    int per_channel;
    int qmax;
    qparam *params; /* per value (activations) */
    int *dq;        /* per value: the DequantizeLinear output that replaced it, -1 */
} qctx;

static ferry_status add_node(fy_rewrite *rw, const char *op, int opset, const char *name,
                             int n_in, const int *in, int out, int *index)
{
    return fy_rw_add_node(rw, "", op, opset, name, n_in, in, 1, &out, index);
}

/* v → QuantizeLinear → DequantizeLinear → (every former reader of v). */
static ferry_status insert_qdq(qctx *q, int v)
{
    fy_rewrite *rw = q->rw;
    char base[400];
    snprintf(base, sizeof base, "%s", rw->g->values[v].name);
    qparam p = q->params[v];
    int s, z, vq, vdq, idx;
    char name[512];
    FY_CHECK(scalar_f32(rw, base, "_scale", p.scale, &s));
    FY_CHECK(scalar_u8(rw, base, "_zero_point", p.zp, &z));
    snprintf(name, sizeof name, "%s_quantized", base);
    FY_CHECK(fy_rw_add_value(rw, name, &vq));
    snprintf(name, sizeof name, "%s_dequantized", base);
    FY_CHECK(fy_rw_add_value(rw, name, &vdq));
    fy_rw_replace_uses(rw, v, vdq);
    int qin[3] = {v, s, z}, dqin[3] = {vq, s, z};
    snprintf(name, sizeof name, "%s_QuantizeLinear", base);
    FY_CHECK(add_node(rw, "QuantizeLinear", q->opset, name, 3, qin, vq, &idx));
    snprintf(name, sizeof name, "%s_DequantizeLinear", base);
    FY_CHECK(add_node(rw, "DequantizeLinear", q->opset, name, 3, dqin, vdq, &idx));
    q->dq[v] = vdq;
    return FERRY_OK;
}

/* Adds a constant behind a DequantizeLinear: the n tensors (quantized values, scale[, zero
 * point]) become initializers <base>_<what>_quantized/_scale/_zero_point, read by a new
 * DequantizeLinear (axis attribute unless axis < 0) whose output value <base>_<what>_dequantized
 * is *out. The graph takes every tensor; those not added are released on failure. */
static ferry_status add_dequantize(fy_rewrite *rw, const char *base, const char *what, int n,
                                   fy_value **parts, int axis, int opset, int *out)
{
    static const char *const part[3] = {"quantized", "scale", "zero_point"};
    char name[512];
    int in[3], idx;
    ferry_status rc = FERRY_OK;
    for (int i = 0; i < n; i++) {
        if (rc != FERRY_OK) {
            fy_value_unref(parts[i]);
            continue;
        }
        snprintf(name, sizeof name, "%s_%s_%s", base, what, part[i]);
        rc = fy_rw_add_init(rw, name, parts[i], &in[i]);
        if (rc != FERRY_OK) fy_value_unref(parts[i]);
    }
    FY_CHECK(rc);
    snprintf(name, sizeof name, "%s_%s_dequantized", base, what);
    FY_CHECK(fy_rw_add_value(rw, name, out));
    snprintf(name, sizeof name, "%s_%s_DequantizeLinear", base, what);
    FY_CHECK(add_node(rw, "DequantizeLinear", opset, name, n, in, *out, &idx));
    if (axis >= 0) FY_CHECK(fy_node_attr_set_int(&rw->g->nodes[idx], "axis", axis));
    return FERRY_OK;
}

/* The layer's weights as int8 behind a DequantizeLinear, and its bias as int32 (scale = input
 * scale x weight scale, as ONNX Runtime's QDQ Conv/Gemm fusions expect). */
static ferry_status quantize_layer(qctx *q, const qlayer *L, int x_root)
{
    fy_rewrite *rw = q->rw;
    fy_node *n = &rw->g->nodes[L->node];
    char base[400];
    snprintf(base, sizeof base, "%s", n->name);
    int w = fy_node_in(n, 1), bias = n->n_inputs > 2 ? fy_node_in(n, 2) : -1;
    const fy_value *wf = fy_rw_const(rw, w);
    /* the output channel: dim 0 of Conv and transposed-Gemm weights, dim 1 of [K, N] ones */
    int axis = L->kind == K_CONV || (L->kind == K_GEMM && L->trans_b) ? 0 : 1;
    if (!q->per_channel) axis = -1;
    fy_value *wq, *ws, *wz;
    FY_CHECK(quant_weights(wf, axis, q->qmax, &wq, &ws, &wz));
    /* ws's data stays readable: the graph holds it once it is an initializer */
    const float *wsd = ws->data;
    int wdq;
    fy_value *wparts[3] = {wq, ws, wz};
    FY_CHECK(add_dequantize(rw, base, "weight", 3, wparts, axis,
                            axis >= 0 ? QDQ_AXIS_OPSET : q->opset, &wdq));
    n = &rw->g->nodes[L->node];
    n->inputs[1] = wdq;
    /* bias → int32 when the input is quantized */
    const fy_value *bf = bias >= 0 ? fy_rw_const(rw, bias) : NULL;
    if (!bf || x_root < 0 || bf->rank != 1) return FERRY_OK;
    float xs = q->params[x_root].scale;
    int64_t m = bf->count, bdim = m;
    fy_value *bq, *bs;
    FY_CHECK(fy_tensor_new(FERRY_DTYPE_I32, 1, &bdim, &bq));
    ferry_status rc = fy_tensor_new(FERRY_DTYPE_F32, axis >= 0 ? 1 : 0, &bdim, &bs);
    if (rc != FERRY_OK) {
        fy_value_unref(bq);
        return rc;
    }
    for (int64_t c = 0; c < m; c++) {
        float s = xs * wsd[axis >= 0 ? c : 0];
        if (axis >= 0 || c == 0) ((float *)bs->data)[c] = s;
        double v = rint((double)((const float *)bf->data)[c] / s);
        v = v < -2147483647.0 ? -2147483647.0 : v > 2147483647.0 ? 2147483647.0 : v;
        ((int32_t *)bq->data)[c] = (int32_t)(v == v ? v : 0);
    }
    int bdq;
    fy_value *bparts[2] = {bq, bs};
    FY_CHECK(add_dequantize(rw, base, "bias", 2, bparts, axis >= 0 ? 0 : -1,
                            axis >= 0 ? QDQ_AXIS_OPSET : q->opset, &bdq));
    rw->g->nodes[L->node].inputs[2] = bdq;
    return FERRY_OK;
}

/* ---- dynamic rewrite --------------------------------------------------------------------- */

/* x → DynamicQuantizeLinear → MatMulInteger(x_q, W_q[K, N], x_zp, 0) → Cast → Mul(x_scale x
 * w_scale[N]) → (Add bias) → y, the layer's own output value (so its readers are unchanged). */
static ferry_status quantize_dynamic_layer(qctx *q, const qlayer *L)
{
    fy_rewrite *rw = q->rw;
    fy_node *n = &rw->g->nodes[L->node];
    char base[400], name[512];
    snprintf(base, sizeof base, "%s", n->name);
    int x = fy_node_in(n, 0), w = fy_node_in(n, 1), bias = n->n_inputs > 2 ? fy_node_in(n, 2) : -1;
    int y = n->outputs[0];
    const fy_value *wf = fy_rw_const(rw, w);
    fy_value *wt = NULL;
    if (L->kind == K_GEMM && L->trans_b) { /* store [K, N] as MatMulInteger reads it */
        int64_t d[2] = {wf->dims[1], wf->dims[0]};
        FY_CHECK(fy_tensor_new(FERRY_DTYPE_F32, 2, d, &wt));
        const float *s = wf->data;
        float *t = wt->data;
        for (int64_t i = 0; i < d[1]; i++)
            for (int64_t k = 0; k < d[0]; k++) t[k * d[1] + i] = s[i * d[0] + k];
        wf = wt;
    }
    fy_value *wq, *ws, *wz;
    ferry_status rc = quant_weights(wf, q->per_channel ? 1 : -1, q->qmax, &wq, &ws, &wz);
    fy_value_unref(wt);
    FY_CHECK(rc);
    fy_value_unref(wz); /* symmetric: b_zero_point omitted (0) */
    int iq, is, xq, xs, xz, acc, accf, sc, prod, idx;
    snprintf(name, sizeof name, "%s_weight_quantized", base);
    rc = fy_rw_add_init(rw, name, wq, &iq);
    if (rc != FERRY_OK) {
        fy_value_unref(wq), fy_value_unref(ws);
        return rc;
    }
    snprintf(name, sizeof name, "%s_weight_scale", base);
    rc = fy_rw_add_init(rw, name, ws, &is);
    if (rc != FERRY_OK) {
        fy_value_unref(ws);
        return rc;
    }
    const char *sfx[] = {"_input_quantized", "_input_scale", "_input_zero_point", "_int32",
                         "_int32_float", "_scale", "_scaled"};
    int *ids[] = {&xq, &xs, &xz, &acc, &accf, &sc, &prod};
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof name, "%s%s", base, sfx[i]);
        FY_CHECK(fy_rw_add_value(rw, name, ids[i]));
    }
    int outs[3] = {xq, xs, xz};
    snprintf(name, sizeof name, "%s_DynamicQuantizeLinear", base);
    FY_CHECK(fy_rw_add_node(rw, "", "DynamicQuantizeLinear", 11 > q->opset ? 11 : q->opset, name,
                            1, &x, 3, outs, &idx));
    int mi[3] = {xq, iq, xz};
    snprintf(name, sizeof name, "%s_MatMulInteger", base);
    FY_CHECK(add_node(rw, "MatMulInteger", q->opset, name, 3, mi, acc, &idx));
    snprintf(name, sizeof name, "%s_Cast", base);
    FY_CHECK(add_node(rw, "Cast", q->opset, name, 1, &acc, accf, &idx));
    FY_CHECK(fy_node_attr_set_int(&rw->g->nodes[idx], "to", FERRY_DTYPE_F32));
    int ms[2] = {xs, is};
    snprintf(name, sizeof name, "%s_scale_Mul", base);
    FY_CHECK(add_node(rw, "Mul", q->opset, name, 2, ms, sc, &idx));
    int mp[2] = {accf, sc};
    snprintf(name, sizeof name, "%s_output_Mul", base);
    FY_CHECK(add_node(rw, "Mul", q->opset, name, 2, mp, bias >= 0 ? prod : y, &idx));
    if (bias >= 0) {
        int ab[2] = {prod, bias};
        snprintf(name, sizeof name, "%s_bias_Add", base);
        FY_CHECK(add_node(rw, "Add", q->opset, name, 2, ab, y, &idx));
    }
    fy_rw_kill(rw, L->node);
    return FERRY_OK;
}

/* ---- driver ------------------------------------------------------------------------------ */

static int fold_bn(fy_rewrite *rw) { return fy_pass_fuse_conv_bn(rw); }

/* BASIC cleanup and BatchNormalization folded into Conv, so layers hold their real weights. */
static ferry_status prepare_float(struct ferry_model *m)
{
    FY_CHECK(fy_optimize_model(m, FY_OPT_BASIC));
    fy_rewrite rw;
    FY_CHECK(fy_rw_begin(&rw, m, m->graph));
    ferry_status rc = FERRY_OK;
    for (int round = 0; round < 4 && rc == FERRY_OK; round++) {
        int n = fold_bn(&rw);
        if (rw.error != FERRY_OK) rc = rw.error;
        else if (rw.changes) rc = fy_rw_commit(&rw);
        if (!n) break;
    }
    fy_rw_end(&rw);
    return rc;
}

/* Float outputs of the layers on the SQNR samples, kept from before the rewrite. */
typedef struct sqnr_ref {
    int n_ids;
    int *ids;
    int64_t samples;
    float **ref;   /* per layer: samples x per-sample floats */
    int64_t *per;  /* per layer: floats per sample */
    int64_t at;    /* samples seen */
    double *sig, *err;
    int compare;   /* 0: store, 1: compare */
} sqnr_ref;

static ferry_status sqnr_fn(void *user, int n_ids, fy_value *const *vals)
{
    sqnr_ref *s = user;
    int64_t b = vals[0]->rank > 0 ? vals[0]->dims[0] : 1;
    for (int i = 0; i < n_ids; i++) {
        int64_t per = b ? vals[i]->count / b : 0;
        if (!s->compare) {
            if (!s->ref[i]) {
                s->per[i] = per;
                s->ref[i] = malloc(sizeof(float) * (size_t)(per * s->samples + 1));
                if (!s->ref[i]) return fy_error(FERRY_E_NOMEM, "out of memory");
            }
            if (per != s->per[i]) return fy_error(FERRY_E_SHAPE, "layer output changed shape");
            memcpy(s->ref[i] + s->at * per, vals[i]->data, sizeof(float) * (size_t)(per * b));
        } else {
            if (per != s->per[i]) return fy_error(FERRY_E_SHAPE, "quantized layer output shape differs");
            const float *a = s->ref[i] + s->at * per, *q = vals[i]->data;
            for (int64_t j = 0; j < per * b; j++) {
                double d = (double)a[j] - q[j];
                s->sig[i] += (double)a[j] * a[j];
                s->err[i] += d * d;
            }
        }
    }
    s->at += b;
    return FERRY_OK;
}

static void sqnr_free(sqnr_ref *s)
{
    for (int i = 0; s->ref && i < s->n_ids; i++) free(s->ref[i]);
    free(s->ref), free(s->per), free(s->sig), free(s->err), free(s->ids);
    memset(s, 0, sizeof *s);
}

static ferry_status fill_report(fy_quant_report *rep, const fy_graph *g, const qlayer *L,
                                int n_layers)
{
    rep->layers = calloc((size_t)n_layers + 1, sizeof *rep->layers);
    if (!rep->layers) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < n_layers; i++) {
        fy_quant_layer *ql = &rep->layers[rep->n_layers++];
        ql->node = strdup(g->nodes[L[i].node].name);
        ql->op = strdup(g->nodes[L[i].node].op_type);
        if (!ql->node || !ql->op) return fy_error(FERRY_E_NOMEM, "out of memory");
        ql->quantized = !L[i].keep;
        if (L[i].keep) snprintf(ql->why, sizeof ql->why, "kept in float32 (asked for)");
        ql->sqnr_db = NAN;
    }
    return FERRY_OK;
}

ferry_status fy_quantize_model(struct ferry_model *m, const fy_quant_config *c,
                               fy_quant_report *rep)
{
    fy_quant_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!m || !m->graph || !c) return fy_error(FERRY_E_INVALID_ARG, "nothing to quantize");
    const fy_value *x = c->calib;
    if (!c->dynamic && (!x || x->kind != FERRY_VALUE_TENSOR || x->rank < 1 || x->dims[0] < 1 ||
                        x->dtype != FERRY_DTYPE_F32))
        return fy_error(FERRY_E_INVALID_ARG,
                        "static int8 needs float32 calibration samples [N, ...] (N >= 1)");
    FY_CHECK(prepare_float(m));
    rep->dynamic = c->dynamic;
    rep->method = c->dynamic ? NULL
                  : c->method == FY_CALIB_PERCENTILE ? "percentile"
                  : c->method == FY_CALIB_ENTROPY    ? "entropy"
                                                     : "minmax";
    rep->vnni = fy_cpu_has_vnni();
    rep->reduce_range = c->reduce_range < 0 ? !rep->vnni : c->reduce_range != 0;
    int opset = default_opset(m);
    rep->per_channel = c->per_channel && opset >= QDQ_AXIS_OPSET;
    rep->calib_samples = x ? x->dims[0] : 0;

    fy_graph *g = m->graph;
    fy_rewrite rw;
    FY_CHECK(fy_rw_begin(&rw, m, g));
    int nv = g->n_values;
    qlayer *L = calloc((size_t)g->n_nodes + 1, sizeof *L);
    marks mk = {calloc((size_t)nv + 1, 1), malloc(sizeof(int) * (size_t)(nv + 1)),
                calloc((size_t)g->n_nodes + 1, 1)};
    qparam *params = calloc((size_t)nv + 1, sizeof *params);
    int *dq = malloc(sizeof(int) * (size_t)(nv + 1));
    int *ids = malloc(sizeof(int) * (size_t)(nv + 1));
    fy_range *ranges = calloc((size_t)nv + 1, sizeof *ranges);
    sqnr_ref sq = {0};
    ferry_status rc = FERRY_OK;
    if (!L || !mk.on || !mk.share || !mk.nk || !params || !dq || !ids || !ranges)
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
    int n_layers = 0, n_ids = 0;
    for (int v = 0; rc == FERRY_OK && v < nv; v++) mk.share[v] = -1, dq[v] = -1;
    for (int i = 0; rc == FERRY_OK && i < g->n_nodes; i++) {
        int tb, k = layer_kind(&rw, i, c->dynamic, &tb);
        const fy_node *n = &g->nodes[i];
        if (k != K_OTHER) {
            L[n_layers] = (qlayer){.node = i, .kind = k, .trans_b = tb,
                                   .keep = kept_by_name(c, n->name)};
            if (!L[n_layers].keep) mk.nk[i] = N_LAYER;
            n_layers++;
        } else if (fy_node_is(n, "Add") && n->n_inputs == 2 && n->n_outputs == 1 &&
                   is_activation(&rw, fy_node_in(n, 0)) && is_activation(&rw, fy_node_in(n, 1))) {
            mk.nk[i] = N_ADD;
        } else if (is_pass_op(n)) {
            mk.nk[i] = N_PASS;
        }
    }
    if (rc == FERRY_OK) rc = fill_report(rep, g, L, n_layers);
    if (rc == FERRY_OK && !c->dynamic) mark_graph(&rw, &mk);
    for (int v = 0; rc == FERRY_OK && v < nv; v++)
        if (mk.on[v] && mk.share[v] < 0) ids[n_ids++] = v;
    fy_rw_end(&rw);

    /* float layer outputs on a few samples, for the per-layer SQNR */
    if (rc == FERRY_OK && x && n_layers > 0) {
        sq.ids = malloc(sizeof(int) * (size_t)n_layers);
        sq.ref = calloc((size_t)n_layers, sizeof *sq.ref);
        sq.per = calloc((size_t)n_layers, sizeof *sq.per);
        sq.sig = calloc((size_t)n_layers, sizeof *sq.sig);
        sq.err = calloc((size_t)n_layers, sizeof *sq.err);
        if (!sq.ids || !sq.ref || !sq.per || !sq.sig || !sq.err)
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
        int64_t per_sample = 0;
        for (int i = 0; rc == FERRY_OK && i < n_layers; i++) {
            const fy_node *n = &g->nodes[L[i].node];
            sq.ids[sq.n_ids++] = n->outputs[0];
            int64_t cnt = fy_shape_count(g->values[n->outputs[0]].type.rank > 0
                                             ? g->values[n->outputs[0]].type.rank - 1 : 0,
                                         g->values[n->outputs[0]].type.dims + 1);
            per_sample += cnt > 0 ? cnt : 4096;
        }
        int64_t batch = fy_quant_batch_size(m, c->calib_batch);
        int64_t want = per_sample > 0 ? SQNR_BUDGET / (per_sample * 4) : 64;
        want = want < 1 ? 1 : want > 256 ? 256 : want;
        want = (want + batch - 1) / batch * batch;
        sq.samples = want < x->dims[0] ? want : x->dims[0];
        fy_value *sub = NULL;
        if (rc == FERRY_OK) rc = fy_batch_view(x, 0, sq.samples, &sub);
        if (rc == FERRY_OK)
            rc = fy_quant_tap(m, sub, batch, sq.n_ids, sq.ids, NULL, sqnr_fn, &sq);
        fy_value_unref(sub);
    }
    if (rc == FERRY_OK && n_ids > 0)
        rc = fy_quant_calibrate(m, x, c->calib_batch, n_ids, ids, c->method, c->percentile,
                                c->progress, ranges);
    for (int i = 0; rc == FERRY_OK && i < n_ids; i++) params[ids[i]] = qparam_of(ranges[i]);
    for (int v = 0; rc == FERRY_OK && v < nv; v++)
        if (mk.on[v] && mk.share[v] >= 0) params[v] = params[root_of(&mk, v)];

    /* the rewrite */
    if (rc == FERRY_OK) rc = fy_rw_begin(&rw, m, g);
    else memset(&rw, 0, sizeof rw);
    qctx q = {.rw = &rw, .c = c, .opset = opset, .per_channel = rep->per_channel,
              .qmax = rep->reduce_range ? 63 : 127, .params = params, .dq = dq};
    for (int i = 0; rc == FERRY_OK && i < n_layers; i++) {
        if (L[i].keep) continue;
        if (c->dynamic) {
            if (L[i].kind != K_CONV) rc = quantize_dynamic_layer(&q, &L[i]);
            continue;
        }
        int xv = fy_node_in(&g->nodes[L[i].node], 0);
        rc = quantize_layer(&q, &L[i], mk.on[xv] ? xv : -1);
    }
    for (int v = 0; rc == FERRY_OK && v < nv; v++)
        if (mk.on[v]) {
            rc = insert_qdq(&q, v);
            rep->n_tensors++;
        }
    if (rc == FERRY_OK && rw.error != FERRY_OK) rc = rw.error;
    if (rc == FERRY_OK && rw.m) rc = fy_rw_commit(&rw);
    if (rw.m) fy_rw_end(&rw);

    /* SQNR: the same layers' outputs in the quantized graph */
    if (rc == FERRY_OK && sq.samples > 0) {
        sq.compare = 1;
        sq.at = 0;
        fy_value *sub = NULL;
        rc = fy_batch_view(x, 0, sq.samples, &sub);
        if (rc == FERRY_OK)
            rc = fy_quant_tap(m, sub, fy_quant_batch_size(m, c->calib_batch), sq.n_ids, sq.ids,
                              NULL, sqnr_fn, &sq);
        fy_value_unref(sub);
        for (int i = 0; rc == FERRY_OK && i < n_layers; i++)
            rep->layers[i].sqnr_db = sq.err[i] > 0 ? 10.0 * log10(sq.sig[i] / sq.err[i])
                                                   : INFINITY;
    }
    sqnr_free(&sq);
    free(L), free(mk.on), free(mk.share), free(mk.nk), free(params), free(dq), free(ids);
    free(ranges);
    if (rc != FERRY_OK && rep == &local) fy_quant_report_free(rep);
    if (rep == &local) fy_quant_report_free(rep);
    return rc;
}
