/*
 * test_control.c - inspect / control / cache against a real daemon through its control socket.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

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
