/* detection.c — the object-detection ops RoiAlign (opsets 10, 16) and NonMaxSuppression
 * (opsets 10, 11), with onnxruntime's tie-breaking so results match exported detectors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* ---- RoiAlign ---------------------------------------------------------------------------- */

/* Bilinear sample of one point: four positions and weights (all zero outside the map). */
typedef struct roi_sample {
    int64_t pos[4];
    double w[4];
} roi_sample;

/* The sampling grid of one roi: out_h * out_w bins of gh * gw bilinear samples each. The
 * geometry runs in the input's precision (float for f32), as onnxruntime computes it: the
 * adaptive grid size ceil(roi_h / out_h) can flip on the last bit. */
typedef struct roi_grid {
    int64_t gh, gw;
    roi_sample *samples; /* malloc'ed, out_h * out_w * gh * gw */
} roi_grid;

enum { ROI_OK, ROI_TOO_BIG, ROI_NOMEM };

#define DEFINE_ROI_GRID(T, SFX)                                                                    \
    static void roi_sample_at_##SFX(T y, T x, int64_t height, int64_t width, roi_sample *s)        \
    {                                                                                              \
        memset(s, 0, sizeof *s);                                                                   \
        if (y < (T)-1 || y > (T)height || x < (T)-1 || x > (T)width) return;                       \
        if (y <= 0) y = 0;                                                                         \
        if (x <= 0) x = 0;                                                                         \
        int64_t y_lo = (int64_t)y, x_lo = (int64_t)x, y_hi, x_hi;                                  \
        if (y_lo >= height - 1) {                                                                  \
            y_hi = y_lo = height - 1;                                                              \
            y = (T)y_lo;                                                                           \
        } else {                                                                                   \
            y_hi = y_lo + 1;                                                                       \
        }                                                                                          \
        if (x_lo >= width - 1) {                                                                   \
            x_hi = x_lo = width - 1;                                                               \
            x = (T)x_lo;                                                                           \
        } else {                                                                                   \
            x_hi = x_lo + 1;                                                                       \
        }                                                                                          \
        T ly = y - (T)y_lo, lx = x - (T)x_lo, hy = 1 - ly, hx = 1 - lx;                            \
        s->pos[0] = y_lo * width + x_lo;                                                           \
        s->pos[1] = y_lo * width + x_hi;                                                           \
        s->pos[2] = y_hi * width + x_lo;                                                           \
        s->pos[3] = y_hi * width + x_hi;                                                           \
        s->w[0] = hy * hx;                                                                         \
        s->w[1] = hy * lx;                                                                         \
        s->w[2] = ly * hx;                                                                         \
        s->w[3] = ly * lx;                                                                         \
    }                                                                                              \
                                                                                                   \
    static int roi_grid_##SFX(const double *box, T scale, int half_pixel, int64_t out_h,           \
                              int64_t out_w, int64_t ratio, int64_t height, int64_t width,         \
                              roi_grid *g)                                                         \
    {                                                                                              \
        const T off = half_pixel ? (T)0.5 : (T)0;                                                  \
        T x1 = (T)box[0] * scale - off, y1 = (T)box[1] * scale - off;                              \
        T x2 = (T)box[2] * scale - off, y2 = (T)box[3] * scale - off;                              \
        T roi_w = x2 - x1, roi_h = y2 - y1;                                                        \
        if (!half_pixel) {                                                                         \
            if (roi_w < 1) roi_w = 1;                                                              \
            if (roi_h < 1) roi_h = 1;                                                              \
        }                                                                                          \
        T bin_h = roi_h / (T)out_h, bin_w = roi_w / (T)out_w;                                      \
        double gh = ratio > 0 ? (double)ratio : ceil((double)(roi_h / (T)out_h));                  \
        double gw = ratio > 0 ? (double)ratio : ceil((double)(roi_w / (T)out_w));                  \
        if (!(gh >= 0)) gh = 0;                                                                    \
        if (!(gw >= 0)) gw = 0;                                                                    \
        if (gh * gw * (double)out_h * (double)out_w > (double)(1 << 26)) return ROI_TOO_BIG;       \
        g->gh = (int64_t)gh, g->gw = (int64_t)gw;                                                  \
        g->samples = malloc(sizeof(roi_sample) * (size_t)(out_h * out_w * g->gh * g->gw + 1));     \
        if (!g->samples) return ROI_NOMEM;                                                         \
        roi_sample *s = g->samples;                                                                \
        for (int64_t ph = 0; ph < out_h; ph++)                                                     \
            for (int64_t pw = 0; pw < out_w; pw++)                                                 \
                for (int64_t iy = 0; iy < g->gh; iy++) {                                           \
                    T yy = y1 + (T)ph * bin_h + (T)((double)iy + 0.5) * bin_h / (T)g->gh;          \
                    for (int64_t ix = 0; ix < g->gw; ix++) {                                       \
                        T xx = x1 + (T)pw * bin_w + (T)((double)ix + 0.5) * bin_w / (T)g->gw;      \
                        roi_sample_at_##SFX(yy, xx, height, width, s++);                           \
                    }                                                                              \
                }                                                                                  \
        return ROI_OK;                                                                             \
    }

DEFINE_ROI_GRID(float, f32)
DEFINE_ROI_GRID(double, f64)

ferry_status fy_op_RoiAlign(fy_kernel *k)
{
    const fy_value *X, *rois, *bi;
    FY_CHECK(fy_input_tensor(k, 0, &X));
    FY_CHECK(fy_input_tensor(k, 1, &rois));
    FY_CHECK(fy_input_tensor(k, 2, &bi));
    FY_CHECK(fy_check_dtype(k, 0, X, FERRY_DTYPE_F32, FERRY_DTYPE_F16, FERRY_DTYPE_F64,
                            FERRY_DTYPE_BF16, FERRY_DTYPE_UNDEFINED));
    if (rois->dtype != X->dtype)
        return fy_kernel_error(k, FERRY_E_DTYPE, "rois are %s but X is %s",
                               ferry_dtype_name(rois->dtype), ferry_dtype_name(X->dtype));
    if (!fy_dtype_is_int(bi->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "batch_indices must be integers, got %s",
                               ferry_dtype_name(bi->dtype));
    if (X->rank != 4)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 must have 4 dims, got %d", X->rank);
    if (rois->rank != 2 || rois->dims[1] != 4)
        return fy_kernel_error(k, FERRY_E_SHAPE, "rois must be [num_rois, 4]");
    const int64_t n_rois = rois->dims[0];
    if (bi->rank != 1 || bi->dims[0] != n_rois)
        return fy_kernel_error(k, FERRY_E_SHAPE, "batch_indices must be [%lld]", (long long)n_rois);

    const char *mode = fy_attr_string(k, "mode", "avg");
    int is_max = strcmp(mode, "max") == 0;
    if (!is_max && strcmp(mode, "avg") != 0)
        return fy_kernel_error(k, FERRY_E_UNSUPPORTED, "mode \"%s\" is not supported", mode);
    int64_t out_h = fy_attr_int(k, "output_height", 1), out_w = fy_attr_int(k, "output_width", 1);
    int64_t ratio = fy_attr_int(k, "sampling_ratio", 0);
    double spatial_scale = fy_attr_float(k, "spatial_scale", 1.0f);
    if (out_h < 1 || out_w < 1 || out_h > (1 << 20) || out_w > (1 << 20))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "output size %lldx%lld is invalid",
                               (long long)out_h, (long long)out_w);
    if (ratio < 0 || ratio > (1 << 16))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "sampling_ratio %lld is invalid",
                               (long long)ratio);
    /* opset 10 behaves as "output_half_pixel"; opset 16 defaults to "half_pixel" */
    int half_pixel = 0;
    if (k->node->opset >= 16) {
        const char *ct = fy_attr_string(k, "coordinate_transformation_mode", "half_pixel");
        half_pixel = strcmp(ct, "half_pixel") == 0;
        if (!half_pixel && strcmp(ct, "output_half_pixel") != 0)
            return fy_kernel_error(k, FERRY_E_UNSUPPORTED,
                                   "coordinate_transformation_mode \"%s\" is not supported", ct);
    }

    const int64_t N = X->dims[0], C = X->dims[1], H = X->dims[2], W = X->dims[3];
    int64_t y_dims[4] = {n_rois, C, out_h, out_w};
    int64_t n_out = fy_shape_count(4, y_dims);
    if (n_out < 0 ||
        (double)n_out * (double)ferry_dtype_size(X->dtype) > (double)((int64_t)1 << 40)) {
        char buf[256];
        return fy_kernel_error(k, FERRY_E_SHAPE, "output shape %s is too large",
                               fy_shape_str(4, y_dims, buf, sizeof buf));
    }
    fy_value *Y;
    FY_CHECK(fy_output(k, 0, X->dtype, 4, y_dims, &Y));
    if (Y->count == 0) return FERRY_OK;
    if (H == 0 || W == 0) return fy_kernel_error(k, FERRY_E_SHAPE, "input 0 has an empty map");

    /* validate everything before the parallel loop, which cannot return errors */
    for (int64_t r = 0; r < n_rois; r++) {
        int64_t b = fy_tensor_get_i64(bi, r);
        if (b < 0 || b >= N)
            return fy_kernel_error(k, FERRY_E_INVALID_ARG,
                                   "batch_indices[%lld] = %lld is outside 0..%lld", (long long)r,
                                   (long long)b, (long long)N - 1);
        for (int j = 0; j < 4; j++)
            if (!isfinite(fy_tensor_get_f64(rois, r * 4 + j)))
                return fy_kernel_error(k, FERRY_E_INVALID_ARG, "roi %lld is not finite",
                                       (long long)r);
    }

    const int f32 = X->dtype == FERRY_DTYPE_F32;
    const int geom_f64 = X->dtype == FERRY_DTYPE_F64;
    ferry_status rc = FERRY_OK;
    for (int64_t r = 0; r < n_rois && rc == FERRY_OK; r++) {
        const int64_t b = fy_tensor_get_i64(bi, r);
        double box[4];
        for (int j = 0; j < 4; j++)
            box[j] = fy_tensor_get_f64(rois, r * 4 + j);
        roi_grid grid = {0, 0, NULL};
        int grc = geom_f64 ? roi_grid_f64(box, spatial_scale, half_pixel, out_h, out_w, ratio, H, W,
                                          &grid)
                           : roi_grid_f32(box, (float)spatial_scale, half_pixel, out_h, out_w,
                                          ratio, H, W, &grid);
        if (grc != ROI_OK) {
            rc = grc == ROI_NOMEM
                     ? fy_kernel_error(k, FERRY_E_NOMEM, "out of memory")
                     : fy_kernel_error(k, FERRY_E_UNSUPPORTED, "roi %lld needs too many samples",
                                       (long long)r);
            break;
        }
        const int64_t n_samp = grid.gh * grid.gw;
        const double count = n_samp > 0 ? (double)n_samp : 1;
        const roi_sample *samples = grid.samples;
#pragma omp parallel for schedule(static) if (C * out_h * out_w * n_samp > (1 << 15))
        for (int64_t c = 0; c < C; c++) {
            const int64_t base = (b * C + c) * H * W;
            for (int64_t bin = 0; bin < out_h * out_w; bin++) {
                const roi_sample *sp = samples + bin * n_samp;
                double acc = 0;
                for (int64_t q = 0; q < n_samp; q++) {
                    double v[4];
                    for (int j = 0; j < 4; j++)
                        v[j] = sp[q].w[j] *
                               (f32 ? (double)((const float *)X->data)[base + sp[q].pos[j]]
                                    : fy_tensor_get_f64(X, base + sp[q].pos[j]));
                    if (is_max) {
                        double m = fmax(fmax(v[0], v[1]), fmax(v[2], v[3]));
                        acc = q == 0 ? m : fmax(acc, m);
                    } else {
                        acc += v[0] + v[1] + v[2] + v[3];
                    }
                }
                if (!is_max) acc /= count;
                int64_t yi = ((r * C + c) * out_h * out_w) + bin;
                if (f32)
                    ((float *)Y->data)[yi] = (float)acc;
                else
                    fy_tensor_set_f64(Y, yi, acc);
            }
        }
        free(grid.samples);
    }
    return rc;
}

/* ---- NonMaxSuppression ------------------------------------------------------------------- */

typedef struct nms_box {
    double x0, y0, x1, y1, area;
} nms_box;

typedef struct nms_cand {
    double score;
    int64_t index;
} nms_cand;

/* Higher score first; equal scores keep the lower box index first. */
static int cand_cmp(const void *a, const void *b)
{
    const nms_cand *p = a, *q = b;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    return p->index < q->index ? -1 : p->index > q->index;
}

static nms_box make_box(const fy_value *boxes, int64_t at, int center)
{
    double v[4];
    for (int j = 0; j < 4; j++)
        v[j] = fy_tensor_get_f64(boxes, at + j);
    nms_box b;
    if (center) {
        b.x0 = v[0] - v[2] / 2, b.x1 = v[0] + v[2] / 2;
        b.y0 = v[1] - v[3] / 2, b.y1 = v[1] + v[3] / 2;
    } else { /* [y1, x1, y2, x2], any diagonal pair of corners */
        b.y0 = fmin(v[0], v[2]), b.y1 = fmax(v[0], v[2]);
        b.x0 = fmin(v[1], v[3]), b.x1 = fmax(v[1], v[3]);
    }
    b.area = (b.x1 - b.x0) * (b.y1 - b.y0);
    return b;
}

static int suppressed(const nms_box *a, const nms_box *b, double iou_threshold)
{
    double ix0 = fmax(a->x0, b->x0), ix1 = fmin(a->x1, b->x1);
    double iy0 = fmax(a->y0, b->y0), iy1 = fmin(a->y1, b->y1);
    if (ix1 <= ix0 || iy1 <= iy0) return 0;
    if (a->area <= 0 || b->area <= 0) return 0;
    double inter = (ix1 - ix0) * (iy1 - iy0);
    double uni = a->area + b->area - inter;
    if (uni <= 0) return 0;
    return inter / uni > iou_threshold;
}

static ferry_status scalar_input(const fy_kernel *k, int i, double *v, int *present)
{
    const fy_value *t;
    *present = 0;
    FY_CHECK(fy_input_tensor_opt(k, i, &t));
    if (!t) return FERRY_OK;
    if (t->count == 0) return FERRY_OK;
    if (t->count != 1)
        return fy_kernel_error(k, FERRY_E_SHAPE, "input %d must hold one value, got %lld", i,
                               (long long)t->count);
    if (!fy_dtype_is_numeric(t->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "input %d must be numeric", i);
    *v = fy_dtype_is_int(t->dtype) ? (double)fy_tensor_get_i64(t, 0) : fy_tensor_get_f64(t, 0);
    *present = 1;
    return FERRY_OK;
}

ferry_status fy_op_NonMaxSuppression(fy_kernel *k)
{
    const fy_value *boxes, *scores;
    FY_CHECK(fy_input_tensor(k, 0, &boxes));
    FY_CHECK(fy_input_tensor(k, 1, &scores));
    if (!fy_dtype_is_float(boxes->dtype) || !fy_dtype_is_float(scores->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "boxes and scores must be floating point");
    if (boxes->rank != 3 || boxes->dims[2] != 4)
        return fy_kernel_error(k, FERRY_E_SHAPE, "boxes must be [batches, boxes, 4]");
    if (scores->rank != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return fy_kernel_error(k, FERRY_E_SHAPE, "scores must be [batches, classes, boxes]");
    const int64_t n_batch = scores->dims[0], n_class = scores->dims[1], n_box = scores->dims[2];

    double max_out_d = 0, iou = 0, score_thr = 0;
    int has_max, has_iou, has_score;
    const fy_value *mo;
    FY_CHECK(fy_input_tensor_opt(k, 2, &mo));
    if (mo && !fy_dtype_is_int(mo->dtype))
        return fy_kernel_error(k, FERRY_E_DTYPE, "max_output_boxes_per_class must be integer");
    FY_CHECK(scalar_input(k, 2, &max_out_d, &has_max));
    FY_CHECK(scalar_input(k, 3, &iou, &has_iou));
    FY_CHECK(scalar_input(k, 4, &score_thr, &has_score));
    int64_t max_out = has_max ? fy_tensor_get_i64(mo, 0) : 0;
    if (max_out < 0) max_out = 0;
    if (max_out > n_box) max_out = n_box;
    if (has_iou && !(iou >= 0 && iou <= 1))
        return fy_kernel_error(k, FERRY_E_INVALID_ARG, "iou_threshold %g is outside [0, 1]", iou);
    const int center = fy_attr_int(k, "center_point_box", 0) != 0;

    ferry_status rc = FERRY_OK;
    int64_t cap = n_batch * n_class * max_out, n_sel = 0;
    int64_t *sel = malloc(sizeof(int64_t) * 3 * (size_t)(cap > 0 ? cap : 1));
    nms_cand *cand = malloc(sizeof(nms_cand) * (size_t)(n_box > 0 ? n_box : 1));
    nms_box *bx = malloc(sizeof(nms_box) * (size_t)(n_box > 0 ? n_box : 1));
    int64_t *kept = malloc(sizeof(int64_t) * (size_t)(max_out > 0 ? max_out : 1));
    if (!sel || !cand || !bx || !kept) {
        rc = fy_kernel_error(k, FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t b = 0; b < n_batch && max_out > 0; b++) {
        for (int64_t i = 0; i < n_box; i++)
            bx[i] = make_box(boxes, (b * n_box + i) * 4, center);
        for (int64_t c = 0; c < n_class; c++) {
            int64_t n_cand = 0, n_kept = 0;
            for (int64_t i = 0; i < n_box; i++) {
                double s = fy_tensor_get_f64(scores, (b * n_class + c) * n_box + i);
                if (has_score && !(s > score_thr)) continue;
                cand[n_cand].score = s;
                cand[n_cand++].index = i;
            }
            qsort(cand, (size_t)n_cand, sizeof *cand, cand_cmp);
            for (int64_t j = 0; j < n_cand && n_kept < max_out; j++) {
                const nms_box *cb = &bx[cand[j].index];
                int drop = 0;
                for (int64_t q = 0; q < n_kept && !drop; q++)
                    drop = suppressed(cb, &bx[kept[q]], iou);
                if (drop) continue;
                kept[n_kept++] = cand[j].index;
                sel[n_sel * 3 + 0] = b;
                sel[n_sel * 3 + 1] = c;
                sel[n_sel * 3 + 2] = cand[j].index;
                n_sel++;
            }
        }
    }
    int64_t y_dims[2] = {n_sel, 3};
    fy_value *Y;
    rc = fy_output(k, 0, FERRY_DTYPE_I64, 2, y_dims, &Y);
    if (rc == FERRY_OK && n_sel) memcpy(Y->data, sel, sizeof(int64_t) * 3 * (size_t)n_sel);
out:
    free(sel), free(cand), free(bx), free(kept);
    return rc;
}
