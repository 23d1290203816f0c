/*
 * cli_util.h - shared helpers for the CLI commands: argument parsing, output, exit codes.
 */
#ifndef BP_CORE_CLI_UTIL_H
#define BP_CORE_CLI_UTIL_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "betpipe/status.h"
#include "config.h"

/* One option a command accepts. */
typedef struct cli_opt {
    const char *name; /* long name without dashes: "countdown" */
    bool has_arg;
    const char *help; /* "DUR  run no earlier than now + DUR" */
} cli_opt;

/* The parsed command line of one command. */
typedef struct cli_args {
    const char *command; /* "run" */
    const char *sub;     /* "check" for `plugins check`, or NULL */
    const char *positional[16];
    int n_positional;
    const char *values[64]; /* values[i] for opts[i]; "" for a flag that is set */
    const cli_opt *opts;
    int n_opts;
    config_overrides ov; /* global options */
    bool json;
    bool help;
} cli_args;

/* The value of option `name`, or NULL when not given. */
const char *cli_opt_value(const cli_args *a, const char *name);
bool cli_flag(const cli_args *a, const char *name);

/* Map a status to the documented exit code. */
int cli_exit_code(int status);
/* Print "betpipe <command>: <msg>" to stderr and return the exit code for `status`. */
int cli_fail(const cli_args *a, int status, const char *msg);
/* Print JSON (indented) to stdout and a newline. Steals nothing. */
void cli_print_json(const json_t *v);

/* One command of `betpipe`. Commands living in their own file (cli_<area>.c) export a
 * `const cli_command cli_<area>_command` declared below, and cli.c lists it in its table. */
typedef struct cli_command {
    const char *name;
    const char *usage;
    const char *summary;
    const cli_opt *opts;
    int n_opts;
    int (*fn)(cli_args *a, int argc, char **argv);
} cli_command;

#define CLI_OPTS(x) (x), (int)(sizeof(x) / sizeof((x)[0]))

/* Commands defined in their own files. */
extern const cli_command cli_inspect_command;
extern const cli_command cli_control_command;
extern const cli_command cli_cache_command;
extern const cli_command cli_monitor_command;
extern const cli_command cli_schedule_command;
extern const cli_command cli_models_command;

typedef struct app app;
/* Open the instance parts a command needs (APP_* of app.h; APP_QUIET is added). On failure the
 * message is printed and the exit code returned; 0 on success. */
int cli_open_app(cli_args *a, int parts, app **out);

/* Send `cmd` (with args, borrowed) to the running daemons of the instance - through Redis when
 * the broker is Redis (every host), else the control sockets of <data-dir>/run - honouring the
 * command's --destination and --timeout (default 2 s). *out_replies gets {worker: reply} (new
 * reference, maybe empty). On failure the message is printed and the exit code returned; 0 on
 * success. Defined in cli_control.c. */
int cli_ask_daemons(cli_args *a, app *ap, const char *cmd, const json_t *args,
                    json_t **out_replies);

#endif
