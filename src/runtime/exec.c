/* exec.c — the interpreter loop: call each node's kernel in plan order, hand values to their
 * consumers, and release every value right after its last reader so memory is reused. */
#include "runtime/exec.h"

#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "runtime/flops.h"

#define FY_MAX_SUBGRAPH_DEPTH 64

static void release_dead(fy_frame *f, const fy_node *nd, int index)
{
    const fy_graph *g = f->g;
    for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
        int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
        if (v >= 0 && g->last_use[v] == index && f->env[v]) {
            fy_value_unref(f->env[v]);
            f->env[v] = NULL;
        }
    }
    for (int j = 0; j < nd->n_outputs; j++) {
        int v = nd->outputs[j];
        if (v >= 0 && g->last_use[v] < 0 && f->env[v]) {
            fy_value_unref(f->env[v]);
            f->env[v] = NULL;
        }
    }
}

static ferry_status run_node(fy_frame *f, int index)
{
    const fy_node *nd = &f->g->nodes[index];
    fy_value *in_stack[16], *out_stack[16];
    fy_value **in = nd->n_inputs <= 16 ? in_stack : malloc(sizeof(fy_value *) * nd->n_inputs);
    fy_value **out = nd->n_outputs <= 16 ? out_stack : malloc(sizeof(fy_value *) * nd->n_outputs);
    ferry_status rc = FERRY_OK;
    if (!in || !out) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < nd->n_inputs; j++) in[j] = nd->inputs[j] >= 0 ? f->env[nd->inputs[j]] : NULL;
    memset(out, 0, sizeof(fy_value *) * (nd->n_outputs ? nd->n_outputs : 1));
    fy_kernel k = {
        .node = nd, .n_inputs = nd->n_inputs, .inputs = in, .n_outputs = nd->n_outputs,
        .outputs = out, .frame = f, .threads = f->threads, .flops = f->flops, .pool = f->pool,
    };
    rc = nd->op->run(&k);
    if (rc == FERRY_OK && f->flops) *f->flops += fy_node_flops(nd, in, out);
    for (int j = 0; j < nd->n_outputs; j++) {
        int v = nd->outputs[j];
        if (rc == FERRY_OK && v >= 0) {
            fy_value_unref(f->env[v]);
            f->env[v] = out[j];
        } else {
            fy_value_unref(out[j]);
        }
    }
out:
    if (in != in_stack) free(in);
    if (out != out_stack) free(out);
    return rc;
}

ferry_status fy_graph_exec(const fy_graph *g, fy_value *const *inputs, fy_value *const *outer,
                           const fy_run_ctx *run, int depth, fy_value **outputs)
{
    if (depth > FY_MAX_SUBGRAPH_DEPTH)
        return fy_error(FERRY_E_INVALID_ARG, "subgraphs nested deeper than %d at run time",
                        FY_MAX_SUBGRAPH_DEPTH);
    fy_frame f = {.g = g, .threads = run->threads, .flops = run->flops, .depth = depth, .pool = run->pool};
    f.env = calloc(g->n_values + 1, sizeof(fy_value *));
    if (!f.env) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = FERRY_OK;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init) f.env[v] = fy_value_ref(g->values[v].init);
    for (int i = 0; i < g->n_inputs; i++)
        if (inputs[i]) {
            fy_value_unref(f.env[g->inputs[i]]);
            f.env[g->inputs[i]] = fy_value_ref(inputs[i]);
        }
    for (int i = 0; i < g->n_outer; i++) f.env[g->outer[i]] = fy_value_ref(outer[i]);

    for (int i = 0; i < g->n_nodes && rc == FERRY_OK; i++) {
        rc = run_node(&f, i);
        if (rc == FERRY_OK) release_dead(&f, &g->nodes[i], i);
    }
    for (int i = 0; i < g->n_outputs; i++) outputs[i] = NULL;
    for (int i = 0; i < g->n_outputs && rc == FERRY_OK; i++) {
        fy_value *v = f.env[g->outputs[i]];
        if (!v) {
            rc = fy_error(FERRY_E_INVALID_ARG, "graph output \"%s\" was not produced",
                          g->values[g->outputs[i]].name);
            break;
        }
        outputs[i] = fy_value_ref(v);
    }
    if (rc != FERRY_OK)
        for (int i = 0; i < g->n_outputs; i++) {
            fy_value_unref(outputs[i]);
            outputs[i] = NULL;
        }
    for (int v = 0; v < g->n_values; v++) fy_value_unref(f.env[v]);
    free(f.env);
    return rc;
}

ferry_status fy_kernel_run_graph(fy_kernel *k, const fy_graph *g, int n_inputs,
                                 fy_value *const *inputs, fy_value **outputs)
{
    if (!g) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "subgraph is missing");
    if (n_inputs != g->n_inputs)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "subgraph \"%s\" takes %d inputs, given %d",
                               g->name, g->n_inputs, n_inputs);
    fy_value *outer_stack[32] = {0};
    fy_value **outer = g->n_outer <= 32 ? outer_stack : malloc(sizeof(fy_value *) * g->n_outer);
    if (!outer) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < g->n_outer; i++) outer[i] = k->frame->env[g->outer_src[i]];
    fy_run_ctx run = {k->threads, k->flops, k->pool};
    ferry_status rc = fy_graph_exec(g, inputs, outer, &run, k->frame->depth + 1, outputs);
    if (outer != outer_stack) free(outer);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s), subgraph \"%s\"", k->node->name,
                             k->node->op_type, g->name);
    return FERRY_OK;
}
