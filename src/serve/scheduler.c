/* scheduler.c — per-version request queue, dynamic batching and instance threads (see
 * scheduler.h). Requests are validated on the submitting (HTTP) thread so a bad request never
 * takes a queue slot; everything that touches a session runs on the instance threads. */
#define _GNU_SOURCE
#include "serve/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_INPUTS 64

struct sv_scheduler {
    ferry_session *session;
    const ferry_model *model;
    sv_version_stats *stats;
    void (*after_done)(void *ctx);
    void *ctx;

    int max_batch; /* 0: no batch dimension, one request per run */
    double delay_s;
    int n_preferred; /* config.json's preferred_batch_size: release a batch early at these */
    int preferred[SV_MAX_PREFERRED];
    int n_sizes; /* the batch sizes formed when more is queued than fits (see batch_target) */
    int sizes[SV_MAX_PREFERRED + 16];
    double est[SV_MAX_PREFERRED + 16]; /* seconds per run at sizes[i] (EWMA; 0 = unknown) */
    uint64_t n_targets;                /* batch_target calls, for its periodic re-check */
    int max_queue;
    double timeout_s;

    int n_in, n_out;
    ferry_io_info in[MAX_INPUTS];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Queue in arrival order. While a request waits, r->queue_seconds holds its enqueue time
     * (sv_now()); it becomes the waited time when its batch starts. */
    sv_request **q;
    int qn;
    int stopping;
    int n_threads;
    pthread_t *threads;

    /* The expirer answers 504 the moment a queued request's deadline passes, even while every
     * instance is busy with a long batch. next_wake is the deadline it sleeps until (0: it
     * sleeps until signalled), so submit only wakes it for an earlier deadline. */
    pthread_t expirer;
    int has_expirer;
    pthread_cond_t ecv;
    double next_wake;
};

double sv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- validation (submitting thread) ----------------------------------------------------- */

static int reject(sv_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reject(sv_request *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->http_status = status;
    return -1;
}

static void format_dims(char *buf, size_t len, int rank, const int64_t *dims)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
}

/* Checks names, kinds, dtypes and shapes, puts the inputs into model order, and returns the
 * request's batch size (its dim 0 when batching, else 1) or -1 with r->error set. */
static int validate(sv_scheduler *s, sv_request *r)
{
    if (r->n_inputs < 0 || r->n_inputs > s->n_in)
        return reject(r, 400, "the model takes %d inputs, the request gives %d", s->n_in,
                      r->n_inputs);
    int pos[MAX_INPUTS]; /* pos[j] = index in the request of model input j, or -1 */
    for (int j = 0; j < s->n_in; j++)
        pos[j] = -1;
    for (int i = 0; i < r->n_inputs; i++) {
        const char *name = r->input_names ? r->input_names[i] : NULL;
        if (!name || !r->inputs || !r->inputs[i])
            return reject(r, 400, "input %d has no name or no value", i);
        int j = 0;
        while (j < s->n_in && strcmp(s->in[j].name, name) != 0)
            j++;
        if (j == s->n_in) {
            char names[256] = "";
            size_t k = 0;
            for (int t = 0; t < s->n_in && k < sizeof names; t++)
                k += (size_t)snprintf(names + k, sizeof names - k, "%s\"%s\"", t ? ", " : "",
                                      s->in[t].name);
            return reject(r, 400, "unknown input \"%.100s\"; the model's inputs are %s", name,
                          names);
        }
        if (pos[j] >= 0) return reject(r, 400, "input \"%.100s\" is given twice", name);
        pos[j] = i;
    }
    int64_t batch = -1;
    for (int j = 0; j < s->n_in; j++) {
        const ferry_io_info *io = &s->in[j];
        if (pos[j] < 0) {
            if (io->optional) continue;
            return reject(r, 400, "missing input \"%s\"", io->name);
        }
        const ferry_value *v = r->inputs[pos[j]];
        if (ferry_value_get_kind(v) != io->kind)
            return reject(r, 400, "input \"%s\": expected a %s", io->name,
                          io->kind == FERRY_VALUE_SEQUENCE ? "sequence" : "tensor");
        if (io->kind != FERRY_VALUE_TENSOR) continue;
        if (ferry_tensor_dtype(v) != io->dtype)
            return reject(r, 400, "input \"%s\": datatype %s, the model expects %s", io->name,
                          ferry_dtype_name(ferry_tensor_dtype(v)), ferry_dtype_name(io->dtype));
        if (io->rank < 0) continue;
        int rank = ferry_tensor_rank(v);
        const int64_t *d = ferry_tensor_dims(v);
        int ok = rank == io->rank;
        for (int k = 0; k < rank && ok; k++)
            ok = io->dims[k] < 0 || d[k] == io->dims[k];
        if (!ok) {
            char got[160], want[160];
            format_dims(got, sizeof got, rank, d);
            format_dims(want, sizeof want, io->rank, io->dims);
            if (rank != io->rank)
                return reject(r, 400,
                              "input \"%s\": shape %s has %d dims, the model expects "
                              "%d: %s (-1 = any)",
                              io->name, got, rank, io->rank, want);
            return reject(r, 400, "input \"%s\": shape %s, the model expects %s (-1 = any)",
                          io->name, got, want);
        }
        if (s->max_batch > 0) {
            if (batch < 0)
                batch = d[0];
            else if (d[0] != batch)
                return reject(r, 400,
                              "input \"%s\": batch dimension %lld differs from another "
                              "input's %lld",
                              io->name, (long long)d[0], (long long)batch);
        }
    }
    if (s->max_batch > 0 && (batch < 1 || batch > s->max_batch))
        return reject(r, 400, "batch size %lld is outside [1, %d] (max_batch_size)",
                      (long long)batch, s->max_batch);
    for (int i = 0; i < r->n_outputs; i++) {
        const char *name = r->output_names ? r->output_names[i] : NULL;
        int found = 0;
        for (int j = 0; name && j < s->n_out && !found; j++) {
            ferry_io_info io;
            ferry_model_output(s->model, j, &io);
            found = !strcmp(io.name, name);
        }
        if (!found) return reject(r, 400, "unknown output \"%.100s\"", name ? name : "(null)");
        for (int k = 0; k < i; k++)
            if (!strcmp(r->output_names[k], name))
                return reject(r, 400, "output \"%.100s\" is requested twice", name);
    }
    /* Model order: batch members line up input by input without name lookups. */
    const char *names[MAX_INPUTS];
    ferry_value *vals[MAX_INPUTS];
    int k = 0;
    for (int j = 0; j < s->n_in; j++)
        if (pos[j] >= 0) {
            names[k] = r->input_names[pos[j]];
            vals[k++] = r->inputs[pos[j]];
        }
    for (int i = 0; i < k; i++) {
        r->input_names[i] = names[i];
        r->inputs[i] = vals[i];
    }
    return s->max_batch > 0 ? (int)batch : 1;
}

static int request_batch(const sv_scheduler *s, const sv_request *r)
{
    if (s->max_batch <= 0 || r->n_inputs == 0) return 1;
    return (int)ferry_tensor_dims(r->inputs[0])[0];
}

/* Two requests can share a run when they give the same inputs with the same non-batch dims. */
static int compatible(const sv_request *a, const sv_request *b)
{
    if (a->n_inputs != b->n_inputs) return 0;
    for (int i = 0; i < a->n_inputs; i++) {
        if (strcmp(a->input_names[i], b->input_names[i]) != 0) return 0;
        const ferry_value *x = a->inputs[i], *y = b->inputs[i];
        if (ferry_value_get_kind(x) != FERRY_VALUE_TENSOR) return 0;
        int rank = ferry_tensor_rank(x);
        if (rank != ferry_tensor_rank(y) || rank < 1) return 0;
        if (memcmp(ferry_tensor_dims(x) + 1, ferry_tensor_dims(y) + 1,
                   sizeof(int64_t) * (size_t)(rank - 1)) != 0)
            return 0;
    }
    return 1;
}

int sv_scheduler_submit(sv_scheduler *s, sv_request *r)
{
    r->http_status = 0;
    r->error[0] = 0;
    r->n_results = 0;
    r->results = NULL;
    r->result_names = NULL;
    r->compute_seconds = 0;
    if (validate(s, r) < 0) return -1;
    double now = sv_now();
    if (r->deadline <= 0 && s->timeout_s > 0) r->deadline = now + s->timeout_s;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return reject(r, 503, "the model version is being unloaded; retry");
    }
    if (s->qn >= s->max_queue) {
        pthread_mutex_unlock(&s->mu);
        return reject(r, 503, "queue full (%d requests waiting); retry later", s->max_queue);
    }
    r->queue_seconds = now;
    s->q[s->qn++] = r;
    atomic_fetch_add(&s->stats->queue_depth, 1);
    pthread_cond_signal(&s->cv);
    if (r->deadline > 0 && (s->next_wake == 0 || r->deadline < s->next_wake))
        pthread_cond_signal(&s->ecv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- batch execution (instance threads) ------------------------------------------------- */

static void finish(sv_scheduler *s, sv_request *r, int status, const char *msg)
{
    if (status != 200) {
        r->http_status = status;
        snprintf(r->error, sizeof r->error, "%s", msg);
        atomic_fetch_add(&s->stats->requests_failed, 1);
    } else {
        r->http_status = 200;
        atomic_fetch_add(&s->stats->requests_ok, 1);
    }
    for (int i = 0; i < r->n_inputs; i++) {
        ferry_value_free(r->inputs[i]);
        r->inputs[i] = NULL;
    }
    r->done(r);
    if (s->after_done) s->after_done(s->ctx);
}

/* Rows [off, off+n) of t's dim 0 as a new tensor. */
static ferry_status slice_rows(const ferry_value *t, int64_t off, int64_t n, ferry_value **out)
{
    int rank = ferry_tensor_rank(t);
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, ferry_tensor_dims(t), sizeof(int64_t) * (size_t)rank);
    int64_t row = dims[0] ? ferry_tensor_count(t) / dims[0] : 0;
    dims[0] = n;
    ferry_dtype dt = ferry_tensor_dtype(t);
    if (dt == FERRY_DTYPE_STRING) {
        ferry_status rc = ferry_tensor_create(dt, rank, dims, out);
        if (rc != FERRY_OK) return rc;
        const char *const *src = ferry_tensor_cdata(t);
        for (int64_t i = 0; i < n * row && rc == FERRY_OK; i++) {
            const char *str = src[off * row + i];
            rc = ferry_tensor_set_string(*out, i, str, strlen(str));
        }
        if (rc != FERRY_OK) {
            ferry_value_free(*out);
            *out = NULL;
        }
        return rc;
    }
    size_t es = ferry_dtype_size(dt);
    return ferry_tensor_create_copy(dt, rank, dims,
                                    (const char *)ferry_tensor_cdata(t) + (size_t)(off * row) * es,
                                    (size_t)(n * row) * es, out);
}

/* Concatenates input i of every batch member along dim 0. */
static ferry_status concat_input(sv_request **b, int nb, int i, int64_t total, ferry_value **out)
{
    const ferry_value *first = b[0]->inputs[i];
    int rank = ferry_tensor_rank(first);
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, ferry_tensor_dims(first), sizeof(int64_t) * (size_t)rank);
    dims[0] = total;
    ferry_dtype dt = ferry_tensor_dtype(first);
    ferry_status rc = ferry_tensor_create(dt, rank, dims, out);
    if (rc != FERRY_OK) return rc;
    size_t es = ferry_dtype_size(dt);
    int64_t at = 0; /* elements written */
    for (int k = 0; k < nb && rc == FERRY_OK; k++) {
        const ferry_value *v = b[k]->inputs[i];
        int64_t cnt = ferry_tensor_count(v);
        if (dt == FERRY_DTYPE_STRING) {
            const char *const *src = ferry_tensor_cdata(v);
            for (int64_t e = 0; e < cnt && rc == FERRY_OK; e++)
                rc = ferry_tensor_set_string(*out, at + e, src[e], strlen(src[e]));
        } else if (cnt) {
            memcpy((char *)ferry_tensor_data(*out) + (size_t)at * es, ferry_tensor_cdata(v),
                   (size_t)cnt * es);
        }
        at += cnt;
    }
    if (rc != FERRY_OK) {
        ferry_value_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Gives r the outputs it asked for, in the order it asked (all, in model order, by default).
 * take(j) produces model output j for r; it may fail. */
static ferry_status hand_results(sv_scheduler *s, sv_request *r, ferry_value **outputs, int nb,
                                 int64_t off, int64_t n)
{
    int want = r->n_outputs > 0 ? r->n_outputs : s->n_out;
    int idx[256];
    size_t name_bytes = 0;
    for (int i = 0; i < want; i++) {
        int j = i;
        ferry_io_info io;
        if (r->n_outputs > 0)
            for (j = 0; j < s->n_out; j++) {
                ferry_model_output(s->model, j, &io);
                if (!strcmp(io.name, r->output_names[i])) break;
            }
        ferry_model_output(s->model, j, &io);
        idx[i] = j;
        name_bytes += strlen(io.name) + 1;
    }
    /* The names live in the same block as the array, so a request's results stay readable
     * after its model version is freed (sv_request_clear frees the block). */
    r->results = calloc((size_t)want + 1, sizeof *r->results);
    char *block = calloc(1, sizeof(char *) * ((size_t)want + 1) + name_bytes);
    r->result_names = (const char **)block;
    if (!r->results || !r->result_names) return FERRY_E_NOMEM;
    char *names = block + sizeof(char *) * ((size_t)want + 1);
    for (int i = 0; i < want; i++) {
        int j = idx[i];
        ferry_io_info io;
        ferry_model_output(s->model, j, &io);
        size_t nl = strlen(io.name) + 1;
        memcpy(names, io.name, nl);
        r->result_names[i] = names;
        names += nl;
        if (nb == 1) {
            /* A lone request owns the run's outputs: move, don't copy. */
            r->results[i] = outputs[j];
            outputs[j] = NULL;
        } else {
            ferry_status rc = slice_rows(outputs[j], off, n, &r->results[i]);
            if (rc != FERRY_OK) return rc;
        }
        r->n_results = i + 1;
    }
    return FERRY_OK;
}

static void record_run(sv_scheduler *s, int64_t total, double seconds);

static void run_batch(sv_scheduler *s, sv_request **b, int nb)
{
    /* Second deadline check: a batch may have waited for a busy instance. */
    double now = sv_now();
    int live = 0;
    for (int k = 0; k < nb; k++) {
        if (b[k]->deadline > 0 && now > b[k]->deadline)
            finish(s, b[k], 504, "deadline exceeded while queued; the request was not run");
        else
            b[live++] = b[k];
    }
    nb = live;
    if (nb == 0) return;

    int64_t total = 0, sizes[4096];
    for (int k = 0; k < nb; k++)
        total += (sizes[k] = request_batch(s, b[k]));

    ferry_value *batched[MAX_INPUTS] = {0};
    ferry_value **inputs = b[0]->inputs;
    ferry_value *outputs[256] = {0};
    int n_out = s->n_out < 256 ? s->n_out : 256;
    ferry_status rc = FERRY_OK;
    char msg[512] = "";
    if (nb > 1) {
        for (int i = 0; i < b[0]->n_inputs && rc == FERRY_OK; i++)
            rc = concat_input(b, nb, i, total, &batched[i]);
        inputs = batched;
        if (rc != FERRY_OK) snprintf(msg, sizeof msg, "batching inputs: %s", ferry_last_error());
    }
    double t0 = sv_now();
    if (rc == FERRY_OK) {
        rc = ferry_session_run(s->session, b[0]->n_inputs, b[0]->input_names, inputs, outputs);
        if (rc != FERRY_OK) snprintf(msg, sizeof msg, "inference failed: %s", ferry_last_error());
    }
    double t1 = sv_now();
    for (int i = 0; i < b[0]->n_inputs; i++)
        ferry_value_free(batched[i]);

    if (rc == FERRY_OK && nb > 1)
        for (int j = 0; j < n_out; j++) {
            if (ferry_value_get_kind(outputs[j]) != FERRY_VALUE_TENSOR ||
                ferry_tensor_rank(outputs[j]) < 1 || ferry_tensor_dims(outputs[j])[0] != total) {
                ferry_io_info io;
                ferry_model_output(s->model, j, &io);
                snprintf(msg, sizeof msg,
                         "output \"%s\" has no batch dimension of %lld; set max_batch_size 0 in "
                         "config.json for this model",
                         io.name, (long long)total);
                rc = FERRY_E_SHAPE;
                break;
            }
        }

    if (rc == FERRY_OK && s->max_batch > 0) record_run(s, total, t1 - t0);
    atomic_fetch_add(&s->stats->executions, 1);
    atomic_fetch_add(&s->stats->inferences, (uint64_t)total);
    sv_hist_observe(&s->stats->compute_seconds, sv_time_bounds, SV_TIME_BUCKETS, t1 - t0);
    sv_hist_observe(&s->stats->batch_size, sv_batch_bounds, SV_BATCH_BUCKETS, (double)total);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    atomic_store(&s->stats->last_inference_ms,
                 (uint64_t)wall.tv_sec * 1000u + (uint64_t)wall.tv_nsec / 1000000u);

    int64_t off = 0;
    for (int k = 0; k < nb; k++) {
        sv_request *r = b[k];
        r->compute_seconds = t1 - t0;
        if (rc == FERRY_OK) {
            ferry_status hr = hand_results(s, r, outputs, nb, off, sizes[k]);
            if (hr != FERRY_OK) {
                snprintf(msg, sizeof msg, "splitting outputs: %s", ferry_last_error());
                for (int i = 0; i < r->n_results; i++)
                    ferry_value_free(r->results[i]);
                free(r->results);
                free(r->result_names);
                r->results = NULL;
                r->result_names = NULL;
                r->n_results = 0;
                finish(s, r, 500, msg);
            } else {
                finish(s, r, 200, "");
            }
        } else {
            finish(s, r, 500, msg);
        }
        off += sizes[k];
    }
    for (int j = 0; j < n_out; j++)
        ferry_value_free(outputs[j]);
}

/* Removes expired and cancelled requests from the queue into drop[] (caller holds mu). */
static int sweep(sv_scheduler *s, double now, sv_request **drop, int cap)
{
    int nd = 0, w = 0;
    for (int i = 0; i < s->qn; i++) {
        sv_request *r = s->q[i];
        int dead = atomic_load(&r->cancelled) || (r->deadline > 0 && now > r->deadline);
        if (dead && nd < cap)
            drop[nd++] = r;
        else
            s->q[w++] = r;
    }
    s->qn = w;
    return nd;
}

/* Number of samples queued that could join the head's batch (caller holds mu). */
static int64_t ready_samples(sv_scheduler *s)
{
    int64_t n = 0;
    for (int i = 0; i < s->qn && n < s->max_batch; i++)
        if (i == 0 || compatible(s->q[0], s->q[i])) n += request_batch(s, s->q[i]);
    return n;
}

static int preferred_hit(const sv_scheduler *s, int64_t n)
{
    for (int i = 0; i < s->n_preferred; i++)
        if (n == s->preferred[i]) return 1;
    return 0;
}

/* The batch size to aim for when n samples are available (caller holds mu). Sizes are
 * config.json's preferred_batch_size when given, else the powers of two up to max_batch_size.
 * Keeping to a few sizes matters for speed: the oneDNN kernels are prepared per input shape
 * and cached for a handful of shapes per node, so batches of every size from 1 to 32 would
 * keep preparing kernels instead of running them.
 *
 * Normally the largest size that fits. But a bigger batch is not always faster per sample
 * (on a small or busy CPU a big convolutional batch can fall out of cache and run slower
 * per sample than one request at a time), so when the measured run times say a smaller size
 * moves clearly more samples per second (by 15%), that size is used instead. Tiny models
 * (runs under 0.5 ms) always take the largest: their time is overhead, which batching only
 * amortises. Every 16th batch takes each size in turn, to keep the estimates fresh. */
static int64_t batch_target(sv_scheduler *s, int64_t n)
{
    if (n > s->max_batch) n = s->max_batch;
    int largest = -1;
    for (int i = 0; i < s->n_sizes; i++)
        if (s->sizes[i] <= n) largest = i;
    if (largest < 0) return n;
    int pick = largest;
    if (s->est[largest] > 0.0005) {
        uint64_t k = ++s->n_targets;
        /* Every 16th batch re-measures one of the sizes in turn, so an estimate taken
         * during a burst of load on the machine does not rule a size out for good. */
        if (k % 16 == 0) return s->sizes[(k / 16) % (uint64_t)(largest + 1)];
        double best = s->sizes[largest] / s->est[largest];
        for (int i = 0; i < largest; i++)
            if (s->est[i] > 0 && s->sizes[i] / s->est[i] > best * 1.15) {
                best = s->sizes[i] / s->est[i];
                pick = i;
            }
    }
    return s->sizes[pick];
}

static void record_run(sv_scheduler *s, int64_t total, double seconds)
{
    for (int i = 0; i < s->n_sizes; i++)
        if (s->sizes[i] == total) {
            pthread_mutex_lock(&s->mu);
            s->est[i] = s->est[i] > 0 ? 0.8 * s->est[i] + 0.2 * seconds : seconds;
            pthread_mutex_unlock(&s->mu);
            return;
        }
}

void sv_scheduler_set_estimate(sv_scheduler *s, int batch, double seconds)
{
    for (int i = 0; i < s->n_sizes; i++)
        if (s->sizes[i] == batch) {
            pthread_mutex_lock(&s->mu);
            s->est[i] = seconds;
            pthread_mutex_unlock(&s->mu);
        }
}

int sv_scheduler_batch_sizes(const sv_model_config *c, int *out, int cap)
{
    int n = 0, max = c->max_batch_size > 4096 ? 4096 : c->max_batch_size;
    if (max <= 0) {
        if (cap > 0) out[n++] = 1;
        return n;
    }
    int cand[SV_MAX_PREFERRED + 16], nc = 0;
    if (c->n_preferred > 0)
        for (int i = 0; i < c->n_preferred; i++)
            cand[nc++] = c->preferred_batch_size[i];
    else
        for (int b = 1; b <= max && nc < SV_MAX_PREFERRED + 14; b *= 2)
            cand[nc++] = b;
    cand[nc++] = max;            /* a full batch is always a good size */
    for (int lo = 1; n < cap;) { /* ascending, without repeats */
        int next = 0;
        for (int i = 0; i < nc; i++)
            if (cand[i] >= lo && cand[i] <= max && (!next || cand[i] < next)) next = cand[i];
        if (!next) break;
        out[n++] = next;
        lo = next + 1;
    }
    return n;
}

static void abs_time(double monotonic_deadline, struct timespec *ts)
{
    double wait = monotonic_deadline - sv_now();
    if (wait < 0) wait = 0;
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)wait;
    ts->tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *expirer_main(void *arg)
{
    sv_scheduler *s = arg;
    sv_request **drop = malloc(sizeof *drop * (size_t)(s->max_queue + 1));
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && drop) {
        double earliest = 0, now = sv_now();
        for (int i = 0; i < s->qn; i++) {
            double d = s->q[i]->deadline;
            if (d > 0 && (earliest == 0 || d < earliest)) earliest = d;
        }
        s->next_wake = earliest;
        if (earliest == 0) {
            pthread_cond_wait(&s->ecv, &s->mu);
            continue;
        }
        if (now < earliest) {
            struct timespec ts;
            abs_time(earliest, &ts);
            pthread_cond_timedwait(&s->ecv, &s->mu, &ts);
            continue;
        }
        int nd = sweep(s, now, drop, s->max_queue + 1);
        atomic_fetch_sub(&s->stats->queue_depth, nd);
        s->next_wake = 0;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < nd; i++) {
            sv_request *r = drop[i];
            r->queue_seconds = now - r->queue_seconds;
            if (atomic_load(&r->cancelled))
                finish(s, r, 499, "cancelled: the client went away");
            else
                finish(s, r, 504, "deadline exceeded while queued; the request was not run");
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    free(drop);
    return NULL;
}

static void *instance_main(void *arg)
{
    sv_scheduler *s = arg;
    int cap = s->max_batch > 0 ? s->max_batch : 1;
    sv_request **batch = malloc(sizeof *batch * (size_t)cap);
    sv_request **drop = malloc(sizeof *drop * (size_t)(s->max_queue + 1));
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->qn == 0 && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->qn == 0 && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        /* Dynamic batching: hold the head until the batch is full, a preferred size is
         * reached, or the head has waited max_queue_delay_us. With a delay of 0 the batch is
         * simply whatever is queued now, so batching adds no latency. */
        if (s->max_batch > 1 && s->delay_s > 0 && !s->stopping) {
            double until = s->q[0]->queue_seconds + s->delay_s;
            for (;;) {
                int64_t n = ready_samples(s);
                if (n >= s->max_batch || preferred_hit(s, n) || s->stopping || s->qn == 0) break;
                if (sv_now() >= until) break;
                struct timespec ts;
                abs_time(until, &ts);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            }
        }
        double now = sv_now();
        int nd = sweep(s, now, drop, s->max_queue + 1);
        int nb = 0;
        if (s->qn > 0) {
            int64_t target = s->max_batch > 0 ? batch_target(s, ready_samples(s)) : 1, got = 0;
            sv_request *head = s->q[0];
            int w = 0;
            for (int i = 0; i < s->qn; i++) {
                sv_request *r = s->q[i];
                int64_t n = request_batch(s, r);
                if (nb < cap && got < target &&
                    (i == 0 || (got + n <= target && compatible(head, r)))) {
                    batch[nb++] = r;
                    got += n;
                } else {
                    s->q[w++] = r;
                }
            }
            s->qn = w;
        }
        atomic_fetch_sub(&s->stats->queue_depth, nb + nd);
        /* Another instance may find work that this batch left behind. */
        if (s->qn > 0) pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);

        for (int i = 0; i < nd; i++) {
            sv_request *r = drop[i];
            r->queue_seconds = now - r->queue_seconds;
            if (atomic_load(&r->cancelled))
                finish(s, r, 499, "cancelled: the client went away");
            else
                finish(s, r, 504, "deadline exceeded while queued; the request was not run");
        }
        for (int i = 0; i < nb; i++) {
            batch[i]->queue_seconds = now - batch[i]->queue_seconds;
            sv_hist_observe(&s->stats->queue_seconds, sv_time_bounds, SV_TIME_BUCKETS,
                            batch[i]->queue_seconds);
        }
        if (nb) run_batch(s, batch, nb);
    }
    free(batch);
    free(drop);
    return NULL;
}

ferry_status sv_scheduler_create(ferry_session *session, const ferry_model *model,
                                 const sv_model_config *c, sv_version_stats *stats,
                                 void (*after_done)(void *ctx), void *ctx, sv_scheduler **out)
{
    *out = NULL;
    if (ferry_model_input_count(model) > MAX_INPUTS || ferry_model_output_count(model) > 256)
        return FERRY_E_UNSUPPORTED;
    sv_scheduler *s = calloc(1, sizeof *s);
    if (!s) return FERRY_E_NOMEM;
    s->session = session;
    s->model = model;
    s->stats = stats;
    s->after_done = after_done;
    s->ctx = ctx;
    s->max_batch = c->max_batch_size > 4096 ? 4096 : c->max_batch_size;
    s->delay_s = (double)c->max_queue_delay_us * 1e-6;
    s->n_preferred = c->n_preferred;
    memcpy(s->preferred, c->preferred_batch_size, sizeof s->preferred);
    s->n_sizes = sv_scheduler_batch_sizes(c, s->sizes, (int)(sizeof s->sizes / sizeof *s->sizes));
    s->max_queue = c->max_queue_size > 0 ? c->max_queue_size : SV_DEFAULT_QUEUE_SIZE;
    s->timeout_s = (double)c->timeout_ms * 1e-3;
    s->n_in = ferry_model_input_count(model);
    s->n_out = ferry_model_output_count(model);
    for (int i = 0; i < s->n_in; i++)
        ferry_model_input(model, i, &s->in[i]);
    s->q = calloc((size_t)s->max_queue, sizeof *s->q);
    s->n_threads = c->instances > 0 ? c->instances : 1;
    s->threads = calloc((size_t)s->n_threads, sizeof *s->threads);
    if (!s->q || !s->threads) {
        free(s->q);
        free(s->threads);
        free(s);
        return FERRY_E_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->ecv, NULL);
    if (pthread_create(&s->expirer, NULL, expirer_main, s) != 0) {
        s->n_threads = 0;
        sv_scheduler_free(s);
        return FERRY_E_INTERNAL;
    }
    s->has_expirer = 1;
    for (int i = 0; i < s->n_threads; i++) {
        if (pthread_create(&s->threads[i], NULL, instance_main, s) != 0) {
            s->n_threads = i;
            sv_scheduler_free(s);
            return FERRY_E_INTERNAL;
        }
    }
    *out = s;
    return FERRY_OK;
}

void sv_scheduler_free(sv_scheduler *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->ecv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    if (s->has_expirer) pthread_join(s->expirer, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->ecv);
    free(s->q);
    free(s->threads);
    free(s);
}
