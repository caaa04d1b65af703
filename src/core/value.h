/* value.h — ferry's runtime values: reference-counted tensors (over shared buffers),
 * sequences of tensors, and empty optionals. Kernels, the executor and the API share them. */
#ifndef FY_CORE_VALUE_H
#define FY_CORE_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "ferry/ferry.h"

/* Storage shared by tensors that view the same bytes (Reshape, Identity, weights). release()
 * frees data when the last reference goes; NULL release means the memory is borrowed (a
 * model's weights: the session copies any that would escape as an output). */
typedef struct fy_buffer {
    int refcount;
    void *data;
    size_t size;
    ferry_dtype dtype; /* for strings: release frees every char * */
    int64_t count;
    void (*release)(struct fy_buffer *b);
    void *release_ctx;
    int borrowed;         /* data belongs to someone else (a model's weights): never written */
    struct fy_pool *pool; /* where data goes back when the buffer dies, or NULL: free() */
} fy_buffer;

/* A backend's memory layout (e.g. oneDNN's blocked nChw16c). A tensor with one keeps its
 * logical dims in dims[] and its bytes in that layout; to_plain makes the row-major copy every
 * other kernel expects (the executor calls it), release frees the layout's descriptor. */
typedef struct fy_layout {
    const char *name;
    ferry_status (*to_plain)(const struct ferry_value *v, struct ferry_value **out);
    void (*release)(void *desc);
} fy_layout;

struct ferry_value {
    int refcount;
    ferry_value_kind kind;
    /* tensor */
    ferry_dtype dtype; /* also the element type of a sequence */
    int rank;
    int64_t dims[FERRY_MAX_RANK];
    int64_t count;
    void *data;
    fy_buffer *buf;
    const fy_layout *layout; /* NULL: plain row-major */
    void *layout_desc;
    /* sequence */
    int64_t seq_len, seq_cap;
    struct ferry_value **items;
    struct fy_pool *pool; /* where this header goes back when it dies, or NULL: free() */
};

typedef struct ferry_value fy_value;

/* New tensor with fresh (uninitialized, 64-byte aligned) storage; strings start as "". */
ferry_status fy_tensor_new(ferry_dtype dtype, int rank, const int64_t *dims, fy_value **out);
/* Same, with storage recycled through pool (NULL: plain allocation). */
ferry_status fy_tensor_new_pooled(struct fy_pool *pool, ferry_dtype dtype, int rank,
                                  const int64_t *dims, int zero, fy_value **out);
/* Same, zero-filled. */
ferry_status fy_tensor_zeros(ferry_dtype dtype, int rank, const int64_t *dims, fy_value **out);
/* New tensor over src's storage with another shape of the same element count (no copy). */
ferry_status fy_tensor_view(const fy_value *src, int rank, const int64_t *dims, fy_value **out);
/* Deep copy of a tensor (strings duplicated). */
ferry_status fy_tensor_clone(const fy_value *src, fy_value **out);
/* Tensor over borrowed memory that outlives it (a model's weights); never freed through it. */
ferry_status fy_tensor_borrow(ferry_dtype dtype, int rank, const int64_t *dims, void *data,
                              fy_value **out);
/* The same, but release(buffer) runs when the last value over it dies, with release_ctx set
 * to ctx: the owner can then drop memory nobody uses any more. */
ferry_status fy_tensor_borrow_release(ferry_dtype dtype, int rank, const int64_t *dims,
                                      void *data, void (*release)(fy_buffer *b), void *ctx,
                                      fy_value **out);
/* Scalar helpers for kernels that produce one number. */
ferry_status fy_tensor_scalar_i64(int64_t v, fy_value **out);

ferry_status fy_sequence_new(ferry_dtype elem, fy_value **out);
/* Appends item; the sequence takes the caller's reference. */
ferry_status fy_sequence_push(fy_value *seq, fy_value *item);
ferry_status fy_none_new(fy_value **out);

fy_value *fy_value_ref(fy_value *v);
void fy_value_unref(fy_value *v);

/* Element count of a shape; -1 on overflow or a negative dim. */
int64_t fy_shape_count(int rank, const int64_t *dims);
bool fy_shape_equal(int ra, const int64_t *a, int rb, const int64_t *b);
/* "[1,3,224,224]" into buf. */
const char *fy_shape_str(int rank, const int64_t *dims, char *buf, size_t size);

/* Numpy-style broadcast of two shapes; fails with FERRY_E_SHAPE naming both. */
ferry_status fy_broadcast_shape(int ra, const int64_t *a, int rb, const int64_t *b, int *rank_out,
                                int64_t *dims_out);
/* Strides (in elements) of `in` when broadcast to out's shape: 0 along broadcast dims. */
void fy_broadcast_strides(int rin, const int64_t *din, int rout, const int64_t *dout,
                          int64_t *strides);

/* Element i converted to double / int64 (any numeric dtype, bool, f16, bf16). */
double fy_tensor_get_f64(const fy_value *t, int64_t i);
int64_t fy_tensor_get_i64(const fy_value *t, int64_t i);
/* Store a double into element i, converting to the tensor's dtype (saturating casts are the
 * caller's business; this is C conversion). */
void fy_tensor_set_f64(fy_value *t, int64_t i, double v);
void fy_tensor_set_i64(fy_value *t, int64_t i, int64_t v);

bool fy_dtype_is_float(ferry_dtype t);   /* f16, bf16, f32, f64 */
bool fy_dtype_is_int(ferry_dtype t);     /* signed and unsigned integers */
bool fy_dtype_is_signed(ferry_dtype t);  /* signed ints and floats */
bool fy_dtype_is_numeric(ferry_dtype t); /* ints, floats, bool */

float fy_half_to_float(uint16_t h);
uint16_t fy_float_to_half(float f);
float fy_bf16_to_float(uint16_t h);
uint16_t fy_float_to_bf16(float f);

#endif
