/* dnnl_pool.c — MaxPool (without Indices), AveragePool and GlobalAveragePool on oneDNN, read
 * and written in whatever layout the neighbouring oneDNN kernels use. Window geometry comes
 * from fy_window (the reference kernels' own), turned into oneDNN's explicit paddings. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"
#include "ops/nn_util.h"

#define POOL_MAX_SP 3

enum pool_kind { POOL_MAX, POOL_AVG, POOL_GLOBAL_AVG };

typedef struct pool_entry {
    int nthr; /* the OpenMP team size it was made for */
    int64_t xdims[2 + POOL_MAX_SP];
    dnnl_memory_desc_t in_md;
    int ok;
    fy_dnnl_prim p; /* SRC, DST */
    int64_t ydims[2 + POOL_MAX_SP];
} pool_entry;

typedef struct pool_state {
    pthread_mutex_t mu;
    enum pool_kind kind;
    pool_entry *entries[FY_DNNL_MAX_SHAPES];
    int n_entries;
} pool_state;

static bool pool_supports(const fy_node *n, const fy_graph *g)
{
    return fy_dnnl_engine() && n->n_inputs == 1 && fy_dnnl_outputs_at_most(n, 1) &&
           n->n_outputs >= 1 && n->outputs[0] >= 0 && fy_dnnl_maybe_f32(n, g, 0);
}

bool fy_dnnl_MaxPool_supports(const fy_node *n, const fy_graph *g) { return pool_supports(n, g); }
bool fy_dnnl_AveragePool_supports(const fy_node *n, const fy_graph *g)
{
    return pool_supports(n, g);
}
bool fy_dnnl_GlobalAveragePool_supports(const fy_node *n, const fy_graph *g)
{
    return pool_supports(n, g);
}

static ferry_status pool_prepare(void **state, enum pool_kind kind)
{
    pool_state *st = calloc(1, sizeof *st);
    if (!st) return fy_error(FERRY_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    st->kind = kind;
    *state = st;
    return FERRY_OK;
}

ferry_status fy_dnnl_MaxPool_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return pool_prepare(state, POOL_MAX);
}
ferry_status fy_dnnl_AveragePool_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return pool_prepare(state, POOL_AVG);
}
ferry_status fy_dnnl_GlobalAveragePool_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    return pool_prepare(state, POOL_GLOBAL_AVG);
}

static void entry_free(pool_entry *e)
{
    if (!e) return;
    fy_dnnl_prim_free(&e->p);
    free(e);
}

static void pool_release(void *p)
{
    pool_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++)
        entry_free(st->entries[i]);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

void fy_dnnl_MaxPool_release(void *state) { pool_release(state); }
void fy_dnnl_AveragePool_release(void *state) { pool_release(state); }
void fy_dnnl_GlobalAveragePool_release(void *state) { pool_release(state); }

/* Build e's primitive for X of in_md; e->ok stays 0 where oneDNN would not compute exactly
 * what the reference does (the reference kernel then runs). */
static ferry_status pool_make(const fy_kernel *k, const pool_state *st, const fy_value *x,
                              const dnnl_memory_desc_t *in_md, pool_entry *e)
{
    int nsp = x->rank - 2, off = FY_WIN_DIMS - nsp;
    dnnl_dims_t kernel, strides, dil, pl, pr, dd = {x->dims[0], x->dims[1]};
    int64_t work = x->dims[0] * x->dims[1];
    dnnl_alg_kind_t alg = dnnl_pooling_max;
    if (st->kind == POOL_GLOBAL_AVG) {
        alg = dnnl_pooling_avg_exclude_padding;
        for (int i = 0; i < nsp; i++) {
            kernel[i] = x->dims[2 + i], strides[i] = 1, dil[i] = pl[i] = pr[i] = 0, dd[2 + i] = 1;
            work *= x->dims[2 + i];
        }
    } else {
        fy_window w;
        int ceil_mode = fy_attr_int(k, "ceil_mode", 0) != 0;
        if (fy_window_init(k, x, NULL, 1, ceil_mode, &w) != FERRY_OK) return FERRY_OK;
        int count_pad = fy_attr_int(k, "count_include_pad", 0) != 0;
        if (st->kind == POOL_AVG)
            alg = count_pad ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding;
        for (int i = 0; i < nsp; i++) {
            int d = off + i;
            int64_t ext = (w.kernel[d] - 1) * w.dil[d] + 1;
            int64_t right = (w.out[d] - 1) * w.stride[d] + ext - w.in[d] - w.pad0[d];
            /* windows that would hold only padding, and averages whose divisor would count
             * ceil_mode's extra padding, are left to the reference kernel */
            if (w.out[d] < 1 || right < 0 || w.pad0[d] >= ext || right >= ext) return FERRY_OK;
            if (st->kind == POOL_AVG && (w.dil[d] != 1 || (count_pad && right > w.pad1[d])))
                return FERRY_OK;
            kernel[i] = w.kernel[d], strides[i] = w.stride[d], dil[i] = w.dil[d] - 1;
            pl[i] = w.pad0[d], pr[i] = right, dd[2 + i] = w.out[d];
            work *= w.out[d] * w.kernel[d];
        }
    }
    dnnl_memory_desc_t dst;
    if (dnnl_memory_desc_init_by_tag(&dst, x->rank, dd, dnnl_f32, dnnl_format_tag_any) !=
        dnnl_success)
        return FERRY_OK;
    dnnl_pooling_v2_desc_t desc;
    if (dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, in_md, &dst, strides,
                                          kernel, dil, pl, pr) != dnnl_success)
        return FERRY_OK;
    int serial = work < FY_DNNL_SERIAL_MACS;
    dnnl_primitive_desc_t pd = fy_dnnl_pd_create(&desc, NULL, serial);
    if (!pd) return FERRY_OK;
    ferry_status rc = FERRY_OK;
    if (!fy_dnnl_pd_is_ref(pd)) {
        int args[2] = {DNNL_ARG_SRC, DNNL_ARG_DST};
        rc = fy_dnnl_prim_init(&e->p, pd, 2, args, serial);
        e->ok = rc == FERRY_OK;
        memcpy(e->ydims, dd, sizeof(int64_t) * (size_t)x->rank);
    }
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static ferry_status pool_run(fy_kernel *k)
{
    pool_state *st = k->state;
    const fy_value *x = k->n_inputs > 0 ? k->inputs[0] : NULL;
    ferry_status q8rc;
    if (strcmp(k->node->op_type, "MaxPool") == 0 && fy_dnnl_maxpool_q8(k, x, &q8rc)) return q8rc;
    if (!st || !x || x->kind != FERRY_VALUE_TENSOR || x->dtype != FERRY_DTYPE_F32 || x->rank < 3 ||
        x->rank > 2 + POOL_MAX_SP || x->count == 0)
        return fy_dnnl_run_reference(k);
    dnnl_memory_desc_t in_md;
    fy_dnnl_value_md(x, &in_md);
    pool_entry *e = NULL;
    int temp = 0;
    ferry_status rc = FERRY_OK;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->n_entries && !e; i++)
        if (st->entries[i]->nthr == omp_get_max_threads() &&
            memcmp(st->entries[i]->xdims, x->dims, sizeof(int64_t) * (size_t)x->rank) == 0 &&
            fy_dnnl_md_equal(&st->entries[i]->in_md, &in_md))
            e = st->entries[i];
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        if (rc == FERRY_OK) {
            memcpy(e->xdims, x->dims, sizeof(int64_t) * (size_t)x->rank);
            e->nthr = omp_get_max_threads();
            e->in_md = in_md;
            rc = pool_make(k, st, x, &in_md, e);
        }
        if (rc == FERRY_OK && st->n_entries < FY_DNNL_MAX_SHAPES)
            st->entries[st->n_entries++] = e;
        else if (rc == FERRY_OK)
            temp = 1;
        else
            entry_free(e), e = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != FERRY_OK) return rc;
    if (!e->ok) {
        if (temp) entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    fy_value *y;
    rc = fy_dnnl_output(k, 0, fy_dnnl_prim_md(&e->p, DNNL_ARG_DST), x->rank, e->ydims, &y);
    if (rc == FERRY_OK) {
        void *data[2] = {x->data, y->data};
        rc = fy_dnnl_prim_run(&e->p, &st->mu, k, data);
    }
    if (temp) entry_free(e);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s)", k->node->name, k->node->op_type);
    return FERRY_OK;
}

ferry_status fy_dnnl_MaxPool_run(fy_kernel *k) { return pool_run(k); }
ferry_status fy_dnnl_AveragePool_run(fy_kernel *k) { return pool_run(k); }
ferry_status fy_dnnl_GlobalAveragePool_run(fy_kernel *k) { return pool_run(k); }
