/*
 * app.h - one betpipe instance inside one process: configuration, store, broker, plugins and
 * the services the host tables expose. The daemon opens everything; a CLI command opens only
 * the parts it needs (`betpipe task ID` needs no plugins).
 */
#ifndef BP_CORE_APP_H
#define BP_CORE_APP_H

#include <stdbool.h>

#include <jansson.h>

#include "broker.h"
#include "config.h"
#include "history.h"
#include "loader.h"
#include "pool.h"
#include "registry.h"
#include "store.h"

#define APP_STORE         0x1
#define APP_BROKER        0x2 /* implies APP_STORE (finished jobs are mirrored into the history) */
#define APP_PLUGINS       0x4 /* implies APP_STORE (plugins get the store through their host) */
#define APP_ASYNC_HISTORY 0x8 /* daemon: mirror finished jobs from a background thread */
#define APP_ALL           (APP_STORE | APP_BROKER | APP_PLUGINS)
#define APP_QUIET                                                                                  \
    0x10 /* one-shot CLI command: log warnings and errors only, unless the                         \
          * level was set explicitly */

typedef struct cache cache;

typedef struct app {
    config *cfg;
    store *store;
    broker *broker;
    history *history;
    registry *reg;
    loader *loader;
    json_t *plugin_report; /* what loading each plugin file gave (for `plugins` and logs) */
    cache *cache;          /* NULL when no cache is configured */
    pool *pool;            /* the daemon's pool, NULL elsewhere */
    char hostname[256];
    char worker_id[160]; /* host:pid:random, unique per process */
} app;

/* Open the parts of an instance. On failure err says which part and why, and nothing is left
 * open. */
int app_open(const config_overrides *ov, int parts, app **out, bp_error *err);
void app_close(app *a);

/* The bp_host factory the loader uses (host.c). */
const bp_host *host_for_plugin(void *ud, const char *plugin_name);
void host_release(void *ud, const bp_host *host);
/* The app a host table belongs to. */
app *host_app(const bp_host *h);

#endif
