/* test_dnnl.c — the oneDNN CPU backend (src/backends/cpu) against plain loops written here:
 * convolutions of every geometry it takes, fused Conv + Add + Relu chains kept in blocked
 * layouts, pools, Concat, Gemm/MatMul (the small-batch GEMV and oneDNN's matmul), and one
 * session run from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>

#include "ferry/ferry.h"
#include "model_builder.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static float *random_floats(int64_t n, unsigned seed)
{
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return v;
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

/* Run a one-input model on x (rank, dims), return output 0 (caller frees). */
static ferry_value *run1(ferry_session *s, int rank, const int64_t *dims, const float *x)
{
    ferry_value *in, *out = NULL;
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    assert_int_equal(
        ferry_tensor_create_copy(FERRY_DTYPE_F32, rank, dims, x, sizeof(float) * n, &in), FERRY_OK);
    const char *names[] = {"x"};
    assert_int_equal(ferry_session_run(s, 1, names, &in, &out), FERRY_OK);
    ferry_value_free(in);
    return out;
}

/* Every element within 1e-4 of want, relative to the larger of 1 and the element's size. */
static void expect_close(const ferry_value *got, const float *want, int64_t n)
{
    assert_int_equal(ferry_tensor_count(got), n);
    const float *g = ferry_tensor_cdata(got);
    for (int64_t i = 0; i < n; i++) {
        float tol = 1e-4f * fmaxf(1.0f, fabsf(want[i]));
        if (!(fabsf(g[i] - want[i]) <= tol))
            fail_msg("element %lld: got %g, want %g", (long long)i, g[i], want[i]);
    }
}

/* Plain 2-D convolution, NCHW, with explicit pads (top, left, bottom, right as ONNX lists). */
typedef struct conv_spec {
    int64_t n, c, h, w, m, kh, kw, stride, dil, group;
    int64_t pads[4];
} conv_spec;

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1)
{
    return (in + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
}

static float *naive_conv(const conv_spec *c, const float *x, const float *wt, const float *b)
{
    int64_t oh = out_size(c->h, c->kh, c->stride, c->dil, c->pads[0], c->pads[2]);
    int64_t ow = out_size(c->w, c->kw, c->stride, c->dil, c->pads[1], c->pads[3]);
    int64_t cg = c->c / c->group, mg = c->m / c->group;
    float *y = malloc(sizeof(float) * (size_t)(c->n * c->m * oh * ow));
    assert_non_null(y);
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t m = 0; m < c->m; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = b ? b[m] : 0;
                    int64_t g = m / mg;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t u = 0; u < c->kh; u++)
                            for (int64_t v = 0; v < c->kw; v++) {
                                int64_t ih = i * c->stride - c->pads[0] + u * c->dil;
                                int64_t iw = j * c->stride - c->pads[1] + v * c->dil;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                acc +=
                                    (double)x[((n * c->c + g * cg + ci) * c->h + ih) * c->w + iw] *
                                    wt[((m * cg + ci) * c->kh + u) * c->kw + v];
                            }
                    y[((n * c->m + m) * oh + i) * ow + j] = (float)acc;
                }
    return y;
}

static void add_conv_node(mb_model *mb, const conv_spec *c, const char *name, const char *in,
                          const char *out, const float *w, const float *b)
{
    char wn[64], bn[64], ins[160];
    snprintf(wn, sizeof wn, "%s_w", name);
    snprintf(bn, sizeof bn, "%s_b", name);
    int64_t wd[] = {c->m, c->c / c->group, c->kh, c->kw}, bd[] = {c->m};
    mb_initializer_f32(mb, wn, 4, wd, w);
    if (b) mb_initializer_f32(mb, bn, 1, bd, b);
    snprintf(ins, sizeof ins, b ? "%s,%s,%s" : "%s,%s", in, wn, bn);
    int node = mb_node(mb, "Conv", name, ins, out);
    int64_t ks[] = {c->kh, c->kw}, st[] = {c->stride, c->stride}, dl[] = {c->dil, c->dil};
    mb_attr_ints(mb, node, "kernel_shape", 2, ks);
    mb_attr_ints(mb, node, "strides", 2, st);
    mb_attr_ints(mb, node, "dilations", 2, dl);
    mb_attr_ints(mb, node, "pads", 4, c->pads);
    mb_attr_int(mb, node, "group", c->group);
}

static void backend_of(const ferry_node_profile *p, void *user)
{
    if (strcmp(p->op, "Conv") == 0 || strcmp(p->op, "FusedConv") == 0 ||
        strcmp(p->op, "Gemm") == 0 || strcmp(p->op, "MatMul") == 0)
        *(int *)user += strcmp(p->backend, "dnnl") == 0;
}

/* Whether oneDNN runs here at all (FERRY_NO_DNNL switches it off; then the tests still check
 * the reference kernels against the same loops). */
static int dnnl_expected(void)
{
    const char *off = getenv("FERRY_NO_DNNL");
    return !(off && *off && strcmp(off, "0") != 0);
}

/* ---- convolutions ------------------------------------------------------------------------ */

static void conv_geometries_match_loops(void **state)
{
    static const conv_spec specs[] = {
        {1, 16, 14, 14, 32, 3, 3, 1, 1, 1, {1, 1, 1, 1}},  /* 3x3: Winograd */
        {2, 16, 15, 15, 24, 3, 3, 2, 1, 1, {1, 1, 1, 1}},  /* strided */
        {1, 8, 12, 12, 16, 3, 3, 1, 2, 1, {2, 2, 2, 2}},   /* dilated */
        {3, 8, 11, 10, 12, 3, 3, 1, 1, 4, {0, 1, 2, 0}},   /* grouped, uneven pads */
        {1, 32, 9, 9, 32, 3, 3, 1, 1, 32, {1, 1, 1, 1}},   /* depthwise */
        {1, 24, 13, 13, 24, 5, 5, 2, 1, 24, {2, 2, 2, 2}}, /* depthwise 5x5, strided */
        {2, 20, 7, 7, 40, 1, 1, 1, 1, 1, {0, 0, 0, 0}},    /* 1x1 */
        {1, 3, 32, 32, 16, 7, 7, 2, 1, 1, {3, 3, 3, 3}},   /* a network's first layer */
    };
    for (size_t t = 0; t < sizeof specs / sizeof *specs; t++) {
        const conv_spec *c = &specs[t];
        int64_t xd[] = {-1, c->c, c->h, c->w};
        float *w = random_floats(c->m * (c->c / c->group) * c->kh * c->kw, 11 + (unsigned)t);
        float *b = random_floats(c->m, 23 + (unsigned)t);
        mb_model *mb = mb_new(13);
        mb_input(mb, "x", 1, 4, xd);
        add_conv_node(mb, c, "conv", "x", "y", w, t % 2 ? b : NULL);
        mb_output(mb, "y");
        ferry_model *m = load(mb);
        ferry_session *s;
        assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
        assert_int_equal(ferry_session_set_profiling(s, 1), FERRY_OK);
        for (int64_t batch = 1; batch <= c->n; batch += c->n > 1 ? c->n - 1 : 1) {
            conv_spec cb = *c;
            cb.n = batch;
            int64_t dims[] = {batch, c->c, c->h, c->w};
            float *x = random_floats(batch * c->c * c->h * c->w, 37 + (unsigned)t);
            float *want = naive_conv(&cb, x, w, t % 2 ? b : NULL);
            ferry_value *y = run1(s, 4, dims, x);
            expect_close(y, want, ferry_tensor_count(y));
            ferry_value_free(y);
            free(x), free(want);
        }
        int on_dnnl = 0;
        ferry_session_foreach_profile(s, backend_of, &on_dnnl);
        assert_int_equal(on_dnnl, dnnl_expected());
        ferry_session_free(s);
        ferry_model_free(m);
        free(w), free(b);
    }
}

/* x -> conv1 -> Relu -> conv2 -> Add(conv1 output) -> Relu -> MaxPool -> GlobalAveragePool:
 * the passes make FusedConv nodes (Relu, and Z + Relu), kept in oneDNN's layout end to end. */
static const conv_spec chain1 = {1, 8, 12, 12, 16, 3, 3, 1, 1, 1, {1, 1, 1, 1}};
static const conv_spec chain2 = {1, 16, 12, 12, 16, 3, 3, 1, 1, 2, {1, 1, 1, 1}};

typedef struct chain {
    ferry_model *m;
    float *w1, *b1, *w2, *b2;
} chain;

static void chain_build(chain *ch)
{
    ch->w1 = random_floats(16 * 8 * 9, 1), ch->b1 = random_floats(16, 2);
    ch->w2 = random_floats(16 * 8 * 9, 3), ch->b2 = random_floats(16, 4);
    int64_t xd[] = {-1, 8, 12, 12};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 4, xd);
    add_conv_node(mb, &chain1, "c1", "x", "a1", ch->w1, ch->b1);
    mb_node(mb, "Relu", "r1", "a1", "h1");
    add_conv_node(mb, &chain2, "c2", "h1", "a2", ch->w2, ch->b2);
    mb_node(mb, "Add", "res", "a2,a1", "s");
    mb_node(mb, "Relu", "r2", "s", "h2");
    int pool = mb_node(mb, "MaxPool", "pool", "h2", "p");
    int64_t k[] = {3, 3}, st[] = {2, 2}, pads[] = {1, 1, 1, 1};
    mb_attr_ints(mb, pool, "kernel_shape", 2, k);
    mb_attr_ints(mb, pool, "strides", 2, st);
    mb_attr_ints(mb, pool, "pads", 4, pads);
    mb_node(mb, "GlobalAveragePool", "gap", "p", "y");
    mb_output(mb, "y");
    ch->m = load(mb);
}

static void chain_free(chain *ch)
{
    ferry_model_free(ch->m);
    free(ch->w1), free(ch->b1), free(ch->w2), free(ch->b2);
}

/* The chain computed with loops, for batch n: out[n][16]. */
static float *chain_expected(const chain *ch, int64_t n, const float *x)
{
    conv_spec c1 = chain1, c2 = chain2;
    c1.n = c2.n = n;
    float *a1 = naive_conv(&c1, x, ch->w1, ch->b1);
    int64_t sz = n * 16 * 144;
    float *h1 = calloc((size_t)sz, sizeof(float));
    for (int64_t i = 0; i < sz; i++)
        h1[i] = a1[i] < 0 ? 0 : a1[i];
    float *a2 = naive_conv(&c2, h1, ch->w2, ch->b2);
    for (int64_t i = 0; i < sz; i++) {
        float v = a2[i] + a1[i];
        a2[i] = v < 0 ? 0 : v;
    }
    float *y = calloc((size_t)(n * 16), sizeof(float));
    assert_non_null(y);
    for (int64_t p = 0; p < n * 16; p++) {
        const float *plane = a2 + p * 144;
        double sum = 0;
        for (int64_t i = 0; i < 6; i++)
            for (int64_t j = 0; j < 6; j++) {
                float best = -INFINITY;
                for (int64_t u = 0; u < 3; u++)
                    for (int64_t v = 0; v < 3; v++) {
                        int64_t ih = i * 2 - 1 + u, iw = j * 2 - 1 + v;
                        if (ih >= 0 && ih < 12 && iw >= 0 && iw < 12 && plane[ih * 12 + iw] > best)
                            best = plane[ih * 12 + iw];
                    }
                sum += best;
            }
        y[p] = (float)(sum / 36);
    }
    free(a1), free(h1), free(a2);
    return y;
}

static void fused_chain_matches_loops(void **state)
{
    chain ch;
    chain_build(&ch);
    ferry_session *s;
    assert_int_equal(ferry_session_create(ch.m, NULL, &s), FERRY_OK);
    for (int64_t n = 1; n <= 3; n += 2) {
        int64_t dims[] = {n, 8, 12, 12};
        float *x = random_floats(n * 8 * 144, 99 + (unsigned)n);
        float *want = chain_expected(&ch, n, x);
        ferry_value *y = run1(s, 4, dims, x);
        assert_int_equal(ferry_tensor_rank(y), 4);
        expect_close(y, want, n * 16);
        ferry_value_free(y);
        free(x), free(want);
    }
    ferry_session_free(s);
    chain_free(&ch);
}

/* ---- one session, several threads ------------------------------------------------------- */

typedef struct worker_arg {
    ferry_session *s;
    const float *x[2];
    const float *want[2];
    int failed;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 20 && !a->failed; i++) {
        int64_t n = i % 2 ? 3 : 1, dims[] = {n, 8, 12, 12};
        ferry_value *in, *out = NULL;
        const char *names[] = {"x"};
        if (ferry_tensor_create_copy(FERRY_DTYPE_F32, 4, dims, a->x[i % 2],
                                     sizeof(float) * (size_t)(n * 8 * 144), &in) != FERRY_OK) {
            a->failed = 1;
            break;
        }
        if (ferry_session_run(a->s, 1, names, &in, &out) != FERRY_OK) a->failed = 1;
        const float *g = out ? ferry_tensor_cdata(out) : NULL;
        for (int64_t j = 0; g && j < n * 16; j++)
            if (!(fabsf(g[j] - a->want[i % 2][j]) <= 1e-4f * fmaxf(1, fabsf(a->want[i % 2][j]))))
                a->failed = 1;
        ferry_value_free(in);
        ferry_value_free(out);
    }
    return NULL;
}

static void concurrent_runs_agree(void **state)
{
    chain ch;
    chain_build(&ch);
    ferry_session *s;
    assert_int_equal(ferry_session_create(ch.m, NULL, &s), FERRY_OK);
    float *x1 = random_floats(8 * 144, 5), *x3 = random_floats(3 * 8 * 144, 6);
    float *w1 = chain_expected(&ch, 1, x1), *w3 = chain_expected(&ch, 3, x3);
    worker_arg args[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (worker_arg){s, {x1, x3}, {w1, w3}, 0};
        assert_int_equal(pthread_create(&th[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_false(args[t].failed);
    }
    ferry_session_free(s);
    chain_free(&ch);
    free(x1), free(x3), free(w1), free(w3);
}

/* ---- Concat of two convolutions --------------------------------------------------------- */

static void concat_of_branches(void **state)
{
    conv_spec a = {1, 8, 10, 10, 16, 1, 1, 1, 1, 1, {0, 0, 0, 0}};
    conv_spec b = {1, 8, 10, 10, 24, 3, 3, 1, 1, 1, {1, 1, 1, 1}};
    float *wa = random_floats(16 * 8, 7), *wb = random_floats(24 * 8 * 9, 8);
    int64_t xd[] = {-1, 8, 10, 10};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 4, xd);
    add_conv_node(mb, &a, "ca", "x", "ya", wa, NULL);
    add_conv_node(mb, &b, "cb", "x", "yb", wb, NULL);
    int cat = mb_node(mb, "Concat", "cat", "ya,yb", "y");
    mb_attr_int(mb, cat, "axis", 1);
    mb_output(mb, "y");
    ferry_model *m = load(mb);
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    int64_t dims[] = {2, 8, 10, 10};
    float *x = random_floats(2 * 800, 9);
    a.n = b.n = 2;
    float *ya = naive_conv(&a, x, wa, NULL), *yb = naive_conv(&b, x, wb, NULL);
    float *want = malloc(sizeof(float) * 2 * 40 * 100);
    assert_non_null(want);
    for (int n = 0; n < 2; n++) {
        memcpy(want + n * 4000, ya + n * 1600, sizeof(float) * 1600);
        memcpy(want + n * 4000 + 1600, yb + n * 2400, sizeof(float) * 2400);
    }
    ferry_value *y = run1(s, 4, dims, x);
    assert_int_equal(ferry_tensor_dims(y)[1], 40);
    expect_close(y, want, 2 * 4000);
    ferry_value_free(y);
    ferry_session_free(s);
    ferry_model_free(m);
    free(wa), free(wb), free(x), free(ya), free(yb), free(want);
}

/* ---- Gemm and MatMul -------------------------------------------------------------------- */

static void gemm_variants_match_loops(void **state)
{
    static const struct {
        int64_t k, n;
        int ta, tb, bias_rank;
        float alpha, beta;
    } cases[] = {
        {784, 64, 0, 1, 1, 1.0f, 1.0f}, {40, 70, 0, 0, 1, 0.5f, 2.0f},
        {33, 17, 1, 1, 2, 1.0f, 0.5f},  {16, 8, 0, 0, 0, 2.0f, 1.0f},
        {64, 10, 0, 1, -1, 1.0f, 1.0f},
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        int64_t K = cases[t].k, N = cases[t].n;
        int ta = cases[t].ta, tb = cases[t].tb;
        float *B = random_floats(K * N, 40 + (unsigned)t), *C = random_floats(N, 50 + (unsigned)t);
        int64_t bd[] = {tb ? N : K, tb ? K : N}, cd[] = {1, N}, xd[] = {ta ? K : -1, ta ? -1 : K};
        mb_model *mb = mb_new(13);
        mb_input(mb, "x", 1, 2, xd);
        mb_initializer_f32(mb, "B", 2, bd, B);
        int rank = cases[t].bias_rank;
        if (rank >= 0) mb_initializer_f32(mb, "C", rank, rank == 2 ? cd : cd + 1, C);
        int node = mb_node(mb, "Gemm", "gemm", rank >= 0 ? "x,B,C" : "x,B", "y");
        mb_attr_int(mb, node, "transA", ta);
        mb_attr_int(mb, node, "transB", tb);
        mb_attr_float(mb, node, "alpha", cases[t].alpha);
        mb_attr_float(mb, node, "beta", cases[t].beta);
        mb_output(mb, "y");
        ferry_model *m = load(mb);
        ferry_session *s;
        assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
        for (int64_t M = 1; M <= 9; M += 8) { /* 1: the GEMV kernel; 9: oneDNN's matmul */
            float *x = random_floats(M * K, 60 + (unsigned)(t * 10 + M));
            float *want = malloc(sizeof(float) * (size_t)(M * N));
            assert_non_null(want);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double acc = 0;
                    for (int64_t p = 0; p < K; p++)
                        acc +=
                            (double)x[ta ? p * M + i : i * K + p] * B[tb ? j * K + p : p * N + j];
                    double c = rank < 0 ? 0 : rank == 0 ? C[0] : C[j];
                    want[i * N + j] = (float)(cases[t].alpha * acc + cases[t].beta * c);
                }
            int64_t dims[] = {ta ? K : M, ta ? M : K};
            ferry_value *y = run1(s, 2, dims, x);
            expect_close(y, want, M * N);
            ferry_value_free(y);
            free(x), free(want);
        }
        ferry_session_free(s);
        ferry_model_free(m);
        free(B), free(C);
    }
}

/* [2,3,K] x [K,N] with a constant B, then [2,3,N] x [2,N,3] of two computed operands. */
static void matmul_batched_and_constant(void **state)
{
    const int64_t K = 12, N = 5;
    float *B = random_floats(K * N, 70);
    int64_t xd[] = {-1, 3, K}, bd[] = {K, N}, perm[] = {0, 2, 1};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 3, xd);
    mb_initializer_f32(mb, "B", 2, bd, B);
    mb_node(mb, "MatMul", "proj", "x,B", "h");
    int tr = mb_node(mb, "Transpose", "tr", "h", "ht");
    mb_attr_ints(mb, tr, "perm", 3, perm);
    mb_node(mb, "MatMul", "scores", "h,ht", "y");
    mb_output(mb, "y");
    ferry_model *m = load(mb);
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    float *x = random_floats(2 * 3 * K, 71), h[2 * 3 * 5], want[2 * 3 * 3];
    for (int64_t r = 0; r < 6; r++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t p = 0; p < K; p++)
                acc += (double)x[r * K + p] * B[p * N + j];
            h[r * N + j] = (float)acc;
        }
    for (int64_t b = 0; b < 2; b++)
        for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < 3; j++) {
                double acc = 0;
                for (int64_t p = 0; p < N; p++)
                    acc += (double)h[(b * 3 + i) * N + p] * h[(b * 3 + j) * N + p];
                want[(b * 3 + i) * 3 + j] = (float)acc;
            }
    int64_t dims[] = {2, 3, K};
    ferry_value *y = run1(s, 3, dims, x);
    expect_close(y, want, 18);
    ferry_value_free(y);
    ferry_session_free(s);
    ferry_model_free(m);
    free(B), free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_geometries_match_loops),
        cmocka_unit_test(fused_chain_matches_loops),
        cmocka_unit_test(concurrent_runs_agree),
        cmocka_unit_test(concat_of_branches),
        cmocka_unit_test(gemm_variants_match_loops),
        cmocka_unit_test(matmul_batched_and_constant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
