/* flops.h — floating-point work of one executed node, from the shapes it actually saw. */
#ifndef FY_RUNTIME_FLOPS_H
#define FY_RUNTIME_FLOPS_H

#include "core/graph.h"

enum {
    FY_FLOPS_NONE = 0,
    FY_FLOPS_CONV,
    FY_FLOPS_QLINEAR_CONV,
    FY_FLOPS_CONV_TRANSPOSE,
    FY_FLOPS_MATMUL,
    FY_FLOPS_GEMM,
    FY_FLOPS_ATTENTION,
};

/* How a node's FLOPs are counted (one of the values above); set on each node at bind time. */
int fy_flops_kind(const fy_node *n);

/* Multiply-adds count as 2 FLOPs; only ops that dominate model cost are counted (Conv,
 * ConvTranspose, MatMul, Gemm, their integer/quantized and fused forms; recurrent kernels add
 * their own through fy_kernel.flops). */
double fy_node_flops(const fy_node *n, fy_value *const *in, fy_value *const *out);

#endif
