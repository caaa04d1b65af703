/* test_dnnl_int8.c — the oneDNN int8 kernels (backends/cpu/dnnl_int8.c): QLinearConv,
 * ConvInteger, QLinearMatMul and MatMulInteger against plain loops that follow the reference
 * kernels' arithmetic (ops/quant.c), which the backend must match bit for bit; plus a case the
 * backend hands back to the reference kernel (weights with a nonzero zero point). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "ferry/ferry.h"
#include "model_builder.h"

enum { T_F32 = 1, T_U8 = 2, T_I8 = 3, T_I32 = 6 };

static unsigned next(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 8) & 0xffff;
}

static ferry_model *load(mb_model *mb)
{
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    mb_free(mb);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load_memory(bytes, len, NULL, &m), FERRY_OK);
    free(bytes);
    return m;
}

/* Whether the backend must take the node: oneDNN on (FERRY_NO_DNNL unset) and a CPU with
 * AVX-512 VNNI (the backend declines CPUs without VNNI; AVX-VNNI ones may also take it). */
static int dnnl_expected(void)
{
    const char *off = getenv("FERRY_NO_DNNL");
    return !(off && *off && strcmp(off, "0") != 0) && __builtin_cpu_supports("avx512vnni");
}

static void count_dnnl(const ferry_node_profile *p, void *user)
{
    *(int *)user += strcmp(p->backend, "dnnl") == 0;
}

/* Run the one-input model on x (dtype, rank, dims); returns output 0; *on_dnnl: nodes the
 * backend ran. */
static ferry_value *run1(ferry_model *m, ferry_dtype dt, int rank, const int64_t *dims,
                         const void *x, size_t bytes, int *on_dnnl)
{
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    assert_int_equal(ferry_session_set_profiling(s, 1), FERRY_OK);
    ferry_value *in, *out = NULL;
    assert_int_equal(ferry_tensor_create_copy(dt, rank, dims, x, bytes, &in), FERRY_OK);
    const char *names[] = {"x"};
    assert_int_equal(ferry_session_run(s, 1, names, &in, &out), FERRY_OK);
    ferry_value_free(in);
    *on_dnnl = 0;
    ferry_session_foreach_profile(s, count_dnnl, on_dnnl);
    ferry_session_free(s);
    return out;
}

static int32_t requant(int32_t acc, float mult, int32_t zp, int lo, int hi)
{
    double r = rint((double)acc * (double)mult) + zp;
    return r < lo ? lo : r > hi ? hi : (int32_t)r;
}

/* ---- convolution ------------------------------------------------------------------------- */

typedef struct qconv {
    int64_t n, c, h, w, m, k, stride, pad, group;
    int x_signed, w_u8; /* w_u8: u8 weights with zero point 128 */
    int wzp;            /* s8 weights' zero point (nonzero: the reference kernel runs) */
    int integer;        /* ConvInteger instead of QLinearConv */
    int y_signed;
} qconv;

static void qconv_case(const qconv *q, unsigned seed)
{
    int64_t cg = q->c / q->group, mg = q->m / q->group;
    int64_t oh = (q->h + 2 * q->pad - q->k) / q->stride + 1;
    int64_t ow = (q->w + 2 * q->pad - q->k) / q->stride + 1;
    int64_t nx = q->n * q->c * q->h * q->w, nw = q->m * cg * q->k * q->k,
            ny = q->n * q->m * oh * ow;
    uint8_t *x = malloc((size_t)nx), *w = malloc((size_t)nw);
    float *ws = malloc(sizeof(float) * (size_t)q->m);
    int32_t *b = malloc(sizeof(int32_t) * (size_t)q->m);
    assert_true(x && w && ws && b);
    for (int64_t i = 0; i < nx; i++)
        x[i] = (uint8_t)next(&seed);
    for (int64_t i = 0; i < nw; i++)
        w[i] = (uint8_t)next(&seed);
    for (int64_t i = 0; i < q->m; i++) {
        ws[i] = 0.001f + (float)next(&seed) / 65536.0f * 0.02f;
        b[i] = (int32_t)(next(&seed) % 20001) - 10000;
    }
    uint8_t xzp = q->x_signed ? (uint8_t)(int8_t)-9 : 131, yzp = q->y_signed ? 3 : 117;
    uint8_t wzp = q->w_u8 ? 128 : (uint8_t)(int8_t)q->wzp;
    float xs = 0.02f, ys = 0.37f;

    mb_model *mb = mb_new(13);
    int64_t xd[] = {q->n, q->c, q->h, q->w}, wd[] = {q->m, cg, q->k, q->k}, md[] = {q->m};
    int xt = q->x_signed ? T_I8 : T_U8, wt = q->w_u8 ? T_U8 : T_I8;
    mb_input(mb, "x", xt, 4, xd);
    mb_initializer_raw(mb, "w", wt, 4, wd, w, (size_t)nw);
    mb_initializer_raw(mb, "xz", xt, 0, NULL, &xzp, 1);
    mb_initializer_raw(mb, "wz", wt, 0, NULL, &wzp, 1);
    int node;
    if (q->integer) {
        node = mb_node(mb, "ConvInteger", "conv", "x,w,xz,wz", "y");
    } else {
        mb_initializer_raw(mb, "xs", T_F32, 0, NULL, &xs, 4);
        mb_initializer_raw(mb, "ws", T_F32, 1, md, ws, sizeof(float) * (size_t)q->m);
        mb_initializer_raw(mb, "ys", T_F32, 0, NULL, &ys, 4);
        mb_initializer_raw(mb, "yz", q->y_signed ? T_I8 : T_U8, 0, NULL, &yzp, 1);
        mb_initializer_raw(mb, "b", T_I32, 1, md, b, sizeof(int32_t) * (size_t)q->m);
        node = mb_node(mb, "QLinearConv", "conv", "x,xs,xz,w,ws,wz,ys,yz,b", "y");
    }
    int64_t ks[] = {q->k, q->k}, st[] = {q->stride, q->stride},
            pads[] = {q->pad, q->pad, q->pad, q->pad};
    mb_attr_ints(mb, node, "kernel_shape", 2, ks);
    mb_attr_ints(mb, node, "strides", 2, st);
    mb_attr_ints(mb, node, "pads", 4, pads);
    mb_attr_int(mb, node, "group", q->group);
    mb_output(mb, "y");
    ferry_model *m = load(mb);
    int on_dnnl;
    ferry_value *y =
        run1(m, q->x_signed ? FERRY_DTYPE_I8 : FERRY_DTYPE_U8, 4, xd, x, (size_t)nx, &on_dnnl);
    /* nonzero weight zero points: the reference kernel */
    assert_true(q->wzp ? on_dnnl == 0 : on_dnnl >= dnnl_expected() && on_dnnl <= 1);
    assert_int_equal(ferry_tensor_count(y), ny);
    const void *got = ferry_tensor_cdata(y);
    int xz = q->x_signed ? (int8_t)xzp : xzp, wz = q->w_u8 ? 128 : q->wzp;
    int yz = q->y_signed ? (int8_t)yzp : yzp;
    for (int64_t n = 0; n < q->n; n++)
        for (int64_t o = 0; o < q->m; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    int64_t acc = 0, g = o / mg;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t u = 0; u < q->k; u++)
                            for (int64_t v = 0; v < q->k; v++) {
                                int64_t ih = i * q->stride - q->pad + u;
                                int64_t iw = j * q->stride - q->pad + v;
                                if (ih < 0 || ih >= q->h || iw < 0 || iw >= q->w) continue;
                                uint8_t xv = x[((n * q->c + g * cg + ci) * q->h + ih) * q->w + iw];
                                uint8_t wv = w[((o * cg + ci) * q->k + u) * q->k + v];
                                int xi = q->x_signed ? (int8_t)xv : xv;
                                int wi = q->w_u8 ? wv : (int8_t)wv;
                                acc += (int64_t)(xi - xz) * (wi - wz);
                            }
                    int64_t at = ((n * q->m + o) * oh + i) * ow + j;
                    if (q->integer) {
                        if (((const int32_t *)got)[at] != (int32_t)acc)
                            fail_msg("element %lld: got %d, want %d", (long long)at,
                                     ((const int32_t *)got)[at], (int32_t)acc);
                        continue;
                    }
                    int32_t a = (int32_t)((int64_t)(int32_t)acc + b[o]);
                    int32_t want = requant(a, xs * ws[o] / ys, yz, q->y_signed ? -128 : 0,
                                           q->y_signed ? 127 : 255);
                    int32_t have =
                        q->y_signed ? ((const int8_t *)got)[at] : ((const uint8_t *)got)[at];
                    if (have != want)
                        fail_msg("element %lld: got %d, want %d", (long long)at, have, want);
                }
    ferry_value_free(y);
    ferry_model_free(m);
    free(x), free(w), free(ws), free(b);
}

static void qlinearconv_matches_loops(void **state)
{
    (void)state;
    static const qconv cases[] = {
        {1, 16, 9, 9, 32, 3, 1, 1, 1, 0, 0, 0, 0, 0},  /* u8 x, s8 w, 3x3 */
        {2, 8, 11, 10, 16, 3, 2, 1, 2, 1, 0, 0, 0, 1}, /* s8 x, strided, grouped, s8 y */
        {1, 12, 7, 7, 24, 1, 1, 0, 1, 0, 1, 0, 0, 0},  /* u8 weights (zero point 128), 1x1 */
        {1, 8, 8, 8, 8, 3, 1, 1, 8, 0, 0, 0, 0, 0},    /* depthwise */
        {1, 8, 6, 6, 4, 3, 1, 1, 1, 0, 0, 2, 0, 0},    /* w zero point 2: reference kernel */
        {1, 16, 9, 9, 8, 3, 1, 1, 1, 0, 0, 0, 1, 0},   /* ConvInteger */
        {1, 4, 9, 9, 8, 3, 2, 1, 1, 1, 1, 0, 1, 0},    /* ConvInteger, s8 x, u8 w */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        qconv_case(&cases[i], 100 + (unsigned)i);
}

/* ---- matrix product ---------------------------------------------------------------------- */

static void qmatmul_case(int rank, int64_t batch, int64_t rows, int64_t kk, int64_t nn,
                         int a_signed, int integer, unsigned seed)
{
    int64_t na = batch * rows * kk, nb = kk * nn, ny = batch * rows * nn;
    uint8_t *a = malloc((size_t)na), *bm = malloc((size_t)nb);
    float *bs = malloc(sizeof(float) * (size_t)nn);
    assert_true(a && bm && bs);
    for (int64_t i = 0; i < na; i++)
        a[i] = (uint8_t)next(&seed);
    for (int64_t i = 0; i < nb; i++)
        bm[i] = (uint8_t)next(&seed);
    for (int64_t i = 0; i < nn; i++)
        bs[i] = 0.001f + (float)next(&seed) / 65536.0f * 0.03f;
    uint8_t azp = a_signed ? (uint8_t)(int8_t)5 : 140, bzp = 0, yzp = (uint8_t)(int8_t)-4;
    float as = 0.015f, ys = 0.5f;
    int at = a_signed ? T_I8 : T_U8;
    mb_model *mb = mb_new(13);
    int64_t ad3[] = {batch, rows, kk}, ad2[] = {rows, kk}, bd[] = {kk, nn}, nd[] = {nn};
    const int64_t *ad = rank == 3 ? ad3 : ad2;
    mb_input(mb, "x", at, rank, ad);
    mb_initializer_raw(mb, "b", T_I8, 2, bd, bm, (size_t)nb);
    mb_initializer_raw(mb, "az", at, 0, NULL, &azp, 1);
    mb_initializer_raw(mb, "bz", T_I8, 0, NULL, &bzp, 1);
    if (integer) {
        mb_node(mb, "MatMulInteger", "mm", "x,b,az,bz", "y");
    } else {
        mb_initializer_raw(mb, "as", T_F32, 0, NULL, &as, 4);
        mb_initializer_raw(mb, "bs", T_F32, 1, nd, bs, sizeof(float) * (size_t)nn);
        mb_initializer_raw(mb, "ys", T_F32, 0, NULL, &ys, 4);
        mb_initializer_raw(mb, "yz", T_I8, 0, NULL, &yzp, 1);
        mb_node(mb, "QLinearMatMul", "mm", "x,as,az,b,bs,bz,ys,yz", "y");
    }
    mb_output(mb, "y");
    ferry_model *m = load(mb);
    int on_dnnl;
    ferry_value *y =
        run1(m, a_signed ? FERRY_DTYPE_I8 : FERRY_DTYPE_U8, rank, ad, a, (size_t)na, &on_dnnl);
    assert_true(on_dnnl >= dnnl_expected() && on_dnnl <= 1);
    assert_int_equal(ferry_tensor_count(y), ny);
    const void *got = ferry_tensor_cdata(y);
    int az = a_signed ? (int8_t)azp : azp;
    for (int64_t r = 0; r < batch * rows; r++)
        for (int64_t c = 0; c < nn; c++) {
            int64_t acc = 0;
            for (int64_t p = 0; p < kk; p++) {
                int av = a_signed ? (int8_t)a[r * kk + p] : a[r * kk + p];
                acc += (int64_t)(av - az) * (int8_t)bm[p * nn + c];
            }
            int32_t want = integer ? (int32_t)acc
                                   : requant((int32_t)acc, as * bs[c] / ys, (int8_t)yzp, -128, 127);
            int32_t have =
                integer ? ((const int32_t *)got)[r * nn + c] : ((const int8_t *)got)[r * nn + c];
            if (have != want)
                fail_msg("element %lld: got %d, want %d", (long long)(r * nn + c), have, want);
        }
    ferry_value_free(y);
    ferry_model_free(m);
    free(a), free(bm), free(bs);
}

static void qlinearmatmul_matches_loops(void **state)
{
    (void)state;
    qmatmul_case(2, 1, 7, 40, 24, 0, 0, 1);
    qmatmul_case(3, 3, 5, 33, 17, 1, 0, 2);
    qmatmul_case(2, 1, 64, 128, 96, 0, 0, 3);
    qmatmul_case(2, 1, 6, 20, 10, 0, 1, 4);
    qmatmul_case(3, 2, 9, 64, 31, 1, 1, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qlinearconv_matches_loops),
        cmocka_unit_test(qlinearmatmul_matches_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
