/* control.c — the control-flow ops If, Loop and Scan: they run a subgraph attribute through
 * fy_kernel_run_graph, zero or more times, and wire its outputs back into the node's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/control_util.h"

/* A one-element condition tensor (bool, or any number) as 0/1. */
static ferry_status read_cond(const fy_kernel *k, const fy_value *t, const char *what, int *out)
{
    if (!t || t->kind != FERRY_VALUE_TENSOR)
        return fy_kernel_error(k, FERRY_E_DTYPE, "%s must be a tensor", what);
    if (t->count != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "%s must hold one element, has %lld", what,
                               (long long)t->count);
    if (t->dtype == FERRY_DTYPE_BOOL)
        *out = *(const uint8_t *)t->data != 0;
    else if (fy_dtype_is_numeric(t->dtype))
        *out = fy_tensor_get_f64(t, 0) != 0;
    else
        return fy_kernel_error(k, FERRY_E_DTYPE, "%s must be bool, got %s", what,
                               ferry_dtype_name(t->dtype));
    return FERRY_OK;
}

static void unref_all(fy_value **v, int64_t n)
{
    if (!v) return;
    for (int64_t i = 0; i < n; i++) {
        fy_value_unref(v[i]);
        v[i] = NULL;
    }
}

ferry_status fy_op_If(fy_kernel *k)
{
    const fy_value *c;
    int cond;
    FY_CHECK(fy_input_tensor(k, 0, &c));
    FY_CHECK(read_cond(k, c, "cond", &cond));
    const char *name = cond ? "then_branch" : "else_branch";
    const fy_graph *g = fy_attr_graph(k, name);
    if (!g) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute \"%s\" is required", name);
    if (g->n_outputs != k->n_outputs)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "%s has %d outputs, node has %d", name,
                               g->n_outputs, k->n_outputs);
    fy_value *stack[16] = {0};
    fy_value **res = g->n_outputs <= 16 ? stack : calloc((size_t)g->n_outputs, sizeof *res);
    if (!res) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = fy_kernel_run_graph(k, g, 0, NULL, res);
    for (int i = 0; i < g->n_outputs && rc == FERRY_OK; i++) {
        rc = fy_output_set(k, i, res[i]);
        res[i] = NULL;
    }
    unref_all(res, g->n_outputs);
    if (res != stack) free(res);
    return rc;
}

/* ---- Loop ---- */

/* Per-iteration values of one scan output, grown as the loop runs. */
typedef struct scan_list {
    fy_value **items;
    int64_t n, cap;
} scan_list;

static ferry_status scan_list_push(scan_list *l, fy_value *v)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 16;
        fy_value **items = realloc(l->items, sizeof *items * (size_t)cap);
        if (!items) {
            fy_value_unref(v);
            return fy_error(FERRY_E_NOMEM, "out of memory collecting scan outputs");
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return FERRY_OK;
}

/* Loop(M?, cond?, v_initial...) with body(iter_num, cond, v...) -> (cond, v..., scan...).
 * The body's cond output decides whether to go on even when the cond input is omitted: the
 * spec's pseudo-code calls it ignored there, but onnxruntime and the ONNX reference
 * implementation both obey it, and models are checked against those. */
ferry_status fy_op_Loop(fy_kernel *k)
{
    const fy_graph *body = fy_attr_graph(k, "body");
    if (!body) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute \"body\" is required");
    int n_carried = k->n_inputs > 2 ? k->n_inputs - 2 : 0;
    if (body->n_inputs != 2 + n_carried)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "body takes %d inputs, expected 2 + %d loop-carried values",
                               body->n_inputs, n_carried);
    if (body->n_outputs < 1 + n_carried)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "body has %d outputs, expected at least 1 + %d", body->n_outputs,
                               n_carried);
    int n_scan = body->n_outputs - 1 - n_carried;
    if (k->n_outputs != n_carried + n_scan)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "node has %d outputs, body makes %d loop-carried + %d scan outputs",
                               k->n_outputs, n_carried, n_scan);

    int64_t max_trip = INT64_MAX;
    const fy_value *m, *c;
    FY_CHECK(fy_input_tensor_opt(k, 0, &m));
    FY_CHECK(fy_input_tensor_opt(k, 1, &c));
    if (m) {
        if (!fy_dtype_is_int(m->dtype) || m->count != 1)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "M must be a one-element integer tensor");
        max_trip = fy_tensor_get_i64(m, 0);
    }
    int cond = 1;
    if (c) FY_CHECK(read_cond(k, c, "cond", &cond));

    ferry_status rc = FERRY_OK;
    int n_res = body->n_outputs;
    fy_value **args = calloc((size_t)body->n_inputs, sizeof *args);
    fy_value **res = calloc((size_t)n_res, sizeof *res);
    scan_list *scans = calloc((size_t)n_scan + 1, sizeof *scans);
    if (!args || !res || !scans) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    /* args[2..] own the current loop-carried values; an omitted one is an empty optional */
    for (int i = 0; i < n_carried && rc == FERRY_OK; i++) {
        fy_value *v = k->inputs[2 + i];
        if (v)
            args[2 + i] = fy_value_ref(v);
        else
            rc = fy_none_new(&args[2 + i]);
    }
    for (int64_t it = 0; rc == FERRY_OK && it < max_trip && cond; it++) {
        rc = fy_tensor_scalar_i64(it, &args[0]);
        if (rc == FERRY_OK) rc = fy_tensor_new(FERRY_DTYPE_BOOL, 0, NULL, &args[1]);
        if (rc != FERRY_OK) break;
        *(uint8_t *)args[1]->data = 1;
        rc = fy_kernel_run_graph(k, body, body->n_inputs, args, res);
        unref_all(args, 2);
        if (rc != FERRY_OK) break;
        rc = read_cond(k, res[0], "body output 0 (cond)", &cond);
        if (rc != FERRY_OK) break;
        for (int i = 0; i < n_carried; i++) {
            fy_value_unref(args[2 + i]);
            args[2 + i] = res[1 + i];
            res[1 + i] = NULL;
        }
        for (int j = 0; j < n_scan && rc == FERRY_OK; j++) {
            fy_value *v = res[1 + n_carried + j];
            res[1 + n_carried + j] = NULL;
            if (v->kind != FERRY_VALUE_TENSOR) {
                fy_value_unref(v);
                rc = fy_kernel_error(k, FERRY_E_DTYPE, "scan output %d is not a tensor", j);
            } else {
                rc = scan_list_push(&scans[j], v);
            }
        }
        unref_all(res, n_res);
    }
    for (int i = 0; i < n_carried && rc == FERRY_OK; i++) {
        rc = fy_output_set(k, i, args[2 + i]);
        args[2 + i] = NULL;
    }
    for (int j = 0; j < n_scan && rc == FERRY_OK; j++) {
        char what[48];
        snprintf(what, sizeof what, "scan output %d", j);
        const fy_type_info *ti = &body->values[body->outputs[1 + n_carried + j]].type;
        int64_t lead = scans[j].n;
        fy_value *out;
        rc = fy_ctrl_stack(k, what, scans[j].n, scans[j].items, 1, &lead, 0, ti, &out);
        if (rc == FERRY_OK) rc = fy_output_set(k, n_carried + j, out);
    }
out:
    unref_all(args, args ? body->n_inputs : 0);
    unref_all(res, res ? n_res : 0);
    if (scans)
        for (int j = 0; j < n_scan; j++) {
            unref_all(scans[j].items, scans[j].n);
            free(scans[j].items);
        }
    free(args);
    free(res);
    free(scans);
    return rc;
}

/* ---- Scan ---- */

/* An ints attribute of length n, or zeros when absent; error when the length is wrong. */
static ferry_status attr_ints_n(const fy_kernel *k, const char *name, int n, int64_t *out)
{
    const int64_t *v;
    int64_t len = fy_attr_ints(k, name, &v);
    for (int i = 0; i < n; i++)
        out[i] = 0;
    if (len < 0) return FERRY_OK;
    if (len != n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "attribute \"%s\" has %lld values, expected %d", name,
                               (long long)len, n);
    for (int i = 0; i < n; i++)
        out[i] = v[i];
    return FERRY_OK;
}

/* State shared by the two Scan forms. */
typedef struct scan_ctx {
    const fy_graph *body;
    int n_state, n_scan_in, n_scan_out;
    int64_t *in_axes, *in_dirs, *out_axes, *out_dirs;
    fy_value **args; /* body inputs: n_state states then n_scan_in slices, owned */
    fy_value **res;  /* body outputs, owned until moved */
} scan_ctx;

/* Run the body over sequence positions 0..len-1 of the scan inputs src[] (already without a
 * batch axis; axis in_axes[j]). args[0..n_state) hold the states on entry and on return.
 * Scan output j of step t goes to items[j][pos] where pos honours out_dirs. */
static ferry_status scan_run(fy_kernel *k, scan_ctx *s, const fy_value *const *src, int64_t len,
                             fy_value ***items)
{
    const fy_graph *body = s->body;
    ferry_status rc = FERRY_OK;
    for (int64_t t = 0; t < len && rc == FERRY_OK; t++) {
        for (int j = 0; j < s->n_scan_in && rc == FERRY_OK; j++) {
            int64_t at = s->in_dirs[j] ? len - 1 - t : t;
            rc = fy_ctrl_slice(k, src[j], (int)s->in_axes[j], at, 0, &s->args[s->n_state + j]);
        }
        if (rc == FERRY_OK) rc = fy_kernel_run_graph(k, body, body->n_inputs, s->args, s->res);
        unref_all(s->args + s->n_state, s->n_scan_in);
        if (rc != FERRY_OK) break;
        for (int i = 0; i < s->n_state; i++) {
            fy_value_unref(s->args[i]);
            s->args[i] = s->res[i];
            s->res[i] = NULL;
        }
        for (int j = 0; j < s->n_scan_out; j++) {
            int64_t pos = s->out_dirs[j] ? len - 1 - t : t;
            items[j][pos] = s->res[s->n_state + j];
            s->res[s->n_state + j] = NULL;
        }
    }
    return rc;
}

ferry_status fy_op_Scan(fy_kernel *k)
{
    const fy_graph *body = fy_attr_graph(k, "body");
    if (!body) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute \"body\" is required");
    int v8 = k->node->opset < 9; /* opset 8: leading sequence_lens input and a batch axis */
    int first = v8 ? 1 : 0;
    int64_t m = fy_attr_int(k, "num_scan_inputs", -1);
    if (m < 1 || m > k->n_inputs - first)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "num_scan_inputs %lld is out of range for %d inputs", (long long)m,
                               k->n_inputs - first);
    scan_ctx s = {.body = body};
    s.n_scan_in = (int)m;
    s.n_state = k->n_inputs - first - s.n_scan_in;
    if (body->n_inputs != s.n_state + s.n_scan_in)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "body takes %d inputs, expected %d",
                               body->n_inputs, s.n_state + s.n_scan_in);
    if (body->n_outputs < s.n_state || k->n_outputs != body->n_outputs)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "body has %d outputs, node has %d and %d state variables",
                               body->n_outputs, k->n_outputs, s.n_state);
    s.n_scan_out = body->n_outputs - s.n_state;

    ferry_status rc = FERRY_OK;
    int n_in = s.n_scan_in, n_out = s.n_scan_out;
    int64_t *ints = calloc((size_t)(2 * n_in + 2 * n_out) + 1, sizeof *ints);
    s.args = calloc((size_t)body->n_inputs + 1, sizeof *s.args);
    s.res = calloc((size_t)body->n_outputs + 1, sizeof *s.res);
    fy_value ***items = calloc((size_t)n_out + 1, sizeof *items);
    fy_value **states = NULL; /* opset 8: final state of every batch entry */
    const fy_value **src = calloc((size_t)n_in + 1, sizeof *src);
    fy_value **owned_src = calloc((size_t)n_in + 1, sizeof *owned_src);
    int64_t batch = 1, len = 0, n_items = 0;
    if (!ints || !s.args || !s.res || !items || !src || !owned_src) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    s.in_axes = ints;
    s.in_dirs = ints + n_in;
    s.out_axes = ints + 2 * n_in;
    s.out_dirs = ints + 2 * n_in + n_out;
    if (v8) {
        rc = attr_ints_n(k, "directions", n_in, s.in_dirs);
    } else {
        rc = attr_ints_n(k, "scan_input_axes", n_in, s.in_axes);
        if (rc == FERRY_OK) rc = attr_ints_n(k, "scan_input_directions", n_in, s.in_dirs);
        if (rc == FERRY_OK) rc = attr_ints_n(k, "scan_output_axes", n_out, s.out_axes);
        if (rc == FERRY_OK) rc = attr_ints_n(k, "scan_output_directions", n_out, s.out_dirs);
    }
    if (rc != FERRY_OK) goto out;

    /* check the scan inputs and find the sequence length */
    for (int j = 0; j < n_in; j++) {
        const fy_value *x;
        int idx = first + s.n_state + j, axis;
        if ((rc = fy_input_tensor(k, idx, &x)) != FERRY_OK) goto out;
        if (v8) {
            if (x->rank < 2) {
                rc = fy_kernel_error(k, FERRY_E_SHAPE,
                                     "scan input %d needs [batch, sequence, ...], has rank %d", j,
                                     x->rank);
                goto out;
            }
            axis = 1;
        } else if ((rc = fy_axis(k, s.in_axes[j], x->rank, &axis)) != FERRY_OK) {
            goto out;
        }
        if (x->rank < 1) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE, "scan input %d is a scalar", j);
            goto out;
        }
        s.in_axes[j] = v8 ? 0 : axis; /* opset 8 slices a batch entry first, then its axis 0 */
        if (j == 0) {
            len = x->dims[axis];
            if (v8) batch = x->dims[0];
        } else if (x->dims[axis] != len || (v8 && x->dims[0] != batch)) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE,
                                 "scan input %d has %lld steps, scan input 0 has %lld", j,
                                 (long long)x->dims[axis], (long long)len);
            goto out;
        }
        src[j] = x;
    }
    for (int j = 0; j < n_out; j++) {
        if (s.out_dirs[j] != 0 && s.out_dirs[j] != 1) {
            rc = fy_kernel_error(k, FERRY_E_INVALID_ARG, "scan output direction must be 0 or 1");
            goto out;
        }
    }
    for (int j = 0; j < n_in; j++) {
        if (s.in_dirs[j] != 0 && s.in_dirs[j] != 1) {
            rc = fy_kernel_error(k, FERRY_E_INVALID_ARG, "scan input direction must be 0 or 1");
            goto out;
        }
    }
    n_items = batch * len;
    for (int j = 0; j < n_out; j++)
        if (!(items[j] = calloc((size_t)n_items + 1, sizeof **items))) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }

    if (!v8) {
        for (int i = 0; i < s.n_state; i++) {
            const fy_value *v = fy_input(k, i);
            if (!v) {
                rc = fy_kernel_error(k, FERRY_E_INVALID_ARG, "input %d is required", i);
                goto out;
            }
            s.args[i] = fy_value_ref((fy_value *)v);
        }
        if ((rc = scan_run(k, &s, src, len, items)) != FERRY_OK) goto out;
        for (int i = 0; i < s.n_state; i++) {
            rc = fy_output_set(k, i, s.args[i]);
            s.args[i] = NULL;
            if (rc != FERRY_OK) goto out;
        }
    } else {
        const fy_value *lens;
        if ((rc = fy_input_tensor_opt(k, 0, &lens)) != FERRY_OK) goto out;
        if (lens && (!fy_dtype_is_int(lens->dtype) || lens->count != batch)) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE,
                                 "sequence_lens must be an integer tensor of %lld values",
                                 (long long)batch);
            goto out;
        }
        for (int i = 0; i < s.n_state; i++) {
            const fy_value *v;
            if ((rc = fy_input_tensor(k, 1 + i, &v)) != FERRY_OK) goto out;
            if (v->rank < 1 || v->dims[0] != batch) {
                rc = fy_kernel_error(k, FERRY_E_SHAPE,
                                     "state input %d must have a batch axis of %lld", i,
                                     (long long)batch);
                goto out;
            }
        }
        states = calloc((size_t)(s.n_state * batch) + 1, sizeof *states);
        fy_value ***row = calloc((size_t)n_out + 1, sizeof *row);
        if (!states || !row) {
            free(row);
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            goto out;
        }
        for (int64_t b = 0; b < batch && rc == FERRY_OK; b++) {
            int64_t n = lens ? fy_tensor_get_i64(lens, b) : len;
            if (n < 0 || n > len) {
                rc = fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                     "sequence_lens[%lld] = %lld is outside 0..%lld", (long long)b,
                                     (long long)n, (long long)len);
                break;
            }
            for (int i = 0; i < s.n_state && rc == FERRY_OK; i++)
                rc = fy_ctrl_slice(k, k->inputs[1 + i], 0, b, 0, &s.args[i]);
            for (int j = 0; j < n_in && rc == FERRY_OK; j++) {
                /* this batch entry's first n steps */
                fy_value *e;
                rc = fy_ctrl_slice(k, src[j], 0, b, 0, &e);
                if (rc == FERRY_OK && n < len) {
                    fy_value *full = e;
                    int64_t d[FERRY_MAX_RANK];
                    memcpy(d, full->dims, sizeof(int64_t) * full->rank);
                    d[0] = n;
                    rc = fy_tensor_new(full->dtype, full->rank, d, &e);
                    if (rc == FERRY_OK) rc = fy_ctrl_copy(e, 0, full, 0, e->count);
                    if (rc != FERRY_OK) fy_value_unref(e), e = NULL;
                    fy_value_unref(full);
                }
                owned_src[j] = e;
            }
            for (int j = 0; j < n_out; j++)
                row[j] = items[j] + b * len;
            if (rc == FERRY_OK) rc = scan_run(k, &s, (const fy_value *const *)owned_src, n, row);
            for (int i = 0; i < s.n_state; i++) {
                states[i * batch + b] = s.args[i];
                s.args[i] = NULL;
            }
            unref_all(owned_src, n_in);
        }
        free(row);
        for (int i = 0; i < s.n_state && rc == FERRY_OK; i++) {
            char what[48];
            snprintf(what, sizeof what, "state output %d", i);
            fy_value *o;
            rc = fy_ctrl_stack(k, what, batch, states + i * batch, 1, &batch, 0,
                               &body->values[body->outputs[i]].type, &o);
            if (rc == FERRY_OK) rc = fy_output_set(k, i, o);
        }
    }
    for (int j = 0; j < n_out && rc == FERRY_OK; j++) {
        char what[48];
        snprintf(what, sizeof what, "scan output %d", j);
        const fy_type_info *ti = &body->values[body->outputs[s.n_state + j]].type;
        int64_t lead[2] = {batch, len};
        int axis = 0;
        if (!v8) {
            /* the axis counts in the output's rank: item rank + 1 */
            const fy_value *ref = n_items ? items[j][0] : NULL;
            int r = (ref ? ref->rank : ti->rank > 0 ? ti->rank : 0) + 1;
            if ((rc = fy_axis(k, s.out_axes[j], r, &axis)) != FERRY_OK) break;
        }
        fy_value *o;
        rc = v8 ? fy_ctrl_stack(k, what, n_items, items[j], 2, lead, 0, ti, &o)
                : fy_ctrl_stack(k, what, n_items, items[j], 1, &len, axis, ti, &o);
        if (rc == FERRY_OK) rc = fy_output_set(k, s.n_state + j, o);
    }
out:
    if (items)
        for (int j = 0; j < n_out; j++) {
            unref_all(items[j], items[j] ? n_items : 0);
            free(items[j]);
        }
    if (states) unref_all(states, s.n_state * batch);
    if (s.args) unref_all(s.args, body->n_inputs);
    if (s.res) unref_all(s.res, body->n_outputs);
    if (owned_src) unref_all(owned_src, n_in);
    free(states);
    free(items);
    free(ints);
    free(s.args);
    free(s.res);
    free(src);
    free(owned_src);
    return rc;
}
