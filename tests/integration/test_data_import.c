/*
 * test_data_import.c - `betpipe run data.import --wait` with the real binary, the real plugins
 * (job-data.so, collector-football_data.so) and a real store: the bundled history (counts,
 * Pinnacle closing odds, idempotent re-import), garbage rows (rejected and named, good rows
 * kept), a store failure midway through a file (that file rolled back whole, the others kept),
 * and CSVs over HTTP from a loopback server (season from the URL, an HTML page, a 404, a body
 * cut short).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "engine.h"
#include "http_fixture.h"
#include "store.h"
#include "store_domain.h"
#include "support.h"

static char *dd;  /* the instance's data dir */
static char *src; /* a folder of CSVs made by the test */

static void setup(void)
{
    bpt_engine_env_setup();
    unsetenv("BETPIPE_DATA_SOURCE");
    dd = bpt_tmpdir("import");
    src = bpt_tmpdir("import-src");
}

static void teardown(void)
{
    bpt_rm_rf(dd);
    bpt_rm_rf(src);
    free(dd);
    free(src);
}

TestSuite(data_import, .init = setup, .fini = teardown, .timeout = 600);

/* Run data.import with `args` (JSON text) through the CLI; returns the rec record. */
static json_t *run_import(const char *args)
{
    bpt_result r = bpt_betpipe(dd, "run", "data.import", "--args", args, "--max-retries", "0",
                               "--wait", "--json", "--timeout", "300s", NULL);
    json_t *rec = json_loads(r.out, 0, NULL);
    cr_assert(rec, "no JSON from the CLI (exit %d)\nstdout: %s\nstderr: %s", r.exit_code, r.out,
              r.err);
    bpt_result_free(&r);
    return rec;
}

static const char *state_of(const json_t *rec)
{
    return json_string_value(json_object_get(rec, "state"));
}

static json_int_t count(const json_t *rec, const char *group, const char *key)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(rec, "result"), group), key));
}

static store *open_store(void)
{
    char path[1024];
    store *s = NULL;
    bp_error err = {0};
    snprintf(path, sizeof path, "%s/betpipe.db", dd);
    cr_assert_eq(store_open(path, &s, &err), BP_OK, "%s", err.msg);
    return s;
}

static int64_t league_id(store *s, const char *code)
{
    json_t *l = NULL;
    cr_assert_eq(store_find_league(s, NULL, "betpipe", code, &l, NULL), BP_OK);
    int64_t id = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    return id;
}

/* Matches of a league and season in the store. */
static size_t n_matches(store *s, const char *code, int32_t season)
{
    bp_match_query q = {.struct_size = sizeof q, .league_id = league_id(s, code), .season = season};
    json_t *arr = NULL;
    cr_assert_eq(store_list_matches(s, &q, &arr, NULL), BP_OK);
    size_t n = json_array_size(arr);
    json_decref(arr);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    char *text = bpt_slurp(from);
    char dir[1024];
    FILE *f;
    cr_assert(text, "cannot read %s", from);
    snprintf(dir, sizeof dir, "%s", to);
    *strrchr(dir, '/') = '\0';
    for (char *p = dir + 1; *p; p++) { /* mkdir -p */
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    }
    mkdir(dir, 0755);
    f = fopen(to, "wb");
    cr_assert(f, "cannot write %s", to);
    fputs(text, f);
    fclose(f);
    free(text);
}

static void bundled(const char *rel, const char *to_rel)
{
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/data/football-data/%s", bpt_env("BP_TEST_SOURCE_DIR"), rel);
    snprintf(to, sizeof to, "%s/%s", src, to_rel);
    copy_file(from, to);
}

Test(data_import, bundled_history_counts_closing_odds_and_idempotent_reimport)
{
    json_t *rec = run_import("{}");
    json_t *res = json_object_get(rec, "result");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    cr_assert_eq(json_integer_value(json_object_get(res, "files")), 41);
    cr_assert_eq(json_integer_value(json_object_get(res, "rows")), 14544);
    cr_assert_eq(count(rec, "matches", "inserted"), 14544);
    cr_assert_gt(count(rec, "odds", "inserted"), 800000);
    cr_assert_eq(json_integer_value(json_object_get(res, "rejected_rows")), 0);
    cr_assert_eq(json_array_size(json_object_get(res, "teams_created")), 0,
                 "every bundled name is a seeded team");
    cr_assert(strstr(json_string_value(json_object_get(res, "source_from")), "bundled"));
    cr_assert(strstr(json_string_value(json_object_get(res, "summary")), "41 files: 14544 matches"),
              "%s", json_string_value(json_object_get(res, "summary")));
    json_int_t odds_total = count(rec, "odds", "inserted");
    json_decref(rec);

    store *s = open_store();
    cr_assert_eq(n_matches(s, "E0", 2023), 380);
    cr_assert_eq(n_matches(s, "D1", 2023), 306);
    cr_assert_eq(n_matches(s, "SP1", 2019), 380, "COVID season: July 2020 matches stay 2019-20");
    /* every E0 2023-24 match has Pinnacle's closing 1X2 */
    bp_match_query q = {.struct_size = sizeof q, .league_id = league_id(s, "E0"), .season = 2023};
    json_t *arr = NULL;
    size_t i, with_closing = 0;
    json_t *m;
    cr_assert_eq(store_list_matches(s, &q, &arr, NULL), BP_OK);
    json_array_foreach(arr, i, m)
    {
        json_t *quotes = NULL, *qt;
        size_t k, pinnacle = 0;
        cr_assert_eq(store_get_odds(s, json_integer_value(json_object_get(m, "id")), BP_MARKET_1X2,
                                    BP_ODDS_CLOSING, &quotes, NULL),
                     BP_OK);
        json_array_foreach(quotes, k, qt)
        {
            if (strcmp(json_string_value(json_object_get(qt, "bookmaker")), "pinnacle") == 0) {
                cr_assert_gt(json_real_value(json_object_get(qt, "price")), 1.0);
                pinnacle++;
            }
        }
        with_closing += pinnacle == 3;
        json_decref(quotes);
    }
    cr_assert_eq(with_closing, 380);
    /* a known result: the first match of E0 2023-24, Burnley 0-3 Man City on 11/08/2023 20:00 */
    json_t *first = json_array_get(arr, 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(first, "home"), "name")),
                     "Burnley");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(first, "away"), "name")),
                     "Man City");
    cr_assert_eq(json_integer_value(json_object_get(first, "away_goals")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(first, "kickoff")),
                     "2023-08-11T19:00:00.000Z", "20:00 BST");
    json_decref(arr);
    store_close(s);

    /* the same data again changes nothing */
    rec = run_import("{}");
    cr_assert_str_eq(state_of(rec), "SUCCESS");
    cr_assert_eq(count(rec, "matches", "inserted"), 0);
    cr_assert_eq(count(rec, "matches", "updated"), 0);
    cr_assert_eq(count(rec, "matches", "unchanged"), 14544);
    cr_assert_eq(count(rec, "odds", "inserted"), 0);
    cr_assert_eq(count(rec, "odds", "updated"), 0);
    cr_assert_eq(count(rec, "odds", "unchanged"), odds_total);
    json_decref(rec);
}

Test(data_import, garbage_rows_are_rejected_and_named_good_rows_kept)
{
    char from[1024], to[1024], args[1200];
    snprintf(from, sizeof from, "%s/football-data/garbage-rows.csv", bpt_env("BP_TEST_DATA_DIR"));
    snprintf(to, sizeof to, "%s/E0/2023-24.csv", src);
    copy_file(from, to);
    snprintf(args, sizeof args, "{\"source\": \"file://%s\"}", src);
    json_t *rec = run_import(args);
    json_t *res = json_object_get(rec, "result");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    cr_assert_eq(json_integer_value(json_object_get(res, "rows")), 4);
    cr_assert_eq(json_integer_value(json_object_get(res, "rejected_rows")), 10);
    json_t *rejected = json_object_get(res, "rejected");
    cr_assert_eq(json_array_size(rejected), 10);
    /* each rejection names the file, the line and why */
    json_t *bad_date = json_array_get(rejected, 1);
    cr_assert_str_eq(json_string_value(json_object_get(bad_date, "file")), "E0/2023-24.csv");
    cr_assert_eq(json_integer_value(json_object_get(bad_date, "line")), 4);
    cr_assert_str_eq(json_string_value(json_object_get(bad_date, "column")), "Date");
    cr_assert(strstr(json_string_value(json_object_get(bad_date, "reason")), "'32/01/2024'"));
    cr_assert(strstr(json_string_value(json_object_get(json_array_get(rejected, 2), "reason")),
                     "B365D: 'abc' is not a price"));
    /* a zero price only drops that quote */
    cr_assert_eq(json_integer_value(json_object_get(res, "dropped_quotes")), 1);
    /* a name no alias knows is a new team, reported */
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(res, "teams_created"), 0)),
                     "E0: Brighton, Hove");
    json_decref(rec);

    store *s = open_store();
    cr_assert_eq(n_matches(s, "E0", 2023), 4);
    bp_match_query q = {.struct_size = sizeof q, .status = BP_MATCH_SCHEDULED};
    json_t *arr = NULL;
    cr_assert_eq(store_list_matches(s, &q, &arr, NULL), BP_OK);
    cr_assert_eq(json_array_size(arr), 1, "the row without a result is a scheduled match");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(json_array_get(arr, 0), "home"), "name")),
        "Man United");
    json_decref(arr);
    store_close(s);
}

Test(data_import, a_failure_midway_rolls_back_that_file_only)
{
    char args[1200], path[1024];
    bundled("E0/2022-23.csv", "E0/2022-23.csv");
    bundled("E0/2023-24.csv", "E0/2023-24.csv");
    bundled("D1/2023-24.csv", "D1/2023-24.csv");
    snprintf(args, sizeof args, "{\"source\": \"%s\", \"seasons\": [\"2022-23\"]}", src);
    json_t *rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "SUCCESS");
    json_decref(rec);

    /* The disk "fails" when the import reaches December 2023 in E0 2023-24: a trigger in the
     * real database file aborts that insert, about 150 matches into the file. */
    snprintf(path, sizeof path, "%s/betpipe.db", dd);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TRIGGER injected BEFORE INSERT ON matches "
                              "WHEN NEW.kickoff_ms >= 1701388800000 AND NEW.league_id = "
                              "(SELECT id FROM leagues WHERE code = 'E0') "
                              "BEGIN SELECT RAISE(ABORT, 'injected disk failure'); END",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);

    snprintf(args, sizeof args, "{\"source\": \"%s\"}", src);
    rec = run_import(args);
    const char *error = json_string_value(json_object_get(rec, "error"));
    cr_assert_str_eq(state_of(rec), "FAILURE");
    cr_assert(strstr(error, "1 of 3 files failed"), "%s", error);
    cr_assert(strstr(error, "E0/2023-24.csv:"), "names the file and line: %s", error);
    cr_assert(strstr(error, "injected disk failure"), "%s", error);
    json_decref(rec);

    store *s = open_store();
    cr_assert_eq(n_matches(s, "E0", 2022), 380, "stored before: kept");
    cr_assert_eq(n_matches(s, "E0", 2023), 0, "the failed file left nothing behind");
    cr_assert_eq(n_matches(s, "D1", 2023), 306, "the file after it was imported");
    store_close(s);

    /* with the disk "repaired" the same import completes */
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DROP TRIGGER injected", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "SUCCESS");
    cr_assert_eq(count(rec, "matches", "inserted"), 380);
    cr_assert_eq(count(rec, "matches", "unchanged"), 380 + 306);
    json_decref(rec);
}

Test(data_import, filters_and_bad_sources)
{
    char args[1200];
    bundled("E0/2023-24.csv", "E0/2023-24.csv");
    bundled("D1/2023-24.csv", "D1/2023-24.csv");
    bundled("D1/2022-23.csv", "D1/2022-23.csv");
    snprintf(args, sizeof args, "{\"source\": \"%s\", \"leagues\": [\"D1\"], \"seasons\": [2023]}",
             src);
    json_t *rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "SUCCESS");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "result"), "files")), 1);
    cr_assert_eq(count(rec, "matches", "inserted"), 306);
    json_decref(rec);

    rec = run_import("{\"source\": \"/no/such/folder\"}");
    cr_assert_str_eq(state_of(rec), "FAILURE");
    cr_assert(strstr(json_string_value(json_object_get(rec, "error")), "/no/such/folder"));
    json_decref(rec);

    /* a CSV whose name says no season */
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/E0/2023-24.csv", src);
    snprintf(to, sizeof to, "%s/latest.csv", src);
    copy_file(from, to);
    snprintf(args, sizeof args, "{\"source\": \"%s\"}", to);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "FAILURE");
    cr_assert(strstr(json_string_value(json_object_get(rec, "error")), "cannot tell the season"),
              "%s", json_string_value(json_object_get(rec, "error")));
    json_decref(rec);
    /* ... unless the request names exactly one season */
    snprintf(args, sizeof args, "{\"source\": \"%s\", \"seasons\": [\"2023-24\"]}", to);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    cr_assert_eq(count(rec, "matches", "inserted"), 380, "E0 was filtered out before");
    json_decref(rec);
    /* a misnamed file: every row is outside the season its name gives */
    snprintf(args, sizeof args, "{\"source\": \"%s\", \"seasons\": [\"2021-22\"]}", to);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "SUCCESS");
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(rec, "result"), "rejected_rows")), 380);
    cr_assert(
        strstr(json_string_value(json_object_get(
                   json_array_get(json_object_get(json_object_get(rec, "result"), "rejected"), 0),
                   "reason")),
               "outside season 2021-22"));
    json_decref(rec);
}

Test(data_import, csv_over_http_season_from_url_html_404_and_truncated)
{
    bpt_http *srv = bpt_http_start();
    char path[1024], url[1024], args[1200];
    snprintf(path, sizeof path, "%s/data/football-data/E0/2023-24.csv",
             bpt_env("BP_TEST_SOURCE_DIR"));
    char *csv = bpt_slurp(path);
    snprintf(path, sizeof path, "%s/football-data/html-page.csv", bpt_env("BP_TEST_DATA_DIR"));
    char *html = bpt_slurp(path);
    cr_assert(csv && html);
    bpt_http_reply ok = {.status = 200, .headers = "Content-Type: text/csv", .body = csv};
    bpt_http_script(srv, "/mmz4281/2324/E0.csv", &ok, 1);
    bpt_http_reply page = {.status = 200, .headers = "Content-Type: text/html", .body = html};
    bpt_http_script(srv, "/mmz4281/2223/E0.csv", &page, 1);
    bpt_http_reply cut = {.status = 200, .body = csv, .truncate_after = 5000};
    bpt_http_script(srv, "/mmz4281/2122/E0.csv", &cut, 1);

    snprintf(url, sizeof url, "%s/mmz4281/2324/E0.csv", bpt_http_url(srv));
    snprintf(args, sizeof args, "{\"source\": \"%s\"}", url);
    json_t *rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    cr_assert_eq(count(rec, "matches", "inserted"), 380);
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(rec, "result"), "per_file"), 0),
            "season")),
        "2023-24");
    json_decref(rec);

    snprintf(url, sizeof url, "%s/mmz4281/2223/E0.csv", bpt_http_url(srv));
    snprintf(args, sizeof args, "{\"source\": \"%s\"}", url);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "FAILURE");
    cr_assert(strstr(json_string_value(json_object_get(rec, "error")), "HTML"), "%s",
              json_string_value(json_object_get(rec, "error")));
    json_decref(rec);

    snprintf(url, sizeof url, "%s/mmz4281/1920/E0.csv", bpt_http_url(srv));
    snprintf(args, sizeof args, "{\"source\": \"%s\"}", url);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "FAILURE");
    cr_assert(strstr(json_string_value(json_object_get(rec, "error")), "HTTP 404"), "%s",
              json_string_value(json_object_get(rec, "error")));
    json_decref(rec);

    snprintf(url, sizeof url, "%s/mmz4281/2122/E0.csv", bpt_http_url(srv));
    snprintf(args, sizeof args, "{\"source\": \"%s\"}", url);
    rec = run_import(args);
    cr_assert_str_eq(state_of(rec), "FAILURE");
    cr_assert_gt(bpt_http_hits(srv, "/mmz4281/2122/E0.csv"), 1, "a body cut short is retried");
    json_decref(rec);

    store *s = open_store();
    cr_assert_eq(n_matches(s, "E0", 2022), 0, "the HTML page stored nothing");
    cr_assert_eq(n_matches(s, "E0", 2021), 0, "the cut body stored nothing");
    cr_assert_eq(n_matches(s, "E0", 2023), 380);
    store_close(s);
    free(csv);
    free(html);
    bpt_http_stop(srv);
}

typedef struct stored_ctx {
    const char *db;
} stored_ctx;

static int64_t count_sql(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static bool some_file_stored(void *ud)
{
    stored_ctx *c = ud;
    return count_sql(c->db, "SELECT count(*) FROM matches") > 0;
}

Test(data_import, revoked_midway_keeps_whole_files_only)
{
    char db[1024], id[BP_JOB_ID_SIZE];
    pid_t d = bpt_daemon_start(dd, NULL);
    app *a = bpt_app_open(dd);
    stored_ctx ctx = {db};
    snprintf(db, sizeof db, "%s/betpipe.db", dd);
    bpt_enqueue(a, "data.import", "{}", id);
    /* revoke once the first files are committed, while the rest is being imported */
    cr_assert(bpt_wait_for(some_file_stored, &ctx, 60000), "nothing was imported");
    bpt_result r = bpt_betpipe(dd, "revoke", id, NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    bpt_result_free(&r);
    job *j = bpt_wait_final(a, id, 60000);
    cr_assert(j, "the import did not stop");
    cr_assert_eq(j->state, JOB_REVOKED, "state %s: %s", job_state_name(j->state),
                 j->error ? j->error : "");
    job_free(j);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 20000), 0);

    /* every season is there whole or not at all */
    int64_t partial =
        count_sql(db, "SELECT count(*) FROM (SELECT count(*) AS n FROM matches GROUP BY season_id) "
                      "WHERE n NOT IN (306, 380)");
    int64_t total = count_sql(db, "SELECT count(*) FROM matches");
    cr_assert_eq(partial, 0, "a season was left half imported");
    cr_assert(total > 0 && total < 14544, "%lld matches: the import stopped midway",
              (long long)total);
    cr_assert_eq(count_sql(db, "SELECT count(*) FROM odds o LEFT JOIN matches m ON m.id = "
                               "o.match_id WHERE m.id IS NULL"),
                 0);
}

Test(data_import, default_source_config_then_environment_then_bundled)
{
    char cfg[1024], other[1200];
    bundled("E0/2023-24.csv", "env/E0/2023-24.csv");
    bundled("D1/2023-24.csv", "cfg/D1/2023-24.csv");
    snprintf(other, sizeof other, "%s/env", src);
    setenv("BETPIPE_DATA_SOURCE", other, 1);
    json_t *rec = run_import("{}");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    json_t *res = json_object_get(rec, "result");
    cr_assert_str_eq(json_string_value(json_object_get(res, "source_from")), "BETPIPE_DATA_SOURCE");
    cr_assert_eq(json_integer_value(json_object_get(res, "files")), 1);
    cr_assert_eq(count(rec, "matches", "inserted"), 380);
    json_decref(rec);

    snprintf(cfg, sizeof cfg, "%s/betpipe.json", dd);
    FILE *f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f, "{\"plugins\": {\"config\": {\"data\": {\"source\": \"file://%s/cfg\"}}}}", src);
    fclose(f);
    rec = run_import("{}");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s",
                     json_string_value(json_object_get(rec, "error")));
    res = json_object_get(rec, "result");
    cr_assert(strstr(json_string_value(json_object_get(res, "source_from")), "config"));
    cr_assert_eq(count(rec, "matches", "inserted"), 306, "the config wins over the environment");
    json_decref(rec);
    unsetenv("BETPIPE_DATA_SOURCE");
}
