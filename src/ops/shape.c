/* shape.c — ops that reshape, describe or generate tensors: Reshape, Shape, Size, Flatten,
 * Squeeze, Unsqueeze, Expand, ConstantOfShape, Range, EyeLike, Trilu, Dropout. Shape-only
 * changes return views of the input's storage. */
#include <math.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/tensor_util.h"

ferry_status fy_read_scalar_i64(const fy_kernel *k, int i, int64_t *v)
{
    const fy_value *t;
    FY_CHECK(fy_input_tensor(k, i, &t));
    if (!fy_dtype_is_int(t->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be an integer, got %s", i,
                               ferry_dtype_name(t->dtype));
    if (t->count != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must hold one value, got %lld", i,
                               (long long)t->count);
    *v = fy_tensor_get_i64(t, 0);
    return FERRY_OK;
}

/* Output 0 as a view of x with another shape of the same element count. */
static ferry_status output_view(fy_kernel *k, const fy_value *x, int rank, const int64_t *dims)
{
    char a[256], b[256];
    if (rank > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "output rank %d exceeds %d", rank, FERRY_MAX_RANK);
    if (fy_shape_count(rank, dims) != x->count)
        return fy_kernel_error(k, FERRY_E_SHAPE, "cannot reshape %s into %s",
                               fy_shape_str(x->rank, x->dims, a, sizeof a),
                               fy_shape_str(rank, dims, b, sizeof b));
    fy_value *v;
    FY_CHECK(fy_tensor_view(x, rank, dims, &v));
    return fy_output_set(k, 0, v);
}

ferry_status fy_op_Reshape(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t shape[FERRY_MAX_RANK], dims[FERRY_MAX_RANK];
    int n;
    if (k->node->opset < 5) {
        const int64_t *s;
        int64_t ns = fy_attr_ints(k, "shape", &s);
        if (ns < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute shape is required");
        if (ns > FERRY_MAX_RANK)
            return fy_kernel_error(k, FERRY_E_SHAPE, "shape has %lld dims", (long long)ns);
        n = (int)ns;
        if (n) memcpy(shape, s, sizeof(int64_t) * n);
    } else {
        FY_CHECK(fy_input_ints(k, 1, shape, FERRY_MAX_RANK, &n));
    }
    int allowzero = k->node->opset >= 14 ? (int)fy_attr_int(k, "allowzero", 0) : 0;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        if (shape[i] == -1) {
            if (infer >= 0)
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "shape has more than one -1");
            infer = i;
            continue;
        }
        if (shape[i] < -1)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "shape[%d] = %lld is invalid", i,
                                   (long long)shape[i]);
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return fy_kernel_error(k, FERRY_E_SHAPE, "shape[%d] = 0 copies a dim the input "
                                       "(rank %d) does not have", i, x->rank);
            dims[i] = x->dims[i];
        } else {
            dims[i] = shape[i];
        }
        if (dims[i] && known > INT64_MAX / dims[i])
            return fy_kernel_error(k, FERRY_E_SHAPE, "shape is too large");
        known *= dims[i];
    }
    if (infer >= 0) {
        if (known == 0)
            return fy_kernel_error(k, FERRY_E_SHAPE, "cannot infer the -1 dim next to a 0 dim");
        if (x->count % known != 0) {
            char a[256];
            return fy_kernel_error(k, FERRY_E_SHAPE, "cannot reshape %s: %lld elements do not "
                                   "divide by %lld", fy_shape_str(x->rank, x->dims, a, sizeof a),
                                   (long long)x->count, (long long)known);
        }
        dims[infer] = x->count / known;
    }
    return output_view(k, x, n, dims);
}

ferry_status fy_op_Shape(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t r = x->rank, start = 0, end = r;
    if (k->node->opset >= 15) {
        start = fy_attr_int(k, "start", 0);
        end = fy_attr_int(k, "end", r);
        if (start < 0) start += r;
        if (end < 0) end += r;
        start = start < 0 ? 0 : start > r ? r : start;
        end = end < 0 ? 0 : end > r ? r : end;
    }
    int64_t n = end > start ? end - start : 0;
    fy_value *out;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, 1, &n, &out));
    for (int64_t i = 0; i < n; i++) ((int64_t *)out->data)[i] = x->dims[start + i];
    return FERRY_OK;
}

ferry_status fy_op_Size(fy_kernel *k)
{
    const fy_value *x;
    fy_value *out;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, 0, NULL, &out));
    *(int64_t *)out->data = x->count;
    return FERRY_OK;
}

ferry_status fy_op_Flatten(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t axis = fy_attr_int(k, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axis %lld is out of range for rank %d",
                               (long long)fy_attr_int(k, "axis", 1), x->rank);
    int64_t dims[2] = {1, 1};
    for (int i = 0; i < x->rank; i++) dims[i >= axis] *= x->dims[i];
    return output_view(k, x, 2, dims);
}

/* Axes from the attribute (before opset 13) or input 1 (from 13). *n = -1 when absent. */
static ferry_status read_axes(fy_kernel *k, int64_t *axes, int *n)
{
    *n = -1;
    if (k->node->opset < 13) {
        const int64_t *a;
        int64_t na = fy_attr_ints(k, "axes", &a);
        if (na < 0) return FERRY_OK;
        if (na > FERRY_MAX_RANK)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axes has %lld entries", (long long)na);
        *n = (int)na;
        if (na) memcpy(axes, a, sizeof(int64_t) * na);
        return FERRY_OK;
    }
    const fy_value *t;
    FY_CHECK(fy_input_tensor_opt(k, 1, &t));
    if (!t) return FERRY_OK;
    return fy_input_ints(k, 1, axes, FERRY_MAX_RANK, n);
}

ferry_status fy_op_Squeeze(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t axes[FERRY_MAX_RANK], dims[FERRY_MAX_RANK];
    int n, r = 0;
    bool drop[FERRY_MAX_RANK] = {0};
    FY_CHECK(read_axes(k, axes, &n));
    if (n < 0) {
        for (int i = 0; i < x->rank; i++) drop[i] = x->dims[i] == 1;
    } else {
        for (int i = 0; i < n; i++) {
            int a;
            FY_CHECK(fy_axis(k, axes[i], x->rank, &a));
            if (x->rank == 0 || x->dims[a] != 1)
                return fy_kernel_error(k, FERRY_E_SHAPE, "cannot squeeze axis %lld of size %lld",
                                       (long long)axes[i], (long long)(x->rank ? x->dims[a] : 0));
            drop[a] = true;
        }
    }
    for (int i = 0; i < x->rank; i++)
        if (!drop[i]) dims[r++] = x->dims[i];
    return output_view(k, x, r, dims);
}

ferry_status fy_op_Unsqueeze(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t axes[FERRY_MAX_RANK], dims[FERRY_MAX_RANK];
    int n;
    FY_CHECK(read_axes(k, axes, &n));
    if (n < 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axes are required");
    int r = x->rank + n;
    if (r > FERRY_MAX_RANK)
        return fy_kernel_error(k, FERRY_E_SHAPE, "output rank %d exceeds %d", r, FERRY_MAX_RANK);
    bool ins[FERRY_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a;
        FY_CHECK(fy_axis(k, axes[i], r, &a));
        if (ins[a])
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axis %lld is repeated",
                                   (long long)axes[i]);
        ins[a] = true;
    }
    for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
    return output_view(k, x, r, dims);
}

ferry_status fy_op_Expand(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int64_t shape[FERRY_MAX_RANK], dims[FERRY_MAX_RANK], strides[FERRY_MAX_RANK];
    int n, r;
    FY_CHECK(fy_input_ints(k, 1, shape, FERRY_MAX_RANK, &n));
    for (int i = 0; i < n; i++)
        if (shape[i] < 0)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "shape[%d] = %lld is negative", i,
                                   (long long)shape[i]);
    if (fy_broadcast_shape(x->rank, x->dims, n, shape, &r, dims) != FERRY_OK)
        return fy_error_wrap(FERRY_E_SHAPE, "node \"%s\" (Expand)", k->node->name);
    if (fy_shape_equal(r, dims, x->rank, x->dims))
        return fy_output_set(k, 0, fy_value_ref((fy_value *)x));
    fy_broadcast_strides(x->rank, x->dims, r, dims, strides);
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &out));
    fy_move_strings_begin(out);
    fy_move_strided(out->data, x->data, ferry_dtype_size(x->dtype), r, dims, strides);
    return fy_move_strings_end(out, FERRY_OK);
}

ferry_status fy_op_ConstantOfShape(fy_kernel *k)
{
    int64_t dims[FERRY_MAX_RANK];
    int n;
    FY_CHECK(fy_input_ints(k, 0, dims, FERRY_MAX_RANK, &n));
    for (int i = 0; i < n; i++)
        if (dims[i] < 0)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "shape[%d] = %lld is negative", i,
                                   (long long)dims[i]);
    const fy_value *v = fy_attr_tensor(k, "value");
    fy_value *out;
    if (!v) return fy_output_zeros(k, 0, FERRY_DTYPE_F32, n, dims, &out);
    if (v->count != 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "value must hold one element, got %lld",
                               (long long)v->count);
    FY_CHECK(fy_output(k, 0, v->dtype, n, dims, &out));
    fy_move_strings_begin(out);
    fy_move_fill(out->data, out->count, ferry_dtype_size(v->dtype), v->data);
    return fy_move_strings_end(out, FERRY_OK);
}

/* Number of elements of range(start, limit, delta) on integers, without overflow. */
static uint64_t int_range_count(int64_t start, int64_t limit, int64_t delta)
{
    uint64_t diff, step;
    if (delta > 0) {
        if (limit <= start) return 0;
        diff = (uint64_t)limit - (uint64_t)start;
        step = (uint64_t)delta;
    } else {
        if (limit >= start) return 0;
        diff = (uint64_t)start - (uint64_t)limit;
        step = 0 - (uint64_t)delta;
    }
    return diff / step + (diff % step != 0);
}

ferry_status fy_op_Range(fy_kernel *k)
{
    const fy_value *in[3];
    for (int i = 0; i < 3; i++) {
        FY_CHECK(fy_input_tensor(k, i, &in[i]));
        if (in[i]->count != 1)
            return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must be a scalar", i);
        if (in[i]->dtype != in[0]->dtype)
            return fy_kernel_error(k, FERRY_E_DTYPE, "inputs must share one dtype");
    }
    ferry_dtype t = in[0]->dtype;
    if (!fy_dtype_is_numeric(t) || t == FERRY_DTYPE_BOOL)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(t));
    int64_t n;
    fy_value *out;
    if (fy_dtype_is_float(t)) {
        double start = fy_tensor_get_f64(in[0], 0), limit = fy_tensor_get_f64(in[1], 0);
        double delta = fy_tensor_get_f64(in[2], 0);
        if (delta == 0 || !isfinite(delta) || !isfinite(start) || !isfinite(limit))
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "start, limit and delta must be finite "
                                   "and delta nonzero");
        double c = ceil((limit - start) / delta);
        if (!(c < 1e15))
            return fy_kernel_error(k, FERRY_E_SHAPE, "range has too many elements");
        n = c > 0 ? (int64_t)c : 0;
        FY_CHECK(fy_output(k, 0, t, 1, &n, &out));
        for (int64_t i = 0; i < n; i++) fy_tensor_set_f64(out, i, start + (double)i * delta);
    } else {
        int64_t start = fy_tensor_get_i64(in[0], 0), limit = fy_tensor_get_i64(in[1], 0);
        int64_t delta = fy_tensor_get_i64(in[2], 0);
        if (delta == 0) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "delta is zero");
        uint64_t c = int_range_count(start, limit, delta);
        if (c > ((uint64_t)1 << 50))
            return fy_kernel_error(k, FERRY_E_SHAPE, "range has too many elements");
        n = (int64_t)c;
        FY_CHECK(fy_output(k, 0, t, 1, &n, &out));
        /* start + i * delta stays within [start, limit), so the unsigned sum is exact */
        for (int64_t i = 0; i < n; i++)
            fy_tensor_set_i64(out, i, (int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)delta));
    }
    return FERRY_OK;
}

ferry_status fy_op_EyeLike(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (x->rank != 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input must be 2-D, got rank %d", x->rank);
    ferry_dtype t = (ferry_dtype)fy_attr_int(k, "dtype", x->dtype);
    if (!fy_dtype_is_numeric(t))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(t));
    int64_t diag = fy_attr_int(k, "k", 0), rows = x->dims[0], cols = x->dims[1];
    fy_value *out;
    FY_CHECK(fy_output_zeros(k, 0, t, 2, x->dims, &out));
    if (diag <= -rows || diag >= cols) return FERRY_OK;
    for (int64_t i = diag < 0 ? -diag : 0; i < rows && i + diag < cols; i++)
        fy_tensor_set_f64(out, i * cols + i + diag, 1.0);
    return FERRY_OK;
}

ferry_status fy_op_Trilu(fy_kernel *k)
{
    const fy_value *x, *kt;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor_opt(k, 1, &kt));
    if (x->rank < 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input must have rank >= 2, got %d", x->rank);
    int64_t diag = 0;
    if (kt) FY_CHECK(fy_read_scalar_i64(k, 1, &diag));
    int upper = (int)fy_attr_int(k, "upper", 1);
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
    /* beyond these bounds every k gives the same result; clamping keeps i + k from overflowing */
    if (diag < -rows - 1) diag = -rows - 1;
    if (diag > cols + 1) diag = cols + 1;
    size_t esz = ferry_dtype_size(x->dtype);
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &out));
    fy_move_strings_begin(out);
    int64_t mats = (rows && cols) ? x->count / (rows * cols) : 0;
    for (int64_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < rows; i++) {
            int64_t row = (m * rows + i) * cols;
            char *dst = (char *)out->data + row * esz;
            const char *src = (const char *)x->data + row * esz;
            int64_t lim = upper ? i + diag : i + diag + 1; /* the first kept / first zeroed col */
            lim = lim < 0 ? 0 : lim > cols ? cols : lim;
            if (upper) {
                memset(dst, 0, lim * esz);
                memcpy(dst + lim * esz, src + lim * esz, (cols - lim) * esz);
            } else {
                memcpy(dst, src, lim * esz);
                memset(dst + lim * esz, 0, (cols - lim) * esz);
            }
        }
    }
    return fy_move_strings_end(out, FERRY_OK); /* zeroed strings (NULL) become "" */
}

/* MT19937 seeded like NumPy's legacy np.random.seed(int), so that training-mode Dropout
 * draws the same mask as ONNX's reference (np.random.uniform after seeding with `seed`). */
typedef struct mt19937 {
    uint32_t mt[624];
    int pos;
} mt19937;

static void mt_seed(mt19937 *s, uint32_t seed)
{
    s->mt[0] = seed;
    for (uint32_t i = 1; i < 624; i++)
        s->mt[i] = 1812433253u * (s->mt[i - 1] ^ (s->mt[i - 1] >> 30)) + i;
    s->pos = 624;
}

static uint32_t mt_next(mt19937 *s)
{
    if (s->pos >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (s->mt[i] & 0x80000000u) | (s->mt[(i + 1) % 624] & 0x7fffffffu);
            s->mt[i] = s->mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) ? 0x9908b0dfu : 0);
        }
        s->pos = 0;
    }
    uint32_t y = s->mt[s->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* A double in [0, 1) from 53 random bits, as NumPy's random_sample. */
static double mt_uniform(mt19937 *s)
{
    uint32_t a = mt_next(s) >> 5, b = mt_next(s) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

ferry_status fy_op_Dropout(fy_kernel *k)
{
    const fy_value *x, *rt = NULL, *tm = NULL;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    if (!fy_dtype_is_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "dtype %s is not supported",
                               ferry_dtype_name(x->dtype));
    double ratio = fy_attr_float(k, "ratio", 0.5f);
    bool training = false;
    if (k->node->opset >= 12) {
        FY_CHECK(fy_input_tensor_opt(k, 1, &rt));
        FY_CHECK(fy_input_tensor_opt(k, 2, &tm));
        if (rt && rt->count >= 1) ratio = fy_tensor_get_f64(rt, 0);
        if (tm && tm->count >= 1) training = fy_tensor_get_f64(tm, 0) != 0;
    }
    /* Before opset 7 is_test chose training; ferry runs models for inference, as opset 7+
     * made Dropout always do outside training_mode. */
    if (training && ratio == 0) training = false;
    if (training && !(ratio > 0 && ratio < 1))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "ratio %g is outside [0, 1)", ratio);
    bool want_mask = fy_output_wanted(k, 1);
    fy_value *out, *mask = NULL;
    ferry_dtype mask_t = k->node->opset >= 10 ? FERRY_DTYPE_BOOL : x->dtype;
    if (want_mask) FY_CHECK(fy_output(k, 1, mask_t, x->rank, x->dims, &mask));
    if (!training) {
        if (mask) {
            if (mask_t == FERRY_DTYPE_BOOL)
                memset(mask->data, 1, (size_t)mask->count);
            else
                for (int64_t i = 0; i < mask->count; i++) fy_tensor_set_f64(mask, i, 1.0);
        }
        return fy_output_set(k, 0, fy_value_ref((fy_value *)x));
    }
    FY_CHECK(fy_output(k, 0, x->dtype, x->rank, x->dims, &out));
    mt19937 rng;
    mt_seed(&rng, (uint32_t)fy_attr_int(k, "seed", 0));
    double scale = 1.0 / (1.0 - ratio);
    for (int64_t i = 0; i < x->count; i++) {
        bool keep = mt_uniform(&rng) >= ratio;
        fy_tensor_set_f64(out, i, keep ? fy_tensor_get_f64(x, i) * scale : 0.0);
        if (mask) fy_tensor_set_f64(mask, i, keep);
    }
    return FERRY_OK;
}
