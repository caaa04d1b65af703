/* kernel.c — the helpers kernels use to read inputs and attributes and make outputs; each
 * turns a bad model or bad data into an error that names the node. */
#include "ops/kernel.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ferry_status fy_kernel_error(const fy_kernel *k, ferry_status code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_error(code, "node \"%s\" (%s): %s", k->node->name, k->node->op_type, msg);
}

const fy_value *fy_input(const fy_kernel *k, int i)
{
    return i >= 0 && i < k->n_inputs ? k->inputs[i] : NULL;
}

ferry_status fy_input_tensor(const fy_kernel *k, int i, const fy_value **out)
{
    const fy_value *v = fy_input(k, i);
    *out = NULL;
    if (!v) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input %d is required", i);
    if (v->kind != FERRY_VALUE_TENSOR)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be a tensor", i);
    *out = v;
    return FERRY_OK;
}

ferry_status fy_input_tensor_opt(const fy_kernel *k, int i, const fy_value **out)
{
    const fy_value *v = fy_input(k, i);
    *out = NULL;
    if (!v || v->kind == FERRY_VALUE_NONE) return FERRY_OK;
    if (v->kind != FERRY_VALUE_TENSOR)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be a tensor", i);
    *out = v;
    return FERRY_OK;
}

ferry_status fy_input_ints(const fy_kernel *k, int i, int64_t *ints, int max, int *n)
{
    const fy_value *t;
    FY_CHECK(fy_input_tensor(k, i, &t));
    if (!fy_dtype_is_int(t->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be an integer tensor, got %s", i,
                               ferry_dtype_name(t->dtype));
    if (t->rank > 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must be 1-D, got rank %d", i, t->rank);
    if (t->count > max)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d has %lld values, at most %d allowed", i,
                               (long long)t->count, max);
    for (int64_t j = 0; j < t->count; j++) ints[j] = fy_tensor_get_i64(t, j);
    *n = (int)t->count;
    return FERRY_OK;
}

ferry_status fy_check_dtype(const fy_kernel *k, int input, const fy_value *t, ...)
{
    va_list ap;
    va_start(ap, t);
    for (;;) {
        ferry_dtype d = (ferry_dtype)va_arg(ap, int);
        if (d == FERRY_DTYPE_UNDEFINED) break;
        if (d == t->dtype) {
            va_end(ap);
            return FERRY_OK;
        }
    }
    va_end(ap);
    return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "input %d: dtype %s is not supported", input,
                           ferry_dtype_name(t->dtype));
}

static ferry_status check_output_slot(fy_kernel *k, int i)
{
    if (i < 0 || i >= k->n_outputs)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "output %d does not exist (node has %d)", i,
                               k->n_outputs);
    if (k->outputs[i]) {
        fy_value_unref(k->outputs[i]);
        k->outputs[i] = NULL;
    }
    return FERRY_OK;
}

static ferry_status make_output(fy_kernel *k, int i, ferry_dtype dtype, int rank,
                                const int64_t *dims, int zero, fy_value **out)
{
    *out = NULL;
    FY_CHECK(check_output_slot(k, i));
    ferry_status rc = fy_tensor_new_pooled(k->pool, dtype, rank, dims, zero, out);
    if (rc != FERRY_OK)
        return fy_error_wrap(rc, "node \"%s\" (%s): output %d", k->node->name, k->node->op_type, i);
    k->outputs[i] = *out;
    return FERRY_OK;
}

ferry_status fy_output(fy_kernel *k, int i, ferry_dtype dtype, int rank, const int64_t *dims,
                       fy_value **out)
{
    return make_output(k, i, dtype, rank, dims, 0, out);
}

ferry_status fy_output_zeros(fy_kernel *k, int i, ferry_dtype dtype, int rank,
                             const int64_t *dims, fy_value **out)
{
    return make_output(k, i, dtype, rank, dims, 1, out);
}

ferry_status fy_output_set(fy_kernel *k, int i, fy_value *v)
{
    ferry_status rc = check_output_slot(k, i);
    if (rc != FERRY_OK) {
        fy_value_unref(v);
        return rc;
    }
    k->outputs[i] = v;
    return FERRY_OK;
}

bool fy_output_wanted(const fy_kernel *k, int i)
{
    return i >= 0 && i < k->node->n_outputs && k->node->outputs[i] >= 0;
}

const fy_attr *fy_attr_get(const fy_kernel *k, const char *name)
{
    return fy_node_attr(k->node, name);
}

int64_t fy_attr_int(const fy_kernel *k, const char *name, int64_t def)
{
    const fy_attr *a = fy_attr_get(k, name);
    return a && a->type == FY_ATTR_INT ? a->i : def;
}

float fy_attr_float(const fy_kernel *k, const char *name, float def)
{
    const fy_attr *a = fy_attr_get(k, name);
    if (!a) return def;
    if (a->type == FY_ATTR_FLOAT) return a->f;
    if (a->type == FY_ATTR_INT) return (float)a->i;
    return def;
}

const char *fy_attr_string(const fy_kernel *k, const char *name, const char *def)
{
    const fy_attr *a = fy_attr_get(k, name);
    return a && a->type == FY_ATTR_STRING ? a->s : def;
}

int64_t fy_attr_ints(const fy_kernel *k, const char *name, const int64_t **vals)
{
    const fy_attr *a = fy_attr_get(k, name);
    *vals = NULL;
    if (!a || a->type != FY_ATTR_INTS) return -1;
    *vals = a->ints;
    return a->n;
}

int64_t fy_attr_floats(const fy_kernel *k, const char *name, const float **vals)
{
    const fy_attr *a = fy_attr_get(k, name);
    *vals = NULL;
    if (!a || a->type != FY_ATTR_FLOATS) return -1;
    *vals = a->floats;
    return a->n;
}

const fy_value *fy_attr_tensor(const fy_kernel *k, const char *name)
{
    const fy_attr *a = fy_attr_get(k, name);
    return a && a->type == FY_ATTR_TENSOR ? a->t : NULL;
}

const fy_graph *fy_attr_graph(const fy_kernel *k, const char *name)
{
    const fy_attr *a = fy_attr_get(k, name);
    return a && a->type == FY_ATTR_GRAPH ? a->g : NULL;
}

ferry_status fy_axis(const fy_kernel *k, int64_t axis, int rank, int *out)
{
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank ? rank : 1))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "axis %lld is out of range for rank %d",
                               (long long)axis, rank);
    *out = (int)a;
    return FERRY_OK;
}
