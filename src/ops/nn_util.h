/* nn_util.h — internals shared by the nn op family (matmul.c, conv.c, pool.c, norm.c,
 * reduce.c): the one float GEMM every MatMul/Gemm/Conv goes through, and window geometry. */
#ifndef FY_OPS_NN_UTIL_H
#define FY_OPS_NN_UTIL_H

#include <stdint.h>

#include "ops/kernel.h"

/* C = alpha * op(A) * op(B) + beta * C, row-major, op(X) = X or X^T as trans says.
 * op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides in elements.
 * When beta is 0, C is only written (NaNs in it do not survive). Runs on the OpenMP team
 * (serially when called from inside a parallel region). This is the single entry point that
 * a BLAS or oneDNN backend replaces. Fails only with FERRY_E_NOMEM (packing buffers). */
ferry_status fy_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);
/* Softmax of each of `rows` contiguous rows of n floats, in place (the Softmax kernel's own
 * vectorized row loop; the fused attention kernel shares it). */
void fy_softmax_rows_f32(float *x, int64_t rows, int64_t n);
/* The same in double precision (a plain blocked loop: float64 models are rare). */
ferry_status fy_dgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                      double *C, int64_t ldc);

/* Sliding-window geometry for Conv and the pools. Spatial dims are normalized to exactly three
 * by adding leading unit dims (kernel 1, stride 1, no padding), so one loop nest serves 1-D,
 * 2-D and 3-D. Index 3 - nsp + i holds the model's spatial dim i. */
#define FY_WIN_DIMS 3
typedef struct fy_window {
    int nsp; /* spatial dims of the model (1..3) */
    int64_t in[FY_WIN_DIMS], out[FY_WIN_DIMS], kernel[FY_WIN_DIMS], stride[FY_WIN_DIMS],
        dil[FY_WIN_DIMS], pad0[FY_WIN_DIMS], pad1[FY_WIN_DIMS];
} fy_window;

/* Read kernel_shape (or use `kernel` from the weights when the attribute is absent; kernel may
 * be NULL for pools, which then require the attribute), strides, dilations (when use_dilations),
 * pads and auto_pad, and compute output sizes; ceil_mode rounds up as the pools allow (a
 * window that would start in the end padding is dropped, as PyTorch does). x is the N,C,...
 * input. Errors name the node. */
ferry_status fy_window_init(const fy_kernel *k, const fy_value *x, const int64_t *kernel,
                            int use_dilations, int ceil_mode, fy_window *w);

/* Float view of an f32, f16 or bf16 tensor: f32 data is borrowed (*owned NULL), the halves are
 * converted into a new buffer the caller frees (*owned). NULL on allocation failure. */
const float *fy_nn_to_float(const fy_value *t, float **owned);
/* Store t->count floats into an f32, f16 or bf16 tensor (no-op when src is its own data). */
void fy_nn_from_float(fy_value *t, const float *src);

#endif
