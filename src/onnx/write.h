/* write.h — ferry IR → ONNX ModelProto file: the inverse of load.c, used by `ferry optimize`
 * (and ferry_model_save) so every rewritten model is a standard ONNX file again. */
#ifndef FY_ONNX_WRITE_H
#define FY_ONNX_WRITE_H

#include <stddef.h>

#include "onnx/model.h"

typedef struct fy_write_options {
    /* 1: tensors of at least external_min bytes go to "<file name>.data" beside the model;
     * 0: only when the weights would not fit a protobuf message (2 GB) */
    int external_data;
    size_t external_min; /* 0: 1024 bytes, as onnx.save_model does */
    int64_t inline_max;  /* weights above this many bytes force external data; 0: 1.8 GB */
    /* metadata_props to add (replacing entries of the same key the model already has) */
    int n_meta;
    const char *const *meta_keys;
    const char *const *meta_values;
} fy_write_options;

/* Serialize m (its IR, with the model-level fields of the file it came from) to path. The file
 * is written beside path under a temporary name and renamed, so a reader never sees half of it. */
ferry_status fy_onnx_write(const struct ferry_model *m, const char *path,
                           const fy_write_options *o);

#endif
