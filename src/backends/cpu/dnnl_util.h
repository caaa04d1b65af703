/* dnnl_util.h — what the oneDNN kernels (dnnl_*.c) share: the engine and per-thread streams,
 * tensors in oneDNN's blocked layouts (fy_layout), cached reorders, primitives with cached
 * memory objects, and the fall-back to the reference kernel for cases oneDNN declines.
 *
 * Each kernel's state (one per node and session, from prepare) holds the weights reordered
 * once, and primitives made on first sight of an input shape, layout and OpenMP team size,
 * behind a mutex: sessions run from several threads at once. Environment: FERRY_NO_DNNL=1
 * turns the backend off (reference kernels everywhere), FERRY_DNNL_WINOGRAD=0 keeps 3x3
 * convolutions on the direct algorithm. */
#ifndef FY_BACKENDS_CPU_DNNL_UTIL_H
#define FY_BACKENDS_CPU_DNNL_UTIL_H

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdbool.h>

#include "ops/kernel.h"

/* Per node and session, the input shapes whose primitives are kept; further shapes still run,
 * on primitives made and dropped per call (oneDNN's own primitive cache keeps that cheap). */
#define FY_DNNL_MAX_SHAPES 8
#define FY_DNNL_MAX_ARGS   8
/* Problems below this many multiply-adds run on one thread: a parallel region costs more. */
#define FY_DNNL_SERIAL_MACS (1 << 16)

/* ---- engine ---------------------------------------------------------------------------- */

/* The process's CPU engine, created on first use; NULL when oneDNN is unusable here or the
 * environment sets FERRY_NO_DNNL (then every supports() declines and reference kernels run). */
dnnl_engine_t fy_dnnl_engine(void);
/* The calling thread's stream on that engine (destroyed when the thread exits). */
dnnl_stream_t fy_dnnl_stream(void);
/* FERRY_OK, or an FERRY_E_INTERNAL error naming what failed. */
ferry_status fy_dnnl_check(dnnl_status_t s, const char *what);

/* ---- graph facts for supports()/prepare() ---------------------------------------------- */

/* The float32 initializer behind input i of n, or NULL (omitted, computed, another dtype). */
const fy_value *fy_dnnl_init_f32(const fy_node *n, const fy_graph *g, int i);
/* Whether input i of n is present (not omitted). */
bool fy_dnnl_has_input(const fy_node *n, int i);
/* Declared element type of input i (0 when unknown). */
ferry_dtype fy_dnnl_input_dtype(const fy_node *n, const fy_graph *g, int i);
/* Input i is present and float32 or of a type inference left open (runs check the tensor). */
bool fy_dnnl_maybe_f32(const fy_node *n, const fy_graph *g, int i);
/* Attribute readers on a node (for prepare, where there is no kernel context). */
int64_t fy_dnnl_attr_int(const fy_node *n, const char *name, int64_t def);
float fy_dnnl_attr_float(const fy_node *n, const char *name, float def);
const char *fy_dnnl_attr_string(const fy_node *n, const char *name, const char *def);
/* Only outputs 0..n_max-1 are consumed (optional extra outputs like MaxPool's Indices). */
bool fy_dnnl_outputs_at_most(const fy_node *n, int n_max);

/* ---- memory descriptors and blocked tensors -------------------------------------------- */

/* Plain row-major f32 descriptor for dims (rank 1..12). */
void fy_dnnl_plain_md(int rank, const int64_t *dims, dnnl_memory_desc_t *md);
/* The descriptor of a tensor's bytes: its blocked layout, or plain row-major. */
void fy_dnnl_value_md(const fy_value *v, dnnl_memory_desc_t *md);
/* Whether a descriptor is plain row-major for the given dims. */
bool fy_dnnl_md_is_plain(const dnnl_memory_desc_t *md, int rank, const int64_t *dims);
bool fy_dnnl_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b);

/* The layout of tensors kept in a oneDNN blocked format between dnnl kernels; layout_desc is
 * a fy_dnnl_desc the tensor owns. */
extern const fy_layout fy_dnnl_layout;
typedef struct fy_dnnl_desc {
    dnnl_memory_desc_t md;
    struct fy_pool *pool; /* where to_plain allocates (a reference), or NULL */
} fy_dnnl_desc;

/* Allocate output i of k with logical dims and bytes laid out as md: a plain tensor when md is
 * plain row-major, else a blocked one (fy_dnnl_layout) with storage from the session's pool. */
ferry_status fy_dnnl_output(fy_kernel *k, int i, const dnnl_memory_desc_t *md, int rank,
                            const int64_t *dims, fy_value **out);
/* Copy src (laid out as src_md) into dst (dst_md), converting layouts. Reorder primitives are
 * cached process-wide by descriptor pair. */
/* Weights src (described by src_md) reordered into the layout primitive pd prefers; *out_md
 * gets that layout. Returns a 64-byte aligned copy (caller frees) or NULL when it fails, in
 * which case the caller keeps using the weights as they are. */
void *fy_dnnl_reorder_weights(dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *src_md,
                              const void *src, dnnl_memory_desc_t *out_md);
ferry_status fy_dnnl_reorder(const dnnl_memory_desc_t *src_md, const void *src,
                             const dnnl_memory_desc_t *dst_md, void *dst);
/* Scratch memory for a reordered input: from the kernel's pool (64-byte aligned). */
void *fy_dnnl_scratch(fy_kernel *k, size_t size);
void fy_dnnl_scratch_free(fy_kernel *k, void *p, size_t size);

/* ---- primitives ------------------------------------------------------------------------ */

/* A primitive with its arguments' descriptors and memory objects (made once, pointed at new
 * data on each run). Memory objects are not shareable between concurrent runs, so a run that
 * finds them busy makes temporary ones. */
typedef struct fy_dnnl_prim {
    dnnl_primitive_t prim;
    int n;
    /* the listed arguments, then the scratchpad when scratch_size > 0 */
    int args[FY_DNNL_MAX_ARGS + 1];
    dnnl_memory_desc_t md[FY_DNNL_MAX_ARGS + 1];
    dnnl_memory_t mem[FY_DNNL_MAX_ARGS + 1];
    size_t scratch_size;
    int busy;
    int serial; /* made for, and run on, one thread */
} fy_dnnl_prim;

/* Make the primitive of pd (which it does not take) for the listed execute arguments. */
ferry_status fy_dnnl_prim_init(fy_dnnl_prim *p, const_dnnl_primitive_desc_t pd, int n,
                               const int *args, int serial);
/* Descriptor of argument arg (as the primitive wants it), or NULL if it is not listed. */
const dnnl_memory_desc_t *fy_dnnl_prim_md(const fy_dnnl_prim *p, int arg);
/* Run with data[i] for args[i]; mu guards the cached memory objects; the scratchpad comes
 * from k's pool. */
ferry_status fy_dnnl_prim_run(fy_dnnl_prim *p, pthread_mutex_t *mu, fy_kernel *k,
                              void *const *data);
void fy_dnnl_prim_free(fy_dnnl_prim *p);

/* A copy of base (NULL: default attributes) asking for a user-provided scratchpad: oneDNN's
 * library scratchpad is shared by every primitive, so concurrent runs would overwrite each
 * other's. NULL when out of memory; the caller destroys it. */
dnnl_primitive_attr_t fy_dnnl_scratch_attr(const_dnnl_primitive_attr_t base);
/* Primitive descriptor for op_desc (with a user scratchpad), made on one thread when serial
 * (oneDNN plans its work split when the descriptor is made). NULL when oneDNN has no
 * implementation. */
dnnl_primitive_desc_t fy_dnnl_pd_create(const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
                                        int serial);
/* Whether oneDNN picked its slow reference implementation for pd. */
bool fy_dnnl_pd_is_ref(const_dnnl_primitive_desc_t pd);

/* Append the eltwise post-op(s) of an activation name ("Relu", "Clip", ...; "" and "Identity"
 * append nothing) with its params (NULL/0 for the defaults: ONNX Runtime's FusedConv ones);
 * false if the activation is unknown. */
bool fy_dnnl_append_activation(dnnl_post_ops_t ops, const char *act, const float *params,
                               int n_params);
/* Whether an activation name is one fy_dnnl_append_activation knows. */
bool fy_dnnl_activation_known(const char *act);

/* ---- fall-back ------------------------------------------------------------------------- */

/* Run the node's reference kernel on k, converting any blocked inputs to plain first. */
ferry_status fy_dnnl_run_reference(fy_kernel *k);
/* dnnl_int8.c: MaxPool of a plain 4-D int8/uint8 tensor without padding (1 when it ran, *rc
 * set; 0 when the node is not one). */
int fy_dnnl_maxpool_q8(fy_kernel *k, const fy_value *x, ferry_status *rc);

#endif
