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

#include "app.h"
#include "betpipe/betpipe.h"
#include "client.h"
#include "exec.h"
#include "log.h"
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

static const bp_store_api store_api = {
    .struct_size = sizeof(bp_store_api),
    .path = hs_path,
    .backup = hs_backup,
    .verify = hs_verify,
    .optimize = hs_optimize,
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
        .cache = NULL,
        .http = NULL,
    };
    return &c->table;
}

void host_release(void *ud, const bp_host *host)
{
    (void)ud;
    free(ctx_of(host));
}
