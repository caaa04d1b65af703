/* write.c — ferry IR → ONNX file. The IR is turned back into protobuf-c messages (weights are
 * pointed at, not copied), packed straight into the file, and large weights go to an external
 * data file beside it when asked or when the model would not fit protobuf's 2 GB limit. */
#include "onnx/write.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/optimize.h"

/* the producer_version ferry writes; bump with the file format ferry produces */
#define FY_PRODUCER_VERSION "0.1"

/* protobuf messages are capped at 2 GB; stay well below it so the rest of the graph fits */
#define FY_INLINE_WEIGHTS_MAX ((int64_t)1800 * 1024 * 1024)
#define FY_EXTERNAL_ALIGN 64

typedef struct writer {
    void **blocks; /* every allocation of the message tree, freed at the end */
    size_t n_blocks, cap_blocks;
    int failed;
    /* external data */
    int external;
    size_t external_min;
    FILE *data_file;
    char *data_path, *data_name;
    uint64_t data_off;
    ferry_status data_rc;
    ferry_status rc; /* a failure other than memory or data-file I/O */
    /* fields of the original model the IR does not hold */
    const Onnx__ModelProto *orig;
} writer;

static void *wa(writer *w, size_t n)
{
    if (w->failed) return NULL;
    if (w->n_blocks == w->cap_blocks) {
        size_t cap = w->cap_blocks ? w->cap_blocks * 2 : 256;
        void **b = realloc(w->blocks, sizeof *b * cap);
        if (!b) {
            w->failed = 1;
            return NULL;
        }
        w->blocks = b;
        w->cap_blocks = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        w->failed = 1;
        return NULL;
    }
    w->blocks[w->n_blocks++] = p;
    return p;
}

static char *wstr(writer *w, const char *s)
{
    size_t n = strlen(s ? s : "");
    char *d = wa(w, n + 1);
    if (d && n) memcpy(d, s, n);
    return d;
}

#define NEWMSG(w, T, INIT, var)                                                                    \
    T *var = wa(w, sizeof(T));                                                                     \
    if (!var) return NULL;                                                                         \
    {                                                                                              \
        T init_ = INIT;                                                                            \
        *var = init_;                                                                              \
    }

/* ---- types ------------------------------------------------------------------------------- */

static Onnx__TypeProto *tensor_type(writer *w, const fy_type_info *t, int with_shape)
{
    NEWMSG(w, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT, tp);
    NEWMSG(w, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT, tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    if (t->dtype) {
        tt->has_elem_type = 1;
        tt->elem_type = (int32_t)t->dtype;
    }
    if (with_shape && t->rank >= 0) {
        NEWMSG(w, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT, sh);
        sh->n_dim = (size_t)t->rank;
        sh->dim = wa(w, sizeof(void *) * (t->rank + 1));
        if (!sh->dim) return NULL;
        for (int i = 0; i < t->rank; i++) {
            NEWMSG(w, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT, d);
            if (t->dim_names[i]) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                if (!(d->dim_param = wstr(w, t->dim_names[i]))) return NULL;
            } else if (t->dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = t->dims[i];
            } /* else: an unknown dim, neither value nor name */
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    return tp;
}

/* The TypeProto of a declared type; NULL (and no failure) when nothing is declared. */
static Onnx__TypeProto *type_proto(writer *w, const fy_type_info *t)
{
    if (!t->kind) return NULL;
    Onnx__TypeProto *inner;
    if (t->kind == FERRY_VALUE_SEQUENCE) {
        /* the IR keeps a sequence's element type, not its element shape */
        Onnx__TypeProto *elem = tensor_type(w, t, 0);
        if (!elem) return NULL;
        NEWMSG(w, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT, tp);
        NEWMSG(w, Onnx__TypeProto__Sequence, ONNX__TYPE_PROTO__SEQUENCE__INIT, st);
        st->elem_type = elem;
        tp->value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE;
        tp->sequence_type = st;
        inner = tp;
    } else {
        inner = tensor_type(w, t, 1);
    }
    if (!inner || !t->optional) return inner;
    NEWMSG(w, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT, tp);
    NEWMSG(w, Onnx__TypeProto__Optional, ONNX__TYPE_PROTO__OPTIONAL__INIT, ot);
    ot->elem_type = inner;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE;
    tp->optional_type = ot;
    return tp;
}

static Onnx__ValueInfoProto *value_info(writer *w, const fy_value_info *v)
{
    NEWMSG(w, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT, vi);
    if (!(vi->name = wstr(w, v->name))) return NULL;
    vi->type = type_proto(w, &v->type);
    return w->failed ? NULL : vi;
}

/* ---- tensors ----------------------------------------------------------------------------- */

static Onnx__StringStringEntryProto *entry(writer *w, const char *k, const char *v)
{
    NEWMSG(w, Onnx__StringStringEntryProto, ONNX__STRING_STRING_ENTRY_PROTO__INIT, e);
    e->key = wstr(w, k);
    e->value = wstr(w, v);
    return e->key && e->value ? e : NULL;
}

/* Append bytes to the external data file; *offset gets where they start. */
static int external_put(writer *w, const void *data, size_t n, uint64_t *offset)
{
    if (!w->data_file) {
        w->data_file = fopen(w->data_path, "wb");
        if (!w->data_file) {
            w->data_rc = fy_error(FERRY_E_IO, "cannot create %s: %s", w->data_path, strerror(errno));
            return 0;
        }
    }
    static const char zeros[FY_EXTERNAL_ALIGN] = {0};
    size_t pad = (size_t)((FY_EXTERNAL_ALIGN - w->data_off % FY_EXTERNAL_ALIGN) % FY_EXTERNAL_ALIGN);
    if ((pad && fwrite(zeros, 1, pad, w->data_file) != pad) ||
        (n && fwrite(data, 1, n, w->data_file) != n)) {
        w->data_rc = fy_error(FERRY_E_IO, "cannot write %s: %s", w->data_path, strerror(errno));
        return 0;
    }
    *offset = w->data_off + pad;
    w->data_off += pad + n;
    return 1;
}

static Onnx__TensorProto *tensor_proto(writer *w, const fy_value *t, const char *name)
{
    NEWMSG(w, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT, tp);
    if (name && !(tp->name = wstr(w, name))) return NULL;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->n_dims = (size_t)t->rank;
    tp->dims = wa(w, sizeof(int64_t) * (t->rank + 1));
    if (!tp->dims) return NULL;
    if (t->rank) memcpy(tp->dims, t->dims, sizeof(int64_t) * t->rank);
    if (t->dtype == FERRY_DTYPE_STRING) {
        tp->n_string_data = (size_t)t->count;
        tp->string_data = wa(w, sizeof(ProtobufCBinaryData) * (t->count + 1));
        if (!tp->string_data) return NULL;
        char *const *s = t->data;
        for (int64_t i = 0; i < t->count; i++) {
            tp->string_data[i].len = strlen(s[i]);
            tp->string_data[i].data = (uint8_t *)s[i]; /* borrowed: packed before t dies */
        }
        return tp;
    }
    size_t n = (size_t)t->count * ferry_dtype_size(t->dtype);
    if (w->external && name && n >= w->external_min) {
        uint64_t off;
        if (!external_put(w, t->data, n, &off)) {
            w->failed = 1;
            return NULL;
        }
        char num[32];
        tp->has_data_location = 1;
        tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        tp->n_external_data = 3;
        tp->external_data = wa(w, sizeof(void *) * 3);
        if (!tp->external_data) return NULL;
        tp->external_data[0] = entry(w, "location", w->data_name);
        snprintf(num, sizeof num, "%llu", (unsigned long long)off);
        tp->external_data[1] = entry(w, "offset", num);
        snprintf(num, sizeof num, "%zu", n);
        tp->external_data[2] = entry(w, "length", num);
        return w->failed ? NULL : tp;
    }
    tp->has_raw_data = 1;
    tp->raw_data.len = n;
    tp->raw_data.data = (uint8_t *)t->data; /* borrowed: the model outlives the packing */
    return tp;
}

/* ---- graphs ------------------------------------------------------------------------------ */

static Onnx__GraphProto *graph_proto(writer *w, const fy_graph *g);

static Onnx__AttributeProto *attr_proto(writer *w, const fy_attr *a)
{
    NEWMSG(w, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT, ap);
    if (!(ap->name = wstr(w, a->name))) return NULL;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    switch (a->type) {
    case FY_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
    case FY_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
    case FY_ATTR_STRING:
        ap->has_s = 1;
        ap->s.len = a->s_len;
        ap->s.data = (uint8_t *)a->s;
        break;
    case FY_ATTR_TENSOR:
        if (!(ap->t = tensor_proto(w, a->t, NULL))) return NULL;
        break;
    case FY_ATTR_GRAPH:
        if (!(ap->g = graph_proto(w, a->g))) return NULL;
        break;
    case FY_ATTR_FLOATS:
        ap->n_floats = (size_t)a->n;
        ap->floats = a->floats;
        break;
    case FY_ATTR_INTS:
        ap->n_ints = (size_t)a->n;
        ap->ints = a->ints;
        break;
    case FY_ATTR_STRINGS:
        ap->n_strings = (size_t)a->n;
        ap->strings = wa(w, sizeof(ProtobufCBinaryData) * (a->n + 1));
        if (!ap->strings) return NULL;
        for (int64_t i = 0; i < a->n; i++) {
            ap->strings[i].len = strlen(a->strings[i]);
            ap->strings[i].data = (uint8_t *)a->strings[i];
        }
        break;
    case FY_ATTR_TENSORS:
        ap->n_tensors = (size_t)a->n;
        ap->tensors = wa(w, sizeof(void *) * (a->n + 1));
        if (!ap->tensors) return NULL;
        for (int64_t i = 0; i < a->n; i++)
            if (!(ap->tensors[i] = tensor_proto(w, a->tensors[i], NULL))) return NULL;
        break;
    case FY_ATTR_GRAPHS:
        ap->n_graphs = (size_t)a->n;
        ap->graphs = wa(w, sizeof(void *) * (a->n + 1));
        if (!ap->graphs) return NULL;
        for (int64_t i = 0; i < a->n; i++)
            if (!(ap->graphs[i] = graph_proto(w, a->graphs[i]))) return NULL;
        break;
    case FY_ATTR_TYPE_PROTO:
        if (!(ap->tp = type_proto(w, &a->tp[0])) && !w->failed) {
            NEWMSG(w, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT, empty);
            ap->tp = empty;
        }
        break;
    case FY_ATTR_TYPE_PROTOS:
        ap->n_type_protos = (size_t)a->n;
        ap->type_protos = wa(w, sizeof(void *) * (a->n + 1));
        if (!ap->type_protos) return NULL;
        for (int64_t i = 0; i < a->n; i++) {
            ap->type_protos[i] = type_proto(w, &a->tp[i]);
            if (!ap->type_protos[i]) {
                NEWMSG(w, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT, empty);
                ap->type_protos[i] = empty;
            }
        }
        break;
    default: break; /* the loader accepts no other type */
    }
    return w->failed ? NULL : ap;
}

static Onnx__NodeProto *node_proto(writer *w, const fy_graph *g, const fy_node *n)
{
    if (strcmp(n->domain, "ai.ferry") == 0) { /* load-time rewrites no other runtime knows */
        w->rc = fy_error(FERRY_E_UNSUPPORTED,
                         "node \"%s\" (ai.ferry:%s) exists only inside ferry; write a model "
                         "loaded with FERRY_LOAD_NO_OPTIMIZE",
                         n->name, n->op_type);
        w->failed = 1;
        return NULL;
    }
    NEWMSG(w, Onnx__NodeProto, ONNX__NODE_PROTO__INIT, np);
    np->name = wstr(w, n->name);
    np->op_type = wstr(w, n->op_type);
    np->domain = wstr(w, n->domain);
    np->n_input = (size_t)n->n_inputs;
    np->input = wa(w, sizeof(char *) * (n->n_inputs + 1));
    np->n_output = (size_t)n->n_outputs;
    np->output = wa(w, sizeof(char *) * (n->n_outputs + 1));
    np->n_attribute = (size_t)n->n_attrs;
    np->attribute = wa(w, sizeof(void *) * (n->n_attrs + 1));
    if (!np->input || !np->output || !np->attribute) return NULL;
    for (int i = 0; i < n->n_inputs; i++)
        if (!(np->input[i] = wstr(w, n->inputs[i] >= 0 ? g->values[n->inputs[i]].name : "")))
            return NULL;
    for (int i = 0; i < n->n_outputs; i++)
        if (!(np->output[i] = wstr(w, n->outputs[i] >= 0 ? g->values[n->outputs[i]].name : "")))
            return NULL;
    for (int i = 0; i < n->n_attrs; i++)
        if (!(np->attribute[i] = attr_proto(w, &n->attrs[i]))) return NULL;
    return w->failed ? NULL : np;
}

static Onnx__GraphProto *graph_proto(writer *w, const fy_graph *g)
{
    NEWMSG(w, Onnx__GraphProto, ONNX__GRAPH_PROTO__INIT, gp);
    if (!(gp->name = wstr(w, g->name))) return NULL;
    gp->node = wa(w, sizeof(void *) * (g->n_nodes + 1));
    gp->input = wa(w, sizeof(void *) * (g->n_inputs + 1));
    gp->output = wa(w, sizeof(void *) * (g->n_outputs + 1));
    gp->initializer = wa(w, sizeof(void *) * (g->n_values + 1));
    if (!gp->node || !gp->input || !gp->output || !gp->initializer) return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (!(gp->node[gp->n_node++] = node_proto(w, g, &g->nodes[i]))) return NULL;
    for (int i = 0; i < g->n_values; i++) {
        const fy_value_info *v = &g->values[i];
        if (!v->init) continue;
        if (!(gp->initializer[gp->n_initializer++] = tensor_proto(w, v->init, v->name))) return NULL;
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (!(gp->input[gp->n_input++] = value_info(w, &g->values[g->inputs[i]]))) return NULL;
    for (int i = 0; i < g->n_outputs; i++)
        if (!(gp->output[gp->n_output++] = value_info(w, &g->values[g->outputs[i]]))) return NULL;
    return gp;
}

/* ---- model ------------------------------------------------------------------------------- */

typedef struct opset_list {
    int n;
    const char *domain[64];
    int64_t version[64];
    int64_t need[64]; /* the highest opset a node of the domain was made for */
} opset_list;

static bool is_onnx_domain(const char *d) { return !d[0] || strcmp(d, "ai.onnx") == 0; }

/* Domains the nodes use that the model does not import yet (fused ops ferry wrote). */
static void collect_domains(const fy_graph *g, opset_list *ol)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *n = &g->nodes[i];
        int j = 0;
        while (j < ol->n && (is_onnx_domain(n->domain) ? !is_onnx_domain(ol->domain[j])
                                                       : strcmp(ol->domain[j], n->domain) != 0))
            j++;
        if (j == ol->n && ol->n < 64) {
            ol->domain[ol->n] = n->domain;
            ol->version[ol->n] = n->opset > 0 ? n->opset : 1;
            ol->need[ol->n++] = n->opset > 0 ? n->opset : 1;
        } else if (j < ol->n && n->opset > ol->need[j]) {
            ol->need[j] = n->opset; /* a node a pass made at a newer opset (LayerNormalization) */
        }
        for (int a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g) collect_domains(n->attrs[a].g, ol);
            for (int64_t k = 0; n->attrs[a].graphs && k < n->attrs[a].n; k++)
                collect_domains(n->attrs[a].graphs[k], ol);
        }
    }
}

static bool inits_outside_inputs(const fy_graph *g)
{
    for (int i = 0; i < g->n_values; i++) {
        if (!g->values[i].init) continue;
        bool input = false;
        for (int j = 0; j < g->n_inputs && !input; j++) input = g->inputs[j] == i;
        if (!input) return true;
    }
    return false;
}

static int64_t weight_bytes(const fy_graph *g)
{
    int64_t total = 0;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].init)
            total += g->values[i].init->count * (int64_t)ferry_dtype_size(g->values[i].init->dtype);
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            const fy_attr *at = &g->nodes[i].attrs[a];
            if (at->g) total += weight_bytes(at->g);
            for (int64_t k = 0; at->graphs && k < at->n; k++) total += weight_bytes(at->graphs[k]);
        }
    return total;
}

static Onnx__ModelProto *model_proto(writer *w, const struct ferry_model *m, const fy_write_options *o)
{
    const Onnx__ModelProto *orig = m->proto;
    NEWMSG(w, Onnx__ModelProto, ONNX__MODEL_PROTO__INIT, mp);
    mp->has_ir_version = 1;
    mp->ir_version = orig && orig->has_ir_version ? orig->ir_version : 8;
    /* below IR 4 every initializer must also be a graph input; passes add ones that are not */
    if (mp->ir_version < 4 && inits_outside_inputs(m->graph)) mp->ir_version = 4;
    mp->producer_name = wstr(w, "ferry");
    mp->producer_version = wstr(w, FY_PRODUCER_VERSION);
    if (orig) {
        mp->domain = orig->domain;
        mp->has_model_version = orig->has_model_version;
        mp->model_version = orig->model_version;
        mp->doc_string = orig->doc_string;
        mp->n_functions = orig->n_functions; /* model-local functions, kept as they were */
        mp->functions = orig->functions;
    }
    opset_list ol = {0};
    for (int i = 0; i < m->n_opsets && ol.n < 64; i++) {
        ol.domain[ol.n] = m->opset_domains[i];
        ol.version[ol.n++] = m->opset_versions[i];
    }
    for (int i = 0; i < ol.n; i++) ol.need[i] = ol.version[i];
    collect_domains(m->graph, &ol);
    for (int i = 0; i < ol.n; i++) {
        if (ol.need[i] <= ol.version[i]) continue;
        /* ONNX opsets 13 to 17 only add types, ops and attributes whose defaults keep the old
         * meaning, so a 13+ model may import 17 for a fused node; below 13 semantics changed
         * (Softmax, Squeeze, Split...) and the import cannot be raised */
        if (is_onnx_domain(ol.domain[i]) && (ol.version[i] < 13 || ol.need[i] > 17)) {
            w->rc = fy_error(FERRY_E_UNSUPPORTED,
                             "a rewritten node needs ONNX opset %lld but the model imports opset %lld",
                             (long long)ol.need[i], (long long)ol.version[i]);
            w->failed = 1;
            return NULL;
        }
        ol.version[i] = ol.need[i];
    }
    mp->n_opset_import = (size_t)ol.n;
    mp->opset_import = wa(w, sizeof(void *) * (ol.n + 1));
    if (!mp->opset_import) return NULL;
    for (int i = 0; i < ol.n; i++) {
        NEWMSG(w, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT, os);
        os->domain = wstr(w, ol.domain[i]);
        os->has_version = 1;
        os->version = ol.version[i];
        mp->opset_import[i] = os;
    }
    /* metadata: the model's own entries, then ours (replacing same keys) */
    size_t n_orig = orig ? orig->n_metadata_props : 0;
    mp->metadata_props = wa(w, sizeof(void *) * (n_orig + (o ? o->n_meta : 0) + 1));
    if (!mp->metadata_props) return NULL;
    for (size_t i = 0; i < n_orig; i++) {
        const Onnx__StringStringEntryProto *e = orig->metadata_props[i];
        bool replaced = false;
        for (int k = 0; o && k < o->n_meta && !replaced; k++)
            replaced = e->key && strcmp(e->key, o->meta_keys[k]) == 0;
        if (!replaced) mp->metadata_props[mp->n_metadata_props++] = (Onnx__StringStringEntryProto *)e;
    }
    for (int k = 0; o && k < o->n_meta; k++)
        if (!(mp->metadata_props[mp->n_metadata_props++] = entry(w, o->meta_keys[k], o->meta_values[k])))
            return NULL;
    mp->graph = graph_proto(w, m->graph);
    return w->failed ? NULL : mp;
}

/* protobuf-c output straight into a FILE */
typedef struct file_buffer {
    ProtobufCBuffer base;
    FILE *f;
    int err;
} file_buffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    file_buffer *fb = (file_buffer *)b;
    if (!fb->err && len && fwrite(data, 1, len, fb->f) != len) fb->err = errno ? errno : EIO;
}

ferry_status fy_onnx_write(const struct ferry_model *m, const char *path, const fy_write_options *o)
{
    if (!m || !m->graph || !path || !path[0])
        return fy_error(FERRY_E_INVALID_ARG, "a model and an output path are required");
    writer w = {.orig = m->proto};
    w.external = o && o->external_data;
    int64_t inline_max = o && o->inline_max > 0 ? o->inline_max : FY_INLINE_WEIGHTS_MAX;
    if (!w.external && weight_bytes(m->graph) > inline_max) w.external = 1;
    w.external_min = o && o->external_min ? o->external_min : 1024;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *data_tmp = malloc(plen + 32), *data_final = malloc(plen + 16);
    char *data_name = malloc(strlen(base) + 8);
    ferry_status rc = FERRY_OK;
    FILE *f = NULL;
    if (!tmp || !data_tmp || !data_final || !data_name) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, plen + 16, "%s.tmp", path);
    snprintf(data_final, plen + 16, "%s.data", path);
    snprintf(data_tmp, plen + 32, "%s.data.tmp", path);
    snprintf(data_name, strlen(base) + 8, "%s.data", base);
    w.data_path = data_tmp;
    w.data_name = data_name;

    Onnx__ModelProto *mp = model_proto(&w, m, o);
    if (!mp) {
        rc = w.rc != FERRY_OK        ? w.rc
             : w.data_rc != FERRY_OK ? w.data_rc
                                     : fy_error(FERRY_E_NOMEM, "out of memory");
        goto out;
    }
    f = fopen(tmp, "wb");
    if (!f) {
        rc = fy_error(FERRY_E_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    file_buffer fb = {{file_append}, f, 0};
    onnx__model_proto__pack_to_buffer(mp, &fb.base);
    if (fb.err || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = fy_error(FERRY_E_IO, "cannot write %s: %s", tmp, strerror(fb.err ? fb.err : errno));
        goto out;
    }
    if (w.data_file) {
        if (fflush(w.data_file) != 0 || fsync(fileno(w.data_file)) != 0 || fclose(w.data_file) != 0) {
            w.data_file = NULL;
            rc = fy_error(FERRY_E_IO, "cannot write %s: %s", data_tmp, strerror(errno));
            goto out;
        }
        w.data_file = NULL;
        if (rename(data_tmp, data_final) != 0) {
            rc = fy_error(FERRY_E_IO, "cannot rename %s to %s: %s", data_tmp, data_final, strerror(errno));
            goto out;
        }
    }
    fclose(f);
    f = NULL;
    if (rename(tmp, path) != 0)
        rc = fy_error(FERRY_E_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
out:
    if (f) fclose(f);
    if (w.data_file) fclose(w.data_file);
    if (rc != FERRY_OK) {
        if (tmp) unlink(tmp);
        if (data_tmp) unlink(data_tmp);
    }
    for (size_t i = 0; i < w.n_blocks; i++) free(w.blocks[i]);
    free(w.blocks);
    free(tmp);
    free(data_tmp);
    free(data_final);
    free(data_name);
    return rc;
}

ferry_status ferry_model_save(const ferry_model *m, const char *out_path, int external_data)
{
    fy_write_options o = {.external_data = external_data};
    return fy_onnx_write(m, out_path, &o);
}
