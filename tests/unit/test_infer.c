/* test_infer.c — static shape inference carries symbolic dims through a small CNN whose output
 * type the model leaves undeclared, and through the Shape→Gather→Concat→Reshape chains that
 * exporters emit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "model_builder.h"

static ferry_model *load(mb_model *mb)
{
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    mb_free(mb);
    ferry_model *m = NULL;
    if (ferry_model_load_memory(bytes, len, NULL, &m) != FERRY_OK) fail_msg("%s", ferry_last_error());
    free(bytes);
    return m;
}

static void cnn_output_keeps_batch_symbol(void **state)
{
    const int64_t x_dims[] = {-1, 3, 8, 8}, w_dims[] = {4, 3, 3, 3}, g_dims[] = {5, 4};
    float w[4 * 3 * 3 * 3] = {0}, g[20] = {0};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 4, x_dims);
    mb_initializer_f32(mb, "w", 4, w_dims, w);
    mb_initializer_f32(mb, "g", 2, g_dims, g);
    int conv = mb_node(mb, "Conv", "conv", "x,w", "c");
    mb_attr_int(mb, conv, "group", 1);
    mb_node(mb, "Relu", "relu", "c", "r");
    mb_node(mb, "GlobalAveragePool", "gap", "r", "p");
    mb_node(mb, "Flatten", "flat", "p", "f");
    int gemm = mb_node(mb, "Gemm", "fc", "f,g", "y");
    mb_attr_int(mb, gemm, "transB", 1);
    mb_output(mb, "y");
    ferry_model *m = load(mb);
    ferry_io_info io;
    assert_int_equal(ferry_model_output(m, 0, &io), FERRY_OK);
    assert_int_equal(io.dtype, FERRY_DTYPE_F32);
    assert_int_equal(io.rank, 2);
    assert_int_equal(io.dims[0], -1);
    assert_string_equal(io.dim_names[0], "batch");
    assert_int_equal(io.dims[1], 5);
    ferry_model_free(m);
}

static void reshape_through_shape_subgraph(void **state)
{
    /* y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])) : [batch,2,3] -> [batch,6] */
    const int64_t x_dims[] = {-1, 2, 3}, one[] = {1};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 3, x_dims);
    mb_node(mb, "Shape", "shape", "x", "s");
    mb_node(mb, "Gather", "gather", "s,zero", "b");
    mb_node(mb, "Unsqueeze", "unsq", "b,axes", "b1");
    int cat = mb_node(mb, "Concat", "cat", "b1,m1", "target");
    mb_attr_int(mb, cat, "axis", 0);
    mb_node(mb, "Reshape", "reshape", "x,target", "y");
    mb_output(mb, "y");
    mb_initializer_i64(mb, "zero", 0, NULL, (const int64_t[]){0});
    mb_initializer_i64(mb, "axes", 1, one, (const int64_t[]){0});
    mb_initializer_i64(mb, "m1", 1, one, (const int64_t[]){-1});
    ferry_model *m = load(mb);
    ferry_io_info io;
    assert_int_equal(ferry_model_output(m, 0, &io), FERRY_OK);
    assert_int_equal(io.rank, 2);
    assert_string_equal(io.dim_names[0], "batch");
    assert_int_equal(io.dims[1], 6);
    ferry_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cnn_output_keeps_batch_symbol),
        cmocka_unit_test(reshape_through_shape_subgraph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
