/*
 * toaparse.h - The Odds API v4 payload parsers (static library bp_toaparse): pure functions from
 * a response (HTTP status, headers, body) to normalised structs, for the the_odds_api collector.
 *
 * Bodies are bare JSON arrays (no envelope). Errors come with a real HTTP status and a body
 * {"message", "error_code", "details_url"}; they are told apart by error_code, never by message:
 *   401 MISSING_KEY / INVALID_KEY / DEACTIVATED_KEY -> BP_E_CONFIG (fix the key, never retry)
 *   401 OUT_OF_USAGE_CREDITS                         -> BP_E_LIMIT (monthly credits used up)
 *   429 EXCEEDED_FREQ_LIMIT                          -> BP_E_RETRY (retry in a few seconds)
 *   422 MISSING_REGION, INVALID_MARKET, ...          -> BP_E_INVAL (the request is wrong)
 *   404 UNKNOWN_SPORT, EVENT_NOT_FOUND               -> BP_E_NOTFOUND
 *   anything else (5xx, unknown codes)               -> BP_E_UNAVAILABLE
 * A malformed 200 body is BP_E_INVAL with the payload path ("[1].bookmakers[0].markets[0]
 * .outcomes[2].price: expected a number, got a string").
 *
 * Results own the parsed document; their strings are borrowed from it until *_free. Reentrant.
 */
#ifndef BP_TOAPARSE_H
#define BP_TOAPARSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/http.h"
#include "betpipe/status.h"
#include "cjson.h"

/* ---- errors and quota ------------------------------------------------------------------------ */

enum {
    TOA_OK = 0,
    TOA_ERR_KEY,       /* MISSING_KEY, INVALID_KEY, DEACTIVATED_KEY (401) */
    TOA_ERR_QUOTA,     /* OUT_OF_USAGE_CREDITS (401) */
    TOA_ERR_FREQUENCY, /* EXCEEDED_FREQ_LIMIT (429) */
    TOA_ERR_REQUEST,   /* the 422 family: MISSING_REGION, INVALID_MARKET, ... */
    TOA_ERR_NOT_FOUND, /* UNKNOWN_SPORT, EVENT_NOT_FOUND (404) */
    TOA_ERR_HTTP,      /* any other failure status */
};

typedef struct toa_api_error {
    int32_t kind; /* TOA_* */
    int32_t http_status;
    char code[64]; /* error_code as sent, "" when none */
    char message[384];
} toa_api_error;

/* "ok", "key", "quota", "frequency", "request", "not_found", "http". */
const char *toa_error_kind_name(int kind);
/* The BP_E_* status of a kind (see the header comment). */
int toa_error_status(int kind);
/* Classify an error response (status >= 400). Returns toa_error_status(out->kind) and fills err
 * with "The Odds API error INVALID_KEY (HTTP 401): API key is not valid...". */
int toa_parse_error(int http_status, const char *body, size_t len, toa_api_error *out,
                    bp_error *err);

/* Usage-credit headers; -1 when absent. */
typedef struct toa_quota {
    int64_t remaining; /* x-requests-remaining: credits left until the monthly reset */
    int64_t used;      /* x-requests-used */
    int64_t last;      /* x-requests-last: what the last call cost */
} toa_quota;

int toa_quota_parse(const bp_http_header *headers, size_t n, toa_quota *out, bp_error *err);
/* Credits an /odds call costs: markets x regions (each 10 bookmakers count as a region). */
int64_t toa_odds_cost(int n_markets, int n_regions);
/* Non-zero when a call costing `cost` fits in what is left (an unknown quota allows it). */
int toa_quota_allows(const toa_quota *q, int64_t cost);

/* ---- /v4/sports/{sport}/odds ------------------------------------------------------------------
 */

typedef struct toa_quote {
    const char *bookmaker;       /* key as sent: "williamhill", "pinnacle" */
    const char *bookmaker_title; /* "William Hill" */
    int64_t last_update_ms;      /* the market's last_update (else the bookmaker's), -1 */
    int32_t market;              /* CM_MARKET_1X2 (h2h), CM_MARKET_OU (totals), CM_MARKET_AH */
    int32_t selection;           /* CM_SEL_* */
    double line;                 /* NAN for h2h; goals for totals; home handicap for spreads */
    double price;                /* decimal */
} toa_quote;

typedef struct toa_event {
    const char *id; /* 32 hex chars, shared with /scores */
    const char *sport_key;
    const char *sport_title;
    int64_t commence_ms;
    const char *home_team;
    const char *away_team;
    size_t first_quote; /* quotes[first_quote .. first_quote + n_quotes) */
    size_t n_quotes;
} toa_event;

typedef struct toa_odds {
    toa_event *events;
    size_t n;
    toa_quote *quotes;
    size_t n_quotes;
    size_t skipped_markets;          /* markets we do not store (h2h_lay, outrights, ...) */
    size_t dropped;                  /* prices <= 1.0 left out */
    char first_dropped[CJ_PATH_MAX]; /* the path of the first one */
    json_t *doc;
} toa_odds;

/* Parse an /odds response. For http_status >= 400 this is toa_parse_error. h2h outcomes are
 * matched to the teams by name ("Draw" for the draw); totals need "Over"/"Under" and a point;
 * spreads (Asian handicap) a team name and a point. Bookmakers or markets missing from an event
 * are fine. Prices must be numbers; one <= 1.0 is left out and counted. */
int toa_parse_odds(int http_status, const char *body, size_t len, toa_odds **out,
                   toa_api_error *api_err, bp_error *err);
void toa_odds_free(toa_odds *o);

/* ---- /v4/sports/{sport}/scores ----------------------------------------------------------------
 */

typedef struct toa_score {
    const char *id;
    const char *sport_key;
    int64_t commence_ms;
    int32_t completed;  /* 1 when the match is over */
    int32_t home_score; /* -1 before kick-off (scores null) */
    int32_t away_score;
    int32_t reserved0;
    const char *home_team;
    const char *away_team;
    int64_t last_update_ms; /* -1 when null */
} toa_score;

typedef struct toa_scores {
    toa_score *items;
    size_t n;
    json_t *doc;
} toa_scores;

/* Parse a /scores response: scores are strings ("2"), null before kick-off. */
int toa_parse_scores(int http_status, const char *body, size_t len, toa_scores **out,
                     toa_api_error *api_err, bp_error *err);
void toa_scores_free(toa_scores *s);

#endif
