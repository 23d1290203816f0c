/*
 * cli.c - placeholder entry until the command set lands in the next commits.
 */
#include "cli.h"

#include <stdio.h>

int cli_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "betpipe: the command-line interface is being assembled\n");
    return CLI_EXIT_USAGE;
}
