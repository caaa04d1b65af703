/* exec.h — running an IR graph: one frame per graph invocation holding the live values.
 * Used by sessions for the main graph and by control-flow kernels for subgraphs. */
#ifndef FY_RUNTIME_EXEC_H
#define FY_RUNTIME_EXEC_H

#include "core/graph.h"

typedef struct fy_frame {
    const fy_graph *g;
    fy_value **env; /* one slot per value id */
    int threads;
    double *flops;
    int depth;      /* subgraph nesting, bounded against runaway recursion */
    struct fy_pool *pool;
} fy_frame;

/* What every graph invocation of one session run shares. */
typedef struct fy_run_ctx {
    int threads;
    double *flops;
    struct fy_pool *pool;
} fy_run_ctx;

/* Run g. inputs[i] (borrowed, may be NULL to keep an initializer default) binds to graph input
 * i; outer[i] (borrowed) fills capture slot i. outputs receives new references. */
ferry_status fy_graph_exec(const fy_graph *g, fy_value *const *inputs, fy_value *const *outer,
                           const fy_run_ctx *run, int depth, fy_value **outputs);

#endif
