/* cmd_conformance.c — `ferry conformance DIR...`: runs ONNX backend-style test folders
 * (model.onnx + test_data_set_N/{input,output}_K.pb), each in a child process so a crash or a
 * hang is reported as a failure of that test instead of ending the run. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define RTOL 1e-3
#define ATOL 1e-7
#define TEST_TIMEOUT_S 120

enum { RESULT_PASS = 0, RESULT_FAIL = 1, RESULT_UNSUPPORTED = 2 };
static const char *const result_names[] = {"PASS", "FAIL", "UNSUPPORTED"};

typedef struct result {
    int status;
    char message[1024];
} result;

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static double as_double(const ferry_value *t, int64_t i)
{
    const void *d = ferry_tensor_cdata(t);
    switch (ferry_tensor_dtype(t)) {
    case FERRY_DTYPE_F32: return ((const float *)d)[i];
    case FERRY_DTYPE_F64: return ((const double *)d)[i];
    case FERRY_DTYPE_C64: return ((const float *)d)[i];
    case FERRY_DTYPE_C128: return ((const double *)d)[i];
    default: return 0;
    }
}

/* IEEE half/bfloat16 bits → double, for comparison only. */
static double half_bits(uint16_t h, int bf16)
{
    if (bf16) {
        uint32_t b = (uint32_t)h << 16;
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

static int close_enough(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= ATOL + RTOL * fabs(b);
}

static int compare_tensor(const ferry_value *got, const ferry_value *want, char *msg, size_t n)
{
    ferry_dtype dt = ferry_tensor_dtype(want);
    if (ferry_tensor_dtype(got) != dt) {
        snprintf(msg, n, "dtype %s, expected %s", ferry_dtype_name(ferry_tensor_dtype(got)),
                 ferry_dtype_name(dt));
        return 0;
    }
    int rank = ferry_tensor_rank(want);
    int same = ferry_tensor_rank(got) == rank;
    for (int i = 0; same && i < rank; i++) same = ferry_tensor_dims(got)[i] == ferry_tensor_dims(want)[i];
    if (!same) {
        char a[256] = "[", b[256] = "[";
        for (int i = 0; i < ferry_tensor_rank(got); i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", i ? "," : "", (long long)ferry_tensor_dims(got)[i]);
        for (int i = 0; i < rank; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? "," : "", (long long)ferry_tensor_dims(want)[i]);
        snprintf(msg, n, "shape %s], expected %s]", a, b);
        return 0;
    }
    int64_t count = ferry_tensor_count(want);
    const void *g = ferry_tensor_cdata(got), *w = ferry_tensor_cdata(want);
    for (int64_t i = 0; i < count * ((dt == FERRY_DTYPE_C64 || dt == FERRY_DTYPE_C128) ? 2 : 1); i++) {
        int ok;
        double x = 0, y = 0;
        switch (dt) {
        case FERRY_DTYPE_F32: case FERRY_DTYPE_F64: case FERRY_DTYPE_C64: case FERRY_DTYPE_C128:
            x = as_double(got, i), y = as_double(want, i);
            ok = close_enough(x, y);
            break;
        case FERRY_DTYPE_F16: case FERRY_DTYPE_BF16:
            x = half_bits(((const uint16_t *)g)[i], dt == FERRY_DTYPE_BF16);
            y = half_bits(((const uint16_t *)w)[i], dt == FERRY_DTYPE_BF16);
            ok = close_enough(x, y);
            break;
        case FERRY_DTYPE_STRING:
            ok = strcmp(((char *const *)g)[i], ((char *const *)w)[i]) == 0;
            if (!ok) {
                snprintf(msg, n, "element %lld: \"%.60s\", expected \"%.60s\"", (long long)i,
                         ((char *const *)g)[i], ((char *const *)w)[i]);
                return 0;
            }
            break;
        default: {
            size_t es = ferry_dtype_size(dt);
            ok = memcmp((const char *)g + i * es, (const char *)w + i * es, es) == 0;
            if (!ok) {
                int64_t a = 0, b = 0;
                memcpy(&a, (const char *)g + i * es, es);
                memcpy(&b, (const char *)w + i * es, es);
                snprintf(msg, n, "element %lld: %lld, expected %lld (raw bits)", (long long)i,
                         (long long)a, (long long)b);
                return 0;
            }
        }
        }
        if (!ok) {
            snprintf(msg, n, "element %lld: %.9g, expected %.9g", (long long)i, x, y);
            return 0;
        }
    }
    return 1;
}

static int compare_value(const ferry_value *got, const ferry_value *want, char *msg, size_t n)
{
    ferry_value_kind kg = ferry_value_get_kind(got), kw = ferry_value_get_kind(want);
    if (kg != kw) {
        snprintf(msg, n, "got a value of kind %d, expected kind %d", (int)kg, (int)kw);
        return 0;
    }
    if (kw == FERRY_VALUE_TENSOR) return compare_tensor(got, want, msg, n);
    if (kw == FERRY_VALUE_NONE) return 1;
    if (ferry_sequence_length(got) != ferry_sequence_length(want)) {
        snprintf(msg, n, "sequence of %lld, expected %lld", (long long)ferry_sequence_length(got),
                 (long long)ferry_sequence_length(want));
        return 0;
    }
    for (int64_t i = 0; i < ferry_sequence_length(want); i++) {
        char inner[768];
        if (!compare_tensor(ferry_sequence_at(got, i), ferry_sequence_at(want, i), inner, sizeof inner)) {
            snprintf(msg, n, "sequence element %lld: %s", (long long)i, inner);
            return 0;
        }
    }
    return 1;
}

/* The ONNX test data stores bfloat16 tensors as uint16 (NumPy has no bfloat16): when the model
 * declares bfloat16 and the file says uint16, the bits are taken as bfloat16. */
static ferry_status load_io(const char *path, const ferry_io_info *io, ferry_value **out)
{
    ferry_value_kind kind = io->optional ? FERRY_VALUE_NONE : io->kind;
    ferry_status rc = ferry_value_load_pb(path, kind, out);
    ferry_value *v = *out;
    if (rc != FERRY_OK || io->dtype != FERRY_DTYPE_BF16 || ferry_value_get_kind(v) != FERRY_VALUE_TENSOR ||
        ferry_tensor_dtype(v) != FERRY_DTYPE_U16)
        return rc;
    rc = ferry_tensor_create_copy(FERRY_DTYPE_BF16, ferry_tensor_rank(v), ferry_tensor_dims(v),
                                  ferry_tensor_cdata(v), ferry_tensor_nbytes(v), out);
    ferry_value_free(v);
    return rc;
}

static void run_data_set(ferry_session *s, const ferry_model *m, const char *dir, result *r)
{
    int n_in = ferry_model_input_count(m), n_out = ferry_model_output_count(m);
    ferry_value **in = calloc(n_in + 1, sizeof *in), **out = calloc(n_out + 1, sizeof *out);
    const char **names = calloc(n_in + 1, sizeof *names);
    int given = 0;
    char path[4096];
    ferry_status rc = FERRY_OK;
    if (!in || !out || !names) {
        snprintf(r->message, sizeof r->message, "out of memory");
        r->status = RESULT_FAIL;
        goto out;
    }
    for (int i = 0; i < n_in; i++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", dir, i);
        if (!is_file(path)) break;
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        if ((rc = load_io(path, &io, &in[given])) != FERRY_OK) {
            snprintf(r->message, sizeof r->message, "reading %s: %s", path, ferry_last_error());
            r->status = RESULT_FAIL;
            goto out;
        }
        names[given++] = io.name;
    }
    rc = ferry_session_run(s, given, names, in, out);
    if (rc != FERRY_OK) {
        snprintf(r->message, sizeof r->message, "%s", ferry_last_error());
        r->status = rc == FERRY_E_UNSUPPORTED ? RESULT_UNSUPPORTED : RESULT_FAIL;
        goto out;
    }
    for (int i = 0; i < n_out; i++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", dir, i);
        if (!is_file(path)) continue;
        ferry_io_info io;
        ferry_model_output(m, i, &io);
        ferry_value *want = NULL;
        if ((rc = load_io(path, &io, &want)) != FERRY_OK) {
            snprintf(r->message, sizeof r->message, "reading %s: %s", path, ferry_last_error());
            r->status = RESULT_FAIL;
            goto out;
        }
        char msg[900];
        int ok = compare_value(out[i], want, msg, sizeof msg);
        ferry_value_free(want);
        if (!ok) {
            snprintf(r->message, sizeof r->message, "output %d \"%s\": %s", i, io.name, msg);
            r->status = RESULT_FAIL;
            goto out;
        }
    }
out:
    for (int i = 0; in && i < given; i++) ferry_value_free(in[i]);
    for (int i = 0; out && i < n_out; i++) ferry_value_free(out[i]);
    free(in), free(out), free(names);
}

static void run_test(const char *dir, result *r)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    r->status = RESULT_PASS;
    r->message[0] = '\0';
    ferry_model *m = NULL;
    ferry_session *s = NULL;
    ferry_status rc = ferry_model_load_flags(path, FERRY_LOAD_ALLOW_UNSUPPORTED, &m);
    if (rc == FERRY_OK && ferry_model_unsupported_ops(m)) {
        snprintf(r->message, sizeof r->message, "%s", ferry_model_unsupported_ops(m));
        for (char *p = r->message; *p; p++)
            if (*p == '\n') *p = ';';
        r->status = RESULT_UNSUPPORTED;
        ferry_model_free(m);
        return;
    }
    if (rc != FERRY_OK ||
        (rc = ferry_session_create(m, &(ferry_session_options){.threads = 1}, &s)) != FERRY_OK) {
        snprintf(r->message, sizeof r->message, "%s", ferry_last_error());
        r->status = rc == FERRY_E_UNSUPPORTED ? RESULT_UNSUPPORTED : RESULT_FAIL;
        ferry_model_free(m);
        return;
    }
    int sets = 0;
    for (int i = 0; r->status == RESULT_PASS; i++) {
        snprintf(path, sizeof path, "%s/test_data_set_%d", dir, i);
        if (!is_dir(path)) break;
        run_data_set(s, m, path, r);
        sets++;
    }
    if (r->status == RESULT_PASS && !sets) {
        r->status = RESULT_FAIL;
        snprintf(r->message, sizeof r->message, "no test_data_set_0 folder");
    }
    ferry_session_free(s);
    ferry_model_free(m);
}

/* Fork, run, pass the result back through a pipe. */
static void run_isolated(const char *dir, result *r)
{
    int fds[2];
    if (pipe(fds) != 0) {
        run_test(dir, r);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm(TEST_TIMEOUT_S);
        result mine;
        run_test(dir, &mine);
        ssize_t w = write(fds[1], &mine, sizeof mine);
        _exit(w == (ssize_t)sizeof mine ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = pid > 0 ? read(fds[0], r, sizeof *r) : -1;
    close(fds[0]);
    int st = 0;
    if (pid > 0) waitpid(pid, &st, 0);
    if (got != (ssize_t)sizeof *r) {
        r->status = RESULT_FAIL;
        if (pid > 0 && WIFSIGNALED(st))
            snprintf(r->message, sizeof r->message, "crashed or timed out (signal %d)", WTERMSIG(st));
        else
            snprintf(r->message, sizeof r->message, "test process failed (status %d)", st);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Test folders under dir (dir itself if it holds model.onnx), sorted. */
static int collect(const char *dir, char ***list, int *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (is_file(path)) {
        char **grown = realloc(*list, sizeof **list * (*n + 1));
        if (!grown) return -1;
        *list = grown;
        (*list)[(*n)++] = strdup(dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) return -1;
    int start = *n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, e->d_name);
        if (!is_file(path)) continue;
        char **grown = realloc(*list, sizeof **list * (*n + 1));
        if (!grown) break;
        *list = grown;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        (*list)[(*n)++] = strdup(path);
    }
    closedir(d);
    qsort(*list + start, *n - start, sizeof **list, cmp_str);
    return 0;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry conformance [--json] [--quiet] DIR...\n\n"
            "Runs ONNX backend test folders: each DIR is a test (model.onnx and\n"
            "test_data_set_N/{input,output}_K.pb) or a folder of tests. Prints PASS, FAIL or\n"
            "UNSUPPORTED per test and the totals; --json prints one JSON object instead;\n"
            "--quiet prints only failures and totals. Outputs match when\n"
            "|got - expected| <= 1e-7 + 1e-3 * |expected| (ONNX's defaults).\n"
            "Exit code 0 when every test passed, 1 otherwise, 2 on bad usage.\n");
}

int cmd_conformance(int argc, char **argv)
{
    int json = 0, quiet = 0;
    char **tests = NULL;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help(stdout);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--quiet") == 0) quiet = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "ferry conformance: unknown option %s\n", argv[i]);
            help(stderr);
            return EXIT_USAGE;
        } else if (collect(argv[i], &tests, &n) != 0) {
            fprintf(stderr, "ferry conformance: %s is not a test folder or a folder of tests\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!n) {
        help(stderr);
        return EXIT_USAGE;
    }
    int counts[3] = {0, 0, 0};
    if (json) printf("{\"tests\": [");
    for (int i = 0; i < n; i++) {
        result r;
        run_isolated(tests[i], &r);
        counts[r.status]++;
        const char *name = strrchr(tests[i], '/') ? strrchr(tests[i], '/') + 1 : tests[i];
        if (json) {
            printf("%s\n  {\"name\": ", i ? "," : "");
            json_string(stdout, name);
            printf(", \"path\": ");
            json_string(stdout, tests[i]);
            printf(", \"status\": \"%s\", \"message\": ", result_names[r.status]);
            json_string(stdout, r.message);
            printf("}");
        } else if (!quiet || r.status == RESULT_FAIL) {
            printf("%-11s %s%s%s\n", result_names[r.status], name, r.message[0] ? ": " : "", r.message);
        }
        fflush(stdout);
        free(tests[i]);
    }
    free(tests);
    if (json)
        printf("\n], \"total\": %d, \"passed\": %d, \"failed\": %d, \"unsupported\": %d}\n", n,
               counts[0], counts[1], counts[2]);
    else
        printf("conformance: %d tests, %d passed, %d failed, %d unsupported\n", n, counts[0],
               counts[1], counts[2]);
    return counts[0] == n ? EXIT_OK : EXIT_CHECK;
}
