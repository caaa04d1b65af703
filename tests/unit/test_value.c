/* test_value.c — tensors, views, broadcasting, float16 conversion and .npy round trips. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/npy.h"
#include "core/value.h"

static void broadcasts_like_numpy(void **state)
{
    int64_t a[] = {8, 1, 6, 1}, b[] = {7, 1, 5}, out[FERRY_MAX_RANK];
    int rank;
    assert_int_equal(fy_broadcast_shape(4, a, 3, b, &rank, out), FERRY_OK);
    assert_int_equal(rank, 4);
    assert_true(out[0] == 8 && out[1] == 7 && out[2] == 6 && out[3] == 5);
    int64_t c[] = {3}, d[] = {4};
    assert_int_equal(fy_broadcast_shape(1, c, 1, d, &rank, out), FERRY_E_SHAPE);
    assert_non_null(strstr(ferry_last_error(), "[3] and [4]"));
    int64_t strides[4];
    fy_broadcast_strides(3, b, 4, out, strides);
    assert_true(strides[0] == 0 && strides[1] == 5 && strides[2] == 0 && strides[3] == 1);
}

static void views_share_storage(void **state)
{
    int64_t dims[] = {2, 3}, flat[] = {6}, wrong[] = {4};
    fy_value *t, *v;
    assert_int_equal(fy_tensor_new(FERRY_DTYPE_F32, 2, dims, &t), FERRY_OK);
    assert_int_equal(fy_tensor_view(t, 1, flat, &v), FERRY_OK);
    assert_ptr_equal(t->data, v->data);
    fy_value_unref(t); /* the view keeps the buffer */
    ((float *)v->data)[5] = 1.0f;
    fy_value *bad;
    assert_int_equal(fy_tensor_view(v, 1, wrong, &bad), FERRY_E_SHAPE);
    fy_value_unref(v);
}

static void converts_half_exactly(void **state)
{
    /* values from IEEE 754 binary16 tables */
    assert_true(fy_half_to_float(0x3c00) == 1.0f);
    assert_true(fy_half_to_float(0xc000) == -2.0f);
    assert_true(fy_half_to_float(0x7bff) == 65504.0f);
    assert_true(fy_half_to_float(0x0001) == ldexpf(1, -24));
    assert_true(isinf(fy_half_to_float(0x7c00)));
    assert_true(isnan(fy_half_to_float(0x7e00)));
    assert_int_equal(fy_float_to_half(1.0f), 0x3c00);
    assert_int_equal(fy_float_to_half(65504.0f), 0x7bff);
    assert_int_equal(fy_float_to_half(70000.0f), 0x7c00);
    assert_int_equal(fy_float_to_half(1.0f + ldexpf(1, -11)), 0x3c00); /* tie → even */
    assert_int_equal(fy_float_to_half(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_int_equal(fy_float_to_half(ldexpf(1, -24)), 0x0001);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive half round-trips */
        assert_int_equal(fy_float_to_half(fy_half_to_float((uint16_t)h)), h);
}

static void npy_round_trip(void **state)
{
    int64_t dims[] = {2, 3};
    fy_value *t, *back;
    assert_int_equal(fy_tensor_new(FERRY_DTYPE_I64, 2, dims, &t), FERRY_OK);
    for (int i = 0; i < 6; i++) ((int64_t *)t->data)[i] = i * 1000000000000LL - 3;
    char path[] = "/tmp/ferry-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fy_npy_write(t, path), FERRY_OK);
    assert_int_equal(fy_npy_read(path, &back), FERRY_OK);
    unlink(path);
    assert_int_equal(back->dtype, FERRY_DTYPE_I64);
    assert_true(fy_shape_equal(back->rank, back->dims, 2, dims));
    assert_memory_equal(back->data, t->data, 48);
    fy_value_unref(t);
    fy_value_unref(back);
}

static void npy_rejects_malformed(void **state)
{
    fy_value *t = NULL;
    const char bad_magic[] = "NOTNUMPY........";
    assert_int_equal(fy_npy_parse(bad_magic, sizeof bad_magic, "x.npy", &t), FERRY_E_PARSE);
    char hdr[128] = "\x93NUMPY\x01\x00";
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }";
    hdr[8] = (char)strlen(dict);
    memcpy(hdr + 10, dict, strlen(dict));
    size_t len = 10 + strlen(dict) + 8; /* 8 bytes of data where 4 MB are promised */
    assert_int_equal(fy_npy_parse(hdr, len, "short.npy", &t), FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "truncated"));
    const char *big_endian = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }";
    hdr[8] = (char)strlen(big_endian);
    memcpy(hdr + 10, big_endian, strlen(big_endian));
    assert_int_equal(fy_npy_parse(hdr, 10 + strlen(big_endian) + 4, "be.npy", &t), FERRY_E_UNSUPPORTED);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broadcasts_like_numpy),
        cmocka_unit_test(views_share_storage),
        cmocka_unit_test(converts_half_exactly),
        cmocka_unit_test(npy_round_trip),
        cmocka_unit_test(npy_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
