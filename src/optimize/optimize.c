/* optimize.c — the pass pipeline run on every model at load: BASIC cleanup and folding until
 * nothing changes, then EXTENDED (Conv/Gemm fusions), ALL (LayerNorm, GELU) and RUNTIME
 * (attention) rewrites, in every graph of the model. The passes themselves live in fold.c, fuse_conv.c and
 * fuse_transformer.c; graph_edit.c keeps the IR consistent between them. */
#include "optimize/passes.h"

#include <stdlib.h>
#include <string.h>

#include "ops/infer.h"
#include "optimize/pass_impl.h"

/* Folding rounds are bounded: each round that changes something removes nodes, so this only
 * guards against a pass that would keep rewriting forever. */
#define FY_OPT_MAX_ROUNDS 8

typedef int (*pass_fn)(fy_rewrite *rw);

/* Run one sweep and commit what it changed; adds the rewrite count to *total. */
static ferry_status sweep(fy_rewrite *rw, pass_fn pass, int *total)
{
    int n = pass(rw);
    if (rw->error != FERRY_OK) return rw->error;
    if (rw->changes) FY_CHECK(fy_rw_commit(rw));
    if (total) *total += n;
    return FERRY_OK;
}

/* Re-run shape inference from scratch. fy_graph_infer never revises a type once set, but
 * folding makes more shape values constant, so earlier (partial) results are dropped first.
 * Only node outputs that are not graph outputs are reset: those are never declared by the
 * model (the loader reads no value_info), so every type they hold was inferred. */
static void reinfer(fy_graph *g)
{
    unsigned char *keep = calloc(g->n_values + 1, 1);
    if (!keep) return; /* inference is best effort: keep what is there */
    for (int i = 0; i < g->n_outputs; i++) keep[g->outputs[i]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_outputs; j++) {
            int v = n->outputs[j];
            if (v < 0 || keep[v] || g->values[v].init) continue;
            fy_type_info *t = &g->values[v].type;
            for (int d = 0; d < FERRY_MAX_RANK; d++) free(t->dim_names[d]);
            memset(t, 0, sizeof *t);
            t->rank = -1;
        }
    }
    free(keep);
    fy_graph_infer(g);
}

/* Sweep a pass until it finds nothing more: a rewrite can create the next match (Conv + Relu
 * becomes a FusedConv that a following Clip can join), which one sweep does not see because
 * nodes touched in a sweep are not matched again in it. */
static ferry_status repeat(fy_rewrite *rw, pass_fn pass)
{
    for (int round = 0; round < FY_OPT_MAX_ROUNDS; round++) {
        int n = 0;
        FY_CHECK(sweep(rw, pass, &n));
        if (!n) break;
    }
    return FERRY_OK;
}

static int fold_with_shapes(fy_rewrite *rw) { return fy_pass_fold_constants(rw, true); }
static int fold_plain(fy_rewrite *rw) { return fy_pass_fold_constants(rw, false); }

static ferry_status optimize_graph(struct ferry_model *m, fy_graph *g, fy_opt_level level,
                                   bool main_graph);

static ferry_status optimize_subgraphs(struct ferry_model *m, fy_graph *g, fy_opt_level level)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            const fy_attr *at = &g->nodes[i].attrs[a];
            if (at->g) FY_CHECK(optimize_graph(m, at->g, level, false));
            for (int64_t j = 0; at->graphs && j < at->n; j++)
                FY_CHECK(optimize_graph(m, at->graphs[j], level, false));
        }
    return FERRY_OK;
}

static ferry_status run_levels(fy_rewrite *rw, fy_opt_level level, bool main_graph)
{
    fy_graph *g = rw->g;
    /* Shapes are folded only in the main graph: its inputs are checked against their declared
     * types by every session, while a subgraph's declared types are never checked. */
    pass_fn fold = main_graph ? fold_with_shapes : fold_plain;
    for (int round = 0; round < FY_OPT_MAX_ROUNDS; round++) {
        int n = 0;
        FY_CHECK(sweep(rw, fy_pass_eliminate_identity, &n));
        reinfer(g);
        FY_CHECK(sweep(rw, fold, &n));
        FY_CHECK(sweep(rw, fy_pass_remove_dead, &n));
        if (!n) break;
    }
    if (level < FY_OPT_EXTENDED) return FERRY_OK;
    reinfer(g);
    static const pass_fn extended[] = {fy_pass_fuse_conv_bn, fy_pass_fuse_conv_add,
                                       fy_pass_fuse_conv_activation, fy_pass_matmul_add_to_gemm,
                                       fy_pass_fuse_gemm_activation};
    for (size_t i = 0; i < sizeof extended / sizeof extended[0]; i++) FY_CHECK(repeat(rw, extended[i]));
    if (level < FY_OPT_ALL) return FERRY_OK;
    FY_CHECK(repeat(rw, fy_pass_fuse_layernorm));
    FY_CHECK(repeat(rw, fy_pass_fuse_gelu));
    if (level < FY_OPT_RUNTIME) return FERRY_OK;
    FY_CHECK(repeat(rw, fy_pass_fuse_attention));
    return FERRY_OK;
}

static ferry_status optimize_graph(struct ferry_model *m, fy_graph *g, fy_opt_level level,
                                   bool main_graph)
{
    FY_CHECK(optimize_subgraphs(m, g, level));
    fy_rewrite rw;
    FY_CHECK(fy_rw_begin(&rw, m, g));
    ferry_status rc = run_levels(&rw, level, main_graph);
    fy_rw_end(&rw);
    return rc;
}

ferry_status fy_optimize_model(struct ferry_model *m, fy_opt_level level)
{
    if (level <= FY_OPT_NONE || !m || !m->graph) return FERRY_OK;
    return optimize_graph(m, m->graph, level, true);
}
