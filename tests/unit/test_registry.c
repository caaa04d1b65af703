/* test_registry.c — the model repository: publish makes immutable verified versions (external
 * data included), labels move only to verified versions, rollback replays history, racing
 * publishes are serialized, and hostile manifests are rejected without crashing. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "ferry/registry.h"
#include "model_builder.h"
#include "onnx.pb-c.h"
#include "pipeline/manifest.h"
#include "pipeline/registry.h"

static char root[256];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)f;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ferry-test-registry-XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

/* y = x + bias with bias float32[2] = {1, 2}; with external != NULL the bias lives in that
 * external-data file (relative to the model) instead of inside the model. */
static void write_model(const char *path, const char *external)
{
    const int64_t dims[] = {-1, 2}, bdims[] = {2};
    const float bias[] = {1.0f, 2.0f};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 2, dims);
    mb_initializer_f32(mb, "bias", 1, bdims, bias);
    mb_node(mb, "Add", "add", "x,bias", "y");
    mb_output(mb, "y");
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    mb_free(mb);
    if (external) {
        Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, bytes);
        assert_non_null(m);
        Onnx__TensorProto *t = m->graph->initializer[0];
        char dir[512], ext_path[1024];
        snprintf(dir, sizeof dir, "%s", path);
        *strrchr(dir, '/') = '\0';
        snprintf(ext_path, sizeof ext_path, "%s/%s", dir, external);
        char sub[1024];
        snprintf(sub, sizeof sub, "%s", ext_path);
        *strrchr(sub, '/') = '\0';
        mkdir(sub, 0755);
        write_file(ext_path, bias, sizeof bias);
        /* Repack by hand with the bytes moved out: external_data {location, offset, length}. */
        Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        loc.key = "location";
        loc.value = (char *)external;
        Onnx__StringStringEntryProto *entries[] = {&loc};
        ProtobufCBinaryData saved = t->raw_data;
        protobuf_c_boolean saved_has = t->has_raw_data;
        t->raw_data.len = 0;
        t->has_raw_data = 0;
        t->n_external_data = 1;
        Onnx__StringStringEntryProto **saved_ext = t->external_data;
        t->external_data = entries;
        t->has_data_location = 1;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        size_t n = onnx__model_proto__get_packed_size(m);
        uint8_t *out = malloc(n);
        onnx__model_proto__pack(m, out);
        write_file(path, out, n);
        free(out);
        t->raw_data = saved;
        t->has_raw_data = saved_has;
        t->n_external_data = 0;
        t->external_data = saved_ext;
        onnx__model_proto__free_unpacked(m, NULL);
    } else {
        write_file(path, bytes, len);
    }
    free(bytes);
}

static int64_t publish(const char *model, const char *repo, int64_t version, const char *label,
                       ferry_status want, int want_refused)
{
    ferry_publish_options o = {.model = model,
                               .repo = repo,
                               .name = "m",
                               .version = version,
                               .label = label,
                               .reason = "unit test"};
    int64_t v = 0;
    int refused = -1;
    ferry_status rc = ferry_repo_publish(&o, &v, &refused);
    if (rc != want) fail_msg("publish: %s (%s)", ferry_status_name(rc), ferry_last_error());
    assert_int_equal(refused, want_refused);
    return v;
}

static int count_lines(const char *path)
{
    char *s = read_text(path);
    int n = 0;
    for (char *p = s; p && *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}

static void names_are_checked(void **state)
{
    (void)state;
    assert_true(fy_repo_name_ok("fashion-mnist_v2.onnx"));
    assert_false(fy_repo_name_ok(""));
    assert_false(fy_repo_name_ok("."));
    assert_false(fy_repo_name_ok(".."));
    assert_false(fy_repo_name_ok("a/b"));
    assert_false(fy_repo_name_ok("a b"));
    assert_int_equal(fy_repo_version_of("12"), 12);
    assert_int_equal(fy_repo_version_of("012"), 0);
    assert_int_equal(fy_repo_version_of("0"), 0);
    assert_int_equal(fy_repo_version_of(".tmp-publish-abc"), 0);
    assert_int_equal(fy_repo_version_of("99999999999999999999"), 0);
    char model[512], repo[512];
    snprintf(model, sizeof model, "%s/model.onnx", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    write_model(model, NULL);
    ferry_publish_options o = {.model = model, .repo = repo, .name = "../evil"};
    assert_int_equal(ferry_repo_publish(&o, NULL, NULL), FERRY_E_INVALID_ARG);
    o.name = "m";
    o.label = "canary_weight";
    assert_int_equal(ferry_repo_publish(&o, NULL, NULL), FERRY_E_INVALID_ARG);
    o.label = NULL;
    o.model = repo; /* not a model */
    assert_int_not_equal(ferry_repo_publish(&o, NULL, NULL), FERRY_OK);
    struct stat st;
    assert_int_not_equal(stat(repo, &st), 0); /* nothing was created for bad input */
}

static void publish_makes_immutable_versions(void **state)
{
    (void)state;
    char model[512], repo[512], path[1024];
    snprintf(model, sizeof model, "%s/model.onnx", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    write_model(model, NULL);
    assert_int_equal(publish(model, repo, 0, NULL, FERRY_OK, 0), 1);
    assert_int_equal(publish(model, repo, 0, "canary", FERRY_OK, 0), 2);
    assert_int_equal(publish(model, repo, 7, NULL, FERRY_OK, 0), 7);
    assert_int_equal(publish(model, repo, 0, NULL, FERRY_OK, 0), 8);
    publish(model, repo, 2, NULL, FERRY_E_INVALID_ARG, 1); /* exists: refused */
    snprintf(path, sizeof path, "%s/m/2", repo);
    assert_int_equal(fy_manifest_verify(path), FERRY_OK);
    int64_t v = 0;
    assert_int_equal(fy_repo_resolve_label(repo, "m", "canary", &v), FERRY_OK);
    assert_int_equal(v, 2);
    assert_int_equal(fy_repo_resolve_label(repo, "m", "stable", &v), FERRY_E_INVALID_ARG);
    assert_non_null(strstr(ferry_last_error(), "canary"));
    snprintf(path, sizeof path, "%s/m/history.jsonl", repo);
    assert_int_equal(count_lines(path), 4);
    char *hist = read_text(path);
    assert_non_null(strstr(hist, "\"action\":\"publish\",\"version\":2,\"label\":\"canary\""));
    assert_non_null(strstr(hist, "\"reason\":\"unit test\""));
    free(hist);
    /* The published copy loads and runs like the original. */
    snprintf(path, sizeof path, "%s/m/8/model.onnx", repo);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load(path, &m), FERRY_OK);
    ferry_model_free(m);
    /* A killed publish's temp dir is not a version and the next publish removes it. */
    snprintf(path, sizeof path, "%s/m/.tmp-publish-dead", repo);
    assert_int_equal(mkdir(path, 0755), 0);
    ferry_repo_version *list;
    int n;
    assert_int_equal(ferry_repo_versions(repo, "m", &list, &n), FERRY_OK);
    assert_int_equal(n, 4);
    assert_int_equal(list[3].version, 8);
    for (int i = 0; i < n; i++)
        assert_int_equal(list[i].verified, 1);
    assert_string_equal(list[1].labels, "canary");
    ferry_repo_versions_free(list, n);
    publish(model, repo, 0, NULL, FERRY_OK, 0);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
}

static void external_data_travels_with_the_model(void **state)
{
    (void)state;
    char model[512], repo[512], path[1024];
    snprintf(model, sizeof model, "%s/ext.onnx", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    write_model(model, "weights/bias.bin");
    assert_int_equal(publish(model, repo, 0, NULL, FERRY_OK, 0), 1);
    snprintf(path, sizeof path, "%s/m/1/manifest.json", repo);
    char *manifest = read_text(path);
    assert_non_null(strstr(manifest, "\"weights/bias.bin\""));
    free(manifest);
    snprintf(path, sizeof path, "%s/m/1", repo);
    assert_int_equal(fy_manifest_verify(path), FERRY_OK);
    /* Run the published copy: y = x + bias from the copied external file. */
    snprintf(path, sizeof path, "%s/m/1/model.onnx", repo);
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load(path, &m), FERRY_OK);
    ferry_session *s = NULL;
    assert_int_equal(ferry_session_create(m, NULL, &s), FERRY_OK);
    const int64_t dims[] = {1, 2};
    ferry_value *x = NULL, *y = NULL;
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &x), FERRY_OK);
    float *xd = ferry_tensor_data(x);
    xd[0] = 10;
    xd[1] = 20;
    const char *names[] = {"x"};
    assert_int_equal(ferry_session_run(s, 1, names, &x, &y), FERRY_OK);
    const float *yd = ferry_tensor_cdata(y);
    assert_true(yd[0] == 11.0f && yd[1] == 22.0f);
    ferry_value_free(x);
    ferry_value_free(y);
    ferry_session_free(s);
    ferry_model_free(m);
    /* Tampering with the external file is caught. */
    snprintf(path, sizeof path, "%s/m/1/weights/bias.bin", repo);
    write_text(path, "12345678");
    snprintf(path, sizeof path, "%s/m/1", repo);
    assert_int_equal(fy_manifest_verify(path), FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "weights/bias.bin"));
}

static void labels_move_and_roll_back(void **state)
{
    (void)state;
    char model[512], repo[512], path[1024];
    snprintf(model, sizeof model, "%s/model.onnx", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    write_model(model, NULL);
    for (int i = 0; i < 4; i++)
        publish(model, repo, 0, NULL, FERRY_OK, 0);
    int refused = 0;
    int64_t prev = -1, from = 0, to = 0;
    assert_int_equal(ferry_repo_rollback(repo, "m", NULL, NULL, &from, &to, &refused),
                     FERRY_E_INVALID_ARG);
    assert_int_equal(refused, 1);
    assert_int_equal(ferry_repo_promote(repo, "m", 9, NULL, NULL, &prev, &refused),
                     FERRY_E_INVALID_ARG);
    assert_int_equal(refused, 1);
    assert_int_equal(ferry_repo_promote(repo, "m", 1, NULL, "first", &prev, &refused), FERRY_OK);
    assert_int_equal(prev, 0);
    assert_int_equal(ferry_repo_promote(repo, "m", 2, NULL, NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(prev, 1);
    assert_int_equal(ferry_repo_promote(repo, "m", 3, "stable", NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(ferry_repo_promote(repo, "m", 4, "canary", NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(ferry_repo_rollback(repo, "m", NULL, "bad", &from, &to, &refused), FERRY_OK);
    assert_int_equal(from, 3);
    assert_int_equal(to, 2);
    assert_int_equal(ferry_repo_promote(repo, "m", 4, NULL, NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(ferry_repo_rollback(repo, "m", NULL, NULL, &from, &to, &refused), FERRY_OK);
    assert_int_equal(to, 2);
    assert_int_equal(ferry_repo_rollback(repo, "m", NULL, NULL, &from, &to, &refused), FERRY_OK);
    assert_int_equal(to, 1);
    assert_int_equal(ferry_repo_rollback(repo, "m", NULL, NULL, &from, &to, &refused),
                     FERRY_E_INVALID_ARG);
    assert_int_equal(refused, 1);
    /* The canary label was untouched by stable's moves; labels.json keeps other keys. */
    snprintf(path, sizeof path, "%s/m/labels.json", repo);
    char *labels = read_text(path);
    write_text(path, "{\"stable\": 1, \"canary\": 4, \"canary_weight\": 0.25}");
    free(labels);
    assert_int_equal(ferry_repo_promote(repo, "m", 2, "canary", NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(prev, 4);
    assert_int_equal(ferry_repo_check_labels(repo, "m"), FERRY_OK);
    labels = read_text(path);
    assert_non_null(strstr(labels, "\"canary_weight\": 0.25"));
    assert_non_null(strstr(labels, "\"canary\": 2"));
    free(labels);
    /* A version that no longer verifies cannot be promoted, and rollback will not go there. */
    snprintf(path, sizeof path, "%s/m/3/model.onnx", repo);
    FILE *f = fopen(path, "r+b");
    fputc('X', f);
    fclose(f);
    assert_int_equal(ferry_repo_promote(repo, "m", 3, NULL, NULL, &prev, &refused),
                     FERRY_E_INVALID_ARG);
    assert_int_equal(refused, 1);
    assert_non_null(strstr(ferry_last_error(), "sha256"));
    char *model_path = NULL;
    int64_t v;
    snprintf(path, sizeof path, "%s/m@canary", repo);
    assert_int_equal(fy_repo_resolve_spec(path, &model_path, &v), FERRY_OK);
    assert_int_equal(v, 2);
    assert_non_null(strstr(model_path, "/m/2/model.onnx"));
    free(model_path);
    snprintf(path, sizeof path, "%s/m/labels.json", repo);
    write_text(path, "{\"stable\": 3}"); /* version 3 was tampered with above */
    snprintf(path, sizeof path, "%s/m@stable", repo);
    assert_int_equal(fy_repo_resolve_spec(path, &model_path, &v), FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "sha256"));
    assert_int_equal(fy_repo_resolve_spec("no-at-sign", &model_path, &v), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_repo_resolve_spec("m@stable", &model_path, &v), FERRY_E_INVALID_ARG);
    /* Labels naming no version are what ferry verify reports. */
    snprintf(path, sizeof path, "%s/m/labels.json", repo);
    write_text(path, "{\"stable\": 1, \"shadow\": 99}");
    assert_int_equal(ferry_repo_check_labels(repo, "m"), FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "\"shadow\" names no version"));
    /* A model routes at most 32 labels. */
    write_text(path, "{}");
    char label[16];
    for (int i = 0; i < 32; i++) {
        snprintf(label, sizeof label, "l%d", i);
        assert_int_equal(ferry_repo_promote(repo, "m", 1, label, NULL, &prev, &refused), FERRY_OK);
    }
    assert_int_equal(ferry_repo_promote(repo, "m", 1, "one-more", NULL, &prev, &refused),
                     FERRY_E_INVALID_ARG);
    assert_int_equal(refused, 1);
    assert_int_equal(ferry_repo_promote(repo, "m", 2, "l7", NULL, &prev, &refused), FERRY_OK);
}

static void canary_weight_and_odd_histories(void **state)
{
    (void)state;
    char model[512], repo[512], path[1024];
    snprintf(model, sizeof model, "%s/model.onnx", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    write_model(model, NULL);
    for (int i = 0; i < 3; i++)
        publish(model, repo, 0, NULL, FERRY_OK, 0);
    int refused = 0;
    int64_t prev = 0, from = 0, to = 0;
    assert_int_equal(ferry_repo_promote_canary(repo, "m", 2, 1.5, NULL, &prev, &refused),
                     FERRY_E_INVALID_ARG);
    assert_int_equal(ferry_repo_promote_canary(repo, "m", 2, 0.1, "canary", &prev, &refused),
                     FERRY_OK);
    assert_int_equal(ferry_repo_promote_canary(repo, "m", 3, 0.3, NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(prev, 2);
    snprintf(path, sizeof path, "%s/m/labels.json", repo);
    char *labels = read_text(path);
    assert_non_null(strstr(labels, "\"canary_weight\": 0.3"));
    free(labels);
    assert_int_equal(ferry_repo_check_labels(repo, "m"), FERRY_OK);
    /* Re-promoting the same version (a weight change) is not a step rollback goes back over. */
    assert_int_equal(ferry_repo_promote_canary(repo, "m", 3, 0.5, NULL, &prev, &refused), FERRY_OK);
    assert_int_equal(ferry_repo_rollback(repo, "m", "canary", NULL, &from, &to, &refused),
                     FERRY_OK);
    assert_int_equal(to, 2);
    /* A history that was trimmed (starts with a rollback) or has garbage lines still works. */
    snprintf(path, sizeof path, "%s/m/history.jsonl", repo);
    write_text(path, "{\"action\":\"rollback\",\"label\":\"stable\",\"version\":1}\n"
                     "not json at all\n{\"action\":42}\n\n[1,2]\n"
                     "{\"action\":\"promote\",\"label\":\"stable\",\"version\":\"3\"}\n"
                     "{\"action\":\"promote\",\"label\":\"stable\",\"version\":2}\n");
    snprintf(path, sizeof path, "%s/m/labels.json", repo);
    write_text(path, "{\"stable\": 2}");
    assert_int_equal(ferry_repo_rollback(repo, "m", NULL, NULL, &from, &to, &refused), FERRY_OK);
    assert_int_equal(from, 2);
    assert_int_equal(to, 1);
}

typedef struct race_arg {
    const char *model, *repo;
    int64_t version;
    ferry_status rc;
    int refused;
} race_arg;

static void *race(void *p)
{
    race_arg *a = p;
    ferry_publish_options o = {
        .model = a->model, .repo = a->repo, .name = "m", .version = a->version};
    a->rc = ferry_repo_publish(&o, &a->version, &a->refused);
    return NULL;
}

static void racing_publishes_are_serialized(void **state)
{
    (void)state;
    char model[512], repo[512];
    snprintf(model, sizeof model, "%s/model.onnx", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    write_model(model, NULL);
    enum { N = 8 };
    pthread_t th[N];
    race_arg args[N];
    /* All racing for version 5: exactly one wins, the others are refused. */
    for (int i = 0; i < N; i++) {
        args[i] = (race_arg){model, repo, 5, FERRY_OK, 0};
        pthread_create(&th[i], NULL, race, &args[i]);
    }
    int wins = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        wins += args[i].rc == FERRY_OK;
        if (args[i].rc != FERRY_OK) assert_int_equal(args[i].refused, 1);
    }
    assert_int_equal(wins, 1);
    /* Racing for the next number: all win, each with its own version. */
    for (int i = 0; i < N; i++) {
        args[i] = (race_arg){model, repo, 0, FERRY_OK, 0};
        pthread_create(&th[i], NULL, race, &args[i]);
    }
    int seen[N + 7] = {0};
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, FERRY_OK);
        assert_true(args[i].version >= 6 && args[i].version < 6 + N);
        assert_int_equal(seen[args[i].version - 6]++, 0);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/m/history.jsonl", repo);
    assert_int_equal(count_lines(path), N + 1);
}

/* Writes dir/manifest.json and returns fy_manifest_verify's status. */
static ferry_status verify_with(const char *dir, const char *manifest)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    write_text(path, manifest);
    return fy_manifest_verify(dir);
}

static void hostile_manifests_are_rejected(void **state)
{
    (void)state;
    char dir[512], path[1024], hex[65], line[2048];
    snprintf(dir, sizeof dir, "%s/3", root);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_text(path, "not really a model but bytes to hash");
    long long size;
    assert_int_equal(fy_sha256_file(path, hex, &size), FERRY_OK);
    snprintf(line, sizeof line,
             "{\"version\": 3, \"files\": [{\"path\": \"model.onnx\", \"size\": %lld, "
             "\"sha256\": \"%s\"}]}",
             size, hex);
    assert_int_equal(verify_with(dir, line), FERRY_OK);
    const char *bad[] = {
        "",
        "[]",
        "{\"files\": 1}",
        "{\"files\": []}",
        "{\"files\": [null]}",
        "{\"files\": [{\"path\": \"../3/model.onnx\", \"size\": 36, \"sha256\": \"%s\"}]}",
        "{\"files\": [{\"path\": \"/etc/passwd\", \"size\": 36, \"sha256\": \"%s\"}]}",
        "{\"files\": [{\"path\": \"./model.onnx\", \"size\": 36, \"sha256\": \"%s\"}]}",
        "{\"files\": [{\"path\": \"model.onnx\", \"size\": 999999999999999999, \"sha256\": "
        "\"%s\"}]}",
        "{\"files\": [{\"path\": \"model.onnx\", \"size\": -1, \"sha256\": \"%s\"}]}",
        "{\"files\": [{\"path\": \"model.onnx\", \"size\": \"36\", \"sha256\": \"%s\"}]}",
        "{\"files\": [{\"path\": \"model.onnx\", \"size\": 36, \"sha256\": \"00\"}]}",
        "{\"files\": [{\"path\": \"model.onnx\", \"size\": 36, \"sha256\": \"%s\"},"
        " {\"path\": \"model.onnx\", \"size\": 36, \"sha256\": \"%s\"}]}",
        "{\"version\": 4, \"files\": [{\"path\": \"model.onnx\", \"size\": 36, \"sha256\": "
        "\"%s\"}]}",
        "{\"files\": [{\"path\": \"other.bin\", \"size\": 36, \"sha256\": \"%s\"}]}",
        "{\"files\": [{\"path\": \"model.onnx\", \"size\": 36, \"sha256\": \"%s\", \"sha256\": "
        "1}]}",
        "{\"files\": [{\"path\": \"model.onnx\\u0000x\", \"size\": 36, \"sha256\": \"%s\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, bad[i], hex, hex);
        ferry_status rc = verify_with(dir, line);
        if (rc != FERRY_E_PARSE) fail_msg("manifest %zu verified: %s", i, line);
    }
    /* Deep nesting and a huge file list fail cleanly. */
    size_t cap = 200000;
    char *deep = malloc(cap);
    size_t n = 0;
    n += (size_t)snprintf(deep, cap, "{\"files\": ");
    for (int i = 0; i < 5000; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    assert_int_equal(verify_with(dir, deep), FERRY_E_PARSE);
    n = (size_t)snprintf(deep, cap, "{\"files\": [");
    for (int i = 0; i < 3000 && n + 80 < cap; i++)
        n += (size_t)snprintf(deep + n, cap - n,
                              "%s{\"path\": \"f%d\", \"size\": 1, "
                              "\"sha256\": \"%064d\"}",
                              i ? "," : "", i, 0);
    snprintf(deep + n, cap - n, "]}");
    assert_int_equal(verify_with(dir, deep), FERRY_E_PARSE);
    assert_true(strlen(ferry_last_error()) < 4096);
    free(deep);
    /* Files the manifest does not list, and symlinks in place of files, do not verify. */
    snprintf(line, sizeof line,
             "{\"files\": [{\"path\": \"model.onnx\", \"size\": %lld, \"sha256\": \"%s\"}]}", size,
             hex);
    snprintf(path, sizeof path, "%s/extra.bin", dir);
    write_text(path, "slipped in");
    assert_int_equal(verify_with(dir, line), FERRY_E_PARSE);
    assert_non_null(strstr(ferry_last_error(), "extra.bin: not in the manifest"));
    unlink(path);
    assert_int_equal(verify_with(dir, line), FERRY_OK);
    char target[1024];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    snprintf(target, sizeof target, "%s/real.onnx", root);
    rename(path, target);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(verify_with(dir, line), FERRY_E_PARSE);
    /* No manifest at all is its own status. */
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    unlink(path);
    assert_int_equal(fy_manifest_verify(dir), FERRY_E_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(names_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_makes_immutable_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(external_data_travels_with_the_model, setup, teardown),
        cmocka_unit_test_setup_teardown(labels_move_and_roll_back, setup, teardown),
        cmocka_unit_test_setup_teardown(canary_weight_and_odd_histories, setup, teardown),
        cmocka_unit_test_setup_teardown(racing_publishes_are_serialized, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_manifests_are_rejected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
