/* tensor_file.c — reading tensors from files: .npy (via core/npy) and ONNX .pb containers
 * (TensorProto, SequenceProto, OptionalProto as used by the ONNX backend test data). */
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "onnx-data.pb-c.h"
#include "onnx/model.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static ferry_status tensor_from_bytes(const void *data, size_t size, const char *path,
                                      fy_value **out)
{
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, data);
    if (!tp) return fy_error(FERRY_E_PARSE, "%s: not a TensorProto", path);
    ferry_status rc = fy_tensor_from_proto(tp, NULL, out);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

ferry_status ferry_tensor_load(const char *path, ferry_value **out)
{
    if (!path || !out) return fy_error(FERRY_E_INVALID_ARG, "path and out are required");
    *out = NULL;
    void *data;
    size_t size;
    FY_CHECK(fy_read_file(path, &data, &size));
    ferry_status rc;
    if (ends_with(path, ".pb")) rc = tensor_from_bytes(data, size, path, out);
    else rc = fy_npy_parse(data, size, path, out);
    free(data);
    if (rc == FERRY_OK && (*out)->dtype == FERRY_DTYPE_UNDEFINED) rc = FERRY_E_PARSE;
    return rc;
}

static ferry_status from_sequence(const Onnx__SequenceProto *sp, const char *path, fy_value **out);

static ferry_status from_optional(const Onnx__OptionalProto *op, const char *path, fy_value **out)
{
    if (op->tensor_value) return fy_tensor_from_proto(op->tensor_value, NULL, out);
    if (op->sequence_value) return from_sequence(op->sequence_value, path, out);
    return fy_none_new(out);
}

static ferry_status from_sequence(const Onnx__SequenceProto *sp, const char *path, fy_value **out)
{
    if (sp->n_sequence_values || sp->n_optional_values || sp->n_sparse_tensor_values)
        return fy_error(FERRY_E_UNSUPPORTED, "%s: only sequences of tensors are supported", path);
    ferry_dtype elem = FERRY_DTYPE_UNDEFINED;
    if (sp->n_tensor_values) elem = (ferry_dtype)sp->tensor_values[0]->data_type;
    FY_CHECK(fy_sequence_new(elem, out));
    for (size_t i = 0; i < sp->n_tensor_values; i++) {
        fy_value *t;
        ferry_status rc = fy_tensor_from_proto(sp->tensor_values[i], NULL, &t);
        if (rc == FERRY_OK) rc = fy_sequence_push(*out, t);
        if (rc != FERRY_OK) {
            fy_value_unref(*out);
            *out = NULL;
            return rc;
        }
    }
    return FERRY_OK;
}

ferry_status ferry_value_load_pb(const char *path, ferry_value_kind kind, ferry_value **out)
{
    if (!path || !out) return fy_error(FERRY_E_INVALID_ARG, "path and out are required");
    *out = NULL;
    void *data;
    size_t size;
    FY_CHECK(fy_read_file(path, &data, &size));
    ferry_status rc;
    if (kind == FERRY_VALUE_TENSOR) {
        rc = tensor_from_bytes(data, size, path, out);
    } else if (kind == FERRY_VALUE_SEQUENCE) {
        Onnx__SequenceProto *sp = onnx__sequence_proto__unpack(NULL, size, data);
        rc = sp ? from_sequence(sp, path, out) : fy_error(FERRY_E_PARSE, "%s: not a SequenceProto", path);
        if (sp) onnx__sequence_proto__free_unpacked(sp, NULL);
    } else {
        Onnx__OptionalProto *op = onnx__optional_proto__unpack(NULL, size, data);
        rc = op ? from_optional(op, path, out) : fy_error(FERRY_E_PARSE, "%s: not an OptionalProto", path);
        if (op) onnx__optional_proto__free_unpacked(op, NULL);
    }
    free(data);
    return rc;
}
