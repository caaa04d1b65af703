/* report_json.c — ferry validate's JSON report for machines (CI steps, ferry publish --report,
 * drift monitoring): every metric, the gates with their results, per-class metrics, the
 * confusion matrix, the latency histogram, both signatures and the reference data profile. */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/status.h"
#include "pipeline/validate.h"

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *metrics_obj(const fy_model_eval *e)
{
    json_t *o = json_object();
    for (int id = 0; id < FY_M_COUNT; id++)
        if (e->has[id]) json_object_set_new(o, fy_metric_defs[id].name, num(e->v[id]));
    return o;
}

static json_t *signature_obj(const fy_model_eval *e)
{
    json_t *o = json_object(), *in = json_array(), *out = json_array();
    for (int i = 0; i < e->n_inputs + e->n_outputs; i++) {
        int is_in = i < e->n_inputs, k = is_in ? i : i - e->n_inputs;
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(is_in ? e->in_name[k] : e->out_name[k]));
        json_object_set_new(
            x, "dtype", json_string(ferry_dtype_name(is_in ? e->in_dtype[k] : e->out_dtype[k])));
        json_object_set_new(x, "shape", json_string(is_in ? e->in_shape[k] : e->out_shape[k]));
        json_array_append_new(is_in ? in : out, x);
    }
    json_object_set_new(o, "inputs", in);
    json_object_set_new(o, "outputs", out);
    return o;
}

/* Latency histogram with FY_LAT_BINS bins over [min, max] of both models' samples. */
static json_t *latency_obj(const fy_model_eval *e, double lo, double hi)
{
    json_t *o = json_object(), *counts = json_array(), *samples = json_array();
    int c[FY_LAT_BINS] = {0};
    for (int i = 0; i < e->n_latency; i++) {
        int b = hi > lo ? (int)((e->latency_ms[i] - lo) / (hi - lo) * FY_LAT_BINS) : 0;
        c[b < 0 ? 0 : b >= FY_LAT_BINS ? FY_LAT_BINS - 1 : b]++;
        json_array_append_new(samples, json_real(e->latency_ms[i]));
    }
    for (int b = 0; b < FY_LAT_BINS; b++)
        json_array_append_new(counts, json_integer(c[b]));
    json_object_set_new(o, "runs", json_integer(e->n_latency > 0 ? e->n_latency : 0));
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "samples_ms", samples);
    return o;
}

static void latency_range(const ferry_validation *v, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int m = 0; m < 1 + v->have_base; m++) {
        const fy_model_eval *e = m ? &v->base : &v->cand;
        for (int i = 0; i < e->n_latency; i++) {
            if (e->latency_ms[i] < *lo) *lo = e->latency_ms[i];
            if (e->latency_ms[i] > *hi) *hi = e->latency_ms[i];
        }
    }
    if (!(*lo <= *hi)) *lo = 0, *hi = 1;
}

static json_t *model_obj(const ferry_validation *v, const fy_model_eval *e, double lo, double hi)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(e->spec));
    json_object_set_new(o, "path", json_string(e->path));
    json_object_set_new(o, "metrics", metrics_obj(e));
    json_object_set_new(o, "signature", signature_obj(e));
    json_t *lat = latency_obj(e, lo, hi);
    json_object_set_new(o, "latency", lat);
    json_object_set_new(o, "eval_seconds", num(e->eval_seconds));
    if (v->classification && e->confusion) {
        json_object_set_new(o, "softmax_applied", json_boolean(e->softmax_applied));
        json_t *pc = json_object(), *p = json_array(), *r = json_array(), *f1 = json_array(),
               *s = json_array();
        json_t *cm = json_array();
        for (int64_t j = 0; j < e->width; j++) {
            json_array_append_new(p, json_real(e->precision[j]));
            json_array_append_new(r, json_real(e->recall[j]));
            json_array_append_new(f1, json_real(e->f1[j]));
            json_array_append_new(s, json_integer(e->support[j]));
            json_t *row = json_array();
            for (int64_t k = 0; k < e->width; k++)
                json_array_append_new(row, json_integer(e->confusion[j * e->width + k]));
            json_array_append_new(cm, row);
        }
        json_object_set_new(pc, "precision", p);
        json_object_set_new(pc, "recall", r);
        json_object_set_new(pc, "f1", f1);
        json_object_set_new(pc, "support", s);
        json_object_set_new(o, "per_class", pc);
        json_object_set_new(o, "confusion_matrix", cm);
    }
    return o;
}

static const char *ref_name(fy_gate_ref r)
{
    return r == FY_GATE_CONST      ? "threshold"
           : r == FY_GATE_BASE_ABS ? "baseline_absolute"
                                   : "baseline_relative";
}

ferry_status fy_report_json(const ferry_validation *v, FILE *f)
{
    double lo, hi;
    latency_range(v, &lo, &hi);
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("ferry-validate/1"));
    json_object_set_new(root, "passed", json_boolean(v->n_failures == 0));
    json_object_set_new(root, "task",
                        json_string(v->classification ? "classification" : "regression"));
    json_t *data = json_object();
    json_object_set_new(data, "path", json_string(v->data_desc));
    if (v->opts.labels) json_object_set_new(data, "labels", json_string(v->opts.labels));
    json_object_set_new(data, "samples", json_integer(v->n_samples));
    json_object_set_new(data, "input_scale", json_real(v->scale));
    json_object_set_new(data, "input_mean", json_real(v->mean));
    json_object_set_new(data, "input_scale_automatic", json_boolean(v->scale_auto));
    json_object_set_new(root, "data", data);
    if (v->classification) {
        json_t *names = json_array();
        for (int64_t j = 0; j < v->cand.width; j++)
            json_array_append_new(names, json_string(v->class_names[j]));
        json_object_set_new(root, "classes", names);
    }
    /* "metrics" at the top is the candidate's, the object ferry publish --report keeps */
    json_object_set_new(root, "metrics", metrics_obj(&v->cand));
    json_object_set_new(root, "candidate", model_obj(v, &v->cand, lo, hi));
    json_object_set_new(root, "baseline",
                        v->have_base ? model_obj(v, &v->base, lo, hi) : json_null());
    json_t *edges = json_array();
    for (int b = 0; b <= FY_LAT_BINS; b++)
        json_array_append_new(edges, json_real(lo + (hi - lo) * b / FY_LAT_BINS));
    json_object_set_new(root, "latency_histogram_edges_ms", edges);
    if (v->have_base) {
        json_t *delta = json_object();
        for (int id = 0; id < FY_M_COUNT; id++)
            if (v->cand.has[id] && v->base.has[id])
                json_object_set_new(delta, fy_metric_defs[id].name,
                                    num(v->cand.v[id] - v->base.v[id]));
        json_object_set_new(root, "delta", delta);
        json_t *sig = json_object(), *ch = json_array();
        for (int i = 0; i < v->n_sig_changes; i++)
            json_array_append_new(ch, json_string(v->sig_changes[i]));
        json_object_set_new(sig, "compatible", json_boolean(v->signature_ok));
        json_object_set_new(sig, "changes", ch);
        json_object_set_new(root, "signature_check", sig);
    }
    json_t *gates = json_array();
    for (int i = 0; i < v->n_gates; i++) {
        const fy_gate *g = &v->gates[i];
        json_t *o = json_object();
        json_object_set_new(o, "expr", json_string(g->text));
        json_object_set_new(o, "metric", json_string(fy_metric_defs[g->metric].name));
        json_object_set_new(o, "op", json_string(fy_gate_op_str(g->op)));
        json_object_set_new(o, "kind", json_string(ref_name(g->ref)));
        json_object_set_new(o, "value", json_real(g->value));
        json_object_set_new(o, "candidate", num(g->candidate));
        json_object_set_new(o, "baseline", num(g->baseline));
        json_object_set_new(o, "threshold", num(g->threshold));
        json_object_set_new(o, "passed", json_boolean(g->passed));
        json_object_set_new(o, "reason", json_string(g->reason));
        json_array_append_new(gates, o);
    }
    json_object_set_new(root, "gates", gates);
    json_t *fails = json_array();
    for (int i = 0; i < v->n_failures; i++)
        json_array_append_new(fails, json_string(v->failures[i]));
    json_object_set_new(root, "failures", fails);
    if (v->profile) json_object_set(root, "profile", (json_t *)v->profile);
    json_object_set_new(root, "wall_seconds", json_real(v->wall_seconds));
    int rc = json_dumpf(root, f, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    fputc('\n', f);
    json_decref(root);
    if (rc != 0 || ferror(f)) return fy_error(FERRY_E_IO, "cannot write the JSON report");
    return FERRY_OK;
}
