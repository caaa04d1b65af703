/* model.h — the loaded model behind ferry_model: the decoded protobuf (which owns the raw
 * weight bytes that initializers borrow), mapped external-data files, and ferry's IR. */
#ifndef FY_ONNX_MODEL_H
#define FY_ONNX_MODEL_H

#include "core/graph.h"
#include "onnx.pb-c.h"

typedef struct fy_mapping {
    void *addr;
    size_t len;
    char *path;
} fy_mapping;

struct ferry_model {
    int refcount;
    Onnx__ModelProto *proto;
    char *base_dir;
    fy_mapping *maps;
    int n_maps;
    fy_graph *graph;
    /* opsets as imported */
    int n_opsets;
    const char **opset_domains;
    int64_t *opset_versions;
    /* graph inputs a caller feeds (no initializer) and graph outputs, as value ids */
    int n_inputs, n_outputs;
    int *input_ids, *output_ids;
    char *missing_ops; /* newline-separated ops without a kernel, or NULL */
    int n_node_ids;    /* nodes in all graphs; fy_node.id < n_node_ids */
};

void fy_model_ref(void *model);
void fy_model_unref(void *model);

/* Where tensor bytes may come from while decoding TensorProtos. A NULL model means: copy
 * everything (test-data files); otherwise raw bytes are borrowed and external data mapped. */
typedef struct fy_tensor_source {
    struct ferry_model *model;
    const char *base_dir;
    /* An initializer's raw_data may be freed once no tensor uses it (folding replaced it). */
    int release_raw_data;
} fy_tensor_source;

/* TensorProto → tensor value. Errors name the tensor. */
ferry_status fy_tensor_from_proto(const Onnx__TensorProto *tp, const fy_tensor_source *src,
                                  fy_value **out);

/* Build the IR of m->proto (load.c). */
ferry_status fy_model_build(struct ferry_model *m);

/* Decode ONNX bytes (copied as needed) and build the IR: names, cycles and opsets are checked;
 * kernels are not bound yet. base_dir locates external data. */
ferry_status fy_model_decode(const void *data, size_t size, const char *base_dir,
                             struct ferry_model **out);

#endif
