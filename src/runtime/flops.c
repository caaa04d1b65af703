/* flops.c — FLOP estimates per node for `ferry inspect` and `ferry bench`, computed from the
 * real input and output shapes of a run so symbolic dims need no guessing. The op is classified
 * once when kernels are bound, so a run compares no strings. */
#include "runtime/flops.h"

#include <string.h>

int fy_flops_kind(const fy_node *n)
{
    static const struct {
        const char *op;
        int kind;
    } kinds[] = {
        {"Conv", FY_FLOPS_CONV},           {"ConvInteger", FY_FLOPS_CONV},
        {"FusedConv", FY_FLOPS_CONV},      {"QLinearConv", FY_FLOPS_QLINEAR_CONV},
        {"ConvTranspose", FY_FLOPS_CONV_TRANSPOSE},
        {"MatMul", FY_FLOPS_MATMUL},       {"MatMulInteger", FY_FLOPS_MATMUL},
        {"Gemm", FY_FLOPS_GEMM},           {"FusedGemm", FY_FLOPS_GEMM},
        {"QLinearMatMul", FY_FLOPS_MATMUL}, {"FusedAttention", FY_FLOPS_ATTENTION},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(n->op_type, kinds[i].op) == 0) return kinds[i].kind;
    return FY_FLOPS_NONE;
}

static double prod(const fy_value *t, int from)
{
    double p = 1;
    for (int i = from; i < t->rank; i++) p *= (double)t->dims[i];
    return p;
}

double fy_node_flops(const fy_node *n, fy_value *const *in, fy_value *const *out)
{
    if (n->flops_kind == FY_FLOPS_NONE || n->n_inputs < 2 || !in[0] || !in[1] ||
        n->n_outputs < 1 || !out[0])
        return 0;
    const fy_value *a = in[0], *w = in[1], *y = out[0];
    if (a->kind != FERRY_VALUE_TENSOR || w->kind != FERRY_VALUE_TENSOR || y->kind != FERRY_VALUE_TENSOR)
        return 0;
    switch (n->flops_kind) {
    case FY_FLOPS_CONV: /* each output element: C_in/group * kernel window multiply-adds */
        return w->rank >= 2 ? 2.0 * (double)y->count * prod(w, 1) : 0;
    case FY_FLOPS_QLINEAR_CONV: /* X, x_scale, x_zp, W, ... */
        return n->n_inputs > 3 && in[3] ? 2.0 * (double)y->count * prod(in[3], 1) : 0;
    case FY_FLOPS_CONV_TRANSPOSE: return w->rank >= 2 ? 2.0 * (double)a->count * prod(w, 1) : 0;
    case FY_FLOPS_GEMM: {
        const fy_attr *ta = fy_node_attr(n, "transA");
        int k_axis = ta && ta->i && a->rank == 2 ? 0 : a->rank - 1;
        return a->rank >= 1 ? 2.0 * (double)y->count * (double)a->dims[k_axis] : 0;
    }
    case FY_FLOPS_ATTENTION: { /* Q·Kᵀ and P·V: 2·N·Sq·Sk·(D + Dv), Sk = |K| / (N·D) */
        const fy_attr *sf = fy_node_attr(n, "q_seq_first");
        double heads = (double)a->dims[sf && sf->i ? 1 : 0], d = (double)a->dims[2];
        double keys = heads * d > 0 ? (double)w->count / (heads * d) : 0;
        return 2.0 * keys * ((double)a->count + (double)y->count);
    }
    case FY_FLOPS_MATMUL: return a->rank >= 1 ? 2.0 * (double)y->count * (double)a->dims[a->rank - 1] : 0;
    default: return 0;
    }
}
