/* cmd_optimize.c — `ferry optimize MODEL -o OUT [options]`: graph passes, float16, pruning
 * (and int8) written back as standard ONNX, with a report of what it cost. The work is
 * ferry_optimize (include/ferry/optimize.h); this file parses options and prints a summary. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/optimize.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry optimize MODEL -o OUT [--level basic|extended|all|none] [--fp16]\n"
            "                      [--keep-fp32 OP,NAME,...] [--prune SPARSITY [--structured]\n"
            "                      [--per-layer]] [--external-data] [--report FILE.md|FILE.json]\n"
            "                      [--eval DATA [--labels LABELS] [--eval-limit N]\n"
            "                      [--input-scale S] [--input-mean M]]\n"
            "                      [--bench-batch N] [--bench-runs N]\n"
            "                      [--int8 dynamic|static [--calibration DATA.npy]\n"
            "                      [--calibrate minmax|percentile|entropy] [--reduce-range auto|on|off]\n"
            "                      [--per-channel|--per-tensor] [--keep-float NAME,...]\n"
            "                      [--accuracy-budget POINTS --eval DATA --labels LABELS]]\n\n"
            "Rewrites MODEL and writes OUT as a standard ONNX file (ONNX Runtime runs it too).\n"
            "  --level L        graph passes, as ONNX Runtime names them (default extended):\n"
            "                   basic: constant folding, Identity/Dropout removal, shape folding;\n"
            "                   extended: + Conv+BatchNorm, Conv+Add, Conv/Gemm+activation\n"
            "                   (com.microsoft FusedConv/FusedGemm), MatMul+Add -> Gemm;\n"
            "                   all: + LayerNormalization and GELU fusion; none: as read\n"
            "  --fp16           weights and compute in float16; inputs/outputs stay float32\n"
            "  --keep-fp32 L    op types or node names kept in float32 (replaces the automatic\n"
            "                   list: Softmax, LayerNorm, Exp/Log/Pow, reductions, Resize)\n"
            "  --prune S        magnitude-prune Conv/Gemm/MatMul weights to sparsity S (0..1);\n"
            "                   one global threshold unless --per-layer; --structured prunes\n"
            "                   whole output channels by RMS. Zeros are stored densely.\n"
            "  --external-data  weights in OUT.data beside OUT (automatic above 2 GB)\n"
            "  --report F       .md or .json: sizes, latency, accuracy, per-layer details\n"
            "  --eval D         samples (.npy, .npz, IDX (.gz ok) or CSV; first axis = samples):\n"
            "                   top-1 agreement and output error vs the original; with\n"
            "                   --labels L (same formats) also accuracy before/after\n"
            "  --input-scale S, --input-mean M  samples become (x - M) * S (default: uint8\n"
            "                   data into a float input is scaled by 1/255)\n"
            "  --bench-batch N  batch size of the latency comparison (default 1)\n"
            "  --bench-runs N   timed runs per model, alternating (default 20; 0: no timing)\n"
            "  --int8 M         int8 weights: dynamic (MatMul/Gemm, activations quantized at run\n"
            "                   time) or static (QDQ: Conv/Gemm/MatMul, activations calibrated)\n"
            "  --calibration D  static: calibration samples (.npy like --eval; first 1000 used,\n"
            "                   --calib-limit N to change)\n"
            "  --calibrate C    activation ranges: minmax (default), percentile (99.99, see\n"
            "                   --percentile P) or entropy (KL divergence, as TensorRT)\n"
            "  --reduce-range R 7-bit weights: auto (default: on when the CPU lacks VNNI), on, off\n"
            "  --per-tensor     one weight scale per tensor (default: per output channel)\n"
            "  --keep-float L   layers (node names) kept in float32\n"
            "  --accuracy-budget X  accuracy-aware search: fall back the most harmful layers to\n"
            "                   float32 until top-1 on --eval/--labels drops at most X points\n"
            "Exit code 0 on success, 2 on bad usage or input, 3 on an internal error.\n");
}

static int parse_level(const char *s, ferry_opt_level *out)
{
    static const char *const names[] = {"none", "basic", "extended", "all"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (ferry_opt_level)i;
            return 1;
        }
    return 0;
}

static int usage(const char *msg, const char *arg)
{
    fprintf(stderr, "ferry optimize: %s%s%s\n(see ferry optimize --help)\n", msg, arg ? ": " : "",
            arg ? arg : "");
    return EXIT_USAGE;
}

static void print_summary(const char *out, const ferry_optimize_summary *s)
{
    printf("wrote %s\n", out);
    printf("  file:       %lld -> %lld bytes (%.3fx)\n", (long long)s->in_file_bytes,
           (long long)s->out_file_bytes,
           s->in_file_bytes ? (double)s->out_file_bytes / (double)s->in_file_bytes : 0.0);
    printf("  parameters: %lld -> %lld bytes\n", (long long)s->in_param_bytes, (long long)s->out_param_bytes);
    printf("  nodes:      %lld -> %lld\n", (long long)s->in_nodes, (long long)s->out_nodes);
    if (s->in_latency_ms > 0)
        printf("  latency:    %.3f -> %.3f ms (median, ferry, %.3fx)\n", s->in_latency_ms,
               s->out_latency_ms, s->out_latency_ms / s->in_latency_ms);
    if (s->max_rel_error >= 0) printf("  max output difference: %.3g (relative)\n", s->max_rel_error);
    if (s->agreement >= 0) printf("  top-1 agreement: %.2f%%\n", 100 * s->agreement);
    if (s->in_accuracy >= 0)
        printf("  accuracy:   %.2f%% -> %.2f%%\n", 100 * s->in_accuracy, 100 * s->out_accuracy);
}

int cmd_optimize(int argc, char **argv)
{
    ferry_optimize_options o;
    ferry_optimize_options_init(&o);
    o.progress = isatty(fileno(stderr));
    const char *model = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        }
#define NEED_VALUE()                                                                               \
    if (!v) return usage("missing value after", a);                                                \
    i++
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEED_VALUE();
            out = v;
        } else if (!strcmp(a, "--level")) {
            NEED_VALUE();
            if (!parse_level(v, &o.level)) return usage("--level must be none, basic, extended or all", v);
        } else if (!strcmp(a, "--fp16")) {
            o.fp16 = 1;
        } else if (!strcmp(a, "--keep-fp32")) {
            NEED_VALUE();
            o.keep_fp32 = v;
        } else if (!strcmp(a, "--prune")) {
            NEED_VALUE();
            char *end;
            o.prune = strtod(v, &end);
            if (*end || !(o.prune > 0 && o.prune < 1)) return usage("--prune takes a sparsity between 0 and 1", v);
        } else if (!strcmp(a, "--structured")) {
            o.prune_structured = 1;
        } else if (!strcmp(a, "--per-layer")) {
            o.prune_per_layer = 1;
        } else if (!strcmp(a, "--external-data")) {
            o.external_data = 1;
        } else if (!strcmp(a, "--report")) {
            NEED_VALUE();
            size_t n = strlen(v);
            if (!(n > 3 && !strcmp(v + n - 3, ".md")) && !(n > 5 && !strcmp(v + n - 5, ".json")))
                return usage("--report must name a .md or .json file", v);
            o.report_path = v;
        } else if (!strcmp(a, "--eval")) {
            NEED_VALUE();
            o.eval_data = v;
        } else if (!strcmp(a, "--labels")) {
            NEED_VALUE();
            o.eval_labels = v;
        } else if (!strcmp(a, "--input-scale") || !strcmp(a, "--input-mean")) {
            NEED_VALUE();
            char *end;
            double x = strtod(v, &end);
            if (*end || !*v || x != x) return usage("expected a number", v);
            if (a[8] == 's') {
                if (x == 0) return usage("--input-scale must not be 0", v);
                o.eval_scale = x;
            } else {
                o.eval_mean = x;
            }
        } else if (!strcmp(a, "--eval-limit")) {
            NEED_VALUE();
            if ((o.eval_limit = cli_parse_int(v)) <= 0) return usage("--eval-limit takes a positive count", v);
        } else if (!strcmp(a, "--bench-batch")) {
            NEED_VALUE();
            if ((o.bench_batch = cli_parse_int(v)) <= 0) return usage("--bench-batch takes a positive count", v);
        } else if (!strcmp(a, "--bench-runs")) {
            NEED_VALUE();
            char *end;
            long r = strtol(v, &end, 10);
            if (*end || r < 0 || r > 100000) return usage("--bench-runs takes a count from 0", v);
            o.bench_runs = (int)r;
        } else if (!strcmp(a, "--int8")) {
            NEED_VALUE();
            if (!strcmp(v, "dynamic")) o.int8 = FERRY_INT8_DYNAMIC;
            else if (!strcmp(v, "static")) o.int8 = FERRY_INT8_STATIC;
            else return usage("--int8 must be dynamic or static", v);
        } else if (!strcmp(a, "--calibration")) {
            NEED_VALUE();
            o.calibration = v;
        } else if (!strcmp(a, "--calib-limit")) {
            NEED_VALUE();
            if ((o.calib_limit = cli_parse_int(v)) <= 0) return usage("--calib-limit takes a positive count", v);
        } else if (!strcmp(a, "--calibrate")) {
            NEED_VALUE();
            if (!strcmp(v, "minmax")) o.calibrate = FERRY_CALIB_MINMAX;
            else if (!strcmp(v, "percentile")) o.calibrate = FERRY_CALIB_PERCENTILE;
            else if (!strcmp(v, "entropy")) o.calibrate = FERRY_CALIB_ENTROPY;
            else return usage("--calibrate must be minmax, percentile or entropy", v);
        } else if (!strcmp(a, "--percentile")) {
            NEED_VALUE();
            char *end;
            o.percentile = strtod(v, &end);
            if (*end || !(o.percentile > 50 && o.percentile <= 100))
                return usage("--percentile takes a value in (50, 100]", v);
        } else if (!strcmp(a, "--reduce-range")) {
            NEED_VALUE();
            if (!strcmp(v, "auto")) o.reduce_range = -1;
            else if (!strcmp(v, "on")) o.reduce_range = 1;
            else if (!strcmp(v, "off")) o.reduce_range = 0;
            else return usage("--reduce-range must be auto, on or off", v);
        } else if (!strcmp(a, "--per-channel")) {
            o.per_channel = 1;
        } else if (!strcmp(a, "--per-tensor")) {
            o.per_channel = 0;
        } else if (!strcmp(a, "--keep-float")) {
            NEED_VALUE();
            o.int8_keep_float = v;
        } else if (!strcmp(a, "--accuracy-budget")) {
            NEED_VALUE();
            char *end;
            o.accuracy_budget = strtod(v, &end);
            if (*end || !(o.accuracy_budget >= 0 && o.accuracy_budget <= 100))
                return usage("--accuracy-budget takes points of accuracy from 0 to 100", v);
        } else if (a[0] == '-' && a[1]) {
            return usage("unknown option", a);
        } else if (!model) {
            model = a;
        } else {
            return usage("more than one model given", a);
        }
#undef NEED_VALUE
    }
    if (!model) return usage("no model given", NULL);
    if (!out) return usage("no output given (-o OUT)", NULL);
    if ((o.prune_structured || o.prune_per_layer) && o.prune == 0)
        return usage("--structured and --per-layer need --prune", NULL);
    if (o.eval_labels && !o.eval_data) return usage("--labels needs --eval", NULL);
    if (o.int8 == FERRY_INT8_STATIC && !o.calibration)
        return usage("--int8 static needs --calibration DATA", NULL);
    if (!o.int8 && (o.calibration || o.accuracy_budget >= 0 || o.int8_keep_float))
        return usage("--calibration, --keep-float and --accuracy-budget need --int8", NULL);
    if (o.accuracy_budget >= 0 && (!o.eval_data || !o.eval_labels))
        return usage("--accuracy-budget needs --eval DATA and --labels LABELS", NULL);
    if (o.int8 && o.fp16) return usage("--int8 and --fp16 do not combine", NULL);
    ferry_optimize_summary s;
    ferry_status rc = ferry_optimize(model, out, &o, &s);
    if (rc != FERRY_OK) return cli_fail("optimize", model, rc);
    print_summary(out, &s);
    if (o.report_path) printf("  report:     %s\n", o.report_path);
    return EXIT_OK;
}
