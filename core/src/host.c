/*
 * host.c - the bp_host table each plugin receives (the plugin ABI's service side).
 *
 * Every plugin gets its own copy of the table, embedded in a host_ctx that also records the
 * plugin's name and the app: so `host->log(host, ...)` knows who is speaking without the plugin
 * saying it, and no function of the table needs a global.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "betpipe/betpipe.h"
#include "betpipe/http.h"
#include "cache.h"
#include "client.h"
#include "exec.h"
#include "http_client.h"
#include "log.h"
#include "store_domain.h"
#include "store_models.h"
#include "util.h"

typedef struct host_ctx {
    bp_host table; /* first: a bp_host * is a host_ctx * */
    app *app;
    char name[64];
    char component[80];
} host_ctx;

static host_ctx *ctx_of(const bp_host *h)
{
    return (host_ctx *)(uintptr_t)h;
}

app *host_app(const bp_host *h)
{
    return ctx_of(h)->app;
}

/* ---- logging, config, clock ----------------------------------------------------------------- */

static void h_log(const bp_host *h, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, ctx_of(h)->component, fmt, ap);
    va_end(ap);
}

static int h_log_enabled(const bp_host *h, int level)
{
    (void)h;
    return level <= log_get_level();
}

static const json_t *h_config(const bp_host *h)
{
    static json_t *empty;
    const json_t *c = config_plugin(ctx_of(h)->app->cfg, ctx_of(h)->name);
    if (c) {
        return c;
    }
    if (!empty) {
        empty = json_object();
    }
    return empty;
}

static const char *h_data_dir(const bp_host *h)
{
    return ctx_of(h)->app->cfg->data_dir;
}

static int64_t h_now_ms(const bp_host *h)
{
    (void)h;
    return util_now_ms();
}

static int64_t h_mono_ns(const bp_host *h)
{
    (void)h;
    return util_mono_ns();
}

/* ---- the running job ------------------------------------------------------------------------ */

static void h_progress(const bp_job *running, double fraction, const char *msg)
{
    exec_runtime *rt = running->runtime;
    if (rt && rt->pool) {
        pool_task_progress(rt->pool, rt->task, fraction, msg);
    } else if (rt && rt->progress_fd >= 0) {
        /* an isolated child: one line per report, the parent forwards it to the pool */
        json_t *line = json_pack("{s:f, s:s}", "progress", fraction, "msg", msg ? msg : "");
        char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
        if (text) {
            size_t n = strlen(text);
            text[n] = '\n';
            if (write(rt->progress_fd, text, n + 1) < 0) {
                /* the parent is gone; the job will notice through cancelled() soon enough */
            }
        }
        free(text);
        json_decref(line);
    } else if (rt && rt->task) {
        rt->task->progress = fraction;
        log_debug("exec", "progress id=%s fraction=%.2f msg=%s", running->id, fraction,
                  msg ? msg : "");
    }
}

static int h_cancelled(const bp_job *running)
{
    exec_runtime *rt = running->runtime;
    return rt && rt->task && pool_task_cancelled(rt->task);
}

/* Fan-out: the new job records the caller's job as its parent when called from inside run(). */
static int h_enqueue(const bp_host *h, const char *type, const json_t *args,
                     const bp_enqueue_opts *opts, char out_id[BP_JOB_ID_SIZE], bp_error *err)
{
    app *a = ctx_of(h)->app;
    if (!a->broker) {
        return bp_err(err, BP_E_UNAVAILABLE, "no broker in this process");
    }
    return client_enqueue(a, type, args, opts, exec_current_job_id(), out_id, err);
}

/* ---- lookups ----------------------------------------------------------------------------------
 */

static int h_find_model(const bp_host *h, const char *name, const bp_model_type **out_desc,
                        void **out_state)
{
    const registry_model *m = registry_find_model(ctx_of(h)->app->reg, name);
    if (!m) {
        return BP_E_NOTFOUND;
    }
    *out_desc = &m->desc;
    *out_state = m->plugin_state;
    return BP_OK;
}

static int h_find_collector(const bp_host *h, const char *name, const bp_collector_type **out_desc,
                            void **out_state)
{
    const registry_collector *c = registry_find_collector(ctx_of(h)->app->reg, name);
    if (!c) {
        return BP_E_NOTFOUND;
    }
    *out_desc = &c->desc;
    *out_state = c->plugin_state;
    return BP_OK;
}

static int h_find_notifier(const bp_host *h, const char *name, const bp_notifier_type **out_desc,
                           void **out_state)
{
    const registry_notifier *n = registry_find_notifier(ctx_of(h)->app->reg, name);
    if (!n) {
        return BP_E_NOTFOUND;
    }
    *out_desc = &n->desc;
    *out_state = n->plugin_state;
    return BP_OK;
}

static json_t *h_list_names(const bp_host *h, const char *kind)
{
    registry_kind k;
    if (registry_kind_parse(kind, &k, NULL) != BP_OK) {
        return json_array();
    }
    return registry_names(ctx_of(h)->app->reg, k);
}

/* ---- store ------------------------------------------------------------------------------------
 */

static const char *hs_path(const bp_host *h)
{
    return store_path(ctx_of(h)->app->store);
}

static int hs_backup(const bp_host *h, const char *dest, bp_error *err)
{
    return store_backup(ctx_of(h)->app->store, dest, err);
}

static int hs_verify(const bp_host *h, const char *path, bp_error *err)
{
    (void)h;
    return store_verify_file(path, err);
}

static int hs_optimize(const bp_host *h, json_t **out_report, bp_error *err)
{
    return store_optimize(ctx_of(h)->app->store, out_report, err);
}

/* The domain calls go straight to store_domain.c with this plugin's app store. */
static store *store_of(const bp_host *h)
{
    return ctx_of(h)->app->store;
}

static int hs_batch_begin(const bp_host *h, bp_store_batch **out, bp_error *err)
{
    return store_batch_begin(store_of(h), out, err);
}

static int hs_batch_commit(const bp_host *h, bp_store_batch *b, bp_error *err)
{
    (void)h;
    return store_batch_commit(b, err);
}

static void hs_batch_rollback(const bp_host *h, bp_store_batch *b)
{
    (void)h;
    store_batch_rollback(b);
}

static int hs_upsert_league(const bp_host *h, bp_store_batch *b, const bp_league_rec *rec,
                            int64_t *out_id, int32_t *out_outcome, bp_error *err)
{
    return store_upsert_league(store_of(h), b, rec, out_id, out_outcome, err);
}

static int hs_find_league(const bp_host *h, bp_store_batch *b, const char *source, const char *name,
                          json_t **out, bp_error *err)
{
    return store_find_league(store_of(h), b, source, name, out, err);
}

static int hs_list_leagues(const bp_host *h, json_t **out, bp_error *err)
{
    return store_list_leagues(store_of(h), out, err);
}

static int hs_resolve_team(const bp_host *h, bp_store_batch *b, int64_t league_id,
                           const char *source, const char *name, int64_t *out_team_id,
                           int32_t *out_created, bp_error *err)
{
    return store_resolve_team(store_of(h), b, league_id, source, name, out_team_id, out_created,
                              err);
}

static int hs_add_team_alias(const bp_host *h, bp_store_batch *b, int64_t team_id,
                             const char *source, const char *alias, bp_error *err)
{
    return store_add_team_alias(store_of(h), b, team_id, source, alias, err);
}

static int hs_list_teams(const bp_host *h, int64_t league_id, json_t **out, bp_error *err)
{
    return store_list_teams(store_of(h), league_id, out, err);
}

static int hs_upsert_match(const bp_host *h, bp_store_batch *b, const bp_match_rec *rec,
                           int64_t *out_id, int32_t *out_outcome, bp_error *err)
{
    return store_upsert_match(store_of(h), b, rec, out_id, out_outcome, err);
}

static int hs_find_match(const bp_host *h, bp_store_batch *b, const char *source,
                         const char *external_id, int64_t *out_id, bp_error *err)
{
    return store_find_match(store_of(h), b, source, external_id, out_id, err);
}

static int hs_find_match_by_teams(const bp_host *h, bp_store_batch *b, int64_t home, int64_t away,
                                  int64_t kickoff_ms, int64_t window_ms, int64_t *out_id,
                                  bp_error *err)
{
    return store_find_match_by_teams(store_of(h), b, home, away, kickoff_ms, window_ms, out_id,
                                     err);
}

static int hs_upsert_odds(const bp_host *h, bp_store_batch *b, int64_t match_id,
                          const bp_odds_quote *quotes, size_t n, bp_store_counts *counts,
                          bp_error *err)
{
    return store_upsert_odds(store_of(h), b, match_id, quotes, n, counts, err);
}

static int hs_upsert_team_stats(const bp_host *h, bp_store_batch *b, const bp_team_stats_rec *rec,
                                int32_t *out_outcome, bp_error *err)
{
    return store_upsert_team_stats(store_of(h), b, rec, out_outcome, err);
}

static int hs_list_matches(const bp_host *h, const bp_match_query *q, json_t **out, bp_error *err)
{
    return store_list_matches(store_of(h), q, out, err);
}

static int hs_get_odds(const bp_host *h, int64_t match_id, int32_t market, int32_t which,
                       json_t **out, bp_error *err)
{
    return store_get_odds(store_of(h), match_id, market, which, out, err);
}

static int hs_get_team_stats(const bp_host *h, int64_t team_id, int32_t season, json_t **out,
                             bp_error *err)
{
    return store_get_team_stats(store_of(h), team_id, season, out, err);
}

static int hs_match_results(const bp_host *h, const bp_match_query *q, const char *bookmaker,
                            bp_match_result **out_rows, size_t *out_n, bp_error *err)
{
    return store_match_results(store_of(h), q, bookmaker, out_rows, out_n, err);
}

static void hs_free_results(const bp_host *h, bp_match_result *rows)
{
    (void)h;
    store_free_results(rows);
}

static int hs_save_model(const bp_host *h, const bp_model_rec *rec, int64_t *out_id,
                         int64_t *out_replaced, bp_error *err)
{
    return store_save_model(store_of(h), rec, out_id, out_replaced, err);
}

static int hs_get_model(const bp_host *h, int64_t model_id, const char *model, int64_t league_id,
                        json_t **out, bp_error *err)
{
    return store_get_model(store_of(h), model_id, model, league_id, out, err);
}

static int hs_list_models(const bp_host *h, const char *model, int64_t league_id,
                          int32_t active_only, json_t **out, bp_error *err)
{
    return store_list_models(store_of(h), model, league_id, active_only, out, err);
}

static int hs_activate_model(const bp_host *h, int64_t model_id, bp_error *err)
{
    return store_activate_model(store_of(h), model_id, err);
}

static int hs_put_predictions(const bp_host *h, const bp_prediction_rec *recs, size_t n,
                              bp_store_counts *counts, bp_error *err)
{
    return store_put_predictions(store_of(h), recs, n, counts, err);
}

static int hs_list_predictions(const bp_host *h, const bp_prediction_query *q, json_t **out,
                               bp_error *err)
{
    return store_list_predictions(store_of(h), q, out, err);
}

static const bp_store_api store_api = {
    .struct_size = sizeof(bp_store_api),
    .path = hs_path,
    .backup = hs_backup,
    .verify = hs_verify,
    .optimize = hs_optimize,
    .batch_begin = hs_batch_begin,
    .batch_commit = hs_batch_commit,
    .batch_rollback = hs_batch_rollback,
    .upsert_league = hs_upsert_league,
    .find_league = hs_find_league,
    .list_leagues = hs_list_leagues,
    .resolve_team = hs_resolve_team,
    .add_team_alias = hs_add_team_alias,
    .list_teams = hs_list_teams,
    .upsert_match = hs_upsert_match,
    .find_match = hs_find_match,
    .find_match_by_teams = hs_find_match_by_teams,
    .upsert_odds = hs_upsert_odds,
    .upsert_team_stats = hs_upsert_team_stats,
    .list_matches = hs_list_matches,
    .get_odds = hs_get_odds,
    .get_team_stats = hs_get_team_stats,
    .match_results = hs_match_results,
    .free_results = hs_free_results,
    .save_model = hs_save_model,
    .get_model = hs_get_model,
    .list_models = hs_list_models,
    .activate_model = hs_activate_model,
    .put_predictions = hs_put_predictions,
    .list_predictions = hs_list_predictions,
};

/* ---- cache: the typed cache of the app (cache.h) -------------------------------------------- */

static cache *cache_of(const bp_host *h)
{
    return ctx_of(h)->app->cache;
}

static int hc_get(const bp_host *h, const char *type, const json_t *filters, json_t **out,
                  bp_error *err)
{
    return cache_get(cache_of(h), type, filters, out, err);
}

static int hc_set(const bp_host *h, const char *type, const json_t *filters, const json_t *value,
                  bp_error *err)
{
    return cache_set(cache_of(h), type, filters, value, err);
}

static int hc_del(const bp_host *h, const char *type, const json_t *filters, bp_error *err)
{
    return cache_del(cache_of(h), type, filters, err);
}

static int hc_get_or_compute(const bp_host *h, const char *type, const json_t *filters,
                             bp_cache_compute_fn compute, void *ud, json_t **out, int *out_stale,
                             bp_error *err)
{
    return cache_get_or_compute(cache_of(h), type, filters, compute, ud, out, out_stale, err);
}

static int hc_invalidate(const bp_host *h, const char *type, const char *pattern,
                         uint64_t *out_removed, bp_error *err)
{
    return cache_invalidate(cache_of(h), type, pattern, out_removed, err);
}

/* The report also says whose cache this was: an in-memory cache belongs to one process, and
 * only a daemon's is worth cleaning (a CLI's or an isolated job's is its own, and empty). */
static int hc_cleanup(const bp_host *h, json_t **out_report, bp_error *err)
{
    app *a = ctx_of(h)->app;
    int rc = cache_cleanup(a->cache, out_report, err);
    if (rc == BP_OK) {
        json_object_set_new(*out_report, "worker", json_string(a->worker_id));
        json_object_set_new(*out_report, "daemon", json_boolean(a->pool != NULL));
    }
    return rc;
}

static int hc_stats(const bp_host *h, json_t **out_stats, bp_error *err)
{
    return cache_stats(cache_of(h), out_stats, err);
}

static const bp_cache_api cache_api = {
    .struct_size = sizeof(bp_cache_api),
    .get = hc_get,
    .set = hc_set,
    .del = hc_del,
    .get_or_compute = hc_get_or_compute,
    .invalidate = hc_invalidate,
    .cleanup = hc_cleanup,
    .stats = hc_stats,
};

/* ---- HTTP client (http_client.h); log lines carry the plugin's name ---------------------- */

static int hh_request(const bp_host *h, const bp_http_request *req, bp_http_response **out,
                      bp_error *err)
{
    return http_client_request(ctx_of(h)->component, req, out, err);
}

static const char *hh_header(const bp_host *h, const bp_http_response *resp, const char *name)
{
    (void)h;
    return http_client_header(resp, name);
}

static void hh_response_free(const bp_host *h, bp_http_response *resp)
{
    (void)h;
    http_client_response_free(resp);
}

static const bp_http_api http_api = {
    .struct_size = sizeof(bp_http_api),
    .request = hh_request,
    .header = hh_header,
    .response_free = hh_response_free,
};

/* ---- the table ------------------------------------------------------------------------------- */

const bp_host *host_for_plugin(void *ud, const char *plugin_name)
{
    host_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->app = ud;
    util_strlcpy(c->name, plugin_name, sizeof c->name);
    snprintf(c->component, sizeof c->component, "plugin:%s", plugin_name);
    c->table = (bp_host){
        .struct_size = sizeof(bp_host),
        .abi_major = BP_ABI_MAJOR,
        .abi_minor = BP_ABI_MINOR,
        .plugin_name = c->name,
        .core = c,
        .log = h_log,
        .log_enabled = h_log_enabled,
        .config = h_config,
        .data_dir = h_data_dir,
        .now_ms = h_now_ms,
        .mono_ns = h_mono_ns,
        .progress = h_progress,
        .cancelled = h_cancelled,
        .enqueue = h_enqueue,
        .find_model = h_find_model,
        .find_collector = h_find_collector,
        .find_notifier = h_find_notifier,
        .list_names = h_list_names,
        .store = c->app->store ? &store_api : NULL,
        .cache = c->app->cache ? &cache_api : NULL,
        .http = &http_api,
    };
    return &c->table;
}

void host_release(void *ud, const bp_host *host)
{
    (void)ud;
    free(ctx_of(host));
}
