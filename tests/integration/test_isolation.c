/*
 * test_isolation.c - jobs in a process of their own, through the real daemon: a crash fails only
 * the run, the hard time limit kills, revoke --terminate kills, a plain revoke and the soft limit
 * still reach the job cooperatively, shutdown hands an isolated run back.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "client.h"
#include "engine.h"
#include "util.h"

static char *dd;

static void setup(void)
{
    char path[1024];
    FILE *f;
    bpt_engine_env_setup();
    {
        /* Under ASan the crash test's SIGSEGV is expected: let the plain signal kill the child
         * (daemons and their children inherit this) rather than a sanitizer report. */
        char asan[2048];
        const char *now = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%shandle_segv=0", now ? now : "", now && *now ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
    }
    dd = bpt_tmpdir("isolation");
    snprintf(path, sizeof path, "%s/betpipe.json", dd);
    f = fopen(path, "w");
    cr_assert(f);
    fputs("{\"jobs\": {\"test.crash\": {\"isolate\": true},"
          " \"test.hang\": {\"isolate\": true, \"time_limit\": \"3s\"},"
          " \"sys.sleep\": {\"isolate\": true}}}",
          f);
    fclose(f);
}

static void teardown(void)
{
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(isolation, .init = setup, .fini = teardown, .timeout = 90);

static job *run_and_wait(app *a, const char *type, const char *args)
{
    char id[BP_JOB_ID_SIZE];
    bpt_enqueue(a, type, args, id);
    job *j = bpt_wait_final(a, id, 20000);
    cr_assert(j, "%s never finished", type);
    return j;
}

Test(isolation, crash_fails_only_the_run)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    app *a = bpt_app_open(dd);
    job *j = run_and_wait(a, "test.crash", NULL);
    cr_assert_eq(j->state, JOB_FAILURE);
    cr_assert(strstr(j->error, "died of SIGSEGV"), "%s", j->error);
    cr_assert_eq(j->crashes, 0, "the daemon did not die: no crash counted");
    job_free(j);
    cr_assert(!bpt_exited(d, NULL), "the daemon survived");
    j = run_and_wait(a, "sys.echo", "{\"after\": \"crash\"}");
    cr_assert_eq(j->state, JOB_SUCCESS, "and keeps working");
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

Test(isolation, hard_time_limit_kills)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    app *a = bpt_app_open(dd);
    job *j = run_and_wait(a, "test.hang", "{\"seconds\": 60, \"cooperative\": false}");
    cr_assert_eq(j->state, JOB_FAILURE);
    cr_assert(strstr(j->error, "hard time limit exceeded (3.0 s)"), "%s", j->error);
    cr_assert_lt(j->finished_ms - j->started_ms, bpt_deadline_ms(10000));
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

static char *start_and_wait_running(app *a, const char *type, const char *args)
{
    static char id[BP_JOB_ID_SIZE];
    bpt_enqueue(a, type, args, id);
    int64_t end = bpt_now_ms() + bpt_deadline_ms(10000);
    for (;;) {
        job *j = NULL;
        cr_assert_eq(client_get(a, id, &j, NULL), BP_OK);
        job_state st = j->state;
        job_free(j);
        if (st == JOB_STARTED) {
            break;
        }
        cr_assert(bpt_now_ms() < end, "job never started");
        util_sleep_ms(10);
    }
    util_sleep_ms(300); /* let the child start */
    return id;
}

Test(isolation, revoke_terminate_kills_and_plain_revoke_asks)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    app *a = bpt_app_open(dd);
    /* terminate: a job that never checks cancellation is killed */
    char *id = start_and_wait_running(a, "test.hang", "{\"seconds\": 60, \"cooperative\": false}");
    bpt_result r = bpt_betpipe(dd, "revoke", id, "--terminate", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    bpt_result_free(&r);
    job *j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_REVOKED, "state %s", j ? job_state_name(j->state) : "-");
    cr_assert(strstr(j->error, "terminated"), "%s", j->error);
    job_free(j);
    /* plain revoke: a cooperative job in its own process gets the request and stops itself */
    id = start_and_wait_running(a, "sys.sleep", "{\"seconds\": 60}");
    r = bpt_betpipe(dd, "revoke", id, NULL);
    cr_assert_eq(r.exit_code, 0);
    bpt_result_free(&r);
    j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_REVOKED);
    cr_assert(strstr(j->error, "revoked while running"), "%s", j->error);
    cr_assert(strstr(j->error, "interrupted"), "the job itself stopped: %s", j->error);
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

Test(isolation, soft_limit_and_progress_from_the_child)
{
    pid_t d = bpt_daemon_start(dd, NULL);
    app *a = bpt_app_open(dd);
    /* test.hang's soft limit is 1 s; cooperative, it stops itself inside its process */
    job *j = run_and_wait(a, "test.hang", "{\"seconds\": 60, \"cooperative\": true}");
    cr_assert_eq(j->state, JOB_FAILURE);
    cr_assert(strstr(j->error, "soft time limit exceeded (1.0 s)"), "%s", j->error);
    job_free(j);
    /* progress reported in the child reaches the broker through the parent's heartbeat */
    char *id = start_and_wait_running(a, "sys.sleep", "{\"seconds\": 2}");
    char copy[BP_JOB_ID_SIZE];
    util_strlcpy(copy, id, sizeof copy);
    bpt_result r = bpt_betpipe(dd, "inspect", "active", "--json", NULL);
    cr_assert(strstr(r.out, copy), "the isolated job is active: %s", r.out);
    cr_assert(strstr(r.out, "\"progress\": 0."), "with progress: %s", r.out);
    bpt_result_free(&r);
    j = bpt_wait_final(a, copy, 10000);
    cr_assert(j && j->state == JOB_SUCCESS);
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 10000), 0);
}

Test(isolation, shutdown_hands_an_isolated_run_back)
{
    pid_t d = bpt_daemon_start(dd, "--grace", "0.3", NULL);
    app *a = bpt_app_open(dd);
    char *id = start_and_wait_running(a, "sys.sleep", "{\"seconds\": 60}");
    char copy[BP_JOB_ID_SIZE];
    util_strlcpy(copy, id, sizeof copy);
    cr_assert_eq(bpt_stop(d, SIGTERM, 15000), 0);
    job *j = NULL;
    cr_assert_eq(client_get(a, copy, &j, NULL), BP_OK);
    cr_assert_eq(j->state, JOB_PENDING, "handed back, state %s", job_state_name(j->state));
    cr_assert_eq(j->attempts, 0);
    job_free(j);
    app_close(a);
}
