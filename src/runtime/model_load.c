/* model_load.c — ferry_model_load*: map the file, decode it into IR (src/onnx), then bind a
 * kernel to every node and infer shapes. A model with ops ferry cannot run fails here, listing
 * all of them, unless the caller only wants to inspect it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "onnx/model.h"
#include "ops/infer.h"
#include "optimize/passes.h"
#include "runtime/flops.h"

/* Append `Op (node "name", opset N)` to the model's missing list, once per line. */
static ferry_status note_missing(struct ferry_model *m, const fy_node *n)
{
    char line[512];
    snprintf(line, sizeof line, "%s%s%s (node \"%s\", opset %d)", n->domain,
             n->domain[0] ? ":" : "", n->op_type, n->name, n->opset);
    size_t old = m->missing_ops ? strlen(m->missing_ops) : 0, add = strlen(line);
    char *s = realloc(m->missing_ops, old + add + 2);
    if (!s) return fy_error(FERRY_E_NOMEM, "out of memory");
    if (old) s[old++] = '\n';
    memcpy(s + old, line, add + 1);
    m->missing_ops = s;
    return FERRY_OK;
}

static ferry_status bind_graph(struct ferry_model *m, fy_graph *g)
{
    fy_graph_infer(g);
    for (int i = 0; i < g->n_nodes; i++) {
        fy_node *n = &g->nodes[i];
        n->op = fy_backend_select(n, g);
        n->flops_kind = fy_flops_kind(n);
        if (!n->op) FY_CHECK(note_missing(m, n));
        for (int a = 0; a < n->n_attrs; a++) {
            const fy_attr *at = &n->attrs[a];
            if (at->g) FY_CHECK(bind_graph(m, at->g));
            for (int64_t j = 0; at->graphs && j < at->n; j++) FY_CHECK(bind_graph(m, at->graphs[j]));
        }
    }
    return FERRY_OK;
}

/* Decoding copies what the model keeps, so the file's bytes (a mapping) are dropped before the
 * passes run: the passes create new weights, and peak memory is what users measure. */
static ferry_status load_bytes(const void *data, size_t size, const char *base_dir,
                               unsigned flags, void (*drop)(void *ctx), void *drop_ctx,
                               ferry_model **out)
{
    struct ferry_model *m;
    ferry_status rc = fy_model_decode(data, size, base_dir, &m);
    if (drop) drop(drop_ctx);
    if (rc != FERRY_OK) return rc;
    rc = fy_optimize_model(m, (flags & FERRY_LOAD_NO_OPTIMIZE) ? FY_OPT_NONE : FY_OPT_RUNTIME);
    if (rc == FERRY_OK) rc = bind_graph(m, m->graph);
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
    return load_bytes(size ? data : "", size, base_dir, 0, NULL, NULL, out);
}

typedef struct mapping {
    void *addr;
    size_t len;
} mapping;

static void unmap(void *ctx)
{
    mapping *mp = ctx;
    if (mp->addr) munmap(mp->addr, mp->len);
    mp->addr = NULL;
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
    }
    mapping mp = {addr, (size_t)st.st_size};
    if (dir) {
        rc = load_bytes(addr ? addr : "", (size_t)st.st_size, dir, flags, unmap, &mp, out);
        if (rc != FERRY_OK) fy_error_wrap(rc, "%s", path);
    }
    unmap(&mp);
    free(dir);
    return rc;
}

ferry_status ferry_model_load(const char *path, ferry_model **out)
{
    return ferry_model_load_flags(path, 0, out);
}

const char *ferry_model_unsupported_ops(const ferry_model *m) { return m ? m->missing_ops : NULL; }
