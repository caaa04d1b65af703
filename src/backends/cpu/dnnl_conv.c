/* dnnl_conv.c — Conv, ConvTranspose and com.microsoft FusedConv (activation and an added Z as
 * post-ops) on oneDNN: weights reordered once per session, a primitive per input shape, and
 * outputs left in oneDNN's blocked layout for the next oneDNN kernel. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"
#include "ops/nn_util.h"

#define CONV_MAX_SP 3

/* Geometry of one convolution for one input shape. */
typedef struct conv_geom {
    int nsp;
    int64_t n, c, m;
    int64_t in[CONV_MAX_SP], out[CONV_MAX_SP], stride[CONV_MAX_SP], dil[CONV_MAX_SP],
        pad_l[CONV_MAX_SP], pad_r[CONV_MAX_SP];
} conv_geom;

typedef struct conv_entry {
    int nthr; /* the OpenMP team size it was made for */
    int64_t xdims[2 + CONV_MAX_SP];
    dnnl_memory_desc_t in_md; /* the layout X arrived in */
    int ok;                   /* 0: oneDNN declined this shape, the reference kernel runs */
    fy_dnnl_prim p;           /* SRC, WEIGHTS, [BIAS,] DST */
    int64_t ydims[2 + CONV_MAX_SP];
    const float *w; /* weights in the primitive's layout */
    float *own_w;   /* set when this primitive wants another layout than st->w */
} conv_entry;

typedef struct conv_state {
    pthread_mutex_t mu;
    int transposed;
    int nsp;
    int64_t group, m, cg; /* output channels; input channels per group */
    int64_t ksp[CONV_MAX_SP];
    const float *w_onnx;
    dnnl_memory_desc_t w_onnx_md; /* the ONNX weights as oneDNN sees them */
    float *w;                     /* reordered once, in w_md */
    dnnl_memory_desc_t w_md;
    const float *bias;
    int has_z;
    int z_dies_here; /* this node is Z's last reader: its storage may become the output */
    dnnl_primitive_attr_t attr;
    conv_entry *entries[FY_DNNL_MAX_SHAPES];
    int n_entries;
} conv_state;

/* ---- supports ---------------------------------------------------------------------------- */

static bool conv_supports_common(const fy_node *n, const fy_graph *g, int transposed)
{
    if (!fy_dnnl_engine() || n->n_outputs != 1) return false;
    const fy_value *w = fy_dnnl_init_f32(n, g, 1);
    if (!w || w->rank < 3 || w->rank > 2 + CONV_MAX_SP || w->count == 0) return false;
    if (!fy_dnnl_maybe_f32(n, g, 0)) return false;
    if (fy_dnnl_has_input(n, 2)) {
        const fy_value *b = fy_dnnl_init_f32(n, g, 2);
        int64_t m = transposed ? w->dims[1] * fy_dnnl_attr_int(n, "group", 1) : w->dims[0];
        if (!b || b->rank != 1 || b->dims[0] != m) return false;
    }
    int64_t group = fy_dnnl_attr_int(n, "group", 1);
    if (group < 1 || (!transposed && w->dims[0] % group != 0)) return false;
    return true;
}

bool fy_dnnl_Conv_supports(const fy_node *n, const fy_graph *g)
{
    return n->n_inputs <= 3 && conv_supports_common(n, g, 0);
}

bool fy_dnnl_ConvTranspose_supports(const fy_node *n, const fy_graph *g)
{
    return n->n_inputs <= 3 && conv_supports_common(n, g, 1);
}

bool fy_dnnl_FusedConv_supports(const fy_node *n, const fy_graph *g)
{
    if (!fy_op_find(n->domain, n->op_type, n->opset)) return false; /* nothing to fall back to */
    if (n->n_inputs > 4 || !conv_supports_common(n, g, 0)) return false;
    const char *act = fy_dnnl_attr_string(n, "activation", NULL);
    if (act && *act && !fy_dnnl_activation_known(act)) return false;
    if (fy_dnnl_has_input(n, 3) && !fy_dnnl_maybe_f32(n, g, 3)) return false;
    return true;
}

/* ---- geometry ---------------------------------------------------------------------------- */

static ferry_status conv_geometry(const fy_kernel *k, const conv_state *st, const fy_value *x,
                                  conv_geom *g)
{
    fy_window win;
    FY_CHECK(fy_window_init(k, x, st->ksp, 1, 0, &win));
    int off = FY_WIN_DIMS - st->nsp;
    g->nsp = st->nsp;
    g->n = x->dims[0], g->c = x->dims[1], g->m = st->m;
    for (int i = 0; i < st->nsp; i++) {
        int d = off + i;
        g->in[i] = win.in[d], g->out[i] = win.out[d], g->stride[i] = win.stride[d];
        g->dil[i] = win.dil[d], g->pad_l[i] = win.pad0[d], g->pad_r[i] = win.pad1[d];
    }
    return FERRY_OK;
}

/* Copy an ints attribute of exactly n values (each >= lo) into dst; absent leaves dst. */
static ferry_status read_ints(const fy_kernel *k, const char *name, int n, int64_t lo, int64_t *dst)
{
    const int64_t *v;
    int64_t len = fy_attr_ints(k, name, &v);
    if (len < 0) return FERRY_OK;
    if (len != n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute %s has %lld values", name,
                               (long long)len);
    for (int i = 0; i < n; i++) {
        if (v[i] < lo || v[i] > (1 << 30))
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute %s is out of range", name);
        dst[i] = v[i];
    }
    return FERRY_OK;
}

/* ConvTranspose geometry as the reference kernel computes it (output_shape, output_padding,
 * auto_pad), expressed as oneDNN's deconvolution paddings. */
static ferry_status convt_geometry(const fy_kernel *k, const conv_state *st, const fy_value *x,
                                   conv_geom *g)
{
    int nsp = st->nsp;
    g->nsp = nsp;
    g->n = x->dims[0], g->c = x->dims[1], g->m = st->m;
    int64_t ks[CONV_MAX_SP], pads[2 * CONV_MAX_SP] = {0}, opad[CONV_MAX_SP] = {0};
    for (int i = 0; i < nsp; i++) {
        g->in[i] = x->dims[2 + i];
        g->stride[i] = g->dil[i] = 1;
        ks[i] = st->ksp[i];
    }
    FY_CHECK(read_ints(k, "kernel_shape", nsp, 1, ks));
    for (int i = 0; i < nsp; i++)
        if (ks[i] != st->ksp[i])
            return fy_kernel_error(k, FERRY_E_SHAPE, "kernel_shape does not match the weights");
    FY_CHECK(read_ints(k, "strides", nsp, 1, g->stride));
    FY_CHECK(read_ints(k, "dilations", nsp, 1, g->dil));
    FY_CHECK(read_ints(k, "pads", 2 * nsp, 0, pads));
    FY_CHECK(read_ints(k, "output_padding", nsp, 0, opad));
    const char *ap = fy_attr_string(k, "auto_pad", "NOTSET");
    int mode = !strcmp(ap, "SAME_UPPER")       ? 1
               : !strcmp(ap, "SAME_LOWER")     ? 2
               : !strcmp(ap, "VALID")          ? 3
               : !strcmp(ap, "NOTSET") || !*ap ? 0
                                               : -1;
    if (mode < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "unknown auto_pad \"%s\"", ap);
    const int64_t *osv;
    int64_t osn = fy_attr_ints(k, "output_shape", &osv);
    if (osn >= 0 && osn != nsp && osn != nsp + 2)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "output_shape has %lld values",
                               (long long)osn);
    for (int i = 0; i < nsp; i++) {
        int64_t ext = (st->ksp[i] - 1) * g->dil[i] + 1, in = g->in[i], s = g->stride[i];
        int64_t full = s * (in - 1) + opad[i] + ext, p0 = pads[i], p1 = pads[nsp + i], out;
        if (osn >= 0 || mode == 1 || mode == 2) {
            out = osn >= 0 ? osv[osn - nsp + i] : in * s;
            if (out < 0 || out > (1 << 30))
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "output_shape is out of range");
            int64_t total = full - out;
            p0 = mode == 2 ? total - total / 2 : total / 2;
        } else {
            if (mode == 3) p0 = p1 = 0;
            out = full - p0 - p1;
            if (out < 0)
                return fy_kernel_error(k, FERRY_E_SHAPE, "padding exceeds the output size");
        }
        /* oneDNN: out = s * (in - 1) + ext - pad_l - pad_r, output_padding folded into pad_r */
        g->out[i] = out;
        g->pad_l[i] = p0;
        g->pad_r[i] = s * (in - 1) + ext - p0 - out;
    }
    return FERRY_OK;
}

/* ---- primitives -------------------------------------------------------------------------- */

static void weights_dims(const conv_state *st, int *nd, dnnl_dims_t d)
{
    int i = 0;
    if (st->group > 1) d[i++] = st->group;
    d[i++] = st->m / st->group;
    d[i++] = st->cg;
    for (int s = 0; s < st->nsp; s++)
        d[i++] = st->ksp[s];
    *nd = i;
}

/* Descriptor with weights wmd and source smd (NULL: oneDNN's choice). */
static dnnl_primitive_desc_t conv_pd(const conv_state *st, const conv_geom *g,
                                     const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *smd,
                                     int serial, int wino)
{
    int nd = 2 + g->nsp, wnd;
    dnnl_dims_t sd = {g->n, g->c}, dd = {g->n, g->m}, wd, bd = {g->m};
    dnnl_dims_t strides, dil, pl, pr;
    for (int i = 0; i < g->nsp; i++) {
        sd[2 + i] = g->in[i], dd[2 + i] = g->out[i];
        strides[i] = g->stride[i], dil[i] = g->dil[i] - 1, pl[i] = g->pad_l[i], pr[i] = g->pad_r[i];
    }
    weights_dims(st, &wnd, wd);
    dnnl_memory_desc_t src, dst, w, b;
    if (dnnl_memory_desc_init_by_tag(&src, nd, sd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, nd, dd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_a) != dnnl_success)
        return NULL;
    if (wmd)
        w = *wmd;
    else if (dnnl_memory_desc_init_by_tag(&w, wnd, wd, dnnl_f32, dnnl_format_tag_any) !=
             dnnl_success)
        return NULL;
    if (smd) src = *smd;
    dnnl_status_t s;
    if (st->transposed) {
        dnnl_deconvolution_desc_t desc;
        s = dnnl_dilated_deconvolution_forward_desc_init(
            &desc, dnnl_forward_inference, dnnl_deconvolution_direct, &src, &w,
            st->bias ? &b : NULL, &dst, strides, dil, pl, pr);
        return s == dnnl_success ? fy_dnnl_pd_create(&desc, st->attr, serial) : NULL;
    }
    dnnl_convolution_desc_t desc;
    s = dnnl_dilated_convolution_forward_desc_init(
        &desc, dnnl_forward_inference, wino ? dnnl_convolution_winograd : dnnl_convolution_direct,
        &src, &w, st->bias ? &b : NULL, &dst, strides, dil, pl, pr);
    return s == dnnl_success ? fy_dnnl_pd_create(&desc, st->attr, serial) : NULL;
}

/* Winograd (F(2x2,3x3) / F(4x4,3x3)) does a 3x3 stride-1 convolution in about half the time of
 * the direct one on AVX-512, with rounding errors a few times larger than the direct
 * convolution's (still well inside what the model tests allow against PyTorch).
 * FERRY_DNNL_WINOGRAD=0 turns it off. */
static bool winograd_enabled(void)
{
    static int on = -1;
    int v = __atomic_load_n(&on, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv("FERRY_DNNL_WINOGRAD");
        v = !(e && strcmp(e, "0") == 0);
        __atomic_store_n(&on, v, __ATOMIC_RELAXED);
    }
    return v;
}

static bool impl_has(const_dnnl_primitive_desc_t pd, const char *what, int prefix)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return false;
    return prefix ? strncmp(impl, what, strlen(what)) == 0 : strstr(impl, what) != NULL;
}

/* The best descriptor for input X laid out as in_md: Winograd where it applies; else a JIT
 * kernel that reads X in the layout it arrived in (the previous oneDNN kernel's: no reorder,
 * and chains settle on one layout); else oneDNN's own choice of layout. */
static dnnl_primitive_desc_t best_pd(const conv_state *st, const conv_geom *g,
                                     const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *in_md,
                                     int serial)
{
    bool wino = !st->transposed && g->nsp == 2 && st->group == 1 && winograd_enabled();
    for (int i = 0; wino && i < 2; i++)
        wino = st->ksp[i] == 3 && g->stride[i] == 1 && g->dil[i] == 1;
    dnnl_primitive_desc_t pd;
    if (wino) {
        pd = conv_pd(st, g, wmd, NULL, serial, 1);
        if (pd && impl_has(pd, "wino", 0)) return pd;
        if (pd) dnnl_primitive_desc_destroy(pd);
    }
    int64_t dims[2 + CONV_MAX_SP] = {g->n, g->c};
    for (int i = 0; i < g->nsp; i++)
        dims[2 + i] = g->in[i];
    if (in_md && !fy_dnnl_md_is_plain(in_md, 2 + g->nsp, dims)) {
        pd = conv_pd(st, g, wmd, in_md, serial, 0);
        if (pd && (impl_has(pd, "jit", 1) || impl_has(pd, "brg", 1))) return pd;
        if (pd) dnnl_primitive_desc_destroy(pd);
    }
    return conv_pd(st, g, wmd, NULL, serial, 0);
}

static const char *impl_name(const_dnnl_primitive_desc_t pd)
{
    const char *s = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    return s ? s : "";
}

static int64_t conv_macs(const conv_state *st, const conv_geom *g)
{
    int64_t sp = 1, ks = 1;
    for (int i = 0; i < g->nsp; i++)
        sp *= st->transposed ? g->in[i] : g->out[i], ks *= st->ksp[i];
    return g->n * st->m * st->cg * ks * sp;
}

/* e's primitive for geometry g: the best oneDNN has, using the session's reordered weights
 * when the primitive wants their layout (or accepts it with the same implementation), else
 * with its own copy of the weights. e->ok stays 0 when oneDNN cannot, or would only run its
 * slow reference implementation (ferry's reference kernel then runs). */
static bool weights_in_use(const conv_state *st)
{
    for (int i = 0; i < st->n_entries; i++)
        if (st->entries[i]->w == st->w) return true;
    return false;
}

static ferry_status conv_make(conv_state *st, const conv_geom *g, conv_entry *e)
{
    int serial = conv_macs(st, g) < FY_DNNL_SERIAL_MACS;
    dnnl_primitive_desc_t pd = best_pd(st, g, NULL, &e->in_md, serial);
    if (!pd || fy_dnnl_pd_is_ref(pd)) goto declined;
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    ferry_status rc = FERRY_OK;
    if (st->w && !fy_dnnl_md_equal(want, &st->w_md)) {
        dnnl_primitive_desc_t fixed = best_pd(st, g, &st->w_md, &e->in_md, serial);
        if (fixed && strcmp(impl_name(fixed), impl_name(pd)) == 0) {
            dnnl_primitive_desc_destroy(pd);
            pd = fixed;
        } else if (fixed) {
            dnnl_primitive_desc_destroy(fixed);
        }
    }
    want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (st->w && !fy_dnnl_md_equal(want, &st->w_md) && !weights_in_use(st)) {
        /* The layout guessed at prepare time is not the one runs want, and no entry uses it:
         * replace it rather than keep two copies of the weights (callers hold st->mu). */
        free(st->w);
        st->w = fy_dnnl_reorder_weights(pd, &st->w_onnx_md, st->w_onnx, &st->w_md);
    }
    if (st->w && fy_dnnl_md_equal(want, &st->w_md)) {
        e->w = st->w;
    } else {
        size_t size = dnnl_memory_desc_get_size(want);
        e->own_w = aligned_alloc(64, (size + 63) / 64 * 64);
        if (!e->own_w) rc = fy_error(FERRY_E_NOMEM, "out of memory reordering weights");
        if (rc == FERRY_OK) rc = fy_dnnl_reorder(&st->w_onnx_md, st->w_onnx, want, e->own_w);
        e->w = e->own_w;
    }
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    if (rc == FERRY_OK) rc = fy_dnnl_prim_init(&e->p, pd, st->bias ? 4 : 3, args, serial);
    dnnl_primitive_desc_destroy(pd);
    e->ok = rc == FERRY_OK;
    return rc;
declined:
    if (pd) dnnl_primitive_desc_destroy(pd);
    e->ok = 0;
    return FERRY_OK;
}

static void entry_free(conv_entry *e)
{
    if (!e) return;
    fy_dnnl_prim_free(&e->p);
    free(e->own_w);
    free(e);
}

/* The entry for X's shape and layout, made on first sight; *temp when the cache is full and
 * the caller frees it. NULL entry with FERRY_OK: the geometry is invalid (the reference kernel
 * reports it). */
static ferry_status conv_entry_get(fy_kernel *k, conv_state *st, const fy_value *x,
                                   const dnnl_memory_desc_t *in_md, conv_entry **out, int *temp)
{
    *out = NULL;
    *temp = 0;
    int rank = x->rank;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->n_entries; i++) {
        conv_entry *e = st->entries[i];
        if (e->nthr == omp_get_max_threads() &&
            memcmp(e->xdims, x->dims, sizeof(int64_t) * (size_t)rank) == 0 &&
            fy_dnnl_md_equal(&e->in_md, in_md)) {
            pthread_mutex_unlock(&st->mu);
            *out = e;
            return FERRY_OK;
        }
    }
    conv_geom g;
    ferry_status rc = st->transposed ? convt_geometry(k, st, x, &g) : conv_geometry(k, st, x, &g);
    if (rc != FERRY_OK) {
        pthread_mutex_unlock(&st->mu);
        return FERRY_OK;
    }
    conv_entry *e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&st->mu);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    memcpy(e->xdims, x->dims, sizeof(int64_t) * (size_t)rank);
    e->nthr = omp_get_max_threads();
    e->in_md = *in_md;
    e->ydims[0] = g.n, e->ydims[1] = g.m;
    for (int i = 0; i < g.nsp; i++)
        e->ydims[2 + i] = g.out[i];
    int bad = 0;
    for (int i = 0; i < g.nsp; i++)
        bad |= g.out[i] <= 0 || (st->transposed && g.pad_r[i] < 0);
    rc = bad ? FERRY_OK : conv_make(st, &g, e);
    if (bad) e->ok = 0;
    if (rc != FERRY_OK) {
        pthread_mutex_unlock(&st->mu);
        entry_free(e);
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

/* ---- prepare / release ------------------------------------------------------------------- */

static void conv_release(void *p)
{
    conv_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++)
        entry_free(st->entries[i]);
    if (st->attr) dnnl_primitive_attr_destroy(st->attr);
    free(st->w);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Post-ops of FusedConv: Z as a sum (dst holds Z when the primitive runs), then the
 * activation. */
static ferry_status fused_attr(const fy_node *n, conv_state *st)
{
    const char *act = fy_dnnl_attr_string(n, "activation", NULL);
    if (!st->has_z && (!act || !*act)) return FERRY_OK;
    dnnl_post_ops_t ops;
    FY_CHECK(fy_dnnl_check(dnnl_post_ops_create(&ops), "post-ops"));
    ferry_status rc = FERRY_OK;
    if (st->has_z) rc = fy_dnnl_check(dnnl_post_ops_append_sum(ops, 1.0f), "sum post-op");
    if (rc == FERRY_OK && act && *act) {
        const fy_attr *pa = fy_node_attr(n, "activation_params");
        const float *params = pa && pa->type == FY_ATTR_FLOATS ? pa->floats : NULL;
        int np = params ? (int)pa->n : 0;
        if (!fy_dnnl_append_activation(ops, act, params, np))
            rc = fy_error(FERRY_E_UNSUPPORTED, "activation %s", act);
    }
    if (rc == FERRY_OK) rc = fy_dnnl_check(dnnl_primitive_attr_create(&st->attr), "attributes");
    if (rc == FERRY_OK)
        rc = fy_dnnl_check(dnnl_primitive_attr_set_post_ops(st->attr, ops), "post-ops");
    dnnl_post_ops_destroy(ops);
    return rc;
}

/* Reorder the weights into the layout a primitive for a likely input shape (the declared one,
 * unknown dims guessed) prefers; a run with another preference reorders its own copy. */
static void prepare_weights(const fy_node *n, const fy_graph *g, conv_state *st)
{
    const fy_type_info *t = &g->values[n->inputs[0]].type;
    fy_value x = {.refcount = 1, .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F32};
    x.rank = 2 + st->nsp;
    x.dims[0] = t->rank == x.rank && t->dims[0] > 0 ? t->dims[0] : 1;
    x.dims[1] = st->cg * st->group;
    for (int i = 0; i < st->nsp; i++)
        x.dims[2 + i] = t->rank == x.rank && t->dims[2 + i] > 0 ? t->dims[2 + i] : 32;
    fy_kernel fk = {.node = n};
    conv_geom geom;
    ferry_status rc =
        st->transposed ? convt_geometry(&fk, st, &x, &geom) : conv_geometry(&fk, st, &x, &geom);
    if (rc != FERRY_OK) return;
    dnnl_primitive_desc_t pd =
        best_pd(st, &geom, NULL, NULL, conv_macs(st, &geom) < FY_DNNL_SERIAL_MACS);
    if (!pd) return;
    float *w = fy_dnnl_reorder_weights(pd, &st->w_onnx_md, st->w_onnx, &st->w_md);
    if (w) st->w = w;
    dnnl_primitive_desc_destroy(pd);
}

static ferry_status conv_prepare(const fy_node *n, const fy_graph *g, void **state, int transposed,
                                 int fused)
{
    *state = NULL;
    conv_state *st = calloc(1, sizeof *st);
    if (!st) return fy_error(FERRY_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    const fy_value *w = fy_dnnl_init_f32(n, g, 1), *b = fy_dnnl_init_f32(n, g, 2);
    st->transposed = transposed;
    st->nsp = w->rank - 2;
    st->group = fy_dnnl_attr_int(n, "group", 1);
    st->m = transposed ? w->dims[1] * st->group : w->dims[0];
    st->cg = transposed ? w->dims[0] / st->group : w->dims[1];
    int64_t ksp = 1;
    for (int i = 0; i < st->nsp; i++)
        ksp *= st->ksp[i] = w->dims[2 + i];
    st->w_onnx = w->data;
    st->bias = b ? b->data : NULL;
    st->has_z = fused && fy_dnnl_has_input(n, 3);
    if (st->has_z && g->last_use && n >= g->nodes && n < g->nodes + g->n_nodes) {
        int z = n->inputs[3];
        st->z_dies_here =
            g->last_use[z] == (int)(n - g->nodes) && !g->values[z].init && z != n->inputs[0];
    }
    ferry_status rc = FERRY_OK;
    if (transposed && w->dims[0] % st->group != 0) {
        /* the reference kernel reports it */
        *state = st;
        st->m = 0;
        return FERRY_OK;
    }
    /* ONNX weights as oneDNN's logical (g,) o, i, spatial dims with ONNX's strides */
    int nd;
    dnnl_dims_t wd, ws;
    weights_dims(st, &nd, wd);
    int64_t mg = st->m / st->group, cg = st->cg;
    int at = 0;
    if (st->group > 1) ws[at++] = mg * cg * ksp;
    ws[at++] = transposed ? ksp : cg * ksp; /* o */
    ws[at++] = transposed ? mg * ksp : ksp; /* i */
    for (int i = 0; i < st->nsp; i++) {     /* spatial, row-major */
        int64_t inner = 1;
        for (int j = i + 1; j < st->nsp; j++)
            inner *= st->ksp[j];
        ws[at++] = inner;
    }
    rc = fy_dnnl_check(dnnl_memory_desc_init_by_strides(&st->w_onnx_md, nd, wd, dnnl_f32, ws),
                       "weights descriptor");
    if (rc == FERRY_OK && fused) rc = fused_attr(n, st);
    if (rc != FERRY_OK) {
        conv_release(st);
        return rc;
    }
    prepare_weights(n, g, st);
    *state = st;
    return FERRY_OK;
}

ferry_status fy_dnnl_Conv_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return conv_prepare(n, g, state, 0, 0);
}

ferry_status fy_dnnl_ConvTranspose_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return conv_prepare(n, g, state, 1, 0);
}

ferry_status fy_dnnl_FusedConv_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return conv_prepare(n, g, state, 0, 1);
}

void fy_dnnl_Conv_release(void *state) { conv_release(state); }
void fy_dnnl_ConvTranspose_release(void *state) { conv_release(state); }
void fy_dnnl_FusedConv_release(void *state) { conv_release(state); }

/* ---- run --------------------------------------------------------------------------------- */

static ferry_status conv_run(fy_kernel *k)
{
    conv_state *st = k->state;
    const fy_value *x = k->n_inputs > 0 ? k->inputs[0] : NULL;
    const fy_value *z = st && st->has_z && k->n_inputs > 3 ? k->inputs[3] : NULL;
    if (!st || !st->m || !x || x->kind != FERRY_VALUE_TENSOR || x->dtype != FERRY_DTYPE_F32 ||
        x->rank != 2 + st->nsp || x->count == 0 || x->dims[1] != st->cg * st->group ||
        (st->has_z && (!z || z->kind != FERRY_VALUE_TENSOR || z->dtype != FERRY_DTYPE_F32)))
        return fy_dnnl_run_reference(k);
    dnnl_memory_desc_t in_md;
    fy_dnnl_value_md(x, &in_md);
    conv_entry *e;
    int temp;
    FY_CHECK(conv_entry_get(k, st, x, &in_md, &e, &temp));
    if (!e || !e->ok || (z && !fy_shape_equal(z->rank, z->dims, x->rank, e->ydims))) {
        if (temp) entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    const dnnl_memory_desc_t *src_md = fy_dnnl_prim_md(&e->p, DNNL_ARG_SRC);
    const dnnl_memory_desc_t *dst_md = fy_dnnl_prim_md(&e->p, DNNL_ARG_DST);
    void *src = x->data, *scratch = NULL;
    size_t scratch_size = 0;
    ferry_status rc = FERRY_OK;
    if (!fy_dnnl_md_equal(src_md, &in_md)) {
        scratch_size = dnnl_memory_desc_get_size(src_md);
        src = scratch = fy_dnnl_scratch(k, scratch_size);
        if (!scratch) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        if (rc == FERRY_OK) rc = fy_dnnl_reorder(&in_md, x->data, src_md, scratch);
    }
    fy_value *y = NULL;
    dnnl_memory_desc_t z_md;
    if (z) fy_dnnl_value_md(z, &z_md);
    if (rc == FERRY_OK && z && st->z_dies_here && z != x && z->refcount == 1 && z->buf &&
        z->buf->refcount == 1 && !z->buf->borrowed && fy_dnnl_md_equal(&z_md, dst_md)) {
        /* nobody reads Z after this node and only the executor holds it: the sum post-op
         * adds into Z's own storage, which becomes the output */
        y = k->inputs[3];
        rc = fy_output_set(k, 0, fy_value_ref(y));
    } else {
        if (rc == FERRY_OK) rc = fy_dnnl_output(k, 0, dst_md, x->rank, e->ydims, &y);
        if (rc == FERRY_OK && z) {
            /* the sum post-op adds what dst holds: Z, in dst's layout */
            if (fy_dnnl_md_equal(&z_md, dst_md))
                memcpy(y->data, z->data, dnnl_memory_desc_get_size(dst_md));
            else
                rc = fy_dnnl_reorder(&z_md, z->data, dst_md, y->data);
        }
    }
    if (rc == FERRY_OK) {
        void *data[4] = {src, (void *)e->w, y->data, (void *)st->bias};
        rc = fy_dnnl_prim_run(&e->p, &st->mu, k, data);
    }
    fy_dnnl_scratch_free(k, scratch, scratch_size);
    if (temp) entry_free(e);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
    return FERRY_OK;
}

ferry_status fy_dnnl_Conv_run(fy_kernel *k) { return conv_run(k); }
ferry_status fy_dnnl_ConvTranspose_run(fy_kernel *k) { return conv_run(k); }
ferry_status fy_dnnl_FusedConv_run(fy_kernel *k) { return conv_run(k); }
