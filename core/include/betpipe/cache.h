/*
 * betpipe/cache.h - the typed result cache.
 *
 * Part of the plugin ABI. Entries are JSON values addressed by a type ("odds", "stats",
 * "predictions", "static") and a filters object; the key is the type plus a canonical form of the
 * filters (sorted keys, no whitespace), so the same question always lands on the same entry. Each
 * type has its own TTL (odds 300 s, stats 1800 s, predictions 600 s, static 86400 s by default).
 *
 * A cache that is down never fails a job: get() then reports a miss, set() succeeds without
 * storing, and get_or_compute() calls the compute function.
 */
#ifndef BETPIPE_CACHE_H
#define BETPIPE_CACHE_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"

typedef struct bp_host bp_host;

/* Compute a value on a miss: set *out_value to a new reference and return BP_OK. */
typedef int (*bp_cache_compute_fn)(void *ud, json_t **out_value, bp_error *err);

struct bp_cache_api {
    uint32_t struct_size;
    uint32_t reserved0;
    /* fresh hit: BP_OK and a new reference in *out_value. Miss: BP_E_NOTFOUND. */
    int (*get)(const bp_host *h, const char *type, const json_t *filters, json_t **out_value,
               bp_error *err);
    /* store `value` (borrowed) under the type's TTL. */
    int (*set)(const bp_host *h, const char *type, const json_t *filters, const json_t *value,
               bp_error *err);
    int (*del)(const bp_host *h, const char *type, const json_t *filters, bp_error *err);
    /* cache-aside: a fresh hit is returned; on a miss `compute` runs once for all concurrent
     * callers of the same key and its value is stored. When compute fails and a stale value (past
     * its TTL but within the stale limit) exists, it is returned with *out_stale = 1. */
    int (*get_or_compute)(const bp_host *h, const char *type, const json_t *filters,
                          bp_cache_compute_fn compute, void *ud, json_t **out_value, int *out_stale,
                          bp_error *err);
    /* drop every entry of `type` (NULL: all types) whose filters' canonical form matches the
     * glob `pattern` (NULL: all). *out_removed gets the count. */
    int (*invalidate)(const bp_host *h, const char *type, const char *pattern,
                      uint64_t *out_removed, bp_error *err);
    /* evict entries past their stale limit; *out_report gets counts per type, the backend
     * ("memory" or "redis"), and whose cache it was: "worker" (this process's worker id) and
     * "daemon" (true in a daemon; an in-memory cache belongs to the one process). */
    int (*cleanup)(const bp_host *h, json_t **out_report, bp_error *err);
    /* statistics per type: hits, misses, hit_rate, stale_serves, sets, evictions, keys, bytes
     * (on Redis evictions are null, not counted per type, and "server" has INFO's server-wide
     * evicted_keys; see core/src/cache.h cache_stats). */
    int (*stats)(const bp_host *h, json_t **out_stats, bp_error *err);
};

#endif
