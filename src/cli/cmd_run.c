/* cmd_run.c — `ferry run MODEL --input ...`: bind .npy/.pb files to graph inputs, run once,
 * print a short summary of every output and optionally write each as .npy. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry run MODEL [--input NAME=FILE]... [--input FILE]... [--output-dir DIR]\n"
            "                 [--threads N]\n\n"
            "Runs MODEL once. Inputs are .npy (NumPy) or .pb (ONNX TensorProto) files; an input\n"
            "given without NAME= binds to the next graph input in order. Prints each output's\n"
            "dtype, shape, first values and, for 1-D/2-D float outputs, the argmax. With\n"
            "--output-dir, writes DIR/<output name>.npy for every output (characters other than\n"
            "letters, digits, '_', '.' and '-' become '_').\n"
            "Exit code 0 on success, 2 on bad usage or input, 3 on an internal error.\n");
}

static double element(const ferry_value *t, int64_t i)
{
    const void *d = ferry_tensor_cdata(t);
    switch (ferry_tensor_dtype(t)) {
    case FERRY_DTYPE_F32: return ((const float *)d)[i];
    case FERRY_DTYPE_F64: return ((const double *)d)[i];
    case FERRY_DTYPE_I8: return ((const int8_t *)d)[i];
    case FERRY_DTYPE_U8: case FERRY_DTYPE_BOOL: return ((const uint8_t *)d)[i];
    case FERRY_DTYPE_I16: return ((const int16_t *)d)[i];
    case FERRY_DTYPE_U16: return ((const uint16_t *)d)[i];
    case FERRY_DTYPE_I32: return ((const int32_t *)d)[i];
    case FERRY_DTYPE_U32: return ((const uint32_t *)d)[i];
    case FERRY_DTYPE_I64: return (double)((const int64_t *)d)[i];
    case FERRY_DTYPE_U64: return (double)((const uint64_t *)d)[i];
    default: return 0;
    }
}

static void print_summary(const char *name, const ferry_value *v)
{
    printf("%s: ", name);
    if (ferry_value_get_kind(v) == FERRY_VALUE_SEQUENCE) {
        printf("sequence of %lld %s tensors\n", (long long)ferry_sequence_length(v),
               ferry_dtype_name(ferry_sequence_dtype(v)));
        return;
    }
    if (ferry_value_get_kind(v) == FERRY_VALUE_NONE) {
        printf("empty optional\n");
        return;
    }
    ferry_dtype dt = ferry_tensor_dtype(v);
    int rank = ferry_tensor_rank(v);
    const int64_t *dims = ferry_tensor_dims(v);
    cli_print_type(stdout, dt, rank, dims, NULL);
    int64_t n = ferry_tensor_count(v), show = n < 8 ? n : 8;
    printf(" = [");
    for (int64_t i = 0; i < show; i++) {
        if (dt == FERRY_DTYPE_STRING) printf("%s\"%.40s\"", i ? ", " : "", ((char *const *)ferry_tensor_cdata(v))[i]);
        else if (dt == FERRY_DTYPE_F16 || dt == FERRY_DTYPE_BF16) printf("%s<16-bit float>", i ? ", " : "");
        else printf("%s%.6g", i ? ", " : "", element(v, i));
    }
    printf("%s]\n", n > show ? ", ..." : "");
    if ((dt == FERRY_DTYPE_F32 || dt == FERRY_DTYPE_F64) && (rank == 1 || rank == 2) && n > 0) {
        int64_t rows = rank == 2 ? dims[0] : 1, cols = rank == 2 ? dims[1] : dims[0];
        if (cols == 0) return;
        printf("  argmax:");
        for (int64_t r = 0; r < rows && r < 16; r++) {
            int64_t best = 0;
            for (int64_t c = 1; c < cols; c++)
                if (element(v, r * cols + c) > element(v, r * cols + best)) best = c;
            printf(" %lld", (long long)best);
        }
        printf("%s\n", rows > 16 ? " ..." : "");
    }
}

static void safe_name(const char *name, char *out, size_t size)
{
    size_t i = 0;
    for (; name[i] && i + 1 < size; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
    if (!out[0] || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) snprintf(out, size, "output_");
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *out_dir = NULL;
    int threads = 0, n_specs = 0, rc_exit = EXIT_OK;
    const char **specs = calloc(argc + 1, sizeof *specs);
    ferry_model *m = NULL;
    ferry_session *s = NULL;
    ferry_value **in = NULL, **out = NULL;
    const char **names = NULL;
    int n_in = 0, n_out = 0;
    if (!specs) return EXIT_INTERNAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            help(stdout);
            free(specs);
            return EXIT_OK;
        } else if (strcmp(a, "--input") == 0 && i + 1 < argc) {
            specs[n_specs++] = argv[++i];
        } else if (strcmp(a, "--output-dir") == 0 && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            if ((threads = cli_parse_int(argv[++i])) < 0) {
                fprintf(stderr, "ferry run: --threads needs a non-negative integer\n");
                free(specs);
                return EXIT_USAGE;
            }
        } else if (a[0] == '-' || model_path) {
            fprintf(stderr, "ferry run: unexpected argument \"%s\"\n", a);
            help(stderr);
            free(specs);
            return EXIT_USAGE;
        } else {
            model_path = a;
        }
    }
    if (!model_path) {
        help(stderr);
        free(specs);
        return EXIT_USAGE;
    }
    ferry_status rc = ferry_model_load(model_path, &m);
    if (rc != FERRY_OK) {
        rc_exit = cli_fail("run", "cannot load model", rc);
        goto out;
    }
    int model_inputs = ferry_model_input_count(m);
    n_out = ferry_model_output_count(m);
    in = calloc(n_specs + 1, sizeof *in);
    out = calloc(n_out + 1, sizeof *out);
    names = calloc(n_specs + 1, sizeof *names);
    if (!in || !out || !names) {
        rc_exit = EXIT_INTERNAL;
        goto out;
    }
    int next_positional = 0;
    for (int i = 0; i < n_specs; i++) {
        const char *spec = specs[i], *eq = strchr(spec, '='), *path = spec, *name = NULL;
        if (eq) { /* NAME=FILE when NAME is one of the graph inputs */
            for (int j = 0; j < model_inputs; j++) {
                ferry_io_info io;
                ferry_model_input(m, j, &io);
                if (strlen(io.name) == (size_t)(eq - spec) && strncmp(io.name, spec, eq - spec) == 0) {
                    name = io.name;
                    path = eq + 1;
                }
            }
            const char *slash = strchr(spec, '/');
            if (!name && (!slash || slash > eq)) {
                fprintf(stderr, "ferry run: the model has no input named \"%.*s\"\n", (int)(eq - spec), spec);
                rc_exit = EXIT_USAGE;
                goto out;
            }
        }
        if (!name) {
            if (next_positional >= model_inputs) {
                fprintf(stderr, "ferry run: %s: the model has only %d inputs\n", path, model_inputs);
                rc_exit = EXIT_USAGE;
                goto out;
            }
            ferry_io_info io;
            ferry_model_input(m, next_positional++, &io);
            name = io.name;
        }
        if ((rc = ferry_tensor_load(path, &in[n_in])) != FERRY_OK) {
            rc_exit = cli_fail("run", "cannot read input", rc);
            goto out;
        }
        names[n_in++] = name;
    }
    if ((rc = ferry_session_create(m, &(ferry_session_options){.threads = threads}, &s)) != FERRY_OK ||
        (rc = ferry_session_run(s, n_in, names, in, out)) != FERRY_OK) {
        rc_exit = cli_fail("run", "inference failed", rc);
        goto out;
    }
    if (out_dir && mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "ferry run: cannot create %s: %s\n", out_dir, strerror(errno));
        rc_exit = EXIT_USAGE;
        goto out;
    }
    for (int i = 0; i < n_out; i++) {
        ferry_io_info io;
        ferry_model_output(m, i, &io);
        print_summary(io.name, out[i]);
        if (!out_dir) continue;
        char file[512], path[4096];
        safe_name(io.name, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s.npy", out_dir, file);
        if ((rc = ferry_tensor_save_npy(out[i], path)) != FERRY_OK) {
            rc_exit = cli_fail("run", "cannot write output", rc);
            goto out;
        }
        printf("  wrote %s\n", path);
    }
out:
    for (int i = 0; in && i < n_in; i++) ferry_value_free(in[i]);
    for (int i = 0; out && i < n_out; i++) ferry_value_free(out[i]);
    free(in), free(out), free(names), free(specs);
    ferry_session_free(s);
    ferry_model_free(m);
    return rc_exit;
}
