/* test_passes.c — the load-time graph passes: each small model is loaded twice (as written and
 * optimized), the optimized graph must hold the expected ops, and both must compute the same
 * outputs on the same inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "model_builder.h"
#include "ops/kernel.h"

#define F32 1
#define I64 7

typedef struct pair {
    ferry_model *orig, *opt;
} pair;

static ferry_model *load_flags(mb_model *mb, unsigned flags)
{
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    char path[] = "/tmp/ferry_test_passes_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
    free(bytes);
    ferry_model *m = NULL;
    ferry_status rc = ferry_model_load_flags(path, flags, &m);
    unlink(path);
    if (rc != FERRY_OK) fail_msg("load failed: %s", ferry_last_error());
    return m;
}

static pair load_both(mb_model *mb)
{
    pair p = {load_flags(mb, FERRY_LOAD_NO_OPTIMIZE), load_flags(mb, 0)};
    mb_free(mb);
    return p;
}

static void free_pair(pair p)
{
    ferry_model_free(p.orig);
    ferry_model_free(p.opt);
}

typedef struct op_query {
    const char *op;
    int64_t n;
} op_query;

static void count_cb(const char *op, int64_t n, void *user)
{
    op_query *q = user;
    if (strcmp(op, q->op) == 0) q->n += n;
}

static int64_t count_op(const ferry_model *m, const char *op)
{
    op_query q = {op, 0};
    ferry_model_foreach_op(m, count_cb, &q);
    return q.n;
}

static int64_t count_nodes(const ferry_model *m)
{
    ferry_model_info info;
    ferry_model_get_info(m, &info);
    return info.n_nodes;
}

/* Deterministic values in [-2, 2). */
static ferry_value *rand_tensor(int rank, const int64_t *dims, unsigned seed)
{
    ferry_value *t;
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, rank, dims, &t), FERRY_OK);
    float *d = ferry_tensor_data(t);
    uint32_t s = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < ferry_tensor_count(t); i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = (float)(s >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
    }
    return t;
}

static void fill_rand(float *d, int64_t n, unsigned seed, float lo, float hi)
{
    uint32_t s = seed * 2654435761u + 777u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = lo + (float)(s >> 8) / (float)(1u << 24) * (hi - lo);
    }
}

/* Run both models on one input x and compare every output: |a - b| <= tol (1 + |b|). */
static void check_same_input(pair p, const char *name, ferry_value *x, double tol)
{
    ferry_session *s[2];
    ferry_model *m[2] = {p.orig, p.opt};
    int n_out = ferry_model_output_count(p.orig);
    assert_int_equal(ferry_model_output_count(p.opt), n_out);
    ferry_value *out[2][4];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ferry_session_create(m[i], NULL, &s[i]), FERRY_OK);
        if (ferry_session_run(s[i], 1, &name, &x, out[i]) != FERRY_OK)
            fail_msg("run %s failed: %s", i ? "optimized" : "original", ferry_last_error());
    }
    for (int j = 0; j < n_out; j++) {
        ferry_io_info a, b;
        assert_int_equal(ferry_model_output(p.orig, j, &a), FERRY_OK);
        assert_int_equal(ferry_model_output(p.opt, j, &b), FERRY_OK);
        assert_string_equal(a.name, b.name);
        const ferry_value *u = out[0][j], *v = out[1][j];
        assert_int_equal(ferry_tensor_rank(u), ferry_tensor_rank(v));
        assert_memory_equal(ferry_tensor_dims(u), ferry_tensor_dims(v),
                            sizeof(int64_t) * ferry_tensor_rank(u));
        assert_int_equal(ferry_tensor_dtype(u), FERRY_DTYPE_F32);
        const float *pu = ferry_tensor_cdata(u), *pv = ferry_tensor_cdata(v);
        for (int64_t i = 0; i < ferry_tensor_count(u); i++) {
            double d = pu[i] - pv[i];
            if (d < 0) d = -d;
            if (d > tol * (1.0 + (pu[i] < 0 ? -pu[i] : pu[i])))
                fail_msg("output %d element %lld: original %g, optimized %g", j, (long long)i,
                         pu[i], pv[i]);
        }
    }
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < n_out; j++) ferry_value_free(out[i][j]);
        ferry_session_free(s[i]);
    }
}

static void check_same(pair p, int rank, const int64_t *dims)
{
    ferry_value *x = rand_tensor(rank, dims, 7);
    check_same_input(p, "x", x, 1e-5);
    ferry_value_free(x);
}

static void init_rand(mb_model *mb, const char *name, int rank, const int64_t *dims, unsigned seed,
                      float lo, float hi)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *d = malloc(sizeof(float) * (size_t)(n ? n : 1));
    fill_rand(d, n, seed, lo, hi);
    mb_initializer_f32(mb, name, rank, dims, d);
    free(d);
}

static void scalar_f32(mb_model *mb, const char *name, float v)
{
    mb_initializer_f32(mb, name, 0, NULL, &v);
}

/* ---- BASIC ------------------------------------------------------------------------------- */

static void identity_and_dropout_removed(void **state)
{
    const int64_t dims[] = {2, 3};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 2, dims);
    mb_node(mb, "Identity", "id1", "x", "a");
    mb_node(mb, "Dropout", "drop", "a", "b");
    mb_node(mb, "Relu", "relu", "b", "c");
    mb_node(mb, "Identity", "id2", "c", "y"); /* y is a graph output: its name must survive */
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.orig), 4);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "Relu"), 1);
    ferry_io_info out;
    assert_int_equal(ferry_model_output(p.opt, 0, &out), FERRY_OK);
    assert_string_equal(out.name, "y");
    check_same(p, 2, dims);
    free_pair(p);
}

static void identity_between_graph_values_kept(void **state)
{
    const int64_t dims[] = {2, 3}, wd[] = {2};
    const float w[] = {1.5f, -2.5f};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 2, dims);
    mb_initializer_f32(mb, "w", 1, wd, w);
    mb_node(mb, "Identity", "copy", "x", "y");
    mb_node(mb, "Identity", "expose", "w", "z");
    mb_output(mb, "y");
    mb_output(mb, "z");
    pair p = load_both(mb);
    assert_int_equal(count_op(p.opt, "Identity"), 2);
    check_same(p, 2, dims);
    free_pair(p);
}

static void dropout_with_mask_kept(void **state)
{
    const int64_t dims[] = {2, 3};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 2, dims);
    mb_node(mb, "Dropout", "drop", "x", "a,mask");
    mb_node(mb, "Cast", "cast", "mask", "m");
    mb_attr_int(mb, 1, "to", F32);
    mb_node(mb, "Add", "add", "a,m", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_op(p.opt, "Dropout"), 1);
    check_same(p, 2, dims);
    free_pair(p);
}

static void constants_folded(void **state)
{
    const int64_t dims[] = {2, 3}, cd[] = {3};
    const float k1[] = {1, 2, 3}, k2[] = {0.5f, 0.25f, 0.125f};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 2, dims);
    mb_initializer_f32(mb, "k1", 1, cd, k1);
    mb_initializer_f32(mb, "k2", 1, cd, k2);
    mb_node(mb, "Add", "c_add", "k1,k2", "c");
    mb_node(mb, "Sqrt", "c_sqrt", "c", "d");
    mb_node(mb, "Mul", "mul", "x,d", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.orig), 3);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "Mul"), 1);
    check_same(p, 2, dims);
    free_pair(p);
}

static void static_shape_chain_folded(void **state)
{
    const int64_t dims[] = {2, 3, 4}, one[] = {1}, zero = 0;
    const int64_t minus[] = {-1};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 3, dims);
    mb_initializer_i64(mb, "i0", 0, NULL, &zero);
    mb_initializer_i64(mb, "axes", 1, one, &zero);
    mb_initializer_i64(mb, "rest", 1, one, minus);
    mb_node(mb, "Shape", "shape", "x", "s");
    mb_node(mb, "Gather", "gather", "s,i0", "n");
    mb_node(mb, "Unsqueeze", "unsq", "n,axes", "n1");
    mb_node(mb, "Concat", "concat", "n1,rest", "target");
    mb_attr_int(mb, 3, "axis", 0);
    mb_node(mb, "Reshape", "reshape", "x,target", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.orig), 5);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "Reshape"), 1);
    check_same(p, 3, dims);
    free_pair(p);
}

/* With a symbolic batch dim only the static dims fold; the batch path stays computed. */
static void partial_shape_folded(void **state)
{
    const int64_t dims[] = {-1, 3, 4}, one[] = {1}, zero = 0, i1 = 1;
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 3, dims);
    mb_initializer_i64(mb, "i0", 0, NULL, &zero);
    mb_initializer_i64(mb, "i1", 0, NULL, &i1);
    mb_initializer_i64(mb, "axes", 1, one, &zero);
    mb_node(mb, "Shape", "shape", "x", "s");
    mb_node(mb, "Gather", "batch", "s,i0", "b");
    mb_node(mb, "Gather", "chan", "s,i1", "c");
    mb_node(mb, "Unsqueeze", "ub", "b,axes", "b1");
    mb_node(mb, "Unsqueeze", "uc", "c,axes", "c1");
    mb_node(mb, "Concat", "concat", "b1,c1", "target0");
    mb_attr_int(mb, 5, "axis", 0);
    const int64_t tail[] = {-1};
    mb_initializer_i64(mb, "tail", 1, one, tail);
    mb_node(mb, "Concat", "concat2", "target0,tail", "target");
    mb_attr_int(mb, 6, "axis", 0);
    mb_node(mb, "Reshape", "reshape", "x,target", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_op(p.opt, "Gather"), 1);
    assert_int_equal(count_op(p.opt, "Unsqueeze"), 1);
    const int64_t run_dims[] = {5, 3, 4};
    check_same(p, 3, run_dims);
    free_pair(p);
}

/* ---- EXTENDED: Conv ---------------------------------------------------------------------- */

static void conv_inits(mb_model *mb, const char *w, const char *b, int64_t m, int64_t c, int64_t k,
                       unsigned seed)
{
    const int64_t wd[] = {m, c, k, k}, bd[] = {m};
    init_rand(mb, w, 4, wd, seed, -0.5f, 0.5f);
    init_rand(mb, b, 1, bd, seed + 1, -0.5f, 0.5f);
}

static int conv_node(mb_model *mb, const char *name, const char *in, const char *out)
{
    const int64_t pads[] = {1, 1, 1, 1};
    int n = mb_node(mb, "Conv", name, in, out);
    mb_attr_ints(mb, n, "pads", 4, pads);
    return n;
}

static void conv_bn_relu_fused(void **state)
{
    const int64_t dims[] = {1, 3, 8, 8}, cd[] = {4};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 4, dims);
    conv_inits(mb, "W", "B", 4, 3, 3, 1);
    init_rand(mb, "scale", 1, cd, 3, 0.5f, 1.5f);
    init_rand(mb, "bias", 1, cd, 4, -0.5f, 0.5f);
    init_rand(mb, "mean", 1, cd, 5, -0.5f, 0.5f);
    init_rand(mb, "var", 1, cd, 6, 0.2f, 2.0f);
    conv_node(mb, "conv", "x,W,B", "c");
    int bn = mb_node(mb, "BatchNormalization", "bn", "c,scale,bias,mean,var", "n");
    mb_attr_float(mb, bn, "epsilon", 1e-3f);
    mb_node(mb, "Relu", "relu", "n", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "com.microsoft:FusedConv"), 1);
    check_same(p, 4, dims);
    free_pair(p);
}

static void conv_residual_add_relu_fused(void **state)
{
    const int64_t dims[] = {1, 4, 6, 6};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 4, dims);
    conv_inits(mb, "W1", "B1", 4, 4, 3, 1);
    conv_inits(mb, "W2", "B2", 4, 4, 3, 3);
    conv_node(mb, "conv1", "x,W1,B1", "c1");
    mb_node(mb, "Relu", "relu1", "c1", "r1");
    conv_node(mb, "conv2", "r1,W2,B2", "c2");
    mb_node(mb, "Add", "add", "c2,r1", "a");
    mb_node(mb, "Relu", "relu2", "a", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.opt), 2);
    assert_int_equal(count_op(p.opt, "com.microsoft:FusedConv"), 2);
    check_same(p, 4, dims);
    free_pair(p);
}

static void conv_activations_fused(void **state)
{
    static const char *const acts[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid",
                                       "HardSwish", "Clip", NULL};
    const int64_t dims[] = {2, 3, 5, 5};
    for (int i = 0; acts[i]; i++) {
        mb_model *mb = mb_new(14);
        mb_input(mb, "x", F32, 4, dims);
        conv_inits(mb, "W", "B", 4, 3, 3, 10 + i);
        conv_node(mb, "conv", "x,W,B", "c");
        if (strcmp(acts[i], "Clip") == 0) {
            scalar_f32(mb, "lo", -0.5f);
            scalar_f32(mb, "hi", 0.75f);
            mb_node(mb, "Clip", "act", "c,lo,hi", "y");
        } else {
            int n = mb_node(mb, acts[i], "act", "c", "y");
            if (strcmp(acts[i], "LeakyRelu") == 0) mb_attr_float(mb, n, "alpha", 0.2f);
            if (strcmp(acts[i], "HardSigmoid") == 0) {
                mb_attr_float(mb, n, "alpha", 0.3f);
                mb_attr_float(mb, n, "beta", 0.4f);
            }
        }
        mb_output(mb, "y");
        pair p = load_both(mb);
        if (count_op(p.opt, "com.microsoft:FusedConv") != 1 || count_nodes(p.opt) != 1)
            fail_msg("Conv + %s was not fused", acts[i]);
        check_same(p, 4, dims);
        free_pair(p);
    }
}

/* ReLU6 exported as Relu then Clip(0, 6): one FusedConv with the Clip. */
static void conv_relu_clip_merged(void **state)
{
    const int64_t dims[] = {1, 3, 6, 6};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 4, dims);
    conv_inits(mb, "W", "B", 4, 3, 3, 8);
    scalar_f32(mb, "lo", 0.0f);
    scalar_f32(mb, "hi", 0.5f);
    conv_node(mb, "conv", "x,W,B", "c");
    mb_node(mb, "Relu", "relu", "c", "r");
    mb_node(mb, "Clip", "clip", "r,lo,hi", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "com.microsoft:FusedConv"), 1);
    check_same(p, 4, dims);
    free_pair(p);
}

/* A conv result that is also a graph output (or read twice) must stay as it is. */
static void shared_conv_result_not_fused(void **state)
{
    const int64_t dims[] = {1, 3, 5, 5};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 4, dims);
    conv_inits(mb, "W", "B", 4, 3, 3, 2);
    conv_node(mb, "conv", "x,W,B", "c");
    mb_node(mb, "Relu", "relu", "c", "y");
    mb_output(mb, "y");
    mb_output(mb, "c");
    pair p = load_both(mb);
    assert_int_equal(count_op(p.opt, "Conv"), 1);
    assert_int_equal(count_op(p.opt, "Relu"), 1);
    assert_int_equal(count_op(p.opt, "com.microsoft:FusedConv"), 0);
    check_same(p, 4, dims);
    free_pair(p);
}

/* ---- EXTENDED: Gemm ---------------------------------------------------------------------- */

static void matmul_add_relu_to_fused_gemm(void **state)
{
    const int64_t dims[] = {4, 8}, wd[] = {8, 5}, bd[] = {5};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 2, dims);
    init_rand(mb, "W", 2, wd, 1, -1, 1);
    init_rand(mb, "B", 1, bd, 2, -1, 1);
    mb_node(mb, "MatMul", "mm", "x,W", "m");
    mb_node(mb, "Add", "add", "B,m", "a");
    mb_node(mb, "Relu", "relu", "a", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "com.microsoft:FusedGemm"), 1);
    check_same(p, 2, dims);
    free_pair(p);
}

static void gemm_activations_fused(void **state)
{
    static const char *const acts[] = {"Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", NULL};
    const int64_t dims[] = {3, 6}, wd[] = {4, 6}, bd[] = {4};
    for (int i = 0; acts[i]; i++) {
        mb_model *mb = mb_new(13);
        mb_input(mb, "x", F32, 2, dims);
        init_rand(mb, "W", 2, wd, 20 + i, -1, 1);
        init_rand(mb, "B", 1, bd, 30 + i, -1, 1);
        int g = mb_node(mb, "Gemm", "gemm", "x,W,B", "m");
        mb_attr_int(mb, g, "transB", 1);
        mb_attr_float(mb, g, "alpha", 0.5f);
        int n = mb_node(mb, acts[i], "act", "m", "y");
        if (strcmp(acts[i], "LeakyRelu") == 0) mb_attr_float(mb, n, "alpha", 0.1f);
        mb_output(mb, "y");
        pair p = load_both(mb);
        if (count_op(p.opt, "com.microsoft:FusedGemm") != 1 || count_nodes(p.opt) != 1)
            fail_msg("Gemm + %s was not fused", acts[i]);
        check_same(p, 2, dims);
        free_pair(p);
    }
}

/* MatMul + bias + Relu on a [batch, 4, 8] input: Reshape to 2-D, FusedGemm, Reshape back. */
static void matmul_3d_bias_relu_to_fused_gemm(void **state)
{
    const int64_t dims[] = {-1, 4, 8}, wd[] = {8, 5}, bd[] = {5};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 3, dims);
    init_rand(mb, "W", 2, wd, 1, -1, 1);
    init_rand(mb, "B", 1, bd, 2, -1, 1);
    mb_node(mb, "MatMul", "mm", "x,W", "m");
    mb_node(mb, "Add", "add", "m,B", "a");
    mb_node(mb, "Relu", "relu", "a", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_op(p.opt, "com.microsoft:FusedGemm"), 1);
    assert_int_equal(count_op(p.opt, "Reshape"), 2);
    assert_int_equal(count_nodes(p.opt), 3);
    const int64_t run_dims[] = {3, 4, 8};
    check_same(p, 3, run_dims);
    free_pair(p);
}

/* Two unknown leading dims cannot be flattened into one -1: left as it is. */
static void matmul_nd_two_unknown_dims_kept(void **state)
{
    const int64_t dims[] = {-1, -1, 8}, wd[] = {8, 5}, bd[] = {5};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 3, dims);
    init_rand(mb, "W", 2, wd, 1, -1, 1);
    init_rand(mb, "B", 1, bd, 2, -1, 1);
    mb_node(mb, "MatMul", "mm", "x,W", "m");
    mb_node(mb, "Add", "add", "m,B", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_op(p.opt, "MatMul"), 1);
    assert_int_equal(count_op(p.opt, "Add"), 1);
    const int64_t run_dims[] = {2, 2, 8};
    check_same(p, 3, run_dims);
    free_pair(p);
}

/* ---- ALL: LayerNorm and GELU ------------------------------------------------------------- */

static void layernorm_pattern_fused(void **state)
{
    const int64_t dims[] = {2, 5, 16}, cd[] = {16}, last[] = {-1};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", F32, 3, dims);
    init_rand(mb, "gamma", 1, cd, 1, 0.5f, 1.5f);
    init_rand(mb, "beta", 1, cd, 2, -0.5f, 0.5f);
    scalar_f32(mb, "two", 2.0f);
    scalar_f32(mb, "eps", 1e-5f);
    int r1 = mb_node(mb, "ReduceMean", "mean", "x", "mu");
    mb_attr_ints(mb, r1, "axes", 1, last);
    mb_node(mb, "Sub", "sub", "x,mu", "d");
    mb_node(mb, "Pow", "pow", "d,two", "d2");
    int r2 = mb_node(mb, "ReduceMean", "var", "d2", "v");
    mb_attr_ints(mb, r2, "axes", 1, last);
    mb_node(mb, "Add", "add_eps", "v,eps", "ve");
    mb_node(mb, "Sqrt", "sqrt", "ve", "sd");
    mb_node(mb, "Div", "div", "d,sd", "nrm");
    mb_node(mb, "Mul", "scale", "nrm,gamma", "sc");
    mb_node(mb, "Add", "shift", "sc,beta", "y");
    mb_output(mb, "y");
    pair p = load_both(mb);
    assert_int_equal(count_nodes(p.opt), 1);
    assert_int_equal(count_op(p.opt, "LayerNormalization"), 1);
    ferry_value *x = rand_tensor(3, dims, 9);
    check_same_input(p, "x", x, 1e-4);
    ferry_value_free(x);
    free_pair(p);
}

/* Scaled dot-product attention in the three shapes exporters write becomes one FusedAttention;
 * a softmax over another axis is left alone. */
static void attention_patterns_fused(void **state)
{
    const int64_t seq_first[] = {6, 3, 8}, heads[] = {3, 6, 8};
    const int64_t p102[] = {1, 0, 2}, p120[] = {1, 2, 0}, p021[] = {0, 2, 1};
    for (int variant = 0; variant < 4; variant++) {
        mb_model *mb = mb_new(13);
        mb_input(mb, "x", F32, 3, variant == 0 ? seq_first : heads);
        scalar_f32(mb, "c", variant == 0 ? 2.0f : 0.35f);
        mb_node(mb, "Sin", "keys", "x", "k");
        mb_node(mb, "Cos", "values", "x", "v");
        int n;
        if (variant == 0) { /* PyTorch's multi-head attention: [S, N, D] with transposes */
            n = mb_node(mb, "Transpose", "q_heads", "x", "qt");
            mb_attr_ints(mb, n, "perm", 3, p102);
            mb_node(mb, "Div", "q_scaled", "qt,c", "qs");
            n = mb_node(mb, "Transpose", "k_heads", "k", "kt");
            mb_attr_ints(mb, n, "perm", 3, p120);
            n = mb_node(mb, "Transpose", "v_heads", "v", "vt");
            mb_attr_ints(mb, n, "perm", 3, p102);
            mb_node(mb, "MatMul", "scores", "qs,kt", "s");
        } else if (variant == 1 || variant == 3) { /* [N, S, D], K transposed, Mul scale */
            mb_node(mb, "Mul", "q_scaled", "x,c", "qs");
            n = mb_node(mb, "Transpose", "k_t", "k", "kt");
            mb_attr_ints(mb, n, "perm", 3, p021);
            mb_node(mb, "Identity", "v_plain", "v", "vt");
            mb_node(mb, "MatMul", "scores", "qs,kt", "s");
        } else { /* Kᵀ computed directly, no scale */
            n = mb_node(mb, "Transpose", "x_t", "x", "xt");
            mb_attr_ints(mb, n, "perm", 3, p021);
            mb_node(mb, "Sin", "keys_t", "xt", "kt");
            mb_node(mb, "Identity", "v_plain", "v", "vt");
            mb_node(mb, "MatMul", "scores", "x,kt", "s");
        }
        n = mb_node(mb, "Softmax", "softmax", "s", "p");
        mb_attr_int(mb, n, "axis", variant == 3 ? 1 : -1);
        if (variant == 0) {
            mb_node(mb, "MatMul", "context", "p,vt", "ctx");
            n = mb_node(mb, "Transpose", "merge", "ctx", "y");
            mb_attr_ints(mb, n, "perm", 3, p102);
        } else {
            mb_node(mb, "MatMul", "context", "p,vt", "y");
        }
        mb_output(mb, "y");
        pair p = load_both(mb);
        assert_int_equal(count_op(p.opt, "ai.ferry:FusedAttention"), variant == 3 ? 0 : 1);
        assert_int_equal(count_op(p.opt, "Softmax"), variant == 3 ? 1 : 0);
        if (variant == 0) assert_int_equal(count_op(p.opt, "Transpose"), 0);
        ferry_value *x = rand_tensor(3, variant == 0 ? seq_first : heads, 21 + variant);
        check_same_input(p, "x", x, 1e-5);
        ferry_value_free(x);
        free_pair(p);
    }
}

static void gelu_patterns_fused(void **state)
{
    const int64_t dims[] = {3, 10};
    for (int variant = 0; variant < 3; variant++) {
        mb_model *mb = mb_new(13);
        mb_input(mb, "x", F32, 2, dims);
        scalar_f32(mb, "sqrt2", 1.4142135f);
        scalar_f32(mb, "one", 1.0f);
        scalar_f32(mb, "half", 0.5f);
        mb_node(mb, "Div", "div", "x,sqrt2", "t");
        mb_node(mb, "Erf", "erf", "t", "e");
        mb_node(mb, "Add", "add", "e,one", "p");
        if (variant == 0) { /* (x * p) * 0.5 */
            mb_node(mb, "Mul", "mul1", "x,p", "m");
            mb_node(mb, "Mul", "mul2", "m,half", "y");
        } else if (variant == 1) { /* (x * 0.5) * p */
            mb_node(mb, "Mul", "mul1", "x,half", "h");
            mb_node(mb, "Mul", "mul2", "h,p", "y");
        } else { /* x * (p * 0.5) */
            mb_node(mb, "Mul", "mul1", "p,half", "h");
            mb_node(mb, "Mul", "mul2", "x,h", "y");
        }
        mb_output(mb, "y");
        pair p = load_both(mb);
        if (count_op(p.opt, "com.microsoft:Gelu") != 1 || count_nodes(p.opt) != 1)
            fail_msg("GELU variant %d was not fused", variant);
        ferry_value *x = rand_tensor(2, dims, 11);
        check_same_input(p, "x", x, 1e-5);
        ferry_value_free(x);
        free_pair(p);
    }
}

/* ---- reference kernels of the fused ops ---------------------------------------------------- */

/* Run reference kernel (domain, op) of a node with the given attributes on inputs. */
static fy_value *run_ref(const char *domain, const char *op, fy_attr *attrs, int n_attrs,
                         int n_in, fy_value **in)
{
    int ids[4] = {0, 1, 2, 3}, out_id = 9;
    fy_node n = {.name = "n", .op_type = (char *)op, .domain = (char *)domain, .opset = 13,
                 .n_inputs = n_in, .inputs = ids, .n_outputs = 1, .outputs = &out_id,
                 .n_attrs = n_attrs, .attrs = attrs};
    const fy_op *k_op = fy_op_find(domain, op, 13);
    assert_non_null(k_op);
    fy_value *out[1] = {NULL};
    double flops = 0;
    fy_kernel k = {.node = &n, .n_inputs = n_in, .inputs = in, .n_outputs = 1, .outputs = out,
                   .threads = 1, .flops = &flops};
    if (k_op->run(&k) != FERRY_OK) fail_msg("%s failed: %s", op, ferry_last_error());
    return out[0];
}

static void reference_fused_kernels(void **state)
{
    const int64_t xd[] = {1, 2, 5, 5}, wd[] = {3, 2, 3, 3}, bd[] = {3}, zd[] = {1, 3, 2, 2};
    const int64_t strides[] = {2, 2}, ad[] = {3, 5}, gwd[] = {5, 4}, gbd[] = {4};
    fy_value *x = rand_tensor(4, xd, 1), *w = rand_tensor(4, wd, 2), *b = rand_tensor(1, bd, 3);
    fy_value *z = rand_tensor(4, zd, 4);
    fy_attr conv_attrs[3] = {{.name = "strides", .type = FY_ATTR_INTS, .n = 2, .ints = (int64_t *)strides}};
    float clip[] = {-0.5f, 0.5f};
    conv_attrs[1] = (fy_attr){.name = "activation", .type = FY_ATTR_STRING, .s = "Clip", .s_len = 4};
    conv_attrs[2] = (fy_attr){.name = "activation_params", .type = FY_ATTR_FLOATS, .n = 2, .floats = clip};
    fy_value *in[4] = {x, w, b, z};
    fy_value *conv = run_ref("", "Conv", conv_attrs, 1, 3, in);
    fy_value *fused = run_ref("com.microsoft", "FusedConv", conv_attrs, 3, 4, in);
    assert_int_equal(fused->count, conv->count);
    const float *c = conv->data, *f = fused->data, *zz = z->data;
    for (int64_t i = 0; i < conv->count; i++) {
        float want = c[i] + zz[i];
        want = want < -0.5f ? -0.5f : want > 0.5f ? 0.5f : want;
        assert_float_equal(f[i], want, 1e-6);
    }
    fy_value_unref(conv), fy_value_unref(fused);

    fy_value *a = rand_tensor(2, ad, 5), *gw = rand_tensor(2, gwd, 6), *gb = rand_tensor(1, gbd, 7);
    fy_attr gemm_attrs[3] = {{.name = "alpha", .type = FY_ATTR_FLOAT, .f = 0.5f}};
    gemm_attrs[1] = (fy_attr){.name = "activation", .type = FY_ATTR_STRING, .s = "LeakyRelu", .s_len = 9};
    gemm_attrs[2] = (fy_attr){.name = "activation_alpha", .type = FY_ATTR_FLOAT, .f = 0.25f};
    fy_value *gin[3] = {a, gw, gb};
    fy_value *gemm = run_ref("", "Gemm", gemm_attrs, 1, 3, gin);
    fy_value *fgemm = run_ref("com.microsoft", "FusedGemm", gemm_attrs, 3, 3, gin);
    const float *gp = gemm->data, *fp = fgemm->data;
    for (int64_t i = 0; i < gemm->count; i++)
        assert_float_equal(fp[i], gp[i] < 0 ? 0.25f * gp[i] : gp[i], 1e-6);
    fy_value_unref(gemm), fy_value_unref(fgemm);
    fy_value_unref(x), fy_value_unref(w), fy_value_unref(b), fy_value_unref(z);
    fy_value_unref(a), fy_value_unref(gw), fy_value_unref(gb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identity_and_dropout_removed),
        cmocka_unit_test(identity_between_graph_values_kept),
        cmocka_unit_test(dropout_with_mask_kept),
        cmocka_unit_test(constants_folded),
        cmocka_unit_test(static_shape_chain_folded),
        cmocka_unit_test(partial_shape_folded),
        cmocka_unit_test(conv_bn_relu_fused),
        cmocka_unit_test(conv_residual_add_relu_fused),
        cmocka_unit_test(conv_activations_fused),
        cmocka_unit_test(conv_relu_clip_merged),
        cmocka_unit_test(shared_conv_result_not_fused),
        cmocka_unit_test(matmul_add_relu_to_fused_gemm),
        cmocka_unit_test(gemm_activations_fused),
        cmocka_unit_test(matmul_3d_bias_relu_to_fused_gemm),
        cmocka_unit_test(matmul_nd_two_unknown_dims_kept),
        cmocka_unit_test(layernorm_pattern_fused),
        cmocka_unit_test(gelu_patterns_fused),
        cmocka_unit_test(attention_patterns_fused),
        cmocka_unit_test(reference_fused_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
