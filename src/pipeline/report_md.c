/* report_md.c — ferry validate's Markdown report, written to be posted as a PR comment or a CI
 * job summary: a verdict line, one table of metrics (candidate, baseline, delta, gate, result),
 * the failures spelled out, then per-class metrics and the confusion matrix folded away. */
#include <math.h>
#include <string.h>

#include "core/status.h"
#include "pipeline/validate.h"

/* Gates on metric id, joined for its table cell; *state gets 1 all pass, 0 one fails, -1 none. */
static void gates_cell(const ferry_validation *v, int id, char *buf, size_t size, int *state)
{
    size_t n = 0;
    buf[0] = '\0';
    *state = -1;
    for (int i = 0; i < v->n_gates; i++) {
        if (v->gates[i].metric != id) continue;
        n += snprintf(buf + n, size - n > size ? 0 : size - n, "%s`%s`", n ? "<br>" : "",
                      v->gates[i].text);
        if (n >= size) n = size - 1;
        if (*state != 0) *state = v->gates[i].passed;
    }
}

static int metric_shown(const ferry_validation *v, int id)
{
    if (v->cand.has[id] || (v->have_base && v->base.has[id])) return 1;
    for (int i = 0; i < v->n_gates; i++)
        if (v->gates[i].metric == id) return 1;
    return 0;
}

/* Text inside a table cell: a '|' would end the cell, a newline the row. */
static void cell_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

ferry_status fy_report_markdown(const ferry_validation *v, FILE *f)
{
    int passed = v->n_failures == 0;
    char a[32], b[32], d[32], cell[1024];
    if (passed)
        fprintf(f, "## ✅ ferry validate: passed");
    else
        fprintf(f, "## ❌ ferry validate: failed");
    fprintf(f, " — `%s`", base_name(v->cand.spec));
    if (v->have_base) fprintf(f, " vs baseline `%s`", v->base.spec);
    fprintf(f, "\n\n");
    int n_pass = 0;
    for (int i = 0; i < v->n_gates; i++)
        n_pass += v->gates[i].passed;
    fprintf(f, "**%d of %d gates passed**", n_pass, v->n_gates);
    if (v->have_base)
        fprintf(f, " · signature %s", v->signature_ok ? "compatible" : "**breaking change**");
    fprintf(f, " · %lld samples of `%s` · %s", (long long)v->n_samples, v->data_desc,
            v->classification ? "classification" : "regression");
    if (v->classification) fprintf(f, " (%lld classes)", (long long)v->cand.width);
    fprintf(f, "\n\n");

    fprintf(f, "| Metric | Candidate |%s Gate | Result |\n", v->have_base ? " Baseline | Δ |" : "");
    fprintf(f, "|---|---:|%s---|:---:|\n", v->have_base ? "---:|---:|" : "");
    for (int id = 0; id < FY_M_COUNT; id++) {
        if (!metric_shown(v, id)) continue;
        int state;
        gates_cell(v, id, cell, sizeof cell, &state);
        fprintf(f, "| %s | %s |", fy_metric_defs[id].name,
                v->cand.has[id] ? fy_metric_fmt(id, v->cand.v[id], a, sizeof a) : "missing");
        if (v->have_base) {
            int both = v->cand.has[id] && v->base.has[id];
            if (both) {
                double delta = v->cand.v[id] - v->base.v[id];
                fy_metric_fmt(id, delta, d, sizeof d);
                if (delta > 0 && d[0] != '+') memmove(d + 1, d, strlen(d) + 1), d[0] = '+';
            }
            fprintf(f, " %s | %s |",
                    v->base.has[id] ? fy_metric_fmt(id, v->base.v[id], b, sizeof b) : "",
                    both ? d : "");
        }
        fprintf(f, " %s | %s |\n", cell, state < 0 ? "" : state ? "✅ pass" : "❌ fail");
    }
    fprintf(f, "\n");
    if (v->n_failures) {
        fprintf(f, "### Failures (%d)\n\n", v->n_failures);
        for (int i = 0; i < v->n_failures; i++)
            fprintf(f, "- %s\n", v->failures[i]);
        fprintf(f, "\n");
    }
    if (v->have_base) {
        if (v->signature_ok)
            fprintf(f, "Signature: inputs and outputs match the baseline.\n\n");
        else {
            fprintf(f, "### Breaking signature change\n\n");
            for (int i = 0; i < v->n_sig_changes; i++)
                fprintf(f, "- %s\n", v->sig_changes[i]);
            fprintf(f, "\n");
        }
    }
    if (v->classification) {
        fprintf(f, "<details><summary>Per-class metrics</summary>\n\n");
        fprintf(f, "| Class | Precision | Recall | F1 | Support |%s\n",
                v->have_base ? " F1 baseline |" : "");
        fprintf(f, "|---|---:|---:|---:|---:|%s\n", v->have_base ? "---:|" : "");
        for (int64_t j = 0; j < v->cand.width; j++) {
            fprintf(f, "| ");
            cell_text(f, v->class_names[j]);
            fprintf(f, " | %.4f | %.4f | %.4f | %lld |", v->cand.precision[j], v->cand.recall[j],
                    v->cand.f1[j], (long long)v->cand.support[j]);
            if (v->have_base) fprintf(f, " %.4f |", v->base.f1[j]);
            fprintf(f, "\n");
        }
        fprintf(f, "\n</details>\n\n<details><summary>Confusion matrix (rows: true class, columns: "
                   "predicted)</summary>\n\n|  |");
        for (int64_t j = 0; j < v->cand.width; j++) {
            fputc(' ', f);
            cell_text(f, v->class_names[j]);
            fputs(" |", f);
        }
        fprintf(f, "\n|---|");
        for (int64_t j = 0; j < v->cand.width; j++)
            fprintf(f, "---:|");
        fprintf(f, "\n");
        for (int64_t i = 0; i < v->cand.width; i++) {
            fprintf(f, "| **");
            cell_text(f, v->class_names[i]);
            fprintf(f, "** |");
            for (int64_t j = 0; j < v->cand.width; j++) {
                long long c = (long long)v->cand.confusion[i * v->cand.width + j];
                fprintf(f, i == j ? " **%lld** |" : " %lld |", c);
            }
            fprintf(f, "\n");
        }
        fprintf(f, "\n</details>\n\n");
    }
    fprintf(f,
            "<sub>ferry validate · inputs (x − %g) × %g%s · %s · latency: batch 1, %d runs%s · "
            "throughput: batch %d%s · %.1f s</sub>\n",
            v->mean, v->scale, v->scale_auto && v->scale != 1 ? " (automatic for uint8 data)" : "",
            v->classification ? (v->cand.softmax_applied ? "log loss on softmax(outputs)"
                                                         : "outputs are probabilities")
                              : "regression outputs as they are",
            v->cand.n_latency, v->have_base ? ", alternating with the baseline" : "",
            v->opts.batch > 0 ? v->opts.batch : 64, v->have_base ? ", alternating" : "",
            v->wall_seconds);
    return ferror(f) ? fy_error(FERRY_E_IO, "cannot write the Markdown report") : FERRY_OK;
}
