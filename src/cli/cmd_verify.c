/* cmd_verify.c — `ferry verify --repo DIR [NAME...]`: re-hash every version against its
 * manifest and fail listing each one that does not match (corruption, tampering, a version dir
 * that did not come from ferry publish). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry/registry.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: ferry verify --repo DIR [NAME...]\n\n"
            "Checks every version of every model in DIR (or only the NAMEs given): the manifest\n"
            "parses, lists model.onnx, and every file it lists has its size and sha256; files\n"
            "the manifest does not list are reported too. Temporary directories left by an\n"
            "interrupted publish (DIR/NAME/.tmp-*) are not versions and are ignored; the next\n"
            "publish removes them. Every label in DIR/NAME/labels.json must name an existing\n"
            "version.\n"
            "Exit code 0 everything verifies, 1 some version does not (each is listed),\n"
            "2 bad usage or no such repository/model, 3 internal error.\n");
}

int cmd_verify(int argc, char **argv)
{
    const char *repo = NULL;
    const char **names = calloc((size_t)argc, sizeof *names);
    int n_names = 0;
    if (!names) return EXIT_INTERNAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            help(stdout);
            free(names);
            return EXIT_OK;
        } else if (!strcmp(a, "--repo") && i + 1 < argc) {
            repo = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry verify: unknown option or missing value: %s\n", a);
            free(names);
            return EXIT_USAGE;
        } else {
            names[n_names++] = a;
        }
    }
    if (!repo) {
        help(stderr);
        free(names);
        return EXIT_USAGE;
    }
    char **all = NULL;
    int n_all = 0;
    if (n_names == 0) {
        ferry_status rc = ferry_repo_names(repo, &all, &n_all);
        if (rc != FERRY_OK) {
            free(names);
            return cli_fail("verify", repo, rc);
        }
    }
    const char *const *list = n_names ? names : (const char *const *)all;
    int n_list = n_names ? n_names : n_all;
    int versions = 0, bad = 0, code = EXIT_OK;
    for (int m = 0; m < n_list; m++) {
        ferry_repo_version *v = NULL;
        int n = 0;
        ferry_status rc = ferry_repo_versions(repo, list[m], &v, &n);
        if (rc != FERRY_OK) {
            code = cli_fail("verify", list[m], rc);
            continue;
        }
        for (int i = 0; i < n; i++) {
            versions++;
            if (v[i].verified) {
                printf("ok   %s/%lld\n", list[m], (long long)v[i].version);
            } else {
                bad++;
                printf("BAD  %s/%lld: %s\n", list[m], (long long)v[i].version, v[i].problem);
            }
        }
        ferry_repo_versions_free(v, n);
        if (ferry_repo_check_labels(repo, list[m]) != FERRY_OK) {
            bad++;
            printf("BAD  %s labels: %s\n", list[m], ferry_last_error());
        }
    }
    printf("%d version%s of %d model%s checked: ", versions, versions == 1 ? "" : "s", n_list,
           n_list == 1 ? "" : "s");
    if (bad)
        printf("%d problem%s (BAD above)\n", bad, bad == 1 ? "" : "s");
    else
        printf("all verify\n");
    for (int i = 0; i < n_all; i++)
        free(all[i]);
    free(all);
    free(names);
    if (code != EXIT_OK) return code;
    return bad ? EXIT_CHECK : EXIT_OK;
}
