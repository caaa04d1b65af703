/* status.c — the thread-local error message behind ferry_last_error and fy_error.
 * One buffer per thread so concurrent sessions do not overwrite each other's messages. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[4096];

const char *ferry_last_error(void) { return last_error; }

void ferry_clear_error(void) { last_error[0] = '\0'; }

ferry_status fy_error(ferry_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

ferry_status fy_error_wrap(ferry_status code, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = sizeof last_error - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = '\0';
    return code;
}

const char *ferry_status_name(ferry_status s)
{
    static const char *const names[] = {
        "FERRY_OK",    "FERRY_E_INVALID_ARG", "FERRY_E_PARSE", "FERRY_E_UNSUPPORTED", "FERRY_E_SHAPE",
        "FERRY_E_DTYPE", "FERRY_E_IO",        "FERRY_E_NOMEM", "FERRY_E_INTERNAL",
    };
    if ((unsigned)s < sizeof names / sizeof names[0]) return names[s];
    return "FERRY_E_UNKNOWN";
}
