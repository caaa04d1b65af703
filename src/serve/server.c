/* server.c — ferry_serve_run: options and config file, the libmicrohttpd daemon (epoll thread
 * pool, keep-alive, connection limits), and the signal loop (SIGHUP rescans, SIGTERM drains).
 * Request handling lives in http.c; models in the manager (manager.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"
#include "ferry/serve.h"
#include "serve/http.h"
#include "serve/log.h"

enum { DRAIN_SECONDS = 30, CONNECTION_LIMIT = 4096, IDLE_TIMEOUT_SECONDS = 120 };

/* Fills the options the command line left unset from the JSON config file. Strings point into
 * *root, which the caller frees after the server stops. */
static ferry_status apply_config(ferry_serve_options *o, json_t **root)
{
    json_error_t jerr;
    json_t *j = json_load_file(o->config, 0, &jerr);
    if (!j)
        return fy_error(FERRY_E_PARSE, "config %s: line %d: %s", o->config, jerr.line, jerr.text);
    *root = j;
    if (!json_is_object(j))
        return fy_error(FERRY_E_PARSE, "config %s: expected a JSON object", o->config);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        int is_str = json_is_string(v), is_num = json_is_number(v);
        if (!strcmp(key, "repo") && is_str) {
            if (!o->repo) o->repo = json_string_value(v);
        } else if (!strcmp(key, "host") && is_str) {
            if (!o->host) o->host = json_string_value(v);
        } else if (!strcmp(key, "log_level") && is_str) {
            if (!o->log_level) o->log_level = json_string_value(v);
        } else if (!strcmp(key, "port") && json_is_integer(v)) {
            if (!o->port) o->port = (int)json_integer_value(v);
        } else if (!strcmp(key, "threads") && json_is_integer(v)) {
            if (!o->threads) o->threads = (int)json_integer_value(v);
        } else if (!strcmp(key, "session_threads") && json_is_integer(v)) {
            if (!o->session_threads) o->session_threads = (int)json_integer_value(v);
        } else if (!strcmp(key, "max_body_mb") && is_num) {
            if (!o->max_body_mb) o->max_body_mb = json_number_value(v);
        } else if (!strcmp(key, "poll_seconds") && is_num) {
            if (!o->poll_seconds) o->poll_seconds = json_number_value(v);
        } else {
            return fy_error(FERRY_E_PARSE, "config %s: unknown key or wrong type: \"%s\"",
                            o->config, key);
        }
    }
    return FERRY_OK;
}

static ferry_status check_options(ferry_serve_options *o, int *level)
{
    if (!o->repo) o->repo = o->default_repo;
    if (!o->repo) return fy_error(FERRY_E_INVALID_ARG, "no model repository given (--repo DIR)");
    struct stat st;
    if (stat(o->repo, &st) != 0 || !S_ISDIR(st.st_mode))
        return fy_error(FERRY_E_IO, "model repository %s is not a directory", o->repo);
    if (!o->host) o->host = "127.0.0.1";
    if (!o->port) o->port = 8000;
    if (o->port < 1 || o->port > 65535)
        return fy_error(FERRY_E_INVALID_ARG, "port %d is out of range", o->port);
    if (!o->threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = n > 0 ? (int)n : 2;
    }
    if (o->threads < 1 || o->threads > 256)
        return fy_error(FERRY_E_INVALID_ARG, "threads must be 1..256, not %d", o->threads);
    if (!o->log_level) o->log_level = "info";
    *level = sv_log_parse_level(o->log_level);
    if (*level < 0)
        return fy_error(FERRY_E_INVALID_ARG, "log level \"%s\" is not debug, info, warn or error",
                        o->log_level);
    if (!o->max_body_mb) o->max_body_mb = 64;
    if (!(o->max_body_mb > 0) || o->max_body_mb > 4096)
        return fy_error(FERRY_E_INVALID_ARG, "max body must be in (0, 4096] MB");
    if (!o->poll_seconds) o->poll_seconds = 2;
    if (o->session_threads < 0)
        return fy_error(FERRY_E_INVALID_ARG, "session threads must be >= 0");
    return FERRY_OK;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    sv_log(SV_LOG_WARN, NULL, "http: %s", msg);
}

/* The model manager's messages (loads, failures, swaps) become JSON log lines too. */
static void manager_log(void *ctx, const char *level, const char *msg)
{
    (void)ctx;
    int l = sv_log_parse_level(level);
    sv_log(l < 0 ? SV_LOG_INFO : l, NULL, "%s", msg);
}

static struct MHD_Daemon *start_daemon(sv_server *srv, const ferry_serve_options *o)
{
    struct sockaddr_in sa4;
    struct sockaddr_in6 sa6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
    memset(&sa4, 0, sizeof(sa4));
    memset(&sa6, 0, sizeof(sa6));
    if (inet_pton(AF_INET, host, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, host, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&sa6;
        flags |= MHD_USE_IPv6;
    } else {
        fy_error(FERRY_E_INVALID_ARG, "host \"%s\" is not an IPv4 or IPv6 address", o->host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, sv_http_access, srv, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, sv_http_completed, srv,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_SECONDS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        1024u, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_END);
    if (!d)
        fy_error(FERRY_E_IO,
                 "could not listen on %s port %d (in use, or not an address of this "
                 "machine?)",
                 o->host, o->port);
    return d;
}

/* SIGTERM: stop accepting, let the requests in flight finish (bounded), then stop. Returns 0, or
 * -1 when requests are still running after the limit: libmicrohttpd cannot stop with suspended
 * connections, so the daemon (and the models they use) are then left to the process exit. */
static int drain(sv_server *srv, struct MHD_Daemon *d)
{
    atomic_store(&srv->draining, 1);
    MHD_socket fd = MHD_quiesce_daemon(d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    double until = sv_now() + DRAIN_SECONDS;
    while (atomic_load(&srv->inflight) > 0 && sv_now() < until) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int64_t left = atomic_load(&srv->inflight);
    if (left > 0) {
        sv_log(SV_LOG_WARN, NULL, "%lld requests still in flight after %d s; exiting without them",
               (long long)left, DRAIN_SECONDS);
        return -1;
    }
    MHD_stop_daemon(d);
    return 0;
}

ferry_status ferry_serve_run(const ferry_serve_options *opts)
{
    if (!opts) return fy_error(FERRY_E_INVALID_ARG, "options are required");
    ferry_serve_options o = *opts;
    json_t *config_root = NULL;
    sv_server *srv = NULL;
    struct MHD_Daemon *d = NULL;
    ferry_status rc = FERRY_OK;
    int level = SV_LOG_INFO;
    if (o.config && (rc = apply_config(&o, &config_root)) != FERRY_OK) goto out;
    if ((rc = check_options(&o, &level)) != FERRY_OK) goto out;
    sv_log_set_level(level);

    /* Signals are taken synchronously by this thread; every thread started from here on
     * inherits the mask, so none of them is interrupted. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv = calloc(1, sizeof(*srv));
    if (!srv) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    srv->max_body = (size_t)(o.max_body_mb * 1024 * 1024);
    srv->started = sv_now();
    sv_manager_options mo = {.repo = o.repo,
                             .poll_seconds = o.poll_seconds > 0 ? o.poll_seconds : 0,
                             .session_threads = o.session_threads};
    if ((rc = sv_manager_create(&mo, &srv->manager)) != FERRY_OK) goto out;
    sv_manager_set_logger(srv->manager, manager_log, NULL);
    if (sv_http_watcher_start() != 0) {
        rc = fy_error(FERRY_E_INTERNAL, "could not start the disconnect watcher thread");
        goto out;
    }
    /* Listen first: a port in use fails at once, and /v2/health/live answers while models load
     * (readiness and model endpoints say 503 until then, and nothing is suspended). */
    atomic_store(&srv->loading, 1);
    d = start_daemon(srv, &o);
    if (!d) {
        rc = FERRY_E_IO;
        goto out;
    }
    sv_log(SV_LOG_INFO, NULL,
           "listening on http://%s:%d (%d HTTP threads); loading the model "
           "repository %s",
           o.host, o.port, o.threads, o.repo);
    if ((rc = sv_manager_start(srv->manager)) != FERRY_OK) goto out;
    atomic_store(&srv->loading, 0);
    sv_log(SV_LOG_INFO, NULL, "%s",
           sv_manager_ready(srv->manager) ? "ready: every model has a version serving"
                                          : "serving, but some models have no loadable version");
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            sv_log(SV_LOG_INFO, NULL, "SIGHUP: rescanning the model repository");
            sv_manager_rescan(srv->manager);
            continue;
        }
        sv_log(SV_LOG_INFO, NULL, "%s: draining %lld requests in flight, then stopping",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)atomic_load(&srv->inflight));
        break;
    }
    if (drain(srv, d) != 0) {
        json_decref(config_root);
        return FERRY_OK;
    }
    d = NULL;
out:
    if (d) MHD_stop_daemon(d);
    sv_http_watcher_stop();
    if (srv) {
        if (srv->manager) sv_manager_free(srv->manager);
        free(srv);
    }
    if (rc == FERRY_OK) sv_log(SV_LOG_INFO, NULL, "stopped");
    json_decref(config_root);
    return rc;
}
