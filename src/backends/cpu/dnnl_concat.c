/* dnnl_concat.c — Concat of float32 tensors on oneDNN, so that the branches of a block
 * (SqueezeNet's fire modules, Inception) are joined in the layout their convolutions wrote,
 * without converting each branch to plain and the result back. */
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/dnnl_util.h"

#define CONCAT_MAX_IN (FY_DNNL_MAX_ARGS - 1)
#define CONCAT_MAX_RANK 6

typedef struct concat_entry {
    int rank;
    int64_t dims[CONCAT_MAX_IN][CONCAT_MAX_RANK];
    dnnl_memory_desc_t in_md[CONCAT_MAX_IN];
    int ok;
    fy_dnnl_prim p; /* DST, then MULTIPLE_SRC + i */
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
    fy_dnnl_prim_free(&e->p);
    free(e);
}

void fy_dnnl_Concat_release(void *state)
{
    concat_state *st = state;
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++) entry_free(st->entries[i]);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static bool entry_matches(const concat_entry *e, int n, fy_value *const *in,
                          const dnnl_memory_desc_t *mds)
{
    if (e->rank != in[0]->rank) return false;
    for (int i = 0; i < n; i++)
        if (memcmp(e->dims[i], in[i]->dims, sizeof(int64_t) * (size_t)e->rank) != 0 ||
            !fy_dnnl_md_equal(&e->in_md[i], &mds[i]))
            return false;
    return true;
}

static ferry_status concat_make(int n, fy_value *const *in, const dnnl_memory_desc_t *mds,
                                int axis, concat_entry *e)
{
    int rank = in[0]->rank;
    memcpy(e->ydims, in[0]->dims, sizeof(int64_t) * (size_t)rank);
    e->ydims[axis] = 0;
    for (int i = 0; i < n; i++) e->ydims[axis] += in[i]->dims[axis];
    dnnl_dims_t yd;
    for (int i = 0; i < rank; i++) yd[i] = e->ydims[i];
    dnnl_memory_desc_t dst;
    if (dnnl_memory_desc_init_by_tag(&dst, rank, yd, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return FERRY_OK;
    int64_t bytes = 4;
    for (int i = 0; i < rank; i++) bytes *= e->ydims[i];
    int serial = bytes < 4 * FY_DNNL_SERIAL_MACS;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_concat_primitive_desc_create(&pd, &dst, n, axis, mds, NULL, fy_dnnl_engine()) !=
        dnnl_success)
        return FERRY_OK;
    /* oneDNN's "ref" concat is a reorder per input into its slice of dst: fine to use */
    int args[FY_DNNL_MAX_ARGS] = {DNNL_ARG_DST};
    for (int i = 0; i < n; i++) args[1 + i] = DNNL_ARG_MULTIPLE_SRC + i;
    ferry_status rc = fy_dnnl_prim_init(&e->p, pd, 1 + n, args, serial);
    e->ok = rc == FERRY_OK;
    dnnl_primitive_desc_destroy(pd);
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
    for (int i = 0; i < n; i++) fy_dnnl_value_md(in[i], &mds[i]);

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
            for (int i = 0; i < n; i++) {
                memcpy(e->dims[i], in[i]->dims, sizeof(int64_t) * (size_t)rank);
                e->in_md[i] = mds[i];
            }
            rc = concat_make(n, in, mds, (int)axis, e);
        }
        if (rc == FERRY_OK && st->n_entries < FY_DNNL_MAX_SHAPES) st->entries[st->n_entries++] = e;
        else if (rc == FERRY_OK) temp = 1;
        else entry_free(e), e = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != FERRY_OK) return rc;
    if (!e->ok) {
        if (temp) entry_free(e);
        return fy_dnnl_run_reference(k);
    }
    fy_value *y;
    rc = fy_dnnl_output(k, 0, fy_dnnl_prim_md(&e->p, DNNL_ARG_DST), rank, e->ydims, &y);
    if (rc == FERRY_OK) {
        void *data[FY_DNNL_MAX_ARGS] = {y->data};
        for (int i = 0; i < n; i++) data[1 + i] = in[i]->data;
        rc = fy_dnnl_prim_run(&e->p, &st->mu, data);
    }
    if (temp) entry_free(e);
    if (rc != FERRY_OK) return fy_error_wrap(rc, "node \"%s\" (Concat)", k->node->name);
    return FERRY_OK;
}
