/*
 * registry.h - the capabilities plugins register: job types, models, collectors, notifiers.
 *
 * Plugins register from their init() through the bp_registry table of betpipe/registry.h. The
 * core keeps its own copy of every descriptor: it reads only the `struct_size` bytes the plugin
 * declared (zero-filling fields the plugin was built without), refuses a descriptor smaller than
 * its ABI 1.0 size, copies the strings, checks names and callbacks, and compiles the declared
 * schema with jsonschema. Names are unique per kind across all plugins.
 *
 * Registration is transactional per plugin. The loader calls registry_begin() before the
 * plugin's init and registry_commit() or registry_rollback() after it; a rollback removes
 * everything the plugin registered during that init, so a failed plugin leaves no trace. Once
 * the transaction is closed the plugin's bp_registry table stays valid (a plugin may have kept
 * the pointer) but every add_* through it fails with BP_E_STATE.
 *
 * Threading: registration (begin, add_*, commit, rollback, remove) happens on one thread at
 * startup, before any lookup from another thread. After loading is over the registry is
 * read-only and registry_find_* / registry_list* / registry_count may be called from any number
 * of threads without a lock. registry_remove_plugin and registry_free run at shutdown, after the
 * workers have stopped. An add_* arriving from another thread after init returned is detected
 * (an atomic flag) and refused with BP_E_STATE without touching the tables.
 */
#ifndef BP_CORE_REGISTRY_H
#define BP_CORE_REGISTRY_H

#include <stddef.h>

#include <jansson.h>

#include "betpipe/host.h"
#include "betpipe/registry.h"
#include "betpipe/status.h"
#include "jsonschema.h"

typedef enum registry_kind {
    REGISTRY_JOB,
    REGISTRY_MODEL,
    REGISTRY_COLLECTOR,
    REGISTRY_NOTIFIER,
    REGISTRY_KINDS
} registry_kind;

/*
 * The size of each descriptor at ABI 1.0: the end of its last 1.0 field. Frozen forever - a
 * plugin declaring a smaller struct_size is refused, whatever the current ABI minor.
 */
#define REGISTRY_JOB_TYPE_SIZE_1_0   (offsetof(bp_job_type, run) + sizeof(bp_job_run_fn))
#define REGISTRY_MODEL_TYPE_SIZE_1_0 (offsetof(bp_model_type, destroy) + sizeof(void (*)(void *)))
#define REGISTRY_COLLECTOR_TYPE_SIZE_1_0                                                           \
    (offsetof(bp_collector_type, collect) + sizeof(void (*)(void)))
#define REGISTRY_NOTIFIER_TYPE_SIZE_1_0 (offsetof(bp_notifier_type, send) + sizeof(void (*)(void)))

/* What a lookup returns. Every field is owned by the registry and valid until the owning plugin
 * is removed (registry_remove_plugin) or the registry is freed; the desc's strings are the
 * registry's copies, its function pointers point into the plugin and stay valid until the
 * plugin is unloaded. */
typedef struct registry_job {
    bp_job_type desc;        /* the core's copy; desc.struct_size = bytes taken from the plugin */
    jsonschema *args_schema; /* compiled desc.args_schema; never NULL (NULL text = no args) */
    const char *plugin;      /* the owning plugin's name */
    const bp_host *host;     /* the owning plugin's host table (for bp_job.host) */
    void *plugin_state;      /* what the plugin's init returned in out_state */
} registry_job;

typedef struct registry_model {
    bp_model_type desc;
    jsonschema *params_schema; /* never NULL */
    const char *plugin;
    const bp_host *host;
    void *plugin_state;
} registry_model;

typedef struct registry_collector {
    bp_collector_type desc;
    jsonschema *request_schema; /* never NULL */
    const char *plugin;
    const bp_host *host;
    void *plugin_state;
} registry_collector;

typedef struct registry_notifier {
    bp_notifier_type desc;
    jsonschema *target_schema; /* never NULL */
    const char *plugin;
    const bp_host *host;
    void *plugin_state;
} registry_notifier;

typedef struct registry registry;

/* "job", "model", "collector", "notifier". */
const char *registry_kind_name(registry_kind kind);
/* The inverse of registry_kind_name (also accepts "job_type", "jobs", "models" ...). BP_E_INVAL
 * with the accepted names in err for anything else. */
int registry_kind_parse(const char *name, registry_kind *out_kind, bp_error *err);

/* A new, empty registry; free it with registry_free. */
int registry_new(registry **out, bp_error *err);
/* Free everything, including the bp_registry tables handed to plugins: call it only once no
 * plugin code can run any more (after loader_unload_all). An open transaction is rolled back. */
void registry_free(registry *reg);

/*
 * Open the registration transaction of `plugin_name`, whose host table is `host` (borrowed, kept
 * in the entries for bp_job.host). *out_table is the bp_registry to hand to the plugin's init;
 * it is owned by the registry and stays valid (refusing every call once the transaction is
 * closed) until registry_free. BP_E_STATE when a transaction is already open.
 */
int registry_begin(registry *reg, const char *plugin_name, const bp_host *host,
                   bp_registry **out_table, bp_error *err);

/*
 * Close the open transaction successfully: the plugin's entries become visible to lookups with
 * `plugin_state`. If any of the plugin's add_* calls was refused during the transaction (even
 * though its init went on and returned BP_OK), nothing is committed: the transaction is rolled
 * back and the first refusal is returned (its status and message). BP_E_STATE when no
 * transaction is open.
 */
int registry_commit(registry *reg, void *plugin_state, bp_error *err);

/* Close the open transaction, removing every entry the plugin registered in it. No-op when no
 * transaction is open. */
void registry_rollback(registry *reg);

/* How many items `plugin_name` has registered (committed, or pending in the open transaction);
 * NULL counts every committed item. */
size_t registry_count(const registry *reg, const char *plugin_name);

/* Remove every committed entry of `plugin_name` (at unload, before the plugin's fini). */
void registry_remove_plugin(registry *reg, const char *plugin_name);

/* Lookups by name among committed entries; NULL when absent. The result is borrowed (see the
 * lifetime note above). Thread-safe once loading is over. O(n) in the number of items of the
 * kind, which is a few dozen. */
const registry_job *registry_find_job(const registry *reg, const char *name);
const registry_model *registry_find_model(const registry *reg, const char *name);
const registry_collector *registry_find_collector(const registry *reg, const char *name);
const registry_notifier *registry_find_notifier(const registry *reg, const char *name);

/*
 * Committed items of a kind as a new JSON array, in registration order, each an object:
 *   job:       {name, plugin, description, queue, flags: ["isolate"], soft_time_limit_s,
 *               max_retries, args_schema}
 *   model:     {name, plugin, description, state_version, params_schema}
 *   collector: {name, plugin, description, provides: ["fixtures", "odds", ...], request_schema}
 *   notifier:  {name, plugin, description, target_schema}
 * where each *_schema is the schema as JSON (jsonschema_describe). NULL on OOM.
 */
json_t *registry_list(const registry *reg, registry_kind kind);
/* The same restricted to one plugin's items. */
json_t *registry_list_plugin(const registry *reg, registry_kind kind, const char *plugin_name);
/* Just the names, as a new JSON array of strings (for host->list_names). */
json_t *registry_names(const registry *reg, registry_kind kind);

#endif
