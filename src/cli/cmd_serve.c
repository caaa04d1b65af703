/* cmd_serve.c — `ferry serve`: parse the command line into ferry_serve_options and run the
 * inference server (include/ferry/serve.h) until SIGTERM. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "ferry/serve.h"

#define BUNDLED_REPO "examples/repository"

static void help(FILE *f)
{
    fprintf(f, "usage: ferry serve [--repo DIR] [--host ADDR] [--port N] [--threads N]\n"
               "                   [--config FILE] [--log-level debug|info|warn|error]\n"
               "                   [--max-body-mb N] [--poll-seconds S] [--session-threads N]\n\n"
               "Serves the ONNX models of a repository (DIR/NAME/N/model.onnx, optional\n"
               "DIR/NAME/config.json) over HTTP: KServe v2 (/v2/...), TF Serving (/v1/...) and\n"
               "Prometheus metrics (/metrics). Without --repo it serves the bundled example\n"
               "repository ./" BUNDLED_REPO " (run it from ferry's source tree).\n\n"
               "  --host ADDR          address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
               "  --port N             port (default 8000)\n"
               "  --threads N          HTTP threads (default: one per core)\n"
               "  --config FILE        JSON with any of repo, host, port, threads, log_level,\n"
               "                       max_body_mb, poll_seconds, session_threads (flags win)\n"
               "  --log-level L        JSON log lines on stderr at L and above (default info;\n"
               "                       debug adds one line per request)\n"
               "  --max-body-mb N      larger request bodies get 413 (default 64)\n"
               "  --poll-seconds S     rescan the repository every S seconds (default 2; 0 = only\n"
               "                       on SIGHUP)\n"
               "  --session-threads N  threads per model run (default: ferry's)\n\n"
               "SIGHUP rescans the repository; SIGTERM or SIGINT stops accepting connections,\n"
               "finishes the requests in flight and exits 0. See docs/serving.md.\n"
               "Exit code 0 after a clean stop, 2 on bad usage or an unusable repository or port,\n"
               "3 on an internal error.\n");
}

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ferry serve: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(ferry serve --help for usage)\n");
    return EXIT_USAGE;
}

static int parse_positive_double(const char *s, double *out)
{
    char *end;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (*end || !(v >= 0) || v > 1e6) return -1;
    *out = v;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    ferry_serve_options o = {0};
    int poll_zero = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        }
        if (a[0] != '-' || a[1] != '-') return usage_error("unexpected argument \"%s\"", a);
        if (!v) return usage_error("%s needs a value", a);
        i++;
        if (strcmp(a, "--repo") == 0) {
            o.repo = v;
        } else if (strcmp(a, "--host") == 0) {
            o.host = v;
        } else if (strcmp(a, "--config") == 0) {
            o.config = v;
        } else if (strcmp(a, "--log-level") == 0) {
            if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error"))
                return usage_error("--log-level must be debug, info, warn or error, not \"%s\"", v);
            o.log_level = v;
        } else if (strcmp(a, "--port") == 0) {
            if ((o.port = cli_parse_int(v)) < 1 || o.port > 65535)
                return usage_error("--port must be 1..65535, not \"%s\"", v);
        } else if (strcmp(a, "--threads") == 0) {
            if ((o.threads = cli_parse_int(v)) < 1 || o.threads > 256)
                return usage_error("--threads must be 1..256, not \"%s\"", v);
        } else if (strcmp(a, "--session-threads") == 0) {
            if ((o.session_threads = cli_parse_int(v)) < 0)
                return usage_error("--session-threads must be a non-negative integer, not \"%s\"",
                                   v);
        } else if (strcmp(a, "--max-body-mb") == 0) {
            if (parse_positive_double(v, &o.max_body_mb) || o.max_body_mb <= 0 ||
                o.max_body_mb > 4096)
                return usage_error("--max-body-mb must be a number in (0, 4096], not \"%s\"", v);
        } else if (strcmp(a, "--poll-seconds") == 0) {
            if (parse_positive_double(v, &o.poll_seconds))
                return usage_error("--poll-seconds must be a non-negative number, not \"%s\"", v);
            poll_zero = o.poll_seconds == 0;
        } else {
            return usage_error("unknown option \"%s\"", a);
        }
    }
    /* 0 means "not set" in the options; polling off is spelled as a negative period there. */
    if (poll_zero) o.poll_seconds = -1;
    if (!o.repo) {
        /* The bundled repository stands in when neither --repo nor the config file names one. */
        struct stat st;
        if (stat(BUNDLED_REPO, &st) == 0 && S_ISDIR(st.st_mode))
            o.default_repo = BUNDLED_REPO;
        else if (!o.config)
            return usage_error("no --repo given and the bundled example repository ./" BUNDLED_REPO
                               " is not here (run from ferry's source tree, or pass --repo DIR)");
    }
    ferry_status rc = ferry_serve_run(&o);
    if (rc != FERRY_OK) return cli_fail("serve", "cannot serve", rc);
    return EXIT_OK;
}
