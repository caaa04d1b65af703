/* status.h — errors as values inside libferry: set a message, return a code.
 * The message lives in thread-local storage and is what ferry_last_error() returns. */
#ifndef FY_CORE_STATUS_H
#define FY_CORE_STATUS_H

#include "ferry/ferry.h"

#if defined(__GNUC__)
#define FY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FY_PRINTF(a, b)
#endif

/* Record a printf-style message and return code, so callers write `return fy_error(...)`. */
ferry_status fy_error(ferry_status code, const char *fmt, ...) FY_PRINTF(2, 3);
/* Prefix the current message with "prefix: " (context added while unwinding). Returns code. */
ferry_status fy_error_wrap(ferry_status code, const char *fmt, ...) FY_PRINTF(2, 3);

#define FY_CHECK(expr)                                                                             \
    do {                                                                                           \
        ferry_status fy_check_rc_ = (expr);                                                        \
        if (fy_check_rc_ != FERRY_OK) return fy_check_rc_;                                         \
    } while (0)

#endif
