/* report.c — the `ferry optimize --report` file: sizes, parameter bytes, latency, accuracy and
 * agreement before/after, what pruning and fp16 did per layer. JSON for machines (CI), Markdown
 * for a CI log or a pull-request comment; the format follows the file's extension. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimize/model_opt.h"
#include "optimize/quantize.h"

static const char *level_str(ferry_opt_level l)
{
    static const char *const names[] = {"none", "basic", "extended", "all"};
    return l >= FERRY_OPT_NONE && l <= FERRY_OPT_ALL ? names[l] : "?";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static json_t *num_or_null(double v, bool have) { return have ? json_real(v) : json_null(); }

static ferry_status write_json(FILE *f, const char *in, const char *out, const ferry_optimize_options *o,
                               const ferry_optimize_summary *s, const fy_opt_log *log)
{
    json_t *root = json_object();
    json_object_set_new(root, "model", json_string(in));
    json_object_set_new(root, "output", json_string(out));
    json_t *opt = json_object();
    json_object_set_new(opt, "level", json_string(level_str(o->level)));
    json_object_set_new(opt, "fp16", json_boolean(o->fp16));
    json_object_set_new(opt, "keep_fp32", o->keep_fp32 ? json_string(o->keep_fp32) : json_string("auto"));
    json_object_set_new(opt, "prune", json_real(o->prune));
    json_object_set_new(opt, "prune_structured", json_boolean(o->prune_structured));
    json_object_set_new(opt, "prune_per_layer", json_boolean(o->prune_per_layer));
    json_object_set_new(opt, "external_data", json_boolean(o->external_data));
    json_object_set_new(root, "options", opt);
    json_t *size = json_object();
    json_object_set_new(size, "file_bytes_before", json_integer(s->in_file_bytes));
    json_object_set_new(size, "file_bytes_after", json_integer(s->out_file_bytes));
    json_object_set_new(size, "file_ratio", json_real(ratio((double)s->out_file_bytes, (double)s->in_file_bytes)));
    json_object_set_new(size, "param_bytes_before", json_integer(s->in_param_bytes));
    json_object_set_new(size, "param_bytes_after", json_integer(s->out_param_bytes));
    json_object_set_new(size, "nodes_before", json_integer(s->in_nodes));
    json_object_set_new(size, "nodes_after", json_integer(s->out_nodes));
    json_object_set_new(root, "size", size);
    json_t *lat = json_object();
    bool timed = s->in_latency_ms > 0;
    json_object_set_new(lat, "batch", json_integer(o->bench_batch));
    json_object_set_new(lat, "runs", json_integer(o->bench_runs));
    json_object_set_new(lat, "median_ms_before", num_or_null(s->in_latency_ms, timed));
    json_object_set_new(lat, "median_ms_after", num_or_null(s->out_latency_ms, timed));
    json_object_set_new(lat, "ratio", num_or_null(ratio(s->out_latency_ms, s->in_latency_ms), timed));
    json_object_set_new(root, "latency", lat);
    json_t *acc = json_object();
    json_object_set_new(acc, "max_relative_error", num_or_null(s->max_rel_error, s->max_rel_error >= 0));
    json_object_set_new(acc, "top1_agreement", num_or_null(s->agreement, s->agreement >= 0));
    json_object_set_new(acc, "accuracy_before", num_or_null(s->in_accuracy, s->in_accuracy >= 0));
    json_object_set_new(acc, "accuracy_after", num_or_null(s->out_accuracy, s->out_accuracy >= 0));
    json_object_set_new(root, "accuracy", acc);
    if (log->n_layers) {
        json_t *pr = json_object(), *layers = json_array();
        json_object_set_new(pr, "threshold", num_or_null(log->prune_threshold, log->prune_threshold >= 0));
        int64_t total = 0, zeros = 0;
        for (int i = 0; i < log->n_layers; i++) {
            const fy_layer_stat *l = &log->layers[i];
            json_t *j = json_object();
            json_object_set_new(j, "weight", json_string(l->name));
            json_object_set_new(j, "node", json_string(l->node));
            json_object_set_new(j, "op", json_string(l->op));
            json_object_set_new(j, "elements", json_integer(l->count));
            json_object_set_new(j, "sparsity", json_real(ratio((double)l->zeros, (double)l->count)));
            if (l->channels) {
                json_object_set_new(j, "channels", json_integer(l->channels));
                json_object_set_new(j, "channels_pruned", json_integer(l->channels_pruned));
            }
            json_array_append_new(layers, j);
            total += l->count, zeros += l->zeros;
        }
        json_object_set_new(pr, "sparsity", json_real(ratio((double)zeros, (double)total)));
        json_object_set_new(pr, "layers", layers);
        json_object_set_new(root, "pruning", pr);
    }
    if (o->fp16) {
        json_t *h = json_object(), *kept = json_array();
        json_object_set_new(h, "nodes_fp16", json_integer(log->n_half));
        json_object_set_new(h, "casts_added", json_integer(log->n_casts));
        for (int i = 0; i < log->n_kept; i++) {
            json_t *k = json_object();
            json_object_set_new(k, "node", json_string(log->kept[i].node));
            json_object_set_new(k, "op", json_string(log->kept[i].op));
            json_object_set_new(k, "why", json_string(log->kept[i].why));
            json_array_append_new(kept, k);
        }
        json_object_set_new(h, "kept_fp32", kept);
        json_object_set_new(root, "fp16", h);
    }
    if (log->int8) {
        json_t *q = fy_int8_report_json(log->int8);
        if (q) json_object_set_new(root, "int8", q);
    }
    int bad = json_dumpf(root, f, JSON_INDENT(2)) != 0;
    json_decref(root);
    fputc('\n', f);
    return bad ? fy_error(FERRY_E_IO, "cannot write the JSON report") : FERRY_OK;
}

static void pct(FILE *f, double v, bool have)
{
    if (have) fprintf(f, "%.2f%%", 100 * v);
    else fprintf(f, "—");
}

static ferry_status write_md(FILE *f, const char *in, const char *out, const ferry_optimize_options *o,
                             const ferry_optimize_summary *s, const fy_opt_log *log)
{
    fprintf(f, "# ferry optimize report\n\n");
    fprintf(f, "`%s` → `%s`: level **%s**%s", in, out, level_str(o->level), o->fp16 ? ", **fp16**" : "");
    if (o->prune > 0)
        fprintf(f, ", pruned to **%.0f%%** sparsity (%s, %s)", o->prune * 100,
                o->prune_structured ? "structured" : "unstructured", o->prune_per_layer ? "per layer" : "global");
    fprintf(f, "\n\n| | before | after | ratio |\n|---|---:|---:|---:|\n");
    fprintf(f, "| file bytes | %lld | %lld | %.3f |\n", (long long)s->in_file_bytes,
            (long long)s->out_file_bytes, ratio((double)s->out_file_bytes, (double)s->in_file_bytes));
    fprintf(f, "| parameter bytes | %lld | %lld | %.3f |\n", (long long)s->in_param_bytes,
            (long long)s->out_param_bytes, ratio((double)s->out_param_bytes, (double)s->in_param_bytes));
    fprintf(f, "| nodes | %lld | %lld | |\n", (long long)s->in_nodes, (long long)s->out_nodes);
    if (s->in_latency_ms > 0)
        fprintf(f, "| latency, ferry (median of %d, batch %d) | %.3f ms | %.3f ms | %.3f |\n", o->bench_runs,
                o->bench_batch, s->in_latency_ms, s->out_latency_ms, ratio(s->out_latency_ms, s->in_latency_ms));
    if (s->in_accuracy >= 0) {
        fprintf(f, "| top-1 accuracy | ");
        pct(f, s->in_accuracy, true);
        fprintf(f, " | ");
        pct(f, s->out_accuracy, true);
        fprintf(f, " | %+.2f points |\n", 100 * (s->out_accuracy - s->in_accuracy));
    }
    fprintf(f, "\n");
    if (s->agreement >= 0) {
        fprintf(f, "Top-1 agreement with the original: ");
        pct(f, s->agreement, true);
        fprintf(f, ".\n");
    }
    if (s->max_rel_error >= 0)
        fprintf(f, "Largest output difference: %.3g of the output's largest magnitude.\n", s->max_rel_error);
    if (s->in_latency_ms > 0)
        fprintf(f, "\nLatency: both models loaded by ferry (which applies its own graph passes at load), "
                   "run alternately in one process.\n");
    if (log->n_layers) {
        int64_t total = 0, zeros = 0;
        for (int i = 0; i < log->n_layers; i++) total += log->layers[i].count, zeros += log->layers[i].zeros;
        fprintf(f, "\n## Pruning\n\nOverall sparsity of the pruned weights: %.2f%%", 100 * ratio((double)zeros, (double)total));
        if (log->prune_threshold >= 0) fprintf(f, " (global threshold %.4g)", log->prune_threshold);
        fprintf(f, ". Zeros are stored densely: the file is not smaller, it compresses better.\n\n"
                   "| weight | node | op | elements | sparsity | channels pruned |\n|---|---|---|---:|---:|---:|\n");
        for (int i = 0; i < log->n_layers; i++) {
            const fy_layer_stat *l = &log->layers[i];
            fprintf(f, "| %s | %s | %s | %lld | %.2f%% | ", l->name, l->node, l->op, (long long)l->count,
                    100 * ratio((double)l->zeros, (double)l->count));
            if (l->channels) fprintf(f, "%lld/%lld |\n", (long long)l->channels_pruned, (long long)l->channels);
            else fprintf(f, "— |\n");
        }
    }
    if (o->fp16) {
        fprintf(f, "\n## float16\n\n%d nodes compute in float16; %d Cast nodes added; inputs and outputs "
                   "stay float32.\n", log->n_half, log->n_casts);
        if (log->n_kept) {
            fprintf(f, "\nKept in float32:\n\n| node | op | why |\n|---|---|---|\n");
            for (int i = 0; i < log->n_kept; i++)
                fprintf(f, "| %s | %s | %s |\n", log->kept[i].node, log->kept[i].op, log->kept[i].why);
        }
    }
    if (log->int8) fy_int8_report_md(f, log->int8);
    return FERRY_OK;
}

ferry_status fy_report_write(const char *path, const char *model_in, const char *model_out,
                             const ferry_optimize_options *o, const ferry_optimize_summary *s,
                             const fy_opt_log *log)
{
    bool json = ends_with(path, ".json");
    if (!json && !ends_with(path, ".md"))
        return fy_error(FERRY_E_INVALID_ARG, "report %s: the name must end in .md or .json", path);
    FILE *f = fopen(path, "w");
    if (!f) return fy_error(FERRY_E_IO, "cannot create %s: %s", path, strerror(errno));
    ferry_status rc = json ? write_json(f, model_in, model_out, o, s, log) : write_md(f, model_in, model_out, o, s, log);
    if (fclose(f) != 0 && rc == FERRY_OK) rc = fy_error(FERRY_E_IO, "cannot write %s", path);
    return rc;
}
