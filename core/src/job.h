/*
 * job.h - the job record as the engine stores and moves it.
 *
 * A job is created by the client API (CLI, host->enqueue, beat), stored by a broker, leased by a
 * worker, and finished with a result or an error. States:
 *
 *   PENDING    ready to run, waiting in its queue
 *   SCHEDULED  waiting for its ETA (countdown / eta)
 *   STARTED    leased by a worker and running
 *   RETRY      failed with retries left, waiting for its backoff to pass
 *   SUCCESS    finished; result holds what run() returned
 *   FAILURE    failed for good (error says why) - including after max_retries
 *   REVOKED    cancelled by `betpipe revoke` before or while it ran
 *   EXPIRED    not started before its `expires` instant
 *   DEAD       its worker died under it more than max_crashes times (poison pill)
 *
 * Ownership: a job owns all its strings. job_free() releases everything.
 */
#ifndef BP_CORE_JOB_H
#define BP_CORE_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/job.h"
#include "betpipe/status.h"

typedef enum job_state {
    JOB_PENDING = 0,
    JOB_SCHEDULED,
    JOB_STARTED,
    JOB_RETRY,
    JOB_SUCCESS,
    JOB_FAILURE,
    JOB_REVOKED,
    JOB_EXPIRED,
    JOB_DEAD,
    JOB_STATE_COUNT
} job_state;

/* Retry backoff, in the spirit of Celery's retry_policy. The delay before retry n (n = 1 for the
 * first retry) is
 *     min(interval_max, interval_start + interval_step * (2^(n-1) - 1))
 * so start=1s, step=1s gives 1, 2, 4, 8 ... s. With jitter the delay is drawn uniformly from
 * [delay/2, delay] ("equal jitter"), which spreads a burst of retries without ever retrying
 * sooner than half the nominal delay. */
typedef struct retry_policy {
    int64_t interval_start_ms;
    int64_t interval_step_ms;
    int64_t interval_max_ms;
    bool jitter;
} retry_policy;

#define JOB_DEFAULT_MAX_RETRIES    3
#define JOB_DEFAULT_RETRY_START_MS 1000
#define JOB_DEFAULT_RETRY_STEP_MS  1000
#define JOB_DEFAULT_RETRY_MAX_MS   600000

typedef struct job {
    char id[BP_JOB_ID_SIZE];
    char *type;
    char *queue;
    char *args;         /* compact JSON text, never NULL ("{}") */
    int priority;       /* BP_PRIORITY_MIN..MAX, higher first */
    int64_t eta_ms;     /* not before this instant; 0 = at once */
    int64_t expires_ms; /* EXPIRED if not started by then; 0 = never */
    int max_retries;
    retry_policy retry;
    int64_t soft_time_limit_ms; /* 0 = none */
    char *unique_key;           /* NULL = none */
    char *parent_id;            /* the job that enqueued this one (fan-out), NULL = none */
    job_state state;
    int attempts; /* runs started so far */
    int crashes;  /* leases lost because the worker died */
    char *result; /* compact JSON text or NULL */
    char *error;  /* NULL unless FAILURE/RETRY/DEAD/... */
    char *worker; /* the worker holding (or that last held) the lease */
    int64_t created_ms;
    int64_t started_ms;
    int64_t finished_ms;
    int64_t lease_until_ms;
    double progress; /* 0..1, -1 = never reported */
    char *progress_msg;
} job;

/* A new job with defaults (PENDING, priority default, max_retries default, created now). */
job *job_new(void);
void job_free(job *j);
/* Deep copy; NULL on allocation failure. */
job *job_clone(const job *j);

const char *job_state_name(job_state s);
int job_state_parse(const char *name, job_state *out);
/* SUCCESS, FAILURE, REVOKED, EXPIRED, DEAD. */
bool job_state_is_final(job_state s);

/* Nominal backoff before retry number `n` (1-based), jitter applied when the policy says so. */
int64_t job_retry_delay_ms(const retry_policy *p, int n);

/* The full record as a JSON object (new reference): what `betpipe task ID --json` prints. */
json_t *job_to_json(const job *j);
/* Rebuild a job from job_to_json() output (used by brokers that store JSON). */
int job_from_json(const json_t *o, job **out, bp_error *err);

/* Set a string field, replacing (and freeing) the old value. Returns BP_E_NOMEM on failure. */
int job_set_str(char **field, const char *value);

#endif
