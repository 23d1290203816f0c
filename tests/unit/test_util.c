/*
 * test_util.c - time parsing and formatting, durations, UUIDv7 ordering, retry backoff.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "job.h"
#include "util.h"

Test(util, iso8601_round_trip)
{
    int64_t ms = 0;
    char buf[40];
    /* 2024-02-29T23:59:59.250Z = 1709251199250 (date -u -d '2024-02-29 23:59:59.250' +%s%3N) */
    cr_assert_eq(util_parse_iso8601("2024-02-29T23:59:59.250Z", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 1709251199250LL);
    util_format_iso8601(ms, buf, sizeof buf);
    cr_assert_str_eq(buf, "2024-02-29T23:59:59.250Z");
    cr_assert_eq(util_parse_iso8601("2024-02-29", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 1709164800000LL);
    cr_assert_eq(util_parse_iso8601("2024-03-31T02:30:00+01:00", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 1711848600000LL);
    cr_assert_eq(util_parse_iso8601("1969-12-31T23:59:59Z", &ms, NULL), BP_OK);
    cr_assert_eq(ms, -1000);
    util_format_iso8601(-1, buf, sizeof buf);
    cr_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
}

Test(util, iso8601_rejects_bad_input)
{
    int64_t ms;
    bp_error err = {0};
    const char *bad[] = {"",
                         "2024-02-30",
                         "2023-02-29",
                         "2024-13-01",
                         "tomorrow",
                         "2024-01-01T25:00",
                         "2024-01-01T10:00:00Zjunk",
                         "2024-1-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(util_parse_iso8601(bad[i], &ms, &err), BP_E_INVAL, "accepted '%s'", bad[i]);
        cr_assert(strstr(err.msg, bad[i]) != NULL, "message should name the input: %s", err.msg);
    }
}

Test(util, durations)
{
    int64_t ms;
    cr_assert_eq(util_parse_duration_ms("90", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 90000);
    cr_assert_eq(util_parse_duration_ms("1.5m", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 90000);
    cr_assert_eq(util_parse_duration_ms("250ms", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 250);
    cr_assert_eq(util_parse_duration_ms("2h", &ms, NULL), BP_OK);
    cr_assert_eq(ms, 7200000);
    cr_assert_eq(util_parse_duration_ms("-1", &ms, NULL), BP_E_INVAL);
    cr_assert_eq(util_parse_duration_ms("5 weeks", &ms, NULL), BP_E_INVAL);
}

Test(util, uuid7_sorts_in_creation_order)
{
    char prev[37], cur[37];
    util_uuid7(prev);
    cr_assert_eq(strlen(prev), 36);
    cr_assert_eq(prev[14], '7', "version nibble");
    for (int i = 0; i < 10000; i++) {
        util_uuid7(cur);
        cr_assert(strcmp(prev, cur) < 0, "%s !< %s", prev, cur);
        memcpy(prev, cur, sizeof cur);
    }
}

Test(util, strict_integers)
{
    int64_t v;
    bp_error err = {0};
    cr_assert_eq(util_parse_int64("42", 0, 100, "--priority", &v, &err), BP_OK);
    cr_assert_eq(v, 42);
    cr_assert_eq(util_parse_int64("4x", 0, 100, "--priority", &v, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "--priority"), "%s", err.msg);
    cr_assert_eq(util_parse_int64("101", 0, 100, "--priority", &v, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "out of range"), "%s", err.msg);
}

Test(job, retry_backoff_grows_and_caps)
{
    retry_policy p = {.interval_start_ms = 1000,
                      .interval_step_ms = 1000,
                      .interval_max_ms = 5000,
                      .jitter = false};
    cr_assert_eq(job_retry_delay_ms(&p, 1), 1000);
    cr_assert_eq(job_retry_delay_ms(&p, 2), 2000);
    cr_assert_eq(job_retry_delay_ms(&p, 3), 4000);
    cr_assert_eq(job_retry_delay_ms(&p, 4), 5000, "capped at interval_max");
    cr_assert_eq(job_retry_delay_ms(&p, 200), 5000, "no overflow for large n");
    p.jitter = true;
    for (int i = 0; i < 1000; i++) {
        int64_t d = job_retry_delay_ms(&p, 3);
        cr_assert(d >= 2000 && d <= 4000, "equal jitter keeps [delay/2, delay]: %lld",
                  (long long)d);
    }
}

Test(job, json_round_trip)
{
    job *j = job_new(), *back = NULL;
    json_t *o;
    util_uuid7(j->id);
    job_set_str(&j->type, "ml.train");
    job_set_str(&j->queue, "ml_queue");
    job_set_str(&j->args, "{\"league\":\"E0\"}");
    job_set_str(&j->result, "{\"rps\":0.198}");
    j->state = JOB_SUCCESS;
    j->attempts = 2;
    j->started_ms = j->created_ms + 5;
    j->finished_ms = j->created_ms + 50;
    o = job_to_json(j);
    cr_assert_eq(json_integer_value(json_object_get(o, "runtime_ms")), 45);
    cr_assert_eq(job_from_json(o, &back, NULL), BP_OK);
    cr_assert_str_eq(back->id, j->id);
    cr_assert_eq(back->state, JOB_SUCCESS);
    cr_assert_str_eq(back->args, "{\"league\":\"E0\"}");
    cr_assert_eq(back->finished_ms, j->finished_ms);
    json_decref(o);
    job_free(j);
    job_free(back);
}
