/*
 * test_pool.c - the dispatcher and worker threads against a real SQLite broker, with a runner
 * that records what it sees: every job once, concurrency never exceeded, live resize, a queue
 * added and cancelled at run time, graceful stop, revoke of a running job, wake-up on enqueue.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "broker_suite.h"
#include "pool.h"
#include "support.h"
#include "util.h"

static char *tmp;

static void setup(void)
{
    tmp = bpt_tmpdir("pool");
}

static void teardown(void)
{
    bpt_rm_rf(tmp);
    free(tmp);
}

TestSuite(pool, .init = setup, .fini = teardown);

static broker *open_broker(void)
{
    broker_options o;
    broker *b = NULL;
    bp_error err = {0};
    char path[512];
    broker_options_default(&o);
    snprintf(path, sizeof path, "%s/broker.db", tmp);
    cr_assert_eq(broker_sqlite_open(path, tmp, &o, &b, &err), BP_OK, "%s", err.msg);
    return b;
}

/* What the test runner records. */
typedef struct recorder {
    pool *p;
    atomic_int running[4];
    atomic_int max_running[4];
    atomic_int done;
    atomic_int runs[4000];
    int sleep_ms;       /* how long each job takes */
    bool honour_cancel; /* loop until cancelled instead of sleeping */
    atomic_int started;
    bool hold; /* job number hold_n runs until `release` is set */
    int hold_n;
    atomic_bool release;
    int64_t enqueued_at[8];
    int64_t started_at[8];
} recorder;

static int queue_index(const char *q)
{
    return q[1] - '0'; /* "q0".."q3" */
}

static void run_job(void *ud, pool_task *t, pool_outcome *out)
{
    recorder *r = ud;
    int qi = queue_index(t->job->queue);
    int n = (int)strtol(strchr(t->job->args, ':') + 1, NULL, 10);
    int now_running = atomic_fetch_add(&r->running[qi], 1) + 1;
    int prev = atomic_load(&r->max_running[qi]);
    while (now_running > prev &&
           !atomic_compare_exchange_weak(&r->max_running[qi], &prev, now_running)) {
    }
    atomic_fetch_add(&r->started, 1);
    if (n < 8) {
        r->started_at[n] = util_now_ms();
    }
    if (r->hold && n == r->hold_n) {
        while (!atomic_load(&r->release)) {
            util_sleep_ms(2);
        }
    }
    if (r->honour_cancel) {
        while (!pool_task_cancelled(t)) {
            util_sleep_ms(5);
        }
        out->state = atomic_load(&t->cancel) == POOL_CANCEL_SHUTDOWN ? JOB_PENDING : JOB_REVOKED;
        out->error = strdup("stopped on request");
    } else {
        if (r->sleep_ms) {
            util_sleep_ms(r->sleep_ms);
        }
        pool_task_progress(r->p, t, 1.0, "done");
        out->state = JOB_SUCCESS;
        out->result = strdup("{\"ok\":true}");
    }
    if (n < 4000) {
        atomic_fetch_add(&r->runs[n], 1);
    }
    atomic_fetch_sub(&r->running[qi], 1);
    atomic_fetch_add(&r->done, 1);
}

static void enqueue_n(broker *b, const char *queue, int from, int n)
{
    job **jobs = calloc((size_t)n, sizeof *jobs);
    int *status = calloc((size_t)n, sizeof *status);
    bp_error err = {0};
    for (int i = 0; i < n; i++) {
        jobs[i] = bsuite_job(queue, from + i);
    }
    cr_assert_eq(b->ops->enqueue(b, jobs, (size_t)n, status, &err), BP_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        job_free(jobs[i]);
    }
    free(jobs);
    free(status);
}

static bool all_done(void *ud)
{
    recorder *r = ((void **)ud)[0];
    int want = *(int *)((void **)ud)[1];
    return atomic_load(&r->done) >= want;
}

static bool wait_done(recorder *r, int want, int64_t timeout_ms)
{
    void *ud[2] = {r, &want};
    return bpt_wait_for(all_done, ud, timeout_ms);
}

static pool *start(broker *b, recorder *r, const pool_queue_spec *qs, size_t n)
{
    pool_config cfg = {.queues = qs,
                       .n_queues = n,
                       .run = run_job,
                       .run_ud = r,
                       .worker_id = "test-host:1:pool",
                       .hostname = "test-host",
                       .heartbeat_ms = 200,
                       .reap_ms = 500};
    pool *p = NULL;
    bp_error err = {0};
    cr_assert_eq(pool_start(b, &cfg, &p, &err), BP_OK, "%s", err.msg);
    r->p = p;
    return p;
}

Test(pool, every_job_once_and_concurrency_respected)
{
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 3}, {"q1", 1}};
    pool *p;
    r.sleep_ms = 2;
    p = start(b, &r, qs, 2);
    enqueue_n(producer, "q0", 0, 300);
    enqueue_n(producer, "q1", 300, 100);
    cr_assert(wait_done(&r, 400, 30000), "only %d of 400 jobs ran", atomic_load(&r.done));
    for (int i = 0; i < 400; i++) {
        cr_assert_eq(atomic_load(&r.runs[i]), 1, "job %d ran %d times", i, atomic_load(&r.runs[i]));
    }
    cr_assert_leq(atomic_load(&r.max_running[0]), 3, "q0 ran %d at once",
                  atomic_load(&r.max_running[0]));
    cr_assert_eq(atomic_load(&r.max_running[1]), 1, "q1 ran %d at once",
                 atomic_load(&r.max_running[1]));
    cr_assert_eq(pool_stop(p, 5000, 1000), 0);
    pool_destroy(p);
    json_t *stats = NULL;
    cr_assert_eq(producer->ops->stats(producer, &stats, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(stats, "queues"), "q0"), "succeeded")),
                 300);
    json_decref(stats);
    broker_destroy(b);
    broker_destroy(producer);
}

Test(pool, resize_at_run_time)
{
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 1}};
    pool *p;
    bp_error err = {0};
    r.sleep_ms = 20;
    p = start(b, &r, qs, 1);
    cr_assert_eq(pool_set_concurrency(p, "q0", 4, &err), BP_OK, "%s", err.msg);
    enqueue_n(producer, "q0", 0, 40);
    cr_assert(wait_done(&r, 40, 30000));
    cr_assert_eq(atomic_load(&r.max_running[0]), 4, "grown to 4, saw %d",
                 atomic_load(&r.max_running[0]));
    cr_assert_eq(pool_set_concurrency(p, "q0", 1, &err), BP_OK);
    atomic_store(&r.max_running[0], 0);
    enqueue_n(producer, "q0", 40, 20);
    cr_assert(wait_done(&r, 60, 30000));
    cr_assert_eq(atomic_load(&r.max_running[0]), 1, "shrunk to 1, saw %d",
                 atomic_load(&r.max_running[0]));
    cr_assert_eq(pool_set_concurrency(p, "nope", 1, &err), BP_E_NOTFOUND);
    pool_stop(p, 5000, 1000);
    pool_destroy(p);
    broker_destroy(b);
    broker_destroy(producer);
}

Test(pool, a_queue_added_at_run_time_is_consumed)
{
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 1}};
    pool *p;
    json_t *st;
    bp_error err = {0};
    r.sleep_ms = 5;
    p = start(b, &r, qs, 1);
    enqueue_n(producer, "q1", 0, 30);
    enqueue_n(producer, "q0", 30, 1);
    cr_assert(wait_done(&r, 1, 10000), "the pool runs q0");
    cr_assert_eq(atomic_load(&r.runs[0]) + bsuite_queue_count(producer, "q1", "running"), 0,
                 "q1 is not served yet");
    cr_assert_eq(pool_add_queue(p, "q1", 2, &err), BP_OK, "%s", err.msg);
    cr_assert(wait_done(&r, 31, 30000), "only %d of 31 jobs ran", atomic_load(&r.done));
    for (int i = 0; i < 31; i++) {
        cr_assert_eq(atomic_load(&r.runs[i]), 1, "job %d ran %d times", i, atomic_load(&r.runs[i]));
    }
    cr_assert_eq(atomic_load(&r.max_running[1]), 2, "q1 ran on its 2 threads (%d at once)",
                 atomic_load(&r.max_running[1]));
    st = pool_stats(p);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(st, "queues"), "q1"), "concurrency")),
                 2);
    json_decref(st);
    cr_assert_eq(pool_add_queue(p, "q1", 0, &err), BP_E_INVAL, "add with no thread is refused");
    pool_stop(p, 5000, 1000);
    pool_destroy(p);
    broker_destroy(b);
    broker_destroy(producer);
}

static bool reserved_some(void *ud)
{
    json_t *res = pool_reserved(ud);
    bool yes = json_array_size(res) > 0;
    json_decref(res);
    return yes;
}

Test(pool, cancelled_queue_hands_back_what_it_leased_ahead)
{
    enum { FAST = 20, AHEAD = 6 };
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 1}};
    pool *p;
    json_t *res;
    bp_error err = {0};
    r.hold = true;
    r.hold_n = FAST;
    p = start(b, &r, qs, 1);
    /* fast jobs first: the queue earns adaptive prefetch (it leases ahead of its one thread) */
    enqueue_n(producer, "q0", 0, FAST);
    cr_assert(wait_done(&r, FAST, 10000));
    enqueue_n(producer, "q0", FAST, 1);
    while (atomic_load(&r.started) < FAST + 1) {
        util_sleep_ms(2);
    }
    enqueue_n(producer, "q0", FAST + 1, AHEAD);
    cr_assert(bpt_wait_for(reserved_some, p, 10000), "jobs leased ahead of the busy thread");
    cr_assert_eq(pool_set_concurrency(p, "q0", 0, &err), BP_OK, "%s", err.msg);
    res = pool_reserved(p);
    cr_assert_eq(json_array_size(res), 0, "nothing stays reserved in a cancelled queue");
    json_decref(res);
    atomic_store(&r.release, true);
    cr_assert(wait_done(&r, FAST + 1, 10000), "the running job finishes");
    /* handed back, not lost: waiting again, the attempt not counted; nobody here runs them */
    {
        json_t *list = NULL, *j;
        size_t i;
        broker_filter f = {.queue = "q0", .state = JOB_PENDING, .limit = 100};
        bool settled = false;
        for (int k = 0; k < 500 && !settled; k++) {
            settled = bsuite_queue_count(producer, "q0", "waiting") == AHEAD &&
                      bsuite_queue_count(producer, "q0", "running") == 0;
            if (!settled) {
                util_sleep_ms(10);
            }
        }
        cr_assert(settled, "waiting %lld running %lld",
                  (long long)bsuite_queue_count(producer, "q0", "waiting"),
                  (long long)bsuite_queue_count(producer, "q0", "running"));
        cr_assert_eq(producer->ops->list(producer, &f, &list, NULL), BP_OK);
        json_array_foreach(list, i, j)
        {
            cr_assert_eq(json_integer_value(json_object_get(j, "attempts")), 0, "%s",
                         json_string_value(json_object_get(j, "id")));
        }
        json_decref(list);
    }
    cr_assert_eq(atomic_load(&r.done), FAST + 1, "a cancelled queue runs nothing more");
    /* consumed again, each runs once */
    cr_assert_eq(pool_set_concurrency(p, "q0", 1, &err), BP_OK);
    cr_assert(wait_done(&r, FAST + 1 + AHEAD, 10000));
    for (int i = 0; i < FAST + 1 + AHEAD; i++) {
        cr_assert_eq(atomic_load(&r.runs[i]), 1, "job %d ran %d times", i, atomic_load(&r.runs[i]));
    }
    pool_stop(p, 5000, 1000);
    pool_destroy(p);
    broker_destroy(b);
    broker_destroy(producer);
}

Test(pool, graceful_stop_finishes_running_and_leaves_the_rest_queued)
{
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 2}};
    pool *p;
    json_t *stats = NULL, *q;
    r.sleep_ms = 300;
    p = start(b, &r, qs, 1);
    enqueue_n(producer, "q0", 0, 10);
    while (atomic_load(&r.started) < 2) {
        util_sleep_ms(5);
    }
    cr_assert_eq(pool_stop(p, 5000, 1000), 0, "running jobs finish within the grace period");
    pool_destroy(p);
    cr_assert_eq(atomic_load(&r.done), 2, "only the two running jobs ran");
    cr_assert_eq(producer->ops->stats(producer, &stats, NULL), BP_OK);
    q = json_object_get(json_object_get(stats, "queues"), "q0");
    cr_assert_eq(json_integer_value(json_object_get(q, "succeeded")), 2);
    cr_assert_eq(json_integer_value(json_object_get(q, "waiting")), 8, "the rest stay queued");
    cr_assert_eq(json_integer_value(json_object_get(q, "running")), 0);
    json_decref(stats);
    broker_destroy(b);
    broker_destroy(producer);
}

Test(pool, stop_after_grace_cancels_and_hands_back)
{
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 1}};
    pool *p;
    job *cur = NULL;
    json_t *list = NULL;
    broker_filter f = {.queue = "q0", .state = -1, .limit = 10};
    r.honour_cancel = true;
    p = start(b, &r, qs, 1);
    enqueue_n(producer, "q0", 0, 1);
    while (atomic_load(&r.started) < 1) {
        util_sleep_ms(5);
    }
    cr_assert_eq(pool_stop(p, 100, 3000), 0);
    pool_destroy(p);
    cr_assert_eq(producer->ops->list(producer, &f, &list, NULL), BP_OK);
    const char *id = json_string_value(json_object_get(json_array_get(list, 0), "id"));
    cr_assert_eq(producer->ops->get(producer, id, &cur, NULL), BP_OK);
    cr_assert_eq(cur->state, JOB_PENDING, "an interrupted job goes back to the queue");
    cr_assert_eq(cur->attempts, 0);
    job_free(cur);
    json_decref(list);
    broker_destroy(b);
    broker_destroy(producer);
}

Test(pool, revoke_running_job_cancels_it)
{
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 1}};
    pool *p;
    job_state st;
    json_t *list = NULL;
    broker_filter f = {.queue = "q0", .state = -1, .limit = 10};
    job *cur = NULL;
    r.honour_cancel = true;
    p = start(b, &r, qs, 1);
    enqueue_n(producer, "q0", 0, 1);
    while (atomic_load(&r.started) < 1) {
        util_sleep_ms(5);
    }
    cr_assert_eq(producer->ops->list(producer, &f, &list, NULL), BP_OK);
    char id[BP_JOB_ID_SIZE];
    util_strlcpy(id, json_string_value(json_object_get(json_array_get(list, 0), "id")), sizeof id);
    json_decref(list);
    cr_assert_eq(producer->ops->revoke(producer, id, false, &st, NULL), BP_OK);
    cr_assert_eq(st, JOB_STARTED);
    cr_assert(wait_done(&r, 1, 5000), "the running job was told to stop");
    for (int i = 0; i < 200; i++) {
        producer->ops->get(producer, id, &cur, NULL);
        if (cur->state == JOB_REVOKED) {
            break;
        }
        job_free(cur);
        cur = NULL;
        util_sleep_ms(10);
    }
    cr_assert(cur && cur->state == JOB_REVOKED);
    job_free(cur);
    pool_stop(p, 1000, 1000);
    pool_destroy(p);
    broker_destroy(b);
    broker_destroy(producer);
}

Test(pool, idle_pool_is_woken_by_enqueue)
{
    /* The heartbeat is an hour away and nothing polls: only the wake-up can start these. */
    broker *b = open_broker(), *producer = open_broker();
    static recorder r;
    pool_queue_spec qs[] = {{"q0", 1}};
    pool_config cfg = {.queues = qs,
                       .n_queues = 1,
                       .run = run_job,
                       .run_ud = &r,
                       .worker_id = "test-host:1:pool",
                       .hostname = "test-host",
                       .heartbeat_ms = 3600 * 1000,
                       .reap_ms = 3600 * 1000};
    pool *p = NULL;
    cr_assert_eq(pool_start(b, &cfg, &p, NULL), BP_OK);
    r.p = p;
    util_sleep_ms(200); /* let it go idle */
    for (int i = 0; i < 5; i++) {
        r.enqueued_at[i] = util_now_ms();
        enqueue_n(producer, "q0", i, 1);
        cr_assert(wait_done(&r, i + 1, 5000), "job %d never started", i);
        cr_assert_lt(r.started_at[i] - r.enqueued_at[i], bpt_deadline_ms(1000),
                     "job %d waited %lld ms", i, (long long)(r.started_at[i] - r.enqueued_at[i]));
    }
    pool_stop(p, 1000, 1000);
    pool_destroy(p);
    broker_destroy(b);
    broker_destroy(producer);
}
