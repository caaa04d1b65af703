/* fused.c — reference kernels of the fused ops the graph passes create, with ONNX Runtime's
 * contrib-op semantics: FusedConv Y = act(Conv(X, W, B) + Z) and FusedGemm Y = act(Gemm(A, B, C)).
 * The convolution and matrix product are the reference Conv and Gemm kernels themselves. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/kernel.h"

ferry_status fy_op_Conv(fy_kernel *k);
ferry_status fy_op_Gemm(fy_kernel *k);

typedef enum act_kind {
    ACT_NONE,
    ACT_RELU,
    ACT_LEAKY_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    ACT_HARD_SIGMOID,
    ACT_HARD_SWISH,
    ACT_CLIP,
} act_kind;

typedef struct fused_act {
    act_kind kind;
    double a, b;
} fused_act;

/* activation + its parameters: FusedConv lists them in activation_params, FusedGemm names them
 * activation_alpha / activation_beta. */
static ferry_status parse_activation(const fy_kernel *k, bool gemm, fused_act *act)
{
    const char *name = fy_attr_string(k, "activation", "");
    const float *params = NULL;
    int64_t np = gemm ? -1 : fy_attr_floats(k, "activation_params", &params);
    /* parameter i: from the list, else the named attribute, else def */
    #define PARAM(i, attr, def)                                                                     \
        (np > (i) ? (double)params[i] : gemm ? (double)fy_attr_float(k, attr, def) : (double)(def))
    memset(act, 0, sizeof *act);
    if (!name[0] || strcmp(name, "Identity") == 0) act->kind = ACT_NONE;
    else if (strcmp(name, "Relu") == 0) act->kind = ACT_RELU;
    else if (strcmp(name, "Sigmoid") == 0) act->kind = ACT_SIGMOID;
    else if (strcmp(name, "Tanh") == 0) act->kind = ACT_TANH;
    else if (strcmp(name, "HardSwish") == 0) act->kind = ACT_HARD_SWISH;
    else if (strcmp(name, "LeakyRelu") == 0) {
        act->kind = ACT_LEAKY_RELU;
        act->a = PARAM(0, "activation_alpha", 0.01f);
    } else if (strcmp(name, "HardSigmoid") == 0) {
        act->kind = ACT_HARD_SIGMOID;
        act->a = PARAM(0, "activation_alpha", 0.2f);
        act->b = PARAM(1, "activation_beta", 0.5f);
    } else if (strcmp(name, "Clip") == 0) {
        act->kind = ACT_CLIP;
        act->a = PARAM(0, "activation_alpha", -FLT_MAX);
        act->b = PARAM(1, "activation_beta", FLT_MAX);
    } else {
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "activation \"%s\" is not supported", name);
    }
    #undef PARAM
    return FERRY_OK;
}

static inline double apply_d(const fused_act *act, double x)
{
    switch (act->kind) {
    case ACT_NONE: return x;
    case ACT_RELU: return x < 0 ? 0 : x;
    case ACT_LEAKY_RELU: return x < 0 ? act->a * x : x;
    case ACT_SIGMOID: return 1 / (1 + exp(-x));
    case ACT_TANH: return tanh(x);
    case ACT_HARD_SIGMOID: return fmax(0, fmin(1, act->a * x + act->b));
    case ACT_HARD_SWISH: return x * fmax(0, fmin(1, x / 6 + 0.5));
    case ACT_CLIP: return x < act->a ? act->a : x > act->b ? act->b : x;
    }
    return x;
}

/* y = act(y + z) in place over a float32 tensor; z may be NULL. */
static void finish_f32(const fused_act *act, float *y, const float *z, int64_t n)
{
    float a = (float)act->a, b = (float)act->b;
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = y[i] + (z ? z[i] : 0.0f);
        switch (act->kind) {
        case ACT_NONE: break;
        case ACT_RELU: x = x < 0 ? 0 : x; break;
        case ACT_LEAKY_RELU: x = x < 0 ? a * x : x; break;
        case ACT_SIGMOID: x = 1 / (1 + expf(-x)); break;
        case ACT_TANH: x = tanhf(x); break;
        case ACT_HARD_SIGMOID: x = fmaxf(0, fminf(1, a * x + b)); break;
        case ACT_HARD_SWISH: x = x * fmaxf(0, fminf(1, x * (1.0f / 6) + 0.5f)); break;
        case ACT_CLIP: x = x < a ? a : x > b ? b : x; break;
        }
        y[i] = x;
    }
}

static ferry_status finish(fy_kernel *k, const fused_act *act, fy_value *y, const fy_value *z)
{
    if (z && (z->dtype != y->dtype || !fy_shape_equal(z->rank, z->dims, y->rank, y->dims))) {
        char zs[128], ys[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "Z %s %s does not match Y %s %s",
                               ferry_dtype_name(z->dtype), fy_shape_str(z->rank, z->dims, zs, sizeof zs),
                               ferry_dtype_name(y->dtype), fy_shape_str(y->rank, y->dims, ys, sizeof ys));
    }
    if (act->kind == ACT_NONE && !z) return FERRY_OK;
    if (y->dtype == FERRY_DTYPE_F32) {
        finish_f32(act, y->data, z ? z->data : NULL, y->count);
        return FERRY_OK;
    }
    for (int64_t i = 0; i < y->count; i++) /* f64, f16, bf16: rare, exact enough in double */
        fy_tensor_set_f64(y, i, apply_d(act, fy_tensor_get_f64(y, i) + (z ? fy_tensor_get_f64(z, i) : 0)));
    return FERRY_OK;
}

/* Run `base` (Conv or Gemm) on the first three inputs, then finish its output in place. */
static ferry_status run_fused(fy_kernel *k, fy_kernel_fn base, bool gemm)
{
    fused_act act;
    FY_CHECK(parse_activation(k, gemm, &act));
    const fy_value *z = NULL;
    if (!gemm) FY_CHECK(fy_input_tensor_opt(k, 3, &z));
    fy_kernel sub = *k;
    sub.n_inputs = k->n_inputs < 3 ? k->n_inputs : 3;
    FY_CHECK(base(&sub));
    fy_value *y = k->outputs[0];
    if (!y || y->kind != FERRY_VALUE_TENSOR)
        return fy_kernel_error(k, FERRY_E_INTERNAL, "base kernel produced no tensor");
    return finish(k, &act, y, z);
}

ferry_status fy_op_FusedConv(fy_kernel *k) { return run_fused(k, fy_op_Conv, false); }

ferry_status fy_op_FusedGemm(fy_kernel *k) { return run_fused(k, fy_op_Gemm, true); }
