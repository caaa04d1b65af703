/* model_opt.h — the model-level rewrites behind `ferry optimize` (fp16.c, prune.c) and the
 * report (report.c): what each did is collected in one log that the report prints. */
#ifndef FY_OPTIMIZE_MODEL_OPT_H
#define FY_OPTIMIZE_MODEL_OPT_H

#include <stdbool.h>

#include "ferry/optimize.h"
#include "onnx/model.h"

typedef struct fy_layer_stat {
    char *name; /* the weight's name */
    char *node; /* the first node reading it */
    char *op;
    int64_t count, zeros;  /* elements; zeros after pruning */
    int64_t channels, channels_pruned; /* structured pruning */
} fy_layer_stat;

typedef struct fy_kept_node {
    char *node, *op, *why;
} fy_kept_node;

typedef struct fy_opt_log {
    /* pruning */
    int n_layers;
    fy_layer_stat *layers;
    double prune_threshold; /* the global magnitude (or channel RMS) threshold; -1 per layer */
    /* fp16 */
    int n_half, n_casts; /* nodes computing in float16, Casts inserted */
    int n_kept;
    fy_kept_node *kept;  /* nodes left in float32 that had float32 data, and why */
    /* int8 (quantize_search.c), NULL when off */
    struct fy_int8_log *int8;
} fy_opt_log;

void fy_opt_log_free(fy_opt_log *log);

/* Convert the main graph to float16 (see fp16.c); keep: comma-separated op types or node names
 * kept in float32 (NULL: the automatic list). Inputs and outputs stay float32. */
ferry_status fy_fp16_convert(struct ferry_model *m, const char *keep, fy_opt_log *log);

/* At load: compute a float16 model in float32 when its float16 values live only between Casts
 * and simple ops (widening the weights once); leaves any other graph as it is. */
ferry_status fy_fp16_lift(struct ferry_model *m);

/* Magnitude-prune Conv/Gemm/MatMul weights to the given sparsity (see prune.c). */
ferry_status fy_prune(struct ferry_model *m, double sparsity, bool structured, bool per_layer,
                      fy_opt_log *log);

/* Write the report (.md or .json by extension). */
ferry_status fy_report_write(const char *path, const char *model_in, const char *model_out,
                             const ferry_optimize_options *o, const ferry_optimize_summary *s,
                             const fy_opt_log *log);

#endif
