/*
 * app.c - opening and closing the parts of an instance (see app.h).
 */
#include "app.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "cache.h"
#include "http_client.h"
#include "log.h"
#include "util.h"

/* Process-wide library state belongs to the core alone, set once before any plugin loads:
 * GSL's default error handler calls abort(), which a plugin must never trigger - every GSL
 * status is checked instead. */
static void global_init_once(void)
{
    static bool done;
    if (!done) {
        bp_error err = {0};
        gsl_set_error_handler_off();
        if (http_client_global_init(&err) != BP_OK) {
            log_warn("app", "HTTP client unavailable: %s", err.msg);
        }
        done = true;
    }
}

/* Load every plugin directory of plugin_dir (a ':'-separated list), or only the files that
 * config plugins.load names. */
static int load_plugins(app *a, bp_error *err)
{
    char *dirs = strdup(a->cfg->plugin_dir);
    char *save = NULL;
    int rc = BP_OK;
    if (!dirs) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    a->plugin_report = json_array();
    for (char *dir = strtok_r(dirs, ":", &save); dir && rc == BP_OK;
         dir = strtok_r(NULL, ":", &save)) {
        if (a->cfg->plugin_load) {
            size_t i;
            json_t *v;
            json_array_foreach(a->cfg->plugin_load, i, v)
            {
                /* A plugin named `x` is the file <kind>-x.so: try the kinds in turn. */
                static const char *const kinds[] = {"job", "model", "collector", "notifier"};
                bool found = false;
                for (size_t k = 0; k < BP_ARRAY_LEN(kinds) && !found; k++) {
                    char *path = util_asprintf("%s/%s-%s.so", dir, kinds[k], json_string_value(v));
                    if (path && util_path_exists(path)) {
                        bp_error lerr = {0};
                        found = true;
                        if (loader_load_file(a->loader, path, &lerr) != BP_OK) {
                            log_error("loader", "%s", lerr.msg);
                            json_array_append_new(a->plugin_report,
                                                  json_pack("{s:s, s:b, s:s}", "file", path, "ok",
                                                            0, "error", lerr.msg));
                        } else {
                            json_array_append_new(a->plugin_report,
                                                  json_pack("{s:s, s:b}", "file", path, "ok", 1));
                        }
                    }
                    free(path);
                }
                (void)found;
            }
        } else {
            json_t *report = NULL;
            bp_error lerr = {0};
            if (!util_path_exists(dir)) {
                log_warn("loader", "plugin directory %s does not exist", dir);
                continue;
            }
            rc = loader_load_dir(a->loader, dir, &report, &lerr);
            if (rc != BP_OK) {
                bp_err(err, rc, "%s", lerr.msg);
            }
            if (report) {
                json_array_extend(a->plugin_report, report);
                json_decref(report);
            }
        }
    }
    free(dirs);
    if (rc == BP_OK && a->cfg->plugin_load) {
        size_t i;
        json_t *v;
        json_array_foreach(a->cfg->plugin_load, i, v)
        {
            bool loaded = false;
            size_t k;
            json_t *r;
            json_array_foreach(a->plugin_report, k, r)
            {
                const char *file = json_string_value(json_object_get(r, "file"));
                char *suffix = util_asprintf("-%s.so", json_string_value(v));
                loaded = loaded || (file && suffix && util_str_ends_with(file, suffix));
                free(suffix);
            }
            if (!loaded) {
                return bp_err(err, BP_E_CONFIG,
                              "config plugins.load names '%s', but no such plugin file is in %s",
                              json_string_value(v), a->cfg->plugin_dir);
            }
        }
    }
    return rc;
}

int app_open(const config_overrides *ov, int parts, app **out, bp_error *err)
{
    app *a = calloc(1, sizeof *a);
    int rc;
    char path[4096];
    *out = NULL;
    if (!a) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    global_init_once();
    if (gethostname(a->hostname, sizeof a->hostname) != 0) {
        util_strlcpy(a->hostname, "localhost", sizeof a->hostname);
    }
    a->hostname[sizeof a->hostname - 1] = '\0';
    snprintf(a->worker_id, sizeof a->worker_id, "%.100s:%d:%04x", a->hostname, (int)getpid(),
             (unsigned)(util_rand64() & 0xffff));

    rc = config_load(ov, &a->cfg, err);
    if (rc != BP_OK) {
        goto fail;
    }
    log_set_level((parts & APP_QUIET) && !a->cfg->log_level_explicit ? BP_LOG_WARN
                                                                     : a->cfg->log_level);
    log_set_json(a->cfg->log_json);
    if (parts & (APP_BROKER | APP_PLUGINS)) {
        parts |= APP_STORE;
    }
    if (parts & APP_STORE) {
        rc = util_mkdir_p(a->cfg->data_dir, 0750, err);
        if (rc != BP_OK) {
            goto fail;
        }
        snprintf(path, sizeof path, "%s/betpipe.db", a->cfg->data_dir);
        rc = store_open(path, &a->store, err);
        if (rc != BP_OK) {
            goto fail;
        }
        rc = history_new(a->store, (parts & APP_ASYNC_HISTORY) != 0, &a->history, err);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    if (parts & APP_BROKER) {
        broker_options bo = a->cfg->broker_opts;
        bo.on_final = history_on_final;
        bo.on_final_ud = a->history;
        rc = broker_open(a->cfg->broker_url, a->cfg->data_dir, &bo, &a->broker, err);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    if (parts & APP_PLUGINS) {
        /* The cache before the plugins: a plugin's init may already use it. A cache backend
         * that is down does not fail the open - the cache degrades to misses. */
        const char *prefix =
            json_string_value(json_object_get(config_section(a->cfg, "broker"), "prefix"));
        rc = cache_open(config_section(a->cfg, "cache"), prefix ? prefix : "bp", &a->cache, err);
        if (rc != BP_OK) {
            goto fail;
        }
        rc = registry_new(&a->reg, err);
        if (rc == BP_OK) {
            rc = loader_new(a->reg, host_for_plugin, host_release, a, &a->loader, err);
        }
        if (rc == BP_OK) {
            rc = load_plugins(a, err);
        }
        if (rc != BP_OK) {
            goto fail;
        }
    }
    *out = a;
    return BP_OK;
fail:
    app_close(a);
    return rc;
}

void app_close(app *a)
{
    if (!a) {
        return;
    }
    /* Plugins first (their fini may still use the store), then the broker (its on_final hook
     * feeds the history), then the history, then the store it writes to. */
    if (a->loader) {
        loader_unload_all(a->loader);
        loader_free(a->loader);
    }
    registry_free(a->reg);
    cache_close(a->cache);
    broker_destroy(a->broker);
    history_free(a->history);
    store_close(a->store);
    json_decref(a->plugin_report);
    config_free(a->cfg);
    free(a);
}
