/*
 * the_odds_api - The Odds API v4 collector: decimal odds (h2h = 1X2, totals = over/under,
 * spreads = Asian handicap) and scores into the store.
 *
 * Credits. Every call costs credits (odds: markets x regions; scores: 1, 2 with daysFrom) and
 * every response says how many are left (x-requests-remaining). The last figure is kept in
 * <data_dir>/collectors/the_odds_api.json and checked before each call: a call that would eat
 * into `credit_reserve` is not made. The figure is trusted for `quota_pause_ms` after it was
 * seen, then forgotten (the monthly reset is not announced).
 *
 * Errors are told apart by error_code, as the docs say (toaparse):
 *   401 INVALID_KEY / MISSING_KEY / DEACTIVATED_KEY  -> BP_E_CONFIG: the source is skipped;
 *   401 OUT_OF_USAGE_CREDITS                         -> a pause of quota_pause_ms, persisted;
 *   429 EXCEEDED_FREQ_LIMIT                          -> retried by the HTTP client with backoff;
 *   422 (MISSING_REGION, INVALID_MARKET, ...)        -> the request is wrong: an error, no retry.
 *
 * Matching. The Odds API has its own event ids and full team names ("Brighton and Hove
 * Albion"). Names go through the team aliases of the league the sport key maps to; an event is
 * the match already known under its event id, else the match of the same two teams kicking off
 * within match_window_ms, else a new scheduled match (season from the date: a season starts in
 * July), listed in the report's "matches_created".
 *
 * The key is the apiKey query parameter, marked secret: the HTTP client masks it in every log
 * line and error message; the reports name requests without it.
 *
 * Config (plugins.config.the_odds_api): api_key (or BETPIPE_ODDS_API_KEY), base_url
 * (https://api.the-odds-api.com), regions ("uk,eu"), markets ("h2h,totals"), bookmakers (none),
 * leagues (["E0","SP1","D1","I1","F1"]), credit_reserve (0), quota_pause_ms (86400000),
 * scores_days_from (0 = live and upcoming only), match_window_ms (259200000), retry_base_ms
 * (2000), max_attempts (3), timeout_ms (30000).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "betpipe/betpipe.h"
#include "csupport.h"
#include "toaparse.h"

#define TOA_NAME        "the_odds_api"
#define TOA_DEFAULT_URL "https://api.the-odds-api.com"

static const char *const toa_all_leagues[] = {"E0", "SP1", "D1", "I1", "F1", NULL};

typedef struct toa_state {
    const bp_host *host;
} toa_state;

typedef struct toa_run {
    const bp_host *h;
    const bp_job *job;
    const char *key;
    const char *base;
    json_t *report;
    json_t *state;
    toa_quota quota;
    int64_t reserve;
    int64_t pause_ms;
    int64_t window_ms;
    int32_t retry_base_ms;
    int32_t max_attempts;
    int32_t timeout_ms;
    int stop_code;
    bp_error stop_err;
    int ok_requests;
    int first_fail;
    bp_error first_err;
} toa_run;

static void stop_run(toa_run *r, int code, const char *msg)
{
    if (r->stop_code == BP_OK) {
        r->stop_code = code;
        bp_err(&r->stop_err, code, "%s", msg);
    }
}

static void run_fail(toa_run *r, int code, const bp_error *err)
{
    if (r->first_fail == BP_OK) {
        r->first_fail = code;
        r->first_err = *err;
    }
}

/* The last credit figures, unless they are older than the pause window. */
static void quota_from_state(toa_run *r)
{
    const json_t *q = json_object_get(r->state, "quota");
    int64_t seen = (int64_t)json_integer_value(json_object_get(r->state, "quota_seen_ms"));
    r->quota.remaining = r->quota.used = r->quota.last = -1;
    if (json_is_object(q) && seen + r->pause_ms > r->h->now_ms(r->h)) {
        r->quota.remaining = (int64_t)json_integer_value(json_object_get(q, "remaining"));
        r->quota.used = (int64_t)json_integer_value(json_object_get(q, "used"));
    }
}

static void note_quota(toa_run *r, const bp_http_response *resp)
{
    toa_quota q;
    bp_error err = {0};
    if (toa_quota_parse(resp->headers, resp->n_headers, &q, &err) != BP_OK) {
        BP_LOGW(r->h, "ignoring a quota header: %s", err.msg);
        return;
    }
    if (q.remaining < 0) {
        return;
    }
    r->quota = q;
    json_t *jq = json_pack("{s:I, s:I, s:I}", "remaining", (json_int_t)q.remaining, "used",
                           (json_int_t)q.used, "last", (json_int_t)q.last);
    json_object_set(r->report, "quota", jq);
    json_object_set_new(r->state, "quota", jq);
    json_object_set_new(r->state, "quota_seen_ms", json_integer(r->h->now_ms(r->h)));
    cs_state_save(r->h, TOA_NAME, r->state, &err);
}

static void pause_out_of_credits(toa_run *r, const char *why)
{
    bp_error err = {0};
    int64_t until = r->h->now_ms(r->h) + r->pause_ms;
    char msg[BP_ERROR_MSG_MAX], iso[40];
    cs_pause_set(r->h, TOA_NAME, r->state, until, why, &err);
    cs_iso(until, iso, sizeof iso);
    snprintf(msg, sizeof msg, "The Odds API paused until %s: %s", iso, why);
    json_object_set_new(r->report, "paused", json_pack("{s:s, s:s}", "until", iso, "reason", why));
    stop_run(r, BP_E_LIMIT, msg);
}

typedef struct toa_param {
    const char *name;
    const char *value;
} toa_param;

/* GET base + path with apiKey and params; the credits are checked first and noted after. */
static int toa_get(toa_run *r, const char *path, const toa_param *p, size_t n, int64_t cost,
                   bp_http_response **out, bp_error *err)
{
    const bp_host *h = r->h;
    char url[1024];
    bp_http_param params[10];
    int rc;
    *out = NULL;
    if (r->stop_code != BP_OK) {
        return bp_err(err, r->stop_code, "%s", r->stop_err.msg);
    }
    if (h->cancelled(r->job)) {
        stop_run(r, BP_E_CANCELLED, "cancelled");
        return bp_err(err, BP_E_CANCELLED, "cancelled");
    }
    if (!toa_quota_allows(&r->quota, cost + r->reserve)) {
        char msg[BP_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "not enough credits for %s: it costs %lld, %lld are left and %lld are kept in "
                 "reserve (credit_reserve)",
                 path, (long long)cost, (long long)r->quota.remaining, (long long)r->reserve);
        stop_run(r, BP_E_LIMIT, msg);
        return bp_err(err, BP_E_LIMIT, "%s", msg);
    }
    if (snprintf(url, sizeof url, "%s%s", r->base, path) >= (int)sizeof url || n > 9) {
        return bp_err(err, BP_E_INVAL, "request URL too long");
    }
    params[0] = (bp_http_param){.name = "apiKey", .value = r->key, .secret = 1};
    for (size_t i = 0; i < n; i++) {
        params[i + 1] = (bp_http_param){.name = p[i].name, .value = p[i].value};
    }
    bp_http_request req = {
        .struct_size = sizeof req,
        .url = url,
        .params = params,
        .n_params = n + 1,
        .timeout_ms = r->timeout_ms,
        .retry = {.max_attempts = r->max_attempts, .base_delay_ms = r->retry_base_ms},
        .job = r->job,
    };
    cs_count_request(r->report);
    rc = h->http->request(h, &req, out, err);
    if (rc == BP_E_CANCELLED) {
        stop_run(r, BP_E_CANCELLED, "cancelled");
    }
    if (rc == BP_OK) {
        note_quota(r, *out);
    }
    return rc;
}

static void request_failed(toa_run *r, const char *req, int rc, const toa_api_error *ae,
                           const bp_error *err)
{
    if (ae && ae->kind == TOA_ERR_QUOTA) {
        pause_out_of_credits(r, ae->message[0] ? ae->message : "usage credits used up");
    } else if (ae && ae->kind == TOA_ERR_KEY) {
        stop_run(r, BP_E_CONFIG, err->msg);
    }
    if (rc == BP_E_INVAL && ae && ae->kind == TOA_OK) {
        cs_reject(r->report, req, NULL, err->msg);
    } else {
        cs_error(r->report, req, rc, err->msg);
    }
    /* ae is NULL when the HTTP client failed: its message names the URL */
    bp_error named = cs_request_error(req, err, ae == NULL);
    run_fail(r, rc, &named);
    BP_LOGW(r->h, "%s failed: %s", req, err->msg);
}

/* ---- events into matches -----------------------------------------------------------------------
 */

static int resolve_team(toa_run *r, bp_store_batch *b, int64_t league, const char *name,
                        int64_t *out, bp_error *err)
{
    int32_t created = 0;
    int rc = r->h->store->resolve_team(r->h, b, league, BP_SOURCE_THE_ODDS_API, name, out, &created,
                                       err);
    if (rc == BP_OK && created) {
        char text[300];
        snprintf(text, sizeof text, "%s (league %lld)", name, (long long)league);
        cs_note(r->report, "teams_created", text);
        BP_LOGI(r->h, "new team from The Odds API: %s (add an alias if it is a known club)", name);
    }
    return rc;
}

/* The season (starting year) of a stored match found near `kickoff`, from its label. */
static int32_t season_of_match(toa_run *r, int64_t match_id, int64_t team, int64_t kickoff)
{
    bp_match_query q = {.struct_size = sizeof q,
                        .team_id = team,
                        .from_ms = kickoff - r->window_ms,
                        .to_ms = kickoff + r->window_ms + 1};
    json_t *arr = NULL, *m;
    size_t i;
    int32_t season = 0;
    if (r->h->store->list_matches(r->h, &q, &arr, NULL) != BP_OK) {
        return 0;
    }
    json_array_foreach(arr, i, m)
    {
        if (json_integer_value(json_object_get(m, "id")) == match_id) {
            const char *label = json_string_value(json_object_get(m, "season"));
            season = label ? (int32_t)strtol(label, NULL, 10) : 0;
        }
    }
    json_decref(arr);
    return season;
}

/*
 * The match an event stands for, created or updated from what the event says (teams, kick-off,
 * and - for scores - status and goals; -1/0 for what it does not say). The event id is
 * remembered.
 */
static int event_match(toa_run *r, bp_store_batch *b, int64_t league, const char *event_id,
                       const char *home_name, const char *away_name, int64_t commence,
                       int32_t status, int32_t hg, int32_t ag, int64_t *out_match,
                       int32_t *out_outcome, bp_error *err)
{
    const bp_host *h = r->h;
    int64_t home = 0, away = 0, found = 0;
    int32_t season = 0;
    int rc;
    if ((rc = resolve_team(r, b, league, home_name, &home, err)) != BP_OK ||
        (rc = resolve_team(r, b, league, away_name, &away, err)) != BP_OK) {
        return rc;
    }
    if (h->store->find_match(h, b, BP_SOURCE_THE_ODDS_API, event_id, &found, NULL) == BP_OK ||
        h->store->find_match_by_teams(h, b, home, away, commence, r->window_ms, &found, NULL) ==
            BP_OK) {
        season = season_of_match(r, found, home, commence);
    }
    if (season == 0) {
        season = cs_season_of(commence);
    }
    bp_match_rec m = {.struct_size = sizeof m,
                      .season = season,
                      .league_id = league,
                      .home_team_id = home,
                      .away_team_id = away,
                      .kickoff_ms = commence,
                      .kickoff_exact = 1,
                      .status = status,
                      .home_goals = hg,
                      .away_goals = ag,
                      .ht_home_goals = -1,
                      .ht_away_goals = -1,
                      .elapsed = -1,
                      .source = BP_SOURCE_THE_ODDS_API,
                      .external_id = event_id};
    rc = h->store->upsert_match(h, b, &m, out_match, out_outcome, err);
    if (rc == BP_OK && *out_outcome == BP_UPSERT_INSERTED) {
        /* An event no other source has told us about (yet): it becomes a scheduled match of its
         * own, so its odds are kept and it can be predicted. A later API-Football fixture of
         * the same pairing and season lands on it (matches are keyed by season and teams). Said
         * in the report, because a misspelt team would show up here first. */
        char text[400], iso[40];
        cs_iso(commence, iso, sizeof iso);
        snprintf(text, sizeof text, "%s v %s, %s (event %s)", home_name, away_name, iso, event_id);
        cs_note(r->report, "matches_created", text);
        BP_LOGI(h, "new match from The Odds API: %s", text);
    }
    return rc;
}

/* A bookmaker key as our store wants it ([a-z0-9_]). */
static void book_key(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in ? in : ""; *p && o + 1 < len; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        out[o++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
    }
    out[o] = '\0';
    if (o == 0) {
        snprintf(out, len, "unknown");
    }
}

static int store_odds(toa_run *r, const toa_odds *o, int64_t league, const char *req, bp_error *err)
{
    const bp_host *h = r->h;
    bp_store_batch *b = NULL;
    bp_odds_quote *q = calloc(o->n_quotes ? o->n_quotes : 1, sizeof *q);
    char(*keys)[64] = calloc(o->n_quotes ? o->n_quotes : 1, sizeof *keys);
    bp_store_counts c = {0};
    int64_t now = h->now_ms(h);
    int rc = q && keys ? h->store->batch_begin(h, &b, err) : bp_err(err, BP_E_NOMEM, "no memory");
    for (size_t i = 0; rc == BP_OK && i < o->n; i++) {
        const toa_event *e = &o->events[i];
        int64_t match = 0;
        int32_t outcome = 0;
        char path[32];
        bp_error eerr = {0};
        snprintf(path, sizeof path, "[%zu]", i);
        rc = event_match(r, b, league, e->id, e->home_team, e->away_team, e->commence_ms, 0, -1, -1,
                         &match, &outcome, &eerr);
        if (rc == BP_E_INVAL) {
            cs_reject(r->report, req, path, eerr.msg);
            rc = BP_OK;
            continue;
        }
        if (rc != BP_OK) {
            *err = eerr;
            break;
        }
        cs_count_outcome(r->report, "matches", outcome);
        for (size_t k = 0; k < e->n_quotes; k++) {
            const toa_quote *t = &o->quotes[e->first_quote + k];
            book_key(t->bookmaker, keys[k], sizeof keys[k]);
            q[k] = (bp_odds_quote){.bookmaker = keys[k],
                                   .market = t->market,
                                   .selection = t->selection,
                                   .line = t->line,
                                   .price = t->price,
                                   .captured_ms = t->last_update_ms > 0 ? t->last_update_ms : now};
        }
        rc = h->store->upsert_odds(h, b, match, q, e->n_quotes, &c, &eerr);
        if (rc == BP_E_INVAL) {
            cs_reject(r->report, req, path, eerr.msg);
            rc = BP_OK;
            continue;
        }
        if (rc != BP_OK) {
            *err = eerr;
            break;
        }
        cs_add_id(r->report, "match_ids", match);
        cs_add_id(r->report, "league_ids", league);
    }
    free(q);
    free(keys);
    if (rc != BP_OK) {
        h->store->batch_rollback(h, b);
        return rc;
    }
    rc = h->store->batch_commit(h, b, err);
    if (rc == BP_OK) {
        cs_count(r->report, "odds", &c);
    }
    return rc;
}

static int store_scores(toa_run *r, const toa_scores *s, int64_t league, const char *req,
                        bp_error *err)
{
    const bp_host *h = r->h;
    bp_store_batch *b = NULL;
    int rc = h->store->batch_begin(h, &b, err);
    for (size_t i = 0; rc == BP_OK && i < s->n; i++) {
        const toa_score *x = &s->items[i];
        int64_t match = 0;
        int32_t outcome = 0, status = 0;
        char path[32];
        bp_error eerr = {0};
        snprintf(path, sizeof path, "[%zu]", i);
        if (x->completed) {
            status = BP_MATCH_FINISHED;
        } else if (x->home_score >= 0 && x->away_score >= 0) {
            status = BP_MATCH_LIVE;
        }
        rc = event_match(r, b, league, x->id, x->home_team, x->away_team, x->commence_ms, status,
                         x->home_score, x->away_score, &match, &outcome, &eerr);
        if (rc == BP_E_INVAL) {
            cs_reject(r->report, req, path, eerr.msg);
            rc = BP_OK;
            continue;
        }
        if (rc != BP_OK) {
            *err = eerr;
            break;
        }
        cs_count_outcome(r->report, "matches", outcome);
        cs_add_id(r->report, "match_ids", match);
        cs_add_id(r->report, "league_ids", league);
    }
    if (rc != BP_OK) {
        h->store->batch_rollback(h, b);
        return rc;
    }
    return h->store->batch_commit(h, b, err);
}

/* ---- collect() --------------------------------------------------------------------------------
 */

static int count_list(const char *csv)
{
    int n = csv && *csv ? 1 : 0;
    for (const char *p = csv; p && *p; p++) {
        n += *p == ',';
    }
    return n;
}

static int collect_league(toa_run *r, int32_t what, const char *code)
{
    const bp_host *h = r->h;
    json_t *l = NULL;
    const char *sport;
    char path[256], req[600];
    toa_param p[6];
    size_t n = 0;
    int64_t cost = 1, league;
    bp_http_response *resp = NULL;
    toa_api_error ae = {0};
    bp_error err = {0};
    char days[24];
    int rc = h->store->find_league(h, NULL, "betpipe", code, &l, &err);
    if (rc != BP_OK) {
        cs_error(r->report, code, rc, err.msg);
        return rc;
    }
    sport = json_string_value(json_object_get(l, "toa_sport_key"));
    league = json_integer_value(json_object_get(l, "id"));
    if (!sport) {
        bp_err(&err, BP_E_NOTFOUND, "league %s has no The Odds API sport key", code);
        cs_error(r->report, code, err.code, err.msg);
        json_decref(l);
        return BP_E_NOTFOUND;
    }
    if (what == BP_COLLECT_ODDS) {
        const char *regions = cs_config_str(h, "regions", NULL, "uk,eu");
        const char *markets = cs_config_str(h, "markets", NULL, "h2h,totals");
        const char *books = cs_config_str(h, "bookmakers", NULL, NULL);
        snprintf(path, sizeof path, "/v4/sports/%s/odds", sport);
        if (books) {
            p[n++] = (toa_param){"bookmakers", books};
            cost = toa_odds_cost(count_list(markets), (count_list(books) + 9) / 10);
        } else {
            p[n++] = (toa_param){"regions", regions};
            cost = toa_odds_cost(count_list(markets), count_list(regions));
        }
        p[n++] = (toa_param){"markets", markets};
        p[n++] = (toa_param){"oddsFormat", "decimal"};
        p[n++] = (toa_param){"dateFormat", "iso"};
    } else {
        int64_t d = cs_config_int(h, "scores_days_from", 0, 0, 3);
        snprintf(path, sizeof path, "/v4/sports/%s/scores", sport);
        if (d > 0) {
            snprintf(days, sizeof days, "%lld", (long long)d);
            p[n++] = (toa_param){"daysFrom", days};
            cost = 2;
        }
        p[n++] = (toa_param){"dateFormat", "iso"};
    }
    int used = snprintf(req, sizeof req, "GET %s", path);
    for (size_t i = 0; i < n && used > 0 && (size_t)used < sizeof req; i++) {
        used += snprintf(req + used, sizeof req - (size_t)used, "%c%s=%s", i ? '&' : '?', p[i].name,
                         p[i].value);
    }
    rc = toa_get(r, path, p, n, cost, &resp, &err);
    if (rc != BP_OK) {
        request_failed(r, req, rc, NULL, &err);
        json_decref(l);
        return rc;
    }
    if (what == BP_COLLECT_ODDS) {
        toa_odds *o = NULL;
        rc = toa_parse_odds(resp->status, resp->body, resp->body_len, &o, &ae, &err);
        if (rc == BP_OK) {
            json_object_set_new(
                r->report, "dropped_prices",
                json_integer(json_integer_value(json_object_get(r->report, "dropped_prices")) +
                             (json_int_t)o->dropped));
            rc = store_odds(r, o, league, req, &err);
            toa_odds_free(o);
        }
    } else {
        toa_scores *s = NULL;
        rc = toa_parse_scores(resp->status, resp->body, resp->body_len, &s, &ae, &err);
        if (rc == BP_OK) {
            rc = store_scores(r, s, league, req, &err);
            toa_scores_free(s);
        }
    }
    h->http->response_free(h, resp);
    json_decref(l);
    if (rc != BP_OK) {
        request_failed(r, req, rc, &ae, &err);
        return rc;
    }
    r->ok_requests++;
    return BP_OK;
}

static int toa_collect(void *plugin_state, const bp_job *job, int32_t what, const json_t *request,
                       json_t **out_report, bp_error *err)
{
    toa_state *st = plugin_state;
    const bp_host *h = st->host;
    toa_run r;
    json_t *leagues = NULL;
    size_t i;
    json_t *v;
    int rc;

    *out_report = NULL;
    if (what != BP_COLLECT_ODDS && what != BP_COLLECT_LIVE) {
        return bp_err(err, BP_E_INVAL, "the_odds_api collects odds and live scores, not 0x%x",
                      (unsigned)what);
    }
    memset(&r, 0, sizeof r);
    r.h = h;
    r.job = job;
    r.key = cs_config_str(h, "api_key", "BETPIPE_ODDS_API_KEY", NULL);
    if (!r.key) {
        return bp_err(err, BP_E_CONFIG,
                      "no The Odds API key: set plugins.config.the_odds_api.api_key or "
                      "BETPIPE_ODDS_API_KEY");
    }
    if (!h->store) {
        return bp_err(err, BP_E_UNAVAILABLE, "the_odds_api: no store in this process");
    }
    r.base = cs_config_str(h, "base_url", NULL, TOA_DEFAULT_URL);
    r.reserve = cs_config_int(h, "credit_reserve", 0, 0, 1000000);
    r.pause_ms = cs_config_int(h, "quota_pause_ms", 86400000, 1000, 31LL * 86400000);
    r.window_ms = cs_config_int(h, "match_window_ms", 3LL * 86400000, 0, 60LL * 86400000);
    r.retry_base_ms = (int32_t)cs_config_int(h, "retry_base_ms", 2000, 1, 600000);
    r.max_attempts = (int32_t)cs_config_int(h, "max_attempts", 3, 1, 10);
    r.timeout_ms = (int32_t)cs_config_int(h, "timeout_ms", 30000, 100, 600000);
    r.state = cs_state_load(h, TOA_NAME);
    rc = cs_pause_check(r.state, h->now_ms(h), "The Odds API", err);
    if (rc != BP_OK) {
        json_decref(r.state);
        return rc;
    }
    quota_from_state(&r);
    r.report = cs_report_new();
    leagues = cs_leagues(h, request, toa_all_leagues);
    if (!r.report || !leagues) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    json_array_foreach(leagues, i, v)
    {
        collect_league(&r, what, json_string_value(v));
        if (r.stop_code != BP_OK) {
            break;
        }
    }
    json_object_set_new(r.report, "leagues", json_incref(leagues));
    if (r.stop_code == BP_E_CONFIG || r.stop_code == BP_E_CANCELLED ||
        (r.ok_requests == 0 && r.stop_code != BP_OK)) {
        rc = bp_err(err, r.stop_code, "%s", r.stop_err.msg);
    } else if (r.ok_requests == 0 && r.first_fail != BP_OK) {
        rc = bp_err(err, r.first_fail, "%s", r.first_err.msg);
    } else {
        rc = BP_OK;
        if (r.stop_code != BP_OK) {
            json_object_set_new(r.report, "incomplete", json_string(r.stop_err.msg));
        }
        *out_report = r.report;
        r.report = NULL;
    }
done:
    json_decref(r.report);
    json_decref(r.state);
    json_decref(leagues);
    return rc;
}

static const bp_collector_type toa_collector = {
    .struct_size = sizeof(bp_collector_type),
    .provides = BP_COLLECT_ODDS | BP_COLLECT_LIVE,
    .name = "the_odds_api",
    .description = "The Odds API v4: decimal 1X2, over/under and handicap odds, live scores "
                   "(credit-aware)",
    .request_schema = "{\"type\": \"object\", \"properties\": {"
                      "\"leagues\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
                      "\"season\": {\"type\": \"integer\"}}}",
    .collect = toa_collect,
};

static int toa_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    toa_state *s = calloc(1, sizeof *s);
    int rc;
    if (!s) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->host = host;
    rc = reg->add_collector(reg, &toa_collector, err);
    if (rc != BP_OK) {
        free(s);
        return rc;
    }
    *out_state = s;
    return BP_OK;
}

static void toa_fini(void *state)
{
    free(state);
}

BP_PLUGIN_DEFINE("the_odds_api", "1.0.0",
                 "The Odds API v4 collector: odds (h2h, totals, spreads) and scores", toa_init,
                 toa_fini)
