/*
 * bench_engine - the engine end to end, measured the way bench-peers measures Celery and BullMQ:
 *
 *   1. enqueue N no-op jobs through the client API from one process, one call per job, with no
 *      worker running (jobs/s), then again in bulk (batches of 1,000);
 *   2. start a real daemon on the N queued jobs: processing jobs/s = N / (last finish - first
 *      start), read from the job records;
 *   3. with an idle daemon, submit bench.stamp jobs one at a time at a steady RATE for DURATION
 *      seconds; each job reports how long after its enqueue call it started (CLOCK_MONOTONIC of
 *      the same host): p50 / p95 / p99 / max start latency;
 *   4. the daemon's peak RSS (VmHWM).
 *
 * usage: bench_engine --betpipe PATH --plugin-dir DIRS --data-dir DIR [--n 20000] [--rate 500]
 *                     [--duration 10] [--concurrency 2] [--broker URL] [--json]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "client.h"
#include "log.h"
#include "util.h"

typedef struct opts {
    const char *betpipe;
    const char *plugin_dir;
    const char *broker;
    int n;
    int rate;
    int duration;
    int concurrency;
} opts;

static char data_dir[256];

static void die(const char *what, const bp_error *err)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static int64_t mono_ns(void)
{
    return util_mono_ns();
}

static pid_t start_daemon(const opts *o)
{
    char conc[64], log[512];
    pid_t pid;
    snprintf(conc, sizeof conc, "default=%d", o->concurrency);
    snprintf(log, sizeof log, "%s/daemon.log", data_dir);
    pid = fork();
    if (pid == 0) {
        const char *argv[] = {o->betpipe,      "--data-dir", data_dir,   "--log-level",
                              "warn",          "daemon",     "--queues", "default",
                              "--concurrency", conc,         NULL};
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execv(o->betpipe, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

/* Wait until a worker serving `default` is registered (the daemon is ready). */
static void wait_ready(app *a)
{
    int64_t end = util_now_ms() + 20000;
    while (util_now_ms() < end) {
        if (client_queue_served(a, "default")) {
            return;
        }
        util_sleep_ms(5);
    }
    die("daemon did not become ready", NULL);
}

static int64_t count_state(app *a, const char *state_name)
{
    json_t *stats = NULL;
    int64_t n;
    bp_error err = {0};
    if (a->broker->ops->stats(a->broker, &stats, &err) != BP_OK) {
        die("stats", &err);
    }
    n = json_integer_value(
        json_object_get(json_object_get(json_object_get(stats, "queues"), "default"), state_name));
    json_decref(stats);
    return n;
}

/* Wait until job `id` is final, reading that one record every 20 ms. (Polling a full count
 * would keep a reader on the broker file almost all the time, which starves SQLite's WAL
 * checkpoints and slows the very thing being measured.) Then check the whole count once. */
static void wait_succeeded(app *a, const char *last_id, int64_t n)
{
    int64_t end = util_now_ms() + 600000;
    for (;;) {
        job *j = NULL;
        bp_error err = {0};
        if (client_get(a, last_id, &j, &err) != BP_OK) {
            die("get", &err);
        }
        bool final = job_state_is_final(j->state);
        job_free(j);
        if (final) {
            break;
        }
        if (util_now_ms() > end) {
            die("jobs did not finish in 10 minutes", NULL);
        }
        util_sleep_ms(20);
    }
    while (count_state(a, "succeeded") < n) {
        if (util_now_ms() > end) {
            die("jobs did not finish in 10 minutes", NULL);
        }
        util_sleep_ms(100);
    }
}

static int64_t vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    int64_t kb = 0;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

static void stop_daemon(pid_t pid)
{
    int status;
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(const int64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i < n ? i : n - 1] / 1e6;
}

/* All finished jobs of the default queue as a JSON array. */
static json_t *finished_jobs(app *a, int limit)
{
    broker_filter f = {.queue = "default", .state = JOB_SUCCESS, .limit = limit};
    json_t *list = NULL;
    bp_error err = {0};
    if (a->broker->ops->list(a->broker, &f, &list, &err) != BP_OK) {
        die("list", &err);
    }
    return list;
}

int main(int argc, char **argv)
{
    opts o = {.n = 20000, .rate = 500, .duration = 10, .concurrency = 2};
    bool json_out = false;
    app *a = NULL;
    bp_error err = {0};
    config_overrides ov = {0};
    json_t *args;
    double enqueue_rate, bulk_rate, process_rate;
    int64_t t0, t1, rss_kb;
    pid_t daemon;

    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--betpipe") == 0 && next) {
            o.betpipe = argv[++i];
        } else if (strcmp(argv[i], "--plugin-dir") == 0 && next) {
            o.plugin_dir = argv[++i];
        } else if (strcmp(argv[i], "--data-dir") == 0 && next) {
            snprintf(data_dir, sizeof data_dir, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--broker") == 0 && next) {
            o.broker = argv[++i];
        } else if (strcmp(argv[i], "--n") == 0 && next) {
            o.n = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--rate") == 0 && next) {
            o.rate = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--duration") == 0 && next) {
            o.duration = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--concurrency") == 0 && next) {
            o.concurrency = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else {
            fprintf(stderr, "usage: bench_engine --betpipe PATH --plugin-dir DIRS [--n N] "
                            "[--rate R] [--duration S] [--concurrency C] [--broker URL] "
                            "[--json]\n");
            return 2;
        }
    }
    if (!o.betpipe || !o.plugin_dir || !data_dir[0]) {
        fprintf(stderr, "bench_engine: --betpipe, --plugin-dir and --data-dir are required\n");
        return 2;
    }
    setenv("BETPIPE_PLUGIN_DIR", o.plugin_dir, 1);
    if (o.broker) {
        setenv("BETPIPE_BROKER_URL", o.broker, 1);
    }
    ov.data_dir = data_dir;
    log_set_level(BP_LOG_WARN);
    if (app_open(&ov, APP_ALL | APP_QUIET, &a, &err) != BP_OK) {
        die("open", &err);
    }
    args = json_object();

    /* 1a. enqueue, one call per job */
    t0 = mono_ns();
    for (int i = 0; i < o.n; i++) {
        if (client_enqueue(a, "sys.noop", args, NULL, NULL, NULL, &err) != BP_OK) {
            die("enqueue", &err);
        }
    }
    t1 = mono_ns();
    enqueue_rate = o.n / ((double)(t1 - t0) / 1e9);
    {
        int64_t purged = 0;
        a->broker->ops->purge(a->broker, "default", &purged, &err);
    }

    /* 1b. enqueue in bulk: validated jobs, stored 1,000 per transaction / round trip */
    char last_id[BP_JOB_ID_SIZE] = "";
    {
        enum { BATCH = 1000 };
        job *batch[BATCH];
        int status[BATCH];
        t0 = mono_ns();
        for (int done = 0; done < o.n; done += BATCH) {
            int k = o.n - done < BATCH ? o.n - done : BATCH;
            for (int i = 0; i < k; i++) {
                if (client_prepare(a, "sys.noop", args, NULL, NULL, &batch[i], &err) != BP_OK) {
                    die("prepare", &err);
                }
            }
            if (a->broker->ops->enqueue(a->broker, batch, (size_t)k, status, &err) != BP_OK) {
                die("bulk enqueue", &err);
            }
            util_strlcpy(last_id, batch[k - 1]->id, sizeof last_id);
            for (int i = 0; i < k; i++) {
                job_free(batch[i]);
            }
        }
        t1 = mono_ns();
        bulk_rate = o.n / ((double)(t1 - t0) / 1e9);
    }

    /* 2. drain the bulk-enqueued jobs with a fresh daemon */
    daemon = start_daemon(&o);
    wait_succeeded(a, last_id, o.n);
    {
        json_t *list = finished_jobs(a, o.n), *j;
        size_t i;
        int64_t first = INT64_MAX, last = 0;
        json_array_foreach(list, i, j)
        {
            int64_t s = 0, f = 0;
            util_parse_iso8601(json_string_value(json_object_get(j, "started")), &s, NULL);
            util_parse_iso8601(json_string_value(json_object_get(j, "finished")), &f, NULL);
            first = s < first ? s : first;
            last = f > last ? f : last;
        }
        process_rate = (double)json_array_size(list) / ((double)(last - first) / 1000.0);
        json_decref(list);
    }
    rss_kb = vm_hwm_kb(daemon);
    stop_daemon(daemon);

    /* 3. start latency at a steady rate, on an idle daemon */
    {
        int64_t purged;
        int total = o.rate * o.duration;
        int64_t *lat = calloc((size_t)total, sizeof *lat);
        size_t n_lat = 0;
        struct timespec next;
        int64_t base_success = count_state(a, "succeeded");
        int64_t interval_ns = 1000000000LL / o.rate;
        json_t *list, *j;
        size_t i;
        a->broker->ops->purge(a->broker, "default", &purged, &err);
        daemon = start_daemon(&o);
        wait_ready(a);
        {
            json_t *warm = json_pack("{s:I}", "enq_ns", (json_int_t)mono_ns());
            client_enqueue(a, "bench.stamp", warm, NULL, NULL, last_id, &err);
            json_decref(warm);
            wait_succeeded(a, last_id, base_success + 1);
            base_success++;
        }
        clock_gettime(CLOCK_MONOTONIC, &next);
        for (int k = 0; k < total; k++) {
            json_t *stamp;
            next.tv_nsec += interval_ns;
            while (next.tv_nsec >= 1000000000L) {
                next.tv_nsec -= 1000000000L;
                next.tv_sec++;
            }
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
            }
            stamp = json_pack("{s:I}", "enq_ns", (json_int_t)mono_ns());
            if (client_enqueue(a, "bench.stamp", stamp, NULL, NULL, last_id, &err) != BP_OK) {
                die("enqueue stamp", &err);
            }
            json_decref(stamp);
        }
        wait_succeeded(a, last_id, base_success + total);
        int64_t lat_rss = vm_hwm_kb(daemon);
        rss_kb = lat_rss > rss_kb ? lat_rss : rss_kb;
        stop_daemon(daemon);
        list = finished_jobs(a, total + 10);
        json_array_foreach(list, i, j)
        {
            json_t *r = json_object_get(json_object_get(j, "result"), "start_lat_ns");
            if (json_is_integer(r) && n_lat < (size_t)total) {
                lat[n_lat++] = json_integer_value(r);
            }
        }
        json_decref(list);
        qsort(lat, n_lat, sizeof *lat, cmp_i64);
        if (json_out) {
            printf("{\"broker\": \"%s\", \"n\": %d, \"concurrency\": %d, \"enqueue_per_s\": %.0f, "
                   "\"enqueue_bulk_per_s\": %.0f, \"processing_per_s\": %.0f, \"rate\": %d, "
                   "\"latency_jobs\": %zu, \"start_p50_ms\": %.3f, \"start_p95_ms\": %.3f, "
                   "\"start_p99_ms\": %.3f, \"start_max_ms\": %.3f, \"daemon_rss_mib\": %.1f}\n",
                   a->broker->ops->name, o.n, o.concurrency, enqueue_rate, bulk_rate, process_rate,
                   o.rate, n_lat, pct(lat, n_lat, 0.50), pct(lat, n_lat, 0.95),
                   pct(lat, n_lat, 0.99), (double)lat[n_lat - 1] / 1e6, (double)rss_kb / 1024.0);
        } else {
            printf("broker                         %s\n", a->broker->ops->name);
            printf("jobs                           %d no-op (sys.noop), concurrency %d\n", o.n,
                   o.concurrency);
            printf("enqueue, one call per job      %.0f jobs/s\n", enqueue_rate);
            printf("enqueue, bulk (1,000/batch)    %.0f jobs/s\n", bulk_rate);
            printf("processing                     %.0f jobs/s\n", process_rate);
            printf("start latency at %d jobs/s     p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  max "
                   "%.3f ms  (%zu jobs)\n",
                   o.rate, pct(lat, n_lat, 0.50), pct(lat, n_lat, 0.95), pct(lat, n_lat, 0.99),
                   (double)lat[n_lat - 1] / 1e6, n_lat);
            printf("daemon peak RSS                %.1f MiB\n", (double)rss_kb / 1024.0);
        }
        free(lat);
    }
    json_decref(args);
    app_close(a);
    return 0;
}
