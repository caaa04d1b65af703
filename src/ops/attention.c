/* attention.c — ai.ferry FusedAttention: Y = softmax(scale · Q·Kᵀ) · V for each of N heads, the
 * kernel behind the load-time attention fusion (src/optimize/fuse_attention.c). The scores of a
 * block of query rows stay in a per-thread scratch that fits in cache, and the transposes that
 * exporters put around attention become strides here, so no transposed copy is ever made.
 *
 * Attributes say how each input is laid out (S = sequence, D = head size):
 *   q_seq_first    0: Q is [N, Sq, D]       1: Q is [Sq, N, D]
 *   k_layout       0: Kᵀ is [N, D, Sk]      1: K is [N, Sk, D]     2: K is [Sk, N, D]
 *   v_seq_first    0: V is [N, Sk, Dv]      1: V is [Sk, N, Dv]
 *   out_seq_first  0: Y is [N, Sq, Dv]      1: Y is [Sq, N, Dv]
 *   scale          applied to the scores before the softmax (default 1) */
#include <omp.h>
#include <stdlib.h>

#include "core/pool.h"
#include "ops/kernel.h"
#include "ops/nn_util.h"

#define ROW_BLOCK 32 /* query rows per task: their scores stay in L2 */

typedef struct head_view {
    const float *base;
    int64_t head_stride; /* from one head to the next */
    int64_t row_stride;  /* from one sequence position to the next */
} head_view;

/* Head-major [N, S, W] or sequence-first [S, N, W] rows of width W. */
static head_view rows_of(const float *data, int seq_first, int64_t n, int64_t s, int64_t w)
{
    return seq_first ? (head_view){data, w, n * w} : (head_view){data, s * w, w};
}

static ferry_status input3(fy_kernel *k, int i, const fy_value **t)
{
    FY_CHECK(fy_input_tensor(k, i, t));
    if ((*t)->dtype != FERRY_DTYPE_F32 || (*t)->rank != 3)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must be a float32 tensor of rank 3", i);
    return FERRY_OK;
}

ferry_status fy_op_FusedAttention(fy_kernel *k)
{
    const fy_value *q, *kk, *v;
    FY_CHECK(input3(k, 0, &q));
    FY_CHECK(input3(k, 1, &kk));
    FY_CHECK(input3(k, 2, &v));
    int q_sf = fy_attr_int(k, "q_seq_first", 0) != 0, v_sf = fy_attr_int(k, "v_seq_first", 0) != 0;
    int o_sf = fy_attr_int(k, "out_seq_first", 0) != 0;
    int64_t k_layout = fy_attr_int(k, "k_layout", 0);
    float scale = fy_attr_float(k, "scale", 1.0f);
    if (k_layout < 0 || k_layout > 2)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "k_layout must be 0, 1 or 2");

    int64_t n = q->dims[q_sf], sq = q->dims[!q_sf], d = q->dims[2];
    int64_t kn = kk->dims[k_layout == 2], kd = kk->dims[k_layout == 0 ? 1 : 2];
    int64_t sk = kk->dims[k_layout == 0 ? 2 : k_layout == 1 ? 1 : 0];
    int64_t vn = v->dims[v_sf], vs = v->dims[!v_sf], dv = v->dims[2];
    if (kn != n || vn != n || kd != d || vs != sk)
        return fy_kernel_error(k, FERRY_E_SHAPE, "Q has %lld heads of %lldx%lld, K %lld of %lld "
                               "keys x %lld, V %lld of %lldx%lld: they do not fit together",
                               (long long)n, (long long)sq, (long long)d, (long long)kn,
                               (long long)sk, (long long)kd, (long long)vn, (long long)vs,
                               (long long)dv);
    int64_t ydims[3] = {o_sf ? sq : n, o_sf ? n : sq, dv};
    fy_value *y;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_F32, 3, ydims, &y));
    if (y->count == 0) return FERRY_OK;
    if (sk == 0) { /* softmax over nothing: every row of weights is empty, so Y is zero */
        for (int64_t i = 0; i < y->count; i++) ((float *)y->data)[i] = 0;
        return FERRY_OK;
    }

    head_view qv = rows_of(q->data, q_sf, n, sq, d), vv = rows_of(v->data, v_sf, n, sk, dv);
    head_view yv = rows_of(y->data, o_sf, n, sq, dv);
    /* Kᵀ given: scores = Q·B with B = Kᵀ[h] (ld Sk). K given: scores = Q·Kᵀ (transposed B). */
    head_view kv = k_layout == 0 ? (head_view){kk->data, d * sk, sk}
                                 : rows_of(kk->data, k_layout == 2, n, sk, d);
    int trans_k = k_layout != 0;

    int64_t blocks = (sq + ROW_BLOCK - 1) / ROW_BLOCK, tasks = n * blocks;
    int nth = omp_get_max_threads();
    if (nth > tasks) nth = (int)tasks;
    size_t scratch_bytes = sizeof(float) * (size_t)nth * ROW_BLOCK * (size_t)sk;
    float *scratch = k->pool ? fy_pool_take(k->pool, scratch_bytes) : malloc(scratch_bytes);
    if (!scratch) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory for attention scores");
    int failed = 0;

#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t h = t / blocks, r0 = t % blocks * ROW_BLOCK;
        int64_t rows = sq - r0 < ROW_BLOCK ? sq - r0 : ROW_BLOCK;
        float *s = scratch + (size_t)omp_get_thread_num() * ROW_BLOCK * (size_t)sk;
        const float *qh = qv.base + h * qv.head_stride + r0 * qv.row_stride;
        const float *kh = kv.base + h * kv.head_stride;
        ferry_status rc = fy_sgemm(0, trans_k, rows, sk, d, scale, qh, qv.row_stride, kh,
                                   kv.row_stride, 0.0f, s, sk);
        fy_softmax_rows_f32(s, rows, sk);
        if (rc == FERRY_OK)
            rc = fy_sgemm(0, 0, rows, dv, sk, 1.0f, s, sk, vv.base + h * vv.head_stride,
                          vv.row_stride, 0.0f, (float *)yv.base + h * yv.head_stride +
                          r0 * yv.row_stride, yv.row_stride);
        if (rc != FERRY_OK) __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
    }
    if (k->pool) fy_pool_put(k->pool, scratch, scratch_bytes);
    else free(scratch);
    if (failed) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory in attention GEMMs");
    return FERRY_OK;
}
