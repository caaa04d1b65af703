/* model.c — ferry_model: decode bytes with the generated protobuf-c code, build the IR, and
 * answer questions about it (inputs, outputs, opsets, op histogram). Loading from files and
 * binding kernels is the runtime's part (src/runtime/model_load.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/model.h"

void fy_model_ref(void *model)
{
    struct ferry_model *m = model;
    __atomic_add_fetch(&m->refcount, 1, __ATOMIC_RELAXED);
}

void fy_model_unref(void *model)
{
    struct ferry_model *m = model;
    if (!m || __atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    fy_graph_free(m->graph);
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
    for (int i = 0; i < m->n_maps; i++) {
        munmap(m->maps[i].addr, m->maps[i].len);
        free(m->maps[i].path);
    }
    free(m->maps);
    free(m->base_dir);
    free(m->opset_domains);
    free(m->opset_versions);
    free(m->input_ids);
    free(m->output_ids);
    free(m->missing_ops);
    free(m);
}

void ferry_model_free(ferry_model *m) { fy_model_unref(m); }

ferry_status fy_model_decode(const void *data, size_t size, const char *base_dir,
                             struct ferry_model **out)
{
    *out = NULL;
    struct ferry_model *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FERRY_E_NOMEM, "out of memory");
    m->refcount = 1;
    m->base_dir = strdup(base_dir ? base_dir : ".");
    m->proto = onnx__model_proto__unpack(NULL, size, data);
    ferry_status rc = FERRY_OK;
    if (!m->base_dir || !m->proto)
        rc = fy_error(FERRY_E_PARSE, "not a valid ONNX model: protobuf decoding failed");
    else
        rc = fy_model_build(m);
    if (rc != FERRY_OK) {
        fy_model_unref(m);
        return rc;
    }
    *out = m;
    return FERRY_OK;
}

int ferry_model_input_count(const ferry_model *m) { return m ? m->n_inputs : 0; }
int ferry_model_output_count(const ferry_model *m) { return m ? m->n_outputs : 0; }

static ferry_status io_info(const ferry_model *m, int id, ferry_io_info *out)
{
    const fy_value_info *v = &m->graph->values[id];
    out->name = v->name;
    out->kind = v->type.kind ? v->type.kind : FERRY_VALUE_TENSOR;
    out->optional = v->type.optional;
    out->dtype = v->type.dtype;
    out->rank = v->type.rank;
    out->dims = v->type.dims;
    out->dim_names = (const char *const *)v->type.dim_names;
    return FERRY_OK;
}

ferry_status ferry_model_input(const ferry_model *m, int i, ferry_io_info *out)
{
    if (!m || !out || i < 0 || i >= m->n_inputs)
        return fy_error(FERRY_E_INVALID_ARG, "input index %d out of range", i);
    return io_info(m, m->input_ids[i], out);
}

ferry_status ferry_model_output(const ferry_model *m, int i, ferry_io_info *out)
{
    if (!m || !out || i < 0 || i >= m->n_outputs)
        return fy_error(FERRY_E_INVALID_ARG, "output index %d out of range", i);
    return io_info(m, m->output_ids[i], out);
}

void ferry_model_get_info(const ferry_model *m, ferry_model_info *out)
{
    memset(out, 0, sizeof *out);
    const Onnx__ModelProto *mp = m->proto;
    out->producer_name = mp->producer_name ? mp->producer_name : "";
    out->producer_version = mp->producer_version ? mp->producer_version : "";
    out->ir_version = mp->ir_version;
    out->n_opsets = m->n_opsets;
    out->opset_domains = m->opset_domains;
    out->opset_versions = m->opset_versions;
    out->n_nodes = m->graph->n_nodes;
    for (int i = 0; i < m->graph->n_values; i++) {
        const fy_value *t = m->graph->values[i].init;
        if (!t) continue;
        out->n_parameters += t->count;
        out->parameter_bytes += (int64_t)(t->count * ferry_dtype_size(t->dtype));
    }
}

typedef struct op_count {
    char *name;
    int64_t n;
} op_count;

static void count_ops(const fy_graph *g, op_count **ops, int *n_ops)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const fy_node *nd = &g->nodes[i];
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", nd->domain, nd->domain[0] ? ":" : "", nd->op_type);
        int j = 0;
        while (j < *n_ops && strcmp((*ops)[j].name, key) != 0) j++;
        if (j == *n_ops) {
            op_count *grown = realloc(*ops, sizeof **ops * (*n_ops + 1));
            char *name = strdup(key);
            if (!grown || !name) {
                if (grown) *ops = grown;
                free(name);
                return;
            }
            *ops = grown;
            (*ops)[(*n_ops)++] = (op_count){name, 0};
        }
        (*ops)[j].n++;
        for (int a = 0; a < nd->n_attrs; a++) {
            if (nd->attrs[a].g) count_ops(nd->attrs[a].g, ops, n_ops);
            for (int64_t k = 0; nd->attrs[a].graphs && k < nd->attrs[a].n; k++)
                count_ops(nd->attrs[a].graphs[k], ops, n_ops);
        }
    }
}

void ferry_model_foreach_op(const ferry_model *m,
                            void (*fn)(const char *op, int64_t count, void *user), void *user)
{
    op_count *ops = NULL;
    int n = 0;
    count_ops(m->graph, &ops, &n);
    for (int i = 0; i < n; i++) {
        fn(ops[i].name, ops[i].n, user);
        free(ops[i].name);
    }
    free(ops);
}
