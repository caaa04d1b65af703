/* graph.c — freeing the IR and attribute lookup; the IR is built by src/onnx/load.c. */
#include "core/graph.h"

#include <stdlib.h>
#include <string.h>

void fy_attr_clear(fy_attr *a)
{
    free(a->name);
    free(a->s);
    fy_value_unref(a->t);
    fy_graph_free(a->g);
    free(a->floats);
    free(a->ints);
    for (int64_t i = 0; a->strings && i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    for (int64_t i = 0; a->tensors && i < a->n; i++) fy_value_unref(a->tensors[i]);
    free(a->tensors);
    for (int64_t i = 0; a->graphs && i < a->n; i++) fy_graph_free(a->graphs[i]);
    free(a->graphs);
    for (int64_t i = 0; a->tp && i < (a->type == FY_ATTR_TYPE_PROTO ? 1 : a->n); i++)
        for (int d = 0; d < FERRY_MAX_RANK; d++) free(a->tp[i].dim_names[d]);
    free(a->tp);
    memset(a, 0, sizeof *a);
}

void fy_graph_free(fy_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        fy_node *n = &g->nodes[i];
        free(n->name), free(n->op_type), free(n->domain);
        free(n->inputs), free(n->outputs), free(n->implicit);
        for (int j = 0; j < n->n_attrs; j++) fy_attr_clear(&n->attrs[j]);
        free(n->attrs);
    }
    for (int i = 0; i < g->n_values; i++) {
        fy_value_info *v = &g->values[i];
        free(v->name);
        for (int d = 0; d < FERRY_MAX_RANK; d++) free(v->type.dim_names[d]);
        fy_value_unref(v->init);
    }
    free(g->name), free(g->values), free(g->nodes), free(g->inputs), free(g->outputs);
    free(g->outer), free(g->outer_src), free(g->last_use);
    free(g);
}

const fy_attr *fy_node_attr(const fy_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}
