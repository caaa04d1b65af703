/* cmd_validate.c — `ferry validate MODEL --data DATA`: metrics on a labelled set, gates against
 * thresholds and a baseline, the signature check, and the Markdown / JSON / HTML reports. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/validate.h"

#define MAX_GATES 64

static void help(FILE *f)
{
    fprintf(
        f, "usage: ferry validate MODEL --data DATA [--labels LABELS]\n"
           "                      [--task classification|regression] [--baseline "
           "MODEL|REPO/NAME@LABEL]\n"
           "                      [--gate EXPR]... [--batch N] [--latency-runs N] [--threads N]\n"
           "                      [--limit N] [--input-scale S] [--input-mean M] [--output NAME]\n"
           "                      [--label-column COL] [--class-names LIST|FILE]\n"
           "                      [--report-md F] [--report-json F] [--report-html F]\n"
           "                      [--predictions-out F.npy] [--quiet]\n\n"
           "Evaluates MODEL on a labelled dataset and checks quality gates.\n\n"
           "DATA: .npy, .npz (FILE.npz:ARRAY picks an array), IDX as in MNIST (.gz ok) or a\n"
           "numeric .csv (--label-column names the label column). LABELS: the same formats;\n"
           "without --labels, the CSV label column or the .npz's y/labels array is used.\n"
           "Samples are fitted to the model input: y = (x - M) * S (default S: 1/255 for uint8\n"
           "data going into a float input, else 1), converted to the input's dtype and reshaped\n"
           "when the values per sample match ([N,28,28] fits [N,784] and [N,1,28,28]).\n\n"
           "Metrics: classification: accuracy, top5_accuracy, precision_macro, recall_macro,\n"
           "f1_macro, log_loss (softmax is applied unless the outputs already are probabilities),\n"
           "per class, confusion matrix; regression: mae, mse, rmse, r2; both: latency_p50_ms,\n"
           "latency_p95_ms, latency_p99_ms, latency_mean_ms (batch 1, --latency-runs, default\n"
           "200), throughput_per_s (batch --batch, default 64), size_mb, peak_rss_mb; with a\n"
           "baseline: agreement, max_abs_diff, mean_abs_diff.\n\n"
           "Gates (MLflow threshold semantics; every failure is listed):\n"
           "  accuracy>=0.88                 absolute threshold\n"
           "  f1_macro>=baseline-0.005       change against the baseline\n"
           "  latency_p95_ms<=baseline*1.1   relative change (also baseline+10%%)\n"
           "A gate on a metric this run did not compute fails with that reason.\n"
           "With --baseline, the candidate's inputs and outputs must be compatible with the\n"
           "baseline's (names, dtypes, shapes); otherwise it is a breaking change.\n\n"
           "--threads N: threads per model (default 1, 0 for one per core).\n"
           "--predictions-out: the candidate's probabilities (or regression outputs) as float64 "
           ".npy.\n\n"
           "Exit code 0 every gate passed, 1 a gate failed or the signature broke, 2 bad usage\n"
           "or input (including a malformed gate), 3 internal error.\n");
}

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ferry validate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(ferry validate --help for usage)\n");
    return EXIT_USAGE;
}

static int parse_double(const char *s, double *out)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end == '/' && end[1]) { /* "1/255" */
        char *e2;
        double d = strtod(end + 1, &e2);
        if (*e2 || d == 0) return 0;
        v /= d;
        end = e2;
    }
    if (*end || errno || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int write_report(const char *path, ferry_status (*fn)(const ferry_validation *, FILE *),
                        const ferry_validation *v)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "ferry validate: cannot create %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    ferry_status rc = fn(v, f);
    if (fclose(f) != 0 && rc == FERRY_OK) rc = FERRY_E_IO;
    if (rc != FERRY_OK) return cli_fail("validate", path, rc);
    return EXIT_OK;
}

int cmd_validate(int argc, char **argv)
{
    /* One thread per session unless asked: CI runners are shared, and OpenMP's spinning
     * threads crawl when cores are oversubscribed (10k Fashion-MNIST on a loaded 2-core
     * machine: 21 s with 2 threads, 2 s with 1). */
    ferry_validate_options o = {.threads = 1};
    const char *gates[MAX_GATES];
    const char *md = NULL, *js = NULL, *html = NULL, *pred = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (o.model) return usage("unexpected argument \"%s\" (one MODEL only)", a);
            o.model = a;
            continue;
        }
        if (!val) return usage("%s needs a value", a);
        i++;
        int n;
        if (strcmp(a, "--data") == 0)
            o.data = val;
        else if (strcmp(a, "--labels") == 0)
            o.labels = val;
        else if (strcmp(a, "--baseline") == 0)
            o.baseline = val;
        else if (strcmp(a, "--report-md") == 0)
            md = val;
        else if (strcmp(a, "--report-json") == 0)
            js = val;
        else if (strcmp(a, "--report-html") == 0)
            html = val;
        else if (strcmp(a, "--predictions-out") == 0)
            pred = val;
        else if (strcmp(a, "--output") == 0)
            o.output = val;
        else if (strcmp(a, "--label-column") == 0)
            o.label_column = val;
        else if (strcmp(a, "--class-names") == 0)
            o.class_names = val;
        else if (strcmp(a, "--task") == 0) {
            if (strcmp(val, "classification") == 0)
                o.task = FERRY_TASK_CLASSIFICATION;
            else if (strcmp(val, "regression") == 0)
                o.task = FERRY_TASK_REGRESSION;
            else
                return usage("--task is classification or regression, not \"%s\"", val);
        } else if (strcmp(a, "--gate") == 0) {
            if (o.n_gates == MAX_GATES) return usage("at most 64 gates%s", "");
            if (ferry_gate_check(val) != FERRY_OK) {
                fprintf(stderr, "ferry validate: %s\n", ferry_last_error());
                return EXIT_USAGE;
            }
            gates[o.n_gates++] = val;
        } else if (strcmp(a, "--input-scale") == 0) {
            if (!parse_double(val, &o.input_scale) || o.input_scale == 0)
                return usage(
                    "--input-scale needs a non-zero number such as 0.5 or 1/255, not \"%s\"", val);
        } else if (strcmp(a, "--input-mean") == 0) {
            if (!parse_double(val, &o.input_mean))
                return usage("--input-mean needs a number, not \"%s\"", val);
        } else if (strcmp(a, "--batch") == 0 || strcmp(a, "--latency-runs") == 0 ||
                   strcmp(a, "--threads") == 0 || strcmp(a, "--limit") == 0) {
            n = cli_parse_int(val);
            int zero_ok = strcmp(a, "--threads") == 0;
            if (n < 0 || (n == 0 && !zero_ok))
                return usage("expected a positive integer, not \"%s\"", val);
            if (strcmp(a, "--batch") == 0)
                o.batch = n;
            else if (strcmp(a, "--latency-runs") == 0)
                o.latency_runs = n;
            else if (strcmp(a, "--threads") == 0)
                o.threads = n;
            else
                o.limit = n;
        } else {
            return usage("unknown option \"%s\"", a);
        }
    }
    if (!o.model) return usage("a MODEL is required%s", "");
    if (!o.data) return usage("--data is required%s", "");
    o.gates = gates;

    ferry_validation *v;
    ferry_status rc = ferry_validate(&o, &v);
    if (rc != FERRY_OK) return cli_fail("validate", o.model, rc);
    int code = ferry_validation_passed(v) ? EXIT_OK : EXIT_CHECK;
    if (!quiet) ferry_validation_write_markdown(v, stdout);
    int wc = EXIT_OK;
    if (md && wc == EXIT_OK) wc = write_report(md, ferry_validation_write_markdown, v);
    if (js && wc == EXIT_OK) wc = write_report(js, ferry_validation_write_json, v);
    if (html && wc == EXIT_OK) wc = write_report(html, ferry_validation_write_html, v);
    if (pred && wc == EXIT_OK) {
        rc = ferry_validation_write_predictions(v, pred);
        if (rc != FERRY_OK) wc = cli_fail("validate", pred, rc);
    }
    int nf = ferry_validation_failure_count(v);
    for (int i = 0; i < nf; i++)
        fprintf(stderr, "ferry validate: %s\n", ferry_validation_failure(v, i));
    if (code == EXIT_OK && !quiet) fprintf(stderr, "ferry validate: passed\n");
    ferry_validation_free(v);
    return wc != EXIT_OK ? wc : code;
}
