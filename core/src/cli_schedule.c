/*
 * cli_schedule.c - `betpipe schedule list | run NAME | check FILE`: what the beat will fire,
 * when it fired last, what it skipped, and what cannot run.
 *
 * The entries come from the same files the daemons' beats read (schedule_load_for), and are
 * checked against the plugins this process loads, which are the daemons' plugins when both use
 * the same plugin directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "beat.h"
#include "cli.h"
#include "cli_util.h"
#include "schedule.h"
#include "util.h"

#define NEXT_FIRES 3

/* "2026-11-23 02:00:00 GMT" for an instant in the entry's zone. */
static void format_local(const schedule_entry *e, int64_t ms, char *buf, size_t len)
{
    const tz *zone = e->is_cron ? e->zone : tz_utc();
    tz_local_time lt;
    const char *abbr = NULL;
    if (tz_utc_to_local(zone, ms / 1000, &lt, NULL) != BP_OK ||
        tz_offset_at(zone, ms / 1000, NULL, NULL, &abbr) != BP_OK) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d %s", lt.year, lt.month, lt.day, lt.hour,
             lt.minute, lt.second, abbr ? abbr : "");
}

/* The next fires as [{"utc": ..., "local": ...}]. */
static json_t *next_fires(const schedule_entry *e, int64_t now_ms, int count)
{
    json_t *arr = json_array();
    int64_t cur = now_ms;
    for (int i = 0; arr && i < count; i++) {
        int64_t slot;
        char utc[SCHEDULE_SLOT_ISO_SIZE], local[64];
        if (schedule_next_slot(e, cur, &slot) != BP_OK) {
            break;
        }
        schedule_format_slot(slot, utc, sizeof utc);
        format_local(e, slot, local, sizeof local);
        json_array_append_new(arr, json_pack("{s:s, s:s}", "utc", utc, "local", local));
        cur = slot;
    }
    return arr;
}

static void print_next(const json_t *next, const char *label)
{
    size_t i;
    json_t *f;
    if (json_array_size(next) == 0) {
        printf("  %-9s never (the expression does not fire within %d years)\n", label,
               CRON_SEARCH_YEARS);
        return;
    }
    json_array_foreach(next, i, f)
    {
        printf("  %-9s %-27s (%s)\n", i == 0 ? label : "",
               json_string_value(json_object_get(f, "local")),
               json_string_value(json_object_get(f, "utc")));
    }
}

static void print_entry_head(const schedule_entry *e)
{
    char schedule[CRON_DESCRIBE_MAX + 300], grace[32];
    schedule_describe(e, schedule, sizeof schedule);
    schedule_format_duration(e->grace_ms, grace, sizeof grace);
    printf("%s  %s%s%s\n", e->name, e->job_type, e->enabled ? "" : "  [disabled]",
           e->problem && e->enabled ? "  [CANNOT RUN]" : "");
    printf("  %-9s %s, %s\n", "schedule", schedule,
           e->is_cron ? tz_name(e->zone) : "aligned to the epoch (UTC)");
    printf("  %-9s missed: %s (grace %s); %s%s%s\n", "policy",
           e->missed == SCHEDULE_MISSED_RUN_ONCE ? "run_once" : "skip", grace,
           e->no_overlap ? "no_overlap" : "overlap allowed", e->queue ? "; queue " : "",
           e->queue ? e->queue : "");
    if (e->description) {
        printf("  %-9s %s\n", "about", e->description);
    }
}

static void print_problems(const schedule_set *s)
{
    size_t i;
    json_t *p;
    json_array_foreach(s->problems, i, p)
    {
        printf("NOT LOADED %s\n  %s\n", json_string_value(json_object_get(p, "file")),
               json_string_value(json_object_get(p, "error")));
    }
}

/* ============================================================================================
 * schedule list
 * ========================================================================================== */

static json_t *last_run_json(app *ap, const schedule_entry *e, int64_t now)
{
    job *j = NULL;
    json_t *o;
    char created[40];
    if (beat_last_run(ap, e, now, &j) != BP_OK) {
        return json_null();
    }
    util_format_iso8601(j->created_ms, created, sizeof created);
    o = json_pack("{s:s, s:s, s:s}", "id", j->id, "state", job_state_name(j->state), "created",
                  created);
    if (o && j->finished_ms > 0) {
        char fin[40];
        util_format_iso8601(j->finished_ms, fin, sizeof fin);
        json_object_set_new(o, "finished", json_string(fin));
    }
    job_free(j);
    return o ? o : json_null();
}

static int schedule_list(cli_args *a)
{
    app *ap = NULL;
    schedule_set *set = NULL;
    bp_error err = {0};
    json_t *report = NULL, *entries;
    int64_t now = util_now_ms();
    int rc;
    if ((rc = cli_open_app(a, APP_ALL, &ap)) != 0) {
        return rc;
    }
    if ((rc = schedule_load_for(ap->cfg, &set, &err)) != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    beat_check_entries(ap, set);
    entries = json_array();
    report = json_pack("{s:s, s:b, s:O, s:O, s:o}", "source", set->source, "beat_enabled",
                       schedule_beat_enabled(ap->cfg), "files", set->files, "problems",
                       set->problems, "entries", entries);
    if (!report) {
        schedule_set_free(set);
        app_close(ap);
        return cli_fail(a, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < set->n; i++) {
        const schedule_entry *e = &set->entries[i];
        json_t *o = schedule_entry_to_json(e), *events = NULL;
        if (!o) {
            continue;
        }
        json_object_set_new(o, "next", next_fires(e, now, NEXT_FIRES));
        json_object_set_new(o, "last_run", last_run_json(ap, e, now));
        if (beat_events(ap, e->name, 5, &events, &err) != BP_OK) {
            events = json_pack("{s:s}", "error", err.msg);
        }
        json_object_set_new(o, "events", events);
        json_array_append_new(entries, o);
    }
    if (a->json) {
        cli_print_json(report);
    } else {
        size_t i;
        json_t *o;
        printf("schedules: %s\nbeat: %s\n", set->source,
               schedule_beat_enabled(ap->cfg) ? "enabled (runs in every daemon without --no-beat)"
                                              : "disabled by the config");
        print_problems(set);
        json_array_foreach(entries, i, o)
        {
            const schedule_entry *e =
                schedule_find(set, json_string_value(json_object_get(o, "name")));
            const json_t *last = json_object_get(o, "last_run");
            json_t *counts = json_object_get(json_object_get(o, "events"), "counts");
            const json_t *recent = json_object_get(json_object_get(o, "events"), "recent");
            printf("\n");
            print_entry_head(e);
            print_next(json_object_get(o, "next"), "next");
            if (json_is_object(last)) {
                printf("  %-9s %s  %s  created %s\n", "last run",
                       json_string_value(json_object_get(last, "id")),
                       json_string_value(json_object_get(last, "state")),
                       json_string_value(json_object_get(last, "created")));
            } else {
                printf("  %-9s -\n", "last run");
            }
            if (json_object_size(counts) > 0) {
                const char *kind;
                json_t *n;
                printf("  %-9s", "events");
                json_object_foreach(counts, kind, n)
                {
                    printf(" %s=%lld", kind, (long long)json_integer_value(n));
                }
                printf("\n");
                {
                    size_t k;
                    json_t *ev;
                    json_array_foreach(recent, k, ev)
                    {
                        const char *slot = json_string_value(json_object_get(ev, "slot"));
                        const char *detail = json_string_value(json_object_get(ev, "detail"));
                        printf("  %-9s %s %s%s%s\n", "",
                               json_string_value(json_object_get(ev, "at")),
                               json_string_value(json_object_get(ev, "kind")), slot ? " slot " : "",
                               slot ? slot : "");
                        if (detail) {
                            printf("  %-9s   %s\n", "", detail);
                        }
                    }
                }
            }
            if (e->problem) {
                printf("  %-9s %s\n", "problem", e->problem);
            }
        }
    }
    json_decref(report);
    schedule_set_free(set);
    app_close(ap);
    return CLI_EXIT_OK;
}

/* ============================================================================================
 * schedule run NAME
 * ========================================================================================== */

static int schedule_run(cli_args *a)
{
    app *ap = NULL;
    schedule_set *set = NULL;
    const schedule_entry *e;
    bp_error err = {0};
    char id[BP_JOB_ID_SIZE];
    int rc;
    if (a->n_positional != 2) {
        return cli_fail(a, BP_E_INVAL, "usage: betpipe schedule run NAME [--force]");
    }
    if ((rc = cli_open_app(a, APP_ALL, &ap)) != 0) {
        return rc;
    }
    if ((rc = schedule_load_for(ap->cfg, &set, &err)) != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        app_close(ap);
        return rc;
    }
    e = schedule_find(set, a->positional[1]);
    if (!e) {
        char msg[512];
        snprintf(msg, sizeof msg, "no schedule entry '%s' (see betpipe schedule list)",
                 a->positional[1]);
        rc = cli_fail(a, BP_E_NOTFOUND, msg);
        goto done;
    }
    beat_check_entries(ap, set);
    rc = beat_run_now(ap, e, cli_flag(a, "force"), id, &err);
    if (rc != BP_OK) {
        rc = cli_fail(a, rc, err.msg);
        goto done;
    }
    if (a->json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "entry", e->name, "job", e->job_type, "id", id);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("%s\n", id);
    }
    rc = CLI_EXIT_OK;
done:
    schedule_set_free(set);
    app_close(ap);
    return rc;
}

/* ============================================================================================
 * schedule check FILE
 * ========================================================================================== */

static int schedule_check(cli_args *a)
{
    schedule_set *set = schedule_set_new();
    app *ap = NULL;
    bp_error err = {0};
    json_t *entries = json_array(), *report;
    const char *types_note = NULL;
    int64_t now = util_now_ms();
    int rc;
    if (!set || !entries) {
        schedule_set_free(set);
        json_decref(entries);
        return cli_fail(a, BP_E_NOMEM, "out of memory");
    }
    if (a->n_positional != 2) {
        schedule_set_free(set);
        json_decref(entries);
        return cli_fail(a, BP_E_INVAL, "usage: betpipe schedule check FILE");
    }
    rc = schedule_load_file(set, a->positional[1], &err);
    if (rc != BP_OK) {
        schedule_set_free(set);
        json_decref(entries);
        return cli_fail(a, rc == BP_E_INVAL ? BP_E_CONFIG : rc, err.msg);
    }
    /* Whether the job types are loaded depends on this machine's plugins: checked when the
     * instance opens, reported as warnings (the file itself is valid). */
    if (app_open(&a->ov, APP_STORE | APP_PLUGINS | APP_QUIET, &ap, &err) == BP_OK) {
        beat_check_entries(ap, set);
    } else {
        types_note = err.msg;
    }
    for (size_t i = 0; i < set->n; i++) {
        json_t *o = schedule_entry_to_json(&set->entries[i]);
        if (o) {
            json_object_set_new(o, "next", next_fires(&set->entries[i], now, NEXT_FIRES));
            json_array_append_new(entries, o);
        }
    }
    report = json_pack("{s:s, s:b, s:o, s:s?}", "file", a->positional[1], "valid", 1, "entries",
                       entries, "job_types_not_checked", types_note);
    if (a->json) {
        cli_print_json(report);
    } else {
        size_t i;
        json_t *o;
        printf("%s: valid, %zu entr%s\n", a->positional[1], set->n, set->n == 1 ? "y" : "ies");
        if (types_note) {
            printf("(job types not checked: %s)\n", types_note);
        }
        json_array_foreach(entries, i, o)
        {
            const schedule_entry *e = &set->entries[i];
            printf("\n");
            print_entry_head(e);
            print_next(json_object_get(o, "next"), "next");
            if (e->problem) {
                printf("  %-9s %s\n", "warning", e->problem);
            }
        }
    }
    json_decref(report);
    schedule_set_free(set);
    app_close(ap);
    return CLI_EXIT_OK;
}

/* ============================================================================================
 * The command
 * ========================================================================================== */

static const cli_opt schedule_opts[] = {
    {"force", false, "          run: fire even while the previous run is live (no_overlap)"},
};

static int cmd_schedule(cli_args *a, int argc, char **argv)
{
    const char *sub = a->n_positional > 0 ? a->positional[0] : NULL;
    (void)argc;
    (void)argv;
    if (sub && strcmp(sub, "list") == 0 && a->n_positional == 1) {
        return schedule_list(a);
    }
    if (sub && strcmp(sub, "run") == 0) {
        return schedule_run(a);
    }
    if (sub && strcmp(sub, "check") == 0) {
        return schedule_check(a);
    }
    return cli_fail(a, BP_E_INVAL,
                    "usage: betpipe schedule list | run NAME [--force] | check FILE (see "
                    "betpipe schedule --help)");
}

const cli_command cli_schedule_command = {
    "schedule", "schedule list|run NAME|check FILE",
    "beat entries: next fires, last run, skips, problems; fire one now; validate a file",
    CLI_OPTS(schedule_opts), cmd_schedule};
