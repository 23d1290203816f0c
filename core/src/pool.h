/*
 * pool.h - the worker pools of a daemon: one pool of threads per queue, fed by one dispatcher.
 *
 * Design. A single dispatcher thread per process owns every broker round trip. Worker threads
 * never talk to the broker: they wait on their queue's channel, run a job, drop the outcome into
 * the ack list and poke the dispatcher. The dispatcher then does one exchange() that acks
 * everything finished since its last pass *and* leases exactly as many jobs as there are idle
 * workers - never more, so a long job can never hold short ones hostage in a prefetch buffer
 * (Celery's -Ofair problem). Under load that batches naturally (group commit); when idle the
 * dispatcher blocks in poll() on the broker's wake descriptor and its own eventfd, with a
 * timeout only for the next heartbeat, reaper pass, or delayed job due time.
 *
 * A worker thread that starts a job leaves a STARTED notice in the ack list, which the next
 * exchange carries to the broker's event log (job-started); for short jobs that is the exchange
 * that acks them, so it costs no extra round trip.
 *
 * Leases are renewed by the dispatcher's heartbeat, which is independent of how busy the job
 * threads are. A revoke of a running job reaches the dispatcher at the next heartbeat (at once
 * when the broker wakes it) and sets the job's cancel flag; jobs check it cooperatively.
 *
 * Graceful stop: no more leasing; jobs already handed to a channel but not started go back to
 * the broker untouched; running jobs get `grace_ms` to finish; after that they are asked to
 * cancel, and a job that returns because of it is handed back (requeued, the attempt not
 * counted). Leases still held when the pool is destroyed are released by worker_stop.
 */
#ifndef BP_CORE_POOL_H
#define BP_CORE_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "broker.h"
#include "job.h"

typedef struct pool pool;

/* Why a running job is asked to stop (pool_task.cancel). */
#define POOL_CANCEL_NONE      0
#define POOL_CANCEL_REVOKED   1
#define POOL_CANCEL_SHUTDOWN  2
#define POOL_CANCEL_TERMINATE 3 /* revoked with terminate: an isolated run is killed */

/* One job on its way through a worker thread. */
typedef struct pool_task {
    job *job;                 /* owned by the pool */
    atomic_int cancel;        /* POOL_CANCEL_* */
    int64_t soft_deadline_ms; /* 0 = none */
    /* progress as reported by the job (guarded by the pool's lock) */
    double progress;
    char progress_msg[160];
    bool progress_dirty;
} pool_task;

/* What running a job produced. Strings are owned by the outcome (pool frees them). */
typedef struct pool_outcome {
    job_state state;     /* SUCCESS, FAILURE, RETRY, REVOKED, or PENDING (hand back) */
    char *result;        /* SUCCESS: compact JSON text */
    char *error;         /* otherwise: why */
    int64_t retry_at_ms; /* RETRY */
} pool_outcome;

/* Runs one job on a worker thread. Must fill *out. */
typedef void (*pool_run_fn)(void *ud, pool_task *task, pool_outcome *out);

typedef struct pool_queue_spec {
    const char *name;
    int concurrency;
} pool_queue_spec;

typedef struct pool_config {
    const pool_queue_spec *queues;
    size_t n_queues;
    int64_t heartbeat_ms; /* default lease_ms / 3 */
    int64_t reap_ms;      /* how often this daemon runs the reaper (default 2 s) */
    pool_run_fn run;
    void *run_ud;
    const char *worker_id; /* unique id of this daemon in the worker registry */
    const char *hostname;
} pool_config;

/* Start the dispatcher and the worker threads. The broker is borrowed and must outlive the
 * pool; it must not be subscribed yet (the pool subscribes it for work wake-ups). */
int pool_start(broker *b, const pool_config *cfg, pool **out, bp_error *err);

/* Change a queue's concurrency at run time (SIGHUP reload, `control pool-grow`). Growing
 * starts threads at once; shrinking lets the surplus threads finish their current job. At 0 the
 * queue is no longer consumed (`control cancel-consumer`): running jobs finish, jobs leased
 * ahead and not started go back to the broker at once. BP_E_NOTFOUND for a queue the pool does
 * not have. Thread-safe. */
int pool_set_concurrency(pool *p, const char *queue, int concurrency, bp_error *err);

/* Start consuming `queue` with `concurrency` (1..256) threads (`control add-consumer`): a queue
 * the pool did not serve gets its worker threads and the dispatcher leases for it from its next
 * pass; a queue it has is set to `concurrency`. Thread-safe; BP_E_STATE while stopping. */
int pool_add_queue(pool *p, const char *queue, int concurrency, bp_error *err);

/* Graceful stop (see above); blocks until done or grace_ms + cancel_wait_ms passed. Returns the
 * number of jobs that were still running when it gave up (0 = clean). */
int pool_stop(pool *p, int64_t grace_ms, int64_t cancel_wait_ms);
void pool_destroy(pool *p);
/* During pool_stop (from another thread): end the grace period now. */
void pool_hurry(pool *p);

/* Progress and cancellation, for the job runtime (host->progress, host->cancelled). */
void pool_task_progress(pool *p, pool_task *t, double fraction, const char *msg);
bool pool_task_cancelled(const pool_task *t);

/* Counters and per-queue state as JSON (for heartbeats, `inspect stats`, /metrics). */
json_t *pool_stats(pool *p);
/* The jobs running right now: [{"id","type","queue","started","progress"}...]. */
json_t *pool_active(pool *p);
/* Jobs leased ahead (adaptive prefetch) and waiting for a free worker, same shape. */
json_t *pool_reserved(pool *p);

#endif
