/*
 * pool.c - per-queue worker threads fed by one dispatcher (see pool.h for the design).
 */
#include "pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define POOL_MAX_CONCURRENCY 256

/* Adaptive prefetch. Leasing only for idle workers costs one broker round trip and two thread
 * hand-offs per job, which dominates when jobs take microseconds. A queue whose recent jobs
 * averaged under POOL_PREFETCH_BELOW_US may therefore lease up to POOL_PREFETCH_FACTOR x its
 * concurrency ahead; as soon as its jobs get longer it leases strictly for idle workers again, so
 * a long job never holds prefetched jobs hostage (Celery's -Ofair problem). */
#define POOL_PREFETCH_BELOW_US 2000.0
#define POOL_PREFETCH_FACTOR   4

/* Group commit. While every busy queue still has a job ready for each of its threads, finished
 * jobs need not reach the broker at once: their acks wait (at most POOL_ACK_LINGER_MS, at most
 * POOL_ACK_BATCH_MAX of them) and go with the exchange that refills the channel. That turns one
 * broker round trip and two thread wake-ups per job into one per batch; a job whose thread would
 * otherwise go idle, or a queue running dry, sends everything at once. */
#define POOL_ACK_LINGER_MS 5
#define POOL_ACK_BATCH_MAX 256

typedef struct worker_slot {
    pthread_t tid;
    bool alive;
    bool needs_join;
} worker_slot;

typedef struct pool_queue {
    char *name;
    int target; /* desired concurrency */
    int busy;   /* jobs running on this queue's threads */
    worker_slot slots[POOL_MAX_CONCURRENCY];
    /* the channel: tasks leased for this queue, not yet taken by a thread */
    pool_task **chan;
    size_t chan_head, chan_n, chan_cap;
    pthread_cond_t cond;
    double avg_run_us; /* moving average of recent run times (0 = none yet) */
    bool maybe_work;   /* false after a lease came back short, until a wake-up */
    bool sated;        /* its consumer was cancelled: the next exchange tells the broker that
                          this worker wants nothing from it (a want of 0) */
    int acks_pending;  /* acks and notices of this queue not sent yet */
    int64_t processed, succeeded, failed, retried, revoked, handed_back;
} pool_queue;

typedef struct pending_ack {
    char id[BP_JOB_ID_SIZE];
    pool_outcome out;
} pending_ack;

typedef struct worker_arg {
    pool *p;
    pool_queue *q;
    int index;
} worker_arg;

struct pool {
    broker *b;
    pthread_mutex_t lock;
    /* Each queue is allocated on its own and lives as long as the pool: worker threads and the
     * dispatcher hold pointers to them while `control add-consumer` appends new ones. */
    pool_queue **queues;
    size_t n_queues, cap_queues;
    uint64_t queues_gen; /* bumped when a queue is added (the dispatcher rebuilds its lists) */
    pending_ack *acks;
    size_t n_acks, cap_acks;
    int64_t acks_first_ms; /* when the oldest pending ack was queued */
    bool armed;            /* the dispatcher sleeps with a timer for the pending acks */
    pool_task **running;   /* leased tasks: in a channel or on a thread */
    size_t n_running, cap_running;
    int evfd;
    pthread_t dispatcher;
    bool dispatcher_started;
    bool stopping;
    bool abandon; /* pool_stop gave up waiting */
    int64_t grace_deadline_ms;
    bool grace_cancel_sent;
    pthread_cond_t dispatcher_done;
    bool dispatcher_exited;
    int64_t heartbeat_ms, reap_ms;
    pool_run_fn run;
    void *run_ud;
    char *worker_id;
    char *hostname;
    int64_t started_ms;
    int64_t outage_since_ms; /* broker unreachable since (0 = fine) */
};

static void poke(pool *p)
{
    uint64_t one = 1;
    if (write(p->evfd, &one, sizeof one) < 0) {
        /* the counter is saturated: the dispatcher is awake anyway */
    }
}

/* ============================================================================================
 * Channels and bookkeeping (all under p->lock)
 * ========================================================================================== */

static int chan_push(pool_queue *q, pool_task *t)
{
    if (q->chan_n == q->chan_cap) {
        size_t cap = q->chan_cap ? q->chan_cap * 2 : 16;
        pool_task **nc = malloc(cap * sizeof *nc);
        if (!nc) {
            return BP_E_NOMEM;
        }
        for (size_t i = 0; i < q->chan_n; i++) {
            nc[i] = q->chan[(q->chan_head + i) % q->chan_cap];
        }
        free(q->chan);
        q->chan = nc;
        q->chan_cap = cap;
        q->chan_head = 0;
    }
    q->chan[(q->chan_head + q->chan_n) % q->chan_cap] = t;
    q->chan_n++;
    return BP_OK;
}

static pool_task *chan_pop(pool_queue *q)
{
    pool_task *t;
    if (q->chan_n == 0) {
        return NULL;
    }
    t = q->chan[q->chan_head];
    q->chan_head = (q->chan_head + 1) % q->chan_cap;
    q->chan_n--;
    return t;
}

static int running_add(pool *p, pool_task *t)
{
    if (p->n_running == p->cap_running) {
        size_t cap = p->cap_running ? p->cap_running * 2 : 16;
        pool_task **nr = realloc(p->running, cap * sizeof *nr);
        if (!nr) {
            return BP_E_NOMEM;
        }
        p->running = nr;
        p->cap_running = cap;
    }
    p->running[p->n_running++] = t;
    return BP_OK;
}

static void running_remove(pool *p, pool_task *t)
{
    for (size_t i = 0; i < p->n_running; i++) {
        if (p->running[i] == t) {
            p->running[i] = p->running[--p->n_running];
            return;
        }
    }
}

/* Queue an outcome for the next exchange. On allocation failure the outcome is dropped and the
 * job's lease will expire: it runs again (at-least-once), which is the safe direction. */
static void push_ack(pool *p, pool_queue *q, const char *id, pool_outcome *out)
{
    if (p->n_acks == 0) {
        p->acks_first_ms = util_now_ms();
    }
    if (q) {
        q->acks_pending++;
    }
    if (p->n_acks == p->cap_acks) {
        size_t cap = p->cap_acks ? p->cap_acks * 2 : 32;
        pending_ack *na = realloc(p->acks, cap * sizeof *na);
        if (!na) {
            log_error("pool",
                      "out of memory queueing the ack of job %s; its lease will expire "
                      "and it will run again",
                      id);
            free(out->result);
            free(out->error);
            return;
        }
        p->acks = na;
        p->cap_acks = cap;
    }
    util_strlcpy(p->acks[p->n_acks].id, id, sizeof p->acks[0].id);
    p->acks[p->n_acks].out = *out;
    p->n_acks++;
}

static void task_free(pool_task *t)
{
    if (t) {
        job_free(t->job);
        free(t);
    }
}

static pool_queue *find_queue(pool *p, const char *name)
{
    for (size_t i = 0; i < p->n_queues; i++) {
        if (strcmp(p->queues[i]->name, name) == 0) {
            return p->queues[i];
        }
    }
    return NULL;
}

/* ============================================================================================
 * Worker threads
 * ========================================================================================== */

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    pool *p = wa->p;
    pool_queue *q = wa->q;
    int index = wa->index;
    free(wa);

    pthread_mutex_lock(&p->lock);
    for (;;) {
        pool_task *t;
        pool_outcome out;
        while (q->chan_n == 0 && !p->stopping && index < q->target) {
            pthread_cond_wait(&q->cond, &p->lock);
        }
        if (index >= q->target || p->stopping) {
            /* On stop, tasks still in the channel are handed back by the dispatcher. */
            break;
        }
        t = chan_pop(q);
        q->busy++;
        if (atomic_load(&t->cancel) == POOL_CANCEL_NONE) {
            /* The broker's job-started event rides on the next exchange; a long job (or one of
             * a queue whose jobs we have not timed yet) gets its own so the event is not late. */
            pool_outcome notice = {.state = JOB_STARTED};
            push_ack(p, q, t->job->id, &notice);
            if (q->avg_run_us <= 0 || q->avg_run_us >= POOL_PREFETCH_BELOW_US) {
                poke(p);
            }
        }
        pthread_mutex_unlock(&p->lock);

        memset(&out, 0, sizeof out);
        int64_t began = util_mono_ns();
        if (atomic_load(&t->cancel) == POOL_CANCEL_REVOKED ||
            atomic_load(&t->cancel) == POOL_CANCEL_TERMINATE) {
            out.state = JOB_REVOKED;
            out.error = strdup("revoked before it started");
        } else {
            p->run(p->run_ud, t, &out);
        }
        double took_us = (double)(util_mono_ns() - began) / 1000.0;

        pthread_mutex_lock(&p->lock);
        q->avg_run_us = q->avg_run_us > 0 ? q->avg_run_us * 0.9 + took_us * 0.1 : took_us;
        q->busy--;
        q->processed++;
        switch (out.state) {
        case JOB_SUCCESS: q->succeeded++; break;
        case JOB_FAILURE: q->failed++; break;
        case JOB_RETRY: q->retried++; break;
        case JOB_REVOKED: q->revoked++; break;
        case JOB_PENDING: q->handed_back++; break;
        default: break;
        }
        push_ack(p, q, t->job->id, &out);
        running_remove(p, t);
        task_free(t);
        /* an armed dispatcher collects it on its timer, unless this queue runs low */
        if (!p->armed || q->chan_n < (size_t)q->target) {
            poke(p);
        }
    }
    q->slots[index].alive = false;
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start threads until `q` has `q->target` of them. Caller holds p->lock. */
static int grow_queue(pool *p, pool_queue *q, bp_error *err)
{
    for (int i = 0; i < q->target; i++) {
        worker_slot *s = &q->slots[i];
        worker_arg *wa;
        if (s->alive) {
            continue;
        }
        if (s->needs_join) {
            /* The old thread of this slot has left its loop (it set alive=false under the
             * lock); joining it cannot deadlock because it no longer takes the lock. */
            pthread_mutex_unlock(&p->lock);
            pthread_join(s->tid, NULL);
            pthread_mutex_lock(&p->lock);
            s->needs_join = false;
            if (s->alive) {
                continue;
            }
        }
        wa = malloc(sizeof *wa);
        if (!wa) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        *wa = (worker_arg){p, q, i};
        s->alive = true;
        if (pthread_create(&s->tid, NULL, worker_main, wa) != 0) {
            s->alive = false;
            free(wa);
            return bp_err(err, BP_E_NOMEM, "cannot start a worker thread for queue %s", q->name);
        }
        s->needs_join = true;
    }
    return BP_OK;
}

/* Append a queue with `concurrency` as its target and no threads yet (grow_queue starts them).
 * Caller holds p->lock (or is pool_start, before any other thread exists). */
static int new_queue(pool *p, const char *name, int concurrency, bp_error *err)
{
    pool_queue *q;
    if (concurrency < 0 || concurrency > POOL_MAX_CONCURRENCY) {
        return bp_err(err, BP_E_INVAL, "queue %s: concurrency %d is out of range 0-%d", name,
                      concurrency, POOL_MAX_CONCURRENCY);
    }
    if (p->n_queues == p->cap_queues) {
        size_t cap = p->cap_queues ? p->cap_queues * 2 : 8;
        pool_queue **nq = realloc(p->queues, cap * sizeof *nq);
        if (!nq) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        p->queues = nq;
        p->cap_queues = cap;
    }
    q = calloc(1, sizeof *q);
    if (!q || !(q->name = strdup(name))) {
        free(q);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    q->target = concurrency;
    q->maybe_work = true;
    pthread_cond_init(&q->cond, NULL);
    p->queues[p->n_queues++] = q;
    p->queues_gen++;
    return BP_OK;
}

/* ============================================================================================
 * Dispatcher
 * ========================================================================================== */

static int64_t read_rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) {
        return 0;
    }
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
        rss = 0;
    }
    fclose(f);
    return (int64_t)rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static double read_load1(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) {
            l = 0;
        }
        fclose(f);
    }
    return l;
}

json_t *pool_stats(pool *p)
{
    json_t *queues = json_object();
    int64_t processed = 0, failed = 0, succeeded = 0, busy = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_queues; i++) {
        pool_queue *q = p->queues[i];
        json_object_set_new(
            queues, q->name,
            json_pack("{s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "concurrency", q->target,
                      "busy", q->busy, "reserved", (json_int_t)q->chan_n, "processed",
                      (json_int_t)q->processed, "succeeded", (json_int_t)q->succeeded, "failed",
                      (json_int_t)q->failed, "retried", (json_int_t)q->retried, "revoked",
                      (json_int_t)q->revoked, "handed_back", (json_int_t)q->handed_back));
        processed += q->processed;
        failed += q->failed;
        succeeded += q->succeeded;
        busy += q->busy;
    }
    pthread_mutex_unlock(&p->lock);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:o}", "processed", (json_int_t)processed,
                     "succeeded", (json_int_t)succeeded, "failed", (json_int_t)failed, "busy",
                     (json_int_t)busy, "rss_kb", (json_int_t)read_rss_kb(), "load1", read_load1(),
                     "uptime_ms", (json_int_t)(util_now_ms() - p->started_ms), "queues", queues);
}

static json_t *task_json(const pool_task *t)
{
    char started[40];
    util_format_iso8601(t->job->started_ms, started, sizeof started);
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:s}", "id", t->job->id, "type", t->job->type,
                     "queue", t->job->queue, "leased", started, "attempt", t->job->attempts,
                     "progress", t->progress >= 0 ? json_real(t->progress) : json_null(), "args",
                     t->job->args);
}

static bool task_in_channel(const pool *p, const pool_task *t)
{
    for (size_t i = 0; i < p->n_queues; i++) {
        const pool_queue *q = p->queues[i];
        for (size_t k = 0; k < q->chan_n; k++) {
            if (q->chan[(q->chan_head + k) % q->chan_cap] == t) {
                return true;
            }
        }
    }
    return false;
}

/* Running (on a thread) or reserved (in a channel) tasks. */
static json_t *tasks_json(pool *p, bool reserved)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_running; i++) {
        if (task_in_channel(p, p->running[i]) == reserved) {
            json_array_append_new(arr, task_json(p->running[i]));
        }
    }
    pthread_mutex_unlock(&p->lock);
    return arr;
}

json_t *pool_active(pool *p)
{
    return tasks_json(p, false);
}

json_t *pool_reserved(pool *p)
{
    return tasks_json(p, true);
}

static json_t *queues_json(pool *p)
{
    json_t *o = json_object();
    for (size_t i = 0; i < p->n_queues; i++) {
        json_object_set_new(o, p->queues[i]->name, json_integer(p->queues[i]->target));
    }
    return o;
}

/* The broker failed an exchange, heartbeat or reaper pass (dispatcher thread only): one error line
 * when an outage starts, not one every few seconds while it lasts; broker_ok() says when it
 * ends. */
static void broker_failed(pool *p, const char *what, const bp_error *err)
{
    if (p->outage_since_ms == 0) {
        p->outage_since_ms = util_now_ms();
        log_error("pool", "broker unavailable (%s), retrying with backoff: %s", what, err->msg);
    } else {
        log_debug("pool", "broker still unavailable (%s): %s", what, err->msg);
    }
}

static void broker_ok(pool *p)
{
    if (p->outage_since_ms) {
        log_info("pool", "broker reachable again after %lld ms",
                 (long long)(util_now_ms() - p->outage_since_ms));
        p->outage_since_ms = 0;
    }
}

static void do_heartbeat(pool *p)
{
    json_t *progress = json_object(), *revoked = NULL, *stats = pool_stats(p), *queues;
    broker_worker_info wi;
    bp_error err = {0};
    char(*held)[BP_JOB_ID_SIZE] = NULL;
    const char **held_ids = NULL;
    size_t n_held = 0;
    int rc;

    pthread_mutex_lock(&p->lock);
    queues = queues_json(p);
    for (size_t i = 0; i < p->n_running; i++) {
        pool_task *t = p->running[i];
        if (t->progress_dirty) {
            json_object_set_new(progress, t->job->id,
                                json_pack("[f, s]", t->progress, t->progress_msg));
            t->progress_dirty = false;
        }
    }
    /* Every lease this daemon holds: leased tasks (queued or running) and finished jobs whose
     * ack has not gone out. A lease the broker recorded for us that is not among them never
     * reached us (an exchange reply was lost) and the broker gives it back. The dispatcher is
     * the only thread that exchanges, so nothing is leased between this list and the beat. */
    held = malloc((p->n_running + p->n_acks + 1) * sizeof *held);
    held_ids = malloc((p->n_running + p->n_acks + 1) * sizeof *held_ids);
    if (held && held_ids) {
        for (size_t i = 0; i < p->n_running; i++) {
            util_strlcpy(held[n_held++], p->running[i]->job->id, sizeof held[0]);
        }
        for (size_t i = 0; i < p->n_acks; i++) {
            if (p->acks[i].out.state != JOB_STARTED) {
                util_strlcpy(held[n_held++], p->acks[i].id, sizeof held[0]);
            }
        }
        for (size_t i = 0; i < n_held; i++) {
            held_ids[i] = held[i];
        }
    }
    pthread_mutex_unlock(&p->lock);

    wi = (broker_worker_info){.id = p->worker_id,
                              .host = p->hostname,
                              .pid = (int)getpid(),
                              .queues = queues,
                              .started_ms = p->started_ms,
                              .held = held && held_ids ? held_ids : NULL,
                              .n_held = n_held};
    rc = p->b->ops->heartbeat(p->b, &wi, stats, progress, &revoked, &err);
    free(held);
    free(held_ids);
    if (rc != BP_OK) {
        broker_failed(p, "heartbeat", &err);
    } else {
        broker_ok(p);
        size_t i;
        json_t *v;
        pthread_mutex_lock(&p->lock);
        json_array_foreach(revoked, i, v)
        {
            const char *id = json_string_value(json_object_get(v, "id"));
            int why = json_is_true(json_object_get(v, "terminate")) ? POOL_CANCEL_TERMINATE
                                                                    : POOL_CANCEL_REVOKED;
            for (size_t k = 0; id && k < p->n_running; k++) {
                if (strcmp(p->running[k]->job->id, id) == 0 &&
                    atomic_load(&p->running[k]->cancel) < why) {
                    atomic_store(&p->running[k]->cancel, why);
                    log_info("pool", "job revoked while running, asking it to stop id=%s%s", id,
                             why == POOL_CANCEL_TERMINATE ? " (terminate)" : "");
                }
            }
        }
        pthread_mutex_unlock(&p->lock);
    }
    json_decref(revoked);
    json_decref(progress);
    json_decref(stats);
    json_decref(queues);
}

/* Give a leased task back to the broker untouched: the job goes back to its place, the attempt
 * not counted. Caller holds p->lock; the task is freed. */
static void hand_back(pool *p, pool_queue *q, pool_task *t)
{
    pool_outcome out = {.state = JOB_PENDING};
    push_ack(p, q, t->job->id, &out);
    q->handed_back++;
    running_remove(p, t);
    task_free(t);
}

/* Move every task waiting in q's channel back to the broker (stopping, or a queue whose
 * consumer was cancelled: no thread is left to run them). Caller holds p->lock. */
static void hand_back_channel(pool *p, pool_queue *q)
{
    pool_task *t;
    while ((t = chan_pop(q)) != NULL) {
        hand_back(p, q, t);
    }
}

static void hand_back_channels(pool *p)
{
    for (size_t i = 0; i < p->n_queues; i++) {
        hand_back_channel(p, p->queues[i]);
    }
}

/* The dispatcher's own copies of the queue list (wants and names for next_due), rebuilt when
 * `control add-consumer` added a queue. Caller holds p->lock. */
typedef struct dispatch_lists {
    broker_want *wants;
    const char **names;
    size_t n;
    uint64_t gen;
} dispatch_lists;

static bool dispatch_lists_sync(pool *p, dispatch_lists *l)
{
    broker_want *w;
    const char **nm;
    if (l->wants && l->gen == p->queues_gen) {
        return true;
    }
    w = realloc(l->wants, (p->n_queues + 1) * sizeof *w);
    if (w) {
        l->wants = w;
    }
    nm = realloc(l->names, (p->n_queues + 1) * sizeof *nm);
    if (nm) {
        l->names = nm;
    }
    if (!w || !nm) {
        return false; /* keep the old lists; try again on the next pass */
    }
    for (size_t i = 0; i < p->n_queues; i++) {
        l->names[i] = p->queues[i]->name;
    }
    l->n = p->n_queues;
    l->gen = p->queues_gen;
    return true;
}

static void *dispatcher_main(void *arg)
{
    pool *p = arg;
    int64_t now = util_now_ms();
    int64_t next_hb = now, next_reap = now + 200, next_due = INT64_MAX;
    int64_t backoff_ms = 0;
    bool refresh_due = true;
    dispatch_lists lists = {0};
    broker_want *wants;
    broker_ack *acks = NULL;
    size_t acks_cap = 0;

    for (;;) {
        pending_ack *taken = NULL;
        size_t n_taken = 0, n_wants = 0;
        bool done;
        int timeout;
        job **jobs = NULL;
        size_t n_jobs = 0;

        pthread_mutex_lock(&p->lock);
        if (lists.gen != p->queues_gen && dispatch_lists_sync(p, &lists)) {
            refresh_due = true; /* a new queue: its delayed jobs count too */
        }
        wants = lists.wants;
        if (p->stopping) {
            hand_back_channels(p);
            if (!p->grace_cancel_sent && util_now_ms() >= p->grace_deadline_ms) {
                for (size_t i = 0; i < p->n_running; i++) {
                    atomic_store(&p->running[i]->cancel, POOL_CANCEL_SHUTDOWN);
                }
                p->grace_cancel_sent = true;
                if (p->n_running > 0) {
                    log_warn("pool", "grace period over, asking %zu running job(s) to stop",
                             p->n_running);
                }
            }
        }
        bool urgent = p->stopping || p->n_acks >= POOL_ACK_BATCH_MAX ||
                      (p->n_acks > 0 && util_now_ms() - p->acks_first_ms >= POOL_ACK_LINGER_MS);
        for (size_t i = 0; wants && i < lists.n && !p->stopping && backoff_ms == 0; i++) {
            pool_queue *q = p->queues[i];
            int ahead = q->avg_run_us > 0 && q->avg_run_us < POOL_PREFETCH_BELOW_US
                            ? q->target * (POOL_PREFETCH_FACTOR - 1)
                            : 0;
            int free_slots = q->target + ahead - q->busy - (int)q->chan_n;
            if (q->maybe_work && free_slots > 0) {
                wants[n_wants].queue = q->name;
                wants[n_wants].n = free_slots;
                n_wants++;
            } else if (q->sated && q->target == 0) {
                /* A broker that wakes this worker for q (Redis: its wake thread watches q's
                 * marker while the worker is hungry for q) learns that it no longer is. */
                wants[n_wants].queue = q->name;
                wants[n_wants].n = 0;
                n_wants++;
            }
            /* a queue with threads about to go idle (or finished work to report and nothing
             * left to run) cannot wait for a batch */
            if ((int)q->chan_n < q->target &&
                (q->acks_pending > 0 || q->busy > 0 || (q->maybe_work && free_slots > 0))) {
                urgent = true;
            }
        }
        if (p->n_acks > 0 && !urgent && backoff_ms == 0) {
            /* group commit: keep the acks for the refill (the timer bounds the wait) */
            p->armed = true;
            n_wants = 0;
        } else {
            taken = p->acks;
            n_taken = p->n_acks;
            p->acks = NULL;
            p->n_acks = p->cap_acks = 0;
            p->armed = false;
            for (size_t i = 0; i < p->n_queues; i++) {
                p->queues[i]->acks_pending = 0;
            }
        }
        done = (p->stopping && p->n_running == 0 && n_taken == 0) || p->abandon;
        pthread_mutex_unlock(&p->lock);

        if (n_taken > 0 || n_wants > 0) {
            bp_error err = {0};
            int rc;
            if (n_taken > acks_cap) {
                broker_ack *na = realloc(acks, n_taken * sizeof *na);
                if (na) {
                    acks = na;
                    acks_cap = n_taken;
                }
            }
            if (n_taken > acks_cap) {
                rc = bp_err(&err, BP_E_NOMEM, "out of memory");
            } else {
                int64_t fin = util_now_ms();
                for (size_t i = 0; i < n_taken; i++) {
                    acks[i] = (broker_ack){.id = taken[i].id,
                                           .state = taken[i].out.state,
                                           .result = taken[i].out.result,
                                           .error = taken[i].out.error,
                                           .retry_at_ms = taken[i].out.retry_at_ms,
                                           .finished_ms = fin};
                }
                rc = p->b->ops->exchange(p->b, p->worker_id, acks, n_taken, wants, n_wants, &jobs,
                                         &n_jobs, &err);
            }
            if (rc != BP_OK) {
                /* Keep the acks for the next attempt; back off while the broker is sick. */
                pthread_mutex_lock(&p->lock);
                for (size_t i = 0; i < n_taken; i++) {
                    push_ack(p, NULL, taken[i].id, &taken[i].out);
                }
                pthread_mutex_unlock(&p->lock);
                free(taken);
                broker_failed(p, "exchange", &err);
                backoff_ms = backoff_ms ? (backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2) : 50;
                if (done) {
                    break;
                }
                goto wait;
            }
            broker_ok(p);
            backoff_ms = 0;
            for (size_t i = 0; i < n_taken; i++) {
                /* A job sent back to wait for its retry is due again at retry_at: the wake-up must
                 * be ours to set, since an exchange without wants does not refresh next_due. */
                if (taken[i].out.state == JOB_RETRY && taken[i].out.retry_at_ms > 0 &&
                    taken[i].out.retry_at_ms < next_due) {
                    next_due = taken[i].out.retry_at_ms;
                }
                free(taken[i].out.result);
                free(taken[i].out.error);
            }
            free(taken);

            pthread_mutex_lock(&p->lock);
            for (size_t w = 0; w < n_wants; w++) {
                pool_queue *wq = wants[w].n == 0 ? find_queue(p, wants[w].queue) : NULL;
                if (wq && wq->target == 0) {
                    wq->sated = false;
                }
            }
            for (size_t i = 0; i < n_jobs; i++) {
                pool_queue *q = find_queue(p, jobs[i]->queue);
                pool_task *t = calloc(1, sizeof *t);
                if (!q || !t || running_add(p, t) != BP_OK) {
                    /* cannot happen for a queue we asked for; give it back if it does */
                    pool_outcome out = {.state = JOB_PENDING};
                    push_ack(p, q, jobs[i]->id, &out);
                    job_free(jobs[i]);
                    free(t);
                    continue;
                }
                t->job = jobs[i];
                t->progress = -1.0;
                t->soft_deadline_ms = jobs[i]->soft_time_limit_ms > 0
                                          ? jobs[i]->started_ms + jobs[i]->soft_time_limit_ms
                                          : 0;
                atomic_init(&t->cancel, POOL_CANCEL_NONE);
                if (q->target == 0) {
                    /* its consumer was cancelled while this exchange was on its way */
                    hand_back(p, q, t);
                    continue;
                }
                chan_push(q, t);
                pthread_cond_signal(&q->cond);
            }
            /* A queue that gave fewer jobs than asked is empty for now. */
            for (size_t w = 0; w < n_wants; w++) {
                int got = 0;
                for (size_t i = 0; i < n_jobs; i++) {
                    got += jobs[i] && strcmp(jobs[i]->queue, wants[w].queue) == 0;
                }
                pool_queue *wq = find_queue(p, wants[w].queue);
                if (wq && got < wants[w].n) {
                    wq->maybe_work = false;
                    refresh_due = true;
                }
            }
            pthread_mutex_unlock(&p->lock);
            free(jobs);
            if (n_jobs > 0) {
                continue; /* more work may be waiting: go round before sleeping */
            }
        } else {
            free(taken);
        }
        if (done) {
            break;
        }

        now = util_now_ms();
        if (now >= next_hb) {
            do_heartbeat(p);
            next_hb = now + p->heartbeat_ms;
        }
        if (now >= next_reap) {
            broker_reap_report rep = {0};
            bp_error err = {0};
            if (p->b->ops->reap(p->b, &rep, &err) != BP_OK) {
                broker_failed(p, "reaper", &err);
            } else {
                broker_ok(p);
            }
            next_reap = now + p->reap_ms;
        }
        if (refresh_due) {
            bp_error err = {0};
            int64_t due = INT64_MAX;
            if (lists.names &&
                p->b->ops->next_due(p->b, lists.names, lists.n, &due, &err) == BP_OK) {
                next_due = due;
                refresh_due = false;
            }
        }
        if (next_due <= now) {
            pthread_mutex_lock(&p->lock);
            for (size_t i = 0; i < p->n_queues; i++) {
                p->queues[i]->maybe_work = true;
            }
            pthread_mutex_unlock(&p->lock);
            next_due = INT64_MAX;
            refresh_due = true;
            continue;
        }
    wait : {
        int64_t wake_at = next_hb < next_reap ? next_hb : next_reap;
        struct pollfd fds[2];
        int nfds = 1;
        if (next_due < wake_at) {
            wake_at = next_due;
        }
        pthread_mutex_lock(&p->lock);
        if (p->armed && p->n_acks > 0 && p->acks_first_ms + POOL_ACK_LINGER_MS < wake_at) {
            wake_at = p->acks_first_ms + POOL_ACK_LINGER_MS;
        }
        pthread_mutex_unlock(&p->lock);
        now = util_now_ms();
        timeout = wake_at <= now ? 0 : (int)(wake_at - now > 60000 ? 60000 : wake_at - now);
        if (backoff_ms > 0 && timeout > backoff_ms) {
            timeout = (int)backoff_ms;
        }
        pthread_mutex_lock(&p->lock);
        if (p->stopping && timeout > 20) {
            timeout = 20; /* watch the grace deadline */
        }
        pthread_mutex_unlock(&p->lock);
        fds[0] = (struct pollfd){p->evfd, POLLIN, 0};
        if (p->b->ops->wake_fd(p->b) >= 0) {
            fds[1] = (struct pollfd){p->b->ops->wake_fd(p->b), POLLIN, 0};
            nfds = 2;
        }
        if (poll(fds, (nfds_t)nfds, timeout) > 0) {
            if (fds[0].revents & POLLIN) {
                uint64_t v;
                if (read(p->evfd, &v, sizeof v) < 0) {
                    /* EAGAIN: already drained */
                }
            }
            if (nfds == 2 && (fds[1].revents & POLLIN)) {
                int what = p->b->ops->drain_wake(p->b);
                if (what & BROKER_WAKE_WORK) {
                    pthread_mutex_lock(&p->lock);
                    for (size_t i = 0; i < p->n_queues; i++) {
                        p->queues[i]->maybe_work = true;
                    }
                    pthread_mutex_unlock(&p->lock);
                    refresh_due = true;
                }
                if (what & BROKER_WAKE_REVOKE) {
                    next_hb = 0;
                }
            }
        }
        if (backoff_ms > 0 && util_now_ms() >= now + backoff_ms) {
            backoff_ms = 0; /* time to try the broker again */
        }
    }
    }
    free(lists.wants);
    free(acks);
    free(lists.names);
    pthread_mutex_lock(&p->lock);
    p->dispatcher_exited = true;
    pthread_cond_broadcast(&p->dispatcher_done);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ============================================================================================
 * Lifecycle
 * ========================================================================================== */

int pool_start(broker *b, const pool_config *cfg, pool **out, bp_error *err)
{
    pool *p = calloc(1, sizeof *p);
    int rc = BP_OK;
    *out = NULL;
    if (!p) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    p->b = b;
    p->run = cfg->run;
    p->run_ud = cfg->run_ud;
    p->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : b->opts.lease_ms / 3;
    p->reap_ms = cfg->reap_ms > 0 ? cfg->reap_ms : 2000;
    p->worker_id = strdup(cfg->worker_id);
    p->hostname = strdup(cfg->hostname);
    p->started_ms = util_now_ms();
    p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->dispatcher_done, NULL);
    if (!p->worker_id || !p->hostname || p->evfd < 0) {
        rc = bp_err(err, BP_E_NOMEM, "cannot set up the worker pool");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_queues; i++) {
        if ((rc = new_queue(p, cfg->queues[i].name, cfg->queues[i].concurrency, err)) != BP_OK) {
            goto fail;
        }
    }
    rc = b->ops->subscribe(b, BROKER_WAKE_WORK, err);
    if (rc != BP_OK) {
        goto fail;
    }
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_queues && rc == BP_OK; i++) {
        rc = grow_queue(p, p->queues[i], err);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc == BP_OK && pthread_create(&p->dispatcher, NULL, dispatcher_main, p) != 0) {
        rc = bp_err(err, BP_E_NOMEM, "cannot start the dispatcher thread");
    }
    if (rc != BP_OK) {
        pool_stop(p, 0, 0);
        pool_destroy(p);
        return rc;
    }
    p->dispatcher_started = true;
    *out = p;
    return BP_OK;
fail:
    pool_destroy(p);
    return rc;
}

/* Caller holds p->lock. Growing starts threads; shrinking lets the surplus finish their job.
 * At 0 nobody is left to run what the channel holds, so it goes back to the broker at once
 * (other workers may take it), and the broker learns that this worker is no longer hungry. */
static int set_target(pool *p, pool_queue *q, int concurrency, bp_error *err)
{
    if (concurrency != q->target) {
        log_info("pool", "queue %s concurrency %d -> %d", q->name, q->target, concurrency);
    }
    q->target = concurrency;
    q->maybe_work = true;
    q->sated = concurrency == 0;
    pthread_cond_broadcast(&q->cond); /* surplus threads notice and leave */
    if (concurrency == 0) {
        hand_back_channel(p, q);
        return BP_OK;
    }
    return grow_queue(p, q, err);
}

int pool_set_concurrency(pool *p, const char *queue, int concurrency, bp_error *err)
{
    pool_queue *q;
    int rc = BP_OK;
    if (concurrency < 0 || concurrency > POOL_MAX_CONCURRENCY) {
        return bp_err(err, BP_E_INVAL, "concurrency %d is out of range 0-%d", concurrency,
                      POOL_MAX_CONCURRENCY);
    }
    pthread_mutex_lock(&p->lock);
    q = find_queue(p, queue);
    if (!q) {
        pthread_mutex_unlock(&p->lock);
        return bp_err(err, BP_E_NOTFOUND, "this daemon does not serve queue %s", queue);
    }
    rc = set_target(p, q, concurrency, err);
    pthread_mutex_unlock(&p->lock);
    poke(p);
    return rc;
}

int pool_add_queue(pool *p, const char *queue, int concurrency, bp_error *err)
{
    pool_queue *q;
    int rc = BP_OK;
    if (concurrency < 1 || concurrency > POOL_MAX_CONCURRENCY) {
        return bp_err(err, BP_E_INVAL, "concurrency %d is out of range 1-%d", concurrency,
                      POOL_MAX_CONCURRENCY);
    }
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        rc = bp_err(err, BP_E_STATE, "the daemon is stopping");
    } else if ((q = find_queue(p, queue)) != NULL) {
        rc = set_target(p, q, concurrency, err);
    } else if ((rc = new_queue(p, queue, concurrency, err)) == BP_OK) {
        log_info("pool", "now consuming queue %s concurrency=%d", queue, concurrency);
        rc = grow_queue(p, p->queues[p->n_queues - 1], err);
    }
    pthread_mutex_unlock(&p->lock);
    poke(p);
    return rc;
}

void pool_task_progress(pool *p, pool_task *t, double fraction, const char *msg)
{
    pthread_mutex_lock(&p->lock);
    t->progress = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    util_strlcpy(t->progress_msg, msg ? msg : "", sizeof t->progress_msg);
    t->progress_dirty = true;
    pthread_mutex_unlock(&p->lock);
}

bool pool_task_cancelled(const pool_task *t)
{
    return atomic_load(&t->cancel) != POOL_CANCEL_NONE ||
           (t->soft_deadline_ms > 0 && util_now_ms() >= t->soft_deadline_ms);
}

int pool_stop(pool *p, int64_t grace_ms, int64_t cancel_wait_ms)
{
    int left = 0;
    int64_t deadline;
    if (!p) {
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    if (!p->stopping) {
        p->stopping = true;
        p->grace_deadline_ms = util_now_ms() + grace_ms;
        for (size_t i = 0; i < p->n_queues; i++) {
            pthread_cond_broadcast(&p->queues[i]->cond);
        }
    }
    pthread_mutex_unlock(&p->lock);
    poke(p);
    if (!p->dispatcher_started) {
        return 0;
    }
    deadline = util_now_ms() + grace_ms + cancel_wait_ms;
    pthread_mutex_lock(&p->lock);
    while (!p->dispatcher_exited && util_now_ms() < deadline) {
        struct timespec step;
        clock_gettime(CLOCK_REALTIME, &step);
        step.tv_nsec += 50 * 1000000L;
        if (step.tv_nsec >= 1000000000L) {
            step.tv_sec++;
            step.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->dispatcher_done, &p->lock, &step);
    }
    if (!p->dispatcher_exited) {
        left = (int)p->n_running;
        p->abandon = true;
    }
    pthread_mutex_unlock(&p->lock);
    poke(p);
    pthread_join(p->dispatcher, NULL);
    p->dispatcher_started = false;
    return left;
}

void pool_hurry(pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        p->grace_deadline_ms = util_now_ms();
    }
    pthread_mutex_unlock(&p->lock);
    poke(p);
}

void pool_destroy(pool *p)
{
    bool stuck;
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    stuck = p->n_running > 0;
    pthread_mutex_unlock(&p->lock);
    if (stuck) {
        /* Threads are still inside plugin code that ignored cancellation. They may touch this
         * memory until the process exits, so it is left alone; the caller exits next. */
        log_warn("pool", "leaving %zu stuck job thread(s) behind", p->n_running);
        return;
    }
    for (size_t i = 0; i < p->n_queues; i++) {
        pool_queue *q = p->queues[i];
        for (int k = 0; k < POOL_MAX_CONCURRENCY; k++) {
            if (q->slots[k].needs_join) {
                pthread_join(q->slots[k].tid, NULL);
            }
        }
        while (q->chan_n > 0) {
            task_free(chan_pop(q));
        }
        free(q->chan);
        free(q->name);
        pthread_cond_destroy(&q->cond);
        free(q);
    }
    for (size_t i = 0; i < p->n_acks; i++) {
        free(p->acks[i].out.result);
        free(p->acks[i].out.error);
    }
    free(p->acks);
    free(p->running);
    free(p->queues);
    if (p->evfd >= 0) {
        close(p->evfd);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->dispatcher_done);
    free(p->worker_id);
    free(p->hostname);
    free(p);
}
