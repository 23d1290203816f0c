/*
 * cjson.c - typed payload reads with paths in errors (see cjson.h).
 */
#include "cjson.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cj_market_name(int market)
{
    switch (market) {
    case CM_MARKET_1X2: return "1x2";
    case CM_MARKET_OU: return "ou";
    case CM_MARKET_AH: return "ah";
    default: return "?";
    }
}

const char *cj_selection_name(int selection)
{
    switch (selection) {
    case CM_SEL_HOME: return "home";
    case CM_SEL_DRAW: return "draw";
    case CM_SEL_AWAY: return "away";
    case CM_SEL_OVER: return "over";
    case CM_SEL_UNDER: return "under";
    default: return "?";
    }
}

static void path_fit(char out[CJ_PATH_MAX], int n)
{
    if (n < 0 || n >= CJ_PATH_MAX) {
        memcpy(out + CJ_PATH_MAX - 4, "...", 4);
    }
}

void cj_path_key(char out[CJ_PATH_MAX], const char *parent, const char *key)
{
    int n = parent && *parent ? snprintf(out, CJ_PATH_MAX, "%s.%s", parent, key)
                              : snprintf(out, CJ_PATH_MAX, "%s", key);
    path_fit(out, n);
}

void cj_path_index(char out[CJ_PATH_MAX], const char *parent, size_t i)
{
    path_fit(out, snprintf(out, CJ_PATH_MAX, "%s[%zu]", parent ? parent : "", i));
}

const char *cj_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    default: return "something unknown";
    }
}

int cj_load(const char *body, size_t len, const char *what, json_t **out, bp_error *err)
{
    json_error_t je;
    size_t i = 0;
    *out = NULL;
    while (body && i < len &&
           (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) {
        i++;
    }
    if (!body || i == len) {
        return bp_err(err, BP_E_INVAL, "%s: the body is empty, expected JSON", what);
    }
    *out = json_loadb(body, len, 0, &je);
    if (!*out) {
        return bp_err(err, BP_E_INVAL, "%s: not valid JSON at line %d, column %d (%s)", what,
                      je.line, je.column, je.text);
    }
    return BP_OK;
}

/* Look up obj[key]; BP_OK with *out set, BP_E_NOTFOUND (missing/null and allowed), BP_E_INVAL. */
static int lookup(const json_t *obj, const char *key, const char *path, int how, const json_t **out,
                  bp_error *err)
{
    char p[CJ_PATH_MAX];
    const json_t *v = NULL;
    if (!json_is_object(obj)) {
        return bp_err(err, BP_E_INVAL, "%s: expected an object, got %s",
                      path && *path ? path : "(top level)", obj ? cj_type_name(obj) : "nothing");
    }
    v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (how == CJ_OPTIONAL) {
            return BP_E_NOTFOUND;
        }
        cj_path_key(p, path, key);
        return bp_err(err, BP_E_INVAL, "%s: %s", p, v ? "is null but required" : "is missing");
    }
    *out = v;
    return BP_OK;
}

static int wrong(const char *path, const char *key, const char *expected, const json_t *got,
                 bp_error *err)
{
    char p[CJ_PATH_MAX];
    cj_path_key(p, path, key);
    if (json_is_string(got)) {
        return bp_err(err, BP_E_INVAL, "%s: expected %s, got the string \"%.40s\"", p, expected,
                      json_string_value(got));
    }
    return bp_err(err, BP_E_INVAL, "%s: expected %s, got %s", p, expected, cj_type_name(got));
}

int cj_object(const json_t *obj, const char *key, const char *path, int how, const json_t **out,
              bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!json_is_object(v)) {
        return wrong(path, key, "an object", v, err);
    }
    *out = v;
    return BP_OK;
}

int cj_array(const json_t *obj, const char *key, const char *path, int how, const json_t **out,
             bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!json_is_array(v)) {
        return wrong(path, key, "an array", v, err);
    }
    *out = v;
    return BP_OK;
}

int cj_string(const json_t *obj, const char *key, const char *path, int how, const char **out,
              bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!json_is_string(v)) {
        return wrong(path, key, "a string", v, err);
    }
    *out = json_string_value(v);
    return BP_OK;
}

int cj_int(const json_t *obj, const char *key, const char *path, int how, int64_t *out,
           bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return BP_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9e15) {
            *out = (int64_t)d;
            return BP_OK;
        }
    }
    return wrong(path, key, "an integer", v, err);
}

int cj_int32(const json_t *obj, const char *key, const char *path, int how, int32_t *out,
             bp_error *err)
{
    int64_t v = 0;
    int rc = cj_int(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        char p[CJ_PATH_MAX];
        cj_path_key(p, path, key);
        return bp_err(err, BP_E_INVAL, "%s: %lld is out of range", p, (long long)v);
    }
    *out = (int32_t)v;
    return BP_OK;
}

int cj_bool(const json_t *obj, const char *key, const char *path, int how, bool *out, bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!json_is_boolean(v)) {
        return wrong(path, key, "true or false", v, err);
    }
    *out = json_is_true(v);
    return BP_OK;
}

int cj_number(const json_t *obj, const char *key, const char *path, int how, double *out,
              bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        return wrong(path, key, "a number", v, err);
    }
    *out = json_number_value(v);
    return BP_OK;
}

int cj_decimal(const json_t *obj, const char *key, const char *path, int how, double *out,
               bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (json_is_number(v) && isfinite(json_number_value(v))) {
        *out = json_number_value(v);
        return BP_OK;
    }
    if (json_is_string(v) && cj_parse_decimal(json_string_value(v), out)) {
        return BP_OK;
    }
    return wrong(path, key, "a decimal string", v, err);
}

int cj_time(const json_t *obj, const char *key, const char *path, int how, int64_t *out_ms,
            bp_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, key, path, how, &v, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s >= 0 && s < INT64_C(100000000000)) {
            *out_ms = (int64_t)s * 1000;
            return BP_OK;
        }
    }
    if (json_is_string(v) && cj_parse_iso8601(json_string_value(v), out_ms)) {
        return BP_OK;
    }
    return wrong(path, key, "an ISO-8601 time or Unix seconds", v, err);
}

/* ---- strict string parsers ------------------------------------------------------------------ */

bool cj_parse_decimal(const char *s, double *out)
{
    char *end = NULL;
    double v;
    const char *p = s;
    if (!s) {
        return false;
    }
    /* digits, one optional point, optional sign: no hex, no inf/nan, no exponent surprises */
    if (*p == '+' || *p == '-') {
        p++;
    }
    bool digit = false, point = false;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            digit = true;
        } else if (*p == '.' && !point) {
            point = true;
        } else {
            return false;
        }
    }
    if (!digit) {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

bool cj_parse_int(const char *s, int64_t *out)
{
    int64_t v = 0;
    bool neg = false;
    const char *p = s;
    if (!s) {
        return false;
    }
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (!*p) {
        return false;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (*p - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*pp)[i];
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    *pp += n;
    *out = v;
    return true;
}

bool cj_parse_iso8601(const char *s, int64_t *out_ms)
{
    static const int dim[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, hh = 0, mi = 0, ss = 0, ms = 0, off = 0;
    if (!s || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > dim[mo - 1] ||
        (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
        return false;
    }
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &hh) || *p++ != ':' || !digits(&p, 2, &mi)) {
            return false;
        }
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &ss)) {
                return false;
            }
            if (*p == '.') {
                int scale = 100;
                p++;
                if (*p < '0' || *p > '9') {
                    return false;
                }
                for (; *p >= '0' && *p <= '9'; p++) {
                    ms += (*p - '0') * scale;
                    scale /= 10;
                }
            }
        }
        if (hh > 23 || mi > 59 || ss > 60) {
            return false;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!digits(&p, 2, &oh)) {
                return false;
            }
            if (*p == ':') {
                p++;
            }
            if (*p && !digits(&p, 2, &om)) {
                return false;
            }
            if (oh > 23 || om > 59) {
                return false;
            }
            off = sign * (oh * 60 + om);
        }
    }
    if (*p != '\0') {
        return false;
    }
    *out_ms = (days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off * 60) * 1000 + ms;
    return true;
}

/* ---- bookmakers ----------------------------------------------------------------------------- */

bool cj_streq_ci(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (x != y) {
            return false;
        }
    }
    return *a == *b;
}

/* Display names seen in API-Football and elsewhere, mapped to the keys the football-data parser
 * uses, so one bookmaker has one key whatever the source. */
static const struct {
    const char *name;
    const char *key;
} known_books[] = {
    {"Bet365", "bet365"},
    {"Pinnacle", "pinnacle"},
    {"Bwin", "bwin"},
    {"William Hill", "williamhill"},
    {"1xBet", "onexbet"},
    {"Betfair", "betfair_ex_uk"},
    {"Ladbrokes", "ladbrokes_uk"},
    {"Coral", "coral"},
    {"Betfred", "betfred"},
    {"BetVictor", "betvictor"},
    {"Interwetten", "interwetten"},
    {"Unibet", "unibet"},
    {"Marathonbet", "marathonbet"},
    {"Betway", "betway"},
    {"10Bet", "tenbet"},
    {"888Sport", "sport888"},
    {"Betano", "betano"},
    {"Betsson", "betsson"},
    {"NordicBet", "nordicbet"},
    {"SBO", "sbo"},
    {"Dafabet", "dafabet"},
    {"Sportingbet", "sportingbet"},
};

const char *cj_bookmaker_key(const char *name, char *out, size_t out_len)
{
    size_t o = 0;
    if (!out || out_len == 0) {
        return "";
    }
    for (size_t i = 0; name && i < sizeof known_books / sizeof known_books[0]; i++) {
        if (cj_streq_ci(name, known_books[i].name)) {
            snprintf(out, out_len, "%s", known_books[i].key);
            return out;
        }
    }
    for (const char *p = name ? name : ""; *p && o + 1 < out_len; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') {
            out[o++] = (char)(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}
