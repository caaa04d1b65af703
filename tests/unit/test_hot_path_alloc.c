/* test_hot_path_alloc.c — once a session has run, later runs of the same shapes allocate nothing
 * in ferry's own code: tensors, their headers, blocked-layout descriptors and per-run tables all
 * come from the session's pool or the stack. malloc and friends are interposed here and count
 * the calls whose immediate caller lies in this executable (libferry is linked in statically);
 * calls made inside oneDNN, OpenMP or libstdc++ are theirs and not counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "model_builder.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1 /* the sanitizer owns malloc: nothing to interpose */
#else
#define SANITIZED 0
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern char __executable_start[], etext[];

static int counting;
static long own_allocations;

static void note(const void *caller)
{
    if (counting && (const char *)caller >= __executable_start && (const char *)caller < etext)
        __atomic_add_fetch(&own_allocations, 1, __ATOMIC_RELAXED);
}
void *malloc(size_t n)
{
    note(__builtin_return_address(0));
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    note(__builtin_return_address(0));
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    note(__builtin_return_address(0));
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n)
{
    note(__builtin_return_address(0));
    return __libc_memalign(align, n);
}
int posix_memalign(void **p, size_t align, size_t n)
{
    note(__builtin_return_address(0));
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12;
}
#endif

static void fill(float *w, int n, float scale)
{
    for (int i = 0; i < n; i++) w[i] = scale * (float)((i * 37 % 17) - 8) / 8.0f;
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

/* Gemm, Relu, Gemm: the small-batch GEMV path and the fused activation. */
static ferry_model *mlp(void)
{
    static float w1[16 * 32], b1[32], w2[32 * 4];
    fill(w1, 16 * 32, 0.5f), fill(b1, 32, 0.1f), fill(w2, 32 * 4, 0.5f);
    const int64_t x[] = {-1, 16}, d1[] = {16, 32}, db[] = {32}, d2[] = {32, 4};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 2, x);
    mb_initializer_f32(mb, "w1", 2, d1, w1);
    mb_initializer_f32(mb, "b1", 1, db, b1);
    mb_initializer_f32(mb, "w2", 2, d2, w2);
    mb_node(mb, "Gemm", "fc1", "x,w1,b1", "h");
    mb_node(mb, "Relu", "act", "h", "a");
    mb_node(mb, "Gemm", "fc2", "a,w2", "y");
    mb_output(mb, "y");
    return load(mb);
}

/* Conv, BatchNorm, Relu, MaxPool, Conv + residual Add, GlobalAveragePool, Flatten, Gemm: the
 * oneDNN path with blocked layouts kept between kernels and turned plain at the end. */
static ferry_model *cnn(void)
{
    static float w1[8 * 3 * 9], b1[8], w2[8 * 8 * 9], sc[8], bi[8], mu[8], var[8], fc[8 * 4];
    fill(w1, 8 * 3 * 9, 0.3f), fill(b1, 8, 0.1f), fill(w2, 8 * 8 * 9, 0.2f), fill(fc, 32, 0.5f);
    for (int i = 0; i < 8; i++) sc[i] = 1.0f + 0.1f * i, bi[i] = 0.05f * i, mu[i] = 0, var[i] = 1;
    const int64_t x[] = {1, 3, 16, 16}, dw1[] = {8, 3, 3, 3}, dc[] = {8}, dw2[] = {8, 8, 3, 3},
                  dfc[] = {8, 4};
    const int64_t pads[] = {1, 1, 1, 1}, k2[] = {2, 2};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 4, x);
    mb_initializer_f32(mb, "w1", 4, dw1, w1);
    mb_initializer_f32(mb, "b1", 1, dc, b1);
    mb_initializer_f32(mb, "w2", 4, dw2, w2);
    mb_initializer_f32(mb, "scale", 1, dc, sc);
    mb_initializer_f32(mb, "bias", 1, dc, bi);
    mb_initializer_f32(mb, "mean", 1, dc, mu);
    mb_initializer_f32(mb, "var", 1, dc, var);
    mb_initializer_f32(mb, "fc", 2, dfc, fc);
    int n = mb_node(mb, "Conv", "conv1", "x,w1,b1", "c1");
    mb_attr_ints(mb, n, "pads", 4, pads);
    mb_node(mb, "BatchNormalization", "bn", "c1,scale,bias,mean,var", "n1");
    mb_node(mb, "Relu", "relu", "n1", "r1");
    n = mb_node(mb, "MaxPool", "pool", "r1", "p1");
    mb_attr_ints(mb, n, "kernel_shape", 2, k2);
    mb_attr_ints(mb, n, "strides", 2, k2);
    n = mb_node(mb, "Conv", "conv2", "p1,w2", "c2");
    mb_attr_ints(mb, n, "pads", 4, pads);
    mb_node(mb, "Add", "residual", "c2,p1", "s");
    mb_node(mb, "GlobalAveragePool", "gap", "s", "g");
    mb_node(mb, "Flatten", "flat", "g", "f");
    mb_node(mb, "Gemm", "head", "f,fc", "y");
    mb_output(mb, "y");
    return load(mb);
}

/* One self-attention head and what surrounds it in a transformer: MatMul, Reshape, Transpose,
 * scaled scores, Softmax, residual Add, LayerNormalization, erf-GELU, Gather. */
static ferry_model *attention(void)
{
    static float wq[16 * 16], ln_s[16], ln_b[16], scale[1] = {2.828427f}, half[1] = {0.5f},
                 one[1] = {1.0f}, rsqrt2[1] = {0.70710678f};
    fill(wq, 256, 0.25f);
    for (int i = 0; i < 16; i++) ln_s[i] = 1.0f, ln_b[i] = 0.01f * i;
    const int64_t x[] = {1, 8, 16}, dw[] = {16, 16}, d16[] = {16}, d1[] = {1}, d4[] = {4},
                  d2[] = {2};
    const int64_t split[] = {1, 8, 2, 8}, merged[] = {1, 8, 16}, pick[] = {0, 3};
    const int64_t perm[] = {0, 2, 1, 3}, permk[] = {0, 1, 3, 2};
    mb_model *mb = mb_new(17);
    mb_input(mb, "x", 1, 3, x);
    mb_initializer_f32(mb, "wq", 2, dw, wq);
    mb_initializer_f32(mb, "ln_s", 1, d16, ln_s);
    mb_initializer_f32(mb, "ln_b", 1, d16, ln_b);
    mb_initializer_f32(mb, "scale", 1, d1, scale);
    mb_initializer_f32(mb, "half", 1, d1, half);
    mb_initializer_f32(mb, "one", 1, d1, one);
    mb_initializer_f32(mb, "rsqrt2", 1, d1, rsqrt2);
    mb_initializer_i64(mb, "split", 1, d4, split);
    mb_initializer_i64(mb, "merged", 1, (int64_t[]){3}, merged);
    mb_initializer_i64(mb, "pick", 1, d2, pick);
    mb_node(mb, "MatMul", "proj", "x,wq", "q");
    mb_node(mb, "Reshape", "heads", "q,split", "qh");
    int n = mb_node(mb, "Transpose", "to_bhsd", "qh", "qt");
    mb_attr_ints(mb, n, "perm", 4, perm);
    n = mb_node(mb, "Transpose", "keys", "qt", "kt");
    mb_attr_ints(mb, n, "perm", 4, permk);
    mb_node(mb, "MatMul", "scores", "qt,kt", "sc");
    mb_node(mb, "Div", "scaled", "sc,scale", "ss");
    n = mb_node(mb, "Softmax", "softmax", "ss", "p");
    mb_attr_int(mb, n, "axis", -1);
    mb_node(mb, "MatMul", "context", "p,qt", "c");
    n = mb_node(mb, "Transpose", "to_bshd", "c", "ct");
    mb_attr_ints(mb, n, "perm", 4, perm);
    mb_node(mb, "Reshape", "merge", "ct,merged", "cm");
    mb_node(mb, "Add", "residual", "cm,x", "r");
    n = mb_node(mb, "LayerNormalization", "ln", "r,ln_s,ln_b", "l");
    mb_attr_int(mb, n, "axis", -1);
    mb_node(mb, "Mul", "gelu_scale", "l,rsqrt2", "g1");
    mb_node(mb, "Erf", "gelu_erf", "g1", "g2");
    mb_node(mb, "Add", "gelu_one", "g2,one", "g3");
    mb_node(mb, "Mul", "gelu_x", "l,g3", "g4");
    mb_node(mb, "Mul", "gelu_half", "g4,half", "g");
    n = mb_node(mb, "Gather", "tokens", "g,pick", "y");
    mb_attr_int(mb, n, "axis", 1);
    mb_output(mb, "y");
    return load(mb);
}

/* Warm the session up, then count ferry's own allocations over several more runs. */
static long allocations_after_warmup(ferry_model *m, int64_t batch, int threads)
{
    ferry_session_options opts = {0};
    opts.threads = threads;
    ferry_session *s;
    assert_int_equal(ferry_session_create(m, &opts, &s), FERRY_OK);
    ferry_io_info io;
    assert_int_equal(ferry_model_input(m, 0, &io), FERRY_OK);
    int64_t dims[8];
    for (int i = 0; i < io.rank; i++) dims[i] = io.dims[i] < 0 ? batch : io.dims[i];
    ferry_value *x, *y;
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, io.rank, dims, &x), FERRY_OK);
    fill(ferry_tensor_data(x), (int)ferry_tensor_count(x), 1.0f);
    const char *names[] = {io.name};
    long counted = 0;
    for (int run = 0; run < 8; run++) {
#if !SANITIZED
        if (run == 3) own_allocations = 0, counting = 1;
#endif
        assert_int_equal(ferry_session_run(s, 1, names, &x, &y), FERRY_OK);
        ferry_value_free(y);
    }
#if !SANITIZED
    counting = 0;
    counted = own_allocations;
#endif
    ferry_value_free(x);
    ferry_session_free(s);
    ferry_model_free(m);
    return counted;
}

static void skip_if_sanitized(void)
{
    if (SANITIZED) skip();
}

static void mlp_runs_allocate_nothing(void **state)
{
    skip_if_sanitized();
    assert_int_equal(allocations_after_warmup(mlp(), 1, 1), 0);
    assert_int_equal(allocations_after_warmup(mlp(), 64, 2), 0);
}

static void cnn_runs_allocate_nothing(void **state)
{
    skip_if_sanitized();
    assert_int_equal(allocations_after_warmup(cnn(), 1, 2), 0);
}

static void attention_runs_allocate_nothing(void **state)
{
    skip_if_sanitized();
    assert_int_equal(allocations_after_warmup(attention(), 1, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mlp_runs_allocate_nothing),
        cmocka_unit_test(cnn_runs_allocate_nothing),
        cmocka_unit_test(attention_runs_allocate_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
