/* registry.c — the backend-kernel table built from backends.def, and selection: a node runs on
 * the first backend kernel whose supports() accepts it, else on its reference kernel. */
#include <string.h>

#include "backends/backend.h"

#define FY_BACKEND_OP(name, domain, since, backend, flags)                                         \
    ferry_status fy_##backend##_##name##_run(fy_kernel *k);                                        \
    bool fy_##backend##_##name##_supports(const fy_node *n, const fy_graph *g);                    \
    ferry_status fy_##backend##_##name##_prepare(const fy_node *n, const fy_graph *g, void **st);  \
    void fy_##backend##_##name##_release(void *state);
#include "backends/backends.def"
#undef FY_BACKEND_OP

static const fy_op backend_table[] = {
#define FY_BACKEND_OP(name, domain, since, backend, flags)                                         \
    {domain, #name, since, fy_##backend##_##name##_run, #backend,                                  \
     fy_##backend##_##name##_supports, fy_##backend##_##name##_prepare,                            \
     fy_##backend##_##name##_release, flags},
#include "backends/backends.def"
#undef FY_BACKEND_OP
    {NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, 0}, /* keeps the table non-empty */
};

const fy_op *fy_backend_select(const fy_node *n, const fy_graph *g)
{
    for (size_t i = 0; backend_table[i].name; i++) {
        const fy_op *op = &backend_table[i];
        int same_domain = fy_domain_is_onnx(op->domain) ? fy_domain_is_onnx(n->domain)
                                                        : strcmp(op->domain, n->domain) == 0;
        if (same_domain && strcmp(op->name, n->op_type) == 0 && n->opset >= op->since &&
            op->supports(n, g))
            return op;
    }
    return fy_op_find(n->domain, n->op_type, n->opset);
}
