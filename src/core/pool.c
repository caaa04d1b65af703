/* pool.c — a session's cache of free tensor buffers, matched by exact (64-rounded) size: the
 * shapes of a model repeat from run to run, so exact matches are the common case. A mutex
 * guards the list because a caller may free an output on another thread while a run goes on. */
#include "core/pool.h"

#include <pthread.h>
#include <stdlib.h>

#define POOL_ALIGN 64

typedef struct entry {
    size_t size;
    void *data;
} entry;

struct fy_pool {
    int refcount;
    pthread_mutex_t lock;
    entry *free_list;
    size_t n, cap;
    size_t cached_bytes, max_cached_bytes;
};

static size_t round_size(size_t size) { return (size + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN; }

ferry_status fy_pool_create(size_t max_cached_bytes, fy_pool **out)
{
    fy_pool *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FERRY_E_NOMEM, "out of memory");
    p->refcount = 1;
    p->max_cached_bytes = max_cached_bytes;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return FERRY_OK;
}

void fy_pool_ref(fy_pool *p) { __atomic_add_fetch(&p->refcount, 1, __ATOMIC_RELAXED); }

void fy_pool_unref(fy_pool *p)
{
    if (!p || __atomic_sub_fetch(&p->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (size_t i = 0; i < p->n; i++) free(p->free_list[i].data);
    free(p->free_list);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void *fy_pool_take(fy_pool *p, size_t size)
{
    size = round_size(size ? size : 1);
    pthread_mutex_lock(&p->lock);
    for (size_t i = p->n; i-- > 0;) {
        if (p->free_list[i].size != size) continue;
        void *data = p->free_list[i].data;
        p->free_list[i] = p->free_list[--p->n];
        p->cached_bytes -= size;
        pthread_mutex_unlock(&p->lock);
        return data;
    }
    pthread_mutex_unlock(&p->lock);
    return aligned_alloc(POOL_ALIGN, size);
}

void fy_pool_put(fy_pool *p, void *data, size_t size)
{
    size = round_size(size ? size : 1);
    pthread_mutex_lock(&p->lock);
    if (p->cached_bytes + size > p->max_cached_bytes || p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        entry *grown = p->n == p->cap && cap <= 65536 ? realloc(p->free_list, sizeof *grown * cap) : NULL;
        if (grown) {
            p->free_list = grown;
            p->cap = cap;
        }
        if (p->cached_bytes + size > p->max_cached_bytes || p->n == p->cap) {
            pthread_mutex_unlock(&p->lock);
            free(data);
            return;
        }
    }
    p->free_list[p->n++] = (entry){size, data};
    p->cached_bytes += size;
    pthread_mutex_unlock(&p->lock);
}
