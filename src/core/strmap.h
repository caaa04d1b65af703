/* strmap.h — a small string → int hash map (open addressing) for name resolution at load time.
 * Keys are borrowed: they must outlive the map. */
#ifndef FY_CORE_STRMAP_H
#define FY_CORE_STRMAP_H

#include "core/status.h"

typedef struct fy_strmap {
    const char **keys;
    int *vals;
    size_t cap, len;
} fy_strmap;

void fy_strmap_free(fy_strmap *m);
/* Insert or overwrite. */
ferry_status fy_strmap_put(fy_strmap *m, const char *key, int val);
/* Value for key, or -1 when absent. */
int fy_strmap_get(const fy_strmap *m, const char *key);

#endif
