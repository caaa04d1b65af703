/* basic.c — Identity and Constant: the two ops that only move values around. Identity shares
 * its input (values are immutable), Constant hands out the attribute's tensor. */
#include <string.h>

#include "ops/kernel.h"

ferry_status fy_op_Identity(fy_kernel *k)
{
    const fy_value *v = fy_input(k, 0);
    if (!v) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input 0 is required");
    return fy_output_set(k, 0, fy_value_ref((fy_value *)v));
}

ferry_status fy_op_Constant(fy_kernel *k)
{
    const fy_value *t = fy_attr_tensor(k, "value");
    if (t) return fy_output_set(k, 0, fy_value_ref((fy_value *)t));
    const fy_attr *a;
    fy_value *out;
    int64_t one = 1;
    if ((a = fy_attr_get(k, "value_float")) && a->type == FY_ATTR_FLOAT) {
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_F32, 0, NULL, &out));
        *(float *)out->data = a->f;
    } else if ((a = fy_attr_get(k, "value_int")) && a->type == FY_ATTR_INT) {
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, 0, NULL, &out));
        *(int64_t *)out->data = a->i;
    } else if ((a = fy_attr_get(k, "value_floats")) && a->type == FY_ATTR_FLOATS) {
        one = a->n;
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_F32, 1, &one, &out));
        for (int64_t i = 0; i < a->n; i++) ((float *)out->data)[i] = a->floats[i];
    } else if ((a = fy_attr_get(k, "value_ints")) && a->type == FY_ATTR_INTS) {
        one = a->n;
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_I64, 1, &one, &out));
        for (int64_t i = 0; i < a->n; i++) ((int64_t *)out->data)[i] = a->ints[i];
    } else if ((a = fy_attr_get(k, "value_string")) && a->type == FY_ATTR_STRING) {
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_STRING, 0, NULL, &out));
        return ferry_tensor_set_string(out, 0, a->s, a->s_len);
    } else if ((a = fy_attr_get(k, "value_strings")) && a->type == FY_ATTR_STRINGS) {
        one = a->n;
        FY_CHECK(fy_output(k, 0, FERRY_DTYPE_STRING, 1, &one, &out));
        for (int64_t i = 0; i < a->n; i++)
            FY_CHECK(ferry_tensor_set_string(out, i, a->strings[i], strlen(a->strings[i])));
    } else if (fy_attr_get(k, "sparse_value")) {
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "sparse_value constants are not supported");
    } else {
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "no value attribute");
    }
    return FERRY_OK;
}
