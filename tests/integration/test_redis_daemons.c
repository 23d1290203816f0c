/*
 * test_redis_daemons.c - real daemons (the betpipe binary, real plugins) sharing one real
 * redis-server on a unix socket: the behaviours only a shared broker gives.
 *
 * Every daemon gets a data dir of its own, as it would on a host of its own: its SQLite store,
 * its run directory (so the local control sockets of one cannot be reached from another) and
 * its config file. The broker is named by BETPIPE_BROKER_URL, which the spawned daemons and CLI
 * commands inherit. test.record (tests/plugins/testjobs) writes a "start"/"end" line per run
 * with the pid and CLOCK_MONOTONIC ns, which is how the tests count runs and measure timings.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "broker_suite.h"
#include "client.h"
#include "engine.h"
#include "redis_fixture.h"
#include "util.h"

#define MAX_DAEMONS 6

static char *base;
static bpt_redis *srv;
static pid_t daemons[MAX_DAEMONS];
static int n_daemons;
static char record[1024];

static void setup(void)
{
    bpt_engine_env_setup();
    base = bpt_tmpdir("rdaemons");
    snprintf(record, sizeof record, "%s/record.txt", base);
    n_daemons = 0;
    srv = NULL;
}

static void teardown(void)
{
    /* only the daemons this test started, by pid */
    for (int i = 0; i < n_daemons; i++) {
        if (daemons[i] > 0) {
            bpt_stop(daemons[i], SIGKILL, 5000);
        }
    }
    bpt_redis_free(srv);
    bpt_rm_rf(base);
    free(base);
}

TestSuite(redis_daemons, .init = setup, .fini = teardown, .timeout = 240);

static void start_redis(const bpt_redis_opts *o)
{
    srv = bpt_redis_start(o);
    setenv("BETPIPE_BROKER_URL", bpt_redis_url(srv), 1);
}

/* A data dir "host" under the test's base dir, with `config` (JSON text, may be NULL) as its
 * betpipe.json. Returns a new string. */
static char *host_dir(const char *name, const char *config_json)
{
    char *dir = util_asprintf("%s/%s", base, name);
    cr_assert(dir);
    cr_assert_eq(util_mkdir_p(dir, 0700, NULL), BP_OK);
    if (config_json) {
        char path[1200];
        FILE *f;
        snprintf(path, sizeof path, "%s/betpipe.json", dir);
        f = fopen(path, "w");
        cr_assert(f);
        fputs(config_json, f);
        fclose(f);
    }
    return dir;
}

/* The teardown kills the daemons it knows. */
static pid_t track(pid_t pid)
{
    cr_assert(n_daemons < MAX_DAEMONS);
    daemons[n_daemons++] = pid;
    return pid;
}

static pid_t start_daemon(const char *dir, const char *concurrency)
{
    return track(concurrency ? bpt_daemon_start(dir, "--concurrency", concurrency, NULL)
                             : bpt_daemon_start(dir, NULL));
}

/* A daemon that serves only `queues` ("q1,q2"). */
static pid_t start_daemon_on(const char *dir, const char *queues)
{
    return track(bpt_daemon_start(dir, "--queues", queues, NULL));
}

static void forget_daemon(pid_t pid)
{
    for (int i = 0; i < n_daemons; i++) {
        if (daemons[i] == pid) {
            daemons[i] = 0;
        }
    }
}

static void stop_daemon(pid_t pid)
{
    cr_assert_eq(bpt_stop(pid, SIGTERM, 20000), 0, "daemon %d stopped cleanly", (int)pid);
    forget_daemon(pid);
}

static void enqueue_record(app *a, int sleep_ms, const bp_enqueue_opts *opts, char *id_out)
{
    char args[1300];
    json_t *j;
    bp_error err = {0};
    snprintf(args, sizeof args, "{\"file\": \"%s\", \"sleep_ms\": %d}", record, sleep_ms);
    j = json_loads(args, 0, NULL);
    cr_assert_eq(client_enqueue(a, "test.record", j, opts, NULL, id_out, &err), BP_OK,
                 "enqueue: %s", err.msg);
    json_decref(j);
}

/* One line of the record file. */
typedef struct rec_line {
    char what[8];
    char id[BP_JOB_ID_SIZE];
    int pid;
    long long ns;
} rec_line;

/* Parse the record file; returns the number of lines (array in *out, caller frees). */
static size_t read_records(rec_line **out)
{
    char *text = bpt_slurp(record), *save = NULL;
    size_t n = 0, cap = 0;
    rec_line *v = NULL;
    for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        rec_line r;
        if (sscanf(l, "%7s %63s %d %lld", r.what, r.id, &r.pid, &r.ns) != 4) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            v = realloc(v, cap * sizeof *v);
            cr_assert(v);
        }
        v[n++] = r;
    }
    free(text);
    *out = v;
    return n;
}

static int count_lines(const char *what, const char *id, int pid)
{
    rec_line *v = NULL;
    size_t n = read_records(&v);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].what, what) == 0 && (!id || strcmp(v[i].id, id) == 0) &&
            (pid == 0 || v[i].pid == pid)) {
            k++;
        }
    }
    free(v);
    return k;
}

static int64_t count_state(app *a, const char *queue, const char *state)
{
    return bsuite_queue_count(a->broker, queue, state);
}

typedef struct until_count {
    app *a;
    int64_t want;
} until_count;

static bool succeeded_reached(void *ud)
{
    until_count *u = ud;
    return count_state(u->a, "default", "succeeded") >= u->want;
}

typedef struct line_wait {
    const char *what, *id;
    int pid_not; /* a line from another pid than this one (0 = any) */
    int at_least;
} line_wait;

static bool lines_reached(void *ud)
{
    line_wait *w = ud;
    rec_line *v = NULL;
    size_t n = read_records(&v);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].what, w->what) == 0 && (!w->id || strcmp(v[i].id, w->id) == 0) &&
            (w->pid_not == 0 || v[i].pid != w->pid_not)) {
            k++;
        }
    }
    free(v);
    return k >= w->at_least;
}

static int cmp_ll(const void *pa, const void *pb)
{
    long long a = *(const long long *)pa, b = *(const long long *)pb;
    return (a > b) - (a < b);
}

/* ============================================================================================
 * Sharing the work
 * ========================================================================================== */

Test(redis_daemons, three_daemons_share_3000_jobs_each_runs_exactly_once, .timeout = 300)
{
    enum { N = 3000 };
    const char *cfg = "{\"queues\": {\"default\": {\"concurrency\": 2}}}";
    char *h1, *h2, *h3;
    pid_t p[3];
    app *a;
    until_count u;
    rec_line *v = NULL;
    size_t n;
    char(*ids)[BP_JOB_ID_SIZE] = calloc(N, sizeof *ids);
    start_redis(NULL);
    h1 = host_dir("h1", cfg);
    h2 = host_dir("h2", cfg);
    h3 = host_dir("h3", cfg);
    p[0] = start_daemon(h1, NULL);
    p[1] = start_daemon(h2, NULL);
    p[2] = start_daemon(h3, NULL);
    a = bpt_app_open(h1);
    for (int i = 0; i < N; i++) {
        enqueue_record(a, 0, NULL, ids[i]);
    }
    u = (until_count){a, N};
    cr_assert(bpt_wait_for(succeeded_reached, &u, 120000), "all %d jobs finished (%lld did)", N,
              (long long)count_state(a, "default", "succeeded"));
    n = read_records(&v);
    {
        int per_daemon[3] = {0, 0, 0};
        int starts = 0;
        /* every id started exactly once */
        for (size_t i = 0; i < n; i++) {
            if (strcmp(v[i].what, "start") == 0) {
                starts++;
                for (int d = 0; d < 3; d++) {
                    per_daemon[d] += v[i].pid == p[d];
                }
            }
        }
        cr_assert_eq(starts, N, "%d runs for %d jobs: some ran twice or not at all", starts, N);
        for (int i = 0; i < N; i += 1) {
            int runs = 0;
            for (size_t k = 0; k < n && runs < 2; k++) {
                runs += strcmp(v[k].what, "start") == 0 && strcmp(v[k].id, ids[i]) == 0;
            }
            cr_assert_eq(runs, 1, "job %s ran %d times", ids[i], runs);
        }
        cr_assert(per_daemon[0] > 0 && per_daemon[1] > 0 && per_daemon[2] > 0,
                  "the three daemons shared the work (%d / %d / %d)", per_daemon[0], per_daemon[1],
                  per_daemon[2]);
    }
    free(v);
    free(ids);
    app_close(a);
    for (int i = 0; i < 3; i++) {
        stop_daemon(p[i]);
    }
    free(h1);
    free(h2);
    free(h3);
}

Test(redis_daemons, kill9_mid_job_another_daemon_runs_it_within_timeout_plus_5s)
{
    /* lease 3 s: heartbeats every second, a silent worker is offline after 3 s */
    const char *cfg = "{\"broker\": {\"lease\": \"3s\", \"worker_timeout\": \"3s\"}}";
    char *h1 = host_dir("h1", cfg), *h2 = host_dir("h2", cfg);
    char id[BP_JOB_ID_SIZE];
    pid_t p1, p2, victim, survivor;
    int64_t killed_at, rerun_at;
    app *a;
    line_wait first = {"start", NULL, 0, 1}, second;
    job *j;
    start_redis(NULL);
    p1 = start_daemon(h1, NULL);
    p2 = start_daemon(h2, NULL);
    a = bpt_app_open(h1);
    enqueue_record(a, 8000, NULL, id);
    first.id = id;
    cr_assert(bpt_wait_for(lines_reached, &first, 10000), "the job started somewhere");
    victim = count_lines("start", id, p1) == 1 ? p1 : p2;
    survivor = victim == p1 ? p2 : p1;
    cr_assert_eq(kill(victim, SIGKILL), 0);
    killed_at = bpt_now_ms();
    forget_daemon(victim);
    {
        int code;
        while (!bpt_exited(victim, &code)) {
            util_sleep_ms(5);
        }
    }
    second = (line_wait){"start", id, victim, 1};
    cr_assert(bpt_wait_for(lines_reached, &second, 3000 + 5000 + 2000),
              "the job ran again on the other daemon");
    rerun_at = bpt_now_ms();
    cr_assert_leq(rerun_at - killed_at, bpt_deadline_ms(3000 + 5000),
                  "re-run %lld ms after kill -9: more than the heartbeat timeout + 5 s",
                  (long long)(rerun_at - killed_at));
    cr_assert_eq(count_lines("start", id, survivor), 1);
    j = bpt_wait_final(a, id, 20000);
    cr_assert(j, "the job finished");
    cr_assert_eq(j->state, JOB_SUCCESS, "state %s", job_state_name(j->state));
    cr_assert_eq(j->crashes, 1, "one crash counted (%d)", j->crashes);
    job_free(j);
    app_close(a);
    stop_daemon(survivor);
    free(h1);
    free(h2);
}

/* ============================================================================================
 * Redis goes away and comes back
 * ========================================================================================== */

typedef struct started_ctx {
    int at_least;
} started_ctx;

static bool enough_started(void *ud)
{
    started_ctx *c = ud;
    return count_lines("start", NULL, 0) >= c->at_least;
}

/* A daemon that loses Redis for several seconds says so once (collectd's rule: one complaint per
 * outage), not at every heartbeat and reaper pass, and says once when it is back. */
Test(redis_daemons, an_outage_is_logged_once_and_its_end_once, .timeout = 120)
{
    char *h1 = host_dir("h1", "{}");
    char log[1200], id[BP_JOB_ID_SIZE];
    app *a;
    job *j;
    start_redis(NULL);
    start_daemon(h1, NULL);
    a = bpt_app_open(h1);
    bpt_redis_stop(srv);
    util_sleep_ms(6000); /* past two heartbeats and several reaper passes */
    bpt_redis_restart(srv);
    enqueue_record(a, 0, NULL, id);
    j = bpt_wait_final(a, id, 20000);
    cr_assert(j && j->state == JOB_SUCCESS, "a job after the outage runs");
    job_free(j);
    snprintf(log, sizeof log, "%s/daemon.log", h1);
    cr_assert_eq(bpt_count_lines(log, "", "broker unavailable ("), 1, "one line for the outage");
    cr_assert_eq(bpt_count_lines(log, "", "broker reachable again"), 1, "one line for its end");
    cr_assert_eq(bpt_count_lines(log, "", "reaper pass failed") +
                     bpt_count_lines(log, "", "heartbeat failed"),
                 0);
    app_close(a);
    free(h1);
}

Test(redis_daemons, redis_restarted_with_aof_during_2000_jobs_none_lost_none_stuck, .timeout = 300)
{
    enum { N = 2000 };
    bpt_redis_opts o = {.aof = true};
    const char *cfg = "{\"queues\": {\"default\": {\"concurrency\": 2}}}";
    char *h1 = host_dir("h1", cfg), *h2 = host_dir("h2", cfg);
    char(*ids)[BP_JOB_ID_SIZE] = calloc(N, sizeof *ids);
    pid_t p1, p2;
    app *a;
    started_ctx some = {300};
    until_count all;
    start_redis(&o);
    p1 = start_daemon(h1, NULL);
    p2 = start_daemon(h2, NULL);
    a = bpt_app_open(h1);
    for (int i = 0; i < N; i++) {
        enqueue_record(a, 3, NULL, ids[i]);
    }
    cr_assert(bpt_wait_for(enough_started, &some, 60000), "the run got going");
    bpt_redis_stop(srv);
    /* Mid-run: with Redis gone nothing more can be leased, so the jobs that ever started are
     * all there will be until it is back: some must still be waiting. */
    {
        int started = count_lines("start", NULL, 0);
        cr_assert_lt(started, N, "Redis went away mid-run (%d of %d jobs had started)", started, N);
    }
    util_sleep_ms(300); /* an outage the daemons notice, not a blink */
    bpt_redis_restart(srv);
    all = (until_count){a, N};
    cr_assert(bpt_wait_for(succeeded_reached, &all, 180000),
              "every job finished after the restart (%lld of %d)",
              (long long)count_state(a, "default", "succeeded"), N);
    /* none lost: every job ran and is SUCCESS; none stuck: nothing waiting or running */
    for (int i = 0; i < N; i++) {
        job *j = NULL;
        bp_error err = {0};
        cr_assert_eq(client_get(a, ids[i], &j, &err), BP_OK, "job %s: %s", ids[i], err.msg);
        cr_assert_eq(j->state, JOB_SUCCESS, "job %s is %s", ids[i], job_state_name(j->state));
        job_free(j);
        cr_assert_geq(count_lines("start", ids[i], 0), 1, "job %s never ran", ids[i]);
    }
    cr_assert_eq(count_state(a, "default", "waiting"), 0);
    cr_assert_eq(count_state(a, "default", "running"), 0);
    /* both daemons lived through the outage: they lost Redis and got it back */
    {
        const char *hosts[] = {h1, h2};
        for (int i = 0; i < 2; i++) {
            char log[1200];
            snprintf(log, sizeof log, "%s/daemon.log", hosts[i]);
            cr_assert_geq(bpt_count_lines(log, "", "redis connection lost") +
                              bpt_count_lines(log, "", "redis unreachable"),
                          1, "daemon %d noticed the outage", i + 1);
            cr_assert_geq(bpt_count_lines(log, "", "redis connection restored"), 1,
                          "daemon %d reconnected", i + 1);
        }
    }
    /* and the daemons carry on */
    {
        char id[BP_JOB_ID_SIZE];
        job *j;
        enqueue_record(a, 0, NULL, id);
        j = bpt_wait_final(a, id, 10000);
        cr_assert(j && j->state == JOB_SUCCESS, "a job after the restart runs");
        job_free(j);
    }
    app_close(a);
    stop_daemon(p1);
    stop_daemon(p2);
    free(ids);
    free(h1);
    free(h2);
}

/* Waiting on a host's job history, read as `betpipe jobs --history --json` prints it. */
typedef struct history_wait {
    const char *dir;
    char (*ids)[BP_JOB_ID_SIZE];
    int n;
    char why[600]; /* the first job not (yet) recorded as it should be */
} history_wait;

/* Every job of w->ids is in the history as SUCCESS with its echo {"n": i} as the result. */
static bool history_complete(void *ud)
{
    history_wait *w = ud;
    bpt_result r = bpt_betpipe(w->dir, "jobs", "--history", "--limit", "1000", "--json", NULL);
    json_t *list = r.exit_code == 0 ? json_loads(r.out, 0, NULL) : NULL;
    bool all = list != NULL;
    snprintf(w->why, sizeof w->why, "jobs --history: exit %d %s", r.exit_code, r.err);
    for (int i = 0; all && i < w->n; i++) {
        const json_t *found = NULL, *e;
        size_t k;
        json_array_foreach(list, k, e)
        {
            if (strcmp(json_string_value(json_object_get(e, "id")), w->ids[i]) == 0) {
                found = e;
            }
        }
        const char *st = found ? json_string_value(json_object_get(found, "state")) : NULL;
        json_t *res = found ? json_object_get(found, "result") : NULL;
        all =
            st && strcmp(st, "SUCCESS") == 0 && json_integer_value(json_object_get(res, "n")) == i;
        if (!all) {
            snprintf(w->why, sizeof w->why, "job %s in the history: %s, result %s", w->ids[i],
                     st ? st : "missing", res && !json_is_null(res) ? "other" : "none");
        }
    }
    json_decref(list);
    bpt_result_free(&r);
    return all;
}

Test(redis_daemons, history_of_fast_jobs_is_final_and_survives_a_redis_flush)
{
    enum { N = 20 };
    char *h1 = host_dir("h1", NULL);
    char ids[N][BP_JOB_ID_SIZE];
    history_wait hw = {h1, ids, N, ""};
    pid_t p;
    app *a;
    start_redis(NULL);
    p = start_daemon(h1, NULL);
    a = bpt_app_open(h1);
    /* sys.echo finishes in microseconds: its STARTED notice and its final ack share an
     * exchange, the case where the history once got the notice instead of the result */
    for (int i = 0; i < N; i++) {
        char args[32];
        job *j;
        snprintf(args, sizeof args, "{\"n\": %d}", i);
        bpt_enqueue(a, "sys.echo", args, ids[i]);
        j = bpt_wait_final(a, ids[i], 10000);
        cr_assert(j && j->state == JOB_SUCCESS, "echo %d finished", i);
        job_free(j);
    }
    cr_assert(bpt_wait_for(history_complete, &hw, 10000), "before the flush: %s", hw.why);
    {
        redisReply *r = bpt_redis_cmd(srv, "FLUSHALL");
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "FLUSHALL");
        freeReplyObject(r);
    }
    {
        job *j = NULL;
        cr_assert_eq(a->broker->ops->get(a->broker, ids[0], &j, NULL), BP_E_NOTFOUND,
                     "Redis forgot the jobs");
    }
    cr_assert(history_complete(&hw), "after the flush: %s", hw.why);
    app_close(a);
    stop_daemon(p);
    free(h1);
}

Test(redis_daemons, idle_daemon_resumes_consuming_after_a_redis_restart)
{
    char *h1 = host_dir("h1", NULL);
    char id[BP_JOB_ID_SIZE];
    pid_t p;
    app *a;
    job *j;
    start_redis(NULL);
    p = start_daemon(h1, NULL);
    a = bpt_app_open(h1);
    enqueue_record(a, 0, NULL, id);
    j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_SUCCESS);
    job_free(j);
    /* a restart while the daemon sits idle, blocked on Redis (Celery's silent-consumer bug) */
    bpt_redis_stop(srv);
    util_sleep_ms(200);
    bpt_redis_restart(srv);
    enqueue_record(a, 0, NULL, id);
    j = bpt_wait_final(a, id, 15000);
    cr_assert(j, "the daemon consumed again after Redis came back, by itself");
    cr_assert_eq(j->state, JOB_SUCCESS);
    cr_assert_eq(count_lines("start", id, p), 1);
    job_free(j);
    app_close(a);
    stop_daemon(p);
    free(h1);
}

/* ============================================================================================
 * Finding the broker: --broker, BETPIPE_BROKER_URL, broker.url, then the seed names
 * ========================================================================================== */

/* A password with every character a URL gives a meaning to, and its percent-encoded form. */
#define SEED_PASSWORD     "p@ss/w:rd%#?x"
#define SEED_PASSWORD_PCT "p%40ss%2Fw%3Ard%25%23%3Fx"
#define NO_REDIS          "unix:///nonexistent/betpipe-test/redis.sock"

/* From `dir`, with the environment as it is now (and `--broker flag` unless NULL): config check
 * says the broker came from `source` (a substring) without showing the password, and a job sent
 * through it is run by the daemon and was stored in the test's Redis. */
static void echo_through(const char *dir, const char *source, const char *broker_flag)
{
    /* room for "--broker URL" and the terminating NULL */
    const char *check[9] = {"betpipe", "--data-dir", dir, "config", "check", "--json"};
    const char *run[14] = {"betpipe", "--data-dir", dir,         "run", "sys.echo", "--arg",
                           "n=7",     "--wait",     "--timeout", "20s", "--json"};
    bpt_result r;
    json_t *o;
    const char *src, *url, *id, *state;
    redisReply *rep;
    if (broker_flag) {
        check[6] = "--broker";
        check[7] = broker_flag;
        run[11] = "--broker";
        run[12] = broker_flag;
    }
    r = bpt_run(check, NULL, NULL, 30000);
    o = json_loads(r.out, 0, NULL);
    cr_assert(o, "config check: exit %d %s %s", r.exit_code, r.out, r.err);
    src = json_string_value(json_object_get(json_object_get(o, "broker"), "source"));
    url = json_string_value(json_object_get(json_object_get(o, "broker"), "url"));
    cr_assert(src && strstr(src, source), "the broker came from %s, not %s", src ? src : "-",
              source);
    cr_assert(url && strstr(url, bpt_redis_socket(srv)) && !strstr(url, "w:rd"),
              "the broker is the test's Redis, password hidden: %s", url ? url : "-");
    json_decref(o);
    bpt_result_free(&r);
    r = bpt_run(run, NULL, NULL, 30000);
    cr_assert_eq(r.exit_code, 0, "run through %s: %s %s", source, r.out, r.err);
    o = json_loads(r.out, 0, NULL);
    id = json_string_value(json_object_get(o, "id"));
    state = json_string_value(json_object_get(o, "state"));
    cr_assert(id && state && strcmp(state, "SUCCESS") == 0, "%s", r.out);
    rep = bpt_redis_cmd(srv, "EXISTS bp:{default}:j:%s", id);
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1,
              "job %s is in the test's Redis", id);
    freeReplyObject(rep);
    json_decref(o);
    bpt_result_free(&r);
}

Test(redis_daemons, broker_found_by_seed_names_and_in_the_documented_order)
{
    bpt_redis_opts o = {.requirepass = SEED_PASSWORD};
    char *good, *bad_cfg, *good_cfg;
    char *h1 = host_dir("h1", NULL), *h2, *h3;
    pid_t p;
    start_redis(&o);
    unsetenv("BETPIPE_BROKER_URL");
    good = bpt_redis_url_with(srv, NULL, SEED_PASSWORD_PCT);
    good_cfg = util_asprintf("{\"broker\": {\"url\": \"%s\"}}", good);
    bad_cfg = util_asprintf("{\"broker\": {\"url\": \"%s\"}}", NO_REDIS);
    cr_assert(good_cfg && bad_cfg);
    h2 = host_dir("h2", good_cfg);
    h3 = host_dir("h3", bad_cfg);

    /* REDIS_HOST is a socket path, the password is given raw: the daemon and the CLI find the
     * server and authenticate */
    setenv("REDIS_HOST", bpt_redis_socket(srv), 1);
    setenv("REDIS_PASSWORD", SEED_PASSWORD, 1);
    p = start_daemon(h1, NULL);
    echo_through(h1, "REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_PASSWORD", NULL);

    /* each name below beats the ones after it: those point at no Redis at all */
    setenv("REDIS_HOST", "/nonexistent/betpipe-test/redis.sock", 1);
    setenv("CELERY_BROKER_URL", good, 1);
    echo_through(h1, "CELERY_BROKER_URL", NULL);
    setenv("CELERY_BROKER_URL", NO_REDIS, 1);
    setenv("REDIS_URL", good, 1);
    echo_through(h1, "REDIS_URL", NULL);
    setenv("REDIS_URL", NO_REDIS, 1);
    echo_through(h2, "betpipe.json", NULL); /* broker.url */
    setenv("BETPIPE_BROKER_URL", good, 1);
    echo_through(h3, "BETPIPE_BROKER_URL", NULL);
    setenv("BETPIPE_BROKER_URL", NO_REDIS, 1);
    echo_through(h3, "--broker", good);

    stop_daemon(p);
    free(good);
    free(good_cfg);
    free(bad_cfg);
    free(h1);
    free(h2);
    free(h3);
}

Test(redis_daemons, run_against_redis_that_is_down_fails_fast_with_exit_code_4)
{
    char *h1 = host_dir("h1", NULL);
    bpt_result r;
    int64_t t0;
    start_redis(NULL);
    bpt_redis_stop(srv);
    t0 = bpt_now_ms();
    r = bpt_betpipe(h1, "run", "sys.noop", NULL);
    cr_assert_eq(r.exit_code, 4, "exit %d, stderr: %s", r.exit_code, r.err);
    cr_assert_lt(bpt_now_ms() - t0, bpt_deadline_ms(3000), "it failed fast");
    cr_assert(strstr(r.err, "redis") && strstr(r.err, bpt_redis_socket(srv)),
              "the message names the Redis server: %s", r.err);
    cr_assert(strstr(r.err, "cannot connect") || strstr(r.err, "unreachable"), "and says why: %s",
              r.err);
    bpt_result_free(&r);
    free(h1);
}

Test(redis_daemons, config_check_warns_about_eviction_and_missing_persistence)
{
    bpt_redis_opts o = {.maxmemory = "64mb", .maxmemory_policy = "allkeys-lru"};
    char *h1 = host_dir("h1", NULL);
    bpt_result r;
    start_redis(&o);
    r = bpt_betpipe(h1, "config", "check", NULL);
    cr_assert_eq(r.exit_code, 0, "warnings do not make the config invalid: %s %s", r.out, r.err);
    cr_assert(strstr(r.out, "WARNING") && strstr(r.out, "maxmemory-policy allkeys-lru") &&
                  strstr(r.out, "noeviction"),
              "config check warns about the eviction policy: %s", r.out);
    cr_assert(strstr(r.out, "no persistence"), "and about a Redis that keeps nothing: %s", r.out);
    bpt_result_free(&r);
    bpt_redis_free(srv);
    {
        bpt_redis_opts safe = {.aof = true};
        start_redis(&safe);
    }
    r = bpt_betpipe(h1, "config", "check", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    {
        json_t *o2 = json_loads(r.out, 0, NULL);
        cr_assert(o2, "%s", r.out);
        cr_assert_eq(json_array_size(json_object_get(o2, "warnings")), 0,
                     "a noeviction Redis with AOF gets no warning: %s", r.out);
        json_decref(o2);
    }
    bpt_result_free(&r);
    free(h1);
}

/* ============================================================================================
 * Time, revocation, limits
 * ========================================================================================== */

Test(redis_daemons, eta_job_runs_within_1s_of_its_time_once_with_two_daemons)
{
    char *h1 = host_dir("h1", NULL), *h2 = host_dir("h2", NULL);
    char id[BP_JOB_ID_SIZE];
    bp_enqueue_opts opts = {.struct_size = sizeof opts};
    pid_t p1, p2;
    app *a;
    job *j;
    int64_t eta;
    start_redis(NULL);
    p1 = start_daemon(h1, NULL);
    p2 = start_daemon(h2, NULL);
    a = bpt_app_open(h1);
    eta = util_now_ms() + 2000;
    opts.eta_ms = eta;
    enqueue_record(a, 0, &opts, id);
    j = bpt_wait_final(a, id, 15000);
    cr_assert(j && j->state == JOB_SUCCESS);
    cr_assert_geq(j->started_ms, eta, "started %lld ms before its ETA",
                  (long long)(eta - j->started_ms));
    cr_assert_lt(j->started_ms - eta, 1000, "started %lld ms after its ETA",
                 (long long)(j->started_ms - eta));
    job_free(j);
    /* exactly once: give a duplicate every chance to show up */
    util_sleep_ms(500);
    cr_assert_eq(count_lines("start", id, 0), 1, "the ETA job ran once");
    app_close(a);
    stop_daemon(p1);
    stop_daemon(p2);
    free(h1);
    free(h2);
}

typedef struct state_wait {
    app *a;
    const char *id;
    job_state state;
} state_wait;

static bool reached_state(void *ud)
{
    state_wait *w = ud;
    job *j = NULL;
    bool yes = client_get(w->a, w->id, &j, NULL) == BP_OK && j->state == w->state;
    job_free(j);
    return yes;
}

static void hang_job(app *a, char *id_out, bool cooperative)
{
    json_t *args = json_pack("{s:f, s:b}", "seconds", 60.0, "cooperative", cooperative);
    bp_error err = {0};
    cr_assert_eq(client_enqueue(a, "test.hang", args, NULL, NULL, id_out, &err), BP_OK, "%s",
                 err.msg);
    json_decref(args);
}

Test(redis_daemons, revoke_of_a_running_job_with_and_without_terminate)
{
    /* isolated: a plain revoke still asks the child; terminate kills a job that never checks */
    char *h1 = host_dir("h1", "{\"jobs\": {\"test.hang\": {\"soft_time_limit\": 120, "
                              "\"isolate\": true}}}");
    char *h2 = host_dir("h2", NULL);
    char id1[BP_JOB_ID_SIZE], id2[BP_JOB_ID_SIZE], log[1200];
    job *j;
    pid_t p;
    app *a;
    bpt_result r;
    state_wait w;
    start_redis(NULL);
    p = start_daemon(h1, NULL);
    a = bpt_app_open(h1);
    hang_job(a, id1, true);
    w = (state_wait){a, id1, JOB_STARTED};
    cr_assert(bpt_wait_for(reached_state, &w, 10000), "the job is running");
    /* revoked from another "host" */
    r = bpt_betpipe(h2, "revoke", id1, NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    cr_assert(strstr(r.out, "running"), "%s", r.out);
    bpt_result_free(&r);
    w.state = JOB_REVOKED;
    cr_assert(bpt_wait_for(reached_state, &w, 5000), "a revoked running job stops");

    hang_job(a, id2, false);
    w = (state_wait){a, id2, JOB_STARTED};
    cr_assert(bpt_wait_for(reached_state, &w, 10000));
    r = bpt_betpipe(h2, "revoke", id2, "--terminate", NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    bpt_result_free(&r);
    w.state = JOB_REVOKED;
    cr_assert(bpt_wait_for(reached_state, &w, 5000), "a job revoked with terminate stops");
    j = bpt_wait_final(a, id2, 1000);
    cr_assert(j && j->error && strstr(j->error, "terminated"), "killed, not asked: %s",
              j && j->error ? j->error : "-");
    job_free(j);
    snprintf(log, sizeof log, "%s/daemon.log", h1);
    cr_assert_eq(bpt_count_lines(log, "", "(terminate)"), 1,
                 "the worker learned that this revoke was a terminate");
    app_close(a);
    stop_daemon(p);
    free(h1);
    free(h2);
}

Test(redis_daemons, rate_limit_60_per_minute_holds_across_two_daemons)
{
    enum { N = 6 };
    /* One thread per daemon and jobs longer than a token's interval: when a token returns the
     * daemon that took the last one is still busy, so both daemons must take jobs, and the
     * limit still has to hold across them. */
    const char *cfg = "{\"jobs\": {\"test.record\": {\"rate_limit\": \"60/m\"}}, "
                      "\"queues\": {\"default\": {\"concurrency\": 1}}}";
    char *h1 = host_dir("h1", cfg), *h2 = host_dir("h2", cfg);
    pid_t p1, p2;
    app *a;
    until_count u;
    rec_line *v = NULL;
    long long starts[N];
    int ns = 0;
    size_t n;
    int64_t t0;
    start_redis(NULL);
    p1 = start_daemon(h1, NULL);
    p2 = start_daemon(h2, NULL);
    a = bpt_app_open(h1);
    t0 = bpt_now_ms();
    for (int i = 0; i < N; i++) {
        enqueue_record(a, 1300, NULL, NULL);
    }
    u = (until_count){a, N};
    cr_assert(bpt_wait_for(succeeded_reached, &u, 30000), "all jobs ran (%lld of %d)",
              (long long)count_state(a, "default", "succeeded"), N);
    n = read_records(&v);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].what, "start") == 0 && ns < N) {
            starts[ns++] = v[i].ns;
        }
    }
    free(v);
    cr_assert_eq(ns, N);
    cr_assert(count_lines("start", NULL, p1) > 0 && count_lines("start", NULL, p2) > 0,
              "both daemons took jobs (%d and %d)", count_lines("start", NULL, p1),
              count_lines("start", NULL, p2));
    qsort(starts, N, sizeof starts[0], cmp_ll);
    /* 60/m: one token a second, whichever daemon takes it. The start lines are written by the
     * job a few hundred microseconds after its lease: allow that jitter, no more. */
    for (int i = 1; i < N; i++) {
        long long gap_ms = (starts[i] - starts[i - 1]) / 1000000;
        cr_assert_geq(gap_ms, 950, "jobs %d and %d started %lld ms apart: faster than 60/m", i - 1,
                      i, gap_ms);
    }
    cr_assert_geq(bpt_now_ms() - t0, (N - 1) * 1000 - 50);
    app_close(a);
    stop_daemon(p1);
    stop_daemon(p2);
    free(h1);
    free(h2);
}

Test(redis_daemons, global_concurrency_caps_a_queue_across_two_daemons)
{
    enum { N = 6 };
    const char *cfg =
        "{\"queues\": {\"default\": {\"concurrency\": 3, \"global_concurrency\": 1}}}";
    char *h1 = host_dir("h1", cfg), *h2 = host_dir("h2", cfg);
    pid_t p1, p2;
    app *a;
    until_count u;
    rec_line *v = NULL;
    size_t n;
    int running = 0, peak = 0;
    start_redis(NULL);
    p1 = start_daemon(h1, NULL);
    p2 = start_daemon(h2, NULL);
    a = bpt_app_open(h1);
    for (int i = 0; i < N; i++) {
        enqueue_record(a, 150, NULL, NULL);
    }
    u = (until_count){a, N};
    cr_assert(bpt_wait_for(succeeded_reached, &u, 30000), "all jobs ran (%lld of %d)",
              (long long)count_state(a, "default", "succeeded"), N);
    /* the record file is in time order (O_APPEND): replay it */
    n = read_records(&v);
    for (size_t i = 0; i < n; i++) {
        running += strcmp(v[i].what, "start") == 0 ? 1 : strcmp(v[i].what, "end") == 0 ? -1 : 0;
        peak = running > peak ? running : peak;
    }
    free(v);
    cr_assert_eq(peak, 1, "at most one job of the queue ran at once across 6 threads (peak %d)",
                 peak);
    app_close(a);
    stop_daemon(p1);
    stop_daemon(p2);
    free(h1);
    free(h2);
}

/* ============================================================================================
 * Events and remote control
 * ========================================================================================== */

/* What `monitor --json` printed so far: the events of one kind, for one job id or from one
 * worker (its id has ":<pid>:"), with an "error" (jobs) or a "reason" (workers). */
typedef struct monitor_seen {
    const char *out; /* the monitor's output file */
    const char *event;
    const char *id; /* job id, or NULL */
    int pid;        /* worker pid, or 0 */
} monitor_seen;

static int monitor_count(const monitor_seen *m)
{
    char *text = bpt_slurp(m->out), *save = NULL, tag[32];
    int n = 0;
    snprintf(tag, sizeof tag, ":%d:", m->pid);
    for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        json_t *e = json_loads(l, 0, NULL);
        const char *ev = json_string_value(json_object_get(e, "event"));
        const char *eid = json_string_value(json_object_get(e, "id"));
        const char *w = json_string_value(json_object_get(e, "worker"));
        if (ev && strcmp(ev, m->event) == 0 && (!m->id || (eid && strcmp(eid, m->id) == 0)) &&
            (!m->pid || (w && strstr(w, tag)))) {
            n++;
        }
        json_decref(e);
    }
    free(text);
    return n;
}

static bool monitor_saw(void *ud)
{
    return monitor_count(ud) > 0;
}

/* A daemon that runs test.crash in its own process dies of SIGSEGV (expected: under ASan the
 * plain signal, not a sanitizer report, which test.sh would count as a failure). */
static pid_t start_crashing_daemon(const char *dir)
{
    const char *was = getenv("ASAN_OPTIONS");
    char *saved = was ? strdup(was) : NULL;
    char asan[2048];
    pid_t pid;
    snprintf(asan, sizeof asan, "%s%shandle_segv=0", was ? was : "", was && *was ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    pid = start_daemon_on(dir, "maintenance_queue");
    if (saved) {
        setenv("ASAN_OPTIONS", saved, 1);
    } else {
        unsetenv("ASAN_OPTIONS");
    }
    free(saved);
    return pid;
}

Test(redis_daemons, monitor_shows_the_events, .timeout = 120)
{
    /* short leases and worker timeouts so the lost daemons are declared offline quickly; two
     * crashes make a job DEAD */
    const char *cfg =
        "{\"broker\": {\"lease\": \"3s\", \"worker_timeout\": \"2s\", \"max_crashes\": 2}}";
    char *h1 = host_dir("h1", cfg), *h2 = host_dir("h2", NULL), *h3 = host_dir("h3", cfg);
    char *h4 = host_dir("h4", cfg), *h5 = host_dir("h5", cfg);
    char id[BP_JOB_ID_SIZE], out[1200], bad[BP_JOB_ID_SIZE], late[BP_JOB_ID_SIZE];
    char crash[BP_JOB_ID_SIZE];
    const char *argv[] = {"betpipe", "--data-dir", h2, "monitor", "--json", NULL};
    bpt_file_has ready;
    pid_t p, victim, crashers[2], mon;
    app *a;
    job *j;
    char *text, *save = NULL;
    int seen_sent = 0, seen_recv = 0, seen_started = 0, seen_ok = 0, seen_failed = 0, seen_hb = 0;
    start_redis(NULL);
    p = start_daemon_on(h1, "default");
    victim = start_daemon_on(h3, "default");
    crashers[0] = start_crashing_daemon(h4);
    crashers[1] = start_crashing_daemon(h5);
    snprintf(out, sizeof out, "%s/monitor.out", base);
    mon = bpt_spawn(argv, NULL, out);
    ready = (bpt_file_has){out, "watching the events"};
    cr_assert(bpt_wait_for(bpt_file_contains, &ready, 10000), "monitor started");
    a = bpt_app_open(h1);
    enqueue_record(a, 0, NULL, id);
    j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_SUCCESS);
    job_free(j);
    {
        json_t *args = json_object();
        bp_error err = {0};
        cr_assert_eq(client_enqueue(a, "test.fail", args, NULL, NULL, bad, &err), BP_OK);
        json_decref(args);
        j = bpt_wait_final(a, bad, 10000);
        cr_assert(j && j->state == JOB_FAILURE);
        job_free(j);
    }
    /* job-expired: a job for a queue nobody serves, past its expiry before anyone takes it */
    {
        bp_enqueue_opts o = {
            .struct_size = sizeof o, .queue = "data_queue", .expires_ms = util_now_ms() + 300};
        enqueue_record(a, 0, &o, late);
        j = bpt_wait_final(a, late, 15000);
        cr_assert(j && j->state == JOB_EXPIRED, "state %s", j ? job_state_name(j->state) : "-");
        job_free(j);
    }
    /* worker-offline: a daemon killed with -9, declared lost by the reaper of another */
    cr_assert_eq(kill(victim, SIGKILL), 0);
    forget_daemon(victim);
    /* job-dead: test.crash kills each daemon that runs it (in its own process), twice */
    {
        bp_enqueue_opts o = {.struct_size = sizeof o, .queue = "maintenance_queue"};
        json_t *args = json_object();
        bp_error err = {0};
        cr_assert_eq(client_enqueue(a, "test.crash", args, &o, NULL, crash, &err), BP_OK, "%s",
                     err.msg);
        json_decref(args);
        j = bpt_wait_final(a, crash, 30000);
        cr_assert(j && j->state == JOB_DEAD, "state %s", j ? job_state_name(j->state) : "-");
        cr_assert_eq(j->crashes, 2, "it crashed its worker twice (%d)", j->crashes);
        job_free(j);
        for (int i = 0; i < 2; i++) {
            int code = 0;
            cr_assert(bpt_exited(crashers[i], &code), "crashing daemon %d died", i);
            cr_assert(code == 128 + SIGSEGV || code == 128 + SIGABRT, "of the crash (%d)", code);
            forget_daemon(crashers[i]);
        }
    }
    {
        monitor_seen dead = {out, "job-dead", crash, 0},
                     gone = {out, "worker-offline", NULL, victim};
        cr_assert(bpt_wait_for(monitor_saw, &dead, 10000), "monitor shows job-dead");
        cr_assert(bpt_wait_for(monitor_saw, &gone, 15000), "monitor shows the killed worker go");
        for (int i = 0; i < 2; i++) {
            monitor_seen c = {out, "worker-offline", NULL, crashers[i]};
            cr_assert(bpt_wait_for(monitor_saw, &c, 15000), "and each crashed one");
        }
    }
    cr_assert_eq(bpt_stop(mon, SIGTERM, 15000), 0, "monitor stops on SIGTERM");
    text = bpt_slurp(out);
    cr_assert(text);
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *e = json_loads(l, 0, NULL);
        const char *ev = json_string_value(json_object_get(e, "event"));
        const char *eid = json_string_value(json_object_get(e, "id"));
        if (ev && eid && strcmp(eid, id) == 0) {
            seen_sent += strcmp(ev, "job-sent") == 0;
            seen_recv += strcmp(ev, "job-received") == 0;
            seen_started += strcmp(ev, "job-started") == 0;
            seen_ok += strcmp(ev, "job-succeeded") == 0;
        }
        if (ev && eid && strcmp(eid, bad) == 0 && strcmp(ev, "job-failed") == 0) {
            seen_failed += json_is_string(json_object_get(e, "error"));
        }
        if (ev && strcmp(ev, "worker-heartbeat") == 0 &&
            json_is_integer(json_object_get(e, "processed"))) {
            seen_hb++;
        }
        if (ev && strcmp(ev, "worker-offline") == 0) {
            const char *why = json_string_value(json_object_get(e, "reason"));
            cr_assert(why && strcmp(why, "stopped") != 0, "a lost worker, not a stop: %s", l);
        }
        json_decref(e);
    }
    free(text);
    cr_assert(seen_sent == 1 && seen_recv == 1 && seen_started == 1 && seen_ok == 1,
              "sent %d received %d started %d succeeded %d", seen_sent, seen_recv, seen_started,
              seen_ok);
    cr_assert_eq(seen_failed, 1, "the failure with its error");
    cr_assert_geq(seen_hb, 1, "worker heartbeats with their counters");
    {
        monitor_seen exp = {out, "job-expired", late, 0},
                     requeued = {out, "job-requeued", crash, 0};
        cr_assert_eq(monitor_count(&exp), 1, "job-expired, once");
        cr_assert_eq(monitor_count(&requeued), 1, "the first crash requeued the job");
    }
    app_close(a);
    stop_daemon(p);
    free(h1);
    free(h2);
    free(h3);
    free(h4);
    free(h5);
}

/* Run `betpipe --data-dir dir a1 ... --json` (NULL arguments are skipped) and parse stdout;
 * the exit code in *code. */
static json_t *betpipe_json(const char *dir, int *code, const char *a1, const char *a2,
                            const char *a3, const char *a4, const char *a5)
{
    const char *in[] = {a1, a2, a3, a4, a5};
    const char *argv[12] = {"betpipe", "--data-dir", dir};
    int n = 3;
    bpt_result r;
    json_t *o;
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        if (in[i]) {
            argv[n++] = in[i];
        }
    }
    argv[n++] = "--json";
    argv[n] = NULL;
    r = bpt_run(argv, NULL, NULL, 60000);
    o = json_loads(r.out, 0, NULL);
    *code = r.exit_code;
    cr_assert(o || r.exit_code != 0, "not JSON: %s / %s", r.out, r.err);
    bpt_result_free(&r);
    return o;
}

/* The worker id of the daemon with this pid, as `inspect ping` from `dir` reports it. */
static void worker_of(const char *dir, pid_t pid, char *out, size_t len)
{
    char tag[32];
    const char *wid;
    json_t *o, *v;
    int code;
    out[0] = '\0';
    snprintf(tag, sizeof tag, ":%d:", (int)pid);
    o = betpipe_json(dir, &code, "inspect", "ping", NULL, NULL, NULL);
    cr_assert_eq(code, 0);
    json_object_foreach(o, wid, v)
    {
        if (strstr(wid, tag)) {
            util_strlcpy(out, wid, len);
        }
    }
    json_decref(o);
    cr_assert(out[0], "daemon %d answers ping", (int)pid);
}

/* The reply of worker `w` in the answers `o`, which must be ok. */
static json_t *reply_from(json_t *o, const char *w)
{
    json_t *v = json_object_get(o, w);
    cr_assert(json_is_true(json_object_get(v, "ok")), "%s answered ok: %s", w,
              json_string_value(json_object_get(v, "error")));
    return json_object_get(v, "reply");
}

typedef struct reserved_wait {
    const char *dir, *worker;
} reserved_wait;

static bool reserved_over_redis(void *ud)
{
    reserved_wait *w = ud;
    int code;
    json_t *o = betpipe_json(w->dir, &code, "inspect", "reserved", NULL, NULL, NULL);
    bool yes = code == 0 && json_array_size(reply_from(o, w->worker)) > 0;
    json_decref(o);
    return yes;
}

static bool array_has_string(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) {
            return true;
        }
    }
    return false;
}

Test(redis_daemons, inspect_reserved_scheduled_registered_conf_over_redis)
{
    enum { FAST = 10, AHEAD = 3 };
    char *h1 = host_dir("h1", NULL), *h3 = host_dir("h3", NULL);
    char w1[160], later[BP_JOB_ID_SIZE], slow[BP_JOB_ID_SIZE], ahead[AHEAD][BP_JOB_ID_SIZE];
    pid_t p1;
    app *a;
    json_t *o, *v;
    int code;
    line_wait started;
    reserved_wait rw;
    start_redis(NULL);
    p1 = start_daemon(h1, "default=1");
    a = bpt_app_open(h1);
    worker_of(h3, p1, w1, sizeof w1);

    /* asked from a host without a daemon, answered by the daemon of h1 */
    o = betpipe_json(h3, &code, "inspect", "registered", NULL, NULL, NULL);
    cr_assert_eq(code, 0);
    v = reply_from(o, w1);
    cr_assert(array_has_string(v, "test.record") && array_has_string(v, "sys.echo"),
              "registered lists the daemon's job types");
    json_decref(o);
    o = betpipe_json(h3, &code, "inspect", "conf", NULL, NULL, NULL);
    cr_assert_eq(code, 0);
    cr_assert_str_eq(json_string_value(json_object_get(reply_from(o, w1), "data_dir")), h1,
                     "the daemon's own configuration");
    json_decref(o);

    /* scheduled: read from the shared broker by the asking host */
    {
        bp_enqueue_opts eta = {.struct_size = sizeof eta, .eta_ms = util_now_ms() + 3600000};
        bpt_result r;
        enqueue_record(a, 0, &eta, later);
        o = betpipe_json(h3, &code, "inspect", "scheduled", NULL, NULL, NULL);
        cr_assert_eq(code, 0);
        cr_assert_eq(json_array_size(o), 1);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(o, 0), "id")), later);
        json_decref(o);
        r = bpt_betpipe(h3, "inspect", "scheduled", "--destination", w1, NULL);
        cr_assert_eq(r.exit_code, 2, "--destination is refused, not ignored: %s", r.err);
        bpt_result_free(&r);
    }

    /* reserved: jobs leased ahead while a slow one holds the only thread */
    for (int i = 0; i < FAST; i++) {
        char id[BP_JOB_ID_SIZE];
        job *j;
        enqueue_record(a, 0, NULL, id);
        j = bpt_wait_final(a, id, 10000);
        cr_assert(j && j->state == JOB_SUCCESS);
        job_free(j);
    }
    enqueue_record(a, 2000, NULL, slow);
    started = (line_wait){"start", slow, 0, 1};
    cr_assert(bpt_wait_for(lines_reached, &started, 10000), "the slow job started");
    for (int i = 0; i < AHEAD; i++) {
        enqueue_record(a, 0, NULL, ahead[i]);
    }
    rw = (reserved_wait){h3, w1};
    cr_assert(bpt_wait_for(reserved_over_redis, &rw, 10000), "inspect reserved shows jobs");
    o = betpipe_json(h3, &code, "inspect", "reserved", NULL, NULL, NULL);
    {
        size_t i;
        json_array_foreach(reply_from(o, w1), i, v)
        {
            const char *rid = json_string_value(json_object_get(v, "id"));
            bool known = false;
            for (int k = 0; k < AHEAD; k++) {
                known = known || (rid && strcmp(rid, ahead[k]) == 0);
            }
            cr_assert(known, "reserved %s is one of the jobs behind the slow one", rid);
        }
    }
    json_decref(o);

    /* pool-grow then pool-shrink over Redis */
    o = betpipe_json(h3, &code, "control", "pool-grow", "default", "2", NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(json_integer_value(json_object_get(reply_from(o, w1), "concurrency")), 3);
    json_decref(o);
    o = betpipe_json(h3, &code, "control", "pool-shrink", "default", "2", NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(json_integer_value(json_object_get(reply_from(o, w1), "concurrency")), 1);
    json_decref(o);
    for (int i = 0; i < AHEAD; i++) {
        job *j = bpt_wait_final(a, ahead[i], 10000);
        cr_assert(j && j->state == JOB_SUCCESS);
        job_free(j);
    }
    app_close(a);
    stop_daemon(p1);
    free(h1);
    free(h3);
}

Test(redis_daemons, consumers_added_and_cancelled_over_redis)
{
    enum { NEW = 5, AFTER = 10 };
    char *h1 = host_dir("h1", NULL), *h2 = host_dir("h2", NULL), *h3 = host_dir("h3", NULL);
    char w1[160], dest[200], ids[AFTER][BP_JOB_ID_SIZE];
    pid_t p1, p2;
    app *a;
    json_t *o, *v;
    int code;
    bp_enqueue_opts dq = {.struct_size = sizeof dq, .queue = "data_queue"};
    start_redis(NULL);
    p1 = start_daemon_on(h1, "default");
    p2 = start_daemon_on(h2, "default");
    a = bpt_app_open(h1);
    worker_of(h3, p1, w1, sizeof w1);
    snprintf(dest, sizeof dest, "--destination=%s", w1);

    /* add-consumer: daemon 1 starts a pool for a queue it did not serve, and runs its jobs */
    o = betpipe_json(h3, &code, "control", "add-consumer", "data_queue", dest, NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(json_object_size(o), 1);
    v = reply_from(o, w1);
    cr_assert(json_is_true(json_object_get(v, "added")));
    cr_assert_eq(json_integer_value(json_object_get(v, "concurrency")), 3, "configured: 3");
    json_decref(o);
    for (int i = 0; i < NEW; i++) {
        char id[BP_JOB_ID_SIZE];
        job *j;
        enqueue_record(a, 0, &dq, id);
        j = bpt_wait_final(a, id, 10000);
        cr_assert(j && j->state == JOB_SUCCESS, "data_queue job %d ran", i);
        job_free(j);
        cr_assert_eq(count_lines("start", id, p1), 1, "on daemon 1, the only one serving it");
    }

    /* cancel-consumer: daemon 1 stops taking default's jobs; daemon 2 gets every one of them,
     * woken by the enqueue. Were daemon 1 still taking the queue's wake-up marker, every other
     * job would wait for a reaper's backstop pass (2 s) instead. */
    o = betpipe_json(h3, &code, "control", "cancel-consumer", "default", dest, NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(json_integer_value(json_object_get(reply_from(o, w1), "concurrency")), 0);
    json_decref(o);
    o = betpipe_json(h3, &code, "inspect", "active_queues", dest, NULL, NULL);
    v = reply_from(o, w1);
    cr_assert_null(json_object_get(v, "default"), "default is no longer consumed by daemon 1");
    cr_assert_eq(json_integer_value(json_object_get(v, "data_queue")), 3);
    json_decref(o);
    {
        int64_t waited = 0;
        for (int i = 0; i < AFTER; i++) {
            job *j;
            enqueue_record(a, 0, NULL, ids[i]);
            j = bpt_wait_final(a, ids[i], 10000);
            cr_assert(j && j->state == JOB_SUCCESS, "default job %d ran (state %s)", i,
                      j ? job_state_name(j->state) : "none in time");
            waited += j->started_ms - j->created_ms;
            job_free(j);
            cr_assert_eq(count_lines("start", ids[i], p2), 1, "default job %d ran on daemon 2", i);
        }
        cr_assert_lt(waited, bpt_deadline_ms(1500),
                     "the %d jobs waited %lld ms in all: wake-ups were swallowed", AFTER,
                     (long long)waited);
    }

    /* every daemon answers with an error: exit 1 */
    o = betpipe_json(h3, &code, "control", "pool-grow", "maintenance_queue", "1", NULL);
    cr_assert_eq(code, 1, "exit %d when no daemon could do it", code);
    cr_assert_eq(json_object_size(o), 2);
    json_decref(o);
    app_close(a);
    stop_daemon(p1);
    stop_daemon(p2);
    free(h1);
    free(h2);
    free(h3);
}

Test(redis_daemons, inspect_and_control_round_trips_over_redis)
{
    char *h1 = host_dir("h1", NULL), *h2 = host_dir("h2", NULL), *h3 = host_dir("h3", NULL);
    pid_t p1, p2;
    json_t *o, *v;
    const char *wid, *w1 = NULL;
    char w1_id[160];
    int code;
    start_redis(NULL);
    p1 = start_daemon(h1, NULL);
    p2 = start_daemon(h2, NULL);
    /* From a third "host" with no daemon and no socket of theirs: Redis carries it. */
    o = betpipe_json(h3, &code, "inspect", "ping", NULL, NULL, NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(json_object_size(o), 2, "both daemons answered");
    json_object_foreach(o, wid, v)
    {
        char tag[32];
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "reply"), "ok")),
                         "pong");
        snprintf(tag, sizeof tag, ":%d:", (int)p1);
        if (strstr(wid, tag)) {
            w1 = wid;
            util_strlcpy(w1_id, wid, sizeof w1_id);
        }
    }
    cr_assert(w1, "daemon 1 is among them");
    json_decref(o);

    /* --destination: only that one acts and answers */
    o = betpipe_json(h3, &code, "control", "pool-grow", "default", "3", "--destination=");
    json_decref(o);
    {
        char dest[200];
        snprintf(dest, sizeof dest, "--destination=%s", w1_id);
        o = betpipe_json(h3, &code, "control", "pool-grow", "default", "2", dest);
        cr_assert_eq(code, 0);
        cr_assert_eq(json_object_size(o), 1, "one daemon answered");
        v = json_object_get(o, w1_id);
        cr_assert(json_is_true(json_object_get(v, "ok")), "its reply is ok");
        cr_assert_eq(
            json_integer_value(json_object_get(json_object_get(v, "reply"), "concurrency")),
            2 + 3 + 2, "default grew by 3 (everyone) then by 2 (daemon 1 only)");
        json_decref(o);
        o = betpipe_json(h3, &code, "inspect", "stats", dest, NULL, NULL);
        cr_assert_eq(code, 0);
        v = json_object_get(json_object_get(json_object_get(o, w1_id), "reply"), "queues");
        cr_assert_eq(
            json_integer_value(json_object_get(json_object_get(v, "default"), "concurrency")), 7);
        json_decref(o);
    }
    /* control rate-limit: stored once in the broker, every daemon reports it */
    o = betpipe_json(h3, &code, "control", "rate-limit", "test.record", "30/m", NULL);
    cr_assert_eq(code, 0);
    cr_assert_eq(json_object_size(o), 2);
    json_object_foreach(o, wid, v)
    {
        cr_assert_str_eq(
            json_string_value(json_object_get(
                json_object_get(json_object_get(v, "reply"), "rate_limits"), "test.record")),
            "30/m", "%s obeys the new limit", wid);
    }
    json_decref(o);
    /* shutdown over Redis */
    {
        char dest[200];
        int ec;
        snprintf(dest, sizeof dest, "--destination=%s", w1_id);
        o = betpipe_json(h3, &code, "control", "shutdown", dest, NULL, NULL);
        cr_assert_eq(code, 0);
        json_decref(o);
        ec = bpt_stop(p1, 0, 20000);
        cr_assert_eq(ec, 0, "daemon 1 shut down cleanly (%d)", ec);
        forget_daemon(p1);
    }
    o = betpipe_json(h3, &code, "inspect", "ping", NULL, NULL, NULL);
    cr_assert_eq(json_object_size(o), 1, "only daemon 2 is left");
    json_decref(o);
    stop_daemon(p2);
    o = betpipe_json(h3, &code, "inspect", "ping", "--timeout", "500ms", NULL);
    cr_assert_eq(code, 5, "nobody answers: exit code 5");
    json_decref(o);
    free(h1);
    free(h2);
    free(h3);
}
