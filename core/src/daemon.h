/*
 * daemon.h - `betpipe daemon`: the long-running process (worker pools now; beat and the HTTP
 * server join it in later modules).
 */
#ifndef BP_CORE_DAEMON_H
#define BP_CORE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

typedef struct daemon_options {
    config_overrides ov;
    const char *queues;      /* "q1,q2": serve only these; NULL = all configured queues */
    const char *concurrency; /* "q1=4,q2=1": per-queue overrides */
    int64_t grace_ms;        /* -1 = from config */
    bool no_beat;
} daemon_options;

/* Run until SIGTERM/SIGINT; returns the process exit code. */
int daemon_main(const daemon_options *o);

#endif
