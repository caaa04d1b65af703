/* dnnl_concat.c — Concat of float32 tensors on oneDNN, so that the branches of a block
 * (SqueezeNet's fire modules, Inception) are joined in the layout their convolutions wrote,
 * without converting each branch to plain and the result back. Each input is one reorder into
 * its slice of the output (oneDNN's "simple" concat primitive is several times slower than
 * that on blocked layouts). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"

#define CONCAT_MAX_IN   8
#define CONCAT_MAX_RANK 6

typedef struct concat_entry {
    int nthr; /* the OpenMP team size it was made for */
    int rank;
    int64_t dims[CONCAT_MAX_IN][CONCAT_MAX_RANK];
    dnnl_memory_desc_t in_md[CONCAT_MAX_IN];
    int ok;
    int n;
    dnnl_memory_desc_t dst_md;
    fy_dnnl_prim p[CONCAT_MAX_IN]; /* input i -> its slice of dst: FROM, TO */
    int64_t ydims[CONCAT_MAX_RANK];
} concat_entry;

typedef struct concat_state {
    pthread_mutex_t mu;
    concat_entry *entries[FY_DNNL_MAX_SHAPES];
    int n_entries;
} concat_state;

bool fy_dnnl_Concat_supports(const fy_node *n, const fy_graph *g)
{
    if (!fy_dnnl_engine() || n->n_inputs < 2 || n->n_inputs > CONCAT_MAX_IN || n->n_outputs != 1)
        return false;
    if (!fy_node_attr(n, "axis")) return false;
    for (int i = 0; i < n->n_inputs; i++)
        if (!fy_dnnl_maybe_f32(n, g, i)) return false;
    return true;
}

ferry_status fy_dnnl_Concat_prepare(const fy_node *n, const fy_graph *g, void **state)
{
    concat_state *st = calloc(1, sizeof *st);
    if (!st) return fy_error(FERRY_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    *state = st;
    return FERRY_OK;
}

static void entry_free(concat_entry *e)
{
    if (!e) return;
    for (int i = 0; i < e->n; i++)
        fy_dnnl_prim_free(&e->p[i]);
    free(e);
}

void fy_dnnl_Concat_release(void *state)
{
    concat_state *st = state;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++)
        entry_free(st->entries[i]);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static bool entry_matches(const concat_entry *e, int n, fy_value *const *in,
                          const dnnl_memory_desc_t *mds)
{
    if (e->rank != in[0]->rank || e->nthr != omp_get_max_threads()) return false;
    for (int i = 0; i < n; i++)
        if (memcmp(e->dims[i], in[i]->dims, sizeof(int64_t) * (size_t)e->rank) != 0 ||
            !fy_dnnl_md_equal(&e->in_md[i], &mds[i]))
            return false;
    return true;
}

/* The layout of the output: that of the first input in a permuted or channel-blocked format
 * (the others are converted into their slices), else plain. */
static void output_md(int n, fy_value *const *in, const dnnl_memory_desc_t *mds, int rank,
                      const dnnl_dims_t yd, dnnl_memory_desc_t *dst)
{
    static const dnnl_format_tag_t tags4[] = {dnnl_acdb, dnnl_aBcd16b, dnnl_aBcd8b};
    static const dnnl_format_tag_t tags3[] = {dnnl_acb, dnnl_aBc16b, dnnl_aBc8b};
    static const dnnl_format_tag_t tags5[] = {dnnl_acdeb, dnnl_aBcde16b, dnnl_aBcde8b};
    const dnnl_format_tag_t *tags = rank == 4   ? tags4
                                    : rank == 3 ? tags3
                                    : rank == 5 ? tags5
                                                : NULL;
    for (int i = 0; tags && i < n; i++)
        for (int t = 0; t < 3; t++) {
            dnnl_dims_t d;
            dnnl_memory_desc_t md;
            for (int j = 0; j < rank; j++)
                d[j] = in[i]->dims[j];
            if (dnnl_memory_desc_init_by_tag(&md, rank, d, dnnl_f32, tags[t]) == dnnl_success &&
                fy_dnnl_md_equal(&md, &mds[i]) &&
                dnnl_memory_desc_init_by_tag(dst, rank, yd, dnnl_f32, tags[t]) == dnnl_success)
                return;
        }
    int64_t dims[CONCAT_MAX_RANK];
    for (int j = 0; j < rank; j++)
        dims[j] = yd[j];
    fy_dnnl_plain_md(rank, dims, dst);
}

static ferry_status concat_make(int n, fy_value *const *in, const dnnl_memory_desc_t *mds, int axis,
                                concat_entry *e)
{
    int rank = in[0]->rank;
    memcpy(e->ydims, in[0]->dims, sizeof(int64_t) * (size_t)rank);
    e->ydims[axis] = 0;
    for (int i = 0; i < n; i++)
        e->ydims[axis] += in[i]->dims[axis];
    dnnl_dims_t yd, offsets = {0};
    for (int i = 0; i < rank; i++)
        yd[i] = e->ydims[i];
    output_md(n, in, mds, rank, yd, &e->dst_md);
    dnnl_primitive_attr_t attr = fy_dnnl_scratch_attr(NULL);
    if (!attr) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = FERRY_OK;
    int ok = 1;
    for (int i = 0; i < n && ok && rc == FERRY_OK; i++) {
        dnnl_dims_t d;
        for (int j = 0; j < rank; j++)
            d[j] = in[i]->dims[j];
        dnnl_memory_desc_t slice;
        dnnl_primitive_desc_t pd = NULL;
        ok = dnnl_memory_desc_init_submemory(&slice, &e->dst_md, d, offsets) == dnnl_success &&
             dnnl_reorder_primitive_desc_create(&pd, &mds[i], fy_dnnl_engine(), &slice,
                                                fy_dnnl_engine(), attr) == dnnl_success;
        if (ok) {
            int args[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
            rc = fy_dnnl_prim_init(&e->p[i], pd, 2, args, in[i]->count < FY_DNNL_SERIAL_MACS);
            e->n = i + 1;
        }
        if (pd) dnnl_primitive_desc_destroy(pd);
        offsets[axis] += in[i]->dims[axis];
    }
    dnnl_primitive_attr_destroy(attr);
    e->ok = ok && rc == FERRY_OK;
    return rc;
}

ferry_status fy_dnnl_Concat_run(fy_kernel *k)
{
    concat_state *st = k->state;
    int n = k->n_inputs;
    fy_value *const *in = k->inputs;
    if (!st || n < 2 || n > CONCAT_MAX_IN) return fy_dnnl_run_reference(k);
    for (int i = 0; i < n; i++)
        if (!in[i] || in[i]->kind != FERRY_VALUE_TENSOR || in[i]->dtype != FERRY_DTYPE_F32 ||
            in[i]->rank < 1 || in[i]->rank > CONCAT_MAX_RANK || in[i]->rank != in[0]->rank ||
            in[i]->count == 0)
            return fy_dnnl_run_reference(k);
    int rank = in[0]->rank;
    int64_t axis = fy_attr_int(k, "axis", 0);
    if (axis < -rank || axis >= rank) return fy_dnnl_run_reference(k);
    if (axis < 0) axis += rank;
    for (int i = 1; i < n; i++)
        for (int d = 0; d < rank; d++)
            if (d != axis && in[i]->dims[d] != in[0]->dims[d]) return fy_dnnl_run_reference(k);
    dnnl_memory_desc_t mds[CONCAT_MAX_IN];
    for (int i = 0; i < n; i++)
        fy_dnnl_value_md(in[i], &mds[i]);

    concat_entry *e = NULL;
    int temp = 0;
    ferry_status rc = FERRY_OK;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->n_entries && !e; i++)
        if (entry_matches(st->entries[i], n, in, mds)) e = st->entries[i];
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        if (rc == FERRY_OK) {
            e->rank = rank;
            e->nthr = omp_get_max_threads();
            for (int i = 0; i < n; i++) {
                memcpy(e->dims[i], in[i]->dims, sizeof(int64_t) * (size_t)rank);
                e->in_md[i] = mds[i];
            }
            rc = concat_make(n, in, mds, (int)axis, e);
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
    rc = fy_dnnl_output(k, 0, &e->dst_md, rank, e->ydims, &y);
    for (int i = 0; i < n && rc == FERRY_OK; i++) {
        void *data[2] = {in[i]->data, y->data};
        rc = fy_dnnl_prim_run(&e->p[i], &st->mu, k, data);
    }
    if (temp) entry_free(e);
    if (rc != FERRY_OK) return fy_error_wrap(rc, "node \"%s\" (Concat)", k->node->name);
    return FERRY_OK;
}
