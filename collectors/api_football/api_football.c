/*
 * api_football - the API-Football v3 collector: fixtures (by league and season, date range, or
 * live), pre-match odds (paged), standings and team statistics into the store.
 *
 * The quota is the thing to get right. A free plan has 100 requests a day and 10 a minute, and
 * API-Football answers most failures - a wrong key, the day's quota used up, a plan that does not
 * cover the season - with HTTP 200 and an `errors` object, so every body is classified before it
 * is trusted (afparse). After every response the quota headers are read:
 *   - x-ratelimit-requests-remaining at or below `quota_reserve`, or errors.requests: the day is
 *     over. The pause (until 00:00 UTC) is written to <data_dir>/collectors/api_football.json,
 *     so no later run - in this process or another - spends a request before then.
 *   - X-RateLimit-Remaining 0: the minute is used up; the next request waits `minute_pause_ms`
 *     (cancellable), or the run stops if that would pass the job's soft deadline.
 *   - X-RateLimit-Limit sets the HTTP client's per-host rate (limit / 60 per second), which keeps
 *     us under nginx's burst so 429s are rare; a 429 that happens anyway is retried by the client
 *     with backoff (Retry-After honoured).
 * A wrong key (errors.token, or the RapidAPI gateway's 401/403) stops the run with BP_E_CONFIG;
 * a plan or parameter error costs only that request.
 *
 * The key goes in the x-apisports-key header, marked secret: the HTTP client masks it in every
 * log line and error, and this plugin never writes it anywhere.
 *
 * Config (plugins.config.api_football): api_key (or BETPIPE_API_FOOTBALL_KEY), base_url
 * (https://v3.football.api-sports.io), leagues (["E0","SP1","D1","I1","F1"]), quota_reserve (5),
 * minute_pause_ms (60000), max_pages (20), retry_base_ms (2000), max_attempts (3), timeout_ms
 * (30000).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afparse.h"
#include "betpipe/betpipe.h"
#include "csupport.h"

#define AF_NAME        "api_football"
#define AF_DEFAULT_URL "https://v3.football.api-sports.io"
#define AF_IDS_PER_GET 20 /* /fixtures?ids= takes at most 20 */

static const char *const af_all_leagues[] = {"E0", "SP1", "D1", "I1", "F1", NULL};

typedef struct af_state {
    const bp_host *host;
} af_state;

/* One collect() call. */
typedef struct af_run {
    const bp_host *h;
    const bp_job *job;
    const char *key;
    const char *base;
    json_t *report;
    json_t *state; /* persisted: pause, last quota */
    af_quota quota;
    bool have_quota;
    int64_t reserve;
    int64_t minute_pause_ms;
    int64_t max_pages;
    int32_t retry_base_ms;
    int32_t max_attempts;
    int32_t timeout_ms;
    /* the run stops (no more requests) on a quota pause, a wrong key or a cancellation */
    int stop_code;
    bp_error stop_err;
    int ok_requests;
    int first_fail;
    bp_error first_err;
    json_t *league_ids; /* cache: API-Football league id (text) -> our league id */
} af_run;

/* ---- requests ------------------------------------------------------------------------------- */

typedef struct af_param {
    const char *name;
    char value[256];
} af_param;

static void describe(char *buf, size_t len, const char *endpoint, const af_param *p, size_t n)
{
    int used = snprintf(buf, len, "GET %s", endpoint);
    for (size_t i = 0; i < n && used > 0 && (size_t)used < len; i++) {
        used += snprintf(buf + used, len - (size_t)used, "%c%s=%s", i ? '&' : '?', p[i].name,
                         p[i].value);
    }
}

static void run_fail(af_run *r, int code, const bp_error *err)
{
    if (r->first_fail == BP_OK) {
        r->first_fail = code;
        r->first_err = *err;
    }
}

static void stop_run(af_run *r, int code, const char *msg)
{
    if (r->stop_code == BP_OK) {
        r->stop_code = code;
        bp_err(&r->stop_err, code, "%s", msg);
    }
}

/* The day is over: pause until the quota resets (00:00 UTC), persisted. */
static void pause_for_day(af_run *r, const char *why)
{
    bp_error err = {0};
    int64_t now = r->h->now_ms(r->h);
    int64_t until = (now / 86400000 + 1) * 86400000;
    char msg[BP_ERROR_MSG_MAX], iso[40];
    cs_pause_set(r->h, AF_NAME, r->state, until, why, &err);
    cs_iso(until, iso, sizeof iso);
    snprintf(msg, sizeof msg, "API-Football paused until %s: %s", iso, why);
    json_object_set_new(r->report, "paused", json_pack("{s:s, s:s}", "until", iso, "reason", why));
    stop_run(r, BP_E_LIMIT, msg);
}

static void note_quota(af_run *r, const bp_http_response *resp)
{
    af_quota q;
    bp_error err = {0};
    if (af_quota_parse(resp->headers, resp->n_headers, &q, &err) != BP_OK) {
        BP_LOGW(r->h, "ignoring a quota header: %s", err.msg);
        return;
    }
    if (q.day_remaining < 0 && q.minute_remaining < 0) {
        return;
    }
    r->quota = q;
    r->have_quota = true;
    json_t *jq =
        json_pack("{s:I, s:I, s:I, s:I}", "day_limit", (json_int_t)q.day_limit, "day_remaining",
                  (json_int_t)q.day_remaining, "minute_limit", (json_int_t)q.minute_limit,
                  "minute_remaining", (json_int_t)q.minute_remaining);
    json_object_set(r->report, "quota", jq);
    json_object_set_new(r->state, "quota", jq);
    json_object_set_new(r->state, "quota_seen_ms", json_integer(r->h->now_ms(r->h)));
    if (q.day_remaining >= 0 && q.day_remaining <= r->reserve) {
        char why[160];
        snprintf(why, sizeof why,
                 "%lld of %lld daily requests left (quota_reserve %lld): the day's quota is used "
                 "up",
                 (long long)q.day_remaining, (long long)q.day_limit, (long long)r->reserve);
        pause_for_day(r, why);
    } else {
        cs_state_save(r->h, AF_NAME, r->state, &err);
    }
}

/*
 * GET base/endpoint?params with the key. On BP_OK *out is the response (any HTTP status) and
 * the quota was noted. Refuses (BP_E_LIMIT, no request) once the run has stopped.
 */
static int af_get(af_run *r, const char *endpoint, const af_param *p, size_t n,
                  bp_http_response **out, bp_error *err)
{
    const bp_host *h = r->h;
    char url[1024];
    bp_http_param params[8];
    bp_http_header hdr = {.name = "x-apisports-key", .value = r->key, .secret = 1};
    int rc;
    *out = NULL;
    if (r->stop_code != BP_OK) {
        return bp_err(err, r->stop_code, "%s", r->stop_err.msg);
    }
    if (h->cancelled(r->job)) {
        stop_run(r, BP_E_CANCELLED, "cancelled");
        return bp_err(err, BP_E_CANCELLED, "cancelled");
    }
    if (r->have_quota && r->quota.minute_remaining == 0) {
        int64_t now = h->now_ms(h);
        json_object_set_new(
            r->report, "minute_waits",
            json_integer(json_integer_value(json_object_get(r->report, "minute_waits")) + 1));
        if (r->job->soft_deadline_ms > 0 && now + r->minute_pause_ms >= r->job->soft_deadline_ms) {
            stop_run(r, BP_E_RETRY,
                     "the per-minute quota is used up and waiting for it would pass the job's "
                     "time limit");
            return bp_err(err, BP_E_RETRY, "%s", r->stop_err.msg);
        }
        BP_LOGI(h, "per-minute quota used up: waiting %lld ms", (long long)r->minute_pause_ms);
        if (cs_wait(h, r->job, r->minute_pause_ms) != BP_OK) {
            stop_run(r, BP_E_CANCELLED, "cancelled");
            return bp_err(err, BP_E_CANCELLED, "cancelled");
        }
        r->quota.minute_remaining = -1;
    }
    if (snprintf(url, sizeof url, "%s%s", r->base, endpoint) >= (int)sizeof url || n > 8) {
        return bp_err(err, BP_E_INVAL, "request URL too long");
    }
    for (size_t i = 0; i < n; i++) {
        params[i] = (bp_http_param){.name = p[i].name, .value = p[i].value};
    }
    bp_http_request req = {
        .struct_size = sizeof req,
        .url = url,
        .params = params,
        .n_params = n,
        .headers = &hdr,
        .n_headers = 1,
        .timeout_ms = r->timeout_ms,
        .retry = {.max_attempts = r->max_attempts, .base_delay_ms = r->retry_base_ms},
        .job = r->job,
    };
    if (r->have_quota && r->quota.minute_limit > 0) {
        /* nginx turns the per-minute limit into a per-second rate with a small burst */
        req.rate_per_s = (double)r->quota.minute_limit / 60.0;
        req.rate_burst = r->quota.minute_limit >= 60 ? (int32_t)(r->quota.minute_limit / 30) : 1;
    }
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

/*
 * What to do with a failed request or parse (rc != BP_OK, api_err filled by afparse, NULL when
 * the HTTP client failed). Quota and key problems stop the run; a malformed payload is a rejected
 * entry; the rest is an error of that request.
 */
static void request_failed(af_run *r, const char *req, int rc, const af_api_error *ae,
                           const bp_error *err)
{
    if (ae && (ae->kind == AF_ERR_DAILY_QUOTA || ae->kind == AF_ERR_GATEWAY_QUOTA)) {
        /* the API's own words beat what the headers made us conclude */
        r->stop_code = BP_OK;
        pause_for_day(r, ae->message);
    } else if (ae && (ae->kind == AF_ERR_TOKEN || ae->kind == AF_ERR_GATEWAY_KEY)) {
        stop_run(r, BP_E_CONFIG, err->msg);
    }
    if (rc == BP_E_INVAL && ae && ae->kind == AF_OK) {
        /* the body is not what API-Football sends: the path is in the message */
        cs_reject(r->report, req, NULL, err->msg);
    } else {
        cs_error(r->report, req, rc, err->msg);
    }
    bp_error named = cs_request_error(req, err, ae == NULL);
    run_fail(r, rc, &named);
    BP_LOGW(r->h, "%s failed: %s", req, err->msg);
}

/* ---- leagues ----------------------------------------------------------------------------------
 */

/* Our league id for an API-Football league id; 0 when it is not one of ours. */
static int64_t league_of_af(af_run *r, int64_t af_id)
{
    char key[32];
    json_t *l = NULL;
    int64_t id = 0;
    snprintf(key, sizeof key, "%lld", (long long)af_id);
    if (json_object_get(r->league_ids, key)) {
        return json_integer_value(json_object_get(r->league_ids, key));
    }
    if (r->h->store->find_league(r->h, NULL, BP_SOURCE_API_FOOTBALL, key, &l, NULL) == BP_OK) {
        id = json_integer_value(json_object_get(l, "id"));
        json_decref(l);
    }
    json_object_set_new(r->league_ids, key, json_integer(id));
    return id;
}

/* The API-Football id of one of our league codes. */
static int af_id_of_code(af_run *r, const char *code, int64_t *out, int64_t *out_league,
                         bp_error *err)
{
    json_t *l = NULL;
    int rc = r->h->store->find_league(r->h, NULL, "betpipe", code, &l, err);
    if (rc != BP_OK) {
        return rc;
    }
    *out = json_integer_value(json_object_get(l, "af_league_id"));
    *out_league = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    if (*out <= 0) {
        return bp_err(err, BP_E_NOTFOUND, "league %s has no API-Football id", code);
    }
    return BP_OK;
}

/* ---- fixtures into the store ------------------------------------------------------------------
 */

static int resolve_team(af_run *r, bp_store_batch *b, int64_t league, const char *name,
                        int64_t *out, bp_error *err)
{
    int32_t created = 0;
    int rc = r->h->store->resolve_team(r->h, b, league, BP_SOURCE_API_FOOTBALL, name, out, &created,
                                       err);
    if (rc == BP_OK && created) {
        char text[300];
        snprintf(text, sizeof text, "%s (league %lld)", name, (long long)league);
        cs_note(r->report, "teams_created", text);
        BP_LOGI(r->h, "new team from API-Football: %s (add an alias if it is a known club)", name);
    }
    return rc;
}

/* Store every fixture of `f` whose league is ours, in one batch. */
static int store_fixtures(af_run *r, const af_fixtures *f, const char *req, bp_error *err)
{
    const bp_host *h = r->h;
    bp_store_batch *b = NULL;
    int rc = h->store->batch_begin(h, &b, err);
    if (rc != BP_OK) {
        return rc;
    }
    for (size_t i = 0; i < f->n && rc == BP_OK; i++) {
        const af_fixture *x = &f->items[i];
        int64_t league = league_of_af(r, x->league_id), home = 0, away = 0, id = 0;
        int32_t outcome = 0;
        char ext[32], path[48];
        bp_error ferr = {0};
        if (league == 0) {
            continue; /* a competition we do not follow */
        }
        snprintf(path, sizeof path, "response[%zu]", i);
        if ((rc = resolve_team(r, b, league, x->home_name, &home, &ferr)) != BP_OK ||
            (rc = resolve_team(r, b, league, x->away_name, &away, &ferr)) != BP_OK) {
            break;
        }
        snprintf(ext, sizeof ext, "%lld", (long long)x->id);
        bool finished = x->state == AF_STATE_FINISHED;
        /* "TBD": the kick-off time is not fixed yet and fixture.date carries a placeholder time
         * (the day may still be right); an exact time from anyone else must win over it */
        bool time_known = !x->status_short || strcmp(x->status_short, "TBD") != 0;
        bp_match_rec m = {
            .struct_size = sizeof m,
            .season = x->season,
            .league_id = league,
            .home_team_id = home,
            .away_team_id = away,
            .kickoff_ms = x->kickoff_ms,
            .kickoff_exact = time_known ? 1 : 0,
            .status = x->state, /* AF_STATE_* and BP_MATCH_* are the same numbers */
            /* 90-minute markets settle on the full-time score, not the extra-time one */
            .home_goals = finished && x->ft_home >= 0 ? x->ft_home : x->goals_home,
            .away_goals = finished && x->ft_away >= 0 ? x->ft_away : x->goals_away,
            .ht_home_goals = x->ht_home,
            .ht_away_goals = x->ht_away,
            .elapsed = x->elapsed,
            .referee = x->referee,
            .source = BP_SOURCE_API_FOOTBALL,
            .external_id = ext,
        };
        rc = h->store->upsert_match(h, b, &m, &id, &outcome, &ferr);
        if (rc == BP_E_INVAL) {
            cs_reject(r->report, req, path, ferr.msg);
            rc = BP_OK;
            continue;
        }
        if (rc != BP_OK) {
            *err = ferr;
            break;
        }
        cs_count_outcome(r->report, "matches", outcome);
        cs_count_key(r->report, "by_status", af_state_name(x->state));
        cs_add_id(r->report, "match_ids", id);
        cs_add_id(r->report, "league_ids", league);
    }
    if (rc == BP_OK) {
        return h->store->batch_commit(h, b, err);
    }
    h->store->batch_rollback(h, b);
    return rc;
}

/* GET /fixtures with params and store them. */
static int fixtures_get(af_run *r, const af_param *p, size_t n)
{
    char req[512];
    bp_http_response *resp = NULL;
    af_fixtures *f = NULL;
    af_api_error ae = {0};
    bp_error err = {0};
    int rc;
    describe(req, sizeof req, "/fixtures", p, n);
    rc = af_get(r, "/fixtures", p, n, &resp, &err);
    if (rc != BP_OK) {
        request_failed(r, req, rc, NULL, &err);
        return rc;
    }
    rc = af_parse_fixtures(resp->status, resp->body, resp->body_len, &f, &ae, &err);
    r->h->http->response_free(r->h, resp);
    if (rc != BP_OK) {
        request_failed(r, req, rc, &ae, &err);
        return rc;
    }
    rc = store_fixtures(r, f, req, &err);
    af_fixtures_free(f);
    if (rc != BP_OK) {
        ae.kind = AF_ERR_HTTP; /* a store failure, not a malformed payload */
        request_failed(r, req, rc, &ae, &err);
        return rc;
    }
    r->ok_requests++;
    return BP_OK;
}

/* ---- the kinds of collection ----------------------------------------------------------------- */

/* The season (starting year) a YYYY-MM-DD date falls in - a season starts in July - or 0 when
 * `date` is not such a date. */
static int32_t season_of_date(const char *date)
{
    int y = 0, m = 0, d = 0, n = 0;
    if (!date || sscanf(date, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || date[n] ||
        m < 1 || m > 12 || d < 1 || d > 31) {
        return 0;
    }
    return m >= 7 ? y : y - 1;
}

/*
 * The seasons a fixtures request asks for: the season given; or, for a date range without one,
 * every season the range touches (API-Football wants a season with from/to, and a range across
 * 1 July holds fixtures of two). A range that spans more seasons than that is refused before
 * any request: whole seasons are one request each with `season`, not a quota-eating range.
 */
#define AF_RANGE_MAX_SEASONS 2

static int fixture_seasons(const json_t *rq, int32_t season, int32_t *out_first, int32_t *out_last,
                           bp_error *err)
{
    const char *from = json_string_value(json_object_get(rq, "from"));
    const char *to = json_string_value(json_object_get(rq, "to"));
    int32_t a, b;
    *out_first = *out_last = season;
    if (!from && !to) {
        return BP_OK;
    }
    if (!from || !to) {
        return bp_err(err, BP_E_INVAL,
                      "api_football fixtures: from and to go together (a date range, "
                      "YYYY-MM-DD), got only %s",
                      from ? "from" : "to");
    }
    a = season_of_date(from);
    b = season_of_date(to);
    if (a == 0 || b == 0) {
        return bp_err(err, BP_E_INVAL, "api_football fixtures: %s '%s' is not a date (YYYY-MM-DD)",
                      a == 0 ? "from" : "to", a == 0 ? from : to);
    }
    if (strcmp(to, from) < 0) {
        return bp_err(err, BP_E_INVAL, "api_football fixtures: to (%s) is before from (%s)", to,
                      from);
    }
    if (json_is_integer(json_object_get(rq, "season"))) {
        return BP_OK;
    }
    if (b - a + 1 > AF_RANGE_MAX_SEASONS) {
        return bp_err(err, BP_E_INVAL,
                      "api_football fixtures: %s to %s spans %d seasons (at most %d): ask for "
                      "whole seasons with season instead",
                      from, to, (int)(b - a + 1), AF_RANGE_MAX_SEASONS);
    }
    *out_first = a;
    *out_last = b;
    return BP_OK;
}

static int collect_fixtures(af_run *r, const json_t *leagues, int32_t first, int32_t last,
                            const json_t *rq)
{
    size_t i;
    json_t *v;
    const char *from = json_string_value(json_object_get(rq, "from"));
    const char *to = json_string_value(json_object_get(rq, "to"));
    json_array_foreach(leagues, i, v)
    {
        int64_t af_id = 0, league = 0;
        bp_error err = {0};
        if (af_id_of_code(r, json_string_value(v), &af_id, &league, &err) != BP_OK) {
            cs_error(r->report, json_string_value(v), err.code, err.msg);
            continue;
        }
        for (int32_t season = first; season <= last && r->stop_code == BP_OK; season++) {
            af_param p[4];
            size_t n = 0;
            p[n].name = "league";
            snprintf(p[n++].value, sizeof p[0].value, "%lld", (long long)af_id);
            p[n].name = "season";
            snprintf(p[n++].value, sizeof p[0].value, "%d", (int)season);
            if (from && to) {
                p[n].name = "from";
                snprintf(p[n++].value, sizeof p[0].value, "%s", from);
                p[n].name = "to";
                snprintf(p[n++].value, sizeof p[0].value, "%s", to);
            }
            fixtures_get(r, p, n);
        }
        if (r->stop_code != BP_OK) {
            break;
        }
    }
    return BP_OK;
}

static int collect_live(af_run *r, const json_t *leagues)
{
    af_param p = {.name = "live"};
    size_t i, used = 0;
    json_t *v;
    json_array_foreach(leagues, i, v)
    {
        int64_t af_id = 0, league = 0;
        if (af_id_of_code(r, json_string_value(v), &af_id, &league, NULL) == BP_OK) {
            used += (size_t)snprintf(p.value + used, sizeof p.value - used, "%s%lld",
                                     used ? "-" : "", (long long)af_id);
        }
    }
    if (used == 0) {
        bp_error err;
        bp_err(&err, BP_E_INVAL, "none of the leagues has an API-Football id");
        run_fail(r, BP_E_INVAL, &err);
        return BP_E_INVAL;
    }
    return fixtures_get(r, &p, 1);
}

/* Make sure every fixture of an odds page is a match in the store: fetch the unknown ones with
 * /fixtures?ids= (the odds payload carries no teams). */
static void fetch_missing_fixtures(af_run *r, const af_odds *o)
{
    af_param p = {.name = "ids"};
    size_t used = 0, in_batch = 0;
    for (size_t i = 0; i <= o->n; i++) {
        if (i < o->n) {
            char ext[32];
            int64_t id = 0;
            snprintf(ext, sizeof ext, "%lld", (long long)o->items[i].fixture_id);
            if (r->h->store->find_match(r->h, NULL, BP_SOURCE_API_FOOTBALL, ext, &id, NULL) ==
                    BP_OK ||
                league_of_af(r, o->items[i].league_id) == 0) {
                continue;
            }
            used += (size_t)snprintf(p.value + used, sizeof p.value - used, "%s%s", used ? "-" : "",
                                     ext);
            in_batch++;
        }
        if (in_batch > 0 && (in_batch == AF_IDS_PER_GET || i == o->n)) {
            fixtures_get(r, &p, 1);
            used = in_batch = 0;
            p.value[0] = '\0';
        }
    }
}

static int store_odds_page(af_run *r, const af_odds *o, const char *req, bp_error *err)
{
    const bp_host *h = r->h;
    bp_store_batch *b = NULL;
    bp_odds_quote *q = NULL;
    bp_store_counts c = {0};
    int64_t now = h->now_ms(h);
    int rc = h->store->batch_begin(h, &b, err);
    if (rc != BP_OK) {
        return rc;
    }
    q = calloc(o->n_quotes ? o->n_quotes : 1, sizeof *q);
    if (!q) {
        h->store->batch_rollback(h, b);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < o->n && rc == BP_OK; i++) {
        const af_odds_fixture *f = &o->items[i];
        char ext[32], path[48], why[200];
        int64_t match = 0;
        snprintf(ext, sizeof ext, "%lld", (long long)f->fixture_id);
        snprintf(path, sizeof path, "response[%zu]", i);
        if (league_of_af(r, f->league_id) == 0) {
            continue;
        }
        if (h->store->find_match(h, b, BP_SOURCE_API_FOOTBALL, ext, &match, NULL) != BP_OK) {
            snprintf(why, sizeof why,
                     "fixture %s is not in the store and /fixtures?ids=%s did not return it", ext,
                     ext);
            cs_reject(r->report, req, path, why);
            continue;
        }
        for (size_t k = 0; k < f->n_quotes; k++) {
            const af_quote *a = &o->quotes[f->first_quote + k];
            q[k] = (bp_odds_quote){.bookmaker = a->bookmaker,
                                   .market = a->market,
                                   .selection = a->selection,
                                   .line = a->line,
                                   .price = a->price,
                                   .captured_ms = f->update_ms > 0 ? f->update_ms : now};
        }
        rc = h->store->upsert_odds(h, b, match, q, f->n_quotes, &c, err);
        if (rc == BP_E_INVAL) {
            cs_reject(r->report, req, path, err->msg);
            rc = BP_OK;
            continue;
        }
        cs_add_id(r->report, "match_ids", match);
    }
    free(q);
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

static int collect_odds(af_run *r, const json_t *leagues, int32_t season)
{
    size_t i;
    json_t *v;
    json_array_foreach(leagues, i, v)
    {
        int64_t af_id = 0, league = 0;
        bp_error err = {0};
        int32_t total = 1;
        if (af_id_of_code(r, json_string_value(v), &af_id, &league, &err) != BP_OK) {
            cs_error(r->report, json_string_value(v), err.code, err.msg);
            continue;
        }
        for (int32_t page = 1; page <= total && page <= r->max_pages; page++) {
            af_param p[3] = {{.name = "league"}, {.name = "season"}, {.name = "page"}};
            char req[512];
            bp_http_response *resp = NULL;
            af_odds *o = NULL;
            af_api_error ae = {0};
            int rc;
            snprintf(p[0].value, sizeof p[0].value, "%lld", (long long)af_id);
            snprintf(p[1].value, sizeof p[1].value, "%d", (int)season);
            snprintf(p[2].value, sizeof p[2].value, "%d", (int)page);
            describe(req, sizeof req, "/odds", p, 3);
            rc = af_get(r, "/odds", p, 3, &resp, &err);
            if (rc != BP_OK) {
                request_failed(r, req, rc, NULL, &err);
                break;
            }
            rc = af_parse_odds(resp->status, resp->body, resp->body_len, &o, &ae, &err);
            r->h->http->response_free(r->h, resp);
            if (rc != BP_OK) {
                request_failed(r, req, rc, &ae, &err);
                break;
            }
            /* we count pages ourselves: a page that echoes another number changes nothing */
            total = o->page.total;
            json_object_set_new(
                r->report, "skipped_bets",
                json_integer(json_integer_value(json_object_get(r->report, "skipped_bets")) +
                             (json_int_t)o->skipped_bets));
            json_object_set_new(
                r->report, "dropped_prices",
                json_integer(json_integer_value(json_object_get(r->report, "dropped_prices")) +
                             (json_int_t)o->dropped));
            fetch_missing_fixtures(r, o);
            rc = store_odds_page(r, o, req, &err);
            af_odds_free(o);
            if (rc != BP_OK) {
                ae.kind = AF_ERR_HTTP; /* a store failure, not a malformed payload */
                request_failed(r, req, rc, &ae, &err);
                break;
            }
            r->ok_requests++;
        }
        if (r->stop_code != BP_OK) {
            break;
        }
    }
    return BP_OK;
}

static void range3(json_t *o, const char *key, const int32_t v[3])
{
    json_object_set_new(o, key,
                        json_pack("{s:i, s:i, s:i}", "home", (int)v[AF_HOME], "away",
                                  (int)v[AF_AWAY], "total", (int)v[AF_TOTAL]));
}

static int store_standings(af_run *r, const af_standings *s, int64_t league, int32_t season,
                           const char *req, json_t *team_af_ids, bp_error *err)
{
    const bp_host *h = r->h;
    bp_store_batch *b = NULL;
    int rc = h->store->batch_begin(h, &b, err);
    if (rc != BP_OK) {
        return rc;
    }
    for (size_t i = 0; i < s->n && rc == BP_OK; i++) {
        const af_standing *x = &s->rows[i];
        int64_t team = 0;
        int32_t outcome = 0;
        char path[64];
        bp_error terr = {0};
        json_t *detail;
        snprintf(path, sizeof path, "response[0].league.standings[%d][%zu]", (int)x->group_index,
                 i);
        rc = resolve_team(r, b, league, x->team_name, &team, err);
        if (rc != BP_OK) {
            break;
        }
        detail = json_pack("{s:I, s:i, s:s?, s:s?}", "api_football_team_id", (json_int_t)x->team_id,
                           "goals_diff", (int)x->goals_diff, "group", x->group, "description",
                           x->description);
        if (detail) {
            json_t *split = json_object();
            range3(split, "played", x->played);
            range3(split, "win", x->win);
            range3(split, "draw", x->draw);
            range3(split, "lose", x->lose);
            range3(split, "goals_for", x->goals_for);
            range3(split, "goals_against", x->goals_against);
            json_object_set_new(detail, "standings", split);
        }
        bp_team_stats_rec ts = {.struct_size = sizeof ts,
                                .season = season,
                                .team_id = team,
                                .source = BP_SOURCE_API_FOOTBALL,
                                .form = x->form,
                                .rank = x->rank,
                                .points = x->points,
                                .played = x->played[AF_TOTAL],
                                .wins = x->win[AF_TOTAL],
                                .draws = x->draw[AF_TOTAL],
                                .losses = x->lose[AF_TOTAL],
                                .goals_for = x->goals_for[AF_TOTAL],
                                .goals_against = x->goals_against[AF_TOTAL],
                                .detail = detail};
        rc = h->store->upsert_team_stats(h, b, &ts, &outcome, &terr);
        json_decref(detail);
        if (rc == BP_E_INVAL) {
            cs_reject(r->report, req, path, terr.msg);
            rc = BP_OK;
            continue;
        }
        if (rc != BP_OK) {
            *err = terr;
            break;
        }
        cs_count_outcome(r->report, "team_stats", outcome);
        cs_add_id(r->report, "team_ids", team);
        json_array_append_new(team_af_ids, json_integer(x->team_id));
    }
    if (rc == BP_OK) {
        return h->store->batch_commit(h, b, err);
    }
    h->store->batch_rollback(h, b);
    return rc;
}

static int store_team_stats(af_run *r, const af_team_stats *s, int64_t league, int32_t season,
                            bp_error *err)
{
    const bp_host *h = r->h;
    int64_t team = 0;
    int32_t outcome = 0;
    int rc = resolve_team(r, NULL, league, s->team_name, &team, err);
    json_t *stats = json_object(), *detail;
    if (rc != BP_OK) {
        json_decref(stats);
        return rc;
    }
    range3(stats, "played", s->played);
    range3(stats, "wins", s->wins);
    range3(stats, "draws", s->draws);
    range3(stats, "loses", s->loses);
    range3(stats, "goals_for", s->goals_for);
    range3(stats, "goals_against", s->goals_against);
    range3(stats, "clean_sheet", s->clean_sheet);
    range3(stats, "failed_to_score", s->failed_to_score);
    json_object_set_new(stats, "goals_for_avg",
                        json_pack("{s:f, s:f, s:f}", "home", s->goals_for_avg[AF_HOME], "away",
                                  s->goals_for_avg[AF_AWAY], "total", s->goals_for_avg[AF_TOTAL]));
    json_object_set_new(stats, "goals_against_avg",
                        json_pack("{s:f, s:f, s:f}", "home", s->goals_against_avg[AF_HOME], "away",
                                  s->goals_against_avg[AF_AWAY], "total",
                                  s->goals_against_avg[AF_TOTAL]));
    detail = json_pack("{s:o, s:I}", "statistics", stats, "api_football_team_id",
                       (json_int_t)s->team_id);
    bp_team_stats_rec ts = {.struct_size = sizeof ts,
                            .season = season,
                            .team_id = team,
                            .source = BP_SOURCE_API_FOOTBALL,
                            .form = s->form,
                            .rank = -1,
                            .points = -1,
                            .played = s->played[AF_TOTAL],
                            .wins = s->wins[AF_TOTAL],
                            .draws = s->draws[AF_TOTAL],
                            .losses = s->loses[AF_TOTAL],
                            .goals_for = s->goals_for[AF_TOTAL],
                            .goals_against = s->goals_against[AF_TOTAL],
                            .detail = detail};
    rc = h->store->upsert_team_stats(h, NULL, &ts, &outcome, err);
    json_decref(detail);
    if (rc == BP_OK) {
        cs_count_outcome(r->report, "team_stats", outcome);
        cs_add_id(r->report, "team_ids", team);
    }
    return rc;
}

static int collect_stats(af_run *r, const json_t *leagues, int32_t season, const json_t *rq)
{
    size_t i;
    json_t *v;
    json_array_foreach(leagues, i, v)
    {
        int64_t af_id = 0, league = 0;
        bp_error err = {0};
        af_param p[3] = {{.name = "league"}, {.name = "season"}, {.name = "team"}};
        char req[512];
        bp_http_response *resp = NULL;
        af_standings *s = NULL;
        af_api_error ae = {0};
        json_t *teams = json_array();
        int rc;
        if (af_id_of_code(r, json_string_value(v), &af_id, &league, &err) != BP_OK) {
            cs_error(r->report, json_string_value(v), err.code, err.msg);
            json_decref(teams);
            continue;
        }
        snprintf(p[0].value, sizeof p[0].value, "%lld", (long long)af_id);
        snprintf(p[1].value, sizeof p[1].value, "%d", (int)season);
        describe(req, sizeof req, "/standings", p, 2);
        rc = af_get(r, "/standings", p, 2, &resp, &err);
        if (rc == BP_OK) {
            rc = af_parse_standings(resp->status, resp->body, resp->body_len, &s, &ae, &err);
            r->h->http->response_free(r->h, resp);
            if (rc == BP_OK) {
                rc = store_standings(r, s, league, season, req, teams, &err);
                af_standings_free(s);
                if (rc == BP_OK) {
                    r->ok_requests++;
                }
            }
            if (rc != BP_OK) {
                request_failed(r, req, rc, &ae, &err);
            }
        } else {
            request_failed(r, req, rc, NULL, &err);
        }
        cs_add_id(r->report, "league_ids", league);
        /* detailed statistics: the teams asked for, else every team of the standings */
        const json_t *wanted = json_object_get(rq, "teams");
        size_t k;
        json_t *t;
        json_array_foreach(json_array_size(wanted) ? wanted : teams, k, t)
        {
            af_team_stats *ts = NULL;
            if (r->stop_code != BP_OK) {
                break;
            }
            snprintf(p[2].value, sizeof p[2].value, "%lld", (long long)json_integer_value(t));
            describe(req, sizeof req, "/teams/statistics", p, 3);
            rc = af_get(r, "/teams/statistics", p, 3, &resp, &err);
            if (rc != BP_OK) {
                request_failed(r, req, rc, NULL, &err);
                continue;
            }
            memset(&ae, 0, sizeof ae);
            rc = af_parse_team_stats(resp->status, resp->body, resp->body_len, &ts, &ae, &err);
            r->h->http->response_free(r->h, resp);
            if (rc == BP_OK) {
                rc = store_team_stats(r, ts, league, season, &err);
                af_team_stats_free(ts);
                if (rc == BP_OK) {
                    r->ok_requests++;
                    continue;
                }
                ae.kind = AF_ERR_HTTP; /* a store failure, not a malformed payload */
            }
            request_failed(r, req, rc, &ae, &err);
        }
        json_decref(teams);
        if (r->stop_code != BP_OK) {
            break;
        }
    }
    return BP_OK;
}

/* ---- collect() --------------------------------------------------------------------------------
 */

static int af_collect(void *plugin_state, const bp_job *job, int32_t what, const json_t *request,
                      json_t **out_report, bp_error *err)
{
    af_state *st = plugin_state;
    const bp_host *h = st->host;
    af_run r;
    json_t *leagues;
    int32_t season;
    int rc;

    *out_report = NULL;
    memset(&r, 0, sizeof r);
    r.h = h;
    r.job = job;
    r.key = cs_config_str(h, "api_key", "BETPIPE_API_FOOTBALL_KEY", NULL);
    if (!r.key) {
        return bp_err(err, BP_E_CONFIG,
                      "no API-Football key: set plugins.config.api_football.api_key or "
                      "BETPIPE_API_FOOTBALL_KEY");
    }
    if (!h->store) {
        return bp_err(err, BP_E_UNAVAILABLE, "api_football: no store in this process");
    }
    r.base = cs_config_str(h, "base_url", NULL, AF_DEFAULT_URL);
    r.reserve = cs_config_int(h, "quota_reserve", 5, 0, 1000000);
    r.minute_pause_ms = cs_config_int(h, "minute_pause_ms", 60000, 0, 600000);
    r.max_pages = cs_config_int(h, "max_pages", 20, 1, 1000);
    r.retry_base_ms = (int32_t)cs_config_int(h, "retry_base_ms", 2000, 1, 600000);
    r.max_attempts = (int32_t)cs_config_int(h, "max_attempts", 3, 1, 10);
    r.timeout_ms = (int32_t)cs_config_int(h, "timeout_ms", 30000, 100, 600000);
    r.state = cs_state_load(h, AF_NAME);
    rc = cs_pause_check(r.state, h->now_ms(h), "API-Football", err);
    if (rc != BP_OK) {
        json_decref(r.state);
        return rc;
    }
    r.report = cs_report_new();
    r.league_ids = json_object();
    leagues = cs_leagues(h, request, af_all_leagues);
    season = json_is_integer(json_object_get(request, "season"))
                 ? (int32_t)json_integer_value(json_object_get(request, "season"))
                 : cs_season_of(h->now_ms(h));
    if (!r.report || !r.league_ids || !leagues) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    switch (what) {
    case BP_COLLECT_FIXTURES:
    case BP_COLLECT_RESULTS: {
        int32_t first = season, last = season;
        if ((rc = fixture_seasons(request, season, &first, &last, err)) != BP_OK) {
            goto done;
        }
        json_t *seasons = json_array();
        for (int32_t y = first; seasons && y <= last; y++) {
            json_array_append_new(seasons, json_integer(y));
        }
        json_object_set_new(r.report, "seasons", seasons);
        season = first;
        rc = collect_fixtures(&r, leagues, first, last, request);
        break;
    }
    case BP_COLLECT_LIVE: rc = collect_live(&r, leagues); break;
    case BP_COLLECT_ODDS: rc = collect_odds(&r, leagues, season); break;
    case BP_COLLECT_STATS: rc = collect_stats(&r, leagues, season, request); break;
    default:
        rc = bp_err(err, BP_E_INVAL, "api_football does not collect kind 0x%x", (unsigned)what);
        goto done;
    }
    json_object_set_new(r.report, "season", json_integer(season));
    json_object_set_new(r.report, "leagues", json_incref(leagues));
    if (r.stop_code == BP_E_CONFIG || r.stop_code == BP_E_CANCELLED) {
        rc = bp_err(err, r.stop_code, "%s", r.stop_err.msg);
    } else if (r.ok_requests == 0 && r.stop_code != BP_OK) {
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
    json_decref(r.league_ids);
    json_decref(leagues);
    return rc;
}

static const bp_collector_type af_collector = {
    .struct_size = sizeof(bp_collector_type),
    .provides = BP_COLLECT_FIXTURES | BP_COLLECT_RESULTS | BP_COLLECT_ODDS | BP_COLLECT_STATS |
                BP_COLLECT_LIVE,
    .name = "api_football",
    .description = "API-Football v3: fixtures, live scores, pre-match odds, standings and team "
                   "statistics (quota-aware)",
    .request_schema = "{\"type\": \"object\", \"properties\": {"
                      "\"leagues\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
                      "\"season\": {\"type\": \"integer\", \"minimum\": 1990, \"maximum\": 2100},"
                      "\"from\": {\"type\": \"string\", \"format\": \"date\"},"
                      "\"to\": {\"type\": \"string\", \"format\": \"date\"},"
                      "\"teams\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}}}",
    .collect = af_collect,
};

static int af_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    af_state *s = calloc(1, sizeof *s);
    int rc;
    if (!s) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->host = host;
    rc = reg->add_collector(reg, &af_collector, err);
    if (rc != BP_OK) {
        free(s);
        return rc;
    }
    *out_state = s;
    return BP_OK;
}

static void af_fini(void *state)
{
    free(state);
}

BP_PLUGIN_DEFINE("api_football", "1.0.0",
                 "API-Football v3 collector: fixtures, live, odds, standings, team statistics",
                 af_init, af_fini)
