/*
 * loader.h - load plugin shared objects, check them, run their init, and unload them.
 *
 * Loading one file goes through these steps; the first that fails stops the load, leaves
 * nothing behind (no registry entry, no open handle, no host table) and returns its own status
 * with a message that starts with the file's path:
 *
 *   step                                          status          message (key phrase)
 *   1 the file exists                             BP_E_NOTFOUND   "no such file"
 *     it is a regular file, not a symlink / dir   BP_E_INVAL      "is a symbolic link" / "is a
 *                                                                 directory" / "is not a
 *                                                                 regular file"
 *     not writable by group or others             BP_E_INVAL      "is group- or world-writable"
 *     owned by root or by the user we run as      BP_E_INVAL      "is owned by uid"
 *   2 dlopen(RTLD_NOW | RTLD_LOCAL)               BP_E_INVAL      "not a shared object (not an
 *                                                                 ELF file)"
 *                                                 BP_E_IO         dlerror() + "check with: ldd
 *                                                                 FILE"
 *   3 the bp_plugin_entry symbol                  BP_E_NOTFOUND   "not a betpipe plugin: no
 *                                                                 bp_plugin_entry symbol"
 *     bp_plugin_entry() returns a descriptor      BP_E_INVAL      "returned NULL"
 *   4 magic                                       BP_E_CORRUPT    "bad magic 0x..., expected
 *                                                                 0x4250504c"
 *     ABI major                                   BP_E_ABI        "built for ABI 2.x, this
 *                                                                 betpipe provides 1.0"
 *     ABI minor not newer than ours               BP_E_ABI        "needs ABI 1.7 ... upgrade"
 *     struct_size, build signature                BP_E_ABI        "not binary compatible"
 *   5 name valid, init present                    BP_E_INVAL      "plugin name ... is invalid"
 *     name not loaded already                     BP_E_EXISTS     "is already loaded from"
 *   6 init(host, registry, &state, &err)          init's status   "init failed: <its message>"
 *     (registrations rolled back, fini NOT called)
 *   7 a registration refused during init, even    the refusal's   "a registration was refused"
 *     if init returned BP_OK                      status
 *     registered at least one item              BP_E_INVAL      "registers nothing"
 *     (for both: rolled back, then fini)
 *
 * Host tables are not built here: the caller passes host_for/host_release. host_for is called
 * once per plugin, right before its init, and host_release once when the plugin fails after
 * that point or is unloaded.
 *
 * Threading: a loader is used from one thread (startup, `betpipe plugins`, shutdown). Loading
 * registers into the registry, which must not be read by other threads at the same time (see
 * registry.h); once loading is over, the registry serves lookups from any thread.
 */
#ifndef BP_CORE_LOADER_H
#define BP_CORE_LOADER_H

#include <stddef.h>

#include <jansson.h>

#include "betpipe/plugin.h"
#include "betpipe/status.h"
#include "registry.h"

/* The size of bp_plugin at ABI 1.0 (the frozen prefix ends with fini): smaller is refused. */
#define LOADER_PLUGIN_SIZE_1_0 (offsetof(bp_plugin, fini) + sizeof(void (*)(void *)))

/* Give the host table for `plugin_name` (NULL refuses the load). The table must stay valid
 * until host_release is called with it. */
typedef const bp_host *(*loader_host_for_fn)(void *ud, const char *plugin_name);
typedef void (*loader_host_release_fn)(void *ud, const bp_host *host);

typedef struct loader loader;

/* A loader that registers plugins into `reg` (borrowed; it must outlive the loader) and gets
 * host tables from host_for/host_release with `ud`. */
int loader_new(registry *reg, loader_host_for_fn host_for, loader_host_release_fn host_release,
               void *ud, loader **out, bp_error *err);

/* Unload every plugin (loader_unload_all) and free the loader. NULL is fine. */
void loader_free(loader *l);

/*
 * Load one plugin file through every step above. BP_OK when the plugin is loaded and its items
 * are in the registry; otherwise the step's status and message, and nothing is left loaded.
 * Does not log: the caller decides how to report.
 */
int loader_load_file(loader *l, const char *path, bp_error *err);

/*
 * Load every "*.so" in `dir`, in name order. A plugin that fails is logged (log_error) and
 * skipped; the healthy ones stay loaded. *out_report (may be NULL) receives a new JSON array
 * with one object per file: {"file", "ok": true, "plugin": name} or {"file", "ok": false,
 * "error": message, "status": code}. Returns BP_OK even when some plugins failed; BP_E_NOTFOUND
 * or BP_E_IO when the directory cannot be read (then *out_report is NULL).
 */
int loader_load_dir(loader *l, const char *dir, json_t **out_report, bp_error *err);

/*
 * Unload all plugins, last loaded first: remove the plugin's items from the registry, call its
 * fini, release its host table, dlclose it. Builds with BP_SANITIZED skip the dlclose so that
 * leak reports inside plugins keep their symbols. Call it after the workers have stopped.
 */
void loader_unload_all(loader *l);

/* How many plugins are loaded. */
size_t loader_count(const loader *l);

/*
 * Every loaded plugin, as a new JSON array of
 *   {"name", "version", "description", "file", "abi": "1.0", "build_sig",
 *    "job_types": [...], "models": [...], "collectors": [...], "notifiers": [...]}
 * where the item lists are those of registry_list_plugin (with their schemas). The data
 * behind `betpipe plugins`. BP_E_NOMEM on failure.
 */
int loader_describe(const loader *l, json_t **out, bp_error *err);

/*
 * Run every check on one file, including init in a scratch registry, then fini and unload it:
 * the data behind `betpipe plugins check FILE`. On success *out_report is a new object shaped
 * like one element of loader_describe. On failure the step's status and message, *out_report
 * NULL. Does not touch any other loader or registry.
 */
int loader_check_file(const char *path, loader_host_for_fn host_for,
                      loader_host_release_fn host_release, void *ud, json_t **out_report,
                      bp_error *err);

#endif
