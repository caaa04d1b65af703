/* validate.h — what ferry validate's parts share inside libferry: the metric table, one model's
 * evaluation, gates, the data profile and the run's result that the three reports render. */
#ifndef FY_PIPELINE_VALIDATE_H
#define FY_PIPELINE_VALIDATE_H

#include <stdint.h>
#include <stdio.h>

#include "ferry/validate.h"

/* Every metric ferry validate knows: id, name, unit, direction (1 higher is better), what it is.
 * Gates name metrics by these names; a name outside the table is a usage error, a name in it
 * that this run did not compute (mae on a classifier) is a failed gate. */
#define FY_METRICS(X)                                                                              \
    X(ACCURACY, "accuracy", "", 1, "top-1 accuracy")                                               \
    X(TOP5, "top5_accuracy", "", 1, "true class among the 5 highest scores")                       \
    X(PRECISION_MACRO, "precision_macro", "", 1, "precision, unweighted mean over classes")        \
    X(RECALL_MACRO, "recall_macro", "", 1, "recall, unweighted mean over classes")                 \
    X(F1_MACRO, "f1_macro", "", 1, "F1, unweighted mean over classes")                             \
    X(LOG_LOSS, "log_loss", "", 0, "cross-entropy of the class probabilities")                     \
    X(MAE, "mae", "", 0, "mean absolute error")                                                    \
    X(MSE, "mse", "", 0, "mean squared error")                                                     \
    X(RMSE, "rmse", "", 0, "root mean squared error")                                              \
    X(R2, "r2", "", 1, "coefficient of determination")                                             \
    X(LATENCY_P50, "latency_p50_ms", "ms", 0, "median latency at batch 1")                         \
    X(LATENCY_P95, "latency_p95_ms", "ms", 0, "95th percentile latency at batch 1")                \
    X(LATENCY_P99, "latency_p99_ms", "ms", 0, "99th percentile latency at batch 1")                \
    X(LATENCY_MEAN, "latency_mean_ms", "ms", 0, "mean latency at batch 1")                         \
    X(THROUGHPUT, "throughput_per_s", "/s", 1, "samples per second at the evaluation batch size")  \
    X(SIZE, "size_mb", "MB", 0, "size of the .onnx file")                            \
    X(PEAK_RSS, "peak_rss_mb", "MB", 0, "peak resident memory added by loading and running")       \
    X(AGREEMENT, "agreement", "", 1,                                                               \
      "share of samples where candidate and baseline agree (top-1)")                               \
    X(MAX_ABS_DIFF, "max_abs_diff", "", 0, "largest |candidate - baseline| output difference")     \
    X(MEAN_ABS_DIFF, "mean_abs_diff", "", 0, "mean |candidate - baseline| output difference")

typedef enum fy_metric_id {
#define X(id, name, unit, hib, desc) FY_M_##id,
    FY_METRICS(X)
#undef X
        FY_M_COUNT
} fy_metric_id;

typedef struct fy_metric_def {
    const char *name, *unit;
    int higher_is_better;
    const char *description;
} fy_metric_def;

extern const fy_metric_def fy_metric_defs[FY_M_COUNT];
/* The metric named s, or -1. */
int fy_metric_find(const char *s, size_t len);
/* Comparison metrics exist only with a baseline and have no baseline value of their own. */
int fy_metric_is_comparison(int id);

/* Latency histogram bins for the reports. */
#define FY_LAT_BINS 24

/* One model's evaluation on the dataset. */
typedef struct fy_model_eval {
    char *path; /* the model file (resolved for REPO/NAME@LABEL) */
    char *spec; /* what the user wrote */
    double v[FY_M_COUNT];
    unsigned char has[FY_M_COUNT];
    /* signature, for the check and the report: "name", dtype, "[batch,1,28,28]" */
    int n_inputs, n_outputs;
    char (*in_name)[128], (*out_name)[128];
    ferry_dtype *in_dtype, *out_dtype;
    char (*in_shape)[160], (*out_shape)[160];
    /* outputs of the evaluated output: n rows of width (probabilities after the softmax rule for
     * classification, raw values for regression) and top-1 per row */
    int64_t n, width;
    double *scores;
    int64_t *top1;
    int softmax_applied; /* 1: outputs were logits and went through softmax */
    /* classification details (n_classes = width) */
    int64_t *confusion; /* [true][pred] */
    double *precision, *recall, *f1;
    int64_t *support;
    /* batch-1 latencies in ms, in run order */
    double *latency_ms;
    int n_latency;
    double eval_seconds; /* the batched pass over the whole set */
} fy_model_eval;

void fy_model_eval_free(fy_model_eval *e);

/* ---- gates (gates.c) ----------------------------------------------------------------------- */

typedef enum fy_gate_op { FY_GATE_GE, FY_GATE_LE, FY_GATE_GT, FY_GATE_LT } fy_gate_op;
/* The right-hand side: a constant; baseline + delta (delta may be negative); baseline * factor
 * (written as "baseline*1.1" or "baseline+10%"). */
typedef enum fy_gate_ref { FY_GATE_CONST, FY_GATE_BASE_ABS, FY_GATE_BASE_REL } fy_gate_ref;

typedef struct fy_gate {
    char text[160]; /* the expression as written, blanks removed */
    int metric;
    fy_gate_op op;
    fy_gate_ref ref;
    double value; /* the constant, the delta or the factor */
    /* evaluation */
    int passed;
    double candidate, baseline, threshold; /* NaN when not known */
    char reason[256];                      /* why it failed, or how it passed */
} fy_gate;

/* Parse "accuracy>=0.88", "f1_macro >= baseline - 0.005", "latency_p95_ms<=baseline*1.1",
 * "latency_p95_ms<=baseline+10%". FERRY_E_INVALID_ARG with a message that points at the
 * column and, for unknown metrics, suggests the nearest name. */
ferry_status fy_gate_parse(const char *expr, fy_gate *out);
/* MLflow threshold semantics: the candidate's value against a constant, baseline + delta or
 * baseline * factor (relative; when the baseline is 0 the candidate must beat it by 1e-10);
 * a metric missing from the candidate, or from the baseline for a relative/absolute-change
 * gate, fails with that reason. base may be NULL (no baseline given). */
void fy_gate_eval(fy_gate *g, const fy_model_eval *cand, const fy_model_eval *base);
const char *fy_gate_op_str(fy_gate_op op);

/* ---- metrics (metrics.c) ------------------------------------------------------------------- */

/* Classification metrics from e->scores (probabilities) and integer labels in [0, width). */
ferry_status fy_metrics_classification(fy_model_eval *e, const int64_t *labels);
/* Regression metrics from e->scores against labels of n * width values. */
ferry_status fy_metrics_regression(fy_model_eval *e, const double *labels);
/* Latency percentiles and mean from e->latency_ms. */
void fy_metrics_latency(fy_model_eval *e);
/* Agreement metrics of cand against base (same n and width), set on cand. */
void fy_metrics_compare(fy_model_eval *cand, const fy_model_eval *base, int classification);
/* The p-th percentile (0..100) of v (n values; sorted copy, linear interpolation as NumPy). */
double fy_percentile(const double *v, int64_t n, double p);
/* Softmax rule: rows that are already probabilities (every value in [0,1] and each row sums to
 * 1 within 1e-3) are kept; otherwise every row goes through softmax. Returns 1 if applied. */
int fy_scores_to_probabilities(double *scores, int64_t n, int64_t width);

/* ---- profile (profile.c) ------------------------------------------------------------------- */

/* Reference profile of the model inputs (after preprocessing) and outputs, as a JSON object
 * (jansson json_t *, returned as void * to keep jansson out of this header). */
void *fy_profile_build(const ferry_value *data, double scale, double mean, const fy_model_eval *e,
                       int classification);

/* ---- the run (validate.c) and its reports -------------------------------------------------- */

struct ferry_validation {
    ferry_validate_options opts;
    int classification;
    int64_t n_samples;
    char data_desc[256];
    double scale, mean;
    int scale_auto;
    char **class_names; /* n = cand.width for classification */
    fy_model_eval cand, base;
    int have_base;
    int signature_ok;
    char **sig_changes;
    int n_sig_changes;
    fy_gate *gates;
    int n_gates, n_failed;
    char **failures; /* every failure, gates and signature, as one-line text */
    int n_failures;
    void *profile; /* json_t * */
    double wall_seconds;
    int threads;
};

ferry_status fy_report_markdown(const ferry_validation *v, FILE *f);
ferry_status fy_report_json(const ferry_validation *v, FILE *f);
ferry_status fy_report_html(const ferry_validation *v, FILE *f);
/* "0.8805", "12.3", "1,234" — the way every report prints a metric value. */
const char *fy_metric_fmt(int id, double v, char *buf, size_t size);

#endif
