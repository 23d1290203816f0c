/*
 * cache_backend.h - what a cache backend (cache_memory.c, cache_redis.c) provides to cache.c.
 *
 * Private to the cache module. A backend stores opaque entries ("blobs": the header and the
 * encoded value built by cache.c) under full keys, and knows nothing about JSON. It gives each
 * entry the absolute instant `expire_at_ms` (epoch ms, util_now_ms clock) after which it may be
 * dropped; cache.c decides freshness from the blob header.
 *
 * Status convention for every operation: BP_OK, BP_E_NOTFOUND (get: no entry), BP_E_UNAVAILABLE
 * (the server cannot be reached: cache.c then degrades), or another BP_E_* for a real error.
 * Every operation must be callable from any thread.
 */
#ifndef BP_CORE_CACHE_BACKEND_H
#define BP_CORE_CACHE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"
#include "cache.h"

/* The fixed part of a blob: encoding byte, fresh_until, stale_until (big-endian int64). */
#define CACHE_BLOB_ENC_JSON 0x01
#define CACHE_BLOB_ENC_ZLIB 0x02
#define CACHE_BLOB_HEADER   17

/* Per-type figures a backend reports. */
typedef struct cache_usage {
    uint64_t keys;
    uint64_t bytes;
    uint64_t evictions; /* dropped to honour the byte bound */
    uint64_t expired;   /* dropped past their stale limit (lazily or by cleanup) */
} cache_usage;

/* One item of a batch. */
typedef struct cache_item {
    const char *key;
    size_t key_len;
    cache_type type;
    const unsigned char *blob; /* set: the blob to store */
    size_t blob_len;
    int64_t fresh_until_ms; /* set: when the entry goes stale (also in the blob header) */
    int64_t expire_at_ms;
    const json_t *value;     /* set: the value the blob encodes, when it is plain JSON (else NULL);
                                a backend may keep its own copy to answer get_shared() */
    unsigned char *out_blob; /* get: new heap copy (caller frees) or NULL on a miss */
    size_t out_len;
} cache_item;

typedef struct cache_backend cache_backend;

typedef struct cache_backend_ops {
    const char *name;
    /* *out_blob: a new heap copy the caller frees. */
    int (*get)(cache_backend *b, const char *key, size_t key_len, unsigned char **out_blob,
               size_t *out_len, bp_error *err);
    /* Optional (in-process backends): the decoded value, so a hit costs a deep copy instead of
     * a parse. BP_OK: *out_value is a new reference owned by the caller, with the entry's
     * fresh/stale instants. BP_E_STATE: the entry exists but keeps no decoded value (use get). */
    int (*get_value)(cache_backend *b, const char *key, size_t key_len, json_t **out_value,
                     int64_t *out_fresh_until, int64_t *out_stale_until, bp_error *err);
    /* Fill items[i].out_blob / out_len (NULL on a miss). */
    int (*mget)(cache_backend *b, cache_item *items, size_t n, bp_error *err);
    int (*set)(cache_backend *b, const cache_item *item, bp_error *err);
    int (*mset)(cache_backend *b, const cache_item *items, size_t n, bp_error *err);
    /* *out_removed: 1 when the entry existed. */
    int (*del)(cache_backend *b, const char *key, size_t key_len, int *out_removed, bp_error *err);
    /* Remove the entries of `type` whose full key matches the Redis glob `key_glob`; add the
     * counts to *out_removed. */
    int (*invalidate)(cache_backend *b, cache_type type, const char *key_glob,
                      uint64_t *out_removed, bp_error *err);
    /* Remove the entries of `type` whose expire_at is <= now_ms; add counts and bytes freed. */
    int (*cleanup)(cache_backend *b, cache_type type, int64_t now_ms, uint64_t *out_removed,
                   uint64_t *out_bytes, bp_error *err);
    /* Current figures of every type (cache_usage[CACHE_TYPE_COUNT]). */
    int (*usage)(cache_backend *b, cache_usage *out, bp_error *err);
    /* Cross-process single-flight lock (NULL for in-process backends). *out_acquired = 1 when
     * this caller now holds `lock_key` with `token` for ttl_ms. */
    int (*lock)(cache_backend *b, const char *lock_key, const char *token, int64_t ttl_ms,
                int *out_acquired, bp_error *err);
    /* Release the lock only if it still holds `token`. */
    int (*unlock)(cache_backend *b, const char *lock_key, const char *token, bp_error *err);
    /* Does `lock_key` still exist? (*out_held). */
    int (*lock_held)(cache_backend *b, const char *lock_key, int *out_held, bp_error *err);
    /* Add the counter deltas to the shared counters and read the totals back (NULL for
     * in-process backends). deltas/out_totals: [CACHE_TYPE_COUNT][CACHE_COUNTER_COUNT]. */
    int (*counters)(cache_backend *b, const uint64_t *deltas, uint64_t *out_totals, bp_error *err);
    void (*close)(cache_backend *b);
    /* Figures of the server the entries live on, which the backend does not count itself
     * (NULL for in-process backends, whose usage() counts evictions and expiries per type).
     * Redis evicts (maxmemory) and expires (PX) keys on its own, server-wide: *out_server is a
     * new object {"evicted_keys", "expired_keys", "maxmemory_policy", "maxmemory",
     * "used_memory"} from INFO. */
    int (*server_stats)(cache_backend *b, json_t **out_server, bp_error *err);
} cache_backend_ops;

/* The shared counters, in this order in the `counters` arrays. */
enum {
    CACHE_CTR_HITS,
    CACHE_CTR_MISSES,
    CACHE_CTR_STALE_SERVES,
    CACHE_CTR_SETS,
    CACHE_CTR_SETS_SKIPPED,
    CACHE_COUNTER_COUNT
};
extern const char *const cache_counter_names[CACHE_COUNTER_COUNT];

struct cache_backend {
    const cache_backend_ops *ops;
};

/* The memory backend: bounded by max_bytes in total (each of its shards by an equal share). */
int cache_memory_open(uint64_t max_bytes, cache_backend **out, bp_error *err);

/* The Redis backend at `url`; `key_prefix` is "<prefix>:cache:" (keys of type t begin with
 * key_prefix + type name + ":"), stats_prefix the hash key prefix for shared counters. Not
 * reaching the server is not an error here. */
int cache_redis_open(const char *url, const char *prefix, cache_backend **out, bp_error *err);

#endif
