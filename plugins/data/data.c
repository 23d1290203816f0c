/*
 * data - the data.* jobs: history into the store, and the live sources into the store and the
 * cache.
 *
 *   data.import         football-data.co.uk history (the football_data collector) from a URL,
 *                       a file or a folder; with no source, the bundled data.
 *   data.collect_odds   every collector that provides odds (API-Football, The Odds API):
 *                       snapshots into the store, each touched match's latest odds into the
 *                       cache (type "odds", filters {"match_id": id}).
 *   data.collect_stats  team statistics and standings into the store and the cache (type
 *                       "stats", {"team_id": id, "season": year}); the leagues and their teams
 *                       into the cache (type "static", {"kind": "leagues"} and {"kind": "teams",
 *                       "league": code}).
 *   data.collect_live   in-play fixtures and scores.
 *   data.collect_fixtures  fixtures of a league and season, or of a date range (API-Football):
 *                       scheduled ones with their kick-off times - what ml.predict predicts -
 *                       and finished ones with their scores, each under its API-Football id.
 *
 * The jobs do not talk to the sources themselves: they find the collectors (plugins of their
 * own) through the host and call them. A collector that is not configured - no API key - says
 * so with BP_E_CONFIG; the job notes it and carries on with the others. Only when no source at
 * all could run does the job fail, and its message says what to configure.
 *
 * Every job's result carries the counts (inserted, updated, unchanged), the rejected rows or
 * payload entries with their reason and where they were (file:line or payload path), and per
 * source what happened.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "betpipe/betpipe.h"

#ifndef BP_BUNDLED_DATA_DIR
#define BP_BUNDLED_DATA_DIR ""
#endif
#ifndef BP_INSTALLED_DATA_DIR
#define BP_INSTALLED_DATA_DIR ""
#endif

static bool is_dir(const char *path)
{
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- data.import -------------------------------------------------------------------------------
 */

/* Where the history comes from: the job's args, the plugin config, the environment, the bundled
 * data of the source tree this plugin was built from, the installed copy. */
static const char *import_source(const bp_host *h, const json_t *args, const char **out_from)
{
    const char *s = json_string_value(json_object_get(args, "source"));
    if (s && *s) {
        *out_from = "args";
        return s;
    }
    s = json_string_value(json_object_get(h->config(h), "source"));
    if (s && *s) {
        *out_from = "config plugins.config.data.source";
        return s;
    }
    s = getenv("BETPIPE_DATA_SOURCE");
    if (s && *s) {
        *out_from = "BETPIPE_DATA_SOURCE";
        return s;
    }
    if (is_dir(BP_BUNDLED_DATA_DIR)) {
        *out_from = "bundled data (source tree)";
        return BP_BUNDLED_DATA_DIR;
    }
    if (is_dir(BP_INSTALLED_DATA_DIR)) {
        *out_from = "bundled data (installed)";
        return BP_INSTALLED_DATA_DIR;
    }
    return NULL;
}

static json_int_t count_of(const json_t *report, const char *group, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(report, group), key));
}

/* "380 matches (380 new, 0 updated, 0 unchanged)" for the counter group `group` of `report`. */
static void counts_text(char *buf, size_t len, const json_t *report, const char *group,
                        json_int_t total, const char *noun)
{
    snprintf(buf, len, "%lld %s (%lld new, %lld updated, %lld unchanged)", (long long)total, noun,
             (long long)count_of(report, group, "inserted"),
             (long long)count_of(report, group, "updated"),
             (long long)count_of(report, group, "unchanged"));
}

static json_int_t counts_total(const json_t *report, const char *group)
{
    return count_of(report, group, "inserted") + count_of(report, group, "updated") +
           count_of(report, group, "unchanged");
}

static void summarise_import(json_t *report)
{
    char text[512], matches[160], odds[160];
    counts_text(matches, sizeof matches, report, "matches",
                json_integer_value(json_object_get(report, "rows")), "matches");
    counts_text(odds, sizeof odds, report, "odds", counts_total(report, "odds"), "odds");
    snprintf(text, sizeof text, "%lld files: %s, %s, %lld rows rejected, %lld files failed",
             (long long)json_integer_value(json_object_get(report, "files")), matches, odds,
             (long long)json_integer_value(json_object_get(report, "rejected_rows")),
             (long long)json_integer_value(json_object_get(report, "files_failed")));
    json_object_set_new(report, "summary", json_string(text));
}

static int run_import(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    const bp_collector_type *fd = NULL;
    void *fd_state = NULL;
    const char *from = NULL;
    const char *source = import_source(h, job->args, &from);
    json_t *request, *report = NULL;
    int rc;

    if (!source) {
        return bp_err(err, BP_E_CONFIG,
                      "no football-data source: pass args.source (URL, file:// URL or folder), "
                      "or set plugins.config.data.source or BETPIPE_DATA_SOURCE (the bundled "
                      "data was not found at %s or %s)",
                      *BP_BUNDLED_DATA_DIR ? BP_BUNDLED_DATA_DIR : "(none)",
                      *BP_INSTALLED_DATA_DIR ? BP_INSTALLED_DATA_DIR : "(none)");
    }
    if (h->find_collector(h, "football_data", &fd, &fd_state) != BP_OK) {
        return bp_err(err, BP_E_CONFIG,
                      "data.import needs the football_data collector plugin "
                      "(collector-football_data.so), which is not loaded");
    }
    request = json_pack("{s:s}", "source", source);
    if (!request) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (json_object_get(job->args, "leagues")) {
        json_object_set(request, "leagues", json_object_get(job->args, "leagues"));
    }
    if (json_object_get(job->args, "seasons")) {
        json_object_set(request, "seasons", json_object_get(job->args, "seasons"));
    }
    BP_LOGI(h, "import started source=%s from=%s", source, from);
    rc = fd->collect(fd_state, job, BP_COLLECT_RESULTS, request, &report, err);
    json_decref(request);
    if (rc != BP_OK) {
        return rc;
    }
    json_object_set_new(report, "source_from", json_string(from));
    summarise_import(report);
    BP_LOGI(h, "import done: %s", json_string_value(json_object_get(report, "summary")));

    json_int_t files = json_integer_value(json_object_get(report, "files"));
    json_int_t failed = json_integer_value(json_object_get(report, "files_failed"));
    if (files == 0) {
        rc = bp_err(err, BP_E_NOTFOUND,
                    "nothing to import from %s for the leagues and seasons "
                    "asked for",
                    source);
        json_decref(report);
        return rc;
    }
    if (failed > 0) {
        /* Each failed file was rolled back whole; the others are stored. A failed file is a
         * failed job, so that nobody mistakes a partial import for a complete one. */
        const json_t *first = json_array_get(json_object_get(report, "failed"), 0);
        rc = bp_err(
            err, json_is_true(json_object_get(first, "retryable")) ? BP_E_UNAVAILABLE : BP_E_IO,
            "%lld of %lld files failed and were not imported (nothing of them is stored); "
            "first: %s: %s. The others were imported: %s",
            (long long)failed, (long long)files, json_string_value(json_object_get(first, "file")),
            json_string_value(json_object_get(first, "error")),
            json_string_value(json_object_get(report, "summary")));
        json_decref(report);
        return rc;
    }
    h->progress(job, 1.0, "imported");
    *out_result = report;
    return BP_OK;
}

/* ---- data.collect_* -------------------------------------------------------------------------- */

/* The starting year of the season running at `ms` (a season starts in July). */
static int32_t current_season(int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    return tm.tm_mon >= 6 ? tm.tm_year + 1900 : tm.tm_year + 1899;
}

static const char *what_name(int32_t what)
{
    switch (what) {
    case BP_COLLECT_ODDS: return "odds";
    case BP_COLLECT_STATS: return "team statistics";
    case BP_COLLECT_LIVE: return "live fixtures and scores";
    case BP_COLLECT_FIXTURES: return "fixtures";
    default: return "data";
    }
}

static bool transient(int rc)
{
    return rc == BP_E_UNAVAILABLE || rc == BP_E_TIMEOUT || rc == BP_E_RETRY;
}

/* Latest odds of every match a source touched into the cache ("odds", {"match_id": id}). */
static json_int_t cache_odds(const bp_host *h, const json_t *match_ids)
{
    json_int_t n = 0;
    size_t i;
    json_t *v;
    if (!h->cache) {
        return 0;
    }
    json_array_foreach(match_ids, i, v)
    {
        json_t *quotes = NULL, *filters;
        json_int_t id = json_integer_value(v);
        if (h->store->get_odds(h, id, -1, BP_ODDS_LATEST, &quotes, NULL) != BP_OK) {
            continue;
        }
        filters = json_pack("{s:I}", "match_id", id);
        if (filters && h->cache->set(h, "odds", filters, quotes, NULL) == BP_OK) {
            n++;
        }
        json_decref(filters);
        json_decref(quotes);
    }
    return n;
}

/* Team statistics into "stats", leagues and teams into "static". */
static json_int_t cache_stats(const bp_host *h, const json_t *team_ids, int32_t season,
                              const json_t *league_ids)
{
    json_int_t n = 0;
    size_t i;
    json_t *v, *leagues = NULL;
    if (!h->cache) {
        return 0;
    }
    json_array_foreach(team_ids, i, v)
    {
        json_t *stats = NULL, *filters;
        json_int_t id = json_integer_value(v);
        if (h->store->get_team_stats(h, id, season, &stats, NULL) != BP_OK) {
            continue;
        }
        filters = json_pack("{s:I, s:i}", "team_id", id, "season", (int)season);
        if (filters && h->cache->set(h, "stats", filters, stats, NULL) == BP_OK) {
            n++;
        }
        json_decref(filters);
        json_decref(stats);
    }
    if (h->store->list_leagues(h, &leagues, NULL) == BP_OK) {
        json_t *filters = json_pack("{s:s}", "kind", "leagues");
        if (filters && h->cache->set(h, "static", filters, leagues, NULL) == BP_OK) {
            n++;
        }
        json_decref(filters);
        json_array_foreach(leagues, i, v)
        {
            json_int_t id = json_integer_value(json_object_get(v, "id"));
            json_t *teams = NULL;
            size_t k;
            json_t *w;
            bool wanted = false;
            json_array_foreach(league_ids, k, w)
            {
                wanted = wanted || json_integer_value(w) == id;
            }
            if (!wanted || h->store->list_teams(h, id, &teams, NULL) != BP_OK) {
                continue;
            }
            filters = json_pack("{s:s, s:s}", "kind", "teams", "league",
                                json_string_value(json_object_get(v, "code")));
            if (filters && h->cache->set(h, "static", filters, teams, NULL) == BP_OK) {
                n++;
            }
            json_decref(filters);
            json_decref(teams);
        }
        json_decref(leagues);
    }
    return n;
}

/* Sum a counter group ("matches", "odds", "team_stats") of every source into totals. */
static void add_totals(json_t *totals, const json_t *report)
{
    static const char *const groups[] = {"matches", "odds", "team_stats"};
    static const char *const keys[] = {"inserted", "updated", "unchanged"};
    for (size_t g = 0; g < 3; g++) {
        const json_t *src = json_object_get(report, groups[g]);
        json_t *dst = json_object_get(totals, groups[g]);
        if (!json_is_object(src)) {
            continue;
        }
        if (!dst) {
            dst = json_pack("{s:i, s:i, s:i}", "inserted", 0, "updated", 0, "unchanged", 0);
            json_object_set_new(totals, groups[g], dst);
        }
        for (size_t k = 0; k < 3; k++) {
            json_object_set_new(dst, keys[k],
                                json_integer(json_integer_value(json_object_get(dst, keys[k])) +
                                             json_integer_value(json_object_get(src, keys[k]))));
        }
    }
    /* fixtures per status ("scheduled": n, "finished": n ...) */
    const char *status;
    json_t *n;
    json_object_foreach(json_object_get(report, "by_status"), status, n)
    {
        json_t *dst = json_object_get(totals, "by_status");
        if (!dst) {
            dst = json_object();
            json_object_set_new(totals, "by_status", dst);
        }
        json_object_set_new(
            dst, status,
            json_integer(json_integer_value(json_object_get(dst, status)) + json_integer_value(n)));
    }
    /* the collectors list at most 100 rejected entries; rejected_total counts them all */
    const json_t *listed = json_object_get(report, "rejected");
    json_int_t rejected = json_is_integer(json_object_get(report, "rejected_total"))
                              ? json_integer_value(json_object_get(report, "rejected_total"))
                              : (json_int_t)json_array_size(listed);
    json_object_set_new(
        totals, "rejected",
        json_integer(json_integer_value(json_object_get(totals, "rejected")) + rejected));
}

static int run_collect(const bp_job *job, int32_t what, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    json_t *names = h->list_names(h, "collector");
    json_t *result = NULL, *sources, *totals, *request;
    json_int_t cached = 0;
    int32_t season;
    size_t i, n_ok = 0, n_skipped = 0, n_failed = 0, n_candidates = 0;
    json_t *v;
    int first_fail = BP_OK;
    char skipped_text[1024] = "", failed_text[BP_ERROR_MSG_MAX + 64] = "";

    season = json_is_integer(json_object_get(job->args, "season"))
                 ? (int32_t)json_integer_value(json_object_get(job->args, "season"))
                 : current_season(h->now_ms(h));
    /* a date range without a season: the collector takes the seasons from the dates */
    bool range = json_object_get(job->args, "from") && json_object_get(job->args, "to") &&
                 !json_object_get(job->args, "season");
    request = json_deep_copy(job->args);
    sources = json_object();
    totals = json_object();
    if (!names || !request || !sources || !totals) {
        json_decref(names);
        json_decref(request);
        json_decref(sources);
        json_decref(totals);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (!range) {
        json_object_set_new(request, "season", json_integer(season));
    }

    json_array_foreach(names, i, v)
    {
        const bp_collector_type *desc = NULL;
        void *state = NULL;
        json_t *report = NULL;
        bp_error cerr = {0};
        const char *name = json_string_value(v);
        int rc;
        if (h->find_collector(h, name, &desc, &state) != BP_OK || !(desc->provides & what)) {
            continue;
        }
        n_candidates++;
        if (h->cancelled(job)) {
            break;
        }
        h->progress(job, (double)n_candidates / (double)(json_array_size(names) + 1), name);
        rc = desc->collect(state, job, what, request, &report, &cerr);
        if (rc == BP_E_CONFIG) {
            n_skipped++;
            json_object_set_new(sources, name, json_pack("{s:s}", "skipped", cerr.msg));
            size_t used = strlen(skipped_text);
            snprintf(skipped_text + used, sizeof skipped_text - used, "%s%s: %s", used ? "; " : "",
                     name, cerr.msg);
            BP_LOGI(h, "source skipped source=%s: %s", name, cerr.msg);
        } else if (rc != BP_OK) {
            n_failed++;
            if (first_fail == BP_OK) {
                first_fail = rc;
                snprintf(failed_text, sizeof failed_text, "%s: %s", name, cerr.msg);
            }
            json_object_set_new(sources, name,
                                json_pack("{s:s, s:s, s:b}", "error", cerr.msg, "status",
                                          bp_status_str(rc), "retryable", transient(rc)));
            BP_LOGW(h, "source failed source=%s: %s", name, cerr.msg);
        } else {
            n_ok++;
            add_totals(totals, report);
            if (what == BP_COLLECT_ODDS) {
                cached += cache_odds(h, json_object_get(report, "match_ids"));
            } else if (what == BP_COLLECT_STATS) {
                cached += cache_stats(h, json_object_get(report, "team_ids"), season,
                                      json_object_get(report, "league_ids"));
            }
            /* the id lists were for the cache; the result keeps their sizes */
            json_object_del(report, "match_ids");
            json_object_del(report, "team_ids");
            json_object_del(report, "league_ids");
            json_object_set_new(sources, name, report);
        }
    }
    json_decref(names);
    json_decref(request);

    if (n_ok == 0) {
        int rc;
        if (h->cancelled(job)) {
            rc = bp_err(err, BP_E_CANCELLED, "cancelled before any source ran");
        } else if (n_candidates == 0) {
            rc = bp_err(err, BP_E_CONFIG, "no collector plugin that provides %s is loaded",
                        what_name(what));
        } else if (n_failed == 0) {
            /* each skipped source said which key it needs */
            rc = bp_err(err, BP_E_CONFIG, "nothing is configured to collect %s: %s",
                        what_name(what), skipped_text);
        } else {
            rc = bp_err(err, transient(first_fail) ? BP_E_UNAVAILABLE : first_fail,
                        "every configured source failed; first: %s%s%s", failed_text,
                        n_skipped ? "; skipped: " : "", n_skipped ? skipped_text : "");
        }
        json_decref(sources);
        json_decref(totals);
        return rc;
    }
    result = json_pack("{s:o, s:o, s:I, s:i, s:i, s:i}", "sources", sources, "totals", totals,
                       "cached", cached, "sources_ok", (int)n_ok, "sources_skipped", (int)n_skipped,
                       "sources_failed", (int)n_failed);
    if (!result) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (range) {
        json_object_set(result, "from", json_object_get(job->args, "from"));
        json_object_set(result, "to", json_object_get(job->args, "to"));
    } else {
        json_object_set_new(result, "season", json_integer(season));
    }
    h->progress(job, 1.0, "done");
    *out_result = result;
    return BP_OK;
}

static int run_collect_odds(const bp_job *job, json_t **out_result, bp_error *err)
{
    return run_collect(job, BP_COLLECT_ODDS, out_result, err);
}

static int run_collect_stats(const bp_job *job, json_t **out_result, bp_error *err)
{
    return run_collect(job, BP_COLLECT_STATS, out_result, err);
}

static int run_collect_live(const bp_job *job, json_t **out_result, bp_error *err)
{
    return run_collect(job, BP_COLLECT_LIVE, out_result, err);
}

/* "12 fixtures (10 new, 2 updated, 0 unchanged), 0 rejected: 9 scheduled, 3 finished" */
static void summarise_fixtures(json_t *result)
{
    const json_t *totals = json_object_get(result, "totals");
    json_t *by_status = json_object_get(totals, "by_status");
    bool first = true;
    char text[512];
    const char *status;
    json_t *n;
    char counts[160];
    counts_text(counts, sizeof counts, totals, "matches", counts_total(totals, "matches"),
                "fixtures");
    int used = snprintf(text, sizeof text, "%s, %lld rejected", counts,
                        (long long)json_integer_value(json_object_get(totals, "rejected")));
    json_object_foreach(by_status, status, n)
    {
        if (used > 0 && (size_t)used < sizeof text) {
            used += snprintf(text + used, sizeof text - (size_t)used, "%s%lld %s",
                             first ? ": " : ", ", (long long)json_integer_value(n), status);
            first = false;
        }
    }
    json_object_set_new(result, "summary", json_string(text));
}

static int run_collect_fixtures(const bp_job *job, json_t **out_result, bp_error *err)
{
    const char *from = json_string_value(json_object_get(job->args, "from"));
    const char *to = json_string_value(json_object_get(job->args, "to"));
    int rc;
    /* both are YYYY-MM-DD (the args schema), so they compare as text */
    if ((from != NULL) != (to != NULL)) {
        return bp_err(err, BP_E_INVAL,
                      "args: from and to go together (a date range, YYYY-MM-DD); got only %s",
                      from ? "from" : "to");
    }
    if (from && strcmp(to, from) < 0) {
        return bp_err(err, BP_E_INVAL, "args: to (%s) is before from (%s)", to, from);
    }
    rc = run_collect(job, BP_COLLECT_FIXTURES, out_result, err);
    if (rc == BP_OK) {
        summarise_fixtures(*out_result);
        BP_LOGI(job->host, "fixtures collected: %s",
                json_string_value(json_object_get(*out_result, "summary")));
    }
    return rc;
}

/* ---- registration ------------------------------------------------------------------------------
 */

#define LEAGUES_SCHEMA                                                                             \
    "\"leagues\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": "           \
    "\"^[A-Z]{1,3}[0-9]?$\"}, \"minItems\": 1, \"description\": \"league codes (E0, SP1, D1, "     \
    "I1, F1); default: the collector's configured leagues\"}"
#define SEASON_SCHEMA                                                                              \
    "\"season\": {\"type\": \"integer\", \"minimum\": 1990, \"maximum\": 2100, \"description\": "  \
    "\"starting year of the season (2024 = 2024-25); default: the current one\"}"

static const bp_job_type data_jobs[] = {
    {
        .struct_size = sizeof(bp_job_type),
        .name = "data.import",
        .description = "Import football-data.co.uk history (results, stats, odds) into the store; "
                       "the bundled data when no source is given",
        .queue = "data_queue",
        .args_schema =
            "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
            "\"source\": {\"type\": \"string\", \"minLength\": 1, \"description\": \"http(s):// "
            "URL of a CSV, file:// URL, or a file or folder path; default: plugins.config.data."
            "source, BETPIPE_DATA_SOURCE, the bundled data\"},"
            "\"leagues\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": "
            "\"^[A-Z]{1,3}[0-9]?$\"}, \"description\": \"divisions to import (E0, SP1, D1); "
            "default all\"},"
            "\"seasons\": {\"type\": \"array\", \"items\": {\"type\": [\"string\", "
            "\"integer\"]}, \"description\": \"seasons to import (\\\"2023-24\\\" or 2023); "
            "default all\"}}}",
        .soft_time_limit_s = 1800,
        .max_retries = 2,
        .run = run_import,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "data.collect_odds",
        .description = "Odds from every configured source (API-Football, The Odds API) into the "
                       "store; latest odds per match into the cache",
        .queue = "data_queue",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": "
                       "{" LEAGUES_SCHEMA "," SEASON_SCHEMA "}}",
        .soft_time_limit_s = 600,
        .max_retries = 3,
        .run = run_collect_odds,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "data.collect_stats",
        .description = "Team statistics and standings into the store and the cache; leagues and "
                       "teams into the static cache",
        .queue = "data_queue",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": "
                       "{" LEAGUES_SCHEMA "," SEASON_SCHEMA ","
                       "\"teams\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}, "
                       "\"description\": \"API-Football team ids to fetch detailed statistics "
                       "for; default every team of the standings\"}}}",
        .soft_time_limit_s = 900,
        .max_retries = 3,
        .run = run_collect_stats,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "data.collect_live",
        .description = "In-play fixtures and scores into the store",
        .queue = "data_queue",
        .args_schema = "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": "
                       "{" LEAGUES_SCHEMA "," SEASON_SCHEMA "}}",
        .soft_time_limit_s = 120,
        .max_retries = 1,
        .run = run_collect_live,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "data.collect_fixtures",
        .description = "Fixtures (scheduled and finished, with kick-off times) of a league and "
                       "season or of a date range into the store (API-Football)",
        .queue = "data_queue",
        .args_schema =
            "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": "
            "{" LEAGUES_SCHEMA "," SEASON_SCHEMA ","
            "\"from\": {\"type\": \"string\", \"format\": \"date\", \"description\": \"first "
            "day of a date range (UTC), with to; without season, the seasons the range "
            "touches\"},"
            "\"to\": {\"type\": \"string\", \"format\": \"date\", \"description\": \"last day "
            "of the range (inclusive), with from\"}}}",
        .soft_time_limit_s = 600,
        .max_retries = 3,
        .run = run_collect_fixtures,
    },
};

static int data_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    (void)host;
    *out_state = NULL;
    for (size_t i = 0; i < sizeof data_jobs / sizeof data_jobs[0]; i++) {
        int rc = reg->add_job_type(reg, &data_jobs[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static void data_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("data", "1.0.0",
                 "Data jobs: import football-data history, collect odds, statistics and live "
                 "scores through the collectors",
                 data_init, data_fini)
