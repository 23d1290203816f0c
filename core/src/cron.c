/*
 * cron.c - cron expressions: parsing, next fire time across DST, plain-English descriptions.
 *
 * The parser turns each field into a bit set, so matching is a bit test and "the next allowed
 * hour at or after h" is a shift and a count of trailing zeros. The search for the next fire
 * works on the wall clock of the zone one offset segment at a time: between two changes of UTC
 * offset, local time and UTC differ by a constant, so within a segment the first matching local
 * minute is also the first matching instant. Segment boundaries are where the DST rules of
 * cron.h apply (a gap's skipped slots fire at the boundary; a repeated stretch is searched again
 * only for real-time expressions). Segments are months long, so a search touches one or two.
 */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* ============================================================================================
 * Fields
 * ========================================================================================== */

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const char *const month_abbr[12] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                           "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_abbr[7] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

typedef struct field_spec {
    const char *name;         /* as it appears in messages */
    int min, max;             /* values a user may write */
    int star_max;             /* where `*` and `N/step` end */
    int span;                 /* how many distinct values the field has: bounds the step */
    const char *const *names; /* three-letter names, or NULL */
    int nnames;               /* how many */
    int names_base;           /* value of names[0] */
    const char *names_hint;   /* "JAN-DEC" */
} field_spec;

static const field_spec field_specs[F_COUNT] = {
    {"minute", 0, 59, 59, 60, NULL, 0, 0, NULL},
    {"hour", 0, 23, 23, 24, NULL, 0, 0, NULL},
    {"day-of-month", 1, 31, 31, 31, NULL, 0, 0, NULL},
    {"month", 1, 12, 12, 12, month_abbr, 12, 1, "JAN-DEC"},
    {"day-of-week", 0, 7, 6, 7, dow_abbr, 7, 0, "SUN-SAT"},
};

typedef struct macro {
    const char *name;
    const char *expansion;
} macro;

static const macro macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* ============================================================================================
 * Parsing
 * ========================================================================================== */

typedef struct parse_ctx {
    const char *text; /* the expression as the user wrote it, for messages */
    bp_error *err;
} parse_ctx;

static BP_PRINTF(4, 5) int field_err(const parse_ctx *c, const field_spec *f, size_t col,
                                     const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return bp_err(c->err, BP_E_INVAL, "cron \"%.160s\": %s field (column %zu): %s", c->text,
                  f->name, col, detail);
}

static int parse_number(const char **pp, const char *end)
{
    const char *p = *pp;
    int v = 0;
    while (p < end && isdigit((unsigned char)*p)) {
        if (v < 1000000) {
            v = v * 10 + (*p - '0'); /* saturates: anything this big is out of range anyway */
        }
        p++;
    }
    *pp = p;
    return v;
}

/* A value: digits, or a name in the month and day-of-week fields. */
static int parse_value(const parse_ctx *c, const field_spec *f, size_t col, const char **pp,
                       const char *end, int *out)
{
    const char *p = *pp, *q = p;
    if (p >= end) {
        return field_err(c, f, col, "missing value");
    }
    if (isdigit((unsigned char)*p)) {
        int v = parse_number(&q, end);
        if (v < f->min || v > f->max) {
            return field_err(c, f, col, "%.*s is out of range %d-%d", (int)(q - p), p, f->min,
                             f->max);
        }
        *out = v;
    } else if (isalpha((unsigned char)*p)) {
        bool found = false;
        while (q < end && isalnum((unsigned char)*q)) {
            q++;
        }
        if (!f->names) {
            return field_err(c, f, col,
                             "'%.*s' is not a number (names are allowed only in the month and "
                             "day-of-week fields)",
                             (int)(q - p), p);
        }
        for (int i = 0; i < f->nnames && q - p == 3; i++) {
            if (strncasecmp(p, f->names[i], 3) == 0) {
                *out = f->names_base + i;
                found = true;
                break;
            }
        }
        if (!found) {
            return field_err(c, f, col, "unknown name '%.*s' (expected %s)", (int)(q - p), p,
                             f->names_hint);
        }
    } else {
        return field_err(c, f, col, "unexpected '%c'", isprint((unsigned char)*p) ? *p : '?');
    }
    *pp = q;
    return BP_OK;
}

/* One list item: `*`, `v`, `a-b`, each optionally `/step`. */
static int parse_item(const parse_ctx *c, const field_spec *f, const char *a, const char *b,
                      size_t col, uint64_t *bits)
{
    const char *p = a;
    int lo, hi, step = 1, rc;
    bool star = false, range = false;
    if (p == b) {
        return field_err(c, f, col, "empty list item");
    }
    if (*p == '*') {
        star = true;
        lo = f->min;
        hi = f->star_max;
        p++;
    } else {
        if ((rc = parse_value(c, f, col, &p, b, &lo)) != BP_OK) {
            return rc;
        }
        hi = lo;
        if (p < b && *p == '-') {
            p++;
            range = true;
            if ((rc = parse_value(c, f, col, &p, b, &hi)) != BP_OK) {
                return rc;
            }
        }
    }
    if (p < b && *p == '/') {
        p++;
        if (p >= b || !isdigit((unsigned char)*p)) {
            return field_err(c, f, col, "a step must be a number after '/'");
        }
        step = parse_number(&p, b);
        if (step < 1) {
            return field_err(c, f, col, "step must be at least 1");
        }
        if (step > f->span) {
            return field_err(c, f, col, "step %d is larger than the field's %d values (%d-%d)",
                             step, f->span, f->min, f->max);
        }
        if (!star && !range) {
            hi = f->star_max; /* "5/15" is "5-59/15" */
        }
    }
    if (p < b) {
        return field_err(c, f, col, "unexpected '%c'", isprint((unsigned char)*p) ? *p : '?');
    }
    if (lo > hi) {
        if (!range) {
            return field_err(c, f, col, "%d/%d starts after the field's last value %d", lo, step,
                             hi);
        }
        return field_err(c, f, col, "range %d-%d is backwards (ranges do not wrap around)", lo, hi);
    }
    for (int v = lo; v <= hi; v += step) {
        *bits |= 1ULL << (f == &field_specs[F_DOW] && v == 7 ? 0 : v);
    }
    return BP_OK;
}

static int parse_field(const parse_ctx *c, const field_spec *f, const char *s, size_t len,
                       size_t col, uint64_t *out_bits)
{
    const char *end = s + len, *item = s;
    int rc;
    *out_bits = 0;
    for (;;) {
        const char *comma = memchr(item, ',', (size_t)(end - item));
        const char *item_end = comma ? comma : end;
        if ((rc = parse_item(c, f, item, item_end, col + (size_t)(item - s), out_bits)) != BP_OK) {
            return rc;
        }
        if (!comma) {
            return BP_OK;
        }
        item = comma + 1;
    }
}

typedef struct token {
    const char *s;
    size_t len;
} token;

/* Split on blanks; returns the number of tokens (even beyond max, which are not stored). */
static size_t split_fields(const char *text, token *toks, size_t max)
{
    size_t n = 0;
    const char *p = text;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) {
            p++;
        }
        if (!*p) {
            return n;
        }
        const char *start = p;
        while (*p && !isspace((unsigned char)*p)) {
            p++;
        }
        if (n < max) {
            toks[n] = (token){start, (size_t)(p - start)};
        }
        n++;
    }
}

/* Parse five fields; `c->text` is what messages quote and columns count in. */
static int parse_five(const parse_ctx *c, const token *t, cron_expr *e)
{
    uint64_t bits[F_COUNT];
    int rc;
    for (int i = 0; i < F_COUNT; i++) {
        size_t col = (size_t)(t[i].s - c->text) + 1;
        if ((rc = parse_field(c, &field_specs[i], t[i].s, t[i].len, col, &bits[i])) != BP_OK) {
            return rc;
        }
    }
    e->minutes = bits[F_MINUTE];
    e->hours = (uint32_t)bits[F_HOUR];
    e->days = (uint32_t)bits[F_DOM];
    e->months = (uint16_t)bits[F_MONTH];
    e->weekdays = (uint8_t)bits[F_DOW];
    e->dom_star = t[F_DOM].s[0] == '*';
    e->dow_star = t[F_DOW].s[0] == '*';
    e->real_time = t[F_MINUTE].s[0] == '*' || t[F_HOUR].s[0] == '*';
    return BP_OK;
}

int cron_parse(const char *text, cron_expr *out_expr, bp_error *err)
{
    token toks[F_COUNT + 2];
    parse_ctx c = {text, err};
    size_t n, pos = 0;
    int rc;
    memset(out_expr, 0, sizeof *out_expr);
    if (!text) {
        return bp_err(err, BP_E_INVAL, "cron expression is missing");
    }
    if (strlen(text) >= CRON_TEXT_MAX) {
        return bp_err(err, BP_E_INVAL, "cron \"%.40s...\": expression is longer than %d characters",
                      text, CRON_TEXT_MAX - 1);
    }
    n = split_fields(text, toks, BP_ARRAY_LEN(toks));
    if (n == 0) {
        return bp_err(err, BP_E_INVAL, "cron \"%s\": empty expression", text);
    }
    if (toks[0].s[0] == '@') {
        const macro *m = NULL;
        for (size_t i = 0; i < BP_ARRAY_LEN(macros); i++) {
            if (strlen(macros[i].name) == toks[0].len &&
                strncasecmp(macros[i].name, toks[0].s, toks[0].len) == 0) {
                m = &macros[i];
            }
        }
        if (!m) {
            return bp_err(err, BP_E_INVAL,
                          "cron \"%s\": unknown macro '%.*s' (expected @yearly, @annually, "
                          "@monthly, @weekly, @daily, @midnight or @hourly)",
                          text, (int)toks[0].len, toks[0].s);
        }
        if (n != 1) {
            return bp_err(err, BP_E_INVAL, "cron \"%s\": %s stands alone (found %zu fields)", text,
                          m->name, n);
        }
        /* Parse the expansion; it is known good, so messages never quote it. */
        parse_ctx mc = {m->expansion, err};
        token mt[F_COUNT];
        split_fields(m->expansion, mt, F_COUNT);
        if ((rc = parse_five(&mc, mt, out_expr)) != BP_OK) {
            return rc;
        }
        util_strlcpy(out_expr->text, m->name, sizeof out_expr->text);
        return BP_OK;
    }
    if (n != F_COUNT) {
        return bp_err(err, BP_E_INVAL,
                      "cron \"%s\": expected 5 fields (minute hour day-of-month month "
                      "day-of-week), found %zu%s",
                      text, n, n > F_COUNT ? " (seconds and year fields are not supported)" : "");
    }
    if ((rc = parse_five(&c, toks, out_expr)) != BP_OK) {
        memset(out_expr, 0, sizeof *out_expr);
        return rc;
    }
    for (size_t i = 0; i < F_COUNT; i++) { /* text is < CRON_TEXT_MAX, so this fits */
        if (i > 0) {
            out_expr->text[pos++] = ' ';
        }
        memcpy(out_expr->text + pos, toks[i].s, toks[i].len);
        pos += toks[i].len;
    }
    out_expr->text[pos] = '\0';
    return BP_OK;
}

/* ============================================================================================
 * Matching and searching the wall clock
 * ========================================================================================== */

/* The lowest set bit at index >= from, or -1. */
static int next_bit(uint64_t mask, int from)
{
    if (from >= 64) {
        return -1;
    }
    mask >>= from;
    if (!mask) {
        return -1;
    }
#if defined(__GNUC__)
    return from + __builtin_ctzll(mask);
#else
    while (!(mask & 1)) {
        mask >>= 1;
        from++;
    }
    return from;
#endif
}

static bool day_ok(const cron_expr *e, int d, int wd)
{
    bool dom = (e->days >> d) & 1u, dow = (e->weekdays >> wd) & 1u;
    return (e->dom_star || e->dow_star) ? (dom && dow) : (dom || dow);
}

bool cron_day_matches(const cron_expr *e, int64_t y, int m, int d)
{
    if (m < 1 || m > 12 || d < 1 || d > tz_days_in_month(y, m) || !((e->months >> m) & 1u)) {
        return false;
    }
    return day_ok(e, d, tz_weekday(tz_days_from_civil(y, m, d)));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* A position on the wall clock while searching. */
typedef struct cursor {
    int64_t y;
    int m, d, h, mi;
    int64_t days; /* day number of y-m-d */
} cursor;

static void to_month(cursor *c, int64_t y, int m, int d)
{
    c->y = y;
    c->m = m;
    c->d = d;
    c->h = 0;
    c->mi = 0;
    c->days = tz_days_from_civil(y, m, d);
}

static void next_month(cursor *c)
{
    if (c->m == 12) {
        to_month(c, c->y + 1, 1, 1);
    } else {
        to_month(c, c->y, c->m + 1, 1);
    }
}

static void next_day(const cron_expr *e, cursor *c)
{
    int dim = tz_days_in_month(c->y, c->m);
    int nd = c->d + 1;
    /* When the day-of-month bit must hold (AND rule), jump straight to the next allowed day. */
    if (e->dom_star || e->dow_star) {
        nd = next_bit(e->days, nd);
    }
    if (nd < 0 || nd > dim) {
        next_month(c);
        return;
    }
    c->days += nd - c->d;
    c->d = nd;
    c->h = 0;
    c->mi = 0;
}

/* The first whole local minute L with lo <= L < hi (local seconds, wall clock as if UTC) that
 * the expression matches. Terminates because every step moves the cursor forward and the loop
 * ends once a day starts at or after hi. */
static bool local_search(const cron_expr *e, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t start = -floor_div(-lo, 60) * 60; /* round up to a whole minute */
    int64_t sod;
    cursor c;
    if (start >= hi) {
        return false;
    }
    c.days = floor_div(start, 86400);
    sod = start - c.days * 86400;
    tz_civil_from_days(c.days, &c.y, &c.m, &c.d);
    c.h = (int)(sod / 3600);
    c.mi = (int)(sod % 3600 / 60);
    for (;;) {
        if (c.days * 86400 >= hi) {
            return false;
        }
        if (!((e->months >> c.m) & 1u)) {
            int nm = next_bit(e->months, c.m + 1);
            if (nm < 0) {
                to_month(&c, c.y + 1, next_bit(e->months, 1), 1);
            } else {
                to_month(&c, c.y, nm, 1);
            }
            continue;
        }
        if (!day_ok(e, c.d, tz_weekday(c.days))) {
            next_day(e, &c);
            continue;
        }
        int h = next_bit(e->hours, c.h);
        if (h < 0) {
            next_day(e, &c);
            continue;
        }
        if (h != c.h) {
            c.h = h;
            c.mi = 0;
        }
        int mi = next_bit(e->minutes, c.mi);
        if (mi < 0) {
            if (++c.h > 23) {
                next_day(e, &c);
            } else {
                c.mi = 0;
            }
            continue;
        }
        int64_t L = c.days * 86400 + c.h * 3600 + mi * 60;
        if (L >= hi) {
            return false;
        }
        *out = L;
        return true;
    }
}

/* ============================================================================================
 * The next fire time
 * ========================================================================================== */

/* Walk the zone's offset segments forward from `after`. In each segment [seg_start, seg_end)
 * with offset `off` (the offset before it was `prev_off`):
 *   - if the segment opens a gap (off > prev_off), any slot in the skipped local stretch
 *     [seg_start + prev_off, seg_start + off) fires at seg_start (rule 2);
 *   - if it opens an overlap (off < prev_off), the local stretch [seg_start + off,
 *     seg_start + prev_off) was already lived through in the previous segment: a fixed-time
 *     expression skips it, a real-time one fires again (rule 3);
 *   - otherwise the first matching local minute in the segment, minus `off`, is the answer. */
int cron_next(const cron_expr *e, const tz *zone, int64_t after_utc_s, int64_t *out_next_utc_s)
{
    int64_t from, horizon, seg_start = 0, seg_end, lo, hi, L;
    int32_t off = 0, prev_off = 0;
    bool has_prev;
    if (!zone) {
        zone = tz_utc();
    }
    if (after_utc_s < TZ_MIN_UTC || after_utc_s >= TZ_MAX_UTC) {
        return after_utc_s == TZ_MAX_UTC ? BP_E_NOTFOUND : BP_E_INVAL;
    }
    horizon = after_utc_s + CRON_SEARCH_YEARS * 366LL * 86400;
    if (horizon > TZ_MAX_UTC + 1) {
        horizon = TZ_MAX_UTC + 1;
    }
    /* The first segment is the one holding the first candidate instant, after + 1. */
    from = after_utc_s + 1;
    tz_offset_at(zone, from, &off, NULL, NULL);
    has_prev = tz_prev_transition(zone, from, &seg_start) == BP_OK && seg_start > TZ_MIN_UTC;
    if (has_prev) {
        tz_offset_at(zone, seg_start - 1, &prev_off, NULL, NULL);
    }
    for (;;) {
        if (tz_next_transition(zone, from, &seg_end) != BP_OK) {
            seg_end = INT64_MAX;
        }
        /* Rule 2: slots in the skipped stretch fire when the segment opens - unless that was at
         * or before `after` (then they fired already). */
        if (has_prev && seg_start > after_utc_s && off > prev_off &&
            local_search(e, seg_start + prev_off, seg_start + off, &L)) {
            *out_next_utc_s = seg_start;
            return BP_OK;
        }
        lo = from + off;
        if (!e->real_time && has_prev && off < prev_off && lo < seg_start + prev_off) {
            lo = seg_start + prev_off; /* rule 3: the repeated stretch, second time round */
        }
        hi = seg_end < horizon ? seg_end : horizon;
        if (local_search(e, lo, hi + off, &L)) {
            *out_next_utc_s = L - off;
            return BP_OK;
        }
        if (seg_end >= horizon) {
            return BP_E_NOTFOUND;
        }
        has_prev = true;
        seg_start = from = seg_end;
        prev_off = off;
        tz_offset_at(zone, seg_start, &off, NULL, NULL);
    }
}

/* ============================================================================================
 * Describing
 * ========================================================================================== */

static const char *const month_long[13] = {"",        "January",  "February", "March",  "April",
                                           "May",     "June",     "July",     "August", "September",
                                           "October", "November", "December"};
static const char *const dow_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};

typedef struct sbuf {
    char *buf;
    size_t cap, len; /* len counts what was wanted, like snprintf */
} sbuf;

static BP_PRINTF(2, 3) void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    if (b->len < b->cap) {
        n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    } else {
        n = vsnprintf(NULL, 0, fmt, ap);
    }
    va_end(ap);
    if (n > 0) {
        b->len += (size_t)n;
    }
}

static int popcount(uint64_t v)
{
    int n = 0;
    for (; v; v &= v - 1) {
        n++;
    }
    return n;
}

/* s >= 2 when mask is exactly {0, s, 2s, ...} below n, else 0. */
static int step_of(uint64_t mask, int n)
{
    int s = next_bit(mask, 1);
    uint64_t want = 0;
    if (!(mask & 1u) || s < 2) {
        return 0;
    }
    for (int v = 0; v < n; v += s) {
        want |= 1ULL << v;
    }
    return want == mask ? s : 0;
}

static void sb_value(sbuf *b, int v, const char *const *names)
{
    if (names) {
        sb_add(b, "%s", names[v]);
    } else {
        sb_add(b, "%d", v);
    }
}

/* "1-5, 10 and 15": runs of three or more become ranges. */
static void sb_list(sbuf *b, uint64_t mask, int lo, int hi, const char *const *names)
{
    int items = 0, total = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int v = lo; v <= hi; v++) {
            int end = v;
            if (!((mask >> v) & 1u)) {
                continue;
            }
            while (end + 1 <= hi && ((mask >> (end + 1)) & 1u)) {
                end++;
            }
            if (end - v < 2) {
                end = v;
            }
            if (pass == 0) {
                total++;
            } else {
                if (items > 0) {
                    sb_add(b, items == total - 1 ? " and " : ", ");
                }
                sb_value(b, v, names);
                if (end > v) {
                    sb_add(b, "-");
                    sb_value(b, end, names);
                }
                items++;
            }
            v = end;
        }
    }
}

size_t cron_describe(const cron_expr *e, char *buf, size_t len)
{
    sbuf b = {buf, len, 0};
    int nmin = popcount(e->minutes), nhour = popcount(e->hours);
    bool all_hours = nhour == 24, at_form = false;
    bool all_dom = e->days == 0xFFFFFFFEu, all_dow = e->weekdays == 0x7Fu;
    bool and_rule = e->dom_star || e->dow_star;
    int mstep = step_of(e->minutes, 60), hstep = step_of(e->hours, 24);
    if (len > 0) {
        buf[0] = '\0';
    }
    /* The time of day. */
    if (nmin == 60 || mstep) {
        if (nmin == 60) {
            sb_add(&b, "every minute");
        } else {
            sb_add(&b, "every %d minutes", mstep);
        }
        if (!all_hours) {
            sb_add(&b, " during hour%s ", nhour > 1 ? "s" : "");
            sb_list(&b, e->hours, 0, 23, NULL);
        }
    } else if (!all_hours && nmin * nhour <= 4) {
        int i = 0, total = nmin * nhour;
        sb_add(&b, "at ");
        for (int h = 0; h < 24; h++) {
            for (int m = 0; m < 60; m++) {
                if (((e->hours >> h) & 1u) && ((e->minutes >> m) & 1u)) {
                    sb_add(&b, "%s%02d:%02d", i == 0 ? "" : (i == total - 1 ? " and " : ", "), h,
                           m);
                    i++;
                }
            }
        }
        at_form = true;
    } else if (all_hours || (hstep && nmin == 1)) {
        sb_add(&b, "at minute%s ", nmin > 1 ? "s" : "");
        sb_list(&b, e->minutes, 0, 59, NULL);
        if (all_hours) {
            sb_add(&b, " of every hour");
        } else {
            sb_add(&b, " of every %d hours", hstep);
        }
    } else {
        sb_add(&b, "at minute%s ", nmin > 1 ? "s" : "");
        sb_list(&b, e->minutes, 0, 59, NULL);
        sb_add(&b, " of hour%s ", nhour > 1 ? "s" : "");
        sb_list(&b, e->hours, 0, 23, NULL);
        at_form = true;
    }
    /* The days. */
    if (and_rule ? (all_dom && all_dow) : (all_dom || all_dow)) {
        if (at_form) {
            sb_add(&b, " every day");
        }
    } else if (and_rule) {
        if (!all_dom) {
            sb_add(&b, " on day%s ", popcount(e->days) > 1 ? "s" : "");
            sb_list(&b, e->days, 1, 31, NULL);
            sb_add(&b, " of the month");
        }
        if (!all_dow) {
            sb_add(&b, all_dom ? " on " : " if it is a ");
            sb_list(&b, e->weekdays, 0, 6, dow_long);
        }
    } else {
        sb_add(&b, " on day%s ", popcount(e->days) > 1 ? "s" : "");
        sb_list(&b, e->days, 1, 31, NULL);
        sb_add(&b, " of the month and on every ");
        sb_list(&b, e->weekdays, 0, 6, dow_long);
    }
    /* The months. */
    if (e->months != 0x1FFEu) {
        sb_add(&b, " in ");
        sb_list(&b, e->months, 1, 12, month_long);
    }
    return b.len;
}
