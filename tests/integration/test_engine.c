/*
 * test_engine.c - the real daemon and CLI on a temporary instance with the real plugins:
 * round trips, delays, retries, expiry, revoke, purge, crash recovery after kill -9, two
 * daemons sharing one SQLite broker, per-queue concurrency, graceful shutdown, soft time limit,
 * dead-lettering, config reload.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <criterion/criterion.h>

#include "client.h"
#include "engine.h"
#include "util.h"

static char *dd;
static char record[1024];

static void setup(void)
{
    bpt_engine_env_setup();
    dd = bpt_tmpdir("engine");
    snprintf(record, sizeof record, "%s/record.txt", dd);
}

static void teardown(void)
{
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 120);

static void write_config(const char *text)
{
    bpt_write_in(dd, "betpipe.json", text);
}

static char *record_args(int sleep_ms)
{
    static char buf[1200];
    snprintf(buf, sizeof buf, "{\"file\": \"%s\", \"sleep_ms\": %d}", record, sleep_ms);
    return buf;
}

/* Wait for every job of `ids` to finish, each in SUCCESS. */
static void expect_all_succeed(app *a, char (*ids)[BP_JOB_ID_SIZE], int n, int64_t timeout_ms)
{
    for (int i = 0; i < n; i++) {
        job *j = bpt_wait_final(a, ids[i], timeout_ms);
        cr_assert(j && j->state == JOB_SUCCESS, "job %d (%s) did not succeed", i, ids[i]);
        job_free(j);
    }
}

/* The job record o finished at least min_ms after it was created (its retries waited for their
 * backoff). */
static void expect_finished_after(const json_t *o, int64_t min_ms)
{
    int64_t created = 0, finished = 0;
    util_parse_iso8601(json_string_value(json_object_get(o, "created")), &created, NULL);
    util_parse_iso8601(json_string_value(json_object_get(o, "finished")), &finished, NULL);
    cr_assert_geq(finished - created, min_ms, "retries waited for their backoff (%lld ms)",
                  (long long)(finished - created));
}

Test(engine, run_wait_inline_without_daemon)
{
    bpt_result r =
        bpt_betpipe(dd, "run", "sys.echo", "--args", "{\"hello\": \"world\"}", "--wait", NULL);
    cr_assert_eq(r.exit_code, 0, "stdout: %s\nstderr: %s", r.out, r.err);
    cr_assert(strstr(r.out, "SUCCESS"), "%s", r.out);
    cr_assert(strstr(r.out, "\"hello\": \"world\""), "%s", r.out);
    cr_assert(strstr(r.err, "running"), "says it runs the job itself: %s", r.err);
    bpt_result_free(&r);
}

Test(engine, backup_db_prints_success_with_path)
{
    bpt_result r = bpt_betpipe(dd, "run", "maint.backup_db", "--wait", NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    cr_assert(strstr(r.out, "SUCCESS"));
    char *p = strstr(r.out, "\"path\": \"");
    cr_assert(p, "%s", r.out);
    p += strlen("\"path\": \"");
    *strchr(p, '"') = '\0';
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "backup file %s exists", p);
    cr_assert(st.st_size > 0);
    bpt_result_free(&r);
}

static int count_backup_dir(const char *dir, int *out_db)
{
    int all = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    *out_db = 0;
    cr_assert(d, "%s exists", dir);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.') {
            continue;
        }
        all++;
        if (n > 3 && strcmp(de->d_name + n - 3, ".db") == 0) {
            (*out_db)++;
        }
    }
    closedir(d);
    return all;
}

/* Retention keeps the newest `keep`, and each backup is one self-contained file: verifying a copy
 * must not leave -wal / -shm files beside it that pile up run after run. */
Test(engine, backup_retention_keeps_the_newest_and_one_file_each)
{
    char dir[1200];
    int db = 0, all;
    snprintf(dir, sizeof dir, "%s/backups", dd);
    for (int i = 0; i < 4; i++) {
        bpt_result r = bpt_betpipe(dd, "run", "maint.backup_db", "--arg", "keep=2", "--wait", NULL);
        cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
        if (i == 3) {
            cr_assert(strstr(r.out, "betpipe-") && !strstr(r.out, "\"deleted\": []"),
                      "the oldest is deleted: %s", r.out);
        }
        bpt_result_free(&r);
    }
    all = count_backup_dir(dir, &db);
    cr_assert_eq(db, 2, "keep=2 leaves two backups, found %d", db);
    cr_assert_eq(all, 2, "nothing but the backups themselves, found %d files", all);
}

Test(engine, run_wait_through_daemon_and_task_shows_it)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    bpt_result r =
        bpt_betpipe(dd, "run", "sys.echo", "--arg", "n=7", "--wait", "--no-inline", "--json", NULL);
    json_t *o;
    char daemon_tag[32];
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    o = json_loads(r.out, 0, NULL);
    cr_assert(o, "json: %s", r.out);
    cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "SUCCESS");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "result"), "n")), 7);
    snprintf(daemon_tag, sizeof daemon_tag, ":%d:", (int)d);
    cr_assert(strstr(json_string_value(json_object_get(o, "worker")), daemon_tag),
              "run by the daemon: %s", json_string_value(json_object_get(o, "worker")));
    /* an idle daemon starts the job at once (woken, not polling): generous bound for CI */
    cr_assert_lt(json_integer_value(json_object_get(o, "wait_ms")), bpt_deadline_ms(1000));
    bpt_result t = bpt_betpipe(dd, "task", json_string_value(json_object_get(o, "id")), NULL);
    cr_assert_eq(t.exit_code, 0);
    cr_assert(strstr(t.out, "SUCCESS") && strstr(t.out, "sys.echo"), "%s", t.out);
    bpt_result_free(&t);
    json_decref(o);
    bpt_result_free(&r);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

Test(engine, countdown_is_honoured)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    app *a = bpt_app_open(dd);
    bp_enqueue_opts opts = {.struct_size = sizeof opts, .countdown_ms = 1000};
    char id[BP_JOB_ID_SIZE];
    json_t *args = json_object();
    bp_error err = {0};
    cr_assert_eq(client_enqueue(a, "sys.noop", args, &opts, NULL, id, &err), BP_OK, "%s", err.msg);
    job *j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_SUCCESS);
    int64_t delay = j->started_ms - j->created_ms;
    cr_assert(delay >= 1000, "started %lld ms after enqueue, before its countdown",
              (long long)delay);
    cr_assert(delay < 1000 + bpt_deadline_ms(1000),
              "started %lld ms after enqueue: more than 1 s "
              "late",
              (long long)delay);
    job_free(j);
    json_decref(args);
    app_close(a);
    bpt_stop(d, SIGTERM, 10000);
}

Test(engine, retries_with_backoff_then_success)
{
    write_config("{\"retry\": {\"interval_start\": 0.2, \"interval_step\": 0.2, "
                 "\"jitter\": false}}");
    bpt_result r =
        bpt_betpipe(dd, "run", "test.flaky", "--arg", "fail_times=2", "--wait", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    json_t *o = json_loads(r.out, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "SUCCESS");
    cr_assert_eq(json_integer_value(json_object_get(o, "attempts")), 3);
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(o, "result"), "succeeded_on_attempt")),
        3);
    /* backoff 0.2 s then 0.4 s: the job cannot finish sooner than 0.6 s after it was created */
    expect_finished_after(o, 600);
    json_decref(o);
    bpt_result_free(&r);
}

Test(engine, failure_after_max_retries_with_error_text)
{
    write_config("{\"retry\": {\"interval_start\": 0.05, \"interval_step\": 0.05}}");
    bpt_result r = bpt_betpipe(dd, "run", "test.flaky", "--arg", "fail_times=10", "--max-retries",
                               "2", "--wait", NULL);
    cr_assert_eq(r.exit_code, 1, "%s %s", r.out, r.err);
    cr_assert(strstr(r.out, "FAILURE"), "%s", r.out);
    cr_assert(strstr(r.out, "flaky failure on attempt 3"), "%s", r.out);
    cr_assert(strstr(r.out, "gave up after 3 attempts"), "%s", r.out);
    bpt_result_free(&r);
    /* a non-retryable error fails at once */
    r = bpt_betpipe(dd, "run", "test.fail", "--arg", "message=bad league code", "--wait", NULL);
    cr_assert_eq(r.exit_code, 1);
    cr_assert(strstr(r.out, "bad league code") && strstr(r.out, "(attempts: 1)"), "%s", r.out);
    bpt_result_free(&r);
}

Test(engine, expires_gives_expired_and_never_runs)
{
    app *a = bpt_app_open(dd);
    bp_enqueue_opts opts = {.struct_size = sizeof opts, .expires_ms = util_now_ms() + 300};
    char id[BP_JOB_ID_SIZE];
    json_t *args = json_loads(record_args(0), 0, NULL);
    cr_assert_eq(client_enqueue(a, "test.record", args, &opts, NULL, id, NULL), BP_OK);
    util_sleep_ms(500);
    pid_t d = bpt_daemon_start(dd, NULL);
    job *j = bpt_wait_final(a, id, 10000);
    cr_assert(j, "job never reached a final state");
    cr_assert_eq(j->state, JOB_EXPIRED, "state %s", job_state_name(j->state));
    cr_assert_eq(bpt_count_lines(record, "start", id), 0, "an expired job must not run");
    job_free(j);
    json_decref(args);
    app_close(a);
    bpt_stop(d, SIGTERM, 10000);
}

Test(engine, revoked_queued_job_never_runs)
{
    app *a = bpt_app_open(dd);
    char revoked[BP_JOB_ID_SIZE], other[BP_JOB_ID_SIZE];
    bpt_enqueue(a, "test.record", record_args(0), revoked);
    bpt_result r = bpt_betpipe(dd, "revoke", revoked, NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "revoked"));
    bpt_result_free(&r);
    bpt_enqueue(a, "test.record", record_args(0), other);
    pid_t d = bpt_daemon_start(dd, NULL);
    job *j = bpt_wait_final(a, other, 10000);
    cr_assert(j && j->state == JOB_SUCCESS, "the job behind it ran");
    job_free(j);
    cr_assert_eq(bpt_count_lines(record, "start", revoked), 0, "the revoked job ran");
    cr_assert_eq(client_get(a, revoked, &j, NULL), BP_OK);
    cr_assert_eq(j->state, JOB_REVOKED);
    job_free(j);
    /* it is in the permanent history too */
    cr_assert_eq(store_history_get(a->store, revoked, &j, NULL), BP_OK);
    cr_assert_eq(j->state, JOB_REVOKED);
    job_free(j);
    app_close(a);
    bpt_stop(d, SIGTERM, 10000);
}

Test(engine, purge_removes_waiting_jobs)
{
    app *a = bpt_app_open(dd);
    char id[BP_JOB_ID_SIZE];
    for (int i = 0; i < 5; i++) {
        bpt_enqueue(a, "sys.noop", NULL, id);
    }
    bpt_result r = bpt_betpipe(dd, "purge", "default", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "purged 5"), "%s", r.out);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "status", "--json", NULL);
    json_t *o = json_loads(r.out, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(o, "queues"), "default"), "waiting")),
                 0);
    json_decref(o);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "purge", "no_such_queue", NULL);
    cr_assert_eq(r.exit_code, 5);
    cr_assert(strstr(r.err, "unknown queue 'no_such_queue'"), "%s", r.err);
    bpt_result_free(&r);
    app_close(a);
}

Test(engine, kill9_mid_job_then_restart_runs_it_again)
{
    app *a = bpt_app_open(dd);
    char id[BP_JOB_ID_SIZE];
    pid_t d = bpt_daemon_start(dd, NULL);
    bpt_enqueue(a, "test.record", record_args(1500), id);
    int64_t end = bpt_now_ms() + bpt_deadline_ms(10000);
    while (bpt_count_lines(record, "start", id) < 1 && bpt_now_ms() < end) {
        util_sleep_ms(10);
    }
    cr_assert_eq(bpt_count_lines(record, "start", id), 1, "job started");
    kill(d, SIGKILL);
    bpt_stop(d, SIGKILL, 5000);
    cr_assert_eq(bpt_count_lines(record, "end", id), 0, "killed before it finished");
    d = bpt_daemon_start(dd, NULL);
    job *j = bpt_wait_final(a, id, 20000);
    cr_assert(j, "job lost after kill -9");
    cr_assert_eq(j->state, JOB_SUCCESS);
    cr_assert_eq(j->crashes, 1, "one crash recorded");
    cr_assert_eq(bpt_count_lines(record, "start", id), 2, "ran again after the restart");
    cr_assert_eq(bpt_count_lines(record, "end", id), 1);
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

Test(engine, two_daemons_run_every_job_exactly_once)
{
    app *a = bpt_app_open(dd);
    enum { N = 400 };
    static char ids[N][BP_JOB_ID_SIZE];
    pid_t d1 = bpt_daemon_start(dd, "--concurrency", "default=3", NULL);
    pid_t d2 = bpt_daemon_start(dd, "--concurrency", "default=3", NULL);
    for (int i = 0; i < N; i++) {
        bpt_enqueue(a, "test.record", record_args(1), ids[i]);
    }
    expect_all_succeed(a, ids, N, 30000);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(bpt_count_lines(record, "start", ids[i]), 1, "job %d started %d times", i,
                     bpt_count_lines(record, "start", ids[i]));
    }
    /* both daemons took part */
    char tag1[32], tag2[32];
    snprintf(tag1, sizeof tag1, " %d ", (int)d1);
    snprintf(tag2, sizeof tag2, " %d ", (int)d2);
    char *text = bpt_slurp(record);
    cr_assert(strstr(text, tag1) && strstr(text, tag2), "both daemons ran jobs");
    free(text);
    app_close(a);
    cr_assert_eq(bpt_stop(d1, SIGTERM, 10000), 0);
    cr_assert_eq(bpt_stop(d2, SIGTERM, 10000), 0);
}

/* Max number of jobs of `queue` running at once, from the record file's start/end lines. */
static int max_overlap(const char *queue)
{
    char *text = bpt_slurp(record), *save = NULL;
    int cur = 0, best = 0;
    /* lines are appended in real time order: a running count is the overlap */
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!util_str_ends_with(line, queue)) {
            continue;
        }
        if (strncmp(line, "start", 5) == 0) {
            cur++;
        } else if (strncmp(line, "end", 3) == 0) {
            cur--;
        }
        if (cur > best) {
            best = cur;
        }
    }
    free(text);
    return best;
}

Test(engine, per_queue_concurrency_never_exceeded)
{
    app *a = bpt_app_open(dd);
    enum { N = 24 };
    char ids[2 * N][BP_JOB_ID_SIZE];
    pid_t d = bpt_daemon_start(dd, "--concurrency", "default=2,data_queue=3", NULL);
    for (int i = 0; i < N; i++) {
        bp_enqueue_opts o = {.struct_size = sizeof o, .queue = "data_queue"};
        json_t *args = json_loads(record_args(40), 0, NULL);
        bpt_enqueue(a, "test.record", record_args(40), ids[i]);
        cr_assert_eq(client_enqueue(a, "test.record", args, &o, NULL, ids[N + i], NULL), BP_OK);
        json_decref(args);
    }
    expect_all_succeed(a, ids, 2 * N, 30000);
    cr_assert_eq(max_overlap("default"), 2, "default ran %d at once", max_overlap("default"));
    cr_assert_eq(max_overlap("data_queue"), 3, "data_queue ran %d at once",
                 max_overlap("data_queue"));
    app_close(a);
    bpt_stop(d, SIGTERM, 10000);
}

Test(engine, graceful_shutdown_lets_running_jobs_finish)
{
    app *a = bpt_app_open(dd);
    char running[BP_JOB_ID_SIZE], queued[BP_JOB_ID_SIZE];
    pid_t d = bpt_daemon_start(dd, "--concurrency", "default=1", NULL);
    bpt_enqueue(a, "test.record", record_args(1000), running);
    bpt_enqueue(a, "test.record", record_args(0), queued);
    int64_t end = bpt_now_ms() + bpt_deadline_ms(10000);
    while (bpt_count_lines(record, "start", running) < 1 && bpt_now_ms() < end) {
        util_sleep_ms(5);
    }
    cr_assert_eq(bpt_stop(d, SIGTERM, 20000), 0, "clean exit");
    cr_assert_eq(bpt_count_lines(record, "end", running), 1, "the running job finished");
    job *j = NULL;
    cr_assert_eq(client_get(a, running, &j, NULL), BP_OK);
    cr_assert_eq(j->state, JOB_SUCCESS);
    job_free(j);
    cr_assert_eq(client_get(a, queued, &j, NULL), BP_OK);
    cr_assert_eq(j->state, JOB_PENDING, "the waiting job stays queued");
    cr_assert_eq(bpt_count_lines(record, "start", queued), 0);
    job_free(j);
    app_close(a);
}

Test(engine, soft_time_limit_stops_cooperative_job)
{
    bpt_result r = bpt_betpipe(dd, "run", "test.hang", "--arg", "seconds=30", "--wait", NULL);
    cr_assert_eq(r.exit_code, 1, "%s %s", r.out, r.err);
    cr_assert(strstr(r.out, "FAILURE") && strstr(r.out, "soft time limit exceeded (1.0 s)"), "%s",
              r.out);
    bpt_result_free(&r);
}

Test(engine, crashing_job_goes_dead_after_max_crashes)
{
    app *a;
    char id[BP_JOB_ID_SIZE];
    write_config("{\"broker\": {\"max_crashes\": 2}}");
    a = bpt_app_open(dd);
    bpt_enqueue(a, "test.crash", NULL, id);
    /* Each daemon takes the job and dies of SIGSEGV; the next one counts the crash and runs
     * it again, until the count reaches max_crashes and the job is DEAD. */
    job *j = NULL;
    for (int round = 0; round < 5 && !j; round++) {
        char log[1024];
        const char *argv[] = {"betpipe", "--data-dir", dd, "daemon", NULL};
        pid_t d;
        int code = 0;
        /* Under ASan the crash is expected: let the plain signal kill the daemon instead of a
         * sanitizer report (test.sh fails on any report). */
        char asan[2048];
        const char *asan_now = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%shandle_segv=0", asan_now ? asan_now : "",
                 asan_now && *asan_now ? ":" : "");
        const char *env[] = {asan, NULL};
        snprintf(log, sizeof log, "%s/daemon.log", dd);
        d = bpt_spawn(argv, env, log);
        int64_t end = bpt_now_ms() + bpt_deadline_ms(15000);
        while (bpt_now_ms() < end) {
            job *cur = NULL;
            if (bpt_exited(d, &code)) {
                /* SIGSEGV, or SIGABRT when a sanitizer catches it first */
                cr_assert(code == 128 + SIGSEGV || code == 128 + SIGABRT,
                          "the daemon died of the crashing job (exit %d)", code);
                break;
            }
            cr_assert_eq(client_get(a, id, &cur, NULL), BP_OK);
            if (cur->state == JOB_DEAD) {
                j = cur;
                break;
            }
            job_free(cur);
            util_sleep_ms(20);
        }
        if (!bpt_exited(d, &code)) {
            cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
        }
    }
    cr_assert(j, "job never final");
    cr_assert_eq(j->state, JOB_DEAD, "state %s", job_state_name(j->state));
    cr_assert_eq(j->crashes, 2);
    cr_assert(strstr(j->error, "died 2 times"), "%s", j->error);
    job_free(j);
    app_close(a);
}

Test(engine, sighup_reloads_concurrency)
{
    char log[1024];
    write_config("{\"queues\": {\"default\": {\"concurrency\": 1}}}");
    pid_t d = bpt_daemon_start(dd, NULL);
    write_config("{\"queues\": {\"default\": {\"concurrency\": 4}}}");
    kill(d, SIGHUP);
    snprintf(log, sizeof log, "%s/daemon.log", dd);
    int64_t end = bpt_now_ms() + bpt_deadline_ms(5000);
    char *text = NULL;
    while (bpt_now_ms() < end) {
        free(text);
        text = bpt_slurp(log);
        if (text && strstr(text, "queue default concurrency 1 -> 4")) {
            break;
        }
        util_sleep_ms(20);
    }
    cr_assert(text && strstr(text, "queue default concurrency 1 -> 4"), "%s", text);
    free(text);
    /* ... and four jobs now run at once */
    {
        app *a = bpt_app_open(dd);
        char ids[8][BP_JOB_ID_SIZE];
        for (int i = 0; i < 8; i++) {
            bpt_enqueue(a, "test.record", record_args(250), ids[i]);
        }
        expect_all_succeed(a, ids, 8, 20000);
        cr_assert_eq(max_overlap("default"), 4, "default ran %d at once after the reload",
                     max_overlap("default"));
        app_close(a);
    }
    /* a broken file on reload keeps the running config */
    write_config("{\"queues\": {\"default\": {\"concurency\": 2}}}");
    kill(d, SIGHUP);
    util_sleep_ms(300);
    text = bpt_slurp(log);
    cr_assert(strstr(text, "config not reloaded"), "%s", text);
    free(text);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

/* `daemon --queues` serves only the queues named (with --concurrency for them); the others wait
 * for a daemon that serves them. */
Test(engine, queues_option_serves_only_those_queues)
{
    app *a = bpt_app_open(dd);
    bp_enqueue_opts o = {.struct_size = sizeof o, .queue = "data_queue"};
    char other[BP_JOB_ID_SIZE], data[3][BP_JOB_ID_SIZE];
    pid_t d = bpt_daemon_start(dd, "--queues", "data_queue", "--concurrency", "data_queue=1", NULL);
    bpt_enqueue(a, "test.record", record_args(0), other);
    for (int i = 0; i < 3; i++) {
        json_t *args = json_loads(record_args(60), 0, NULL);
        cr_assert_eq(client_enqueue(a, "test.record", args, &o, NULL, data[i], NULL), BP_OK);
        json_decref(args);
    }
    expect_all_succeed(a, data, 3, 20000);
    cr_assert_eq(max_overlap("data_queue"), 1, "data_queue=1 ran %d at once",
                 max_overlap("data_queue"));
    util_sleep_ms(300);
    job *j = NULL;
    cr_assert_eq(client_get(a, other, &j, NULL), BP_OK);
    cr_assert_eq(j->state, JOB_PENDING, "a queue the daemon does not serve is left alone (%s)",
                 job_state_name(j->state));
    job_free(j);
    bpt_result r = bpt_betpipe(dd, "status", NULL);
    cr_assert(strstr(r.out, "data_queue=1") && !strstr(r.out, "default=2"), "%s", r.out);
    bpt_result_free(&r);

    pid_t d2 = bpt_daemon_start(dd, "--queues", "default", NULL);
    j = bpt_wait_final(a, other, 20000);
    cr_assert(j && j->state == JOB_SUCCESS, "a daemon serving default runs it");
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
    cr_assert_eq(bpt_stop(d2, SIGTERM, 10000), 0);
}

/* On the daemon (not in the CLI): retries wait for their backoff and succeed, the soft time limit
 * stops a cooperative job. */
Test(engine, daemon_retries_and_soft_time_limit)
{
    write_config("{\"retry\": {\"interval_start\": 0.2, \"interval_step\": 0.2, "
                 "\"jitter\": false}}");
    pid_t d = bpt_daemon_start(dd, NULL);
    char tag[32];
    snprintf(tag, sizeof tag, ":%d:", (int)d);
    bpt_result r = bpt_betpipe(dd, "run", "test.flaky", "--arg", "fail_times=2", "--wait",
                               "--no-inline", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    json_t *o = json_loads(r.out, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "SUCCESS");
    cr_assert_eq(json_integer_value(json_object_get(o, "attempts")), 3);
    cr_assert(strstr(json_string_value(json_object_get(o, "worker")), tag), "run by the daemon");
    expect_finished_after(o, 600);
    json_decref(o);
    bpt_result_free(&r);

    r = bpt_betpipe(dd, "run", "test.hang", "--arg", "seconds=30", "--wait", "--no-inline", NULL);
    cr_assert_eq(r.exit_code, 1, "%s %s", r.out, r.err);
    cr_assert(strstr(r.out, "FAILURE") && strstr(r.out, "soft time limit exceeded (1.0 s)"), "%s",
              r.out);
    bpt_result_free(&r);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

static bool job_gone_from_broker(void *ud)
{
    const char *id = ud;
    bpt_result r = bpt_betpipe(dd, "jobs", "--json", NULL);
    bool gone = r.exit_code == 0 && !strstr(r.out, id);
    bpt_result_free(&r);
    return gone;
}

/* broker.result_expires: a finished record leaves the broker once it expires, and `task` still
 * answers from the permanent history. */
Test(engine, finished_records_expire_from_the_broker_and_stay_in_history)
{
    write_config("{\"broker\": {\"result_expires\": \"1s\"}}");
    pid_t d = bpt_daemon_start(dd, NULL);
    bpt_result r =
        bpt_betpipe(dd, "run", "sys.echo", "--arg", "k=v", "--wait", "--no-inline", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    json_t *o = json_loads(r.out, 0, NULL);
    char id[BP_JOB_ID_SIZE];
    util_strlcpy(id, json_string_value(json_object_get(o, "id")), sizeof id);
    json_decref(o);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "jobs", "--json", NULL);
    cr_assert(strstr(r.out, id), "listed while fresh: %s", r.out);
    bpt_result_free(&r);
    cr_assert(bpt_wait_for(job_gone_from_broker, id, 15000), "the record never expired");
    r = bpt_betpipe(dd, "task", id, NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "SUCCESS") && strstr(r.out, "\"k\": \"v\""), "from history: %s", r.out);
    bpt_result_free(&r);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}
