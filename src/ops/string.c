/* string.c — text ops: StringNormalizer (stopword removal and case change, with a simple
 * Unicode case mapping instead of a locale database) and TfIdfVectorizer (n-gram counting). */
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* ---- UTF-8 and case mapping ---- */

/* Decode one code point at s (NUL-terminated); *len gets its byte length. Malformed bytes
 * decode as themselves with length 1, so they are copied through unchanged. */
static uint32_t utf8_decode(const unsigned char *s, int *len)
{
    uint32_t c = s[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n <= 1) {
        *len = 1;
        return c;
    }
    uint32_t cp = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *len = 1;
        return c;
    }
    *len = n;
    return cp;
}

static int utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Simple one-to-one case mapping for the common alphabets (Latin, Greek, Cyrillic, Armenian,
 * fullwidth Latin); other code points map to themselves. */
static uint32_t to_lower(uint32_t c)
{
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
        (c >= 0x410 && c <= 0x42F))
        return c + 32;
    if ((c >= 0x100 && c <= 0x137 && c != 0x130) || (c >= 0x14A && c <= 0x177) ||
        (c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF))
        return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
    if (c == 0x178) return 0xFF;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
    return c;
}

static uint32_t to_upper(uint32_t c)
{
    if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) ||
        (c >= 0x430 && c <= 0x44F))
        return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if ((c >= 0x100 && c <= 0x137 && c != 0x131) || (c >= 0x14A && c <= 0x177) ||
        (c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF))
        return c & ~1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
    if (c == 0xFF) return 0x178;
    if (c == 0x3AC) return 0x386;
    if (c >= 0x3AD && c <= 0x3AF) return c - 37;
    if (c == 0x3CC) return 0x38C;
    if (c == 0x3CD || c == 0x3CE) return c - 63;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    if (c >= 0x561 && c <= 0x586) return c - 48;
    if (c >= 0xFF41 && c <= 0xFF5A) return c - 32;
    return c;
}

/* A malloc'd copy of s in lower (upper = 0) or upper case; NULL when out of memory. Mapped
 * code points stay within their UTF-8 length class, except a few that this table never maps
 * across (checked by allocating 4 bytes per input byte, the worst case). */
static char *change_case(const char *s, int upper)
{
    size_t n = strlen(s);
    char *out = malloc(4 * n + 1);
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        int len;
        uint32_t c = utf8_decode(p, &len);
        if (len == 1 && c >= 0x80) {
            out[o++] = (char)*p; /* malformed byte: copied as is */
        } else {
            uint32_t m = upper ? to_upper(c) : to_lower(c);
            o += (size_t)utf8_encode(m, out + o);
        }
        p += len;
    }
    out[o] = '\0';
    return out;
}

/* ---- StringNormalizer ---- */

ferry_status fy_op_StringNormalizer(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_STRING, FERRY_DTYPE_UNDEFINED));
    if (!(x->rank == 1 || (x->rank == 2 && x->dims[0] == 1)))
        return fy_kernel_error(k, FERRY_E_SHAPE, "input must be [C] or [1, C], has rank %d%s",
                               x->rank, x->rank == 2 ? " with a first dim other than 1" : "");
    const char *action = fy_attr_string(k, "case_change_action", "NONE");
    int mode; /* 0 none, 1 lower, 2 upper */
    if (strcmp(action, "NONE") == 0)
        mode = 0;
    else if (strcmp(action, "LOWER") == 0)
        mode = 1;
    else if (strcmp(action, "UPPER") == 0)
        mode = 2;
    else
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "case_change_action \"%s\" is not one of "
                               "NONE, LOWER, UPPER",
                               action);
    int sensitive = fy_attr_int(k, "is_case_sensitive", 0) != 0;
    const fy_attr *sw = fy_attr_get(k, "stopwords");
    int64_t n_stop = sw && sw->type == FY_ATTR_STRINGS ? sw->n : 0;
    const char *const *x_s = (const char *const *)x->data;
    int64_t n = x->count;

    ferry_status rc = FERRY_OK;
    char **stop = calloc((size_t)n_stop + 1, sizeof *stop); /* lowered when insensitive */
    uint8_t *keep = calloc((size_t)n + 1, 1);
    if (!stop || !keep) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n_stop; i++)
        if (!(stop[i] = sensitive ? strdup(sw->strings[i]) : change_case(sw->strings[i], 0))) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        char *low = sensitive ? NULL : change_case(x_s[i], 0);
        if (!sensitive && !low) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        const char *cmp = sensitive ? x_s[i] : low;
        int hit = 0;
        for (int64_t j = 0; j < n_stop && !hit; j++)
            hit = strcmp(cmp, stop[j]) == 0;
        free(low);
        keep[i] = !hit;
        kept += !hit;
    }
    int64_t dims[2] = {1, kept ? kept : 1};
    fy_value *out;
    if (x->rank == 1) dims[0] = dims[1];
    if ((rc = fy_output(k, 0, FERRY_DTYPE_STRING, x->rank, dims, &out)) != FERRY_OK) goto out;
    /* an empty result is one empty string (out already holds "") */
    for (int64_t i = 0, o = 0; i < n; i++) {
        if (!keep[i]) continue;
        if (mode == 0) {
            rc = ferry_tensor_set_string(out, o, x_s[i], strlen(x_s[i]));
        } else {
            char *c = change_case(x_s[i], mode == 2);
            rc = c ? ferry_tensor_set_string(out, o, c, strlen(c))
                   : fy_error(FERRY_E_NOMEM, "out of memory");
            free(c);
        }
        if (rc != FERRY_OK) goto out;
        o++;
    }
out:
    if (stop)
        for (int64_t i = 0; i < n_stop; i++)
            free(stop[i]);
    free(stop);
    free(keep);
    return rc;
}

/* ---- TfIdfVectorizer ---- */

/* The n-grams of one length, as indexes into the (integer) pool, sorted for binary search. */
typedef struct gram_group {
    int n;            /* items per n-gram */
    int64_t start;    /* first pool entry */
    int64_t count;    /* n-grams in the group */
    int64_t ordinal0; /* ordinal of the group's first n-gram (indexes ngram_indexes) */
    int64_t *order;   /* n-gram numbers within the group, sorted by content */
} gram_group;

static int gram_cmp(const int64_t *a, const int64_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

/* Merge sort of a group's n-gram numbers by content (qsort has no context argument in C11). */
static void sort_group(const int64_t *pool, const gram_group *g, int64_t *v, int64_t *tmp,
                       int64_t len)
{
    if (len < 2) return;
    int64_t h = len / 2;
    sort_group(pool, g, v, tmp, h);
    sort_group(pool, g, v + h, tmp, len - h);
    int64_t i = 0, j = h, o = 0;
    while (i < h && j < len) {
        const int64_t *a = pool + g->start + v[i] * g->n, *b = pool + g->start + v[j] * g->n;
        tmp[o++] = gram_cmp(b, a, g->n) < 0 ? v[j++] : v[i++];
    }
    while (i < h)
        tmp[o++] = v[i++];
    while (j < len)
        tmp[o++] = v[j++];
    memcpy(v, tmp, sizeof(int64_t) * (size_t)len);
}

/* Ordinal of the n-gram key in group g, or -1. */
static int64_t group_find(const int64_t *pool, const gram_group *g, const int64_t *key)
{
    int64_t lo = 0, hi = g->count;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = gram_cmp(pool + g->start + g->order[mid] * g->n, key, g->n);
        if (c == 0) return g->ordinal0 + g->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* id of s among the sorted distinct pool strings, or -1 */
static int64_t string_id(char **sorted, int64_t n, const char *s)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid], s);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

ferry_status fy_op_TfIdfVectorizer(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_check_dtype(k, 0, x, FERRY_DTYPE_STRING, FERRY_DTYPE_I32, FERRY_DTYPE_I64,
                            FERRY_DTYPE_UNDEFINED));
    if (x->rank != 1 && x->rank != 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input must be [C] or [N, C], has rank %d",
                               x->rank);
    int64_t min_n = fy_attr_int(k, "min_gram_length", 0);
    int64_t max_n = fy_attr_int(k, "max_gram_length", 0);
    int64_t max_skip = fy_attr_int(k, "max_skip_count", 0);
    const char *mode_s = fy_attr_string(k, "mode", "");
    int mode; /* 0 TF, 1 IDF, 2 TFIDF */
    if (strcmp(mode_s, "TF") == 0)
        mode = 0;
    else if (strcmp(mode_s, "IDF") == 0)
        mode = 1;
    else if (strcmp(mode_s, "TFIDF") == 0)
        mode = 2;
    else
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "mode \"%s\" is not TF, IDF or TFIDF",
                               mode_s);
    if (min_n < 1 || max_n < min_n || max_skip < 0)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "need 1 <= min_gram_length <= max_gram_length and "
                               "max_skip_count >= 0, got %lld, %lld, %lld",
                               (long long)min_n, (long long)max_n, (long long)max_skip);
    const int64_t *counts, *indexes;
    const float *weights;
    int64_t n_groups = fy_attr_ints(k, "ngram_counts", &counts);
    int64_t n_indexes = fy_attr_ints(k, "ngram_indexes", &indexes);
    int64_t n_weights = fy_attr_floats(k, "weights", &weights);
    if (n_groups < 0 || n_indexes < 0)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "attributes \"ngram_counts\" and \"ngram_indexes\" are required");
    const fy_attr *ps = fy_attr_get(k, "pool_strings");
    const int64_t *pool_i = NULL;
    int64_t pool_n = fy_attr_ints(k, "pool_int64s", &pool_i);
    int strings = x->dtype == FERRY_DTYPE_STRING;
    if (strings ? !(ps && ps->type == FY_ATTR_STRINGS) : pool_n < 0)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "%s input needs attribute \"%s\"",
                               strings ? "a string" : "an integer",
                               strings ? "pool_strings" : "pool_int64s");
    if (strings) pool_n = ps->n;

    int64_t out_size = 0;
    for (int64_t i = 0; i < n_indexes; i++) {
        if (indexes[i] < 0 || indexes[i] >= INT32_MAX)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "ngram_indexes[%lld] = %lld is invalid",
                                   (long long)i, (long long)indexes[i]);
        if (indexes[i] + 1 > out_size) out_size = indexes[i] + 1;
    }
    if (n_weights >= 0 && n_weights < out_size)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "weights has %lld values, the output has %lld columns",
                               (long long)n_weights, (long long)out_size);

    ferry_status rc = FERRY_OK;
    /* groups longer than max_gram_length never match; keep the ones that can */
    int64_t n_use = n_groups < max_n ? n_groups : max_n;
    gram_group *groups = calloc((size_t)n_use + 1, sizeof *groups);
    int64_t *pool = NULL, *tmp = NULL, *key = NULL, *row = NULL;
    char **sorted = NULL;
    int64_t n_sorted = 0;
    float *freq = NULL;
    if (!groups) return fy_error(FERRY_E_NOMEM, "out of memory");
    int64_t ordinal = 0;
    for (int64_t i = 0; i < n_groups; i++) {
        int64_t start = counts[i], end = i + 1 < n_groups ? counts[i + 1] : pool_n;
        if (start < 0 || end < start || end > pool_n || (end - start) % (i + 1) != 0) {
            rc = fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                 "ngram_counts[%lld] does not split the pool of %lld into "
                                 "%lld-grams",
                                 (long long)i, (long long)pool_n, (long long)i + 1);
            goto out;
        }
        if (i < n_use) {
            groups[i].n = (int)(i + 1);
            groups[i].start = start;
            groups[i].count = (end - start) / (i + 1);
            groups[i].ordinal0 = ordinal;
        }
        ordinal += (end - start) / (i + 1);
    }
    if (ordinal > n_indexes) {
        rc = fy_kernel_error(k, FERRY_E_INVALID_ARG,
                             "the pool holds %lld n-grams, ngram_indexes has %lld entries",
                             (long long)ordinal, (long long)n_indexes);
        goto out;
    }

    /* the pool as integers; strings become ids into their sorted distinct list */
    pool = malloc(sizeof(int64_t) * ((size_t)pool_n + 1));
    tmp = malloc(sizeof(int64_t) * ((size_t)pool_n + 1));
    key = malloc(sizeof(int64_t) * ((size_t)n_use + 1));
    row = malloc(sizeof(int64_t) * ((size_t)(x->rank ? x->dims[x->rank - 1] : 1) + 1));
    if (!pool || !tmp || !key || !row) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    if (strings) {
        sorted = malloc(sizeof(char *) * ((size_t)pool_n + 1));
        if (!sorted) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        memcpy(sorted, ps->strings, sizeof(char *) * (size_t)pool_n);
        qsort(sorted, (size_t)pool_n, sizeof(char *), str_ptr_cmp);
        for (int64_t i = 0; i < pool_n; i++)
            if (n_sorted == 0 || strcmp(sorted[n_sorted - 1], sorted[i]) != 0)
                sorted[n_sorted++] = sorted[i];
        for (int64_t i = 0; i < pool_n; i++)
            pool[i] = string_id(sorted, n_sorted, ps->strings[i]);
    } else if (pool_n) {
        memcpy(pool, pool_i, sizeof(int64_t) * (size_t)pool_n);
    }
    for (int64_t i = 0; i < n_use; i++) {
        gram_group *g = &groups[i];
        if (!(g->order = malloc(sizeof(int64_t) * ((size_t)g->count + 1)))) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        for (int64_t j = 0; j < g->count; j++)
            g->order[j] = j;
        sort_group(pool, g, g->order, tmp, g->count);
    }

    int64_t n_rows = x->rank == 2 ? x->dims[0] : 1, c = x->dims[x->rank - 1];
    /* a skip distance of c or more fits no n-gram longer than 1 into a row */
    int64_t d_max = max_skip < c ? max_skip + 1 : c;
    int64_t dims[2] = {n_rows, out_size};
    fy_value *out;
    if ((rc = fy_output_zeros(k, 0, FERRY_DTYPE_F32, x->rank, x->rank == 2 ? dims : dims + 1,
                              &out)) != FERRY_OK)
        goto out;
    freq = calloc((size_t)out_size + 1, sizeof *freq);
    if (!freq) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < c; i++)
            row[i] = strings ? string_id(sorted, n_sorted, ((char *const *)x->data)[r * c + i])
                             : fy_tensor_get_i64(x, r * c + i);
        memset(freq, 0, sizeof(float) * (size_t)out_size);
        /* unigrams do not depend on the skip distance: count them on the first pass only */
        int64_t from = min_n;
        for (int64_t d = 1; d <= d_max && from <= n_use; d++) {
            for (int64_t s = 0; s < c; s++) {
                for (int64_t n = from; n <= n_use; n++) {
                    if ((n - 1) * d > c - 1 - s) break;
                    for (int64_t j = 0; j < n; j++)
                        key[j] = row[s + j * d];
                    int64_t o = group_find(pool, &groups[n - 1], key);
                    if (o >= 0) freq[indexes[o]] += 1;
                }
            }
            if (from == 1) from = 2;
        }
        float *dst = (float *)out->data + r * out_size;
        for (int64_t j = 0; j < out_size; j++) {
            float w = n_weights >= 0 ? weights[j] : 1.0f;
            dst[j] = mode == 0 ? freq[j] : mode == 1 ? (freq[j] > 0 ? w : 0) : freq[j] * w;
        }
    }
out:
    for (int64_t i = 0; i < n_use; i++)
        free(groups[i].order);
    free(groups);
    free(pool);
    free(tmp);
    free(key);
    free(row);
    free(sorted);
    free(freq);
    return rc;
}
