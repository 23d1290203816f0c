/*
 * test_tz.c - IANA zones read from TZif: offsets, transitions, gaps and overlaps, the POSIX
 * footer, corrupt files, name checks, the cache, and a sweep of every installed zone against
 * glibc.
 *
 * Where the expected values come from: the instants in the tables were computed with python3's
 * zoneinfo (an independent TZif reader) and checked with `TZ=<zone> date -d @<seconds>`; each
 * table says so. The glibc sweep at the end compares every installed zone with localtime_r, a
 * third implementation, over 1900-2200.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <criterion/criterion.h>

#include "support.h"
#include "tz.h"
#include "util.h"

/* "2024-03-31T02:00:00+01:00" -> epoch seconds (util_parse_iso8601 has its own tests). */
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

/* ============================================================================================
 * Offsets at instants
 * ========================================================================================== */

typedef struct offset_case {
    const char *zone;
    const char *utc; /* the instant */
    int32_t off;     /* expected offset, seconds east */
    bool dst;
    const char *abbr;
} offset_case;

/* python3: datetime.fromtimestamp(t, ZoneInfo(zone)).utcoffset()/.dst()/.tzname(), confirmed
 * with `TZ=zone date -d @t '+%F %T %Z %z'`. The 2040 rows lie after the last transition stored
 * in the files (2037), so the POSIX footer answers them. */
static const offset_case offset_cases[] = {
    /* Europe/London 2024: GMT -> BST at 01:00Z on 31 March, back at 01:00Z on 27 October. */
    {"Europe/London", "2024-03-31T00:59:59Z", 0, false, "GMT"},
    {"Europe/London", "2024-03-31T01:00:00Z", 3600, true, "BST"},
    {"Europe/London", "2024-10-27T00:59:59Z", 3600, true, "BST"},
    {"Europe/London", "2024-10-27T01:00:00Z", 0, false, "GMT"},
    {"Europe/London", "2024-07-01T12:00:00Z", 3600, true, "BST"},
    /* footer "GMT0BST,M3.5.0/1,M10.5.0": last Sundays are 25 March and 28 October 2040 */
    {"Europe/London", "2040-03-25T00:59:59Z", 0, false, "GMT"},
    {"Europe/London", "2040-03-25T01:00:00Z", 3600, true, "BST"},
    {"Europe/London", "2040-10-28T00:59:59Z", 3600, true, "BST"},
    {"Europe/London", "2040-10-28T01:00:00Z", 0, false, "GMT"},
    /* British Standard Time 1968-1971: +1 all year, not flagged DST */
    {"Europe/London", "1970-01-01T00:00:00Z", 3600, false, "BST"},
    /* London mean time before 1847-12-01: -0:01:15 */
    {"Europe/London", "1800-01-01T00:00:00Z", -75, false, "LMT"},
    /* America/New_York 2024: 07:00Z on 10 March, 06:00Z on 3 November. */
    {"America/New_York", "2024-03-10T06:59:59Z", -18000, false, "EST"},
    {"America/New_York", "2024-03-10T07:00:00Z", -14400, true, "EDT"},
    {"America/New_York", "2024-11-03T05:59:59Z", -14400, true, "EDT"},
    {"America/New_York", "2024-11-03T06:00:00Z", -18000, false, "EST"},
    /* footer "EST5EDT,M3.2.0,M11.1.0": 11 March and 4 November 2040 */
    {"America/New_York", "2040-03-11T06:59:59Z", -18000, false, "EST"},
    {"America/New_York", "2040-03-11T07:00:00Z", -14400, true, "EDT"},
    {"America/New_York", "2040-11-04T05:59:59Z", -14400, true, "EDT"},
    {"America/New_York", "2040-11-04T06:00:00Z", -18000, false, "EST"},
    /* Australia/Lord_Howe: half-hour DST, southern hemisphere. */
    {"Australia/Lord_Howe", "2024-04-06T14:59:59Z", 39600, true, "+11"},
    {"Australia/Lord_Howe", "2024-04-06T15:00:00Z", 37800, false, "+1030"},
    {"Australia/Lord_Howe", "2024-10-05T15:29:59Z", 37800, false, "+1030"},
    {"Australia/Lord_Howe", "2024-10-05T15:30:00Z", 39600, true, "+11"},
    {"Australia/Lord_Howe", "2040-03-31T15:00:00Z", 37800, false, "+1030"},
    {"Australia/Lord_Howe", "2040-10-06T15:30:00Z", 39600, true, "+11"},
    /* Europe/Dublin: "negative DST" - IST is standard time, GMT in winter is flagged DST;
     * footer "IST-1GMT0,M10.5.0,M3.5.0/1" */
    {"Europe/Dublin", "2040-01-15T12:00:00Z", 0, true, "GMT"},
    {"Europe/Dublin", "2040-07-15T12:00:00Z", 3600, false, "IST"},
    /* America/Nuuk: footer with negative rule times "<-02>2<-01>,M3.5.0/-1,M10.5.0/0": -1:00
     * on Sunday 25 March is 23:00 on Saturday, 01:00Z; python3 and date agree */
    {"America/Nuuk", "2040-03-25T00:59:59Z", -7200, false, "-02"},
    {"America/Nuuk", "2040-03-25T01:00:00Z", -3600, true, "-01"},
    {"America/Nuuk", "2040-10-28T00:59:59Z", -3600, true, "-01"},
    {"America/Nuuk", "2040-10-28T01:00:00Z", -7200, false, "-02"},
    /* Asia/Kolkata: fixed +05:30 */
    {"Asia/Kolkata", "2040-06-01T00:00:00Z", 19800, false, "IST"},
};

Test(tz, offsets_match_known_answers)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(offset_cases); i++) {
        const offset_case *c = &offset_cases[i];
        int32_t off = 12345;
        bool dst = false;
        const char *abbr = NULL;
        cr_assert_eq(tz_offset_at(zone(c->zone), at(c->utc), &off, &dst, &abbr), BP_OK);
        cr_expect_eq(off, c->off, "%s at %s: offset %d, want %d", c->zone, c->utc, off, c->off);
        cr_expect_eq(dst, c->dst, "%s at %s: dst %d, want %d", c->zone, c->utc, dst, c->dst);
        cr_expect_str_eq(abbr, c->abbr, "%s at %s", c->zone, c->utc);
    }
}

Test(tz, utc_to_local_reads_the_wall_clock)
{
    tz_local_time lt;
    int32_t off;
    /* python3: 2024-10-27T00:30Z is 01:30 BST; 01:30Z is 01:30 GMT (the repeated hour) */
    cr_assert_eq(tz_utc_to_local(zone("Europe/London"), at("2024-10-27T00:30:00Z"), &lt, &off),
                 BP_OK);
    cr_assert(lt.year == 2024 && lt.month == 10 && lt.day == 27 && lt.hour == 1 &&
              lt.minute == 30 && lt.second == 0 && off == 3600);
    cr_assert_eq(tz_utc_to_local(zone("Europe/London"), at("2024-10-27T01:30:00Z"), &lt, &off),
                 BP_OK);
    cr_assert(lt.hour == 1 && lt.minute == 30 && off == 0);
    /* New York, before 1970: 1969-07-20T20:17:40Z was 16:17:40 EDT */
    cr_assert_eq(tz_utc_to_local(zone("America/New_York"), at("1969-07-20T20:17:40Z"), &lt, &off),
                 BP_OK);
    cr_assert(lt.year == 1969 && lt.month == 7 && lt.day == 20 && lt.hour == 16 &&
              lt.minute == 17 && lt.second == 40 && off == -14400);
}

/* ============================================================================================
 * Wall clock to UTC: gaps and overlaps
 * ========================================================================================== */

typedef struct local_case {
    const char *zone;
    tz_local_time lt;
    int n;
    const char *first, *second;
} local_case;

/* python3: for fold in (0, 1): datetime(..., tzinfo=ZoneInfo(zone), fold=fold); a reading is in
 * a gap when converting to UTC and back does not return it, and in an overlap when the two folds
 * give different instants. */
static const local_case local_cases[] = {
    {"Europe/London", {2024, 3, 31, 0, 59, 59}, 1, "2024-03-31T00:59:59Z", NULL},
    {"Europe/London", {2024, 3, 31, 1, 0, 0}, 0, NULL, NULL},
    {"Europe/London", {2024, 3, 31, 1, 30, 0}, 0, NULL, NULL},
    {"Europe/London", {2024, 3, 31, 1, 59, 59}, 0, NULL, NULL},
    {"Europe/London", {2024, 3, 31, 2, 0, 0}, 1, "2024-03-31T01:00:00Z", NULL},
    {"Europe/London", {2024, 10, 27, 0, 59, 59}, 1, "2024-10-26T23:59:59Z", NULL},
    {"Europe/London", {2024, 10, 27, 1, 0, 0}, 2, "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z"},
    {"Europe/London", {2024, 10, 27, 1, 30, 0}, 2, "2024-10-27T00:30:00Z", "2024-10-27T01:30:00Z"},
    {"Europe/London", {2024, 10, 27, 1, 59, 59}, 2, "2024-10-27T00:59:59Z", "2024-10-27T01:59:59Z"},
    {"Europe/London", {2024, 10, 27, 2, 0, 0}, 1, "2024-10-27T02:00:00Z", NULL},
    {"Europe/London", {2040, 3, 25, 1, 30, 0}, 0, NULL, NULL},
    {"Europe/London", {2040, 10, 28, 1, 30, 0}, 2, "2040-10-28T00:30:00Z", "2040-10-28T01:30:00Z"},
    {"America/New_York", {2024, 3, 10, 2, 30, 0}, 0, NULL, NULL},
    {"America/New_York", {2024, 3, 10, 3, 0, 0}, 1, "2024-03-10T07:00:00Z", NULL},
    {"America/New_York",
     {2024, 11, 3, 1, 30, 0},
     2,
     "2024-11-03T05:30:00Z",
     "2024-11-03T06:30:00Z"},
    {"America/New_York", {2040, 3, 11, 2, 30, 0}, 0, NULL, NULL},
    {"America/New_York",
     {2040, 11, 4, 1, 30, 0},
     2,
     "2040-11-04T05:30:00Z",
     "2040-11-04T06:30:00Z"},
    {"America/New_York", {2024, 7, 4, 12, 0, 0}, 1, "2024-07-04T16:00:00Z", NULL},
    /* Lord Howe: gap 02:00-02:30 on 6 Oct 2024, overlap 01:30-02:00 on 7 Apr 2024 */
    {"Australia/Lord_Howe", {2024, 10, 6, 2, 15, 0}, 0, NULL, NULL},
    {"Australia/Lord_Howe", {2024, 10, 6, 2, 30, 0}, 1, "2024-10-05T15:30:00Z", NULL},
    {"Australia/Lord_Howe",
     {2024, 4, 7, 1, 45, 0},
     2,
     "2024-04-06T14:45:00Z",
     "2024-04-06T15:15:00Z"},
    {"UTC", {2024, 2, 29, 12, 0, 0}, 1, "2024-02-29T12:00:00Z", NULL},
};

Test(tz, local_to_utc_reports_gaps_and_overlaps)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(local_cases); i++) {
        const local_case *c = &local_cases[i];
        int64_t cand[2] = {-1, -1};
        int n = -1;
        bp_error err = {0};
        cr_assert_eq(tz_local_to_utc(zone(c->zone), &c->lt, cand, &n, &err), BP_OK, "%s", err.msg);
        cr_expect_eq(n, c->n, "case %zu (%s %04d-%02d-%02d %02d:%02d): %d candidates, want %d", i,
                     c->zone, c->lt.year, c->lt.month, c->lt.day, c->lt.hour, c->lt.minute, n,
                     c->n);
        if (c->n >= 1 && n >= 1) {
            cr_expect_eq(cand[0], at(c->first), "case %zu: first candidate", i);
        }
        if (c->n == 2 && n == 2) {
            cr_expect_eq(cand[1], at(c->second), "case %zu: second candidate", i);
        }
    }
}

Test(tz, local_to_utc_rejects_impossible_readings)
{
    const tz_local_time bad[] = {
        {2023, 2, 29, 0, 0, 0}, {2024, 13, 1, 0, 0, 0}, {2024, 4, 31, 0, 0, 0},
        {2024, 1, 1, 24, 0, 0}, {2024, 1, 1, 0, 60, 0}, {2024, 1, 1, 0, 0, 60},
        {0, 1, 1, 0, 0, 0},
    };
    const char *what[] = {"day 29",    "month 13",  "day 31", "hour 24",
                          "minute 60", "second 60", "year 0"};
    for (size_t i = 0; i < BP_ARRAY_LEN(bad); i++) {
        int64_t cand[2];
        int n = 7;
        bp_error err = {0};
        cr_assert_eq(tz_local_to_utc(zone("Europe/London"), &bad[i], cand, &n, &err), BP_E_INVAL);
        cr_assert(strstr(err.msg, what[i]), "%s", err.msg);
        cr_assert_eq(n, 0);
    }
}

/* ============================================================================================
 * Transitions
 * ========================================================================================== */

Test(tz, transitions_walk_forward_and_back)
{
    const tz *london = zone("Europe/London");
    int64_t t = 0;
    /* python3 (see the offset table): the 2024 and 2040 switches */
    cr_assert_eq(tz_next_transition(london, at("2024-01-01T00:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2024-03-31T01:00:00Z"));
    cr_assert_eq(tz_next_transition(london, t, &t), BP_OK, "strictly after");
    cr_assert_eq(t, at("2024-10-27T01:00:00Z"));
    cr_assert_eq(tz_next_transition(london, at("2039-12-31T00:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2040-03-25T01:00:00Z"));
    cr_assert_eq(tz_next_transition(london, t, &t), BP_OK);
    cr_assert_eq(t, at("2040-10-28T01:00:00Z"));
    /* prev: at or before */
    cr_assert_eq(tz_prev_transition(london, at("2040-10-28T01:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2040-10-28T01:00:00Z"));
    cr_assert_eq(tz_prev_transition(london, at("2040-10-28T00:59:59Z"), &t), BP_OK);
    cr_assert_eq(t, at("2040-03-25T01:00:00Z"));
    /* across the end of the stored table (last stored: 2037-10-25T01:00Z) into the footer */
    cr_assert_eq(tz_next_transition(london, at("2037-10-25T01:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2038-03-28T01:00:00Z"));
    cr_assert_eq(tz_prev_transition(london, at("2038-03-28T00:59:59Z"), &t), BP_OK);
    cr_assert_eq(t, at("2037-10-25T01:00:00Z"));
    /* A zone that stopped changing: Asia/Kolkata's last change was 1945-10-14T17:30Z (python3) */
    cr_assert_eq(tz_next_transition(zone("Asia/Kolkata"), at("2000-01-01T00:00:00Z"), &t),
                 BP_E_NOTFOUND);
    cr_assert_eq(tz_prev_transition(zone("Asia/Kolkata"), at("2000-01-01T00:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("1945-10-14T17:30:00Z"));
    cr_assert_eq(tz_next_transition(tz_utc(), 0, &t), BP_E_NOTFOUND);
    cr_assert_eq(tz_prev_transition(tz_utc(), 0, &t), BP_E_NOTFOUND);
}

Test(tz, out_of_range_instants_are_refused)
{
    int32_t off;
    tz_local_time lt;
    int64_t t;
    cr_assert_eq(tz_offset_at(zone("Europe/London"), TZ_MAX_UTC + 1, &off, NULL, NULL), BP_E_INVAL);
    cr_assert_eq(tz_offset_at(zone("Europe/London"), TZ_MIN_UTC - 1, &off, NULL, NULL), BP_E_INVAL);
    cr_assert_eq(tz_utc_to_local(zone("Europe/London"), INT64_MAX, &lt, NULL), BP_E_INVAL);
    cr_assert_eq(tz_next_transition(zone("Europe/London"), INT64_MIN, &t), BP_E_INVAL);
    /* the ends of the range work; 9999-12-31T23:59:59Z reads 9999-12-31 23:59:59 GMT */
    cr_assert_eq(tz_utc_to_local(zone("Europe/London"), TZ_MAX_UTC, &lt, &off), BP_OK);
    cr_assert(lt.year == 9999 && lt.month == 12 && lt.day == 31 && lt.hour == 23 && off == 0);
    cr_assert_eq(tz_utc_to_local(zone("Europe/London"), TZ_MIN_UTC, &lt, &off), BP_OK);
    /* London mean time, -0:01:15, reads the last day of year 0 there (python3 agrees for the
     * day after: 0001-01-02T00:00Z is 0001-01-01 23:58:45 LMT) */
    cr_assert(lt.year == 0 && lt.month == 12 && lt.day == 31 && lt.hour == 23 && lt.minute == 58 &&
                  lt.second == 45 && off == -75,
              "%04d-%02d-%02d %02d:%02d:%02d %d", lt.year, lt.month, lt.day, lt.hour, lt.minute,
              lt.second, off);
}

/* ============================================================================================
 * Names, loading, the built-in UTC, the cache
 * ========================================================================================== */

Test(tz, utc_works_without_tzdata)
{
    char *dir = bpt_tmpdir("tz-empty");
    tz *z = NULL;
    bp_error err = {0};
    const char *abbr = NULL;
    int32_t off = 1;
    setenv("TZDIR", dir, 1);
    const char *names[] = {"UTC", "Etc/UTC", "GMT", "Etc/GMT"};
    for (size_t i = 0; i < BP_ARRAY_LEN(names); i++) {
        cr_assert_eq(tz_load(names[i], &z, &err), BP_OK, "%s: %s", names[i], err.msg);
        cr_assert_str_eq(tz_name(z), names[i]);
        cr_assert_eq(tz_offset_at(z, at("2024-07-01T00:00:00Z"), &off, NULL, &abbr), BP_OK);
        cr_assert_eq(off, 0);
        cr_assert_str_eq(abbr, i < 2 ? "UTC" : "GMT");
        tz_free(z);
    }
    /* and a real zone is then missing, with a message that says where we looked */
    cr_assert_eq(tz_load("Europe/London", &z, &err), BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "Europe/London") && strstr(err.msg, dir) && strstr(err.msg, "tzdata"),
              "%s", err.msg);
    cr_assert_null(z);
    bpt_rm_rf(dir);
    free(dir);
}

Test(tz, bad_names_are_refused_before_touching_the_disk)
{
    const char *bad[] = {"../../etc/passwd",
                         "/etc/passwd",
                         "Europe/../../etc/passwd",
                         "Europe/./London",
                         "Europe//London",
                         "Europe/London/",
                         "..",
                         "Europe/Lon don",
                         "Europe/Lon\ndon",
                         "Europe/Lon;don",
                         ""};
    for (size_t i = 0; i < BP_ARRAY_LEN(bad); i++) {
        tz *z = NULL;
        const tz *cz = NULL;
        bp_error err = {0};
        cr_assert_eq(tz_load(bad[i], &z, &err), BP_E_INVAL, "accepted '%s'", bad[i]);
        cr_assert(strlen(err.msg) > 0);
        cr_assert_null(z);
        cr_assert_eq(tz_get(bad[i], &cz, &err), BP_E_INVAL, "cache accepted '%s'", bad[i]);
    }
    char longname[TZ_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    tz *z = NULL;
    cr_assert_eq(tz_load(longname, &z, NULL), BP_E_INVAL);
    cr_assert_eq(tz_load(NULL, &z, NULL), BP_E_INVAL);
}

Test(tz, unknown_zones_and_directories_are_not_found)
{
    tz *z = NULL;
    bp_error err = {0};
    cr_assert_eq(tz_load("Mars/Olympus_Mons", &z, &err), BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "unknown time zone 'Mars/Olympus_Mons'"), "%s", err.msg);
    cr_assert_eq(tz_load("Europe", &z, &err), BP_E_NOTFOUND, "a directory is not a zone");
    cr_assert(strstr(err.msg, "not a zone file"), "%s", err.msg);
    /* zone.tab lives in the zone directory but is text, not TZif */
    cr_assert_eq(tz_load("zone.tab", &z, &err), BP_E_CORRUPT);
    cr_assert(strstr(err.msg, "not a TZif file"), "%s", err.msg);
    cr_assert_null(z);
}

Test(tz, leap_second_zones_are_refused)
{
    tz *z = NULL;
    bp_error err = {0};
    /* Debian's tzdata-legacy has right/; skip quietly where it is not installed */
    if (!util_path_exists("/usr/share/zoneinfo/right/Europe/London")) {
        cr_skip_test("no right/ zones installed");
    }
    cr_assert_eq(tz_load("right/Europe/London", &z, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "leap-second"), "%s", err.msg);
}

typedef struct cache_race {
    const tz *got[3];
    int rc;
} cache_race;

static void *cache_worker(void *arg)
{
    cache_race *r = arg;
    const char *names[] = {"Europe/London", "America/New_York", "Australia/Lord_Howe"};
    r->rc = BP_OK;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < 3; i++) {
            const tz *z = NULL;
            int rc = tz_get(names[i], &z, NULL);
            if (rc != BP_OK || (round > 0 && z != r->got[i])) {
                r->rc = rc != BP_OK ? rc : BP_E_INTERNAL;
                return NULL;
            }
            r->got[i] = z;
        }
    }
    return NULL;
}

Test(tz, cache_hands_every_thread_the_same_zone)
{
    pthread_t th[8];
    cache_race r[8];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, cache_worker, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(r[i].rc, BP_OK, "thread %d", i);
        for (int j = 0; j < 3; j++) {
            cr_assert_not_null(r[i].got[j]);
            cr_assert_eq(r[i].got[j], r[0].got[j], "thread %d got another copy of zone %d", i, j);
        }
    }
    cr_assert_str_eq(tz_name(r[0].got[2]), "Australia/Lord_Howe");
    const tz *z = NULL;
    bp_error err = {0};
    cr_assert_eq(tz_get("Nowhere/Atlantis", &z, &err), BP_E_NOTFOUND);
    cr_assert_null(z);
}

/* ============================================================================================
 * TZif files written by the tests: versions, footers, and damage
 * ========================================================================================== */

typedef struct ttype {
    int32_t off;
    uint8_t dst, idx;
} ttype;

typedef struct tzif_spec {
    char version; /* 0 or '2' / '3' */
    uint32_t ntrans;
    const int64_t *times;
    const uint8_t *idx;
    uint32_t ntypes;
    const ttype *types;
    const char *chars; /* designations, NUL-separated */
    uint32_t nchars;
    const char *footer; /* v2+: without the newlines; NULL writes no footer at all */
    uint32_t leapcnt;   /* written as zero-filled records */
} tzif_spec;

static size_t put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

static size_t put_header(unsigned char *p, const tzif_spec *s)
{
    memset(p, 0, 44);
    memcpy(p, "TZif", 4);
    p[4] = (unsigned char)s->version;
    put32(p + 28, s->leapcnt);
    put32(p + 32, s->ntrans);
    put32(p + 36, s->ntypes);
    put32(p + 40, s->nchars);
    return 44;
}

static size_t put_body(unsigned char *p, const tzif_spec *s, int tsize)
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->ntrans; i++) {
        if (tsize == 8) {
            n += put32(p + n, (uint32_t)((uint64_t)s->times[i] >> 32));
        }
        n += put32(p + n, (uint32_t)s->times[i]);
    }
    for (uint32_t i = 0; i < s->ntrans; i++) {
        p[n++] = s->idx[i];
    }
    for (uint32_t i = 0; i < s->ntypes; i++) {
        n += put32(p + n, (uint32_t)s->types[i].off);
        p[n++] = s->types[i].dst;
        p[n++] = s->types[i].idx;
    }
    memcpy(p + n, s->chars, s->nchars);
    n += s->nchars;
    memset(p + n, 0, (size_t)s->leapcnt * (size_t)(tsize + 4));
    n += (size_t)s->leapcnt * (size_t)(tsize + 4);
    return n;
}

/* Serialise a TZif file into buf (4 KiB is plenty for the specs here). */
static size_t build_tzif(unsigned char *buf, const tzif_spec *s)
{
    size_t n = put_header(buf, s);
    n += put_body(buf + n, s, 4);
    if (s->version != 0) {
        n += put_header(buf + n, s);
        n += put_body(buf + n, s, 8);
        if (s->footer) {
            n += (size_t)snprintf((char *)buf + n, 200, "\n%s\n", s->footer);
        }
    }
    return n;
}

static void write_file(const char *dir, const char *name, const unsigned char *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static const ttype three_types[] = {{1800, 0, 0}, {3600, 0, 4}, {7200, 1, 8}};
static const char three_chars[] = "LMT\0ONE\0TWO"; /* 12 bytes with the final NUL */
static const int64_t three_times[] = {1000000000, 1100000000, 1200000000};
static const uint8_t three_idx[] = {1, 2, 1};

Test(tz, version_1_files_are_read)
{
    char *dir = bpt_tmpdir("tz-v1");
    unsigned char buf[4096];
    tzif_spec s = {0, 3, three_times, three_idx, 3, three_types, three_chars, 12, NULL, 0};
    write_file(dir, "Test_V1", buf, build_tzif(buf, &s));
    setenv("TZDIR", dir, 1);
    tz *z = NULL;
    bp_error err = {0};
    cr_assert_eq(tz_load("Test_V1", &z, &err), BP_OK, "%s", err.msg);
    const struct {
        int64_t t;
        int32_t off;
        bool dst;
        const char *abbr;
    } want[] = {{999999999, 1800, false, "LMT"},  {1000000000, 3600, false, "ONE"},
                {1099999999, 3600, false, "ONE"}, {1100000000, 7200, true, "TWO"},
                {1200000000, 3600, false, "ONE"}, {2000000000, 3600, false, "ONE"}};
    for (size_t i = 0; i < BP_ARRAY_LEN(want); i++) {
        int32_t off;
        bool dst;
        const char *abbr;
        cr_assert_eq(tz_offset_at(z, want[i].t, &off, &dst, &abbr), BP_OK);
        cr_expect(off == want[i].off && dst == want[i].dst && strcmp(abbr, want[i].abbr) == 0,
                  "at %lld: %d %d %s", (long long)want[i].t, off, dst, abbr);
    }
    int64_t t;
    cr_assert_eq(tz_next_transition(z, 1200000000, &t), BP_E_NOTFOUND, "no footer in v1");
    tz_free(z);
    bpt_rm_rf(dir);
    free(dir);
}

Test(tz, footer_alone_describes_a_slim_zone)
{
    /* No transitions at all: the footer rules every instant. EST5EDT with the US rules since
     * 2007 must then agree with America/New_York (checked against python3 above). */
    static const ttype est[] = {{-18000, 0, 0}};
    tzif_spec s = {'2', 0, NULL, NULL, 1, est, "EST", 4, "EST5EDT,M3.2.0,M11.1.0", 0};
    unsigned char buf[4096];
    tz *z = NULL;
    bp_error err = {0};
    size_t n = build_tzif(buf, &s);
    cr_assert_eq(tz_parse("Test/Slim", buf, n, &z, &err), BP_OK, "%s", err.msg);
    const char *instants[] = {"2024-03-10T06:59:59Z", "2024-03-10T07:00:00Z",
                              "2024-11-03T05:59:59Z", "2024-11-03T06:00:00Z",
                              "2040-11-04T06:00:00Z", "2100-07-01T00:00:00Z",
                              "1990-01-01T00:00:00Z"};
    for (size_t i = 0; i < BP_ARRAY_LEN(instants); i++) {
        int32_t a, b;
        const char *abbr;
        cr_assert_eq(tz_offset_at(z, at(instants[i]), &a, NULL, &abbr), BP_OK);
        cr_assert_eq(tz_offset_at(zone("America/New_York"), at(instants[i]), &b, NULL, NULL),
                     BP_OK);
        if (i < 6) { /* 1990 had the old rules in New York; the footer knows only the new */
            cr_expect_eq(a, b, "%s: %d vs New York %d", instants[i], a, b);
        }
        cr_expect_str_eq(abbr, a == -18000 ? "EST" : "EDT");
    }
    int64_t t;
    cr_assert_eq(tz_next_transition(z, at("2024-01-01T00:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2024-03-10T07:00:00Z"));
    cr_assert_eq(tz_prev_transition(z, at("2024-01-01T00:00:00Z"), &t), BP_OK);
    cr_assert_eq(t, at("2023-11-05T06:00:00Z")); /* python3: first Sunday of Nov 2023 */
    tz_free(z);
}

Test(tz, permanent_dst_footer_never_transitions)
{
    /* The RFC 9636 example of all-year DST: "EST5EDT,0/0,J365/25". */
    static const ttype edt[] = {{-14400, 1, 0}};
    tzif_spec s = {'3', 0, NULL, NULL, 1, edt, "EDT", 4, "EST5EDT,0/0,J365/25", 0};
    unsigned char buf[4096];
    tz *z = NULL;
    bp_error err = {0};
    cr_assert_eq(tz_parse("Test/AllYearDST", buf, build_tzif(buf, &s), &z, &err), BP_OK, "%s",
                 err.msg);
    const char *instants[] = {"2030-01-01T00:00:00Z", "2030-01-01T05:00:00Z",
                              "2030-07-01T00:00:00Z", "2030-12-31T23:59:59Z",
                              "2031-01-01T04:30:00Z"};
    for (size_t i = 0; i < BP_ARRAY_LEN(instants); i++) {
        int32_t off;
        cr_assert_eq(tz_offset_at(z, at(instants[i]), &off, NULL, NULL), BP_OK);
        cr_expect_eq(off, -14400, "%s: %d", instants[i], off);
    }
    int64_t t;
    cr_assert_eq(tz_next_transition(z, at("2030-06-01T00:00:00Z"), &t), BP_E_NOTFOUND);
    tz_free(z);
}

typedef struct corrupt_case {
    const char *name;
    int code;
    const char *needle;
} corrupt_case;

/* Each builder damages a valid v2 file in one way. */
static size_t corrupt_build(const char *name, unsigned char *buf)
{
    tzif_spec s = {'2', 3, three_times, three_idx, 3, three_types, three_chars, 12, "ONE-1", 0};
    static const int64_t backwards[] = {1000000000, 1200000000, 1100000000};
    static const uint8_t bad_idx[] = {1, 7, 1};
    static const ttype bad_desig[] = {{1800, 0, 0}, {3600, 0, 40}, {7200, 1, 8}};
    static const ttype bad_off[] = {{1800, 0, 0}, {200000, 0, 4}, {7200, 1, 8}};
    static const ttype bad_dst[] = {{1800, 0, 0}, {3600, 3, 4}, {7200, 1, 8}};
    size_t n;
    if (strcmp(name, "backwards") == 0) {
        s.times = backwards;
    } else if (strcmp(name, "type_index") == 0) {
        s.idx = bad_idx;
    } else if (strcmp(name, "designation") == 0) {
        s.types = bad_desig;
    } else if (strcmp(name, "offset") == 0) {
        s.types = bad_off;
    } else if (strcmp(name, "dst_flag") == 0) {
        s.types = bad_dst;
    } else if (strcmp(name, "no_nul") == 0) {
        s.chars = "LMT\0ONE\0TWOX";
    } else if (strcmp(name, "footer") == 0) {
        s.footer = "this is not a TZ string";
    } else if (strcmp(name, "footer_rules") == 0) {
        s.footer = "EST5EDT,M13.1.0,M11.1.0";
    } else if (strcmp(name, "footer_missing") == 0) {
        s.footer = NULL;
    } else if (strcmp(name, "no_types") == 0) {
        s.ntypes = 0;
        s.ntrans = 0;
    } else if (strcmp(name, "leap") == 0) {
        s.leapcnt = 1;
    }
    n = build_tzif(buf, &s);
    if (strcmp(name, "magic") == 0) {
        buf[1] = 'X';
    } else if (strcmp(name, "version") == 0) {
        buf[4] = '9';
    } else if (strcmp(name, "huge_count") == 0) {
        put32(buf + 32, 0xFFFFFFFFu);
    } else if (strcmp(name, "truncated_header") == 0) {
        n = 30;
    } else if (strcmp(name, "truncated_body") == 0) {
        n = 44 + 10;
    } else if (strcmp(name, "truncated_v2") == 0) {
        n -= 20; /* inside the 64-bit block */
    } else if (strcmp(name, "footer_unterminated") == 0) {
        n -= 1; /* drop the final newline */
    } else if (strcmp(name, "empty") == 0) {
        n = 0;
    } else if (strcmp(name, "isstd_count") == 0) {
        put32(buf + 24, 2); /* isstdcnt must be 0 or typecnt */
    }
    return n;
}

static const corrupt_case corrupt_cases[] = {
    {"empty", BP_E_CORRUPT, "truncated"},
    {"magic", BP_E_CORRUPT, "not a TZif file"},
    {"version", BP_E_CORRUPT, "unsupported TZif version"},
    {"huge_count", BP_E_CORRUPT, "implausible counts"},
    {"isstd_count", BP_E_CORRUPT, "implausible counts"},
    {"truncated_header", BP_E_CORRUPT, "truncated"},
    {"truncated_body", BP_E_CORRUPT, "truncated"},
    {"truncated_v2", BP_E_CORRUPT, "truncated"},
    {"backwards", BP_E_CORRUPT, "is not after"},
    {"type_index", BP_E_CORRUPT, "names type 7"},
    {"designation", BP_E_CORRUPT, "local time type 1 is invalid"},
    {"offset", BP_E_CORRUPT, "local time type 1 is invalid"},
    {"dst_flag", BP_E_CORRUPT, "local time type 1 is invalid"},
    {"no_nul", BP_E_CORRUPT, "NUL-terminated"},
    {"no_types", BP_E_CORRUPT, "no local time types"},
    {"footer", BP_E_CORRUPT, "not a valid POSIX TZ string"},
    {"footer_rules", BP_E_CORRUPT, "not a valid POSIX TZ string"},
    {"footer_missing", BP_E_CORRUPT, "footer is missing"},
    {"footer_unterminated", BP_E_CORRUPT, "newline-terminated"},
    {"leap", BP_E_INVAL, "leap-second"},
};

Test(tz, corrupt_files_are_errors_naming_the_zone)
{
    char *dir = bpt_tmpdir("tz-bad");
    char sub[600];
    unsigned char buf[4096];
    snprintf(sub, sizeof sub, "%s/Bad", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    setenv("TZDIR", dir, 1);
    /* first prove the undamaged file loads, so each failure below is the damage's doing */
    {
        tz *z = NULL;
        bp_error err = {0};
        write_file(sub, "good", buf, corrupt_build("good", buf));
        cr_assert_eq(tz_load("Bad/good", &z, &err), BP_OK, "%s", err.msg);
        int32_t off;
        cr_assert_eq(tz_offset_at(z, 2000000000, &off, NULL, NULL), BP_OK);
        cr_assert_eq(off, 3600, "footer ONE-1 rules after the last transition");
        tz_free(z);
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(corrupt_cases); i++) {
        const corrupt_case *c = &corrupt_cases[i];
        char zname[64];
        tz *z = NULL;
        bp_error err = {0};
        write_file(sub, c->name, buf, corrupt_build(c->name, buf));
        snprintf(zname, sizeof zname, "Bad/%s", c->name);
        cr_expect_eq(tz_load(zname, &z, &err), c->code, "%s: got %d (%s)", c->name, err.code,
                     err.msg);
        cr_expect(strstr(err.msg, c->needle) != NULL, "%s: message '%s' lacks '%s'", c->name,
                  err.msg, c->needle);
        cr_expect(strstr(err.msg, zname) != NULL, "%s: message '%s' should name the zone", c->name,
                  err.msg);
        cr_expect_null(z);
    }
    bpt_rm_rf(dir);
    free(dir);
}

static unsigned char *read_zone_file(const char *name, size_t *out_len)
{
    char path[512];
    char *buf = NULL;
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    cr_assert_eq(util_read_file(path, 1 << 20, &buf, out_len, NULL), BP_OK, "%s", path);
    return (unsigned char *)buf;
}

Test(tz, every_truncation_of_a_real_file_is_an_error)
{
    size_t len;
    unsigned char *data = read_zone_file("Europe/London", &len);
    for (size_t cut = 0; cut < len; cut++) {
        tz *z = NULL;
        bp_error err = {0};
        int rc = tz_parse("Europe/London", data, cut, &z, &err);
        cr_assert_eq(rc, BP_E_CORRUPT, "a file cut to %zu of %zu bytes gave %d", cut, len, rc);
        cr_assert_null(z);
    }
    tz *z = NULL;
    cr_assert_eq(tz_parse("Europe/London", data, len, &z, NULL), BP_OK);
    tz_free(z);
    free(data);
}

Test(tz, flipped_bytes_never_crash)
{
    /* Damage each byte of a real file in turn. Many flips still make a valid file (a changed
     * transition time is just different data); the point is that every outcome is either a
     * working zone or an error, and that queries on whatever loads stay in bounds (ASan build). */
    size_t len;
    unsigned char *data = read_zone_file("America/New_York", &len);
    int ok = 0, bad = 0;
    for (size_t i = 0; i < len; i++) {
        tz *z = NULL;
        int64_t cand[2], t;
        int n;
        unsigned char saved = data[i];
        data[i] ^= 0xA5;
        int rc = tz_parse("America/New_York", data, len, &z, NULL);
        cr_assert(rc == BP_OK || rc == BP_E_CORRUPT || rc == BP_E_INVAL, "byte %zu: %d", i, rc);
        if (rc == BP_OK) {
            tz_local_time lt = {2040, 11, 4, 1, 30, 0};
            ok++;
            cr_assert_eq(tz_offset_at(z, at("2040-11-04T06:00:00Z"), NULL, NULL, NULL), BP_OK);
            cr_assert_eq(tz_local_to_utc(z, &lt, cand, &n, NULL), BP_OK);
            (void)tz_next_transition(z, 0, &t);
            (void)tz_prev_transition(z, 0, &t);
            tz_free(z);
        } else {
            bad++;
        }
        data[i] = saved;
    }
    cr_assert(ok > 0 && bad > 0, "ok %d bad %d", ok, bad);
    free(data);
}

/* ============================================================================================
 * Every installed zone against glibc
 * ========================================================================================== */

typedef struct sweep {
    int zones, checks, mismatches;
    char first[8][160];
} sweep;

static void sweep_report(sweep *sw, const char *name, int64_t t, int32_t ours, int32_t theirs,
                         bool odst, bool tdst, const char *oabbr, const char *tabbr)
{
    if (sw->mismatches < 8) {
        snprintf(sw->first[sw->mismatches], sizeof sw->first[0],
                 "%s @%lld: ours %d dst %d %s, glibc %d dst %d %s", name, (long long)t, ours, odst,
                 oabbr, theirs, tdst, tabbr);
    }
    sw->mismatches++;
}

static void sweep_check(sweep *sw, const tz *z, const char *name, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    char tabbr[32];
    int32_t off;
    bool dst;
    const char *abbr;
    int64_t cand[2];
    int n;
    tz_local_time lt;
    cr_assert_not_null(localtime_r(&tt, &tm));
    strftime(tabbr, sizeof tabbr, "%Z", &tm);
    int64_t theirs =
        tz_days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) * 86400 +
        tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec - t;
    cr_assert_eq(tz_offset_at(z, t, &off, &dst, &abbr), BP_OK);
    sw->checks++;
    if (off != theirs || dst != (tm.tm_isdst > 0) || strcmp(abbr, tabbr) != 0) {
        sweep_report(sw, name, t, off, (int32_t)theirs, dst, tm.tm_isdst > 0, abbr, tabbr);
    }
    /* and the instant is among those its own wall-clock reading names */
    cr_assert_eq(tz_utc_to_local(z, t, &lt, NULL), BP_OK);
    cr_assert_eq(tz_local_to_utc(z, &lt, cand, &n, NULL), BP_OK);
    cr_assert((n >= 1 && cand[0] == t) || (n == 2 && cand[1] == t),
              "%s @%lld: reading %04d-%02d-%02d %02d:%02d:%02d maps back to %d instants", name,
              (long long)t, lt.year, lt.month, lt.day, lt.hour, lt.minute, lt.second, n);
}

static void sweep_zone(sweep *sw, const char *name)
{
    tz *z = NULL;
    int64_t lo = at("1900-01-01T00:00:00Z"), hi = at("2200-01-01T00:00:00Z"), t;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    if (tz_load(name, &z, NULL) != BP_OK) {
        return; /* not a zone (e.g. a text file in a region directory) */
    }
    setenv("TZ", name, 1);
    tzset();
    sw->zones++;
    /* both sides of every change we find ... */
    for (t = lo; tz_next_transition(z, t, &t) == BP_OK && t < hi;) {
        sweep_check(sw, z, name, t - 1);
        sweep_check(sw, z, name, t);
    }
    /* ... and random instants in between, which would catch a change we missed */
    for (int i = 0; i < 300; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        sweep_check(sw, z, name, lo + (int64_t)((rng >> 11) % (uint64_t)(hi - lo)));
    }
    tz_free(z);
}

static void sweep_dir(sweep *sw, const char *root, const char *rel)
{
    char path[1024];
    DIR *d;
    struct dirent *de;
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (!(d = opendir(path))) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char child[512];
        struct stat st;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(child, sizeof child, "%s/%s", rel, de->d_name);
        snprintf(path, sizeof path, "%s/%s", root, child);
        if (stat(path, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            sweep_dir(sw, root, child);
        } else if (S_ISREG(st.st_mode)) {
            sweep_zone(sw, child);
        }
    }
    closedir(d);
}

Test(tz, every_installed_zone_agrees_with_glibc, .timeout = 240)
{
    /* glibc's localtime_r is a third, independent TZif reader. Criterion runs each test in its
     * own process, so setting TZ here touches nobody else. */
    const char *regions[] = {"Africa",   "America",   "Antarctica", "Arctic", "Asia",
                             "Atlantic", "Australia", "Europe",     "Indian", "Pacific"};
    sweep sw;
    memset(&sw, 0, sizeof sw);
    unsetenv("TZDIR");
    for (size_t i = 0; i < BP_ARRAY_LEN(regions); i++) {
        sweep_dir(&sw, "/usr/share/zoneinfo", regions[i]);
    }
    cr_log_info("glibc sweep: %d zones, %d instants, %d mismatches", sw.zones, sw.checks,
                sw.mismatches);
    for (int i = 0; i < sw.mismatches && i < 8; i++) {
        cr_log_error("%s", sw.first[i]);
    }
    cr_assert(sw.zones > 300, "only %d zones found: is tzdata installed?", sw.zones);
    cr_assert_eq(sw.mismatches, 0, "first: %s", sw.first[0]);
}
