/*
 * test_embedded_limits.c - what the Redis issue added, on the embedded (SQLite) broker through
 * real daemons: `betpipe monitor` tails the events table, a rate limit and a queue's cap hold
 * across two daemons sharing one instance, and the worker registry keeps a killed worker
 * visible as OFFLINE.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "client.h"
#include "engine.h"
#include "util.h"

static char *dd;
static char record[1024];
static pid_t daemons[4];
static int n_daemons;

static void setup(void)
{
    bpt_engine_env_setup();
    dd = bpt_tmpdir("embedded-limits");
    snprintf(record, sizeof record, "%s/record.txt", dd);
    n_daemons = 0;
}

static void teardown(void)
{
    for (int i = 0; i < n_daemons; i++) {
        if (daemons[i] > 0) {
            bpt_stop(daemons[i], SIGKILL, 5000); /* only ours, by pid */
        }
    }
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(embedded_limits, .init = setup, .fini = teardown, .timeout = 120);

static void write_config(const char *text)
{
    bpt_write_in(dd, "betpipe.json", text);
}

static pid_t start_daemon(void)
{
    pid_t p = bpt_daemon_start(dd, NULL);
    daemons[n_daemons++] = p;
    return p;
}

static void stop_all(void)
{
    for (int i = 0; i < n_daemons; i++) {
        if (daemons[i] > 0) {
            cr_assert_eq(bpt_stop(daemons[i], SIGTERM, 20000), 0);
            daemons[i] = 0;
        }
    }
}

static void enqueue_record(app *a, int sleep_ms)
{
    char args[1300];
    json_t *j;
    bp_error err = {0};
    snprintf(args, sizeof args, "{\"file\": \"%s\", \"sleep_ms\": %d}", record, sleep_ms);
    j = json_loads(args, 0, NULL);
    cr_assert_eq(client_enqueue(a, "test.record", j, NULL, NULL, NULL, &err), BP_OK, "%s", err.msg);
    json_decref(j);
}

typedef struct until_count {
    app *a;
    int64_t want;
} until_count;

static bool succeeded_reached(void *ud)
{
    until_count *u = ud;
    json_t *stats = NULL;
    int64_t n = 0;
    if (u->a->broker->ops->stats(u->a->broker, &stats, NULL) == BP_OK) {
        n = json_integer_value(json_object_get(
            json_object_get(json_object_get(stats, "queues"), "default"), "succeeded"));
    }
    json_decref(stats);
    return n >= u->want;
}

/* start/end lines of the record file, in file order (O_APPEND: time order) */
typedef struct rec {
    char what[8];
    long long ns;
} rec;

static size_t read_records(rec **out)
{
    char *text = bpt_slurp(record), *save = NULL;
    size_t n = 0, cap = 0;
    rec *v = NULL;
    for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        rec r;
        char id[64];
        int pid;
        if (sscanf(l, "%7s %63s %d %lld", r.what, id, &pid, &r.ns) != 4) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = realloc(v, cap * sizeof *v);
            cr_assert(v);
        }
        v[n++] = r;
    }
    free(text);
    *out = v;
    return n;
}

Test(embedded_limits, monitor_tails_the_embedded_event_log)
{
    char out[1200], id[BP_JOB_ID_SIZE];
    const char *argv[] = {"betpipe", "--data-dir", dd, "monitor", "--seconds", "4", "--json", NULL};
    bpt_file_has ready;
    pid_t mon;
    app *a;
    job *j;
    char *text, *save = NULL;
    int sent = 0, received = 0, started = 0, succeeded = 0, online = 0;
    snprintf(out, sizeof out, "%s/monitor.out", dd);
    mon = bpt_spawn(argv, NULL, out);
    ready = (bpt_file_has){out, "watching the events of the sqlite broker"};
    cr_assert(bpt_wait_for(bpt_file_contains, &ready, 10000), "monitor started");
    start_daemon();
    a = bpt_app_open(dd);
    {
        json_t *args = json_pack("{s:s}", "file", record);
        bp_error err = {0};
        cr_assert_eq(client_enqueue(a, "test.record", args, NULL, NULL, id, &err), BP_OK);
        json_decref(args);
    }
    j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_SUCCESS);
    job_free(j);
    bpt_stop(mon, 0, 15000);
    text = bpt_slurp(out);
    cr_assert(text);
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *e = json_loads(l, 0, NULL);
        const char *ev = json_string_value(json_object_get(e, "event"));
        const char *eid = json_string_value(json_object_get(e, "id"));
        if (ev && eid && strcmp(eid, id) == 0) {
            sent += strcmp(ev, "job-sent") == 0;
            received += strcmp(ev, "job-received") == 0;
            started += strcmp(ev, "job-started") == 0;
            succeeded += strcmp(ev, "job-succeeded") == 0;
        }
        online += ev && strcmp(ev, "worker-online") == 0;
        json_decref(e);
    }
    free(text);
    cr_assert(sent == 1 && received == 1 && started == 1 && succeeded == 1,
              "sent %d received %d started %d succeeded %d", sent, received, started, succeeded);
    cr_assert_eq(online, 1, "the daemon came online while we watched");
    app_close(a);
    stop_all();
}

Test(embedded_limits, rate_limit_and_queue_cap_hold_across_two_daemons)
{
    enum { N = 5 };
    rec *v = NULL;
    size_t n;
    long long last = 0;
    int running = 0, peak = 0, starts = 0;
    app *a;
    until_count u;
    write_config("{\"queues\": {\"default\": {\"concurrency\": 2, \"global_concurrency\": 1}}, "
                 "\"jobs\": {\"test.record\": {\"rate_limit\": \"120/m\"}}}");
    start_daemon();
    start_daemon();
    a = bpt_app_open(dd);
    for (int i = 0; i < N; i++) {
        enqueue_record(a, 100);
    }
    u = (until_count){a, N};
    cr_assert(bpt_wait_for(succeeded_reached, &u, 30000), "all jobs ran");
    n = read_records(&v);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].what, "start") == 0) {
            if (starts++ > 0) {
                long long gap_ms = (v[i].ns - last) / 1000000;
                cr_assert_geq(gap_ms, 450, "120/m: starts %lld ms apart", gap_ms);
            }
            last = v[i].ns;
            running++;
        } else if (strcmp(v[i].what, "end") == 0) {
            running--;
        }
        peak = running > peak ? running : peak;
    }
    free(v);
    cr_assert_eq(starts, N);
    cr_assert_eq(peak, 1, "global_concurrency 1 across 4 threads (peak %d)", peak);
    app_close(a);
    stop_all();
}

Test(embedded_limits, status_lists_a_killed_worker_as_offline)
{
    bpt_result r;
    pid_t p;
    char tag[32];
    write_config("{\"broker\": {\"lease\": \"2s\", \"worker_timeout\": \"2s\"}}");
    p = start_daemon();
    snprintf(tag, sizeof tag, ":%d:", (int)p);
    /* killed only once it has registered (a slow start, under ASan, would register nothing) */
    for (int64_t end = bpt_now_ms() + bpt_deadline_ms(10000);; util_sleep_ms(50)) {
        bool listed;
        r = bpt_betpipe(dd, "status", NULL);
        cr_assert_eq(r.exit_code, 0, "%s", r.err);
        listed = strstr(r.out, tag) != NULL;
        bpt_result_free(&r);
        if (listed) {
            break;
        }
        cr_assert_lt(bpt_now_ms(), end, "the daemon registers as a worker");
    }
    kill(p, SIGKILL);
    bpt_stop(p, 0, 5000);
    daemons[0] = 0;
    /* another daemon's reaper declares it offline (its pid is gone) */
    start_daemon();
    for (int64_t end = bpt_now_ms() + bpt_deadline_ms(10000);; util_sleep_ms(100)) {
        bool offline;
        r = bpt_betpipe(dd, "status", NULL);
        cr_assert_eq(r.exit_code, 0, "%s", r.err);
        {
            char *line = strstr(r.out, tag);
            char *eol = line ? strchr(line, '\n') : NULL;
            if (eol) {
                *eol = '\0';
            }
            offline = line && strstr(line, "OFFLINE");
        }
        bpt_result_free(&r);
        if (offline) {
            break;
        }
        cr_assert_lt(bpt_now_ms(), end, "the killed worker shows as OFFLINE in status");
    }
    stop_all();
}
