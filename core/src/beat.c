/*
 * beat.c - the beat scheduler thread and its CLI helpers (see beat.h for the semantics).
 *
 * The thread owns its schedule set and a parallel array of per-entry state (the next slot).
 * The daemon's main thread only hands over a new set (reload) or asks it to stop, through a
 * mutex-protected mailbox, so the schedule itself needs no locking.
 *
 * The hot path is: wake at a slot, build the job (client_prepare validates it again), one
 * broker transaction. Everything slower - store writes for events - happens after all the
 * entries due at that instant have been enqueued.
 */
#include "beat.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "log.h"
#include "util.h"

#define LATE_BUCKETS      640 /* log2 scale, 16 buckets per doubling: up to 2^40 us */
#define LATE_PER_DOUBLING 16.0
#define EVENTS_KEPT       500 /* per entry, in the store */
#define LAST_RUN_SLOTS    32
#define LAST_RUN_WINDOW   (8LL * 86400 * 1000)

typedef struct entry_state {
    int64_t next_ms; /* the next slot to fire, INT64_MAX = none */
    bool active;     /* enabled and runnable here */
} entry_state;

/* An event to write to the store once the slots due now are all enqueued. */
typedef struct pending_event {
    char entry[SCHEDULE_NAME_MAX + 1];
    const char *kind;
    int64_t slot_ms;
    char job_id[BP_JOB_ID_SIZE];
    char detail[256];
} pending_event;

struct beat {
    app *a;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;             /* guarded by lock */
    schedule_set *pending; /* guarded by lock: a reloaded set to adopt */
    schedule_set *set;     /* the thread's own */
    entry_state *state;    /* parallel to set->entries */
    pending_event *events; /* the thread's own: written after a round of fires */
    size_t n_events, cap_events;
    beat_stats stats; /* the thread's own until it is joined */
    int64_t late_hist[LATE_BUCKETS];
};

/* ============================================================================================
 * Events in the store
 * ========================================================================================== */

static int record_event(app *a, const char *entry, const char *kind, int64_t slot_ms,
                        const char *job_id, const char *detail, bp_error *err)
{
    static const char insert[] =
        "INSERT OR IGNORE INTO beat_events (entry, kind, slot_ms, at_ms, job_id, worker, detail) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    static const char prune[] =
        "DELETE FROM beat_events WHERE entry = ?1 AND seq < (SELECT seq FROM beat_events WHERE "
        "entry = ?1 ORDER BY seq DESC LIMIT 1 OFFSET 499)";
    store_conn *c;
    sqlite3_stmt *st;
    int step, rc = BP_OK;
    _Static_assert(EVENTS_KEPT == 500, "the prune statement keeps 500 events");
    if (!a->store) {
        return bp_err(err, BP_E_STATE, "no store open");
    }
    if (!(c = store_conn_acquire(a->store))) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = store_conn_stmt(c, insert, err);
    if (!st) {
        store_conn_release(a->store, c);
        return err ? err->code : BP_E_IO;
    }
    sqlite3_bind_text(st, 1, entry, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    if (slot_ms > 0) {
        sqlite3_bind_int64(st, 3, slot_ms);
    } else {
        sqlite3_bind_null(st, 3);
    }
    sqlite3_bind_int64(st, 4, util_now_ms());
    sqlite3_bind_text(st, 5, job_id && *job_id ? job_id : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, detail, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        rc = store_sqlite_err(store_conn_db(c), step, "record a beat event", err);
    }
    sqlite3_reset(st);
    if (rc == BP_OK && (st = store_conn_stmt(c, prune, err)) != NULL) {
        sqlite3_bind_text(st, 1, entry, -1, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = store_sqlite_err(store_conn_db(c), step, "prune beat events", err);
        }
        sqlite3_reset(st);
    }
    store_conn_release(a->store, c);
    return rc;
}

int beat_events(app *a, const char *entry, int limit, json_t **out, bp_error *err)
{
    static const char counts_sql[] =
        "SELECT kind, COUNT(*) FROM beat_events WHERE entry = ?1 GROUP BY kind";
    static const char recent_sql[] =
        "SELECT kind, slot_ms, at_ms, job_id, worker, detail FROM beat_events WHERE entry = ?1 "
        "ORDER BY seq DESC LIMIT ?2";
    json_t *counts = json_object(), *recent = json_array();
    store_conn *c = NULL;
    sqlite3_stmt *st;
    int step, rc = BP_OK;
    *out = NULL;
    if (!counts || !recent) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    if (!a->store || !(c = store_conn_acquire(a->store))) {
        rc = bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
        goto done;
    }
    if (!(st = store_conn_stmt(c, counts_sql, err))) {
        rc = err ? err->code : BP_E_IO;
        goto done;
    }
    sqlite3_bind_text(st, 1, entry, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_object_set_new(counts, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
        rc = store_sqlite_err(store_conn_db(c), step, "read beat events", err);
        goto done;
    }
    if (!(st = store_conn_stmt(c, recent_sql, err))) {
        rc = err ? err->code : BP_E_IO;
        goto done;
    }
    sqlite3_bind_text(st, 1, entry, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 10);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        char slot[40] = "", at[40];
        json_t *ev;
        if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
            schedule_format_slot(sqlite3_column_int64(st, 1), slot, sizeof slot);
        }
        util_format_iso8601(sqlite3_column_int64(st, 2), at, sizeof at);
        ev = json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s?}", "kind",
                       (const char *)sqlite3_column_text(st, 0), "slot", *slot ? slot : NULL, "at",
                       at, "job_id", (const char *)sqlite3_column_text(st, 3), "worker",
                       (const char *)sqlite3_column_text(st, 4), "detail",
                       (const char *)sqlite3_column_text(st, 5));
        if (ev) {
            json_array_append_new(recent, ev);
        }
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
        rc = store_sqlite_err(store_conn_db(c), step, "read beat events", err);
        goto done;
    }
done:
    if (c) {
        store_conn_release(a->store, c);
    }
    if (rc == BP_OK) {
        *out = json_pack("{s:o, s:o}", "counts", counts, "recent", recent);
        return *out ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
    }
    json_decref(counts);
    json_decref(recent);
    return rc;
}

/* ============================================================================================
 * Enqueueing one slot
 * ========================================================================================== */

typedef enum fire_outcome {
    FIRE_ENQUEUED,  /* we enqueued it */
    FIRE_ELSEWHERE, /* the id exists: another daemon (or an earlier run of this one) fired it */
    FIRE_OVERLAP,   /* the entry's previous run holds the unique key */
    FIRE_ERROR      /* validation or broker failure (err) */
} fire_outcome;

/* The options every job of an entry is enqueued with. */
static void entry_opts(const schedule_entry *e, const char *id, const char *unique,
                       bp_enqueue_opts *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->job_id = id;
    o->unique_key = unique;
    o->queue = e->queue;
    if (e->has_priority) {
        o->priority = e->priority;
        o->has_priority = 1;
    }
    if (e->has_max_retries) {
        o->max_retries = e->max_retries;
        o->has_max_retries = 1;
    }
    /* expires counts from the enqueue, so a late or caught-up slot still gets its full time */
    o->expires_ms = e->expires_ms > 0 ? util_now_ms() + e->expires_ms : 0;
}

/* Try to enqueue `id` for entry `e`. With `unique`, the entry's unique key goes along. On
 * FIRE_OVERLAP, `holder` gets the live job's id. */
static fire_outcome fire(app *a, const schedule_entry *e, const char *id, bool unique,
                         char holder[BP_JOB_ID_SIZE], bp_error *err)
{
    char key[SCHEDULE_NAME_MAX + 8];
    bp_enqueue_opts o;
    int rc;
    schedule_unique_key(e->name, key, sizeof key);
    entry_opts(e, id, unique ? key : NULL, &o);
    holder[0] = '\0';
    rc = client_enqueue(a, e->job_type, e->args, &o, NULL, holder, err);
    if (rc == BP_OK) {
        return FIRE_ENQUEUED;
    }
    if (rc != BP_E_EXISTS) {
        return FIRE_ERROR;
    }
    if (strcmp(holder, id) == 0) {
        return FIRE_ELSEWHERE;
    }
    /* Refused with another job's id: either the unique key is held, or both the id exists and
     * some other job (a manual run) holds the key. Only the first is an overlap. */
    {
        job *j = NULL;
        if (a->broker->ops->get(a->broker, id, &j, NULL) == BP_OK) {
            job_free(j);
            return FIRE_ELSEWHERE;
        }
    }
    return FIRE_OVERLAP;
}

/* ============================================================================================
 * Checking entries against what is loaded
 * ========================================================================================== */

int beat_check_entries(app *a, schedule_set *s)
{
    int problems = 0;
    for (size_t i = 0; i < s->n; i++) {
        schedule_entry *e = &s->entries[i];
        bp_error err = {0};
        char id[BP_JOB_ID_SIZE], key[SCHEDULE_NAME_MAX + 8];
        bp_enqueue_opts o;
        job *j = NULL;
        free(e->problem);
        e->problem = NULL;
        e->type_missing = false;
        if (!a->reg || !registry_find_job(a->reg, e->job_type)) {
            e->type_missing = true;
            e->problem =
                util_asprintf("job type '%s' is not loaded (no plugin registers it)", e->job_type);
        } else {
            /* The same validation a fire does, with an id as long as a manual run's. */
            snprintf(id, sizeof id, "beat:%s:manual-00000000-0000-0000-0000-000000000000", e->name);
            schedule_unique_key(e->name, key, sizeof key);
            entry_opts(e, id, key, &o);
            if (client_prepare(a, e->job_type, e->args, &o, NULL, &j, &err) != BP_OK) {
                e->problem = strdup(err.msg);
            }
            job_free(j);
        }
        if (e->problem && e->enabled) {
            problems++;
        }
    }
    return problems;
}

/* ============================================================================================
 * The thread
 * ========================================================================================== */

static int64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note_lateness(beat *b, int64_t late_us)
{
    int idx = 0;
    if (late_us < 0) {
        late_us = 0;
    }
    if (late_us >= 1) {
        idx = 1 + (int)(log2((double)late_us) * LATE_PER_DOUBLING);
    }
    if (idx >= LATE_BUCKETS) {
        idx = LATE_BUCKETS - 1;
    }
    b->late_hist[idx]++;
    b->stats.late_n++;
    if (late_us > b->stats.late_max_us) {
        b->stats.late_max_us = late_us;
    }
}

/* The upper bound of the bucket holding the q-quantile. */
static int64_t late_quantile(const beat *b, double q)
{
    int64_t want, seen = 0;
    if (b->stats.late_n == 0) {
        return 0;
    }
    want = (int64_t)ceil(q * (double)b->stats.late_n);
    if (want < 1) {
        want = 1;
    }
    for (int i = 0; i < LATE_BUCKETS; i++) {
        seen += b->late_hist[i];
        if (seen >= want) {
            int64_t bound = i == 0 ? 0 : (int64_t)ceil(exp2((double)i / LATE_PER_DOUBLING));
            return bound < b->stats.late_max_us ? bound : b->stats.late_max_us;
        }
    }
    return b->stats.late_max_us;
}

static void queue_event(beat *b, const schedule_entry *e, const char *kind, int64_t slot_ms,
                        const char *job_id, const char *detail)
{
    pending_event *ev;
    if (b->n_events == b->cap_events) {
        size_t cap = b->cap_events ? b->cap_events * 2 : 16;
        pending_event *grown = realloc(b->events, cap * sizeof *grown);
        if (!grown) {
            log_warn("beat", "out of memory: event %s of entry %s not recorded", kind, e->name);
            return;
        }
        b->events = grown;
        b->cap_events = cap;
    }
    ev = &b->events[b->n_events++];
    util_strlcpy(ev->entry, e->name, sizeof ev->entry);
    ev->kind = kind;
    ev->slot_ms = slot_ms;
    util_strlcpy(ev->job_id, job_id ? job_id : "", sizeof ev->job_id);
    util_strlcpy(ev->detail, detail ? detail : "", sizeof ev->detail);
}

static void flush_events(beat *b)
{
    for (size_t i = 0; i < b->n_events; i++) {
        const pending_event *ev = &b->events[i];
        bp_error err = {0};
        if (record_event(b->a, ev->entry, ev->kind, ev->slot_ms, ev->job_id,
                         *ev->detail ? ev->detail : NULL, &err) != BP_OK) {
            log_warn("beat", "could not record event %s of entry %s: %s", ev->kind, ev->entry,
                     err.msg);
        }
    }
    b->n_events = 0;
}

/* Fire one slot of entry `e` on time (or late, but within the late limit). */
static void fire_slot(beat *b, const schedule_entry *e, int64_t slot_ms, const char *why)
{
    char id[BP_JOB_ID_SIZE], holder[BP_JOB_ID_SIZE], iso[SCHEDULE_SLOT_ISO_SIZE];
    bp_error err = {0};
    fire_outcome out;
    int64_t late_us;
    schedule_slot_id(e->name, slot_ms, id, sizeof id);
    out = fire(b->a, e, id, e->no_overlap, holder, &err);
    late_us = realtime_us() - slot_ms * 1000;
    schedule_format_slot(slot_ms, iso, sizeof iso);
    switch (out) {
    case FIRE_ENQUEUED:
        note_lateness(b, late_us);
        b->stats.fired++;
        log_info("beat", "fired entry=%s slot=%s id=%s late_us=%lld%s", e->name, iso, id,
                 (long long)late_us, why);
        break;
    case FIRE_ELSEWHERE:
        b->stats.fired_elsewhere++;
        log_debug("beat", "slot already fired by another daemon entry=%s slot=%s", e->name, iso);
        break;
    case FIRE_OVERLAP: {
        char detail[BP_JOB_ID_SIZE + 64];
        b->stats.overlap_skips++;
        snprintf(detail, sizeof detail, "previous run %s is still waiting or running", holder);
        log_info("beat", "skipped entry=%s slot=%s: %s (no_overlap)", e->name, iso, detail);
        queue_event(b, e, "overlap_skip", slot_ms, holder, detail);
        break;
    }
    case FIRE_ERROR:
        b->stats.errors++;
        log_error("beat", "could not enqueue entry=%s slot=%s: %s", e->name, iso, err.msg);
        queue_event(b, e, "error", slot_ms, NULL, err.msg);
        break;
    }
}

/* A slot nobody fired on time (the beat was not running, or is more than the late limit late):
 * the entry's missed-run policy decides. `slot_ms` is the most recent missed slot. */
static void handle_missed(beat *b, const schedule_entry *e, int64_t slot_ms, int64_t now_ms)
{
    char id[BP_JOB_ID_SIZE], iso[SCHEDULE_SLOT_ISO_SIZE], detail[160];
    job *j = NULL;
    bp_error err = {0};
    int rc;
    schedule_slot_id(e->name, slot_ms, id, sizeof id);
    schedule_format_slot(slot_ms, iso, sizeof iso);
    rc = client_get(b->a, id, &j, &err);
    job_free(j);
    if (rc == BP_OK) {
        return; /* some daemon fired it */
    }
    if (rc != BP_E_NOTFOUND) {
        log_warn("beat", "cannot tell whether entry=%s slot=%s ran: %s", e->name, iso, err.msg);
        return;
    }
    snprintf(detail, sizeof detail, "missed by %.1f s (no beat fired it)",
             (double)(now_ms - slot_ms) / 1000.0);
    if (now_ms - slot_ms > e->grace_ms) {
        /* older than the grace window: forgotten, whatever the policy, but said */
        log_info("beat", "missed run forgotten entry=%s slot=%s: %s, past its grace of %.0f s",
                 e->name, iso, detail, (double)e->grace_ms / 1000.0);
        return;
    }
    if (e->missed == SCHEDULE_MISSED_SKIP) {
        b->stats.missed_skipped++;
        log_info("beat", "missed run skipped entry=%s slot=%s: %s; policy skip", e->name, iso,
                 detail);
        queue_event(b, e, "missed_skip", slot_ms, NULL, detail);
        return;
    }
    {
        char holder[BP_JOB_ID_SIZE];
        fire_outcome out = fire(b->a, e, id, e->no_overlap, holder, &err);
        switch (out) {
        case FIRE_ENQUEUED:
            b->stats.caught_up++;
            log_info("beat", "missed run caught up entry=%s slot=%s id=%s: %s; policy run_once",
                     e->name, iso, id, detail);
            queue_event(b, e, "missed_run_once", slot_ms, id, detail);
            break;
        case FIRE_ELSEWHERE: break;
        case FIRE_OVERLAP:
            b->stats.overlap_skips++;
            snprintf(detail, sizeof detail, "catch-up skipped: previous run %s is still live",
                     holder);
            log_info("beat", "skipped entry=%s slot=%s: %s (no_overlap)", e->name, iso, detail);
            queue_event(b, e, "overlap_skip", slot_ms, holder, detail);
            break;
        case FIRE_ERROR:
            b->stats.errors++;
            log_error("beat", "could not enqueue the catch-up of entry=%s slot=%s: %s", e->name,
                      iso, err.msg);
            queue_event(b, e, "error", slot_ms, NULL, err.msg);
            break;
        }
    }
}

/* The first slot of `e` strictly after after_ms, or INT64_MAX (logged) when there is none. */
static int64_t next_or_never(const schedule_entry *e, int64_t after_ms)
{
    int64_t slot;
    if (schedule_next_slot(e, after_ms, &slot) != BP_OK) {
        log_warn("beat", "entry %s never fires again (%s)", e->name,
                 e->is_cron ? e->cron.text : "every");
        return INT64_MAX;
    }
    return slot;
}

/* Fire everything due at `now`. */
static void run_due(beat *b, int64_t now)
{
    for (size_t i = 0; i < b->set->n; i++) {
        const schedule_entry *e = &b->set->entries[i];
        entry_state *st = &b->state[i];
        int64_t latest, cand, passed = 1;
        if (!st->active || st->next_ms > now) {
            continue;
        }
        /* Normally exactly one slot is due. More means the beat was held up for longer than a
         * period (stopped process, sleeping machine, clock jump): only the latest counts. */
        latest = st->next_ms;
        if (!e->is_cron) {
            int64_t last = now - (now % e->every_ms);
            passed += (last - latest) / e->every_ms;
            latest = last;
        } else {
            while (schedule_next_slot(e, latest, &cand) == BP_OK && cand <= now) {
                latest = cand;
                passed++;
            }
        }
        if (passed > 1) {
            char from[SCHEDULE_SLOT_ISO_SIZE];
            schedule_format_slot(st->next_ms, from, sizeof from);
            log_warn("beat",
                     "entry=%s: %lld slot(s) from %s passed while the beat was held up; they are "
                     "not fired",
                     e->name, (long long)(passed - 1), from);
        }
        if (now - latest <= BEAT_LATE_LIMIT_MS) {
            fire_slot(b, e, latest, "");
        } else {
            handle_missed(b, e, latest, now);
        }
        st->next_ms = next_or_never(e, latest > now ? latest : now);
    }
    flush_events(b);
}

/* Give every entry of the current set its state; `old`/`old_state` are the previous set (for a
 * reload) or NULL (start). */
static int adopt(beat *b, const schedule_set *old, const entry_state *old_state, int64_t now)
{
    entry_state *st = calloc(b->set->n ? b->set->n : 1, sizeof *st);
    if (!st) {
        return BP_E_NOMEM;
    }
    for (size_t i = 0; i < b->set->n; i++) {
        const schedule_entry *e = &b->set->entries[i];
        const schedule_entry *prev = old ? schedule_find(old, e->name) : NULL;
        st[i].active = e->enabled && !e->problem;
        st[i].next_ms = INT64_MAX;
        if (!st[i].active) {
            continue;
        }
        if (prev && old_state && old_state[prev - old->entries].active &&
            prev->is_cron == e->is_cron &&
            (e->is_cron ? strcmp(prev->cron.text, e->cron.text) == 0 && prev->zone == e->zone
                        : prev->every_ms == e->every_ms)) {
            st[i].next_ms = old_state[prev - old->entries].next_ms;
        } else {
            /* the first slot at or after now */
            st[i].next_ms = next_or_never(e, now - 1);
        }
    }
    free(b->state);
    b->state = st;
    return BP_OK;
}

static void log_set(const schedule_set *s, const char *what)
{
    size_t i, active = 0;
    json_t *p;
    json_array_foreach(s->problems, i, p)
    {
        log_error("beat", "schedule file not loaded: %s",
                  json_string_value(json_object_get(p, "error")));
    }
    for (i = 0; i < s->n; i++) {
        const schedule_entry *e = &s->entries[i];
        if (!e->enabled) {
            log_info("beat", "entry %s (%s) is disabled", e->name, e->job_type);
        } else if (e->problem) {
            log_warn("beat", "entry %s will not run: %s (%s)", e->name, e->problem, e->file);
        } else {
            active++;
        }
    }
    log_info("beat", "%s: %zu entr%s, %zu active, %zu file(s) from %s", what, s->n,
             s->n == 1 ? "y" : "ies", active, json_array_size(s->files),
             s->source ? s->source : "-");
}

/* The missed-run pass at start: for each entry, its most recent slot before t0. The look back
 * spans the longest grace allowed, not the entry's own, so that a slot missed just past its grace
 * is said to be forgotten rather than passed over in silence (a daily job down for a day and an
 * hour is worth a log line). At most 7 days of "* * * * *" is some ten thousand steps. */
static void catch_up(beat *b, int64_t t0)
{
    for (size_t i = 0; i < b->set->n; i++) {
        const schedule_entry *e = &b->set->entries[i];
        int64_t slot;
        size_t n = 0;
        if (!b->state[i].active || e->grace_ms <= 0) {
            continue;
        }
        if (schedule_prev_slots(e, t0, SCHEDULE_MAX_GRACE_MS, &slot, 1, &n) == BP_OK && n == 1) {
            handle_missed(b, e, slot, t0);
        }
    }
    flush_events(b);
}

static void *beat_main(void *arg)
{
    beat *b = arg;
    int64_t t0 = util_now_ms();
    if (adopt(b, NULL, NULL, t0) != BP_OK) {
        log_error("beat", "out of memory: the beat does not run");
        return NULL;
    }
    catch_up(b, t0);
    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        int64_t now, due = INT64_MAX;
        if (b->pending) {
            schedule_set *old = b->set;
            entry_state *old_state = b->state;
            b->set = b->pending;
            b->pending = NULL;
            b->state = NULL;
            pthread_mutex_unlock(&b->lock);
            if (adopt(b, old, old_state, util_now_ms()) != BP_OK) {
                log_error("beat", "out of memory adopting the reloaded schedule");
            }
            free(old_state);
            schedule_set_free(old);
            pthread_mutex_lock(&b->lock);
            continue;
        }
        for (size_t i = 0; b->state && i < b->set->n; i++) {
            if (b->state[i].active && b->state[i].next_ms < due) {
                due = b->state[i].next_ms;
            }
        }
        now = util_now_ms();
        if (due > now) {
            if (due == INT64_MAX) {
                pthread_cond_wait(&b->cond, &b->lock);
            } else {
                struct timespec until = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
                pthread_cond_timedwait(&b->cond, &b->lock, &until);
            }
            continue;
        }
        pthread_mutex_unlock(&b->lock);
        run_due(b, now);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int beat_start(app *a, schedule_set *set, beat **out, bp_error *err)
{
    beat *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b) {
        schedule_set_free(set);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    b->a = a;
    b->set = set;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    log_set(set, "started");
    if (pthread_create(&b->thread, NULL, beat_main, b) != 0) {
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->cond);
        schedule_set_free(set);
        free(b);
        return bp_err(err, BP_E_NOMEM, "cannot start the beat thread");
    }
    *out = b;
    return BP_OK;
}

void beat_reload(beat *b, schedule_set *set)
{
    log_set(set, "reloaded");
    pthread_mutex_lock(&b->lock);
    schedule_set_free(b->pending); /* two reloads before the thread woke: the newest wins */
    b->pending = set;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

void beat_stop(beat *b, beat_stats *out_stats)
{
    if (!b) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    b->stats.late_p50_us = late_quantile(b, 0.50);
    b->stats.late_p99_us = late_quantile(b, 0.99);
    log_info("beat",
             "stopped fired=%lld fired_elsewhere=%lld overlap_skips=%lld missed_skipped=%lld "
             "caught_up=%lld errors=%lld late_us_n=%lld late_us_p50=%lld late_us_p99=%lld "
             "late_us_max=%lld",
             (long long)b->stats.fired, (long long)b->stats.fired_elsewhere,
             (long long)b->stats.overlap_skips, (long long)b->stats.missed_skipped,
             (long long)b->stats.caught_up, (long long)b->stats.errors, (long long)b->stats.late_n,
             (long long)b->stats.late_p50_us, (long long)b->stats.late_p99_us,
             (long long)b->stats.late_max_us);
    if (out_stats) {
        *out_stats = b->stats;
    }
    schedule_set_free(b->pending);
    schedule_set_free(b->set);
    free(b->state);
    free(b->events);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

/* ============================================================================================
 * CLI helpers
 * ========================================================================================== */

int beat_run_now(app *a, const schedule_entry *e, bool force, char out_id[BP_JOB_ID_SIZE],
                 bp_error *err)
{
    char id[BP_JOB_ID_SIZE], uuid[40], holder[BP_JOB_ID_SIZE];
    fire_outcome out;
    if (e->problem) {
        return bp_err(err, registry_find_job(a->reg, e->job_type) ? BP_E_INVAL : BP_E_NOTFOUND,
                      "entry %s cannot run: %s", e->name, e->problem);
    }
    util_uuid7(uuid);
    snprintf(id, sizeof id, "beat:%s:manual-%s", e->name, uuid);
    out = fire(a, e, id, e->no_overlap && !force, holder, err);
    switch (out) {
    case FIRE_ENQUEUED: break;
    case FIRE_OVERLAP:
        return bp_err(err, BP_E_EXISTS,
                      "entry %s: the previous run %s is still waiting or running (no_overlap); "
                      "--force runs it anyway",
                      e->name, holder);
    case FIRE_ELSEWHERE: return bp_err(err, BP_E_EXISTS, "job %s already exists", id);
    case FIRE_ERROR: return err ? err->code : BP_E_INTERNAL;
    }
    util_strlcpy(out_id, id, BP_JOB_ID_SIZE);
    {
        bp_error rerr = {0};
        if (record_event(a, e->name, "manual", 0, id,
                         force ? "schedule run --force" : "schedule run", &rerr) != BP_OK) {
            log_warn("beat", "could not record the manual run of %s: %s", e->name, rerr.msg);
        }
    }
    return BP_OK;
}

/* The job id of the newest event of the entry that names a run of it. */
static bool last_event_job(app *a, const char *entry, char out_id[BP_JOB_ID_SIZE])
{
    static const char sql[] =
        "SELECT job_id FROM beat_events WHERE entry = ?1 AND job_id IS NOT NULL AND kind IN "
        "('manual', 'missed_run_once', 'overlap_skip') ORDER BY seq DESC LIMIT 1";
    store_conn *c;
    sqlite3_stmt *st;
    bool found = false;
    if (!a->store || !(c = store_conn_acquire(a->store))) {
        return false;
    }
    if ((st = store_conn_stmt(c, sql, NULL)) != NULL) {
        sqlite3_bind_text(st, 1, entry, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            util_strlcpy(out_id, (const char *)sqlite3_column_text(st, 0), BP_JOB_ID_SIZE);
            found = true;
        }
        sqlite3_reset(st);
    }
    store_conn_release(a->store, c);
    return found;
}

int beat_last_run(app *a, const schedule_entry *e, int64_t now_ms, job **out)
{
    int64_t slots[LAST_RUN_SLOTS];
    size_t n = 0;
    job *best = NULL;
    char id[BP_JOB_ID_SIZE];
    *out = NULL;
    if (schedule_prev_slots(e, now_ms + 1, LAST_RUN_WINDOW, slots, LAST_RUN_SLOTS, &n) == BP_OK) {
        for (size_t i = 0; i < n && !best; i++) {
            schedule_slot_id(e->name, slots[i], id, sizeof id);
            if (client_get(a, id, &best, NULL) != BP_OK) {
                best = NULL;
            }
        }
    }
    if (last_event_job(a, e->name, id)) {
        job *j = NULL;
        if (client_get(a, id, &j, NULL) == BP_OK) {
            if (!best || j->created_ms > best->created_ms) {
                job_free(best);
                best = j;
            } else {
                job_free(j);
            }
        }
    }
    if (!best) {
        return BP_E_NOTFOUND;
    }
    *out = best;
    return BP_OK;
}
