/* model_builder.c — in-memory ONNX model construction for tests; allocation failures abort
 * because this is test scaffolding, not library code. */
#include "model_builder.h"

#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

struct mb_model {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
};

static void *xcalloc(size_t n, size_t s)
{
    void *p = calloc(n ? n : 1, s);
    if (!p) abort();
    return p;
}

#define PUSH(arr, count, item)                                                                     \
    do {                                                                                           \
        (arr) = realloc((arr), sizeof(*(arr)) * ((count) + 1));                                    \
        if (!(arr)) abort();                                                                       \
        (arr)[(count)++] = item;                                                                   \
    } while (0)

mb_model *mb_new(int64_t opset)
{
    mb_model *m = xcalloc(1, sizeof *m);
    onnx__model_proto__init(&m->model);
    onnx__graph_proto__init(&m->graph);
    onnx__operator_set_id_proto__init(&m->opset);
    m->opset.domain = strdup("");
    m->opset.has_version = 1;
    m->opset.version = opset;
    m->opsets[0] = &m->opset;
    m->model.has_ir_version = 1;
    m->model.ir_version = 8;
    m->model.n_opset_import = 1;
    m->model.opset_import = m->opsets;
    m->model.producer_name = strdup("ferry-tests");
    m->model.graph = &m->graph;
    m->graph.name = strdup("test");
    return m;
}

static Onnx__ValueInfoProto *value_info(const char *name, int dtype, int rank, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = xcalloc(1, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = strdup(name);
    if (dtype < 0) return vi;
    Onnx__TypeProto *tp = xcalloc(1, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = xcalloc(1, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    Onnx__TensorShapeProto *sp = xcalloc(1, sizeof *sp);
    onnx__tensor_shape_proto__init(sp);
    sp->n_dim = rank;
    sp->dim = xcalloc(rank, sizeof *sp->dim);
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = xcalloc(1, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = strdup("batch");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        sp->dim[i] = d;
    }
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

void mb_input(mb_model *m, const char *name, int dtype, int rank, const int64_t *dims)
{
    PUSH(m->graph.input, m->graph.n_input, value_info(name, dtype, rank, dims));
}

void mb_output(mb_model *m, const char *name)
{
    PUSH(m->graph.output, m->graph.n_output, value_info(name, -1, 0, NULL));
}

static void split_names(const char *list, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!list || !*list) return;
    char *copy = strdup(list), *save = NULL;
    for (char *p = copy;; p = NULL) {
        char *tok = strtok_r(p, ",", &save);
        if (!tok) break;
        PUSH(*out, *n, strdup(strcmp(tok, "-") == 0 ? "" : tok));
    }
    free(copy);
}

int mb_node(mb_model *m, const char *op, const char *name, const char *inputs, const char *outputs)
{
    Onnx__NodeProto *n = xcalloc(1, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = strdup(op);
    n->name = strdup(name);
    split_names(inputs, &n->input, &n->n_input);
    split_names(outputs, &n->output, &n->n_output);
    PUSH(m->graph.node, m->graph.n_node, n);
    return (int)m->graph.n_node - 1;
}

void mb_attr_int(mb_model *m, int node, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = xcalloc(1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
    Onnx__NodeProto *n = m->graph.node[node];
    PUSH(n->attribute, n->n_attribute, a);
}

static Onnx__AttributeProto *new_attr(mb_model *m, int node, const char *name, int type)
{
    Onnx__AttributeProto *a = xcalloc(1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    a->has_type = 1;
    a->type = type;
    Onnx__NodeProto *n = m->graph.node[node];
    PUSH(n->attribute, n->n_attribute, a);
    return a;
}

void mb_attr_float(mb_model *m, int node, const char *name, float v)
{
    Onnx__AttributeProto *a = new_attr(m, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

void mb_attr_string(mb_model *m, int node, const char *name, const char *v)
{
    Onnx__AttributeProto *a = new_attr(m, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)strdup(v);
}

void mb_attr_ints(mb_model *m, int node, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = new_attr(m, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = n;
    a->ints = xcalloc(n, sizeof(int64_t));
    memcpy(a->ints, v, sizeof(int64_t) * n);
}

void mb_attr_floats(mb_model *m, int node, const char *name, int n, const float *v)
{
    Onnx__AttributeProto *a = new_attr(m, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = n;
    a->floats = xcalloc(n, sizeof(float));
    memcpy(a->floats, v, sizeof(float) * n);
}

/* An initializer of dtype (1 float32, 7 int64) whose values go to the matching typed field. */
static void add_initializer(mb_model *m, const char *name, int dtype, int rank,
                            const int64_t *dims, const void *data)
{
    Onnx__TensorProto *t = xcalloc(1, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = strdup(name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = rank;
    t->dims = xcalloc(rank, sizeof(int64_t));
    size_t count = 1;
    for (int i = 0; i < rank; i++) count *= (size_t)(t->dims[i] = dims[i]);
    if (dtype == 1) {
        t->n_float_data = count;
        t->float_data = xcalloc(count, sizeof(float));
        memcpy(t->float_data, data, count * sizeof(float));
    } else {
        t->n_int64_data = count;
        t->int64_data = xcalloc(count, sizeof(int64_t));
        memcpy(t->int64_data, data, count * sizeof(int64_t));
    }
    PUSH(m->graph.initializer, m->graph.n_initializer, t);
}

void mb_initializer_f32(mb_model *m, const char *name, int rank, const int64_t *dims,
                        const float *data)
{
    add_initializer(m, name, 1, rank, dims, data);
}

void mb_initializer_i64(mb_model *m, const char *name, int rank, const int64_t *dims,
                        const int64_t *data)
{
    add_initializer(m, name, 7, rank, dims, data);
}

void mb_initializer_raw(mb_model *m, const char *name, int dtype, int rank, const int64_t *dims,
                        const void *data, size_t bytes)
{
    Onnx__TensorProto *t = xcalloc(1, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = strdup(name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = rank;
    t->dims = xcalloc(rank ? rank : 1, sizeof(int64_t));
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = xcalloc(bytes ? bytes : 1, 1);
    memcpy(t->raw_data.data, data, bytes);
    PUSH(m->graph.initializer, m->graph.n_initializer, t);
}

uint8_t *mb_pack(mb_model *m, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&m->model);
    uint8_t *buf = xcalloc(*len, 1);
    onnx__model_proto__pack(&m->model, buf);
    return buf;
}

/* The graph and model structs are embedded, so free their children by hand. */
void mb_free(mb_model *m)
{
    Onnx__GraphProto *g = &m->graph;
    for (size_t i = 0; i < g->n_input; i++)
        onnx__value_info_proto__free_unpacked(g->input[i], NULL);
    for (size_t i = 0; i < g->n_output; i++)
        onnx__value_info_proto__free_unpacked(g->output[i], NULL);
    for (size_t i = 0; i < g->n_node; i++)
        onnx__node_proto__free_unpacked(g->node[i], NULL);
    for (size_t i = 0; i < g->n_initializer; i++)
        onnx__tensor_proto__free_unpacked(g->initializer[i], NULL);
    free(g->input), free(g->output), free(g->node), free(g->initializer), free(g->name);
    free(m->opset.domain), free(m->model.producer_name);
    free(m);
}
