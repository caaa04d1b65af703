/* rnn_core.h — the recurrent loop of RNN, GRU and LSTM for one working type. rnn.c includes it
 * twice (RT = float, RT = double): C has no templates and both loops must stay fast. */

/* Before including, define RT (the working type), SFX(name) (a per-type name), RT_EXP,
 * RT_TANH, RT_LOG1P (math functions of RT) and RT_GEMM (fy_sgemm or fy_dgemm). rnn_cfg and
 * rnn_act come from rnn.c. */

/* C[i*ldc + j] = sum_p A[i*lda + p] * B[j*K + p]: X·Wᵀ and H·Rᵀ, since ONNX stores W and R
 * as [gates*hidden, K] rows. Nonzero on allocation failure. */
static int SFX(gemm_nt)(int64_t M, int64_t N, int64_t K, const RT *A, int64_t lda, const RT *B,
                        RT *C, int64_t ldc)
{
    if (M == 0 || N == 0) return 0;
    /* A few rows (the per-step projection at small batch) take dot products straight over B's
     * rows, reading B once, where the packing GEMM would copy it every step. */
    if (M >= 8) return RT_GEMM(0, 1, M, N, K, 1, A, lda, B, K > 0 ? K : 1, 0, C, ldc) != FERRY_OK;
#pragma omp parallel for schedule(static) if (N * K * M > (1 << 16))
    for (int64_t j = 0; j < N; j++) {
        const RT *b = B + j * K;
        for (int64_t i = 0; i < M; i++) {
            const RT *a = A + i * lda;
            RT s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t p = 0; p < K; p++)
                s += a[p] * b[p];
            C[i * ldc + j] = s;
        }
    }
    return 0;
}

/* x[i] = act(clip(x[i])) in place. */
static void SFX(activate)(const rnn_act *a, int has_clip, RT clip, RT *x, int64_t n)
{
    RT al = (RT)a->alpha, be = (RT)a->beta;
    if (has_clip)
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] < -clip ? -clip : x[i] > clip ? clip : x[i];
    switch (a->kind) {
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 0 ? x[i] : 0;
        break;
    case ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            x[i] = RT_TANH(x[i]);
        break;
    case ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            x[i] = 1 / (1 + RT_EXP(-x[i]));
        break;
    case ACT_AFFINE:
        for (int64_t i = 0; i < n; i++)
            x[i] = al * x[i] + be;
        break;
    case ACT_LEAKYRELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] >= 0 ? x[i] : al * x[i];
        break;
    case ACT_THRESHOLDEDRELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > al ? x[i] : 0;
        break;
    case ACT_SCALEDTANH:
        for (int64_t i = 0; i < n; i++)
            x[i] = al * RT_TANH(be * x[i]);
        break;
    case ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++) {
            RT v = al * x[i] + be;
            x[i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
        break;
    case ACT_ELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] >= 0 ? x[i] : al * (RT_EXP(x[i]) - 1);
        break;
    case ACT_SOFTSIGN:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] / (1 + (x[i] < 0 ? -x[i] : x[i]));
        break;
    case ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 30 ? x[i] : RT_LOG1P(RT_EXP(x[i]));
        break;
    }
}

/* One direction of the recurrence. X rows are in X's own order (layout 0: t*batch + b,
 * layout 1: b*seq + t); Y, Yh, Yc may be NULL; B, h0, c0, P may be NULL (zeros).
 * Returns 0, or -1 when scratch memory could not be allocated. */
static int SFX(run_dir)(const rnn_cfg *c, int dir, const RT *X, const RT *W, const RT *R,
                        const RT *B, const RT *h0, const RT *c0, const RT *P, RT *Y, RT *Yh, RT *Yc)
{
    const int64_t S = c->seq, NB = c->batch, I = c->input, H = c->hidden, D = c->dirs;
    const int64_t GH = c->gates * H;
    const int reverse = c->reverse[dir];
    const rnn_act *act = c->act[dir];
    const RT clip = (RT)c->clip;
    W += dir * GH * I;
    R += dir * GH * H;
    if (B) B += dir * 2 * GH;
    if (P) P += dir * 3 * H;

    RT *xw = malloc(sizeof(RT) * (size_t)(S * NB * GH > 0 ? S * NB * GH : 1));
    RT *hr = malloc(sizeof(RT) * (size_t)(NB * GH > 0 ? NB * GH : 1));
    RT *h = malloc(sizeof(RT) * (size_t)(NB * H > 0 ? NB * H : 1));
    RT *cell = malloc(sizeof(RT) * (size_t)(NB * H > 0 ? NB * H : 1));
    RT *tmp = malloc(sizeof(RT) * (size_t)(NB * H > 0 ? NB * H : 1));
    int rc = -1;
    if (!xw || !hr || !h || !cell || !tmp) goto out;

    /* The input projection of the whole sequence is one GEMM; the biases that are not gated
     * by r (all of them except GRU's Rbh under linear_before_reset) are folded in here. */
    if (SFX(gemm_nt)(S * NB, GH, I, X, I, W, xw, GH)) goto out;
    if (B) {
        for (int64_t g = 0; g < GH; g++) {
            RT bias = B[g];
            if (!(c->kind == RNN_GRU && c->lbr && g >= 2 * H)) bias += B[GH + g];
            for (int64_t row = 0; row < S * NB; row++)
                xw[row * GH + g] += bias;
        }
    }

    for (int64_t b = 0; b < NB; b++) {
        int64_t src = c->layout ? (b * D + dir) * H : (dir * NB + b) * H;
        for (int64_t j = 0; j < H; j++) {
            h[b * H + j] = h0 ? h0[src + j] : 0;
            cell[b * H + j] = c0 ? c0[src + j] : 0;
        }
    }

    for (int64_t s = 0; s < S; s++) {
        /* the hidden-state projection: GRU without linear_before_reset projects r⊙h for its
         * third gate, so only z and r are projected here */
        int64_t n_proj = (c->kind == RNN_GRU && !c->lbr) ? 2 * H : GH;
        if (SFX(gemm_nt)(NB, n_proj, H, h, H, R, hr, GH)) goto out;
        if (c->kind == RNN_GRU && !c->lbr) {
            for (int64_t b = 0; b < NB; b++) {
                int64_t len = c->lens ? c->lens[b] : S;
                RT *g = hr + b * GH;
                if (s >= len) {
                    memset(tmp + b * H, 0, sizeof(RT) * (size_t)H);
                    continue;
                }
                int64_t t = reverse ? len - 1 - s : s;
                const RT *xr = xw + (c->layout ? b * S + t : t * NB + b) * GH;
                for (int64_t j = 0; j < 2 * H; j++)
                    g[j] += xr[j];
                SFX(activate)(&act[0], c->has_clip, clip, g, 2 * H);
                for (int64_t j = 0; j < H; j++)
                    tmp[b * H + j] = g[H + j] * h[b * H + j];
            }
            if (SFX(gemm_nt)(NB, H, H, tmp, H, R + 2 * H * H, hr + 2 * H, GH)) goto out;
        }
        for (int64_t b = 0; b < NB; b++) {
            int64_t len = c->lens ? c->lens[b] : S;
            if (s >= len) continue;
            int64_t t = reverse ? len - 1 - s : s;
            const RT *xr = xw + (c->layout ? b * S + t : t * NB + b) * GH;
            RT *g = hr + b * GH, *hb = h + b * H, *cb = cell + b * H;
            if (c->kind == RNN_PLAIN) {
                for (int64_t j = 0; j < H; j++)
                    g[j] += xr[j];
                SFX(activate)(&act[0], c->has_clip, clip, g, H);
                memcpy(hb, g, sizeof(RT) * (size_t)H);
            } else if (c->kind == RNN_GRU) {
                RT *z = g, *r = g + H, *hh = g + 2 * H;
                if (c->lbr) {
                    for (int64_t j = 0; j < 2 * H; j++)
                        g[j] += xr[j];
                    SFX(activate)(&act[0], c->has_clip, clip, g, 2 * H);
                    for (int64_t j = 0; j < H; j++)
                        hh[j] = xr[2 * H + j] + r[j] * (hh[j] + (B ? B[GH + 2 * H + j] : 0));
                } else {
                    for (int64_t j = 0; j < H; j++)
                        hh[j] += xr[2 * H + j];
                }
                SFX(activate)(&act[1], c->has_clip, clip, hh, H);
                for (int64_t j = 0; j < H; j++)
                    hb[j] = (1 - z[j]) * hh[j] + z[j] * hb[j];
            } else {
                /* gate order i, o, f, c; peepholes p_i, p_o, p_f */
                RT *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
                for (int64_t j = 0; j < GH; j++)
                    g[j] += xr[j];
                if (P)
                    for (int64_t j = 0; j < H; j++) {
                        gi[j] += P[j] * cb[j];
                        gf[j] += P[2 * H + j] * cb[j];
                    }
                SFX(activate)(&act[0], c->has_clip, clip, gi, H);
                if (c->input_forget)
                    for (int64_t j = 0; j < H; j++)
                        gf[j] = 1 - gi[j];
                else
                    SFX(activate)(&act[0], c->has_clip, clip, gf, H);
                SFX(activate)(&act[1], c->has_clip, clip, gc, H);
                for (int64_t j = 0; j < H; j++)
                    cb[j] = gf[j] * cb[j] + gi[j] * gc[j];
                if (P)
                    for (int64_t j = 0; j < H; j++)
                        go[j] += P[H + j] * cb[j];
                SFX(activate)(&act[0], c->has_clip, clip, go, H);
                RT *hc = tmp + b * H;
                memcpy(hc, cb, sizeof(RT) * (size_t)H);
                SFX(activate)(&act[2], 0, clip, hc, H);
                for (int64_t j = 0; j < H; j++)
                    hb[j] = go[j] * hc[j];
            }
            if (Y) {
                RT *y = Y + (c->layout ? (b * S + t) * D + dir : (t * D + dir) * NB + b) * H;
                memcpy(y, hb, sizeof(RT) * (size_t)H);
            }
        }
    }

    for (int64_t b = 0; b < NB; b++) {
        int64_t dst = c->layout ? (b * D + dir) * H : (dir * NB + b) * H;
        if (Yh) memcpy(Yh + dst, h + b * H, sizeof(RT) * (size_t)H);
        if (Yc) memcpy(Yc + dst, cell + b * H, sizeof(RT) * (size_t)H);
    }
    rc = 0;
out:
    free(xw), free(hr), free(h), free(cell), free(tmp);
    return rc;
}
