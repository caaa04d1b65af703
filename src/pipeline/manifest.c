/* manifest.c — verifying a version directory against its manifest.json (see manifest.h). */
#include "pipeline/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
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
    snprintf(buf + used, cap - used, "%s%s", used ? "; " : "", what);
}

ferry_status fy_manifest_verify(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, FY_MANIFEST_NAME);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (errno == ENOENT || strstr(jerr.text, "unable to open"))
            return fy_error(FERRY_E_IO, "%s: no manifest", dir);
        return fy_error(FERRY_E_PARSE, "%s: line %d: %s", path, jerr.line, jerr.text);
    }
    json_t *files = json_object_get(root, "files");
    if (!json_is_array(files) || json_array_size(files) == 0) {
        json_decref(root);
        return fy_error(FERRY_E_PARSE, "%s: \"files\" must be a non-empty array", path);
    }
    char problems[2048] = "";
    size_t i;
    json_t *entry;
    json_array_foreach(files, i, entry) {
        const char *rel = json_string_value(json_object_get(entry, "path"));
        const char *want = json_string_value(json_object_get(entry, "sha256"));
        json_t *size = json_object_get(entry, "size");
        char what[1200];
        if (!rel || !want || !json_is_integer(size) || strlen(want) != 64 || !path_is_safe(rel)) {
            snprintf(what, sizeof what, "files[%zu]: needs a safe relative path, size and sha256",
                     i);
            note(problems, sizeof problems, what);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        char got[65];
        long long got_size;
        if (fy_sha256_file(path, got, &got_size) != FERRY_OK) {
            snprintf(what, sizeof what, "%s: missing or unreadable", rel);
            note(problems, sizeof problems, what);
        } else if (got_size != json_integer_value(size)) {
            snprintf(what, sizeof what, "%s: %lld bytes, manifest says %lld", rel, got_size,
                     (long long)json_integer_value(size));
            note(problems, sizeof problems, what);
        } else if (strcasecmp(got, want) != 0) {
            snprintf(what, sizeof what, "%s: sha256 differs from the manifest", rel);
            note(problems, sizeof problems, what);
        }
    }
    json_decref(root);
    if (*problems) return fy_error(FERRY_E_PARSE, "%s does not verify: %s", dir, problems);
    ferry_clear_error();
    return FERRY_OK;
}
