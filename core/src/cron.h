/*
 * cron.h - cron expressions and their next fire time in an IANA time zone.
 *
 * Syntax (Vixie cron, as in crontab(5))
 *   Five fields separated by blanks:  minute  hour  day-of-month  month  day-of-week
 *                                      0-59    0-23  1-31          1-12   0-7 (0 and 7 = Sunday)
 *   Each field is a comma list of items; an item is `*`, a value `5`, a range `1-5`, any of those
 *   with a step (`*\/15`, `1-30/5`), or `5/15`, which means `5-<field max>/15`. Months may be
 *   written JAN-DEC and weekdays SUN-SAT, case-insensitive, also inside ranges (`MON-FRI`).
 *   Ranges do not wrap (`FRI-MON` is an error). A step must be 1..(number of values in the
 *   field). For `*` and `N/step` in day-of-week the implicit end is 6 (Saturday).
 *   (In this file `*\/` stands for star-slash, which a C comment cannot contain.)
 *   Macros: @yearly = @annually = "0 0 1 1 *", @monthly = "0 0 1 * *", @weekly = "0 0 * * 0",
 *   @daily = @midnight = "0 0 * * *", @hourly = "0 * * * *". (@reboot is not a schedule.)
 *
 * Day matching (Vixie): when both day-of-month and day-of-week are restricted - neither field
 * starts with `*` - a day matches if EITHER matches ("0 0 1 * MON" = the 1st and every Monday).
 * Otherwise both must match; note that `*\/2` starts with `*`, so "0 0 *\/2 * MON" means odd-
 * numbered days that are Mondays, exactly as in cron.
 *
 * Time zones and DST (the rules cron_next follows)
 *   Fields are matched against the wall clock of the entry's zone; instants are UTC seconds.
 *   A matching wall-clock minute (a "slot") fires as follows:
 *   1. The slot exists once: it fires at that instant.
 *   2. The slot is skipped by a spring-forward gap (01:30 on 2024-03-31 in Europe/London, where
 *      clocks go 01:00 GMT -> 02:00 BST): it fires once, at the instant the gap ends (01:00Z, which
 *      reads 02:00 BST). Several skipped slots of one gap collapse into that one fire, which also
 *      coincides with any slot at the first valid minute, so `*\/15 * * * *` fires every 15 real
 *      minutes straight through the change.
 *   3. The slot is repeated by a fall-back overlap (01:30 on 2024-10-27 in Europe/London reads
 *      twice: 00:30Z in BST, then 01:30Z in GMT):
 *        - a "real-time" expression - its minute or hour field starts with `*` (`0 * * * *`,
 *          `*\/15 * * * *`, `* 1 * * *`, @hourly) - fires at BOTH instants: it follows elapsed
 *          time, so an hourly job runs every real hour, 25 times that day;
 *        - a "fixed-time" expression - neither starts with `*` (`30 1 * * *`, `0 9-17 * * *`,
 *          @daily) - fires ONCE, at the first occurrence.
 *      This is the rule Vixie cron itself applies to clock changes (its "wildcard" jobs versus
 *      "fixed-time" jobs), so expressions behave as people who know cron expect.
 *   Celery beat got these wrong in both directions (celery#1604, #9653, #10107): here each rule is
 *   a table test in tests/unit/test_cron.c.
 *
 * Thread-safety: a parsed cron_expr is a plain value; all functions are pure and reentrant.
 */
#ifndef BP_CORE_CRON_H
#define BP_CORE_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "betpipe/status.h"
#include "tz.h"

#define CRON_TEXT_MAX     256  /* longest expression accepted is CRON_TEXT_MAX - 1 bytes */
#define CRON_SEARCH_YEARS 8    /* cron_next looks this far ahead (covers Feb 29 and leap gaps) */
#define CRON_DESCRIBE_MAX 1024 /* a buffer this big always holds cron_describe's text */

/* A parsed expression: one bit per allowed value. Plain data, copy it freely. */
typedef struct cron_expr {
    uint64_t minutes;         /* bit m: minute m, 0..59 */
    uint32_t hours;           /* bit h: hour h, 0..23 */
    uint32_t days;            /* bit d: day of month d, 1..31 */
    uint16_t months;          /* bit m: month m, 1..12 */
    uint8_t weekdays;         /* bit d: weekday d, 0 = Sunday .. 6 = Saturday */
    bool dom_star;            /* day-of-month field starts with '*' (day matching rule) */
    bool dow_star;            /* day-of-week field starts with '*' */
    bool real_time;           /* minute or hour field starts with '*' (overlap rule, see above) */
    char text[CRON_TEXT_MAX]; /* the expression, blanks collapsed: "*\/15 * * * *", "@daily" */
} cron_expr;

/* Parse `text` into *out_expr. On error returns BP_E_INVAL and names the field and the column
 * (1-based, of the offending list item in `text`), e.g.
 *   cron "*\/0 * * * *": minute field (column 1): step must be at least 1
 *   cron "0 24 * * *": hour field (column 3): 24 is out of range 0-23
 *   cron "0 0 * * FUNDAY": day-of-week field (column 9): unknown name 'FUNDAY' (expected SUN-SAT)
 *   cron "0 0 * *": expected 5 fields (minute hour day-of-month month day-of-week), found 4
 * An expression that can never fire ("0 0 30 2 *") parses; cron_next reports it. Pure. */
int cron_parse(const char *text, cron_expr *out_expr, bp_error *err);

/* The first fire time strictly after `after_utc_s`, evaluated in `zone` (NULL = UTC) with the DST
 * rules above, into *out_next_utc_s (a whole minute in local time, except for rule 2 where it is
 * the instant a gap ends). Looks at most CRON_SEARCH_YEARS ahead:
 *   BP_E_NOTFOUND  the expression does not fire in that window ("0 0 30 2 *", or "0 0 31 4 *");
 *   BP_E_INVAL     after_utc_s is outside TZ_MIN_UTC..TZ_MAX_UTC.
 * Skips by field (month, day, hour, minute), never minute by minute: typically 0.1-1 us, about
 * 2 us for an 8-year search that finds nothing (bench/cron.sh). Pure; the zone is only read. */
int cron_next(const cron_expr *e, const tz *zone, int64_t after_utc_s, int64_t *out_next_utc_s);

/* Does the day `y-m-d` (wall clock) match the expression's day fields (month, day-of-month,
 * day-of-week with the Vixie OR rule)? For callers that show calendars. Pure. */
bool cron_day_matches(const cron_expr *e, int64_t y, int m, int d);

/* Plain-English text for `schedule list`: "every 15 minutes", "at 02:00 every day",
 * "at 03:00 on Monday", "at 00:00 on day 29 of the month in February". Writes at most len bytes
 * (NUL-terminated when len > 0) and returns the full length, like snprintf. Pure. */
size_t cron_describe(const cron_expr *e, char *buf, size_t len);

#endif
