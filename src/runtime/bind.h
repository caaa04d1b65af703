/* bind.h — (re)binding a model's IR to kernels after a rewrite: shape inference and a kernel
 * per node, as ferry_model_load does. The quantizer uses it to run a graph it has edited. */
#ifndef FY_RUNTIME_BIND_H
#define FY_RUNTIME_BIND_H

#include "onnx/model.h"

/* Infer shapes and bind a kernel to every node of m (subgraphs included); fails listing the
 * ops without one. */
ferry_status fy_model_bind(struct ferry_model *m);

#endif
