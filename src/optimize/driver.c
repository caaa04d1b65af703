/* driver.c — ferry_optimize: read the model as the file has it, run the graph passes of the
 * chosen level, prune, convert to float16 (int8 hooks in here too), write standard ONNX with a
 * metadata record of what was done, then measure the result against the original in the same
 * process: sizes, latency (alternating runs, median), and outputs/accuracy on data if given. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ferry/dataset.h"
#include "onnx/write.h"
#include "ops/infer.h"
#include "optimize/model_opt.h"
#include "optimize/pass_impl.h"
#include "optimize/passes.h"
#include "optimize/quantize.h"

void ferry_optimize_options_init(ferry_optimize_options *o)
{
    memset(o, 0, sizeof *o);
    o->level = FERRY_OPT_EXTENDED;
    o->bench_batch = 1;
    o->bench_runs = 20;
    o->reduce_range = -1;
    o->per_channel = 1;
    o->accuracy_budget = -1;
}

static const char *level_name(ferry_opt_level l)
{
    switch (l) {
    case FERRY_OPT_NONE: return "none";
    case FERRY_OPT_BASIC: return "basic";
    case FERRY_OPT_EXTENDED: return "extended";
    default: return "all";
    }
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static int64_t model_params(const fy_graph *g, int64_t *nodes)
{
    int64_t total = 0;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].init) total += g->values[i].init->count * (int64_t)ferry_dtype_size(g->values[i].init->dtype);
    *nodes += g->n_nodes;
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            const fy_attr *at = &g->nodes[i].attrs[a];
            if (at->g) total += model_params(at->g, nodes);
            for (int64_t k = 0; at->graphs && k < at->n; k++) total += model_params(at->graphs[k], nodes);
        }
    return total;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- inputs ------------------------------------------------------------------------------ */

/* Synthetic inputs from the declared types: symbolic/unknown dims become batch (first) or 1;
 * float data uniform in [0, 1) from a fixed seed, everything else zeros. */
static ferry_status make_inputs(const ferry_model *m, int batch, ferry_value **ins, const char **names)
{
    uint32_t seed = 0x9e3779b9u;
    for (int i = 0; i < ferry_model_input_count(m); i++) {
        ferry_io_info info;
        FY_CHECK(ferry_model_input(m, i, &info));
        names[i] = info.name;
        if (info.kind != FERRY_VALUE_TENSOR || info.rank < 0)
            return fy_error(FERRY_E_UNSUPPORTED, "input \"%s\" has no declared tensor shape to time with",
                            info.name);
        int64_t dims[FERRY_MAX_RANK];
        for (int d = 0; d < info.rank; d++) dims[d] = info.dims[d] >= 0 ? info.dims[d] : (d == 0 ? batch : 1);
        FY_CHECK(fy_tensor_zeros(info.dtype, info.rank, dims, &ins[i]));
        if (info.dtype == FERRY_DTYPE_F32) {
            float *p = ins[i]->data;
            for (int64_t k = 0; k < ins[i]->count; k++) {
                seed = seed * 1664525u + 1013904223u;
                p[k] = (float)(seed >> 8) / (float)(1u << 24);
            }
        }
    }
    return FERRY_OK;
}

/* Worst normalized difference of b against a: max|a-b| / max|a| per output, the max over
 * outputs (float outputs only). */
static double rel_error(int n, ferry_value **a, ferry_value **b)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        if (!a[i] || !b[i] || a[i]->kind != FERRY_VALUE_TENSOR || !fy_dtype_is_float(a[i]->dtype) ||
            a[i]->count != b[i]->count)
            continue;
        double scale = 0, diff = 0;
        for (int64_t k = 0; k < a[i]->count; k++) {
            double x = fy_tensor_get_f64(a[i], k), y = fy_tensor_get_f64(b[i], k);
            scale = fmax(scale, fabs(x));
            diff = fmax(diff, fabs(x - y));
        }
        double r = diff / (scale > 1e-12 ? scale : 1e-12);
        if (r > worst || isnan(r)) worst = r;
    }
    return worst;
}

static int64_t argmax_row(const fy_value *t, int64_t row, int64_t cols)
{
    int64_t best = 0;
    for (int64_t c = 1; c < cols; c++)
        if (fy_tensor_get_f64(t, row * cols + c) > fy_tensor_get_f64(t, row * cols + best)) best = c;
    return best;
}

/* ---- measurement ------------------------------------------------------------------------- */

typedef struct pair {
    ferry_model *m[2];
    ferry_session *s[2];
    int n_in, n_out;
    const char *names[64];
} pair;

static void pair_free(pair *p)
{
    for (int i = 0; i < 2; i++) {
        ferry_session_free(p->s[i]);
        ferry_model_free(p->m[i]);
    }
}

static ferry_status pair_open(pair *p, const char *a, const char *b)
{
    memset(p, 0, sizeof *p);
    FY_CHECK(ferry_model_load(a, &p->m[0]));
    FY_CHECK(ferry_model_load(b, &p->m[1]));
    for (int i = 0; i < 2; i++) FY_CHECK(ferry_session_create(p->m[i], NULL, &p->s[i]));
    p->n_in = ferry_model_input_count(p->m[0]);
    p->n_out = ferry_model_output_count(p->m[0]);
    if (p->n_in > 64 || p->n_out > 64 || ferry_model_output_count(p->m[1]) != p->n_out ||
        ferry_model_input_count(p->m[1]) != p->n_in)
        return fy_error(FERRY_E_INTERNAL, "the optimized model's inputs/outputs differ from the original's");
    for (int i = 0; i < p->n_in; i++) {
        ferry_io_info info;
        FY_CHECK(ferry_model_input(p->m[0], i, &info));
        p->names[i] = info.name;
    }
    return FERRY_OK;
}

static void free_values(int n, ferry_value **v)
{
    for (int i = 0; i < n; i++) {
        ferry_value_free(v[i]);
        v[i] = NULL;
    }
}

static ferry_status bench(pair *p, const ferry_optimize_options *o, ferry_optimize_summary *s)
{
    ferry_value *ins[64] = {0}, *out[2][64] = {{0}};
    ferry_status rc = make_inputs(p->m[0], o->bench_batch > 0 ? o->bench_batch : 1, ins, p->names);
    int runs = o->bench_runs;
    double *t[2] = {calloc(runs + 1, sizeof(double)), calloc(runs + 1, sizeof(double))};
    if (rc == FERRY_OK && (!t[0] || !t[1])) rc = fy_error(FERRY_E_NOMEM, "out of memory");
    /* warm up (first runs prepare kernels), and compare the outputs */
    for (int w = 0; w < 2 && rc == FERRY_OK; w++)
        for (int i = 0; i < 2 && rc == FERRY_OK; i++) {
            free_values(p->n_out, out[i]);
            rc = ferry_session_run(p->s[i], p->n_in, p->names, ins, out[i]);
        }
    if (rc == FERRY_OK) s->max_rel_error = rel_error(p->n_out, out[0], out[1]);
    for (int r = 0; r < runs && rc == FERRY_OK; r++)
        for (int k = 0; k < 2 && rc == FERRY_OK; k++) {
            int i = (r & 1) ? 1 - k : k; /* alternate which model goes first */
            free_values(p->n_out, out[i]);
            double t0 = now_s();
            rc = ferry_session_run(p->s[i], p->n_in, p->names, ins, out[i]);
            t[i][r] = (now_s() - t0) * 1e3;
        }
    if (rc == FERRY_OK && runs > 0) {
        qsort(t[0], runs, sizeof(double), cmp_double);
        qsort(t[1], runs, sizeof(double), cmp_double);
        s->in_latency_ms = t[0][runs / 2];
        s->out_latency_ms = t[1][runs / 2];
    }
    free(t[0]), free(t[1]);
    free_values(p->n_in, ins);
    free_values(p->n_out, out[0]);
    free_values(p->n_out, out[1]);
    return rc;
}

static void progress(int on, int64_t done, int64_t total)
{
    if (!on || total <= 0) return;
    int width = 30, fill = (int)(width * done / total);
    fprintf(stderr, "\revaluating [%.*s%*s] %lld/%lld", fill, "==============================",
            width - fill, "", (long long)done, (long long)total);
    if (done == total) fputc('\n', stderr);
}

static ferry_status evaluate(pair *p, const ferry_optimize_options *o, ferry_optimize_summary *s)
{
    ferry_value *data = NULL, *labels = NULL;
    FY_CHECK(ferry_dataset_load(o->eval_data, NULL, &data, &labels));
    ferry_status rc = FERRY_OK;
    if (o->eval_labels) {
        ferry_value_free(labels);
        labels = NULL;
        rc = ferry_dataset_load(o->eval_labels, NULL, &labels, NULL);
    }
    ferry_io_info info;
    if (rc == FERRY_OK) rc = ferry_model_input(p->m[0], 0, &info);
    if (rc == FERRY_OK && p->n_in != 1)
        rc = fy_error(FERRY_E_UNSUPPORTED, "evaluation needs a model with one input (this one has %d)", p->n_in);
    if (rc == FERRY_OK && (data->rank < 1 || data->dims[0] == 0 || !fy_dtype_is_numeric(data->dtype)))
        rc = fy_error(FERRY_E_INVALID_ARG, "%s: expected numeric samples along the first axis", o->eval_data);
    int64_t n = rc == FERRY_OK ? data->dims[0] : 0;
    if (o->eval_limit > 0 && n > o->eval_limit) n = o->eval_limit;
    if (rc == FERRY_OK && labels && (labels->count < n || !fy_dtype_is_numeric(labels->dtype)))
        rc = fy_error(FERRY_E_INVALID_ARG, "%s: expected at least %lld numeric labels",
                      o->eval_labels ? o->eval_labels : o->eval_data, (long long)n);
    ferry_fit_options fit = {.scale = o->eval_scale, .mean = o->eval_mean};
    if (rc == FERRY_OK && fit.scale == 0) fit.scale = ferry_dataset_default_scale(data->dtype, info.dtype);
    int64_t correct[2] = {0, 0}, agree = 0;
    double worst = 0;
    for (int64_t start = 0; start < n && rc == FERRY_OK; start += 256) {
        int64_t b = n - start < 256 ? n - start : 256;
        fy_value *x = NULL, *out[2][64] = {{0}};
        rc = ferry_dataset_fit(data, start, b, &info, &fit, &x);
        for (int i = 0; i < 2 && rc == FERRY_OK; i++)
            rc = ferry_session_run(p->s[i], 1, p->names, &x, out[i]);
        if (rc == FERRY_OK) {
            worst = fmax(worst, rel_error(p->n_out, out[0], out[1]));
            const fy_value *y0 = out[0][0], *y1 = out[1][0];
            if (y0->kind == FERRY_VALUE_TENSOR && y0->rank == 2 && y0->dims[0] == b) {
                int64_t cols = y0->dims[1];
                for (int64_t r = 0; r < b; r++) {
                    int64_t a0 = argmax_row(y0, r, cols), a1 = argmax_row(y1, r, cols);
                    agree += a0 == a1;
                    if (labels) {
                        int64_t l = fy_tensor_get_i64(labels, start + r);
                        correct[0] += a0 == l;
                        correct[1] += a1 == l;
                    }
                }
            }
        }
        fy_value_unref(x);
        free_values(p->n_out, out[0]);
        free_values(p->n_out, out[1]);
        progress(o->progress, start + b, n);
    }
    if (rc == FERRY_OK && n > 0) {
        s->agreement = (double)agree / (double)n;
        if (labels) {
            s->in_accuracy = (double)correct[0] / (double)n;
            s->out_accuracy = (double)correct[1] / (double)n;
        }
        s->max_rel_error = fmax(s->max_rel_error, worst);
    }
    fy_value_unref(data);
    fy_value_unref(labels);
    return rc;
}

/* ---- the entry point --------------------------------------------------------------------- */

/* The graph passes of a level. LayerNormalization exists from ONNX opset 17, which a model
 * importing 13+ may adopt without changing meaning (the writer raises its import); an older
 * model gets every ALL-level fusion but that one. */
static ferry_status optimize_level(struct ferry_model *m, ferry_opt_level level)
{
    int64_t onnx = 1;
    for (int i = 0; i < m->n_opsets; i++)
        if (!m->opset_domains[i][0] || !strcmp(m->opset_domains[i], "ai.onnx")) onnx = m->opset_versions[i];
    if (level < FERRY_OPT_ALL || onnx >= 13) return fy_optimize_model(m, (fy_opt_level)level);
    FY_CHECK(fy_optimize_model(m, FY_OPT_EXTENDED));
    fy_rewrite rw;
    FY_CHECK(fy_rw_begin(&rw, m, m->graph));
    ferry_status rc = FERRY_OK;
    for (int round = 0; round < 8 && rc == FERRY_OK; round++) {
        int n = fy_pass_fuse_gelu(&rw);
        rc = rw.error;
        if (rc == FERRY_OK && rw.changes) rc = fy_rw_commit(&rw);
        if (!n) break;
    }
    fy_rw_end(&rw);
    return rc;
}

static ferry_status rewrite_and_write(const char *in_path, const char *out_path,
                                      const ferry_optimize_options *o, ferry_optimize_summary *s,
                                      fy_opt_log *log)
{
    ferry_model *m;
    FY_CHECK(ferry_model_load_flags(in_path, FERRY_LOAD_NO_OPTIMIZE | FERRY_LOAD_ALLOW_UNSUPPORTED, &m));
    s->in_file_bytes = file_size(in_path);
    for (int i = 0; i < m->n_maps; i++) s->in_file_bytes += (int64_t)m->maps[i].len;
    s->in_param_bytes = model_params(m->graph, &s->in_nodes);
    /* int8 quantizes standard Conv/Gemm/MatMul: the float fusions (FusedConv...) would hide them,
     * and ferry re-fuses the QDQ graph into int8 kernels when it loads the file */
    ferry_status rc = optimize_level(m, o->int8 && o->level > FERRY_OPT_BASIC ? FERRY_OPT_BASIC : o->level);
    if (rc == FERRY_OK && o->prune > 0)
        rc = fy_prune(m, o->prune, o->prune_structured != 0, o->prune_per_layer != 0, log);
    /* values the passes made are untyped until inferred, and fp16 converts only typed ones */
    if (rc == FERRY_OK) fy_graph_infer(m->graph);
    if (rc == FERRY_OK && o->fp16) rc = fy_fp16_convert(m, o->keep_fp32, log);
    /* int8 quantization runs here (after the float rewrites, before writing) */
    if (rc == FERRY_OK && o->int8) {
        log->int8 = calloc(1, sizeof *log->int8);
        rc = log->int8 ? fy_int8_apply(m, in_path, o, log->int8)
                       : fy_error(FERRY_E_NOMEM, "out of memory");
    }
    char meta[1024];
    snprintf(meta, sizeof meta, "level=%s fp16=%d keep_fp32=%s prune=%g structured=%d per_layer=%d",
             level_name(o->level), o->fp16 ? 1 : 0, o->keep_fp32 ? o->keep_fp32 : "auto", o->prune,
             o->prune_structured ? 1 : 0, o->prune_per_layer ? 1 : 0);
    if (o->int8 && log->int8) {
        size_t len = strlen(meta);
        const fy_quant_report *qr = &log->int8->rep;
        snprintf(meta + len, sizeof meta - len, " int8=%s%s%s reduce_range=%d per_channel=%d",
                 qr->dynamic ? "dynamic" : "static", qr->method ? " calibrate=" : "",
                 qr->method ? qr->method : "", qr->reduce_range, qr->per_channel);
    }
    const char *keys[] = {"ferry.optimize"}, *vals[] = {meta};
    fy_write_options wo = {.external_data = o->external_data, .n_meta = 1, .meta_keys = keys, .meta_values = vals};
    if (rc == FERRY_OK) {
        s->out_nodes = 0;
        s->out_param_bytes = model_params(m->graph, &s->out_nodes);
        rc = fy_onnx_write(m, out_path, &wo);
    }
    ferry_model_free(m);
    if (rc != FERRY_OK) return rc;
    char data[4096];
    snprintf(data, sizeof data, "%s.data", out_path);
    s->out_file_bytes = file_size(out_path) + (o->external_data ? file_size(data) : 0);
    return FERRY_OK;
}

ferry_status ferry_optimize(const char *in_path, const char *out_path,
                            const ferry_optimize_options *opts, ferry_optimize_summary *summary)
{
    if (!in_path || !out_path) return fy_error(FERRY_E_INVALID_ARG, "input and output paths are required");
    ferry_optimize_options defaults;
    ferry_optimize_options_init(&defaults);
    const ferry_optimize_options *o = opts ? opts : &defaults;
    if (o->level < FERRY_OPT_NONE || o->level > FERRY_OPT_ALL)
        return fy_error(FERRY_E_INVALID_ARG, "unknown optimization level %d", (int)o->level);
    if (o->prune != 0 && !(o->prune > 0 && o->prune < 1))
        return fy_error(FERRY_E_INVALID_ARG, "pruning sparsity must be between 0 and 1, got %g", o->prune);
    if (strcmp(in_path, out_path) == 0)
        return fy_error(FERRY_E_INVALID_ARG, "the output must not overwrite the input model %s", in_path);
    ferry_optimize_summary s = {.in_accuracy = -1, .out_accuracy = -1, .agreement = -1, .max_rel_error = -1};
    fy_opt_log log = {0};
    ferry_status rc = rewrite_and_write(in_path, out_path, o, &s, &log);
    /* measure only what ferry can run; a model with unsupported ops is still written */
    bool measure = rc == FERRY_OK && (o->bench_runs > 0 || o->eval_data);
    if (measure) {
        pair p;
        ferry_status mrc = pair_open(&p, in_path, out_path);
        if (mrc == FERRY_OK && o->bench_runs > 0) mrc = bench(&p, o, &s);
        if (mrc == FERRY_OK && o->eval_data) mrc = evaluate(&p, o, &s);
        pair_free(&p);
        if (mrc != FERRY_OK && o->eval_data) rc = mrc; /* asked-for evaluation must not fail silently */
        else if (mrc != FERRY_OK) fprintf(stderr, "ferry optimize: not measured: %s\n", ferry_last_error());
    }
    if (rc == FERRY_OK && o->report_path)
        rc = fy_report_write(o->report_path, in_path, out_path, o, &s, &log);
    if (summary) *summary = s;
    fy_opt_log_free(&log);
    return rc;
}
