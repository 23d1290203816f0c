/*
 * cjson.h - typed reads from API payloads (jansson) for the collectors' parsers, static library
 * bp_collect_common.
 *
 * Every read names where it looked, so a bad payload gets an error a person can act on:
 *     response[3].bookmakers[1].bets[0].values[2].odd: expected a decimal string, got true
 * The caller keeps the path of the object it holds ("response[3].bookmakers[1]") and passes it
 * with the key; these helpers add ".key" themselves. Paths are built with cj_path_key() and
 * cj_path_index() into caller-owned buffers.
 *
 * Also here: the market and selection codes shared by the collectors (the same numbers as the
 * football-data parser's FD_MARKET_* / FD_SEL_*), the bookmaker-key normaliser, and an ISO-8601
 * reader. Only libc and jansson: plugins link this without core symbols. Reentrant.
 */
#ifndef BP_COLLECT_CJSON_H
#define BP_COLLECT_CJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"

/* Markets and selections of a normalised odds quote (equal to FD_MARKET_* and FD_SEL_*). */
enum {
    CM_MARKET_1X2 = 0, /* full-time result */
    CM_MARKET_OU = 1,  /* total goals over/under `line` */
    CM_MARKET_AH = 2,  /* Asian handicap; `line` is the home side's handicap */
};
enum {
    CM_SEL_HOME = 0,
    CM_SEL_DRAW = 1,
    CM_SEL_AWAY = 2,
    CM_SEL_OVER = 3,
    CM_SEL_UNDER = 4,
};

/* "1x2", "ou", "ah" / "home", "draw", "away", "over", "under"; "?" out of range. */
const char *cj_market_name(int market);
const char *cj_selection_name(int selection);

/* Size for path buffers; longer paths are cut with "...". */
#define CJ_PATH_MAX 160

/* out = "<parent>.<key>" (just "<key>" when parent is empty) / "<parent>[<i>]". */
void cj_path_key(char out[CJ_PATH_MAX], const char *parent, const char *key);
void cj_path_index(char out[CJ_PATH_MAX], const char *parent, size_t i);

/* "an object", "an array", "a string", "an integer", "a number", "true", "false", "null". */
const char *cj_type_name(const json_t *v);

/* Parse a whole body. Empty, malformed or truncated JSON -> BP_E_INVAL with jansson's position
 * ("<what>: not valid JSON at line 1, column 40 (premature end of input)"). *out is a new
 * reference. */
int cj_load(const char *body, size_t len, const char *what, json_t **out, bp_error *err);

/* How a field may be absent. Every getter returns BP_OK when it set *out, BP_E_NOTFOUND when
 * the field is missing or null and that is allowed (*out untouched), BP_E_INVAL (with the path)
 * otherwise. */
#define CJ_REQUIRED 0 /* must be present and not null */
#define CJ_OPTIONAL 1 /* may be missing or null */

int cj_object(const json_t *obj, const char *key, const char *path, int how, const json_t **out,
              bp_error *err);
int cj_array(const json_t *obj, const char *key, const char *path, int how, const json_t **out,
             bp_error *err);
int cj_string(const json_t *obj, const char *key, const char *path, int how, const char **out,
              bp_error *err);
/* An integer; a real with no fraction is accepted. */
int cj_int(const json_t *obj, const char *key, const char *path, int how, int64_t *out,
           bp_error *err);
int cj_int32(const json_t *obj, const char *key, const char *path, int how, int32_t *out,
             bp_error *err);
int cj_bool(const json_t *obj, const char *key, const char *path, int how, bool *out,
            bp_error *err);
/* A JSON number (integer or real), finite. */
int cj_number(const json_t *obj, const char *key, const char *path, int how, double *out,
              bp_error *err);
/* A decimal written as a string ("2.60"); a JSON number is accepted too. */
int cj_decimal(const json_t *obj, const char *key, const char *path, int how, double *out,
               bp_error *err);
/* An instant: an ISO-8601 string, or an integer of Unix seconds. */
int cj_time(const json_t *obj, const char *key, const char *path, int how, int64_t *out_ms,
            bp_error *err);

/* Strict parses of whole strings. */
bool cj_parse_decimal(const char *s, double *out);
bool cj_parse_int(const char *s, int64_t *out);
/* "2024-11-23T20:00:00+00:00", "...Z", "2024-11-23T20:00Z", "2024-11-23" (UTC), fractions. */
bool cj_parse_iso8601(const char *s, int64_t *out_ms);

/* Our bookmaker key for a display name: a table of known books ("Bet365" -> "bet365",
 * "William Hill" -> "williamhill", "1xBet" -> "onexbet"), else the name lower-cased with
 * everything but letters and digits removed, written into out (at least 64 bytes). */
const char *cj_bookmaker_key(const char *name, char *out, size_t out_len);

/* Case-insensitive comparison of ASCII strings. */
bool cj_streq_ci(const char *a, const char *b);

#endif
