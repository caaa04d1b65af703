/* fp16.c — float16 conversion for `ferry optimize --fp16`: weights and compute in half
 * precision where the op is safe in it, float32 kept at the graph's inputs and outputs and for
 * numerically sensitive ops, with Cast nodes wherever the two meet (as onnxconverter_common's
 * convert_float_to_float16 with keep_io_types does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/infer.h"
#include "optimize/graph_edit.h"
#include "optimize/model_opt.h"

/* Ops that compute in float16 when converted: linear algebra, elementwise arithmetic and
 * activations, pooling and data movement. Anything else stays float32, which is what makes
 * Softmax, LayerNormalization, Exp/Log/Pow, reductions and Resize the automatic keep list. */
static const char *const half_ops[] = {
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu",
    "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "MaxPool",
    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Flatten",
    "Reshape", "Transpose", "Concat", "Squeeze", "Unsqueeze", "Slice", "Gather", "Split", "Pad",
    "Identity", "Dropout", "Neg", "Abs", "Max", "Min", "Sum", "Expand", "Tile", "PRelu",
    "Shape", "Size", /* read only the shape: any element type */
};
/* ops whose float32 paths are sensitive: named in the report as kept on purpose */
static const char *const sensitive_ops[] = {
    "Softmax", "LogSoftmax", "LayerNormalization", "Exp", "Log", "Pow", "Resize", "ReduceMean",
    "ReduceSum", "ReduceL2", "ReduceLogSumExp", "Sqrt", "Reciprocal", "InstanceNormalization",
    "Erf", "Gelu", "Upsample",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0) return true;
    return false;
}

/* Whether `name` is an entry of the comma-separated list. */
static bool in_csv(const char *csv, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = csv; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

static ferry_dtype vtype(const fy_graph *g, int v)
{
    if (v < 0) return FERRY_DTYPE_UNDEFINED;
    if (g->values[v].init) return g->values[v].init->dtype;
    const fy_type_info *t = &g->values[v].type;
    if (t->kind && t->kind != FERRY_VALUE_TENSOR) return FERRY_DTYPE_UNDEFINED; /* sequences stay */
    return t->dtype;
}

static ferry_status log_kept(fy_opt_log *log, const fy_node *n, const char *why)
{
    fy_kept_node *k = realloc(log->kept, sizeof *k * (log->n_kept + 1));
    if (!k) return fy_error(FERRY_E_NOMEM, "out of memory");
    log->kept = k;
    k[log->n_kept] = (fy_kept_node){strdup(n->name), strdup(n->op_type), strdup(why)};
    if (!k[log->n_kept].node || !k[log->n_kept].op || !k[log->n_kept].why)
        return fy_error(FERRY_E_NOMEM, "out of memory");
    log->n_kept++;
    return FERRY_OK;
}

static ferry_status half_copy(const fy_value *t, fy_value **out)
{
    FY_CHECK(fy_tensor_new(FERRY_DTYPE_F16, t->rank, t->dims, out));
    const float *s = t->data;
    uint16_t *d = (*out)->data;
    /* beyond float16's range a weight would become infinity: saturate, as converters do */
    for (int64_t i = 0; i < t->count; i++)
        d[i] = fy_float_to_half(s[i] > 65504.0f ? 65504.0f : s[i] < -65504.0f ? -65504.0f : s[i]);
    return FERRY_OK;
}

/* Add Cast(v → to) and return its output value in *out. */
static ferry_status add_cast(fy_rewrite *rw, int v, ferry_dtype to, int opset, int *out, int *casts)
{
    fy_graph *g = rw->g;
    char base[512];
    snprintf(base, sizeof base, "%s_%s", g->values[v].name, to == FERRY_DTYPE_F16 ? "fp16" : "fp32");
    FY_CHECK(fy_rw_add_value(rw, base, out));
    fy_type_info *t = &g->values[*out].type, *src = &g->values[v].type;
    t->kind = FERRY_VALUE_TENSOR;
    t->dtype = to;
    t->rank = src->rank;
    for (int d = 0; d < src->rank && d < FERRY_MAX_RANK; d++) {
        t->dims[d] = src->dims[d];
        if (src->dim_names[d] && !(t->dim_names[d] = strdup(src->dim_names[d])))
            return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    char name[600];
    snprintf(name, sizeof name, "Cast_%s", g->values[*out].name);
    int idx;
    FY_CHECK(fy_rw_add_node(rw, "", "Cast", opset, name, 1, &v, 1, out, &idx));
    FY_CHECK(fy_node_attr_set_int(&rw->g->nodes[idx], "to", to));
    (*casts)++;
    return FERRY_OK;
}

static ferry_status convert(fy_rewrite *rw, const char *keep, fy_opt_log *log)
{
    fy_graph *g = rw->g;
    int n0 = g->n_nodes, nv0 = g->n_values;
    int opset = 13;
    for (int i = 0; i < n0; i++)
        if (!g->nodes[i].domain[0]) opset = g->nodes[i].opset;
    if (opset < 6) opset = 6;
    unsigned char *half = calloc(n0 + 1, 1), *captured = calloc(nv0 + 1, 1);
    unsigned char *was_f32 = calloc(nv0 + 1, 1);
    int *half_uses = calloc(nv0 + 1, sizeof(int)), *float_uses = calloc(nv0 + 1, sizeof(int));
    int *to_half = malloc(sizeof(int) * (nv0 + 1)), *to_float = malloc(sizeof(int) * (nv0 + 1));
    ferry_status rc = FERRY_OK;
    if (!half || !captured || !was_f32 || !half_uses || !float_uses || !to_half || !to_float) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < nv0; v++) {
        was_f32[v] = vtype(g, v) == FERRY_DTYPE_F32;
        to_half[v] = to_float[v] = -1;
    }
    for (int i = 0; i < n0; i++)
        for (int j = 0; j < g->nodes[i].n_implicit; j++) captured[g->nodes[i].implicit[j]] = 1;
    /* the listed ops (but Shape/Size) produce their first input's type: fill what inference
     * left open (fused ops it does not know), in order, so it carries down the graph */
    for (int i = 0; i < n0; i++) {
        const fy_node *n = &g->nodes[i];
        bool ms = !strcmp(n->domain, "com.microsoft") &&
                  (!strcmp(n->op_type, "FusedConv") || !strcmp(n->op_type, "FusedGemm"));
        if (!ms && (n->domain[0] || !in_list(n->op_type, half_ops, sizeof half_ops / sizeof *half_ops)))
            continue;
        if (!strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size") || n->n_inputs < 1 ||
            n->inputs[0] < 0 || !was_f32[n->inputs[0]])
            continue;
        int outs = !strcmp(n->op_type, "Split") ? n->n_outputs : 1;
        for (int j = 0; j < outs && j < n->n_outputs; j++) {
            int v = n->outputs[j];
            fy_type_info *t = v >= 0 ? &g->values[v].type : NULL;
            if (t && v < nv0 && !g->values[v].init && t->dtype == FERRY_DTYPE_UNDEFINED &&
                (!t->kind || t->kind == FERRY_VALUE_TENSOR)) {
                g->values[v].type.kind = FERRY_VALUE_TENSOR;
                g->values[v].type.dtype = FERRY_DTYPE_F32;
                was_f32[v] = 1;
            }
        }
    }

    /* 1. which nodes compute in float16 */
    for (int i = 0; i < n0 && rc == FERRY_OK; i++) {
        const fy_node *n = &g->nodes[i];
        bool has_f32 = false, unknown = false, capture = false;
        for (int j = 0; j < n->n_inputs; j++) {
            has_f32 |= n->inputs[j] >= 0 && was_f32[n->inputs[j]];
            /* an input of unknown type may be float32 at run time, which no Cast would meet */
            unknown |= n->inputs[j] >= 0 && vtype(g, n->inputs[j]) == FERRY_DTYPE_UNDEFINED;
        }
        for (int j = 0; j < n->n_outputs; j++) {
            int v = n->outputs[j];
            if (v < 0) continue;
            has_f32 |= was_f32[v];
            unknown |= vtype(g, v) == FERRY_DTYPE_UNDEFINED;
            capture |= captured[v] != 0;
        }
        if (!has_f32) continue;
        bool ms = strcmp(n->domain, "com.microsoft") == 0;
        bool known = (!n->domain[0] && in_list(n->op_type, half_ops, sizeof half_ops / sizeof *half_ops)) ||
                     (ms && (strcmp(n->op_type, "FusedConv") == 0 || strcmp(n->op_type, "FusedGemm") == 0));
        const char *why = NULL;
        if (keep && (in_csv(keep, n->op_type) || in_csv(keep, n->name))) why = "--keep-fp32";
        else if (in_list(n->op_type, sensitive_ops, sizeof sensitive_ops / sizeof *sensitive_ops))
            why = "numerically sensitive (automatic list)";
        else if (!known) why = "no float16 path for this op";
        else if (fy_node_has_subgraphs(n) || capture) why = "feeds a subgraph";
        else if (unknown) why = "input or output type unknown";
        if (why) rc = log_kept(log, n, why);
        else half[i] = 1;
    }
    if (rc != FERRY_OK) goto out;
    for (int i = 0; i < n0; i++) {
        const fy_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_inputs + n->n_implicit; j++) {
            int v = j < n->n_inputs ? n->inputs[j] : n->implicit[j - n->n_inputs];
            if (v < 0) continue;
            if (half[i] && j < n->n_inputs) half_uses[v]++;
            else float_uses[v]++;
        }
    }
    for (int k = 0; k < g->n_outputs; k++) float_uses[g->outputs[k]]++;

    /* 2. graph outputs computed in float16 get a Cast back under their own name */
    for (int k = 0; k < g->n_outputs && rc == FERRY_OK; k++) {
        int v = g->outputs[k], p = g->values[v].producer;
        if (p < 0 || p >= n0 || !half[p] || !was_f32[v] || to_float[v] >= 0) continue;
        int v16;
        char base[512];
        snprintf(base, sizeof base, "%s_fp16", g->values[v].name);
        if ((rc = fy_rw_add_value(rw, base, &v16)) != FERRY_OK) break;
        g->values[v16].type = (fy_type_info){.kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F16, .rank = -1};
        for (int i = 0; i < n0; i++) {
            fy_node *n = &g->nodes[i];
            for (int j = 0; j < n->n_outputs; j++)
                if (n->outputs[j] == v) n->outputs[j] = v16;
            for (int j = 0; half[i] && j < n->n_inputs; j++) /* float32 readers keep v */
                if (n->inputs[j] == v) n->inputs[j] = v16;
        }
        int idx;
        char name[600];
        snprintf(name, sizeof name, "Cast_%s", g->values[v].name);
        if ((rc = fy_rw_add_node(rw, "", "Cast", opset, name, 1, &v16, 1, &v, &idx)) != FERRY_OK) break;
        if ((rc = fy_node_attr_set_int(&g->nodes[idx], "to", FERRY_DTYPE_F32)) != FERRY_OK) break;
        log->n_casts++;
        to_float[v] = v; /* marks it done */
    }
    /* 3. every edge between the two precisions */
    for (int i = 0; i < n0 && rc == FERRY_OK; i++) {
        for (int j = 0; j < g->nodes[i].n_inputs && rc == FERRY_OK; j++) {
            int v = g->nodes[i].inputs[j];
            if (v < 0 || v >= nv0 || !was_f32[v]) continue;
            int p = g->values[v].producer;
            bool v_half = p >= 0 && p < n0 && half[p];
            if (half[i] && !v_half) {
                fy_value_info *vi = &g->values[v];
                bool is_input = false;
                for (int k = 0; k < g->n_inputs; k++) is_input |= g->inputs[k] == v;
                if (vi->init && !is_input && float_uses[v] == 0) { /* a weight only half nodes read */
                    fy_value *h;
                    if ((rc = half_copy(vi->init, &h)) != FERRY_OK) break;
                    fy_value_unref(vi->init);
                    vi->init = h;
                    vi->type.dtype = FERRY_DTYPE_F16;
                    was_f32[v] = 0;
                    continue;
                }
                if (vi->init && !is_input) { /* shared with float32 readers: a half copy */
                    if (to_half[v] < 0) {
                        fy_value *h;
                        char base[512];
                        snprintf(base, sizeof base, "%s_fp16", vi->name);
                        if ((rc = half_copy(vi->init, &h)) != FERRY_OK) break;
                        if ((rc = fy_rw_add_init(rw, base, h, &to_half[v])) != FERRY_OK) break;
                    }
                } else if (to_half[v] < 0) {
                    if ((rc = add_cast(rw, v, FERRY_DTYPE_F16, opset, &to_half[v], &log->n_casts)) != FERRY_OK) break;
                }
                g->nodes[i].inputs[j] = to_half[v];
            } else if (!half[i] && v_half) {
                if (to_float[v] < 0 &&
                    (rc = add_cast(rw, v, FERRY_DTYPE_F32, opset, &to_float[v], &log->n_casts)) != FERRY_OK)
                    break;
                g->nodes[i].inputs[j] = to_float[v];
            }
        }
    }
    if (rc != FERRY_OK) goto out;
    /* 4. what half nodes produce is float16 now */
    for (int i = 0; i < n0; i++) {
        if (!half[i]) continue;
        log->n_half++;
        const fy_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_outputs; j++) {
            int v = n->outputs[j];
            if (v >= 0 && v < nv0 && was_f32[v]) g->values[v].type.dtype = FERRY_DTYPE_F16;
        }
    }
    rw->changes++;
out:
    free(half), free(captured), free(was_f32), free(half_uses), free(float_uses);
    free(to_half), free(to_float);
    return rc;
}

ferry_status fy_fp16_convert(struct ferry_model *m, const char *keep, fy_opt_log *log)
{
    fy_rewrite rw;
    FY_CHECK(fy_rw_begin(&rw, m, m->graph));
    ferry_status rc = convert(&rw, keep, log);
    if (rc == FERRY_OK) rc = fy_rw_commit(&rw);
    fy_rw_end(&rw);
    return rc;
}

/* ---- float16 models on a CPU without float16 arithmetic ----------------------------------
 * ferry's float16 kernels convert to float32 inside every node, which makes a float16 model
 * several times slower than its float32 original. At load, a graph whose float16 values live
 * only between Casts and ops of the list above is therefore computed in float32: weights are
 * widened once, the Casts become no-ops and are removed. Results can only get closer to the
 * float32 original (no float16 rounding between nodes); the file keeps its float16 weights. */

static bool liftable_node(const fy_node *n)
{
    if (fy_node_has_subgraphs(n)) return false;
    if (!n->domain[0]) return strcmp(n->op_type, "Cast") == 0 || in_list(n->op_type, half_ops, sizeof half_ops / sizeof *half_ops);
    return strcmp(n->domain, "com.microsoft") == 0 &&
           (strcmp(n->op_type, "FusedConv") == 0 || strcmp(n->op_type, "FusedGemm") == 0);
}

static bool is_cast_to(const fy_node *n, ferry_dtype to)
{
    const fy_attr *a = fy_node_attr(n, "to");
    return !n->domain[0] && strcmp(n->op_type, "Cast") == 0 && a && a->type == FY_ATTR_INT && a->i == to;
}

static ferry_status lift(fy_rewrite *rw, bool *changed)
{
    fy_graph *g = rw->g;
    *changed = false;
    bool any = false;
    for (int v = 0; v < g->n_values; v++) {
        if (vtype(g, v) != FERRY_DTYPE_F16) continue;
        any = true;
        if (fy_rw_is_output(rw, v)) return FERRY_OK;
        for (int k = 0; k < g->n_inputs; k++)
            if (g->inputs[k] == v) return FERRY_OK;
        int p = g->values[v].producer;
        if (p >= 0 && !liftable_node(&g->nodes[p])) return FERRY_OK;
        for (int u = rw->use_start[v]; u < rw->use_start[v + 1]; u++)
            if (rw->uses[u].slot < 0 || !liftable_node(&g->nodes[rw->uses[u].node])) return FERRY_OK;
    }
    for (int i = 0; i < g->n_nodes; i++) /* a Cast to float16 of anything but float32 stays */
        if (is_cast_to(&g->nodes[i], FERRY_DTYPE_F16) && vtype(g, g->nodes[i].inputs[0]) != FERRY_DTYPE_F32)
            return FERRY_OK;
    if (!any) return FERRY_OK;
    for (int v = 0; v < g->n_values; v++) {
        fy_value_info *vi = &g->values[v];
        if (vtype(g, v) != FERRY_DTYPE_F16) continue;
        if (vi->init) {
            fy_value *f;
            FY_CHECK(fy_tensor_new(FERRY_DTYPE_F32, vi->init->rank, vi->init->dims, &f));
            const uint16_t *s = vi->init->data;
            for (int64_t k = 0; k < f->count; k++) ((float *)f->data)[k] = fy_half_to_float(s[k]);
            fy_value_unref(vi->init);
            vi->init = f;
        }
        vi->type.dtype = FERRY_DTYPE_F32;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        fy_node *n = &g->nodes[i];
        if (is_cast_to(n, FERRY_DTYPE_F16)) FY_CHECK(fy_node_attr_set_int(n, "to", FERRY_DTYPE_F32));
        /* a float32 → float32 Cast is a copy: its readers take its input */
        if (is_cast_to(n, FERRY_DTYPE_F32) && n->n_inputs == 1 && n->n_outputs == 1 && n->outputs[0] >= 0 &&
            vtype(g, n->inputs[0]) == FERRY_DTYPE_F32 && !fy_rw_is_output(rw, n->outputs[0])) {
            fy_rw_replace_uses(rw, n->outputs[0], n->inputs[0]);
            fy_rw_kill(rw, i);
        }
    }
    rw->changes++;
    *changed = true;
    return FERRY_OK;
}

ferry_status fy_fp16_lift(struct ferry_model *m)
{
    /* only a graph with float16 weights or Casts to float16 can have anything to lift; it is
     * typed first (at load nothing but declared types is known yet) so the checks see every
     * float16 value */
    fy_graph *g = m->graph;
    bool candidate = false;
    for (int v = 0; v < g->n_values && !candidate; v++)
        candidate = g->values[v].init && g->values[v].init->dtype == FERRY_DTYPE_F16;
    for (int i = 0; i < g->n_nodes && !candidate; i++) candidate = is_cast_to(&g->nodes[i], FERRY_DTYPE_F16);
    if (!candidate) return FERRY_OK;
    fy_graph_infer(g);
    fy_rewrite rw;
    FY_CHECK(fy_rw_begin(&rw, m, m->graph));
    bool changed = false;
    ferry_status rc = lift(&rw, &changed);
    if (rc == FERRY_OK && changed) rc = fy_rw_commit(&rw);
    fy_rw_end(&rw);
    return rc;
}
