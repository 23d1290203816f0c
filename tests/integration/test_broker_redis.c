/*
 * test_broker_redis.c - the Redis broker against a real redis-server (unix socket, temp dir).
 *
 * Two parts:
 *  1. Behaviours of the broker contract (broker.h). Each is a function `conf_<name>(bt *t)`
 *     that only uses the broker_ops of t->b, a second handle from t->open_another() (another
 *     process's view of the same backend), and the injected clock (util_set_clock): nothing
 *     Redis-specific. A backend-independent conformance suite can run the same functions
 *     against any `broker *` by providing its own bt.
 *  2. Redis-specific behaviour: key layout and hash tags, record TTLs, outages and restarts
 *     (AOF), SCRIPT FLUSH, the eviction-policy warning, wake-ups across handles.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "broker.h"
#include "broker_suite.h"
#include "job.h"
#include "log.h"
#include "redis_fixture.h"
#include "support.h"
#include "util.h"

/* ============================================================================================
 * Harness
 * ========================================================================================== */

typedef struct bt bt;
struct bt {
    broker *b;
    broker_options opts;
    /* another handle on the same backend (with other options); the harness closes it */
    broker *(*open_another)(bt *t);
    broker *(*open_with)(bt *t, const broker_options *o);
    broker *extra[8];
    int n_extra;
};

/* The injected clock: tests move time instead of sleeping. */
static _Atomic int64_t fake_now;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

static void advance(int64_t ms)
{
    atomic_fetch_add(&fake_now, ms);
}

static void use_fake_clock(void)
{
    util_set_clock(NULL);
    atomic_store(&fake_now, util_now_ms());
    util_set_clock(fake_clock);
}

static job *mk(const char *queue, const char *type)
{
    job *j = job_new();
    cr_assert(j);
    util_uuid7(j->id);
    cr_assert_eq(job_set_str(&j->type, type), BP_OK);
    cr_assert_eq(job_set_str(&j->queue, queue), BP_OK);
    return j;
}

static int put_status(bt *t, job *j)
{
    int st = 12345;
    bp_error err = {0};
    int rc = t->b->ops->enqueue(t->b, &j, 1, &st, &err);
    cr_assert_eq(rc, BP_OK, "enqueue: %s", err.msg);
    return st;
}

/* Enqueue and keep a copy of the id (the job itself is freed). */
static void put(bt *t, job *j, char *id_out)
{
    cr_assert_eq(put_status(t, j), BP_OK, "enqueue of %s refused", j->id);
    if (id_out) {
        util_strlcpy(id_out, j->id, BP_JOB_ID_SIZE);
    }
    job_free(j);
}

static void put_new(bt *t, const char *queue, char *id_out)
{
    put(t, mk(queue, "sys.noop"), id_out);
}

static void free_jobs(job **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        job_free(v[i]);
    }
    free(v);
}

/* exchange with no acks: lease up to n from queue. */
static job **take(bt *t, const char *worker, const char *queue, int n, size_t *out_n)
{
    broker_want w = {queue, n};
    job **v = NULL;
    bp_error err = {0};
    int rc = t->b->ops->exchange(t->b, worker, NULL, 0, &w, 1, &v, out_n, &err);
    cr_assert_eq(rc, BP_OK, "exchange: %s", err.msg);
    return v;
}

static size_t take_count(bt *t, const char *worker, const char *queue, int n)
{
    size_t got = 0;
    job **v = take(t, worker, queue, n, &got); /* not inline: `got` is set by this call */
    free_jobs(v, got);
    return got;
}

static void ack_on(broker *b, const char *worker, const char *id, job_state st, const char *result,
                   const char *error, int64_t retry_at)
{
    broker_ack a = {.id = id,
                    .state = st,
                    .result = result,
                    .error = error,
                    .retry_at_ms = retry_at,
                    .finished_ms = util_now_ms()};
    job **v = NULL;
    size_t n = 0;
    bp_error err = {0};
    cr_assert_eq(b->ops->exchange(b, worker, &a, 1, NULL, 0, &v, &n, &err), BP_OK, "ack: %s",
                 err.msg);
    cr_assert_eq(n, 0);
    free(v);
}

static void ack(bt *t, const char *worker, const char *id, job_state st, const char *result,
                const char *error, int64_t retry_at)
{
    ack_on(t->b, worker, id, st, result, error, retry_at);
}

static job *get(bt *t, const char *id)
{
    job *j = NULL;
    bp_error err = {0};
    cr_assert_eq(t->b->ops->get(t->b, id, &j, &err), BP_OK, "get %s: %s", id, err.msg);
    return j;
}

static job_state state_of(bt *t, const char *id)
{
    job *j = get(t, id);
    job_state s = j->state;
    job_free(j);
    return s;
}

static bool gone(bt *t, const char *id)
{
    job *j = NULL;
    int rc = t->b->ops->get(t->b, id, &j, NULL);
    job_free(j);
    return rc == BP_E_NOTFOUND;
}

static broker_reap_report reap(bt *t)
{
    broker_reap_report r;
    bp_error err = {0};
    cr_assert_eq(t->b->ops->reap(t->b, &r, &err), BP_OK, "reap: %s", err.msg);
    return r;
}

static int64_t stat_of(bt *t, const char *queue, const char *what)
{
    return bsuite_queue_count(t->b, queue, what);
}

static void heartbeat(broker *b, const char *worker, json_t **out_revoked)
{
    broker_worker_info w = {
        .id = worker, .host = "testhost", .pid = 4242, .started_ms = util_now_ms()};
    json_t *queues = json_pack("{s:i}", "q", 2);
    json_t *revoked = NULL;
    bp_error err = {0};
    w.queues = queues;
    cr_assert_eq(b->ops->heartbeat(b, &w, NULL, NULL, &revoked, &err), BP_OK, "heartbeat: %s",
                 err.msg);
    json_decref(queues);
    if (out_revoked) {
        *out_revoked = revoked;
    } else {
        json_decref(revoked);
    }
}

/* ============================================================================================
 * Part 1: the contract (backend-independent bodies)
 * ========================================================================================== */

static void conf_round_trip(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    job *j = mk("q", "sys.echo");
    cr_assert_eq(job_set_str(&j->args, "{\"x\":1}"), BP_OK);
    put(t, j, id);
    job *g = get(t, id);
    cr_assert_eq(g->state, JOB_PENDING);
    cr_assert_str_eq(g->type, "sys.echo");
    cr_assert_str_eq(g->args, "{\"x\":1}");
    cr_assert_eq(g->attempts, 0);
    job_free(g);

    size_t n = 0;
    job **v = take(t, "w1", "q", 5, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0]->id, id);
    cr_assert_eq(v[0]->state, JOB_STARTED);
    cr_assert_eq(v[0]->attempts, 1);
    cr_assert_str_eq(v[0]->worker, "w1");
    cr_assert_str_eq(v[0]->args, "{\"x\":1}");
    cr_assert_eq(v[0]->lease_until_ms, util_now_ms() + t->opts.lease_ms);
    free_jobs(v, n);
    cr_assert_eq(take_count(t, "w1", "q", 5), 0, "a leased job is not leased twice");
    cr_assert_eq(state_of(t, id), JOB_STARTED);

    ack(t, "w1", id, JOB_SUCCESS, "{\"ok\":true}", NULL, 0);
    g = get(t, id);
    cr_assert_eq(g->state, JOB_SUCCESS);
    cr_assert_str_eq(g->result, "{\"ok\":true}");
    cr_assert_gt(g->finished_ms, 0);
    cr_assert_eq(g->attempts, 1);
    job_free(g);
    cr_assert_eq(stat_of(t, "q", "succeeded"), 1);
    cr_assert_eq(stat_of(t, "q", "running"), 0);
    cr_assert_eq(stat_of(t, "q", "waiting"), 0);
}

static void conf_ack_and_lease_in_one_exchange(bt *t)
{
    char a[BP_JOB_ID_SIZE], b[BP_JOB_ID_SIZE];
    put_new(t, "q", a);
    put_new(t, "q", b);
    size_t n = 0;
    job **v = take(t, "w", "q", 1, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0]->id, a);
    free_jobs(v, n);
    broker_ack ak = {.id = a, .state = JOB_FAILURE, .error = "bad input", .finished_ms = 1};
    broker_want w = {"q", 1};
    bp_error err = {0};
    cr_assert_eq(t->b->ops->exchange(t->b, "w", &ak, 1, &w, 1, &v, &n, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0]->id, b);
    free_jobs(v, n);
    job *g = get(t, a);
    cr_assert_eq(g->state, JOB_FAILURE);
    cr_assert_str_eq(g->error, "bad input");
    job_free(g);
}

static void conf_priority_order(bt *t)
{
    const int prio[] = {1, 9, 5, 9, 0, 5};
    char ids[6][BP_JOB_ID_SIZE];
    for (int i = 0; i < 6; i++) {
        job *j = mk("q", "sys.noop");
        j->priority = prio[i];
        put(t, j, ids[i]);
    }
    /* higher first; enqueue order among equals */
    const int expect[] = {1, 3, 2, 5, 0, 4};
    size_t n = 0;
    job **v = take(t, "w", "q", 6, &n);
    cr_assert_eq(n, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(v[i]->id, ids[expect[i]], "position %d", i);
    }
    free_jobs(v, n);
}

static void conf_delayed_promotion(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    int64_t due = util_now_ms() + 10000;
    job *j = mk("q", "sys.noop");
    j->eta_ms = due;
    j->state = JOB_SCHEDULED;
    put(t, j, id);
    cr_assert_eq(state_of(t, id), JOB_SCHEDULED);
    cr_assert_eq(stat_of(t, "q", "delayed"), 1);
    const char *qs[] = {"q", "other"};
    int64_t nd = 0;
    bp_error err = {0};
    cr_assert_eq(t->b->ops->next_due(t->b, qs, 2, &nd, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(nd, due);
    cr_assert_eq(take_count(t, "w", "q", 1), 0, "not before its eta");
    advance(9999);
    cr_assert_eq(take_count(t, "w", "q", 1), 0, "not 1 ms before its eta");
    advance(1);
    size_t n = 0;
    job **v = take(t, "w", "q", 1, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0]->id, id);
    free_jobs(v, n);
    cr_assert_eq(t->b->ops->next_due(t->b, qs, 2, &nd, &err), BP_OK);
    cr_assert_eq(nd, INT64_MAX);
}

static void conf_expires(bt *t)
{
    char a[BP_JOB_ID_SIZE], b[BP_JOB_ID_SIZE], c[BP_JOB_ID_SIZE];
    job *j = mk("q", "sys.noop");
    j->expires_ms = util_now_ms() + 5000;
    put(t, j, a);
    /* delayed past its own expiry: must never run */
    j = mk("q", "sys.noop");
    j->eta_ms = util_now_ms() + 20000;
    j->expires_ms = util_now_ms() + 10000;
    j->state = JOB_SCHEDULED;
    put(t, j, b);
    /* started in time: expires no longer applies */
    j = mk("q2", "sys.noop");
    j->expires_ms = util_now_ms() + 5000;
    put(t, j, c);
    cr_assert_eq(take_count(t, "w", "q2", 1), 1);

    advance(6000);
    cr_assert_eq(take_count(t, "w", "q", 1), 0, "an expired job is not leased");
    job *g = get(t, a);
    cr_assert_eq(g->state, JOB_EXPIRED);
    cr_assert(g->error && strstr(g->error, "expire"), "%s", g->error ? g->error : "(null)");
    job_free(g);
    advance(5000);
    broker_reap_report r = reap(t);
    cr_assert_eq(r.expired, 1);
    cr_assert_eq(state_of(t, b), JOB_EXPIRED);
    advance(20000);
    cr_assert_eq(take_count(t, "w", "q", 5), 0);
    cr_assert_eq(state_of(t, c), JOB_STARTED);
    cr_assert_eq(stat_of(t, "q", "expired"), 2);
}

static void conf_retry_scheduling(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    cr_assert_eq(take_count(t, "w", "q", 1), 1);
    int64_t at = util_now_ms() + 2000;
    ack(t, "w", id, JOB_RETRY, NULL, "upstream 503", at);
    job *g = get(t, id);
    cr_assert_eq(g->state, JOB_RETRY);
    cr_assert_str_eq(g->error, "upstream 503");
    cr_assert_eq(g->eta_ms, at);
    job_free(g);
    cr_assert_eq(stat_of(t, "q", "retry"), 1);
    const char *qs[] = {"q"};
    int64_t nd = 0;
    cr_assert_eq(t->b->ops->next_due(t->b, qs, 1, &nd, NULL), BP_OK);
    cr_assert_eq(nd, at);
    cr_assert_eq(take_count(t, "w", "q", 1), 0, "the backoff holds");
    advance(2000);
    size_t n = 0;
    job **v = take(t, "w", "q", 1, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0]->attempts, 2);
    free_jobs(v, n);
    ack(t, "w", id, JOB_FAILURE, NULL, "gave up", 0);
    cr_assert_eq(state_of(t, id), JOB_FAILURE);
    cr_assert_eq(stat_of(t, "q", "failed"), 1);
}

static void conf_unique_key(bt *t)
{
    char a[BP_JOB_ID_SIZE], c[BP_JOB_ID_SIZE];
    job *j = mk("q", "ml.train");
    cr_assert_eq(job_set_str(&j->unique_key, "ml.train:EPL"), BP_OK);
    put(t, j, a);
    j = mk("q", "ml.train");
    cr_assert_eq(job_set_str(&j->unique_key, "ml.train:EPL"), BP_OK);
    char mine[BP_JOB_ID_SIZE];
    util_strlcpy(mine, j->id, sizeof mine);
    cr_assert_eq(put_status(t, j), BP_E_EXISTS);
    cr_assert_str_eq(j->id, a, "the holder's id is reported");
    job_free(j);
    cr_assert(gone(t, mine), "the refused job was not stored");
    /* another key is fine */
    j = mk("q", "ml.train");
    cr_assert_eq(job_set_str(&j->unique_key, "ml.train:D1"), BP_OK);
    put(t, j, NULL);
    /* still held while running, released when it finishes */
    cr_assert_eq(take_count(t, "w", "q", 1), 1);
    j = mk("q", "ml.train");
    cr_assert_eq(job_set_str(&j->unique_key, "ml.train:EPL"), BP_OK);
    cr_assert_eq(put_status(t, j), BP_E_EXISTS);
    job_free(j);
    ack(t, "w", a, JOB_SUCCESS, NULL, NULL, 0);
    j = mk("q", "ml.train");
    cr_assert_eq(job_set_str(&j->unique_key, "ml.train:EPL"), BP_OK);
    put(t, j, c);
    /* revoke releases it too */
    job_state st;
    cr_assert_eq(t->b->ops->revoke(t->b, c, false, &st, NULL), BP_OK);
    j = mk("q", "ml.train");
    cr_assert_eq(job_set_str(&j->unique_key, "ml.train:EPL"), BP_OK);
    put(t, j, NULL);
}

static void conf_caller_id_dedupe(bt *t)
{
    job *j = mk("q", "beat.fire");
    util_strlcpy(j->id, "daily-train:2026-11-22T02:00", sizeof j->id);
    put(t, j, NULL);
    j = mk("q", "beat.fire");
    util_strlcpy(j->id, "daily-train:2026-11-22T02:00", sizeof j->id);
    cr_assert_eq(put_status(t, j), BP_E_EXISTS);
    cr_assert_str_eq(j->id, "daily-train:2026-11-22T02:00");
    job_free(j);
    /* twice in one batch: the second is refused, the rest of the batch is stored */
    job *v[3] = {mk("q", "a"), mk("q", "a"), mk("q", "a")};
    int st[3];
    util_strlcpy(v[1]->id, v[0]->id, sizeof v[1]->id);
    bp_error err = {0};
    cr_assert_eq(t->b->ops->enqueue(t->b, v, 3, st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st[0], BP_OK);
    cr_assert_eq(st[1], BP_E_EXISTS);
    cr_assert_eq(st[2], BP_OK);
    for (int i = 0; i < 3; i++) {
        job_free(v[i]);
    }
    cr_assert_eq(stat_of(t, "q", "waiting"), 3);
}

static void conf_revoke(bt *t)
{
    char queued[BP_JOB_ID_SIZE], delayed[BP_JOB_ID_SIZE], running[BP_JOB_ID_SIZE];
    char done[BP_JOB_ID_SIZE];
    job_state st = JOB_PENDING;
    bp_error err = {0};
    put_new(t, "r", running);
    put_new(t, "r", done);
    cr_assert_eq(take_count(t, "w", "r", 2), 2);
    ack(t, "w", done, JOB_SUCCESS, NULL, NULL, 0);
    put_new(t, "q", queued);
    job *j = mk("q", "sys.noop");
    j->eta_ms = util_now_ms() + 5000;
    j->state = JOB_SCHEDULED;
    put(t, j, delayed);

    cr_assert_eq(t->b->ops->revoke(t->b, queued, false, &st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st, JOB_REVOKED);
    cr_assert_eq(t->b->ops->revoke(t->b, delayed, false, &st, &err), BP_OK);
    cr_assert_eq(st, JOB_REVOKED);
    advance(10000);
    cr_assert_eq(take_count(t, "w", "q", 5), 0, "revoked jobs never run");
    cr_assert_eq(state_of(t, queued), JOB_REVOKED);
    cr_assert_eq(state_of(t, delayed), JOB_REVOKED);

    /* running: flagged; its worker hears it at the next heartbeat */
    json_t *revoked = NULL;
    heartbeat(t->b, "w", &revoked);
    cr_assert_eq(json_array_size(revoked), 0);
    json_decref(revoked);
    cr_assert_eq(t->b->ops->revoke(t->b, running, false, &st, &err), BP_OK);
    cr_assert_eq(st, JOB_STARTED);
    heartbeat(t->b, "w", &revoked);
    cr_assert_eq(json_array_size(revoked), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(revoked, 0), "id")), running);
    json_decref(revoked);
    ack(t, "w", running, JOB_REVOKED, NULL, "cancelled", 0);
    cr_assert_eq(state_of(t, running), JOB_REVOKED);
    heartbeat(t->b, "w", &revoked);
    cr_assert_eq(json_array_size(revoked), 0);
    json_decref(revoked);

    /* finished: nothing to revoke, and it says so */
    cr_assert_eq(t->b->ops->revoke(t->b, done, false, &st, &err), BP_E_STATE);
    cr_assert(strstr(err.msg, "already finished"), "%s", err.msg);
    cr_assert_eq(st, JOB_SUCCESS);
    cr_assert_eq(state_of(t, done), JOB_SUCCESS);
    cr_assert_eq(t->b->ops->revoke(t->b, queued, false, &st, &err), BP_E_STATE, "revoked twice");
    cr_assert_eq(t->b->ops->revoke(t->b, "no-such-job", false, &st, &err), BP_E_NOTFOUND);
    cr_assert_eq(stat_of(t, "q", "revoked"), 2);
}

static void conf_revoked_running_retry_does_not_retry(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    job_state st;
    put_new(t, "q", id);
    cr_assert_eq(take_count(t, "w", "q", 1), 1);
    cr_assert_eq(t->b->ops->revoke(t->b, id, false, &st, NULL), BP_OK);
    ack(t, "w", id, JOB_RETRY, NULL, "transient", util_now_ms() + 1000);
    cr_assert_eq(state_of(t, id), JOB_REVOKED);
}

static void conf_purge(bt *t)
{
    char ids[6][BP_JOB_ID_SIZE];
    for (int i = 0; i < 3; i++) {
        put_new(t, "q", ids[i]);
    }
    for (int i = 3; i < 5; i++) {
        job *j = mk("q", "sys.noop");
        j->eta_ms = util_now_ms() + 60000;
        j->state = JOB_SCHEDULED;
        put(t, j, ids[i]);
    }
    put_new(t, "q", ids[5]);
    size_t n = 0;
    job **v = take(t, "w", "q", 1, &n); /* the first pending one */
    cr_assert_eq(n, 1);
    char running[BP_JOB_ID_SIZE];
    util_strlcpy(running, v[0]->id, sizeof running);
    free_jobs(v, n);
    put_new(t, "other", NULL);

    int64_t removed = 0;
    bp_error err = {0};
    cr_assert_eq(t->b->ops->purge(t->b, "q", &removed, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(removed, 5);
    cr_assert_eq(stat_of(t, "q", "waiting"), 0);
    cr_assert_eq(stat_of(t, "q", "delayed"), 0);
    cr_assert_eq(stat_of(t, "q", "running"), 1);
    cr_assert_eq(stat_of(t, "other", "waiting"), 1, "other queues untouched");
    cr_assert_eq(state_of(t, running), JOB_STARTED);
    int purged = 0;
    for (int i = 0; i < 6; i++) {
        purged += strcmp(ids[i], running) != 0 && gone(t, ids[i]);
    }
    cr_assert_eq(purged, 5);
    advance(120000);
    cr_assert_eq(take_count(t, "w", "q", 10), 0);
}

static void conf_lease_expiry_reaped_and_crash_counted(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    cr_assert_eq(take_count(t, "w1", "q", 1), 1);
    advance(t->opts.lease_ms - 1);
    broker_reap_report r = reap(t);
    cr_assert_eq(r.requeued, 0, "the lease still runs");
    advance(2);
    r = reap(t);
    cr_assert_eq(r.requeued, 1);
    job *g = get(t, id);
    cr_assert_eq(g->state, JOB_PENDING);
    cr_assert_eq(g->crashes, 1);
    job_free(g);
    size_t n = 0;
    job **v = take(t, "w2", "q", 1, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0]->attempts, 2);
    cr_assert_str_eq(v[0]->worker, "w2");
    free_jobs(v, n);
    /* the first worker's late ack does not finish the job w2 now runs */
    ack(t, "w1", id, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert_eq(state_of(t, id), JOB_STARTED);
    ack(t, "w2", id, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert_eq(state_of(t, id), JOB_SUCCESS);
}

static void conf_dead_after_max_crashes(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    for (int crash = 1; crash <= t->opts.max_crashes; crash++) {
        cr_assert_eq(take_count(t, "w", "q", 1), 1, "lease %d", crash);
        advance(t->opts.lease_ms + 1);
        broker_reap_report r = reap(t);
        if (crash < t->opts.max_crashes) {
            cr_assert_eq(r.requeued, 1);
            cr_assert_eq(state_of(t, id), JOB_PENDING);
        } else {
            cr_assert_eq(r.dead, 1);
        }
    }
    job *g = get(t, id);
    cr_assert_eq(g->state, JOB_DEAD);
    cr_assert_eq(g->crashes, t->opts.max_crashes);
    cr_assert(g->error && strstr(g->error, "died 3 times"), "%s", g->error ? g->error : "(null)");
    job_free(g);
    cr_assert_eq(take_count(t, "w", "q", 1), 0);
    cr_assert_eq(stat_of(t, "q", "dead"), 1);
}

static void conf_heartbeat_renews_leases(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    heartbeat(t->b, "w", NULL);
    cr_assert_eq(take_count(t, "w", "q", 1), 1);
    for (int i = 0; i < 4; i++) {
        advance(t->opts.lease_ms * 2 / 3);
        heartbeat(t->b, "w", NULL);
        cr_assert_eq(reap(t).requeued, 0, "renewed lease reclaimed at beat %d", i);
    }
    job *g = get(t, id);
    cr_assert_eq(g->state, JOB_STARTED);
    cr_assert_eq(g->lease_until_ms, util_now_ms() + t->opts.lease_ms);
    job_free(g);
}

static void conf_worker_timeout_reclaims_at_once(bt *t)
{
    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    heartbeat(t->b, "w-dies", NULL);
    cr_assert_eq(take_count(t, "w-dies", "q", 1), 1);
    heartbeat(t->b, "w-lives", NULL);
    /* w-dies falls silent; w-lives keeps beating. The lease is far from over. */
    advance(t->opts.worker_timeout_ms + 1);
    heartbeat(t->b, "w-lives", NULL);
    cr_assert_lt(t->opts.worker_timeout_ms + 1, t->opts.lease_ms, "test premise");
    broker_reap_report r = reap(t);
    cr_assert_eq(r.workers_lost, 1);
    cr_assert_eq(r.requeued, 1);
    job *g = get(t, id);
    cr_assert_eq(g->state, JOB_PENDING);
    cr_assert_eq(g->crashes, 1);
    job_free(g);
    cr_assert_eq(reap(t).workers_lost, 0, "lost once, counted once");
}

static void conf_worker_stop_releases_without_crash(bt *t)
{
    char a[BP_JOB_ID_SIZE], b[BP_JOB_ID_SIZE];
    put_new(t, "q", a);
    put_new(t, "q", b);
    heartbeat(t->b, "w", NULL);
    cr_assert_eq(take_count(t, "w", "q", 2), 2);
    bp_error err = {0};
    cr_assert_eq(t->b->ops->worker_stop(t->b, "w", &err), BP_OK, "%s", err.msg);
    job *g = get(t, a);
    cr_assert_eq(g->state, JOB_PENDING);
    cr_assert_eq(g->crashes, 0);
    job_free(g);
    cr_assert_eq(stat_of(t, "q", "running"), 0);
    size_t n = 0;
    job **v = take(t, "w2", "q", 2, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0]->id, a, "released jobs keep their place");
    free_jobs(v, n);
}

static void conf_results_ttl(bt *t)
{
    char ok[BP_JOB_ID_SIZE], live[BP_JOB_ID_SIZE];
    put_new(t, "q", ok);
    put_new(t, "q", live);
    cr_assert_eq(take_count(t, "w", "q", 1), 1);
    ack(t, "w", ok, JOB_SUCCESS, "1", NULL, 0);
    advance(t->opts.result_ttl_ms - 1);
    cr_assert_eq(reap(t).results_purged, 0);
    cr_assert_eq(state_of(t, ok), JOB_SUCCESS);
    advance(2);
    broker_reap_report r = reap(t);
    cr_assert_eq(r.results_purged, 1);
    cr_assert(gone(t, ok), "the record is gone after result_ttl");
    cr_assert_eq(state_of(t, live), JOB_PENDING, "waiting jobs are not results");
    cr_assert_eq(stat_of(t, "q", "succeeded"), 0);
}

static void conf_lease_one(bt *t)
{
    char p[BP_JOB_ID_SIZE], s[BP_JOB_ID_SIZE];
    job *out = NULL;
    bp_error err = {0};
    put_new(t, "q", p);
    job *j = mk("q", "sys.noop");
    j->eta_ms = util_now_ms() + 1000;
    j->state = JOB_SCHEDULED;
    put(t, j, s);
    cr_assert_eq(t->b->ops->lease_one(t->b, "cli", p, &out, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(out->id, p);
    cr_assert_eq(out->state, JOB_STARTED);
    job_free(out);
    cr_assert_eq(t->b->ops->lease_one(t->b, "cli", p, &out, &err), BP_E_STATE);
    cr_assert_eq(t->b->ops->lease_one(t->b, "cli", s, &out, &err), BP_E_STATE);
    cr_assert_eq(t->b->ops->lease_one(t->b, "cli", "nope", &out, &err), BP_E_NOTFOUND);
    advance(1000);
    cr_assert_eq(t->b->ops->lease_one(t->b, "cli", s, &out, &err), BP_OK, "%s", err.msg);
    job_free(out);
    ack(t, "cli", s, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert_eq(state_of(t, s), JOB_SUCCESS);
}

static void conf_list_and_stats(bt *t)
{
    char ids[5][BP_JOB_ID_SIZE];
    for (int i = 0; i < 5; i++) {
        job *j = mk(i < 4 ? "q" : "q2", i % 2 ? "t.odd" : "t.even");
        put(t, j, ids[i]);
        advance(10);
    }
    cr_assert_eq(take_count(t, "w", "q", 1), 1); /* ids[0] */
    ack(t, "w", ids[0], JOB_FAILURE, NULL, "x", 0);
    heartbeat(t->b, "w", NULL);

    json_t *arr = NULL;
    bp_error err = {0};
    broker_filter f = {.queue = NULL, .state = -1, .type = NULL, .limit = 0};
    cr_assert_eq(t->b->ops->list(t->b, &f, &arr, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_array_size(arr), 5);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), ids[4],
                     "newest first");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 4), "id")), ids[0]);
    json_decref(arr);

    f.queue = "q";
    f.type = "t.even";
    cr_assert_eq(t->b->ops->list(t->b, &f, &arr, &err), BP_OK);
    cr_assert_eq(json_array_size(arr), 2); /* ids[0], ids[2] */
    json_decref(arr);
    f.type = NULL;
    f.state = JOB_FAILURE;
    cr_assert_eq(t->b->ops->list(t->b, &f, &arr, &err), BP_OK);
    cr_assert_eq(json_array_size(arr), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "state")),
                     "FAILURE");
    json_decref(arr);
    f.state = JOB_PENDING;
    f.limit = 2;
    cr_assert_eq(t->b->ops->list(t->b, &f, &arr, &err), BP_OK);
    cr_assert_eq(json_array_size(arr), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), ids[3]);
    json_decref(arr);

    json_t *s = NULL;
    cr_assert_eq(t->b->ops->stats(t->b, &s, &err), BP_OK, "%s", err.msg);
    json_t *q = json_object_get(json_object_get(s, "queues"), "q");
    cr_assert_eq(json_integer_value(json_object_get(q, "waiting")), 3);
    cr_assert_eq(json_integer_value(json_object_get(q, "failed")), 1);
    json_t *workers = json_object_get(s, "workers");
    cr_assert_eq(json_array_size(workers), 1);
    json_t *w = json_array_get(workers, 0);
    cr_assert_str_eq(json_string_value(json_object_get(w, "id")), "w");
    cr_assert_str_eq(json_string_value(json_object_get(w, "host")), "testhost");
    cr_assert_eq(json_integer_value(json_object_get(w, "pid")), 4242);
    cr_assert(json_is_true(json_object_get(w, "online")));
    json_decref(s);
}

static void conf_bad_input(bt *t)
{
    job *j = mk("bad queue{x}", "sys.noop");
    int st;
    bp_error err = {0};
    cr_assert_eq(t->b->ops->enqueue(t->b, &j, 1, &st, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "queue"), "%s", err.msg);
    job_free(j);
    job *v[2] = {mk("q", "sys.noop"), mk("q", "sys.noop")};
    v[1]->state = JOB_SUCCESS;
    int sts[2];
    cr_assert_eq(t->b->ops->enqueue(t->b, v, 2, sts, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "SUCCESS"), "%s", err.msg);
    cr_assert(gone(t, v[0]->id), "nothing of a refused batch is stored");
    job_free(v[0]);
    job_free(v[1]);
    broker_ack a = {.id = "x", .state = JOB_SCHEDULED};
    job **out = NULL;
    size_t n = 0;
    cr_assert_eq(t->b->ops->exchange(t->b, "w", &a, 1, NULL, 0, &out, &n, &err), BP_E_INVAL);
}

/* Several handles (processes, in real life) lease from one queue at once: every job is leased
 * exactly once. Real clock: the race is the point. */
typedef struct racer {
    broker *b;
    char worker[32];
    int *seen; /* per job index, shared: incremented atomically */
    char (*ids)[BP_JOB_ID_SIZE];
    int n_ids;
    int leased;
    int rc;
} racer;

static int index_of(const racer *r, const char *id)
{
    /* ids are UUIDv7 in enqueue order: binary search */
    int lo = 0, hi = r->n_ids - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(r->ids[mid], id);
        if (c == 0) {
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return -1;
}

static void *race(void *arg)
{
    racer *r = arg;
    broker_ack acks[16];
    char held[16][BP_JOB_ID_SIZE];
    size_t n_acks = 0;
    broker_want w = {"race", 10};
    for (;;) {
        job **v = NULL;
        size_t n = 0;
        for (size_t i = 0; i < n_acks; i++) {
            acks[i] = (broker_ack){
                .id = held[i], .state = JOB_SUCCESS, .result = "1", .finished_ms = util_now_ms()};
        }
        r->rc = r->b->ops->exchange(r->b, r->worker, acks, n_acks, &w, 1, &v, &n, NULL);
        if (r->rc != BP_OK) {
            return NULL;
        }
        n_acks = 0;
        if (n == 0) {
            free(v);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            int k = index_of(r, v[i]->id);
            if (k >= 0) {
                __atomic_add_fetch(&r->seen[k], 1, __ATOMIC_SEQ_CST);
            }
            util_strlcpy(held[n_acks++], v[i]->id, BP_JOB_ID_SIZE);
            r->leased++;
        }
        free_jobs(v, n);
    }
}

static void conf_concurrent_exchange_leases_each_job_once(bt *t)
{
    enum { N = 6000, THREADS = 3 };
    char(*ids)[BP_JOB_ID_SIZE] = calloc(N, sizeof *ids);
    int *seen = calloc(N, sizeof *seen);
    job **batch = calloc(N, sizeof *batch);
    int *st = calloc(N, sizeof *st);
    bp_error err = {0};
    cr_assert(ids && seen && batch && st);
    util_set_clock(NULL);
    for (int i = 0; i < N; i++) {
        batch[i] = mk("race", "sys.noop");
        util_strlcpy(ids[i], batch[i]->id, BP_JOB_ID_SIZE);
    }
    cr_assert_eq(t->b->ops->enqueue(t->b, batch, N, st, &err), BP_OK, "%s", err.msg);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(st[i], BP_OK);
        job_free(batch[i]);
    }
    racer r[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (racer){.b = t->open_another(t), .seen = seen, .ids = ids, .n_ids = N};
        snprintf(r[i].worker, sizeof r[i].worker, "racer-%d", i);
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(r[i].rc, BP_OK, "racer %d failed", i);
        total += r[i].leased;
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(seen[i], 1, "job %d leased %d times", i, seen[i]);
    }
    cr_assert_eq(total, N);
    cr_assert_eq(stat_of(t, "race", "succeeded"), N);
    cr_assert_eq(stat_of(t, "race", "running"), 0);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_gt(r[i].leased, 0, "racer %d never got a job: no contention tested", i);
    }
    free(ids);
    free(seen);
    free(batch);
    free(st);
}

/* Wake-ups across handles: an idle worker's wake fd turns readable when work arrives from
 * elsewhere, when its running job is revoked; a client's when a job finishes. */
static bool readable_within(int fd, int64_t ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, (int)bpt_deadline_ms(ms)) == 1;
}

static bool readable_now(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

static void conf_wake_on_enqueue_revoke_and_done(bt *t)
{
    broker *worker = t->open_another(t);
    broker *client = t->open_another(t);
    bp_error err = {0};
    util_set_clock(NULL);
    cr_assert_eq(worker->ops->subscribe(worker, BROKER_WAKE_WORK, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(client->ops->subscribe(client, BROKER_WAKE_DONE, &err), BP_OK, "%s", err.msg);
    int wfd = worker->ops->wake_fd(worker), cfd = client->ops->wake_fd(client);
    cr_assert_geq(wfd, 0);
    cr_assert_geq(cfd, 0);

    /* the worker finds nothing and goes idle */
    broker_want want = {"q", 2};
    job **v = NULL;
    size_t n = 0;
    cr_assert_eq(worker->ops->exchange(worker, "idle-w", NULL, 0, &want, 1, &v, &n, &err), BP_OK);
    cr_assert_eq(n, 0);
    free(v);
    worker->ops->drain_wake(worker);

    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    cr_assert(readable_within(wfd, 5000), "an idle worker was not woken by an enqueue");
    worker->ops->drain_wake(worker);
    cr_assert_not(readable_now(wfd), "drain_wake clears the wake-up");
    cr_assert_eq(worker->ops->exchange(worker, "idle-w", NULL, 0, &want, 1, &v, &n, &err), BP_OK);
    cr_assert_eq(n, 1);
    free_jobs(v, n);
    worker->ops->drain_wake(worker);

    /* its running job is revoked from elsewhere: woken to heartbeat and learn it */
    job_state st;
    cr_assert_eq(t->b->ops->revoke(t->b, id, false, &st, &err), BP_OK);
    cr_assert_eq(st, JOB_STARTED);
    cr_assert(readable_within(wfd, 5000), "the worker was not woken by a revoke");
    json_t *revoked = NULL;
    heartbeat(worker, "idle-w", &revoked);
    cr_assert_eq(json_array_size(revoked), 1);
    json_decref(revoked);

    /* a client waiting for results is woken when the job finishes */
    client->ops->drain_wake(client);
    ack_on(worker, "idle-w", id, JOB_REVOKED, NULL, "cancelled", 0);
    cr_assert(readable_within(cfd, 5000), "a waiting client was not woken by a finish");
}

/* Two idle-capable workers, one of them busy: the marker reaches the idle one. */
static void conf_wake_reaches_the_idle_worker(bt *t)
{
    broker *busy = t->open_another(t);
    broker *idle = t->open_another(t);
    bp_error err = {0};
    job **v = NULL;
    size_t n = 0;
    util_set_clock(NULL);
    cr_assert_eq(busy->ops->subscribe(busy, BROKER_WAKE_WORK, &err), BP_OK);
    cr_assert_eq(idle->ops->subscribe(idle, BROKER_WAKE_WORK, &err), BP_OK);
    broker_want one = {"q", 1};
    /* busy: idle first (so its thread watches q), then it gets a job and is full */
    cr_assert_eq(busy->ops->exchange(busy, "busy-w", NULL, 0, &one, 1, &v, &n, &err), BP_OK);
    free(v);
    cr_assert_eq(idle->ops->exchange(idle, "idle-w", NULL, 0, &one, 1, &v, &n, &err), BP_OK);
    free(v);
    for (int round = 0; round < 5; round++) {
        busy->ops->drain_wake(busy);
        idle->ops->drain_wake(idle);
        put_new(t, "q", NULL);
        /* whoever was woken, the busy one takes this first job (it asks for one; it is free) */
        if (round == 0) {
            cr_assert_eq(busy->ops->exchange(busy, "busy-w", NULL, 0, &one, 1, &v, &n, &err),
                         BP_OK);
            cr_assert_eq(n, 1);
            free_jobs(v, n);
            continue;
        }
        /* now busy is full (got what it asked for) and not asking: the idle worker must be the
         * one woken, every time */
        cr_assert(readable_within(idle->ops->wake_fd(idle), 5000),
                  "round %d: the idle worker was not woken", round);
        cr_assert_not(readable_now(busy->ops->wake_fd(busy)),
                      "round %d: the busy worker was woken for work it did not ask for", round);
        cr_assert_eq(idle->ops->exchange(idle, "idle-w", NULL, 0, &one, 1, &v, &n, &err), BP_OK);
        cr_assert_eq(n, 1, "round %d", round);
        free_jobs(v, n);
        /* and it goes idle again */
        cr_assert_eq(idle->ops->exchange(idle, "idle-w", NULL, 0, &one, 1, &v, &n, &err), BP_OK);
        cr_assert_eq(n, 0);
        free(v);
    }
}

/* A graceful stop interrupts a run: the worker hands the job back (ack PENDING). It goes back
 * to its place, the attempt does not count, and it is not a crash - unless it was revoked. */
static void conf_give_back(bt *t)
{
    char a[BP_JOB_ID_SIZE], b2[BP_JOB_ID_SIZE];
    job_state st;
    put_new(t, "q", a);
    put_new(t, "q", b2);
    cr_assert_eq(take_count(t, "w", "q", 2), 2);
    ack(t, "w", a, JOB_PENDING, NULL, NULL, 0);
    job *g = get(t, a);
    cr_assert_eq(g->state, JOB_PENDING);
    cr_assert_eq(g->attempts, 0, "a handed-back run does not use up an attempt");
    cr_assert_eq(g->crashes, 0);
    job_free(g);
    size_t n = 0;
    job **v = take(t, "w2", "q", 1, &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0]->id, a, "back at its place in the queue");
    cr_assert_eq(v[0]->attempts, 1);
    free_jobs(v, n);
    cr_assert_eq(t->b->ops->revoke(t->b, b2, false, &st, NULL), BP_OK);
    ack(t, "w", b2, JOB_PENDING, NULL, NULL, 0);
    cr_assert_eq(state_of(t, b2), JOB_REVOKED, "a revoked job handed back does not run again");
}

/* on_final gets the full record of every job that reaches a final state through the broker:
 * acks (of jobs this handle leased, and of jobs another handle leased), revoke, expiry, DEAD. */
typedef struct finals_log {
    pthread_mutex_t lock;
    int n;
    job *v[16];
} finals_log;

static void record_final(void *ud, const job *j)
{
    finals_log *l = ud;
    pthread_mutex_lock(&l->lock);
    if (l->n < 16) {
        l->v[l->n++] = job_clone(j);
    }
    pthread_mutex_unlock(&l->lock);
}

static const job *final_of(finals_log *l, const char *id)
{
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->v[i]->id, id) == 0) {
            return l->v[i];
        }
    }
    return NULL;
}

static void conf_on_final_records(bt *t)
{
    finals_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
    broker_options o = t->opts;
    o.on_final = record_final;
    o.on_final_ud = &log;
    o.max_crashes = 1;
    broker *b = t->open_with(t, &o);
    broker *other = t->open_with(t, &o);
    char ok[BP_JOB_ID_SIZE], fail[BP_JOB_ID_SIZE], rev[BP_JOB_ID_SIZE], exp[BP_JOB_ID_SIZE];
    char dead[BP_JOB_ID_SIZE];
    int st;
    job *j = mk("fq", "ml.train");
    cr_assert_eq(job_set_str(&j->args, "{\"league\":\"E0\"}"), BP_OK);
    j->priority = 9;
    util_strlcpy(ok, j->id, sizeof ok);
    cr_assert_eq(b->ops->enqueue(b, &j, 1, &st, NULL), BP_OK);
    job_free(j);
    j = mk("fq", "ml.train");
    j->priority = 8;
    util_strlcpy(fail, j->id, sizeof fail);
    cr_assert_eq(b->ops->enqueue(b, &j, 1, &st, NULL), BP_OK);
    job_free(j);
    j = mk("fq", "sys.noop");
    util_strlcpy(rev, j->id, sizeof rev);
    cr_assert_eq(b->ops->enqueue(b, &j, 1, &st, NULL), BP_OK);
    job_free(j);
    j = mk("fq", "sys.noop");
    j->expires_ms = util_now_ms() + 1000;
    j->priority = 0;
    util_strlcpy(exp, j->id, sizeof exp);
    cr_assert_eq(b->ops->enqueue(b, &j, 1, &st, NULL), BP_OK);
    job_free(j);
    j = mk("fq2", "sys.crash");
    util_strlcpy(dead, j->id, sizeof dead);
    cr_assert_eq(b->ops->enqueue(b, &j, 1, &st, NULL), BP_OK);
    job_free(j);

    /* ok is acked through the handle that leased it (the record is built from its copy);
     * fail through another handle (the script returns the record) */
    broker_want w = {"fq", 2};
    job **v = NULL;
    size_t n = 0;
    cr_assert_eq(b->ops->exchange(b, "w", NULL, 0, &w, 1, &v, &n, NULL), BP_OK);
    cr_assert_eq(n, 2);
    free_jobs(v, n);
    ack_on(b, "w", ok, JOB_SUCCESS, "{\"rmse\":0.5}", NULL, 0);
    ack_on(other, "w", fail, JOB_FAILURE, NULL, "no data", 0);
    job_state js;
    cr_assert_eq(b->ops->revoke(b, rev, false, &js, NULL), BP_OK);
    broker_want w2 = {"fq2", 1};
    cr_assert_eq(b->ops->exchange(b, "w", NULL, 0, &w2, 1, &v, &n, NULL), BP_OK);
    free_jobs(v, n);
    advance(t->opts.lease_ms + 1);
    broker_reap_report r;
    cr_assert_eq(b->ops->reap(b, &r, NULL), BP_OK); /* dead (1 crash) and exp expired */
    cr_assert_eq(r.dead, 1);
    cr_assert_eq(r.expired, 1);
    cr_assert_eq(log.n, 5, "one record per final state, got %d", log.n);

    const job *f = final_of(&log, ok);
    cr_assert(f);
    cr_assert_eq(f->state, JOB_SUCCESS);
    cr_assert_str_eq(f->type, "ml.train");
    cr_assert_str_eq(f->queue, "fq");
    cr_assert_str_eq(f->args, "{\"league\":\"E0\"}");
    cr_assert_str_eq(f->result, "{\"rmse\":0.5}");
    cr_assert_eq(f->attempts, 1);
    cr_assert_eq(f->priority, 9);
    cr_assert_str_eq(f->worker, "w");
    cr_assert_gt(f->finished_ms, 0);
    cr_assert_gt(f->started_ms, 0);
    f = final_of(&log, fail);
    cr_assert(f);
    cr_assert_eq(f->state, JOB_FAILURE);
    cr_assert_str_eq(f->error, "no data");
    cr_assert_str_eq(f->type, "ml.train");
    cr_assert_eq(f->attempts, 1);
    cr_assert_str_eq(f->worker, "w");
    f = final_of(&log, rev);
    cr_assert(f && f->state == JOB_REVOKED);
    f = final_of(&log, exp);
    cr_assert(f && f->state == JOB_EXPIRED);
    cr_assert(f->error && strstr(f->error, "expired"));
    f = final_of(&log, dead);
    cr_assert(f && f->state == JOB_DEAD);
    cr_assert_eq(f->crashes, 1);
    cr_assert_str_eq(f->type, "sys.crash");
    for (int i = 0; i < log.n; i++) {
        job_free(log.v[i]);
    }
}

/* drain_wake says what arrived. */
static void conf_wake_kinds(bt *t)
{
    broker *worker = t->open_another(t);
    bp_error err = {0};
    job **v = NULL;
    size_t n = 0;
    util_set_clock(NULL);
    cr_assert_eq(worker->ops->subscribe(worker, BROKER_WAKE_WORK | BROKER_WAKE_DONE, &err), BP_OK);
    int fd = worker->ops->wake_fd(worker);
    broker_want want = {"q", 1};
    cr_assert_eq(worker->ops->exchange(worker, "w", NULL, 0, &want, 1, &v, &n, &err), BP_OK);
    free(v);
    worker->ops->drain_wake(worker);
    char id[BP_JOB_ID_SIZE];
    put_new(t, "q", id);
    cr_assert(readable_within(fd, 5000));
    cr_assert(worker->ops->drain_wake(worker) & BROKER_WAKE_WORK);
    cr_assert_eq(worker->ops->exchange(worker, "w", NULL, 0, &want, 1, &v, &n, &err), BP_OK);
    cr_assert_eq(n, 1);
    free_jobs(v, n);
    worker->ops->drain_wake(worker);
    job_state st;
    cr_assert_eq(t->b->ops->revoke(t->b, id, false, &st, NULL), BP_OK);
    cr_assert(readable_within(fd, 5000));
    int what = 0;
    /* the REVOKE bit may come with other bits; poll until it shows (bounded) */
    int64_t end = bpt_now_ms() + bpt_deadline_ms(5000);
    while (!(what & BROKER_WAKE_REVOKE) && bpt_now_ms() < end) {
        what |= worker->ops->drain_wake(worker);
        if (!(what & BROKER_WAKE_REVOKE)) {
            readable_within(fd, 100);
        }
    }
    cr_assert(what & BROKER_WAKE_REVOKE, "a revoke of a running job says REVOKE (%d)", what);
    ack_on(worker, "w", id, JOB_REVOKED, NULL, "cancelled", 0);
    what = 0;
    end = bpt_now_ms() + bpt_deadline_ms(5000);
    while (!(what & BROKER_WAKE_DONE) && bpt_now_ms() < end) {
        readable_within(fd, 100);
        what |= worker->ops->drain_wake(worker);
    }
    cr_assert(what & BROKER_WAKE_DONE, "a finish says DONE (%d)", what);
}

/* ============================================================================================
 * Redis harness
 * ========================================================================================== */

static bpt_redis *srv;
static bt T;

static broker *open_redis(const char *url, const broker_options *o)
{
    broker *b = NULL;
    bp_error err = {0};
    cr_assert_eq(broker_redis_open(url, o, &b, &err), BP_OK, "open: %s", err.msg);
    cr_assert_str_eq(b->ops->name, "redis");
    return b;
}

static broker *redis_with(bt *t, const broker_options *o)
{
    cr_assert_lt(t->n_extra, 8);
    broker *b = open_redis(bpt_redis_url(srv), o);
    t->extra[t->n_extra++] = b;
    return b;
}

static broker *another_redis(bt *t)
{
    return redis_with(t, &t->opts);
}

static void default_opts(broker_options *o)
{
    memset(o, 0, sizeof *o);
    o->lease_ms = 30000;
    o->result_ttl_ms = 3600000;
    o->max_crashes = 3;
    o->worker_timeout_ms = 10000;
}

static void setup_with(const bpt_redis_opts *ro)
{
    use_fake_clock();
    srv = bpt_redis_start(ro);
    memset(&T, 0, sizeof T);
    default_opts(&T.opts);
    T.open_another = another_redis;
    T.open_with = redis_with;
    T.b = open_redis(bpt_redis_url(srv), &T.opts);
}

static void setup(void)
{
    setup_with(NULL);
}

static void teardown(void)
{
    for (int i = 0; i < T.n_extra; i++) {
        broker_destroy(T.extra[i]);
    }
    broker_destroy(T.b);
    memset(&T, 0, sizeof T);
    bpt_redis_free(srv);
    srv = NULL;
    util_set_clock(NULL);
}

#define CONFORMANCE(name, secs)                                                                    \
    Test(broker_redis, name, .init = setup, .fini = teardown, .timeout = (secs))                   \
    {                                                                                              \
        conf_##name(&T);                                                                           \
    }

CONFORMANCE(round_trip, 30)
CONFORMANCE(ack_and_lease_in_one_exchange, 30)
CONFORMANCE(priority_order, 30)
CONFORMANCE(delayed_promotion, 30)
CONFORMANCE(expires, 30)
CONFORMANCE(retry_scheduling, 30)
CONFORMANCE(unique_key, 30)
CONFORMANCE(caller_id_dedupe, 30)
CONFORMANCE(revoke, 30)
CONFORMANCE(revoked_running_retry_does_not_retry, 30)
CONFORMANCE(purge, 30)
CONFORMANCE(lease_expiry_reaped_and_crash_counted, 30)
CONFORMANCE(dead_after_max_crashes, 30)
CONFORMANCE(heartbeat_renews_leases, 30)
CONFORMANCE(worker_timeout_reclaims_at_once, 30)
CONFORMANCE(worker_stop_releases_without_crash, 30)
CONFORMANCE(results_ttl, 30)
CONFORMANCE(lease_one, 30)
CONFORMANCE(list_and_stats, 30)
CONFORMANCE(bad_input, 30)
CONFORMANCE(concurrent_exchange_leases_each_job_once, 120)
CONFORMANCE(wake_on_enqueue_revoke_and_done, 60)
CONFORMANCE(wake_reaches_the_idle_worker, 60)
CONFORMANCE(give_back, 30)
CONFORMANCE(on_final_records, 30)
CONFORMANCE(wake_kinds, 60)

/* The project's backend-independent contract (tests/support/broker_suite.c), on Redis. */
static bpt_redis *contract_srv;

static void contract_start(void)
{
    util_set_clock(NULL);
    contract_srv = bpt_redis_start(NULL);
}

static void contract_stop(void)
{
    bpt_redis_free(contract_srv);
    contract_srv = NULL;
}

static broker *contract_open(const broker_options *o)
{
    broker *b = NULL;
    bp_error err = {0};
    cr_assert_eq(broker_redis_open(bpt_redis_url(contract_srv), o, &b, &err), BP_OK, "open: %s",
                 err.msg);
    return b;
}

static void contract_close(broker *b)
{
    broker_destroy(b);
}

TestSuite(redis_contract, .init = contract_start, .fini = contract_stop);
BSUITE_TESTS(redis_contract, contract_open, contract_close)

/* ============================================================================================
 * Part 2: Redis-specific
 * ========================================================================================== */

static bool key_exists(const char *key)
{
    redisReply *r = bpt_redis_cmd(srv, "EXISTS %s", key);
    bool yes = r && r->integer == 1;
    if (r) {
        freeReplyObject(r);
    }
    return yes;
}

Test(broker_redis_keys, hash_tagged_layout_and_prefix, .init = setup, .fini = teardown)
{
    char id[BP_JOB_ID_SIZE], key[256];
    put_new(&T, "data_queue", id);
    snprintf(key, sizeof key, "bp:{data_queue}:j:%s", id);
    cr_assert(key_exists(key), "job hash %s", key);
    cr_assert(key_exists("bp:{data_queue}:pending"));
    cr_assert(key_exists("bp:{data_queue}:all"));
    cr_assert(key_exists("bp:{data_queue}:marker"));
    cr_assert(key_exists("bp:queues"));
    cr_assert_eq(take_count(&T, "w", "data_queue", 1), 1);
    cr_assert(key_exists("bp:{data_queue}:active"));
    cr_assert(key_exists("bp:{data_queue}:wl:w"));
    /* every per-queue key hashes to the queue's slot */
    redisReply *r = bpt_redis_cmd(srv, "KEYS bp:{data_queue}:*");
    cr_assert_gt(r->elements, 4);
    freeReplyObject(r);

    /* a custom prefix keeps two deployments apart on one Redis */
    char url[300];
    snprintf(url, sizeof url, "%s?prefix=staging", bpt_redis_url(srv));
    broker *other = open_redis(url, &T.opts);
    job *j = mk("data_queue", "sys.noop");
    int st;
    cr_assert_eq(other->ops->enqueue(other, &j, 1, &st, NULL), BP_OK);
    snprintf(key, sizeof key, "staging:{data_queue}:j:%s", j->id);
    cr_assert(key_exists(key));
    job_free(j);
    cr_assert_eq(stat_of(&T, "data_queue", "waiting"), 0, "bp sees none of staging's jobs");
    broker_destroy(other);
}

Test(broker_redis_keys, finished_records_carry_a_ttl, .init = setup, .fini = teardown)
{
    char id[BP_JOB_ID_SIZE], key[256];
    put_new(&T, "q", id);
    snprintf(key, sizeof key, "bp:{q}:j:%s", id);
    redisReply *r = bpt_redis_cmd(srv, "PTTL %s", key);
    cr_assert_eq(r->integer, -1, "a live job never expires");
    freeReplyObject(r);
    cr_assert_eq(take_count(&T, "w", "q", 1), 1);
    ack(&T, "w", id, JOB_SUCCESS, NULL, NULL, 0);
    r = bpt_redis_cmd(srv, "PTTL %s", key);
    cr_assert_gt(r->integer, 0);
    cr_assert_leq(r->integer, T.opts.result_ttl_ms);
    freeReplyObject(r);
}

Test(broker_redis_conn, broker_open_dispatches_redis_urls, .init = setup, .fini = teardown)
{
    broker *b = NULL;
    bp_error err = {0};
    cr_assert_eq(broker_open(bpt_redis_url(srv), "/nonexistent", &T.opts, &b, &err), BP_OK, "%s",
                 err.msg);
    cr_assert_str_eq(b->ops->name, "redis");
    broker_destroy(b);
    cr_assert_eq(
        broker_open("rediss://:secret@127.0.0.1:6379/0", "/nonexistent", &T.opts, &b, &err),
        BP_E_CONFIG);
    cr_assert(strstr(err.msg, "TLS"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "secret"), "%s", err.msg);
}

Test(broker_redis_conn, unreachable_fails_fast_with_a_clear_message)
{
    broker *b = NULL;
    bp_error err = {0};
    broker_options o;
    default_opts(&o);
    cr_assert_eq(broker_redis_open("unix:///nonexistent/redis.sock", &o, &b, &err),
                 BP_E_UNAVAILABLE);
    cr_assert_null(b);
    cr_assert(strstr(err.msg, "redis broker"), "%s", err.msg);
    cr_assert(strstr(err.msg, "/nonexistent/redis.sock"), "%s", err.msg);
    cr_assert_eq(broker_redis_open("redis://:pw@h/0?prefix=a{b}", &o, &b, &err), BP_E_CONFIG);
}

Test(broker_redis_conn, eviction_policy_warning, .fini = teardown)
{
    bpt_redis_opts ro = {.maxmemory_policy = "allkeys-lru"};
    char *logdir = bpt_tmpdir("brlog"), path[300];
    snprintf(path, sizeof path, "%s/log", logdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    log_set_fd(fd);
    setup_with(&ro);
    log_set_fd(2);
    close(fd);
    char *text = bpt_slurp(path);
    cr_assert(text && strstr(text, "allkeys-lru") && strstr(text, "noeviction"), "log: %s",
              text ? text : "(none)");
    free(text);
    bpt_rm_rf(logdir);
    free(logdir);
}

static bool exchange_works(void *ud)
{
    broker *b = ud;
    broker_want w = {"q", 0};
    job **v = NULL;
    size_t n = 0;
    int rc = b->ops->exchange(b, "w", NULL, 0, &w, 1, &v, &n, NULL);
    free_jobs(v, n);
    return rc == BP_OK;
}

Test(broker_redis_conn, down_then_back_same_handle, .init = setup, .fini = teardown)
{
    char id[BP_JOB_ID_SIZE];
    bp_error err = {0};
    job *j = NULL;
    put_new(&T, "q", id);
    bpt_redis_kill9(srv);
    int64_t t0 = bpt_now_ms();
    cr_assert_eq(T.b->ops->get(T.b, id, &j, &err), BP_E_UNAVAILABLE);
    cr_assert(strstr(err.msg, bpt_redis_socket(srv)), "%s", err.msg);
    job *k = mk("q", "sys.noop");
    int st;
    cr_assert_eq(T.b->ops->enqueue(T.b, &k, 1, &st, &err), BP_E_UNAVAILABLE);
    job_free(k);
    broker_reap_report rep;
    cr_assert_eq(T.b->ops->reap(T.b, &rep, &err), BP_E_UNAVAILABLE);
    cr_assert_lt(bpt_now_ms() - t0, 3000, "calls against a dead Redis fail fast");
    bpt_redis_restart(srv); /* no AOF: the data is gone, the handle must not be */
    cr_assert(bpt_wait_for(exchange_works, T.b, 10000), "the broker did not reconnect");
    put_new(&T, "q", id);
    cr_assert_eq(state_of(&T, id), JOB_PENDING);
}

/* Celery's "worker silently stops consuming after a reconnect" must not exist: an idle worker
 * and a waiting client are still woken after Redis restarted under them. */
Test(broker_redis_conn, wake_ups_survive_a_restart, .init = setup, .fini = teardown, .timeout = 60)
{
    broker *worker = another_redis(&T);
    broker *client = another_redis(&T);
    bp_error err = {0};
    job **v = NULL;
    size_t n = 0;
    util_set_clock(NULL);
    cr_assert_eq(worker->ops->subscribe(worker, BROKER_WAKE_WORK, &err), BP_OK);
    cr_assert_eq(client->ops->subscribe(client, BROKER_WAKE_DONE, &err), BP_OK);
    broker_want want = {"q", 1};
    cr_assert_eq(worker->ops->exchange(worker, "w", NULL, 0, &want, 1, &v, &n, &err), BP_OK);
    cr_assert_eq(n, 0);
    free(v);

    bpt_redis_stop(srv);
    bpt_redis_restart(srv);
    /* both wake threads reconnect by themselves and say so (a wake-up: "look again") */
    cr_assert(readable_within(worker->ops->wake_fd(worker), 20000), "no wake-up on recovery");
    cr_assert(readable_within(client->ops->wake_fd(client), 20000), "no wake-up on recovery");
    worker->ops->drain_wake(worker);
    client->ops->drain_wake(client);

    char id[BP_JOB_ID_SIZE];
    put_new(&T, "q", id);
    cr_assert(readable_within(worker->ops->wake_fd(worker), 5000),
              "the idle worker was not woken after the restart");
    cr_assert_eq(worker->ops->exchange(worker, "w", NULL, 0, &want, 1, &v, &n, &err), BP_OK, "%s",
                 err.msg);
    cr_assert_eq(n, 1);
    free_jobs(v, n);
    ack_on(worker, "w", id, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert(readable_within(client->ops->wake_fd(client), 5000),
              "the waiting client was not woken after the restart");
}

static bool one_blocked_client(void *ud)
{
    (void)ud;
    redisReply *r = bpt_redis_cmd(srv, "INFO clients");
    bool yes = r && r->str && strstr(r->str, "blocked_clients:1\r\n");
    if (r) {
        freeReplyObject(r);
    }
    return yes;
}

static bool done_channel_subscribed(void *ud)
{
    (void)ud;
    redisReply *r = bpt_redis_cmd(srv, "PUBSUB NUMSUB bp:done");
    bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->integer == 1;
    if (r) {
        freeReplyObject(r);
    }
    return yes;
}

Test(broker_redis_conn, subscribe_while_redis_is_down, .init = setup, .fini = teardown,
     .timeout = 60)
{
    broker *worker = another_redis(&T);
    bp_error err = {0};
    job **v = NULL;
    size_t n = 0;
    char id[BP_JOB_ID_SIZE];
    util_set_clock(NULL);
    bpt_redis_stop(srv);
    cr_assert_eq(worker->ops->subscribe(worker, BROKER_WAKE_WORK | BROKER_WAKE_DONE, &err), BP_OK,
                 "%s", err.msg);
    bpt_redis_restart(srv);
    broker_want want = {"q", 1};
    cr_assert(bpt_wait_for(exchange_works, worker, 10000));
    cr_assert_eq(worker->ops->exchange(worker, "w", NULL, 0, &want, 1, &v, &n, &err), BP_OK, "%s",
                 err.msg);
    cr_assert_eq(n, 0);
    free(v);
    /* Both threads settled (blocked on the marker, subscribed to the channel); only then do
     * wake-ups prove anything. */
    cr_assert(bpt_wait_for(one_blocked_client, NULL, 10000), "the wake thread never blocked");
    cr_assert(bpt_wait_for(done_channel_subscribed, NULL, 10000), "never subscribed");
    worker->ops->drain_wake(worker);
    cr_assert_not(readable_now(worker->ops->wake_fd(worker)));
    put_new(&T, "q", id);
    cr_assert(readable_within(worker->ops->wake_fd(worker), 10000),
              "subscribed while Redis was down, not woken by an enqueue after");
    cr_assert_eq(worker->ops->exchange(worker, "w", NULL, 0, &want, 1, &v, &n, &err), BP_OK);
    cr_assert_eq(n, 1);
    free_jobs(v, n);
    cr_assert(bpt_wait_for(one_blocked_client, NULL, 10000));
    worker->ops->drain_wake(worker);
    ack_on(T.b, "intruder", id, JOB_SUCCESS, NULL, NULL, 0); /* the lease is w's */
    cr_assert_eq(state_of(&T, id), JOB_STARTED, "only the lease holder finishes a job");
    ack_on(worker, "w", id, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert(readable_within(worker->ops->wake_fd(worker), 10000),
              "subscribed while Redis was down, not woken by a finished job after");
}

Test(broker_redis_conn, script_flush_mid_run, .init = setup, .fini = teardown)
{
    char id[BP_JOB_ID_SIZE];
    put_new(&T, "q", id);
    redisReply *r = bpt_redis_cmd(srv, "SCRIPT FLUSH");
    freeReplyObject(r);
    cr_assert_eq(take_count(&T, "w", "q", 1), 1, "pipelined EVALSHA recovered from NOSCRIPT");
    r = bpt_redis_cmd(srv, "SCRIPT FLUSH");
    freeReplyObject(r);
    ack(&T, "w", id, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert_eq(state_of(&T, id), JOB_SUCCESS);
}

/* A worker that keeps exchanging through a Redis kill -9 + restart (AOF): every job ends in
 * SUCCESS, none is lost, none is stuck. The lease is short so that leases whose replies died with
 * the server come back through the reaper within the test. */
typedef struct runner {
    broker *b;
    atomic_int done;
    atomic_bool stop;
    atomic_int errors;
} runner;

static void *run_worker(void *arg)
{
    runner *r = arg;
    broker_ack acks[20];
    char held[20][BP_JOB_ID_SIZE];
    size_t n_acks = 0;
    broker_want w = {"q", 20};
    int64_t last_reap = 0;
    while (!atomic_load(&r->stop)) {
        job **v = NULL;
        size_t n = 0;
        for (size_t i = 0; i < n_acks; i++) {
            acks[i] =
                (broker_ack){.id = held[i], .state = JOB_SUCCESS, .finished_ms = util_now_ms()};
        }
        int rc = r->b->ops->exchange(r->b, "aof-w", acks, n_acks, &w, 1, &v, &n, NULL);
        if (rc != BP_OK) {
            /* acks not confirmed: keep them for the next round (the job may run twice) */
            atomic_fetch_add(&r->errors, 1);
            struct pollfd p = {-1, 0, 0};
            poll(&p, 0, 20);
            continue;
        }
        atomic_fetch_add(&r->done, (int)n_acks);
        n_acks = 0;
        for (size_t i = 0; i < n; i++) {
            util_strlcpy(held[n_acks++], v[i]->id, BP_JOB_ID_SIZE);
        }
        free_jobs(v, n);
        if (util_now_ms() - last_reap > 200) {
            r->b->ops->reap(r->b, NULL, NULL);
            last_reap = util_now_ms();
        }
        if (n == 0) {
            struct pollfd p = {-1, 0, 0};
            poll(&p, 0, 5);
        }
    }
    return NULL;
}

static bool half_done(void *ud)
{
    return atomic_load(&((runner *)ud)->done) >= 600;
}

static bool all_succeeded(void *ud)
{
    json_t *s = NULL;
    bool yes = false;
    (void)ud;
    /* Redis may still be loading its AOF: an error here just means "not yet" */
    if (T.b->ops->stats(T.b, &s, NULL) == BP_OK) {
        json_t *q = json_object_get(json_object_get(s, "queues"), "q");
        yes = json_integer_value(json_object_get(q, "succeeded")) == 2000;
        json_decref(s);
    }
    return yes;
}

static void setup_aof(void)
{
    bpt_redis_opts ro = {.aof = true};
    setup_with(&ro);
    util_set_clock(NULL);
    T.opts.lease_ms = 1000;
    T.opts.worker_timeout_ms = 1000;
    broker_destroy(T.b);
    T.b = open_redis(bpt_redis_url(srv), &T.opts);
}

static void restart_mid_run(bool kill9)
{
    enum { N = 2000 };
    job **batch = calloc(N, sizeof *batch);
    int *st = calloc(N, sizeof *st);
    char(*ids)[BP_JOB_ID_SIZE] = calloc(N, sizeof *ids);
    bp_error err = {0};
    for (int i = 0; i < N; i++) {
        batch[i] = mk("q", "sys.noop");
        util_strlcpy(ids[i], batch[i]->id, BP_JOB_ID_SIZE);
    }
    cr_assert_eq(T.b->ops->enqueue(T.b, batch, N, st, &err), BP_OK, "%s", err.msg);
    for (int i = 0; i < N; i++) {
        job_free(batch[i]);
    }
    runner r = {.b = another_redis(&T)};
    pthread_t th;
    pthread_create(&th, NULL, run_worker, &r);
    cr_assert(bpt_wait_for(half_done, &r, 60000), "the run did not get going");
    if (kill9) {
        bpt_redis_kill9(srv);
    } else {
        bpt_redis_stop(srv);
    }
    bpt_redis_restart(srv);
    bool ok = bpt_wait_for(all_succeeded, NULL, 90000);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    cr_assert(ok, "not every job succeeded: %lld of %d", (long long)stat_of(&T, "q", "succeeded"),
              N);
    cr_assert_gt(atomic_load(&r.errors), 0, "the worker never saw the outage: nothing tested");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(state_of(&T, ids[i]), JOB_SUCCESS, "job %d", i);
    }
    cr_assert_eq(stat_of(&T, "q", "waiting"), 0);
    cr_assert_eq(stat_of(&T, "q", "running"), 0);
    free(batch);
    free(st);
    free(ids);
}

Test(broker_redis_restart, aof_restart_mid_run_loses_nothing, .init = setup_aof, .fini = teardown,
     .timeout = 200)
{
    restart_mid_run(false);
}

Test(broker_redis_restart, aof_kill9_mid_run_loses_nothing, .init = setup_aof, .fini = teardown,
     .timeout = 200)
{
    restart_mid_run(true);
}

/* A lease whose exchange reply was lost (the script ran, the connection dropped before the
 * reply arrived) is in the broker but not in the worker. The worker's heartbeat lists what it
 * holds, and the broker gives back the rest at once instead of renewing it for as long as the
 * worker lives - which would leave the job stuck. */
Test(broker_redis_leases, heartbeat_gives_back_leases_the_worker_never_received, .init = setup,
     .fini = teardown)
{
    char a[BP_JOB_ID_SIZE], b[BP_JOB_ID_SIZE];
    const char *held[] = {a};
    json_t *queues = json_pack("{s:i}", "q_lost", 2), *revoked = NULL;
    broker_worker_info w = {.id = "w-lost",
                            .host = "testhost",
                            .pid = 1,
                            .queues = queues,
                            .started_ms = util_now_ms(),
                            .held = held,
                            .n_held = 1};
    bp_error err = {0};
    size_t n = 0;
    job **v;
    put_new(&T, "q_lost", a);
    put_new(&T, "q_lost", b);
    v = take(&T, "w-lost", "q_lost", 2, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0]->id, a);
    free_jobs(v, n);
    /* the worker only ever saw `a` */
    cr_assert_eq(T.b->ops->heartbeat(T.b, &w, NULL, NULL, &revoked, &err), BP_OK, "%s", err.msg);
    json_decref(revoked);
    cr_assert_eq(state_of(&T, a), JOB_STARTED, "the held lease is renewed");
    cr_assert_eq(state_of(&T, b), JOB_PENDING, "the lost one is given back");
    {
        job *j = NULL;
        cr_assert_eq(T.b->ops->get(T.b, b, &j, &err), BP_OK);
        cr_assert_eq(j->attempts, 0, "a run that never happened is not counted");
        cr_assert_eq(j->crashes, 0, "nor is it a crash");
        job_free(j);
    }
    v = take(&T, "another", "q_lost", 2, &n);
    cr_assert_eq(n, 1, "another worker gets it at once");
    cr_assert_str_eq(v[0]->id, b);
    free_jobs(v, n);
    /* a worker that does not say what it holds keeps the old behaviour: everything renewed */
    w.held = NULL;
    cr_assert_eq(T.b->ops->heartbeat(T.b, &w, NULL, NULL, &revoked, &err), BP_OK, "%s", err.msg);
    json_decref(revoked);
    cr_assert_eq(state_of(&T, a), JOB_STARTED);
    json_decref(queues);
}
