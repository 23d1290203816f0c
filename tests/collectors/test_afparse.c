/*
 * test_afparse.c - API-Football v3 payload parsers on every recorded body (successes and
 * errors), the synthetic team statistics / standings / paged odds, and broken payloads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "afparse.h"
#include "fdcsv.h"
#include "recorded.h"
#include "support.h"

/* Re-serialise a parsed fixture after a change, for the wrong-type tests. */
static char *mutate(const char *rel, const char *json_path_desc, void (*edit)(json_t *root),
                    size_t *out_len)
{
    recorded r = rec_load(rel);
    json_error_t je;
    json_t *root = json_loads(r.body, 0, &je);
    cr_assert(root, "%s: %s", rel, je.text);
    edit(root);
    char *s = json_dumps(root, JSON_COMPACT);
    cr_assert(s, "%s", json_path_desc);
    *out_len = strlen(s);
    json_decref(root);
    rec_free(&r);
    return s;
}

static json_t *at(json_t *root, const char *p)
{
    /* a tiny path walker: "response.0.bookmakers.1" */
    char buf[256];
    json_t *cur = root;
    snprintf(buf, sizeof buf, "%s", p);
    for (char *tok = buf, *next; tok && *tok; tok = next) {
        next = strchr(tok, '.');
        if (next) {
            *next++ = '\0';
        }
        if (json_is_array(cur)) {
            cur = json_array_get(cur, strtoul(tok, NULL, 10));
        } else {
            cur = json_object_get(cur, tok);
        }
        cr_assert(cur, "no %s in the fixture", p);
    }
    return cur;
}

/* ---- leagues --------------------------------------------------------------------------------- */

Test(afparse, league_ids_map_to_our_leagues)
{
    static const struct {
        int64_t id;
        const char *div, *key;
    } want[] = {{39, "E0", "soccer_epl"},
                {140, "SP1", "soccer_spain_la_liga"},
                {78, "D1", "soccer_germany_bundesliga"},
                {135, "I1", "soccer_italy_serie_a"},
                {61, "F1", "soccer_france_ligue_one"}};
    cr_assert_eq(af_league_count(), 5);
    for (size_t i = 0; i < 5; i++) {
        const af_league *l = af_league_by_id(want[i].id);
        cr_assert(l, "league %lld", (long long)want[i].id);
        cr_expect_str_eq(l->div, want[i].div);
        cr_expect_str_eq(l->sport_key, want[i].key);
        cr_expect_eq(af_league_by_div(want[i].div), l);
        cr_expect_eq(af_league_by_sport_key(want[i].key), l);
    }
    cr_expect_null(af_league_by_id(2));
    cr_expect_null(af_league_by_div("E1"));
    cr_expect_null(af_league_by_sport_key("soccer_efl_champ"));
    /* the parsers' market codes are the CSV parser's */
    cr_expect_str_eq(cj_market_name(CM_MARKET_AH), fdcsv_market_name(FD_MARKET_AH));
    for (int m = 0; m < 3; m++) {
        cr_expect_str_eq(cj_market_name(m), fdcsv_market_name(m));
    }
    for (int sel = 0; sel < 5; sel++) {
        cr_expect_str_eq(cj_selection_name(sel), fdcsv_selection_name(sel));
    }
}

/* ---- successes ------------------------------------------------------------------------------- */

Test(afparse, fixtures_with_finished_live_and_scheduled_matches)
{
    recorded r = rec_load("api-football/fixtures");
    af_fixtures *f = NULL;
    af_api_error ae;
    bp_error err = {0};
    cr_assert_eq(af_parse_fixtures(r.status, r.body, r.len, &f, &ae, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(ae.kind, AF_OK);
    cr_assert_eq(f->n, 3);
    cr_expect(f->page.current == 1 && f->page.total == 1 && f->page.results == 3);

    const af_fixture *x = &f->items[0];
    cr_expect_eq(x->id, 9900001);
    cr_expect_eq(x->kickoff_ms, 1732365000000LL);
    cr_expect_str_eq(x->referee, "A. Taylor");
    cr_expect_str_eq(x->status_short, "FT");
    cr_expect_eq(x->state, AF_STATE_FINISHED);
    cr_expect_eq(x->elapsed, 90);
    cr_expect(x->league_id == 39 && x->season == 2024);
    cr_expect_str_eq(x->round, "Regular Season - 12");
    cr_expect_eq(x->venue_id, 556);
    cr_expect_str_eq(x->venue_name, "Old Trafford");
    cr_expect(x->home_id == 33 && x->away_id == 47);
    cr_expect_str_eq(x->home_name, "Manchester United");
    cr_expect_str_eq(x->away_name, "Tottenham");
    cr_expect(x->goals_home == 2 && x->goals_away == 1);
    cr_expect(x->ht_home == 1 && x->ht_away == 0 && x->ft_home == 2 && x->ft_away == 1);
    cr_expect(x->et_home == -1 && x->pen_away == -1);

    x = &f->items[1];
    cr_expect_eq(x->state, AF_STATE_LIVE);
    cr_expect_eq(x->elapsed, 67);
    cr_expect_eq(x->venue_id, -1, "a null venue id");
    cr_expect_str_eq(x->venue_name, "Anfield");
    cr_expect(x->goals_home == 1 && x->ft_home == -1);

    x = &f->items[2];
    cr_expect_eq(x->state, AF_STATE_SCHEDULED);
    cr_expect_null(x->referee);
    cr_expect_eq(x->elapsed, -1);
    cr_expect(x->goals_home == -1 && x->goals_away == -1 && x->ht_home == -1);
    cr_expect_str_eq(x->home_name, "Chelsea");
    af_fixtures_free(f);

    af_quota q;
    cr_assert_eq(af_quota_parse(r.headers, r.n_headers, &q, &err), BP_OK, "%s", err.msg);
    cr_expect(q.day_limit == 7500 && q.day_remaining == 7412);
    cr_expect(q.minute_limit == 300 && q.minute_remaining == 297);
    cr_expect_eq(af_quota_pause_ms(&q, 1732377600000LL, 0), 0);
    rec_free(&r);
}

static const af_quote *find(const af_odds *o, const char *book, int market, int sel, double line)
{
    for (size_t i = 0; i < o->n_quotes; i++) {
        const af_quote *q = &o->quotes[i];
        if (strcmp(q->bookmaker, book) == 0 && q->market == market && q->selection == sel &&
            (market == CM_MARKET_1X2 || q->line == line)) {
            return q;
        }
    }
    return NULL;
}

Test(afparse, odds_become_quotes_per_bookmaker)
{
    recorded r = rec_load("api-football/odds");
    af_odds *o = NULL;
    bp_error err = {0};
    cr_assert_eq(af_parse_odds(r.status, r.body, r.len, &o, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(o->n, 1);
    cr_expect_eq(o->items[0].fixture_id, 9900003);
    cr_expect_eq(o->items[0].kickoff_ms, 1732392000000LL);
    cr_expect_eq(o->items[0].update_ms, 1732377612000LL);
    cr_expect(o->items[0].league_id == 39 && o->items[0].season == 2024);
    /* Bet365: 3 + 6, Pinnacle: 3 + 4 */
    cr_expect_eq(o->n_quotes, 16);
    cr_expect_eq(o->items[0].n_quotes, 16);
    cr_expect_eq(o->skipped_bets, 0);
    const af_quote *q = find(o, "bet365", CM_MARKET_1X2, CM_SEL_HOME, 0);
    cr_assert(q);
    cr_expect(q->price == 2.60 && q->bookmaker_id == 8 && q->bet_id == 1);
    cr_expect_str_eq(q->bookmaker_name, "Bet365");
    cr_expect(isnan(q->line));
    q = find(o, "pinnacle", CM_MARKET_1X2, CM_SEL_AWAY, 0);
    cr_expect(q && q->price == 2.78);
    q = find(o, "pinnacle", CM_MARKET_OU, CM_SEL_OVER, 2.5);
    cr_expect(q && q->price == 1.95);
    q = find(o, "bet365", CM_MARKET_OU, CM_SEL_UNDER, 3.5);
    cr_expect(q && q->price == 1.33);
    cr_expect_null(find(o, "pinnacle", CM_MARKET_OU, CM_SEL_OVER, 1.5));
    af_odds_free(o);

    af_quota qu;
    cr_assert_eq(af_quota_parse(r.headers, r.n_headers, &qu, &err), BP_OK);
    cr_expect(qu.minute_limit == 300 && qu.minute_remaining == 296, "lower-case HTTP/2 names");
    rec_free(&r);
}

Test(afparse, a_paged_odds_response_with_asian_handicap)
{
    recorded r = rec_load("api-football/odds-paged");
    af_odds *o = NULL;
    bp_error err = {0};
    cr_assert_eq(af_parse_odds(r.status, r.body, r.len, &o, NULL, &err), BP_OK, "%s", err.msg);
    cr_expect(o->page.current == 1 && o->page.total == 3, "more pages to fetch");
    cr_expect_eq(o->skipped_bets, 1);
    cr_expect_eq(o->dropped, 1);
    cr_expect_str_eq(o->first_dropped, "response[0].bookmakers[1].bets[0].values[1].odd");
    /* "Home +1" and "Away -1" are the same line from the home side: +1 */
    const af_quote *q = find(o, "pinnacle", CM_MARKET_AH, CM_SEL_HOME, 1.0);
    cr_expect(q && q->price == 1.93);
    q = find(o, "pinnacle", CM_MARKET_AH, CM_SEL_AWAY, 1.0);
    cr_expect(q && q->price == 1.97);
    q = find(o, "pinnacle", CM_MARKET_AH, CM_SEL_AWAY, 0.75);
    cr_expect(q && q->price == 1.77);
    q = find(o, "onexbet", CM_MARKET_1X2, CM_SEL_HOME, 0);
    cr_expect(q && q->price == 4.60);
    cr_expect_null(find(o, "onexbet", CM_MARKET_1X2, CM_SEL_DRAW, 0));
    cr_expect_eq(o->n_quotes, 3 + 4 + 2);
    af_odds_free(o);
    rec_free(&r);
}

Test(afparse, team_statistics_and_standings)
{
    recorded r = rec_load("api-football/teams-statistics");
    af_team_stats *s = NULL;
    bp_error err = {0};
    cr_assert_eq(af_parse_team_stats(r.status, r.body, r.len, &s, NULL, &err), BP_OK, "%s",
                 err.msg);
    cr_expect(s->league_id == 39 && s->season == 2024 && s->team_id == 33);
    cr_expect_str_eq(s->team_name, "Manchester United");
    cr_expect_str_eq(s->form, "WDLWWLDWLWDL");
    cr_expect(s->played[AF_HOME] == 6 && s->played[AF_TOTAL] == 12);
    cr_expect(s->wins[AF_TOTAL] == 5 && s->draws[AF_AWAY] == 2 && s->loses[AF_AWAY] == 3);
    cr_expect(s->goals_for[AF_TOTAL] == 17 && s->goals_against[AF_AWAY] == 9);
    cr_expect(s->goals_for_avg[AF_HOME] == 1.8 && s->goals_against_avg[AF_TOTAL] == 1.2);
    cr_expect(s->clean_sheet[AF_TOTAL] == 4 && s->failed_to_score[AF_AWAY] == 2);
    af_team_stats_free(s);
    rec_free(&r);

    r = rec_load("api-football/standings");
    af_standings *st = NULL;
    cr_assert_eq(af_parse_standings(r.status, r.body, r.len, &st, NULL, &err), BP_OK, "%s",
                 err.msg);
    cr_expect(st->league_id == 39 && st->season == 2024 && st->n_groups == 1);
    cr_assert_eq(st->n, 3);
    cr_expect(st->rows[0].rank == 1 && st->rows[0].team_id == 40 && st->rows[0].points == 31);
    cr_expect_str_eq(st->rows[0].team_name, "Liverpool");
    cr_expect(st->rows[0].played[AF_TOTAL] == 12 && st->rows[0].win[AF_HOME] == 6);
    cr_expect(st->rows[0].goals_for[AF_AWAY] == 11 && st->rows[0].goals_against[AF_TOTAL] == 8);
    cr_expect_eq(st->rows[0].update_ms, 1732406400000LL);
    cr_expect_eq(st->rows[2].goals_diff, -13);
    cr_expect_null(st->rows[2].form);
    cr_expect_null(st->rows[2].description);
    af_standings_free(st);
    rec_free(&r);
}

/* ---- recorded errors --------------------------------------------------------------------------
 */

/* Run a body through all four parsers: the envelope is shared, so each must say the same. */
static void all_parsers_say(const recorded *r, int want_rc, int want_kind, const char *want_msg)
{
    af_api_error ae;
    bp_error err = {0};
    af_fixtures *f = NULL;
    af_odds *o = NULL;
    af_team_stats *s = NULL;
    af_standings *st = NULL;
    int rcs[4];
    rcs[0] = af_parse_fixtures(r->status, r->body, r->len, &f, &ae, &err);
    cr_expect_eq(ae.kind, want_kind, "fixtures: kind %s", af_error_kind_name(ae.kind));
    cr_expect(strstr(err.msg, want_msg), "fixtures: %s", err.msg);
    rcs[1] = af_parse_odds(r->status, r->body, r->len, &o, &ae, &err);
    cr_expect_eq(ae.kind, want_kind);
    rcs[2] = af_parse_team_stats(r->status, r->body, r->len, &s, &ae, &err);
    cr_expect_eq(ae.kind, want_kind);
    rcs[3] = af_parse_standings(r->status, r->body, r->len, &st, &ae, &err);
    cr_expect_eq(ae.kind, want_kind);
    cr_expect(strstr(err.msg, want_msg), "standings: %s", err.msg);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(rcs[i], want_rc, "parser %d returned %d", i, rcs[i]);
    }
    cr_expect(!f && !o && !s && !st);
    cr_expect_eq(ae.http_status, r->status);
}

Test(afparse, every_recorded_error_body_is_classified)
{
    recorded r = rec_load("api-football/error-bad-key-200");
    cr_assert_eq(r.status, 200);
    all_parsers_say(&r, BP_E_CONFIG, AF_ERR_TOKEN,
                    "API-Football error token (HTTP 200): Error/Missing application key.");
    rec_free(&r);

    r = rec_load("api-football/error-daily-quota-200");
    all_parsers_say(&r, BP_E_LIMIT, AF_ERR_DAILY_QUOTA,
                    "error requests (HTTP 200): You have reached the request limit for the day");
    af_quota q;
    bp_error err = {0};
    cr_assert_eq(af_quota_parse(r.headers, r.n_headers, &q, &err), BP_OK);
    cr_expect_eq(q.day_remaining, 0);
    /* 2024-11-23T16:00:00Z: pause until midnight UTC, eight hours */
    cr_expect_eq(af_quota_pause_ms(&q, 1732377600000LL, 0), 8 * 3600 * 1000LL);
    rec_free(&r);

    r = rec_load("api-football/error-plan-200");
    all_parsers_say(&r, BP_E_INVAL, AF_ERR_PLAN,
                    "error plan (HTTP 200): Free plans do not have access to this season");
    rec_free(&r);

    r = rec_load("api-football/error-ratelimit-429");
    cr_assert_eq(r.status, 429);
    all_parsers_say(&r, BP_E_RETRY, AF_ERR_RATE_LIMIT,
                    "error rateLimit (HTTP 429): Too many requests.");
    cr_assert_eq(af_quota_parse(r.headers, r.n_headers, &q, &err), BP_OK);
    cr_expect(q.minute_remaining == 0 && q.day_remaining == -1);
    cr_expect_eq(af_quota_pause_ms(&q, 1732377600000LL, 0), 60000);
    rec_free(&r);

    r = rec_load("api-football/error-rapidapi-invalid-key-401");
    all_parsers_say(&r, BP_E_CONFIG, AF_ERR_GATEWAY_KEY,
                    "API-Football gateway_key error (HTTP 401): Invalid API key.");
    rec_free(&r);
}

Test(afparse, other_failures_of_the_envelope)
{
    af_fixtures *f = NULL;
    af_api_error ae;
    bp_error err = {0};

    /* RapidAPI daily quota message with 429 */
    const char *rq = "{\"message\":\"You have exceeded the DAILY quota for Requests on your "
                     "current plan, BASIC.\"}";
    cr_expect_eq(af_parse_fixtures(429, rq, strlen(rq), &f, &ae, &err), BP_E_LIMIT);
    cr_expect_eq(ae.kind, AF_ERR_GATEWAY_QUOTA);

    /* the edge's 403 with the envelope: errors.token wins over other keys */
    const char *edge = "{\"get\":\"\",\"parameters\":[],\"errors\":{\"error\":\"Forbidden\","
                       "\"token\":\"Missing key\"},\"results\":0,\"response\":[]}";
    cr_expect_eq(af_parse_fixtures(403, edge, strlen(edge), &f, &ae, &err), BP_E_CONFIG);
    cr_expect_str_eq(ae.field, "token");

    /* a bad parameter */
    const char *param = "{\"get\":\"fixtures\",\"parameters\":{\"date\":\"2024-13-01\"},\"errors\":"
                        "{\"date\":\"The Date field must contain a valid date: Y-m-d\"},"
                        "\"results\":0,\"response\":[]}";
    cr_expect_eq(af_parse_fixtures(200, param, strlen(param), &f, &ae, &err), BP_E_INVAL);
    cr_expect_eq(ae.kind, AF_ERR_PARAMETER);
    cr_expect(strstr(err.msg, "error date (HTTP 200): The Date field must contain"), "%s", err.msg);

    /* errors as a non-empty array of strings */
    const char *arr = "{\"errors\":[\"something broke\"],\"response\":[]}";
    cr_expect_eq(af_parse_fixtures(200, arr, strlen(arr), &f, &ae, &err), BP_E_INVAL);
    cr_expect_str_eq(ae.message, "something broke");

    /* a 5xx with an HTML page, and one with an empty envelope */
    const char *html = "<html><body>502 Bad Gateway</body></html>";
    cr_expect_eq(af_parse_fixtures(502, html, strlen(html), &f, &ae, &err), BP_E_UNAVAILABLE);
    cr_expect_eq(ae.kind, AF_ERR_HTTP);
    const char *empty5 = "{\"errors\":[],\"response\":[]}";
    cr_expect_eq(af_parse_fixtures(500, empty5, strlen(empty5), &f, &ae, &err), BP_E_UNAVAILABLE);

    /* 204 No Content: nothing to parse, nothing found */
    cr_assert_eq(af_parse_fixtures(204, "", 0, &f, &ae, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(f->n, 0);
    af_fixtures_free(f);

    /* an empty success */
    const char *none = "{\"get\":\"fixtures\",\"parameters\":[],\"errors\":{},\"results\":0,"
                       "\"paging\":{\"current\":1,\"total\":1},\"response\":[]}";
    cr_assert_eq(af_parse_fixtures(200, none, strlen(none), &f, &ae, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(f->n, 0);
    af_fixtures_free(f);
}

/* ---- broken payloads ----------------------------------------------------------------------------
 */

Test(afparse, every_truncation_of_a_body_is_an_error_not_a_crash)
{
    static const char *const files[] = {"api-football/odds", "api-football/fixtures",
                                        "api-football/teams-statistics", "api-football/standings"};
    for (size_t k = 0; k < 4; k++) {
        recorded r = rec_load(files[k]);
        /* every cut short of the closing bracket (a trailing newline may go) */
        size_t whole = r.len;
        while (whole > 0 && (r.body[whole - 1] == '\n' || r.body[whole - 1] == ' ')) {
            whole--;
        }
        for (size_t cut = 0; cut < whole; cut += (cut < 64 ? 1 : 7)) {
            bp_error err = {0};
            af_api_error ae;
            int rc;
            if (k == 0) {
                af_odds *o = NULL;
                rc = af_parse_odds(200, r.body, cut, &o, &ae, &err);
                cr_assert_null(o);
            } else if (k == 1) {
                af_fixtures *f = NULL;
                rc = af_parse_fixtures(200, r.body, cut, &f, &ae, &err);
                cr_assert_null(f);
            } else if (k == 2) {
                af_team_stats *s = NULL;
                rc = af_parse_team_stats(200, r.body, cut, &s, &ae, &err);
                cr_assert_null(s);
            } else {
                af_standings *s = NULL;
                rc = af_parse_standings(200, r.body, cut, &s, &ae, &err);
                cr_assert_null(s);
            }
            cr_assert_eq(rc, BP_E_INVAL, "%s cut at %zu: rc %d", files[k], cut, rc);
            cr_assert(cut == 0 ? strstr(err.msg, "the body is empty") != NULL
                               : strstr(err.msg, "not valid JSON at line") != NULL,
                      "%s cut at %zu: %s", files[k], cut, err.msg);
        }
        rec_free(&r);
    }
}

static void odd_true(json_t *root)
{
    json_object_set_new(at(root, "response.0.bookmakers.1.bets.0.values.2"), "odd", json_true());
}
static void odd_text(json_t *root)
{
    json_object_set_new(at(root, "response.0.bookmakers.0.bets.1.values.3"), "odd",
                        json_string("1,90"));
}
static void label_bad(json_t *root)
{
    json_object_set_new(at(root, "response.0.bookmakers.0.bets.1.values.0"), "value",
                        json_string("Over two"));
}
static void label_1x2_bad(json_t *root)
{
    json_object_set_new(at(root, "response.0.bookmakers.0.bets.0.values.1"), "value",
                        json_string("Tie"));
}
static void bookmakers_object(json_t *root)
{
    json_object_set_new(at(root, "response.0"), "bookmakers", json_object());
}
static void fixture_id_string(json_t *root)
{
    json_object_set_new(at(root, "response.1.fixture"), "id", json_string("9900002"));
}
static void teams_missing(json_t *root)
{
    json_object_del(at(root, "response.2"), "teams");
}
static void home_name_null(json_t *root)
{
    json_object_set_new(at(root, "response.0.teams.home"), "name", json_null());
}
static void response_object(json_t *root)
{
    json_object_set_new(root, "response", json_object());
}
static void paging_backwards(json_t *root)
{
    json_object_set_new(at(root, "paging"), "current", json_integer(3));
}
static void goals_string(json_t *root)
{
    json_object_set_new(at(root, "response.0.goals"), "home", json_string("2"));
}
static void avg_bad(json_t *root)
{
    json_object_set_new(at(root, "response.goals.for.average"), "home", json_string("n/a"));
}
static void standings_flat(json_t *root)
{
    json_t *league = at(root, "response.0.league");
    json_t *rows = json_array_get(json_object_get(league, "standings"), 0);
    json_object_set(league, "standings", rows);
}

Test(afparse, wrong_types_are_named_by_their_payload_path)
{
    static const struct {
        const char *file;
        void (*edit)(json_t *);
        int which; /* 0 odds, 1 fixtures, 2 stats, 3 standings */
        const char *want;
    } cases[] = {
        {"api-football/odds", odd_true, 0,
         "response[0].bookmakers[1].bets[0].values[2].odd: expected a decimal string, got true"},
        {"api-football/odds", odd_text, 0,
         "response[0].bookmakers[0].bets[1].values[3].odd: expected a decimal string, got the "
         "string \"1,90\""},
        {"api-football/odds", label_bad, 0,
         "response[0].bookmakers[0].bets[1].values[0].value: \"Over two\" is not \"Over "
         "<goals>\" or \"Under <goals>\""},
        {"api-football/odds", label_1x2_bad, 0,
         "response[0].bookmakers[0].bets[0].values[1].value: \"Tie\" is not Home, Draw or Away"},
        {"api-football/odds", bookmakers_object, 0,
         "response[0].bookmakers: expected an array, got an object"},
        {"api-football/fixtures", fixture_id_string, 1,
         "response[1].fixture.id: expected an integer, got the string \"9900002\""},
        {"api-football/fixtures", teams_missing, 1, "response[2].teams: is missing"},
        {"api-football/fixtures", home_name_null, 1,
         "response[0].teams.home.name: is null but required"},
        {"api-football/fixtures", response_object, 1, "response: expected an array, got an object"},
        {"api-football/fixtures", paging_backwards, 1, "paging: page 3 of 1 makes no sense"},
        {"api-football/fixtures", goals_string, 1,
         "response[0].goals.home: expected an integer, got the string \"2\""},
        {"api-football/teams-statistics", avg_bad, 2,
         "response.goals.for.average.home: expected a decimal string, got the string \"n/a\""},
        {"api-football/standings", standings_flat, 3,
         "response[0].league.standings[0]: expected an array, got an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *body = mutate(cases[i].file, cases[i].want, cases[i].edit, &len);
        bp_error err = {0};
        int rc;
        af_odds *o = NULL;
        af_fixtures *f = NULL;
        af_team_stats *s = NULL;
        af_standings *st = NULL;
        switch (cases[i].which) {
        case 0: rc = af_parse_odds(200, body, len, &o, NULL, &err); break;
        case 1: rc = af_parse_fixtures(200, body, len, &f, NULL, &err); break;
        case 2: rc = af_parse_team_stats(200, body, len, &s, NULL, &err); break;
        default: rc = af_parse_standings(200, body, len, &st, NULL, &err); break;
        }
        cr_expect_eq(rc, BP_E_INVAL, "case %zu", i);
        cr_expect(!o && !f && !s && !st);
        cr_expect_str_eq(err.msg, cases[i].want, "case %zu: got \"%s\"", i, err.msg);
        free(body);
    }

    /* a body that is JSON but not an envelope */
    af_fixtures *f = NULL;
    bp_error err = {0};
    cr_expect_eq(af_parse_fixtures(200, "[1,2]", 5, &f, NULL, &err), BP_E_INVAL);
    cr_expect_str_eq(err.msg, "(top level): expected an object, got an array");
    cr_expect_eq(af_parse_fixtures(200, "{\"errors\":[]}", 13, &f, NULL, &err), BP_E_INVAL);
    cr_expect_str_eq(err.msg, "response: is missing");
}

Test(afparse, quota_headers_must_be_counts)
{
    bp_http_header h[] = {{.name = "X-RateLimit-Remaining", .value = "many"}};
    af_quota q;
    bp_error err = {0};
    cr_expect_eq(af_quota_parse(h, 1, &q, &err), BP_E_INVAL);
    cr_expect_str_eq(err.msg, "header X-RateLimit-Remaining: 'many' is not a count");
    /* keep a reserve of the daily quota */
    af_quota r = {.day_limit = 100, .day_remaining = 5, .minute_limit = 10, .minute_remaining = 3};
    cr_expect_eq(af_quota_pause_ms(&r, 0, 0), 0);
    cr_expect_eq(af_quota_pause_ms(&r, 0, 5), 86400000);
    cr_expect_str_eq(af_state_name(af_state_of("PST")), "postponed");
    cr_expect_eq(af_state_of("AWD"), AF_STATE_AWARDED);
    cr_expect_eq(af_state_of("XYZ"), AF_STATE_UNKNOWN);
}
