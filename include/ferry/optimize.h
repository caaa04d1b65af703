/* optimize.h — the public entry point behind `ferry optimize`: read a model, rewrite it (graph
 * passes, fp16, pruning, int8), write it back as standard ONNX and report what it cost. */
#ifndef FERRY_OPTIMIZE_H
#define FERRY_OPTIMIZE_H

#include <stdint.h>

#include "ferry/ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Graph optimization levels; the names and meaning follow ONNX Runtime's. */
typedef enum ferry_opt_level {
    FERRY_OPT_NONE = 0,     /* write the graph as read */
    FERRY_OPT_BASIC = 1,    /* constant folding, Identity/Dropout removal, shape folding */
    FERRY_OPT_EXTENDED = 2, /* + Conv+BN, Conv+Add, Conv/Gemm+activation, MatMul+Add→Gemm */
    FERRY_OPT_ALL = 3,      /* + LayerNorm and GELU fusion */
} ferry_opt_level;

enum { FERRY_INT8_OFF = 0, FERRY_INT8_DYNAMIC = 1, FERRY_INT8_STATIC = 2 };
enum { FERRY_CALIB_MINMAX = 0, FERRY_CALIB_PERCENTILE = 1, FERRY_CALIB_ENTROPY = 2 };

typedef struct ferry_optimize_options {
    ferry_opt_level level;    /* default FERRY_OPT_EXTENDED */

    /* float16: weights and compute in half precision, float32 inputs/outputs kept */
    int fp16;
    /* comma-separated op types or node names kept in float32; NULL: the automatic list
     * (Softmax/LayerNorm inputs, Exp/Log/Pow paths, Resize) */
    const char *keep_fp32;

    /* magnitude pruning of Conv/Gemm/MatMul weights: target sparsity in [0, 1), 0 = off */
    double prune;
    int prune_structured; /* whole output channels by L2 norm */
    int prune_per_layer;  /* threshold per layer instead of one global threshold */

    /* weights in a side file OUT.data (always for models over 2 GB) */
    int external_data;

    /* ---- int8 quantization ------------------------------------------------------------- */
    int int8;                 /* FERRY_INT8_OFF, FERRY_INT8_DYNAMIC or FERRY_INT8_STATIC */
    const char *calibration;  /* static: calibration samples (.npy, first axis = samples;
                               * uint8 is scaled to 0..1); dynamic: optional, for SQNR */
    int64_t calib_limit;      /* calibration samples used; 0: 1000 */
    int calibrate;            /* FERRY_CALIB_MINMAX, _PERCENTILE or _ENTROPY */
    double percentile;        /* for FERRY_CALIB_PERCENTILE; 0: 99.99 */
    int reduce_range;         /* 7-bit weights: -1 auto (when the CPU lacks VNNI), 0 off, 1 on */
    int per_channel;          /* weights per output channel (default 1) */
    const char *int8_keep_float; /* comma-separated layer (node) names kept in float32 */
    /* accuracy-aware search: the most top-1 points (on eval_data/eval_labels) int8 may cost;
     * layers are fallen back to float32, most harmful first, until it holds. < 0: off */
    double accuracy_budget;

    /* ---- report ------------------------------------------------------------------------ */
    const char *report_path;  /* .md or .json; NULL: no report file */
    const char *eval_data;    /* optional: samples for accuracy and agreement (.npy, .npz,
                                 IDX (.gz ok), CSV; see ferry/dataset.h) */
    const char *eval_labels;  /* optional: class labels for eval_data (a CSV's label column
                                 is used when this is NULL) */
    double eval_scale;        /* samples become (x - eval_mean) * eval_scale; 0: 1/255 for */
    double eval_mean;         /* uint8 data going into a float input, else 1 */
    int64_t eval_limit;       /* 0: every sample */
    int bench_batch;          /* batch size of the latency comparison (default 1) */
    int bench_runs;           /* runs per model in the latency comparison (default 20; 0 off) */
    int progress;             /* draw a progress bar on stderr during evaluation */
} ferry_optimize_options;

/* What one ferry_optimize call did (filled even when no report file is asked for). */
typedef struct ferry_optimize_summary {
    int64_t in_file_bytes, out_file_bytes;   /* model file (+ external data) on disk */
    int64_t in_param_bytes, out_param_bytes; /* bytes of all initializers */
    int64_t in_nodes, out_nodes;
    double in_latency_ms, out_latency_ms;    /* medians; 0 when not measured */
    double in_accuracy, out_accuracy;        /* -1 when no labels were given */
    double agreement;                        /* top-1 agreement with the original; -1: none */
    double max_rel_error;                    /* worst output error vs the original; -1: none */
} ferry_optimize_summary;

/* Defaults: level EXTENDED, no fp16, no pruning, bench_batch 1, bench_runs 20. */
void ferry_optimize_options_init(ferry_optimize_options *o);

/* Read in_path, optimize it as o says, write out_path (and its external data beside it), and
 * write the report if asked. summary may be NULL. */
ferry_status ferry_optimize(const char *in_path, const char *out_path,
                            const ferry_optimize_options *o, ferry_optimize_summary *summary);

/* Write a loaded model back as an ONNX file (what ferry_model_load read, with ferry's own graph
 * rewrites if it ran them). external_data: weights go to "<out_path>.data" beside it. */
ferry_status ferry_model_save(const ferry_model *m, const char *out_path, int external_data);

#ifdef __cplusplus
}
#endif

#endif
