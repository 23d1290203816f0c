/*
 * betpipe/host.h - the service table the core hands to every plugin.
 *
 * Part of the plugin ABI. Plugins reach the core only through this table: they link against no
 * daemon symbol (plugins are linked with -z defs). The table only grows at the end; a plugin
 * checks struct_size before using a field newer than the ABI minor it was built for.
 *
 * Each plugin gets its own bp_host (the core knows who is calling from the pointer), valid from
 * init() until fini() returns. Every function may be called from any thread unless it says
 * otherwise. Strings returned are borrowed; JSON returned through out_* parameters is a new
 * reference the caller must json_decref.
 */
#ifndef BETPIPE_HOST_H
#define BETPIPE_HOST_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/job.h"
#include "betpipe/log.h"
#include "betpipe/registry.h"
#include "betpipe/status.h"

typedef struct bp_store_api bp_store_api;
typedef struct bp_cache_api bp_cache_api;
typedef struct bp_http_api bp_http_api;

struct bp_host {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *plugin_name; /* the plugin this table belongs to */
    void *core;              /* core-private */

    /* -- logging ------------------------------------------------------------------------ */
    /* log a line at `level` (BP_LOG_*). Use the BP_LOG_* macros of log.h. */
    void (*log)(const bp_host *h, int level, const char *fmt, ...) BP_PRINTF(3, 4);
    /* non-zero when `level` would be written. */
    int (*log_enabled)(const bp_host *h, int level);

    /* -- configuration ------------------------------------------------------------------ */
    /* the plugin's own section of the config file ("plugins": {"config": {"<name>": {...}}}), or
     * an empty object. Borrowed; valid until the next config reload (SIGHUP), so do not keep it. */
    const json_t *(*config)(const bp_host *h);
    /* the instance's data directory (absolute). Everything the instance writes lives below it. */
    const char *(*data_dir)(const bp_host *h);

    /* -- clock ---------------------------------------------------------------------------- */
    int64_t (*now_ms)(const bp_host *h);  /* UTC wall clock, epoch milliseconds (injectable) */
    int64_t (*mono_ns)(const bp_host *h); /* monotonic nanoseconds, for durations only */

    /* -- the running job ---------------------------------------------------------------- */
    /* report progress in [0, 1] with an optional short message; visible in `betpipe task`. */
    void (*progress)(const bp_job *job, double fraction, const char *msg);
    /* non-zero once the job should stop: soft time limit passed, revoked, or daemon shutting
     * down past its grace period. Long jobs check it between units of work and return
     * BP_E_CANCELLED. Cheap: an atomic load and a clock read. */
    int (*cancelled)(const bp_job *job);
    /* enqueue another job (fan-out). `args` is borrowed and validated against the target type's
     * schema. `opts` may be NULL. On success the new id is written to out_id (may be NULL).
     * A duplicate unique_key returns BP_E_EXISTS and the holder's id in out_id. */
    int (*enqueue)(const bp_host *h, const char *type, const json_t *args,
                   const bp_enqueue_opts *opts, char out_id[BP_JOB_ID_SIZE], bp_error *err);

    /* -- other plugins' capabilities ------------------------------------------------------- */
    /* find a registered model / collector / notifier by name. On success *out_desc is the
     * core's copy of the descriptor and *out_plugin_state the owning plugin's state; both are
     * valid until shutdown. Returns BP_E_NOTFOUND when nothing of that name is loaded. */
    int (*find_model)(const bp_host *h, const char *name, const bp_model_type **out_desc,
                      void **out_plugin_state);
    int (*find_collector)(const bp_host *h, const char *name, const bp_collector_type **out_desc,
                          void **out_plugin_state);
    int (*find_notifier)(const bp_host *h, const char *name, const bp_notifier_type **out_desc,
                         void **out_plugin_state);
    /* names of all registered items of a kind ("model", "collector", "notifier", "job"), as a
     * new JSON array of strings. */
    json_t *(*list_names)(const bp_host *h, const char *kind);

    /* -- services: each sub-table begins with struct_size and only grows at the end ------- */
    const bp_store_api *store; /* betpipe/store.h */
    const bp_cache_api *cache; /* betpipe/cache.h */
    const bp_http_api *http;   /* betpipe/http.h */
};

#endif
