/* cmd_versions.c — `ferry versions NAME --repo DIR`: every version of a model with its labels,
 * key metrics, size and whether its hashes still match, as a table or JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/registry.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry versions NAME --repo DIR [--json]\n\n"
            "Lists every version of DIR/NAME: created time, labels pointing at it, key metrics\n"
            "from its manifest (accuracy, f1_macro, latency p95), total size, and whether every\n"
            "hash in its manifest matches (\"ok\" or \"BAD\"). --json prints one object with a\n"
            "\"versions\" array (all metrics included) and the labels.\n"
            "Exit code 0 listed (even when some version is BAD; `ferry verify` fails on those),\n"
            "2 bad usage or no such model, 3 internal error.\n");
}

/* JSON string literal of s (quotes, backslashes and control characters escaped). */
static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isnan(v))
        printf("null");
    else
        printf("%.17g", v);
}

static void print_json(const char *name, const ferry_repo_version *v, int n, const char *labels)
{
    printf("{\"name\": ");
    json_str(name);
    printf(", \"labels\": %s, \"versions\": [", labels ? labels : "{}");
    for (int i = 0; i < n; i++) {
        printf("%s\n  {\"version\": %lld, \"created\": ", i ? "," : "", (long long)v[i].version);
        json_str(v[i].created);
        printf(", \"labels\": [");
        char copy[sizeof v[i].labels];
        snprintf(copy, sizeof copy, "%s", v[i].labels);
        int first = 1;
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            printf("%s", first ? "" : ", ");
            json_str(t);
            first = 0;
        }
        printf("], \"size\": %lld, \"verified\": %s, \"problem\": ", v[i].size,
               v[i].verified ? "true" : "false");
        if (v[i].verified)
            printf("null");
        else
            json_str(v[i].problem);
        printf(", \"git_commit\": ");
        if (v[i].git_commit[0])
            json_str(v[i].git_commit);
        else
            printf("null");
        printf(", \"dirty\": %s, \"accuracy\": ", v[i].git_dirty ? "true" : "false");
        json_num(v[i].accuracy);
        printf(", \"metrics\": %s}", v[i].metrics_json ? v[i].metrics_json : "null");
    }
    printf("%s]}\n", n ? "\n" : "");
}

static void print_metric(double v, double scale, const char *fmt)
{
    if (isnan(v))
        printf(" %9s", "-");
    else
        printf(fmt, v * scale);
}

static void print_table(const char *name, const ferry_repo_version *v, int n)
{
    if (n == 0) {
        printf("%s: no versions\n", name);
        return;
    }
    printf("%-8s %-21s %-16s %9s %9s %9s %10s %-5s %s\n", "VERSION", "CREATED", "LABELS",
           "ACCURACY", "F1_MACRO", "P95_MS", "SIZE", "HASH", "COMMIT");
    for (int i = 0; i < n; i++) {
        printf("%-8lld %-21s %-16s", (long long)v[i].version, v[i].created[0] ? v[i].created : "-",
               v[i].labels[0] ? v[i].labels : "-");
        print_metric(v[i].accuracy, 100, " %8.2f%%");
        print_metric(v[i].f1_macro, 1, " %9.4f");
        print_metric(v[i].latency_p95_ms, 1, " %9.3f");
        if (v[i].size < 0)
            printf(" %10s", "-");
        else if (v[i].size >= 10 << 20)
            printf(" %8.1fMB", v[i].size / 1048576.0);
        else
            printf(" %8.1fkB", v[i].size / 1024.0);
        printf(" %-5s %.12s%s\n", v[i].verified ? "ok" : "BAD",
               v[i].git_commit[0] ? v[i].git_commit : "-", v[i].git_dirty ? "+dirty" : "");
    }
    for (int i = 0; i < n; i++)
        if (!v[i].verified) printf("version %lld: %s\n", (long long)v[i].version, v[i].problem);
}

int cmd_versions(int argc, char **argv)
{
    const char *repo = NULL, *name = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--repo") && i + 1 < argc) {
            repo = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry versions: unknown option or missing value: %s\n", a);
            return EXIT_USAGE;
        } else if (!name) {
            name = a;
        } else {
            fprintf(stderr, "ferry versions: unexpected argument %s\n", a);
            return EXIT_USAGE;
        }
    }
    if (!repo || !name) {
        help(stderr);
        return EXIT_USAGE;
    }
    ferry_repo_version *v = NULL;
    int n = 0;
    ferry_status rc = ferry_repo_versions(repo, name, &v, &n);
    if (rc != FERRY_OK) return cli_fail("versions", name, rc);
    if (json) {
        char *labels = NULL;
        if (ferry_repo_labels_json(repo, name, &labels) != FERRY_OK) labels = NULL;
        print_json(name, v, n, labels);
        free(labels);
    } else {
        print_table(name, v, n);
    }
    ferry_repo_versions_free(v, n);
    return EXIT_OK;
}
