/* log.h — ferry serve's structured log: one JSON object per line on stderr, with a request id
 * where there is one, filtered by --log-level. Safe from any thread (one write() per line). */
#ifndef FERRY_SERVE_LOG_H
#define FERRY_SERVE_LOG_H

enum { SV_LOG_DEBUG = 0, SV_LOG_INFO = 1, SV_LOG_WARN = 2, SV_LOG_ERROR = 3 };

/* "debug", "info", "warn", "error" → level; -1 when unknown. */
int sv_log_parse_level(const char *s);
void sv_log_set_level(int level);
/* 1 when lines at level are written (test before building expensive fields). */
int sv_log_enabled(int level);
/* {"ts":..., "level":..., "msg": <formatted>, "request_id": rid (when non-NULL)} */
void sv_log(int level, const char *rid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The per-request access line (debug level): method, path, status, duration, model. */
void sv_log_access(const char *rid, const char *method, const char *url, int status, double seconds,
                   const char *model);

#endif
