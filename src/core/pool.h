/* pool.h — recycles tensor storage between the nodes and runs of one session: a buffer whose
 * last reference goes returns here, and the next allocation of the same size takes it back, so
 * after the first run a session allocates no tensor memory at all. */
#ifndef FY_CORE_POOL_H
#define FY_CORE_POOL_H

#include <stddef.h>

#include "core/status.h"

typedef struct fy_pool fy_pool;

/* A pool with one reference (the session's). Buffers taken from it hold a reference each, so
 * outputs that outlive their session are still freed correctly. */
ferry_status fy_pool_create(size_t max_cached_bytes, fy_pool **out);
void fy_pool_ref(fy_pool *p);
/* Drops a reference; the last one frees every cached buffer. */
void fy_pool_unref(fy_pool *p);
/* 64-byte aligned block of at least size bytes (size rounded up to 64), or NULL. */
void *fy_pool_take(fy_pool *p, size_t size);
/* Return a block taken with the same size. */
void fy_pool_put(fy_pool *p, void *data, size_t size);

#endif
