/* tensorproto.c — ONNX TensorProto → ferry tensor: raw_data, the typed repeated fields, and
 * external data files (mapped once per model). Everything is bounds-checked: these bytes come
 * from untrusted model files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/model.h"

static const char *tname(const Onnx__TensorProto *tp)
{
    return tp->name && tp->name[0] ? tp->name : "<unnamed>";
}

/* External data must stay beside the model: a relative path without "..". */
static ferry_status check_location(const Onnx__TensorProto *tp, const char *loc)
{
    if (!loc || !loc[0] || loc[0] == '/' || strstr(loc, ".."))
        return fy_error(FERRY_E_PARSE,
                        "tensor \"%s\": external data location \"%s\" must be a relative path "
                        "beside the model",
                        tname(tp), loc ? loc : "");
    return FERRY_OK;
}

static ferry_status map_file(struct ferry_model *m, const char *base, const char *loc,
                             fy_mapping **out)
{
    for (int i = 0; i < m->n_maps; i++)
        if (strcmp(m->maps[i].path, loc) == 0) {
            *out = &m->maps[i];
            return FERRY_OK;
        }
    size_t plen = strlen(base ? base : ".") + strlen(loc) + 2;
    char *path = malloc(plen);
    if (!path) return fy_error(FERRY_E_NOMEM, "out of memory");
    snprintf(path, plen, "%s/%s", base ? base : ".", loc);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        ferry_status rc = fy_error(FERRY_E_IO, "cannot open external data file %s", path);
        free(path);
        return rc;
    }
    struct stat st;
    void *addr = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0)
        addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (!addr || addr == MAP_FAILED) {
        ferry_status rc = fy_error(FERRY_E_IO, "cannot map external data file %s", path);
        free(path);
        return rc;
    }
    free(path);
    fy_mapping *maps = realloc(m->maps, sizeof *maps * (m->n_maps + 1));
    char *key = strdup(loc);
    if (!maps || !key) {
        munmap(addr, (size_t)st.st_size);
        free(key);
        if (maps) m->maps = maps;
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    m->maps = maps;
    m->maps[m->n_maps] = (fy_mapping){addr, (size_t)st.st_size, key};
    *out = &m->maps[m->n_maps++];
    return FERRY_OK;
}

static ferry_status external_bytes(const Onnx__TensorProto *tp, const fy_tensor_source *src,
                                   size_t need, const void **bytes)
{
    const char *loc = NULL;
    uint64_t offset = 0, length = UINT64_MAX;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value) continue;
        if (strcmp(e->key, "location") == 0) loc = e->value;
        else if (strcmp(e->key, "offset") == 0) offset = strtoull(e->value, NULL, 10);
        else if (strcmp(e->key, "length") == 0) length = strtoull(e->value, NULL, 10);
    }
    FY_CHECK(check_location(tp, loc));
    if (!src || !src->model)
        return fy_error(FERRY_E_UNSUPPORTED, "tensor \"%s\": external data outside a model",
                        tname(tp));
    fy_mapping *map = NULL;
    FY_CHECK(map_file(src->model, src->base_dir, loc, &map));
    if (length == UINT64_MAX) length = need;
    if (length != need || offset > map->len || map->len - offset < need)
        return fy_error(FERRY_E_PARSE,
                        "tensor \"%s\": external data (offset %llu, length %llu) does not hold "
                        "the %zu bytes its shape needs in %s (%zu bytes)",
                        tname(tp), (unsigned long long)offset, (unsigned long long)length, need,
                        loc, map->len);
    *bytes = (const char *)map->addr + offset;
    return FERRY_OK;
}

/* Copy n elements from a typed repeated field into t, converting as ONNX prescribes. */
static ferry_status from_typed_fields(const Onnx__TensorProto *tp, fy_value *t)
{
    int64_t n = t->count;
    ferry_dtype dt = t->dtype;
#define NEED(field)                                                                                \
    if ((int64_t)tp->n_##field != n)                                                               \
        return fy_error(FERRY_E_PARSE, "tensor \"%s\": %s has %zu values, shape needs %lld",       \
                        tname(tp), #field, tp->n_##field, (long long)n);
    switch (dt) {
    case FERRY_DTYPE_F32:
        NEED(float_data);
        if (n) memcpy(t->data, tp->float_data, sizeof(float) * n);
        break;
    case FERRY_DTYPE_C64:
        if ((int64_t)tp->n_float_data != 2 * n)
            return fy_error(FERRY_E_PARSE, "tensor \"%s\": float_data size mismatch", tname(tp));
        if (n) memcpy(t->data, tp->float_data, sizeof(float) * 2 * n);
        break;
    case FERRY_DTYPE_F64:
        NEED(double_data);
        if (n) memcpy(t->data, tp->double_data, sizeof(double) * n);
        break;
    case FERRY_DTYPE_C128:
        if ((int64_t)tp->n_double_data != 2 * n)
            return fy_error(FERRY_E_PARSE, "tensor \"%s\": double_data size mismatch", tname(tp));
        if (n) memcpy(t->data, tp->double_data, sizeof(double) * 2 * n);
        break;
    case FERRY_DTYPE_I64:
        NEED(int64_data);
        if (n) memcpy(t->data, tp->int64_data, sizeof(int64_t) * n);
        break;
    case FERRY_DTYPE_U32:
    case FERRY_DTYPE_U64:
        NEED(uint64_data);
        for (int64_t i = 0; i < n; i++) fy_tensor_set_i64(t, i, (int64_t)tp->uint64_data[i]);
        break;
    case FERRY_DTYPE_F16:
    case FERRY_DTYPE_BF16:
        NEED(int32_data);
        for (int64_t i = 0; i < n; i++) ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
        break;
    case FERRY_DTYPE_I32: case FERRY_DTYPE_I16: case FERRY_DTYPE_I8: case FERRY_DTYPE_U16:
    case FERRY_DTYPE_U8: case FERRY_DTYPE_BOOL:
        NEED(int32_data);
        for (int64_t i = 0; i < n; i++) fy_tensor_set_i64(t, i, tp->int32_data[i]);
        break;
    case FERRY_DTYPE_STRING:
        NEED(string_data);
        for (int64_t i = 0; i < n; i++)
            FY_CHECK(ferry_tensor_set_string(t, i, (const char *)tp->string_data[i].data,
                                             tp->string_data[i].len));
        break;
    default:
        return fy_error(FERRY_E_UNSUPPORTED, "tensor \"%s\": dtype %d is not supported", tname(tp),
                        (int)dt);
    }
#undef NEED
    return FERRY_OK;
}

/* Passes that rewrite weights (Conv+BatchNorm folding) replace initializers; the decoded bytes
 * of the old ones go as soon as nothing uses them, instead of staying for the model's life. The
 * proto's field is cleared so that freeing the proto skips it. */
static void free_raw_data(fy_buffer *b)
{
    ProtobufCBinaryData *raw = b->release_ctx;
    free(raw->data);
    raw->data = NULL;
    raw->len = 0;
}

ferry_status fy_tensor_from_proto(const Onnx__TensorProto *tp, const fy_tensor_source *src,
                                  fy_value **out)
{
    *out = NULL;
    ferry_dtype dt = (ferry_dtype)tp->data_type;
    if (ferry_dtype_size(dt) == 0)
        return fy_error(FERRY_E_UNSUPPORTED, "tensor \"%s\": dtype %d is not supported", tname(tp),
                        (int)tp->data_type);
    if (tp->n_dims > FERRY_MAX_RANK)
        return fy_error(FERRY_E_SHAPE, "tensor \"%s\": rank %zu exceeds %d", tname(tp), tp->n_dims,
                        FERRY_MAX_RANK);
    if (tp->segment)
        return fy_error(FERRY_E_UNSUPPORTED, "tensor \"%s\": segmented tensors are not supported",
                        tname(tp));
    int rank = (int)tp->n_dims;
    int64_t count = fy_shape_count(rank, tp->dims);
    if (count < 0)
        return fy_error(FERRY_E_SHAPE, "tensor \"%s\": invalid dims", tname(tp));
    size_t esize = ferry_dtype_size(dt);
    if ((uint64_t)count > SIZE_MAX / 4 / esize)
        return fy_error(FERRY_E_SHAPE, "tensor \"%s\": too many elements", tname(tp));
    size_t need = (size_t)count * esize;
    int external = tp->has_data_location &&
                   tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const void *bytes = NULL;
    if (external) {
        if (dt == FERRY_DTYPE_STRING)
            return fy_error(FERRY_E_UNSUPPORTED, "tensor \"%s\": external string data", tname(tp));
        FY_CHECK(external_bytes(tp, src, need, &bytes));
    } else if (tp->has_raw_data && dt != FERRY_DTYPE_STRING) {
        if (tp->raw_data.len != need)
            return fy_error(FERRY_E_PARSE, "tensor \"%s\": raw_data has %zu bytes, shape needs %zu",
                            tname(tp), tp->raw_data.len, need);
        bytes = tp->raw_data.data;
    }
    /* Weights stay in the model's memory. They hold no reference to the model (which owns
     * them: that would be a cycle); the session copies any that would escape as an output. */
    if (bytes && src && src->model && ((uintptr_t)bytes % 16) == 0) {
        if (bytes == tp->raw_data.data && src->release_raw_data)
            return fy_tensor_borrow_release(dt, rank, tp->dims, (void *)bytes, free_raw_data,
                                            (void *)&tp->raw_data, out);
        return fy_tensor_borrow(dt, rank, tp->dims, (void *)bytes, out);
    }
    FY_CHECK(fy_tensor_new(dt, rank, tp->dims, out));
    ferry_status rc = FERRY_OK;
    if (bytes) {
        if (need) memcpy((*out)->data, bytes, need);
    } else {
        rc = from_typed_fields(tp, *out);
    }
    if (rc != FERRY_OK) {
        fy_value_unref(*out);
        *out = NULL;
    }
    return rc;
}
