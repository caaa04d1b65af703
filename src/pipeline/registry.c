/* registry.c — the model repository: atomic publish of numbered versions, labels moved under a
 * lock, an append-only history that makes rollback possible, listing and verification. */
#define _GNU_SOURCE /* nftw, mkdtemp, getline */
#include "pipeline/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "onnx.pb-c.h"
#include "pipeline/manifest.h"

extern char **environ;

#define MAX_VERSION 1000000000000LL

/* ---- names, paths ------------------------------------------------------------------------- */

int fy_repo_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 128 || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

int64_t fy_repo_version_of(const char *s)
{
    if (!s || *s < '1' || *s > '9' || strlen(s) > 13) return 0;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
    }
    return v <= MAX_VERSION ? v : 0;
}

static ferry_status check_names(const char *repo, const char *name, const char *label)
{
    if (!repo || !*repo) return fy_error(FERRY_E_INVALID_ARG, "no repository directory given");
    if (!fy_repo_name_ok(name))
        return fy_error(FERRY_E_INVALID_ARG,
                        "model name \"%s\" must be 1-128 characters of A-Z a-z 0-9 . _ - "
                        "(not \".\" or \"..\")",
                        name ? name : "");
    /* ferry serve keeps labels in 64-byte slots, at most FY_MAX_LABELS of them */
    if (label && (!fy_repo_name_ok(label) || strlen(label) > 63 || !strcmp(label, "canary_weight")))
        return fy_error(FERRY_E_INVALID_ARG,
                        "label \"%s\" must be 1-63 characters of A-Z a-z 0-9 . _ - "
                        "(and not \"canary_weight\")",
                        label);
    return FERRY_OK;
}

/* dir = REPO/NAME; fails only on absurd lengths. */
static ferry_status model_dir(const char *repo, const char *name, char *out, size_t cap)
{
    if ((size_t)snprintf(out, cap, "%s/%s", repo, name) >= cap)
        return fy_error(FERRY_E_INVALID_ARG, "repository path too long");
    return FERRY_OK;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_rf(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Removes what killed publishes and label writes left behind. Called under the lock, so no
 * writer is using them. */
static void clean_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, FY_TMP_PREFIX, strlen(FY_TMP_PREFIX))) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            rm_rf(path);
        }
    closedir(d);
}

/* Highest numbered version directory in dir (0 if none). */
static int64_t highest_version(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int64_t best = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t v = fy_repo_version_of(de->d_name);
        if (v > best) best = v;
    }
    closedir(d);
    return best;
}

/* rename() would silently replace an empty directory someone created by hand at the
 * destination; RENAME_NOREPLACE refuses. File systems without it fall back to rename(), which
 * the lock already makes safe against other ferry writers. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

/* ---- lock ----------------------------------------------------------------------------------- */

/* Every writer of REPO/NAME holds an exclusive flock on REPO/NAME/.lock; the kernel drops it when
 * the process dies, so a killed publish never blocks the next one. */
static ferry_status lock_model(const char *dir, int *fd_out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, FY_LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return fy_error(FERRY_E_IO, "%s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return fy_error(FERRY_E_IO, "%s: cannot lock: %s", path, strerror(e));
    }
    *fd_out = fd;
    return FERRY_OK;
}

static void unlock_model(int fd)
{
    if (fd >= 0) close(fd);
}

static ferry_status mkdir_one(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return FERRY_OK;
        return fy_error(FERRY_E_IO, "%s exists and is not a directory", path);
    }
    return fy_error(FERRY_E_IO, "cannot create %s: %s", path, strerror(errno));
}

/* ---- labels.json, history.jsonl ------------------------------------------------------------- */

/* labels.json as an object; an empty one when the file does not exist. */
static ferry_status load_labels(const char *dir, json_t **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, FY_LABELS_NAME);
    if (access(path, F_OK) != 0) {
        *out = json_object();
        return *out ? FERRY_OK : fy_error(FERRY_E_NOMEM, "out of memory");
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return fy_error(FERRY_E_PARSE, "%s: line %d: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return fy_error(FERRY_E_PARSE, "%s: must be a JSON object", path);
    }
    *out = root;
    return FERRY_OK;
}

/* Refuses a label that would be one more than ferry serve routes. */
static ferry_status room_for_label(json_t *labels, const char *label, int *refused)
{
    if (json_object_get(labels, label)) return FERRY_OK;
    int n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(labels, key, val) n += json_is_integer(val);
    if (n < FY_MAX_LABELS) return FERRY_OK;
    *refused = 1;
    return fy_error(FERRY_E_INVALID_ARG, "a model has at most %d labels; \"%s\" would be one more",
                    FY_MAX_LABELS, label);
}

/* Version a label points at in a loaded labels object (0 if unset or not a positive integer). */
static int64_t label_version(json_t *labels, const char *label)
{
    json_t *v = json_object_get(labels, label);
    if (!json_is_integer(v) || json_integer_value(v) <= 0) return 0;
    return (int64_t)json_integer_value(v);
}

/* Replaces labels.json atomically: readers (ferry serve polling) see the old or the new file. */
static ferry_status store_labels(const char *dir, json_t *labels)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/%slabels-%d", dir, FY_TMP_PREFIX, (int)getpid());
    snprintf(path, sizeof path, "%s/%s", dir, FY_LABELS_NAME);
    char *text = json_dumps(labels, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    if (!text) return fy_error(FERRY_E_NOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(text);
        return fy_error(FERRY_E_IO, "%s: %s", tmp, strerror(errno));
    }
    int ok =
        write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 && fsync(fd) == 0;
    int e = errno;
    close(fd);
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return fy_error(FERRY_E_IO, "%s: cannot write: %s", path, strerror(e));
    }
    fsync_path(dir);
    return FERRY_OK;
}

static void who(char *user, size_t ucap, char *host, size_t hcap)
{
    const char *u = getenv("USER");
    if (!u || !*u) {
        struct passwd *pw = getpwuid(geteuid());
        u = pw ? pw->pw_name : NULL;
    }
    if (u)
        snprintf(user, ucap, "%s", u);
    else
        snprintf(user, ucap, "uid%d", (int)geteuid());
    if (gethostname(host, hcap) != 0) snprintf(host, hcap, "unknown");
    host[hcap - 1] = '\0';
}

/* Appends one change to history.jsonl with a single O_APPEND write, then fsyncs. */
/* weight >= 0 adds "weight" (a canary_weight set in the same change). */
static ferry_status append_history(const char *dir, const char *action, int64_t version,
                                   const char *label, int64_t previous, const char *reason,
                                   double weight)
{
    char when[40], user[128], host[256];
    fy_utc_now(when, sizeof when, 1);
    who(user, sizeof user, host, sizeof host);
    json_t *e = json_object();
    json_object_set_new(e, "time", json_string(when));
    json_object_set_new(e, "user", json_string(user));
    json_object_set_new(e, "host", json_string(host));
    json_object_set_new(e, "action", json_string(action));
    json_object_set_new(e, "version", json_integer(version));
    json_object_set_new(e, "label", label ? json_string(label) : json_null());
    json_object_set_new(e, "previous", previous > 0 ? json_integer(previous) : json_null());
    json_object_set_new(e, "reason", reason ? json_string(reason) : json_null());
    if (weight >= 0) json_object_set_new(e, "weight", json_real(weight));
    char *line = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(e);
    if (!line) return fy_error(FERRY_E_NOMEM, "out of memory (or reason is not UTF-8)");
    size_t len = strlen(line);
    char *buf = malloc(len + 2);
    if (!buf) {
        free(line);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    memcpy(buf, line, len);
    buf[len] = '\n';
    free(line);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, FY_HISTORY_NAME);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int ok = fd >= 0 && write_all(fd, buf, len + 1) == 0 && fsync(fd) == 0;
    int e2 = errno;
    if (fd >= 0) close(fd);
    free(buf);
    if (!ok) return fy_error(FERRY_E_IO, "%s: cannot append: %s", path, strerror(e2));
    return FERRY_OK;
}

/* ---- publish -------------------------------------------------------------------------------- */

typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

static ferry_status name_list_add(name_list *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return FERRY_OK;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return fy_error(FERRY_E_NOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return fy_error(FERRY_E_NOMEM, "out of memory");
    l->n++;
    return FERRY_OK;
}

static void name_list_free(name_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (name_list){0};
}

static ferry_status external_of_tensor(const Onnx__TensorProto *t, name_list *out)
{
    if (!t || !t->has_data_location ||
        t->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return FERRY_OK;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        if (!e || !e->key || strcmp(e->key, "location") != 0) continue;
        const char *loc = e->value ? e->value : "";
        if (!*loc || *loc == '/' || strstr(loc, "..") || !strcmp(loc, "model.onnx") ||
            !strcmp(loc, FY_MANIFEST_NAME) || strlen(loc) > 1024)
            return fy_error(FERRY_E_PARSE,
                            "tensor \"%s\": external data location \"%s\" must be a relative "
                            "path beside the model",
                            t->name ? t->name : "", loc);
        FY_CHECK(name_list_add(out, loc));
    }
    return FERRY_OK;
}

static ferry_status external_of_graph(const Onnx__GraphProto *g, name_list *out, int depth);

static ferry_status external_of_sparse(const Onnx__SparseTensorProto *s, name_list *out)
{
    if (!s) return FERRY_OK;
    FY_CHECK(external_of_tensor(s->values, out));
    return external_of_tensor(s->indices, out);
}

static ferry_status external_of_graph(const Onnx__GraphProto *g, name_list *out, int depth)
{
    if (!g) return FERRY_OK;
    if (depth > 64) return fy_error(FERRY_E_PARSE, "subgraphs nest deeper than 64");
    for (size_t i = 0; i < g->n_initializer; i++)
        FY_CHECK(external_of_tensor(g->initializer[i], out));
    for (size_t i = 0; i < g->n_sparse_initializer; i++)
        FY_CHECK(external_of_sparse(g->sparse_initializer[i], out));
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; n && j < n->n_attribute; j++) {
            const Onnx__AttributeProto *a = n->attribute[j];
            if (!a) continue;
            FY_CHECK(external_of_tensor(a->t, out));
            for (size_t k = 0; k < a->n_tensors; k++)
                FY_CHECK(external_of_tensor(a->tensors[k], out));
            FY_CHECK(external_of_sparse(a->sparse_tensor, out));
            for (size_t k = 0; k < a->n_sparse_tensors; k++)
                FY_CHECK(external_of_sparse(a->sparse_tensors[k], out));
            FY_CHECK(external_of_graph(a->g, out, depth + 1));
            for (size_t k = 0; k < a->n_graphs; k++)
                FY_CHECK(external_of_graph(a->graphs[k], out, depth + 1));
        }
    }
    return FERRY_OK;
}

/* The external-data files a model refers to (relative to its directory). Also proves the file
 * is an ONNX model before anything is copied. */
static ferry_status external_files(const char *model, name_list *out)
{
    int fd = open(model, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fy_error(FERRY_E_IO, "%s: %s", model, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return fy_error(FERRY_E_IO, "%s: not a non-empty regular file", model);
    }
    void *addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (addr == MAP_FAILED)
        return fy_error(FERRY_E_IO, "%s: cannot map: %s", model, strerror(errno));
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, (size_t)st.st_size, addr);
    munmap(addr, (size_t)st.st_size);
    if (!m || !m->graph) {
        if (m) onnx__model_proto__free_unpacked(m, NULL);
        return fy_error(FERRY_E_PARSE, "%s: not an ONNX model (protobuf does not decode)", model);
    }
    ferry_status rc = external_of_graph(m->graph, out, 0);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc != FERRY_OK) return fy_error_wrap(rc, "%s", model);
    return FERRY_OK;
}

/* Copies src to dst (which must not exist) and fsyncs it. Creates dst's parent directories
 * below root (external data may sit in a subfolder). */
static ferry_status copy_file(const char *src, const char *root, const char *rel)
{
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/%s", root, rel);
    for (char *p = dst + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        ferry_status rc = mkdir_one(dst);
        *p = '/';
        FY_CHECK(rc);
    }
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return fy_error(FERRY_E_IO, "%s: %s", src, strerror(errno));
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in);
        return fy_error(FERRY_E_IO, "%s: not a regular file", src);
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return fy_error(FERRY_E_IO, "%s: %s", dst, strerror(e));
    }
    static _Thread_local char buf[1 << 20];
    ssize_t n;
    int ok = 1;
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || write_all(out, buf, (size_t)n) != 0) {
            ok = 0;
            break;
        }
    }
    if (ok && fsync(out) != 0) ok = 0;
    int e = errno;
    close(in);
    close(out);
    if (!ok) return fy_error(FERRY_E_IO, "copying %s to %s: %s", src, dst, strerror(e));
    return FERRY_OK;
}

/* Runs argv with stdout captured into out (stderr discarded); returns the exit status, or -1. */
static int run_capture(char *const argv[], char *out, size_t cap)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return -1;
    }
    size_t used = 0;
    ssize_t n;
    char sink[4096];
    while ((n = read(pipefd[0], used + 1 < cap ? out + used : sink,
                     used + 1 < cap ? cap - 1 - used : sizeof sink)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (used + 1 < cap) used += (size_t)n;
    }
    out[used] = '\0';
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* {"git_commit": "...", "dirty": bool} when dir is inside a git work tree, else NULL. */
static json_t *git_source(const char *dir)
{
    char head[128];
    char *rev[] = {"git", "-C", (char *)dir, "rev-parse", "HEAD", NULL};
    if (run_capture(rev, head, sizeof head) != 0) return NULL;
    head[strcspn(head, "\r\n")] = '\0';
    if (strlen(head) < 40) return NULL;
    char status[256];
    char *st[] = {"git", "-C", (char *)dir, "status", "--porcelain", "--untracked-files=no", NULL};
    int rc = run_capture(st, status, sizeof status);
    json_t *o = json_object();
    json_object_set_new(o, "git_commit", json_string(head));
    if (rc == 0) json_object_set_new(o, "dirty", json_boolean(status[0] != '\0'));
    return o;
}

/* Reads the validation report's "metrics" and "profile" (either may be absent). */
static ferry_status load_report(const char *path, json_t **metrics, json_t **profile)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return fy_error(FERRY_E_PARSE, "report %s: line %d: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return fy_error(FERRY_E_PARSE, "report %s: must be a JSON object", path);
    }
    json_t *m = json_object_get(root, "metrics"), *p = json_object_get(root, "profile");
    *metrics = m ? json_incref(m) : NULL;
    *profile = p ? json_incref(p) : NULL;
    json_decref(root);
    return FERRY_OK;
}

static ferry_status fill_version_dir(const ferry_publish_options *o, const char *tmp,
                                     int64_t version, const name_list *ext, json_t *metrics,
                                     json_t *profile)
{
    FY_CHECK(copy_file(o->model, tmp, "model.onnx"));
    char srcdir[4096];
    snprintf(srcdir, sizeof srcdir, "%s", o->model);
    char *slash = strrchr(srcdir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(srcdir, sizeof srcdir, ".");
    const char **files = malloc(sizeof *files * (size_t)(ext->n + 1));
    if (!files) return fy_error(FERRY_E_NOMEM, "out of memory");
    files[0] = "model.onnx";
    ferry_status rc = FERRY_OK;
    for (int i = 0; i < ext->n && rc == FERRY_OK; i++) {
        char src[8192];
        snprintf(src, sizeof src, "%s/%s", srcdir, ext->v[i]);
        rc = copy_file(src, tmp, ext->v[i]);
        files[i + 1] = ext->v[i];
    }
    json_t *source = NULL;
    if (rc == FERRY_OK) {
        source = git_source(srcdir);
        if (!source) {
            char cwd[4096];
            if (getcwd(cwd, sizeof cwd)) source = git_source(cwd);
        }
        rc = fy_manifest_write(tmp, o->name, version, files, ext->n + 1, source, metrics, profile);
    }
    json_decref(source);
    free(files);
    return rc;
}

ferry_status ferry_repo_publish(const ferry_publish_options *o, int64_t *version, int *refused)
{
    int dummy;
    if (!refused) refused = &dummy;
    *refused = 0;
    if (!o || !o->model) return fy_error(FERRY_E_INVALID_ARG, "publish: no model given");
    FY_CHECK(check_names(o->repo, o->name, o->label));
    if (o->version < 0 || o->version > MAX_VERSION)
        return fy_error(FERRY_E_INVALID_ARG, "version must be a positive integer");
    /* Everything that can be checked before the repository is touched. */
    name_list ext = {0};
    FY_CHECK(external_files(o->model, &ext));
    json_t *metrics = NULL, *profile = NULL;
    ferry_status rc = o->report ? load_report(o->report, &metrics, &profile) : FERRY_OK;
    char dir[4096], tmp[4096], final[4096];
    int lock = -1;
    if (rc == FERRY_OK) rc = mkdir_one(o->repo);
    if (rc == FERRY_OK) rc = model_dir(o->repo, o->name, dir, sizeof dir);
    if (rc == FERRY_OK) rc = mkdir_one(dir);
    if (rc == FERRY_OK) rc = lock_model(dir, &lock);
    if (rc != FERRY_OK) goto done;
    clean_temps(dir);
    int64_t v = o->version ? o->version : highest_version(dir) + 1;
    snprintf(final, sizeof final, "%s/%lld", dir, (long long)v);
    if (access(final, F_OK) == 0) {
        *refused = 1;
        rc = fy_error(FERRY_E_INVALID_ARG,
                      "%s version %lld already exists; versions are immutable (publish without "
                      "--version to get the next number)",
                      o->name, (long long)v);
        goto done;
    }
    snprintf(tmp, sizeof tmp, "%s/%spublish-XXXXXX", dir, FY_TMP_PREFIX);
    if (!mkdtemp(tmp)) {
        rc = fy_error(FERRY_E_IO, "cannot create a temporary directory in %s: %s", dir,
                      strerror(errno));
        goto done;
    }
    chmod(tmp, 0755);
    rc = fill_version_dir(o, tmp, v, &ext, metrics, profile);
    /* Make the contents durable before the name appears, then the name itself. */
    if (rc == FERRY_OK && fsync_path(tmp) != 0)
        rc = fy_error(FERRY_E_IO, "%s: fsync: %s", tmp, strerror(errno));
    for (int i = 0; rc == FERRY_OK && i < ext.n; i++)
        if (strchr(ext.v[i], '/')) {
            char sub[8192];
            snprintf(sub, sizeof sub, "%s/%s", tmp, ext.v[i]);
            *strrchr(sub, '/') = '\0';
            fsync_path(sub);
        }
    if (rc == FERRY_OK && rename_noreplace(tmp, final) != 0) {
        *refused = errno == EEXIST || errno == ENOTEMPTY;
        rc = fy_error(FERRY_E_IO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    }
    if (rc != FERRY_OK) {
        rm_rf(tmp);
        goto done;
    }
    fsync_path(dir);
    if (version) *version = v;
    int64_t previous = 0;
    if (o->label) {
        json_t *labels = NULL;
        rc = load_labels(dir, &labels);
        if (rc == FERRY_OK) rc = room_for_label(labels, o->label, refused);
        if (rc == FERRY_OK) {
            previous = label_version(labels, o->label);
            json_object_set_new(labels, o->label, json_integer(v));
            rc = store_labels(dir, labels);
        }
        json_decref(labels);
        if (rc != FERRY_OK) {
            rc = fy_error_wrap(rc, "version %lld was published but label \"%s\" was not set",
                               (long long)v, o->label);
            append_history(dir, "publish", v, NULL, 0, o->reason, -1);
            goto done;
        }
    }
    rc = append_history(dir, "publish", v, o->label, previous, o->reason, -1);
done:
    unlock_model(lock);
    json_decref(metrics);
    json_decref(profile);
    name_list_free(&ext);
    return rc;
}

/* ---- labels: resolve, promote, rollback ----------------------------------------------------- */

ferry_status fy_repo_resolve_label(const char *repo, const char *name, const char *label,
                                   int64_t *version)
{
    FY_CHECK(check_names(repo, name, label));
    if (!label) return fy_error(FERRY_E_INVALID_ARG, "no label given");
    char dir[4096], path[4096];
    FY_CHECK(model_dir(repo, name, dir, sizeof dir));
    snprintf(path, sizeof path, "%s/%s", dir, FY_LABELS_NAME);
    if (access(path, F_OK) != 0)
        return fy_error(FERRY_E_IO, "%s has no labels (no %s)", dir, FY_LABELS_NAME);
    json_t *labels;
    FY_CHECK(load_labels(dir, &labels));
    int64_t v = label_version(labels, label);
    if (v <= 0) {
        char have[512] = "";
        const char *key;
        json_t *val;
        json_object_foreach(labels, key, val)
        {
            if (!json_is_integer(val)) continue;
            size_t used = strlen(have);
            snprintf(have + used, sizeof have - used, "%s%s", used ? ", " : "", key);
        }
        json_decref(labels);
        return fy_error(FERRY_E_INVALID_ARG, "%s: label \"%s\" is not set (labels: %s)", name,
                        label, *have ? have : "none");
    }
    json_decref(labels);
    *version = v;
    return FERRY_OK;
}

ferry_status ferry_repo_resolve(const char *repo, const char *name, const char *label,
                                int64_t *version)
{
    return fy_repo_resolve_label(repo, name, label, version);
}

ferry_status fy_repo_resolve_spec(const char *spec, char **model_path, int64_t *version)
{
    /* NAME starts after the last '/' before the last '@'; REPO is everything before that '/'. */
    const char *at = spec ? strrchr(spec, '@') : NULL;
    const char *slash = at;
    while (slash && slash > spec && slash[-1] != '/')
        slash--;
    if (!at || slash == spec || slash - 1 == spec)
        return fy_error(FERRY_E_INVALID_ARG, "\"%s\" is not REPO/NAME@LABEL", spec ? spec : "");
    size_t repo_len = (size_t)(slash - 1 - spec);
    char repo[4096], name[256], label[256];
    if (repo_len >= sizeof repo || (size_t)(at - slash) >= sizeof name ||
        strlen(at + 1) >= sizeof label)
        return fy_error(FERRY_E_INVALID_ARG, "\"%s\": too long", spec);
    memcpy(repo, spec, repo_len);
    repo[repo_len] = '\0';
    memcpy(name, slash, (size_t)(at - slash));
    name[at - slash] = '\0';
    snprintf(label, sizeof label, "%s", at + 1);
    int64_t v;
    FY_CHECK(fy_repo_resolve_label(repo, name, label, &v));
    char vdir[4400];
    snprintf(vdir, sizeof vdir, "%s/%s/%lld", repo, name, (long long)v);
    if (fy_manifest_verify(vdir) == FERRY_E_PARSE)
        return fy_error_wrap(FERRY_E_PARSE, "%s is version %lld", spec, (long long)v);
    size_t cap = strlen(repo) + strlen(name) + 40;
    char *path = malloc(cap);
    if (!path) return fy_error(FERRY_E_NOMEM, "out of memory");
    snprintf(path, cap, "%s/%s/%lld/model.onnx", repo, name, (long long)v);
    *model_path = path;
    if (version) *version = v;
    return FERRY_OK;
}

/* The version must exist and verify before a label may point at it. */
static ferry_status check_version(const char *dir, const char *name, int64_t version, int *refused)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%lld", dir, (long long)version);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *refused = 1;
        return fy_error(FERRY_E_INVALID_ARG, "%s has no version %lld", name, (long long)version);
    }
    ferry_status rc = fy_manifest_verify(path);
    if (rc != FERRY_OK) {
        *refused = 1;
        return fy_error_wrap(FERRY_E_INVALID_ARG, "%s version %lld cannot be labelled", name,
                             (long long)version);
    }
    return FERRY_OK;
}

static ferry_status set_label(const char *repo, const char *name, const char *label,
                              const char *action, const char *reason, int64_t version,
                              double weight, int64_t *previous, int *refused)
{
    char dir[4096];
    FY_CHECK(model_dir(repo, name, dir, sizeof dir));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *refused = 1;
        return fy_error(FERRY_E_INVALID_ARG, "no model \"%s\" in %s", name, repo);
    }
    int lock = -1;
    FY_CHECK(lock_model(dir, &lock));
    json_t *labels = NULL;
    ferry_status rc = check_version(dir, name, version, refused);
    if (rc == FERRY_OK) rc = load_labels(dir, &labels);
    if (rc == FERRY_OK) rc = room_for_label(labels, label, refused);
    if (rc == FERRY_OK) {
        int64_t prev = label_version(labels, label);
        if (previous) *previous = prev;
        json_object_set_new(labels, label, json_integer(version));
        if (weight >= 0) json_object_set_new(labels, "canary_weight", json_real(weight));
        rc = store_labels(dir, labels);
        if (rc == FERRY_OK) rc = append_history(dir, action, version, label, prev, reason, weight);
    }
    json_decref(labels);
    unlock_model(lock);
    return rc;
}

ferry_status ferry_repo_promote(const char *repo, const char *name, int64_t version,
                                const char *label, const char *reason, int64_t *previous,
                                int *refused)
{
    int dummy;
    if (!refused) refused = &dummy;
    *refused = 0;
    if (!label) label = "stable";
    FY_CHECK(check_names(repo, name, label));
    if (version <= 0 || version > MAX_VERSION)
        return fy_error(FERRY_E_INVALID_ARG, "version must be a positive integer");
    return set_label(repo, name, label, "promote", reason, version, -1, previous, refused);
}

ferry_status ferry_repo_promote_canary(const char *repo, const char *name, int64_t version,
                                       double weight, const char *reason, int64_t *previous,
                                       int *refused)
{
    int dummy;
    if (!refused) refused = &dummy;
    *refused = 0;
    FY_CHECK(check_names(repo, name, "canary"));
    if (version <= 0 || version > MAX_VERSION)
        return fy_error(FERRY_E_INVALID_ARG, "version must be a positive integer");
    if (!(weight >= 0 && weight <= 1))
        return fy_error(FERRY_E_INVALID_ARG, "canary weight must be in [0, 1]");
    return set_label(repo, name, "canary", "promote", reason, version, weight, previous, refused);
}

/* Replays history.jsonl for one label as a stack: promote/publish push the version they set,
 * rollback pops. The stack's top below the current version is where a rollback goes. */
static ferry_status label_stack(const char *dir, const char *label, int64_t **out, int *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, FY_HISTORY_NAME);
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return FERRY_OK;
    int64_t *stack = NULL;
    int top = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        json_t *e = json_loads(line, 0, NULL); /* a torn or edited line is skipped */
        const char *l = json_string_value(json_object_get(e, "label"));
        const char *action = json_string_value(json_object_get(e, "action"));
        json_t *jv = json_object_get(e, "version");
        if (l && action && json_is_integer(jv) && !strcmp(l, label)) {
            int64_t v = (int64_t)json_integer_value(jv);
            int push = 0;
            if (!strcmp(action, "rollback")) {
                while (top > 0 && stack[top - 1] != v)
                    top--;
                push = top == 0; /* history was trimmed: restart from here */
            } else if (!strcmp(action, "promote") || !strcmp(action, "publish")) {
                push = top == 0 || stack[top - 1] != v;
            }
            if (push && top == cap) {
                cap = cap ? cap * 2 : 16;
                int64_t *grown = realloc(stack, sizeof *grown * (size_t)cap);
                if (!grown) {
                    json_decref(e);
                    free(stack);
                    free(line);
                    fclose(f);
                    return fy_error(FERRY_E_NOMEM, "out of memory");
                }
                stack = grown;
            }
            if (push) stack[top++] = v;
        }
        json_decref(e);
    }
    free(line);
    fclose(f);
    *out = stack;
    *n = top;
    return FERRY_OK;
}

ferry_status ferry_repo_rollback(const char *repo, const char *name, const char *label,
                                 const char *reason, int64_t *from, int64_t *to, int *refused)
{
    int dummy;
    if (!refused) refused = &dummy;
    *refused = 0;
    if (!label) label = "stable";
    FY_CHECK(check_names(repo, name, label));
    char dir[4096];
    FY_CHECK(model_dir(repo, name, dir, sizeof dir));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *refused = 1;
        return fy_error(FERRY_E_INVALID_ARG, "no model \"%s\" in %s", name, repo);
    }
    int lock = -1;
    FY_CHECK(lock_model(dir, &lock));
    json_t *labels = NULL;
    int64_t *stack = NULL;
    int n = 0;
    ferry_status rc = load_labels(dir, &labels);
    if (rc == FERRY_OK) rc = label_stack(dir, label, &stack, &n);
    if (rc == FERRY_OK) {
        int64_t current = label_version(labels, label);
        while (n > 0 && stack[n - 1] == current)
            n--;
        if (!current) {
            *refused = 1;
            rc = fy_error(FERRY_E_INVALID_ARG, "%s: label \"%s\" is not set; nothing to roll back",
                          name, label);
        } else if (n == 0) {
            *refused = 1;
            rc = fy_error(FERRY_E_INVALID_ARG,
                          "%s: no earlier version held label \"%s\" (it is at %lld); nothing to "
                          "roll back to",
                          name, label, (long long)current);
        } else {
            int64_t target = stack[n - 1];
            rc = check_version(dir, name, target, refused);
            if (rc == FERRY_OK) {
                json_object_set_new(labels, label, json_integer(target));
                rc = store_labels(dir, labels);
            }
            if (rc == FERRY_OK)
                rc = append_history(dir, "rollback", target, label, current, reason, -1);
            if (rc == FERRY_OK) {
                if (from) *from = current;
                if (to) *to = target;
            }
        }
    }
    free(stack);
    json_decref(labels);
    unlock_model(lock);
    return rc;
}

/* ---- listing -------------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double metric(json_t *metrics, const char *key)
{
    json_t *v = json_object_get(metrics, key);
    if (json_is_number(v)) return json_number_value(v);
    /* validate reports may nest a metric as {"value": x, ...} */
    v = json_object_get(v, "value");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void describe_version(const char *dir, json_t *labels, ferry_repo_version *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%lld", dir, (long long)out->version);
    out->size = -1;
    out->accuracy = out->f1_macro = out->latency_p95_ms = NAN;
    const char *key;
    json_t *val;
    json_object_foreach(labels, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) != out->version) continue;
        size_t used = strlen(out->labels);
        snprintf(out->labels + used, sizeof out->labels - used, "%s%s", used ? "," : "", key);
    }
    if (fy_manifest_verify(path) == FERRY_OK)
        out->verified = 1;
    else
        snprintf(out->problem, sizeof out->problem, "%s", ferry_last_error());
    snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", FY_MANIFEST_NAME);
    json_t *m = json_load_file(path, 0, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return;
    }
    const char *created = json_string_value(json_object_get(m, "created"));
    if (created) snprintf(out->created, sizeof out->created, "%s", created);
    json_t *files = json_object_get(m, "files");
    size_t i;
    json_t *e;
    long long total = 0;
    json_array_foreach(files, i, e) total +=
        (long long)json_integer_value(json_object_get(e, "size"));
    if (json_is_array(files)) out->size = total;
    json_t *src = json_object_get(m, "source");
    const char *commit = json_string_value(json_object_get(src, "git_commit"));
    if (commit) snprintf(out->git_commit, sizeof out->git_commit, "%s", commit);
    out->git_dirty = json_is_true(json_object_get(src, "dirty"));
    json_t *metrics = json_object_get(m, "metrics");
    if (json_is_object(metrics)) {
        out->accuracy = metric(metrics, "accuracy");
        out->f1_macro = metric(metrics, "f1_macro");
        out->latency_p95_ms = metric(metrics, "latency_p95_ms");
        out->metrics_json = json_dumps(metrics, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(m);
}

ferry_status ferry_repo_versions(const char *repo, const char *name, ferry_repo_version **out,
                                 int *n)
{
    *out = NULL;
    *n = 0;
    FY_CHECK(check_names(repo, name, NULL));
    char dir[4096];
    FY_CHECK(model_dir(repo, name, dir, sizeof dir));
    DIR *d = opendir(dir);
    if (!d) return fy_error(FERRY_E_IO, "no model \"%s\" in %s (%s)", name, repo, strerror(errno));
    int64_t *vs = NULL;
    int count = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t v = fy_repo_version_of(de->d_name);
        if (!v) continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(vs, sizeof *nv * (size_t)cap);
            if (!nv) {
                free(vs);
                closedir(d);
                return fy_error(FERRY_E_NOMEM, "out of memory");
            }
            vs = nv;
        }
        vs[count++] = v;
    }
    closedir(d);
    if (count) qsort(vs, (size_t)count, sizeof *vs, cmp_i64);
    json_t *labels = NULL;
    if (load_labels(dir, &labels) != FERRY_OK) labels = json_object(); /* listed, not fatal */
    ferry_repo_version *list = calloc((size_t)(count ? count : 1), sizeof *list);
    if (!list) {
        free(vs);
        json_decref(labels);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < count; i++) {
        list[i].version = vs[i];
        describe_version(dir, labels, &list[i]);
    }
    free(vs);
    json_decref(labels);
    ferry_clear_error();
    *out = list;
    *n = count;
    return FERRY_OK;
}

void ferry_repo_versions_free(ferry_repo_version *v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i].metrics_json);
    free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

ferry_status ferry_repo_names(const char *repo, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = repo ? opendir(repo) : NULL;
    if (!d)
        return fy_error(FERRY_E_IO, "cannot open repository %s: %s", repo ? repo : "(null)",
                        strerror(errno));
    name_list l = {0};
    struct dirent *de;
    ferry_status rc = FERRY_OK;
    while (rc == FERRY_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.' || !fy_repo_name_ok(de->d_name)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", repo, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) rc = name_list_add(&l, de->d_name);
    }
    closedir(d);
    if (rc != FERRY_OK) {
        name_list_free(&l);
        return rc;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
    *names = l.v;
    *n = l.n;
    return FERRY_OK;
}

ferry_status ferry_repo_labels_json(const char *repo, const char *name, char **json)
{
    FY_CHECK(check_names(repo, name, NULL));
    char dir[4096];
    FY_CHECK(model_dir(repo, name, dir, sizeof dir));
    json_t *labels;
    FY_CHECK(load_labels(dir, &labels));
    *json = json_dumps(labels, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(labels);
    return *json ? FERRY_OK : fy_error(FERRY_E_NOMEM, "out of memory");
}

ferry_status ferry_repo_check_labels(const char *repo, const char *name)
{
    FY_CHECK(check_names(repo, name, NULL));
    char dir[4096];
    FY_CHECK(model_dir(repo, name, dir, sizeof dir));
    json_t *labels;
    FY_CHECK(load_labels(dir, &labels));
    char problems[1024] = "";
    const char *key;
    json_t *val;
    json_object_foreach(labels, key, val)
    {
        if (!strcmp(key, "canary_weight")) {
            double w = json_is_number(val) ? json_number_value(val) : -1;
            if (w < 0 || w > 1) {
                size_t used = strlen(problems);
                snprintf(problems + used, sizeof problems - used,
                         "%scanary_weight must be a number in [0, 1]", used ? "; " : "");
            }
            continue;
        }
        char path[4096];
        int64_t v = label_version(labels, key);
        snprintf(path, sizeof path, "%s/%lld", dir, (long long)v);
        struct stat st;
        if (v > 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) continue;
        size_t used = strlen(problems);
        snprintf(problems + used, sizeof problems - used, "%slabel \"%s\" names no version",
                 used ? "; " : "", key);
    }
    json_decref(labels);
    if (*problems) return fy_error(FERRY_E_PARSE, "%s/%s: %s", dir, FY_LABELS_NAME, problems);
    return FERRY_OK;
}
