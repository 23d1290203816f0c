/*
 * main.c - the betpipe binary: hands the command line to the CLI module.
 */
#include "cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
