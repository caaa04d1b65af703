/* manager.c — ferry serve's model manager: keeps the loaded versions in step with the model
 * repository (polling thread, rescan, repository load/unload), routes requests to versions by
 * number, label or default, and frees versions when their last request lets go (manager.h).
 *
 * Locking: `mu` guards what requests read (entries, slots, labels) and is only held for
 * lookups and pointer swaps; `sync_mu` serializes the slow work (scanning, hashing, loading,
 * warming up), which runs on the polling thread or an API caller's thread, never on an
 * instance thread, so a load never stalls inference. Versions are refcounted: the manager holds
 * one reference while a version serves, every acquire and every queued request one more; the
 * last release hands the version to the reaper thread, which frees it (a release can happen on
 * the version's own instance thread, which cannot join itself). */
#define _GNU_SOURCE
#include "serve/manager.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"
#include "pipeline/manifest.h"
#include "serve/repository.h"
#include "serve/scheduler.h"

typedef enum slot_state {
    SLOT_LOADING = 0,
    SLOT_READY,
    SLOT_UNAVAILABLE,
} slot_state;

static const char *state_names[] = {"LOADING", "READY", "UNAVAILABLE"};

/* One version directory the manager knows about (on disk, or still serving from memory). */
typedef struct vslot {
    int64_t number;
    int on_disk;
    slot_state state;
    char reason[512];
    sv_version *v;       /* the serving version (the manager's reference), or NULL */
    uint64_t fp;         /* fingerprint at the last poll (unmanifested directories) */
    int quiet;           /* consecutive polls that saw fp unchanged, counting the first */
    uint64_t failed_key; /* fingerprint ^ config hash of the last failed attempt */
} vslot;

typedef struct model_entry {
    char *name, *dir;
    int cfg_ok;
    char cfg_err[512];
    sv_labels labels; /* as labels.json says */
    sv_labels routed; /* what requests follow: a label moves once its new version is ready */
    char labels_err[256];
    vslot *slots; /* ascending by number */
    int n_slots, cap_slots;
    sv_model_stats stats;
    int unloaded; /* by the repository API: polls leave it alone until it is loaded again */
    int removed;  /* its directory is gone */
} model_entry;

struct sv_version {
    atomic_int refs;
    sv_manager *m;
    model_entry *e; /* entries live as long as the manager */
    int64_t number;
    ferry_model *model;
    ferry_session *session;
    sv_scheduler *sched;
    sv_model_config cfg;
    char *config_json;
    sv_version_stats stats;
    sv_version *next_dead;
};

struct sv_manager {
    char *repo;
    double poll_seconds;
    int session_threads;

    pthread_mutex_t mu;
    model_entry **entries;
    int n_entries, cap_entries;

    pthread_mutex_t sync_mu;

    pthread_mutex_t cmu; /* poll thread control */
    pthread_cond_t ccv;
    int rescan, stop, started;
    pthread_t poller;

    pthread_mutex_t gmu; /* graveyard: versions whose last reference is gone */
    pthread_cond_t gcv;
    sv_version *dead;
    int live_versions, reaper_stop;
    pthread_t reaper;

    void (*log)(void *ctx, const char *level, const char *msg);
    void *log_ctx;
    char scan_err[256]; /* the last repository listing failure (logged once) */
};

/* ---- logging ------------------------------------------------------------------------------ */

static void mlog(sv_manager *m, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mlog(sv_manager *m, const char *level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m->log)
        m->log(m->log_ctx, level, msg);
    else
        fprintf(stderr, "ferry serve: %s: %s\n", level, msg);
}

void sv_manager_set_logger(sv_manager *m,
                           void (*log)(void *ctx, const char *level, const char *msg), void *ctx)
{
    m->log = log;
    m->log_ctx = ctx;
}

/* ---- versions ----------------------------------------------------------------------------- */

static void version_destroy(sv_version *v)
{
    sv_scheduler_free(v->sched);
    ferry_session_free(v->session);
    ferry_model_free(v->model);
    free(v->config_json);
    free(v);
}

void sv_version_release(sv_version *v)
{
    if (!v) return;
    if (atomic_fetch_sub(&v->refs, 1) != 1) return;
    sv_manager *m = v->m;
    pthread_mutex_lock(&m->gmu);
    v->next_dead = m->dead;
    m->dead = v;
    pthread_cond_broadcast(&m->gcv);
    pthread_mutex_unlock(&m->gmu);
}

static void release_cb(void *ctx) { sv_version_release(ctx); }

static void *reaper_main(void *arg)
{
    sv_manager *m = arg;
    pthread_mutex_lock(&m->gmu);
    for (;;) {
        while (!m->dead && !m->reaper_stop)
            pthread_cond_wait(&m->gcv, &m->gmu);
        if (!m->dead && m->reaper_stop) break;
        sv_version *v = m->dead;
        m->dead = v->next_dead;
        pthread_mutex_unlock(&m->gmu);
        char name[256];
        snprintf(name, sizeof name, "%s", v->e->name);
        int64_t number = v->number;
        version_destroy(v);
        mlog(m, "info", "model \"%s\" version %lld freed", name, (long long)number);
        pthread_mutex_lock(&m->gmu);
        m->live_versions--;
        pthread_cond_broadcast(&m->gcv);
    }
    pthread_mutex_unlock(&m->gmu);
    return NULL;
}

const char *sv_version_model_name(const sv_version *v) { return v->e->name; }
int64_t sv_version_number(const sv_version *v) { return v->number; }
const ferry_model *sv_version_model(const sv_version *v) { return v->model; }
int sv_version_max_batch_size(const sv_version *v) { return v->cfg.max_batch_size; }
const char *sv_version_config_json(const sv_version *v) { return v->config_json; }
sv_version_stats *sv_version_stats_of(sv_version *v) { return &v->stats; }

const char *sv_version_labels(const sv_version *v, char *buf, size_t len)
{
    if (!len) return buf;
    buf[0] = 0;
    size_t k = 0;
    pthread_mutex_lock(&v->m->mu);
    const sv_labels *l = &v->e->labels;
    for (int i = 0; i < l->n; i++)
        if (l->version[i] == v->number && k < len)
            k += (size_t)snprintf(buf + k, len - k, "%s%s", k ? "," : "", l->name[i]);
    pthread_mutex_unlock(&v->m->mu);
    return buf;
}

int sv_version_submit(sv_version *v, sv_request *r)
{
    atomic_fetch_add(&v->refs, 1); /* held until the scheduler has called done() */
    if (sv_scheduler_submit(v->sched, r) == 0) return 0;
    atomic_fetch_add(&v->stats.requests_failed, 1);
    sv_version_release(v);
    return -1;
}

void sv_request_clear(sv_request *r)
{
    for (int i = 0; r->inputs && i < r->n_inputs; i++) {
        ferry_value_free(r->inputs[i]);
        r->inputs[i] = NULL;
    }
    for (int i = 0; r->results && i < r->n_results; i++)
        ferry_value_free(r->results[i]);
    free(r->results);
    free(r->result_names);
    r->results = NULL;
    r->result_names = NULL;
    r->n_results = 0;
}

/* Runs the model once on zeros at one batch size so the first real request of that size
 * finds its kernels prepared and its buffers pooled instead of paying for that itself (for a
 * convolutional network the first run of a new shape costs several steady runs). */
static ferry_status warm_up(ferry_session *s, const ferry_model *model, int batch, int *guessed)
{
    *guessed = 0;
    int n = ferry_model_input_count(model);
    ferry_value **in = calloc((size_t)n + 1, sizeof *in);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    int n_out = ferry_model_output_count(model);
    ferry_value **out = calloc((size_t)n_out + 1, sizeof *out);
    ferry_status rc = (in && names && out) ? FERRY_OK : FERRY_E_NOMEM;
    int given = 0;
    for (int i = 0; i < n && rc == FERRY_OK; i++) {
        ferry_io_info io;
        ferry_model_input(model, i, &io);
        if (io.optional) continue;
        if (io.kind != FERRY_VALUE_TENSOR || io.rank < 0) {
            rc = FERRY_E_UNSUPPORTED; /* nothing sensible to invent; skip warm-up */
            break;
        }
        int64_t dims[FERRY_MAX_RANK];
        for (int k = 0; k < io.rank; k++) {
            dims[k] = io.dims[k] >= 0 ? io.dims[k] : (k ? 1 : batch);
            if (io.dims[k] < 0 && k > 0) *guessed = 1;
        }
        rc = ferry_tensor_create(io.dtype, io.rank, dims, &in[given]);
        if (rc != FERRY_OK) break;
        if (io.dtype != FERRY_DTYPE_STRING)
            memset(ferry_tensor_data(in[given]), 0, ferry_tensor_nbytes(in[given]));
        names[given++] = io.name;
    }
    if (rc == FERRY_OK) rc = ferry_session_run(s, given, names, in, out);
    for (int i = 0; out && i < n_out; i++)
        ferry_value_free(out[i]);
    for (int i = 0; in && i < given; i++)
        ferry_value_free(in[i]);
    free(in);
    free(names);
    free(out);
    return rc;
}

/* Loads, checks and warms up one version. On failure writes the reason into err. */
static ferry_status load_version(sv_manager *m, model_entry *e, int64_t number,
                                 const sv_model_config *cfg, sv_version **out, char *err,
                                 size_t errlen)
{
    *out = NULL;
    double t0 = sv_now();
    char path[4096];
    snprintf(path, sizeof path, "%s/%lld/model.onnx", e->dir, (long long)number);
    sv_version *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return FERRY_E_NOMEM;
    }
    atomic_init(&v->refs, 1);
    v->m = m;
    v->e = e;
    v->number = number;
    v->cfg = *cfg;
    ferry_status rc = ferry_model_load(path, &v->model);
    if (rc != FERRY_OK) {
        snprintf(err, errlen, "%s", ferry_last_error());
        goto fail;
    }
    rc = sv_config_resolve(&v->cfg, v->model);
    if (rc != FERRY_OK) {
        snprintf(err, errlen, "%s", ferry_last_error());
        goto fail;
    }
    ferry_session_options so = {.threads = m->session_threads};
    rc = ferry_session_create(v->model, &so, &v->session);
    if (rc != FERRY_OK) {
        snprintf(err, errlen, "creating a session: %s", ferry_last_error());
        goto fail;
    }
    /* Warm up every batch size the scheduler will form, so batching pays from the first
     * batch rather than after each size has been seen once. */
    int guessed = 0, sizes[SV_MAX_PREFERRED + 16];
    double secs_at[SV_MAX_PREFERRED + 16] = {0};
    int n_sizes = sv_scheduler_batch_sizes(&v->cfg, sizes, SV_MAX_PREFERRED + 16);
    double tw = sv_now();
    rc = FERRY_OK;
    for (int i = 0; i < n_sizes && rc == FERRY_OK; i++)
        rc = warm_up(v->session, v->model, sizes[i], &guessed);
    /* A second, timed round (kernels now prepared) tells the scheduler what each batch size
     * costs on this machine. */
    for (int i = 0; i < n_sizes && rc == FERRY_OK && v->cfg.max_batch_size > 1; i++) {
        double t = sv_now();
        rc = warm_up(v->session, v->model, sizes[i], &guessed);
        secs_at[i] = sv_now() - t;
        if (rc == FERRY_OK && secs_at[i] < 0.05) { /* cheap: the better of two, less noise */
            t = sv_now();
            rc = warm_up(v->session, v->model, sizes[i], &guessed);
            if (sv_now() - t < secs_at[i]) secs_at[i] = sv_now() - t;
        }
    }
    if (rc == FERRY_OK)
        mlog(m, "debug", "model \"%s\" version %lld: warm-up of %d batch sizes took %.3f s",
             e->name, (long long)number, n_sizes, sv_now() - tw);
    if (rc == FERRY_E_UNSUPPORTED) {
        mlog(m, "info",
             "model \"%s\" version %lld: inputs without a declared tensor shape; "
             "not warmed up",
             e->name, (long long)number);
        rc = FERRY_OK;
    } else if (rc != FERRY_OK && guessed) {
        /* Symbolic dims other than the batch were guessed as 1, which the model may not
         * accept; that says nothing about real requests, so serve it cold. */
        mlog(m, "warn",
             "model \"%s\" version %lld: warm-up with symbolic dims set to 1 "
             "failed (%s); serving without warm-up",
             e->name, (long long)number, ferry_last_error());
        rc = FERRY_OK;
    } else if (rc != FERRY_OK) {
        snprintf(err, errlen, "warm-up run on zeros failed: %s", ferry_last_error());
        goto fail;
    }
    v->config_json = sv_config_to_json(&v->cfg, e->name);
    if (!v->config_json) {
        rc = FERRY_E_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc = sv_scheduler_create(v->session, v->model, &v->cfg, &v->stats, release_cb, v, &v->sched);
    if (rc != FERRY_OK) {
        snprintf(err, errlen, "cannot start the scheduler (%s)", ferry_status_name(rc));
        goto fail;
    }
    for (int i = 0; i < n_sizes; i++)
        if (secs_at[i] > 0) sv_scheduler_set_estimate(v->sched, sizes[i], secs_at[i]);
    pthread_mutex_lock(&m->gmu);
    m->live_versions++;
    pthread_mutex_unlock(&m->gmu);
    double secs = sv_now() - t0;
    atomic_fetch_add(&e->stats.loads, 1);
    sv_hist_observe(&e->stats.load_seconds, sv_time_bounds, SV_TIME_BUCKETS, secs);
    mlog(m, "info",
         "model \"%s\" version %lld loaded and warmed up in %.3f s (max_batch_size %d, "
         "instances %d)",
         e->name, (long long)number, secs, v->cfg.max_batch_size, v->cfg.instances);
    *out = v;
    return FERRY_OK;
fail:
    atomic_fetch_add(&e->stats.load_failures, 1);
    ferry_session_free(v->session);
    ferry_model_free(v->model);
    free(v->config_json);
    free(v);
    return rc ? rc : FERRY_E_INTERNAL;
}

/* ---- entries and slots (callers hold mu) -------------------------------------------------- */

static model_entry *find_entry(sv_manager *m, const char *name)
{
    for (int i = 0; i < m->n_entries; i++)
        if (!strcmp(m->entries[i]->name, name)) return m->entries[i];
    return NULL;
}

static model_entry *add_entry(sv_manager *m, const char *name)
{
    if (m->n_entries == m->cap_entries) {
        int cap = m->cap_entries ? m->cap_entries * 2 : 8;
        model_entry **t = realloc(m->entries, sizeof *t * (size_t)cap);
        if (!t) return NULL;
        m->entries = t;
        m->cap_entries = cap;
    }
    model_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->name = strdup(name);
    size_t n = strlen(m->repo) + strlen(name) + 2;
    e->dir = malloc(n);
    if (!e->name || !e->dir) {
        free(e->name);
        free(e->dir);
        free(e);
        return NULL;
    }
    snprintf(e->dir, n, "%s/%s", m->repo, name);
    e->cfg_ok = 1;
    /* Keep entries sorted by name: foreach reports in name order. */
    int at = m->n_entries;
    while (at > 0 && strcmp(m->entries[at - 1]->name, name) > 0)
        at--;
    memmove(m->entries + at + 1, m->entries + at, sizeof *m->entries * (size_t)(m->n_entries - at));
    m->entries[at] = e;
    m->n_entries++;
    return e;
}

static void route_labels(model_entry *e);

static vslot *find_slot(model_entry *e, int64_t number)
{
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].number == number) return &e->slots[i];
    return NULL;
}

static vslot *add_slot(model_entry *e, int64_t number)
{
    if (e->n_slots == e->cap_slots) {
        int cap = e->cap_slots ? e->cap_slots * 2 : 4;
        vslot *t = realloc(e->slots, sizeof *t * (size_t)cap);
        if (!t) return NULL;
        e->slots = t;
        e->cap_slots = cap;
    }
    int at = e->n_slots;
    while (at > 0 && e->slots[at - 1].number > number)
        at--;
    memmove(e->slots + at + 1, e->slots + at, sizeof *e->slots * (size_t)(e->n_slots - at));
    memset(&e->slots[at], 0, sizeof e->slots[at]);
    e->slots[at].number = number;
    e->slots[at].state = SLOT_LOADING;
    e->n_slots++;
    return &e->slots[at];
}

static void remove_slot(model_entry *e, vslot *s)
{
    int at = (int)(s - e->slots);
    memmove(e->slots + at, e->slots + at + 1, sizeof *e->slots * (size_t)(e->n_slots - at - 1));
    e->n_slots--;
}

/* ---- synchronising with the repository (callers hold sync_mu) ----------------------------- */

typedef struct sync_result {
    int pending; /* versions waiting for their directory to settle */
    int failed;  /* versions that failed in this pass */
    char last_error[512];
} sync_result;

static int contains(const int64_t *a, int n, int64_t x)
{
    for (int i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

/* Drops the manager's reference to every version in olds (outside mu). */
static void release_all(sv_version **olds, int n)
{
    for (int i = 0; i < n; i++)
        sv_version_release(olds[i]);
}

/* Decides whether version dir `vdir` may be loaded now. Returns 1 to load, 0 to wait (slot
 * updated), -1 when it must not load (slot updated with the reason). *key identifies the
 * directory's contents for "don't retry an unchanged failure". */
static int gate(sv_manager *m, model_entry *e, vslot *s, const char *vdir, int force,
                uint64_t cfg_hash, uint64_t *key, sync_result *res)
{
    uint64_t fp = 0;
    if (sv_dir_fingerprint(vdir, &fp) != FERRY_OK) return 0; /* vanished meanwhile */
    *key = (fp ^ cfg_hash) | 1;
    if (!force && s->failed_key == *key) return -1; /* nothing changed since it failed */
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/%s", vdir, FY_MANIFEST_NAME);
    struct stat st;
    if (stat(mpath, &st) == 0) {
        ferry_status rc = fy_manifest_verify(vdir);
        if (rc == FERRY_OK) return 1;
        pthread_mutex_lock(&m->mu);
        if (!s->v) s->state = SLOT_UNAVAILABLE;
        snprintf(s->reason, sizeof s->reason, "manifest.json does not verify: %s",
                 ferry_last_error());
        s->failed_key = *key;
        snprintf(res->last_error, sizeof res->last_error, "%s", s->reason);
        pthread_mutex_unlock(&m->mu);
        atomic_fetch_add(&e->stats.load_failures, 1);
        res->failed++;
        mlog(m, "error", "model \"%s\" version %lld not loaded: %s", e->name, (long long)s->number,
             s->reason);
        return -1;
    }
    /* No manifest: load only once two consecutive polls saw the same files, sizes and
     * mtimes, so a directory that is still being copied is never loaded half-written. */
    if (force) return 1;
    if (s->quiet == 0 || s->fp != fp) {
        s->fp = fp;
        s->quiet = 1;
    } else {
        s->quiet++;
    }
    if (s->quiet >= 2) return 1;
    pthread_mutex_lock(&m->mu);
    if (!s->v) {
        s->state = SLOT_LOADING;
        snprintf(s->reason, sizeof s->reason,
                 "waiting for the directory to stay unchanged for two polls (no manifest.json)");
    }
    pthread_mutex_unlock(&m->mu);
    res->pending++;
    return 0;
}

/* Makes e's slots match the version directories on disk (caller holds sync_mu). */
static ferry_status list_disk(sv_manager *m, model_entry *e, int64_t **disk, int *n_disk)
{
    FY_CHECK(sv_repo_list_versions(e->dir, disk, n_disk));
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < *n_disk; i++) {
        vslot *s = find_slot(e, (*disk)[i]);
        if (!s && !(s = add_slot(e, (*disk)[i]))) continue;
    }
    for (int i = 0; i < e->n_slots; i++)
        e->slots[i].on_disk = contains(*disk, *n_disk, e->slots[i].number);
    for (int i = e->n_slots - 1; i >= 0; i--)
        if (!e->slots[i].on_disk && !e->slots[i].v) remove_slot(e, &e->slots[i]);
    pthread_mutex_unlock(&m->mu);
    return FERRY_OK;
}

/* Loads version num of e unless it already serves with this config (or force), passing the
 * gate first; swaps it in on success. Returns 1 when a new copy now serves. */
static int try_load(sv_manager *m, model_entry *e, int64_t num, const sv_model_config *cfg,
                    int force, sync_result *res)
{
    pthread_mutex_lock(&m->mu);
    vslot *s = find_slot(e, num);
    int serving = s && s->v && s->v->cfg.text_hash == cfg->text_hash;
    pthread_mutex_unlock(&m->mu);
    if (!s || (serving && !force)) return 0;
    char vdir[4096];
    snprintf(vdir, sizeof vdir, "%s/%lld", e->dir, (long long)num);
    uint64_t key = 0;
    if (gate(m, e, s, vdir, force, cfg->text_hash, &key, res) <= 0) return 0;
    pthread_mutex_lock(&m->mu);
    if (!s->v) {
        s->state = SLOT_LOADING;
        snprintf(s->reason, sizeof s->reason, "loading");
    }
    pthread_mutex_unlock(&m->mu);
    sv_version *v = NULL;
    char err[512] = "";
    ferry_status rc = load_version(m, e, num, cfg, &v, err, sizeof err);
    pthread_mutex_lock(&m->mu);
    s = find_slot(e, num);
    sv_version *old = NULL;
    int kept = s->v != NULL;
    if (rc == FERRY_OK) {
        old = s->v; /* in-flight requests finish on it; it is freed when they are done */
        s->v = v;
        s->state = SLOT_READY;
        s->reason[0] = 0;
        s->failed_key = 0;
        s->quiet = 0;
    } else {
        s->failed_key = key;
        if (!s->v) s->state = SLOT_UNAVAILABLE;
        snprintf(s->reason, sizeof s->reason, "%s", err);
        snprintf(res->last_error, sizeof res->last_error, "%s", err);
        res->failed++;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc != FERRY_OK)
        mlog(m, "error", "model \"%s\" version %lld failed to load: %s%s", e->name, (long long)num,
             err, kept ? " (the loaded copy keeps serving)" : "");
    if (old) sv_version_release(old);
    return rc == FERRY_OK;
}

static void sync_model(sv_manager *m, model_entry *e, int force, sync_result *res)
{
    int64_t *disk = NULL;
    int n_disk = 0;
    if (list_disk(m, e, &disk, &n_disk) != FERRY_OK) return;
    sv_model_config cfg;
    ferry_status rc = sv_config_load(e->dir, &cfg);
    if (rc != FERRY_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ferry_last_error());
        pthread_mutex_lock(&m->mu);
        int changed = e->cfg_ok || strcmp(e->cfg_err, msg) != 0;
        e->cfg_ok = 0;
        snprintf(e->cfg_err, sizeof e->cfg_err, "%s", msg);
        for (int i = 0; i < e->n_slots; i++)
            if (!e->slots[i].v) {
                e->slots[i].state = SLOT_UNAVAILABLE;
                snprintf(e->slots[i].reason, sizeof e->slots[i].reason, "%s", msg);
            }
        pthread_mutex_unlock(&m->mu);
        if (changed) {
            atomic_fetch_add(&e->stats.load_failures, 1);
            mlog(m, "error", "model \"%s\": %s (versions already serving keep serving)", e->name,
                 msg);
        }
        res->failed++;
        snprintf(res->last_error, sizeof res->last_error, "%s", msg);
        free(disk);
        return;
    }
    sv_labels labels;
    rc = sv_labels_load(e->dir, &labels);
    pthread_mutex_lock(&m->mu);
    e->cfg_ok = 1;
    e->cfg_err[0] = 0;
    if (rc == FERRY_OK) {
        e->labels = labels;
        e->labels_err[0] = 0;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc != FERRY_OK && strncmp(e->labels_err, ferry_last_error(), sizeof e->labels_err - 1)) {
        snprintf(e->labels_err, sizeof e->labels_err, "%s", ferry_last_error());
        mlog(m, "warn", "model \"%s\": %s (keeping the previous labels)", e->name, e->labels_err);
    }

    int64_t *want = calloc((size_t)n_disk + SV_MAX_LABELS + 1, sizeof *want);
    if (!want) {
        free(disk);
        return;
    }
    int n_want = sv_policy_select(&cfg, disk, n_disk, want);
    int n_policy = n_want;
    /* A label keeps its version loaded even outside the policy: rolling "stable" back to an
     * older version must not need a policy change. */
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < e->labels.n; i++)
        if (contains(disk, n_disk, e->labels.version[i]) &&
            !contains(want, n_want, e->labels.version[i]))
            want[n_want++] = e->labels.version[i];
    /* ... and so does the version a label routes to until its new one is ready (routed again
     * after loading, for targets that became ready in this poll). */
    route_labels(e);
    for (int i = 0; i < e->routed.n && n_want < n_disk + SV_MAX_LABELS; i++)
        if (contains(disk, n_disk, e->routed.version[i]) &&
            !contains(want, n_want, e->routed.version[i]))
            want[n_want++] = e->routed.version[i];
    pthread_mutex_unlock(&m->mu);

    /* Load what should serve and does not yet (or serves under an older config.json),
     * newest first. sync_mu keeps slots from moving under us. */
    for (int i = n_disk - 1; i >= 0; i--)
        if (contains(want, n_want, disk[i])) try_load(m, e, disk[i], &cfg, force, res);

    /* latest N means the N newest versions that load: when one of them is not ready and
     * nothing serves in its place yet (a fresh start with a broken or still-settling newest
     * version), load the next older one as a stand-in. */
    if (cfg.policy == SV_POLICY_LATEST) {
        pthread_mutex_lock(&m->mu);
        int serving = 0;
        for (int i = 0; i < e->n_slots; i++)
            if (e->slots[i].v &&
                (contains(want, n_policy, e->slots[i].number) ||
                 (e->slots[i].on_disk && !contains(want, n_want, e->slots[i].number))))
                serving++;
        pthread_mutex_unlock(&m->mu);
        for (int i = n_disk - 1; i >= 0 && serving < n_policy; i--) {
            if (contains(want, n_want, disk[i])) continue;
            pthread_mutex_lock(&m->mu);
            vslot *s = find_slot(e, disk[i]);
            int has = s && s->v;
            pthread_mutex_unlock(&m->mu);
            if (!has && try_load(m, e, disk[i], &cfg, force, res)) serving++;
        }
    }

    pthread_mutex_lock(&m->mu);
    route_labels(e);
    pthread_mutex_unlock(&m->mu);

    /* Retire what the policy no longer wants, but never leave fewer versions serving than it
     * asks for: a wanted version that is not ready yet (or failed) is stood in for by the
     * newest serving version outside the policy. */
    sv_version *olds[256];
    int64_t old_nums[256];
    int old_gone[256];
    int n_old = 0;
    pthread_mutex_lock(&m->mu);
    int ready_wanted = 0;
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].v && contains(want, n_policy, e->slots[i].number)) ready_wanted++;
    int keep = n_policy - ready_wanted;
    for (int i = e->n_slots - 1; i >= 0; i--) {
        vslot *s = &e->slots[i];
        if (contains(want, n_want, s->number)) continue;
        if (s->v && s->on_disk && keep > 0) {
            keep--;
            continue;
        }
        if (s->v && n_old < 256) {
            old_nums[n_old] = s->number;
            old_gone[n_old] = !s->on_disk;
            olds[n_old++] = s->v;
            s->v = NULL;
        }
        if (!s->on_disk && !s->v) {
            remove_slot(e, s);
            continue;
        }
        if (!s->v) {
            s->state = SLOT_UNAVAILABLE;
            snprintf(s->reason, sizeof s->reason, "not selected by the version policy");
        }
    }
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < n_old; i++)
        mlog(m, "info", "model \"%s\" version %lld unloaded (%s); in-flight requests finish on it",
             e->name, (long long)old_nums[i],
             old_gone[i] ? "its directory was removed" : "not selected by the version policy");
    release_all(olds, n_old);
    free(want);
    free(disk);
}

/* Moves each label to the version labels.json names once that version is ready; until then
 * the label keeps routing to the version it routed to before (if that still serves), so a
 * promote or rollback never answers 503 while the new target loads. Callers hold m->mu. */
static void route_labels(model_entry *e)
{
    sv_labels next = e->labels;
    for (int i = 0; i < next.n; i++) {
        vslot *s = find_slot(e, next.version[i]);
        if (s && s->v) continue;
        for (int j = 0; j < e->routed.n; j++) {
            vslot *prev = find_slot(e, e->routed.version[j]);
            if (!strcmp(e->routed.name[j], next.name[i]) && prev && prev->v)
                next.version[i] = e->routed.version[j];
        }
    }
    e->routed = next;
}

/* Retires every version of e (unload, or its directory disappeared). */
static void retire_all(sv_manager *m, model_entry *e, const char *reason)
{
    sv_version *olds[256];
    int n_old = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < e->n_slots; i++) {
        vslot *s = &e->slots[i];
        if (s->v && n_old < 256) {
            olds[n_old++] = s->v;
            s->v = NULL;
        }
        s->state = SLOT_UNAVAILABLE;
        s->failed_key = 0;
        s->quiet = 0;
        snprintf(s->reason, sizeof s->reason, "%s", reason);
    }
    pthread_mutex_unlock(&m->mu);
    if (n_old) mlog(m, "info", "model \"%s\": %s", e->name, reason);
    release_all(olds, n_old);
}

static void sync_repo(sv_manager *m, sync_result *res)
{
    char **names = NULL;
    int n = 0;
    if (sv_repo_list_models(m->repo, &names, &n) != FERRY_OK) {
        /* Once per distinct failure, not every poll; what serves keeps serving. */
        if (strncmp(m->scan_err, ferry_last_error(), sizeof m->scan_err - 1) != 0) {
            snprintf(m->scan_err, sizeof m->scan_err, "%s", ferry_last_error());
            mlog(m, "error", "%s (models already loaded keep serving)", m->scan_err);
        }
        return;
    }
    m->scan_err[0] = 0;
    int oom = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < n; i++)
        if (!find_entry(m, names[i]) && !add_entry(m, names[i])) oom++;
    int count = m->n_entries;
    pthread_mutex_unlock(&m->mu);
    if (oom) mlog(m, "error", "out of memory adding %d models", oom);
    for (int i = 0; i < count; i++) {
        pthread_mutex_lock(&m->mu);
        model_entry *e = m->entries[i];
        pthread_mutex_unlock(&m->mu);
        int present = 0;
        for (int k = 0; k < n && !present; k++)
            present = !strcmp(names[k], e->name);
        if (!present) {
            if (!e->removed) {
                retire_all(m, e, "unloaded: the model directory was removed");
                pthread_mutex_lock(&m->mu);
                e->removed = 1;
                pthread_mutex_unlock(&m->mu);
            }
            continue;
        }
        if (e->removed) {
            pthread_mutex_lock(&m->mu);
            e->removed = 0;
            pthread_mutex_unlock(&m->mu);
        }
        if (!e->unloaded) sync_model(m, e, 0, res);
    }
    sv_free_names(names, n);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

ferry_status sv_manager_create(const sv_manager_options *o, sv_manager **out)
{
    *out = NULL;
    if (!o || !o->repo || !o->repo[0])
        return fy_error(FERRY_E_INVALID_ARG,
                        "ferry serve: a model repository directory is required");
    if (o->poll_seconds < 0 || o->poll_seconds > 86400)
        return fy_error(FERRY_E_INVALID_ARG, "poll interval %g s is outside [0, 86400]",
                        o->poll_seconds);
    if (o->session_threads < 0 || o->session_threads > 1024)
        return fy_error(FERRY_E_INVALID_ARG, "session threads %d is outside [0, 1024]",
                        o->session_threads);
    struct stat st;
    if (stat(o->repo, &st) != 0 || !S_ISDIR(st.st_mode))
        return fy_error(FERRY_E_IO, "model repository %s is not a directory", o->repo);
    sv_manager *m = calloc(1, sizeof *m);
    if (!m || !(m->repo = strdup(o->repo))) {
        free(m);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    size_t len = strlen(m->repo);
    while (len > 1 && m->repo[len - 1] == '/')
        m->repo[--len] = 0;
    m->poll_seconds = o->poll_seconds;
    m->session_threads = o->session_threads;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->sync_mu, NULL);
    pthread_mutex_init(&m->cmu, NULL);
    pthread_cond_init(&m->ccv, NULL);
    pthread_mutex_init(&m->gmu, NULL);
    pthread_cond_init(&m->gcv, NULL);
    if (pthread_create(&m->reaper, NULL, reaper_main, m) != 0) {
        free(m->repo);
        free(m);
        return fy_error(FERRY_E_INTERNAL, "cannot start a thread");
    }
    *out = m;
    return FERRY_OK;
}

static void *poll_main(void *arg)
{
    sv_manager *m = arg;
    pthread_mutex_lock(&m->cmu);
    while (!m->stop) {
        if (!m->rescan) {
            if (m->poll_seconds > 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                double w = m->poll_seconds;
                ts.tv_sec += (time_t)w;
                ts.tv_nsec += (long)((w - (double)(time_t)w) * 1e9);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&m->ccv, &m->cmu, &ts);
            } else {
                pthread_cond_wait(&m->ccv, &m->cmu);
            }
        }
        if (m->stop) break;
        m->rescan = 0;
        pthread_mutex_unlock(&m->cmu);
        sync_result res = {0};
        pthread_mutex_lock(&m->sync_mu);
        sync_repo(m, &res);
        pthread_mutex_unlock(&m->sync_mu);
        pthread_mutex_lock(&m->cmu);
    }
    pthread_mutex_unlock(&m->cmu);
    return NULL;
}

ferry_status sv_manager_start(sv_manager *m)
{
    if (m->started) return fy_error(FERRY_E_INVALID_ARG, "the model manager is already started");
    /* At startup nobody can say how long a directory without manifest.json has been quiet, so
     * look twice a short time apart (at most ~5 s in all) instead of a full poll interval. */
    double settle = m->poll_seconds > 0 && m->poll_seconds < 0.25 ? m->poll_seconds : 0.25;
    for (int pass = 0; pass < 20; pass++) {
        sync_result res = {0};
        pthread_mutex_lock(&m->sync_mu);
        sync_repo(m, &res);
        pthread_mutex_unlock(&m->sync_mu);
        if (!res.pending) break;
        struct timespec ts = {0, (long)(settle * 1e9)};
        nanosleep(&ts, NULL);
    }
    if (pthread_create(&m->poller, NULL, poll_main, m) != 0)
        return fy_error(FERRY_E_INTERNAL, "cannot start the repository polling thread");
    m->started = 1;
    return FERRY_OK;
}

void sv_manager_rescan(sv_manager *m)
{
    pthread_mutex_lock(&m->cmu);
    m->rescan = 1;
    pthread_cond_signal(&m->ccv);
    pthread_mutex_unlock(&m->cmu);
}

void sv_manager_poll(sv_manager *m)
{
    sync_result res = {0};
    pthread_mutex_lock(&m->sync_mu);
    sync_repo(m, &res);
    pthread_mutex_unlock(&m->sync_mu);
}

void sv_manager_free(sv_manager *m)
{
    if (!m) return;
    if (m->started) {
        pthread_mutex_lock(&m->cmu);
        m->stop = 1;
        pthread_cond_signal(&m->ccv);
        pthread_mutex_unlock(&m->cmu);
        pthread_join(m->poller, NULL);
    }
    pthread_mutex_lock(&m->sync_mu);
    for (int i = 0; i < m->n_entries; i++)
        retire_all(m, m->entries[i], "server shutting down");
    pthread_mutex_unlock(&m->sync_mu);
    /* Queued requests keep their versions alive; wait for them to drain (bounded, in case a
     * caller never released a version). */
    pthread_mutex_lock(&m->gmu);
    for (int waited = 0; m->live_versions > 0 && waited < 600; waited++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->gcv, &m->gmu, &ts);
    }
    int leaked = m->live_versions;
    m->reaper_stop = 1;
    pthread_cond_broadcast(&m->gcv);
    pthread_mutex_unlock(&m->gmu);
    pthread_join(m->reaper, NULL);
    if (leaked)
        mlog(m, "warn", "%d model versions still referenced at shutdown; not freed", leaked);
    for (int i = 0; i < m->n_entries; i++) {
        free(m->entries[i]->name);
        free(m->entries[i]->dir);
        free(m->entries[i]->slots);
        free(m->entries[i]);
    }
    free(m->entries);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->sync_mu);
    pthread_mutex_destroy(&m->cmu);
    pthread_cond_destroy(&m->ccv);
    pthread_mutex_destroy(&m->gmu);
    pthread_cond_destroy(&m->gcv);
    free(m->repo);
    free(m);
}

int sv_manager_ready(sv_manager *m)
{
    int ready = 1;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_entries && ready; i++) {
        model_entry *e = m->entries[i];
        if (e->removed || e->unloaded) continue;
        int any = 0;
        for (int k = 0; k < e->n_slots && !any; k++)
            any = e->slots[k].v != NULL;
        ready = any;
    }
    pthread_mutex_unlock(&m->mu);
    return ready;
}

/* ---- routing ------------------------------------------------------------------------------- */

sv_version *sv_manager_acquire(sv_manager *m, const char *model, int64_t version, const char *label,
                               int *http_status, char *err, size_t errlen)
{
    int st = 0;
    sv_version *v = NULL;
    if (errlen) err[0] = 0;
    pthread_mutex_lock(&m->mu);
    model_entry *e = model ? find_entry(m, model) : NULL;
    if (!e || e->removed) {
        st = 404;
        snprintf(err, errlen, "unknown model \"%.200s\"", model ? model : "");
        goto out;
    }
    int64_t want = version;
    if (want <= 0 && label) {
        for (int i = 0; i < e->routed.n && want <= 0; i++)
            if (!strcmp(e->routed.name[i], label)) want = e->routed.version[i];
        if (want <= 0) {
            st = 404;
            snprintf(err, errlen, "model \"%s\" has no label \"%.100s\"", e->name, label);
            goto out;
        }
    }
    if (want > 0) {
        vslot *s = find_slot(e, want);
        if (!s) {
            st = 404;
            snprintf(err, errlen, "model \"%s\" has no version %lld", e->name, (long long)want);
        } else if (!s->v) {
            st = 503;
            snprintf(err, errlen, "model \"%s\" version %lld is not ready: %s", e->name,
                     (long long)want, s->reason[0] ? s->reason : state_names[s->state]);
        } else {
            v = s->v;
        }
        goto out;
    }
    for (int i = e->n_slots - 1; i >= 0 && !v; i--)
        v = e->slots[i].v;
    if (!v) {
        st = 503;
        snprintf(err, errlen, "model \"%s\" has no ready version%s%s", e->name,
                 e->unloaded ? " (unloaded)" : "", e->cfg_ok ? "" : ": ");
        if (!e->cfg_ok) {
            size_t k = strlen(err);
            snprintf(err + k, errlen > k ? errlen - k : 0, "%s", e->cfg_err);
        }
    }
out:
    if (v) atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&m->mu);
    if (http_status) *http_status = v ? 200 : st;
    return v;
}

/* ---- index and repository API -------------------------------------------------------------- */

void sv_manager_foreach(sv_manager *m, void (*cb)(void *ctx, const sv_index_entry *e), void *ctx)
{
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_entries; i++) {
        model_entry *e = m->entries[i];
        if (e->removed) continue;
        if (e->n_slots == 0) {
            sv_index_entry ie = {.model = e->name,
                                 .version = 0,
                                 .state = e->unloaded ? "UNAVAILABLE" : "UNAVAILABLE",
                                 .reason = !e->cfg_ok ? e->cfg_err
                                           : e->unloaded
                                               ? "unloaded"
                                               : "no version directory (REPO/NAME/N/model.onnx)",
                                 .model_stats = &e->stats};
            cb(ctx, &ie);
            continue;
        }
        for (int k = 0; k < e->n_slots; k++) {
            vslot *s = &e->slots[k];
            sv_index_entry ie = {.model = e->name,
                                 .version = s->number,
                                 .state = s->v ? "READY" : state_names[s->state],
                                 .reason = s->v ? "" : s->reason,
                                 .model_stats = &e->stats,
                                 .version_stats = s->v ? &s->v->stats : NULL};
            cb(ctx, &ie);
        }
    }
    pthread_mutex_unlock(&m->mu);
}

static ferry_status check_model_name(sv_manager *m, const char *model)
{
    if (!model || !model[0] || model[0] == '.' || strchr(model, '/'))
        return fy_error(FERRY_E_INVALID_ARG, "\"%.100s\" is not a model name", model ? model : "");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", m->repo, model);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fy_error(FERRY_E_INVALID_ARG, "no model \"%.100s\" in the repository %s", model,
                        m->repo);
    return FERRY_OK;
}

ferry_status sv_manager_load_model(sv_manager *m, const char *model)
{
    FY_CHECK(check_model_name(m, model));
    pthread_mutex_lock(&m->sync_mu);
    pthread_mutex_lock(&m->mu);
    model_entry *e = find_entry(m, model);
    if (!e) e = add_entry(m, model);
    if (e) {
        e->unloaded = 0;
        e->removed = 0;
    }
    pthread_mutex_unlock(&m->mu);
    ferry_status rc = FERRY_OK;
    if (!e) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
    } else {
        sync_result res = {0};
        sync_model(m, e, 1, &res);
        pthread_mutex_lock(&m->mu);
        int any = 0;
        for (int k = 0; k < e->n_slots && !any; k++)
            any = e->slots[k].v != NULL;
        pthread_mutex_unlock(&m->mu);
        if (res.failed || !any)
            rc = fy_error(FERRY_E_PARSE, "model \"%s\": %s", model,
                          res.last_error[0] ? res.last_error : "no loadable version directory");
    }
    pthread_mutex_unlock(&m->sync_mu);
    return rc;
}

ferry_status sv_manager_unload_model(sv_manager *m, const char *model)
{
    pthread_mutex_lock(&m->sync_mu);
    pthread_mutex_lock(&m->mu);
    model_entry *e = model ? find_entry(m, model) : NULL;
    if (e) e->unloaded = 1;
    pthread_mutex_unlock(&m->mu);
    ferry_status rc = FERRY_OK;
    if (e)
        retire_all(m, e, "unloaded");
    else
        rc = fy_error(FERRY_E_INVALID_ARG, "unknown model \"%.100s\"", model ? model : "");
    pthread_mutex_unlock(&m->sync_mu);
    return rc;
}
