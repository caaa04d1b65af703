/* transpose.c — the tensor family's byte mover (strided copies, permutations, string
 * ownership) and the ops that are permutations or repetitions of it: Transpose,
 * DepthToSpace, SpaceToDepth, Tile. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/tensor_util.h"

#define MOVE_MAX_RANK (2 * FERRY_MAX_RANK)
#define PARALLEL_MIN 65536 /* elements below which a copy stays on one thread */
#define TILE 32

/* ---- string ownership --------------------------------------------------------------------- */

void fy_move_strings_begin(fy_value *out)
{
    if (out->dtype != FERRY_DTYPE_STRING) return;
    char **s = out->data;
    for (int64_t i = 0; i < out->count; i++) {
        free(s[i]);
        s[i] = NULL;
    }
}

ferry_status fy_move_strings_end(fy_value *out, ferry_status rc)
{
    if (out->dtype != FERRY_DTYPE_STRING) return rc;
    char **s = out->data;
    if (rc != FERRY_OK) {
        memset(s, 0, sizeof(char *) * (size_t)out->count);
        return rc;
    }
    for (int64_t i = 0; i < out->count; i++) {
        char *c = strdup(s[i] ? s[i] : "");
        if (!c) {
            memset(s + i, 0, sizeof(char *) * (size_t)(out->count - i));
            return fy_error(FERRY_E_NOMEM, "out of memory copying strings");
        }
        s[i] = c;
    }
    return FERRY_OK;
}

/* ---- strided copies ----------------------------------------------------------------------- */

void fy_move_fill(void *dst, int64_t count, size_t esz, const void *elem)
{
    if (count <= 0) return;
    char *d = dst;
    memcpy(d, elem, esz);
    /* doubling copies: log2(count) memcpy calls */
    size_t done = esz, total = (size_t)count * esz;
    while (done < total) {
        size_t n = done < total - done ? done : total - done;
        memcpy(d + done, d, n);
        done += n;
    }
}

void fy_move_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

typedef struct plan {
    int rank;
    size_t esz;
    int64_t dims[MOVE_MAX_RANK];
    int64_t strides[MOVE_MAX_RANK];
} plan;

/* n elements from src (stride s elements) to contiguous dst. Element offsets are multiples of
 * esz from 64-byte aligned buffers, so the typed accesses are aligned. */
static void copy_run(char *dst, const char *src, size_t esz, int64_t n, int64_t s)
{
    if (s == 1) {
        memcpy(dst, src, (size_t)n * esz);
        return;
    }
#define RUN(T)                                                                                     \
    do {                                                                                           \
        T *d_ = (T *)dst;                                                                          \
        const T *p_ = (const T *)src;                                                              \
        for (int64_t i = 0; i < n; i++) d_[i] = p_[i * s];                                         \
    } while (0)
    switch (esz) {
    case 1: RUN(uint8_t); break;
    case 2: RUN(uint16_t); break;
    case 4: RUN(uint32_t); break;
    case 8: RUN(uint64_t); break;
    default:
        for (int64_t i = 0; i < n; i++) memcpy(dst + i * esz, src + i * s * (int64_t)esz, esz);
    }
#undef RUN
}

/* Rows lo..hi of the plan (a row is the innermost dim). */
static void copy_rows(char *dst, const char *src, const plan *p, int64_t lo, int64_t hi)
{
    int r = p->rank;
    int64_t inner = p->dims[r - 1], is = p->strides[r - 1];
    int64_t c[MOVE_MAX_RANK], off = 0, rem = lo;
    for (int i = r - 2; i >= 0; i--) {
        c[i] = rem % p->dims[i];
        rem /= p->dims[i];
        off += c[i] * p->strides[i];
    }
    char *out = dst + lo * inner * (int64_t)p->esz;
    for (int64_t row = lo; row < hi; row++) {
        copy_run(out, src + off * (int64_t)p->esz, p->esz, inner, is);
        out += inner * (int64_t)p->esz;
        for (int i = r - 2; i >= 0; i--) {
            off += p->strides[i];
            if (++c[i] < p->dims[i]) break;
            off -= p->strides[i] * p->dims[i];
            c[i] = 0;
        }
    }
}

/* A transpose-like copy where the input's contiguous dim j is not the output's last: walk
 * TILE x TILE blocks of (j, last) so that both reads and writes stay in cache. */
static void copy_tiled(char *dst, const char *src, const plan *p, int j, int64_t total)
{
    int r = p->rank;
    int64_t ni = p->dims[r - 1], si = p->strides[r - 1], nj = p->dims[j];
    int64_t ds[MOVE_MAX_RANK];
    fy_move_strides(r, p->dims, ds);
    int64_t dsj = ds[j];
    int64_t nouter = total / (ni * nj), nbj = (nj + TILE - 1) / TILE, nbi = (ni + TILE - 1) / TILE;
    int64_t nwork = nouter * nbj * nbi;
#pragma omp parallel for if (total >= PARALLEL_MIN) schedule(static)
    for (int64_t w = 0; w < nwork; w++) {
        int64_t bi = w % nbi, t = w / nbi, bj = t % nbj, o = t / nbj;
        int64_t soff = 0, doff = 0;
        for (int i = r - 2; i >= 0; i--) {
            if (i == j) continue;
            int64_t ci = o % p->dims[i];
            o /= p->dims[i];
            soff += ci * p->strides[i];
            doff += ci * ds[i];
        }
        int64_t j0 = bj * TILE, j1 = j0 + TILE < nj ? j0 + TILE : nj;
        int64_t i0 = bi * TILE, i1 = i0 + TILE < ni ? i0 + TILE : ni;
#define BLOCK(T)                                                                                   \
    do {                                                                                           \
        T *d_ = (T *)dst + doff;                                                                   \
        const T *s_ = (const T *)src + soff;                                                       \
        for (int64_t jj = j0; jj < j1; jj++)                                                       \
            for (int64_t ii = i0; ii < i1; ii++) d_[jj * dsj + ii] = s_[jj + ii * si];             \
    } while (0)
        switch (p->esz) {
        case 1: BLOCK(uint8_t); break;
        case 2: BLOCK(uint16_t); break;
        case 4: BLOCK(uint32_t); break;
        case 8: BLOCK(uint64_t); break;
        default:
            for (int64_t jj = j0; jj < j1; jj++)
                for (int64_t ii = i0; ii < i1; ii++)
                    memcpy(dst + (doff + jj * dsj + ii) * (int64_t)p->esz,
                           src + (soff + jj + ii * si) * (int64_t)p->esz, p->esz);
        }
#undef BLOCK
    }
}

void fy_move_strided(void *dst, const void *src, size_t esz, int rank, const int64_t *dims,
                     const int64_t *strides)
{
    plan p;
    p.esz = esz;
    p.rank = 0;
    int64_t total = 1;
    for (int i = 0; i < rank; i++) /* empty: nothing to move (and huge other dims may overflow) */
        if (dims[i] <= 0) return;
    for (int i = 0; i < rank; i++) total *= dims[i]; /* the element count of a real tensor */
    /* drop unit dims and merge neighbours that are contiguous with each other */
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 1) continue;
        if (p.rank > 0 && p.strides[p.rank - 1] == strides[i] * dims[i]) {
            p.dims[p.rank - 1] *= dims[i];
            p.strides[p.rank - 1] = strides[i];
        } else {
            p.dims[p.rank] = dims[i];
            p.strides[p.rank] = strides[i];
            p.rank++;
        }
    }
    if (p.rank == 0) {
        memcpy(dst, src, esz);
        return;
    }
    int r = p.rank;
    if (p.strides[r - 1] != 1 && p.dims[r - 1] >= 4) {
        for (int j = r - 2; j >= 0; j--)
            if (p.strides[j] == 1 && p.dims[j] >= 4) {
                copy_tiled(dst, src, &p, j, total);
                return;
            }
    }
    int64_t nrows = total / p.dims[r - 1];
    if (total >= PARALLEL_MIN && nrows > 1) {
#pragma omp parallel
        {
            int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
            copy_rows(dst, src, &p, nrows * t / nt, nrows * (t + 1) / nt);
        }
    } else {
        copy_rows(dst, src, &p, 0, nrows);
    }
}

void fy_move_transpose(void *dst, const void *src, size_t esz, int rank, const int64_t *in_dims,
                       const int *perm)
{
    int64_t in_strides[MOVE_MAX_RANK], dims[MOVE_MAX_RANK], strides[MOVE_MAX_RANK];
    fy_move_strides(rank, in_dims, in_strides);
    for (int i = 0; i < rank; i++) {
        dims[i] = in_dims[perm[i]];
        strides[i] = in_strides[perm[i]];
    }
    fy_move_strided(dst, src, esz, rank, dims, strides);
}

/* ---- ops ---------------------------------------------------------------------------------- */

ferry_status fy_op_Transpose(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int r = x->rank, perm[FERRY_MAX_RANK];
    const int64_t *p;
    int64_t np = fy_attr_ints(k, "perm", &p);
    if (np < 0) {
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    } else {
        if (np != r)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "perm has %lld entries for rank %d",
                                   (long long)np, r);
        bool seen[FERRY_MAX_RANK] = {0};
        for (int i = 0; i < r; i++) {
            int a;
            if (p[i] < 0 || p[i] >= r || seen[p[i]])
                return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                       "perm is not a permutation of 0..%d", r - 1);
            a = (int)p[i];
            seen[a] = true;
            perm[i] = a;
        }
    }
    int64_t dims[FERRY_MAX_RANK];
    bool identity = true;
    for (int i = 0; i < r; i++) {
        dims[i] = x->dims[perm[i]];
        if (perm[i] != i) identity = false;
    }
    if (identity) return fy_output_set(k, 0, fy_value_ref((fy_value *)x));
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, r, dims, &out));
    fy_move_strings_begin(out);
    fy_move_transpose(out->data, x->data, ferry_dtype_size(x->dtype), r, x->dims, perm);
    return fy_move_strings_end(out, FERRY_OK);
}

/* DepthToSpace and SpaceToDepth are a reshape to 6-D, a transpose and a reshape back. */
static ferry_status block_move(fy_kernel *k, const fy_value *x, const int64_t *dims6,
                               const int *perm, const int64_t *out_dims)
{
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, 4, out_dims, &out));
    fy_move_strings_begin(out);
    fy_move_transpose(out->data, x->data, ferry_dtype_size(x->dtype), 6, dims6, perm);
    return fy_move_strings_end(out, FERRY_OK);
}

static ferry_status block_input(fy_kernel *k, const fy_value **x, int64_t *b)
{
    FY_CHECK(fy_input_tensor(k, 0, x));
    if ((*x)->rank != 4)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input must be 4-D (NCHW), got rank %d",
                               (*x)->rank);
    *b = fy_attr_int(k, "blocksize", 0);
    if (*b <= 0 || *b > (1 << 20))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "blocksize %lld is invalid", (long long)*b);
    return FERRY_OK;
}

ferry_status fy_op_DepthToSpace(fy_kernel *k)
{
    const fy_value *x;
    int64_t b;
    FY_CHECK(block_input(k, &x, &b));
    const int64_t *d = x->dims;
    if (d[1] % (b * b) != 0)
        return fy_kernel_error(k, FERRY_E_SHAPE, "channels %lld are not divisible by blocksize^2 %lld",
                               (long long)d[1], (long long)(b * b));
    int64_t c = d[1] / (b * b);
    int64_t out_dims[4] = {d[0], c, d[2] * b, d[3] * b};
    const char *mode = fy_attr_string(k, "mode", "DCR");
    if (strcmp(mode, "DCR") == 0) {
        int64_t dims6[6] = {d[0], b, b, c, d[2], d[3]};
        static const int perm[6] = {0, 3, 4, 1, 5, 2};
        return block_move(k, x, dims6, perm, out_dims);
    }
    if (strcmp(mode, "CRD") == 0) {
        int64_t dims6[6] = {d[0], c, b, b, d[2], d[3]};
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        return block_move(k, x, dims6, perm, out_dims);
    }
    return fy_kernel_error(k, FERRY_E_INVALID_ARG, "mode \"%s\" is not DCR or CRD", mode);
}

ferry_status fy_op_SpaceToDepth(fy_kernel *k)
{
    const fy_value *x;
    int64_t b;
    FY_CHECK(block_input(k, &x, &b));
    const int64_t *d = x->dims;
    if (d[2] % b != 0 || d[3] % b != 0)
        return fy_kernel_error(k, FERRY_E_SHAPE, "height %lld and width %lld must be divisible by "
                               "blocksize %lld", (long long)d[2], (long long)d[3], (long long)b);
    int64_t dims6[6] = {d[0], d[1], d[2] / b, b, d[3] / b, b};
    static const int perm[6] = {0, 3, 5, 1, 2, 4};
    int64_t out_dims[4] = {d[0], d[1] * b * b, d[2] / b, d[3] / b};
    return block_move(k, x, dims6, perm, out_dims);
}

/* Tile is a strided copy over [r0, d0, r1, d1, ...] with stride 0 along each repeat. */
ferry_status fy_op_Tile(fy_kernel *k)
{
    const fy_value *x;
    FY_CHECK(fy_input_tensor(k, 0, &x));
    int r = x->rank;
    int64_t reps[FERRY_MAX_RANK];
    if (k->node->opset < 6) {
        /* Tile-1: inputs (input, tiles, axis) repeat one axis */
        int64_t tiles, axis;
        int a;
        FY_CHECK(fy_read_scalar_i64(k, 1, &tiles));
        FY_CHECK(fy_read_scalar_i64(k, 2, &axis));
        FY_CHECK(fy_axis(k, axis, r, &a));
        for (int i = 0; i < r; i++) reps[i] = i == a ? tiles : 1;
    } else {
        int n;
        FY_CHECK(fy_input_ints(k, 1, reps, FERRY_MAX_RANK, &n));
        if (n != r)
            return fy_kernel_error(k, FERRY_E_SHAPE, "repeats has %d values for rank %d", n, r);
    }
    int64_t out_dims[FERRY_MAX_RANK], dims2[MOVE_MAX_RANK], strides2[MOVE_MAX_RANK], s[FERRY_MAX_RANK];
    fy_move_strides(r, x->dims, s);
    for (int i = 0; i < r; i++) {
        if (reps[i] < 0)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG, "repeat %lld on axis %d is negative",
                                   (long long)reps[i], i);
        if (x->dims[i] && reps[i] > INT64_MAX / x->dims[i])
            return fy_kernel_error(k, FERRY_E_SHAPE, "tiled dim %d is too large", i);
        out_dims[i] = x->dims[i] * reps[i];
        dims2[2 * i] = reps[i];
        strides2[2 * i] = 0;
        dims2[2 * i + 1] = x->dims[i];
        strides2[2 * i + 1] = s[i];
    }
    fy_value *out;
    FY_CHECK(fy_output(k, 0, x->dtype, r, out_dims, &out));
    fy_move_strings_begin(out);
    fy_move_strided(out->data, x->data, ferry_dtype_size(x->dtype), 2 * r, dims2, strides2);
    return fy_move_strings_end(out, FERRY_OK);
}
