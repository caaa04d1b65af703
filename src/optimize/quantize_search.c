/* quantize_search.c — the int8 step of `ferry optimize`: reading calibration and evaluation
 * samples, the accuracy-aware search (as Intel Neural Compressor's basic strategy does: quantize
 * everything, measure, fall each layer back to float32 alone to rank the harm it does, then fall
 * back cumulatively, most harmful first, until the accuracy drop is within the budget), and the
 * int8 section of the report. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dataset.h"
#include "ferry/optimize.h"
#include "optimize/passes.h"
#include "optimize/quantize.h"
#include "optimize/quantize_impl.h"
#include "runtime/bind.h"

#define DEFAULT_CALIB_LIMIT 1000
#define EVAL_BATCH 256

void fy_int8_log_free(fy_int8_log *log)
{
    if (!log) return;
    fy_quant_report_free(&log->rep);
    for (int i = 0; i < log->n_trials; i++) free(log->trials[i].kept);
    free(log->trials);
    memset(log, 0, sizeof *log);
}

/* Samples from path (.npy, .npz, IDX, CSV: ferry's dataset readers) fitted to m's first input
 * as evaluation fits them: (x - mean) * scale, by default 1/255 for uint8 images. At most limit
 * samples (0: all). labels (may be NULL) receives a CSV's label column, else NULL. */
static ferry_status load_samples(const struct ferry_model *m, const char *path, int64_t limit,
                                 const ferry_optimize_options *o, fy_value **out)
{
    *out = NULL;
    fy_value *d = NULL, *csv_labels = NULL;
    FY_CHECK(ferry_dataset_load(path, NULL, &d, &csv_labels));
    fy_value_unref(csv_labels);
    ferry_io_info info;
    ferry_status rc = ferry_model_input(m, 0, &info);
    if (rc == FERRY_OK && (d->kind != FERRY_VALUE_TENSOR || d->rank < 1 || d->dims[0] < 1 ||
                           !fy_dtype_is_numeric(d->dtype)))
        rc = fy_error(FERRY_E_INVALID_ARG, "%s: expected numeric samples along the first axis", path);
    if (rc == FERRY_OK && info.dtype != FERRY_DTYPE_F32)
        rc = fy_error(FERRY_E_UNSUPPORTED, "int8 quantization needs a float32 model input");
    int64_t n = rc == FERRY_OK ? d->dims[0] : 0;
    if (limit > 0 && n > limit) n = limit;
    ferry_fit_options fit = {.scale = o->eval_scale, .mean = o->eval_mean};
    if (rc == FERRY_OK && fit.scale == 0) fit.scale = ferry_dataset_default_scale(d->dtype, info.dtype);
    if (rc == FERRY_OK) rc = ferry_dataset_fit(d, 0, n, &info, &fit, out);
    fy_value_unref(d);
    return rc;
}

/* Top-1 accuracy of m on x against labels (first n of them). */
static ferry_status accuracy(struct ferry_model *m, const fy_value *x, const fy_value *labels,
                             const char *label, double *out)
{
    ferry_session *s;
    ferry_session_options so = {0};
    FY_CHECK(ferry_session_create(m, &so, &s));
    const char *name = m->graph->values[m->input_ids[0]].name;
    int64_t n = x->dims[0], ok = 0;
    int64_t batch = fy_quant_batch_size(m, EVAL_BATCH);
    ferry_status rc = FERRY_OK;
    int n_out = m->graph->n_outputs;
    fy_value **outs = calloc((size_t)n_out + 1, sizeof *outs);
    if (!outs) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    int64_t seen = 0;
    for (int64_t at = 0; rc == FERRY_OK && at < n; at += batch) {
        int64_t b = n - at < batch ? n - at : batch;
        fy_value *xb = NULL;
        rc = fy_batch_view(x, at, b, &xb);
        if (rc == FERRY_OK) rc = ferry_session_run(s, 1, &name, &xb, outs);
        fy_value_unref(xb);
        if (rc != FERRY_OK) break;
        const fy_value *y = outs[0];
        if (y->kind != FERRY_VALUE_TENSOR || y->rank != 2 || y->dims[0] != b) {
            rc = fy_error(FERRY_E_UNSUPPORTED, "accuracy needs a [batch, classes] first output");
        } else {
            int64_t cols = y->dims[1];
            for (int64_t r = 0; r < b; r++) {
                int64_t best = 0;
                for (int64_t c = 1; c < cols; c++)
                    if (fy_tensor_get_f64(y, r * cols + c) > fy_tensor_get_f64(y, r * cols + best))
                        best = c;
                ok += best == fy_tensor_get_i64(labels, at + r);
            }
            seen += b;
        }
        for (int i = 0; i < n_out; i++) {
            fy_value_unref(outs[i]);
            outs[i] = NULL;
        }
        fy_progress(label, at + b, n);
    }
    free(outs);
    ferry_session_free(s);
    if (rc == FERRY_OK) *out = seen ? (double)ok / (double)seen : 0;
    return rc;
}

/* Split a comma-separated list in place (names point into buf). */
static int split_list(char *buf, const char **names, int max)
{
    int n = 0;
    for (char *tok = strtok(buf, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok) names[n++] = tok;
    return n;
}

static void fill_config(fy_quant_config *c, const ferry_optimize_options *o, const fy_value *calib)
{
    memset(c, 0, sizeof *c);
    c->dynamic = o->int8 == FERRY_INT8_DYNAMIC;
    c->method = o->calibrate == FERRY_CALIB_PERCENTILE ? FY_CALIB_PERCENTILE
                : o->calibrate == FERRY_CALIB_ENTROPY  ? FY_CALIB_ENTROPY
                                                       : FY_CALIB_MINMAX;
    c->percentile = o->percentile;
    c->reduce_range = o->reduce_range;
    c->per_channel = o->per_channel;
    c->calib = calib;
    c->progress = o->progress;
}

/* Quantize a fresh copy of in_path keeping `keep` in float32, run it as ferry runs the written
 * file (load-time passes, int8 kernels), and measure its accuracy. */
static ferry_status try_config(const char *in_path, const fy_quant_config *base, int n_keep,
                               const char *const *keep, const fy_value *x, const fy_value *labels,
                               int progress, double *acc)
{
    ferry_model *m;
    FY_CHECK(ferry_model_load_flags(in_path, FERRY_LOAD_NO_OPTIMIZE, &m));
    fy_quant_config c = *base;
    c.n_keep_float = n_keep;
    c.keep_float = keep;
    c.progress = 0;
    ferry_status rc = fy_quantize_model(m, &c, NULL);
    if (rc == FERRY_OK) rc = fy_optimize_model(m, FY_OPT_ALL);
    if (rc == FERRY_OK) rc = fy_model_bind(m);
    if (rc == FERRY_OK) rc = accuracy(m, x, labels, progress ? "evaluating int8" : NULL, acc);
    ferry_model_free(m);
    return rc;
}

static ferry_status add_trial(fy_int8_log *log, int n_keep, const char *const *keep, double acc)
{
    fy_int8_trial *t = realloc(log->trials, sizeof *t * (size_t)(log->n_trials + 1));
    if (!t) return fy_error(FERRY_E_NOMEM, "out of memory");
    log->trials = t;
    size_t len = 1;
    for (int i = 0; i < n_keep; i++) len += strlen(keep[i]) + 1;
    char *s = malloc(len);
    if (!s) return fy_error(FERRY_E_NOMEM, "out of memory");
    s[0] = '\0';
    for (int i = 0; i < n_keep; i++) {
        if (i) strcat(s, ",");
        strcat(s, keep[i]);
    }
    t[log->n_trials++] = (fy_int8_trial){s, acc};
    return FERRY_OK;
}

typedef struct ranked {
    int layer;
    double gain; /* accuracy points won by keeping this layer alone in float32 */
    double sqnr;
} ranked;

static int by_harm(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->gain != y->gain) return x->gain > y->gain ? -1 : 1;
    return x->sqnr < y->sqnr ? -1 : x->sqnr > y->sqnr;
}

/* The search; on return keep/n_keep hold the fallback set and why[] the reasons. */
static ferry_status search(const char *in_path, const fy_quant_config *base,
                           const fy_quant_report *all, const fy_value *x, const fy_value *labels,
                           const ferry_optimize_options *o, fy_int8_log *log, const char **keep,
                           int *n_keep, char (*why)[160])
{
    ferry_model *f;
    FY_CHECK(ferry_model_load(in_path, &f));
    ferry_status rc = accuracy(f, x, labels, o->progress ? "evaluating float32" : NULL,
                               &log->float_acc);
    ferry_model_free(f);
    double a0 = 0;
    if (rc == FERRY_OK) rc = try_config(in_path, base, *n_keep, keep, x, labels, o->progress, &a0);
    if (rc == FERRY_OK) rc = add_trial(log, *n_keep, keep, a0);
    log->int8_acc = a0;
    double budget = o->accuracy_budget / 100.0;
    if (rc != FERRY_OK || log->float_acc - a0 <= budget + 1e-12) {
        log->met = rc == FERRY_OK;
        return rc;
    }
    /* rank: each quantized layer fallen back alone */
    int n = all->n_layers, n_r = 0, fixed = *n_keep;
    ranked *r = calloc((size_t)n + 1, sizeof *r);
    if (!r) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; rc == FERRY_OK && i < n; i++) {
        if (!all->layers[i].quantized) continue;
        keep[fixed] = all->layers[i].node;
        double a;
        rc = try_config(in_path, base, fixed + 1, keep, x, labels, 0, &a);
        if (rc == FERRY_OK) rc = add_trial(log, fixed + 1, keep, a);
        r[n_r++] = (ranked){i, (a - a0) * 100.0, all->layers[i].sqnr_db};
    }
    qsort(r, (size_t)n_r, sizeof *r, by_harm);
    /* fall back cumulatively, most harmful first */
    int k = fixed;
    for (int j = 0; rc == FERRY_OK && j < n_r; j++) {
        keep[k++] = all->layers[r[j].layer].node;
        snprintf(why[r[j].layer], 160,
                 "accuracy-aware fallback: alone in float32 it recovers %+.2f points (SQNR %.1f dB)",
                 r[j].gain, r[j].sqnr);
        double a;
        rc = try_config(in_path, base, k, keep, x, labels, 0, &a);
        if (rc == FERRY_OK) rc = add_trial(log, k, keep, a);
        if (rc == FERRY_OK) log->int8_acc = a;
        if (rc == FERRY_OK && log->float_acc - a <= budget + 1e-12) {
            log->met = 1;
            break;
        }
    }
    *n_keep = k;
    free(r);
    return rc;
}

ferry_status fy_int8_apply(struct ferry_model *m, const char *in_path,
                           const ferry_optimize_options *o, fy_int8_log *log)
{
    memset(log, 0, sizeof *log);
    log->budget = o->accuracy_budget;
    log->float_acc = log->int8_acc = -1;
    if (m->n_inputs < 1) return fy_error(FERRY_E_INVALID_ARG, "the model has no input");
    if (o->int8 == FERRY_INT8_STATIC && !o->calibration)
        return fy_error(FERRY_E_INVALID_ARG, "--int8 static needs --calibration DATA");
    if (o->accuracy_budget >= 0 && (!o->eval_data || !o->eval_labels))
        return fy_error(FERRY_E_INVALID_ARG, "--accuracy-budget needs --eval DATA and --labels LABELS");
    if (o->accuracy_budget >= 0 && (o->prune > 0 || o->fp16))
        return fy_error(FERRY_E_UNSUPPORTED, "--accuracy-budget does not combine with --prune or --fp16");
    fy_value *calib = NULL, *x = NULL, *labels = NULL;
    fy_quant_report all = {0}; /* keep[] may point at its layer names */
    ferry_status rc = FERRY_OK;
    int64_t limit = o->calib_limit > 0 ? o->calib_limit : DEFAULT_CALIB_LIMIT;
    if (o->calibration) rc = load_samples(m, o->calibration, limit, o, &calib);
    else if (o->eval_data) rc = load_samples(m, o->eval_data, 256, o, &calib); /* SQNR only */
    if (rc == FERRY_OK && o->accuracy_budget >= 0) {
        rc = load_samples(m, o->eval_data, o->eval_limit, o, &x);
        if (rc == FERRY_OK) rc = ferry_dataset_load(o->eval_labels, NULL, &labels, NULL);
        if (rc == FERRY_OK && (labels->count < x->dims[0] || !fy_dtype_is_int(labels->dtype)))
            rc = fy_error(FERRY_E_INVALID_ARG, "%s: expected at least %lld integer labels",
                          o->eval_labels, (long long)x->dims[0]);
    }
    fy_quant_config c;
    fill_config(&c, o, calib);
    char *list = o->int8_keep_float ? strdup(o->int8_keep_float) : NULL;
    const char **keep = NULL;
    char (*why)[160] = NULL;
    int n_keep = 0, cap = 0;
    if (rc == FERRY_OK && o->int8_keep_float && !list) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    if (rc == FERRY_OK) {
        cap = m->graph->n_nodes + 1 + (list ? (int)strlen(list) : 0);
        keep = calloc((size_t)cap, sizeof *keep);
        why = calloc((size_t)cap, sizeof *why);
        if (!keep || !why) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    }
    if (rc == FERRY_OK && list) n_keep = split_list(list, keep, cap);
    if (rc == FERRY_OK && o->accuracy_budget >= 0) {
        /* the layers and their SQNR with everything quantized rank ties in the search */
        ferry_model *probe;
        rc = ferry_model_load_flags(in_path, FERRY_LOAD_NO_OPTIMIZE, &probe);
        if (rc == FERRY_OK) {
            fy_quant_config pc = c;
            pc.n_keep_float = n_keep;
            pc.keep_float = keep;
            rc = fy_quantize_model(probe, &pc, &all);
            ferry_model_free(probe);
            if (rc == FERRY_OK) rc = search(in_path, &c, &all, x, labels, o, log, keep, &n_keep, why);
        }
    }
    c.n_keep_float = n_keep;
    c.keep_float = keep;
    if (rc == FERRY_OK) rc = fy_quantize_model(m, &c, &log->rep);
    /* reasons found by the search, by layer name */
    if (rc == FERRY_OK && o->accuracy_budget >= 0)
        for (int i = 0; i < log->rep.n_layers; i++) {
            fy_quant_layer *L = &log->rep.layers[i];
            if (L->quantized) continue;
            if (why[i][0]) snprintf(L->why, sizeof L->why, "%s", why[i]);
        }
    fy_quant_report_free(&all);
    free(keep);
    free(why);
    free(list);
    fy_value_unref(calib);
    fy_value_unref(x);
    fy_value_unref(labels);
    return rc;
}

/* ---- report ------------------------------------------------------------------------------ */

void fy_int8_report_md(FILE *f, const fy_int8_log *log)
{
    const fy_quant_report *r = &log->rep;
    fprintf(f, "\n## int8 quantization\n\n");
    fprintf(f, "- mode: %s%s%s\n", r->dynamic ? "dynamic (MatMulInteger)" : "static (QDQ)",
            r->method ? ", calibration " : "", r->method ? r->method : "");
    if (!r->dynamic) fprintf(f, "- calibration samples: %lld\n", (long long)r->calib_samples);
    fprintf(f, "- weights: int8 %s, %s (CPU %s VNNI)\n",
            r->per_channel ? "per output channel" : "per tensor",
            r->reduce_range ? "7-bit range (reduce_range)" : "full 8-bit range",
            r->vnni ? "has" : "lacks");
    if (!r->dynamic) fprintf(f, "- activation tensors quantized: %d\n", r->n_tensors);
    if (log->budget >= 0) {
        fprintf(f, "- accuracy-aware search: budget %.2f points; float32 %.2f%%, int8 %.2f%% (%s)\n",
                log->budget, 100 * log->float_acc, 100 * log->int8_acc,
                log->met ? "met" : "NOT met");
        fprintf(f, "\n| trial | kept in float32 | top-1 |\n| ---: | --- | ---: |\n");
        for (int i = 0; i < log->n_trials; i++)
            fprintf(f, "| %d | %s | %.2f%% |\n", i + 1,
                    log->trials[i].kept[0] ? log->trials[i].kept : "(none)",
                    100 * log->trials[i].accuracy);
    }
    fprintf(f, "\n| layer | op | int8 | SQNR (dB) | note |\n| --- | --- | --- | ---: | --- |\n");
    for (int i = 0; i < r->n_layers; i++) {
        const fy_quant_layer *L = &r->layers[i];
        char sq[32];
        if (isnan(L->sqnr_db)) snprintf(sq, sizeof sq, "-");
        else snprintf(sq, sizeof sq, "%.1f", L->sqnr_db);
        fprintf(f, "| %s | %s | %s | %s | %s |\n", L->node, L->op, L->quantized ? "yes" : "no",
                sq, L->why);
    }
}

json_t *fy_int8_report_json(const fy_int8_log *log)
{
    const fy_quant_report *r = &log->rep;
    json_t *o = json_object(), *layers = json_array();
    if (!o || !layers) {
        json_decref(o), json_decref(layers);
        return NULL;
    }
    json_object_set_new(o, "mode", json_string(r->dynamic ? "dynamic" : "static"));
    if (r->method) json_object_set_new(o, "calibration", json_string(r->method));
    json_object_set_new(o, "calibration_samples", json_integer(r->calib_samples));
    json_object_set_new(o, "per_channel", json_boolean(r->per_channel));
    json_object_set_new(o, "reduce_range", json_boolean(r->reduce_range));
    json_object_set_new(o, "cpu_vnni", json_boolean(r->vnni));
    json_object_set_new(o, "activation_tensors", json_integer(r->n_tensors));
    for (int i = 0; i < r->n_layers; i++) {
        const fy_quant_layer *L = &r->layers[i];
        json_t *l = json_object();
        json_object_set_new(l, "node", json_string(L->node));
        json_object_set_new(l, "op", json_string(L->op));
        json_object_set_new(l, "quantized", json_boolean(L->quantized));
        json_object_set_new(l, "sqnr_db", isfinite(L->sqnr_db) ? json_real(L->sqnr_db) : json_null());
        if (L->why[0]) json_object_set_new(l, "why", json_string(L->why));
        json_array_append_new(layers, l);
    }
    json_object_set_new(o, "layers", layers);
    if (log->budget >= 0) {
        json_t *s = json_object(), *trials = json_array();
        json_object_set_new(s, "budget_points", json_real(log->budget));
        json_object_set_new(s, "float_accuracy", json_real(log->float_acc));
        json_object_set_new(s, "int8_accuracy", json_real(log->int8_acc));
        json_object_set_new(s, "met", json_boolean(log->met));
        for (int i = 0; i < log->n_trials; i++) {
            json_t *t = json_object();
            json_object_set_new(t, "kept_float", json_string(log->trials[i].kept));
            json_object_set_new(t, "accuracy", json_real(log->trials[i].accuracy));
            json_array_append_new(trials, t);
        }
        json_object_set_new(s, "trials", trials);
        json_object_set_new(o, "search", s);
    }
    return o;
}
