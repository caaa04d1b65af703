/* tensor_util.h — helpers shared by the tensor op family (shape.c, transpose.c, concat_split.c,
 * gather_scatter.c, select.c): byte-level data movement that also works for string tensors. */
#ifndef FY_OPS_TENSOR_UTIL_H
#define FY_OPS_TENSOR_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ops/kernel.h"

/* Data movement kernels copy element bytes whatever the dtype. For string tensors those bytes
 * are char * owned by the input, so a kernel brackets the copy:
 *   fy_move_strings_begin(out)    frees out's initial "" strings, leaving NULL pointers;
 *   ... copy pointers from inputs (or leave NULL, which becomes "") ...
 *   return fy_move_strings_end(out, rc);
 * On rc == FERRY_OK, _end replaces every borrowed pointer by a private copy; otherwise it
 * forgets the borrowed pointers so out can be freed safely, and returns rc. Both do nothing
 * for other dtypes. Between the two calls out must not be freed. */
void fy_move_strings_begin(fy_value *out);
ferry_status fy_move_strings_end(fy_value *out, ferry_status rc);

/* dst (contiguous, C order over dims) gets, for each index i, the element of src at
 * sum(i[d] * strides[d]) (strides in elements; zero and negative are fine, src points at the
 * element of index 0). rank may be up to 2 * FERRY_MAX_RANK. Inner runs with stride 1 are
 * copied with memcpy, and large copies run on several threads. */
void fy_move_strided(void *dst, const void *src, size_t esz, int rank, const int64_t *dims,
                     const int64_t *strides);

/* dst gets src (C order over in_dims) permuted: output dim i is input dim perm[i]. */
void fy_move_transpose(void *dst, const void *src, size_t esz, int rank, const int64_t *in_dims,
                       const int *perm);

/* Fill count elements of esz bytes at dst with the element at elem. */
void fy_move_fill(void *dst, int64_t count, size_t esz, const void *elem);

/* C-order strides (in elements) of a shape. */
void fy_move_strides(int rank, const int64_t *dims, int64_t *strides);

/* Input i as one integer: a scalar or a one-element tensor of an integer type. */
ferry_status fy_read_scalar_i64(const fy_kernel *k, int i, int64_t *v);

#endif
