/* dnnl_matmul.c — MatMul, Gemm and com.microsoft FusedGemm on oneDNN's matmul primitive. A
 * constant 2-D B is reordered once per session (alpha folded in, beta * C kept as the bias),
 * and X @ B over any leading dims runs as one [rows, K] x [K, N] product; MatMuls of two
 * computed tensors (attention) run batched with broadcasting. */
#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>
#define MM_HAVE_GEMV 1
#endif

enum mm_kind { MM_MATMUL, MM_GEMM, MM_FUSED_GEMM };

#define MM_KEY (2 * FERRY_MAX_RANK + 4) /* rank, threads, A's and B's dims */

typedef struct mm_entry {
    int64_t key[MM_KEY];
    int ok;
    fy_dnnl_prim p; /* SRC, WEIGHTS, DST[, BIAS] */
    const float *w; /* constant B in the primitive's layout */
    float *own_w;
} mm_entry;

typedef struct mm_state {
    pthread_mutex_t mu;
    enum mm_kind kind;
    int const_b;
    int trans_a;
    int64_t k, n;
    const float *b;          /* constant B as stored (alpha applied) */
    float *b_scaled;         /* owned copy when alpha != 1 */
    dnnl_memory_desc_t b_md; /* logical [K, N] over b's storage */
    float *w;                /* B reordered once, in w_md */
    dnnl_memory_desc_t w_md;
    float *bias;            /* beta * C */
    int64_t bias_m, bias_n; /* its logical [m, n] (each 1 or the full size) */
    dnnl_primitive_attr_t attr;
    mm_entry *entries[FY_DNNL_MAX_SHAPES];
    int n_entries;
    /* small batches: B packed for the GEMV kernel below on the first such batch (NULL: oneDNN
     * runs every batch) */
    float *gw;
    float *gbias; /* the bias padded to whole blocks (NULL: none) */
    int64_t gw_blocks;
    int gw_tried;
    int act; /* FusedGemm's activation, applied after the GEMV */
    float act_alpha, act_beta;
} mm_state;

/* ---- small batches ----------------------------------------------------------------------

 * At a few rows a product is a matrix-vector one: the time goes to reading B (an MLP layer's
 * 200 KB) and to oneDNN's per-call work, which at batch 1 cost more than the arithmetic. B is
 * packed in blocks of GEMV_BLOCK columns, [block][K][GEMV_BLOCK], each block read once for all
 * rows; blocks are split between threads when B is large enough to pay for it. */
#define GEMV_MAX_M   4
#define GEMV_BLOCK   32
#define GEMV_PAR_MIN (1 << 15) /* K * N from which blocks go to several threads */
#define GEMV_MAX_B   (1 << 22) /* larger B: oneDNN only (no second copy of the weights) */

enum mm_act {
    ACT_NONE,
    ACT_RELU,
    ACT_LEAKY,
    ACT_SIGMOID,
    ACT_TANH,
    ACT_HARD_SIGMOID,
    ACT_HARD_SWISH,
    ACT_CLIP
};

static float activate(const mm_state *st, float v)
{
    switch (st->act) {
    case ACT_RELU: return v < 0 ? 0 : v;
    case ACT_LEAKY: return v < 0 ? st->act_alpha * v : v;
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case ACT_TANH: return tanhf(v);
    case ACT_HARD_SIGMOID: {
        float h = st->act_alpha * v + st->act_beta;
        return h < 0 ? 0 : h > 1 ? 1 : h;
    }
    case ACT_HARD_SWISH: {
        float h = v * (1.0f / 6) + 0.5f;
        return v * (h < 0 ? 0 : h > 1 ? 1 : h);
    }
    case ACT_CLIP: return v < st->act_alpha ? st->act_alpha : v > st->act_beta ? st->act_beta : v;
    default: return v;
    }
}

#ifdef MM_HAVE_GEMV
/* y[r][0..nn) = bias + sum over k of x[r][k] * w[k][0..nn) (nn <= 32), then Relu when asked,
 * for m (<= GEMV_MAX_M) rows; even and odd k accumulate apart so the FMA chains overlap. */
__attribute__((target("avx512f"), always_inline)) static inline void
gemv_rows(int m, int64_t K, const float *x, int64_t ldx, const float *w, const float *bias,
          int relu, float *y, int64_t ldy, int nn)
{
    __m512 a[GEMV_MAX_M][2], b[GEMV_MAX_M][2];
    for (int r = 0; r < m; r++)
        a[r][0] = a[r][1] = b[r][0] = b[r][1] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 1 < K; k += 2) {
        const float *wk = w + k * GEMV_BLOCK;
        __m512 w0 = _mm512_load_ps(wk), w1 = _mm512_load_ps(wk + 16);
        __m512 w2 = _mm512_load_ps(wk + 32), w3 = _mm512_load_ps(wk + 48);
        for (int r = 0; r < m; r++) {
            __m512 x0 = _mm512_set1_ps(x[r * ldx + k]), x1 = _mm512_set1_ps(x[r * ldx + k + 1]);
            a[r][0] = _mm512_fmadd_ps(x0, w0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(x0, w1, a[r][1]);
            b[r][0] = _mm512_fmadd_ps(x1, w2, b[r][0]);
            b[r][1] = _mm512_fmadd_ps(x1, w3, b[r][1]);
        }
    }
    if (k < K) {
        const float *wk = w + k * GEMV_BLOCK;
        __m512 w0 = _mm512_load_ps(wk), w1 = _mm512_load_ps(wk + 16);
        for (int r = 0; r < m; r++) {
            __m512 x0 = _mm512_set1_ps(x[r * ldx + k]);
            a[r][0] = _mm512_fmadd_ps(x0, w0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(x0, w1, a[r][1]);
        }
    }
    __mmask16 m0 = nn >= 16 ? 0xffff : (__mmask16)((1u << nn) - 1);
    __mmask16 m1 = nn >= 32 ? 0xffff : nn > 16 ? (__mmask16)((1u << (nn - 16)) - 1) : 0;
    __m512 zero = _mm512_setzero_ps();
    __m512 b0 = bias ? _mm512_load_ps(bias) : zero, b1 = bias ? _mm512_load_ps(bias + 16) : zero;
    for (int r = 0; r < m; r++) {
        /* the product first, then the bias: the reference's order */
        __m512 v0 = _mm512_add_ps(_mm512_add_ps(a[r][0], b[r][0]), b0);
        __m512 v1 = _mm512_add_ps(_mm512_add_ps(a[r][1], b[r][1]), b1);
        if (relu) {
            /* max(0, v) keeps NaN (the second operand wins on unordered), as x < 0 ? 0 : x */
            v0 = _mm512_max_ps(zero, v0);
            v1 = _mm512_max_ps(zero, v1);
        }
        _mm512_mask_storeu_ps(y + r * ldy, m0, v0);
        _mm512_mask_storeu_ps(y + r * ldy + 16, m1, v1);
    }
}

__attribute__((target("avx512f"))) static void gemv_block(int m, int64_t K, const float *x,
                                                          const float *w, const float *bias,
                                                          int relu, float *y, int64_t ldy, int nn)
{
    switch (m) {
    case 1: gemv_rows(1, K, x, K, w, bias, relu, y, ldy, nn); break;
    case 2: gemv_rows(2, K, x, K, w, bias, relu, y, ldy, nn); break;
    case 3: gemv_rows(3, K, x, K, w, bias, relu, y, ldy, nn); break;
    default: gemv_rows(4, K, x, K, w, bias, relu, y, ldy, nn); break;
    }
}
#endif

/* Columns [n0, n0 + GEMV_BLOCK) of y[m, N] = x[m, K] @ B (+ bias, activation). */
static void gemv_one_block(const mm_state *st, int m, const float *x, float *y, int64_t blk)
{
#ifdef MM_HAVE_GEMV
    int64_t K = st->k, N = st->n, n0 = blk * GEMV_BLOCK;
    int nn = (int)(N - n0 < GEMV_BLOCK ? N - n0 : GEMV_BLOCK);
    const float *bias = st->gbias ? st->gbias + n0 : NULL;
    gemv_block(m, K, x, st->gw + blk * K * GEMV_BLOCK, bias, st->act == ACT_RELU, y + n0, N, nn);
    if (st->act != ACT_NONE && st->act != ACT_RELU)
        for (int r = 0; r < m; r++)
            for (int j = 0; j < nn; j++)
                y[r * N + n0 + j] = activate(st, y[r * N + n0 + j]);
#else
    (void)st, (void)m, (void)x, (void)y, (void)blk;
#endif
}

/* y[m, N] = x[m, K] @ B (+ bias, activation) on the packed B. The serial case stays outside
 * any parallel construct: entering one, even with if(0), costs libgomp a futex round trip when
 * the previous region had more threads. */
static void gemv_run(const mm_state *st, int m, const float *x, float *y)
{
    if (st->gw_blocks > 1 && st->k * st->n >= GEMV_PAR_MIN && !omp_in_parallel() &&
        omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t blk = 0; blk < st->gw_blocks; blk++)
            gemv_one_block(st, m, x, y, blk);
    } else {
        for (int64_t blk = 0; blk < st->gw_blocks; blk++)
            gemv_one_block(st, m, x, y, blk);
    }
}

/* Pack B (logical [K, N] over st->b, strided as st->b_md says) for gemv_run, when the CPU has
 * AVX-512 and the bias is a row (or absent). Called under st->mu. */
static void gemv_prepare(mm_state *st)
{
#ifdef MM_HAVE_GEMV
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || st->trans_a || st->k * st->n > GEMV_MAX_B ||
        (st->bias && st->bias_m != 1))
        return;
    int64_t K = st->k, N = st->n, nb = (N + GEMV_BLOCK - 1) / GEMV_BLOCK;
    const int64_t *strides = st->b_md.format_desc.blocking.strides;
    float *gw = aligned_alloc(64, sizeof(float) * (size_t)(nb * K * GEMV_BLOCK));
    if (!gw) return;
    for (int64_t blk = 0; blk < nb; blk++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < GEMV_BLOCK; j++) {
                int64_t n = blk * GEMV_BLOCK + j;
                gw[(blk * K + k) * GEMV_BLOCK + j] =
                    n < N ? st->b[k * strides[0] + n * strides[1]] : 0.0f;
            }
    if (st->bias) {
        st->gbias = aligned_alloc(64, sizeof(float) * (size_t)(nb * GEMV_BLOCK));
        if (!st->gbias) {
            free(gw);
            return;
        }
        for (int64_t n = 0; n < nb * GEMV_BLOCK; n++)
            st->gbias[n] = n >= N ? 0.0f : st->bias[st->bias_n == 1 ? 0 : n];
    }
    st->gw = gw;
    st->gw_blocks = nb;
#else
    (void)st;
#endif
}

/* ---- supports ---------------------------------------------------------------------------- */

bool fy_dnnl_MatMul_supports(const fy_node *n, const fy_graph *g)
{
    return fy_dnnl_engine() && n->n_inputs == 2 && n->n_outputs == 1 &&
           fy_dnnl_maybe_f32(n, g, 0) && fy_dnnl_maybe_f32(n, g, 1);
}

static bool gemm_supports(const fy_node *n, const fy_graph *g)
{
    if (!fy_dnnl_engine() || n->n_inputs < 2 || n->n_inputs > 3 || n->n_outputs != 1 ||
        !fy_dnnl_maybe_f32(n, g, 0))
        return false;
    const fy_value *b = fy_dnnl_init_f32(n, g, 1);
    if (!b || b->rank != 2 || b->count == 0) return false;
    int64_t N = fy_dnnl_attr_int(n, "transB", 0) ? b->dims[0] : b->dims[1];
    if (fy_dnnl_has_input(n, 2)) {
        const fy_value *c = fy_dnnl_init_f32(n, g, 2);
        if (!c || c->rank > 2) return false;
        if (c->rank >= 1 && c->dims[c->rank - 1] != N && c->dims[c->rank - 1] != 1) return false;
        if (c->rank == 2 && c->dims[0] < 1) return false;
    }
    return true;
}

bool fy_dnnl_Gemm_supports(const fy_node *n, const fy_graph *g) { return gemm_supports(n, g); }

/* FusedGemm: activation_alpha / activation_beta parameterize LeakyRelu, HardSigmoid and Clip
 * (min, max). */
bool fy_dnnl_FusedGemm_supports(const fy_node *n, const fy_graph *g)
{
    if (!fy_op_find(n->domain, n->op_type, n->opset) || !gemm_supports(n, g)) return false;
    const char *act = fy_dnnl_attr_string(n, "activation", NULL);
    return !act || fy_dnnl_activation_known(act) || !*act;
}

/* ---- prepare / release ------------------------------------------------------------------- */

static void entry_free(mm_entry *e)
{
    if (!e) return;
    fy_dnnl_prim_free(&e->p);
    free(e->own_w);
    free(e);
}

static void mm_release(void *p)
{
    mm_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++)
        entry_free(st->entries[i]);
    if (st->attr) dnnl_primitive_attr_destroy(st->attr);
    free(st->b_scaled), free(st->w), free(st->bias), free(st->gw), free(st->gbias);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

void fy_dnnl_MatMul_release(void *state) { mm_release(state); }
void fy_dnnl_Gemm_release(void *state) { mm_release(state); }
void fy_dnnl_FusedGemm_release(void *state) { mm_release(state); }

/* Descriptor of the constant-B product [m, K] x [K, N] (+ bias) with weights wmd (NULL: any). */
static dnnl_primitive_desc_t const_pd(const mm_state *st, int64_t m, const dnnl_memory_desc_t *wmd,
                                      int serial)
{
    dnnl_dims_t sd = {m, st->k}, wd = {st->k, st->n}, dd = {m, st->n};
    dnnl_dims_t bd = {st->bias_m, st->bias_n}, sa = {1, m};
    dnnl_memory_desc_t src, w, dst, bias;
    dnnl_status_t s = st->trans_a ? dnnl_memory_desc_init_by_strides(&src, 2, sd, dnnl_f32, sa)
                                  : dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_f32, dnnl_ab);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&bias, 2, bd, dnnl_f32, dnnl_ab);
    if (s == dnnl_success && !wmd)
        s = dnnl_memory_desc_init_by_tag(&w, 2, wd, dnnl_f32, dnnl_format_tag_any);
    if (s != dnnl_success) return NULL;
    if (wmd) w = *wmd;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &src, &w, st->bias ? &bias : NULL, &dst) != dnnl_success)
        return NULL;
    return fy_dnnl_pd_create(&desc, st->attr, serial);
}

static int is_serial(double macs) { return macs < FY_DNNL_SERIAL_MACS; }

/* Reorder B into the layout a product with a likely row count prefers. */
static void prepare_weights(const fy_node *n, const fy_graph *g, mm_state *st)
{
    const fy_type_info *t = &g->values[n->inputs[0]].type;
    int64_t m = 1;
    for (int i = 0; t->rank >= 1 && i < t->rank - 1; i++)
        if (t->dims[i] > 0) m *= t->dims[i];
    if (st->kind != MM_MATMUL && t->rank == 2 && st->trans_a) m = t->dims[1] > 0 ? t->dims[1] : 1;
    dnnl_primitive_desc_t pd = const_pd(st, m, NULL, is_serial((double)m * st->k * st->n));
    if (!pd) return;
    float *w = fy_dnnl_reorder_weights(pd, &st->b_md, st->b, &st->w_md);
    if (w) st->w = w;
    dnnl_primitive_desc_destroy(pd);
}

static ferry_status fused_gemm_attr(const fy_node *n, mm_state *st)
{
    const char *act = fy_dnnl_attr_string(n, "activation", NULL);
    if (!act || !*act) return FERRY_OK;
    int leaky = strcmp(act, "LeakyRelu") == 0, clip = strcmp(act, "Clip") == 0;
    /* the defaults of LeakyRelu (alpha), HardSigmoid (alpha, beta) and Clip (min, max) */
    float alpha = leaky ? 0.01f : clip ? -FLT_MAX : 0.2f, beta = clip ? FLT_MAX : 0.5f;
    float params[2] = {fy_dnnl_attr_float(n, "activation_alpha", alpha),
                       fy_dnnl_attr_float(n, "activation_beta", beta)};
    st->act = !strcmp(act, "Relu")          ? ACT_RELU
              : leaky                       ? ACT_LEAKY
              : clip                        ? ACT_CLIP
              : !strcmp(act, "Sigmoid")     ? ACT_SIGMOID
              : !strcmp(act, "Tanh")        ? ACT_TANH
              : !strcmp(act, "HardSigmoid") ? ACT_HARD_SIGMOID
              : !strcmp(act, "HardSwish")   ? ACT_HARD_SWISH
                                            : ACT_NONE;
    st->act_alpha = params[0], st->act_beta = params[1];
    dnnl_post_ops_t ops;
    FY_CHECK(fy_dnnl_check(dnnl_post_ops_create(&ops), "post-ops"));
    ferry_status rc = FERRY_OK;
    if (!fy_dnnl_append_activation(ops, act, params, 2))
        rc = fy_error(FERRY_E_UNSUPPORTED, "activation %s", act);
    if (rc == FERRY_OK) rc = fy_dnnl_check(dnnl_primitive_attr_create(&st->attr), "attributes");
    if (rc == FERRY_OK)
        rc = fy_dnnl_check(dnnl_primitive_attr_set_post_ops(st->attr, ops), "post-ops");
    dnnl_post_ops_destroy(ops);
    return rc;
}

static ferry_status mm_prepare(const fy_node *n, const fy_graph *g, void **state, enum mm_kind kind)
{
    *state = NULL;
    mm_state *st = calloc(1, sizeof *st);
    if (!st) return fy_error(FERRY_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    st->kind = kind;
    const fy_value *b = fy_dnnl_init_f32(n, g, 1);
    ferry_status rc = FERRY_OK;
    st->const_b = b && b->rank == 2 && b->count > 0;
    if (!st->const_b) goto out;
    int trans_b = kind != MM_MATMUL && fy_dnnl_attr_int(n, "transB", 0) != 0;
    st->trans_a = kind != MM_MATMUL && fy_dnnl_attr_int(n, "transA", 0) != 0;
    st->k = trans_b ? b->dims[1] : b->dims[0];
    st->n = trans_b ? b->dims[0] : b->dims[1];
    st->b = b->data;
    float alpha = kind == MM_MATMUL ? 1.0f : fy_dnnl_attr_float(n, "alpha", 1.0f);
    if (alpha != 1.0f) {
        st->b_scaled = malloc(sizeof(float) * (size_t)b->count);
        if (!st->b_scaled) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        const float *src = b->data;
        for (int64_t i = 0; i < b->count; i++)
            st->b_scaled[i] = alpha * src[i];
        st->b = st->b_scaled;
    }
    dnnl_dims_t bd = {st->k, st->n}, bs = {trans_b ? 1 : st->n, trans_b ? st->k : 1};
    rc = fy_dnnl_check(dnnl_memory_desc_init_by_strides(&st->b_md, 2, bd, dnnl_f32, bs),
                       "weights descriptor");
    const fy_value *c = kind != MM_MATMUL ? fy_dnnl_init_f32(n, g, 2) : NULL;
    if (rc == FERRY_OK && c) {
        float beta = fy_dnnl_attr_float(n, "beta", 1.0f);
        st->bias = malloc(sizeof(float) * (size_t)(c->count ? c->count : 1));
        if (!st->bias) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        const float *cv = c->data;
        for (int64_t i = 0; i < c->count; i++)
            st->bias[i] = beta * cv[i];
        st->bias_m = c->rank == 2 ? c->dims[0] : 1;
        st->bias_n = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    }
    if (rc == FERRY_OK && kind == MM_FUSED_GEMM) rc = fused_gemm_attr(n, st);
    if (rc == FERRY_OK) prepare_weights(n, g, st);
out:
    if (rc != FERRY_OK) {
        mm_release(st);
        return rc;
    }
    *state = st;
    return FERRY_OK;
}

ferry_status fy_dnnl_MatMul_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return mm_prepare(n, g, state, MM_MATMUL);
}
ferry_status fy_dnnl_Gemm_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return mm_prepare(n, g, state, MM_GEMM);
}
ferry_status fy_dnnl_FusedGemm_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return mm_prepare(n, g, state, MM_FUSED_GEMM);
}

/* ---- primitives -------------------------------------------------------------------------- */

static const char *impl_name(const_dnnl_primitive_desc_t pd)
{
    const char *s = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    return s ? s : "";
}

/* Constant-B primitive for m rows, on the session's reordered B when it fits. */
static ferry_status const_make(mm_state *st, int64_t m, mm_entry *e)
{
    int serial = is_serial((double)m * st->k * st->n);
    dnnl_primitive_desc_t pd = const_pd(st, m, NULL, serial);
    if (!pd || fy_dnnl_pd_is_ref(pd)) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        return FERRY_OK;
    }
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (st->w && !fy_dnnl_md_equal(want, &st->w_md)) {
        dnnl_primitive_desc_t fixed = const_pd(st, m, &st->w_md, serial);
        if (fixed && strcmp(impl_name(fixed), impl_name(pd)) == 0) {
            dnnl_primitive_desc_destroy(pd);
            pd = fixed;
        } else if (fixed) {
            dnnl_primitive_desc_destroy(fixed);
        }
        want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    }
    ferry_status rc = FERRY_OK;
    if (st->w && fy_dnnl_md_equal(want, &st->w_md)) {
        e->w = st->w;
    } else {
        size_t size = dnnl_memory_desc_get_size(want);
        e->own_w = aligned_alloc(64, (size + 63) / 64 * 64);
        rc = e->own_w ? fy_dnnl_reorder(&st->b_md, st->b, want, e->own_w)
                      : fy_error(FERRY_E_NOMEM, "out of memory reordering weights");
        e->w = e->own_w;
    }
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    if (rc == FERRY_OK) rc = fy_dnnl_prim_init(&e->p, pd, st->bias ? 4 : 3, args, serial);
    e->ok = rc == FERRY_OK;
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* Batched product of two computed operands, both plain, as given by rank r dims. */
static ferry_status batched_make(int r, const int64_t *ad, const int64_t *bd, const int64_t *yd,
                                 mm_entry *e)
{
    dnnl_dims_t a, b, y;
    double macs = (double)ad[r - 1];
    for (int i = 0; i < r; i++)
        a[i] = ad[i], b[i] = bd[i], y[i] = yd[i], macs *= (double)yd[i];
    dnnl_memory_desc_t src, w, dst;
    dnnl_format_tag_t tag = (dnnl_format_tag_t)0;
    switch (r) {
    case 2: tag = dnnl_ab; break;
    case 3: tag = dnnl_abc; break;
    case 4: tag = dnnl_abcd; break;
    case 5: tag = dnnl_abcde; break;
    case 6: tag = dnnl_abcdef; break;
    default: return FERRY_OK;
    }
    if (dnnl_memory_desc_init_by_tag(&src, r, a, dnnl_f32, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&w, r, b, dnnl_f32, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, r, y, dnnl_f32, tag) != dnnl_success)
        return FERRY_OK;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &src, &w, NULL, &dst) != dnnl_success) return FERRY_OK;
    int serial = is_serial(macs);
    dnnl_primitive_desc_t pd = fy_dnnl_pd_create(&desc, NULL, serial);
    if (!pd) return FERRY_OK;
    ferry_status rc = FERRY_OK;
    if (!fy_dnnl_pd_is_ref(pd)) {
        int args[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
        rc = fy_dnnl_prim_init(&e->p, pd, 3, args, serial);
        e->ok = rc == FERRY_OK;
    }
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* The cached entry for key (made by make() on first sight); *temp when the cache is full. */
typedef ferry_status (*make_fn)(mm_state *st, const int64_t *key, void *ctx, mm_entry *e);

static ferry_status entry_get(fy_kernel *k, mm_state *st, const int64_t *key, int nkey,
                              make_fn make, void *ctx, mm_entry **out, int *temp)
{
    *out = NULL;
    *temp = 0;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->n_entries; i++)
        if (memcmp(st->entries[i]->key, key, sizeof(int64_t) * (size_t)nkey) == 0) {
            *out = st->entries[i];
            pthread_mutex_unlock(&st->mu);
            return FERRY_OK;
        }
    ferry_status rc = FERRY_OK;
    mm_entry *e = calloc(1, sizeof *e);
    if (!e) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    if (rc == FERRY_OK) {
        memcpy(e->key, key, sizeof(int64_t) * (size_t)nkey);
        rc = make(st, key, ctx, e);
    }
    if (rc == FERRY_OK && st->n_entries < FY_DNNL_MAX_SHAPES)
        st->entries[st->n_entries++] = e;
    else if (rc == FERRY_OK)
        *temp = 1;
    else
        entry_free(e), e = NULL;
    pthread_mutex_unlock(&st->mu);
    *out = e;
    return rc;
}

static ferry_status make_const(mm_state *st, const int64_t *key, void *ctx, mm_entry *e)
{
    return const_make(st, key[0], e);
}

typedef struct batched_ctx {
    int r;
    const int64_t *a, *b, *y;
} batched_ctx;

static ferry_status make_batched(mm_state *st, const int64_t *key, void *ctx, mm_entry *e)
{
    const batched_ctx *c = ctx;
    return batched_make(c->r, c->a, c->b, c->y, e);
}

/* ---- run --------------------------------------------------------------------------------- */

static ferry_status finish(fy_kernel *k, mm_state *st, mm_entry *e, int temp, void *const *data)
{
    ferry_status rc = fy_dnnl_prim_run(&e->p, &st->mu, k, data);
    if (temp) entry_free(e);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
    return FERRY_OK;
}

static ferry_status run_const(fy_kernel *k, mm_state *st, const fy_value *a)
{
    int64_t m, odims[FERRY_MAX_RANK];
    int orank;
    if (st->kind == MM_MATMUL) {
        if (a->rank < 1 || a->dims[a->rank - 1] != st->k) return fy_dnnl_run_reference(k);
        m = a->count / st->k;
        orank = a->rank;
        memcpy(odims, a->dims, sizeof(int64_t) * (size_t)a->rank);
        odims[orank - 1] = st->n;
    } else {
        if (a->rank != 2 || a->dims[st->trans_a ? 0 : 1] != st->k) return fy_dnnl_run_reference(k);
        m = a->dims[st->trans_a ? 1 : 0];
        if (st->bias && st->bias_m != 1 && st->bias_m != m) return fy_dnnl_run_reference(k);
        orank = 2;
        odims[0] = m, odims[1] = st->n;
    }
    if (m == 0) return fy_dnnl_run_reference(k);
    if (m <= GEMV_MAX_M && !__atomic_load_n(&st->gw_tried, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&st->mu);
        if (!st->gw_tried) gemv_prepare(st);
        __atomic_store_n(&st->gw_tried, 1, __ATOMIC_RELEASE); /* publishes gw */
        pthread_mutex_unlock(&st->mu);
    }
    if (m <= GEMV_MAX_M && st->gw) {
        fy_value *y;
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_F32, orank, odims, &y));
        gemv_run(st, (int)m, a->data, y->data);
        return FERRY_OK;
    }
    mm_entry *e;
    int temp;
    int64_t key[2] = {m, omp_get_max_threads()};
    FY_CHECK(entry_get(k, st, key, 2, make_const, NULL, &e, &temp));
    if (!e->ok) {
        if (temp) entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    fy_value *y;
    ferry_status rc = fy_output(k, 0, FERRY_DTYPE_F32, orank, odims, &y);
    if (rc != FERRY_OK) {
        if (temp) entry_free(e);
        return rc;
    }
    void *data[4] = {a->data, (void *)e->w, y->data, st->bias};
    return finish(k, st, e, temp, data);
}

static ferry_status run_batched(fy_kernel *k, mm_state *st, const fy_value *a, const fy_value *b)
{
    if (a->rank < 1 || b->rank < 1 || a->count == 0 || b->count == 0)
        return fy_dnnl_run_reference(k);
    /* promote 1-D operands, right-align batch dims, check oneDNN's broadcasting (1 or equal) */
    int ra = a->rank < 2 ? 2 : a->rank, rb = b->rank < 2 ? 2 : b->rank, r = ra > rb ? ra : rb;
    int64_t ad[FERRY_MAX_RANK + 1], bd[FERRY_MAX_RANK + 1], yd[FERRY_MAX_RANK + 1];
    for (int i = 0; i < r; i++)
        ad[i] = bd[i] = 1;
    if (a->rank == 1)
        ad[r - 1] = a->dims[0];
    else
        memcpy(ad + r - a->rank, a->dims, sizeof(int64_t) * (size_t)a->rank);
    if (b->rank == 1)
        bd[r - 2] = b->dims[0];
    else
        memcpy(bd + r - b->rank, b->dims, sizeof(int64_t) * (size_t)b->rank);
    if (ad[r - 1] != bd[r - 2]) return fy_dnnl_run_reference(k);
    for (int i = 0; i < r - 2; i++) {
        if (ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1) return fy_dnnl_run_reference(k);
        yd[i] = ad[i] > bd[i] ? ad[i] : bd[i];
    }
    yd[r - 2] = ad[r - 2], yd[r - 1] = bd[r - 1];
    /* the result drops the promoted dims */
    int64_t odims[FERRY_MAX_RANK];
    int orank = 0;
    for (int i = 0; i < r - 2; i++)
        odims[orank++] = yd[i];
    if (a->rank > 1) odims[orank++] = yd[r - 2];
    if (b->rank > 1) odims[orank++] = yd[r - 1];
    if (orank > FERRY_MAX_RANK) return fy_dnnl_run_reference(k);
    int64_t key[MM_KEY] = {r, omp_get_max_threads()};
    memcpy(key + 2, ad, sizeof(int64_t) * (size_t)r);
    memcpy(key + 2 + r, bd, sizeof(int64_t) * (size_t)r);
    batched_ctx ctx = {r, ad, bd, yd};
    mm_entry *e;
    int temp;
    FY_CHECK(entry_get(k, st, key, 2 + 2 * r, make_batched, &ctx, &e, &temp));
    if (!e->ok) {
        if (temp) entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    fy_value *y;
    ferry_status rc = fy_output(k, 0, FERRY_DTYPE_F32, orank, odims, &y);
    if (rc != FERRY_OK) {
        if (temp) entry_free(e);
        return rc;
    }
    void *data[3] = {a->data, b->data, y->data};
    return finish(k, st, e, temp, data);
}

static ferry_status mm_run(fy_kernel *k)
{
    mm_state *st = k->state;
    const fy_value *a = k->n_inputs > 0 ? k->inputs[0] : NULL;
    const fy_value *b = k->n_inputs > 1 ? k->inputs[1] : NULL;
    if (!st || !a || !b || a->kind != FERRY_VALUE_TENSOR || b->kind != FERRY_VALUE_TENSOR ||
        a->dtype != FERRY_DTYPE_F32 || b->dtype != FERRY_DTYPE_F32 || a->count == 0)
        return fy_dnnl_run_reference(k);
    if (st->const_b) return run_const(k, st, a);
    if (st->kind != MM_MATMUL) return fy_dnnl_run_reference(k);
    return run_batched(k, st, a, b);
}

ferry_status fy_dnnl_MatMul_run(fy_kernel *k) { return mm_run(k); }
ferry_status fy_dnnl_Gemm_run(fy_kernel *k) { return mm_run(k); }
ferry_status fy_dnnl_FusedGemm_run(fy_kernel *k) { return mm_run(k); }
