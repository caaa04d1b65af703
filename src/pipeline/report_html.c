/* report_html.c — ferry validate's HTML report: one self-contained page (inline CSS, inline SVG,
 * no scripts, nothing fetched) with the verdict, gates, metric cards, a confusion-matrix heatmap,
 * per-class precision/recall/F1 bars, the latency histogram and the data profile. */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/status.h"
#include "pipeline/validate.h"

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char CSS[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font:14px/1.45 -apple-system,'Segoe UI',Roboto,'Helvetica "
    "Neue',Arial,sans-serif;"
    "color:#1f2933;background:#f4f6f8}"
    "header{padding:22px 32px;color:#fff}"
    "header.pass{background:linear-gradient(90deg,#1e7e4a,#2f9e62)}"
    "header.fail{background:linear-gradient(90deg,#a8232a,#d1453b)}"
    "header h1{margin:0 0 4px;font-size:24px;font-weight:600}"
    "header .sub{opacity:.9}"
    "header code{background:rgba(255,255,255,.18);padding:1px 6px;border-radius:4px}"
    "main{max-width:1220px;margin:0 auto;padding:20px 24px 40px}"
    ".cards{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-bottom:18px}"
    ".card{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 3px "
    "rgba(0,0,0,.08)}"
    ".card .k{font-size:12px;color:#616e7c;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:24px;font-weight:600;margin:2px 0}"
    ".card .b{font-size:12px;color:#616e7c}"
    ".good{color:#1e7e4a}.bad{color:#c0392b}"
    "section{background:#fff;border-radius:10px;padding:16px 20px;margin-bottom:18px;"
    "box-shadow:0 1px 3px rgba(0,0,0,.08)}"
    "section h2{margin:0 0 12px;font-size:16px;font-weight:600}"
    ".row{display:grid;grid-template-columns:1fr 1fr;gap:18px}"
    ".row section{margin-bottom:0}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:left}"
    "th{font-size:12px;color:#616e7c;text-transform:uppercase;letter-spacing:.04em;font-weight:600}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".pill{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600}"
    ".pill.pass{background:#dff3e7;color:#1e7e4a}.pill.fail{background:#fbe0de;color:#a8232a}"
    "code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}"
    ".fails{border-left:4px solid #d1453b}.fails li{margin:3px 0}"
    "svg text{font-family:inherit}"
    "footer{color:#7b8794;font-size:12px;text-align:center;margin-top:8px}";

/* Metric cards: candidate value, baseline and the delta coloured by direction. */
static void card(FILE *f, const ferry_validation *v, int id)
{
    char a[32], b[32], d[32];
    if (!v->cand.has[id]) return;
    fprintf(f, "<div class=card><div class=k>%s</div><div class=v>%s</div>",
            fy_metric_defs[id].name, fy_metric_fmt(id, v->cand.v[id], a, sizeof a));
    if (v->have_base && v->base.has[id]) {
        double delta = v->cand.v[id] - v->base.v[id];
        int better = fy_metric_defs[id].higher_is_better ? delta > 0 : delta < 0;
        fprintf(f, "<div class=b>baseline %s · <span class=%s>%s%s</span></div>",
                fy_metric_fmt(id, v->base.v[id], b, sizeof b),
                delta == 0 ? "b"
                : better   ? "good"
                           : "bad",
                delta > 0 ? "+" : "", fy_metric_fmt(id, delta, d, sizeof d));
    } else {
        fprintf(f, "<div class=b>%s</div>", fy_metric_defs[id].description);
    }
    fprintf(f, "</div>\n");
}

/* A white-to-blue ramp for the heatmap: share 0..1 of the row. */
static void heat(double t, char *buf, size_t n)
{
    t = t < 0 ? 0 : t > 1 ? 1 : sqrt(t);
    int r = (int)(247 - t * (247 - 24)), g = (int)(251 - t * (251 - 78)),
        b = (int)(255 - t * (255 - 158));
    snprintf(buf, n, "rgb(%d,%d,%d)", r, g, b);
}

static void confusion_svg(FILE *f, const ferry_validation *v)
{
    int64_t c = v->cand.width;
    int cell = c <= 10 ? 44 : c <= 20 ? 24 : 12, left = 110, top = 20, size = (int)c * cell;
    int w = left + size + 20, h = top + size + 100;
    fprintf(f, "<svg viewBox='0 0 %d %d' width='100%%' role=img aria-label='confusion matrix'>\n",
            w, h);
    for (int64_t i = 0; i < c; i++) {
        int64_t row = 0;
        for (int64_t j = 0; j < c; j++)
            row += v->cand.confusion[i * c + j];
        for (int64_t j = 0; j < c; j++) {
            int64_t n = v->cand.confusion[i * c + j];
            double t = row ? (double)n / (double)row : 0;
            char col[32];
            heat(t, col, sizeof col);
            fprintf(f, "<rect x=%d y=%d width=%d height=%d fill='%s' stroke='#fff'><title>true ",
                    left + (int)j * cell, top + (int)i * cell, cell, cell, col);
            esc(f, v->class_names[i]);
            fprintf(f, ", predicted ");
            esc(f, v->class_names[j]);
            fprintf(f, ": %lld</title></rect>", (long long)n);
            if (cell >= 24 && n)
                fprintf(f,
                        "<text x=%d y=%d text-anchor=middle font-size=%d fill='%s'%s>%lld</text>",
                        left + (int)j * cell + cell / 2, top + (int)i * cell + cell / 2 + 4,
                        cell >= 40 ? 12 : 9, t > 0.45 ? "#fff" : "#1f2933",
                        i == j ? " font-weight=600" : "", (long long)n);
            fprintf(f, "\n");
        }
        fprintf(f, "<text x=%d y=%d text-anchor=end font-size=12>", left - 8,
                top + (int)i * cell + cell / 2 + 4);
        esc(f, v->class_names[i]);
        fprintf(f, "</text>\n");
    }
    for (int64_t j = 0; j < c; j++) {
        int x = left + (int)j * cell + cell / 2, y = top + size + 10;
        fprintf(f, "<text x=%d y=%d font-size=12 text-anchor=end transform='rotate(-40 %d %d)'>", x,
                y, x, y);
        esc(f, v->class_names[j]);
        fprintf(f, "</text>\n");
    }
    fprintf(f,
            "<text x=%d y=%d font-size=12 fill='#616e7c' text-anchor=middle>predicted class</text>",
            left + size / 2, h - 4);
    fprintf(f,
            "<text x=12 y=%d font-size=12 fill='#616e7c' text-anchor=middle transform='rotate(-90 "
            "12 %d)'>true class</text>",
            top + size / 2, top + size / 2);
    fprintf(f, "</svg>\n");
}

static void per_class_svg(FILE *f, const ferry_validation *v)
{
    int64_t c = v->cand.width;
    int left = 110, top = 30, band = c <= 10 ? 44 : c <= 20 ? 26 : 14, plot = 440;
    int h = top + (int)c * band + 30, w = left + plot + 20;
    static const char *colors[] = {"#3b82c4", "#f29e4c", "#2f9e62"};
    static const char *names[] = {"precision", "recall", "F1"};
    fprintf(f, "<svg viewBox='0 0 %d %d' width='100%%' role=img aria-label='per-class metrics'>\n",
            w, h);
    for (int k = 0; k < 3; k++)
        fprintf(f,
                "<rect x=%d y=6 width=12 height=12 rx=2 fill='%s'/><text x=%d y=16 "
                "font-size=12>%s</text>",
                left + k * 100, colors[k], left + k * 100 + 17, names[k]);
    if (v->have_base)
        fprintf(f,
                "<rect x=%d y=5 width=3 height=14 fill='#1f2933'/><text x=%d y=16 font-size=12>F1 "
                "baseline</text>",
                left + 300, left + 308);
    for (int t = 0; t <= 4; t++) {
        int x = left + plot * t / 4;
        fprintf(f,
                "<line x1=%d x2=%d y1=%d y2=%d stroke='#e4e7eb'/><text x=%d y=%d font-size=11 "
                "fill='#7b8794' text-anchor=middle>%.2f</text>\n",
                x, x, top, top + (int)c * band, x, top + (int)c * band + 14, t / 4.0);
    }
    for (int64_t i = 0; i < c; i++) {
        int y0 = top + (int)i * band + 3, bh = (band - 8) / 3;
        double vals[3] = {v->cand.precision[i], v->cand.recall[i], v->cand.f1[i]};
        for (int k = 0; k < 3; k++)
            fprintf(f,
                    "<rect x=%d y=%d width=%.1f height=%d fill='%s'><title>%s %.4f</title></rect>",
                    left, y0 + k * bh, plot * vals[k], bh - 1, colors[k], names[k], vals[k]);
        if (v->have_base && v->base.f1)
            fprintf(f,
                    "<rect x=%.1f y=%d width=3 height=%d fill='#1f2933'><title>baseline F1 "
                    "%.4f</title></rect>",
                    left + plot * v->base.f1[i] - 1, y0 - 1, 3 * bh + 1, v->base.f1[i]);
        fprintf(f, "<text x=%d y=%d text-anchor=end font-size=12>", left - 8, y0 + 3 * bh / 2 + 4);
        esc(f, v->class_names[i]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
}

static void latency_svg(FILE *f, const ferry_validation *v)
{
    double lo = INFINITY, hi = -INFINITY;
    const fy_model_eval *ev[2] = {&v->cand, &v->base};
    int models = 1 + v->have_base;
    /* the histogram spans up to the 99th percentile, or 3x the 95th when that is less, so that
     * a few slow runs (a busy neighbour on a shared machine) do not flatten it */
    for (int m = 0; m < models; m++)
        if (ev[m]->n_latency > 0) {
            double p0 = fy_percentile(ev[m]->latency_ms, ev[m]->n_latency, 0);
            double p95 = fy_percentile(ev[m]->latency_ms, ev[m]->n_latency, 95);
            double p99 = fy_percentile(ev[m]->latency_ms, ev[m]->n_latency, 99);
            double top = p99 < 3 * p95 ? p99 : 3 * p95;
            if (p0 < lo) lo = p0;
            if (top > hi) hi = top;
        }
    if (!(lo < hi)) {
        lo = isfinite(lo) ? lo * 0.9 : 0;
        hi = lo > 0 ? lo / 0.9 * 1.1 : 1;
    }
    int counts[2][FY_LAT_BINS] = {{0}}, max = 1;
    for (int m = 0; m < models; m++)
        for (int i = 0; i < ev[m]->n_latency; i++) {
            int b = (int)((ev[m]->latency_ms[i] - lo) / (hi - lo) * FY_LAT_BINS);
            b = b < 0 ? 0 : b >= FY_LAT_BINS ? FY_LAT_BINS - 1 : b;
            if (++counts[m][b] > max) max = counts[m][b];
        }
    int left = 50, top = 34, pw = 500, ph = 220, w = left + pw + 20, h = top + ph + 44;
    static const char *colors[] = {"#3b82c4", "#f29e4c"};
    fprintf(f, "<svg viewBox='0 0 %d %d' width='100%%' role=img aria-label='latency histogram'>\n",
            w, h);
    for (int m = 0; m < models; m++)
        fprintf(f,
                "<rect x=%d y=8 width=12 height=12 rx=2 fill='%s' opacity='.75'/><text x=%d y=18 "
                "font-size=12>%s (p50 %.3g ms, p95 %.3g ms)</text>",
                left + m * 260, colors[m], left + m * 260 + 17, m ? "baseline" : "candidate",
                ev[m]->v[FY_M_LATENCY_P50], ev[m]->v[FY_M_LATENCY_P95]);
    for (int t = 0; t <= 4; t++) {
        int y = top + ph - ph * t / 4;
        fprintf(f,
                "<line x1=%d x2=%d y1=%d y2=%d stroke='#e4e7eb'/><text x=%d y=%d font-size=11 "
                "fill='#7b8794' "
                "text-anchor=end>%d</text>\n",
                left, left + pw, y, y, left - 6, y + 4, max * t / 4);
    }
    double bw = (double)pw / FY_LAT_BINS;
    for (int m = 0; m < models; m++)
        for (int b = 0; b < FY_LAT_BINS; b++) {
            double bh = (double)ph * counts[m][b] / max;
            fprintf(f,
                    "<rect x=%.1f y=%.1f width=%.1f height=%.1f fill='%s' "
                    "opacity='.75'><title>%.3g–%.3g ms: "
                    "%d runs</title></rect>\n",
                    left + b * bw + (models == 2 ? m * bw / 2 : 0) + 1, top + ph - bh,
                    (models == 2 ? bw / 2 : bw) - 1.5, bh, colors[m],
                    lo + (hi - lo) * b / FY_LAT_BINS, lo + (hi - lo) * (b + 1) / FY_LAT_BINS,
                    counts[m][b]);
        }
    for (int t = 0; t <= 5; t++)
        fprintf(f, "<text x=%.1f y=%d font-size=11 fill='#7b8794' text-anchor=middle>%.3g</text>",
                left + pw * t / 5.0, top + ph + 16, lo + (hi - lo) * t / 5);
    fprintf(f,
            "<text x=%d y=%d font-size=12 fill='#616e7c' text-anchor=middle>latency at batch 1 "
            "(ms; slower runs "
            "are counted in the last bin)</text></svg>\n",
            left + pw / 2, h - 6);
}

/* A small bar chart of one profile histogram. */
static void profile_svg(FILE *f, json_t *feature, const char *title)
{
    json_t *hist = json_object_get(feature, "histogram");
    json_t *counts = json_object_get(hist, "counts"), *edges = json_object_get(hist, "edges");
    size_t n = json_array_size(counts);
    if (!n) return;
    json_int_t max = 1;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(counts, i)) > max)
            max = json_integer_value(json_array_get(counts, i));
    int pw = 260, ph = 90;
    fprintf(f,
            "<svg viewBox='0 0 %d %d' width='%d' height='%d' role=img><text x=0 y=12 font-size=12>",
            pw, ph + 36, pw, ph + 36);
    esc(f, title);
    fprintf(f, "</text>");
    for (size_t i = 0; i < n; i++) {
        double bh = (double)ph * json_integer_value(json_array_get(counts, i)) / max;
        fprintf(f, "<rect x=%.1f y=%.1f width=%.1f height=%.1f fill='#7aa6d6'/>",
                pw * (double)i / n + 1, 18 + ph - bh, pw / (double)n - 2, bh);
    }
    fprintf(f,
            "<text x=0 y=%d font-size=11 fill='#7b8794'>%.3g</text><text x=%d y=%d font-size=11 "
            "fill='#7b8794' "
            "text-anchor=end>%.3g</text></svg>\n",
            ph + 32, json_real_value(json_array_get(edges, 0)), pw, ph + 32,
            json_real_value(json_array_get(edges, n)));
}

ferry_status fy_report_html(const ferry_validation *v, FILE *f)
{
    int passed = v->n_failures == 0, n_pass = 0;
    for (int i = 0; i < v->n_gates; i++)
        n_pass += v->gates[i].passed;
    char a[32], b[32], t[32];
    fprintf(
        f,
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'><title>ferry validate: ");
    esc(f, base_name(v->cand.spec));
    fprintf(f, " — %s</title><style>%s</style></head><body>\n", passed ? "passed" : "failed", CSS);
    fprintf(f, "<header class=%s><h1>%s ferry validate: %s</h1><div class=sub><code>",
            passed ? "pass" : "fail", passed ? "✔" : "✘", passed ? "passed" : "failed");
    esc(f, v->cand.spec);
    fprintf(f, "</code>");
    if (v->have_base) {
        fprintf(f, " vs baseline <code>");
        esc(f, v->base.spec);
        fprintf(f, "</code>");
    }
    fprintf(f, "<br>%d of %d gates passed · %lld samples of <code>", n_pass, v->n_gates,
            (long long)v->n_samples);
    esc(f, v->data_desc);
    fprintf(f, "</code> · %s", v->classification ? "classification" : "regression");
    if (v->classification) fprintf(f, " (%lld classes)", (long long)v->cand.width);
    fprintf(f, "</div></header>\n<main>\n<div class=cards>\n");
    static const int cls_cards[] = {FY_M_ACCURACY,    FY_M_F1_MACRO,   FY_M_LOG_LOSS,
                                    FY_M_LATENCY_P95, FY_M_THROUGHPUT, FY_M_SIZE};
    static const int reg_cards[] = {FY_M_MAE,         FY_M_RMSE,       FY_M_R2,
                                    FY_M_LATENCY_P95, FY_M_THROUGHPUT, FY_M_SIZE};
    for (int i = 0; i < 6; i++)
        card(f, v, v->classification ? cls_cards[i] : reg_cards[i]);
    fprintf(f, "</div>\n");

    if (v->n_failures) {
        fprintf(f, "<section class=fails><h2>Failures (%d)</h2><ul>", v->n_failures);
        for (int i = 0; i < v->n_failures; i++) {
            fprintf(f, "<li>");
            esc(f, v->failures[i]);
            fprintf(f, "</li>");
        }
        fprintf(f, "</ul></section>\n");
    }
    fprintf(f, "<section><h2>Gates</h2>");
    if (!v->n_gates)
        fprintf(f, "<p>No gates were given (<code>--gate accuracy&gt;=0.9</code>).</p>");
    else {
        fprintf(f, "<table><tr><th>Gate</th><th>Candidate</th><th>Baseline</th><th>Threshold</"
                   "th><th>Result</th>"
                   "<th>Why</th></tr>\n");
        for (int i = 0; i < v->n_gates; i++) {
            const fy_gate *g = &v->gates[i];
            fprintf(f, "<tr><td><code>");
            esc(f, g->text);
            fprintf(f,
                    "</code></td><td class=n>%s</td><td class=n>%s</td><td class=n>%s</td>"
                    "<td><span class='pill %s'>%s</span></td><td>",
                    fy_metric_fmt(g->metric, g->candidate, a, sizeof a),
                    fy_metric_fmt(g->metric, g->baseline, b, sizeof b),
                    fy_metric_fmt(g->metric, g->threshold, t, sizeof t),
                    g->passed ? "pass" : "fail", g->passed ? "pass" : "fail");
            esc(f, g->reason);
            fprintf(f, "</td></tr>\n");
        }
        fprintf(f, "</table>");
    }
    if (v->have_base) {
        if (v->signature_ok)
            fprintf(f, "<p><span class='pill pass'>signature</span> inputs and outputs match the "
                       "baseline</p>");
        else {
            fprintf(f, "<p><span class='pill fail'>breaking change</span></p><ul>");
            for (int i = 0; i < v->n_sig_changes; i++) {
                fprintf(f, "<li>");
                esc(f, v->sig_changes[i]);
                fprintf(f, "</li>");
            }
            fprintf(f, "</ul>");
        }
    }
    fprintf(f, "</section>\n");

    if (v->classification) {
        fprintf(f, "<div class=row><section><h2>Confusion matrix (candidate; colour: share of the "
                   "true class)</h2>");
        confusion_svg(f, v);
        fprintf(f, "</section><section><h2>Per-class precision, recall and F1</h2>");
        per_class_svg(f, v);
        fprintf(f, "</section></div><br>\n");
    }
    fprintf(f, "<div class=row><section><h2>Latency at batch 1</h2>");
    latency_svg(f, v);
    fprintf(f,
            "</section><section><h2>All "
            "metrics</h2><table><tr><th>Metric</th><th>Candidate</th>%s</tr>\n",
            v->have_base ? "<th>Baseline</th><th>Δ</th>" : "");
    for (int id = 0; id < FY_M_COUNT; id++) {
        if (!v->cand.has[id] && !(v->have_base && v->base.has[id])) continue;
        fprintf(f, "<tr><td title='%s'>%s</td><td class=n>%s</td>", fy_metric_defs[id].description,
                fy_metric_defs[id].name,
                v->cand.has[id] ? fy_metric_fmt(id, v->cand.v[id], a, sizeof a) : "–");
        if (v->have_base) {
            int both = v->cand.has[id] && v->base.has[id];
            double delta = both ? v->cand.v[id] - v->base.v[id] : 0;
            int better = fy_metric_defs[id].higher_is_better ? delta > 0 : delta < 0;
            fprintf(f, "<td class=n>%s</td><td class='n %s'>%s%s</td>",
                    v->base.has[id] ? fy_metric_fmt(id, v->base.v[id], b, sizeof b) : "",
                    !both || delta == 0 ? ""
                    : better            ? "good"
                                        : "bad",
                    both && delta > 0 ? "+" : "",
                    both ? fy_metric_fmt(id, delta, t, sizeof t) : "");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table></section></div><br>\n");

    json_t *prof = v->profile;
    json_t *feats = json_object_get(json_object_get(prof, "inputs"), "features");
    if (feats && json_object_size(feats)) {
        fprintf(f, "<section><h2>Reference data profile (stored in the JSON report for drift "
                   "monitoring)</h2>"
                   "<div style='display:flex;flex-wrap:wrap;gap:18px'>");
        const char *key;
        json_t *val;
        int shown = 0;
        json_object_foreach(feats, key, val)
        {
            if (shown++ == 4) break;
            char title[160];
            snprintf(title, sizeof title, "input %s", key);
            profile_svg(f, val, title);
        }
        json_t *conf = json_object_get(json_object_get(prof, "outputs"), "confidence");
        if (conf) profile_svg(f, conf, "output confidence (top-1 probability)");
        fprintf(f, "</div></section>\n");
    }
    fprintf(f,
            "<footer>ferry validate · inputs (x − %g) × %g · %s · latency: %d runs at batch 1%s · "
            "throughput at "
            "batch %d · %.1f s</footer>\n</main></body></html>\n",
            v->mean, v->scale,
            v->classification ? (v->cand.softmax_applied ? "probabilities = softmax(outputs)"
                                                         : "outputs are probabilities")
                              : "regression",
            v->cand.n_latency, v->have_base ? ", alternating with the baseline" : "",
            v->opts.batch > 0 ? v->opts.batch : 64, v->wall_seconds);
    return ferror(f) ? fy_error(FERRY_E_IO, "cannot write the HTML report") : FERRY_OK;
}
