/*
 * csupport.c - configuration, reports, persisted state and waits for the API collectors (see
 * csupport.h).
 */
#include "csupport.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CS_MAX_LISTED 100

/* ---- configuration ------------------------------------------------------------------------- */

const char *cs_config_str(const bp_host *h, const char *key, const char *env, const char *dflt)
{
    const char *v = json_string_value(json_object_get(h->config(h), key));
    if (v && *v) {
        return v;
    }
    if (env) {
        v = getenv(env);
        if (v && *v) {
            return v;
        }
    }
    return dflt;
}

int64_t cs_config_int(const bp_host *h, const char *key, int64_t dflt, int64_t min, int64_t max)
{
    const json_t *v = json_object_get(h->config(h), key);
    int64_t n;
    if (!json_is_integer(v)) {
        return dflt;
    }
    n = (int64_t)json_integer_value(v);
    return n < min ? min : n > max ? max : n;
}

json_t *cs_leagues(const bp_host *h, const json_t *request, const char *const *all)
{
    const json_t *v = json_object_get(request, "leagues");
    json_t *out;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        v = json_object_get(h->config(h), "leagues");
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        return json_deep_copy(v);
    }
    out = json_array();
    for (size_t i = 0; out && all[i]; i++) {
        json_array_append_new(out, json_string(all[i]));
    }
    return out;
}

/* ---- the report ---------------------------------------------------------------------------- */

json_t *cs_report_new(void)
{
    return json_pack("{s:i, s:{s:i, s:i, s:i}, s:{s:i, s:i, s:i}, s:{s:i, s:i, s:i}, s:[], s:i, "
                     "s:[], s:[], s:[], s:[], s:[]}",
                     "requests", 0, "matches", "inserted", 0, "updated", 0, "unchanged", 0, "odds",
                     "inserted", 0, "updated", 0, "unchanged", 0, "team_stats", "inserted", 0,
                     "updated", 0, "unchanged", 0, "rejected", "rejected_total", 0, "errors",
                     "teams_created", "match_ids", "team_ids", "league_ids");
}

static void bump(json_t *obj, const char *key, json_int_t by)
{
    json_object_set_new(obj, key, json_integer(json_integer_value(json_object_get(obj, key)) + by));
}

void cs_count(json_t *report, const char *key, const bp_store_counts *c)
{
    json_t *g = json_object_get(report, key);
    if (!g) {
        return;
    }
    bump(g, "inserted", (json_int_t)c->inserted);
    bump(g, "updated", (json_int_t)c->updated);
    bump(g, "unchanged", (json_int_t)c->unchanged);
}

void cs_count_outcome(json_t *report, const char *key, int32_t outcome)
{
    bp_store_counts c = {0};
    if (outcome == BP_UPSERT_INSERTED) {
        c.inserted = 1;
    } else if (outcome == BP_UPSERT_UPDATED) {
        c.updated = 1;
    } else {
        c.unchanged = 1;
    }
    cs_count(report, key, &c);
}

void cs_reject(json_t *report, const char *request, const char *path, const char *reason)
{
    json_t *list = json_object_get(report, "rejected");
    bump(report, "rejected_total", 1);
    if (json_array_size(list) < CS_MAX_LISTED) {
        json_t *r = json_pack("{s:s, s:s}", "request", request, "reason", reason);
        if (r && path && *path) {
            json_object_set_new(r, "path", json_string(path));
        }
        json_array_append_new(list, r);
    }
}

void cs_error(json_t *report, const char *request, int code, const char *message)
{
    json_array_append_new(json_object_get(report, "errors"),
                          json_pack("{s:s, s:s, s:s}", "request", request, "error", message,
                                    "status", bp_status_str(code)));
}

bp_error cs_request_error(const char *request, const bp_error *err, bool from_http)
{
    bp_error named = *err;
    if (!from_http) {
        bp_err_prefix(&named, "%s: ", request);
    }
    return named;
}

void cs_count_key(json_t *report, const char *group, const char *key)
{
    json_t *g = json_object_get(report, group);
    if (!g) {
        g = json_object();
        json_object_set_new(report, group, g);
    }
    bump(g, key, 1);
}

void cs_note(json_t *report, const char *key, const char *text)
{
    json_t *list = json_object_get(report, key);
    size_t i;
    json_t *v;
    if (!list) {
        list = json_array();
        json_object_set_new(report, key, list);
    }
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(v), text) == 0) {
            return;
        }
    }
    if (json_array_size(list) < CS_MAX_LISTED) {
        json_array_append_new(list, json_string(text));
    }
}

void cs_add_id(json_t *report, const char *key, int64_t id)
{
    json_t *list = json_object_get(report, key);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_integer_value(v) == id) {
            return;
        }
    }
    json_array_append_new(list, json_integer(id));
}

void cs_count_request(json_t *report)
{
    bump(report, "requests", 1);
}

/* ---- state --------------------------------------------------------------------------------- */

static int state_path(const bp_host *h, const char *name, char *buf, size_t len, bool mk)
{
    int n = snprintf(buf, len, "%s/collectors", h->data_dir(h));
    if (n < 0 || (size_t)n >= len) {
        return BP_E_INVAL;
    }
    if (mk && mkdir(buf, 0750) != 0 && errno != EEXIST) {
        return BP_E_IO;
    }
    n = snprintf(buf, len, "%s/collectors/%s.json", h->data_dir(h), name);
    return n < 0 || (size_t)n >= len ? BP_E_INVAL : BP_OK;
}

json_t *cs_state_load(const bp_host *h, const char *name)
{
    char path[4096];
    json_t *s = NULL;
    if (state_path(h, name, path, sizeof path, false) == BP_OK) {
        s = json_load_file(path, 0, NULL);
    }
    if (!json_is_object(s)) {
        json_decref(s);
        s = json_object();
    }
    return s;
}

int cs_state_save(const bp_host *h, const char *name, const json_t *state, bp_error *err)
{
    char path[4096], tmp[4200];
    int rc = state_path(h, name, path, sizeof path, true);
    if (rc != BP_OK) {
        return bp_err(err, rc, "cannot make the state folder under %s", h->data_dir(h));
    }
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (json_dump_file(state, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 || rename(tmp, path)) {
        unlink(tmp);
        return bp_err(err, BP_E_IO, "cannot write %s", path);
    }
    return BP_OK;
}

int cs_pause_check(const json_t *state, int64_t now_ms, const char *what, bp_error *err)
{
    int64_t until = (int64_t)json_integer_value(json_object_get(state, "paused_until_ms"));
    char iso[40];
    if (until <= now_ms) {
        return BP_OK;
    }
    cs_iso(until, iso, sizeof iso);
    return bp_err(err, BP_E_LIMIT, "%s paused until %s: %s (no request made)", what, iso,
                  json_string_value(json_object_get(state, "pause_reason"))
                      ? json_string_value(json_object_get(state, "pause_reason"))
                      : "quota used up");
}

int cs_pause_set(const bp_host *h, const char *name, json_t *state, int64_t until_ms,
                 const char *reason, bp_error *err)
{
    char iso[40];
    cs_iso(until_ms, iso, sizeof iso);
    json_object_set_new(state, "paused_until_ms", json_integer(until_ms));
    json_object_set_new(state, "paused_until", json_string(iso));
    json_object_set_new(state, "pause_reason", json_string(reason));
    BP_LOGW(h, "requests paused until %s: %s", iso, reason);
    return cs_state_save(h, name, state, err);
}

/* ---- time ---------------------------------------------------------------------------------- */

int cs_wait(const bp_host *h, const bp_job *job, int64_t ms)
{
    int64_t end = h->mono_ns(h) + ms * 1000000;
    for (;;) {
        int64_t left = (end - h->mono_ns(h)) / 1000000;
        if (job && h->cancelled(job)) {
            return BP_E_CANCELLED;
        }
        if (left <= 0) {
            return BP_OK;
        }
        int64_t slice = left < 100 ? left : 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(slice * 1000000)};
        nanosleep(&ts, NULL);
    }
}

void cs_iso(int64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int32_t cs_season_of(int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    return tm.tm_mon >= 6 ? tm.tm_year + 1900 : tm.tm_year + 1899;
}
