/* metrics.c — /metrics in the Prometheus text format (0.0.4): request counts and latency the
 * front end records, scheduler and loading figures the back end keeps (stats.h), and process
 * memory and CPU from /proc. Labels are only model, version and code, from loaded models. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/http.h"

/* Status codes that get their own label value; anything else counts as "other". */
static const int codes[] = {200, 400, 404, 405, 413, 429, 500, 503, 504};
enum { N_CODES = (int)(sizeof(codes) / sizeof(codes[0])) + 1, MAX_SERIES = 512 };

typedef struct series {
    char model[256];
    int64_t version;
    uint64_t by_code[N_CODES];
    sv_hist duration;
} series;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static series *g_series;
static int g_n_series;
static _Atomic uint64_t g_http_by_code[N_CODES];

static int code_index(int status)
{
    for (int i = 0; i < N_CODES - 1; i++)
        if (codes[i] == status) return i;
    return N_CODES - 1;
}

void sv_metrics_observe(const sv_http *h, int status, double seconds)
{
    int ci = code_index(status);
    atomic_fetch_add_explicit(&g_http_by_code[ci], 1, memory_order_relaxed);
    /* Inference requests get model labels only when they reached a loaded version: names from
     * the URL alone would let any client create label values. */
    if (!h->is_infer || !h->ver) return;
    const char *model = sv_version_model_name(h->ver);
    int64_t version = sv_version_number(h->ver);
    pthread_mutex_lock(&g_lock);
    series *s = NULL;
    for (int i = 0; i < g_n_series; i++)
        if (g_series[i].version == version && strcmp(g_series[i].model, model) == 0) {
            s = &g_series[i];
            break;
        }
    if (!s && g_n_series < MAX_SERIES) {
        if (!g_series) g_series = calloc(MAX_SERIES, sizeof(series));
        if (g_series) {
            s = &g_series[g_n_series++];
            snprintf(s->model, sizeof(s->model), "%s", model);
            s->version = version;
        }
    }
    if (s) {
        s->by_code[ci]++;
        sv_hist_observe(&s->duration, sv_time_bounds, SV_TIME_BUCKETS, seconds);
    }
    pthread_mutex_unlock(&g_lock);
}

/* ---- exposition ---------------------------------------------------------------------------- */

static void put_label_value(sv_buf *b, const char *s)
{
    sv_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            sv_buf_putc(b, '\\');
            sv_buf_putc(b, *s);
        } else if (*s == '\n') {
            sv_buf_puts(b, "\\n");
        } else {
            sv_buf_putc(b, *s);
        }
    }
    sv_buf_putc(b, '"');
}

/* {model="m",version="1"  (no closing brace, so callers can add labels) */
static void put_labels(sv_buf *b, const char *model, int64_t version)
{
    sv_buf_puts(b, "{model=");
    put_label_value(b, model);
    if (version > 0) {
        sv_buf_puts(b, ",version=\"");
        sv_buf_i64(b, version);
        sv_buf_putc(b, '"');
    }
}

static void family(sv_buf *b, const char *name, const char *type, const char *help)
{
    sv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_double(sv_buf *b, double v) { sv_buf_printf(b, "%.15g", v); }

static void put_hist(sv_buf *b, const char *name, const char *model, int64_t version,
                     const sv_hist *h, const double *bounds, int n)
{
    uint64_t cum = 0;
    for (int i = 0; i <= n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        sv_buf_printf(b, "%s_bucket", name);
        put_labels(b, model, version);
        if (i < n) {
            sv_buf_puts(b, ",le=\"");
            put_double(b, bounds[i]);
            sv_buf_puts(b, "\"} ");
        } else {
            sv_buf_puts(b, ",le=\"+Inf\"} ");
        }
        sv_buf_u64(b, cum);
        sv_buf_putc(b, '\n');
    }
    sv_buf_printf(b, "%s_sum", name);
    put_labels(b, model, version);
    sv_buf_puts(b, "} ");
    put_double(b, sv_hist_sum(h));
    sv_buf_printf(b, "\n%s_count", name);
    put_labels(b, model, version);
    sv_buf_puts(b, "} ");
    /* The count is the buckets' total, so a scrape never sees count != +Inf bucket. */
    sv_buf_u64(b, cum);
    sv_buf_putc(b, '\n');
}

/* A copy of what the manager reports, so every family can be written in one block. */
typedef struct snap {
    char model[256];
    int64_t version;
    int ready;
    sv_version_stats vs;
    sv_model_stats msc;
    int first_of_model;
} snap;

typedef struct snap_list {
    snap *v;
    int n, cap;
} snap_list;

static void copy_hist(sv_hist *dst, const sv_hist *src)
{
    atomic_store(&dst->count, atomic_load(&src->count));
    atomic_store(&dst->sum_nano, atomic_load(&src->sum_nano));
    for (int i = 0; i <= SV_TIME_BUCKETS; i++)
        atomic_store(&dst->bucket[i], atomic_load(&src->bucket[i]));
}

static void collect(void *ctx, const sv_index_entry *e)
{
    snap_list *l = ctx;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        snap *v = realloc(l->v, sizeof(snap) * (size_t)cap);
        if (!v) return;
        l->v = v;
        l->cap = cap;
    }
    snap *s = &l->v[l->n];
    memset(s, 0, sizeof(*s));
    snprintf(s->model, sizeof(s->model), "%s", e->model);
    s->version = e->version;
    s->first_of_model = l->n == 0 || strcmp(l->v[l->n - 1].model, e->model) != 0;
    if (e->model_stats) {
        atomic_store(&s->msc.loads, atomic_load(&e->model_stats->loads));
        atomic_store(&s->msc.load_failures, atomic_load(&e->model_stats->load_failures));
        copy_hist(&s->msc.load_seconds, &e->model_stats->load_seconds);
    }
    if (e->version_stats) {
        const sv_version_stats *vs = e->version_stats;
        s->ready = 1;
        atomic_store(&s->vs.queue_depth, atomic_load(&vs->queue_depth));
        copy_hist(&s->vs.queue_seconds, &vs->queue_seconds);
        copy_hist(&s->vs.compute_seconds, &vs->compute_seconds);
        copy_hist(&s->vs.batch_size, &vs->batch_size);
    }
    l->n++;
}

static void process_metrics(sv_buf *b)
{
    long page = sysconf(_SC_PAGESIZE), tck = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2) rss = 0;
        fclose(f);
    }
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sv_buf_printf(b, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)page);
    family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    sv_buf_printf(b, "process_virtual_memory_bytes %llu\n", size * (unsigned long long)page);
    char stat[1024] = "";
    f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        stat[n] = '\0';
        fclose(f);
    }
    unsigned long long ut = 0, st = 0;
    const char *p = strrchr(stat, ')');
    if (p) {
        /* Fields after the command name: state is field 3, utime 14, stime 15. */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            ut = st = 0;
    }
    family(b, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    sv_buf_puts(b, "process_cpu_seconds_total ");
    put_double(b, (double)(ut + st) / (double)(tck > 0 ? tck : 100));
    sv_buf_putc(b, '\n');
}

int sv_metrics_handler(sv_http *h)
{
    sv_buf *b = &h->out;
    h->content_type = "text/plain; version=0.0.4; charset=utf-8";
    b->len = 0;

    family(b, "ferry_http_responses_total", "counter", "HTTP responses sent, by status code.");
    for (int i = 0; i < N_CODES; i++) {
        uint64_t n = atomic_load_explicit(&g_http_by_code[i], memory_order_relaxed);
        if (!n) continue;
        if (i < N_CODES - 1)
            sv_buf_printf(b, "ferry_http_responses_total{code=\"%d\"} ", codes[i]);
        else
            sv_buf_puts(b, "ferry_http_responses_total{code=\"other\"} ");
        sv_buf_u64(b, n);
        sv_buf_putc(b, '\n');
    }

    pthread_mutex_lock(&g_lock);
    int n = g_n_series;
    series *copy = n ? malloc(sizeof(series) * (size_t)n) : NULL;
    if (copy) memcpy(copy, g_series, sizeof(series) * (size_t)n);
    pthread_mutex_unlock(&g_lock);
    if (!copy) n = 0;
    family(b, "ferry_requests_total", "counter",
           "Inference requests answered, by model, version and HTTP status code.");
    for (int i = 0; i < n; i++)
        for (int c = 0; c < N_CODES; c++) {
            if (!copy[i].by_code[c]) continue;
            sv_buf_puts(b, "ferry_requests_total");
            put_labels(b, copy[i].model, copy[i].version);
            if (c < N_CODES - 1)
                sv_buf_printf(b, ",code=\"%d\"} ", codes[c]);
            else
                sv_buf_puts(b, ",code=\"other\"} ");
            sv_buf_u64(b, copy[i].by_code[c]);
            sv_buf_putc(b, '\n');
        }
    family(b, "ferry_request_duration_seconds", "histogram",
           "Inference request time from its first byte to its answer, in seconds.");
    for (int i = 0; i < n; i++)
        put_hist(b, "ferry_request_duration_seconds", copy[i].model, copy[i].version,
                 &copy[i].duration, sv_time_bounds, SV_TIME_BUCKETS);
    free(copy);

    snap_list l = {0};
    sv_manager_foreach(h->srv->manager, collect, &l);
    family(b, "ferry_queue_duration_seconds", "histogram",
           "Time requests waited in a model's queue before their batch started, in seconds.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].ready)
            put_hist(b, "ferry_queue_duration_seconds", l.v[i].model, l.v[i].version,
                     &l.v[i].vs.queue_seconds, sv_time_bounds, SV_TIME_BUCKETS);
    family(b, "ferry_compute_duration_seconds", "histogram",
           "Time of one model run (a whole batch), in seconds.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].ready)
            put_hist(b, "ferry_compute_duration_seconds", l.v[i].model, l.v[i].version,
                     &l.v[i].vs.compute_seconds, sv_time_bounds, SV_TIME_BUCKETS);
    family(b, "ferry_batch_size", "histogram", "Samples per model run.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].ready)
            put_hist(b, "ferry_batch_size", l.v[i].model, l.v[i].version, &l.v[i].vs.batch_size,
                     sv_batch_bounds, SV_BATCH_BUCKETS);
    family(b, "ferry_queue_depth", "gauge", "Requests waiting in a model version's queue.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].ready) {
            sv_buf_puts(b, "ferry_queue_depth");
            put_labels(b, l.v[i].model, l.v[i].version);
            sv_buf_puts(b, "} ");
            sv_buf_i64(b, atomic_load(&l.v[i].vs.queue_depth));
            sv_buf_putc(b, '\n');
        }
    family(b, "ferry_model_loads_total", "counter", "Model versions loaded and warmed up.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].first_of_model) {
            sv_buf_puts(b, "ferry_model_loads_total");
            put_labels(b, l.v[i].model, 0);
            sv_buf_puts(b, "} ");
            sv_buf_u64(b, atomic_load(&l.v[i].msc.loads));
            sv_buf_putc(b, '\n');
        }
    family(b, "ferry_model_load_failures_total", "counter",
           "Model versions that failed to load, verify or warm up.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].first_of_model) {
            sv_buf_puts(b, "ferry_model_load_failures_total");
            put_labels(b, l.v[i].model, 0);
            sv_buf_puts(b, "} ");
            sv_buf_u64(b, atomic_load(&l.v[i].msc.load_failures));
            sv_buf_putc(b, '\n');
        }
    family(b, "ferry_model_load_duration_seconds", "histogram",
           "Time to load and warm up a model version, in seconds.");
    for (int i = 0; i < l.n; i++)
        if (l.v[i].first_of_model)
            put_hist(b, "ferry_model_load_duration_seconds", l.v[i].model, 0,
                     &l.v[i].msc.load_seconds, sv_time_bounds, SV_TIME_BUCKETS);
    free(l.v);

    /* Not counting this scrape, so an idle server reads 0. */
    int64_t inflight = atomic_load(&h->srv->inflight) - 1;
    family(b, "ferry_inflight_requests", "gauge",
           "HTTP requests being handled now, other than this scrape.");
    sv_buf_printf(b, "ferry_inflight_requests %lld\n", (long long)(inflight > 0 ? inflight : 0));
    process_metrics(b);
    return 200;
}
