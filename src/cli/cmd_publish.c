/* cmd_publish.c — `ferry publish MODEL --repo DIR --name NAME`: copy a model into the repository
 * as a new immutable version with a manifest (the step CI runs after the gates pass). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/registry.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry publish MODEL --repo DIR --name NAME [--version N] [--label L]\n"
            "                     [--report JSON] [--reason TEXT] [--quiet]\n\n"
            "Copies MODEL (and its external-data files) into DIR/NAME/N/ atomically: the version\n"
            "is built in a temporary directory, fsynced and renamed into place, so it either\n"
            "appears complete or not at all. DIR/NAME/N/manifest.json records the sha256 and\n"
            "size of every file, the creation time (UTC), the git commit and dirty flag when\n"
            "published from a git work tree, and the \"metrics\" and \"profile\" of a\n"
            "`ferry validate --report-json` report given with --report.\n\n"
            "  --version N    publish as version N (default: highest existing + 1)\n"
            "  --label L      also point label L (e.g. canary) at the new version\n"
            "  --reason TEXT  recorded in DIR/NAME/history.jsonl with time, user and host\n"
            "  --quiet        print only the version number (for scripts)\n\n"
            "Versions are immutable: publishing an existing version is refused. Concurrent\n"
            "publishes of the same NAME are serialized by a lock on DIR/NAME/.lock.\n"
            "Exit code 0 published, 1 refused (the version exists), 2 bad usage or input,\n"
            "3 internal error.\n");
}

/* True for the options that take a value (so a missing value gets its own message). */
static int takes_value(const char *a)
{
    static const char *const opts[] = {"--repo",   "--name",   "--label",
                                       "--report", "--reason", "--version"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(a, opts[i])) return 1;
    return 0;
}

int cmd_publish(int argc, char **argv)
{
    ferry_publish_options o = {0};
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!next && takes_value(a)) {
            fprintf(stderr, "ferry publish: %s needs a value\n", a);
            return EXIT_USAGE;
        } else if (!strcmp(a, "--repo")) {
            o.repo = argv[++i];
        } else if (!strcmp(a, "--name")) {
            o.name = argv[++i];
        } else if (!strcmp(a, "--label")) {
            o.label = argv[++i];
        } else if (!strcmp(a, "--report")) {
            o.report = argv[++i];
        } else if (!strcmp(a, "--reason")) {
            o.reason = argv[++i];
        } else if (!strcmp(a, "--version")) {
            int v = cli_parse_int(argv[++i]);
            if (v <= 0) {
                fprintf(stderr, "ferry publish: --version must be a positive integer\n");
                return EXIT_USAGE;
            }
            o.version = v;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry publish: unknown option %s (see --help)\n", a);
            return EXIT_USAGE;
        } else if (!o.model) {
            o.model = a;
        } else {
            fprintf(stderr, "ferry publish: more than one MODEL given\n");
            return EXIT_USAGE;
        }
    }
    if (!o.model || !o.repo || !o.name) {
        help(stderr);
        return EXIT_USAGE;
    }
    int64_t version = 0;
    int refused = 0;
    ferry_status rc = ferry_repo_publish(&o, &version, &refused);
    if (rc != FERRY_OK) {
        if (refused) {
            fprintf(stderr, "ferry publish: refused: %s\n", ferry_last_error());
            return EXIT_CHECK;
        }
        return cli_fail("publish", o.model, rc);
    }
    if (quiet)
        printf("%lld\n", (long long)version);
    else {
        printf("published %s version %lld to %s/%s/%lld\n", o.name, (long long)version, o.repo,
               o.name, (long long)version);
        if (o.label) printf("label %s -> %lld\n", o.label, (long long)version);
    }
    return EXIT_OK;
}
