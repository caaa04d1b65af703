/* cmd_rollback.c — `ferry rollback NAME --repo DIR`: move a label back to the version that held
 * it before, as recorded in history.jsonl (the fast way out of a bad promotion). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/registry.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry rollback NAME --repo DIR [--label L] [--reason TEXT]\n\n"
            "Moves label L (default: stable) of DIR/NAME back to the version that held it before\n"
            "the current one, found by replaying DIR/NAME/history.jsonl (rolling back twice goes\n"
            "two promotions back). That version must still verify. The change is recorded in\n"
            "history.jsonl like a promotion.\n"
            "Exit code 0 rolled back, 1 refused (no earlier version held the label, or it no\n"
            "longer verifies), 2 bad usage or input, 3 internal error.\n");
}

/* True for the options that take a value (so a missing value gets its own message). */
static int takes_value(const char *a)
{
    static const char *const opts[] = {"--repo", "--label", "--reason"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(a, opts[i])) return 1;
    return 0;
}

int cmd_rollback(int argc, char **argv)
{
    const char *repo = NULL, *label = "stable", *reason = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            help(stdout);
            return EXIT_OK;
        } else if (i + 1 >= argc && takes_value(a)) {
            fprintf(stderr, "ferry rollback: %s needs a value\n", a);
            return EXIT_USAGE;
        } else if (!strcmp(a, "--repo")) {
            repo = argv[++i];
        } else if (!strcmp(a, "--label")) {
            label = argv[++i];
        } else if (!strcmp(a, "--reason")) {
            reason = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry rollback: unknown option %s (see --help)\n", a);
            return EXIT_USAGE;
        } else if (!name) {
            name = a;
        } else {
            fprintf(stderr, "ferry rollback: unexpected argument %s\n", a);
            return EXIT_USAGE;
        }
    }
    if (!repo || !name) {
        help(stderr);
        return EXIT_USAGE;
    }
    int64_t from = 0, to = 0;
    int refused = 0;
    ferry_status rc = ferry_repo_rollback(repo, name, label, reason, &from, &to, &refused);
    if (rc != FERRY_OK) {
        if (refused) {
            fprintf(stderr, "ferry rollback: refused: %s\n", ferry_last_error());
            return EXIT_CHECK;
        }
        return cli_fail("rollback", name, rc);
    }
    printf("%s: label %s rolled back %lld -> %lld\n", name, label, (long long)from, (long long)to);
    return EXIT_OK;
}
