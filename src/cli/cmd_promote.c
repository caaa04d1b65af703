/* cmd_promote.c — `ferry promote NAME VERSION --repo DIR`: point a label (stable by default) at
 * a verified version; ferry serve routes the label's traffic there without a restart. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/registry.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry promote NAME VERSION --repo DIR [--label L] [--reason TEXT]\n"
            "                     [--canary-weight W]\n\n"
            "Points label L (default: stable) of DIR/NAME at VERSION. The version must exist\n"
            "and every hash in its manifest must match. DIR/NAME/labels.json is replaced\n"
            "atomically under the model's lock, and the change is appended to\n"
            "DIR/NAME/history.jsonl (time, user, host, previous version, reason), which is what\n"
            "`ferry rollback` reads. A running `ferry serve` picks the new label up by itself.\n"
            "--canary-weight W (0..1) points the canary label at VERSION and sets the share of\n"
            "unlabelled requests ferry serve sends it, in one change; W = 0 stops the canary's\n"
            "traffic (promote the canary's current version again with W = 0).\n"
            "Exit code 0 promoted, 1 refused (no such version, or it does not verify),\n"
            "2 bad usage or input, 3 internal error.\n");
}

/* True for the options that take a value (so a missing value gets its own message). */
static int takes_value(const char *a)
{
    static const char *const opts[] = {"--repo", "--label", "--reason", "--canary-weight"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(a, opts[i])) return 1;
    return 0;
}

int cmd_promote(int argc, char **argv)
{
    const char *repo = NULL, *label = NULL, *reason = NULL, *name = NULL, *ver = NULL;
    double weight = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        } else if (i + 1 >= argc && takes_value(a)) {
            fprintf(stderr, "ferry promote: %s needs a value\n", a);
            return EXIT_USAGE;
        } else if (!strcmp(a, "--repo")) {
            repo = argv[++i];
        } else if (!strcmp(a, "--label")) {
            label = argv[++i];
        } else if (!strcmp(a, "--reason")) {
            reason = argv[++i];
        } else if (!strcmp(a, "--canary-weight")) {
            char *end;
            weight = strtod(argv[++i], &end);
            if (!*argv[i] || *end || !(weight >= 0 && weight <= 1)) {
                fprintf(stderr, "ferry promote: --canary-weight must be a number in [0, 1]\n");
                return EXIT_USAGE;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry promote: unknown option %s (see --help)\n", a);
            return EXIT_USAGE;
        } else if (!name) {
            name = a;
        } else if (!ver) {
            ver = a;
        } else {
            fprintf(stderr, "ferry promote: unexpected argument %s\n", a);
            return EXIT_USAGE;
        }
    }
    if (!repo || !name || !ver) {
        help(stderr);
        return EXIT_USAGE;
    }
    int v = cli_parse_int(ver);
    if (v <= 0) {
        fprintf(stderr, "ferry promote: VERSION must be a positive integer, not \"%s\"\n", ver);
        return EXIT_USAGE;
    }
    if (weight >= 0 && label && strcmp(label, "canary") != 0) {
        fprintf(stderr, "ferry promote: --canary-weight moves the canary label, not \"%s\"\n",
                label);
        return EXIT_USAGE;
    }
    if (!label) label = weight >= 0 ? "canary" : "stable";
    int64_t previous = 0;
    int refused = 0;
    ferry_status rc =
        weight >= 0 ? ferry_repo_promote_canary(repo, name, v, weight, reason, &previous, &refused)
                    : ferry_repo_promote(repo, name, v, label, reason, &previous, &refused);
    if (rc != FERRY_OK) {
        if (refused) {
            fprintf(stderr, "ferry promote: refused: %s\n", ferry_last_error());
            return EXIT_CHECK;
        }
        return cli_fail("promote", name, rc);
    }
    if (previous)
        printf("%s: label %s %lld -> %d", name, label, (long long)previous, v);
    else
        printf("%s: label %s -> %d (new label)", name, label, v);
    if (weight >= 0) printf(", canary_weight %g", weight);
    printf("\n");
    return EXIT_OK;
}
