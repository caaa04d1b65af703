/* test_session.c — sessions check what callers feed them (names, kinds, dtypes, fixed dims),
 * accept any batch size on symbolic dims, and hand back outputs that outlive the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "model_builder.h"

/* y = Identity(x) with x: float32[batch, 3]; w = Identity(weight) exposes an initializer. */
static ferry_model *identity_model(void)
{
    const int64_t dims[] = {-1, 3}, wdims[] = {2};
    const float weight[] = {1.5f, -2.5f};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 2, dims);
    mb_initializer_f32(mb, "weight", 1, wdims, weight);
    mb_node(mb, "Identity", "copy", "x", "y");
    mb_node(mb, "Identity", "expose", "weight", "w");
    mb_output(mb, "y");
    mb_output(mb, "w");
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    mb_free(mb);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load_memory(bytes, len, NULL, &m), FERRY_OK);
    free(bytes);
    return m;
}

static void runs_any_batch(void **state)
{
    ferry_model *m = identity_model();
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    for (int64_t batch = 1; batch <= 8; batch *= 2) {
        int64_t dims[] = {batch, 3};
        ferry_value *x, *out[2];
        assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &x), FERRY_OK);
        float *d = ferry_tensor_data(x);
        for (int64_t i = 0; i < batch * 3; i++) d[i] = (float)i;
        const char *names[] = {"x"};
        assert_int_equal(ferry_session_run(s, 1, names, &x, out), FERRY_OK);
        assert_int_equal(ferry_tensor_dims(out[0])[0], batch);
        assert_memory_equal(ferry_tensor_cdata(out[0]), d, sizeof(float) * batch * 3);
        ferry_value_free(x);
        ferry_value_free(out[0]);
        ferry_value_free(out[1]);
    }
    ferry_session_free(s);
    ferry_model_free(m);
}

static void outputs_outlive_model(void **state)
{
    ferry_model *m = identity_model();
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    ferry_model_free(m); /* the session keeps it alive */
    int64_t dims[] = {1, 3};
    ferry_value *x, *out[2];
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &x), FERRY_OK);
    memset(ferry_tensor_data(x), 0, 12);
    const char *names[] = {"x"};
    assert_int_equal(ferry_session_run(s, 1, names, &x, out), FERRY_OK);
    ferry_session_free(s);
    const float *w = ferry_tensor_cdata(out[1]);
    assert_true(w[0] == 1.5f && w[1] == -2.5f);
    ferry_value_free(x);
    ferry_value_free(out[0]);
    ferry_value_free(out[1]);
}

static void expect_run_error(ferry_session *s, const char *name, ferry_value *x, ferry_status want,
                             const char *fragment)
{
    ferry_value *out[2] = {NULL, NULL};
    const char *names[] = {name};
    assert_int_equal(ferry_session_run(s, x ? 1 : 0, names, &x, out), want);
    assert_null(out[0]);
    if (!strstr(ferry_last_error(), fragment))
        fail_msg("error \"%s\" does not mention \"%s\"", ferry_last_error(), fragment);
}

static void rejects_bad_feeds(void **state)
{
    ferry_model *m = identity_model();
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    int64_t good[] = {2, 3}, bad[] = {2, 4};
    ferry_value *f32, *i64, *wrong_shape;
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, good, &f32), FERRY_OK);
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_I64, 2, good, &i64), FERRY_OK);
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, bad, &wrong_shape), FERRY_OK);
    expect_run_error(s, "nope", f32, FERRY_E_INVALID_ARG, "no input named \"nope\"");
    expect_run_error(s, "x", i64, FERRY_E_DTYPE, "expected float32, got int64");
    expect_run_error(s, "x", wrong_shape, FERRY_E_SHAPE, "expected shape [batch,3], got [2,4]");
    expect_run_error(s, "x", NULL, FERRY_E_INVALID_ARG, "input \"x\" is required");
    ferry_value_free(f32);
    ferry_value_free(i64);
    ferry_value_free(wrong_shape);
    ferry_session_free(s);
    ferry_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_any_batch),
        cmocka_unit_test(outputs_outlive_model),
        cmocka_unit_test(rejects_bad_feeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
