/*
 * csupport.h - what the API collector plugins share besides payload parsing (static library
 * bp_collect_common): configuration with environment fallbacks, the report every collector
 * returns, the state a collector keeps across runs and processes (a quota pause, the last quota
 * seen), and a wait that stops when the job is cancelled.
 *
 * Everything reaches the core through the plugin's bp_host only. Reentrant; the state file
 * functions may race between processes, which is harmless: the file is replaced atomically and
 * the worst case is one extra request that the API refuses again.
 */
#ifndef BP_COLLECT_CSUPPORT_H
#define BP_COLLECT_CSUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/betpipe.h"

/* ---- configuration -------------------------------------------------------------------------- */

/* The plugin config's string `key`, else the environment variable `env` (may be NULL), else
 * dflt. Borrowed (valid until the next config reload). */
const char *cs_config_str(const bp_host *h, const char *key, const char *env, const char *dflt);
/* The plugin config's integer `key` clamped to [min, max], else dflt. */
int64_t cs_config_int(const bp_host *h, const char *key, int64_t dflt, int64_t min, int64_t max);
/* The league codes to collect: request.leagues, else config "leagues", else `all` (a
 * NULL-terminated list). New reference to an array of strings. */
json_t *cs_leagues(const bp_host *h, const json_t *request, const char *const *all);

/* ---- the report ------------------------------------------------------------------------------ */

/* A new report: {"requests": 0, "matches": {inserted, updated, unchanged}, "odds": {...},
 * "team_stats": {...}, "rejected": [], "errors": [], "teams_created": [], "match_ids": [],
 * "team_ids": [], "league_ids": []}. NULL on allocation failure. */
json_t *cs_report_new(void);
/* Add c to the report's counter group `key` ("matches", "odds", "team_stats"). */
void cs_count(json_t *report, const char *key, const bp_store_counts *c);
/* Count one upsert outcome (BP_UPSERT_*) in group `key`. */
void cs_count_outcome(json_t *report, const char *key, int32_t outcome);
/* A rejected payload entry: where (request, payload path) and why. At most 100 are listed,
 * all are counted in "rejected_total". */
void cs_reject(json_t *report, const char *request, const char *path, const char *reason);
/* A request that failed: {"request", "error", "status"}. */
void cs_error(json_t *report, const char *request, int code, const char *message);
/* report[group][key] += 1, creating the group object (e.g. "by_status", "scheduled"). */
void cs_count_key(json_t *report, const char *group, const char *key);
/* Append `text` to the string list `key` (created when absent) unless it is there already. At
 * most 100 are listed. */
void cs_note(json_t *report, const char *key, const char *text);
/* Append `id` to the integer list `key` unless it is there already. */
void cs_add_id(json_t *report, const char *key, int64_t id);
/* report.requests += 1 */
void cs_count_request(json_t *report);
/* The error a failed request leaves for the job: `err` as it is when the HTTP client failed
 * (from_http: its message names the URL, key masked), else prefixed with the request, because a
 * parser's or the store's message does not say which one it was ("GET /odds?league=39: not valid
 * JSON ..."). */
bp_error cs_request_error(const char *request, const bp_error *err, bool from_http);

/* ---- state kept across runs ---------------------------------------------------------------- */

/* The collector's state: <data_dir>/collectors/<name>.json, {} when absent or unreadable. New
 * reference. */
json_t *cs_state_load(const bp_host *h, const char *name);
/* Replace it (atomically). */
int cs_state_save(const bp_host *h, const char *name, const json_t *state, bp_error *err);
/* When state holds a pause ({"paused_until_ms", "pause_reason"}) that has not expired at now_ms,
 * fill err with "<what> paused until <ISO>: <reason> (no request made)" and return BP_E_LIMIT;
 * else BP_OK. */
int cs_pause_check(const json_t *state, int64_t now_ms, const char *what, bp_error *err);
/* Record a pause in state (and save it). */
int cs_pause_set(const bp_host *h, const char *name, json_t *state, int64_t until_ms,
                 const char *reason, bp_error *err);

/* ---- time ----------------------------------------------------------------------------------- */

/* Wait ms milliseconds, in slices, returning BP_E_CANCELLED as soon as the job is cancelled. */
int cs_wait(const bp_host *h, const bp_job *job, int64_t ms);
/* "2024-11-23T20:00:00Z" for an epoch-ms instant, into buf (>= 32 bytes). */
void cs_iso(int64_t ms, char *buf, size_t len);
/* The starting year of the season running at ms (seasons start in July). */
int32_t cs_season_of(int64_t ms);

#endif
