/*
 * test_host.h - a real bp_host for tests that load plugins without the daemon.
 *
 * A bpt_hosts is a set of host tables, one per plugin, handed out through bpt_host_for /
 * bpt_host_release (the loader's host callbacks, with the bpt_hosts as `ud`). Each table works:
 *   log / log_enabled   lines go to an in-memory buffer shared by the set ("<plugin> LEVEL msg"),
 *                       kept after the table is released so a test can read what fini said
 *   config              the plugin's config object ({} unless bpt_hosts_set_config gave one)
 *   data_dir            a temp directory created on first use, removed by bpt_hosts_free
 *   now_ms / mono_ns    the real clocks (util_now_ms / util_mono_ns)
 *   progress            recorded in the log buffer ("<plugin> PROGRESS 0.50 msg")
 *   cancelled           true once the job's soft deadline has passed
 *   enqueue             validates the type and args against the registry (when one was given)
 *                       and records {"id", "type", "args"} in bpt_hosts_enqueued()
 *   find_* / list_names answered from the registry (BP_E_NOTFOUND / [] without one)
 *   store / cache / http NULL: tests that need them use the real modules
 * All functions are thread-safe.
 */
#ifndef BP_TEST_HOST_H
#define BP_TEST_HOST_H

#include <stdbool.h>

#include <jansson.h>

#include "betpipe/host.h"
#include "betpipe/plugin.h"
#include "registry.h"

typedef struct bpt_hosts bpt_hosts;

/* A new set; `reg` (borrowed, may be NULL) answers find_*, list_names and enqueue checks. */
bpt_hosts *bpt_hosts_new(registry *reg);
/* Free every table, released or not, and the data dir. */
void bpt_hosts_free(bpt_hosts *hs);

/* The loader callbacks: ud is the bpt_hosts. */
const bp_host *bpt_host_for(void *ud, const char *plugin_name);
void bpt_host_release(void *ud, const bp_host *host);

/* Give `plugin_name` this config object (reference stolen) in tables created from now on. */
void bpt_hosts_set_config(bpt_hosts *hs, const char *plugin_name, json_t *config);

/* Tables handed out so far, and those not released yet. */
int bpt_hosts_created(bpt_hosts *hs);
int bpt_hosts_live(bpt_hosts *hs);

/* Everything logged so far (all plugins), a new string the caller frees. */
char *bpt_hosts_log(bpt_hosts *hs);
bool bpt_hosts_log_contains(bpt_hosts *hs, const char *needle);

/* The jobs enqueued through host->enqueue so far: a new reference to a JSON array. */
json_t *bpt_hosts_enqueued(bpt_hosts *hs);

#endif
