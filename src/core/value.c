/* value.c — creation, sharing and release of tensors, sequences and optionals, plus the
 * shape and element helpers every kernel leans on. */
#include "core/value.h"

#include "core/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FY_ALIGN 64

/* The largest single tensor ferry allocates. Shapes come from untrusted models and requests, so
 * a bound turns "Expand to 1e12 elements" into an error instead of an abort; FERRY_MAX_TENSOR_MB
 * (CMake) sets it. */
#ifndef FY_MAX_TENSOR_MB
#define FY_MAX_TENSOR_MB (64 * 1024)
#endif

static void buffer_release_heap(fy_buffer *b)
{
    if (b->dtype == FERRY_DTYPE_STRING) {
        char **s = b->data;
        for (int64_t i = 0; i < b->count; i++) free(s[i]);
    }
    if (b->pool) fy_pool_put(b->pool, b->data, b->size);
    else free(b->data);
}

/* The headers of pooled tensors (value and buffer) come from the same pool as their bytes, so a
 * session that has run once allocates nothing at all on later runs. A header holds a reference
 * to its pool, which outputs freed after their session need. */
static void *header_take(fy_pool *pool, size_t size)
{
    void *h = pool ? fy_pool_take(pool, size) : malloc(size);
    if (!h) return NULL;
    memset(h, 0, size);
    if (pool) fy_pool_ref(pool);
    return h;
}

static void header_put(fy_pool *pool, void *h, size_t size)
{
    if (!pool) {
        free(h);
        return;
    }
    fy_pool_put(pool, h, size);
    fy_pool_unref(pool);
}

static void buffer_unref(fy_buffer *b)
{
    if (!b || __atomic_sub_fetch(&b->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (b->release) b->release(b);
    header_put(b->pool, b, sizeof *b);
}

int64_t fy_shape_count(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] != 0 && n > INT64_MAX / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

static ferry_status check_shape(int rank, const int64_t *dims, int64_t *count)
{
    if (rank < 0 || rank > FERRY_MAX_RANK)
        return fy_error(FERRY_E_SHAPE, "rank %d is outside 0..%d", rank, FERRY_MAX_RANK);
    *count = fy_shape_count(rank, dims);
    if (*count < 0) {
        char buf[256];
        return fy_error(FERRY_E_SHAPE, "invalid shape %s", fy_shape_str(rank, dims, buf, sizeof buf));
    }
    return FERRY_OK;
}

/* Fill a new tensor value over buffer b (which it takes over). */
static fy_value *tensor_over(fy_value *v, fy_buffer *b, ferry_dtype dtype, int rank,
                             const int64_t *dims, int64_t count)
{
    b->refcount = 1;
    b->dtype = dtype;
    b->count = count;
    v->dtype = dtype;
    v->rank = rank;
    if (rank) memcpy(v->dims, dims, sizeof(int64_t) * rank);
    v->count = count;
    v->data = b->data;
    v->buf = b;
    return v;
}

static fy_value *value_alloc_in(fy_pool *pool, ferry_value_kind kind)
{
    fy_value *v = header_take(pool, sizeof *v);
    if (!v) return NULL;
    v->pool = pool;
    v->refcount = 1;
    v->kind = kind;
    return v;
}

static fy_value *value_alloc(ferry_value_kind kind) { return value_alloc_in(NULL, kind); }

ferry_status fy_tensor_new_pooled(fy_pool *pool, ferry_dtype dtype, int rank,
                                  const int64_t *dims, int zero, fy_value **out)
{
    *out = NULL;
    size_t esize = ferry_dtype_size(dtype);
    if (esize == 0) return fy_error(FERRY_E_DTYPE, "cannot create a tensor of dtype %d", (int)dtype);
    int64_t count;
    FY_CHECK(check_shape(rank, dims, &count));
    if ((uint64_t)count > ((uint64_t)FY_MAX_TENSOR_MB << 20) / esize)
        return fy_error(FERRY_E_NOMEM, "tensor of %lld %s elements exceeds the %d MiB limit",
                        (long long)count, ferry_dtype_name(dtype), FY_MAX_TENSOR_MB);
    size_t nbytes = (size_t)count * esize;
    size_t alloc = (nbytes + FY_ALIGN - 1) / FY_ALIGN * FY_ALIGN;
    if (alloc == 0) alloc = FY_ALIGN;
    if (dtype == FERRY_DTYPE_STRING) pool = NULL; /* strings own per-element memory */
    fy_value *v = value_alloc_in(pool, FERRY_VALUE_TENSOR);
    fy_buffer *b = header_take(pool, sizeof *b);
    void *data = pool ? fy_pool_take(pool, alloc) : aligned_alloc(FY_ALIGN, alloc);
    if (!v || !b || !data) {
        if (v) header_put(pool, v, sizeof *v);
        if (b) header_put(pool, b, sizeof *b);
        if (pool && data) fy_pool_put(pool, data, alloc);
        else free(data);
        return fy_error(FERRY_E_NOMEM, "out of memory allocating %zu bytes", alloc);
    }
    if (zero || dtype == FERRY_DTYPE_STRING) memset(data, 0, alloc);
    if (dtype == FERRY_DTYPE_STRING) {
        char **s = data;
        for (int64_t i = 0; i < count; i++) {
            s[i] = calloc(1, 1);
            if (!s[i]) {
                for (int64_t j = 0; j < i; j++) free(s[j]);
                free(v), free(b), free(data);
                return fy_error(FERRY_E_NOMEM, "out of memory allocating strings");
            }
        }
    }
    b->data = data;
    b->size = alloc;
    b->release = buffer_release_heap;
    b->pool = pool; /* header_take took the reference */
    *out = tensor_over(v, b, dtype, rank, dims, count);
    return FERRY_OK;
}

ferry_status fy_tensor_new(ferry_dtype dtype, int rank, const int64_t *dims, fy_value **out)
{
    return fy_tensor_new_pooled(NULL, dtype, rank, dims, 0, out);
}

ferry_status fy_tensor_zeros(ferry_dtype dtype, int rank, const int64_t *dims, fy_value **out)
{
    return fy_tensor_new_pooled(NULL, dtype, rank, dims, 1, out);
}

ferry_status fy_tensor_view(const fy_value *src, int rank, const int64_t *dims, fy_value **out)
{
    *out = NULL;
    int64_t count;
    FY_CHECK(check_shape(rank, dims, &count));
    if (count != src->count) {
        char a[256], b[256];
        return fy_error(FERRY_E_SHAPE, "cannot view %s as %s: element counts differ",
                        fy_shape_str(src->rank, src->dims, a, sizeof a),
                        fy_shape_str(rank, dims, b, sizeof b));
    }
    fy_value *v = value_alloc_in(src->buf ? src->buf->pool : NULL, FERRY_VALUE_TENSOR);
    if (!v) return fy_error(FERRY_E_NOMEM, "out of memory");
    v->dtype = src->dtype;
    v->rank = rank;
    if (rank) memcpy(v->dims, dims, sizeof(int64_t) * rank);
    v->count = count;
    v->data = src->data;
    v->buf = src->buf;
    if (v->buf) __atomic_add_fetch(&v->buf->refcount, 1, __ATOMIC_RELAXED);
    *out = v;
    return FERRY_OK;
}

ferry_status fy_tensor_clone(const fy_value *src, fy_value **out)
{
    FY_CHECK(fy_tensor_new(src->dtype, src->rank, src->dims, out));
    if (src->dtype == FERRY_DTYPE_STRING) {
        char **d = (*out)->data, *const *s = src->data;
        for (int64_t i = 0; i < src->count; i++) {
            char *c = strdup(s[i] ? s[i] : "");
            if (!c) {
                fy_value_unref(*out);
                *out = NULL;
                return fy_error(FERRY_E_NOMEM, "out of memory copying strings");
            }
            free(d[i]);
            d[i] = c;
        }
    } else if (src->count) {
        memcpy((*out)->data, src->data, (size_t)src->count * ferry_dtype_size(src->dtype));
    }
    return FERRY_OK;
}

ferry_status fy_tensor_borrow(ferry_dtype dtype, int rank, const int64_t *dims, void *data,
                              fy_value **out)
{
    return fy_tensor_borrow_release(dtype, rank, dims, data, NULL, NULL, out);
}

ferry_status fy_tensor_borrow_release(ferry_dtype dtype, int rank, const int64_t *dims,
                                      void *data, void (*release)(fy_buffer *b), void *ctx,
                                      fy_value **out)
{
    *out = NULL;
    int64_t count;
    FY_CHECK(check_shape(rank, dims, &count));
    fy_value *v = value_alloc(FERRY_VALUE_TENSOR);
    fy_buffer *b = calloc(1, sizeof *b);
    if (!v || !b) {
        free(v), free(b);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    b->data = data;
    b->size = (size_t)count * ferry_dtype_size(dtype);
    b->borrowed = 1;
    b->release = release;
    b->release_ctx = ctx;
    *out = tensor_over(v, b, dtype, rank, dims, count);
    return FERRY_OK;
}

ferry_status fy_tensor_scalar_i64(int64_t x, fy_value **out)
{
    FY_CHECK(fy_tensor_new(FERRY_DTYPE_I64, 0, NULL, out));
    *(int64_t *)(*out)->data = x;
    return FERRY_OK;
}

ferry_status fy_sequence_new(ferry_dtype elem, fy_value **out)
{
    *out = value_alloc(FERRY_VALUE_SEQUENCE);
    if (!*out) return fy_error(FERRY_E_NOMEM, "out of memory");
    (*out)->dtype = elem;
    return FERRY_OK;
}

ferry_status fy_sequence_push(fy_value *seq, fy_value *item)
{
    if (seq->seq_len == seq->seq_cap) {
        int64_t cap = seq->seq_cap ? seq->seq_cap * 2 : 4;
        fy_value **items = realloc(seq->items, sizeof *items * cap);
        if (!items) {
            fy_value_unref(item);
            return fy_error(FERRY_E_NOMEM, "out of memory growing a sequence");
        }
        seq->items = items;
        seq->seq_cap = cap;
    }
    seq->items[seq->seq_len++] = item;
    return FERRY_OK;
}

ferry_status fy_none_new(fy_value **out)
{
    *out = value_alloc(FERRY_VALUE_NONE);
    return *out ? FERRY_OK : fy_error(FERRY_E_NOMEM, "out of memory");
}

fy_value *fy_value_ref(fy_value *v)
{
    if (v) __atomic_add_fetch(&v->refcount, 1, __ATOMIC_RELAXED);
    return v;
}

void fy_value_unref(fy_value *v)
{
    if (!v || __atomic_sub_fetch(&v->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    buffer_unref(v->buf);
    if (v->layout && v->layout->release) v->layout->release(v->layout_desc);
    for (int64_t i = 0; i < v->seq_len; i++) fy_value_unref(v->items[i]);
    free(v->items);
    header_put(v->pool, v, sizeof *v);
}

bool fy_shape_equal(int ra, const int64_t *a, int rb, const int64_t *b)
{
    return ra == rb && (ra == 0 || memcmp(a, b, sizeof(int64_t) * ra) == 0);
}

const char *fy_shape_str(int rank, const int64_t *dims, char *buf, size_t size)
{
    size_t at = 0;
    at += snprintf(buf + at, size - at, "[");
    for (int i = 0; i < rank && at < size; i++)
        at += snprintf(buf + at, size - at, i ? ",%lld" : "%lld", (long long)dims[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
    return buf;
}

ferry_status fy_broadcast_shape(int ra, const int64_t *a, int rb, const int64_t *b, int *rank_out,
                                int64_t *dims_out)
{
    int r = ra > rb ? ra : rb;
    for (int i = 0; i < r; i++) {
        int64_t da = i < r - ra ? 1 : a[i - (r - ra)];
        int64_t db = i < r - rb ? 1 : b[i - (r - rb)];
        if (da != db && da != 1 && db != 1) {
            char sa[256], sb[256];
            return fy_error(FERRY_E_SHAPE, "shapes %s and %s do not broadcast",
                            fy_shape_str(ra, a, sa, sizeof sa), fy_shape_str(rb, b, sb, sizeof sb));
        }
        dims_out[i] = da == 1 ? db : da;
    }
    *rank_out = r;
    return FERRY_OK;
}

void fy_broadcast_strides(int rin, const int64_t *din, int rout, const int64_t *dout,
                          int64_t *strides)
{
    int64_t s = 1;
    for (int i = rout - 1; i >= 0; i--) {
        int j = i - (rout - rin);
        if (j < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = (din[j] == 1 && dout[i] != 1) ? 0 : s;
        /* wraps only for empty tensors with huge dims, where no stride is ever used */
        s = (int64_t)((uint64_t)s * (uint64_t)din[j]);
    }
}

double fy_tensor_get_f64(const fy_value *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case FERRY_DTYPE_F32: return ((const float *)d)[i];
    case FERRY_DTYPE_F64: return ((const double *)d)[i];
    case FERRY_DTYPE_F16: return fy_half_to_float(((const uint16_t *)d)[i]);
    case FERRY_DTYPE_BF16: return fy_bf16_to_float(((const uint16_t *)d)[i]);
    case FERRY_DTYPE_I8: return ((const int8_t *)d)[i];
    case FERRY_DTYPE_I16: return ((const int16_t *)d)[i];
    case FERRY_DTYPE_I32: return ((const int32_t *)d)[i];
    case FERRY_DTYPE_I64: return (double)((const int64_t *)d)[i];
    case FERRY_DTYPE_U8: return ((const uint8_t *)d)[i];
    case FERRY_DTYPE_BOOL: return ((const uint8_t *)d)[i] != 0;
    case FERRY_DTYPE_U16: return ((const uint16_t *)d)[i];
    case FERRY_DTYPE_U32: return ((const uint32_t *)d)[i];
    case FERRY_DTYPE_U64: return (double)((const uint64_t *)d)[i];
    default: return 0;
    }
}

int64_t fy_tensor_get_i64(const fy_value *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case FERRY_DTYPE_I8: return ((const int8_t *)d)[i];
    case FERRY_DTYPE_I16: return ((const int16_t *)d)[i];
    case FERRY_DTYPE_I32: return ((const int32_t *)d)[i];
    case FERRY_DTYPE_I64: return ((const int64_t *)d)[i];
    case FERRY_DTYPE_U8: return ((const uint8_t *)d)[i];
    case FERRY_DTYPE_BOOL: return ((const uint8_t *)d)[i] != 0;
    case FERRY_DTYPE_U16: return ((const uint16_t *)d)[i];
    case FERRY_DTYPE_U32: return ((const uint32_t *)d)[i];
    case FERRY_DTYPE_U64: return (int64_t)((const uint64_t *)d)[i];
    default: {
        double x = fy_tensor_get_f64(t, i);
        if (x != x) return 0;
        if (x >= 9.2e18) return INT64_MAX;
        if (x <= -9.2e18) return INT64_MIN;
        return (int64_t)x;
    }
    }
}

void fy_tensor_set_f64(fy_value *t, int64_t i, double v)
{
    void *d = t->data;
    switch (t->dtype) {
    case FERRY_DTYPE_F32: ((float *)d)[i] = (float)v; break;
    case FERRY_DTYPE_F64: ((double *)d)[i] = v; break;
    case FERRY_DTYPE_F16: ((uint16_t *)d)[i] = fy_float_to_half((float)v); break;
    case FERRY_DTYPE_BF16: ((uint16_t *)d)[i] = fy_float_to_bf16((float)v); break;
    case FERRY_DTYPE_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    default: /* out-of-range and NaN conversions are undefined in C: saturate instead */
        fy_tensor_set_i64(t, i, v != v ? 0 : v >= 9.2233720368547748e18 ? INT64_MAX
                                : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v);
        break;
    }
}

void fy_tensor_set_i64(fy_value *t, int64_t i, int64_t v)
{
    void *d = t->data;
    switch (t->dtype) {
    case FERRY_DTYPE_I8: ((int8_t *)d)[i] = (int8_t)v; break;
    case FERRY_DTYPE_I16: ((int16_t *)d)[i] = (int16_t)v; break;
    case FERRY_DTYPE_I32: ((int32_t *)d)[i] = (int32_t)v; break;
    case FERRY_DTYPE_I64: ((int64_t *)d)[i] = v; break;
    case FERRY_DTYPE_U8: ((uint8_t *)d)[i] = (uint8_t)v; break;
    case FERRY_DTYPE_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    case FERRY_DTYPE_U16: ((uint16_t *)d)[i] = (uint16_t)v; break;
    case FERRY_DTYPE_U32: ((uint32_t *)d)[i] = (uint32_t)v; break;
    case FERRY_DTYPE_U64: ((uint64_t *)d)[i] = (uint64_t)v; break;
    default: fy_tensor_set_f64(t, i, (double)v); break;
    }
}
