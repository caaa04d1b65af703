/* load.c — decoded ONNX protobuf → ferry IR: values numbered per graph, names resolved through
 * enclosing scopes (subgraph captures), nodes topologically ordered, value lifetimes computed.
 * Every inconsistency is an error naming the node or value. Kernels are bound later, by the
 * runtime (src/runtime/bind.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "onnx/model.h"

#define FY_MAX_ONNX_OPSET 18

/* Per-graph build state; scopes chain to the enclosing graph's state. */
typedef struct scope {
    struct scope *parent;
    fy_graph *g;
    fy_strmap names;
    int cap_values;
    int cap_outer;
} scope;

typedef struct build_ctx {
    struct ferry_model *m;
    int depth;
} build_ctx;

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

static ferry_status add_value(scope *sc, const char *name, int *id)
{
    fy_graph *g = sc->g;
    if (g->n_values == sc->cap_values) {
        int cap = sc->cap_values ? sc->cap_values * 2 : 32;
        fy_value_info *v = realloc(g->values, sizeof *v * cap);
        if (!v) return fy_error(FERRY_E_NOMEM, "out of memory");
        g->values = v;
        sc->cap_values = cap;
    }
    fy_value_info *vi = &g->values[g->n_values];
    memset(vi, 0, sizeof *vi);
    vi->name = dupstr(name);
    vi->producer = -1;
    vi->type.rank = -1;
    if (!vi->name) return fy_error(FERRY_E_NOMEM, "out of memory");
    *id = g->n_values++;
    /* map keys borrow the value's name; values never move their name pointer */
    return fy_strmap_put(&sc->names, vi->name, *id);
}

/* Resolve a name visible from this scope, capturing it from enclosing graphs if needed.
 * Returns -1 in *id when nothing defines it. */
static ferry_status resolve(scope *sc, const char *name, int *id)
{
    *id = fy_strmap_get(&sc->names, name);
    if (*id >= 0 || !sc->parent) return FERRY_OK;
    int src;
    FY_CHECK(resolve(sc->parent, name, &src));
    if (src < 0) return FERRY_OK;
    fy_graph *g = sc->g;
    if (g->n_outer == sc->cap_outer) {
        int cap = sc->cap_outer ? sc->cap_outer * 2 : 8;
        int *o = realloc(g->outer, sizeof *o * cap), *s = o ? realloc(g->outer_src, sizeof *s * cap) : NULL;
        if (o) g->outer = o;
        if (!o || !s) return fy_error(FERRY_E_NOMEM, "out of memory");
        g->outer_src = s;
        sc->cap_outer = cap;
    }
    FY_CHECK(add_value(sc, name, id));
    g->outer[g->n_outer] = *id;
    g->outer_src[g->n_outer++] = src;
    return FERRY_OK;
}

static ferry_status parse_type(const Onnx__TypeProto *tp, fy_type_info *t, int depth)
{
    if (!tp || depth > 8) return FERRY_OK;
    switch (tp->value_case) {
    case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE: {
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        t->kind = FERRY_VALUE_TENSOR;
        t->dtype = tt->has_elem_type ? (ferry_dtype)tt->elem_type : FERRY_DTYPE_UNDEFINED;
        if (tt->shape) {
            if (tt->shape->n_dim > FERRY_MAX_RANK)
                return fy_error(FERRY_E_SHAPE, "declared rank %zu exceeds %d", tt->shape->n_dim,
                                FERRY_MAX_RANK);
            t->rank = (int)tt->shape->n_dim;
            for (int i = 0; i < t->rank; i++) {
                const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
                t->dims[i] = -1;
                if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
                    t->dims[i] = d->dim_value;
                else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                         d->dim_param && !(t->dim_names[i] = strdup(d->dim_param)))
                    return fy_error(FERRY_E_NOMEM, "out of memory");
            }
        }
        return FERRY_OK;
    }
    case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE: {
        fy_type_info inner = {.rank = -1};
        FY_CHECK(parse_type(tp->sequence_type->elem_type, &inner, depth + 1));
        for (int i = 0; i < FERRY_MAX_RANK; i++) free(inner.dim_names[i]);
        t->kind = FERRY_VALUE_SEQUENCE;
        t->dtype = inner.dtype;
        return FERRY_OK;
    }
    case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
        FY_CHECK(parse_type(tp->optional_type->elem_type, t, depth + 1));
        t->optional = 1;
        return FERRY_OK;
    default: return FERRY_OK;
    }
}

static ferry_status build_graph(build_ctx *bc, const Onnx__GraphProto *gp, scope *parent,
                                fy_graph **out);

static ferry_status parse_attr(build_ctx *bc, scope *sc, const Onnx__AttributeProto *ap,
                               fy_attr *a)
{
    a->name = dupstr(ap->name);
    if (!a->name) return fy_error(FERRY_E_NOMEM, "out of memory");
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) { /* IR < 2 models carry no type: infer it from the field present */
        if (ap->has_f) type = FY_ATTR_FLOAT;
        else if (ap->has_i) type = FY_ATTR_INT;
        else if (ap->has_s) type = FY_ATTR_STRING;
        else if (ap->t) type = FY_ATTR_TENSOR;
        else if (ap->g) type = FY_ATTR_GRAPH;
        else if (ap->n_floats) type = FY_ATTR_FLOATS;
        else if (ap->n_ints) type = FY_ATTR_INTS;
        else if (ap->n_strings) type = FY_ATTR_STRINGS;
        else if (ap->n_tensors) type = FY_ATTR_TENSORS;
        else if (ap->n_graphs) type = FY_ATTR_GRAPHS;
        else if (ap->tp) type = FY_ATTR_TYPE_PROTO;
        else if (ap->n_type_protos) type = FY_ATTR_TYPE_PROTOS;
        else type = FY_ATTR_INTS; /* an empty list */
    }
    a->type = (fy_attr_type)type;
    fy_tensor_source src = {bc->m, bc->m->base_dir, .release_raw_data = 0};
    switch (a->type) {
    case FY_ATTR_FLOAT: a->f = ap->f; break;
    case FY_ATTR_INT: a->i = ap->i; break;
    case FY_ATTR_STRING:
        a->s = malloc(ap->s.len + 1);
        if (!a->s) return fy_error(FERRY_E_NOMEM, "out of memory");
        if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = '\0';
        a->s_len = ap->s.len;
        break;
    case FY_ATTR_TENSOR:
        if (!ap->t) return fy_error(FERRY_E_PARSE, "attribute \"%s\" has no tensor", a->name);
        FY_CHECK(fy_tensor_from_proto(ap->t, &src, &a->t));
        break;
    case FY_ATTR_GRAPH:
        if (!ap->g) return fy_error(FERRY_E_PARSE, "attribute \"%s\" has no graph", a->name);
        FY_CHECK(build_graph(bc, ap->g, sc, &a->g));
        break;
    case FY_ATTR_FLOATS:
        a->n = (int64_t)ap->n_floats;
        a->floats = malloc(sizeof(float) * (ap->n_floats + 1));
        if (!a->floats) return fy_error(FERRY_E_NOMEM, "out of memory");
        if (a->n) memcpy(a->floats, ap->floats, sizeof(float) * ap->n_floats);
        break;
    case FY_ATTR_INTS:
        a->n = (int64_t)ap->n_ints;
        a->ints = malloc(sizeof(int64_t) * (ap->n_ints + 1));
        if (!a->ints) return fy_error(FERRY_E_NOMEM, "out of memory");
        if (a->n) memcpy(a->ints, ap->ints, sizeof(int64_t) * ap->n_ints);
        break;
    case FY_ATTR_STRINGS:
        a->strings = calloc(ap->n_strings + 1, sizeof(char *));
        if (!a->strings) return fy_error(FERRY_E_NOMEM, "out of memory");
        a->n = (int64_t)ap->n_strings;
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = malloc(ap->strings[i].len + 1);
            if (!a->strings[i]) return fy_error(FERRY_E_NOMEM, "out of memory");
            if (ap->strings[i].len) memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
            a->strings[i][ap->strings[i].len] = '\0';
        }
        break;
    case FY_ATTR_TENSORS:
        a->tensors = calloc(ap->n_tensors + 1, sizeof(fy_value *));
        if (!a->tensors) return fy_error(FERRY_E_NOMEM, "out of memory");
        a->n = (int64_t)ap->n_tensors;
        for (size_t i = 0; i < ap->n_tensors; i++)
            FY_CHECK(fy_tensor_from_proto(ap->tensors[i], &src, &a->tensors[i]));
        break;
    case FY_ATTR_GRAPHS:
        a->graphs = calloc(ap->n_graphs + 1, sizeof(fy_graph *));
        if (!a->graphs) return fy_error(FERRY_E_NOMEM, "out of memory");
        a->n = (int64_t)ap->n_graphs;
        for (size_t i = 0; i < ap->n_graphs; i++)
            FY_CHECK(build_graph(bc, ap->graphs[i], sc, &a->graphs[i]));
        break;
    case FY_ATTR_TYPE_PROTO:
    case FY_ATTR_TYPE_PROTOS: {
        size_t n = a->type == FY_ATTR_TYPE_PROTO ? 1 : ap->n_type_protos;
        a->n = a->type == FY_ATTR_TYPE_PROTO ? 0 : (int64_t)n;
        a->tp = calloc(n + 1, sizeof(fy_type_info));
        if (!a->tp) return fy_error(FERRY_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            a->tp[i].rank = -1;
            FY_CHECK(parse_type(a->type == FY_ATTR_TYPE_PROTO ? ap->tp : ap->type_protos[i], &a->tp[i], 0));
        }
        break;
    }
    default:
        return fy_error(FERRY_E_UNSUPPORTED, "attribute \"%s\" has unsupported type %d", a->name,
                        type);
    }
    return FERRY_OK;
}

static int64_t opset_for(const struct ferry_model *m, const char *domain)
{
    int onnx = domain[0] == '\0' || strcmp(domain, "ai.onnx") == 0;
    for (int i = 0; i < m->n_opsets; i++) {
        const char *d = m->opset_domains[i];
        if (onnx ? (d[0] == '\0' || strcmp(d, "ai.onnx") == 0) : strcmp(d, domain) == 0)
            return m->opset_versions[i];
    }
    return onnx ? 1 : -1; /* models without opset_import predate opsets: version 1 */
}

static ferry_status build_node(build_ctx *bc, scope *sc, const Onnx__NodeProto *np, int index,
                               fy_node *n)
{
    char fallback[64];
    snprintf(fallback, sizeof fallback, "%s_%d", np->op_type ? np->op_type : "node", index);
    n->name = dupstr(np->name && np->name[0] ? np->name : fallback);
    n->op_type = dupstr(np->op_type);
    n->domain = dupstr(np->domain);
    if (!n->name || !n->op_type || !n->domain) return fy_error(FERRY_E_NOMEM, "out of memory");
    if (!n->op_type[0]) return fy_error(FERRY_E_PARSE, "node \"%s\" has no op_type", n->name);
    int64_t opset = opset_for(bc->m, n->domain);
    if (opset < 0)
        return fy_error(FERRY_E_UNSUPPORTED, "node \"%s\" (%s): domain \"%s\" is not imported",
                        n->name, n->op_type, n->domain);
    n->opset = (int)(opset > 100000 ? 100000 : opset);
    n->id = bc->m->n_node_ids++;

    n->n_inputs = (int)np->n_input;
    n->n_outputs = (int)np->n_output;
    n->inputs = malloc(sizeof(int) * (np->n_input + 1));
    n->outputs = malloc(sizeof(int) * (np->n_output + 1));
    if (!n->inputs || !n->outputs) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (size_t i = 0; i < np->n_output; i++)
        n->outputs[i] = np->output[i][0] ? fy_strmap_get(&sc->names, np->output[i]) : -1;

    n->attrs = calloc(np->n_attribute + 1, sizeof(fy_attr));
    if (!n->attrs) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (size_t i = 0; i < np->n_attribute; i++) {
        n->n_attrs++;
        ferry_status rc = parse_attr(bc, sc, np->attribute[i], &n->attrs[i]);
        if (rc != FERRY_OK)
            return fy_error_wrap(rc, "node \"%s\" (%s), attribute \"%s\"", n->name, n->op_type,
                                 np->attribute[i]->name ? np->attribute[i]->name : "");
    }
    /* values this node's subgraphs read from this graph become implicit inputs */
    int n_impl = 0;
    for (int i = 0; i < n->n_attrs; i++) {
        const fy_attr *a = &n->attrs[i];
        if (a->g) n_impl += a->g->n_outer;
        for (int64_t j = 0; a->graphs && j < a->n; j++) n_impl += a->graphs[j]->n_outer;
    }
    if (n_impl) {
        n->implicit = malloc(sizeof(int) * n_impl);
        if (!n->implicit) return fy_error(FERRY_E_NOMEM, "out of memory");
        for (int i = 0; i < n->n_attrs; i++) {
            const fy_attr *a = &n->attrs[i];
            for (int64_t j = -1; j < (a->graphs ? a->n : 0); j++) {
                const fy_graph *sg = j < 0 ? a->g : a->graphs[j];
                for (int o = 0; sg && o < sg->n_outer; o++) n->implicit[n->n_implicit++] = sg->outer_src[o];
            }
        }
    }
    for (size_t i = 0; i < np->n_input; i++) {
        if (!np->input[i][0]) {
            n->inputs[i] = -1;
            continue;
        }
        FY_CHECK(resolve(sc, np->input[i], &n->inputs[i]));
        if (n->inputs[i] < 0)
            return fy_error(FERRY_E_PARSE,
                            "node \"%s\" (%s): input %zu \"%s\" is not produced by any node, "
                            "graph input or initializer",
                            n->name, n->op_type, i, np->input[i]);
    }
    return FERRY_OK;
}

/* Kahn's algorithm over producer links; a leftover node means a cycle. */
static ferry_status topo_sort(fy_graph *g)
{
    int n = g->n_nodes;
    int *indeg = calloc(n + 1, sizeof(int)), *order = malloc(sizeof(int) * (n + 1));
    int *users_start = calloc(n + 2, sizeof(int)), *users = NULL, *fill = NULL;
    fy_node *sorted = malloc(sizeof(fy_node) * (n + 1));
    ferry_status rc = FERRY_OK;
    int total = 0;
    if (!indeg || !order || !users_start || !sorted) goto nomem;
    for (int i = 0; i < n; i++) {
        const fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
            int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
            if (v >= 0 && g->values[v].producer >= 0) {
                indeg[i]++;
                users_start[g->values[v].producer + 1]++;
                total++;
            }
        }
    }
    for (int i = 0; i < n; i++) users_start[i + 1] += users_start[i];
    users = malloc(sizeof(int) * (total + 1));
    fill = calloc(n + 1, sizeof(int));
    if (!users || !fill) goto nomem;
    for (int i = 0; i < n; i++) {
        const fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
            int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
            if (v >= 0 && g->values[v].producer >= 0) {
                int p = g->values[v].producer;
                users[users_start[p] + fill[p]++] = i;
            }
        }
    }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (!indeg[i]) order[tail++] = i;
    while (head < tail) {
        int i = order[head++];
        for (int u = users_start[i]; u < users_start[i + 1]; u++)
            if (--indeg[users[u]] == 0) order[tail++] = users[u];
    }
    if (tail < n) {
        for (int i = 0; i < n; i++)
            if (indeg[i]) {
                rc = fy_error(FERRY_E_PARSE, "node \"%s\" (%s) is part of a cycle",
                              g->nodes[i].name, g->nodes[i].op_type);
                break;
            }
        goto out;
    }
    for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, sizeof(fy_node) * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i].n_outputs; j++)
            if (g->nodes[i].outputs[j] >= 0) g->values[g->nodes[i].outputs[j]].producer = i;
    goto out;
nomem:
    rc = fy_error(FERRY_E_NOMEM, "out of memory");
out:
    free(indeg), free(order), free(users_start), free(users), free(fill), free(sorted);
    return rc;
}

/* last_use[v]: the last node that reads v; graph outputs live to the end (n_nodes). */
static ferry_status plan_lifetimes(fy_graph *g)
{
    g->last_use = malloc(sizeof(int) * (g->n_values + 1));
    if (!g->last_use) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int v = 0; v < g->n_values; v++) g->last_use[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs + nd->n_implicit; j++) {
            int v = j < nd->n_inputs ? nd->inputs[j] : nd->implicit[j - nd->n_inputs];
            if (v >= 0) {
                g->last_use[v] = i;
                g->values[v].n_uses++;
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        g->last_use[g->outputs[i]] = g->n_nodes;
        g->values[g->outputs[i]].n_uses++;
    }
    return FERRY_OK;
}

static ferry_status build_graph_body(build_ctx *bc, const Onnx__GraphProto *gp, scope *sc)
{
    fy_graph *g = sc->g;
    fy_tensor_source src = {bc->m, bc->m->base_dir, .release_raw_data = 1};
    g->name = dupstr(gp->name);
    g->inputs = malloc(sizeof(int) * (gp->n_input + 1));
    g->outputs = malloc(sizeof(int) * (gp->n_output + 1));
    g->nodes = calloc(gp->n_node + 1, sizeof(fy_node));
    if (!g->name || !g->inputs || !g->outputs || !g->nodes)
        return fy_error(FERRY_E_NOMEM, "out of memory");

    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !vi->name[0]) return fy_error(FERRY_E_PARSE, "graph input %zu has no name", i);
        if (fy_strmap_get(&sc->names, vi->name) >= 0)
            return fy_error(FERRY_E_PARSE, "graph input \"%s\" is declared twice", vi->name);
        FY_CHECK(add_value(sc, vi->name, &g->inputs[i]));
        g->n_inputs++;
        ferry_status rc = parse_type(vi->type, &g->values[g->inputs[i]].type, 0);
        if (rc != FERRY_OK) return fy_error_wrap(rc, "graph input \"%s\"", vi->name);
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !tp->name[0])
            return fy_error(FERRY_E_PARSE, "initializer %zu has no name", i);
        int id = fy_strmap_get(&sc->names, tp->name);
        if (id >= 0 && g->values[id].init)
            return fy_error(FERRY_E_PARSE, "initializer \"%s\" is defined twice", tp->name);
        if (id < 0) FY_CHECK(add_value(sc, tp->name, &id));
        fy_value_info *v = &g->values[id];
        ferry_status rc = fy_tensor_from_proto(tp, &src, &v->init);
        if (rc != FERRY_OK) return fy_error_wrap(rc, "initializer \"%s\"", tp->name);
        if (!v->type.kind) {
            v->type.kind = FERRY_VALUE_TENSOR;
            v->type.dtype = v->init->dtype;
            v->type.rank = v->init->rank;
            memcpy(v->type.dims, v->init->dims, sizeof(int64_t) * v->init->rank);
        }
    }
    for (size_t i = 0; i < gp->n_sparse_initializer; i++)
        return fy_error(FERRY_E_UNSUPPORTED, "sparse initializers are not supported");
    /* every node output gets its id before any input is resolved, so order does not matter */
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        for (size_t j = 0; j < np->n_output; j++) {
            const char *name = np->output[j];
            if (!name[0]) continue;
            int id = fy_strmap_get(&sc->names, name);
            if (id >= 0)
                return fy_error(FERRY_E_PARSE,
                                "node \"%s\" (%s): output \"%s\" is already defined elsewhere",
                                np->name ? np->name : "", np->op_type ? np->op_type : "", name);
            FY_CHECK(add_value(sc, name, &id));
            g->values[id].producer = (int)i;
        }
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        g->n_nodes++;
        FY_CHECK(build_node(bc, sc, gp->node[i], (int)i, &g->nodes[i]));
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        FY_CHECK(resolve(sc, name, &g->outputs[i]));
        if (g->outputs[i] < 0)
            return fy_error(FERRY_E_PARSE, "graph output \"%s\" is not produced by anything", name);
        g->n_outputs++;
        fy_type_info *t = &g->values[g->outputs[i]].type;
        if (!t->kind) {
            ferry_status rc = parse_type(gp->output[i]->type, t, 0);
            if (rc != FERRY_OK) return fy_error_wrap(rc, "graph output \"%s\"", name);
        }
    }
    FY_CHECK(topo_sort(g));
    return plan_lifetimes(g);
}

static ferry_status build_graph(build_ctx *bc, const Onnx__GraphProto *gp, scope *parent,
                                fy_graph **out)
{
    *out = NULL;
    if (++bc->depth > 32) {
        bc->depth--;
        return fy_error(FERRY_E_PARSE, "subgraphs nested deeper than 32 levels");
    }
    scope sc = {.parent = parent};
    sc.g = calloc(1, sizeof(fy_graph));
    ferry_status rc = sc.g ? build_graph_body(bc, gp, &sc) : fy_error(FERRY_E_NOMEM, "out of memory");
    fy_strmap_free(&sc.names);
    bc->depth--;
    if (rc != FERRY_OK) {
        fy_graph_free(sc.g);
        return rc;
    }
    *out = sc.g;
    return FERRY_OK;
}

ferry_status fy_model_build(struct ferry_model *m)
{
    const Onnx__ModelProto *mp = m->proto;
    if (!mp->graph) return fy_error(FERRY_E_PARSE, "model has no graph");
    m->n_opsets = (int)mp->n_opset_import;
    m->opset_domains = calloc(mp->n_opset_import + 1, sizeof(char *));
    m->opset_versions = calloc(mp->n_opset_import + 1, sizeof(int64_t));
    if (!m->opset_domains || !m->opset_versions) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain ? mp->opset_import[i]->domain : "";
        m->opset_domains[i] = d;
        m->opset_versions[i] = mp->opset_import[i]->version;
        int onnx = d[0] == '\0' || strcmp(d, "ai.onnx") == 0;
        if (onnx && (m->opset_versions[i] > FY_MAX_ONNX_OPSET || m->opset_versions[i] < 1))
            return fy_error(FERRY_E_UNSUPPORTED,
                            "model imports ONNX opset %lld; ferry supports opsets 1 to %d",
                            (long long)m->opset_versions[i], FY_MAX_ONNX_OPSET);
    }
    build_ctx bc = {.m = m};
    FY_CHECK(build_graph(&bc, mp->graph, NULL, &m->graph));
    fy_graph *g = m->graph;
    if (g->n_outer)
        return fy_error(FERRY_E_PARSE, "graph reads \"%s\", which nothing defines",
                        g->values[g->outer[0]].name);
    m->input_ids = malloc(sizeof(int) * (g->n_inputs + 1));
    m->output_ids = malloc(sizeof(int) * (g->n_outputs + 1));
    if (!m->input_ids || !m->output_ids) return fy_error(FERRY_E_NOMEM, "out of memory");
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init) m->input_ids[m->n_inputs++] = g->inputs[i];
    for (int i = 0; i < g->n_outputs; i++) m->output_ids[m->n_outputs++] = g->outputs[i];
    return FERRY_OK;
}
