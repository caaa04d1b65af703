/* test_session.c — sessions check what callers feed them (names, kinds, dtypes, fixed dims),
 * accept any batch size on symbolic dims, and hand back outputs that outlive the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

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

/* y = Relu(x · Wᵀ + b), x: [batch, 16], W: [8, 16] — enough arithmetic to race on. */
static ferry_model *dense_model(void)
{
    const int64_t x_dims[] = {-1, 16}, w_dims[] = {8, 16}, b_dims[] = {8};
    float w[8 * 16], b[8];
    for (int i = 0; i < 8 * 16; i++) w[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < 8; i++) b[i] = 0.1f * (float)i - 0.3f;
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 2, x_dims);
    mb_initializer_f32(mb, "w", 2, w_dims, w);
    mb_initializer_f32(mb, "b", 1, b_dims, b);
    int gemm = mb_node(mb, "Gemm", "dense", "x,w,b", "h");
    mb_attr_int(mb, gemm, "transB", 1);
    mb_node(mb, "Relu", "relu", "h", "y");
    mb_output(mb, "y");
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    mb_free(mb);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load_memory(bytes, len, NULL, &m), FERRY_OK);
    free(bytes);
    return m;
}

typedef struct worker {
    ferry_session *s;
    int seed, failures;
    float expected[4][8]; /* outputs for batch rows 0..3 computed single-threaded */
} worker;

static void fill_input(ferry_value *x, int seed)
{
    float *d = ferry_tensor_data(x);
    for (int i = 0; i < 4 * 16; i++) d[i] = (float)(((i + seed) * 7919) % 101) / 50.0f - 1.0f;
}

static void *run_many(void *arg)
{
    worker *w = arg;
    int64_t dims[] = {4, 16};
    ferry_value *x;
    if (ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &x) != FERRY_OK) {
        w->failures++;
        return NULL;
    }
    fill_input(x, w->seed);
    const char *names[] = {"x"};
    for (int it = 0; it < 300; it++) {
        ferry_value *y = NULL;
        if (ferry_session_run(w->s, 1, names, &x, &y) != FERRY_OK ||
            memcmp(ferry_tensor_cdata(y), w->expected, sizeof w->expected) != 0)
            w->failures++;
        ferry_value_free(y);
    }
    ferry_value_free(x);
    return NULL;
}

static void concurrent_runs_share_a_session(void **state)
{
    ferry_model *m = dense_model();
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, &(ferry_session_options){.threads = 1}, &s), FERRY_OK);
    worker workers[4];
    int64_t dims[] = {4, 16};
    for (int t = 0; t < 4; t++) {
        workers[t] = (worker){.s = s, .seed = t * 13};
        ferry_value *x, *y;
        assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &x), FERRY_OK);
        fill_input(x, workers[t].seed);
        const char *names[] = {"x"};
        assert_int_equal(ferry_session_run(s, 1, names, &x, &y), FERRY_OK);
        memcpy(workers[t].expected, ferry_tensor_cdata(y), sizeof workers[t].expected);
        ferry_value_free(x);
        ferry_value_free(y);
    }
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) assert_int_equal(pthread_create(&threads[t], NULL, run_many, &workers[t]), 0);
    for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < 4; t++) assert_int_equal(workers[t].failures, 0);
    ferry_session_free(s);
    ferry_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_any_batch),
        cmocka_unit_test(outputs_outlive_model),
        cmocka_unit_test(rejects_bad_feeds),
        cmocka_unit_test(concurrent_runs_share_a_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
