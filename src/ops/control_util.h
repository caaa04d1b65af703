/* control_util.h — data movement shared by the control-flow family (control.c, sequence.c):
 * element copies that also work for strings, slicing one index off an axis, and stacking
 * per-iteration tensors into one output. Implemented in sequence.c. */
#ifndef FY_OPS_CONTROL_UTIL_H
#define FY_OPS_CONTROL_UTIL_H

#include <stdint.h>

#include "ops/kernel.h"

/* Copy n elements of src starting at element soff into dst starting at doff. Both tensors
 * must have the same dtype and the ranges must lie inside them; strings are duplicated. */
ferry_status fy_ctrl_copy(fy_value *dst, int64_t doff, const fy_value *src, int64_t soff,
                          int64_t n);

/* A new tensor holding src[..., index, ...] along axis, with that axis removed
 * (keep_axis: kept with size 1). axis and index must be in range. */
ferry_status fy_ctrl_slice(const fy_kernel *k, const fy_value *src, int axis, int64_t index,
                           int keep_axis, fy_value **out);

/* Stack n_items tensors of one dtype and shape into a new tensor of dims
 * item[:axis] + lead[0..n_lead) + item[axis:] (item j goes to the flattened lead index j).
 * NULL items are left zero (""). When every item is NULL the dtype and item shape come from
 * like (a declared type; unknown dims count as 0), or float32 [] when like is NULL.
 * axis is in 0..item rank, or negative counting from the end (-1: after the last dim).
 * Errors name the node and `what` ("scan output 1"). *out is a new reference. */
ferry_status fy_ctrl_stack(const fy_kernel *k, const char *what, int64_t n_items,
                           fy_value *const *items, int n_lead, const int64_t *lead, int axis,
                           const fy_type_info *like, fy_value **out);

#endif
