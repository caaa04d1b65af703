/* rnn.c — the recurrent ops RNN, GRU and LSTM (opsets 1..14+: layout from 14), all directions,
 * activations, clip, sequence_lens, peepholes. The loop itself lives in rnn_core.h. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/nn_util.h"

typedef enum rnn_kind { RNN_PLAIN, RNN_GRU, RNN_LSTM } rnn_kind;

enum {
    ACT_RELU,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_AFFINE,
    ACT_LEAKYRELU,
    ACT_THRESHOLDEDRELU,
    ACT_SCALEDTANH,
    ACT_HARDSIGMOID,
    ACT_ELU,
    ACT_SOFTSIGN,
    ACT_SOFTPLUS,
};

typedef struct rnn_act {
    int kind;
    float alpha, beta;
} rnn_act;

/* n_params: how many of activation_alpha (1) and activation_beta (2) the function consumes;
 * the defaults are those of the corresponding ONNX operators. */
static const struct {
    const char *name;
    int kind;
    int n_params;
    float alpha, beta;
} act_table[] = {
    {"relu", ACT_RELU, 0, 0, 0},
    {"tanh", ACT_TANH, 0, 0, 0},
    {"sigmoid", ACT_SIGMOID, 0, 0, 0},
    {"affine", ACT_AFFINE, 2, 1.0f, 0.0f},
    {"leakyrelu", ACT_LEAKYRELU, 1, 0.01f, 0},
    {"thresholdedrelu", ACT_THRESHOLDEDRELU, 1, 1.0f, 0},
    {"scaledtanh", ACT_SCALEDTANH, 2, 1.0f, 1.0f},
    {"hardsigmoid", ACT_HARDSIGMOID, 2, 0.2f, 0.5f},
    {"elu", ACT_ELU, 1, 1.0f, 0},
    {"softsign", ACT_SOFTSIGN, 0, 0, 0},
    {"softplus", ACT_SOFTPLUS, 0, 0, 0},
};

typedef struct rnn_cfg {
    rnn_kind kind;
    int gates; /* 1, 3 or 4 */
    int64_t seq, batch, input, hidden;
    int dirs;
    int reverse[2];
    int layout;
    rnn_act act[2][3];
    int has_clip;
    float clip;
    int lbr;             /* GRU linear_before_reset */
    int input_forget;    /* LSTM coupled input/forget gate */
    const int64_t *lens; /* per batch entry, or NULL for all seq */
} rnn_cfg;

#define RT        float
#define SFX(name) name##_f32
#define RT_EXP    expf
#define RT_TANH   tanhf
#define RT_LOG1P  log1pf
#define RT_GEMM   fy_sgemm
#include "ops/rnn_core.h"
#undef RT
#undef SFX
#undef RT_EXP
#undef RT_TANH
#undef RT_LOG1P
#undef RT_GEMM

#define RT        double
#define SFX(name) name##_f64
#define RT_EXP    exp
#define RT_TANH   tanh
#define RT_LOG1P  log1p
#define RT_GEMM   fy_dgemm
#include "ops/rnn_core.h"
#undef RT
#undef SFX
#undef RT_EXP
#undef RT_TANH
#undef RT_LOG1P
#undef RT_GEMM

static int name_eq_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

/* Fill cfg->act from activations / activation_alpha / activation_beta. Alphas and betas are
 * consumed in order by the functions that take them (as onnxruntime reads them); a list naming
 * one direction's functions serves both directions. */
static ferry_status parse_activations(const fy_kernel *k, rnn_cfg *c, int n_per_dir,
                                      const char *const *defaults)
{
    const fy_attr *a = fy_attr_get(k, "activations");
    const float *alphas = NULL, *betas = NULL;
    int64_t n_alpha = fy_attr_floats(k, "activation_alpha", &alphas);
    int64_t n_beta = fy_attr_floats(k, "activation_beta", &betas);
    int64_t ia = 0, ib = 0;
    int64_t n_names = 0;
    if (a) {
        if (a->type != FY_ATTR_STRINGS)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "attribute activations must be strings");
        n_names = a->n;
        if (n_names != n_per_dir && n_names != (int64_t)n_per_dir * c->dirs)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "activations has %lld names, expected %d per direction",
                                   (long long)n_names, n_per_dir);
    }
    for (int d = 0; d < c->dirs; d++) {
        for (int i = 0; i < n_per_dir; i++) {
            const char *name = defaults[i];
            if (a) name = a->strings[(d * n_per_dir + i) % n_names];
            size_t e = 0, n_tab = sizeof act_table / sizeof act_table[0];
            while (e < n_tab && !name_eq_nocase(name, act_table[e].name))
                e++;
            if (e == n_tab)
                return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "activation \"%s\" is not supported",
                                       name);
            rnn_act *act = &c->act[d][i];
            act->kind = act_table[e].kind;
            act->alpha = act_table[e].alpha;
            act->beta = act_table[e].beta;
            if (act_table[e].n_params >= 1 && ia < n_alpha) act->alpha = alphas[ia++];
            if (act_table[e].n_params >= 2 && ib < n_beta) act->beta = betas[ib++];
        }
    }
    return FERRY_OK;
}

/* A working copy of t as float (for f16/bf16), or t's own data when it is already RT. */
static ferry_status working_copy(const fy_kernel *k, const fy_value *t, int dbl, void **owned,
                                 const void **data)
{
    *owned = NULL;
    *data = NULL;
    if (!t) return FERRY_OK;
    if ((dbl && t->dtype == FERRY_DTYPE_F64) || (!dbl && t->dtype == FERRY_DTYPE_F32)) {
        *data = t->data;
        return FERRY_OK;
    }
    size_t n = (size_t)(t->count > 0 ? t->count : 1);
    void *p = malloc(n * (dbl ? sizeof(double) : sizeof(float)));
    if (!p) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < t->count; i++) {
        double v = fy_tensor_get_f64(t, i);
        if (dbl)
            ((double *)p)[i] = v;
        else
            ((float *)p)[i] = (float)v;
    }
    *owned = p;
    *data = p;
    return FERRY_OK;
}

static ferry_status check_dims(const fy_kernel *k, int input, const char *what, const fy_value *t,
                               int rank, const int64_t *want)
{
    int ok = t->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = t->dims[i] == want[i];
    if (!ok) {
        char got[128], exp[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d (%s) has shape %s, expected %s", input,
                               what, fy_shape_str(t->rank, t->dims, got, sizeof got),
                               fy_shape_str(rank, want, exp, sizeof exp));
    }
    return FERRY_OK;
}

static ferry_status run_rnn(fy_kernel *k, rnn_kind kind)
{
    static const char *const def_rnn[] = {"Tanh"};
    static const char *const def_gru[] = {"Sigmoid", "Tanh"};
    static const char *const def_lstm[] = {"Sigmoid", "Tanh", "Tanh"};
    rnn_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.gates = kind == RNN_PLAIN ? 1 : kind == RNN_GRU ? 3 : 4;
    int n_acts = kind == RNN_PLAIN ? 1 : kind == RNN_GRU ? 2 : 3;

    const fy_value *X, *W, *R, *B, *L, *H0, *C0 = NULL, *P = NULL;
    FY_CHECK(fy_input_tensor(k, 0, &X));
    FY_CHECK(fy_input_tensor(k, 1, &W));
    FY_CHECK(fy_input_tensor(k, 2, &R));
    FY_CHECK(fy_input_tensor_opt(k, 3, &B));
    FY_CHECK(fy_input_tensor_opt(k, 4, &L));
    FY_CHECK(fy_input_tensor_opt(k, 5, &H0));
    if (kind == RNN_LSTM) {
        FY_CHECK(fy_input_tensor_opt(k, 6, &C0));
        FY_CHECK(fy_input_tensor_opt(k, 7, &P));
    }
    FY_CHECK(fy_check_dtype(k, 0, X, FERRY_DTYPE_F32, FERRY_DTYPE_F16, FERRY_DTYPE_F64,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    const fy_value *same[] = {W, R, B, H0, C0, P};
    static const int same_idx[] = {1, 2, 3, 5, 6, 7};
    for (int i = 0; i < 6; i++)
        if (same[i] && same[i]->dtype != X->dtype)
            return fy_kernel_error(k, FERRY_E_DTYPE, "input %d is %s but X is %s", same_idx[i],
                                   ferry_dtype_name(same[i]->dtype), ferry_dtype_name(X->dtype));

    const char *direction = fy_attr_string(k, "direction", "forward");
    if (strcmp(direction, "forward") == 0) {
        c.dirs = 1;
    } else if (strcmp(direction, "reverse") == 0) {
        c.dirs = 1;
        c.reverse[0] = 1;
    } else if (strcmp(direction, "bidirectional") == 0) {
        c.dirs = 2;
        c.reverse[1] = 1;
    } else {
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "unknown direction \"%s\"", direction);
    }
    c.layout = k->node->opset >= 14 ? (int)fy_attr_int(k, "layout", 0) : 0;
    if (c.layout != 0 && c.layout != 1)
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "layout must be 0 or 1, got %d", c.layout);
    if (X->rank != 3)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 (X) must have 3 dims, got %d", X->rank);
    c.seq = X->dims[c.layout ? 1 : 0];
    c.batch = X->dims[c.layout ? 0 : 1];
    c.input = X->dims[2];
    if (R->rank != 3)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input 2 (R) must have 3 dims, got %d", R->rank);
    c.hidden = fy_attr_int(k, "hidden_size", R->dims[2]);
    if (c.hidden != R->dims[2])
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "hidden_size %lld does not match R's last dim %lld",
                               (long long)c.hidden, (long long)R->dims[2]);
    if (c.hidden > ((int64_t)1 << 40))
        return fy_kernel_error(k, FERRY_E_SHAPE, "hidden_size %lld is too large",
                               (long long)c.hidden);
    int64_t GH = c.gates * c.hidden;
    int64_t w_dims[3] = {c.dirs, GH, c.input};
    int64_t r_dims[3] = {c.dirs, GH, c.hidden};
    int64_t b_dims[2] = {c.dirs, 2 * GH};
    int64_t h_dims[3] = {c.dirs, c.batch, c.hidden};
    int64_t p_dims[2] = {c.dirs, 3 * c.hidden};
    if (c.layout) h_dims[0] = c.batch, h_dims[1] = c.dirs;
    FY_CHECK(check_dims(k, 1, "W", W, 3, w_dims));
    FY_CHECK(check_dims(k, 2, "R", R, 3, r_dims));
    if (B) FY_CHECK(check_dims(k, 3, "B", B, 2, b_dims));
    if (H0) FY_CHECK(check_dims(k, 5, "initial_h", H0, 3, h_dims));
    if (C0) FY_CHECK(check_dims(k, 6, "initial_c", C0, 3, h_dims));
    if (P) FY_CHECK(check_dims(k, 7, "P", P, 2, p_dims));
    int64_t xw_dims[3] = {c.seq, c.batch, GH};
    int64_t xw_count = fy_shape_count(3, xw_dims);
    if (xw_count < 0 || xw_count > ((int64_t)1 << 40))
        return fy_kernel_error(k, FERRY_E_SHAPE,
                               "the input projection (%lld x %lld x %lld) is too large",
                               (long long)c.seq, (long long)c.batch, (long long)GH);

    const fy_attr *clip = fy_attr_get(k, "clip");
    if (clip) {
        c.has_clip = 1;
        c.clip = fy_attr_float(k, "clip", 0);
        if (!(c.clip >= 0))
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "clip must be non-negative");
    }
    c.lbr = kind == RNN_GRU && fy_attr_int(k, "linear_before_reset", 0) != 0;
    c.input_forget = kind == RNN_LSTM && fy_attr_int(k, "input_forget", 0) != 0;
    FY_CHECK(parse_activations(k, &c, n_acts,
                               kind == RNN_PLAIN ? def_rnn
                               : kind == RNN_GRU ? def_gru
                                                 : def_lstm));

    ferry_status rc = FERRY_OK;
    int64_t *lens = NULL;
    void *owned[7] = {0};
    const void *data[7] = {0};
    void *scratch[3] = {0};
    if (L) {
        if (!fy_dtype_is_int(L->dtype) || L->rank != 1 || L->dims[0] != c.batch) {
            char buf[64];
            return fy_kernel_error(k, FERRY_E_SHAPE,
                                   "input 4 (sequence_lens) must be an integer [%lld], got %s %s",
                                   (long long)c.batch, ferry_dtype_name(L->dtype),
                                   fy_shape_str(L->rank, L->dims, buf, sizeof buf));
        }
        lens = malloc(sizeof(int64_t) * (size_t)(c.batch > 0 ? c.batch : 1));
        if (!lens) return fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        for (int64_t b = 0; b < c.batch; b++) {
            lens[b] = fy_tensor_get_i64(L, b);
            if (lens[b] < 0 || lens[b] > c.seq) {
                rc = fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                     "sequence_lens[%lld] = %lld is outside 0..%lld", (long long)b,
                                     (long long)lens[b], (long long)c.seq);
                goto out;
            }
        }
        c.lens = lens;
    }

    /* outputs: Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]),
     * Y_h and Y_c like initial_h */
    int64_t y_dims[4] = {c.seq, c.dirs, c.batch, c.hidden};
    if (c.layout) y_dims[0] = c.batch, y_dims[1] = c.seq, y_dims[2] = c.dirs;
    fy_value *outs[3] = {0};
    int n_outs = kind == RNN_LSTM ? 3 : 2;
    for (int i = 0; i < n_outs; i++) {
        if (!fy_output_wanted(k, i)) continue;
        if (i == 0)
            rc = c.lens ? fy_output_zeros(k, 0, X->dtype, 4, y_dims, &outs[0])
                        : fy_output(k, 0, X->dtype, 4, y_dims, &outs[0]);
        else
            rc = fy_output(k, i, X->dtype, 3, h_dims, &outs[i]);
        if (rc != FERRY_OK) goto out;
    }

    int dbl = X->dtype == FERRY_DTYPE_F64;
    const fy_value *ins[7] = {X, W, R, B, H0, C0, P};
    for (int i = 0; i < 7; i++) {
        rc = working_copy(k, ins[i], dbl, &owned[i], &data[i]);
        if (rc != FERRY_OK) goto out;
    }
    void *dst[3] = {0};
    int direct = X->dtype == FERRY_DTYPE_F32 || X->dtype == FERRY_DTYPE_F64;
    for (int i = 0; i < 3; i++) {
        if (!outs[i]) continue;
        if (direct) {
            dst[i] = outs[i]->data;
        } else {
            scratch[i] = calloc((size_t)(outs[i]->count > 0 ? outs[i]->count : 1), sizeof(float));
            if (!scratch[i]) {
                rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
                goto out;
            }
            dst[i] = scratch[i];
        }
    }

    for (int d = 0; d < c.dirs; d++) {
        int bad = dbl ? run_dir_f64(&c, d, data[0], data[1], data[2], data[3], data[4], data[5],
                                    data[6], dst[0], dst[1], dst[2])
                      : run_dir_f32(&c, d, data[0], data[1], data[2], data[3], data[4], data[5],
                                    data[6], dst[0], dst[1], dst[2]);
        if (bad) {
            rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (!direct)
        for (int i = 0; i < 3; i++)
            if (outs[i])
                for (int64_t j = 0; j < outs[i]->count; j++)
                    fy_tensor_set_f64(outs[i], j, ((float *)scratch[i])[j]);
    if (k->flops)
        *k->flops += 2.0 * (double)c.dirs * (double)c.seq * (double)c.batch * (double)GH *
                     (double)(c.input + c.hidden);
out:
    free(lens);
    for (int i = 0; i < 7; i++)
        free(owned[i]);
    for (int i = 0; i < 3; i++)
        free(scratch[i]);
    return rc;
}

ferry_status fy_op_RNN(fy_kernel *k) { return run_rnn(k, RNN_PLAIN); }

ferry_status fy_op_GRU(fy_kernel *k) { return run_rnn(k, RNN_GRU); }

ferry_status fy_op_LSTM(fy_kernel *k) { return run_rnn(k, RNN_LSTM); }
