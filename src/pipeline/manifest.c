/* manifest.c — writing and verifying a version directory's manifest.json (see manifest.h):
 * the hashes that make a published version trustworthy and a half-written one detectable. */
#include "pipeline/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"

ferry_status fy_sha256_file(const char *path, char hex[65], long long *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fy_error(FERRY_E_IO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        fclose(f);
        EVP_MD_CTX_free(ctx);
        return fy_error(FERRY_E_INTERNAL, "sha256: OpenSSL could not start a digest");
    }
    static _Thread_local unsigned char chunk[1 << 16];
    long long total = 0;
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        EVP_DigestUpdate(ctx, chunk, n);
        total += (long long)n;
    }
    int read_failed = ferror(f);
    fclose(f);
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, digest, &len);
    EVP_MD_CTX_free(ctx);
    if (read_failed) return fy_error(FERRY_E_IO, "%s: read error", path);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if (size) *size = total;
    return FERRY_OK;
}

/* A manifest path must stay inside the version directory. */
static int path_is_safe(const char *p)
{
    if (!*p || *p == '/' || strlen(p) > 1024) return 0;
    for (const char *part = p; part; part = strchr(part, '/') ? strchr(part, '/') + 1 : NULL) {
        size_t len = strcspn(part, "/");
        if (len == 0 || (len == 1 && part[0] == '.') || (len == 2 && !strncmp(part, "..", 2)))
            return 0;
    }
    return 1;
}

/* Appends "; what" to the problem list kept in buf. */
static void note(char *buf, size_t cap, const char *what)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap) return;
    snprintf(buf + used, cap - used, "%s%s", used ? "; " : "", what);
}

void fy_utc_now(char *buf, size_t cap, int with_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(buf, cap, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
    else
        snprintf(buf, cap, "%sZ", base);
}

ferry_status fy_manifest_write(const char *dir, const char *model, int64_t version,
                               const char *const *files, int n_files, json_t *source,
                               json_t *metrics, json_t *profile)
{
    char created[40];
    fy_utc_now(created, sizeof created, 0);
    json_t *root = json_object();
    json_t *list = json_array();
    if (!root || !list) {
        json_decref(root);
        json_decref(list);
        return fy_error(FERRY_E_NOMEM, "out of memory");
    }
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "model", json_string(model));
    json_object_set_new(root, "version", json_integer(version));
    json_object_set_new(root, "created", json_string(created));
    json_object_set_new(root, "files", list);
    char path[4096];
    for (int i = 0; i < n_files; i++) {
        if (!path_is_safe(files[i])) {
            json_decref(root);
            return fy_error(FERRY_E_INVALID_ARG, "manifest: unsafe file path \"%s\"", files[i]);
        }
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        char hex[65];
        long long size;
        ferry_status rc = fy_sha256_file(path, hex, &size);
        if (rc != FERRY_OK) {
            json_decref(root);
            return rc;
        }
        json_t *e = json_object();
        json_object_set_new(e, "path", json_string(files[i]));
        json_object_set_new(e, "size", json_integer(size));
        json_object_set_new(e, "sha256", json_string(hex));
        json_array_append_new(list, e);
    }
    if (source) json_object_set(root, "source", source);
    if (metrics) json_object_set(root, "metrics", metrics);
    if (profile) json_object_set(root, "profile", profile);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return fy_error(FERRY_E_NOMEM, "manifest: out of memory");
    snprintf(path, sizeof path, "%s/%s", dir, FY_MANIFEST_NAME);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(text);
        return fy_error(FERRY_E_IO, "%s: %s", path, strerror(errno));
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int ok = done == len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    free(text);
    if (!ok) return fy_error(FERRY_E_IO, "%s: %s", path, strerror(saved));
    return FERRY_OK;
}

/* True when the manifest's file list names rel. */
static int listed(json_t *files, const char *rel)
{
    size_t i;
    json_t *e;
    json_array_foreach(files, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "path"));
        if (p && strcmp(p, rel) == 0) return 1;
    }
    return 0;
}

/* Reports every entry under dir/rel that the manifest does not list or that is not a plain
 * file or directory: a version is exactly what was published, nothing slipped in beside it. */
static void find_unlisted(const char *dir, const char *rel, json_t *files, int depth,
                          char *problems, size_t cap)
{
    char path[4096], what[1200];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char sub[2048];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        if (!*rel && !strcmp(de->d_name, FY_MANIFEST_NAME)) continue;
        char full[6144];
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (lstat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 8)
                find_unlisted(dir, sub, files, depth + 1, problems, cap);
            else {
                snprintf(what, sizeof what, "%s: directories nest too deep", sub);
                note(problems, cap, what);
            }
        } else if (!S_ISREG(st.st_mode) || !listed(files, sub)) {
            snprintf(what, sizeof what, "%s: %s", sub,
                     S_ISREG(st.st_mode) ? "not in the manifest" : "not a regular file");
            note(problems, cap, what);
        }
    }
    closedir(d);
}

/* Largest size a manifest may claim (1 PiB): anything above is hostile or corrupt. */
#define MAX_FILE_SIZE (1LL << 50)
#define MAX_FILES     100000

ferry_status fy_manifest_verify(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, FY_MANIFEST_NAME);
    struct stat mst;
    if (lstat(path, &mst) != 0) return fy_error(FERRY_E_IO, "%s: no manifest", dir);
    if (!S_ISREG(mst.st_mode) || mst.st_size > (64 << 20))
        return fy_error(FERRY_E_PARSE, "%s: not a regular file of at most 64 MiB", path);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return fy_error(FERRY_E_PARSE, "%s: line %d: %s", path, jerr.line, jerr.text);
    json_t *files = json_object_get(root, "files");
    if (!json_is_object(root) || !json_is_array(files) || json_array_size(files) == 0 ||
        json_array_size(files) > MAX_FILES) {
        json_decref(root);
        return fy_error(FERRY_E_PARSE, "%s: \"files\" must be a non-empty array (at most %d)", path,
                        MAX_FILES);
    }
    char problems[2048] = "";
    char what[1200];
    json_t *jver = json_object_get(root, "version");
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    char *end;
    long long dir_ver = strtoll(base, &end, 10);
    if (jver && *base && !*end && (!json_is_integer(jver) || json_integer_value(jver) != dir_ver)) {
        snprintf(what, sizeof what, "manifest version does not match directory %s", base);
        note(problems, sizeof problems, what);
    }
    if (!listed(files, "model.onnx")) note(problems, sizeof problems, "model.onnx not listed");
    size_t i;
    json_t *entry;
    json_array_foreach(files, i, entry)
    {
        const char *rel = json_string_value(json_object_get(entry, "path"));
        const char *want = json_string_value(json_object_get(entry, "sha256"));
        json_t *size = json_object_get(entry, "size");
        if (!rel || !want || !json_is_integer(size) || strlen(want) != 64 || !path_is_safe(rel)) {
            snprintf(what, sizeof what, "files[%zu]: needs a safe relative path, size and sha256",
                     i);
            note(problems, sizeof problems, what);
            continue;
        }
        long long want_size = (long long)json_integer_value(size);
        for (size_t j = 0; j < i; j++) {
            const char *other =
                json_string_value(json_object_get(json_array_get(files, j), "path"));
            if (other && !strcmp(rel, other)) {
                snprintf(what, sizeof what, "%s: listed twice", rel);
                note(problems, sizeof problems, what);
            }
        }
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        struct stat st;
        char got[65];
        long long got_size;
        if (want_size < 0 || want_size > MAX_FILE_SIZE) {
            snprintf(what, sizeof what, "%s: impossible size %lld", rel, want_size);
            note(problems, sizeof problems, what);
        } else if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(what, sizeof what, "%s: missing or not a regular file", rel);
            note(problems, sizeof problems, what);
        } else if ((long long)st.st_size != want_size) {
            snprintf(what, sizeof what, "%s: %lld bytes, manifest says %lld", rel,
                     (long long)st.st_size, want_size);
            note(problems, sizeof problems, what);
        } else if (fy_sha256_file(path, got, &got_size) != FERRY_OK) {
            snprintf(what, sizeof what, "%s: unreadable", rel);
            note(problems, sizeof problems, what);
        } else if (got_size != want_size) {
            snprintf(what, sizeof what, "%s: %lld bytes, manifest says %lld", rel, got_size,
                     want_size);
            note(problems, sizeof problems, what);
        } else if (strcasecmp(got, want) != 0) {
            snprintf(what, sizeof what, "%s: sha256 differs from the manifest", rel);
            note(problems, sizeof problems, what);
        }
    }
    find_unlisted(dir, "", files, 0, problems, sizeof problems);
    json_decref(root);
    if (*problems) return fy_error(FERRY_E_PARSE, "%s does not verify: %s", dir, problems);
    ferry_clear_error();
    return FERRY_OK;
}
