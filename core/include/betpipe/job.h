/*
 * betpipe/job.h - the running job as a plugin sees it, and enqueue options.
 *
 * Part of the plugin ABI.
 */
#ifndef BETPIPE_JOB_H
#define BETPIPE_JOB_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"

typedef struct bp_host bp_host;

/* Room for a job id: a UUIDv7 (36 chars) or a deterministic id such as a beat slot id. */
#define BP_JOB_ID_SIZE 96

/* Priority within a queue: 0 (lowest) .. 9 (highest); higher runs first. */
#define BP_PRIORITY_MIN     0
#define BP_PRIORITY_MAX     9
#define BP_PRIORITY_DEFAULT 5

/*
 * bp_job - read-only view of one run of a job, handed to bp_job_type.run().
 * Everything here is borrowed and valid until run() returns.
 */
typedef struct bp_job {
    uint32_t struct_size;
    const char *id;
    const char *type;
    const char *queue;
    const json_t *args; /* validated against the job type's schema; never NULL */
    int32_t attempt;    /* 1 on the first run, 2 on the first retry ... */
    int32_t max_retries;
    int64_t enqueued_at_ms;   /* UTC epoch ms */
    int64_t started_at_ms;    /* UTC epoch ms */
    int64_t soft_deadline_ms; /* UTC epoch ms after which cancelled() turns true; 0 = none */
    const bp_host *host;      /* the service table of the plugin that owns the job type */
    void *plugin_state;       /* what the plugin's init() returned in out_state */
    void *runtime;            /* core-private: progress, cancellation, parent id */
} bp_job;

/*
 * bp_enqueue_opts - options for host->enqueue (fan-out) and the client API. Zero-initialise it
 * and set struct_size; zero/NULL fields mean "use the default".
 */
typedef struct bp_enqueue_opts {
    uint32_t struct_size;
    int32_t priority; /* BP_PRIORITY_*; -1 or 0-initialised with has_priority=0: default */
    int32_t has_priority;
    int32_t max_retries; /* used when has_max_retries */
    int32_t has_max_retries;
    int32_t reserved0;
    const char *queue;      /* NULL: the job type's default queue */
    int64_t countdown_ms;   /* run no earlier than now + countdown */
    int64_t eta_ms;         /* run no earlier than this UTC epoch ms (wins over countdown) */
    int64_t expires_ms;     /* UTC epoch ms; a job not started by then becomes EXPIRED */
    const char *unique_key; /* refuse the job while another live job holds the same key */
    const char *job_id;     /* NULL: a fresh UUIDv7; else a caller-chosen id (idempotent) */
} bp_enqueue_opts;

#endif
