/* http.c — the request life cycle of ferry serve on libmicrohttpd: body accumulation with a size
 * limit, the route table, one place that turns a status into a reply (JSON error body, request
 * id, Retry-After), and suspend/resume around the scheduler so HTTP threads never wait. */
#define _GNU_SOURCE /* POLLRDHUP */
#include "serve/http.h"

#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/log.h"

/* ---- route table ----------------------------------------------------------------------------
 * Patterns match the whole path; {m}, {v} and {l} capture a model name, a version number and a
 * label (one segment, up to '/' or ':'). The first match wins, so fixed paths come before the
 * captures that would also match them (/v2/models/stats before /v2/models/{m}). */
typedef struct sv_route {
    int method;
    const char *pattern;
    sv_handler fn;
    int infer; /* counts in ferry_requests_total */
} sv_route;

static const sv_route routes[] = {
    {SV_GET, "/v2/health/live", sv_v2_health_live, 0},
    {SV_GET, "/v2/health/ready", sv_v2_health_ready, 0},
    {SV_GET, "/v2", sv_v2_server_metadata, 0},
    {SV_GET, "/v2/", sv_v2_server_metadata, 0},
    {SV_GET, "/v2/models/stats", sv_v2_all_stats, 0},
    {SV_POST, "/v2/repository/index", sv_v2_repo_index, 0},
    {SV_POST, "/v2/repository/models/{m}/load", sv_v2_repo_load, 0},
    {SV_POST, "/v2/repository/models/{m}/unload", sv_v2_repo_unload, 0},
    {SV_GET, "/v2/models/{m}", sv_v2_model_metadata, 0},
    {SV_GET, "/v2/models/{m}/versions/{v}", sv_v2_model_metadata, 0},
    {SV_GET, "/v2/models/{m}/ready", sv_v2_model_ready, 0},
    {SV_GET, "/v2/models/{m}/versions/{v}/ready", sv_v2_model_ready, 0},
    {SV_GET, "/v2/models/{m}/config", sv_v2_model_config, 0},
    {SV_GET, "/v2/models/{m}/versions/{v}/config", sv_v2_model_config, 0},
    {SV_GET, "/v2/models/{m}/stats", sv_v2_model_stats, 0},
    {SV_GET, "/v2/models/{m}/versions/{v}/stats", sv_v2_model_stats, 0},
    {SV_POST, "/v2/models/{m}/infer", sv_v2_infer, 1},
    {SV_POST, "/v2/models/{m}/versions/{v}/infer", sv_v2_infer, 1},
    {SV_GET, "/v1/models/{m}", sv_tfs_status, 0},
    {SV_GET, "/v1/models/{m}/versions/{v}", sv_tfs_status, 0},
    {SV_GET, "/v1/models/{m}/labels/{l}", sv_tfs_status, 0},
    {SV_GET, "/v1/models/{m}/metadata", sv_tfs_metadata, 0},
    {SV_GET, "/v1/models/{m}/versions/{v}/metadata", sv_tfs_metadata, 0},
    {SV_GET, "/v1/models/{m}/labels/{l}/metadata", sv_tfs_metadata, 0},
    {SV_POST, "/v1/models/{m}:predict", sv_tfs_predict, 1},
    {SV_POST, "/v1/models/{m}/versions/{v}:predict", sv_tfs_predict, 1},
    {SV_POST, "/v1/models/{m}/labels/{l}:predict", sv_tfs_predict, 1},
    {SV_GET, "/metrics", sv_metrics_handler, 0},
};
enum { N_ROUTES = (int)(sizeof(routes) / sizeof(routes[0])) };

/* Returns 1 on a full match, filling the captures; -1 when a capture is unusable. */
static int match(const char *pat, const char *url, sv_http *h)
{
    char vbuf[32] = "";
    h->label = NULL;
    h->version = 0;
    h->model[0] = '\0';
    while (*pat) {
        if (pat[0] == '{') {
            char which = pat[1];
            pat += 3;
            const char *s = url;
            while (*url && *url != '/' && *url != ':')
                url++;
            size_t n = (size_t)(url - s);
            if (n == 0) return 0;
            char *dst = which == 'm' ? h->model : which == 'l' ? h->label_buf : vbuf;
            size_t cap = which == 'm'   ? sizeof(h->model)
                         : which == 'l' ? sizeof(h->label_buf)
                                        : sizeof(vbuf);
            if (n >= cap) return *pat == *url || (!*pat && !*url) ? -1 : 0;
            memcpy(dst, s, n);
            dst[n] = '\0';
            if (which == 'l') h->label = h->label_buf;
            continue;
        }
        if (*pat++ != *url++) return 0;
    }
    if (*url) return 0;
    if (vbuf[0]) {
        int64_t v = 0;
        for (const char *p = vbuf; *p; p++) {
            if (*p < '0' || *p > '9' || v > INT64_MAX / 10 - 10) return -1;
            v = v * 10 + (*p - '0');
        }
        if (v <= 0) return -1;
        h->version = v;
    }
    return 1;
}

/* ---- replies ------------------------------------------------------------------------------- */

int sv_http_error(sv_http *h, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    h->out.len = 0;
    h->content_type = "application/json";
    h->resp_header_len = -1;
    sv_buf_puts(&h->out, "{\"error\":");
    sv_buf_json_str(&h->out, msg, strlen(msg));
    sv_buf_putc(&h->out, '}');
    return status;
}

int sv_http_json(sv_http *h, int status, json_t *j)
{
    if (!j) return sv_http_error(h, 500, "out of memory");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return sv_http_error(h, 500, "out of memory");
    h->out.len = 0;
    sv_buf_puts(&h->out, s);
    free(s);
    return status;
}

const char *sv_http_header(sv_http *h, const char *name)
{
    return MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, name);
}

sv_version *sv_http_acquire(sv_http *h, int *status)
{
    if (atomic_load(&h->srv->loading)) {
        *status = sv_http_error(h, 503, "the model repository is still loading");
        return NULL;
    }
    char err[512];
    sv_version *v = sv_manager_acquire(h->srv->manager, h->model, h->version, h->label, status, err,
                                       sizeof(err));
    if (!v) sv_http_error(h, *status, "%s", err);
    return v;
}

static void free_http(sv_http *h)
{
    sv_request_clear(&h->req);
    if (h->ver) sv_version_release(h->ver);
    sv_arena_free(&h->arena);
    free(h->body);
    sv_buf_free(&h->out);
    free(h);
}

static void unref_http(sv_http *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1) free_http(h);
}

/* ---- disconnect watcher -------------------------------------------------------------------- */

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cv = PTHREAD_COND_INITIALIZER;
static sv_http *watch_head;
static int watch_count, watch_running, watch_stop;
static pthread_t watch_thread;

static void watch_add(sv_http *h)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(h->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return;
    pthread_mutex_lock(&watch_mu);
    if (watch_running) {
        h->fd = ci->connect_fd;
        h->watched = 1;
        h->watch_prev = NULL;
        h->watch_next = watch_head;
        if (watch_head) watch_head->watch_prev = h;
        watch_head = h;
        if (watch_count++ == 0) pthread_cond_signal(&watch_cv);
    }
    pthread_mutex_unlock(&watch_mu);
}

/* Called before the connection is resumed or h freed, so the watcher never sees a stale h. */
static void watch_remove(sv_http *h)
{
    pthread_mutex_lock(&watch_mu);
    if (h->watched) {
        if (h->watch_prev)
            h->watch_prev->watch_next = h->watch_next;
        else
            watch_head = h->watch_next;
        if (h->watch_next) h->watch_next->watch_prev = h->watch_prev;
        h->watched = 0;
        watch_count--;
    }
    pthread_mutex_unlock(&watch_mu);
}

static void *watch_main(void *arg)
{
    (void)arg;
    struct pollfd *fds = NULL;
    sv_http **hs = NULL;
    int cap = 0;
    pthread_mutex_lock(&watch_mu);
    while (!watch_stop) {
        if (!watch_count) {
            pthread_cond_wait(&watch_cv, &watch_mu);
            continue;
        }
        if (watch_count > cap) {
            int ncap = watch_count * 2;
            struct pollfd *nf = realloc(fds, sizeof(*fds) * (size_t)ncap);
            if (nf) fds = nf;
            sv_http **nh = realloc(hs, sizeof(*hs) * (size_t)ncap);
            if (nh) hs = nh;
            if (nf && nh) cap = ncap;
        }
        int n = 0;
        for (sv_http *h = watch_head; h && n < cap; h = h->watch_next) {
            fds[n].fd = h->fd;
            fds[n].events = POLLRDHUP;
            fds[n].revents = 0;
            hs[n++] = h;
        }
        /* A zero timeout under the lock: entries cannot leave while we look at them. */
        if (n && poll(fds, (nfds_t)n, 0) > 0) {
            for (int i = 0; i < n; i++)
                if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR))
                    atomic_store(&hs[i]->req.cancelled, 1);
        }
        pthread_mutex_unlock(&watch_mu);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&watch_mu);
    }
    pthread_mutex_unlock(&watch_mu);
    free(fds);
    free(hs);
    return NULL;
}

int sv_http_watcher_start(void)
{
    pthread_mutex_lock(&watch_mu);
    watch_stop = 0;
    int rc = pthread_create(&watch_thread, NULL, watch_main, NULL);
    watch_running = rc == 0;
    pthread_mutex_unlock(&watch_mu);
    return rc == 0 ? 0 : -1;
}

void sv_http_watcher_stop(void)
{
    pthread_mutex_lock(&watch_mu);
    int running = watch_running;
    watch_running = 0;
    watch_stop = 1;
    pthread_cond_signal(&watch_cv);
    pthread_mutex_unlock(&watch_mu);
    if (running) pthread_join(watch_thread, NULL);
}

/* Scheduler thread: the answer is in h->req. Wake the connection; its HTTP thread renders. */
static void on_done(sv_request *r)
{
    sv_http *h = r->ctx;
    watch_remove(h);
    if (atomic_fetch_sub(&h->refs, 1) == 1) {
        free_http(h); /* the connection went away while we were queued */
        return;
    }
    MHD_resume_connection(h->conn);
}

int sv_http_begin_async(sv_http *h, int (*finish)(sv_http *h))
{
    h->finish = finish;
    h->req.ctx = h;
    h->req.done = on_done;
    h->async = 1;
    atomic_fetch_add(&h->refs, 1);
    MHD_suspend_connection(h->conn);
    watch_add(h);
    return SV_ASYNC;
}

int sv_http_submit(sv_http *h, sv_version *v, int (*finish)(sv_http *h))
{
    if (h->ver && h->ver != v) sv_version_release(h->ver);
    h->ver = v;
    if (!h->req.deadline) h->req.deadline = h->deadline;
    /* Suspend before submitting: done() may run on another thread at once, and a resume must
     * never come before its suspend. */
    sv_http_begin_async(h, finish);
    if (sv_version_submit(v, &h->req) != 0) {
        /* Rejected synchronously (queue full or invalid input): done() will not come. */
        watch_remove(h);
        atomic_fetch_sub(&h->refs, 1);
        if (!h->req.http_status || h->req.http_status == 200) h->req.http_status = 503;
        MHD_resume_connection(h->conn);
    }
    return SV_ASYNC;
}

static void fill_request_id(sv_http *h)
{
    const char *given = sv_http_header(h, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        int ok = n > 0 && n < sizeof(h->rid);
        for (size_t i = 0; ok && i < n; i++) {
            char c = given[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        }
        if (ok) {
            memcpy(h->rid, given, n + 1);
            return;
        }
    }
    static _Atomic uint64_t counter;
    static _Atomic uint32_t boot_id;
    uint32_t boot = atomic_load_explicit(&boot_id, memory_order_relaxed);
    if (!boot) {
        boot = ((uint32_t)time(NULL) * 2654435761u) ^ (uint32_t)getpid();
        atomic_store_explicit(&boot_id, boot, memory_order_relaxed);
    }
    uint64_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    snprintf(h->rid, sizeof(h->rid), "%08x-%llx", boot, (unsigned long long)n);
}

static void free_buffer(void *p) { free(p); }

static enum MHD_Result respond(sv_http *h, int status)
{
    if (h->out.oom) {
        sv_buf_free(&h->out);
        status = sv_http_error(h, 500, "out of memory while rendering the answer");
    }
    double seconds = sv_now() - h->t_start;
    size_t len;
    char *body = sv_buf_take(&h->out, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, free_buffer);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            h->content_type ? h->content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", h->rid);
    if (h->resp_header_len >= 0) {
        char tmp[24];
        snprintf(tmp, sizeof(tmp), "%lld", (long long)h->resp_header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", tmp);
    }
    if (h->retry_after > 0 || status == 503) {
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "%d", h->retry_after > 0 ? h->retry_after : 1);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, tmp);
    }
    if (h->too_large || atomic_load(&h->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(h->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    sv_metrics_observe(h, status, seconds);
    if (sv_log_enabled(status >= 500 && status != 503 ? SV_LOG_WARN : SV_LOG_DEBUG))
        sv_log_access(h->rid, h->method_name, h->url, status, seconds, h->model);
    /* The version is no longer needed once the answer is rendered. */
    if (h->ver) {
        sv_version_release(h->ver);
        h->ver = NULL;
    }
    return rc;
}

static int dispatch(sv_http *h)
{
    if (h->too_large)
        return sv_http_error(h, 413,
                             "request body is larger than the limit of %zu bytes "
                             "(ferry serve --max-body-mb)",
                             h->srv->max_body);
    int path_matched = 0;
    for (int i = 0; i < N_ROUTES; i++) {
        int m = match(routes[i].pattern, h->url, h);
        if (m == 0) continue;
        if (m < 0)
            return sv_http_error(h, 400,
                                 "bad path %s: names are limited to 255 bytes and "
                                 "versions are positive integers",
                                 h->url);
        path_matched = 1;
        if (!(routes[i].method & h->method)) continue;
        h->route = i;
        h->is_infer = routes[i].infer;
        return routes[i].fn(h);
    }
    h->model[0] = '\0';
    if (path_matched)
        return sv_http_error(h, 405, "method %s not allowed on %s", h->method_name, h->url);
    return sv_http_error(h, 404, "no endpoint %s %s", h->method_name, h->url);
}

static int parse_timeout(sv_http *h)
{
    const char *t = sv_http_header(h, "X-Request-Timeout-Ms");
    if (!t) return 0;
    char *end;
    double ms = strtod(t, &end);
    if (end == t || *end || !(ms > 0) || ms > 1e9) return -1;
    h->deadline = h->t_start + ms * 1e-3;
    return 0;
}

enum MHD_Result sv_http_access(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    sv_server *srv = cls;
    sv_http *h = *con_cls;
    if (!h) {
        h = calloc(1, sizeof(*h));
        if (!h) return MHD_NO;
        h->srv = srv;
        h->conn = c;
        h->url = url;
        h->method_name = method;
        h->method = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? SV_GET
                    : strcmp(method, "POST") == 0                             ? SV_POST
                                                                              : SV_OTHER;
        h->route = -1;
        h->header_len = -1;
        h->resp_header_len = -1;
        h->t_start = sv_now();
        atomic_init(&h->refs, 1);
        fill_request_id(h);
        *con_cls = h;
        atomic_fetch_add(&srv->inflight, 1);
        if (atomic_load(&srv->draining)) {
            /* SIGTERM: requests already started finish; new ones on kept-alive connections
             * are turned away (and the connection closed) so the daemon can stop with nothing
             * suspended. inflight is raised before this check, so drain() waits for anyone
             * who passed it. */
            h->too_large = 1; /* closes the connection after the answer */
            h->retry_after = 1;
            return respond(h, sv_http_error(h, 503, "server is shutting down"));
        }
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            unsigned long long n = strtoull(cl, NULL, 10);
            if (n > srv->max_body) {
                /* Answer before reading the body; MHD closes the connection after. */
                h->too_large = 1;
                return respond(h, dispatch(h));
            }
            if (n > 0) {
                h->body = malloc((size_t)n + 1);
                if (!h->body) return MHD_NO;
                h->body_cap = (size_t)n + 1;
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (h->too_large) return MHD_YES;
        if (h->body_len + n > srv->max_body) {
            h->too_large = 1;
            return MHD_YES;
        }
        if (h->body_len + n + 1 > h->body_cap) {
            size_t cap = h->body_cap ? h->body_cap : 4096;
            while (cap < h->body_len + n + 1)
                cap *= 2;
            char *p = realloc(h->body, cap);
            if (!p) return MHD_NO;
            h->body = p;
            h->body_cap = cap;
        }
        memcpy(h->body + h->body_len, upload_data, n);
        h->body_len += n;
        return MHD_YES;
    }
    if (h->async == 1) {
        /* Resumed by done() (or by a synchronous rejection): render on this thread. */
        h->async = 2;
        int status;
        if (h->req.http_status && h->req.http_status != 200) {
            if (h->req.http_status == 503) h->retry_after = 1;
            status = sv_http_error(h, h->req.http_status, "%s",
                                   h->req.error[0] ? h->req.error : "inference failed");
        } else {
            status = h->finish(h);
        }
        return respond(h, status);
    }
    if (h->async == 2) return MHD_NO; /* answered already; should not be called again */
    if (h->body) h->body[h->body_len] = '\0';
    if (parse_timeout(h) != 0)
        return respond(h, sv_http_error(h, 400,
                                        "X-Request-Timeout-Ms must be a positive number "
                                        "of milliseconds"));
    int status = dispatch(h);
    if (status == SV_ASYNC) return MHD_YES;
    return respond(h, status);
}

void sv_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                       enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    sv_server *srv = cls;
    sv_http *h = *con_cls;
    if (!h) return;
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
    /* Still queued (the daemon is closing the connection): let the scheduler skip it. */
    if (h->async == 1) atomic_store(&h->req.cancelled, 1);
    unref_http(h);
}
