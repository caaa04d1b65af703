/* dnnl_int8.c — QLinearConv, ConvInteger, QLinearMatMul and MatMulInteger on oneDNN's int8
 * primitives (u8/s8 activations, s8 weights, VNNI). oneDNN computes the int32 accumulators
 * (the activation zero point as a runtime zero-point attribute, so padding contributes 0, as
 * in ONNX); the bias, scales, rounding (half to even, in double) and saturation are applied
 * here exactly as the reference kernels in ops/quant.c do, so outputs are bit-identical.
 *
 * Declined (the reference kernel runs): weights that are not an initializer, s8 weights with a
 * nonzero zero point, u8 weights whose zero points are not all 128 (those become s8 weights
 * with zero point 0), CPUs without VNNI (the u8*s8 pair sums of plain AVX-512 may saturate),
 * and at run time any shape, type or count the reference kernel would reject or that oneDNN
 * has no fast implementation for. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"
#include "ops/nn_util.h"

#define I8_MAX_SP 3

/* ---- shared ------------------------------------------------------------------------------ */

static bool vnni(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_vnni) ==
               (unsigned)dnnl_cpu_isa_avx512_core_vnni ||
           ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx2_vnni) == (unsigned)dnnl_cpu_isa_avx2_vnni;
}

static const fy_value *init_of(const fy_node *n, const fy_graph *g, int i)
{
    if (!fy_dnnl_has_input(n, i)) return NULL;
    const fy_value *v = g->values[n->inputs[i]].init;
    if (!v || v->kind != FERRY_VALUE_TENSOR || v->layout) return NULL;
    return v;
}

/* Weights w (input wi) with zero points (input zi) expressible as s8 weights with zero point
 * 0: s8 with absent / all-zero zero points, or u8 with zero points all 128. m: the number of
 * output channels zero points may have (per channel). */
static bool weights_ok(const fy_node *n, const fy_graph *g, int wi, int zi, int64_t m)
{
    const fy_value *w = init_of(n, g, wi);
    if (!w || (w->dtype != FERRY_DTYPE_I8 && w->dtype != FERRY_DTYPE_U8) || w->count == 0)
        return false;
    int want = w->dtype == FERRY_DTYPE_U8 ? 128 : 0;
    if (!fy_dnnl_has_input(n, zi)) return want == 0;
    const fy_value *z = init_of(n, g, zi);
    if (!z || z->dtype != w->dtype || z->rank > 1 || (z->count != 1 && z->count != m)) return false;
    for (int64_t i = 0; i < z->count; i++) {
        int v = w->dtype == FERRY_DTYPE_U8 ? ((const uint8_t *)z->data)[i]
                                           : ((const int8_t *)z->data)[i];
        if (v != want) return false;
    }
    return true;
}

/* The weights as s8 (u8 ones shifted by their zero point 128); *own set when copied. */
static const int8_t *weights_s8(const fy_value *w, int8_t **own)
{
    *own = NULL;
    if (w->dtype == FERRY_DTYPE_I8) return w->data;
    int8_t *c = malloc((size_t)w->count);
    if (!c) return NULL;
    const uint8_t *u = w->data;
    for (int64_t i = 0; i < w->count; i++)
        c[i] = (int8_t)(u[i] - 128);
    *own = c;
    return c;
}

static bool is_q8(const fy_value *v)
{
    return v && v->kind == FERRY_VALUE_TENSOR && !v->layout &&
           (v->dtype == FERRY_DTYPE_U8 || v->dtype == FERRY_DTYPE_I8);
}

static bool is_f32_scalar(const fy_value *v)
{
    return v && v->kind == FERRY_VALUE_TENSOR && !v->layout && v->dtype == FERRY_DTYPE_F32 &&
           v->count == 1;
}

static int32_t q8_at(const fy_value *v, int64_t i)
{
    return v->dtype == FERRY_DTYPE_U8 ? ((const uint8_t *)v->data)[i]
                                      : ((const int8_t *)v->data)[i];
}

static dnnl_data_type_t dnnl_q8(ferry_dtype t) { return t == FERRY_DTYPE_U8 ? dnnl_u8 : dnnl_s8; }

/* Attributes with a runtime common zero point on the source (when zp), and a user
 * scratchpad. */
static dnnl_primitive_attr_t int8_attr(int zp)
{
    dnnl_primitive_attr_t base = NULL;
    if (zp) {
        if (dnnl_primitive_attr_create(&base) != dnnl_success) return NULL;
        int32_t rt = DNNL_RUNTIME_S32_VAL;
        if (dnnl_primitive_attr_set_zero_points(base, DNNL_ARG_SRC, 1, 0, &rt) != dnnl_success) {
            dnnl_primitive_attr_destroy(base);
            return NULL;
        }
    }
    dnnl_primitive_attr_t a = fy_dnnl_scratch_attr(base);
    if (base) dnnl_primitive_attr_destroy(base);
    return a;
}

/* The zero-point argument's descriptor: one s32. */
static void zp_md_fix(fy_dnnl_prim *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->args[i] == (DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC)) {
            dnnl_dims_t one = {1};
            dnnl_memory_desc_init_by_tag(&p->md[i], 1, one, dnnl_s32, dnnl_a);
        }
}

static void q_range(ferry_dtype t, double *lo, double *hi)
{
    *lo = t == FERRY_DTYPE_I8 ? -128 : 0;
    *hi = t == FERRY_DTYPE_I8 ? 127 : 255;
}

/* The reference kernels' requantization: rint(acc * mult) + zp, saturated. */
static inline int32_t requant1(int32_t acc, float mult, double yzp, double lo, double hi)
{
    double r = rint((double)acc * (double)mult) + yzp;
    if (r != r) r = 0;
    if (r < lo) r = lo;
    if (r > hi) r = hi;
    return (int32_t)r;
}

/* The same, as a plain double sum the compiler vectorizes: for |x| < 2^51, (x + 1.5 * 2^52) -
 * 1.5 * 2^52 is x rounded half to even (the default rounding mode), exactly what rint gives;
 * x is first clamped to +-1e9, which saturates the same. mult must be finite. */
#define I8_MAGIC 6755399441055744.0
static inline int32_t requant_fast(int32_t acc, double mult, double yzp, double lo, double hi)
{
    double x = (double)acc * mult;
    x = x < -1e9 ? -1e9 : x > 1e9 ? 1e9 : x;
    double r = (x + I8_MAGIC) - I8_MAGIC + yzp;
    r = r < lo ? lo : r > hi ? hi : r;
    return (int32_t)r;
}

/* rows x m accumulators (plus bias[c] when bias, wrapping in 32 bits as the reference does)
 * requantized with mult[c] into out (u8 or s8); every mult finite. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
requant_rows(const int32_t *acc, int64_t rows, int64_t m, const int32_t *bias, const float *mult,
             double yz, double lo, double hi, int u8, void *out)
{
    /* separate loops with and without bias: a conditional load does not vectorize */
    for (int64_t r = 0; r < rows; r++) {
        const int32_t *ar = acc + r * m;
        uint8_t *ou = (uint8_t *)out + r * m;
        int8_t *os = (int8_t *)out + r * m;
        if (u8 && bias) {
#pragma omp simd
            for (int64_t c = 0; c < m; c++)
                ou[c] = (uint8_t)requant_fast((int32_t)((uint32_t)ar[c] + (uint32_t)bias[c]),
                                              mult[c], yz, lo, hi);
        } else if (u8) {
#pragma omp simd
            for (int64_t c = 0; c < m; c++)
                ou[c] = (uint8_t)requant_fast(ar[c], mult[c], yz, lo, hi);
        } else if (bias) {
#pragma omp simd
            for (int64_t c = 0; c < m; c++)
                os[c] = (int8_t)requant_fast((int32_t)((uint32_t)ar[c] + (uint32_t)bias[c]),
                                             mult[c], yz, lo, hi);
        } else {
#pragma omp simd
            for (int64_t c = 0; c < m; c++)
                os[c] = (int8_t)requant_fast(ar[c], mult[c], yz, lo, hi);
        }
    }
}

static bool all_finite(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return false;
    return true;
}

/* ---- convolution ------------------------------------------------------------------------- */

typedef struct i8c_entry {
    int nthr;
    ferry_dtype xt;
    int has_zp;
    int64_t xdims[2 + I8_MAX_SP];
    int ok;
    fy_dnnl_prim p; /* SRC, WEIGHTS, DST(s32, channels last), [ZP] */
    int64_t ydims[2 + I8_MAX_SP];
    void *w; /* weights in the primitive's layout */
} i8c_entry;

typedef struct i8c_state {
    pthread_mutex_t mu;
    int qlinear; /* QLinearConv (else ConvInteger) */
    int nsp;
    int64_t group, m, cg;
    int64_t ksp[I8_MAX_SP];
    const int8_t *w;
    int8_t *own_w;
    dnnl_memory_desc_t w_onnx_md;
    i8c_entry *entries[FY_DNNL_MAX_SHAPES];
    int n_entries;
} i8c_state;

static bool i8c_supports(const fy_node *n, const fy_graph *g, int qlinear)
{
    if (!fy_dnnl_engine() || !vnni() || n->n_outputs != 1) return false;
    int wi = qlinear ? 3 : 1, zi = qlinear ? 5 : 3;
    const fy_value *w = init_of(n, g, wi);
    if (!w || w->rank < 3 || w->rank > 2 + I8_MAX_SP) return false;
    if (n->n_inputs > (qlinear ? 9 : 4)) return false;
    int64_t group = fy_dnnl_attr_int(n, "group", 1);
    if (group < 1 || w->dims[0] % group != 0) return false;
    return weights_ok(n, g, wi, zi, w->dims[0]);
}

bool fy_dnnl_QLinearConv_supports(const fy_node *n, const fy_graph *g)
{
    return i8c_supports(n, g, 1);
}
bool fy_dnnl_ConvInteger_supports(const fy_node *n, const fy_graph *g)
{
    return i8c_supports(n, g, 0);
}

static void i8c_entry_free(i8c_entry *e)
{
    if (!e) return;
    fy_dnnl_prim_free(&e->p);
    free(e->w);
    free(e);
}

static void i8c_release(void *p)
{
    i8c_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++)
        i8c_entry_free(st->entries[i]);
    free(st->own_w);
    pthread_mutex_destroy(&st->mu);
    free(st);
}
void fy_dnnl_QLinearConv_release(void *state) { i8c_release(state); }
void fy_dnnl_ConvInteger_release(void *state) { i8c_release(state); }

static void i8c_wdims(const i8c_state *st, int *nd, dnnl_dims_t d)
{
    int i = 0;
    if (st->group > 1) d[i++] = st->group;
    d[i++] = st->m / st->group;
    d[i++] = st->cg;
    for (int s = 0; s < st->nsp; s++)
        d[i++] = st->ksp[s];
    *nd = i;
}

static ferry_status i8c_prepare(const fy_node *n, const fy_graph *g, void **state, int qlinear)
{
    *state = NULL;
    i8c_state *st = calloc(1, sizeof *st);
    if (!st) return fy_error(FERRY_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    const fy_value *w = init_of(n, g, qlinear ? 3 : 1);
    st->qlinear = qlinear;
    st->nsp = w->rank - 2;
    st->group = fy_dnnl_attr_int(n, "group", 1);
    st->m = w->dims[0];
    st->cg = w->dims[1];
    int64_t ksp = 1;
    for (int i = 0; i < st->nsp; i++)
        ksp *= st->ksp[i] = w->dims[2 + i];
    st->w = weights_s8(w, &st->own_w);
    if (!st->w) {
        i8c_release(st);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    int nd, at = 0;
    dnnl_dims_t wd, ws;
    i8c_wdims(st, &nd, wd);
    int64_t mg = st->m / st->group;
    if (st->group > 1) ws[at++] = mg * st->cg * ksp;
    ws[at++] = st->cg * ksp;
    ws[at++] = ksp;
    for (int i = 0; i < st->nsp; i++) {
        int64_t inner = 1;
        for (int j = i + 1; j < st->nsp; j++)
            inner *= st->ksp[j];
        ws[at++] = inner;
    }
    ferry_status rc = fy_dnnl_check(
        dnnl_memory_desc_init_by_strides(&st->w_onnx_md, nd, wd, dnnl_s8, ws), "weights");
    if (rc != FERRY_OK) {
        i8c_release(st);
        return rc;
    }
    *state = st;
    return FERRY_OK;
}
ferry_status fy_dnnl_QLinearConv_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return i8c_prepare(n, g, state, 1);
}
ferry_status fy_dnnl_ConvInteger_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return i8c_prepare(n, g, state, 0);
}

static const dnnl_format_tag_t channels_last[4] = {dnnl_format_tag_undef, dnnl_acb, dnnl_acdb,
                                                   dnnl_acdeb};

/* Build e's primitive for x (e->ok stays 0 when oneDNN declines or has only its reference). */
static ferry_status i8c_make(fy_kernel *k, i8c_state *st, const fy_value *x, i8c_entry *e)
{
    fy_window win;
    if (fy_window_init(k, x, st->ksp, 1, 0, &win) != FERRY_OK) return FERRY_OK;
    int off = FY_WIN_DIMS - st->nsp, nd = 2 + st->nsp, wnd;
    dnnl_dims_t sd = {x->dims[0], x->dims[1]}, dd = {x->dims[0], st->m}, wd;
    dnnl_dims_t strides, dil, pl, pr;
    int64_t macs = x->dims[0] * st->m * st->cg;
    for (int i = 0; i < st->nsp; i++) {
        int d = off + i;
        if (win.out[d] <= 0) return FERRY_OK;
        sd[2 + i] = x->dims[2 + i], dd[2 + i] = win.out[d];
        strides[i] = win.stride[d], dil[i] = win.dil[d] - 1;
        pl[i] = win.pad0[d], pr[i] = win.pad1[d];
        macs *= win.out[d] * st->ksp[i];
    }
    i8c_wdims(st, &wnd, wd);
    dnnl_memory_desc_t src, dst, w;
    if (dnnl_memory_desc_init_by_tag(&src, nd, sd, dnnl_q8(x->dtype), dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&dst, nd, dd, dnnl_s32, channels_last[st->nsp]) ||
        dnnl_memory_desc_init_by_tag(&w, wnd, wd, dnnl_s8, dnnl_format_tag_any))
        return FERRY_OK;
    dnnl_convolution_desc_t desc;
    if (dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                   dnnl_convolution_direct, &src, &w, NULL, &dst,
                                                   strides, dil, pl, pr) != dnnl_success)
        return FERRY_OK;
    dnnl_primitive_attr_t attr = int8_attr(e->has_zp);
    if (!attr) return FERRY_OK;
    int serial = macs < FY_DNNL_SERIAL_MACS;
    dnnl_primitive_desc_t pd = fy_dnnl_pd_create(&desc, attr, serial);
    dnnl_primitive_attr_destroy(attr);
    if (!pd) return FERRY_OK;
    if (fy_dnnl_pd_is_ref(pd)) {
        dnnl_primitive_desc_destroy(pd);
        return FERRY_OK;
    }
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    size_t size = dnnl_memory_desc_get_size(want);
    e->w = aligned_alloc(64, (size + 63) / 64 * 64);
    ferry_status rc = e->w ? fy_dnnl_reorder(&st->w_onnx_md, st->w, want, e->w)
                           : fy_error(FERRY_E_NOMEM, "out of memory");
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST,
                   DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC};
    if (rc == FERRY_OK) rc = fy_dnnl_prim_init(&e->p, pd, e->has_zp ? 4 : 3, args, serial);
    if (rc == FERRY_OK) zp_md_fix(&e->p);
    dnnl_primitive_desc_destroy(pd);
    for (int i = 0; i < nd; i++)
        e->ydims[i] = dd[i];
    e->ok = rc == FERRY_OK;
    return rc;
}

static ferry_status i8c_entry_get(fy_kernel *k, i8c_state *st, const fy_value *x, int has_zp,
                                  i8c_entry **out, int *temp)
{
    *out = NULL;
    *temp = 0;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->n_entries; i++) {
        i8c_entry *e = st->entries[i];
        if (e->nthr == omp_get_max_threads() && e->xt == x->dtype && e->has_zp == has_zp &&
            memcmp(e->xdims, x->dims, sizeof(int64_t) * (size_t)x->rank) == 0) {
            pthread_mutex_unlock(&st->mu);
            *out = e;
            return FERRY_OK;
        }
    }
    i8c_entry *e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&st->mu);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    e->nthr = omp_get_max_threads();
    e->xt = x->dtype;
    e->has_zp = has_zp;
    memcpy(e->xdims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    ferry_status rc = i8c_make(k, st, x, e);
    if (rc != FERRY_OK) {
        pthread_mutex_unlock(&st->mu);
        i8c_entry_free(e);
        return rc;
    }
    if (st->n_entries < FY_DNNL_MAX_SHAPES)
        st->entries[st->n_entries++] = e;
    else
        *temp = 1;
    pthread_mutex_unlock(&st->mu);
    *out = e;
    return FERRY_OK;
}

static ferry_status i8c_run(fy_kernel *k)
{
    i8c_state *st = k->state;
    int q = st ? st->qlinear : 0;
    int ni = q ? 9 : 4;
    const fy_value *in[9] = {0};
    for (int i = 0; i < ni && i < k->n_inputs; i++)
        in[i] = k->inputs[i];
    const fy_value *x = in[0], *xzp = in[2];
    if (!st || !is_q8(x) || x->rank != 2 + st->nsp || x->count == 0 ||
        x->dims[1] != st->cg * st->group ||
        (xzp && (!is_q8(xzp) || xzp->dtype != x->dtype || xzp->count != 1)))
        return fy_dnnl_run_reference(k);
    const fy_value *xs = in[1], *ws = in[4], *ys = in[6], *yzp = in[7], *bias = in[8];
    if (q && (!is_f32_scalar(xs) || !is_f32_scalar(ys) || !ws || ws->layout ||
              ws->dtype != FERRY_DTYPE_F32 || ws->rank > 1 ||
              (ws->count != 1 && ws->count != st->m) || (yzp && (!is_q8(yzp) || yzp->count != 1)) ||
              (bias && (bias->layout || bias->dtype != FERRY_DTYPE_I32 || bias->rank != 1 ||
                        bias->count != st->m)) ||
              ((const float *)ys->data)[0] == 0))
        return fy_dnnl_run_reference(k);
    int32_t zp = xzp ? q8_at(xzp, 0) : 0;
    i8c_entry *e;
    int temp;
    FY_CHECK(i8c_entry_get(k, st, x, zp != 0, &e, &temp));
    if (!e || !e->ok) {
        if (temp) i8c_entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    dnnl_memory_desc_t x_md;
    fy_dnnl_value_md(x, &x_md);
    x_md.data_type = dnnl_q8(x->dtype);
    const dnnl_memory_desc_t *src_md = fy_dnnl_prim_md(&e->p, DNNL_ARG_SRC);
    const dnnl_memory_desc_t *dst_md = fy_dnnl_prim_md(&e->p, DNNL_ARG_DST);
    size_t src_size = dnnl_memory_desc_get_size(src_md),
           acc_size = dnnl_memory_desc_get_size(dst_md);
    void *src = x->data, *src_buf = NULL;
    ferry_status rc = FERRY_OK;
    int32_t *acc = fy_dnnl_scratch(k, acc_size);
    if (!acc) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    if (rc == FERRY_OK && !fy_dnnl_md_equal(src_md, &x_md)) {
        src = src_buf = fy_dnnl_scratch(k, src_size);
        if (!src_buf) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        if (rc == FERRY_OK) rc = fy_dnnl_reorder(&x_md, x->data, src_md, src_buf);
    }
    if (rc == FERRY_OK) {
        void *data[4] = {src, e->w, acc, &zp};
        rc = fy_dnnl_prim_run(&e->p, &st->mu, k, data);
    }
    fy_value *y = NULL;
    ferry_dtype yt = q ? (yzp ? yzp->dtype : x->dtype) : FERRY_DTYPE_I32;
    if (rc == FERRY_OK) rc = fy_output(k, 0, yt, x->rank, e->ydims, &y);
    if (rc == FERRY_OK) {
        /* acc is N, spatial, M (channels last); y is N, M, spatial */
        int64_t nb = e->ydims[0], m = st->m, sp = 1;
        for (int i = 0; i < st->nsp; i++)
            sp *= e->ydims[2 + i];
        /* y's plain layout, for oneDNN's reorders from channels last */
        dnnl_memory_desc_t y_md;
        fy_dnnl_plain_md(x->rank, e->ydims, &y_md);
        y_md.data_type = q ? dnnl_q8(yt) : dnnl_s32;
        if (!q) {
            rc = fy_dnnl_reorder(dst_md, acc, &y_md, y->data);
        } else {
            int64_t rows = nb * sp;
            size_t q_size = (size_t)(rows * m);
            void *qb = fy_dnnl_scratch(k, q_size);
            /* few channels make short vector loops: rows are requantized `rep` at a time, with
             * the per-channel multipliers and biases repeated (the same arithmetic) */
            int64_t rep = m >= 256 ? 1 : 256 / m, wm = rep * m;
            float *mult = malloc(sizeof(float) * (size_t)wm);
            int32_t *wbias = bias ? malloc(sizeof(int32_t) * (size_t)wm) : NULL;
            if (!mult || !qb || (bias && !wbias)) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            float fxs = ((const float *)xs->data)[0], fys = ((const float *)ys->data)[0];
            const float *wsd = ws->data;
            const int32_t *bd = bias ? bias->data : NULL;
            double lo, hi, yz = yzp ? q8_at(yzp, 0) : 0;
            q_range(yt, &lo, &hi);
            for (int64_t c = 0; mult && c < m; c++)
                mult[c] = fxs * wsd[ws->count == 1 ? 0 : c] / fys;
            for (int64_t c = m; mult && c < wm; c++) mult[c] = mult[c % m];
            for (int64_t c = 0; wbias && c < wm; c++) wbias[c] = bd[c % m];
            if (rc == FERRY_OK) {
                /* requantize channels last (contiguous), then reorder to channels first */
                int u8 = yt == FERRY_DTYPE_U8, fast = all_finite(mult, m);
                int64_t nchunk = rows * m > 65536 ? omp_get_max_threads() : 1;
#pragma omp parallel for schedule(static) if (nchunk > 1)
                for (int64_t t = 0; t < nchunk; t++) {
                    int64_t r0 = rows * t / nchunk, r1 = rows * (t + 1) / nchunk;
                    if (fast) {
                        int64_t groups = (r1 - r0) / rep, rest = r0 + groups * rep;
                        requant_rows(acc + r0 * m, groups, wm, wbias, mult, yz, lo, hi, u8,
                                     (uint8_t *)qb + r0 * m);
                        requant_rows(acc + rest * m, r1 - rest, m, bd, mult, yz, lo, hi, u8,
                                     (uint8_t *)qb + rest * m);
                        continue;
                    }
                    for (int64_t r = r0; r < r1; r++)
                        for (int64_t c = 0; c < m; c++) {
                            int32_t v =
                                requant1((int32_t)((int64_t)acc[r * m + c] + (bd ? bd[c] : 0)),
                                         mult[c], yz, lo, hi);
                            if (u8)
                                ((uint8_t *)qb)[r * m + c] = (uint8_t)v;
                            else
                                ((int8_t *)qb)[r * m + c] = (int8_t)v;
                        }
                }
                dnnl_memory_desc_t q_md = *dst_md;
                q_md.data_type = dnnl_q8(yt);
                rc = fy_dnnl_reorder(&q_md, qb, &y_md, y->data);
            }
            free(mult);
            free(wbias);
            fy_dnnl_scratch_free(k, qb, q_size);
        }
    }
    fy_dnnl_scratch_free(k, src_buf, src_size);
    fy_dnnl_scratch_free(k, acc, acc_size);
    if (temp) i8c_entry_free(e);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
    return FERRY_OK;
}
ferry_status fy_dnnl_QLinearConv_run(fy_kernel *k) { return i8c_run(k); }
ferry_status fy_dnnl_ConvInteger_run(fy_kernel *k) { return i8c_run(k); }

/* ---- matrix product with a constant 2-D B ------------------------------------------------ */

typedef struct i8m_entry {
    int nthr;
    ferry_dtype at;
    int has_zp;
    int64_t rows;
    int ok;
    fy_dnnl_prim p; /* SRC, WEIGHTS, DST (s32 rows x N, row-major), [ZP] */
    void *w;
} i8m_entry;

typedef struct i8m_state {
    pthread_mutex_t mu;
    int qlinear; /* QLinearMatMul (else MatMulInteger) */
    int64_t k, n;
    const int8_t *w;
    int8_t *own_w;
    i8m_entry *entries[FY_DNNL_MAX_SHAPES];
    int n_entries;
} i8m_state;

static bool i8m_supports(const fy_node *n, const fy_graph *g, int qlinear)
{
    if (!fy_dnnl_engine() || !vnni() || n->n_outputs != 1) return false;
    int wi = qlinear ? 3 : 1, zi = qlinear ? 5 : 3;
    const fy_value *w = init_of(n, g, wi);
    if (!w || w->rank != 2 || n->n_inputs > (qlinear ? 8 : 4)) return false;
    /* zero points per column of B: all the same value is checked by weights_ok */
    return weights_ok(n, g, wi, zi, w->dims[1]);
}

bool fy_dnnl_QLinearMatMul_supports(const fy_node *n, const fy_graph *g)
{
    return i8m_supports(n, g, 1);
}
bool fy_dnnl_MatMulInteger_supports(const fy_node *n, const fy_graph *g)
{
    return i8m_supports(n, g, 0);
}

static void i8m_entry_free(i8m_entry *e)
{
    if (!e) return;
    fy_dnnl_prim_free(&e->p);
    free(e->w);
    free(e);
}

static void i8m_release(void *p)
{
    i8m_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++)
        i8m_entry_free(st->entries[i]);
    free(st->own_w);
    pthread_mutex_destroy(&st->mu);
    free(st);
}
void fy_dnnl_QLinearMatMul_release(void *state) { i8m_release(state); }
void fy_dnnl_MatMulInteger_release(void *state) { i8m_release(state); }

static ferry_status i8m_prepare(const fy_node *n, const fy_graph *g, void **state, int qlinear)
{
    *state = NULL;
    i8m_state *st = calloc(1, sizeof *st);
    if (!st) return fy_error(FERRY_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    const fy_value *w = init_of(n, g, qlinear ? 3 : 1);
    st->qlinear = qlinear;
    st->k = w->dims[0];
    st->n = w->dims[1];
    st->w = weights_s8(w, &st->own_w);
    if (!st->w) {
        i8m_release(st);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    *state = st;
    return FERRY_OK;
}
ferry_status fy_dnnl_QLinearMatMul_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return i8m_prepare(n, g, state, 1);
}
ferry_status fy_dnnl_MatMulInteger_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return i8m_prepare(n, g, state, 0);
}

static ferry_status i8m_make(i8m_state *st, i8m_entry *e)
{
    dnnl_dims_t ad = {e->rows, st->k}, bd = {st->k, st->n}, yd = {e->rows, st->n};
    dnnl_memory_desc_t src, w, dst, w_plain;
    if (dnnl_memory_desc_init_by_tag(&src, 2, ad, dnnl_q8(e->at), dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&w, 2, bd, dnnl_s8, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&w_plain, 2, bd, dnnl_s8, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&dst, 2, yd, dnnl_s32, dnnl_ab))
        return FERRY_OK;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &src, &w, NULL, &dst) != dnnl_success) return FERRY_OK;
    dnnl_primitive_attr_t attr = int8_attr(e->has_zp);
    if (!attr) return FERRY_OK;
    int serial = (double)e->rows * (double)st->k * (double)st->n < FY_DNNL_SERIAL_MACS;
    dnnl_primitive_desc_t pd = fy_dnnl_pd_create(&desc, attr, serial);
    dnnl_primitive_attr_destroy(attr);
    if (!pd) return FERRY_OK;
    if (fy_dnnl_pd_is_ref(pd)) {
        dnnl_primitive_desc_destroy(pd);
        return FERRY_OK;
    }
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    size_t size = dnnl_memory_desc_get_size(want);
    e->w = aligned_alloc(64, (size + 63) / 64 * 64);
    ferry_status rc = e->w ? fy_dnnl_reorder(&w_plain, st->w, want, e->w)
                           : fy_error(FERRY_E_NOMEM, "out of memory");
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST,
                   DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC};
    if (rc == FERRY_OK) rc = fy_dnnl_prim_init(&e->p, pd, e->has_zp ? 4 : 3, args, serial);
    if (rc == FERRY_OK) zp_md_fix(&e->p);
    dnnl_primitive_desc_destroy(pd);
    e->ok = rc == FERRY_OK;
    return rc;
}

static ferry_status i8m_entry_get(fy_kernel *k, i8m_state *st, ferry_dtype at, int64_t rows,
                                  int has_zp, i8m_entry **out, int *temp)
{
    *out = NULL;
    *temp = 0;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->n_entries; i++) {
        i8m_entry *e = st->entries[i];
        if (e->nthr == omp_get_max_threads() && e->at == at && e->has_zp == has_zp &&
            e->rows == rows) {
            pthread_mutex_unlock(&st->mu);
            *out = e;
            return FERRY_OK;
        }
    }
    i8m_entry *e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&st->mu);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    e->nthr = omp_get_max_threads();
    e->at = at;
    e->has_zp = has_zp;
    e->rows = rows;
    ferry_status rc = i8m_make(st, e);
    if (rc != FERRY_OK) {
        pthread_mutex_unlock(&st->mu);
        i8m_entry_free(e);
        return rc;
    }
    if (st->n_entries < FY_DNNL_MAX_SHAPES)
        st->entries[st->n_entries++] = e;
    else
        *temp = 1;
    pthread_mutex_unlock(&st->mu);
    *out = e;
    return FERRY_OK;
}

static ferry_status i8m_run(fy_kernel *k)
{
    i8m_state *st = k->state;
    int q = st ? st->qlinear : 0;
    const fy_value *in[8] = {0};
    for (int i = 0; i < (q ? 8 : 4) && i < k->n_inputs; i++)
        in[i] = k->inputs[i];
    const fy_value *a = in[0], *azp = in[2];
    if (!st || !is_q8(a) || a->rank < 2 || a->dims[a->rank - 1] != st->k || a->count == 0 ||
        st->n == 0 || (azp && (!is_q8(azp) || azp->dtype != a->dtype || azp->count != 1)))
        return fy_dnnl_run_reference(k);
    const fy_value *as = in[1], *bs = in[4], *ys = in[6], *yzp = in[7];
    if (q &&
        (!is_f32_scalar(as) || !is_f32_scalar(ys) || !bs || bs->layout ||
         bs->dtype != FERRY_DTYPE_F32 || bs->rank > 1 || (bs->count != 1 && bs->count != st->n) ||
         (yzp && (!is_q8(yzp) || yzp->count != 1)) || ((const float *)ys->data)[0] == 0))
        return fy_dnnl_run_reference(k);
    int64_t rows = a->count / st->k;
    int32_t zp = azp ? q8_at(azp, 0) : 0;
    i8m_entry *e;
    int temp;
    FY_CHECK(i8m_entry_get(k, st, a->dtype, rows, zp != 0, &e, &temp));
    if (!e || !e->ok) {
        if (temp) i8m_entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    int64_t ydims[FERRY_MAX_RANK];
    memcpy(ydims, a->dims, sizeof(int64_t) * (size_t)a->rank);
    ydims[a->rank - 1] = st->n;
    ferry_dtype yt = q ? (yzp ? yzp->dtype : FERRY_DTYPE_U8) : FERRY_DTYPE_I32;
    fy_value *y = NULL;
    ferry_status rc = fy_output(k, 0, yt, a->rank, ydims, &y);
    size_t acc_size = q ? sizeof(int32_t) * (size_t)(rows * st->n) : 0;
    int32_t *acc = NULL;
    if (rc == FERRY_OK) {
        acc = q ? fy_dnnl_scratch(k, acc_size) : y->data;
        if (!acc) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    if (rc == FERRY_OK) {
        void *data[4] = {a->data, e->w, acc, &zp};
        rc = fy_dnnl_prim_run(&e->p, &st->mu, k, data);
    }
    if (rc == FERRY_OK && q) {
        int64_t n = st->n;
        float *mult = malloc(sizeof(float) * (size_t)n);
        if (!mult) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        float fas = ((const float *)as->data)[0], fys = ((const float *)ys->data)[0];
        const float *bsd = bs->data;
        double lo, hi, yz = yzp ? q8_at(yzp, 0) : 0;
        q_range(yt, &lo, &hi);
        for (int64_t c = 0; mult && c < n; c++)
            mult[c] = fas * bsd[bs->count == 1 ? 0 : c] / fys;
        if (rc == FERRY_OK) {
            int u8 = yt == FERRY_DTYPE_U8, fast = all_finite(mult, n);
            int64_t nchunk = rows * n > 65536 ? omp_get_max_threads() : 1;
#pragma omp parallel for schedule(static) if (nchunk > 1)
            for (int64_t t = 0; t < nchunk; t++) {
                int64_t r0 = rows * t / nchunk, r1 = rows * (t + 1) / nchunk;
                if (fast) {
                    requant_rows(acc + r0 * n, r1 - r0, n, NULL, mult, yz, lo, hi, u8,
                                 (uint8_t *)y->data + r0 * n);
                    continue;
                }
                for (int64_t i = r0 * n; i < r1 * n; i++) {
                    int32_t v = requant1(acc[i], mult[i % n], yz, lo, hi);
                    if (u8)
                        ((uint8_t *)y->data)[i] = (uint8_t)v;
                    else
                        ((int8_t *)y->data)[i] = (int8_t)v;
                }
            }
        }
        free(mult);
    }
    if (q) fy_dnnl_scratch_free(k, acc, acc_size);
    if (temp) i8m_entry_free(e);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
    return FERRY_OK;
}
ferry_status fy_dnnl_QLinearMatMul_run(fy_kernel *k) { return i8m_run(k); }
ferry_status fy_dnnl_MatMulInteger_run(fy_kernel *k) { return i8m_run(k); }

/* ---- int8 max pooling -------------------------------------------------------------------- */

static bool ints_attr_all(const fy_node *n, const char *name, int64_t want, int64_t count)
{
    const fy_attr *a = fy_node_attr(n, name);
    if (!a) return true;
    if (a->type != FY_ATTR_INTS || (count >= 0 && a->n != count)) return false;
    for (int64_t i = 0; i < a->n; i++)
        if (a->ints[i] != want) return false;
    return true;
}

/* One output row of a 2x2 stride-2 max pool from input rows x0 and x1 (flip: 0x80 for int8,
 * which then compares as uint8). Stride-2 byte loads vectorize as shuffles. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
max2x2_row(const uint8_t *x0, const uint8_t *x1, uint8_t *y, int64_t ow, uint8_t flip)
{
#pragma omp simd
    for (int64_t o = 0; o < ow; o++) {
        uint8_t a = (uint8_t)(x0[2 * o] ^ flip), b = (uint8_t)(x0[2 * o + 1] ^ flip);
        uint8_t c = (uint8_t)(x1[2 * o] ^ flip), d = (uint8_t)(x1[2 * o + 1] ^ flip);
        uint8_t m = a > b ? a : b, n = c > d ? c : d;
        y[o] = (uint8_t)((m > n ? m : n) ^ flip);
    }
}

/* MaxPool of a plain 4-D uint8/int8 tensor (int8 models keep pooling in int8 between two
 * QLinearConvs) without padding or dilation: max is exact in any type, so this is the
 * reference's result, computed a row of outputs at a time over channels in parallel. Returns
 * 1 when it ran (with *rc set), 0 when the node is not such a pooling. */
int fy_dnnl_maxpool_q8(fy_kernel *k, const fy_value *x, ferry_status *rc)
{
    const fy_node *n = k->node;
    if (!x || x->kind != FERRY_VALUE_TENSOR || x->layout || x->rank != 4 || x->count == 0 ||
        (x->dtype != FERRY_DTYPE_U8 && x->dtype != FERRY_DTYPE_I8) || k->n_outputs != 1)
        return 0;
    const fy_attr *ks = fy_node_attr(n, "kernel_shape"), *st = fy_node_attr(n, "strides");
    const fy_attr *ap = fy_node_attr(n, "auto_pad");
    if (!ks || ks->type != FY_ATTR_INTS || ks->n != 2 || (st && (st->type != FY_ATTR_INTS || st->n != 2)))
        return 0;
    if (ap && !(ap->type == FY_ATTR_STRING && (!strcmp(ap->s, "NOTSET") || !strcmp(ap->s, "VALID"))))
        return 0;
    if (!ints_attr_all(n, "pads", 0, 4) || !ints_attr_all(n, "dilations", 1, 2) ||
        fy_dnnl_attr_int(n, "ceil_mode", 0) != 0 || fy_dnnl_attr_int(n, "storage_order", 0) != 0)
        return 0;
    int64_t kh = ks->ints[0], kw = ks->ints[1], sh = st ? st->ints[0] : 1, sw = st ? st->ints[1] : 1;
    int64_t nb = x->dims[0], c = x->dims[1], ih = x->dims[2], iw = x->dims[3];
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || kh > ih || kw > iw) return 0;
    int64_t oh = (ih - kh) / sh + 1, ow = (iw - kw) / sw + 1;
    int64_t yd[4] = {nb, c, oh, ow};
    fy_value *y;
    *rc = fy_output(k, 0, x->dtype, 4, yd, &y);
    if (*rc != FERRY_OK) return 1;
    int s8 = x->dtype == FERRY_DTYPE_I8;
    int64_t planes = nb * c;
#pragma omp parallel for schedule(static) if (planes * oh * ow > 32768)
    for (int64_t p = 0; p < planes; p++) {
        const uint8_t *xp = (const uint8_t *)x->data + p * ih * iw;
        uint8_t *yp = (uint8_t *)y->data + p * oh * ow;
        for (int64_t r = 0; r < oh; r++) {
            uint8_t *yr = yp + r * ow;
            /* int8 compares as uint8 after flipping the sign bit */
            uint8_t flip = s8 ? 0x80 : 0;
            if (kh == 2 && kw == 2 && sh == 2 && sw == 2) {
                max2x2_row(xp + 2 * r * iw, xp + (2 * r + 1) * iw, yr, ow, flip);
                continue;
            }
            for (int64_t o = 0; o < ow; o++) yr[o] = 0;
            for (int64_t i = 0; i < kh; i++) {
                const uint8_t *xr = xp + (r * sh + i) * iw;
                if (kw == 2 && sw == 2) { /* the common 2x2/2: both columns from one 16-bit load */
                    for (int64_t o = 0; o < ow; o++) {
                        uint16_t pair;
                        memcpy(&pair, xr + 2 * o, 2);
                        uint8_t a = (uint8_t)((pair & 0xff) ^ flip), b = (uint8_t)((pair >> 8) ^ flip);
                        uint8_t m = a > b ? a : b;
                        yr[o] = m > yr[o] ? m : yr[o];
                    }
                    continue;
                }
                for (int64_t j = 0; j < kw; j++)
                    for (int64_t o = 0; o < ow; o++) {
                        uint8_t v = (uint8_t)(xr[o * sw + j] ^ flip);
                        yr[o] = v > yr[o] ? v : yr[o];
                    }
            }
            if (flip)
                for (int64_t o = 0; o < ow; o++) yr[o] ^= flip;
        }
    }
    return 1;
}

/* ---- QuantizeLinear / DequantizeLinear, per tensor ----------------------------------------- */

/* A per-tensor scale (f32 initializer, one element) and an absent or u8/i8 one-element zero
 * point: the form int8 models use on activations. Vector loops with the reference's exact
 * arithmetic (float division, round half to even, saturation; NaN becomes 0). */
static bool qdq_supports(const fy_node *n, const fy_graph *g, int quantize)
{
    if (n->n_inputs < 2 || n->n_outputs != 1 || fy_node_attr(n, "saturate") ||
        fy_node_attr(n, "output_dtype") || fy_node_attr(n, "block_size"))
        return false;
    const fy_value *s = init_of(n, g, 1);
    if (!s || s->dtype != FERRY_DTYPE_F32 || s->count != 1) return false;
    const float sv = ((const float *)s->data)[0];
    if (!(sv == sv) || sv == 0 || isinf(sv)) return false;
    if (!fy_dnnl_has_input(n, 2)) return quantize; /* DequantizeLinear needs the input's type */
    const fy_value *z = init_of(n, g, 2);
    return z && (z->dtype == FERRY_DTYPE_U8 || z->dtype == FERRY_DTYPE_I8) && z->count == 1;
}

bool fy_dnnl_QuantizeLinear_supports(const fy_node *n, const fy_graph *g)
{
    return qdq_supports(n, g, 1);
}
bool fy_dnnl_DequantizeLinear_supports(const fy_node *n, const fy_graph *g)
{
    return qdq_supports(n, g, 0);
}
ferry_status fy_dnnl_QuantizeLinear_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    (void)n, (void)g;
    *state = NULL;
    return FERRY_OK;
}
ferry_status fy_dnnl_DequantizeLinear_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    (void)n, (void)g;
    *state = NULL;
    return FERRY_OK;
}
void fy_dnnl_QuantizeLinear_release(void *state) { (void)state; }
void fy_dnnl_DequantizeLinear_release(void *state) { (void)state; }

#define Q_MAGIC 12582912.0f /* 1.5 * 2^23: (v + M) - M rounds |v| < 2^22 half to even */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
quantize_run(const float *x, int64_t n, float s, float z, float lo, float hi, int u8, void *y)
{
    uint8_t *yu = y;
    int8_t *ys = y;
    if (u8) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float q = x[i] / s;
            int nan = q != q; /* the reference maps NaN to 0, not to the zero point */
            q = q < -4e6f ? -4e6f : q > 4e6f ? 4e6f : q;
            float r = nan ? 0.0f : (q + Q_MAGIC) - Q_MAGIC + z;
            yu[i] = (uint8_t)(r < lo ? lo : r > hi ? hi : r);
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float q = x[i] / s;
            int nan = q != q; /* the reference maps NaN to 0, not to the zero point */
            q = q < -4e6f ? -4e6f : q > 4e6f ? 4e6f : q;
            float r = nan ? 0.0f : (q + Q_MAGIC) - Q_MAGIC + z;
            ys[i] = (int8_t)(r < lo ? lo : r > hi ? hi : r);
        }
    }
}

ferry_status fy_dnnl_QuantizeLinear_run(fy_kernel *k)
{
    const fy_value *x = k->inputs[0], *s = k->inputs[1], *z = k->n_inputs > 2 ? k->inputs[2] : NULL;
    if (!x || x->kind != FERRY_VALUE_TENSOR || x->layout || x->dtype != FERRY_DTYPE_F32 ||
        !is_f32_scalar(s) || (z && !is_q8(z)) || (z && z->count != 1))
        return fy_dnnl_run_reference(k);
    float sv = ((const float *)s->data)[0];
    if (!(sv == sv) || sv == 0) return fy_dnnl_run_reference(k);
    ferry_dtype yt = z ? z->dtype : FERRY_DTYPE_U8;
    double lo, hi;
    q_range(yt, &lo, &hi);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, yt, x->rank, x->dims, &y));
    int64_t n = x->count, nchunk = n > 262144 ? omp_get_max_threads() : 1;
    float zf = z ? (float)q8_at(z, 0) : 0;
#pragma omp parallel for schedule(static) if (nchunk > 1)
    for (int64_t t = 0; t < nchunk; t++) {
        int64_t a = n * t / nchunk, b = n * (t + 1) / nchunk;
        quantize_run((const float *)x->data + a, b - a, sv, zf, (float)lo, (float)hi,
                     yt == FERRY_DTYPE_U8, (uint8_t *)y->data + a);
    }
    return FERRY_OK;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
dequantize_run(const void *x, int64_t n, int u8, int32_t z, float s, float *y)
{
    const uint8_t *xu = x;
    const int8_t *xs = x;
    if (u8) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)xu[i] - z) * s;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)xs[i] - z) * s;
    }
}

ferry_status fy_dnnl_DequantizeLinear_run(fy_kernel *k)
{
    const fy_value *x = k->inputs[0], *s = k->inputs[1], *z = k->n_inputs > 2 ? k->inputs[2] : NULL;
    if (!is_q8(x) || !is_f32_scalar(s) || !z || !is_q8(z) || z->count != 1 || z->dtype != x->dtype)
        return fy_dnnl_run_reference(k);
    fy_value *y;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_F32, x->rank, x->dims, &y));
    int64_t n = x->count, nchunk = n > 262144 ? omp_get_max_threads() : 1;
    float sv = ((const float *)s->data)[0];
    int32_t zv = q8_at(z, 0);
#pragma omp parallel for schedule(static) if (nchunk > 1)
    for (int64_t t = 0; t < nchunk; t++) {
        int64_t a = n * t / nchunk, b = n * (t + 1) / nchunk;
        dequantize_run((const uint8_t *)x->data + a, b - a, x->dtype == FERRY_DTYPE_U8, zv, sv,
                       (float *)y->data + a);
    }
    return FERRY_OK;
}
