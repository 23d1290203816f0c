/*
 * fdcsv.h - parser for the football-data.co.uk season CSVs (static library bp_fdcsv).
 *
 * One call parses a whole file held in memory and hands every match row to a callback as a
 * normalised fd_match: date and kick-off, teams as written in the file, results, match stats and
 * a flat list of odds quotes {bookmaker, market, selection, line, price, closing}. Rows that are
 * wrong (bad field count, unparseable date, a price cell holding text, FTR that disagrees with
 * the goals...) go to a second callback with the reason and file:line, and the good rows of the
 * same file are still delivered (see fdcsv_reject for what exactly is rejected).
 *
 * What the format looks like, and why the parser is shaped like this:
 *  - Columns move between seasons (61 to 132 of them), so every column is mapped by its header
 *    name, never by position. Odds columns follow a grammar, <book>[C]<suffix>: a bookmaker
 *    prefix from a table of known ones (B365, PS, P, WH, 1XB, BFD, BFE, Max, Avg, BbMx...), an
 *    optional C for closing odds, and H/D/A (1X2), >2.5/<2.5 (over/under) or AHH/AHA (Asian
 *    handicap, line in AHh/AHCh/BbAHh or a per-book <book>AH column). Prefixes are matched so
 *    that 2024-25 "BFD" (Betfair draw) and 2025-26 "BFDH" (Betfred home) both come out right.
 *  - Two date formats (dd/mm/yy, dd/mm/yyyy), an optional Time column, an optional UTF-8 BOM,
 *    LF, CRLF or CR line endings, trailing all-comma rows (skipped silently), blank cells
 *    (missing, never zero), double-quoted fields (never seen in these files, handled anyway).
 *  - Text that is not valid UTF-8 (old referee names) is read as Latin-1 and converted, so every
 *    string handed out is valid UTF-8.
 *
 * Dates and times. The file gives a local date and, from 2019-20, a local kick-off time. The
 * Time column is UK local time for every league (Bundesliga's 15:30 CET slot reads 14:30), so
 * fd_match keeps the date and time exactly as written (year/month/day, hour/minute) and also
 * gives kickoff_ms, the instant in UTC: the time converted from Europe/London (GMT, or BST from
 * the last Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC). When a file has
 * no time, kickoff_ms is 15:00 Europe/London on that date and has_time is 0, so consumers can
 * tell an exact kick-off from a conventional one.
 *
 * Two-digit years: 00-49 are 2000-2049, 50-99 are 1950-1999 (the site's data starts in 1993).
 *
 * This library uses only libc: plugins link it without any core symbol. All functions are
 * reentrant; nothing is global except constant tables.
 */
#ifndef BP_FDCSV_H
#define BP_FDCSV_H

#include <stddef.h>
#include <stdint.h>

#include "betpipe/status.h"

/* Markets and selections of an odds quote. */
enum {
    FD_MARKET_1X2 = 0, /* full-time result */
    FD_MARKET_OU = 1,  /* total goals over/under `line` */
    FD_MARKET_AH = 2,  /* Asian handicap; `line` is the home side's handicap */
};
enum {
    FD_SEL_HOME = 0,
    FD_SEL_DRAW = 1,
    FD_SEL_AWAY = 2,
    FD_SEL_OVER = 3,
    FD_SEL_UNDER = 4,
};

/* Match statistics, in the order of fd_match.stats[]. -1 means the cell is absent or blank. */
enum {
    FD_STAT_HS = 0, /* home shots */
    FD_STAT_AS,     /* away shots */
    FD_STAT_HST,    /* home shots on target */
    FD_STAT_AST,
    FD_STAT_HHW, /* home woodwork */
    FD_STAT_AHW,
    FD_STAT_HC, /* home corners */
    FD_STAT_AC,
    FD_STAT_HF, /* home fouls committed */
    FD_STAT_AF,
    FD_STAT_HFKC, /* home free kicks conceded */
    FD_STAT_AFKC,
    FD_STAT_HO, /* home offsides */
    FD_STAT_AO,
    FD_STAT_HY, /* home yellow cards */
    FD_STAT_AY,
    FD_STAT_HR, /* home red cards */
    FD_STAT_AR,
    FD_STAT_HBP, /* home booking points */
    FD_STAT_ABP,
    FD_STAT_ATTENDANCE,
    FD_STAT_COUNT
};

/* One price. Strings are static (bookmaker) or borrowed from the parser (column). */
typedef struct fd_quote {
    const char *bookmaker; /* canonical key: "pinnacle", "bet365", "market_max", ... */
    const char *column;    /* the header it came from, e.g. "PSCH" */
    uint8_t market;        /* FD_MARKET_* */
    uint8_t selection;     /* FD_SEL_* */
    uint8_t closing;       /* 1 for closing odds (the C columns), 0 for pre-closing */
    uint8_t reserved0;
    double line;  /* NAN for 1X2; goals for O/U; home handicap for AH */
    double price; /* decimal odds, > 1.0 */
} fd_quote;

/* One match row. Everything is borrowed and valid only during the row callback. */
typedef struct fd_match {
    size_t line;     /* physical line of the row in the file (the header is line 1) */
    const char *div; /* division code as written, e.g. "E0" */
    int32_t year, month, day;
    int32_t has_time;      /* 1 when the file gives a kick-off time */
    int32_t hour, minute;  /* UK local kick-off; 15:00 when has_time is 0 */
    int64_t kickoff_ms;    /* kick-off in UTC epoch ms (see the header comment) */
    const char *home_team; /* as written in the file, never empty */
    const char *away_team;
    int32_t fthg, ftag; /* full-time goals; -1 when the match has no result yet */
    char ftr;           /* 'H', 'D', 'A', or 0 without a result */
    char htr;           /* half-time result, or 0 */
    int16_t reserved0;
    int32_t hthg, htag;  /* half-time goals, -1 when absent */
    const char *referee; /* NULL when the file has no Referee column or the cell is blank */
    int32_t stats[FD_STAT_COUNT];
    const fd_quote *quotes;
    size_t n_quotes;
} fd_match;

/* A rejected row, or a dropped cell. `message` is the full sentence, e.g.
 *     "E0/2023-24.csv:17: PSCH: 'n/a' is not a price (expected a decimal > 1.0)"
 * and the other fields repeat its parts.
 *
 * What is rejected: a row whose structure or match facts are wrong (field count, quoting, date,
 * time, teams, goals and results that disagree, a stat or handicap line that is not a number,
 * a price cell holding text). Such a row is not delivered. A price cell holding a number that
 * cannot be a price (0, 0.42: the real files have a handful, where a bookmaker had no quote) only
 * drops that quote: the row is delivered without it and this is reported with row_kept = 1. */
typedef struct fdcsv_reject {
    const char *file; /* the name passed to fdcsv_parse */
    size_t line;
    const char *column; /* the column at fault, or NULL for whole-row problems */
    const char *message;
    int32_t row_kept; /* 1: only the cell was dropped; the row went to on_row */
} fdcsv_reject;

/* What a parse saw. */
typedef struct fdcsv_stats {
    size_t records;         /* data records after the header, blank ones included */
    size_t rows;            /* rows delivered to on_row */
    size_t rejected;        /* rows delivered to on_reject */
    size_t blank;           /* all-empty rows skipped silently */
    size_t quotes;          /* quotes delivered, summed over rows */
    size_t dropped_quotes;  /* price cells left out of kept rows (reported with row_kept = 1) */
    size_t columns;         /* header fields */
    size_t odds_columns;    /* columns mapped to odds quotes */
    size_t ignored_columns; /* columns the parser does not use (e.g. Bb1X2, BbOU) */
    char ignored[256];      /* their names, space-separated, truncated with "..." */
    int32_t year_digits;    /* 2 or 4: the date format of the first good row; 0 when none */
    int32_t has_time;       /* the header has a Time column */
} fdcsv_stats;

/* Called once per good row. Return 0 to go on; any other value stops the parse and becomes
 * fdcsv_parse's return value (use a BP_E_* code and fill your own error). */
typedef int (*fdcsv_row_fn)(void *ud, const fd_match *m);
/* Called once per rejected row and once per dropped price cell, before the row's on_row. May be
 * NULL (they are then only counted). */
typedef void (*fdcsv_reject_fn)(void *ud, const fdcsv_reject *r);

/*
 * Parse `len` bytes of `buf` (need not be NUL-terminated). `name` labels messages (a path or
 * URL). Returns BP_OK when the file is a football-data CSV, even if some rows were rejected;
 * BP_E_INVAL for a file-level problem (empty, an HTML page, a header that does not start with
 * Div,Date, a duplicate or missing required column) with the reason in err; BP_E_NOMEM; or what
 * on_row returned. out_stats may be NULL. Reentrant; the callbacks run on the calling thread.
 */
int fdcsv_parse(const char *name, const char *buf, size_t len, fdcsv_row_fn on_row,
                fdcsv_reject_fn on_reject, void *ud, fdcsv_stats *out_stats, bp_error *err);

/* Read `path` (at most max_bytes; 0 means 64 MiB) and parse it as fdcsv_parse does, with the
 * path as the name. BP_E_IO when the file cannot be read, BP_E_LIMIT when it is larger. */
int fdcsv_parse_file(const char *path, size_t max_bytes, fdcsv_row_fn on_row,
                     fdcsv_reject_fn on_reject, void *ud, fdcsv_stats *out_stats, bp_error *err);

/* "1x2", "ou", "ah" / "home", "draw", "away", "over", "under" / "HS", "AS", ... ("?" when out of
 * range). Static strings. */
const char *fdcsv_market_name(int market);
const char *fdcsv_selection_name(int selection);
const char *fdcsv_stat_name(int stat);

/* The bookmaker key for a football-data column prefix ("PS" -> "pinnacle"), or NULL. */
const char *fdcsv_bookmaker_key(const char *prefix);

/* UTC epoch ms of a UK local (Europe/London) wall-clock time. Pure; valid for 1970-2099. */
int64_t fdcsv_uk_local_to_utc_ms(int32_t year, int32_t month, int32_t day, int32_t hour,
                                 int32_t minute);

#endif
