/* test_serve_manager.c — ferry serve's back end against real models in a temporary repository:
 * scanning and version policies, config errors, manifests, quiet directories, labels, hot swap
 * under a running request, batching, deadlines, queue limits and load/unload cycles.
 *
 * Requests are made deterministic with a blocking done(): while the first request's done()
 * waits on a gate, its instance thread is busy, so later requests queue up exactly as under
 * load, and the test decides when they run. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "model_builder.h"
#include "pipeline/manifest.h"
#include "serve/manager.h"
#include "serve/repository.h"
#include "serve/scheduler.h"

/* ---- repository fixtures -------------------------------------------------------------------- */

static char repo[256];

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void mkdirs(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* y = x * factor with x: float32[batch, 4]; `pad` extra floats of unused weights make the
 * model big enough for memory checks. */
static uint8_t *scale_model(float factor, int pad, size_t *len)
{
    const int64_t dims[] = {-1, 4}, one[] = {1};
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 2, dims);
    mb_initializer_f32(mb, "k", 1, one, &factor);
    mb_node(mb, "Mul", "scale", "x,k", "y");
    if (pad > 0) {
        float *w = calloc((size_t)pad, sizeof *w);
        const int64_t pd[] = {pad};
        mb_initializer_f32(mb, "pad", 1, pd, w);
        mb_node(mb, "Identity", "keep", "pad", "p");
        free(w);
    }
    mb_output(mb, "y");
    uint8_t *bytes = mb_pack(mb, len);
    mb_free(mb);
    return bytes;
}

static void add_version_pad(const char *model, int64_t version, float factor, int pad,
                            int with_manifest)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s/%lld", repo, model, (long long)version);
    mkdirs(dir);
    size_t len;
    uint8_t *bytes = scale_model(factor, pad, &len);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_file(path, bytes, len);
    free(bytes);
    if (with_manifest) {
        char hex[65];
        long long size;
        assert_int_equal(fy_sha256_file(path, hex, &size), FERRY_OK);
        char text[512];
        snprintf(text, sizeof text,
                 "{\"format\":1,\"model\":\"%s\",\"version\":%lld,\"created\":\"x\","
                 "\"files\":[{\"path\":\"model.onnx\",\"size\":%lld,\"sha256\":\"%s\"}]}",
                 model, (long long)version, size, hex);
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        write_text(path, text);
    }
}

static void add_version(const char *model, int64_t version, float factor, int with_manifest)
{
    add_version_pad(model, version, factor, 0, with_manifest);
}

static void model_file(const char *model, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", repo, model);
    mkdirs(path);
    snprintf(path, sizeof path, "%s/%s/%s", repo, model, name);
    write_text(path, text);
}

/* ---- log capture ---------------------------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

static void capture_log(void *ctx, const char *level, const char *msg)
{
    (void)ctx;
    pthread_mutex_lock(&log_mu);
    size_t k = strlen(log_text);
    if (k + strlen(msg) + 32 < sizeof log_text)
        snprintf(log_text + k, sizeof log_text - k, "%s: %s\n", level, msg);
    pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *s)
{
    pthread_mutex_lock(&log_mu);
    int found = strstr(log_text, s) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

static sv_manager *start(double poll)
{
    sv_manager_options o = {.repo = repo, .poll_seconds = poll, .session_threads = 1};
    sv_manager *m = NULL;
    assert_int_equal(sv_manager_create(&o, &m), FERRY_OK);
    sv_manager_set_logger(m, capture_log, NULL);
    assert_int_equal(sv_manager_start(m), FERRY_OK);
    return m;
}

static int setup(void **state)
{
    (void)state;
    snprintf(repo, sizeof repo, "/tmp/ferry-serve-test-XXXXXX");
    assert_non_null(mkdtemp(repo));
    log_text[0] = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(repo);
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------- */

typedef struct call {
    sv_request r;
    const char *names[1];
    ferry_value *vals[1];
    int finished;
    int block; /* done() waits for the gate */
} call;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gate_open;
static int blocked; /* a done() is waiting at the gate */

static void on_done(sv_request *r)
{
    call *c = r->ctx;
    pthread_mutex_lock(&mu);
    if (c->block) {
        blocked = 1;
        pthread_cond_broadcast(&cv);
        while (!gate_open)
            pthread_cond_wait(&cv, &mu);
    }
    c->finished = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void close_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 0;
    blocked = 0;
    pthread_mutex_unlock(&mu);
}

static void open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void wait_blocked(void)
{
    pthread_mutex_lock(&mu);
    while (!blocked)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void wait_call(call *c)
{
    pthread_mutex_lock(&mu);
    while (!c->finished)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

/* A request for `rows` rows of 4 floats, every element equal to value. */
static call *new_call(int rows, float value)
{
    call *c = calloc(1, sizeof *c);
    int64_t dims[] = {rows, 4};
    assert_int_equal(ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &c->vals[0]), FERRY_OK);
    float *d = ferry_tensor_data(c->vals[0]);
    for (int i = 0; i < rows * 4; i++)
        d[i] = value;
    c->names[0] = "x";
    c->r.n_inputs = 1;
    c->r.input_names = c->names;
    c->r.inputs = c->vals;
    c->r.done = on_done;
    c->r.ctx = c;
    return c;
}

static void free_call(call *c)
{
    sv_request_clear(&c->r);
    free(c);
}

/* Runs one request of value 1 on (model, version/label) and returns y[0] (-1 on failure). */
static float infer(sv_manager *m, const char *model, int64_t version, const char *label)
{
    int st;
    char err[256];
    sv_version *v = sv_manager_acquire(m, model, version, label, &st, err, sizeof err);
    if (!v) return -1;
    call *c = new_call(1, 1.0f);
    float y = -1;
    if (sv_version_submit(v, &c->r) == 0) {
        wait_call(c);
        if (c->r.http_status == 200) y = ((const float *)ferry_tensor_cdata(c->r.results[0]))[0];
    }
    sv_version_release(v);
    free_call(c);
    return y;
}

/* ---- index helpers -------------------------------------------------------------------------- */

typedef struct found {
    const char *model;
    int64_t version;
    char state[32];
    char reason[512];
    int hit;
} found;

static void find_cb(void *ctx, const sv_index_entry *e)
{
    found *f = ctx;
    if (strcmp(e->model, f->model) || e->version != f->version) return;
    f->hit = 1;
    snprintf(f->state, sizeof f->state, "%s", e->state);
    snprintf(f->reason, sizeof f->reason, "%s", e->reason);
}

static found lookup(sv_manager *m, const char *model, int64_t version)
{
    found f = {.model = model, .version = version};
    sv_manager_foreach(m, find_cb, &f);
    return f;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void scans_and_applies_policies(void **state)
{
    (void)state;
    for (int v = 1; v <= 3; v++) {
        add_version("latest", v, (float)v, 0);
        add_version("all", v, (float)v, 0);
        add_version("pick", v, (float)v, 0);
    }
    model_file("all", "config.json", "{\"version_policy\": {\"all\": {}}}");
    model_file("pick", "config.json",
               "{\"version_policy\": {\"specific\": {\"versions\": [1, 3]}}}");
    mkdirs("/tmp"); /* entries that are not versions are ignored: */
    char odd[600];
    snprintf(odd, sizeof odd, "%s/latest/0", repo);
    mkdirs(odd);
    snprintf(odd, sizeof odd, "%s/latest/2.bak", repo);
    mkdirs(odd);
    sv_manager *m = start(0);
    assert_true(sv_manager_ready(m));
    assert_string_equal(lookup(m, "latest", 3).state, "READY");
    assert_string_equal(lookup(m, "latest", 2).state, "UNAVAILABLE");
    assert_non_null(strstr(lookup(m, "latest", 2).reason, "version policy"));
    assert_false(lookup(m, "latest", 0).hit);
    for (int v = 1; v <= 3; v++)
        assert_string_equal(lookup(m, "all", v).state, "READY");
    assert_string_equal(lookup(m, "pick", 1).state, "READY");
    assert_string_equal(lookup(m, "pick", 2).state, "UNAVAILABLE");
    assert_string_equal(lookup(m, "pick", 3).state, "READY");

    assert_true(infer(m, "latest", 0, NULL) == 3.0f);
    assert_true(infer(m, "all", 1, NULL) == 1.0f);
    assert_true(infer(m, "pick", 0, NULL) == 3.0f);

    int st;
    char err[256];
    assert_null(sv_manager_acquire(m, "nope", 0, NULL, &st, err, sizeof err));
    assert_int_equal(st, 404);
    assert_null(sv_manager_acquire(m, "pick", 7, NULL, &st, err, sizeof err));
    assert_int_equal(st, 404);
    assert_null(sv_manager_acquire(m, "pick", 2, NULL, &st, err, sizeof err));
    assert_int_equal(st, 503);

    sv_version *v = sv_manager_acquire(m, "all", 2, NULL, &st, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(sv_version_max_batch_size(v), SV_DEFAULT_AUTO_BATCH);
    assert_non_null(strstr(sv_version_config_json(v), "\"max_batch_size\":32"));
    assert_string_equal(sv_version_model_name(v), "all");
    assert_int_equal(sv_version_number(v), 2);
    sv_version_release(v);
    sv_manager_free(m);
}

static void bad_config_is_a_load_error(void **state)
{
    (void)state;
    add_version("bad", 1, 1, 0);
    model_file("bad", "config.json", "{\"max_batch_size\": \"lots\"}");
    add_version("worse", 1, 1, 0);
    model_file("worse", "config.json",
               "{\"dynamic_batching\": {\"preferred_batch_size\": [64]},"
               " \"max_batch_size\": 8}");
    add_version("broken", 1, 1, 0);
    model_file("broken", "config.json", "{\"version_policy\": ");
    add_version("good", 1, 5, 0);
    sv_manager *m = start(0);
    assert_false(sv_manager_ready(m));
    found f = lookup(m, "bad", 1);
    assert_string_equal(f.state, "UNAVAILABLE");
    assert_non_null(strstr(f.reason, "max_batch_size must be an integer"));
    assert_non_null(strstr(lookup(m, "worse", 1).reason, "exceeds max_batch_size"));
    assert_non_null(strstr(lookup(m, "broken", 1).reason, "config.json: line"));
    assert_true(log_has("max_batch_size must be an integer"));
    int st;
    char err[512];
    assert_null(sv_manager_acquire(m, "bad", 0, NULL, &st, err, sizeof err));
    assert_int_equal(st, 503);
    assert_true(infer(m, "good", 0, NULL) == 5.0f);

    /* Fixing the file fixes the model on the next poll. */
    model_file("bad", "config.json", "{\"max_batch_size\": 4}");
    sv_manager_poll(m);
    sv_manager_poll(m);
    assert_string_equal(lookup(m, "bad", 1).state, "READY");
    sv_manager_free(m);
}

static void config_change_reloads_serving_versions(void **state)
{
    (void)state;
    add_version("c", 1, 1, 1);
    model_file("c", "config.json", "{\"max_batch_size\": 4}");
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *before = sv_manager_acquire(m, "c", 0, NULL, &st, err, sizeof err);
    assert_int_equal(sv_version_max_batch_size(before), 4);
    model_file("c", "config.json", "{\"max_batch_size\": 8, \"limits\": {\"timeout_ms\": 50}}");
    sv_manager_poll(m); /* the version has a manifest: reloaded on this poll */
    sv_version *after = sv_manager_acquire(m, "c", 0, NULL, &st, err, sizeof err);
    assert_int_equal(sv_version_max_batch_size(after), 8);
    assert_non_null(strstr(sv_version_config_json(after), "\"timeout_ms\":50"));
    /* The copy a caller still holds keeps working and keeps its configuration. */
    assert_int_equal(sv_version_max_batch_size(before), 4);
    call *c = new_call(1, 2);
    assert_int_equal(sv_version_submit(before, &c->r), 0);
    wait_call(c);
    assert_int_equal(c->r.http_status, 200);
    free_call(c);
    sv_version_release(before);
    sv_version_release(after);
    sv_manager_free(m);
}

static void manifest_mismatch_is_refused(void **state)
{
    (void)state;
    add_version("m", 1, 1, 1);
    sv_manager *m = start(0);
    assert_true(infer(m, "m", 0, NULL) == 1.0f);

    /* Version 2's manifest lists a hash its model.onnx does not have. */
    add_version("m", 2, 2, 1);
    char path[600];
    snprintf(path, sizeof path, "%s/m/2/model.onnx", repo);
    size_t len;
    uint8_t *bytes = scale_model(20, 0, &len);
    write_file(path, bytes, len);
    free(bytes);
    sv_manager_poll(m);
    found f = lookup(m, "m", 2);
    assert_string_equal(f.state, "UNAVAILABLE");
    assert_non_null(strstr(f.reason, "manifest.json does not verify"));
    assert_true(infer(m, "m", 0, NULL) == 1.0f); /* still version 1 */

    /* A correct manifest loads on the very next poll, no quiet period needed. */
    add_version("m", 2, 2, 1);
    sv_manager_poll(m);
    assert_string_equal(lookup(m, "m", 2).state, "READY");
    assert_true(infer(m, "m", 0, NULL) == 2.0f);
    sv_manager_free(m);
}

static void unmanifested_waits_for_two_quiet_polls(void **state)
{
    (void)state;
    add_version("q", 1, 1, 0);
    sv_manager *m = start(0);
    assert_true(infer(m, "q", 0, NULL) == 1.0f);

    add_version("q", 2, 2, 0);
    sv_manager_poll(m); /* first sight */
    assert_string_equal(lookup(m, "q", 2).state, "LOADING");
    assert_true(infer(m, "q", 0, NULL) == 1.0f);
    /* Still being written: the file grows between polls. */
    char path[600];
    snprintf(path, sizeof path, "%s/q/2/weights.bin", repo);
    write_text(path, "part");
    sv_manager_poll(m);
    assert_string_equal(lookup(m, "q", 2).state, "LOADING");
    assert_true(infer(m, "q", 0, NULL) == 1.0f);
    sv_manager_poll(m); /* unchanged since the last poll: quiet, loads */
    assert_string_equal(lookup(m, "q", 2).state, "READY");
    assert_true(infer(m, "q", 0, NULL) == 2.0f);
    sv_manager_free(m);
}

static void failed_version_keeps_old_serving(void **state)
{
    (void)state;
    add_version("f", 1, 1, 0);
    sv_manager *m = start(0);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/f/2", repo);
    mkdirs(dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_text(path, "this is not an ONNX model");
    sv_manager_poll(m);
    sv_manager_poll(m);
    found f = lookup(m, "f", 2);
    assert_string_equal(f.state, "UNAVAILABLE");
    assert_true(strlen(f.reason) > 0);
    assert_true(log_has("version 2 failed to load"));
    assert_true(infer(m, "f", 0, NULL) == 1.0f);
    assert_true(sv_manager_ready(m));
    /* An unchanged failure is not retried on every poll. */
    char before[65536];
    pthread_mutex_lock(&log_mu);
    snprintf(before, sizeof before, "%s", log_text);
    pthread_mutex_unlock(&log_mu);
    sv_manager_poll(m);
    assert_true(infer(m, "f", 0, NULL) == 1.0f);
    pthread_mutex_lock(&log_mu);
    assert_string_equal(before, log_text);
    pthread_mutex_unlock(&log_mu);
    sv_manager_free(m);
}

static void broken_newest_at_startup_falls_back(void **state)
{
    (void)state;
    add_version("n", 1, 1, 1);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/n/2", repo);
    mkdirs(dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_text(path, "truncated");
    sv_manager *m = start(0);
    /* latest 1 = the newest version that loads: 1 stands in for the broken 2. */
    assert_true(sv_manager_ready(m));
    assert_true(infer(m, "n", 0, NULL) == 1.0f);
    assert_string_equal(lookup(m, "n", 2).state, "UNAVAILABLE");
    /* A good 2 replaces the stand-in. */
    add_version("n", 2, 2, 1);
    sv_manager_poll(m);
    assert_true(infer(m, "n", 0, NULL) == 2.0f);
    assert_string_equal(lookup(m, "n", 1).state, "UNAVAILABLE");
    sv_manager_free(m);
}

static void labels_route_and_follow_changes(void **state)
{
    (void)state;
    for (int v = 1; v <= 3; v++)
        add_version("l", v, (float)v, 0);
    model_file("l", "labels.json", "{\"stable\": 1, \"canary\": 3, \"canary_weight\": 0.1}");
    sv_manager *m = start(0);
    /* latest:1 selects 3; the stable label keeps 1 loaded too. */
    assert_true(infer(m, "l", 0, "stable") == 1.0f);
    assert_true(infer(m, "l", 0, "canary") == 3.0f);
    assert_true(infer(m, "l", 0, NULL) == 3.0f); /* unaddressed: the highest ready version */
    int st;
    char err[256], buf[128];
    assert_null(sv_manager_acquire(m, "l", 0, "nightly", &st, err, sizeof err));
    assert_int_equal(st, 404);
    assert_string_equal(lookup(m, "l", 2).state, "UNAVAILABLE");
    sv_version *v = sv_manager_acquire(m, "l", 3, NULL, &st, err, sizeof err);
    assert_string_equal(sv_version_labels(v, buf, sizeof buf), "canary");
    sv_version_release(v);

    /* Promote: stable moves to 3 without a restart; 1 is then no longer needed. */
    model_file("l", "labels.json", "{\"stable\": 3}");
    sv_manager_poll(m);
    assert_true(infer(m, "l", 0, "stable") == 3.0f);
    assert_string_equal(lookup(m, "l", 1).state, "UNAVAILABLE");
    /* Roll back: stable to 2, which was never loaded; it loads on the poll. */
    model_file("l", "labels.json", "{\"stable\": 2}");
    sv_manager_poll(m);
    sv_manager_poll(m);
    assert_true(infer(m, "l", 0, "stable") == 2.0f);
    assert_true(infer(m, "l", 0, NULL) == 3.0f);
    /* A malformed labels.json keeps the previous labels. */
    model_file("l", "labels.json", "{\"stable\": ");
    sv_manager_poll(m);
    assert_true(infer(m, "l", 0, "stable") == 2.0f);
    assert_true(log_has("labels.json"));
    sv_manager_free(m);
}

static void swap_while_a_request_runs(void **state)
{
    (void)state;
    add_version("s", 1, 1, 1);
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *v1 = sv_manager_acquire(m, "s", 0, NULL, &st, err, sizeof err);
    assert_non_null(v1);
    close_gate();
    call *c = new_call(1, 3.0f);
    c->block = 1;
    assert_int_equal(sv_version_submit(v1, &c->r), 0);
    sv_version_release(v1); /* the queued request keeps version 1 alive on its own */
    wait_blocked();

    add_version("s", 2, 2, 1);
    assert_int_equal(sv_manager_load_model(m, "s"), FERRY_OK);
    assert_true(infer(m, "s", 0, NULL) == 2.0f);
    assert_false(log_has("\"s\" version 1 freed"));
    assert_string_equal(lookup(m, "s", 1).state, "UNAVAILABLE");

    open_gate();
    wait_call(c);
    assert_int_equal(c->r.http_status, 200);
    assert_true(((const float *)ferry_tensor_cdata(c->r.results[0]))[0] == 3.0f);
    assert_string_equal(c->r.result_names[0], "y");
    for (int i = 0; i < 200 && !log_has("\"s\" version 1 freed"); i++)
        usleep(10000);
    assert_true(log_has("\"s\" version 1 freed"));
    free_call(c);
    sv_manager_free(m);
}

static void batches_form_and_split(void **state)
{
    (void)state;
    add_version("b", 1, 2, 0);
    model_file("b", "config.json", "{\"max_batch_size\": 16}");
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *v = sv_manager_acquire(m, "b", 0, NULL, &st, err, sizeof err);
    assert_non_null(v);
    close_gate();
    call *first = new_call(1, 100);
    first->block = 1;
    assert_int_equal(sv_version_submit(v, &first->r), 0);
    wait_blocked();

    /* Seven requests queue behind the busy instance: six of 1 row and one of 2 rows. */
    call *c[7];
    for (int i = 0; i < 7; i++) {
        c[i] = new_call(i == 5 ? 2 : 1, (float)i);
        assert_int_equal(sv_version_submit(v, &c[i]->r), 0);
    }
    sv_version_stats *s = sv_version_stats_of(v);
    assert_int_equal(atomic_load(&s->queue_depth), 7);
    open_gate();
    for (int i = 0; i < 7; i++)
        wait_call(c[i]);
    wait_call(first);
    assert_int_equal(atomic_load(&s->executions), 2);
    assert_int_equal(atomic_load(&s->inferences), 9);
    assert_int_equal(atomic_load(&s->batch_size.bucket[3]), 1); /* one batch of 8 (4 < n <= 8) */
    assert_int_equal(atomic_load(&s->queue_depth), 0);
    assert_int_equal(atomic_load(&s->requests_ok), 8);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(c[i]->r.http_status, 200);
        const ferry_value *y = c[i]->r.results[0];
        assert_int_equal(ferry_tensor_dims(y)[0], i == 5 ? 2 : 1);
        const float *d = ferry_tensor_cdata(y);
        for (int k = 0; k < ferry_tensor_count(y); k++)
            assert_true(d[k] == 2.0f * (float)i);
        free_call(c[i]);
    }

    /* Batches keep to powers of two (kernels stay cached per shape): 7 queued run as 4, 2, 1
     * when nothing else arrives. */
    close_gate();
    free_call(first);
    first = new_call(1, 100);
    first->block = 1;
    assert_int_equal(sv_version_submit(v, &first->r), 0);
    wait_blocked();
    for (int i = 0; i < 7; i++) {
        c[i] = new_call(1, (float)i);
        assert_int_equal(sv_version_submit(v, &c[i]->r), 0);
    }
    open_gate();
    for (int i = 0; i < 7; i++)
        wait_call(c[i]);
    wait_call(first);
    assert_int_equal(atomic_load(&s->executions), 2 + 4);
    assert_int_equal(atomic_load(&s->batch_size.bucket[2]), 1); /* the 4 */
    assert_int_equal(atomic_load(&s->batch_size.bucket[1]), 1); /* the 2 */
    for (int i = 0; i < 7; i++) {
        assert_int_equal(c[i]->r.http_status, 200);
        assert_true(((const float *)ferry_tensor_cdata(c[i]->r.results[0]))[0] == 2.0f * (float)i);
        free_call(c[i]);
    }
    free_call(first);
    sv_version_release(v);
    sv_manager_free(m);
}

/* The trained Fashion-MNIST MLP: batched answers match the unbatched one and classify the
 * ankle boot as class 9. */
static void real_model_batches_match_single_runs(void **state)
{
    (void)state;
    char root[512], src[700], boot[700], dir[600], dst[700];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *cut = strstr(root, "/tests/unit/");
    if (!cut) skip();
    *cut = 0;
    snprintf(src, sizeof src, "%s/examples/fashion-mnist/mlp.onnx", root);
    snprintf(boot, sizeof boot, "%s/examples/fashion-mnist/ankle-boot.npy", root);
    if (access(src, R_OK) != 0 || access(boot, R_OK) != 0) skip();
    snprintf(dir, sizeof dir, "%s/mlp/1", repo);
    mkdirs(dir);
    snprintf(dst, sizeof dst, "%s/model.onnx", dir);
    assert_int_equal(symlink(src, dst), 0);
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *v = sv_manager_acquire(m, "mlp", 0, NULL, &st, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(sv_version_max_batch_size(v), SV_DEFAULT_AUTO_BATCH);

    call *c[9];
    close_gate();
    for (int i = 0; i < 9; i++) {
        c[i] = calloc(1, sizeof *c[i]);
        assert_int_equal(ferry_tensor_load(boot, &c[i]->vals[0]), FERRY_OK);
        c[i]->names[0] = "input";
        c[i]->r.n_inputs = 1;
        c[i]->r.input_names = c[i]->names;
        c[i]->r.inputs = c[i]->vals;
        c[i]->r.done = on_done;
        c[i]->r.ctx = c[i];
        c[i]->block = i == 0;
        assert_int_equal(sv_version_submit(v, &c[i]->r), 0);
        if (i == 0) wait_blocked();
    }
    open_gate();
    for (int i = 0; i < 9; i++)
        wait_call(c[i]);
    assert_int_equal(atomic_load(&sv_version_stats_of(v)->executions), 2); /* 1, then 8 */
    const float *ref = ferry_tensor_cdata(c[0]->r.results[0]);
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (ref[k] > ref[best]) best = k;
    assert_int_equal(best, 9);
    for (int i = 1; i < 9; i++) {
        assert_int_equal(c[i]->r.http_status, 200);
        assert_string_equal(c[i]->r.result_names[0], "logits");
        const float *y = ferry_tensor_cdata(c[i]->r.results[0]);
        for (int k = 0; k < 10; k++)
            assert_true(y[k] - ref[k] < 1e-4f && ref[k] - y[k] < 1e-4f);
    }
    for (int i = 0; i < 9; i++)
        free_call(c[i]);
    sv_version_release(v);
    sv_manager_free(m);
}

/* When measured run times say a smaller batch moves more samples per second (a big batch
 * that falls out of cache), the scheduler forms the smaller batches. */
static void batch_size_follows_measured_speed(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bytes = scale_model(2, 0, &len);
    ferry_model *model = NULL;
    assert_int_equal(ferry_model_load_memory(bytes, len, NULL, &model), FERRY_OK);
    free(bytes);
    ferry_session *session = NULL;
    assert_int_equal(ferry_session_create(model, NULL, &session), FERRY_OK);
    sv_model_config cfg;
    sv_config_defaults(&cfg);
    cfg.max_batch_size = 8;
    assert_int_equal(sv_config_resolve(&cfg, model), FERRY_OK);
    int sizes[8];
    assert_int_equal(sv_scheduler_batch_sizes(&cfg, sizes, 8), 4); /* 1, 2, 4, 8 */
    assert_int_equal(sizes[3], 8);
    sv_version_stats stats;
    memset(&stats, 0, sizeof stats);
    sv_scheduler *s = NULL;
    assert_int_equal(sv_scheduler_create(session, model, &cfg, &stats, NULL, NULL, &s), FERRY_OK);
    sv_scheduler_set_estimate(s, 1, 0.050); /* 50 ms per sample */
    sv_scheduler_set_estimate(s, 2, 0.050); /* 25 */
    sv_scheduler_set_estimate(s, 4, 0.010); /* 2.5: the fastest */
    sv_scheduler_set_estimate(s, 8, 0.080); /* 10 */

    close_gate();
    call *first = new_call(1, 1);
    first->block = 1;
    assert_int_equal(sv_scheduler_submit(s, &first->r), 0);
    wait_blocked();
    call *c[8];
    for (int i = 0; i < 8; i++) {
        c[i] = new_call(1, (float)i);
        assert_int_equal(sv_scheduler_submit(s, &c[i]->r), 0);
    }
    open_gate();
    for (int i = 0; i < 8; i++)
        wait_call(c[i]);
    assert_int_equal(atomic_load(&stats.executions), 3);           /* 1, then 4 and 4 */
    assert_int_equal(atomic_load(&stats.batch_size.bucket[2]), 2); /* two batches of 4 */
    for (int i = 0; i < 8; i++) {
        assert_true(((const float *)ferry_tensor_cdata(c[i]->r.results[0]))[0] == 2.0f * (float)i);
        free_call(c[i]);
    }
    free_call(first);
    sv_scheduler_free(s);
    ferry_session_free(session);
    ferry_model_free(model);
}

static void validates_inputs(void **state)
{
    (void)state;
    add_version("v", 1, 1, 0);
    model_file("v", "config.json", "{\"max_batch_size\": 4}");
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *v = sv_manager_acquire(m, "v", 0, NULL, &st, err, sizeof err);

    call *c = new_call(1, 1);
    c->names[0] = "z";
    assert_int_equal(sv_version_submit(v, &c->r), -1);
    assert_int_equal(c->r.http_status, 400);
    assert_non_null(strstr(c->r.error, "unknown input \"z\""));
    free_call(c);

    c = new_call(1, 1);
    ferry_value_free(c->vals[0]);
    int64_t dims[] = {1, 5};
    ferry_tensor_create(FERRY_DTYPE_F32, 2, dims, &c->vals[0]);
    assert_int_equal(sv_version_submit(v, &c->r), -1);
    assert_int_equal(c->r.http_status, 400);
    assert_non_null(strstr(c->r.error, "shape [1,5]"));
    free_call(c);

    c = new_call(1, 1);
    ferry_value_free(c->vals[0]);
    int64_t d2[] = {1, 4};
    ferry_tensor_create(FERRY_DTYPE_I64, 2, d2, &c->vals[0]);
    assert_int_equal(sv_version_submit(v, &c->r), -1);
    assert_non_null(strstr(c->r.error, "datatype int64"));
    free_call(c);

    c = new_call(5, 1); /* more rows than max_batch_size */
    assert_int_equal(sv_version_submit(v, &c->r), -1);
    assert_non_null(strstr(c->r.error, "max_batch_size"));
    free_call(c);

    c = new_call(1, 1);
    const char *outs[] = {"nope"};
    c->r.n_outputs = 1;
    c->r.output_names = outs;
    assert_int_equal(sv_version_submit(v, &c->r), -1);
    assert_non_null(strstr(c->r.error, "unknown output"));
    free_call(c);

    c = new_call(1, 1);
    c->r.n_inputs = 0;
    assert_int_equal(sv_version_submit(v, &c->r), -1);
    assert_non_null(strstr(c->r.error, "missing input \"x\""));
    c->r.n_inputs = 1;
    free_call(c);
    assert_int_equal(atomic_load(&sv_version_stats_of(v)->requests_failed), 6);
    sv_version_release(v);
    sv_manager_free(m);
}

static void deadlines_cancellation_and_full_queue(void **state)
{
    (void)state;
    add_version("d", 1, 1, 0);
    model_file("d", "config.json", "{\"limits\": {\"max_queue_size\": 3}, \"instances\": 1}");
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *v = sv_manager_acquire(m, "d", 0, NULL, &st, err, sizeof err);
    close_gate();
    call *first = new_call(1, 1);
    first->block = 1;
    assert_int_equal(sv_version_submit(v, &first->r), 0);
    wait_blocked();

    call *late = new_call(1, 1), *gone = new_call(1, 1), *fine = new_call(1, 1);
    late->r.deadline = sv_now() + 0.05;
    assert_int_equal(sv_version_submit(v, &late->r), 0);
    assert_int_equal(sv_version_submit(v, &gone->r), 0);
    assert_int_equal(sv_version_submit(v, &fine->r), 0);
    call *over = new_call(1, 1);
    assert_int_equal(sv_version_submit(v, &over->r), -1);
    assert_int_equal(over->r.http_status, 503);
    assert_non_null(strstr(over->r.error, "queue full"));
    atomic_store(&gone->r.cancelled, 1);
    /* The expired request is answered at its deadline, while the instance is still busy. */
    wait_call(late);
    assert_int_equal(late->r.http_status, 504);
    assert_false(fine->finished);
    open_gate();
    wait_call(gone);
    wait_call(fine);
    assert_int_equal(late->r.http_status, 504);
    assert_int_equal(late->r.n_results, 0);
    assert_int_equal(gone->r.http_status, 499);
    assert_int_equal(fine->r.http_status, 200);
    /* Neither the expired nor the cancelled request ran: only first and fine did. */
    assert_int_equal(atomic_load(&sv_version_stats_of(v)->inferences), 2);
    free_call(first);
    free_call(late);
    free_call(gone);
    free_call(fine);
    free_call(over);
    sv_version_release(v);
    sv_manager_free(m);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void load_unload_cycles_do_not_grow(void **state)
{
    (void)state;
    add_version_pad("u", 1, 1, 1 << 18, 1); /* 1 MiB of weights */
    sv_manager *m = start(0);
    int cycles = 120;
    long base = 0;
    for (int i = 0; i < cycles; i++) {
        assert_int_equal(sv_manager_unload_model(m, "u"), FERRY_OK);
        assert_false(infer(m, "u", 0, NULL) == 1.0f);
        assert_int_equal(sv_manager_load_model(m, "u"), FERRY_OK);
        assert_true(infer(m, "u", 0, NULL) == 1.0f);
        if (i == 20) base = rss_kb();
    }
    /* Let the reaper free the last unloaded copies before measuring. */
    usleep(200000);
    long end = rss_kb();
#if defined(__SANITIZE_ADDRESS__)
    (void)base;
    (void)end; /* ASan's quarantine holds freed memory on purpose; it checks leaks instead */
#else
    /* 100 cycles of a 1 MiB model: a leak of one copy per cycle would add 100 MiB. */
    assert_true(end - base < 16 * 1024);
#endif
    assert_int_equal(sv_manager_unload_model(m, "nope"), FERRY_E_INVALID_ARG);
    assert_int_equal(sv_manager_load_model(m, "nope"), FERRY_E_INVALID_ARG);
    assert_int_equal(sv_manager_load_model(m, "../etc"), FERRY_E_INVALID_ARG);
    sv_manager_free(m);
}

static void polling_thread_picks_up_changes(void **state)
{
    (void)state;
    add_version("p", 1, 1, 1);
    sv_manager *m = start(0.05);
    add_version("p", 2, 2, 1);
    float y = 0;
    for (int i = 0; i < 200 && (y = infer(m, "p", 0, NULL)) != 2.0f; i++)
        usleep(10000);
    assert_true(y == 2.0f);
    /* Removing the model directory unloads it. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/p", repo);
    rm_rf(dir);
    int st = 0;
    char err[256];
    for (int i = 0; i < 200 && st != 404; i++) {
        sv_version *v = sv_manager_acquire(m, "p", 0, NULL, &st, err, sizeof err);
        if (v) sv_version_release(v);
        usleep(10000);
    }
    assert_int_equal(st, 404);
    sv_manager_rescan(m);
    sv_manager_free(m);
}

static void shutdown_drains_the_queue(void **state)
{
    (void)state;
    add_version("z", 1, 3, 0);
    model_file("z", "config.json", "{\"max_batch_size\": 0}");
    sv_manager *m = start(0);
    int st;
    char err[256];
    sv_version *v = sv_manager_acquire(m, "z", 0, NULL, &st, err, sizeof err);
    assert_int_equal(sv_version_max_batch_size(v), 0);
    call *c[20];
    for (int i = 0; i < 20; i++) {
        c[i] = new_call(1, (float)i);
        assert_int_equal(sv_version_submit(v, &c[i]->r), 0);
    }
    sv_version_release(v);
    sv_manager_free(m);
    for (int i = 0; i < 20; i++) {
        assert_true(c[i]->finished);
        assert_int_equal(c[i]->r.http_status, 200);
        assert_true(((const float *)ferry_tensor_cdata(c[i]->r.results[0]))[0] == 3.0f * (float)i);
        free_call(c[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(scans_and_applies_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_config_is_a_load_error, setup, teardown),
        cmocka_unit_test_setup_teardown(config_change_reloads_serving_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(manifest_mismatch_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unmanifested_waits_for_two_quiet_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_version_keeps_old_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(broken_newest_at_startup_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(labels_route_and_follow_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(swap_while_a_request_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(batches_form_and_split, setup, teardown),
        cmocka_unit_test_setup_teardown(real_model_batches_match_single_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_size_follows_measured_speed, setup, teardown),
        cmocka_unit_test_setup_teardown(validates_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(deadlines_cancellation_and_full_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(load_unload_cycles_do_not_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(polling_thread_picks_up_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(shutdown_drains_the_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
