/* ferry.h — the public C API of libferry: load an ONNX model, describe it, run it.
 * Everything a program (and the ferry command) needs; nothing else is exported. */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------------------------ */

/* Every fallible call returns a status; FERRY_OK is zero. The human-readable message of the
 * last failure on the calling thread is kept until the next failure (ferry_last_error). */
typedef enum ferry_status {
    FERRY_OK = 0,
    FERRY_E_INVALID_ARG,  /* a caller passed something unusable (NULL, unknown name...) */
    FERRY_E_PARSE,        /* a file is malformed, truncated or not what it claims */
    FERRY_E_UNSUPPORTED,  /* an op, opset, dtype or attribute ferry does not implement */
    FERRY_E_SHAPE,        /* shapes do not fit together */
    FERRY_E_DTYPE,        /* element types do not fit together */
    FERRY_E_IO,           /* a file could not be opened, read or written */
    FERRY_E_NOMEM,        /* an allocation failed */
    FERRY_E_INTERNAL,     /* a bug in ferry */
} ferry_status;

/* Message of the last failure on this thread ("" if none). Valid until the next ferry call. */
const char *ferry_last_error(void);
/* Forget the last failure's message. */
void ferry_clear_error(void);
/* Short name of a status ("FERRY_E_SHAPE"). */
const char *ferry_status_name(ferry_status s);

/* ---- element types: the numbering is ONNX's TensorProto.DataType ---------------------- */

typedef enum ferry_dtype {
    FERRY_DTYPE_UNDEFINED = 0,
    FERRY_DTYPE_F32 = 1,
    FERRY_DTYPE_U8 = 2,
    FERRY_DTYPE_I8 = 3,
    FERRY_DTYPE_U16 = 4,
    FERRY_DTYPE_I16 = 5,
    FERRY_DTYPE_I32 = 6,
    FERRY_DTYPE_I64 = 7,
    FERRY_DTYPE_STRING = 8, /* data is char *[count], each a NUL-terminated string the tensor owns */
    FERRY_DTYPE_BOOL = 9,   /* one byte per element, 0 or 1 */
    FERRY_DTYPE_F16 = 10,   /* IEEE half, stored as uint16_t */
    FERRY_DTYPE_F64 = 11,
    FERRY_DTYPE_U32 = 12,
    FERRY_DTYPE_U64 = 13,
    FERRY_DTYPE_C64 = 14,
    FERRY_DTYPE_C128 = 15,
    FERRY_DTYPE_BF16 = 16, /* bfloat16, stored as uint16_t */
} ferry_dtype;

/* "float32", "int64", ... or "undefined". */
const char *ferry_dtype_name(ferry_dtype t);
/* Bytes per element (sizeof(char *) for strings), 0 for undefined. */
size_t ferry_dtype_size(ferry_dtype t);

#define FERRY_MAX_RANK 16

/* ---- values: a tensor, a sequence of tensors, or an empty optional ---------------------- */

typedef enum ferry_value_kind {
    FERRY_VALUE_TENSOR = 1,
    FERRY_VALUE_SEQUENCE = 2,
    FERRY_VALUE_NONE = 3, /* an optional holding nothing */
} ferry_value_kind;

/* A value is reference counted and immutable once handed to ferry_session_run; the caller
 * owns every value it creates or receives and releases it with ferry_value_free. */
typedef struct ferry_value ferry_value;

/* A new tensor with uninitialized data (strings start as ""). dims may be NULL when rank is 0. */
ferry_status ferry_tensor_create(ferry_dtype dtype, int rank, const int64_t *dims, ferry_value **out);
/* A new tensor holding a copy of nbytes of data; nbytes must equal count * dtype size. Not for
 * strings (use ferry_tensor_create and ferry_tensor_set_string). */
ferry_status ferry_tensor_create_copy(ferry_dtype dtype, int rank, const int64_t *dims,
                                      const void *data, size_t nbytes, ferry_value **out);
/* Set element i of a string tensor to a copy of the len bytes at s. */
ferry_status ferry_tensor_set_string(ferry_value *t, int64_t i, const char *s, size_t len);
/* A new empty sequence whose elements will be tensors of elem_dtype. */
ferry_status ferry_sequence_create(ferry_dtype elem_dtype, ferry_value **out);
/* Append a tensor to a sequence; the sequence takes over the caller's reference to item. */
ferry_status ferry_sequence_append(ferry_value *seq, ferry_value *item);
/* An empty optional. */
ferry_status ferry_none_create(ferry_value **out);
/* Drop the caller's reference (NULL is fine). */
void ferry_value_free(ferry_value *v);

ferry_value_kind ferry_value_get_kind(const ferry_value *v);
ferry_dtype ferry_tensor_dtype(const ferry_value *t);
int ferry_tensor_rank(const ferry_value *t);
const int64_t *ferry_tensor_dims(const ferry_value *t);
int64_t ferry_tensor_count(const ferry_value *t); /* number of elements */
size_t ferry_tensor_nbytes(const ferry_value *t);
/* Element storage, owned by the tensor. Writable only before the tensor is handed to a run. */
void *ferry_tensor_data(ferry_value *t);
const void *ferry_tensor_cdata(const ferry_value *t);
/* Element type of a sequence, its length, and its element i (borrowed, not to be freed). */
ferry_dtype ferry_sequence_dtype(const ferry_value *seq);
int64_t ferry_sequence_length(const ferry_value *seq);
const ferry_value *ferry_sequence_at(const ferry_value *seq, int64_t i);

/* ---- tensor files ------------------------------------------------------------------------ */

/* Read a tensor from a NumPy .npy file or an ONNX TensorProto .pb file (chosen by extension:
 * ".pb" is protobuf, anything else must carry the NumPy magic). */
ferry_status ferry_tensor_load(const char *path, ferry_value **out);
/* Read an ONNX test-data .pb file holding a value of the given kind (a TensorProto, a
 * SequenceProto, or an OptionalProto for FERRY_VALUE_NONE-or-something). */
ferry_status ferry_value_load_pb(const char *path, ferry_value_kind kind, ferry_value **out);
/* Write a tensor as .npy (little-endian, C order). Strings are not supported by NumPy's
 * format without pickling and fail with FERRY_E_UNSUPPORTED. */
ferry_status ferry_tensor_save_npy(const ferry_value *t, const char *path);

/* ---- models ------------------------------------------------------------------------------ */

/* A loaded, checked model. It owns its weights; sessions keep it alive while they exist, so
 * ferry_model_free may be called at any time after the sessions are created. */
typedef struct ferry_model ferry_model;

/* Load an ONNX model. External data files are looked up beside path. Fails, naming the node,
 * on malformed input, dangling names, cycles, and lists every unsupported op. */
ferry_status ferry_model_load(const char *path, ferry_model **out);
/* Load from memory (external data is resolved against base_dir, which may be NULL). The
 * bytes are copied; the caller keeps ownership of data. */
ferry_status ferry_model_load_memory(const void *data, size_t size, const char *base_dir,
                                     ferry_model **out);
void ferry_model_free(ferry_model *m);

/* A graph input or output as the model declares it. Dims are -1 where unknown or symbolic;
 * dim_names[i] is the symbol ("batch") or NULL. Strings belong to the model. */
typedef struct ferry_io_info {
    const char *name;
    ferry_value_kind kind; /* tensor, sequence; optional inputs report their inner kind */
    int optional;          /* declared as optional(...) */
    ferry_dtype dtype;     /* element type (of the tensor, or of the sequence's tensors) */
    int rank;              /* -1 when the shape is not declared */
    const int64_t *dims;
    const char *const *dim_names;
} ferry_io_info;

int ferry_model_input_count(const ferry_model *m);
int ferry_model_output_count(const ferry_model *m);
ferry_status ferry_model_input(const ferry_model *m, int i, ferry_io_info *out);
ferry_status ferry_model_output(const ferry_model *m, int i, ferry_io_info *out);

/* Facts for `ferry inspect`. Strings belong to the model. */
typedef struct ferry_model_info {
    const char *producer_name;
    const char *producer_version;
    int64_t ir_version;
    int n_opsets;
    const char *const *opset_domains; /* "" is the default ONNX domain */
    const int64_t *opset_versions;
    int64_t n_nodes;         /* in the main graph, not counting subgraphs */
    int64_t n_parameters;    /* elements in all initializers */
    int64_t parameter_bytes; /* bytes of all initializers */
} ferry_model_info;
void ferry_model_get_info(const ferry_model *m, ferry_model_info *out);

/* Op histogram over the whole model (subgraphs included): calls fn once per distinct
 * "domain:op" (default domain without the prefix) with its node count. */
void ferry_model_foreach_op(const ferry_model *m,
                            void (*fn)(const char *op, int64_t count, void *user), void *user);

/* Flags for ferry_model_load_flags. */
#define FERRY_LOAD_ALLOW_UNSUPPORTED 1u /* load even if some ops have no kernel (for inspect);
                                           sessions on such a model fail to be created */
#define FERRY_LOAD_NO_OPTIMIZE 2u       /* keep the graph as the file has it (no folding or
                                           fusion at load) */

ferry_status ferry_model_load_flags(const char *path, unsigned flags, ferry_model **out);
/* Newline-separated "Op (node "name", opset N)" list of ops without a kernel, or NULL when
 * every op is supported. Owned by the model. */
const char *ferry_model_unsupported_ops(const ferry_model *m);

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct ferry_session_options {
    int threads; /* 0: one per core */
} ferry_session_options;

/* A session runs a model. It holds a reference to the model. ferry_session_run may be called
 * from several threads at once: each call is its own run; the session's kernel state (prepared
 * weights) and buffer pool are shared. */
typedef struct ferry_session ferry_session;

ferry_status ferry_session_create(ferry_model *m, const ferry_session_options *opts,
                                  ferry_session **out);
void ferry_session_free(ferry_session *s);

/* Run the model. inputs[i] is bound to the graph input named names[i]; every graph input
 * without an initializer must be given. outputs receives one new value per graph output, in
 * graph order (ferry_model_output), which the caller frees. Inputs are only read. */
ferry_status ferry_session_run(ferry_session *s, int n_inputs, const char *const *names,
                               ferry_value *const *inputs, ferry_value **outputs);

/* FLOPs of the last run (Conv, MatMul, Gemm and recurrent layers, from their real shapes). */
double ferry_session_last_flops(const ferry_session *s);

/* Profiling: while on, every run adds each node's calls and wall time to counters that are reset
 * when profiling is switched on. Use one thread per session while profiling. */
ferry_status ferry_session_set_profiling(ferry_session *s, int on);

typedef struct ferry_node_profile {
    const char *node;    /* node name */
    const char *op;      /* op type */
    const char *backend; /* "reference", "dnnl", ... */
    int64_t calls;
    double seconds;
} ferry_node_profile;

/* Calls fn once per node (subgraphs included) that ran while profiling; strings belong to the
 * model. */
void ferry_session_foreach_profile(const ferry_session *s,
                                   void (*fn)(const ferry_node_profile *p, void *user), void *user);

#ifdef __cplusplus
}
#endif
#endif
