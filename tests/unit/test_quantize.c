/* test_quantize.c — the int8 quantizer on the bundled Fashion-MNIST CNN: static QDQ with each
 * calibration method (graph shape, SQNR, outputs close to float), the load-time fusion into
 * QLinearConv, dynamic MatMulInteger on the MLP, the CPU feature probe and SQNR arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "ferry/ferry.h"
#include "ferry/optimize.h"
#include "optimize/passes.h"
#include "optimize/quantize.h"
#include "runtime/bind.h"

#ifndef FERRY_SOURCE_DIR
#define FERRY_SOURCE_DIR "."
#endif
#define CNN FERRY_SOURCE_DIR "/examples/fashion-mnist/cnn.onnx"
#define MLP FERRY_SOURCE_DIR "/examples/fashion-mnist/mlp.onnx"

/* Smooth pseudo-images in [0, 1]: blobs, so that calibration sees image-like ranges. */
static fy_value *images(int64_t n, int flat, unsigned seed)
{
    int64_t d4[4] = {n, 1, 28, 28}, d2[2] = {n, 784};
    fy_value *x;
    assert_int_equal(fy_tensor_new(FERRY_DTYPE_F32, flat ? 2 : 4, flat ? d2 : d4, &x), FERRY_OK);
    float *p = x->data;
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        double cx = 8 + (seed >> 16) % 12, cy = 8 + (seed >> 8) % 12, r = 4 + (seed >> 4) % 6;
        for (int y = 0; y < 28; y++)
            for (int c = 0; c < 28; c++) {
                double d = ((y - cy) * (y - cy) + (c - cx) * (c - cx)) / (r * r);
                p[i * 784 + y * 28 + c] = (float)exp(-d);
            }
    }
    return x;
}

static int count_op(const ferry_model *m, const char *op)
{
    int n = 0;
    for (int i = 0; i < m->graph->n_nodes; i++) n += strcmp(m->graph->nodes[i].op_type, op) == 0;
    return n;
}

static fy_value *run1(ferry_model *m, fy_value *x)
{
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    const char *name = "input";
    ferry_value *out[4] = {0};
    assert_int_equal(ferry_session_run(s, 1, &name, &x, out), FERRY_OK);
    ferry_session_free(s);
    return out[0];
}

static void test_sqnr(void **state)
{
    (void)state;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {1.1f, 2, 3, 4};
    assert_true(isinf(fy_sqnr_db(a, b, 4)));
    double want = 10 * log10(30.0 / (0.1 * 0.1));
    assert_true(fabs(fy_sqnr_db(a, c, 4) - want) < 1e-3);
}

static void test_vnni_probe(void **state)
{
    (void)state;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) skip();
    char line[8192];
    int flag = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            flag = strstr(line, " avx512_vnni") || strstr(line, " avx_vnni");
            break;
        }
    fclose(f);
    assert_int_equal(fy_cpu_has_vnni(), flag);
}

static void static_case(fy_calib_method method, int reduce_range)
{
    ferry_model *f, *q;
    assert_int_equal(ferry_model_load(CNN, &f), FERRY_OK);
    assert_int_equal(ferry_model_load_flags(CNN, FERRY_LOAD_NO_OPTIMIZE, &q), FERRY_OK);
    fy_value *calib = images(64, 0, 1), *x = images(32, 0, 2);
    fy_quant_config c = {.method = method, .reduce_range = reduce_range, .per_channel = 1,
                         .calib = calib};
    fy_quant_report rep;
    assert_int_equal(fy_quantize_model(q, &c, &rep), FERRY_OK);
    assert_int_equal(rep.n_layers, 4);
    assert_int_equal(rep.reduce_range, reduce_range);
    for (int i = 0; i < rep.n_layers; i++) {
        assert_true(rep.layers[i].quantized);
        if (!(rep.layers[i].sqnr_db > 20)) printf("layer %s SQNR %.2f dB\n", rep.layers[i].node, rep.layers[i].sqnr_db);
        assert_true(rep.layers[i].sqnr_db > (method == FY_CALIB_ENTROPY ? 12 : 20));
    }
    /* QDQ as written: input, 2 Relu outputs, 2 pools, flatten, Gemm Relu = 7 pairs */
    assert_int_equal(rep.n_tensors, 7);
    assert_int_equal(count_op(q, "QuantizeLinear"), 7);
    assert_int_equal(count_op(q, "DequantizeLinear"), 7 + 4 + 4); /* + weights + biases */
    /* ferry's load-time fusion: the convs and the hidden Gemm become QLinearConv */
    assert_int_equal(fy_optimize_model(q, FY_OPT_ALL), FERRY_OK);
    assert_int_equal(fy_model_bind(q), FERRY_OK);
    assert_int_equal(count_op(q, "QLinearConv"), 3);
    assert_int_equal(count_op(q, "Conv"), 0);
    fy_value *yf = run1(f, x), *yq = run1(q, x);
    assert_true(fy_sqnr_db(yf->data, yq->data, yf->count) > 20);
    int agree = 0;
    for (int r = 0; r < 32; r++) {
        const float *a = (const float *)yf->data + r * 10, *b = (const float *)yq->data + r * 10;
        int ia = 0, ib = 0;
        for (int k = 1; k < 10; k++) {
            if (a[k] > a[ia]) ia = k;
            if (b[k] > b[ib]) ib = k;
        }
        agree += ia == ib;
    }
    assert_true(agree >= 30);
    fy_quant_report_free(&rep);
    ferry_value_free(yf), ferry_value_free(yq);
    fy_value_unref(calib), fy_value_unref(x);
    ferry_model_free(f), ferry_model_free(q);
}

static void test_static_minmax(void **state) { (void)state, static_case(FY_CALIB_MINMAX, 0); }
static void test_static_percentile(void **state) { (void)state, static_case(FY_CALIB_PERCENTILE, 0); }
static void test_static_entropy(void **state) { (void)state, static_case(FY_CALIB_ENTROPY, 1); }

/* Written and loaded back as a user would: ferry fuses the file's QDQ graph when loading it
 * (shapes are not in the file, so the pass must infer them to fuse the Gemm). */
static void test_written_file_fuses(void **state)
{
    (void)state;
    ferry_model *q, *l;
    assert_int_equal(ferry_model_load_flags(CNN, FERRY_LOAD_NO_OPTIMIZE, &q), FERRY_OK);
    fy_value *calib = images(16, 0, 5);
    fy_quant_config c = {.per_channel = 1, .calib = calib, .reduce_range = -1};
    assert_int_equal(fy_quantize_model(q, &c, NULL), FERRY_OK);
    char path[] = "/tmp/ferry_test_quantize_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ferry_model_save(q, path, 0), FERRY_OK);
    assert_int_equal(ferry_model_load(path, &l), FERRY_OK);
    assert_int_equal(count_op(l, "QLinearConv"), 3);
    assert_int_equal(count_op(l, "QuantizeLinear"), 1); /* the model input */
    unlink(path);
    fy_value_unref(calib);
    ferry_model_free(q), ferry_model_free(l);
}

static void test_keep_float(void **state)
{
    (void)state;
    ferry_model *q;
    assert_int_equal(ferry_model_load_flags(CNN, FERRY_LOAD_NO_OPTIMIZE, &q), FERRY_OK);
    fy_value *calib = images(16, 0, 3);
    const char *keep[] = {"/3/Conv"};
    fy_quant_config c = {.per_channel = 1, .calib = calib, .n_keep_float = 1, .keep_float = keep,
                         .reduce_range = -1};
    fy_quant_report rep;
    assert_int_equal(fy_quantize_model(q, &c, &rep), FERRY_OK);
    assert_false(rep.layers[1].quantized);
    assert_string_equal(rep.layers[1].node, "/3/Conv");
    assert_true(rep.layers[0].quantized && rep.layers[2].quantized);
    assert_int_equal(fy_optimize_model(q, FY_OPT_ALL), FERRY_OK);
    assert_int_equal(count_op(q, "QLinearConv"), 2);
    fy_quant_report_free(&rep);
    fy_value_unref(calib);
    ferry_model_free(q);
}

static void test_dynamic_mlp(void **state)
{
    (void)state;
    ferry_model *f, *q;
    assert_int_equal(ferry_model_load(MLP, &f), FERRY_OK);
    assert_int_equal(ferry_model_load_flags(MLP, FERRY_LOAD_NO_OPTIMIZE, &q), FERRY_OK);
    fy_value *x = images(16, 1, 4);
    fy_quant_config c = {.dynamic = 1, .per_channel = 1, .reduce_range = 0, .calib = x};
    fy_quant_report rep;
    assert_int_equal(fy_quantize_model(q, &c, &rep), FERRY_OK);
    assert_int_equal(count_op(q, "MatMulInteger"), 3);
    assert_int_equal(count_op(q, "DynamicQuantizeLinear"), 3);
    assert_int_equal(count_op(q, "Gemm"), 0);
    assert_int_equal(fy_model_bind(q), FERRY_OK);
    fy_value *yf = run1(f, x), *yq = run1(q, x);
    assert_true(fy_sqnr_db(yf->data, yq->data, yf->count) > 25);
    fy_quant_report_free(&rep);
    ferry_value_free(yf), ferry_value_free(yq);
    fy_value_unref(x);
    ferry_model_free(f), ferry_model_free(q);
}

static void test_static_needs_data(void **state)
{
    (void)state;
    ferry_model *q;
    assert_int_equal(ferry_model_load_flags(CNN, FERRY_LOAD_NO_OPTIMIZE, &q), FERRY_OK);
    fy_quant_config c = {.per_channel = 1};
    assert_int_equal(fy_quantize_model(q, &c, NULL), FERRY_E_INVALID_ARG);
    ferry_model_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqnr),
        cmocka_unit_test(test_vnni_probe),
        cmocka_unit_test(test_static_minmax),
        cmocka_unit_test(test_static_percentile),
        cmocka_unit_test(test_static_entropy),
        cmocka_unit_test(test_written_file_fuses),
        cmocka_unit_test(test_keep_float),
        cmocka_unit_test(test_dynamic_mlp),
        cmocka_unit_test(test_static_needs_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
