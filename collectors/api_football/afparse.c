/*
 * afparse.c - API-Football v3 payloads to normalised structs (see afparse.h).
 *
 * Every parse follows the same path: load the JSON, classify the envelope (an error is an error
 * whatever the HTTP status says), then walk `response` with the typed getters of cjson.h, which
 * put the payload path into any complaint. Fields the API documents as nullable (referee, venue
 * id, goals before kick-off, elapsed) are optional; identity fields (ids, team names, the status
 * code) are required, because a row without them cannot be stored.
 */
#include "afparse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================================================
 * Leagues
 * ========================================================================================== */

static const af_league af_leagues[] = {
    {39, "E0", "soccer_epl", "Premier League", "England"},
    {140, "SP1", "soccer_spain_la_liga", "La Liga", "Spain"},
    {78, "D1", "soccer_germany_bundesliga", "Bundesliga", "Germany"},
    {135, "I1", "soccer_italy_serie_a", "Serie A", "Italy"},
    {61, "F1", "soccer_france_ligue_one", "Ligue 1", "France"},
};

size_t af_league_count(void)
{
    return sizeof af_leagues / sizeof af_leagues[0];
}

const af_league *af_league_at(size_t i)
{
    return i < af_league_count() ? &af_leagues[i] : NULL;
}

const af_league *af_league_by_id(int64_t af_id)
{
    for (size_t i = 0; i < af_league_count(); i++) {
        if (af_leagues[i].af_id == af_id) {
            return &af_leagues[i];
        }
    }
    return NULL;
}

const af_league *af_league_by_div(const char *div)
{
    for (size_t i = 0; div && i < af_league_count(); i++) {
        if (strcmp(af_leagues[i].div, div) == 0) {
            return &af_leagues[i];
        }
    }
    return NULL;
}

const af_league *af_league_by_sport_key(const char *sport_key)
{
    for (size_t i = 0; sport_key && i < af_league_count(); i++) {
        if (strcmp(af_leagues[i].sport_key, sport_key) == 0) {
            return &af_leagues[i];
        }
    }
    return NULL;
}

/* ============================================================================================
 * Errors, quota, envelope
 * ========================================================================================== */

const char *af_error_kind_name(int kind)
{
    switch (kind) {
    case AF_OK: return "ok";
    case AF_ERR_TOKEN: return "token";
    case AF_ERR_DAILY_QUOTA: return "daily_quota";
    case AF_ERR_RATE_LIMIT: return "rate_limit";
    case AF_ERR_PLAN: return "plan";
    case AF_ERR_PARAMETER: return "parameter";
    case AF_ERR_GATEWAY_KEY: return "gateway_key";
    case AF_ERR_GATEWAY_QUOTA: return "gateway_quota";
    case AF_ERR_HTTP: return "http";
    default: return "?";
    }
}

int af_error_status(int kind)
{
    switch (kind) {
    case AF_OK: return BP_OK;
    case AF_ERR_TOKEN:
    case AF_ERR_GATEWAY_KEY: return BP_E_CONFIG;
    case AF_ERR_DAILY_QUOTA:
    case AF_ERR_GATEWAY_QUOTA: return BP_E_LIMIT;
    case AF_ERR_RATE_LIMIT: return BP_E_RETRY;
    case AF_ERR_PLAN:
    case AF_ERR_PARAMETER: return BP_E_INVAL;
    default: return BP_E_UNAVAILABLE;
    }
}

static int quota_value(const bp_http_header *h, int64_t *out, bp_error *err)
{
    int64_t v;
    if (!h->value || !cj_parse_int(h->value, &v) || v < 0) {
        return bp_err(err, BP_E_INVAL, "header %s: '%.40s' is not a count", h->name,
                      h->value ? h->value : "");
    }
    *out = v;
    return BP_OK;
}

int af_quota_parse(const bp_http_header *headers, size_t n, af_quota *out, bp_error *err)
{
    out->day_limit = out->day_remaining = out->minute_limit = out->minute_remaining = -1;
    for (size_t i = 0; i < n; i++) {
        const bp_http_header *h = &headers[i];
        int64_t *slot = NULL;
        if (!h->name) {
            continue;
        }
        if (cj_streq_ci(h->name, "x-ratelimit-requests-limit")) {
            slot = &out->day_limit;
        } else if (cj_streq_ci(h->name, "x-ratelimit-requests-remaining")) {
            slot = &out->day_remaining;
        } else if (cj_streq_ci(h->name, "x-ratelimit-limit")) {
            slot = &out->minute_limit;
        } else if (cj_streq_ci(h->name, "x-ratelimit-remaining")) {
            slot = &out->minute_remaining;
        }
        if (slot) {
            int rc = quota_value(h, slot, err);
            if (rc != BP_OK) {
                return rc;
            }
        }
    }
    return BP_OK;
}

int64_t af_quota_pause_ms(const af_quota *q, int64_t now_ms, int64_t reserve)
{
    if (q->day_remaining >= 0 && q->day_remaining <= (reserve > 0 ? reserve : 0)) {
        /* the daily quota resets at 00:00 UTC */
        int64_t day = 86400000;
        int64_t next = (now_ms / day + 1) * day;
        return next - now_ms;
    }
    if (q->minute_remaining == 0) {
        return 60000;
    }
    return 0;
}

/* Copy a message into a fixed buffer. */
static void set_text(char *dst, size_t len, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (len == 0) {
        return;
    }
    if (n >= len) {
        n = len - 1; /* truncation is fine: it is a message */
    }
    if (n) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

/* Which `errors` key matters most: the ones that change what the collector does first. */
static int error_rank(const char *key, int *kind)
{
    if (strcmp(key, "token") == 0) {
        *kind = AF_ERR_TOKEN;
        return 5;
    }
    if (strcmp(key, "requests") == 0) {
        *kind = AF_ERR_DAILY_QUOTA;
        return 4;
    }
    if (strcmp(key, "rateLimit") == 0) {
        *kind = AF_ERR_RATE_LIMIT;
        return 3;
    }
    if (strcmp(key, "plan") == 0) {
        *kind = AF_ERR_PLAN;
        return 2;
    }
    *kind = AF_ERR_PARAMETER;
    return 1;
}

static void classify_error_object(const json_t *errors, af_api_error *ae)
{
    const char *key;
    const json_t *v;
    int best = 0;
    json_object_foreach((json_t *)(uintptr_t)errors, key, v)
    {
        int kind, rank = error_rank(key, &kind);
        if (rank > best) {
            best = rank;
            ae->kind = kind;
            set_text(ae->field, sizeof ae->field, key);
            set_text(ae->message, sizeof ae->message,
                     json_is_string(v) ? json_string_value(v) : "(no message)");
        }
    }
}

static int api_failure(const af_api_error *ae, bp_error *err)
{
    int code = af_error_status(ae->kind);
    if (ae->field[0]) {
        return bp_err(err, code, "API-Football error %s (HTTP %d): %s", ae->field, ae->http_status,
                      ae->message);
    }
    return bp_err(err, code, "API-Football %s error (HTTP %d): %s", af_error_kind_name(ae->kind),
                  ae->http_status, ae->message);
}

/*
 * Load `body` and classify it. On BP_OK *out_doc holds a success envelope and *out_response its
 * `response` member (NULL for a 204); page is filled. Otherwise ae says what the API reported and
 * the return value is af_error_status(kind), or BP_E_INVAL for a malformed payload.
 */
static int open_envelope(int http_status, const char *body, size_t len, json_t **out_doc,
                         const json_t **out_response, af_page *page, af_api_error *ae,
                         bp_error *err)
{
    json_t *doc = NULL;
    const json_t *errors, *msg;
    int rc;
    memset(ae, 0, sizeof *ae);
    ae->http_status = http_status;
    page->current = page->total = 1;
    page->results = 0;
    *out_doc = NULL;
    *out_response = NULL;

    if (http_status == 204) {
        *out_doc = json_object();
        return *out_doc ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = cj_load(body, len, "API-Football response", &doc, err);
    if (rc != BP_OK) {
        if (http_status >= 400) {
            ae->kind = http_status == 429 ? AF_ERR_RATE_LIMIT : AF_ERR_HTTP;
            set_text(ae->message, sizeof ae->message, err ? err->msg : "body is not JSON");
            return api_failure(ae, err);
        }
        return rc;
    }
    if (!json_is_object(doc)) {
        if (http_status >= 400) {
            ae->kind = http_status == 429 ? AF_ERR_RATE_LIMIT : AF_ERR_HTTP;
            set_text(ae->message, sizeof ae->message, "the body is not an API-Football envelope");
            rc = api_failure(ae, err);
        } else {
            rc = bp_err(err, BP_E_INVAL, "(top level): expected an object, got %s",
                        cj_type_name(doc));
        }
        goto fail;
    }

    /* the RapidAPI gateway: {"message": "..."} and nothing of the API's envelope */
    errors = json_object_get(doc, "errors");
    msg = json_object_get(doc, "message");
    if (!errors && !json_object_get(doc, "response") && json_is_string(msg)) {
        const char *m = json_string_value(msg);
        set_text(ae->message, sizeof ae->message, m);
        if (http_status == 401 || http_status == 403) {
            ae->kind = AF_ERR_GATEWAY_KEY;
        } else if (strstr(m, "quota") || strstr(m, "QUOTA") || strstr(m, "Quota")) {
            ae->kind = AF_ERR_GATEWAY_QUOTA;
        } else if (http_status == 429) {
            ae->kind = AF_ERR_RATE_LIMIT;
        } else {
            ae->kind = AF_ERR_HTTP;
        }
        rc = api_failure(ae, err);
        goto fail;
    }

    /* errors: [] or {} on success, a non-empty object (or array) on failure */
    if (json_is_object(errors) && json_object_size(errors) > 0) {
        classify_error_object(errors, ae);
    } else if (json_is_array(errors) && json_array_size(errors) > 0) {
        const json_t *first = json_array_get(errors, 0);
        if (json_is_object(first) && json_object_size(first) > 0) {
            classify_error_object(first, ae);
        } else {
            ae->kind = AF_ERR_PARAMETER;
            set_text(ae->message, sizeof ae->message,
                     json_is_string(first) ? json_string_value(first) : "(no message)");
        }
    } else if (errors && !json_is_object(errors) && !json_is_array(errors)) {
        rc = bp_err(err, BP_E_INVAL, "errors: expected an object or an array, got %s",
                    cj_type_name(errors));
        goto fail;
    } else if (http_status >= 400) {
        ae->kind = http_status == 429 ? AF_ERR_RATE_LIMIT : AF_ERR_HTTP;
        set_text(ae->message, sizeof ae->message, "error status without an error message");
    }
    if (ae->kind != AF_OK) {
        rc = api_failure(ae, err);
        goto fail;
    }

    /* a success envelope */
    const json_t *paging;
    rc = cj_int32(doc, "results", "", CJ_OPTIONAL, &page->results, err);
    if (rc != BP_OK && rc != BP_E_NOTFOUND) {
        goto fail;
    }
    rc = cj_object(doc, "paging", "", CJ_OPTIONAL, &paging, err);
    if (rc == BP_OK) {
        if ((rc = cj_int32(paging, "current", "paging", CJ_REQUIRED, &page->current, err)) !=
                BP_OK ||
            (rc = cj_int32(paging, "total", "paging", CJ_REQUIRED, &page->total, err)) != BP_OK) {
            goto fail;
        }
        if (page->current < 1 || page->total < 1 || page->current > page->total) {
            rc = bp_err(err, BP_E_INVAL, "paging: page %d of %d makes no sense", page->current,
                        page->total);
            goto fail;
        }
    } else if (rc != BP_E_NOTFOUND) {
        goto fail;
    }
    *out_response = json_object_get(doc, "response");
    if (!*out_response) {
        rc = bp_err(err, BP_E_INVAL, "response: is missing");
        goto fail;
    }
    *out_doc = doc;
    return BP_OK;
fail:
    json_decref(doc);
    return rc;
}

/* ============================================================================================
 * Shared field readers
 * ========================================================================================== */

/* An optional integer that defaults to -1. */
static int opt_int32(const json_t *obj, const char *key, const char *path, int32_t *out,
                     bp_error *err)
{
    int rc = cj_int32(obj, key, path, CJ_OPTIONAL, out, err);
    if (rc == BP_E_NOTFOUND) {
        *out = -1;
        return BP_OK;
    }
    return rc;
}

/* An optional string that defaults to NULL. */
static int opt_string(const json_t *obj, const char *key, const char *path, const char **out,
                      bp_error *err)
{
    int rc = cj_string(obj, key, path, CJ_OPTIONAL, out, err);
    if (rc == BP_E_NOTFOUND) {
        *out = NULL;
        return BP_OK;
    }
    return rc;
}

/* {"home": n|null, "away": n|null} under obj[key]; both -1 when the object is absent. */
static int home_away(const json_t *obj, const char *key, const char *path, int32_t *home,
                     int32_t *away, bp_error *err)
{
    const json_t *o;
    char p[CJ_PATH_MAX];
    int rc = cj_object(obj, key, path, CJ_OPTIONAL, &o, err);
    *home = *away = -1;
    if (rc == BP_E_NOTFOUND) {
        return BP_OK;
    }
    if (rc != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, key);
    if ((rc = opt_int32(o, "home", p, home, err)) != BP_OK ||
        (rc = opt_int32(o, "away", p, away, err)) != BP_OK) {
        return rc;
    }
    return BP_OK;
}

static int expect_array(const json_t *v, const char *path, bp_error *err)
{
    if (!json_is_array(v)) {
        return bp_err(err, BP_E_INVAL, "%s: expected an array, got %s", path, cj_type_name(v));
    }
    return BP_OK;
}

static int expect_object(const json_t *v, const char *path, bp_error *err)
{
    if (!json_is_object(v)) {
        return bp_err(err, BP_E_INVAL, "%s: expected an object, got %s", path, cj_type_name(v));
    }
    return BP_OK;
}

/* ============================================================================================
 * /fixtures
 * ========================================================================================== */

const char *af_state_name(int state)
{
    switch (state) {
    case AF_STATE_SCHEDULED: return "scheduled";
    case AF_STATE_LIVE: return "live";
    case AF_STATE_FINISHED: return "finished";
    case AF_STATE_POSTPONED: return "postponed";
    case AF_STATE_CANCELLED: return "cancelled";
    case AF_STATE_ABANDONED: return "abandoned";
    case AF_STATE_AWARDED: return "awarded";
    default: return "unknown";
    }
}

int af_state_of(const char *s)
{
    static const struct {
        const char *code;
        int state;
    } codes[] = {
        {"TBD", AF_STATE_SCHEDULED},  {"NS", AF_STATE_SCHEDULED},  {"1H", AF_STATE_LIVE},
        {"HT", AF_STATE_LIVE},        {"2H", AF_STATE_LIVE},       {"ET", AF_STATE_LIVE},
        {"BT", AF_STATE_LIVE},        {"P", AF_STATE_LIVE},        {"SUSP", AF_STATE_LIVE},
        {"INT", AF_STATE_LIVE},       {"LIVE", AF_STATE_LIVE},     {"FT", AF_STATE_FINISHED},
        {"AET", AF_STATE_FINISHED},   {"PEN", AF_STATE_FINISHED},  {"PST", AF_STATE_POSTPONED},
        {"CANC", AF_STATE_CANCELLED}, {"ABD", AF_STATE_ABANDONED}, {"AWD", AF_STATE_AWARDED},
        {"AWA", AF_STATE_AWARDED},    {"WO", AF_STATE_AWARDED},
    };
    for (size_t i = 0; s && i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(s, codes[i].code) == 0) {
            return codes[i].state;
        }
    }
    return AF_STATE_UNKNOWN;
}

/* The kick-off of a fixture object: `timestamp` (Unix seconds) or else `date` (ISO-8601). */
static int kickoff_of(const json_t *fx, const char *path, int64_t *out, bp_error *err)
{
    int64_t ts;
    int rc = cj_int(fx, "timestamp", path, CJ_OPTIONAL, &ts, err);
    if (rc == BP_OK) {
        *out = ts * 1000;
        return BP_OK;
    }
    if (rc != BP_E_NOTFOUND) {
        return rc;
    }
    return cj_time(fx, "date", path, CJ_REQUIRED, out, err);
}

static int team_of(const json_t *teams, const char *side, const char *path, int64_t *id,
                   const char **name, bp_error *err)
{
    const json_t *t;
    char p[CJ_PATH_MAX];
    int rc = cj_object(teams, side, path, CJ_REQUIRED, &t, err);
    if (rc != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, side);
    if ((rc = cj_int(t, "id", p, CJ_REQUIRED, id, err)) != BP_OK ||
        (rc = cj_string(t, "name", p, CJ_REQUIRED, name, err)) != BP_OK) {
        return rc;
    }
    return BP_OK;
}

static int parse_fixture(const json_t *item, const char *path, af_fixture *f, bp_error *err)
{
    const json_t *fx, *status, *league, *teams, *venue, *score;
    char p[CJ_PATH_MAX], q[CJ_PATH_MAX];
    int rc;
    memset(f, 0, sizeof *f);
    if ((rc = expect_object(item, path, err)) != BP_OK ||
        (rc = cj_object(item, "fixture", path, CJ_REQUIRED, &fx, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, "fixture");
    if ((rc = cj_int(fx, "id", p, CJ_REQUIRED, &f->id, err)) != BP_OK ||
        (rc = opt_string(fx, "referee", p, &f->referee, err)) != BP_OK ||
        (rc = kickoff_of(fx, p, &f->kickoff_ms, err)) != BP_OK ||
        (rc = cj_object(fx, "status", p, CJ_REQUIRED, &status, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(q, p, "status");
    if ((rc = cj_string(status, "short", q, CJ_REQUIRED, &f->status_short, err)) != BP_OK ||
        (rc = opt_string(status, "long", q, &f->status_long, err)) != BP_OK ||
        (rc = opt_int32(status, "elapsed", q, &f->elapsed, err)) != BP_OK) {
        return rc;
    }
    f->state = af_state_of(f->status_short);
    f->venue_id = -1;
    rc = cj_object(fx, "venue", p, CJ_OPTIONAL, &venue, err);
    if (rc == BP_OK) {
        cj_path_key(q, p, "venue");
        rc = cj_int(venue, "id", q, CJ_OPTIONAL, &f->venue_id, err);
        if ((rc != BP_OK && rc != BP_E_NOTFOUND) ||
            (rc = opt_string(venue, "name", q, &f->venue_name, err)) != BP_OK ||
            (rc = opt_string(venue, "city", q, &f->venue_city, err)) != BP_OK) {
            return rc;
        }
    } else if (rc != BP_E_NOTFOUND) {
        return rc;
    }

    if ((rc = cj_object(item, "league", path, CJ_REQUIRED, &league, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, "league");
    if ((rc = cj_int(league, "id", p, CJ_REQUIRED, &f->league_id, err)) != BP_OK ||
        (rc = cj_int32(league, "season", p, CJ_REQUIRED, &f->season, err)) != BP_OK ||
        (rc = opt_string(league, "round", p, &f->round, err)) != BP_OK) {
        return rc;
    }

    if ((rc = cj_object(item, "teams", path, CJ_REQUIRED, &teams, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, "teams");
    if ((rc = team_of(teams, "home", p, &f->home_id, &f->home_name, err)) != BP_OK ||
        (rc = team_of(teams, "away", p, &f->away_id, &f->away_name, err)) != BP_OK) {
        return rc;
    }

    if ((rc = home_away(item, "goals", path, &f->goals_home, &f->goals_away, err)) != BP_OK) {
        return rc;
    }
    f->ht_home = f->ht_away = f->ft_home = f->ft_away = -1;
    f->et_home = f->et_away = f->pen_home = f->pen_away = -1;
    rc = cj_object(item, "score", path, CJ_OPTIONAL, &score, err);
    if (rc == BP_OK) {
        cj_path_key(p, path, "score");
        if ((rc = home_away(score, "halftime", p, &f->ht_home, &f->ht_away, err)) != BP_OK ||
            (rc = home_away(score, "fulltime", p, &f->ft_home, &f->ft_away, err)) != BP_OK ||
            (rc = home_away(score, "extratime", p, &f->et_home, &f->et_away, err)) != BP_OK ||
            (rc = home_away(score, "penalty", p, &f->pen_home, &f->pen_away, err)) != BP_OK) {
            return rc;
        }
    } else if (rc != BP_E_NOTFOUND) {
        return rc;
    }
    return BP_OK;
}

void af_fixtures_free(af_fixtures *f)
{
    if (f) {
        free(f->items);
        json_decref(f->doc);
        free(f);
    }
}

int af_parse_fixtures(int http_status, const char *body, size_t len, af_fixtures **out,
                      af_api_error *api_err, bp_error *err)
{
    af_api_error local;
    af_fixtures *f = NULL;
    const json_t *resp;
    json_t *doc = NULL;
    af_page page;
    int rc;
    *out = NULL;
    rc = open_envelope(http_status, body, len, &doc, &resp, &page, api_err ? api_err : &local, err);
    if (rc != BP_OK) {
        return rc;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        json_decref(doc);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    f->doc = doc;
    f->page = page;
    if (resp) {
        if ((rc = expect_array(resp, "response", err)) != BP_OK) {
            goto fail;
        }
        f->items = calloc(json_array_size(resp) + 1, sizeof *f->items);
        if (!f->items) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(resp); i++) {
            char p[CJ_PATH_MAX];
            cj_path_index(p, "response", i);
            if ((rc = parse_fixture(json_array_get(resp, i), p, &f->items[i], err)) != BP_OK) {
                goto fail;
            }
            f->n++;
        }
    }
    *out = f;
    return BP_OK;
fail:
    af_fixtures_free(f);
    return rc;
}

/* ============================================================================================
 * /odds
 * ========================================================================================== */

/* "Over 2.5" -> (OVER, 2.5); "Home -1.25" / "Home (-1.25)" -> (HOME, -1.25). The number after the
 * side is that side's handicap [inferred from client code: the API documents no AH sample], so
 * the home line of "Away +0.5" is -0.5. */
static bool split_label(const char *label, const char *a, const char *b, int *which, double *num)
{
    size_t la = strlen(a), lb = strlen(b);
    const char *rest;
    char buf[32];
    size_t n = 0;
    if (strncmp(label, a, la) == 0) {
        *which = 0;
        rest = label + la;
    } else if (strncmp(label, b, lb) == 0) {
        *which = 1;
        rest = label + lb;
    } else {
        return false;
    }
    while (*rest == ' ') {
        rest++;
    }
    bool paren = *rest == '(';
    if (paren) {
        rest++;
    }
    while (*rest && *rest != ')' && n + 1 < sizeof buf) {
        buf[n++] = *rest++;
    }
    buf[n] = '\0';
    if (paren && *rest++ != ')') {
        return false;
    }
    return *rest == '\0' && cj_parse_decimal(buf, num);
}

static int bet_market(const char *name)
{
    if (strcmp(name, "Match Winner") == 0) {
        return CM_MARKET_1X2;
    }
    if (strcmp(name, "Goals Over/Under") == 0) {
        return CM_MARKET_OU;
    }
    if (strcmp(name, "Asian Handicap") == 0) {
        return CM_MARKET_AH;
    }
    return -1;
}

/* The label of a value: a string, or (defensively) a number written back as text. */
static int value_label(const json_t *val, const char *path, char *buf, size_t len, bp_error *err)
{
    const json_t *v = json_object_get(val, "value");
    char p[CJ_PATH_MAX];
    if (json_is_string(v)) {
        snprintf(buf, len, "%s", json_string_value(v));
        return BP_OK;
    }
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return BP_OK;
    }
    if (json_is_real(v)) {
        snprintf(buf, len, "%g", json_real_value(v));
        return BP_OK;
    }
    cj_path_key(p, path, "value");
    return bp_err(err, BP_E_INVAL, "%s: expected a selection label, got %s", p,
                  v ? cj_type_name(v) : "nothing");
}

static int push_quote(af_odds *o, size_t *cap, const af_quote *q, bp_error *err)
{
    if (o->n_quotes == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        af_quote *nq = realloc(o->quotes, ncap * sizeof *nq);
        if (!nq) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        o->quotes = nq;
        *cap = ncap;
    }
    o->quotes[o->n_quotes++] = *q;
    return BP_OK;
}

static int parse_bet(af_odds *o, size_t *cap, const json_t *bet, const char *path,
                     const af_quote *book, bp_error *err)
{
    const json_t *values;
    const char *name;
    af_quote q = *book;
    int rc;
    if ((rc = expect_object(bet, path, err)) != BP_OK ||
        (rc = cj_string(bet, "name", path, CJ_REQUIRED, &name, err)) != BP_OK) {
        return rc;
    }
    rc = cj_int(bet, "id", path, CJ_OPTIONAL, &q.bet_id, err);
    if (rc == BP_E_NOTFOUND) {
        q.bet_id = -1;
    } else if (rc != BP_OK) {
        return rc;
    }
    q.bet_name = name;
    q.market = bet_market(name);
    if (q.market < 0) {
        o->skipped_bets++;
        return BP_OK;
    }
    if ((rc = cj_array(bet, "values", path, CJ_REQUIRED, &values, err)) != BP_OK) {
        return rc;
    }
    char vpath[CJ_PATH_MAX];
    cj_path_key(vpath, path, "values");
    for (size_t k = 0; k < json_array_size(values); k++) {
        const json_t *val = json_array_get(values, k);
        char p[CJ_PATH_MAX], label[64], lp[CJ_PATH_MAX];
        double num = NAN;
        int which;
        cj_path_index(p, vpath, k);
        cj_path_key(lp, p, "value");
        if ((rc = expect_object(val, p, err)) != BP_OK ||
            (rc = value_label(val, p, label, sizeof label, err)) != BP_OK ||
            (rc = cj_decimal(val, "odd", p, CJ_REQUIRED, &q.price, err)) != BP_OK) {
            return rc;
        }
        q.line = NAN;
        if (q.market == CM_MARKET_1X2) {
            if (strcmp(label, "Home") == 0 || strcmp(label, "1") == 0) {
                q.selection = CM_SEL_HOME;
            } else if (strcmp(label, "Draw") == 0 || strcmp(label, "X") == 0) {
                q.selection = CM_SEL_DRAW;
            } else if (strcmp(label, "Away") == 0 || strcmp(label, "2") == 0) {
                q.selection = CM_SEL_AWAY;
            } else {
                return bp_err(err, BP_E_INVAL, "%s: \"%s\" is not Home, Draw or Away", lp, label);
            }
        } else if (q.market == CM_MARKET_OU) {
            if (!split_label(label, "Over", "Under", &which, &num) || !(num > 0) || num > 30) {
                return bp_err(err, BP_E_INVAL,
                              "%s: \"%s\" is not \"Over <goals>\" or "
                              "\"Under <goals>\"",
                              lp, label);
            }
            q.selection = which == 0 ? CM_SEL_OVER : CM_SEL_UNDER;
            q.line = num;
        } else {
            if (!split_label(label, "Home", "Away", &which, &num) || fabs(num) > 20 ||
                num * 4 != floor(num * 4)) {
                return bp_err(err, BP_E_INVAL,
                              "%s: \"%s\" is not \"Home <handicap>\" or "
                              "\"Away <handicap>\"",
                              lp, label);
            }
            q.selection = which == 0 ? CM_SEL_HOME : CM_SEL_AWAY;
            q.line = which == 0 ? num : -num;
            if (q.line == 0) {
                q.line = 0; /* no negative zero */
            }
        }
        if (!(q.price > 1.0) || q.price > 100000.0) {
            if (o->dropped++ == 0) {
                char op[CJ_PATH_MAX];
                cj_path_key(op, p, "odd");
                snprintf(o->first_dropped, sizeof o->first_dropped, "%s", op);
            }
            continue;
        }
        if ((rc = push_quote(o, cap, &q, err)) != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static int parse_odds_item(af_odds *o, size_t *cap, const json_t *item, const char *path,
                           af_odds_fixture *f, bp_error *err)
{
    const json_t *league, *fx, *books;
    char p[CJ_PATH_MAX];
    int rc;
    memset(f, 0, sizeof *f);
    f->first_quote = o->n_quotes;
    if ((rc = expect_object(item, path, err)) != BP_OK ||
        (rc = cj_object(item, "fixture", path, CJ_REQUIRED, &fx, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, "fixture");
    if ((rc = cj_int(fx, "id", p, CJ_REQUIRED, &f->fixture_id, err)) != BP_OK ||
        (rc = kickoff_of(fx, p, &f->kickoff_ms, err)) != BP_OK ||
        (rc = cj_object(item, "league", path, CJ_REQUIRED, &league, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, "league");
    if ((rc = cj_int(league, "id", p, CJ_REQUIRED, &f->league_id, err)) != BP_OK ||
        (rc = cj_int32(league, "season", p, CJ_REQUIRED, &f->season, err)) != BP_OK) {
        return rc;
    }
    rc = cj_time(item, "update", path, CJ_OPTIONAL, &f->update_ms, err);
    if (rc == BP_E_NOTFOUND) {
        f->update_ms = -1;
    } else if (rc != BP_OK) {
        return rc;
    }
    if ((rc = cj_array(item, "bookmakers", path, CJ_REQUIRED, &books, err)) != BP_OK) {
        return rc;
    }
    char bpath[CJ_PATH_MAX];
    cj_path_key(bpath, path, "bookmakers");
    for (size_t b = 0; b < json_array_size(books); b++) {
        const json_t *book = json_array_get(books, b), *bets;
        af_quote q;
        memset(&q, 0, sizeof q);
        cj_path_index(p, bpath, b);
        if ((rc = expect_object(book, p, err)) != BP_OK ||
            (rc = cj_int(book, "id", p, CJ_REQUIRED, &q.bookmaker_id, err)) != BP_OK ||
            (rc = cj_string(book, "name", p, CJ_REQUIRED, &q.bookmaker_name, err)) != BP_OK ||
            (rc = cj_array(book, "bets", p, CJ_REQUIRED, &bets, err)) != BP_OK) {
            return rc;
        }
        cj_bookmaker_key(q.bookmaker_name, q.bookmaker, sizeof q.bookmaker);
        char betpath[CJ_PATH_MAX];
        cj_path_key(betpath, p, "bets");
        for (size_t k = 0; k < json_array_size(bets); k++) {
            char bp[CJ_PATH_MAX];
            cj_path_index(bp, betpath, k);
            if ((rc = parse_bet(o, cap, json_array_get(bets, k), bp, &q, err)) != BP_OK) {
                return rc;
            }
        }
    }
    f->n_quotes = o->n_quotes - f->first_quote;
    return BP_OK;
}

void af_odds_free(af_odds *o)
{
    if (o) {
        free(o->items);
        free(o->quotes);
        json_decref(o->doc);
        free(o);
    }
}

int af_parse_odds(int http_status, const char *body, size_t len, af_odds **out,
                  af_api_error *api_err, bp_error *err)
{
    af_api_error local;
    af_odds *o = NULL;
    const json_t *resp;
    json_t *doc = NULL;
    af_page page;
    size_t cap = 0;
    int rc;
    *out = NULL;
    rc = open_envelope(http_status, body, len, &doc, &resp, &page, api_err ? api_err : &local, err);
    if (rc != BP_OK) {
        return rc;
    }
    o = calloc(1, sizeof *o);
    if (!o) {
        json_decref(doc);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    o->doc = doc;
    o->page = page;
    if (resp) {
        if ((rc = expect_array(resp, "response", err)) != BP_OK) {
            goto fail;
        }
        o->items = calloc(json_array_size(resp) + 1, sizeof *o->items);
        if (!o->items) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(resp); i++) {
            char p[CJ_PATH_MAX];
            cj_path_index(p, "response", i);
            rc = parse_odds_item(o, &cap, json_array_get(resp, i), p, &o->items[i], err);
            if (rc != BP_OK) {
                goto fail;
            }
            o->n++;
        }
    }
    *out = o;
    return BP_OK;
fail:
    af_odds_free(o);
    return rc;
}

/* ============================================================================================
 * /teams/statistics
 * ========================================================================================== */

/* {"home": n, "away": n, "total": n} under obj[key] into out[3]. */
static int triple(const json_t *obj, const char *key, const char *path, int how, int32_t out[3],
                  bp_error *err)
{
    static const char *const sides[3] = {"home", "away", "total"};
    const json_t *o;
    char p[CJ_PATH_MAX];
    int rc = cj_object(obj, key, path, how, &o, err);
    out[0] = out[1] = out[2] = -1;
    if (rc != BP_OK) {
        return rc == BP_E_NOTFOUND ? BP_OK : rc;
    }
    cj_path_key(p, path, key);
    for (int i = 0; i < 3; i++) {
        rc = how == CJ_REQUIRED ? cj_int32(o, sides[i], p, CJ_REQUIRED, &out[i], err)
                                : opt_int32(o, sides[i], p, &out[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

/* The same with decimal strings ("1.5"); NAN when absent. */
static int triple_avg(const json_t *obj, const char *key, const char *path, double out[3],
                      bp_error *err)
{
    static const char *const sides[3] = {"home", "away", "total"};
    const json_t *o;
    char p[CJ_PATH_MAX];
    int rc = cj_object(obj, key, path, CJ_OPTIONAL, &o, err);
    out[0] = out[1] = out[2] = NAN;
    if (rc != BP_OK) {
        return rc == BP_E_NOTFOUND ? BP_OK : rc;
    }
    cj_path_key(p, path, key);
    for (int i = 0; i < 3; i++) {
        rc = cj_decimal(o, sides[i], p, CJ_OPTIONAL, &out[i], err);
        if (rc != BP_OK && rc != BP_E_NOTFOUND) {
            return rc;
        }
    }
    return BP_OK;
}

void af_team_stats_free(af_team_stats *s)
{
    if (s) {
        json_decref(s->doc);
        free(s);
    }
}

int af_parse_team_stats(int http_status, const char *body, size_t len, af_team_stats **out,
                        af_api_error *api_err, bp_error *err)
{
    af_api_error local;
    af_team_stats *s = NULL;
    const json_t *r, *league, *team, *fixtures, *goals, *g;
    json_t *doc = NULL;
    af_page page;
    char p[CJ_PATH_MAX];
    int rc;
    *out = NULL;
    rc = open_envelope(http_status, body, len, &doc, &r, &page, api_err ? api_err : &local, err);
    if (rc != BP_OK) {
        return rc;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(doc);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->doc = doc;
    /* unlike the other endpoints, `response` is one object here */
    if (!r || (rc = expect_object(r, "response", err)) != BP_OK) {
        if (!r) {
            rc = bp_err(err, BP_E_INVAL, "response: is missing");
        }
        goto fail;
    }
    if ((rc = cj_object(r, "league", "response", CJ_REQUIRED, &league, err)) != BP_OK ||
        (rc = cj_int(league, "id", "response.league", CJ_REQUIRED, &s->league_id, err)) != BP_OK ||
        (rc = cj_int32(league, "season", "response.league", CJ_REQUIRED, &s->season, err)) !=
            BP_OK ||
        (rc = cj_object(r, "team", "response", CJ_REQUIRED, &team, err)) != BP_OK ||
        (rc = cj_int(team, "id", "response.team", CJ_REQUIRED, &s->team_id, err)) != BP_OK ||
        (rc = cj_string(team, "name", "response.team", CJ_REQUIRED, &s->team_name, err)) != BP_OK ||
        (rc = opt_string(r, "form", "response", &s->form, err)) != BP_OK ||
        (rc = cj_object(r, "fixtures", "response", CJ_REQUIRED, &fixtures, err)) != BP_OK) {
        goto fail;
    }
    if ((rc = triple(fixtures, "played", "response.fixtures", CJ_REQUIRED, s->played, err)) !=
            BP_OK ||
        (rc = triple(fixtures, "wins", "response.fixtures", CJ_REQUIRED, s->wins, err)) != BP_OK ||
        (rc = triple(fixtures, "draws", "response.fixtures", CJ_REQUIRED, s->draws, err)) !=
            BP_OK ||
        (rc = triple(fixtures, "loses", "response.fixtures", CJ_REQUIRED, s->loses, err)) !=
            BP_OK ||
        (rc = cj_object(r, "goals", "response", CJ_REQUIRED, &goals, err)) != BP_OK) {
        goto fail;
    }
    static const char *const dirs[2] = {"for", "against"};
    for (int d = 0; d < 2; d++) {
        cj_path_key(p, "response.goals", dirs[d]);
        if ((rc = cj_object(goals, dirs[d], "response.goals", CJ_REQUIRED, &g, err)) != BP_OK) {
            goto fail;
        }
        if ((rc = triple(g, "total", p, CJ_REQUIRED, d == 0 ? s->goals_for : s->goals_against,
                         err)) != BP_OK ||
            (rc = triple_avg(g, "average", p, d == 0 ? s->goals_for_avg : s->goals_against_avg,
                             err)) != BP_OK) {
            goto fail;
        }
    }
    if ((rc = triple(r, "clean_sheet", "response", CJ_OPTIONAL, s->clean_sheet, err)) != BP_OK ||
        (rc = triple(r, "failed_to_score", "response", CJ_OPTIONAL, s->failed_to_score, err)) !=
            BP_OK) {
        goto fail;
    }
    *out = s;
    return BP_OK;
fail:
    af_team_stats_free(s);
    return rc;
}

/* ============================================================================================
 * /standings
 * ========================================================================================== */

static int standing_block(const json_t *row, const char *key, const char *path, int side,
                          af_standing *st, bp_error *err)
{
    const json_t *b, *goals;
    char p[CJ_PATH_MAX], q[CJ_PATH_MAX];
    int rc = cj_object(row, key, path, CJ_REQUIRED, &b, err);
    if (rc != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, key);
    cj_path_key(q, p, "goals");
    if ((rc = cj_int32(b, "played", p, CJ_REQUIRED, &st->played[side], err)) != BP_OK ||
        (rc = cj_int32(b, "win", p, CJ_REQUIRED, &st->win[side], err)) != BP_OK ||
        (rc = cj_int32(b, "draw", p, CJ_REQUIRED, &st->draw[side], err)) != BP_OK ||
        (rc = cj_int32(b, "lose", p, CJ_REQUIRED, &st->lose[side], err)) != BP_OK ||
        (rc = cj_object(b, "goals", p, CJ_REQUIRED, &goals, err)) != BP_OK ||
        (rc = cj_int32(goals, "for", q, CJ_REQUIRED, &st->goals_for[side], err)) != BP_OK ||
        (rc = cj_int32(goals, "against", q, CJ_REQUIRED, &st->goals_against[side], err)) != BP_OK) {
        return rc;
    }
    return BP_OK;
}

static int parse_standing(const json_t *row, const char *path, int group, af_standing *st,
                          bp_error *err)
{
    const json_t *team;
    char p[CJ_PATH_MAX];
    int rc;
    memset(st, 0, sizeof *st);
    st->group_index = group;
    if ((rc = expect_object(row, path, err)) != BP_OK ||
        (rc = cj_int32(row, "rank", path, CJ_REQUIRED, &st->rank, err)) != BP_OK ||
        (rc = cj_object(row, "team", path, CJ_REQUIRED, &team, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(p, path, "team");
    if ((rc = cj_int(team, "id", p, CJ_REQUIRED, &st->team_id, err)) != BP_OK ||
        (rc = cj_string(team, "name", p, CJ_REQUIRED, &st->team_name, err)) != BP_OK ||
        (rc = cj_int32(row, "points", path, CJ_REQUIRED, &st->points, err)) != BP_OK ||
        (rc = cj_int32(row, "goalsDiff", path, CJ_REQUIRED, &st->goals_diff, err)) != BP_OK ||
        (rc = opt_string(row, "group", path, &st->group, err)) != BP_OK ||
        (rc = opt_string(row, "form", path, &st->form, err)) != BP_OK ||
        (rc = opt_string(row, "description", path, &st->description, err)) != BP_OK ||
        (rc = standing_block(row, "all", path, AF_TOTAL, st, err)) != BP_OK ||
        (rc = standing_block(row, "home", path, AF_HOME, st, err)) != BP_OK ||
        (rc = standing_block(row, "away", path, AF_AWAY, st, err)) != BP_OK) {
        return rc;
    }
    rc = cj_time(row, "update", path, CJ_OPTIONAL, &st->update_ms, err);
    if (rc == BP_E_NOTFOUND) {
        st->update_ms = -1;
        rc = BP_OK;
    }
    return rc;
}

void af_standings_free(af_standings *s)
{
    if (s) {
        free(s->rows);
        json_decref(s->doc);
        free(s);
    }
}

int af_parse_standings(int http_status, const char *body, size_t len, af_standings **out,
                       af_api_error *api_err, bp_error *err)
{
    af_api_error local;
    af_standings *s = NULL;
    const json_t *resp, *league, *tables;
    json_t *doc = NULL;
    af_page page;
    int rc;
    *out = NULL;
    rc = open_envelope(http_status, body, len, &doc, &resp, &page, api_err ? api_err : &local, err);
    if (rc != BP_OK) {
        return rc;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(doc);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->doc = doc;
    if (!resp || json_array_size(resp) == 0) {
        /* no table (yet) for this league and season */
        if (resp && (rc = expect_array(resp, "response", err)) != BP_OK) {
            goto fail;
        }
        *out = s;
        return BP_OK;
    }
    if ((rc = expect_array(resp, "response", err)) != BP_OK ||
        (rc = expect_object(json_array_get(resp, 0), "response[0]", err)) != BP_OK ||
        (rc = cj_object(json_array_get(resp, 0), "league", "response[0]", CJ_REQUIRED, &league,
                        err)) != BP_OK ||
        (rc = cj_int(league, "id", "response[0].league", CJ_REQUIRED, &s->league_id, err)) !=
            BP_OK ||
        (rc = cj_int32(league, "season", "response[0].league", CJ_REQUIRED, &s->season, err)) !=
            BP_OK ||
        (rc = cj_array(league, "standings", "response[0].league", CJ_REQUIRED, &tables, err)) !=
            BP_OK) {
        goto fail;
    }
    size_t total = 0;
    for (size_t g = 0; g < json_array_size(tables); g++) {
        char p[CJ_PATH_MAX];
        cj_path_index(p, "response[0].league.standings", g);
        if ((rc = expect_array(json_array_get(tables, g), p, err)) != BP_OK) {
            goto fail;
        }
        total += json_array_size(json_array_get(tables, g));
    }
    s->rows = calloc(total + 1, sizeof *s->rows);
    if (!s->rows) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    s->n_groups = (int32_t)json_array_size(tables);
    for (size_t g = 0; g < json_array_size(tables); g++) {
        const json_t *table = json_array_get(tables, g);
        char gp[CJ_PATH_MAX];
        cj_path_index(gp, "response[0].league.standings", g);
        for (size_t i = 0; i < json_array_size(table); i++) {
            char p[CJ_PATH_MAX];
            cj_path_index(p, gp, i);
            rc = parse_standing(json_array_get(table, i), p, (int)g, &s->rows[s->n], err);
            if (rc != BP_OK) {
                goto fail;
            }
            s->n++;
        }
    }
    *out = s;
    return BP_OK;
fail:
    af_standings_free(s);
    return rc;
}
