/* sequence.c — the sequence ops (SequenceEmpty/Construct/Insert/At/Erase/Length,
 * SplitToSequence, ConcatFromSequence, SequenceMap) and the copy/slice/stack helpers of
 * control_util.h. Sequences are immutable: "modifying" one builds a new one sharing items. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/control_util.h"

/* ---- helpers shared with control.c ---- */

ferry_status fy_ctrl_copy(fy_value *dst, int64_t doff, const fy_value *src, int64_t soff, int64_t n)
{
    if (n <= 0) return FERRY_OK;
    if (src->dtype == FERRY_DTYPE_STRING) {
        char *const *s = (char *const *)src->data + soff;
        for (int64_t i = 0; i < n; i++)
            FY_CHECK(ferry_tensor_set_string(dst, doff + i, s[i], strlen(s[i])));
        return FERRY_OK;
    }
    size_t esz = ferry_dtype_size(src->dtype);
    memcpy((char *)dst->data + (size_t)doff * esz, (const char *)src->data + (size_t)soff * esz,
           (size_t)n * esz);
    return FERRY_OK;
}

/* Elements before and after axis: the tensor is [outer, dims[axis], inner]. */
static void split_at(const fy_value *t, int axis, int64_t *outer, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        *inner *= t->dims[d];
}

/* A new tensor with src's elements [start, start + len) along axis. */
static ferry_status narrow(const fy_kernel *k, const fy_value *src, int axis, int64_t start,
                           int64_t len, int keep_axis, fy_value **out)
{
    int64_t dims[FERRY_MAX_RANK];
    int rank = 0;
    *out = NULL;
    if (axis < 0 || axis >= src->rank || start < 0 || len < 0 || start > src->dims[axis] ||
        len > src->dims[axis] - start)
        return fy_kernel_error(k, FERRY_E_INTERNAL, "slice [%lld, +%lld) of axis %d out of range",
                               (long long)start, (long long)len, axis);
    for (int d = 0; d < src->rank; d++) {
        if (d != axis)
            dims[rank++] = src->dims[d];
        else if (keep_axis)
            dims[rank++] = len;
    }
    int64_t outer, inner, n = src->dims[axis];
    split_at(src, axis, &outer, &inner);
    fy_value *t;
    FY_CHECK(fy_tensor_new(src->dtype, rank, dims, &t));
    ferry_status rc = FERRY_OK;
    for (int64_t o = 0; o < outer && rc == FERRY_OK; o++)
        rc = fy_ctrl_copy(t, o * len * inner, src, (o * n + start) * inner, len * inner);
    if (rc != FERRY_OK) {
        fy_value_unref(t);
        return rc;
    }
    *out = t;
    return FERRY_OK;
}

ferry_status fy_ctrl_slice(const fy_kernel *k, const fy_value *src, int axis, int64_t index,
                           int keep_axis, fy_value **out)
{
    return narrow(k, src, axis, index, 1, keep_axis, out);
}

ferry_status fy_ctrl_stack(const fy_kernel *k, const char *what, int64_t n_items,
                           fy_value *const *items, int n_lead, const int64_t *lead, int axis,
                           const fy_type_info *like, fy_value **out)
{
    *out = NULL;
    const fy_value *ref = NULL;
    for (int64_t j = 0; j < n_items && !ref; j++)
        ref = items[j];
    ferry_dtype dtype = FERRY_DTYPE_F32;
    int irank = 0;
    int64_t idims[FERRY_MAX_RANK];
    if (ref) {
        dtype = ref->dtype;
        irank = ref->rank;
        memcpy(idims, ref->dims, sizeof(int64_t) * irank);
    } else if (like && like->kind == FERRY_VALUE_TENSOR) {
        if (like->dtype != FERRY_DTYPE_UNDEFINED) dtype = like->dtype;
        irank = like->rank > 0 ? like->rank : 0;
        for (int d = 0; d < irank; d++)
            idims[d] = like->dims[d] > 0 ? like->dims[d] : 0;
    }
    int64_t lead_count = fy_shape_count(n_lead, lead);
    if (lead_count != n_items)
        return fy_kernel_error(k, FERRY_E_INTERNAL, "%s: %lld items for %lld slots", what,
                               (long long)n_items, (long long)lead_count);
    if (axis < 0) axis += irank + 1;
    if (axis < 0 || axis > irank)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "%s: axis out of range for rank %d", what,
                               irank);
    if (irank + n_lead > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "%s: stacked rank exceeds %d", what,
                               FERRY_MAX_RANK);
    for (int64_t j = 0; j < n_items; j++) {
        const fy_value *it = items[j];
        if (!it) continue;
        if (it->kind != FERRY_VALUE_TENSOR)
            return fy_kernel_error(k, FERRY_E_DTYPE, "%s: item %lld is not a tensor", what,
                                   (long long)j);
        if (it->dtype != dtype)
            return fy_kernel_error(k, FERRY_E_DTYPE, "%s: item %lld is %s, item 0 is %s", what,
                                   (long long)j, ferry_dtype_name(it->dtype),
                                   ferry_dtype_name(dtype));
        if (!fy_shape_equal(it->rank, it->dims, irank, idims)) {
            char a[256], b[256];
            return fy_kernel_error(k, FERRY_E_SHAPE, "%s: item %lld has shape %s, item 0 has %s",
                                   what, (long long)j,
                                   fy_shape_str(it->rank, it->dims, a, sizeof a),
                                   fy_shape_str(irank, idims, b, sizeof b));
        }
    }
    int64_t dims[FERRY_MAX_RANK];
    int rank = 0;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= (dims[rank++] = idims[d]);
    for (int d = 0; d < n_lead; d++)
        dims[rank++] = lead[d];
    for (int d = axis; d < irank; d++)
        inner *= (dims[rank++] = idims[d]);
    fy_value *t;
    ferry_status rc = fy_tensor_zeros(dtype, rank, dims, &t);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s): %s", k->node->name, k->node->op_type, what);
    for (int64_t j = 0; j < n_items && rc == FERRY_OK; j++) {
        if (!items[j]) continue;
        for (int64_t o = 0; o < outer && rc == FERRY_OK; o++)
            rc = fy_ctrl_copy(t, (o * n_items + j) * inner, items[j], o * inner, inner);
    }
    if (rc != FERRY_OK) {
        fy_value_unref(t);
        return rc;
    }
    *out = t;
    return FERRY_OK;
}

/* ---- local helpers ---- */

static ferry_status input_sequence(const fy_kernel *k, int i, const fy_value **out)
{
    const fy_value *v = fy_input(k, i);
    *out = NULL;
    if (!v) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input %d is required", i);
    if (v->kind != FERRY_VALUE_SEQUENCE)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be a sequence", i);
    *out = v;
    return FERRY_OK;
}

/* Optional scalar position input (int32/int64, one element); *present 0 when omitted. */
static ferry_status read_position(const fy_kernel *k, int i, int *present, int64_t *pos)
{
    const fy_value *t;
    *present = 0;
    FY_CHECK(fy_input_tensor_opt(k, i, &t));
    if (!t) return FERRY_OK;
    if (t->dtype != FERRY_DTYPE_I32 && t->dtype != FERRY_DTYPE_I64)
        return fy_kernel_error(k, FERRY_E_DTYPE, "position must be int32 or int64, got %s",
                               ferry_dtype_name(t->dtype));
    if (t->count != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "position must be a scalar, got %lld elements",
                               (long long)t->count);
    *pos = fy_tensor_get_i64(t, 0);
    *present = 1;
    return FERRY_OK;
}

/* A new sequence holding src's items (shared) with dtype elem; capacity reserved. */
static ferry_status copy_sequence(const fy_value *src, ferry_dtype elem, int64_t skip,
                                  fy_value **out)
{
    fy_value *s;
    FY_CHECK(fy_sequence_new(elem, &s));
    for (int64_t i = 0; i < src->seq_len; i++) {
        if (i == skip) continue;
        ferry_status rc = fy_sequence_push(s, fy_value_ref(src->items[i]));
        if (rc != FERRY_OK) {
            fy_value_unref(s);
            return rc;
        }
    }
    *out = s;
    return FERRY_OK;
}

/* ---- ops ---- */

ferry_status fy_op_SequenceEmpty(fy_kernel *k)
{
    int64_t dt = fy_attr_int(k, "dtype", FERRY_DTYPE_F32);
    if (dt <= 0 || dt > FERRY_DTYPE_BF16 || ferry_dtype_size((ferry_dtype)dt) == 0)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %lld is not supported",
                               (long long)dt);
    fy_value *s;
    FY_CHECK(fy_sequence_new((ferry_dtype)dt, &s));
    return fy_output_set(k, 0, s);
}

ferry_status fy_op_SequenceConstruct(fy_kernel *k)
{
    if (k->n_inputs < 1) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "needs at least one input");
    const fy_value *first;
    FY_CHECK(fy_input_tensor(k, 0, &first));
    fy_value *s;
    FY_CHECK(fy_sequence_new(first->dtype, &s));
    ferry_status rc = FERRY_OK;
    for (int i = 0; i < k->n_inputs && rc == FERRY_OK; i++) {
        const fy_value *t;
        rc = fy_input_tensor(k, i, &t);
        if (rc == FERRY_OK && t->dtype != first->dtype)
            rc = fy_kernel_error(k, FERRY_E_DTYPE, "input %d is %s, input 0 is %s", i,
                                 ferry_dtype_name(t->dtype), ferry_dtype_name(first->dtype));
        if (rc == FERRY_OK) rc = fy_sequence_push(s, fy_value_ref((fy_value *)t));
    }
    if (rc != FERRY_OK) {
        fy_value_unref(s);
        return rc;
    }
    return fy_output_set(k, 0, s);
}

ferry_status fy_op_SequenceInsert(fy_kernel *k)
{
    const fy_value *seq, *t;
    int has_pos;
    int64_t pos = 0;
    FY_CHECK(input_sequence(k, 0, &seq));
    FY_CHECK(fy_input_tensor(k, 1, &t));
    FY_CHECK(read_position(k, 2, &has_pos, &pos));
    int64_t n = seq->seq_len;
    ferry_dtype elem = seq->dtype;
    if (n == 0) elem = t->dtype; /* an empty sequence takes the first item's type */
    if (t->dtype != elem)
        return fy_kernel_error(k, FERRY_E_DTYPE, "tensor is %s, sequence holds %s",
                               ferry_dtype_name(t->dtype), ferry_dtype_name(elem));
    if (!has_pos) pos = n;
    if (pos < -n || pos > n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "position %lld is out of range for a sequence of %lld",
                               (long long)pos, (long long)n);
    if (pos < 0) pos += n;
    fy_value *s;
    FY_CHECK(fy_sequence_new(elem, &s));
    ferry_status rc = FERRY_OK;
    for (int64_t i = 0; i <= n && rc == FERRY_OK; i++) {
        if (i == pos) rc = fy_sequence_push(s, fy_value_ref((fy_value *)t));
        if (i < n && rc == FERRY_OK) rc = fy_sequence_push(s, fy_value_ref(seq->items[i]));
    }
    if (rc != FERRY_OK) {
        fy_value_unref(s);
        return rc;
    }
    return fy_output_set(k, 0, s);
}

ferry_status fy_op_SequenceAt(fy_kernel *k)
{
    const fy_value *seq;
    int has_pos;
    int64_t pos = 0;
    FY_CHECK(input_sequence(k, 0, &seq));
    FY_CHECK(read_position(k, 1, &has_pos, &pos));
    if (!has_pos) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input 1 is required");
    int64_t n = seq->seq_len;
    if (pos < -n || pos >= n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "position %lld is out of range for a sequence of %lld",
                               (long long)pos, (long long)n);
    if (pos < 0) pos += n;
    return fy_output_set(k, 0, fy_value_ref(seq->items[pos]));
}

ferry_status fy_op_SequenceErase(fy_kernel *k)
{
    const fy_value *seq;
    int has_pos;
    int64_t pos = 0;
    FY_CHECK(input_sequence(k, 0, &seq));
    FY_CHECK(read_position(k, 1, &has_pos, &pos));
    int64_t n = seq->seq_len;
    if (!has_pos) pos = n - 1;
    if (n == 0 || pos < -n || pos >= n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "position %lld is out of range for a sequence of %lld",
                               (long long)pos, (long long)n);
    if (pos < 0) pos += n;
    fy_value *s;
    FY_CHECK(copy_sequence(seq, seq->dtype, pos, &s));
    return fy_output_set(k, 0, s);
}

ferry_status fy_op_SequenceLength(fy_kernel *k)
{
    const fy_value *seq;
    fy_value *out;
    FY_CHECK(input_sequence(k, 0, &seq));
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, 0, NULL, &out));
    *(int64_t *)out->data = seq->seq_len;
    return FERRY_OK;
}

ferry_status fy_op_SplitToSequence(fy_kernel *k)
{
    const fy_value *x, *split;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor_opt(k, 1, &split));
    if (x->rank < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 must have rank >= 1");
    int axis;
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
    int keepdims = fy_attr_int(k, "keepdims", 1) != 0;
    int64_t len = x->dims[axis];
    if (split && split->dtype != FERRY_DTYPE_I32 && split->dtype != FERRY_DTYPE_I64)
        return fy_kernel_error(k, FERRY_E_DTYPE, "split must be int32 or int64, got %s",
                               ferry_dtype_name(split->dtype));
    if (split && split->rank > 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "split must be a scalar or 1-D, got rank %d",
                               split->rank);
    if (split && split->rank == 1) {
        int64_t sum = 0;
        for (int64_t i = 0; i < split->count; i++) {
            int64_t c = fy_tensor_get_i64(split, i);
            if (c < 0 || c > len - sum)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                       "split sizes do not add up to the axis length %lld",
                                       (long long)len);
            sum += c;
        }
        if (sum != len)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "split sizes add up to %lld, the axis has %lld", (long long)sum,
                                   (long long)len);
    }
    int64_t chunk = 1;
    if (split && split->rank == 0) {
        chunk = fy_tensor_get_i64(split, 0);
        if (chunk <= 0)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "split must be positive, got %lld",
                                   (long long)chunk);
    }
    fy_value *s;
    FY_CHECK(fy_sequence_new(x->dtype, &s));
    ferry_status rc = FERRY_OK;
    int64_t start = 0;
    for (int64_t i = 0; start < len && rc == FERRY_OK; i++) {
        int64_t c;
        if (split && split->rank == 1) {
            if (i >= split->count) break;
            c = fy_tensor_get_i64(split, i);
        } else {
            c = chunk < len - start ? chunk : len - start;
        }
        fy_value *item;
        rc = narrow(k, x, axis, start, c, split || keepdims, &item);
        if (rc == FERRY_OK) rc = fy_sequence_push(s, item);
        start += c;
    }
    /* zero-length chunks after the data (split = [.., 0]) still make items */
    if (rc == FERRY_OK && split && split->rank == 1)
        for (int64_t i = s->seq_len; i < split->count && rc == FERRY_OK; i++) {
            fy_value *item;
            rc = narrow(k, x, axis, len, 0, 1, &item);
            if (rc == FERRY_OK) rc = fy_sequence_push(s, item);
        }
    if (rc != FERRY_OK) {
        fy_value_unref(s);
        return rc;
    }
    return fy_output_set(k, 0, s);
}

ferry_status fy_op_ConcatFromSequence(fy_kernel *k)
{
    const fy_value *seq;
    FY_CHECK(input_sequence(k, 0, &seq));
    const fy_attr *a = fy_attr_get(k, "axis");
    if (!a || a->type != FY_ATTR_INT)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute \"axis\" is required");
    int new_axis = fy_attr_int(k, "new_axis", 0) != 0;
    int64_t n = seq->seq_len;
    if (n == 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "the sequence is empty");
    const fy_value *first = seq->items[0];
    if (first->kind != FERRY_VALUE_TENSOR)
        return fy_kernel_error(k, FERRY_E_DTYPE, "sequence item 0 is not a tensor");
    int r = first->rank, axis;
    if (new_axis) {
        FY_CHECK(fy_axis(k, a->i, r + 1, &axis));
        int64_t lead = n;
        fy_value *out;
        FY_CHECK(fy_ctrl_stack(k, "sequence", n, seq->items, 1, &lead, axis, NULL, &out));
        return fy_output_set(k, 0, out);
    }
    if (r < 1) return fy_kernel_error(k, FERRY_E_SHAPE, "cannot concatenate scalars");
    FY_CHECK(fy_axis(k, a->i, r, &axis));
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, first->dims, sizeof(int64_t) * r);
    dims[axis] = 0;
    for (int64_t j = 0; j < n; j++) {
        const fy_value *it = seq->items[j];
        if (it->kind != FERRY_VALUE_TENSOR || it->dtype != first->dtype || it->rank != r)
            return fy_kernel_error(k, FERRY_E_SHAPE,
                                   "sequence item %lld differs from item 0 in dtype or rank",
                                   (long long)j);
        for (int d = 0; d < r; d++)
            if (d != axis && it->dims[d] != first->dims[d]) {
                char s1[256], s2[256];
                return fy_kernel_error(k, FERRY_E_SHAPE,
                                       "sequence item %lld has shape %s, item 0 has %s",
                                       (long long)j, fy_shape_str(r, it->dims, s1, sizeof s1),
                                       fy_shape_str(r, first->dims, s2, sizeof s2));
            }
        if (it->dims[axis] > INT64_MAX - dims[axis])
            return fy_kernel_error(k, FERRY_E_SHAPE, "concatenated axis is too long");
        dims[axis] += it->dims[axis];
    }
    fy_value *out;
    FY_CHECK(fy_output(k, 0, first->dtype, r, dims, &out));
    int64_t outer, inner, off = 0;
    split_at(out, axis, &outer, &inner);
    for (int64_t j = 0; j < n; j++) {
        const fy_value *it = seq->items[j];
        int64_t len = it->dims[axis];
        for (int64_t o = 0; o < outer; o++)
            FY_CHECK(fy_ctrl_copy(out, (o * dims[axis] + off) * inner, it, o * len * inner,
                                  len * inner));
        off += len;
    }
    return FERRY_OK;
}

/* SequenceMap: run the body once per item of input 0; sequence inputs give their item i,
 * tensor inputs are passed whole. Output j collects the body's output j of every run. */
ferry_status fy_op_SequenceMap(fy_kernel *k)
{
    const fy_graph *body = fy_attr_graph(k, "body");
    const fy_value *seq;
    FY_CHECK(input_sequence(k, 0, &seq));
    if (!body) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute \"body\" is required");
    if (body->n_inputs != k->n_inputs)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "body takes %d inputs, node has %d",
                               body->n_inputs, k->n_inputs);
    if (body->n_outputs != k->n_outputs)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "body has %d outputs, node has %d",
                               body->n_outputs, k->n_outputs);
    int64_t n = seq->seq_len;
    for (int i = 1; i < k->n_inputs; i++) {
        const fy_value *v = fy_input(k, i);
        if (!v) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input %d is required", i);
        if (v->kind == FERRY_VALUE_SEQUENCE && v->seq_len != n)
            return fy_kernel_error(k, FERRY_E_SHAPE, "input %d has %lld items, input 0 has %lld", i,
                                   (long long)v->seq_len, (long long)n);
        if (v->kind == FERRY_VALUE_NONE)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input %d is an empty optional", i);
    }
    ferry_status rc = FERRY_OK;
    int nin = k->n_inputs, nout = k->n_outputs;
    fy_value **args = calloc((size_t)nin + 1, sizeof *args);
    fy_value **res = calloc((size_t)nout + 1, sizeof *res);
    fy_value **seqs = calloc((size_t)nout + 1, sizeof *seqs);
    if (!args || !res || !seqs) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < nout && rc == FERRY_OK; j++) {
        const fy_type_info *ti = &body->values[body->outputs[j]].type;
        rc = fy_sequence_new(ti->dtype, &seqs[j]);
    }
    for (int64_t it = 0; it < n && rc == FERRY_OK; it++) {
        for (int i = 0; i < nin; i++) {
            fy_value *v = k->inputs[i];
            args[i] = v->kind == FERRY_VALUE_SEQUENCE ? v->items[it] : v;
        }
        rc = fy_kernel_run_graph(k, body, nin, args, res);
        for (int j = 0; j < nout; j++) {
            fy_value *r = res[j];
            res[j] = NULL;
            if (rc != FERRY_OK) {
                fy_value_unref(r);
                continue;
            }
            if (r->kind != FERRY_VALUE_TENSOR) {
                fy_value_unref(r);
                rc = fy_kernel_error(k, FERRY_E_DTYPE, "body output %d is not a tensor", j);
                continue;
            }
            if (seqs[j]->seq_len == 0) seqs[j]->dtype = r->dtype;
            if (r->dtype != seqs[j]->dtype) {
                rc = fy_kernel_error(k, FERRY_E_DTYPE, "body output %d changed dtype from %s to %s",
                                     j, ferry_dtype_name(seqs[j]->dtype),
                                     ferry_dtype_name(r->dtype));
                fy_value_unref(r);
                continue;
            }
            rc = fy_sequence_push(seqs[j], r);
        }
    }
    for (int j = 0; j < nout && rc == FERRY_OK; j++) {
        rc = fy_output_set(k, j, seqs[j]);
        seqs[j] = NULL;
    }
out:
    if (seqs)
        for (int j = 0; j < nout; j++)
            fy_value_unref(seqs[j]);
    free(args);
    free(res);
    free(seqs);
    return rc;
}
