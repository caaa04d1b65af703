/* manager.h — the boundary between ferry serve's HTTP front end and its back end.
 *
 * The back end (repository.c, manager.c, scheduler.c) owns the model repository: it scans
 * REPO/NAME/N/ (DESIGN.md), applies each model's version policy and config.json, loads and
 * warms up new versions in the background, swaps them in atomically, routes labels from
 * labels.json, and runs inference through a per-version scheduler (bounded queue, dynamic
 * batching, N instances, deadlines, cancellation).
 *
 * The front end (http.c, v2.c, tfs.c, metrics.c) turns requests into sv_request values and
 * renders what it gets back. Every function here is thread-safe. */
#ifndef FERRY_SERVE_MANAGER_H
#define FERRY_SERVE_MANAGER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/ferry.h"
#include "serve/stats.h"

typedef struct sv_manager sv_manager;
typedef struct sv_version sv_version; /* one loaded, warmed-up model version; refcounted */

typedef struct sv_manager_options {
    const char *repo;       /* model repository directory */
    double poll_seconds;    /* how often to rescan; 0 = only on sv_manager_rescan (default 2) */
    int session_threads;    /* threads per session run; 0 = ferry's default */
} sv_manager_options;

/* Validates the options; nothing is loaded yet. */
ferry_status sv_manager_create(const sv_manager_options *o, sv_manager **out);
/* Loads and warms up what the repository holds now (returns when each model has either a ready
 * version or a recorded failure), then starts the polling thread. */
ferry_status sv_manager_start(sv_manager *m);
/* Asks the polling thread to rescan now (SIGHUP); returns at once. */
void sv_manager_rescan(sv_manager *m);
/* Runs one scan on the calling thread and returns when its loads are done (a poll, as the
 * polling thread does it; for tests and tools that need to know when a scan happened). */
void sv_manager_poll(sv_manager *m);
/* Stops polling, lets queued requests finish, frees every version. */
void sv_manager_free(sv_manager *m);
/* 1 when every model in the repository has a ready version (the /v2/health/ready answer).
 * Models unloaded through the repository API do not count. */
int sv_manager_ready(sv_manager *m);
/* Where the manager's log lines go (loads, failures, unloads); level is "debug", "info",
 * "warn" or "error". Called from the manager's threads. Without a logger, lines go to stderr.
 * Set it before sv_manager_start. */
void sv_manager_set_logger(sv_manager *m, void (*log)(void *ctx, const char *level, const char *msg),
                           void *ctx);

/* Finds the version a request addresses: `version` > 0 picks that number, else `label`
 * (non-NULL) picks the version labels.json gives it, else the model's default (highest ready
 * version). On failure returns NULL, sets *http_status (404 unknown model, version or label;
 * 503 known but not ready) and writes a message into err. Release what you get. */
sv_version *sv_manager_acquire(sv_manager *m, const char *model, int64_t version,
                               const char *label, int *http_status, char *err, size_t errlen);
void sv_version_release(sv_version *v);

const char *sv_version_model_name(const sv_version *v);
int64_t sv_version_number(const sv_version *v);
/* The loaded model, for input/output names, dtypes and shapes (ferry_model_input...). */
const ferry_model *sv_version_model(const sv_version *v);
/* Largest batch the scheduler forms (config.json max_batch_size); 0 = the model has no batch
 * dimension and requests run one at a time. */
int sv_version_max_batch_size(const sv_version *v);
/* The effective configuration (config.json merged with defaults) as a JSON object text. */
const char *sv_version_config_json(const sv_version *v);
sv_version_stats *sv_version_stats_of(sv_version *v);
/* Labels (from labels.json) that point at this version, comma-separated; "" when none. */
const char *sv_version_labels(const sv_version *v, char *buf, size_t len);

/* ---- repository index and control ------------------------------------------------------- */

typedef struct sv_index_entry {
    const char *model;
    int64_t version;        /* 0 when the model has no version directory at all */
    const char *state;      /* "READY", "LOADING", "UNAVAILABLE", "UNLOADING" */
    const char *reason;     /* why not ready ("" when ready): load error, hash mismatch... */
    const sv_model_stats *model_stats;
    sv_version_stats *version_stats; /* NULL unless READY */
} sv_index_entry;

/* Calls cb for every model version the repository knows, in name then version order. cb runs
 * under the manager's lock: it must not call other sv_manager functions. */
void sv_manager_foreach(sv_manager *m, void (*cb)(void *ctx, const sv_index_entry *e), void *ctx);
/* Repository API: load (or reload) a model now, blocking until ready or failed; unload one.
 * FERRY_E_INVALID_ARG when no such model directory exists. */
ferry_status sv_manager_load_model(sv_manager *m, const char *model);
ferry_status sv_manager_unload_model(sv_manager *m, const char *model);

/* ---- inference ---------------------------------------------------------------------------- */

typedef struct sv_request sv_request;
struct sv_request {
    /* Filled by the front end. The request owns inputs (freed by the scheduler after the run). */
    int n_inputs;
    const char **input_names;
    ferry_value **inputs;
    int n_outputs;               /* outputs asked for; 0 = all of the model's outputs */
    const char **output_names;
    double deadline;             /* CLOCK_MONOTONIC seconds; 0 = none. Checked while queued. */
    _Atomic int cancelled;       /* the front end sets it when the client goes away */
    void (*done)(sv_request *r); /* called exactly once, from a scheduler thread */
    void *ctx;

    /* Filled by the scheduler before done(). results are owned by the request afterwards. */
    int http_status;             /* 200; 400 bad input; 499 cancelled; 500 run failed;
                                    503 unloading/full; 504 deadline */
    char error[512];
    int n_results;
    const char **result_names;   /* the output names (stay valid after the version is freed) */
    ferry_value **results;
    double queue_seconds, compute_seconds;
};

/* Ownership: input_names, inputs, output_names (the arrays) stay the front end's; the input
 * values are freed by the scheduler after the run (the slots set to NULL), or by
 * sv_request_clear if submit failed. results and result_names are allocated by the scheduler
 * and freed by sv_request_clear. submit reorders input_names/inputs into the model's order.
 * The scheduler holds its own reference to v until done(r) returns, so v may be released right
 * after submit. done() may run before submit returns. */
/* Queues r on v's scheduler; done(r) follows. Returns 0, or -1 without calling done() when the
 * queue is full (r->http_status = 503, r->error says so; answer with Retry-After). Validates
 * input names, dtypes and shapes against the model first (-1, 400). */
int sv_version_submit(sv_version *v, sv_request *r);
/* Frees a finished request's inputs and results (not r itself). */
void sv_request_clear(sv_request *r);

#endif
