/* validate.h — ferry validate as a library call: evaluate a model on a labelled dataset, compare it
 * with a baseline, check gates and the signature, and write Markdown / JSON / HTML reports. */
#ifndef FERRY_VALIDATE_H
#define FERRY_VALIDATE_H

#include <stdio.h>

#include "ferry/dataset.h"
#include "ferry/ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ferry_task {
    FERRY_TASK_AUTO = 0, /* classification when the labels are integers and the output has
                            at least 2 columns, regression otherwise */
    FERRY_TASK_CLASSIFICATION,
    FERRY_TASK_REGRESSION,
} ferry_task;

/* What to validate. Strings are borrowed for the duration of ferry_validate. */
typedef struct ferry_validate_options {
    const char *model;    /* the candidate .onnx */
    const char *data;     /* samples: .npy, .npz[:ARRAY], IDX (.gz ok), .csv */
    const char *labels;   /* labels file; NULL: the CSV label column or the .npz's "y"/"labels" */
    const char *baseline; /* NULL, a .onnx path, or REPO/NAME@LABEL (labels.json of a repository) */
    ferry_task task;
    const char *const *gates; /* n_gates expressions such as "accuracy>=0.88" */
    int n_gates;
    int batch;          /* evaluation batch size; 0: 64 */
    int latency_runs;   /* batch-1 runs per model for the latency percentiles; 0: 200 */
    int threads;        /* per session; 0: one per core */
    int64_t limit;      /* evaluate only the first N samples; 0: all */
    double input_scale; /* y = (x - mean) * scale; 0: automatic (1/255 for uint8 data into a
                           float input, else 1) */
    double input_mean;
    const char *output;       /* the output to evaluate; NULL: the first */
    const char *label_column; /* CSV label column (name or index) */
    const char *class_names;  /* "a,b,c" or a file with one name per line; NULL: 0..C-1 */
} ferry_validate_options;

/* The result of one validation; opaque, freed with ferry_validation_free. */
typedef struct ferry_validation ferry_validation;

/* Check a gate expression without running anything: FERRY_OK or FERRY_E_INVALID_ARG with a
 * message that shows where the expression went wrong. */
ferry_status ferry_gate_check(const char *expr);

/* Run the validation. Returns an error only when it could not be carried out (bad usage or
 * input: FERRY_E_INVALID_ARG / PARSE / SHAPE / IO ...; a bug: FERRY_E_INTERNAL); failed gates
 * and breaking signature changes are results, see ferry_validation_passed. */
ferry_status ferry_validate(const ferry_validate_options *o, ferry_validation **out);

/* 1 when every gate passed and the signature is compatible with the baseline. */
int ferry_validation_passed(const ferry_validation *v);
/* Number of failures (failed gates plus a breaking signature change) and the i-th as one line. */
int ferry_validation_failure_count(const ferry_validation *v);
const char *ferry_validation_failure(const ferry_validation *v, int i);

/* Reports: Markdown (a PR comment: summary line, metrics table with baseline, delta, gates),
 * JSON (every metric, gates, per-class metrics, confusion matrix, latency histogram, signature,
 * data profile) and a self-contained HTML page with SVG charts. */
ferry_status ferry_validation_write_markdown(const ferry_validation *v, FILE *f);
ferry_status ferry_validation_write_json(const ferry_validation *v, FILE *f);
ferry_status ferry_validation_write_html(const ferry_validation *v, FILE *f);
/* The candidate's evaluated output as float64 .npy: probabilities [N, C] for classification
 * (after the softmax rule), raw outputs [N, K] for regression. */
ferry_status ferry_validation_write_predictions(const ferry_validation *v, const char *path);

void ferry_validation_free(ferry_validation *v);

#ifdef __cplusplus
}
#endif
#endif
