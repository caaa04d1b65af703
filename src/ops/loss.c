/* loss.c — the training losses ONNX defines as inference ops: NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss (which is log-softmax followed by the same NLL reduction). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* Both ops see their input as [N, C, D] (D = product of the trailing dims, 1 for 2-D input)
 * and their labels as [N, D]. Everything is computed in double and stored in the input's
 * float type, which keeps float16/bfloat16 on one path. */

typedef enum reduction { RED_NONE, RED_SUM, RED_MEAN } reduction;

static ferry_status parse_reduction(const fy_kernel *k, reduction *r)
{
    const char *s = fy_attr_string(k, "reduction", "mean");
    if (!strcmp(s, "none"))
        *r = RED_NONE;
    else if (!strcmp(s, "sum"))
        *r = RED_SUM;
    else if (!strcmp(s, "mean"))
        *r = RED_MEAN;
    else
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "unknown reduction \"%s\"", s);
    return FERRY_OK;
}

static bool is_loss_float(ferry_dtype t)
{
    return t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_F64 || t == FERRY_DTYPE_F16 ||
           t == FERRY_DTYPE_BF16;
}

/* Check input / labels / weights against each other; fills N, C, D. */
static ferry_status check_loss_inputs(const fy_kernel *k, const fy_value *x, const fy_value *lab,
                                      const fy_value *w, int64_t *N, int64_t *C, int64_t *D)
{
    if (!is_loss_float(x->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 0 must be a float tensor, got %s",
                               ferry_dtype_name(x->dtype));
    if (lab->dtype != FERRY_DTYPE_I32 && lab->dtype != FERRY_DTYPE_I64)
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 1 must be int32 or int64, got %s",
                               ferry_dtype_name(lab->dtype));
    if (x->rank < 2)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 must have rank >= 2, got %d", x->rank);
    bool ok = lab->rank == x->rank - 1 && lab->dims[0] == x->dims[0];
    for (int i = 1; ok && i < lab->rank; i++)
        ok = lab->dims[i] == x->dims[i + 1];
    if (!ok) {
        char s1[128], s2[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "labels %s do not fit input %s",
                               fy_shape_str(lab->rank, lab->dims, s1, sizeof s1),
                               fy_shape_str(x->rank, x->dims, s2, sizeof s2));
    }
    *N = x->dims[0];
    *C = x->dims[1];
    *D = 1;
    for (int i = 2; i < x->rank; i++)
        *D *= x->dims[i];
    if (w) {
        if (w->dtype != x->dtype)
            return fy_kernel_error(k, FERRY_E_DTYPE, "weights are %s, input is %s",
                                   ferry_dtype_name(w->dtype), ferry_dtype_name(x->dtype));
        if (w->rank != 1 || w->count != *C)
            return fy_kernel_error(k, FERRY_E_SHAPE, "weights must be 1-D with %lld values",
                                   (long long)*C);
    }
    return FERRY_OK;
}

/* The NLL step on log-probabilities logp[N][C][D]: writes output 0. */
static ferry_status nll(fy_kernel *k, const double *logp, int64_t N, int64_t C, int64_t D,
                        const fy_value *lab, const fy_value *w, ferry_dtype t)
{
    reduction red = RED_MEAN;
    FY_CHECK(parse_reduction(k, &red));
    const fy_attr *ia = fy_attr_get(k, "ignore_index");
    bool has_ignore = ia && ia->type == FY_ATTR_INT;
    int64_t ignore = has_ignore ? ia->i : 0;

    fy_value *out;
    if (red == RED_NONE)
        FY_CHECK(fy_output(k, 0, t, lab->rank, lab->dims, &out));
    else
        FY_CHECK(fy_output(k, 0, t, 0, NULL, &out));

    double sum = 0, wsum = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            int64_t i = n * D + d;
            int64_t c = fy_tensor_get_i64(lab, i);
            double l = 0, wt = 0;
            if (!(has_ignore && c == ignore)) {
                if (c < 0 || c >= C)
                    return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                           "label %lld at %lld is out "
                                           "of range [0, %lld)",
                                           (long long)c, (long long)i, (long long)C);
                wt = w ? fy_tensor_get_f64(w, c) : 1.0;
                l = -logp[(n * C + c) * D + d] * wt;
            }
            if (red == RED_NONE) fy_tensor_set_f64(out, i, l);
            sum += l;
            wsum += wt;
        }
    if (red == RED_SUM) {
        fy_tensor_set_f64(out, 0, sum);
    } else if (red == RED_MEAN) {
        /* with weights or an ignore_index the mean is over the applied weights */
        double den = (w || has_ignore) ? wsum : (double)(N * D);
        fy_tensor_set_f64(out, 0, sum / den);
    }
    return FERRY_OK;
}

ferry_status fy_op_NegativeLogLikelihoodLoss(fy_kernel *k)
{
    const fy_value *x, *lab, *w;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &lab));
    FY_CHECK(fy_input_tensor_opt(k, 2, &w));
    int64_t N = 0, C = 0, D = 0;
    FY_CHECK(check_loss_inputs(k, x, lab, w, &N, &C, &D));
    double *logp = malloc(sizeof(double) * (size_t)(x->count + 1));
    if (!logp) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < x->count; i++)
        logp[i] = fy_tensor_get_f64(x, i);
    ferry_status rc = nll(k, logp, N, C, D, lab, w, x->dtype);
    free(logp);
    return rc;
}

ferry_status fy_op_SoftmaxCrossEntropyLoss(fy_kernel *k)
{
    const fy_value *x, *lab, *w;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    FY_CHECK(fy_input_tensor(k, 1, &lab));
    FY_CHECK(fy_input_tensor_opt(k, 2, &w));
    int64_t N = 0, C = 0, D = 0;
    FY_CHECK(check_loss_inputs(k, x, lab, w, &N, &C, &D));
    double *logp = malloc(sizeof(double) * (size_t)(x->count + 1));
    if (!logp) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    /* log-softmax over C for every (n, d) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            const int64_t base = n * C * D + d;
            double mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++) {
                double v = fy_tensor_get_f64(x, base + c * D);
                logp[base + c * D] = v;
                if (v > mx) mx = v;
            }
            for (int64_t c = 0; c < C; c++)
                s += exp(logp[base + c * D] - mx);
            double lse = mx + log(s);
            for (int64_t c = 0; c < C; c++)
                logp[base + c * D] -= lse;
        }
    ferry_status rc = nll(k, logp, N, C, D, lab, w, x->dtype);
    if (rc == FERRY_OK && fy_output_wanted(k, 1)) {
        fy_value *lp;
        rc = fy_output(k, 1, x->dtype, x->rank, x->dims, &lp);
        if (rc == FERRY_OK)
            for (int64_t i = 0; i < x->count; i++)
                fy_tensor_set_f64(lp, i, logp[i]);
    }
    free(logp);
    return rc;
}
