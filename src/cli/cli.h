/* cli.h — what the ferry subcommands share: the command table signature, exit codes, and a few
 * printing helpers. Subcommands use only the public API (include/ferry/ferry.h). */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stdio.h>

#include "ferry/ferry.h"

/* Exit codes (DESIGN.md): 0 ok, 1 a gate or check failed, 2 usage or input error, 3 internal. */
enum { EXIT_OK = 0, EXIT_CHECK = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

typedef int (*cli_command_fn)(int argc, char **argv);

#define COMMAND(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef COMMAND

/* Print "ferry <cmd>: <message>: <ferry_last_error()>" to stderr and return the exit code that
 * fits the status (2 for bad input, 3 for internal errors). */
int cli_fail(const char *cmd, const char *what, ferry_status rc);
/* True if arg is -h or --help. */
int cli_is_help(const char *arg);
/* Parse a positive int option value; returns -1 when invalid. */
int cli_parse_int(const char *s);
/* "float32[1,10]" */
void cli_print_type(FILE *f, ferry_dtype dtype, int rank, const int64_t *dims,
                    const char *const *dim_names);

#endif
