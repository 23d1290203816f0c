/*
 * schedule.h - schedule files (schedules/NAME.json): what the beat fires, when, and how.
 *
 * A schedule file is a JSON object:
 *
 *   {
 *     "description": "optional text",
 *     "timezone": "Europe/London",          default zone of the cron entries below (UTC if absent)
 *     "entries": {
 *       "collect_odds": {                    the entry's name: [A-Za-z0-9_.-], 1-40 characters
 *         "job": "data.collect_odds",        job type (required)
 *         "args": {"leagues": ["E0"]},       job arguments (default {}), checked against the
 *                                            type's schema when the beat starts
 *         "every": "15m",                    either "every" (a whole number of seconds, >= 1s) ...
 *         "cron": "*\/15 * * * *",            ... or "cron" (see cron.h), never both
 *         "timezone": "Europe/London",       IANA zone the cron fields are read in (cron only)
 *         "queue": "data_queue",             job options: queue, priority 0-9, max_retries,
 *         "priority": 7, "max_retries": 2,   expires (a duration counted from the enqueue: a job
 *         "expires": "10m",                  not started by then becomes EXPIRED)
 *         "enabled": true,                   default true
 *         "missed": "skip",                  missed-run policy: "skip" (default) or "run_once"
 *         "grace": "1h",                     how old a missed slot may be to count (default 1h,
 *                                            at most 7d)
 *         "no_overlap": true,                default true: no new run while the last one is live
 *         "description": "optional text"
 *       }
 *     }
 *   }
 *
 * (`*\/` stands for star-slash, which a C comment cannot contain.)
 *
 * Slots. A slot is an instant (UTC, whole seconds) at which an entry is due. Cron slots come
 * from cron_next() in the entry's zone, with the DST rules of cron.h. "every" slots are aligned
 * to the Unix epoch: the slots of "every 15m" are the instants t with t mod 900 = 0, so every
 * daemon computes the same slots without talking to the others; an "every" entry therefore has
 * no time zone (a timezone key on it is an error: use cron for wall-clock times).
 *
 * Errors name the file, the entry and the field:
 *   schedules/a.json: entries.collect_odds.cron: cron "*\/0 * * * *": minute field (column 1):
 *   step must be at least 1
 *   schedules/a.json: entries.collect_odds: unknown field 'crn' (did you mean 'cron'?)
 * A file is loaded whole or not at all.
 *
 * Thread-safety: a loaded schedule_set is immutable except for the `problem` field of its
 * entries, which the beat fills once before sharing it; every function here is reentrant.
 */
#ifndef BP_CORE_SCHEDULE_H
#define BP_CORE_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/job.h"
#include "betpipe/status.h"
#include "config.h"
#include "cron.h"
#include "tz.h"

#define SCHEDULE_NAME_MAX         40                     /* longest entry name */
#define SCHEDULE_DEFAULT_GRACE_MS (3600LL * 1000)        /* 1 h */
#define SCHEDULE_MAX_GRACE_MS     (7LL * 86400 * 1000)   /* 7 d */
#define SCHEDULE_MAX_EVERY_MS     (366LL * 86400 * 1000) /* 366 d */
#define SCHEDULE_SLOT_ISO_SIZE    24                     /* "2026-11-22T10:15:00Z" + NUL, padded */

typedef enum schedule_missed {
    SCHEDULE_MISSED_SKIP = 0, /* a slot missed while no daemon ran is logged, not run */
    SCHEDULE_MISSED_RUN_ONCE  /* the most recent missed slot runs once when a daemon starts */
} schedule_missed;

typedef struct schedule_entry {
    char name[SCHEDULE_NAME_MAX + 1];
    char *file;     /* the file it came from */
    char *job_type; /* "data.collect_odds" */
    json_t *args;   /* an object, owned */
    char *queue;    /* NULL = the job type's queue */
    int priority;
    bool has_priority;
    int max_retries;
    bool has_max_retries;
    int64_t expires_ms; /* 0 = never; counted from the enqueue */
    bool is_cron;       /* cron entry, else "every" */
    cron_expr cron;
    int64_t every_ms; /* "every" entries: a whole number of seconds, in ms */
    const tz *zone;   /* cron entries: from tz_get (process lifetime, never freed); NULL = UTC */
    bool enabled;
    schedule_missed missed;
    int64_t grace_ms;
    bool no_overlap;
    char *description; /* or NULL */
    /* Why the beat cannot run this entry in this process ("job type 'ml.train_all' is not
     * loaded"), or NULL. Filled by the beat (beat_check_entries), not by the parser. */
    char *problem;
    /* The problem is only that no loaded plugin registers the job type: the entry waits for its
     * plugin (a warning for `config check`), where bad args or an unknown queue are errors. */
    bool type_missing;
} schedule_entry;

typedef struct schedule_set {
    schedule_entry *entries;
    size_t n;
    json_t *files;    /* array of the file paths loaded (strings) */
    json_t *problems; /* array of {"file": path, "error": message} for files not loaded */
    char *source;     /* where the list of paths came from, for `schedule list` */
} schedule_set;

/* An empty set (NULL on allocation failure). */
schedule_set *schedule_set_new(void);
void schedule_set_free(schedule_set *s);

/* Parse the text of one schedule file (named `file` in messages) and append its entries to `s`.
 * All or nothing: on error nothing is appended and err names file, entry and field. An entry
 * name that is already in `s` is an error (names are unique across all files). */
int schedule_parse(schedule_set *s, const char *file, const char *text, bp_error *err);

/* Read and parse one file (see schedule_parse). */
int schedule_load_file(schedule_set *s, const char *path, bp_error *err);

/* Load every path of the list: a file, or a directory whose *.json files are read in name order.
 * A file that cannot be read or parsed is recorded in s->problems (and logged by the caller);
 * the others are loaded. A missing path is a problem too, unless `missing_ok`. Fails only on
 * allocation failure. */
int schedule_load_paths(schedule_set *s, const char *const *paths, size_t n, bool missing_ok,
                        bp_error *err);

/* Check the beat's own config section ("beat": {"enabled": bool, "schedules": "path" or
 * ["path", ...]}). BP_E_CONFIG naming the key on error. */
int schedule_check_config(const config *cfg, bp_error *err);

/* Is the beat enabled by the config? (beat.enabled and daemon.beat, both default true) */
bool schedule_beat_enabled(const config *cfg);

/* Which schedule files this instance uses, loaded into a new set (*out, caller frees):
 *   $BETPIPE_SCHEDULES  ':'-separated files or directories ("" = none at all), else
 *   config beat.schedules  a path or a list (relative paths: from the config file's directory),
 *   else the default directory: <exe dir>/../share/betpipe/schedules (the install layout, which
 *   the build tree mirrors), silently nothing when it does not exist.
 * Bad files end up in (*out)->problems. Fails on a bad beat config section (BP_E_CONFIG) or
 * allocation failure. */
int schedule_load_for(const config *cfg, schedule_set **out, bp_error *err);

/* The entry named `name`, or NULL. */
const schedule_entry *schedule_find(const schedule_set *s, const char *name);

/* ---- slots ------------------------------------------------------------------------------- */

/* The first slot strictly after `after_ms` (UTC epoch ms) into *out_slot_ms (a whole second).
 * BP_E_NOTFOUND when a cron entry never fires again within cron.h's search window. Pure. */
int schedule_next_slot(const schedule_entry *e, int64_t after_ms, int64_t *out_slot_ms);

/* The most recent slots strictly before `before_ms` and no older than before_ms - window_ms,
 * newest first, at most `max` of them, into out_slots; *out_n gets how many. Pure. */
int schedule_prev_slots(const schedule_entry *e, int64_t before_ms, int64_t window_ms,
                        int64_t *out_slots, size_t max, size_t *out_n);

/* "2026-11-22T10:15:00Z" for a slot (whole seconds, UTC). buf >= SCHEDULE_SLOT_ISO_SIZE. */
void schedule_format_slot(int64_t slot_ms, char *buf, size_t len);

/* The job id of a slot: "beat:<entry>:<slot ISO>", deterministic, so that every daemon
 * enqueues the same id and the broker keeps only the first. buf >= BP_JOB_ID_SIZE. */
void schedule_slot_id(const char *entry, int64_t slot_ms, char *buf, size_t len);

/* The unique key that keeps an entry's runs from overlapping: "beat:<entry>". */
void schedule_unique_key(const char *entry, char *buf, size_t len);

/* If `id` is a slot id of some entry ("beat:x:2026-...Z"), its slot into *out_slot_ms and true;
 * manual ids ("beat:x:manual-...") and anything else give false. */
bool schedule_parse_slot_id(const char *id, char *out_entry, size_t entry_len,
                            int64_t *out_slot_ms);

/* A duration the way a schedule file writes it: "15m", "1h", "90s", "2d", "1500ms" (the
 * largest unit that divides it). */
void schedule_format_duration(int64_t ms, char *buf, size_t len);

/* The entry's timing in words: "every 15m", "cron 0 2 * * * (at 02:00 every day)". */
void schedule_describe(const schedule_entry *e, char *buf, size_t len);

/* The entry as JSON (new reference): name, file, job, args, timing, options, problem. */
json_t *schedule_entry_to_json(const schedule_entry *e);

#endif
