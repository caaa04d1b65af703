/* graph_edit.h — the IR editing toolkit every pass uses: a rewrite session over one graph
 * (consumer index, touched/dead marks), node and attribute editing, new values and
 * initializers, and a commit that drops dead nodes, restores topological order and recomputes
 * producers, use counts and lifetimes.
 *
 * How a pass uses it: fy_rw_begin; sweep the nodes, matching patterns on nodes that are not
 * yet touched (fy_rw_usable); rewrite by editing one "anchor" node in place (it becomes the
 * fused node) and killing the others; fy_rw_commit; fy_rw_end. Within one sweep the consumer
 * index and producers describe the graph as it was at fy_rw_begin, which is why a matched node
 * must be untouched: touching every node a rewrite reads or changes keeps sweeps consistent. */
#ifndef FY_OPTIMIZE_GRAPH_EDIT_H
#define FY_OPTIMIZE_GRAPH_EDIT_H

#include <stdbool.h>

#include "onnx/model.h"

/* A use of a value: node index and input slot (slot -1: an implicit input of a subgraph). */
typedef struct fy_use {
    int node;
    int slot;
} fy_use;

typedef struct fy_rewrite {
    struct ferry_model *m;
    fy_graph *g;
    int n_nodes;       /* node count at begin (touched/dead are sized by it) */
    unsigned char *touched;
    unsigned char *dead;
    int *use_start;    /* CSR over values: uses of v are uses[use_start[v] .. use_start[v+1]) */
    fy_use *uses;
    unsigned char *is_output; /* per value at begin: a graph output */
    int changes;       /* rewrites made since begin */
    /* set when an edit failed half way (out of memory): the graph may be inconsistent and the
     * model must not be used; passes stop and the driver returns it */
    ferry_status error;
} fy_rewrite;

/* Start a rewrite of g (builds the consumer index). The rewrite owns nothing of g. */
ferry_status fy_rw_begin(fy_rewrite *rw, struct ferry_model *m, fy_graph *g);
/* Remove dead nodes (freeing them), sort topologically (stable), recompute producer, n_uses and
 * last_use, and drop initializers nothing reads any more. rw stays usable: the index is rebuilt. */
ferry_status fy_rw_commit(fy_rewrite *rw);
void fy_rw_end(fy_rewrite *rw);

/* Recompute producers, n_uses and last_use of g from its nodes (no reordering). */
ferry_status fy_graph_recompute(fy_graph *g);

/* ---- queries (as of the last begin/commit) ---- */

static inline bool fy_rw_usable(const fy_rewrite *rw, int node)
{
    return node >= 0 && node < rw->n_nodes && !rw->touched[node] && !rw->dead[node];
}
/* Number of uses of v (node inputs, implicit inputs; graph outputs not counted). */
int fy_rw_n_uses(const fy_rewrite *rw, int v);
/* The single node that reads v, when v has exactly one use, as a direct input, and is not a
 * graph output; -1 otherwise. *slot gets the input index. */
int fy_rw_sole_consumer(const fy_rewrite *rw, int v, int *slot);
/* Node producing v (index at begin), -1 for inputs, initializers and captures. */
int fy_rw_producer(const fy_rewrite *rw, int v);
bool fy_rw_is_output(const fy_rewrite *rw, int v);
/* The constant tensor behind v: an initializer that callers cannot override (not a graph
 * input), else NULL. */
const fy_value *fy_rw_const(const fy_rewrite *rw, int v);
/* A constant with one element, read as double; false if v is not one. */
bool fy_rw_const_scalar(const fy_rewrite *rw, int v, double *out);
/* Input i of node n as a value id, -1 if omitted or absent. */
int fy_node_in(const fy_node *n, int i);
/* Whether node n is (domain "" / ai.onnx) op. */
bool fy_node_is(const fy_node *n, const char *op);
/* Whether two values have the same known shape (equal static dims or equal symbols). */
bool fy_rw_same_shape(const fy_rewrite *rw, int a, int b);
/* Element type of v: from its type, or its constant; UNDEFINED if unknown. */
ferry_dtype fy_rw_dtype(const fy_rewrite *rw, int v);
/* Whether the node carries subgraph attributes or implicit inputs. */
bool fy_node_has_subgraphs(const fy_node *n);

/* ---- editing ---- */

void fy_rw_touch(fy_rewrite *rw, int node);
/* Mark a node dead (freed at commit); also touches it. */
void fy_rw_kill(fy_rewrite *rw, int node);
/* Replace every read of value old by value new: node inputs, implicit inputs and the captures
 * of the nodes' subgraphs. Graph outputs are not changed (callers check fy_rw_is_output). */
void fy_rw_replace_uses(fy_rewrite *rw, int old_v, int new_v);
/* Make node n an op of (domain, op_type) at opset; attributes are kept. */
ferry_status fy_node_set_op(fy_node *n, const char *domain, const char *op_type, int opset);
ferry_status fy_node_set_name(fy_node *n, const char *name);
ferry_status fy_node_set_inputs(fy_node *n, int count, const int *ids);
ferry_status fy_node_set_outputs(fy_node *n, int count, const int *ids);
/* Attribute setters replace an attribute of that name or append one. */
ferry_status fy_node_attr_set_int(fy_node *n, const char *name, int64_t v);
ferry_status fy_node_attr_set_float(fy_node *n, const char *name, float v);
ferry_status fy_node_attr_set_string(fy_node *n, const char *name, const char *s);
ferry_status fy_node_attr_set_floats(fy_node *n, const char *name, int count, const float *v);
ferry_status fy_node_attr_set_ints(fy_node *n, const char *name, int count, const int64_t *v);
void fy_node_attr_remove(fy_node *n, const char *name);
void fy_node_attrs_clear(fy_node *n);
/* Turn node `node` into a new node of (domain, op_type, opset): a fresh id (per-node state is
 * keyed by it) and the name `<old name><suffix>`; inputs, outputs and attributes are the
 * caller's to set. Touches the node. */
ferry_status fy_rw_remake(fy_rewrite *rw, int node, const char *domain, const char *op_type,
                          int opset, const char *suffix);
/* Free every field of a node (the struct itself lives in an array). */
void fy_node_clear(fy_node *n);
/* Append a new node (domain, op_type, opset, name) with the given inputs and outputs and a fresh
 * id; *index gets its position. The node array may move: re-take node pointers afterwards.
 * New nodes are never matched in the sweep that adds them; commit puts them in order. */
ferry_status fy_rw_add_node(fy_rewrite *rw, const char *domain, const char *op_type, int opset,
                            const char *name, int n_in, const int *in, int n_out, const int *out,
                            int *index);
/* A new (untyped, unproduced) value named after base, made unique in g. */
ferry_status fy_rw_add_value(fy_rewrite *rw, const char *base, int *id);
/* A new initializer holding t (the graph takes the reference), typed from it. */
ferry_status fy_rw_add_init(fy_rewrite *rw, const char *base, fy_value *t, int *id);
/* Give the output value v the initializer t (reference taken) and forget its producer. */
void fy_rw_set_init(fy_rewrite *rw, int v, fy_value *t);

#endif
