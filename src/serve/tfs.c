/* tfs.c — the TF Serving REST endpoints of ferry serve: model status, metadata (a SignatureDef
 * look-alike) and :predict in the row ("instances") and columnar ("inputs") formats, with
 * /versions/V and /labels/L. Shapes come from the nesting of the JSON, as TF Serving does it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/codec.h"
#include "serve/http.h"

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 400;
}

/* A JSON value that stands for one element, not a nesting level: anything but an array. */
static int is_leaf(const sj_val *v) { return v->type != SJ_ARR; }

/* Infers the shape from the nesting (first elements), then checks every level is regular. */
static int check_regular(const sj_val *v, const int64_t *dims, int rank, int depth)
{
    if (depth == rank) return is_leaf(v) ? 0 : -1;
    if (v->type != SJ_ARR || (int64_t)v->n != dims[depth]) return -1;
    if (v->packed) return depth == rank - 1 ? 0 : -1; /* packed arrays hold numbers only */
    for (const sj_val *m = v->u.first; m; m = m->next)
        if (check_regular(m, dims, rank, depth + 1)) return -1;
    return 0;
}

static int infer_shape(const sj_val *v, int64_t *dims, int *rank)
{
    *rank = 0;
    for (const sj_val *p = v; p->type == SJ_ARR; p = p->u.first) {
        if (*rank >= FERRY_MAX_RANK) return -1;
        dims[(*rank)++] = p->n;
        if (!p->n || p->packed) break;
    }
    return check_regular(v, dims, *rank, 0);
}

static int find_input(const sv_sig *sig, const char *name)
{
    for (int i = 0; i < sig->n_inputs; i++)
        if (strcmp(sig->inputs[i].name, name) == 0) return i;
    return -1;
}

static int check_against_model(const ferry_io_info *io, const int64_t *dims, int rank, char *err,
                               size_t errlen)
{
    if (io->rank < 0) return 0;
    if (rank != io->rank)
        return bad(err, errlen, "input '%s' has %d dims in the request, the model expects %d",
                   io->name, rank, io->rank);
    for (int j = 0; j < rank; j++)
        if (io->dims[j] >= 0 && io->dims[j] != dims[j])
            return bad(err, errlen, "input '%s': dim %d is %lld, the model expects %lld", io->name,
                       j, (long long)dims[j], (long long)io->dims[j]);
    return 0;
}

/* Adds one decoded input; the value then belongs to d. */
static int add_input(sv_decoded *d, const ferry_io_info *io, ferry_value *t, char *err,
                     size_t errlen)
{
    for (int j = 0; j < d->n_inputs; j++)
        if (d->input_names[j] == io->name) {
            ferry_value_free(t);
            return bad(err, errlen, "input '%s' is given twice", io->name);
        }
    d->input_names[d->n_inputs] = io->name;
    d->inputs[d->n_inputs++] = t;
    return 0;
}

/* One tensor whose shape is the nesting of v. */
static int tensor_from_json(sv_decoded *d, const ferry_io_info *io, const sj_val *v, char *err,
                            size_t errlen)
{
    int64_t dims[FERRY_MAX_RANK];
    int rank;
    if (infer_shape(v, dims, &rank))
        return bad(err, errlen, "input '%s': the nested lists are not a regular tensor", io->name);
    int rc = check_against_model(io, dims, rank, err, errlen);
    if (rc) return rc;
    ferry_value *t;
    if (ferry_tensor_create(io->dtype, rank, dims, &t) != FERRY_OK)
        return bad(err, errlen, "input '%s': %s", io->name, ferry_last_error());
    if (add_input(d, io, t, err, errlen)) return 400;
    char e2[256];
    if (sv_fill_tensor(v, t, e2, sizeof(e2)))
        return bad(err, errlen, "input '%s': %s", io->name, e2);
    return 0;
}

/* Row format with named inputs: instance i's value of each input becomes row i. */
static int stack_instances(sv_decoded *d, const ferry_io_info *io, const sj_val *instances,
                           char *err, size_t errlen)
{
    const sj_val *first = sj_get(instances->u.first, io->name);
    if (!first) return bad(err, errlen, "instance 0 has no input '%s'", io->name);
    int64_t dims[FERRY_MAX_RANK + 1];
    int rank;
    if (infer_shape(first, dims + 1, &rank) || rank + 1 > FERRY_MAX_RANK)
        return bad(err, errlen, "input '%s': the nested lists are not a regular tensor", io->name);
    dims[0] = instances->n;
    rank++;
    int rc = check_against_model(io, dims, rank, err, errlen);
    if (rc) return rc;
    ferry_value *t;
    if (ferry_tensor_create(io->dtype, rank, dims, &t) != FERRY_OK)
        return bad(err, errlen, "input '%s': %s", io->name, ferry_last_error());
    if (add_input(d, io, t, err, errlen)) return 400;
    int64_t row = 1;
    for (int j = 1; j < rank; j++)
        row *= dims[j];
    int64_t i = 0;
    for (const sj_val *inst = instances->u.first; inst; inst = inst->next, i++) {
        const sj_val *v = inst->type == SJ_OBJ ? sj_get(inst, io->name) : NULL;
        if (!v) return bad(err, errlen, "instance %lld has no input '%s'", (long long)i, io->name);
        if (check_regular(v, dims + 1, rank - 1, 0))
            return bad(err, errlen,
                       "instance %lld: input '%s' has a different shape than in "
                       "instance 0",
                       (long long)i, io->name);
        char e2[256];
        if (sv_fill_part(v, t, i * row, row, e2, sizeof(e2)))
            return bad(err, errlen, "instance %lld, input '%s': %s", (long long)i, io->name, e2);
    }
    return 0;
}

static int is_b64(const sj_val *v) { return v->type == SJ_OBJ && v->n == 1 && sj_get(v, "b64"); }

int sv_tfs_decode(sv_arena *a, char *body, size_t len, const sv_sig *sig, sv_decoded *d, char *err,
                  size_t errlen)
{
    memset(d, 0, sizeof(*d));
    if (!body || !len) return bad(err, errlen, "empty request body; expected a JSON object");
    sj_val *root;
    if (sj_parse(a, body, len, &root, err, errlen) != 0) return 400;
    if (root->type != SJ_OBJ) return bad(err, errlen, "the request must be a JSON object");
    const sj_val *sn = sj_get(root, "signature_name");
    if (sn && (sn->type != SJ_STR || (sn->n && strcmp(sn->u.s, "serving_default") != 0)))
        return bad(err, errlen, "unknown signature_name; ferry models have \"serving_default\"");
    const sj_val *inst = sj_get(root, "instances"), *cols = sj_get(root, "inputs");
    if (!!inst == !!cols)
        return bad(err, errlen,
                   "the request needs exactly one of \"instances\" (row format) or "
                   "\"inputs\" (columnar format)");
    d->input_names = sv_arena_alloc(a, sizeof(char *) * (size_t)(sig->n_inputs + 1));
    d->inputs = sv_arena_alloc(a, sizeof(ferry_value *) * (size_t)(sig->n_inputs + 1));
    if (!d->input_names || !d->inputs) return bad(err, errlen, "out of memory");
    int rc = 0;
    if (inst) {
        if (inst->type != SJ_ARR || inst->n == 0)
            return bad(err, errlen, "\"instances\" must be a non-empty list");
        if (!inst->packed && inst->u.first->type == SJ_OBJ && !is_b64(inst->u.first)) {
            for (const sj_val *m = inst->u.first->u.first; m; m = m->next)
                if (find_input(sig, m->key) < 0)
                    return bad(err, errlen, "unknown input '%s'", m->key);
            for (int k = 0; k < sig->n_inputs && !rc; k++) {
                if (sig->inputs[k].optional && !sj_get(inst->u.first, sig->inputs[k].name))
                    continue;
                rc = stack_instances(d, &sig->inputs[k], inst, err, errlen);
            }
            if (rc) return rc;
        } else {
            if (sig->n_inputs != 1)
                return bad(err, errlen,
                           "the model has %d inputs: name them in each instance "
                           "({\"input\": value, ...})",
                           sig->n_inputs);
            rc = tensor_from_json(d, &sig->inputs[0], inst, err, errlen);
            if (rc) return rc;
        }
    } else {
        d->tfs_columnar = 1;
        if (cols->type == SJ_OBJ && !is_b64(cols)) {
            for (const sj_val *m = cols->u.first; m && !rc; m = m->next) {
                int k = find_input(sig, m->key);
                if (k < 0) return bad(err, errlen, "unknown input '%s'", m->key);
                rc = tensor_from_json(d, &sig->inputs[k], m, err, errlen);
            }
            if (rc) return rc;
        } else {
            if (sig->n_inputs != 1)
                return bad(err, errlen,
                           "the model has %d inputs: pass \"inputs\" as an object of "
                           "named tensors",
                           sig->n_inputs);
            rc = tensor_from_json(d, &sig->inputs[0], cols, err, errlen);
            if (rc) return rc;
        }
    }
    for (int k = 0; k < sig->n_inputs; k++) {
        if (sig->inputs[k].optional) continue;
        int found = 0;
        for (int j = 0; j < d->n_inputs; j++)
            found |= d->input_names[j] == sig->inputs[k].name;
        if (!found) return bad(err, errlen, "missing input '%s'", sig->inputs[k].name);
    }
    return 0;
}

/* ---- answers ------------------------------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(sv_buf *out, const unsigned char *p, size_t n)
{
    sv_buf_puts(out, "{\"b64\":\"");
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {b64chars[v >> 18 & 63], b64chars[v >> 12 & 63],
                     i + 1 < n ? b64chars[v >> 6 & 63] : '=', i + 2 < n ? b64chars[v & 63] : '='};
        sv_buf_put(out, q, 4);
    }
    sv_buf_puts(out, "\"}");
}

/* Elements as nested lists from dimension dim on, starting at element offset. */
static void put_nested(sv_buf *out, const ferry_value *t, int dim, int64_t offset, int b64)
{
    int rank = ferry_tensor_rank(t);
    const int64_t *dims = ferry_tensor_dims(t);
    if (dim == rank) {
        if (b64) {
            const char *s = ((char *const *)ferry_tensor_cdata(t))[offset];
            put_b64(out, (const unsigned char *)s, strlen(s));
        } else {
            sv_put_elements(out, t, offset, 1);
        }
        return;
    }
    int64_t inner = 1;
    for (int j = dim + 1; j < rank; j++)
        inner *= dims[j];
    sv_buf_putc(out, '[');
    if (dim == rank - 1 && !b64) {
        sv_put_elements(out, t, offset, dims[dim]);
    } else {
        for (int64_t i = 0; i < dims[dim]; i++) {
            if (i) sv_buf_putc(out, ',');
            put_nested(out, t, dim + 1, offset + i * inner, b64);
        }
    }
    sv_buf_putc(out, ']');
}

/* TF Serving base64-encodes string outputs whose names end in "_bytes". */
static int wants_b64(const char *name, const ferry_value *t)
{
    size_t n = strlen(name);
    return ferry_tensor_dtype(t) == FERRY_DTYPE_STRING && n >= 6 &&
           strcmp(name + n - 6, "_bytes") == 0;
}

void sv_tfs_encode(sv_buf *out, const sv_decoded *d, int n_results, const char *const *names,
                   ferry_value *const *results)
{
    if (d->tfs_columnar) {
        sv_buf_puts(out, "{\"outputs\":");
        if (n_results == 1) {
            put_nested(out, results[0], 0, 0, wants_b64(names[0], results[0]));
        } else {
            sv_buf_putc(out, '{');
            for (int i = 0; i < n_results; i++) {
                if (i) sv_buf_putc(out, ',');
                sv_buf_json_str(out, names[i], strlen(names[i]));
                sv_buf_putc(out, ':');
                put_nested(out, results[i], 0, 0, wants_b64(names[i], results[i]));
            }
            sv_buf_putc(out, '}');
        }
        sv_buf_putc(out, '}');
        return;
    }
    sv_buf_puts(out, "{\"predictions\":");
    if (n_results == 1) {
        put_nested(out, results[0], 0, 0, wants_b64(names[0], results[0]));
    } else {
        /* One object per row; outputs without a batch dimension repeat whole in each row. */
        int64_t rows = 0;
        for (int i = 0; i < n_results; i++)
            if (ferry_tensor_rank(results[i]) > 0 && ferry_tensor_dims(results[i])[0] > rows)
                rows = ferry_tensor_dims(results[i])[0];
        sv_buf_putc(out, '[');
        for (int64_t r = 0; r < rows; r++) {
            if (r) sv_buf_putc(out, ',');
            sv_buf_putc(out, '{');
            for (int i = 0; i < n_results; i++) {
                const ferry_value *t = results[i];
                if (i) sv_buf_putc(out, ',');
                sv_buf_json_str(out, names[i], strlen(names[i]));
                sv_buf_putc(out, ':');
                int rank = ferry_tensor_rank(t);
                if (rank > 0 && ferry_tensor_dims(t)[0] == rows) {
                    int64_t inner = 1;
                    for (int j = 1; j < rank; j++)
                        inner *= ferry_tensor_dims(t)[j];
                    put_nested(out, t, 1, r * inner, wants_b64(names[i], t));
                } else {
                    put_nested(out, t, 0, 0, wants_b64(names[i], t));
                }
            }
            sv_buf_putc(out, '}');
        }
        sv_buf_putc(out, ']');
    }
    sv_buf_putc(out, '}');
}

/* ---- endpoints ----------------------------------------------------------------------------- */

typedef struct status_ctx {
    const char *model;
    int64_t version; /* 0 = all */
    json_t *arr;
    int seen; /* any version of the model at all */
} status_ctx;

static const char *tfs_state(const char *state)
{
    if (strcmp(state, "READY") == 0) return "AVAILABLE";
    if (strcmp(state, "LOADING") == 0) return "LOADING";
    if (strcmp(state, "UNLOADING") == 0) return "UNLOADING";
    return "END";
}

static void collect_status(void *ctx, const sv_index_entry *e)
{
    status_ctx *c = ctx;
    if (strcmp(e->model, c->model) != 0 || e->version <= 0) return;
    c->seen = 1;
    if (c->version && e->version != c->version) return;
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)e->version);
    int ok = strcmp(e->state, "READY") == 0 || strcmp(e->state, "LOADING") == 0;
    json_array_append_new(c->arr, json_pack("{s:s, s:s, s:{s:s, s:s}}", "version", v, "state",
                                            tfs_state(e->state), "status", "error_code",
                                            ok ? "OK" : "UNKNOWN", "error_message",
                                            e->reason ? e->reason : ""));
}

int sv_tfs_status(sv_http *h)
{
    status_ctx c = {h->model, h->version, json_array(), 0};
    if (h->label) {
        int status;
        sv_version *v = sv_http_acquire(h, &status);
        if (!v) {
            json_decref(c.arr);
            return status;
        }
        c.version = sv_version_number(v);
        sv_version_release(v);
    }
    sv_manager_foreach(h->srv->manager, collect_status, &c);
    if (!json_array_size(c.arr)) {
        json_decref(c.arr);
        if (!c.seen)
            return sv_http_error(h, 404, "Could not find any versions of model %s", h->model);
        return sv_http_error(h, 404, "Could not find version %lld of model %s",
                             (long long)h->version, h->model);
    }
    return sv_http_json(h, 200, json_pack("{s:o}", "model_version_status", c.arr));
}

static json_t *tensor_info(const ferry_io_info *io)
{
    json_t *dims = json_array();
    for (int d = 0; d < io->rank; d++) {
        char sz[24];
        snprintf(sz, sizeof(sz), "%lld", (long long)(io->dims[d] >= 0 ? io->dims[d] : -1));
        json_array_append_new(dims, json_pack("{s:s, s:s}", "size", sz, "name", ""));
    }
    return json_pack("{s:s, s:{s:o, s:b}, s:s}", "dtype", sv_tfs_dtype_name(io->dtype),
                     "tensor_shape", "dim", dims, "unknown_rank", io->rank < 0, "name", io->name);
}

int sv_tfs_metadata(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    const ferry_model *m = sv_version_model(v);
    json_t *ins = json_object(), *outs = json_object();
    for (int i = 0; i < ferry_model_input_count(m); i++) {
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        json_object_set_new(ins, io.name, tensor_info(&io));
    }
    for (int i = 0; i < ferry_model_output_count(m); i++) {
        ferry_io_info io;
        ferry_model_output(m, i, &io);
        json_object_set_new(outs, io.name, tensor_info(&io));
    }
    char ver[24];
    snprintf(ver, sizeof(ver), "%lld", (long long)sv_version_number(v));
    json_t *sig = json_pack("{s:o, s:o, s:s}", "inputs", ins, "outputs", outs, "method_name",
                            "tensorflow/serving/predict");
    return sv_http_json(h, 200,
                        json_pack("{s:{s:s, s:s, s:s}, s:{s:{s:{s:o}}}}", "model_spec", "name",
                                  sv_version_model_name(v), "signature_name", "", "version", ver,
                                  "metadata", "signature_def", "signature_def", "serving_default",
                                  sig));
}

static int predict_finish(sv_http *h)
{
    h->out.len = 0;
    sv_tfs_encode(&h->out, h->proto, h->req.n_results, h->req.result_names, h->req.results);
    return 200;
}

int sv_tfs_predict(sv_http *h)
{
    int status;
    sv_version *v = sv_http_acquire(h, &status);
    if (!v) return status;
    h->ver = v;
    sv_sig sig;
    sv_decoded *d = sv_arena_alloc(&h->arena, sizeof(*d));
    if (!d || sv_sig_of(&h->arena, sv_version_model(v), &sig) != 0)
        return sv_http_error(h, 500, "out of memory");
    char err[768];
    status = sv_tfs_decode(&h->arena, h->body, h->body_len, &sig, d, err, sizeof(err));
    if (status) {
        sv_decoded_clear(d);
        return sv_http_error(h, status, "%s", err);
    }
    h->proto = d;
    h->req.n_inputs = d->n_inputs;
    h->req.input_names = d->input_names;
    h->req.inputs = d->inputs;
    h->ver = NULL;
    return sv_http_submit(h, v, predict_finish);
}
