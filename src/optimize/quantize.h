/* quantize.h — int8 quantization of a model's IR (the engine behind `ferry optimize --int8`):
 * dynamic (weights int8, activations quantized at run time) and static QDQ with calibrated
 * activation ranges, per-layer error (SQNR) and the accuracy-aware fallback search. */
#ifndef FY_OPTIMIZE_QUANTIZE_H
#define FY_OPTIMIZE_QUANTIZE_H

#include <stdbool.h>
#include <stdio.h>

#include "onnx/model.h"

typedef enum fy_calib_method {
    FY_CALIB_MINMAX = 0,
    FY_CALIB_PERCENTILE = 1, /* drop the outer (100 - percentile)% of values on each side */
    FY_CALIB_ENTROPY = 2,    /* the threshold minimizing KL divergence (TensorRT's method) */
} fy_calib_method;

typedef struct fy_quant_config {
    int dynamic;            /* 1: dynamic (MatMul/Gemm weights only); 0: static QDQ */
    fy_calib_method method; /* static only */
    double percentile;      /* for FY_CALIB_PERCENTILE; 0: 99.99 */
    int reduce_range;       /* -1 auto (on when the CPU lacks VNNI), 0 off, 1 on */
    int per_channel;        /* weights per output channel (1) or per tensor (0) */
    /* nodes (by name) kept in float32: the accuracy-aware search's fallbacks */
    int n_keep_float;
    const char *const *keep_float;
    /* calibration samples, [N, ...] for the model's first input (static only) */
    const fy_value *calib;
    int64_t calib_batch;    /* samples per calibration run; 0: 32 */
    int progress;           /* progress bar on stderr */
} fy_quant_config;

/* One quantizable layer (Conv, Gemm, MatMul) of the model and what became of it. */
typedef struct fy_quant_layer {
    char *node;       /* node name */
    char *op;         /* op type */
    int quantized;    /* 0: kept in float32 */
    char why[160];    /* why it stayed in float32 ("" when quantized) */
    /* SQNR of the layer's output, float model vs QDQ model, on up to 256 calibration samples
     * (NaN: not measured, e.g. dynamic mode without data) */
    double sqnr_db;
} fy_quant_layer;

typedef struct fy_quant_report {
    int dynamic;
    const char *method;   /* "minmax", "percentile", "entropy" (static) */
    int reduce_range;     /* what was used */
    int vnni;             /* what the CPU has */
    int per_channel;
    int64_t calib_samples;
    int n_layers;
    fy_quant_layer *layers;
    int n_tensors;        /* activation tensors quantized */
} fy_quant_report;

void fy_quant_report_free(fy_quant_report *r);

/* Whether this CPU has AVX512_VNNI or AVX_VNNI (cpuid): int8 dot products without the 16-bit
 * saturation of VPMADDUBSW. */
bool fy_cpu_has_vnni(void);

/* Quantize m's IR in place as c says. The model's graph should hold standard ONNX ops (BASIC
 * level or none; this runs BASIC cleanup and Conv+BatchNormalization folding itself). Static
 * mode runs the float model on c->calib (m is bound to kernels for that, which writing it back
 * does not mind). rep (may be NULL) is filled with what was done. */
ferry_status fy_quantize_model(struct ferry_model *m, const fy_quant_config *c,
                               fy_quant_report *rep);

/* ---- helpers shared by quantize*.c -------------------------------------------------------- */

/* Run m on the samples of x (batches of `batch` along dim 0) and call fn with the values of the
 * value ids `ids` (plain float32 tensors) after each batch. The ids become extra graph outputs
 * for the duration. label: progress bar text (NULL: none). */
typedef ferry_status (*fy_tap_fn)(void *user, int n_ids, fy_value *const *vals);
ferry_status fy_quant_tap(struct ferry_model *m, const fy_value *x, int64_t batch,
                          int n_ids, const int *ids, const char *label, fy_tap_fn fn,
                          void *user);

/* Activation range of one tensor from calibration. */
typedef struct fy_range {
    float lo, hi;
} fy_range;

/* Calibrate the value ids of m on x with method: ranges[i] for ids[i]. */
ferry_status fy_quant_calibrate(struct ferry_model *m, const fy_value *x, int64_t batch,
                                int n_ids, const int *ids, fy_calib_method method,
                                double percentile, int progress, fy_range *ranges);

/* SQNR in dB of b against the reference a: 10 log10(sum a^2 / sum (a-b)^2). */
double fy_sqnr_db(const float *a, const float *b, int64_t n);

/* ---- the int8 step of ferry optimize (quantize_search.c) --------------------------------- */

struct ferry_optimize_options;

/* One configuration the accuracy-aware search measured. */
typedef struct fy_int8_trial {
    char *kept;      /* comma-separated layers kept in float32 ("" = none) */
    double accuracy; /* top-1 on the eval set, in [0, 1] */
} fy_int8_trial;

typedef struct fy_int8_log {
    fy_quant_report rep;  /* the final quantization */
    double budget;        /* accuracy budget in points; < 0: no search */
    double float_acc;     /* float32 top-1 on the eval set (-1: not measured) */
    double int8_acc;      /* final int8 top-1 (-1: not measured) */
    int met;              /* the search met the budget */
    int n_trials;
    fy_int8_trial *trials;
} fy_int8_log;

void fy_int8_log_free(fy_int8_log *log);

/* Quantize m (loaded from in_path, float passes at most BASIC) as o asks: calibration data,
 * method, reduce_range, and the accuracy-aware search when o->accuracy_budget >= 0 (which
 * re-reads in_path for each configuration it tries). log receives what happened. */
ferry_status fy_int8_apply(struct ferry_model *m, const char *in_path,
                           const struct ferry_optimize_options *o, fy_int8_log *log);

/* The int8 section of the optimize report, Markdown. */
void fy_int8_report_md(FILE *f, const fy_int8_log *log);
/* ... and as a JSON object (a new reference; NULL when out of memory). */
struct json_t *fy_int8_report_json(const fy_int8_log *log);

#endif
