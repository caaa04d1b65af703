/* main.c — the ferry command: a table of subcommands, dispatch, and the shared helpers. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} commands[] = {
#define COMMAND(name, fn, summary) {#name, fn, summary},
#include "commands.def"
#undef COMMAND
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'ferry <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (cli_is_help(argv[1])) {
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ferry: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *what, ferry_status rc)
{
    fprintf(stderr, "ferry %s: %s: %s\n", cmd, what, ferry_last_error());
    return rc == FERRY_E_INTERNAL || rc == FERRY_E_NOMEM ? EXIT_INTERNAL : EXIT_USAGE;
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_parse_int(const char *s)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || !*s || *end || v < 0 || v > 1000000000) return -1;
    return (int)v;
}

void cli_print_type(FILE *f, ferry_dtype dtype, int rank, const int64_t *dims,
                    const char *const *dim_names)
{
    fprintf(f, "%s", ferry_dtype_name(dtype));
    if (rank < 0) {
        fprintf(f, "[?]");
        return;
    }
    fprintf(f, "[");
    for (int i = 0; i < rank; i++) {
        if (i) fprintf(f, ",");
        if (dims[i] >= 0) fprintf(f, "%lld", (long long)dims[i]);
        else fprintf(f, "%s", dim_names && dim_names[i] ? dim_names[i] : "?");
    }
    fprintf(f, "]");
}
