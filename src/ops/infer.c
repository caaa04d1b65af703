/* infer.c — static shape and type inference over the IR, with symbolic dims ("batch") carried
 * through. It fills the declared type of every value a model leaves undeclared, for `ferry
 * inspect` and for planning; the kernels still compute exact shapes at run time, so an op
 * missing here only means "unknown", never a wrong result. Small integer tensors built from
 * Shape (the shape subgraphs exporters emit before Reshape) are tracked dim by dim. */
#include <stdlib.h>
#include <string.h>

#include "ops/infer.h"
#include "ops/kernel.h"

/* A dim: v >= 0 known; v < 0 with sym a named symbol; v < 0 without sym unknown. */
typedef struct sdim {
    int64_t v;
    const char *sym;
} sdim;

typedef struct sinfo {
    int known;   /* 0: nothing known about this value */
    ferry_dtype dtype;
    int rank;    /* -1 unknown */
    sdim d[FERRY_MAX_RANK];
    /* for small 1-D / scalar int64 values: their elements, dim by dim (n_vals < 0: unknown) */
    int n_vals;
    sdim vals[FERRY_MAX_RANK];
    const fy_value *t; /* the constant behind the value (exact contents), or NULL */
} sinfo;

static const sdim UNKNOWN = {-1, NULL};

static int dim_eq(sdim a, sdim b)
{
    if (a.v >= 0 || b.v >= 0) return a.v == b.v;
    return a.sym && b.sym && strcmp(a.sym, b.sym) == 0;
}

static int in_list(const char *op, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(op, *list) == 0) return 1;
    return 0;
}

static const char *const same_shape_ops[] = {
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "Gelu", "HardSigmoid",
    "HardSwish", "Softplus", "Softsign", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
    "Floor", "Ceil", "Round", "Sin", "Cos", "Tan", "Erf", "Identity", "Dropout", "Softmax",
    "LogSoftmax", "Hardmax", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
    "LRN", "Clip", "Not", "Sign", "CumSum", "Shrink", "ThresholdedRelu", "Mish",
    "MeanVarianceNormalization", "GroupNormalization", "Asin", "Acos", "Atan", "Sinh", "Cosh",
    "Asinh", "Acosh", "Atanh", "BitwiseNot", "QuantizeLinear", "DequantizeLinear", NULL};
static const char *const broadcast_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max",
                                            "Min", "Sum", "Mean", "PRelu", "BitShift", "And",
                                            "Or", "Xor", "BitwiseAnd", "BitwiseOr",
                                            "BitwiseXor", NULL};
static const char *const compare_ops[] = {"Equal", "Less", "Greater", "LessOrEqual",
                                          "GreaterOrEqual", NULL};

static int64_t attr_i(const fy_node *n, const char *name, int64_t def)
{
    const fy_attr *a = fy_node_attr(n, name);
    return a && a->type == FY_ATTR_INT ? a->i : def;
}

static int64_t attr_ints(const fy_node *n, const char *name, const int64_t **v)
{
    const fy_attr *a = fy_node_attr(n, name);
    *v = a && a->type == FY_ATTR_INTS ? a->ints : NULL;
    return *v ? a->n : -1;
}

static const sinfo *input(const sinfo *vals, const fy_node *n, int i)
{
    static const sinfo none = {0, 0, -1, {{0, 0}}, -1, {{0, 0}}, NULL};
    return i < n->n_inputs && n->inputs[i] >= 0 ? &vals[n->inputs[i]] : &none;
}

static int norm_axis(int64_t axis, int rank)
{
    int64_t a = axis < 0 ? axis + rank : axis;
    return a >= 0 && a < (rank ? rank : 1) ? (int)a : -1;
}

/* Known integer contents of an input (initializer, Constant, or tracked shape values). */
static int const_ints(const sinfo *s, int64_t *out, int max)
{
    if (!s->known || s->n_vals < 0 || s->n_vals > max) return -1;
    for (int i = 0; i < s->n_vals; i++) {
        if (s->vals[i].v < 0 && s->vals[i].sym) return -1;
        if (s->vals[i].v < 0 && !s->vals[i].sym && s->vals[i].v != -1) return -1;
        out[i] = s->vals[i].v;
    }
    return s->n_vals;
}

static void broadcast(const sinfo *a, const sinfo *b, sinfo *o)
{
    if (a->rank < 0 || b->rank < 0) {
        o->rank = -1;
        return;
    }
    int r = a->rank > b->rank ? a->rank : b->rank;
    o->rank = r;
    for (int i = 0; i < r; i++) {
        sdim x = i < r - a->rank ? (sdim){1, NULL} : a->d[i - (r - a->rank)];
        sdim y = i < r - b->rank ? (sdim){1, NULL} : b->d[i - (r - b->rank)];
        if (x.v == 1) o->d[i] = y;
        else if (y.v == 1) o->d[i] = x;
        else if (dim_eq(x, y) || (x.v < 0 && !x.sym)) o->d[i] = x.v >= 0 || x.sym ? x : y;
        else o->d[i] = x.v >= 0 ? x : y;
    }
}

/* Spatial output size of a sliding window; unknown unless everything is known. */
static sdim window(sdim in, int64_t k, int64_t stride, int64_t dil, int64_t pb, int64_t pe,
                   const char *auto_pad, int ceil_mode)
{
    if (in.v < 0 || stride <= 0) return UNKNOWN;
    int64_t eff = dil * (k - 1) + 1;
    if (auto_pad && (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0))
        return (sdim){(in.v + stride - 1) / stride, NULL};
    if (auto_pad && strcmp(auto_pad, "VALID") == 0)
        return in.v < eff ? UNKNOWN : (sdim){(in.v - eff) / stride + 1, NULL};
    int64_t span = in.v + pb + pe - eff;
    if (span < 0) return UNKNOWN;
    int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in.v + pb) out--; /* last window must start inside */
    return (sdim){out, NULL};
}

static void infer_window_op(const fy_node *n, const sinfo *x, const sinfo *w, sinfo *o, int is_conv)
{
    if (x->rank < 3) return;
    int sp = x->rank - 2;
    const int64_t *ks = NULL, *st = NULL, *di = NULL, *pads = NULL;
    int64_t nk = attr_ints(n, "kernel_shape", &ks), ns = attr_ints(n, "strides", &st),
            nd = attr_ints(n, "dilations", &di), np = attr_ints(n, "pads", &pads);
    int64_t kbuf[FERRY_MAX_RANK];
    if (nk != sp) {
        if (!is_conv || w->rank != x->rank) return;
        for (int i = 0; i < sp; i++) {
            if (w->d[2 + i].v < 0) return;
            kbuf[i] = w->d[2 + i].v;
        }
        ks = kbuf;
    }
    const fy_attr *ap = fy_node_attr(n, "auto_pad");
    const char *auto_pad = ap && ap->type == FY_ATTR_STRING ? ap->s : NULL;
    o->rank = x->rank;
    o->d[0] = x->d[0];
    o->d[1] = is_conv ? (w->rank >= 1 ? w->d[0] : UNKNOWN) : x->d[1];
    for (int i = 0; i < sp; i++)
        o->d[2 + i] = window(x->d[2 + i], ks[i], ns == sp ? st[i] : 1, nd == sp ? di[i] : 1,
                             np == 2 * sp ? pads[i] : 0, np == 2 * sp ? pads[sp + i] : 0,
                             auto_pad, (int)attr_i(n, "ceil_mode", 0));
}

static void infer_matmul(const sinfo *a, const sinfo *b, sinfo *o)
{
    if (a->rank < 1 || b->rank < 1) return;
    sinfo ba = *a, bb = *b;
    ba.rank = a->rank > 2 ? a->rank - 2 : 0;
    bb.rank = b->rank > 2 ? b->rank - 2 : 0;
    broadcast(&ba, &bb, o);
    int r = o->rank;
    if (a->rank >= 2) o->d[r++] = a->d[a->rank - 2];
    if (b->rank >= 2) o->d[r++] = b->d[b->rank - 1];
    o->rank = r;
}

/* Reshape's target with 0 (copy) and -1 (the one dim that makes counts match). */
static void infer_reshape(const fy_node *n, const sinfo *x, const sinfo *shape, sinfo *o)
{
    if (!shape->known || shape->n_vals < 0) return;
    int r = shape->n_vals, minus = -1;
    int allow_zero = (int)attr_i(n, "allowzero", 0);
    o->rank = r;
    for (int i = 0; i < r; i++) {
        sdim s = shape->vals[i];
        if (s.v == 0 && !allow_zero) s = i < x->rank ? x->d[i] : UNKNOWN;
        else if (s.v == -1 && !s.sym) {
            minus = i;
            s = UNKNOWN;
        }
        o->d[i] = s;
    }
    if (minus < 0 || x->rank < 0) return;
    /* cancel equal symbols and multiply known dims on both sides */
    int64_t in_known = 1, out_known = 1;
    const char *in_syms[FERRY_MAX_RANK], *out_syms[FERRY_MAX_RANK];
    int n_in = 0, n_out = 0;
    for (int i = 0; i < x->rank; i++) {
        if (x->d[i].v >= 0) {
            if (__builtin_mul_overflow(in_known, x->d[i].v, &in_known)) return;
        } else if (x->d[i].sym) {
            in_syms[n_in++] = x->d[i].sym;
        } else {
            return;
        }
    }
    for (int i = 0; i < r; i++) {
        if (i == minus) continue;
        if (o->d[i].v >= 0) {
            if (__builtin_mul_overflow(out_known, o->d[i].v, &out_known)) return;
        } else if (o->d[i].sym) {
            out_syms[n_out++] = o->d[i].sym;
        } else {
            return;
        }
    }
    for (int i = 0; i < n_out; i++) {
        int found = 0;
        for (int j = 0; j < n_in && !found; j++)
            if (in_syms[j] && strcmp(in_syms[j], out_syms[i]) == 0) in_syms[j] = NULL, found = 1;
        if (!found) return;
    }
    const char *left = NULL;
    int n_left = 0;
    for (int j = 0; j < n_in; j++)
        if (in_syms[j]) left = in_syms[j], n_left++;
    if (out_known == 0 || in_known % out_known) return;
    if (n_left == 0) o->d[minus] = (sdim){in_known / out_known, NULL};
    else if (n_left == 1 && in_known == out_known) o->d[minus] = (sdim){-1, left};
}

static void set_vals_from_tensor(sinfo *s, const fy_value *t)
{
    s->n_vals = -1;
    if (!t || !fy_dtype_is_int(t->dtype) || t->rank > 1 || t->count > FERRY_MAX_RANK) return;
    s->n_vals = (int)t->count;
    for (int64_t i = 0; i < t->count; i++) s->vals[i] = (sdim){fy_tensor_get_i64(t, i), NULL};
}

static void from_tensor(sinfo *s, const fy_value *t)
{
    s->known = 1;
    s->dtype = t->dtype;
    s->rank = t->rank;
    for (int i = 0; i < t->rank; i++) s->d[i] = (sdim){t->dims[i], NULL};
    set_vals_from_tensor(s, t);
    s->t = t;
}

/* Exact integers of constant input i (1-D or scalar); count, or -1 if not a known constant. */
static int const_input_ints(const sinfo *vals, const fy_node *n, int i, int64_t *out)
{
    const fy_value *t = i < n->n_inputs && n->inputs[i] >= 0 ? vals[n->inputs[i]].t : NULL;
    if (!t || !fy_dtype_is_int(t->dtype) || t->rank > 1 || t->count > FERRY_MAX_RANK) return -1;
    for (int64_t j = 0; j < t->count; j++) out[j] = fy_tensor_get_i64(t, j);
    return (int)t->count;
}

/* Extent of one sliced dim (ONNX clamping rules); *first gets the first index taken. A
 * symbolic dim survives only a full slice. */
static sdim slice_dim(sdim d, int64_t s, int64_t e, int64_t step, int64_t *first)
{
    if (step == 0 || step < -INT64_MAX) return UNKNOWN;
    if (d.v < 0) return step == 1 && s == 0 && e >= INT32_MAX ? d : UNKNOWN;
    int64_t n = d.v, cnt;
    if (s < 0) s += n;
    if (e < 0) e += n;
    if (step > 0) {
        s = s < 0 ? 0 : s > n ? n : s;
        e = e < 0 ? 0 : e > n ? n : e;
        cnt = e > s ? (e - s - 1) / step + 1 : 0;
    } else {
        s = s < 0 ? 0 : s > n - 1 ? n - 1 : s;
        e = e < -1 ? -1 : e > n - 1 ? n - 1 : e;
        cnt = s > e ? (s - e - 1) / -step + 1 : 0;
    }
    *first = s;
    return (sdim){cnt, NULL};
}

/* Slice with constant starts/ends/axes/steps (inputs from opset 10, attributes before). */
static void infer_slice(const fy_node *n, const sinfo *vals, const sinfo *x, sinfo *o)
{
    int64_t st[FERRY_MAX_RANK], en[FERRY_MAX_RANK], ax[FERRY_MAX_RANK], sp[FERRY_MAX_RANK];
    const int64_t *p;
    int ns, ne, na = -1, nsp = -1;
    if (x->rank < 0) return;
    if (n->opset >= 10) {
        ns = const_input_ints(vals, n, 1, st);
        ne = const_input_ints(vals, n, 2, en);
        if (n->n_inputs > 3 && n->inputs[3] >= 0 && (na = const_input_ints(vals, n, 3, ax)) < 0) return;
        if (n->n_inputs > 4 && n->inputs[4] >= 0 && (nsp = const_input_ints(vals, n, 4, sp)) < 0) return;
    } else {
        ns = (int)attr_ints(n, "starts", &p);
        if (ns < 0 || ns > FERRY_MAX_RANK) return;
        memcpy(st, p, sizeof(int64_t) * ns);
        ne = (int)attr_ints(n, "ends", &p);
        if (ne < 0 || ne > FERRY_MAX_RANK) return;
        memcpy(en, p, sizeof(int64_t) * ne);
        na = (int)attr_ints(n, "axes", &p);
        if (na > FERRY_MAX_RANK) return;
        if (na >= 0) memcpy(ax, p, sizeof(int64_t) * na);
    }
    if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns)) return;
    sdim d[FERRY_MAX_RANK];
    int64_t first[FERRY_MAX_RANK] = {0};
    memcpy(d, x->d, sizeof d);
    for (int i = 0; i < ns; i++) {
        int a = norm_axis(na >= 0 ? ax[i] : i, x->rank);
        if (a < 0) return;
        d[a] = slice_dim(x->d[a], st[i], en[i], nsp >= 0 ? sp[i] : 1, &first[a]);
    }
    o->rank = x->rank;
    memcpy(o->d, d, sizeof d);
    /* a slice of tracked shape values (Shape -> Slice) keeps the values it takes */
    if (x->rank == 1 && x->n_vals >= 0 && x->d[0].v == x->n_vals && d[0].v >= 0) {
        int64_t step = nsp >= 0 ? sp[0] : 1;
        o->n_vals = (int)d[0].v;
        for (int64_t i = 0; i < d[0].v; i++) o->vals[i] = x->vals[first[0] + i * step];
    }
}

static void infer_node(const fy_node *n, sinfo *vals)
{
    const char *op = n->op_type;
    const sinfo *x = input(vals, n, 0);
    sinfo o = {1, x->dtype, -1, {{0, 0}}, -1, {{0, 0}}, NULL};
    const int64_t *axes_attr = NULL;
    int64_t ints[FERRY_MAX_RANK];

    if (n->domain[0] && strcmp(n->domain, "ai.onnx") != 0) return;
    if (in_list(op, same_shape_ops)) {
        o.rank = x->rank;
        memcpy(o.d, x->d, sizeof o.d);
        o.n_vals = strcmp(op, "Identity") == 0 ? x->n_vals : -1;
        memcpy(o.vals, x->vals, sizeof o.vals);
        /* quantize: the zero point's type (uint8 when omitted); dequantize: the scale's */
        if (strcmp(op, "QuantizeLinear") == 0)
            o.dtype = n->n_inputs > 2 && n->inputs[2] >= 0 ? input(vals, n, 2)->dtype
                                                            : FERRY_DTYPE_U8;
        else if (strcmp(op, "DequantizeLinear") == 0)
            o.dtype = input(vals, n, 1)->dtype;
    } else if (in_list(op, broadcast_ops) || in_list(op, compare_ops)) {
        o.rank = x->rank;
        memcpy(o.d, x->d, sizeof o.d);
        for (int i = 1; i < n->n_inputs; i++) {
            sinfo acc = o;
            broadcast(&acc, input(vals, n, i), &o);
        }
        if (in_list(op, compare_ops)) o.dtype = FERRY_DTYPE_BOOL;
    } else if (strcmp(op, "Where") == 0) {
        sinfo t;
        broadcast(x, input(vals, n, 1), &t);
        broadcast(&t, input(vals, n, 2), &o);
        o.dtype = input(vals, n, 1)->dtype;
    } else if (strcmp(op, "Cast") == 0) {
        o = *x;
        o.dtype = (ferry_dtype)attr_i(n, "to", 0);
        if (!fy_dtype_is_int(o.dtype)) o.n_vals = -1;
    } else if (strcmp(op, "CastLike") == 0) {
        o = *x;
        o.dtype = input(vals, n, 1)->dtype;
        o.n_vals = -1;
    } else if (strcmp(op, "MatMul") == 0) {
        infer_matmul(x, input(vals, n, 1), &o);
    } else if (strcmp(op, "Gemm") == 0) {
        const sinfo *b = input(vals, n, 1);
        if (x->rank == 2 && b->rank == 2) {
            o.rank = 2;
            o.d[0] = x->d[attr_i(n, "transA", 0) ? 1 : 0];
            o.d[1] = b->d[attr_i(n, "transB", 0) ? 0 : 1];
        }
    } else if (strcmp(op, "Conv") == 0) {
        infer_window_op(n, x, input(vals, n, 1), &o, 1);
    } else if (strcmp(op, "MaxPool") == 0 || strcmp(op, "AveragePool") == 0 ||
               strcmp(op, "LpPool") == 0) {
        infer_window_op(n, x, NULL, &o, 0);
    } else if (strncmp(op, "Global", 6) == 0) {
        if (x->rank >= 2) {
            o.rank = x->rank;
            o.d[0] = x->d[0], o.d[1] = x->d[1];
            for (int i = 2; i < x->rank; i++) o.d[i] = (sdim){1, NULL};
        }
    } else if (strcmp(op, "Flatten") == 0) {
        int axis = x->rank >= 0 ? norm_axis(attr_i(n, "axis", 1), x->rank + 1) : -1;
        if (axis >= 0) {
            o.rank = 2;
            sdim parts[2] = {{1, NULL}, {1, NULL}};
            for (int i = 0; i < x->rank; i++) {
                sdim *p = &parts[i >= axis];
                if (p->v >= 0 && x->d[i].v >= 0) {
                    if (__builtin_mul_overflow(p->v, x->d[i].v, &p->v)) *p = UNKNOWN;
                } else if (p->v == 1 && !p->sym) *p = x->d[i];
                else if (x->d[i].v != 1) *p = UNKNOWN;
            }
            o.d[0] = parts[0], o.d[1] = parts[1];
        }
    } else if (strcmp(op, "Transpose") == 0) {
        if (x->rank >= 0) {
            int64_t np = attr_ints(n, "perm", &axes_attr);
            o.rank = x->rank;
            for (int i = 0; i < x->rank; i++) {
                int64_t p = np == x->rank ? axes_attr[i] : x->rank - 1 - i;
                o.d[i] = p >= 0 && p < x->rank ? x->d[p] : UNKNOWN;
            }
        }
    } else if (strcmp(op, "Reshape") == 0) {
        infer_reshape(n, x, input(vals, n, 1), &o);
    } else if (strcmp(op, "Shape") == 0) {
        o.dtype = FERRY_DTYPE_I64;
        if (x->rank >= 0) {
            int64_t start = attr_i(n, "start", 0), end = attr_i(n, "end", x->rank);
            if (start < 0) start += x->rank;
            if (end < 0) end += x->rank;
            start = start < 0 ? 0 : start > x->rank ? x->rank : start;
            end = end < start ? start : end > x->rank ? x->rank : end;
            o.rank = 1;
            o.d[0] = (sdim){end - start, NULL};
            o.n_vals = (int)(end - start);
            for (int64_t i = start; i < end; i++) o.vals[i - start] = x->d[i];
        }
    } else if (strcmp(op, "Size") == 0) {
        o.dtype = FERRY_DTYPE_I64;
        o.rank = 0;
    } else if (strcmp(op, "Gather") == 0) {
        const sinfo *idx = input(vals, n, 1);
        int axis = x->rank > 0 ? norm_axis(attr_i(n, "axis", 0), x->rank) : -1;
        if (axis >= 0 && idx->rank >= 0 && x->rank + idx->rank - 1 <= FERRY_MAX_RANK) {
            int r = 0;
            for (int i = 0; i < axis; i++) o.d[r++] = x->d[i];
            for (int i = 0; i < idx->rank; i++) o.d[r++] = idx->d[i];
            for (int i = axis + 1; i < x->rank; i++) o.d[r++] = x->d[i];
            o.rank = r;
            int ni = const_ints(idx, ints, FERRY_MAX_RANK);
            if (x->rank == 1 && x->n_vals >= 0 && ni >= 0 && idx->rank <= 1) {
                o.n_vals = ni;
                for (int i = 0; i < ni; i++) {
                    int64_t j = ints[i] < 0 ? ints[i] + x->n_vals : ints[i];
                    o.vals[i] = j >= 0 && j < x->n_vals ? x->vals[j] : UNKNOWN;
                }
            }
        }
    } else if (strcmp(op, "Unsqueeze") == 0 || strcmp(op, "Squeeze") == 0) {
        int unsq = op[0] == 'U';
        int na = n->opset >= 13 ? const_ints(input(vals, n, 1), ints, FERRY_MAX_RANK)
                                : (int)attr_ints(n, "axes", &axes_attr);
        if (n->opset < 13 && na > 0 && na <= FERRY_MAX_RANK) memcpy(ints, axes_attr, sizeof(int64_t) * na);
        if (x->rank >= 0 && na >= 0) {
            int out_rank = unsq ? x->rank + na : x->rank - na;
            uint32_t mark = 0;
            for (int i = 0; i < na; i++) {
                int a = norm_axis(ints[i], unsq ? out_rank : x->rank);
                if (a < 0) return;
                mark |= 1u << a;
            }
            if (!unsq && na == 0) {
                for (int i = 0; i < x->rank; i++)
                    if (x->d[i].v == 1) mark |= 1u << i;
                    else if (x->d[i].v < 0) return;
                out_rank = x->rank - __builtin_popcount(mark);
            }
            if (out_rank < 0 || out_rank > FERRY_MAX_RANK) return;
            o.rank = out_rank;
            for (int i = 0, j = 0; i < (unsq ? out_rank : x->rank); i++) {
                if (unsq) o.d[i] = (mark >> i & 1) ? (sdim){1, NULL} : x->d[j++];
                else if (!(mark >> i & 1)) o.d[j++] = x->d[i];
            }
            if (x->n_vals >= 0 && (x->rank == 0 || x->rank == 1) && out_rank <= 1) {
                o.n_vals = x->n_vals;
                memcpy(o.vals, x->vals, sizeof o.vals);
            }
        }
    } else if (strcmp(op, "Slice") == 0) {
        infer_slice(n, vals, x, &o);
    } else if (strcmp(op, "Concat") == 0) {
        int axis = x->rank > 0 ? norm_axis(attr_i(n, "axis", 0), x->rank) : -1;
        if (axis < 0) return;
        o.rank = x->rank;
        memcpy(o.d, x->d, sizeof o.d);
        int all_vals = x->rank == 1;
        o.n_vals = 0;
        for (int i = 0; i < n->n_inputs; i++) {
            const sinfo *s = input(vals, n, i);
            if (s->rank != x->rank) return;
            if (i) o.d[axis] = o.d[axis].v >= 0 && s->d[axis].v >= 0
                                   ? (sdim){o.d[axis].v + s->d[axis].v, NULL} : UNKNOWN;
            /* a piece of unknown contents but known length: that many unknown entries (a
             * Reshape target then keeps its rank and the pieces that are known) */
            int nv = s->n_vals >= 0 ? s->n_vals : s->rank == 1 && s->d[0].v >= 0 ? (int)s->d[0].v : -1;
            if (nv < 0 || o.n_vals + nv > FERRY_MAX_RANK) all_vals = 0;
            else if (s->n_vals < 0) {
                for (int j = 0; j < nv; j++) o.vals[o.n_vals++] = UNKNOWN;
            } else {
                memcpy(o.vals + o.n_vals, s->vals, sizeof(sdim) * s->n_vals);
                o.n_vals += s->n_vals;
            }
        }
        if (!all_vals) o.n_vals = -1;
    } else if (strncmp(op, "Reduce", 6) == 0 || strcmp(op, "ArgMax") == 0 || strcmp(op, "ArgMin") == 0) {
        int keep = (int)attr_i(n, "keepdims", 1), arg = op[0] == 'A';
        int na;
        if (arg) ints[0] = attr_i(n, "axis", 0), na = 1;
        else if (n->n_inputs > 1) na = const_ints(input(vals, n, 1), ints, FERRY_MAX_RANK);
        else {
            na = (int)attr_ints(n, "axes", &axes_attr);
            if (na > FERRY_MAX_RANK) return;
            if (na > 0) memcpy(ints, axes_attr, sizeof(int64_t) * na);
            if (na < 0) na = 0;
        }
        if (x->rank < 0 || na < 0) return;
        uint32_t mark = 0;
        if (na == 0) mark = (1u << x->rank) - 1;
        for (int i = 0; i < na; i++) {
            int a = norm_axis(ints[i], x->rank);
            if (a < 0) return;
            mark |= 1u << a;
        }
        o.rank = 0;
        for (int i = 0; i < x->rank; i++) {
            if (!(mark >> i & 1)) o.d[o.rank++] = x->d[i];
            else if (keep) o.d[o.rank++] = (sdim){1, NULL};
        }
        if (arg) o.dtype = FERRY_DTYPE_I64;
    } else if (strcmp(op, "Constant") == 0) {
        const fy_attr *a = fy_node_attr(n, "value");
        if (a && a->t) from_tensor(&o, a->t);
        else return;
    } else if (strcmp(op, "ConstantOfShape") == 0) {
        const sinfo *s = input(vals, n, 0);
        const fy_attr *a = fy_node_attr(n, "value");
        o.dtype = a && a->t ? a->t->dtype : FERRY_DTYPE_F32;
        if (s->n_vals >= 0) {
            o.rank = s->n_vals;
            memcpy(o.d, s->vals, sizeof(sdim) * s->n_vals);
        }
    } else {
        return;
    }
    if (strcmp(op, "Constant") != 0) o.t = NULL; /* only constants carry exact contents */
    if (n->n_outputs > 0 && n->outputs[0] >= 0) vals[n->outputs[0]] = o;
}

static void store(fy_value_info *vi, const sinfo *s)
{
    fy_type_info *t = &vi->type;
    if (!s->known) return;
    if (t->kind && t->kind != FERRY_VALUE_TENSOR) return;
    if (!t->kind) t->kind = FERRY_VALUE_TENSOR;
    if (!t->dtype) t->dtype = s->dtype;
    if (t->rank >= 0 || s->rank < 0) return;
    t->rank = s->rank;
    for (int i = 0; i < s->rank; i++) {
        t->dims[i] = s->d[i].v;
        if (s->d[i].v < 0 && s->d[i].sym) t->dim_names[i] = strdup(s->d[i].sym);
    }
}

void fy_graph_infer(fy_graph *g)
{
    sinfo *vals = calloc(g->n_values + 1, sizeof *vals);
    if (!vals) return; /* inference is best effort: without memory, types stay undeclared */
    for (int v = 0; v < g->n_values; v++) {
        const fy_value_info *vi = &g->values[v];
        sinfo *s = &vals[v];
        s->rank = -1;
        s->n_vals = -1;
        if (vi->init) {
            from_tensor(s, vi->init);
            continue;
        }
        if (vi->type.kind != FERRY_VALUE_TENSOR) continue;
        s->known = 1;
        s->dtype = vi->type.dtype;
        s->rank = vi->type.rank;
        for (int i = 0; i < vi->type.rank; i++)
            s->d[i] = (sdim){vi->type.dims[i], vi->type.dim_names[i]};
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *n = &g->nodes[i];
        infer_node(n, vals);
        for (int j = 0; j < n->n_outputs; j++)
            if (n->outputs[j] >= 0) store(&g->values[n->outputs[j]], &vals[n->outputs[j]]);
        /* later nodes must see what store() merged (declared types win over inferred) */
        for (int j = 0; j < n->n_outputs; j++) {
            int v = n->outputs[j];
            if (v < 0) continue;
            const fy_type_info *t = &g->values[v].type;
            if (t->kind != FERRY_VALUE_TENSOR || t->rank < 0) continue;
            vals[v].known = 1;
            if (!vals[v].dtype) vals[v].dtype = t->dtype;
            vals[v].rank = t->rank;
            for (int d = 0; d < t->rank; d++) vals[v].d[d] = (sdim){t->dims[d], t->dim_names[d]};
        }
    }
    free(vals);
}
