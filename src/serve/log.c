/* log.c — JSON log lines for ferry serve (see log.h). Each line is formatted into a local
 * buffer and written with one write(2), so lines from concurrent threads never interleave. */
#include "serve/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "serve/json.h"

static _Atomic int g_level = SV_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int sv_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    if (strcmp(s, "warning") == 0) return SV_LOG_WARN;
    return -1;
}

void sv_log_set_level(int level) { atomic_store(&g_level, level); }

int sv_log_enabled(int level)
{
    return level >= atomic_load_explicit(&g_level, memory_order_relaxed);
}

static void begin_line(sv_buf *b, int level)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    sv_buf_printf(b, "{\"ts\":\"%s.%06ldZ\",\"level\":\"%s\"", ts, (long)tv.tv_usec,
                  level_names[level < 0   ? 0
                              : level > 3 ? 3
                                          : level]);
}

static void end_line(sv_buf *b)
{
    sv_buf_puts(b, "}\n");
    if (!b->oom) {
        ssize_t w = write(STDERR_FILENO, b->p, b->len);
        (void)w;
    }
    sv_buf_free(b);
}

void sv_log(int level, const char *rid, const char *fmt, ...)
{
    if (!sv_log_enabled(level)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sv_buf b = {0};
    begin_line(&b, level);
    if (rid) {
        sv_buf_puts(&b, ",\"request_id\":");
        sv_buf_json_str(&b, rid, strlen(rid));
    }
    sv_buf_puts(&b, ",\"msg\":");
    sv_buf_json_str(&b, msg, strlen(msg));
    end_line(&b);
}

void sv_log_access(const char *rid, const char *method, const char *url, int status, double seconds,
                   const char *model)
{
    int level = status >= 500 && status != 503 ? SV_LOG_WARN : SV_LOG_DEBUG;
    if (!sv_log_enabled(level)) return;
    sv_buf b = {0};
    begin_line(&b, level);
    sv_buf_puts(&b, ",\"request_id\":");
    sv_buf_json_str(&b, rid, strlen(rid));
    sv_buf_puts(&b, ",\"msg\":\"request\",\"method\":");
    sv_buf_json_str(&b, method, strlen(method));
    sv_buf_puts(&b, ",\"path\":");
    sv_buf_json_str(&b, url, strlen(url));
    sv_buf_printf(&b, ",\"status\":%d,\"duration_s\":%.6f", status, seconds);
    if (model && *model) {
        sv_buf_puts(&b, ",\"model\":");
        sv_buf_json_str(&b, model, strlen(model));
    }
    end_line(&b);
}
