/* cmd_inspect.c — `ferry inspect MODEL [--json]`: producer, opsets, inputs and outputs, op
 * histogram, parameters, FLOPs (measured by one run at batch 1 on zero inputs) and whether
 * every op has a kernel. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry inspect MODEL [--json]\n\n"
            "Describes an ONNX model: producer, opsets, inputs and outputs (dtype, shape with\n"
            "symbolic dims), op histogram, parameter count and bytes, estimated FLOPs per\n"
            "inference at batch 1 (from one run on zero inputs, symbolic dims set to 1), and\n"
            "whether every op is supported (listing those that are not).\n"
            "Exit code 0 when every op is supported, 1 when some are not, 2 on bad input.\n");
}

typedef struct op_list {
    char **names;
    int64_t *counts;
    int n;
} op_list;

static void collect_op(const char *op, int64_t count, void *user)
{
    op_list *l = user;
    char **names = realloc(l->names, sizeof *names * (l->n + 1));
    int64_t *counts = realloc(l->counts, sizeof *counts * (l->n + 1));
    if (names) l->names = names;
    if (counts) l->counts = counts;
    if (!names || !counts || !(l->names[l->n] = strdup(op))) return;
    l->counts[l->n++] = count;
}

static void sort_ops(op_list *l)
{
    for (int i = 1; i < l->n; i++)
        for (int j = i; j > 0 && (l->counts[j] > l->counts[j - 1] ||
                                  (l->counts[j] == l->counts[j - 1] &&
                                   strcmp(l->names[j], l->names[j - 1]) < 0));
             j--) {
            int64_t c = l->counts[j];
            char *s = l->names[j];
            l->counts[j] = l->counts[j - 1], l->names[j] = l->names[j - 1];
            l->counts[j - 1] = c, l->names[j - 1] = s;
        }
}

/* One run at batch 1 on zero inputs; returns -1 with *why set when the model cannot run so. */
static double measure_flops(ferry_model *m, const char **why)
{
    int n = ferry_model_input_count(m);
    ferry_value **in = calloc(n + 1, sizeof *in);
    const char **names = calloc(n + 1, sizeof *names);
    ferry_value **out = calloc(ferry_model_output_count(m) + 1, sizeof *out);
    ferry_session *s = NULL;
    double flops = -1;
    *why = "out of memory";
    if (!in || !names || !out) goto out;
    for (int i = 0; i < n; i++) {
        ferry_io_info io;
        ferry_model_input(m, i, &io);
        if (io.kind != FERRY_VALUE_TENSOR || io.rank < 0 || !io.dtype || io.dtype == FERRY_DTYPE_STRING) {
            *why = "an input is not a tensor of declared shape";
            goto out;
        }
        int64_t dims[FERRY_MAX_RANK];
        for (int d = 0; d < io.rank; d++) dims[d] = io.dims[d] >= 0 ? io.dims[d] : 1;
        if (ferry_tensor_create(io.dtype, io.rank, dims, &in[i]) != FERRY_OK) goto fail;
        memset(ferry_tensor_data(in[i]), 0, ferry_tensor_nbytes(in[i]));
        names[i] = io.name;
    }
    if (ferry_session_create(m, NULL, &s) != FERRY_OK || ferry_session_run(s, n, names, in, out) != FERRY_OK)
        goto fail;
    flops = ferry_session_last_flops(s);
    goto out;
fail:
    *why = ferry_last_error();
out:
    for (int i = 0; in && i < n; i++) ferry_value_free(in[i]);
    for (int i = 0; out && i < ferry_model_output_count(m); i++) ferry_value_free(out[i]);
    free(in), free(names), free(out);
    ferry_session_free(s);
    return flops;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_io_json(const ferry_io_info *io)
{
    printf("{\"name\": ");
    json_str(io->name);
    printf(", \"kind\": \"%s\", \"dtype\": \"%s\", \"shape\": ",
           io->kind == FERRY_VALUE_SEQUENCE ? "sequence" : "tensor", ferry_dtype_name(io->dtype));
    if (io->rank < 0) printf("null");
    else {
        printf("[");
        for (int d = 0; d < io->rank; d++) {
            if (d) printf(", ");
            if (io->dims[d] >= 0) printf("%lld", (long long)io->dims[d]);
            else json_str(io->dim_names[d] ? io->dim_names[d] : "?");
        }
        printf("]");
    }
    printf("}");
}

static void print_io_text(const char *label, const ferry_io_info *io)
{
    printf("  %-8s %-24s ", label, io->name);
    if (io->kind == FERRY_VALUE_SEQUENCE) printf("sequence of ");
    cli_print_type(stdout, io->dtype, io->rank, io->dims, io->dim_names);
    printf("\n");
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "ferry inspect: unexpected argument \"%s\"\n", argv[i]);
            help(stderr);
            return EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        help(stderr);
        return EXIT_USAGE;
    }
    ferry_model *m;
    /* the model as its file has it: no load-time folding or fusion */
    ferry_status rc =
        ferry_model_load_flags(path, FERRY_LOAD_ALLOW_UNSUPPORTED | FERRY_LOAD_NO_OPTIMIZE, &m);
    if (rc != FERRY_OK) return cli_fail("inspect", "cannot load model", rc);
    ferry_model_info info;
    ferry_model_get_info(m, &info);
    op_list ops = {0};
    ferry_model_foreach_op(m, collect_op, &ops);
    sort_ops(&ops);
    const char *missing = ferry_model_unsupported_ops(m), *why = NULL;
    double flops = missing ? -1 : measure_flops(m, &why);
    if (missing) why = "unsupported ops";

    if (json) {
        printf("{\"path\": ");
        json_str(path);
        printf(", \"producer\": ");
        json_str(info.producer_name);
        printf(", \"producer_version\": ");
        json_str(info.producer_version);
        printf(", \"ir_version\": %lld, \"opsets\": {", (long long)info.ir_version);
        for (int i = 0; i < info.n_opsets; i++) {
            printf("%s", i ? ", " : "");
            json_str(info.opset_domains[i][0] ? info.opset_domains[i] : "ai.onnx");
            printf(": %lld", (long long)info.opset_versions[i]);
        }
        printf("}, \"inputs\": [");
        for (int i = 0; i < ferry_model_input_count(m); i++) {
            ferry_io_info io;
            ferry_model_input(m, i, &io);
            printf("%s", i ? ", " : "");
            print_io_json(&io);
        }
        printf("], \"outputs\": [");
        for (int i = 0; i < ferry_model_output_count(m); i++) {
            ferry_io_info io;
            ferry_model_output(m, i, &io);
            printf("%s", i ? ", " : "");
            print_io_json(&io);
        }
        printf("], \"nodes\": %lld, \"ops\": {", (long long)info.n_nodes);
        for (int i = 0; i < ops.n; i++) {
            printf("%s", i ? ", " : "");
            json_str(ops.names[i]);
            printf(": %lld", (long long)ops.counts[i]);
        }
        printf("}, \"parameters\": %lld, \"parameter_bytes\": %lld, \"flops\": ",
               (long long)info.n_parameters, (long long)info.parameter_bytes);
        if (flops >= 0) printf("%.0f", flops);
        else printf("null");
        printf(", \"supported\": %s, \"unsupported_ops\": [", missing ? "false" : "true");
        for (const char *p = missing; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            char line[512];
            snprintf(line, sizeof line, "%.*s", (int)len, p);
            printf("%s", p != missing ? ", " : "");
            json_str(line);
            p += len + (nl ? 1 : 0);
        }
        printf("]}\n");
    } else {
        printf("model:      %s\n", path);
        printf("producer:   %s %s (IR version %lld)\n", info.producer_name[0] ? info.producer_name : "(unknown)",
               info.producer_version, (long long)info.ir_version);
        printf("opsets:    ");
        for (int i = 0; i < info.n_opsets; i++)
            printf(" %s %lld", info.opset_domains[i][0] ? info.opset_domains[i] : "ai.onnx",
                   (long long)info.opset_versions[i]);
        printf("\n");
        for (int i = 0; i < ferry_model_input_count(m); i++) {
            ferry_io_info io;
            ferry_model_input(m, i, &io);
            print_io_text("input", &io);
        }
        for (int i = 0; i < ferry_model_output_count(m); i++) {
            ferry_io_info io;
            ferry_model_output(m, i, &io);
            print_io_text("output", &io);
        }
        printf("parameters: %lld (%.2f MiB)\n", (long long)info.n_parameters,
               (double)info.parameter_bytes / (1024.0 * 1024.0));
        if (flops >= 1e9) printf("FLOPs:      %.3f GFLOP per inference at batch 1\n", flops / 1e9);
        else if (flops >= 1e6) printf("FLOPs:      %.3f MFLOP per inference at batch 1\n", flops / 1e6);
        else if (flops >= 0) printf("FLOPs:      %.0f per inference at batch 1\n", flops);
        else printf("FLOPs:      unknown (%s)\n", why);
        printf("nodes:      %lld\nops:       ", (long long)info.n_nodes);
        for (int i = 0; i < ops.n; i++) printf(" %s %lld%s", ops.names[i], (long long)ops.counts[i], i + 1 < ops.n ? "," : "");
        printf("\n");
        if (missing) {
            printf("supported:  no, ferry has no kernel for:\n  ");
            for (const char *p = missing; *p; p++) *p == '\n' ? fputs("\n  ", stdout) : putchar(*p);
            printf("\n");
        }
        else printf("supported:  yes (every op has a kernel)\n");
    }
    for (int i = 0; i < ops.n; i++) free(ops.names[i]);
    free(ops.names), free(ops.counts);
    ferry_model_free(m);
    return missing ? EXIT_CHECK : EXIT_OK;
}
