/* metrics.c — the numbers ferry validate reports, computed the way scikit-learn defines them
 * (a test checks them against sklearn.metrics to 1e-6): classification, regression, latency. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "pipeline/validate.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double fy_percentile(const double *v, int64_t n, double p)
{
    if (n <= 0) return NAN;
    double *s = malloc(sizeof *s * (size_t)n);
    if (!s) return NAN;
    memcpy(s, v, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double pos = p / 100.0 * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    double r = s[lo] + (s[hi] - s[lo]) * (pos - (double)lo);
    free(s);
    return r;
}

int fy_scores_to_probabilities(double *s, int64_t n, int64_t w)
{
    int probs = 1;
    for (int64_t i = 0; i < n && probs; i++) {
        double sum = 0;
        for (int64_t j = 0; j < w; j++) {
            double v = s[i * w + j];
            if (!(v >= 0 && v <= 1)) probs = 0;
            sum += v;
        }
        if (fabs(sum - 1) > 1e-3) probs = 0;
    }
    if (probs) return 0;
    for (int64_t i = 0; i < n; i++) {
        double *r = s + i * w, mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < w; j++)
            if (r[j] > mx) mx = r[j];
        for (int64_t j = 0; j < w; j++)
            sum += (r[j] = exp(r[j] - mx));
        for (int64_t j = 0; j < w; j++)
            r[j] /= sum;
    }
    return 1;
}

ferry_status fy_metrics_classification(fy_model_eval *e, const int64_t *labels)
{
    int64_t n = e->n, c = e->width;
    e->confusion = calloc((size_t)(c * c), sizeof *e->confusion);
    e->precision = calloc((size_t)c, sizeof(double));
    e->recall = calloc((size_t)c, sizeof(double));
    e->f1 = calloc((size_t)c, sizeof(double));
    e->support = calloc((size_t)c, sizeof(int64_t));
    if (!e->confusion || !e->precision || !e->recall || !e->f1 || !e->support)
        return fy_error(FERRY_E_NOMEM, "out of memory for the confusion matrix");
    int64_t correct = 0, topk = 0;
    int k = 5;
    double loss = 0;
    const double eps =
        1e-15; /* scikit-learn 1.2's log_loss clips to [eps, 1-eps], then renormalizes */
    for (int64_t i = 0; i < n; i++) {
        const double *r = e->scores + i * c;
        int64_t y = labels[i], p = e->top1[i];
        e->confusion[y * c + p]++;
        correct += p == y;
        int64_t above = 0;
        for (int64_t j = 0; j < c; j++)
            above += r[j] > r[y];
        topk += above < k;
        double sum = 0;
        for (int64_t j = 0; j < c; j++)
            sum += fmin(fmax(r[j], eps), 1 - eps);
        loss -= log(fmin(fmax(r[y], eps), 1 - eps) / sum);
    }
    e->v[FY_M_ACCURACY] = (double)correct / (double)n;
    e->has[FY_M_ACCURACY] = 1;
    if (c > k) {
        e->v[FY_M_TOP5] = (double)topk / (double)n;
        e->has[FY_M_TOP5] = 1;
    }
    e->v[FY_M_LOG_LOSS] = loss / (double)n;
    e->has[FY_M_LOG_LOSS] = 1;
    /* per class; the macro averages run over the classes present in the labels or the
     * predictions (scikit-learn's default label set), with 0 where a ratio is 0/0 */
    double sp = 0, sr = 0, sf = 0;
    int present = 0;
    for (int64_t j = 0; j < c; j++) {
        int64_t tp = e->confusion[j * c + j], pred = 0, truth = 0;
        for (int64_t i = 0; i < c; i++)
            pred += e->confusion[i * c + j], truth += e->confusion[j * c + i];
        e->support[j] = truth;
        e->precision[j] = pred ? (double)tp / (double)pred : 0;
        e->recall[j] = truth ? (double)tp / (double)truth : 0;
        double d = e->precision[j] + e->recall[j];
        e->f1[j] = d > 0 ? 2 * e->precision[j] * e->recall[j] / d : 0;
        if (pred || truth) {
            present++;
            sp += e->precision[j], sr += e->recall[j], sf += e->f1[j];
        }
    }
    if (present) {
        e->v[FY_M_PRECISION_MACRO] = sp / present;
        e->v[FY_M_RECALL_MACRO] = sr / present;
        e->v[FY_M_F1_MACRO] = sf / present;
        e->has[FY_M_PRECISION_MACRO] = e->has[FY_M_RECALL_MACRO] = e->has[FY_M_F1_MACRO] = 1;
    }
    return FERRY_OK;
}

ferry_status fy_metrics_regression(fy_model_eval *e, const double *labels)
{
    int64_t n = e->n, w = e->width;
    double ae = 0, se = 0, r2 = 0;
    for (int64_t i = 0; i < n * w; i++) {
        double d = e->scores[i] - labels[i];
        ae += fabs(d);
        se += d * d;
    }
    /* R² per output column, then the plain mean (scikit-learn's multioutput="uniform_average");
     * a constant target gives 1 when predicted exactly, else 0 (its force_finite rule) */
    for (int64_t j = 0; j < w; j++) {
        double mean = 0, ss_tot = 0, ss_res = 0;
        for (int64_t i = 0; i < n; i++)
            mean += labels[i * w + j];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            double y = labels[i * w + j], d = y - e->scores[i * w + j];
            ss_tot += (y - mean) * (y - mean);
            ss_res += d * d;
        }
        r2 += ss_tot > 0 ? 1 - ss_res / ss_tot : (ss_res == 0 ? 1 : 0);
    }
    double cnt = (double)(n * w);
    e->v[FY_M_MAE] = ae / cnt;
    e->v[FY_M_MSE] = se / cnt;
    e->v[FY_M_RMSE] = sqrt(se / cnt);
    e->v[FY_M_R2] = r2 / (double)w;
    e->has[FY_M_MAE] = e->has[FY_M_MSE] = e->has[FY_M_RMSE] = e->has[FY_M_R2] = 1;
    return FERRY_OK;
}

void fy_metrics_latency(fy_model_eval *e)
{
    if (e->n_latency <= 0) return;
    e->v[FY_M_LATENCY_P50] = fy_percentile(e->latency_ms, e->n_latency, 50);
    e->v[FY_M_LATENCY_P95] = fy_percentile(e->latency_ms, e->n_latency, 95);
    e->v[FY_M_LATENCY_P99] = fy_percentile(e->latency_ms, e->n_latency, 99);
    double s = 0;
    for (int i = 0; i < e->n_latency; i++)
        s += e->latency_ms[i];
    e->v[FY_M_LATENCY_MEAN] = s / e->n_latency;
    e->has[FY_M_LATENCY_P50] = e->has[FY_M_LATENCY_P95] = e->has[FY_M_LATENCY_P99] =
        e->has[FY_M_LATENCY_MEAN] = 1;
}

void fy_metrics_compare(fy_model_eval *cand, const fy_model_eval *base, int classification)
{
    if (cand->n != base->n) return;
    if (classification) {
        int64_t same = 0;
        for (int64_t i = 0; i < cand->n; i++)
            same += cand->top1[i] == base->top1[i];
        cand->v[FY_M_AGREEMENT] = cand->n ? (double)same / (double)cand->n : NAN;
        cand->has[FY_M_AGREEMENT] = cand->n > 0;
    }
    if (cand->width != base->width) return;
    double mx = 0, sum = 0;
    int64_t cnt = cand->n * cand->width;
    for (int64_t i = 0; i < cnt; i++) {
        double d = fabs(cand->scores[i] - base->scores[i]);
        if (d > mx) mx = d;
        sum += d;
    }
    cand->v[FY_M_MAX_ABS_DIFF] = mx;
    cand->v[FY_M_MEAN_ABS_DIFF] = cnt ? sum / (double)cnt : 0;
    cand->has[FY_M_MAX_ABS_DIFF] = cand->has[FY_M_MEAN_ABS_DIFF] = 1;
}
