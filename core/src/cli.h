/*
 * cli.h - the command-line interface (betpipe --help).
 */
#ifndef BP_CORE_CLI_H
#define BP_CORE_CLI_H

/* Documented exit codes. */
#define CLI_EXIT_OK          0 /* success (for `run --wait`: the job finished in SUCCESS) */
#define CLI_EXIT_FAILURE     1 /* the operation or the job failed */
#define CLI_EXIT_USAGE       2 /* bad command line, bad arguments, args failing the schema */
#define CLI_EXIT_CONFIG      3 /* configuration invalid or unreadable */
#define CLI_EXIT_UNAVAILABLE 4 /* broker/store cannot be opened or reached */
#define CLI_EXIT_NOTFOUND    5 /* no such job, plugin, queue ... */
#define CLI_EXIT_TIMEOUT     6 /* --wait --timeout passed before the job finished */

int cli_main(int argc, char **argv);

#endif
