/*
 * cli_util.c - helpers shared by the CLI command files (see cli_util.h).
 */
#include "cli_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"

const char *cli_opt_value(const cli_args *a, const char *name)
{
    for (int i = 0; i < a->n_opts; i++) {
        if (strcmp(a->opts[i].name, name) == 0) {
            return a->values[i];
        }
    }
    return NULL;
}

bool cli_flag(const cli_args *a, const char *name)
{
    return cli_opt_value(a, name) != NULL;
}

int cli_exit_code(int status)
{
    switch (status) {
    case BP_OK: return CLI_EXIT_OK;
    case BP_E_INVAL: return CLI_EXIT_USAGE;
    case BP_E_CONFIG: return CLI_EXIT_CONFIG;
    case BP_E_UNAVAILABLE:
    case BP_E_IO:
    case BP_E_CORRUPT: return CLI_EXIT_UNAVAILABLE;
    case BP_E_NOTFOUND: return CLI_EXIT_NOTFOUND;
    case BP_E_TIMEOUT: return CLI_EXIT_TIMEOUT;
    default: return CLI_EXIT_FAILURE;
    }
}

int cli_fail(const cli_args *a, int status, const char *msg)
{
    fprintf(stderr, "betpipe %s: %s\n", a && a->command ? a->command : "", msg);
    return cli_exit_code(status);
}

void cli_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

int cli_open_app(cli_args *a, int parts, app **out)
{
    bp_error err = {0};
    int rc = app_open(&a->ov, parts | APP_QUIET, out, &err);
    if (rc != BP_OK) {
        return cli_fail(a, rc, err.msg);
    }
    return 0;
}
