/* optional.c — Optional, OptionalHasElement, OptionalGetElement. An optional holding a value is
 * represented by the value itself and an empty one by FERRY_VALUE_NONE, so these ops only
 * test and pass references around (opset 18 lets the last two take plain tensors too). */
#include "ops/kernel.h"

ferry_status fy_op_Optional(fy_kernel *k)
{
    const fy_value *v = fy_input(k, 0);
    if (v) return fy_output_set(k, 0, fy_value_ref((fy_value *)v));
    /* empty: the "type" attribute only matters to type inference, not to the value */
    fy_value *none;
    FY_CHECK(fy_none_new(&none));
    return fy_output_set(k, 0, none);
}

ferry_status fy_op_OptionalHasElement(fy_kernel *k)
{
    const fy_value *v = fy_input(k, 0);
    if (!v && k->node->opset < 18)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input 0 is required");
    fy_value *out;
    FY_CHECK(fy_output(k, 0, FERRY_DTYPE_BOOL, 0, NULL, &out));
    *(uint8_t *)out->data = v && v->kind != FERRY_VALUE_NONE;
    return FERRY_OK;
}

ferry_status fy_op_OptionalGetElement(fy_kernel *k)
{
    const fy_value *v = fy_input(k, 0);
    if (!v) return fy_kernel_error(k, FERRY_E_INVALID_ARG, "input 0 is required");
    if (v->kind == FERRY_VALUE_NONE)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "the optional input is empty");
    return fy_output_set(k, 0, fy_value_ref((fy_value *)v));
}
