/*
 * test_cron.c - cron expressions: parsing and its error messages, next fire times in UTC and
 * across DST in several zones, year-long runs, a randomised comparison with a brute-force search,
 * and the plain-English descriptions.
 *
 * Where the expected values come from: the next_fire table is the output of
 * tests/unit/cron_oracle.py, an independent answer key written in python that uses python's
 * zoneinfo and a naive day-by-day, minute-by-minute search (run it to regenerate the rows); the
 * DST instants in it agree with `TZ=<zone> date -d @<seconds>` (see test_tz.c for the transitions
 * themselves). Counts in the year-long tests are calendar facts: 2024 has 366 days = 8784 hours.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cron.h"
#include "support.h"
#include "tz.h"
#include "util.h"

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    bp_error err = {0};
    cr_assert_eq(util_parse_iso8601(iso, &ms, &err), BP_OK, "%s", err.msg);
    return ms / 1000;
}

static const tz *zone(const char *name)
{
    const tz *z = NULL;
    bp_error err = {0};
    cr_assert_eq(tz_get(name, &z, &err), BP_OK, "%s", err.msg);
    return z;
}

static cron_expr parse_ok(const char *text)
{
    cron_expr e;
    bp_error err = {0};
    cr_assert_eq(cron_parse(text, &e, &err), BP_OK, "%s: %s", text, err.msg);
    return e;
}

static void iso(int64_t t, char *buf, size_t len)
{
    util_format_iso8601(t * 1000, buf, len);
}

/* ============================================================================================
 * Parsing
 * ========================================================================================== */

#define ALL_MIN  0x0FFFFFFFFFFFFFFFULL
#define ALL_HOUR 0xFFFFFFu
#define ALL_DOM  0xFFFFFFFEu
#define ALL_MON  0x1FFEu
#define ALL_DOW  0x7Fu

typedef struct mask_case {
    const char *text;
    uint64_t minutes;
    uint32_t hours, days;
    uint16_t months;
    uint8_t weekdays;
    bool dom_star, dow_star, real_time;
    const char *normalised;
} mask_case;

#define B(n) (1ULL << (n))

static const mask_case mask_cases[] = {
    {"*/15 * * * *", B(0) | B(15) | B(30) | B(45), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true,
     true, "*/15 * * * *"},
    {"5/15 3 * * *", B(5) | B(20) | B(35) | B(50), B(3), ALL_DOM, ALL_MON, ALL_DOW, true, true,
     false, "5/15 3 * * *"},
    {"1-30/5,59 1,13 1-7 JAN-MAR,dec mon-FRI", B(1) | B(6) | B(11) | B(16) | B(21) | B(26) | B(59),
     B(1) | B(13), 0xFEu, /* days 1-7 */
     B(1) | B(2) | B(3) | B(12), 0x3Eu /* Mon-Fri */, false, false, false,
     "1-30/5,59 1,13 1-7 JAN-MAR,dec mon-FRI"},
    {"0 0 * * 0-7", B(0), B(0), ALL_DOM, ALL_MON, ALL_DOW, true, false, false, NULL},
    {"0 0 * * 7", B(0), B(0), ALL_DOM, ALL_MON, B(0), true, false, false, NULL},
    {"0 0 * * 5-7", B(0), B(0), ALL_DOM, ALL_MON, B(0) | B(5) | B(6), true, false, false, NULL},
    {"0 0 * * */2", B(0), B(0), ALL_DOM, ALL_MON, B(0) | B(2) | B(4) | B(6), true, true, false,
     NULL},
    {"0 0 * * 1/2", B(0), B(0), ALL_DOM, ALL_MON, B(1) | B(3) | B(5), true, false, false, NULL},
    {"0 0 * * sun,Sat", B(0), B(0), ALL_DOM, ALL_MON, B(0) | B(6), true, false, false, NULL},
    {"0 0 */10 */4 *", B(0), B(0), B(1) | B(11) | B(21) | B(31), B(1) | B(5) | B(9), ALL_DOW, true,
     true, false, NULL},
    {"* 1 * * *", ALL_MIN, B(1), ALL_DOM, ALL_MON, ALL_DOW, true, true, true, NULL},
    {"0 */24 * * *", B(0), B(0), ALL_DOM, ALL_MON, ALL_DOW, true, true, true, NULL},
    {"  */5\t1  * *   *  ",
     B(0) | B(5) | B(10) | B(15) | B(20) | B(25) | B(30) | B(35) | B(40) | B(45) | B(50) | B(55),
     B(1), ALL_DOM, ALL_MON, ALL_DOW, true, true, true, "*/5 1 * * *"},
    {"@yearly", B(0), B(0), B(1), B(1), ALL_DOW, false, true, false, "@yearly"},
    {"@annually", B(0), B(0), B(1), B(1), ALL_DOW, false, true, false, "@annually"},
    {"@monthly", B(0), B(0), B(1), ALL_MON, ALL_DOW, false, true, false, "@monthly"},
    {"@weekly", B(0), B(0), ALL_DOM, ALL_MON, B(0), true, false, false, "@weekly"},
    {"@daily", B(0), B(0), ALL_DOM, ALL_MON, ALL_DOW, true, true, false, "@daily"},
    {"@MIDNIGHT", B(0), B(0), ALL_DOM, ALL_MON, ALL_DOW, true, true, false, "@midnight"},
    {"@hourly", B(0), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true, true, "@hourly"},
};

Test(cron, parses_fields_into_sets)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(mask_cases); i++) {
        const mask_case *c = &mask_cases[i];
        cron_expr e = parse_ok(c->text);
        cr_expect_eq(e.minutes, c->minutes, "%s: minutes %llx", c->text,
                     (unsigned long long)e.minutes);
        cr_expect_eq(e.hours, c->hours, "%s: hours %x", c->text, e.hours);
        cr_expect_eq(e.days, c->days, "%s: days %x", c->text, e.days);
        cr_expect_eq(e.months, c->months, "%s: months %x", c->text, e.months);
        cr_expect_eq(e.weekdays, c->weekdays, "%s: weekdays %x", c->text, e.weekdays);
        cr_expect_eq(e.dom_star, c->dom_star, "%s: dom_star", c->text);
        cr_expect_eq(e.dow_star, c->dow_star, "%s: dow_star", c->text);
        cr_expect_eq(e.real_time, c->real_time, "%s: real_time", c->text);
        cr_expect_str_eq(e.text, c->normalised ? c->normalised : c->text);
    }
}

typedef struct bad_case {
    const char *text;
    const char *msg; /* the whole message */
} bad_case;

static const bad_case bad_cases[] = {
    {"*/0 * * * *", "cron \"*/0 * * * *\": minute field (column 1): step must be at least 1"},
    {"0 24 * * *", "cron \"0 24 * * *\": hour field (column 3): 24 is out of range 0-23"},
    {"0 0 * * FUNDAY",
     "cron \"0 0 * * FUNDAY\": day-of-week field (column 9): unknown name 'FUNDAY' (expected "
     "SUN-SAT)"},
    {"0 0 * *", "cron \"0 0 * *\": expected 5 fields (minute hour day-of-month month "
                "day-of-week), found 4"},
    {"0 0 0 * * *", "cron \"0 0 0 * * *\": expected 5 fields (minute hour day-of-month month "
                    "day-of-week), found 6 (seconds and year fields are not supported)"},
    {"", "cron \"\": empty expression"},
    {"  \t ", "cron \"  \t \": empty expression"},
    {"60 * * * *", "cron \"60 * * * *\": minute field (column 1): 60 is out of range 0-59"},
    {"0 0 0 * *", "cron \"0 0 0 * *\": day-of-month field (column 5): 0 is out of range 1-31"},
    {"0 0 32 * *", "cron \"0 0 32 * *\": day-of-month field (column 5): 32 is out of range 1-31"},
    {"0 0 * 13 *", "cron \"0 0 * 13 *\": month field (column 7): 13 is out of range 1-12"},
    {"0 0 * 0 *", "cron \"0 0 * 0 *\": month field (column 7): 0 is out of range 1-12"},
    {"0 0 * * 8", "cron \"0 0 * * 8\": day-of-week field (column 9): 8 is out of range 0-7"},
    {"0 0 * JANUARY *", "cron \"0 0 * JANUARY *\": month field (column 7): unknown name "
                        "'JANUARY' (expected JAN-DEC)"},
    {"0 0 * * MON-FUN", "cron \"0 0 * * MON-FUN\": day-of-week field (column 9): unknown name "
                        "'FUN' (expected SUN-SAT)"},
    {"MON * * * *", "cron \"MON * * * *\": minute field (column 1): 'MON' is not a number (names "
                    "are allowed only in the month and day-of-week fields)"},
    {"30-10 * * * *", "cron \"30-10 * * * *\": minute field (column 1): range 30-10 is backwards "
                      "(ranges do not wrap around)"},
    {"0 0 * * FRI-MON", "cron \"0 0 * * FRI-MON\": day-of-week field (column 9): range 5-1 is "
                        "backwards (ranges do not wrap around)"},
    {"1,,2 * * * *", "cron \"1,,2 * * * *\": minute field (column 3): empty list item"},
    {"0 1, * * *", "cron \"0 1, * * *\": hour field (column 5): empty list item"},
    {"*/ * * * *",
     "cron \"*/ * * * *\": minute field (column 1): a step must be a number after '/'"},
    {"0 */x * * *",
     "cron \"0 */x * * *\": hour field (column 3): a step must be a number after '/'"},
    {"*/61 * * * *", "cron \"*/61 * * * *\": minute field (column 1): step 61 is larger than the "
                     "field's 60 values (0-59)"},
    {"0 0 1-31/0 * *",
     "cron \"0 0 1-31/0 * *\": day-of-month field (column 5): step must be at least 1"},
    {"1-5x * * * *", "cron \"1-5x * * * *\": minute field (column 1): unexpected 'x'"},
    {"0 0 * * 1-", "cron \"0 0 * * 1-\": day-of-week field (column 9): missing value"},
    {"*-5 * * * *", "cron \"*-5 * * * *\": minute field (column 1): unexpected '-'"},
    {"-5 * * * *", "cron \"-5 * * * *\": minute field (column 1): unexpected '-'"},
    {"0 0 ? * *", "cron \"0 0 ? * *\": day-of-month field (column 5): unexpected '?'"},
    {"0 0 L * *", "cron \"0 0 L * *\": day-of-month field (column 5): 'L' is not a number (names "
                  "are allowed only in the month and day-of-week fields)"},
    {"1-99 * * * *", "cron \"1-99 * * * *\": minute field (column 1): 99 is out of range 0-59"},
    {"99999999999 * * * *",
     "cron \"99999999999 * * * *\": minute field (column 1): 99999999999 is out of range 0-59"},
    {"0 0 * * 7/2", "cron \"0 0 * * 7/2\": day-of-week field (column 9): 7/2 starts after the "
                    "field's last value 6"},
    {"@reboot", "cron \"@reboot\": unknown macro '@reboot' (expected @yearly, @annually, "
                "@monthly, @weekly, @daily, @midnight or @hourly)"},
    {"@daily 5", "cron \"@daily 5\": @daily stands alone (found 2 fields)"},
};

Test(cron, bad_expressions_name_the_field_and_column)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(bad_cases); i++) {
        cron_expr e;
        bp_error err = {0};
        cr_expect_eq(cron_parse(bad_cases[i].text, &e, &err), BP_E_INVAL, "accepted '%s'",
                     bad_cases[i].text);
        cr_expect_eq(err.code, BP_E_INVAL);
        cr_expect_str_eq(err.msg, bad_cases[i].msg);
    }
}

Test(cron, overlong_and_missing_expressions_are_refused)
{
    char text[CRON_TEXT_MAX + 10];
    cron_expr e;
    bp_error err = {0};
    memset(text, '1', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    cr_assert_eq(cron_parse(text, &e, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "longer than 255 characters"), "%s", err.msg);
    cr_assert_eq(cron_parse(NULL, &e, &err), BP_E_INVAL);
    cr_assert_str_eq(err.msg, "cron expression is missing");
    /* exactly 255 characters is fine: a long but valid list */
    char list[CRON_TEXT_MAX];
    size_t n = 0;
    for (int v = 0; v < 60 && n < 240; v++) {
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", v ? "," : "", v);
    }
    snprintf(list + n, sizeof list - n, " * * * *");
    cr_assert_eq(cron_parse(list, &e, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(e.minutes, ALL_MIN);
    cr_assert_str_eq(e.text, list);
}

/* ============================================================================================
 * Next fire: the known-answer table
 * ========================================================================================== */

typedef struct next_case {
    const char *expr, *zone, *after, *want; /* want: ISO instant or "NOTFOUND" */
} next_case;

/* Generated by `python3 tests/unit/cron_oracle.py` (see the file comment). Highlights:
 *  - 0 0 29 2 * from 2096-03-01 skips 2100 (not a leap year) and lands on 2104-02-29;
 *  - London, 2024-03-31: 01:30 does not exist, "30 1 * * *" fires at 01:00Z (02:00 BST);
 *  - London, 2024-10-27: "30 1 * * *" fires at 00:30Z (first 01:30) and not at 01:30Z, while
 *    "0 * * * *" fires at both 00:00Z and 01:00Z (both 01:00s) - hourly follows real time;
 *  - New York, 2024-03-10: "30 2 * * *" fires at 07:00Z (03:00 EDT), the end of the gap;
 *  - Lord Howe, 2024-10-06: "0 * * * *" fires 01:00, 02:30 (gap end for 02:00), 03:00 local. */
static const next_case next_cases[] = {
    {"* * * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"},
    {"* * * * *", "UTC", "2024-01-01T00:00:30Z", "2024-01-01T00:01:00Z"},
    {"*/15 * * * *", "UTC", "2024-01-01T00:14:59Z", "2024-01-01T00:15:00Z"},
    {"*/15 * * * *", "UTC", "2024-01-01T00:15:00Z", "2024-01-01T00:30:00Z"},
    {"5/15 * * * *", "UTC", "2024-01-01T00:50:00Z", "2024-01-01T01:05:00Z"},
    {"1-30/5 * * * *", "UTC", "2024-01-01T00:26:00Z", "2024-01-01T01:01:00Z"},
    {"0 * * * *", "UTC", "2024-12-31T23:00:00Z", "2025-01-01T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "2024-06-01T00:00:00Z", "2025-01-01T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"0 0 30 2 *", "UTC", "2024-01-01T00:00:00Z", "NOTFOUND"},
    {"0 0 31 4,6,9,11 *", "UTC", "2024-01-01T00:00:00Z", "NOTFOUND"},
    {"0 0 1 * MON", "UTC", "2024-08-27T00:00:00Z", "2024-09-01T00:00:00Z"},
    {"0 0 1 * MON", "UTC", "2024-09-01T00:00:00Z", "2024-09-02T00:00:00Z"},
    {"0 0 */2 * MON", "UTC", "2024-09-01T00:00:00Z", "2024-09-09T00:00:00Z"},
    {"0 0 13 * FRI", "UTC", "2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"},
    {"0 0 * * 7", "UTC", "2024-09-02T00:00:00Z", "2024-09-08T00:00:00Z"},
    {"30 4 * JAN-MAR mon-fri", "UTC", "2024-03-29T04:30:00Z", "2025-01-01T04:30:00Z"},
    {"0 9-17/4 * * 1-5", "UTC", "2024-09-06T17:00:00Z", "2024-09-09T09:00:00Z"},
    {"@yearly", "UTC", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
    {"@weekly", "UTC", "2024-09-01T00:00:00Z", "2024-09-08T00:00:00Z"},
    {"@monthly", "UTC", "2024-01-31T12:00:00Z", "2024-02-01T00:00:00Z"},
    {"@hourly", "UTC", "2024-01-01T10:59:59Z", "2024-01-01T11:00:00Z"},
    {"0 0 * * *", "UTC", "1969-12-31T12:00:00Z", "1970-01-01T00:00:00Z"},
    {"0 12 29 2 *", "UTC", "1960-01-01T00:00:00Z", "1960-02-29T12:00:00Z"},
    {"30 1 * * *", "Europe/London", "2024-03-30T12:00:00Z", "2024-03-31T01:00:00Z"},
    {"30 1 * * *", "Europe/London", "2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"},
    {"30 1 * * *", "Europe/London", "2024-10-26T12:00:00Z", "2024-10-27T00:30:00Z"},
    {"30 1 * * *", "Europe/London", "2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"},
    {"30 1 * * *", "Europe/London", "2024-10-27T00:45:00Z", "2024-10-28T01:30:00Z"},
    {"0 1 * * *", "Europe/London", "2024-10-27T00:00:00Z", "2024-10-28T01:00:00Z"},
    {"0 * * * *", "Europe/London", "2024-03-31T00:00:00Z", "2024-03-31T01:00:00Z"},
    {"0 * * * *", "Europe/London", "2024-03-31T01:00:00Z", "2024-03-31T02:00:00Z"},
    {"0 * * * *", "Europe/London", "2024-10-26T23:30:00Z", "2024-10-27T00:00:00Z"},
    {"0 * * * *", "Europe/London", "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z"},
    {"0 * * * *", "Europe/London", "2024-10-27T01:00:00Z", "2024-10-27T02:00:00Z"},
    {"*/15 * * * *", "Europe/London", "2024-10-27T00:45:00Z", "2024-10-27T01:00:00Z"},
    {"*/15 * * * *", "Europe/London", "2024-03-31T00:45:00Z", "2024-03-31T01:00:00Z"},
    {"* 1 * * *", "Europe/London", "2024-10-27T00:59:00Z", "2024-10-27T01:00:00Z"},
    {"* 1 * * *", "Europe/London", "2024-03-31T00:00:00Z", "2024-03-31T01:00:00Z"},
    {"* 1 * * *", "Europe/London", "2024-03-31T01:00:00Z", "2024-04-01T00:00:00Z"},
    {"0 1 * * SUN", "Europe/London", "2024-03-30T00:00:00Z", "2024-03-31T01:00:00Z"},
    {"0 2 * * *", "Europe/London", "2024-03-30T12:00:00Z", "2024-03-31T01:00:00Z"},
    {"30 1 * * *", "Europe/London", "2040-03-24T12:00:00Z", "2040-03-25T01:00:00Z"},
    {"30 1 * * *", "Europe/London", "2040-10-27T12:00:00Z", "2040-10-28T00:30:00Z"},
    {"30 1 * * *", "Europe/London", "2040-10-28T00:30:00Z", "2040-10-29T01:30:00Z"},
    {"0 * * * *", "Europe/London", "2040-10-28T00:00:00Z", "2040-10-28T01:00:00Z"},
    {"30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z"},
    {"30 2 * * *", "America/New_York", "2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"},
    {"0 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z"},
    {"59 1 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T06:59:00Z"},
    {"30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z", "2024-11-03T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"},
    {"0 * * * *", "America/New_York", "2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z"},
    {"30 2 * * *", "America/New_York", "2040-03-10T12:00:00Z", "2040-03-11T07:00:00Z"},
    {"30 1 * * *", "America/New_York", "2040-11-03T12:00:00Z", "2040-11-04T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2040-11-04T05:30:00Z", "2040-11-05T06:30:00Z"},
    {"15 2 * * *", "Australia/Lord_Howe", "2024-10-05T00:00:00Z", "2024-10-05T15:30:00Z"},
    {"0 * * * *", "Australia/Lord_Howe", "2024-10-05T14:30:00Z", "2024-10-05T15:30:00Z"},
    {"0 * * * *", "Australia/Lord_Howe", "2024-10-05T15:30:00Z", "2024-10-05T16:00:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2024-04-06T00:00:00Z", "2024-04-06T14:45:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2024-04-06T14:45:00Z", "2024-04-07T15:15:00Z"},
    {"*/15 * * * *", "Australia/Lord_Howe", "2024-04-06T14:45:00Z", "2024-04-06T15:00:00Z"},
};

Test(cron, next_fire_matches_known_answers)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(next_cases); i++) {
        const next_case *c = &next_cases[i];
        cron_expr e = parse_ok(c->expr);
        int64_t got = 0;
        char gbuf[40];
        int rc = cron_next(&e, zone(c->zone), at(c->after), &got);
        if (strcmp(c->want, "NOTFOUND") == 0) {
            iso(got, gbuf, sizeof gbuf);
            cr_expect_eq(rc, BP_E_NOTFOUND, "%s in %s after %s: rc %d (%s)", c->expr, c->zone,
                         c->after, rc, gbuf);
            continue;
        }
        cr_expect_eq(rc, BP_OK, "%s in %s after %s: rc %d", c->expr, c->zone, c->after, rc);
        iso(got, gbuf, sizeof gbuf);
        cr_expect_eq(got, at(c->want), "%s in %s after %s: got %s, want %s", c->expr, c->zone,
                     c->after, gbuf, c->want);
    }
}

Test(cron, null_zone_is_utc_and_bad_instants_are_refused)
{
    cron_expr e = parse_ok("0 12 * * *");
    int64_t a = 0, b = 1;
    cr_assert_eq(cron_next(&e, NULL, at("2024-06-01T00:00:00Z"), &a), BP_OK);
    cr_assert_eq(cron_next(&e, tz_utc(), at("2024-06-01T00:00:00Z"), &b), BP_OK);
    cr_assert_eq(a, b);
    cr_assert_eq(a, at("2024-06-01T12:00:00Z"));
    cr_assert_eq(cron_next(&e, NULL, TZ_MIN_UTC - 1, &a), BP_E_INVAL);
    cr_assert_eq(cron_next(&e, NULL, INT64_MAX, &a), BP_E_INVAL);
    cr_assert_eq(cron_next(&e, NULL, TZ_MAX_UTC, &a), BP_E_NOTFOUND, "nothing after the end");
    /* the last fire before the end of the range is found; none after it */
    cr_assert_eq(cron_next(&e, NULL, at("9999-12-30T13:00:00Z"), &a), BP_OK);
    cr_assert_eq(a, at("9999-12-31T12:00:00Z"));
    cr_assert_eq(cron_next(&e, NULL, a, &b), BP_E_NOTFOUND);
}

/* ============================================================================================
 * Next fire: a year at a time
 * ========================================================================================== */

/* All fires in [from, to), via repeated cron_next; checks they strictly increase. */
static size_t fires_between(const char *expr, const char *zname, const char *from, const char *to,
                            int64_t *out, size_t max)
{
    cron_expr e = parse_ok(expr);
    const tz *z = zone(zname);
    int64_t t = at(from) - 1, end = at(to), next;
    size_t n = 0;
    while (cron_next(&e, z, t, &next) == BP_OK && next < end) {
        cr_assert(next > t, "%s: not increasing at %lld", expr, (long long)t);
        cr_assert(n < max, "%s: more than %zu fires", expr, max);
        out[n++] = next;
        t = next;
    }
    return n;
}

Test(cron, hourly_follows_real_time_through_a_whole_year)
{
    /* 2024 has 8784 real hours; "0 * * * *" must fire once in each of them in London and New
     * York, DST or not: 23 fires on the spring day, 25 on the autumn day. */
    static int64_t f[9000];
    const char *zones[] = {"Europe/London", "America/New_York", "UTC"};
    for (size_t z = 0; z < BP_ARRAY_LEN(zones); z++) {
        size_t n = fires_between("0 * * * *", zones[z], "2024-01-01T00:00:00Z",
                                 "2025-01-01T00:00:00Z", f, BP_ARRAY_LEN(f));
        cr_expect_eq(n, 8784, "%s: %zu hourly fires", zones[z], n);
        for (size_t i = 1; i < n; i++) {
            cr_assert_eq(f[i] - f[i - 1], 3600, "%s: gap of %lld s before fire %zu", zones[z],
                         (long long)(f[i] - f[i - 1]), i);
        }
    }
}

Test(cron, quarter_hourly_never_stutters)
{
    static int64_t f[40000];
    size_t n = fires_between("*/15 * * * *", "America/New_York", "2024-01-01T05:00:00Z",
                             "2025-01-01T05:00:00Z", f, BP_ARRAY_LEN(f));
    cr_assert_eq(n, 8784 * 4);
    for (size_t i = 1; i < n; i++) {
        cr_assert_eq(f[i] - f[i - 1], 900, "stutter before fire %zu", i);
    }
}

Test(cron, daily_job_fires_once_per_local_date)
{
    /* "30 1 * * *" in London: one fire for each of the 366 local dates of 2024; on 31 March,
     * when 01:30 does not exist, at 02:00 BST; on 27 October, at the first 01:30 (BST). */
    static int64_t f[400];
    size_t n = fires_between("30 1 * * *", "Europe/London", "2024-01-01T00:00:00Z",
                             "2025-01-01T00:00:00Z", f, BP_ARRAY_LEN(f));
    cr_assert_eq(n, 366);
    for (size_t i = 0; i < n; i++) {
        tz_local_time lt, prev;
        cr_assert_eq(tz_utc_to_local(zone("Europe/London"), f[i], &lt, NULL), BP_OK);
        if (i > 0) {
            cr_assert_eq(tz_utc_to_local(zone("Europe/London"), f[i - 1], &prev, NULL), BP_OK);
            cr_assert(lt.year * 10000 + lt.month * 100 + lt.day >
                          prev.year * 10000 + prev.month * 100 + prev.day,
                      "two fires on one local date at fire %zu", i);
        }
        if (lt.month == 3 && lt.day == 31) {
            cr_assert_eq(f[i], at("2024-03-31T01:00:00Z"));
        } else if (lt.month == 10 && lt.day == 27) {
            cr_assert_eq(f[i], at("2024-10-27T00:30:00Z"));
        } else {
            cr_assert(lt.hour == 1 && lt.minute == 30, "fire %zu reads %02d:%02d", i, lt.hour,
                      lt.minute);
        }
    }
}

Test(cron, leap_day_fires_only_in_leap_years)
{
    static int64_t f[40];
    /* 2000 was a leap year (divisible by 400), 2100 will not be; over 1999-2105 that leaves
     * 2000, 2004, ..., 2096, 2104: 26 fires */
    size_t n = fires_between("0 0 29 2 *", "UTC", "1999-01-01T00:00:00Z", "2105-01-01T00:00:00Z", f,
                             BP_ARRAY_LEN(f));
    cr_assert_eq(n, 26);
    cr_assert_eq(f[0], at("2000-02-29T00:00:00Z"));
    cr_assert_eq(f[24], at("2096-02-29T00:00:00Z"));
    cr_assert_eq(f[25], at("2104-02-29T00:00:00Z"));
}

Test(cron, day_31_skips_short_months)
{
    static int64_t f[20];
    size_t n = fires_between("0 0 31 * *", "UTC", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", f,
                             BP_ARRAY_LEN(f));
    const int months[] = {1, 3, 5, 7, 8, 10, 12};
    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++) {
        tz_local_time lt;
        tz_utc_to_local(tz_utc(), f[i], &lt, NULL);
        cr_assert(lt.month == months[i] && lt.day == 31, "fire %zu on %d-%d", i, lt.month, lt.day);
    }
}

Test(cron, never_firing_expressions_end_the_search)
{
    const char *never[] = {"0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6,9,11 *", "* * 30,31 FEB *"};
    for (size_t i = 0; i < BP_ARRAY_LEN(never); i++) {
        cron_expr e = parse_ok(never[i]);
        int64_t t;
        cr_assert_eq(cron_next(&e, zone("Europe/London"), at("2024-01-01T00:00:00Z"), &t),
                     BP_E_NOTFOUND, "%s", never[i]);
    }
    /* but with a weekday the OR rule makes it fire: "30 Feb, or any Monday" */
    cron_expr e = parse_ok("0 0 30 2 MON");
    int64_t t;
    cr_assert_eq(cron_next(&e, tz_utc(), at("2024-01-01T00:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2024-02-05T00:00:00Z")); /* first Monday in February 2024 */
}

Test(cron, day_matching_follows_vixie)
{
    cron_expr or_rule = parse_ok("0 0 1 * MON");
    cron_expr and_rule = parse_ok("0 0 */2 * MON");
    /* 2024-09-01 is a Sunday, 2024-09-02 a Monday, 2024-09-09 a Monday (python3 weekday()) */
    cr_assert(cron_day_matches(&or_rule, 2024, 9, 1));
    cr_assert(cron_day_matches(&or_rule, 2024, 9, 2));
    cr_assert_not(cron_day_matches(&or_rule, 2024, 9, 3));
    cr_assert_not(cron_day_matches(&and_rule, 2024, 9, 1), "odd, but a Sunday");
    cr_assert_not(cron_day_matches(&and_rule, 2024, 9, 2), "a Monday, but even");
    cr_assert(cron_day_matches(&and_rule, 2024, 9, 9));
    cr_assert_not(cron_day_matches(&or_rule, 2024, 2, 30), "no such date");
    cr_assert_not(cron_day_matches(&or_rule, 2024, 13, 1));
}

/* ============================================================================================
 * Next fire: against a brute-force search
 * ========================================================================================== */

/* The rules of cron.h applied the slow, obvious way: walk every local minute of a window,
 * ask the zone which instants it names (tz_local_to_utc), and keep the earliest fire after
 * `after`. Shares nothing with cron_next's segment walk but the zone and the parsed sets. */
static bool brute_day(const cron_expr *e, const tz_local_time *lt)
{
    int wd = tz_weekday(tz_days_from_civil(lt->year, lt->month, lt->day));
    bool dom = (e->days >> lt->day) & 1u, dow = (e->weekdays >> wd) & 1u;
    if (!((e->months >> lt->month) & 1u)) {
        return false;
    }
    return (e->dom_star || e->dow_star) ? dom && dow : dom || dow;
}

static int64_t brute_gap_end(const tz *z, int64_t local_s)
{
    int64_t t = local_s - 30 * 3600;
    while (tz_next_transition(z, t, &t) == BP_OK) {
        int32_t before, after;
        tz_offset_at(z, t - 1, &before, NULL, NULL);
        tz_offset_at(z, t, &after, NULL, NULL);
        if (t + before <= local_s && local_s < t + after) {
            return t;
        }
        cr_assert(t < local_s + 30 * 3600, "no gap found for a reading with no instant");
    }
    cr_assert_fail("no transition after a reading with no instant");
    return 0;
}

static bool brute_next(const cron_expr *e, const tz *z, int64_t after, int64_t window, int64_t *out)
{
    int32_t off;
    bool found = false;
    tz_offset_at(z, after, &off, NULL, NULL);
    int64_t start = (after + off) / 60 * 60 - 3 * 3600;
    for (int64_t L = start; L < after + off + window; L += 60) {
        tz_local_time lt;
        int64_t cand[2];
        int n;
        tz_local_from_seconds(L, &lt);
        if (!((e->minutes >> lt.minute) & 1u) || !((e->hours >> lt.hour) & 1u) ||
            !brute_day(e, &lt)) {
            continue;
        }
        cr_assert_eq(tz_local_to_utc(z, &lt, cand, &n, NULL), BP_OK);
        if (n == 0) {
            cand[0] = brute_gap_end(z, L);
            n = 1;
        } else if (n == 2 && !e->real_time) {
            n = 1;
        }
        for (int i = 0; i < n; i++) {
            if (cand[i] > after && (!found || cand[i] < *out)) {
                *out = cand[i];
                found = true;
            }
        }
    }
    return found;
}

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static int rnd(int n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int)((rng_state >> 33) % (uint64_t)n);
}

/* A random field over lo..hi: `*`, a step, a value, a list, a range, or a range with a step.
 * `hot` values (the hours DST moves) are chosen more often. */
static void random_field(char *buf, size_t len, int lo, int hi, const int *hot, int nhot,
                         int star_percent)
{
    int a = hot && rnd(2) ? hot[rnd(nhot)] : lo + rnd(hi - lo + 1);
    int b = a + rnd(hi - a + 1);
    int k = 1 + rnd(hi - lo < 12 ? 3 : 20);
    int pick = rnd(100);
    if (pick < star_percent) {
        snprintf(buf, len, "*");
        return;
    }
    switch (pick % 6) {
    case 0: snprintf(buf, len, "*/%d", k); break;
    case 1: snprintf(buf, len, "%d", a); break;
    case 2: snprintf(buf, len, "%d,%d", a, lo + rnd(hi - lo + 1)); break;
    case 3: snprintf(buf, len, "%d-%d", a, b); break;
    case 4: snprintf(buf, len, "%d-%d/%d", a, b, k); break;
    default: snprintf(buf, len, "%d/%d", a, k); break;
    }
}

Test(cron, agrees_with_brute_force_around_transitions, .timeout = 240)
{
    /* Zones with 1-hour, 30-minute, negative-time and "negative DST" rules, and Sao Paulo,
     * whose clocks jumped at midnight (in 2018 local midnight did not exist on 4 November). */
    const struct {
        const char *zone;
        int year;
    } spots[] = {{"Europe/London", 2024},       {"America/New_York", 2024},
                 {"Australia/Lord_Howe", 2024}, {"Australia/Sydney", 2040},
                 {"America/Nuuk", 2040},        {"Pacific/Chatham", 2024},
                 {"Europe/Dublin", 2040},       {"America/Sao_Paulo", 2018},
                 {"Asia/Kolkata", 2024},        {"UTC", 2024}};
    const int hot_hours[] = {0, 1, 2, 3};
    const int64_t window = 6 * 86400;
    int compared = 0;
    for (size_t s = 0; s < BP_ARRAY_LEN(spots); s++) {
        const tz *z = zone(spots[s].zone);
        char from[32];
        int64_t t;
        snprintf(from, sizeof from, "%04d-01-01T00:00:00Z", spots[s].year);
        int64_t base[2] = {at(from), at(from) + 180 * 86400};
        for (int which = 0; which < 2; which++) {
            /* near each of the year's two switches (or anywhere, for fixed zones) */
            if (tz_next_transition(z, base[which], &t) != BP_OK) {
                t = base[which];
            }
            for (int k = 0; k < 60; k++) {
                char f[5][48], text[256];
                cron_expr e;
                int64_t after = t - 2 * 86400 + rnd(4 * 86400), want = 0, got = 0;
                random_field(f[0], sizeof f[0], 0, 59, NULL, 0, 20);
                random_field(f[1], sizeof f[1], 0, 23, hot_hours, 4, 30);
                random_field(f[2], sizeof f[2], 1, 31, NULL, 0, 75);
                snprintf(f[3], sizeof f[3], "*");
                random_field(f[4], sizeof f[4], 0, 6, NULL, 0, 75);
                snprintf(text, sizeof text, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
                e = parse_ok(text);
                bool bf = brute_next(&e, z, after, window, &want);
                int rc = cron_next(&e, z, after, &got);
                if (bf && want < after + window - 2 * 86400) {
                    char wb[40], gb[40];
                    iso(want, wb, sizeof wb);
                    iso(got, gb, sizeof gb);
                    cr_assert_eq(rc, BP_OK, "%s in %s after %lld", text, spots[s].zone,
                                 (long long)after);
                    cr_assert_eq(got, want, "\"%s\" in %s after %lld: cron_next %s, brute force %s",
                                 text, spots[s].zone, (long long)after, gb, wb);
                    compared++;
                } else if (!bf) {
                    cr_assert(rc == BP_E_NOTFOUND || got >= after + window - 2 * 86400,
                              "\"%s\" in %s: cron_next found a fire the brute force did not", text,
                              spots[s].zone);
                }
            }
        }
    }
    cr_log_info("compared %d next-fire answers with the brute-force search", compared);
    cr_assert(compared > 800, "only %d comparisons", compared);
}

/* ============================================================================================
 * Descriptions
 * ========================================================================================== */

static const struct {
    const char *expr, *text;
} describe_cases[] = {
    {"* * * * *", "every minute"},
    {"*/15 * * * *", "every 15 minutes"},
    {"*/5 9-17 * * *", "every 5 minutes during hours 9-17"},
    {"* 1 * * *", "every minute during hour 1"},
    {"0 * * * *", "at minute 0 of every hour"},
    {"@hourly", "at minute 0 of every hour"},
    {"5,35 * * * *", "at minutes 5 and 35 of every hour"},
    {"0 */2 * * *", "at minute 0 of every 2 hours"},
    {"0 2 * * *", "at 02:00 every day"},
    {"@daily", "at 00:00 every day"},
    {"0 9,21 * * *", "at 09:00 and 21:00 every day"},
    {"0 3 * * MON", "at 03:00 on Monday"},
    {"@weekly", "at 00:00 on Sunday"},
    {"0 0 * * 0,6", "at 00:00 on Sunday and Saturday"},
    {"0,30 9-17 * * MON-FRI", "every 30 minutes during hours 9-17 on Monday-Friday"},
    {"5,35 9-17 * * MON-FRI", "at minutes 5 and 35 of hours 9-17 on Monday-Friday"},
    {"0 0 29 2 *", "at 00:00 on day 29 of the month in February"},
    {"@yearly", "at 00:00 on day 1 of the month in January"},
    {"0 0 1 1,4,7,10 *", "at 00:00 on day 1 of the month in January, April, July and October"},
    {"0 0 1 * MON", "at 00:00 on day 1 of the month and on every Monday"},
    {"0 0 1-7 * */7", "at 00:00 on days 1-7 of the month if it is a Sunday"},
    {"0 0 1-31 * 0-6", "at 00:00 every day"},
};

Test(cron, describes_itself_in_english)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(describe_cases); i++) {
        cron_expr e = parse_ok(describe_cases[i].expr);
        char buf[CRON_DESCRIBE_MAX];
        size_t n = cron_describe(&e, buf, sizeof buf);
        cr_expect_str_eq(buf, describe_cases[i].text, "%s: got '%s'", describe_cases[i].expr, buf);
        cr_expect_eq(n, strlen(describe_cases[i].text));
    }
    /* a short buffer truncates like snprintf and reports the full length */
    cron_expr e = parse_ok("0 3 * * MON");
    char small[8];
    cr_assert_eq(cron_describe(&e, small, sizeof small), strlen("at 03:00 on Monday"));
    cr_assert_str_eq(small, "at 03:0");
    size_t n;
    /* The longest description: every field a list with no three values in a row (runs of three
     * become ranges), so every value is printed: 0,1,3,4,6,7,... */
    char text[CRON_TEXT_MAX * 4], big[4096];
    size_t pos = 0;
    const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 6};
    for (int f = 0; f < 5; f++) {
        for (int v = lo[f], first = 1; v <= hi[f]; v++) {
            if ((v - lo[f]) % 3 != 2) {
                pos += (size_t)snprintf(text + pos, sizeof text - pos, "%s%d", first ? "" : ",", v);
                first = 0;
            }
        }
        pos += (size_t)snprintf(text + pos, sizeof text - pos, f < 4 ? " " : "");
    }
    cr_assert_lt(pos, (size_t)CRON_TEXT_MAX, "%s", text);
    e = parse_ok(text);
    n = cron_describe(&e, big, sizeof big);
    cr_log_info("longest description (%zu bytes): %s", n, big);
    cr_assert_lt(n, (size_t)CRON_DESCRIBE_MAX, "%zu bytes: %s", n, big);
}
