/*
 * test_broker_sqlite.c - the embedded broker against the broker contract (broker_suite), plus
 * what only the embedded backend does: crash recovery by pid, and refusing a corrupt file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "broker_suite.h"
#include "support.h"
#include "util.h"

static char *tmp;

static void setup(void)
{
    tmp = bpt_tmpdir("broker");
}

static void teardown(void)
{
    bpt_rm_rf(tmp);
    free(tmp);
}

static broker *open_sqlite(const broker_options *o)
{
    broker *b = NULL;
    bp_error err = {0};
    char path[512];
    if (!tmp) {
        setup();
    }
    snprintf(path, sizeof path, "%s/broker.db", tmp);
    int rc = broker_sqlite_open(path, tmp, o, &b, &err);
    cr_assert_eq(rc, BP_OK, "open: %s", err.msg);
    return b;
}

static void close_sqlite(broker *b)
{
    broker_destroy(b);
}

TestSuite(sqlite, .init = setup, .fini = teardown);

BSUITE_TESTS(sqlite, open_sqlite, close_sqlite)

Test(sqlite, dead_pid_reclaimed_at_once)
{
    broker_options o;
    broker *b;
    job *j = bsuite_job("q_pid", 1);
    job **got = NULL;
    size_t n = 0;
    json_t *revoked = NULL, *queues = json_object();
    bp_error err = {0};
    broker_reap_report rep = {0};
    char host[256];
    pid_t child = fork();
    if (child == 0) {
        _exit(0);
    }
    waitpid(child, NULL, 0); /* `child` is now a pid that no process has */
    gethostname(host, sizeof host);
    broker_options_default(&o);
    o.lease_ms = 3600 * 1000;
    o.worker_timeout_ms = 3600 * 1000;
    b = open_sqlite(&o);
    broker_worker_info wi = {.id = "dead-worker",
                             .host = host,
                             .pid = (int)child,
                             .queues = queues,
                             .started_ms = util_now_ms()};
    int status;
    cr_assert_eq(b->ops->enqueue(b, &j, 1, &status, &err), BP_OK);
    cr_assert_eq(b->ops->heartbeat(b, &wi, NULL, NULL, &revoked, &err), BP_OK, "%s", err.msg);
    json_decref(revoked);
    broker_want want = {"q_pid", 1};
    cr_assert_eq(b->ops->exchange(b, wi.id, NULL, 0, &want, 1, &got, &n, &err), BP_OK);
    cr_assert_eq(n, 1);
    job_free(got[0]);
    free(got);
    cr_assert_eq(b->ops->reap(b, &rep, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(rep.workers_lost, 1, "a worker whose pid is gone is lost at once");
    cr_assert_eq(rep.requeued, 1);
    job *cur = NULL;
    cr_assert_eq(b->ops->get(b, j->id, &cur, &err), BP_OK);
    cr_assert_eq(cur->state, JOB_PENDING);
    cr_assert_eq(cur->crashes, 1);
    job_free(cur);
    job_free(j);
    json_decref(queues);
    broker_destroy(b);
}

Test(sqlite, corrupt_file_refused_untouched)
{
    char path[512];
    broker *b = NULL;
    bp_error err = {0};
    broker_options o;
    const char garbage[] = "this is not a database, it is a shopping list: eggs, milk\n";
    snprintf(path, sizeof path, "%s/broker.db", tmp);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 200; i++) {
        fwrite(garbage, 1, sizeof garbage - 1, f);
    }
    fclose(f);
    char *before = bpt_slurp(path);
    broker_options_default(&o);
    int rc = broker_sqlite_open(path, tmp, &o, &b, &err);
    cr_assert_neq(rc, BP_OK);
    cr_assert(strstr(err.msg, "not a usable broker database"), "message: %s", err.msg);
    cr_assert(strstr(err.msg, path), "the message names the file: %s", err.msg);
    char *after = bpt_slurp(path);
    cr_assert_str_eq(before, after, "the file was modified");
    free(before);
    free(after);
}
