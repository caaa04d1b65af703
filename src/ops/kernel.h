/* kernel.h — what an operator implementation sees: its node's inputs, attributes and outputs,
 * plus helpers that turn misuse into errors naming the node. Every op family file includes it. */
#ifndef FY_OPS_KERNEL_H
#define FY_OPS_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/graph.h"
#include "core/status.h"
#include "core/value.h"

struct fy_frame;

/* The context of one node execution. Inputs are borrowed; outputs are owned by the context
 * until the kernel returns, then by the executor. A kernel must not modify its inputs. */
typedef struct fy_kernel {
    const fy_node *node;
    int n_inputs;
    fy_value *const *inputs; /* NULL where the input is omitted */
    int n_outputs;
    fy_value **outputs;      /* kernel fills; slots for omitted outputs may be left NULL */
    struct fy_frame *frame;  /* the running graph (for subgraphs) */
    int threads;
    double *flops;           /* add the FLOPs this node performed (for inspect/bench) */
    struct fy_pool *pool;    /* the session's buffer pool, used by fy_output */
    void *state;             /* what the op's prepare() made for this node in this session */
} fy_kernel;

typedef ferry_status (*fy_kernel_fn)(fy_kernel *k);

/* The kernel accepts inputs in a backend's blocked layout (value->layout set); for every other
 * kernel the executor converts such inputs to plain row-major first. */
#define FY_OP_BLOCKED_INPUTS 1u

/* Registry entry; one per kernel, generated from ops.def (reference kernels) and
 * src/backends/backends.def (backend kernels, preferred when supports() accepts the node). */
typedef struct fy_op {
    const char *domain; /* "" for ai.onnx */
    const char *name;
    int since;          /* lowest opset implemented */
    fy_kernel_fn run;
    const char *backend; /* "reference", "dnnl", ... */
    /* Optional hooks of backend kernels. supports: whether this kernel can run the node (NULL:
     * always). prepare: per-session setup (reordered weights, cached primitives), its result
     * reaching run() as k->state; release frees it. */
    bool (*supports)(const fy_node *n, const fy_graph *g);
    ferry_status (*prepare)(const fy_node *n, const fy_graph *g, void **state);
    void (*release)(void *state);
    unsigned flags;
} fy_op;

/* Look up the reference kernel of (domain, name) for a model opset; NULL if there is none. */
const fy_op *fy_op_find(const char *domain, const char *name, int opset);
/* Whether a domain string names the default ONNX domain ("" or "ai.onnx"). */
int fy_domain_is_onnx(const char *domain);
/* The best kernel for a node of graph g: a backend kernel whose supports() accepts it, else
 * the reference kernel (NULL if none). */
const fy_op *fy_op_select(const fy_node *n, const fy_graph *g);
/* Number of registered ops, and the i-th (for listings). */
int fy_op_count(void);
const fy_op *fy_op_at(int i);

/* ---- errors ---- */

/* Record `node "name" (Op): <message>` and return code. */
ferry_status fy_kernel_error(const fy_kernel *k, ferry_status code, const char *fmt, ...)
    FY_PRINTF(3, 4);

/* ---- inputs ---- */

/* Input i, or NULL when omitted (i beyond the node's inputs counts as omitted). */
const fy_value *fy_input(const fy_kernel *k, int i);
/* Required tensor input: error if omitted or not a tensor. */
ferry_status fy_input_tensor(const fy_kernel *k, int i, const fy_value **out);
/* Optional tensor input: *out NULL if omitted (or an empty optional), error if not a tensor. */
ferry_status fy_input_tensor_opt(const fy_kernel *k, int i, const fy_value **out);
/* Read a 1-D (or scalar) integer tensor input into ints (up to max entries); *n gets the count.
 * Error if omitted, not integer, or too long. */
ferry_status fy_input_ints(const fy_kernel *k, int i, int64_t *ints, int max, int *n);
/* Error unless the input's dtype is one of the listed types (terminated by UNDEFINED). */
ferry_status fy_check_dtype(const fy_kernel *k, int input, const fy_value *t, ...);

/* ---- outputs ---- */

/* Allocate output i with the given dtype and shape (data uninitialized; strings ""). */
ferry_status fy_output(fy_kernel *k, int i, ferry_dtype dtype, int rank, const int64_t *dims,
                       fy_value **out);
/* Same, zero-filled. */
ferry_status fy_output_zeros(fy_kernel *k, int i, ferry_dtype dtype, int rank,
                             const int64_t *dims, fy_value **out);
/* Hand a value (a view, a sequence, an input re-used) to output i; takes the reference. */
ferry_status fy_output_set(fy_kernel *k, int i, fy_value *v);
/* Whether output i is consumed (the node lists it); kernels may skip computing it if not. */
bool fy_output_wanted(const fy_kernel *k, int i);

/* ---- attributes ---- */

const fy_attr *fy_attr_get(const fy_kernel *k, const char *name);
int64_t fy_attr_int(const fy_kernel *k, const char *name, int64_t def);
float fy_attr_float(const fy_kernel *k, const char *name, float def);
/* NUL-terminated string attribute or def. */
const char *fy_attr_string(const fy_kernel *k, const char *name, const char *def);
/* List attributes: count, or -1 when absent; *vals borrowed from the node. */
int64_t fy_attr_ints(const fy_kernel *k, const char *name, const int64_t **vals);
int64_t fy_attr_floats(const fy_kernel *k, const char *name, const float **vals);
const fy_value *fy_attr_tensor(const fy_kernel *k, const char *name);
const fy_graph *fy_attr_graph(const fy_kernel *k, const char *name);

/* ---- subgraphs (If, Loop, Scan, SequenceMap) ---- */

/* Run subgraph g of this node with the given inputs (borrowed; n_inputs must equal the
 * subgraph's input count). outputs receives new references, one per subgraph output. */
ferry_status fy_kernel_run_graph(fy_kernel *k, const fy_graph *g, int n_inputs,
                                 fy_value *const *inputs, fy_value **outputs);

/* Normalize a possibly negative axis against rank; error naming the attribute if out of range. */
ferry_status fy_axis(const fy_kernel *k, int64_t axis, int rank, int *out);

#endif
