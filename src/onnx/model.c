/* model.c — ferry_model: read a file (or bytes), decode it with the generated protobuf-c code,
 * build the IR, and answer questions about it (inputs, outputs, opsets, op histogram). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/model.h"
#include "ops/kernel.h"

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

/* Decode only; the IR is built by the caller so check_ops can inspect a model with gaps. */
static ferry_status decode(const void *data, size_t size, const char *base_dir,
                           struct ferry_model **out)
{
    *out = NULL;
    struct ferry_model *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FERRY_E_NOMEM, "out of memory");
    m->refcount = 1;
    m->base_dir = strdup(base_dir ? base_dir : ".");
    m->proto = onnx__model_proto__unpack(NULL, size, data);
    if (!m->base_dir || !m->proto) {
        fy_model_unref(m);
        return fy_error(FERRY_E_PARSE, "not a valid ONNX model: protobuf decoding failed");
    }
    *out = m;
    return FERRY_OK;
}

static ferry_status load_bytes(const void *data, size_t size, const char *base_dir,
                               unsigned flags, ferry_model **out)
{
    struct ferry_model *m;
    FY_CHECK(decode(data, size, base_dir, &m));
    ferry_status rc = fy_model_build(m);
    if (rc == FERRY_OK && m->missing_ops && !(flags & FERRY_LOAD_ALLOW_UNSUPPORTED))
        rc = fy_error(FERRY_E_UNSUPPORTED, "unsupported ops:\n%s", m->missing_ops);
    if (rc != FERRY_OK) {
        fy_model_unref(m);
        return rc;
    }
    *out = m;
    return FERRY_OK;
}

ferry_status ferry_model_load_memory(const void *data, size_t size, const char *base_dir,
                                     ferry_model **out)
{
    if (!out || (!data && size)) return fy_error(FERRY_E_INVALID_ARG, "model bytes missing");
    *out = NULL;
    return load_bytes(data, size, base_dir, 0, out);
}

/* The file is mapped only while decoding: protobuf-c copies what it keeps. */
ferry_status ferry_model_load_flags(const char *path, unsigned flags, ferry_model **out)
{
    if (!path || !out) return fy_error(FERRY_E_INVALID_ARG, "path and out are required");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fy_error(FERRY_E_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fy_error(FERRY_E_IO, "%s is not a regular file", path);
    }
    void *addr = NULL;
    if (st.st_size > 0) {
        addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            close(fd);
            return fy_error(FERRY_E_IO, "cannot map %s: %s", path, strerror(errno));
        }
    }
    close(fd);
    char *dir = strdup(path);
    ferry_status rc;
    if (!dir) {
        rc = fy_error(FERRY_E_NOMEM, "out of memory");
    } else {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else strcpy(dir, ".");
        rc = load_bytes(addr ? addr : "", (size_t)st.st_size, dir, flags, out);
        if (rc != FERRY_OK) fy_error_wrap(rc, "%s", path);
    }
    if (addr) munmap(addr, (size_t)st.st_size);
    free(dir);
    return rc;
}

ferry_status ferry_model_load(const char *path, ferry_model **out)
{
    return ferry_model_load_flags(path, 0, out);
}

const char *ferry_model_unsupported_ops(const ferry_model *m) { return m ? m->missing_ops : NULL; }

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
