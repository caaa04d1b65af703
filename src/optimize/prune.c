/* prune.c — magnitude pruning for `ferry optimize --prune`: the smallest Conv/Gemm/MatMul
 * weights become zero (one global threshold, or one per layer), or with --structured whole
 * output channels by their RMS. The zeros are stored densely: the file stays standard ONNX and
 * the same size, it only compresses better (as TF-MOT's pruning does). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimize/graph_edit.h"
#include "optimize/model_opt.h"
#include "optimize/quantize.h"

typedef struct layer {
    int value;   /* the weight's value id */
    int node;    /* first node reading it */
    int bias;    /* value id of the bias of that output channel, -1 if none */
    int64_t channels, stride, len; /* output channels; element of channel c, index k: see at() */
    bool rows;   /* channel c is a contiguous block (Conv, Gemm with transB) vs a column */
} layer;

/* Index of element k of output channel c. */
static int64_t at(const layer *l, int64_t c, int64_t k)
{
    return l->rows ? c * l->len + k : k * l->channels + c;
}

static bool is_weight_op(const fy_node *n, bool *ms)
{
    *ms = strcmp(n->domain, "com.microsoft") == 0;
    if (*ms) return strcmp(n->op_type, "FusedConv") == 0 || strcmp(n->op_type, "FusedGemm") == 0;
    if (n->domain[0]) return false;
    return !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "Gemm") || !strcmp(n->op_type, "MatMul") ||
           !strcmp(n->op_type, "ConvTranspose");
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The value below which a fraction `sparsity` of v[0..n) lies (v is reordered). */
static float quantile(float *v, int64_t n, double sparsity)
{
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof(float), cmp_float);
    int64_t k = (int64_t)floor(sparsity * (double)n);
    if (k <= 0) return -1; /* nothing below */
    if (k >= n) k = n - 1;
    return v[k];
}

static ferry_status find_layers(fy_graph *g, bool structured, layer **out, int *n_out)
{
    layer *ls = calloc(g->n_nodes + 1, sizeof(layer));
    if (!ls) return fy_error(FERRY_E_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *nd = &g->nodes[i];
        bool ms;
        if (!is_weight_op(nd, &ms) || nd->n_inputs < 2) continue;
        int w = nd->inputs[1];
        if (w < 0 || !g->values[w].init || g->values[w].init->dtype != FERRY_DTYPE_F32) continue;
        bool input = false;
        for (int k = 0; k < g->n_inputs; k++) input |= g->inputs[k] == w;
        if (input) continue;
        bool dup = false;
        for (int k = 0; k < n; k++) dup |= ls[k].value == w;
        if (dup) continue;
        const fy_value *t = g->values[w].init;
        if (t->rank < 1 || t->count == 0) continue;
        layer l = {.value = w, .node = i, .bias = -1};
        const char *op = nd->op_type;
        if (strstr(op, "Conv")) {
            if (!strcmp(op, "ConvTranspose")) { /* [C, M/group, ...]: no simple channel block */
                if (structured) continue;
                l.channels = 1, l.len = t->count, l.rows = true;
            } else {
                l.channels = t->dims[0], l.len = t->count / (t->dims[0] ? t->dims[0] : 1), l.rows = true;
                l.bias = nd->n_inputs > 2 ? nd->inputs[2] : -1;
            }
        } else if (strstr(op, "Gemm")) {
            const fy_attr *tb = fy_node_attr(nd, "transB");
            if (t->rank != 2) continue;
            l.rows = tb && tb->i;
            l.channels = l.rows ? t->dims[0] : t->dims[1];
            l.len = t->count / l.channels;
            l.bias = nd->n_inputs > 2 ? nd->inputs[2] : -1;
        } else { /* MatMul: columns of the last two dims; rank > 2 treated as stacked rows */
            l.channels = t->dims[t->rank - 1];
            l.len = t->count / (l.channels ? l.channels : 1);
            l.rows = false;
        }
        if (l.bias >= 0) { /* only a plain per-channel float bias is zeroed with its channel */
            const fy_value *b = g->values[l.bias].init;
            if (!b || b->dtype != FERRY_DTYPE_F32 || b->count != l.channels) l.bias = -1;
        }
        ls[n++] = l;
    }
    *out = ls;
    *n_out = n;
    return FERRY_OK;
}

static double channel_rms(const float *w, const layer *l, int64_t c)
{
    double s = 0;
    for (int64_t k = 0; k < l->len; k++) {
        double x = w[at(l, c, k)];
        s += x * x;
    }
    return sqrt(s / (double)(l->len ? l->len : 1));
}

/* Replace the weight (and bias) of a layer by pruned copies. */
static ferry_status apply(fy_graph *g, const layer *l, bool structured, float thr, bool per_layer,
                          double sparsity, fy_layer_stat *st)
{
    fy_value_info *vi = &g->values[l->value];
    fy_value *w;
    FY_CHECK(fy_tensor_clone(vi->init, &w));
    float *d = w->data;
    fy_value *bias = NULL;
    if (structured) {
        double *rms = malloc(sizeof(double) * (l->channels + 1));
        float *sorted = malloc(sizeof(float) * (l->channels + 1));
        if (!rms || !sorted) {
            free(rms), free(sorted), fy_value_unref(w);
            return fy_error(FERRY_E_NOMEM, "out of memory");
        }
        for (int64_t c = 0; c < l->channels; c++) sorted[c] = (float)(rms[c] = channel_rms(d, l, c));
        float lt = per_layer ? quantile(sorted, l->channels, sparsity) : thr;
        if (!per_layer) qsort(sorted, (size_t)l->channels, sizeof(float), cmp_float);
        int64_t kept = 0;
        for (int64_t c = 0; c < l->channels; c++) kept += !(rms[c] < lt);
        if (l->bias >= 0 && fy_tensor_clone(g->values[l->bias].init, &bias) != FERRY_OK) bias = NULL;
        for (int64_t c = 0; c < l->channels; c++) {
            /* a layer keeps at least its strongest channel, or the network is cut */
            bool strongest = kept == 0 && rms[c] == sorted[l->channels - 1];
            if (!(rms[c] < lt) || strongest) continue;
            for (int64_t k = 0; k < l->len; k++) d[at(l, c, k)] = 0.0f;
            if (bias) ((float *)bias->data)[c] = 0.0f;
            st->channels_pruned++;
        }
        st->channels = l->channels;
        free(rms), free(sorted);
    } else {
        float lt = thr;
        if (per_layer) {
            float *mag = malloc(sizeof(float) * (w->count + 1));
            if (!mag) {
                fy_value_unref(w);
                return fy_error(FERRY_E_NOMEM, "out of memory");
            }
            for (int64_t i = 0; i < w->count; i++) mag[i] = fabsf(d[i]);
            lt = quantile(mag, w->count, sparsity);
            free(mag);
        }
        for (int64_t i = 0; i < w->count; i++)
            if (fabsf(d[i]) < lt) d[i] = 0.0f;
    }
    for (int64_t i = 0; i < w->count; i++) st->zeros += d[i] == 0.0f;
    st->count = w->count;
    fy_value_unref(vi->init);
    vi->init = w;
    if (bias) {
        fy_value_unref(g->values[l->bias].init);
        g->values[l->bias].init = bias;
    }
    return FERRY_OK;
}

ferry_status fy_prune(struct ferry_model *m, double sparsity, bool structured, bool per_layer,
                      fy_opt_log *log)
{
    if (!(sparsity > 0 && sparsity < 1))
        return fy_error(FERRY_E_INVALID_ARG, "pruning sparsity must be between 0 and 1, got %g", sparsity);
    fy_graph *g = m->graph;
    layer *ls = NULL;
    int n = 0;
    FY_CHECK(find_layers(g, structured, &ls, &n));
    float thr = -1;
    ferry_status rc = FERRY_OK;
    if (!per_layer) { /* one threshold over all layers' magnitudes (or channel RMS) */
        int64_t total = 0;
        for (int i = 0; i < n; i++) total += structured ? ls[i].channels : g->values[ls[i].value].init->count;
        float *all = malloc(sizeof(float) * (total + 1));
        if (!all) rc = fy_error(FERRY_E_NOMEM, "out of memory");
        int64_t k = 0;
        for (int i = 0; all && i < n; i++) {
            const float *d = g->values[ls[i].value].init->data;
            if (structured)
                for (int64_t c = 0; c < ls[i].channels; c++) all[k++] = (float)channel_rms(d, &ls[i], c);
            else
                for (int64_t j = 0; j < g->values[ls[i].value].init->count; j++) all[k++] = fabsf(d[j]);
        }
        if (all) thr = quantile(all, total, sparsity);
        free(all);
    }
    log->prune_threshold = per_layer ? -1 : thr;
    log->layers = calloc(n + 1, sizeof(fy_layer_stat));
    if (!log->layers && rc == FERRY_OK) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < n && rc == FERRY_OK; i++) {
        fy_layer_stat *st = &log->layers[log->n_layers++];
        st->name = strdup(g->values[ls[i].value].name);
        st->node = strdup(g->nodes[ls[i].node].name);
        st->op = strdup(g->nodes[ls[i].node].op_type);
        if (!st->name || !st->node || !st->op) rc = fy_error(FERRY_E_NOMEM, "out of memory");
        else rc = apply(g, &ls[i], structured, thr, per_layer, sparsity, st);
    }
    free(ls);
    return rc;
}

void fy_opt_log_free(fy_opt_log *log)
{
    if (log->int8) fy_int8_log_free(log->int8);
    free(log->int8);
    log->int8 = NULL;
    for (int i = 0; i < log->n_layers; i++) {
        free(log->layers[i].name);
        free(log->layers[i].node);
        free(log->layers[i].op);
    }
    free(log->layers);
    for (int i = 0; i < log->n_kept; i++) {
        free(log->kept[i].node);
        free(log->kept[i].op);
        free(log->kept[i].why);
    }
    free(log->kept);
    memset(log, 0, sizeof *log);
}
