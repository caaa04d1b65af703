/* profile.c — the reference profile of a validation set for drift monitoring: quantiles and
 * histograms of the model inputs (per feature for tabular data, summary features for images)
 * and of the outputs (per-class score distributions, predicted class shares). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/value.h"
#include "pipeline/validate.h"

/* Inputs with at most this many values per sample are profiled feature by feature; wider ones
 * (images) get summary features plus this many evenly spaced raw features. */
#define MAX_FEATURES 64
#define RAW_SAMPLES  16
#define BINS         10

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* count, missing, mean, std, min, max, quantiles and a histogram of v (n values; v is sorted in
 * place). lo/hi fix the histogram range when lo < hi, else it spans min..max. */
static json_t *stats(double *v, int64_t n, double lo, double hi)
{
    int64_t m = 0, missing = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(v[i]))
            missing++;
        else
            v[m++] = v[i];
    }
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer(m));
    json_object_set_new(o, "missing", json_integer(missing));
    if (m == 0) return o;
    qsort(v, (size_t)m, sizeof *v, cmp_double);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < m; i++)
        sum += v[i];
    double mean = sum / (double)m;
    for (int64_t i = 0; i < m; i++)
        sq += (v[i] - mean) * (v[i] - mean);
    json_object_set_new(o, "mean", json_real(mean));
    json_object_set_new(o, "std", json_real(sqrt(sq / (double)m)));
    json_object_set_new(o, "min", json_real(v[0]));
    json_object_set_new(o, "max", json_real(v[m - 1]));
    static const double qs[] = {1, 5, 25, 50, 75, 95, 99};
    json_t *q = json_object();
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        double pos = qs[k] / 100 * (double)(m - 1);
        int64_t a = (int64_t)floor(pos), b = a + 1 < m ? a + 1 : a;
        char key[8];
        snprintf(key, sizeof key, "p%g", qs[k]);
        json_object_set_new(q, key, json_real(v[a] + (v[b] - v[a]) * (pos - (double)a)));
    }
    json_object_set_new(o, "quantiles", q);
    if (!(lo < hi)) lo = v[0], hi = v[m - 1];
    json_t *edges = json_array(), *counts = json_array();
    int64_t c[BINS] = {0};
    for (int64_t i = 0; i < m; i++) {
        int b = hi > lo ? (int)((v[i] - lo) / (hi - lo) * BINS) : 0;
        c[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++;
    }
    for (int b = 0; b <= BINS; b++)
        json_array_append_new(edges, json_real(lo + (hi - lo) * b / BINS));
    for (int b = 0; b < BINS; b++)
        json_array_append_new(counts, json_integer(c[b]));
    json_t *h = json_object();
    json_object_set_new(h, "edges", edges);
    json_object_set_new(h, "counts", counts);
    json_object_set_new(o, "histogram", h);
    return o;
}

static json_t *input_profile(const ferry_value *data, int64_t n, double scale, double mean)
{
    int64_t per = data->dims[0] ? data->count / data->dims[0] : 0;
    json_t *o = json_object(), *features = json_object();
    json_object_set_new(o, "values_per_sample", json_integer(per));
    json_object_set_new(o, "features", features);
    double *col = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!col || per == 0) {
        free(col);
        return o;
    }
#define X(s, j) ((fy_tensor_get_f64(data, (s)*per + (j)) - mean) * scale)
    if (per <= MAX_FEATURES) {
        json_object_set_new(o, "kind", json_string("tabular"));
        for (int64_t j = 0; j < per; j++) {
            for (int64_t s = 0; s < n; s++)
                col[s] = X(s, j);
            char key[32];
            snprintf(key, sizeof key, "f%lld", (long long)j);
            json_object_set_new(features, key, stats(col, n, 0, 0));
        }
    } else {
        /* images and other wide inputs: per-sample summaries, per-channel means when the sample
         * is [C,H,W] with a few channels, and a few raw values at fixed positions */
        json_object_set_new(o, "kind", json_string("image"));
        double *sd = malloc(sizeof(double) * (size_t)(n ? n : 1));
        if (sd) {
            for (int64_t s = 0; s < n; s++) {
                double sum = 0, sq = 0;
                for (int64_t j = 0; j < per; j++)
                    sum += X(s, j);
                double m = sum / (double)per;
                for (int64_t j = 0; j < per; j++)
                    sq += (X(s, j) - m) * (X(s, j) - m);
                col[s] = m;
                sd[s] = sqrt(sq / (double)per);
            }
            json_object_set_new(features, "mean_intensity", stats(col, n, 0, 0));
            json_object_set_new(features, "std_intensity", stats(sd, n, 0, 0));
            int channels = data->rank == 4 && data->dims[1] <= 4 ? (int)data->dims[1] : 0;
            for (int c = 0; c < channels; c++) {
                int64_t plane = per / channels;
                for (int64_t s = 0; s < n; s++) {
                    double sum = 0;
                    for (int64_t j = 0; j < plane; j++)
                        sum += X(s, c * plane + j);
                    col[s] = sum / (double)plane;
                }
                char key[32];
                snprintf(key, sizeof key, "channel%d_mean", c);
                json_object_set_new(features, key, stats(col, n, 0, 0));
            }
            for (int r = 0; r < RAW_SAMPLES; r++) {
                int64_t j = (per * (2 * r + 1)) / (2 * RAW_SAMPLES);
                for (int64_t s = 0; s < n; s++)
                    col[s] = X(s, j);
                char key[32];
                snprintf(key, sizeof key, "value%lld", (long long)j);
                json_object_set_new(features, key, stats(col, n, 0, 0));
            }
        }
        free(sd);
    }
#undef X
    free(col);
    return o;
}

static json_t *output_profile(const fy_model_eval *e, int classification)
{
    json_t *o = json_object();
    int64_t n = e->n, w = e->width;
    double *col = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!col) return o;
    if (classification) {
        json_t *shares = json_array(), *scores = json_array();
        int64_t *cnt = calloc((size_t)w, sizeof *cnt);
        for (int64_t i = 0; cnt && i < n; i++)
            cnt[e->top1[i]]++;
        for (int64_t j = 0; j < w; j++) {
            json_array_append_new(shares, json_real(cnt && n ? (double)cnt[j] / (double)n : 0));
            for (int64_t i = 0; i < n; i++)
                col[i] = e->scores[i * w + j];
            json_array_append_new(scores, stats(col, n, 0, 1));
        }
        free(cnt);
        for (int64_t i = 0; i < n; i++)
            col[i] = e->scores[i * w + e->top1[i]];
        json_object_set_new(o, "predicted_class_share", shares);
        json_object_set_new(o, "class_probability", scores);
        json_object_set_new(o, "confidence", stats(col, n, 0, 1));
    } else {
        json_t *outs = json_array();
        for (int64_t j = 0; j < w; j++) {
            for (int64_t i = 0; i < n; i++)
                col[i] = e->scores[i * w + j];
            json_array_append_new(outs, stats(col, n, 0, 0));
        }
        json_object_set_new(o, "values", outs);
    }
    free(col);
    return o;
}

void *fy_profile_build(const ferry_value *data, double scale, double mean, const fy_model_eval *e,
                       int classification)
{
    json_t *p = json_object();
    json_object_set_new(p, "samples", json_integer(e->n));
    json_object_set_new(p, "inputs", input_profile(data, e->n, scale, mean));
    json_object_set_new(p, "outputs", output_profile(e, classification));
    return p;
}
