/*
 * test_toaparse.c - The Odds API v4 payload parsers on every recorded body (odds, scores and
 * the four error bodies) and on broken payloads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "afparse.h"
#include "recorded.h"
#include "support.h"
#include "toaparse.h"

static const toa_quote *find(const toa_odds *o, size_t ev, const char *book, int market, int sel)
{
    const toa_event *e = &o->events[ev];
    for (size_t i = e->first_quote; i < e->first_quote + e->n_quotes; i++) {
        const toa_quote *q = &o->quotes[i];
        if (strcmp(q->bookmaker, book) == 0 && q->market == market && q->selection == sel) {
            return q;
        }
    }
    return NULL;
}

Test(toaparse, odds_h2h_and_totals_with_a_missing_market)
{
    recorded r = rec_load("the-odds-api/odds");
    toa_odds *o = NULL;
    toa_api_error ae;
    bp_error err = {0};
    cr_assert_eq(toa_parse_odds(r.status, r.body, r.len, &o, &ae, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(ae.kind, TOA_OK);
    cr_assert_eq(o->n, 2);
    const toa_event *e = &o->events[0];
    cr_expect_str_eq(e->id, "f4da400bb47c7fdcc0608ae9efe414b7");
    cr_expect_str_eq(e->sport_key, "soccer_epl");
    cr_expect_str_eq(e->sport_title, "EPL");
    cr_expect_str_eq(e->home_team, "Chelsea");
    cr_expect_str_eq(e->away_team, "Arsenal");
    cr_expect_eq(e->commence_ms, 1732392000000LL);
    cr_expect_eq(e->n_quotes, 10);
    /* event 2: William Hill has no totals: 3 + 3 + 2 */
    cr_expect_eq(o->events[1].n_quotes, 8);
    cr_expect_eq(o->n_quotes, 18);
    cr_expect_eq(o->skipped_markets, 0);

    /* h2h outcomes are matched by name, whatever their order */
    const toa_quote *q = find(o, 0, "williamhill", CM_MARKET_1X2, CM_SEL_HOME);
    cr_assert(q);
    cr_expect(q->price == 2.6 && isnan(q->line));
    cr_expect_str_eq(q->bookmaker_title, "William Hill");
    cr_expect_eq(q->last_update_ms, 1732377521000LL);
    q = find(o, 0, "williamhill", CM_MARKET_1X2, CM_SEL_AWAY);
    cr_expect(q && q->price == 2.7);
    q = find(o, 0, "pinnacle", CM_MARKET_1X2, CM_SEL_DRAW);
    cr_expect(q && q->price == 3.45);
    q = find(o, 0, "pinnacle", CM_MARKET_OU, CM_SEL_UNDER);
    cr_expect(q && q->price == 1.95 && q->line == 2.5);
    q = find(o, 1, "pinnacle", CM_MARKET_OU, CM_SEL_OVER);
    cr_expect(q && q->price == 1.71 && q->line == 3.0);
    q = find(o, 1, "williamhill", CM_MARKET_1X2, CM_SEL_DRAW);
    cr_expect(q && q->price == 4.0, "4.0 arrives as a JSON number");
    cr_expect_null(find(o, 1, "williamhill", CM_MARKET_OU, CM_SEL_OVER));
    cr_expect_str_eq(o->events[1].home_team, "Brighton and Hove Albion");

    /* the same match as API-Football fixture 9900003: same kick-off, same league */
    cr_expect_eq(e->commence_ms, 1732392000LL * 1000);
    cr_expect_eq(af_league_by_sport_key(e->sport_key)->af_id, 39);
    toa_odds_free(o);

    toa_quota qu;
    cr_assert_eq(toa_quota_parse(r.headers, r.n_headers, &qu, &err), BP_OK, "%s", err.msg);
    cr_expect(qu.remaining == 392 && qu.used == 108 && qu.last == 4);
    cr_expect_eq(toa_odds_cost(2, 2), qu.last, "h2h,totals x uk,eu cost 4");
    cr_expect(toa_quota_allows(&qu, 4));
    cr_expect(!toa_quota_allows(&qu, 393));
    rec_free(&r);
}

Test(toaparse, scores_completed_live_and_not_started)
{
    recorded r = rec_load("the-odds-api/scores");
    toa_scores *s = NULL;
    bp_error err = {0};
    cr_assert_eq(toa_parse_scores(r.status, r.body, r.len, &s, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(s->n, 3);
    cr_expect(s->items[0].completed && s->items[0].home_score == 2 && s->items[0].away_score == 1);
    cr_expect_str_eq(s->items[0].away_team, "Tottenham Hotspur");
    cr_expect_eq(s->items[0].last_update_ms, 1732372023000LL);
    cr_expect(!s->items[1].completed && s->items[1].home_score == 1 && s->items[1].away_score == 1);
    cr_expect(!s->items[2].completed && s->items[2].home_score == -1 &&
              s->items[2].away_score == -1);
    cr_expect_eq(s->items[2].last_update_ms, -1);
    cr_expect_str_eq(s->items[2].id, "f4da400bb47c7fdcc0608ae9efe414b7");
    toa_scores_free(s);

    toa_quota q;
    cr_assert_eq(toa_quota_parse(r.headers, r.n_headers, &q, &err), BP_OK);
    cr_expect(q.remaining == 390 && q.last == 2);
    rec_free(&r);
}

Test(toaparse, every_recorded_error_body_is_classified_by_error_code)
{
    static const struct {
        const char *file;
        int rc, kind;
        const char *code, *msg;
    } cases[] = {
        {"the-odds-api/error-401-invalid-key", BP_E_CONFIG, TOA_ERR_KEY, "INVALID_KEY",
         "The Odds API error INVALID_KEY (HTTP 401): API key is not valid."},
        {"the-odds-api/error-401-out-of-usage-credits", BP_E_LIMIT, TOA_ERR_QUOTA,
         "OUT_OF_USAGE_CREDITS",
         "The Odds API error OUT_OF_USAGE_CREDITS (HTTP 401): Usage quota has been reached."},
        {"the-odds-api/error-422-missing-region", BP_E_INVAL, TOA_ERR_REQUEST, "MISSING_REGION",
         "The Odds API error MISSING_REGION (HTTP 422): Missing regions or bookmakers key"},
        {"the-odds-api/error-429-exceeded-freq-limit", BP_E_RETRY, TOA_ERR_FREQUENCY,
         "EXCEEDED_FREQ_LIMIT", "The Odds API error EXCEEDED_FREQ_LIMIT (HTTP 429)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        recorded r = rec_load(cases[i].file);
        toa_api_error ae;
        bp_error err = {0};
        toa_odds *o = NULL;
        toa_scores *s = NULL;
        cr_expect_eq(toa_parse_error(r.status, r.body, r.len, &ae, &err), cases[i].rc, "%s",
                     cases[i].file);
        cr_expect_eq(ae.kind, cases[i].kind, "%s: %s", cases[i].file, toa_error_kind_name(ae.kind));
        cr_expect_str_eq(ae.code, cases[i].code);
        cr_expect(strstr(err.msg, cases[i].msg), "%s: %s", cases[i].file, err.msg);
        /* the body parsers classify an error status the same way */
        cr_expect_eq(toa_parse_odds(r.status, r.body, r.len, &o, &ae, &err), cases[i].rc);
        cr_expect_eq(ae.kind, cases[i].kind);
        cr_expect_eq(toa_parse_scores(r.status, r.body, r.len, &s, &ae, &err), cases[i].rc);
        cr_expect(!o && !s);
        rec_free(&r);
    }

    /* out of credits: the quota headers say so too */
    recorded r = rec_load("the-odds-api/error-401-out-of-usage-credits");
    toa_quota q;
    bp_error err = {0};
    cr_assert_eq(toa_quota_parse(r.headers, r.n_headers, &q, &err), BP_OK);
    cr_expect(q.remaining == 0 && q.used == 500);
    cr_expect(!toa_quota_allows(&q, 1));
    rec_free(&r);

    /* a code we do not know falls back on the status; a non-JSON error body too */
    toa_api_error ae;
    const char *unknown = "{\"message\":\"new thing\",\"error_code\":\"SOMETHING_NEW\"}";
    cr_expect_eq(toa_parse_error(401, unknown, strlen(unknown), &ae, &err), BP_E_CONFIG);
    cr_expect_eq(toa_parse_error(404, "{\"error_code\":\"UNKNOWN_SPORT\"}", 31, &ae, &err),
                 BP_E_NOTFOUND);
    const char *html = "<html>502 Bad Gateway</html>";
    cr_expect_eq(toa_parse_error(502, html, strlen(html), &ae, &err), BP_E_UNAVAILABLE);
    cr_expect_eq(ae.kind, TOA_ERR_HTTP);
    cr_expect(strstr(err.msg, "The Odds API HTTP 502"), "%s", err.msg);
}

Test(toaparse, every_truncation_of_a_body_is_an_error_not_a_crash)
{
    static const char *const files[] = {"the-odds-api/odds", "the-odds-api/scores"};
    for (size_t k = 0; k < 2; k++) {
        recorded r = rec_load(files[k]);
        /* every cut short of the closing bracket (a trailing newline may go) */
        size_t whole = r.len;
        while (whole > 0 && (r.body[whole - 1] == '\n' || r.body[whole - 1] == ' ')) {
            whole--;
        }
        for (size_t cut = 0; cut < whole; cut++) {
            bp_error err = {0};
            int rc;
            if (k == 0) {
                toa_odds *o = NULL;
                rc = toa_parse_odds(200, r.body, cut, &o, NULL, &err);
                cr_assert_null(o);
            } else {
                toa_scores *s = NULL;
                rc = toa_parse_scores(200, r.body, cut, &s, NULL, &err);
                cr_assert_null(s);
            }
            cr_assert_eq(rc, BP_E_INVAL, "%s cut at %zu", files[k], cut);
            cr_assert(err.msg[0], "%s cut at %zu: no message", files[k], cut);
        }
        rec_free(&r);
    }
}

/* Replace the first occurrence of `from` in a recorded body by `to`. */
static char *edit(const char *rel, const char *from, const char *to, size_t *out_len)
{
    recorded r = rec_load(rel);
    char *hit = strstr(r.body, from);
    cr_assert(hit, "%s: no '%s'", rel, from);
    size_t n = r.len - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    cr_assert(s);
    size_t head = (size_t)(hit - r.body);
    memcpy(s, r.body, head);
    memcpy(s + head, to, strlen(to));
    memcpy(s + head + strlen(to), hit + strlen(from), strlen(hit + strlen(from)) + 1);
    *out_len = n;
    rec_free(&r);
    return s;
}

Test(toaparse, wrong_types_are_named_by_their_payload_path)
{
    static const struct {
        const char *file, *from, *to, *want;
    } cases[] = {
        {"the-odds-api/odds", "{ \"name\": \"Chelsea\", \"price\": 2.6 }",
         "{ \"name\": \"Chelsea\", \"price\": \"2.6\" }",
         "[0].bookmakers[0].markets[0].outcomes[0].price: expected a number, got the string "
         "\"2.6\""},
        {"the-odds-api/odds", "{ \"name\": \"Arsenal\", \"price\": 2.7 }",
         "{ \"name\": \"Arsenal FC\", \"price\": 2.7 }",
         "[0].bookmakers[0].markets[0].outcomes[1].name: \"Arsenal FC\" is not the home team "
         "\"Chelsea\", the away team \"Arsenal\" or Draw"},
        {"the-odds-api/odds", "{ \"name\": \"Over\", \"price\": 1.91, \"point\": 2.5 }",
         "{ \"name\": \"Over\", \"price\": 1.91 }",
         "[0].bookmakers[0].markets[1].outcomes[0].point: is missing"},
        {"the-odds-api/odds", "\"commence_time\": \"2024-11-24T16:30:00Z\"",
         "\"commence_time\": \"tomorrow\"",
         "[1].commence_time: expected an ISO-8601 time or Unix seconds, got the string "
         "\"tomorrow\""},
        {"the-odds-api/odds", "\"home_team\": \"Chelsea\"", "\"home_team\": null",
         "[0].home_team: is null but required"},
        {"the-odds-api/scores", "{ \"name\": \"Manchester United\", \"score\": \"2\" }",
         "{ \"name\": \"Manchester United\", \"score\": \"two\" }",
         "[0].scores[0].score: expected a goal count such as \"2\", got the string \"two\""},
        {"the-odds-api/scores",
         "\"completed\": false,\n    \"home_team\": \"Chelsea\",\n    \"away_team\": "
         "\"Arsenal\",\n    \"scores\": null",
         "\"completed\": true,\n    \"home_team\": \"Chelsea\",\n    \"away_team\": "
         "\"Arsenal\",\n    \"scores\": null",
         "[2].scores: a completed event has no scores"},
        {"the-odds-api/scores", "\"completed\": true", "\"completed\": \"yes\"",
         "[0].completed: expected true or false, got the string \"yes\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *body = edit(cases[i].file, cases[i].from, cases[i].to, &len);
        bp_error err = {0};
        int rc;
        if (strstr(cases[i].file, "scores")) {
            toa_scores *s = NULL;
            rc = toa_parse_scores(200, body, len, &s, NULL, &err);
            cr_expect_null(s);
        } else {
            toa_odds *o = NULL;
            rc = toa_parse_odds(200, body, len, &o, NULL, &err);
            cr_expect_null(o);
        }
        cr_expect_eq(rc, BP_E_INVAL, "case %zu", i);
        cr_expect_str_eq(err.msg, cases[i].want, "case %zu: got \"%s\"", i, err.msg);
        free(body);
    }
    toa_odds *o = NULL;
    bp_error err = {0};
    const char *obj = "{\"message\":\"not an array\"}";
    cr_expect_eq(toa_parse_odds(200, obj, strlen(obj), &o, NULL, &err), BP_E_INVAL);
    cr_expect_str_eq(err.msg, "(top level): expected an array of events, got an object");
    cr_expect_eq(toa_parse_odds(200, "", 0, &o, NULL, &err), BP_E_INVAL);
    cr_expect(strstr(err.msg, "the body is empty"), "%s", err.msg);
}

Test(toaparse, spreads_lay_markets_events_without_books_and_bad_prices)
{
    const char *body =
        "[{\"id\":\"e1\",\"sport_key\":\"soccer_epl\",\"commence_time\":1732465800,"
        "\"home_team\":\"Brighton and Hove Albion\",\"away_team\":\"Manchester City\","
        "\"bookmakers\":[{\"key\":\"betfair_ex_uk\",\"title\":\"Betfair\",\"markets\":["
        "{\"key\":\"spreads\",\"outcomes\":[{\"name\":\"Manchester City\",\"price\":1.97,"
        "\"point\":-1},{\"name\":\"Brighton and Hove Albion\",\"price\":1.93,\"point\":1}]},"
        "{\"key\":\"h2h_lay\",\"outcomes\":[{\"name\":\"Draw\",\"price\":4.3}]},"
        "{\"key\":\"h2h\",\"outcomes\":[{\"name\":\"Draw\",\"price\":1.0},"
        "{\"name\":\"Manchester City\",\"price\":1.8}]}]}]},"
        "{\"id\":\"e2\",\"sport_key\":\"soccer_epl\",\"commence_time\":\"2024-11-25T20:00:00Z\","
        "\"home_team\":\"Fulham\",\"away_team\":\"Wolves\"}]";
    toa_odds *o = NULL;
    bp_error err = {0};
    cr_assert_eq(toa_parse_odds(200, body, strlen(body), &o, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(o->n, 2);
    cr_expect_eq(o->events[0].commence_ms, 1732465800000LL, "dateFormat=unix");
    cr_expect_eq(o->skipped_markets, 1);
    cr_expect_eq(o->dropped, 1);
    cr_expect_str_eq(o->first_dropped, "[0].bookmakers[0].markets[2].outcomes[0].price");
    /* spreads: both outcomes describe the home line +1 */
    const toa_quote *q = find(o, 0, "betfair_ex_uk", CM_MARKET_AH, CM_SEL_AWAY);
    cr_expect(q && q->line == 1.0 && q->price == 1.97);
    q = find(o, 0, "betfair_ex_uk", CM_MARKET_AH, CM_SEL_HOME);
    cr_expect(q && q->line == 1.0 && q->price == 1.93);
    cr_expect_eq(o->events[1].n_quotes, 0);
    cr_expect_null(o->events[1].sport_title);
    toa_odds_free(o);

    bp_http_header h[] = {{.name = "x-requests-remaining", .value = "392.0"},
                          {.name = "X-Requests-Used", .value = "-3"}};
    toa_quota qu;
    cr_expect_eq(toa_quota_parse(h, 1, &qu, &err), BP_OK);
    cr_expect_eq(qu.remaining, 392);
    cr_expect_eq(toa_quota_parse(h, 2, &qu, &err), BP_E_INVAL);
    cr_expect_str_eq(err.msg, "header X-Requests-Used: '-3' is not a count");
}
