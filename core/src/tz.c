/*
 * tz.c - IANA time zones from TZif files (RFC 9636), with no process-global state.
 *
 * A zone is three things: a table of transition instants, each naming a "local time type"
 * (UTC offset, DST flag, abbreviation); the type in force before the first transition; and, in
 * version 2+ files, a POSIX TZ string that extends the table past its last transition
 * ("EST5EDT,M3.2.0,M11.1.0": standard time 5 hours west, DST from the second Sunday of March to
 * the first Sunday of November, both at 02:00 local). Everything below answers questions about
 * that timeline: what offset is in force at an instant, where the offset next or last changed, and
 * which instants a wall-clock reading names.
 *
 * The calendar maths is the proleptic Gregorian calendar on int64 day numbers, so no libc time
 * function is ever involved.
 */
#include "tz.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define TZ_DEFAULT_DIR     "/usr/share/zoneinfo"
#define TZ_FILE_MAX        (1u << 20) /* real files are < 4 KiB; anything this big is not a zone */
#define TZ_ABBR_CAP        16         /* POSIX TZ abbreviations we keep, with the NUL */
#define TZ_MAX_TRANSITIONS 65536      /* real zones have < 2000 */
#define TZ_MAX_UTOFF       93599      /* RFC 9636: offsets lie in -89999..93599 seconds */
#define TZ_MIN_UTOFF       (-89999)
#define TZ_RULE_HOURS_MAX  167 /* version 3 extension for rule times */
#define TZ_TIME_LIMIT      (1LL << 62)
/* A wall-clock reading can only be produced by instants within this many seconds of it. */
#define TZ_REACH (26LL * 3600 + 1)

/* ============================================================================================
 * Calendar arithmetic
 * ========================================================================================== */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Day numbers count from 1970-01-01. The algorithm shifts the year to start in March, so that
 * the leap day is the last day of the shifted year, and works in 400-year eras of 146097 days
 * (after H. Hinnant, "chrono-compatible low-level date algorithms"). */
int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *out_y, int *out_m, int *out_d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *out_y = yoe + era * 400 + (m <= 2);
    *out_m = m;
    *out_d = d;
}

int tz_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday. */
    int64_t r = (days + 4) % 7;
    return (int)(r < 0 ? r + 7 : r);
}

bool tz_is_leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int tz_days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12) {
        return 0;
    }
    return m == 2 && tz_is_leap_year(y) ? 29 : dim[m - 1];
}

int64_t tz_local_to_seconds(const tz_local_time *lt)
{
    return tz_days_from_civil(lt->year, lt->month, lt->day) * 86400 + lt->hour * 3600 +
           lt->minute * 60 + lt->second;
}

void tz_local_from_seconds(int64_t local_s, tz_local_time *out)
{
    int64_t days = floor_div(local_s, 86400);
    int64_t sod = local_s - days * 86400;
    int64_t y;
    tz_civil_from_days(days, &y, &out->month, &out->day);
    out->year = (int)y;
    out->hour = (int)(sod / 3600);
    out->minute = (int)(sod % 3600 / 60);
    out->second = (int)(sod % 60);
}

/* ============================================================================================
 * The zone object
 * ========================================================================================== */

typedef struct zone_type {
    int32_t utoff; /* seconds east of UTC */
    bool is_dst;
    uint32_t abbr; /* index into abbrs */
} zone_type;

/* One end of a POSIX DST rule: a day of the year and a local time of day. */
typedef struct rule_date {
    char kind;    /* 'J' Julian day 1..365 without Feb 29, 'D' zero-based day 0..365, 'M' */
    int n;        /* for J and D */
    int m, w, wd; /* for M: month 1..12, week 1..5 (5 = last), weekday 0..6 */
    int32_t secs; /* local time of day, -167h..167h */
} rule_date;

/* A parsed POSIX TZ string. Offsets are stored the RFC 9636 way round (east positive), not the
 * POSIX way (west positive). */
typedef struct posix_tz {
    int32_t std_off, dst_off;
    bool has_dst;
    rule_date start, end; /* DST starts at `start` (std local time), ends at `end` (DST local) */
    char std_abbr[TZ_ABBR_CAP], dst_abbr[TZ_ABBR_CAP];
} posix_tz;

struct tz {
    char *name;
    size_t ntrans;
    int64_t *trans;      /* ascending instants */
    uint8_t *trans_type; /* type index per transition */
    size_t ntypes;       /* >= 1 */
    zone_type *types;
    char *abbrs;     /* NUL-separated designations */
    bool has_footer; /* footer present and non-empty */
    posix_tz footer;
};

/* What is in force at one instant. */
typedef struct zone_info {
    int32_t off;
    bool is_dst;
    const char *abbr;
} zone_info;

void tz_free(tz *zone)
{
    if (!zone) {
        return;
    }
    free(zone->name);
    free(zone->trans);
    free(zone->trans_type);
    free(zone->types);
    free(zone->abbrs);
    free(zone);
}

/* ============================================================================================
 * POSIX TZ strings (the TZif footer)
 * ========================================================================================== */

/* An abbreviation: three or more letters, or <...> holding letters, digits, '+' and '-'. */
static bool posix_abbr(const char **pp, char *out)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '<') {
        p++;
        while (isalnum((unsigned char)*p) || *p == '+' || *p == '-') {
            if (n + 1 >= TZ_ABBR_CAP) {
                return false;
            }
            out[n++] = *p++;
        }
        if (*p != '>') {
            return false;
        }
        p++;
    } else {
        while (isalpha((unsigned char)*p)) {
            if (n + 1 >= TZ_ABBR_CAP) {
                return false;
            }
            out[n++] = *p++;
        }
    }
    if (n < 3) {
        return false;
    }
    out[n] = '\0';
    *pp = p;
    return true;
}

static bool posix_num(const char **pp, int max_digits, int max_value, int *out)
{
    const char *p = *pp;
    int v = 0, n = 0;
    while (*p >= '0' && *p <= '9' && n < max_digits) {
        v = v * 10 + (*p++ - '0');
        n++;
    }
    if (n == 0 || v > max_value || (*p >= '0' && *p <= '9')) {
        return false;
    }
    *pp = p;
    *out = v;
    return true;
}

/* [+-]hh[:mm[:ss]] -> signed seconds. */
static bool posix_hms(const char **pp, int max_hours, int32_t *out)
{
    const char *p = *pp;
    int sign = 1, h = 0, m = 0, s = 0;
    if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
    }
    if (!posix_num(&p, 3, max_hours, &h)) {
        return false;
    }
    if (*p == ':') {
        p++;
        if (!posix_num(&p, 2, 59, &m)) {
            return false;
        }
        if (*p == ':') {
            p++;
            if (!posix_num(&p, 2, 59, &s)) {
                return false;
            }
        }
    }
    *out = (int32_t)(sign * (h * 3600 + m * 60 + s));
    *pp = p;
    return true;
}

static bool posix_rule_date(const char **pp, rule_date *out)
{
    const char *p = *pp;
    memset(out, 0, sizeof *out);
    if (*p == 'J') {
        p++;
        out->kind = 'J';
        if (!posix_num(&p, 3, 365, &out->n) || out->n < 1) {
            return false;
        }
    } else if (*p == 'M') {
        p++;
        out->kind = 'M';
        if (!posix_num(&p, 2, 12, &out->m) || out->m < 1 || *p++ != '.' ||
            !posix_num(&p, 1, 5, &out->w) || out->w < 1 || *p++ != '.' ||
            !posix_num(&p, 1, 6, &out->wd)) {
            return false;
        }
    } else {
        out->kind = 'D';
        if (!posix_num(&p, 3, 365, &out->n)) {
            return false;
        }
    }
    out->secs = 2 * 3600;
    if (*p == '/') {
        p++;
        if (!posix_hms(&p, TZ_RULE_HOURS_MAX, &out->secs)) {
            return false;
        }
    }
    *pp = p;
    return true;
}

/* Parse a footer such as "GMT0BST,M3.5.0/1,M10.5.0" or "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0".
 * The version 3 extensions (rule hours up to 167, negative rule times) are accepted always. */
static bool posix_parse(const char *s, posix_tz *out)
{
    const char *p = s;
    int32_t std_west, dst_west;
    memset(out, 0, sizeof *out);
    if (!posix_abbr(&p, out->std_abbr) || !posix_hms(&p, 24, &std_west)) {
        return false;
    }
    out->std_off = -std_west;
    out->dst_off = out->std_off;
    if (*p == '\0') {
        return true;
    }
    if (!posix_abbr(&p, out->dst_abbr)) {
        return false;
    }
    out->has_dst = true;
    out->dst_off = out->std_off + 3600;
    if (*p != ',' && *p != '\0') {
        if (!posix_hms(&p, 24, &dst_west)) {
            return false;
        }
        out->dst_off = -dst_west;
    }
    /* zic always writes the rules; a DST name without them would leave the switch dates to the
     * reader's taste, so refuse it rather than guess. */
    if (*p++ != ',' || !posix_rule_date(&p, &out->start) || *p++ != ',' ||
        !posix_rule_date(&p, &out->end) || *p != '\0') {
        return false;
    }
    return true;
}

/* Local seconds (wall clock as if UTC) at which a rule fires in year y. */
static int64_t rule_local(const rule_date *r, int64_t y)
{
    int64_t day;
    if (r->kind == 'J') {
        /* Day n of a 365-day year: February 29 is never counted, so from March on a leap year
         * is one day further along. */
        day = tz_days_from_civil(y, 1, 1) + r->n - 1 + (tz_is_leap_year(y) && r->n >= 60);
    } else if (r->kind == 'D') {
        day = tz_days_from_civil(y, 1, 1) + r->n;
    } else {
        int64_t first = tz_days_from_civil(y, r->m, 1);
        int dim = tz_days_in_month(y, r->m);
        day = first + (r->wd - tz_weekday(first) + 7) % 7 + (r->w - 1) * 7;
        while (day >= first + dim) {
            day -= 7; /* week 5 means "the last one" */
        }
    }
    return day * 86400 + r->secs;
}

typedef struct footer_event {
    int64_t at;  /* UTC instant */
    bool to_dst; /* true: DST starts; false: DST ends */
} footer_event;

/* The footer's DST switches in years y0..y0+nyears-1, in time order. Events that fall on the same
 * instant keep year order, so "end of year y" sorts before "start of year y+1" and a zone on
 * permanent DST ("EST5EDT,0/0,J365/25") stays on DST. nyears <= 4. */
static size_t footer_events(const posix_tz *p, int64_t y0, int nyears, footer_event *ev)
{
    size_t n = 0;
    for (int i = 0; i < nyears; i++) {
        int64_t s = rule_local(&p->start, y0 + i) - p->std_off;
        int64_t e = rule_local(&p->end, y0 + i) - p->dst_off;
        if (s <= e) {
            ev[n++] = (footer_event){s, true};
            ev[n++] = (footer_event){e, false};
        } else {
            ev[n++] = (footer_event){e, false};
            ev[n++] = (footer_event){s, true};
        }
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable */
        footer_event x = ev[i];
        size_t j = i;
        while (j > 0 && ev[j - 1].at > x.at) {
            ev[j] = ev[j - 1];
            j--;
        }
        ev[j] = x;
    }
    return n;
}

static int64_t footer_year(const posix_tz *p, int64_t t)
{
    int64_t y;
    int m, d;
    tz_civil_from_days(floor_div(t + p->std_off, 86400), &y, &m, &d);
    return y;
}

static zone_info footer_info(const posix_tz *p, int64_t t)
{
    footer_event ev[8];
    bool dst;
    if (!p->has_dst) {
        return (zone_info){p->std_off, false, p->std_abbr};
    }
    /* Rule times may lie up to a week outside the calendar year, so look two years back. */
    size_t n = footer_events(p, footer_year(p, t) - 2, 4, ev);
    dst = !ev[0].to_dst;
    for (size_t i = 0; i < n && ev[i].at <= t; i++) {
        dst = ev[i].to_dst;
    }
    return dst ? (zone_info){p->dst_off, true, p->dst_abbr}
               : (zone_info){p->std_off, false, p->std_abbr};
}

static bool footer_next(const posix_tz *p, int64_t t, int64_t *out)
{
    footer_event ev[8];
    size_t n = footer_events(p, footer_year(p, t) - 1, 4, ev);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].at > t) {
            *out = ev[i].at;
            return true;
        }
    }
    return false;
}

static bool footer_prev(const posix_tz *p, int64_t t, int64_t *out)
{
    footer_event ev[8];
    size_t n = footer_events(p, footer_year(p, t) - 2, 4, ev);
    bool found = false;
    for (size_t i = 0; i < n && ev[i].at <= t; i++) {
        *out = ev[i].at;
        found = true;
    }
    return found;
}

/* ============================================================================================
 * The timeline: offset at an instant, raw transitions, offset changes
 * ========================================================================================== */

static zone_info type_info(const tz *z, size_t i)
{
    const zone_type *t = &z->types[i];
    return (zone_info){t->utoff, t->is_dst, z->abbrs + t->abbr};
}

/* Index of the last transition at or before t; caller ensures trans[0] <= t. */
static size_t trans_index(const tz *z, int64_t t)
{
    size_t lo = 0, hi = z->ntrans; /* invariant: trans[lo] <= t, answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The table answers up to and including its last transition; the footer answers after it (the
 * same split tzcode's localtime.c makes). Before the first transition, type 0 is in force. */
static zone_info info_at(const tz *z, int64_t t)
{
    if (z->ntrans == 0) {
        return z->has_footer ? footer_info(&z->footer, t) : type_info(z, 0);
    }
    if (t < z->trans[0]) {
        return type_info(z, 0);
    }
    if (t > z->trans[z->ntrans - 1] && z->has_footer) {
        return footer_info(&z->footer, t);
    }
    return type_info(z, z->trans_type[trans_index(z, t)]);
}

static int32_t offset_at(const tz *z, int64_t t)
{
    return info_at(z, t).off;
}

static bool footer_moves(const tz *z)
{
    return z->has_footer && z->footer.has_dst;
}

/* The first table or footer transition strictly after t, whether or not it changes the offset. */
static bool raw_next(const tz *z, int64_t t, int64_t *out)
{
    if (z->ntrans > 0 && t < z->trans[z->ntrans - 1]) {
        *out = t < z->trans[0] ? z->trans[0] : z->trans[trans_index(z, t) + 1];
        return true;
    }
    return footer_moves(z) && footer_next(&z->footer, t, out);
}

/* The last table or footer transition at or before t. */
static bool raw_prev(const tz *z, int64_t t, int64_t *out)
{
    size_t n = z->ntrans;
    if (footer_moves(z) && (n == 0 || t > z->trans[n - 1])) {
        int64_t f;
        if (footer_prev(&z->footer, t, &f) && (n == 0 || f > z->trans[n - 1])) {
            *out = f;
            return true;
        }
        if (n == 0) {
            return false;
        }
        *out = z->trans[n - 1];
        return true;
    }
    if (n > 0 && t >= z->trans[0]) {
        *out = z->trans[trans_index(z, t)];
        return true;
    }
    return false;
}

/* Transitions that only rename the zone or flip the DST flag are stepped over. The budget bounds
 * the walk: a footer whose events never change the offset (permanent DST written as two
 * coinciding switches) would otherwise loop forever. */
static bool next_change(const tz *z, int64_t t, int64_t *out)
{
    int64_t cur = t, at;
    for (size_t budget = z->ntrans + 8; budget > 0; budget--) {
        if (!raw_next(z, cur, &at)) {
            return false;
        }
        if (offset_at(z, at) != offset_at(z, at - 1)) {
            *out = at;
            return true;
        }
        cur = at;
    }
    return false;
}

static bool prev_change(const tz *z, int64_t t, int64_t *out)
{
    int64_t cur = t, at;
    for (size_t budget = z->ntrans + 8; budget > 0; budget--) {
        if (!raw_prev(z, cur, &at)) {
            return false;
        }
        if (offset_at(z, at) != offset_at(z, at - 1)) {
            *out = at;
            return true;
        }
        cur = at - 1;
    }
    return false;
}

/* ============================================================================================
 * Public queries
 * ========================================================================================== */

static bool in_range(int64_t t)
{
    return t >= TZ_MIN_UTC && t <= TZ_MAX_UTC;
}

int tz_offset_at(const tz *zone, int64_t utc_s, int32_t *out_offset_s, bool *out_is_dst,
                 const char **out_abbr)
{
    zone_info info;
    if (!zone) {
        zone = tz_utc();
    }
    if (!in_range(utc_s)) {
        return BP_E_INVAL;
    }
    info = info_at(zone, utc_s);
    if (out_offset_s) {
        *out_offset_s = info.off;
    }
    if (out_is_dst) {
        *out_is_dst = info.is_dst;
    }
    if (out_abbr) {
        *out_abbr = info.abbr;
    }
    return BP_OK;
}

int tz_utc_to_local(const tz *zone, int64_t utc_s, tz_local_time *out_local, int32_t *out_offset_s)
{
    int32_t off;
    if (!zone) {
        zone = tz_utc();
    }
    if (!in_range(utc_s)) {
        return BP_E_INVAL;
    }
    off = offset_at(zone, utc_s);
    tz_local_from_seconds(utc_s + off, out_local);
    if (out_offset_s) {
        *out_offset_s = off;
    }
    return BP_OK;
}

static int check_local(const tz_local_time *lt, bp_error *err)
{
    /* In order, so the day is checked against a valid month. */
    const struct {
        const char *what;
        int v, lo, hi;
    } fields[] = {
        {"year", lt->year, 1, 9999},
        {"month", lt->month, 1, 12},
        {"day", lt->day, 1, tz_days_in_month(lt->year, lt->month)},
        {"hour", lt->hour, 0, 23},
        {"minute", lt->minute, 0, 59},
        {"second", lt->second, 0, 59},
    };
    for (size_t i = 0; i < BP_ARRAY_LEN(fields); i++) {
        if (fields[i].v < fields[i].lo || fields[i].v > fields[i].hi) {
            return bp_err(err, BP_E_INVAL,
                          "local time %04d-%02d-%02d %02d:%02d:%02d: %s %d is out of range %d-%d",
                          lt->year, lt->month, lt->day, lt->hour, lt->minute, lt->second,
                          fields[i].what, fields[i].v, fields[i].lo, fields[i].hi);
        }
    }
    return BP_OK;
}

/* A reading L is produced by instant u exactly when u + offset(u) == L, and offsets stay within
 * about a day of zero, so only offsets in force within TZ_REACH of L can work. Collect those (the
 * one in force at the start of the window and the one after each change inside it) and keep each
 * offset that maps back to itself. */
int tz_local_to_utc(const tz *zone, const tz_local_time *local, int64_t out_candidates[2],
                    int *out_n, bp_error *err)
{
    int32_t offs[16];
    int64_t found[16], cur, at;
    size_t noffs = 0, nfound = 0;
    int rc;
    if (!zone) {
        zone = tz_utc();
    }
    *out_n = 0;
    if ((rc = check_local(local, err)) != BP_OK) {
        return rc;
    }
    int64_t L = tz_local_to_seconds(local);
    cur = L - TZ_REACH;
    offs[noffs++] = offset_at(zone, cur);
    while (noffs < BP_ARRAY_LEN(offs) && next_change(zone, cur, &at) && at <= L + TZ_REACH) {
        offs[noffs++] = offset_at(zone, at);
        cur = at;
    }
    for (size_t i = 0; i < noffs; i++) {
        int64_t u = L - offs[i];
        bool dup = false;
        if (offset_at(zone, u) != offs[i]) {
            continue;
        }
        for (size_t j = 0; j < nfound; j++) {
            dup = dup || found[j] == u;
        }
        if (!dup) {
            size_t j = nfound++;
            while (j > 0 && found[j - 1] > u) { /* keep ascending */
                found[j] = found[j - 1];
                j--;
            }
            found[j] = u;
        }
    }
    if (nfound >= 1) {
        out_candidates[0] = found[0];
    }
    if (nfound >= 2) {
        out_candidates[1] = found[nfound - 1];
    }
    *out_n = nfound > 2 ? 2 : (int)nfound;
    return BP_OK;
}

int tz_next_transition(const tz *zone, int64_t after_utc_s, int64_t *out_utc_s)
{
    if (!zone) {
        zone = tz_utc();
    }
    if (!in_range(after_utc_s)) {
        return BP_E_INVAL;
    }
    if (!next_change(zone, after_utc_s, out_utc_s) || *out_utc_s > TZ_MAX_UTC) {
        return BP_E_NOTFOUND;
    }
    return BP_OK;
}

int tz_prev_transition(const tz *zone, int64_t utc_s, int64_t *out_utc_s)
{
    if (!zone) {
        zone = tz_utc();
    }
    if (!in_range(utc_s)) {
        return BP_E_INVAL;
    }
    if (!prev_change(zone, utc_s, out_utc_s) || *out_utc_s < TZ_MIN_UTC) {
        return BP_E_NOTFOUND;
    }
    return BP_OK;
}

const char *tz_name(const tz *zone)
{
    return zone ? zone->name : "UTC";
}

/* ============================================================================================
 * Built-in fixed zones
 * ========================================================================================== */

static zone_type utc_types[1] = {{0, false, 0}};
static char utc_abbrs[] = "UTC";
static char utc_name[] = "UTC";
static const struct tz utc_zone = {
    .name = utc_name, .ntypes = 1, .types = utc_types, .abbrs = utc_abbrs};

const tz *tz_utc(void)
{
    return &utc_zone;
}

/* "UTC" and friends work without tzdata: a container image without zoneinfo still runs a
 * schedule written in UTC. */
static const char *builtin_abbr(const char *name)
{
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
        return "UTC";
    }
    if (strcmp(name, "GMT") == 0 || strcmp(name, "Etc/GMT") == 0) {
        return "GMT";
    }
    return NULL;
}

static int make_fixed(const char *name, const char *abbr, tz **out_zone, bp_error *err)
{
    tz *z = calloc(1, sizeof *z);
    if (!z) {
        goto fail;
    }
    z->name = util_strdup(name);
    z->types = calloc(1, sizeof *z->types);
    z->abbrs = util_strdup(abbr);
    if (!z->name || !z->types || !z->abbrs) {
        goto fail;
    }
    z->ntypes = 1;
    *out_zone = z;
    return BP_OK;
fail:
    tz_free(z);
    return bp_err(err, BP_E_NOMEM, "time zone %s: out of memory", name);
}

/* ============================================================================================
 * TZif parsing
 * ========================================================================================== */

typedef struct tzif_header {
    char version; /* 0, '2', '3', '4' */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t be64s(const unsigned char *p)
{
    uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
    return v <= INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

static int32_t be32s(const unsigned char *p)
{
    uint32_t v = be32(p);
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

#define CORRUPT(...) bp_err(err, BP_E_CORRUPT, __VA_ARGS__)

static int read_header(const char *name, const unsigned char *p, size_t avail, const char *which,
                       tzif_header *h, bp_error *err)
{
    if (avail < 44) {
        return CORRUPT("time zone %s: truncated TZif file (%s header needs 44 bytes, %zu left)",
                       name, which, avail);
    }
    if (memcmp(p, "TZif", 4) != 0) {
        return CORRUPT("time zone %s: not a TZif file (bad magic in %s header)", name, which);
    }
    h->version = (char)p[4];
    if (h->version != 0 && h->version != '2' && h->version != '3' && h->version != '4') {
        return CORRUPT("time zone %s: unsupported TZif version byte 0x%02x", name, p[4]);
    }
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    /* The limits are far above any real zone and keep every size computation below small. */
    if (h->timecnt > TZ_MAX_TRANSITIONS || h->typecnt > 256 || h->charcnt > 65536 ||
        h->leapcnt > 65536 || (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)) {
        return CORRUPT("time zone %s: implausible counts in %s header (timecnt %u, typecnt %u, "
                       "charcnt %u, leapcnt %u, isstdcnt %u, isutcnt %u)",
                       name, which, h->timecnt, h->typecnt, h->charcnt, h->leapcnt, h->isstdcnt,
                       h->isutcnt);
    }
    return BP_OK;
}

static size_t body_size(const tzif_header *h, size_t tsize)
{
    return (size_t)h->timecnt * tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Read and validate a data block whose times are `tsize` (4 or 8) bytes wide. */
static int read_body(tz *z, const tzif_header *h, const unsigned char *p, size_t tsize,
                     bp_error *err)
{
    const char *name = z->name;
    const unsigned char *types_p, *info_p, *chars_p, *std_p;
    if (h->typecnt == 0 || h->charcnt == 0) {
        return CORRUPT("time zone %s: TZif data has no local time types", name);
    }
    if (h->leapcnt != 0) {
        return bp_err(err, BP_E_INVAL,
                      "time zone %s has leap-second records (a \"right/\" zone); betpipe counts "
                      "POSIX seconds, use the zone without the right/ prefix",
                      name);
    }
    types_p = p + (size_t)h->timecnt * tsize;
    info_p = types_p + h->timecnt;
    chars_p = info_p + (size_t)h->typecnt * 6;
    std_p = chars_p + h->charcnt + (size_t)h->leapcnt * (tsize + 4); /* then the UT flags */

    z->ntrans = h->timecnt;
    z->ntypes = h->typecnt;
    z->trans = malloc((h->timecnt ? h->timecnt : 1) * sizeof *z->trans);
    z->trans_type = malloc(h->timecnt ? h->timecnt : 1);
    z->types = malloc(h->typecnt * sizeof *z->types);
    z->abbrs = malloc(h->charcnt);
    if (!z->trans || !z->trans_type || !z->types || !z->abbrs) {
        return bp_err(err, BP_E_NOMEM, "time zone %s: out of memory", name);
    }
    for (size_t i = 0; i < h->timecnt; i++) {
        int64_t t = tsize == 8 ? be64s(p + i * 8) : be32s(p + i * 4);
        if (t < -TZ_TIME_LIMIT || t > TZ_TIME_LIMIT) {
            return CORRUPT("time zone %s: transition %zu is out of range", name, i);
        }
        if (i > 0 && t <= z->trans[i - 1]) {
            return CORRUPT("time zone %s: transition %zu is not after transition %zu", name, i,
                           i - 1);
        }
        z->trans[i] = t;
        if (types_p[i] >= h->typecnt) {
            return CORRUPT("time zone %s: transition %zu names type %u of %u", name, i, types_p[i],
                           h->typecnt);
        }
        z->trans_type[i] = types_p[i];
    }
    for (size_t i = 0; i < h->typecnt; i++) {
        const unsigned char *q = info_p + i * 6;
        int32_t utoff = be32s(q);
        if (utoff < TZ_MIN_UTOFF || utoff > TZ_MAX_UTOFF || q[4] > 1 || q[5] >= h->charcnt) {
            return CORRUPT("time zone %s: local time type %zu is invalid (offset %d, dst %u, "
                           "designation %u of %u)",
                           name, i, utoff, q[4], q[5], h->charcnt);
        }
        z->types[i] = (zone_type){utoff, q[4] == 1, q[5]};
    }
    /* Every designation runs to a NUL inside the block when the block ends with one. */
    if (chars_p[h->charcnt - 1] != '\0') {
        return CORRUPT("time zone %s: time zone designations are not NUL-terminated", name);
    }
    memcpy(z->abbrs, chars_p, h->charcnt);
    for (size_t i = 0; i < h->isstdcnt + h->isutcnt; i++) {
        if (std_p[i] > 1) {
            return CORRUPT("time zone %s: standard/UT indicator %zu is not 0 or 1", name, i);
        }
    }
    return BP_OK;
}

/* The version 2+ footer: "\n" TZ-string "\n". An empty string means "no rule after the table". */
static int read_footer(tz *z, const unsigned char *p, const unsigned char *end, bp_error *err)
{
    char footer[128];
    const unsigned char *nl;
    size_t flen;
    if (p >= end || *p != '\n') {
        return CORRUPT("time zone %s: TZif footer is missing", z->name);
    }
    p++;
    nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || (flen = (size_t)(nl - p)) >= sizeof footer) {
        return CORRUPT("time zone %s: TZif footer is not a newline-terminated TZ string", z->name);
    }
    for (size_t i = 0; i < flen; i++) { /* keep the message printable */
        footer[i] = isprint(p[i]) ? (char)p[i] : '?';
    }
    footer[flen] = '\0';
    if (flen == 0) {
        return BP_OK;
    }
    if (!posix_parse(footer, &z->footer)) {
        return CORRUPT("time zone %s: TZif footer \"%s\" is not a valid POSIX TZ string", z->name,
                       footer);
    }
    z->has_footer = true;
    return BP_OK;
}

int tz_parse(const char *name, const unsigned char *data, size_t len, tz **out_zone, bp_error *err)
{
    tzif_header h1, h2;
    const unsigned char *p = data, *end = data + len;
    size_t b1, b2;
    int rc;
    tz *z = calloc(1, sizeof *z);
    *out_zone = NULL;
    if (!z || !(z->name = util_strdup(name ? name : "(unnamed)"))) {
        rc = bp_err(err, BP_E_NOMEM, "time zone: out of memory");
        goto fail;
    }
    name = z->name;
    if ((rc = read_header(name, p, len, "first", &h1, err)) != BP_OK) {
        goto fail;
    }
    p += 44;
    b1 = body_size(&h1, 4);
    if ((size_t)(end - p) < b1) {
        rc = CORRUPT("time zone %s: truncated TZif file (data block needs %zu bytes, %zu left)",
                     name, b1, (size_t)(end - p));
        goto fail;
    }
    if (h1.version == 0) {
        /* Version 1: the 32-bit block is all there is. */
        if ((rc = read_body(z, &h1, p, 4, err)) != BP_OK) {
            goto fail;
        }
    } else {
        /* Version 2+: skip the 32-bit block (kept for old readers) and read the 64-bit one. */
        p += b1;
        if ((rc = read_header(name, p, (size_t)(end - p), "second", &h2, err)) != BP_OK) {
            goto fail;
        }
        p += 44;
        b2 = body_size(&h2, 8);
        if ((size_t)(end - p) < b2) {
            rc = CORRUPT("time zone %s: truncated TZif file (64-bit data block needs %zu bytes, "
                         "%zu left)",
                         name, b2, (size_t)(end - p));
            goto fail;
        }
        if ((rc = read_body(z, &h2, p, 8, err)) != BP_OK ||
            (rc = read_footer(z, p + b2, end, err)) != BP_OK) {
            goto fail;
        }
    }
    *out_zone = z;
    return BP_OK;
fail:
    tz_free(z);
    return rc;
}

/* ============================================================================================
 * Loading from the zone directory
 * ========================================================================================== */

static int check_name(const char *name, bp_error *err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0) {
        return bp_err(err, BP_E_INVAL, "time zone name is empty");
    }
    if (len > TZ_NAME_MAX) {
        return bp_err(err, BP_E_INVAL, "time zone name is longer than %d bytes", TZ_NAME_MAX);
    }
    for (const char *c = name; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("/_+-.", *c)) {
            return bp_err(err, BP_E_INVAL,
                          "time zone '%.64s': invalid character '%c' (IANA names look like "
                          "Europe/London)",
                          name, isprint((unsigned char)*c) ? *c : '?');
        }
    }
    /* Each path component must be a real name: this is what keeps "../../etc/passwd" and
     * "/etc/passwd" out of the zone directory. */
    for (const char *c = name;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
            return bp_err(err, BP_E_INVAL,
                          "time zone '%.64s' is not a zone name (empty, '.' or '..' path "
                          "component; IANA names look like Europe/London)",
                          name);
        }
        if (!slash) {
            break;
        }
        c = slash + 1;
    }
    return BP_OK;
}

int tz_load(const char *name, tz **out_zone, bp_error *err)
{
    const char *dir = getenv("TZDIR"), *abbr;
    char *path = NULL, *buf = NULL;
    size_t len = 0;
    struct stat st;
    int rc;
    *out_zone = NULL;
    if ((rc = check_name(name, err)) != BP_OK) {
        return rc;
    }
    if ((abbr = builtin_abbr(name)) != NULL) {
        return make_fixed(name, abbr, out_zone, err);
    }
    if (!dir || !*dir) {
        dir = TZ_DEFAULT_DIR;
    }
    if (!(path = util_asprintf("%s/%s", dir, name))) {
        rc = bp_err(err, BP_E_NOMEM, "time zone %s: out of memory", name);
        goto fail;
    }
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            rc = bp_err(err, BP_E_NOTFOUND,
                        "unknown time zone '%s' (no %s; zones come from the tzdata package, or "
                        "$TZDIR)",
                        name, path);
        } else {
            char msg[128];
            rc = bp_err(err, BP_E_IO, "time zone %s: cannot stat %s: %s", name, path,
                        strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
        }
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = bp_err(err, BP_E_NOTFOUND, "unknown time zone '%s' (%s is not a zone file)", name,
                    path);
        goto fail;
    }
    if ((rc = util_read_file(path, TZ_FILE_MAX, &buf, &len, err)) != BP_OK) {
        bp_err_prefix(err, "time zone %s: ", name);
        goto fail;
    }
    rc = tz_parse(name, (const unsigned char *)buf, len, out_zone, err);
fail:
    free(path);
    free(buf);
    return rc;
}

/* ============================================================================================
 * The process-wide cache
 * ========================================================================================== */

/* Zones are few (one per distinct `timezone` in the schedules) and small, so a list under one
 * mutex is plenty; loading happens under the lock so two threads never load the same zone twice.
 * Entries are never removed: callers hold bare pointers. */
typedef struct cache_entry {
    struct cache_entry *next;
    tz *zone;
} cache_entry;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cache_entry *cache_head;

int tz_get(const char *name, const tz **out_zone, bp_error *err)
{
    cache_entry *e;
    tz *z = NULL;
    int rc;
    *out_zone = NULL;
    if ((rc = check_name(name, err)) != BP_OK) {
        return rc;
    }
    pthread_mutex_lock(&cache_mu);
    for (e = cache_head; e; e = e->next) {
        if (strcmp(e->zone->name, name) == 0) {
            *out_zone = e->zone;
            pthread_mutex_unlock(&cache_mu);
            return BP_OK;
        }
    }
    if ((rc = tz_load(name, &z, err)) != BP_OK) {
        goto fail;
    }
    if (!(e = malloc(sizeof *e))) {
        rc = bp_err(err, BP_E_NOMEM, "time zone %s: out of memory", name);
        goto fail;
    }
    e->zone = z;
    e->next = cache_head;
    cache_head = e;
    *out_zone = z;
    pthread_mutex_unlock(&cache_mu);
    return BP_OK;
fail:
    pthread_mutex_unlock(&cache_mu);
    tz_free(z);
    return rc;
}
