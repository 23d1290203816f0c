/*
 * fdcsv.c - football-data.co.uk CSV parser (see fdcsv.h for the format and the decisions).
 *
 * The parse runs in three steps. The header is split and every column is classified once into a
 * small plan (a fixed field, a statistic, an odds quote with its bookmaker, market, selection
 * and closing flag, a handicap line, or ignored). Then each record is split into NUL-terminated
 * fields in a reusable scratch buffer, and the plan turns the fields into one fd_match. Nothing
 * is allocated per row once the buffers have grown to the widest row, which is what makes a
 * season (380 rows x 130 columns) parse in about a millisecond.
 */
#include "fdcsv.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FD_DEFAULT_MAX_FILE (64u * 1024u * 1024u)
#define FD_REASON_MAX       320

/* ============================================================================================
 * Tables
 * ========================================================================================== */

/* Bookmaker prefixes of the odds columns (football-data notes.txt) and our canonical keys. Keys
 * follow The Odds API's bookmaker keys where that API knows the bookmaker, so the same book
 * lines up across sources; the aggregates get keys of their own. "P" is Pinnacle in the O/U and
 * AH blocks ("P>2.5", "PAHH"), "PS" in the 1X2 block. */
typedef struct fd_book {
    const char *prefix;
    const char *key;
} fd_book;

static const fd_book fd_books[] = {
    {"1XB", "onexbet"},       {"B365", "bet365"},       {"BF", "betfair_sb_uk"},
    {"BFD", "betfred"},       {"BFE", "betfair_ex_uk"}, {"BMGM", "betmgm"},
    {"BS", "bluesquare"},     {"BV", "betvictor"},      {"BW", "bwin"},
    {"CL", "coral"},          {"GB", "gamebookers"},    {"IW", "interwetten"},
    {"LB", "ladbrokes_uk"},   {"P", "pinnacle"},        {"PS", "pinnacle"},
    {"SB", "sportingbet"},    {"SJ", "stanjames"},      {"SO", "sportingodds"},
    {"SY", "stanleybet"},     {"VC", "vcbet"},          {"WH", "williamhill"},
    {"Max", "market_max"},    {"Avg", "market_avg"},    {"BbMx", "betbrain_max"},
    {"BbAv", "betbrain_avg"},
};

enum col_kind {
    COL_IGNORE = 0,
    COL_DIV,
    COL_DATE,
    COL_TIME,
    COL_HOME,
    COL_AWAY,
    COL_FTHG,
    COL_FTAG,
    COL_FTR,
    COL_HTHG,
    COL_HTAG,
    COL_HTR,
    COL_REFEREE,
    COL_STAT,
    COL_ODDS,
    COL_LINE, /* an Asian-handicap line column */
};

/* Which handicap line a COL_LINE column holds. */
enum line_kind {
    LINE_MARKET_PRE = 0, /* AHh */
    LINE_MARKET_CLOSE,   /* AHCh */
    LINE_BETBRAIN,       /* BbAHh */
    LINE_BOOK,           /* <book>AH / <book>CAH (legacy per-book lines) */
};

typedef struct fd_fixed_col {
    const char *name;
    uint8_t kind;
    int8_t stat;
} fd_fixed_col;

static const fd_fixed_col fd_fixed_cols[] = {
    {"Div", COL_DIV, -1},
    {"Date", COL_DATE, -1},
    {"Time", COL_TIME, -1},
    {"HomeTeam", COL_HOME, -1},
    {"AwayTeam", COL_AWAY, -1},
    {"FTHG", COL_FTHG, -1},
    {"FTAG", COL_FTAG, -1},
    {"FTR", COL_FTR, -1},
    {"HG", COL_FTHG, -1}, /* older spelling of FTHG */
    {"AG", COL_FTAG, -1},
    {"Res", COL_FTR, -1},
    {"HTHG", COL_HTHG, -1},
    {"HTAG", COL_HTAG, -1},
    {"HTR", COL_HTR, -1},
    {"Referee", COL_REFEREE, -1},
    {"HS", COL_STAT, FD_STAT_HS},
    {"AS", COL_STAT, FD_STAT_AS},
    {"HST", COL_STAT, FD_STAT_HST},
    {"AST", COL_STAT, FD_STAT_AST},
    {"HHW", COL_STAT, FD_STAT_HHW},
    {"AHW", COL_STAT, FD_STAT_AHW},
    {"HC", COL_STAT, FD_STAT_HC},
    {"AC", COL_STAT, FD_STAT_AC},
    {"HF", COL_STAT, FD_STAT_HF},
    {"AF", COL_STAT, FD_STAT_AF},
    {"HFKC", COL_STAT, FD_STAT_HFKC},
    {"AFKC", COL_STAT, FD_STAT_AFKC},
    {"HO", COL_STAT, FD_STAT_HO},
    {"AO", COL_STAT, FD_STAT_AO},
    {"HY", COL_STAT, FD_STAT_HY},
    {"AY", COL_STAT, FD_STAT_AY},
    {"HR", COL_STAT, FD_STAT_HR},
    {"AR", COL_STAT, FD_STAT_AR},
    {"HBP", COL_STAT, FD_STAT_HBP},
    {"ABP", COL_STAT, FD_STAT_ABP},
    {"Attendance", COL_STAT, FD_STAT_ATTENDANCE},
    {"AHh", COL_LINE, LINE_MARKET_PRE},
    {"AHCh", COL_LINE, LINE_MARKET_CLOSE},
    {"BbAHh", COL_LINE, LINE_BETBRAIN},
};

static const char *const fd_stat_names[FD_STAT_COUNT] = {
    "HS",   "AS", "HST", "AST", "HHW", "AHW", "HC", "AC",  "HF",  "AF",         "HFKC",
    "AFKC", "HO", "AO",  "HY",  "AY",  "HR",  "AR", "HBP", "ABP", "Attendance",
};

/* The plan for one column. */
typedef struct fd_column {
    const char *name; /* into parser.header */
    uint8_t kind;     /* enum col_kind */
    uint8_t market;
    uint8_t selection;
    uint8_t closing;
    int16_t stat;     /* COL_STAT: FD_STAT_*; COL_LINE: enum line_kind */
    int16_t book;     /* COL_ODDS, COL_LINE/LINE_BOOK: index into fd_books */
    int32_t line_col; /* COL_ODDS/AH: index of the column holding the line, -1 when none */
    double ou_line;   /* COL_ODDS/OU: the goal line from the name (2.5) */
} fd_column;

/* ============================================================================================
 * Small pure helpers
 * ========================================================================================== */

const char *fdcsv_market_name(int market)
{
    switch (market) {
    case FD_MARKET_1X2: return "1x2";
    case FD_MARKET_OU: return "ou";
    case FD_MARKET_AH: return "ah";
    default: return "?";
    }
}

const char *fdcsv_selection_name(int selection)
{
    switch (selection) {
    case FD_SEL_HOME: return "home";
    case FD_SEL_DRAW: return "draw";
    case FD_SEL_AWAY: return "away";
    case FD_SEL_OVER: return "over";
    case FD_SEL_UNDER: return "under";
    default: return "?";
    }
}

const char *fdcsv_stat_name(int stat)
{
    return stat >= 0 && stat < FD_STAT_COUNT ? fd_stat_names[stat] : "?";
}

const char *fdcsv_bookmaker_key(const char *prefix)
{
    for (size_t i = 0; prefix && i < sizeof fd_books / sizeof fd_books[0]; i++) {
        if (strcmp(prefix, fd_books[i].prefix) == 0) {
            return fd_books[i].key;
        }
    }
    return NULL;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The last Sunday of `month` (March or October: both have 31 days), as days since the epoch. */
static int64_t last_sunday(int64_t year, int64_t month)
{
    int64_t d31 = days_from_civil(year, month, 31);
    int64_t wd = ((d31 % 7) + 7 + 4) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
    return d31 - wd;
}

int64_t fdcsv_uk_local_to_utc_ms(int32_t year, int32_t month, int32_t day, int32_t hour,
                                 int32_t minute)
{
    int64_t local_s = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60;
    /* BST runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
     * October (the EU rule the UK has followed since 1996). A local time is in BST when, read
     * as BST, it falls inside that window; the skipped and repeated hours at the changes
     * resolve to the earlier reading, which no football match ever needs. */
    int64_t start = last_sunday(year, 3) * 86400 + 3600;
    int64_t end = last_sunday(year, 10) * 86400 + 3600;
    int64_t as_bst = local_s - 3600;
    int64_t utc = (as_bst >= start && as_bst < end) ? as_bst : local_s;
    return utc * 1000;
}

static bool is_leap(int32_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int32_t days_in_month(int32_t y, int32_t m)
{
    static const int32_t dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* 1 or 2 digits (n_max) then a terminator; returns the number of digits read, 0 when none. */
static int read_digits(const char **pp, int n_max, int32_t *out)
{
    const char *p = *pp;
    int32_t v = 0;
    int n = 0;
    while (n < n_max && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        p++;
        n++;
    }
    *pp = p;
    *out = v;
    return n;
}

/* "dd/mm/yy" or "dd/mm/yyyy" (one-digit day and month tolerated). Sets *digits to 2 or 4. */
static bool parse_date(const char *s, int32_t *y, int32_t *m, int32_t *d, int32_t *digits)
{
    const char *p = s;
    int32_t yy;
    int n;
    if (read_digits(&p, 2, d) == 0 || *p++ != '/' || read_digits(&p, 2, m) == 0 || *p++ != '/') {
        return false;
    }
    n = read_digits(&p, 4, &yy);
    if (*p != '\0' || (n != 2 && n != 4)) {
        return false;
    }
    if (n == 2) {
        yy += yy < 50 ? 2000 : 1900;
    }
    if (*m < 1 || *m > 12 || *d < 1 || *d > days_in_month(yy, *m) || yy < 1900) {
        return false;
    }
    *y = yy;
    *digits = n;
    return true;
}

/* "HH:MM" (or "H:MM"), optionally ":SS" which is ignored. */
static bool parse_time(const char *s, int32_t *h, int32_t *mi)
{
    const char *p = s;
    int32_t sec;
    if (read_digits(&p, 2, h) == 0 || *p++ != ':' || read_digits(&p, 2, mi) != 2) {
        return false;
    }
    if (*p == ':') {
        p++;
        if (read_digits(&p, 2, &sec) != 2 || sec > 59) {
            return false;
        }
    }
    return *p == '\0' && *h <= 23 && *mi <= 59;
}

/* Exact powers of ten: dividing an integer mantissa below 2^53 by one of these is a single
 * correctly rounded operation, so "1.91" becomes exactly the double strtod would give. */
static const double fd_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A plain decimal "[+-]digits[.digits]" (or anything strtod reads fully, e.g. "1e3"), finite.
 * The fast path covers every number football-data writes; the rest goes to strtod. */
static bool parse_decimal(const char *s, double *out)
{
    const char *p = s;
    bool neg = false, any = false;
    uint64_t mant = 0;
    int sig = 0, frac = 0;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    while (*p >= '0' && *p <= '9') {
        any = true;
        if ((mant != 0 || *p != '0') && ++sig > 15) {
            goto slow;
        }
        mant = mant * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            any = true;
            if ((mant != 0 || *p != '0') && ++sig > 15) {
                goto slow;
            }
            mant = mant * 10 + (uint64_t)(*p - '0');
            frac++;
            p++;
        }
    }
    if (*p == 'e' || *p == 'E') {
        goto slow;
    }
    if (!any || *p != '\0' || frac > 22) {
        return false;
    }
    *out = (neg ? -1.0 : 1.0) * ((double)mant / fd_pow10[frac]);
    return true;
slow : {
    char *end = NULL;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}
}

/* A non-negative integer cell (goals, stats): digits only, at most 9 of them. */
static bool parse_count(const char *s, int32_t *out)
{
    int32_t v = 0;
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || ++n > 9) {
            return false;
        }
        v = v * 10 + (*p - '0');
    }
    if (n == 0) {
        return false;
    }
    *out = v;
    return true;
}

static bool utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned char c = *s;
        int n;
        uint32_t cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i] & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        s += n + 1;
    }
    return true;
}

/* ============================================================================================
 * Column classification
 * ========================================================================================== */

/* The part of an odds column after "<book>[C]": 1X2 "H"/"D"/"A", O/U ">2.5"/"<2.5", AH prices
 * "AHH"/"AHA", or a per-book handicap line "AH". Returns false for anything else. */
static bool classify_suffix(const char *s, fd_column *c)
{
    if (s[0] != '\0' && s[1] == '\0') {
        c->market = FD_MARKET_1X2;
        switch (s[0]) {
        case 'H': c->selection = FD_SEL_HOME; return true;
        case 'D': c->selection = FD_SEL_DRAW; return true;
        case 'A': c->selection = FD_SEL_AWAY; return true;
        default: return false;
        }
    }
    if (s[0] == '>' || s[0] == '<') {
        double line;
        if (!parse_decimal(s + 1, &line) || line <= 0 || line > 20) {
            return false;
        }
        c->market = FD_MARKET_OU;
        c->selection = s[0] == '>' ? FD_SEL_OVER : FD_SEL_UNDER;
        c->ou_line = line;
        return true;
    }
    if (strcmp(s, "AHH") == 0 || strcmp(s, "AHA") == 0) {
        c->market = FD_MARKET_AH;
        c->selection = s[2] == 'H' ? FD_SEL_HOME : FD_SEL_AWAY;
        return true;
    }
    if (strcmp(s, "AH") == 0) {
        c->kind = COL_LINE;
        c->stat = LINE_BOOK;
        return true;
    }
    return false;
}

/* Fill *c for an odds column name, or return false. Every known prefix the name starts with is
 * tried, with and without the closing "C"; the longest prefix that leaves a valid suffix wins.
 * That is what keeps 2024-25 "BFD" (BF + D, Betfair draw) apart from 2025-26 "BFDH" (BFD + H,
 * Betfred home): each name has exactly one reading with a valid suffix. */
static bool classify_odds(const char *name, fd_column *c)
{
    size_t best_len = 0;
    fd_column best = {0};
    for (size_t i = 0; i < sizeof fd_books / sizeof fd_books[0]; i++) {
        size_t plen = strlen(fd_books[i].prefix);
        if (plen <= best_len || strncmp(name, fd_books[i].prefix, plen) != 0) {
            continue;
        }
        const char *rest = name + plen;
        fd_column cand = {0};
        cand.kind = COL_ODDS;
        cand.book = (int16_t)i;
        cand.line_col = -1;
        if (rest[0] == 'C' && classify_suffix(rest + 1, &cand)) {
            cand.closing = 1;
        } else {
            cand = (fd_column){0};
            cand.kind = COL_ODDS;
            cand.book = (int16_t)i;
            cand.line_col = -1;
            if (!classify_suffix(rest, &cand)) {
                continue;
            }
        }
        best = cand;
        best_len = plen;
    }
    if (best_len == 0) {
        return false;
    }
    best.name = c->name;
    *c = best;
    return true;
}

static void classify_column(fd_column *c)
{
    for (size_t i = 0; i < sizeof fd_fixed_cols / sizeof fd_fixed_cols[0]; i++) {
        if (strcmp(c->name, fd_fixed_cols[i].name) == 0) {
            c->kind = fd_fixed_cols[i].kind;
            c->stat = fd_fixed_cols[i].stat;
            c->line_col = -1;
            return;
        }
    }
    if (!classify_odds(c->name, c)) {
        c->kind = COL_IGNORE;
        c->line_col = -1;
    }
}

/* For each AH price column, find the column that holds its handicap line: a per-book line of the
 * same book and phase if the file has one (legacy files), the BetBrain line for BetBrain
 * aggregates, else the market line AHh (pre-closing) or AHCh (closing). */
static void link_ah_lines(fd_column *cols, size_t n)
{
    int32_t market_pre = -1, market_close = -1, betbrain = -1;
    for (size_t i = 0; i < n; i++) {
        if (cols[i].kind != COL_LINE) {
            continue;
        }
        if (cols[i].stat == LINE_MARKET_PRE) {
            market_pre = (int32_t)i;
        } else if (cols[i].stat == LINE_MARKET_CLOSE) {
            market_close = (int32_t)i;
        } else if (cols[i].stat == LINE_BETBRAIN) {
            betbrain = (int32_t)i;
        }
    }
    for (size_t i = 0; i < n; i++) {
        fd_column *c = &cols[i];
        if (c->kind != COL_ODDS || c->market != FD_MARKET_AH) {
            continue;
        }
        int32_t line = -1;
        for (size_t j = 0; j < n; j++) {
            if (cols[j].kind == COL_LINE && cols[j].stat == LINE_BOOK &&
                strcmp(fd_books[cols[j].book].key, fd_books[c->book].key) == 0 &&
                cols[j].closing == c->closing) {
                line = (int32_t)j;
                break;
            }
        }
        if (line < 0) {
            bool bb = strncmp(fd_books[c->book].prefix, "Bb", 2) == 0;
            line = bb ? betbrain : c->closing ? market_close : market_pre;
        }
        c->line_col = line;
    }
}

/* ============================================================================================
 * The parser
 * ========================================================================================== */

typedef struct fd_parser {
    const char *name;
    const char *p, *end;
    size_t line;     /* physical line at p */
    size_t rec_line; /* physical line where the current record started */

    /* the current record, split into NUL-terminated fields */
    char *scratch;
    size_t scratch_len, scratch_cap;
    size_t *off;
    size_t n_fields, fields_cap;
    bool bad_quote;

    /* the header and its plan */
    char *header;
    fd_column *cols;
    size_t n_cols;
    int32_t idx[COL_LINE + 1]; /* column index per fixed kind, -1 when absent */

    /* per-row output */
    fd_quote *quotes;
    double *line_val;  /* per column: the parsed handicap line of COL_LINE columns */
    uint8_t *line_set; /* per column: line_val is valid */
    char *text[4];     /* Latin-1 -> UTF-8 conversions: div, home, away, referee */
    size_t text_cap[4];
    int32_t row_year_digits; /* 2 or 4: how the last good row wrote its year */
    uint32_t *warn_col;      /* columns of the row whose price was left out */
    size_t n_warn;
    char reason[FD_REASON_MAX];
    char message[FD_REASON_MAX + 256];
} fd_parser;

static bool grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return true;
    }
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) {
        ncap *= 2;
    }
    void *nb = realloc(*buf, ncap * elem);
    if (!nb) {
        return false;
    }
    *buf = nb;
    *cap = ncap;
    return true;
}

static bool scratch_put(fd_parser *ps, const char *src, size_t n)
{
    if (!grow((void **)&ps->scratch, &ps->scratch_cap, ps->scratch_len + n + 1, 1)) {
        return false;
    }
    memcpy(ps->scratch + ps->scratch_len, src, n);
    ps->scratch_len += n;
    return true;
}

/* Split the next record into ps->scratch/off. Returns 1 when a record was read, 0 at the end of
 * the input, BP_E_NOMEM. A record ends at LF, CRLF or a lone CR outside quotes; a quoted field
 * may hold commas, doubled quotes and line breaks. Unquoted fields are trimmed of blanks. */
static int read_record(fd_parser *ps)
{
    const char *p = ps->p, *end = ps->end;
    ps->n_fields = 0;
    ps->scratch_len = 0;
    ps->bad_quote = false;
    ps->rec_line = ps->line;
    if (p >= end) {
        return 0;
    }
    for (;;) {
        size_t start = ps->scratch_len;
        if (!grow((void **)&ps->off, &ps->fields_cap, ps->n_fields + 1, sizeof *ps->off)) {
            return BP_E_NOMEM;
        }
        if (p < end && *p == '"') {
            bool closed = false;
            p++;
            while (p < end) {
                const char *q = p;
                while (q < end && *q != '"' && *q != '\n' && *q != '\r') {
                    q++;
                }
                if (!scratch_put(ps, p, (size_t)(q - p))) {
                    return BP_E_NOMEM;
                }
                p = q;
                if (p >= end) {
                    break;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        if (!scratch_put(ps, "\"", 1)) {
                            return BP_E_NOMEM;
                        }
                        p += 2;
                        continue;
                    }
                    p++;
                    closed = true;
                    break;
                }
                /* a line break inside quotes belongs to the field */
                if (*p == '\r' && p + 1 < end && p[1] == '\n') {
                    if (!scratch_put(ps, p, 2)) {
                        return BP_E_NOMEM;
                    }
                    p += 2;
                } else {
                    if (!scratch_put(ps, p, 1)) {
                        return BP_E_NOMEM;
                    }
                    p++;
                }
                ps->line++;
            }
            if (!closed) {
                ps->bad_quote = true;
            }
            /* only blanks may follow the closing quote */
            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }
            if (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                ps->bad_quote = true;
                while (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                    p++;
                }
            }
        } else {
            const char *q = p;
            while (q < end && *q != ',' && *q != '\n' && *q != '\r') {
                q++;
            }
            const char *a = p, *b = q;
            while (a < b && (*a == ' ' || *a == '\t')) {
                a++;
            }
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
                b--;
            }
            if (!scratch_put(ps, a, (size_t)(b - a))) {
                return BP_E_NOMEM;
            }
            p = q;
        }
        if (!grow((void **)&ps->scratch, &ps->scratch_cap, ps->scratch_len + 1, 1)) {
            return BP_E_NOMEM;
        }
        ps->scratch[ps->scratch_len++] = '\0';
        ps->off[ps->n_fields++] = start;
        if (p >= end) {
            break;
        }
        if (*p == ',') {
            p++;
            if (p >= end) {
                /* "a,b," at the very end: the record has one more, empty, field */
                if (!grow((void **)&ps->off, &ps->fields_cap, ps->n_fields + 1, sizeof *ps->off) ||
                    !grow((void **)&ps->scratch, &ps->scratch_cap, ps->scratch_len + 1, 1)) {
                    return BP_E_NOMEM;
                }
                ps->off[ps->n_fields++] = ps->scratch_len;
                ps->scratch[ps->scratch_len++] = '\0';
                break;
            }
            continue;
        }
        if (*p == '\r') {
            p++;
            if (p < end && *p == '\n') {
                p++;
            }
        } else {
            p++; /* '\n' */
        }
        ps->line++;
        break;
    }
    ps->p = p;
    return 1;
}

static inline const char *field(const fd_parser *ps, size_t i)
{
    return ps->scratch + ps->off[i];
}

/* Case-insensitive search for `needle` in the first `n` bytes of `hay`. */
static bool contains_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m) {
            char a = hay[i + j], b = needle[j];
            if (a >= 'A' && a <= 'Z') {
                a = (char)(a - 'A' + 'a');
            }
            if (a != b) {
                break;
            }
            j++;
        }
        if (j == m) {
            return true;
        }
    }
    return false;
}

/* A short printable excerpt of the start of the input, for file-level errors. */
static void excerpt(const char *s, size_t n, char *out, size_t out_len)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < out_len && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\r') {
            break;
        }
        out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[k] = '\0';
}

/* Read and check the header, and build the column plan. */
static int read_header(fd_parser *ps, fdcsv_stats *st, bp_error *err)
{
    char ex[64];
    size_t probe = (size_t)(ps->end - ps->p) < 2048 ? (size_t)(ps->end - ps->p) : 2048;
    const char *s = ps->p;
    size_t lead = 0;
    while (lead < probe &&
           (s[lead] == ' ' || s[lead] == '\t' || s[lead] == '\r' || s[lead] == '\n')) {
        lead++;
    }
    if (lead == probe) {
        return bp_err(err, BP_E_INVAL, "%s: the file is empty, expected a football-data CSV",
                      ps->name);
    }
    excerpt(s + lead, probe - lead, ex, sizeof ex);
    if (s[lead] == '<' || contains_ci(s, probe, "<!doctype") || contains_ci(s, probe, "<html")) {
        return bp_err(err, BP_E_INVAL,
                      "%s: got an HTML page where a football-data CSV was expected "
                      "(starts with '%s')",
                      ps->name, ex);
    }
    int rc = read_record(ps);
    if (rc < 0) {
        return bp_err(err, rc, "%s: out of memory reading the header", ps->name);
    }
    if (ps->n_fields < 2 || strcmp(field(ps, 0), "Div") != 0 || strcmp(field(ps, 1), "Date") != 0) {
        return bp_err(err, BP_E_INVAL,
                      "%s:%zu: not a football-data CSV: the header must start with Div,Date "
                      "(found '%s')",
                      ps->name, ps->rec_line, ex);
    }
    ps->header = malloc(ps->scratch_len);
    ps->cols = calloc(ps->n_fields, sizeof *ps->cols);
    ps->quotes = calloc(ps->n_fields, sizeof *ps->quotes);
    ps->line_val = calloc(ps->n_fields, sizeof *ps->line_val);
    ps->line_set = calloc(ps->n_fields, 1);
    ps->warn_col = calloc(ps->n_fields, sizeof *ps->warn_col);
    if (!ps->header || !ps->cols || !ps->quotes || !ps->line_val || !ps->line_set ||
        !ps->warn_col) {
        return bp_err(err, BP_E_NOMEM, "%s: out of memory for the column plan", ps->name);
    }
    memcpy(ps->header, ps->scratch, ps->scratch_len);
    ps->n_cols = ps->n_fields;
    for (size_t k = 0; k <= COL_LINE; k++) {
        ps->idx[k] = -1;
    }
    st->columns = ps->n_cols;
    size_t ig_len = 0;
    for (size_t i = 0; i < ps->n_cols; i++) {
        fd_column *c = &ps->cols[i];
        c->name = ps->header + ps->off[i];
        if (c->name[0] == '\0') {
            return bp_err(err, BP_E_INVAL, "%s:%zu: header column %zu has no name", ps->name,
                          ps->rec_line, i + 1);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ps->cols[j].name, c->name) == 0) {
                return bp_err(err, BP_E_INVAL,
                              "%s:%zu: header names column '%s' twice (columns %zu and %zu)",
                              ps->name, ps->rec_line, c->name, j + 1, i + 1);
            }
        }
        classify_column(c);
        if (c->kind == COL_ODDS) {
            st->odds_columns++;
        } else if (c->kind == COL_IGNORE) {
            size_t nl = strlen(c->name);
            st->ignored_columns++;
            if (ig_len + nl + 5 < sizeof st->ignored) {
                if (ig_len) {
                    st->ignored[ig_len++] = ' ';
                }
                memcpy(st->ignored + ig_len, c->name, nl);
                ig_len += nl;
            } else if (ig_len + 4 < sizeof st->ignored &&
                       !(ig_len >= 3 && memcmp(st->ignored + ig_len - 3, "...", 3) == 0)) {
                memcpy(st->ignored + ig_len, " ...", 4);
                ig_len += 4;
            }
            st->ignored[ig_len] = '\0';
        } else if (c->kind != COL_STAT && c->kind != COL_LINE) {
            if (ps->idx[c->kind] >= 0) {
                /* FTHG and HG in one header: two columns for one field */
                return bp_err(err, BP_E_INVAL,
                              "%s:%zu: columns '%s' and '%s' both hold the same field", ps->name,
                              ps->rec_line, ps->cols[ps->idx[c->kind]].name, c->name);
            }
            ps->idx[c->kind] = (int32_t)i;
        }
    }
    static const struct {
        int kind;
        const char *name;
    } required[] = {
        {COL_DIV, "Div"}, {COL_DATE, "Date"}, {COL_HOME, "HomeTeam"}, {COL_AWAY, "AwayTeam"}};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
        if (ps->idx[required[k].kind] < 0) {
            return bp_err(err, BP_E_INVAL, "%s:%zu: the header has no '%s' column", ps->name,
                          ps->rec_line, required[k].name);
        }
    }
    st->has_time = ps->idx[COL_TIME] >= 0;
    link_ah_lines(ps->cols, ps->n_cols);
    return BP_OK;
}

/* A text field as valid UTF-8: itself when it already is, else converted from Latin-1 into the
 * parser's slot `slot`. NULL on allocation failure. */
static const char *text_field(fd_parser *ps, int slot, const char *s)
{
    if (utf8_valid((const unsigned char *)s)) {
        return s;
    }
    size_t n = strlen(s);
    if (!grow((void **)&ps->text[slot], &ps->text_cap[slot], 2 * n + 1, 1)) {
        return NULL;
    }
    char *o = ps->text[slot];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            *o++ = (char)*p;
        } else {
            *o++ = (char)(0xC0 | (*p >> 6));
            *o++ = (char)(0x80 | (*p & 0x3F));
        }
    }
    *o = '\0';
    return ps->text[slot];
}

#define REJECT(col, ...)                                                                           \
    do {                                                                                           \
        *bad_col = (col);                                                                          \
        snprintf(ps->reason, sizeof ps->reason, __VA_ARGS__);                                      \
        return 1;                                                                                  \
    } while (0)

/* Turn the current record into *m. Returns 0 for a good row, 1 for a rejected one (reason in
 * ps->reason, column in *bad_col), 2 for an all-blank row, BP_E_NOMEM. */
static int build_row(fd_parser *ps, fd_match *m, const char **bad_col)
{
    size_t n = ps->n_fields;
    bool blank = true;
    *bad_col = NULL;
    for (size_t i = 0; i < n && blank; i++) {
        blank = field(ps, i)[0] == '\0';
    }
    if (blank && !ps->bad_quote) {
        return 2;
    }
    if (ps->bad_quote) {
        REJECT(NULL, "a quoted field is not closed properly (truncated file or stray quote)");
    }
    if (n < ps->n_cols) {
        REJECT(NULL, "the row has %zu fields but the header has %zu (truncated row?)", n,
               ps->n_cols);
    }
    for (size_t i = ps->n_cols; i < n; i++) {
        if (field(ps, i)[0] != '\0') {
            REJECT(NULL, "the row has %zu fields but the header has %zu", n, ps->n_cols);
        }
    }

    memset(m, 0, sizeof *m);
    m->line = ps->rec_line;
    m->fthg = m->ftag = m->hthg = m->htag = -1;
    for (int k = 0; k < FD_STAT_COUNT; k++) {
        m->stats[k] = -1;
    }

    /* fixed fields */
    const char *div = field(ps, (size_t)ps->idx[COL_DIV]);
    if (div[0] == '\0') {
        REJECT("Div", "the division code is blank");
    }
    const char *date = field(ps, (size_t)ps->idx[COL_DATE]);
    int32_t digits = 0;
    if (!parse_date(date, &m->year, &m->month, &m->day, &digits)) {
        REJECT("Date", "'%s' is not a date (expected dd/mm/yy or dd/mm/yyyy)", date);
    }
    m->hour = 15;
    m->minute = 0;
    if (ps->idx[COL_TIME] >= 0) {
        const char *t = field(ps, (size_t)ps->idx[COL_TIME]);
        if (t[0] != '\0') {
            if (!parse_time(t, &m->hour, &m->minute)) {
                REJECT("Time", "'%s' is not a time of day (expected HH:MM)", t);
            }
            m->has_time = 1;
        }
    }
    m->kickoff_ms = fdcsv_uk_local_to_utc_ms(m->year, m->month, m->day, m->hour, m->minute);
    const char *home = field(ps, (size_t)ps->idx[COL_HOME]);
    const char *away = field(ps, (size_t)ps->idx[COL_AWAY]);
    if (home[0] == '\0') {
        REJECT("HomeTeam", "the home team is blank");
    }
    if (away[0] == '\0') {
        REJECT("AwayTeam", "the away team is blank");
    }
    if (strcmp(home, away) == 0) {
        REJECT("AwayTeam", "'%s' cannot play itself", home);
    }
    m->div = text_field(ps, 0, div);
    m->home_team = text_field(ps, 1, home);
    m->away_team = text_field(ps, 2, away);
    if (!m->div || !m->home_team || !m->away_team) {
        return BP_E_NOMEM;
    }
    if (ps->idx[COL_REFEREE] >= 0) {
        const char *r = field(ps, (size_t)ps->idx[COL_REFEREE]);
        if (r[0] != '\0' && !(m->referee = text_field(ps, 3, r))) {
            return BP_E_NOMEM;
        }
    }

    /* results: both goals and the result letter, or none of them */
    static const struct {
        int g1, g2, res;
        const char *what;
    } phases[2] = {{COL_FTHG, COL_FTAG, COL_FTR, "full-time"},
                   {COL_HTHG, COL_HTAG, COL_HTR, "half-time"}};
    for (int ph = 0; ph < 2; ph++) {
        int32_t g[2] = {-1, -1};
        int kinds[2] = {phases[ph].g1, phases[ph].g2};
        char res = 0;
        for (int s = 0; s < 2; s++) {
            if (ps->idx[kinds[s]] < 0) {
                continue;
            }
            const char *v = field(ps, (size_t)ps->idx[kinds[s]]);
            if (v[0] != '\0' && !parse_count(v, &g[s])) {
                REJECT(ps->cols[ps->idx[kinds[s]]].name, "'%s' is not a number of goals", v);
            }
        }
        if (ps->idx[phases[ph].res] >= 0) {
            const fd_column *rc = &ps->cols[ps->idx[phases[ph].res]];
            const char *v = field(ps, (size_t)ps->idx[phases[ph].res]);
            if (v[0] != '\0') {
                if ((v[0] != 'H' && v[0] != 'D' && v[0] != 'A') || v[1] != '\0') {
                    REJECT(rc->name, "'%s' is not a result (expected H, D or A)", v);
                }
                res = v[0];
            }
        }
        if ((g[0] < 0) != (g[1] < 0)) {
            REJECT(NULL, "only one side of the %s score is given", phases[ph].what);
        }
        if (g[0] >= 0) {
            char want = g[0] > g[1] ? 'H' : g[0] < g[1] ? 'A' : 'D';
            if (res == 0 && ps->idx[phases[ph].res] >= 0) {
                REJECT(ps->cols[ps->idx[phases[ph].res]].name,
                       "the %s result is blank but the score is %d-%d", phases[ph].what, g[0],
                       g[1]);
            }
            if (res != 0 && res != want) {
                REJECT(ps->cols[ps->idx[phases[ph].res]].name,
                       "the %s result '%c' does not match the score %d-%d", phases[ph].what, res,
                       g[0], g[1]);
            }
            res = want;
        } else if (res != 0) {
            REJECT(ps->cols[ps->idx[phases[ph].res]].name,
                   "the %s result is '%c' but the score is blank", phases[ph].what, res);
        }
        if (ph == 0) {
            m->fthg = g[0];
            m->ftag = g[1];
            m->ftr = res;
        } else {
            m->hthg = g[0];
            m->htag = g[1];
            m->htr = res;
        }
    }
    if (m->hthg >= 0 && m->fthg >= 0 && (m->hthg > m->fthg || m->htag > m->ftag)) {
        REJECT(NULL, "the half-time score %d-%d exceeds the full-time score %d-%d", m->hthg,
               m->htag, m->fthg, m->ftag);
    }

    /* statistics and handicap lines first (AH prices need their line) */
    for (size_t i = 0; i < ps->n_cols; i++) {
        const fd_column *c = &ps->cols[i];
        const char *v;
        if (c->kind == COL_STAT) {
            v = field(ps, i);
            if (v[0] != '\0' && !parse_count(v, &m->stats[c->stat])) {
                REJECT(c->name, "'%s' is not a count", v);
            }
        } else if (c->kind == COL_LINE) {
            double x;
            v = field(ps, i);
            ps->line_set[i] = 0;
            if (v[0] == '\0') {
                continue;
            }
            if (!parse_decimal(v, &x) || x < -10 || x > 10 || x * 4 != floor(x * 4)) {
                REJECT(c->name, "'%s' is not a handicap line (expected a multiple of 0.25)", v);
            }
            ps->line_val[i] = x;
            ps->line_set[i] = 1;
        }
    }

    /* odds */
    size_t nq = 0;
    ps->n_warn = 0;
    for (size_t i = 0; i < ps->n_cols; i++) {
        const fd_column *c = &ps->cols[i];
        if (c->kind != COL_ODDS) {
            continue;
        }
        const char *v = field(ps, i);
        double price;
        if (v[0] == '\0') {
            continue;
        }
        if (!parse_decimal(v, &price)) {
            REJECT(c->name, "'%s' is not a price (expected a decimal > 1.0)", v);
        }
        if (!(price > 1.0) || price > 100000.0) {
            /* A number that cannot be a price: the real files write 0 (and once 0.42) into a
             * few cells where a bookmaker had no quote. One bad cell must not cost the match
             * its result and its other 100 prices, so only this quote is left out, and the
             * caller hears about it as a warning naming the cell. */
            ps->warn_col[ps->n_warn++] = (uint32_t)i;
            continue;
        }
        fd_quote *q = &ps->quotes[nq];
        q->bookmaker = fd_books[c->book].key;
        q->column = c->name;
        q->market = c->market;
        q->selection = c->selection;
        q->closing = c->closing;
        if (c->market == FD_MARKET_1X2) {
            q->line = NAN;
        } else if (c->market == FD_MARKET_OU) {
            q->line = c->ou_line;
        } else {
            /* an AH price without its line cannot be placed: leave it out */
            if (c->line_col < 0 || !ps->line_set[c->line_col]) {
                continue;
            }
            q->line = ps->line_val[c->line_col];
        }
        q->price = price;
        nq++;
    }
    m->quotes = ps->quotes;
    m->n_quotes = nq;
    ps->row_year_digits = digits;
    ps->reason[0] = '\0';
    return 0;
}

#undef REJECT

static void parser_free(fd_parser *ps)
{
    free(ps->scratch);
    free(ps->off);
    free(ps->header);
    free(ps->cols);
    free(ps->quotes);
    free(ps->line_val);
    free(ps->line_set);
    free(ps->warn_col);
    for (int i = 0; i < 4; i++) {
        free(ps->text[i]);
    }
}

int fdcsv_parse(const char *name, const char *buf, size_t len, fdcsv_row_fn on_row,
                fdcsv_reject_fn on_reject, void *ud, fdcsv_stats *out_stats, bp_error *err)
{
    fd_parser ps = {0};
    fdcsv_stats st = {0};
    int rc = BP_OK;
    if (!name) {
        name = "(csv)";
    }
    if (!buf && len > 0) {
        return bp_err(err, BP_E_INVAL, "%s: no buffer", name);
    }
    ps.name = name;
    ps.p = buf ? buf : "";
    ps.end = ps.p + len;
    ps.line = 1;
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF) {
        ps.p += 3;
    }
    rc = read_header(&ps, &st, err);
    if (rc != BP_OK) {
        goto fail;
    }
    for (;;) {
        fd_match m;
        const char *bad_col = NULL;
        int r = read_record(&ps);
        if (r == 0) {
            break;
        }
        if (r < 0) {
            rc = bp_err(err, r, "%s:%zu: out of memory", name, ps.rec_line);
            goto fail;
        }
        st.records++;
        r = build_row(&ps, &m, &bad_col);
        if (r < 0) {
            rc = bp_err(err, r, "%s:%zu: out of memory", name, ps.rec_line);
            goto fail;
        }
        if (r == 2) {
            st.blank++;
            continue;
        }
        if (r == 1) {
            fdcsv_reject rj;
            if (bad_col) {
                snprintf(ps.message, sizeof ps.message, "%s:%zu: %s: %s", name, ps.rec_line,
                         bad_col, ps.reason);
            } else {
                snprintf(ps.message, sizeof ps.message, "%s:%zu: %s", name, ps.rec_line, ps.reason);
            }
            rj.file = name;
            rj.line = ps.rec_line;
            rj.column = bad_col;
            rj.message = ps.message;
            rj.row_kept = 0;
            st.rejected++;
            if (on_reject) {
                on_reject(ud, &rj);
            }
            continue;
        }
        if (st.year_digits == 0) {
            st.year_digits = ps.row_year_digits;
        }
        for (size_t w = 0; w < ps.n_warn; w++) {
            const fd_column *c = &ps.cols[ps.warn_col[w]];
            fdcsv_reject rj;
            snprintf(ps.message, sizeof ps.message,
                     "%s:%zu: %s: '%s' is not a valid price (expected a decimal > 1.0); the "
                     "quote is left out and the row kept",
                     name, ps.rec_line, c->name, field(&ps, ps.warn_col[w]));
            rj.file = name;
            rj.line = ps.rec_line;
            rj.column = c->name;
            rj.message = ps.message;
            rj.row_kept = 1;
            st.dropped_quotes++;
            if (on_reject) {
                on_reject(ud, &rj);
            }
        }
        st.rows++;
        st.quotes += m.n_quotes;
        if (on_row) {
            r = on_row(ud, &m);
            if (r != 0) {
                rc = r;
                goto fail;
            }
        }
    }
fail:
    if (out_stats) {
        *out_stats = st;
    }
    parser_free(&ps);
    return rc;
}

int fdcsv_parse_file(const char *path, size_t max_bytes, fdcsv_row_fn on_row,
                     fdcsv_reject_fn on_reject, void *ud, fdcsv_stats *out_stats, bp_error *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    struct stat sb;
    size_t n = 0;
    int rc;
    char ebuf[128];
    if (max_bytes == 0) {
        max_bytes = FD_DEFAULT_MAX_FILE;
    }
    f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (strerror_r(e, ebuf, sizeof ebuf) != 0) {
            snprintf(ebuf, sizeof ebuf, "errno %d", e);
        }
        return bp_err(err, BP_E_IO, "%s: cannot open: %s", path, ebuf);
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = bp_err(err, BP_E_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_bytes) {
        rc = bp_err(err, BP_E_LIMIT, "%s: %lld bytes is more than the limit of %zu", path,
                    (long long)sb.st_size, max_bytes);
        goto fail;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory for %lld bytes", path,
                    (long long)sb.st_size);
        goto fail;
    }
    n = fread(buf, 1, (size_t)sb.st_size, f);
    if (ferror(f)) {
        rc = bp_err(err, BP_E_IO, "%s: read error", path);
        goto fail;
    }
    rc = fdcsv_parse(path, buf, n, on_row, on_reject, ud, out_stats, err);
fail:
    free(buf);
    fclose(f);
    return rc;
}
