/*
 * client.h - the client API: enqueue a job the way every caller must (CLI, host->enqueue for
 * fan-out, beat, benchmarks), look jobs up, and wait for results.
 *
 * Enqueue checks everything before the broker sees the job: the type is loaded, the args
 * satisfy its schema (defaults filled in), the queue exists, priority/eta/expires make sense.
 * A bad job is refused with a message naming the field; nothing is stored.
 */
#ifndef BP_CORE_CLIENT_H
#define BP_CORE_CLIENT_H

#include "app.h"
#include "betpipe/job.h"

/* Build a validated job (not stored). *out is a new job. */
int client_prepare(app *a, const char *type, const json_t *args, const bp_enqueue_opts *opts,
                   const char *parent_id, job **out, bp_error *err);

/* Prepare and enqueue one job. BP_E_EXISTS when its unique key or id is taken (the holder's id
 * is then written to out_id). */
int client_enqueue(app *a, const char *type, const json_t *args, const bp_enqueue_opts *opts,
                   const char *parent_id, char out_id[BP_JOB_ID_SIZE], bp_error *err);

/* A job by id: the broker's record, or the history's once the broker has forgotten it. */
int client_get(app *a, const char *id, job **out, bp_error *err);

/* Wait until the job reaches a final state or timeout_ms passes (-1 = forever). Blocks on the
 * broker's "done" wake-ups, not a busy loop. BP_E_TIMEOUT with the job's current record in
 * *out when the time ran out. */
int client_wait(app *a, const char *id, int64_t timeout_ms, job **out, bp_error *err);

/* Is a live worker serving `queue`? (heartbeat within worker_timeout) */
bool client_queue_served(app *a, const char *queue);

#endif
