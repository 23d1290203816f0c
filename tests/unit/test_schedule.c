/*
 * test_schedule.c - schedule files: parsing, every validation error naming file, entry and
 * field; where the files come from; slot arithmetic (epoch-aligned intervals, cron slots across
 * DST in Europe/London, previous slots, slot ids); and the shipped schedules/default.json.
 *
 * Expected instants are calendar facts checked by hand: in 2026 British Summer Time starts on
 * Sunday 29 March (01:00 GMT -> 02:00 BST) and ends on Sunday 25 October (02:00 BST -> 01:00
 * GMT); 2026-11-23 is a Monday.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "schedule.h"
#include "support.h"
#include "util.h"

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    bp_error err = {0};
    cr_assert_eq(util_parse_iso8601(iso, &ms, &err), BP_OK, "%s", err.msg);
    return ms;
}

static void iso(int64_t ms, char *buf, size_t len)
{
    schedule_format_slot(ms, buf, len);
}

static schedule_set *parse_ok(const char *text)
{
    schedule_set *s = schedule_set_new();
    bp_error err = {0};
    cr_assert(s);
    cr_assert_eq(schedule_parse(s, "t.json", text, &err), BP_OK, "%s", err.msg);
    return s;
}

/* Parse `text` expecting a failure whose message contains every one of the NULL-terminated
 * fragments. */
static void parse_fails(const char *text, const char *const *fragments)
{
    schedule_set *s = schedule_set_new();
    bp_error err = {0};
    int rc = schedule_parse(s, "sched/t.json", text, &err);
    cr_assert_neq(rc, BP_OK, "accepted: %s", text);
    cr_assert_eq(s->n, 0, "a failed file must add no entry");
    for (const char *const *f = fragments; *f; f++) {
        cr_assert(strstr(err.msg, *f), "message '%s' lacks '%s'", err.msg, *f);
    }
    schedule_set_free(s);
}

#define FAILS(text, ...)                                                                           \
    do {                                                                                           \
        const char *const frags_[] = {__VA_ARGS__, NULL};                                          \
        parse_fails(text, frags_);                                                                 \
    } while (0)

/* ============================================================================================
 * Parsing
 * ========================================================================================== */

Test(parse, full_entry_and_defaults)
{
    schedule_set *s = parse_ok(
        "{\"timezone\": \"Europe/London\", \"entries\": {"
        " \"odds\": {\"job\": \"data.collect_odds\", \"every\": \"15m\", \"args\": {\"l\": [1]},"
        "   \"queue\": \"data_queue\", \"priority\": 7, \"max_retries\": 2, \"expires\": \"10m\"},"
        " \"train\": {\"job\": \"ml.train_all\", \"cron\": \"0 2 * * *\", \"missed\": \"run_once\","
        "   \"grace\": \"12h\", \"no_overlap\": false, \"enabled\": false},"
        " \"ny\": {\"job\": \"x.y\", \"cron\": \"@daily\", \"timezone\": \"America/New_York\"},"
        " \"secs\": {\"job\": \"x.y\", \"every\": 90}}}");
    const schedule_entry *odds = schedule_find(s, "odds"), *train = schedule_find(s, "train");
    const schedule_entry *ny = schedule_find(s, "ny"), *secs = schedule_find(s, "secs");
    cr_assert_eq(s->n, 4);
    cr_assert(odds && train && ny && secs);
    /* entries keep the file's order */
    cr_assert_str_eq(s->entries[0].name, "odds");
    cr_assert_str_eq(s->entries[3].name, "secs");

    cr_assert_str_eq(odds->job_type, "data.collect_odds");
    cr_assert_str_eq(odds->file, "t.json");
    cr_assert(!odds->is_cron);
    cr_assert_eq(odds->every_ms, 900000);
    cr_assert_str_eq(odds->queue, "data_queue");
    cr_assert(odds->has_priority && odds->priority == 7);
    cr_assert(odds->has_max_retries && odds->max_retries == 2);
    cr_assert_eq(odds->expires_ms, 600000);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(odds->args, "l"), 0)), 1);
    /* defaults */
    cr_assert(odds->enabled && odds->no_overlap);
    cr_assert_eq(odds->missed, SCHEDULE_MISSED_SKIP);
    cr_assert_eq(odds->grace_ms, SCHEDULE_DEFAULT_GRACE_MS);

    cr_assert(train->is_cron);
    cr_assert_str_eq(tz_name(train->zone), "Europe/London", "the file's zone applies");
    cr_assert_eq(train->missed, SCHEDULE_MISSED_RUN_ONCE);
    cr_assert_eq(train->grace_ms, 12 * 3600 * 1000);
    cr_assert(!train->no_overlap && !train->enabled);
    cr_assert(!train->has_priority && !train->queue && train->expires_ms == 0);
    cr_assert_eq(json_object_size(train->args), 0, "args default to {}");

    cr_assert_str_eq(tz_name(ny->zone), "America/New_York", "the entry's zone wins");
    cr_assert_str_eq(ny->cron.text, "@daily");
    cr_assert_eq(secs->every_ms, 90000, "a number is seconds");
    schedule_set_free(s);
}

Test(parse, cron_without_any_zone_is_utc)
{
    schedule_set *s =
        parse_ok("{\"entries\": {\"a\": {\"job\": \"x.y\", \"cron\": \"0 2 * * *\"}}}");
    cr_assert_str_eq(tz_name(s->entries[0].zone), "UTC");
    schedule_set_free(s);
}

Test(parse, bad_cron_names_file_entry_field_and_column)
{
    FAILS("{\"entries\": {\"odds\": {\"job\": \"x.y\", \"cron\": \"*/0 * * * *\"}}}",
          "sched/t.json: ", "entries.odds.cron: ", "minute field (column 1)",
          "step must be at least 1");
    FAILS("{\"entries\": {\"odds\": {\"job\": \"x.y\", \"cron\": \"0 0 * * FUNDAY\"}}}",
          "sched/t.json: entries.odds.cron: ", "day-of-week field (column 9)", "FUNDAY");
    FAILS("{\"entries\": {\"odds\": {\"job\": \"x.y\", \"cron\": \"0 24 * * *\"}}}",
          "entries.odds.cron", "hour field (column 3)", "24 is out of range 0-23");
    FAILS("{\"entries\": {\"odds\": {\"job\": \"x.y\", \"cron\": \"0 0 * *\"}}}",
          "entries.odds.cron", "expected 5 fields");
}

Test(parse, bad_zone_names_the_field)
{
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"cron\": \"0 2 * * *\", \"timezone\": "
          "\"Europe/Lndon\"}}}",
          "sched/t.json: entries.a.timezone: ", "Europe/Lndon");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"cron\": \"0 2 * * *\", \"timezone\": "
          "\"../../etc/passwd\"}}}",
          "entries.a.timezone");
    FAILS("{\"timezone\": \"Mars/Olympus\", \"entries\": {}}", "sched/t.json: file.timezone",
          "Mars/Olympus");
}

Test(parse, unknown_keys_are_errors_with_a_hint)
{
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"crn\": \"0 2 * * *\"}}}",
          "sched/t.json: entries.a: unknown field", "crn", "did you mean 'cron'");
    FAILS("{\"entrys\": {}}", "sched/t.json: file", "entrys");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1m\", \"missed\": \"later\"}}}",
          "entries.a.missed", "later");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1m\", \"priority\": 10}}}",
          "entries.a.priority");
    FAILS("{\"entries\": {\"a\": {\"every\": \"1m\"}}}", "entries.a", "job");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1m\", \"args\": [1]}}}",
          "entries.a.args");
}

Test(parse, timing_rules)
{
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"cron\": \"0 2 * * *\", \"every\": \"1h\"}}}",
          "entries.a: has both 'cron' and 'every'");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\"}}}", "entries.a: needs 'cron'");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1.5s\"}}}", "entries.a.every",
          "whole number of seconds");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"500ms\"}}}", "entries.a.every",
          "at least 1s");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"15 min\"}}}", "entries.a.every",
          "15 min");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\", \"timezone\": "
          "\"Europe/London\"}}}",
          "entries.a.timezone", "use 'cron'");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\", \"grace\": \"8d\"}}}",
          "entries.a.grace", "7d");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\", \"expires\": 0}}}",
          "entries.a.expires");
}

Test(parse, names_and_json_syntax)
{
    FAILS("{\"entries\": {\"has space\": {\"job\": \"x.y\", \"every\": \"1h\"}}}",
          "sched/t.json: entries: 'has space' is not a valid entry name");
    FAILS("{\"entries\": {\"a:b\": {\"job\": \"x.y\", \"every\": \"1h\"}}}", "'a:b'");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\"},\n"
          "\"a\": {\"job\": \"x.y\", \"every\": \"1h\"}}}",
          "sched/t.json: line 2", "duplicate");
    FAILS("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\",}}}", "sched/t.json: line 1");
}

Test(parse, names_are_unique_across_files_and_a_bad_file_adds_nothing)
{
    schedule_set *s = parse_ok("{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\"}}}");
    bp_error err = {0};
    cr_assert_neq(schedule_parse(s, "other.json",
                                 "{\"entries\": {\"b\": {\"job\": \"x.y\", \"every\": \"1h\"},"
                                 " \"a\": {\"job\": \"x.y\", \"every\": \"2h\"}}}",
                                 &err),
                  BP_OK);
    cr_assert(strstr(err.msg, "other.json: entries.a: the name is already used by an entry of "
                              "t.json"),
              "%s", err.msg);
    cr_assert_eq(s->n, 1, "entry b of the failed file was not kept");
    cr_assert_eq(schedule_find(s, "a")->every_ms, 3600000);
    schedule_set_free(s);
}

/* ============================================================================================
 * Which files
 * ========================================================================================== */

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = util_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static config *load_config(const char *dir, const char *text)
{
    config_overrides ov = {.data_dir = dir};
    config *c = NULL;
    bp_error err = {0};
    char *path = text ? write_file(dir, "betpipe.json", text) : NULL;
    ov.config_path = path;
    cr_assert_eq(config_load(&ov, &c, &err), BP_OK, "%s", err.msg);
    free(path);
    return c;
}

Test(paths, directory_loads_json_files_in_order_and_reports_bad_ones)
{
    char *dir = bpt_tmpdir("sched");
    char *sub = util_asprintf("%s/s", dir);
    char *missing = util_asprintf("%s/nope.json", dir);
    cr_assert(util_mkdir_p(sub, 0755, NULL) == BP_OK);
    free(
        write_file(sub, "b.json", "{\"entries\": {\"b\": {\"job\": \"x.y\", \"every\": \"1h\"}}}"));
    free(
        write_file(sub, "a.json", "{\"entries\": {\"a\": {\"job\": \"x.y\", \"every\": \"1h\"}}}"));
    free(
        write_file(sub, "c.json", "{\"entries\": {\"c\": {\"job\": \"x.y\", \"cron\": \"bad\"}}}"));
    free(write_file(sub, "notes.txt", "not a schedule"));
    schedule_set *s = schedule_set_new();
    const char *paths[] = {sub, missing};
    cr_assert_eq(schedule_load_paths(s, paths, 2, false, NULL), BP_OK);
    cr_assert_eq(s->n, 2);
    cr_assert_str_eq(s->entries[0].name, "a", "files are read in name order");
    cr_assert_str_eq(s->entries[1].name, "b");
    cr_assert_eq(json_array_size(s->files), 2);
    cr_assert_eq(json_array_size(s->problems), 2);
    const char *e0 = json_string_value(json_object_get(json_array_get(s->problems, 0), "error"));
    const char *e1 = json_string_value(json_object_get(json_array_get(s->problems, 1), "error"));
    cr_assert(strstr(e0, "c.json: entries.c.cron"), "%s", e0);
    cr_assert(strstr(e1, "nope.json does not exist"), "%s", e1);
    schedule_set_free(s);
    free(sub);
    free(missing);
    bpt_rm_rf(dir);
    free(dir);
}

Test(paths, env_config_and_default)
{
    char *dir = bpt_tmpdir("sched");
    config *c;
    schedule_set *s = NULL;
    bp_error err = {0};
    free(write_file(dir, "mine.json",
                    "{\"entries\": {\"m\": {\"job\": \"x.y\", \"every\": \"1h\"}}}"));

    /* config beat.schedules, relative to the config file */
    unsetenv("BETPIPE_SCHEDULES");
    c = load_config(dir, "{\"beat\": {\"schedules\": [\"mine.json\"]}}");
    cr_assert_eq(schedule_load_for(c, &s, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(s->n, 1);
    cr_assert_str_eq(s->entries[0].name, "m");
    cr_assert(strstr(s->source, "config beat.schedules"), "%s", s->source);
    schedule_set_free(s);

    /* the environment wins; "" means no files at all */
    setenv("BETPIPE_SCHEDULES", "", 1);
    cr_assert_eq(schedule_load_for(c, &s, &err), BP_OK);
    cr_assert_eq(s->n, 0);
    cr_assert_eq(json_array_size(s->problems), 0);
    schedule_set_free(s);
    config_free(c);

    /* nothing set: the build tree's share/betpipe/schedules, i.e. the shipped default.json */
    unsetenv("BETPIPE_SCHEDULES");
    char *empty = util_asprintf("%s/empty", dir);
    cr_assert_eq(util_mkdir_p(empty, 0755, NULL), BP_OK);
    c = load_config(empty, NULL);
    free(empty);
    cr_assert_eq(schedule_load_for(c, &s, &err), BP_OK, "%s", err.msg);
    cr_assert(strstr(s->source, "default ("), "%s", s->source);
    cr_assert_eq(json_array_size(s->problems), 0);
    cr_assert(schedule_find(s, "train_all"), "default.json found from the executable");
    schedule_set_free(s);
    config_free(c);
    bpt_rm_rf(dir);
    free(dir);
}

Test(paths, beat_config_section_is_validated)
{
    char *dir = bpt_tmpdir("sched");
    config *c = load_config(dir, "{\"beat\": {\"enable\": false}}");
    bp_error err = {0};
    schedule_set *s = NULL;
    cr_assert_eq(schedule_check_config(c, &err), BP_E_CONFIG);
    cr_assert(strstr(err.msg, "betpipe.json: config.beat: unknown field") &&
                  strstr(err.msg, "enable"),
              "%s", err.msg);
    cr_assert_eq(schedule_load_for(c, &s, &err), BP_E_CONFIG);
    config_free(c);
    c = load_config(dir, "{\"beat\": {\"enabled\": false}}");
    cr_assert(!schedule_beat_enabled(c));
    config_free(c);
    c = load_config(dir, "{\"daemon\": {\"beat\": false}}");
    cr_assert(!schedule_beat_enabled(c));
    config_free(c);
    c = load_config(dir, "{}");
    cr_assert(schedule_beat_enabled(c));
    config_free(c);
    bpt_rm_rf(dir);
    free(dir);
}

/* ============================================================================================
 * Slots
 * ========================================================================================== */

static int64_t next(const schedule_entry *e, const char *after)
{
    int64_t slot = 0;
    cr_assert_eq(schedule_next_slot(e, at(after), &slot), BP_OK);
    return slot;
}

Test(slots, every_is_aligned_to_the_epoch)
{
    schedule_set *s = parse_ok("{\"entries\": {\"q\": {\"job\": \"x.y\", \"every\": \"15m\"},"
                               " \"s\": {\"job\": \"x.y\", \"every\": \"1s\"},"
                               " \"odd\": {\"job\": \"x.y\", \"every\": \"7s\"}}}");
    const schedule_entry *q = schedule_find(s, "q"), *sec = schedule_find(s, "s");
    const schedule_entry *odd = schedule_find(s, "odd");
    cr_assert_eq(next(q, "2026-11-22T10:07:31.5Z"), at("2026-11-22T10:15:00Z"));
    cr_assert_eq(next(q, "2026-11-22T10:15:00Z"), at("2026-11-22T10:30:00Z"), "strictly after");
    cr_assert_eq(next(q, "2026-11-22T10:14:59.999Z"), at("2026-11-22T10:15:00Z"));
    cr_assert_eq(next(sec, "2026-11-22T10:00:00.001Z"), at("2026-11-22T10:00:01Z"));
    /* 7 s slots are multiples of 7 s since 1970, whoever computes them */
    int64_t o = next(odd, "2026-11-22T10:00:00Z");
    cr_assert_eq((o / 1000) % 7, 0);
    cr_assert(o > at("2026-11-22T10:00:00Z") && o <= at("2026-11-22T10:00:07Z"));

    int64_t prev[4];
    size_t n = 0;
    cr_assert_eq(schedule_prev_slots(q, at("2026-11-22T10:15:00Z"), 3600000, prev, 4, &n), BP_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(prev[0], at("2026-11-22T10:00:00Z"), "strictly before, newest first");
    cr_assert_eq(prev[3], at("2026-11-22T09:15:00Z"));
    cr_assert_eq(schedule_prev_slots(q, at("2026-11-22T10:15:00Z"), 1800000, prev, 4, &n), BP_OK);
    cr_assert_eq(n, 2, "a 30-minute window holds 10:00 and 09:45 only");
    schedule_set_free(s);
}

Test(slots, cron_in_london_across_dst)
{
    schedule_set *s = parse_ok("{\"timezone\": \"Europe/London\", \"entries\": {"
                               " \"one\": {\"job\": \"x.y\", \"cron\": \"0 1 * * *\"},"
                               " \"two\": {\"job\": \"x.y\", \"cron\": \"0 2 * * *\"},"
                               " \"hourly\": {\"job\": \"x.y\", \"cron\": \"0 * * * *\"},"
                               " \"mon\": {\"job\": \"x.y\", \"cron\": \"0 3 * * MON\"}}}");
    const schedule_entry *one = schedule_find(s, "one"), *two = schedule_find(s, "two");
    const schedule_entry *hourly = schedule_find(s, "hourly"), *mon = schedule_find(s, "mon");
    /* winter: GMT = UTC; summer: BST = UTC+1 */
    cr_assert_eq(next(two, "2026-11-22T12:00:00Z"), at("2026-11-23T02:00:00Z"));
    cr_assert_eq(next(two, "2026-07-01T12:00:00Z"), at("2026-07-02T01:00:00Z"));
    /* spring forward: 01:00 does not exist on 29 March; it fires when the gap ends, 02:00 BST */
    cr_assert_eq(next(one, "2026-03-28T12:00:00Z"), at("2026-03-29T01:00:00Z"));
    cr_assert_eq(next(two, "2026-03-28T12:00:00Z"), at("2026-03-29T01:00:00Z"),
                 "02:00 BST is the same instant");
    /* fall back: 01:00 happens twice on 25 October; a fixed-time entry fires once */
    cr_assert_eq(next(one, "2026-10-24T12:00:00Z"), at("2026-10-25T00:00:00Z"));
    cr_assert_eq(next(one, "2026-10-25T00:00:00Z"), at("2026-10-26T01:00:00Z"));
    /* ... and an hourly one follows real time through the repeated hour */
    cr_assert_eq(next(hourly, "2026-10-25T00:00:00Z"), at("2026-10-25T01:00:00Z"));
    cr_assert_eq(next(mon, "2026-11-22T12:00:00Z"), at("2026-11-23T03:00:00Z"));

    /* previous slots walk the same rules backwards, newest first */
    int64_t prev[3];
    size_t n = 0;
    cr_assert_eq(schedule_prev_slots(one, at("2026-10-27T12:00:00Z"), 4 * 86400000LL, prev, 3, &n),
                 BP_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(prev[0], at("2026-10-27T01:00:00Z"));
    cr_assert_eq(prev[1], at("2026-10-26T01:00:00Z"));
    cr_assert_eq(prev[2], at("2026-10-25T00:00:00Z"), "the repeated 01:00 counted once");
    cr_assert_eq(schedule_prev_slots(two, at("2026-11-23T02:00:00Z"), 3600000, prev, 3, &n), BP_OK);
    cr_assert_eq(n, 0, "no 02:00 in the hour before 02:00");
    schedule_set_free(s);
}

Test(slots, ids)
{
    char id[BP_JOB_ID_SIZE], name[64], buf[32];
    int64_t slot = 0;
    schedule_slot_id("collect_odds", at("2026-11-22T10:15:00Z"), id, sizeof id);
    cr_assert_str_eq(id, "beat:collect_odds:2026-11-22T10:15:00Z");
    cr_assert(schedule_parse_slot_id(id, name, sizeof name, &slot));
    cr_assert_str_eq(name, "collect_odds");
    cr_assert_eq(slot, at("2026-11-22T10:15:00Z"));
    cr_assert(!schedule_parse_slot_id("beat:x:manual-0190e2f4-0000-7000-8000-000000000000", name,
                                      sizeof name, &slot));
    cr_assert(
        !schedule_parse_slot_id("0190e2f4-0000-7000-8000-000000000000", name, sizeof name, &slot));
    /* the longest name still fits a manual id in a job id */
    char longest[SCHEDULE_NAME_MAX + 1];
    memset(longest, 'n', SCHEDULE_NAME_MAX);
    longest[SCHEDULE_NAME_MAX] = '\0';
    int len = snprintf(id, sizeof id, "beat:%s:manual-%s", longest,
                       "0190e2f4-0000-7000-8000-000000000000");
    cr_assert_lt(len, BP_JOB_ID_SIZE);
    iso(at("2026-02-28T23:59:59Z") + 1000, buf, sizeof buf);
    cr_assert_str_eq(buf, "2026-03-01T00:00:00Z");
    schedule_unique_key("collect_odds", buf, sizeof buf);
    cr_assert_str_eq(buf, "beat:collect_odds");
}

Test(slots, describe)
{
    schedule_set *s = parse_ok("{\"entries\": {\"q\": {\"job\": \"x.y\", \"every\": \"15m\"},"
                               " \"d\": {\"job\": \"x.y\", \"every\": \"2d\"},"
                               " \"c\": {\"job\": \"x.y\", \"cron\": \"0 3 * * MON\"}}}");
    char buf[512];
    schedule_describe(schedule_find(s, "q"), buf, sizeof buf);
    cr_assert_str_eq(buf, "every 15m");
    schedule_describe(schedule_find(s, "d"), buf, sizeof buf);
    cr_assert_str_eq(buf, "every 2d");
    schedule_describe(schedule_find(s, "c"), buf, sizeof buf);
    cr_assert_str_eq(buf, "cron 0 3 * * MON (at 03:00 on Monday)");
    schedule_set_free(s);
}

/* ============================================================================================
 * The shipped schedule
 * ========================================================================================== */

Test(default_schedule, marabet_entries_at_their_times)
{
    char *path = util_asprintf("%s/schedules/default.json", bpt_env("BP_TEST_SOURCE_DIR"));
    schedule_set *s = schedule_set_new();
    bp_error err = {0};
    cr_assert_eq(schedule_load_file(s, path, &err), BP_OK, "%s", err.msg);
    static const struct {
        const char *name, *job, *after, *expect;
    } cases[] = {
        /* MaraBet: train daily 02:00, odds every 15 min, backtest Monday 03:00, cleanup 01:00 */
        {"train_all", "ml.train_all", "2026-11-22T12:00:00Z", "2026-11-23T02:00:00Z"},
        {"train_all", "ml.train_all", "2026-07-01T12:00:00Z", "2026-07-02T01:00:00Z"},
        {"collect_odds", "data.collect_odds", "2026-11-22T10:07:00Z", "2026-11-22T10:15:00Z"},
        {"backtest_weekly", "backtest.weekly", "2026-11-22T12:00:00Z", "2026-11-23T03:00:00Z"},
        {"cleanup_cache", "maint.cleanup_cache", "2026-11-22T12:00:00Z", "2026-11-23T01:00:00Z"},
        /* what the pipeline needs */
        {"collect_stats", "data.collect_stats", "2026-11-22T10:07:00Z", "2026-11-22T10:10:00Z"},
        {"value_bets", "alerts.value_bets", "2026-11-22T10:15:00Z", "2026-11-22T10:18:00Z"},
        {"weekly_report", "alerts.weekly_report", "2026-11-22T12:00:00Z", "2026-11-23T08:00:00Z"},
        {"optimize_db", "maint.optimize_db", "2026-11-22T12:00:00Z", "2026-11-29T04:00:00Z"},
        {"backup_db", "maint.backup_db", "2026-11-22T12:00:00Z", "2026-11-23T03:30:00Z"},
        /* fixtures daily at 00:40 London, before training: 00:40 GMT in winter, 23:40 UTC in
         * summer */
        {"collect_fixtures", "data.collect_fixtures", "2026-11-22T12:00:00Z",
         "2026-11-23T00:40:00Z"},
        {"collect_fixtures", "data.collect_fixtures", "2026-07-01T12:00:00Z",
         "2026-07-01T23:40:00Z"},
    };
    cr_assert_eq(s->n, 10);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const schedule_entry *e = schedule_find(s, cases[i].name);
        char got[32];
        cr_assert(e, "entry %s", cases[i].name);
        cr_assert_str_eq(e->job_type, cases[i].job);
        cr_assert(e->enabled);
        iso(next(e, cases[i].after), got, sizeof got);
        cr_assert_str_eq(got, cases[i].expect, "%s after %s", cases[i].name, cases[i].after);
        if (e->is_cron) {
            cr_assert_str_eq(tz_name(e->zone), "Europe/London");
        }
    }
    /* the value-bet scan is 3 minutes after every odds collection, all day */
    const schedule_entry *odds = schedule_find(s, "collect_odds");
    const schedule_entry *vb = schedule_find(s, "value_bets");
    int64_t o = at("2026-03-28T22:00:00Z"), v;
    for (int i = 0; i < 4 * 24 * 2; i++) { /* two days across the spring-forward change */
        cr_assert_eq(schedule_next_slot(odds, o, &o), BP_OK);
        cr_assert_eq(schedule_next_slot(vb, o, &v), BP_OK);
        cr_assert_eq(v - o, 180000, "value_bets %lld s after odds", (long long)((v - o) / 1000));
    }
    /* stale alerts are worse than none: no catch-up, and they expire */
    cr_assert_eq(vb->missed, SCHEDULE_MISSED_SKIP);
    cr_assert_gt(vb->expires_ms, 0);
    cr_assert_eq(schedule_find(s, "train_all")->missed, SCHEDULE_MISSED_RUN_ONCE);
    /* predictions need the coming fixtures: a missed run is caught up */
    cr_assert_eq(schedule_find(s, "collect_fixtures")->missed, SCHEDULE_MISSED_RUN_ONCE);
    schedule_set_free(s);
    free(path);
}
