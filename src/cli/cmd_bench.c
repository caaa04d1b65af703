/* cmd_bench.c — `ferry bench MODEL`: time a model on random (or given) inputs: load, first run,
 * latency percentiles, throughput, peak RSS, and optionally a per-op and per-node profile. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Runs per measurement when --iterations is not given: as many as fit in about this long. */
#define AUTO_SECONDS        2.0
#define AUTO_MIN_ITERATIONS 10
#define AUTO_MAX_ITERATIONS 10000
#define DEFAULT_TOP_N       10

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry bench MODEL [--shape NAME=DIMS]... [--batch B] [--threads N]\n"
            "                   [--iterations N] [--warmup N] [--input NAME=FILE]... [--seed S]\n"
            "                   [--json] [--profile [TOP_N]]\n\n"
            "Times MODEL: load (model load + session creation), the first run, then --warmup\n"
            "untimed runs (default 5) and --iterations timed runs (default: as many as fit in\n"
            "about 2 s, 10 to 10000). Reports min/median/p90/p99 latency, throughput (batch /\n"
            "median), FLOPs per run and peak RSS.\n\n"
            "Inputs are random with a fixed seed (--seed, default 1): floats uniform in [-1,1],\n"
            "integers in [0,8), booleans 0/1. Symbolic dims are 1, except the first symbolic dim\n"
            "of each input, which is B with --batch B. --shape NAME=DIMS (e.g. input=8,3,224,224)\n"
            "gives one input's whole shape; --input NAME=FILE reads it from a .npy/.pb file.\n"
            "--threads N: threads per run (default 0: one per core).\n"
            "--json prints one JSON object: load_ms, first_run_ms, min_ms, median_ms, p90_ms,\n"
            "p99_ms, throughput_per_s, peak_rss_mb and more.\n"
            "--profile [TOP_N] runs the iterations again with per-node timing on and prints the\n"
            "time per op type and the TOP_N (default 10) slowest nodes.\n"
            "Exit code 0 on success, 2 on bad usage or input, 3 on an internal error.\n");
}

typedef struct bench_opts {
    const char *model_path;
    const char **shapes; /* "NAME=DIMS" */
    const char **files;  /* "NAME=FILE" */
    int n_shapes, n_files;
    int batch;      /* 0: not given */
    int threads;    /* 0: one per core */
    int iterations; /* 0: automatic */
    int warmup;
    int seed;
    int json;
    int top_n; /* -1: no profile */
} bench_opts;

typedef struct timings {
    double load_ms, model_load_ms, session_ms, first_run_ms;
    double min_ms, median_ms, p90_ms, p99_ms, mean_ms;
    int iterations;
    double flops;
    double peak_rss_mb;
} timings;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- arguments --------------------------------------------------------------------------- */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ferry bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return EXIT_USAGE;
}

/* Parses the options into *o; returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, bench_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *num = NULL;
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--profile") == 0) {
            o->top_n = DEFAULT_TOP_N;
            if (v && v[0] >= '0' && v[0] <= '9') { /* the optional TOP_N */
                if ((o->top_n = cli_parse_int(v)) < 1)
                    return usage_error("--profile TOP_N must be a positive integer, not \"%s\"", v);
                i++;
            }
        } else if (strcmp(a, "--shape") == 0 || strcmp(a, "--input") == 0) {
            if (!v) return usage_error("%s needs NAME=VALUE", a);
            if (!strchr(v, '=') || v[0] == '=')
                return usage_error(
                    strcmp(a, "--shape") == 0
                        ? "--shape needs NAME=DIMS (e.g. input=1,3,224,224), not \"%s\""
                        : "--input needs NAME=FILE, not \"%s\"",
                    v);
            if (strcmp(a, "--shape") == 0)
                o->shapes[o->n_shapes++] = v;
            else
                o->files[o->n_files++] = v;
            i++;
        } else if (strcmp(a, "--batch") == 0)
            num = &o->batch;
        else if (strcmp(a, "--threads") == 0)
            num = &o->threads;
        else if (strcmp(a, "--iterations") == 0)
            num = &o->iterations;
        else if (strcmp(a, "--warmup") == 0)
            num = &o->warmup;
        else if (strcmp(a, "--seed") == 0)
            num = &o->seed;
        else if (a[0] == '-' || o->model_path) {
            fprintf(stderr, "ferry bench: unexpected argument \"%s\"\n", a);
            help(stderr);
            return EXIT_USAGE;
        } else {
            o->model_path = a;
        }
        if (!num) continue;
        /* --batch and --iterations must be positive; the others may be 0 */
        int positive = num == &o->batch || num == &o->iterations;
        if (!v || (*num = cli_parse_int(v)) < positive)
            return usage_error(
                positive ? "%s needs a positive integer" : "%s needs a non-negative integer", a);
        i++;
    }
    if (!o->model_path) {
        fprintf(stderr, "ferry bench: no MODEL given\n");
        help(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

/* Index of the model input named by the NAME of "NAME=..." or -1. */
static int find_input(ferry_model *m, const char *spec)
{
    size_t len = (size_t)(strchr(spec, '=') - spec);
    for (int j = 0; j < ferry_model_input_count(m); j++) {
        ferry_io_info io;
        ferry_model_input(m, j, &io);
        if (strlen(io.name) == len && strncmp(io.name, spec, len) == 0) return j;
    }
    return -1;
}

static int unknown_input(ferry_model *m, const char *opt, const char *spec)
{
    fprintf(stderr, "ferry bench: %s %s: the model has no input named \"%.*s\"; its inputs:", opt,
            spec, (int)(strchr(spec, '=') - spec), spec);
    for (int j = 0; j < ferry_model_input_count(m); j++) {
        ferry_io_info io;
        ferry_model_input(m, j, &io);
        fprintf(stderr, " %s", io.name);
    }
    fprintf(stderr, "\n");
    return EXIT_USAGE;
}

/* "8,3,224,224" or "8x3x224x224" → dims; checked against what the model declares. */
static int parse_shape(const char *spec, const ferry_io_info *io, int *rank, int64_t *dims)
{
    const char *p = strchr(spec, '=') + 1;
    *rank = 0;
    while (*p) {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 1 || d > 1000000000 || (*end && *end != ',' && *end != 'x') ||
            (*end && !end[1]) || *rank == FERRY_MAX_RANK)
            return usage_error("--shape %s: DIMS must be positive integers separated by ',' "
                               "(at most 16)",
                               spec);
        dims[(*rank)++] = d;
        p = *end ? end + 1 : end;
    }
    if (io->rank >= 0 && *rank != io->rank) {
        fprintf(stderr, "ferry bench: --shape %s: input \"%s\" has %d dims, not %d\n", spec,
                io->name, io->rank, *rank);
        return EXIT_USAGE;
    }
    for (int d = 0; io->rank >= 0 && d < *rank; d++)
        if (io->dims[d] >= 0 && io->dims[d] != dims[d]) {
            fprintf(stderr,
                    "ferry bench: --shape %s: dim %d of input \"%s\" is %lld in the model\n", spec,
                    d, io->name, (long long)io->dims[d]);
            return EXIT_USAGE;
        }
    return -1;
}

/* ---- random inputs ----------------------------------------------------------------------- */

static uint64_t next_random(uint64_t *state) /* splitmix64 */
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *state) /* in [-1, 1) */
{
    return (float)((next_random(state) >> 40) * (2.0 / 16777216.0) - 1.0);
}

static uint16_t to_half(float f) /* round to nearest; inputs here are within [-1, 1] */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int exp = (int)((x >> 23) & 0xff) - 127 + 15;
    if (exp <= 0) return (uint16_t)sign; /* tiny values flush to zero */
    uint32_t mant = x & 0x7fffffu, h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    if ((mant & 0x1fffu) > 0x1000u || ((mant & 0x1fffu) == 0x1000u && (h & 1))) h++;
    return (uint16_t)h;
}

static ferry_status fill_random(ferry_value *t, uint64_t *state)
{
    int64_t n = ferry_tensor_count(t);
    void *d = ferry_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        float f = uniform(state);
        int small = (int)(next_random(state) % 8);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        switch (ferry_tensor_dtype(t)) {
        case FERRY_DTYPE_F32: ((float *)d)[i] = f; break;
        case FERRY_DTYPE_F64: ((double *)d)[i] = f; break;
        case FERRY_DTYPE_F16: ((uint16_t *)d)[i] = to_half(f); break;
        case FERRY_DTYPE_BF16: ((uint16_t *)d)[i] = (uint16_t)(bits >> 16); break;
        case FERRY_DTYPE_BOOL: ((uint8_t *)d)[i] = (uint8_t)(small & 1); break;
        case FERRY_DTYPE_U8: ((uint8_t *)d)[i] = (uint8_t)small; break;
        case FERRY_DTYPE_I8: ((int8_t *)d)[i] = (int8_t)small; break;
        case FERRY_DTYPE_U16: ((uint16_t *)d)[i] = (uint16_t)small; break;
        case FERRY_DTYPE_I16: ((int16_t *)d)[i] = (int16_t)small; break;
        case FERRY_DTYPE_U32: ((uint32_t *)d)[i] = (uint32_t)small; break;
        case FERRY_DTYPE_I32: ((int32_t *)d)[i] = small; break;
        case FERRY_DTYPE_U64: ((uint64_t *)d)[i] = (uint64_t)small; break;
        case FERRY_DTYPE_I64: ((int64_t *)d)[i] = small; break;
        case FERRY_DTYPE_STRING: {
            char word[2] = {(char)('a' + small), '\0'};
            ferry_status rc = ferry_tensor_set_string(t, i, word, 1);
            if (rc != FERRY_OK) return rc;
            break;
        }
        default: return FERRY_E_UNSUPPORTED;
        }
    }
    return FERRY_OK;
}

/* Builds the tensor for model input j: from --input, --shape, or the declared shape with
 * symbolic dims set. Returns -1 to go on, or the exit code. */
static int make_input(ferry_model *m, int j, const bench_opts *o, uint64_t *state,
                      ferry_value **out)
{
    ferry_io_info io;
    ferry_model_input(m, j, &io);
    for (int k = 0; k < o->n_files; k++) {
        if (find_input(m, o->files[k]) != j) continue;
        ferry_status rc = ferry_tensor_load(strchr(o->files[k], '=') + 1, out);
        if (rc != FERRY_OK) return cli_fail("bench", "cannot read input", rc);
        if (io.dtype && ferry_tensor_dtype(*out) != io.dtype) {
            fprintf(stderr, "ferry bench: --input %s: the file holds %s, input \"%s\" is %s\n",
                    o->files[k], ferry_dtype_name(ferry_tensor_dtype(*out)), io.name,
                    ferry_dtype_name(io.dtype));
            return EXIT_USAGE;
        }
        return -1;
    }
    int rank = io.rank, exit_code;
    int64_t dims[FERRY_MAX_RANK];
    const char *shape = NULL;
    for (int k = 0; k < o->n_shapes; k++)
        if (find_input(m, o->shapes[k]) == j) shape = o->shapes[k];
    if (io.kind != FERRY_VALUE_TENSOR || !io.dtype) {
        fprintf(stderr, "ferry bench: input \"%s\" is not a tensor; give it with --input %s=FILE\n",
                io.name, io.name);
        return EXIT_USAGE;
    }
    if (shape) {
        if ((exit_code = parse_shape(shape, &io, &rank, dims)) >= 0) return exit_code;
    } else if (rank < 0) {
        fprintf(stderr,
                "ferry bench: input \"%s\" has no declared shape; give it with --shape "
                "%s=DIMS\n",
                io.name, io.name);
        return EXIT_USAGE;
    } else {
        int batched = 0;
        for (int d = 0; d < rank; d++) {
            dims[d] = io.dims[d] >= 0 ? io.dims[d] : 1;
            if (io.dims[d] < 0 && o->batch && !batched++) dims[d] = o->batch;
        }
    }
    ferry_status rc = ferry_tensor_create(io.dtype, rank, dims, out);
    if (rc == FERRY_OK && (rc = fill_random(*out, state)) != FERRY_OK)
        fprintf(stderr,
                "ferry bench: cannot make random %s data for input \"%s\"; give it with "
                "--input\n",
                ferry_dtype_name(io.dtype), io.name);
    if (rc != FERRY_OK)
        return rc == FERRY_E_UNSUPPORTED ? EXIT_USAGE
                                         : cli_fail("bench", "cannot create input", rc);
    return -1;
}

/* True if --shape or --input names model input j. */
static int is_given(ferry_model *m, int j, const bench_opts *o)
{
    for (int k = 0; k < o->n_shapes; k++)
        if (find_input(m, o->shapes[k]) == j) return 1;
    for (int k = 0; k < o->n_files; k++)
        if (find_input(m, o->files[k]) == j) return 1;
    return 0;
}

/* Every --shape/--input names an input, at most once; --batch has a symbolic dim to set. */
static int check_specs(ferry_model *m, const bench_opts *o)
{
    int *seen = calloc(ferry_model_input_count(m) + 1, sizeof *seen), exit_code = -1, symbolic = 0;
    if (!seen) return EXIT_INTERNAL;
    for (int k = 0; k < o->n_shapes + o->n_files && exit_code < 0; k++) {
        const char *opt = k < o->n_shapes ? "--shape" : "--input";
        const char *spec = k < o->n_shapes ? o->shapes[k] : o->files[k - o->n_shapes];
        int j = find_input(m, spec);
        if (j < 0)
            exit_code = unknown_input(m, opt, spec);
        else if (seen[j]++) {
            ferry_io_info io;
            ferry_model_input(m, j, &io);
            fprintf(stderr, "ferry bench: input \"%s\" is given more than once (--shape/--input)\n",
                    io.name);
            exit_code = EXIT_USAGE;
        }
    }
    for (int j = 0; j < ferry_model_input_count(m); j++) {
        ferry_io_info io;
        ferry_model_input(m, j, &io);
        for (int d = 0; !seen[j] && d < io.rank; d++)
            symbolic |= io.dims[d] < 0;
    }
    if (exit_code < 0 && o->batch && !symbolic)
        exit_code = usage_error("--batch: no input of %s (without --shape/--input) has a symbolic "
                                "dimension to set",
                                o->model_path);
    free(seen);
    return exit_code;
}

/* ---- statistics -------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values (p in (0, 1]). */
static double percentile(const double *v, int n, double p)
{
    int k = (int)ceil(p * n) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static void summarize(double *ms, int n, timings *t)
{
    qsort(ms, n, sizeof *ms, cmp_double);
    t->iterations = n;
    t->min_ms = ms[0];
    t->median_ms = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
    t->p90_ms = percentile(ms, n, 0.90);
    t->p99_ms = percentile(ms, n, 0.99);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += ms[i];
    t->mean_ms = sum / n;
}

/* ---- profile ----------------------------------------------------------------------------- */

typedef struct profile {
    ferry_node_profile *nodes;
    int n, cap;
    int failed;
    int runs;
    double wall_ms; /* of all profiled runs, nodes and executor together */
} profile;

static void collect_node(const ferry_node_profile *p, void *user)
{
    profile *pr = user;
    if (pr->n == pr->cap) {
        int cap = pr->cap ? pr->cap * 2 : 64;
        ferry_node_profile *nodes = realloc(pr->nodes, sizeof *nodes * cap);
        if (!nodes) {
            pr->failed = 1;
            return;
        }
        pr->nodes = nodes, pr->cap = cap;
    }
    pr->nodes[pr->n++] = *p;
}

static int cmp_node_time(const void *a, const void *b)
{
    const ferry_node_profile *x = a, *y = b;
    return x->seconds > y->seconds ? -1 : x->seconds < y->seconds;
}

typedef struct op_time {
    const char *op;
    int nodes;
    double seconds;
} op_time;

static int cmp_op_time(const void *a, const void *b)
{
    const op_time *x = a, *y = b;
    return x->seconds > y->seconds ? -1 : x->seconds < y->seconds;
}

/* Per-op-type totals of pr's nodes (sorted by time); *n_ops receives their number. */
static op_time *op_times(const profile *pr, int *n_ops)
{
    op_time *ops = calloc(pr->n + 1, sizeof *ops);
    *n_ops = 0;
    if (!ops) return NULL;
    for (int i = 0; i < pr->n; i++) {
        int k = 0;
        while (k < *n_ops && strcmp(ops[k].op, pr->nodes[i].op) != 0)
            k++;
        if (k == *n_ops) ops[(*n_ops)++].op = pr->nodes[i].op;
        ops[k].nodes++;
        ops[k].seconds += pr->nodes[i].seconds;
    }
    qsort(ops, *n_ops, sizeof *ops, cmp_op_time);
    return ops;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_profile(const profile *pr, int top_n, int json)
{
    double total = 0;
    for (int i = 0; i < pr->n; i++)
        total += pr->nodes[i].seconds;
    double pct = total > 0 ? 100 / total : 0;
    int n_ops;
    op_time *ops = op_times(pr, &n_ops);
    qsort(pr->nodes, pr->n, sizeof *pr->nodes, cmp_node_time);
    if (top_n > pr->n) top_n = pr->n;
    if (json) {
        printf(
            ", \"profile\": {\"runs\": %d, \"wall_ms_per_run\": %.6g, \"nodes_ms_per_run\": %.6g, "
            "\"ops\": [",
            pr->runs, pr->wall_ms / pr->runs, total * 1e3 / pr->runs);
        for (int k = 0; ops && k < n_ops; k++) {
            printf("%s{\"op\": ", k ? ", " : "");
            json_str(ops[k].op);
            printf(", \"nodes\": %d, \"ms_per_run\": %.6g, \"percent\": %.4g}", ops[k].nodes,
                   ops[k].seconds * 1e3 / pr->runs, ops[k].seconds * pct);
        }
        printf("], \"top_nodes\": [");
        for (int i = 0; i < top_n; i++) {
            const ferry_node_profile *p = &pr->nodes[i];
            printf("%s{\"name\": ", i ? ", " : "");
            json_str(p->node);
            printf(", \"op\": ");
            json_str(p->op);
            printf(", \"backend\": ");
            json_str(p->backend);
            printf(", \"calls\": %lld, \"ms_per_call\": %.6g, \"percent\": %.4g}",
                   (long long)p->calls, p->seconds * 1e3 / (p->calls ? p->calls : 1),
                   p->seconds * pct);
        }
        printf("]}");
    } else {
        printf("\nprofile (%d runs): %.4g ms per run in nodes, %.4g ms per run in all\n", pr->runs,
               total * 1e3 / pr->runs, pr->wall_ms / pr->runs);
        printf("\n  %-24s %6s %12s %7s\n", "op", "nodes", "ms per run", "%");
        for (int k = 0; ops && k < n_ops; k++)
            printf("  %-24s %6d %12.4f %6.1f%%\n", ops[k].op, ops[k].nodes,
                   ops[k].seconds * 1e3 / pr->runs, ops[k].seconds * pct);
        printf("\n  %-32s %-18s %-10s %12s %7s\n", "node", "op", "backend", "ms per call", "%");
        for (int i = 0; i < top_n; i++) {
            const ferry_node_profile *p = &pr->nodes[i];
            printf("  %-32s %-18s %-10s %12.4f %6.1f%%\n",
                   p->node && p->node[0] ? p->node : "(unnamed)", p->op,
                   p->backend ? p->backend : "?", p->seconds * 1e3 / (p->calls ? p->calls : 1),
                   p->seconds * pct);
        }
    }
    free(ops);
}

/* ---- report ------------------------------------------------------------------------------ */

static void print_report(const bench_opts *o, ferry_model *m, ferry_value *const *in,
                         const timings *t, int batch)
{
    double throughput = t->median_ms > 0 ? batch * 1e3 / t->median_ms : 0;
    double gflops = t->flops > 0 && t->median_ms > 0 ? t->flops / (t->median_ms * 1e6) : 0;
    int threads = o->threads ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->json) {
        printf("{\"model\": ");
        json_str(o->model_path);
        printf(", \"load_ms\": %.6g, \"model_load_ms\": %.6g, \"session_create_ms\": %.6g, "
               "\"first_run_ms\": %.6g, \"min_ms\": %.6g, \"median_ms\": %.6g, \"p90_ms\": %.6g, "
               "\"p99_ms\": %.6g, \"mean_ms\": %.6g, \"throughput_per_s\": %.6g, "
               "\"peak_rss_mb\": %.6g, \"iterations\": %d, \"warmup\": %d, \"batch\": %d, "
               "\"threads\": %d, \"flops\": %.6g, \"gflops_per_s\": %.6g",
               t->load_ms, t->model_load_ms, t->session_ms, t->first_run_ms, t->min_ms,
               t->median_ms, t->p90_ms, t->p99_ms, t->mean_ms, throughput, t->peak_rss_mb,
               t->iterations, o->warmup, batch, threads, t->flops, gflops);
        return;
    }
    printf("model       %s\n", o->model_path);
    for (int j = 0; j < ferry_model_input_count(m); j++) {
        ferry_io_info io;
        ferry_model_input(m, j, &io);
        printf("input       %s ", io.name);
        if (in[j])
            cli_print_type(stdout, ferry_tensor_dtype(in[j]), ferry_tensor_rank(in[j]),
                           ferry_tensor_dims(in[j]), NULL);
        else
            printf("(optional, not given)");
        printf("\n");
    }
    printf("threads     %d\n", threads);
    printf("load        %.3f ms (model %.3f ms, session %.3f ms)\n", t->load_ms, t->model_load_ms,
           t->session_ms);
    printf("first run   %.3f ms\n", t->first_run_ms);
    printf("latency     min %.4f ms, median %.4f ms, p90 %.4f ms, p99 %.4f ms "
           "(%d runs after %d warm-up)\n",
           t->min_ms, t->median_ms, t->p90_ms, t->p99_ms, t->iterations, o->warmup);
    printf("throughput  %.1f per second (batch %d)\n", throughput, batch);
    if (t->flops > 0)
        printf("compute     %.4g GFLOP per run, %.2f GFLOP/s\n", t->flops / 1e9, gflops);
    printf("peak RSS    %.1f MiB\n", t->peak_rss_mb);
}

/* ---- command ----------------------------------------------------------------------------- */

/* One run; outputs are freed (their cost belongs to the run being timed). */
static ferry_status run_once(ferry_session *s, int n, const char *const *names,
                             ferry_value *const *in, ferry_value **out, int n_out)
{
    ferry_status rc = ferry_session_run(s, n, names, in, out);
    for (int i = 0; i < n_out; i++) {
        ferry_value_free(out[i]);
        out[i] = NULL;
    }
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {.warmup = 5, .seed = 1, .top_n = -1};
    o.shapes = calloc(argc + 1, sizeof *o.shapes);
    o.files = calloc(argc + 1, sizeof *o.files);
    ferry_model *m = NULL;
    ferry_session *s = NULL;
    ferry_value **in = NULL, **out = NULL, **bound = NULL;
    const char **names = NULL;
    double *ms = NULL;
    profile pr = {0};
    timings t = {0};
    int n_in = 0, n_out = 0, n_bound = 0, exit_code;
    ferry_status rc;
    if (!o.shapes || !o.files) {
        exit_code = EXIT_INTERNAL;
        goto out;
    }
    if ((exit_code = parse_args(argc, argv, &o)) >= 0) goto out;
    exit_code = EXIT_OK;

    double t0 = now_ms();
    if ((rc = ferry_model_load(o.model_path, &m)) != FERRY_OK) {
        exit_code = cli_fail("bench", "cannot load model", rc);
        goto out;
    }
    double t1 = now_ms();
    t.model_load_ms = t1 - t0;
    if ((exit_code = check_specs(m, &o)) >= 0) goto out;
    exit_code = EXIT_OK;

    n_in = ferry_model_input_count(m);
    n_out = ferry_model_output_count(m);
    in = calloc(n_in + 1, sizeof *in);
    bound = calloc(n_in + 1, sizeof *bound);
    names = calloc(n_in + 1, sizeof *names);
    out = calloc(n_out + 1, sizeof *out);
    if (!in || !bound || !names || !out) {
        exit_code = EXIT_INTERNAL;
        goto out;
    }
    uint64_t state = (uint64_t)o.seed;
    for (int j = 0; j < n_in; j++) {
        ferry_io_info io;
        ferry_model_input(m, j, &io);
        if (io.optional && !is_given(m, j, &o))
            continue; /* optional inputs stay unset unless asked for */
        if ((exit_code = make_input(m, j, &o, &state, &in[j])) >= 0) goto out;
        exit_code = EXIT_OK;
        names[n_bound] = io.name;
        bound[n_bound++] = in[j];
    }
    int batch = 1;
    for (int j = 0; j < n_in; j++)
        if (in[j]) {
            batch = ferry_tensor_rank(in[j]) > 0 ? (int)ferry_tensor_dims(in[j])[0] : 1;
            break;
        }

    /* Session creation counts towards load time: it prepares weights for the kernels. */
    double t2 = now_ms();
    if ((rc = ferry_session_create(m, &(ferry_session_options){.threads = o.threads}, &s)) !=
        FERRY_OK) {
        exit_code = cli_fail("bench", "cannot create a session", rc);
        goto out;
    }
    double t3 = now_ms();
    t.session_ms = t3 - t2;
    t.load_ms = t.model_load_ms + t.session_ms;

    if ((rc = run_once(s, n_bound, names, bound, out, n_out)) != FERRY_OK) {
        exit_code = cli_fail("bench", "inference failed", rc);
        goto out;
    }
    t.first_run_ms = now_ms() - t3;
    t.flops = ferry_session_last_flops(s);

    double last_ms = t.first_run_ms;
    for (int i = 0; i < o.warmup; i++) {
        double a = now_ms();
        if ((rc = run_once(s, n_bound, names, bound, out, n_out)) != FERRY_OK) {
            exit_code = cli_fail("bench", "inference failed", rc);
            goto out;
        }
        last_ms = now_ms() - a;
    }
    int iterations = o.iterations;
    if (!iterations) {
        double fit = AUTO_SECONDS * 1e3 / (last_ms > 1e-3 ? last_ms : 1e-3);
        iterations = fit < AUTO_MIN_ITERATIONS   ? AUTO_MIN_ITERATIONS
                     : fit > AUTO_MAX_ITERATIONS ? AUTO_MAX_ITERATIONS
                                                 : (int)fit;
    }
    if (!(ms = calloc(iterations, sizeof *ms))) {
        fprintf(stderr, "ferry bench: out of memory for %d timings\n", iterations);
        exit_code = EXIT_INTERNAL;
        goto out;
    }
    for (int i = 0; i < iterations; i++) {
        double a = now_ms();
        if ((rc = run_once(s, n_bound, names, bound, out, n_out)) != FERRY_OK) {
            exit_code = cli_fail("bench", "inference failed", rc);
            goto out;
        }
        ms[i] = now_ms() - a;
    }
    summarize(ms, iterations, &t);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    t.peak_rss_mb = ru.ru_maxrss / 1024.0; /* Linux reports KiB */

    /* Profiling runs come after the timed runs so that its clock calls do not slow those. */
    if (o.top_n > 0) {
        if ((rc = ferry_session_set_profiling(s, 1)) != FERRY_OK) {
            exit_code = cli_fail("bench", "cannot switch profiling on", rc);
            goto out;
        }
        pr.runs = iterations;
        double a = now_ms();
        for (int i = 0; i < iterations; i++)
            if ((rc = run_once(s, n_bound, names, bound, out, n_out)) != FERRY_OK) {
                exit_code = cli_fail("bench", "inference failed", rc);
                goto out;
            }
        pr.wall_ms = now_ms() - a;
        ferry_session_foreach_profile(s, collect_node, &pr);
        if (pr.failed) {
            exit_code = EXIT_INTERNAL;
            goto out;
        }
    }
    print_report(&o, m, in, &t, batch);
    if (o.top_n > 0) print_profile(&pr, o.top_n, o.json);
    if (o.json) printf("}\n");
out:
    for (int j = 0; in && j < n_in; j++)
        ferry_value_free(in[j]);
    for (int i = 0; out && i < n_out; i++)
        ferry_value_free(out[i]);
    free(in), free(bound), free(names), free(out), free(ms), free(pr.nodes);
    free(o.shapes), free(o.files);
    ferry_session_free(s);
    ferry_model_free(m);
    return exit_code;
}
