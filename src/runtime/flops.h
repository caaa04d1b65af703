/* flops.h — floating-point work of one executed node, from the shapes it actually saw. */
#ifndef FY_RUNTIME_FLOPS_H
#define FY_RUNTIME_FLOPS_H

#include "core/graph.h"

/* Multiply-adds count as 2 FLOPs; only ops that dominate model cost are counted (Conv,
 * ConvTranspose, MatMul, Gemm, and their integer/quantized forms). */
double fy_node_flops(const fy_node *n, fy_value *const *in, fy_value *const *out);

#endif
