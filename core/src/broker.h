/*
 * broker.h - the broker interface: where jobs wait, who holds them, how they finish.
 *
 * Two backends implement it with the same semantics: broker_sqlite.c (the embedded default, one
 * SQLite file in WAL mode shared by every process of an instance on one host) and broker_redis.c
 * (any number of daemons on any number of hosts).
 *
 * Contract, common to both backends:
 *  - At-least-once. A job is leased atomically to one worker (state STARTED, lease_until) and
 *    stays leased until that worker acks it. A lease that is not renewed expires and the job
 *    becomes runnable again; a job whose worker is known dead is reclaimed at once. Each
 *    reclaim counts a crash; after max_crashes the job is DEAD instead of requeued.
 *  - Delayed jobs (eta) and retries wait inside the broker, never in worker memory, and are
 *    promoted atomically when due.
 *  - Priority orders jobs within a queue (higher first), then enqueue order.
 *  - A job not started before `expires` becomes EXPIRED and never runs.
 *  - Unique keys: while a live (not final) job holds a unique key, another enqueue with that
 *    key is refused with BP_E_EXISTS. A caller-chosen job id that already exists is likewise
 *    refused (idempotent enqueue, used by beat).
 *  - Finished jobs keep their record (state, result, error, attempts, timings) for
 *    result_ttl_ms, then the reaper removes them.
 *  - Revoke: PENDING/SCHEDULED/RETRY jobs become REVOKED at once and never run; a STARTED job
 *    is flagged, its worker learns it at the next renew and cancels it cooperatively - or, with
 *    `terminate`, kills it when it runs in a process of its own (isolation).
 *  - Limits shared by every worker, stored in the broker: a rate limit per job type (a job
 *    over it stays waiting and is leased when a token returns) and a cap on the jobs of a queue
 *    leased at once. Neither ever fails a job.
 *  - Events: every state change appends an event (job sent, received, started, succeeded,
 *    failed, retried, revoked, expired, dead; worker online, heartbeat, offline) to a capped log
 *    in the broker, written in the same atomic step as the change; `betpipe monitor` tails it.
 *
 * Threading: a broker object may be used from several threads; backends serialise internally.
 */
#ifndef BP_CORE_BROKER_H
#define BP_CORE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"
#include "job.h"

typedef struct broker broker;

#define BROKER_WAKE_WORK   0x1 /* jobs may have arrived */
#define BROKER_WAKE_DONE   0x2 /* jobs finished */
#define BROKER_WAKE_REVOKE 0x4 /* a running job was revoked: heartbeat now to learn which */

/* What a worker reports when a job stops running. */
typedef struct broker_ack {
    const char *id;
    /* SUCCESS, FAILURE, RETRY, REVOKED (cancelled after a revoke), or PENDING to hand the job
     * back untouched (graceful shutdown interrupted it): requeued, the attempt not counted.
     * STARTED is not an ack but a notice: a worker thread began running the job. It changes
     * nothing but the event log (job-started); the lease stays as it is. */
    job_state state;
    const char *result;  /* compact JSON text, SUCCESS only (may be NULL) */
    const char *error;   /* FAILURE/RETRY/REVOKED: why */
    int64_t retry_at_ms; /* RETRY: when to run again */
    int64_t finished_ms;
} broker_ack;

/* Ask for up to `n` jobs from `queue`. n = 0 asks for none and says the worker no longer
 * wants the queue's jobs (its consumer was cancelled): a backend that wakes a worker per queue
 * (Redis) stops waking this one for it. */
typedef struct broker_want {
    const char *queue;
    int n;
} broker_want;

/* The worker (daemon or inline CLI runner) as the registry records it. */
typedef struct broker_worker_info {
    const char *id; /* unique: host:pid:random */
    const char *host;
    int pid;
    json_t *queues; /* {"queue": concurrency, ...}, borrowed */
    int64_t started_ms;
    /* The leases the worker holds right now (running, waiting for a thread, or finished and not
     * acked yet), when it knows them; NULL = it does not say. With the list, a backend whose
     * exchange reply can be lost on the way (Redis: the connection dropped after the script
     * ran) gives back the leases it recorded for this worker that are not in it: those jobs
     * never reached the worker and run again at once, instead of staying leased for as long as
     * the worker lives and renews. Borrowed. */
    const char *const *held;
    size_t n_held;
} broker_worker_info;

/* Counts a reap pass produced (for logs and tests). */
typedef struct broker_reap_report {
    int64_t requeued;       /* leases reclaimed and requeued */
    int64_t dead;           /* jobs moved to DEAD after too many crashes */
    int64_t expired;        /* waiting jobs past their expires */
    int64_t results_purged; /* finished records past result_ttl */
    int64_t workers_lost;   /* workers declared offline */
} broker_reap_report;

/* Options common to every backend. */
typedef struct broker_options {
    int64_t lease_ms;          /* lease length; renewed every lease_ms / 3 (default 30 s) */
    int64_t result_ttl_ms;     /* keep finished job records this long (default 1 day) */
    int max_crashes;           /* DEAD after this many lost leases (default 3) */
    int64_t worker_timeout_ms; /* a worker silent this long is offline (default = lease_ms) */
    /* Called after commit for every job that reached a final state through this broker object
     * (ack, reap, revoke, expiry), with the full record: the daemon mirrors them into the
     * store's job history. May be called from any thread that uses the broker; must not call
     * back into the broker. NULL = none. */
    void (*on_final)(void *ud, const job *j);
    void *on_final_ud;
} broker_options;

void broker_options_default(broker_options *o);

/* Listing filter for `betpipe status`, `inspect` and the API. */
typedef struct broker_filter {
    const char *queue; /* NULL = all */
    int state;         /* a job_state, or -1 = all */
    const char *type;  /* NULL = all */
    int limit;         /* 0 = 100 */
} broker_filter;

typedef struct broker_ops {
    const char *name; /* "sqlite" or "redis" */

    /* Store `n` new jobs. Each job must have id, type, queue, args and state PENDING or SCHEDULED
     * (eta > now). out_status[i] receives BP_OK or BP_E_EXISTS (unique key held or id taken); on
     * BP_E_EXISTS the holder's id is copied into jobs[i]->id. The call itself fails only when
     * nothing could be stored (backend down, I/O): then no job of the batch is stored. */
    int (*enqueue)(broker *b, job **jobs, size_t n, int *out_status, bp_error *err);

    /* The worker's one round trip: ack `acks`, then lease up to want.n jobs for each want in the
     * same transaction / script. Due delayed jobs are promoted and expired ones marked EXPIRED on
     * the way. Leased jobs (state STARTED, attempts incremented) are appended to *out_jobs (a new
     * array of new jobs; free each with job_free and the array with free). */
    int (*exchange)(broker *b, const char *worker_id, const broker_ack *acks, size_t n_acks,
                    const broker_want *wants, size_t n_wants, job ***out_jobs, size_t *out_n,
                    bp_error *err);

    /* Lease one specific job if it is runnable now (for `betpipe run --wait` without a daemon).
     * BP_E_NOTFOUND when it does not exist, BP_E_STATE when it is not runnable now. */
    int (*lease_one)(broker *b, const char *worker_id, const char *id, job **out, bp_error *err);

    /* Heartbeat: renew every lease held by worker_id, record the worker alive, store progress
     * of its running jobs. *out_revoked gets a new JSON array with one object
     * {"id": "...", "terminate": true|false} per running job of this worker that was revoked
     * (may be empty). `progress` is {"id": [fraction, "msg"]}. */
    int (*heartbeat)(broker *b, const broker_worker_info *w, const json_t *stats,
                     const json_t *progress, json_t **out_revoked, bp_error *err);

    /* Remove the worker from the registry (graceful stop). Its leases are released: jobs it
     * still holds go back to the queue without counting a crash. */
    int (*worker_stop)(broker *b, const char *worker_id, bp_error *err);

    /* Requeue expired leases and jobs of dead workers (crash count, DEAD after max_crashes),
     * expire waiting jobs past their expires, purge finished records past result_ttl. */
    int (*reap)(broker *b, broker_reap_report *out, bp_error *err);

    /* Earliest future instant at which a waiting job of one of `queues` may become leasable:
     * a SCHEDULED/RETRY job becomes due, or a job type held back by its rate limit gets its next
     * token. INT64_MAX when none. A worker that got fewer jobs than it asked for sleeps until
     * then (or until woken): a rate-limited queue costs one exchange per token, no polling. */
    int (*next_due)(broker *b, const char *const *queues, size_t n_queues, int64_t *out_ms,
                    bp_error *err);

    int (*get)(broker *b, const char *id, job **out, bp_error *err);

    /* Revoke (see the contract above). *out_state gets the state after the call. */
    int (*revoke)(broker *b, const char *id, bool terminate, job_state *out_state, bp_error *err);

    /* Delete every waiting job (PENDING, SCHEDULED, RETRY) of `queue`. */
    int (*purge)(broker *b, const char *queue, int64_t *out_removed, bp_error *err);

    /* {"queues": {"q": {"waiting":n, "delayed":n, "running":n, "retry":n, "succeeded":n,
     *  "failed":n, "dead":n, "revoked":n, "expired":n}}, "workers": [...]} (new reference). */
    int (*stats)(broker *b, json_t **out, bp_error *err);

    /* Jobs matching `f`, newest first, as a new JSON array of job_to_json objects. */
    int (*list)(broker *b, const broker_filter *f, json_t **out, bp_error *err);

    /* Ask to be woken: BROKER_WAKE_WORK when jobs may have arrived for a worker (enqueue,
     * revoke), BROKER_WAKE_DONE when jobs finished (for clients waiting on a result). After a
     * successful subscribe, wake_fd() returns a descriptor that turns readable on those events;
     * call drain_wake() after it fires and before polling again: it returns the BROKER_WAKE_*
     * bits of what arrived (BROKER_WAKE_REVOKE included). */
    int (*subscribe)(broker *b, int kinds, bp_error *err);
    int (*wake_fd)(broker *b);
    int (*drain_wake)(broker *b);

    /* ---- limits shared by every worker (additive: phase 2 of the Redis issue) ---- */

    /* Let at most `rate` jobs of `type` start, across every worker of this broker: "N/s",
     * "N/m", "N/h" or "N/d" (see broker_rate_parse). Tokens return evenly (10/m: one every 6 s,
     * with a burst of at most 100 ms worth of tokens), so no window of one period ever sees
     * more than N (plus that burst). NULL or "" removes the limit; throttled jobs go at once. */
    int (*set_rate_limit)(broker *b, const char *type, const char *rate, bp_error *err);
    /* Lease at most `max` jobs of `queue` at once across every worker (BullMQ's global
     * concurrency); 0 removes the cap. Jobs beyond it wait; a finishing job wakes a worker. */
    int (*set_queue_cap)(broker *b, const char *queue, int max, bp_error *err);
    /* {"rate_limits": {"type": "10/m", ...}, "queue_caps": {"queue": n, ...}} (new reference). */
    int (*limits)(broker *b, json_t **out, bp_error *err);

    /* ---- events ---- */

    /* Read the events that follow `cursor`, waiting up to block_ms for the first one. The
     * cursor is a JSON object whose contents belong to the backend: pass a new empty object
     * the first time (= events from now on) and the same object on every later call; it is
     * advanced past what was returned. *out gets a new array of event objects
     * {"ts": ms, "event": "job-started", "id", "type", "queue", "worker", "error", ...} in the
     * order they happened (fields a kind does not know are absent). */
    int (*events)(broker *b, json_t *cursor, int64_t block_ms, json_t **out, bp_error *err);

    /* ---- diagnostics ---- */

    /* Problems with the broker's environment for `betpipe config check`, e.g. a Redis whose
     * maxmemory-policy may evict queue keys: a new array of strings (empty when all is well). */
    int (*diagnose)(broker *b, json_t **out, bp_error *err);

    void (*destroy)(broker *b);
} broker_ops;

struct broker {
    const broker_ops *ops;
    broker_options opts;
};

/* Open the broker named by `url`: "sqlite:///abs/path.db" (or a plain path), "redis://...",
 * "rediss://..." or "unix:///path/redis.sock". `data_dir` is where the embedded backend keeps
 * its wake-up sockets. */
int broker_open(const char *url, const char *data_dir, const broker_options *opts, broker **out,
                bp_error *err);

/* Backend constructors (called by broker_open). */
int broker_sqlite_open(const char *path, const char *data_dir, const broker_options *opts,
                       broker **out, bp_error *err);
int broker_redis_open(const char *url, const broker_options *opts, broker **out, bp_error *err);

/* Is `url` a Redis broker URL (redis://, rediss://, unix://)? */
bool broker_url_is_redis(const char *url);
/* Split a Redis broker URL into the connection URL (without betpipe's own `prefix=` parameter)
 * and the key prefix (default "bp"). Both are new strings. Used by everything that must find
 * the broker's keys: the broker itself, the control channel over Redis. */
int broker_redis_split_url(const char *url, char **out_url, char **out_prefix, bp_error *err);

/* Parse a rate limit "N/s", "N/m", "N/h" or "N/d" (N a positive integer; "N/min", "N/hour" ...
 * are not accepted: one letter). *out_count = N, *out_period_ms = the period. */
int broker_rate_parse(const char *rate, int64_t *out_count, int64_t *out_period_ms, bp_error *err);
/* The token schedule of a rate: one token every *out_interval_ms, and how far ahead of
 * schedule a worker may run (*out_tolerance_ms: a burst of up to 100 ms worth of tokens, at
 * least one token). Both backends enforce the same generic cell rate algorithm with these. */
void broker_rate_schedule(int64_t count, int64_t period_ms, double *out_interval_ms,
                          double *out_tolerance_ms);

/* How many events each event log keeps (the oldest are dropped). */
#define BROKER_EVENTS_MAX 10000

/* What a worker event carries (JSON text, new string; NULL when out of memory): host, pid,
 * queues with their concurrency, and from the pool's `stats` the counters, load and RSS. */
char *broker_worker_event_data(const broker_worker_info *w, const json_t *stats);

/* Backends store events in batches: one entry per kind and step, with the job ids (and their
 * types, when known) space-separated. This expands one entry into event objects appended to
 * `out` (kind "job-..." gives one object per id; "worker-..." one object, with the JSON object
 * `data` merged in). Any string may be NULL. */
void broker_event_expand(json_t *out, int64_t ts, const char *kind, const char *queue,
                         const char *worker, const char *ids, const char *types, const char *error,
                         const char *data);

static inline void broker_destroy(broker *b)
{
    if (b) {
        b->ops->destroy(b);
    }
}

#endif
