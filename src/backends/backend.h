/* backend.h — how accelerated kernels plug in: each backend lists its kernels in a .def file
 * included by backends.def, with supports/prepare/run/release hooks (see fy_op in
 * src/ops/kernel.h). The runtime asks fy_backend_select for every node when a model loads. */
#ifndef FY_BACKENDS_BACKEND_H
#define FY_BACKENDS_BACKEND_H

#include "ops/kernel.h"

/* The kernel a node runs on: the first backend kernel that supports it, else the reference
 * kernel from src/ops, else NULL (the op is unsupported). */
const fy_op *fy_backend_select(const fy_node *n, const fy_graph *g);

#endif
