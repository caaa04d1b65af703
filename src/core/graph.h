/* graph.h — ferry's IR: a graph of nodes over numbered values, with attributes, initializers
 * and nested subgraphs. Built by src/onnx, planned by src/runtime, rewritten by optimizers. */
#ifndef FY_CORE_GRAPH_H
#define FY_CORE_GRAPH_H

#include <stdint.h>

#include "core/value.h"

struct fy_op;
struct fy_graph;

typedef enum fy_attr_type {
    FY_ATTR_FLOAT = 1,
    FY_ATTR_INT = 2,
    FY_ATTR_STRING = 3,
    FY_ATTR_TENSOR = 4,
    FY_ATTR_GRAPH = 5,
    FY_ATTR_FLOATS = 6,
    FY_ATTR_INTS = 7,
    FY_ATTR_STRINGS = 8,
    FY_ATTR_TENSORS = 9,
    FY_ATTR_GRAPHS = 10,
    FY_ATTR_TYPE_PROTO = 13,
    FY_ATTR_TYPE_PROTOS = 14,
} fy_attr_type; /* ONNX AttributeProto.AttributeType numbering */

typedef struct fy_attr {
    char *name;
    fy_attr_type type;
    float f;
    int64_t i;
    char *s; /* NUL-terminated; s_len holds the byte length (strings may hold NULs) */
    size_t s_len;
    fy_value *t;
    struct fy_graph *g;
    int64_t n; /* element count of the list forms */
    float *floats;
    int64_t *ints;
    char **strings;
    fy_value **tensors;
    struct fy_graph **graphs;
    struct fy_type_info *tp; /* TYPE_PROTO (TYPE_PROTOS: tp[0..n-1]) */
} fy_attr;

struct fy_type_info;

typedef struct fy_node {
    char *name;      /* never NULL; "" becomes "<op>_<index>" */
    char *op_type;
    char *domain;    /* "" for the default ONNX domain */
    int opset;       /* the model's opset for the node's domain */
    int id;          /* unique in the model (subgraphs included): index of per-node state */
    const struct fy_op *op; /* bound by the runtime; NULL when no kernel exists */
    int flops_kind;          /* how the runtime counts this node's FLOPs (runtime/flops.h) */
    int n_inputs;
    int *inputs;     /* value ids; -1 for an omitted optional input */
    int n_outputs;
    int *outputs;    /* value ids; -1 for an omitted optional output */
    int n_attrs;
    fy_attr *attrs;
    /* values of this graph that the node's subgraphs read from the enclosing scope */
    int n_implicit;
    int *implicit;
} fy_node;

typedef struct fy_type_info {
    ferry_value_kind kind; /* 0 when undeclared */
    int optional;
    ferry_dtype dtype;
    int rank; /* -1 unknown */
    int64_t dims[FERRY_MAX_RANK];
    char *dim_names[FERRY_MAX_RANK];
} fy_type_info;

typedef struct fy_value_info {
    char *name;
    fy_type_info type;
    fy_value *init;  /* initializer (or NULL) */
    int producer;    /* node index, -1 for inputs, initializers and outer captures */
    int n_uses;      /* consumers in this graph (node inputs, implicit inputs, graph outputs) */
} fy_value_info;

typedef struct fy_graph {
    char *name;
    int n_values;
    fy_value_info *values;
    int n_nodes;
    fy_node *nodes; /* in execution (topological) order */
    int n_inputs;
    int *inputs;     /* value ids of graph inputs (initializer-backed inputs included) */
    int n_outputs;
    int *outputs;
    /* values read from enclosing graphs: slot outer[i] in this graph is filled, at run time,
     * from value outer_src[i] of the parent graph */
    int n_outer;
    int *outer;
    int *outer_src;
    int *last_use;   /* per value: index of the last node reading it, -1 if none; n_nodes for
                        values that must survive the run (graph outputs) */
} fy_graph;

void fy_graph_free(fy_graph *g);
/* Free what an attribute owns and zero it. */
void fy_attr_clear(fy_attr *a);
/* Attribute by name or NULL. */
const fy_attr *fy_node_attr(const fy_node *n, const char *name);

#endif
