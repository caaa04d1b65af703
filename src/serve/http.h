/* http.h — ferry serve's HTTP layer: one sv_http per request (body, route captures, response),
 * the route table, JSON error replies, and the suspend/resume bridge to the scheduler so that
 * inference never blocks an HTTP thread. server.c owns the daemon; v2.c, tfs.c and metrics.c
 * supply the handlers. */
#ifndef FERRY_SERVE_HTTP_H
#define FERRY_SERVE_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "serve/json.h"
#include "serve/manager.h"

enum { SV_GET = 1, SV_POST = 2, SV_OTHER = 4 };

/* What server.c shares with the handlers. */
typedef struct sv_server {
    sv_manager *manager;
    size_t max_body;          /* bytes; larger bodies get 413 */
    _Atomic int64_t inflight; /* requests between their first byte and their response */
    _Atomic int draining;     /* SIGTERM received: /v2/health/ready answers 503 */
    _Atomic int loading;      /* the first repository load is under way: models answer 503 */
    double started;           /* CLOCK_MONOTONIC at start */
} sv_server;

/* A handler returns an HTTP status with h->out filled, or SV_ASYNC after sv_http_submit. */
#define SV_ASYNC 0

typedef struct sv_http sv_http;
typedef int (*sv_handler)(sv_http *h);

struct sv_http {
    sv_server *srv;
    struct MHD_Connection *conn;
    int method;
    const char *method_name, *url;
    int route; /* index in the route table, -1 when none matched yet */

    /* Route captures: {m} model, {v} version (0 = not given), {l} label (NULL = not given). */
    char model[256];
    int64_t version;
    char label_buf[128];
    const char *label;

    /* Body. Bodies over srv->max_body set too_large and are not kept. */
    char *body;
    size_t body_len, body_cap;
    int too_large;
    int64_t header_len; /* Inference-Header-Content-Length, -1 when absent */
    double t_start;     /* CLOCK_MONOTONIC */
    double deadline;    /* from X-Request-Timeout-Ms, CLOCK_MONOTONIC; 0 = none */
    char rid[72];       /* request id (X-Request-Id echoed when sane, else generated) */
    sv_arena arena;     /* parse trees and other per-request scratch */

    /* Inference in flight (sv_http_submit). refs: the connection + the scheduler. */
    _Atomic int refs;
    int async; /* 1 while suspended; 2 once done() resumed us */
    sv_request req;
    sv_version *ver;                  /* acquired version, released when the request ends */
    int (*finish)(sv_http *h);        /* renders the answer after done(), on an HTTP thread */
    void *proto;                      /* protocol state between submit and finish (arena memory) */
    int is_infer;                     /* count in ferry_requests_total */
    sv_http *watch_prev, *watch_next; /* on the disconnect watcher's list while suspended */
    int watched;
    int fd;

    /* Response. */
    sv_buf out;
    const char *content_type; /* default application/json */
    int64_t resp_header_len;  /* >= 0: send Inference-Header-Content-Length */
    int retry_after;          /* > 0: send Retry-After (seconds) */
};

/* ---- helpers for handlers ------------------------------------------------------------------ */

/* Writes {"error": "<message>"} into h->out and returns status. */
int sv_http_error(sv_http *h, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Dumps j (stolen) into h->out as compact JSON; returns status. */
int sv_http_json(sv_http *h, int status, json_t *j);
/* Acquires the version the route captures address; on failure fills the error reply and
 * returns NULL with *status set (404/503/400). */
sv_version *sv_http_acquire(sv_http *h, int *status);
/* Suspends the connection and queues h->req (inputs filled by the caller) on v; finish(h) runs
 * on an HTTP thread once the scheduler is done. Takes over v. Returns SV_ASYNC. Handles a full
 * queue (503 + Retry-After) itself. */
int sv_http_submit(sv_http *h, sv_version *v, int (*finish)(sv_http *h));
/* Suspends the connection for work done elsewhere: whoever does it fills h->req.http_status
 * (and error) and calls h->req.done(&h->req); finish(h) then renders on an HTTP thread. */
int sv_http_begin_async(sv_http *h, int (*finish)(sv_http *h));
/* Value of a request header, or NULL. */
const char *sv_http_header(sv_http *h, const char *name);
/* CLOCK_MONOTONIC seconds (scheduler.c). */
double sv_now(void);

/* ---- the daemon side (server.c calls these) ------------------------------------------------ */

/* MHD callbacks: the access handler and the completion notifier. */
enum MHD_Result sv_http_access(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls);
void sv_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                       enum MHD_RequestTerminationCode toe);

/* The disconnect watcher: libmicrohttpd does not watch suspended connections, so a thread polls
 * the sockets of queued requests (every 10 ms while there are any) and sets r->cancelled when
 * the client has gone, letting the scheduler drop the request instead of running it. */
int sv_http_watcher_start(void);
void sv_http_watcher_stop(void);

/* ---- handlers (v2.c, tfs.c, metrics.c) ----------------------------------------------------- */

int sv_v2_health_live(sv_http *h);
int sv_v2_health_ready(sv_http *h);
int sv_v2_server_metadata(sv_http *h);
int sv_v2_model_metadata(sv_http *h);
int sv_v2_model_ready(sv_http *h);
int sv_v2_model_config(sv_http *h);
int sv_v2_model_stats(sv_http *h);
int sv_v2_all_stats(sv_http *h);
int sv_v2_infer(sv_http *h);
int sv_v2_repo_index(sv_http *h);
int sv_v2_repo_load(sv_http *h);
int sv_v2_repo_unload(sv_http *h);
int sv_tfs_status(sv_http *h);
int sv_tfs_metadata(sv_http *h);
int sv_tfs_predict(sv_http *h);
int sv_metrics_handler(sv_http *h);

/* metrics.c: counts one answered request (inference routes only count model labels when the
 * version was found, so unknown names never become label values). */
void sv_metrics_observe(const sv_http *h, int status, double seconds);

#endif
