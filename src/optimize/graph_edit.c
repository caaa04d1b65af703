/* graph_edit.c — IR editing for the graph passes: consumer index, node/attribute edits, new
 * values and initializers, and the commit that restores topological order and lifetimes. */
#include "optimize/graph_edit.h"

#include "ops/kernel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- index ---- */

static void index_free(fy_rewrite *rw)
{
    free(rw->touched), free(rw->dead), free(rw->use_start), free(rw->uses), free(rw->is_output);
    rw->touched = rw->dead = rw->is_output = NULL;
    rw->use_start = NULL;
    rw->uses = NULL;
}

static ferry_status index_build(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int n = g->n_nodes, nv = g->n_values, total = 0;
    rw->n_nodes = n;
    rw->touched = calloc(n + 1, 1);
    rw->dead = calloc(n + 1, 1);
    rw->use_start = calloc(nv + 2, sizeof(int));
    rw->is_output = calloc(nv + 1, 1);
    if (!rw->touched || !rw->dead || !rw->use_start || !rw->is_output) goto nomem;
    for (int i = 0; i < g->n_outputs; i++) rw->is_output[g->outputs[i]] = 1;
    for (int i = 0; i < n; i++) {
        const fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
            int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
            if (v >= 0) rw->use_start[v + 1]++, total++;
        }
    }
    for (int v = 0; v < nv; v++) rw->use_start[v + 1] += rw->use_start[v];
    rw->uses = malloc(sizeof(fy_use) * (total + 1));
    int *fill = calloc(nv + 1, sizeof(int));
    if (!rw->uses || !fill) {
        free(fill);
        goto nomem;
    }
    for (int i = 0; i < n; i++) {
        const fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
            int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
            if (v >= 0) rw->uses[rw->use_start[v] + fill[v]++] = (fy_use){i, j < nd->n_inputs ? j : -1};
        }
    }
    free(fill);
    return FERRY_OK;
nomem:
    index_free(rw);
    return fy_error(FERRY_E_NOMEM, "out of memory");
}

ferry_status fy_rw_begin(fy_rewrite *rw, struct ferry_model *m, fy_graph *g)
{
    memset(rw, 0, sizeof *rw);
    rw->m = m;
    rw->g = g;
    return index_build(rw);
}

void fy_rw_end(fy_rewrite *rw) { index_free(rw); }

/* ---- lifetimes ---- */

ferry_status fy_graph_recompute(fy_graph *g)
{
    int *last = malloc(sizeof(int) * (g->n_values + 1));
    if (!last) return fy_error(FERRY_E_NOMEM, "out of memory");
    free(g->last_use);
    g->last_use = last;
    for (int v = 0; v < g->n_values; v++) {
        last[v] = -1;
        g->values[v].producer = -1;
        g->values[v].n_uses = 0;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_outputs; j++)
            if (nd->outputs[j] >= 0) g->values[nd->outputs[j]].producer = i;
        for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
            int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
            if (v >= 0) {
                last[v] = i;
                g->values[v].n_uses++;
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        last[g->outputs[i]] = g->n_nodes;
        g->values[g->outputs[i]].n_uses++;
    }
    return FERRY_OK;
}

/* Stable topological order: every node is emitted after its producers (depth first, in the
 * current order), so a graph that is already ordered keeps its order exactly. */
static ferry_status topo_sort(fy_graph *g)
{
    int n = g->n_nodes;
    int *prod = malloc(sizeof(int) * (g->n_values + 1));
    unsigned char *state = calloc(n + 1, 1);
    int *order = malloc(sizeof(int) * (n + 1));
    int *stack = malloc(sizeof(int) * (n + 1)), *next_in = malloc(sizeof(int) * (n + 1));
    fy_node *sorted = malloc(sizeof(fy_node) * (n + 1));
    ferry_status rc = FERRY_OK;
    int n_order = 0;
    if (!prod || !state || !order || !stack || !next_in || !sorted) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < g->n_values; v++) prod[v] = -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i].n_outputs; j++)
            if (g->nodes[i].outputs[j] >= 0) prod[g->nodes[i].outputs[j]] = i;
    for (int root = 0; root < n; root++) {
        if (state[root]) continue;
        int sp = 0;
        stack[sp++] = root;
        state[root] = 1;
        next_in[root] = 0;
        while (sp) {
            int i = stack[sp - 1];
            const fy_node *nd = &g->nodes[i];
            int pushed = 0;
            while (next_in[i] < nd->n_inputs + nd->n_implicit) {
                int j = next_in[i]++;
                int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
                int p = v >= 0 ? prod[v] : -1;
                if (p < 0 || state[p] == 2) continue;
                if (state[p] == 1) {
                    rc = fy_error(FERRY_E_INTERNAL, "graph rewrite made a cycle through node \"%s\" (%s)",
                                  g->nodes[p].name, g->nodes[p].op_type);
                    goto out;
                }
                state[p] = 1;
                next_in[p] = 0;
                stack[sp++] = p;
                pushed = 1;
                break;
            }
            if (!pushed) {
                state[i] = 2;
                order[n_order++] = i;
                sp--;
            }
        }
    }
    for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, sizeof(fy_node) * n);
out:
    free(prod), free(state), free(order), free(stack), free(next_in), free(sorted);
    return rc;
}

static bool is_graph_input(const fy_graph *g, int v)
{
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return true;
    return false;
}

ferry_status fy_rw_commit(fy_rewrite *rw)
{
    fy_graph *g = rw->g;
    int w = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (i < rw->n_nodes && rw->dead[i]) {
            fy_node_clear(&g->nodes[i]);
            continue;
        }
        if (w != i) g->nodes[w] = g->nodes[i];
        w++;
    }
    g->n_nodes = w;
    index_free(rw);
    FY_CHECK(topo_sort(g));
    FY_CHECK(fy_graph_recompute(g));
    /* initializers nobody reads any more (folded away) would only hold memory */
    for (int v = 0; v < g->n_values; v++) {
        fy_value_info *vi = &g->values[v];
        if (vi->init && vi->n_uses == 0 && !is_graph_input(g, v)) {
            fy_value_unref(vi->init);
            vi->init = NULL;
        }
    }
    rw->changes = 0;
    return index_build(rw);
}

/* ---- queries ---- */

int fy_rw_n_uses(const fy_rewrite *rw, int v)
{
    return v >= 0 && v < rw->g->n_values ? rw->use_start[v + 1] - rw->use_start[v] : 0;
}

int fy_rw_sole_consumer(const fy_rewrite *rw, int v, int *slot)
{
    if (v < 0 || v >= rw->g->n_values || rw->is_output[v] || fy_rw_n_uses(rw, v) != 1) return -1;
    const fy_use *u = &rw->uses[rw->use_start[v]];
    if (u->slot < 0) return -1;
    if (slot) *slot = u->slot;
    return u->node;
}

int fy_rw_producer(const fy_rewrite *rw, int v)
{
    if (v < 0 || v >= rw->g->n_values) return -1;
    int p = rw->g->values[v].producer;
    return p < rw->n_nodes ? p : -1;
}

bool fy_rw_is_output(const fy_rewrite *rw, int v)
{
    return v >= 0 && v < rw->g->n_values && rw->is_output[v];
}

const fy_value *fy_rw_const(const fy_rewrite *rw, int v)
{
    if (v < 0 || v >= rw->g->n_values || !rw->g->values[v].init) return NULL;
    /* An initializer listed among the graph inputs is a default a caller may override, except
     * in IR version < 4 models, which list every initializer as an input (ONNX Runtime
     * treats those as constants too). */
    const Onnx__ModelProto *mp = rw->m ? rw->m->proto : NULL;
    bool legacy = mp && mp->has_ir_version && mp->ir_version < 4;
    if (!legacy && is_graph_input(rw->g, v)) return NULL;
    const fy_value *t = rw->g->values[v].init;
    return t->kind == FERRY_VALUE_TENSOR ? t : NULL;
}

bool fy_rw_const_scalar(const fy_rewrite *rw, int v, double *out)
{
    const fy_value *t = fy_rw_const(rw, v);
    if (!t || t->count != 1 || !fy_dtype_is_numeric(t->dtype)) return false;
    *out = fy_tensor_get_f64(t, 0);
    return true;
}

bool fy_rw_same_shape(const fy_rewrite *rw, int a, int b)
{
    if (a < 0 || b < 0) return false;
    const fy_type_info *x = &rw->g->values[a].type, *y = &rw->g->values[b].type;
    if (x->kind != FERRY_VALUE_TENSOR || y->kind != FERRY_VALUE_TENSOR || x->rank < 0 ||
        x->rank != y->rank)
        return false;
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] >= 0 || y->dims[d] >= 0) {
            if (x->dims[d] != y->dims[d]) return false;
        } else if (!x->dim_names[d] || !y->dim_names[d] ||
                   strcmp(x->dim_names[d], y->dim_names[d]) != 0) {
            return false;
        }
    }
    return true;
}

ferry_dtype fy_rw_dtype(const fy_rewrite *rw, int v)
{
    if (v < 0) return FERRY_DTYPE_UNDEFINED;
    const fy_value_info *vi = &rw->g->values[v];
    if (vi->init) return vi->init->dtype;
    return vi->type.kind == FERRY_VALUE_TENSOR ? vi->type.dtype : FERRY_DTYPE_UNDEFINED;
}

int fy_node_in(const fy_node *n, int i) { return i < n->n_inputs ? n->inputs[i] : -1; }

bool fy_node_is(const fy_node *n, const char *op)
{
    return fy_domain_is_onnx(n->domain) && strcmp(n->op_type, op) == 0;
}

bool fy_node_has_subgraphs(const fy_node *n)
{
    if (n->n_implicit) return true;
    for (int a = 0; a < n->n_attrs; a++)
        if (n->attrs[a].g || n->attrs[a].graphs) return true;
    return false;
}

/* ---- editing ---- */

void fy_rw_touch(fy_rewrite *rw, int node)
{
    if (node >= 0 && node < rw->n_nodes) rw->touched[node] = 1;
    rw->changes++;
}

void fy_rw_kill(fy_rewrite *rw, int node)
{
    if (node < 0 || node >= rw->n_nodes) return;
    rw->dead[node] = 1;
    fy_rw_touch(rw, node);
}

void fy_rw_replace_uses(fy_rewrite *rw, int old_v, int new_v)
{
    fy_graph *g = rw->g;
    for (int i = 0; i < g->n_nodes; i++) {
        fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] == old_v) nd->inputs[j] = new_v;
        for (int j = 0; j < nd->n_implicit; j++)
            if (nd->implicit[j] == old_v) nd->implicit[j] = new_v;
        for (int a = 0; a < nd->n_attrs; a++) {
            const fy_attr *at = &nd->attrs[a];
            for (int64_t s = -1; s < (at->graphs ? at->n : 0); s++) {
                fy_graph *sg = s < 0 ? at->g : at->graphs[s];
                for (int o = 0; sg && o < sg->n_outer; o++)
                    if (sg->outer_src[o] == old_v) sg->outer_src[o] = new_v;
            }
        }
    }
    rw->changes++;
}

static char *dup_or_null(const char *s) { return strdup(s ? s : ""); }

ferry_status fy_node_set_op(fy_node *n, const char *domain, const char *op_type, int opset)
{
    char *d = dup_or_null(domain), *o = dup_or_null(op_type);
    if (!d || !o) {
        free(d), free(o);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    free(n->domain), free(n->op_type);
    n->domain = d;
    n->op_type = o;
    n->opset = opset;
    return FERRY_OK;
}

ferry_status fy_node_set_name(fy_node *n, const char *name)
{
    char *s = dup_or_null(name);
    if (!s) return fy_error(FERRY_E_NOMEM, "out of memory");
    free(n->name);
    n->name = s;
    return FERRY_OK;
}

static ferry_status set_ids(int **arr, int *count, int n, const int *ids)
{
    int *a = malloc(sizeof(int) * (n + 1));
    if (!a) return fy_error(FERRY_E_NOMEM, "out of memory");
    if (n) memcpy(a, ids, sizeof(int) * n);
    free(*arr);
    *arr = a;
    *count = n;
    return FERRY_OK;
}

ferry_status fy_node_set_inputs(fy_node *n, int count, const int *ids)
{
    return set_ids(&n->inputs, &n->n_inputs, count, ids);
}

ferry_status fy_node_set_outputs(fy_node *n, int count, const int *ids)
{
    return set_ids(&n->outputs, &n->n_outputs, count, ids);
}

void fy_node_clear(fy_node *n)
{
    free(n->name), free(n->op_type), free(n->domain);
    free(n->inputs), free(n->outputs), free(n->implicit);
    for (int j = 0; j < n->n_attrs; j++) fy_attr_clear(&n->attrs[j]);
    free(n->attrs);
    memset(n, 0, sizeof *n);
}

void fy_node_attr_remove(fy_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) {
            fy_attr_clear(&n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], sizeof(fy_attr) * (n->n_attrs - i - 1));
            n->n_attrs--;
            return;
        }
}

void fy_node_attrs_clear(fy_node *n)
{
    for (int j = 0; j < n->n_attrs; j++) fy_attr_clear(&n->attrs[j]);
    n->n_attrs = 0;
}

ferry_status fy_rw_remake(fy_rewrite *rw, int node, const char *domain, const char *op_type,
                          int opset, const char *suffix)
{
    fy_node *n = &rw->g->nodes[node];
    size_t len = strlen(n->name) + strlen(suffix) + 1;
    char *name = malloc(len);
    if (!name) return fy_error(FERRY_E_NOMEM, "out of memory");
    snprintf(name, len, "%s%s", n->name, suffix);
    ferry_status rc = fy_node_set_op(n, domain, op_type, opset);
    if (rc != FERRY_OK) {
        free(name);
        return rc;
    }
    free(n->name);
    n->name = name;
    n->id = rw->m->n_node_ids++;
    fy_rw_touch(rw, node);
    return FERRY_OK;
}

/* A fresh attribute slot named name (an old one of that name is removed first). */
static ferry_status attr_slot(fy_node *n, const char *name, fy_attr_type type, fy_attr **out)
{
    char *nm = strdup(name);
    fy_attr *grown = nm ? realloc(n->attrs, sizeof(fy_attr) * (n->n_attrs + 2)) : NULL;
    if (!grown) {
        free(nm);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    n->attrs = grown;
    fy_node_attr_remove(n, name);
    fy_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = nm;
    a->type = type;
    *out = a;
    return FERRY_OK;
}

ferry_status fy_node_attr_set_int(fy_node *n, const char *name, int64_t v)
{
    fy_attr *a;
    FY_CHECK(attr_slot(n, name, FY_ATTR_INT, &a));
    a->i = v;
    return FERRY_OK;
}

ferry_status fy_node_attr_set_float(fy_node *n, const char *name, float v)
{
    fy_attr *a;
    FY_CHECK(attr_slot(n, name, FY_ATTR_FLOAT, &a));
    a->f = v;
    return FERRY_OK;
}

ferry_status fy_node_attr_set_string(fy_node *n, const char *name, const char *s)
{
    char *copy = strdup(s);
    if (!copy) return fy_error(FERRY_E_NOMEM, "out of memory");
    fy_attr *a;
    ferry_status rc = attr_slot(n, name, FY_ATTR_STRING, &a);
    if (rc != FERRY_OK) {
        free(copy);
        return rc;
    }
    a->s = copy;
    a->s_len = strlen(copy);
    return FERRY_OK;
}

ferry_status fy_node_attr_set_floats(fy_node *n, const char *name, int count, const float *v)
{
    float *copy = malloc(sizeof(float) * (count + 1));
    if (!copy) return fy_error(FERRY_E_NOMEM, "out of memory");
    if (count) memcpy(copy, v, sizeof(float) * count);
    fy_attr *a;
    ferry_status rc = attr_slot(n, name, FY_ATTR_FLOATS, &a);
    if (rc != FERRY_OK) {
        free(copy);
        return rc;
    }
    a->floats = copy;
    a->n = count;
    return FERRY_OK;
}

ferry_status fy_node_attr_set_ints(fy_node *n, const char *name, int count, const int64_t *v)
{
    int64_t *copy = malloc(sizeof(int64_t) * (count + 1));
    if (!copy) return fy_error(FERRY_E_NOMEM, "out of memory");
    if (count) memcpy(copy, v, sizeof(int64_t) * count);
    fy_attr *a;
    ferry_status rc = attr_slot(n, name, FY_ATTR_INTS, &a);
    if (rc != FERRY_OK) {
        free(copy);
        return rc;
    }
    a->ints = copy;
    a->n = count;
    return FERRY_OK;
}

ferry_status fy_rw_add_node(fy_rewrite *rw, const char *domain, const char *op_type, int opset,
                            const char *name, int n_in, const int *in, int n_out, const int *out,
                            int *index)
{
    fy_graph *g = rw->g;
    fy_node *nodes = realloc(g->nodes, sizeof(fy_node) * (g->n_nodes + 2));
    if (!nodes) return fy_error(FERRY_E_NOMEM, "out of memory");
    g->nodes = nodes;
    fy_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = strdup(name);
    n->attrs = calloc(1, sizeof(fy_attr));
    ferry_status rc = n->name && n->attrs ? fy_node_set_op(n, domain, op_type, opset)
                                          : fy_error(FERRY_E_NOMEM, "out of memory");
    if (rc == FERRY_OK) rc = fy_node_set_inputs(n, n_in, in);
    if (rc == FERRY_OK) rc = fy_node_set_outputs(n, n_out, out);
    if (rc != FERRY_OK) {
        fy_node_clear(n);
        return rc;
    }
    n->id = rw->m->n_node_ids++;
    *index = g->n_nodes++;
    rw->changes++;
    return FERRY_OK;
}

static bool name_taken(const fy_graph *g, const char *name)
{
    for (int v = 0; v < g->n_values; v++)
        if (strcmp(g->values[v].name, name) == 0) return true;
    return false;
}

ferry_status fy_rw_add_value(fy_rewrite *rw, const char *base, int *id)
{
    fy_graph *g = rw->g;
    size_t len = strlen(base) + 24;
    char *name = malloc(len);
    if (!name) return fy_error(FERRY_E_NOMEM, "out of memory");
    snprintf(name, len, "%s", base);
    for (int k = 1; name_taken(g, name); k++) snprintf(name, len, "%s_%d", base, k);
    /* the graph's value array may have spare capacity we cannot see: grow to the exact size */
    fy_value_info *vals = realloc(g->values, sizeof *vals * (g->n_values + 1));
    if (!vals) {
        free(name);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    g->values = vals;
    int *last = realloc(g->last_use, sizeof(int) * (g->n_values + 2));
    unsigned char *is_out = realloc(rw->is_output, g->n_values + 2);
    int *start = realloc(rw->use_start, sizeof(int) * (g->n_values + 3));
    if (last) g->last_use = last;
    if (is_out) rw->is_output = is_out;
    if (start) rw->use_start = start;
    if (!last || !is_out || !start) {
        free(name);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    fy_value_info *vi = &g->values[g->n_values];
    memset(vi, 0, sizeof *vi);
    vi->name = name;
    vi->producer = -1;
    vi->type.rank = -1;
    *id = g->n_values++;
    g->last_use[*id] = -1;
    rw->is_output[*id] = 0;
    rw->use_start[*id + 1] = rw->use_start[*id]; /* no uses */
    return FERRY_OK;
}

static void type_from_tensor(fy_type_info *t, const fy_value *v)
{
    for (int d = 0; d < FERRY_MAX_RANK; d++) {
        free(t->dim_names[d]);
        t->dim_names[d] = NULL;
    }
    t->kind = FERRY_VALUE_TENSOR;
    t->optional = 0;
    t->dtype = v->dtype;
    t->rank = v->rank;
    memcpy(t->dims, v->dims, sizeof(int64_t) * v->rank);
}

ferry_status fy_rw_add_init(fy_rewrite *rw, const char *base, fy_value *t, int *id)
{
    ferry_status rc = fy_rw_add_value(rw, base, id);
    if (rc != FERRY_OK) {
        fy_value_unref(t);
        return rc;
    }
    fy_rw_set_init(rw, *id, t);
    return FERRY_OK;
}

void fy_rw_set_init(fy_rewrite *rw, int v, fy_value *t)
{
    fy_value_info *vi = &rw->g->values[v];
    fy_value_unref(vi->init);
    vi->init = t;
    vi->producer = -1;
    type_from_tensor(&vi->type, t);
    rw->changes++;
}
