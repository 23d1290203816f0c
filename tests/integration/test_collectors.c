/*
 * test_collectors.c - the API collectors (collector-api_football.so, collector-the_odds_api.so)
 * through the real binary and the data.* jobs, against a real HTTP server on loopback that
 * replays the recorded payloads: odds, paged odds, fixtures, live fixtures, scores, standings and
 * team statistics into the store; every recorded error body; quota exhaustion (a persisted
 * pause, no further request); a 429 then success; malformed JSON; a body cut short; nothing
 * configured; keys that never show up in output. data.collect_fixtures by league and season, by
 * date range and by default, with ml.predict finding the upcoming ones; what collect_odds and
 * collect_stats put in a daemon's cache, read back with `betpipe cache get`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <criterion/criterion.h>

#include "engine.h"
#include "http_fixture.h"
#include "store.h"
#include "store_domain.h"
#include "support.h"

#define AF_KEY  "af-SECRET-key-0042"
#define TOA_KEY "toa-SECRET-key-0043"

static char *dd;
static bpt_http *srv;
static pid_t daemon_pid; /* a test's daemon, stopped by teardown if the test did not get to */

static void setup(void)
{
    bpt_engine_env_setup();
    unsetenv("BETPIPE_API_FOOTBALL_KEY");
    unsetenv("BETPIPE_ODDS_API_KEY");
    dd = bpt_tmpdir("collectors");
    srv = bpt_http_start();
}

static void teardown(void)
{
    if (daemon_pid > 0) {
        bpt_stop(daemon_pid, SIGTERM, 15000);
        daemon_pid = 0;
    }
    bpt_http_stop(srv);
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(collectors, .init = setup, .fini = teardown, .timeout = 300);

/* Configure the collectors: which ones get a key (in the config file), all pointed at the
 * loopback server, with short waits. `extra_af` / `extra_toa` are more JSON members or "". */
static void configure(bool af, bool toa, const char *extra_af, const char *extra_toa)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/betpipe.json", dd);
    f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "{\"plugins\": {\"config\": {"
            "\"api_football\": {%s\"base_url\": \"%s\", \"retry_base_ms\": 20, \"max_attempts\": "
            "2, \"minute_pause_ms\": 50, \"quota_reserve\": 0%s%s},"
            "\"the_odds_api\": {%s\"base_url\": \"%s\", \"retry_base_ms\": 20, \"max_attempts\": "
            "2%s%s}}}}",
            af ? "\"api_key\": \"" AF_KEY "\", " : "", bpt_http_url(srv), *extra_af ? ", " : "",
            extra_af, toa ? "\"api_key\": \"" TOA_KEY "\", " : "", bpt_http_url(srv),
            *extra_toa ? ", " : "", extra_toa);
    fclose(f);
}

static bpt_http_reply rec(const char *rel)
{
    char base[1024];
    snprintf(base, sizeof base, "%s/api-fixtures/%s", bpt_env("BP_TEST_DATA_DIR"), rel);
    return bpt_http_recorded(srv, base);
}

static void serve(const char *path, const char *rel)
{
    bpt_http_reply r = rec(rel);
    bpt_http_script(srv, path, &r, 1);
}

/* The recorded body of `rel` as JSON, to change a field before serving it. */
static json_t *rec_json(const char *rel)
{
    bpt_http_reply r = rec(rel);
    json_t *doc = json_loadb(r.body, r.body_len ? r.body_len : strlen(r.body), 0, NULL);
    cr_assert(doc, "%s: the recorded body is not JSON", rel);
    return doc;
}

/* Serve `doc` at `path` with the status and headers recorded for `rel`. */
static void serve_json(const char *path, const char *rel, const json_t *doc)
{
    bpt_http_reply r = rec(rel);
    char *body = json_dumps(doc, JSON_COMPACT);
    cr_assert(body);
    r.body = body;
    r.body_len = strlen(body);
    bpt_http_script(srv, path, &r, 1); /* copies the body */
    free(body);
}

/* Run a data job through the CLI with debug logging; the keys must appear nowhere in what it
 * printed. Returns the job record. */
static json_t *run_job(const char *type, const char *args)
{
    bpt_result r = bpt_betpipe(dd, "--log-level", "debug", "run", type, "--args", args,
                               "--max-retries", "0", "--wait", "--json", NULL);
    json_t *job_rec = json_loads(r.out, 0, NULL);
    cr_assert(job_rec, "no JSON (exit %d)\nstdout: %s\nstderr: %s", r.exit_code, r.out, r.err);
    cr_assert(!strstr(r.out, AF_KEY) && !strstr(r.err, AF_KEY), "the API-Football key leaked");
    cr_assert(!strstr(r.out, TOA_KEY) && !strstr(r.err, TOA_KEY), "The Odds API key leaked");
    bpt_result_free(&r);
    return job_rec;
}

static const char *state_of(const json_t *j)
{
    return json_string_value(json_object_get(j, "state"));
}

static const char *error_of(const json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    return e ? e : "";
}

/* run_job for a job that must fail with `expect` in its error. */
static json_t *run_fails(const char *type, const char *args, const char *expect)
{
    json_t *j = run_job(type, args);
    cr_assert_str_eq(state_of(j), "FAILURE", "%s %s", type, args);
    cr_assert(strstr(error_of(j), expect), "%s %s: %s", type, args, error_of(j));
    return j;
}

/* run_job for a job that must succeed. */
static json_t *run_ok(const char *type, const char *args)
{
    json_t *j = run_job(type, args);
    cr_assert_str_eq(state_of(j), "SUCCESS", "%s %s: %s", type, args, error_of(j));
    return j;
}

static const json_t *source(const json_t *j, const char *name)
{
    return json_object_get(json_object_get(json_object_get(j, "result"), "sources"), name);
}

static json_int_t counter(const json_t *src, const char *group, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(src, group), key));
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

static json_t *all_matches(store *s)
{
    json_t *arr = NULL;
    cr_assert_eq(store_list_matches(s, NULL, &arr, NULL), BP_OK);
    return arr;
}

static const json_t *match_of(const json_t *arr, const char *home)
{
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (strcmp(json_string_value(json_object_get(json_object_get(m, "home"), "name")), home) ==
            0) {
            return m;
        }
    }
    return NULL;
}

/* ---- nothing configured / one source configured ---------------------------------------------- */

Test(collectors, nothing_configured_fails_and_says_what_to_configure)
{
    configure(false, false, "", "");
    json_t *j = run_fails("data.collect_odds", "{}", "nothing is configured to collect odds");
    cr_assert(strstr(error_of(j), "BETPIPE_API_FOOTBALL_KEY") &&
                  strstr(error_of(j), "BETPIPE_ODDS_API_KEY"),
              "%s", error_of(j));
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 0);
    json_decref(j);
}

Test(collectors, the_odds_api_odds_with_the_other_source_skipped)
{
    configure(false, false, "", "");
    setenv("BETPIPE_ODDS_API_KEY", TOA_KEY, 1); /* the key from the environment */
    serve("/v4/sports/soccer_epl/odds", "the-odds-api/odds");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert(strstr(json_string_value(json_object_get(source(j, "api_football"), "skipped")),
                     "no API-Football key"));
    const json_t *toa = source(j, "the_odds_api");
    cr_assert_eq(counter(toa, "matches", "inserted"), 2);
    json_int_t odds = counter(toa, "odds", "inserted");
    cr_assert_gt(odds, 10);
    cr_assert_eq(json_array_size(json_object_get(toa, "teams_created")), 0,
                 "\"Brighton and Hove Albion\" and \"Manchester City\" are aliases");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "cached")), 2,
                 "latest odds of both matches into the cache");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(toa, "quota"), "remaining")),
                 392);
    /* what the server saw: the key as the apiKey parameter, decimal odds */
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/v4/sports/soccer_epl/odds", 0, &seen));
    cr_assert(strstr(seen.uri, "apiKey=" TOA_KEY), "%s", seen.uri);
    cr_assert(strstr(seen.uri, "oddsFormat=decimal") && strstr(seen.uri, "markets=h2h%2Ctotals"),
              "%s", seen.uri);
    json_decref(j);

    /* the same snapshot again: nothing new */
    j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    toa = source(j, "the_odds_api");
    cr_assert_eq(counter(toa, "odds", "inserted"), 0);
    cr_assert_eq(counter(toa, "odds", "unchanged"), odds);
    cr_assert_eq(counter(toa, "matches", "unchanged"), 2);
    json_decref(j);

    store *s = open_store();
    json_t *arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 2);
    const json_t *m = match_of(arr, "Brighton");
    cr_assert(m, "the event of \"Brighton and Hove Albion\" is Brighton's match");
    json_t *quotes = NULL;
    cr_assert_eq(store_get_odds(s, json_integer_value(json_object_get(m, "id")), BP_MARKET_1X2,
                                BP_ODDS_LATEST, &quotes, NULL),
                 BP_OK);
    cr_assert_gt(json_array_size(quotes), 0);
    json_decref(quotes);
    json_decref(arr);
    store_close(s);
    unsetenv("BETPIPE_ODDS_API_KEY");
}

/* ---- API-Football ------------------------------------------------------------------------------
 */

Test(collectors, api_football_odds_fetch_their_fixtures_and_store_both)
{
    configure(true, false, "", "");
    serve("/odds", "api-football/odds");
    serve("/fixtures", "api-football/fixtures");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    const json_t *af = source(j, "api_football");
    cr_assert_eq(json_integer_value(json_object_get(af, "requests")), 2, "odds, then fixtures");
    cr_assert_eq(counter(af, "matches", "inserted"), 3);
    cr_assert_gt(counter(af, "odds", "inserted"), 0);
    cr_assert(strstr(json_string_value(json_object_get(source(j, "the_odds_api"), "skipped")),
                     "BETPIPE_ODDS_API_KEY"));
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    cr_assert(strstr(seen.uri, "ids=9900003"), "%s", seen.uri);
    cr_assert(bpt_http_request_seen(srv, "/odds", 0, &seen));
    cr_assert(strstr(seen.uri, "league=39") && strstr(seen.uri, "season=2024"), "%s", seen.uri);
    char *key = bpt_http_seen_header(&seen, "x-apisports-key");
    cr_assert_str_eq(key, AF_KEY);
    free(key);
    json_decref(j);

    store *s = open_store();
    int64_t id = 0;
    cr_assert_eq(store_find_match(s, NULL, BP_SOURCE_API_FOOTBALL, "9900003", &id, NULL), BP_OK);
    json_t *quotes = NULL;
    cr_assert_eq(store_get_odds(s, id, -1, BP_ODDS_LATEST, &quotes, NULL), BP_OK);
    cr_assert_gt(json_array_size(quotes), 0);
    json_decref(quotes);
    json_t *arr = all_matches(s);
    const json_t *m = match_of(arr, "Man United");
    cr_assert(m, "\"Manchester United\" is football-data's Man United");
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "finished");
    cr_assert_eq(json_integer_value(json_object_get(m, "home_goals")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "away"), "name")),
                     "Tottenham");
    json_decref(arr);
    store_close(s);
}

Test(collectors, api_football_odds_pages_and_unknown_fixture_rejected)
{
    configure(true, false, "", "");
    serve("/odds", "api-football/odds-paged");
    serve("/fixtures", "api-football/fixtures");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 3, "pages 1, 2 and 3");
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/odds", 2, &seen));
    cr_assert(strstr(seen.uri, "page=3"), "%s", seen.uri);
    const json_t *af = source(j, "api_football");
    const json_t *rej = json_array_get(json_object_get(af, "rejected"), 0);
    cr_assert(rej, "the fixture /fixtures does not know is rejected");
    cr_assert(strstr(json_string_value(json_object_get(rej, "reason")), "fixture 9900004"));
    cr_assert_str_eq(json_string_value(json_object_get(rej, "path")), "response[0]");
    cr_assert(strstr(json_string_value(json_object_get(rej, "request")), "/odds?league=39"));
    cr_assert_gt(json_integer_value(json_object_get(af, "skipped_bets")), 0);
    cr_assert_gt(json_integer_value(json_object_get(af, "dropped_prices")), 0);
    json_decref(j);
}

Test(collectors, api_football_error_bodies)
{
    static const struct {
        const char *rel;
        const char *expect;
    } cases[] = {
        {"api-football/error-bad-key-200", "error token"},
        {"api-football/error-rapidapi-invalid-key-401", "Invalid API key"},
        {"api-football/error-plan-200", "error plan"},
        {"api-football/error-ratelimit-429", "rateLimit"},
    };
    configure(true, false, "", "");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t before = bpt_http_hits(srv, "/odds");
        serve("/odds", cases[i].rel);
        json_t *j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
        cr_assert_str_eq(state_of(j), "FAILURE", "%s", cases[i].rel);
        cr_assert(strstr(error_of(j), cases[i].expect), "%s: %s", cases[i].rel, error_of(j));
        size_t hits = bpt_http_hits(srv, "/odds") - before;
        if (strstr(cases[i].rel, "429")) {
            cr_assert_eq(hits, 2, "a 429 is retried (max_attempts 2)");
        } else {
            cr_assert_eq(hits, 1, "%s is not retried", cases[i].rel);
        }
        json_decref(j);
    }
}

Test(collectors, api_football_429_then_success)
{
    configure(true, false, "", "");
    bpt_http_reply r[2] = {rec("api-football/error-ratelimit-429"), rec("api-football/odds")};
    bpt_http_script(srv, "/odds", r, 2);
    serve("/fixtures", "api-football/fixtures");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 2);
    cr_assert_gt(counter(source(j, "api_football"), "odds", "inserted"), 0);
    json_decref(j);
}

Test(collectors, api_football_daily_quota_error_pauses_and_no_request_follows)
{
    char path[1024];
    configure(true, false, "", "");
    serve("/odds", "api-football/error-daily-quota-200");
    json_t *j = run_fails("data.collect_odds", "{\"leagues\": [\"E0\", \"SP1\"]}", "paused until");
    cr_assert(strstr(error_of(j), "request limit for the day"), "%s", error_of(j));
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 1, "SP1 is not asked once the day is over");
    json_decref(j);
    snprintf(path, sizeof path, "%s/collectors/api_football.json", dd);
    char *state = bpt_slurp(path);
    cr_assert(state && strstr(state, "paused_until_ms"), "the pause is persisted");
    cr_assert(!strstr(state, AF_KEY));
    free(state);
    /* another process, later: not a single request */
    j = run_fails("data.collect_odds", "{\"leagues\": [\"E0\"]}", "no request made");
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 1);
    json_decref(j);
}

Test(collectors, api_football_quota_headers_at_zero_stop_the_run)
{
    configure(true, false, "", "");
    bpt_http_reply page = rec("api-football/odds-paged");
    page.headers = "Content-Type: application/json\r\nx-ratelimit-requests-limit: 100\r\n"
                   "x-ratelimit-requests-remaining: 0\r\nX-RateLimit-Limit: 10\r\n"
                   "X-RateLimit-Remaining: 9\r\n";
    bpt_http_script(srv, "/odds", &page, 1);
    serve("/fixtures", "api-football/fixtures");
    json_t *j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_str_eq(state_of(j), "SUCCESS", "page 1 was stored: %s", error_of(j));
    const json_t *af = source(j, "api_football");
    cr_assert(strstr(json_string_value(json_object_get(af, "incomplete")), "paused until"));
    cr_assert(json_object_get(af, "paused"));
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 1, "pages 2 and 3 are not fetched");
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 0, "not even the fixtures");
    json_decref(j);
    j = run_job("data.collect_stats", "{\"leagues\": [\"E0\"]}");
    cr_assert_str_eq(state_of(j), "FAILURE");
    cr_assert_eq(bpt_http_hits(srv, "/standings"), 0);
    json_decref(j);
}

Test(collectors, api_football_minute_limit_waits)
{
    configure(true, false, "", "");
    bpt_http_reply page = rec("api-football/odds-paged");
    page.headers = "Content-Type: application/json\r\nx-ratelimit-requests-limit: 7500\r\n"
                   "x-ratelimit-requests-remaining: 7000\r\nX-RateLimit-Limit: 300\r\n"
                   "X-RateLimit-Remaining: 0\r\n";
    bpt_http_script(srv, "/odds", &page, 1);
    serve("/fixtures", "api-football/fixtures");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_eq(bpt_http_hits(srv, "/odds"), 3);
    cr_assert_eq(json_integer_value(json_object_get(source(j, "api_football"), "minute_waits")), 3,
                 "every request after a response with X-RateLimit-Remaining 0 waited");
    json_decref(j);
}

Test(collectors, api_football_malformed_and_truncated_bodies)
{
    configure(true, false, "", "");
    bpt_http_reply bad = {.status = 200,
                          .headers = "Content-Type: application/json",
                          .body =
                              "{\"get\": \"odds\", \"errors\": [], \"response\": [{\"fixture\""};
    bpt_http_script(srv, "/odds", &bad, 1);
    json_t *j = run_fails("data.collect_odds", "{\"leagues\": [\"E0\"]}", "not valid JSON");
    cr_assert(strstr(error_of(j), "GET /odds?league=39&season="), "names the request: %s",
              error_of(j));
    json_decref(j);

    bpt_http_reply cut = rec("api-football/odds");
    cut.truncate_after = 200;
    bpt_http_script(srv, "/odds", &cut, 1);
    size_t before = bpt_http_hits(srv, "/odds");
    j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_str_eq(state_of(j), "FAILURE");
    cr_assert_eq(bpt_http_hits(srv, "/odds") - before, 2, "a body cut short is retried");
    json_decref(j);

    bpt_http_reply odd = {.status = 200,
                          .body = "{\"get\": \"odds\", \"errors\": [], "
                                  "\"response\": [{\"fixture\": {\"id\": \"x\"}}]}"};
    bpt_http_script(srv, "/odds", &odd, 1);
    j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_str_eq(state_of(j), "FAILURE");
    cr_assert(strstr(error_of(j), "response[0]"), "names the payload path: %s", error_of(j));
    json_decref(j);
}

Test(collectors, api_football_standings_and_team_statistics)
{
    configure(true, false, "", "");
    serve("/standings", "api-football/standings");
    serve("/teams/statistics", "api-football/teams-statistics");
    json_t *j = run_ok("data.collect_stats", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    const json_t *af = source(j, "api_football");
    cr_assert_eq(bpt_http_hits(srv, "/teams/statistics"), 3, "one per team of the standings");
    /* 3 standings rows + Manchester United's statistics (the recorded body for every team) */
    cr_assert_eq(counter(af, "team_stats", "inserted"), 4);
    cr_assert_eq(counter(af, "team_stats", "unchanged"), 2);
    cr_assert_gt(json_integer_value(json_object_get(json_object_get(j, "result"), "cached")), 4);
    json_decref(j);

    store *s = open_store();
    json_t *l = NULL, *teams = NULL;
    cr_assert_eq(store_find_league(s, NULL, "betpipe", "E0", &l, NULL), BP_OK);
    int64_t e0 = json_integer_value(json_object_get(l, "id"));
    int64_t liv = 0;
    cr_assert_eq(
        store_resolve_team(s, NULL, e0, BP_SOURCE_API_FOOTBALL, "Liverpool", &liv, NULL, NULL),
        BP_OK);
    json_t *stats = NULL;
    cr_assert_eq(store_get_team_stats(s, liv, 2024, &stats, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(stats, 0), "rank")), 1);
    json_decref(stats);
    json_decref(l);
    json_decref(teams);
    store_close(s);
}

/* ---- The Odds API errors and credits ------------------------------------------------------------
 */

Test(collectors, the_odds_api_error_bodies)
{
    static const struct {
        const char *rel;
        const char *expect;
        size_t hits;
    } cases[] = {
        {"the-odds-api/error-401-invalid-key", "INVALID_KEY", 1},
        {"the-odds-api/error-422-missing-region", "MISSING_REGION", 1},
        {"the-odds-api/error-429-exceeded-freq-limit", "EXCEEDED_FREQ_LIMIT", 2},
    };
    configure(false, true, "", "");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t before = bpt_http_hits(srv, "/v4/sports/soccer_epl/odds");
        serve("/v4/sports/soccer_epl/odds", cases[i].rel);
        json_t *j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
        cr_assert_str_eq(state_of(j), "FAILURE", "%s", cases[i].rel);
        cr_assert(strstr(error_of(j), cases[i].expect), "%s: %s", cases[i].rel, error_of(j));
        cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_epl/odds") - before, cases[i].hits, "%s",
                     cases[i].rel);
        json_decref(j);
    }
    /* 429 then success */
    bpt_http_reply r[2] = {rec("the-odds-api/error-429-exceeded-freq-limit"),
                           rec("the-odds-api/odds")};
    bpt_http_script(srv, "/v4/sports/soccer_epl/odds", r, 2);
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    json_decref(j);
}

Test(collectors, the_odds_api_out_of_credits_pauses)
{
    configure(false, true, "", "");
    serve("/v4/sports/soccer_epl/odds", "the-odds-api/error-401-out-of-usage-credits");
    json_t *j = run_fails("data.collect_odds", "{\"leagues\": [\"E0\", \"SP1\"]}", "paused until");
    cr_assert(strstr(error_of(j), "Usage quota has been reached"), "%s", error_of(j));
    cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_spain_la_liga/odds"), 0);
    json_decref(j);
    j = run_fails("data.collect_live", "{\"leagues\": [\"E0\"]}", "no request made");
    cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_epl/scores"), 0);
    cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_epl/odds"), 1);
    json_decref(j);
}

Test(collectors, the_odds_api_keeps_its_credit_reserve)
{
    /* odds.headers: 392 credits left after the call; a reserve of 390 leaves no room for the
     * next one (h2h,totals x uk,eu = 4 credits) */
    configure(false, true, "", "\"credit_reserve\": 390");
    serve("/v4/sports/soccer_epl/odds", "the-odds-api/odds");
    serve("/v4/sports/soccer_spain_la_liga/odds", "the-odds-api/odds");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\", \"SP1\"]}");
    cr_assert(strstr(json_string_value(json_object_get(source(j, "the_odds_api"), "incomplete")),
                     "not enough credits"));
    cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_spain_la_liga/odds"), 0);
    json_decref(j);
    j = run_fails("data.collect_odds", "{\"leagues\": [\"E0\"]}", "not enough credits");
    cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_epl/odds"), 1, "the credits are known");
    json_decref(j);
}

Test(collectors, the_odds_api_malformed_truncated_and_non_json_bodies)
{
    /* what is stored before the bad bodies arrive */
    configure(false, true, "", "");
    serve("/v4/sports/soccer_epl/odds", "the-odds-api/odds");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    json_int_t odds = counter(source(j, "the_odds_api"), "odds", "inserted");
    json_decref(j);
    store *s = open_store();
    int64_t match = 0;
    cr_assert_eq(store_find_match(s, NULL, BP_SOURCE_THE_ODDS_API,
                                  "f4da400bb47c7fdcc0608ae9efe414b7", &match, NULL),
                 BP_OK);
    json_t *before = NULL;
    cr_assert_eq(store_get_odds(s, match, -1, BP_ODDS_ALL, &before, NULL), BP_OK);
    store_close(s);

    bpt_http_reply recorded = rec("the-odds-api/odds");
    /* a complete response whose JSON stops halfway (Content-Length matches) */
    bpt_http_reply half = recorded;
    half.body_len = 700;
    /* the connection dropped mid-body (Content-Length not met): retried, then given up */
    bpt_http_reply cut = recorded;
    cut.truncate_after = 700;
    /* a proxy's HTML page with 200 */
    bpt_http_reply html = {.status = 200,
                           .headers = "Content-Type: text/html",
                           .body = "<html><body><h1>Service temporarily unavailable</h1>"
                                   "</body></html>"};
    static const struct {
        const char *what, *expect;
        size_t hits;
    } cases[] = {
        {"JSON cut short", "not valid JSON", 1},
        {"connection dropped mid-body", "the connection closed before the whole body", 2},
        {"an HTML page", "not valid JSON", 1},
    };
    const bpt_http_reply *replies[] = {&half, &cut, &html};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t hits = bpt_http_hits(srv, "/v4/sports/soccer_epl/odds");
        bpt_http_script(srv, "/v4/sports/soccer_epl/odds", replies[i], 1);
        j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
        cr_assert_str_eq(state_of(j), "FAILURE", "%s", cases[i].what);
        cr_assert(strstr(error_of(j), cases[i].expect), "%s: %s", cases[i].what, error_of(j));
        cr_assert(strstr(error_of(j), "GET ") && strstr(error_of(j), "/v4/sports/soccer_epl/odds?"),
                  "%s: the error names the request: %s", cases[i].what, error_of(j));
        cr_assert_eq(bpt_http_hits(srv, "/v4/sports/soccer_epl/odds") - hits, cases[i].hits, "%s",
                     cases[i].what);
        json_decref(j);
    }

    /* nothing stored was lost or changed */
    s = open_store();
    json_t *after = NULL, *arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 2);
    cr_assert_eq(store_get_odds(s, match, -1, BP_ODDS_ALL, &after, NULL), BP_OK);
    cr_assert(json_equal(before, after), "the stored odds are as before the bad bodies");
    cr_assert_gt(odds, 0);
    json_decref(arr);
    json_decref(before);
    json_decref(after);
    store_close(s);
}

/* ---- live: both sources, one set of matches -----------------------------------------------------
 */

Test(collectors, live_from_both_sources_lands_on_the_same_matches)
{
    configure(true, true, "", "");
    serve("/fixtures", "api-football/fixtures");
    serve("/v4/sports/soccer_epl/scores", "the-odds-api/scores");
    json_t *j = run_ok("data.collect_live", "{\"leagues\": [\"E0\"]}");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "sources_ok")),
                 2);
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    cr_assert(strstr(seen.uri, "live=39"), "%s", seen.uri);
    json_decref(j);

    store *s = open_store();
    json_t *arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 3,
                 "the Odds API events are API-Football's fixtures (teams by alias, same kick-off)");
    const json_t *m = match_of(arr, "Liverpool");
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "live");
    cr_assert_eq(json_integer_value(json_object_get(m, "home_goals")), 1);
    const json_t *ext = json_object_get(m, "external_ids");
    cr_assert(json_object_get(ext, BP_SOURCE_API_FOOTBALL) &&
                  json_object_get(ext, BP_SOURCE_THE_ODDS_API),
              "both sources' ids on one match");
    m = match_of(arr, "Man United");
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "finished");
    json_decref(arr);
    store_close(s);
}

/* ---- data.collect_fixtures ----------------------------------------------------------------------
 */

/* The season running now, as the jobs compute it (a season starts in July, UTC). */
static int season_now(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return tm.tm_mon >= 6 ? tm.tm_year + 1900 : tm.tm_year + 1899;
}

/* "YYYY-MM-DD" (UTC) of an epoch-seconds instant. */
static void utc_day(time_t secs, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, "%Y-%m-%d", &tm);
}

static const json_t *result_of(const json_t *j)
{
    return json_object_get(j, "result");
}

static const json_t *match_by_af_id(const json_t *arr, const char *af_id)
{
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *id = json_string_value(
            json_object_get(json_object_get(m, "external_ids"), BP_SOURCE_API_FOOTBALL));
        if (id && strcmp(id, af_id) == 0) {
            return m;
        }
    }
    return NULL;
}

Test(collectors, fixtures_by_league_and_season_then_unchanged)
{
    configure(true, false, "", "");
    serve("/fixtures", "api-football/fixtures");
    json_t *j = run_ok("data.collect_fixtures", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    cr_assert(strstr(seen.uri, "league=39") && strstr(seen.uri, "season=2024"), "%s", seen.uri);
    cr_assert(!strstr(seen.uri, "from=") && !strstr(seen.uri, "to="), "%s", seen.uri);
    char *key = bpt_http_seen_header(&seen, "x-apisports-key");
    cr_assert_str_eq(key, AF_KEY);
    free(key);
    const json_t *af = source(j, "api_football");
    cr_assert_eq(counter(af, "matches", "inserted"), 3);
    const json_t *totals = json_object_get(result_of(j), "totals");
    const json_t *by_status = json_object_get(totals, "by_status");
    cr_assert_eq(json_integer_value(json_object_get(by_status, "scheduled")), 1);
    cr_assert_eq(json_integer_value(json_object_get(by_status, "live")), 1);
    cr_assert_eq(json_integer_value(json_object_get(by_status, "finished")), 1);
    cr_assert_eq(json_integer_value(json_object_get(totals, "rejected")), 0);
    cr_assert_eq(json_integer_value(json_object_get(result_of(j), "season")), 2024);
    const char *summary = json_string_value(json_object_get(result_of(j), "summary"));
    cr_assert(summary && strstr(summary, "3 fixtures (3 new, 0 updated, 0 unchanged), 0 rejected"),
              "%s", summary);
    cr_assert(strstr(summary, "1 scheduled") && strstr(summary, "1 finished"), "%s", summary);
    json_decref(j);

    /* in the store: the kick-off times, the statuses and scores, the API-Football ids */
    store *s = open_store();
    json_t *arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 3);
    const json_t *ns = match_by_af_id(arr, "9900003");
    cr_assert(ns, "the NS fixture is stored under its API-Football id");
    cr_assert_str_eq(json_string_value(json_object_get(ns, "status")), "scheduled");
    cr_assert_eq(json_integer_value(json_object_get(ns, "kickoff_ms")), 1732392000000LL);
    cr_assert(json_is_true(json_object_get(ns, "kickoff_exact")));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ns, "home"), "name")),
                     "Chelsea");
    cr_assert(json_is_null(json_object_get(ns, "home_goals")));
    const json_t *ft = match_by_af_id(arr, "9900001");
    cr_assert_str_eq(json_string_value(json_object_get(ft, "status")), "finished");
    cr_assert_eq(json_integer_value(json_object_get(ft, "kickoff_ms")), 1732365000000LL);
    cr_assert_eq(json_integer_value(json_object_get(ft, "home_goals")), 2);
    cr_assert_eq(json_integer_value(json_object_get(ft, "away_goals")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(ft, "season")), "2024-25");
    json_decref(arr);
    store_close(s);

    /* the same fixtures again: nothing changes */
    j = run_ok("data.collect_fixtures", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    af = source(j, "api_football");
    cr_assert_eq(counter(af, "matches", "unchanged"), 3);
    cr_assert_eq(counter(af, "matches", "inserted") + counter(af, "matches", "updated"), 0);
    json_decref(j);
    s = open_store();
    arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 3);
    json_decref(arr);
    store_close(s);
}

Test(collectors, fixtures_by_date_range)
{
    configure(true, false, "", "");
    serve("/fixtures", "api-football/fixtures");
    json_t *j =
        run_job("data.collect_fixtures",
                "{\"leagues\": [\"E0\"], \"from\": \"2024-11-23\", \"to\": \"2024-11-30\"}");
    cr_assert_str_eq(state_of(j), "SUCCESS", "%s", error_of(j));
    bpt_http_seen seen;
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 1);
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    cr_assert(strstr(seen.uri, "league=39") && strstr(seen.uri, "season=2024") &&
                  strstr(seen.uri, "from=2024-11-23") && strstr(seen.uri, "to=2024-11-30"),
              "the season of the range goes with it: %s", seen.uri);
    cr_assert_str_eq(json_string_value(json_object_get(result_of(j), "from")), "2024-11-23");
    cr_assert_eq(counter(source(j, "api_football"), "matches", "inserted"), 3);
    json_decref(j);

    /* a range across 1 July holds fixtures of two seasons: one request for each */
    j = run_ok("data.collect_fixtures",
               "{\"leagues\": [\"E0\"], \"from\": \"2025-06-28\", \"to\": \"2025-07-05\"}");
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 3);
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 1, &seen));
    cr_assert(strstr(seen.uri, "season=2024&from=2025-06-28&to=2025-07-05"), "%s", seen.uri);
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 2, &seen));
    cr_assert(strstr(seen.uri, "season=2025&from=2025-06-28&to=2025-07-05"), "%s", seen.uri);
    const json_t *af = source(j, "api_football");
    cr_assert_eq(json_array_size(json_object_get(af, "seasons")), 2);
    cr_assert_eq(counter(af, "matches", "unchanged"), 6, "the same 3 fixtures, twice");
    json_decref(j);

    /* bad ranges are refused before any request, and say what is wrong */
    static const struct {
        const char *args, *expect;
    } bad[] = {
        {"{\"from\": \"2024-11-23\"}", "from and to go together"},
        {"{\"from\": \"2024-11-30\", \"to\": \"2024-11-23\"}", "is before from"},
        {"{\"from\": \"2019-08-01\", \"to\": \"2024-11-23\"}", "spans 6 seasons"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = run_job("data.collect_fixtures", bad[i].args);
        cr_assert_str_eq(state_of(j), "FAILURE", "%s", bad[i].args);
        cr_assert(strstr(error_of(j), bad[i].expect), "%s: %s", bad[i].args, error_of(j));
        json_decref(j);
    }
    /* a date that is no date does not even make a job */
    bpt_result r =
        bpt_betpipe(dd, "run", "data.collect_fixtures", "--args",
                    "{\"from\": \"2024-11-31x\", \"to\": \"2024-12-01\"}", "--wait", NULL);
    cr_assert_eq(r.exit_code, 2, "%s", r.err);
    cr_assert(strstr(r.err, "args.from: '2024-11-31x' is not a valid date"), "%s", r.err);
    bpt_result_free(&r);
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 3, "no request for a bad range");
}

Test(collectors, fixtures_default_is_the_current_season_of_every_configured_league)
{
    configure(true, false, "\"leagues\": [\"E0\", \"SP1\"]", "");
    serve("/fixtures", "api-football/fixtures");
    int season = season_now();
    json_t *j = run_ok("data.collect_fixtures", "{}");
    cr_assert_eq(json_integer_value(json_object_get(result_of(j), "season")), season);
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 2, "one request per configured league");
    char want[64];
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    snprintf(want, sizeof want, "league=39&season=%d", season);
    cr_assert(strstr(seen.uri, want), "%s (want %s)", seen.uri, want);
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 1, &seen));
    snprintf(want, sizeof want, "league=140&season=%d", season);
    cr_assert(strstr(seen.uri, want), "%s (want %s)", seen.uri, want);
    json_decref(j);
}

Test(collectors, fixtures_bad_entry_rejected_the_others_stored)
{
    /* Liverpool v Liverpool: the store refuses a team playing itself; that entry is named, the
     * two others of the payload are stored. */
    configure(true, false, "", "");
    json_t *doc = rec_json("api-football/fixtures");
    json_t *away = json_object_get(
        json_object_get(
            json_object_get(json_array_get(json_object_get(doc, "response"), 1), "teams"), "away"),
        "name");
    cr_assert_eq(json_string_set(away, "Liverpool"), 0);
    /* and fixture 9900003's time is not fixed yet: TBD */
    json_t *status = json_object_get(
        json_object_get(json_array_get(json_object_get(doc, "response"), 2), "fixture"), "status");
    json_object_set_new(status, "short", json_string("TBD"));
    json_object_set_new(status, "long", json_string("Time To Be Defined"));
    serve_json("/fixtures", "api-football/fixtures", doc);
    json_decref(doc);
    json_t *j = run_ok("data.collect_fixtures", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    const json_t *af = source(j, "api_football");
    cr_assert_eq(counter(af, "matches", "inserted"), 2);
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(result_of(j), "totals"), "rejected")),
        1);
    const json_t *rej = json_array_get(json_object_get(af, "rejected"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(rej, "path")), "response[1]");
    cr_assert(strstr(json_string_value(json_object_get(rej, "reason")), "cannot play itself"), "%s",
              json_string_value(json_object_get(rej, "reason")));
    cr_assert(strstr(json_string_value(json_object_get(rej, "request")),
                     "/fixtures?league=39&season=2024"));
    json_decref(j);
    store *s = open_store();
    json_t *arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 2);
    const json_t *tbd = match_by_af_id(arr, "9900003");
    cr_assert_str_eq(json_string_value(json_object_get(tbd, "status")), "scheduled");
    cr_assert(json_is_false(json_object_get(tbd, "kickoff_exact")),
              "a TBD kick-off is only a date");
    json_decref(arr);
    store_close(s);
}

Test(collectors, fixtures_error_bodies_and_the_daily_quota)
{
    configure(true, false, "", "");
    serve("/fixtures", "api-football/error-plan-200");
    json_t *j = run_job("data.collect_fixtures", "{\"leagues\": [\"E0\"], \"season\": 2026}");
    cr_assert_str_eq(state_of(j), "FAILURE");
    cr_assert(strstr(error_of(j), "Free plans do not have access to this season"), "%s",
              error_of(j));
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 1);
    json_decref(j);

    serve("/fixtures", "api-football/error-daily-quota-200");
    j = run_fails("data.collect_fixtures", "{\"leagues\": [\"E0\", \"SP1\"], \"season\": 2024}",
                  "paused until");
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 2, "SP1 is not asked once the day is over");
    json_decref(j);
    serve("/fixtures", "api-football/fixtures");
    j = run_fails("data.collect_fixtures", "{\"leagues\": [\"E0\"], \"season\": 2024}",
                  "no request made");
    cr_assert_eq(bpt_http_hits(srv, "/fixtures"), 2);
    json_decref(j);

    configure(false, false, "", "");
    j = run_job("data.collect_fixtures", "{}");
    cr_assert_str_eq(state_of(j), "FAILURE");
    cr_assert(strstr(error_of(j), "nothing is configured to collect fixtures") &&
                  strstr(error_of(j), "BETPIPE_API_FOOTBALL_KEY"),
              "%s", error_of(j));
    json_decref(j);
}

Test(collectors, odds_events_create_scheduled_matches_that_fixtures_then_join)
{
    /* The Odds API first: both events are new to the store, become scheduled matches, and are
     * listed as created */
    configure(false, true, "", "");
    serve("/v4/sports/soccer_epl/odds", "the-odds-api/odds");
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    const json_t *created = json_object_get(source(j, "the_odds_api"), "matches_created");
    cr_assert_eq(json_array_size(created), 2, "both events are reported as new matches");
    const char *first = json_string_value(json_array_get(created, 0));
    cr_assert(strstr(first, "Chelsea v Arsenal, 2024-11-23T20:00:00Z") &&
                  strstr(first, "f4da400bb47c7fdcc0608ae9efe414b7"),
              "%s", first);
    json_decref(j);
    j = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_eq(json_array_size(json_object_get(source(j, "the_odds_api"), "matches_created")), 0,
                 "known events are not new again");
    json_decref(j);
    store *s = open_store();
    json_t *arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 2);
    cr_assert_str_eq(json_string_value(json_object_get(match_of(arr, "Chelsea"), "status")),
                     "scheduled");
    json_decref(arr);
    store_close(s);

    /* then API-Football's fixtures: Chelsea v Arsenal is the match the event made, not a second
     * one; it gains its API-Football id */
    configure(true, false, "", "");
    serve("/fixtures", "api-football/fixtures");
    j = run_ok("data.collect_fixtures", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    const json_t *af = source(j, "api_football");
    cr_assert_eq(counter(af, "matches", "inserted"), 2);
    cr_assert_eq(counter(af, "matches", "updated"), 1);
    json_decref(j);
    s = open_store();
    arr = all_matches(s);
    cr_assert_eq(json_array_size(arr), 4, "Brighton v Man City + the three fixtures");
    const json_t *m = match_of(arr, "Chelsea");
    const json_t *ext = json_object_get(m, "external_ids");
    cr_assert_str_eq(json_string_value(json_object_get(ext, BP_SOURCE_API_FOOTBALL)), "9900003");
    cr_assert_str_eq(json_string_value(json_object_get(ext, BP_SOURCE_THE_ODDS_API)),
                     "f4da400bb47c7fdcc0608ae9efe414b7");
    json_t *quotes = NULL;
    cr_assert_eq(store_get_odds(s, json_integer_value(json_object_get(m, "id")), BP_MARKET_1X2,
                                BP_ODDS_LATEST, &quotes, NULL),
                 BP_OK);
    cr_assert_eq(json_array_size(quotes), 6, "the event's odds stay with the match");
    json_decref(quotes);
    json_decref(arr);
    store_close(s);
}

Test(collectors, upcoming_fixtures_are_what_ml_predict_predicts, .timeout = 600)
{
    /* A model of E0 2023-24 from the bundled history */
    json_t *j = run_ok("data.import", "{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    json_decref(j);
    j = run_ok("ml.train", "{\"model\": \"dixon_coles\", \"league\": \"E0\", \"seasons\": "
                           "[\"2023-24\"]}");
    json_decref(j);
    j = run_ok("ml.predict", "{\"league\": \"E0\"}");
    cr_assert_eq(json_integer_value(json_object_get(result_of(j), "predicted")), 0,
                 "no upcoming match before the fixtures are collected");
    json_decref(j);

    /* The recorded fixtures with the NS one (Chelsea v Arsenal) moved to two days from now:
     * ml.predict's default looks at the real clock's next days. */
    time_t now = time(NULL);
    time_t kickoff = (now / 3600 + 48) * 3600;
    char iso[40], from[16], to[16], args[160];
    struct tm tm;
    gmtime_r(&kickoff, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    utc_day(now, from, sizeof from);
    utc_day(now + 7 * 86400, to, sizeof to);
    json_t *doc = rec_json("api-football/fixtures");
    json_t *ns = json_array_get(json_object_get(doc, "response"), 2);
    json_t *fx = json_object_get(ns, "fixture");
    json_object_set_new(fx, "date", json_string(iso));
    json_object_set_new(fx, "timestamp", json_integer((json_int_t)kickoff));
    json_object_set_new(json_object_get(ns, "league"), "season", json_integer(season_now()));
    serve_json("/fixtures", "api-football/fixtures", doc);
    json_decref(doc);

    configure(true, false, "", "");
    snprintf(args, sizeof args, "{\"leagues\": [\"E0\"], \"from\": \"%s\", \"to\": \"%s\"}", from,
             to);
    j = run_ok("data.collect_fixtures", args);
    const json_t *af = source(j, "api_football");
    cr_assert_eq(counter(af, "matches", "inserted"), 3);
    cr_assert_eq(json_array_size(json_object_get(af, "teams_created")), 0,
                 "API-Football's names are the teams football-data knows");
    bpt_http_seen seen;
    char want[64];
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    snprintf(want, sizeof want, "from=%s&to=%s", from, to);
    cr_assert(strstr(seen.uri, want), "%s (want %s)", seen.uri, want);
    json_decref(j);

    store *s = open_store();
    int64_t chelsea_arsenal = 0;
    cr_assert_eq(
        store_find_match(s, NULL, BP_SOURCE_API_FOOTBALL, "9900003", &chelsea_arsenal, NULL),
        BP_OK);
    store_close(s);

    /* ml.predict's default (scheduled matches of the next 14 days) finds it, and only it */
    j = run_ok("ml.predict", "{\"league\": \"E0\"}");
    cr_assert_eq(json_integer_value(json_object_get(result_of(j), "predicted")), 1, "%s",
                 json_string_value(json_object_get(result_of(j), "summary")));
    const json_t *p = json_array_get(json_object_get(result_of(j), "predictions"), 0);
    cr_assert_eq(json_integer_value(json_object_get(p, "match_id")), chelsea_arsenal);
    json_decref(j);
}

/* ---- what the collect jobs leave in the cache -------------------------------------------------
 */

/* The value a running daemon's cache holds for `type` and `filters` (`betpipe cache get`), or
 * NULL. */
static json_t *cached(const char *type, const char *filters)
{
    bpt_result r = bpt_betpipe(dd, "cache", "get", type, filters, "--json", NULL);
    json_t *replies = json_loads(r.out, 0, NULL), *reply, *value = NULL;
    const char *worker;
    cr_assert(replies, "cache get %s %s: exit %d\n%s%s", type, filters, r.exit_code, r.out, r.err);
    json_object_foreach(replies, worker, reply)
    {
        json_t *v = json_object_get(json_object_get(reply, "reply"), "value");
        if (v && !value) {
            value = json_incref(v);
        }
    }
    json_decref(replies);
    bpt_result_free(&r);
    return value;
}

/* The price of one quote in a get_odds array, or 0. */
static double price_of(const json_t *quotes, const char *bookmaker, const char *selection)
{
    size_t i;
    json_t *q;
    json_array_foreach(quotes, i, q)
    {
        if (strcmp(json_string_value(json_object_get(q, "bookmaker")), bookmaker) == 0 &&
            strcmp(json_string_value(json_object_get(q, "market")), "1x2") == 0 &&
            strcmp(json_string_value(json_object_get(q, "selection")), selection) == 0) {
            return json_number_value(json_object_get(q, "price"));
        }
    }
    return 0;
}

Test(collectors, collect_odds_caches_each_matchs_latest_prices)
{
    configure(false, true, "", "");
    serve("/v4/sports/soccer_epl/odds", "the-odds-api/odds");
    daemon_pid = bpt_daemon_start(dd, NULL);
    json_t *j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_eq(json_integer_value(json_object_get(result_of(j), "cached")), 2);
    json_decref(j);

    store *s = open_store();
    int64_t match = 0;
    cr_assert_eq(store_find_match(s, NULL, BP_SOURCE_THE_ODDS_API,
                                  "f4da400bb47c7fdcc0608ae9efe414b7", &match, NULL),
                 BP_OK);
    char filters[64];
    snprintf(filters, sizeof filters, "{\"match_id\": %lld}", (long long)match);
    json_t *v = cached("odds", filters);
    cr_assert(v, "the daemon's cache holds the odds of match %lld", (long long)match);
    /* the recorded prices: Pinnacle 2.66 / 3.45 / 2.78, William Hill 2.6 / 3.4 / 2.7 */
    cr_assert_float_eq(price_of(v, "pinnacle", "home"), 2.66, 1e-9);
    cr_assert_float_eq(price_of(v, "pinnacle", "draw"), 3.45, 1e-9);
    cr_assert_float_eq(price_of(v, "williamhill", "away"), 2.7, 1e-9);
    json_t *stored = NULL;
    cr_assert_eq(store_get_odds(s, match, -1, BP_ODDS_LATEST, &stored, NULL), BP_OK);
    cr_assert(json_equal(v, stored), "the cache holds the store's latest odds of the match");
    json_decref(stored);
    json_decref(v);

    /* Pinnacle moves Chelsea to 2.50: the cache now holds the new price, not the old one */
    json_t *doc = rec_json("the-odds-api/odds");
    json_t *pin = json_array_get(
        json_object_get(json_array_get(json_object_get(json_array_get(doc, 0), "bookmakers"), 1),
                        "markets"),
        0);
    json_object_set_new(pin, "last_update", json_string("2024-11-23T17:00:00Z"));
    json_object_set_new(json_array_get(json_object_get(pin, "outcomes"), 0), "price",
                        json_real(2.5));
    serve_json("/v4/sports/soccer_epl/odds", "the-odds-api/odds", doc);
    json_decref(doc);
    j = run_ok("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_eq(counter(source(j, "the_odds_api"), "odds", "inserted"), 1, "one new snapshot");
    json_decref(j);
    v = cached("odds", filters);
    cr_assert(v);
    cr_assert_float_eq(price_of(v, "pinnacle", "home"), 2.5, 1e-9);
    cr_assert_float_eq(price_of(v, "pinnacle", "draw"), 3.45, 1e-9);
    json_decref(v);
    store_close(s);
    cr_assert_eq(bpt_stop(daemon_pid, SIGTERM, 15000), 0);
    daemon_pid = 0;
}

Test(collectors, collect_stats_caches_team_stats_the_leagues_and_their_teams)
{
    configure(true, false, "", "");
    serve("/standings", "api-football/standings");
    serve("/teams/statistics", "api-football/teams-statistics");
    daemon_pid = bpt_daemon_start(dd, NULL);
    json_t *j = run_ok("data.collect_stats", "{\"leagues\": [\"E0\"], \"season\": 2024}");
    json_decref(j);

    /* static: the league list */
    json_t *leagues = cached("static", "{\"kind\": \"leagues\"}");
    cr_assert(json_is_array(leagues), "the league list is cached");
    const json_t *e0 = NULL;
    size_t i;
    json_t *l;
    json_array_foreach(leagues, i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "code")), "E0") == 0) {
            e0 = l;
        }
    }
    cr_assert(e0, "E0 is among the cached leagues");
    cr_assert_eq(json_integer_value(json_object_get(e0, "af_league_id")), 39);
    cr_assert_str_eq(json_string_value(json_object_get(e0, "toa_sport_key")), "soccer_epl");
    int64_t e0_id = json_integer_value(json_object_get(e0, "id"));

    /* static: the teams of E0, which now include the standings' clubs */
    json_t *teams = cached("static", "{\"kind\": \"teams\", \"league\": \"E0\"}");
    cr_assert(json_is_array(teams), "E0's teams are cached");
    static const char *const clubs[] = {"Liverpool", "Man City", "Wolves"};
    int64_t liverpool = 0;
    for (size_t k = 0; k < 3; k++) {
        bool found = false;
        json_t *t;
        json_array_foreach(teams, i, t)
        {
            if (strcmp(json_string_value(json_object_get(t, "name")), clubs[k]) == 0) {
                found = true;
                if (k == 0) {
                    liverpool = json_integer_value(json_object_get(t, "id"));
                }
            }
        }
        cr_assert(found, "%s is among E0's cached teams", clubs[k]);
    }
    store *s = open_store();
    json_t *stored = NULL;
    cr_assert_eq(store_list_teams(s, e0_id, &stored, NULL), BP_OK);
    cr_assert(json_equal(teams, stored), "the cache holds the store's teams of E0");
    json_decref(stored);

    /* stats: Liverpool's season */
    char filters[80];
    snprintf(filters, sizeof filters, "{\"team_id\": %lld, \"season\": 2024}",
             (long long)liverpool);
    json_t *stats = cached("stats", filters);
    cr_assert(json_is_array(stats), "Liverpool's statistics are cached");
    const json_t *row = json_array_get(stats, 0);
    cr_assert_eq(json_integer_value(json_object_get(row, "rank")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(row, "source")), BP_SOURCE_API_FOOTBALL);
    cr_assert_eq(store_get_team_stats(s, liverpool, 2024, &stored, NULL), BP_OK);
    cr_assert(json_equal(stats, stored), "the cache holds the store's statistics");
    json_decref(stored);
    store_close(s);
    json_decref(stats);
    json_decref(teams);
    json_decref(leagues);
    cr_assert_eq(bpt_stop(daemon_pid, SIGTERM, 15000), 0);
    daemon_pid = 0;
}
