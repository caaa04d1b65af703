/* session.c — ferry_session: prepares per-node kernel state (a backend's reordered weights),
 * binds caller tensors to graph inputs (checking kind, dtype and declared shape), runs the
 * graph, and hands back outputs the caller owns. Optional per-node profiling. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "onnx/model.h"
#include "ops/kernel.h"
#include "runtime/exec.h"

struct ferry_session {
    struct ferry_model *model;
    int threads;
    double last_flops;
    fy_pool *pool;         /* intermediate tensors are recycled through it, run after run */
    const fy_node **nodes; /* by node id, subgraphs included */
    void **states;         /* by node id: the kernel's prepare() result */
    int64_t *node_calls;   /* profiling counters by node id, NULL when off */
    double *node_seconds;
};

#define FY_POOL_MAX_CACHED (1ull << 30)

static void index_nodes(ferry_session *s, const fy_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *n = &g->nodes[i];
        s->nodes[n->id] = n;
        for (int a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g) index_nodes(s, n->attrs[a].g);
            for (int64_t j = 0; n->attrs[a].graphs && j < n->attrs[a].n; j++)
                index_nodes(s, n->attrs[a].graphs[j]);
        }
    }
}

/* The graph that holds node n (prepare hooks look up initializers there). */
static const fy_graph *graph_of(const fy_graph *g, const fy_node *n)
{
    if (n >= g->nodes && n < g->nodes + g->n_nodes) return g;
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            const fy_attr *at = &g->nodes[i].attrs[a];
            const fy_graph *found = at->g ? graph_of(at->g, n) : NULL;
            for (int64_t j = 0; !found && at->graphs && j < at->n; j++) found = graph_of(at->graphs[j], n);
            if (found) return found;
        }
    return NULL;
}

static ferry_status prepare_states(ferry_session *s)
{
    int n = s->model->n_node_ids;
    s->nodes = calloc(n + 1, sizeof *s->nodes);
    s->states = calloc(n + 1, sizeof *s->states);
    if (!s->nodes || !s->states) return fy_error(FERRY_E_NOMEM, "out of memory");
    index_nodes(s, s->model->graph);
    for (int i = 0; i < n; i++) {
        const fy_node *nd = s->nodes[i];
        if (!nd || !nd->op->prepare) continue;
        ferry_status rc = nd->op->prepare(nd, graph_of(s->model->graph, nd), &s->states[i]);
        if (rc != FERRY_OK)
            return fy_error_wrap(rc, "node \"%s\" (%s) on %s", nd->name, nd->op_type, nd->op->backend);
    }
    return FERRY_OK;
}

ferry_status ferry_session_create(ferry_model *m, const ferry_session_options *opts,
                                  ferry_session **out)
{
    if (!m || !out) return fy_error(FERRY_E_INVALID_ARG, "model and out must not be NULL");
    *out = NULL;
    if (m->missing_ops)
        return fy_error(FERRY_E_UNSUPPORTED, "unsupported ops:\n%s", m->missing_ops);
    ferry_session *s = calloc(1, sizeof *s);
    if (!s) return fy_error(FERRY_E_NOMEM, "out of memory");
    s->threads = opts && opts->threads > 0 ? opts->threads : omp_get_num_procs();
    fy_model_ref(m);
    s->model = m;
    ferry_status rc = fy_pool_create(FY_POOL_MAX_CACHED, &s->pool);
    if (rc == FERRY_OK) rc = prepare_states(s);
    if (rc != FERRY_OK) {
        ferry_session_free(s);
        return rc;
    }
    *out = s;
    return FERRY_OK;
}

void ferry_session_free(ferry_session *s)
{
    if (!s) return;
    for (int i = 0; s->states && i < s->model->n_node_ids; i++)
        if (s->states[i]) s->nodes[i]->op->release(s->states[i]);
    free(s->states), free(s->nodes), free(s->node_calls), free(s->node_seconds);
    fy_model_unref(s->model);
    fy_pool_unref(s->pool);
    free(s);
}

double ferry_session_last_flops(const ferry_session *s)
{
    double f = 0;
    if (s) __atomic_load(&s->last_flops, &f, __ATOMIC_RELAXED);
    return f;
}

static ferry_status check_input(const fy_value_info *vi, const fy_value *v)
{
    const fy_type_info *t = &vi->type;
    if (!v) return fy_error(FERRY_E_INVALID_ARG, "input \"%s\" is NULL", vi->name);
    if (v->kind == FERRY_VALUE_NONE) {
        if (t->kind && !t->optional)
            return fy_error(FERRY_E_INVALID_ARG, "input \"%s\" is not optional", vi->name);
        return FERRY_OK;
    }
    if (t->kind && v->kind != t->kind)
        return fy_error(FERRY_E_INVALID_ARG, "input \"%s\": expected a %s, got a %s", vi->name,
                        t->kind == FERRY_VALUE_SEQUENCE ? "sequence" : "tensor",
                        v->kind == FERRY_VALUE_SEQUENCE ? "sequence" : "tensor");
    /* an empty sequence read from a file carries no element type: nothing to check */
    int untyped = v->kind == FERRY_VALUE_SEQUENCE && !v->dtype && !v->seq_len;
    if (t->dtype && v->dtype != t->dtype && !untyped)
        return fy_error(FERRY_E_DTYPE, "input \"%s\": expected %s, got %s", vi->name,
                        ferry_dtype_name(t->dtype), ferry_dtype_name(v->dtype));
    if (v->kind != FERRY_VALUE_TENSOR || t->rank < 0) return FERRY_OK;
    char want[256], got[256];
    int bad = v->rank != t->rank;
    for (int i = 0; !bad && i < t->rank; i++) bad = t->dims[i] >= 0 && t->dims[i] != v->dims[i];
    if (bad) {
        size_t at = 0;
        at += snprintf(want + at, sizeof want - at, "[");
        for (int i = 0; i < t->rank && at < sizeof want; i++) {
            if (t->dims[i] >= 0)
                at += snprintf(want + at, sizeof want - at, "%s%lld", i ? "," : "",
                               (long long)t->dims[i]);
            else
                at += snprintf(want + at, sizeof want - at, "%s%s", i ? "," : "",
                               t->dim_names[i] ? t->dim_names[i] : "?");
        }
        if (at < sizeof want) snprintf(want + at, sizeof want - at, "]");
        return fy_error(FERRY_E_SHAPE, "input \"%s\": expected shape %s, got %s", vi->name, want,
                        fy_shape_str(v->rank, v->dims, got, sizeof got));
    }
    return FERRY_OK;
}

ferry_status ferry_session_run(ferry_session *s, int n_inputs, const char *const *names,
                               ferry_value *const *inputs, ferry_value **outputs)
{
    if (!s || (n_inputs && (!names || !inputs)) || !outputs)
        return fy_error(FERRY_E_INVALID_ARG, "session, names, inputs and outputs must be given");
    const struct ferry_model *m = s->model;
    const fy_graph *g = m->graph;
    fy_value *bound_stack[64] = {0};
    fy_value **bound = g->n_inputs <= 64 ? bound_stack : calloc(g->n_inputs, sizeof(fy_value *));
    ferry_status rc = FERRY_OK;
    if (!bound) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < n_inputs && rc == FERRY_OK; i++) {
        int slot = -1;
        for (int j = 0; j < g->n_inputs && slot < 0; j++)
            if (names[i] && strcmp(g->values[g->inputs[j]].name, names[i]) == 0) slot = j;
        if (slot < 0) rc = fy_error(FERRY_E_INVALID_ARG, "the model has no input named \"%s\"",
                                    names[i] ? names[i] : "(null)");
        else if (bound[slot]) rc = fy_error(FERRY_E_INVALID_ARG, "input \"%s\" is given twice", names[i]);
        else if ((rc = check_input(&g->values[g->inputs[slot]], inputs[i])) == FERRY_OK)
            bound[slot] = inputs[i];
    }
    for (int j = 0; j < g->n_inputs && rc == FERRY_OK; j++) {
        const fy_value_info *vi = &g->values[g->inputs[j]];
        if (!bound[j] && !vi->init && !vi->type.optional)
            rc = fy_error(FERRY_E_INVALID_ARG, "input \"%s\" is required", vi->name);
    }
    if (rc == FERRY_OK) {
        omp_set_num_threads(s->threads);
        fy_run_ctx run = {.threads = s->threads, .pool = s->pool, .states = s->states,
                          .node_calls = s->node_calls, .node_seconds = s->node_seconds};
        rc = fy_graph_exec(g, bound, NULL, &run, 0, outputs);
        __atomic_store(&s->last_flops, &run.flops, __ATOMIC_RELAXED); /* runs may be concurrent */
    }
    /* outputs that still point into the model's weights are copied: the caller may outlive it */
    for (int i = 0; rc == FERRY_OK && i < g->n_outputs; i++) {
        fy_value *v = outputs[i];
        if (v->kind == FERRY_VALUE_TENSOR && v->buf && v->buf->borrowed) {
            fy_value *copy;
            rc = fy_tensor_clone(v, &copy);
            if (rc == FERRY_OK) {
                fy_value_unref(v);
                outputs[i] = copy;
            }
        }
    }
    if (rc != FERRY_OK)
        for (int i = 0; i < g->n_outputs; i++) {
            fy_value_unref(outputs[i]);
            outputs[i] = NULL;
        }
    if (bound != bound_stack) free(bound);
    return rc;
}

ferry_status ferry_session_set_profiling(ferry_session *s, int on)
{
    if (!s) return fy_error(FERRY_E_INVALID_ARG, "session is NULL");
    free(s->node_calls), free(s->node_seconds);
    s->node_calls = NULL, s->node_seconds = NULL;
    if (!on) return FERRY_OK;
    int n = s->model->n_node_ids;
    s->node_calls = calloc(n + 1, sizeof *s->node_calls);
    s->node_seconds = calloc(n + 1, sizeof *s->node_seconds);
    if (!s->node_calls || !s->node_seconds) return fy_error(FERRY_E_NOMEM, "out of memory");
    return FERRY_OK;
}

void ferry_session_foreach_profile(const ferry_session *s,
                                   void (*fn)(const ferry_node_profile *p, void *user), void *user)
{
    for (int i = 0; s && s->node_calls && i < s->model->n_node_ids; i++) {
        const fy_node *n = s->nodes[i];
        if (!n || !s->node_calls[i]) continue;
        ferry_node_profile p = {n->name, n->op_type, n->op->backend, s->node_calls[i], s->node_seconds[i]};
        fn(&p, user);
    }
}
