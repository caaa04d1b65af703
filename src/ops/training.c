/* training.c — the ai.onnx.preview.training optimizers Adagrad, Adam and Momentum: one update
 * step of every (X, G, state...) group, following the formulas in the ONNX operator docs. */
#include <math.h>
#include <string.h>

#include "ops/kernel.h"

/* An optimizer node: inputs R, T, then n_tensors groups of n tensors (X..., G..., S1..., ...);
 * outputs the new X... and the new states. */
typedef struct opt_io {
    int n;     /* tensors being optimized */
    double r;  /* learning rate */
    int64_t t; /* update count */
} opt_io;

/* Check the R/T scalars and that every group i has tensors of one shape and float dtype;
 * groups = tensors per optimized value among the inputs (X, G and the states). */
static ferry_status opt_setup(fy_kernel *k, int groups, int out_groups, opt_io *io)
{
    if (k->n_inputs < 2 || (k->n_inputs - 2) % groups != 0)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                               "expects R, T and %d tensors per optimized value, got %d inputs",
                               groups, k->n_inputs);
    io->n = (k->n_inputs - 2) / groups;
    if (k->n_outputs != out_groups * io->n)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "expects %d outputs, got %d",
                               out_groups * io->n, k->n_outputs);
    const fy_value *r, *t;
    FY_CHECK(fy_input_tensor(k, 0, &r));
    FY_CHECK(fy_input_tensor(k, 1, &t));
    if (!fy_dtype_is_float(r->dtype) || r->count != 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "R must be a float scalar");
    if (!fy_dtype_is_int(t->dtype) || t->count != 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "T must be an integer scalar");
    io->r = fy_tensor_get_f64(r, 0);
    io->t = fy_tensor_get_i64(t, 0);
    for (int i = 0; i < io->n; i++) {
        const fy_value *x;
        FY_CHECK(fy_input_tensor(k, 2 + i, &x));
        if (x->dtype != FERRY_DTYPE_F32 && x->dtype != FERRY_DTYPE_F64)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "input %d: dtype %s is not supported",
                                   2 + i, ferry_dtype_name(x->dtype));
        for (int gi = 1; gi < groups; gi++) {
            const fy_value *o;
            int idx = 2 + gi * io->n + i;
            FY_CHECK(fy_input_tensor(k, idx, &o));
            if (o->dtype != x->dtype || !fy_shape_equal(o->rank, o->dims, x->rank, x->dims))
                return fy_kernel_error(k, FERRY_E_SHAPE,
                                       "input %d must match input %d in dtype and shape", idx,
                                       2 + i);
        }
    }
    return FERRY_OK;
}

/* Element j of input (2 + group * n + i) as double. */
static double in_at(const fy_kernel *k, const opt_io *io, int group, int i, int64_t j)
{
    const fy_value *t = k->inputs[2 + group * io->n + i];
    return t->dtype == FERRY_DTYPE_F32 ? ((const float *)t->data)[j] : ((const double *)t->data)[j];
}

static void out_at(fy_value *t, int64_t j, double v)
{
    if (t->dtype == FERRY_DTYPE_F32)
        ((float *)t->data)[j] = (float)v;
    else
        ((double *)t->data)[j] = v;
}

/* Outputs (group * n + i) for every i, shaped like X_i. */
static ferry_status make_outputs(fy_kernel *k, const opt_io *io, int out_groups, int i,
                                 fy_value **outs)
{
    const fy_value *x = k->inputs[2 + i];
    for (int gi = 0; gi < out_groups; gi++)
        FY_CHECK(fy_output(k, gi * io->n + i, x->dtype, x->rank, x->dims, &outs[gi]));
    return FERRY_OK;
}

ferry_status fy_op_Adagrad(fy_kernel *k)
{
    opt_io io;
    FY_CHECK(opt_setup(k, 3, 2, &io));
    double decay = fy_attr_float(k, "decay_factor", 0.0f);
    double eps = fy_attr_float(k, "epsilon", 0.0f);
    double norm = fy_attr_float(k, "norm_coefficient", 0.0f);
    double r = io.r / (1.0 + (double)io.t * decay);
    for (int i = 0; i < io.n; i++) {
        fy_value *o[2];
        FY_CHECK(make_outputs(k, &io, 2, i, o));
        for (int64_t j = 0; j < o[0]->count; j++) {
            double x = in_at(k, &io, 0, i, j), g = norm * x + in_at(k, &io, 1, i, j);
            double h = in_at(k, &io, 2, i, j) + g * g;
            out_at(o[0], j, x - r * g / (sqrt(h) + eps));
            out_at(o[1], j, h);
        }
    }
    return FERRY_OK;
}

ferry_status fy_op_Momentum(fy_kernel *k)
{
    opt_io io;
    FY_CHECK(opt_setup(k, 3, 2, &io));
    double alpha = fy_attr_float(k, "alpha", 0.0f);
    double beta = fy_attr_float(k, "beta", 0.0f);
    double norm = fy_attr_float(k, "norm_coefficient", 0.0f);
    const char *mode = fy_attr_string(k, "mode", "standard");
    int nesterov;
    if (strcmp(mode, "standard") == 0)
        nesterov = 0;
    else if (strcmp(mode, "nesterov") == 0)
        nesterov = 1;
    else
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "mode \"%s\" is not standard or nesterov",
                               mode);
    double beta_adj = io.t > 0 ? beta : 1.0; /* the first step takes the whole gradient */
    for (int i = 0; i < io.n; i++) {
        fy_value *o[2];
        FY_CHECK(make_outputs(k, &io, 2, i, o));
        for (int64_t j = 0; j < o[0]->count; j++) {
            double x = in_at(k, &io, 0, i, j), g = norm * x + in_at(k, &io, 1, i, j);
            double v = alpha * in_at(k, &io, 2, i, j) + beta_adj * g;
            out_at(o[0], j, nesterov ? x - io.r * (g + alpha * v) : x - io.r * v);
            out_at(o[1], j, v);
        }
    }
    return FERRY_OK;
}

ferry_status fy_op_Adam(fy_kernel *k)
{
    opt_io io;
    FY_CHECK(opt_setup(k, 4, 3, &io));
    double alpha = fy_attr_float(k, "alpha", 0.9f);
    double beta = fy_attr_float(k, "beta", 0.999f);
    double eps = fy_attr_float(k, "epsilon", 1e-6f);
    double norm = fy_attr_float(k, "norm_coefficient", 0.0f);
    double norm_post = fy_attr_float(k, "norm_coefficient_post", 0.0f);
    double r = io.r;
    if (io.t > 0) /* bias correction */
        r = io.r * sqrt(1.0 - pow(beta, (double)io.t)) / (1.0 - pow(alpha, (double)io.t));
    for (int i = 0; i < io.n; i++) {
        fy_value *o[3];
        FY_CHECK(make_outputs(k, &io, 3, i, o));
        for (int64_t j = 0; j < o[0]->count; j++) {
            double x = in_at(k, &io, 0, i, j), g = norm * x + in_at(k, &io, 1, i, j);
            double v = alpha * in_at(k, &io, 2, i, j) + (1.0 - alpha) * g;
            double h = beta * in_at(k, &io, 3, i, j) + (1.0 - beta) * g * g;
            double xn = x - r * v / (sqrt(h) + eps);
            out_at(o[0], j, (1.0 - norm_post) * xn);
            out_at(o[1], j, v);
            out_at(o[2], j, h);
        }
    }
    return FERRY_OK;
}
