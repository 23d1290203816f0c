/*
 * test_isolation.c - jobs in a process of their own, through the real daemon: a crash fails only
 * the run, the hard time limit kills, revoke --terminate kills, a plain revoke and the soft limit
 * still reach the job cooperatively, shutdown hands an isolated run back.
 */
#include <dirent.h>
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

/* The pids of the isolated children (__exec-job) whose parent is `daemon`; returns how many. */
static int children_of(pid_t daemon, pid_t *out, int cap)
{
    DIR *proc = opendir("/proc");
    struct dirent *e;
    int n = 0;
    cr_assert(proc);
    while ((e = readdir(proc)) && n < cap) {
        char path[300], buf[4096];
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        long ppid = 0;
        if (!f) {
            continue;
        }
        /* pid (comm) state ppid ...: comm may hold spaces, so read after the last ')' */
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *rp = strrchr(buf, ')');
        if (!rp || sscanf(rp + 1, " %*c %ld", &ppid) != 1 || ppid != (long)daemon) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        f = fopen(path, "r");
        if (!f) {
            continue;
        }
        len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* cmdline is NUL-separated: look for the argument itself */
        bool exec_job = false;
        for (size_t off = 0; off < len; off += strlen(buf + off) + 1) {
            exec_job = exec_job || strcmp(buf + off, "__exec-job") == 0;
        }
        if (exec_job) {
            out[n++] = (pid_t)pid;
        }
    }
    closedir(proc);
    return n;
}

/* Pipes the process holds other than its stdin and stdout. */
static int stray_pipes(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    cr_assert(d, "cannot read %s", dir);
    while ((e = readdir(d))) {
        char path[400], target[256];
        long fd = strtol(e->d_name, NULL, 10);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd <= 1) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t l = readlink(path, target, sizeof target - 1);
        if (l > 0) {
            target[l] = '\0';
            n += strncmp(target, "pipe:", 5) == 0;
        }
    }
    closedir(d);
    return n;
}

/* Two isolated runs side by side: neither child holds the other's pipes nor the daemon's (a child
 * holding its sibling's stdin open was a deadlock: each waited for an end of input the other
 * kept from it), and a kill -9 of the daemon takes its children with it (else an orphan keeps
 * running a job that is about to run again elsewhere). */
Test(isolation, children_hold_only_their_own_pipes_and_die_with_the_daemon)
{
    pid_t d = bpt_daemon_start(dd, "--concurrency", "default=2", NULL);
    app *a = bpt_app_open(dd);
    start_and_wait_running(a, "sys.sleep", "{\"seconds\": 30}");
    start_and_wait_running(a, "sys.sleep", "{\"seconds\": 30}");
    pid_t kids[8];
    int n = 0;
    int64_t end = bpt_now_ms() + bpt_deadline_ms(10000);
    while ((n = children_of(d, kids, 8)) < 2 && bpt_now_ms() < end) {
        util_sleep_ms(20);
    }
    cr_assert_eq(n, 2, "two isolated children run (found %d)", n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(stray_pipes(kids[i]), 0, "child %d holds pipes besides stdin and stdout",
                     (int)kids[i]);
    }
    cr_assert_eq(bpt_stop(d, SIGKILL, 5000), 128 + SIGKILL);
    end = bpt_now_ms() + bpt_deadline_ms(5000);
    for (int i = 0; i < n; i++) {
        while (kill(kids[i], 0) == 0 && bpt_now_ms() < end) {
            util_sleep_ms(20);
        }
        cr_assert(kill(kids[i], 0) != 0, "child %d outlived its daemon", (int)kids[i]);
    }
    app_close(a);
}
