/* registry.c — the reference-kernel table built from ops.def, and lookup by domain and name.
 * A linear table is fine: lookup happens once per node at load, never per run. */
#include <string.h>

#include "ops/kernel.h"

#define FY_OP(name, domain, since) ferry_status fy_op_##name(fy_kernel *k);
#include "ops/ops.def"
#undef FY_OP

static const fy_op op_table[] = {
#define FY_OP(name, domain, since) {domain, #name, since, fy_op_##name, "reference", NULL, NULL, NULL, 0},
#include "ops/ops.def"
#undef FY_OP
};

int fy_domain_is_onnx(const char *d) { return d[0] == '\0' || strcmp(d, "ai.onnx") == 0; }

const fy_op *fy_op_find(const char *domain, const char *name, int opset)
{
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++) {
        const fy_op *op = &op_table[i];
        int same_domain = fy_domain_is_onnx(op->domain) ? fy_domain_is_onnx(domain)
                                                        : strcmp(op->domain, domain) == 0;
        if (same_domain && strcmp(op->name, name) == 0 && opset >= op->since) return op;
    }
    return NULL;
}

int fy_op_count(void) { return (int)(sizeof op_table / sizeof op_table[0]); }

const fy_op *fy_op_at(int i) { return i >= 0 && i < fy_op_count() ? &op_table[i] : NULL; }
