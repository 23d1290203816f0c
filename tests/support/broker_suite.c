/*
 * broker_suite.c - the broker contract as backend-independent checks (see broker_suite.h).
 * Durations are short real times (a few hundred ms) so the checks run on any backend without a
 * fake clock; every wait is a condition with a scaled deadline.
 */
#include "broker_suite.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"
#include "util.h"

static const char *const W1 = "test-host:1:w1";
static const char *const W2 = "test-host:2:w2";

job *bsuite_job(const char *queue, int i)
{
    job *j = job_new();
    char args[64];
    cr_assert(j);
    util_uuid7(j->id);
    snprintf(args, sizeof args, "{\"n\":%d}", i);
    cr_assert(job_set_str(&j->type, "sys.noop") == BP_OK);
    cr_assert(job_set_str(&j->queue, queue) == BP_OK);
    cr_assert(job_set_str(&j->args, args) == BP_OK);
    return j;
}

int64_t bsuite_queue_count(broker *b, const char *queue, const char *what)
{
    json_t *stats = NULL, *q;
    int64_t n;
    bp_error err = {0};
    cr_assert_eq(b->ops->stats(b, &stats, &err), BP_OK, "stats: %s", err.msg);
    q = json_object_get(json_object_get(stats, "queues"), queue);
    cr_assert(q, "the stats have no queue %s", queue);
    n = json_integer_value(json_object_get(q, what));
    json_decref(stats);
    return n;
}

static broker *open_default(const bsuite_env *env)
{
    broker_options o;
    broker_options_default(&o);
    broker *b = env->open(&o);
    cr_assert(b, "backend did not open");
    return b;
}

static void enqueue_ok(broker *b, job *j)
{
    int status = -99;
    bp_error err = {0};
    int rc = b->ops->enqueue(b, &j, 1, &status, &err);
    cr_assert_eq(rc, BP_OK, "enqueue: %s", err.msg);
    cr_assert_eq(status, BP_OK, "enqueue status %d", status);
}

/* Lease up to n jobs of `queue` for `worker`; returns the count, jobs in *out (caller frees). */
static size_t lease(broker *b, const char *worker, const char *queue, int n, job ***out)
{
    broker_want want = {queue, n};
    size_t got = 0;
    bp_error err = {0};
    int rc = b->ops->exchange(b, worker, NULL, 0, &want, 1, out, &got, &err);
    cr_assert_eq(rc, BP_OK, "exchange: %s", err.msg);
    return got;
}

static void free_jobs(job **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        job_free(jobs[i]);
    }
    free(jobs);
}

static void ack(broker *b, const char *worker, const char *id, job_state state, const char *result,
                const char *error, int64_t retry_at)
{
    broker_ack a = {.id = id,
                    .state = state,
                    .result = result,
                    .error = error,
                    .retry_at_ms = retry_at,
                    .finished_ms = util_now_ms()};
    job **jobs = NULL;
    size_t n = 0;
    bp_error err = {0};
    int rc = b->ops->exchange(b, worker, &a, 1, NULL, 0, &jobs, &n, &err);
    cr_assert_eq(rc, BP_OK, "ack: %s", err.msg);
    cr_assert_eq(n, 0);
    free(jobs);
}

static job *get(broker *b, const char *id)
{
    job *j = NULL;
    bp_error err = {0};
    int rc = b->ops->get(b, id, &j, &err);
    cr_assert_eq(rc, BP_OK, "get %s: %s", id, err.msg);
    return j;
}

static job_state state_of(broker *b, const char *id)
{
    job *j = get(b, id);
    job_state s = j->state;
    job_free(j);
    return s;
}

static void reap(broker *b, broker_reap_report *rep)
{
    bp_error err = {0};
    broker_reap_report local;
    int rc = b->ops->reap(b, rep ? rep : &local, &err);
    cr_assert_eq(rc, BP_OK, "reap: %s", err.msg);
}

static void sleep_ms(int64_t ms)
{
    util_sleep_ms(bpt_deadline_ms(ms));
}

void bsuite_roundtrip(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *j = bsuite_job("q_rt", 1);
    job **got = NULL;
    char id[BP_JOB_ID_SIZE];
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);
    cr_assert_eq(state_of(b, id), JOB_PENDING);

    cr_assert_eq(lease(b, W1, "q_rt", 5, &got), 1);
    cr_assert_str_eq(got[0]->id, id);
    cr_assert_eq(got[0]->state, JOB_STARTED);
    cr_assert_eq(got[0]->attempts, 1);
    cr_assert_str_eq(got[0]->worker, W1);
    cr_assert_str_eq(got[0]->args, "{\"n\":1}");
    cr_assert(got[0]->lease_until_ms > util_now_ms());
    free_jobs(got, 1);
    cr_assert_eq(lease(b, W1, "q_rt", 5, &got), 0, "a leased job must not be leased twice");
    free(got);

    ack(b, W1, id, JOB_SUCCESS, "{\"ok\":true}", NULL, 0);
    j = get(b, id);
    cr_assert_eq(j->state, JOB_SUCCESS);
    cr_assert_str_eq(j->result, "{\"ok\":true}");
    cr_assert(j->started_ms > 0 && j->finished_ms >= j->started_ms);
    cr_assert(j->created_ms > 0 && j->created_ms <= j->started_ms);
    job_free(j);
    env->close(b);
}

void bsuite_priority_then_fifo(const bsuite_env *env)
{
    broker *b = open_default(env);
    const int prio[] = {1, 9, 5, 9, 5};
    char ids[5][BP_JOB_ID_SIZE];
    /* expected lease order: the two 9s in enqueue order, then the two 5s, then the 1 */
    const int order[] = {1, 3, 2, 4, 0};
    for (int i = 0; i < 5; i++) {
        job *j = bsuite_job("q_prio", i);
        j->priority = prio[i];
        util_strlcpy(ids[i], j->id, sizeof ids[i]);
        enqueue_ok(b, j);
        job_free(j);
    }
    for (int k = 0; k < 5; k++) {
        job **got = NULL;
        cr_assert_eq(lease(b, W1, "q_prio", 1, &got), 1);
        cr_assert_str_eq(got[0]->id, ids[order[k]], "lease %d: expected job %d (priority %d)", k,
                         order[k], prio[order[k]]);
        free_jobs(got, 1);
    }
    env->close(b);
}

void bsuite_delayed(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *j = bsuite_job("q_delay", 1);
    job **got = NULL;
    const char *qs[] = {"q_delay"};
    int64_t due = 0;
    bp_error err = {0};
    char id[BP_JOB_ID_SIZE];
    int64_t eta = util_now_ms() + bpt_deadline_ms(400);
    j->eta_ms = eta;
    j->state = JOB_SCHEDULED;
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);
    cr_assert_eq(state_of(b, id), JOB_SCHEDULED);
    cr_assert_eq(b->ops->next_due(b, qs, 1, &due, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(due, eta, "next_due %lld, eta %lld", (long long)due, (long long)eta);
    cr_assert_eq(lease(b, W1, "q_delay", 1, &got), 0, "a delayed job must wait for its eta");
    free(got);
    while (util_now_ms() < eta) {
        sleep_ms(20);
    }
    cr_assert_eq(lease(b, W1, "q_delay", 1, &got), 1, "due job not promoted");
    cr_assert(util_now_ms() >= eta);
    free_jobs(got, 1);
    cr_assert_eq(b->ops->next_due(b, qs, 1, &due, &err), BP_OK);
    cr_assert_eq(due, INT64_MAX);
    env->close(b);
}

void bsuite_expires(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *late = bsuite_job("q_exp", 1);
    job *fine = bsuite_job("q_exp", 2);
    job **got = NULL;
    char late_id[BP_JOB_ID_SIZE], fine_id[BP_JOB_ID_SIZE];
    late->expires_ms = util_now_ms() + bpt_deadline_ms(150);
    fine->expires_ms = util_now_ms() + 3600 * 1000;
    util_strlcpy(late_id, late->id, sizeof late_id);
    util_strlcpy(fine_id, fine->id, sizeof fine_id);
    enqueue_ok(b, late);
    enqueue_ok(b, fine);
    job_free(late);
    job_free(fine);
    sleep_ms(300);
    cr_assert_eq(lease(b, W1, "q_exp", 5, &got), 1);
    cr_assert_str_eq(got[0]->id, fine_id, "the expired job must never run");
    free_jobs(got, 1);
    job *j = get(b, late_id);
    cr_assert_eq(j->state, JOB_EXPIRED);
    cr_assert(j->error && strstr(j->error, "expired"), "error: %s", j->error);
    cr_assert_eq(j->attempts, 0);
    job_free(j);
    env->close(b);
}

void bsuite_retry(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *j = bsuite_job("q_retry", 1);
    job **got = NULL;
    char id[BP_JOB_ID_SIZE];
    int64_t retry_at;
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);
    cr_assert_eq(lease(b, W1, "q_retry", 1, &got), 1);
    free_jobs(got, 1);
    retry_at = util_now_ms() + bpt_deadline_ms(300);
    ack(b, W1, id, JOB_RETRY, NULL, "upstream 503", retry_at);
    j = get(b, id);
    cr_assert_eq(j->state, JOB_RETRY);
    cr_assert_str_eq(j->error, "upstream 503");
    job_free(j);
    cr_assert_eq(lease(b, W1, "q_retry", 1, &got), 0, "retry before its backoff");
    free(got);
    while (util_now_ms() < retry_at) {
        sleep_ms(20);
    }
    cr_assert_eq(lease(b, W2, "q_retry", 1, &got), 1);
    cr_assert_eq(got[0]->attempts, 2);
    cr_assert_str_eq(got[0]->worker, W2);
    free_jobs(got, 1);
    ack(b, W2, id, JOB_FAILURE, NULL, "gave up", 0);
    cr_assert_eq(state_of(b, id), JOB_FAILURE);
    env->close(b);
}

void bsuite_unique_key(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *a = bsuite_job("q_uniq", 1), *c = bsuite_job("q_uniq", 2);
    int status = 0;
    char a_id[BP_JOB_ID_SIZE];
    job **got = NULL;
    bp_error err = {0};
    job_set_str(&a->unique_key, "ml.train:E0");
    job_set_str(&c->unique_key, "ml.train:E0");
    util_strlcpy(a_id, a->id, sizeof a_id);
    enqueue_ok(b, a);
    cr_assert_eq(b->ops->enqueue(b, &c, 1, &status, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(status, BP_E_EXISTS, "a second live job with the same unique key");
    cr_assert_str_eq(c->id, a_id, "the holder's id is reported");
    /* still held while running */
    cr_assert_eq(lease(b, W1, "q_uniq", 1, &got), 1);
    free_jobs(got, 1);
    job_free(c);
    c = bsuite_job("q_uniq", 3);
    job_set_str(&c->unique_key, "ml.train:E0");
    cr_assert_eq(b->ops->enqueue(b, &c, 1, &status, &err), BP_OK);
    cr_assert_eq(status, BP_E_EXISTS);
    /* released once the holder finishes */
    ack(b, W1, a_id, JOB_SUCCESS, "null", NULL, 0);
    util_uuid7(c->id);
    enqueue_ok(b, c);
    job_free(a);
    job_free(c);
    env->close(b);
}

void bsuite_caller_id_dedupe(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *a = bsuite_job("q_dedupe", 1), *c = bsuite_job("q_dedupe", 2);
    int status = 0;
    bp_error err = {0};
    job **got = NULL;
    util_strlcpy(a->id, "beat:odds:2026-11-22T10:15Z", sizeof a->id);
    util_strlcpy(c->id, "beat:odds:2026-11-22T10:15Z", sizeof c->id);
    enqueue_ok(b, a);
    cr_assert_eq(b->ops->enqueue(b, &c, 1, &status, &err), BP_OK);
    cr_assert_eq(status, BP_E_EXISTS, "the same id enqueued twice");
    cr_assert_eq(lease(b, W1, "q_dedupe", 5, &got), 1, "exactly one job exists");
    free_jobs(got, 1);
    job_free(a);
    job_free(c);
    env->close(b);
}

void bsuite_revoke(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *waiting = bsuite_job("q_rev", 1), *delayed = bsuite_job("q_rev", 2);
    job *running = bsuite_job("q_rev", 3);
    char w_id[BP_JOB_ID_SIZE], d_id[BP_JOB_ID_SIZE], r_id[BP_JOB_ID_SIZE];
    job_state st;
    bp_error err = {0};
    job **got = NULL;
    json_t *revoked = NULL, *queues = json_object();
    broker_worker_info wi = {
        .id = W1, .host = "test-host", .pid = 1, .queues = queues, .started_ms = util_now_ms()};

    running->priority = 9;
    delayed->eta_ms = util_now_ms() + 3600 * 1000;
    delayed->state = JOB_SCHEDULED;
    util_strlcpy(w_id, waiting->id, sizeof w_id);
    util_strlcpy(d_id, delayed->id, sizeof d_id);
    util_strlcpy(r_id, running->id, sizeof r_id);
    enqueue_ok(b, waiting);
    enqueue_ok(b, delayed);
    enqueue_ok(b, running);
    cr_assert_eq(lease(b, W1, "q_rev", 1, &got), 1);
    cr_assert_str_eq(got[0]->id, r_id);
    free_jobs(got, 1);

    cr_assert_eq(b->ops->revoke(b, w_id, false, &st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st, JOB_REVOKED);
    cr_assert_eq(b->ops->revoke(b, d_id, false, &st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st, JOB_REVOKED);
    cr_assert_eq(b->ops->revoke(b, r_id, false, &st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st, JOB_STARTED, "a running job is flagged, not stopped by the broker");
    cr_assert_eq(lease(b, W1, "q_rev", 5, &got), 0, "revoked jobs never run");
    free(got);

    cr_assert_eq(b->ops->heartbeat(b, &wi, NULL, NULL, &revoked, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_array_size(revoked), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(revoked, 0), "id")), r_id);
    cr_assert(json_is_false(json_object_get(json_array_get(revoked, 0), "terminate")));
    json_decref(revoked);
    ack(b, W1, r_id, JOB_REVOKED, NULL, "revoked while running", 0);
    cr_assert_eq(state_of(b, r_id), JOB_REVOKED);
    cr_assert_eq(b->ops->revoke(b, r_id, false, &st, &err), BP_E_STATE, "revoking a finished job");
    cr_assert(strstr(err.msg, "already finished"), "%s", err.msg);
    cr_assert_eq(b->ops->revoke(b, "no-such-job", false, &st, &err), BP_E_NOTFOUND);
    json_decref(queues);
    job_free(waiting);
    job_free(delayed);
    job_free(running);
    env->close(b);
}

void bsuite_purge(const bsuite_env *env)
{
    broker *b = open_default(env);
    int64_t removed = -1;
    bp_error err = {0};
    job **got = NULL;
    char running_id[BP_JOB_ID_SIZE];
    for (int i = 0; i < 10; i++) {
        job *j = bsuite_job("q_purge", i);
        if (i == 0) {
            j->priority = 9;
            util_strlcpy(running_id, j->id, sizeof running_id);
        }
        enqueue_ok(b, j);
        job_free(j);
    }
    job *other = bsuite_job("q_other", 1);
    enqueue_ok(b, other);
    job_free(other);
    cr_assert_eq(lease(b, W1, "q_purge", 1, &got), 1);
    free_jobs(got, 1);
    cr_assert_eq(b->ops->purge(b, "q_purge", &removed, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(removed, 9, "purge removes waiting jobs only");
    cr_assert_eq(state_of(b, running_id), JOB_STARTED, "a running job survives purge");
    cr_assert_eq(lease(b, W1, "q_other", 5, &got), 1, "other queues untouched");
    free_jobs(got, 1);
    env->close(b);
}

void bsuite_lease_expiry_and_dead(const bsuite_env *env)
{
    broker_options o;
    broker *b;
    job *j;
    job **got = NULL;
    char id[BP_JOB_ID_SIZE];
    broker_options_default(&o);
    o.lease_ms = bpt_deadline_ms(200);
    o.max_crashes = 2;
    b = env->open(&o);
    j = bsuite_job("q_lease", 1);
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);

    for (int crash = 1; crash <= 2; crash++) {
        broker_reap_report rep = {0};
        cr_assert_eq(lease(b, W1, "q_lease", 1, &got), 1, "crash %d: job should be runnable",
                     crash);
        free_jobs(got, 1);
        sleep_ms(300); /* lease runs out: no heartbeat */
        reap(b, &rep);
        j = get(b, id);
        cr_assert_eq(j->crashes, crash);
        if (crash < 2) {
            cr_assert_eq(rep.requeued, 1);
            cr_assert_eq(j->state, JOB_PENDING, "requeued after a lost lease");
        } else {
            cr_assert_eq(rep.dead, 1);
            cr_assert_eq(j->state, JOB_DEAD, "DEAD after max_crashes");
            cr_assert(j->error && strstr(j->error, "died 2 times"), "error: %s", j->error);
        }
        job_free(j);
    }
    cr_assert_eq(lease(b, W1, "q_lease", 1, &got), 0, "a DEAD job never runs again");
    free(got);
    env->close(b);
}

void bsuite_worker_timeout(const bsuite_env *env)
{
    broker_options o;
    broker *b;
    job *j;
    job **got = NULL;
    json_t *revoked = NULL, *queues = json_pack("{s:i}", "q_wt", 1);
    bp_error err = {0};
    broker_reap_report rep = {0};
    /* a worker on another host: only its heartbeat can tell it is gone */
    broker_worker_info wi = {.id = "far-host:99:x",
                             .host = "far-host",
                             .pid = 99,
                             .queues = queues,
                             .started_ms = util_now_ms()};
    char id[BP_JOB_ID_SIZE];
    broker_options_default(&o);
    o.lease_ms = 3600 * 1000; /* the lease alone would keep it for an hour */
    o.worker_timeout_ms = bpt_deadline_ms(200);
    b = env->open(&o);
    j = bsuite_job("q_wt", 1);
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);
    cr_assert_eq(b->ops->heartbeat(b, &wi, NULL, NULL, &revoked, &err), BP_OK, "%s", err.msg);
    json_decref(revoked);
    cr_assert_eq(lease(b, wi.id, "q_wt", 1, &got), 1);
    free_jobs(got, 1);
    reap(b, &rep);
    cr_assert_eq(state_of(b, id), JOB_STARTED, "a live worker keeps its job");
    sleep_ms(350);
    reap(b, &rep);
    cr_assert_eq(rep.workers_lost, 1);
    cr_assert_eq(rep.requeued, 1);
    cr_assert_eq(state_of(b, id), JOB_PENDING, "a silent worker's job is reclaimed");
    json_decref(queues);
    env->close(b);
}

void bsuite_worker_stop_releases(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *j = bsuite_job("q_stop", 1);
    job **got = NULL;
    bp_error err = {0};
    char id[BP_JOB_ID_SIZE];
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);
    cr_assert_eq(lease(b, W1, "q_stop", 1, &got), 1);
    free_jobs(got, 1);
    cr_assert_eq(b->ops->worker_stop(b, W1, &err), BP_OK, "%s", err.msg);
    j = get(b, id);
    cr_assert_eq(j->state, JOB_PENDING);
    cr_assert_eq(j->crashes, 0, "a graceful stop is not a crash");
    cr_assert_eq(j->attempts, 0, "an interrupted run does not use up an attempt");
    job_free(j);
    env->close(b);
}

void bsuite_lost_lease_ack_ignored(const bsuite_env *env)
{
    broker_options o;
    broker *b;
    job *j;
    job **got = NULL;
    char id[BP_JOB_ID_SIZE];
    broker_options_default(&o);
    o.lease_ms = bpt_deadline_ms(150);
    b = env->open(&o);
    j = bsuite_job("q_lost", 1);
    util_strlcpy(id, j->id, sizeof id);
    enqueue_ok(b, j);
    job_free(j);
    cr_assert_eq(lease(b, W1, "q_lost", 1, &got), 1);
    free_jobs(got, 1);
    sleep_ms(250);
    reap(b, NULL);
    cr_assert_eq(lease(b, W2, "q_lost", 1, &got), 1);
    free_jobs(got, 1);
    /* W1 comes back from a long pause and acks: the job belongs to W2 now */
    ack(b, W1, id, JOB_SUCCESS, "{\"from\":\"w1\"}", NULL, 0);
    cr_assert_eq(state_of(b, id), JOB_STARTED);
    ack(b, W2, id, JOB_SUCCESS, "{\"from\":\"w2\"}", NULL, 0);
    j = get(b, id);
    cr_assert_eq(j->state, JOB_SUCCESS);
    cr_assert_str_eq(j->result, "{\"from\":\"w2\"}");
    job_free(j);
    env->close(b);
}

void bsuite_lease_one(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *first = bsuite_job("q_one", 1), *second = bsuite_job("q_one", 2), *got = NULL;
    char id2[BP_JOB_ID_SIZE];
    bp_error err = {0};
    util_strlcpy(id2, second->id, sizeof id2);
    enqueue_ok(b, first);
    enqueue_ok(b, second);
    cr_assert_eq(b->ops->lease_one(b, W1, id2, &got, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(got->id, id2, "lease_one takes that job, not the queue head");
    job_free(got);
    cr_assert_eq(b->ops->lease_one(b, W1, id2, &got, &err), BP_E_STATE);
    cr_assert(strstr(err.msg, "STARTED"), "%s", err.msg);
    cr_assert_eq(b->ops->lease_one(b, W1, "nope", &got, &err), BP_E_NOTFOUND);
    job_free(first);
    job_free(second);
    env->close(b);
}

void bsuite_stats_and_list(const bsuite_env *env)
{
    broker *b = open_default(env);
    json_t *stats = NULL, *list = NULL, *q;
    bp_error err = {0};
    job **got = NULL;
    broker_filter f = {.queue = "q_stats", .state = JOB_PENDING, .type = NULL, .limit = 10};
    for (int i = 0; i < 4; i++) {
        job *j = bsuite_job("q_stats", i);
        if (i == 3) {
            j->eta_ms = util_now_ms() + 3600 * 1000;
            j->state = JOB_SCHEDULED;
        }
        enqueue_ok(b, j);
        job_free(j);
    }
    cr_assert_eq(lease(b, W1, "q_stats", 1, &got), 1);
    free_jobs(got, 1);
    cr_assert_eq(b->ops->stats(b, &stats, &err), BP_OK, "%s", err.msg);
    q = json_object_get(json_object_get(stats, "queues"), "q_stats");
    cr_assert(q, "queue missing from stats");
    cr_assert_eq(json_integer_value(json_object_get(q, "waiting")), 2);
    cr_assert_eq(json_integer_value(json_object_get(q, "delayed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(q, "running")), 1);
    json_decref(stats);
    cr_assert_eq(b->ops->list(b, &f, &list, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_array_size(list), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "state")),
                     "PENDING");
    json_decref(list);
    env->close(b);
}

typedef struct final_log {
    pthread_mutex_t lock;
    int count;
    char states[16][16];
    char results[16][32];
} final_log;

static void on_final(void *ud, const job *j)
{
    final_log *l = ud;
    pthread_mutex_lock(&l->lock);
    if (l->count < 16) {
        util_strlcpy(l->states[l->count], job_state_name(j->state), sizeof l->states[0]);
        util_strlcpy(l->results[l->count], j->result ? j->result : "", sizeof l->results[0]);
    }
    l->count++;
    pthread_mutex_unlock(&l->lock);
}

void bsuite_on_final_hook(const bsuite_env *env)
{
    final_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
    broker_options o;
    broker *b;
    job *ok = bsuite_job("q_final", 1), *rev = bsuite_job("q_final", 2);
    job **got = NULL;
    job_state st;
    char ok_id[BP_JOB_ID_SIZE], rev_id[BP_JOB_ID_SIZE];
    broker_options_default(&o);
    o.on_final = on_final;
    o.on_final_ud = &log;
    b = env->open(&o);
    ok->priority = 9;
    util_strlcpy(ok_id, ok->id, sizeof ok_id);
    util_strlcpy(rev_id, rev->id, sizeof rev_id);
    enqueue_ok(b, ok);
    enqueue_ok(b, rev);
    cr_assert_eq(lease(b, W1, "q_final", 1, &got), 1);
    free_jobs(got, 1);
    {
        /* A short job's STARTED notice rides in the same exchange as its final ack (the pool
         * does this): the record is the final ack's, not the notice's. */
        broker_ack pair[2] = {{.id = ok_id, .state = JOB_STARTED},
                              {.id = ok_id,
                               .state = JOB_SUCCESS,
                               .result = "{\"n\":1}",
                               .finished_ms = util_now_ms()}};
        job **none = NULL;
        size_t n = 0;
        bp_error err = {0};
        cr_assert_eq(b->ops->exchange(b, W1, pair, 2, NULL, 0, &none, &n, &err), BP_OK, "%s",
                     err.msg);
        free(none);
    }
    cr_assert_eq(b->ops->revoke(b, rev_id, false, &st, NULL), BP_OK);
    cr_assert_eq(log.count, 2, "one hook call per final state");
    cr_assert_str_eq(log.states[0], "SUCCESS");
    cr_assert_str_eq(log.results[0], "{\"n\":1}", "the final record carries the result");
    cr_assert_str_eq(log.states[1], "REVOKED");
    job_free(ok);
    job_free(rev);
    env->close(b);
}

typedef struct drain_ctx {
    const bsuite_env *env;
    char worker[64];
    int leased;
    char **seen;
} drain_ctx;

#define CONC_JOBS 3000

static void *drain_thread(void *arg)
{
    drain_ctx *c = arg;
    broker *b = open_default(c->env);
    broker_ack acks[8];
    char ids[8][BP_JOB_ID_SIZE];
    size_t n_acks = 0;
    int idle_rounds = 0;
    for (;;) {
        broker_want want = {"q_conc", 8};
        job **jobs = NULL;
        size_t n = 0;
        bp_error err = {0};
        int rc = b->ops->exchange(b, c->worker, acks, n_acks, &want, 1, &jobs, &n, &err);
        cr_assert_eq(rc, BP_OK, "exchange: %s", err.msg);
        n_acks = 0;
        for (size_t i = 0; i < n; i++) {
            int idx = (int)strtol(strchr(jobs[i]->args, ':') + 1, NULL, 10);
            c->seen[idx] = strdup(c->worker);
            util_strlcpy(ids[n_acks], jobs[i]->id, sizeof ids[0]);
            acks[n_acks] =
                (broker_ack){.id = ids[n_acks], .state = JOB_SUCCESS, .finished_ms = util_now_ms()};
            n_acks++;
            c->leased++;
            job_free(jobs[i]);
        }
        free(jobs);
        if (n == 0) {
            if (++idle_rounds > 20) {
                break;
            }
            util_sleep_ms(5);
        } else {
            idle_rounds = 0;
        }
    }
    c->env->close(b);
    return NULL;
}

void bsuite_concurrent_exactly_once(const bsuite_env *env)
{
    broker *b = open_default(env);
    job **batch = calloc(CONC_JOBS, sizeof *batch);
    int *status = calloc(CONC_JOBS, sizeof *status);
    char **seen_by[3];
    drain_ctx ctx[3];
    pthread_t th[3];
    bp_error err = {0};
    for (int i = 0; i < CONC_JOBS; i++) {
        batch[i] = bsuite_job("q_conc", i);
    }
    cr_assert_eq(b->ops->enqueue(b, batch, CONC_JOBS, status, &err), BP_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        seen_by[i] = calloc(CONC_JOBS, sizeof(char *));
        ctx[i] = (drain_ctx){.env = env, .seen = seen_by[i]};
        snprintf(ctx[i].worker, sizeof ctx[i].worker, "test-host:%d:conc", 100 + i);
        pthread_create(&th[i], NULL, drain_thread, &ctx[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    cr_assert_eq(ctx[0].leased + ctx[1].leased + ctx[2].leased, CONC_JOBS,
                 "every job leased exactly once (%d + %d + %d)", ctx[0].leased, ctx[1].leased,
                 ctx[2].leased);
    for (int i = 0; i < CONC_JOBS; i++) {
        int times = (seen_by[0][i] != NULL) + (seen_by[1][i] != NULL) + (seen_by[2][i] != NULL);
        cr_assert_eq(times, 1, "job %d leased %d times", i, times);
        cr_assert_eq(state_of(b, batch[i]->id), JOB_SUCCESS);
    }
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < CONC_JOBS; k++) {
            free(seen_by[i][k]);
        }
        free(seen_by[i]);
    }
    for (int i = 0; i < CONC_JOBS; i++) {
        job_free(batch[i]);
    }
    free(batch);
    free(status);
    env->close(b);
}

void bsuite_wake_on_enqueue(const bsuite_env *env)
{
    broker *waiter = open_default(env);
    broker *producer = open_default(env);
    bp_error err = {0};
    struct pollfd pfd;
    job *j = bsuite_job("q_wake", 1);
    cr_assert_eq(waiter->ops->subscribe(waiter, BROKER_WAKE_WORK, &err), BP_OK, "%s", err.msg);
    pfd.fd = waiter->ops->wake_fd(waiter);
    pfd.events = POLLIN;
    cr_assert(pfd.fd >= 0);
    waiter->ops->drain_wake(waiter);
    cr_assert_eq(poll(&pfd, 1, 0), 0, "no wake-up before any enqueue");
    enqueue_ok(producer, j);
    cr_assert_eq(poll(&pfd, 1, (int)bpt_deadline_ms(2000)), 1,
                 "an enqueue by another client wakes the subscribed worker");
    waiter->ops->drain_wake(waiter);
    job_free(j);
    env->close(producer);
    env->close(waiter);
}

/* ---- phase 2: terminate, rate limits, queue caps, events ------------------------------------ */

static void heartbeat_revoked(broker *b, const char *worker, json_t **out)
{
    json_t *queues = json_object();
    broker_worker_info wi = {
        .id = worker, .host = "test-host", .pid = 1, .queues = queues, .started_ms = util_now_ms()};
    bp_error err = {0};
    cr_assert_eq(b->ops->heartbeat(b, &wi, NULL, NULL, out, &err), BP_OK, "%s", err.msg);
    json_decref(queues);
}

static bool revoked_says(const json_t *revoked, const char *id, bool *out_terminate)
{
    size_t i;
    json_t *v;
    json_array_foreach(revoked, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0) {
            *out_terminate = json_is_true(json_object_get(v, "terminate"));
            return true;
        }
    }
    return false;
}

void bsuite_revoke_terminate(const bsuite_env *env)
{
    broker *b = open_default(env);
    job *j1 = bsuite_job("q_term", 1), *j2 = bsuite_job("q_term", 2);
    char id1[BP_JOB_ID_SIZE], id2[BP_JOB_ID_SIZE];
    job **got = NULL;
    json_t *revoked = NULL;
    job_state st;
    bool terminate = false;
    bp_error err = {0};
    util_strlcpy(id1, j1->id, sizeof id1);
    util_strlcpy(id2, j2->id, sizeof id2);
    enqueue_ok(b, j1);
    enqueue_ok(b, j2);
    cr_assert_eq(lease(b, W1, "q_term", 2, &got), 2);
    free_jobs(got, 2);
    cr_assert_eq(b->ops->revoke(b, id1, true, &st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st, JOB_STARTED);
    cr_assert_eq(b->ops->revoke(b, id2, false, &st, &err), BP_OK, "%s", err.msg);
    /* a later plain revoke does not take the terminate back */
    cr_assert_eq(b->ops->revoke(b, id1, false, &st, &err), BP_OK, "%s", err.msg);
    heartbeat_revoked(b, W1, &revoked);
    cr_assert_eq(json_array_size(revoked), 2, "both running jobs are reported");
    cr_assert(revoked_says(revoked, id1, &terminate) && terminate,
              "revoke --terminate reaches the worker as terminate: true");
    cr_assert(revoked_says(revoked, id2, &terminate) && !terminate,
              "a plain revoke reaches it as terminate: false");
    json_decref(revoked);
    ack(b, W1, id1, JOB_REVOKED, NULL, "terminated", 0);
    cr_assert_eq(state_of(b, id1), JOB_REVOKED);
    job_free(j1);
    job_free(j2);
    env->close(b);
}

static job *typed_job(const char *queue, const char *type, int i)
{
    job *j = bsuite_job(queue, i);
    cr_assert(job_set_str(&j->type, type) == BP_OK);
    return j;
}

void bsuite_rate_limit(const bsuite_env *env)
{
    broker *b = open_default(env), *other = open_default(env);
    const char *const q = "q_rate", *const T = "api.fetch", *const U = "local.work";
    char ids[4][BP_JOB_ID_SIZE];
    job **got = NULL;
    json_t *lim = NULL;
    int64_t due = 0, before;
    bp_error err = {0};
    const char *queues[] = {q};

    cr_assert_eq(b->ops->set_rate_limit(b, T, "2/x", &err), BP_E_INVAL, "a bad rate is refused");
    cr_assert_eq(b->ops->set_rate_limit(b, T, "2/s", &err), BP_OK, "%s", err.msg);
    cr_assert_eq(other->ops->limits(other, &lim, &err), BP_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(lim, "rate_limits"), T)),
                     "2/s", "another client sees the limit: it lives in the broker");
    json_decref(lim);
    for (int i = 0; i < 4; i++) {
        job *j = typed_job(q, T, i);
        util_strlcpy(ids[i], j->id, sizeof ids[i]);
        enqueue_ok(b, j);
        job_free(j);
    }
    for (int i = 0; i < 2; i++) {
        job *j = typed_job(q, U, 10 + i);
        enqueue_ok(b, j);
        job_free(j);
    }
    /* one token now: the first T job, and the unlimited U jobs behind the throttled ones */
    size_t n = lease(b, W1, q, 10, &got);
    cr_assert_eq(n, 3, "1 token of %s plus 2 unlimited jobs, got %zu", T, n);
    int t_count = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(got[i]->type, T) == 0) {
            cr_assert_str_eq(got[i]->id, ids[0], "the oldest throttled job goes first");
            t_count++;
        }
    }
    cr_assert_eq(t_count, 1);
    free_jobs(got, n);
    /* another worker finds no token either: the limit is global */
    cr_assert_eq(lease(other, W2, q, 10, &got), 0, "no second token for another worker");
    free(got);
    cr_assert_eq(bsuite_queue_count(b, q, "waiting"), 3, "throttled jobs still count as waiting");
    /* the worker learns when the next token comes, instead of polling */
    before = util_now_ms();
    cr_assert_eq(b->ops->next_due(b, queues, 1, &due, &err), BP_OK, "%s", err.msg);
    cr_assert(due > before && due <= before + 600, "next token in %lld ms (expected ~500)",
              (long long)(due - before));
    while (util_now_ms() < due) {
        util_sleep_ms(due - util_now_ms());
    }
    n = lease(other, W2, q, 10, &got);
    cr_assert_eq(n, 1, "one more token after the interval (got %zu)", n);
    cr_assert_str_eq(got[0]->id, ids[1], "in order");
    free_jobs(got, n);
    cr_assert_eq(lease(b, W1, q, 10, &got), 0);
    free(got);
    /* lifting the limit releases the rest at once */
    cr_assert_eq(b->ops->set_rate_limit(b, T, NULL, &err), BP_OK, "%s", err.msg);
    n = lease(b, W1, q, 10, &got);
    cr_assert_eq(n, 2, "the throttled jobs go once the limit is gone (got %zu)", n);
    cr_assert_str_eq(got[0]->id, ids[2]);
    cr_assert_str_eq(got[1]->id, ids[3]);
    free_jobs(got, n);
    cr_assert_eq(b->ops->limits(b, &lim, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_object_size(json_object_get(lim, "rate_limits")), 0);
    json_decref(lim);
    env->close(other);
    env->close(b);
}

void bsuite_queue_cap(const bsuite_env *env)
{
    broker *b = open_default(env), *w2 = open_default(env);
    const char *const q = "q_cap";
    job **got = NULL, **got2 = NULL;
    json_t *lim = NULL;
    struct pollfd pfd;
    bp_error err = {0};
    char first[BP_JOB_ID_SIZE];
    for (int i = 0; i < 5; i++) {
        job *j = bsuite_job(q, i);
        enqueue_ok(b, j);
        job_free(j);
    }
    cr_assert_eq(b->ops->set_queue_cap(b, q, 2, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(w2->ops->limits(w2, &lim, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(lim, "queue_caps"), q)), 2);
    json_decref(lim);
    cr_assert_eq(w2->ops->subscribe(w2, BROKER_WAKE_WORK, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(lease(b, W1, q, 5, &got), 2, "the cap bounds one worker");
    util_strlcpy(first, got[0]->id, sizeof first);
    cr_assert_eq(lease(w2, W2, q, 5, &got2), 0, "and every other worker");
    free(got2);
    pfd.fd = w2->ops->wake_fd(w2);
    pfd.events = POLLIN;
    w2->ops->drain_wake(w2);
    /* a finishing job makes room, and the waiting worker is woken for it */
    ack(b, W1, first, JOB_SUCCESS, NULL, NULL, 0);
    cr_assert_eq(poll(&pfd, 1, (int)bpt_deadline_ms(2000)), 1,
                 "a job leaving a capped queue wakes the worker waiting for room");
    w2->ops->drain_wake(w2);
    cr_assert_eq(lease(w2, W2, q, 5, &got2), 1, "exactly the room one finished job made");
    free_jobs(got2, 1);
    free_jobs(got, 2);
    cr_assert_eq(b->ops->set_queue_cap(b, q, 0, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(lease(b, W1, q, 5, &got), 2, "no cap: the rest");
    free_jobs(got, 2);
    env->close(w2);
    env->close(b);
}

/* Read events until `want` events of job `id` (or of worker `worker`) were seen, or time out. */
static json_t *collect_events(broker *b, json_t *cursor, const char *id, const char *worker,
                              size_t want)
{
    json_t *seen = json_array();
    int64_t end = util_now_ms() + bpt_deadline_ms(5000);
    while (json_array_size(seen) < want && util_now_ms() < end) {
        json_t *evs = NULL, *e;
        size_t i;
        bp_error err = {0};
        cr_assert_eq(b->ops->events(b, cursor, 200, &evs, &err), BP_OK, "events: %s", err.msg);
        json_array_foreach(evs, i, e)
        {
            const char *eid = json_string_value(json_object_get(e, "id"));
            const char *ew = json_string_value(json_object_get(e, "worker"));
            const char *kind = json_string_value(json_object_get(e, "event"));
            if ((id && eid && strcmp(eid, id) == 0) || (worker && ew && strcmp(ew, worker) == 0 &&
                                                        util_str_starts_with(kind, "worker-"))) {
                json_array_append(seen, e);
            }
        }
        json_decref(evs);
    }
    return seen;
}

static const char *event_at(const json_t *seen, size_t i)
{
    return json_string_value(json_object_get(json_array_get(seen, i), "event"));
}

void bsuite_events(const bsuite_env *env)
{
    broker *b = open_default(env), *reader = open_default(env);
    json_t *cursor = json_object(), *seen, *revoked = NULL, *evs = NULL;
    job *ok = bsuite_job("q_ev", 1), *bad = bsuite_job("q_ev", 2);
    char ok_id[BP_JOB_ID_SIZE], bad_id[BP_JOB_ID_SIZE];
    job **got = NULL;
    bp_error err = {0};
    broker_ack notice;
    size_t n;
    /* the first read positions the cursor at "now" */
    cr_assert_eq(reader->ops->events(reader, cursor, 0, &evs, &err), BP_OK, "%s", err.msg);
    json_decref(evs);
    ok->priority = 9;
    util_strlcpy(ok_id, ok->id, sizeof ok_id);
    util_strlcpy(bad_id, bad->id, sizeof bad_id);
    enqueue_ok(b, ok);
    enqueue_ok(b, bad);
    n = lease(b, W1, "q_ev", 2, &got);
    cr_assert_eq(n, 2);
    free_jobs(got, n);
    notice = (broker_ack){.id = ok_id, .state = JOB_STARTED, .finished_ms = util_now_ms()};
    cr_assert_eq(b->ops->exchange(b, W1, &notice, 1, NULL, 0, &got, &n, &err), BP_OK, "%s",
                 err.msg);
    free(got);
    ack(b, W1, ok_id, JOB_SUCCESS, "{}", NULL, 0);
    ack(b, W1, bad_id, JOB_FAILURE, NULL, "it broke", 0);

    seen = collect_events(reader, cursor, ok_id, NULL, 4);
    cr_assert_eq(json_array_size(seen), 4, "sent, received, started, succeeded (got %zu)",
                 json_array_size(seen));
    cr_assert_str_eq(event_at(seen, 0), "job-sent");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(seen, 0), "type")),
                     "sys.noop");
    cr_assert_str_eq(event_at(seen, 1), "job-received");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(seen, 1), "worker")), W1);
    cr_assert_str_eq(event_at(seen, 2), "job-started");
    cr_assert_str_eq(event_at(seen, 3), "job-succeeded");
    json_decref(seen);

    /* worker events: online on the first heartbeat, heartbeat after, offline when it stops */
    heartbeat_revoked(b, W2, &revoked);
    json_decref(revoked);
    heartbeat_revoked(b, W2, &revoked);
    json_decref(revoked);
    cr_assert_eq(b->ops->worker_stop(b, W2, &err), BP_OK, "%s", err.msg);
    seen = collect_events(reader, cursor, NULL, W2, 3);
    cr_assert_eq(json_array_size(seen), 3, "online, heartbeat, offline (got %zu)",
                 json_array_size(seen));
    cr_assert_str_eq(event_at(seen, 0), "worker-online");
    cr_assert_str_eq(event_at(seen, 1), "worker-heartbeat");
    cr_assert_str_eq(event_at(seen, 2), "worker-offline");
    json_decref(seen);
    json_decref(cursor);
    job_free(ok);
    job_free(bad);
    env->close(reader);
    env->close(b);
}

void bsuite_failure_event(const bsuite_env *env)
{
    broker *b = open_default(env);
    json_t *cursor = json_object(), *seen, *evs = NULL;
    job *bad = bsuite_job("q_evf", 1);
    char id[BP_JOB_ID_SIZE];
    job **got = NULL;
    bp_error err = {0};
    cr_assert_eq(b->ops->events(b, cursor, 0, &evs, &err), BP_OK, "%s", err.msg);
    json_decref(evs);
    util_strlcpy(id, bad->id, sizeof id);
    enqueue_ok(b, bad);
    cr_assert_eq(lease(b, W1, "q_evf", 1, &got), 1);
    free_jobs(got, 1);
    ack(b, W1, id, JOB_RETRY, NULL, "try later", util_now_ms() + 3600 * 1000);
    job_state st;
    cr_assert_eq(b->ops->revoke(b, id, false, &st, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(st, JOB_REVOKED);
    seen = collect_events(b, cursor, id, NULL, 4);
    cr_assert_eq(json_array_size(seen), 4, "sent, received, retried, revoked (got %zu)",
                 json_array_size(seen));
    cr_assert_str_eq(event_at(seen, 2), "job-retried");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(seen, 2), "error")),
                     "try later");
    cr_assert_str_eq(event_at(seen, 3), "job-revoked");
    json_decref(seen);
    json_decref(cursor);
    job_free(bad);
    env->close(b);
}
