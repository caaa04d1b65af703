/* fold.c — the BASIC passes: Identity/Dropout removal, constant folding through the reference
 * kernels, shape-subgraph folding from statically inferred shapes, and dead-node removal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "optimize/pass_impl.h"

/* Folded results above this stay computed at run time: a constant that large is usually an
 * expanded broadcast, cheaper to recompute than to keep in every model's memory. */
#define FY_FOLD_MAX_BYTES (16u << 20)

/* ---- Identity / Dropout ------------------------------------------------------------------ */

/* Whether node i is a Dropout that does nothing at inference: no mask read, and no constant
 * training_mode that turns it on (opset 12+; earlier versions always run as inference). */
static bool is_noop_dropout(const fy_rewrite *rw, const fy_node *n)
{
    if (!fy_node_is(n, "Dropout")) return false;
    if (n->n_outputs > 1 && n->outputs[1] >= 0 &&
        (fy_rw_n_uses(rw, n->outputs[1]) || fy_rw_is_output(rw, n->outputs[1])))
        return false;
    if (n->opset >= 12) {
        int tm = fy_node_in(n, 2);
        double v;
        if (tm >= 0 && !(fy_rw_const_scalar(rw, tm, &v) && v == 0)) return false;
    }
    return true;
}

/* Remove y = Identity(x) by letting y's readers read x. When y is a graph output its name must
 * survive, so then x's producer writes y directly instead (possible only when x is an
 * ordinary intermediate of this graph that nothing else needs under its own name). */
int fy_pass_eliminate_identity(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    for (int i = 0; i < rw->n_nodes; i++) {
        fy_node *n = &g->nodes[i];
        if (!fy_rw_usable(rw, i) || n->n_inputs < 1 || n->n_outputs < 1) continue;
        if (!fy_node_is(n, "Identity") && !is_noop_dropout(rw, n)) continue;
        int x = n->inputs[0], y = n->outputs[0];
        if (x < 0 || y < 0) continue;
        if (!fy_rw_is_output(rw, y)) {
            fy_rw_replace_uses(rw, y, x);
            fy_rw_kill(rw, i);
            done++;
            continue;
        }
        int p = fy_rw_producer(rw, x);
        if (p < 0 || !fy_rw_usable(rw, p) || fy_rw_is_output(rw, x)) continue;
        fy_node *pn = &g->nodes[p];
        for (int j = 0; j < pn->n_outputs; j++)
            if (pn->outputs[j] == x) pn->outputs[j] = y;
        fy_rw_replace_uses(rw, x, y);
        fy_rw_kill(rw, i);
        fy_rw_touch(rw, p);
        done++;
    }
    return done;
}

/* ---- constant folding -------------------------------------------------------------------- */

static bool is_random(const fy_node *n)
{
    static const char *const ops[] = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                                      "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout",
                                      NULL};
    for (int i = 0; ops[i]; i++)
        if (strcmp(n->op_type, ops[i]) == 0) return true;
    return false;
}

/* Elements of Expand/Tile/Range output computed from their constant inputs; -1 if unknown. */
static double value_sized_count(const fy_rewrite *rw, const fy_node *n)
{
    const fy_value *a = fy_rw_const(rw, fy_node_in(n, 0)), *b = fy_rw_const(rw, fy_node_in(n, 1));
    if (fy_node_is(n, "Range")) {
        const fy_value *c = fy_rw_const(rw, fy_node_in(n, 2));
        if (!a || !b || !c || a->count != 1 || b->count != 1 || c->count != 1) return -1;
        double start = fy_tensor_get_f64(a, 0), limit = fy_tensor_get_f64(b, 0);
        double delta = fy_tensor_get_f64(c, 0), cnt = delta != 0 ? ceil((limit - start) / delta) : -1;
        return cnt >= 0 ? cnt : cnt == cnt ? 0 : -1; /* NaN: unknown */
    }
    if (!a || !b || !fy_dtype_is_int(b->dtype) || b->rank != 1) return -1;
    double count = 1;
    if (fy_node_is(n, "Tile")) {
        if (b->count != a->rank) return -1;
        for (int d = 0; d < a->rank; d++) count *= (double)a->dims[d] * (double)fy_tensor_get_i64(b, d);
        return count;
    }
    /* Expand: the broadcast of data's dims and the shape values */
    int64_t r = a->rank > b->count ? a->rank : b->count;
    for (int64_t d = 0; d < r; d++) {
        int64_t da = d < r - a->rank ? 1 : a->dims[d - (r - a->rank)];
        int64_t db = d < r - b->count ? 1 : fy_tensor_get_i64(b, d - (r - b->count));
        count *= (double)(da > db ? da : db);
    }
    return count;
}

/* Whether node n's outputs could exceed the folding limit before running it: an output whose
 * inferred shape is static and too large, or an op whose output size comes from input values
 * with an output size nothing here can bound. Running such a node at load only to throw the
 * result away would cost time and memory (and a crafted model could ask for gigabytes). */
static bool may_be_huge(const fy_rewrite *rw, const fy_node *n)
{
    static const char *const sized_by_values[] = {"ConstantOfShape", "Expand", "Tile", "Range",
                                                  "Resize", "Upsample", "Pad", "OneHot", NULL};
    bool by_values = false;
    for (int i = 0; sized_by_values[i]; i++) by_values |= fy_node_is(n, sized_by_values[i]);
    if (fy_node_is(n, "Expand") || fy_node_is(n, "Tile") || fy_node_is(n, "Range")) {
        double count = value_sized_count(rw, n);
        return !(count >= 0 && count * 8 <= FY_FOLD_MAX_BYTES);
    }
    for (int j = 0; j < n->n_outputs; j++) {
        int v = n->outputs[j];
        if (v < 0) continue;
        const fy_type_info *t = &rw->g->values[v].type;
        double bytes = t->kind == FERRY_VALUE_TENSOR && t->rank >= 0 && t->dtype
                           ? (double)ferry_dtype_size(t->dtype) : -1;
        for (int d = 0; bytes >= 0 && d < t->rank; d++)
            bytes = t->dims[d] >= 0 ? bytes * (double)t->dims[d] : -1;
        if (bytes > FY_FOLD_MAX_BYTES || (bytes < 0 && by_values)) return true;
    }
    return false;
}

/* Run node n on its constant inputs with the reference kernel; on success its outputs become
 * initializers. Failure to fold is not an error: the node just stays. */
static bool fold_node(fy_rewrite *rw, int i)
{
    fy_graph *g = rw->g;
    fy_node *n = &g->nodes[i];
    if (fy_node_has_subgraphs(n) || is_random(n) || n->n_outputs < 1) return false;
    if (n->n_inputs == 0 && !fy_node_is(n, "Constant")) return false;
    bool any_out = false;
    for (int j = 0; j < n->n_outputs; j++) {
        int v = n->outputs[j];
        if (v < 0) continue;
        if (fy_rw_is_output(rw, v)) return false; /* callers own outputs; weights are shared */
        any_out = true;
    }
    if (!any_out || may_be_huge(rw, n)) return false;
    fy_value *in_stack[8];
    if (n->n_inputs > 8) return false;
    for (int j = 0; j < n->n_inputs; j++) {
        int v = n->inputs[j];
        in_stack[j] = NULL;
        if (v < 0) continue;
        const fy_value *t = fy_rw_const(rw, v);
        if (!t) return false;
        in_stack[j] = (fy_value *)t;
    }
    const fy_op *op = fy_op_find(n->domain, n->op_type, n->opset);
    if (!op) return false;
    fy_value *out[8] = {0};
    if (n->n_outputs > 8) return false;
    double flops = 0;
    fy_kernel k = {.node = n, .n_inputs = n->n_inputs, .inputs = in_stack,
                   .n_outputs = n->n_outputs, .outputs = out, .threads = 1, .flops = &flops};
    ferry_status rc = op->run(&k);
    bool ok = rc == FERRY_OK;
    size_t bytes = 0;
    for (int j = 0; ok && j < n->n_outputs; j++) {
        if (n->outputs[j] < 0) continue;
        if (!out[j] || out[j]->kind != FERRY_VALUE_TENSOR || out[j]->layout) ok = false;
        else bytes += (size_t)out[j]->count * ferry_dtype_size(out[j]->dtype);
    }
    if (ok && bytes > FY_FOLD_MAX_BYTES) ok = false;
    if (!ok) {
        if (rc != FERRY_OK) ferry_clear_error();
        for (int j = 0; j < n->n_outputs; j++) fy_value_unref(out[j]);
        return false;
    }
    for (int j = 0; j < n->n_outputs; j++) {
        if (n->outputs[j] >= 0) fy_rw_set_init(rw, n->outputs[j], out[j]);
        else fy_value_unref(out[j]);
    }
    fy_rw_kill(rw, i);
    return true;
}

/* Static dims of value v when its type is known (rank >= 0 and v is not a graph output, whose
 * declared type nobody checks); returns the rank or -1. Dims may be -1 (unknown). */
static int known_dims(const fy_rewrite *rw, int v, int64_t *dims)
{
    const fy_graph *g = rw->g;
    if (v < 0 || fy_rw_is_output(rw, v)) return -1;
    const fy_type_info *t = &g->values[v].type;
    if (t->kind != FERRY_VALUE_TENSOR || t->rank < 0 || t->optional) return -1;
    memcpy(dims, t->dims, sizeof(int64_t) * t->rank);
    return t->rank;
}

/* The dims a Shape node reports (after its start/end), each -1 when not static; -1 if the
 * input's rank is unknown. */
static int shape_node_dims(const fy_rewrite *rw, const fy_node *n, int64_t *out)
{
    int64_t dims[FERRY_MAX_RANK];
    int rank = known_dims(rw, fy_node_in(n, 0), dims);
    if (rank < 0) return -1;
    int64_t start = 0, end = rank;
    const fy_attr *a;
    if (n->opset >= 15 && (a = fy_node_attr(n, "start")) && a->type == FY_ATTR_INT) start = a->i;
    if (n->opset >= 15 && (a = fy_node_attr(n, "end")) && a->type == FY_ATTR_INT) end = a->i;
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < start ? start : end > rank ? rank : end;
    for (int64_t d = start; d < end; d++) out[d - start] = dims[d];
    return (int)(end - start);
}

static bool make_i64(fy_rewrite *rw, int v, int rank, const int64_t *shape, const int64_t *vals,
                     int64_t count)
{
    fy_value *t;
    if (fy_tensor_new(FERRY_DTYPE_I64, rank, shape, &t) != FERRY_OK) {
        ferry_clear_error();
        return false;
    }
    memcpy(t->data, vals, sizeof(int64_t) * count);
    fy_rw_set_init(rw, v, t);
    return true;
}

/* Shape(x) with x's dims all static becomes a constant; so does Gather(Shape(x), constant
 * indices) when the dims it picks are static, even if others (a batch dim) are not. */
static bool fold_shape(fy_rewrite *rw, int i)
{
    fy_graph *g = rw->g;
    fy_node *n = &g->nodes[i];
    int64_t dims[FERRY_MAX_RANK];
    int y = n->n_outputs > 0 ? n->outputs[0] : -1;
    if (y < 0 || fy_rw_is_output(rw, y)) return false;
    if (fy_node_is(n, "Shape")) {
        int r = shape_node_dims(rw, n, dims);
        if (r < 0) return false;
        for (int d = 0; d < r; d++)
            if (dims[d] < 0) return false;
        int64_t shape[1] = {r};
        if (!make_i64(rw, y, 1, shape, dims, r)) return false;
        fy_rw_kill(rw, i);
        return true;
    }
    if (!fy_node_is(n, "Gather")) return false;
    int src = fy_node_in(n, 0), p = fy_rw_producer(rw, src);
    const fy_value *idx = fy_rw_const(rw, fy_node_in(n, 1));
    if (p < 0 || !fy_rw_usable(rw, p) || !fy_node_is(&g->nodes[p], "Shape") || !idx) return false;
    const fy_attr *ax = fy_node_attr(n, "axis");
    if (ax && ax->type == FY_ATTR_INT && ax->i != 0 && ax->i != -1) return false;
    if (idx->rank > 1 || idx->count > FERRY_MAX_RANK || !fy_dtype_is_int(idx->dtype)) return false;
    int r = shape_node_dims(rw, &g->nodes[p], dims);
    if (r < 0) return false;
    int64_t vals[FERRY_MAX_RANK];
    for (int64_t j = 0; j < idx->count; j++) {
        int64_t k = fy_tensor_get_i64(idx, j);
        if (k < 0) k += r;
        if (k < 0 || k >= r || dims[k] < 0) return false;
        vals[j] = dims[k];
    }
    if (!make_i64(rw, y, idx->rank, idx->dims, vals, idx->count)) return false;
    fy_rw_kill(rw, i);
    return true;
}

int fy_pass_fold_constants(fy_rewrite *rw, bool shapes)
{
    int done = 0;
    for (int i = 0; i < rw->n_nodes; i++) {
        if (!fy_rw_usable(rw, i)) continue;
        if (shapes && fold_shape(rw, i)) done++;
        else if (fold_node(rw, i)) done++;
    }
    return done;
}

/* ---- dead nodes -------------------------------------------------------------------------- */

/* Nodes none of whose outputs is read (or is a graph output) are removed; every ONNX op is
 * free of side effects. Walking backwards lets a whole dead chain go in one sweep. */
int fy_pass_remove_dead(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int done = 0;
    int *uses = malloc(sizeof(int) * (g->n_values + 1));
    if (!uses) return 0;
    for (int v = 0; v < g->n_values; v++)
        uses[v] = fy_rw_n_uses(rw, v) + (fy_rw_is_output(rw, v) ? 1 : 0);
    for (int i = rw->n_nodes - 1; i >= 0; i--) {
        fy_node *n = &g->nodes[i];
        if (rw->dead[i] || n->n_outputs == 0) continue;
        bool live = false;
        for (int j = 0; j < n->n_outputs && !live; j++)
            live = n->outputs[j] >= 0 && uses[n->outputs[j]] > 0;
        if (live) continue;
        for (int j = 0; j < n->n_inputs + n->n_implicit; j++) {
            int v = j < n->n_inputs ? n->inputs[j] : n->implicit[j - n->n_inputs];
            if (v >= 0) uses[v]--;
        }
        fy_rw_kill(rw, i);
        done++;
    }
    free(uses);
    return done;
}
