/* value_api.c — the public face of values (ferry_tensor_*, ferry_sequence_*): argument checks
 * around the internal fy_* helpers. */
#include <stdlib.h>
#include <string.h>

#include "core/value.h"

ferry_status ferry_tensor_create(ferry_dtype dtype, int rank, const int64_t *dims, ferry_value **out)
{
    if (!out || (rank > 0 && !dims)) return fy_error(FERRY_E_INVALID_ARG, "dims and out are required");
    return fy_tensor_new(dtype, rank, dims, out);
}

ferry_status ferry_tensor_create_copy(ferry_dtype dtype, int rank, const int64_t *dims,
                                      const void *data, size_t nbytes, ferry_value **out)
{
    if (!out || (rank > 0 && !dims)) return fy_error(FERRY_E_INVALID_ARG, "dims and out are required");
    *out = NULL;
    if (dtype == FERRY_DTYPE_STRING)
        return fy_error(FERRY_E_INVALID_ARG, "string tensors are filled with ferry_tensor_set_string");
    fy_value *t;
    FY_CHECK(fy_tensor_new(dtype, rank, dims, &t));
    size_t want = (size_t)t->count * ferry_dtype_size(dtype);
    if (nbytes != want || (want && !data)) {
        fy_value_unref(t);
        return fy_error(FERRY_E_INVALID_ARG, "tensor needs %zu bytes of data, got %zu", want, nbytes);
    }
    if (want) memcpy(t->data, data, want);
    *out = t;
    return FERRY_OK;
}

ferry_status ferry_tensor_set_string(ferry_value *t, int64_t i, const char *s, size_t len)
{
    if (!t || t->kind != FERRY_VALUE_TENSOR || t->dtype != FERRY_DTYPE_STRING)
        return fy_error(FERRY_E_INVALID_ARG, "not a string tensor");
    if (i < 0 || i >= t->count) return fy_error(FERRY_E_INVALID_ARG, "string index %lld out of range", (long long)i);
    char *c = malloc(len + 1);
    if (!c) return fy_error(FERRY_E_NOMEM, "out of memory");
    if (len) memcpy(c, s, len);
    c[len] = '\0';
    char **slot = (char **)t->data + i;
    free(*slot);
    *slot = c;
    return FERRY_OK;
}

ferry_status ferry_sequence_create(ferry_dtype elem_dtype, ferry_value **out)
{
    if (!out) return fy_error(FERRY_E_INVALID_ARG, "out is NULL");
    return fy_sequence_new(elem_dtype, out);
}

ferry_status ferry_sequence_append(ferry_value *seq, ferry_value *item)
{
    if (!seq || seq->kind != FERRY_VALUE_SEQUENCE || !item || item->kind != FERRY_VALUE_TENSOR) {
        fy_value_unref(item);
        return fy_error(FERRY_E_INVALID_ARG, "append needs a sequence and a tensor");
    }
    return fy_sequence_push(seq, item);
}

ferry_status ferry_none_create(ferry_value **out)
{
    if (!out) return fy_error(FERRY_E_INVALID_ARG, "out is NULL");
    return fy_none_new(out);
}

void ferry_value_free(ferry_value *v) { fy_value_unref(v); }

ferry_value_kind ferry_value_get_kind(const ferry_value *v) { return v->kind; }
ferry_dtype ferry_tensor_dtype(const ferry_value *t) { return t->dtype; }
int ferry_tensor_rank(const ferry_value *t) { return t->rank; }
const int64_t *ferry_tensor_dims(const ferry_value *t) { return t->dims; }
int64_t ferry_tensor_count(const ferry_value *t) { return t->count; }
size_t ferry_tensor_nbytes(const ferry_value *t) { return (size_t)t->count * ferry_dtype_size(t->dtype); }
void *ferry_tensor_data(ferry_value *t) { return t->data; }
const void *ferry_tensor_cdata(const ferry_value *t) { return t->data; }
ferry_dtype ferry_sequence_dtype(const ferry_value *seq) { return seq->dtype; }
int64_t ferry_sequence_length(const ferry_value *seq) { return seq->seq_len; }

const ferry_value *ferry_sequence_at(const ferry_value *seq, int64_t i)
{
    return seq && i >= 0 && i < seq->seq_len ? seq->items[i] : NULL;
}
