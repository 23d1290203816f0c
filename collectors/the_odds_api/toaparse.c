/*
 * toaparse.c - The Odds API v4 payloads to normalised structs (see toaparse.h).
 */
#include "toaparse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================================================
 * Errors and quota
 * ========================================================================================== */

const char *toa_error_kind_name(int kind)
{
    switch (kind) {
    case TOA_OK: return "ok";
    case TOA_ERR_KEY: return "key";
    case TOA_ERR_QUOTA: return "quota";
    case TOA_ERR_FREQUENCY: return "frequency";
    case TOA_ERR_REQUEST: return "request";
    case TOA_ERR_NOT_FOUND: return "not_found";
    case TOA_ERR_HTTP: return "http";
    default: return "?";
    }
}

int toa_error_status(int kind)
{
    switch (kind) {
    case TOA_OK: return BP_OK;
    case TOA_ERR_KEY: return BP_E_CONFIG;
    case TOA_ERR_QUOTA: return BP_E_LIMIT;
    case TOA_ERR_FREQUENCY: return BP_E_RETRY;
    case TOA_ERR_REQUEST: return BP_E_INVAL;
    case TOA_ERR_NOT_FOUND: return BP_E_NOTFOUND;
    default: return BP_E_UNAVAILABLE;
    }
}

/* The kind of an error_code; the HTTP status decides for codes we do not know. */
static int kind_of(const char *code, int http_status)
{
    static const struct {
        const char *code;
        int kind;
    } codes[] = {
        {"MISSING_KEY", TOA_ERR_KEY},
        {"INVALID_KEY", TOA_ERR_KEY},
        {"DEACTIVATED_KEY", TOA_ERR_KEY},
        {"OUT_OF_USAGE_CREDITS", TOA_ERR_QUOTA},
        {"EXCEEDED_FREQ_LIMIT", TOA_ERR_FREQUENCY},
        {"UNKNOWN_SPORT", TOA_ERR_NOT_FOUND},
        {"EVENT_NOT_FOUND", TOA_ERR_NOT_FOUND},
    };
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(code, codes[i].code) == 0) {
            return codes[i].kind;
        }
    }
    switch (http_status) {
    case 401: return TOA_ERR_KEY;
    case 422: return TOA_ERR_REQUEST;
    case 429: return TOA_ERR_FREQUENCY;
    case 404: return TOA_ERR_NOT_FOUND;
    default: return TOA_ERR_HTTP;
    }
}

int toa_parse_error(int http_status, const char *body, size_t len, toa_api_error *out,
                    bp_error *err)
{
    toa_api_error local;
    json_t *doc = NULL;
    const char *code = NULL, *msg = NULL;
    if (!out) {
        out = &local;
    }
    memset(out, 0, sizeof *out);
    out->http_status = http_status;
    if (cj_load(body, len, "The Odds API error body", &doc, NULL) == BP_OK && json_is_object(doc)) {
        const json_t *c = json_object_get(doc, "error_code");
        const json_t *m = json_object_get(doc, "message");
        code = json_is_string(c) ? json_string_value(c) : NULL;
        msg = json_is_string(m) ? json_string_value(m) : NULL;
    }
    out->kind = kind_of(code, http_status);
    snprintf(out->code, sizeof out->code, "%s", code ? code : "");
    snprintf(out->message, sizeof out->message, "%s", msg ? msg : "the error body has no message");
    json_decref(doc);
    int rc = toa_error_status(out->kind);
    if (out->code[0]) {
        return bp_err(err, rc, "The Odds API error %s (HTTP %d): %s", out->code, http_status,
                      out->message);
    }
    return bp_err(err, rc, "The Odds API HTTP %d: %s", http_status, out->message);
}

int toa_quota_parse(const bp_http_header *headers, size_t n, toa_quota *out, bp_error *err)
{
    out->remaining = out->used = out->last = -1;
    for (size_t i = 0; i < n; i++) {
        const bp_http_header *h = &headers[i];
        int64_t *slot = NULL, v;
        if (!h->name) {
            continue;
        }
        if (cj_streq_ci(h->name, "x-requests-remaining")) {
            slot = &out->remaining;
        } else if (cj_streq_ci(h->name, "x-requests-used")) {
            slot = &out->used;
        } else if (cj_streq_ci(h->name, "x-requests-last")) {
            slot = &out->last;
        }
        if (!slot) {
            continue;
        }
        /* the API has been seen to send the remaining credits as "392.0" */
        double d;
        if (h->value && cj_parse_int(h->value, &v) && v >= 0) {
            *slot = v;
        } else if (h->value && cj_parse_decimal(h->value, &d) && d >= 0 && d == floor(d) &&
                   d < 9e15) {
            *slot = (int64_t)d;
        } else {
            return bp_err(err, BP_E_INVAL, "header %s: '%.40s' is not a count", h->name,
                          h->value ? h->value : "");
        }
    }
    return BP_OK;
}

int64_t toa_odds_cost(int n_markets, int n_regions)
{
    return (int64_t)(n_markets > 0 ? n_markets : 1) * (n_regions > 0 ? n_regions : 1);
}

int toa_quota_allows(const toa_quota *q, int64_t cost)
{
    return q->remaining < 0 || q->remaining >= cost;
}

/* ============================================================================================
 * Bodies
 * ========================================================================================== */

/* Load a success body: a top-level array. For an error status, classify the error instead. */
static int open_body(int http_status, const char *body, size_t len, const char *what, json_t **out,
                     toa_api_error *api_err, bp_error *err)
{
    toa_api_error local;
    if (!api_err) {
        api_err = &local;
    }
    memset(api_err, 0, sizeof *api_err);
    api_err->http_status = http_status;
    *out = NULL;
    if (http_status >= 400) {
        return toa_parse_error(http_status, body, len, api_err, err);
    }
    int rc = cj_load(body, len, what, out, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!json_is_array(*out)) {
        rc = bp_err(err, BP_E_INVAL, "(top level): expected an array of events, got %s",
                    cj_type_name(*out));
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int expect_object(const json_t *v, const char *path, bp_error *err)
{
    if (!json_is_object(v)) {
        return bp_err(err, BP_E_INVAL, "%s: expected an object, got %s", path, cj_type_name(v));
    }
    return BP_OK;
}

/* The common head of an event: id, sport, kick-off and teams. */
static int event_head(const json_t *ev, const char *path, const char **id, const char **sport_key,
                      int64_t *commence, const char **home, const char **away, bp_error *err)
{
    int rc;
    if ((rc = expect_object(ev, path, err)) != BP_OK ||
        (rc = cj_string(ev, "id", path, CJ_REQUIRED, id, err)) != BP_OK ||
        (rc = cj_string(ev, "sport_key", path, CJ_REQUIRED, sport_key, err)) != BP_OK ||
        (rc = cj_time(ev, "commence_time", path, CJ_REQUIRED, commence, err)) != BP_OK ||
        (rc = cj_string(ev, "home_team", path, CJ_REQUIRED, home, err)) != BP_OK ||
        (rc = cj_string(ev, "away_team", path, CJ_REQUIRED, away, err)) != BP_OK) {
        return rc;
    }
    if (strcmp(*home, *away) == 0) {
        return bp_err(err, BP_E_INVAL, "%s: home_team and away_team are both \"%s\"", path, *home);
    }
    return BP_OK;
}

/* ---- odds --------------------------------------------------------------------------------------
 */

static int push_quote(toa_odds *o, size_t *cap, const toa_quote *q, bp_error *err)
{
    if (o->n_quotes == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        toa_quote *nq = realloc(o->quotes, ncap * sizeof *nq);
        if (!nq) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        o->quotes = nq;
        *cap = ncap;
    }
    o->quotes[o->n_quotes++] = *q;
    return BP_OK;
}

static int parse_market(toa_odds *o, size_t *cap, const json_t *mk, const char *path,
                        const toa_event *ev, toa_quote q, bp_error *err)
{
    const char *key;
    const json_t *outcomes;
    char opath[CJ_PATH_MAX];
    int rc;
    int64_t upd;
    if ((rc = expect_object(mk, path, err)) != BP_OK ||
        (rc = cj_string(mk, "key", path, CJ_REQUIRED, &key, err)) != BP_OK) {
        return rc;
    }
    if (strcmp(key, "h2h") == 0) {
        q.market = CM_MARKET_1X2;
    } else if (strcmp(key, "totals") == 0) {
        q.market = CM_MARKET_OU;
    } else if (strcmp(key, "spreads") == 0) {
        q.market = CM_MARKET_AH;
    } else {
        o->skipped_markets++;
        return BP_OK;
    }
    rc = cj_time(mk, "last_update", path, CJ_OPTIONAL, &upd, err);
    if (rc == BP_OK) {
        q.last_update_ms = upd;
    } else if (rc != BP_E_NOTFOUND) {
        return rc;
    }
    if ((rc = cj_array(mk, "outcomes", path, CJ_REQUIRED, &outcomes, err)) != BP_OK) {
        return rc;
    }
    cj_path_key(opath, path, "outcomes");
    for (size_t k = 0; k < json_array_size(outcomes); k++) {
        const json_t *oc = json_array_get(outcomes, k);
        const char *name;
        char p[CJ_PATH_MAX], np[CJ_PATH_MAX];
        double point = NAN;
        cj_path_index(p, opath, k);
        cj_path_key(np, p, "name");
        if ((rc = expect_object(oc, p, err)) != BP_OK ||
            (rc = cj_string(oc, "name", p, CJ_REQUIRED, &name, err)) != BP_OK ||
            (rc = cj_number(oc, "price", p, CJ_REQUIRED, &q.price, err)) != BP_OK) {
            return rc;
        }
        if (q.market != CM_MARKET_1X2 &&
            (rc = cj_number(oc, "point", p, CJ_REQUIRED, &point, err)) != BP_OK) {
            return rc;
        }
        q.line = NAN;
        if (q.market == CM_MARKET_OU) {
            if (strcmp(name, "Over") == 0) {
                q.selection = CM_SEL_OVER;
            } else if (strcmp(name, "Under") == 0) {
                q.selection = CM_SEL_UNDER;
            } else {
                return bp_err(err, BP_E_INVAL, "%s: \"%s\" is neither Over nor Under", np, name);
            }
            if (!(point > 0) || point > 30) {
                return bp_err(err, BP_E_INVAL, "%s.point: %g is not a goal line", p, point);
            }
            q.line = point;
        } else {
            /* h2h and spreads: outcomes are named after the teams, never by position */
            if (strcmp(name, ev->home_team) == 0) {
                q.selection = CM_SEL_HOME;
            } else if (strcmp(name, ev->away_team) == 0) {
                q.selection = CM_SEL_AWAY;
            } else if (q.market == CM_MARKET_1X2 && strcmp(name, "Draw") == 0) {
                q.selection = CM_SEL_DRAW;
            } else {
                return bp_err(err, BP_E_INVAL,
                              "%s: \"%s\" is not the home team \"%s\", the away team \"%s\"%s", np,
                              name, ev->home_team, ev->away_team,
                              q.market == CM_MARKET_1X2 ? " or Draw" : "");
            }
            if (q.market == CM_MARKET_AH) {
                if (fabs(point) > 20 || point * 4 != floor(point * 4)) {
                    return bp_err(err, BP_E_INVAL, "%s.point: %g is not a handicap", p, point);
                }
                /* `point` is the named team's handicap; lines are kept from the home side */
                q.line = q.selection == CM_SEL_HOME ? point : -point;
                if (q.line == 0) {
                    q.line = 0;
                }
            }
        }
        if (!(q.price > 1.0) || q.price > 100000.0) {
            if (o->dropped++ == 0) {
                cj_path_key(o->first_dropped, p, "price");
            }
            continue;
        }
        if ((rc = push_quote(o, cap, &q, err)) != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static int parse_event(toa_odds *o, size_t *cap, const json_t *ev, const char *path, toa_event *e,
                       bp_error *err)
{
    const json_t *books;
    char bpath[CJ_PATH_MAX];
    int rc;
    memset(e, 0, sizeof *e);
    e->first_quote = o->n_quotes;
    if ((rc = event_head(ev, path, &e->id, &e->sport_key, &e->commence_ms, &e->home_team,
                         &e->away_team, err)) != BP_OK) {
        return rc;
    }
    rc = cj_string(ev, "sport_title", path, CJ_OPTIONAL, &e->sport_title, err);
    if (rc != BP_OK && rc != BP_E_NOTFOUND) {
        return rc;
    }
    rc = cj_array(ev, "bookmakers", path, CJ_OPTIONAL, &books, err);
    if (rc == BP_E_NOTFOUND) {
        return BP_OK; /* an event no bookmaker prices yet */
    }
    if (rc != BP_OK) {
        return rc;
    }
    cj_path_key(bpath, path, "bookmakers");
    for (size_t b = 0; b < json_array_size(books); b++) {
        const json_t *bk = json_array_get(books, b), *markets;
        toa_quote q;
        char p[CJ_PATH_MAX], mpath[CJ_PATH_MAX];
        memset(&q, 0, sizeof q);
        q.last_update_ms = -1;
        cj_path_index(p, bpath, b);
        if ((rc = expect_object(bk, p, err)) != BP_OK ||
            (rc = cj_string(bk, "key", p, CJ_REQUIRED, &q.bookmaker, err)) != BP_OK) {
            return rc;
        }
        rc = cj_string(bk, "title", p, CJ_OPTIONAL, &q.bookmaker_title, err);
        if (rc == BP_E_NOTFOUND) {
            q.bookmaker_title = q.bookmaker;
        } else if (rc != BP_OK) {
            return rc;
        }
        rc = cj_time(bk, "last_update", p, CJ_OPTIONAL, &q.last_update_ms, err);
        if (rc != BP_OK && rc != BP_E_NOTFOUND) {
            return rc;
        }
        rc = cj_array(bk, "markets", p, CJ_OPTIONAL, &markets, err);
        if (rc == BP_E_NOTFOUND) {
            continue;
        }
        if (rc != BP_OK) {
            return rc;
        }
        cj_path_key(mpath, p, "markets");
        for (size_t m = 0; m < json_array_size(markets); m++) {
            char mp[CJ_PATH_MAX];
            cj_path_index(mp, mpath, m);
            if ((rc = parse_market(o, cap, json_array_get(markets, m), mp, e, q, err)) != BP_OK) {
                return rc;
            }
        }
    }
    e->n_quotes = o->n_quotes - e->first_quote;
    return BP_OK;
}

void toa_odds_free(toa_odds *o)
{
    if (o) {
        free(o->events);
        free(o->quotes);
        json_decref(o->doc);
        free(o);
    }
}

int toa_parse_odds(int http_status, const char *body, size_t len, toa_odds **out,
                   toa_api_error *api_err, bp_error *err)
{
    toa_odds *o = NULL;
    json_t *doc = NULL;
    size_t cap = 0;
    int rc;
    *out = NULL;
    rc = open_body(http_status, body, len, "The Odds API odds", &doc, api_err, err);
    if (rc != BP_OK) {
        return rc;
    }
    o = calloc(1, sizeof *o);
    if (!o || !(o->events = calloc(json_array_size(doc) + 1, sizeof *o->events))) {
        free(o);
        json_decref(doc);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    o->doc = doc;
    for (size_t i = 0; i < json_array_size(doc); i++) {
        char p[CJ_PATH_MAX];
        cj_path_index(p, "", i);
        if ((rc = parse_event(o, &cap, json_array_get(doc, i), p, &o->events[i], err)) != BP_OK) {
            toa_odds_free(o);
            return rc;
        }
        o->n++;
    }
    *out = o;
    return BP_OK;
}

/* ---- scores
 * -------------------------------------------------------------------------------------- */

static int parse_score(const json_t *ev, const char *path, toa_score *s, bp_error *err)
{
    const json_t *scores;
    bool completed = false;
    char spath[CJ_PATH_MAX];
    int rc;
    memset(s, 0, sizeof *s);
    s->home_score = s->away_score = -1;
    if ((rc = event_head(ev, path, &s->id, &s->sport_key, &s->commence_ms, &s->home_team,
                         &s->away_team, err)) != BP_OK ||
        (rc = cj_bool(ev, "completed", path, CJ_REQUIRED, &completed, err)) != BP_OK) {
        return rc;
    }
    s->completed = completed;
    rc = cj_time(ev, "last_update", path, CJ_OPTIONAL, &s->last_update_ms, err);
    if (rc == BP_E_NOTFOUND) {
        s->last_update_ms = -1;
    } else if (rc != BP_OK) {
        return rc;
    }
    rc = cj_array(ev, "scores", path, CJ_OPTIONAL, &scores, err);
    if (rc == BP_E_NOTFOUND) {
        if (completed) {
            return bp_err(err, BP_E_INVAL, "%s.scores: a completed event has no scores", path);
        }
        return BP_OK;
    }
    if (rc != BP_OK) {
        return rc;
    }
    cj_path_key(spath, path, "scores");
    for (size_t k = 0; k < json_array_size(scores); k++) {
        const json_t *sc = json_array_get(scores, k), *v;
        const char *name;
        char p[CJ_PATH_MAX], vp[CJ_PATH_MAX];
        int64_t goals;
        cj_path_index(p, spath, k);
        cj_path_key(vp, p, "score");
        if ((rc = expect_object(sc, p, err)) != BP_OK ||
            (rc = cj_string(sc, "name", p, CJ_REQUIRED, &name, err)) != BP_OK) {
            return rc;
        }
        /* scores are strings ("2"); a number is tolerated */
        v = json_object_get(sc, "score");
        bool ok = false;
        if (json_is_string(v)) {
            ok = cj_parse_int(json_string_value(v), &goals);
        } else if (json_is_integer(v)) {
            goals = (int64_t)json_integer_value(v);
            ok = true;
        }
        if (!ok || goals < 0 || goals >= 1000) {
            if (json_is_string(v)) {
                return bp_err(err, BP_E_INVAL,
                              "%s: expected a goal count such as \"2\", got the string \"%.40s\"",
                              vp, json_string_value(v));
            }
            return bp_err(err, BP_E_INVAL, "%s: expected a goal count such as \"2\", got %s", vp,
                          v ? cj_type_name(v) : "nothing");
        }
        if (strcmp(name, s->home_team) == 0) {
            s->home_score = (int32_t)goals;
        } else if (strcmp(name, s->away_team) == 0) {
            s->away_score = (int32_t)goals;
        } else {
            return bp_err(err, BP_E_INVAL,
                          "%s.name: \"%s\" is neither the home team \"%s\" nor the away team "
                          "\"%s\"",
                          p, name, s->home_team, s->away_team);
        }
    }
    if (json_array_size(scores) > 0 && (s->home_score < 0 || s->away_score < 0)) {
        return bp_err(err, BP_E_INVAL, "%s: the scores do not cover both teams", spath);
    }
    return BP_OK;
}

void toa_scores_free(toa_scores *s)
{
    if (s) {
        free(s->items);
        json_decref(s->doc);
        free(s);
    }
}

int toa_parse_scores(int http_status, const char *body, size_t len, toa_scores **out,
                     toa_api_error *api_err, bp_error *err)
{
    toa_scores *s = NULL;
    json_t *doc = NULL;
    int rc;
    *out = NULL;
    rc = open_body(http_status, body, len, "The Odds API scores", &doc, api_err, err);
    if (rc != BP_OK) {
        return rc;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->items = calloc(json_array_size(doc) + 1, sizeof *s->items))) {
        free(s);
        json_decref(doc);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->doc = doc;
    for (size_t i = 0; i < json_array_size(doc); i++) {
        char p[CJ_PATH_MAX];
        cj_path_index(p, "", i);
        if ((rc = parse_score(json_array_get(doc, i), p, &s->items[i], err)) != BP_OK) {
            toa_scores_free(s);
            return rc;
        }
        s->n++;
    }
    *out = s;
    return BP_OK;
}
