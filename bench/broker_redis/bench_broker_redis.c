/*
 * bench_broker_redis.c - figures for the Redis broker at the broker_ops level.
 *
 *   bench_broker_redis URL [N] [THREADS] [BATCH] [SHARED]   (bench/broker_redis.sh runs it)
 *
 * Prints, for N no-op jobs on one queue:
 *   enqueue one by one (jobs/s), enqueue in batches of 1,000 (jobs/s),
 *   drain: THREADS threads each looping exchange(ack BATCH, want BATCH) (jobs/s), on a handle
 *   each, or with SHARED=1 on one handle shared by all (as a daemon's pool threads do, with its
 *   wake-up thread running),
 *   start latency at a steady 500 jobs/s for 5 s: enqueue -> leased by an idle worker that
 *   blocks on its wake fd (p50/p99 ms),
 *   Redis commands and Redis CPU per job during the drain (from INFO).
 * This measures the broker alone (no pool, no plugin call): the daemon-level comparison with
 * Celery and BullMQ comes with the daemon integration (issue 3, phase 2).
 */
#define _GNU_SOURCE 1
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "job.h"
#include "log.h"
#include "redis_conn.h"
#include "util.h"

static const char *url;

static int64_t mono_ns(void)
{
    return util_mono_ns();
}

static broker *open_b(void)
{
    broker_options o = {
        .lease_ms = 30000, .result_ttl_ms = 3600000, .max_crashes = 3, .worker_timeout_ms = 30000};
    broker *b = NULL;
    bp_error err = {0};
    if (broker_redis_open(url, &o, &b, &err) != BP_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        exit(1);
    }
    return b;
}

static job *mk(int64_t stamp)
{
    job *j = job_new();
    char args[64];
    util_uuid7(j->id);
    job_set_str(&j->type, "sys.noop");
    job_set_str(&j->queue, "bench");
    snprintf(args, sizeof args, "{\"t\":%" PRId64 "}", stamp);
    job_set_str(&j->args, args);
    return j;
}

static void flushall(void)
{
    redis_conn *c = NULL;
    bp_error err = {0};
    if (redis_conn_open(url, NULL, &c, &err) != BP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    redis_conn_command(c, NULL, NULL, "FLUSHALL");
    redis_conn_close(c);
}

/* total_commands_processed, used_cpu_user+sys (us), and the time Redis spent inside scripts
 * (EVALSHA + EVAL, us): the last is the steadiest measure of our scripts' cost on a busy box. */
static void redis_counters(int64_t *cmds, int64_t *cpu_us, int64_t *script_us)
{
    redis_conn *c = NULL;
    redisReply *r = NULL;
    *cmds = *cpu_us = *script_us = 0;
    if (redis_conn_open(url, NULL, &c, NULL) != BP_OK) {
        return;
    }
    if (redis_conn_command(c, &r, NULL, "INFO commandstats") == BP_OK) {
        for (const char *p = strstr(r->str, "cmdstat_eval"); p; p = strstr(p + 1, "cmdstat_eval")) {
            const char *u = strstr(p, ",usec=");
            if (u) {
                *script_us += strtoll(u + 6, NULL, 10);
            }
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (redis_conn_command(c, &r, NULL, "INFO") == BP_OK) {
        const char *p = strstr(r->str, "total_commands_processed:");
        const char *u = strstr(r->str, "used_cpu_user:");
        const char *s = strstr(r->str, "used_cpu_sys:");
        if (p) {
            *cmds = strtoll(p + 25, NULL, 10);
        }
        if (u && s) {
            *cpu_us = (int64_t)((strtod(u + 14, NULL) + strtod(s + 13, NULL)) * 1e6);
        }
        freeReplyObject(r);
    }
    redis_conn_close(c);
}

static double enqueue_loop(int n)
{
    broker *b = open_b();
    int64_t t0 = mono_ns();
    for (int i = 0; i < n; i++) {
        job *j = mk(0);
        int st;
        if (b->ops->enqueue(b, &j, 1, &st, NULL) != BP_OK) {
            fprintf(stderr, "enqueue failed\n");
            exit(1);
        }
        job_free(j);
    }
    double s = (double)(mono_ns() - t0) / 1e9;
    broker_destroy(b);
    return n / s;
}

static double enqueue_bulk(int n)
{
    broker *b = open_b();
    job **v = calloc(1000, sizeof *v);
    int *st = calloc(1000, sizeof *st);
    int64_t total = 0;
    for (int done = 0; done < n;) {
        int k = n - done < 1000 ? n - done : 1000;
        for (int i = 0; i < k; i++) {
            v[i] = mk(0);
        }
        int64_t t0 = mono_ns(); /* building the jobs is the caller's work, not the broker's */
        if (b->ops->enqueue(b, v, (size_t)k, st, NULL) != BP_OK) {
            fprintf(stderr, "bulk enqueue failed\n");
            exit(1);
        }
        total += mono_ns() - t0;
        for (int i = 0; i < k; i++) {
            job_free(v[i]);
        }
        done += k;
    }
    free(v);
    free(st);
    broker_destroy(b);
    return n / ((double)total / 1e9);
}

typedef struct drainer {
    broker *b;
    int batch;
    char worker[32];
    atomic_int *left;
} drainer;

static void *drain(void *arg)
{
    drainer *d = arg;
    broker_ack *acks = calloc((size_t)d->batch, sizeof *acks);
    char(*held)[BP_JOB_ID_SIZE] = calloc((size_t)d->batch, sizeof *held);
    size_t n_acks = 0;
    broker_want w = {"bench", d->batch};
    for (;;) {
        job **v = NULL;
        size_t n = 0;
        for (size_t i = 0; i < n_acks; i++) {
            acks[i] = (broker_ack){.id = held[i], .state = JOB_SUCCESS, .finished_ms = 0};
        }
        if (d->b->ops->exchange(d->b, d->worker, acks, n_acks, &w, 1, &v, &n, NULL) != BP_OK) {
            fprintf(stderr, "exchange failed\n");
            exit(1);
        }
        atomic_fetch_sub(d->left, (int)n_acks);
        n_acks = 0;
        for (size_t i = 0; i < n; i++) {
            util_strlcpy(held[n_acks++], v[i]->id, BP_JOB_ID_SIZE);
            job_free(v[i]);
        }
        free(v);
        if (n == 0 && atomic_load(d->left) <= 0) {
            break;
        }
    }
    free(acks);
    free(held);
    return NULL;
}

static double drain_all(int n, int threads, int batch, bool shared)
{
    pthread_t th[16];
    drainer d[16];
    atomic_int left = n;
    broker *one = shared ? open_b() : NULL;
    int64_t t0;
    if (one) {
        one->ops->subscribe(one, BROKER_WAKE_WORK | BROKER_WAKE_DONE, NULL);
    }
    for (int i = 0; i < threads; i++) {
        d[i] = (drainer){.b = one ? one : open_b(), .batch = batch, .left = &left};
        snprintf(d[i].worker, sizeof d[i].worker, "bench-%d", one ? 0 : i);
    }
    t0 = mono_ns();
    for (int i = 0; i < threads; i++) {
        pthread_create(&th[i], NULL, drain, &d[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    double s = (double)(mono_ns() - t0) / 1e9;
    for (int i = 0; i < threads && !one; i++) {
        broker_destroy(d[i].b);
    }
    broker_destroy(one);
    return n / s;
}

/* ---- latency ------------------------------------------------------------------------------- */

typedef struct lat {
    broker *b;
    int64_t *samples;
    atomic_int count;
    int expected;
    atomic_bool stop;
} lat;

static void *lat_worker(void *arg)
{
    lat *l = arg;
    broker_want w = {"bench", 8};
    broker_ack acks[8];
    char held[8][BP_JOB_ID_SIZE];
    size_t n_acks = 0;
    int fd;
    l->b->ops->subscribe(l->b, BROKER_WAKE_WORK, NULL);
    fd = l->b->ops->wake_fd(l->b);
    while (!atomic_load(&l->stop)) {
        job **v = NULL;
        size_t n = 0;
        for (size_t i = 0; i < n_acks; i++) {
            acks[i] = (broker_ack){.id = held[i], .state = JOB_SUCCESS};
        }
        l->b->ops->drain_wake(l->b);
        if (l->b->ops->exchange(l->b, "lat", acks, n_acks, &w, 1, &v, &n, NULL) != BP_OK) {
            fprintf(stderr, "exchange failed\n");
            exit(1);
        }
        int64_t now = mono_ns();
        n_acks = 0;
        for (size_t i = 0; i < n; i++) {
            const char *t = strstr(v[i]->args, "\"t\":");
            int k = atomic_fetch_add(&l->count, 1);
            if (t && k < l->expected) {
                l->samples[k] = now - strtoll(t + 4, NULL, 10);
            }
            util_strlcpy(held[n_acks++], v[i]->id, BP_JOB_ID_SIZE);
            job_free(v[i]);
        }
        free(v);
        if (n == 0) {
            /* idle: block on the wake-up, as a pool does (the timeout is only a safety net) */
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, 200);
        }
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void latency(int rate, int seconds, double *p50, double *p99)
{
    int total = rate * seconds;
    lat l = {.b = open_b(), .expected = total};
    broker *prod = open_b();
    pthread_t th;
    struct timespec next;
    l.samples = calloc((size_t)total, sizeof *l.samples);
    pthread_create(&th, NULL, lat_worker, &l);
    /* warm-up: one job, wait for it */
    {
        job *j = mk(mono_ns());
        int st;
        prod->ops->enqueue(prod, &j, 1, &st, NULL);
        job_free(j);
        while (atomic_load(&l.count) < 1) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        atomic_store(&l.count, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (int i = 0; i < total; i++) {
        next.tv_nsec += 1000000000L / rate;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        job *j = mk(mono_ns());
        int st;
        if (prod->ops->enqueue(prod, &j, 1, &st, NULL) != BP_OK) {
            fprintf(stderr, "enqueue failed\n");
            exit(1);
        }
        job_free(j);
    }
    while (atomic_load(&l.count) < total) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&l.stop, true);
    pthread_join(th, NULL);
    qsort(l.samples, (size_t)total, sizeof *l.samples, cmp64);
    *p50 = (double)l.samples[total / 2] / 1e6;
    *p99 = (double)l.samples[(int)(total * 0.99)] / 1e6;
    free(l.samples);
    broker_destroy(l.b);
    broker_destroy(prod);
}

int main(int argc, char **argv)
{
    int n = 20000, threads = 2, batch = 16;
    bool shared = false;
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [N] [THREADS] [BATCH]\n", argv[0]);
        return 2;
    }
    url = argv[1];
    if (argc > 2) {
        n = (int)strtol(argv[2], NULL, 10);
    }
    if (argc > 3) {
        threads = (int)strtol(argv[3], NULL, 10);
    }
    if (argc > 4) {
        batch = (int)strtol(argv[4], NULL, 10);
    }
    if (argc > 5) {
        shared = strcmp(argv[5], "1") == 0;
    }
    if (threads < 1 || threads > 16 || batch < 1 || n < 1000) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    log_set_level(BP_LOG_WARN);

    flushall();
    double loop = enqueue_loop(n / 4);
    flushall();
    double bulk = enqueue_bulk(n);
    int64_t c0, u0, s0, c1, u1, s1;
    redis_counters(&c0, &u0, &s0);
    double proc = drain_all(n, threads, batch, shared);
    redis_counters(&c1, &u1, &s1);
    flushall();
    double p50 = 0, p99 = 0;
    latency(500, 5, &p50, &p99);

    printf("redis broker, %d no-op jobs, %d drain threads on %s, exchange batch %d\n", n, threads,
           shared ? "one shared handle" : "a handle each", batch);
    printf("  enqueue one by one      %10.0f jobs/s\n", loop);
    printf("  enqueue batches of 1000 %10.0f jobs/s\n", bulk);
    printf("  drain (exchange)        %10.0f jobs/s\n", proc);
    printf("  redis per job (drain)   %10.1f commands, %.1f us CPU, %.1f us inside scripts\n",
           (double)(c1 - c0) / n, (double)(u1 - u0) / n, (double)(s1 - s0) / n);
    printf("  start latency @500/s    p50 %.3f ms, p99 %.3f ms\n", p50, p99);
    return 0;
}
