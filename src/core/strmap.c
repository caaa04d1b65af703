/* strmap.c — open-addressing string map with FNV-1a hashing; grows at half load. */
#include "core/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void fy_strmap_free(fy_strmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static ferry_status grow(fy_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    fy_strmap n = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(int)), cap, 0};
    if (!n.keys || !n.vals) {
        free(n.keys), free(n.vals);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) fy_strmap_put(&n, m->keys[i], m->vals[i]);
    fy_strmap_free(m);
    *m = n;
    return FERRY_OK;
}

ferry_status fy_strmap_put(fy_strmap *m, const char *key, int val)
{
    if ((m->len + 1) * 2 > m->cap) FY_CHECK(grow(m));
    size_t i = hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) m->len++;
    m->keys[i] = key;
    m->vals[i] = val;
    return FERRY_OK;
}

int fy_strmap_get(const fy_strmap *m, const char *key)
{
    if (!m->cap) return -1;
    size_t i = hash(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}
