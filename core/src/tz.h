/*
 * tz.h - IANA time zones read straight from TZif files, without touching process-global state.
 *
 * Why not localtime_r? Because choosing the zone means setenv("TZ") + tzset(), which changes the
 * whole process and races with every other thread that reads the clock. The beat evaluates each
 * schedule entry in its own zone, in a daemon full of threads, so we read the zone files
 * ourselves: a zone is an immutable object that any number of threads may query at once.
 *
 * Where zones come from
 *   $TZDIR if set, else /usr/share/zoneinfo. On Debian and Ubuntu that directory is installed by
 *   the `tzdata` package, which is a RUNTIME DEPENDENCY of betpipe (every schedule entry with a
 *   `timezone` other than UTC needs it). "UTC", "Etc/UTC", "GMT" and "Etc/GMT" are built in and
 *   work without tzdata.
 *
 * What is read
 *   TZif versions 1 to 4 (RFC 9636). For version 2 and later the 64-bit body is used and the
 *   POSIX TZ footer (e.g. "GMT0BST,M3.5.0/1,M10.5.0") answers for instants after the last stored
 *   transition, so 2040 is as right as 2024 even in "slim" files. Every count, index and
 *   designation is validated: a damaged file is an error (BP_E_CORRUPT), never a crash. Zones
 *   with leap-second records ("right/...") are refused: their clock is not POSIX time.
 *
 * Instants are int64 seconds since the Unix epoch (POSIX, no leap seconds). Public functions
 * accept instants from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z (TZ_MIN_UTC..TZ_MAX_UTC).
 *
 * A NULL zone means UTC in every query below.
 *
 * Thread-safety: a loaded tz is immutable, so all query functions may be called concurrently on
 * the same zone. tz_load/tz_free are safe in different threads on different zones; tz_get is
 * thread-safe.
 */
#ifndef BP_CORE_TZ_H
#define BP_CORE_TZ_H

#include <stdbool.h>
#include <stdint.h>

#include "betpipe/status.h"

#define TZ_MIN_UTC  (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TZ_MAX_UTC  253402300799LL   /* 9999-12-31T23:59:59Z */
#define TZ_NAME_MAX 255              /* longest accepted zone name */

typedef struct tz tz;

/* A wall-clock reading in some zone, Gregorian calendar. No time zone, no DST flag: the same
 * reading can name zero, one or two instants (see tz_local_to_utc). */
typedef struct tz_local_time {
    int year;   /* 1..9999 */
    int month;  /* 1..12 */
    int day;    /* 1..31 */
    int hour;   /* 0..23 */
    int minute; /* 0..59 */
    int second; /* 0..59 */
} tz_local_time;

/* ---- loading ----------------------------------------------------------------------------- */

/* Load the zone `name` ("Europe/London") from $TZDIR or /usr/share/zoneinfo into a new zone the
 * caller owns (free with tz_free). Names are IANA names: letters, digits and "/_+-.", no empty,
 * "." or ".." component, not absolute, at most TZ_NAME_MAX bytes; anything else is BP_E_INVAL so
 * a name from a schedule file can never read outside the zone directory. Errors:
 * BP_E_NOTFOUND (no such zone), BP_E_INVAL (bad name), BP_E_CORRUPT (not a valid TZif file),
 * BP_E_IO, BP_E_NOMEM. Thread-safe. */
int tz_load(const char *name, tz **out_zone, bp_error *err);

/* Parse TZif bytes (a whole file) into a new zone named `name` (copied; used in messages and
 * tz_name). For callers that already hold the bytes, and for tests. Thread-safe. */
int tz_parse(const char *name, const unsigned char *data, size_t len, tz **out_zone, bp_error *err);

/* Free a zone from tz_load/tz_parse. NULL is a no-op. Never call it on a zone from tz_get. */
void tz_free(tz *zone);

/* The process-wide zone cache: the zone `name`, loaded on first use and kept until the process
 * exits. The zone is borrowed: never free it. Thread-safe (a mutex guards the cache; lookups
 * after the first are a short list walk). Failures are not cached, so installing tzdata while
 * running helps. Same errors as tz_load. */
int tz_get(const char *name, const tz **out_zone, bp_error *err);

/* The built-in UTC zone (static, never NULL, never freed). */
const tz *tz_utc(void);

/* The name the zone was loaded under ("UTC" for NULL). Borrowed from the zone. */
const char *tz_name(const tz *zone);

/* ---- queries ----------------------------------------------------------------------------- */

/* The UTC offset in seconds east of Greenwich in effect at `utc_s`, whether it is daylight-saving
 * time, and the abbreviation ("BST"; borrowed from the zone). Any out pointer may be NULL.
 * BP_E_INVAL when utc_s is outside TZ_MIN_UTC..TZ_MAX_UTC. */
int tz_offset_at(const tz *zone, int64_t utc_s, int32_t *out_offset_s, bool *out_is_dst,
                 const char **out_abbr);

/* The wall-clock reading at `utc_s` (and, if not NULL, the offset used). BP_E_INVAL when out of
 * range. At the very ends of the range the reading may fall in year 0 or 10000. */
int tz_utc_to_local(const tz *zone, int64_t utc_s, tz_local_time *out_local, int32_t *out_offset_s);

/* Every instant whose wall clock in `zone` reads `local`, ascending, in out_candidates:
 *   *out_n = 1  the ordinary case;
 *   *out_n = 0  `local` falls in a gap (spring-forward: 01:30 on 2024-03-31 in Europe/London);
 *   *out_n = 2  `local` falls in an overlap (fall-back: 01:30 on 2024-10-27 in Europe/London is
 *               00:30Z in BST and 01:30Z in GMT); [0] is the first occurrence.
 * (Should history ever repeat a reading three times, the first and last are reported.)
 * BP_E_INVAL, naming the bad field, when `local` is not a valid calendar reading. */
int tz_local_to_utc(const tz *zone, const tz_local_time *local, int64_t out_candidates[2],
                    int *out_n, bp_error *err);

/* The first instant strictly after `after_utc_s` at which the zone's UTC offset changes (a change
 * of abbreviation or DST flag alone does not count). BP_E_NOTFOUND when the offset never changes
 * again (UTC, zones that abolished DST). */
int tz_next_transition(const tz *zone, int64_t after_utc_s, int64_t *out_utc_s);

/* The last instant at or before `utc_s` at which the UTC offset changed; BP_E_NOTFOUND if none. */
int tz_prev_transition(const tz *zone, int64_t utc_s, int64_t *out_utc_s);

/* ---- calendar arithmetic (proleptic Gregorian; pure, thread-safe) -----------------------------
 */

/* Days since 1970-01-01 for y-m-d (m 1..12, d 1..31; not range-checked). */
int64_t tz_days_from_civil(int64_t y, int m, int d);
/* The date of a day number. */
void tz_civil_from_days(int64_t days, int64_t *out_y, int *out_m, int *out_d);
/* 0 = Sunday .. 6 = Saturday. */
int tz_weekday(int64_t days);
bool tz_is_leap_year(int64_t y);
int tz_days_in_month(int64_t y, int m);

/* Seconds since the epoch "as if the wall clock were UTC" for a reading, and back. These do no
 * zone arithmetic and no validation; they let callers do calendar maths on wall-clock time. */
int64_t tz_local_to_seconds(const tz_local_time *local);
void tz_local_from_seconds(int64_t local_s, tz_local_time *out_local);

#endif
