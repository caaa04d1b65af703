/* repository.c — scanning REPO/NAME/N/, parsing config.json and labels.json, applying version
 * policies and fingerprinting version directories (see repository.h for the contracts). */
#define _GNU_SOURCE
#include "serve/repository.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"

uint64_t sv_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- config.json ------------------------------------------------------------------------ */

void sv_config_defaults(sv_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_batch_size = -1;
    c->max_queue_delay_us = 0;
    c->instances = SV_DEFAULT_INSTANCES;
    c->policy = SV_POLICY_LATEST;
    c->latest_num_versions = 1;
    c->max_queue_size = SV_DEFAULT_QUEUE_SIZE;
    c->timeout_ms = 0;
}

/* Reads an integer member in [lo, hi]; absent leaves *out alone. */
static ferry_status get_int(json_t *obj, const char *key, const char *where, int64_t lo, int64_t hi,
                            int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return FERRY_OK;
    if (!json_is_integer(v))
        return fy_error(FERRY_E_PARSE, "config.json: %s%s must be an integer", where, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return fy_error(FERRY_E_PARSE, "config.json: %s%s = %lld is out of range [%lld, %lld]",
                        where, key, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return FERRY_OK;
}

static ferry_status parse_config(json_t *root, sv_model_config *c)
{
    if (!json_is_object(root)) return fy_error(FERRY_E_PARSE, "config.json: not a JSON object");
    int64_t x;

    x = c->max_batch_size;
    FY_CHECK(get_int(root, "max_batch_size", "", 0, 4096, &x));
    c->max_batch_size = (int)x;

    x = c->instances;
    FY_CHECK(get_int(root, "instances", "", 1, 64, &x));
    c->instances = (int)x;
    json_t *ig = json_object_get(root, "instance_group"); /* Triton spelling: [{"count": N}] */
    if (ig && json_is_array(ig) && json_array_size(ig) > 0) {
        x = c->instances;
        FY_CHECK(get_int(json_array_get(ig, 0), "count", "instance_group[0].", 1, 64, &x));
        c->instances = (int)x;
    }

    json_t *db = json_object_get(root, "dynamic_batching");
    if (db) {
        if (!json_is_object(db))
            return fy_error(FERRY_E_PARSE, "config.json: dynamic_batching must be an object");
        FY_CHECK(get_int(db, "max_queue_delay_us", "dynamic_batching.", 0, 10000000,
                         &c->max_queue_delay_us));
        json_t *pb = json_object_get(db, "preferred_batch_size");
        if (pb) {
            if (!json_is_array(pb))
                return fy_error(FERRY_E_PARSE,
                                "config.json: dynamic_batching.preferred_batch_size must be an "
                                "array of integers");
            if (json_array_size(pb) > SV_MAX_PREFERRED)
                return fy_error(FERRY_E_PARSE,
                                "config.json: dynamic_batching.preferred_batch_size has %zu "
                                "entries; at most %d",
                                json_array_size(pb), SV_MAX_PREFERRED);
            size_t i;
            json_t *e;
            json_array_foreach(pb, i, e)
            {
                if (!json_is_integer(e) || json_integer_value(e) < 1 ||
                    json_integer_value(e) > 4096)
                    return fy_error(FERRY_E_PARSE,
                                    "config.json: dynamic_batching.preferred_batch_size[%zu] "
                                    "must be an integer in [1, 4096]",
                                    i);
                c->preferred_batch_size[c->n_preferred++] = (int)json_integer_value(e);
            }
        }
    }

    json_t *vp = json_object_get(root, "version_policy");
    if (vp) {
        if (!json_is_object(vp) || json_object_size(vp) != 1)
            return fy_error(FERRY_E_PARSE,
                            "config.json: version_policy must be an object with exactly one of "
                            "\"latest\", \"all\", \"specific\"");
        json_t *v;
        if ((v = json_object_get(vp, "latest"))) {
            if (!json_is_object(v))
                return fy_error(FERRY_E_PARSE,
                                "config.json: version_policy.latest must be an object");
            c->policy = SV_POLICY_LATEST;
            x = 1;
            FY_CHECK(get_int(v, "num_versions", "version_policy.latest.", 1, 1000, &x));
            c->latest_num_versions = (int)x;
        } else if ((v = json_object_get(vp, "all"))) {
            if (!json_is_object(v))
                return fy_error(FERRY_E_PARSE, "config.json: version_policy.all must be an object");
            c->policy = SV_POLICY_ALL;
        } else if ((v = json_object_get(vp, "specific"))) {
            json_t *list = json_is_object(v) ? json_object_get(v, "versions") : NULL;
            if (!json_is_array(list) || json_array_size(list) == 0)
                return fy_error(FERRY_E_PARSE,
                                "config.json: version_policy.specific.versions must be a "
                                "non-empty array of positive integers");
            if (json_array_size(list) > SV_MAX_SPECIFIC)
                return fy_error(FERRY_E_PARSE,
                                "config.json: version_policy.specific.versions lists %zu "
                                "versions; at most %d",
                                json_array_size(list), SV_MAX_SPECIFIC);
            c->policy = SV_POLICY_SPECIFIC;
            size_t i;
            json_t *e;
            json_array_foreach(list, i, e)
            {
                if (!json_is_integer(e) || json_integer_value(e) < 1)
                    return fy_error(FERRY_E_PARSE,
                                    "config.json: version_policy.specific.versions[%zu] must be "
                                    "a positive integer",
                                    i);
                c->specific_versions[c->n_specific++] = json_integer_value(e);
            }
        } else {
            return fy_error(FERRY_E_PARSE,
                            "config.json: version_policy must be one of \"latest\", \"all\", "
                            "\"specific\"");
        }
    }

    json_t *lim = json_object_get(root, "limits");
    if (lim) {
        if (!json_is_object(lim))
            return fy_error(FERRY_E_PARSE, "config.json: limits must be an object");
        x = c->max_queue_size;
        FY_CHECK(get_int(lim, "max_queue_size", "limits.", 1, 1 << 20, &x));
        c->max_queue_size = (int)x;
        FY_CHECK(get_int(lim, "timeout_ms", "limits.", 0, 3600 * 1000, &c->timeout_ms));
    }

    if (c->max_batch_size >= 0) {
        for (int i = 0; i < c->n_preferred; i++)
            if (c->preferred_batch_size[i] > (c->max_batch_size > 0 ? c->max_batch_size : 1))
                return fy_error(FERRY_E_PARSE,
                                "config.json: preferred_batch_size %d exceeds max_batch_size %d",
                                c->preferred_batch_size[i], c->max_batch_size);
    }
    return FERRY_OK;
}

ferry_status sv_config_load(const char *model_dir, sv_model_config *c)
{
    sv_config_defaults(c);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return FERRY_OK;
        return fy_error(FERRY_E_IO, "config.json: cannot open %s: %s", path, strerror(errno));
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    ferry_status rc = FERRY_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) {
                rc = fy_error(FERRY_E_PARSE, "config.json: larger than 1 MiB");
                goto out;
            }
            char *t = realloc(text, cap);
            if (!t) {
                rc = fy_error(FERRY_E_NOMEM, "out of memory");
                goto out;
            }
            text = t;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    text[len] = 0;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        rc = fy_error(FERRY_E_PARSE, "config.json: line %d: %s", je.line, je.text);
        goto out;
    }
    rc = parse_config(root, c);
    json_decref(root);
    if (rc != FERRY_OK) {
        sv_config_defaults(c);
        goto out;
    }
    c->text_hash = sv_hash_bytes(SV_HASH_SEED, text, len) | 1;
out:
    free(text);
    fclose(f);
    return rc;
}

/* A batch dimension is dim 0 of a tensor whose dim 0 is not fixed (-1: symbolic or unknown). */
static int has_batch_dim(const ferry_io_info *io)
{
    return io->kind == FERRY_VALUE_TENSOR && io->rank >= 1 && io->dims[0] < 0;
}

ferry_status sv_config_resolve(sv_model_config *c, const ferry_model *m)
{
    int batchable = ferry_model_input_count(m) > 0;
    const char *why = "";
    char whybuf[256] = "";
    for (int i = 0; i < ferry_model_input_count(m) && batchable; i++) {
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        if (!has_batch_dim(&io)) {
            batchable = 0;
            snprintf(whybuf, sizeof whybuf, "input \"%s\" has no symbolic first dimension",
                     io.name);
        }
    }
    for (int i = 0; i < ferry_model_output_count(m) && batchable; i++) {
        ferry_io_info io;
        ferry_model_output(m, i, &io);
        if (io.kind != FERRY_VALUE_TENSOR || (io.rank >= 0 && !has_batch_dim(&io))) {
            batchable = 0;
            snprintf(whybuf, sizeof whybuf, "output \"%s\" has no symbolic first dimension",
                     io.name);
        }
    }
    why = whybuf[0] ? whybuf : "the model has no inputs";
    if (c->max_batch_size < 0) {
        c->max_batch_size = batchable ? SV_DEFAULT_AUTO_BATCH : 0;
        if (c->max_batch_size == 0) c->n_preferred = 0;
    } else if (c->max_batch_size > 0 && !batchable) {
        return fy_error(FERRY_E_INVALID_ARG,
                        "config.json: max_batch_size %d needs a batch dimension, but %s",
                        c->max_batch_size, why);
    }
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred_batch_size[i] > c->max_batch_size)
            return fy_error(FERRY_E_INVALID_ARG,
                            "config.json: preferred_batch_size %d exceeds max_batch_size %d",
                            c->preferred_batch_size[i], c->max_batch_size);
    return FERRY_OK;
}

char *sv_config_to_json(const sv_model_config *c, const char *model_name)
{
    json_t *root = json_object();
    json_object_set_new(root, "name", json_string(model_name));
    json_object_set_new(root, "platform", json_string("onnx"));
    json_object_set_new(root, "backend", json_string("ferry"));
    json_object_set_new(root, "max_batch_size", json_integer(c->max_batch_size));
    json_t *db = json_object();
    json_object_set_new(db, "max_queue_delay_us", json_integer(c->max_queue_delay_us));
    json_t *pb = json_array();
    for (int i = 0; i < c->n_preferred; i++)
        json_array_append_new(pb, json_integer(c->preferred_batch_size[i]));
    json_object_set_new(db, "preferred_batch_size", pb);
    json_object_set_new(root, "dynamic_batching", db);
    json_object_set_new(root, "instances", json_integer(c->instances));
    json_t *vp = json_object(), *inner = json_object();
    if (c->policy == SV_POLICY_LATEST) {
        json_object_set_new(inner, "num_versions", json_integer(c->latest_num_versions));
        json_object_set_new(vp, "latest", inner);
    } else if (c->policy == SV_POLICY_ALL) {
        json_object_set_new(vp, "all", inner);
    } else {
        json_t *list = json_array();
        for (int i = 0; i < c->n_specific; i++)
            json_array_append_new(list, json_integer(c->specific_versions[i]));
        json_object_set_new(inner, "versions", list);
        json_object_set_new(vp, "specific", inner);
    }
    json_object_set_new(root, "version_policy", vp);
    json_t *lim = json_object();
    json_object_set_new(lim, "max_queue_size", json_integer(c->max_queue_size));
    json_object_set_new(lim, "timeout_ms", json_integer(c->timeout_ms));
    json_object_set_new(root, "limits", lim);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

/* ---- version policy --------------------------------------------------------------------- */

int sv_policy_select(const sv_model_config *c, const int64_t *versions, int n, int64_t *sel)
{
    int k = 0;
    switch (c->policy) {
    case SV_POLICY_ALL:
        for (int i = 0; i < n; i++)
            sel[k++] = versions[i];
        break;
    case SV_POLICY_SPECIFIC:
        for (int i = 0; i < n; i++)
            for (int j = 0; j < c->n_specific; j++)
                if (versions[i] == c->specific_versions[j]) {
                    sel[k++] = versions[i];
                    break;
                }
        break;
    case SV_POLICY_LATEST: {
        int first = n - c->latest_num_versions;
        for (int i = first < 0 ? 0 : first; i < n; i++)
            sel[k++] = versions[i];
        break;
    }
    }
    return k;
}

/* ---- directory listings ------------------------------------------------------------------ */

static int is_dir(const char *parent, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", parent, name);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void sv_free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

ferry_status sv_repo_list_models(const char *repo, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(repo);
    if (!d) return fy_error(FERRY_E_IO, "model repository %s: %s", repo, strerror(errno));
    char **list = NULL;
    int cnt = 0, cap = 0;
    ferry_status rc = FERRY_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* Hidden entries are the usual place for temp dirs (".tmp-mnist") and VCS metadata. */
        if (e->d_name[0] == '.' || !is_dir(repo, e->d_name)) continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            char **t = realloc(list, sizeof *list * cap);
            if (!t) {
                rc = fy_error(FERRY_E_NOMEM, "out of memory");
                break;
            }
            list = t;
        }
        if (!(list[cnt] = strdup(e->d_name))) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            break;
        }
        cnt++;
    }
    closedir(d);
    if (rc != FERRY_OK) {
        sv_free_names(list, cnt);
        return rc;
    }
    if (cnt) qsort(list, cnt, sizeof *list, cmp_str);
    *names = list;
    *n = cnt;
    return FERRY_OK;
}

/* A positive decimal integer without sign, leading zeros or trailing characters. */
static int parse_version(const char *s, int64_t *out)
{
    if (s[0] < '1' || s[0] > '9' || strlen(s) > 18) return 0;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 1;
}

ferry_status sv_repo_list_versions(const char *model_dir, int64_t **versions, int *n)
{
    *versions = NULL;
    *n = 0;
    DIR *d = opendir(model_dir);
    if (!d) return fy_error(FERRY_E_IO, "model directory %s: %s", model_dir, strerror(errno));
    int64_t *list = NULL;
    int cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t v;
        if (!parse_version(e->d_name, &v) || !is_dir(model_dir, e->d_name)) continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *t = realloc(list, sizeof *list * cap);
            if (!t) {
                free(list);
                closedir(d);
                return fy_error(FERRY_E_NOMEM, "out of memory");
            }
            list = t;
        }
        list[cnt++] = v;
    }
    closedir(d);
    if (cnt) qsort(list, cnt, sizeof *list, cmp_i64);
    *versions = list;
    *n = cnt;
    return FERRY_OK;
}

/* ---- labels.json ------------------------------------------------------------------------- */

ferry_status sv_labels_load(const char *model_dir, sv_labels *out)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.json", model_dir);
    struct stat st;
    if (stat(path, &st) != 0) return FERRY_OK;
    if (st.st_size > (1 << 20)) return fy_error(FERRY_E_PARSE, "labels.json: larger than 1 MiB");
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return fy_error(FERRY_E_PARSE, "labels.json: line %d: %s", je.line, je.text);
    ferry_status rc = FERRY_OK;
    if (!json_is_object(root)) {
        rc = fy_error(FERRY_E_PARSE, "labels.json: not a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (!json_is_integer(v)) continue;
        if (json_integer_value(v) < 1) {
            rc = fy_error(FERRY_E_PARSE, "labels.json: label \"%s\" must name a positive version",
                          key);
            goto out;
        }
        if (strlen(key) == 0 || strlen(key) >= SV_LABEL_LEN || strchr(key, ',') ||
            strchr(key, '/')) {
            rc =
                fy_error(FERRY_E_PARSE,
                         "labels.json: label \"%.80s\" must be 1..%d characters without ',' or '/'",
                         key, SV_LABEL_LEN - 1);
            goto out;
        }
        if (out->n == SV_MAX_LABELS) {
            rc = fy_error(FERRY_E_PARSE, "labels.json: more than %d labels", SV_MAX_LABELS);
            goto out;
        }
        snprintf(out->name[out->n], SV_LABEL_LEN, "%s", key);
        out->version[out->n++] = json_integer_value(v);
    }
out:
    if (rc != FERRY_OK) memset(out, 0, sizeof *out);
    json_decref(root);
    return rc;
}

/* ---- fingerprints ------------------------------------------------------------------------ */

typedef struct fp_entry {
    char *rel;
    long long size;
    long long mtime_ns;
} fp_entry;

typedef struct fp_list {
    fp_entry *e;
    int n, cap;
} fp_list;

static int cmp_fp(const void *a, const void *b)
{
    return strcmp(((const fp_entry *)a)->rel, ((const fp_entry *)b)->rel);
}

static ferry_status fp_walk(const char *root, const char *rel, fp_list *l, int depth)
{
    if (depth > 8) return FERRY_OK; /* deeper trees are not model files; don't recurse forever */
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return fy_error(FERRY_E_IO, "%s: %s", path, strerror(errno));
    struct dirent *e;
    ferry_status rc = FERRY_OK;
    while ((e = readdir(d)) && rc == FERRY_OK) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096], full[4096];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (lstat(full, &st) != 0) continue; /* vanished between readdir and stat: still moving */
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            fp_entry *t = realloc(l->e, sizeof *t * l->cap);
            if (!t) {
                rc = fy_error(FERRY_E_NOMEM, "out of memory");
                break;
            }
            l->e = t;
        }
        if (!(l->e[l->n].rel = strdup(sub))) {
            rc = fy_error(FERRY_E_NOMEM, "out of memory");
            break;
        }
        l->e[l->n].size = S_ISDIR(st.st_mode) ? -1 : (long long)st.st_size;
        l->e[l->n].mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
        l->n++;
        if (S_ISDIR(st.st_mode)) rc = fp_walk(root, sub, l, depth + 1);
    }
    closedir(d);
    return rc;
}

ferry_status sv_dir_fingerprint(const char *dir, uint64_t *out)
{
    fp_list l = {0};
    ferry_status rc = fp_walk(dir, "", &l, 0);
    if (rc == FERRY_OK) {
        if (l.n) qsort(l.e, l.n, sizeof *l.e, cmp_fp);
        uint64_t h = SV_HASH_SEED;
        for (int i = 0; i < l.n; i++) {
            h = sv_hash_bytes(h, l.e[i].rel, strlen(l.e[i].rel) + 1);
            h = sv_hash_bytes(h, &l.e[i].size, sizeof l.e[i].size);
            h = sv_hash_bytes(h, &l.e[i].mtime_ns, sizeof l.e[i].mtime_ns);
        }
        *out = h;
    }
    for (int i = 0; i < l.n; i++)
        free(l.e[i].rel);
    free(l.e);
    return rc;
}
