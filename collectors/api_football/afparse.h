/*
 * afparse.h - API-Football v3 payload parsers (static library bp_afparse): pure functions from a
 * response (HTTP status, headers, body) to normalised structs, for the api_football collector.
 *
 * The envelope. Every endpoint answers {"get", "parameters", "errors", "results", "paging",
 * "response"}, and failures usually come back as HTTP 200 with `errors` filled (an object such
 * as {"token": "..."}, while success is an empty array). The RapidAPI gateway answers with its own
 * {"message": "..."}. Each parse function first classifies the body (af_api_error) and returns:
 *   BP_OK             the payload was parsed;
 *   BP_E_CONFIG       the key is missing or wrong (token, RapidAPI 401/403): never retry;
 *   BP_E_LIMIT        the daily quota is used up (errors.requests, RapidAPI quota): stop until the
 *                     quota resets (af_quota_pause_ms);
 *   BP_E_RETRY        the per-minute limit (errors.rateLimit, HTTP 429): wait a minute;
 *   BP_E_INVAL        the request was refused (errors.plan, a bad parameter), or the payload is
 *                     malformed - err names the payload path, e.g.
 *                     "response[3].bookmakers[1].bets[0].values[2].odd: expected a decimal
 *                     string, got true";
 *   BP_E_UNAVAILABLE  an HTTP error without an API error body (5xx, 499).
 * af_api_error says which case it was and carries the API's own message.
 *
 * Results own a copy of the parsed document; every string in them is borrowed from it and lives
 * until the matching *_free. Reentrant; nothing global but constant tables.
 */
#ifndef BP_AFPARSE_H
#define BP_AFPARSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/http.h"
#include "betpipe/status.h"
#include "cjson.h"

/* ---- our leagues ----------------------------------------------------------------------------- */

/* One league as the three sources name it. */
typedef struct af_league {
    int64_t af_id;         /* API-Football league id */
    const char *div;       /* football-data division ("E0") */
    const char *sport_key; /* The Odds API sport key ("soccer_epl") */
    const char *name;
    const char *country;
} af_league;

/* The five leagues betpipe knows: 39 E0, 140 SP1, 78 D1, 135 I1, 61 F1. NULL when unknown. */
const af_league *af_league_by_id(int64_t af_id);
const af_league *af_league_by_div(const char *div);
const af_league *af_league_by_sport_key(const char *sport_key);
/* The i-th league (i < af_league_count()), for listing. */
size_t af_league_count(void);
const af_league *af_league_at(size_t i);

/* ---- errors and quota ------------------------------------------------------------------------ */

enum {
    AF_OK = 0,
    AF_ERR_TOKEN,         /* errors.token: key missing or invalid */
    AF_ERR_DAILY_QUOTA,   /* errors.requests: daily quota used up */
    AF_ERR_RATE_LIMIT,    /* errors.rateLimit or HTTP 429: per-minute limit */
    AF_ERR_PLAN,          /* errors.plan: the plan does not cover this season/date */
    AF_ERR_PARAMETER,     /* errors.<parameter>: a bad request parameter */
    AF_ERR_GATEWAY_KEY,   /* RapidAPI {"message"} with 401/403 */
    AF_ERR_GATEWAY_QUOTA, /* RapidAPI {"message"} about the quota */
    AF_ERR_HTTP,          /* an HTTP error status without an API error body */
};

typedef struct af_api_error {
    int32_t kind; /* AF_* */
    int32_t http_status;
    char field[64];    /* the key of `errors` ("token", "plan", "date"), or "" */
    char message[384]; /* the API's message */
} af_api_error;

/* "ok", "token", "daily_quota", "rate_limit", "plan", "parameter", "gateway_key",
 * "gateway_quota", "http". */
const char *af_error_kind_name(int kind);
/* The BP_E_* status a kind maps to (see the header comment); BP_OK for AF_OK. */
int af_error_status(int kind);

/* Quota headers; -1 when absent. */
typedef struct af_quota {
    int64_t day_limit;        /* x-ratelimit-requests-limit */
    int64_t day_remaining;    /* x-ratelimit-requests-remaining */
    int64_t minute_limit;     /* X-RateLimit-Limit */
    int64_t minute_remaining; /* X-RateLimit-Remaining */
} af_quota;

/* Read the quota headers (names compared case-insensitively). BP_E_INVAL names a header whose
 * value is not a non-negative integer. */
int af_quota_parse(const bp_http_header *headers, size_t n, af_quota *out, bp_error *err);
/* How long the collector should pause before its next call, in ms: until the next 00:00 UTC when
 * the daily quota is used up, 60 s when this minute's is, else 0. `reserve` keeps that many daily
 * requests back (pause when day_remaining <= reserve). */
int64_t af_quota_pause_ms(const af_quota *q, int64_t now_ms, int64_t reserve);

/* ---- paging (every endpoint) ------------------------------------------------------------------
 */

typedef struct af_page {
    int32_t current; /* paging.current, 1 when absent */
    int32_t total;   /* paging.total, 1 when absent */
    int32_t results; /* the `results` count */
    int32_t reserved0;
} af_page;

/* ---- /fixtures ---------------------------------------------------------------------------------
 */

enum {
    AF_STATE_UNKNOWN = 0,
    AF_STATE_SCHEDULED, /* TBD, NS */
    AF_STATE_LIVE,      /* 1H, HT, 2H, ET, BT, P, SUSP, INT, LIVE */
    AF_STATE_FINISHED,  /* FT, AET, PEN */
    AF_STATE_POSTPONED, /* PST */
    AF_STATE_CANCELLED, /* CANC */
    AF_STATE_ABANDONED, /* ABD */
    AF_STATE_AWARDED,   /* AWD, WO (technical result, not played) */
};
const char *af_state_name(int state);
/* Classify a status.short code. */
int af_state_of(const char *status_short);

typedef struct af_fixture {
    int64_t id;
    int64_t kickoff_ms;       /* fixture.timestamp (or fixture.date), UTC */
    const char *referee;      /* NULL when null */
    const char *status_short; /* "FT", "NS", ... */
    const char *status_long;
    int32_t state;   /* AF_STATE_* */
    int32_t elapsed; /* minutes played, -1 when null */
    int64_t league_id;
    int32_t season; /* starting year */
    int32_t reserved0;
    const char *round;
    int64_t venue_id;       /* -1 when null */
    const char *venue_name; /* NULL when null */
    const char *venue_city;
    int64_t home_id, away_id;
    const char *home_name, *away_name;
    /* goals and scores: -1 when null */
    int32_t goals_home, goals_away;
    int32_t ht_home, ht_away;
    int32_t ft_home, ft_away;
    int32_t et_home, et_away;
    int32_t pen_home, pen_away;
} af_fixture;

typedef struct af_fixtures {
    af_page page;
    af_fixture *items;
    size_t n;
    json_t *doc; /* owns the strings */
} af_fixtures;

/* Parse a /fixtures response. On BP_OK *out is new (free with af_fixtures_free); api_err (may be
 * NULL) is filled in every case. */
int af_parse_fixtures(int http_status, const char *body, size_t len, af_fixtures **out,
                      af_api_error *api_err, bp_error *err);
void af_fixtures_free(af_fixtures *f);

/* ---- /odds -------------------------------------------------------------------------------------
 */

typedef struct af_quote {
    int64_t bookmaker_id;
    const char *bookmaker_name; /* as the API writes it: "Bet365" */
    char bookmaker[48];         /* our key: "bet365" (cj_bookmaker_key) */
    int64_t bet_id;
    const char *bet_name; /* "Match Winner" */
    int32_t market;       /* CM_MARKET_* */
    int32_t selection;    /* CM_SEL_* */
    double line;          /* NAN for 1X2; goals for O/U; the home handicap for AH */
    double price;         /* decimal, > 1 */
} af_quote;

typedef struct af_odds_fixture {
    int64_t fixture_id;
    int64_t league_id;
    int32_t season;
    int32_t reserved0;
    int64_t kickoff_ms;
    int64_t update_ms;  /* when the bookmakers' odds were last updated */
    size_t first_quote; /* quotes[first_quote .. first_quote + n_quotes) */
    size_t n_quotes;
} af_odds_fixture;

typedef struct af_odds {
    af_page page; /* more pages while page.current < page.total */
    af_odds_fixture *items;
    size_t n;
    af_quote *quotes;
    size_t n_quotes;
    size_t skipped_bets;             /* bets of markets we do not store (Both Teams Score, ...) */
    size_t dropped;                  /* prices <= 1.0 left out */
    char first_dropped[CJ_PATH_MAX]; /* the path of the first one, for the report */
    json_t *doc;
} af_odds;

/* Parse an /odds page. Match Winner (1X2), Goals Over/Under and Asian Handicap become quotes,
 * other bets are counted in skipped_bets. A price is a decimal string (a number is tolerated);
 * one <= 1.0 is left out and counted in `dropped`. */
int af_parse_odds(int http_status, const char *body, size_t len, af_odds **out,
                  af_api_error *api_err, bp_error *err);
void af_odds_free(af_odds *o);

/* ---- /teams/statistics ----------------------------------------------------------------------- */

/* Index of the home / away / total triples below. */
enum { AF_HOME = 0, AF_AWAY = 1, AF_TOTAL = 2 };

typedef struct af_team_stats {
    int64_t league_id;
    int32_t season;
    int32_t reserved0;
    int64_t team_id;
    const char *team_name;
    const char *form; /* "WDLW...", NULL when null */
    int32_t played[3], wins[3], draws[3], loses[3];
    int32_t goals_for[3], goals_against[3];
    double goals_for_avg[3], goals_against_avg[3]; /* NAN when absent */
    int32_t clean_sheet[3], failed_to_score[3];    /* -1 when absent */
    json_t *doc;
} af_team_stats;

int af_parse_team_stats(int http_status, const char *body, size_t len, af_team_stats **out,
                        af_api_error *api_err, bp_error *err);
void af_team_stats_free(af_team_stats *s);

/* ---- /standings --------------------------------------------------------------------------------
 */

typedef struct af_standing {
    int32_t group_index; /* which table of response[0].league.standings */
    int32_t rank;
    int64_t team_id;
    const char *team_name;
    int32_t points;
    int32_t goals_diff;
    const char *group;       /* "Premier League", "Group A" */
    const char *form;        /* NULL when null */
    const char *description; /* "Promotion - Champions League", NULL when null */
    int32_t played[3], win[3], draw[3], lose[3], goals_for[3], goals_against[3]; /* AF_HOME.. */
    int64_t update_ms; /* -1 when absent */
} af_standing;

typedef struct af_standings {
    int64_t league_id;
    int32_t season;
    int32_t n_groups;
    af_standing *rows;
    size_t n;
    json_t *doc;
} af_standings;

int af_parse_standings(int http_status, const char *body, size_t len, af_standings **out,
                       af_api_error *api_err, bp_error *err);
void af_standings_free(af_standings *s);

#endif
