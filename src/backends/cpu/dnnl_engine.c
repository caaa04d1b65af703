/* dnnl_engine.c — the shared half of the oneDNN backend: engine and streams, blocked-layout
 * tensors and their conversion to plain, cached reorders, primitives with cached memory
 * objects, activations as post-ops, and the hand-off to reference kernels. */
#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"
#include "core/pool.h"

/* ---- engine and streams ------------------------------------------------------------------ */

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static pthread_key_t stream_key;

static void stream_destroy(void *s) { dnnl_stream_destroy(s); }

static void engine_init(void)
{
    const char *off = getenv("FERRY_NO_DNNL");
    if (off && *off && strcmp(off, "0") != 0) return;
    if (pthread_key_create(&stream_key, stream_destroy) != 0) return;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

dnnl_engine_t fy_dnnl_engine(void)
{
    pthread_once(&engine_once, engine_init);
    return engine;
}

dnnl_stream_t fy_dnnl_stream(void)
{
    dnnl_stream_t s = pthread_getspecific(stream_key);
    if (s) return s;
    if (dnnl_stream_create(&s, fy_dnnl_engine(), dnnl_stream_default_flags) != dnnl_success)
        return NULL;
    pthread_setspecific(stream_key, s);
    return s;
}

ferry_status fy_dnnl_check(dnnl_status_t s, const char *what)
{
    if (s == dnnl_success) return FERRY_OK;
    if (s == dnnl_out_of_memory)
        return fy_error(FERRY_E_NOMEM, "oneDNN: out of memory in %s", what);
    return fy_error(FERRY_E_INTERNAL, "oneDNN: %s failed (status %d)", what, (int)s);
}

/* ---- graph facts ------------------------------------------------------------------------- */

bool fy_dnnl_has_input(const fy_node *n, int i) { return i < n->n_inputs && n->inputs[i] >= 0; }

const fy_value *fy_dnnl_init_f32(const fy_node *n, const fy_graph *g, int i)
{
    if (!fy_dnnl_has_input(n, i)) return NULL;
    const fy_value *v = g->values[n->inputs[i]].init;
    if (!v || v->kind != FERRY_VALUE_TENSOR || v->dtype != FERRY_DTYPE_F32 || v->layout)
        return NULL;
    return v;
}

ferry_dtype fy_dnnl_input_dtype(const fy_node *n, const fy_graph *g, int i)
{
    if (!fy_dnnl_has_input(n, i)) return FERRY_DTYPE_UNDEFINED;
    const fy_value_info *vi = &g->values[n->inputs[i]];
    if (vi->init) return vi->init->dtype;
    return vi->type.dtype;
}

bool fy_dnnl_maybe_f32(const fy_node *n, const fy_graph *g, int i)
{
    ferry_dtype t = fy_dnnl_input_dtype(n, g, i);
    return fy_dnnl_has_input(n, i) && (t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_UNDEFINED);
}

int64_t fy_dnnl_attr_int(const fy_node *n, const char *name, int64_t def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_INT ? a->i : def;
}

float fy_dnnl_attr_float(const fy_node *n, const char *name, float def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_FLOAT ? a->f : def;
}

const char *fy_dnnl_attr_string(const fy_node *n, const char *name, const char *def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_STRING ? a->s : def;
}

bool fy_dnnl_outputs_at_most(const fy_node *n, int n_max)
{
    for (int i = n_max; i < n->n_outputs; i++)
        if (n->outputs[i] >= 0) return false;
    return true;
}

/* ---- descriptors ------------------------------------------------------------------------- */

void fy_dnnl_plain_md(int rank, const int64_t *dims, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d, s;
    int64_t stride = 1;
    for (int i = rank - 1; i >= 0; i--) {
        d[i] = dims[i];
        s[i] = stride;
        stride *= dims[i] > 0 ? dims[i] : 1;
    }
    if (dnnl_memory_desc_init_by_strides(md, rank, d, dnnl_f32, s) != dnnl_success)
        memset(md, 0, sizeof *md);
}

void fy_dnnl_value_md(const fy_value *v, dnnl_memory_desc_t *md)
{
    if (v->layout == &fy_dnnl_layout)
        *md = ((const fy_dnnl_desc *)v->layout_desc)->md;
    else
        fy_dnnl_plain_md(v->rank, v->dims, md);
}

bool fy_dnnl_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
    return dnnl_memory_desc_equal(a, b) != 0;
}

bool fy_dnnl_md_is_plain(const dnnl_memory_desc_t *md, int rank, const int64_t *dims)
{
    if (md->ndims != rank || md->data_type != dnnl_f32) return false;
    dnnl_memory_desc_t plain;
    fy_dnnl_plain_md(rank, dims, &plain);
    return fy_dnnl_md_equal(md, &plain);
}

/* ---- cached reorders --------------------------------------------------------------------- */

#define REORDER_CACHE 128

typedef struct reorder_entry {
    dnnl_memory_desc_t src, dst;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t scratch; /* its user scratchpad (size 0: none) */
} reorder_entry;

static reorder_entry *reorders;
static int n_reorders;
static pthread_mutex_t reorder_mu = PTHREAD_MUTEX_INITIALIZER;

/* The cached reorder src -> dst, made on first use (a copy in *out); out->prim is the
 * caller's to destroy when *temp (the cache is full). */
static ferry_status reorder_prim(const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
                                 reorder_entry *out, int *temp)
{
    *temp = 0;
    pthread_mutex_lock(&reorder_mu);
    for (int i = 0; i < n_reorders; i++)
        if (fy_dnnl_md_equal(&reorders[i].src, src) && fy_dnnl_md_equal(&reorders[i].dst, dst)) {
            *out = reorders[i];
            pthread_mutex_unlock(&reorder_mu);
            return FERRY_OK;
        }
    dnnl_engine_t eng = fy_dnnl_engine();
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = fy_dnnl_scratch_attr(NULL);
    ferry_status rc =
        attr ? fy_dnnl_check(dnnl_reorder_primitive_desc_create(&pd, src, eng, dst, eng, attr),
                             "reorder descriptor")
             : fy_error(FERRY_E_NOMEM, "out of memory");
    if (attr) dnnl_primitive_attr_destroy(attr);
    out->src = *src, out->dst = *dst, out->prim = NULL;
    if (rc == FERRY_OK) {
        out->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        rc = fy_dnnl_check(dnnl_primitive_create(&out->prim, pd), "reorder");
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (rc == FERRY_OK) {
        if (!reorders) reorders = calloc(REORDER_CACHE, sizeof *reorders);
        if (reorders && n_reorders < REORDER_CACHE)
            reorders[n_reorders++] = *out;
        else
            *temp = 1;
    }
    pthread_mutex_unlock(&reorder_mu);
    return rc;
}

ferry_status fy_dnnl_reorder(const dnnl_memory_desc_t *src_md, const void *src,
                             const dnnl_memory_desc_t *dst_md, void *dst)
{
    reorder_entry r;
    int temp;
    FY_CHECK(reorder_prim(src_md, dst_md, &r, &temp));
    dnnl_engine_t eng = fy_dnnl_engine();
    dnnl_memory_t ms = NULL, md = NULL, mscratch = NULL;
    size_t scratch_size = dnnl_memory_desc_get_size(&r.scratch);
    void *scratch = scratch_size ? aligned_alloc(64, (scratch_size + 63) / 64 * 64) : NULL;
    ferry_status rc =
        scratch_size && !scratch ? fy_error(FERRY_E_NOMEM, "out of memory") : FERRY_OK;
    if (rc == FERRY_OK)
        rc = fy_dnnl_check(dnnl_memory_create(&ms, src_md, eng, (void *)src), "memory");
    if (rc == FERRY_OK) rc = fy_dnnl_check(dnnl_memory_create(&md, dst_md, eng, dst), "memory");
    if (rc == FERRY_OK && scratch)
        rc = fy_dnnl_check(dnnl_memory_create(&mscratch, &r.scratch, eng, scratch), "memory");
    if (rc == FERRY_OK) {
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}, {DNNL_ARG_SCRATCHPAD, mscratch}};
        rc = fy_dnnl_check(dnnl_primitive_execute(r.prim, fy_dnnl_stream(), scratch ? 3 : 2, args),
                           "reorder");
    }
    if (ms) dnnl_memory_destroy(ms);
    if (md) dnnl_memory_destroy(md);
    if (mscratch) dnnl_memory_destroy(mscratch);
    free(scratch);
    if (temp) dnnl_primitive_destroy(r.prim);
    return rc;
}

/* ---- blocked tensors --------------------------------------------------------------------- */

static ferry_status dnnl_to_plain(const fy_value *v, fy_value **out)
{
    const fy_dnnl_desc *d = v->layout_desc;
    FY_CHECK(fy_tensor_new_pooled(d->pool, v->dtype, v->rank, v->dims, 0, out));
    if ((*out)->count == 0) return FERRY_OK;
    dnnl_memory_desc_t plain;
    fy_dnnl_plain_md(v->rank, v->dims, &plain);
    ferry_status rc = fy_dnnl_reorder(&d->md, v->data, &plain, (*out)->data);
    if (rc != FERRY_OK) {
        fy_value_unref(*out);
        *out = NULL;
    }
    return rc;
}

static void dnnl_desc_release(void *p)
{
    fy_dnnl_desc *d = p;
    if (!d) return;
    if (!d->pool) {
        free(d);
        return;
    }
    fy_pool *pool = d->pool;
    fy_pool_put(pool, d, sizeof *d);
    fy_pool_unref(pool);
}

const fy_layout fy_dnnl_layout = {"dnnl", dnnl_to_plain, dnnl_desc_release};

ferry_status fy_dnnl_output(fy_kernel *k, int i, const dnnl_memory_desc_t *md, int rank,
                            const int64_t *dims, fy_value **out)
{
    if (fy_dnnl_md_is_plain(md, rank, dims))
        return fy_output(k, i, FERRY_DTYPE_F32, rank, dims, out);
    *out = NULL;
    int64_t n = (int64_t)((dnnl_memory_desc_get_size(md) + 3) / 4);
    fy_value *v;
    FY_CHECK(fy_tensor_new_pooled(k->pool, FERRY_DTYPE_F32, 1, &n, 0, &v));
    /* from the session's pool, like the tensor's own header: nothing allocated per run */
    fy_dnnl_desc *d = k->pool ? fy_pool_take(k->pool, sizeof *d) : malloc(sizeof *d);
    if (!d) {
        fy_value_unref(v);
        return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    }
    d->md = *md;
    d->pool = k->pool;
    if (d->pool) fy_pool_ref(d->pool);
    v->rank = rank;
    memcpy(v->dims, dims, sizeof(int64_t) * (size_t)rank);
    v->count = fy_shape_count(rank, dims);
    v->layout = &fy_dnnl_layout;
    v->layout_desc = d;
    *out = v;
    return fy_output_set(k, i, v);
}

void *fy_dnnl_scratch(fy_kernel *k, size_t size)
{
    return k->pool ? fy_pool_take(k->pool, size) : aligned_alloc(64, (size + 63) / 64 * 64);
}

void fy_dnnl_scratch_free(fy_kernel *k, void *p, size_t size)
{
    if (!p) return;
    if (k->pool)
        fy_pool_put(k->pool, p, size);
    else
        free(p);
}

/* ---- primitives -------------------------------------------------------------------------- */

dnnl_primitive_attr_t fy_dnnl_scratch_attr(const_dnnl_primitive_attr_t base)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t s =
        base ? dnnl_primitive_attr_clone(&attr, base) : dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success)
        s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s != dnnl_success && attr) dnnl_primitive_attr_destroy(attr);
    return s == dnnl_success ? attr : NULL;
}

dnnl_primitive_desc_t fy_dnnl_pd_create(const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
                                        int serial)
{
    dnnl_primitive_attr_t user = fy_dnnl_scratch_attr(attr);
    if (!user) return NULL;
    int saved = omp_get_max_threads();
    if (serial) omp_set_num_threads(1);
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, desc, user, fy_dnnl_engine(), NULL) != dnnl_success)
        pd = NULL;
    if (serial) omp_set_num_threads(saved);
    dnnl_primitive_attr_destroy(user);
    return pd;
}

bool fy_dnnl_pd_is_ref(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return false;
    return strncmp(impl, "ref", 3) == 0;
}

ferry_status fy_dnnl_prim_init(fy_dnnl_prim *p, const_dnnl_primitive_desc_t pd, int n,
                               const int *args, int serial)
{
    memset(p, 0, sizeof *p);
    if (n > FY_DNNL_MAX_ARGS) return fy_error(FERRY_E_INTERNAL, "too many oneDNN arguments");
    p->n = n;
    p->serial = serial;
    for (int i = 0; i < n; i++) {
        p->args[i] = args[i];
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        if (!md) return fy_error(FERRY_E_INTERNAL, "oneDNN primitive lacks argument %d", args[i]);
        p->md[i] = *md;
    }
    const dnnl_memory_desc_t *scratch =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratch_size = scratch ? dnnl_memory_desc_get_size(scratch) : 0;
    if (p->scratch_size) {
        p->args[n] = DNNL_ARG_SCRATCHPAD;
        p->md[n] = *scratch;
    }
    int saved = omp_get_max_threads();
    if (serial) omp_set_num_threads(1);
    ferry_status rc = fy_dnnl_check(dnnl_primitive_create(&p->prim, pd), "primitive creation");
    if (serial) omp_set_num_threads(saved);
    return rc;
}

const dnnl_memory_desc_t *fy_dnnl_prim_md(const fy_dnnl_prim *p, int arg)
{
    for (int i = 0; i < p->n; i++)
        if (p->args[i] == arg) return &p->md[i];
    return NULL;
}

ferry_status fy_dnnl_prim_run(fy_dnnl_prim *p, pthread_mutex_t *mu, fy_kernel *k, void *const *data)
{
    dnnl_engine_t eng = fy_dnnl_engine();
    dnnl_stream_t stream = fy_dnnl_stream();
    if (!stream) return fy_error(FERRY_E_INTERNAL, "oneDNN: cannot create a stream");
    /* the scratchpad is per run (oneDNN's own one is shared by concurrent executions) */
    void *all[FY_DNNL_MAX_ARGS + 1], *scratch = NULL;
    int n = p->n + (p->scratch_size ? 1 : 0);
    memcpy(all, data, sizeof(void *) * (size_t)p->n);
    if (p->scratch_size) {
        all[p->n] = scratch = fy_dnnl_scratch(k, p->scratch_size);
        if (!scratch) return fy_error(FERRY_E_NOMEM, "out of memory for a oneDNN scratchpad");
    }
    dnnl_memory_t tmp[FY_DNNL_MAX_ARGS + 1] = {0}, *mem = p->mem;
    int temporary;
    pthread_mutex_lock(mu);
    temporary = p->busy;
    p->busy = 1;
    pthread_mutex_unlock(mu);
    ferry_status rc = FERRY_OK;
    if (temporary) mem = tmp;
    dnnl_exec_arg_t args[FY_DNNL_MAX_ARGS + 1];
    for (int i = 0; i < n && rc == FERRY_OK; i++) {
        if (!mem[i])
            rc = fy_dnnl_check(dnnl_memory_create(&mem[i], &p->md[i], eng, all[i]), "memory");
        else
            rc = fy_dnnl_check(dnnl_memory_set_data_handle_v2(mem[i], all[i], stream), "memory");
        args[i] = (dnnl_exec_arg_t){p->args[i], mem[i]};
    }
    if (rc == FERRY_OK) {
        int saved = omp_get_max_threads();
        if (p->serial) omp_set_num_threads(1);
        rc = fy_dnnl_check(dnnl_primitive_execute(p->prim, stream, n, args), "execution");
        if (p->serial) omp_set_num_threads(saved);
    }
    fy_dnnl_scratch_free(k, scratch, p->scratch_size);
    if (temporary) {
        for (int i = 0; i < n; i++)
            if (tmp[i]) dnnl_memory_destroy(tmp[i]);
    } else {
        pthread_mutex_lock(mu);
        p->busy = 0;
        pthread_mutex_unlock(mu);
    }
    return rc;
}

void fy_dnnl_prim_free(fy_dnnl_prim *p)
{
    if (!p) return;
    for (int i = 0; i <= p->n && i <= FY_DNNL_MAX_ARGS; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    memset(p, 0, sizeof *p);
}

/* ---- activations ------------------------------------------------------------------------- */

bool fy_dnnl_activation_known(const char *act)
{
    static const char *const known[] = {"Relu", "LeakyRelu",   "Sigmoid",   "Tanh",
                                        "Clip", "HardSigmoid", "HardSwish", "Identity"};
    for (size_t i = 0; act && i < sizeof known / sizeof *known; i++)
        if (strcmp(act, known[i]) == 0) return true;
    return false;
}

bool fy_dnnl_append_activation(dnnl_post_ops_t ops, const char *act, const float *p, int np)
{
#define PARAM(i, def) (np > (i) ? p[i] : (def))
    dnnl_status_t s;
    if (!*act || !strcmp(act, "Identity")) return true;
    if (!strcmp(act, "Relu"))
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0);
    else if (!strcmp(act, "LeakyRelu"))
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, PARAM(0, 0.01f), 0);
    else if (!strcmp(act, "Sigmoid"))
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_logistic, 0, 0);
    else if (!strcmp(act, "Tanh"))
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_tanh, 0, 0);
    else if (!strcmp(act, "Clip"))
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_clip_v2, PARAM(0, -FLT_MAX),
                                         PARAM(1, FLT_MAX));
    else if (!strcmp(act, "HardSigmoid")) {
        /* max(0, min(1, alpha * x + beta)): oneDNN 2.6 has no hardsigmoid, so linear + clip */
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_linear, PARAM(0, 0.2f),
                                         PARAM(1, 0.5f));
        if (s == dnnl_success) s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_clip_v2, 0, 1);
    } else if (!strcmp(act, "HardSwish"))
        s = dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_hardswish, 0, 0);
    else
        return false;
    return s == dnnl_success;
#undef PARAM
}

/* ---- fall-back --------------------------------------------------------------------------- */

ferry_status fy_dnnl_run_reference(fy_kernel *k)
{
    const fy_node *n = k->node;
    const fy_op *ref = fy_op_find(n->domain, n->op_type, n->opset);
    if (!ref) return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "no reference kernel to fall back to");
    fy_value *stack[16],
        **in = k->n_inputs <= 16 ? stack : malloc(sizeof(fy_value *) * k->n_inputs);
    if (!in) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    ferry_status rc = FERRY_OK;
    int i;
    for (i = 0; i < k->n_inputs && rc == FERRY_OK; i++) {
        fy_value *v = k->inputs[i];
        in[i] = NULL;
        if (v && v->kind == FERRY_VALUE_TENSOR && v->layout)
            rc = v->layout->to_plain(v, &in[i]);
        else
            in[i] = fy_value_ref(v);
    }
    if (rc == FERRY_OK) {
        fy_kernel kk = *k;
        kk.inputs = in;
        kk.state = NULL;
        rc = ref->run(&kk);
    }
    while (i-- > 0)
        fy_value_unref(in[i]);
    if (in != stack) free(in);
    return rc;
}

void *fy_dnnl_reorder_weights(dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *src_md,
                              const void *src, dnnl_memory_desc_t *out_md)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    size_t size = dnnl_memory_desc_get_size(want);
    void *w = aligned_alloc(64, (size + 63) / 64 * 64);
    if (!w || fy_dnnl_reorder(src_md, src, want, w) != FERRY_OK) {
        free(w);
        return NULL;
    }
    *out_md = *want;
    return w;
}
