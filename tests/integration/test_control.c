/*
 * test_control.c - inspect / control / cache against a real daemon through its control socket.
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
static char record[1024];

static void setup(void)
{
    bpt_engine_env_setup();
    dd = bpt_tmpdir("control");
    snprintf(record, sizeof record, "%s/record.txt", dd);
}

static void teardown(void)
{
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 60);

static json_t *reply_of(bpt_result *r)
{
    json_t *o = json_loads(r->out, 0, NULL);
    const char *worker;
    json_t *v;
    cr_assert(o, "not JSON: %s %s", r->out, r->err);
    cr_assert_eq(json_object_size(o), 1, "one daemon answered");
    json_object_foreach(o, worker, v)
    {
        cr_assert(json_is_true(json_object_get(v, "ok")), "%s", r->out);
        json_t *reply = json_incref(json_object_get(v, "reply"));
        json_decref(o);
        return reply;
    }
    return NULL;
}

Test(control, inspect_control_and_cache_round_trips)
{
    pid_t d = bpt_daemon_start(dd, "--concurrency", "default=1", NULL);
    app *a = bpt_app_open(dd);
    char id[BP_JOB_ID_SIZE], args[1200];
    bpt_result r;
    json_t *reply;

    r = bpt_betpipe(dd, "inspect", "ping", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    reply = reply_of(&r);
    cr_assert_str_eq(json_string_value(json_object_get(reply, "ok")), "pong");
    json_decref(reply);
    bpt_result_free(&r);

    /* a running job shows in `inspect active` */
    snprintf(args, sizeof args, "{\"file\": \"%s\", \"sleep_ms\": 1500}", record);
    bpt_enqueue(a, "test.record", args, id);
    int64_t end = bpt_now_ms() + bpt_deadline_ms(5000);
    while (bpt_count_lines(record, "start", id) == 0 && bpt_now_ms() < end) {
        util_sleep_ms(10);
    }
    r = bpt_betpipe(dd, "inspect", "active", "--json", NULL);
    cr_assert_eq(r.exit_code, 0);
    reply = reply_of(&r);
    cr_assert_eq(json_array_size(reply), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(reply, 0), "id")), id);
    json_decref(reply);
    bpt_result_free(&r);

    /* pool-grow changes the live concurrency */
    r = bpt_betpipe(dd, "control", "pool-grow", "default", "2", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s %s", r.out, r.err);
    reply = reply_of(&r);
    cr_assert_eq(json_integer_value(json_object_get(reply, "concurrency")), 3);
    json_decref(reply);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "inspect", "active_queues", "--json", NULL);
    reply = reply_of(&r);
    cr_assert_eq(json_integer_value(json_object_get(reply, "default")), 3);
    json_decref(reply);
    bpt_result_free(&r);

    /* the in-memory cache lives in the daemon: the CLI asks it */
    r = bpt_betpipe(dd, "cache", "stats", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    reply = reply_of(&r);
    cr_assert_str_eq(json_string_value(json_object_get(reply, "backend")), "memory");
    cr_assert(json_object_get(json_object_get(reply, "types"), "odds"));
    json_decref(reply);
    bpt_result_free(&r);

    /* a destination that matches nobody gets no answer */
    r = bpt_betpipe(dd, "inspect", "ping", "--destination", "nobody:1:x", NULL);
    cr_assert_eq(r.exit_code, 5);
    bpt_result_free(&r);

    r = bpt_betpipe(dd, "control", "frobnicate", NULL);
    cr_assert_eq(r.exit_code, 2);
    bpt_result_free(&r);

    job *j = bpt_wait_final(a, id, 10000);
    cr_assert(j && j->state == JOB_SUCCESS);
    job_free(j);

    /* control shutdown stops the daemon gracefully */
    r = bpt_betpipe(dd, "control", "shutdown", NULL);
    cr_assert_eq(r.exit_code, 0);
    bpt_result_free(&r);
    int code = -1;
    end = bpt_now_ms() + bpt_deadline_ms(10000);
    while (!bpt_exited(d, &code) && bpt_now_ms() < end) {
        util_sleep_ms(20);
    }
    cr_assert_eq(code, 0, "daemon exit code %d", code);
    r = bpt_betpipe(dd, "inspect", "ping", NULL);
    cr_assert_eq(r.exit_code, 5, "nobody answers once it is gone");
    cr_assert(strstr(r.err, "no daemon answered"));
    bpt_result_free(&r);
    app_close(a);
}

/* `betpipe --data-dir dd a1 [a2 [a3 [a4]]] --json` (stops at the first NULL), where the one
 * daemon must answer ok: its reply (caller frees). */
static json_t *ask(const char *a1, const char *a2, const char *a3, const char *a4)
{
    const char *argv[10] = {"betpipe", "--data-dir", dd, a1};
    int n = 4;
    bpt_result r;
    json_t *reply;
    const char *more[] = {a2, a3, a4};
    for (size_t i = 0; i < sizeof more / sizeof more[0] && more[i]; i++) {
        argv[n++] = more[i];
    }
    argv[n++] = "--json";
    argv[n] = NULL;
    r = bpt_run(argv, NULL, NULL, 30000);
    cr_assert_eq(r.exit_code, 0, "%s %s: exit %d %s %s", a1, a2, r.exit_code, r.out, r.err);
    reply = reply_of(&r);
    bpt_result_free(&r);
    return reply;
}

static void enqueue_record(app *a, const char *queue, int sleep_ms, char *id_out)
{
    char args[1300];
    json_t *j;
    bp_enqueue_opts opts = {.struct_size = sizeof opts, .queue = queue};
    bp_error err = {0};
    snprintf(args, sizeof args, "{\"file\": \"%s\", \"sleep_ms\": %d}", record, sleep_ms);
    j = json_loads(args, 0, NULL);
    cr_assert_eq(client_enqueue(a, "test.record", j, &opts, NULL, id_out, &err), BP_OK,
                 "enqueue: %s", err.msg);
    json_decref(j);
}

static bool something_reserved(void *ud)
{
    json_t *reply = ask("inspect", "reserved", NULL, NULL);
    bool yes = json_array_size(reply) > 0;
    (void)ud;
    json_decref(reply);
    return yes;
}

typedef struct started_wait {
    const char *id;
} started_wait;

static bool has_started(void *ud)
{
    return bpt_count_lines(record, "start", ((started_wait *)ud)->id) > 0;
}

static job_state state_of(app *a, const char *id)
{
    job *j = NULL;
    job_state st;
    cr_assert_eq(client_get(a, id, &j, NULL), BP_OK);
    st = j->state;
    job_free(j);
    return st;
}

Test(control, inspect_and_consumers_on_the_local_socket)
{
    enum { FAST = 10, AHEAD = 3 };
    pid_t d = bpt_daemon_start(dd, "--queues", "default", "--concurrency", "default=1", NULL);
    app *a = bpt_app_open(dd);
    char slow[BP_JOB_ID_SIZE], ahead[AHEAD][BP_JOB_ID_SIZE], other[BP_JOB_ID_SIZE];
    char later[BP_JOB_ID_SIZE];
    json_t *reply;
    bpt_result r;
    started_wait sw;

    /* registered: the job types the daemon can run; conf: its effective configuration */
    reply = ask("inspect", "registered", NULL, NULL);
    {
        bool rec = false, echo = false;
        size_t i;
        json_t *v;
        json_array_foreach(reply, i, v)
        {
            rec = rec || strcmp(json_string_value(v), "test.record") == 0;
            echo = echo || strcmp(json_string_value(v), "sys.echo") == 0;
        }
        cr_assert(rec && echo, "registered lists the loaded job types");
    }
    json_decref(reply);
    reply = ask("inspect", "conf", NULL, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(reply, "data_dir")), dd);
    cr_assert(json_is_object(json_object_get(reply, "queues")), "conf has the queues");
    json_decref(reply);

    /* scheduled: from the broker, so --destination is refused rather than ignored */
    {
        bp_enqueue_opts o = {.struct_size = sizeof o, .eta_ms = util_now_ms() + 3600 * 1000};
        bp_error err = {0};
        json_t *args = json_object();
        cr_assert_eq(client_enqueue(a, "sys.echo", args, &o, NULL, later, &err), BP_OK, "%s",
                     err.msg);
        json_decref(args);
    }
    r = bpt_betpipe(dd, "inspect", "scheduled", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    reply = json_loads(r.out, 0, NULL);
    cr_assert_eq(json_array_size(reply), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(reply, 0), "id")), later);
    json_decref(reply);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "inspect", "scheduled", "--destination", "somebody:1:x", NULL);
    cr_assert_eq(r.exit_code, 2, "exit %d", r.exit_code);
    cr_assert(strstr(r.err, "--destination does not apply"), "%s", r.err);
    bpt_result_free(&r);

    /* fast jobs earn the queue its prefetch; a slow one then holds the only thread while the
     * next ones are leased ahead: `inspect reserved` shows them */
    for (int i = 0; i < FAST; i++) {
        char id[BP_JOB_ID_SIZE];
        enqueue_record(a, NULL, 0, id);
        job *j = bpt_wait_final(a, id, 10000);
        cr_assert(j && j->state == JOB_SUCCESS);
        job_free(j);
    }
    enqueue_record(a, NULL, 2000, slow);
    sw.id = slow;
    cr_assert(bpt_wait_for(has_started, &sw, 10000), "the slow job started");
    for (int i = 0; i < AHEAD; i++) {
        enqueue_record(a, NULL, 0, ahead[i]);
    }
    cr_assert(bpt_wait_for(something_reserved, NULL, 10000), "jobs leased ahead are reserved");

    /* cancel-consumer: the running job finishes, what was leased ahead goes back, nothing more
     * of the queue runs here */
    reply = ask("control", "cancel-consumer", "default", NULL);
    cr_assert_eq(json_integer_value(json_object_get(reply, "concurrency")), 0);
    json_decref(reply);
    reply = ask("inspect", "reserved", NULL, NULL);
    cr_assert_eq(json_array_size(reply), 0, "nothing stays reserved");
    json_decref(reply);
    reply = ask("inspect", "active_queues", NULL, NULL);
    cr_assert_null(json_object_get(reply, "default"), "default is no longer consumed");
    json_decref(reply);
    {
        job *j = bpt_wait_final(a, slow, 10000);
        cr_assert(j && j->state == JOB_SUCCESS, "the running job finished");
        job_free(j);
    }
    for (int i = 0; i < AHEAD; i++) {
        job *j = NULL;
        cr_assert_eq(client_get(a, ahead[i], &j, NULL), BP_OK);
        cr_assert_eq(j->state, JOB_PENDING, "job %d is %s", i, job_state_name(j->state));
        cr_assert_eq(j->attempts, 0, "handed back, the attempt not counted");
        job_free(j);
        cr_assert_eq(bpt_count_lines(record, "start", ahead[i]), 0);
    }

    /* add-consumer of a served queue sets it going again; of a queue the daemon did not serve,
     * starts a pool for it (the configured concurrency, 3 for data_queue) */
    reply = ask("control", "add-consumer", "default", "2");
    cr_assert_eq(json_integer_value(json_object_get(reply, "concurrency")), 2);
    json_decref(reply);
    for (int i = 0; i < AHEAD; i++) {
        job *j = bpt_wait_final(a, ahead[i], 10000);
        cr_assert(j && j->state == JOB_SUCCESS, "job %d runs once consumed again", i);
        job_free(j);
    }
    reply = ask("control", "pool-shrink", "default", "1");
    cr_assert_eq(json_integer_value(json_object_get(reply, "concurrency")), 1);
    json_decref(reply);
    enqueue_record(a, "data_queue", 0, other);
    reply = ask("control", "add-consumer", "data_queue", NULL);
    cr_assert(json_is_true(json_object_get(reply, "added")), "a queue new to the daemon");
    cr_assert_eq(json_integer_value(json_object_get(reply, "concurrency")), 3);
    json_decref(reply);
    {
        job *j = bpt_wait_final(a, other, 10000);
        cr_assert(j && j->state == JOB_SUCCESS, "the daemon runs the new queue's jobs");
        job_free(j);
    }
    reply = ask("inspect", "active_queues", NULL, NULL);
    cr_assert_eq(json_integer_value(json_object_get(reply, "default")), 1);
    cr_assert_eq(json_integer_value(json_object_get(reply, "data_queue")), 3);
    json_decref(reply);

    /* every daemon answered with an error: exit 1, the error shown */
    r = bpt_betpipe(dd, "control", "pool-grow", "maintenance_queue", "1", NULL);
    cr_assert_eq(r.exit_code, 1, "exit %d: %s", r.exit_code, r.out);
    cr_assert(strstr(r.out, "ERROR") && strstr(r.out, "maintenance_queue"), "%s", r.out);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "control", "add-consumer", "no_such_queue", "--json", NULL);
    cr_assert_eq(r.exit_code, 1, "exit %d: %s", r.exit_code, r.out);
    cr_assert(strstr(r.out, "unknown queue no_such_queue"), "%s", r.out);
    bpt_result_free(&r);

    cr_assert_eq(state_of(a, later), JOB_SCHEDULED);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 20000), 0);
}
