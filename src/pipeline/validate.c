/* validate.c — ferry validate's run: read the dataset and labels, evaluate the candidate (and the
 * baseline) in batches, time both at batch 1 alternately, check the signature and the gates. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"
#include "core/value.h"
#include "ferry/dataset.h"
#include "pipeline/registry.h"
#include "pipeline/validate.h"

#define DEFAULT_BATCH        64
#define DEFAULT_LATENCY_RUNS 200
#define LATENCY_WARMUP       5
#define THROUGHPUT_BATCHES   32

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- memory: peak RSS of one model's phase ------------------------------------------------- */

/* VmRSS or VmHWM of this process in KiB, -1 when /proc is not there. */
static long proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Resets the peak (VmHWM) to the current RSS, so each model's peak is its own (Linux >= 4.0). */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* ---- signature --------------------------------------------------------------------------- */

static void shape_str(const ferry_io_info *io, char *buf, size_t size)
{
    if (io->rank < 0) {
        snprintf(buf, size, "(any shape)");
        return;
    }
    size_t n = snprintf(buf, size, "[");
    for (int i = 0; i < io->rank && n < size; i++) {
        if (io->dims[i] >= 0)
            n += snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)io->dims[i]);
        else
            n += snprintf(buf + n, size - n, "%s%s", i ? "," : "",
                          io->dim_names && io->dim_names[i] ? io->dim_names[i] : "?");
    }
    if (n < size) snprintf(buf + n, size - n, "]");
}

static ferry_status record_signature(fy_model_eval *e, const ferry_model *m)
{
    e->n_inputs = ferry_model_input_count(m);
    e->n_outputs = ferry_model_output_count(m);
    int ni = e->n_inputs ? e->n_inputs : 1, no = e->n_outputs ? e->n_outputs : 1;
    e->in_name = calloc((size_t)ni, sizeof *e->in_name);
    e->out_name = calloc((size_t)no, sizeof *e->out_name);
    e->in_shape = calloc((size_t)ni, sizeof *e->in_shape);
    e->out_shape = calloc((size_t)no, sizeof *e->out_shape);
    e->in_dtype = calloc((size_t)ni, sizeof *e->in_dtype);
    e->out_dtype = calloc((size_t)no, sizeof *e->out_dtype);
    if (!e->in_name || !e->out_name || !e->in_shape || !e->out_shape || !e->in_dtype ||
        !e->out_dtype)
        return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < e->n_inputs + e->n_outputs; i++) {
        int is_in = i < e->n_inputs, k = is_in ? i : i - e->n_inputs;
        ferry_io_info io;
        FY_CHECK(is_in ? ferry_model_input(m, k, &io) : ferry_model_output(m, k, &io));
        snprintf(is_in ? e->in_name[k] : e->out_name[k], 128, "%s", io.name);
        shape_str(&io, is_in ? e->in_shape[k] : e->out_shape[k], 160);
        (is_in ? e->in_dtype : e->out_dtype)[k] = io.dtype;
    }
    return FERRY_OK;
}

static ferry_status add_line(char ***list, int *n, const char *fmt, ...) FY_PRINTF(3, 4);
static ferry_status add_line(char ***list, int *n, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **g = realloc(*list, sizeof *g * (size_t)(*n + 1));
    if (!g) return fy_error(FERRY_E_NOMEM, "out of memory");
    *list = g;
    if (!(g[*n] = strdup(buf))) return fy_error(FERRY_E_NOMEM, "out of memory");
    (*n)++;
    return FERRY_OK;
}

/* Two dims lists compatible? For inputs the candidate must accept everything the baseline did
 * (a fixed dim where the baseline had a free one narrows it); outputs only clash on two
 * different fixed sizes. Dims are compared from the shape strings' numbers. */
static int dims_compatible(const char *base, const char *cand, int is_input)
{
    if (strcmp(base, cand) == 0 || base[0] != '[' || cand[0] != '[') return 1;
    const char *a = base + 1, *b = cand + 1;
    for (;;) {
        char *ea, *eb;
        long long da = strtoll(a, &ea, 10), db = strtoll(b, &eb, 10);
        int fa = ea != a, fb = eb != b;
        if (fa && fb && da != db) return 0;
        if (is_input && !fa && fb) return 0;
        a = strpbrk(a, ",]"), b = strpbrk(b, ",]");
        if (!a || !b) return 0;
        if (*a == ']' || *b == ']') return *a == *b;
        a++, b++;
    }
}

static ferry_status check_signature(ferry_validation *v)
{
    const fy_model_eval *b = &v->base, *c = &v->cand;
    for (int side = 0; side < 2; side++) {
        int is_in = side == 0;
        int nb = is_in ? b->n_inputs : b->n_outputs, nc = is_in ? c->n_inputs : c->n_outputs;
        const char *what = is_in ? "input" : "output";
        for (int i = 0; i < nb; i++) {
            const char *name = is_in ? b->in_name[i] : b->out_name[i];
            int j = -1;
            for (int k = 0; k < nc && j < 0; k++)
                if (strcmp(name, is_in ? c->in_name[k] : c->out_name[k]) == 0) j = k;
            if (j < 0) {
                FY_CHECK(add_line(&v->sig_changes, &v->n_sig_changes, "%s \"%s\" was removed", what,
                                  name));
                continue;
            }
            ferry_dtype db = is_in ? b->in_dtype[i] : b->out_dtype[i],
                        dc = is_in ? c->in_dtype[j] : c->out_dtype[j];
            if (db != dc)
                FY_CHECK(add_line(&v->sig_changes, &v->n_sig_changes, "%s \"%s\": dtype %s → %s",
                                  what, name, ferry_dtype_name(db), ferry_dtype_name(dc)));
            const char *sb = is_in ? b->in_shape[i] : b->out_shape[i],
                       *sc = is_in ? c->in_shape[j] : c->out_shape[j];
            if (!dims_compatible(sb, sc, is_in))
                FY_CHECK(add_line(&v->sig_changes, &v->n_sig_changes, "%s \"%s\": shape %s → %s",
                                  what, name, sb, sc));
        }
        if (is_in)
            for (int k = 0; k < nc; k++) {
                int found = 0;
                for (int i = 0; i < nb; i++)
                    found |= strcmp(c->in_name[k], b->in_name[i]) == 0;
                if (!found)
                    FY_CHECK(add_line(&v->sig_changes, &v->n_sig_changes,
                                      "input \"%s\" is new (callers do not send it)",
                                      c->in_name[k]));
            }
    }
    v->signature_ok = v->n_sig_changes == 0;
    return FERRY_OK;
}

/* ---- reading data and labels --------------------------------------------------------------- */

/* "file.npz:array" → path and array, when "file.npz:array" itself is not a file. */
static void split_array(const char *spec, char *path, size_t size, const char **array)
{
    snprintf(path, size, "%s", spec);
    *array = NULL;
    char *colon = strrchr(path, ':');
    if (colon && !file_exists(spec) && colon != path) {
        *colon = '\0';
        *array = spec + (colon - path) + 1;
    }
}

/* Labels from an .npz: the named array, the only one, or the usual names. */
static ferry_status load_npz_labels(const char *path, const char *array, ferry_value **out)
{
    ferry_dataset_options o = {.array = array};
    if (array) return ferry_dataset_load(path, &o, out, NULL);
    char *names;
    FY_CHECK(ferry_npz_list(path, &names));
    static const char *usual[] = {"y", "labels", "label", "targets", "target", "Y"};
    const char *pick = NULL;
    if (!strchr(names, '\n')) pick = names;
    for (size_t u = 0; !pick && u < sizeof usual / sizeof usual[0]; u++) {
        size_t l = strlen(usual[u]);
        for (const char *p = names; p && !pick; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            if (strncmp(p, usual[u], l) == 0 && (p[l] == '\n' || p[l] == '\0')) pick = usual[u];
    }
    ferry_status rc;
    if (!pick) {
        for (char *p = names; *p; p++)
            if (*p == '\n') *p = ',';
        rc = fy_error(FERRY_E_INVALID_ARG,
                      "%s: no labels array (looked for y, labels, targets; it has %s); "
                      "write FILE:ARRAY",
                      path, names);
    } else {
        o.array = pick;
        rc = ferry_dataset_load(path, &o, out, NULL);
    }
    free(names);
    return rc;
}

static ferry_status load_data(ferry_validation *v, ferry_value **data, ferry_value **labels)
{
    const ferry_validate_options *o = &v->opts;
    char path[4096];
    const char *array;
    split_array(o->data, path, sizeof path, &array);
    ferry_dataset_options dopt = {.array = array, .label_column = o->label_column};
    FY_CHECK(ferry_dataset_load(path, &dopt, data, labels));
    snprintf(v->data_desc, sizeof v->data_desc, "%s", o->data);
    if (*labels && o->labels) {
        ferry_value_free(*labels);
        *labels = NULL;
    }
    if (o->labels) {
        char lpath[4096];
        const char *larray;
        split_array(o->labels, lpath, sizeof lpath, &larray);
        size_t l = strlen(lpath);
        if (l > 4 && strcmp(lpath + l - 4, ".npz") == 0)
            return load_npz_labels(lpath, larray, labels);
        ferry_dataset_options lopt = {.array = larray, .label_column = o->label_column};
        ferry_value *extra = NULL;
        FY_CHECK(ferry_dataset_load(lpath, &lopt, labels, &extra));
        if (extra) { /* a CSV of labels with a named column: that column is the labels */
            ferry_value_free(*labels);
            *labels = extra;
        }
        return FERRY_OK;
    }
    if (*labels) return FERRY_OK;
    /* an .npz holding both: the labels are its y/labels/targets array */
    size_t l = strlen(path);
    if (l > 4 && strcmp(path + l - 4, ".npz") == 0) return load_npz_labels(path, NULL, labels);
    return fy_error(FERRY_E_INVALID_ARG,
                    "%s has no labels: give --labels FILE (or --label-column for "
                    "a CSV with its labels in a column)",
                    o->data);
}

/* ---- evaluating one model ------------------------------------------------------------------ */

typedef struct model_run {
    ferry_model *model;
    ferry_session *session;
    ferry_io_info in;
    int out_index;
    int batch;
} model_run;

static void model_run_free(model_run *r)
{
    ferry_session_free(r->session);
    ferry_model_free(r->model);
    memset(r, 0, sizeof *r);
}

static double file_size_mb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size / 1e6 : NAN;
}

static ferry_status open_model(ferry_validation *v, fy_model_eval *e, const char *path,
                               model_run *r)
{
    FY_CHECK(ferry_model_load(path, &r->model));
    FY_CHECK(record_signature(e, r->model));
    int n_in = ferry_model_input_count(r->model);
    if (n_in != 1)
        return fy_error(FERRY_E_UNSUPPORTED,
                        "%s has %d inputs; ferry validate feeds models with one "
                        "input",
                        path, n_in);
    FY_CHECK(ferry_model_input(r->model, 0, &r->in));
    if (r->in.kind != FERRY_VALUE_TENSOR)
        return fy_error(FERRY_E_UNSUPPORTED, "%s: input \"%s\" is not a tensor", path, r->in.name);
    r->out_index = 0;
    if (v->opts.output) {
        r->out_index = -1;
        for (int i = 0; i < ferry_model_output_count(r->model); i++) {
            ferry_io_info io;
            FY_CHECK(ferry_model_output(r->model, i, &io));
            if (strcmp(io.name, v->opts.output) == 0) r->out_index = i;
        }
        if (r->out_index < 0)
            return fy_error(FERRY_E_INVALID_ARG, "%s has no output \"%s\"", path, v->opts.output);
    }
    ferry_session_options so = {.threads = v->opts.threads};
    FY_CHECK(ferry_session_create(r->model, &so, &r->session));
    r->batch = v->opts.batch > 0 ? v->opts.batch : DEFAULT_BATCH;
    if (r->in.rank >= 1 && r->in.dims[0] >= 0) r->batch = (int)r->in.dims[0]; /* a fixed batch */
    e->v[FY_M_SIZE] = file_size_mb(path);
    e->has[FY_M_SIZE] = !isnan(e->v[FY_M_SIZE]);
    return FERRY_OK;
}

/* One run on samples [start, start + n); *out gets the evaluated output (a new reference). */
static ferry_status run_once(ferry_validation *v, model_run *r, const ferry_value *data,
                             int64_t start, int64_t n, ferry_value **in, double *seconds,
                             ferry_value **out)
{
    ferry_fit_options fo = {.scale = v->scale, .mean = v->mean};
    ferry_value *x = *in;
    if (!x) FY_CHECK(ferry_dataset_fit(data, start, n, &r->in, &fo, &x));
    int n_out = ferry_model_output_count(r->model);
    ferry_value *outs[64] = {0};
    if (n_out > 64) return fy_error(FERRY_E_UNSUPPORTED, "more than 64 outputs");
    const char *name = r->in.name;
    double t0 = now_s();
    ferry_status rc = ferry_session_run(r->session, 1, &name, &x, outs);
    *seconds = now_s() - t0;
    if (!*in) ferry_value_free(x);
    if (rc != FERRY_OK) return rc;
    for (int i = 0; i < n_out; i++)
        if (i != r->out_index) ferry_value_free(outs[i]);
    *out = outs[r->out_index];
    return FERRY_OK;
}

static ferry_status evaluate(ferry_validation *v, fy_model_eval *e, model_run *r,
                             const ferry_value *data)
{
    int64_t n = v->n_samples;
    double total = 0;
    for (int64_t start = 0; start < n; start += r->batch) {
        int64_t b = n - start < r->batch ? n - start : r->batch;
        ferry_value *in = NULL, *out = NULL;
        double sec;
        ferry_status rc = run_once(v, r, data, start, b, &in, &sec, &out);
        if (rc != FERRY_OK)
            return fy_error_wrap(rc, "%s, samples %lld..%lld", e->path, (long long)start,
                                 (long long)(start + b - 1));
        total += sec;
        ferry_status bad = FERRY_OK;
        if (ferry_value_get_kind(out) != FERRY_VALUE_TENSOR || ferry_tensor_rank(out) < 1 ||
            ferry_tensor_dims(out)[0] != b || !ferry_tensor_count(out))
            bad = fy_error(FERRY_E_SHAPE, "%s: output %d should have one row per sample (%lld)",
                           e->path, r->out_index, (long long)b);
        else if (ferry_tensor_dtype(out) == FERRY_DTYPE_STRING ||
                 ferry_tensor_dtype(out) == FERRY_DTYPE_C64 ||
                 ferry_tensor_dtype(out) == FERRY_DTYPE_C128)
            bad = fy_error(FERRY_E_DTYPE, "%s: output is %s; validate needs numbers", e->path,
                           ferry_dtype_name(ferry_tensor_dtype(out)));
        int64_t w = bad == FERRY_OK ? ferry_tensor_count(out) / b : 0;
        if (bad == FERRY_OK && !e->scores) {
            e->width = w;
            e->n = n;
            e->scores = malloc(sizeof(double) * (size_t)(n * w));
            if (!e->scores)
                bad = fy_error(FERRY_E_NOMEM, "out of memory for %lld outputs", (long long)(n * w));
        } else if (bad == FERRY_OK && w != e->width) {
            bad = fy_error(FERRY_E_SHAPE,
                           "%s: output width changed from %lld to %lld between batches", e->path,
                           (long long)e->width, (long long)w);
        }
        if (bad == FERRY_OK) {
            const void *d = ferry_tensor_cdata(out);
            double *dst = e->scores + start * w;
            if (ferry_tensor_dtype(out) == FERRY_DTYPE_F32)
                for (int64_t i = 0; i < b * w; i++)
                    dst[i] = ((const float *)d)[i];
            else if (ferry_tensor_dtype(out) == FERRY_DTYPE_F64)
                memcpy(dst, d, sizeof(double) * (size_t)(b * w));
            else {
                /* other dtypes: go through a one-row float64 view of the library's conversion */
                ferry_value *row;
                int64_t dims[1] = {b * w};
                bad = ferry_tensor_create_copy(ferry_tensor_dtype(out), 1, dims, d,
                                               ferry_tensor_nbytes(out), &row);
                if (bad == FERRY_OK) {
                    for (int64_t i = 0; i < b * w; i++)
                        dst[i] = fy_tensor_get_f64(row, i);
                    ferry_value_free(row);
                }
            }
        }
        ferry_value_free(out);
        if (bad != FERRY_OK) return bad;
    }
    e->eval_seconds = total;
    e->v[FY_M_THROUGHPUT] = total > 0 ? (double)n / total : NAN;
    e->has[FY_M_THROUGHPUT] = total > 0;
    return FERRY_OK;
}

/* With a baseline, throughput is measured again with the two models alternating batch by batch
 * (up to THROUGHPUT_BATCHES batches each, after one warm-up), for the same reason as latency:
 * the sequential evaluation passes can meet different loads on a shared machine. */
static ferry_status time_throughput(ferry_validation *v, model_run *runs, fy_model_eval **evals,
                                    const ferry_value *data)
{
    double seconds[2] = {0, 0};
    int64_t samples[2] = {0, 0};
    int64_t batches = (v->n_samples + runs[0].batch - 1) / runs[0].batch;
    if (batches > THROUGHPUT_BATCHES) batches = THROUGHPUT_BATCHES;
    ferry_fit_options fo = {.scale = v->scale, .mean = v->mean};
    for (int64_t i = -1; i < batches; i++) {
        for (int m = 0; m < 2; m++) {
            int64_t start = (i < 0 ? 0 : i) * runs[m].batch;
            if (start >= v->n_samples) continue;
            int64_t b = v->n_samples - start < runs[m].batch ? v->n_samples - start : runs[m].batch;
            ferry_value *x, *out = NULL;
            FY_CHECK(ferry_dataset_fit(data, start, b, &runs[m].in, &fo, &x));
            double sec;
            ferry_status rc = run_once(v, &runs[m], data, start, b, &x, &sec, &out);
            ferry_value_free(x);
            ferry_value_free(out);
            if (rc != FERRY_OK) return fy_error_wrap(rc, "%s", evals[m]->path);
            if (i >= 0) seconds[m] += sec, samples[m] += b;
        }
    }
    for (int m = 0; m < 2; m++)
        if (seconds[m] > 0) evals[m]->v[FY_M_THROUGHPUT] = (double)samples[m] / seconds[m];
    return FERRY_OK;
}

/* Batch-1 latency of both models, alternating run by run so that a busy neighbour on a shared
 * machine slows both alike. */
static ferry_status time_latency(ferry_validation *v, model_run *runs, fy_model_eval **evals,
                                 int n_models, const ferry_value *data)
{
    int runs_n = v->opts.latency_runs > 0 ? v->opts.latency_runs : DEFAULT_LATENCY_RUNS;
    for (int m = 0; m < n_models; m++) {
        evals[m]->latency_ms = calloc((size_t)runs_n, sizeof(double));
        if (!evals[m]->latency_ms) return fy_error(FERRY_E_NOMEM, "out of memory");
        if (runs[m].batch != 1 && runs[m].in.rank >= 1 && runs[m].in.dims[0] >= 0 &&
            runs[m].in.dims[0] != 1)
            evals[m]->n_latency = -1; /* a fixed batch above 1: no batch-1 latency */
    }
    ferry_fit_options fo = {.scale = v->scale, .mean = v->mean};
    for (int i = -LATENCY_WARMUP; i < runs_n; i++) {
        int64_t s = (i < 0 ? -i : i) % v->n_samples;
        for (int m = 0; m < n_models; m++) {
            if (evals[m]->n_latency < 0) continue;
            ferry_value *x, *out = NULL;
            FY_CHECK(ferry_dataset_fit(data, s, 1, &runs[m].in, &fo, &x));
            double sec;
            ferry_status rc = run_once(v, &runs[m], data, s, 1, &x, &sec, &out);
            ferry_value_free(x);
            ferry_value_free(out);
            if (rc != FERRY_OK) return fy_error_wrap(rc, "%s at batch 1", evals[m]->path);
            if (i >= 0) evals[m]->latency_ms[evals[m]->n_latency++] = sec * 1e3;
        }
    }
    for (int m = 0; m < n_models; m++)
        fy_metrics_latency(evals[m]);
    return n_models == 2 ? time_throughput(v, runs, evals, data) : FERRY_OK;
}

/* One throwaway batch-1 run, so that the process-wide costs paid once (oneDNN's JIT kernels,
 * the OpenMP pool, libraries paged in) are not charged to whichever model is measured first. */
static ferry_status prime(ferry_validation *v, const char *path, const ferry_value *data)
{
    fy_model_eval scratch;
    memset(&scratch, 0, sizeof scratch);
    model_run r = {0};
    ferry_value *in = NULL, *out = NULL;
    double sec, saved_scale = v->scale;
    ferry_status rc = open_model(v, &scratch, path, &r);
    if (rc == FERRY_OK) {
        v->scale = ferry_dataset_default_scale(ferry_tensor_dtype(data), r.in.dtype);
        if (v->opts.input_scale != 0) v->scale = v->opts.input_scale;
        v->mean = v->opts.input_mean;
        rc = run_once(v, &r, data, 0, 1, &in, &sec, &out);
    }
    if (rc != FERRY_OK) rc = fy_error_wrap(rc, "%s", path);
    ferry_value_free(out);
    model_run_free(&r);
    fy_model_eval_free(&scratch);
    v->scale = saved_scale;
    return rc;
}

/* ---- labels to numbers ----------------------------------------------------------------------- */

/* Every label as a double (integer classes included: exact up to 2^53). */
static ferry_status labels_as(const ferry_value *labels, double **out)
{
    int64_t cnt = ferry_tensor_count(labels);
    double *d = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    if (!d) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < cnt; i++)
        d[i] = fy_tensor_get_f64(labels, i);
    *out = d;
    return FERRY_OK;
}

static ferry_status load_class_names(ferry_validation *v, int64_t c)
{
    v->class_names = calloc((size_t)c, sizeof(char *));
    if (!v->class_names) return fy_error(FERRY_E_NOMEM, "out of memory");
    const char *spec = v->opts.class_names;
    char *text = NULL;
    if (spec && file_exists(spec)) {
        FILE *f = fopen(spec, "r");
        if (!f) return fy_error(FERRY_E_IO, "cannot open %s: %s", spec, strerror(errno));
        size_t cap = 0;
        ssize_t len = getdelim(&text, &cap, '\0', f);
        fclose(f);
        if (len < 0) {
            free(text);
            return fy_error(FERRY_E_IO, "cannot read %s", spec);
        }
        for (char *p = text; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ',';
    } else if (spec) {
        text = strdup(spec);
    }
    int64_t k = 0;
    if (text) {
        for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
            while (*tok == ' ')
                tok++;
            if (!*tok) continue;
            if (k == c) {
                free(text);
                return fy_error(FERRY_E_INVALID_ARG,
                                "--class-names gives more names than the model's %lld classes",
                                (long long)c);
            }
            v->class_names[k++] = strdup(tok);
        }
        free(text);
        if (k != c)
            return fy_error(FERRY_E_INVALID_ARG,
                            "--class-names gives %lld names, the model has %lld classes",
                            (long long)k, (long long)c);
    }
    for (int64_t i = 0; i < c; i++)
        if (!v->class_names[i]) {
            char b[24];
            snprintf(b, sizeof b, "%lld", (long long)i);
            v->class_names[i] = strdup(b);
        }
    return FERRY_OK;
}

/* ---- the run -----------------------------------------------------------------------------------
 */

static ferry_status run(ferry_validation *v)
{
    const ferry_validate_options *o = &v->opts;
    double t_start = now_s();
    ferry_status rc = FERRY_OK;
    ferry_value *data = NULL, *labels = NULL;
    double *lab = NULL;
    model_run runs[2] = {{0}};
    if (!o->model || !o->data)
        return fy_error(FERRY_E_INVALID_ARG, "a model and --data are required");
    v->gates = calloc((size_t)(o->n_gates ? o->n_gates : 1), sizeof *v->gates);
    if (!v->gates) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < o->n_gates; i++)
        FY_CHECK(fy_gate_parse(o->gates[i], &v->gates[i]));
    v->n_gates = o->n_gates;

    if ((rc = load_data(v, &data, &labels)) != FERRY_OK) goto out;
    int64_t n = ferry_tensor_dims(data)[0];
    if (ferry_tensor_rank(labels) < 1 || ferry_tensor_dims(labels)[0] != n) {
        rc = fy_error(FERRY_E_SHAPE, "%lld samples but %lld labels", (long long)n,
                      (long long)(ferry_tensor_rank(labels) ? ferry_tensor_dims(labels)[0] : 1));
        goto out;
    }
    if (o->limit > 0 && o->limit < n) n = o->limit;
    if (n == 0) {
        rc = fy_error(FERRY_E_INVALID_ARG, "%s holds no samples", o->data);
        goto out;
    }
    v->n_samples = n;
    if ((rc = labels_as(labels, &lab)) != FERRY_OK) goto out;
    int64_t label_width = ferry_tensor_count(labels) / ferry_tensor_dims(labels)[0];
    for (int64_t i = 0; i < n * label_width; i++)
        if (!isfinite(lab[i])) {
            rc = fy_error(FERRY_E_INVALID_ARG, "the label of sample %lld is missing or not finite",
                          (long long)(i / (label_width ? label_width : 1)));
            goto out;
        }

    /* the candidate */
    v->cand.spec = strdup(o->model);
    v->cand.path = strdup(o->model);
    if ((rc = prime(v, o->model, data)) != FERRY_OK) goto out;
    reset_peak_rss();
    long rss0 = proc_status_kb("VmRSS");
    if ((rc = open_model(v, &v->cand, o->model, &runs[0])) != FERRY_OK) goto out;
    v->scale_auto = o->input_scale == 0;
    v->scale = v->scale_auto
                   ? ferry_dataset_default_scale(ferry_tensor_dtype(data), runs[0].in.dtype)
                   : o->input_scale;
    v->mean = o->input_mean;
    if ((rc = evaluate(v, &v->cand, &runs[0], data)) != FERRY_OK) goto out;
    long hwm = proc_status_kb("VmHWM");
    if (rss0 >= 0 && hwm >= 0) {
        v->cand.v[FY_M_PEAK_RSS] = (hwm - rss0) / 1024.0;
        v->cand.has[FY_M_PEAK_RSS] = 1;
    }

    /* the baseline */
    if (o->baseline) {
        v->have_base = 1;
        v->base.spec = strdup(o->baseline);
        if (file_exists(o->baseline) || !strchr(o->baseline, '@')) {
            v->base.path = strdup(o->baseline);
        } else {
            int64_t ver;
            if ((rc = fy_repo_resolve_spec(o->baseline, &v->base.path, &ver)) != FERRY_OK) {
                rc = fy_error_wrap(rc, "--baseline %s", o->baseline);
                goto out;
            }
        }
        reset_peak_rss();
        rss0 = proc_status_kb("VmRSS");
        if ((rc = open_model(v, &v->base, v->base.path, &runs[1])) != FERRY_OK) goto out;
        if ((rc = check_signature(v)) != FERRY_OK) goto out;
        if ((rc = evaluate(v, &v->base, &runs[1], data)) != FERRY_OK) goto out;
        hwm = proc_status_kb("VmHWM");
        if (rss0 >= 0 && hwm >= 0) {
            v->base.v[FY_M_PEAK_RSS] = (hwm - rss0) / 1024.0;
            v->base.has[FY_M_PEAK_RSS] = 1;
        }
    } else {
        v->signature_ok = 1;
    }
    fy_model_eval *evals[2] = {&v->cand, &v->base};
    if ((rc = time_latency(v, runs, evals, v->have_base ? 2 : 1, data)) != FERRY_OK) goto out;

    /* the task: integer labels and a multi-column output are a classifier */
    int integral = 1;
    for (int64_t i = 0; i < n * label_width && integral; i++)
        integral = lab[i] == floor(lab[i]) && lab[i] >= 0;
    if (o->task == FERRY_TASK_CLASSIFICATION)
        v->classification = 1;
    else if (o->task == FERRY_TASK_REGRESSION)
        v->classification = 0;
    else
        v->classification = integral && label_width == 1 && v->cand.width >= 2;
    if (v->classification) {
        if (label_width != 1 || v->cand.width < 2) {
            rc = fy_error(FERRY_E_SHAPE,
                          "classification needs one label per sample and an output with a "
                          "score per class; got labels of width %lld and output of width %lld",
                          (long long)label_width, (long long)v->cand.width);
            goto out;
        }
        int64_t *y = malloc(sizeof *y * (size_t)n);
        if (!y) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        for (int64_t i = 0; i < n; i++) {
            if (!(lab[i] == floor(lab[i]) && lab[i] >= 0 && lab[i] < (double)v->cand.width)) {
                free(y);
                rc = fy_error(FERRY_E_INVALID_ARG,
                              "label %g of sample %lld is not a class of the model "
                              "(0..%lld)",
                              lab[i], (long long)i, (long long)v->cand.width - 1);
                goto out;
            }
            y[i] = (int64_t)lab[i];
        }
        for (int m = 0; m < 1 + v->have_base && rc == FERRY_OK; m++) {
            fy_model_eval *e = evals[m];
            if (e->width != v->cand.width) {
                rc = fy_error(FERRY_E_SHAPE, "%s scores %lld classes, the candidate %lld", e->path,
                              (long long)e->width, (long long)v->cand.width);
                break;
            }
            e->softmax_applied = fy_scores_to_probabilities(e->scores, n, e->width);
            e->top1 = malloc(sizeof(int64_t) * (size_t)n);
            if (!e->top1) {
                rc = fy_error(FERRY_E_NOMEM, "out of memory");
                break;
            }
            for (int64_t i = 0; i < n; i++) {
                const double *r = e->scores + i * e->width;
                int64_t best = 0;
                for (int64_t j = 1; j < e->width; j++)
                    if (r[j] > r[best]) best = j;
                e->top1[i] = best;
            }
            rc = fy_metrics_classification(e, y);
        }
        free(y);
        if (rc != FERRY_OK) goto out;
        if ((rc = load_class_names(v, v->cand.width)) != FERRY_OK) goto out;
    } else {
        for (int m = 0; m < 1 + v->have_base; m++) {
            if (evals[m]->width != label_width) {
                rc =
                    fy_error(FERRY_E_SHAPE, "%s gives %lld values per sample, the labels have %lld",
                             evals[m]->path, (long long)evals[m]->width, (long long)label_width);
                goto out;
            }
            if ((rc = fy_metrics_regression(evals[m], lab)) != FERRY_OK) goto out;
        }
    }
    if (v->have_base) fy_metrics_compare(&v->cand, &v->base, v->classification);

    v->profile = fy_profile_build(data, v->scale, v->mean, &v->cand, v->classification);

    /* gates and the failure list */
    if (!v->signature_ok)
        for (int i = 0; i < v->n_sig_changes; i++)
            if ((rc = add_line(&v->failures, &v->n_failures, "breaking change: %s",
                               v->sig_changes[i])) != FERRY_OK)
                goto out;
    for (int i = 0; i < v->n_gates; i++) {
        fy_gate_eval(&v->gates[i], &v->cand, v->have_base ? &v->base : NULL);
        if (!v->gates[i].passed) {
            v->n_failed++;
            if ((rc = add_line(&v->failures, &v->n_failures, "gate %s failed: %s", v->gates[i].text,
                               v->gates[i].reason)) != FERRY_OK)
                goto out;
        }
    }
    v->wall_seconds = now_s() - t_start;
out:
    model_run_free(&runs[0]);
    model_run_free(&runs[1]);
    ferry_value_free(data);
    ferry_value_free(labels);
    free(lab);
    return rc;
}

ferry_status ferry_validate(const ferry_validate_options *o, ferry_validation **out)
{
    if (!o || !out) return fy_error(FERRY_E_INVALID_ARG, "options and out are required");
    *out = NULL;
    ferry_validation *v = calloc(1, sizeof *v);
    if (!v) return fy_error(FERRY_E_NOMEM, "out of memory");
    v->opts = *o;
    v->threads = o->threads;
    ferry_status rc = run(v);
    if (rc != FERRY_OK) {
        ferry_validation_free(v);
        return rc;
    }
    *out = v;
    return FERRY_OK;
}

int ferry_validation_passed(const ferry_validation *v) { return v && v->n_failures == 0; }
int ferry_validation_failure_count(const ferry_validation *v) { return v ? v->n_failures : 0; }
const char *ferry_validation_failure(const ferry_validation *v, int i)
{
    return v && i >= 0 && i < v->n_failures ? v->failures[i] : NULL;
}

ferry_status ferry_validation_write_markdown(const ferry_validation *v, FILE *f)
{
    return fy_report_markdown(v, f);
}
ferry_status ferry_validation_write_json(const ferry_validation *v, FILE *f)
{
    return fy_report_json(v, f);
}
ferry_status ferry_validation_write_html(const ferry_validation *v, FILE *f)
{
    return fy_report_html(v, f);
}

ferry_status ferry_validation_write_predictions(const ferry_validation *v, const char *path)
{
    if (!v || !path) return fy_error(FERRY_E_INVALID_ARG, "validation and path are required");
    int64_t dims[2] = {v->cand.n, v->cand.width};
    ferry_value *t;
    FY_CHECK(ferry_tensor_create_copy(FERRY_DTYPE_F64, 2, dims, v->cand.scores,
                                      sizeof(double) * (size_t)(dims[0] * dims[1]), &t));
    ferry_status rc = ferry_tensor_save_npy(t, path);
    ferry_value_free(t);
    return rc;
}

void fy_model_eval_free(fy_model_eval *e)
{
    free(e->path), free(e->spec);
    free(e->in_name), free(e->out_name), free(e->in_dtype), free(e->out_dtype);
    free(e->in_shape), free(e->out_shape);
    free(e->scores), free(e->top1), free(e->confusion), free(e->precision), free(e->recall);
    free(e->f1), free(e->support), free(e->latency_ms);
}

void ferry_validation_free(ferry_validation *v)
{
    if (!v) return;
    fy_model_eval_free(&v->cand);
    fy_model_eval_free(&v->base);
    if (v->class_names)
        for (int64_t i = 0; i < v->cand.width; i++)
            free(v->class_names[i]);
    free(v->class_names);
    for (int i = 0; i < v->n_sig_changes; i++)
        free(v->sig_changes[i]);
    free(v->sig_changes);
    for (int i = 0; i < v->n_failures; i++)
        free(v->failures[i]);
    free(v->failures);
    free(v->gates);
    json_decref((json_t *)v->profile);
    free(v);
}
