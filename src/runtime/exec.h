/* exec.h — running an IR graph: one frame per graph invocation holding the live values.
 * Used by sessions for the main graph and by control-flow kernels for subgraphs. */
#ifndef FY_RUNTIME_EXEC_H
#define FY_RUNTIME_EXEC_H

#include "core/graph.h"

/* What every graph invocation of one session run shares. */
typedef struct fy_run_ctx {
    int threads;
    double flops;         /* accumulated by the run */
    struct fy_pool *pool;
    void *const *states;  /* per node id: what the kernel's prepare() made, or NULL */
    /* profiling (NULL when off): per node id, calls and seconds */
    int64_t *node_calls;
    double *node_seconds;
} fy_run_ctx;

typedef struct fy_frame {
    const fy_graph *g;
    fy_value **env; /* one slot per value id */
    fy_run_ctx *run;
    int depth;      /* subgraph nesting, bounded against runaway recursion */
} fy_frame;

/* Run g. inputs[i] (borrowed, may be NULL to keep an initializer default) binds to graph input
 * i; outer[i] (borrowed) fills capture slot i. outputs receives new references, always in
 * plain layout. */
ferry_status fy_graph_exec(const fy_graph *g, fy_value *const *inputs, fy_value *const *outer,
                           fy_run_ctx *run, int depth, fy_value **outputs);

#endif
