/*
 * beat.h - the beat: the scheduler thread that every daemon runs, and the helpers the CLI
 * shares with it (fire an entry now, find its last run, read its events).
 *
 * Exactly once across daemons. Every daemon runs its own beat over the same schedule files;
 * there is no leader. For each due (entry, slot) each beat enqueues the job with the
 * deterministic id "beat:<entry>:<slot UTC ISO>" (schedule_slot_id). The broker refuses an id
 * that exists (atomically, on both backends), so the first beat to arrive enqueues the job and
 * the others get BP_E_EXISTS with that same id back: "already fired elsewhere", which is fine
 * and silent. No lock, no lease, nothing to expire or to fail over (queues.md, section 0.5).
 *
 * No overlap (entry option no_overlap, default true). The job also carries the unique key
 * "beat:<entry>", which the broker refuses while a job holding it is waiting or running. When
 * the enqueue is refused because of the key (the holder is another job), the slot is skipped:
 * logged, counted, and recorded as an "overlap_skip" event in the store, which `betpipe schedule
 * list` shows.
 *
 * Missed runs. When the beat starts it looks, for each entry, at the most recent slot before
 * now. If that slot is no older than the entry's grace window and its job id is neither in the
 * broker nor in the job history (no daemon fired it), the missed-run policy applies: "skip"
 * logs it and records a "missed_skip" event; "run_once" enqueues that one slot now, with the
 * slot's own id, so two daemons starting together still run it once. Never more than one
 * catch-up per entry. While the beat runs, a slot is fired even if the beat reaches it late (a
 * busy machine); only when it is more than BEAT_LATE_LIMIT_MS late (the process was stopped,
 * the machine slept, the clock jumped) does it count as missed and follow the same policy.
 * Earlier slots passed over in one such jump are never fired, only logged.
 *
 * Sleeping. The thread sleeps on a condition variable until the earliest next slot of any
 * entry (CLOCK_REALTIME, so a clock change wakes it) - no polling. Reload and stop wake it.
 *
 * Thread-safety: beat_start/beat_reload/beat_stop are called from one thread (the daemon's
 * main thread). The other functions are thread-safe as far as the app's broker and store are.
 */
#ifndef BP_CORE_BEAT_H
#define BP_CORE_BEAT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "app.h"
#include "schedule.h"

/* A slot reached later than this while the beat is running counts as missed. */
#define BEAT_LATE_LIMIT_MS 60000

typedef struct beat beat;

/* What one beat did since it started. The lateness figures are the time from a slot to the
 * moment its enqueue returned (committed), in microseconds, over the slots this beat enqueued
 * on time, from a log-scale histogram (upper bucket bounds, about 4% resolution). */
typedef struct beat_stats {
    int64_t fired;           /* slots this beat enqueued */
    int64_t fired_elsewhere; /* slots another daemon had enqueued first */
    int64_t overlap_skips;   /* slots skipped: the previous run was still live */
    int64_t missed_skipped;  /* missed slots logged (policy skip) */
    int64_t caught_up;       /* missed slots enqueued late (policy run_once) */
    int64_t errors;          /* enqueues that failed */
    int64_t late_n;
    int64_t late_p50_us;
    int64_t late_p99_us;
    int64_t late_max_us;
} beat_stats;

/* Check every entry of `s` against what this process has loaded: the job type is registered,
 * the args satisfy its schema, the queue exists, the options are in range. Each entry that
 * cannot run gets e->problem (replacing an older one). Returns how many ENABLED entries have a
 * problem. Needs a->reg (APP_PLUGINS). */
int beat_check_entries(app *a, schedule_set *s);

/* Start the beat thread over `set` (ownership moves to the beat, also on failure). Logs, once,
 * every file that was not loaded and every enabled entry that cannot run; then applies the
 * missed-run policy and fires slots until beat_stop. */
int beat_start(app *a, schedule_set *set, beat **out, bp_error *err);

/* Replace the schedule (SIGHUP). Ownership of `set` moves to the beat. Entries whose name and
 * timing did not change keep their next slot; new or changed entries start at the next slot
 * after now (no catch-up). Call beat_check_entries on it first. */
void beat_reload(beat *b, schedule_set *set);

/* Stop and join the thread, fill *out_stats (may be NULL), free the beat. NULL is a no-op. */
void beat_stop(beat *b, beat_stats *out_stats);

/* ---- for the CLI ------------------------------------------------------------------------- */

/* Fire entry `e` now, outside its schedule (`schedule run`): id "beat:<entry>:manual-<uuid>"
 * so it never collides with a slot. Respects no_overlap unless `force` (a forced run does not
 * hold the entry's unique key, so it also does not block the next slots). BP_E_EXISTS (with the
 * holder in err) when the previous run is still live. Records a "manual" event. */
int beat_run_now(app *a, const schedule_entry *e, bool force, char out_id[BP_JOB_ID_SIZE],
                 bp_error *err);

/* The entry's most recent run before now: the newest existing job among its last slots (up to
 * 32 slots within 8 days) and the jobs of its recorded events (manual runs, catch-ups).
 * BP_E_NOTFOUND when none is known. *out is a new job. */
int beat_last_run(app *a, const schedule_entry *e, int64_t now_ms, job **out);

/* The entry's recorded events in this instance's store (new reference): {"counts": {"kind": n},
 * "recent": [{"kind", "slot", "at", "job_id", "worker", "detail"}, ...]} newest first, at most
 * `limit`. Kinds: overlap_skip, missed_skip, missed_run_once, manual, error. */
int beat_events(app *a, const char *entry, int limit, json_t **out, bp_error *err);

#endif
