/* quantize_calibrate.c — running a model while watching inner tensors ("taps"), and turning
 * what calibration sees into activation ranges: min/max, percentile, or the KL-divergence
 * threshold TensorRT and ONNX Runtime's entropy calibrator use. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optimize/quantize.h"
#include "optimize/graph_edit.h"
#include "optimize/quantize_impl.h"
#include "runtime/bind.h"

#define HIST_BINS 2048

/* ---- taps -------------------------------------------------------------------------------- */

ferry_status fy_tap_open(struct ferry_model *m, int n_ids, const int *ids, fy_tap *t)
{
    memset(t, 0, sizeof *t);
    fy_graph *g = m->graph;
    if (m->n_inputs < 1) return fy_error(FERRY_E_INVALID_ARG, "the model has no input to feed");
    t->m = m;
    t->n_old = g->n_outputs;
    t->old = g->outputs;
    t->n_ids = n_ids;
    int *outs = malloc(sizeof(int) * (size_t)(g->n_outputs + n_ids + 1));
    if (!outs) return fy_error(FERRY_E_NOMEM, "out of memory");
    memcpy(outs, g->outputs, sizeof(int) * (size_t)g->n_outputs);
    memcpy(outs + g->n_outputs, ids, sizeof(int) * (size_t)n_ids);
    g->outputs = outs;
    g->n_outputs += n_ids;
    ferry_status rc = fy_graph_recompute(g);
    if (rc == FERRY_OK) rc = fy_model_bind(m);
    ferry_session_options so = {0};
    if (rc == FERRY_OK) rc = ferry_session_create(m, &so, &t->s);
    if (rc == FERRY_OK) {
        t->outs = calloc((size_t)g->n_outputs, sizeof *t->outs);
        if (!t->outs) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    }
    if (rc != FERRY_OK) fy_tap_close(t);
    return rc;
}

void fy_tap_close(fy_tap *t)
{
    if (!t->m) return;
    fy_graph *g = t->m->graph;
    ferry_session_free(t->s);
    if (t->outs)
        for (int i = 0; i < g->n_outputs; i++) fy_value_unref(t->outs[i]);
    free(t->outs);
    if (g->outputs != t->old) {
        free(g->outputs);
        g->outputs = t->old;
        g->n_outputs = t->n_old;
        fy_graph_recompute(g);
    }
    memset(t, 0, sizeof *t);
}

ferry_status fy_tap_run(fy_tap *t, fy_value *x, fy_value *const **vals)
{
    fy_graph *g = t->m->graph;
    for (int i = 0; i < g->n_outputs; i++) {
        fy_value_unref(t->outs[i]);
        t->outs[i] = NULL;
    }
    const char *name = g->values[t->m->input_ids[0]].name;
    FY_CHECK(ferry_session_run(t->s, 1, &name, &x, t->outs));
    for (int i = 0; i < t->n_ids; i++) {
        const fy_value *v = t->outs[t->n_old + i];
        if (!v || v->kind != FERRY_VALUE_TENSOR || v->dtype != FERRY_DTYPE_F32)
            return fy_error(FERRY_E_INVALID_ARG, "tensor \"%s\" is not float32",
                            g->values[g->outputs[t->n_old + i]].name);
    }
    *vals = t->outs + t->n_old;
    return FERRY_OK;
}

int64_t fy_quant_batch_size(const struct ferry_model *m, int64_t want)
{
    const fy_type_info *ti = &m->graph->values[m->input_ids[0]].type;
    if (ti->rank > 0 && ti->dims[0] > 0 && !ti->dim_names[0]) return ti->dims[0];
    return want > 0 ? want : 32;
}

ferry_status fy_batch_view(const fy_value *x, int64_t start, int64_t count, fy_value **out)
{
    if (!x || x->kind != FERRY_VALUE_TENSOR || x->rank < 1 || start < 0 ||
        start + count > x->dims[0])
        return fy_error(FERRY_E_INVALID_ARG, "samples %lld..%lld are out of range",
                        (long long)start, (long long)(start + count));
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[0] = count;
    int64_t per = x->dims[0] ? x->count / x->dims[0] : 0;
    size_t es = ferry_dtype_size(x->dtype);
    return fy_tensor_borrow(x->dtype, x->rank, dims, (char *)x->data + (size_t)(start * per) * es,
                            out);
}

void fy_progress(const char *label, int64_t done, int64_t total)
{
    if (!label || total <= 0 || !isatty(2)) return;
    int width = 30, fill = (int)(width * done / total);
    fprintf(stderr, "\r%-24s [", label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %lld/%lld", (long long)done, (long long)total);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

ferry_status fy_quant_tap(struct ferry_model *m, const fy_value *x, int64_t batch, int n_ids,
                          const int *ids, const char *label, fy_tap_fn fn, void *user)
{
    fy_tap t;
    FY_CHECK(fy_tap_open(m, n_ids, ids, &t));
    batch = fy_quant_batch_size(m, batch);
    ferry_status rc = FERRY_OK;
    int64_t n = x->dims[0];
    int64_t ran = 0;
    for (int64_t at = 0; rc == FERRY_OK && at < n; at += batch) {
        int64_t cnt = n - at < batch ? n - at : batch;
        const fy_type_info *ti = &m->graph->values[m->input_ids[0]].type;
        if (cnt < batch && ti->rank > 0 && ti->dims[0] > 0 && !ti->dim_names[0]) break;
        fy_value *xb = NULL;
        fy_value *const *vals;
        rc = fy_batch_view(x, at, cnt, &xb);
        if (rc == FERRY_OK) rc = fy_tap_run(&t, xb, &vals);
        if (rc == FERRY_OK) rc = fn(user, n_ids, vals);
        fy_value_unref(xb);
        fy_progress(label, at + cnt, n);
        ran += cnt;
    }
    fy_tap_close(&t);
    if (rc == FERRY_OK && ran == 0)
        rc = fy_error(FERRY_E_INVALID_ARG, "no samples to run: %lld given, the model takes batches of %lld",
                      (long long)n, (long long)batch);
    return rc;
}

double fy_sqnr_db(const float *a, const float *b, int64_t n)
{
    double s = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += (double)a[i] * a[i];
        e += d * d;
    }
    if (e == 0) return INFINITY;
    if (s == 0) return -INFINITY;
    return 10.0 * log10(s / e);
}

/* ---- calibration ------------------------------------------------------------------------- */

typedef struct calib_state {
    int n;
    int pass; /* 0: min/max, 1: histograms */
    fy_range *mm;
    double *hist;  /* n x HIST_BINS over [lo, hi] */
    double *ahist; /* n x HIST_BINS of |x| over [0, max |x|] */
} calib_state;

static ferry_status calib_fn(void *user, int n_ids, fy_value *const *vals)
{
    calib_state *cs = user;
    for (int i = 0; i < n_ids; i++) {
        const float *d = vals[i]->data;
        int64_t cnt = vals[i]->count;
        fy_range *r = &cs->mm[i];
        if (cs->pass == 0) {
            float lo = r->lo, hi = r->hi;
            for (int64_t j = 0; j < cnt; j++) {
                float v = d[j];
                if (!(v == v) || isinf(v)) continue;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            r->lo = lo, r->hi = hi;
            continue;
        }
        double *h = cs->hist + (size_t)i * HIST_BINS, *ah = cs->ahist + (size_t)i * HIST_BINS;
        double width = ((double)r->hi - r->lo) / HIST_BINS;
        double amax = fmax(fabs(r->lo), fabs(r->hi)), aw = amax / HIST_BINS;
        for (int64_t j = 0; j < cnt; j++) {
            float v = d[j];
            if (!(v == v) || isinf(v)) continue;
            int b = width > 0 ? (int)((v - r->lo) / width) : 0;
            b = b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b;
            h[b] += 1;
            int a = aw > 0 ? (int)(fabsf(v) / aw) : 0;
            a = a >= HIST_BINS ? HIST_BINS - 1 : a;
            ah[a] += 1;
        }
    }
    return FERRY_OK;
}

/* The values below which `frac` of the histogram's mass lies (bin upper edge). */
static double hist_quantile(const double *h, double lo, double width, double frac)
{
    double total = 0, cum = 0;
    for (int b = 0; b < HIST_BINS; b++) total += h[b];
    if (total <= 0) return lo;
    for (int b = 0; b < HIST_BINS; b++) {
        cum += h[b];
        if (cum >= frac * total) return lo + width * (b + 1);
    }
    return lo + width * HIST_BINS;
}

/* KL(P || Q) of two unnormalized distributions over the same bins. */
static double kl_div(const double *p, const double *q, int n)
{
    double sp = 0, sq = 0, kl = 0;
    for (int i = 0; i < n; i++) sp += p[i], sq += q[i];
    if (sp <= 0 || sq <= 0) return INFINITY;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) continue;
        double pp = p[i] / sp, qq = q[i] / sq;
        if (qq <= 0) return INFINITY;
        kl += pp * log(pp / qq);
    }
    return kl;
}

/* TensorRT's entropy calibration on the |x| histogram: for every candidate threshold (bin i),
 * P is the clipped histogram (outliers added to its last bin) and Q the same mass squeezed into
 * `levels` quantization bins and expanded back; the threshold with the smallest KL(P||Q)
 * wins. Returns the threshold in |x| units. */
static double entropy_threshold(const double *h0, double width, int levels)
{
    double *p = malloc(sizeof(double) * HIST_BINS), *q = malloc(sizeof(double) * HIST_BINS);
    double *h = malloc(sizeof(double) * HIST_BINS);
    if (!p || !q || !h) {
        free(p), free(q), free(h);
        return width * HIST_BINS;
    }
    /* the spike of exact zeros (after ReLU, image backgrounds) would pull the threshold down to
     * where only it matters; NVIDIA's calibrators flatten bin 0 to bin 1 for the same reason */
    memcpy(h, h0, sizeof(double) * HIST_BINS);
    h[0] = h[1];
    double best = INFINITY;
    int best_i = HIST_BINS;
    double tail = 0;
    for (int b = levels; b < HIST_BINS; b++) tail += h[b];
    for (int i = levels; i <= HIST_BINS; i++) {
        memcpy(p, h, sizeof(double) * (size_t)i);
        p[i - 1] += tail;
        if (i < HIST_BINS) tail -= h[i];
        /* merge the i bins into `levels` groups, then spread each group's mass evenly over
         * the bins of the group that were nonzero in the original */
        for (int j = 0; j < levels; j++) {
            int s = (int)((int64_t)j * i / levels), e = (int)((int64_t)(j + 1) * i / levels);
            double sum = 0;
            int nz = 0;
            for (int k = s; k < e; k++) {
                sum += h[k];
                nz += h[k] > 0;
            }
            for (int k = s; k < e; k++) q[k] = h[k] > 0 ? sum / nz : 0;
        }
        double kl = kl_div(p, q, i);
        if (kl < best) best = kl, best_i = i;
    }
    free(p), free(q), free(h);
    return width * best_i;
}

ferry_status fy_quant_calibrate(struct ferry_model *m, const fy_value *x, int64_t batch,
                                int n_ids, const int *ids, fy_calib_method method,
                                double percentile, int progress, fy_range *ranges)
{
    calib_state cs = {.n = n_ids};
    cs.mm = ranges;
    for (int i = 0; i < n_ids; i++) ranges[i].lo = INFINITY, ranges[i].hi = -INFINITY;
    FY_CHECK(fy_quant_tap(m, x, batch, n_ids, ids, progress ? "calibrating (min/max)" : NULL,
                          calib_fn, &cs));
    for (int i = 0; i < n_ids; i++)
        if (!(ranges[i].lo <= ranges[i].hi)) ranges[i].lo = ranges[i].hi = 0;
    if (method == FY_CALIB_MINMAX) return FERRY_OK;
    cs.hist = calloc((size_t)n_ids * HIST_BINS, sizeof(double));
    cs.ahist = calloc((size_t)n_ids * HIST_BINS, sizeof(double));
    ferry_status rc = FERRY_OK;
    if (!cs.hist || !cs.ahist) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    cs.pass = 1;
    if (rc == FERRY_OK)
        rc = fy_quant_tap(m, x, batch, n_ids, ids,
                          progress ? "calibrating (histogram)" : NULL, calib_fn, &cs);
    if (percentile <= 0 || percentile > 100) percentile = 99.99;
    for (int i = 0; rc == FERRY_OK && i < n_ids; i++) {
        fy_range *r = &ranges[i];
        const double *h = cs.hist + (size_t)i * HIST_BINS, *ah = cs.ahist + (size_t)i * HIST_BINS;
        double width = ((double)r->hi - r->lo) / HIST_BINS;
        if (width <= 0) continue;
        if (method == FY_CALIB_PERCENTILE) {
            double tail = (100.0 - percentile) / 100.0;
            double hi = hist_quantile(h, r->lo, width, 1.0 - tail);
            double lo = r->lo < 0 ? hist_quantile(h, r->lo, width, tail) - width : r->lo;
            r->lo = (float)fmax(lo, r->lo);
            r->hi = (float)fmin(hi, r->hi);
        } else {
            double amax = fmax(fabs(r->lo), fabs(r->hi));
            /* a tensor with negative values spends its 256 levels on both sides */
            int levels = r->lo < 0 ? 128 : 256;
            double t = entropy_threshold(ah, amax / HIST_BINS, levels);
            r->lo = (float)fmax(r->lo, -t);
            r->hi = (float)fmin(r->hi, t);
        }
    }
    free(cs.hist);
    free(cs.ahist);
    return rc;
}
