/* concat_split.c — ops that join, cut or frame tensors along axes: Concat, Split, Slice, Pad.
 * They copy contiguous runs with memcpy; strings go through tensor_util.h's ownership steps. */
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/tensor_util.h"

ferry_status fy_op_Concat(fy_kernel *k)
{
    if (k->n_inputs < 1) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "no inputs");
    const fy_value *x0;
    FY_CHECK(fy_input_tensor(k, 0, &x0));
    int r = x0->rank, axis;
    if (r == 0) return fy_kernel_error(k, FERRY_E_SHAPE, "inputs must have rank >= 1");
    const fy_attr *aa = fy_attr_get(k, "axis");
    if (!aa && k->node->opset >= 4)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute axis is required");
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 1), r, &axis));
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, x0->dims, sizeof(int64_t) * r);
    dims[axis] = 0;
    for (int i = 0; i < k->n_inputs; i++) {
        const fy_value *x;
        FY_CHECK(fy_input_tensor(k, i, &x));
        if (x->dtype != x0->dtype)
            return fy_kernel_error(k, FERRY_E_DTYPE, "input %d is %s, input 0 is %s", i,
                                   ferry_dtype_name(x->dtype), ferry_dtype_name(x0->dtype));
        bool ok = x->rank == r;
        for (int d = 0; ok && d < r; d++) ok = d == axis || x->dims[d] == x0->dims[d];
        if (!ok) {
            char a[256], b[256];
            return fy_kernel_error(k, FERRY_E_SHAPE, "input %d has shape %s, which does not fit "
                                   "input 0's %s on axis %d", i,
                                   fy_shape_str(x->rank, x->dims, a, sizeof a),
                                   fy_shape_str(r, x0->dims, b, sizeof b), axis);
        }
        if (x->dims[axis] > INT64_MAX - dims[axis])
            return fy_kernel_error(k, FERRY_E_SHAPE, "concatenated axis is too large");
        dims[axis] += x->dims[axis];
    }
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x0->dtype, r, dims, &out));
    if (out->count == 0) return FERRY_OK;
    size_t esz = ferry_dtype_size(x0->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= dims[d];
    for (int d = axis + 1; d < r; d++) inner *= dims[d];
    size_t row = (size_t)(dims[axis] * inner) * esz; /* bytes of one outer slice of the output */
    fy_move_strings_begin(out);
    size_t at = 0; /* where this input starts inside an output slice */
    for (int i = 0; i < k->n_inputs; i++) {
        const fy_value *x = k->inputs[i];
        size_t chunk = (size_t)(x->dims[axis] * inner) * esz;
        if (chunk == 0) continue;
        char *dst = (char *)out->data + at;
        const char *src = x->data;
#pragma omp parallel for if ((size_t)outer * chunk >= (1u << 18) && outer > 1)
        for (int64_t o = 0; o < outer; o++) memcpy(dst + o * row, src + o * chunk, chunk);
        at += chunk;
    }
    return fy_move_strings_end(out, FERRY_OK);
}

/* Copy x's slab [start, start + len) along axis into a new output i. */
static ferry_status split_part(fy_kernel *k, int i, const fy_value *x, int axis, int64_t start,
                               int64_t len)
{
    int64_t dims[FERRY_MAX_RANK], outer = 1, inner = 1;
    memcpy(dims, x->dims, sizeof(int64_t) * x->rank);
    dims[axis] = len;
    for (int d = 0; d < axis; d++) outer *= dims[d];
    for (int d = axis + 1; d < x->rank; d++) inner *= dims[d];
    fy_value *out;
    FY_CHECK(fy_output(k, i, x->dtype, x->rank, dims, &out));
    size_t esz = ferry_dtype_size(x->dtype);
    int64_t d2[2] = {outer, len * inner}, s2[2] = {x->dims[axis] * inner, 1};
    fy_move_strings_begin(out);
    fy_move_strided(out->data, (const char *)x->data + start * inner * (int64_t)esz, esz, 2, d2, s2);
    return fy_move_strings_end(out, FERRY_OK);
}

ferry_status fy_op_Split(fy_kernel *k)
{
    const fy_value *x, *st = NULL;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int axis, n = k->n_outputs, opset = k->node->opset;
    if (x->rank == 0) return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 1");
    FY_CHECK(fy_axis(k, fy_attr_int(k, "axis", 0), x->rank, &axis));
    if (n < 1) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "no outputs");
    int64_t *split = calloc((size_t)n, sizeof *split);
    if (!split) return fy_error(FERRY_E_NOMEM, "out of memory");
    ferry_status rc = FERRY_OK;
    int64_t dim = x->dims[axis], sum = 0;
    const int64_t *sa = NULL;
    int64_t ns = -1;
    if (opset < 13) ns = fy_attr_ints(k, "split", &sa);
    if (ns < 0 && (opset >= 13 || opset == 1)) {
        rc = fy_input_tensor_opt(k, 1, &st);
        if (rc != FERRY_OK) goto out;
    }
    if (st) {
        int got;
        if (st->count != n) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE, "split has %lld values for %d outputs",
                                 (long long)st->count, n);
            goto out;
        }
        rc = fy_input_ints(k, 1, split, n, &got);
        if (rc != FERRY_OK) goto out;
        ns = got;
    } else if (ns >= 0) {
        if (ns != n) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE, "split has %lld values for %d outputs",
                                 (long long)ns, n);
            goto out;
        }
        memcpy(split, sa, sizeof(int64_t) * n);
    } else if (opset >= 18 && fy_attr_get(k, "num_outputs")) {
        /* ceil-sized chunks, the last one smaller */
        int64_t num = fy_attr_int(k, "num_outputs", 0);
        if (num != n) {
            rc = fy_kernel_error(k, FERRY_E_INVALID_ARG, "num_outputs %lld but %d outputs",
                                 (long long)num, n);
            goto out;
        }
        int64_t chunk = (dim + n - 1) / n;
        for (int i = 0; i < n; i++) {
            int64_t left = dim - chunk * i;
            split[i] = left < 0 ? 0 : left < chunk ? left : chunk;
        }
    } else {
        if (dim % n != 0) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE, "axis size %lld does not split into %d equal "
                                 "parts", (long long)dim, n);
            goto out;
        }
        for (int i = 0; i < n; i++) split[i] = dim / n;
    }
    for (int i = 0; i < n; i++) {
        if (split[i] < 0 || split[i] > dim - sum) {
            rc = fy_kernel_error(k, FERRY_E_SHAPE, "split sizes do not add up to axis size %lld",
                                 (long long)dim);
            goto out;
        }
        sum += split[i];
    }
    if (sum != dim) {
        rc = fy_kernel_error(k, FERRY_E_SHAPE, "split sizes add up to %lld, axis size is %lld",
                             (long long)sum, (long long)dim);
        goto out;
    }
    int64_t start = 0;
    for (int i = 0; i < n && rc == FERRY_OK; i++) {
        if (fy_output_wanted(k, i)) rc = split_part(k, i, x, axis, start, split[i]);
        start += split[i];
    }
out:
    free(split);
    return rc;
}

/* Slice parameters from attributes (opset < 10) or inputs 1..4. */
typedef struct slice_args {
    int n;
    int64_t starts[FERRY_MAX_RANK], ends[FERRY_MAX_RANK], axes[FERRY_MAX_RANK],
        steps[FERRY_MAX_RANK];
    bool has_axes, has_steps;
} slice_args;

static ferry_status attr_list(fy_kernel *k, const char *name, int64_t *vals, int *n)
{
    const int64_t *v;
    int64_t c = fy_attr_ints(k, name, &v);
    *n = -1;
    if (c < 0) return FERRY_OK;
    if (c > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "%s has %lld entries", name, (long long)c);
    if (c) memcpy(vals, v, sizeof(int64_t) * c);
    *n = (int)c;
    return FERRY_OK;
}

static ferry_status input_list(fy_kernel *k, int i, int64_t *vals, int *n)
{
    const fy_value *t;
    *n = -1;
    FY_CHECK(fy_input_tensor_opt(k, i, &t));
    if (!t) return FERRY_OK;
    return fy_input_ints(k, i, vals, FERRY_MAX_RANK, n);
}

static ferry_status slice_read(fy_kernel *k, slice_args *a)
{
    int ns, ne, na, nst = -1;
    if (k->node->opset < 10) {
        FY_CHECK(attr_list(k, "starts", a->starts, &ns));
        FY_CHECK(attr_list(k, "ends", a->ends, &ne));
        FY_CHECK(attr_list(k, "axes", a->axes, &na));
    } else {
        const fy_value *t;
        FY_CHECK(fy_input_tensor(k, 1, &t));
        FY_CHECK(fy_input_tensor(k, 2, &t));
        FY_CHECK(input_list(k, 1, a->starts, &ns));
        FY_CHECK(input_list(k, 2, a->ends, &ne));
        FY_CHECK(input_list(k, 3, a->axes, &na));
        FY_CHECK(input_list(k, 4, a->steps, &nst));
    }
    if (ns < 0 || ne < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "starts and ends are required");
    if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "starts, ends, axes and steps differ in "
                               "length");
    a->n = ns;
    a->has_axes = na >= 0;
    a->has_steps = nst >= 0;
    return FERRY_OK;
}

ferry_status fy_op_Slice(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    slice_args a;
    FY_CHECK(slice_read(k, &a));
    int r = x->rank;
    int64_t start[FERRY_MAX_RANK], step[FERRY_MAX_RANK], dims[FERRY_MAX_RANK];
    int64_t xs[FERRY_MAX_RANK], strides[FERRY_MAX_RANK];
    bool seen[FERRY_MAX_RANK] = {0};
    for (int d = 0; d < r; d++) {
        start[d] = 0;
        step[d] = 1;
        dims[d] = x->dims[d];
    }
    if (a.n > r) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "%d axes for rank %d", a.n, r);
    for (int i = 0; i < a.n; i++) {
        int ax;
        FY_CHECK(fy_axis(k, a.has_axes ? a.axes[i] : i, r, &ax));
        if (seen[ax])
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axis %d is sliced twice", ax);
        seen[ax] = true;
        int64_t dim = x->dims[ax], st = a.has_steps ? a.steps[i] : 1;
        int64_t s = a.starts[i], e = a.ends[i];
        if (st == 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "step on axis %d is 0", ax);
        /* a step beyond the dim takes at most one element, like the dim itself */
        int64_t big = dim > 0 ? dim : 1;
        if (st > big) st = big;
        if (st < -big) st = -big;
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        int64_t len;
        if (st > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            len = e > s ? (e - s + st - 1) / st : 0;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            len = s > e ? (s - e - st - 1) / -st : 0;
        }
        start[ax] = len ? s : 0;
        step[ax] = st;
        dims[ax] = len;
    }
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &out));
    if (out->count == 0) return FERRY_OK;
    size_t esz = ferry_dtype_size(x->dtype);
    int64_t off = 0;
    fy_move_strides(r, x->dims, xs);
    for (int d = 0; d < r; d++) {
        off += start[d] * xs[d];
        strides[d] = step[d] * xs[d];
    }
    fy_move_strings_begin(out);
    fy_move_strided(out->data, (const char *)x->data + off * (int64_t)esz, esz, r, dims, strides);
    return fy_move_strings_end(out, FERRY_OK);
}

/* ---- Pad ---------------------------------------------------------------------------------- */

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

/* Source index along a dim of size n for output position i (already shifted by the begin
 * pad), or -1 for the constant. */
static int64_t pad_source(enum pad_mode mode, int64_t i, int64_t n)
{
    if (i >= 0 && i < n) return i;
    switch (mode) {
    case PAD_CONSTANT: return -1;
    case PAD_EDGE: return i < 0 ? 0 : n - 1;
    case PAD_WRAP: {
        int64_t m = i % n;
        return m < 0 ? m + n : m;
    }
    case PAD_REFLECT: {
        if (n == 1) return 0;
        int64_t period = 2 * (n - 1), m = i % period;
        if (m < 0) m += period;
        return m < n ? m : period - m;
    }
    }
    return -1;
}

ferry_status fy_op_Pad(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int r = x->rank, opset = k->node->opset;
    int64_t pads[2 * FERRY_MAX_RANK], axes[FERRY_MAX_RANK];
    int np, na = -1;
    /* the constant as element bytes (strings: a borrowed char *) */
    union {
        unsigned char b[16];
        const char *s;
    } cval;
    memset(&cval, 0, sizeof cval);
    static const char empty[] = "";
    if (x->dtype == FERRY_DTYPE_STRING) cval.s = empty;
    size_t esz = ferry_dtype_size(x->dtype);
    if (esz == 0 || esz > sizeof cval.b)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    if (opset < 11) {
        const int64_t *p;
        int64_t n = fy_attr_ints(k, opset < 2 ? "paddings" : "pads", &p);
        if (n < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute pads is required");
        if (n > 2 * FERRY_MAX_RANK)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "pads has %lld entries", (long long)n);
        np = (int)n;
        if (n) memcpy(pads, p, sizeof(int64_t) * n);
        float v = fy_attr_float(k, "value", 0.0f);
        if (v != 0 && x->dtype != FERRY_DTYPE_STRING) {
            fy_value *tmp;
            FY_CHECK(fy_tensor_new(x->dtype, 0, NULL, &tmp));
            fy_tensor_set_f64(tmp, 0, v);
            memcpy(cval.b, tmp->data, esz);
            fy_value_unref(tmp);
        }
    } else {
        const fy_value *cv;
        FY_CHECK(fy_input_ints(k, 1, pads, 2 * FERRY_MAX_RANK, &np));
        FY_CHECK(fy_input_tensor_opt(k, 2, &cv));
        if (cv && cv->count >= 1) {
            if (cv->dtype != x->dtype)
                return fy_kernel_error(k, FERRY_E_DTYPE, "constant_value is %s, data is %s",
                                       ferry_dtype_name(cv->dtype), ferry_dtype_name(x->dtype));
            memcpy(cval.b, cv->data, esz);
        }
        if (opset >= 18) FY_CHECK(input_list(k, 3, axes, &na));
    }
    const char *ms = fy_attr_string(k, "mode", "constant");
    enum pad_mode mode;
    if (strcmp(ms, "constant") == 0) mode = PAD_CONSTANT;
    else if (strcmp(ms, "reflect") == 0) mode = PAD_REFLECT;
    else if (strcmp(ms, "edge") == 0) mode = PAD_EDGE;
    else if (strcmp(ms, "wrap") == 0) mode = PAD_WRAP;
    else return fy_kernel_error(k, FERRY_E_INVALID_ARG, "mode \"%s\" is not supported", ms);

    /* begin / end pad per dim */
    int64_t pb[FERRY_MAX_RANK] = {0}, pe[FERRY_MAX_RANK] = {0}, dims[FERRY_MAX_RANK];
    int n_axes = na >= 0 ? na : r;
    if (np != 2 * n_axes)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "pads has %d values, expected %d", np,
                               2 * n_axes);
    for (int i = 0; i < n_axes; i++) {
        int ax = i;
        if (na >= 0) FY_CHECK(fy_axis(k, axes[i], r, &ax));
        pb[ax] = pads[i];
        pe[ax] = pads[i + n_axes];
    }
    for (int d = 0; d < r; d++) {
        int64_t n = x->dims[d], lim = (int64_t)1 << 48;
        if (pb[d] > lim || pb[d] < -lim || pe[d] > lim || pe[d] < -lim || n + pb[d] + pe[d] < 0)
            return fy_kernel_error(k, FERRY_E_SHAPE, "pads %lld, %lld do not fit axis %d of size "
                                   "%lld", (long long)pb[d], (long long)pe[d], d, (long long)n);
        dims[d] = n + pb[d] + pe[d];
        if (mode != PAD_CONSTANT && n == 0 && dims[d] > 0)
            return fy_kernel_error(k, FERRY_E_SHAPE, "cannot %s-pad the empty axis %d", ms, d);
    }
    if (r == 0) return fy_output_set(k, 0, fy_value_ref((fy_value *)x));
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &out));
    if (out->count == 0) return FERRY_OK;

    /* map[d][i]: the source index of output position i along d, or -1 for the constant */
    int64_t total_map = 0, xs[FERRY_MAX_RANK], *map[FERRY_MAX_RANK];
    for (int d = 0; d < r; d++) total_map += dims[d];
    int64_t *maps = malloc(sizeof(int64_t) * (size_t)total_map);
    if (!maps) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int d = 0; d < r; d++) {
        map[d] = d ? map[d - 1] + dims[d - 1] : maps;
        for (int64_t i = 0; i < dims[d]; i++) map[d][i] = pad_source(mode, i - pb[d], x->dims[d]);
    }
    fy_move_strides(r, x->dims, xs);
    fy_move_strings_begin(out);
    int64_t cols = dims[r - 1], rows = out->count / cols, c[FERRY_MAX_RANK] = {0};
    const int64_t *last = map[r - 1];
    char *dst = out->data;
    const char *src = x->data;
    for (int64_t row = 0; row < rows; row++, dst += cols * esz) {
        int64_t off = 0;
        bool constant = false;
        for (int d = 0; d < r - 1; d++) {
            int64_t s = map[d][c[d]];
            if (s < 0) constant = true;
            off += s * xs[d];
        }
        if (constant) {
            fy_move_fill(dst, cols, esz, cval.b);
        } else {
            for (int64_t j = 0; j < cols;) {
                if (last[j] < 0) {
                    memcpy(dst + j * esz, cval.b, esz);
                    j++;
                    continue;
                }
                int64_t run = 1;
                while (j + run < cols && last[j + run] == last[j] + run) run++;
                memcpy(dst + j * esz, src + (off + last[j]) * (int64_t)esz, run * esz);
                j += run;
            }
        }
        for (int d = r - 2; d >= 0; d--) {
            if (++c[d] < dims[d]) break;
            c[d] = 0;
        }
    }
    free(maps);
    return fy_move_strings_end(out, FERRY_OK);
}
