/*
 * broker_sqlite.c - the embedded broker: one SQLite file (WAL) shared by every process of an
 * instance on one host. No server to run, and still at-least-once with leases.
 *
 * The whole broker is one table, `jobs`, whose partial indexes make each question cheap:
 *   jobs_ready    (queue, priority DESC, seq) WHERE state = PENDING      -> what runs next
 *   jobs_delayed  (queue, run_at)             WHERE state IN (SCHEDULED, RETRY)
 *   jobs_running  (worker)                    WHERE state = STARTED      -> a worker's leases,
 *                                                                           expired leases
 *   jobs_expiry   (queue, expires_at)         WHERE waiting with expires -> expiry
 *   jobs_unique   UNIQUE (unique_key)         WHERE live                 -> unique keys
 * Every index a state change touches costs WAL pages on each lease and ack, so there are no
 * more of them than the questions need; the hot statements name their index (INDEXED BY) so a
 * planner guess can never turn them into a scan of every waiting job.
 * plus `workers`, the registry of live workers and their heartbeats (a lost worker stays listed
 * as offline for an hour), `rate_limits` and `queue_caps` (the limits every worker obeys) and
 * `events`, a capped log of state changes written in the same transactions as the changes
 * (`betpipe monitor` reads it and is woken through an `e-` wake socket).
 *
 * Every state change is one IMMEDIATE transaction, so two daemons on the same file never lease
 * the same job. synchronous=NORMAL in WAL mode means a commit reaches the OS before it returns
 * (a kill -9 loses nothing) but is not fsync'ed (a power cut may lose the last commits):
 * set broker.sqlite_synchronous = "full" to trade throughput for that.
 *
 * Crash recovery is fast on one host: a worker row records its pid, and the reaper of any live
 * process reclaims the leases of a worker whose pid is gone at once, without waiting for the
 * lease to expire. Leases of a worker that is alive but silent expire after lease_ms.
 *
 * Locking: one connection per broker object behind a mutex. Across processes SQLite's file
 * locks serialise writers; our busy handler backs off in microseconds, not SQLite's default
 * milliseconds, because transactions here are short.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "broker.h"
#include "log.h"
#include "sqlite_util.h"
#include "util.h"
#include "wake.h"

#define SQ_BUSY_TIMEOUT_MS 15000
#define SQ_REAP_BATCH      1000
#define SQ_SCHEMA_VERSION  3
#define SQ_OFFLINE_KEEP_MS 3600000 /* a lost worker stays listed as offline this long */

typedef struct sq_broker {
    broker base;
    pthread_mutex_t lock;
    sqlite3 *db;
    char *path;
    char *run_dir;
    char hostname[256];
    wake_sender *sender;
    wake_listener *listener;
    /* Daemons checkpoint the WAL from this thread, so no commit on the job path ever pays for
     * copying pages back and fsync'ing the database (that was the tail of start latency). */
    pthread_t checkpointer;
    bool checkpointer_running;
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    bool ckpt_stop;
    /* prepared statements, indexed by enum sq_stmt */
    sqlite3_stmt *st[40];
    wake_listener *ev_listener; /* events(): woken when events were written */
} sq_broker;

/* The columns every job-returning statement selects, in this order (see row_to_job). */
#define JOB_COLS                                                                                   \
    "seq, id, type, queue, state, priority, args, run_at, expires_at, max_retries, retry_start, "  \
    "retry_step, retry_max, retry_jitter, soft_limit_ms, unique_key, parent_id, attempts, "        \
    "crashes, result, error, worker, lease_until, created_ms, started_ms, finished_ms, "           \
    "progress, progress_msg"

enum sq_stmt {
    ST_INSERT,
    ST_FIND_HOLDER,
    ST_ACK_FINAL,
    ST_ACK_RETRY,
    ST_ACK_GIVEBACK,
    ST_PROMOTE,
    ST_EXPIRE_QUEUE,
    ST_LEASE,
    ST_LEASE_ONE,
    ST_GET,
    ST_WORKER_UPSERT,
    ST_RENEW,
    ST_PROGRESS,
    ST_REVOKED_RUNNING,
    ST_WORKER_DELETE,
    ST_RELEASE_WORKER,
    ST_NEXT_DUE,
    ST_REVOKE_WAITING,
    ST_REVOKE_RUNNING,
    ST_PURGE,
    ST_EVENT_INSERT,
    ST_LIMIT_COUNTS,
    ST_QUEUE_CAP,
    ST_QUEUE_RUNNING,
    ST_LEASE_CANDIDATES,
    ST_LEASE_SEQS,
    ST_RATE_SAVE,
    ST_WORKER_STATE,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT] =
        "INSERT INTO jobs (id, type, queue, state, priority, args, run_at, expires_at, "
        "max_retries, retry_start, retry_step, retry_max, retry_jitter, soft_limit_ms, "
        "unique_key, parent_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
        "?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT DO NOTHING",
    [ST_FIND_HOLDER] = "SELECT id FROM jobs WHERE id = ?1 OR (unique_key = ?2 AND state IN "
                       "(0, 1, 2, 3)) LIMIT 1",
    [ST_ACK_FINAL] = "UPDATE jobs SET state = ?2, result = ?3, error = ?4, finished_ms = ?5, "
                     "lease_until = NULL, result_expires_at = ?5 + ?6, progress = CASE WHEN ?2 "
                     "= 4 THEN 1.0 ELSE progress END WHERE id = ?1 AND state = 2 AND worker = ?7 "
                     "RETURNING " JOB_COLS,
    [ST_ACK_RETRY] = "UPDATE jobs SET state = 3, error = ?2, run_at = ?3, lease_until = NULL "
                     "WHERE id = ?1 AND state = 2 AND worker = ?4",
    [ST_ACK_GIVEBACK] = "UPDATE jobs SET state = 0, lease_until = NULL, worker = NULL, "
                        "attempts = max(attempts - 1, 0) WHERE id = ?1 AND state = 2 AND "
                        "worker = ?2",
    [ST_PROMOTE] = "UPDATE jobs INDEXED BY jobs_delayed SET state = 0 WHERE queue = ?1 AND "
                   "state IN (1, 3) AND run_at <= ?2",
    [ST_EXPIRE_QUEUE] = "UPDATE jobs INDEXED BY jobs_expiry SET state = 7, finished_ms = ?2, "
                        "result_expires_at = ?2 + "
                        "?3, error = 'expired: not started before ' || "
                        "strftime('%Y-%m-%dT%H:%M:%fZ', expires_at / 1000.0, 'unixepoch') "
                        "WHERE queue = ?1 AND state IN (0, 1, 3) AND expires_at IS NOT NULL AND "
                        "expires_at <= ?2 RETURNING " JOB_COLS,
    [ST_LEASE] = "UPDATE jobs SET state = 2, worker = ?2, lease_until = ?3, attempts = "
                 "attempts + 1, started_ms = ?4, progress = NULL, progress_msg = NULL WHERE seq "
                 "IN (SELECT seq FROM jobs WHERE queue = ?1 AND state = 0 ORDER BY priority "
                 "DESC, seq LIMIT ?5) RETURNING " JOB_COLS,
    [ST_LEASE_ONE] = "UPDATE jobs SET state = 2, worker = ?2, lease_until = ?3, attempts = "
                     "attempts + 1, started_ms = ?4, progress = NULL, progress_msg = NULL WHERE "
                     "id = ?1 AND (state = 0 OR (state IN (1, 3) AND run_at <= ?4)) AND "
                     "(expires_at IS NULL OR expires_at > ?4) RETURNING " JOB_COLS,
    [ST_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [ST_WORKER_UPSERT] = "INSERT INTO workers (id, host, pid, queues, started_ms, heartbeat_ms, "
                         "stats) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE "
                         "SET heartbeat_ms = excluded.heartbeat_ms, stats = excluded.stats, "
                         "queues = excluded.queues, offline_ms = NULL",
    [ST_RENEW] = "UPDATE jobs SET lease_until = ?2 WHERE worker = ?1 AND state = 2",
    [ST_PROGRESS] = "UPDATE jobs SET progress = ?3, progress_msg = ?4 WHERE id = ?1 AND worker "
                    "= ?2 AND state = 2",
    [ST_REVOKED_RUNNING] = "SELECT id, revoke_requested FROM jobs WHERE worker = ?1 AND "
                           "state = 2 AND revoke_requested > 0",
    [ST_WORKER_DELETE] = "DELETE FROM workers WHERE id = ?1",
    [ST_RELEASE_WORKER] = "UPDATE jobs SET state = 0, worker = NULL, lease_until = NULL, "
                          "attempts = max(attempts - 1, 0) WHERE worker = ?1 AND state = 2",
    [ST_NEXT_DUE] = "SELECT min(run_at) FROM jobs WHERE queue = ?1 AND state IN (1, 3)",
    [ST_REVOKE_WAITING] = "UPDATE jobs SET state = 6, finished_ms = ?2, result_expires_at = ?2 "
                          "+ ?3, error = 'revoked' WHERE id = ?1 AND state IN (0, 1, 3) "
                          "RETURNING " JOB_COLS,
    [ST_REVOKE_RUNNING] = "UPDATE jobs SET revoke_requested = max(revoke_requested, ?2) WHERE "
                          "id = ?1 AND state = 2",
    [ST_PURGE] = "DELETE FROM jobs WHERE queue = ?1 AND state IN (0, 1, 3)",
    [ST_EVENT_INSERT] = "INSERT INTO events (ts, kind, queue, worker, ids, types, err, data) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_LIMIT_COUNTS] = "SELECT (SELECT count(*) FROM rate_limits), (SELECT count(*) FROM "
                        "queue_caps)",
    [ST_QUEUE_CAP] = "SELECT max FROM queue_caps WHERE queue = ?1",
    [ST_QUEUE_RUNNING] = "SELECT count(*) FROM jobs INDEXED BY jobs_running WHERE state = 2 AND "
                         "queue = ?1",
    [ST_LEASE_CANDIDATES] = "SELECT seq, type FROM jobs INDEXED BY jobs_ready WHERE queue = ?1 "
                            "AND state = 0 AND type NOT IN (SELECT value FROM json_each(?2)) "
                            "AND seq NOT IN (SELECT value FROM json_each(?4)) "
                            "ORDER BY priority DESC, seq LIMIT ?3",
    [ST_LEASE_SEQS] = "UPDATE jobs SET state = 2, worker = ?2, lease_until = ?3, attempts = "
                      "attempts + 1, started_ms = ?4, progress = NULL, progress_msg = NULL WHERE "
                      "seq IN (SELECT value FROM json_each(?1)) AND state = 0 RETURNING " JOB_COLS,
    [ST_RATE_SAVE] = "UPDATE rate_limits SET tat = ?2 WHERE type = ?1",
    [ST_WORKER_STATE] = "SELECT offline_ms FROM workers WHERE id = ?1",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  priority INTEGER NOT NULL,"
    "  args TEXT NOT NULL,"
    "  run_at INTEGER NOT NULL,"
    "  expires_at INTEGER,"
    "  max_retries INTEGER NOT NULL,"
    "  retry_start INTEGER NOT NULL,"
    "  retry_step INTEGER NOT NULL,"
    "  retry_max INTEGER NOT NULL,"
    "  retry_jitter INTEGER NOT NULL,"
    "  soft_limit_ms INTEGER NOT NULL DEFAULT 0,"
    "  unique_key TEXT,"
    "  parent_id TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  crashes INTEGER NOT NULL DEFAULT 0,"
    "  result TEXT,"
    "  error TEXT,"
    "  worker TEXT,"
    "  lease_until INTEGER,"
    "  revoke_requested INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  started_ms INTEGER,"
    "  finished_ms INTEGER,"
    "  result_expires_at INTEGER,"
    "  progress REAL,"
    "  progress_msg TEXT);"
    "CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(queue, priority DESC, seq) WHERE state = 0;"
    "CREATE INDEX IF NOT EXISTS jobs_delayed ON jobs(queue, run_at) WHERE state IN (1, 3);"
    "CREATE INDEX IF NOT EXISTS jobs_running ON jobs(worker) WHERE state = 2;"
    "CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs(queue, expires_at) WHERE state IN (0, 1, 3) "
    "  AND expires_at IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS jobs_result_ttl ON jobs(result_expires_at) WHERE "
    "  result_expires_at IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS jobs_queue_seq ON jobs(queue, seq);"
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON jobs(unique_key) WHERE unique_key IS NOT "
    "  NULL AND state IN (0, 1, 2, 3);"
    "CREATE TABLE IF NOT EXISTS workers ("
    "  id TEXT PRIMARY KEY,"
    "  host TEXT NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  queues TEXT NOT NULL,"
    "  started_ms INTEGER NOT NULL,"
    "  heartbeat_ms INTEGER NOT NULL,"
    "  stats TEXT,"
    "  offline_ms INTEGER);"
    /* Limits shared by every worker: a rate limit per job type (the generic cell rate
     * algorithm: `tat` is the theoretical arrival time of the next token) and a cap per queue. */
    "CREATE TABLE IF NOT EXISTS rate_limits ("
    "  type TEXT PRIMARY KEY,"
    "  rate TEXT NOT NULL,"
    "  interval_ms REAL NOT NULL,"
    "  tolerance_ms REAL NOT NULL,"
    "  tat REAL NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS queue_caps ("
    "  queue TEXT PRIMARY KEY,"
    "  max INTEGER NOT NULL);"
    /* One row per batch of events of one kind (ids space-separated), like the Redis streams. */
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  queue TEXT,"
    "  worker TEXT,"
    "  ids TEXT,"
    "  types TEXT,"
    "  err TEXT,"
    "  data TEXT);";

/* ============================================================================================
 * Helpers
 * ========================================================================================== */

static sq_broker *sq(broker *b)
{
    return (sq_broker *)b;
}

static int sq_error(sq_broker *s, int rc, const char *what, bp_error *err)
{
    return bp_err(err, sqlite_status(rc), "broker %s: %s: %s", s->path, what,
                  sqlite3_errmsg(s->db));
}

static int exec_sql(sq_broker *s, const char *sql, bp_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? BP_OK : sq_error(s, rc, sql, err);
}

static sqlite3_stmt *stmt(sq_broker *s, enum sq_stmt which)
{
    sqlite3_stmt *st = s->st[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static int begin(sq_broker *s, bp_error *err)
{
    return exec_sql(s, "BEGIN IMMEDIATE", err);
}

static int commit(sq_broker *s, bp_error *err)
{
    int rc = exec_sql(s, "COMMIT", err);
    if (rc != BP_OK && !sqlite3_get_autocommit(s->db)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

static void rollback(sq_broker *s)
{
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

/* End the transaction an operation opened under s->lock: commit when everything went well,
 * roll back otherwise, and release the lock. Returns the final status. */
static int end_txn(sq_broker *s, int rc, bp_error *err)
{
    if (rc == BP_OK) {
        rc = commit(s, err);
    } else {
        rollback(s);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Short transactions deserve short waits: back off from 20 us to 2 ms instead of SQLite's
 * default millisecond steps, until SQ_BUSY_TIMEOUT_MS has passed. */
static int busy_handler(void *ud, int count)
{
    static const long steps_us[] = {20, 50, 100, 200, 500, 1000, 2000};
    const int n_steps = (int)BP_ARRAY_LEN(steps_us);
    /* The first steps add up to under 4 ms; every later one is 2 ms. */
    long waited_ms = count <= n_steps ? 4 : 4 + (long)(count - n_steps) * 2;
    struct timespec ts = {0, (count < n_steps ? steps_us[count] : 2000) * 1000L};
    (void)ud;
    if (waited_ms > SQ_BUSY_TIMEOUT_MS) {
        return 0;
    }
    nanosleep(&ts, NULL);
    return 1;
}

static void bind_text(sqlite3_stmt *st, int idx, const char *v)
{
    if (v) {
        sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static void bind_ms(sqlite3_stmt *st, int idx, int64_t v)
{
    if (v > 0) {
        sqlite3_bind_int64(st, idx, v);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

/* Build a job from a row selected with JOB_COLS. */
static job *row_to_job(sqlite3_stmt *st)
{
    job *j = job_new();
    if (!j) {
        return NULL;
    }
    free(j->args);
    util_strlcpy(j->id, (const char *)sqlite3_column_text(st, 1), sizeof j->id);
    j->type = col_dup(st, 2);
    j->queue = col_dup(st, 3);
    j->state = (job_state)sqlite3_column_int(st, 4);
    j->priority = sqlite3_column_int(st, 5);
    j->args = col_dup(st, 6);
    j->eta_ms = sqlite3_column_int64(st, 7);
    j->expires_ms = sqlite3_column_int64(st, 8);
    j->max_retries = sqlite3_column_int(st, 9);
    j->retry.interval_start_ms = sqlite3_column_int64(st, 10);
    j->retry.interval_step_ms = sqlite3_column_int64(st, 11);
    j->retry.interval_max_ms = sqlite3_column_int64(st, 12);
    j->retry.jitter = sqlite3_column_int(st, 13) != 0;
    j->soft_time_limit_ms = sqlite3_column_int64(st, 14);
    j->unique_key = col_dup(st, 15);
    j->parent_id = col_dup(st, 16);
    j->attempts = sqlite3_column_int(st, 17);
    j->crashes = sqlite3_column_int(st, 18);
    j->result = col_dup(st, 19);
    j->error = col_dup(st, 20);
    j->worker = col_dup(st, 21);
    j->lease_until_ms = sqlite3_column_int64(st, 22);
    j->created_ms = sqlite3_column_int64(st, 23);
    j->started_ms = sqlite3_column_int64(st, 24);
    j->finished_ms = sqlite3_column_int64(st, 25);
    j->progress = sqlite3_column_type(st, 26) == SQLITE_NULL ? -1.0 : sqlite3_column_double(st, 26);
    j->progress_msg = col_dup(st, 27);
    if (!j->type || !j->queue || !j->args) {
        job_free(j);
        return NULL;
    }
    /* run_at holds the creation time for jobs that had no eta: report eta only when it was a
     * real delay. */
    if (j->eta_ms <= j->created_ms) {
        j->eta_ms = 0;
    }
    return j;
}

/* A growable list of jobs that reached a final state inside a transaction: handed to the
 * on_final hook after commit (never inside the transaction, so the hook cannot slow it). */
typedef struct job_list {
    job **items;
    size_t n, cap;
} job_list;

static int job_list_push(job_list *l, job *j)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        job **items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            return BP_E_NOMEM;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = j;
    return BP_OK;
}

static void job_list_free(job_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        job_free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

/* Collect every row a RETURNING statement yields. */
static int collect_rows(sq_broker *s, sqlite3_stmt *st, job_list *out, const char *what,
                        bp_error *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        job *j = row_to_job(st);
        if (!j || job_list_push(out, j) != BP_OK) {
            job_free(j);
            sqlite3_reset(st);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    if (rc != SQLITE_DONE) {
        return sq_error(s, rc, what, err);
    }
    return BP_OK;
}

/* After commit: wake clients waiting for results and hand every final record to the on_final
 * hook (the job history), then free the list. */
static void publish_finals(sq_broker *s, job_list *finals)
{
    if (finals->n > 0) {
        wake_send(s->sender, WAKE_KIND_DONE, 'F');
        if (s->base.opts.on_final) {
            for (size_t i = 0; i < finals->n; i++) {
                s->base.opts.on_final(s->base.opts.on_final_ud, finals->items[i]);
            }
        }
    }
    job_list_free(finals);
}

/* ============================================================================================
 * Events: gathered while a transaction runs, written in it - one row per kind and queue, with
 * the job ids space-separated (like the Redis streams) - and announced after commit
 * ========================================================================================== */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static bool sbuf_word(sbuf *b, const char *w, size_t len)
{
    if (b->n + len + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        char *np;
        while (cap < b->n + len + 2) {
            cap *= 2;
        }
        if (!(np = realloc(b->p, cap))) {
            return false;
        }
        b->p = np;
        b->cap = cap;
    }
    if (b->n) {
        b->p[b->n++] = ' ';
    }
    memcpy(b->p + b->n, w, len);
    b->n += len;
    b->p[b->n] = '\0';
    return true;
}

typedef struct sq_ev {
    const char *kind; /* a string literal */
    char *queue;
    char *err; /* an entry with an error holds one job */
    sbuf ids, types;
} sq_ev;

typedef struct sq_events {
    sq_ev *v;
    size_t n, cap;
    bool oom; /* an event was lost to an allocation failure (the change itself is not) */
} sq_events;

static void ev_add(sq_events *e, const char *kind, const char *queue, const char *id,
                   const char *type, const char *error)
{
    sq_ev *x = NULL;
    for (size_t i = 0; !error && i < e->n; i++) {
        sq_ev *c = &e->v[i];
        if (!c->err && strcmp(c->kind, kind) == 0 &&
            ((!c->queue && !queue) || (c->queue && queue && strcmp(c->queue, queue) == 0))) {
            x = c;
            break;
        }
    }
    if (!x) {
        if (e->n == e->cap) {
            size_t cap = e->cap ? e->cap * 2 : 8;
            sq_ev *nv = realloc(e->v, cap * sizeof *nv);
            if (!nv) {
                e->oom = true;
                return;
            }
            e->v = nv;
            e->cap = cap;
        }
        x = &e->v[e->n++];
        memset(x, 0, sizeof *x);
        x->kind = kind;
        x->queue = queue ? strdup(queue) : NULL;
        x->err = error ? strdup(error) : NULL;
    }
    if (!sbuf_word(&x->ids, id, strlen(id)) ||
        (type && !sbuf_word(&x->types, type, strlen(type)))) {
        e->oom = true;
    }
}

static const char *final_event(job_state st)
{
    switch (st) {
    case JOB_SUCCESS: return "job-succeeded";
    case JOB_FAILURE: return "job-failed";
    case JOB_REVOKED: return "job-revoked";
    case JOB_EXPIRED: return "job-expired";
    case JOB_DEAD: return "job-dead";
    default: return "job-changed";
    }
}

/* Events for the final records finals->items[from..]. */
static void ev_finals(sq_events *e, const job_list *finals, size_t from)
{
    for (size_t i = from; i < finals->n; i++) {
        const job *j = finals->items[i];
        ev_add(e, final_event(j->state), j->queue, j->id, NULL,
               j->state == JOB_SUCCESS ? NULL : (j->error ? j->error : ""));
    }
}

/* Write the gathered events inside the open transaction; true when anything was written. The
 * worker applies to every entry (NULL = none); data is a worker event's JSON (NULL = none). */
static int ev_write(sq_broker *s, sq_events *e, const char *worker, const char *data, bool *wrote,
                    bp_error *err)
{
    int64_t now = util_now_ms();
    for (size_t i = 0; i < e->n; i++) {
        sq_ev *x = &e->v[i];
        sqlite3_stmt *st = stmt(s, ST_EVENT_INSERT);
        int step;
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_text(st, 2, x->kind, -1, SQLITE_STATIC);
        bind_text(st, 3, x->queue);
        bind_text(st, 4, worker);
        bind_text(st, 5, x->ids.p);
        bind_text(st, 6, x->types.n ? x->types.p : NULL);
        bind_text(st, 7, x->err);
        bind_text(st, 8, data);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            return sq_error(s, step, "write events", err);
        }
        *wrote = true;
    }
    return BP_OK;
}

static void ev_free(sq_events *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].queue);
        free(e->v[i].err);
        free(e->v[i].ids.p);
        free(e->v[i].types.p);
    }
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* After commit: wake `betpipe monitor`s. */
static void ev_announce(sq_broker *s, bool wrote)
{
    if (wrote) {
        wake_send(s->sender, WAKE_KIND_EVENTS, 'V');
    }
}

/* A worker event (online, heartbeat, offline) inside the open transaction. */
static int ev_worker(sq_broker *s, const char *kind, const char *worker, const char *data,
                     bp_error *err)
{
    sqlite3_stmt *st = stmt(s, ST_EVENT_INSERT);
    int step;
    sqlite3_bind_int64(st, 1, util_now_ms());
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_null(st, 3);
    bind_text(st, 4, worker);
    sqlite3_bind_null(st, 5);
    sqlite3_bind_null(st, 6);
    sqlite3_bind_null(st, 7);
    bind_text(st, 8, data);
    step = sqlite3_step(st);
    return step == SQLITE_DONE ? BP_OK : sq_error(s, step, "write events", err);
}

/* ============================================================================================
 * Enqueue
 * ========================================================================================== */

static int sq_enqueue(broker *b, job **jobs, size_t n, int *out_status, bp_error *err)
{
    sq_broker *s = sq(b);
    sq_events ev = {0};
    int rc;
    bool any = false, wrote = false;
    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    for (size_t i = 0; rc == BP_OK && i < n; i++) {
        job *j = jobs[i];
        sqlite3_stmt *st = stmt(s, ST_INSERT);
        int step;
        sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, j->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->queue, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, j->state == JOB_SCHEDULED ? JOB_SCHEDULED : JOB_PENDING);
        sqlite3_bind_int(st, 5, j->priority);
        sqlite3_bind_text(st, 6, j->args, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, j->eta_ms > 0 ? j->eta_ms : j->created_ms);
        bind_ms(st, 8, j->expires_ms);
        sqlite3_bind_int(st, 9, j->max_retries);
        sqlite3_bind_int64(st, 10, j->retry.interval_start_ms);
        sqlite3_bind_int64(st, 11, j->retry.interval_step_ms);
        sqlite3_bind_int64(st, 12, j->retry.interval_max_ms);
        sqlite3_bind_int(st, 13, j->retry.jitter ? 1 : 0);
        sqlite3_bind_int64(st, 14, j->soft_time_limit_ms);
        bind_text(st, 15, j->unique_key);
        bind_text(st, 16, j->parent_id);
        sqlite3_bind_int64(st, 17, j->created_ms);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "enqueue", err);
            break;
        }
        if (sqlite3_changes(s->db) == 1) {
            out_status[i] = BP_OK;
            any = true;
            ev_add(&ev, "job-sent", j->queue, j->id, j->type, NULL);
            continue;
        }
        /* ON CONFLICT DO NOTHING swallowed it: the id exists or the unique key is held. */
        out_status[i] = BP_E_EXISTS;
        st = stmt(s, ST_FIND_HOLDER);
        sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
        bind_text(st, 2, j->unique_key);
        if (sqlite3_step(st) == SQLITE_ROW) {
            util_strlcpy(j->id, (const char *)sqlite3_column_text(st, 0), sizeof j->id);
        }
        sqlite3_reset(st);
    }
    if (rc == BP_OK) {
        rc = ev_write(s, &ev, NULL, NULL, &wrote, err);
    }
    rc = end_txn(s, rc, err);
    ev_free(&ev);
    if (rc == BP_OK && any) {
        wake_send(s->sender, WAKE_KIND_WORK, 'E');
        ev_announce(s, wrote);
    }
    return rc;
}

/* ============================================================================================
 * Exchange: ack, promote, expire, lease - one transaction
 * ========================================================================================== */

static int ack_one(sq_broker *s, const char *worker_id, const broker_ack *a, job_list *finals,
                   sq_events *ev, bp_error *err)
{
    sqlite3_stmt *st;
    int step;
    switch (a->state) {
    case JOB_STARTED:
        /* a notice, not an ack: a worker thread began running it */
        ev_add(ev, "job-started", NULL, a->id, NULL, NULL);
        return BP_OK;
    case JOB_RETRY:
        st = stmt(s, ST_ACK_RETRY);
        sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
        bind_text(st, 2, a->error);
        sqlite3_bind_int64(st, 3, a->retry_at_ms);
        sqlite3_bind_text(st, 4, worker_id, -1, SQLITE_STATIC);
        break;
    case JOB_PENDING:
        st = stmt(s, ST_ACK_GIVEBACK);
        sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, worker_id, -1, SQLITE_STATIC);
        break;
    case JOB_SUCCESS:
    case JOB_FAILURE:
    case JOB_REVOKED:
        st = stmt(s, ST_ACK_FINAL);
        sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)a->state);
        bind_text(st, 3, a->result);
        bind_text(st, 4, a->error);
        sqlite3_bind_int64(st, 5, a->finished_ms);
        sqlite3_bind_int64(st, 6, s->base.opts.result_ttl_ms);
        sqlite3_bind_text(st, 7, worker_id, -1, SQLITE_STATIC);
        {
            size_t before = finals->n;
            int rc = collect_rows(s, st, finals, "ack", err);
            if (rc != BP_OK) {
                return rc;
            }
            if (finals->n == before) {
                log_warn("broker",
                         "ack of job %s ignored: its lease was lost (it was "
                         "reclaimed and will run again)",
                         a->id);
            }
        }
        return BP_OK;
    default:
        return bp_err(err, BP_E_INVAL, "ack of job %s with state %s", a->id,
                      job_state_name(a->state));
    }
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        return sq_error(s, step, "ack", err);
    }
    if (sqlite3_changes(s->db) == 0) {
        log_warn("broker", "ack of job %s ignored: its lease was lost", a->id);
    } else if (a->state == JOB_RETRY) {
        ev_add(ev, "job-retried", NULL, a->id, NULL, a->error ? a->error : "");
    }
    return BP_OK;
}

/* ---- rate limits inside the exchange transaction ------------------------------------------ */

typedef struct sq_rate {
    char *type;
    double interval, tolerance, tat;
    bool dirty;
} sq_rate;

typedef struct sq_rates {
    sq_rate *v;
    size_t n;
} sq_rates;

static void rates_free(sq_rates *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].type);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}

static int rates_load(sq_broker *s, sq_rates *r, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    int step = sqlite3_prepare_v2(
        s->db, "SELECT type, interval_ms, tolerance_ms, tat FROM rate_limits", -1, &st, NULL);
    int rc = BP_OK;
    if (step != SQLITE_OK) {
        return sq_error(s, step, "read rate limits", err);
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        sq_rate *nv = realloc(r->v, (r->n + 1) * sizeof *nv);
        if (!nv) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        r->v = nv;
        r->v[r->n] = (sq_rate){col_dup(st, 0), sqlite3_column_double(st, 1),
                               sqlite3_column_double(st, 2), sqlite3_column_double(st, 3), false};
        if (!r->v[r->n].type) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        r->n++;
    }
    if (rc == BP_OK && step != SQLITE_DONE) {
        rc = sq_error(s, step, "read rate limits", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static sq_rate *rate_find(sq_rates *r, const char *type)
{
    for (size_t i = 0; type && i < r->n; i++) {
        if (strcmp(r->v[i].type, type) == 0) {
            return &r->v[i];
        }
    }
    return NULL;
}

/* The generic cell rate algorithm (broker_rate_schedule): take a token if the next one is due
 * no further ahead than the tolerance. */
static bool rate_take(sq_rate *x, int64_t now)
{
    double t = x->tat < (double)now ? (double)now : x->tat;
    if (t - x->tolerance > (double)now) {
        return false;
    }
    x->tat = t + x->interval;
    x->dirty = true;
    return true;
}

static int rates_save(sq_broker *s, sq_rates *r, bp_error *err)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].dirty) {
            sqlite3_stmt *st = stmt(s, ST_RATE_SAVE);
            int step;
            sqlite3_bind_text(st, 1, r->v[i].type, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 2, r->v[i].tat);
            if ((step = sqlite3_step(st)) != SQLITE_DONE) {
                return sq_error(s, step, "save rate limits", err);
            }
        }
    }
    return BP_OK;
}

/* Lease up to n jobs of `queue` in priority order, skipping types out of tokens: candidates come
 * from the ready index minus the exhausted types; a type that runs dry while we walk them joins
 * the exclusions and the next round looks further. (Jobs of an exhausted type are read past,
 * not moved: with a long backlog of one throttled type at the head of a queue, that is the cost
 * this backend pays per exchange.) */
static int lease_limited(sq_broker *s, const char *queue, const char *worker, int n, int64_t now,
                         sq_rates *rates, job_list *leased, bp_error *err)
{
    json_t *excluded = json_array(), *chosen = json_array();
    int got = 0, rc = BP_OK;
    if (!excluded || !chosen) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < rates->n; i++) {
        if (rates->v[i].tat - rates->v[i].tolerance > (double)now) {
            json_array_append_new(excluded, json_string(rates->v[i].type));
        }
    }
    for (int round = 0; round < 8 && got < n && rc == BP_OK; round++) {
        char *ex = json_dumps(excluded, JSON_COMPACT), *ch = json_dumps(chosen, JSON_COMPACT);
        sqlite3_stmt *st = stmt(s, ST_LEASE_CANDIDATES);
        bool grew = false;
        int rows = 0, step;
        if (!ex || !ch) {
            free(ex);
            free(ch);
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ex, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, n - got);
        sqlite3_bind_text(st, 4, ch, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *type = (const char *)sqlite3_column_text(st, 1);
            sq_rate *r = rate_find(rates, type);
            rows++;
            if (!r || rate_take(r, now)) {
                json_array_append_new(chosen, json_integer(sqlite3_column_int64(st, 0)));
                got++;
            } else {
                bool known = false;
                size_t k;
                json_t *v;
                json_array_foreach(excluded, k, v)
                {
                    known = known || strcmp(json_string_value(v), type) == 0;
                }
                if (!known) {
                    json_array_append_new(excluded, json_string(type));
                    grew = true;
                }
            }
        }
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "lease candidates", err);
        }
        sqlite3_reset(st);
        free(ex);
        free(ch);
        if (rows == 0 || !grew) {
            break;
        }
    }
    if (rc == BP_OK && got > 0) {
        char *ch = json_dumps(chosen, JSON_COMPACT);
        sqlite3_stmt *st = stmt(s, ST_LEASE_SEQS);
        if (!ch) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        sqlite3_bind_text(st, 1, ch, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, worker, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now + s->base.opts.lease_ms);
        sqlite3_bind_int64(st, 4, now);
        free(ch);
        rc = collect_rows(s, st, leased, "lease", err);
    }
done:
    json_decref(excluded);
    json_decref(chosen);
    return rc;
}

static int sq_exchange(broker *b, const char *worker_id, const broker_ack *acks, size_t n_acks,
                       const broker_want *wants, size_t n_wants, job ***out_jobs, size_t *out_n,
                       bp_error *err)
{
    sq_broker *s = sq(b);
    job_list finals = {0}, leased = {0};
    sq_events ev = {0};
    sq_rates rates = {0};
    int64_t now = util_now_ms();
    int64_t n_rates = 0, n_caps = 0;
    bool wrote = false, freed_capacity = false;
    int rc;
    *out_jobs = NULL;
    *out_n = 0;

    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    for (size_t i = 0; rc == BP_OK && i < n_acks; i++) {
        rc = ack_one(s, worker_id, &acks[i], &finals, &ev, err);
        freed_capacity = freed_capacity || acks[i].state != JOB_STARTED;
    }
    ev_finals(&ev, &finals, 0);
    /* Limits cost one tiny query when there are none. */
    if (rc == BP_OK) {
        sqlite3_stmt *st = stmt(s, ST_LIMIT_COUNTS);
        if (sqlite3_step(st) == SQLITE_ROW) {
            n_rates = sqlite3_column_int64(st, 0);
            n_caps = sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
        if (n_rates > 0) {
            rc = rates_load(s, &rates, err);
        }
    }
    for (size_t w = 0; rc == BP_OK && w < n_wants; w++) {
        sqlite3_stmt *st;
        int step, n = wants[w].n;
        size_t before = finals.n, leased_before = leased.n;
        if (n <= 0) {
            continue;
        }
        /* Due delayed jobs become PENDING first, so they compete by priority like the rest. */
        st = stmt(s, ST_PROMOTE);
        sqlite3_bind_text(st, 1, wants[w].queue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "promote", err);
            break;
        }
        /* A job that missed its expires never runs: mark it before leasing. */
        st = stmt(s, ST_EXPIRE_QUEUE);
        sqlite3_bind_text(st, 1, wants[w].queue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, s->base.opts.result_ttl_ms);
        rc = collect_rows(s, st, &finals, "expire", err);
        if (rc != BP_OK) {
            break;
        }
        ev_finals(&ev, &finals, before);
        /* The queue's cluster-wide cap counts every lease of the queue, whoever holds it. */
        if (n_caps > 0) {
            st = stmt(s, ST_QUEUE_CAP);
            sqlite3_bind_text(st, 1, wants[w].queue, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0) {
                int cap = sqlite3_column_int(st, 0);
                sqlite3_stmt *run = stmt(s, ST_QUEUE_RUNNING);
                int running = 0;
                sqlite3_bind_text(run, 1, wants[w].queue, -1, SQLITE_STATIC);
                if (sqlite3_step(run) == SQLITE_ROW) {
                    running = sqlite3_column_int(run, 0);
                }
                sqlite3_reset(run);
                if (cap - running < n) {
                    n = cap - running;
                }
            }
            sqlite3_reset(st);
            if (n <= 0) {
                continue;
            }
        }
        if (n_rates > 0) {
            rc = lease_limited(s, wants[w].queue, worker_id, n, now, &rates, &leased, err);
        } else {
            st = stmt(s, ST_LEASE);
            sqlite3_bind_text(st, 1, wants[w].queue, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, worker_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now + s->base.opts.lease_ms);
            sqlite3_bind_int64(st, 4, now);
            sqlite3_bind_int(st, 5, n);
            rc = collect_rows(s, st, &leased, "lease", err);
        }
        for (size_t i = leased_before; rc == BP_OK && i < leased.n; i++) {
            ev_add(&ev, "job-received", leased.items[i]->queue, leased.items[i]->id,
                   leased.items[i]->type, NULL);
        }
    }
    if (rc == BP_OK && n_rates > 0) {
        rc = rates_save(s, &rates, err);
    }
    if (rc == BP_OK) {
        rc = ev_write(s, &ev, worker_id, NULL, &wrote, err);
    }
    rc = end_txn(s, rc, err);
    ev_free(&ev);
    rates_free(&rates);

    if (rc != BP_OK) {
        job_list_free(&finals);
        job_list_free(&leased);
        return rc;
    }
    ev_announce(s, wrote);
    /* A job that left a capped queue makes room: wake the workers waiting for it. */
    if (n_caps > 0 && freed_capacity) {
        wake_send(s->sender, WAKE_KIND_WORK, 'E');
    }
    publish_finals(s, &finals);
    *out_jobs = leased.items;
    *out_n = leased.n;
    return BP_OK;
}

static int sq_lease_one(broker *b, const char *worker_id, const char *id, job **out, bp_error *err)
{
    sq_broker *s = sq(b);
    job_list got = {0};
    int64_t now = util_now_ms();
    sqlite3_stmt *st;
    int rc;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    if (rc == BP_OK) {
        st = stmt(s, ST_LEASE_ONE);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, worker_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now + s->base.opts.lease_ms);
        sqlite3_bind_int64(st, 4, now);
        rc = collect_rows(s, st, &got, "lease", err);
    }
    if (rc == BP_OK && got.n > 0) {
        /* run --wait runs the job in this very process: received and started at once */
        sq_events ev = {0};
        bool wrote = false;
        ev_add(&ev, "job-received", got.items[0]->queue, id, got.items[0]->type, NULL);
        ev_add(&ev, "job-started", got.items[0]->queue, id, NULL, NULL);
        rc = ev_write(s, &ev, worker_id, NULL, &wrote, err);
        ev_free(&ev);
    }
    rc = end_txn(s, rc, err);
    if (rc != BP_OK) {
        job_list_free(&got);
        return rc;
    }
    ev_announce(s, got.n > 0);
    if (got.n == 0) {
        job *cur = NULL;
        free(got.items);
        if (b->ops->get(b, id, &cur, NULL) != BP_OK) {
            return bp_err(err, BP_E_NOTFOUND, "no job %s", id);
        }
        rc = bp_err(err, BP_E_STATE, "job %s is %s, not runnable now", id,
                    job_state_name(cur->state));
        job_free(cur);
        return rc;
    }
    *out = got.items[0];
    free(got.items);
    return BP_OK;
}

/* ============================================================================================
 * Heartbeat, worker registry, reaper
 * ========================================================================================== */

static int sq_heartbeat(broker *b, const broker_worker_info *w, const json_t *stats,
                        const json_t *progress, json_t **out_revoked, bp_error *err)
{
    sq_broker *s = sq(b);
    int64_t now = util_now_ms();
    char *queues = json_dumps(w->queues ? w->queues : json_object(), JSON_COMPACT);
    char *stats_text = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    json_t *revoked = json_array();
    sqlite3_stmt *st;
    int rc, step;
    *out_revoked = NULL;
    if (!queues || !revoked) {
        free(queues);
        free(stats_text);
        json_decref(revoked);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    if (rc == BP_OK) {
        /* online the first time (or back after being declared offline), heartbeat after that */
        const char *kind = "worker-online";
        char *data = broker_worker_event_data(w, stats);
        st = stmt(s, ST_WORKER_STATE);
        sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_NULL) {
            kind = "worker-heartbeat";
        }
        sqlite3_reset(st);
        rc = data ? ev_worker(s, kind, w->id, data, err) : bp_err(err, BP_E_NOMEM, "out of memory");
        free(data);
    }
    if (rc == BP_OK) {
        st = stmt(s, ST_WORKER_UPSERT);
        sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, w->host, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, w->pid);
        sqlite3_bind_text(st, 4, queues, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, w->started_ms);
        sqlite3_bind_int64(st, 6, now);
        bind_text(st, 7, stats_text);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "worker heartbeat", err);
        }
    }
    if (rc == BP_OK) {
        st = stmt(s, ST_RENEW);
        sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now + s->base.opts.lease_ms);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "renew leases", err);
        }
    }
    if (rc == BP_OK && progress) {
        const char *id;
        json_t *v;
        json_object_foreach((json_t *)(uintptr_t)progress, id, v)
        {
            st = stmt(s, ST_PROGRESS);
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, w->id, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 3, json_number_value(json_array_get(v, 0)));
            bind_text(st, 4, json_string_value(json_array_get(v, 1)));
            step = sqlite3_step(st);
            if (step != SQLITE_DONE) {
                rc = sq_error(s, step, "store progress", err);
                break;
            }
        }
    }
    if (rc == BP_OK) {
        st = stmt(s, ST_REVOKED_RUNNING);
        sqlite3_bind_text(st, 1, w->id, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            json_array_append_new(revoked, json_pack("{s:s, s:b}", "id",
                                                     (const char *)sqlite3_column_text(st, 0),
                                                     "terminate", sqlite3_column_int(st, 1) >= 2));
        }
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "read revokes", err);
        }
    }
    rc = end_txn(s, rc, err);
    free(queues);
    free(stats_text);
    if (rc != BP_OK) {
        json_decref(revoked);
        return rc;
    }
    ev_announce(s, true);
    *out_revoked = revoked;
    return BP_OK;
}

static int sq_worker_stop(broker *b, const char *worker_id, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st;
    int rc, step;
    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    if (rc == BP_OK) {
        st = stmt(s, ST_RELEASE_WORKER);
        sqlite3_bind_text(st, 1, worker_id, -1, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "release leases", err);
        }
    }
    if (rc == BP_OK) {
        st = stmt(s, ST_WORKER_DELETE);
        sqlite3_bind_text(st, 1, worker_id, -1, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "unregister worker", err);
        } else if (sqlite3_changes(s->db) > 0) {
            rc = ev_worker(s, "worker-offline", worker_id, "{\"reason\":\"stopped\"}", err);
        }
    }
    rc = end_txn(s, rc, err);
    if (rc == BP_OK) {
        wake_send(s->sender, WAKE_KIND_WORK, 'E');
        ev_announce(s, true);
    }
    return rc;
}

static bool pid_alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Reclaim every STARTED job that `select_sql` (bound with ?1: text or integer) lists as
 * (id, crashes, worker): a crash is counted; past max_crashes the job is DEAD, otherwise it goes
 * back to PENDING. The ids are collected before any update so the scan never sees its own
 * changes. */
static int reclaim(sq_broker *s, const char *select_sql, const char *bind1, int64_t bind_i,
                   const char *why, job_list *finals, sq_events *ev, int64_t *out_requeued,
                   int64_t *out_dead, bp_error *err)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int64_t now = util_now_ms();
    int rc = BP_OK, step;
    job_list victims = {0};

    step = sqlite3_prepare_v2(s->db, select_sql, -1, &sel, NULL);
    if (step != SQLITE_OK) {
        return sq_error(s, step, "reap select", err);
    }
    if (bind1) {
        sqlite3_bind_text(sel, 1, bind1, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(sel, 1, bind_i);
    }
    while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
        job *v = job_new();
        if (!v || job_list_push(&victims, v) != BP_OK) {
            job_free(v);
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        util_strlcpy(v->id, (const char *)sqlite3_column_text(sel, 0), sizeof v->id);
        v->crashes = sqlite3_column_int(sel, 1) + 1;
        v->worker = col_dup(sel, 2);
    }
    if (rc == BP_OK && step != SQLITE_DONE) {
        rc = sq_error(s, step, "reap scan", err);
    }
    sqlite3_finalize(sel);
    if (rc != BP_OK || victims.n == 0) {
        job_list_free(&victims);
        return rc;
    }
    step = sqlite3_prepare_v2(
        s->db,
        "UPDATE jobs SET crashes = crashes + 1, worker = CASE WHEN crashes + 1 >= ?2 THEN worker "
        "ELSE NULL END, lease_until = NULL, state = CASE WHEN crashes + 1 >= ?2 THEN 8 ELSE 0 "
        "END, finished_ms = CASE WHEN crashes + 1 >= ?2 THEN ?3 ELSE NULL END, "
        "result_expires_at = CASE WHEN crashes + 1 >= ?2 THEN ?3 + ?4 ELSE NULL END, error = "
        "?5 WHERE id = ?1 AND state = 2 RETURNING " JOB_COLS,
        -1, &upd, NULL);
    if (step != SQLITE_OK) {
        job_list_free(&victims);
        return sq_error(s, step, "reap update", err);
    }
    for (size_t i = 0; rc == BP_OK && i < victims.n; i++) {
        const job *v = victims.items[i];
        const char *worker = v->worker ? v->worker : "?";
        char *error_text =
            v->crashes >= s->base.opts.max_crashes
                ? util_asprintf("dead: its worker died %d times while running it (last: %s, %s)",
                                v->crashes, worker, why)
                : util_asprintf("requeued after worker %s was lost (%s)", worker, why);
        sqlite3_reset(upd);
        sqlite3_bind_text(upd, 1, v->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(upd, 2, s->base.opts.max_crashes);
        sqlite3_bind_int64(upd, 3, now);
        sqlite3_bind_int64(upd, 4, s->base.opts.result_ttl_ms);
        bind_text(upd, 5, error_text);
        step = sqlite3_step(upd);
        if (step == SQLITE_ROW) {
            job *j = row_to_job(upd);
            if (j && j->state == JOB_DEAD) {
                (*out_dead)++;
                log_error("broker", "job %s (%s) is DEAD after %d crashes of its worker", j->id,
                          j->type, j->crashes);
                if (job_list_push(finals, j) != BP_OK) {
                    job_free(j);
                }
            } else {
                (*out_requeued)++;
                log_warn("broker", "job %s requeued: worker %s lost (%s)", v->id, worker, why);
                if (j) {
                    ev_add(ev, "job-requeued", j->queue, j->id, NULL, error_text);
                }
                job_free(j);
            }
            while (sqlite3_step(upd) == SQLITE_ROW) {
            }
        } else if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "reap", err);
        }
        free(error_text);
    }
    sqlite3_finalize(upd);
    job_list_free(&victims);
    return rc;
}

static int sq_reap(broker *b, broker_reap_report *out, bp_error *err)
{
    sq_broker *s = sq(b);
    job_list finals = {0};
    sq_events ev = {0};
    int64_t now = util_now_ms();
    sqlite3_stmt *st = NULL;
    int rc, step;
    bool wrote = false;
    broker_reap_report rep = {0};

    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);

    /* 1. Workers that are gone: same host and the pid no longer exists, or silent too long.
     * They stay listed as offline for a while (`betpipe status`). */
    if (rc == BP_OK) {
        char **lost = NULL;
        size_t n_lost = 0;
        step = sqlite3_prepare_v2(s->db,
                                  "SELECT id, host, pid, heartbeat_ms FROM workers WHERE "
                                  "offline_ms IS NULL",
                                  -1, &st, NULL);
        if (step != SQLITE_OK) {
            rc = sq_error(s, step, "read workers", err);
        }
        while (rc == BP_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *host = (const char *)sqlite3_column_text(st, 1);
            int pid = sqlite3_column_int(st, 2);
            int64_t hb = sqlite3_column_int64(st, 3);
            bool same_host = host && strcmp(host, s->hostname) == 0;
            if ((same_host && !pid_alive(pid)) || hb < now - s->base.opts.worker_timeout_ms) {
                char **nl = realloc(lost, (n_lost + 1) * sizeof *nl);
                if (nl) {
                    lost = nl;
                    lost[n_lost++] = strdup((const char *)sqlite3_column_text(st, 0));
                }
            }
        }
        sqlite3_finalize(st);
        st = NULL;
        for (size_t i = 0; rc == BP_OK && i < n_lost; i++) {
            if (!lost[i]) {
                continue;
            }
            rc = reclaim(s, "SELECT id, crashes, worker FROM jobs WHERE worker = ?1 AND state = 2",
                         lost[i], 0, "the worker process is gone", &finals, &ev, &rep.requeued,
                         &rep.dead, err);
            if (rc == BP_OK) {
                sqlite3_stmt *off = NULL;
                if (sqlite3_prepare_v2(s->db, "UPDATE workers SET offline_ms = ?2 WHERE id = ?1",
                                       -1, &off, NULL) == SQLITE_OK) {
                    sqlite3_bind_text(off, 1, lost[i], -1, SQLITE_STATIC);
                    sqlite3_bind_int64(off, 2, now);
                    sqlite3_step(off);
                }
                sqlite3_finalize(off);
                rep.workers_lost++;
                rc = ev_worker(s, "worker-offline", lost[i],
                               "{\"reason\":\"the worker process is gone or silent\"}", err);
                wrote = true;
                log_warn("broker", "worker %s is offline; its jobs were reclaimed", lost[i]);
            }
        }
        for (size_t i = 0; i < n_lost; i++) {
            free(lost[i]);
        }
        free(lost);
    }
    /* 2. Leases that ran out although their worker still looks alive (hung, or a worker
     * without a registry row). */
    if (rc == BP_OK) {
        rc = reclaim(s,
                     "SELECT id, crashes, worker FROM jobs INDEXED BY jobs_running WHERE state = "
                     "2 AND lease_until < ?1 LIMIT 1000",
                     NULL, now, "its lease expired", &finals, &ev, &rep.requeued, &rep.dead, err);
    }
    /* 3. Waiting jobs past their expires, on every queue. */
    if (rc == BP_OK) {
        step = sqlite3_prepare_v2(
            s->db,
            "UPDATE jobs SET state = 7, finished_ms = ?1, result_expires_at = ?1 + ?2, error = "
            "'expired: not started before ' || strftime('%Y-%m-%dT%H:%M:%fZ', expires_at / "
            "1000.0, 'unixepoch') WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_expiry WHERE "
            "state IN (0, 1, 3) AND expires_at IS NOT NULL AND expires_at <= ?1 LIMIT 1000) "
            "RETURNING " JOB_COLS,
            -1, &st, NULL);
        if (step != SQLITE_OK) {
            rc = sq_error(s, step, "expire", err);
        } else {
            size_t before = finals.n;
            sqlite3_bind_int64(st, 1, now);
            sqlite3_bind_int64(st, 2, s->base.opts.result_ttl_ms);
            rc = collect_rows(s, st, &finals, "expire", err);
            rep.expired = (int64_t)(finals.n - before);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    /* 4. Finished records past the result TTL. */
    if (rc == BP_OK) {
        step = sqlite3_prepare_v2(s->db,
                                  "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE "
                                  "result_expires_at IS NOT NULL AND result_expires_at < ?1 "
                                  "LIMIT 5000)",
                                  -1, &st, NULL);
        if (step != SQLITE_OK) {
            rc = sq_error(s, step, "purge results", err);
        } else {
            sqlite3_bind_int64(st, 1, now);
            step = sqlite3_step(st);
            if (step != SQLITE_DONE) {
                rc = sq_error(s, step, "purge results", err);
            } else {
                rep.results_purged = sqlite3_changes(s->db);
            }
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    /* 5. The event log keeps the last BROKER_EVENTS_MAX entries; offline workers an hour. */
    if (rc == BP_OK) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - %d; "
                 "DELETE FROM workers WHERE offline_ms < %lld",
                 BROKER_EVENTS_MAX, (long long)(now - SQ_OFFLINE_KEEP_MS));
        rc = exec_sql(s, sql, err);
    }
    ev_finals(&ev, &finals, 0);
    if (rc == BP_OK) {
        rc = ev_write(s, &ev, NULL, NULL, &wrote, err);
    }
    rc = end_txn(s, rc, err);
    ev_free(&ev);
    if (rc == BP_OK) {
        if (rep.requeued > 0) {
            wake_send(s->sender, WAKE_KIND_WORK, 'E');
        }
        ev_announce(s, wrote);
        if (out) {
            *out = rep;
        }
    }
    publish_finals(s, &finals);
    return rc;
}

/* ============================================================================================
 * Queries and control
 * ========================================================================================== */

static int sq_next_due(broker *b, const char *const *queues, size_t n_queues, int64_t *out_ms,
                       bp_error *err)
{
    sq_broker *s = sq(b);
    int64_t best = INT64_MAX;
    int rc = BP_OK;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n_queues; i++) {
        sqlite3_stmt *st = stmt(s, ST_NEXT_DUE);
        int step;
        sqlite3_bind_text(st, 1, queues[i], -1, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            int64_t v = sqlite3_column_int64(st, 0);
            if (v < best) {
                best = v;
            }
        } else if (step != SQLITE_ROW && step != SQLITE_DONE) {
            rc = sq_error(s, step, "next due", err);
            break;
        }
        sqlite3_reset(st);
    }
    /* The next token of a rate-limited type that is out of them now. (Whether such a job waits
     * in these queues is not asked: at worst one needless wake-up, one interval after the
     * type's last lease.) */
    if (rc == BP_OK) {
        sqlite3_stmt *st = NULL;
        int step = sqlite3_prepare_v2(s->db,
                                      "SELECT min(tat - tolerance_ms) FROM rate_limits WHERE "
                                      "tat - tolerance_ms > ?1",
                                      -1, &st, NULL);
        if (step == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, util_now_ms());
            step = sqlite3_step(st);
            if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
                int64_t v = (int64_t)sqlite3_column_double(st, 0) + 1;
                if (v < best) {
                    best = v;
                }
            }
        }
        if (step != SQLITE_ROW && step != SQLITE_DONE) {
            rc = sq_error(s, step, "next token", err);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->lock);
    *out_ms = best;
    return rc;
}

static int sq_get(broker *b, const char *id, job **out, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st;
    int step, rc = BP_OK;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    st = stmt(s, ST_GET);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *out = row_to_job(st);
        if (!*out) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
        }
    } else if (step == SQLITE_DONE) {
        rc = bp_err(err, BP_E_NOTFOUND, "no job %s", id);
    } else {
        rc = sq_error(s, step, "get job", err);
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int sq_revoke(broker *b, const char *id, bool terminate, job_state *out_state, bp_error *err)
{
    sq_broker *s = sq(b);
    job_list finals = {0};
    sqlite3_stmt *st;
    int rc, step;
    bool running = false;
    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    if (rc == BP_OK) {
        st = stmt(s, ST_REVOKE_WAITING);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, util_now_ms());
        sqlite3_bind_int64(st, 3, s->base.opts.result_ttl_ms);
        rc = collect_rows(s, st, &finals, "revoke", err);
    }
    if (rc == BP_OK && finals.n > 0) {
        sq_events ev = {0};
        bool wrote = false;
        ev_finals(&ev, &finals, 0);
        rc = ev_write(s, &ev, NULL, NULL, &wrote, err);
        ev_free(&ev);
    }
    if (rc == BP_OK && finals.n == 0) {
        st = stmt(s, ST_REVOKE_RUNNING);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, terminate ? 2 : 1);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "revoke", err);
        } else {
            running = sqlite3_changes(s->db) > 0;
        }
    }
    rc = end_txn(s, rc, err);
    if (rc != BP_OK) {
        job_list_free(&finals);
        return rc;
    }
    if (finals.n > 0) {
        *out_state = JOB_REVOKED;
        ev_announce(s, true);
        publish_finals(s, &finals);
        return BP_OK;
    }
    if (running) {
        /* The holder learns it at its next heartbeat; wake it so that is now. */
        *out_state = JOB_STARTED;
        wake_send(s->sender, WAKE_KIND_WORK, 'R');
        return BP_OK;
    }
    {
        job *cur = NULL;
        if (sq_get(b, id, &cur, NULL) != BP_OK) {
            return bp_err(err, BP_E_NOTFOUND, "no job %s", id);
        }
        *out_state = cur->state;
        rc = bp_err(err, BP_E_STATE, "job %s already finished (%s); nothing to revoke", id,
                    job_state_name(cur->state));
        job_free(cur);
        return rc;
    }
}

static int sq_purge(broker *b, const char *queue, int64_t *out_removed, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st;
    int step, rc = BP_OK;
    pthread_mutex_lock(&s->lock);
    st = stmt(s, ST_PURGE);
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        rc = sq_error(s, step, "purge", err);
    } else {
        *out_removed = sqlite3_changes(s->db);
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static const char *const stat_names[JOB_STATE_COUNT] = {
    [JOB_PENDING] = "waiting", [JOB_SCHEDULED] = "delayed", [JOB_STARTED] = "running",
    [JOB_RETRY] = "retry",     [JOB_SUCCESS] = "succeeded", [JOB_FAILURE] = "failed",
    [JOB_REVOKED] = "revoked", [JOB_EXPIRED] = "expired",   [JOB_DEAD] = "dead",
};

static json_t *empty_queue_stats(void)
{
    json_t *o = json_object();
    for (int i = 0; i < JOB_STATE_COUNT; i++) {
        json_object_set_new(o, stat_names[i], json_integer(0));
    }
    return o;
}

static int sq_stats(broker *b, json_t **out, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st = NULL;
    json_t *queues = json_object(), *workers = json_array();
    int step, rc = BP_OK;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    step = sqlite3_prepare_v2(
        s->db, "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state", -1, &st, NULL);
    if (step != SQLITE_OK) {
        rc = sq_error(s, step, "stats", err);
    }
    while (rc == BP_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *q = (const char *)sqlite3_column_text(st, 0);
        int state = sqlite3_column_int(st, 1);
        json_t *qo = json_object_get(queues, q);
        if (!qo) {
            qo = empty_queue_stats();
            json_object_set_new(queues, q, qo);
        }
        if (state >= 0 && state < JOB_STATE_COUNT) {
            json_object_set_new(qo, stat_names[state], json_integer(sqlite3_column_int64(st, 2)));
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == BP_OK) {
        step = sqlite3_prepare_v2(s->db,
                                  "SELECT id, host, pid, queues, started_ms, heartbeat_ms, stats, "
                                  "offline_ms FROM workers ORDER BY started_ms",
                                  -1, &st, NULL);
        if (step != SQLITE_OK) {
            rc = sq_error(s, step, "stats", err);
        }
        while (rc == BP_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
            char started[40], hb[40];
            const char *stats_text = (const char *)sqlite3_column_text(st, 6);
            json_t *wq = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
            json_t *ws = stats_text ? json_loads(stats_text, 0, NULL) : NULL;
            util_format_iso8601(sqlite3_column_int64(st, 4), started, sizeof started);
            util_format_iso8601(sqlite3_column_int64(st, 5), hb, sizeof hb);
            int64_t age = util_now_ms() - sqlite3_column_int64(st, 5);
            bool offline = sqlite3_column_type(st, 7) != SQLITE_NULL;
            json_t *wo = json_pack("{s:s, s:s, s:i, s:o, s:s, s:s, s:I, s:o, s:b}", "id",
                                   (const char *)sqlite3_column_text(st, 0), "host",
                                   (const char *)sqlite3_column_text(st, 1), "pid",
                                   sqlite3_column_int(st, 2), "queues", wq ? wq : json_object(),
                                   "started", started, "heartbeat", hb, "heartbeat_age_ms",
                                   (json_int_t)age, "stats", ws ? ws : json_object(), "online",
                                   !offline && age < s->base.opts.worker_timeout_ms);
            if (wo && offline) {
                char off[40];
                util_format_iso8601(sqlite3_column_int64(st, 7), off, sizeof off);
                json_object_set_new(wo, "offline_since", json_string(off));
            }
            json_array_append_new(workers, wo);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != BP_OK) {
        json_decref(queues);
        json_decref(workers);
        return rc;
    }
    *out = json_pack("{s:s, s:o, s:o}", "broker", "sqlite", "queues", queues, "workers", workers);
    return *out ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
}

static int sq_list(broker *b, const broker_filter *f, json_t **out, bp_error *err)
{
    static const char sql[] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR queue = ?1) "
                              "AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR type = ?3) "
                              "ORDER BY seq DESC LIMIT ?4";
    sq_broker *s = sq(b);
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int step, rc = BP_OK;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    step = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (step != SQLITE_OK) {
        rc = sq_error(s, step, "list", err);
    } else {
        bind_text(st, 1, f ? f->queue : NULL);
        if (f && f->state >= 0) {
            sqlite3_bind_int(st, 2, f->state);
        }
        bind_text(st, 3, f ? f->type : NULL);
        sqlite3_bind_int(st, 4, f && f->limit > 0 ? f->limit : 100);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            job *j = row_to_job(st);
            if (j) {
                json_array_append_new(arr, job_to_json(j));
                job_free(j);
            }
        }
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "list", err);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return BP_OK;
}

/* ============================================================================================
 * Wake-ups, lifecycle
 * ========================================================================================== */

#define SQ_CHECKPOINT_EVERY_MS         250
#define SQ_CLIENT_AUTOCHECKPOINT_PAGES 8192

static void *checkpointer_main(void *arg)
{
    sq_broker *s = arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        log_warn("broker", "no checkpoint thread for %s: %s", s->path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 1000);
    pthread_mutex_lock(&s->ckpt_lock);
    while (!s->ckpt_stop) {
        struct timespec until;
        int log_frames = 0, done_frames = 0;
        pthread_mutex_unlock(&s->ckpt_lock);
        /* PASSIVE never blocks readers or writers; it copies what it can and syncs. */
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
        pthread_mutex_lock(&s->ckpt_lock);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += SQ_CHECKPOINT_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (!s->ckpt_stop) {
            pthread_cond_timedwait(&s->ckpt_cond, &s->ckpt_lock, &until);
        }
    }
    pthread_mutex_unlock(&s->ckpt_lock);
    sqlite3_close(db);
    return NULL;
}

static int sq_subscribe(broker *b, int kinds, bp_error *err)
{
    sq_broker *s = sq(b);
    if (s->listener) {
        return bp_err(err, BP_E_STATE, "already subscribed");
    }
    /* One listener per process role: a daemon listens for work, a waiting client for done. */
    int rc = wake_listen(s->run_dir, (kinds & BROKER_WAKE_WORK) ? WAKE_KIND_WORK : WAKE_KIND_DONE,
                         &s->listener, err);
    if (rc == BP_OK && (kinds & BROKER_WAKE_WORK) && !s->checkpointer_running) {
        pthread_mutex_lock(&s->lock);
        sqlite3_wal_autocheckpoint(s->db, 0);
        pthread_mutex_unlock(&s->lock);
        s->checkpointer_running = pthread_create(&s->checkpointer, NULL, checkpointer_main, s) == 0;
        if (!s->checkpointer_running) {
            sqlite3_wal_autocheckpoint(s->db, SQ_CLIENT_AUTOCHECKPOINT_PAGES);
        }
    }
    return rc;
}

static int sq_wake_fd(broker *b)
{
    sq_broker *s = sq(b);
    return s->listener ? wake_listener_fd(s->listener) : -1;
}

static int sq_drain_wake(broker *b)
{
    sq_broker *s = sq(b);
    unsigned bits;
    int out = 0;
    if (!s->listener) {
        return 0;
    }
    bits = wake_drain(s->listener);
    if (bits & WAKE_BIT('E')) {
        out |= BROKER_WAKE_WORK;
    }
    if (bits & WAKE_BIT('R')) {
        out |= BROKER_WAKE_REVOKE | BROKER_WAKE_WORK;
    }
    if (bits & WAKE_BIT('F')) {
        out |= BROKER_WAKE_DONE;
    }
    return out;
}

static void sq_destroy(broker *b)
{
    sq_broker *s = sq(b);
    if (!s) {
        return;
    }
    if (s->checkpointer_running) {
        pthread_mutex_lock(&s->ckpt_lock);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cond);
        pthread_mutex_unlock(&s->ckpt_lock);
        pthread_join(s->checkpointer, NULL);
    }
    pthread_mutex_destroy(&s->ckpt_lock);
    pthread_cond_destroy(&s->ckpt_cond);
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(s->st[i]);
    }
    sqlite3_close(s->db);
    wake_listener_close(s->listener);
    wake_listener_close(s->ev_listener);
    wake_sender_close(s->sender);
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s->run_dir);
    free(s);
}

/* ============================================================================================
 * Limits, events, diagnostics
 * ========================================================================================== */

static int sq_set_rate_limit(broker *b, const char *type, const char *rate, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st = NULL;
    int64_t count = 0, period = 0;
    double interval = 0, tolerance = 0;
    int rc, step;
    if (!type || !*type || strchr(type, ' ')) {
        return bp_err(err, BP_E_INVAL, "rate limit: '%s' is not a job type name", type ? type : "");
    }
    if (rate && *rate) {
        if ((rc = broker_rate_parse(rate, &count, &period, err)) != BP_OK) {
            return rc;
        }
        broker_rate_schedule(count, period, &interval, &tolerance);
    }
    pthread_mutex_lock(&s->lock);
    rc = begin(s, err);
    if (rc == BP_OK) {
        /* a changed rate starts from a clean schedule (tat 0) */
        step = sqlite3_prepare_v2(
            s->db,
            rate && *rate ? "INSERT INTO rate_limits (type, rate, interval_ms, tolerance_ms, tat) "
                            "VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT(type) DO UPDATE SET rate = "
                            "excluded.rate, interval_ms = excluded.interval_ms, tolerance_ms = "
                            "excluded.tolerance_ms, tat = 0"
                          : "DELETE FROM rate_limits WHERE type = ?1",
            -1, &st, NULL);
        if (step == SQLITE_OK) {
            sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
            if (rate && *rate) {
                sqlite3_bind_text(st, 2, rate, -1, SQLITE_STATIC);
                sqlite3_bind_double(st, 3, interval);
                sqlite3_bind_double(st, 4, tolerance);
            }
            step = sqlite3_step(st);
        }
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "set rate limit", err);
        }
        sqlite3_finalize(st);
    }
    rc = end_txn(s, rc, err);
    if (rc == BP_OK) {
        /* workers sleeping until a token look again under the new rule */
        wake_send(s->sender, WAKE_KIND_WORK, 'E');
        log_info("broker", "rate limit type=%s rate=%s", type, rate && *rate ? rate : "none");
    }
    return rc;
}

static int sq_set_queue_cap(broker *b, const char *queue, int max, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st = NULL;
    int rc = BP_OK, step;
    if (!queue || !*queue || max < 0) {
        return bp_err(err, BP_E_INVAL, "queue cap: bad queue '%s' or cap %d", queue ? queue : "",
                      max);
    }
    pthread_mutex_lock(&s->lock);
    step = sqlite3_prepare_v2(s->db,
                              max > 0 ? "INSERT INTO queue_caps (queue, max) VALUES (?1, ?2) ON "
                                        "CONFLICT(queue) DO UPDATE SET max = excluded.max"
                                      : "DELETE FROM queue_caps WHERE queue = ?1",
                              -1, &st, NULL);
    if (step == SQLITE_OK) {
        sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
        if (max > 0) {
            sqlite3_bind_int(st, 2, max);
        }
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE) {
        rc = sq_error(s, step, "set queue cap", err);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (rc == BP_OK) {
        wake_send(s->sender, WAKE_KIND_WORK, 'E');
    }
    return rc;
}

static int sq_limits(broker *b, json_t **out, bp_error *err)
{
    sq_broker *s = sq(b);
    sqlite3_stmt *st = NULL;
    json_t *rl = json_object(), *qc = json_object();
    int rc = BP_OK, step;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    step = sqlite3_prepare_v2(s->db, "SELECT type, rate FROM rate_limits ORDER BY type", -1, &st,
                              NULL);
    while (step == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_object_set_new(rl, (const char *)sqlite3_column_text(st, 0),
                            json_string((const char *)sqlite3_column_text(st, 1)));
        step = SQLITE_OK;
    }
    if (step != SQLITE_DONE) {
        rc = sq_error(s, step, "read limits", err);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == BP_OK) {
        step = sqlite3_prepare_v2(s->db, "SELECT queue, max FROM queue_caps ORDER BY queue", -1,
                                  &st, NULL);
        while (step == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
            json_object_set_new(qc, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int(st, 1)));
            step = SQLITE_OK;
        }
        if (step != SQLITE_DONE) {
            rc = sq_error(s, step, "read limits", err);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == BP_OK) {
        *out = json_pack("{s:O, s:O}", "rate_limits", rl, "queue_caps", qc);
        if (!*out) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    json_decref(rl);
    json_decref(qc);
    return rc;
}

/* Rows of the event log after seq `after` (at most 1000), expanded into out; *out_last gets the
 * last seq read. */
static int read_events(sq_broker *s, int64_t after, json_t *out, int64_t *out_last, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = BP_OK;
    int step = sqlite3_prepare_v2(s->db,
                                  "SELECT seq, ts, kind, queue, worker, ids, types, err, data "
                                  "FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1000",
                                  -1, &st, NULL);
    *out_last = after;
    if (step != SQLITE_OK) {
        return sq_error(s, step, "read events", err);
    }
    sqlite3_bind_int64(st, 1, after);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        *out_last = sqlite3_column_int64(st, 0);
        broker_event_expand(
            out, sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
            (const char *)sqlite3_column_text(st, 3), (const char *)sqlite3_column_text(st, 4),
            (const char *)sqlite3_column_text(st, 5), (const char *)sqlite3_column_text(st, 6),
            (const char *)sqlite3_column_text(st, 7), (const char *)sqlite3_column_text(st, 8));
    }
    if (step != SQLITE_DONE) {
        rc = sq_error(s, step, "read events", err);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The cursor is {"seq": last seq read}. Waiting uses an `e-` wake socket, bound before the
 * first read so that an event written between a read and the wait still wakes us. */
static int sq_events_read(broker *b, json_t *cursor, int64_t block_ms, json_t **out, bp_error *err)
{
    sq_broker *s = sq(b);
    json_t *arr = json_array();
    int64_t deadline = util_now_ms() + (block_ms > 0 ? block_ms : 0);
    int64_t seq;
    int rc = BP_OK;
    *out = NULL;
    if (!json_is_object(cursor) || !arr) {
        json_decref(arr);
        return bp_err(err, BP_E_INVAL, "events: the cursor must be a JSON object");
    }
    if (!s->ev_listener &&
        (rc = wake_listen(s->run_dir, WAKE_KIND_EVENTS, &s->ev_listener, err)) != BP_OK) {
        json_decref(arr);
        return rc;
    }
    if (!json_is_integer(json_object_get(cursor, "seq"))) {
        sqlite3_stmt *st = NULL;
        int64_t last = 0;
        pthread_mutex_lock(&s->lock);
        if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0) FROM events", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            last = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
        pthread_mutex_unlock(&s->lock);
        json_object_set_new(cursor, "seq", json_integer(last));
    }
    seq = json_integer_value(json_object_get(cursor, "seq"));
    for (;;) {
        int64_t last = seq, left;
        wake_drain(s->ev_listener);
        pthread_mutex_lock(&s->lock);
        rc = read_events(s, seq, arr, &last, err);
        pthread_mutex_unlock(&s->lock);
        if (rc != BP_OK) {
            break;
        }
        seq = last;
        left = deadline - util_now_ms();
        if (json_array_size(arr) > 0 || left <= 0) {
            break;
        }
        struct pollfd p = {wake_listener_fd(s->ev_listener), POLLIN, 0};
        poll(&p, 1, (int)(left > 1000 ? 1000 : left));
    }
    json_object_set_new(cursor, "seq", json_integer(seq));
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return BP_OK;
}

static int sq_diagnose(broker *b, json_t **out, bp_error *err)
{
    (void)b;
    *out = json_array();
    return *out ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
}

static const broker_ops sq_ops = {
    .name = "sqlite",
    .enqueue = sq_enqueue,
    .exchange = sq_exchange,
    .lease_one = sq_lease_one,
    .heartbeat = sq_heartbeat,
    .worker_stop = sq_worker_stop,
    .reap = sq_reap,
    .next_due = sq_next_due,
    .get = sq_get,
    .revoke = sq_revoke,
    .purge = sq_purge,
    .stats = sq_stats,
    .list = sq_list,
    .subscribe = sq_subscribe,
    .wake_fd = sq_wake_fd,
    .drain_wake = sq_drain_wake,
    .set_rate_limit = sq_set_rate_limit,
    .set_queue_cap = sq_set_queue_cap,
    .limits = sq_limits,
    .events = sq_events_read,
    .diagnose = sq_diagnose,
    .destroy = sq_destroy,
};

int broker_sqlite_open(const char *path, const char *data_dir, const broker_options *opts,
                       broker **out, bp_error *err)
{
    sq_broker *s;
    int rc, step;
    int64_t version = 0;
    sqlite3_stmt *st = NULL;
    char mode[16] = "";

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->base.ops = &sq_ops;
    s->base.opts = *opts;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->ckpt_lock, NULL);
    pthread_cond_init(&s->ckpt_cond, NULL);
    s->path = strdup(path);
    s->run_dir = util_asprintf("%s/run", data_dir);
    if (!s->path || !s->run_dir) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    if (gethostname(s->hostname, sizeof s->hostname) != 0) {
        util_strlcpy(s->hostname, "localhost", sizeof s->hostname);
    }
    s->hostname[sizeof s->hostname - 1] = '\0';
    step = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (step != SQLITE_OK) {
        rc = sq_error(s, step, "open", err);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_handler(s->db, busy_handler, s);
    /* Reading user_version reads the header: a file that is not a database is refused here,
     * before WAL mode or the schema could write anything into it. */
    step = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (step == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        version = sqlite3_column_int64(st, 0);
        step = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (step != SQLITE_OK) {
        rc = sq_error(s, step, "not a usable broker database (left untouched)", err);
        goto fail;
    }
    if (version > SQ_SCHEMA_VERSION) {
        rc = bp_err(err, BP_E_STATE,
                    "broker %s has schema version %lld, newer than this betpipe (%d): upgrade "
                    "betpipe",
                    path, (long long)version, SQ_SCHEMA_VERSION);
        goto fail;
    }
    step = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (step == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        util_strlcpy(mode, (const char *)sqlite3_column_text(st, 0), sizeof mode);
    }
    sqlite3_finalize(st);
    if (strcmp(mode, "wal") != 0) {
        rc = bp_err(err, BP_E_IO, "broker %s: cannot switch to WAL mode: %s", path,
                    sqlite3_errmsg(s->db));
        goto fail;
    }
    rc = exec_sql(s, "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;", err);
    /* Clients checkpoint only as a safety net (no daemon running to do it in the background). */
    sqlite3_wal_autocheckpoint(s->db, SQ_CLIENT_AUTOCHECKPOINT_PAGES);
    if (rc == BP_OK && version < SQ_SCHEMA_VERSION) {
        rc = begin(s, err);
        if (rc == BP_OK && version == 1) {
            /* v1 -> v2: the expiry index gains the queue; the separate lease index goes. */
            rc = exec_sql(s, "DROP INDEX IF EXISTS jobs_expiry; DROP INDEX IF EXISTS jobs_lease;",
                          err);
        }
        if (rc == BP_OK && version >= 1 && version < 3) {
            /* v2 -> v3: lost workers stay listed as offline (limits and events are new tables) */
            rc = exec_sql(s, "ALTER TABLE workers ADD COLUMN offline_ms INTEGER", err);
        }
        if (rc == BP_OK) {
            rc = exec_sql(s, schema_sql, err);
        }
        if (rc == BP_OK) {
            rc = exec_sql(s, "PRAGMA user_version=3", err);
        }
        if (rc == BP_OK) {
            rc = commit(s, err);
        } else {
            rollback(s);
        }
    }
    if (rc != BP_OK) {
        goto fail;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        step =
            sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (step != SQLITE_OK) {
            rc = sq_error(s, step, "prepare", err);
            goto fail;
        }
    }
    rc = wake_sender_open(s->run_dir, &s->sender, err);
    if (rc != BP_OK) {
        goto fail;
    }
    *out = &s->base;
    return BP_OK;
fail:
    sq_destroy(&s->base);
    return rc;
}
