/* exec.c — the interpreter loop: call each node's kernel in plan order, hand values to their
 * consumers, and release every value right after its last reader so memory is reused. */
#include "runtime/exec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Replace the value in slot v by its plain row-major form (backend layouts stay between the
 * kernels that accept them; everyone else sees plain tensors). */
static ferry_status make_plain(fy_value **slot)
{
    fy_value *v = *slot, *plain;
    if (!v || v->kind != FERRY_VALUE_TENSOR || !v->layout) return FERRY_OK;
    FY_CHECK(v->layout->to_plain(v, &plain));
    fy_value_unref(v);
    *slot = plain;
    return FERRY_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
    int blocked_ok = nd->op->flags & FY_OP_BLOCKED_INPUTS;
    for (int j = 0; j < nd->n_inputs; j++) {
        int v = nd->inputs[j];
        if (v >= 0 && !blocked_ok && (rc = make_plain(&f->env[v])) != FERRY_OK) goto out;
        in[j] = v >= 0 ? f->env[v] : NULL;
    }
    memset(out, 0, sizeof(fy_value *) * (nd->n_outputs ? nd->n_outputs : 1));
    fy_run_ctx *run = f->run;
    fy_kernel k = {
        .node = nd, .n_inputs = nd->n_inputs, .inputs = in, .n_outputs = nd->n_outputs,
        .outputs = out, .frame = f, .threads = run->threads, .flops = &run->flops,
        .pool = run->pool, .state = run->states ? run->states[nd->id] : NULL,
    };
    double start = run->node_seconds ? now_seconds() : 0;
    rc = nd->op->run(&k);
    if (run->node_seconds) {
        run->node_seconds[nd->id] += now_seconds() - start;
        run->node_calls[nd->id]++;
    }
    if (rc == FERRY_OK) run->flops += fy_node_flops(nd, in, out);
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

/* 8 KiB; subgraphs nest at most FY_MAX_SUBGRAPH_DEPTH deep, each with its own table. */
#define ENV_ON_STACK 1024

ferry_status fy_graph_exec(const fy_graph *g, fy_value *const *inputs, fy_value *const *outer,
                           fy_run_ctx *run, int depth, fy_value **outputs)
{
    if (depth > FY_MAX_SUBGRAPH_DEPTH)
        return fy_error(FERRY_E_INVALID_ARG, "subgraphs nested deeper than %d at run time",
                        FY_MAX_SUBGRAPH_DEPTH);
    fy_frame f = {.g = g, .run = run, .depth = depth};
    /* The value table lives on the stack for graphs of usual size: no allocation per run. */
    fy_value *env_stack[ENV_ON_STACK];
    f.env = g->n_values <= ENV_ON_STACK ? env_stack : malloc(sizeof(fy_value *) * g->n_values);
    if (!f.env) return fy_error(FERRY_E_NOMEM, "out of memory");
    memset(f.env, 0, sizeof(fy_value *) * g->n_values);
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
        if ((rc = make_plain(&f.env[g->outputs[i]])) != FERRY_OK) break;
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
    if (f.env != env_stack) free(f.env);
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
    ferry_status rc = fy_graph_exec(g, inputs, outer, k->frame->run, k->frame->depth + 1, outputs);
    if (outer != outer_stack) free(outer);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s), subgraph \"%s\"", k->node->name,
                             k->node->op_type, g->name);
    return FERRY_OK;
}
