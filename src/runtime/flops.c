/* flops.c — FLOP estimates per node for `ferry inspect` and `ferry bench`, computed from the
 * real input and output shapes of a run so symbolic dims need no guessing. */
#include "runtime/flops.h"

#include <string.h>

static int is(const fy_node *n, const char *op) { return strcmp(n->op_type, op) == 0; }

static double prod(const fy_value *t, int from)
{
    double p = 1;
    for (int i = from; i < t->rank; i++) p *= (double)t->dims[i];
    return p;
}

double fy_node_flops(const fy_node *n, fy_value *const *in, fy_value *const *out)
{
    if (n->n_inputs < 2 || !in[0] || !in[1] || n->n_outputs < 1 || !out[0]) return 0;
    const fy_value *a = in[0], *w = in[1], *y = out[0];
    if (a->kind != FERRY_VALUE_TENSOR || w->kind != FERRY_VALUE_TENSOR || y->kind != FERRY_VALUE_TENSOR)
        return 0;
    if (is(n, "Conv") || is(n, "ConvInteger")) {
        /* each output element: C_in/group * kernel window multiply-adds */
        return w->rank >= 2 ? 2.0 * (double)y->count * prod(w, 1) : 0;
    }
    if (is(n, "QLinearConv")) return n->n_inputs > 3 && in[3] ? 2.0 * (double)y->count * prod(in[3], 1) : 0;
    if (is(n, "ConvTranspose")) return w->rank >= 2 ? 2.0 * (double)a->count * prod(w, 1) : 0;
    if (is(n, "MatMul") || is(n, "MatMulInteger") || is(n, "Gemm")) {
        int k_axis = a->rank - 1;
        if (is(n, "Gemm")) {
            const fy_attr *ta = fy_node_attr(n, "transA");
            if (ta && ta->i && a->rank == 2) k_axis = 0;
        }
        return a->rank >= 1 ? 2.0 * (double)y->count * (double)a->dims[k_axis] : 0;
    }
    if (is(n, "QLinearMatMul") && in[0] && in[0]->rank >= 1)
        return 2.0 * (double)y->count * (double)in[0]->dims[in[0]->rank - 1];
    return 0;
}
