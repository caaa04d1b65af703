/* grid_sample.c — GridSample (opset 16 for 2-D, opset 20's N-D and mode names too): sample X at
 * the normalized coordinates of a grid, as torch.nn.functional.grid_sample does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

typedef enum { GS_NEAREST, GS_LINEAR, GS_CUBIC } gs_mode;
typedef enum { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_padding;

#define GS_MAX_SPATIAL 4 /* up to 4^4 = 256 taps per point */

typedef struct gs_cfg {
    gs_mode mode;
    gs_padding padding;
    int align_corners;
    int r;                      /* spatial rank */
    int64_t n, c;               /* batch, channels */
    int64_t in[GS_MAX_SPATIAL]; /* input spatial dims */
    int64_t in_points;          /* product of in[] */
    int64_t out_points;         /* grid points per batch entry */
} gs_cfg;

static double unnormalize(double coord, int64_t size, int align_corners)
{
    return align_corners ? (coord + 1) / 2 * (double)(size - 1)
                         : ((coord + 1) * (double)size - 1) / 2;
}

static double reflect(double x, double twice_low, double twice_high)
{
    if (twice_low == twice_high) return 0;
    double lo = twice_low / 2, span = (twice_high - twice_low) / 2;
    x = fabs(x - lo);
    double extra = fmod(x, span);
    double flips = floor(x / span);
    return fmod(flips, 2) == 0 ? extra + lo : span - extra + lo;
}

/* Apply border or reflection padding to a source coordinate (zeros leaves it alone). */
static double pad_coord(const gs_cfg *g, double x, int64_t size)
{
    if (g->padding == GS_ZEROS) return x;
    if (g->padding == GS_REFLECTION)
        x = g->align_corners ? reflect(x, 0, 2 * (double)(size - 1))
                             : reflect(x, -1, 2 * (double)size - 1);
    double hi = (double)(size - 1);
    return x < 0 ? 0 : x > hi ? hi : x;
}

static double cubic_coeff(double x)
{
    const double A = -0.75;
    x = fabs(x);
    if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0;
}

/* Taps of one spatial dim: index (or -1 when it reads padding zeros) and weight. */
static int dim_taps(const gs_cfg *g, double coord, int64_t size, int64_t *idx, double *w)
{
    double x = unnormalize(coord, size, g->align_corners);
    int n;
    if (g->mode == GS_CUBIC) {
        double x0 = floor(x), t = x - x0;
        n = 4;
        for (int j = 0; j < 4; j++) {
            w[j] = cubic_coeff((double)(j - 1) - t);
            double xi = pad_coord(g, x0 - 1 + j, size);
            idx[j] = (xi >= 0 && xi <= (double)(size - 1)) ? (int64_t)xi : -1;
        }
        if (!(x > -1e15 && x < 1e15))
            for (int j = 0; j < 4; j++)
                idx[j] = -1;
        return n;
    }
    x = pad_coord(g, x, size);
    if (!(x > -1e15 && x < 1e15)) {
        idx[0] = -1, w[0] = 0;
        return 1;
    }
    if (g->mode == GS_NEAREST) {
        double xi = nearbyint(x);
        idx[0] = (xi >= 0 && xi <= (double)(size - 1)) ? (int64_t)xi : -1;
        w[0] = 1;
        return 1;
    }
    double x0 = floor(x), t = x - x0;
    idx[0] = (x0 >= 0 && x0 <= (double)(size - 1)) ? (int64_t)x0 : -1;
    idx[1] = (x0 + 1 >= 0 && x0 + 1 <= (double)(size - 1)) ? (int64_t)x0 + 1 : -1;
    w[0] = 1 - t, w[1] = t;
    return 2;
}

/* Sample every output point of batch entry b. src is X as T; grid as double [points, r]. */
#define DEFINE_SAMPLE(T, NAME)                                                                     \
    static void NAME(const gs_cfg *g, const T *src, const double *grid, double *dst)               \
    {                                                                                              \
        const int64_t total = g->n * g->out_points;                                                \
        _Pragma(                                                                                   \
            "omp parallel for schedule(static) if (total * g->c > (1 << 14))") for (int64_t q = 0; \
                                                                                    q < total;     \
                                                                                    q++)           \
        {                                                                                          \
            int64_t b = q / g->out_points, p = q % g->out_points;                                  \
            const double *gp = grid + q * g->r;                                                    \
            int64_t idx[GS_MAX_SPATIAL][4];                                                        \
            double w[GS_MAX_SPATIAL][4];                                                           \
            int nt[GS_MAX_SPATIAL];                                                                \
            for (int d = 0; d < g->r; d++)                                                         \
                nt[d] = dim_taps(g, gp[g->r - 1 - d], g->in[d], idx[d], w[d]);                     \
            int64_t offs[256];                                                                     \
            double ws[256];                                                                        \
            int n_tap = 0;                                                                         \
            int pos[GS_MAX_SPATIAL] = {0};                                                         \
            for (;;) {                                                                             \
                int64_t off = 0;                                                                   \
                double wt = 1;                                                                     \
                int valid = 1;                                                                     \
                for (int d = 0; d < g->r; d++) {                                                   \
                    int64_t i = idx[d][pos[d]];                                                    \
                    if (i < 0) valid = 0;                                                          \
                    off = off * g->in[d] + (i < 0 ? 0 : i);                                        \
                    wt *= w[d][pos[d]];                                                            \
                }                                                                                  \
                if (valid && wt != 0) offs[n_tap] = off, ws[n_tap++] = wt;                         \
                int d = g->r - 1;                                                                  \
                while (d >= 0 && ++pos[d] == nt[d])                                                \
                    pos[d--] = 0;                                                                  \
                if (d < 0) break;                                                                  \
            }                                                                                      \
            for (int64_t c = 0; c < g->c; c++) {                                                   \
                const T *xc = src + (b * g->c + c) * g->in_points;                                 \
                double acc = 0;                                                                    \
                for (int t = 0; t < n_tap; t++)                                                    \
                    acc += ws[t] * (double)xc[offs[t]];                                            \
                dst[(b * g->c + c) * g->out_points + p] = acc;                                     \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_SAMPLE(float, sample_f32)
DEFINE_SAMPLE(double, sample_f64)

ferry_status fy_op_GridSample(fy_kernel *k)
{
    const fy_value *X, *G;
    FY_CHECK(fy_input_tensor(k, 0, &X));
    FY_CHECK(fy_input_tensor(k, 1, &G));
    if (!fy_dtype_is_numeric(X->dtype))
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "input 0: dtype %s is not supported",
                               ferry_dtype_name(X->dtype));
    if (!fy_dtype_is_float(G->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input 1 (grid) must be floating point, got %s",
                               ferry_dtype_name(G->dtype));
    gs_cfg g;
    memset(&g, 0, sizeof g);
    const char *mode = fy_attr_string(k, "mode", k->node->opset >= 20 ? "linear" : "bilinear");
    if (strcmp(mode, "bilinear") == 0 || strcmp(mode, "linear") == 0)
        g.mode = GS_LINEAR;
    else if (strcmp(mode, "nearest") == 0)
        g.mode = GS_NEAREST;
    else if (strcmp(mode, "bicubic") == 0 || strcmp(mode, "cubic") == 0)
        g.mode = GS_CUBIC;
    else
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "mode \"%s\" is not supported", mode);
    const char *pad = fy_attr_string(k, "padding_mode", "zeros");
    if (strcmp(pad, "zeros") == 0)
        g.padding = GS_ZEROS;
    else if (strcmp(pad, "border") == 0)
        g.padding = GS_BORDER;
    else if (strcmp(pad, "reflection") == 0)
        g.padding = GS_REFLECTION;
    else
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "padding_mode \"%s\" is not supported", pad);
    g.align_corners = fy_attr_int(k, "align_corners", 0) != 0;

    g.r = X->rank - 2;
    if (g.r < 1 || g.r > GS_MAX_SPATIAL)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 must have 3 to %d dims, got %d",
                               GS_MAX_SPATIAL + 2, X->rank);
    if (G->rank != X->rank || G->dims[0] != X->dims[0] || G->dims[G->rank - 1] != g.r) {
        char a[128], b[128];
        return fy_kernel_error(k, FERRY_E_SHAPE, "grid %s does not fit input %s",
                               fy_shape_str(G->rank, G->dims, a, sizeof a),
                               fy_shape_str(X->rank, X->dims, b, sizeof b));
    }
    g.n = X->dims[0];
    g.c = X->dims[1];
    g.in_points = 1;
    for (int d = 0; d < g.r; d++)
        g.in[d] = X->dims[d + 2], g.in_points *= g.in[d];
    int64_t y_dims[FERRY_MAX_RANK];
    y_dims[0] = g.n;
    y_dims[1] = g.c;
    g.out_points = 1;
    for (int d = 0; d < g.r; d++)
        y_dims[d + 2] = G->dims[d + 1], g.out_points *= G->dims[d + 1];
    int64_t n_out = fy_shape_count(X->rank, y_dims);
    if (n_out < 0 ||
        (double)n_out * (double)ferry_dtype_size(X->dtype) > (double)((int64_t)1 << 40)) {
        char buf[256];
        return fy_kernel_error(k, FERRY_E_SHAPE, "output shape %s is too large",
                               fy_shape_str(X->rank, y_dims, buf, sizeof buf));
    }
    fy_value *Y;
    FY_CHECK(fy_output(k, 0, X->dtype, X->rank, y_dims, &Y));
    if (Y->count == 0) return FERRY_OK;
    if (g.in_points == 0) return fy_kernel_error(k, FERRY_E_SHAPE, "cannot sample an empty input");

    ferry_status rc = FERRY_OK;
    double *grid = malloc(sizeof(double) * (size_t)(G->count > 0 ? G->count : 1));
    double *out = X->dtype == FERRY_DTYPE_F64 ? Y->data : malloc(sizeof(double) * (size_t)Y->count);
    void *xconv = NULL;
    if (!grid || !out) {
        rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < G->count; i++)
        grid[i] = fy_tensor_get_f64(G, i);
    if (X->dtype == FERRY_DTYPE_F32) {
        sample_f32(&g, X->data, grid, out);
    } else if (X->dtype == FERRY_DTYPE_F64) {
        sample_f64(&g, X->data, grid, out);
    } else {
        xconv = malloc(sizeof(double) * (size_t)(X->count > 0 ? X->count : 1));
        if (!xconv) {
            rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < X->count; i++)
            ((double *)xconv)[i] = fy_tensor_get_f64(X, i);
        sample_f64(&g, xconv, grid, out);
    }
    if (X->dtype == FERRY_DTYPE_F32) {
        for (int64_t i = 0; i < Y->count; i++)
            ((float *)Y->data)[i] = (float)out[i];
    } else if (X->dtype != FERRY_DTYPE_F64) {
        /* integer data: round, and saturate to the input's range (cubic overshoots) */
        double lo = -9.2e18, hi = 9.2e18;
        switch (X->dtype) {
        case FERRY_DTYPE_I8: lo = INT8_MIN, hi = INT8_MAX; break;
        case FERRY_DTYPE_I16: lo = INT16_MIN, hi = INT16_MAX; break;
        case FERRY_DTYPE_I32: lo = INT32_MIN, hi = INT32_MAX; break;
        case FERRY_DTYPE_U8: lo = 0, hi = UINT8_MAX; break;
        case FERRY_DTYPE_U16: lo = 0, hi = UINT16_MAX; break;
        case FERRY_DTYPE_U32: lo = 0, hi = UINT32_MAX; break;
        case FERRY_DTYPE_U64: lo = 0; break;
        case FERRY_DTYPE_BOOL: lo = 0, hi = 1; break;
        default: break;
        }
        for (int64_t i = 0; i < Y->count; i++) {
            double v = out[i];
            if (!fy_dtype_is_float(X->dtype)) v = v != v ? 0 : fmin(hi, fmax(lo, nearbyint(v)));
            fy_tensor_set_f64(Y, i, v);
        }
    }
done:
    free(grid);
    if (out != Y->data) free(out);
    free(xconv);
    return rc;
}
